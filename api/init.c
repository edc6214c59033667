/*
 * api/init.c: start-up. Reads the configuration (file, then environment),
 * discovers the topology, builds the node heaps and the caches, in that
 * order, on the first allocation or on nh_init().
 *
 * Re-entrancy: hwloc, libinih and libc allocate while we start. Those calls
 * come back into numaheap on the starting thread while nh_state is STARTING;
 * they are served from the bootstrap region (a bump allocator over mmap'd
 * chunks, never freed: frees of bootstrap blocks are ignored). Other threads
 * wait until the state is READY.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "numa/os.h"
#include "numaheap/numaheap.h"
#include "percpu/cache.h"

_Atomic int nh_state;
const nh_config *nh_cfg;
int nh_default_level = NH_LEVEL_APPDOMAIN;
int nh_stats_fd = -1;

static __thread int tl_starting __attribute__((tls_model("initial-exec")));

/* Built by start(); constant while READY (replaced only by nh_reinit). */
static nh_config *g_cfg;
static nh_topo g_topo;
static nh_node_limits *g_limits;
static int g_limits_n;
static int g_hooks_installed;

const nh_topo *nh_topology(void) { return &g_topo; }

/* ---- bootstrap region ------------------------------------------------------------ */

/* One reservation of BOOT_SIZE bytes, mapped on first use (pages are touched
 * only as they are used). Blocks carry their size in the 8 bytes before them.
 * Frees of bootstrap blocks are ignored: start-up allocates little. */
#define BOOT_SIZE ((size_t)64 << 20)

static nh_lock boot_lock;
/* Set once under boot_lock, then constant; read without the lock by
 * nh_boot_owns (a stale NULL only means "not a bootstrap block" for pointers
 * that cannot be bootstrap blocks yet). */
static uint8_t *_Atomic boot_base;
static size_t boot_used; /* Guarded by boot_lock */

void *nh_boot_alloc(size_t size, size_t align) {
  if (align < NH_MIN_ALIGN) align = NH_MIN_ALIGN;
  if (size > BOOT_SIZE / 2 || align > 4096) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = NULL;
  nh_lock_acquire(&boot_lock);
  uint8_t *base = atomic_load_explicit(&boot_base, memory_order_relaxed);
  if (base == NULL && (base = nh_os_map_aligned(BOOT_SIZE, nh_os_page_size(), -1)) != NULL) {
    (void)nh_os_advise_small(base, BOOT_SIZE); /* a few KiB used: no 2 MiB page under THP `always` */
    atomic_store_explicit(&boot_base, base, memory_order_release);
  }
  size_t off = (boot_used + 16 + align - 1) & ~(align - 1);
  if (base != NULL && off + size <= BOOT_SIZE) {
    p = base + off;
    ((size_t *)p)[-1] = size;
    boot_used = off + size;
  }
  nh_lock_release(&boot_lock);
  if (p == NULL) errno = ENOMEM;
  return p;
}

bool nh_boot_owns(const void *p) {
  const uint8_t *base = atomic_load_explicit(&boot_base, memory_order_acquire);
  return base != NULL && (size_t)((const uint8_t *)p - base) < BOOT_SIZE;
}

size_t nh_boot_size(const void *p) { return ((const size_t *)p)[-1]; }

/* ---- building from a configuration ------------------------------------------------ */

