/*
 * tests/test_soak.c: a time-bounded soak in the style of rpmalloc's
 * test/stress.c. Threads on the four nodes of a simulated topology (and
 * moving between them) allocate blocks of random sizes by every path
 * (malloc, calloc, aligned, realloc, on a node, at a level), write a pattern
 * into every byte, keep some in a private table they re-check in full from
 * time to time, and trade the rest through a shared table so that most frees
 * happen on another thread, usually of another node. Every block's pattern
 * is checked before it is freed; at the end every block has come back and a
 * trim returns the memory.
 *
 * NH_SOAK_SECONDS (environment) sets the duration; the default (20 s) is
 * what CI runs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "nh_reliab.h"

#define THREADS 4
#define SHARED 4096
#define PRIVATE 256

typedef struct hdr {
  size_t size;   /* bytes the pattern covers (the request) */
  uint64_t seed; /* pattern seed */
} hdr;

static _Atomic(uintptr_t) shared[SHARED];
static atomic_int stop;
static atomic_ulong total_ops, total_checked_bytes, corrupt, failed_allocs;

static size_t pick(uint64_t r) {
  unsigned p = (unsigned)(r % 1000);
  size_t n;
  if (p < 500) n = (r >> 12) % 256;
  else if (p < 850) n = (r >> 12) % 16384;
  else if (p < 970) n = (r >> 12) % (256u << 10);
  else if (p < 995) n = (r >> 12) % (2u << 20);
  else n = (2u << 20) + (r >> 12) % (4u << 20);
  return sizeof(hdr) + n;
}

static void stamp(uint8_t *p, size_t size, uint64_t seed) {
  hdr h = {size, seed};
  memcpy(p, &h, sizeof h);
  nh_reliab_fill(p + sizeof h, size - sizeof h, seed);
}

/* Checks a stamped block in full; counts damage. */
static void verify(const uint8_t *p) {
  hdr h;
  memcpy(&h, p, sizeof h);
  if (nh_usable_size(p) < h.size || !nh_reliab_intact(p + sizeof h, h.size - sizeof h, h.seed))
    atomic_fetch_add(&corrupt, 1);
  atomic_fetch_add_explicit(&total_checked_bytes, h.size, memory_order_relaxed);
}

static void verify_free(uint8_t *p) {
  if (p == NULL) return;
  verify(p);
  nh_free(p);
}

/* A stamped block of size bytes by a path chosen by r. */
static uint8_t *make(uint64_t r, size_t size) {
  uint8_t *p;
  switch ((r >> 48) % 8) {
  case 0:
    p = nh_calloc(size, 1);
    for (size_t i = 0; p && i < size; i += 61)
      if (p[i] != 0) atomic_fetch_add(&corrupt, 1);
    break;
  case 1: p = nh_aligned_alloc((size_t)32 << ((r >> 40) % 8), size); break;
  case 2: p = nh_malloc_node(size, (int)((r >> 40) % 4)); break;
  case 3: p = nh_alloc_level(size, 16, (int)((r >> 40) % 3)); break;
  case 4: { /* grow or shrink a stamped block: the kept prefix must survive */
    size_t first = sizeof(hdr) + (r >> 30) % 4096;
    uint8_t *q = nh_malloc(first);
    if (q == NULL) return NULL;
    stamp(q, first, r);
    p = nh_realloc(q, size);
    size_t kept = first < size ? first : size;
    if (p && !nh_reliab_intact(p + sizeof(hdr), kept - sizeof(hdr), r)) atomic_fetch_add(&corrupt, 1);
    break;
  }
  default: p = nh_malloc(size); break;
  }
  if (p) stamp(p, size, r);
  return p;
}

static void *soak_thread(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t rs = 0xD1B54A32D192ED03ull * (uint64_t)(id + 1);
  uint8_t *mine[PRIVATE] = {0};
  unsigned long ops = 0;
  nh_cache_set_cpu_override(id);
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t r = nh_reliab_rand(&rs);
    if (++ops % 20000 == 0) { /* move to another node; re-check everything held */
      nh_cache_set_cpu_override((int)((id + ops / 20000) % 4));
      for (int i = 0; i < PRIVATE; i++)
        if (mine[i]) verify(mine[i]);
    }
    if (id == 0 && ops % 100000 == 0) nh_trim();
    uint8_t *p = make(r, pick(r));
    if (p == NULL) { /* cmocka's failures work on the main thread only: count it */
      atomic_fetch_add(&failed_allocs, 1);
      continue;
    }
    if ((r >> 32) % 4 == 0) { /* keep it here */
      unsigned k = (unsigned)((r >> 36) % PRIVATE);
      verify_free(mine[k]);
      mine[k] = p;
    } else { /* hand it to whichever thread takes the slot next */
      verify_free((uint8_t *)atomic_exchange(&shared[(r >> 36) % SHARED], (uintptr_t)p));
    }
  }
  for (int i = 0; i < PRIVATE; i++) verify_free(mine[i]);
  atomic_fetch_add(&total_ops, ops * 2);
  return NULL;
}

static void test_soak(void **state) {
  (void)state;
  nh_test_start(NH_FOUR_NODES, NULL);
  uint64_t base = nh_test_node_stats(-1).committed - nh_reliab_kept_bytes();
  const char *env = getenv("NH_SOAK_SECONDS");
  int seconds = env ? atoi(env) : 20;
  if (seconds < 1) seconds = 1;
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, soak_thread, (void *)(intptr_t)i);
  struct timespec ts = {seconds, 0};
  while (nanosleep(&ts, &ts) != 0) continue;
  atomic_store(&stop, 1);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < SHARED; i++) verify_free((uint8_t *)atomic_exchange(&shared[i], 0));
  assert_int_equal(atomic_load(&corrupt), 0);
  assert_int_equal(atomic_load(&failed_allocs), 0);
  nh_reliab_assert_all_returned();
  nh_node_stats t0 = nh_test_node_stats(-1);
  assert_int_equal(t0.failures[0] + t0.failures[1] + t0.failures[2], 0);
  assert_true(t0.remote_frees > 0);
  nh_trim();
  uint64_t after = nh_test_node_stats(-1).committed - nh_reliab_kept_bytes();
  if (after != base) /* beyond what trim keeps by design, every committed byte came back */
    fail_msg("committed %llu after trim, %llu before (not counting kept spans and headers)",
             (unsigned long long)after, (unsigned long long)base);
  printf("figures: test=soak seconds=%d ops=%lu checked_bytes=%lu remote_frees=%llu faults=0 "
         "bad_inputs=0 lost=0 corrupt=%lu\n", seconds, atomic_load(&total_ops),
         atomic_load(&total_checked_bytes), (unsigned long long)t0.remote_frees,
         atomic_load(&corrupt));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_soak),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
