/*
 * percpu/pcpu_os.c: the two system calls the percpu mode needs beyond
 * numa/os.h (membarrier with rseq fences). They belong in numa/os.c (not
 * percpu's file); kept here, alone, until they move there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "percpu/internal.h"

static int membarrier(int cmd, unsigned flags, int cpu) {
  return (int)syscall(__NR_membarrier, cmd, flags, cpu);
}

int nh_pc_os_fence_register(void) {
  int cmds = membarrier(MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0) return errno;
  if (!(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)) return ENOSYS;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0 ? 0 : errno;
}

int nh_pc_os_fence_cpu(int cpu) {
  return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_FLAG_CPU, cpu) == 0
             ? 0
             : errno;
}
