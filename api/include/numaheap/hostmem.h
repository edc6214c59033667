/**
 * @file hostmem.h
 * @brief The CLR hosting memory interfaces in plain C, and
 * NhCreateHostMemoryManager.
 *
 * numaheap/hostmem.h: the CLR hosting memory interfaces in plain C.
 *
 * numaheap implements IHostMemoryManager and IHostMalloc so that a CLR host
 * can hand them to the runtime from IHostControl::GetHostManager (see
 * docs/hosting.md). This header declares, with the names, numbers, slot
 * order and IIDs of mscoree.h and corerror.h:
 *   - the Win32/COM types the interfaces use (DWORD, HRESULT, ULONG are 32
 *     bits, SIZE_T is size_t), GUID/IID, MEMORY_BASIC_INFORMATION;
 *   - IUnknown, IHostMalloc, IHostMemoryManager, ICLRMemoryNotificationCallback
 *     as C structs whose first member is lpVtbl, with call macros
 *     (IHostMalloc_Alloc(This, ...)) as COBJMACROS gives them;
 *   - the enums, PAGE_* and MEM_* constants and HRESULT values.
 * Every group is guarded, so that a host that already has the Windows or
 * mscoree declarations (winelib, PAL headers) keeps its own.
 *
 * Error convention: every method returns an HRESULT; success is exactly S_OK
 * (the runtime reads anything else, S_FALSE included, as failure). Out
 * pointers are set to NULL on every failure.
 */
#ifndef NUMAHEAP_HOSTMEM_H
#define NUMAHEAP_HOSTMEM_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/numaheap.h" /* NH_API */

