/*
 * bench/wl_glibc_thread.c: glibc's benchtests/bench-malloc-thread.c.
 *
 * Each thread keeps a working set of `ws` pointers (1024 published), all NULL
 * at the start. Every iteration frees the pointer at the next offset of a
 * table of 4 x ws random offsets and mallocs a block whose size is the next
 * of a table of 8000 random sizes from 4 B to 32 KiB with an inverse-square
 * distribution (P(size) ~ 1/size^2: half the blocks under 8 B, mean about
 * 36 B). The two tables are shared by all threads, each thread walking them
 * from the start, as in glibc. The blocks are not written (nor in glibc).
 * One item is one free + malloc.
 *
 * ws:1024 is glibc's working set (about 40 KiB of blocks: the L1/L2 caches
 * hold it); ws:16384 and ws:262144 grow it to about 600 KiB and 10 MB.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>

#define NHB_GT_MIN 4
#define NHB_GT_MAX 32768
#define NHB_GT_SIZES 8000

/* The random tables, built by thread 0 before the start barrier and only
 * read after it. */
static unsigned nhb_gt_size[NHB_GT_SIZES];
static unsigned *nhb_gt_offset;
static int64_t nhb_gt_offsets; /* 4 x ws of the run that built nhb_gt_offset */

/* glibc's get_block_size: inverse transform of the x^-2 density on [min, max]. */
static unsigned nhb_gt_block_size(double r) {
  double lo = 1.0 / NHB_GT_MIN, hi = 1.0 / NHB_GT_MAX;
  return (unsigned)(1.0 / ((hi - lo) * r + lo));
}

static void nhb_gt_tables(int64_t ws) {
  uint64_t rng = 88; /* glibc's RAND_SEED */
  for (int i = 0; i < NHB_GT_SIZES; i++)
    nhb_gt_size[i] = nhb_gt_block_size((double)(nhb_rand(&rng) >> 11) / 9007199254740992.0);
  if (nhb_gt_offsets != 4 * ws) {
    free(nhb_gt_offset);
    nhb_gt_offsets = 4 * ws;
    nhb_gt_offset = malloc((size_t)nhb_gt_offsets * sizeof *nhb_gt_offset);
    if (!nhb_gt_offset) nhb_out_of_memory("glibc_thread tables", (size_t)nhb_gt_offsets * 4);
  }
  for (int64_t i = 0; i < nhb_gt_offsets; i++)
    nhb_gt_offset[i] = (unsigned)(nhb_rand(&rng) % (uint64_t)ws);
}

static void nhb_glibc_thread(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st);
  int64_t ws = nhb_range(st, 0);
  if (t == 0) nhb_gt_tables(ws);
  void **set = calloc((size_t)ws, sizeof *set);
  if (!set) nhb_out_of_memory("glibc_thread working set", (size_t)ws * sizeof *set);
  int64_t off = 0, sz = 0;
  while (nhb_keep_running(st)) {
    unsigned k = nhb_gt_offset[off];
    off = off + 1 == nhb_gt_offsets ? 0 : off + 1;
    unsigned size = nhb_gt_size[sz];
    sz = sz + 1 == NHB_GT_SIZES ? 0 : sz + 1;
    free(set[k]);
    set[k] = malloc(size);
    if (!set[k]) nhb_out_of_memory("glibc_thread", size);
  }
  for (int64_t i = 0; i < ws; i++) free(set[i]);
  free(set);
  nhb_set_items(st, nhb_iterations(st));
}

void nhb_register_glibc_thread(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("glibc_thread", nhb_glibc_thread), "ws", NULL);
  nhb_threads(nhb_threads(nhb_arg(nhb_arg(nhb_arg(b, 1024), 16384), 262144), 1), 2);
}
