/*
 * api/container.c: the process's cgroup as the allocator sees it. Read at
 * start-up (api/init.c caps the node budgets with it), read again while
 * memory is tight (a request spilled or failed, or the notifier sees the
 * load at [notify] high or above), at most once every [cgroup] reread ms;
 * when the limit or the cpuset's nodes changed, the budgets are recomputed
 * (nh_limits_refresh, api/init.c).
 *
 * The root of every path is "" (the real machine) unless the test-only
 * variable NUMAHEAP_TEST_CGROUP_ROOT names a fake tree.
 *
 * The hard limit (memory.max) caps the budgets and the heaps' room;
 * memory.high caps nothing (the kernel throttles there, it fails nothing):
 * the notifier sends Low there (api/host_notify.c).
 *
 * Concurrency: g_cg is guarded by cg_lock (taken with trylock from the
 * pressure hook, which runs on allocating threads, so that they never wait
 * for each other's file reads; GetMemoryLoad and the notifier wait for it). The figures the load needs lock-free are
 * copied into relaxed atomics (each is one number; no ordering between them
 * is promised).
 */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "numa/os.h"

static nh_lock cg_lock;
static nh_cgroup g_cg;        /* Guarded by cg_lock; read at start-up, so not NH_BSS_COLD */
static uint64_t g_cg_read_ns; /* Guarded by cg_lock: when g_cg was last read */
/* Synchronization: atomic, relaxed (statistics and the load's inputs). */
static _Atomic uint64_t cg_limit = NH_CGROUP_NO_LIMIT, cg_high = NH_CGROUP_NO_LIMIT;
static _Atomic uint64_t cg_usage, cg_high_usage, cg_rereads, cg_low_trims;
static _Atomic int cg_version;

static const char *cgroup_root(void) {
  const char *r = getenv("NUMAHEAP_TEST_CGROUP_ROOT");
  return r ? r : "";
}

/* Publishes what the load needs. Caller holds cg_lock. */
static void publish_figures(const nh_cgroup *cg) {
  atomic_store_explicit(&cg_version, cg->version, memory_order_relaxed);
  atomic_store_explicit(&cg_limit, nh_cgroup_limit(cg), memory_order_relaxed);
  atomic_store_explicit(&cg_high, cg->high, memory_order_relaxed);
  atomic_store_explicit(&cg_usage, cg->usage, memory_order_relaxed);
  atomic_store_explicit(&cg_high_usage, cg->high_usage, memory_order_relaxed);
}

/* Publishes the figures and starts (or stops) the heaps' room check under
 * the hard limit; split off: the cgroup bounds nothing. Caller holds cg_lock. */
static void publish(const nh_cgroup *cg, const nh_config *cfg) {
  int on = cfg->v[NH_OPT_CGROUP_SPLIT].choice != NH_CGROUP_SPLIT_OFF;
  nh_cgroup_room_set(on ? cg : NULL);
  publish_figures(cg);
}

int nh_container_read(const nh_config *cfg, char *err, size_t errlen) {
  nh_lock_acquire(&cg_lock);
  int rc = nh_cgroup_read(&g_cg, cgroup_root(), err, errlen);
  g_cg_read_ns = nh_os_clock_ns();
  publish(&g_cg, cfg);
  nh_lock_release(&cg_lock);
  return rc;
}

void nh_container_get(nh_cgroup *out) {
  nh_lock_acquire(&cg_lock);
  memcpy(out, &g_cg, sizeof *out);
  nh_lock_release(&cg_lock);
}

/* Whether a re-read changes the budgets (memory.high does not). */
static int budgets_differ(const nh_cgroup *a, const nh_cgroup *b) {
  return nh_cgroup_limit(a) != nh_cgroup_limit(b) || a->has_mems != b->has_mems ||
         memcmp(a->mems, b->mems, sizeof a->mems) != 0;
}

