/*
 * bench/wl_host.c: the CLR host driver workload (family "host").
 *
 * Drives the CLR hosting memory interface (numaheap/hostmem.h) the way the
 * runtime does, as api/hostmem_driver.c models it:
 *   host/alloc_mixed     IHostMalloc Alloc/Free of 16..4096 B; 7/8 of the
 *                        requests at eTaskCritical, 7/64 at
 *                        eAppDomainCritical, 1/64 at eProcessCritical; each
 *                        thread keeps NHB_HOST_SLOTS live blocks and replaces
 *                        a random one per iteration. 1, 2, 4 threads.
 *   host/virtual_commit  a GC segment per thread (server GC: one heap per
 *                        core): VirtualAlloc(MEM_RESERVE|MEM_WRITE_WATCH) of
 *                        64 MiB once, then MEM_COMMIT of 64 KiB..1 MiB chunks
 *                        at a bump pointer, each page of a chunk written, and
 *                        MEM_DECOMMIT of the oldest chunks once more than
 *                        NHB_HOST_WINDOW is committed; at the segment's end
 *                        the rest is decommitted in one call ("a collection")
 *                        and the pointer starts over. 1, 2, 4 threads.
 *   host/load_poll       GetMemoryLoad, as the GC polls it. 1, 2, 4 threads.
 *
 * nh_bench does not link numaheap. When the live allocator exports
 * NhCreateHostMemoryManager (numaheap preloaded), the workloads call
 * numaheap's IHostMemoryManager and the IHostMalloc from its
 * CreateMalloc(MALLOC_THREADSAFE). Otherwise they call the "plain" host
 * below: what a host without numaheap would hand the runtime, with the same
 * signatures, argument checks and Win32 semantics for what the workloads use:
 *   Alloc/Free      malloc/free of the live allocator (so under jemalloc,
 *                   mimalloc ... the peer columns are those mallocs); the
 *                   criticality is checked and then ignored: a plain host
 *                   has no budget to apply it to;
 *   VirtualAlloc    reserve: an mmap(PROT_NONE, MAP_NORESERVE) trimmed to a
 *                   64 KiB boundary, remembered in a small table; commit:
 *                   mprotect(PROT_READ|PROT_WRITE) (pages arrive on first
 *                   touch, on whatever node the kernel picks);
 *   VirtualFree     decommit: madvise(MADV_DONTNEED) then mprotect(PROT_NONE);
 *                   release: munmap of the whole reservation;
 *   GetMemoryLoad   sysinfo(2), no /proc read: available = free RAM (what
 *                   sysconf(_SC_AVPHYS_PAGES) gives), load = used * 100 /
 *                   total RAM.
 * Both hosts are called through a function pointer with the vtable's
 * signature, so each call costs one indirect call either way. The report
 * context's "host_api" says which host ran. No memory notification callback
 * is registered (it would start numaheap's notifier thread, which the plain
 * host has no counterpart for). The harness makes its own mmap calls here,
 * for the plain host; the rule that OS calls stay in numa/os.c is the
 * library's.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "numaheap/hostmem.h"

#define NHB_HOST_SLOTS 512                     /* live blocks per alloc_mixed thread */
#define NHB_HOST_MIN 16                        /* smallest Alloc */
#define NHB_HOST_MAX 4096                      /* largest Alloc */
#define NHB_HOST_SEGMENT ((size_t)64 << 20)    /* one GC segment's reservation */
#define NHB_HOST_GRAIN ((size_t)64 << 10)      /* commit chunks are 1..16 grains */
#define NHB_HOST_GRAINS_MAX 16                 /* so at most 1 MiB */
#define NHB_HOST_WINDOW ((size_t)8 << 20)      /* committed bytes kept before decommitting */
#define NHB_HOST_RING 256                      /* > WINDOW / GRAIN + 1 chunks in flight */
#define NHB_HOST_ALIGN ((size_t)64 << 10)      /* Win32 allocation granularity */
#define NHB_HOST_PLAIN_RES 64                  /* reservations the plain host tracks */

_Static_assert(NHB_HOST_RING > NHB_HOST_WINDOW / NHB_HOST_GRAIN + 1, "ring holds the window");

/* ---- the host the workloads call ------------------------------------------------ */

