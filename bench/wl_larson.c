/*
 * bench/wl_larson.c: a server in the style of Larson and Krishnan's benchmark
 * (our own variant, with long-lived threads that hand blocks to each other;
 * their benchmark itself, with its parameters, is wl_larson_classic.c).
 *
 * Each thread keeps NHB_LARSON_SLOTS live blocks of random sizes. Every
 * iteration it replaces one random block (free, then malloc a new size).
 * Every NHB_LARSON_EVERY iterations it hands NHB_LARSON_BATCH of its blocks to
 * the next thread (a lock-free list per thread, pushed with CAS and taken
 * whole with an exchange, so no ABA) and frees every block other threads
 * handed to it. So most frees are local, and a steady share are blocks that
 * another thread allocated, as in a server whose requests move between
 * worker threads. One item is one malloc (and, in the steady state, one free).
 *
 * The hand-off is bounded: while the next thread has NHB_LARSON_BACKLOG
 * blocks or more waiting (it was descheduled: the machine has fewer free
 * CPUs than threads), a thread frees the batch itself instead of handing it
 * on. Unbounded, the lists grew to tens of MB whenever a receiver slept, and
 * the peak RSS measured the scheduler, not the allocator (35-380 MB run to
 * run with one build). The counter `skipped` says how often it happened.
 */
#include "bench.h"

#include <stdatomic.h>
#include <stdlib.h>

#define NHB_LARSON_SLOTS 1000
#define NHB_LARSON_EVERY 256
#define NHB_LARSON_BATCH 16
#define NHB_LARSON_MIN 16 /* a block must hold the list link */
#define NHB_LARSON_MAX 1024
/* Blocks waiting for a thread beyond which hand-offs to it are freed locally
 * (64 batches: a receiver that runs at all keeps far below it). */
#define NHB_LARSON_BACKLOG (64 * NHB_LARSON_BATCH)

struct nhb_larson_block {
  struct nhb_larson_block *next;
};

/* One thread's state, padded against false sharing between threads. */
struct nhb_larson_thread {
  /* Synchronization: atomic. Blocks handed to this thread: pushed by the
   * previous thread (CAS, release), taken by this one (exchange, acquire). */
  _Atomic(struct nhb_larson_block *) inbox;
  /* Synchronization: atomic, relaxed (a bound, not a guard). Blocks pushed
   * to inbox and not yet freed: added by the sender, taken off by this
   * thread after it frees them. */
  _Atomic int64_t waiting;
  char pad[NHB_LINE - sizeof(void *) - sizeof(int64_t)];
  /* Owned by this thread alone. */
  void *slot[NHB_LARSON_SLOTS];
  uint64_t rng;
} __attribute__((aligned(NHB_LINE)));

static struct nhb_larson_thread nhb_larson[NHB_MAX_THREADS];

static void *nhb_larson_alloc(uint64_t *rng) {
  size_t size = (size_t)nhb_rand_range(rng, NHB_LARSON_MIN, NHB_LARSON_MAX);
  char *p = malloc(size);
  if (!p) nhb_out_of_memory("larson", size);
  p[size - 1] = 1;
  return p;
}

static void nhb_larson_push(struct nhb_larson_thread *to, struct nhb_larson_block *first,
                            struct nhb_larson_block *last) {
  struct nhb_larson_block *head = atomic_load_explicit(&to->inbox, memory_order_relaxed);
  do {
    last->next = head;
    /* release: pairs with the acquire exchange in nhb_larson_drain, so the
     * receiver sees the links written above. */
  } while (!atomic_compare_exchange_weak_explicit(&to->inbox, &head, first,
                                                  memory_order_release, memory_order_relaxed));
}

static int64_t nhb_larson_drain(struct nhb_larson_thread *me) {
  int64_t n = 0;
  struct nhb_larson_block *b = atomic_exchange_explicit(&me->inbox, NULL, memory_order_acquire);
  while (b) {
    struct nhb_larson_block *next = b->next;
    free(b);
    b = next;
    n++;
  }
  atomic_fetch_sub_explicit(&me->waiting, n, memory_order_relaxed);
  return n;
}

/* Moves NHB_LARSON_BATCH random blocks to @p to, refilling their slots; frees
 * them here instead while @p to has its backlog. Returns 1 when it did. */
static int nhb_larson_hand_off(struct nhb_larson_thread *me, struct nhb_larson_thread *to) {
  struct nhb_larson_block *first = NULL, *last = NULL;
  for (int i = 0; i < NHB_LARSON_BATCH; i++) {
    size_t k = (size_t)nhb_rand_range(&me->rng, 0, NHB_LARSON_SLOTS - 1);
    struct nhb_larson_block *b = me->slot[k];
    b->next = first;
    first = b;
    if (!last) last = b;
    me->slot[k] = nhb_larson_alloc(&me->rng);
  }
  if (atomic_load_explicit(&to->waiting, memory_order_relaxed) >= NHB_LARSON_BACKLOG) {
    while (first) {
      struct nhb_larson_block *next = first->next;
      free(first);
      first = next;
    }
    return 1;
  }
  atomic_fetch_add_explicit(&to->waiting, NHB_LARSON_BATCH, memory_order_relaxed);
  nhb_larson_push(to, first, last);
  return 0;
}

static void nhb_larson_run(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st), n = nhb_thread_count(st);
  struct nhb_larson_thread *me = &nhb_larson[t], *next = &nhb_larson[(t + 1) % n];
  me->rng = 0xD1B54A32D192ED03ULL * (uint64_t)(t + 1);
  for (int i = 0; i < NHB_LARSON_SLOTS; i++) me->slot[i] = nhb_larson_alloc(&me->rng);
  int64_t allocs = 0, i = 0, skipped = 0;
  while (nhb_keep_running(st)) {
    size_t k = (size_t)nhb_rand_range(&me->rng, 0, NHB_LARSON_SLOTS - 1);
    free(me->slot[k]);
    me->slot[k] = nhb_larson_alloc(&me->rng);
    allocs++;
    if (++i % NHB_LARSON_EVERY) continue;
    skipped += nhb_larson_hand_off(me, next);
    allocs += NHB_LARSON_BATCH;
    nhb_larson_drain(me);
  }
  /* After the end barrier no thread pushes any more. */
  nhb_larson_drain(me);
  for (int s = 0; s < NHB_LARSON_SLOTS; s++) free(me->slot[s]);
  nhb_set_items(st, allocs);
  nhb_counter(st, "skipped", (double)skipped, NHB_COUNTER_PLAIN);
}

void nhb_register_larson(void) {
  nhb_threads_124(nhb_register("larson", nhb_larson_run));
}
