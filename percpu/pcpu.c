/*
 * percpu/pcpu.c: per-CPU caches on restartable sequences (docs/percpu.md).
 *
 * One region per possible CPU, at nh_rseq_g.base + (cpu << NH_RSEQ_STRIDE_SHIFT), holding
 * per size class an array of block pointers ("slab") and its header
 * (rseq_x86_64.h), plus the remote buffer (class 0's slab: other nodes'
 * blocks freed on this CPU, encoded with their node and class) and counters.
 * Every block in a CPU's slabs belongs to that CPU's node (region->node,
 * constant) and is marked free.
 *
 * States of a CPU's cache:
 *   UNSET    the region as the OS mapped it, all zero (ready_flag 0): count 0 and
 *            bounds (0, 0), so every sequence fails without a store and the
 *            thread takes a slow path, which sets the region up (setup_lock;
 *            the flag stored last, with release). A CPU that never runs a slow
 *            path costs no page: a small program on a 128-CPU machine writes
 *            one region, not 128. Drainers, statistics and fork skip regions
 *            not set up (ready_flag, acquire);
 *   RUNNING  headers lo = 0, hi = capacity: threads on the CPU push and pop
 *            with restartable sequences, and batch-move under rseq too;
 *   STOPPED  a drainer holds region->lock and set lo = 0xffff, hi = 0 on
 *            every header then fenced the CPU (membarrier RSEQ: any sequence
 *            running there restarts and sees the stopped headers), so no
 *            sequence can commit: the drainer reads and empties the slabs
 *            with plain memory accesses, then restores the headers (release).
 * Threads that find their CPU stopped go to the heaps directly.
 *
 * Capacity: a class's hi is 0 until the class is used on the CPU, then one
 * batch, then (on an overflow) 1/16 of the budget, then (on each further
 * overflow) twice that, up to 1/4 of the budget, as long as the CPU's charged
 * bytes (sum of hi × class size) stay within the byte budget ([cache] size),
 * and the big classes' within their share of it (BIG_SHARE); a class that
 * cannot grow is served by the heap directly. Growing takes the
 * region lock (a try: a busy lock means a drainer, so no growth); raising hi
 * is safe while sequences run (they only see more room). Only a drain lowers
 * hi: it gives every class back and returns the CPU to zero capacity.
 *
 * Lock order: setup_lock < region->lock < bin lock < page lock (a drainer gives blocks
 * back to the heaps while it holds its CPU's lock). Only one region lock is
 * held at a time. No lock is held on the fast paths or across a
 * restartable sequence.
 *
 * Counters: hits is written only inside pop sequences (plain, by its CPU);
 * the others are relaxed atomics written by slow paths (a thread may have
 * migrated since it chose the region: the count is still right).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <sys/rseq.h>

#include "numa/os.h"
#include "percpu/internal.h"
#include "percpu/rseq.h"

#define MAX_PER_CLASS 2048
/* Blocks one refill or overflow moves (the slow paths' stack buffers). */
#define MAX_BATCH 256
/* A class grows to 1/CAP_SHARE of the CPU's byte budget on its first
 * overflow: so at least CAP_SHARE classes fit at that capacity (a server's
 * working set spans dozens of classes) and twice as many at one batch. */
#define CAP_SHARE 16
/* A class that keeps overflowing doubles from there, up to 1/MAX_SHARE of
 * the budget: a burst of a few hundred blocks of one class stays in the
 * cache instead of going through the heap in batches. */
#define MAX_SHARE 4
/* Big classes (two blocks are more than 1/CAP_SHARE of the budget: above
 * 32 KiB with the default 1 MiB) together hold at most 1/BIG_SHARE of the
 * budget, or one block of the class that asks if that is more: so that a
 * few big blocks used once each do not keep the budget from the small
 * classes that a program uses all the time (pystart, docs/percpu.md). */
#define BIG_SHARE 8
#define REMOTE_CAP 64
/* A class with no miss and no overflow for this long is idle: it gives its
 * capacity first when another class needs room (steal). */
#define STEAL_WINDOW_NS 50000000ull
#define STOP_LO 0xffff

typedef struct nh_pc_bounds {
  _Atomic uint16_t lo, hi; /* absolute slot indices; RUNNING/STOPPED (see above);
                              written by drainers and capacity growth only */
  uint32_t pad;
} nh_pc_bounds;

