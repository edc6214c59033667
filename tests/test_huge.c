/*
 * tests/test_huge.c: the page layer's back end (numa/huge.c, numa/segment.c):
 * huge blocks kept per node and reused, their decay on a fake clock, budgets
 * and nh_trim with kept memory, realloc in place, and the hugepage-aware
 * purge of segments.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "nh_reliab.h"
#include "nh_test.h"
#include "numa/heap.h"
#include "numa/os.h"

#define FOUR_NODES "package:2 numa:2 core:1 pu:1" /* CPU k on node k */
#define MIB ((size_t)1 << 20)
#define MS 1000000ull

/* The fake clock the heaps read through nh_os_clock_ns (numa/os.h). */
static uint64_t fake_now = 1000000 * MS;
static uint64_t fake_clock(void) { return fake_now; }

static int setup(void **state) {
  (void)state;
  nh_os_set_clock(fake_clock);
  return 0;
}
static int teardown(void **state) {
  (void)state;
  nh_os_set_clock(NULL);
  return 0;
}

/* Page faults say whether memory was reused, except where a tool faults in
 * shadow memory of its own for addresses it has not seen (Valgrind, TSan). */
#if defined(__SANITIZE_THREAD__)
#define NH_SHADOW_TOOL 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NH_SHADOW_TOOL 1
#endif
#endif
#ifndef NH_SHADOW_TOOL
#define NH_SHADOW_TOOL 0
#endif
#define KEEPS_HUGE nh_huge_keeping()

static bool faults_tell(void) { return !NH_SHADOW_TOOL && !nh_reliab_under_valgrind(); }

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

/* One purge pass of node's heap now (what its next page claim or release
 * does once purge_delay has passed). */
static void purge_pass(int node) {
  nh_heap *h = &nh_g.heap[node];
  nh_lock_acquire(&h->page_lock);
  nh_pages_purge(h, false);
  nh_lock_release(&h->page_lock);
}

/* ---- reuse ------------------------------------------------------------------------ */

static void test_freed_16m_block_served_without_faults(void **state) {
  if (!KEEPS_HUGE) skip(); /* numa/huge.c: none kept under Valgrind */
  (void)state;
  nh_test_start(NULL, NULL);
  const size_t n = 16 * MIB;
  uint8_t *p = nh_malloc(n);
  assert_non_null(p);
  memset(p, 1, n);
  nh_free(p);
  assert_true(nh_test_node_stats(0).huge_kept >= n);
  long before = minor_faults();
  uint8_t *q = nh_malloc(n);
  memset(q, 2, n);
  long faults = minor_faults() - before;
  assert_ptr_equal(q, p);
  if (faults_tell()) assert_true(faults < 16); /* a new mapping: 4096 base pages, or 8 huge ones */
  assert_int_equal(nh_test_node_stats(0).huge_reused, 1);
  nh_free(q);
}

/* Best fit, and a kept mapping larger than the request is cut at a 4 MiB
 * unit: the rest stays kept and serves the next request. */
static void test_kept_mappings_cut_and_best_fit(void **state) {
  if (!KEEPS_HUGE) skip(); /* numa/huge.c: none kept under Valgrind */
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  uint8_t *small = nh_malloc_node(5 * MIB, 1), *big = nh_malloc_node(20 * MIB, 1);
  nh_free(small); /* kept: 8 MiB mapping */
  nh_free(big);   /* kept: 24 MiB mapping */
  assert_int_equal(nh_test_node_stats(1).huge_kept, 32 * MIB);
  uint8_t *a = nh_malloc_node(6 * MIB, 1); /* best fit: the 8 MiB one */
  assert_ptr_equal(a, small);
  uint8_t *b = nh_malloc_node(7 * MIB, 1); /* from the 24 MiB one: cut after 8 MiB */
  assert_ptr_equal(b, big);
  assert_int_equal(nh_test_node_stats(1).huge_kept, 16 * MIB);
  uint8_t *c = nh_malloc_node(10 * MIB, 1); /* the cut-off part, header page first */
  assert_ptr_equal(c, big + 8 * MIB);
  assert_int_equal(nh_test_node_stats(1).huge_kept, 4 * MIB); /* cut again after 12 MiB */
  memset(c, 3, 10 * MIB);
  nh_free(b); /* a double free of the kept block is still caught */
  assert_int_equal(nh_free_checked(b), NH_LOOKUP_FREED);
  nh_free(a);
  nh_free(c);
  nh_heaps_check();
}

