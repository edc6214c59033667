/*
 * tests/test_percpu.c: the cache protocol (refill, overflow, drain, remote
 * frees, migration between nodes, thread exit, trim, idle drain, fork) in the
 * mode NUMAHEAP_CACHE_MODE selects (ctest runs this file once per mode), and
 * the real rseq path on the real CPUs 0 and 1 (sched_setaffinity) with a
 * 2-node simulated topology whose node k holds CPU k.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nh_pin.h"
#include "nh_test.h"
#include "numa/os.h"

#define TWO_NODES "numa:2 core:1 pu:1"            /* CPU k on node k */
#define ONE_NODE "numa:1 core:2 pu:1"             /* CPUs 0 and 1 on node 0 */
#define FOUR_NODES "package:2 numa:2 core:1 pu:1" /* CPU k on node k */

static int expected_mode(void) {
  const char *m = getenv("NUMAHEAP_CACHE_MODE");
  if (m && strcmp(m, "off") == 0) return NH_CACHE_OFF;
  if (m && strcmp(m, "perthread") == 0) return NH_CACHE_PERTHREAD;
  return __rseq_size > 0 ? NH_CACHE_PERCPU : NH_CACHE_PERTHREAD;
}

static int percpu(void) { return nh_cache_mode() == NH_CACHE_PERCPU; }

static nh_cache_cpu_stats cpu_stats(int cpu) {
  nh_cache_cpu_stats s;
  assert_int_equal(nh_cache_cpu_stats_get(cpu, &s), 0);
  return s;
}


/* ---- modes ------------------------------------------------------------------------- */

static void test_mode_from_environment(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  assert_int_equal(nh_cache_mode(), expected_mode());
  assert_int_equal(nh_cache_cpu_count(), percpu() ? 2 : 0);
  nh_cache_cpu_stats s;
  assert_int_equal(nh_cache_cpu_stats_get(2, &s), -1);
  assert_int_equal(nh_cache_cpu_stats_get(-1, &s), -1);
}

static void test_mode_keys_pin_the_mode(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, "cache", "mode", "off", NULL);
  assert_int_equal(nh_cache_mode(), NH_CACHE_OFF);
  void *p = nh_malloc(100);
  nh_free(p);
  nh_cache_stats cs;
  nh_cache_stats_get(&cs);
  assert_int_equal(cs.hits, 0);
  nh_test_start(TWO_NODES, "cache", "mode", "perthread", NULL);
  assert_int_equal(nh_cache_mode(), NH_CACHE_PERTHREAD);
  nh_test_start(TWO_NODES, "cache", "mode", "percpu", NULL);
  assert_int_equal(nh_cache_mode(), __rseq_size > 0 ? NH_CACHE_PERCPU : NH_CACHE_PERTHREAD);
}

/* ---- the real rseq path on CPUs 0 and 1 ---------------------------------------------- */

static void test_rseq_hits_on_real_cpus(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  if (!percpu() || !have_two_cpus()) skip();
  for (int cpu = 0; cpu < 2; cpu++) {
    assert_int_equal(pin(cpu), 0);
    nh_cache_cpu_stats a = cpu_stats(cpu), o = cpu_stats(1 - cpu);
    for (int i = 0; i < 1000; i++) {
      void *p = nh_malloc(48);
      assert_int_equal(nh_ptr_node(p), cpu); /* the CPU's node, from its cache */
      nh_free(p);
    }
    nh_cache_cpu_stats b = cpu_stats(cpu), o2 = cpu_stats(1 - cpu);
    if (sched_getcpu() != cpu) continue; /* cannot happen while pinned */
    assert_true(b.hits - a.hits >= 990);  /* a refill or two at most */
    assert_true(b.misses - a.misses <= 10);
    assert_int_equal(o2.hits, o.hits);    /* the other CPU's cache untouched */
    assert_int_equal(b.node, cpu);
  }
  unpin();
}