typedef struct nh_pc_cpu {
  int32_t node;   /* +0: constant after init */
  char pad0[NH_RSEQ_TOP_OFF - 4];
  /* hits << 16 | count (absolute index of the first free slot): rseq
   * commits; a drainer while stopped. [0]: the remote buffer. */
  _Atomic uint64_t word[NH_CLASS_COUNT];
  nh_pc_bounds bounds[NH_CLASS_COUNT];
  _Atomic uint64_t misses, refills, drains, remote_sent, idle_drains; /* relaxed */
  _Atomic uint64_t last_slow_ns; /* relaxed: when a slow path last ran here */
  _Atomic int stopped;           /* 1 while a drainer owns the slabs (under lock) */
  nh_lock lock;                  /* drainers and capacity changes of this CPU */
  uint64_t charged;              /* Guarded by lock: sum of hi x class size */
  uint64_t big_charged;          /* Guarded by lock: the part of charged of big classes */
  _Atomic uint64_t steals;       /* relaxed: classes whose capacity went to another */
  /* relaxed: per class, slow-path events (misses, overflows); a class whose
   * count did not move between two looks of steal() is idle */
  _Atomic uint32_t events[NH_CLASS_COUNT];
  uint32_t seen[NH_CLASS_COUNT]; /* Guarded by lock: events at steal()'s last look */
  uint32_t cursor;               /* Guarded by lock: where steal() starts looking */
  uint64_t window_ns;            /* Guarded by lock: when the idleness window began */
  /* Guarded by lock: per class, its events when a steal() for it found
   * nothing to take in this window (0: none did); it tries again once it
   * has twice as many (steal_backs_off) */
  uint32_t short_at[NH_CLASS_COUNT];
  /* relaxed: per class, 1 once an allocation missed, 0 again at the next
   * idleness window (steal): whether the class is also allocated from here
   * (grows_on_overflow) */
  _Atomic uint8_t missed[NH_CLASS_COUNT];
} nh_pc_cpu;

_Static_assert(offsetof(nh_pc_cpu, node) == NH_RSEQ_NODE_OFF, "rseq layout: node");
_Static_assert(offsetof(nh_pc_cpu, word) == NH_RSEQ_TOP_OFF, "rseq layout: commit words");
_Static_assert(offsetof(nh_pc_cpu, bounds) == NH_RSEQ_BND_OFF, "rseq layout: bounds");
_Static_assert(NH_CLASS_SLOTS_MAX == NH_CLASS_COUNT, "rseq layout: classes");
_Static_assert(sizeof(nh_pc_bounds) == 8, "rseq layout: bounds size");
/* counts and bounds are 16-bit slot indices below STOP_LO: layout() keeps
 * a region's slots under this */
#define MAX_REGION_SLOTS 65000u
_Static_assert(MAX_REGION_SLOTS * sizeof(void *) <= (size_t)1 << NH_RSEQ_STRIDE_SHIFT,
               "a region fits its stride");

nh_rseq_layout nh_rseq_g;
int nh_pc_on;
/* Byte offset of a class's slots in a CPU's region; [0]: the remote buffer.
 * Constant while nh_pc_on. */
static uint64_t nh_pc_soff[NH_CLASS_COUNT];

/* Constant while nh_pc_on. */
static uint16_t cap[NH_CLASS_COUNT];   /* slots per class (the most hi reaches); 0: not cached */
static uint16_t full[NH_CLASS_COUNT];  /* capacity after a class's first overflow (<= cap) */
static uint16_t batch[NH_CLASS_COUNT]; /* refill and overflow batch */
static uint8_t big[NH_CLASS_COUNT];    /* 1: a big class (BIG_SHARE) */
static uint64_t budget;                /* bytes of capacity per CPU */
static size_t region_used;             /* bytes of a region in use: header and slots */

static _Atomic uint64_t idle_ns = 1000000000ull; /* relaxed: a period, not a guard */
/* Sets regions up (region_setup); fork holds it so that none is half set up
 * in the child. */
static nh_lock setup_lock;
/* Per CPU, 0 while its region is UNSET, 1 once set up: stored with release
 * under setup_lock after the region is written; loaded with acquire before
 * any use of the region other than the sequences (which need no set-up: see
 * UNSET). Beside the regions, not in them, so that looking at a CPU nothing
 * ran on does not map its region's first page. */
static _Atomic uint8_t *ready_flag; /* one byte a CPU slot, from nh_os_meta_alloc */
static _Atomic uint64_t last_scan_ns;            /* relaxed CAS elects one scanner */

/* Bytes mapped for the regions of nslots CPUs. */
static size_t regions_bytes(uint64_t nslots) { return (size_t)nslots << NH_RSEQ_STRIDE_SHIFT; }

static nh_pc_cpu *region(int cpu) {
  return (nh_pc_cpu *)(nh_rseq_g.base + ((size_t)cpu << NH_RSEQ_STRIDE_SHIFT));
}
/* cpu's region if it is set up, NULL if still UNSET. */
static nh_pc_cpu *ready_region(int cpu) {
  /* acquire: pairs with region_setup's release */
  return atomic_load_explicit(&ready_flag[cpu], memory_order_acquire) ? region(cpu) : NULL;
}
static void **slots(nh_pc_cpu *c, unsigned cls) { return (void **)((char *)c + nh_pc_soff[cls]); }
/* The absolute slot index of a class's first slot: its empty count and
 * running lo. */
static uint16_t first_slot(unsigned cls) { return (uint16_t)(nh_pc_soff[cls] / sizeof(void *)); }

static int slow_cpu(void) {
  int cpu = nh_os_cpu_fast();
  return cpu >= 0 && (uint64_t)cpu < nh_rseq_g.nslots ? cpu : -1;
}

