/*
 * tests/fuzz/fuzz_alloc.c: libFuzzer target for random sequences of calls.
 *
 * The input is a program: each operation is one byte of opcode followed by
 * its arguments (sizes, alignments, nodes, criticality levels, slots). The
 * calls are the native API (nh_malloc, nh_calloc, nh_realloc,
 * nh_aligned_alloc, nh_malloc_node, nh_free, nh_usable_size), nh_alloc_level
 * at every level, malloc-style edge cases (realloc(NULL, n), realloc(p, 0),
 * calloc overflow, bad alignments, bad nodes), the host API (IHostMalloc
 * Alloc/Free at criticality levels, VirtualAlloc/VirtualFree) when
 * numaheap/hostmem.h exists, and frees by a second thread that the main
 * thread hands blocks to. numaheap runs on a simulated four-node topology.
 *
 * Checked after every call: a block has usable size >= the request, the
 * alignment asked for, a node in range, and the pattern written into it is
 * intact when it is freed or resized; a failure is NULL with errno ENOMEM
 * or EINVAL as the contract says. After every input, once everything is
 * freed and both threads flushed their caches: allocs == frees, nothing in
 * use, nothing committed through VirtualAlloc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "numaheap/numaheap.h"
#include "percpu/cache.h"

#if __has_include("numaheap/hostmem.h")
#include "api/host_internal.h"
#include "numaheap/hostmem.h"
#define HAVE_HOSTMEM 1
static IHostMemoryManager *mgr;
static IHostMalloc *hmalloc;
#else
#define HAVE_HOSTMEM 0
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NODES 4
#define SLOTS 32
#define PATTERN_HEAD 8192 /* bytes checked at the start of a block */
#define PATTERN_TAIL 64   /* and at its end */

static void bad(const char *what, const void *p, size_t size) {
  fprintf(stderr, "fuzz_alloc: %s (block %p, %zu bytes): %s\n", what, p, size, nh_last_error());
  abort();
}

/* ---- blocks and their pattern ------------------------------------------------ */

typedef struct slot {
  uint8_t *p;
  size_t size;   /* bytes asked for */
  uint8_t seed;
  uint8_t host;  /* 1: from IHostMalloc_Alloc, freed by IHostMalloc_Free */
} slot;

static slot slots[SLOTS];

static void pattern(uint8_t *p, size_t size, uint8_t seed, int check) {
  size_t head = size < PATTERN_HEAD ? size : PATTERN_HEAD;
  size_t tail = size - head < PATTERN_TAIL ? size - head : PATTERN_TAIL;
  for (size_t i = 0; i < head + tail; i++) {
    size_t at = i < head ? i : size - tail + (i - head);
    uint8_t want = (uint8_t)(seed + at * 7);
    if (!check) p[at] = want;
    else if (p[at] != want) bad("pattern damaged", p, size);
  }
}

static void check_block(const void *p, size_t size, size_t align) {
  if (nh_usable_size(p) < size) bad("usable size below the request", p, size);
  if ((uintptr_t)p % (align < 16 ? 16 : align) != 0) bad("misaligned", p, size);
  int node = nh_ptr_node(p);
  if (node < 0 || node >= NODES) bad("node out of range", p, size);
}

/* A result of an allocating call: NULL must come with ENOMEM, else the block is checked and stamped. */
static void take(slot *s, uint8_t *p, size_t size, size_t align, uint8_t seed, int err_ok) {
  if (p == NULL) {
    if (errno != ENOMEM && errno != err_ok) bad("NULL without ENOMEM", p, size);
    return;
  }
  check_block(p, size, align);
  *s = (slot){.p = p, .size = size, .seed = seed};
  pattern(p, size, seed, 0);
}

static void release(slot *s) {
  if (s->p == NULL) return;
  pattern(s->p, s->size, s->seed, 1);
#if HAVE_HOSTMEM
  if (s->host) {
    if (IHostMalloc_Free(hmalloc, s->p) != S_OK) bad("host Free refused a live block", s->p, s->size);
    s->p = NULL;
    return;
  }
#endif
  nh_free(s->p);
  s->p = NULL;
}

/* ---- the second thread: frees what it is handed ------------------------------ */

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static slot queue[SLOTS]; /* Guarded by q_lock */
static int queued;        /* Guarded by q_lock */
static int flush_asked;   /* Guarded by q_lock: 1 = empty the queue, flush the cache, then 0 */
static int remote_cpu;    /* Guarded by q_lock: the CPU the second thread pretends to run on */

