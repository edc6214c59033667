/*
 * api/publish.c: the published statistics region (layout in
 * api/publish_layout.h, reader in api/cli/region.c, docs/operators.md).
 *
 * A background thread ("numaheap-stats") copies what the library already
 * counts (nh_stats_get, the per-CPU caches' counters, the host API's) into a
 * memfd every [stats] publish_interval ms, under a sequence lock. The fast
 * paths do nothing for it. The thread runs with every signal blocked, takes
 * no allocator lock but the per-thread caches' pool lock (nh_tc_stats_get),
 * and allocates nothing; pthread_create allocates its thread's TLS from
 * malloc, which is why the thread starts only once the allocator is READY.
 *
 * Lifecycle:
 *   - started by api/init.c after start-up (and after nh_reinit) when
 *     [stats] publish = yes; stopped by nh_reinit when it becomes no;
 *   - at exit (atexit): the region is marked EXITING, unmapped and its
 *     descriptor closed, so it disappears from /proc/PID/fd;
 *   - a killed process leaves nothing: the memfd dies with its last
 *     descriptor; exec closes it (close-on-exec);
 *   - fork: the child unmaps and closes the parent's region without writing
 *     to it and starts its own thread, which creates the child's region after
 *     one interval (nh_publish_postfork_child).
 *
 * Lock order: publish lock < the per-thread caches' pool lock; nh_reinit
 * holds the publish lock (nh_publish_pause) while it rebuilds the heaps and
 * caches, so a snapshot never reads structures being torn down.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/host_internal.h"
#include "api/internal.h"
#include "api/publish_layout.h"
#include "numa/lock.h"
#include "numa/os.h"
#include "numa/os_publish.h"
#include "numaheap/numaheap.h"
#include "percpu/cache.h"

/* ---- what is published: one row per field --------------------------------------- */

/* A field and where its value lies in the section's source struct. */
typedef struct pub_row {
  nh_pub_field f;
  uint16_t offset; /* in the source struct */
  uint8_t is_int;  /* an int (a label), not a uint64_t */
} pub_row;

#define ROW(src, fld, nm, met, k, lvl, hlp) \
  {{.name = nm, .metric = met, .kind = k, .level = lvl, .help = hlp}, offsetof(src, fld), 0}
#define INT_ROW(src, fld, nm, hlp) \
  {{.name = nm, .metric = nm, .kind = NH_PUB_LABEL, .level = -1, .help = hlp}, offsetof(src, fld), 1}
#define LEVELS(src, fld, nm, met, k, hlp)                \
  ROW(src, fld[0], nm "_task", met, k, 0, hlp),          \
  ROW(src, fld[1], nm "_appdomain", met, k, 1, hlp),     \
  ROW(src, fld[2], nm "_process", met, k, 2, hlp)

/* Every field of nh_node_stats (the static assertion below fails when one is
 * added to the struct without a row here: add its row, readers show it). */
