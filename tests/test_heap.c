/*
 * tests/test_heap.c: size classes, the native API, pointer lookup, origin-aware
 * free, budgets and fallback order on simulated topologies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nh_pin.h"
#include "nh_test.h"
#include "numa/os.h"
#include "numa/track.h"

#define FOUR_NODES "package:2 numa:2 core:1 pu:1" /* CPU k on node k; packages {0,1} {2,3} */

/* ---- size classes ---------------------------------------------------------------- */

static void test_size_classes_bound_waste(void **state) {
  (void)state;
  unsigned prev = 1;
  for (size_t size = 1; size <= NH_SMALL_MAX; size++) {
    unsigned cls = nh_size_class(size);
    size_t cs = nh_class_size(cls);
    assert_true(cls >= 1 && cls < NH_CLASS_COUNT);
    assert_true(cs >= size);
    assert_true(cls >= prev);
    assert_int_equal(cs % NH_MIN_ALIGN, 0);
    if (size > 128) assert_true((double)(cs - size) / (double)cs < 0.125);
    assert_int_equal(nh_size_class(cs), cls); /* a class size maps to itself */
    assert_int_equal(cls, nh_size_class_formula(size)); /* the table agrees with the formula */
    if (cls > 1) assert_true(nh_class_size(cls - 1) < size); /* and is the smallest that fits */
    prev = cls;
  }
  assert_int_equal(nh_class_size(NH_CLASS_COUNT - 1), NH_SMALL_MAX);
  assert_int_equal(nh_size_class(0), 1);
}

static void test_class_pages_hold_blocks(void **state) {
  (void)state;
  for (unsigned c = 1; c < NH_CLASS_COUNT; c++) {
    size_t span = (size_t)nh_class_pages(c) * NH_PAGE_SIZE;
    assert_true(span / nh_class_size(c) >= 4);
    assert_true(nh_class_pages(c) <= 32);
  }
}

static void test_aligned_classes(void **state) {
  (void)state;
  for (size_t align = 16; align <= NH_PAGE_SIZE; align <<= 1)
    for (size_t size = 1; size < 70000; size = size * 3 + 1) {
      unsigned c = nh_class_for_aligned(size, align);
      if (c == 0) continue;
      assert_int_equal(nh_class_size(c) % align, 0);
      assert_true(nh_class_size(c) >= size);
    }
}

/* ---- metadata memory (numa/os_meta.c) ------------------------------------------------ */

/* Small blocks: aligned to their size rounded up to a power of two, zeroed,
 * apart from each other, zeroed again when reused; bigger ones whole pages. */
static void test_meta_blocks(void **state) {
  (void)state;
  enum { N = 96 };
  unsigned char *b[N];
  size_t n[N];
  for (int i = 0; i < N; i++) {
    n[i] = (size_t)1 + (size_t)i * 37 % 2048;
    b[i] = nh_os_meta_alloc(n[i]);
    assert_non_null(b[i]);
    size_t align = 16;
    while (align < n[i]) align <<= 1;
    assert_int_equal((uintptr_t)b[i] % align, 0);
    for (size_t k = 0; k < n[i]; k++) assert_int_equal(b[i][k], 0);
    memset(b[i], 0xA0 + i % 16, n[i]);
  }
  for (int i = 0; i < N; i++) /* no block overlaps another: each still holds its own bytes */
    for (size_t k = 0; k < n[i]; k++) assert_int_equal(b[i][k], 0xA0 + i % 16);
  for (int i = 0; i < N; i++) nh_os_meta_free(b[i], n[i]);
  for (int i = N; i-- > 0;) { /* reused (the free lists are LIFO): zeroed again */
    unsigned char *again = nh_os_meta_alloc(n[i]);
    assert_non_null(again);
    for (size_t k = 0; k < n[i]; k++) assert_int_equal(again[k], 0);
    b[i] = again;
  }
  for (int i = 0; i < N; i++) nh_os_meta_free(b[i], n[i]);
  unsigned char *big = nh_os_meta_alloc(3000); /* above 2 KiB: pages of its own */
  assert_non_null(big);
  assert_int_equal((uintptr_t)big % 4096, 0);
  memset(big, 1, 3000);
  nh_os_meta_free(big, 3000);
  nh_os_meta_free(NULL, 100); /* as free(NULL) */
}

#define META_THREADS 4
static void *meta_worker(void *arg) {
  uint64_t rs = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1, bad = 0;
  unsigned char *slot[32] = {0};
  size_t size[32] = {0};
  unsigned char tag = (unsigned char)(uintptr_t)arg + 1;
  for (int i = 0; i < 20000; i++) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    unsigned k = (unsigned)(rs % 32);
    if (slot[k]) {
      for (size_t j = 0; j < size[k]; j++) bad |= slot[k][j] != tag;
      nh_os_meta_free(slot[k], size[k]);
    }
    size[k] = 1 + (size_t)(rs >> 20) % 2048;
    slot[k] = nh_os_meta_alloc(size[k]);
    if (slot[k] == NULL) return (void *)1;
    for (size_t j = 0; j < size[k]; j++) bad |= slot[k][j] != 0;
    memset(slot[k], tag, size[k]);
  }
  for (unsigned k = 0; k < 32; k++) nh_os_meta_free(slot[k], size[k]);
  return (void *)(uintptr_t)(bad != 0);
}

/* Threads take and give back small blocks at once (perthread mode's caches
 * do): no block is handed to two of them, none comes back dirty. */
static void test_meta_concurrent(void **state) {
  (void)state;
  pthread_t t[META_THREADS];
  for (uintptr_t i = 0; i < META_THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, meta_worker, (void *)i), 0);
  for (int i = 0; i < META_THREADS; i++) {
    void *rc;
    pthread_join(t[i], &rc);
    assert_null(rc);
  }
}

/* The OS layer's clock (the vDSO's clock_gettime, called directly) reads
 * CLOCK_MONOTONIC_COARSE: between two reads of libc's. */
static void test_os_clock(void **state) {
  (void)state;
  for (int i = 0; i < 1000; i++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &a);
    uint64_t t = nh_os_clock_ns();
    clock_gettime(CLOCK_MONOTONIC_COARSE, &b);
    assert_true((uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec <= t);
    assert_true(t <= (uint64_t)b.tv_sec * 1000000000u + (uint64_t)b.tv_nsec);
  }
}

/* ---- the native API ---------------------------------------------------------------- */


static void test_malloc_sizes(void **state) {
  (void)state;
  nh_test_start(NULL, NULL);
  static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 128, 129, 1000, 4096, 9000, 40000,
                                 300000, 1 << 20, (2 << 20) + 1, NH_LARGE_MAX,
                                 NH_LARGE_MAX + 1, 9 << 20};
  void *p[sizeof sizes / sizeof *sizes];
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    p[i] = nh_malloc(sizes[i]);
    assert_non_null(p[i]);
    assert_int_equal((uintptr_t)p[i] % 16, 0);
    assert_true(nh_usable_size(p[i]) >= sizes[i]);
    assert_int_equal(nh_ptr_node(p[i]), 0);
    nh_test_fill(p[i], sizes[i], (uint8_t)i);
  }
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    assert_true(nh_test_intact(p[i], sizes[i], (uint8_t)i));
    nh_free(p[i]);
  }
}