/* The inline fast paths of malloc/free (percpu/cache.h's gate): open in
 * percpu mode on plain heaps, closed while any thread has a CPU override
 * (also one that exits with it) and in the other modes; open, a block freed
 * is the next one handed out on the same CPU. */
static void *override_and_exit(void *arg) {
  (void)arg;
  nh_cache_set_cpu_override(1);
  nh_free(nh_malloc(32));
  return NULL; /* exits with its override set */
}

static size_t gate(void) { return atomic_load_explicit(&nh_cache_fast_end, memory_order_acquire); }

static void test_fast_gate(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  if (!percpu() || NH_TRACKING) { /* under ASan/Valgrind every block is tracked: closed */
    assert_int_equal(gate(), 0);
    return;
  }
  assert_int_equal(gate(), NH_SMALL_MAX + 1);
  if (pin(0) == 0) {
    void *p = nh_malloc(48);
    nh_free(p);
    assert_ptr_equal(nh_malloc(48), p); /* LIFO through the CPU's slab */
    nh_free(p);
    unpin();
  }
  nh_cache_set_cpu_override(1);
  assert_int_equal(gate(), 0);
  void *q = nh_malloc(48);
  assert_int_equal(nh_ptr_node(q), 1); /* the override's node, by the full path */
  nh_free(q);
  nh_cache_set_cpu_override(-1);
  assert_int_equal(gate(), NH_SMALL_MAX + 1);
  pthread_t t;
  pthread_create(&t, NULL, override_and_exit, NULL);
  pthread_join(t, NULL);
  assert_int_equal(gate(), NH_SMALL_MAX + 1); /* its exit counted it out */
  nh_test_start(TWO_NODES, "safety", "mode", "paranoid", NULL);
  assert_int_equal(gate(), 0);
  nh_test_start(TWO_NODES, "cache", "mode", "perthread", NULL);
  assert_int_equal(gate(), 0);
  nh_test_start(TWO_NODES, NULL);
  assert_int_equal(gate(), NH_SMALL_MAX + 1);
}

#define MANY 3000
static void *many[MANY];

static void test_refill_overflow_and_trim(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, "cache", "size", "32K", NULL);
  if (!percpu() || !have_two_cpus()) skip();
  assert_int_equal(pin(0), 0);
  nh_cache_cpu_stats a = cpu_stats(0);
  for (int i = 0; i < MANY; i++) {
    many[i] = nh_malloc(64);
    nh_test_fill(many[i], 64, (uint32_t)i);
  }
  nh_cache_cpu_stats b = cpu_stats(0);
  /* 32K / (16 * 64) = 32 slots, batch 16: one refill per 16 blocks */
  assert_true(b.refills - a.refills >= MANY / 16);
  assert_true(b.refills - a.refills <= MANY / 16 + 2);
  assert_true(b.hits - a.hits >= MANY - MANY / 16 - 2);
  for (int i = 0; i < MANY; i++) {
    assert_true(nh_test_intact(many[i], 64, (uint32_t)i));
    nh_free(many[i]);
  }
  nh_cache_cpu_stats c = cpu_stats(0);
  /* overflows grew the class 16 -> 32 (32K / 16) -> 64 -> 128 slots (32K / 4), no further */
  assert_true(c.drains - b.drains >= (MANY - 128) / 16);
  assert_true(c.blocks <= 128 + 16); /* never above its capacity (plus what the class held) */
  assert_true(c.blocks > 64);        /* it did grow past 1/16 of the budget */
  assert_true(c.capacity_bytes <= 32 * 1024);
  /* a double free of a cached block is still caught */
  void *p = nh_malloc(64);
  nh_free(p);
  assert_int_equal(nh_free_checked(p), NH_LOOKUP_FREED);
  /* nh_trim empties every CPU's cache, this one and CPU 1's */
  assert_int_equal(pin(1), 0);
  for (int i = 0; i < 100; i++) many[i] = nh_malloc(200);
  for (int i = 0; i < 100; i++) nh_free(many[i]);
  assert_true(cpu_stats(1).blocks > 0);
  assert_int_equal(pin(0), 0);
  nh_trim();
  assert_int_equal(cpu_stats(0).blocks, 0);
  assert_int_equal(cpu_stats(1).blocks, 0);
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  assert_int_equal(nh_test_node_stats(1).in_use, 0);
  unpin();
}

