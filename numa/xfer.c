/*
 * numa/xfer.c: the per-node transfer caches (the middle end; design in
 * docs/architecture.md, "The transfer cache").
 *
 * Between the caches above (per CPU or per thread) and the spans of a node's
 * bins sits, per (node, class), an array of free block pointers. A refill
 * takes its batch from the top of the array and a drain puts its batch on top:
 * a memcpy of pointers under a lock held for that copy alone, without
 * touching the blocks. The spans (a walk of free lists, one cache miss per
 * block) are reached only when the array is empty (refill) or full (drain).
 *
 * Every block held here belongs to the node (the heap layer sends a block of
 * another node to that node's transfer cache: nh_heap_drain is called with
 * the block's owner) and carries the free mark (word 1), as in a per-CPU
 * cache, so that a second free of it is caught; word 0 is left as it was.
 *
 * Bounds: a class holds at most cap blocks (the node's [cache] transfer_size
 * bytes of it, at most NH_XFER_MAX_SLOTS). Decay: each array remembers the
 * fewest blocks it held since the last pass (low); a pass, at most once per
 * decay period per node, gives that many of the oldest blocks (the bottom of
 * the array) back to the spans: they were not needed for a whole period.
 * nh_trim and memory pressure give everything back.
 *
 * Lock: nh_xfer.lock is a leaf among the heap's locks: nothing else is taken
 * while it is held (blocks going to or from the spans are moved out first).
 */
#include <string.h>

#include "numa/heap.h"
#include "numa/os.h"

/* Operations on one class between two looks at the decay clock. */
#define TICKS_PER_LOOK 64

static size_t slots_bytes(void) {
  return sizeof(void *) * NH_XFER_MAX_SLOTS * NH_CLASS_COUNT;
}

uint32_t nh_xfer_cap_for(uint64_t bytes, unsigned cls) {
  uint64_t n = bytes / nh_class_size(cls);
  if (n > NH_XFER_MAX_SLOTS) n = NH_XFER_MAX_SLOTS;
  return n >= 2 ? (uint32_t)n : 0; /* one block is no batch: not cached */
}

int nh_xfer_init(nh_heap *h, uint64_t bytes, uint64_t decay_ms) {
  h->xfer_slots = NULL;
  h->xfer_decay_ns = decay_ms * 1000000ull;
  atomic_store_explicit(&h->xfer_pass_ns, nh_os_clock_ns(), memory_order_relaxed);
  bool any = false;
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) any |= nh_xfer_cap_for(bytes, cls) > 0;
  if (any && (h->xfer_slots = nh_os_meta_alloc(slots_bytes())) == NULL) return -1;
  for (unsigned cls = 0; cls < NH_CLASS_COUNT; cls++) {
    nh_xfer *x = &h->xfer[cls];
    x->count = x->low = x->ticks = 0;
    x->cap = cls && any ? nh_xfer_cap_for(bytes, cls) : 0;
    x->slots = x->cap ? h->xfer_slots + (size_t)cls * NH_XFER_MAX_SLOTS : NULL;
  }
  return 0;
}

void nh_xfer_destroy(nh_heap *h) {
  if (h->xfer_slots) nh_os_meta_free(h->xfer_slots, slots_bytes());
  h->xfer_slots = NULL;
}

static void held_add(nh_heap *h, unsigned cls, size_t n, bool add) {
  uint64_t bytes = (uint64_t)n * nh_class_size(cls);
  if (add) atomic_fetch_add_explicit(&h->st.xfer_bytes, bytes, memory_order_relaxed);
  else atomic_fetch_sub_explicit(&h->st.xfer_bytes, bytes, memory_order_relaxed);
}

/* Whether this operation should look at the decay clock. Caller holds x->lock. */
static bool tick(nh_xfer *x) {
  if (++x->ticks < TICKS_PER_LOOK) return false;
  x->ticks = 0;
  return true;
}

size_t nh_xfer_take(nh_heap *h, unsigned cls, void **out, size_t n, bool *look) {
  nh_xfer *x = &h->xfer[cls];
  if (x->cap == 0) return 0;
  nh_lock_acquire(&x->lock);
  size_t k = n < x->count ? n : x->count;
  x->count -= (uint32_t)k;
  memcpy(out, x->slots + x->count, k * sizeof *out);
  if (x->count < x->low) x->low = x->count;
  *look = tick(x);
  if (k) held_add(h, cls, k, false); /* under the lock: a fork sees it agree with count */
  nh_lock_release(&x->lock);
  return k;
}

size_t nh_xfer_put(nh_heap *h, unsigned cls, void *const *in, size_t n, bool *look) {
  nh_xfer *x = &h->xfer[cls];
  if (x->cap == 0) return 0;
  nh_lock_acquire(&x->lock);
  size_t room = x->cap - x->count, k = n < room ? n : room;
  memcpy(x->slots + x->count, in, k * sizeof *in);
  x->count += (uint32_t)k;
  *look = tick(x);
  if (k) held_add(h, cls, k, true);
  nh_lock_release(&x->lock);
  return k;
}

size_t nh_xfer_take_oldest(nh_heap *h, unsigned cls, void **out, size_t n, bool decay) {
  nh_xfer *x = &h->xfer[cls];
  if (x->cap == 0) return 0;
  nh_lock_acquire(&x->lock);
  size_t want = decay ? x->low : x->count;
  size_t k = want < n ? want : n;
  if (k > x->count) k = x->count;
  memcpy(out, x->slots, k * sizeof *out);
  memmove(x->slots, x->slots + k, (x->count - k) * sizeof *out);
  x->count -= (uint32_t)k;
  /* the pass is over for this class once it took fewer than it could: the
   * next window starts from what is left */
  x->low = decay && k == n ? (uint32_t)(x->low - k) : x->count;
  if (k) held_add(h, cls, k, false);
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
  nh_xfer *x = &h->xfer[cls];
  nh_lock_acquire(&x->lock);
  uint32_t n = x->count;
  nh_lock_release(&x->lock);
  return n;
}

void nh_xfer_prefork(nh_heap *h) {
  for (unsigned cls = 1; cls < NH_CLASS_COUNT; cls++) nh_lock_acquire(&h->xfer[cls].lock);
}

void nh_xfer_postfork(nh_heap *h, int child) {
  for (unsigned cls = NH_CLASS_COUNT; cls-- > 1;) {
    if (child) nh_lock_reset(&h->xfer[cls].lock);
    else nh_lock_release(&h->xfer[cls].lock);
  }
}