static void test_malloc_zero_unique(void **state) {
  (void)state;
  void *a = nh_malloc(0), *b = nh_malloc(0);
  assert_non_null(a);
  assert_non_null(b);
  assert_ptr_not_equal(a, b);
  nh_free(a);
  nh_free(b);
  nh_free(NULL);
}

static void test_nh_calloc(void **state) {
  (void)state;
  for (size_t n = 1; n < (4u << 20); n *= 7) {
    uint8_t *p = nh_malloc(n);
    memset(p, 0xAB, n);
    nh_free(p);
    uint8_t *q = nh_calloc(n, 1);
    assert_non_null(q);
    for (size_t i = 0; i < n; i++) assert_int_equal(q[i], 0);
    nh_free(q);
  }
  errno = 0;
  assert_null(nh_calloc(SIZE_MAX / 2, 3));
  assert_int_equal(errno, ENOMEM);
  assert_non_null(strstr(nh_last_error(), "overflow"));
}

static void test_impossible_sizes(void **state) {
  (void)state;
  errno = 0;
  assert_null(nh_malloc(SIZE_MAX));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(nh_malloc((size_t)1 << 62));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(nh_aligned_alloc(4096, SIZE_MAX - 100));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(nh_aligned_alloc(24, 100));
  assert_int_equal(errno, EINVAL);
  assert_non_null(strstr(nh_last_error(), "power of two"));
  errno = 0;
  assert_null(nh_malloc_node(16, 9999));
  assert_int_equal(errno, EINVAL);
  assert_non_null(strstr(nh_last_error(), "no such node"));
}

static void test_aligned_alloc(void **state) {
  (void)state;
  for (size_t align = 1; align <= (8u << 20); align <<= 1) {
    for (size_t size = 1; size < (1u << 22); size = size * 5 + 3) {
      void *p = nh_aligned_alloc(align, size);
      assert_non_null(p);
      assert_int_equal((uintptr_t)p % align, 0);
      assert_true(nh_usable_size(p) >= size);
      memset(p, 1, size);
      nh_free(p);
    }
  }
}

static void test_nh_realloc(void **state) {
  (void)state;
  uint8_t *p = nh_realloc(NULL, 10);
  nh_test_fill(p, 10, 7);
  size_t n = 10;
  while (n < (16u << 20)) {
    size_t m = n * 3;
    p = nh_realloc(p, m);
    assert_non_null(p);
    assert_true(nh_test_intact(p, n, 7));
    nh_test_fill(p, m, 7);
    n = m;
  }
  while (n > 8) {
    size_t m = n / 5;
    p = nh_realloc(p, m);
    assert_true(nh_test_intact(p, m, 7));
    n = m;
  }
  void *z = nh_realloc(p, 0);
  assert_non_null(z);
  nh_free(z);
}

static void test_realloc_grows_in_place(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  uint8_t *p = nh_malloc_node(300000, 3); /* a large block in node 3's empty segment */
  nh_test_fill(p, 300000, 3);
  uint64_t in_use = nh_test_node_stats(3).in_use;
  uint8_t *q = nh_realloc(p, 1500000);  /* the pages after it are free: no move */
  assert_ptr_equal(q, p);
  assert_true(nh_usable_size(q) >= 1500000);
  assert_true(nh_test_intact(q, 300000, 3));
  assert_true(nh_test_node_stats(3).in_use > in_use);
  memset(q + 300000, 7, 1200000);
  uint8_t *h = nh_realloc(q, 5u << 20); /* becomes huge: moves, keeps node 3 */
  assert_int_equal(nh_ptr_node(h), 3);
  assert_true(nh_test_intact(h, 300000, 3));
  uint8_t *g = nh_realloc(h, 9u << 20); /* huge grows in place when the address space allows */
  assert_non_null(g);
  assert_int_equal(nh_ptr_node(g), 3);
  assert_true(nh_test_intact(g, 300000, 3));
  assert_true(nh_usable_size(g) >= (9u << 20));
  memset(g, 1, 9u << 20);
  nh_free(g);
}

/* A block realloc moves to grow gets a quarter more than it had (a block
 * grown a little at a time moves a logarithmic number of times); one grown
 * past NH_GROW_IN_PAGES moves into whole pages, which grow in place. */
static void test_realloc_growth_rule(void **state) {
  (void)state;
  nh_test_start(NULL, NULL);
  uint8_t *p = nh_malloc(1000);
  size_t old = nh_usable_size(p);
  nh_test_fill(p, old, 5);
  uint8_t *q = nh_realloc(p, old + 1);
  assert_true(nh_usable_size(q) >= old + old / 4);
  assert_true(nh_test_intact(q, old, 5));
  size_t moves = 0, size = 16;
  uint8_t *s = nh_malloc(size);
  while (size < 30000) { /* a string built 64 bytes at a time */
    uint8_t *t = nh_realloc(s, size += 64);
    moves += t != s;
    s = t;
  }
  assert_true(moves < 32); /* 21; by classes alone, one move each: 70 */
  uint8_t *g = nh_realloc(s, 40000); /* past NH_GROW_IN_PAGES: whole pages */
  assert_int_equal(nh_usable_size(g) % NH_PAGE_SIZE, 0);
  nh_test_fill(g, 40000, 6);
  uint8_t *h = nh_realloc(g, 200000); /* the pages after it are free: no move */
  assert_ptr_equal(h, g);
  assert_true(nh_test_intact(h, 40000, 6));
  nh_free(h);
  nh_free(q);
  nh_heaps_check();
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
}

/* realloc's inline path (api/internal.h, nh_realloc_inline): a small or
 * large block that still fits stays; a small one that moves leaves its old
 * block free (a second free of it is caught) and keeps its node when the
 * calling CPU serves another (the block popped from that CPU's slab goes
 * back). */
static void test_realloc_inline(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  uint8_t *p = nh_malloc(100); /* the 112-byte class */
  nh_test_fill(p, 100, 9);
  assert_ptr_equal(nh_realloc(p, 112), p);
  assert_ptr_equal(nh_realloc(p, 60), p); /* no less than half of it */
  uint8_t *q = nh_realloc(p, 3000);
  assert_ptr_not_equal(q, p);
  assert_true(nh_usable_size(q) >= 3000);
  assert_true(nh_test_intact(q, 100, 9));
  assert_int_equal(nh_free_checked(p), NH_LOOKUP_FREED);
  uint8_t *s = nh_realloc(q, 40); /* shrinks past half: moves down */
  assert_ptr_not_equal(s, q);
  assert_true(nh_test_intact(s, 40, 9));
  assert_int_equal(nh_free_checked(q), NH_LOOKUP_FREED);

  assert_int_not_equal(nh_current_node(), 3); /* no CPU of this machine is on node 3 */
  uint8_t *r = nh_malloc_node(200, 3);
  nh_test_fill(r, 200, 4);
  for (size_t size = 300; size <= 20000; size += size / 2) {
    r = nh_realloc(r, size);
    assert_int_equal(nh_ptr_node(r), 3);
    assert_true(nh_test_intact(r, 200, 4));
  }
  uint8_t *g = nh_malloc(300000); /* past the classes: a large block of whole pages */
  size_t gs = nh_usable_size(g);
  assert_ptr_equal(nh_realloc(g, gs), g);
  assert_ptr_equal(nh_realloc(g, gs / 2), g);
  nh_free(g);
  assert_int_equal(nh_free_checked(g), NH_LOOKUP_FREED);
  nh_free(s);
  nh_free(r);
  nh_heaps_check();
  nh_trim();
  for (int n = 0; n < 4; n++) assert_int_equal(nh_test_node_stats(n).in_use, 0);
}

