/*
 * api/internal.h: declarations shared by the files of api/, grouped by the
 * file that defines them. Nothing here is installed.
 */
#ifndef NH_API_INTERNAL_H
#define NH_API_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/options.h"
#include "numa/heap.h"
#include "numa/topo.h"
#include "numa/track.h"
#include "percpu/cache.h"

#pragma GCC visibility push(hidden)

/* A big static buffer that start-up never touches (a stats snapshot, the
 * cgroup re-read's scratch copy): libnumaheap.so's linker script
 * (cmake/text-order.ld) puts these after the rest of .bss, so that the
 * small variables every process writes share two pages instead of being
 * spread over five between the buffers (docs/benchmarks.md, "Footprint,
 * fourth pass"). A buffer start-up writes stays out of it. */
#define NH_BSS_COLD __attribute__((section(".bss.nh_cold")))

/* ---- init.c: start-up, the bootstrap region, reconfiguration --------------- */

enum { NH_STATE_NONE = 0, NH_STATE_STARTING = 1, NH_STATE_READY = 2 };
/* Synchronization: atomic; READY stored with release after every structure
 * is built, loaded with acquire by nh_ready(). */
extern _Atomic int nh_state;

static inline bool nh_ready(void) {
  return __builtin_expect(atomic_load_explicit(&nh_state, memory_order_acquire) == NH_STATE_READY, 1);
}
/* Starts the allocator if needed. true: ready; false: the caller is the
 * thread starting it (a re-entrant call from hwloc or libc during start-up)
 * and must use the bootstrap region. */
bool nh_start(void);

/* The configuration in force (constant while READY, except the live-applied
 * parts under nh_init). */
extern const nh_config *nh_cfg;
extern int nh_default_level;

/* Bootstrap region: serves allocations made while the allocator starts. */
void *nh_boot_alloc(size_t size, size_t align);
bool nh_boot_owns(const void *p);
size_t nh_boot_size(const void *p);

/* Registers the fork handlers (once); safe before start-up (issue 5). */
void nh_fork_handlers_install(void);

/* Tests: rebuilds everything from cfg (no live blocks may exist). 0 or -1. */
int nh_reinit(const nh_config *cfg, char *err, size_t errlen);
/* The topology in force. */
const nh_topo *nh_topology(void);
/* Recomputes the node budgets from the configuration in force and the
 * cgroup as last read (api/container.c calls it when a re-read changed the
 * limit). */
void nh_limits_refresh(void);

/* ---- container.c: the process's cgroup ------------------------------------------- */
#include "numa/cgroup.h"
#include "numaheap/numaheap.h"
/* Reads it (start-up, on the configuration cfg about to be in force;
 * NUMAHEAP_TEST_CGROUP_ROOT names a fake tree) and, unless [cgroup] split is
 * off, makes the heaps check the room left under its limit before growing
 * (nh_cgroup_room_set). 0, or -1 with err (then: as if in no cgroup). */
int nh_container_read(const nh_config *cfg, char *err, size_t errlen);
/* A copy of what was last read. */
void nh_container_get(nh_cgroup *out);
/* Memory is tight: re-reads the cgroup when [cgroup] reread ms have passed
 * since the last read, and refreshes the budgets if its limit changed.
 * Never blocks on another thread's re-read. */
void nh_container_tight(void);
/* Caps the budgets of limits[] (one per node of t) by the cgroup. */
void nh_container_cap(const nh_topo *t, const nh_config *cfg, nh_node_limits *limits);
/* The cgroup's figures for the memory load, usages read now. */
typedef struct nh_container_figures {
  uint64_t max, usage;       /* the hard limit (NH_CGROUP_NO_LIMIT: none) and its group's usage */
  uint64_t high, high_usage; /* memory.high (NH_CGROUP_NO_LIMIT: none) and its group's usage */
} nh_container_figures;
/* Fills *f: false when the cgroup has neither max nor high, or [cgroup]
 * split is off. Waits for cg_lock: not for allocating paths. */