static void stat_inc(_Atomic uint64_t *c, uint64_t n) {
  atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- remote buffer entries: block, node and class in one word ----------------- */

static uint64_t remote_entry(void *p, unsigned cls, int node) {
  return ((uint64_t)(uintptr_t)p >> 4) << 19 | (uint64_t)node << 7 | cls;
}
static void *entry_block(uint64_t e) { return (void *)(uintptr_t)((e >> 19) << 4); }
static uint32_t entry_key(uint64_t e) { return (uint32_t)(e & 0x7ffff); } /* node << 7 | cls */

/* Sends n entries home: sorted by (node, class), one heap call per run. */
static void remote_send(uint64_t *e, size_t n) {
  for (size_t i = 1; i < n; i++) { /* insertion sort by key */
    uint64_t x = e[i];
    size_t j = i;
    while (j > 0 && entry_key(e[j - 1]) > entry_key(x)) e[j] = e[j - 1], j--;
    e[j] = x;
  }
  void *run[REMOTE_CAP];
  for (size_t i = 0; i < n;) {
    uint32_t key = entry_key(e[i]);
    size_t k = 0;
    while (i < n && entry_key(e[i]) == key && k < REMOTE_CAP) {
      run[k] = entry_block(e[i++]);
      nh_tsan_acquire(run[k]);
      k++;
    }
    nh_heap_drain((int)(key >> 7), key & 0x7f, run, k, true);
  }
}

/* ---- draining a CPU from any thread ------------------------------------------------ */

/* Sets a class's bounds: (STOP_LO, 0) stopped, or running with capacity
 * hi slots (lo and hi are absolute in the region). */
static void set_bounds(nh_pc_cpu *c, uint16_t lo, uint16_t hi, unsigned cls) {
  if (lo != STOP_LO) lo = first_slot(cls), hi = (uint16_t)(lo + hi);
  atomic_store_explicit(&c->bounds[cls].lo, lo, memory_order_release); /* pairs: the fence */
  atomic_store_explicit(&c->bounds[cls].hi, hi, memory_order_release);
}

/* Blocks in (c, cls) (racy unless c is stopped). */
static uint64_t class_count(nh_pc_cpu *c, unsigned cls) {
  uint64_t w = atomic_load_explicit(&c->word[cls], memory_order_relaxed);
  return (w & 0xffff) - first_slot(cls);
}

/* A class's capacity in slots (0 while stopped). */
static uint16_t hi_of(nh_pc_cpu *c, unsigned cls) {
  uint16_t hi = atomic_load_explicit(&c->bounds[cls].hi, memory_order_relaxed);
  return hi ? (uint16_t)(hi - first_slot(cls)) : 0;
}

static uint64_t cpu_blocks(nh_pc_cpu *c, uint64_t *bytes) {
  uint64_t n = 0, b = 0;
  for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++) {
    uint64_t k = class_count(c, cls);
    n += k;
    if (cls) b += k * nh_class_size(cls);
  }
  if (bytes) *bytes = b;
  return n;
}

/* Empties one class of a stopped CPU. */
static void drain_stopped_class(nh_pc_cpu *c, unsigned cls) {
  size_t n = class_count(c, cls);
  if (n == 0) return;
  void **s = slots(c, cls);
  if (cls == 0) {
    uint64_t e[REMOTE_CAP];
    memcpy(e, s, n * sizeof *e);
    remote_send(e, n);
    stat_inc(&c->remote_sent, n);
  } else {
    for (size_t i = 0; i < n; i++) nh_tsan_acquire(s[i]);
    nh_heap_drain(c->node, cls, s, n, false);
  }
  uint64_t w = atomic_load_explicit(&c->word[cls], memory_order_relaxed);
  atomic_store_explicit(&c->word[cls], (w & ~(uint64_t)0xffff) | first_slot(cls),
                        memory_order_relaxed); /* empty; the hits stay */
}

/* hi of a class with no capacity charged: the remote buffer is always there. */
static uint16_t base_hi(unsigned cls) { return cls == 0 ? REMOTE_CAP : 0; }

/* The pages of a drained region's slots go back to the OS (its header's
 * page stays); they come back zero at the next push that reaches them. The
 * caller holds c->lock and has stopped and fenced the CPU: no sequence can
 * read or write a slot meanwhile. */
static void release_slots(nh_pc_cpu *c) {
  uintptr_t page = nh_os_page_size(), at = (uintptr_t)c;
  uintptr_t from = (at + nh_pc_soff[0] + page - 1) & ~(page - 1);
  uintptr_t to = (at + region_used + page - 1) & ~(page - 1);
  if (to > from) (void)nh_os_purge((void *)from, to - from);
}

/* Stops cpu, gives back everything it holds, its capacity and its slots'
 * pages, restarts it. Any thread. */
static void drain_cpu(int cpu) {
  nh_pc_cpu *c = region(cpu);
  uint16_t old_hi[NH_CLASS_COUNT];
  nh_lock_acquire(&c->lock);
  atomic_store_explicit(&c->stopped, 1, memory_order_relaxed);
  for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++) {
    old_hi[cls] = hi_of(c, cls);
    set_bounds(c, STOP_LO, 0, cls);
  }
  int fenced = nh_os_rseq_fence_cpu(cpu) == 0; /* no sequence on cpu can commit from here on */
  if (fenced) {
    for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++) drain_stopped_class(c, cls);
    release_slots(c);
    stat_inc(&c->drains, 1);
    c->charged = 0;
    c->big_charged = 0;
  }
  for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++)
    set_bounds(c, 0, fenced ? base_hi(cls) : old_hi[cls], cls);
  atomic_store_explicit(&c->stopped, 0, memory_order_release);
  nh_lock_release(&c->lock);
}