static const pub_row node_rows[] = {
  INT_ROW(nh_node_stats, node, "node", "logical node number"),
  INT_ROW(nh_node_stats, os_node, "os_node", "real OS node its memory is bound to"),
  ROW(nh_node_stats, budget, "budget", "budget_bytes", NH_PUB_GAUGE, -1,
      "bytes this node's heap may commit"),
  ROW(nh_node_stats, reserve, "reserve", "reserve_bytes", NH_PUB_GAUGE, -1,
      "bytes of budget kept for process-critical memory"),
  ROW(nh_node_stats, reserve_ready, "reserve_ready", "reserve_ready_bytes", NH_PUB_GAUGE, -1,
      "bytes of the reserve pre-committed"),
  ROW(nh_node_stats, committed, "committed", "committed_bytes", NH_PUB_GAUGE, -1,
      "bytes taken from the OS and not returned"),
  ROW(nh_node_stats, in_use, "in_use", "in_use_bytes", NH_PUB_GAUGE, -1,
      "bytes in live or cached blocks"),
  ROW(nh_node_stats, peak_committed, "peak_committed", "peak_committed_bytes", NH_PUB_GAUGE, -1,
      "high-water mark of committed bytes"),
  LEVELS(nh_node_stats, level_committed, "level_committed", "level_committed_bytes",
         NH_PUB_GAUGE, "bytes of pages held by blocks, by level"),
  ROW(nh_node_stats, allocs, "allocs", "allocs", NH_PUB_COUNTER, -1,
      "blocks handed out by this node's heap"),
  ROW(nh_node_stats, frees, "frees", "frees", NH_PUB_COUNTER, -1,
      "blocks returned to this node's heap"),
  ROW(nh_node_stats, remote_frees, "remote_frees", "remote_frees", NH_PUB_COUNTER, -1,
      "blocks freed on another node, sent home"),
  ROW(nh_node_stats, fallback_out, "fallback_out", "fallback_out", NH_PUB_COUNTER, -1,
      "requests of this node served by another node"),
  ROW(nh_node_stats, fallback_in, "fallback_in", "fallback_in", NH_PUB_COUNTER, -1,
      "requests of other nodes served here"),
  LEVELS(nh_node_stats, failures, "failures", "failures", NH_PUB_COUNTER,
         "requests this node could not serve, by level"),
  ROW(nh_node_stats, purged, "purged", "purged_bytes", NH_PUB_COUNTER, -1,
      "bytes returned to the OS"),
  ROW(nh_node_stats, segments, "segments", "segments", NH_PUB_GAUGE, -1,
      "segments mapped now"),
  ROW(nh_node_stats, xfer_hits, "xfer_hits", "transfer_cache_hits", NH_PUB_COUNTER, -1,
      "blocks refills took from the transfer cache"),
  ROW(nh_node_stats, xfer_misses, "xfer_misses", "transfer_cache_misses", NH_PUB_COUNTER, -1,
      "blocks refills took from spans (transfer cache empty)"),
  ROW(nh_node_stats, xfer_released, "xfer_released", "transfer_cache_released", NH_PUB_COUNTER,
      -1, "blocks the transfer cache gave back to spans"),
  ROW(nh_node_stats, xfer_bytes, "xfer_bytes", "transfer_cache_held_bytes", NH_PUB_GAUGE, -1,
      "bytes the transfer cache holds now"),
  ROW(nh_node_stats, huge_kept, "huge_kept", "huge_kept_bytes", NH_PUB_GAUGE, -1,
      "bytes of freed huge mappings kept for reuse"),
  ROW(nh_node_stats, huge_reused, "huge_reused", "huge_reused", NH_PUB_COUNTER, -1,
      "huge requests served from a kept mapping"),
  ROW(nh_node_stats, thp_bytes, "thp_bytes", "thp_bytes", NH_PUB_GAUGE, -1,
      "bytes mapped with transparent huge pages asked for"),
  ROW(nh_node_stats, hugetlb_bytes, "hugetlb_bytes", "hugetlb_bytes", NH_PUB_GAUGE, -1,
      "bytes mapped now on explicit 2 MiB huge pages"),
  ROW(nh_node_stats, hugetlb_fallbacks, "hugetlb_fallbacks", "hugetlb_fallbacks",
      NH_PUB_COUNTER, -1, "hugetlb mappings served by thp instead"),
};
#define NROWS(t) (sizeof(t) / sizeof((t)[0]))
_Static_assert(NROWS(node_rows) - 2 == (sizeof(nh_node_stats) - 2 * sizeof(int)) / sizeof(uint64_t),
               "a field of nh_node_stats has no row in node_rows (api/publish.c)");

