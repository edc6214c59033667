/*
 * api/host_manager.c: the process's IHostMemoryManager. One static object,
 * reference counted for the COM contract but never destroyed (the runtime
 * never releases host managers, and a late call must still find it).
 * Also: the IIDs, CreateMalloc, GetMemoryLoad, and the address-space
 * methods (NeedsVirtualAddressSpace, Acquired/ReleasedVirtualAddressSpace).
 */
#include <string.h>

#include "api/host_internal.h"
#include "api/internal.h"
#include "numa/lock.h"
#include "numa/os.h"
#include "percpu/cache.h"

NH_API const IID IID_IUnknown = {0x00000000, 0x0000, 0x0000,
                                 {0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46}};
NH_API const IID IID_IHostMalloc = {0x1831991C, 0xCC53, 0x4A31,
                                    {0xB2, 0x18, 0x04, 0xE9, 0x10, 0x44, 0x64, 0x79}};
NH_API const IID IID_IHostMemoryManager = {0x7BC698D1, 0xF9E3, 0x4460,
                                           {0x9C, 0xDE, 0xD0, 0x42, 0x48, 0xE9, 0xFA, 0x25}};
NH_API const IID IID_ICLRMemoryNotificationCallback = {
    0x47EB8E57, 0x0846, 0x4546, {0xAF, 0x76, 0x6F, 0x42, 0xFC, 0xFC, 0x26, 0x49}};

bool nh_host_iid_equal(REFIID iid, const IID *want) {
  return memcmp(iid, want, sizeof *want) == 0;
}

/* ---- IUnknown ----------------------------------------------------------------------- */

/* Synchronization: atomic, relaxed (a count; the object is never freed). */
static _Atomic ULONG manager_refs;

static HRESULT STDMETHODCALLTYPE mgr_query_interface(IHostMemoryManager *This, REFIID riid,
                                                     void **ppv) {
  if (ppv == NULL) return E_POINTER;
  *ppv = NULL;
  if (riid == NULL) return E_POINTER;
  if (!nh_host_iid_equal(riid, &IID_IUnknown) && !nh_host_iid_equal(riid, &IID_IHostMemoryManager))
    return E_NOINTERFACE;
  atomic_fetch_add_explicit(&manager_refs, 1, memory_order_relaxed);
  *ppv = This;
  return S_OK;
}

static ULONG STDMETHODCALLTYPE mgr_add_ref(IHostMemoryManager *This) {
  return atomic_fetch_add_explicit(&manager_refs, 1, memory_order_relaxed) + 1;
}

/* Never below zero: a Release too many is the caller's bug, not a wrap-around. */
static ULONG STDMETHODCALLTYPE mgr_release(IHostMemoryManager *This) {
  ULONG n = atomic_load_explicit(&manager_refs, memory_order_relaxed);
  while (n > 0 && !atomic_compare_exchange_weak_explicit(&manager_refs, &n, n - 1,
                                                         memory_order_relaxed, memory_order_relaxed)) {
  }
  return n > 0 ? n - 1 : 0;
}

/* ---- CreateMalloc ------------------------------------------------------------------------ */

static HRESULT STDMETHODCALLTYPE mgr_create_malloc(IHostMemoryManager *This, DWORD type,
                                                   IHostMalloc **ppMalloc) {
  if (ppMalloc == NULL) return E_POINTER;
  *ppMalloc = NULL;
  if (type & ~(DWORD)(MALLOC_THREADSAFE | MALLOC_EXECUTABLE)) return E_INVALIDARG;
  /* Every IHostMalloc of numaheap is thread-safe: MALLOC_THREADSAFE costs nothing. */
  IHostMalloc *m = nh_host_malloc_get((type & MALLOC_EXECUTABLE) != 0);
  IHostMalloc_AddRef(m);
  *ppMalloc = m;
  return S_OK;
}

/* ---- Virtual* (host_virtual.c) ------------------------------------------------------------- */

static HRESULT STDMETHODCALLTYPE mgr_virtual_alloc(IHostMemoryManager *This, void *pAddress,
                                                   SIZE_T dwSize, DWORD flAllocationType,
                                                   DWORD flProtect, EMemoryCriticalLevel level,
                                                   void **ppMem) {
  return nh_host_virtual_alloc(pAddress, dwSize, flAllocationType, flProtect, level, ppMem);
}

static HRESULT STDMETHODCALLTYPE mgr_virtual_free(IHostMemoryManager *This, LPVOID lpAddress,
                                                  SIZE_T dwSize, DWORD dwFreeType) {
  return nh_host_virtual_free(lpAddress, dwSize, dwFreeType);
}

static HRESULT STDMETHODCALLTYPE mgr_virtual_query(IHostMemoryManager *This, void *lpAddress,
                                                   void *lpBuffer, SIZE_T dwLength,
                                                   SIZE_T *pResult) {
  return nh_host_virtual_query(lpAddress, lpBuffer, dwLength, pResult);
}

static HRESULT STDMETHODCALLTYPE mgr_virtual_protect(IHostMemoryManager *This, void *lpAddress,
                                                     SIZE_T dwSize, DWORD flNewProtect,
                                                     DWORD *pflOldProtect) {
  return nh_host_virtual_protect(lpAddress, dwSize, flNewProtect, pflOldProtect);
}

