/*
 * numa/heap.c: the per-node heaps. Bins of size-classed spans, batch refill
 * and drain for the caches above, large blocks, and the cross-node fallback
 * that criticality levels bound. See numa/heap.h for the lock order.
 */
#include <string.h>

#include "numa/heap.h"
#include "numa/os.h"

nh_heaps nh_g;

static void stat_add(_Atomic uint64_t *c, uint64_t v) {
  atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}
static void stat_sub(_Atomic uint64_t *c, uint64_t v) {
  atomic_fetch_sub_explicit(c, v, memory_order_relaxed);
}

/* ---- set-up ------------------------------------------------------------------ */

static void set_limits(nh_heap *h, nh_node_limits lim, uint32_t task_milli_pct) {
  uint64_t limit[NH_LEVELS];
  nh_level_limits(lim, task_milli_pct, limit);
  atomic_store_explicit(&h->budget, lim.budget, memory_order_relaxed);
  atomic_store_explicit(&h->reserve, limit[2] - limit[1], memory_order_relaxed);
  for (int l = 0; l < NH_LEVELS; l++)
    atomic_store_explicit(&h->limit[l], limit[l], memory_order_relaxed);
}

void nh_heaps_set_limits(const nh_heap_params *p) {
  for (int i = 0; i < nh_g.nnodes; i++)
    set_limits(&nh_g.heap[i], p->limits[i], p->task_limit_milli_pct);
  for (int l = 0; l < NH_LEVELS; l++) nh_g.spill[l] = p->spill[l];
  nh_g.task_limit_milli_pct = p->task_limit_milli_pct;
  nh_g.purge_delay_ms = p->purge_delay_ms;
  nh_g.huge_keep = p->huge_keep;
  int thp = nh_os_thp_mode();
  nh_g.huge_pages = nh_huge_mode_resolve(p->huge_pages, thp, &nh_g.thp_ok, &nh_g.huge_reason);
  nh_g.thp_always = thp == NH_OS_THP_ALWAYS;
  nh_g.paranoid = p->paranoid;
}

int nh_huge_mode_resolve(int asked, int thp, bool *thp_ok, const char **why) {
  *thp_ok = thp == NH_OS_THP_MADVISE || thp == NH_OS_THP_ALWAYS;
  if (asked == NH_HUGE_OFF) {
    *why = "off: [heap] huge_pages = off";
    return NH_HUGE_OFF;
  }
  if (asked == NH_HUGE_HUGETLB) {
    *why = *thp_ok ? "hugetlb: nodes with free reserved 2 MiB pages use them, the others fall "
                     "back to thp (counted)"
                   : "hugetlb: nodes with free reserved 2 MiB pages use them, the others get base "
                     "pages (the kernel's THP is unavailable)";
    return NH_HUGE_HUGETLB;
  }
  if (thp == NH_OS_THP_NONE) {
    *why = "off: the kernel has no transparent huge pages";
    return NH_HUGE_OFF;
  }
  if (thp == NH_OS_THP_NEVER) {
    *why = "off: the kernel's transparent huge pages are disabled (enabled = never)";
    return NH_HUGE_OFF;
  }
  *why = thp == NH_OS_THP_ALWAYS
             ? "thp: the kernel's THP is 'always'; segments and huge blocks are advised "
               "MADV_HUGEPAGE too, a node's first segments and the allocator's sparse tables "
               "MADV_NOHUGEPAGE"
             : "thp: the kernel's THP is 'madvise'; segments and huge blocks "
               "are advised MADV_HUGEPAGE before their first touch";
  return NH_HUGE_THP;
}

/* A node's CPUs are served by the node itself, or by the nearest node with
 * memory when it has none (as the kernel's numa_mem_id does). */
static int home_node(const nh_topo *t, int n) {
  if (t->nodes[n].mem_bytes > 0) return n;
  for (int i = 0; i < t->nnodes - 1; i++) {
    int m = t->nodes[n].fallback[i];
    if (t->nodes[m].mem_bytes > 0) return m;
  }
  return n;
}

/* The heaps, home[] and cpu_rank[] share one block (a page or two of
 * metadata touched at start-up, not one each: docs/benchmarks.md, footprint),
 * in this order; heaps[0] at its start. */
static size_t tables_size(const nh_topo *t) {
  return sizeof(nh_heap) * (size_t)t->nnodes + sizeof(int) * (size_t)t->nnodes +
         sizeof(uint16_t) * (size_t)t->ncpu_slots;
}

/* Bins of h: one per (shard, class), [.][0] unused. */
static size_t nbins(const nh_heap *h) { return (size_t)h->shards * NH_CLASS_COUNT; }

/* Bytes of the block of h's bins and, after them, its shard counters and
 * large stashes. */
static size_t bins_size(const nh_heap *h) {
  return sizeof(nh_bin) * nbins(h) +
         (sizeof(nh_shard_counters) + sizeof(nh_large_stash)) * h->shards;
}

/* h's bins, shard counters and stashes (h->shards set); zeroed ones are
 * empty and unlocked, and count nothing. 0 or -1. */
static int bins_init(nh_heap *h) {
  h->bins = nh_os_meta_alloc(bins_size(h));
  h->sst = h->bins ? (nh_shard_counters *)(h->bins + nbins(h)) : NULL;
  h->stash = h->bins ? (nh_large_stash *)(h->sst + h->shards) : NULL;
  return h->bins ? 0 : -1;
}
static void bins_destroy(nh_heap *h) {
  if (h->bins) nh_os_meta_free(h->bins, bins_size(h));
  h->bins = NULL;
  h->sst = NULL;
  h->stash = NULL;
}

