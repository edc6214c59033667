/*
 * bench/wl_large.c: large blocks replaced at random (issue 14).
 *
 * Each thread keeps 20 buffers of 5..25 MiB (uniform), all empty at first,
 * and replaces a random one per iteration: free the old buffer, malloc a new
 * size, zero-fill it with memset. The published version (mimalloc-bench's
 * malloc-large) makes 2000 replacements; here an instance makes exactly 100
 * (a twentieth, so that one instance takes about a second even where every
 * buffer is freshly mapped: each memset writes
 * 15 MiB on average, and every fresh page faults). What it measures is large
 * block reuse: an allocator that maps and unmaps every buffer pays the page
 * faults of every memset, one that keeps freed ranges mapped does not.
 * max_kib:25600 is the published range; max_kib:2560 the same scaled down
 * tenfold (0.5..2.5 MiB), where a per-block map/unmap costs relatively more,
 * run a second time with the published 2000 replacements: 100 measure
 * mostly the twenty first mallocs, which every allocator must fault in,
 * 2000 the reuse of freed ranges that follows.
 * One item is one replacement (free + malloc + memset).
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#define NHB_LG_LIVE 20
#define NHB_LG_REPLACE 100
#define NHB_LG_PUBLISHED 2000

static struct {
  char *buf[NHB_LG_LIVE];
  uint64_t rng;
} __attribute__((aligned(NHB_LINE))) nhb_lg[NHB_MAX_THREADS];

static void nhb_large(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st);
  size_t max = (size_t)nhb_range(st, 0) << 10, min = max / 5;
  char **buf = nhb_lg[t].buf;
  uint64_t *rng = &nhb_lg[t].rng;
  *rng = 0xA0761D6478BD642FULL * (uint64_t)(t + 1);
  while (nhb_keep_running(st)) {
    size_t k = (size_t)nhb_rand_range(rng, 0, NHB_LG_LIVE - 1);
    size_t size = (size_t)nhb_rand_range(rng, min, max);
    free(buf[k]);
    buf[k] = malloc(size);
    if (!buf[k]) nhb_out_of_memory("large", size);
    nhb_escape(buf[k]); /* or the compiler makes malloc + memset a calloc */
    memset(buf[k], 0, size);
    nhb_escape(buf[k]);
  }
  for (int i = 0; i < NHB_LG_LIVE; i++) {
    free(buf[i]);
    buf[i] = NULL;
  }
  nhb_set_items(st, nhb_iterations(st));
}

void nhb_register_large(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("large", nhb_large), "max_kib", NULL);
  b = nhb_fixed_iterations(nhb_unit_ms(nhb_arg(nhb_arg(b, 25600), 2560)), NHB_LG_REPLACE);
  nhb_threads(nhb_threads(b, 1), 2);
  /* the published 2000 replacements, at the scaled-down sizes: after the
   * first twenty, the steady state of a process that keeps replacing */
  b = nhb_arg_name(nhb_register("large", nhb_large), "max_kib", NULL);
  b = nhb_fixed_iterations(nhb_unit_ms(nhb_arg(b, 2560)), NHB_LG_PUBLISHED);
  nhb_threads(nhb_threads(b, 1), 2);
}