typedef HRESULT (*nhb_alloc_fn)(IHostMalloc *, SIZE_T, EMemoryCriticalLevel, void **);
typedef HRESULT (*nhb_free_fn)(IHostMalloc *, void *);
typedef HRESULT (*nhb_valloc_fn)(IHostMemoryManager *, void *, SIZE_T, DWORD, DWORD,
                                 EMemoryCriticalLevel, void **);
typedef HRESULT (*nhb_vfree_fn)(IHostMemoryManager *, LPVOID, SIZE_T, DWORD);
typedef HRESULT (*nhb_load_fn)(IHostMemoryManager *, DWORD *, SIZE_T *);
typedef HRESULT (*nhb_create_fn)(IHostMemoryManager **);

/* The methods the workloads call, with their This; filled once (pthread_once)
 * before any workload loop and read-only afterwards. */
struct nhb_host {
  IHostMalloc *heap;       /* numaheap's IHostMalloc, NULL for the plain host */
  IHostMemoryManager *mgr; /* numaheap's manager, NULL for the plain host */
  nhb_alloc_fn alloc;
  nhb_free_fn free;
  nhb_valloc_fn virtual_alloc;
  nhb_vfree_fn virtual_free;
  nhb_load_fn load;
};

static nhb_create_fn nhb_host_create; /* set at registration; NULL: the plain host */
static struct nhb_host nhb_host_live; /* written under nhb_host_once only */
static HRESULT nhb_host_start_hr;     /* written under nhb_host_once only */
static pthread_once_t nhb_host_once = PTHREAD_ONCE_INIT;

/* ---- the plain host: IHostMalloc ---------------------------------------------------- */

static int nhb_level_ok(EMemoryCriticalLevel level) {
  return level == eTaskCritical || level == eAppDomainCritical || level == eProcessCritical;
}

static HRESULT STDMETHODCALLTYPE nhb_plain_alloc(IHostMalloc *This, SIZE_T cb,
                                                 EMemoryCriticalLevel level, void **pp) {
  (void)This;
  if (pp == NULL) return E_POINTER;
  *pp = NULL;
  if (!nhb_level_ok(level)) return E_INVALIDARG;
  void *p = malloc(cb ? cb : 1); /* 16-byte aligned on x86-64 for every peer */
  if (p == NULL) return E_OUTOFMEMORY;
  *pp = p;
  return S_OK;
}

static HRESULT STDMETHODCALLTYPE nhb_plain_free(IHostMalloc *This, void *p) {
  (void)This;
  free(p); /* a plain host cannot tell a foreign pointer: free(NULL) is S_OK */
  return S_OK;
}

/* ---- the plain host: reservations ---------------------------------------------------- */

struct nhb_plain_res {
  uintptr_t base; /* 0: free slot */
  size_t size;
};
/* Synchronization: nhb_plain_lock (reserve and release only, never in a loop). */
static struct nhb_plain_res nhb_plain_res[NHB_HOST_PLAIN_RES];
static pthread_mutex_t nhb_plain_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t nhb_page(void) { return (size_t)sysconf(_SC_PAGESIZE); }
static uintptr_t nhb_down(uintptr_t a, size_t to) { return a & ~(uintptr_t)(to - 1); }
static uintptr_t nhb_up(uintptr_t a, size_t to) { return nhb_down(a + to - 1, to); }

/* Records a reservation; 0, or -1 when the table is full. */
static int nhb_plain_remember(uintptr_t base, size_t size) {
  int rc = -1;
  pthread_mutex_lock(&nhb_plain_lock);
  for (int i = 0; i < NHB_HOST_PLAIN_RES && rc; i++)
    if (nhb_plain_res[i].base == 0) nhb_plain_res[i] = (struct nhb_plain_res){base, size}, rc = 0;
  pthread_mutex_unlock(&nhb_plain_lock);
  return rc;
}

/* Size of the reservation based at @p base, 0 if none; @p forget drops it. */
static size_t nhb_plain_lookup(uintptr_t base, int forget) {
  size_t size = 0;
  pthread_mutex_lock(&nhb_plain_lock);
  for (int i = 0; i < NHB_HOST_PLAIN_RES && !size; i++) {
    if (nhb_plain_res[i].base != base) continue;
    size = nhb_plain_res[i].size;
    if (forget) nhb_plain_res[i] = (struct nhb_plain_res){0, 0};
  }
  pthread_mutex_unlock(&nhb_plain_lock);
  return size;
}

