/*
 * bench/pair_inline.c: cost of a small malloc+free pair, glibc against
 * numaheap's percpu and perthread caches, in one run (docs/percpu.md).
 * Usage: nh_pair_inline [iterations]; prints the fastest chunk of 1024
 * pairs. Linked with numaheap's internals (nh_core) to switch cache modes in
 * one process; the side-by-side harness with the peers is nh_bench.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"
#include "api/options.h"
#include "numaheap/numaheap.h"
#include "percpu/cache.h"

#define DEPTH 64

static void escape(void *p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct alloc_ops {
  const char *name;
  void *(*alloc)(size_t);
  void (*release)(void *);
} alloc_ops;

/* ns per pair: malloc then free at once, and DEPTH mallocs then DEPTH frees.
 * Timed in chunks of CHUNK pairs; the fastest chunk counts, so that the
 * numbers hold on a shared machine (a preempted chunk is just slower). */
#define CHUNK 1024
static void run(const alloc_ops *a, size_t size, long iters, double *pair, double *burst) {
  void *v[DEPTH];
  for (long i = 0; i < 1000; i++) a->release(a->alloc(size)); /* warm */
  *pair = *burst = 1e30;
  for (long c = 0; c < iters / CHUNK; c++) {
    double t0 = now_ns();
    for (int i = 0; i < CHUNK; i++) {
      void *p = a->alloc(size);
      escape(p);
      a->release(p);
    }
    double t1 = now_ns();
    for (int i = 0; i < CHUNK / DEPTH; i++) {
      for (int k = 0; k < DEPTH; k++) escape(v[k] = a->alloc(size));
      for (int k = DEPTH - 1; k >= 0; k--) a->release(v[k]);
    }
    double t2 = now_ns();
    if ((t1 - t0) / CHUNK < *pair) *pair = (t1 - t0) / CHUNK;
    if ((t2 - t1) / CHUNK < *burst) *burst = (t2 - t1) / CHUNK;
  }
}

static int start_mode(const char *mode) {
  static nh_config cfg;
  char err[600];
  nh_config_defaults(&cfg);
  if (nh_config_set(&cfg, "cache", "mode", mode, err, sizeof err) != 0 ||
      nh_reinit(&cfg, err, sizeof err) != 0) {
    fprintf(stderr, "nh_pair_inline: %s\n", err);
    return -1;
  }
  return 0;
}

/* The cache layer alone (what percpu/ adds below the API's lookup). */
static size_t cache_size;
static void *cache_alloc(size_t size) {
  (void)size;
  return nh_cache_alloc(nh_size_class(cache_size), 1);
}
static void cache_free(void *p) { nh_cache_free(p, nh_size_class(cache_size), 0); }

int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 5000000;
  if (iters < CHUNK) {
    fprintf(stderr, "usage: nh_pair_inline [iterations >= %d]\n", CHUNK);
    return 2;
  }
  static const size_t sizes[] = {8, 16, 32, 64, 128, 256, 512, 1024};
  const alloc_ops glibc = {"glibc", malloc, free};
  const alloc_ops nh = {"numaheap", nh_malloc, nh_free};
  const char *modes[] = {"percpu", "perthread"};
  printf("%-6s %-22s %10s %10s\n", "size", "allocator", "pair ns", "burst ns");
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    double pair, burst;
    run(&glibc, sizes[s], iters, &pair, &burst);
    printf("%-6zu %-22s %10.2f %10.2f\n", sizes[s], "glibc", pair, burst);
    for (int m = 0; m < 2; m++) {
      if (start_mode(modes[m]) != 0) return 1;
      char name[40];
      snprintf(name, sizeof name, "numaheap %s%s", modes[m],
               m == 0 && nh_cache_mode() != NH_CACHE_PERCPU ? " (fell back)" : "");
      run(&nh, sizes[s], iters, &pair, &burst);
      printf("%-6zu %-22s %10.2f %10.2f\n", sizes[s], name, pair, burst);
      const alloc_ops cache = {"cache", cache_alloc, cache_free};
      cache_size = sizes[s];
      run(&cache, sizes[s], iters, &pair, &burst);
      snprintf(name, sizeof name, "  cache layer %s", modes[m]);
      printf("%-6zu %-22s %10.2f %10.2f\n", sizes[s], name, pair, burst);
    }
  }
  return 0;
}
