/*
 * api/host_notify.c: memory load against numaheap's own budget, the
 * pressure hook, and the notifier thread that calls the runtime's
 * ICLRMemoryNotificationCallback.
 *
 * Load = committed bytes of all nodes (heaps and VirtualAlloc commits) over
 * the sum of the nodes' budgets. Available = sum over nodes of
 * budget - committed (0 for a node over its budget). In a cgroup with a
 * limit (api/container.c), GetMemoryLoad reports the cgroup's usage over
 * its hard limit, memory.max (over memory.high when there is no max)
 * instead (available: the lower of limit - usage and the budgets' room).
 * The notifier judges by the highest of: the budgets' load, usage over
 * memory.max, and usage over memory.high scaled so that reaching
 * memory.high is [notify] low (the kernel throttles there; it fails
 * nothing, so memory.high is where Low and the trim begin, and High comes
 * once the usage is under high/low of it: 60/90 = two thirds by default).
 *
 * Pressure comes from the heaps (a request spilled or failed: the hook
 * below) and from PSI: a trigger on the cgroup's memory.pressure (or
 * /proc/pressure/memory) of [notify] psi ms of stall per 2 s window, which
 * the notifier thread polls instead of sleeping on nt_cond. On entering
 * LOW the notifier trims (every cache flushed, free pages purged: nh_trim)
 * and counts it (nh_cgroup_stats.low_trims), and each Low is counted by
 * its cause (NH_LOW_*: load, memory.high, a request, PSI alone); while the
 * load is at [notify] high or above it lets api/container.c re-read the
 * cgroup's limits.
 *
 * States of the notifier (guarded by nt_mutex), edge-triggered with
 * hysteresis between [notify] high and [notify] low:
 *   NORMAL   --load >= low, or a request failed/spilled, or PSI fired-->
 *            LOW (send Low)
 *   LOW (load-driven) --load < high, no new pressure-->  NORMAL (send High)
 *   LOW (pressure-driven: load < low when it began) --no new pressure for
 *            NEUTRAL_POLLS polls (PSI_QUIET_POLLS when the last pressure
 *            was PSI's: a trigger fires at most once per window, so a
 *            stall that goes on shows only every 2 s)--> NORMAL, sending
 *            High if the load is under high, else Neutral (so the runtime
 *            leaves low-memory mode); load reaching low makes it load-driven.
 * While requests keep spilling or failing, or tasks keep stalling, LOW
 * stays (no Low/High ping-pong).
 * One notification per crossing; a new registration starts from NORMAL.
 *
 * Threads. The pressure hook runs on any allocating thread: it stores
 * atomics and signals nt_cond (no lock, never blocks on ours). The notifier
 * thread (started by the first registration, never stopped) waits on
 * nt_cond while no callback is registered, else polls every POLL_MS or when
 * signalled. It evaluates the load under nt_mutex and calls the callback
 * with nt_mutex released, holding a reference of its own.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "api/host_internal.h"
#include "api/internal.h"
#include "numa/os.h"

#define POLL_MS 100
#define NEUTRAL_POLLS 10 /* ~1 s without pressure */
#define PSI_WINDOW_US 2000000u
/* ~4 s without pressure after PSI's: a trigger fires at most once per 2 s
 * window however long the stall lasts, so quiet must outlast two windows */
#define PSI_QUIET_POLLS (2 * (int)(PSI_WINDOW_US / 1000u) / POLL_MS)

static pthread_mutex_t nt_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nt_cond;                   /* Initialised with nt_thread (monotonic clock) */
static ICLRMemoryNotificationCallback *nt_cb;    /* Guarded by nt_mutex */
static bool nt_thread;                           /* Guarded by nt_mutex: started */
static bool nt_low, nt_low_by_load;              /* Guarded by nt_mutex */
static bool nt_trim;                             /* Guarded by nt_mutex: trim after sending Low */
static int nt_quiet;                             /* Guarded by nt_mutex: polls without pressure */
static int nt_cause;                             /* Guarded by nt_mutex: why LOW began (NH_LOW_*) */
static bool nt_psi_fired;                        /* Guarded by nt_mutex: a PSI event since evaluate */
static bool nt_psi_last;                         /* Guarded by nt_mutex: the last pressure was PSI's */
/* Synchronization: atomic. nt_pressure: set with release by the hook,
 * exchanged with acquire by the notifier. nt_active: relaxed hint
 * (1 while a callback is registered); a missed signal costs one poll. */