/* Below one batch a class grows by a quarter batch at a time (at least one
 * slot), so that a class used little holds little and the budget spreads
 * over the classes in use (tcmalloc grows by one slot there). The first step
 * is at most what, with the block handed out, fills one OS page: a class
 * used once (a small program's) carves and marks one page of fresh blocks,
 * not a quarter batch's several (docs/benchmarks.md, footprint). */
static uint16_t ramp(unsigned cls, uint16_t hi) {
  uint16_t step = (uint16_t)(batch[cls] / 4 ? batch[cls] / 4 : 1);
  if (hi == 0) {
    size_t page = nh_os_page_size() / nh_class_size(cls);
    if (page < (size_t)step + 1) step = (uint16_t)(page > 1 ? page - 1 : 1);
  }
  return (uint16_t)(hi + step < batch[cls] ? hi + step : batch[cls]);
}

/* The capacity a full class asks for: one batch, then its full capacity,
 * then twice what it has, up to its slots. */
static uint16_t next_capacity(unsigned cls, uint16_t hi) {
  if (hi < batch[cls]) return ramp(cls, hi);
  if (hi < full[cls]) return full[cls];
  return (uint16_t)(2u * hi < cap[cls] ? 2u * hi : cap[cls]);
}

/* Lowers the capacity of (c, cls) to `to` slots. Caller holds c->lock.
 * Safe while sequences run: a push that read the old hi may still commit
 * within it (the slots exist up to cap), pops are unaffected; the blocks
 * above the new hi are taken out by shed(). */
static void shrink(nh_pc_cpu *c, unsigned cls, uint16_t to) {
  uint16_t hi = hi_of(c, cls);
  c->charged -= (uint64_t)(hi - to) * nh_class_size(cls);
  if (big[cls]) c->big_charged -= (uint64_t)(hi - to) * nh_class_size(cls);
  atomic_store_explicit(&c->bounds[cls].hi, (uint16_t)(first_slot(cls) + to),
                        memory_order_relaxed);
  stat_inc(&c->steals, 1);
}

/* A class's slow-path events (misses and overflows) in the current
 * idleness window. Caller holds c->lock. */
static uint32_t window_events(nh_pc_cpu *c, unsigned cls) {
  return atomic_load_explicit(&c->events[cls], memory_order_relaxed) - c->seen[cls];
}

/* Starts a new idleness window if the current one is STEAL_WINDOW_NS old:
 * what each class has had becomes what it is measured from. Caller holds
 * c->lock. */
static void window_roll(nh_pc_cpu *c) {
  uint64_t now = nh_os_clock_ns();
  if (now - c->window_ns < STEAL_WINDOW_NS) return;
  c->window_ns = now;
  c->cursor = (c->cursor + 1) % (NH_CLASS_COUNT - 1);
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) {
    c->seen[cls] = atomic_load_explicit(&c->events[cls], memory_order_relaxed);
    atomic_store_explicit(&c->missed[cls], 0, memory_order_relaxed);
    c->short_at[cls] = 0;
  }
}

/* Whether a steal for cls would find nothing again: one found nothing in
 * this window, and cls has not had twice its events of then (what decides
 * which busy classes it may take from). Scanning every class on each of its
 * misses for the same answer took 45% of pystart's time once a few big
 * classes had spent the budget. Caller holds c->lock. */
static bool steal_backs_off(nh_pc_cpu *c, unsigned cls) {
  uint32_t at = c->short_at[cls];
  return at != 0 && window_events(c, cls) < 2 * at;
}

/* Makes room for `need` bytes of capacity for class want by taking it from
 * the other classes of c, no more than it needs: first from the idle ones
 * (no miss and no overflow during the last idleness window, at least
 * STEAL_WINDOW_NS long), down to nothing, then from the busy ones that had
 * fewer events than want in this window, down to half their capacity but
 * never below one batch. Taking from every busy class made classes that all
 * want more than the budget take it from each other on every overflow and
 * back at the next (larson_classic: 150 000 classes shrunk in 10 million
 * steps, 12% of its time in grow and shed; about 20 000 then, 2 300 with
 * the back-off: tests/preload/steals.c). The search starts one class further each window.
 * A look that finds nothing makes want back off (steal_backs_off), and each
 * look ends the window if it is old enough (window_roll). With big_only,
 * only big classes give (the room is for a big class, over their share).
 * Caller holds c->lock. Marks the classes it shrank in shrunk[]. */