/* The CPU's capacity grows class by class within the byte budget; what does
 * not fit is served by the heap; a drain gives the capacity back. */
static void test_byte_budget(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, "cache", "size", "64K", NULL);
  if (!percpu() || !have_two_cpus()) skip();
  assert_int_equal(pin(0), 0);
  nh_trim();
  assert_int_equal(cpu_stats(0).capacity_bytes, 0);
  for (size_t size = 16; size <= 8192; size = size * 5 / 4 + 16) {
    for (int i = 0; i < 200; i++) {
      many[i] = nh_malloc(size);
      nh_test_fill(many[i], size, (uint32_t)(i + size));
    }
    for (int i = 0; i < 200; i++) {
      assert_true(nh_test_intact(many[i], size, (uint32_t)(i + size)));
      nh_free(many[i]);
    }
    nh_cache_cpu_stats s = cpu_stats(0);
    assert_true(s.capacity_bytes <= 64 * 1024);
    assert_true(s.bytes <= s.capacity_bytes);
  }
  /* it did grow: each class up to 64K / 16 = 4K bytes, and the ~18 classes up
   * to 2 KiB that fit at least two slots were all in use */
  assert_true(cpu_stats(0).capacity_bytes > 16 * 1024);
  nh_trim();
  assert_int_equal(cpu_stats(0).capacity_bytes, 0);
  assert_int_equal(cpu_stats(0).blocks, 0);
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  unpin();
}

/* When the budget is spent, a class that needs room takes it from the other
 * classes (idle ones first) instead of being served by the heap: classes
 * used in turn each end up cached, and the CPU stays within its budget. */
static void test_capacity_moves_between_classes(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, "cache", "size", "64K", NULL);
  if (!percpu() || !have_two_cpus()) skip();
  assert_int_equal(pin(0), 0);
  nh_trim();
  static const size_t sizes[] = {1024, 1280, 1536, 1792, 2048, 2560, 3072};
  uint64_t steals = cpu_stats(0).steals;
  for (int round = 0; round < 3; round++)
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
      for (int i = 0; i < 24; i++) many[i] = nh_malloc(sizes[k]);
      for (int i = 0; i < 24; i++) nh_free(many[i]);
      nh_cache_cpu_stats s = cpu_stats(0);
      assert_true(s.capacity_bytes <= 64 * 1024);
      assert_true(s.bytes <= s.capacity_bytes);
    }
  assert_true(cpu_stats(0).steals > steals); /* 7 classes of up to 16K each do not fit 64K */
  /* the class in use now is cached, not served by the heap one call at a
   * time: a burst of one batch of it (64K / 32 of 1 KiB blocks: 2) comes
   * back from the cache */
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 2; i++) many[i] = nh_malloc(1024);
    for (int i = 0; i < 2; i++) nh_free(many[i]);
  }
  uint64_t hits = cpu_stats(0).hits, misses = cpu_stats(0).misses;
  for (int i = 0; i < 2; i++) many[i] = nh_malloc(1024);
  assert_int_equal(cpu_stats(0).hits - hits, 2);
  assert_int_equal(cpu_stats(0).misses, misses);
  for (int i = 0; i < 2; i++) nh_free(many[i]);
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  unpin();
}

/* A class whose steal found nothing (every class busy, each with more
 * misses and overflows than it in this idleness window) backs off, but is
 * not starved: once it has had more events than the busy classes, it takes
 * capacity from them within the same window (the clock is frozen, so the
 * window never ends). */
static uint64_t frozen_ns;
static uint64_t frozen_clock(void) { return frozen_ns; }

