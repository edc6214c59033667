/*
 * percpu/tcache.c: per-thread caches (see percpu/cache.h): the perthread
 * mode, the fallback of the percpu mode where rseq is not available, and the
 * cache of a thread that pretends to run on a CPU (nh_cache_set_cpu_override)
 * in percpu mode (docs/percpu.md).
 *
 * States of the calling thread's cache pointer (tl_cache):
 *   NULL       no cache yet: the first allocation makes one;
 *   a cache    in use; only this thread touches it;
 *   DEAD       the thread is exiting: its cache was drained, further calls
 *              go straight to the heaps.
 * Cache structs come from a pool (guarded by pool_lock) and are reused after
 * their thread exits, so thread churn does not grow memory.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "numa/os.h"
#include "percpu/internal.h"

#define REMOTE_BATCH 64
#define MAX_PER_CLASS 512

typedef struct nh_cbin {
  void *head;      /* free blocks, linked through encoded next words */
  uint32_t count;
} nh_cbin;

typedef struct nh_remote {
  void *p;
  uint32_t key; /* node << 8 | class: sort key of the batch */
} nh_remote;

typedef struct nh_tcache {
  int node;                 /* home node of the blocks held; -1: none yet */
  int cpu_override;         /* tests: CPU to pretend to run on, -1: real */
  uint32_t nremote;
  nh_remote remote[REMOTE_BATCH]; /* other nodes' blocks, on their way home */
  nh_cache_stats st;
  struct nh_tcache *next;   /* pool free list (guarded by pool_lock) */
  nh_cbin bins[NH_CLASS_COUNT];
} nh_tcache;

#define DEAD ((nh_tcache *)1)

static __thread nh_tcache *tl_cache __attribute__((tls_model("initial-exec")));

/* Constant after nh_cache_init. */
static int cache_level = 1;
static uint16_t class_max[NH_CLASS_COUNT];   /* 0: class not cached */
static uint16_t class_batch[NH_CLASS_COUNT];
static pthread_key_t cache_key;
static int cache_key_made;

static nh_lock pool_lock;
static nh_tcache *pool_free;     /* Guarded by pool_lock */
static nh_cache_stats exited_st; /* Guarded by pool_lock: counters of exited threads */

/* ---- CPU to node ------------------------------------------------------------- */

static int cache_cpu(const nh_tcache *tc) {
  if (tc && tc != DEAD && tc->cpu_override >= 0) return tc->cpu_override;
  return nh_os_cpu_fast();
}

int nh_tc_cpu(void) { return cache_cpu(tl_cache); }

static int cpu_home(int cpu) { return nh_cpu_home(cpu); }

/* ---- pool and lifecycle -------------------------------------------------------- */

static void cache_drain_all(nh_tcache *tc);

static void thread_exit(void *arg) {
  nh_tcache *tc = arg;
  if (tc == NULL || tc == DEAD) return;
  cache_drain_all(tc);
  tl_cache = DEAD;
  nh_lock_acquire(&pool_lock);
  exited_st.hits += tc->st.hits;
  exited_st.misses += tc->st.misses;
  exited_st.refills += tc->st.refills;
  exited_st.drains += tc->st.drains;
  exited_st.remote_sent += tc->st.remote_sent;
  exited_st.threads++;
  tc->next = pool_free;
  pool_free = tc;
  nh_lock_release(&pool_lock);
}

static nh_tcache *cache_new(void) {
  nh_lock_acquire(&pool_lock);
  nh_tcache *tc = pool_free;
  if (tc) pool_free = tc->next;
  nh_lock_release(&pool_lock);
  if (tc == NULL && (tc = nh_os_meta_alloc(sizeof *tc)) == NULL) return NULL;
  memset(tc, 0, sizeof *tc);
  tc->node = -1;
  tc->cpu_override = -1;
  tl_cache = tc;
  if (cache_key_made) pthread_setspecific(cache_key, tc);
  return tc;
}

int nh_tc_init(const nh_cache_params *p, int enabled) {
  cache_level = p->default_level;
  for (unsigned c = 1; c < NH_CLASS_COUNT; c++) {
    size_t max = p->bytes / (8 * nh_class_size(c));
    if (max > MAX_PER_CLASS) max = MAX_PER_CLASS;
    class_max[c] = (uint16_t)(max >= 2 && enabled ? max : 0);
    class_batch[c] = (uint16_t)(class_max[c] / 2);
  }
  if (!cache_key_made && enabled) {
    if (pthread_key_create(&cache_key, thread_exit) != 0) return -1;
    cache_key_made = 1;
  }
  return 0;
}

void nh_tc_reset(void) {
  nh_tcache *tc = tl_cache;
  if (tc && tc != DEAD) memset(tc->bins, 0, sizeof tc->bins), tc->nremote = 0, tc->node = -1;
}

void nh_tc_set_cpu_override(int cpu) {
  nh_tcache *tc = tl_cache;
  if (tc == NULL || tc == DEAD) tc = cache_new();
  if (tc) tc->cpu_override = cpu;
}

/* ---- moving blocks to and from the heaps ------------------------------------------ */