static void *remote_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&q_lock);
  for (;;) {
    while (queued == 0 && !flush_asked) pthread_cond_wait(&q_cond, &q_lock);
    nh_cache_set_cpu_override(remote_cpu);
    while (queued > 0) {
      slot s = queue[--queued];
      pthread_mutex_unlock(&q_lock);
      release(&s);
      pthread_mutex_lock(&q_lock);
    }
    if (flush_asked) {
      nh_cache_flush_thread();
      flush_asked = 0;
      pthread_cond_broadcast(&q_cond);
    }
  }
  return NULL;
}

static void hand_over(slot *s) {
  pthread_mutex_lock(&q_lock);
  while (queued == SLOTS) pthread_cond_wait(&q_cond, &q_lock);
  queue[queued++] = *s;
  pthread_cond_broadcast(&q_cond);
  pthread_mutex_unlock(&q_lock);
  s->p = NULL;
}

/* Waits until the second thread freed everything and flushed its cache. */
static void remote_sync(void) {
  pthread_mutex_lock(&q_lock);
  flush_asked = 1;
  pthread_cond_broadcast(&q_cond);
  while (flush_asked || queued > 0) pthread_cond_wait(&q_cond, &q_lock);
  pthread_mutex_unlock(&q_lock);
}

/* ---- reading the program ------------------------------------------------------------ */

typedef struct input {
  const uint8_t *d;
  size_t n, at;
} input;

static uint32_t next(input *in, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; i++) v = v << 8 | (in->at < in->n ? in->d[in->at++] : 0);
  return v;
}

/* Mostly small, some large, a few huge (up to 6 MiB). */
static size_t next_size(input *in) {
  uint8_t kind = (uint8_t)next(in, 1);
  if (kind < 200) return next(in, 2) % 4096;
  if (kind < 245) return next(in, 3) % (512u << 10);
  return next(in, 3) % (6u << 20);
}

static slot *next_slot(input *in) { return &slots[next(in, 1) % SLOTS]; }

/* ---- operations ----------------------------------------------------------------------- */

static void op_calloc(input *in, slot *s) {
  size_t n = next(in, 1) % 16, m = next_size(in) / 16 + 2; /* m >= 2: n*m below can overflow */
  if (next(in, 1) == 0xff) { /* overflow: must fail cleanly */
    errno = 0;
    if (nh_calloc(SIZE_MAX / m + 2, m) != NULL || errno != ENOMEM) bad("calloc overflow", NULL, m);
    return;
  }
  uint8_t *p = nh_calloc(n, m);
  for (size_t i = 0; p && i < n * m && i < (1u << 16); i++)
    if (p[i] != 0) bad("calloc not zeroed", p, n * m);
  take(s, p, n * m, 16, (uint8_t)n, 0);
}

static void op_realloc(input *in, slot *s, size_t size) {
  if (s->host) return;
  uint8_t *p = nh_realloc(s->p, size); /* s->p NULL: like malloc; size 0: frees, minimal block */
  if (p == NULL) {
    if (errno != ENOMEM) bad("realloc: NULL without ENOMEM", s->p, size);
    return; /* the old block is untouched */
  }
  size_t kept = s->p && size ? (s->size < size ? s->size : size) : 0;
  if (kept) pattern(p, kept < PATTERN_HEAD ? kept : PATTERN_HEAD, s->seed, 1);
  (void)in;
  s->p = NULL;
  take(s, p, size, 16, (uint8_t)(s->seed + 1), 0);
}

static void op_aligned(input *in, slot *s, size_t size) {
  uint8_t k = (uint8_t)next(in, 1);
  size_t align = (size_t)1 << (k % 24);
  if (k >= 240) { /* not a power of two */
    errno = 0;
    if (nh_aligned_alloc(align * 3, size) != NULL || errno != EINVAL) bad("bad alignment accepted", NULL, size);
    return;
  }
  take(s, nh_aligned_alloc(align, size), size, align, k, 0);
}

static void op_node(input *in, slot *s, size_t size) {
  int node = (int8_t)next(in, 1);
  errno = 0;
  uint8_t *p = nh_malloc_node(size, node);
  if (node < 0 || node >= NODES) {
    if (p != NULL || errno != EINVAL) bad("bad node accepted", p, size);
    return;
  }
  take(s, p, size, 16, (uint8_t)node, 0);
}

static void op_level(input *in, slot *s, size_t size) {
  uint8_t a = (uint8_t)next(in, 1);
  size_t align = (size_t)16 << (a % 8);
  uint8_t *p = nh_alloc_level(size, align, a / 8 % 3);
  errno = ENOMEM; /* nh_alloc_level reports failure by NULL only */
  take(s, p, size, align, a, 0);
}

