/*
 * percpu/cache.c: the entry points of percpu/cache.h and the fast paths.
 *
 * In percpu mode an allocation is one restartable pop from the current CPU's
 * slab of the class and a free one restartable push (percpu/rseq_x86_64.h);
 * everything else is a slow path in pcpu.c. nh_cache_alloc and
 * nh_cache_free are the functions percpu/check-fastpath.sh disassembles: no
 * lock, no atomic read-modify-write, no system call, no call but the slow
 * paths and the per-thread caches.
 *
 * A thread with a CPU override (tests) takes the per-thread path (tl_bypass)
 * so that two threads pretending to be the same CPU never share a slab.
 */
#define _GNU_SOURCE
#include "api/options.h"
#include "numa/os.h"
#include "percpu/internal.h"
#include "percpu/rseq.h"

static int cache_mode = NH_CACHE_OFF; /* effective; constant after nh_cache_init */
/* 1: this thread uses its per-thread cache even in percpu mode. Only its thread. */
static __thread int tl_bypass __attribute__((tls_model("initial-exec")));

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
    void *p = nh_rseq_pop(cls, nh_pc_soff[cls]);
    if (__builtin_expect(p != NULL, 1)) {
      nh_tsan_acquire(p);
      if (__builtin_expect(nh_block_next_raw(p) != NULL || !nh_block_is_marked_free(p), 0))
        nh_pc_corrupt(p);
      nh_block_clear_mark(p);
      return p;
    }
    return nh_pc_alloc_slow(cls, level);
  }
  return nh_tc_alloc(cls, level);
}

void nh_cache_free(void *p, unsigned cls, int node) {
  if (__builtin_expect(nh_pc_on & !tl_bypass, 1)) {
    nh_block_set_next(p, NULL); /* the two words a write after free would damage */
    nh_block_mark_free(p);      /* and the mark that catches a second free */
    nh_tsan_release(p);
    if (__builtin_expect(nh_rseq_push(p, cls, nh_pc_soff[cls], node), 1)) return;
    nh_pc_free_slow(p, cls, node);
    return;
  }
  nh_tc_free(p, cls, node);
}

int nh_cache_current_cpu(void) { return nh_tc_cpu(); }

int nh_cache_home_node(void) { return nh_cpu_home(nh_tc_cpu()); }

void nh_cache_flush_thread(void) {
  nh_tc_flush_thread();
  if (nh_pc_on) nh_pc_drain_all();
}

void nh_cache_set_cpu_override(int cpu) {
  if (cpu < 0) nh_tc_flush_thread(); /* back to the per-CPU caches: nothing stranded */
  nh_tc_set_cpu_override(cpu);
  tl_bypass = cpu >= 0;
}

void nh_cache_reset(void) {
  nh_tc_reset();
  nh_pc_reset();
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