/* One CPU's cache: its number (a label), then nh_cache_cpu_stats. */
typedef struct pub_cpu {
  int cpu;
  nh_cache_cpu_stats s;
} pub_cpu;
static const pub_row cpu_rows[] = {
  INT_ROW(pub_cpu, cpu, "cpu", "CPU number"),
  INT_ROW(pub_cpu, s.node, "node", "node whose blocks the cache holds"),
  ROW(pub_cpu, s.hits, "hits", "cpu_cache_hits", NH_PUB_COUNTER, -1,
      "allocations served by the CPU's cache"),
  ROW(pub_cpu, s.misses, "misses", "cpu_cache_misses", NH_PUB_COUNTER, -1,
      "allocations that found the cache empty"),
  ROW(pub_cpu, s.refills, "refills", "cpu_cache_refills", NH_PUB_COUNTER, -1,
      "batches taken from the node's heap"),
  ROW(pub_cpu, s.drains, "drains", "cpu_cache_drains", NH_PUB_COUNTER, -1,
      "batches given back to the heaps"),
  ROW(pub_cpu, s.remote_sent, "remote_sent", "cpu_cache_remote_sent", NH_PUB_COUNTER, -1,
      "blocks of other nodes sent home"),
  ROW(pub_cpu, s.idle_drains, "idle_drains", "cpu_cache_idle_drains", NH_PUB_COUNTER, -1,
      "whole-cache drains for idleness"),
  ROW(pub_cpu, s.blocks, "blocks", "cpu_cache_blocks", NH_PUB_GAUGE, -1,
      "blocks the cache holds now"),
  ROW(pub_cpu, s.bytes, "bytes", "cpu_cache_held_bytes", NH_PUB_GAUGE, -1,
      "bytes the cache holds now"),
  ROW(pub_cpu, s.capacity_bytes, "capacity_bytes", "cpu_cache_capacity_bytes", NH_PUB_GAUGE, -1,
      "bytes the cache may hold now"),
  ROW(pub_cpu, s.steals, "steals", "cpu_cache_steals", NH_PUB_COUNTER, -1,
      "classes that gave capacity to another class"),
};
_Static_assert(NROWS(cpu_rows) - 2 == (sizeof(nh_cache_cpu_stats) - sizeof(uint64_t)) / sizeof(uint64_t),
               "a field of nh_cache_cpu_stats has no row in cpu_rows (api/publish.c)");

static const pub_row cache_rows[] = {
  ROW(nh_cache_stats, hits, "hits", "cache_hits", NH_PUB_COUNTER, -1,
      "allocations served by a cache"),
  ROW(nh_cache_stats, misses, "misses", "cache_misses", NH_PUB_COUNTER, -1,
      "allocations that found their cache empty"),
  ROW(nh_cache_stats, refills, "refills", "cache_refills", NH_PUB_COUNTER, -1,
      "batches taken from the heaps"),
  ROW(nh_cache_stats, drains, "drains", "cache_drains", NH_PUB_COUNTER, -1,
      "batches given back to the heaps"),
  ROW(nh_cache_stats, remote_sent, "remote_sent", "cache_remote_sent", NH_PUB_COUNTER, -1,
      "blocks of other nodes sent home"),
  ROW(nh_cache_stats, threads, "threads", "cache_threads", NH_PUB_GAUGE, -1,
      "per-thread caches counted (perthread mode)"),
  ROW(nh_cache_stats, cpus, "cpus", "cache_cpus", NH_PUB_GAUGE, -1,
      "per-CPU caches (percpu mode)"),
  ROW(nh_cache_stats, idle_drains, "idle_drains", "cache_idle_drains", NH_PUB_COUNTER, -1,
      "per-CPU caches drained for idleness"),
};
_Static_assert(NROWS(cache_rows) == sizeof(nh_cache_stats) / sizeof(uint64_t),
               "a field of nh_cache_stats has no row in cache_rows (api/publish.c)");

