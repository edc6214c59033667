/*
 * numa/span.c: blocks inside a span. A span hands out blocks from its free
 * list first, then carves new ones from its untouched tail (so a fresh span
 * touches no memory until blocks are used). All functions here run under the
 * bin lock of the span's (node, class).
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

/* A block on a span's list without the listed key, or a block returned to
 * its span without the cached key (twice: already listed). */
static _Noreturn __attribute__((cold)) void bad_listed(const void *block) {
  nh_fatal("malloc: corrupted free list: free block %p was freed twice (double free) or "
           "written after it was freed (its span's free list holds it without its free mark)", block);
}
static _Noreturn __attribute__((cold)) void bad_return(const void *block, bool listed) {
  if (listed)
    nh_fatal("free: block %p was freed twice (double free): a cache returned it to its span, "
             "whose free list already holds it", block);
  nh_fatal("free: block %p was freed twice (double free) or written after it was freed (a cache "
           "returned it to its span without its free mark: another copy of it was handed out, or its "
           "first 16 bytes changed)", block);
}

void nh_block_respanned(const void *block) {
  nh_fatal("free: block %p was freed twice (double free): a cache returned it to its span after "
           "the span, emptied by the first copy's return, was given back", block);
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
  span->free = NULL;
  span->in_bin = 0;
  span->next = span->prev = NULL;
  if (nh_g.paranoid && cls) { /* every block starts out as a freed one */
    /* Pages taken again may still hold their last blocks' poison (ASan):
     * they start over open, as a fresh segment's pages do. */
    nh_track_open(start, (size_t)span->capacity * bs);
    memset(start, NH_FREE_FILL, (size_t)span->capacity * bs);
  }
}

/* The first block of span's free list, taken off it: its listed key
 * checked, turned into the cached key, its link cleared. */
static inline void *take_free(nh_span *span) {
  void *b = span->free;
  if (__builtin_expect(nh_block_word1(b) != nh_key_listed(b), 0)) bad_listed(b);
  span->free = nh_block_next(b, "malloc");
  nh_block_clear_link(b);
  nh_block_mark_free(b);
  return b;
}

/* Whether word 0 of block (of span) holds a link of span's list: NULL's
 * encoding or a block of the span. A cached block's word 0 is the program's
 * data or 0 (take_free and carving clear it), which decodes to such a value
 * with odds of about the span's size in 2^64 (the encoding's secret). */
static bool links_in(const nh_span *span, const void *block) {
  uintptr_t n = (uintptr_t)nh_block_next_raw(block), s = (uintptr_t)span->start;
  if (n == 0) return true;
  return n >= s && n < s + (uintptr_t)span->carved * span->block_size &&
         (n - s) % span->block_size == 0;
}

size_t nh_span_pop(nh_span *span, void **out, size_t n) {
  size_t got = 0;
  while (got < n && span->free != NULL) out[got++] = take_free(span);
  while (got < n && span->carved < span->capacity) {
    void *b = span->start + (size_t)span->carved * span->block_size;
    nh_block_clear_link(b); /* pages used before may hold an old link here */
    nh_block_mark_free(b);  /* every block leaves marked (heap.h: nh_heap_refill) */
    out[got++] = b;
    __atomic_store_n(&span->carved, (uint16_t)(span->carved + 1), __ATOMIC_RELAXED);
  }
  span->used = (uint16_t)(span->used + got);
  return got;
}

size_t nh_span_pop_pair(nh_span *a, nh_span *b, void **out, size_t n) {
  size_t got = 0;
  while (got + 2 <= n && a->free != NULL && b->free != NULL) {
    out[got++] = take_free(a); /* two walks in flight: each link may be a cache miss */
    out[got++] = take_free(b);
  }
  a->used = (uint16_t)(a->used + got / 2);
  b->used = (uint16_t)(b->used + got / 2);
  return got;
}

unsigned nh_span_push(nh_span *span, void *block) {
  uintptr_t key = nh_block_word1(block);
  if (__builtin_expect(key != nh_key_cached(block), 0)) bad_return(block, key == nh_key_listed(block));
  /* a second free of a listed block overwrote its listed key with the cached one */
  if (__builtin_expect(links_in(span, block), 0)) bad_return(block, true);
  nh_block_set_next(block, span->free);
  nh_block_set_word1(block, nh_key_listed(block));
  span->free = block;
  span->used--;
  return span->used;
}
