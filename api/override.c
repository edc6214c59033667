/*
 * api/override.c: malloc and friends, so that linking -lnumaheap or
 * LD_PRELOAD=libnumaheap.so puts the whole process on numaheap (C++
 * operator new/delete and strdup reach malloc/free, and so land here too).
 *
 * Each entry names itself in error messages: a bad pointer handed to free()
 * stops the process with "numaheap: free(0x...): <reason>", as glibc does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/internal.h"
#include "numa/os.h"
#include "numaheap/numaheap.h"

#define EXPORT __attribute__((visibility("default")))

static void *alloc_or_errno(size_t size, size_t align) {
  void *p = nh_alloc_level(size, align, nh_default_level);
  if (p == NULL) errno = ENOMEM;
  return p;
}

EXPORT void *malloc(size_t size) { return alloc_or_errno(size, NH_MIN_ALIGN); }

EXPORT void free(void *p) { nh_free_named(p, "free"); }

EXPORT void *calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return nh_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t size) { return nh_realloc_named(p, size, "realloc"); }

EXPORT void *reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return nh_realloc_named(p, total, "reallocarray");
}

static int is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

EXPORT int posix_memalign(void **out, size_t align, size_t size) {
  if (!is_pow2(align) || align % sizeof(void *) != 0) return EINVAL;
  void *p = nh_alloc_level(size, align, nh_default_level);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t size) {
  if (!is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_or_errno(size, align);
}

EXPORT void *memalign(size_t align, size_t size) {
  if (align > ((size_t)1 << 62)) {
    errno = EINVAL;
    return NULL;
  }
  size_t a = NH_MIN_ALIGN; /* glibc rounds a non-power of two up */
  while (a < align) a <<= 1;
  return alloc_or_errno(size, a);
}

EXPORT void *valloc(size_t size) { return alloc_or_errno(size, nh_os_page_size()); }

EXPORT void *pvalloc(size_t size) {
  size_t pg = nh_os_page_size();
  if (size > SIZE_MAX - pg) {
    errno = ENOMEM;
    return NULL;
  }
  return alloc_or_errno((size + pg - 1) & ~(pg - 1), pg);
}

EXPORT size_t malloc_usable_size(void *p) { return nh_usable_size_named(p, "malloc_usable_size"); }

EXPORT int malloc_trim(size_t pad) {
  nh_trim();
  return 1;
}

EXPORT void malloc_stats(void) { nh_stats_print(stderr, 0); }

/* glibc's internal names, reached by some programs and by libc itself. */
void *__libc_malloc(size_t size);
void __libc_free(void *p);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **out, size_t align, size_t size);
EXPORT void *__libc_malloc(size_t size) { return malloc(size); }
EXPORT void __libc_free(void *p) { free(p); }
EXPORT void *__libc_calloc(size_t n, size_t size) { return calloc(n, size); }
EXPORT void *__libc_realloc(void *p, size_t size) { return realloc(p, size); }
EXPORT void *__libc_memalign(size_t align, size_t size) { return memalign(align, size); }
EXPORT void *__libc_valloc(size_t size) { return valloc(size); }
EXPORT void *__libc_pvalloc(size_t size) { return pvalloc(size); }
EXPORT int __posix_memalign(void **out, size_t align, size_t size) {
  return posix_memalign(out, align, size);
}