/* The host API's counters, gathered from its three getters. */
typedef struct pub_host {
  uint64_t manager, reservations, reserved, committed, spills, failures;
  uint64_t pressure[NH_LEVEL_COUNT], sent_low, sent_neutral, sent_high, low_mode;
  uint64_t views, view_bytes;
} pub_host;
static const pub_row host_rows[] = {
  ROW(pub_host, manager, "manager", "host_manager", NH_PUB_GAUGE, -1,
      "1 once the CLR host memory manager exists"),
  ROW(pub_host, reservations, "reservations", "host_reservations", NH_PUB_GAUGE, -1,
      "live VirtualAlloc reservations"),
  ROW(pub_host, reserved, "reserved", "host_reserved_bytes", NH_PUB_GAUGE, -1,
      "bytes reserved through VirtualAlloc"),
  ROW(pub_host, committed, "committed", "host_committed_bytes", NH_PUB_GAUGE, -1,
      "bytes committed through VirtualAlloc"),
  ROW(pub_host, spills, "spills", "host_spills", NH_PUB_COUNTER, -1,
      "commits bound to another node than the caller's"),
  ROW(pub_host, failures, "failures", "host_failures", NH_PUB_COUNTER, -1,
      "commits refused for lack of budget"),
  LEVELS(pub_host, pressure, "pressure", "host_pressure_events", NH_PUB_COUNTER,
         "requests failed or spilled, by level"),
  ROW(pub_host, sent_low, "sent_low", "host_notifications_low", NH_PUB_COUNTER, -1,
      "eMemoryAvailableLow notifications sent"),
  ROW(pub_host, sent_neutral, "sent_neutral", "host_notifications_neutral", NH_PUB_COUNTER, -1,
      "eMemoryAvailableNeutral notifications sent"),
  ROW(pub_host, sent_high, "sent_high", "host_notifications_high", NH_PUB_COUNTER, -1,
      "eMemoryAvailableHigh notifications sent"),
  ROW(pub_host, low_mode, "low_mode", "host_low_mode", NH_PUB_GAUGE, -1,
      "1 while the last notification sent was Low"),
  ROW(pub_host, views, "views", "host_views", NH_PUB_GAUGE, -1,
      "address-space views the runtime reported"),
  ROW(pub_host, view_bytes, "view_bytes", "host_view_bytes", NH_PUB_GAUGE, -1,
      "bytes of those views"),
};
_Static_assert(NROWS(host_rows) == sizeof(pub_host) / sizeof(uint64_t),
               "a field of pub_host has no row in host_rows (api/publish.c)");

static const struct {
  const char *name;
  const pub_row *rows;
  uint32_t nrows;
} sections[NH_PUB_SECTIONS] = {
  [NH_PUB_NODE] = {"node", node_rows, NROWS(node_rows)},
  [NH_PUB_CPU] = {"cpu", cpu_rows, NROWS(cpu_rows)},
  [NH_PUB_CACHE] = {"cache", cache_rows, NROWS(cache_rows)},
  [NH_PUB_HOST] = {"host", host_rows, NROWS(host_rows)},
};

/* ---- the publisher's state ------------------------------------------------------ */

static nh_lock g_lock;
static uint64_t g_gen;           /* Guarded by g_lock: the generation allowed to run */
static int g_running;            /* Guarded by g_lock: a thread of generation g_gen runs */
static uint64_t g_interval_ms;   /* Guarded by g_lock */
static nh_pub_header *g_region;  /* Guarded by g_lock: the mapping, or NULL */
static size_t g_size;            /* Guarded by g_lock */
static int g_fd = -1;            /* Guarded by g_lock */
static uint64_t g_id;            /* Guarded by g_lock: g_fd's file (the program may close g_fd) */
static uint32_t g_cpu_capacity;  /* Guarded by g_lock */
static int g_atexit;             /* Guarded by g_lock: the exit handler is registered */
static nh_stats g_st NH_BSS_COLD;            /* Guarded by g_lock: the snapshot being copied */

static const char *const cache_mode_names[] = {"percpu", "perthread", "off"};

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Lays out the header and descriptor tables of a region with room for ncpus
 * CPU records; returns its size (hdr NULL: only computes it). */
