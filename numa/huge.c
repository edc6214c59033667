/*
 * numa/huge.c: huge blocks (over NH_LARGE_MAX, 4032 KiB, or aligned past a 64 KiB
 * page). Each has a mapping of its own, kept on its node after free so that
 * the next huge request that fits is served from pages already faulted in
 * (as jemalloc's extent reuse and tcmalloc's page heap do).
 *
 * Shape. A huge mapping starts on a 4 MiB boundary and spans a whole number
 * of 4 MiB units (so every piece cut from it at a unit boundary has its own
 * byte in the segment map). Page 0 holds the header; the block starts at
 * page 1 (64 KiB), or at the alignment asked for when that is larger (such
 * mappings, and all mappings in paranoid mode, are unmapped on free, never
 * kept).
 *
 * Accounting. A mapping counts NH_HEADER_BYTES + huge_charged in the node's
 * committed bytes: huge_charged is the prefix of the block that may hold
 * pages (>= huge_size while the block lives; bytes past it were never
 * touched). A mapping kept after free stays charged: its pages are dirty, as
 * free pages of ordinary segments are, and count against the budgets until
 * they go back to the OS.
 *
 * Reuse. A request of need bytes (header page + block) takes the smallest
 * kept mapping of at least need bytes; the whole units past need are cut
 * off and stay kept. When none is large enough, the largest kept one is
 * grown to need (mremap in place, or moved to a new aligned address: its
 * pages move, nothing is copied), so its pages are reused too.
 *
 * Growth. realloc grows a live huge block within its mapping, into a kept
 * mapping right after it, by mremap in place, or else by moving the mapping
 * (pages and all, nothing copied) to where it can grow (extend, as a kept
 * mapping grows for a larger request).
 *
 * Decay. A kept mapping goes back to the OS (munmap) purge_delay ms after
 * its free, at the first huge request, huge free or purge pass of its node
 * after that; nh_trim(), a failing request and memory pressure unmap every
 * kept mapping first. At most [heap] huge_keep bytes stay kept a node (the
 * oldest go first).
 *
 * Locks: every function runs under the page lock of the mapping's node.
 */
#include <string.h>

#include "numa/heap.h"
#include "numa/os.h"