void nh_container_tight(void) {
  if (!nh_ready() || nh_cfg == NULL) return;
  uint64_t every = nh_cfg->v[NH_OPT_CGROUP_REREAD].u;
  if (every == 0 || !nh_lock_try(&cg_lock)) return;
  uint64_t now = nh_os_clock_ns();
  if (g_cg.version == 0 || now - g_cg_read_ns < every * 1000000u) {
    nh_lock_release(&cg_lock);
    return;
  }
  static nh_cgroup fresh NH_BSS_COLD; /* Guarded by cg_lock (too big for an allocating thread's stack) */
  char err[256];
  g_cg_read_ns = now;
  int changed = 0;
  memcpy(&fresh, &g_cg, sizeof fresh);
  if (nh_cgroup_refresh(&fresh, err, sizeof err) == 0) {
    changed = budgets_differ(&fresh, &g_cg);
    memcpy(&g_cg, &fresh, sizeof g_cg);
    if (changed) publish(&g_cg, nh_cfg);
    else publish_figures(&g_cg);
    atomic_fetch_add_explicit(&cg_rereads, 1, memory_order_relaxed);
  }
  nh_lock_release(&cg_lock);
  if (changed) nh_limits_refresh();
}

void nh_container_cap(const nh_topo *t, const nh_config *cfg, nh_node_limits *limits) {
  nh_lock_acquire(&cg_lock);
  nh_cgroup_cap_budgets(&g_cg, t, cfg->v[NH_OPT_CGROUP_SPLIT].choice,
                        cfg->v[NH_OPT_CGROUP_SHARE].milli_pct, limits);
  nh_lock_release(&cg_lock);
}

bool nh_container_load(nh_container_figures *f) {
  if (atomic_load_explicit(&cg_version, memory_order_relaxed) == 0) return false;
  if (nh_cfg == NULL || nh_cfg->v[NH_OPT_CGROUP_SPLIT].choice == NH_CGROUP_SPLIT_OFF) return false;
  f->max = atomic_load_explicit(&cg_limit, memory_order_relaxed);
  f->high = atomic_load_explicit(&cg_high, memory_order_relaxed);
  if (f->max == 0) f->max = NH_CGROUP_NO_LIMIT; /* a limit of 0 bytes: no load to compute */
  if (f->high == 0) f->high = NH_CGROUP_NO_LIMIT;
  if (f->max == NH_CGROUP_NO_LIMIT && f->high == NH_CGROUP_NO_LIMIT) return false;
  /* a fresh figure each time (callers: GetMemoryLoad, the notifier; never
   * an allocation); a trylock here returned a stale one to a caller that
   * met the notifier's read */
  nh_lock_acquire(&cg_lock);
  if (nh_cgroup_read_usage(&g_cg) == 0) {
    atomic_store_explicit(&cg_usage, g_cg.usage, memory_order_relaxed);
    atomic_store_explicit(&cg_high_usage, g_cg.high_usage, memory_order_relaxed);
  }
  nh_lock_release(&cg_lock);
  f->usage = atomic_load_explicit(&cg_usage, memory_order_relaxed);
  f->high_usage = atomic_load_explicit(&cg_high_usage, memory_order_relaxed);
  return true;
}

void nh_container_count_trim(void) {
  atomic_fetch_add_explicit(&cg_low_trims, 1, memory_order_relaxed);
}

void nh_container_stats(nh_cgroup_stats *out) {
  out->version = atomic_load_explicit(&cg_version, memory_order_relaxed);
  out->limit = atomic_load_explicit(&cg_limit, memory_order_relaxed);
  out->high = atomic_load_explicit(&cg_high, memory_order_relaxed);
  out->usage = atomic_load_explicit(&cg_usage, memory_order_relaxed);
  out->rereads = atomic_load_explicit(&cg_rereads, memory_order_relaxed);
  out->low_trims = atomic_load_explicit(&cg_low_trims, memory_order_relaxed);
}

void nh_container_postfork_child(void) { nh_lock_reset(&cg_lock); }
