/*
 * tests/test_threads.c: threads created and ended by the thousand on the
 * malloc override (libnumaheap.so linked as an ordinary library). Each
 * thread allocates a mix of sizes, frees some, hands the rest to the main
 * thread (which frees them after the thread has gone), and exits. Memory must
 * not grow with the number of rounds: numaheap's committed bytes and the
 * process's resident set after the last round stay within a fixed slack of
 * their value after the first rounds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "numaheap/numaheap.h"

#define PER_THREAD 96   /* blocks each thread allocates */
#define HANDED 32       /* of which it hands this many to the main thread */
#define CONCURRENT 16   /* threads alive at once */
#define THREADS_PER_ROUND 400
#define ROUNDS 12
#define WARM_ROUNDS 3
#define SLACK_COMMITTED ((uint64_t)24 << 20)
#define SLACK_RSS ((uint64_t)48 << 20)

typedef struct job {
  uint64_t seed;
  void *handed[HANDED];
  int failed;
} job;

static uint64_t next_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static size_t pick_size(uint64_t r) {
  unsigned k = (unsigned)(r % 100);
  if (k < 80) return 16 + (r >> 8) % 500;
  if (k < 98) return 1000 + (r >> 8) % 30000;
  return 300000 + (r >> 8) % 200000; /* larger than the cached classes */
}

static void *worker(void *arg) {
  job *j = arg;
  void *mine[PER_THREAD];
  uint64_t r = j->seed | 1;
  for (int i = 0; i < PER_THREAD; i++) {
    size_t n = pick_size(next_rand(&r));
    mine[i] = malloc(n);
    if (mine[i] == NULL) {
      j->failed = 1;
      return NULL;
    }
    memset(mine[i], i, n < 256 ? n : 256);
  }
  for (int i = 0; i < HANDED; i++) j->handed[i] = mine[i];
  for (int i = HANDED; i < PER_THREAD; i++) free(mine[i]);
  return NULL;
}

static uint64_t committed_bytes(void) {
  static nh_stats st;
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  assert_int_equal(nh_stats_get(&st), 0);
  return st.total.committed;
}

static uint64_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  assert_non_null(f);
  unsigned long size, resident;
  assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
  fclose(f);
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static atomic_int detached_alive, detached_failed;

static void *detached_worker(void *arg) {
  job j = {.seed = (uint64_t)(uintptr_t)arg};
  worker(&j);
  if (j.failed) atomic_fetch_add(&detached_failed, 1);
  else
    for (int k = 0; k < HANDED; k++) free(j.handed[k]);
  atomic_fetch_sub(&detached_alive, 1);
  return NULL;
}

/* One round: THREADS_PER_ROUND threads, CONCURRENT at a time (joined or
 * detached), then the main thread frees what they handed over. */
static void one_round(uint64_t round, int detached) {
  static job jobs[CONCURRENT];
  pthread_t t[CONCURRENT];
  for (int base = 0; base < THREADS_PER_ROUND; base += CONCURRENT) {
    for (int i = 0; i < CONCURRENT; i++) {
      jobs[i].seed = round * 1000003u + (uint64_t)(base + i) * 7919u;
      jobs[i].failed = 0;
      assert_int_equal(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < CONCURRENT; i++) {
      assert_int_equal(pthread_join(t[i], NULL), 0);
      assert_int_equal(jobs[i].failed, 0);
      for (int k = 0; k < HANDED; k++) free(jobs[i].handed[k]);
    }
  }
  if (!detached) return;
  for (int i = 0; i < CONCURRENT * 4; i++) { /* detached threads end on their own */
    pthread_t d;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&detached_alive, 1);
    assert_int_equal(pthread_create(&d, &a, detached_worker, (void *)(uintptr_t)(round * 64 + (uint64_t)i)), 0);
    pthread_attr_destroy(&a);
  }
}

static void test_thread_churn_memory_bounded(void **state) {
  uint64_t c_warm = 0, r_warm = 0, c_peak = 0;
  for (uint64_t round = 0; round < ROUNDS; round++) {
    one_round(round, 0);
    nh_trim();
    uint64_t c = committed_bytes(), r = rss_bytes();
    if (round + 1 == WARM_ROUNDS) c_warm = c, r_warm = r;
    if (round + 1 >= WARM_ROUNDS && c > c_peak) c_peak = c;
    if (round + 1 == ROUNDS) {
      print_message("%d threads: committed %llu KiB after warm-up, %llu KiB at the end (peak "
                    "%llu KiB); RSS %llu KiB -> %llu KiB\n",
                    ROUNDS * THREADS_PER_ROUND, (unsigned long long)c_warm >> 10,
                    (unsigned long long)c >> 10, (unsigned long long)c_peak >> 10,
                    (unsigned long long)r_warm >> 10, (unsigned long long)r >> 10);
      assert_true(c <= c_warm + SLACK_COMMITTED);
      assert_true(c_peak <= c_warm + SLACK_COMMITTED);
      assert_true(r <= r_warm + SLACK_RSS);
    }
  }
}

/* A thread's exit-time code (a pthread key destructor that runs after
 * numaheap's own) may still allocate and free. */
static pthread_key_t late_key;

static void late_destructor(void *v) {
  char *q = malloc(100);
  memset(q, 1, 100);
  free(v);
  free(q);
  void *big = malloc(400000);
  free(big);
}

static void *uses_late_key(void *arg) {
  void *p = malloc(50);
  pthread_setspecific(late_key, p);
  return NULL;
}

static void test_allocation_in_thread_destructors(void **state) {
  assert_int_equal(pthread_key_create(&late_key, late_destructor), 0);
  for (int round = 0; round < 50; round++) {
    pthread_t t[8];
    for (int i = 0; i < 8; i++) assert_int_equal(pthread_create(&t[i], NULL, uses_late_key, NULL), 0);
    for (int i = 0; i < 8; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  }
  pthread_key_delete(late_key);
}

static void test_detached_churn(void **state) {
  for (uint64_t round = 0; round < 3; round++) one_round(round, 1);
  for (int i = 0; i < 2000 && atomic_load(&detached_alive) > 0; i++) usleep(5000);
  assert_int_equal(atomic_load(&detached_alive), 0);
  assert_int_equal(atomic_load(&detached_failed), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_thread_churn_memory_bounded),
      cmocka_unit_test(test_allocation_in_thread_destructors),
      cmocka_unit_test(test_detached_churn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
