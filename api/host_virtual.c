/*
 * api/host_virtual.c: VirtualAlloc, VirtualFree, VirtualQuery and
 * VirtualProtect with Win32 semantics over numa/os.h.
 *
 * Reservations. Every reservation the host hands out is one entry of a
 * fixed table (VM_MAX_RES entries from nh_os_meta_alloc, never freed; free
 * entries are reused). An entry holds the range, the PAGE_* given when it
 * was reserved, and one state word per OS page:
 *     bits 0-7   PAGE_* of the page while committed
 *     bit 8      committed
 *     bits 9-10  level the page was charged at
 *     bits 16-31 logical node the page was charged to (and bound to)
 * Committing charges the new pages against the budget of the caller's node
 * at the request's level (nh_heap_charge), or, when that node cannot take
 * them, of the nearest node the level's spill scope allows (the topology's
 * fallback order); when no one node can take them all, they are split in
 * address order over the caller's node and then those nodes by distance,
 * each part as large as its node's room at the level (issue 15); after one
 * reclaim-and-retry it fails. Each page is bound to the node charged for it. Decommit and release uncharge each page from the node and
 * level its state word names.
 *
 * Concurrency. Writers (VirtualAlloc, VirtualFree, VirtualProtect) hold
 * vm_lock. VirtualQuery takes no lock (the runtime calls it with threads
 * suspended anywhere): it reads entries as a seqlock reader, with a bounded
 * number of retries, so a writer frozen in the middle of an update delays
 * nothing; page words are atomics read one by one. Page-word arrays are
 * never unmapped (an entry keeps its array for the next reservation that
 * fits), so a reader never touches unmapped metadata.
 */
#include <stdatomic.h>
#include <string.h>

#include "api/host_internal.h"
#include "api/internal.h"
#include "numa/lock.h"
#include "numa/os.h"
#include "numa/track.h"
#include "percpu/cache.h"

#define VM_GRANULE ((uintptr_t)64 << 10) /* Win32 allocation granularity */
#define VM_MAX_RES 4096
#define VM_QUERY_TRIES 16
#define VM_STAT_NODES 256

#define PS_PROT_MASK 0xffu
#define PS_COMMITTED 0x100u
#define PS_LEVEL_SHIFT 9
#define PS_NODE_SHIFT 16

typedef struct vm_res {
  /* Synchronization: seq is the seqlock word (odd while an entry changes);
   * writers store it relaxed + release fence before, release after; readers
   * load acquire, fence acquire, load again. base/size/alloc_protect/pages
   * are atomics written under vm_lock between the two seq stores. */
  _Atomic uint64_t seq;
  _Atomic uintptr_t base; /* 0: free entry */
  _Atomic size_t size;
  _Atomic uint32_t alloc_protect;
  _Atomic(_Atomic uint32_t *) pages; /* one state word per OS page */
  size_t cap;                        /* Guarded by vm_lock: words in pages */
  uint8_t large; /* Guarded by vm_lock: MEM_LARGE_PAGES (never decommitted): 1 on transparent
                    or base pages, 2 on explicit huge pages; 0 not large */
} vm_res;

static nh_lock vm_lock;
/* Synchronization: set once under vm_lock with release; loaded with acquire. */
static _Atomic(vm_res *) vm_table;
/* Entries ever used. Stored with release under vm_lock after the entry is set up. */
static _Atomic int vm_used;

/* Counters. Synchronization: atomic, relaxed. */
static _Atomic uint64_t st_reservations, st_reserved, st_committed, st_spills, st_failures;
static _Atomic uint64_t st_large, st_large_hugetlb; /* bytes live with MEM_LARGE_PAGES (of them
                                                       on explicit huge pages) */
static _Atomic uint64_t st_node_committed[VM_STAT_NODES] NH_BSS_COLD;

static void stat_add(_Atomic uint64_t *c, int64_t v) {
  atomic_fetch_add_explicit(c, (uint64_t)v, memory_order_relaxed);
}

void nh_host_vm_stats_get(nh_host_vm_stats *out) {
  out->reservations = atomic_load_explicit(&st_reservations, memory_order_relaxed);
  out->reserved = atomic_load_explicit(&st_reserved, memory_order_relaxed);
  out->committed = atomic_load_explicit(&st_committed, memory_order_relaxed);
  out->spills = atomic_load_explicit(&st_spills, memory_order_relaxed);
  out->failures = atomic_load_explicit(&st_failures, memory_order_relaxed);
  out->large = atomic_load_explicit(&st_large, memory_order_relaxed);
  out->large_hugetlb = atomic_load_explicit(&st_large_hugetlb, memory_order_relaxed);
}

