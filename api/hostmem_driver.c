/*
 * api/hostmem_driver.c: nh_host_driver, a program that drives numaheap's
 * IHostMemoryManager the way the CLR does:
 *   - start-up at eProcessCritical: CreateMalloc(MALLOC_THREADSAFE), a few
 *     process-critical allocations, RegisterMemoryNotificationCallback;
 *   - a "GC" thread that reserves 256 MiB segments with
 *     MEM_RESERVE|MEM_WRITE_WATCH, commits them in 1 MiB chunks as it
 *     "allocates", and decommits/releases them after each "collection"
 *     (collecting at once when it receives a Low notification);
 *   - worker threads allocating and freeing at eTaskCritical, with every
 *     16th request made as a "lock holder" at eAppDomainCritical;
 *   - a JIT-style executable allocation (MALLOC_EXECUTABLE) that is run;
 *   - the main thread polling GetMemoryLoad every 100 ms.
 * It prints what happened and numaheap's statistics.
 *
 *   nh_host_driver [--seconds N] [--threads N] [--config FILE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "numaheap/hostmem.h"
#include "numaheap/numaheap.h"

#define MAX_THREADS 256
#define LIVE_PER_THREAD 2048
#define GC_SEGMENT ((size_t)256 << 20)
#define GC_CHUNK ((size_t)1 << 20)

typedef struct options {
  int seconds, threads;
  const char *config;
} options;

static IHostMemoryManager *mgr;
static IHostMalloc *heap;
static _Atomic int stop;

/* ---- the runtime's notification callback -------------------------------------------- */

static _Atomic uint64_t notes[4];
static _Atomic int gc_requested;
static _Atomic ULONG cb_refs;
static struct timespec t0;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

static HRESULT STDMETHODCALLTYPE cb_qi(ICLRMemoryNotificationCallback *This, REFIID riid,
                                       void **ppv) {
  if (ppv == NULL) return E_POINTER;
  *ppv = NULL;
  if (memcmp(riid, &IID_IUnknown, sizeof *riid) != 0 &&
      memcmp(riid, &IID_ICLRMemoryNotificationCallback, sizeof *riid) != 0)
    return E_NOINTERFACE;
  atomic_fetch_add(&cb_refs, 1);
  *ppv = This;
  return S_OK;
}
static ULONG STDMETHODCALLTYPE cb_add_ref(ICLRMemoryNotificationCallback *This) {
  return atomic_fetch_add(&cb_refs, 1) + 1;
}
static ULONG STDMETHODCALLTYPE cb_release(ICLRMemoryNotificationCallback *This) {
  return atomic_fetch_sub(&cb_refs, 1) - 1;
}

/* Like the runtime: never blocks; Low asks for a collection. */
static HRESULT STDMETHODCALLTYPE cb_on_note(ICLRMemoryNotificationCallback *This,
                                            EMemoryAvailable what) {
  static const char *const names[4] = {"?", "Low", "Neutral", "High"};
  if (what < eMemoryAvailableLow || what > eMemoryAvailableHigh) return E_INVALIDARG;
  atomic_fetch_add(&notes[what], 1);
  if (what == eMemoryAvailableLow) atomic_store(&gc_requested, 1);
  printf("[%6.2fs] notification: %s\n", now_s(), names[what]);
  return S_OK;
}

static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {cb_qi, cb_add_ref, cb_release,
                                                           cb_on_note};
static ICLRMemoryNotificationCallback callback = {&cb_vtbl};

/* ---- workers ------------------------------------------------------------------------------- */

typedef struct worker {
  pthread_t thread;
  unsigned seed;
  uint64_t allocs[3], failures[3], frees;
  void *live[LIVE_PER_THREAD];
} worker;

