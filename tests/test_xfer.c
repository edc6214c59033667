/*
 * tests/test_xfer.c: the per-node transfer caches (numa/xfer.c): batches
 * move whole without touching the blocks, the bounds, blocks go to their own
 * node's transfer cache, trim and decay give them back, concurrent moves and
 * forks keep every block owned once, nh_heaps_check reads every block they
 * hold, a second copy of a block freed twice is caught whether it comes back
 * after its span was given back or waits while it is, and a working set
 * larger than a CPU's cache is served from the transfer cache rather than
 * the spans.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nh_pin.h"
#include "nh_test.h"

#define FOUR_NODES "package:2 numa:2 core:1 pu:1" /* CPU k on node k */
#define TWO_CPUS "numa:1 core:2 pu:1"             /* CPUs 0 and 1 on node 0 */
#define UNUSED __attribute__((unused))

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A refill's blocks handed out (as a cache hands out one): marks cleared,
 * word 0 open to the program (ASan/Valgrind builds: the API opens the
 * whole block; a span closed word 0 when it cleared its link). */
static size_t take(int node, unsigned cls, void **out, size_t n) {
  size_t got = nh_heap_refill(node, cls, nh_default_level, out, n);
  for (size_t i = 0; i < got; i++) {
    nh_block_handout(out[i]);
    nh_track_open(out[i], sizeof(uintptr_t));
  }
  return got;
}
/* ...and given back as a cache gives them: marked. */
static void give(int node, unsigned cls, void **blocks, size_t n) {
  for (size_t i = 0; i < n; i++) nh_block_mark_free(blocks[i]);
  nh_heap_drain(node, cls, blocks, n, false);
}

/* A drained batch comes back whole from the transfer cache, its blocks
 * untouched (word 0, which a span's free list would overwrite, still holds
 * what the program left there), and the stats count it. */
static void test_batches_move_whole(void **state UNUSED) {
  nh_test_start(FOUR_NODES, "cache", "mode", "off", "cache", "transfer_size", "64K", NULL);
  unsigned cls = nh_size_class(64);
  static void *out[200], *again[200];
  assert_int_equal(take(0, cls, out, 200), 200);
  nh_node_stats s0 = nh_test_node_stats(0);
  assert_int_equal(s0.xfer_misses, 200);
  for (int i = 0; i < 200; i++) ((uintptr_t *)out[i])[0] = 0xfeed0000u + (uintptr_t)i;
  give(0, cls, out, 200);
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], cls), 200);
  assert_int_equal(nh_test_node_stats(0).xfer_bytes, 200 * 64);
  assert_int_equal(take(0, cls, again, 200), 200);
  nh_node_stats s1 = nh_test_node_stats(0);
  assert_int_equal(s1.xfer_hits - s0.xfer_hits, 200);
  assert_int_equal(s1.xfer_misses, s0.xfer_misses);
  assert_int_equal(s1.xfer_bytes, 0);
  for (int i = 0; i < 200; i++) {
    assert_ptr_equal(again[i], out[i]); /* the same batch, in order */
    assert_int_equal(((uintptr_t *)again[i])[0], 0xfeed0000u + (uintptr_t)i);
  }
  give(0, cls, again, 200);
  nh_heaps_check();
}

/* The CPU shard of the span holding block p, and what shard's transfer
 * cache of (node 0, cls) holds. */
static unsigned shard_of(void *p) {
  nh_block_info info;
  assert_int_equal(nh_block_lookup(p, &info), NH_LOOKUP_OK);
  return info.span->shard;
}
static uint32_t shard_count(unsigned shard, unsigned cls) {
  return atomic_load(&nh_g.heap[0].xfer[shard * NH_CLASS_COUNT + cls].count);
}

/* A node's transfer caches and bins have a shard per CPU. A span belongs to
 * the CPU that took it, and its blocks go home to that CPU's transfer cache
 * whichever CPU frees them. A CPU whose own shard and bin are empty takes
 * another shard's transfer-cache blocks (newest first) before the node
 * grows, but grows a span of its own rather than take another shard's bin;
 * that bin it takes only when the node cannot grow. Each shard holds its
 * share of [cache] transfer_size (64K / 2 CPUs: 512 blocks of 64 B). */