/* PAGE_* to PROT_*; -1 for what the plain host does not map. */
static int nhb_plain_prot(DWORD protect) {
  switch (protect) {
    case PAGE_NOACCESS: return PROT_NONE;
    case PAGE_READONLY: return PROT_READ;
    case PAGE_READWRITE: return PROT_READ | PROT_WRITE;
    default: return -1;
  }
}

static HRESULT nhb_plain_errno(void) { return errno == ENOMEM ? E_OUTOFMEMORY : E_INVALIDARG; }

/* A PROT_NONE mapping of @p size bytes at a 64 KiB boundary. */
static HRESULT nhb_plain_reserve(SIZE_T size, void **pp) {
  size = nhb_up(size, nhb_page());
  size_t span = size + NHB_HOST_ALIGN - nhb_page();
  char *raw = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return E_OUTOFMEMORY;
  uintptr_t base = nhb_up((uintptr_t)raw, NHB_HOST_ALIGN), end = base + size;
  if (base > (uintptr_t)raw) munmap(raw, base - (uintptr_t)raw);
  if ((uintptr_t)raw + span > end) munmap((void *)end, (uintptr_t)raw + span - end);
  if (nhb_plain_remember(base, size) != 0) {
    munmap((void *)base, size);
    return E_OUTOFMEMORY;
  }
  *pp = (void *)base;
  return S_OK;
}

/* The pages touched by [addr, addr+size) become accessible with @p prot. */
static HRESULT nhb_plain_commit(void *addr, SIZE_T size, int prot, void **pp) {
  uintptr_t s = nhb_down((uintptr_t)addr, nhb_page());
  uintptr_t e = nhb_up((uintptr_t)addr + size, nhb_page());
  if (mprotect((void *)s, e - s, prot) != 0) return nhb_plain_errno();
  *pp = (void *)s;
  return S_OK;
}

/* ---- the plain host: VirtualAlloc, VirtualFree, GetMemoryLoad ------------------------- */

static HRESULT STDMETHODCALLTYPE nhb_plain_virtual_alloc(IHostMemoryManager *This, void *addr,
                                                         SIZE_T size, DWORD type, DWORD protect,
                                                         EMemoryCriticalLevel level, void **pp) {
  (void)This;
  if (pp == NULL) return E_POINTER;
  *pp = NULL;
  int prot = nhb_plain_prot(protect);
  if (prot < 0 || size == 0 || !nhb_level_ok(level)) return E_INVALIDARG;
  if (type & MEM_RESERVE) {
    if (type & ~(DWORD)(MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH | MEM_TOP_DOWN)) return E_INVALIDARG;
    if (addr != NULL) return E_INVALIDARG; /* this host reserves where the OS chooses */
    HRESULT hr = nhb_plain_reserve(size, pp);
    if (hr == S_OK && (type & MEM_COMMIT) && mprotect(*pp, size, prot) != 0) {
      hr = nhb_plain_errno();
      munmap(*pp, nhb_plain_lookup((uintptr_t)*pp, 1));
      *pp = NULL;
    }
    return hr;
  }
  if (type != MEM_COMMIT || addr == NULL) return E_INVALIDARG;
  return nhb_plain_commit(addr, size, prot, pp);
}

static HRESULT nhb_plain_decommit(uintptr_t addr, SIZE_T size) {
  if (size == 0) size = nhb_plain_lookup(addr, 0); /* the whole region, from its base */
  if (size == 0) return HOST_E_INVALIDOPERATION;
  uintptr_t s = nhb_down(addr, nhb_page()), e = nhb_up(addr + size, nhb_page());
  if (madvise((void *)s, e - s, MADV_DONTNEED) != 0) return HOST_E_INVALIDOPERATION;
  if (mprotect((void *)s, e - s, PROT_NONE) != 0) return HOST_E_INVALIDOPERATION;
  return S_OK;
}

