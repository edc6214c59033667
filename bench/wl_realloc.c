/*
 * bench/wl_realloc.c: growing a block with realloc.
 *
 * realloc_double doubles a block from 16 bytes up to max (a vector growing
 * geometrically; at 16 MiB past every allocator's large sizes, where growth
 * is a copy or a move of the mapping); realloc_append grows it by 64 bytes
 * at a time (a string built piece by piece), where in-place growth inside a
 * size class or span pays off most. Each step writes the new last byte and checks the first
 * byte survived the move. One item is one realloc call.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

#define NHB_APPEND_STEP 64

static int64_t nhb_grow(size_t max, int doubling) {
  int64_t calls = 0;
  char *p = malloc(16);
  if (!p) nhb_out_of_memory("realloc", 16);
  p[0] = 42;
  for (size_t size = 16; size < max; calls++) {
    size = doubling ? size * 2 : size + NHB_APPEND_STEP;
    if (size > max) size = max;
    char *q = realloc(p, size);
    if (!q) nhb_out_of_memory("realloc", size);
    if (q[0] != 42) {
      fprintf(stderr, "nh_bench: realloc to %zu bytes lost the block's contents\n", size);
      abort();
    }
    q[size - 1] = 1;
    p = q;
  }
  free(p);
  return calls;
}

static void nhb_realloc_run(nhb_state *st, int doubling) {
  if (nhb_check_threads(st)) return;
  size_t max = (size_t)nhb_range(st, 0);
  int64_t calls = 0;
  while (nhb_keep_running(st)) calls += nhb_grow(max, doubling);
  nhb_set_items(st, calls);
}

static void nhb_realloc_double(nhb_state *st) { nhb_realloc_run(st, 1); }
static void nhb_realloc_append(nhb_state *st) { nhb_realloc_run(st, 0); }

void nhb_register_realloc(void) {
  nhb_bench *b = nhb_register("realloc_double", nhb_realloc_double);
  nhb_threads_124(nhb_arg(nhb_arg(nhb_arg(nhb_arg_name(b, "max", NULL), 4096), 1 << 20), 16 << 20));
  b = nhb_register("realloc_append", nhb_realloc_append);
  nhb_threads_124(nhb_arg(nhb_arg(nhb_arg_name(b, "max", NULL), 4096), 65536));
}