/* When no kept mapping is large enough, the largest is grown (in place or
 * moved by mremap): its pages come along, and the block is intact. */
static void test_kept_mapping_grows_for_a_larger_request(void **state) {
  if (!KEEPS_HUGE) skip(); /* numa/huge.c: none kept under Valgrind */
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  uint8_t *p = nh_malloc_node(6 * MIB, 2);
  memset(p, 7, 6 * MIB);
  nh_free(p);
  long before = minor_faults();
  uint8_t *q = nh_malloc_node(14 * MIB, 2);
  assert_non_null(q);
  assert_int_equal(nh_ptr_node(q), 2);
  memset(q, 8, 6 * MIB); /* the old pages: no fault */
  if (faults_tell()) assert_true(minor_faults() - before < 16);
  memset(q, 9, 14 * MIB);
  assert_int_equal(nh_test_node_stats(2).huge_reused, 1);
  assert_int_equal(nh_test_node_stats(2).huge_kept, 0);
  nh_free(q);
  nh_heaps_check();
}

/* calloc of a reused huge block clears what the last owner wrote. */
static void test_calloc_of_reused_block_is_zero(void **state) {
  if (!KEEPS_HUGE) skip(); /* numa/huge.c: none kept under Valgrind */
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  nh_cache_set_cpu_override(0); /* on node 0, where the kept mapping is */
  const size_t n = 9 * MIB;
  uint8_t *p = nh_malloc_node(n, 0);
  memset(p, 0xff, n);
  nh_free(p);
  uint8_t *q = nh_calloc(1, n - 12345);
  assert_ptr_equal(q, p);
  for (size_t i = 0; i < n - 12345; i += 4093) assert_int_equal(q[i], 0);
  assert_int_equal(q[n - 12346], 0);
  nh_free(q);
  nh_cache_set_cpu_override(-1);
}

/* ---- decay, budgets, trim ------------------------------------------------------------ */

static void test_kept_blocks_decay_after_purge_delay(void **state) {
  if (!KEEPS_HUGE) skip(); /* numa/huge.c: none kept under Valgrind */
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "purge_delay", "1000", NULL);
  void *p = nh_malloc_node(16 * MIB, 1);
  nh_free(p);
  nh_node_stats kept = nh_test_node_stats(1);
  assert_int_equal(kept.huge_kept, 20 * MIB);
  fake_now += 500 * MS;
  void *later = nh_malloc_node(8 * MIB, 3); /* freed half a delay after the first */
  nh_free(later);
  fake_now += 499 * MS;
  void *trigger = nh_malloc_node(512 << 10, 1); /* a page claim: the pass is not due */
  nh_free(trigger);
  assert_int_equal(nh_test_node_stats(1).huge_kept, 20 * MIB); /* 999 ms: still kept */
  fake_now += 1 * MS;
  trigger = nh_malloc_node(1 * MIB, 1); /* a page claim (not the kept span): the pass is due */
  nh_free(trigger);
  nh_node_stats gone = nh_test_node_stats(1);
  assert_int_equal(gone.huge_kept, 0);
  assert_true(gone.purged >= kept.purged + 16 * MIB);
  purge_pass(3); /* node 3's block was freed 500 ms ago: stays */
  assert_int_equal(nh_test_node_stats(3).huge_kept, 12 * MIB);
  fake_now += 500 * MS;
  purge_pass(3);
  assert_int_equal(nh_test_node_stats(3).huge_kept, 0);
}