/* ---- lookup and bad pointers --------------------------------------------------------- */

static void test_lookup_classifies(void **state) {
  (void)state;
  nh_test_start(NULL, NULL);
  uintptr_t on_stack[4] = {0};
  static int in_data;
  assert_int_equal(nh_ptr_node(on_stack), -1);
  assert_int_equal(nh_ptr_node(&in_data), -1);
  assert_int_equal(nh_free_checked(on_stack), NH_LOOKUP_FOREIGN);
  void *libc = malloc(64);
  assert_int_equal(nh_free_checked(libc), NH_LOOKUP_FOREIGN);
  free(libc);
  static const size_t sizes[] = {48, 5000, 500000, 5 << 20};
  for (size_t i = 0; i < 4; i++) {
    uint8_t *p = nh_malloc(sizes[i]);
    assert_int_equal(nh_ptr_node(p + sizes[i] - 1), 0);
    assert_int_equal(nh_free_checked(p + 16), NH_LOOKUP_INTERIOR);
    assert_int_equal(nh_free_checked(p), NH_LOOKUP_OK);
    assert_int_not_equal(nh_free_checked(p), NH_LOOKUP_OK); /* second free is caught */
  }
}

static void expect_abort(void (*fn)(void), const char *expect) { nh_test_expect_death(fn, expect, 1); }

static void free_twice(void) {
  void *p = nh_malloc(32);
  nh_free(p);
  nh_free(p);
  nh_trim(); /* caught at the call, or here when the caches return both copies */
}
static void free_interior(void) {
  char *p = nh_malloc(100);
  nh_free(p + 32);
}
static void free_foreign(void) {
  static char x[64];
  nh_free(x + 16);
}
static void free_twice_large(void) {
  void *p = nh_malloc(600000);
  nh_free(p);
  nh_free(p);
}
static void corrupt_free_list(void) {
  uintptr_t *a = nh_malloc(32);
  uintptr_t *b = nh_malloc(32);
  nh_free(a);
  nh_free(b);         /* b's first words: its link to a (encoded) and its free mark */
  b[0] ^= 0x5a5a5a0;  /* a use-after-free write damages them (a per-CPU slab, */
  b[1] ^= 0x5a5a5a0;  /* an array, keeps only the mark; a list, both) */
  void *c = nh_malloc(32);
  void *d = nh_malloc(32);
  (void)c, (void)d;
}

/* A block given back to its span twice: the span's bit for it is set. */
static void return_twice(void) {
  nh_test_start(NULL, "cache", "mode", "off", "cache", "transfer_size", "0", NULL);
  unsigned cls = nh_size_class(64);
  void *p;
  assert_int_equal(nh_heap_refill(0, cls, nh_default_level, &p, 1), 1);
  nh_heap_drain(0, cls, &p, 1, false);
  nh_heap_drain(0, cls, &p, 1, false);
}

static void test_bad_frees_stop_the_process(void **state) {
  (void)state;
  /* the children inherit it: corrupt_free_list's next malloc must pop the
   * block it damaged from the same CPU's cache */
  assert_int_equal(pin(0), 0);
  expect_abort(free_twice, "double free");
  expect_abort(free_interior, "inside a block");
  expect_abort(free_foreign, "not allocated by numaheap");
  expect_abort(free_twice_large, "nh_free(");
  expect_abort(return_twice, "was freed twice (double free): a cache returned it to its span, which already holds it");
#if defined(NH_TRACK_ASAN) /* ASan sees the write after free first, as it would on glibc */
  nh_test_expect_death(corrupt_free_list, "use-after-poison", 0);
#else
  expect_abort(corrupt_free_list, "corrupted free list");
#endif
  unpin();
}

/* ---- nodes: placement, origin-aware free, fallback and budgets ------------------------- */

static void test_malloc_node_places(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  assert_int_equal(nh_node_count(), 4);
  static const size_t sizes[] = {16, 3000, 70000, 1 << 20, 6 << 20};
  for (int n = 0; n < 4; n++)
    for (size_t i = 0; i < 5; i++) {
      void *p = nh_malloc_node(sizes[i], n);
      assert_non_null(p);
      assert_int_equal(nh_ptr_node(p), n);
      nh_free(p);
    }
  for (int cpu = 0; cpu < 4; cpu++) { /* plain malloc follows the CPU's node */
    nh_cache_set_cpu_override(cpu);
    assert_int_equal(nh_current_node(), cpu);
    void *p = nh_malloc(100);
    assert_int_equal(nh_ptr_node(p), cpu);
    nh_free(p);
  }
  nh_cache_set_cpu_override(-1);
}

#define NBLOCKS 5000
static void *blocks[NBLOCKS];

static void *free_on_cpu1(void *arg) {
  (void)arg;
  nh_cache_set_cpu_override(1);
  for (int i = 0; i < NBLOCKS; i++) nh_free(blocks[i]);
  for (int i = 0; i < NBLOCKS; i++) {
    blocks[i] = nh_malloc(64);
    assert_int_equal(nh_ptr_node(blocks[i]), 1); /* never node 0's freed blocks */
  }
  for (int i = 0; i < NBLOCKS; i++) nh_free(blocks[i]);
  nh_cache_flush_thread();
  return NULL;
}

static void test_remote_free_goes_home(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  nh_cache_set_cpu_override(0);
  for (int i = 0; i < NBLOCKS; i++) {
    blocks[i] = nh_malloc(64);
    assert_int_equal(nh_ptr_node(blocks[i]), 0);
  }
  nh_node_stats before = nh_test_node_stats(0);
  pthread_t t;
  pthread_create(&t, NULL, free_on_cpu1, NULL);
  pthread_join(t, NULL);
  nh_node_stats after = nh_test_node_stats(0);
  assert_true(after.remote_frees - before.remote_frees >= NBLOCKS - 64); /* all but one batch */
  assert_int_equal(after.remote_frees - before.remote_frees, NBLOCKS);   /* exit flushed the rest */
  assert_int_equal(nh_test_node_stats(1).remote_frees, 0);
  nh_cache_set_cpu_override(-1);
}

static void test_migration_rebinds(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  for (int round = 0; round < 3; round++)
    for (int cpu = 0; cpu < 4; cpu++) {
      nh_cache_set_cpu_override(cpu);
      for (int i = 0; i < 200; i++) {
        void *p = nh_malloc(48);
        assert_int_equal(nh_ptr_node(p), cpu); /* from the very next allocation */
        nh_free(p);
      }
    }
  nh_cache_set_cpu_override(-1);
}

/* Allocates 64 KiB blocks at level until one lands off `home`; returns how many. */
static int fill_until_spill(int home, int level, void **keep, int cap, int *spilled_to) {
  int n = 0;
  *spilled_to = -1;
  while (n < cap) {
    void *p = nh_alloc_level(65536, 16, level);
    if (p == NULL) break;
    keep[n++] = p;
    if (nh_ptr_node(p) != home) {
      *spilled_to = nh_ptr_node(p);
      break;
    }
  }
  return n;
}

