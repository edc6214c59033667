/*
 * numa/lookup.c: from a pointer to its block, node and size class in O(1)
 * without locks: the segment map gives the segment, the address's page index
 * gives the span descriptor in the segment header, and one multiplication
 * gives the block index.
 *
 * Lookups of pointers that are not live blocks (the errors this file exists
 * to catch) read descriptors that another thread may be changing; the result
 * is then a best effort, but never a write.
 */
#include "numa/heap.h"

static nh_lookup_status lookup_huge(nh_segment *seg, const uint8_t *p, nh_block_info *info) {
  if (p < seg->huge_block) return NH_LOOKUP_FOREIGN;
  if (p != seg->huge_block) return NH_LOOKUP_INTERIOR;
  if (!atomic_load_explicit(&seg->huge_live, memory_order_acquire)) return NH_LOOKUP_FREED;
  info->span = NULL;
  info->cls = 0;
  info->size = seg->huge_size;
  return NH_LOOKUP_OK;
}

nh_lookup_status nh_block_lookup(const void *ptr, nh_block_info *info) {
  const uint8_t *p = ptr;
  nh_segment *seg = nh_segment_of(p);
  if (seg == NULL) return NH_LOOKUP_FOREIGN;
  info->seg = seg;
  info->node = seg->node;
  if (seg->huge) return lookup_huge(seg, p, info);
  size_t idx = (size_t)(p - (const uint8_t *)seg) >> NH_PAGE_SHIFT;
  if (idx == 0) return NH_LOOKUP_FOREIGN; /* the header page */
  nh_span *span = &seg->spans[idx];
  if (span->kind == NH_PAGE_FREE) return NH_LOOKUP_FREED;
  if (span->kind == NH_PAGE_TAIL) span -= span->back;
  size_t off = (size_t)(p - span->start);
  if (off >= (size_t)span->capacity * span->block_size) return NH_LOOKUP_INTERIOR;
  size_t q = (size_t)(((uint64_t)off * span->div_magic) >> 32);
  if (q * span->block_size != off) return NH_LOOKUP_INTERIOR;
  if (nh_block_is_marked_free(p)) return NH_LOOKUP_FREED;
  info->span = span;
  info->cls = span->cls;
  info->size = span->block_size;
  return NH_LOOKUP_OK;
}

int nh_addr_node(const void *p) {
  nh_segment *seg = nh_segment_of(p);
  if (seg == NULL) return -1;
  const uint8_t *first = seg->huge ? seg->huge_block : (const uint8_t *)seg + NH_PAGE_SIZE;
  return (const uint8_t *)p < first ? -1 : seg->node; /* the header is no block */
}