/* A gauge's shard shares summed: racy, so clamped at 0 (a snapshot may see
 * a share's decrement before another's increment). */
static uint64_t gauge_sum(uint64_t sum) { return (int64_t)sum < 0 ? 0 : sum; }

void nh_heap_sum_counters(const nh_heap *h, nh_shard_sums *s) {
  memset(s, 0, sizeof *s);
  for (unsigned i = 0; i < h->shards; i++) {
    nh_shard_counters *c = &h->sst[i];
    s->allocs += atomic_load_explicit(&c->allocs, memory_order_relaxed);
    s->frees += atomic_load_explicit(&c->frees, memory_order_relaxed);
    s->remote_frees += atomic_load_explicit(&c->remote_frees, memory_order_relaxed);
    s->in_use += atomic_load_explicit(&c->in_use, memory_order_relaxed);
    s->xfer_hits += atomic_load_explicit(&c->xfer_hits, memory_order_relaxed);
    s->xfer_misses += atomic_load_explicit(&c->xfer_misses, memory_order_relaxed);
    s->xfer_released += atomic_load_explicit(&c->xfer_released, memory_order_relaxed);
    s->xfer_bytes += atomic_load_explicit(&c->xfer_bytes, memory_order_relaxed);
  }
  s->in_use = gauge_sum(s->in_use);
  s->xfer_bytes = gauge_sum(s->xfer_bytes);
}

/* A node's shards and their bins and transfer caches. 0 or -1. */
static int shards_init(nh_heap *h, unsigned ncpus, const nh_heap_params *p) {
  h->shards = ncpus == 0 ? 1 : ncpus < NH_XFER_MAX_SHARDS ? ncpus : NH_XFER_MAX_SHARDS;
  if (bins_init(h) != 0) return -1;
  if (nh_xfer_init(h, p->xfer_bytes, p->xfer_decay_ms) == 0) return 0;
  bins_destroy(h);
  return -1;
}
static void shards_destroy(nh_heap *h) {
  nh_xfer_destroy(h);
  bins_destroy(h);
}

int nh_heaps_init(const nh_heap_params *p, char *err, size_t errlen) {
  const nh_topo *t = p->topo;
  if (nh_segmap_init() != 0) {
    snprintf(err, errlen, "cannot reserve the segment map");
    return -1;
  }
  if (nh_secret[0] == 0) nh_os_random(nh_secret, sizeof nh_secret);
  nh_heap *heaps = nh_os_meta_alloc(tables_size(t));
  unsigned *ncpus = nh_os_meta_alloc(sizeof(unsigned) * (size_t)t->nnodes);
  if (heaps == NULL || ncpus == NULL) {
    nh_os_meta_free(heaps, tables_size(t));
    nh_os_meta_free(ncpus, sizeof(unsigned) * (size_t)t->nnodes);
    snprintf(err, errlen, "cannot map the heaps of %d nodes", t->nnodes);
    return -1;
  }
  int *home = (int *)(heaps + t->nnodes);
  uint16_t *rank = (uint16_t *)(home + t->nnodes);
  for (int cpu = 0; cpu < t->ncpu_slots; cpu++) { /* a CPU's rank among its node's */
    int node = nh_topo_cpu_node(t, cpu);
    rank[cpu] = node >= 0 ? (uint16_t)ncpus[node]++ : 0;
  }
  for (int i = 0; i < t->nnodes; i++) {
    heaps[i].node = i;
    heaps[i].os_node = t->nodes[i].bind_os_node;
    heaps[i].mem_bytes = t->nodes[i].mem_bytes;
    heaps[i].last_purge_ns = nh_os_clock_ns();
    home[i] = home_node(t, i);
    if (shards_init(&heaps[i], ncpus[i], p) != 0) {
      for (int j = 0; j < i; j++) shards_destroy(&heaps[j]);
      nh_os_meta_free(heaps, tables_size(t));
      nh_os_meta_free(ncpus, sizeof(unsigned) * (size_t)t->nnodes);
      snprintf(err, errlen, "cannot map the bins and transfer caches of node %d", i);
      return -1;
    }
  }
  nh_os_meta_free(ncpus, sizeof(unsigned) * (size_t)t->nnodes);
  nh_g.topo = t;
  nh_g.nnodes = t->nnodes;
  nh_g.heap = heaps;
  nh_g.tables_bytes = tables_size(t);
  nh_g.home = home;
  nh_g.cpu_rank = rank;
  nh_heaps_set_limits(p);
  return 0;
}

void nh_heaps_destroy(void) {
  if (nh_g.heap == NULL) return;
  for (int i = 0; i < nh_g.nnodes; i++) {
    nh_segments_destroy(&nh_g.heap[i]);
    shards_destroy(&nh_g.heap[i]);
  }
  nh_os_meta_free(nh_g.heap, nh_g.tables_bytes); /* with home and cpu_rank */
  nh_g.cpu_rank = NULL;
  void (*reclaim)(void) = nh_g.reclaim_hook;
  void (*pressure)(int, int) = nh_g.pressure_hook;
  memset(&nh_g, 0, sizeof nh_g);
  nh_g.reclaim_hook = reclaim;
  nh_g.pressure_hook = pressure;
}

