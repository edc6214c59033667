/*
 * bench/wl_batch.c: allocate N blocks, then free all N.
 *
 * Unlike the pair workload, the free lists empty and fill again every
 * iteration, so refills from the shared heap, span/page turnover and the
 * order of frees show. Three orders: in allocation order (fifo), reverse
 * (lifo), and a fixed random permutation (shuffled), which scatters frees
 * over many pages. One item is one malloc plus one free.
 */
#include "bench.h"

#include <stdlib.h>

#define NHB_BATCH_MAX 50000

enum nhb_order { NHB_FIFO, NHB_LIFO, NHB_SHUFFLED };

/* Per-thread arrays, preallocated so the loop allocates nothing else.
 * Guarded by: owned by benchmark thread [t] alone. */
static void *nhb_batch_ptr[NHB_MAX_THREADS][NHB_BATCH_MAX];
static uint32_t nhb_batch_order[NHB_MAX_THREADS][NHB_BATCH_MAX];

static void nhb_batch_make_order(uint32_t *order, uint32_t n, enum nhb_order kind, uint64_t seed) {
  for (uint32_t i = 0; i < n; i++) order[i] = kind == NHB_LIFO ? n - 1 - i : i;
  if (kind != NHB_SHUFFLED) return;
  for (uint32_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    uint32_t j = (uint32_t)nhb_rand_range(&seed, 0, i);
    uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

static void nhb_batch(nhb_state *st, enum nhb_order kind) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st);
  uint32_t n = (uint32_t)nhb_range(st, 0);
  size_t size = (size_t)nhb_range(st, 1);
  void **ptr = nhb_batch_ptr[t];
  uint32_t *order = nhb_batch_order[t];
  nhb_batch_make_order(order, n, kind, 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1));
  while (nhb_keep_running(st)) {
    for (uint32_t i = 0; i < n; i++) {
      char *p = malloc(size);
      if (!p) nhb_out_of_memory("batch", size);
      p[0] = (char)i;
      ptr[i] = p;
    }
    for (uint32_t i = 0; i < n; i++) free(ptr[order[i]]);
  }
  nhb_set_items(st, nhb_iterations(st) * (int64_t)n);
}

static void nhb_batch_fifo(nhb_state *st) { nhb_batch(st, NHB_FIFO); }
static void nhb_batch_lifo(nhb_state *st) { nhb_batch(st, NHB_LIFO); }
static void nhb_batch_shuffled(nhb_state *st) { nhb_batch(st, NHB_SHUFFLED); }

static void nhb_batch_args(nhb_bench *b) {
  static const int64_t counts[] = {1000, NHB_BATCH_MAX};
  static const int64_t sizes[] = {32, 256};
  nhb_arg_name(b, "n", "size");
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) nhb_args2(b, counts[i], sizes[j]);
  nhb_threads_124(b);
}

void nhb_register_batch(void) {
  nhb_batch_args(nhb_unit_us(nhb_register("batch_fifo", nhb_batch_fifo)));
  nhb_batch_args(nhb_unit_us(nhb_register("batch_lifo", nhb_batch_lifo)));
  nhb_batch_args(nhb_unit_us(nhb_register("batch_shuffled", nhb_batch_shuffled)));
}