static void steal(nh_pc_cpu *c, unsigned want, uint64_t need, uint64_t shrunk[2], bool big_only) {
  uint64_t freed = 0;
  uint32_t wanted = window_events(c, want);
  for (int pass = 0; pass < 2 && freed < need; pass++)
    for (unsigned k = 0; k < NH_CLASS_COUNT - 1 && freed < need; k++) {
      unsigned cls = 1 + (c->cursor + k) % (NH_CLASS_COUNT - 1);
      uint16_t hi = hi_of(c, cls);
      if (cls == want || hi == 0 || (big_only && !big[cls])) continue;
      uint32_t ev = window_events(c, cls);
      if (pass == 0 && ev != 0) continue;
      if (pass == 1 && ev >= wanted) continue; /* only from a class that needed it less */
      uint16_t keep = pass == 0 ? 0 : (uint16_t)(hi / 2 > batch[cls] ? hi / 2 : batch[cls]);
      if (hi <= keep) continue;
      uint64_t size = nh_class_size(cls), slots = (need - freed + size - 1) / size;
      uint16_t to = slots >= (uint64_t)(hi - keep) ? keep : (uint16_t)(hi - slots);
      freed += (uint64_t)(hi - to) * size;
      shrink(c, cls, to);
      shrunk[cls / 64] |= 1ull << (cls % 64);
    }
  c->short_at[want] = freed == 0 ? (wanted ? wanted : 1) : 0;
  window_roll(c);
}

/* Takes the blocks above their new capacity out of the shrunk classes of
 * cpu's cache (region c) and sends them home, with batch pops on the current
 * CPU. A thread that has moved to another CPU leaves them (they go with the
 * cache's next pops, or its next drain); one that moves during the pops
 * takes a batch from the other CPU's class, which is only an early overflow. */
static void shed(int cpu, nh_pc_cpu *c, const uint64_t shrunk[2]) {
  if (slow_cpu() != cpu) return;
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) {
    if (!(shrunk[cls / 64] >> (cls % 64) & 1)) continue;
    uint64_t held = class_count(c, cls), hi = hi_of(c, cls);
    while (held > hi) {
      void *b[MAX_BATCH];
      int32_t node;
      size_t want = held - hi > MAX_BATCH ? MAX_BATCH : held - hi;
      size_t m = nh_rseq_pop_batch(b, want, cls, &node);
      if (m == 0) break;
      for (size_t i = 0; i < m; i++) nh_tsan_acquire(b[i]);
      nh_heap_drain(node, cls, b, m, false);
      held = held > m ? held - m : 0;
    }
  }
}

/* Bytes of capacity c lacks for add more: past the budget. */
static uint64_t budget_short(const nh_pc_cpu *c, uint64_t add) {
  return c->charged + add > budget ? c->charged + add - budget : 0;
}

/* The same past the big classes' share, for cls (0 if it is not big). */
static uint64_t big_short(const nh_pc_cpu *c, unsigned cls, uint64_t add) {
  uint64_t share = budget / BIG_SHARE > add ? budget / BIG_SHARE : add;
  return big[cls] && c->big_charged + add > share ? c->big_charged + add - share : 0;
}

/* Raises the capacity of (c, cls) to `to` slots if the budget allows,
 * taking capacity from other classes (steal) when it is spent, but only up
 * to the class's full capacity (1/16 of the budget): beyond it a class grows
 * into free budget only, so that one busy class does not take the budget
 * from all the others, and a CPU whose classes all ask for more does not
 * scan them on every overflow (larson_classic spent 13% of its time there).
 * A big class also stays within the big classes' share (BIG_SHARE), taking
 * room from the other big classes. */
static int grow(int cpu, nh_pc_cpu *c, unsigned cls, uint16_t to) {
  if (!nh_lock_try(&c->lock)) return 0;
  int ok = 0;
  uint64_t shrunk[2] = {0, 0};
  uint16_t hi = hi_of(c, cls);
  uint64_t add = (uint64_t)(to > hi ? to - hi : 0) * nh_class_size(cls);
  if (add && !atomic_load_explicit(&c->stopped, memory_order_relaxed)) {
    if ((budget_short(c, add) || big_short(c, cls, add)) && to <= full[cls]) {
      if (steal_backs_off(c, cls)) {
        window_roll(c); /* the window still ends on time */
      } else {
        if (big_short(c, cls, add)) steal(c, cls, big_short(c, cls, add), shrunk, true);
        if (budget_short(c, add)) steal(c, cls, budget_short(c, add), shrunk, false);
      }
    }
    if (!budget_short(c, add) && !big_short(c, cls, add)) {
      c->charged += add;
      if (big[cls]) c->big_charged += add;
      atomic_store_explicit(&c->bounds[cls].hi, (uint16_t)(first_slot(cls) + to),
                            memory_order_relaxed);
      ok = 1;
    }
  }
  nh_lock_release(&c->lock);
  if (shrunk[0] | shrunk[1]) shed(cpu, c, shrunk);
  return ok;
}

void nh_pc_drain_all(void) {
  for (int cpu = 0; (uint64_t)cpu < nh_rseq_g.nslots; cpu++) {
    nh_pc_cpu *c = ready_region(cpu);
    if (c && cpu_blocks(c, NULL)) drain_cpu(cpu);
  }
}

/* Drains CPUs whose slow paths have not run for two idle periods; at most
 * one scan per period, by whoever wins the CAS. */
static void idle_scan(uint64_t now, int force) {
  uint64_t period = atomic_load_explicit(&idle_ns, memory_order_relaxed);
  uint64_t last = atomic_load_explicit(&last_scan_ns, memory_order_relaxed);
  if (period == 0 || (!force && now - last < period)) return;
  if (!atomic_compare_exchange_strong_explicit(&last_scan_ns, &last, now, memory_order_relaxed,
                                               memory_order_relaxed))
    return;
  for (int cpu = 0; (uint64_t)cpu < nh_rseq_g.nslots; cpu++) {
    nh_pc_cpu *c = ready_region(cpu);
    if (c == NULL) continue;
    uint64_t seen = atomic_load_explicit(&c->last_slow_ns, memory_order_relaxed);
    if (now - seen < 2 * period || cpu_blocks(c, NULL) == 0) continue;
    drain_cpu(cpu);
    stat_inc(&c->idle_drains, 1);
  }
}