int nh_heaps_precommit_reserves(void) {
  int rc = 0;
  for (int i = 0; i < nh_g.nnodes; i++) {
    nh_heap *h = &nh_g.heap[i];
    nh_lock_acquire(&h->page_lock);
    if (nh_heap_precommit_reserve(h) != 0) rc = -1;
    nh_lock_release(&h->page_lock);
  }
  return rc;
}

void nh_heaps_prefork(void) {
  for (int i = 0; i < nh_g.nnodes; i++) {
    nh_heap *h = &nh_g.heap[i];
    nh_xfer_prefork(h);
    for (size_t b = 0; b < nbins(h); b++) nh_lock_acquire(&h->bins[b].lock);
    nh_lock_acquire(&h->page_lock);
    for (unsigned sh = 0; sh < h->shards; sh++) nh_lock_acquire(&h->stash[sh].lock);
  }
}

void nh_heaps_postfork(int child) {
  for (int i = nh_g.nnodes; i-- > 0;) {
    nh_heap *h = &nh_g.heap[i];
    if (child) {
      for (unsigned sh = 0; sh < h->shards; sh++) nh_lock_reset(&h->stash[sh].lock);
      nh_lock_reset(&h->page_lock);
      for (size_t b = 0; b < nbins(h); b++) nh_lock_reset(&h->bins[b].lock);
    } else {
      for (unsigned sh = h->shards; sh-- > 0;) nh_lock_release(&h->stash[sh].lock);
      nh_lock_release(&h->page_lock);
      for (size_t b = nbins(h); b-- > 0;) nh_lock_release(&h->bins[b].lock);
    }
    nh_xfer_postfork(h, child);
  }
}

/* ---- bins --------------------------------------------------------------------- */

/* Bin shards. A node's bins are split like its transfer caches: per class, a
 * bin for each CPU shard, each with its own lock and list of spans. A span
 * belongs to the shard whose CPU took it (nh_span.shard), and its blocks
 * come back to that bin whoever frees them. So two CPUs that allocate and
 * free the same class each walk their own spans under their own lock, as a
 * mimalloc page belongs to one thread; a CPU reaches another shard's bin
 * only when the node cannot grow (its limit, or the OS's memory on it), so
 * no allocation fails while another shard has a free block of the class.
 * One bin lock for the node made two threads of batch (50000 blocks of
 * 32 B each) 2.3x slower than one: 18% of the time in futex wait and wake.
 * Taking another shard's spans before growing (the first version) made the
 * two CPUs write the same span descriptors and bitmaps: larson at two
 * threads 1.3-1.5x, batch_shuffled 1.1-1.25x the time of growing (A/B in the
 * commit). */

static uint32_t nspans_of(const nh_bin *b) {
  return atomic_load_explicit(&b->nspans, memory_order_relaxed);
}
static void set_nspans(nh_bin *b, uint32_t n) {
  atomic_store_explicit(&b->nspans, n, memory_order_relaxed);
}

static void bin_insert(nh_bin *b, nh_span *span) {
  span->prev = NULL;
  span->next = b->spans;
  if (b->spans) b->spans->prev = span;
  b->spans = span;
  span->in_bin = 1;
  set_nspans(b, nspans_of(b) + 1);
}

static void bin_remove(nh_bin *b, nh_span *span) {
  if (span->prev) span->prev->next = span->next;
  else b->spans = span->next;
  if (span->next) span->next->prev = span->prev;
  span->next = span->prev = NULL;
  span->in_bin = 0;
  set_nspans(b, nspans_of(b) - 1);
}

static uint8_t *span_start(nh_span *span) {
  nh_segment *seg = nh_span_segment(span);
  return (uint8_t *)seg + (size_t)(span - seg->spans) * NH_PAGE_SIZE;
}

/* Gives an empty span of bin b back to its segment. Caller holds the bin lock. */
static void bin_release(nh_heap *h, nh_bin *b, nh_span *span) {
  bin_remove(b, span);
  nh_xfer_span_released(h, span->cls); /* the transfer caches check their blocks' spans */
  nh_lock_acquire(&h->page_lock);
  nh_pages_release(h, nh_span_segment(span), span);
  nh_lock_release(&h->page_lock);
}

/* Releases every empty span of bin b, the one nh_heap_drain keeps too. */
static void bin_release_empty(nh_heap *h, nh_bin *b) {
  nh_lock_acquire(&b->lock);
  for (nh_span *span = b->spans, *next; span != NULL; span = next) {
    next = span->next;
    if (span->used == 0) bin_release(h, b, span);
  }
  nh_lock_release(&b->lock);
}

/* A fresh span for bin (h, shard, cls). Caller holds the bin lock. */
static nh_span *bin_grow(nh_heap *h, unsigned shard, unsigned cls, int level) {
  nh_lock_acquire(&h->page_lock);
  nh_span *span = nh_pages_take(h, nh_class_pages(cls), level);
  nh_lock_release(&h->page_lock);
  if (span) {
    nh_span_format(span, span_start(span), cls, 0);
    span->shard = (uint8_t)shard;
  }
  return span;
}

/* The span holding block p of a classed size (p known to be ours). */
static nh_span *span_of(void *p) {
  return nh_span_at((nh_segment *)((uintptr_t)p & ~(uintptr_t)(NH_SEGMENT_SIZE - 1)), p);
}

/* Whether span (a page's descriptor, resolved to its head) is a live span
 * formatted for cls. */
static bool span_is_class(const nh_span *span, unsigned cls) {
  return span->kind == NH_PAGE_HEAD && span->cls == cls;
}

