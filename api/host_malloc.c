/*
 * api/host_malloc.c: the IHostMalloc objects. Two static objects, never
 * destroyed: the ordinary one and the executable one (MALLOC_EXECUTABLE).
 *
 * Alloc goes through nh_alloc_level(size, 16, level): the caller's node
 * within the level's limit, then the nodes the level's spill scope allows by
 * distance, then a reclaim and one retry; the heap calls the pressure hook
 * (host_notify.c) when it had to spill or fail.
 *
 * Executable memory: a block aligned to the OS page whose size is a whole
 * number of pages (so no other block shares its pages), made
 * read-write-execute with nh_os_protect, and made read-write again before
 * it returns to the heap.
 *
 * DebugAlloc: a 16-byte header in front of the caller's bytes names the
 * site (host_debug.c) and carries a check word (block address ^ a secret ^
 * site), so Free recognises a DebugAlloc pointer (an interior pointer at
 * offset 16 of a live block with a valid header) without any table lookup
 * on the ordinary path. The block is always larger than the header plus one
 * byte, so the caller's pointer is never the start of the next block.
 */
#include <stdint.h>

#include "api/host_internal.h"
#include "api/internal.h"
#include "numa/os.h"

#define DEBUG_HEADER 16

typedef struct host_malloc {
  IHostMalloc iface; /* first: the COM pointer is the object */
  bool executable;   /* constant */
} host_malloc;

static bool is_exec(IHostMalloc *This) { return ((host_malloc *)This)->executable; }

/* ---- executable blocks ---------------------------------------------------------- */

/* Pages of the block at p: its usable size rounded down to the OS page. */
static size_t block_pages_bytes(void *p) {
  nh_block_info info;
  if (nh_block_lookup(p, &info) != NH_LOOKUP_OK) return 0;
  return info.size & ~(nh_os_page_size() - 1);
}

static void *exec_alloc(size_t size, int level) {
  size_t page = nh_os_page_size();
  if (size == 0) size = 1;
  if (size > PTRDIFF_MAX - page) return NULL;
  size = (size + page - 1) & ~(page - 1);
  void *p = nh_alloc_level(size, page, level);
  if (p == NULL) return NULL;
  if (nh_os_protect(p, block_pages_bytes(p), NH_OS_PROT_READ | NH_OS_PROT_WRITE | NH_OS_PROT_EXEC)) {
    nh_free_checked(p);
    return NULL;
  }
  return p;
}

/* Makes an executable block plain read-write again (before it is freed). */
static void exec_unprotect(void *base) {
  if (((uintptr_t)base & (nh_os_page_size() - 1)) != 0) return; /* not an executable block */
  nh_os_protect(base, block_pages_bytes(base), NH_OS_PROT_READ | NH_OS_PROT_WRITE);
}

static void *block_alloc(bool exec, size_t size, int level) {
  return exec ? exec_alloc(size, level) : nh_alloc_level(size, NH_MIN_ALIGN, level);
}

/* Frees a block the caller found live (NH_LOOKUP_OK). */
static HRESULT block_free(bool exec, void *base) {
  if (exec) exec_unprotect(base);
  return nh_free_checked(base) == NH_LOOKUP_OK ? S_OK : HOST_E_INVALIDOPERATION;
}

/* ---- DebugAlloc headers ------------------------------------------------------------- */

/* Synchronization: atomic; set once (CAS from 0), relaxed: any non-zero value works. */
static _Atomic uintptr_t debug_secret;

static uintptr_t debug_key(void) {
  uintptr_t k = atomic_load_explicit(&debug_secret, memory_order_relaxed);
  if (k) return k;
  uintptr_t fresh = 0;
  while (fresh == 0) nh_os_random(&fresh, sizeof fresh);
  uintptr_t expected = 0;
  if (atomic_compare_exchange_strong_explicit(&debug_secret, &expected, fresh,
                                              memory_order_relaxed, memory_order_relaxed))
    return fresh;
  return expected;
}

static uintptr_t header_check(const void *base, uintptr_t site) {
  return (uintptr_t)base ^ debug_key() ^ (site * 0x9E3779B97F4A7C15u);
}

/* Usable bytes the caller sees in the DebugAlloc block at base. */
static int64_t debug_bytes(void *base) {
  nh_block_info info;
  return nh_block_lookup(base, &info) == NH_LOOKUP_OK ? (int64_t)info.size - DEBUG_HEADER : 0;
}