static void *keep[4096];

static void free_kept(int n) {
  for (int i = 0; i < n; i++) nh_free(keep[i]);
}

static void test_fallback_order_by_distance(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "budget", "8M", "heap", "reserve", "0", "cache", "mode",
                "off", "criticality", "appdomain.spill", "any", NULL);
  nh_cache_set_cpu_override(0);
  int spilled, n = 0, order[3];
  for (int k = 0; k < 3; k++) { /* node 0 fills, then 1 (same package), then 2, then 3 */
    int got = fill_until_spill(k == 0 ? 0 : order[k - 1], NH_LEVEL_APPDOMAIN, keep + n, 4096 - n,
                               &spilled);
    n += got;
    order[k] = spilled;
  }
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 2);
  assert_int_equal(order[2], 3);
  for (int i = 0; i < 4; i++) assert_true(nh_test_node_stats(i).committed <= (8u << 20));
  assert_true(nh_test_node_stats(0).fallback_out >= 3);
  assert_true(nh_test_node_stats(1).fallback_in >= 1);
  free_kept(n);
  nh_cache_set_cpu_override(-1);
}

static void test_spill_scopes_and_levels(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "budget", "8M", "heap", "reserve", "2M", "cache", "mode",
                "off", "criticality", "task.limit", "50%", "criticality", "task.spill", "none",
                "criticality", "appdomain.spill", "package", "criticality", "process.spill",
                "none", NULL);
  nh_cache_set_cpu_override(0);
  /* task: stops at 50% of (8M - 2M) = 3M on node 0, no spill */
  int spilled, n = fill_until_spill(0, NH_LEVEL_TASK, keep, 4096, &spilled);
  assert_int_equal(spilled, -1);
  assert_true(nh_test_node_stats(0).committed <= (3u << 20));
  assert_true(nh_test_node_stats(0).committed > (2u << 20));
  assert_int_equal(nh_test_node_stats(0).failures[NH_LEVEL_TASK], 1);
  /* appdomain: up to 6M on node 0, then node 1 only (same package) */
  int m = fill_until_spill(0, NH_LEVEL_APPDOMAIN, keep + n, 4096 - n, &spilled);
  assert_int_equal(spilled, 1);
  assert_true(nh_test_node_stats(0).committed <= (6u << 20));
  n += m;
  while (n < 4096 && (keep[n] = nh_alloc_level(65536, 16, NH_LEVEL_APPDOMAIN)) != NULL) {
    assert_true(nh_ptr_node(keep[n]) == 0 || nh_ptr_node(keep[n]) == 1);
    n++;
  }
  assert_true(nh_test_node_stats(2).committed == 0 && nh_test_node_stats(3).committed == 0);
  /* process: reaches node 0's reserve, no further */
  uint64_t before = nh_test_node_stats(0).committed;
  while (n < 4096 && (keep[n] = nh_alloc_level(65536, 16, NH_LEVEL_PROCESS)) != NULL) {
    assert_int_equal(nh_ptr_node(keep[n]), 0);
    n++;
  }
  assert_true(nh_test_node_stats(0).committed > before);
  assert_true(nh_test_node_stats(0).committed <= (8u << 20));
  assert_true(nh_test_node_stats(0).level_committed[NH_LEVEL_PROCESS] > 0);
  errno = 0;
  assert_null(nh_alloc_level(65536, 16, NH_LEVEL_PROCESS));
  free_kept(n);
  /* freed memory serves the local node again */
  void *p = nh_alloc_level(65536, 16, NH_LEVEL_TASK);
  assert_int_equal(nh_ptr_node(p), 0);
  nh_free(p);
  nh_cache_set_cpu_override(-1);
}

static void test_budget_failure_and_recovery(void **state) {
  (void)state;
  nh_test_start("numa:2 core:1 pu:1", "heap", "budget", "16M", "criticality", "appdomain.spill",
                "none", NULL);
  nh_cache_set_cpu_override(0);
  int n = 0;
  while (n < 4096 && (keep[n] = nh_malloc(100000)) != NULL) n++;
  assert_true(n > 10 && n < 4096);
  assert_int_equal(errno, ENOMEM);
  assert_non_null(strstr(nh_last_error(), "out of memory"));
  assert_true(nh_test_node_stats(0).failures[NH_LEVEL_APPDOMAIN] >= 1);
  assert_int_equal(nh_test_node_stats(1).committed, 0);
  free_kept(n);
  void *p = nh_malloc(100000); /* recovers after frees */
  assert_non_null(p);
  nh_free(p);
  nh_cache_set_cpu_override(-1);
}

#include "numa/os.h"

static void test_reserve_survives_os_out_of_memory(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "budget", "32M", "heap", "reserve", "4M", "cache", "mode",
                "off", "criticality", "process.spill", "none", NULL);
  nh_cache_set_cpu_override(0);
  assert_true(nh_test_node_stats(0).reserve_ready >= (4u << 20));
  nh_os_faults f = {-1, 0, 0, 0}; /* from now on the OS refuses every new mapping */
  nh_os_set_faults(&f);
  int n = 0;
  errno = 0;
  while (n < 4096 && (keep[n] = nh_alloc_level(65536, 16, NH_LEVEL_APPDOMAIN)) != NULL) n++;
  /* the first span's segment may exist already: what it holds is all ordinary levels get */
  assert_true(n < 64);
  int before = n;
  while (n < 4096 && (keep[n] = nh_alloc_level(65536, 16, NH_LEVEL_PROCESS)) != NULL) {
    assert_int_equal(nh_ptr_node(keep[n]), 0); /* the reserve is node 0's own */
    memset(keep[n], 0x5c, 65536);
    n++;
  }
  assert_true(n - before >= 48); /* ~4 MiB of 64 KiB blocks came from the reserve */
  assert_true(nh_os_faults_injected() > 0);
  nh_os_set_faults(NULL);
  free_kept(n);
  nh_cache_set_cpu_override(-1);
}

static void test_trim_returns_memory(void **state) {
  (void)state;
  nh_test_start(NULL, NULL);
  uint64_t base = nh_test_node_stats(0).committed;
  for (int i = 0; i < 2000; i++) keep[i] = nh_malloc(8000);
  uint64_t full = nh_test_node_stats(0).committed;
  assert_true(full >= base + 2000 * 8000);
  for (int i = 0; i < 2000; i++) nh_free(keep[i]);
  nh_trim();
  nh_node_stats s = nh_test_node_stats(0);
  assert_true(s.committed < full / 4);
  assert_true(s.purged > 0);
}

/* Bytes of the distinct spans holding the n blocks of live[]. */
static uint64_t live_span_bytes(void *const *live, int n) {
  uint64_t bytes = 0;
  for (int i = 0; i < n; i++) {
    nh_block_info a, b;
    assert_int_equal(nh_block_lookup(live[i], &a), NH_LOOKUP_OK);
    int seen = 0;
    for (int k = 0; k < i && !seen; k++)
      seen = nh_block_lookup(live[k], &b) == NH_LOOKUP_OK && b.span == a.span;
    if (!seen) bytes += (uint64_t)a.span->npages * NH_PAGE_SIZE;
  }
  return bytes;
}

