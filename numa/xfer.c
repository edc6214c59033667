/*
 * numa/xfer.c: the per-node transfer caches (the middle end; design in
 * docs/architecture.md, "The transfer cache").
 *
 * Between the caches above (per CPU or per thread) and the spans of a node's
 * bins sits, per (node, class), a ring of free block pointers for each CPU of
 * the node (a shard; a node of more than NH_XFER_MAX_SHARDS CPUs shares
 * them). A drain puts its blocks on their home shard (the shard of their
 * spans: heap.c, "Bin shards"); a refill takes the newest blocks of its own
 * shard (nh_xfer_take), and when its own bin is empty too, of the node's
 * next shards (nh_xfer_steal): a memcpy of pointers under a lock held for
 * that copy alone, without touching the blocks. The spans (a walk of free
 * lists, one cache miss per block) are reached only when the shard is empty
 * (refill) or full (drain).
 *
 * Why per CPU: blocks of a CPU's spans come back to that CPU. With one array per
 * node, two threads that free and allocate the same classes got each other's
 * blocks back, interleaved at cache-line grain, and the free mark each free
 * and malloc writes into a block then bounced lines between the CPUs
 * (glibc_thread, working set 16384 blocks, 2 threads: 18-20 ns a call, 5 ns
 * per CPU).
 *
 * Every block held here belongs to the node (the heap layer sends a block of
 * another node to that node's transfer cache: nh_heap_drain is called with
 * the block's owner) and carries the free mark, as in a per-CPU cache, so
 * that a second free of it is caught; word 0 is left as it was.
 *
 * The blocks' spans are checked as the blocks come in (nh_heap_drain: each
 * must lie in a live span of the class), and again on the way out only when
 * a span of the class was given back on the node since the ring was last
 * empty (nh_xfer_class.released against nh_xfer.checked): only then can a
 * block held here have lost its span (the second copy of a block freed
 * twice, the first copy's return having emptied the span). In steady state
 * no span is given back, and a refill copies pointers and nothing else.
 *
 * Bounds: a class holds at most cap blocks per shard (the node's [cache]
 * transfer_size bytes of it divided among the shards, at most
 * NH_XFER_MAX_SLOTS). Decay: each shard's ring remembers the fewest blocks
 * it held since the last pass (low); a pass, at most once per decay period
 * per node, gives that many of the oldest blocks back to the spans: they
 * were not needed for a whole period. nh_trim and memory pressure give
 * everything back.
 *
 * Lock: nh_xfer.lock is a leaf among the heap's locks: nothing else is taken
 * while it is held (blocks going to or from the spans are moved out first),
 * and a thread holds one at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "numa/heap.h"
#include "numa/os.h"

/* Operations on one class between two looks at the decay clock. */
#define TICKS_PER_LOOK 64
/* Other shards a refill looks at when its own is short. */
#define STEAL_LOOKS 8

static nh_xfer *xfer_at(nh_heap *h, unsigned shard, unsigned cls) {
  return &h->xfer[(size_t)shard * NH_CLASS_COUNT + cls];
}

/* The ring of (shard, cls): xfer_cls[cls].mask + 1 slots. */
static void **ring_of(const nh_heap *h, unsigned shard, unsigned cls) {
  return h->xfer_slots + (size_t)shard * h->xfer_ring + h->xfer_cls[cls].off;
}

/* Bytes of the block holding xfer_cls and then the xfer array. */
static size_t block_size(unsigned shards) {
  size_t head = (sizeof(nh_xfer_class) * NH_CLASS_COUNT + 63) & ~(size_t)63;
  return head + sizeof(nh_xfer) * shards * NH_CLASS_COUNT;
}

static uint32_t count_of(const nh_xfer *x) {
  return atomic_load_explicit(&x->count, memory_order_relaxed);
}
static void set_count(nh_xfer *x, uint32_t n) {
  atomic_store_explicit(&x->count, n, memory_order_relaxed);
}

static uint32_t ring_size(uint32_t cap) {
  uint32_t r = 1;
  while (r < cap) r <<= 1;
  return cap ? r : 0;
}

