/*
 * tests/test_fork.c: fork() on the malloc override (libnumaheap.so linked as
 * an ordinary library). The child of a single-threaded parent, of a parent
 * whose other threads are allocating (small, large and huge blocks, and
 * creating and ending threads) at the moment of the fork, and of a fork made
 * from a thread other than main, must be able to allocate, free what the
 * parent allocated, start threads of its own, fork again, and exit. A child
 * that deadlocks is stopped by alarm() and seen as a failure.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "numaheap/numaheap.h"

#define CHILD_SECONDS 20

static uint64_t next_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Mostly small, some large (heap path), one in 512 huge (its own segment). */
static size_t pick_size(uint64_t r) {
  unsigned k = (unsigned)(r % 512);
  if (k == 0) return ((size_t)5 << 20) + (r >> 20) % 4096;
  if (k < 16) return 300000 + (r >> 20) % 500000;
  return 8 + (r >> 20) % 2000;
}

/* Allocates and frees n blocks with a working set of 256; checks contents. */
static int churn(uint64_t seed, int n) {
  void *slot[256] = {0};
  size_t len[256] = {0};
  uint64_t r = seed | 1;
  for (int i = 0; i < n; i++) {
    unsigned k = (unsigned)(next_rand(&r) % 256);
    if (slot[k]) {
      unsigned char *p = slot[k];
      if (p[0] != (unsigned char)len[k] || p[len[k] - 1] != (unsigned char)len[k]) return -1;
      free(p);
    }
    len[k] = pick_size(next_rand(&r));
    unsigned char *p = malloc(len[k]);
    if (p == NULL) return -1;
    p[0] = p[len[k] - 1] = (unsigned char)len[k];
    slot[k] = p;
  }
  for (int k = 0; k < 256; k++) free(slot[k]);
  return 0;
}

static void *churn_thread(void *arg) {
  return (void *)(intptr_t)churn((uint64_t)(uintptr_t)arg * 2654435761u, 3000);
}

/* What every child does: allocate, free the parent's block, start threads,
 * fork a grandchild that allocates too, exit 0 when all of it worked. */
static _Noreturn void child_work(void *from_parent, size_t parent_len) {
  alarm(CHILD_SECONDS);
  unsigned char *pp = from_parent;
  for (size_t i = 0; i < parent_len; i++)
    if (pp[i] != (unsigned char)i) _exit(3);
  free(from_parent);
  if (churn(12345, 5000) != 0) _exit(4);
  pthread_t t[3];
  for (int i = 0; i < 3; i++)
    if (pthread_create(&t[i], NULL, churn_thread, (void *)(uintptr_t)(i + 1)) != 0) _exit(5);
  for (int i = 0; i < 3; i++) {
    void *rc;
    pthread_join(t[i], &rc);
    if (rc != NULL) _exit(6);
  }
  pid_t g = fork();
  if (g == 0) _exit(churn(777, 2000) == 0 ? 0 : 7);
  int st;
  if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) _exit(8);
  nh_stats s = {.size = sizeof s, .version = NH_STATS_VERSION};
  if (nh_stats_get(&s) != 0 || s.total.allocs == 0) _exit(9);
  exit(0); /* runs atexit handlers and TLS destructors through numaheap too */
}

/* Forks once; the child runs child_work. 0 when it exits 0, else its wait status. */
static int fork_once(void) {
  size_t len = 1000;
  unsigned char *p = malloc(len);
  for (size_t i = 0; i < len; i++) p[i] = (unsigned char)i;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) child_work(p, len);
  int st;
  if (waitpid(pid, &st, 0) != pid) return -1;
  free(p);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : st;
}

static void fork_and_check(void) {
  int st = fork_once();
  if (st != 0)
    fail_msg("fork child failed: %s %d", WIFEXITED(st) ? "exit" : "signal",
             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void test_fork_single_threaded(void **state) {
  assert_int_equal(churn(1, 2000), 0);
  for (int i = 0; i < 10; i++) fork_and_check();
}

/* ---- a parent whose threads allocate during the fork ---------------------------------- */

static atomic_int stop;

static void *busy_allocator(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed))
    if (churn(seed++, 500) != 0) return (void *)1;
  return NULL;
}

static void *short_lived(void *arg) {
  void *p = malloc(64 + (size_t)(uintptr_t)arg);
  free(p);
  return NULL;
}

/* Creates and ends threads without pause: the fork lands while thread
 * caches are being made and returned to their pool. */
static void *thread_spawner(void *arg) {
  uintptr_t i = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, (void *)(i++ % 4096)) != 0) return (void *)1;
    pthread_join(t, NULL);
  }
  return NULL;
}

