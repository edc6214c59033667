/*
 * percpu/cache.h: the caches between the API and the node heaps.
 *
 * A cache holds free blocks of one node (the home node of the CPU its thread
 * last allocated on), per size class, refilled from and drained to that
 * node's heap in batches. A block of another node freed here is buffered and
 * sent home in batches (one bin lock per batch, never per free); it is never
 * used to serve this cache's node.
 *
 * Modes ([cache] mode): perthread (one cache per thread, in TLS), off (every
 * request goes to the heap). percpu (restartable sequences) falls back to
 * perthread where rseq is not available.
 *
 * Threads: a cache is touched only by its own thread, except at fork (the
 * child's copy) and nh_cache_reset (tests, no other threads running).
 */
#ifndef NH_PERCPU_CACHE_H
#define NH_PERCPU_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "numa/heap.h"

typedef struct nh_cache_params {
  int mode;            /* NH_CACHE_* of api/options.h */
  size_t bytes;        /* [cache] size: byte budget of one cache */
  int default_level;   /* level of allocations that do not name one */
} nh_cache_params;

/* Sets up the caches (after nh_heaps_init). 0 or -1. */
int nh_cache_init(const nh_cache_params *p);
/* Effective mode (after fallback). */
int nh_cache_mode(void);

/* A block of class cls at level (the cache path; falls back across nodes when
 * the home node cannot). NULL if no node can. */
void *nh_cache_alloc(unsigned cls, int level);
/* Frees block p (validated by the caller) of class cls owned by node. */
void nh_cache_free(void *p, unsigned cls, int node);

/* The CPU the calling thread runs on (or pretends to, in tests). */
int nh_cache_current_cpu(void);
/* The node serving the calling thread now (its CPU's home node). */
int nh_cache_home_node(void);
/* Sends everything the calling thread's cache holds back to the heaps. */
void nh_cache_flush_thread(void);
/* Tests: pretend the calling thread runs on cpu (-1: the real CPU). */
void nh_cache_set_cpu_override(int cpu);
/* Drops every cache's state after nh_heaps_destroy (tests). */
void nh_cache_reset(void);

/* Per-thread cache counters summed over live and exited threads. */
typedef struct nh_cache_stats {
  uint64_t hits, misses, refills, drains, remote_sent, threads;
} nh_cache_stats;
void nh_cache_stats_get(nh_cache_stats *out);

#endif
