/*
 * api/cli/cmd_demo.c: numaheap demo, the main job of the README. A
 * server-style workload (each thread keeps a working set of live objects of
 * mixed sizes, replaces them at random, and hands one object in 16 to the
 * next thread, which frees it: a remote free) runs in interleaved rounds on
 * numaheap (nh_malloc/nh_free) and on the system allocator (this program's
 * malloc/free: glibc unless something is preloaded). It prints the topology,
 * each allocator's throughput and their ratio, and numaheap's per-node
 * statistics.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/cli/cli.h"
#include "api/internal.h"
#include "numaheap/numaheap.h"

#define SLOTS 4096
#define HANDOFF_BATCH 32
#define MAX_THREADS 64

static int demo_main(int argc, char **argv);

const nh_cli_command nh_cli_demo = {
    "demo", "[--config FILE] [--threads N] [--seconds S] [--rounds R]",
    "A server-style workload: each thread keeps a working set of live objects of\n"
    "mixed sizes, replaces them at random and hands one in 16 to the next thread,\n"
    "which frees it. It runs in R interleaved rounds of S seconds on numaheap\n"
    "(nh_malloc/nh_free) and on the system allocator (this program's malloc),\n"
    "then prints the topology, each allocator's median throughput, their ratio\n"
    "and numaheap's per-node statistics.\n"
    "\n"
    "  --config FILE   numaheap configuration (default: $NUMAHEAP_CONFIG)\n"
    "  --threads N     worker threads, 1..64 (default: the CPUs, at most 8)\n"
    "  --seconds S     length of one round, up to 3600 (default 1)\n"
    "  --rounds R      rounds per allocator, 1..100 (default 3)\n"
    "\n"
    "Exit status: 0; 2 for bad usage or a bad configuration; 1 when an\n"
    "allocation fails.\n",
    demo_main};

typedef struct allocator {
  const char *name;
  void *(*alloc)(size_t);
  void (*release)(void *);
} allocator;

static const allocator allocators[2] = {{"numaheap", nh_malloc, nh_free}, {"system", malloc, free}};

typedef struct inbox {
  pthread_mutex_t lock;
  void *items[HANDOFF_BATCH * 64]; /* Guarded by lock */
  int count;                       /* Guarded by lock */
} inbox;

typedef struct worker {
  const allocator *a;
  int id, nthreads;
  double seconds;
  uint64_t ops;
  uint64_t rng;
  inbox box;
  void *slot[SLOTS];
  void *out[HANDOFF_BATCH];
  int nout;
} worker;

static worker *workers;
static _Atomic int go;

