/*
 * bench/wl_pystart.c: the malloc calls of a real program's start, replayed:
 * CPython 3.11 starting and exiting (`python3.11 -c pass`), from
 * bench/trace_pystart.inc (issue 14: a small program's footprint, with the
 * sizes and lifetimes of a real one).
 *
 * What it shows: CPython's own small-object allocator takes objects up to
 * 512 B, so malloc sees mostly 513 B-8 KiB blocks, and, for every module it
 * imports, the whole .pyc file read into a buffer of its exact size (16-210
 * KiB), shrunk by a byte and freed. Each such buffer lands in another size
 * class; an allocator that reuses freed memory only within a class keeps
 * each of them resident, where one that merges free memory (glibc) reads
 * every file into the same pages.
 *
 * pystart: each iteration replays the 6319 calls in order, writing every
 * byte of each new block (and of a realloc's new tail), then frees what the
 * trace left live (430 KiB). One item is one replay. `rss_hold` is the
 * resident set at the call where the trace's live bytes peak (2.0 MiB), the
 * largest over the iterations; the family's peak RSS in compare.py's table
 * is the process's, which adds the harness's own 15 MiB.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

typedef struct nhb_trace_op {
  uint8_t kind; /* 1 malloc, 2 free, 3 realloc */
  uint32_t size;
  uint16_t slot;
} nhb_trace_op;

static const nhb_trace_op nhb_pystart_ops[] = {
#include "trace_pystart.inc"
};
#define NHB_PYSTART_OPS (sizeof nhb_pystart_ops / sizeof nhb_pystart_ops[0])
#define NHB_PYSTART_SLOTS 2048

/* The index of the call after which the trace's live bytes peak. */
static size_t nhb_pystart_peak_at(void) {
  static uint32_t size[NHB_PYSTART_SLOTS];
  uint64_t live = 0, peak = 0;
  size_t at = 0;
  for (size_t i = 0; i < NHB_PYSTART_OPS; i++) {
    const nhb_trace_op *op = &nhb_pystart_ops[i];
    if (op->kind == 2) live -= size[op->slot];
    else live += op->size - (op->kind == 3 ? size[op->slot] : 0);
    size[op->slot] = op->kind == 2 ? 0 : op->size;
    if (live > peak) peak = live, at = i;
  }
  return at;
}

static void nhb_pystart(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  static char *slot[NHB_PYSTART_SLOTS];
  static uint32_t size[NHB_PYSTART_SLOTS];
  size_t peak_at = nhb_pystart_peak_at();
  double hold = 0;
  while (nhb_keep_running(st)) {
    for (size_t i = 0; i < NHB_PYSTART_OPS; i++) {
      const nhb_trace_op *op = &nhb_pystart_ops[i];
      uint16_t s = op->slot;
      if (op->kind == 1) {
        slot[s] = malloc(op->size ? op->size : 1);
        if (!slot[s]) nhb_out_of_memory("pystart", op->size);
        memset(slot[s], 0x5a, op->size);
        size[s] = op->size;
      } else if (op->kind == 2) {
        free(slot[s]);
        slot[s] = NULL;
      } else {
        char *q = realloc(slot[s], op->size ? op->size : 1);
        if (!q) nhb_out_of_memory("pystart", op->size);
        if (op->size > size[s]) memset(q + size[s], 0x5a, op->size - size[s]);
        slot[s] = q;
        size[s] = op->size;
      }
      if (i == peak_at) {
        double rss = (double)nhb_rss_now();
        if (rss > hold) hold = rss;
      }
    }
    for (size_t s = 0; s < NHB_PYSTART_SLOTS; s++) free(slot[s]), slot[s] = NULL;
  }
  nhb_set_items(st, nhb_iterations(st));
  nhb_counter(st, "rss_hold", hold, NHB_COUNTER_BYTES);
}

void nhb_register_pystart(void) { nhb_register("pystart", nhb_pystart); }