/* The span of p, a block of cls a cache returns, which must be a live span
 * of cls; else p is the second copy of a block freed twice, whose span the
 * first copy's return emptied and which was given back (and maybe taken
 * again), and the process stops naming it. Its segment is taken to be
 * mapped: p passed a free's lookup (the segment map and header checks of
 * span_held would cost the drain of a 256-byte batch 2%). */
static nh_span *span_returned(void *p, unsigned cls) {
  nh_span *span = span_of(p);
  if (__builtin_expect(!span_is_class(span, cls), 0)) nh_block_respanned(p);
  return span;
}

/* The span a run of blocks was last found in, and the 64 KiB page of the
 * last block looked up: a batch from a cache mostly holds runs of blocks of
 * one page (they were carved or freed in address order), so the lookup and
 * the checks of the span's descriptor are done once a run, and each further
 * block of the page costs a compare. */
typedef struct span_run {
  nh_span *span;
  uintptr_t page; /* the page's number; 0 (no block's) when span is NULL */
} span_run;

static void run_set(span_run *r, nh_span *span, const void *p) {
  r->span = span;
  r->page = (uintptr_t)p >> NH_PAGE_SHIFT;
}
static void run_clear(span_run *r) { r->span = NULL, r->page = 0; }
static bool run_holds(const span_run *r, const void *p) {
  return (uintptr_t)p >> NH_PAGE_SHIFT == r->page;
}

/* Up to n blocks from the spans on bin b's list. Caller holds b's lock. */
static size_t bin_pop(nh_bin *b, void **out, size_t n) {
  size_t got = 0;
  nh_span *span;
  while (got < n && (span = b->spans) != NULL) {
    got += nh_span_pop(span, out + got, n - got);
    NH_DEBUG_CHECK_SPAN(span);
    if (span->used == span->capacity) bin_remove(b, span);
  }
  return got;
}

/* Up to n blocks from the spans of shard's bin of (h, cls). */
static size_t spans_take(nh_heap *h, unsigned shard, unsigned cls, void **out, size_t n) {
  nh_bin *b = nh_heap_bin(h, shard, cls);
  if (nspans_of(b) == 0) return 0;
  nh_lock_acquire(&b->lock);
  size_t got = bin_pop(b, out, n);
  nh_lock_release(&b->lock);
  return got;
}

/* Up to n blocks of the other shards' bins of (h, cls) (own's is empty and
 * the node cannot grow). */
static size_t steal_pop(nh_heap *h, unsigned own, unsigned cls, void **out, size_t n) {
  size_t got = 0;
  for (unsigned i = 1; got < n && i < h->shards; i++)
    got += spans_take(h, (own + i) % h->shards, cls, out + got, n - got);
  return got;
}

/* Up to n blocks from shard's bin of (h, cls) and fresh spans of it (growing
 * within level's limit). */
static size_t spans_grow(nh_heap *h, unsigned shard, unsigned cls, int level, void **out,
                         size_t n) {
  nh_bin *b = nh_heap_bin(h, shard, cls);
  size_t got = 0;
  nh_lock_acquire(&b->lock);
  while ((got += bin_pop(b, out + got, n - got)) < n) {
    nh_span *span = bin_grow(h, shard, cls, level);
    if (span == NULL) break;
    bin_insert(b, span);
  }
  nh_lock_release(&b->lock);
  return got;
}

/* Gives n marked blocks of class cls of h back to their spans, all of
 * shard's bin (the callers send blocks home in runs of one shard, and a
 * transfer cache holds only its shard's blocks: nh_heaps_check), under its
 * lock. A block whose span is no longer a span of (cls, shard) was not out
 * of it: a second copy of a block freed twice, whose span was given back
 * (and maybe taken again) after the first copy came home. */
static void spans_drain(nh_heap *h, unsigned shard, unsigned cls, void *const *blocks, size_t n) {
  nh_bin *b = nh_heap_bin(h, shard, cls);
  span_run run;
  run_clear(&run);
  nh_lock_acquire(&b->lock);
  for (size_t i = 0; i < n; i++) {
    if (!run_holds(&run, blocks[i])) {
      nh_span *span = span_returned(blocks[i], cls);
      if (__builtin_expect(span->shard != shard, 0)) nh_block_respanned(blocks[i]);
      run_set(&run, span, blocks[i]);
    }
    nh_span *span = run.span;
    bool was_full = !span->in_bin;
    unsigned used = nh_span_push(span, blocks[i]);
    NH_DEBUG_CHECK_SPAN(span);
    if (was_full) bin_insert(b, span);
    if (used == 0 && nspans_of(b) > 1) { /* keep one against churn */
      bin_release(h, b, span);
      run_clear(&run); /* a further copy of a block of it is caught above */
    }
  }
  nh_lock_release(&b->lock);
}

/* Runs h's decay pass if one is due (the caller looked: nh_xfer_take/put). */
static void xfer_maybe_decay(int node, bool look) {
  if (look && nh_xfer_pass_due(&nh_g.heap[node], nh_os_clock_ns())) nh_heap_xfer_release(node, false);
}

unsigned nh_heap_shard(const nh_heap *h) {
  int cpu = nh_os_cpu_fast();
  unsigned r = cpu >= 0 && cpu < nh_g.topo->ncpu_slots ? nh_g.cpu_rank[cpu] : 0;
  return r % h->shards;
}

