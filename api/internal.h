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

/* ---- error.c: per-thread last error ------------------------------------------ */
void nh_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nh_clear_error(void);

/* ---- alloc.c: the allocation paths shared by the API and the override ---- */
void *nh_alloc_level(size_t size, size_t align, int level);
/* Frees p on behalf of call (for messages); stops the process on a pointer
 * that is not a live numaheap block. */
void nh_free_named(void *p, const char *call);
/* The same, but reports instead of stopping: NH_LOOKUP_OK when freed. */
nh_lookup_status nh_free_checked(void *p);
void *nh_realloc_named(void *p, size_t size, const char *call);
size_t nh_usable_size_named(const void *p, const char *call);
const char *nh_lookup_reason(nh_lookup_status st);

/* ---- stats.c ------------------------------------------------------------------ */
extern int nh_stats_fd; /* init.c: stderr duplicate for the report at exit, or -1 */
void nh_stats_at_exit(void);

/* ---- host_stats.c: the hosting API's lines of nh_stats_print (text) ------------- */
/* VirtualAlloc, notification and address-space counters, then the live
 * DebugAlloc blocks by file:line. Prints nothing if no host manager exists. */
void nh_host_stats_print(FILE *out);

#endif
