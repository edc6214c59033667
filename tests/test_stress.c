/*
 * tests/test_stress.c: a deterministic multi-threaded stress test in the
 * style of mimalloc's test-stress and rpmalloc's soak: threads on different
 * (simulated) nodes allocate blocks of mixed sizes, write a pattern into
 * every byte, trade them through a shared table (so most frees are by
 * another thread, often of another node), check the pattern before every
 * free, and at the end every byte handed out has come back.
 *
 * NH_STRESS_OPS (environment) scales the run; the default keeps it short.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "nh_test.h"

#define THREADS 4
#define SLOTS 8192

static _Atomic(uintptr_t) slots[SLOTS];
static long ops_per_thread = 100000;
static _Atomic long corrupt;

typedef struct hdr {
  size_t size;      /* bytes asked for */
  uint64_t seed;    /* pattern seed */
} hdr;

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static size_t pick(uint64_t r) {
  unsigned p = (unsigned)(r % 1000);
  if (p < 600) return sizeof(hdr) + (r >> 12) % 256;
  if (p < 900) return sizeof(hdr) + (r >> 12) % 8192;
  if (p < 998) return sizeof(hdr) + (r >> 12) % 200000;
  return sizeof(hdr) + (r >> 12) % (3u << 20);
}

static void write_pattern(uint8_t *p, size_t size, uint64_t seed) {
  hdr h = {size, seed};
  memcpy(p, &h, sizeof h);
  for (size_t i = sizeof h; i < size; i++) p[i] = (uint8_t)(seed + i);
}

static void check_and_free(uint8_t *p) {
  hdr h;
  memcpy(&h, p, sizeof h);
  if (nh_usable_size(p) < h.size) atomic_fetch_add(&corrupt, 1);
  for (size_t i = sizeof h; i < h.size; i++)
    if (p[i] != (uint8_t)(h.seed + i)) {
      atomic_fetch_add(&corrupt, 1);
      break;
    }
  nh_free(p);
}

static void *allocate(uint64_t r, size_t size) {
  switch ((r >> 50) % 8) {
  case 0: return nh_calloc(1, size);
  case 1: return nh_aligned_alloc((size_t)64 << ((r >> 40) % 6), size);
  case 2: {
    void *p = nh_malloc(size / 2 + sizeof(hdr));
    return nh_realloc(p, size); /* contents are rewritten below */
  }
  case 3: { /* grown step by step as a vector is: realloc's moves and in-place growth */
    void *p = nh_malloc(sizeof(hdr));
    for (size_t s = 2 * sizeof(hdr); p != NULL && s < size; s *= 2) {
      void *q = nh_realloc(p, s);
      if (q == NULL) nh_free(p);
      p = q;
    }
    return p ? nh_realloc(p, size) : NULL;
  }
  default: return nh_malloc(size);
  }
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
  nh_cache_set_cpu_override(id % nh_node_count());
  for (long i = 0; i < ops_per_thread; i++) {
    uint64_t r = xorshift(&s);
    if (i % 10000 == 0) nh_cache_set_cpu_override((int)((id + i / 10000) % nh_node_count()));
    size_t size = pick(r);
    uint8_t *p = allocate(r, size);
    if (p == NULL) fail_msg("allocation of %zu bytes failed: %s", size, nh_last_error());
    write_pattern(p, size, r);
    uintptr_t old = atomic_exchange(&slots[(r >> 20) % SLOTS], (uintptr_t)p);
    if (old) check_and_free((uint8_t *)old);
  }
  nh_cache_set_cpu_override(-1);
  return NULL;
}

static void run_stress(const char *topology) {
  nh_test_start(topology, NULL);
  const char *env = getenv("NH_STRESS_OPS");
  if (env) ops_per_thread = atol(env);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < SLOTS; i++) {
    uintptr_t p = atomic_exchange(&slots[i], 0);
    if (p) check_and_free((uint8_t *)p);
  }
  nh_cache_flush_thread();
  nh_heaps_check(); /* stops the process if any heap invariant is broken */
  assert_int_equal(atomic_load(&corrupt), 0);
  nh_node_stats total = nh_test_node_stats(-1);
  assert_int_equal(total.allocs, total.frees); /* every block came back */
  assert_int_equal(total.in_use, 0);
  assert_int_equal(total.failures[0] + total.failures[1] + total.failures[2], 0);
  if (nh_node_count() > 1) assert_true(total.remote_frees > 0);
}

static void test_stress_real(void **state) {
  (void)state;
  run_stress(NULL);
}

static void test_stress_four_nodes(void **state) {
  (void)state;
  run_stress("package:2 numa:2 core:1 pu:1");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stress_real),
      cmocka_unit_test(test_stress_four_nodes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