/* purge_delay = 0: nothing is kept. huge_keep bounds what is kept, oldest out first. */
static void test_keep_limits(void **state) {
  if (!KEEPS_HUGE) skip(); /* numa/huge.c: none kept under Valgrind */
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "purge_delay", "0", NULL);
  void *p = nh_malloc_node(16 * MIB, 1);
  nh_free(p);
  assert_int_equal(nh_test_node_stats(1).huge_kept, 0);
  nh_test_start(FOUR_NODES, "heap", "huge_keep", "28M", NULL);
  void *g = nh_malloc_node(11 * MIB, 1); /* mappings of 12 MiB */
  void *a = nh_malloc_node(11 * MIB, 1), *b = nh_malloc_node(11 * MIB, 1);
  void *c = nh_malloc_node(30 * MIB, 1);
  nh_free(a);
  nh_free(b);
  assert_int_equal(nh_test_node_stats(1).huge_kept, 24 * MIB);
  nh_free(c); /* larger than huge_keep: unmapped at once */
  assert_int_equal(nh_test_node_stats(1).huge_kept, 24 * MIB);
  void *d = nh_malloc_node(5 * MIB, 1); /* from b's mapping (the newest of two): cut at 8 MiB */
  assert_ptr_equal(d, b);
  assert_int_equal(nh_test_node_stats(1).huge_kept, 16 * MIB);
  nh_free(d);
  assert_int_equal(nh_test_node_stats(1).huge_kept, 24 * MIB);
  nh_free(g); /* 36 MiB would be kept: the oldest, a's, goes */
  assert_int_equal(nh_test_node_stats(1).huge_kept, 24 * MIB);
  void *e = nh_malloc_node(11 * MIB, 1); /* best fit: g's 12 MiB, not d's 8 or b's cut-off 4 */
  assert_ptr_equal(e, g);
  assert_null(nh_segment_of(a)); /* unmapped */
  nh_free(e);
}

/* Kept mappings count in committed, so budgets still hold; a request that
 * fits only without them gets them back first, and nh_trim returns them. */
static void test_budget_with_kept_blocks(void **state) {
  if (!KEEPS_HUGE) skip(); /* numa/huge.c: none kept under Valgrind */
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "budget", "32M", "heap", "reserve", "0",
                "criticality", "appdomain.spill", "none", NULL);
  void *a = nh_malloc_node(16 * MIB, 2), *b = nh_malloc_node(12 * MIB, 2);
  assert_non_null(a);
  assert_non_null(b);
  uint64_t live = nh_test_node_stats(2).committed;
  nh_free(b);
  assert_int_equal(nh_test_node_stats(2).committed, live); /* kept: still charged */
  assert_null(nh_malloc_node(20 * MIB, 2));                /* 16 + 20 > 32, kept or not */
  nh_node_stats s = nh_test_node_stats(2);
  assert_true(s.failures[NH_LEVEL_APPDOMAIN] >= 1);
  assert_int_equal(s.fallback_out, 0);
  assert_true(s.committed <= 32 * MIB);
  void *c = nh_malloc_node(14 * MIB, 2); /* 16 + 14 fits */
  assert_non_null(c);
  assert_int_equal(nh_ptr_node(c), 2);
  memset(c, 1, 14 * MIB);
  assert_true(nh_test_node_stats(2).committed <= 32 * MIB);
  nh_free(c);
  assert_true(nh_test_node_stats(2).huge_kept > 0);
  nh_trim();
  nh_node_stats t = nh_test_node_stats(2);
  assert_int_equal(t.huge_kept, 0);
  assert_true(t.committed < 17 * MIB); /* a and segment headers */
  nh_free(a);
  nh_heaps_check();
}

/* ---- realloc in place ------------------------------------------------------------------- */