static _Atomic int nt_pressure, nt_active;
/* Counters. Synchronization: atomic, relaxed. */
static _Atomic uint64_t nt_events[3], nt_sent[4];
static _Atomic int nt_low_shown;
static int nt_psi_fd = -1;   /* Guarded by nt_mutex: the PSI trigger, -1 none */
static bool nt_psi_tried;    /* Guarded by nt_mutex */
static _Atomic uint64_t nt_psi_events; /* relaxed counter */
static _Atomic uint64_t nt_lows[NH_LOW_CAUSES]; /* relaxed counters: Lows sent, by cause */

/* ---- load ----------------------------------------------------------------------------- */

/* Load in thousandths of a percent; *available gets the bytes left. */
static uint64_t load_milli(uint64_t *available) {
  uint64_t committed = 0, budget = 0, avail = 0;
  for (int i = 0; i < nh_g.nnodes; i++) {
    uint64_t b = atomic_load_explicit(&nh_g.heap[i].budget, memory_order_relaxed);
    uint64_t c = atomic_load_explicit(&nh_g.heap[i].st.committed, memory_order_relaxed);
    budget += b;
    committed += c;
    avail += c < b ? b - c : 0;
  }
  *available = avail;
  if (budget == 0) return nh_g.nnodes ? 100000 : 0;
  uint64_t m = (uint64_t)((unsigned __int128)committed * 100000u / budget);
  return m > 100000 ? 100000 : m;
}

static uint64_t ratio_milli(uint64_t used, uint64_t limit) {
  uint64_t m = (uint64_t)((unsigned __int128)used * 100000u / limit);
  return m > 100000 ? 100000 : m;
}

/* The cgroup's load as GetMemoryLoad reports it, in thousandths of a
 * percent, with *room the bytes left: usage over memory.max, or over
 * memory.high when there is no max. false without either. */
static bool cgroup_load_milli(uint64_t *load, uint64_t *room) {
  nh_container_figures f;
  if (!nh_container_load(&f)) return false;
  uint64_t used = f.max != NH_CGROUP_NO_LIMIT ? f.usage : f.high_usage;
  uint64_t limit = f.max != NH_CGROUP_NO_LIMIT ? f.max : f.high;
  *load = ratio_milli(used, limit);
  *room = used < limit ? limit - used : 0;
  return true;
}

/* What the notifier judges by: *hard, the higher of the budgets' load and
 * the cgroup's usage over memory.max; *soft, the usage over memory.high
 * scaled so that reaching memory.high is [notify] low (0 without a high). */
static void notify_loads(uint64_t *hard, uint64_t *soft) {
  uint64_t avail;
  nh_container_figures f;
  *hard = load_milli(&avail);
  *soft = 0;
  if (!nh_container_load(&f)) return;
  if (f.max != NH_CGROUP_NO_LIMIT && ratio_milli(f.usage, f.max) > *hard)
    *hard = ratio_milli(f.usage, f.max);
  if (f.high != NH_CGROUP_NO_LIMIT) {
    uint64_t low = nh_cfg->v[NH_OPT_NOTIFY_LOW].milli_pct;
    uint64_t s = (uint64_t)((unsigned __int128)f.high_usage * low / f.high);
    *soft = s > 100000 ? 100000 : s;
  }
}

void nh_host_load(DWORD *percent, SIZE_T *available) {
  uint64_t avail, load = load_milli(&avail), cg, room;
  if (cgroup_load_milli(&cg, &room)) {
    load = cg;
    if (room < avail) avail = room;
  }
  *percent = (DWORD)(load / 1000);
  *available = (SIZE_T)avail;
}

/* ---- pressure ----------------------------------------------------------------------------- */

void nh_host_pressure(int node, int level) {
  if (level < 0 || level > 2) level = 2;
  atomic_fetch_add_explicit(&nt_events[level], 1, memory_order_relaxed);
  atomic_store_explicit(&nt_pressure, 1, memory_order_release); /* pairs with the exchange in evaluate */
  if (atomic_load_explicit(&nt_active, memory_order_relaxed)) pthread_cond_signal(&nt_cond);
}