static HRESULT STDMETHODCALLTYPE nhb_plain_virtual_free(IHostMemoryManager *This, LPVOID addr,
                                                        SIZE_T size, DWORD type) {
  (void)This;
  if (type == MEM_DECOMMIT) return nhb_plain_decommit((uintptr_t)addr, size);
  if (type != MEM_RELEASE || size != 0) return E_INVALIDARG;
  size_t whole = nhb_plain_lookup((uintptr_t)addr, 1);
  if (whole == 0) return HOST_E_INVALIDOPERATION; /* not the base of a reservation */
  munmap(addr, whole);
  return S_OK;
}

static HRESULT STDMETHODCALLTYPE nhb_plain_load(IHostMemoryManager *This, DWORD *load,
                                                SIZE_T *available) {
  (void)This;
  if (load == NULL || available == NULL) return E_POINTER;
  struct sysinfo si;
  if (sysinfo(&si) != 0 || si.totalram == 0) return E_FAIL;
  uint64_t total = (uint64_t)si.totalram * si.mem_unit;
  uint64_t avail = (uint64_t)si.freeram * si.mem_unit;
  *load = (DWORD)((total - avail) * 100 / total);
  *available = (SIZE_T)avail;
  return S_OK;
}

/* ---- starting the host (once per process) ------------------------------------------------- */

static void nhb_host_start_plain(void) {
  nhb_host_live = (struct nhb_host){NULL,          NULL,
                                    nhb_plain_alloc, nhb_plain_free,
                                    nhb_plain_virtual_alloc, nhb_plain_virtual_free,
                                    nhb_plain_load};
}

/* As the runtime starts: the manager from the host, then CreateMalloc(MALLOC_THREADSAFE). */
static void nhb_host_start_numaheap(void) {
  IHostMemoryManager *mgr = NULL;
  IHostMalloc *heap = NULL;
  HRESULT hr = nhb_host_create(&mgr);
  if (hr == S_OK) hr = IHostMemoryManager_CreateMalloc(mgr, MALLOC_THREADSAFE, &heap);
  nhb_host_start_hr = hr;
  if (hr != S_OK) return;
  nhb_host_live = (struct nhb_host){heap,
                                    mgr,
                                    heap->lpVtbl->Alloc,
                                    heap->lpVtbl->Free,
                                    mgr->lpVtbl->VirtualAlloc,
                                    mgr->lpVtbl->VirtualFree,
                                    mgr->lpVtbl->GetMemoryLoad};
}

static void nhb_host_start(void) {
  if (nhb_host_create) nhb_host_start_numaheap();
  else nhb_host_start_plain();
}

/* Writes "<what> failed: HRESULT 0x..." as the instance's error. */
static void nhb_host_fail(nhb_state *st, const char *what, HRESULT hr) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s failed: HRESULT 0x%08x", what, (unsigned)hr);
  nhb_error(st, msg);
}

/* The started host, or NULL with the instance errored. */
static const struct nhb_host *nhb_host_get(nhb_state *st) {
  if (nhb_check_threads(st)) return NULL;
  pthread_once(&nhb_host_once, nhb_host_start);
  if (nhb_host_start_hr == S_OK) return &nhb_host_live;
  nhb_host_fail(st, "NhCreateHostMemoryManager + CreateMalloc(MALLOC_THREADSAFE)",
                nhb_host_start_hr);
  return NULL;
}

/* ---- host/alloc_mixed ------------------------------------------------------------------------- */

/* One thread's blocks, owned by that thread alone; padded against false sharing. */
struct nhb_host_mixed {
  void *slot[NHB_HOST_SLOTS];
  uint64_t rng;
} __attribute__((aligned(NHB_LINE)));

static struct nhb_host_mixed nhb_host_mixed[NHB_MAX_THREADS];

/* 56/64 task, 7/64 app-domain, 1/64 process critical, from 6 random bits. */
static EMemoryCriticalLevel nhb_host_level(uint64_t bits6) {
  if (bits6 == 0) return eProcessCritical;
  return bits6 < 8 ? eAppDomainCritical : eTaskCritical;
}

/* One Alloc into @p slot, its first and last byte written. S_OK or the failure. */
static HRESULT nhb_host_alloc_one(const struct nhb_host *h, void **slot, uint64_t r) {
  size_t size = NHB_HOST_MIN + (size_t)(r & 0xFFFFFFFFu) % (NHB_HOST_MAX - NHB_HOST_MIN + 1);
  char *p;
  HRESULT hr = h->alloc(h->heap, size, nhb_host_level(r >> 58), (void **)&p);
  if (hr != S_OK) return hr;
  p[0] = 1;
  p[size - 1] = 1;
  *slot = p;
  return S_OK;
}