static void test_shard_per_cpu(void **state UNUSED) {
  nh_test_start(TWO_CPUS, "cache", "mode", "off", "cache", "transfer_size", "64K", NULL);
  if (!have_two_cpus()) skip(); /* one CPU: nothing to compare */
  assert_int_equal(nh_g.heap[0].shards, 2);
  unsigned cls = nh_size_class(64);
  static void *a[100], *b[50], *c[50], *got[600];
  assert_int_equal(pin(0), 0);
  assert_int_equal(take(0, cls, a, 100), 100); /* CPU 0's span */
  for (int i = 0; i < 50; i++) b[i] = a[50 + i];
  give(0, cls, b, 50);
  assert_int_equal(shard_count(0, cls), 50);
  uint64_t committed = nh_test_node_stats(0).committed;
  /* CPU 1 has nothing of its own: the newest of CPU 0's transfer cache, no new span */
  assert_int_equal(pin(1), 0);
  uint64_t misses = nh_test_node_stats(0).xfer_misses;
  assert_int_equal(take(0, cls, got, 50), 50);
  for (int i = 0; i < 50; i++) assert_ptr_equal(got[i], b[i]);
  assert_int_equal(nh_test_node_stats(0).xfer_misses, misses);
  assert_int_equal(nh_test_node_stats(0).committed, committed);
  /* then a span of its own, though CPU 0's bin has free blocks */
  assert_int_equal(take(0, cls, c, 50), 50);
  assert_true(nh_test_node_stats(0).committed > committed);
  for (int i = 0; i < 50; i++) assert_int_equal(shard_of(c[i]), 1);
  /* blocks go home: CPU 0's freed on CPU 1, CPU 1's freed on CPU 0 */
  give(0, cls, got, 50);
  give(0, cls, a, 50);
  assert_int_equal(shard_count(0, cls), 100);
  assert_int_equal(pin(0), 0);
  give(0, cls, c, 50);
  assert_int_equal(shard_count(1, cls), 50);
  /* a node that cannot grow: CPU 1 takes CPU 0's bin once its own are empty */
  nh_heap *h = &nh_g.heap[0];
  assert_int_equal(pin(1), 0);
  assert_int_equal(take(0, cls, c, 50), 50); /* its own transfer cache */
  nh_heap_xfer_release(0, true);             /* everything to the spans */
  uint64_t limit[NH_LEVELS];
  for (int l = 0; l < NH_LEVELS; l++) {
    limit[l] = atomic_load(&h->limit[l]);
    atomic_store(&h->limit[l], nh_test_node_stats(0).committed);
  }
  static void *all[2048];
  size_t n1 = 0; /* CPU 1's span (1024 blocks): its free blocks first */
  while (n1 < 2048 && take(0, cls, all + n1, 1) == 1 && shard_of(all[n1]) == 1) n1++;
  assert_true(n1 >= 50 && n1 < 2048);        /* then one of CPU 0's */
  assert_int_equal(shard_of(all[n1]), 0);
  for (int l = 0; l < NH_LEVELS; l++) atomic_store(&h->limit[l], limit[l]);
  give(0, cls, all, n1 + 1);
  give(0, cls, c, 50);
  /* bounds per shard: CPU 0's holds 512 of 600 blocks, the rest goes to the spans */
  assert_int_equal(pin(0), 0);
  nh_trim();
  assert_int_equal(take(0, cls, got, 600), 600);
  give(0, cls, got, 600);
  assert_int_equal(shard_count(0, cls), 512);
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  nh_heaps_check();
  unpin();
}

/* The counters a refill and a drain write are the calling CPU's shard's: a
 * block taken on CPU 0 and given back on CPU 1 leaves CPU 0's share of
 * in_use up and CPU 1's below zero (wrapped), and the node's sums exact. */