#ifdef __cplusplus
#define NH_HOSTMEM_ASSERT(c, m) static_assert(c, m)
extern "C" {
#else
#define NH_HOSTMEM_ASSERT(c, m) _Static_assert(c, m)
#endif

/* ---- Win32 base types ----------------------------------------------------- */
#if !defined(_WINDEF_) && !defined(_WINDEF_H) && !defined(NH_HOSTMEM_HAVE_WINDEF)
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef size_t SIZE_T;
typedef void *LPVOID;
#endif
#ifndef _HRESULT_DEFINED
#define _HRESULT_DEFINED
typedef int32_t HRESULT;
#endif
#ifndef STDMETHODCALLTYPE
#define STDMETHODCALLTYPE /* the SysV ABI: no calling-convention attribute */
#endif

#ifndef GUID_DEFINED
#define GUID_DEFINED
typedef struct _GUID {
  uint32_t Data1;
  uint16_t Data2;
  uint16_t Data3;
  uint8_t Data4[8];
} GUID;
NH_HOSTMEM_ASSERT(sizeof(GUID) == 16, "GUID is 16 bytes");
#endif
#ifndef __IID_DEFINED__
#define __IID_DEFINED__
typedef GUID IID;
#endif
#ifndef _REFIID_DEFINED
#define _REFIID_DEFINED
#define REFIID const IID *
#endif

/* ---- HRESULT values (winerror.h, corerror.h) -------------------------------- */
#ifndef S_OK
#define S_OK ((HRESULT)0x00000000)
#endif
#ifndef S_FALSE
#define S_FALSE ((HRESULT)0x00000001)
#endif
#ifndef E_NOTIMPL
#define E_NOTIMPL ((HRESULT)0x80004001)
#endif
#ifndef E_NOINTERFACE
#define E_NOINTERFACE ((HRESULT)0x80004002)
#endif
#ifndef E_POINTER
#define E_POINTER ((HRESULT)0x80004003)
#endif
#ifndef E_FAIL
#define E_FAIL ((HRESULT)0x80004005)
#endif
#ifndef E_UNEXPECTED
#define E_UNEXPECTED ((HRESULT)0x8000FFFF)
#endif
#ifndef E_ACCESSDENIED
#define E_ACCESSDENIED ((HRESULT)0x80070005)
#endif
#ifndef E_OUTOFMEMORY
#define E_OUTOFMEMORY ((HRESULT)0x8007000E)
#endif
#ifndef E_INVALIDARG
#define E_INVALIDARG ((HRESULT)0x80070057)
#endif
#ifndef HOST_E_DEADLOCK
#define HOST_E_DEADLOCK ((HRESULT)0x80131020)
#endif
#ifndef HOST_E_INTERRUPTED
#define HOST_E_INTERRUPTED ((HRESULT)0x80131021)
#endif
#ifndef HOST_E_INVALIDOPERATION
#define HOST_E_INVALIDOPERATION ((HRESULT)0x80131022)
#endif
#ifndef HOST_E_CLRNOTAVAILABLE
#define HOST_E_CLRNOTAVAILABLE ((HRESULT)0x80131023)
#endif
#ifndef HOST_E_TIMEOUT
#define HOST_E_TIMEOUT ((HRESULT)0x80131024)
#endif
#ifndef HOST_E_NOT_OWNER
#define HOST_E_NOT_OWNER ((HRESULT)0x80131025)
#endif
#ifndef HOST_E_ABANDONED
#define HOST_E_ABANDONED ((HRESULT)0x80131026)
#endif
#ifndef ERROR_INVALID_ADDRESS
#define ERROR_INVALID_ADDRESS 487L
#endif
#ifndef HRESULT_FROM_WIN32
#define HRESULT_FROM_WIN32(x) \
  ((HRESULT)(x) <= 0 ? (HRESULT)(x) : (HRESULT)(((uint32_t)(x)&0x0000FFFFu) | 0x80070000u))
#endif
#ifndef SUCCEEDED
#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#endif
#ifndef FAILED
#define FAILED(hr) (((HRESULT)(hr)) < 0)
#endif

/* ---- Win32 memory constants and MEMORY_BASIC_INFORMATION -------------------- */
#ifndef PAGE_NOACCESS
#define PAGE_NOACCESS 0x01
#endif
#ifndef PAGE_READONLY
#define PAGE_READONLY 0x02
#endif
#ifndef PAGE_READWRITE
#define PAGE_READWRITE 0x04
#endif
#ifndef PAGE_EXECUTE
#define PAGE_EXECUTE 0x10
#endif
#ifndef PAGE_EXECUTE_READ
#define PAGE_EXECUTE_READ 0x20
#endif
#ifndef PAGE_EXECUTE_READWRITE
#define PAGE_EXECUTE_READWRITE 0x40
#endif
#ifndef MEM_COMMIT
#define MEM_COMMIT 0x00001000
#endif
#ifndef MEM_RESERVE
#define MEM_RESERVE 0x00002000
#endif
#ifndef MEM_DECOMMIT
#define MEM_DECOMMIT 0x00004000
#endif
#ifndef MEM_RELEASE
#define MEM_RELEASE 0x00008000
#endif
#ifndef MEM_FREE
#define MEM_FREE 0x00010000
#endif
#ifndef MEM_PRIVATE
#define MEM_PRIVATE 0x00020000
#endif
#ifndef MEM_MAPPED
#define MEM_MAPPED 0x00040000
#endif
#ifndef MEM_RESET
#define MEM_RESET 0x00080000
#endif
#ifndef MEM_TOP_DOWN
#define MEM_TOP_DOWN 0x00100000
#endif
#ifndef MEM_WRITE_WATCH
#define MEM_WRITE_WATCH 0x00200000
#endif
/* With MEM_RESERVE | MEM_COMMIT: memory on 2 MiB pages of the caller's node
 * (the GC's large-pages mode). Size and address are multiples of 2 MiB (the
 * large-page minimum on x86-64); the region is committed and faulted in
 * whole, and can be released but not decommitted (docs/hosting.md). */
#ifndef MEM_LARGE_PAGES
#define MEM_LARGE_PAGES 0x20000000
#endif

#if !defined(_WINNT_) && !defined(NH_HOSTMEM_HAVE_WINNT)
typedef struct _MEMORY_BASIC_INFORMATION {
  void *BaseAddress;       /* the page holding the queried address */
  void *AllocationBase;    /* base of the reservation (NULL for MEM_FREE) */
  DWORD AllocationProtect; /* PAGE_* given when the region was reserved */
  SIZE_T RegionSize;       /* bytes from BaseAddress with the same state */
  DWORD State;             /* MEM_COMMIT, MEM_RESERVE or MEM_FREE */
  DWORD Protect;           /* PAGE_* of committed pages, 0 otherwise */
  DWORD Type;              /* MEM_PRIVATE (0 for MEM_FREE) */
} MEMORY_BASIC_INFORMATION, *PMEMORY_BASIC_INFORMATION;
NH_HOSTMEM_ASSERT(offsetof(MEMORY_BASIC_INFORMATION, BaseAddress) == 0, "MBI layout");
NH_HOSTMEM_ASSERT(offsetof(MEMORY_BASIC_INFORMATION, AllocationBase) == sizeof(void *), "MBI layout");
NH_HOSTMEM_ASSERT(offsetof(MEMORY_BASIC_INFORMATION, AllocationProtect) == 2 * sizeof(void *),
                  "MBI layout");
NH_HOSTMEM_ASSERT(offsetof(MEMORY_BASIC_INFORMATION, RegionSize) == 3 * sizeof(void *), "MBI layout");
NH_HOSTMEM_ASSERT(offsetof(MEMORY_BASIC_INFORMATION, State) == 4 * sizeof(void *), "MBI layout");
NH_HOSTMEM_ASSERT(offsetof(MEMORY_BASIC_INFORMATION, Protect) == 4 * sizeof(void *) + 4, "MBI layout");
NH_HOSTMEM_ASSERT(offsetof(MEMORY_BASIC_INFORMATION, Type) == 4 * sizeof(void *) + 8, "MBI layout");
NH_HOSTMEM_ASSERT(sizeof(void *) != 8 || sizeof(MEMORY_BASIC_INFORMATION) == 48, "MBI is 48 bytes on LP64");
#endif

/* ---- mscoree.h enums ---------------------------------------------------------- */
#ifndef __mscoree_h__
typedef enum EMemoryCriticalLevel {
  eTaskCritical = 0,
  eAppDomainCritical = 1,
  eProcessCritical = 2
} EMemoryCriticalLevel;

typedef enum MALLOC_TYPE { MALLOC_THREADSAFE = 0x1, MALLOC_EXECUTABLE = 0x2 } MALLOC_TYPE;

typedef enum EMemoryAvailable {
  eMemoryAvailableLow = 1,
  eMemoryAvailableNeutral = 2,
  eMemoryAvailableHigh = 3
} EMemoryAvailable;
#endif
NH_HOSTMEM_ASSERT(sizeof(EMemoryCriticalLevel) == 4 && sizeof(EMemoryAvailable) == 4,
                  "MIDL enums are 32-bit");

/* Slot k of a vtable is at k * sizeof(void *). */
#define NH_HOSTMEM_SLOT(vtbl, method, k)                                   \
  NH_HOSTMEM_ASSERT(offsetof(vtbl, method) == (k) * sizeof(void *), \
                    #vtbl "." #method " is slot " #k)

/* ---- IUnknown ------------------------------------------------------------------ */
#ifndef __IUnknown_INTERFACE_DEFINED__
#define __IUnknown_INTERFACE_DEFINED__
typedef struct IUnknown IUnknown;
typedef struct IUnknownVtbl {
  HRESULT(STDMETHODCALLTYPE *QueryInterface)(IUnknown *This, REFIID riid, void **ppvObject);
  ULONG(STDMETHODCALLTYPE *AddRef)(IUnknown *This);
  ULONG(STDMETHODCALLTYPE *Release)(IUnknown *This);
} IUnknownVtbl;
struct IUnknown {
  const struct IUnknownVtbl *lpVtbl;
};
NH_HOSTMEM_SLOT(IUnknownVtbl, QueryInterface, 0);
NH_HOSTMEM_SLOT(IUnknownVtbl, AddRef, 1);
NH_HOSTMEM_SLOT(IUnknownVtbl, Release, 2);
#define IUnknown_QueryInterface(This, riid, ppvObject) \
  ((This)->lpVtbl->QueryInterface(This, riid, ppvObject))
#define IUnknown_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define IUnknown_Release(This) ((This)->lpVtbl->Release(This))
#endif

/* ---- IHostMalloc ------------------------------------------------------------------ */
#ifndef __IHostMalloc_INTERFACE_DEFINED__
#define __IHostMalloc_INTERFACE_DEFINED__
typedef struct IHostMalloc IHostMalloc;
typedef struct IHostMallocVtbl {
  HRESULT(STDMETHODCALLTYPE *QueryInterface)(IHostMalloc *This, REFIID riid, void **ppvObject);
  ULONG(STDMETHODCALLTYPE *AddRef)(IHostMalloc *This);
  ULONG(STDMETHODCALLTYPE *Release)(IHostMalloc *This);
  HRESULT(STDMETHODCALLTYPE *Alloc)(IHostMalloc *This, SIZE_T cbSize,
                                    EMemoryCriticalLevel eCriticalLevel, void **ppMem);
  HRESULT(STDMETHODCALLTYPE *DebugAlloc)(IHostMalloc *This, SIZE_T cbSize,
                                         EMemoryCriticalLevel eCriticalLevel, char *pszFileName,
                                         int iLineNo, void **ppMem);
  HRESULT(STDMETHODCALLTYPE *Free)(IHostMalloc *This, void *pMem);
} IHostMallocVtbl;
struct IHostMalloc {
  const struct IHostMallocVtbl *lpVtbl;
};
NH_HOSTMEM_SLOT(IHostMallocVtbl, QueryInterface, 0);
NH_HOSTMEM_SLOT(IHostMallocVtbl, AddRef, 1);
NH_HOSTMEM_SLOT(IHostMallocVtbl, Release, 2);
NH_HOSTMEM_SLOT(IHostMallocVtbl, Alloc, 3);
NH_HOSTMEM_SLOT(IHostMallocVtbl, DebugAlloc, 4);
NH_HOSTMEM_SLOT(IHostMallocVtbl, Free, 5);
#define IHostMalloc_QueryInterface(This, riid, ppvObject) \
  ((This)->lpVtbl->QueryInterface(This, riid, ppvObject))
#define IHostMalloc_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define IHostMalloc_Release(This) ((This)->lpVtbl->Release(This))
#define IHostMalloc_Alloc(This, cbSize, eCriticalLevel, ppMem) \
  ((This)->lpVtbl->Alloc(This, cbSize, eCriticalLevel, ppMem))
#define IHostMalloc_DebugAlloc(This, cbSize, eCriticalLevel, pszFileName, iLineNo, ppMem) \
  ((This)->lpVtbl->DebugAlloc(This, cbSize, eCriticalLevel, pszFileName, iLineNo, ppMem))
#define IHostMalloc_Free(This, pMem) ((This)->lpVtbl->Free(This, pMem))
#endif

/* ---- ICLRMemoryNotificationCallback (implemented by the runtime) ---------------------- */
#ifndef __ICLRMemoryNotificationCallback_INTERFACE_DEFINED__
#define __ICLRMemoryNotificationCallback_INTERFACE_DEFINED__
typedef struct ICLRMemoryNotificationCallback ICLRMemoryNotificationCallback;
typedef struct ICLRMemoryNotificationCallbackVtbl {
  HRESULT(STDMETHODCALLTYPE *QueryInterface)(ICLRMemoryNotificationCallback *This, REFIID riid,
                                             void **ppvObject);
  ULONG(STDMETHODCALLTYPE *AddRef)(ICLRMemoryNotificationCallback *This);
  ULONG(STDMETHODCALLTYPE *Release)(ICLRMemoryNotificationCallback *This);
  HRESULT(STDMETHODCALLTYPE *OnMemoryNotification)(ICLRMemoryNotificationCallback *This,
                                                   EMemoryAvailable eMemoryAvailable);
} ICLRMemoryNotificationCallbackVtbl;
struct ICLRMemoryNotificationCallback {
  const struct ICLRMemoryNotificationCallbackVtbl *lpVtbl;
};
NH_HOSTMEM_SLOT(ICLRMemoryNotificationCallbackVtbl, QueryInterface, 0);
NH_HOSTMEM_SLOT(ICLRMemoryNotificationCallbackVtbl, AddRef, 1);
NH_HOSTMEM_SLOT(ICLRMemoryNotificationCallbackVtbl, Release, 2);
NH_HOSTMEM_SLOT(ICLRMemoryNotificationCallbackVtbl, OnMemoryNotification, 3);
#define ICLRMemoryNotificationCallback_QueryInterface(This, riid, ppvObject) \
  ((This)->lpVtbl->QueryInterface(This, riid, ppvObject))
#define ICLRMemoryNotificationCallback_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define ICLRMemoryNotificationCallback_Release(This) ((This)->lpVtbl->Release(This))
#define ICLRMemoryNotificationCallback_OnMemoryNotification(This, eMemoryAvailable) \
  ((This)->lpVtbl->OnMemoryNotification(This, eMemoryAvailable))
#endif

/* ---- IHostMemoryManager ------------------------------------------------------------- */
#ifndef __IHostMemoryManager_INTERFACE_DEFINED__
#define __IHostMemoryManager_INTERFACE_DEFINED__
typedef struct IHostMemoryManager IHostMemoryManager;
typedef struct IHostMemoryManagerVtbl {
  HRESULT(STDMETHODCALLTYPE *QueryInterface)(IHostMemoryManager *This, REFIID riid,
                                             void **ppvObject);
  ULONG(STDMETHODCALLTYPE *AddRef)(IHostMemoryManager *This);
  ULONG(STDMETHODCALLTYPE *Release)(IHostMemoryManager *This);
  HRESULT(STDMETHODCALLTYPE *CreateMalloc)(IHostMemoryManager *This, DWORD dwMallocType,
                                           IHostMalloc **ppMalloc);
  HRESULT(STDMETHODCALLTYPE *VirtualAlloc)(IHostMemoryManager *This, void *pAddress,
                                           SIZE_T dwSize, DWORD flAllocationType,
                                           DWORD flProtect, EMemoryCriticalLevel eCriticalLevel,
                                           void **ppMem);
  HRESULT(STDMETHODCALLTYPE *VirtualFree)(IHostMemoryManager *This, LPVOID lpAddress,
                                          SIZE_T dwSize, DWORD dwFreeType);
  HRESULT(STDMETHODCALLTYPE *VirtualQuery)(IHostMemoryManager *This, void *lpAddress,
                                           void *lpBuffer, SIZE_T dwLength, SIZE_T *pResult);
  HRESULT(STDMETHODCALLTYPE *VirtualProtect)(IHostMemoryManager *This, void *lpAddress,
                                             SIZE_T dwSize, DWORD flNewProtect,
                                             DWORD *pflOldProtect);
  HRESULT(STDMETHODCALLTYPE *GetMemoryLoad)(IHostMemoryManager *This, DWORD *pMemoryLoad,
                                            SIZE_T *pAvailableBytes);
  HRESULT(STDMETHODCALLTYPE *RegisterMemoryNotificationCallback)(
      IHostMemoryManager *This, ICLRMemoryNotificationCallback *pCallback);
  HRESULT(STDMETHODCALLTYPE *NeedsVirtualAddressSpace)(IHostMemoryManager *This,
                                                       LPVOID startAddress, SIZE_T size);
  HRESULT(STDMETHODCALLTYPE *AcquiredVirtualAddressSpace)(IHostMemoryManager *This,
                                                          LPVOID startAddress, SIZE_T size);
  HRESULT(STDMETHODCALLTYPE *ReleasedVirtualAddressSpace)(IHostMemoryManager *This,
                                                          LPVOID startAddress);
} IHostMemoryManagerVtbl;
struct IHostMemoryManager {
  const struct IHostMemoryManagerVtbl *lpVtbl;
};
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, QueryInterface, 0);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, AddRef, 1);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, Release, 2);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, CreateMalloc, 3);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, VirtualAlloc, 4);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, VirtualFree, 5);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, VirtualQuery, 6);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, VirtualProtect, 7);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, GetMemoryLoad, 8);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, RegisterMemoryNotificationCallback, 9);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, NeedsVirtualAddressSpace, 10);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, AcquiredVirtualAddressSpace, 11);
NH_HOSTMEM_SLOT(IHostMemoryManagerVtbl, ReleasedVirtualAddressSpace, 12);
#define IHostMemoryManager_QueryInterface(This, riid, ppvObject) \
  ((This)->lpVtbl->QueryInterface(This, riid, ppvObject))