static uint64_t lay_out(nh_pub_header *hdr, uint32_t ncpus) {
  uint64_t off = round_up(sizeof(nh_pub_header), 64);
  const uint32_t cap[NH_PUB_SECTIONS] = {NH_STATS_MAX_NODES, ncpus, 1, 1};
  for (int s = 0; s < NH_PUB_SECTIONS; s++) {
    uint64_t fields = off, records = fields + sections[s].nrows * sizeof(nh_pub_field);
    off = round_up(records + (uint64_t)cap[s] * sections[s].nrows * sizeof(uint64_t), 64);
    if (hdr == NULL) continue;
    nh_pub_section *sec = &hdr->sections[s];
    snprintf(sec->name, sizeof sec->name, "%s", sections[s].name);
    sec->nfields = sections[s].nrows;
    sec->capacity = cap[s];
    sec->fields_offset = fields;
    sec->records_offset = records;
    nh_pub_field *f = (nh_pub_field *)((char *)hdr + fields);
    for (uint32_t k = 0; k < sections[s].nrows; k++) f[k] = sections[s].rows[k].f;
  }
  return round_up(off, nh_os_page_size());
}

static void fill_header(nh_pub_header *h, uint64_t size) {
  memcpy(h->magic, NH_PUB_MAGIC, sizeof h->magic);
  h->version = NH_PUB_VERSION;
  h->header_size = sizeof *h;
  h->size = size;
  h->pid = nh_os_pid();
  h->start_time = nh_os_start_time();
  h->interval_ms = g_interval_ms;
  snprintf(h->library, sizeof h->library, "%s", NUMAHEAP_VERSION_STRING);
  snprintf(h->cache_mode, sizeof h->cache_mode, "%s", cache_mode_names[nh_cache_mode()]);
  h->nsections = NH_PUB_SECTIONS;
  atomic_store_explicit(&h->state, NH_PUB_RUNNING, memory_order_relaxed);
}

/* Maps a region with room for ncpus CPUs in place of the current one. Caller
 * holds g_lock. 0, or an errno value. */
static int region_create(uint32_t ncpus) {
  size_t size = lay_out(NULL, ncpus);
  int fd = -1, err = 0;
  uint64_t id = 0;
  nh_pub_header *h = nh_os_memfd_map(NH_PUB_MEMFD_NAME, size, &fd, &id, &err);
  if (h == NULL) return err;
  lay_out(h, ncpus);
  fill_header(h, size);
  nh_os_memfd_unmap(g_region, g_size, g_fd, g_id);
  g_region = h, g_size = size, g_fd = fd, g_id = id, g_cpu_capacity = ncpus;
  return 0;
}

/* ---- one snapshot, under the sequence lock -------------------------------------- */

static void store(uint64_t *w, uint64_t v) {
  atomic_store_explicit((_Atomic uint64_t *)w, v, memory_order_relaxed); /* read by other processes */
}

/* Writes record i of section s from the source struct src. */
static void put_record(int s, uint32_t i, const void *src) {
  const nh_pub_section *sec = &g_region->sections[s];
  uint64_t *rec = (uint64_t *)((char *)g_region + sec->records_offset) + (uint64_t)i * sec->nfields;
  for (uint32_t k = 0; k < sec->nfields; k++) {
    const pub_row *r = &sections[s].rows[k];
    const char *p = (const char *)src + r->offset;
    uint64_t v;
    if (r->is_int) {
      int x;
      memcpy(&x, p, sizeof x);
      v = (uint64_t)(int64_t)x;
    } else {
      memcpy(&v, p, sizeof v);
    }
    store(&rec[k], v);
  }
}

static void put_nodes(void) {
  g_st.size = sizeof g_st;
  g_st.version = NH_STATS_VERSION;
  uint32_t n = nh_stats_get(&g_st) == 0 ? (uint32_t)g_st.node_count : 0;
  for (uint32_t i = 0; i < n; i++) put_record(NH_PUB_NODE, i, &g_st.nodes[i]);
  atomic_store_explicit(&g_region->sections[NH_PUB_NODE].count, n, memory_order_relaxed);
}