/* What node's heap must keep committed for the live blocks live[]: their
 * spans and the header of every mapped segment. The pre-committed reserve
 * counts only while its pages are in use, and none are here. */
static uint64_t needed_bytes(int node, void *const *live, int n) {
  uint64_t header = (sizeof(nh_segment) + 4095) & ~(size_t)4095; /* as segment.c charges it */
  uint64_t headers = nh_test_node_stats(node).segments * header;
  return headers + live_span_bytes(live, n);
}

/* Allocates two spans' worth of blocks of class cls and one more, checks
 * that no two overlap, and frees them all but the middle one when keep_one
 * (it goes to *kept). */
static void churn_class(unsigned cls, int keep_one, void **kept) {
  size_t size = nh_class_size(cls);
  int n = (int)((size_t)nh_class_pages(cls) * NH_PAGE_SIZE / size) * 2 + 1;
  assert_true(n <= NBLOCKS * 2);
  static void *b[NBLOCKS * 2];
  size_t marked = size < 64 ? size : 64;
  for (int i = 0; i < n; i++) {
    assert_non_null(b[i] = nh_malloc(size));
    nh_test_fill(b[i], marked, (uint32_t)i);
  }
  for (int i = 0; i < n; i++) {
    assert_true(nh_test_intact(b[i], marked, (uint32_t)i)); /* no two blocks overlap */
    if (keep_one && i == n / 2) *kept = b[i];
    else nh_free(b[i]);
  }
}

/* After churn through every size class, nh_trim gives back every span that
 * holds no live block (each bin used to keep one empty span, up to ~28 MiB
 * a node): what stays committed is what the live blocks need. */
static void test_trim_releases_empty_spans(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "budget", "256M", "heap", "reserve", "4M", NULL);
  nh_cache_set_cpu_override(2);
  int nlive = 0; /* a block of every third class stays live, the other classes empty */
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) {
    churn_class(cls, cls % 3 == 0, &keep[nlive]);
    if (cls % 3 != 0) continue;
    nh_test_fill(keep[nlive], nh_usable_size(keep[nlive]), (uint32_t)nlive);
    nlive++;
  }
  nh_trim();
  nh_node_stats s = nh_test_node_stats(2);
  uint64_t need = needed_bytes(2, keep, nlive);
  if (s.committed != need)
    fail_msg("node 2 keeps %llu bytes committed after trim, its live blocks need %llu",
             (unsigned long long)s.committed, (unsigned long long)need);
  nh_heaps_check();
  for (int i = 0; i < nlive; i++)
    assert_true(nh_test_intact(keep[i], nh_usable_size(keep[i]), (uint32_t)i));
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) /* the heap grows again as before */
    churn_class(cls, 0, NULL);
  for (int i = 0; i < nlive; i++) {
    assert_true(nh_test_intact(keep[i], nh_usable_size(keep[i]), (uint32_t)i));
    nh_free(keep[i]);
  }
  nh_trim();
  s = nh_test_node_stats(2);
  assert_int_equal(s.in_use, 0);
  assert_int_equal(s.committed, needed_bytes(2, NULL, 0)); /* headers only */
  nh_heaps_check();
  nh_cache_set_cpu_override(-1);
}

/* A span's free blocks are a bitmap, not a list through the blocks: a
 * refill takes them lowest first without touching them (word 0, which a
 * list's link would overwrite, still holds what the program left there),
 * every block comes out once, of its class, marked free, and the spans'
 * counts stay right. Driven through the heap directly, with the caches and
 * the transfer caches off so that frees go straight to spans. */
static void test_refill_reads_bitmaps(void **state) {
  (void)state;
  nh_test_start(NULL, "cache", "mode", "off", "cache", "transfer_size", "0", NULL);
  /* spans belong to the shard of the CPU that took them (nh_heap_shard): a
   * thread moved to the other CPU between the frees and the refill would
   * refill from that shard's spans, not the ones v freed into */
  assert_int_equal(pin(0), 0);
  enum { SPANS = 3, PER = 64, N = SPANS * PER }; /* 1 KiB blocks: 64 a 64 KiB span */
  static void *v[N], *out[N];
  unsigned cls = nh_size_class(1024);
  for (int i = 0; i < N; i++) v[i] = nh_malloc(1024);
  int node = nh_ptr_node(v[0]);
  for (int i = N; i-- > 0;) /* one block of every 8 stays live: no span empties */
    if (i % 8 != 0) {
      ((uintptr_t *)v[i])[0] = 0xfeed0000u + (uintptr_t)i;
      nh_free(v[i]);
    }
  nh_heaps_check();
  size_t got = nh_heap_refill(node, cls, nh_default_level, out, 100);
  assert_int_equal(got, 100);
  const nh_span *prev = NULL;
  for (size_t i = 0; i < got; i++) {
    nh_block_info info;
    assert_true(nh_block_is_marked_free(out[i])); /* refills hand blocks out marked */
    nh_block_clear_mark(out[i]);
    assert_int_equal(nh_block_lookup(out[i], &info), NH_LOOKUP_OK);
    nh_block_mark_free(out[i]);
    assert_int_equal(info.cls, cls);
    for (size_t j = 0; j < i; j++) assert_ptr_not_equal(out[i], out[j]);
    if (info.span == prev) assert_true((uintptr_t)out[i] > (uintptr_t)out[i - 1]); /* lowest first */
    prev = info.span;
    int k = -1; /* which of v it is: its word 0 is as the program left it */
    for (int j = 0; j < N; j++)
      if (v[j] == out[i]) k = j;
    assert_true(k >= 0 && k % 8 != 0);
    nh_track_open(out[i], sizeof(uintptr_t)); /* ASan/Valgrind builds: a free block's word */
    assert_int_equal(((uintptr_t *)out[i])[0], 0xfeed0000u + (uintptr_t)k);
  }
  nh_heaps_check();
  nh_heap_drain(node, cls, out, got, false);
  nh_heaps_check();
  for (int i = 0; i < N; i += 8) nh_free(v[i]);
  nh_heaps_check();
  unpin();
}

/* A heap that empties and refills keeps its empty segments mapped (the
 * batch pattern: 12 MiB freed, then allocated again, must not be unmapped
 * and faulted in every round), until a purge returns their pages; nh_trim
 * then unmaps all empty segments but one. */
/* A freed large block's span is kept whole for the next request of its size
 * (up to NH_LARGE_STASH in the freeing CPU's stash, then NH_LARGE_CACHE a
 * node): the same block comes back, a second free of it is still caught,
 * and nh_trim gives the kept spans back. */