void nh_pc_idle_scan(void) {
  if (nh_pc_on) idle_scan(nh_os_clock_ns(), 1);
}

void nh_pc_set_idle_ms(uint64_t ms) {
  atomic_store_explicit(&idle_ns, ms * 1000000ull, memory_order_relaxed);
}

static void region_setup(nh_pc_cpu *c, int cpu);

/* Every slow path: set the CPU's region up if it is the first, stamp the
 * CPU, and maybe look for idle ones. */
static nh_pc_cpu *slow_enter(int cpu) {
  nh_pc_cpu *c = ready_region(cpu);
  if (__builtin_expect(c == NULL, 0)) region_setup(c = region(cpu), cpu);
  uint64_t now = nh_os_clock_ns();
  atomic_store_explicit(&c->last_slow_ns, now, memory_order_relaxed);
  idle_scan(now, 0);
  return c;
}

/* ---- slow paths ------------------------------------------------------------------------ */

static void *alloc_uncached(int home, unsigned cls, int level) {
  int served;
  return nh_heap_alloc_fallback(home, nh_class_size(cls), NH_MIN_ALIGN, level, &served);
}

void *nh_pc_alloc_slow(unsigned cls, int level) {
  int cpu = slow_cpu();
  if (cpu < 0) return nh_tc_alloc(cls, level); /* not a CPU of the table */
  nh_pc_cpu *c = slow_enter(cpu);
  if (cap[cls] == 0 || atomic_load_explicit(&c->stopped, memory_order_relaxed))
    return alloc_uncached(c->node, cls, level);
  stat_inc(&c->misses, 1);
  atomic_fetch_add_explicit(&c->events[cls], 1, memory_order_relaxed);
  atomic_store_explicit(&c->missed[cls], 1, memory_order_relaxed);
  uint16_t hi = hi_of(c, cls);
  if (hi < batch[cls] && grow(cpu, c, cls, ramp(cls, hi))) hi = hi_of(c, cls);
  if (hi == 0) return alloc_uncached(c->node, cls, level); /* nothing to take capacity from */
  void *b[MAX_BATCH];
  /* one block to hand out and at most enough to fill the slab: a class
   * still ramping up moves a few blocks, a grown one a batch */
  size_t n = nh_heap_refill(c->node, cls, level, b, hi < batch[cls] ? (size_t)hi + 1 : batch[cls]);
  stat_inc(&c->refills, 1);
  if (n == 0) return alloc_uncached(c->node, cls, level);
  nh_block_handout(b[0]); /* the rest come marked, ready to cache (each pop checks its mark) */
  for (size_t i = 1; i < n; i++) nh_tsan_release(b[i]);
  /* only into a CPU of c's node: after a migration to another node the rest goes back */
  size_t pushed = n > 1 ? nh_rseq_push_batch(b + 1, n - 1, cls, c->node) : 0;
  if (1 + pushed < n) nh_heap_drain(c->node, cls, b + 1 + pushed, n - 1 - pushed, false);
  return b[0];
}

/* The current CPU's slab of cls is full: send a batch of it home. 0 if
 * nothing could be taken (stopped, or the slab emptied meanwhile). */
static size_t overflow(nh_pc_cpu *c, unsigned cls) {
  void *b[MAX_BATCH];
  int32_t node;
  size_t m = nh_rseq_pop_batch(b, batch[cls] ? batch[cls] : 1, cls, &node);
  if (m == 0) return 0;
  for (size_t i = 0; i < m; i++) nh_tsan_acquire(b[i]);
  nh_heap_drain(node, cls, b, m, false);
  stat_inc(&c->drains, 1);
  return m;
}

/* A block of another node: into the current CPU's remote buffer; a full
 * buffer is sent home first. */
static void remote_free(nh_pc_cpu *c, void *p, unsigned cls, int node) {
  uint64_t e = remote_entry(p, cls, node);
  for (int tries = 0; tries < 3; tries++) {
    if (nh_rseq_push_batch((void *const *)&e, 1, 0, -1) == 1) return;
    uint64_t buf[REMOTE_CAP];
    int32_t bn;
    size_t m = nh_rseq_pop_batch((void **)buf, REMOTE_CAP, 0, &bn);
    if (m == 0) break; /* stopped */
    remote_send(buf, m);
    stat_inc(&c->remote_sent, m);
  }
  nh_heap_drain(node, cls, &p, 1, true);
}

/* Whether a full class grows on an overflow: while it ramps up to one
 * batch (so that drains go in batches), and past that only if an allocation
 * of it has missed here in the current idleness window. A class this
 * CPU only frees (a consumer's) gains nothing from more slots, since every
 * block it frees leaves in the end; growing it took capacity from the other
 * classes, which then shed and grew back (mpmc with blocks to 1 KiB: 18% of
 * its time in grow). A class allocated and freed in bursts keeps growing
 * until a burst fits. */
