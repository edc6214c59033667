/*
 * numa/check.c: invariant checks of the heaps (the invariants are listed in
 * docs/architecture.md). nh_span_check runs after every bin operation in
 * debug builds (-DNH_DEBUG_INVARIANTS=ON); nh_heaps_check walks everything and
 * is called by tests in every build. A violation stops the process naming
 * the structure and what is wrong.
 */
#include "numa/heap.h"

static void span_fail(const nh_span *span, const char *what) {
  nh_fatal("invariant broken: span %p (class %u, %u/%u used): %s", (const void *)span,
           (unsigned)span->cls, (unsigned)span->used, (unsigned)span->capacity, what);
}

void nh_span_check(const nh_span *span) {
  if (span->kind != NH_PAGE_HEAD) span_fail(span, "not the head of a span");
  if (span->carved > span->capacity) span_fail(span, "carved past capacity");
  size_t nfree = 0;
  if (span->cls) { /* the bitmap: set bits are carved free blocks, none below scan's word */
    const uint64_t *bits = nh_span_bits(span);
    for (size_t w = 0; w < nh_span_bitmap_words(span); w++)
      for (uint64_t m = bits[w]; m != 0; m &= m - 1) {
        size_t i = w * 64 + (size_t)__builtin_ctzll(m);
        const uint8_t *b = span->start + i * span->block_size;
        if (i >= span->carved) span_fail(span, "free block never carved");
        if (w < span->scan) span_fail(span, "free block below the bitmap's scan start");
        if (nh_block_word1(b) != nh_key_cached(b)) span_fail(span, "free block without its free mark");
        nfree++;
      }
  }
  if (span->used + nfree + (size_t)(span->capacity - span->carved) != span->capacity)
    span_fail(span, "used + free + uncarved != capacity");
}

static void check_bin(int node, unsigned shard, unsigned cls) {
  nh_bin *b = nh_heap_bin(&nh_g.heap[node], shard, cls);
  uint32_t n = 0;
  for (nh_span *s = b->spans; s; s = s->next) {
    if (!s->in_bin || s->cls != cls || s->shard != shard)
      span_fail(s, "on a bin list it does not belong to");
    if (nh_span_segment(s)->node != node) span_fail(s, "on another node's bin");
    if (s->used == s->capacity) span_fail(s, "full span on the bin list");
    nh_span_check(s);
    n++;
  }
  uint32_t counted = atomic_load_explicit(&b->nspans, memory_order_relaxed);
  if (n != counted)
    nh_fatal("invariant broken: bin %d/%u/%u counts %u spans, holds %u", node, shard, cls, counted, n);
}

static void check_segment(const nh_segment *seg) {
  if (seg->free_pages & ~NH_SEGMENT_USABLE_MASK)
    nh_fatal("invariant broken: segment %p: header page marked free", (const void *)seg);
  for (unsigned i = 1; i < NH_PAGES_PER_SEGMENT;) {
    const nh_span *s = &seg->spans[i];
    bool is_free = (seg->free_pages >> i) & 1;
    if (is_free != (s->kind == NH_PAGE_FREE))
      nh_fatal("invariant broken: segment %p page %u: free mask and descriptor disagree",
               (const void *)seg, i);
    if (is_free) {
      i++;
      continue;
    }
    if (s->kind != NH_PAGE_HEAD || s->npages == 0 || i + s->npages > NH_PAGES_PER_SEGMENT)
      nh_fatal("invariant broken: segment %p page %u: not a span head", (const void *)seg, i);
    for (unsigned k = 1; k < s->npages; k++)
      if (seg->spans[i + k].kind != NH_PAGE_TAIL || seg->spans[i + k].back != k)
        nh_fatal("invariant broken: segment %p page %u: bad tail", (const void *)seg, i + k);
    if (!seg->reserve && ((~seg->committed_pages >> i) & ((1ull << s->npages) - 1)))
      nh_fatal("invariant broken: segment %p page %u: span on uncommitted pages",
               (const void *)seg, i);
    i += s->npages;
  }
}

void nh_heaps_check(void) {
  for (int node = 0; node < nh_g.nnodes; node++) {
    nh_heap *h = &nh_g.heap[node];
    for (unsigned sh = 0; sh < h->shards; sh++)
      for (unsigned c = 1; c < NH_CLASS_COUNT; c++) nh_xfer_check(h, sh, c); /* a leaf lock */
    for (unsigned sh = 0; sh < h->shards; sh++)
      for (unsigned c = 1; c < NH_CLASS_COUNT; c++) { /* bin before page lock */
        nh_bin *b = nh_heap_bin(h, sh, c);
        nh_lock_acquire(&b->lock);
        check_bin(node, sh, c);
        nh_lock_release(&b->lock);
      }
    nh_lock_acquire(&h->page_lock);
    for (nh_segment *seg = h->segments; seg; seg = seg->next) check_segment(seg);
    for (nh_segment *seg = h->reserve_segs; seg; seg = seg->next) check_segment(seg);
    nh_lock_release(&h->page_lock);
  }
}