uint32_t nh_xfer_cap_for(uint64_t bytes, unsigned cls) {
  uint64_t n = bytes / nh_class_size(cls);
  if (n > NH_XFER_MAX_SLOTS) n = NH_XFER_MAX_SLOTS;
  return n >= 2 ? (uint32_t)n : 0; /* one block is no batch: not cached */
}

int nh_xfer_init(nh_heap *h, uint64_t bytes, uint64_t decay_ms) {
  unsigned shards = h->shards;
  uint64_t per = bytes / shards;
  h->xfer_decay_ns = decay_ms * 1000000ull;
  atomic_store_explicit(&h->xfer_pass_ns, nh_os_clock_ns(), memory_order_relaxed);
  h->xfer_slots = NULL;
  /* the per-class table is written; the (shard, class) entries after it are
   * left as the OS gives them, zero: each is touched on its first use */
  h->xfer_cls = nh_os_meta_alloc(block_size(shards));
  if (h->xfer_cls == NULL) return -1;
  h->xfer = (nh_xfer *)((char *)h->xfer_cls + block_size(0));
  size_t ring = 0;
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) {
    nh_xfer_class *k = &h->xfer_cls[cls];
    k->cap = nh_xfer_cap_for(per, cls);
    k->mask = k->cap ? ring_size(k->cap) - 1 : 0;
    k->off = (uint32_t)ring; /* below 96 classes of NH_XFER_MAX_SLOTS */
    ring += k->cap ? (size_t)k->mask + 1 : 0;
  }
  h->xfer_ring = ring;
  h->xfer_slots_count = ring * shards;
  if (ring && (h->xfer_slots = nh_os_meta_alloc(sizeof(void *) * h->xfer_slots_count)) == NULL) {
    nh_xfer_destroy(h);
    return -1;
  }
  return 0;
}

void nh_xfer_destroy(nh_heap *h) {
  if (h->xfer_slots) nh_os_meta_free(h->xfer_slots, sizeof(void *) * h->xfer_slots_count);
  if (h->xfer_cls) nh_os_meta_free(h->xfer_cls, block_size(h->shards));
  h->xfer_slots = NULL;
  h->xfer_cls = NULL;
  h->xfer = NULL;
}

/* The bytes held, counted in shard's counters (its CPU writes them). */
static void held_add(nh_heap *h, unsigned shard, unsigned cls, size_t n, bool add) {
  uint64_t bytes = (uint64_t)n * nh_class_size(cls);
  _Atomic uint64_t *c = &h->sst[shard].xfer_bytes;
  if (add) atomic_fetch_add_explicit(c, bytes, memory_order_relaxed);
  else atomic_fetch_sub_explicit(c, bytes, memory_order_relaxed);
}

/* Whether this operation should look at the decay clock. Caller holds x->lock. */
static bool tick(nh_xfer *x) {
  if (++x->ticks < TICKS_PER_LOOK) return false;
  x->ticks = 0;
  return true;
}

/* Copies k pointers from / to ring (mask + 1 slots) from position pos on
 * (it wraps). Caller holds the shard's lock. */
static void ring_read(void *const *ring, uint32_t mask, uint32_t pos, void **out, size_t k) {
  size_t at = pos & mask, room = (size_t)mask + 1 - at, a = k < room ? k : room;
  memcpy(out, ring + at, a * sizeof *out);
  memcpy(out + a, ring, (k - a) * sizeof *out);
}
static void ring_write(void **ring, uint32_t mask, uint32_t pos, void *const *in, size_t k) {
  size_t at = pos & mask, room = (size_t)mask + 1 - at, a = k < room ? k : room;
  memcpy(ring + at, in, a * sizeof *in);
  memcpy(ring, in + a, (k - a) * sizeof *in);
}

/* Up to n blocks of (shard, cls): its newest, or its oldest. Caller holds
 * the shard's lock. */
static size_t ring_take(nh_heap *h, unsigned shard, unsigned cls, void **out, size_t n,
                        bool oldest) {
  nh_xfer *x = xfer_at(h, shard, cls);
  void **ring = ring_of(h, shard, cls);
  uint32_t mask = h->xfer_cls[cls].mask;
  uint32_t count = count_of(x);
  size_t k = n < count ? n : count;
  if (oldest) {
    ring_read(ring, mask, x->first, out, k);
    x->first = (x->first + (uint32_t)k) & mask;
  } else {
    ring_read(ring, mask, x->first + count - (uint32_t)k, out, k);
  }
  set_count(x, count - (uint32_t)k);
  if (k) held_add(h, shard, cls, k, false); /* under the lock: a fork sees it agree with count */
  return k;
}

