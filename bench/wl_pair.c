/*
 * bench/wl_pair.c: one malloc and one free per iteration, per size.
 *
 * The fastest path of an allocator: a block freed is the next one handed out.
 * Sizes run from 8 B to 1 MiB in powers of two plus a few sizes between
 * classes. The block's first and last bytes are written so that large blocks
 * are really mapped (one page each, not the whole block).
 */
#include "bench.h"

#include <stdlib.h>

static void nhb_pair(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  size_t size = (size_t)nhb_range(st, 0);
  while (nhb_keep_running(st)) {
    char *p = malloc(size);
    if (!p) nhb_out_of_memory("pair", size);
    p[0] = 1;
    p[size - 1] = 1;
    nhb_escape(p);
    free(p);
  }
  nhb_set_items(st, nhb_iterations(st));
}

void nhb_register_pair(void) {
  /* powers of two, with 24, 48, 100, 1000, 3000 and 40000 between them */
  static const int64_t sizes[] = {8,     16,    24,    32,     48,     64,     100,    128,
                                  256,   512,   1000,  1024,   2048,   3000,   4096,   8192,
                                  16384, 32768, 40000, 65536,  131072, 262144, 524288, 1048576};
  nhb_bench *b = nhb_arg_name(nhb_register("pair", nhb_pair), "size", NULL);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) nhb_arg(b, sizes[i]);
  nhb_threads_124(b);
}
