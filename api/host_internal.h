/*
 * api/host_internal.h: what the files of the CLR hosting memory API
 * (api/host_*.c) share, grouped by the file that defines each part. Nothing
 * here is installed.
 *
 * Shape.
 *   host_manager.c  the IHostMemoryManager object, the IIDs, CreateMalloc,
 *                   GetMemoryLoad, the address-space methods
 *   host_malloc.c   the IHostMalloc objects: Alloc, DebugAlloc, Free
 *   host_debug.c    the table of DebugAlloc sites (live blocks by file:line)
 *   host_virtual.c  VirtualAlloc/Free/Query/Protect over numa/os.h
 *   host_notify.c   load, the pressure hook and the notifier thread
 *   host_stats.c    the hosting lines of nh_stats_print
 *
 * Lock order (acquire left before right):
 *   vm lock (host_virtual.c)  <  heap locks (numa/)
 *   notify lock (host_notify.c) and the site lock (host_debug.c) are leaves.
 * The pressure hook runs on allocating threads with no numaheap lock held;
 * it only stores atomics and signals a condition variable.
 */
#ifndef NH_API_HOST_INTERNAL_H
#define NH_API_HOST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "numaheap/hostmem.h"

/* ---- host_manager.c ------------------------------------------------------------ */
/* true when iid is *want. */
bool nh_host_iid_equal(REFIID iid, const IID *want);
/* A level the runtime may pass (0..2). */
static inline bool nh_host_level_ok(EMemoryCriticalLevel level) {
  return (unsigned)level <= (unsigned)eProcessCritical;
}
/* Bytes of file and image views reported through Acquired/ReleasedVirtualAddressSpace. */
uint64_t nh_host_vas_bytes(void);
/* Views currently reported acquired. */
uint32_t nh_host_vas_views(void);
/* true once NhCreateHostMemoryManager succeeded in this process. */
bool nh_host_manager_created(void);

/* ---- host_malloc.c --------------------------------------------------------------- */
/* The two IHostMalloc objects (static, never destroyed). */
IHostMalloc *nh_host_malloc_get(bool executable);

/* ---- host_debug.c ----------------------------------------------------------------- */
/* Site index for file:line (registered on first use), -1 when the table is full. */
int nh_host_site_get(const char *file, int line);
void nh_host_site_add(int site, int64_t blocks, int64_t bytes);
/* Live blocks and bytes of the site of file:line (tests). false if unknown. */
bool nh_host_site_live(const char *file, int line, uint64_t *blocks, uint64_t *bytes);
/* Prints the sites with live blocks. */
#include <stdio.h>
void nh_host_sites_print(FILE *out);

/* ---- host_virtual.c ---------------------------------------------------------------- */
HRESULT nh_host_virtual_alloc(void *addr, SIZE_T size, DWORD type, DWORD protect,
                              EMemoryCriticalLevel level, void **out);
HRESULT nh_host_virtual_free(void *addr, SIZE_T size, DWORD type);
HRESULT nh_host_virtual_query(const void *addr, void *buf, SIZE_T len, SIZE_T *written);
HRESULT nh_host_virtual_protect(void *addr, SIZE_T size, DWORD prot, DWORD *old);
/* Counters of the VirtualAlloc layer. */
typedef struct nh_host_vm_stats {
  uint64_t reservations;   /* live reservations */
  uint64_t reserved;       /* bytes reserved */
  uint64_t committed;      /* bytes committed (charged to the nodes' budgets) */
  uint64_t spills;         /* commits bound to a node other than the caller's */
  uint64_t failures;       /* commits refused for lack of budget */
  uint64_t large;          /* bytes live with MEM_LARGE_PAGES */
  uint64_t large_hugetlb;  /* of them, on explicit 2 MiB huge pages (hugetlb mode) */
} nh_host_vm_stats;
void nh_host_vm_stats_get(nh_host_vm_stats *out);
/* Bytes committed through VirtualAlloc on node (tests). */
uint64_t nh_host_vm_node_committed(int node);

/* ---- host_notify.c ------------------------------------------------------------------- */
/* Load against numaheap's budget: percent (0..100) and bytes available. */
void nh_host_load(DWORD *percent, SIZE_T *available);
/* Installs the pressure hook (once). */
void nh_host_notify_install(void);
/* Records that a request failed or spilled for lack of memory. Never blocks. */
void nh_host_pressure(int node, int level);
/* Replaces the registered callback (NULL: none; the notifier goes idle).
 * AddRefs the new one, Releases the old. Returns once no poll is running. */
HRESULT nh_host_notify_register(ICLRMemoryNotificationCallback *cb);
/* Why a Low was sent: the load (budgets, memory.max) reached [notify] low;
 * the usage reached memory.high; a request spilled or failed; a PSI
 * trigger fired (with neither load nor a request). */
enum { NH_LOW_LOAD, NH_LOW_HIGH, NH_LOW_REQUEST, NH_LOW_PSI, NH_LOW_CAUSES };
typedef struct nh_host_notify_stats {
  uint64_t pressure_events[3]; /* per level: failed or spilled requests */
  uint64_t sent[4];            /* notifications sent, by EMemoryAvailable (1..3) */
  int low_mode;                /* 1 while the last notification sent was Low */
  uint64_t psi_events;         /* PSI trigger events seen by the notifier */
  uint64_t lows[NH_LOW_CAUSES]; /* Lows sent, by cause (NH_LOW_*) */
} nh_host_notify_stats;
void nh_host_notify_stats_get(nh_host_notify_stats *out);

#endif
