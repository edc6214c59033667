/*
 * bench/util.c: helpers the workloads share (memory figures, CPU pinning,
 * failure). Nothing here allocates, so it may run next to a timed region.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

_Static_assert(sizeof(cpu_set_t) == sizeof(nhb_affinity), "nhb_affinity must hold a cpu_set_t");

void nhb_out_of_memory(const char *where, size_t size) {
  /* fprintf may allocate; write(2) does not. */
  char msg[160];
  int n = snprintf(msg, sizeof msg, "nh_bench: %s: allocation of %zu bytes returned NULL\n",
                   where, size);
  if (n > 0) (void)!write(2, msg, (size_t)n);
  abort();
}

int nhb_check_threads(nhb_state *st) {
  if (nhb_thread_count(st) <= NHB_MAX_THREADS) return 0;
  nhb_error(st, "more threads than NHB_MAX_THREADS (bench/bench.h)");
  return 1;
}

nhb_bench *nhb_threads_124(nhb_bench *b) {
  return nhb_threads(nhb_threads(nhb_threads(b, 1), 2), 4);
}

/* Second field of /proc/self/statm: resident pages. */
uint64_t nhb_rss_now(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *end = NULL;
  (void)strtoull(buf, &end, 10);               /* size */
  unsigned long long pages = strtoull(end, NULL, 10); /* resident */
  return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t nhb_rss_peak(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)ru.ru_maxrss * 1024u; /* Linux reports KiB */
}

int nhb_pin(int index, nhb_affinity *saved) {
  cpu_set_t *old = (cpu_set_t *)saved;
  if (sched_getaffinity(0, sizeof *old, old) != 0) return -1;
  int count = CPU_COUNT(old);
  if (count == 0) return -1;
  int want = index % count;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, old) || want-- > 0) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one);
  }
  return -1;
}

void nhb_unpin(const nhb_affinity *saved) {
  (void)sched_setaffinity(0, sizeof(cpu_set_t), (const cpu_set_t *)saved);
}