static void put_cpus(void) {
  uint32_t n = 0;
  pub_cpu c;
  memset(&c, 0, sizeof c);
  for (int cpu = 0; cpu < nh_cache_cpu_count() && n < g_cpu_capacity; cpu++) {
    if (nh_cache_cpu_stats_get(cpu, &c.s) != 0) continue;
    c.cpu = cpu;
    put_record(NH_PUB_CPU, n++, &c);
  }
  atomic_store_explicit(&g_region->sections[NH_PUB_CPU].count, n, memory_order_relaxed);
}

static void put_cache_and_host(void) {
  nh_cache_stats cs;
  nh_cache_stats_get(&cs);
  put_record(NH_PUB_CACHE, 0, &cs);
  atomic_store_explicit(&g_region->sections[NH_PUB_CACHE].count, 1, memory_order_relaxed);
  pub_host h;
  memset(&h, 0, sizeof h);
  if (nh_host_manager_created()) {
    nh_host_vm_stats vm;
    nh_host_notify_stats ns;
    nh_host_vm_stats_get(&vm);
    nh_host_notify_stats_get(&ns);
    h.manager = 1;
    h.reservations = vm.reservations, h.reserved = vm.reserved, h.committed = vm.committed;
    h.spills = vm.spills, h.failures = vm.failures;
    for (int l = 0; l < NH_LEVEL_COUNT; l++) h.pressure[l] = ns.pressure_events[l];
    h.sent_low = ns.sent[eMemoryAvailableLow];
    h.sent_neutral = ns.sent[eMemoryAvailableNeutral];
    h.sent_high = ns.sent[eMemoryAvailableHigh];
    h.low_mode = (uint64_t)ns.low_mode;
    h.views = nh_host_vas_views(), h.view_bytes = nh_host_vas_bytes();
  }
  put_record(NH_PUB_HOST, 0, &h);
  atomic_store_explicit(&g_region->sections[NH_PUB_HOST].count, 1, memory_order_relaxed);
}

/* One snapshot. Caller holds g_lock; g_region is mapped. The odd store and
 * the release fence keep the record stores after it; the final release store
 * keeps them before it: a reader's acquire load of seq pairs with it. */
