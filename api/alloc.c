/*
 * api/alloc.c: the native allocation API. Every path: start if needed (or
 * serve from the bootstrap region during start-up), then the cache for small
 * classes or the heaps for the rest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "api/internal.h"
#include "numa/track.h"
#include "numaheap/numaheap.h"
#include "percpu/cache.h"

#define NH_MAX_REQUEST ((size_t)PTRDIFF_MAX)

static void *out_of_memory(const char *call, size_t size) {
  nh_set_error("%s(%zu): out of memory: no node within reach could take the request", call, size);
  errno = ENOMEM;
  return NULL;
}

/* Tells ASan/Valgrind that p is a live block (no-op in ordinary builds). */
static inline void *tracked(void *p) {
#if NH_TRACKING
  nh_block_info info;
  if (p && !nh_boot_owns(p) && nh_block_lookup(p, &info) == NH_LOOKUP_OK) nh_track_alloc(p, info.size);
#endif
  return p;
}

/* The general case of nh_alloc_level (api/internal.h). */
void *nh_alloc_level_slow(size_t size, size_t align, int level) {
  if (__builtin_expect(!nh_ready(), 0) && !nh_start()) return nh_boot_alloc(size, align);
  if (size > NH_MAX_REQUEST) return NULL;
  unsigned cls = 0;
  if (size <= NH_SMALL_MAX)
    cls = align <= NH_MIN_ALIGN ? nh_size_class(size) : nh_class_for_aligned(size, align);
  if (cls) {
    void *p = tracked(nh_cache_alloc(cls, level));
    if (p && nh_g.paranoid) nh_block_check_freed(p, nh_class_size(cls), "malloc");
    return p;
  }
  int served;
  return tracked(nh_heap_alloc_fallback(nh_cache_home_node(), size, align, level, &served));
}

static void *alloc_named(size_t size, size_t align, const char *call) {
  void *p = nh_alloc_level(size, align, nh_default_level);
  return p ? p : out_of_memory(call, size);
}

static __attribute__((noinline)) void *malloc_full(size_t size) {
  return alloc_named(size, NH_MIN_ALIGN, "nh_malloc");
}

NH_API void *nh_malloc(size_t size) {
  void *p = nh_alloc_fast(size); /* the common case with no stack frame */
  return __builtin_expect(p != NULL, 1) ? p : malloc_full(size);
}

NH_API void *nh_calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    nh_set_error("nh_calloc(%zu, %zu): the size overflows", count, size);
    errno = ENOMEM;
    return NULL;
  }
  void *p = alloc_named(total, NH_MIN_ALIGN, "nh_calloc");
  if (p && !nh_boot_owns(p)) {
    nh_block_info info;
    /* a huge block reads as zero past its dirty prefix (pages never touched,
     * numa/huge.c): only that prefix is cleared (tools must see the write) */
    if (!NH_TRACKING && nh_block_lookup(p, &info) == NH_LOOKUP_OK && info.span == NULL) {
      size_t dirty = info.seg->huge_dirty; /* the caller's own block: no one else changes it */
      memset(p, 0, dirty < total ? dirty : total);
      return p;
    }
  }
  if (p) memset(p, 0, total);
  return p;
}

NH_API void *nh_aligned_alloc(size_t alignment, size_t size) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    nh_set_error("nh_aligned_alloc(%zu, %zu): the alignment is not a power of two", alignment, size);
    errno = EINVAL;
    return NULL;
  }
  if (size > NH_MAX_REQUEST - alignment) return out_of_memory("nh_aligned_alloc", size);
  return alloc_named(size, alignment, "nh_aligned_alloc");
}

NH_API void *nh_malloc_node(size_t size, int node) {
  if (!nh_ready() && !nh_start()) return nh_boot_alloc(size, NH_MIN_ALIGN);
  if (node < 0 || node >= nh_g.nnodes) {
    nh_set_error("nh_malloc_node(%zu, %d): no such node (nodes are 0..%d)", size, node,
                 nh_g.nnodes - 1);
    errno = EINVAL;
    return NULL;
  }
  if (size > NH_MAX_REQUEST) return out_of_memory("nh_malloc_node", size);
  int served;
  void *p = tracked(nh_heap_alloc_fallback(node, size, NH_MIN_ALIGN, nh_default_level, &served));
  return p ? p : out_of_memory("nh_malloc_node", size);
}

/* ---- free ------------------------------------------------------------------------ */

