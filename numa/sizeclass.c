/* numa/sizeclass.c: span geometry of each size class (see numa/heap.h). */
#include "numa/heap.h"

const uint8_t nh_class_table[NH_CLASS_TABLE_MAX / 16 + 1] = {
    1,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 17, 18, 18, 19,
    19, 20, 20, 21, 21, 22, 22, 23, 23, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 27, 27, 27,
    27, 28, 28, 28, 28, 29, 29, 29, 29, 30, 30, 30, 30, 31, 31, 31, 31, 32, 32, 32, 32};

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