void nh_xfer_span_released(nh_heap *h, unsigned cls) {
  if (h->xfer_cls[cls].cap) /* pairs with the acquire of nh_xfer_released */
    atomic_fetch_add_explicit(&h->xfer_cls[cls].released, 1, memory_order_release);
}

/* Up to n of (shard, cls)'s newest blocks, its low watermark kept; *look
 * (when not NULL): time to look at the decay clock; *check set when the
 * blocks' spans must be checked (a span of cls was given back since the ring
 * was last empty, or a put raced with one). A ring left empty holds nothing
 * unchecked: the count read now is the one its next blocks are checked
 * against (each put's blocks were checked after their caller's read). */
static size_t take_newest(nh_heap *h, unsigned shard, unsigned cls, void **out, size_t n,
                          bool *look, bool *check) {
  nh_xfer *x = xfer_at(h, shard, cls);
  nh_lock_acquire(&x->lock);
  uint32_t released = nh_xfer_released(h, cls);
  size_t k = ring_take(h, shard, cls, out, n, false);
  if (k && (x->recheck || x->checked != released)) *check = true;
  if (count_of(x) == 0) x->checked = released, x->recheck = false;
  if (count_of(x) < x->low) x->low = count_of(x);
  if (look) *look = tick(x);
  nh_lock_release(&x->lock);
  return k;
}

size_t nh_xfer_take(nh_heap *h, unsigned shard, unsigned cls, void **out, size_t n, bool *look,
                    bool *check) {
  *check = false;
  if (h->xfer_cls[cls].cap == 0) return 0; /* the same for every shard */
  return take_newest(h, shard, cls, out, n, look, check);
}

size_t nh_xfer_steal(nh_heap *h, unsigned own, unsigned cls, void **out, size_t n, bool *check) {
  size_t got = 0;
  *check = false;
  if (h->xfer_cls[cls].cap == 0) return 0;
  /* the newest blocks (the oldest, colder, measured no better) */
  for (unsigned i = 1; got < n && i < h->shards && i <= STEAL_LOOKS; i++) {
    unsigned o = (own + i) % h->shards;
    if (count_of(xfer_at(h, o, cls)) > 0)
      got += take_newest(h, o, cls, out + got, n - got, NULL, check);
  }
  return got;
}

size_t nh_xfer_put(nh_heap *h, unsigned shard, unsigned cls, void *const *in, size_t n,
                   bool *look, uint32_t seen) {
  const nh_xfer_class *c = &h->xfer_cls[cls];
  if (c->cap == 0) return 0;
  nh_xfer *x = xfer_at(h, shard, cls);
  nh_lock_acquire(&x->lock);
  uint32_t count = count_of(x);
  size_t room = c->cap - count, k = n < room ? n : room;
  ring_write(ring_of(h, shard, cls), c->mask, x->first + count, in, k);
  set_count(x, count + (uint32_t)k);
  /* a span given back after the caller's read and before its check may be
   * one of these blocks' spans, and a take that emptied the ring meanwhile
   * counted it as seen: the ring's blocks are checked until it is empty */
  if (k && nh_xfer_released(h, cls) != seen) x->recheck = true;
  *look = tick(x);
  if (k) held_add(h, shard, cls, k, true);
  nh_lock_release(&x->lock);
  return k;
}

size_t nh_xfer_take_oldest(nh_heap *h, unsigned shard, unsigned cls, void **out, size_t n,
                           bool decay) {
  if (h->xfer_cls[cls].cap == 0) return 0;
  nh_xfer *x = xfer_at(h, shard, cls);
  nh_lock_acquire(&x->lock);
  size_t want = decay ? x->low : count_of(x);
  size_t k = ring_take(h, shard, cls, out, want < n ? want : n, true);
  /* the pass is over for this shard once it took fewer than it could: the
   * next window starts from what is left */
  x->low = decay && k == n ? (uint32_t)(x->low - k) : count_of(x);
  nh_lock_release(&x->lock);
  return k;
}