/* Frees the DebugAlloc block whose caller pointer is p, if it is one. */
static HRESULT debug_free(bool exec, void *p) {
  uint8_t *base = (uint8_t *)p - DEBUG_HEADER;
  nh_block_info info;
  if ((uintptr_t)p < DEBUG_HEADER || nh_block_lookup(base, &info) != NH_LOOKUP_OK)
    return HOST_E_INVALIDOPERATION;
  uintptr_t *h = (uintptr_t *)base;
  if (h[1] != header_check(base, h[0])) return HOST_E_INVALIDOPERATION;
  nh_host_site_add((int)h[0], -1, -debug_bytes(base));
  h[1] = 0;
  return block_free(exec, base);
}

/* ---- IHostMalloc methods ------------------------------------------------------------------ */

static HRESULT check_alloc(EMemoryCriticalLevel level, void **ppMem) {
  if (ppMem == NULL) return E_POINTER;
  *ppMem = NULL;
  return nh_host_level_ok(level) ? S_OK : E_INVALIDARG;
}

static HRESULT STDMETHODCALLTYPE hm_alloc(IHostMalloc *This, SIZE_T cbSize,
                                          EMemoryCriticalLevel level, void **ppMem) {
  HRESULT hr = check_alloc(level, ppMem);
  if (hr != S_OK) return hr;
  void *p = block_alloc(is_exec(This), cbSize, (int)level);
  if (p == NULL) return E_OUTOFMEMORY;
  *ppMem = p;
  return S_OK;
}

static HRESULT STDMETHODCALLTYPE hm_debug_alloc(IHostMalloc *This, SIZE_T cbSize,
                                                EMemoryCriticalLevel level, char *pszFileName,
                                                int iLineNo, void **ppMem) {
  HRESULT hr = check_alloc(level, ppMem);
  if (hr != S_OK) return hr;
  if (cbSize > PTRDIFF_MAX - 2 * DEBUG_HEADER) return E_OUTOFMEMORY;
  uint8_t *base = block_alloc(is_exec(This), (cbSize ? cbSize : 1) + DEBUG_HEADER, (int)level);
  if (base == NULL) return E_OUTOFMEMORY;
  int site = nh_host_site_get(pszFileName ? pszFileName : "(no file)", iLineNo);
  uintptr_t *h = (uintptr_t *)base;
  h[0] = (uintptr_t)site;
  h[1] = header_check(base, h[0]);
  nh_host_site_add(site, 1, debug_bytes(base));
  *ppMem = base + DEBUG_HEADER;
  return S_OK;
}

static HRESULT STDMETHODCALLTYPE hm_free(IHostMalloc *This, void *pMem) {
  if (pMem == NULL) return S_OK;
  if (!nh_ready()) return HOST_E_INVALIDOPERATION;
  nh_block_info info;
  nh_lookup_status st = nh_block_lookup(pMem, &info);
  if (st == NH_LOOKUP_INTERIOR) return debug_free(is_exec(This), pMem);
  if (st != NH_LOOKUP_OK) return HOST_E_INVALIDOPERATION;
  return block_free(is_exec(This), pMem);
}

/* ---- IUnknown --------------------------------------------------------------------------- */

/* Synchronization: atomic, relaxed (counts; the objects are never freed). */
static _Atomic ULONG malloc_refs[2];

static ULONG STDMETHODCALLTYPE hm_add_ref(IHostMalloc *This) {
  return atomic_fetch_add_explicit(&malloc_refs[is_exec(This)], 1, memory_order_relaxed) + 1;
}

static ULONG STDMETHODCALLTYPE hm_release(IHostMalloc *This) {
  _Atomic ULONG *c = &malloc_refs[is_exec(This)];
  ULONG n = atomic_load_explicit(c, memory_order_relaxed);
  while (n > 0 && !atomic_compare_exchange_weak_explicit(c, &n, n - 1, memory_order_relaxed,
                                                         memory_order_relaxed)) {
  }
  return n > 0 ? n - 1 : 0;
}

static HRESULT STDMETHODCALLTYPE hm_query_interface(IHostMalloc *This, REFIID riid, void **ppv) {
  if (ppv == NULL) return E_POINTER;
  *ppv = NULL;
  if (riid == NULL) return E_POINTER;
  if (!nh_host_iid_equal(riid, &IID_IUnknown) && !nh_host_iid_equal(riid, &IID_IHostMalloc))
    return E_NOINTERFACE;
  hm_add_ref(This);
  *ppv = This;
  return S_OK;
}

static const IHostMallocVtbl malloc_vtbl = {
    hm_query_interface, hm_add_ref, hm_release, hm_alloc, hm_debug_alloc, hm_free,
};

static host_malloc mallocs[2] = {{{&malloc_vtbl}, false}, {{&malloc_vtbl}, true}};

IHostMalloc *nh_host_malloc_get(bool executable) { return &mallocs[executable].iface; }