/* ---- load and notifications (host_notify.c) --------------------------------------------------- */

static HRESULT STDMETHODCALLTYPE mgr_get_memory_load(IHostMemoryManager *This, DWORD *pLoad,
                                                     SIZE_T *pAvailable) {
  if (pLoad == NULL || pAvailable == NULL) return E_POINTER;
  nh_host_load(pLoad, pAvailable);
  return S_OK;
}

static HRESULT STDMETHODCALLTYPE mgr_register_callback(IHostMemoryManager *This,
                                                       ICLRMemoryNotificationCallback *cb) {
  return nh_host_notify_register(cb);
}

/* ---- address space ---------------------------------------------------------------------------- */

/* Bytes released to the OS so far, over all nodes. */
static uint64_t purged_total(void) {
  uint64_t sum = 0;
  for (int i = 0; i < nh_g.nnodes; i++)
    sum += atomic_load_explicit(&nh_g.heap[i].st.purged, memory_order_relaxed);
  return sum;
}

/* A file mapping failed: give back what the caches and empty pages hold.
 * S_OK asks the runtime to retry; E_OUTOFMEMORY says nothing was released. */
static HRESULT STDMETHODCALLTYPE mgr_needs_vas(IHostMemoryManager *This, LPVOID start,
                                               SIZE_T size) {
  uint64_t before = purged_total();
  nh_trim();
  return purged_total() > before ? S_OK : E_OUTOFMEMORY;
}

/* Views the runtime mapped itself. A fixed table: the runtime keeps few views. */
#define VAS_MAX 1024
typedef struct vas_view {
  uintptr_t start;
  uint64_t size;
} vas_view;
static nh_lock vas_lock;
static vas_view *vas_table; /* Guarded by vas_lock: [VAS_MAX], from nh_os_meta_alloc */
static uint32_t vas_count;  /* Guarded by vas_lock */
/* Synchronization: atomic, relaxed (read by statistics). */
static _Atomic uint64_t vas_bytes;
static _Atomic uint32_t vas_views;

uint64_t nh_host_vas_bytes(void) { return atomic_load_explicit(&vas_bytes, memory_order_relaxed); }
uint32_t nh_host_vas_views(void) { return atomic_load_explicit(&vas_views, memory_order_relaxed); }

static HRESULT STDMETHODCALLTYPE mgr_acquired_vas(IHostMemoryManager *This, LPVOID start,
                                                  SIZE_T size) {
  if (start == NULL) return E_INVALIDARG;
  HRESULT hr = E_OUTOFMEMORY;
  nh_lock_acquire(&vas_lock);
  if (vas_table == NULL) vas_table = nh_os_meta_alloc(sizeof(vas_view) * VAS_MAX);
  if (vas_table && vas_count < VAS_MAX) {
    vas_table[vas_count++] = (vas_view){(uintptr_t)start, size};
    atomic_fetch_add_explicit(&vas_bytes, size, memory_order_relaxed);
    atomic_fetch_add_explicit(&vas_views, 1, memory_order_relaxed);
    hr = S_OK;
  }
  nh_lock_release(&vas_lock);
  return hr;
}

static HRESULT STDMETHODCALLTYPE mgr_released_vas(IHostMemoryManager *This, LPVOID start) {
  HRESULT hr = HOST_E_INVALIDOPERATION;
  nh_lock_acquire(&vas_lock);
  for (uint32_t i = 0; i < vas_count; i++) {
    if (vas_table[i].start != (uintptr_t)start) continue;
    atomic_fetch_sub_explicit(&vas_bytes, vas_table[i].size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&vas_views, 1, memory_order_relaxed);
    vas_table[i] = vas_table[--vas_count];
    hr = S_OK;
    break;
  }
  nh_lock_release(&vas_lock);
  return hr;
}

/* ---- the object --------------------------------------------------------------------------- */

static const IHostMemoryManagerVtbl manager_vtbl = {
    mgr_query_interface,   mgr_add_ref,         mgr_release,
    mgr_create_malloc,     mgr_virtual_alloc,   mgr_virtual_free,
    mgr_virtual_query,     mgr_virtual_protect, mgr_get_memory_load,
    mgr_register_callback, mgr_needs_vas,       mgr_acquired_vas,
    mgr_released_vas,
};

static IHostMemoryManager manager = {&manager_vtbl};
/* Synchronization: atomic, relaxed (a flag read by statistics). */
static _Atomic int manager_created;

bool nh_host_manager_created(void) {
  return atomic_load_explicit(&manager_created, memory_order_relaxed) != 0;
}

NH_API HRESULT NhCreateHostMemoryManager(IHostMemoryManager **ppManager) {
  if (ppManager == NULL) return E_POINTER;
  *ppManager = NULL;
  if (!nh_start()) return E_UNEXPECTED; /* called by numaheap's own start-up: cannot serve yet */
  nh_host_notify_install();
  nh_heaps_precommit_reserves(); /* a hosted runtime counts on the reserve being there */
  atomic_store_explicit(&manager_created, 1, memory_order_relaxed);
  IHostMemoryManager_AddRef(&manager);
  *ppManager = &manager;
  return S_OK;
}
