/*
 * numa/lock.h: the one lock numaheap uses. A word-sized mutex: spin briefly,
 * then sleep on a futex. It never allocates, so it can be taken from inside
 * malloc, and a zeroed lock is unlocked.
 *
 * States: 0 unlocked, 1 locked, 2 locked with (possible) sleepers.
 * Lock acquires (pairs with the release in nh_lock_release).
 */
#ifndef NH_NUMA_LOCK_H
#define NH_NUMA_LOCK_H

#include <stdatomic.h>

typedef struct nh_lock {
  _Atomic int state;
} nh_lock;

void nh_lock_wait(nh_lock *l);  /* slow path of nh_lock_acquire (numa/lock.c) */
void nh_lock_wake(nh_lock *l);  /* slow path of nh_lock_release */

static inline int nh_lock_try(nh_lock *l) {
  int expected = 0;
  return atomic_compare_exchange_strong_explicit(&l->state, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed);
}

static inline void nh_lock_acquire(nh_lock *l) {
  if (!nh_lock_try(l)) nh_lock_wait(l);
}

static inline void nh_lock_release(nh_lock *l) {
  if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2) nh_lock_wake(l);
}

/* Re-initialises a lock in a fork child (its owner thread no longer exists). */
static inline void nh_lock_reset(nh_lock *l) {
  atomic_store_explicit(&l->state, 0, memory_order_relaxed);
}

#endif