static void test_huge_realloc_shrinks_and_grows_in_place(void **state) {
  if (!KEEPS_HUGE) skip(); /* numa/huge.c: none kept under Valgrind */
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  uint8_t *p = nh_malloc_node(20 * MIB, 1);
  nh_test_fill(p, 6 * MIB, 5);
  uint64_t in_use = nh_test_node_stats(1).in_use;
  uint8_t *q = nh_realloc(p, 6 * MIB); /* shrinks in place: the last 16 MiB are kept */
  assert_ptr_equal(q, p);
  assert_int_equal(nh_usable_size(q), 6 * MIB);
  assert_int_equal(nh_test_node_stats(1).huge_kept, 16 * MIB);
  assert_int_equal(nh_test_node_stats(1).in_use, in_use - 14 * MIB);
  uint8_t *r = nh_realloc(q, 18 * MIB); /* grows back into the kept part after it */
  assert_ptr_equal(r, p);
  assert_true(nh_usable_size(r) >= 18 * MIB);
  assert_true(nh_test_intact(r, 6 * MIB, 5));
  assert_int_equal(nh_test_node_stats(1).huge_kept, 0);
  memset(r, 0, 18 * MIB);
  uint8_t *s = nh_realloc(r, 1 * MIB); /* below huge sizes: moves to a large block */
  assert_true(s != r);
  nh_free(s);
  uint8_t *l = nh_malloc_node(2 * MIB, 1); /* a large block shrinks in place too */
  assert_ptr_equal(nh_realloc(l, 600 << 10), l);
  assert_int_equal(nh_usable_size(l), 640 << 10);
  nh_free(l);
  nh_heaps_check();
}

/* A huge block that cannot grow where it is (the address space after its
 * mapping is taken) moves to grow, pages and all, as glibc's realloc does
 * with mremap: its contents and node stay, its old address is no longer a
 * block, and no page is faulted in to copy it (a copy of 6 MiB would fault
 * in 1536 base pages, or three huge ones). */
static void test_huge_block_moves_to_grow(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  const size_t n = 6 * MIB;
  uint8_t *p = nh_malloc_node(n, 2);
  assert_non_null(p);
  nh_test_fill(p, n, 9);
  nh_segment *seg = nh_segment_of(p);
  uint8_t *end = (uint8_t *)seg + seg->map_size;
  /* a page right after the mapping: MAP_FIXED_NOREPLACE fails with EEXIST
   * if something is there already, which blocks the growth just as well */
  void *wall = mmap(end, NH_PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                    -1, 0);
  if (wall != MAP_FAILED && wall != (void *)end) { /* a kernel without NOREPLACE: a hint */
    munmap(wall, NH_PAGE_SIZE);
    skip();
  }
  long before = minor_faults();
  uint8_t *q = nh_realloc(p, 3 * n);
  long faults = minor_faults() - before;
  assert_non_null(q);
  assert_true(q != p);
  assert_true(nh_test_intact(q, n, 9));
  assert_int_equal(nh_ptr_node(q), 2);
  assert_true(nh_usable_size(q) >= 3 * n);
  nh_block_info info;
  assert_int_equal(nh_block_lookup(p, &info), NH_LOOKUP_FOREIGN);
  if (faults_tell() && KEEPS_HUGE) assert_true(faults < 16);
  memset(q, 1, 3 * n);
  nh_free(q);
  if (wall == (void *)end) munmap(wall, NH_PAGE_SIZE);
  nh_heaps_check();
}

/* A block realloc must move to grow past half a segment (2016 KiB) gets a
 * huge mapping rather than a large span: its later growth moves the mapping
 * rather than copying (test_huge_block_moves_to_grow), where a large block
 * would be copied once more when it outgrew a segment. */
static void test_realloc_past_half_a_segment_goes_huge(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  uint8_t *p = nh_malloc_node(1 * MIB, 3), *next = nh_malloc_node(1 * MIB, 3);
  assert_ptr_equal(next, p + MIB); /* node 3's first segment: no room after p */
  nh_test_fill(p, MIB, 4);
  uint8_t *q = nh_realloc(p, 3 * MIB);
  assert_true(q != p);
  assert_true(nh_test_intact(q, MIB, 4));
  assert_int_equal(nh_ptr_node(q), 3);
  nh_block_info info;
  assert_int_equal(nh_block_lookup(q, &info), NH_LOOKUP_OK);
  assert_null(info.span); /* huge */
  uint8_t *small = nh_realloc(nh_malloc_node(200 << 10, 3), 600 << 10); /* stays large */
  assert_int_equal(nh_block_lookup(small, &info), NH_LOOKUP_OK);
  assert_non_null(info.span);
  nh_free(small);
  nh_free(next);
  nh_free(q);
  nh_heaps_check();
}