static void test_steal_backs_off_but_not_forever(void **state) {
  (void)state;
  nh_test_start(ONE_NODE, "cache", "size", "64K", NULL);
  if (!percpu()) skip();
  assert_int_equal(pin(0), 0);
  nh_trim();
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  frozen_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  nh_os_set_clock(frozen_clock);
  /* the budget spent by five busy classes of 1-2 KiB, grown on their
   * overflows towards 16 KiB each (1/4 of the budget); not big ones, which
   * would hold only their share (test_big_classes_keep_to_their_share) */
  static const size_t busy[] = {1152, 1280, 1536, 1792, 2048};
  for (int round = 0; round < 40; round++)
    for (size_t k = 0; k < 5; k++) {
      for (int i = 0; i < 16; i++) many[i] = nh_malloc(busy[k]);
      for (int i = 0; i < 16; i++) nh_free(many[i]);
    }
  assert_true(cpu_stats(0).capacity_bytes > 60 * 1024);
  uint64_t steals = cpu_stats(0).steals;
  /* a small class now misses again and again: it backs off, then steals */
  for (int round = 0; round < 400 && cpu_stats(0).steals == steals; round++) {
    for (int i = 0; i < 40; i++) many[i] = nh_malloc(1024);
    for (int i = 0; i < 40; i++) nh_free(many[i]);
  }
  assert_true(cpu_stats(0).steals > steals);
  nh_cache_cpu_stats s = cpu_stats(0);
  assert_true(s.capacity_bytes <= 64 * 1024);
  nh_os_set_clock(NULL);
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  unpin();
}

/* Big classes (two blocks over 1/16 of the budget: above 2 KiB with a
 * 64 KiB budget) together hold at most 1/8 of the budget, 8 KiB, or one
 * block of the asking class if that is more: blocks of a few big sizes used
 * once each in turn (a program's file buffers) do not keep the budget from
 * the small classes. A big class used alone is still served by the cache,
 * even one block of it over the share. Without the share, the four classes below held 18 KiB. */
static void test_big_classes_keep_to_their_share(void **state) {
  (void)state;
  nh_test_start(ONE_NODE, "cache", "size", "64K", NULL);
  if (!percpu()) skip();
  assert_int_equal(pin(0), 0);
  nh_trim();
  static const size_t sizes[] = {3072, 4096, 5120, 6144};
  for (int round = 0; round < 20; round++)
    for (size_t k = 0; k < 4; k++) {
      nh_free(nh_malloc(sizes[k]));
      nh_cache_cpu_stats s = cpu_stats(0);
      assert_true(s.bytes <= 8 * 1024);
      assert_true(s.capacity_bytes <= 8 * 1024);
    }
  assert_true(cpu_stats(0).bytes > 0); /* they are cached, within their share */
  for (size_t size = 6144; size <= 16384; size += 10240) {
    nh_trim(); /* used alone (a busier class would keep its room for a window) */
    nh_free(nh_malloc(size));
    uint64_t hits = cpu_stats(0).hits, misses = cpu_stats(0).misses;
    for (int i = 0; i < 10; i++) nh_free(nh_malloc(size));
    assert_int_equal(cpu_stats(0).hits - hits, 10);
    assert_int_equal(cpu_stats(0).misses, misses);
  }
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  unpin();
}

/* A CPU that only frees a class (a consumer's) keeps it at one batch: its
 * overflows do not grow it, so it takes no capacity from the other classes.
 * CPU 1 allocates bursts of seven classes of 1-3 KiB, CPU 0 (same node)
 * frees them all: CPU 0 steals nothing and stays within one batch a class. */
static void test_consumer_classes_stay_at_one_batch(void **state) {
  (void)state;
  nh_test_start(ONE_NODE, "cache", "size", "64K", NULL);
  if (!percpu() || !have_two_cpus()) skip();
  static const size_t sizes[] = {1024, 1280, 1536, 1792, 2048, 2560, 3072};
  assert_int_equal(pin(0), 0);
  nh_trim();
  uint64_t steals = cpu_stats(0).steals, drains = cpu_stats(0).drains;
  for (int round = 0; round < 3; round++)
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
      assert_int_equal(pin(1), 0);
      for (int i = 0; i < 64; i++) many[i] = nh_malloc(sizes[k]);
      assert_int_equal(pin(0), 0);
      for (int i = 0; i < 64; i++) nh_free(many[i]);
    }
  nh_cache_cpu_stats s = cpu_stats(0);
  assert_int_equal(s.steals, steals);
  assert_true(s.drains > drains);              /* the frees went home in batches */
  assert_true(s.capacity_bytes <= 7 * 2 * 4096); /* one batch a class: 64K / 16 / 2 */
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  unpin();
}