uint64_t nh_host_vm_node_committed(int node) {
  if (node < 0 || node >= VM_STAT_NODES) return 0;
  return atomic_load_explicit(&st_node_committed[node], memory_order_relaxed);
}

/* ---- small helpers ---------------------------------------------------------------- */

static uintptr_t pg(void) { return (uintptr_t)nh_os_page_size(); }
static uintptr_t down(uintptr_t a, uintptr_t to) { return a & ~(to - 1); }

/* a + n rounded up to the page; 0 on overflow. */
static uintptr_t end_up(uintptr_t a, size_t n) {
  uintptr_t e;
  if (__builtin_add_overflow(a, n, &e) || e > UINTPTR_MAX - pg()) return 0;
  return down(e + pg() - 1, pg());
}

static int os_prot(DWORD win) {
  switch (win) {
  case PAGE_NOACCESS: return NH_OS_PROT_NONE;
  case PAGE_READONLY: return NH_OS_PROT_READ;
  case PAGE_READWRITE: return NH_OS_PROT_READ | NH_OS_PROT_WRITE;
  case PAGE_EXECUTE: return NH_OS_PROT_EXEC;
  case PAGE_EXECUTE_READ: return NH_OS_PROT_READ | NH_OS_PROT_EXEC;
  case PAGE_EXECUTE_READWRITE: return NH_OS_PROT_READ | NH_OS_PROT_WRITE | NH_OS_PROT_EXEC;
  default: return -1;
  }
}

static uint32_t ps_make(DWORD prot, int level, int node) {
  return (uint32_t)prot | PS_COMMITTED | ((uint32_t)level << PS_LEVEL_SHIFT) |
         ((uint32_t)node << PS_NODE_SHIFT);
}
static int ps_node(uint32_t w) { return (int)(w >> PS_NODE_SHIFT); }
static int ps_level(uint32_t w) { return (int)((w >> PS_LEVEL_SHIFT) & 3u); }

static uint32_t page_get(vm_res *r, size_t i) {
  _Atomic uint32_t *pages = atomic_load_explicit(&r->pages, memory_order_relaxed);
  return atomic_load_explicit(&pages[i], memory_order_relaxed);
}
static void page_set(vm_res *r, size_t i, uint32_t w) {
  _Atomic uint32_t *pages = atomic_load_explicit(&r->pages, memory_order_relaxed);
  atomic_store_explicit(&pages[i], w, memory_order_relaxed);
}

/* ---- the table (writers: caller holds vm_lock) ---------------------------------------- */

static void seq_begin(vm_res *r) {
  uint64_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
  atomic_store_explicit(&r->seq, s + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release); /* pairs with the reader's acquire fence */
}
static void seq_end(vm_res *r) {
  uint64_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
  atomic_store_explicit(&r->seq, s + 1, memory_order_release); /* pairs with the reader's acquire load */
}

static vm_res *table(void) {
  vm_res *t = atomic_load_explicit(&vm_table, memory_order_acquire);
  if (t == NULL && (t = nh_os_meta_alloc(sizeof(vm_res) * VM_MAX_RES)) != NULL)
    atomic_store_explicit(&vm_table, t, memory_order_release);
  return t;
}

/* The reservation holding [a, e), or NULL. */
static vm_res *res_find(uintptr_t a, uintptr_t e) {
  vm_res *t = atomic_load_explicit(&vm_table, memory_order_relaxed);
  int used = atomic_load_explicit(&vm_used, memory_order_relaxed);
  for (int i = 0; t && i < used; i++) {
    uintptr_t b = atomic_load_explicit(&t[i].base, memory_order_relaxed);
    size_t s = atomic_load_explicit(&t[i].size, memory_order_relaxed);
    if (b && a >= b && e <= b + s && a < e) return &t[i];
  }
  return NULL;
}

/* A free entry whose page array holds npages words (the first fit, else a
 * never-used entry, else any free entry, whose array is then replaced). */