/* Frees every block of @p me; the first failure, or S_OK. */
static HRESULT nhb_host_free_all(const struct nhb_host *h, struct nhb_host_mixed *me) {
  HRESULT first = S_OK;
  for (int i = 0; i < NHB_HOST_SLOTS; i++) {
    HRESULT hr = h->free(h->heap, me->slot[i]);
    if (first == S_OK) first = hr;
    me->slot[i] = NULL;
  }
  return first;
}

static void nhb_host_alloc_mixed(nhb_state *st) {
  const struct nhb_host *h = nhb_host_get(st);
  if (!h) return;
  int t = nhb_thread_index(st);
  struct nhb_host_mixed *me = &nhb_host_mixed[t];
  me->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1);
  HRESULT hr = S_OK;
  for (int i = 0; i < NHB_HOST_SLOTS && hr == S_OK; i++)
    hr = nhb_host_alloc_one(h, &me->slot[i], nhb_rand(&me->rng));
  if (hr != S_OK) nhb_host_fail(st, "IHostMalloc::Alloc (filling the slots)", hr);
  while (nhb_keep_running(st)) { /* after nhb_host_fail, nhb_keep_running is false */
    uint64_t r = nhb_rand(&me->rng);
    void **slot = &me->slot[(r >> 32) % NHB_HOST_SLOTS];
    hr = h->free(h->heap, *slot);
    if (hr != S_OK) {
      nhb_host_fail(st, "IHostMalloc::Free", hr);
      continue;
    }
    hr = nhb_host_alloc_one(h, slot, r);
    if (hr != S_OK) nhb_host_fail(st, "IHostMalloc::Alloc", hr);
  }
  HRESULT freed = nhb_host_free_all(h, me);
  if (hr == S_OK && freed != S_OK) nhb_host_fail(st, "IHostMalloc::Free (emptying the slots)", freed);
  nhb_set_items(st, nhb_iterations(st));
}

/* ---- host/virtual_commit ------------------------------------------------------------------------ */

/* One thread's GC segment, owned by that thread alone. The committed chunks
 * are [lo, hi) of the segment, oldest first in chunk[tail..head). */
struct nhb_host_gc {
  char *seg;
  size_t lo, hi;
  uint32_t chunk[NHB_HOST_RING]; /* sizes in bytes */
  unsigned head, tail;           /* ring indices, free running */
  uint64_t rng;
  int64_t commits, decommits, collections;
  uint64_t committed_bytes;
} __attribute__((aligned(NHB_LINE)));

static struct nhb_host_gc nhb_host_gc[NHB_MAX_THREADS];

/* "A collection": everything committed is decommitted in one call. */
static HRESULT nhb_host_collect(const struct nhb_host *h, struct nhb_host_gc *g) {
  HRESULT hr = S_OK;
  if (g->hi > g->lo) hr = h->virtual_free(h->mgr, g->seg + g->lo, g->hi - g->lo, MEM_DECOMMIT);
  g->lo = g->hi = 0;
  g->tail = g->head;
  g->collections++;
  return hr;
}

/* Decommits the oldest chunks until at most NHB_HOST_WINDOW stays committed. */
static HRESULT nhb_host_retire(const struct nhb_host *h, struct nhb_host_gc *g) {
  while (g->hi - g->lo > NHB_HOST_WINDOW) {
    size_t size = g->chunk[g->tail++ % NHB_HOST_RING];
    HRESULT hr = h->virtual_free(h->mgr, g->seg + g->lo, size, MEM_DECOMMIT);
    if (hr != S_OK) return hr;
    g->lo += size;
    g->decommits++;
  }
  return S_OK;
}