bool nh_container_load(nh_container_figures *f);
/* Counts a trim done on entering low memory (host_notify.c). */
void nh_container_count_trim(void);
void nh_container_stats(nh_cgroup_stats *out);
/* Fork child: the lock's owner may not exist any more. */
void nh_container_postfork_child(void);

/* ---- error.c: per-thread last error ------------------------------------------ */
void nh_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nh_clear_error(void);

/* ---- alloc.c: the allocation paths shared by the API and the override ----
 * The common cases are inline here (a small block from the cache; a free of
 * a live block); everything else goes to the out-of-line *_slow functions. */
void *nh_alloc_level_slow(size_t size, size_t align, int level);
_Noreturn void nh_bad_free(void *p, const char *call, nh_lookup_status st) __attribute__((cold));
nh_lookup_status nh_free_slow(void *p, nh_lookup_status st, nh_block_info *info);
void *nh_realloc_named(void *p, size_t size, const char *call);
size_t nh_usable_size_named(const void *p, const char *call);
const char *nh_lookup_reason(nh_lookup_status st);

/* The full free path of nh_free_checked (NULL, the bootstrap region,
 * large and huge blocks, bad pointers, every mode). */
nh_lookup_status nh_free_checked_slow(void *p);
/* The same on behalf of call: a pointer that is not a live numaheap block
 * stops the process. */
void nh_free_named_slow(void *p, const char *call);

/* The allocation fast path alone (percpu/cache.h's gate open): a block of
 * size bytes popped from the current CPU's slab, or NULL when the caller
 * must take the full path (gate closed, slab empty, size too large). */
static inline void *nh_alloc_fast(size_t size) {
  if (__builtin_expect(size < atomic_load_explicit(&nh_cache_fast_end, memory_order_acquire), 1))
    return nh_cache_pop_fast(nh_size_class(size));
  return NULL;
}

/* A block of size bytes aligned to align at level, from the caller's node. */
static inline void *nh_alloc_level(size_t size, size_t align, int level) {
  if (__builtin_expect(size < atomic_load_explicit(&nh_cache_fast_end, memory_order_acquire) &&
                       align <= NH_MIN_ALIGN, 1)) {
    unsigned cls = nh_size_class(size);
    void *p = nh_cache_pop_fast(cls);
    return __builtin_expect(p != NULL, 1) ? p : nh_cache_alloc_slow(cls, level);
  }
  return nh_alloc_level_slow(size, align, level);
}

/* Frees p, a block of class cls of node found by nh_block_lookup_small, on
 * the current CPU's slab (the cache's slow path when the slab cannot take
 * it). false: p is the slab's top block already, a double free. */
static inline bool nh_free_push(void *p, unsigned cls, int node) {
  int r = nh_cache_push_fast(p, cls, node);
  if (__builtin_expect(r > 0, 1)) return true;
  if (r == 0) nh_cache_free_slow(p, cls, node);
  return r == 0;
}

/* The gate of the free fast path (percpu/cache.h). */
static inline size_t nh_free_gate(void) {
  return atomic_load_explicit(&nh_cache_fast_segs, memory_order_acquire);
}

/* Frees p if it is a live numaheap block (or a bootstrap block, which is
 * ignored); otherwise returns why not, touching nothing. Every second free
 * is caught here, at the call: the fast path reads the block's free mark
 * (the host API's Free returns an error for a double free, it cannot stop
 * the process later). */
static inline nh_lookup_status nh_free_checked(void *p) {
  unsigned cls;
  int node;
  if (__builtin_expect(nh_block_lookup_small(p, nh_free_gate(), &cls, &node, NULL), 1) &&
      __builtin_expect(!nh_block_is_marked_free(p), 1))
    return nh_free_push(p, cls, node) ? NH_LOOKUP_OK : NH_LOOKUP_FREED;
  return nh_free_checked_slow(p);
}

