/**
 * @file numaheap.h
 * @brief numaheap's native API: allocation on NUMA nodes, topology queries,
 * start-up and statistics.
 *
 * numaheap: a NUMA-aware memory allocator.
 *
 * The native API. Every function is thread-safe and may be called before
 * nh_init(): the allocator starts itself on first use (reading the file named
 * by NUMAHEAP_CONFIG, if any).
 *
 * Error convention (stated once, as hwloc does):
 *   - functions returning a pointer return NULL on failure and set errno
 *     (ENOMEM for an impossible or unsatisfiable size, EINVAL for a bad
 *     argument);
 *   - functions returning int return 0 (or a non-negative value) on success
 *     and -1 with errno set on failure;
 *   - after any failed call, nh_last_error() returns a message for the calling
 *     thread that names what was wrong.
 *
 * Node numbers are logical: 0 .. nh_node_count()-1. On a real machine they are
 * the OS NUMA node ids in increasing order; with a simulated topology (see the
 * [topology] section of the config file) they are the simulated nodes.
 */
#ifndef NUMAHEAP_H
#define NUMAHEAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(NH_BUILDING_LIBRARY)
#define NH_API __attribute__((visibility("default")))
#else
#define NH_API
#endif

#define NUMAHEAP_VERSION_MAJOR 0
#define NUMAHEAP_VERSION_MINOR 1
#define NUMAHEAP_VERSION_PATCH 0
#define NUMAHEAP_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup nh_alloc Allocation
 *  malloc-compatible allocation served from the caller's NUMA node.
 *  All returned blocks are aligned to at least 16 bytes.
 *  @{ */

/** Allocates @p size bytes on the caller's node. nh_malloc(0) returns a unique
 *  pointer that can be freed. NULL with errno ENOMEM on failure. */
NH_API void *nh_malloc(size_t size);
/** Zeroed array of @p count elements; NULL with ENOMEM when count*size overflows. */
NH_API void *nh_calloc(size_t count, size_t size);
/** Resizes @p p keeping its node where possible; realloc(NULL, n) is malloc(n),
 *  realloc(p, 0) frees p and returns a unique minimal block (like nh_malloc(0)). */
NH_API void *nh_realloc(void *p, size_t size);
/** @p alignment must be a power of two; NULL with EINVAL otherwise, ENOMEM on overflow. */
NH_API void *nh_aligned_alloc(size_t alignment, size_t size);
/** Frees a block from any thread; the block returns to the heap of its own node.
 *  A pointer that is not numaheap's, or a block freed twice, stops the process
 *  with a message naming the call and the address. nh_free(NULL) does nothing. */
NH_API void nh_free(void *p);
/** Usable size of a live block (at least the size asked for); 0 for NULL. */
NH_API size_t nh_usable_size(const void *p);

/** Allocates on @p node; other nodes, by distance, only if @p node is exhausted.
 *  NULL with EINVAL when @p node is out of range. */
NH_API void *nh_malloc_node(size_t size, int node);

/** Returns cached and empty memory to the OS on every node. */
NH_API void nh_trim(void);
/** @} */

/** @defgroup nh_topo Topology
 *  @{ */
/** Node whose heap owns @p p (any address inside a live or free block of
 *  numaheap's), -1 if @p p is not numaheap's. */
NH_API int nh_ptr_node(const void *p);
/** Node of the CPU the caller runs on. */
NH_API int nh_current_node(void);
/** Number of nodes of the topology in use (at least 1). */
NH_API int nh_node_count(void);
/** @} */

/** @defgroup nh_setup Start-up and errors
 *  @{ */
/** Optional explicit start-up with a config file (NULL: NUMAHEAP_CONFIG or
 *  defaults). Returns 0, or -1 with errno (EINVAL for a bad file, EBUSY when the
 *  allocator already started with another configuration) and nh_last_error()
 *  naming the file, line and problem; the allocator then runs on its defaults. */
NH_API int nh_init(const char *config_path);
/** Message for the last failed call on this thread ("" if none). */
NH_API const char *nh_last_error(void);
/** @} */

/** @defgroup nh_stats Statistics
 *  @{ */

/** Criticality levels, the same numbers as the CLR's EMemoryCriticalLevel. */
enum nh_level { NH_LEVEL_TASK = 0, NH_LEVEL_APPDOMAIN = 1, NH_LEVEL_PROCESS = 2, NH_LEVEL_COUNT = 3 };

/** Version of nh_stats; a snapshot is refused when the caller's differs. */
#define NH_STATS_VERSION 3

/** Per-node counters. Bytes are bytes; "count" fields are events. */
typedef struct nh_node_stats {
  int node;                     /**< logical node number */
  int os_node;                  /**< real OS node its memory is bound to */
  uint64_t budget;              /**< bytes this node's heap may commit */
  uint64_t reserve;             /**< bytes of budget kept for eProcessCritical */
  uint64_t reserve_ready;       /**< bytes of the reserve pre-committed (populated) at start-up */
  uint64_t committed;           /**< bytes taken from the OS and not returned */
  uint64_t in_use;              /**< bytes in live blocks (size-class rounded) */
  uint64_t peak_committed;      /**< high-water mark of committed */
  uint64_t level_committed[NH_LEVEL_COUNT]; /**< bytes of pages held by blocks, by the level
                                                 that took them (committed also counts free pages
                                                 not yet purged and segment headers) */
  uint64_t allocs;              /**< blocks handed out by this node's heap */
  uint64_t frees;               /**< blocks returned to this node's heap */
  uint64_t remote_frees;        /**< blocks freed by a CPU of another node, sent home */
  uint64_t fallback_out;        /**< requests of this node's CPUs served by another node */
  uint64_t fallback_in;         /**< requests of other nodes' CPUs served here */
  uint64_t failures[NH_LEVEL_COUNT]; /**< requests this node could not take, per level */
  uint64_t purged;              /**< bytes returned to the OS (madvise/munmap) */
  uint64_t segments;            /**< segments currently mapped */
  uint64_t xfer_hits;           /**< blocks a cache refill took from the node's transfer cache */
  uint64_t xfer_misses;         /**< blocks a cache refill took from spans (transfer cache empty) */
  uint64_t xfer_released;       /**< blocks the transfer cache gave back to spans (decay, trim) */
  uint64_t xfer_bytes;          /**< bytes of free blocks the transfer cache holds now */
  uint64_t huge_kept;           /**< bytes of freed huge blocks' mappings kept for reuse */
  uint64_t huge_reused;         /**< huge requests served from a kept mapping */
  uint64_t thp_bytes;           /**< bytes mapped now with transparent huge pages asked for
                                     (MADV_HUGEPAGE); the kernel backs them as it can */
  uint64_t hugetlb_bytes;       /**< bytes mapped now with explicit 2 MiB huge pages */
  uint64_t hugetlb_fallbacks;   /**< hugetlb mappings the node could not back (served by thp) */
} nh_node_stats;

/** The process's cgroup (docs/numa.md, "Containers"). */
typedef struct nh_cgroup_stats {
  int version;                  /**< 0: no cgroup with a memory controller; 1 or 2 */
  uint64_t limit;               /**< bytes: the hard limit, the lowest memory.max (v1:
                                     memory.limit_in_bytes) along the chain of groups, which
                                     caps the budgets; UINT64_MAX when there is none */
  uint64_t high;                /**< bytes: the lowest memory.high along the chain, where
                                     Low is sent (nothing is capped by it); UINT64_MAX: none */
  uint64_t usage;               /**< memory.current (v1: memory.usage_in_bytes) when last read */
  uint64_t rereads;             /**< times it was read again because memory was tight */
  uint64_t low_trims;           /**< trims (caches flushed, free pages purged) on entering
                                     low memory */
  uint64_t psi_events;          /**< PSI trigger events (memory stall) the notifier saw */
  uint64_t high_lows;           /**< Low notifications sent because the usage reached
                                     memory.high */
  uint64_t psi_lows;            /**< Low notifications sent because of PSI alone (the load
                                     under [notify] low, no request failed or spilled) */
} nh_cgroup_stats;

/** Snapshot of all counters. Fill `size` and `version` before calling. */
typedef struct nh_stats {
  uint32_t size;                /**< sizeof(nh_stats) of the caller */
  uint32_t version;             /**< NH_STATS_VERSION of the caller */
  int node_count;               /**< entries filled in `nodes` (at most NH_STATS_MAX_NODES) */
  nh_node_stats total;          /**< sums over all nodes (node = -1) */
  int huge_pages;               /**< huge-page mode in force: 0 off, 1 thp, 2 hugetlb */
  const char *huge_reason;      /**< why that mode (a static string) */
#define NH_STATS_MAX_NODES 256
  nh_node_stats nodes[NH_STATS_MAX_NODES]; /**< per node, node_count entries */
  nh_cgroup_stats cgroup;       /**< the cgroup found (version 2 of this struct; high
                                     and the PSI counts: version 3) */
} nh_stats;

/** Fills @p st; 0, or -1 with EINVAL if size/version do not match. */
NH_API int nh_stats_get(nh_stats *st);
/** Prints per-node and total statistics as text (json == 0) or JSON. 0 or -1. */
NH_API int nh_stats_print(FILE *out, int json);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* NUMAHEAP_H */