static void test_counters_per_shard(void **state UNUSED) {
  nh_test_start(TWO_CPUS, "cache", "mode", "off", "cache", "transfer_size", "64K", NULL);
  if (!have_two_cpus()) skip();
  nh_heap *h = &nh_g.heap[0];
  unsigned cls = nh_size_class(64);
  static void *a[100];
  assert_int_equal(pin(0), 0);
  assert_int_equal(take(0, cls, a, 100), 100);
  assert_int_equal(atomic_load(&h->sst[0].allocs), 100);
  assert_int_equal(atomic_load(&h->sst[0].in_use), 100 * 64);
  assert_int_equal(atomic_load(&h->sst[1].allocs), 0);
  assert_int_equal(pin(1), 0);
  give(0, cls, a, 100);
  assert_int_equal(atomic_load(&h->sst[1].frees), 100);
  assert_int_equal(atomic_load(&h->sst[0].frees), 0);
  assert_int_equal(atomic_load(&h->sst[1].in_use), (uint64_t)0 - 100 * 64);
  /* the blocks went home to CPU 0's transfer cache: held bytes counted there */
  assert_int_equal(atomic_load(&h->sst[0].xfer_bytes), 100 * 64);
  nh_node_stats s = nh_test_node_stats(0);
  assert_int_equal(s.allocs, 100);
  assert_int_equal(s.frees, 100);
  assert_int_equal(s.in_use, 0);
  assert_int_equal(s.xfer_bytes, 100 * 64);
  nh_trim();
  s = nh_test_node_stats(0);
  assert_int_equal(s.xfer_bytes, 0);
  assert_int_equal(s.xfer_released, 100);
  nh_heaps_check();
  unpin();
}

/* Without transfer caches, a CPU refills from its own bin's spans first:
 * two CPUs that each took a span of their own get their own blocks back
 * from their own spans, wherever the blocks were freed, and the heap's
 * check finds every span on its own shard's bin. */
static void test_span_shards(void **state UNUSED) {
  nh_test_start(TWO_CPUS, "cache", "mode", "off", "cache", "transfer_size", "0", NULL);
  if (!have_two_cpus()) skip();
  unsigned cls = nh_size_class(1024);
  nh_span *first;
  static void *a[200], *b[200], *got[200];
  /* CPU 0 takes its span whole (1024 B blocks: 64 to a page) */
  assert_int_equal(pin(0), 0);
  assert_int_equal(take(0, cls, a, 1), 1);
  nh_block_info info;
  assert_int_equal(nh_block_lookup(a[0], &info), NH_LOOKUP_OK);
  first = info.span;
  size_t cap = first->capacity;
  assert_true(cap > 1 && cap <= 200);
  assert_int_equal(take(0, cls, a + 1, cap - 1), cap - 1);
  /* CPU 1: no free block anywhere, so a span of its own */
  assert_int_equal(pin(1), 0);
  assert_int_equal(take(0, cls, b, cap), cap);
  for (size_t i = 0; i < cap; i++) {
    assert_int_equal(shard_of(a[i]), 0);
    assert_int_equal(shard_of(b[i]), 1);
  }
  /* each frees the other's blocks; each gets its own back */
  give(0, cls, a, cap);
  assert_int_equal(pin(0), 0);
  give(0, cls, b, cap);
  nh_heaps_check();
  assert_int_equal(take(0, cls, got, cap), cap);
  for (size_t i = 0; i < cap; i++) assert_int_equal(shard_of(got[i]), 0);
  give(0, cls, got, cap);
  assert_int_equal(pin(1), 0);
  assert_int_equal(take(0, cls, got, cap), cap);
  for (size_t i = 0; i < cap; i++) assert_int_equal(shard_of(got[i]), 1);
  give(0, cls, got, cap);
  nh_heaps_check();
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  unpin();
}

/* nh_heaps_check reads every transfer cache: a held block that lost its
 * free mark, a block held twice and a block of another shard's span each
 * stop the process naming the cache and what is wrong (each broken in a
 * child, through the transfer cache's own put, which trusts its caller). */
static unsigned check_cls;
static void *check_blocks[8];
static void start_checked(void) {
  nh_test_start(TWO_CPUS, "cache", "mode", "off", "cache", "transfer_size", "64K", NULL);
  check_cls = nh_size_class(64);
  assert_int_equal(pin(0), 0);
  assert_int_equal(take(0, check_cls, check_blocks, 8), 8);
  give(0, check_cls, check_blocks, 8);
  assert_int_equal(shard_count(0, check_cls), 8);
  nh_heaps_check(); /* intact: passes */
}
static void put_one_cls(unsigned shard, unsigned cls, void *p) {
  bool look = false;
  uint32_t seen = nh_xfer_released(&nh_g.heap[0], cls);
  assert_int_equal(nh_xfer_put(&nh_g.heap[0], shard, cls, &p, 1, &look, seen), 1);
}
static void put_one(unsigned shard, void *p) { put_one_cls(shard, check_cls, p); }
static void break_mark(void) {
  nh_block_set_word1(check_blocks[3], nh_block_word1(check_blocks[3]) ^ 1); /* ASan: opened */
  nh_heaps_check();
}
static void break_twice(void) {
  put_one(0, check_blocks[5]);
  nh_heaps_check();
}
static void break_shard(void) {
  void *p;
  assert_int_equal(take(0, check_cls, &p, 1), 1); /* shard 0's span */
  nh_block_mark_free(p);
  put_one(1, p);
  nh_heaps_check();
}
static void test_check_reads_the_caches(void **state UNUSED) {
  if (!have_two_cpus()) skip();
  start_checked();
  nh_test_expect_death(break_mark, "lost its free mark", 1);
  nh_test_expect_death(break_twice, "is held twice", 1);
  nh_test_expect_death(break_shard, "is of another shard's span", 1);
  nh_trim();
  nh_heaps_check();
  unpin();
}