/* Synchronization: set once (CAS); the hook chained is read after it. */
static _Atomic int hook_installed;
static void (*chained_hook)(int node, int level); /* written before the CAS-winner installs ours */

static void pressure_hook(int node, int level) {
  nh_host_pressure(node, level);
  if (chained_hook) chained_hook(node, level);
}

void nh_host_notify_install(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong_explicit(&hook_installed, &expected, 1, memory_order_acq_rel,
                                               memory_order_acquire))
    return;
  if (nh_g.pressure_hook != pressure_hook) chained_hook = nh_g.pressure_hook;
  /* The heaps read the hook without a lock; a pointer store is single-copy
   * atomic, and release orders chained_hook before it. */
  __atomic_store_n(&nh_g.pressure_hook, pressure_hook, __ATOMIC_RELEASE);
}

/* ---- the notifier ---------------------------------------------------------------------------- */

static EMemoryAvailable enter_low(bool by_load, int cause) {
  nt_low = true;
  nt_trim = true;
  nt_low_by_load = by_load;
  nt_quiet = 0;
  nt_cause = cause;
  return eMemoryAvailableLow;
}

static EMemoryAvailable leave_low(EMemoryAvailable what) {
  nt_low = false;
  return what;
}

/* What to send now (0: nothing). Caller holds nt_mutex. */
static EMemoryAvailable evaluate(void) {
  uint64_t hard, soft;
  notify_loads(&hard, &soft);
  uint64_t load = hard > soft ? hard : soft;
  bool request = atomic_exchange_explicit(&nt_pressure, 0, memory_order_acquire) != 0;
  bool psi = nt_psi_fired, pressure = request || psi;
  nt_psi_fired = false;
  uint32_t low = nh_cfg->v[NH_OPT_NOTIFY_LOW].milli_pct, high = nh_cfg->v[NH_OPT_NOTIFY_HIGH].milli_pct;
  if (load >= high || pressure) nh_container_tight();
  if (pressure) nt_psi_last = !request; /* PSI fires once per window: wait longer for quiet */
  if (!nt_low) {
    if (load >= low) return enter_low(true, hard >= low ? NH_LOW_LOAD : NH_LOW_HIGH);
    return pressure ? enter_low(false, request ? NH_LOW_REQUEST : NH_LOW_PSI) : 0;
  }
  if (pressure) { /* requests still spill or fail, or tasks still stall: stay low */
    nt_quiet = 0;
    return 0;
  }
  if (load >= low) nt_low_by_load = true;
  if (nt_low_by_load) return load < high ? leave_low(eMemoryAvailableHigh) : 0;
  if (++nt_quiet < (nt_psi_last ? PSI_QUIET_POLLS : NEUTRAL_POLLS)) return 0;
  return leave_low(load < high ? eMemoryAvailableHigh : eMemoryAvailableNeutral);
}

/* Opens the PSI trigger once ([notify] psi ms per 2 s; the cgroup's
 * memory.pressure, else the machine's). Caller holds nt_mutex. */
static void psi_open(void) {
  if (nt_psi_tried) return;
  nt_psi_tried = true;
  uint64_t ms = nh_cfg->v[NH_OPT_NOTIFY_PSI].u;
  if (ms == 0) return;
  static nh_cgroup cg NH_BSS_COLD; /* Guarded by nt_mutex */
  char path[NH_CGROUP_PATH_MAX + 32] = "/proc/pressure/memory";
  nh_container_get(&cg);
  if (cg.version == 2) snprintf(path, sizeof path, "%s/memory.pressure", cg.dir);
  int err;
  nt_psi_fd = nh_os_psi_open(path, (uint32_t)ms * 1000u, PSI_WINDOW_US, &err);
  if (nt_psi_fd < 0 && cg.version == 2)
    nt_psi_fd = nh_os_psi_open("/proc/pressure/memory", (uint32_t)ms * 1000u, PSI_WINDOW_US, &err);
}

/* Waits POLL_MS on the PSI trigger (nt_mutex released meanwhile): an event
 * is pressure. Caller holds nt_mutex. */