static void test_large_spans_kept_for_reuse(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  const size_t big = (size_t)1 << 20;
  void *p = nh_malloc_node(big, 2);
  assert_non_null(p);
  nh_test_fill(p, big, 7);
  nh_node_stats live = nh_test_node_stats(2);
  nh_free(p);
  assert_int_equal(nh_free_checked(p), NH_LOOKUP_FREED); /* kept, yet known free */
  nh_node_stats kept = nh_test_node_stats(2);
  assert_int_equal(kept.committed, live.committed); /* its pages are still taken */
  assert_int_equal(kept.in_use, live.in_use - big);
  void *q = nh_malloc_node(big, 2);
  assert_ptr_equal(q, p); /* reused whole */
  assert_int_equal(nh_test_node_stats(2).committed, live.committed);
  void *many[NH_LARGE_CACHE + 2];
  for (int i = 0; i < NH_LARGE_CACHE + 2; i++) many[i] = nh_malloc_node(big + 4096, 2);
  for (int i = 0; i < NH_LARGE_CACHE + 2; i++) nh_free(many[i]); /* beyond the cache: released */
  nh_free(q);
  nh_heaps_check();
  nh_trim();
  nh_node_stats trimmed = nh_test_node_stats(2);
  assert_int_equal(trimmed.in_use, 0);
  assert_true(trimmed.committed < live.committed); /* the kept spans went back and were purged */
  nh_heaps_check();
}

/* A large block freed on a CPU goes to that CPU's stash, and only that CPU's
 * next request of the same size takes it back: another CPU, or another
 * size, is served elsewhere. A stash holds NH_LARGE_STASH spans, the next
 * go to the node's kept spans; a second free of a stashed block is caught;
 * nh_trim empties the stashes. */
static void test_large_stash_per_cpu(void **state) {
  (void)state;
  /* no decay pass while it runs: one gives the kept spans back */
  nh_test_start("numa:1 core:2 pu:1", "heap", "purge_delay", "3600000", NULL);
  if (!have_two_cpus()) skip();
  nh_heap *h = &nh_g.heap[0];
  const size_t big = (size_t)512 << 10;
  assert_int_equal(pin(0), 0);
  void *p = nh_malloc(big);
  assert_non_null(p);
  uint64_t committed = nh_test_node_stats(0).committed;
  nh_free(p);
  assert_int_equal(atomic_load(&h->stash[0].n), 1);
  assert_int_equal(nh_free_checked(p), NH_LOOKUP_FREED); /* stashed, yet known free */
  assert_int_equal(atomic_load(&h->stash[0].n), 1);      /* and stashed once */
  assert_int_equal(nh_test_node_stats(0).committed, committed);
  assert_int_equal(pin(1), 0);
  void *q = nh_malloc(big); /* CPU 1: not CPU 0's */
  assert_non_null(q);
  assert_ptr_not_equal(q, p);
  nh_free(q);
  assert_int_equal(atomic_load(&h->stash[1].n), 1);
  assert_int_equal(pin(0), 0);
  void *other = nh_malloc(big + ((size_t)64 << 10)); /* another size: not from the stash */
  assert_ptr_not_equal(other, p);
  assert_int_equal(atomic_load(&h->stash[0].n), 1);
  void *r = nh_malloc(big);
  assert_ptr_equal(r, p); /* CPU 0's, whole */
  assert_int_equal(atomic_load(&h->stash[0].n), 0);
  nh_test_fill(r, big, 3);
  void *more[NH_LARGE_STASH + 1];
  for (int i = 0; i < NH_LARGE_STASH + 1; i++) more[i] = nh_malloc(big);
  for (int i = 0; i < NH_LARGE_STASH + 1; i++) nh_free(more[i]);
  assert_int_equal(atomic_load(&h->stash[0].n), NH_LARGE_STASH);
  assert_int_equal(h->large_cached, 1); /* the stash was full: the node keeps it */
  nh_free(r);
  nh_free(other);
  nh_heaps_check();
  nh_trim();
  assert_int_equal(atomic_load(&h->stash[0].n), 0);
  assert_int_equal(atomic_load(&h->stash[1].n), 0);
  nh_node_stats trimmed = nh_test_node_stats(0);
  assert_int_equal(trimmed.in_use, 0);
  assert_true(trimmed.committed < committed); /* given back and purged */
  nh_heaps_check();
  unpin();
}

/* A stashed span larger than the request is cut: the rest stays in the
 * CPU's stash, where the block before it grows into it in place. A request
 * that will grow (realloc past NH_GROW_IN_PAGES) takes the largest stashed
 * span; a full stash keeps its largest spans and sends the smallest to the
 * node. */
static void test_large_stash_cut_and_join(void **state) {
  (void)state;
  /* no decay pass while it runs: one gives the kept spans back */
  nh_test_start("numa:1 core:2 pu:1", "heap", "purge_delay", "3600000", NULL);
  if (!have_two_cpus()) skip();
  nh_heap *h = &nh_g.heap[0];
  assert_int_equal(pin(0), 0);
  void *x = nh_malloc((size_t)512 << 10); /* 8 pages */
  void *y = nh_malloc(300000);            /* 5 pages */
  void *big = nh_malloc((size_t)1 << 20);  /* 16 pages */
  nh_free(big);
  assert_int_equal(atomic_load(&h->stash[0].n), 1);
  uint8_t *s = nh_malloc(20000);
  nh_test_fill(s, 20000, 9);
  uint8_t *g = nh_realloc(s, 40000); /* its first page; the other 15 stay stashed */
  assert_ptr_equal(g, big);
  assert_true(nh_test_intact(g, 20000, 9));
  assert_int_equal(nh_usable_size(g), NH_PAGE_SIZE);
  assert_int_equal(atomic_load(&h->stash[0].n), 1);
  uint64_t in_use = nh_test_node_stats(0).in_use;
  uint8_t *j = nh_realloc(g, 700000); /* into the stashed rest, in place; 5 pages stay */
  assert_ptr_equal(j, big);
  assert_int_equal(nh_usable_size(j), 11 * NH_PAGE_SIZE);
  assert_true(nh_test_intact(j, 20000, 9));
  memset(j, 1, 700000);
  assert_int_equal(nh_test_node_stats(0).in_use - in_use, 10 * NH_PAGE_SIZE);
  assert_int_equal(atomic_load(&h->stash[0].n), 1);
  nh_heaps_check();
  unsigned cached = h->large_cached;
  nh_free(j); /* stash: 5 and 11 pages */
  assert_int_equal(atomic_load(&h->stash[0].n), 2);
  nh_free(x); /* full: the 8 pages stay, the 5 go to the node */
  assert_int_equal(h->large_cached, cached + 1);
  assert_int_equal(h->large_cache[h->large_cached - 1]->npages, 5);
  nh_free(y); /* 5 pages, the smallest: to the node */
  assert_int_equal(h->large_cached, cached + 2);
  assert_int_equal(nh_free_checked(y), NH_LOOKUP_FREED);
  assert_int_equal(nh_free_checked(x), NH_LOOKUP_FREED);
  nh_heaps_check();
  nh_trim();
  assert_int_equal(atomic_load(&h->stash[0].n), 0);
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  nh_heaps_check();
  unpin();
}

/* The node's kept large spans are resident: a span of a size class that
 * finds no other resident pages takes theirs rather than faulting in new
 * ones (committed does not grow), and the CPU's stash stays. */
