/*
 * numa/lookup.c: from a pointer to its block, node and size class in O(1)
 * without locks: the segment map gives the segment, the address's page index
 * gives the span descriptor in the segment header, and one multiplication
 * gives the block index.
 *
 * The common path, nh_block_lookup, is inline in numa/heap.h; huge blocks
 * and the node of any address are answered here.
 *
 * Lookups of pointers that are not live blocks (the errors this file exists
 * to catch) read descriptors that another thread may be changing; the result
 * is then a best effort, but never a write.
 */
#include "numa/heap.h"

nh_lookup_status nh_block_lookup_huge(nh_segment *seg, const uint8_t *p, nh_block_info *info) {
  if (p < seg->huge_block) return NH_LOOKUP_FOREIGN;
  if (p != seg->huge_block) return NH_LOOKUP_INTERIOR;
  if (!atomic_load_explicit(&seg->huge_live, memory_order_acquire)) return NH_LOOKUP_FREED;
  info->span = NULL;
  info->cls = 0;
  info->size = seg->huge_size;
  return NH_LOOKUP_OK;
}

int nh_addr_node(const void *p) {
  nh_segment *seg = nh_segment_of(p);
  if (seg == NULL) return -1;
  const uint8_t *first = seg->huge ? seg->huge_block : (const uint8_t *)seg + NH_PAGE_SIZE;
  return (const uint8_t *)p < first ? -1 : seg->node; /* the header is no block */
}