/* A second copy of a block freed twice waits in a transfer cache while the
 * first copy's return empties the block's span, which is given back: the
 * refill that takes the copy stops the process rather than hand out memory
 * that is no block of the heap. 1 KiB blocks (64 a span); transfer_size 4K
 * over 2 shards: 2 blocks a shard, so the first copy goes to the span. */
static void orphan_copy(void) {
  nh_test_start(TWO_CPUS, "cache", "mode", "off", "cache", "transfer_size", "4K", NULL);
  unsigned cls = nh_size_class(1024);
  static void *a[64], *q;
  assert_int_equal(pin(0), 0);
  assert_int_equal(take(0, cls, a, 64), 64); /* span A, whole */
  assert_int_equal(take(0, cls, &q, 1), 1);  /* span B: A is not the bin's last */
  put_one_cls(shard_of(a[0]), cls, a[0]);    /* the second copy of a[0], waiting */
  unsigned qs = shard_of(q);
  nh_block_mark_free(q);
  put_one_cls(qs, cls, q);                   /* the shard is full */
  give(0, cls, a, 64);                       /* a[0] included: A empties, is given back */
  void *out[2];
  take(0, cls, out, 2);
}
static void test_copy_of_a_given_back_span(void **state UNUSED) {
  if (!have_two_cpus()) skip();
  nh_test_expect_death(orphan_copy, "waited in a transfer cache while the other copy's return "
                                    "emptied its span", 1);
}

/* The state a second copy of a block freed twice meets when it comes back
 * after the first copy's return emptied its span. 1 KiB blocks (64 a span),
 * transfer_size 4K: span A's 64 blocks are taken; the shard's ring is filled
 * with blocks of span B; A's blocks come back (to A: the ring is full),
 * and A, not its bin's last, is given back; the ring is emptied again, so
 * that the copy would fit in it. Returns the copy, a[0], marked free. */
static void *span_given_back(const char *topo) {
  nh_test_start(topo, "cache", "mode", "off", "cache", "transfer_size", "4K", NULL);
  unsigned cls = nh_size_class(1024);
  static void *a[64], *fill[8];
  assert_int_equal(pin(0), 0);
  assert_int_equal(take(0, cls, a, 64), 64);
  uint32_t cap = nh_g.heap[0].xfer_cls[cls].cap; /* 4 on one shard, 2 on two */
  assert_true(cap >= 2 && cap <= 8);
  assert_int_equal(take(0, cls, fill, cap), cap);
  give(0, cls, fill, cap);
  assert_int_equal(shard_count(shard_of(a[0]), cls), cap);
  uint32_t released = nh_xfer_released(&nh_g.heap[0], cls);
  give(0, cls, a, 64);
  assert_int_equal(nh_xfer_released(&nh_g.heap[0], cls), released + 1);
  assert_int_equal(take(0, cls, fill, cap), cap);
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], cls), 0);
  nh_block_mark_free(a[0]);
  return a[0];
}

/* The copy's return stops the process (the drain checks the span of every
 * block it returns): let into the empty ring, no later take would look at
 * its span, since none was given back after the ring emptied. On one shard
 * (FOUR_NODES: CPU 0 alone on node 0) and on two. */
static void returned_copy(const char *topo) {
  void *p = span_given_back(topo);
  nh_heap_drain(0, nh_size_class(1024), &p, 1, false);
}
static void returned_copy_one_shard(void) { returned_copy(FOUR_NODES); }
static void returned_copy_two_shards(void) { returned_copy(TWO_CPUS); }
/* A put whose blocks were checked before a span's release (the caller read
 * the count before it) while a take emptied the ring after it: the ring is
 * checked again at the next take, which stops the process. */