static void test_kept_large_spans_serve_class_spans(void **state) {
  (void)state;
  /* no decay pass while it runs: one gives the kept spans back */
  nh_test_start("numa:1 core:2 pu:1", "heap", "purge_delay", "3600000", NULL);
  nh_heap *h = &nh_g.heap[0];
  assert_int_equal(pin(0), 0);
  enum { NBIG = NH_LARGE_STASH + 4, NSMALL = 32 };
  void *big[NBIG], *small[NSMALL];
  for (int i = 0; i < NBIG; i++) assert_non_null(big[i] = nh_malloc((size_t)512 << 10));
  uint64_t committed = nh_test_node_stats(0).committed;
  unsigned cached = h->large_cached;
  for (int i = 0; i < NBIG; i++) nh_free(big[i]);
  assert_int_equal(atomic_load(&h->stash[0].n), NH_LARGE_STASH);
  assert_int_equal(h->large_cached, cached + 4);
  assert_int_equal(nh_test_node_stats(0).committed, committed);
  for (int i = 0; i < NSMALL; i++) { /* 512 KiB of 16 KiB blocks: 4 spans of 2 pages */
    assert_non_null(small[i] = nh_malloc((size_t)16 << 10));
    nh_test_fill(small[i], (size_t)16 << 10, (uint8_t)i);
  }
  assert_int_equal(nh_test_node_stats(0).committed, committed); /* no page faulted in */
  assert_int_equal(h->large_cached, 0);
  assert_int_equal(atomic_load(&h->stash[0].n), NH_LARGE_STASH);
  for (int i = 0; i < NSMALL; i++) {
    assert_true(nh_test_intact(small[i], (size_t)16 << 10, (uint8_t)i));
    nh_free(small[i]);
  }
  nh_heaps_check();
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  nh_heaps_check();
  unpin();
}

enum { PER_SPAN = NH_PAGE_SIZE / 8192 };

/* Fills b[0, spans) with 8 KiB blocks: one span of them a page, the spans
 * in a row (the caller's pinned CPU and settings make them so). */
static void fill_page_spans(void *b[][PER_SPAN], int spans) {
  for (int i = 0; i < spans; i++)
    for (int j = 0; j < PER_SPAN; j++) assert_non_null(b[i][j] = nh_malloc(8192));
  for (int i = 0; i < spans; i++)
    assert_ptr_equal((uint8_t *)b[i][0] - (uint8_t *)b[0][0], (size_t)i * NH_PAGE_SIZE);
}

/* A claim that must fault in untouched pages while free committed pages sit
 * in holes too small for it gives those past the node's share (1/NH_DIRTY_SHARE of
 * its other committed bytes) back to the OS first: the resident set does
 * not grow by the holes (the decay alone would keep them for purge_delay),
 * and the share stays for the decay, so that pages freed a moment ago are
 * not faulted in again at once. */
static void test_fault_sheds_holes(void **state) {
  (void)state;
  nh_test_start(NULL, "cache", "mode", "off", "cache", "transfer_size", "0", "heap",
                "purge_delay", "3600000", NULL);
  assert_int_equal(pin(0), 0); /* one shard's spans: see test_refill_reads_bitmaps */
  enum { SPANS = 20 };
  void *b[SPANS][PER_SPAN];
  fill_page_spans(b, SPANS);
  for (int i = 0; i < SPANS; i += 2)
    for (int j = 0; j < PER_SPAN; j++) nh_free(b[i][j]); /* holes of one page */
  nh_node_stats holes = nh_test_node_stats(0);
  assert_int_equal(holes.purged, 0);
  void *big = nh_malloc((size_t)16 * NH_PAGE_SIZE - 4096); /* 16 pages: no hole holds it */
  assert_non_null(big);
  memset(big, 7, (size_t)16 * NH_PAGE_SIZE - 4096);
  nh_node_stats after = nh_test_node_stats(0);
  /* of the holes the bin did not keep (all but one), those past the share
   * went back before the fault, and no more */
  uint64_t dirty = nh_g.heap[0].dirty_bytes, other = after.committed - dirty;
  assert_true(after.purged > 0);
  assert_true(after.purged < (uint64_t)(SPANS / 2 - 1) * NH_PAGE_SIZE);
  assert_true(dirty >= other / NH_DIRTY_SHARE); /* the share, to the page */
  assert_true(dirty < other / NH_DIRTY_SHARE + NH_PAGE_SIZE);
  assert_int_equal(after.committed, holes.committed + 16 * NH_PAGE_SIZE - after.purged);
  for (int i = 1; i < SPANS; i += 2)
    for (int j = 0; j < PER_SPAN; j++) nh_free(b[i][j]);
  nh_free(big);
  nh_heaps_check();
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  nh_heaps_check();
  unpin();
}

/* A claim that must fault in pages takes the window that faults in the
 * fewest: the free committed pages at the end of a run whose start was
 * purged, not the run's start. */
static void test_claim_faults_fewest(void **state) {
  (void)state;
  nh_test_start(NULL, "cache", "mode", "off", "cache", "transfer_size", "0", "heap",
                "purge_delay", "3600000", NULL);
  assert_int_equal(pin(0), 0); /* one shard's spans: see test_refill_reads_bitmaps */
  enum { SPANS = 40, PURGED = 24, CLAIM = 16 };
  void *b[SPANS][PER_SPAN];
  fill_page_spans(b, SPANS);
  nh_free(b[SPANS - 1][0]); /* the bin holds a span: each span emptied below goes back */
  for (int i = 0; i < PURGED; i++)
    for (int j = 0; j < PER_SPAN; j++) nh_free(b[i][j]);
  nh_trim(); /* pages [0, PURGED) free and purged */
  for (int i = PURGED; i < SPANS - 1; i++)
    for (int j = 0; j < PER_SPAN; j++) nh_free(b[i][j]); /* [PURGED, SPANS - 1) free, committed */
  nh_node_stats before = nh_test_node_stats(0);
  uint8_t *big = nh_malloc((size_t)CLAIM * NH_PAGE_SIZE - 4096); /* no committed run holds it */
  assert_non_null(big);
  /* the claim ends where the committed pages do: it faults in only
   * CLAIM - (SPANS - 1 - PURGED) pages, where the run's start faulted all */
  assert_ptr_equal(big, (uint8_t *)b[0][0] + (size_t)(SPANS - 1 - CLAIM) * NH_PAGE_SIZE);
  nh_node_stats after = nh_test_node_stats(0);
  assert_int_equal(after.committed + after.purged - before.purged,
                   before.committed + (uint64_t)(CLAIM - (SPANS - 1 - PURGED)) * NH_PAGE_SIZE);
  memset(big, 7, (size_t)CLAIM * NH_PAGE_SIZE - 4096);
  nh_free(big);
  for (int j = 1; j < PER_SPAN; j++) nh_free(b[SPANS - 1][j]);
  nh_heaps_check();
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  nh_heaps_check();
  unpin();
}

/* Free pages and kept large spans never make a request spill: when the
 * node's budget is reached, they go back to the OS and the request is served
 * at home. */
static void test_kept_large_spans_yield_to_growth(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "budget", "16M", "heap", "reserve", "0", NULL);
  void *b[12];
  for (int i = 0; i < 6; i++) b[i] = nh_malloc_node((size_t)1 << 20, 2);
  for (int i = 0; i < 6; i++) nh_free(b[i]); /* kept: 6 MiB still committed */
  for (int i = 0; i < 10; i++) {             /* another size: 10 x 1.25 MiB */
    b[i] = nh_malloc_node((size_t)5 << 18, 2);
    assert_non_null(b[i]);
    assert_int_equal(nh_ptr_node(b[i]), 2);
  }
  assert_int_equal(nh_test_node_stats(2).fallback_out, 0);
  for (int i = 0; i < 10; i++) nh_free(b[i]);
  nh_heaps_check();
}

