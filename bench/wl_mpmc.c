/*
 * bench/wl_mpmc.c: many producers, many consumers, one shared queue.
 *
 * The first half of the threads produce: each mallocs a block of 16..max
 * bytes (uniform), writes its first and last byte and enqueues it. The other
 * half consume: each dequeues a block, reads it and frees it. The queue is a
 * bounded lock-free multi-producer multi-consumer ring (Vyukov's: one
 * sequence number per cell), so any consumer frees the blocks of any
 * producer, in no fixed pairing, unlike prodcons. With 2 threads that is one
 * producer and one consumer, with 4 two of each. Threads are not pinned (four
 * spinning threads on two CPUs yield instead).
 *
 * Google Benchmark runs every thread for the same number of iterations, so the
 * consumers dequeue exactly what the producers enqueued. The queue's capacity
 * (`cap`) bounds the blocks in flight: cap:256 keeps them in cache, cap:16384
 * does not. One item is one block passed (counted by the producers).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define NHB_MPMC_MAX_CAP 16384 /* power of two */
#define NHB_MPMC_MIN 16

struct nhb_mpmc_cell {
  /* Synchronization: atomic. pos: free for the enqueue at pos; pos + 1:
   * holds the block of the enqueue at pos; stored with release after data,
   * loaded with acquire before data is touched. */
  _Atomic uint64_t seq;
  void *data; /* guarded by seq */
};

static struct {
  /* Synchronization: atomic (relaxed CAS: the cells' seq carry the data). */
  _Atomic uint64_t enq __attribute__((aligned(NHB_LINE)));
  _Atomic uint64_t deq __attribute__((aligned(NHB_LINE)));
  uint64_t mask; /* cap - 1; set by thread 0 before the start barrier */
  struct nhb_mpmc_cell cell[NHB_MPMC_MAX_CAP] __attribute__((aligned(NHB_LINE)));
} nhb_q;

static void nhb_mpmc_init(uint64_t cap) {
  nhb_q.mask = cap - 1;
  atomic_store_explicit(&nhb_q.enq, 0, memory_order_relaxed);
  atomic_store_explicit(&nhb_q.deq, 0, memory_order_relaxed);
  for (uint64_t i = 0; i < cap; i++) atomic_store_explicit(&nhb_q.cell[i].seq, i, memory_order_relaxed);
}

static void nhb_mpmc_wait(unsigned *tries) {
  if (++*tries % 16 == 0)
    sched_yield(); /* the other side may be waiting for our CPU */
  else
    __builtin_ia32_pause();
}

/* Claims the cell whose seq equals pos + want (want 0: enqueue, 1: dequeue)
 * for the position in *ctr; spins while the queue is full or empty. */
static struct nhb_mpmc_cell *nhb_mpmc_claim(_Atomic uint64_t *ctr, uint64_t want, uint64_t *pos) {
  unsigned tries = 0;
  uint64_t p = atomic_load_explicit(ctr, memory_order_relaxed);
  for (;;) {
    struct nhb_mpmc_cell *c = &nhb_q.cell[p & nhb_q.mask];
    /* acquire: pairs with the release store of seq by the other side, so
     * data (and the block behind it) is visible. */
    int64_t dif = (int64_t)(atomic_load_explicit(&c->seq, memory_order_acquire) - (p + want));
    if (dif == 0 && atomic_compare_exchange_weak_explicit(ctr, &p, p + 1, memory_order_relaxed,
                                                          memory_order_relaxed)) {
      *pos = p;
      return c;
    }
    if (dif < 0) nhb_mpmc_wait(&tries);
    if (dif != 0) p = atomic_load_explicit(ctr, memory_order_relaxed);
  }
}

static void nhb_mpmc_push(void *v) {
  uint64_t pos;
  struct nhb_mpmc_cell *c = nhb_mpmc_claim(&nhb_q.enq, 0, &pos);
  c->data = v;
  atomic_store_explicit(&c->seq, pos + 1, memory_order_release); /* pairs with the pop's acquire */
}

static void *nhb_mpmc_pop(void) {
  uint64_t pos;
  struct nhb_mpmc_cell *c = nhb_mpmc_claim(&nhb_q.deq, 1, &pos);
  void *v = c->data;
  /* release: pairs with the push's acquire; the cell is free for the
   * enqueue one lap later. */
  atomic_store_explicit(&c->seq, pos + nhb_q.mask + 1, memory_order_release);
  return v;
}

static void nhb_mpmc_produce(nhb_state *st, uint64_t rng, size_t max) {
  while (nhb_keep_running(st)) {
    size_t size = (size_t)nhb_rand_range(&rng, NHB_MPMC_MIN, max);
    char *p = malloc(size);
    if (!p) nhb_out_of_memory("mpmc", size);
    p[0] = 1;
    p[size - 1] = 1;
    nhb_mpmc_push(p);
  }
  nhb_set_items(st, nhb_iterations(st));
}

static void nhb_mpmc_consume(nhb_state *st) {
  while (nhb_keep_running(st)) {
    volatile char *p = nhb_mpmc_pop();
    (void)p[0];
    free((void *)p);
  }
}

static void nhb_mpmc(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st), n = nhb_thread_count(st);
  if (n % 2) {
    nhb_error(st, "mpmc needs an even thread count");
    return;
  }
  if (t == 0) nhb_mpmc_init((uint64_t)nhb_range(st, 1));
  if (t < n / 2)
    nhb_mpmc_produce(st, 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1), (size_t)nhb_range(st, 0));
  else
    nhb_mpmc_consume(st);
}

void nhb_register_mpmc(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("mpmc", nhb_mpmc), "max", "cap");
  b = nhb_args2(nhb_args2(b, 64, 256), 64, NHB_MPMC_MAX_CAP);
  b = nhb_args2(nhb_args2(b, 1024, 256), 1024, NHB_MPMC_MAX_CAP);
  nhb_threads(nhb_threads(b, 2), 4);
}