bool nh_xfer_pass_due(nh_heap *h, uint64_t now) {
  uint64_t period = h->xfer_decay_ns;
  uint64_t last = atomic_load_explicit(&h->xfer_pass_ns, memory_order_relaxed);
  if (period == 0 || now - last < period) return false;
  /* relaxed: the CAS elects one thread to run the pass; it guards no data */
  return atomic_compare_exchange_strong_explicit(&h->xfer_pass_ns, &last, now,
                                                 memory_order_relaxed, memory_order_relaxed);
}

uint32_t nh_xfer_count(nh_heap *h, unsigned cls) {
  uint32_t n = 0;
  for (unsigned sh = 0; sh < h->shards; sh++) {
    nh_xfer *x = xfer_at(h, sh, cls);
    nh_lock_acquire(&x->lock);
    n += count_of(x);
    nh_lock_release(&x->lock);
  }
  return n;
}

/* ---- invariant check (nh_heaps_check) ---- */

static void check_fail(const nh_heap *h, unsigned shard, unsigned cls, const void *p,
                       const char *what) {
  nh_fatal("invariant broken: transfer cache %d/%u/%u: block %p %s", h->node, shard, cls, p, what);
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
  return x < y ? -1 : x > y;
}

/* One held block: a block of a span of this (node, shard, class), at a block
 * boundary, carrying the free mark. */
static void check_block(const nh_heap *h, unsigned shard, unsigned cls, void *p) {
  nh_segment *seg = nh_segment_of(p);
  if (seg == NULL || seg->huge) check_fail(h, shard, cls, p, "is not in an ordinary segment");
  if (seg->node != h->node) check_fail(h, shard, cls, p, "is of another node");
  const nh_span *span = nh_span_at(seg, p);
  if ((uintptr_t)p - (uintptr_t)seg < NH_PAGE_SIZE || span->kind != NH_PAGE_HEAD || span->cls != cls)
    check_fail(h, shard, cls, p, "is not in a span of its class");
  if (span->shard != shard) check_fail(h, shard, cls, p, "is of another shard's span");
  if ((size_t)((const uint8_t *)p - span->start) % span->block_size != 0)
    check_fail(h, shard, cls, p, "is not at a block boundary");
  if (nh_block_word1(p) != nh_key_cached(p)) check_fail(h, shard, cls, p, "lost its free mark");
}

void nh_xfer_check(nh_heap *h, unsigned shard, unsigned cls) {
  const nh_xfer_class *c = &h->xfer_cls[cls];
  nh_xfer *x = xfer_at(h, shard, cls);
  nh_lock_acquire(&x->lock);
  uint32_t count = count_of(x);
  if (count > c->cap || x->low > count)
    nh_fatal("invariant broken: transfer cache %d/%u/%u: count %u, low %u, cap %u", h->node, shard,
             cls, count, x->low, c->cap);
  void **copy = count ? nh_os_meta_alloc(sizeof(void *) * count) : NULL;
  if (count && copy == NULL) nh_fatal("cannot map memory to check a transfer cache");
  if (count) ring_read(ring_of(h, shard, cls), c->mask, x->first, copy, count);
  /* under the lock: a block taken meanwhile would lose its mark */
  for (uint32_t i = 0; i < count; i++) check_block(h, shard, cls, copy[i]);
  if (count) qsort(copy, count, sizeof *copy, cmp_ptr);
  for (uint32_t i = 1; i < count; i++)
    if (copy[i] == copy[i - 1]) check_fail(h, shard, cls, copy[i], "is held twice");
  nh_lock_release(&x->lock);
  if (copy) nh_os_meta_free(copy, sizeof(void *) * count);
}

void nh_xfer_prefork(nh_heap *h) {
  for (unsigned sh = 0; sh < h->shards; sh++)
    for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) nh_lock_acquire(&xfer_at(h, sh, cls)->lock);
}

void nh_xfer_postfork(nh_heap *h, int child) {
  for (unsigned sh = h->shards; sh-- > 0;)
    for (unsigned cls = NH_CLASS_COUNT; cls-- > 1;) {
      nh_xfer *x = xfer_at(h, sh, cls);
      if (child) nh_lock_reset(&x->lock);
      else nh_lock_release(&x->lock);
    }
}