static void publish_once(void) {
  uint64_t seq = atomic_load_explicit(&g_region->seq, memory_order_relaxed);
  atomic_store_explicit(&g_region->seq, seq + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  put_nodes();
  put_cpus();
  put_cache_and_host();
  atomic_store_explicit(&g_region->updated_ns, nh_os_realtime_ns(), memory_order_relaxed);
  atomic_fetch_add_explicit(&g_region->snapshots, 1, memory_order_relaxed);
  atomic_store_explicit(&g_region->seq, seq + 2, memory_order_release);
}

/* ---- the thread --------------------------------------------------------------- */

static void report_failure(int err) {
  char msg[160];
  int n = snprintf(msg, sizeof msg,
                   "numaheap: cannot publish statistics (memfd: %s); `numaheap stats` will not "
                   "see this process\n", strerror(err));
  nh_os_write_stderr(msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

static void publish_at_exit(void);

/* One round: creates the region when there is none, when it needs room for
 * more CPUs, or when the program closed its descriptor (a daemon closing
 * every descriptor after start-up), then publishes. false when this thread
 * must stop (another generation runs, or no region can be created). Caller
 * holds g_lock. */
static bool round_locked(uint64_t gen) {
  if (gen != g_gen) return false;
  uint32_t ncpus = (uint32_t)nh_cache_cpu_count();
  if (g_region == NULL || ncpus > g_cpu_capacity || !nh_os_memfd_owned(g_fd, g_id)) {
    /* The exit handler with the first region, not at start-up: a process
     * that never publishes does not touch atexit's code either. */
    if (!g_atexit) g_atexit = atexit(publish_at_exit) == 0;
    int err = region_create(ncpus);
    if (err != 0) {
      report_failure(err);
      g_running = 0;
      return false;
    }
  }
  publish_once();
  return true;
}

/* The first round waits: a process that exits within its first moments (a
 * small command: most of them) never creates a region, and pays neither the
 * memfd nor the snapshot's pages (docs/benchmarks.md, "Footprint of a small
 * program"). A fork child waits a whole interval (one that execs or exits at
 * once, most do, never creates a region); start-up waits the interval, at
 * most FIRST_DELAY_MS. */
#define FIRST_DELAY_MS 200

/* arg: the generation times two, plus one for a fork child. */
static void *publisher(void *arg) {
  uint64_t gen = (uint64_t)(uintptr_t)arg >> 1;
  nh_os_thread_name("numaheap-stats"); /* itself: pthread_setname_np's sprintf costs pages */
  nh_lock_acquire(&g_lock);
  uint64_t first = g_interval_ms;
  nh_lock_release(&g_lock);
  if (!((uintptr_t)arg & 1) && first > FIRST_DELAY_MS) first = FIRST_DELAY_MS;
  nh_os_sleep_ms(first);
  for (;;) {
    nh_lock_acquire(&g_lock);
    bool go = round_locked(gen);
    uint64_t ms = g_interval_ms;
    nh_lock_release(&g_lock);
    if (!go) return NULL;
    nh_os_sleep_ms(ms);
  }
}

/* Starts a thread of a new generation (in a fork child: one that waits an
 * interval first). Caller holds g_lock. */
static void spawn_locked(bool child) {
  uint64_t gen = ++g_gen;
  g_running = 1;
  void *arg = (void *)(uintptr_t)(gen << 1 | (child ? 1 : 0));
  if (nh_os_thread_start(publisher, arg) != 0) g_running = 0;
}

/* Drops the region (it disappears from /proc/PID/fd). Caller holds g_lock. */
static void region_drop_locked(void) {
  if (g_region) atomic_store_explicit(&g_region->state, NH_PUB_EXITING, memory_order_relaxed);
  nh_os_memfd_unmap(g_region, g_size, g_fd, g_id);
  g_region = NULL, g_size = 0, g_fd = -1, g_cpu_capacity = 0;
}

static void publish_at_exit(void) {
  nh_lock_acquire(&g_lock);
  g_gen++; /* the thread stops at its next round */
  g_running = 0;
  region_drop_locked();
  nh_lock_release(&g_lock);
}

/* ---- the interface with api/init.c ------------------------------------------------ */

void nh_publish_apply(const nh_config *cfg) {
  bool on = cfg->v[NH_OPT_STATS_PUBLISH].choice == NH_PUBLISH_YES;
  uint64_t ms = cfg->v[NH_OPT_STATS_PUBLISH_INTERVAL].u;
  nh_lock_acquire(&g_lock);
  g_interval_ms = ms < 10 ? 10 : ms;
  if (on && !g_running) {
    spawn_locked(false);
  } else if (!on && g_running) {
    g_gen++;
    g_running = 0;
    region_drop_locked();
  }
  nh_lock_release(&g_lock);
}

void nh_publish_pause(void) { nh_lock_acquire(&g_lock); }

void nh_publish_resume(void) {
  if (g_region != NULL && g_running) {
    fill_header(g_region, g_size); /* the cache mode may have changed */
  }
  nh_lock_release(&g_lock);
}

void nh_publish_postfork_child(void) {
  nh_lock_reset(&g_lock);
  /* The mapping is shared with the parent, whose thread still writes it:
   * unmap it untouched and publish our own. */
  nh_os_memfd_unmap(g_region, g_size, g_fd, g_id);
  g_region = NULL, g_size = 0, g_fd = -1, g_cpu_capacity = 0;
  if (g_running) spawn_locked(true);
}
