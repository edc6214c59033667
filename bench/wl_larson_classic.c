/*
 * bench/wl_larson_classic.c: Larson and Krishnan's server benchmark, as in
 * their larson.c (the version Hoard and mimalloc-bench run, with the
 * published parameters `larson 5 8 1000 5000 100 4141 N`).
 *
 * Each of N slots holds `blocks` live blocks (chperthread: 5000 published)
 * of 8..999 bytes, uniform. The main thread allocates every slot's blocks,
 * shuffles them and replaces 4 x blocks of them at random (the original's
 * warm-up). Then a thread is started per slot; it frees a random block of its
 * slot and allocates a new one of a random size, writing its first two bytes,
 * 100 x blocks times (num_rounds = 100), and exits, and a new thread takes
 * over the same slot, its blocks included: so nearly every free is of a block
 * that an exited thread allocated.
 *
 * Here one benchmark iteration is one thread generation: benchmark thread t
 * starts the slot's next thread and joins it (the original's threads start
 * their successor themselves and run for a fixed time; the generations are
 * the same, only the clock differs). One item is one free + malloc, so
 * items_per_second is the original's "Throughput" (ops/s).
 *
 * blocks:5000 is the published working set (2.5 MB per thread, within a
 * last-level cache); blocks:50000 the same with ten times the live memory.
 */
#include "bench.h"

#include <pthread.h>
#include <stdlib.h>

#define NHB_LC_MIN 8
#define NHB_LC_MAX 1000 /* exclusive, as the original's min + rand % (max - min) */
#define NHB_LC_ROUNDS 100

/* One slot: what a thread hands its successor. Written by the benchmark
 * thread before the loop (thread 0 fills every slot) and after it, in the
 * loop only by the slot's current generation (pthread_create and
 * pthread_join order the generations). */
struct nhb_lc_slot {
  char **block;
  int64_t blocks;
  int64_t ops; /* replacements per generation */
  uint64_t rng;
} __attribute__((aligned(NHB_LINE)));

static struct nhb_lc_slot nhb_lc[NHB_MAX_THREADS];

static char *nhb_lc_new(uint64_t *rng) {
  size_t size = (size_t)nhb_rand_range(rng, NHB_LC_MIN, NHB_LC_MAX - 1);
  char *p = malloc(size);
  if (!p) nhb_out_of_memory("larson_classic", size);
  return p;
}

/* The original's warm-up, done for every slot by the main thread. */
static void nhb_lc_warmup(struct nhb_lc_slot *s, int64_t blocks, uint64_t seed) {
  s->rng = seed;
  s->blocks = blocks;
  s->ops = NHB_LC_ROUNDS * blocks;
  s->block = malloc((size_t)blocks * sizeof *s->block);
  if (!s->block) nhb_out_of_memory("larson_classic slots", (size_t)blocks * sizeof *s->block);
  for (int64_t i = 0; i < blocks; i++) s->block[i] = nhb_lc_new(&s->rng);
  for (int64_t i = blocks; i > 1; i--) {
    int64_t k = (int64_t)(nhb_rand(&s->rng) % (uint64_t)i);
    char *t = s->block[k];
    s->block[k] = s->block[i - 1];
    s->block[i - 1] = t;
  }
  for (int64_t i = 0; i < 4 * blocks; i++) {
    int64_t k = (int64_t)(nhb_rand(&s->rng) % (uint64_t)blocks);
    free(s->block[k]);
    s->block[k] = nhb_lc_new(&s->rng);
  }
}

/* One generation: the original's exercise_heap. */
static void *nhb_lc_generation(void *arg) {
  struct nhb_lc_slot *s = arg;
  for (int64_t i = 0; i < s->ops; i++) {
    int64_t k = (int64_t)(nhb_rand(&s->rng) % (uint64_t)s->blocks);
    free(s->block[k]);
    volatile char *p = nhb_lc_new(&s->rng);
    p[0] = 'a';
    p[1] = 'b';
    s->block[k] = (char *)p;
  }
  return NULL;
}

static void nhb_lc_release(struct nhb_lc_slot *s) {
  for (int64_t i = 0; i < s->blocks; i++) free(s->block[i]);
  free(s->block);
  s->block = NULL;
}

static void nhb_larson_classic(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st), n = nhb_thread_count(st);
  int64_t blocks = nhb_range(st, 0);
  if (t == 0)
    for (int i = 0; i < n; i++) nhb_lc_warmup(&nhb_lc[i], blocks, 4141u + 7919u * (uint64_t)i);
  struct nhb_lc_slot *s = &nhb_lc[t];
  int64_t ops = 0;
  while (nhb_keep_running(st)) {
    pthread_t th;
    if (pthread_create(&th, NULL, nhb_lc_generation, s) != 0) {
      nhb_error(st, "pthread_create failed");
      break;
    }
    pthread_join(th, NULL);
    ops += s->ops;
  }
  nhb_lc_release(s);
  nhb_set_items(st, ops);
}

void nhb_register_larson_classic(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("larson_classic", nhb_larson_classic), "blocks", NULL);
  nhb_threads(nhb_threads(nhb_unit_ms(nhb_arg(nhb_arg(b, 5000), 50000)), 1), 2);
}