const char *nh_lookup_reason(nh_lookup_status st) {
  switch (st) {
  case NH_LOOKUP_FOREIGN: return "pointer not allocated by numaheap";
  case NH_LOOKUP_INTERIOR: return "pointer inside a block, not at its start";
  case NH_LOOKUP_FREED: return "block already freed (double free)";
  case NH_LOOKUP_NEVER: return "pointer to a block numaheap never handed out";
  default: return "valid block";
  }
}

/* Frees p, a live block nh_block_lookup described in info. */
static void free_known(void *p, nh_block_info *info) {
  if (__builtin_expect(info->cls != 0 && !NH_TRACKING && !nh_g.paranoid, 1))
    nh_cache_free(p, info->cls, info->node);
  else
    nh_free_slow(p, NH_LOOKUP_OK, info);
}

nh_lookup_status nh_free_checked_slow(void *p) {
  if (p == NULL) return NH_LOOKUP_OK;
  nh_block_info info;
  nh_lookup_status st = nh_block_lookup(p, &info);
  if (__builtin_expect(st != NH_LOOKUP_OK, 0)) return nh_free_slow(p, st, &info);
  free_known(p, &info);
  return NH_LOOKUP_OK;
}

void nh_free_named_slow(void *p, const char *call) {
  nh_lookup_status st = nh_free_checked_slow(p);
  if (__builtin_expect(st != NH_LOOKUP_OK, 0)) nh_bad_free(p, call, st);
}

/* The general case of nh_free_checked_slow. */
nh_lookup_status nh_free_slow(void *p, nh_lookup_status st, nh_block_info *info) {
  if (st == NH_LOOKUP_FOREIGN && nh_boot_owns(p)) return NH_LOOKUP_OK; /* ignored */
  if (st != NH_LOOKUP_OK) return st;
  if (nh_g.paranoid && info->cls) nh_block_fill_freed(p, info->size);
  if (info->span) nh_track_free(p, info->size);
  else nh_track_unmapped(p); /* huge: unmapped or kept (numa/huge.c) below */
  if (info->cls) nh_cache_free(p, info->cls, info->node);
  else nh_heap_free_large(info, p);
  return NH_LOOKUP_OK;
}

void nh_bad_free(void *p, const char *call, nh_lookup_status st) {
  nh_fatal("%s(%p): %s", call, p, nh_lookup_reason(st));
}

NH_API void nh_free(void *p) { nh_free_named(p, "nh_free"); }

/* ---- realloc and sizes ---------------------------------------------------------------- */

size_t nh_usable_size_named(const void *p, const char *call) {
  if (p == NULL) return 0;
  if (nh_boot_owns(p)) return nh_boot_size(p);
  nh_block_info info;
  nh_lookup_status st = nh_block_lookup(p, &info);
  if (st != NH_LOOKUP_OK) nh_fatal("%s(%p): %s", call, p, nh_lookup_reason(st));
  return info.size;
}

NH_API size_t nh_usable_size(const void *p) { return nh_usable_size_named(p, "nh_usable_size"); }

/* A block on node (the home node if -1) for size bytes, by the usual path. */
static void *alloc_on_node(int node, size_t size) {
  if (node < 0 || nh_g.nnodes == 1 || !nh_ready() || node == nh_cache_home_node())
    return nh_alloc_level(size, NH_MIN_ALIGN, nh_default_level);
  int served;
  return tracked(nh_heap_alloc_fallback(node, size, NH_MIN_ALIGN, nh_default_level, &served));
}

/* The new block when realloc moves a block of old bytes on node (-1: not
 * numaheap's yet) to size; it stays on its node. A growing block first tries
 * for nh_realloc_want (a quarter more than it had); past
 * NH_GROW_IN_PAGES it gets whole pages, which nh_heap_grow_large extends in
 * place next time (past 2016 KiB a huge mapping, which moves rather than
 * being copied: nh_heap_alloc_pages_on). The pages are tried on the block's
 * node alone, the quarter more the usual way (so a node out of memory counts
 * a failure for it); if either cannot, size goes the usual way. */
static void *realloc_move(int node, size_t old, size_t size) {
  size_t want = nh_realloc_want(old, size);
  void *q = NULL;
  if (want > NH_GROW_IN_PAGES && size > old && node >= 0)
    q = tracked(nh_heap_alloc_pages_on(node, want, nh_default_level));
  else if (want > size)
    q = alloc_on_node(node, want);
  return q ? q : alloc_on_node(node, size);
}

/* realloc of a block of numaheap's, which info describes, to a size it does
 * not fit (nh_realloc_named looked): a large or huge one resized in place
 * when it can, else moved (its memory and node kept if no new block can be
 * had). */
