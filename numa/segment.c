/*
 * numa/segment.c: segments, the page runs inside them (spans), purging, and
 * the segment map that finds a segment from any address. Huge blocks:
 * numa/huge.c.
 *
 * Accounting. A page is "committed" (counted in nh_heap.st.committed) from
 * the moment a span first takes it until it is purged. Growing committed
 * bytes is the only act the budgets limit: each level may grow a node's
 * committed bytes up to its limit (nh_heap.limit). Reusing a free committed
 * page costs no budget.
 *
 * Purge policy. Pages freed by a span stay committed ("dirty") so that they
 * can be reused at once. A purge pass runs at most once per purge_delay ms,
 * from the page-lock paths (span take and release), and returns to the OS the
 * pages that were already dirty at the previous pass: a free page goes back
 * to the OS between one and two delays after it was freed (a page taken
 * again in between starts over). Up to NH_KEEP_EMPTY empty segments per node
 * stay mapped, their pages dirty, so that a heap that empties and refills (a
 * batch of frees, then of mallocs) does not unmap and fault in its memory
 * every round; a segment emptied beyond that is unmapped at once, and a
 * purge pass unmaps the empty segments whose pages it has all returned, but
 * one per node. nh_trim() and memory pressure purge everything at once.
 *
 * Huge pages. Segments are mapped per [heap] huge_pages (map_backed): a
 * node's first NH_THP_FIRST_SEGMENT on base pages, the others advised
 * MADV_HUGEPAGE, or on explicit huge pages the node reserved. In a segment
 * on huge pages a decay pass returns free pages only in whole 2 MiB units
 * (whole_units), so that a huge page holding a live span is never broken up;
 * explicit huge pages are never purged in part. A new span takes free pages
 * of the 2 MiB units already resident before untouched units (find_pages),
 * so that spans pack into the huge pages the process already pays for.
 */
#include <string.h>

#include "numa/heap.h"
#include "numa/cgroup.h"
#include "numa/os.h"

/* ---- the segment map -------------------------------------------------------- */

#define SEGMAP_BITS 48
#define SEGMAP_SLOTS NH_SEGMAP_SLOTS

/* Synchronization: bytes are atomic; set with release after the segment
 * header is written, read with acquire (pairs with that release). */
_Atomic uint8_t *nh_segmap;

int nh_segmap_init(void) {
  if (nh_segmap) return 0;
  void *p = nh_os_map_aligned(SEGMAP_SLOTS, nh_os_page_size(), -1);
  if (p == NULL) return -1;
  /* a byte per 4 MiB of address space, touched where segments are: where
   * THP is `always` a first touch would otherwise take a 2 MiB page */
  (void)nh_os_advise_small(p, SEGMAP_SLOTS);
  nh_segmap = p;
  return 0;
}

void nh_segmap_set(uintptr_t base, size_t size, int head) {
  size_t first = base >> NH_SEGMENT_SHIFT;
  size_t count = (size + NH_SEGMENT_SIZE - 1) >> NH_SEGMENT_SHIFT;
  for (size_t i = count; i-- > 0;) { /* head last on set, so a lookup never sees a tail without head */
    int v = head == NH_MAP_NONE ? NH_MAP_NONE : i == 0 ? head : NH_MAP_TAIL;
    atomic_store_explicit(&nh_segmap[first + i], (uint8_t)v, memory_order_release);
  }
}

nh_segment *nh_segment_of_slow(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (nh_segmap == NULL || (a >> SEGMAP_BITS) != 0) return NULL;
  size_t i = a >> NH_SEGMENT_SHIFT;
  uint8_t v = atomic_load_explicit(&nh_segmap[i], memory_order_acquire);
  while (v == NH_MAP_TAIL && i > 0) v = atomic_load_explicit(&nh_segmap[--i], memory_order_acquire);
  if (v != NH_MAP_SEGMENT && v != NH_MAP_HUGE) return NULL;
  return nh_segment_checked((nh_segment *)(i << NH_SEGMENT_SHIFT));
}

void nh_segment_corrupt(const nh_segment *seg) {
  nh_fatal("segment header at %p is corrupted (a write outside a block damaged it)",
           (const void *)seg);
}

void nh_bad_link(const void *block, const void *next, const char *where) {
  nh_fatal("%s: corrupted free list: block %p links to %p (a write after free or an overflow "
           "damaged it)", where, block, next);
}

/* ---- budget ----------------------------------------------------------------- */