static void racing_copy(void) {
  void *p = span_given_back(FOUR_NODES);
  unsigned cls = nh_size_class(1024);
  bool look = false;
  uint32_t before = nh_xfer_released(&nh_g.heap[0], cls) - 1;
  assert_int_equal(nh_xfer_put(&nh_g.heap[0], 0, cls, &p, 1, &look, before), 1); /* one shard */
  void *out;
  take(0, cls, &out, 1);
}
static void test_copy_returned_after_its_span(void **state UNUSED) {
  const char *msg = "after the span, emptied by the first copy's return, was given back";
  nh_test_expect_death(returned_copy_one_shard, msg, 1);
  if (have_two_cpus()) nh_test_expect_death(returned_copy_two_shards, msg, 1);
  nh_test_expect_death(racing_copy, "waited in a transfer cache while the other copy's return "
                                    "emptied its span", 1);
}

/* A class holds at most transfer_size bytes (2048 blocks at most); the rest
 * of a drain goes to the spans; a class whose block is over half the bound
 * is not held at all; transfer_size 0 holds nothing. */
static void test_bounds(void **state UNUSED) {
  nh_test_start(FOUR_NODES, "cache", "mode", "off", "cache", "transfer_size", "4K", NULL);
  unsigned cls = nh_size_class(64);
  static void *out[200];
  assert_int_equal(take(0, cls, out, 200), 200);
  give(0, cls, out, 200);
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], cls), 4096 / 64);
  assert_int_equal(nh_test_node_stats(0).xfer_bytes, 4096);
  assert_int_equal(nh_xfer_cap_for(4096, nh_size_class(4096)), 0);
  assert_int_equal(nh_xfer_cap_for(4096, nh_size_class(2048)), 2);
  assert_int_equal(nh_xfer_cap_for((uint64_t)1 << 30, nh_size_class(16)), NH_XFER_MAX_SLOTS);
  void *big[4];
  unsigned bcls = nh_size_class(4096);
  assert_int_equal(take(0, bcls, big, 4), 4);
  give(0, bcls, big, 4);
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], bcls), 0);
  nh_heaps_check();

  nh_test_start(FOUR_NODES, "cache", "mode", "off", "cache", "transfer_size", "0", NULL);
  assert_int_equal(take(0, cls, out, 200), 200);
  give(0, cls, out, 200);
  assert_int_equal(nh_test_node_stats(-1).xfer_bytes, 0);
  assert_int_equal(take(0, cls, out, 200), 200);
  assert_int_equal(nh_test_node_stats(-1).xfer_hits, 0);
  give(0, cls, out, 200);
}

enum { N = 600 };

static void *free_on_cpu1(void *arg) {
  void **v = arg;
  nh_cache_set_cpu_override(1);
  for (int i = 0; i < N; i++) nh_free(v[i]);
  nh_cache_flush_thread();
  return NULL;
}

/* Blocks of node 0 freed on a CPU of node 1 go to node 0's transfer cache,
 * never to node 1's, in every cache mode. */
static void test_block_goes_home(void **state UNUSED) {
  nh_test_start(FOUR_NODES, NULL);
  unsigned cls = nh_size_class(96);
  static void *v[N];
  nh_cache_set_cpu_override(0);
  for (int i = 0; i < N; i++) {
    v[i] = nh_malloc(96);
    assert_int_equal(nh_ptr_node(v[i]), 0);
  }
  pthread_t t;
  pthread_create(&t, NULL, free_on_cpu1, v);
  pthread_join(t, NULL); /* its exit flushed its cache */
  nh_cache_set_cpu_override(1);
  assert_true(nh_xfer_count(&nh_g.heap[0], cls) > 0);
  assert_int_equal(nh_xfer_count(&nh_g.heap[1], cls), 0);
  assert_int_equal(nh_test_node_stats(1).xfer_bytes, 0);
  assert_int_equal(nh_test_node_stats(0).remote_frees, N);
  for (int i = 0; i < N; i++) { /* node 1's CPU is served by node 1 only */
    v[i] = nh_malloc(96);
    assert_int_equal(nh_ptr_node(v[i]), 1);
  }
  for (int i = 0; i < N; i++) nh_free(v[i]);
  nh_cache_set_cpu_override(-1);
  nh_heaps_check();
}

/* nh_trim gives every block back to the spans, and the spans' pages to the
 * OS: the node is left with its segment headers. */