static vm_res *res_slot(vm_res *t, size_t npages) {
  int used = atomic_load_explicit(&vm_used, memory_order_relaxed);
  vm_res *any = NULL;
  for (int i = 0; i < used; i++) {
    if (atomic_load_explicit(&t[i].base, memory_order_relaxed) != 0) continue;
    if (t[i].cap >= npages) return &t[i];
    if (any == NULL) any = &t[i];
  }
  if (used < VM_MAX_RES) {
    atomic_store_explicit(&vm_used, used + 1, memory_order_release);
    return &t[used];
  }
  return any;
}

/* Gives r an array of at least npages words. The old array, if any, stays
 * mapped: a reader may still be looking at it. Arrays only grow, by powers
 * of two, so the arrays an entry retires total less than its current one.
 * false when out of memory. */
static bool res_pages(vm_res *r, size_t npages) {
  if (r->cap >= npages) return true;
  size_t cap = 64;
  while (cap < npages) cap *= 2;
  _Atomic uint32_t *a = nh_os_meta_alloc(cap * sizeof(uint32_t));
  if (a == NULL) return false;
  atomic_store_explicit(&r->pages, a, memory_order_relaxed);
  r->cap = cap;
  return true;
}

static vm_res *res_publish(uintptr_t base, size_t size, DWORD protect) {
  vm_res *t = table();
  size_t npages = size / pg();
  vm_res *r = t ? res_slot(t, npages) : NULL;
  if (r == NULL) return NULL;
  seq_begin(r);
  bool ok = res_pages(r, npages);
  if (ok) {
    for (size_t i = 0; i < npages; i++) page_set(r, i, 0);
    atomic_store_explicit(&r->size, size, memory_order_relaxed);
    atomic_store_explicit(&r->alloc_protect, protect, memory_order_relaxed);
    atomic_store_explicit(&r->base, base, memory_order_relaxed);
  }
  seq_end(r);
  if (!ok) return NULL;
  stat_add(&st_reservations, 1);
  stat_add(&st_reserved, (int64_t)size);
  return r;
}

static void res_unpublish(vm_res *r) {
  size_t size = atomic_load_explicit(&r->size, memory_order_relaxed);
  seq_begin(r);
  atomic_store_explicit(&r->base, 0, memory_order_relaxed);
  seq_end(r);
  stat_add(&st_reservations, -1);
  stat_add(&st_reserved, -(int64_t)size);
}

/* ---- charging pages to nodes ------------------------------------------------------------- */

/* The node charged for bytes at level: home, or the nearest node the level's
 * spill scope allows. -1 if none can. */
static int charge_near(int home, uint64_t bytes, int level) {
  if (nh_heap_charge(home, bytes, level)) return home;
  const nh_topo_node *tn = &nh_g.topo->nodes[home];
  for (int i = 0; i < nh_g.nnodes - 1; i++) {
    int m = tn->fallback[i];
    if (nh_heap_may_spill(home, m, level) && nh_heap_charge(m, bytes, level)) return m;
  }
  return -1;
}

/* A commit's pages charged to one node. */
typedef struct vm_part {
  int node;
  size_t pages;
} vm_part;
#define VM_MAX_PARTS 64

/* Bytes node may still take at level: its level limit less what it has committed. */
static uint64_t node_room(int node, int level) {
  nh_heap *h = &nh_g.heap[node];
  uint64_t lim = atomic_load_explicit(&h->limit[level], memory_order_relaxed);
  uint64_t c = atomic_load_explicit(&h->st.committed, memory_order_relaxed);
  return c < lim ? lim - c : 0;
}

/* Splits pages over home and then the nodes by distance that the level's
 * spill scope allows, each taking what its limit leaves (whole pages). The
 * number of parts (each charged), or 0 when together they cannot hold them
 * (nothing stays charged). */
static int charge_split(int home, size_t pages, int level, vm_part *parts) {
  int np = 0;
  size_t left = pages;
  for (int i = -1; i < nh_g.nnodes - 1 && left > 0 && np < VM_MAX_PARTS; i++) {
    int m = i < 0 ? home : nh_g.topo->nodes[home].fallback[i];
    if (i >= 0 && !nh_heap_may_spill(home, m, level)) continue;
    size_t take = (size_t)(node_room(m, level) / pg());
    if (take > left) take = left;
    if (take == 0 || !nh_heap_charge(m, (uint64_t)take * pg(), level)) continue;
    parts[np++] = (vm_part){m, take};
    left -= take;
  }
  if (left == 0) return np;
  while (np > 0) --np, nh_heap_uncharge(parts[np].node, (uint64_t)parts[np].pages * pg(), level);
  return 0;
}

