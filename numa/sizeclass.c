/* numa/sizeclass.c: span geometry of each size class (see numa/heap.h). */
#include "numa/heap.h"

unsigned nh_class_pages(unsigned cls) {
  size_t size = nh_class_size(cls);
  size_t pages = (size * 8 + NH_PAGE_SIZE - 1) / NH_PAGE_SIZE;
  if (pages < 1) pages = 1;
  if (pages > 32) pages = 32;
  return (unsigned)pages;
}

unsigned nh_class_for_aligned(size_t size, size_t align) {
  if (align > NH_PAGE_SIZE || size > NH_SMALL_MAX) return 0;
  if (size < align) size = align;
  for (unsigned cls = nh_size_class(size); cls < NH_CLASS_COUNT; cls++)
    if ((nh_class_size(cls) & (align - 1)) == 0) return cls;
  return 0;
}