/* The same on behalf of call (for messages): a pointer that is not a live
 * numaheap block stops the process. The fast path (a small block, gate
 * open) does not read the block: a second free is caught at the call when
 * the block is its CPU's last freed, else before it can be handed out twice
 * (numa/heap.h). Every path a tail call. */
static inline void nh_free_named(void *p, const char *call) {
  unsigned cls;
  int node;
  if (__builtin_expect(nh_block_lookup_small(p, nh_free_gate(), &cls, &node, NULL), 1)) {
    if (__builtin_expect(!nh_free_push(p, cls, node), 0)) nh_bad_free(p, call, NH_LOOKUP_FREED);
    return;
  }
  nh_free_named_slow(p, call);
}

/* realloc's rules, shared by its inline and full paths: a block of old
 * bytes keeps size in place when it fits without wasting half of it; one
 * that grows is moved to a quarter more than it had, as tcmalloc does, so
 * that a block grown a little at a time moves a logarithmic number of
 * times. */
static inline bool nh_realloc_fits(size_t old, size_t size) {
  return size <= old && size >= old / 2;
}
static inline size_t nh_realloc_want(size_t old, size_t size) {
  return size > old && old + old / 4 > size ? old + old / 4 : size;
}

/* realloc of p, a live small block of old bytes (class cls) of node (found
 * by the free fast path's lookup, its free mark read), that must move: to a
 * block of nh_realloc_want's class popped from the current CPU's slab when
 * that slab holds blocks of node (a block keeps its node through realloc),
 * p then freed there; else nh_realloc_named. */
void *nh_realloc_small(void *p, size_t size, size_t old, unsigned cls, int node,
                       const char *call);

/* realloc, its common case inline: p a live small or large block (the gate
 * open) that still fits size without wasting half of it is returned as it
 * is. A small block that must move goes to nh_realloc_small; everything else
 * (NULL, size 0, a freed or foreign p, a large block that must grow or
 * shrink, huge blocks) to nh_realloc_named, which has the errors. Every path
 * a tail call. */
static inline void *nh_realloc_inline(void *p, size_t size, const char *call) {
  unsigned cls;
  int node;
  size_t old;
  if (__builtin_expect(nh_block_lookup_small(p, nh_free_gate(), &cls, &node, &old), 1) &&
      __builtin_expect(!nh_block_is_marked_free(p), 1)) {
    if (__builtin_expect(nh_realloc_fits(old, size), 1)) return p;
    return nh_realloc_small(p, size, old, cls, node, call);
  }
  if (nh_block_lookup_large(p, nh_free_gate(), &old) && nh_realloc_fits(old, size) &&
      !nh_block_is_marked_free(p))
    return p;
  return nh_realloc_named(p, size, call);
}

/* ---- stats.c ------------------------------------------------------------------ */
extern int nh_stats_fd; /* init.c: stderr duplicate for the report at exit, or -1 */
void nh_stats_at_exit(void);

/* ---- publish.c: the live statistics region (api/publish_layout.h) ------------ */
/* Starts the publisher thread when cfg says [stats] publish = yes and none
 * runs, stops it (and drops the region) when it says no; takes the interval.
 * Called once the allocator is READY (pthread_create allocates). */
void nh_publish_apply(const nh_config *cfg);
/* nh_reinit: no snapshot while the heaps and caches are rebuilt. */
void nh_publish_pause(void);
void nh_publish_resume(void);
/* The fork child: drops the parent's region untouched, publishes its own. */
void nh_publish_postfork_child(void);

/* ---- host_stats.c: the hosting API's lines of nh_stats_print (text) ------------- */
/* VirtualAlloc, notification and address-space counters, then the live
 * DebugAlloc blocks by file:line. Prints nothing if no host manager exists. */
void nh_host_stats_print(FILE *out);

#pragma GCC visibility pop

#endif