/* Charges pages at level for the calling thread: all on its node, else on
 * the nearest node that can take them all, else split over the nodes by
 * distance (each part on one node); then after a reclaim once more. Counts
 * spills and failures the way the heaps do and raises memory pressure for
 * both. The number of parts, 0 on failure. */
static int charge(size_t pages, int level, vm_part *parts) {
  int home = nh_cache_home_node();
  uint64_t bytes = (uint64_t)pages * pg();
  int np = 0;
  for (int round = 0; round < 2 && np == 0; round++) {
    if (round) { /* reclaim what the caches hold, purge, and try once more */
      if (nh_g.reclaim_hook) nh_g.reclaim_hook();
      nh_heaps_trim();
    }
    int node = charge_near(home, bytes, level);
    if (node >= 0) parts[0] = (vm_part){node, pages}, np = 1;
    else np = charge_split(home, pages, level, parts);
  }
  if (np == 0) {
    atomic_fetch_add_explicit(&nh_g.heap[home].st.failures[level], 1, memory_order_relaxed);
    stat_add(&st_failures, 1);
    nh_host_pressure(home, level);
    return 0;
  }
  for (int k = 0; k < np; k++) {
    if (parts[k].node == home) continue;
    atomic_fetch_add_explicit(&nh_g.heap[home].st.fallback_out, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&nh_g.heap[parts[k].node].st.fallback_in, 1, memory_order_relaxed);
    stat_add(&st_spills, 1);
  }
  if (np > 1 || parts[0].node != home) nh_host_pressure(home, level);
  return np;
}

/* Counts bytes (negative: released) committed through VirtualAlloc on node. */
static void account(int node, int64_t bytes) {
  stat_add(&st_committed, bytes);
  if (node < VM_STAT_NODES) stat_add(&st_node_committed[node], bytes);
}

/* Uncharges committed pages [first, first+n) of r and clears their words;
 * decommits them from the OS when decommit. */
static void pages_drop(vm_res *r, size_t first, size_t n, bool decommit) {
  uintptr_t base = atomic_load_explicit(&r->base, memory_order_relaxed);
  size_t i = first, end = first + n;
  while (i < end) {
    uint32_t w = page_get(r, i);
    if (!(w & PS_COMMITTED)) {
      i++;
      continue;
    }
    size_t j = i + 1; /* a run charged to the same node and level */
    while (j < end && (page_get(r, j) & ~PS_PROT_MASK) == (w & ~PS_PROT_MASK)) j++;
    uint64_t bytes = (uint64_t)(j - i) * pg();
    if (decommit) nh_os_decommit((void *)(base + i * pg()), bytes);
    for (size_t k = i; k < j; k++) page_set(r, k, 0);
    nh_heap_uncharge(ps_node(w), bytes, ps_level(w));
    account(ps_node(w), -(int64_t)bytes);
    i = j;
  }
}

/* ---- commit ----------------------------------------------------------------------------------- */

/* Applies fn to each run of pages in [first, first+n) whose committed bit is `committed`;
 * stops at the first error (returned). */
typedef int (*run_fn)(void *addr, size_t len, void *arg);
static int for_runs(vm_res *r, size_t first, size_t n, bool committed, run_fn fn, void *arg) {
  uintptr_t base = atomic_load_explicit(&r->base, memory_order_relaxed);
  for (size_t i = first, end = first + n; i < end;) {
    if (((page_get(r, i) & PS_COMMITTED) != 0) != committed) {
      i++;
      continue;
    }
    size_t j = i + 1;
    while (j < end && ((page_get(r, j) & PS_COMMITTED) != 0) == committed) j++;
    int rc = fn((void *)(base + i * pg()), (j - i) * pg(), arg);
    if (rc) return rc;
    i = j;
  }
  return 0;
}

/* Calls fn on each run of the uncommitted pages of [first, first+n) that
 * one part covers: the parts take the uncommitted pages in address order.
 * Stops at the first error (returned). */