static bool grows_on_overflow(nh_pc_cpu *c, unsigned cls, uint16_t hi) {
  return hi < batch[cls] || atomic_load_explicit(&c->missed[cls], memory_order_relaxed);
}

void nh_pc_free_slow(void *p, unsigned cls, int node) {
  for (int tries = 0; tries < 3; tries++) {
    int cpu = slow_cpu();
    if (cpu < 0) {
      nh_tc_free(p, cls, node);
      return;
    }
    nh_pc_cpu *c = slow_enter(cpu);
    if (cap[cls] == 0 || atomic_load_explicit(&c->stopped, memory_order_relaxed)) break;
    if (node != c->node) {
      if ((uintptr_t)p >> 47) break; /* cannot be encoded: straight home */
      remote_free(c, p, cls, node);
      return;
    }
    if (nh_rseq_push(p, cls, node) > 0) return; /* p is not the top (its caller checked) */
    atomic_fetch_add_explicit(&c->events[cls], 1, memory_order_relaxed);
    uint16_t hi = hi_of(c, cls);
    if (hi < cap[cls] && grows_on_overflow(c, cls, hi) && grow(cpu, c, cls, next_capacity(cls, hi)))
      continue;
    if (overflow(c, cls) == 0) break;
  }
  nh_heap_drain(node, cls, &p, 1, node != nh_cpu_home(nh_os_cpu_fast()));
}

/* ---- set-up ------------------------------------------------------------------------------ */

static int rseq_usable(void) {
  if (__rseq_size < 16) return 0; /* not registered (old kernel, tunable, Valgrind) */
  const volatile int32_t *cpu_id =
      (const volatile int32_t *)((char *)__builtin_thread_pointer() + __rseq_offset + 4);
  return *cpu_id >= 0;
}

/* Slot offsets per class after the fixed part, for capacities cap[];
 * returns the region's size. */
static size_t place_slots(void) {
  size_t off = (sizeof(nh_pc_cpu) + 63) & ~(size_t)63;
  for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++) {
    nh_pc_soff[cls] = off;
    off += (size_t)cap[cls] * sizeof(void *);
  }
  return off;
}

/* Slots of a class of size bytes holding 1/share of the budget: at most
 * MAX_PER_CLASS; a class with fewer than 2 gets 2 if a block is at most a
 * quarter of the budget, none otherwise (it is not cached). */
static uint16_t slots_for_share(size_t budget_bytes, size_t size, size_t share) {
  size_t n = budget_bytes / (share * size);
  if (n < 2 && 4 * size <= budget_bytes) n = 2;
  return (uint16_t)(n > MAX_PER_CLASS ? MAX_PER_CLASS : n >= 2 ? n : 0);
}

/* Capacities from the byte budget, halved until the region's slots fit the
 * sequences' 16-bit indices (a budget of tens of MiB), so a region fits its
 * stride. */
static void layout(const nh_cache_params *p) {
  budget = p->bytes;
  cap[0] = REMOTE_CAP;
  batch[0] = REMOTE_CAP;
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) {
    full[cls] = slots_for_share(p->bytes, nh_class_size(cls), CAP_SHARE);
    big[cls] = p->bytes / (CAP_SHARE * nh_class_size(cls)) < 2;
    cap[cls] = slots_for_share(p->bytes, nh_class_size(cls), MAX_SHARE);
  }
  while (place_slots() / sizeof(void *) >= MAX_REGION_SLOTS)
    for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++)
      if (cap[cls] >= 4) cap[cls] /= 2;
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) {
    if (full[cls] > cap[cls]) full[cls] = cap[cls];
    batch[cls] = (uint16_t)(full[cls] / 2 > MAX_BATCH ? MAX_BATCH : full[cls] / 2);
  }
  region_used = place_slots();
}

/* See percpu/cache.h (issue 5: a fork during a drain gave the child blocks
 * owned twice). CPU order; the parent releases in reverse. */
void nh_cache_prefork(void) {
  if (!nh_pc_on) return;
  nh_lock_acquire(&setup_lock); /* no region changes from UNSET meanwhile */
  for (int cpu = 0; (uint64_t)cpu < nh_rseq_g.nslots; cpu++) {
    nh_pc_cpu *c = ready_region(cpu);
    if (c) nh_lock_acquire(&c->lock);
  }
}

void nh_cache_postfork_parent(void) {
  if (!nh_pc_on) return;
  for (int cpu = (int)nh_rseq_g.nslots; cpu-- > 0;) {
    nh_pc_cpu *c = ready_region(cpu);
    if (c) nh_lock_release(&c->lock);
  }
  nh_lock_release(&setup_lock);
}

void nh_cache_postfork_child(void) {
  nh_tc_postfork_child();
  if (!nh_pc_on) return;
  nh_lock_reset(&setup_lock);
  for (int cpu = 0; (uint64_t)cpu < nh_rseq_g.nslots; cpu++) {
    nh_pc_cpu *c = ready_region(cpu);
    if (c == NULL) continue;
    nh_lock_reset(&c->lock);
    if (!atomic_load_explicit(&c->stopped, memory_order_relaxed)) continue;
    for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++) set_bounds(c, 0, base_hi(cls), cls);
    c->big_charged = 0;
    c->charged = 0; /* what the parent's drainer left is held uncharged until drained */
    atomic_store_explicit(&c->stopped, 0, memory_order_relaxed);
  }
}