bool nh_charge(nh_heap *h, uint64_t bytes, int level) {
  uint64_t limit = atomic_load_explicit(&h->limit[level], memory_order_relaxed);
  uint64_t cur = atomic_load_explicit(&h->st.committed, memory_order_relaxed);
  do {
    if (cur + bytes > limit) return false;
  } while (!atomic_compare_exchange_weak_explicit(&h->st.committed, &cur, cur + bytes,
                                                  memory_order_relaxed, memory_order_relaxed));
  uint64_t peak = atomic_load_explicit(&h->st.peak_committed, memory_order_relaxed);
  while (cur + bytes > peak &&
         !atomic_compare_exchange_weak_explicit(&h->st.peak_committed, &peak, cur + bytes,
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
  return true;
}

void nh_uncharge(nh_heap *h, uint64_t bytes) {
  atomic_fetch_sub_explicit(&h->st.committed, bytes, memory_order_relaxed);
}

bool nh_heap_charge(int node, uint64_t bytes, int level) {
  nh_heap *h = &nh_g.heap[node];
  /* A pre-committed reserve is kept for process-level heap blocks: memory
   * committed outside the heaps stops where the other levels stop. */
  int grow = (level == NH_LEVELS - 1 && h->reserve_segs != NULL) ? NH_LEVELS - 2 : level;
  if (!nh_charge(h, bytes, grow)) return false;
  atomic_fetch_add_explicit(&h->st.level_committed[level], bytes, memory_order_relaxed);
  return true;
}

void nh_heap_uncharge(int node, uint64_t bytes, int level) {
  nh_heap *h = &nh_g.heap[node];
  nh_uncharge(h, bytes);
  atomic_fetch_sub_explicit(&h->st.level_committed[level], bytes, memory_order_relaxed);
}

/* ---- segments ----------------------------------------------------------------- */

/* Whether the node's real memory can still take size more bytes, keeping a
 * low watermark free (1/64 of the node, at least 16 MiB). Growing into a
 * node the OS has exhausted would, under MPOL_BIND ([heap] bind = strict),
 * end in the OOM killer, and under the default preferred binding put the
 * pages on a node the level's spill scope may not allow: treat a short node
 * as full, so that the heap's own fallback decides. The
 * OS figure is re-read at most every 10 ms. Caller holds the page lock. */
bool nh_node_has_room(nh_heap *h, size_t size) {
  uint64_t now = nh_os_clock_ns();
  uint64_t watermark = h->mem_bytes / 64 > (16u << 20) ? h->mem_bytes / 64 : (16u << 20);
  if (h->avail_at == 0 || now - h->avail_at > 10000000u) {
    h->avail = nh_os_node_available(h->os_node);
    uint64_t room = nh_cgroup_room(); /* a container's limit bounds every node (cgroup.h) */
    if (room != UINT64_MAX && room + watermark < h->avail) h->avail = room + watermark;
    h->avail_at = now;
  }
  if (h->avail < size + watermark) return false;
  h->avail -= size;
  return true;
}

/* Explicit huge pages for a new mapping, in hugetlb mode, when the node has
 * enough of them free; NULL otherwise (the fall back to thp counted). */
static void *map_hugetlb(nh_heap *h, size_t size, size_t align) {
  if (h->os_node < 0 || size % NH_HUGE_PAGE != 0 ||
      nh_os_node_free_hugepages(h->os_node) < size / NH_HUGE_PAGE)
    return NULL;
  return nh_os_map_hugetlb(size, align, h->os_node);
}

/* Maps size bytes on h's node, backed per [heap] huge_pages: explicit huge
 * pages (hugetlb mode, when the node has them, where hugetlb_ok), else
 * transparent ones asked for before the first touch (thp mode, and
 * hugetlb's fall back, where thp_ok), else base pages. *hugetlb says which. */
static void *map_backed(nh_heap *h, size_t size, size_t align, bool hugetlb_ok, bool thp_ok,
                        uint8_t *hugetlb) {
  int mode = nh_g.huge_pages;
  *hugetlb = 0;
  if (mode == NH_HUGE_HUGETLB && hugetlb_ok) {
    void *p = map_hugetlb(h, size, align);
    if (p) {
      *hugetlb = 1;
      atomic_fetch_add_explicit(&h->st.hugetlb_bytes, size, memory_order_relaxed);
      return p;
    }
    atomic_fetch_add_explicit(&h->st.hugetlb_fallbacks, 1, memory_order_relaxed);
  }
  void *p = nh_os_map_aligned(size, align, h->os_node); /* bound before any touch */
  if (p && thp_ok && mode != NH_HUGE_OFF && nh_g.thp_ok && nh_os_advise_huge(p, size) == 0) {
    atomic_fetch_add_explicit(&h->st.thp_bytes, size, memory_order_relaxed);
    *hugetlb = 2; /* advised */
  } else if (p && nh_g.thp_always) {
    (void)nh_os_advise_small(p, size); /* base pages meant: THP `always` would not ask */
  }
  return p;
}

nh_segment *nh_segment_map_new(nh_heap *h, size_t size, size_t align, int level, bool hugetlb_ok,
                               bool thp_ok) {
  if (!nh_node_has_room(h, size)) return NULL;
  if (!nh_charge(h, NH_HEADER_BYTES, level)) return NULL;
  uint8_t backing;
  nh_segment *seg = map_backed(h, size, align, hugetlb_ok, thp_ok, &backing);
  if (seg == NULL) {
    nh_uncharge(h, NH_HEADER_BYTES);
    return NULL;
  }
  seg->cookie = (uintptr_t)seg ^ nh_secret[0];
  seg->node = h->node;
  seg->map_size = size;
  seg->hugetlb = backing == 1;
  seg->advised = backing ? size : 0;
  atomic_fetch_add_explicit(&h->st.segments, 1, memory_order_relaxed);
  return seg;
}

void nh_segment_unmap(nh_heap *h, nh_segment *seg, uint64_t committed) {
  atomic_fetch_sub_explicit(seg->hugetlb ? &h->st.hugetlb_bytes : &h->st.thp_bytes, seg->advised,
                            memory_order_relaxed);
  nh_segmap_set((uintptr_t)seg, seg->map_size, NH_MAP_NONE);
  nh_uncharge(h, committed + NH_HEADER_BYTES);
  atomic_fetch_add_explicit(&h->st.purged, committed + NH_HEADER_BYTES, memory_order_relaxed);
  atomic_fetch_sub_explicit(&h->st.segments, 1, memory_order_relaxed);
  nh_track_open(seg, seg->map_size); /* ASan: the next mapping here starts clean */
  nh_os_unmap(seg, seg->map_size);
}

static nh_segment *segment_new(nh_heap *h, int level) {
  bool huge_ok = atomic_load_explicit(&h->st.segments, memory_order_relaxed) >= NH_THP_FIRST_SEGMENT;
  nh_segment *seg = nh_segment_map_new(h, NH_SEGMENT_SIZE, NH_SEGMENT_SIZE, level, huge_ok, huge_ok);
  if (seg == NULL) return NULL;
  seg->free_pages = NH_SEGMENT_USABLE_MASK;
  seg->committed_pages = 0;
  seg->next = h->segments;
  if (h->segments) h->segments->prev = seg;
  h->segments = seg;
  nh_segmap_set((uintptr_t)seg, NH_SEGMENT_SIZE, NH_MAP_SEGMENT);
  return seg;
}

static void segment_unlink(nh_heap *h, nh_segment *seg) {
  if (seg->prev) seg->prev->next = seg->next;
  else h->segments = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
}

static uint64_t run_mask(unsigned first, unsigned n) {
  return (n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << first;
}

/* The maximal run of set bits of mask that starts at or after bit *i:
 * moves *i to its first bit and returns its length; 0 if there is none. */
static unsigned run_from(uint64_t mask, unsigned *i) {
  uint64_t m = *i < 64 ? mask >> *i : 0;
  if (m == 0) return 0;
  *i += (unsigned)__builtin_ctzll(m);
  uint64_t rest = ~(mask >> *i);
  return rest == 0 ? 64 - *i : (unsigned)__builtin_ctzll(rest);
}

/* First index of n consecutive set bits in mask, or -1. */
static int find_run(uint64_t mask, unsigned n) {
  for (unsigned i = 0, l; (l = run_from(mask, &i)) > 0; i += l)
    if (l >= n) return (int)i;
  return -1;
}

static uint64_t pages_bytes(uint64_t mask) {
  return (uint64_t)__builtin_popcountll(mask) * NH_PAGE_SIZE;
}

static void maybe_purge(nh_heap *h);

/* Makes the run at page first of seg a span charged to level. */
static uint64_t *old_dirty(nh_segment *seg);

static nh_span *span_claim(nh_heap *h, nh_segment *seg, unsigned first, unsigned npages, int level) {
  uint64_t run = run_mask(first, npages);
  if (!seg->reserve) {
    h->dirty_bytes -= pages_bytes(run & seg->committed_pages);
    *old_dirty(seg) &= ~run; /* in use again: its purge clock starts over when freed */
  }
  seg->free_pages &= ~run;
  seg->committed_pages |= run;
  atomic_fetch_add_explicit(&h->st.level_committed[level], pages_bytes(run), memory_order_relaxed);
  nh_span *span = &seg->spans[first];
  span->kind = NH_PAGE_HEAD;
  span->npages = (uint8_t)npages;
  span->level = (uint8_t)level;
  for (unsigned i = 1; i < npages; i++) {
    seg->spans[first + i].kind = NH_PAGE_TAIL;
    seg->spans[first + i].back = (uint8_t)i;
  }
  return span;
}

/* The 2 MiB units of a segment, as page masks (unit 0 without the header page). */
static const uint64_t unit_masks[2] = {0x00000000fffffffeull, 0xffffffff00000000ull};

/* The pages of seg already resident: the committed ones and, in a segment
 * advised onto transparent huge pages, every page of a 2 MiB unit holding a
 * committed one (the kernel backs the whole unit at its first fault). */
static uint64_t resident_pages(const nh_segment *seg) {
  if (seg->advised == 0 || seg->hugetlb) return seg->committed_pages;
  uint64_t out = 0;
  for (int u = 0; u < 2; u++)
    if (seg->committed_pages & unit_masks[u]) out |= unit_masks[u];
  return out;
}

/* The start of the shortest maximal run of set bits in mask that holds n
 * pages, its length in *len; -1 if none. */
static int tightest_run(uint64_t mask, unsigned n, unsigned *len) {
  int best = -1;
  *len = 65;
  for (unsigned i = 0, l; *len > n && (l = run_from(mask, &i)) > 0; i += l)
    if (l >= n && l < *len) best = (int)i, *len = l;
  return best;
}

/* Free pages of seg a claim may take without a page fault: in tier 0
 * committed ones (no budget either), in tier 1 resident huge pages too. */
static uint64_t tier_pages(const nh_segment *seg, int tier) {
  return seg->free_pages & (tier == 0 ? seg->committed_pages : resident_pages(seg));
}

/* Segments a claim compares in a tier: the best fit among the first this
 * many that have a run long enough (a heap of GiBs has a thousand segments,
 * and a claim looks at a few of them). */
#define FIT_CANDIDATES 16

/* The window of npages free pages of seg that faults in the fewest: over
 * every maximal free run at least npages long and every place in it, the
 * fewest pages outside have (the pages already resident), then the shortest
 * run. Its first page, or -1 if no run is long enough; the pages it faults
 * in go to *faults, its run's length to *len. */
static int least_fault_window(const nh_segment *seg, uint64_t have, unsigned npages,
                              unsigned *faults, unsigned *len) {
  int best = -1;
  *faults = 65;
  *len = 65;
  for (unsigned i = 0, l; *faults > 0 && (l = run_from(seg->free_pages, &i)) > 0; i += l)
    for (unsigned at = i; at + npages <= i + l; at++) {
      unsigned f = npages - (unsigned)__builtin_popcountll(have & run_mask(at, npages));
      if (f < *faults || (f == *faults && l < *len)) best = (int)at, *faults = f, *len = l;
    }
  return best;
}

/* A run of npages free pages in h's ordinary segments. First without a page
 * fault: the tightest of FIT_CANDIDATES fitting runs of committed pages,
 * then of resident huge pages (packing spans into the huge pages the
 * process already pays for), an exact fit at once, so that a claim fills a
 * hole its size rather than cutting into a longer run a larger block could
 * have had. Else the window that faults in the fewest pages: free committed
 * pages next to untouched ones are used rather than left as a hole, where a
 * run's start would have faulted in all of a claim. On 0.5-2.5 MiB blocks
 * replaced at random (large/max_kib:2560), first fit faulted in 17.9k pages
 * in a run, tightest fit 16.8k; ten runs in one process, tightest fit 88k
 * pages and 0.156 ms a replacement, with the fewest faults 53k and 0.115 ms
 * (docs/benchmarks.md, session 18). */
static nh_segment *find_pages(nh_heap *h, unsigned npages, int *first) {
  for (int tier = 0; tier < 3; tier++) { /* tier 2: any free pages, the fewest faults */
    nh_segment *best = NULL;
    unsigned best_faults = 65, best_len = 65, seen = 0;
    for (nh_segment *seg = h->segments; seg && seen < FIT_CANDIDATES; seg = seg->next) {
      unsigned faults = 0, len;
      int at = tier < 2 ? tightest_run(tier_pages(seg, tier), npages, &len)
                        : least_fault_window(seg, resident_pages(seg), npages, &faults, &len);
      if (at < 0) continue;
      seen++;
      if (faults < best_faults || (faults == best_faults && len < best_len))
        best = seg, best_faults = faults, best_len = len, *first = at;
      if (faults == 0 && len == npages) break;
    }
    if (best) return best;
  }
  return NULL;
}

static void release_node_kept(nh_heap *h);
static void purge_mask(nh_heap *h, nh_segment *seg, uint64_t mask);
static uint64_t whole_units(const nh_segment *seg, uint64_t dirty, uint64_t victims);

/* The lowest n set pages of mask (all of it if it has fewer). */
static uint64_t lowest_pages(uint64_t mask, unsigned n) {
  uint64_t out = 0;
  for (; mask && n; n--) {
    uint64_t bit = mask & (~mask + 1);
    out |= bit;
    mask &= ~bit;
  }
  return out;
}

/* Claims of fewer pages (the spans of size classes below 64 KiB) never shed:
 * where spans of 1 to 4 pages churn, a page shed for one claim is the
 * untouched page the next claim faults in, and each claim would pay a
 * fault and an madvise; the decay handles them. */
#define NH_SHED_MIN_PAGES 8

/* How many of n pages a claim sheds: the free committed pages past the
 * node's share, at most n. */
static unsigned shed_excess(const nh_heap *h, unsigned n) {
  uint64_t committed = atomic_load_explicit(&h->st.committed, memory_order_relaxed);
  uint64_t other = committed > h->dirty_bytes ? committed - h->dirty_bytes : 0; /* racy read */
  other = other > h->huge_kept_bytes ? other - h->huge_kept_bytes : 0;
  uint64_t keep = other / NH_DIRTY_SHARE;
  if (h->dirty_bytes <= keep) return 0;
  uint64_t excess = (h->dirty_bytes - keep) / NH_PAGE_SIZE;
  return excess < n ? (unsigned)excess : n;
}

/* A claim is about to fault in n untouched pages while free committed
 * pages sit in holes too small for it: gives up to n of those past the
 * node's share (shed_excess) back to the OS first (those already dirty at
 * the last decay pass, then the rest; a huge-page backed segment's only in
 * whole free 2 MiB units), so that the
 * resident set does not grow past what is in use plus what the decay has
 * yet to return. Without it a server's hash table, rehashed into a new
 * 1.4 MiB array at each run, faulted 11 MB of new pages beside 10-14 MB of
 * holes its freed sessions had left (server/live:100000, docs/benchmarks.md
 * "Footprint, third pass"). The pages of the claim itself stay. */
static void shed_dirty(nh_heap *h, unsigned n, nh_segment *claimed, uint64_t claim) {
  n = shed_excess(h, n);
  for (int pass = 0; pass < 2 && n > 0; pass++) {
    for (nh_segment *seg = h->segments; seg && n > 0; seg = seg->next) {
      if (seg->hugetlb) continue;
      uint64_t dirty = seg->free_pages & seg->committed_pages;
      if (seg == claimed) dirty &= ~claim;
      uint64_t pick = pass == 0 ? dirty & *old_dirty(seg) : dirty;
      pick = whole_units(seg, dirty, pick);
      for (int u = 0; u < 2 && seg == claimed && seg->advised; u++)
        if (claim & unit_masks[u]) pick &= ~unit_masks[u]; /* the claim's huge page stays whole */
      if (seg->advised == 0) pick = lowest_pages(pick, n);
      if (pick == 0) continue;
      unsigned got = (unsigned)__builtin_popcountll(pick);
      purge_mask(h, seg, pick);
      n = got >= n ? 0 : n - got;
    }
  }
}

static nh_span *take_ordinary(nh_heap *h, unsigned npages, int level, int grow_level) {
  int first = -1;
  nh_segment *seg = find_pages(h, npages, &first);
  /* The node's kept large spans are resident memory too. Before untouched
   * pages are faulted in while they sit idle, they go back to their
   * segments and the request takes their pages (as jemalloc reuses its
   * dirty extents for any size): a server that frees a hash table's old
   * bucket arrays then fills its sessions into them rather than into new
   * pages (server/live:100000, docs/benchmarks.md "Footprint, third pass").
   * The CPUs' stashes stay: each is its CPU's next large block. */
  if (h->large_cached > 0 &&
      (seg == NULL || (run_mask((unsigned)first, npages) & ~resident_pages(seg)) != 0)) {
    release_node_kept(h);
    seg = find_pages(h, npages, &first);
  }
  bool mapped_now = seg == NULL; /* segment_map_new counted its room already */
  if (mapped_now) {
    if ((seg = segment_new(h, grow_level)) == NULL) return NULL;
    first = 1;
  }
  uint64_t claim = run_mask((unsigned)first, npages);
  uint64_t fresh = claim & ~seg->committed_pages;
  /* pages never touched (or purged) fault in on first use, bound to the
   * node: on a node the OS has nearly exhausted that is the OOM killer, so
   * such a node counts as full for them too, as it does for new segments */
  if (fresh && !mapped_now && !nh_node_has_room(h, pages_bytes(fresh))) return NULL;
  if (fresh && !nh_charge(h, pages_bytes(fresh), grow_level)) return NULL;
  uint64_t faults = mapped_now ? claim : claim & ~resident_pages(seg);
  if (faults && npages >= NH_SHED_MIN_PAGES && h->dirty_bytes > 0)
    shed_dirty(h, (unsigned)__builtin_popcountll(faults), seg, claim);
  return span_claim(h, seg, (unsigned)first, npages, level);
}

/* From the pre-committed emergency reserve (process level only): no OS call. */
static nh_span *take_reserve(nh_heap *h, unsigned npages) {
  for (nh_segment *seg = h->reserve_segs; seg; seg = seg->next) {
    int first = find_run(seg->free_pages, npages);
    if (first < 0) continue;
    if (!nh_charge(h, (uint64_t)npages * NH_PAGE_SIZE, NH_LEVELS - 1)) return NULL;
    return span_claim(h, seg, (unsigned)first, npages, NH_LEVELS - 1);
  }
  return NULL;
}

static void release_span(nh_heap *h, nh_segment *seg, nh_span *span);

/* Gives the node's kept large spans back to their segments (no purge). */
static void release_node_kept(nh_heap *h) {
  while (h->large_cached > 0) {
    nh_span *span = h->large_cache[--h->large_cached];
    release_span(h, nh_span_segment(span), span);
  }
}

void nh_pages_shed(nh_heap *h, size_t bytes) {
  release_node_kept(h);
  if (h->dirty_bytes > 0) shed_dirty(h, (unsigned)((bytes + NH_PAGE_SIZE - 1) / NH_PAGE_SIZE), NULL, 0);
}

/* Gives the kept large spans, the node's and its CPU shards' stashes,
 * back to their segments (no purge). */
static void release_kept(nh_heap *h) {
  release_node_kept(h);
  nh_span *stashed[NH_LARGE_STASH];
  for (unsigned sh = 0; sh < h->shards; sh++)
    for (size_t i = 0, n = nh_heap_unstash(h, sh, stashed); i < n; i++)
      release_span(h, nh_span_segment(stashed[i]), stashed[i]);
}

nh_span *nh_pages_take(nh_heap *h, unsigned npages, int level) {
  maybe_purge(h);
  /* With a pre-committed reserve, process-level requests grow ordinary
   * memory only as far as the other levels may, then draw on the reserve. */
  bool reserved = h->reserve_segs != NULL && level == NH_LEVELS - 1;
  nh_span *span = take_ordinary(h, npages, level, reserved ? NH_LEVELS - 2 : level);
  if (span == NULL && (nh_heap_keeps_large(h) || h->dirty_bytes > 0 || h->huge_kept != NULL)) {
    /* the node's free pages and kept large spans go back to the OS before
     * the request is refused: a node spills only when it really is full */
    nh_pages_purge(h, true);
    span = take_ordinary(h, npages, level, reserved ? NH_LEVELS - 2 : level);
  }
  if (span == NULL && reserved) span = take_reserve(h, npages);
  return span;
}

int nh_heap_precommit_reserve(nh_heap *h) {
  uint64_t want = atomic_load_explicit(&h->reserve, memory_order_relaxed);
  if (h->reserve_segs != NULL || want == 0) return 0;
  const size_t usable = NH_SEGMENT_SIZE - NH_PAGE_SIZE;
  for (uint64_t have = 0; have < want; have += usable) {
    nh_segment *seg = nh_os_map_aligned(NH_SEGMENT_SIZE, NH_SEGMENT_SIZE, h->os_node);
    if (seg == NULL) return -1;
    if (nh_os_populate((uint8_t *)seg + NH_PAGE_SIZE, usable) != 0) {
      nh_os_unmap(seg, NH_SEGMENT_SIZE);
      return -1;
    }
    seg->cookie = (uintptr_t)seg ^ nh_secret[0];
    seg->node = h->node;
    seg->reserve = 1;
    seg->map_size = NH_SEGMENT_SIZE;
    seg->free_pages = NH_SEGMENT_USABLE_MASK;
    seg->next = h->reserve_segs;
    if (h->reserve_segs) h->reserve_segs->prev = seg;
    h->reserve_segs = seg;
    h->reserve_mapped += usable;
    nh_segmap_set((uintptr_t)seg, NH_SEGMENT_SIZE, NH_MAP_SEGMENT);
  }
  return 0;
}

/* Empty segments a node keeps mapped (their pages dirty until a purge pass
 * returns them): enough that a heap emptying and refilling tens of MiB does
 * not unmap and fault in its memory every round. */
#define NH_KEEP_EMPTY 8

static unsigned empty_segments(const nh_heap *h) {
  unsigned n = 0;
  for (const nh_segment *o = h->segments; o; o = o->next) n += o->free_pages == NH_SEGMENT_USABLE_MASK;
  return n;
}

/* nh_pages_release without the purge pass. */
static void release_span(nh_heap *h, nh_segment *seg, nh_span *span) {
  unsigned first = (unsigned)(span - seg->spans), n = span->npages;
  uint64_t run = run_mask(first, n);
  atomic_fetch_sub_explicit(&h->st.level_committed[span->level], pages_bytes(run),
                            memory_order_relaxed);
  for (unsigned i = 0; i < n; i++) memset(&seg->spans[first + i], 0, sizeof(nh_span));
  seg->free_pages |= run;
  if (seg->reserve) { /* reserve pages stay populated; they count only while in use */
    seg->committed_pages &= ~run;
    nh_uncharge(h, pages_bytes(run));
    return;
  }
  h->dirty_bytes += pages_bytes(run);
  if (seg->free_pages == NH_SEGMENT_USABLE_MASK && empty_segments(h) > NH_KEEP_EMPTY) {
    h->dirty_bytes -= pages_bytes(seg->committed_pages);
    segment_unlink(h, seg);
    nh_segment_unmap(h, seg, pages_bytes(seg->committed_pages));
  }
}

void nh_pages_release(nh_heap *h, nh_segment *seg, nh_span *span) {
  release_span(h, seg, span);
  maybe_purge(h);
}

/* Purges the free committed pages of seg selected by mask, in runs. */
static void purge_mask(nh_heap *h, nh_segment *seg, uint64_t mask) {
  for (unsigned i = 0, n; (n = run_from(mask, &i)) > 0; i += n) {
    uint64_t run = run_mask(i, n);
    nh_os_purge((uint8_t *)seg + (size_t)i * NH_PAGE_SIZE, (size_t)n * NH_PAGE_SIZE);
    seg->committed_pages &= ~run;
    h->dirty_bytes -= pages_bytes(run);
    nh_uncharge(h, pages_bytes(run));
    atomic_fetch_add_explicit(&h->st.purged, pages_bytes(run), memory_order_relaxed);
  }
}

/* Per segment, the pages dirty at the previous pass are kept in the span
 * slot of page 0 (unused: page 0 is the header) as a bit mask. */
static uint64_t *old_dirty(nh_segment *seg) {
  return (uint64_t *)(void *)&seg->spans[0].start;
}

/* Of the victims of a decay pass, those a huge-page backed segment can give
 * back: a 2 MiB unit goes back whole or not at all, so that a purge never
 * breaks up a huge page that still holds a span (hugepage-aware purge, as
 * tcmalloc's Temeraire does). Explicit huge pages are never purged in part:
 * a fault on them after the pool ran dry would be a SIGBUS. */
static uint64_t whole_units(const nh_segment *seg, uint64_t dirty, uint64_t victims) {
  if (seg->hugetlb) return 0;
  if (seg->advised == 0) return victims;
  uint64_t out = 0;
  for (int u = 0; u < 2; u++) {
    uint64_t m = unit_masks[u];
    if ((seg->free_pages & m) == m && (victims & m) == (dirty & m)) out |= victims & m;
  }
  return out;
}

void nh_pages_purge(nh_heap *h, bool force) {
  release_kept(h); /* freed large spans kept for reuse go back first */
  nh_huge_decay(h, force);
  bool kept_empty = false;
  for (nh_segment *seg = h->segments, *next; seg; seg = next) {
    next = seg->next;
    uint64_t dirty = seg->free_pages & seg->committed_pages;
    if (seg->hugetlb && seg->free_pages == NH_SEGMENT_USABLE_MASK) { /* unmapped, never purged */
      h->dirty_bytes -= pages_bytes(dirty);
      segment_unlink(h, seg);
      nh_segment_unmap(h, seg, pages_bytes(seg->committed_pages));
      continue;
    }
    uint64_t victims = force && !seg->hugetlb ? dirty : whole_units(seg, dirty, dirty & *old_dirty(seg));
    purge_mask(h, seg, victims);
    *old_dirty(seg) = seg->free_pages & seg->committed_pages;
    if (seg->free_pages != NH_SEGMENT_USABLE_MASK || seg->committed_pages != 0) continue;
    if (!kept_empty) { /* one empty, purged segment stays for the next growth */
      kept_empty = true;
      continue;
    }
    segment_unlink(h, seg);
    nh_segment_unmap(h, seg, 0);
  }
  h->last_purge_ns = nh_os_clock_ns();
}

static void maybe_purge(nh_heap *h) {
  if (h->dirty_bytes == 0 && h->huge_kept == NULL && !nh_heap_keeps_large(h)) return;
  uint64_t delay = nh_g.purge_delay_ms * 1000000u;
  if (delay == 0) {
    nh_pages_purge(h, true);
    return;
  }
  if (nh_os_clock_ns() - h->last_purge_ns >= delay) nh_pages_purge(h, false);
}

void nh_segments_destroy(nh_heap *h) {
  h->large_cached = 0; /* their segments go below; so do the stashed spans' */
  for (unsigned sh = 0; sh < h->shards && h->stash; sh++)
    atomic_store_explicit(&h->stash[sh].n, 0, memory_order_relaxed);
  nh_huge_destroy(h);
  while (h->reserve_segs) {
    nh_segment *seg = h->reserve_segs;
    h->reserve_segs = seg->next;
    nh_uncharge(h, pages_bytes(seg->committed_pages));
    nh_segmap_set((uintptr_t)seg, seg->map_size, NH_MAP_NONE);
    nh_track_open(seg, seg->map_size);
    nh_os_unmap(seg, seg->map_size);
  }
  h->reserve_mapped = 0;
  while (h->segments) {
    nh_segment *seg = h->segments;
    segment_unlink(h, seg);
    nh_segment_unmap(h, seg, pages_bytes(seg->committed_pages));
  }
  h->dirty_bytes = 0;
}

/* ---- growing in place ----------------------------------------------------------- */

void nh_pages_shrink(nh_heap *h, nh_segment *seg, nh_span *span, unsigned npages) {
  unsigned first = (unsigned)(span - seg->spans), n = span->npages;
  if (npages >= n) return;
  uint64_t cut = run_mask(first + npages, n - npages);
  atomic_fetch_sub_explicit(&h->st.level_committed[span->level], pages_bytes(cut),
                            memory_order_relaxed);
  for (unsigned i = npages; i < n; i++) memset(&seg->spans[first + i], 0, sizeof(nh_span));
  seg->free_pages |= cut;
  if (seg->reserve) { /* reserve pages count only while in use */
    seg->committed_pages &= ~cut;
    nh_uncharge(h, pages_bytes(cut));
  } else {
    h->dirty_bytes += pages_bytes(cut);
  }
  span->npages = (uint8_t)npages;
  span->block_size = (uint32_t)(npages * NH_PAGE_SIZE);
}

nh_span *nh_pages_split(nh_heap *h, nh_segment *seg, nh_span *span, unsigned npages) {
  (void)h; /* the pages stay committed at span's level */
  unsigned first = (unsigned)(span - seg->spans), n = span->npages;
  nh_span *rest = &seg->spans[first + npages];
  memset(rest, 0, sizeof *rest);
  rest->kind = NH_PAGE_HEAD;
  rest->npages = (uint8_t)(n - npages);
  rest->level = span->level;
  for (unsigned i = 1; i < n - npages; i++) seg->spans[first + npages + i].back = (uint8_t)i;
  span->npages = (uint8_t)npages;
  span->block_size = (uint32_t)(npages * NH_PAGE_SIZE);
  nh_span_format(rest, (uint8_t *)seg + (size_t)(first + npages) * NH_PAGE_SIZE, 0,
                 (size_t)(n - npages) * NH_PAGE_SIZE);
  void *block;
  nh_span_pop(rest, &block, 1); /* its one block, out and marked free: a kept span */
  return rest;
}

void nh_pages_join(nh_heap *h, nh_segment *seg, nh_span *span, nh_span *next) {
  unsigned first = (unsigned)(span - seg->spans), n = span->npages, m = next->npages;
  nh_heap_level_move(h, next->level, span->level, (uint64_t)m * NH_PAGE_SIZE);
  for (unsigned i = 0; i < m; i++) {
    memset(&seg->spans[first + n + i], 0, sizeof(nh_span));
    seg->spans[first + n + i].kind = NH_PAGE_TAIL;
    seg->spans[first + n + i].back = (uint8_t)(n + i);
  }
  span->npages = (uint8_t)(n + m);
  span->block_size = (uint32_t)((n + m) * NH_PAGE_SIZE);
}

bool nh_pages_grow(nh_heap *h, nh_segment *seg, nh_span *span, size_t size) {
  unsigned first = (unsigned)(span - seg->spans), n = span->npages;
  size_t want = (size + NH_PAGE_SIZE - 1) >> NH_PAGE_SHIFT;
  if (want <= n) return true;
  if (seg->reserve || first + want > NH_PAGES_PER_SEGMENT) return false;
  uint64_t more = run_mask(first + n, (unsigned)want - n);
  if ((seg->free_pages & more) != more) return false;
  uint64_t fresh = more & ~seg->committed_pages;
  if (fresh && !nh_charge(h, pages_bytes(fresh), span->level)) return false;
  h->dirty_bytes -= pages_bytes(more & seg->committed_pages);
  seg->free_pages &= ~more;
  seg->committed_pages |= more;
  atomic_fetch_add_explicit(&h->st.level_committed[span->level], pages_bytes(more),
                            memory_order_relaxed);
  for (unsigned i = n; i < want; i++) {
    seg->spans[first + i].kind = NH_PAGE_TAIL;
    seg->spans[first + i].back = (uint8_t)i;
  }
  span->npages = (uint8_t)want;
  span->block_size = (uint32_t)(want * NH_PAGE_SIZE);
  return true;
}