static void test_empty_segments_stay_mapped(void **state) {
  (void)state;
  /* no decay pass while it runs (one could purge a slow run's pages) */
  nh_test_start(FOUR_NODES, "heap", "purge_delay", "3600000", NULL);
  enum { N = 12 };
  void *b[N];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) {
      b[i] = nh_malloc_node((size_t)1 << 20, 1); /* large blocks: 16 pages, 3 a segment */
      assert_non_null(b[i]);
      nh_test_fill(b[i], (size_t)1 << 20, (uint32_t)(round * N + i));
    }
    nh_node_stats full = nh_test_node_stats(1);
    assert_true(full.segments >= 4);
    for (int i = 0; i < N; i++) {
      assert_true(nh_test_intact(b[i], (size_t)1 << 20, (uint32_t)(round * N + i)));
      nh_free(b[i]);
    }
    nh_node_stats empty = nh_test_node_stats(1);
    assert_int_equal(empty.segments, full.segments); /* nothing unmapped */
    assert_int_equal(empty.purged, full.purged);     /* nor purged: the delay has not passed */
    if (round > 0) assert_int_equal(full.purged, 0); /* so the next round faulted nothing in */
  }
  nh_trim();
  nh_node_stats trimmed = nh_test_node_stats(1);
  assert_int_equal(trimmed.segments, 1); /* one empty segment kept */
  assert_int_equal(trimmed.in_use, 0);
  nh_heaps_check();
}

/* [safety] mode = paranoid: a write after free is caught when the block is
 * handed out again; a write past a huge block hits its guard page. */
static void write_after_free(void) {
  nh_test_start(NULL, "safety", "mode", "paranoid", NULL);
  char *p = nh_malloc(100);
  nh_free(p);
  p[50] = 1; /* past the two link words: only the fill can tell */
  for (int i = 0; i < 1000; i++) (void)nh_malloc(100); /* p comes back among these */
}

static void write_past_huge_block(void) {
  nh_test_start(NULL, "safety", "mode", "paranoid", NULL);
  char *p = nh_malloc(5u << 20);
  p[nh_usable_size(p)] = 1;
}

static void test_paranoid_mode(void **state) {
  (void)state;
  assert_int_equal(pin(0), 0); /* write_after_free's block comes back from the same CPU's cache */
#if defined(NH_TRACK_ASAN) /* ASan reports the write itself first */
  nh_test_expect_death(write_after_free, "use-after-poison", 0);
#else
  expect_abort(write_after_free, "was written after it was freed");
#endif
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL); /* cmocka's handler would catch it */
    write_past_huge_block();
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
  nh_test_start(NULL, "safety", "mode", "paranoid", NULL); /* and ordinary use works */
  for (int i = 0; i < 2000; i++) keep[i] = nh_malloc((size_t)(i * 41 % 9000) + 1);
  for (int i = 0; i < 2000; i++) nh_free(keep[i]);
  void *h = nh_realloc(nh_malloc(3u << 20), 7u << 20);
  memset(h, 3, 7u << 20);
  nh_free(h);
  nh_heaps_check();
  unpin();
}

/* The checker itself: a damaged span is reported, a healthy heap passes. */
static void break_a_span(void) {
  nh_test_start(FOUR_NODES, "cache", "mode", "off", NULL);
  void *p = nh_malloc(64), *q = nh_malloc(64);
  nh_free(q);
  nh_heaps_check();
  nh_block_info info;
  assert_int_equal(nh_block_lookup(p, &info), NH_LOOKUP_OK);
  info.span->used++; /* a count that no longer adds up */
  nh_heaps_check();
}

static void test_invariant_checker(void **state) {
  (void)state;
  expect_abort(break_a_span, "used + free + uncarved != capacity");
  nh_test_start(FOUR_NODES, NULL);
  for (int i = 0; i < 1000; i++) keep[i] = nh_malloc_node((size_t)(i * 37 % 70000), i % 4);
  nh_heaps_check();
  free_kept(1000);
  nh_cache_flush_thread();
  nh_heaps_check();
}

static void test_stats_print(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  void *p = nh_malloc_node(1000, 2);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_int_equal(nh_stats_print(f, 1), 0);
  fclose(f);
  assert_non_null(strstr(buf, "\"nodes\":[{\"node\":0"));
  assert_non_null(strstr(buf, "{\"node\":3"));
  assert_non_null(strstr(buf, "\"total\":"));
  free(buf);
  f = open_memstream(&buf, &len);
  assert_int_equal(nh_stats_print(f, 0), 0);
  fclose(f);
  assert_non_null(strstr(buf, "node 2"));
  assert_non_null(strstr(buf, "remote_frees"));
  free(buf);
  nh_free(p);
  nh_stats bad;
  bad.size = 12;
  bad.version = NH_STATS_VERSION;
  assert_int_equal(nh_stats_get(&bad), -1);
  assert_int_equal(errno, EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_size_classes_bound_waste),
      cmocka_unit_test(test_class_pages_hold_blocks),
      cmocka_unit_test(test_aligned_classes),
      cmocka_unit_test(test_malloc_sizes),
      cmocka_unit_test(test_malloc_zero_unique),
      cmocka_unit_test(test_nh_calloc),
      cmocka_unit_test(test_impossible_sizes),
      cmocka_unit_test(test_aligned_alloc),
      cmocka_unit_test(test_nh_realloc),
      cmocka_unit_test(test_realloc_grows_in_place),
      cmocka_unit_test(test_realloc_growth_rule),
      cmocka_unit_test(test_realloc_inline),
      cmocka_unit_test(test_lookup_classifies),
      cmocka_unit_test(test_bad_frees_stop_the_process),
      cmocka_unit_test(test_malloc_node_places),
      cmocka_unit_test(test_remote_free_goes_home),
      cmocka_unit_test(test_migration_rebinds),
      cmocka_unit_test(test_fallback_order_by_distance),
      cmocka_unit_test(test_spill_scopes_and_levels),
      cmocka_unit_test(test_budget_failure_and_recovery),
      cmocka_unit_test(test_reserve_survives_os_out_of_memory),
      cmocka_unit_test(test_trim_returns_memory),
      cmocka_unit_test(test_trim_releases_empty_spans),
      cmocka_unit_test(test_refill_reads_bitmaps),
      cmocka_unit_test(test_empty_segments_stay_mapped),
      cmocka_unit_test(test_large_spans_kept_for_reuse),
      cmocka_unit_test(test_large_stash_per_cpu),
      cmocka_unit_test(test_large_stash_cut_and_join),
      cmocka_unit_test(test_kept_large_spans_serve_class_spans),
      cmocka_unit_test(test_fault_sheds_holes),
      cmocka_unit_test(test_claim_faults_fewest),
      cmocka_unit_test(test_kept_large_spans_yield_to_growth),
      cmocka_unit_test(test_invariant_checker),
      cmocka_unit_test(test_paranoid_mode),
      cmocka_unit_test(test_stats_print),
      cmocka_unit_test(test_meta_blocks),
      cmocka_unit_test(test_meta_concurrent),
      cmocka_unit_test(test_os_clock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