/* Takes cpu's region (c) from UNSET to RUNNING, if no other thread did,
 * while threads on cpu may run sequences on it: the stores go in an order
 * in which each state a sequence can see fails it (x86-64's stores are seen
 * in program order; the sequences are its assembly). First every class's lo
 * goes to STOP_LO (count 0 is below it and hi 0 refuses every push), then
 * the counts to their empty index, then the node, then the bounds (lo, then
 * hi: set_bounds), and the ready flag last. */
static void region_setup(nh_pc_cpu *c, int cpu) {
  nh_lock_acquire(&setup_lock);
  if (!atomic_load_explicit(&ready_flag[cpu], memory_order_relaxed)) {
    int node = nh_cpu_home(cpu);
    /* keep the cache on its node's memory (best effort): before the first write */
    (void)nh_os_bind(c, (size_t)1 << NH_RSEQ_STRIDE_SHIFT, nh_g.topo->nodes[node].bind_os_node);
    for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++)
      atomic_store_explicit(&c->bounds[cls].lo, STOP_LO, memory_order_release);
    for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++)
      atomic_store_explicit(&c->word[cls], first_slot(cls), memory_order_release);
    c->node = node;
    for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++) set_bounds(c, 0, base_hi(cls), cls);
    atomic_store_explicit(&ready_flag[cpu], 1, memory_order_release); /* pairs: ready_region */
  }
  nh_lock_release(&setup_lock);
}

int nh_pc_init(const nh_cache_params *p) {
  nh_pc_reset(); /* a start-up retried on defaults: drop the first try's regions */
  if (!NH_RSEQ_ARCH || !rseq_usable() || nh_os_rseq_fence_register() != 0) return -1;
  layout(p);
  uint64_t nslots = (uint64_t)(nh_g.topo->ncpu_slots > 0 ? nh_g.topo->ncpu_slots : 1);
  char *base = nh_os_meta_alloc(regions_bytes(nslots));
  _Atomic uint8_t *flags = nh_os_meta_alloc((size_t)nslots); /* all UNSET */
  if (base == NULL || flags == NULL) {
    nh_os_meta_free(base, regions_bytes(nslots));
    nh_os_meta_free((void *)flags, (size_t)nslots);
    return -1;
  }
  nh_rseq_g.base = base;
  nh_rseq_g.nslots = nslots;
  ready_flag = flags;
  nh_rseq_g.rseq_off = __rseq_offset; /* the regions stay UNSET until their CPU's first slow path */
  atomic_store_explicit(&last_scan_ns, nh_os_clock_ns(), memory_order_relaxed);
  nh_pc_on = 1;
  return 0;
}

void nh_pc_reset(void) {
  if (!nh_pc_on) return;
  nh_pc_on = 0;
  nh_os_meta_free(nh_rseq_g.base, regions_bytes(nh_rseq_g.nslots));
  nh_os_meta_free((void *)ready_flag, (size_t)nh_rseq_g.nslots);
  ready_flag = NULL;
  memset(&nh_rseq_g, 0, sizeof nh_rseq_g);
}

/* ---- statistics ------------------------------------------------------------------------- */

int nh_pc_cpu_stats(int cpu, nh_cache_cpu_stats *out) {
  if (cpu < 0 || (uint64_t)cpu >= nh_rseq_g.nslots) return -1;
  nh_pc_cpu *c = ready_region(cpu);
  if (c == NULL) { /* UNSET: nothing happened there */
    memset(out, 0, sizeof *out);
    out->node = nh_cpu_home(cpu);
    return 0;
  }
  out->node = c->node;
  out->hits = 0;
  for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++)
    out->hits += atomic_load_explicit(&c->word[cls], memory_order_relaxed) >> 16;
  out->misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
  out->refills = atomic_load_explicit(&c->refills, memory_order_relaxed);
  out->drains = atomic_load_explicit(&c->drains, memory_order_relaxed);
  out->remote_sent = atomic_load_explicit(&c->remote_sent, memory_order_relaxed);
  out->idle_drains = atomic_load_explicit(&c->idle_drains, memory_order_relaxed);
  out->steals = atomic_load_explicit(&c->steals, memory_order_relaxed);
  out->blocks = cpu_blocks(c, &out->bytes);
  out->capacity_bytes = 0;
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++)
    out->capacity_bytes += (uint64_t)hi_of(c, cls) * nh_class_size(cls);
  return 0;
}

int nh_cache_cpu_ready(int cpu) {
  if (!nh_pc_on || cpu < 0 || (uint64_t)cpu >= nh_rseq_g.nslots) return -1;
  return ready_region(cpu) != NULL;
}

void nh_pc_stats_add(nh_cache_stats *out) {
  nh_cache_cpu_stats s;
  for (int cpu = 0; nh_pc_cpu_stats(cpu, &s) == 0; cpu++) {
    out->hits += s.hits;
    out->misses += s.misses;
    out->refills += s.refills;
    out->drains += s.drains;
    out->remote_sent += s.remote_sent;
    out->idle_drains += s.idle_drains;
    out->cpus++;
  }
}