#define IHostMemoryManager_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define IHostMemoryManager_Release(This) ((This)->lpVtbl->Release(This))
#define IHostMemoryManager_CreateMalloc(This, dwMallocType, ppMalloc) \
  ((This)->lpVtbl->CreateMalloc(This, dwMallocType, ppMalloc))
#define IHostMemoryManager_VirtualAlloc(This, pAddress, dwSize, flAllocationType, flProtect, \
                                        eCriticalLevel, ppMem)                              \
  ((This)->lpVtbl->VirtualAlloc(This, pAddress, dwSize, flAllocationType, flProtect,        \
                                eCriticalLevel, ppMem))
#define IHostMemoryManager_VirtualFree(This, lpAddress, dwSize, dwFreeType) \
  ((This)->lpVtbl->VirtualFree(This, lpAddress, dwSize, dwFreeType))
#define IHostMemoryManager_VirtualQuery(This, lpAddress, lpBuffer, dwLength, pResult) \
  ((This)->lpVtbl->VirtualQuery(This, lpAddress, lpBuffer, dwLength, pResult))
#define IHostMemoryManager_VirtualProtect(This, lpAddress, dwSize, flNewProtect, pflOldProtect) \
  ((This)->lpVtbl->VirtualProtect(This, lpAddress, dwSize, flNewProtect, pflOldProtect))