/* A thread that moves to a CPU of another node is served by that node from
 * its next allocation; what it frees of the old node goes home in batches. */
static void test_migration_and_remote_free_real_cpus(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  if (!percpu() || !have_two_cpus()) skip();
  assert_int_equal(pin(0), 0);
  for (int i = 0; i < MANY; i++) {
    many[i] = nh_malloc(32);
    assert_int_equal(nh_ptr_node(many[i]), 0);
  }
  assert_int_equal(pin(1), 0);
  uint64_t remote0 = nh_test_node_stats(0).remote_frees;
  nh_cache_cpu_stats a = cpu_stats(1);
  for (int i = 0; i < MANY; i++) nh_free(many[i]); /* node 0's blocks freed on CPU 1 */
  nh_cache_cpu_stats b = cpu_stats(1);
  assert_true(b.remote_sent - a.remote_sent >= MANY - 64); /* all but one buffer */
  assert_true(nh_test_node_stats(0).remote_frees - remote0 >= MANY - 64);
  for (int i = 0; i < MANY; i++) {
    many[i] = nh_malloc(32);
    assert_int_equal(nh_ptr_node(many[i]), 1); /* never node 0's blocks */
  }
  for (int i = 0; i < MANY; i++) nh_free(many[i]);
  nh_trim(); /* flushes CPU 1's remote buffer too */
  assert_int_equal(nh_test_node_stats(0).remote_frees - remote0, MANY);
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  unpin();
}

/* ---- simulated CPUs (overrides), every mode ------------------------------------------ */

static void test_override_migration_simulated(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  for (int round = 0; round < 3; round++)
    for (int cpu = 0; cpu < 4; cpu++) {
      nh_cache_set_cpu_override(cpu);
      assert_int_equal(nh_cache_current_cpu(), cpu);
      assert_int_equal(nh_cache_home_node(), cpu);
      for (int i = 0; i < 300; i++) {
        many[i] = nh_malloc(80);
        assert_int_equal(nh_ptr_node(many[i]), cpu);
      }
      for (int i = 0; i < 300; i++) nh_free(many[i]);
    }
  nh_cache_set_cpu_override(-1);
  nh_trim();
  for (int n = 0; n < 4; n++) assert_int_equal(nh_test_node_stats(n).in_use, 0);
}

#define SAME_CPU_THREADS 4
static void *same_cpu_worker(void *arg) {
  uint32_t seed = (uint32_t)(uintptr_t)arg;
  nh_cache_set_cpu_override(3);
  void *mine[256];
  for (int round = 0; round < 200; round++) {
    for (int i = 0; i < 256; i++) {
      size_t sz = 16 + (size_t)((seed + (uint32_t)i * 13) % 500);
      mine[i] = nh_malloc(sz);
      assert_int_equal(nh_ptr_node(mine[i]), 3);
      nh_test_fill(mine[i], sz, seed + (uint32_t)i);
    }
    for (int i = 0; i < 256; i++) {
      size_t sz = 16 + (size_t)((seed + (uint32_t)i * 13) % 500);
      assert_true(nh_test_intact(mine[i], sz, seed + (uint32_t)i));
      nh_free(mine[i]);
    }
  }
  return NULL; /* exit drains the thread's cache */
}

