/*
 * bench/wl_threads.c: footprint of programs with many threads (issue 14).
 *
 * threads_many/n:N: each iteration starts N threads at once; each mallocs
 * NHB_TM_BLOCKS blocks of 16..512 bytes (about 26 KiB) and waits until all N
 * have; the benchmark thread then samples the resident set (`rss_hold`, the
 * largest over iterations), releases them, and they free their blocks and
 * exit. Per-thread caches and arenas are what this sees: with N = 64 and 256
 * threads alive, an allocator that gives each thread (or arena) its own
 * pages of every size holds far more than the 1.6 or 6.6 MiB live.
 * 10 iterations per instance (fixed, so every allocator does the same).
 *
 * threads_leak: one short thread after another (2000 per instance, fixed),
 * each mallocing 64 blocks of 16..1024 bytes, freeing 56 and leaking 8 (kept
 * in a table the benchmark frees at the end, after sampling `rss_hold`): a
 * program that leaks a little per thread. 2000 threads leak 16000 blocks,
 * about 4 MiB; what the resident set holds beyond that is what the allocator
 * kept of 2000 exited threads. With 2 benchmark threads, two such sequences
 * run side by side.
 *
 * One item is one thread started.
 */
#include "bench.h"

#include <pthread.h>
#include <stdlib.h>

#define NHB_TM_BLOCKS 100
#define NHB_TM_ITERATIONS 10
#define NHB_TL_THREADS 2000
#define NHB_TL_BLOCKS 64
#define NHB_TL_LEAK 8

/* ---- threads_many ---------------------------------------------------------- */

struct nhb_tm_shared {
  pthread_barrier_t allocated; /* N workers + the benchmark thread */
  pthread_barrier_t release;
};

struct nhb_tm_worker {
  struct nhb_tm_shared *shared;
  uint64_t rng;
};

static void *nhb_tm_worker(void *arg) {
  struct nhb_tm_worker *w = arg;
  void *block[NHB_TM_BLOCKS];
  for (int i = 0; i < NHB_TM_BLOCKS; i++) {
    size_t size = (size_t)nhb_rand_range(&w->rng, 16, 512);
    block[i] = malloc(size);
    if (!block[i]) nhb_out_of_memory("threads_many", size);
    ((char *)block[i])[0] = 1;
  }
  pthread_barrier_wait(&w->shared->allocated);
  pthread_barrier_wait(&w->shared->release);
  for (int i = 0; i < NHB_TM_BLOCKS; i++) free(block[i]);
  return NULL;
}

/* One iteration: N threads up, sample, down. The largest RSS seen, or 0 on
 * a failed pthread_create. */
static uint64_t nhb_tm_round(int n, pthread_t *th, struct nhb_tm_worker *w, uint64_t round) {
  struct nhb_tm_shared sh;
  pthread_barrier_init(&sh.allocated, NULL, (unsigned)n + 1);
  pthread_barrier_init(&sh.release, NULL, (unsigned)n + 1);
  int started = 0;
  for (; started < n; started++) {
    w[started] = (struct nhb_tm_worker){&sh, 0x9E3779B97F4A7C15ULL * (round * 1000 + (uint64_t)started + 1)};
    if (pthread_create(&th[started], NULL, nhb_tm_worker, &w[started]) != 0) break;
  }
  if (started < n) nhb_out_of_memory("threads_many: pthread_create", 0);
  pthread_barrier_wait(&sh.allocated);
  uint64_t rss = nhb_rss_now();
  pthread_barrier_wait(&sh.release);
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&sh.allocated);
  pthread_barrier_destroy(&sh.release);
  return rss;
}

static void nhb_threads_many(nhb_state *st) {
  int n = (int)nhb_range(st, 0);
  pthread_t *th = malloc((size_t)n * sizeof *th);
  struct nhb_tm_worker *w = malloc((size_t)n * sizeof *w);
  if (!th || !w) nhb_out_of_memory("threads_many", (size_t)n * sizeof *w);
  uint64_t rss = 0, round = 0;
  while (nhb_keep_running(st)) {
    uint64_t r = nhb_tm_round(n, th, w, round++);
    if (r > rss) rss = r;
  }
  free(th);
  free(w);
  nhb_set_items(st, nhb_iterations(st) * n);
  nhb_counter(st, "rss_hold", (double)rss, NHB_COUNTER_BYTES);
}

/* ---- threads_leak ------------------------------------------------------------ */

struct nhb_tl_worker {
  void **leak; /* NHB_TL_LEAK slots for this thread's leaked blocks */
  uint64_t rng;
};

static void *nhb_tl_worker(void *arg) {
  struct nhb_tl_worker *w = arg;
  void *block[NHB_TL_BLOCKS];
  for (int i = 0; i < NHB_TL_BLOCKS; i++) {
    size_t size = (size_t)nhb_rand_range(&w->rng, 16, 1024);
    block[i] = malloc(size);
    if (!block[i]) nhb_out_of_memory("threads_leak", size);
    ((char *)block[i])[0] = 1;
  }
  for (int i = 0; i < NHB_TL_BLOCKS; i++) {
    if (i < NHB_TL_LEAK)
      w->leak[i] = block[i];
    else
      free(block[i]);
  }
  return NULL;
}

/* The leaked blocks of each benchmark thread, freed after the sample. */
static void *nhb_tl_leaked[NHB_MAX_THREADS][NHB_TL_THREADS * NHB_TL_LEAK];

static void nhb_threads_leak(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st);
  int64_t done = 0;
  while (nhb_keep_running(st)) {
    if (done == NHB_TL_THREADS) {
      nhb_error(st, "threads_leak runs a fixed NHB_TL_THREADS iterations");
      break;
    }
    struct nhb_tl_worker w = {&nhb_tl_leaked[t][done * NHB_TL_LEAK],
                              0xBF58476D1CE4E5B9ULL * (uint64_t)(done * NHB_MAX_THREADS + t + 1)};
    pthread_t th;
    if (pthread_create(&th, NULL, nhb_tl_worker, &w) != 0) nhb_out_of_memory("threads_leak: pthread_create", 0);
    pthread_join(th, NULL);
    done++;
  }
  uint64_t rss = nhb_rss_now();
  for (int64_t i = 0; i < done * NHB_TL_LEAK; i++) free(nhb_tl_leaked[t][i]);
  nhb_set_items(st, done);
  nhb_counter(st, "rss_hold", (double)rss, NHB_COUNTER_BYTES | NHB_COUNTER_AVG_THREADS);
}

void nhb_register_threads(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("threads_many", nhb_threads_many), "n", NULL);
  nhb_fixed_iterations(nhb_unit_ms(nhb_arg(nhb_arg(b, 64), 256)), NHB_TM_ITERATIONS);
  b = nhb_register("threads_leak", nhb_threads_leak);
  nhb_threads(nhb_threads(nhb_unit_ms(nhb_fixed_iterations(b, NHB_TL_THREADS)), 1), 2);
}
