/*
 * percpu/cache.h: the caches between the API and the node heaps (design:
 * docs/percpu.md).
 *
 * A cache holds free blocks of one node, per size class, refilled from and
 * drained to that node's heap in batches. A block of another node freed here
 * is buffered and sent home in batches (one bin lock per batch, never per
 * free); it is never used to serve this cache's node.
 *
 * Modes ([cache] mode):
 *   percpu     one cache per possible CPU (percpu/pcpu.c), holding blocks of
 *              that CPU's node; pushes and pops are restartable sequences
 *              (Linux rseq) on the area glibc registers: no lock, no atomic.
 *              Falls back to perthread where rseq or membarrier's rseq fence
 *              is missing. A thread with a CPU override uses a per-thread
 *              cache bound to the overridden CPU's node.
 *   perthread  one cache per thread, in TLS (percpu/tcache.c).
 *   off        every request goes to the heap.
 *
 * Threads: a per-thread cache is touched only by its thread, except at fork
 * (the child's copy) and nh_cache_reset (tests, no other threads running).
 * A per-CPU cache is touched by restartable sequences of threads running on
 * its CPU, and by a drainer holding its lock after stopping it (pcpu.c).
 */
#ifndef NH_PERCPU_CACHE_H
#define NH_PERCPU_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "numa/heap.h"
#include "percpu/rseq.h"

#if defined(__SANITIZE_THREAD__) /* TSan's own (default visibility: not in the push below) */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#endif

#pragma GCC visibility push(hidden)

/* Cache modes (the API maps the [cache] mode key onto these). */
enum { NH_CACHE_PERCPU = 0, NH_CACHE_PERTHREAD = 1, NH_CACHE_OFF = 2 };