typedef int (*part_fn)(vm_res *r, size_t i, size_t j, int node, void *arg);
static int walk_parts(vm_res *r, size_t first, size_t n, const vm_part *parts, part_fn fn,
                      void *arg) {
  int k = 0;
  size_t used = 0; /* pages of parts[k] walked */
  for (size_t i = first, end = first + n; i < end;) {
    if (page_get(r, i) & PS_COMMITTED) {
      i++;
      continue;
    }
    if (used == parts[k].pages) k++, used = 0;
    size_t j = i + 1;
    while (j < end && !(page_get(r, j) & PS_COMMITTED) && used + (j - i) < parts[k].pages) j++;
    int rc = fn(r, i, j, parts[k].node, arg);
    if (rc) return rc;
    used += j - i;
    i = j;
  }
  return 0;
}

typedef struct commit_arg {
  int prot;
  DWORD protect;
  int level;
  uintptr_t failed_at; /* start of the run that failed */
} commit_arg;

static int run_commit(vm_res *r, size_t i, size_t j, int node, void *arg) {
  commit_arg *c = arg;
  uintptr_t a = atomic_load_explicit(&r->base, memory_order_relaxed) + i * pg();
  int rc = nh_os_commit((void *)a, (j - i) * pg(), c->prot, nh_g.heap[node].os_node);
  if (rc) c->failed_at = a;
  return rc;
}
static int run_mark(vm_res *r, size_t i, size_t j, int node, void *arg) {
  commit_arg *c = arg;
  for (size_t q = i; q < j; q++) page_set(r, q, ps_make(c->protect, c->level, node));
  account(node, (int64_t)((j - i) * pg()));
  return 0;
}
static int run_uncommit_until(void *addr, size_t len, void *arg) {
  commit_arg *c = arg;
  if ((uintptr_t)addr >= c->failed_at) return 1;
  nh_os_decommit(addr, len);
  return 0;
}
static int run_protect(void *addr, size_t len, void *arg) {
  return nh_os_protect(addr, len, *(int *)arg);
}
static int run_reset(void *addr, size_t len, void *arg) {
  nh_os_reset(addr, len);
  return 0;
}

static size_t count_uncommitted(vm_res *r, size_t first, size_t n) {
  size_t c = 0;
  for (size_t i = first; i < first + n; i++) c += !(page_get(r, i) & PS_COMMITTED);
  return c;
}

/* Commits pages [a, e) of r with protect at level. */
static HRESULT commit_range(vm_res *r, uintptr_t a, uintptr_t e, DWORD protect, int level) {
  uintptr_t base = atomic_load_explicit(&r->base, memory_order_relaxed);
  size_t first = (a - base) / pg(), n = (e - a) / pg();
  uint64_t bytes = (uint64_t)count_uncommitted(r, first, n) * pg();
  int prot = os_prot(protect);
  if (bytes == 0) /* all committed already: Win32 just applies the protection */
    return for_runs(r, first, n, true, run_protect, &prot) ? E_OUTOFMEMORY : S_OK;
  vm_part parts[VM_MAX_PARTS];
  int np = charge((size_t)(bytes / pg()), level, parts);
  if (np == 0) return E_OUTOFMEMORY;
  commit_arg c = {prot, protect, level, 0};
  if (walk_parts(r, first, n, parts, run_commit, &c) != 0 ||
      for_runs(r, first, n, true, run_protect, &prot) != 0) {
    if (c.failed_at == 0) c.failed_at = e;
    for_runs(r, first, n, false, run_uncommit_until, &c);
    for (int k = 0; k < np; k++) nh_heap_uncharge(parts[k].node, (uint64_t)parts[k].pages * pg(), level);
    return E_OUTOFMEMORY;
  }
  for (size_t i = first; i < first + n; i++) { /* pages committed before: the new protection */
    uint32_t w = page_get(r, i);
    if (w & PS_COMMITTED) page_set(r, i, (w & ~PS_PROT_MASK) | protect);
  }
  walk_parts(r, first, n, parts, run_mark, &c);
  /* Fresh pages may reuse addresses of unmapped heap segments whose blocks
   * ASan/Valgrind still think poisoned: tell them the range is accessible. */
  nh_track_open((void *)a, e - a);
  return S_OK;
}

/* ---- VirtualAlloc ------------------------------------------------------------------------------ */

#define ALLOC_KNOWN \
  (MEM_COMMIT | MEM_RESERVE | MEM_RESET | MEM_TOP_DOWN | MEM_WRITE_WATCH | MEM_LARGE_PAGES)
#define LARGE_PAGE ((uintptr_t)2 << 20) /* GetLargePageMinimum() on x86-64 */