static void test_trim_empties(void **state UNUSED) {
  nh_test_start(FOUR_NODES, "cache", "mode", "off", NULL);
  unsigned cls = nh_size_class(256);
  static void *out[512];
  assert_int_equal(take(2, cls, out, 512), 512);
  give(2, cls, out, 512);
  nh_node_stats s = nh_test_node_stats(2);
  assert_true(s.xfer_bytes > 0);
  uint64_t held = nh_xfer_count(&nh_g.heap[2], cls);
  nh_trim();
  s = nh_test_node_stats(2);
  assert_int_equal(s.xfer_bytes, 0);
  assert_int_equal(s.xfer_released, held);
  assert_int_equal(nh_xfer_count(&nh_g.heap[2], cls), 0);
  assert_int_equal(s.in_use, 0);
  assert_true(s.committed < 65536); /* no span's page left: segment headers only */
  nh_heaps_check();
}

/* Decay: a pass gives back as many of the oldest blocks as the class never
 * needed since the previous pass, and starts a new window. Driven by direct
 * passes, then by the clock (a pass runs from the operations themselves). */
static void test_decay(void **state UNUSED) {
  nh_test_start(FOUR_NODES, "cache", "mode", "off", "cache", "transfer_decay", "0", NULL);
  unsigned cls = nh_size_class(128);
  static void *out[100], *few[10];
  assert_int_equal(take(0, cls, out, 100), 100);
  give(0, cls, out, 100);
  nh_heap_xfer_release(0, false); /* the window began empty: nothing unused yet */
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], cls), 100);
  assert_int_equal(take(0, cls, few, 10), 10); /* the window's low: 90 */
  give(0, cls, few, 5);                       /* back to 95 */
  nh_heap_xfer_release(0, false);
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], cls), 5);
  assert_int_equal(nh_test_node_stats(0).xfer_released, 90);
  /* the 90 oldest went: what is left is the newest five */
  void *left[5];
  assert_int_equal(take(0, cls, left, 5), 5);
  for (int i = 0; i < 5; i++) assert_ptr_equal(left[i], few[i]);
  give(0, cls, left, 5);
  give(0, cls, few + 5, 5);
  nh_heap_xfer_release(0, false); /* this window went down to 0: nothing goes */
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], cls), 10);
  nh_heap_xfer_release(0, false); /* a window without traffic: all 10 go */
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], cls), 0);
  assert_int_equal(nh_test_node_stats(0).xfer_released, 100);
  nh_trim();

  nh_test_start(FOUR_NODES, "cache", "mode", "off", "cache", "transfer_decay", "20", NULL);
  unsigned other = nh_size_class(48);
  assert_int_equal(take(0, cls, out, 100), 100);
  give(0, cls, out, 100); /* held, and never needed again */
  uint64_t released = 0;
  for (int round = 0; round < 50 && released < 100; round++) {
    sleep_ms(25);
    for (int i = 0; i < 70; i++) { /* another class's traffic looks at the clock */
      void *p;
      assert_int_equal(take(0, other, &p, 1), 1);
      give(0, other, &p, 1);
    }
    released = nh_test_node_stats(0).xfer_released;
  }
  assert_true(released >= 100);
  assert_int_equal(nh_xfer_count(&nh_g.heap[0], cls), 0);
  nh_heaps_check();
}

/* ---- threads ------------------------------------------------------------------ */

enum { THREADS = 4, BATCH = 48 };
static atomic_int stop_moving;

/* Refills a batch, stamps every block with the thread's id, checks the
 * stamps, drains: a block owned twice would show another thread's stamp. */
static void *mover(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  unsigned cls = nh_size_class(32 + 16 * (id % 2));
  void *b[BATCH];
  long rounds = 0;
  while (!atomic_load_explicit(&stop_moving, memory_order_relaxed) || rounds < 2000) {
    size_t n = take(0, cls, b, (size_t)(1 + rounds % BATCH));
    for (size_t i = 0; i < n; i++) ((uintptr_t *)b[i])[2] = id;
    for (size_t i = 0; i < n; i++)
      if (((uintptr_t *)b[i])[2] != id) fail_msg("block %p owned by two threads", b[i]);
    give(0, cls, b, n);
    rounds++;
    if (rounds > 200000) break;
  }
  return NULL;
}