static void bin_drain(nh_tcache *tc, unsigned cls, uint32_t n) {
  void *blocks[MAX_PER_CLASS];
  nh_cbin *b = &tc->bins[cls];
  uint32_t k = 0;
  while (k < n && b->head) {
    blocks[k] = b->head;
    b->head = nh_block_next(b->head, "free");
    k++;
  }
  b->count -= k;
  if (k) nh_heap_drain(tc->node, cls, blocks, k, false);
  tc->st.drains++;
}

static void remote_flush(nh_tcache *tc) {
  nh_remote *r = tc->remote;
  uint32_t n = tc->nremote;
  for (uint32_t i = 1; i < n; i++) { /* insertion sort by (node, class) */
    nh_remote x = r[i];
    uint32_t j = i;
    while (j > 0 && r[j - 1].key > x.key) r[j] = r[j - 1], j--;
    r[j] = x;
  }
  void *run[REMOTE_BATCH];
  for (uint32_t i = 0; i < n;) {
    uint32_t k = 0, key = r[i].key;
    while (i < n && r[i].key == key) run[k++] = r[i++].p;
    nh_heap_drain((int)(key >> 8), key & 0xff, run, k, true);
  }
  tc->st.remote_sent += n;
  tc->nremote = 0;
}

static void cache_drain_all(nh_tcache *tc) {
  if (tc->node >= 0)
    for (unsigned c = 1; c < NH_CLASS_COUNT; c++)
      if (tc->bins[c].count) bin_drain(tc, c, tc->bins[c].count);
  if (tc->nremote) remote_flush(tc);
}

void nh_tc_flush_thread(void) {
  nh_tcache *tc = tl_cache;
  if (tc && tc != DEAD) cache_drain_all(tc);
}

/* The thread now runs on another node: return its blocks to the old one. */
static void rebind(nh_tcache *tc, int node) {
  cache_drain_all(tc);
  tc->node = node;
}

static void *refill(nh_tcache *tc, unsigned cls, int level) {
  void *blocks[MAX_PER_CLASS];
  size_t n = nh_heap_refill(tc->node, cls, level, blocks, class_batch[cls]);
  tc->st.refills++;
  if (n == 0) return NULL;
  nh_cbin *b = &tc->bins[cls];
  nh_block_handout(blocks[0]); /* the rest come marked */
  for (size_t i = 1; i < n; i++) {
    nh_block_check_mark(blocks[i]);
    nh_block_set_next(blocks[i], b->head);
    b->head = blocks[i];
  }
  b->count += (uint32_t)(n - 1);
  return blocks[0];
}

/* ---- the two entry points ---------------------------------------------------------- */

static void *alloc_uncached(int home, unsigned cls, int level) {
  int served;
  return nh_heap_alloc_fallback(home, nh_class_size(cls), NH_MIN_ALIGN, level, &served);
}

void *nh_tc_alloc(unsigned cls, int level) {
  nh_tcache *tc = tl_cache;
  if (__builtin_expect(tc == NULL, 0) && class_max[cls] != 0) tc = cache_new();
  int home = cpu_home(cache_cpu(tc));
  if (tc == NULL || tc == DEAD || class_max[cls] == 0) return alloc_uncached(home, cls, level);
  if (__builtin_expect(home != tc->node, 0)) rebind(tc, home);
  nh_cbin *b = &tc->bins[cls];
  void *p = b->head;
  if (__builtin_expect(p != NULL, 1)) {
    b->head = nh_block_next(p, "malloc");
    b->count--;
    nh_block_clear_mark(p);
    tc->st.hits++;
    return p;
  }
  tc->st.misses++;
  if ((p = refill(tc, cls, level)) != NULL) return p;
  return alloc_uncached(home, cls, level);
}

void nh_tc_free(void *p, unsigned cls, int node) {
  nh_tcache *tc = tl_cache;
  if (tc == NULL || tc == DEAD || class_max[cls] == 0) {
    nh_block_mark_free(p); /* nh_heap_drain takes marked blocks */
    nh_heap_drain(node, cls, &p, 1, node != cpu_home(cache_cpu(tc)));
    return;
  }
  if (node == tc->node) {
    nh_cbin *b = &tc->bins[cls];
    nh_block_set_next(p, b->head);
    nh_block_mark_free(p);
    b->head = p;
    if (++b->count > class_max[cls]) bin_drain(tc, cls, b->count - class_batch[cls]);
    return;
  }
  nh_block_mark_free(p); /* so a second free of it is caught while it waits */
  tc->remote[tc->nremote].p = p;
  tc->remote[tc->nremote].key = (uint32_t)node << 8 | cls;
  if (++tc->nremote == REMOTE_BATCH) remote_flush(tc);
}

void nh_tc_stats_get(nh_cache_stats *out) {
  nh_lock_acquire(&pool_lock);
  *out = exited_st;
  nh_lock_release(&pool_lock);
  nh_tcache *tc = tl_cache;
  if (tc && tc != DEAD) {
    out->hits += tc->st.hits;
    out->misses += tc->st.misses;
    out->refills += tc->st.refills;
    out->drains += tc->st.drains;
    out->remote_sent += tc->st.remote_sent;
    out->threads++;
  }
}

void nh_tc_postfork_child(void) { nh_lock_reset(&pool_lock); }
