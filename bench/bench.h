/*
 * bench/bench.h: what the workload files share, grouped by defining file.
 *
 * Workloads call plain malloc/free/realloc so that one binary measures any
 * allocator put in front of glibc with LD_PRELOAD. Per-thread state lives in
 * static arrays indexed by the benchmark thread index (at most
 * NHB_MAX_THREADS), padded to NHB_LINE bytes so the harness itself adds no
 * false sharing.
 */
#ifndef NHB_BENCH_H
#define NHB_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "shim.h"

#define NHB_MAX_THREADS 4
#define NHB_LINE 128 /* two cache lines: adjacent-line prefetch pairs them */

/** Keeps the compiler from dropping a malloc/free pair or a store to @p p. */
static inline void nhb_escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

/** Writes one byte to each page of [p, p+size) so the memory is really used. */
static inline void nhb_touch(void *p, size_t size) {
  volatile char *c = (volatile char *)p;
  for (size_t i = 0; i < size; i += 4096) c[i] = (char)i;
  if (size) c[size - 1] = 1;
}

/** xorshift64*: a small deterministic generator, one per thread. */
static inline uint64_t nhb_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/** Uniform integer in [lo, hi]. */
static inline uint64_t nhb_rand_range(uint64_t *s, uint64_t lo, uint64_t hi) {
  return lo + nhb_rand(s) % (hi - lo + 1);
}

/* ---- util.c ---------------------------------------------------------------- */

/** Stops the process: the allocator returned NULL for @p size in @p where.
 *  A crash is what compare.py reports; a NULL here is never a result. */
__attribute__((noreturn)) void nhb_out_of_memory(const char *where, size_t size);
/** Errors the instance and returns 1 if it runs on more than NHB_MAX_THREADS. */
int nhb_check_threads(nhb_state *st);
/** Registers the 1, 2 and 4 thread variants of @p b. */
nhb_bench *nhb_threads_124(nhb_bench *b);
/** Current resident set in bytes (/proc/self/statm), 0 if unreadable.
 *  Does not allocate. */
uint64_t nhb_rss_now(void);
/** Process peak resident set in bytes (getrusage ru_maxrss). */
uint64_t nhb_rss_peak(void);
/** A thread's CPU mask as saved by nhb_pin (the size of a cpu_set_t). */
typedef struct nhb_affinity {
  uint64_t bits[16];
} nhb_affinity;
/** Pins the calling thread to the (@p index mod count)-th CPU it may run on,
 *  saving its previous mask in @p saved; 0, or -1 if affinity is unavailable. */
int nhb_pin(int index, nhb_affinity *saved);
/** Restores the mask nhb_pin saved. */
void nhb_unpin(const nhb_affinity *saved);

/* ---- identify.c ------------------------------------------------------------ */

/** Name of the allocator whose malloc is live: "numaheap", "jemalloc",
 *  "mimalloc", "tcmalloc", "tbbmalloc" or "glibc" ("unknown" when the probes
 *  disagree with the object that defines malloc). */
const char *nhb_allocator_name(void);
/** Path of the shared object that defines the live malloc. */
const char *nhb_malloc_object(void);

/* ---- one registration function per workload file --------------------------- */

void nhb_register_pair(void);     /* wl_pair.c */
void nhb_register_batch(void);    /* wl_batch.c */
void nhb_register_larson(void);   /* wl_larson.c */
void nhb_register_prodcons(void); /* wl_prodcons.c */
void nhb_register_cache(void);    /* wl_cache.c */
void nhb_register_realloc(void);  /* wl_realloc.c */
void nhb_register_frag(void);     /* wl_frag.c */
void nhb_register_larson_classic(void); /* wl_larson_classic.c */
void nhb_register_glibc_thread(void);   /* wl_glibc_thread.c */
void nhb_register_mpmc(void);           /* wl_mpmc.c */
void nhb_register_server(void);         /* wl_server.cc (C++: new and sized delete) */
void nhb_register_large(void);          /* wl_large.c */
void nhb_register_chase(void);          /* wl_chase.c */
void nhb_register_cfrac(void);          /* wl_cfrac.c */
void nhb_register_threads(void);        /* wl_threads.c */
void nhb_register_pystart(void);        /* wl_pystart.c (bench/trace_pystart.inc) */
#ifdef NHB_HAVE_HOST
void nhb_register_host(void);     /* wl_host.c, added by the hosting work */
#endif

#endif /* NHB_BENCH_H */