static uint64_t next_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Request-like sizes: mostly small, some buffers, rare large bodies. */
static size_t pick_size(uint64_t r) {
  unsigned p = (unsigned)(r % 1000);
  if (p < 700) return 16 + (r >> 10) % 240;
  if (p < 950) return 256 + (r >> 10) % 3840;
  if (p < 999) return 4096 + (r >> 10) % 61440;
  return 262144 + (r >> 10) % 786432;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void drain_inbox(worker *w) {
  void *items[HANDOFF_BATCH * 64];
  pthread_mutex_lock(&w->box.lock);
  int n = w->box.count;
  memcpy(items, w->box.items, (size_t)n * sizeof(void *));
  w->box.count = 0;
  pthread_mutex_unlock(&w->box.lock);
  for (int i = 0; i < n; i++) w->a->release(items[i]);
}

/* Sends the batch to the next thread; frees locally if its inbox is full. */
static void hand_off(worker *w) {
  worker *to = &workers[(w->id + 1) % w->nthreads];
  pthread_mutex_lock(&to->box.lock);
  int room = (int)(sizeof to->box.items / sizeof(void *)) - to->box.count;
  int n = w->nout < room ? w->nout : room;
  memcpy(to->box.items + to->box.count, w->out, (size_t)n * sizeof(void *));
  to->box.count += n;
  pthread_mutex_unlock(&to->box.lock);
  for (int i = n; i < w->nout; i++) w->a->release(w->out[i]);
  w->nout = 0;
}

static void *run_worker(void *arg) {
  worker *w = arg;
  while (!atomic_load_explicit(&go, memory_order_acquire)) {
  }
  double end = now_s() + w->seconds;
  uint64_t ops = 0;
  while ((ops & 255) != 0 || now_s() < end) {
    uint64_t r = next_rand(&w->rng);
    unsigned i = (unsigned)(r % SLOTS);
    if (w->slot[i]) {
      if (w->nthreads > 1 && (r >> 40) % 16 == 0) {
        w->out[w->nout++] = w->slot[i];
        if (w->nout == HANDOFF_BATCH) hand_off(w);
      } else {
        w->a->release(w->slot[i]);
      }
    }
    size_t size = pick_size(next_rand(&w->rng));
    char *p = w->a->alloc(size);
    if (p == NULL) {
      fprintf(stderr, "numaheap demo: %s: allocation of %zu bytes failed\n", w->a->name, size);
      exit(1);
    }
    p[0] = (char)ops;
    p[size - 1] = (char)ops;
    w->slot[i] = p;
    if ((++ops & 63) == 0) drain_inbox(w);
  }
  w->ops = ops;
  return NULL;
}

static void clean_up(worker *w) {
  if (w->nthreads > 1 && w->nout) hand_off(w);
  for (int i = 0; i < SLOTS; i++)
    if (w->slot[i]) w->a->release(w->slot[i]), w->slot[i] = NULL;
}

/* One timed round of `a` on nthreads threads; returns operations per second. */
static double round_of(const allocator *a, int nthreads, double seconds, uint64_t seed) {
  pthread_t tid[MAX_THREADS];
  atomic_store(&go, 0);
  for (int t = 0; t < nthreads; t++) {
    worker *w = &workers[t];
    memset(w->slot, 0, sizeof w->slot);
    w->a = a, w->id = t, w->nthreads = nthreads, w->seconds = seconds;
    w->rng = seed * 7919 + (uint64_t)t * 104729 + 1;
    w->nout = 0, w->box.count = 0;
    pthread_create(&tid[t], NULL, run_worker, w);
  }
  double t0 = now_s();
  atomic_store_explicit(&go, 1, memory_order_release);
  uint64_t ops = 0;
  for (int t = 0; t < nthreads; t++) pthread_join(tid[t], NULL), ops += workers[t].ops;
  double elapsed = now_s() - t0;
  for (int t = 0; t < nthreads; t++) clean_up(&workers[t]);
  for (int t = 0; t < nthreads; t++) drain_inbox(&workers[t]);
  return (double)ops / elapsed;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Parses the options into the out-parameters. 0, 2 (bad usage reported) or -1 (help printed). */
static int parse_args(int argc, char **argv, const char **config, int *threads, double *seconds,
                      int *rounds) {
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    long n;
    int got;
    if (nh_cli_is_help(&nh_cli_demo, argv[i])) return -1;
    if ((got = nh_cli_opt_value(&nh_cli_demo, argc, argv, &i, "config", config)) != 0) {
      if (got < 0) return 2;
    } else if ((got = nh_cli_opt_value(&nh_cli_demo, argc, argv, &i, "threads", &v)) != 0) {
      if (got < 0 || nh_cli_parse_long(&nh_cli_demo, "--threads", v, 1, MAX_THREADS, &n) != 0) return 2;
      *threads = (int)n;
    } else if ((got = nh_cli_opt_value(&nh_cli_demo, argc, argv, &i, "seconds", &v)) != 0) {
      if (got < 0 || nh_cli_parse_double(&nh_cli_demo, "--seconds", v, 0, 3600, seconds) != 0) return 2;
    } else if ((got = nh_cli_opt_value(&nh_cli_demo, argc, argv, &i, "rounds", &v)) != 0) {
      if (got < 0 || nh_cli_parse_long(&nh_cli_demo, "--rounds", v, 1, 100, &n) != 0) return 2;
      *rounds = (int)n;
    } else if (argv[i][0] == '-') {
      return nh_cli_bad_usage(&nh_cli_demo, "unknown option \"%s\"", argv[i]);
    } else {
      return nh_cli_bad_usage(&nh_cli_demo, "unexpected argument \"%s\"", argv[i]);
    }
  }
  return 0;
}

static int demo_main(int argc, char **argv) {
  const char *config = NULL;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = ncpu > 1 ? (int)(ncpu < 8 ? ncpu : 8) : 2, rounds = 3;
  double seconds = 1.0;
  int rc = parse_args(argc, argv, &config, &threads, &seconds, &rounds);
  if (rc) return rc < 0 ? 0 : rc;
  if (nh_init(config) != 0) {
    fprintf(stderr, "numaheap: demo: %s\n", nh_last_error());
    return 2;
  }
  printf("== topology ==\n");
  nh_topo_print(nh_topology(), stdout, 0);
  workers = calloc((size_t)threads, sizeof *workers);
  if (workers == NULL) {
    fprintf(stderr, "numaheap: demo: out of memory for %d workers\n", threads);
    return 1;
  }
  for (int t = 0; t < threads; t++) pthread_mutex_init(&workers[t].box.lock, NULL);
  printf("\n== server-style workload: %d threads, %d rounds of %.1f s per allocator ==\n", threads,
         rounds, seconds);
  double res[2][100];
  for (int r = 0; r < rounds; r++)
    for (int k = 0; k < 2; k++) { /* interleaved, alternating who goes first */
      int a = (r % 2) ? 1 - k : k;
      res[a][r] = round_of(&allocators[a], threads, seconds, (uint64_t)r + 1);
      printf("round %d  %-9s %12.0f ops/s\n", r + 1, allocators[a].name, res[a][r]);
    }
  qsort(res[0], (size_t)rounds, sizeof(double), cmp_double);
  qsort(res[1], (size_t)rounds, sizeof(double), cmp_double);
  double nh = res[0][rounds / 2], sys = res[1][rounds / 2];
  printf("\nmedian    numaheap %12.0f ops/s\n          system   %12.0f ops/s\n", nh, sys);
  printf("numaheap / system throughput: %.2fx\n", nh / sys);
  printf("\n== numaheap per-node statistics ==\n");
  nh_stats_print(stdout, 0);
  free(workers);
  return 0;
}