/* The span of p, a block of cls a cache returns or a transfer cache gives,
 * if it lies in a live span of cls (its segment mapped and ordinary, its
 * span's head formatted for cls); NULL if not: the second copy of a block
 * freed twice, whose span the first copy's return emptied and which was
 * given back (and maybe taken again for another class, or its segment
 * gone). Handing it out would hand out memory that is no block of the heap.
 * A few loads of metadata (the segment map, the header, the span's
 * descriptor), never the block. */
static nh_span *span_held(const void *p, unsigned cls) {
  nh_segment *seg = nh_segment_of(p);
  nh_span *span = seg && !seg->huge ? nh_span_at(seg, p) : NULL;
  return __builtin_expect(span != NULL && span_is_class(span, cls), 1) ? span : NULL;
}

/* span_held for each of n blocks, once a page; stops the process naming the
 * first that is not held (returning: a cache returns them; else a transfer
 * cache gave them to a refill). */
static void check_held(void *const *blocks, size_t n, unsigned cls, bool returning) {
  span_run run;
  run_clear(&run);
  for (size_t i = 0; i < n; i++) {
    if (run_holds(&run, blocks[i])) continue;
    nh_span *span = span_held(blocks[i], cls);
    if (__builtin_expect(span == NULL, 0)) {
      if (returning) nh_block_respanned(blocks[i]);
      nh_block_orphaned(blocks[i]);
    }
    run_set(&run, span, blocks[i]);
  }
}

/* Refill order: what is the shard's own comes first, so that a CPU keeps
 * reusing its own blocks (their lines stay in its cache, and no other CPU
 * contends for its locks): its transfer cache (pointers, no block touched),
 * its bin's spans (bitmaps); then the other shards' transfer caches
 * (pointers again: blocks freed on this CPU for another's spans, as a
 * consumer frees a producer's); then a fresh span of its own; and only when
 * the node cannot grow, the other shards' bins. *hit: how many came from a
 * transfer cache. */
static size_t refill(nh_heap *h, unsigned shard, unsigned cls, int level, void **out, size_t n,
                     size_t *hit, bool *look) {
  bool check;
  size_t got = *hit = nh_xfer_take(h, shard, cls, out, n, look, &check);
  if (check) check_held(out, got, cls, false);
  if (got < n) got += spans_take(h, shard, cls, out + got, n - got);
  if (got < n && h->shards > 1) {
    size_t k = nh_xfer_steal(h, shard, cls, out + got, n - got, &check);
    if (check) check_held(out + got, k, cls, false);
    *hit += k;
    got += k;
  }
  if (got < n) got += spans_grow(h, shard, cls, level, out + got, n - got);
  if (got < n && h->shards > 1) got += steal_pop(h, shard, cls, out + got, n - got);
  return got;
}

size_t nh_heap_refill(int node, unsigned cls, int level, void **out, size_t n) {
  nh_heap *h = &nh_g.heap[node];
  bool look = false;
  unsigned shard = nh_heap_shard(h);
  size_t hit, got = refill(h, shard, cls, level, out, n, &hit, &look);
  if (got) {
    nh_shard_counters *c = &h->sst[shard];
    stat_add(&c->allocs, got);
    stat_add(&c->in_use, got * nh_class_size(cls));
    if (hit) stat_add(&c->xfer_hits, hit);
    if (got > hit) stat_add(&c->xfer_misses, got - hit);
  }
  xfer_maybe_decay(node, look);
  return got;
}

/* Gives n blocks of shard's spans back: its transfer cache while it has
 * room, the rest to the spans. */
static void drain_shard(nh_heap *h, unsigned shard, unsigned cls, void *const *blocks, size_t n,
                        bool *look, uint32_t seen) {
  size_t put = nh_xfer_put(h, shard, cls, blocks, n, look, seen);
  if (put < n) spans_drain(h, shard, cls, blocks + put, n - put);
}

/* Blocks go home to the shard of their span (nh_span.shard), as they go home
 * to their node: a block a CPU frees for another comes back to the CPU that
 * allocated it through its own transfer cache, and no CPU's transfer cache
 * fills with blocks of spans another CPU refills from (whose locks and
 * lines the two would then share). A batch is sent in runs of one shard. */
void nh_heap_drain(int node, unsigned cls, void *const *blocks, size_t n, bool remote) {
  nh_heap *h = &nh_g.heap[node];
  bool look = false;
  /* read before the spans are checked (nh_xfer_put) */
  uint32_t seen = nh_xfer_released(h, cls);
  if (h->shards == 1) {
    if (h->xfer_cls[cls].cap) check_held(blocks, n, cls, true); /* spans_drain checks its own */
    drain_shard(h, 0, cls, blocks, n, &look, seen);
  } else { /* the lookup that finds each run's shard checks its span */
    span_run run;
    run_clear(&run);
    for (size_t i = 0, j; i < n; i = j) {
      run_set(&run, span_returned(blocks[i], cls), blocks[i]);
      unsigned shard = run.span->shard;
      for (j = i + 1; j < n; j++) {
        if (!run_holds(&run, blocks[j])) {
          nh_span *span = span_returned(blocks[j], cls);
          if (span->shard != shard) break;
          run_set(&run, span, blocks[j]);
        }
      }
      drain_shard(h, shard, cls, blocks + i, j - i, &look, seen);
    }
  }
  nh_shard_counters *c = nh_heap_counters_here(h);
  stat_add(&c->frees, n);
  stat_sub(&c->in_use, n * nh_class_size(cls));
  if (remote) stat_add(&c->remote_frees, n);
  xfer_maybe_decay(node, look);
}