static void *realloc_block(void *p, size_t size, nh_block_info *info, const char *call) {
  size_t old = info->size;
  if (info->cls == 0 && (size < old ? nh_heap_shrink_large(info, size) /* large and huge: */
                                    : nh_heap_grow_large(info, size))) { /* no copy */
    if (info->span == NULL) p = info->seg->huge_block; /* a huge mapping may have moved */
    nh_track_alloc(p, info->size);
    return p;
  }
  void *q = realloc_move(info->node, old, size);
  if (q == NULL) return out_of_memory(call, size); /* p is left as it was */
  memcpy(q, p, old < size ? old : size);
  if (__builtin_expect(info->cls != 0 && nh_free_gate() != 0, 1)) { /* free's fast path */
    if (__builtin_expect(!nh_free_push(p, info->cls, info->node), 0))
      nh_bad_free(p, call, NH_LOOKUP_FREED);
  } else {
    free_known(p, info);
  }
  return q;
}

void *nh_realloc_small(void *p, size_t size, size_t old, unsigned cls, int node,
                       const char *call) {
  size_t want = nh_realloc_want(old, size);
  if (size == 0 || want > NH_GROW_IN_PAGES) return nh_realloc_named(p, size, call);
  unsigned to = nh_size_class(want);
  void *q = nh_cache_pop_fast(to);
  if (__builtin_expect(q == NULL, 0) && (q = nh_cache_alloc_slow(to, nh_default_level)) == NULL)
    return nh_realloc_named(p, size, call); /* which reports it */
  if (nh_g.nnodes > 1) {
    /* a classed block lies in an ordinary segment */
    int qnode = ((nh_segment *)((uintptr_t)q & ~(uintptr_t)(NH_SEGMENT_SIZE - 1)))->node;
    if (qnode != node) { /* the CPU serves another node: q goes back, p keeps its node */
      nh_free_named(q, call);
      return nh_realloc_named(p, size, call);
    }
  }
  memcpy(q, p, old < size ? old : size);
  if (__builtin_expect(!nh_free_push(p, cls, node), 0)) nh_bad_free(p, call, NH_LOOKUP_FREED);
  return q;
}

/* nh_realloc_named's cases past a block that still fits; st and info are
 * p's lookup (unless p is NULL). */
static __attribute__((noinline)) void *realloc_named_slow(void *p, size_t size, const char *call,
                                                          nh_lookup_status st, nh_block_info *info) {
  if (p == NULL) return alloc_named(size, NH_MIN_ALIGN, call);
  if (size == 0) {
    nh_free_named(p, call);
    return alloc_named(0, NH_MIN_ALIGN, call);
  }
  if (__builtin_expect(st == NH_LOOKUP_OK, 1)) return realloc_block(p, size, info, call);
  if (!nh_boot_owns(p)) nh_fatal("%s(%p): %s", call, p, nh_lookup_reason(st));
  size_t old = nh_boot_size(p);
  void *q = realloc_move(-1, old, size);
  if (q == NULL) return out_of_memory(call, size); /* p is left as it was */
  memcpy(q, p, old < size ? old : size);
  nh_free_named(p, call); /* a bootstrap block: ignored */
  return q;
}

void *nh_realloc_named(void *p, size_t size, const char *call) {
  nh_block_info info; /* a block that still fits returns before realloc_named_slow's frame */
  nh_lookup_status st = p != NULL ? nh_block_lookup(p, &info) : NH_LOOKUP_FOREIGN;
  if (st == NH_LOOKUP_OK && nh_realloc_fits(info.size, size)) return p;
  return realloc_named_slow(p, size, call, st, &info);
}

NH_API void *nh_realloc(void *p, size_t size) { return nh_realloc_inline(p, size, "nh_realloc"); }

/* ---- topology queries and trim ---------------------------------------------------------- */

NH_API int nh_ptr_node(const void *p) {
  if (!nh_ready()) return -1;
  return nh_addr_node(p);
}

NH_API int nh_current_node(void) {
  if (!nh_ready() && !nh_start()) return 0;
  int cpu = nh_cache_current_cpu();
  int n = nh_topo_cpu_node(nh_g.topo, cpu);
  return n >= 0 ? n : nh_cache_home_node();
}

NH_API int nh_node_count(void) {
  if (!nh_ready() && !nh_start()) return 1;
  return nh_g.nnodes;
}

NH_API void nh_trim(void) {
  if (!nh_ready()) return;
  nh_cache_flush_thread();
  nh_heaps_trim();
}