static void with_busy_threads(int nbusy, void (*body)(void)) {
  pthread_t t[8];
  atomic_store(&stop, 0);
  for (int i = 0; i < nbusy; i++)
    assert_int_equal(pthread_create(&t[i], NULL, busy_allocator, (void *)(uintptr_t)(i + 100)), 0);
  pthread_t spawner;
  assert_int_equal(pthread_create(&spawner, NULL, thread_spawner, NULL), 0);
  body();
  atomic_store(&stop, 1);
  for (int i = 0; i < nbusy; i++) {
    void *rc;
    pthread_join(t[i], &rc);
    assert_null(rc);
  }
  void *rc;
  pthread_join(spawner, &rc);
  assert_null(rc);
}

static void fork_many(void) {
  for (int i = 0; i < 60; i++) fork_and_check();
}

static void test_fork_while_threads_allocate(void **state) { with_busy_threads(3, fork_many); }

static void *forking_thread(void *arg) {
  for (int i = 0; i < 20; i++) {
    int st = fork_once();
    if (st != 0) return (void *)(intptr_t)st;
  }
  return NULL;
}

static void fork_from_thread(void) {
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, forking_thread, NULL), 0);
  void *st;
  pthread_join(t, &st);
  if (st != NULL) fail_msg("fork child failed: wait status 0x%x", (int)(intptr_t)st);
}

static void test_fork_from_other_thread(void **state) { with_busy_threads(2, fork_from_thread); }

/* ---- a fork while another thread drains the caches -------------------------------------- */

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
  return x < y ? -1 : x > y;
}

/* In the child: many live blocks of the cached classes must all be distinct
 * and must not overlap (a block owned twice, by a cache and by its heap,
 * would be handed out twice). 0 when they are, else 1. */
static int distinct_blocks(void) {
  enum { N = 6000 };
  static void *p[N];
  static const size_t sizes[] = {16, 32, 48, 64, 128, 256};
  for (int i = 0; i < N; i++) {
    size_t n = sizes[i % 6];
    p[i] = malloc(n);
    if (p[i] == NULL) return 1;
    memset(p[i], i & 0xff, n);
  }
  for (int i = 0; i < N; i++) {
    const unsigned char *q = p[i];
    if (q[0] != (i & 0xff) || q[sizes[i % 6] - 1] != (i & 0xff)) return 1;
  }
  qsort(p, N, sizeof *p, cmp_ptr);
  for (int i = 1; i < N; i++)
    if (p[i] == p[i - 1]) return 1;
  for (int i = 0; i < N; i++) free(p[i]);
  return 0;
}

/* Frees and allocates blocks of the cached classes and returns every cache's
 * blocks to the heaps (malloc_trim drains each CPU's cache) without pause. */
static void *trimmer(void *arg) {
  void *keep[64];
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int i = 0; i < 64; i++) keep[i] = malloc(16 + (size_t)(i % 8) * 16);
    for (int i = 0; i < 64; i++) free(keep[i]);
    malloc_trim(0);
  }
  return NULL;
}

static void test_fork_while_caches_drain(void **state) {
  pthread_t t[2];
  atomic_store(&stop, 0);
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, trimmer, NULL), 0);
  int bad = 0;
  for (int round = 0; round < 300 && !bad; round++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      alarm(CHILD_SECONDS);
      _exit(distinct_blocks());
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad = st ? st : -1;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  if (bad) fail_msg("a child saw a block handed out twice or a deadlock (wait status 0x%x)", bad);
}

/* ---- fork handlers of the program that allocate --------------------------------------- */

static void *in_prepare, *in_parent, *in_child;

static void prepare_alloc(void) { in_prepare = malloc(300); }
static void parent_alloc(void) { in_parent = malloc(5000); }
static void child_alloc(void) { in_child = malloc(70000); }

/* pthread_atfork handlers registered after numaheap started (the usual case:
 * numaheap starts on the process's first allocation) may allocate in all
 * three places: numaheap's prepare handler runs last, its parent and child
 * handlers first. */
static void fork_with_handlers(void) {
  for (int i = 0; i < 20; i++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      alarm(CHILD_SECONDS);
      int ok = in_prepare && in_child && nh_ptr_node(in_child) >= 0 && churn(5, 1000) == 0;
      free(in_prepare);
      free(in_child);
      _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_non_null(in_parent);
    free(in_prepare);
    free(in_parent);
  }
}

/* Runs last: the handlers stay registered. */
static void test_fork_handlers_that_allocate(void **state) {
  free(malloc(10)); /* numaheap has started */
  assert_int_equal(pthread_atfork(prepare_alloc, parent_alloc, child_alloc), 0);
  with_busy_threads(2, fork_with_handlers);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fork_single_threaded),
      cmocka_unit_test(test_fork_while_threads_allocate),
      cmocka_unit_test(test_fork_from_other_thread),
      cmocka_unit_test(test_fork_while_caches_drain),
      cmocka_unit_test(test_fork_handlers_that_allocate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
