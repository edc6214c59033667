/*
 * bench/wl_cache.c: false sharing, after Hoard's cache-thrash and
 * cache-scratch.
 *
 * cache_thrash (active false sharing): every thread mallocs a small object,
 * writes each of its bytes NHB_CACHE_WRITES times, and frees it. An
 * allocator that hands objects from one cache line to different threads makes
 * those writes fight over the line, and the time per iteration grows with the
 * thread count instead of staying flat.
 *
 * cache_scratch (passive false sharing): thread 0 mallocs one small object per
 * thread, side by side, and hands them out; each thread frees the one it got
 * and then runs the same loop as cache_thrash. An allocator that gives the
 * freed object back to the thread that freed it reuses thread 0's cache
 * lines in every thread.
 *
 * One item is one malloc, NHB_CACHE_WRITES x size byte writes, one free.
 */
#include "bench.h"

#include <stdlib.h>

#define NHB_CACHE_WRITES 256

/* The objects thread 0 hands out in cache_scratch. Written by thread 0 before
 * the start barrier, read by thread t after it. */
static char *nhb_scratch_handed[NHB_MAX_THREADS];

static void nhb_cache_work(size_t size) {
  char *p = malloc(size);
  if (!p) nhb_out_of_memory("cache", size);
  volatile char *c = p;
  for (int r = 0; r < NHB_CACHE_WRITES; r++)
    for (size_t j = 0; j < size; j++) c[j] = (char)(c[j] + 1);
  free(p);
}

static void nhb_cache_thrash(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  size_t size = (size_t)nhb_range(st, 0);
  while (nhb_keep_running(st)) nhb_cache_work(size);
  nhb_set_items(st, nhb_iterations(st));
}

static void nhb_scratch_hand_out(int threads, size_t size) {
  for (int t = 0; t < threads; t++) {
    nhb_scratch_handed[t] = malloc(size);
    if (!nhb_scratch_handed[t]) nhb_out_of_memory("cache_scratch", size);
    nhb_scratch_handed[t][0] = 0;
  }
}

static void nhb_cache_scratch(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st);
  size_t size = (size_t)nhb_range(st, 0);
  if (t == 0) nhb_scratch_hand_out(nhb_thread_count(st), size);
  int first = 1;
  while (nhb_keep_running(st)) {
    if (first) {
      free(nhb_scratch_handed[t]);
      first = 0;
    }
    nhb_cache_work(size);
  }
  if (first) free(nhb_scratch_handed[t]); /* the loop ran no iteration */
  nhb_set_items(st, nhb_iterations(st));
}

void nhb_register_cache(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("cache_thrash", nhb_cache_thrash), "size", NULL);
  nhb_threads_124(nhb_arg(nhb_arg(b, 8), 24));
  b = nhb_arg_name(nhb_register("cache_scratch", nhb_cache_scratch), "size", NULL);
  nhb_threads_124(nhb_arg(nhb_arg(b, 8), 24));
}