static void wait_psi(void) {
  int fd = nt_psi_fd;
  pthread_mutex_unlock(&nt_mutex);
  int r = nh_os_psi_wait(fd, POLL_MS);
  pthread_mutex_lock(&nt_mutex);
  if (r > 0) {
    atomic_fetch_add_explicit(&nt_psi_events, 1, memory_order_relaxed);
    nt_psi_fired = true;
  } else if (r < 0 && nt_psi_fd == fd) {
    nh_os_psi_close(fd);
    nt_psi_fd = -1;
  }
}

static void wait_poll(void) {
  psi_open();
  if (nt_psi_fd >= 0) {
    wait_psi();
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_nsec += POLL_MS * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_cond_timedwait(&nt_cond, &nt_mutex, &ts);
}

static void notify_send(ICLRMemoryNotificationCallback *cb, EMemoryAvailable what) {
  ICLRMemoryNotificationCallback_AddRef(cb);
  atomic_fetch_add_explicit(&nt_sent[what], 1, memory_order_relaxed);
  if (what == eMemoryAvailableLow) atomic_fetch_add_explicit(&nt_lows[nt_cause], 1, memory_order_relaxed);
  atomic_store_explicit(&nt_low_shown, what == eMemoryAvailableLow, memory_order_relaxed);
  pthread_mutex_unlock(&nt_mutex);
  ICLRMemoryNotificationCallback_OnMemoryNotification(cb, what);
  ICLRMemoryNotificationCallback_Release(cb);
  pthread_mutex_lock(&nt_mutex);
}

static void *notifier_main(void *arg) {
  pthread_mutex_lock(&nt_mutex);
  for (;;) {
    while (nt_cb == NULL) pthread_cond_wait(&nt_cond, &nt_mutex);
    EMemoryAvailable what = evaluate();
    if (what) notify_send(nt_cb, what);
    if (nt_trim) { /* entering low: give back what the caches and free pages hold */
      nt_trim = false;
      pthread_mutex_unlock(&nt_mutex);
      nh_trim();
      nh_container_count_trim();
      pthread_mutex_lock(&nt_mutex);
    }
    if (nt_cb) wait_poll();
  }
  return NULL;
}

/* Caller holds nt_mutex. */
static bool start_thread(void) {
  if (nt_thread) return true;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&nt_cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_t t;
  if (pthread_create(&t, NULL, notifier_main, NULL) != 0) return false;
  pthread_detach(t);
  nt_thread = true;
  return true;
}

HRESULT nh_host_notify_register(ICLRMemoryNotificationCallback *cb) {
  pthread_mutex_lock(&nt_mutex);
  if (cb && !start_thread()) {
    pthread_mutex_unlock(&nt_mutex);
    return E_OUTOFMEMORY;
  }
  ICLRMemoryNotificationCallback *old = nt_cb;
  if (cb) ICLRMemoryNotificationCallback_AddRef(cb);
  nt_cb = cb;
  nt_low = nt_low_by_load = nt_psi_fired = nt_psi_last = false;
  nt_quiet = 0;
  atomic_store_explicit(&nt_pressure, 0, memory_order_relaxed);
  atomic_store_explicit(&nt_active, cb != NULL, memory_order_relaxed);
  if (cb) pthread_cond_signal(&nt_cond);
  pthread_mutex_unlock(&nt_mutex);
  if (old) ICLRMemoryNotificationCallback_Release(old);
  return S_OK;
}

void nh_host_notify_stats_get(nh_host_notify_stats *out) {
  for (int l = 0; l < 3; l++)
    out->pressure_events[l] = atomic_load_explicit(&nt_events[l], memory_order_relaxed);
  for (int k = 0; k < 4; k++) out->sent[k] = atomic_load_explicit(&nt_sent[k], memory_order_relaxed);
  out->low_mode = atomic_load_explicit(&nt_low_shown, memory_order_relaxed);
  out->psi_events = atomic_load_explicit(&nt_psi_events, memory_order_relaxed);
  for (int c = 0; c < NH_LOW_CAUSES; c++)
    out->lows[c] = atomic_load_explicit(&nt_lows[c], memory_order_relaxed);
}