static void test_two_threads_override_the_same_cpu(void **state) {
  (void)state;
  nh_test_start(FOUR_NODES, NULL);
  nh_cache_stats before;
  nh_cache_stats_get(&before);
  pthread_t t[SAME_CPU_THREADS];
  for (int i = 0; i < SAME_CPU_THREADS; i++)
    pthread_create(&t[i], NULL, same_cpu_worker, (void *)(uintptr_t)(i * 101 + 7));
  for (int i = 0; i < SAME_CPU_THREADS; i++) pthread_join(t[i], NULL);
  nh_cache_stats after;
  nh_cache_stats_get(&after);
  if (nh_cache_mode() != NH_CACHE_OFF) assert_int_equal(after.threads - before.threads, SAME_CPU_THREADS);
  assert_int_equal(nh_test_node_stats(3).in_use, 0); /* thread exit gave everything back */
}

/* ---- idle caches ---------------------------------------------------------------------- */

static void test_idle_cache_drained(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  if (!percpu() || !have_two_cpus()) skip();
  nh_cache_set_idle_ms(20);
  assert_int_equal(pin(1), 0);
  for (int i = 0; i < 200; i++) many[i] = nh_malloc(512);
  for (int i = 0; i < 200; i++) nh_free(many[i]);
  assert_true(cpu_stats(1).blocks > 0);
  assert_int_equal(pin(0), 0);
  struct timespec ts = {0, 60 * 1000000};
  nanosleep(&ts, NULL);
  uint64_t idle0 = cpu_stats(1).idle_drains;
  for (unsigned size = 1000; size < 20000 && cpu_stats(1).blocks; size += 1000)
    nh_free(nh_malloc(size)); /* misses on CPU 0 look for idle CPUs */
  assert_int_equal(cpu_stats(1).blocks, 0);
  assert_true(cpu_stats(1).idle_drains > idle0);
  assert_int_equal(nh_test_node_stats(1).in_use, 0);
  nh_cache_set_idle_ms(1000);
  unpin();
}

/* Resident pages of cpu's region (mincore). */
static size_t region_resident(int cpu) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), n = ((size_t)1 << NH_RSEQ_STRIDE_SHIFT) / page, k = 0;
  unsigned char vec[((size_t)1 << NH_RSEQ_STRIDE_SHIFT) / 4096];
  assert_true(n <= sizeof vec);
  assert_int_equal(mincore(nh_rseq_g.base + ((size_t)cpu << NH_RSEQ_STRIDE_SHIFT),
                           n * page, vec), 0);
  for (size_t i = 0; i < n; i++) k += vec[i] & 1;
  return k;
}

/* A CPU's cache is set up by the first slow path of a thread on it: until
 * then its region is untouched (a CPU nothing ran on costs no memory). A
 * drain gives its slots' pages back and keeps the header's. */
static void test_region_set_up_on_first_use(void **state) {
  (void)state;
  if (!have_two_cpus()) skip(); /* leaves the thread on CPU 1 */
  nh_test_start(ONE_NODE, NULL);
  if (!percpu()) skip();
  nh_free(nh_malloc(64));
  assert_int_equal(nh_cache_cpu_ready(1), 1);
  assert_int_equal(nh_cache_cpu_ready(0), 0);
  assert_int_equal(region_resident(0), 0);
  nh_cache_cpu_stats s = cpu_stats(0);
  assert_int_equal(s.node, 0);
  assert_int_equal(s.hits + s.misses + s.blocks + s.capacity_bytes, 0);
  assert_int_equal(nh_cache_cpu_ready(2), -1);

  assert_int_equal(pin(0), 0);
  static void *held[8][100];
  for (int k = 0; k < 8; k++)
    for (int i = 0; i < 100; i++) held[k][i] = nh_malloc((size_t)16 << k);
  for (int k = 0; k < 8; k++)
    for (int i = 0; i < 100; i++) nh_free(held[k][i]);
  assert_int_equal(nh_cache_cpu_ready(0), 1);
  assert_true(cpu_stats(0).blocks > 0);
  size_t before = region_resident(0);
  assert_true(before >= 3); /* the header and slots of 8 classes */
  nh_trim();
  assert_int_equal(cpu_stats(0).blocks, 0);
  size_t after = region_resident(0);
  assert_true(after >= 1 && after <= 2); /* the header's page(s) */
  nh_free(nh_malloc(64)); /* slots come back, zero */
  assert_true(cpu_stats(0).hits + cpu_stats(0).misses > 0);
  unpin();
}