/* Large blocks (256 KiB - 4032 KiB): a kept span serves any smaller large
 * request (best fit), cut to its size. */
static void test_kept_large_span_best_fit(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  uint8_t *p = nh_malloc_node(1536 << 10, 3);
  nh_free(p);
  uint8_t *q = nh_malloc_node(700 << 10, 3);
  assert_ptr_equal(q, p);
  assert_int_equal(nh_usable_size(q), 704 << 10);
  uint8_t *r = nh_malloc_node(800 << 10, 3); /* the pages cut off: already committed */
  assert_ptr_equal(r, p + (704 << 10));
  nh_free(q);
  nh_free(r);
  nh_heaps_check();
}

/* ---- hugepage-aware purge ------------------------------------------------------------------ */

/* Pages 1-31 (unit 0 but the header) and 32-63 (unit 1) of node 3's first
 * advised segment (the NH_THP_FIRST_SEGMENT before it are filled first: they
 * use base pages): x fills
 * unit 0, y and z unit 1. x and z are freed; two purge passes later (the
 * decay) unit 0 goes back whole, and unit 1, where y still lives, not at all
 * under huge pages (in part without them). */
static uint64_t purge_around_live_block(bool thp) {
  const size_t page = NH_PAGE_SIZE;
  void *fill[2 * NH_THP_FIRST_SEGMENT];
  for (int i = 0; i < 2 * NH_THP_FIRST_SEGMENT; i++)
    fill[i] = nh_malloc_node((i % 2 ? 32 : 31) * page, 3);
  uint8_t *x = nh_malloc_node(31 * page, 3), *y = nh_malloc_node(5 * page, 3);
  uint8_t *z = nh_malloc_node(27 * page, 3);
  nh_segment *seg = nh_segment_of(x);
  assert_int_equal(seg->advised != 0, thp);
  for (int i = 0; i < 2 * NH_THP_FIRST_SEGMENT; i++) /* a node's first segments: base pages */
    assert_int_equal(nh_segment_of(fill[i])->advised, 0);
  assert_ptr_equal(x, (uint8_t *)seg + page);
  assert_ptr_equal(y, (uint8_t *)seg + 32 * page);
  assert_ptr_equal(z, (uint8_t *)seg + 37 * page);
  memset(y, 1, 5 * page);
  nh_free(x);
  nh_free(z);
  uint64_t purged = nh_test_node_stats(3).purged;
  purge_pass(3); /* freed since the last pass: kept dirty */
  assert_int_equal(nh_test_node_stats(3).purged, purged);
  purge_pass(3);
  uint64_t now = nh_test_node_stats(3).purged - purged;
  for (size_t i = 0; i < 5 * page; i += 4096) assert_int_equal(y[i], 1);
  nh_free(y);
  for (int i = 0; i < 2 * NH_THP_FIRST_SEGMENT; i++) nh_free(fill[i]);
  nh_heaps_check();
  return now;
}

static void test_purge_keeps_huge_pages_with_live_blocks(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "huge_pages", "off", NULL);
  assert_int_equal(purge_around_live_block(false), 58 * NH_PAGE_SIZE); /* x and z */
  nh_test_start(FOUR_NODES, "heap", "huge_pages", "thp", NULL);
  if (nh_g.huge_pages != NH_HUGE_THP) skip(); /* the kernel's THP is off: nothing to test */
  assert_int_equal(purge_around_live_block(true), 31 * NH_PAGE_SIZE); /* x's unit only */
}

/* A huge block's mapping goes on huge pages only where the part of the last
 * 2 MiB unit the block reaches that it leaves empty is at most a quarter of
 * the block: a huge page is resident whole, and one and a bit units would
 * make a 4.3 MiB block take 6 MiB. */