void nh_heap_xfer_release(int node, bool all) {
  nh_heap *h = &nh_g.heap[node];
  void *buf[256];
  for (unsigned shard = 0; shard < h->shards; shard++)
    for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) {
      size_t k;
      do {
        k = nh_xfer_take_oldest(h, shard, cls, buf, 256, !all);
        if (k) {
          spans_drain(h, shard, cls, buf, k);
          stat_add(&h->sst[shard].xfer_released, k);
        }
      } while (k == 256);
    }
}

/* Trim and memory pressure: the transfer caches' blocks back to their spans,
 * every empty span back to its segment, one bin lock at a time (each then
 * takes the page lock: bin < page), then every free page back to the OS. */
void nh_heaps_trim(void) {
  for (int i = 0; i < nh_g.nnodes; i++) {
    nh_heap *h = &nh_g.heap[i];
    nh_heap_xfer_release(i, true);
    for (unsigned sh = 0; sh < h->shards; sh++)
      for (unsigned c = 1; c < NH_CLASS_COUNT; c++) bin_release_empty(h, nh_heap_bin(h, sh, c));
    nh_lock_acquire(&h->page_lock);
    nh_pages_purge(h, true);
    nh_lock_release(&h->page_lock);
  }
}

/* ---- any size on one node --------------------------------------------------- */

/* Large stashes. A large block (over NH_SMALL_MAX, within a segment) freed
 * on a CPU goes, span and all, to its shard's stash of the block's node (at
 * most NH_LARGE_STASH), and the next large request of the same size on
 * that CPU takes it back: neither takes the node's page lock, which every
 * other large malloc and free does (two threads each allocating and freeing
 * a 512 KiB block took 2.8-5.7x the time per pair of one thread, mimalloc
 * 0.5x). A request takes the smallest stashed span that holds it (one that
 * will grow, the largest); one larger than the request is cut to its size
 * under the page lock, and the rest stays stashed as a span of its own,
 * where the block before it grows in place (realloc: stash_join). A full
 * stash keeps its largest spans and sends the smallest to the node's kept
 * ones (large_cache). Every purge pass gives the stashed spans back with
 * the node's (segment.c, release_kept). */

bool nh_heap_keeps_large(const nh_heap *h) {
  if (h->large_cached > 0) return true;
  for (unsigned sh = 0; sh < h->shards; sh++)
    if (atomic_load_explicit(&h->stash[sh].n, memory_order_relaxed)) return true;
  return false;
}

/* The index of the smallest (largest: the largest) of spans[0, n) with at
 * least npages, n if none. */
static unsigned best_fit(nh_span *const *spans, unsigned n, unsigned npages, bool largest) {
  unsigned best = n;
  for (unsigned i = n; i-- > 0;) {
    unsigned k = spans[i]->npages, b = best == n ? 0 : spans[best]->npages;
    if (k >= npages && (best == n || (largest ? k > b : k < b))) best = i;
  }
  return best;
}

size_t nh_heap_unstash(nh_heap *h, unsigned shard, nh_span **out) {
  nh_large_stash *s = &h->stash[shard];
  if (atomic_load_explicit(&s->n, memory_order_relaxed) == 0) return 0;
  nh_lock_acquire(&s->lock);
  uint32_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
  memcpy(out, s->span, n * sizeof *out);
  atomic_store_explicit(&s->n, 0, memory_order_relaxed);
  nh_lock_release(&s->lock);
  return n;
}

/* From shard's stash of h, the smallest span of at least npages, or with
 * room the largest (the pages past npages are where a growing block grows
 * in place); NULL if none. */
static nh_span *stash_take(nh_heap *h, unsigned shard, unsigned npages, bool room) {
  nh_large_stash *s = &h->stash[shard];
  if (atomic_load_explicit(&s->n, memory_order_relaxed) == 0) return NULL;
  nh_lock_acquire(&s->lock);
  uint32_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
  uint32_t best = best_fit(s->span, n, npages, room);
  nh_span *span = NULL;
  if (best < n) {
    span = s->span[best];
    s->span[best] = s->span[n - 1];
    atomic_store_explicit(&s->n, n - 1, memory_order_relaxed);
  }
  nh_lock_release(&s->lock);
  return span;
}

/* Puts span, of freed large block p, in shard's stash of h, p marked free.
 * A full stash keeps its largest spans (a large one is what a growing block
 * wants, stash_take): the smallest of them and span stays out and is
 * returned, marked free, for the caller to keep at the node; NULL if none. */
static nh_span *stash_put(nh_heap *h, unsigned shard, nh_span *span, void *p) {
  nh_large_stash *s = &h->stash[shard];
  nh_block_mark_free(p); /* a second free is caught */
  nh_span *out = span;
  nh_lock_acquire(&s->lock);
  uint32_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
  if (n < NH_LARGE_STASH) {
    s->span[n] = span;
    atomic_store_explicit(&s->n, n + 1, memory_order_relaxed);
    out = NULL;
  } else {
    uint32_t k = best_fit(s->span, n, 0, false); /* the smallest */
    if (s->span[k]->npages < span->npages) {
      out = s->span[k];
      s->span[k] = span;
    }
  }
  nh_lock_release(&s->lock);
  return out;
}

/* Keeps span, whose block is marked free, at the node for the next large
 * request of its size, or gives it back to its segment if the node keeps
 * enough. */