static void fill_params(const nh_config *cfg, nh_heap_params *hp, nh_cache_params *cp) {
  for (int i = 0; i < g_topo.nnodes; i++) {
    uint64_t mem = g_topo.nodes[i].mem_bytes;
    nh_size_spec b, r;
    nh_config_node_specs(cfg, i, &b, &r);
    g_limits[i].budget = nh_size_resolve(b, mem);
    g_limits[i].reserve = nh_size_resolve(r, mem);
  }
  nh_container_cap(&g_topo, cfg, g_limits);
  hp->topo = &g_topo;
  hp->limits = g_limits;
  hp->task_limit_milli_pct = cfg->v[NH_OPT_TASK_LIMIT].milli_pct;
  hp->spill[0] = cfg->v[NH_OPT_TASK_SPILL].choice;
  hp->spill[1] = cfg->v[NH_OPT_APPDOMAIN_SPILL].choice;
  hp->spill[2] = cfg->v[NH_OPT_PROCESS_SPILL].choice;
  hp->purge_delay_ms = cfg->v[NH_OPT_HEAP_PURGE_DELAY].u;
  hp->huge_pages = cfg->v[NH_OPT_HEAP_HUGE_PAGES].choice;
  hp->huge_keep = cfg->v[NH_OPT_HEAP_HUGE_KEEP].size.bytes;
  hp->paranoid = cfg->v[NH_OPT_SAFETY_MODE].choice == NH_SAFETY_PARANOID;
  hp->xfer_bytes = cfg->v[NH_OPT_CACHE_TRANSFER_SIZE].size.bytes;
  hp->xfer_decay_ms = cfg->v[NH_OPT_CACHE_TRANSFER_DECAY].u;
  switch (cfg->v[NH_OPT_CACHE_MODE].choice) {
  case NH_CHOICE_CACHE_PERTHREAD: cp->mode = NH_CACHE_PERTHREAD; break;
  case NH_CHOICE_CACHE_OFF: cp->mode = NH_CACHE_OFF; break;
  default: cp->mode = NH_CACHE_PERCPU; break;
  }
  cp->bytes = cfg->v[NH_OPT_CACHE_SIZE].size.bytes;
  cp->default_level = cfg->v[NH_OPT_HEAP_DEFAULT_LEVEL].choice;
}

/* Loads the topology; a warning of the source (hwloc could not be loaded:
 * read from /sys) goes to stderr. */
