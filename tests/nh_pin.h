/*
 * tests/nh_pin.h: pinning the calling thread to one CPU, for the tests of
 * the per-CPU caches and the per-CPU transfer-cache shards. Include after
 * defining _GNU_SOURCE.
 */
#ifndef NH_PIN_H
#define NH_PIN_H

#include <sched.h>
#include <stdint.h>
#include <sys/rseq.h>

/* The calling thread's CPU as rseq says (numa/os.h nh_os_cpu_fast). */
static inline int nh_pin_rseq_cpu(void) {
  return *(volatile int32_t *)((char *)__builtin_thread_pointer() + __rseq_offset + 4);
}

/* Runs the calling thread on cpu only: 0, or -1 when it cannot. */
static inline int pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) return -1;
  sched_yield();
  if (sched_getcpu() != cpu) return -1;
  /* the caches read the CPU from rseq's cpu_id, which the kernel may update
   * only at a later return to user space: wait for it */
  for (int i = 0; i < 1000 && __rseq_size > 0 && nh_pin_rseq_cpu() != cpu; i++) sched_yield();
  return 0;
}

/* Lets the calling thread run on any CPU again. */
static inline void unpin(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &set);
  sched_setaffinity(0, sizeof set, &set);
}

/* Whether the thread can run on CPUs 0 and 1 (left pinned to 1 if so). */
static inline int have_two_cpus(void) {
  if (pin(0) != 0 || pin(1) != 0) {
    unpin();
    return 0;
  }
  return 1;
}

#endif