static void keep_at_node(nh_heap *h, nh_span *span) {
  nh_lock_acquire(&h->page_lock);
  if (h->large_cached < NH_LARGE_CACHE && !nh_g.paranoid)
    h->large_cache[h->large_cached++] = span; /* kept whole for the next of its size */
  else
    nh_pages_release(h, nh_span_segment(span), span); /* (its purge pass frees the kept ones too) */
  nh_lock_release(&h->page_lock);
}

/* Cuts stashed span, taken out of shard's stash, to npages; the rest goes
 * back to the stash (stash_put: a smaller span may go to the node instead),
 * where the next large request of the CPU takes it, and where the block
 * before it grows into it in place (stash_join). */
static void stash_cut(nh_heap *h, unsigned shard, nh_span *span, unsigned npages) {
  nh_segment *seg = nh_span_segment(span);
  nh_lock_acquire(&h->page_lock);
  nh_span *rest = nh_pages_split(h, seg, span, npages);
  nh_lock_release(&h->page_lock);
  nh_span *out = stash_put(h, shard, rest, rest->start);
  if (out) keep_at_node(h, out);
}

/* Takes next out of shard's stash of h if it is there with at least
 * npages: true if it was. */
static bool stash_take_this(nh_heap *h, unsigned shard, const nh_span *next, unsigned npages) {
  nh_large_stash *s = &h->stash[shard];
  if (atomic_load_explicit(&s->n, memory_order_relaxed) == 0) return false;
  bool found = false;
  nh_lock_acquire(&s->lock);
  uint32_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
  for (uint32_t i = 0; i < n && !found; i++) {
    if (s->span[i] != next || next->npages < npages) continue;
    s->span[i] = s->span[n - 1];
    atomic_store_explicit(&s->n, n - 1, memory_order_relaxed);
    found = true;
  }
  nh_lock_release(&s->lock);
  return found;
}

/* Grows large span in place into the stashed span whose pages follow it, to
 * at least size bytes; what lies past size goes back to the stash. Looks in
 * the caller's shard first, then in the node's others (the thread may have
 * moved to another CPU since the span was cut). False if no stash has it. */
static bool stash_join(nh_heap *h, unsigned shard, nh_span *span, size_t size) {
  nh_segment *seg = nh_span_segment(span);
  unsigned end = (unsigned)(span - seg->spans) + span->npages;
  unsigned want = (unsigned)((size + NH_PAGE_SIZE - 1) >> NH_PAGE_SHIFT);
  if (end >= NH_PAGES_PER_SEGMENT || want <= span->npages) return false;
  nh_span *next = &seg->spans[end];
  bool found = stash_take_this(h, shard, next, want - span->npages);
  for (unsigned sh = 0; sh < h->shards && !found; sh++)
    found = sh != shard && stash_take_this(h, sh, next, want - span->npages);
  if (!found) return false;
  nh_lock_acquire(&h->page_lock);
  nh_pages_join(h, seg, span, next);
  nh_lock_release(&h->page_lock);
  if (span->npages > want) stash_cut(h, shard, span, want);
  return true;
}

/* A kept span taken over at level: its pages change level (no growth, no
 * budget check), and its block is handed out. */
static void take_over(nh_heap *h, nh_span *span, int level) {
  nh_heap_level_move(h, span->level, level, (uint64_t)span->npages * NH_PAGE_SIZE);
  span->level = (uint8_t)level;
  nh_block_clear_mark(span->start);
}

/* A kept large span (nh_heap.large_cache) for npages, taken over at level:
 * the smallest of at least npages, cut to npages (the pages past them go
 * back to their segment, dirty); its block is live again. NULL if none.
 * Caller holds the page lock. */
static nh_span *large_cache_take(nh_heap *h, unsigned npages, int level) {
  unsigned best = best_fit(h->large_cache, h->large_cached, npages, false);
  if (best == h->large_cached) return NULL;
  nh_span *span = h->large_cache[best];
  h->large_cache[best] = h->large_cache[--h->large_cached];
  nh_pages_shrink(h, nh_span_segment(span), span, npages);
  take_over(h, span, level);
  return span;
}

/* A large block; with room, from the stash's largest span (stash_take). */
static void *large_alloc(nh_heap *h, size_t size, int level, bool room) {
  unsigned npages = (unsigned)((size + NH_PAGE_SIZE - 1) >> NH_PAGE_SHIFT);
  unsigned shard = nh_heap_shard(h);
  nh_span *span = nh_g.paranoid ? NULL : stash_take(h, shard, npages, room);
  if (span) {
    if (span->npages != npages) stash_cut(h, shard, span, npages);
    take_over(h, span, level);
  } else {
    nh_lock_acquire(&h->page_lock);
    span = large_cache_take(h, npages, level);
    if (span == NULL && (span = nh_pages_take(h, npages, level)) != NULL) {
      nh_span_format(span, span_start(span), 0, (size_t)npages * NH_PAGE_SIZE);
      void *p;
      nh_span_pop(span, &p, 1);
      nh_block_clear_mark(p); /* handed out */
    }
    nh_lock_release(&h->page_lock);
    if (span == NULL) return NULL;
  }
  stat_add(&h->sst[shard].allocs, 1);
  stat_add(&h->sst[shard].in_use, span->block_size);
  return span->start;
}