typedef struct nh_cache_params {
  int mode;            /* NH_CACHE_* */
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
/* What the inline fast paths fall back to when the gate is open: a miss
 * (the slab was empty) and a push that failed (p already marked). */
void *nh_cache_alloc_slow(unsigned cls, int level);
void nh_cache_free_slow(void *p, unsigned cls, int node);

/* The CPU the calling thread runs on (or pretends to, in tests). */
int nh_cache_current_cpu(void);
/* The node serving the calling thread now (its CPU's home node). */
int nh_cache_home_node(void);
/* Sends everything the calling thread's cache holds back to the heaps; in
 * percpu mode also every CPU's cache (it is the reclaim hook and nh_trim's). */
void nh_cache_flush_thread(void);
/* fork (api/init.c's handlers; added by the drop-in engineer, issue 5): take
 * every CPU's drain lock before the heaps' locks (a drainer holds its CPU's
 * lock while it calls into the heaps), so that no drain is half done in the
 * child: a block already given to its heap but still counted in the slab
 * would be handed out twice there. The child's side is nh_cache_postfork_child. */
void nh_cache_prefork(void);
void nh_cache_postfork_parent(void);
/* The fork child's side, first among the child's handlers (api/init.c),
 * before any that may allocate: the locks of the caches (whose owners are
 * gone) unlocked, and CPUs a drainer had stopped restarted. */
void nh_cache_postfork_child(void);
/* Tests: pretend the calling thread runs on cpu (-1: the real CPU). */
void nh_cache_set_cpu_override(int cpu);
/* Drops every cache's state after nh_heaps_destroy (tests). */
void nh_cache_reset(void);

/* Cache counters: per-thread caches (of live threads: the caller's only;
 * plus every exited thread) and every per-CPU cache, summed racily. */
typedef struct nh_cache_stats {
  uint64_t hits, misses, refills, drains, remote_sent, threads;
  uint64_t cpus;        /* per-CPU caches (percpu mode), 0 otherwise */
  uint64_t idle_drains; /* per-CPU caches drained because they sat idle */
} nh_cache_stats;
void nh_cache_stats_get(nh_cache_stats *out);

/* One CPU's cache (percpu mode). Counters are updated by that CPU (hits in
 * the pop sequence, the rest in slow paths) and read racily here. */
typedef struct nh_cache_cpu_stats {
  int node;              /* node whose blocks the cache holds */
  uint64_t hits;         /* pops that found a block */
  uint64_t misses;       /* allocations that found the slab empty */
  uint64_t refills;      /* batches taken from the node's heap */
  uint64_t drains;       /* batches given back (overflow, trim, idle) */
  uint64_t remote_sent;  /* blocks of other nodes sent home */
  uint64_t idle_drains;  /* times the whole cache went back for idleness */
  uint64_t blocks;       /* blocks held now */
  uint64_t bytes;        /* their bytes */
  uint64_t capacity_bytes; /* slots the CPU's classes may fill, in bytes (<= [cache] size) */
  uint64_t steals;       /* classes that gave capacity to another class of the CPU */
} nh_cache_cpu_stats;
/* Number of per-CPU caches (CPU ids 0..n-1), 0 unless the mode is percpu. */
int nh_cache_cpu_count(void);
/* 0, or -1 when cpu has no per-CPU cache. */
int nh_cache_cpu_stats_get(int cpu, nh_cache_cpu_stats *out);

/* 1 once cpu's cache is set up (the first slow path of a thread on it: a
 * CPU nothing ran on costs no memory), 0 before, -1 when cpu has no per-CPU
 * cache. */
int nh_cache_cpu_ready(int cpu);

/* A per-CPU cache untouched by slow paths for two periods of ms (default
 * 1000) is drained back to its node by the next slow path that looks
 * (at most once a period) or by nh_trim. 0: never. Tests shorten it. */
void nh_cache_set_idle_ms(uint64_t ms);

/* ---- the inline fast paths (used by api/internal.h) -----------------------------
 * While the gate is open, a small malloc is one restartable pop from the
 * current CPU's slab and a free of a small block one restartable push;
 * anything unusual (an empty or full slab, a block of another node, a
 * stopped CPU) returns false/NULL and the caller takes the full path, which
 * is nh_cache_alloc / nh_cache_free. */

/* Sizes below nh_cache_fast_end take the fast paths: NH_SMALL_MAX + 1 while
 * the percpu mode runs on plain heaps (no paranoid mode, no ASan/Valgrind
 * tracking) and no thread has a CPU override; 0 otherwise. Synchronization:
 * atomic; stored with release by nh_cache_fast_open and the overrides after
 * everything the fast paths read is built, loaded with acquire. */
extern _Atomic size_t nh_cache_fast_end;
/* The same gate for free: NH_SEGMAP_SLOTS while open, 0 otherwise (the
 * segment map entries nh_block_lookup_small may use: one compare checks the
 * gate and the pointer's 48 bits at once). Same synchronization. */
extern _Atomic size_t nh_cache_fast_segs;
/* Opens (plain != 0) or closes the gate: the API calls it once the heaps are
 * ready, and before/after it rebuilds them. */
void nh_cache_fast_open(int plain);

/* TSan cannot see the hand-over of a block through the rseq slabs (inline
 * asm): tell it, so that the writes of the thread that freed a block and of
 * the thread that gets it next are ordered. Nothing in other builds. */
static inline void nh_tsan_acquire(void *p) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(p);
#else
  (void)p;
#endif
}
static inline void nh_tsan_release(void *p) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(p);
#else
  (void)p;
#endif
}

/* A block of class cls from the current CPU's slab, its marks checked and
 * cleared; NULL when the slab is empty or stopped. Gate open only. */
static inline void *nh_cache_pop_fast(unsigned cls) {
  void *p = nh_rseq_pop(cls);
  if (__builtin_expect(p == NULL, 0)) return NULL;
  nh_tsan_acquire(p);
  nh_block_handout(p); /* a block without its cached key stops the process */
  return p;
}

/* Puts block p (of class cls owned by node, checked by the caller) on the
 * current CPU's slab, writing its cached key without reading the block: 1
 * done; 0 when the CPU holds another node's blocks, or the slab is full or
 * stopped (p is then marked but not cached: the full path frees it); -1
 * when p is already the slab's top block (freed twice; it stays cached
 * once). Gate open only. */
static inline int nh_cache_push_fast(void *p, unsigned cls, int node) {
  nh_block_mark_cached(p);
  nh_tsan_release(p);
  return nh_rseq_push(p, cls, node);
}

#pragma GCC visibility pop

#endif