/* One chunk of 1..16 grains committed at the bump pointer and written. */
static HRESULT nhb_host_commit_one(const struct nhb_host *h, struct nhb_host_gc *g,
                                   const char **what) {
  size_t size = NHB_HOST_GRAIN * (size_t)nhb_rand_range(&g->rng, 1, NHB_HOST_GRAINS_MAX);
  HRESULT hr = S_OK;
  *what = "VirtualFree(MEM_DECOMMIT) of the segment";
  if (g->hi + size > NHB_HOST_SEGMENT) hr = nhb_host_collect(h, g);
  if (hr != S_OK) return hr;
  void *p;
  *what = "VirtualAlloc(MEM_COMMIT)";
  hr = h->virtual_alloc(h->mgr, g->seg + g->hi, size, MEM_COMMIT, PAGE_READWRITE,
                        eAppDomainCritical, &p);
  if (hr != S_OK) return hr;
  if (p != g->seg + g->hi) return E_UNEXPECTED; /* a page-aligned commit comes back as asked */
  nhb_touch(p, size);
  g->chunk[g->head++ % NHB_HOST_RING] = (uint32_t)size;
  g->hi += size;
  g->commits++;
  g->committed_bytes += size;
  *what = "VirtualFree(MEM_DECOMMIT) of a chunk";
  return nhb_host_retire(h, g);
}

static void nhb_host_virtual_commit(nhb_state *st) {
  const struct nhb_host *h = nhb_host_get(st);
  if (!h) return;
  int t = nhb_thread_index(st);
  struct nhb_host_gc *g = &nhb_host_gc[t];
  *g = (struct nhb_host_gc){.rng = 0xD1B54A32D192ED03ULL * (uint64_t)(t + 1)};
  void *seg = NULL;
  const char *what = "VirtualAlloc(MEM_RESERVE|MEM_WRITE_WATCH, 64 MiB)";
  HRESULT hr = h->virtual_alloc(h->mgr, NULL, NHB_HOST_SEGMENT, MEM_RESERVE | MEM_WRITE_WATCH,
                                PAGE_READWRITE, eProcessCritical, &seg);
  g->seg = seg;
  if (hr != S_OK) nhb_host_fail(st, what, hr);
  while (nhb_keep_running(st)) { /* after nhb_host_fail, nhb_keep_running is false */
    hr = nhb_host_commit_one(h, g, &what);
    if (hr != S_OK) nhb_host_fail(st, what, hr);
  }
  if (seg && (hr = h->virtual_free(h->mgr, seg, 0, MEM_RELEASE)) != S_OK)
    nhb_host_fail(st, "VirtualFree(MEM_RELEASE) of the segment", hr);
  nhb_set_items(st, g->commits);
  nhb_counter(st, "commit_bytes", (double)g->committed_bytes, NHB_COUNTER_RATE | NHB_COUNTER_BYTES);
  nhb_counter(st, "decommits", (double)g->decommits, NHB_COUNTER_PLAIN);
  nhb_counter(st, "collections", (double)g->collections, NHB_COUNTER_PLAIN);
}

/* ---- host/load_poll ----------------------------------------------------------------------------- */

static void nhb_host_load_poll(nhb_state *st) {
  const struct nhb_host *h = nhb_host_get(st);
  if (!h) return;
  DWORD load = 0;
  SIZE_T available = 0;
  HRESULT hr = S_OK;
  while (nhb_keep_running(st)) { /* after nhb_host_fail, nhb_keep_running is false */
    hr = h->load(h->mgr, &load, &available);
    if (hr == S_OK && load > 100) hr = E_UNEXPECTED; /* a percentage */
    if (hr != S_OK) nhb_host_fail(st, "GetMemoryLoad", hr);
  }
  nhb_set_items(st, nhb_iterations(st));
  nhb_counter(st, "load_pct", (double)load, NHB_COUNTER_AVG_THREADS);
  nhb_counter(st, "available", (double)available, NHB_COUNTER_AVG_THREADS | NHB_COUNTER_BYTES);
}

/* ---- registration ------------------------------------------------------------------------------- */

void nhb_register_host(void) {
  *(void **)&nhb_host_create = dlsym(RTLD_DEFAULT, "NhCreateHostMemoryManager");
  nhb_add_context("host_api", nhb_host_create
                                  ? "numaheap (NhCreateHostMemoryManager)"
                                  : "plain (malloc/free, mmap/mprotect/madvise, sysinfo)");
  nhb_threads_124(nhb_register("host/alloc_mixed", nhb_host_alloc_mixed));
  nhb_threads_124(nhb_unit_us(nhb_register("host/virtual_commit", nhb_host_virtual_commit)));
  nhb_threads_124(nhb_register("host/load_poll", nhb_host_load_poll));
}