static void test_huge_pages_only_where_the_block_fills_them(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "huge_pages", "thp", NULL);
  if (nh_g.huge_pages != NH_HUGE_THP) skip(); /* the kernel's THP is off: nothing to test */
  static const struct {
    size_t size;
    bool huge;
  } cases[] = {
      {4 * MIB + 300 * 1024, false}, /* reaches 4.36 MiB: 1.64 MiB of a unit empty */
      {6 * MIB, false},              /* 6.06 MiB: 1.94 empty, over a quarter */
      {8 * MIB, true},               /* 8.06 MiB: 1.94 empty, under a quarter */
      {12 * MIB - NH_PAGE_SIZE, true}, /* fills its last unit */
      {20 * MIB, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t before = nh_test_node_stats(2).thp_bytes;
    uint8_t *p = nh_malloc_node(cases[i].size, 2);
    assert_non_null(p);
    memset(p, 1, cases[i].size);
    uint64_t advised = nh_test_node_stats(2).thp_bytes - before;
    if (cases[i].huge != (advised >= cases[i].size))
      fail_msg("a %zu-byte block: %llu bytes advised", cases[i].size, (unsigned long long)advised);
    nh_free(p);
    nh_trim(); /* the next request maps anew, not from this one's kept mapping */
  }
  assert_int_equal(nh_test_node_stats(2).thp_bytes, 0);
}

/* A huge block about to fault in new pages first gives the node's free
 * segment pages back to the OS (kept large spans included), those past the
 * node's share, as an ordinary claim does: the resident set does not grow
 * past what is in use plus what the decay has yet to return. */
static void test_huge_block_sheds_free_segment_pages(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  nh_heap *h = &nh_g.heap[3];
  void *b[6];
  for (int i = 0; i < 6; i++) {
    b[i] = nh_malloc_node(1536 << 10, 3); /* large spans in segments */
    assert_non_null(b[i]);
    memset(b[i], 1, 1536 << 10);
  }
  for (int i = 0; i < 6; i++) nh_free(b[i]); /* kept for reuse: resident, not in use */
  assert_true(h->large_cached > 0);
  nh_node_stats before = nh_test_node_stats(3);
  uint64_t kept = 0; /* the kept spans' pages (those not in a CPU's stash) */
  for (unsigned i = 0; i < h->large_cached; i++)
    kept += (uint64_t)h->large_cache[i]->npages * NH_PAGE_SIZE;
  assert_int_equal(h->dirty_bytes, 0);
  uint8_t *p = nh_malloc_node(8 * MIB - NH_PAGE_SIZE, 3);
  assert_non_null(p);
  nh_node_stats after = nh_test_node_stats(3);
  uint64_t shed = after.purged - before.purged;
  uint64_t charged = after.committed + shed - before.committed; /* the block's */
  /* the kept spans' pages went back to their segments, and those past the
   * share (1/NH_DIRTY_SHARE of the node's other committed bytes, the new
   * block's included) to the OS, to the page */
  uint64_t excess = kept - (before.committed + charged - kept) / NH_DIRTY_SHARE;
  if (shed > excess || shed + NH_PAGE_SIZE <= excess)
    fail_msg("%llu bytes shed before an 8 MiB block, %llu past the share",
             (unsigned long long)shed, (unsigned long long)excess);
  assert_int_equal(h->large_cached, 0);
  memset(p, 2, 8 * MIB - NH_PAGE_SIZE);
  nh_free(p);
  uint8_t *q = nh_malloc_node(1536 << 10, 3); /* the segments still serve, shed pages or not */
  assert_non_null(q);
  memset(q, 3, 1536 << 10);
  nh_free(q);
  nh_heaps_check();
}

/* Spans go into huge pages already resident before another 2 MiB unit is
 * faulted in. On node 3, past the base-page segments: x takes unit 0
 * (pages 1-31), y pages 32-51 of unit 1 (resident; 52-63 never touched).
 * x is freed and two passes return unit 0 whole. A 5-page span then goes to
 * page 52, in y's resident unit, not to page 1 (a new huge page: first fit
 * did that). */