static void *huge_alloc(nh_heap *h, size_t size, size_t align, int level) {
  nh_lock_acquire(&h->page_lock);
  void *p = nh_huge_alloc(h, size, align, level);
  nh_lock_release(&h->page_lock);
  if (p) {
    nh_shard_counters *c = nh_heap_counters_here(h);
    stat_add(&c->allocs, 1);
    stat_add(&c->in_use, nh_segment_of(p)->huge_size);
  }
  return p;
}

void *nh_heap_alloc_on(int node, size_t size, size_t align, int level) {
  nh_heap *h = &nh_g.heap[node];
  if (align < NH_MIN_ALIGN) align = NH_MIN_ALIGN;
  unsigned cls = 0;
  if (size <= NH_SMALL_MAX)
    cls = align == NH_MIN_ALIGN ? nh_size_class(size) : nh_class_for_aligned(size, align);
  if (cls) {
    void *p = NULL;
    if (nh_heap_refill(node, cls, level, &p, 1) == 0) return NULL;
    nh_block_handout(p);
    return p;
  }
  if (size <= NH_LARGE_MAX && align <= NH_PAGE_SIZE) return large_alloc(h, size, level, false);
  return huge_alloc(h, size, align, level);
}

void *nh_heap_alloc_pages_on(int node, size_t size, int level) {
  nh_heap *h = &nh_g.heap[node];
  if (size <= NH_LARGE_MAX / 2) return large_alloc(h, size, level, true);
  return huge_alloc(h, size, NH_MIN_ALIGN, level);
}

void nh_heap_free_large(const nh_block_info *info, void *p) {
  nh_heap *h = &nh_g.heap[info->node];
  unsigned shard = nh_heap_shard(h);
  if (info->span == NULL) {
    nh_lock_acquire(&h->page_lock);
    nh_huge_free(info->seg);
    nh_lock_release(&h->page_lock);
  } else {
    nh_span *out = info->span;
    if (nh_g.paranoid) nh_block_mark_free(p); /* a second free is caught, kept or not */
    else out = stash_put(h, shard, info->span, p);
    if (out) keep_at_node(h, out);
  }
  stat_add(&h->sst[shard].frees, 1);
  stat_sub(&h->sst[shard].in_use, info->size);
}

bool nh_heap_shrink_large(nh_block_info *info, size_t size) {
  if (info->cls != 0 || size <= (info->span ? NH_SMALL_MAX : NH_LARGE_MAX)) return false;
  nh_heap *h = &nh_g.heap[info->node];
  nh_lock_acquire(&h->page_lock);
  size_t before = info->span ? info->span->block_size : info->seg->huge_size;
  if (info->span)
    nh_pages_shrink(h, info->seg, info->span, (unsigned)((size + NH_PAGE_SIZE - 1) >> NH_PAGE_SHIFT));
  else
    nh_huge_shrink(h, info->seg, size);
  size_t after = info->span ? info->span->block_size : info->seg->huge_size;
  nh_lock_release(&h->page_lock);
  stat_sub(&nh_heap_counters_here(h)->in_use, before - after);
  info->size = after;
  return true;
}

bool nh_heap_grow_large(nh_block_info *info, size_t size) {
  if (info->cls != 0) return false;
  nh_heap *h = &nh_g.heap[info->node];
  bool huge = info->span == NULL;
  if (!huge && size > NH_LARGE_MAX) return false; /* would need to become huge */
  nh_lock_acquire(&h->page_lock);
  size_t before = huge ? info->seg->huge_size : info->span->block_size;
  bool ok = huge ? nh_huge_grow(h, &info->seg, size) : nh_pages_grow(h, info->seg, info->span, size);
  nh_lock_release(&h->page_lock);
  if (!ok && !huge) ok = stash_join(h, nh_heap_shard(h), info->span, size);
  size_t after = huge ? info->seg->huge_size : info->span->block_size;
  if (ok) {
    stat_add(&nh_heap_counters_here(h)->in_use, after - before);
    info->size = after;
  }
  return ok;
}

/* ---- fallback across nodes -------------------------------------------------- */

bool nh_heap_may_spill(int a, int b, int level) {
  switch (nh_g.spill[level]) {
  case 0: return false;
  case 1: return nh_topo_same_package(nh_g.topo, a, b);
  default: return true;
  }
}

static void *try_nodes(int home, size_t size, size_t align, int level, int *served) {
  void *p = nh_heap_alloc_on(home, size, align, level);
  if (p) {
    *served = home;
    return p;
  }
  const nh_topo_node *tn = &nh_g.topo->nodes[home];
  for (int i = 0; i < nh_g.nnodes - 1; i++) {
    int m = tn->fallback[i];
    if (!nh_heap_may_spill(home, m, level)) continue;
    if ((p = nh_heap_alloc_on(m, size, align, level)) != NULL) {
      stat_add(&nh_g.heap[home].st.fallback_out, 1);
      stat_add(&nh_g.heap[m].st.fallback_in, 1);
      *served = m;
      return p;
    }
  }
  return NULL;
}

void *nh_heap_alloc_fallback(int home, size_t size, size_t align, int level, int *served) {
  void *p = try_nodes(home, size, align, level, served);
  if (p == NULL) { /* reclaim what the caches hold, purge, and try once more */
    if (nh_g.reclaim_hook) nh_g.reclaim_hook();
    nh_heaps_trim();
    p = try_nodes(home, size, align, level, served);
  }
  if (p == NULL) stat_add(&nh_g.heap[home].st.failures[level], 1);
  if ((p == NULL || *served != home) && nh_g.pressure_hook) nh_g.pressure_hook(home, level);
  return p;
}