static size_t random_size(unsigned *seed) {
  unsigned r = (unsigned)rand_r(seed);
  return (r & 7) == 0 ? 4096 + (r >> 4) % 60000 : 16 + (r >> 4) % 1024;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  for (uint64_t i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
    size_t slot = (size_t)rand_r(&w->seed) % LIVE_PER_THREAD;
    if (w->live[slot]) {
      if (IHostMalloc_Free(heap, w->live[slot]) == S_OK) w->frees++;
      w->live[slot] = NULL;
    }
    EMemoryCriticalLevel level = (i % 16 == 15) ? eAppDomainCritical : eTaskCritical;
    void *p;
    HRESULT hr = IHostMalloc_Alloc(heap, random_size(&w->seed), level, &p);
    if (hr == S_OK) {
      memset(p, 0xA5, 16);
      w->live[slot] = p;
      w->allocs[level]++;
    } else {
      w->failures[level]++; /* the runtime would abort this task (or unload the domain) */
    }
  }
  for (size_t i = 0; i < LIVE_PER_THREAD; i++)
    if (w->live[i] && IHostMalloc_Free(heap, w->live[i]) == S_OK) w->frees++;
  return NULL;
}

/* ---- the "GC" -------------------------------------------------------------------------------- */

typedef struct gc_state {
  pthread_t thread;
  uint64_t segments, chunks, chunk_failures, collections;
} gc_state;

static void gc_collect(char *seg, size_t committed, gc_state *g) {
  if (committed) IHostMemoryManager_VirtualFree(mgr, seg, committed, MEM_DECOMMIT);
  g->collections++;
}

static void gc_one_segment(gc_state *g) {
  void *seg;
  HRESULT hr = IHostMemoryManager_VirtualAlloc(mgr, NULL, GC_SEGMENT, MEM_RESERVE | MEM_WRITE_WATCH,
                                               PAGE_READWRITE, eProcessCritical, &seg);
  if (hr != S_OK) {
    printf("[%6.2fs] gc: cannot reserve a segment (0x%08" PRIx32 ")\n", now_s(), (uint32_t)hr);
    return;
  }
  g->segments++;
  size_t committed = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed) && committed < GC_SEGMENT) {
    void *chunk;
    hr = IHostMemoryManager_VirtualAlloc(mgr, (char *)seg + committed, GC_CHUNK, MEM_COMMIT,
                                         PAGE_READWRITE, eAppDomainCritical, &chunk);
    if (hr != S_OK || atomic_exchange(&gc_requested, 0)) { /* out of budget, or told to */
      g->chunk_failures += hr != S_OK;
      gc_collect(seg, committed, g);
      committed = 0;
      continue;
    }
    memset(chunk, 0, 4096); /* touch the first page: "allocation" */
    committed += GC_CHUNK;
    g->chunks++;
    struct timespec pause = {0, 2000000}; /* 2 ms of mutator work per chunk */
    nanosleep(&pause, NULL);
  }
  MEMORY_BASIC_INFORMATION mbi;
  SIZE_T n;
  if (IHostMemoryManager_VirtualQuery(mgr, seg, &mbi, sizeof mbi, &n) == S_OK)
    printf("[%6.2fs] gc: segment %p: first region %zu bytes %s\n", now_s(), seg,
           (size_t)mbi.RegionSize, mbi.State == MEM_COMMIT ? "committed" : "reserved");
  IHostMemoryManager_VirtualFree(mgr, seg, 0, MEM_RELEASE);
}

static void *gc_main(void *arg) {
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) gc_one_segment(arg);
  return NULL;
}

/* ---- start-up, the JIT, polling --------------------------------------------------------------- */

static int startup(const options *o, void **boot, size_t nboot) {
  if (nh_init(o->config) != 0) {
    fprintf(stderr, "nh_host_driver: %s\n", nh_last_error());
    return -1;
  }
  HRESULT hr = NhCreateHostMemoryManager(&mgr);
  if (hr == S_OK) hr = IHostMemoryManager_CreateMalloc(mgr, MALLOC_THREADSAFE, &heap);
  if (hr != S_OK) {
    fprintf(stderr, "nh_host_driver: the host control would be refused (0x%08" PRIx32 ")\n",
            (uint32_t)hr);
    return -1;
  }
  for (size_t i = 0; i < nboot; i++) /* the runtime's own start-up structures */
    if (IHostMalloc_Alloc(heap, 64 + i % 512, eProcessCritical, &boot[i]) != S_OK) boot[i] = NULL;
  hr = IHostMemoryManager_RegisterMemoryNotificationCallback(mgr, &callback);
  printf("start-up: %zu process-critical blocks, callback %s\n", nboot,
         hr == S_OK ? "registered" : "refused");
  return 0;
}