static HRESULT check_alloc(uintptr_t a, SIZE_T size, DWORD type, DWORD protect,
                           EMemoryCriticalLevel level) {
  if (!nh_host_level_ok(level) || size == 0 || (type & ~(DWORD)ALLOC_KNOWN)) return E_INVALIDARG;
  if ((type & MEM_LARGE_PAGES) && ((type & (MEM_RESERVE | MEM_COMMIT)) != (MEM_RESERVE | MEM_COMMIT) ||
                                   (type & MEM_WRITE_WATCH) || size % LARGE_PAGE || a % LARGE_PAGE))
    return E_INVALIDARG; /* reserved and committed at once, in whole large pages */
  if (type & MEM_RESET) return type == MEM_RESET ? S_OK : E_INVALIDARG;
  if (!(type & (MEM_COMMIT | MEM_RESERVE))) return E_INVALIDARG;
  if ((type & MEM_WRITE_WATCH) && !(type & MEM_RESERVE)) return E_INVALIDARG;
  return os_prot(protect) < 0 ? E_INVALIDARG : S_OK;
}

/* A MEM_LARGE_PAGES region [p, p + size), just committed on node: on
 * explicit huge pages of the node in hugetlb mode when it has enough free
 * (else the fall back is counted), on transparent ones asked for in thp
 * mode; faulted in whole either way, as Windows' large pages are. */
static void back_large(vm_res *r, uintptr_t p, size_t size, DWORD protect, int node) {
  nh_heap *h = &nh_g.heap[node];
  r->large = 1;
  stat_add(&st_large, (int64_t)size);
  if (nh_g.huge_pages == NH_HUGE_HUGETLB) {
    if (h->os_node >= 0 && nh_os_node_free_hugepages(h->os_node) >= size / LARGE_PAGE &&
        nh_os_remap_hugetlb((void *)p, size, os_prot(protect), h->os_node) == 0) {
      stat_add(&st_large_hugetlb, (int64_t)size);
      r->large = 2;
      return;
    }
    atomic_fetch_add_explicit(&h->st.hugetlb_fallbacks, 1, memory_order_relaxed);
  }
  if (nh_g.huge_pages != NH_HUGE_OFF && nh_g.thp_ok) nh_os_advise_huge((void *)p, size);
  if (os_prot(protect) & NH_OS_PROT_WRITE) nh_os_populate((void *)p, size);
}

/* MEM_RESERVE (with MEM_COMMIT or not), or MEM_COMMIT at a NULL address. */
static HRESULT do_reserve(uintptr_t a, SIZE_T size, DWORD type, DWORD protect, int level,
                          void **out) {
  uintptr_t base = a ? down(a, VM_GRANULE) : 0, e = end_up(a, size);
  if (e == 0) return E_OUTOFMEMORY;
  size_t span = e - base;
  uintptr_t align = (type & MEM_LARGE_PAGES) ? LARGE_PAGE : VM_GRANULE;
  void *p = nh_os_reserve((void *)base, span, align, a != 0);
  if (p == NULL) return a ? HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS) : E_OUTOFMEMORY;
  vm_res *r = res_publish((uintptr_t)p, span, protect);
  if (r == NULL) {
    nh_os_unmap(p, span);
    return E_OUTOFMEMORY;
  }
  if (type & MEM_COMMIT) { /* the pages asked for: [a, e), or all of a NULL-address reservation */
    uintptr_t cs = a ? down(a, pg()) : (uintptr_t)p, ce = a ? e : (uintptr_t)p + span;
    HRESULT hr = commit_range(r, cs, ce, protect, level);
    if (hr != S_OK) {
      res_unpublish(r);
      nh_os_unmap(p, span);
      return hr;
    }
    if (type & MEM_LARGE_PAGES) back_large(r, (uintptr_t)p, span, protect, ps_node(page_get(r, 0)));
  }
  *out = p;
  return S_OK;
}

static HRESULT do_commit(uintptr_t a, SIZE_T size, DWORD protect, int level, void **out) {
  uintptr_t s = down(a, pg()), e = end_up(a, size);
  vm_res *r = e ? res_find(s, e) : NULL;
  if (r == NULL) return HOST_E_INVALIDOPERATION;
  HRESULT hr = commit_range(r, s, e, protect, level);
  if (hr == S_OK) *out = (void *)s;
  return hr;
}