static int load_topology(const nh_config *cfg, char *err, size_t errlen) {
  nh_topo_source src = nh_config_topo_source(cfg);
  if (nh_topo_load(&g_topo, &src, err, errlen) != 0) return -1;
  if (g_topo.warning[0]) {
    char msg[480];
    int n = snprintf(msg, sizeof msg, "numaheap: warning: %s\n", g_topo.warning);
    nh_os_write_stderr(msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
  }
  return 0;
}

/* Taken while g_limits is recomputed and applied after start-up (nh_init's
 * reconfiguration, nh_limits_refresh). Guards g_limits then. */
static nh_lock limits_lock;

/* Lock order at fork: boot lock, the caches' drain locks, then the heaps'
 * (issue 5: without the caches' locks a fork during a drain left blocks owned
 * twice in the child). */
/* The handlers are registered when the library loads (nh_fork_handlers_install),
 * possibly before start-up: caches and heaps are locked only when the
 * allocator was READY at the prepare step. Guarded by boot_lock (held across the fork). */
static bool fork_locked_heaps;

static void prefork(void) {
  nh_lock_acquire(&boot_lock);
  fork_locked_heaps = nh_ready();
  if (fork_locked_heaps) {
    nh_cache_prefork();
    nh_heaps_prefork();
  }
  nh_os_meta_prefork(); /* last: a leaf */
}
static void postfork_parent(void) {
  nh_os_meta_postfork(0);
  if (fork_locked_heaps) {
    nh_heaps_postfork(0);
    nh_cache_postfork_parent();
  }
  nh_lock_release(&boot_lock);
}
static void postfork_child(void) {
  nh_os_meta_postfork(1);
  if (fork_locked_heaps) nh_heaps_postfork(1);
  nh_cache_postfork_child();
  nh_container_postfork_child();
  nh_lock_reset(&limits_lock);
  nh_lock_reset(&boot_lock);
  if (fork_locked_heaps) nh_publish_postfork_child(); /* last: it may allocate */
}

static _Atomic int g_fork_hooks; /* 1 once the fork handlers are registered (relaxed: a once flag) */

/* Issue 5: prepare handlers run in reverse order of registration, so one
 * registered before numaheap's (a constructor of the program or of a library)
 * ran while numaheap held its fork locks, and a malloc in it waited forever.
 * api/override.c calls this from libnumaheap's constructor, before start-up. */
void nh_fork_handlers_install(void) {
  if (atomic_exchange_explicit(&g_fork_hooks, 1, memory_order_relaxed)) return;
  pthread_atfork(prefork, postfork_parent, postfork_child);
}

/* A request spilled or failed: memory is tight, the cgroup may have changed. */
static void tight_hook(int node, int level) {
  (void)node, (void)level;
  nh_container_tight();
}

static void install_hooks(const nh_config *cfg) {
  nh_g.reclaim_hook = nh_cache_flush_thread;
  if (nh_g.pressure_hook == NULL) nh_g.pressure_hook = tight_hook;
  if (g_hooks_installed) return;
  g_hooks_installed = 1;
  nh_fork_handlers_install();
  const char *env = getenv("NUMAHEAP_STATS");
  int print = cfg->v[NH_OPT_STATS_PRINT].choice;
  if (env && *env && strcmp(env, "0") != 0) print = 1;
  if (print) {
    nh_stats_fd = nh_os_dup_stderr();
    atexit(nh_stats_at_exit);
  }
}

/* The reserve is pre-committed at start-up when the configuration asks for
 * one explicitly; the default reserve (1%) is a budget-only reserve until the
 * CLR host API starts (NhCreateHostMemoryManager pre-commits it), so that a
 * plain program under LD_PRELOAD does not fault in 1% of every node. */
static bool reserve_configured(const nh_config *cfg) {
  if (cfg->set[NH_OPT_HEAP_RESERVE]) return true;
  for (int k = 0; k < cfg->noverrides; k++)
    if (cfg->overrides[k].has_reserve) return true;
  return false;
}

/* Reads the process's cgroup; a problem is reported on stderr (the
 * allocator then runs as if in no cgroup: it is not the configuration's
 * fault). */
static void say(const char *err, const char *then) __attribute__((noinline, cold));
static void say(const char *err, const char *then) {
  char msg[700];
  int n = snprintf(msg, sizeof msg, "numaheap: %s; %s\n", err, then);
  nh_os_write_stderr(msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

static void read_cgroup(const nh_config *cfg) {
  char err[600];
  if (nh_container_read(cfg, err, sizeof err) != 0) say(err, "the cgroup's limits are not applied");
}

/* Builds topology, heaps and caches from cfg. 0, or -1 with err. */
static int build(const nh_config *cfg, char *err, size_t errlen) {
  if (load_topology(cfg, err, errlen) != 0) return -1;
  read_cgroup(cfg);
  g_limits_n = g_topo.nnodes;
  g_limits = nh_os_meta_alloc(sizeof(nh_node_limits) * (size_t)g_limits_n);
  nh_heap_params hp;
  nh_cache_params cp;
  if (g_limits == NULL) {
    snprintf(err, errlen, "out of memory for node limits");
    nh_topo_free(&g_topo);
    return -1;
  }
  fill_params(cfg, &hp, &cp);
  nh_os_set_bind(cfg->v[NH_OPT_HEAP_BIND].choice == NH_BIND_STRICT);
  if (nh_heaps_init(&hp, err, errlen) != 0 || nh_cache_init(&cp) != 0) {
    nh_os_meta_free(g_limits, sizeof(nh_node_limits) * (size_t)g_limits_n);
    nh_topo_free(&g_topo);
    return -1;
  }
  nh_default_level = cp.default_level;
  if (reserve_configured(cfg)) nh_heaps_precommit_reserves();
  nh_config_copy(g_cfg, cfg);
  nh_cfg = g_cfg;
  install_hooks(g_cfg);
  return 0;
}

/* Defaults < file (path, or NUMAHEAP_CONFIG) < environment. 0 or -1 with err. */
static int read_config(nh_config *cfg, const char *path, char *err, size_t errlen) {
  nh_config_defaults(cfg);
  const char *file = path ? path : getenv("NUMAHEAP_CONFIG");
  if (file && *file && nh_config_parse_file(cfg, file, err, errlen) != 0) return -1;
  return nh_config_apply_env(cfg, NULL, err, errlen);
}

/* The configuration was refused (err says why): said, then the allocator
 * built again on its defaults. Apart from start() so that start-up's
 * stack stays shallow: its pages stay resident in every process. */
static void on_defaults(const char *err, bool from_api) __attribute__((noinline, cold));
static void on_defaults(const char *err, bool from_api) {
  if (from_api) nh_set_error("%s", err);
  else say(err, "running on defaults");
  char err2[600];
  nh_config_defaults(g_cfg);
  if (build(g_cfg, err2, sizeof err2) != 0) nh_fatal("cannot start on defaults: %s", err2);
}

/* The start-up proper. from_api: report a bad configuration through the
 * return value; otherwise on stderr. Either way the allocator then runs on
 * its defaults. */
static int start(const char *path, bool from_api) {
  char err[600];
  if (g_cfg == NULL && (g_cfg = nh_os_meta_alloc(sizeof *g_cfg)) == NULL)
    nh_fatal("cannot map memory for the configuration");
  int rc = read_config(g_cfg, path, err, sizeof err);
  if (rc == 0) rc = build(g_cfg, err, sizeof err);
  if (rc != 0) on_defaults(err, from_api);
  return rc;
}

/* The inline fast paths (percpu/cache.h) once the heaps are ready: not in
 * paranoid mode (every block is filled and checked) nor under ASan or
 * Valgrind (every block is tracked): those take the full path. */
static void open_fast_paths(void) { nh_cache_fast_open(!nh_g.paranoid && !NH_TRACKING); }

/* Runs start() as the one starting thread. */
static int start_once(const char *path, bool from_api, int *rc) {
  int expected = NH_STATE_NONE;
  if (!atomic_compare_exchange_strong_explicit(&nh_state, &expected, NH_STATE_STARTING,
                                               memory_order_acquire, memory_order_acquire))
    return 0;
  tl_starting = 1;
  *rc = start(path, from_api);
  tl_starting = 0;
  atomic_store_explicit(&nh_state, NH_STATE_READY, memory_order_release);
  open_fast_paths();
  nh_publish_apply(nh_cfg); /* after READY: starting a thread allocates */
  return 1;
}

bool nh_start(void) {
  for (;;) {
    int s = atomic_load_explicit(&nh_state, memory_order_acquire);
    if (s == NH_STATE_READY) return true;
    if (s == NH_STATE_STARTING) {
      if (tl_starting) return false;
      sched_yield();
      continue;
    }
    int rc;
    if (start_once(NULL, false, &rc)) return true;
  }
}

/* ---- nh_init and reconfiguration ----------------------------------------------------- */

/* Applies the live-changeable parts of cfg to the running allocator. */
static int reconfigure(const nh_config *cfg) {
  const nh_config *cur = nh_cfg;
  if (strcmp(cfg->synthetic, cur->synthetic) != 0 || strcmp(cfg->xml, cur->xml) != 0 ||
      cfg->v[NH_OPT_TOPOLOGY_DISCOVERY].choice != cur->v[NH_OPT_TOPOLOGY_DISCOVERY].choice) {
    nh_set_error("the [topology] section cannot change after the allocator started");
    errno = EBUSY;
    return -1;
  }
  if (cfg->v[NH_OPT_SAFETY_MODE].choice != cur->v[NH_OPT_SAFETY_MODE].choice) {
    nh_set_error("the [safety] section cannot change after the allocator started");
    errno = EBUSY;
    return -1;
  }
  if (cfg->v[NH_OPT_CACHE_MODE].choice != cur->v[NH_OPT_CACHE_MODE].choice ||
      cfg->v[NH_OPT_CACHE_SIZE].size.bytes != cur->v[NH_OPT_CACHE_SIZE].size.bytes ||
      cfg->v[NH_OPT_CACHE_TRANSFER_SIZE].size.bytes !=
          cur->v[NH_OPT_CACHE_TRANSFER_SIZE].size.bytes ||
      cfg->v[NH_OPT_CACHE_TRANSFER_DECAY].u != cur->v[NH_OPT_CACHE_TRANSFER_DECAY].u) {
    nh_set_error("the [cache] section cannot change after the allocator started");
    errno = EBUSY;
    return -1;
  }
  nh_heap_params hp;
  nh_cache_params cp;
  nh_lock_acquire(&limits_lock);
  read_cgroup(cfg); /* [cgroup] may have changed */
  fill_params(cfg, &hp, &cp);
  nh_heaps_set_limits(&hp);
  nh_os_set_bind(cfg->v[NH_OPT_HEAP_BIND].choice == NH_BIND_STRICT); /* binds from now on */
  nh_default_level = cp.default_level;
  nh_config_copy(g_cfg, cfg);
  nh_lock_release(&limits_lock);
  return 0;
}

void nh_limits_refresh(void) {
  if (!nh_ready()) return;
  nh_heap_params hp;
  nh_cache_params cp;
  nh_lock_acquire(&limits_lock);
  fill_params(g_cfg, &hp, &cp);
  nh_heaps_set_limits(&hp);
  nh_lock_release(&limits_lock);
}

NH_API int nh_init(const char *config_path) {
  int rc = 0;
  nh_clear_error();
  if (start_once(config_path, true, &rc)) {
    if (rc != 0) errno = EINVAL;
    return rc;
  }
  if (!nh_start()) {
    nh_set_error("nh_init called while the allocator is starting");
    errno = EBUSY;
    return -1;
  }
  if (config_path == NULL) return 0;
  char err[600];
  nh_config *cfg = nh_os_meta_alloc(sizeof *cfg);
  if (cfg == NULL) {
    nh_set_error("nh_init: out of memory");
    errno = ENOMEM;
    return -1;
  }
  rc = read_config(cfg, config_path, err, sizeof err);
  if (rc != 0) {
    nh_set_error("%s", err);
    errno = EINVAL;
  } else if ((rc = reconfigure(cfg)) == 0) {
    nh_publish_apply(nh_cfg);
  }
  nh_os_meta_free(cfg, sizeof *cfg);
  return rc;
}

static int reinit_paused(const nh_config *cfg, char *err, size_t errlen);

int nh_reinit(const nh_config *cfg, char *err, size_t errlen) {
  if (!nh_start()) return -1;
  nh_publish_pause();
  int rc = reinit_paused(cfg, err, errlen);
  nh_publish_resume();
  nh_publish_apply(nh_cfg);
  return rc;
}

/* nh_reinit with the publisher paused. */
static int reinit_paused(const nh_config *cfg, char *err, size_t errlen) {
  nh_cache_fast_open(0);
  nh_cache_flush_thread();
  nh_heaps_destroy();
  nh_cache_reset();
  nh_topo_free(&g_topo);
  nh_os_meta_free(g_limits, sizeof(nh_node_limits) * (size_t)g_limits_n);
  g_limits = NULL;
  nh_config_copy(g_cfg, cfg);
  if (build(g_cfg, err, errlen) == 0) {
    open_fast_paths();
    return 0;
  }
  char err2[600];
  nh_config_defaults(g_cfg);
  if (build(g_cfg, err2, sizeof err2) != 0) nh_fatal("cannot restart on defaults: %s", err2);
  open_fast_paths();
  return -1;
}