static void jit_demo(void) {
  IHostMalloc *code_heap;
  if (IHostMemoryManager_CreateMalloc(mgr, MALLOC_THREADSAFE | MALLOC_EXECUTABLE, &code_heap) != S_OK)
    return;
  void *code;
  if (IHostMalloc_Alloc(code_heap, 16, eAppDomainCritical, &code) == S_OK) {
#if defined(__x86_64__)
    static const unsigned char ret42[] = {0xB8, 42, 0, 0, 0, 0xC3}; /* mov eax, 42; ret */
    memcpy(code, ret42, sizeof ret42);
    int (*fn)(void) = (int (*)(void))code;
    printf("jit: executable block at %p returned %d\n", code, fn());
#endif
    IHostMalloc_Free(code_heap, code);
  }
  IHostMalloc_Release(code_heap);
}

static void poll_load(int seconds) {
  int ticks = seconds * 10;
  for (int t = 1; t <= ticks; t++) {
    struct timespec tick = {0, 100000000};
    nanosleep(&tick, NULL);
    DWORD load;
    SIZE_T avail;
    if (IHostMemoryManager_GetMemoryLoad(mgr, &load, &avail) == S_OK && t % 10 == 0)
      printf("[%6.2fs] load %" PRIu32 "%% available %zu MiB\n", now_s(), load,
             (size_t)avail >> 20);
  }
}

static void report(const worker *w, int n, const gc_state *g) {
  uint64_t a[3] = {0}, f[3] = {0}, frees = 0;
  for (int i = 0; i < n; i++) {
    for (int l = 0; l < 3; l++) a[l] += w[i].allocs[l], f[l] += w[i].failures[l];
    frees += w[i].frees;
  }
  printf("workers: task allocs %" PRIu64 " failures %" PRIu64 "; appdomain allocs %" PRIu64
         " failures %" PRIu64 "; frees %" PRIu64 "\n",
         a[0], f[0], a[1], f[1], frees);
  printf("gc: segments %" PRIu64 " chunks committed %" PRIu64 " refused %" PRIu64
         " collections %" PRIu64 "\n",
         g->segments, g->chunks, g->chunk_failures, g->collections);
  printf("notifications: low %" PRIu64 " neutral %" PRIu64 " high %" PRIu64 "\n",
         atomic_load(&notes[1]), atomic_load(&notes[2]), atomic_load(&notes[3]));
}

/* ---- main ------------------------------------------------------------------------------------------ */

static int parse_int(const char *flag, const char *s, int lo, int hi) {
  char *end;
  errno = 0;
  long v = s ? strtol(s, &end, 10) : 0;
  if (s == NULL || errno || *end || v < lo || v > hi) {
    fprintf(stderr, "nh_host_driver: %s needs a number from %d to %d\n", flag, lo, hi);
    exit(2);
  }
  return (int)v;
}

static options parse(int argc, char **argv) {
  options o = {3, 4, NULL};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--seconds") == 0) o.seconds = parse_int(a, v, 1, 3600), i++;
    else if (strcmp(a, "--threads") == 0) o.threads = parse_int(a, v, 1, MAX_THREADS), i++;
    else if (strcmp(a, "--config") == 0 && v) o.config = v, i++;
    else {
      fprintf(stderr, "usage: nh_host_driver [--seconds N] [--threads N] [--config FILE]\n"
                      "nh_host_driver: unknown or incomplete argument '%s'\n", a);
      exit(2);
    }
  }
  return o;
}

int main(int argc, char **argv) {
  options o = parse(argc, argv);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  static void *boot[256];
  if (startup(&o, boot, 256) != 0) return 1;
  jit_demo();
  static worker workers[MAX_THREADS];
  static gc_state gc;
  for (int i = 0; i < o.threads; i++) {
    workers[i].seed = 12345u + (unsigned)i;
    pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
  }
  pthread_create(&gc.thread, NULL, gc_main, &gc);
  poll_load(o.seconds);
  atomic_store(&stop, 1);
  for (int i = 0; i < o.threads; i++) pthread_join(workers[i].thread, NULL);
  pthread_join(gc.thread, NULL);
  for (int i = 0; i < 256; i++) IHostMalloc_Free(heap, boot[i]);
  struct timespec settle = {0, 300000000}; /* let the notifier see the load fall */
  nanosleep(&settle, NULL);
  report(workers, o.threads, &gc);
  nh_stats_print(stdout, 0);
  return 0;
}