static HRESULT do_reset(uintptr_t a, SIZE_T size, void **out) {
  uintptr_t s = down(a, pg()), e = end_up(a, size);
  vm_res *r = e ? res_find(s, e) : NULL;
  if (r == NULL) return HOST_E_INVALIDOPERATION;
  uintptr_t base = atomic_load_explicit(&r->base, memory_order_relaxed);
  for_runs(r, (s - base) / pg(), (e - s) / pg(), true, run_reset, NULL);
  *out = (void *)s;
  return S_OK;
}

HRESULT nh_host_virtual_alloc(void *addr, SIZE_T size, DWORD type, DWORD protect,
                              EMemoryCriticalLevel level, void **out) {
  if (out == NULL) return E_POINTER;
  *out = NULL;
  HRESULT hr = check_alloc((uintptr_t)addr, size, type, protect, level);
  if (hr != S_OK) return hr;
  uintptr_t a = (uintptr_t)addr;
  nh_lock_acquire(&vm_lock);
  if (type & MEM_RESET) hr = do_reset(a, size, out);
  else if ((type & MEM_RESERVE) || a == 0) hr = do_reserve(a, size, type, protect, (int)level, out);
  else hr = do_commit(a, size, protect, (int)level, out);
  nh_lock_release(&vm_lock);
  return hr;
}

/* ---- VirtualFree ------------------------------------------------------------------------------------ */

static HRESULT do_release(vm_res *r, uintptr_t a) {
  uintptr_t base = atomic_load_explicit(&r->base, memory_order_relaxed);
  size_t size = atomic_load_explicit(&r->size, memory_order_relaxed);
  if (a != base) return HOST_E_INVALIDOPERATION; /* Win32: only the whole reservation */
  if (r->large) {
    stat_add(&st_large, -(int64_t)size);
    if (r->large == 2) stat_add(&st_large_hugetlb, -(int64_t)size);
    r->large = 0;
  }
  pages_drop(r, 0, size / pg(), false);
  res_unpublish(r);
  nh_os_unmap((void *)base, size);
  return S_OK;
}

static HRESULT do_decommit(vm_res *r, uintptr_t a, SIZE_T size) {
  uintptr_t base = atomic_load_explicit(&r->base, memory_order_relaxed);
  size_t rsize = atomic_load_explicit(&r->size, memory_order_relaxed);
  uintptr_t s = down(a, pg()), e = size ? end_up(a, size) : base + rsize;
  if (size == 0 && a != base) return E_INVALIDARG; /* size 0 means "the whole region from its base" */
  if (r->large) return HOST_E_INVALIDOPERATION;     /* large pages: released whole only */
  if (e == 0 || e > base + rsize) return HOST_E_INVALIDOPERATION;
  pages_drop(r, (s - base) / pg(), (e - s) / pg(), true);
  return S_OK;
}

HRESULT nh_host_virtual_free(void *addr, SIZE_T size, DWORD type) {
  if (type != MEM_RELEASE && type != MEM_DECOMMIT) return E_INVALIDARG;
  if (type == MEM_RELEASE && size != 0) return E_INVALIDARG;
  uintptr_t a = (uintptr_t)addr;
  nh_lock_acquire(&vm_lock);
  vm_res *r = a ? res_find(down(a, pg()), down(a, pg()) + pg()) : NULL;
  HRESULT hr = HOST_E_INVALIDOPERATION;
  if (r) hr = type == MEM_RELEASE ? do_release(r, a) : do_decommit(r, a, size);
  nh_lock_release(&vm_lock);
  return hr;
}

/* ---- VirtualProtect ------------------------------------------------------------------------------------- */

HRESULT nh_host_virtual_protect(void *addr, SIZE_T size, DWORD prot, DWORD *old) {
  if (old == NULL) return E_POINTER;
  *old = 0;
  int osp = os_prot(prot);
  if (osp < 0 || size == 0) return E_INVALIDARG;
  uintptr_t s = down((uintptr_t)addr, pg()), e = end_up((uintptr_t)addr, size);
  HRESULT hr = HOST_E_INVALIDOPERATION;
  nh_lock_acquire(&vm_lock);
  vm_res *r = e ? res_find(s, e) : NULL;
  if (r) {
    uintptr_t base = atomic_load_explicit(&r->base, memory_order_relaxed);
    size_t first = (s - base) / pg(), n = (e - s) / pg();
    if (count_uncommitted(r, first, n) == 0) { /* Win32: every page must be committed */
      hr = nh_os_protect((void *)s, e - s, osp) == 0 ? S_OK : E_OUTOFMEMORY;
      if (hr == S_OK) {
        *old = page_get(r, first) & PS_PROT_MASK;
        for (size_t i = first; i < first + n; i++) page_set(r, i, (page_get(r, i) & ~PS_PROT_MASK) | prot);
      }
    }
  }
  nh_lock_release(&vm_lock);
  return hr;
}