static void test_concurrent_moves(void **state UNUSED) {
  /* a small bound: batches go both through the transfer cache and the spans */
  nh_test_start(FOUR_NODES, "cache", "transfer_size", "2K", NULL);
  atomic_store(&stop_moving, 0);
  pthread_t t[THREADS];
  for (uintptr_t i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, mover, (void *)(i + 1));
  sleep_ms(300);
  atomic_store(&stop_moving, 1);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  nh_heaps_check();
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  assert_int_equal(nh_test_node_stats(0).xfer_bytes, 0);
  nh_heaps_check();
}

/* fork while other threads move batches: the child finds every lock free and
 * the transfer caches consistent. */
static void test_fork_while_moving(void **state UNUSED) {
  nh_test_start(FOUR_NODES, "cache", "transfer_size", "2K", NULL);
  atomic_store(&stop_moving, 0);
  pthread_t t[2];
  for (uintptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, mover, (void *)(i + 1));
  int bad = 0; /* the first child's wait status that was not exit 0 */
  for (int f = 0; f < 20 && !bad; f++) {
    pid_t pid = fork();
    if (pid == 0) {
      unsigned cls = nh_size_class(32);
      void *b[BATCH];
      for (int r = 0; r < 100; r++) give(0, cls, b, take(0, cls, b, BATCH));
      nh_trim();
      nh_heaps_check();
      _exit(nh_test_node_stats(0).xfer_bytes == 0 ? 0 : 3);
    }
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      bad = status ? status : -1;
  }
  /* the movers stop before any failure is reported: a test that failed with
   * them still running would leave them in the next test's heaps */
  atomic_store(&stop_moving, 1);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  if (bad) fail_msg("a fork child failed (wait status 0x%x)", (unsigned)bad);
  nh_trim();
  nh_heaps_check();
}

/* A working set of 4.3 MB over 12 classes, far more than a CPU cache of
 * 64 KiB, replaced in bursts: the cache misses, and its refills are served
 * by the transfer cache, not by walking spans. Without a transfer cache
 * every refill walks spans (the control). */
static double burst_refill_hit_ratio(const char *xfer_size) {
  nh_test_start(NULL, "cache", "size", "64K", "cache", "transfer_size", xfer_size, NULL);
  static const size_t sizes[] = {16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024};
  enum { WS = 15000, BURST = 1500 };
  static void *v[WS];
  size_t bytes = 0;
  for (int i = 0; i < WS; i++) v[i] = nh_malloc(sizes[i % 12]), bytes += sizes[i % 12];
  assert_true(bytes > 4000000);
  nh_node_stats before = nh_test_node_stats(-1);
  unsigned seed = 7;
  for (int round = 0; round < 40; round++) {
    int at = (int)(rand_r(&seed) % (WS - BURST));
    for (int i = at; i < at + BURST; i++) nh_free(v[i]);
    for (int i = at; i < at + BURST; i++) v[i] = nh_malloc(sizes[i % 12]);
  }
  nh_node_stats after = nh_test_node_stats(-1);
  for (int i = 0; i < WS; i++) nh_free(v[i]);
  uint64_t hits = after.xfer_hits - before.xfer_hits;
  uint64_t misses = after.xfer_misses - before.xfer_misses;
  return hits + misses ? (double)hits / (double)(hits + misses) : 1.0;
}

static void test_working_set_keeps_hit_rate(void **state UNUSED) {
  /* one CPU, one shard: a move to the other CPU mid-burst would leave the
   * freed blocks in the first CPU's cache and transfer cache */
  assert_int_equal(pin(0), 0);
  double with = burst_refill_hit_ratio("1M");
  double without = burst_refill_hit_ratio("0");
  unpin();
  print_message("refills served by the transfer cache: %.3f (with), %.3f (without)\n", with,
                without);
  assert_true(with >= 0.9);
  assert_true(without == 0.0);
  nh_heaps_check();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batches_move_whole),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_shard_per_cpu),
      cmocka_unit_test(test_counters_per_shard),
      cmocka_unit_test(test_span_shards),
      cmocka_unit_test(test_check_reads_the_caches),
      cmocka_unit_test(test_copy_of_a_given_back_span),
      cmocka_unit_test(test_copy_returned_after_its_span),
      cmocka_unit_test(test_block_goes_home),
      cmocka_unit_test(test_trim_empties),
      cmocka_unit_test(test_decay),
      cmocka_unit_test(test_concurrent_moves),
      cmocka_unit_test(test_fork_while_moving),
      cmocka_unit_test(test_working_set_keeps_hit_rate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