#define IHostMemoryManager_GetMemoryLoad(This, pMemoryLoad, pAvailableBytes) \
  ((This)->lpVtbl->GetMemoryLoad(This, pMemoryLoad, pAvailableBytes))
#define IHostMemoryManager_RegisterMemoryNotificationCallback(This, pCallback) \
  ((This)->lpVtbl->RegisterMemoryNotificationCallback(This, pCallback))
#define IHostMemoryManager_NeedsVirtualAddressSpace(This, startAddress, size) \
  ((This)->lpVtbl->NeedsVirtualAddressSpace(This, startAddress, size))
#define IHostMemoryManager_AcquiredVirtualAddressSpace(This, startAddress, size) \
  ((This)->lpVtbl->AcquiredVirtualAddressSpace(This, startAddress, size))
#define IHostMemoryManager_ReleasedVirtualAddressSpace(This, startAddress) \
  ((This)->lpVtbl->ReleasedVirtualAddressSpace(This, startAddress))
#endif

/* ---- IIDs (defined in libnumaheap) ------------------------------------------------------ */
NH_API extern const IID IID_IUnknown;                      /* 00000000-0000-0000-C000-000000000046 */
NH_API extern const IID IID_IHostMalloc;                   /* 1831991C-CC53-4A31-B218-04E910446479 */
NH_API extern const IID IID_IHostMemoryManager;            /* 7BC698D1-F9E3-4460-9CDE-D04248E9FA25 */
NH_API extern const IID IID_ICLRMemoryNotificationCallback; /* 47EB8E57-0846-4546-AF76-6F42FCFC2649 */

/* ---- numaheap's entry point --------------------------------------------------------------- */

/** The process's memory manager, started if needed (one per process,
 *  reference counted, thread-safe, never destroyed: Release never frees it).
 *  Each call adds a reference. S_OK; E_POINTER when @p ppManager is NULL;
 *  E_OUTOFMEMORY when numaheap cannot start its tables. */
NH_API HRESULT NhCreateHostMemoryManager(IHostMemoryManager **ppManager);

#ifdef __cplusplus
}
#endif
#endif /* NUMAHEAP_HOSTMEM_H */