/* ---- VirtualQuery (lock-free) ------------------------------------------------------------------------------ */

/* Fills *m for address a if entry r holds it; false if it does not. One try:
 * *stable says whether no writer changed the entry meanwhile. */
static bool query_entry(vm_res *r, uintptr_t a, MEMORY_BASIC_INFORMATION *m, bool *stable) {
  uint64_t s1 = atomic_load_explicit(&r->seq, memory_order_acquire);
  uintptr_t base = atomic_load_explicit(&r->base, memory_order_relaxed);
  size_t size = atomic_load_explicit(&r->size, memory_order_relaxed);
  _Atomic uint32_t *pages = atomic_load_explicit(&r->pages, memory_order_relaxed);
  bool hit = base != 0 && pages != NULL && a >= base && a - base < size;
  if (hit) {
    size_t first = (a - base) / pg(), n = size / pg(), i = first + 1;
    uint32_t w = atomic_load_explicit(&pages[first], memory_order_relaxed);
    while (i < n && atomic_load_explicit(&pages[i], memory_order_relaxed) == w) i++;
    m->BaseAddress = (void *)(base + first * pg());
    m->AllocationBase = (void *)base;
    m->AllocationProtect = atomic_load_explicit(&r->alloc_protect, memory_order_relaxed);
    m->RegionSize = (i - first) * pg();
    m->State = (w & PS_COMMITTED) ? MEM_COMMIT : MEM_RESERVE;
    m->Protect = (w & PS_COMMITTED) ? (w & PS_PROT_MASK) : 0;
    m->Type = MEM_PRIVATE;
  }
  atomic_thread_fence(memory_order_acquire); /* pairs with the writer's release fence */
  *stable = (s1 & 1) == 0 && atomic_load_explicit(&r->seq, memory_order_relaxed) == s1;
  return hit;
}

static bool query_ours(uintptr_t a, MEMORY_BASIC_INFORMATION *m) {
  vm_res *t = atomic_load_explicit(&vm_table, memory_order_acquire);
  int used = atomic_load_explicit(&vm_used, memory_order_acquire);
  for (int i = 0; t && i < used; i++) {
    bool hit = false, stable = false;
    for (int tries = 0; tries < VM_QUERY_TRIES && !stable; tries++)
      hit = query_entry(&t[i], a, m, &stable);
    if (hit) return true; /* unstable after every try: a writer is frozen; answer as read */
  }
  return false;
}

/* An address outside the host's reservations: MEM_FREE when the page is
 * unmapped (the region runs over the following unmapped pages up to the next
 * 64 KiB boundary), else one committed private page. The protection of a
 * page numaheap did not map is not known without reading /proc: reported as
 * PAGE_READWRITE. */
static void query_foreign(uintptr_t a, MEMORY_BASIC_INFORMATION *m) {
  uintptr_t p = down(a, pg());
  memset(m, 0, sizeof *m);
  m->BaseAddress = (void *)p;
  if (nh_os_is_mapped((void *)p)) {
    m->AllocationBase = (void *)p;
    m->AllocationProtect = m->Protect = PAGE_READWRITE;
    m->RegionSize = pg();
    m->State = MEM_COMMIT;
    m->Type = MEM_PRIVATE;
    return;
  }
  uintptr_t e = p + pg();
  while (e & (VM_GRANULE - 1) && e != 0 && !nh_os_is_mapped((void *)e)) e += pg();
  m->RegionSize = e - p;
  m->State = MEM_FREE;
}

HRESULT nh_host_virtual_query(const void *addr, void *buf, SIZE_T len, SIZE_T *written) {
  if (written) *written = 0;
  if (buf == NULL || written == NULL) return E_POINTER;
  if (len < sizeof(MEMORY_BASIC_INFORMATION)) return E_INVALIDARG;
  MEMORY_BASIC_INFORMATION m;
  if (!query_ours((uintptr_t)addr, &m)) query_foreign((uintptr_t)addr, &m);
  memcpy(buf, &m, sizeof m);
  *written = sizeof m;
  return S_OK;
}
