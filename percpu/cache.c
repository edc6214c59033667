/*
 * percpu/cache.c: the entry points of percpu/cache.h and the fast paths.
 *
 * In percpu mode an allocation is one restartable pop from the current CPU's
 * slab of the class and a free one restartable push (percpu/rseq_x86_64.h,
 * inline in percpu/cache.h so that malloc and free hold them whole);
 * everything else is a slow path in pcpu.c. percpu/check-fastpath.sh
 * disassembles malloc, free and nh_cache_alloc/free: no lock, no atomic
 * read-modify-write, no system call, no call but the slow paths.
 *
 * A thread with a CPU override (tests) takes the per-thread path (tl_bypass)
 * so that two threads pretending to be the same CPU never share a slab; while
 * any thread has one, the inline fast gate is closed (nh_cache_fast_end).
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "numa/os.h"
#include "percpu/internal.h"
#include "percpu/rseq.h"

static int cache_mode = NH_CACHE_OFF; /* effective; constant after nh_cache_init */
/* 1: this thread uses its per-thread cache even in percpu mode. Only its thread. */
static __thread int tl_bypass __attribute__((tls_model("initial-exec")));

/* ---- the fast gate (percpu/cache.h) ----------------------------------------- */

_Atomic size_t nh_cache_fast_end;
_Atomic size_t nh_cache_fast_segs;
static nh_lock gate_lock;          /* serializes the gate's updates */
static int gate_plain;             /* Guarded by gate_lock: the API's last nh_cache_fast_open */
static int gate_overrides;         /* Guarded by gate_lock: threads with a CPU override */
static pthread_key_t bypass_key;   /* its destructor counts an exiting override thread out */
static pthread_once_t bypass_once = PTHREAD_ONCE_INIT;

/* Caller holds gate_lock. */
static void gate_update(void) {
  int open = gate_plain && nh_pc_on && gate_overrides == 0;
  atomic_store_explicit(&nh_cache_fast_segs, open ? NH_SEGMAP_SLOTS : 0, memory_order_release);
  atomic_store_explicit(&nh_cache_fast_end, open ? NH_SMALL_MAX + 1 : 0, memory_order_release);
}

void nh_cache_fast_open(int plain) {
  nh_lock_acquire(&gate_lock);
  gate_plain = plain;
  gate_update();
  nh_lock_release(&gate_lock);
}

static void bypass_count(int delta) {
  nh_lock_acquire(&gate_lock);
  gate_overrides += delta;
  gate_update();
  nh_lock_release(&gate_lock);
}

static void bypass_thread_exit(void *arg) {
  (void)arg;
  bypass_count(-1);
}

static void bypass_key_create(void) { (void)pthread_key_create(&bypass_key, bypass_thread_exit); }

/* ---- entry points ------------------------------------------------------------ */

int nh_cpu_home(int cpu) {
  const nh_topo *t = nh_g.topo;
  int n = nh_topo_cpu_node(t, cpu);
  if (n < 0 && cpu >= 0) n = nh_topo_cpu_node(t, cpu % t->ncpu_slots);
  if (n < 0) n = 0;
  return nh_g.home[n];
}

int nh_cache_init(const nh_cache_params *p) {
  cache_mode = p->mode;
  if (cache_mode == NH_CACHE_PERCPU && nh_pc_init(p) != 0) cache_mode = NH_CACHE_PERTHREAD;
  return nh_tc_init(p, cache_mode != NH_CACHE_OFF);
}

int nh_cache_mode(void) { return cache_mode; }

void *nh_cache_alloc(unsigned cls, int level) {
  if (__builtin_expect(nh_pc_on & !tl_bypass, 1)) {
    void *p = nh_cache_pop_fast(cls);
    return __builtin_expect(p != NULL, 1) ? p : nh_pc_alloc_slow(cls, level);
  }
  return nh_tc_alloc(cls, level);
}

void *nh_cache_alloc_slow(unsigned cls, int level) { return nh_pc_alloc_slow(cls, level); }

void nh_cache_free(void *p, unsigned cls, int node) {
  if (__builtin_expect(nh_pc_on & !tl_bypass, 1)) {
    /* p was checked (nh_block_lookup): it is not the slab's top (-1) */
    if (__builtin_expect(nh_cache_push_fast(p, cls, node) <= 0, 0)) nh_pc_free_slow(p, cls, node);
    return;
  }
  nh_tc_free(p, cls, node);
}

void nh_cache_free_slow(void *p, unsigned cls, int node) { nh_pc_free_slow(p, cls, node); }

int nh_cache_current_cpu(void) { return nh_tc_cpu(); }

int nh_cache_home_node(void) { return nh_cpu_home(nh_tc_cpu()); }

void nh_cache_flush_thread(void) {
  nh_tc_flush_thread();
  if (nh_pc_on) nh_pc_drain_all();
}

void nh_cache_set_cpu_override(int cpu) {
  if (cpu < 0) nh_tc_flush_thread(); /* back to the per-CPU caches: nothing stranded */
  nh_tc_set_cpu_override(cpu);
  int was = tl_bypass;
  tl_bypass = cpu >= 0;
  if (tl_bypass == was) return;
  /* the inline fast paths stay closed while any thread pretends (they
   * cannot afford a thread-local test); the full path serves everyone */
  pthread_once(&bypass_once, bypass_key_create);
  (void)pthread_setspecific(bypass_key, tl_bypass ? (void *)1 : NULL);
  bypass_count(tl_bypass ? 1 : -1);
}

void nh_cache_reset(void) {
  nh_tc_reset();
  nh_pc_reset();
  nh_cache_fast_open(0);
}

void nh_cache_stats_get(nh_cache_stats *out) {
  nh_tc_stats_get(out);
  out->cpus = out->idle_drains = 0;
  if (nh_pc_on) nh_pc_stats_add(out);
}

int nh_cache_cpu_count(void) { return nh_pc_on ? (int)nh_rseq_g.nslots : 0; }

int nh_cache_cpu_stats_get(int cpu, nh_cache_cpu_stats *out) {
  return nh_pc_on ? nh_pc_cpu_stats(cpu, out) : -1;
}

void nh_cache_set_idle_ms(uint64_t ms) { nh_pc_set_idle_ms(ms); }