#if HAVE_HOSTMEM
static void op_host_alloc(input *in, slot *s, size_t size) {
  uint8_t level = (uint8_t)next(in, 1);
  void *p = NULL;
  HRESULT hr = IHostMalloc_Alloc(hmalloc, size, (EMemoryCriticalLevel)(level % 4), &p);
  if (level % 4 == 3) { /* not a level */
    if (hr == S_OK || p != NULL) bad("host Alloc accepted level 3", p, size);
    return;
  }
  if (hr != S_OK) {
    if (p != NULL || hr != E_OUTOFMEMORY) bad("host Alloc failed oddly", p, size);
    return;
  }
  check_block(p, size, 16);
  *s = (slot){.p = p, .size = size, .seed = level, .host = 1};
  pattern(p, size, level, 0);
}

static void op_virtual(input *in) {
  size_t size = (next(in, 1) % 64 + 1) * 4096;
  void *p = NULL;
  HRESULT hr = IHostMemoryManager_VirtualAlloc(mgr, NULL, size, MEM_RESERVE | MEM_COMMIT,
                                               PAGE_READWRITE, eAppDomainCritical, &p);
  if (hr != S_OK) {
    if (p != NULL) bad("VirtualAlloc failed but returned a pointer", p, size);
    return;
  }
  memset(p, 0x5a, size);
  if (IHostMemoryManager_VirtualFree(mgr, p, 0, MEM_RELEASE) != S_OK) bad("VirtualFree refused", p, size);
}
#endif

static void run_op(input *in) {
  uint8_t op = (uint8_t)next(in, 1);
  slot *s = next_slot(in);
  if (op % 16 < 9) release(s); /* allocating operations reuse the slot */
  switch (op % 16) {
  case 0: case 1: { size_t n = next_size(in); take(s, nh_malloc(n), n, 16, op, 0); break; }
  case 2: op_calloc(in, s); break;
  case 3: op_aligned(in, s, next_size(in)); break;
  case 4: op_node(in, s, next_size(in)); break;
  case 5: op_level(in, s, next_size(in)); break;
#if HAVE_HOSTMEM
  case 6: op_host_alloc(in, s, next_size(in)); break;
  case 7: op_virtual(in); break;
#endif
  case 8: { size_t n = next_size(in); take(s, nh_realloc(NULL, n), n, 16, op, 0); break; }
  case 9: op_realloc(in, s, next_size(in)); break;
  case 10: op_realloc(in, s, 0); break;
  case 11: if (s->p) check_block(s->p, s->size, 16); break;
  case 12: if (s->p) hand_over(s); break;
  case 13: nh_cache_set_cpu_override((int)(next(in, 1) % (NODES + 1)) - 1); break;
  case 14: release(s); break;
  default: if (next(in, 1) % 8 == 0) nh_trim(); break;
  }
}

/* ---- the target ----------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  static nh_config cfg;
  char err[600];
  nh_config_defaults(&cfg);
  snprintf(cfg.synthetic, sizeof cfg.synthetic, "package:2 numa:2 core:1 pu:1");
  if (nh_config_set(&cfg, "heap", "budget", "96M", err, sizeof err) != 0 ||
      nh_config_set(&cfg, "heap", "reserve", "8M", err, sizeof err) != 0 ||
      nh_config_set(&cfg, "criticality", "appdomain.spill", "any", err, sizeof err) != 0 ||
      nh_reinit(&cfg, err, sizeof err) != 0) {
    fprintf(stderr, "fuzz_alloc: cannot start numaheap: %s\n", err);
    abort();
  }
#if HAVE_HOSTMEM
  if (NhCreateHostMemoryManager(&mgr) != S_OK ||
      IHostMemoryManager_CreateMalloc(mgr, MALLOC_THREADSAFE, &hmalloc) != S_OK) {
    fprintf(stderr, "fuzz_alloc: no host memory manager\n");
    abort();
  }
#endif
  pthread_t t;
  if (pthread_create(&t, NULL, remote_main, NULL) != 0) abort();
  pthread_detach(t);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  input in = {data, size, 0};
  pthread_mutex_lock(&q_lock);
  remote_cpu = size ? data[0] % NODES : 3;
  pthread_mutex_unlock(&q_lock);
  while (in.at < in.n) run_op(&in);
  for (int i = 0; i < SLOTS; i++) release(&slots[i]);
  remote_sync();
  nh_cache_flush_thread();
  nh_cache_set_cpu_override(-1);
  nh_stats st = {.size = sizeof st, .version = NH_STATS_VERSION};
  if (nh_stats_get(&st) != 0) bad("nh_stats_get failed", NULL, 0);
  if (st.total.allocs != st.total.frees || st.total.in_use != 0) {
    nh_stats_print(stderr, 0);
    bad("blocks lost: allocs != frees or in_use != 0 after everything was freed", NULL, 0);
  }
#if HAVE_HOSTMEM
  nh_host_vm_stats vm;
  nh_host_vm_stats_get(&vm);
  if (vm.committed != 0 || vm.reservations != 0) bad("VirtualAlloc memory left", NULL, vm.committed);
#endif
  return 0;
}
