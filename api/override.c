/*
 * api/override.c: malloc and friends, so that linking -lnumaheap or
 * LD_PRELOAD=libnumaheap.so puts the whole process on numaheap (strdup and
 * the like reach malloc/free, and so land here too; C++ operator new and
 * delete are api/cxx_new.c).
 *
 * Each entry names itself in error messages: a bad pointer handed to free()
 * stops the process with "numaheap: free(0x...): <reason>", as glibc does.
 *
 * The whole set (docs/dropin.md): malloc, free, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size, malloc_trim, malloc_stats, mallopt, mallinfo,
 * mallinfo2, malloc_info; cfree and C23's free_sized and free_aligned_sized;
 * glibc's __libc_* names.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
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

/* Everything but malloc's fast path, out of line so that the fast path
 * needs no stack frame. */
static __attribute__((noinline)) void *malloc_full(size_t size) {
  return alloc_or_errno(size, NH_MIN_ALIGN);
}

EXPORT void *malloc(size_t size) {
  void *p = nh_alloc_fast(size);
  return __builtin_expect(p != NULL, 1) ? p : malloc_full(size);
}

EXPORT void free(void *p) { nh_free_named(p, "free"); }

/* Old programs still call cfree (glibc keeps it for them); C23 adds sized
 * frees. The size is a hint numaheap does not need: the block knows its own. */
void cfree(void *p);
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);
EXPORT void cfree(void *p) { nh_free_named(p, "cfree"); }
EXPORT void free_sized(void *p, size_t size) { nh_free_named(p, "free_sized"); }
EXPORT void free_aligned_sized(void *p, size_t align, size_t size) {
  nh_free_named(p, "free_aligned_sized");
}

EXPORT void *calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return nh_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t size) { return nh_realloc_inline(p, size, "realloc"); }

EXPORT void *reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return nh_realloc_inline(p, total, "reallocarray");
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

/* glibc's tuning knobs (arenas, mmap threshold, ...) have no meaning here:
 * accepted, so programs that set them run unchanged; numaheap is tuned by its
 * config file and NUMAHEAP_* variables. */
EXPORT int mallopt(int param, int value) { return 1; }

/* Fills mi from numaheap's totals: arena = committed bytes, uordblks = bytes
 * in live blocks (including blocks held in thread caches), fordblks = the
 * rest of arena, hblks = mapped segments. */
static void fill_mallinfo2(struct mallinfo2 *mi) {
  memset(mi, 0, sizeof *mi);
  nh_stats st;
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  if (nh_stats_get(&st) != 0) return;
  uint64_t used = st.total.in_use < st.total.committed ? st.total.in_use : st.total.committed;
  mi->arena = st.total.committed;
  mi->uordblks = used;
  mi->fordblks = st.total.committed - used;
  mi->hblks = st.total.segments;
  mi->ordblks = 1;
}

EXPORT struct mallinfo2 mallinfo2(void) {
  struct mallinfo2 mi;
  fill_mallinfo2(&mi);
  return mi;
}

static int clamp_int(size_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

/* The old int-sized form, saturated at INT_MAX (glibc wraps). */
EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2;
  fill_mallinfo2(&m2);
  struct mallinfo mi;
  memset(&mi, 0, sizeof mi);
  mi.arena = clamp_int(m2.arena);
  mi.ordblks = clamp_int(m2.ordblks);
  mi.hblks = clamp_int(m2.hblks);
  mi.uordblks = clamp_int(m2.uordblks);
  mi.fordblks = clamp_int(m2.fordblks);
  return mi;
}

/* glibc's XML report, with numaheap's per-node counters: one <heap> per node. */
EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0 || fp == NULL) {
    errno = EINVAL;
    return -1;
  }
  static nh_stats st NH_BSS_COLD; /* Guarded by nothing: a report, like malloc_stats, is not for concurrent callers */
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  if (nh_stats_get(&st) != 0) return -1;
  fprintf(fp, "<malloc version=\"numaheap-%s\">\n", NUMAHEAP_VERSION_STRING);
  for (int i = 0; i < st.node_count; i++) {
    const nh_node_stats *n = &st.nodes[i];
    fprintf(fp,
            "<heap nr=\"%d\">\n<sizes>\n</sizes>\n"
            "<total type=\"committed\" count=\"%" PRIu64 "\" size=\"%" PRIu64 "\"/>\n"
            "<total type=\"in_use\" count=\"%" PRIu64 "\" size=\"%" PRIu64 "\"/>\n"
            "<system type=\"current\" size=\"%" PRIu64 "\"/>\n"
            "<system type=\"max\" size=\"%" PRIu64 "\"/>\n</heap>\n",
            n->node, n->segments, n->committed, n->allocs - (n->frees < n->allocs ? n->frees : n->allocs),
            n->in_use, n->committed, n->peak_committed);
  }
  fprintf(fp, "<system type=\"current\" size=\"%" PRIu64 "\"/>\n", st.total.committed);
  fprintf(fp, "<system type=\"max\" size=\"%" PRIu64 "\"/>\n</malloc>\n", st.total.peak_committed);
  return ferror(fp) ? -1 : 0;
}

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

/* Register numaheap's fork handlers when the library is loaded, not on the
 * first allocation: pthread_atfork runs prepare handlers in reverse order of
 * registration, so a handler registered earlier than numaheap's (by the
 * program's constructors, or by libraries initialised after this one) would
 * run while numaheap holds its locks for the fork, and a malloc in it would
 * wait on them forever (issue 5; tests/preload/atfork.c). Start-up itself
 * stays on the first allocation, so nh_init(path) can still choose the
 * configuration. */
__attribute__((constructor(101))) static void install_fork_handlers(void) {
  nh_fork_handlers_install();
}