static size_t unit_round(size_t n) {
  return (n + NH_SEGMENT_SIZE - 1) & ~(NH_SEGMENT_SIZE - 1);
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ---- the kept list -------------------------------------------------------------- */

static void list_push(nh_segment **head, nh_segment *seg) {
  seg->prev = NULL;
  seg->next = *head;
  if (*head) (*head)->prev = seg;
  *head = seg;
}

static void list_unlink(nh_segment **head, nh_segment *seg) {
  if (seg->prev) seg->prev->next = seg->next;
  else *head = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
}

static void kept_add(nh_heap *h, nh_segment *seg) {
  list_push(&h->huge_kept, seg);
  h->huge_kept_bytes += seg->map_size;
  atomic_store_explicit(&h->st.huge_kept, h->huge_kept_bytes, memory_order_relaxed);
}

static void kept_remove(nh_heap *h, nh_segment *seg) {
  list_unlink(&h->huge_kept, seg);
  h->huge_kept_bytes -= seg->map_size;
  atomic_store_explicit(&h->st.huge_kept, h->huge_kept_bytes, memory_order_relaxed);
}

static void huge_unmap(nh_heap *h, nh_segment *seg) {
  nh_segment_unmap(h, seg, seg->huge_charged);
}

static void kept_unmap(nh_heap *h, nh_segment *seg) {
  kept_remove(h, seg);
  huge_unmap(h, seg);
}

void nh_huge_decay(nh_heap *h, bool force) {
  if (h->huge_kept == NULL) return;
  uint64_t now = nh_os_clock_ns(), delay = nh_g.purge_delay_ms * 1000000u;
  for (nh_segment *seg = h->huge_kept, *next; seg; seg = next) {
    next = seg->next;
    if (force || now - seg->kept_ns >= delay) kept_unmap(h, seg);
  }
}

/* Unmaps the oldest kept mappings until at most limit bytes stay kept. */
static void kept_limit(nh_heap *h, uint64_t limit) {
  while (h->huge_kept_bytes > limit) {
    nh_segment *oldest = h->huge_kept;
    while (oldest->next) oldest = oldest->next;
    kept_unmap(h, oldest);
  }
}

/* Under Valgrind no freed huge mapping is kept or reused: memcheck lost track
 * of kept mappings that were cut, moved by mremap and handed out again
 * (test_faults' injected OS failures: reads and writes of a new block and of
 * a kept header reported invalid), while ASan, which follows the same
 * annotations byte by byte, reports nothing there. */
#define KEEP_HUGE (!nh_os_under_valgrind())

bool nh_huge_keeping(void) { return KEEP_HUGE; }

/* ---- cutting and growing mappings -------------------------------------------------- */

/* Cuts seg (kept, or live and shrunk) at byte at (a unit boundary inside
 * it): the part from at on becomes a kept mapping of its own, with the
 * charged and dirty prefix it had. false (nothing changed) when the budget
 * cannot take the new header. */
static bool cut(nh_heap *h, nh_segment *seg, size_t at, int level) {
  uint64_t c = seg->huge_charged, head_c = min_size(c, at - NH_PAGE_SIZE);
  uint64_t tail_c = c > at ? c - at : 0;
  uint64_t before = NH_HEADER_BYTES + c, after = 2 * NH_HEADER_BYTES + head_c + tail_c;
  if (after > before && !nh_charge(h, after - before, level)) return false;
  if (after < before) nh_uncharge(h, before - after);
  nh_segment *tail = (nh_segment *)((uint8_t *)seg + at);
  nh_track_open(tail, NH_HEADER_BYTES); /* it was block memory: ASan may have it poisoned */
  memset(tail, 0, sizeof *tail);
  tail->cookie = (uintptr_t)tail ^ nh_secret[0];
  tail->node = seg->node;
  tail->huge = 1;
  tail->hugetlb = seg->hugetlb;
  tail->map_size = seg->map_size - at;
  tail->huge_block = (uint8_t *)tail + NH_PAGE_SIZE;
  tail->huge_charged = tail_c;
  tail->huge_dirty = seg->huge_dirty > at ? seg->huge_dirty - at : 0;
  tail->advised = seg->advised > at ? seg->advised - at : 0;
  tail->kept_ns = nh_os_clock_ns();
  seg->huge_charged = head_c;
  seg->huge_dirty = min_size(seg->huge_dirty, at - NH_PAGE_SIZE);
  seg->advised = min_size(seg->advised, at);
  seg->map_size = at;
  atomic_fetch_add_explicit(&h->st.segments, 1, memory_order_relaxed);
  nh_segmap_set((uintptr_t)tail, tail->map_size, NH_MAP_HUGE); /* header written first */
  kept_add(h, tail);
  return true;
}

/* Grows the mapping of *segp to size bytes: in place where the address
 * space after it is free, else moved to a new 4 MiB-aligned address (its
 * pages come along, nothing is copied, as glibc's realloc does for its
 * mapped chunks; the block keeps its offset). The new pages are untouched.
 * false (nothing changed) if the OS says no, and no move under Valgrind
 * (KEEP_HUGE: memcheck loses track of moved mappings). A caller whose
 * mapping is on a list relinks it at *segp. */
static bool extend(nh_heap *h, nh_segment **segp, size_t size) {
  nh_segment *seg = *segp;
  size_t old = seg->map_size;
  if (seg->hugetlb || !nh_node_has_room(h, size - old)) return false;
  if (nh_os_grow_in_place(seg, old, size) != 0) {
    if (!KEEP_HUGE) return false;
    size_t offset = (size_t)(seg->huge_block - (uint8_t *)seg);
    nh_track_open(seg, old); /* ASan: the next mapping at the old address starts clean */
    nh_segment *to = nh_os_move(seg, old, size, NH_SEGMENT_SIZE);
    if (to == NULL) return false;
    nh_track_open(to, size); /* and so does this one: its block is live or handed out next */
    nh_segmap_set((uintptr_t)seg, old, NH_MAP_NONE);
    seg = to; /* the header moved with its page: only the cookie names the address */
    seg->cookie = (uintptr_t)seg ^ nh_secret[0];
    seg->huge_block = (uint8_t *)seg + offset;
    *segp = seg;
  }
  if (seg->advised) { /* the advice is the mapping's: the new part has it too */
    atomic_fetch_add_explicit(&h->st.thp_bytes, size - old, memory_order_relaxed);
    seg->advised = size;
  }
  seg->map_size = size;
  nh_segmap_set((uintptr_t)seg, size, NH_MAP_HUGE);
  return true;
}

/* ---- allocation ----------------------------------------------------------------- */

/* Makes seg's block live with usable bytes at level: the bytes past its
 * charged prefix are charged now. false (nothing changed) if the budget
 * says no. */
static bool activate(nh_heap *h, nh_segment *seg, size_t usable, int level) {
  if (usable > seg->huge_charged) {
    uint64_t extra = usable - seg->huge_charged;
    if (!nh_charge(h, extra, level)) return false;
    nh_pages_shed(h, extra); /* new pages: free ones of the segments go back first */
    seg->huge_charged = usable;
  }
  seg->huge_size = usable;
  seg->huge_level = (uint8_t)level;
  atomic_fetch_add_explicit(&h->st.level_committed[level], usable, memory_order_relaxed);
  list_push(&h->huge, seg);
  atomic_store_explicit(&seg->huge_live, 1, memory_order_release);
  return true;
}

/* The smallest kept mapping of at least need bytes (*fits), else the
 * largest one that can grow; NULL if none. */
static nh_segment *kept_best(nh_heap *h, size_t need, bool *fits) {
  nh_segment *best = NULL, *largest = NULL;
  for (nh_segment *s = h->huge_kept; s; s = s->next) {
    if (s->map_size >= need) {
      if (best == NULL || s->map_size < best->map_size) best = s;
    } else if (!s->hugetlb && (largest == NULL || s->map_size > largest->map_size)) {
      largest = s;
    }
  }
  *fits = best != NULL;
  return best ? best : largest;
}

static void *reuse(nh_heap *h, size_t usable, int level) {
  if (!KEEP_HUGE) return NULL; /* what a failed munmap left kept waits for the decay */
  size_t need = NH_PAGE_SIZE + usable;
  bool fits;
  nh_segment *seg = kept_best(h, need, &fits);
  if (seg == NULL) return NULL;
  kept_remove(h, seg);
  bool ok = fits ? true : extend(h, &seg, unit_round(need));
  if (!ok) nh_track_close(seg->huge_block, seg->huge_charged); /* still kept */
  if (ok && unit_round(need) < seg->map_size)
    cut(h, seg, unit_round(need), level); /* refused: the block keeps the whole mapping */
  if (!ok || !activate(h, seg, usable, level)) {
    kept_add(h, seg);
    return NULL;
  }
  atomic_fetch_add_explicit(&h->st.huge_reused, 1, memory_order_relaxed);
  return seg->huge_block;
}

/* Whether a block reaching end bytes into its new mapping goes on
 * transparent huge pages. One is faulted in whole, so the part of the last
 * 2 MiB unit past the block's end is resident as soon as the block's last
 * page is touched: asked for only where that is at most a quarter of what
 * the block reaches (every block of 8 MiB and more; a block of 4-4.5 MiB,
 * three units for two and a bit, never: large/max_kib:2560 at one thread had
 * a peak RSS of 83.7 MB with its 2-2.5 MiB blocks on huge pages when those
 * were huge blocks, glibc 53.4).
 * Explicit huge pages (hugetlb) are taken whatever the fit: the
 * administrator reserved them, so they cost no memory beyond the pool. */
static bool huge_pages_pay(size_t end) {
  size_t unit = (size_t)2 << 20, waste = ((end + unit - 1) & ~(unit - 1)) - end;
  return 4 * waste <= end;
}

static void *fresh(nh_heap *h, size_t usable, size_t align, int level) {
  size_t offset = align > NH_PAGE_SIZE ? align : NH_PAGE_SIZE;
  size_t map_align = align > NH_SEGMENT_SIZE ? align : NH_SEGMENT_SIZE;
  size_t guard = nh_g.paranoid ? nh_os_page_size() : 0; /* a PROT_NONE page after the block */
  size_t map_size = unit_round(offset + usable + guard);
  nh_segment *seg =
      nh_segment_map_new(h, map_size, map_align, level, true, huge_pages_pay(offset + usable));
  if (seg == NULL) return NULL;
  if (guard) nh_os_protect((uint8_t *)seg + offset + usable, guard, NH_OS_PROT_NONE);
  seg->huge = 1;
  seg->huge_block = (uint8_t *)seg + offset;
  if (!activate(h, seg, usable, level)) {
    huge_unmap(h, seg);
    return NULL;
  }
  nh_segmap_set((uintptr_t)seg, map_size, NH_MAP_HUGE);
  return seg->huge_block;
}

void *nh_huge_alloc(nh_heap *h, size_t size, size_t align, int level) {
  size_t offset = align > NH_PAGE_SIZE ? align : NH_PAGE_SIZE;
  if (size > ((size_t)1 << 46) || offset > ((size_t)1 << 40)) return NULL;
  /* Fix by the reliability task (fuzz_alloc found it): a zero-byte request
   * had usable == 0, so the block sat one past the end of the mapping and,
   * with align >= 4 MiB, outside the segment map (nh_aligned_alloc(4 MiB, 0)
   * crashed in huge_alloc on nh_segment_of(p) == NULL). Give it one page. */
  size_t usable = size == 0 ? NH_PAGE_SIZE : (size + NH_PAGE_SIZE - 1) & ~(NH_PAGE_SIZE - 1);
  nh_huge_decay(h, false);
  bool keepable = offset == NH_PAGE_SIZE && !nh_g.paranoid;
  void *p = keepable ? reuse(h, usable, level) : NULL;
  if (p == NULL) p = fresh(h, usable, align, level);
  if (p == NULL && (h->huge_kept || h->dirty_bytes || nh_heap_keeps_large(h))) {
    nh_pages_purge(h, true); /* kept and free memory go back before the request is refused */
    p = fresh(h, usable, align, level);
  }
  return p;
}

/* ---- free, grow, shrink ------------------------------------------------------------ */

void nh_huge_free(nh_segment *seg) {
  nh_heap *h = &nh_g.heap[seg->node];
  if (!atomic_load_explicit(&seg->huge_live, memory_order_relaxed))
    nh_fatal("free(%p): block already freed (double free)", (void *)seg->huge_block);
  atomic_store_explicit(&seg->huge_live, 0, memory_order_release);
  list_unlink(&h->huge, seg);
  atomic_fetch_sub_explicit(&h->st.level_committed[seg->huge_level], seg->huge_size,
                            memory_order_relaxed);
  bool keepable = KEEP_HUGE && seg->huge_block == (uint8_t *)seg + NH_PAGE_SIZE && !nh_g.paranoid;
  if (!keepable || seg->map_size > nh_g.huge_keep) {
    huge_unmap(h, seg);
    return;
  }
  seg->huge_dirty = seg->huge_charged; /* the program may have written any of it */
  seg->huge_size = 0;
  seg->kept_ns = nh_os_clock_ns();
  nh_track_close(seg->huge_block, seg->huge_charged); /* ASan: kept memory is no one's */
  kept_add(h, seg);
  kept_limit(h, nh_g.huge_keep);
  nh_huge_decay(h, false);
}

/* Takes the kept mapping right after seg (same node) into seg. The pages
 * between seg's charged prefix and it are charged too (the prefix stays
 * one run). false (nothing changed) if there is none or the budget says no. */
static bool absorb_next(nh_heap *h, nh_segment *seg) {
  uint8_t *end = (uint8_t *)seg + seg->map_size;
  if (seg->hugetlb || ((uintptr_t)end >> 48) != 0 ||
      atomic_load_explicit(&nh_segmap[(uintptr_t)end >> NH_SEGMENT_SHIFT], memory_order_acquire) !=
          NH_MAP_HUGE)
    return false;
  nh_segment *next = nh_segment_checked((nh_segment *)end);
  if (next->node != seg->node || next->hugetlb ||
      atomic_load_explicit(&next->huge_live, memory_order_relaxed) ||
      next->huge_block != end + NH_PAGE_SIZE)
    return false;
  size_t off = seg->map_size - NH_PAGE_SIZE; /* next's header from seg's block start */
  uint64_t charged = off + NH_PAGE_SIZE + next->huge_charged;
  uint64_t before = NH_HEADER_BYTES + seg->huge_charged + NH_HEADER_BYTES + next->huge_charged;
  uint64_t after = NH_HEADER_BYTES + charged;
  if (after > before && !nh_charge(h, after - before, seg->huge_level)) return false;
  if (after < before) nh_uncharge(h, before - after);
  kept_remove(h, next);
  atomic_fetch_sub_explicit(&h->st.segments, 1, memory_order_relaxed);
  nh_track_open(next, NH_HEADER_BYTES);
  seg->huge_charged = charged;
  seg->huge_dirty = charged; /* next's header and old contents */
  /* advised is a prefix: next's advice counts only after a wholly advised seg */
  uint64_t was = seg->advised + next->advised;
  if (seg->advised == seg->map_size) seg->advised += next->advised;
  atomic_fetch_sub_explicit(&h->st.thp_bytes, was - seg->advised, memory_order_relaxed);
  seg->map_size += next->map_size;
  nh_segmap_set((uintptr_t)seg, seg->map_size, NH_MAP_HUGE);
  return true;
}

bool nh_huge_grow(nh_heap *h, nh_segment **segp, size_t size) {
  nh_segment *seg = *segp;
  size_t usable = (size + NH_PAGE_SIZE - 1) & ~(NH_PAGE_SIZE - 1);
  if (usable <= seg->huge_size) return true;
  if (nh_g.paranoid) return false; /* the guard page sits after the block: move instead */
  size_t need = (size_t)(seg->huge_block - (uint8_t *)seg) + usable;
  while (seg->map_size < need && absorb_next(h, seg)) {
  }
  if (seg->map_size < need) {
    list_unlink(&h->huge, seg); /* a move changes the header's address */
    bool grown = extend(h, segp, unit_round(need));
    list_push(&h->huge, *segp);
    if (!grown) return false;
    seg = *segp;
  }
  uint64_t extra = usable > seg->huge_charged ? usable - seg->huge_charged : 0;
  if (extra && !nh_charge(h, extra, seg->huge_level)) return false; /* the mapping stays larger */
  if (extra) nh_pages_shed(h, extra);
  seg->huge_charged += extra;
  atomic_fetch_add_explicit(&h->st.level_committed[seg->huge_level], usable - seg->huge_size,
                            memory_order_relaxed);
  seg->huge_size = usable;
  return true;
}

void nh_huge_shrink(nh_heap *h, nh_segment *seg, size_t size) {
  size_t usable = (size + NH_PAGE_SIZE - 1) & ~(NH_PAGE_SIZE - 1);
  if (usable >= seg->huge_size || nh_g.paranoid) return; /* paranoid: the guard page stays put */
  atomic_fetch_sub_explicit(&h->st.level_committed[seg->huge_level], seg->huge_size - usable,
                            memory_order_relaxed);
  seg->huge_size = usable;
  size_t at = unit_round((size_t)(seg->huge_block - (uint8_t *)seg) + usable);
  if (KEEP_HUGE && at < seg->map_size && seg->map_size - at <= nh_g.huge_keep) {
    seg->huge_dirty = seg->huge_charged; /* the part cut off was the program's */
    if (cut(h, seg, at, seg->huge_level)) {
      nh_track_close(h->huge_kept->huge_block, h->huge_kept->huge_charged);
      kept_limit(h, nh_g.huge_keep);
    }
  }
}

void nh_huge_destroy(nh_heap *h) {
  while (h->huge_kept) kept_unmap(h, h->huge_kept);
  while (h->huge) {
    nh_segment *seg = h->huge;
    list_unlink(&h->huge, seg);
    atomic_fetch_sub_explicit(&h->st.level_committed[seg->huge_level], seg->huge_size,
                              memory_order_relaxed);
    huge_unmap(h, seg);
  }
}