/* ---- stress: threads pinned and re-pinned over CPUs 0 and 1 --------------------------- */

#define STRESS_THREADS 4
#define STRESS_SLOTS 512
#define STRESS_ROUNDS 300
static void *_Atomic exchange[STRESS_SLOTS]; /* blocks handed between threads */
static _Atomic int stress_stop;

static size_t stress_size(uint32_t x) { return 8 + x % 1500; }

/* A block carries its size and seed in its first 8 bytes, the pattern after. */
static void *stress_alloc(uint32_t x) {
  size_t sz = stress_size(x);
  uint8_t *p = nh_malloc(sz);
  assert_non_null(p);
  memcpy(p, &x, sizeof x);
  nh_test_fill(p + 4, sz - 4, x);
  return p;
}
static void stress_free(void *p) {
  uint32_t x;
  memcpy(&x, p, sizeof x);
  assert_true(nh_test_intact((uint8_t *)p + 4, stress_size(x) - 4, x));
  nh_free(p);
}

static void *stress_worker(void *arg) {
  uint32_t rng = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
  void *own[64] = {0};
  for (int round = 0; round < STRESS_ROUNDS; round++) {
    pin((int)((uintptr_t)arg + (uintptr_t)round) % 2);
    for (int i = 0; i < 64; i++) {
      rng = rng * 1103515245u + 12345u;
      if (own[i]) stress_free(own[i]);
      own[i] = stress_alloc(rng >> 8);
      /* hand one block to whoever comes next (a free on another CPU, maybe node) */
      void *out = atomic_exchange_explicit(&exchange[(rng >> 4) % STRESS_SLOTS],
                                           stress_alloc(rng >> 3), memory_order_acq_rel);
      if (out) stress_free(out);
    }
    if (round % 50 == 0 && (uintptr_t)arg == 0) nh_trim(); /* drains every CPU under load */
  }
  for (int i = 0; i < 64; i++) stress_free(own[i]);
  return NULL;
}

static void test_stress_pinned_threads(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  if (!have_two_cpus()) skip();
  unpin();
  pthread_t t[STRESS_THREADS];
  for (int i = 0; i < STRESS_THREADS; i++)
    pthread_create(&t[i], NULL, stress_worker, (void *)(uintptr_t)i);
  for (int i = 0; i < STRESS_THREADS; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < STRESS_SLOTS; i++) {
    void *p = atomic_exchange_explicit(&exchange[i], NULL, memory_order_acq_rel);
    if (p) stress_free(p);
  }
  nh_trim();
  assert_int_equal(nh_test_node_stats(0).in_use, 0);
  assert_int_equal(nh_test_node_stats(1).in_use, 0);
  (void)stress_stop;
}

/* ---- fork ---------------------------------------------------------------------------------- */

static void test_fork_child_allocates(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  void *p = nh_malloc(100);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int ok = 1;
    for (int i = 0; i < 10000 && ok; i++) {
      void *q = nh_malloc((size_t)(i % 900) + 1);
      ok = q != NULL;
      nh_free(q);
    }
    nh_free(p);
    nh_trim();
    _exit(ok ? 0 : 1);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  nh_free(p);
}

/* ---- second frees ------------------------------------------------------------------------
 * The free fast path writes a block's free mark without reading it
 * (numa/heap.h): a second free is caught at the call when the block is its
 * CPU's last freed, and otherwise before the block is handed out twice.
 * Each case runs in a child pinned to CPU 0 (inherited) and must stop. */

enum { TWICE_SIZE = 64, TWICE_MAX = 200000 };

/* Allocations of the class until the process stops; a block handed out
 * twice meanwhile is the failure this guards against (exit 3). */
static void allocate_until_stopped(void *p) {
  int seen = 0;
  for (int i = 0; i < TWICE_MAX; i++)
    if (nh_malloc(TWICE_SIZE) == p && ++seen == 2) _exit(3);
}

