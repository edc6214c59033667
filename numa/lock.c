/* numa/lock.c: the slow paths of numa/lock.h (spin, then futex). */
#define _GNU_SOURCE
#include "numa/lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

static void futex_wait(_Atomic int *addr, int val) {
  syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_one(_Atomic int *addr) {
  syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void nh_lock_wait(nh_lock *l) {
  for (int spin = 0; spin < 100; spin++) {
    if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 && nh_lock_try(l)) return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  /* Mark contended; whoever holds it will wake us. Acquire pairs with release. */
  while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
    futex_wait(&l->state, 2);
}

void nh_lock_wake(nh_lock *l) {
  futex_wake_one(&l->state);
}
