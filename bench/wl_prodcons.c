/*
 * bench/wl_prodcons.c: producer/consumer, every free remote.
 *
 * Threads work in pairs: the even thread of a pair allocates a block, writes
 * it and pushes it into a bounded single-producer/single-consumer lock-free
 * ring; the odd thread pops it, reads it and frees it. The producer is pinned
 * to one CPU and the consumer to the next (mod the CPUs we may use), so every
 * free happens on another CPU than the malloc: the allocator's remote-free
 * path and the cache-line traffic of its metadata. Both threads of a pair run
 * the same number of iterations (Google Benchmark gives every thread the same
 * count), so every pushed block is popped. One item is one block passed.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define NHB_RING_SIZE 256 /* power of two */

/* One pair's ring. head and tail only grow; the ring is empty when equal. */
struct nhb_ring {
  /* Synchronization: atomic. Written by the producer (release), read by the
   * consumer (acquire): slots below head are filled. */
  _Atomic uint64_t head __attribute__((aligned(NHB_LINE)));
  /* Synchronization: atomic. Written by the consumer (release), read by the
   * producer (acquire): slots below tail are free again. */
  _Atomic uint64_t tail __attribute__((aligned(NHB_LINE)));
  /* Slot i % NHB_RING_SIZE is the producer's until head passes i, then the
   * consumer's until tail passes i. */
  void *slot[NHB_RING_SIZE] __attribute__((aligned(NHB_LINE)));
};

static struct nhb_ring nhb_rings[NHB_MAX_THREADS / 2];

static void nhb_spin(unsigned *tries) {
  if (++*tries % 64 == 0)
    sched_yield(); /* the other side may share our CPU */
  else
    __builtin_ia32_pause();
}

static void nhb_ring_push(struct nhb_ring *r, void *p) {
  uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed); /* ours */
  unsigned tries = 0;
  /* acquire: pairs with the consumer's release of tail, so its read of the
   * slot we are about to overwrite is done. */
  while (h - atomic_load_explicit(&r->tail, memory_order_acquire) == NHB_RING_SIZE)
    nhb_spin(&tries);
  r->slot[h % NHB_RING_SIZE] = p;
  /* release: pairs with the consumer's acquire of head; publishes the slot. */
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

static void *nhb_ring_pop(struct nhb_ring *r) {
  uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed); /* ours */
  unsigned tries = 0;
  /* acquire: pairs with the producer's release of head. */
  while (atomic_load_explicit(&r->head, memory_order_acquire) == t) nhb_spin(&tries);
  void *p = r->slot[t % NHB_RING_SIZE];
  /* release: pairs with the producer's acquire of tail; the slot is free. */
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
  return p;
}

static void nhb_produce(nhb_state *st, struct nhb_ring *r, size_t size) {
  while (nhb_keep_running(st)) {
    char *p = malloc(size);
    if (!p) nhb_out_of_memory("prodcons", size);
    p[0] = 1;
    p[size - 1] = 1;
    nhb_ring_push(r, p);
  }
  nhb_set_items(st, nhb_iterations(st));
}

static void nhb_consume(nhb_state *st, struct nhb_ring *r) {
  while (nhb_keep_running(st)) {
    char *p = nhb_ring_pop(r);
    nhb_escape(p);
    free(p);
  }
}

static void nhb_prodcons(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  if (nhb_thread_count(st) % 2) {
    nhb_error(st, "prodcons needs an even thread count");
    return;
  }
  int t = nhb_thread_index(st);
  nhb_affinity saved;
  int pinned = nhb_pin(t, &saved) == 0;
  struct nhb_ring *r = &nhb_rings[t / 2];
  if (t % 2 == 0)
    nhb_produce(st, r, (size_t)nhb_range(st, 0));
  else
    nhb_consume(st, r);
  if (pinned) nhb_unpin(&saved);
}

void nhb_register_prodcons(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("prodcons", nhb_prodcons), "size", NULL);
  nhb_threads(nhb_threads(nhb_arg(nhb_arg(nhb_arg(b, 16), 256), 4096), 2), 4);
}
