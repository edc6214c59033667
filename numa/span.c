/*
 * numa/span.c: blocks inside a span. A span hands out its free blocks first,
 * then carves new ones from its untouched tail (so a fresh span touches no
 * memory until blocks are used). Which carved blocks are free is a bitmap
 * in the segment's header page (nh_span_bits, as jemalloc's slabs keep
 * theirs), not a list threaded through the blocks: a refill and a drain
 * touch no block, only the bitmap's words (a list walk was one dependent
 * cache miss per block, and a push one more write into it). All functions
 * here run under the bin lock of the span's (node, shard, class).
 */
#include <string.h>

#include "numa/heap.h"

uintptr_t nh_secret[4];

void nh_block_fill_freed(void *block, size_t size) {
  if (size > 2 * sizeof(uintptr_t)) memset((uint8_t *)block + 16, NH_FREE_FILL, size - 16);
}

void nh_block_check_freed(const void *block, size_t size, const char *call) {
  const uint8_t *b = block;
  for (size_t i = 16; i < size; i++)
    if (b[i] != NH_FREE_FILL)
      nh_fatal("%s: block %p was written after it was freed (byte %zu is 0x%02x, not 0x%02x)",
               call, block, i, b[i], NH_FREE_FILL);
}

void nh_block_corrupt(const void *block) {
  nh_fatal("malloc: corrupted free list: free block %p was freed twice (double free) or "
           "written after it was freed (its free mark is gone: another copy of it was handed out, or its first "
           "16 bytes changed by a write after free or an overflow from the block before it)",
           block);
}

/* A block returned to its span whose bit is set already: the span holds it. */
static _Noreturn __attribute__((cold)) void bad_return(const void *block) {
  nh_fatal("free: block %p was freed twice (double free): a cache returned it to its span, "
           "which already holds it", block);
}
static _Noreturn __attribute__((cold)) void bad_offset(const void *block) {
  nh_fatal("free: block %p was freed twice (double free): a cache returned it to a span whose "
           "blocks it is not at the start of (its span was given back and formatted again)", block);
}

void nh_block_respanned(const void *block) {
  nh_fatal("free: block %p was freed twice (double free): a cache returned it to its span after "
           "the span, emptied by the first copy's return, was given back", block);
}

void nh_block_orphaned(const void *block) {
  nh_fatal("malloc: block %p was freed twice (double free): a copy of it waited in a transfer "
           "cache while the other copy's return emptied its span, which was given back", block);
}

void nh_span_format(nh_span *span, uint8_t *start, unsigned cls, size_t bytes) {
  size_t bs = cls ? nh_class_size(cls) : bytes;
  span->cls = (uint8_t)cls;
  span->block_size = (uint32_t)bs;
  span->div_magic = cls ? nh_div_magic((uint32_t)bs) : 0;
  span->capacity = (uint16_t)(cls ? (size_t)span->npages * NH_PAGE_SIZE / bs : 1);
  span->start = start;
  span->used = 0;
  __atomic_store_n(&span->carved, 0, __ATOMIC_RELAXED);
  span->scan = 0;
  span->in_bin = 0;
  span->next = span->prev = NULL;
  if (cls) memset(nh_span_bits(span), 0, nh_span_bitmap_words(span) * sizeof(uint64_t));
  if (nh_g.paranoid && cls) { /* every block starts out as a freed one */
    /* Pages taken again may still hold their last blocks' poison (ASan):
     * they start over open, as a fresh segment's pages do. */
    nh_track_open(start, (size_t)span->capacity * bs);
    memset(start, NH_FREE_FILL, (size_t)span->capacity * bs);
  }
}

/* Up to n of span's free blocks (set bits), lowest first, their bits
 * cleared: the blocks are not touched (each carries the cached key it got
 * when it was freed). */
static size_t take_bits(nh_span *span, void **out, size_t n) {
  uint64_t *bits = nh_span_bits(span);
  size_t nfree = (size_t)span->carved - span->used, got = 0, w = span->scan,
         words = nh_span_bitmap_words(span);
  if (n > nfree) n = nfree;
  uint8_t *start = span->start;
  size_t bs = span->block_size;
  while (got < n && w < words) { /* no set bit below scan: nfree of them from it */
    uint64_t m = bits[w];
    while (m != 0 && got < n) {
      unsigned i = (unsigned)__builtin_ctzll(m);
      m &= m - 1;
      out[got++] = start + (w * 64 + i) * bs;
    }
    bits[w] = m;
    if (m == 0) w++;
  }
  span->scan = (uint16_t)w;
  return got;
}

size_t nh_span_pop(nh_span *span, void **out, size_t n) {
  size_t got = take_bits(span, out, n);
  while (got < n && span->carved < span->capacity) {
    void *b = span->start + (size_t)span->carved * span->block_size;
    nh_block_mark_free(b); /* every block leaves marked (heap.h: nh_heap_refill) */
    out[got++] = b;
    __atomic_store_n(&span->carved, (uint16_t)(span->carved + 1), __ATOMIC_RELAXED);
  }
  span->used = (uint16_t)(span->used + got);
  return got;
}

unsigned nh_span_push(nh_span *span, void *block) {
  uint64_t i = nh_block_index((uint64_t)((uint8_t *)block - span->start), span->div_magic);
  if (__builtin_expect(i >= span->carved, 0)) bad_offset(block);
  uint64_t *w = &nh_span_bits(span)[i / 64], bit = (uint64_t)1 << (i % 64);
  if (__builtin_expect(*w & bit, 0)) bad_return(block);
  *w |= bit;
  if (i / 64 < span->scan) span->scan = (uint16_t)(i / 64);
  span->used--;
  return span->used;
}