static void twice_on_top(void) { /* the CPU's last freed block: caught at the call */
  void *p = nh_malloc(TWICE_SIZE);
  nh_free(p);
  nh_free(p);
}

static void twice_under_others(void) { /* two copies in the slab: caught at a pop */
  void *p = nh_malloc(TWICE_SIZE), *a = nh_malloc(TWICE_SIZE), *b = nh_malloc(TWICE_SIZE);
  nh_free(p);
  nh_free(a);
  nh_free(b);
  nh_free(p);
  allocate_until_stopped(p);
}

static void *listed(void) { /* a block freed and back on its span's list */
  void *volatile keep = nh_malloc(TWICE_SIZE); /* keeps the span (never freed: a child) */
  (void)keep;
  void *p = nh_malloc(TWICE_SIZE);
  nh_free(p);
  nh_trim();
  return p;
}

static void twice_listed_returned(void) { /* its cache returns it: the span has it */
  void *p = listed();
  nh_free(p);
  nh_trim();
}

static void twice_listed_handed_out(void) { /* the cache hands it out: the span has it */
  void *p = listed();
  nh_free(p);
  allocate_until_stopped(p);
}

static void test_second_free_caught_before_second_handout(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  if (pin(0) != 0) return;
  /* the full paths (perthread, off, tracking) read the mark: caught at the call */
  int fast = percpu() && !NH_TRACKING;
  nh_test_expect_death(twice_on_top, "nh_free(", 1);
  nh_test_expect_death(twice_on_top, "block already freed (double free)", 1);
  nh_test_expect_death(twice_under_others, fast ? "was freed twice (double free)" : "double free", 1);
  nh_test_expect_death(twice_listed_returned, fast ? "was freed twice (double free)" : "double free", 1);
  nh_test_expect_death(twice_listed_handed_out, fast ? "was freed twice (double free)" : "double free", 1);
  unpin();
}

/* ---- statistics ------------------------------------------------------------------------ */

static void test_stats_sum_per_cpu(void **state) {
  (void)state;
  nh_test_start(TWO_NODES, NULL);
  for (int i = 0; i < 500; i++) nh_free(nh_malloc(24));
  nh_cache_stats cs;
  nh_cache_stats_get(&cs);
  if (nh_cache_mode() == NH_CACHE_OFF) {
    assert_int_equal(cs.hits + cs.misses, 0);
    return;
  }
  assert_true(cs.hits >= 400);
  if (!percpu()) return;
  assert_int_equal(cs.cpus, 2);
  uint64_t hits = 0;
  for (int cpu = 0; cpu < nh_cache_cpu_count(); cpu++) hits += cpu_stats(cpu).hits;
  assert_true(hits <= cs.hits && hits >= 400);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mode_from_environment),
      cmocka_unit_test(test_mode_keys_pin_the_mode),
      cmocka_unit_test(test_rseq_hits_on_real_cpus),
      cmocka_unit_test(test_fast_gate),
      cmocka_unit_test(test_refill_overflow_and_trim),
      cmocka_unit_test(test_byte_budget),
      cmocka_unit_test(test_capacity_moves_between_classes),
      cmocka_unit_test(test_steal_backs_off_but_not_forever),
      cmocka_unit_test(test_big_classes_keep_to_their_share),
      cmocka_unit_test(test_consumer_classes_stay_at_one_batch),
      cmocka_unit_test(test_migration_and_remote_free_real_cpus),
      cmocka_unit_test(test_override_migration_simulated),
      cmocka_unit_test(test_two_threads_override_the_same_cpu),
      cmocka_unit_test(test_idle_cache_drained),
      cmocka_unit_test(test_region_set_up_on_first_use),
      cmocka_unit_test(test_stress_pinned_threads),
      cmocka_unit_test(test_fork_child_allocates),
      cmocka_unit_test(test_second_free_caught_before_second_handout),
      cmocka_unit_test(test_stats_sum_per_cpu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