static void test_spans_pack_into_resident_huge_pages(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "huge_pages", "thp", NULL);
  if (nh_g.huge_pages != NH_HUGE_THP) skip(); /* the kernel's THP is off: nothing to test */
  const size_t page = NH_PAGE_SIZE;
  void *fill[2 * NH_THP_FIRST_SEGMENT];
  for (int i = 0; i < 2 * NH_THP_FIRST_SEGMENT; i++)
    fill[i] = nh_malloc_node((i % 2 ? 32 : 31) * page, 3);
  uint8_t *x = nh_malloc_node(31 * page, 3), *y = nh_malloc_node(20 * page, 3);
  nh_segment *seg = nh_segment_of(x);
  assert_true(seg->advised != 0);
  assert_ptr_equal(x, (uint8_t *)seg + page);
  assert_ptr_equal(y, (uint8_t *)seg + 32 * page);
  nh_free(x);
  purge_pass(3);
  purge_pass(3);
  assert_int_equal(seg->committed_pages & 0xfffffffeull, 0); /* unit 0 went back whole */
  uint8_t *v = nh_malloc_node(5 * page, 3);
  assert_ptr_equal(v, (uint8_t *)seg + 52 * page);
  nh_free(v);
  nh_free(y);
  for (int i = 0; i < 2 * NH_THP_FIRST_SEGMENT; i++) nh_free(fill[i]);
  nh_heaps_check();
}

/* The mode in force and why, for each kernel setting. */
static void test_huge_mode_resolution(void **state) {
  (void)state;
  bool ok;
  const char *why;
  assert_int_equal(nh_huge_mode_resolve(NH_HUGE_THP, NH_OS_THP_MADVISE, &ok, &why), NH_HUGE_THP);
  assert_true(ok);
  assert_non_null(strstr(why, "madvise"));
  assert_int_equal(nh_huge_mode_resolve(NH_HUGE_THP, NH_OS_THP_NEVER, &ok, &why), NH_HUGE_OFF);
  assert_false(ok);
  assert_non_null(strstr(why, "never"));
  assert_int_equal(nh_huge_mode_resolve(NH_HUGE_THP, NH_OS_THP_NONE, &ok, &why), NH_HUGE_OFF);
  assert_int_equal(nh_huge_mode_resolve(NH_HUGE_OFF, NH_OS_THP_ALWAYS, &ok, &why), NH_HUGE_OFF);
  assert_non_null(strstr(why, "huge_pages = off"));
  assert_int_equal(nh_huge_mode_resolve(NH_HUGE_HUGETLB, NH_OS_THP_NEVER, &ok, &why),
                   NH_HUGE_HUGETLB);
  assert_non_null(strstr(why, "base pages"));
}

/* hugetlb mode on a machine without reserved pages: every mapping falls
 * back (counted) and still works. */
static void test_hugetlb_falls_back(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, "heap", "huge_pages", "hugetlb", NULL);
  if (nh_os_node_free_hugepages(nh_g.heap[1].os_node) > 0) skip(); /* reserved here: the VM test */
  void *p = nh_malloc_node(5 * MIB, 1);
  memset(p, 1, 5 * MIB);
  nh_node_stats s = nh_test_node_stats(1);
  assert_true(s.hugetlb_fallbacks >= 1);
  assert_int_equal(s.hugetlb_bytes, 0);
  nh_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_freed_16m_block_served_without_faults),
      cmocka_unit_test(test_kept_mappings_cut_and_best_fit),
      cmocka_unit_test(test_kept_mapping_grows_for_a_larger_request),
      cmocka_unit_test(test_calloc_of_reused_block_is_zero),
      cmocka_unit_test(test_kept_blocks_decay_after_purge_delay),
      cmocka_unit_test(test_keep_limits),
      cmocka_unit_test(test_budget_with_kept_blocks),
      cmocka_unit_test(test_huge_realloc_shrinks_and_grows_in_place),
      cmocka_unit_test(test_huge_block_moves_to_grow),
      cmocka_unit_test(test_realloc_past_half_a_segment_goes_huge),
      cmocka_unit_test(test_kept_large_span_best_fit),
      cmocka_unit_test(test_purge_keeps_huge_pages_with_live_blocks),
      cmocka_unit_test(test_huge_pages_only_where_the_block_fills_them),
      cmocka_unit_test(test_huge_block_sheds_free_segment_pages),
      cmocka_unit_test(test_spans_pack_into_resident_huge_pages),
      cmocka_unit_test(test_huge_mode_resolution),
      cmocka_unit_test(test_hugetlb_falls_back),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
