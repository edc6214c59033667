/*
 * numa/heap.h: the internal interface of the per-node heaps, grouped by the
 * file that defines each part.
 *
 * Shape. One nh_heap per logical node. A heap takes memory from the OS in
 * 4 MiB segments aligned to 4 MiB and bound to the node's real OS node. A
 * segment is 64 pages of 64 KiB; page 0 holds the segment header (and the
 * descriptors of all its pages), pages 1..63 are carved into spans: runs of
 * pages that hold blocks of one size class, or one large block. Requests
 * above NH_LARGE_MAX get a segment of their own ("huge").
 *
 * Lock order (acquire left before right; never two locks of one kind):
 *     bin lock (nh_bin.lock)  <  page lock (nh_heap.page_lock)
 * A thread never holds locks of two different nodes at once.
 *
 * What each thread may touch: a span's block list and counters only under
 * its bin's lock; a segment's page masks and the heap's segment list only
 * under the page lock; the segment map and statistics are atomics that any
 * thread reads without locks.
 *
 * A free block carries a key in word 1 (address ^ secret, the "cached"
 * key) that marks it free so a second free is caught, wherever it is: in a
 * CPU's or thread's cache, a transfer cache, a refill batch or free on its
 * span (whose bitmap says which of its blocks are free: span.c). Only the
 * per-thread cache's lists also use word 0, for a link encoded with the
 * process secret and the block's own address (as glibc's safe-linking and
 * mimalloc do).
 *
 * When a second free is caught. Every free path but one reads word 1 first
 * and reports a block already free at the call. The exception is the free
 * fast path (nh_block_lookup_small): it writes the cached key without
 * reading the block, because on a block the CPU has not touched lately that
 * read is a cache miss that dominated the free (larson_classic with 50000
 * blocks: 0.55x the time without it). It still catches a second free of the
 * block its CPU's slab holds on top (freed last, the common double free), at
 * the call. Any other second free is caught before the block can be handed
 * out twice, since every handout consumes the cached key (checks and clears
 * it) and every free writes one: the second copy's handout finds no cached
 * key, or its return to a span finds the span's bit for it set, or its return
 * to a span or a transfer cache finds its span given back since, or the
 * refill that takes it from a transfer cache finds its span given back
 * since, and stops the process naming the block (docs/reliability.md).
 */
#ifndef NH_NUMA_HEAP_H
#define NH_NUMA_HEAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "numa/lock.h"
#include "numa/topo.h"
#include "numa/track.h"

/* Everything declared below is internal to the library: hidden, so that
 * the code reaches globals directly rather than through the GOT. */
#pragma GCC visibility push(hidden)

#define NH_LEVELS 3 /* task, appdomain, process: the CLR's EMemoryCriticalLevel */
#define NH_LARGE_CACHE 8 /* freed large spans a node keeps for reuse */
/* realloc moves a block growing past this into whole pages, where the next
 * growth can happen in place (jemalloc's large extents grow the same way);
 * below it, a class's block is tighter. */
#define NH_GROW_IN_PAGES ((size_t)32 << 10)
/* Ordinary segments of a node mapped before this many others use base pages:
 * a program that allocates little pays for no 2 MiB page around a header and
 * a few small blocks, and a heap of tens of MiB none for the partly touched
 * 2 MiB units at each class's growth front, which a huge page makes resident
 * whole. 32 (128 MiB a node): at 8, glibc_thread/ws:262144 at two threads
 * peaked at 52.8 MB against mimalloc's 39.5 (46.6 at 32) and frag/live_mib:64
 * at 140.2 against glibc's 113.3 (135.9); at 2, python3 -c pass at 24.6 MB
 * against glibc's 13.4. A heap of GiBs, where huge pages pay (a TLB entry
 * covers 2 MiB), has almost all of its segments advised. */
#define NH_THP_FIRST_SEGMENT 32

/* Free committed pages a node keeps for the decay when a page claim must
 * fault in new ones (numa/segment.c, shed_excess): 1/NH_DIRTY_SHARE of its
 * other committed bytes (those in use, cached, kept large spans and
 * headers; not kept huge mappings), as jemalloc's lg_dirty_mult bounded its
 * dirty pages by a share of its active ones. A working set that frees and
 * refills blocks of 0.5-2.5 MiB then finds the pages it freed a moment ago
 * still resident instead of faulting them in again. large/max_kib:2560,
 * 2000 replacements in a fresh process (docs/benchmarks.md, session 18):
 * an eighth 125 and 88 us a replacement at one and two threads, peak RSS
 * 58.4 and 105.8 MiB; a quarter 106 and 66 us at 62.4 and 111.4 MiB
 * (glibc 93 and 48 us at 56.7 and 99.6; tcmalloc 72 and 37 at 63.2 and
 * 101.5); server/live:100000 at two threads 76.7 -> 79.1 MiB (mimalloc
 * 71.3). Before claims took the window that faults in the fewest pages, a
 * quarter took that server to 86.5 MB (session 17). */
#define NH_DIRTY_SHARE 4

/* [heap] huge_pages: how segments and huge blocks ask for 2 MiB pages. */
enum { NH_HUGE_OFF = 0, NH_HUGE_THP = 1, NH_HUGE_HUGETLB = 2 };
#define NH_HUGE_PAGE ((size_t)2 << 20)

/* ---- sizeclass.c: size classes ---------------------------------------------
 * Class 0 is "no class" (large or huge). Classes 1..8 are 16..128 bytes in
 * steps of 16; above, 8 classes per power of two (each 12.5% apart, so the
 * internal fragmentation of a class is under 12.5%) up to NH_SMALL_MAX. */
#define NH_SEGMENT_SHIFT 22
#define NH_SEGMENT_SIZE ((size_t)1 << NH_SEGMENT_SHIFT) /* 4 MiB */
#define NH_PAGE_SHIFT 16
#define NH_PAGE_SIZE ((size_t)1 << NH_PAGE_SHIFT) /* 64 KiB */
#define NH_PAGES_PER_SEGMENT 64
#define NH_SMALL_MAX ((size_t)256 << 10)           /* largest classed size */
/* Largest in-segment block: a whole segment's pages past its header (4032
 * KiB). Blocks up to it share segments' pages with each other, so a freed
 * 2.5 MiB block's pages serve the next 1 MiB and 1.5 MiB ones; at 2 MiB,
 * large/max_kib:2560 (blocks of 0.5-2.5 MiB) faulted in 1.6x the pages of
 * tcmalloc, each 2-2.5 MiB block in a mapping of its own that no smaller
 * block could use (docs/benchmarks.md, session 17). */
#define NH_LARGE_MAX ((size_t)(NH_PAGES_PER_SEGMENT - 1) << NH_PAGE_SHIFT)
#define NH_CLASS_COUNT 97
#define NH_MIN_ALIGN 16

/* Classes of sizes up to NH_CLASS_TABLE_MAX, by (size + 15) / 16: one load
 * on the malloc fast path (sizeclass.c; test_heap checks it against the
 * formula below). */
#define NH_CLASS_TABLE_MAX 1024
extern const uint8_t nh_class_table[NH_CLASS_TABLE_MAX / 16 + 1];

static inline unsigned nh_size_class(size_t size) {
  if (size <= NH_CLASS_TABLE_MAX) return nh_class_table[(size + 15) >> 4];
  size_t s = size - 1;
  unsigned k = 63u - (unsigned)__builtin_clzll(s); /* s in [2^k, 2^(k+1)) */
  unsigned j = (unsigned)(s >> (k - 3)) - 8u;
  return 9u + (k - 7u) * 8u + j;
}

/* The same by the formula alone (the table's reference). */
static inline unsigned nh_size_class_formula(size_t size) {
  if (size <= 128) return size <= 16 ? 1u : (unsigned)((size + 15) >> 4);
  size_t s = size - 1;
  unsigned k = 63u - (unsigned)__builtin_clzll(s);
  unsigned j = (unsigned)(s >> (k - 3)) - 8u;
  return 9u + (k - 7u) * 8u + j;
}

static inline size_t nh_class_size(unsigned cls) {
  if (cls <= 8) return (size_t)cls * 16;
  unsigned k = 7u + (cls - 9u) / 8u, j = (cls - 9u) % 8u;
  return (size_t)(j + 9u) << (k - 3u);
}

/* Pages in a span of class cls (enough for ~8 blocks, at most 32). */
unsigned nh_class_pages(unsigned cls);
/* Smallest class >= size whose block size is a multiple of align (<= NH_PAGE_SIZE), 0 if none. */
unsigned nh_class_for_aligned(size_t size, size_t align);

/* ---- segment.c: segments, spans of pages, the segment map ------------------ */

extern uintptr_t nh_secret[4]; /* set once at start-up from getrandom (span.c) */

typedef enum nh_page_kind { NH_PAGE_FREE = 0, NH_PAGE_HEAD = 1, NH_PAGE_TAIL = 2 } nh_page_kind;

typedef struct nh_span {
  /* Set under the page lock when the span is taken; constant until it is
   * released (so readable without locks by whoever holds one of its blocks). */
  uint8_t kind;        /* nh_page_kind */
  uint8_t back;        /* TAIL: pages back to the head */
  uint8_t npages;      /* HEAD: pages in the span */
  uint8_t level;       /* HEAD: criticality level charged for its pages */
  uint8_t cls;         /* HEAD: size class, 0 for one large block */
  uint16_t capacity;   /* HEAD: blocks that fit */
  uint32_t block_size; /* HEAD: bytes per block */
  uint8_t *start;      /* HEAD: first block */
  uint64_t div_magic;  /* HEAD: nh_div_magic(block_size), for the block index;
                          0 for a large block (cls 0: its one block is at start) */
  /* Guarded by the bin lock of (node, cls) (for cls 0: the page lock). */
  uint16_t used;       /* blocks out of the span (in caches or live) */
  uint16_t carved;     /* blocks handed out at least once (bump index); written
                          under the bin lock with relaxed atomic stores, read
                          without it (relaxed) by nh_block_lookup */
  uint8_t in_bin;      /* on its bin's list of spans with free blocks */
  /* HEAD, classed: the CPU shard whose bin lists it (heap.c, "Bin shards").
   * Set when the span is formatted, before any block leaves it; constant
   * until it is released, so whoever holds one of its blocks reads it
   * without locks. */
  uint8_t shard;
  uint16_t scan;       /* the first word of the span's bitmap that may have a set bit */
  uint16_t spare[3];
  struct nh_span *next, *prev; /* bin list */
} nh_span;
_Static_assert(sizeof(nh_span) == 64, "span descriptors are 64 bytes (nh_block_lookup_small)");

/* Block index by one multiplication (Lemire, Kaser and Kurz, "Faster
 * remainder by direct computation", 2019): with m = nh_div_magic(d) and an
 * offset n < 2^32, the 128-bit product n * m holds n / d in its high half,
 * and its low half is below m exactly when d divides n. Span offsets are
 * below 4 MiB. */
static inline uint64_t nh_div_magic(uint32_t d) { return UINT64_MAX / d + 1; }
/* n / d if d divides n, else UINT64_MAX (so that any bound check fails). */
static inline uint64_t nh_block_index(uint64_t n, uint64_t magic) {
  unsigned __int128 prod = (unsigned __int128)n * magic;
  return (uint64_t)prod < magic ? (uint64_t)(prod >> 64) : UINT64_MAX;
}

typedef struct nh_segment {
  uintptr_t cookie;    /* address ^ secret: a header that fails this is not ours */
  int node;            /* logical node; constant */
  uint8_t huge;        /* 1: a segment holding one huge block */
  uint8_t reserve;     /* 1: part of the node's pre-committed emergency reserve */
  uint8_t hugetlb;     /* 1: mapped with explicit 2 MiB huge pages (never purged in part) */
  size_t map_size;     /* bytes mapped; constant but for huge mappings (page lock) */
  size_t advised;      /* bytes from the start backed by huge pages (MADV_HUGEPAGE given,
                          or hugetlb): counted in thp_bytes / hugetlb_bytes. Page lock */
  /* huge only (constant while live; changed under the page lock of the
   * node while kept, or by the block's owner through realloc): */
  uint8_t *huge_block;
  size_t huge_size;    /* usable bytes */
  uint8_t huge_level;
  _Atomic int huge_live; /* 1 live, 0 freed or kept. Stored under the page lock:
                            release on free, acquire in nh_block_lookup_huge */
  size_t huge_charged; /* bytes from huge_block counted in committed (>= huge_size
                          while live; the rest of the mapping is untouched) */
  size_t huge_dirty;   /* bytes from huge_block that may be nonzero (<= huge_charged);
                          past them the block reads as zero (calloc) */
  uint64_t kept_ns;    /* kept: when it was freed (nh_os_clock_ns), for the decay */
  /* Guarded by the page lock of the node: */
  uint64_t free_pages;      /* bit i: page i is in no span */
  uint64_t committed_pages; /* bit i: page i counted in committed bytes */
  struct nh_segment *next, *prev;
  /* One cache line per descriptor: a span's bin writes its descriptor
   * (used, scan, in_bin, the list) while other CPUs read their own spans'
   * descriptors and the header's first line on every free. At offset 112
   * (unaligned) each descriptor shared lines with its neighbours, spans of
   * other CPU shards: batch_shuffled at 2 threads took 1.25x the time of one
   * thread per thread (no slower with two processes). */
  _Alignas(64) nh_span spans[NH_PAGES_PER_SEGMENT];
} nh_segment;
_Static_assert(offsetof(nh_segment, spans) % 64 == 0, "span descriptors are line-aligned");
_Static_assert(offsetof(nh_segment, free_pages) >= 64,
               "the page lock's fields are not on the line of the cookie every free reads");

#define NH_SEGMENT_USABLE_MASK (~(uint64_t)1) /* page 0 holds the header */

/* The segment holding a span descriptor (descriptors live in the header). */
static inline nh_segment *nh_span_segment(const nh_span *span) {
  return (nh_segment *)((uintptr_t)span & ~(uintptr_t)(NH_SEGMENT_SIZE - 1));
}

/* Span bitmaps (span.c): bit i of a classed span's bitmap is set while its
 * block i is free on the span (carved, not out). Guarded by the span's bin
 * lock. They live in the header page after the descriptors,
 * NH_SPAN_BITMAP_BYTES for each page of the segment: a span's bitmap is
 * that of its first page and runs on into its next pages' (blocks are at
 * least 16 bytes, so npages of them hold the span's capacity). */
#define NH_SPAN_BITMAP_BYTES (NH_PAGE_SIZE / 16 / 8)
#define NH_SPAN_BITMAP_OFF ((sizeof(nh_segment) + 63) & ~(size_t)63)
_Static_assert(NH_SPAN_BITMAP_OFF + NH_PAGES_PER_SEGMENT * NH_SPAN_BITMAP_BYTES <= NH_PAGE_SIZE,
               "the span bitmaps fit in the header page");
static inline uint64_t *nh_span_bits(const nh_span *span) {
  nh_segment *seg = nh_span_segment(span);
  size_t page = (size_t)(span - seg->spans);
  return (uint64_t *)((char *)seg + NH_SPAN_BITMAP_OFF + page * NH_SPAN_BITMAP_BYTES);
}
/* Words of span's bitmap covering its capacity. */
static inline size_t nh_span_bitmap_words(const nh_span *span) {
  return ((size_t)span->capacity + 63) / 64;
}

/* The descriptor of the span whose pages hold p, p inside ordinary segment
 * seg: its head's for a tail page; for a free page (or the header page) that
 * page's own, which is no head. */
static inline nh_span *nh_span_at(nh_segment *seg, const void *p) {
  nh_span *span = &seg->spans[((uintptr_t)p - (uintptr_t)seg) >> NH_PAGE_SHIFT];
  return span->kind == NH_PAGE_TAIL ? span - span->back : span;
}

/* Segment map: one byte per 4 MiB of address space. 0 = not ours,
 * NH_MAP_SEGMENT = an ordinary segment starts here, NH_MAP_HUGE = a huge
 * segment starts here, NH_MAP_TAIL = inside a huge segment. So one load
 * tells the free fast path that p is in an ordinary segment.
 * Synchronization: atomic; stores release after the header is written,
 * loads acquire. */
enum { NH_MAP_NONE = 0, NH_MAP_SEGMENT = 1, NH_MAP_TAIL = 2, NH_MAP_HUGE = 3 };
/* Entries of the map: it covers the 48-bit address space. */
#define NH_SEGMAP_SLOTS ((size_t)1 << (48 - NH_SEGMENT_SHIFT))
int nh_segmap_init(void);
/* Marks [base, base + size) as one segment whose head byte is head
 * (NH_MAP_SEGMENT or NH_MAP_HUGE), or clears it (NH_MAP_NONE). */
void nh_segmap_set(uintptr_t base, size_t size, int head);
extern _Atomic uint8_t *nh_segmap;
nh_segment *nh_segment_of_slow(const void *p);
_Noreturn void nh_segment_corrupt(const nh_segment *seg) __attribute__((cold));

static inline nh_segment *nh_segment_checked(nh_segment *seg) {
  if (__builtin_expect(seg->cookie != ((uintptr_t)seg ^ nh_secret[0]), 0)) nh_segment_corrupt(seg);
  return seg;
}

/* The segment holding p, NULL if p is not in a segment of ours. The common
 * case (p in an ordinary segment, whose map byte is 1) is one load of the
 * map and one of the header's cookie. */
static inline nh_segment *nh_segment_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
  _Atomic uint8_t *map = nh_segmap;
  if (__builtin_expect(map != NULL && (a >> 48) == 0, 1) &&
      atomic_load_explicit(&map[a >> NH_SEGMENT_SHIFT], memory_order_acquire) == NH_MAP_SEGMENT)
    return nh_segment_checked((nh_segment *)(a & ~(uintptr_t)(NH_SEGMENT_SIZE - 1)));
  return nh_segment_of_slow(p);
}

struct nh_heap;
/* Takes npages contiguous pages on heap h at level (budget checked). NULL if
 * the budget for level or the OS says no. Caller holds h->page_lock. */
nh_span *nh_pages_take(struct nh_heap *h, unsigned npages, int level);
/* Returns a span's pages to its segment. Caller holds h->page_lock. */
void nh_pages_release(struct nh_heap *h, nh_segment *seg, nh_span *span);
/* bytes of new pages are about to fault in outside the segments (a huge
 * block's mapping, fresh or grown): the node's kept large spans go back to
 * their segments, and as many of the segments' free dirty pages go back to
 * the OS, as an ordinary claim does before it faults pages in (shed_dirty).
 * Caller holds h->page_lock. */
void nh_pages_shed(struct nh_heap *h, size_t bytes);
/* Purges free committed pages of h (all of them when force, else per the
 * policy in docs/architecture.md), after releasing the large spans kept for
 * reuse. Caller holds h->page_lock. */
void nh_pages_purge(struct nh_heap *h, bool force);
/* Helpers of the page layer shared with huge.c. Caller holds the page lock. */
#define NH_HEADER_BYTES ((sizeof(nh_segment) + 4095) & ~(size_t)4095) /* charged per segment */
bool nh_charge(struct nh_heap *h, uint64_t bytes, int level);
void nh_uncharge(struct nh_heap *h, uint64_t bytes);
bool nh_node_has_room(struct nh_heap *h, size_t size);
/* Maps a segment of size bytes aligned to align on h's node (header charged),
 * backed per [heap] huge_pages: explicit huge pages where hugetlb_ok,
 * transparent ones where thp_ok (an ordinary segment: both from the node's
 * NH_THP_FIRST_SEGMENT-th on; a huge block's mapping: hugetlb always, thp
 * where the block leaves empty at most a quarter of its size in the last
 * 2 MiB unit it reaches, huge.c), base pages otherwise; NULL if the budget or
 * the OS say no. */
nh_segment *nh_segment_map_new(struct nh_heap *h, size_t size, size_t align, int level,
                               bool hugetlb_ok, bool thp_ok);
/* Unmaps seg, uncharging committed bytes and its header (counted as purged). */
void nh_segment_unmap(struct nh_heap *h, nh_segment *seg, uint64_t committed);
/* Maps and populates (pre-faults) the node's emergency reserve, bound to its
 * node, so that process-level requests succeed from it even when the OS has
 * no memory left. Done once; 0, or -1 if the OS refused (the reserve then
 * stays a budget-only reserve). Caller holds h->page_lock. */
int nh_heap_precommit_reserve(struct nh_heap *h);
/* Memory committed outside the heaps (the host API's VirtualAlloc commits):
 * counts bytes against node's budget within level's limit. charge: true if
 * it fits. */
bool nh_heap_charge(int node, uint64_t bytes, int level);
void nh_heap_uncharge(int node, uint64_t bytes, int level);
/* Grows a large block's span (class 0) in place to hold size bytes, taking
 * the free pages after it in its segment (budget checked at the span's
 * level). Caller holds h->page_lock. */
bool nh_pages_grow(struct nh_heap *h, nh_segment *seg, nh_span *span, size_t size);

/* ---- huge.c: huge blocks, one mapping each, kept per node after free -------
 * Every function: caller holds the page lock of the node. */
/* A huge block of size bytes aligned to align, from a kept mapping that fits
 * (best fit, split, or grown by mremap) or a new one. NULL if the budget or
 * the OS say no (kept memory was given back first). */
void *nh_huge_alloc(struct nh_heap *h, size_t size, size_t align, int level);
/* Frees a live huge block: its mapping is kept for reuse (within [heap]
 * huge_keep, for purge_delay ms), or unmapped. A second free stops the process. */
void nh_huge_free(nh_segment *seg);
/* Whether freed huge mappings are kept for reuse in this build (not under
 * Valgrind's client requests: numa/huge.c). */
bool nh_huge_keeping(void);
/* Grows a huge block without copying it: within its mapping, into a kept
 * mapping just after it, by extending the mapping where the address space
 * after it is free, or else by moving the mapping, pages and all, to where
 * it can grow (*segp then names the new place; the block keeps its offset
 * in it). false if none can (the caller copies). */
bool nh_huge_grow(struct nh_heap *h, nh_segment **segp, size_t size);
/* Shrinks a huge block in place to size bytes (> NH_LARGE_MAX): the whole
 * 4 MiB units past it become a kept mapping of their own. */
void nh_huge_shrink(struct nh_heap *h, nh_segment *seg, size_t size);
/* Unmaps the kept mappings freed purge_delay ms ago or more (all when force). */
void nh_huge_decay(struct nh_heap *h, bool force);
/* Unmaps every huge mapping of h, live and kept (tests, shutdown). */
void nh_huge_destroy(struct nh_heap *h);
/* Cuts a large block's span (class 0) to npages: the pages past them go
 * back to the segment, dirty. Caller holds h->page_lock. */
void nh_pages_shrink(struct nh_heap *h, nh_segment *seg, nh_span *span, unsigned npages);
/* Cuts large span after its first npages (< its pages): the rest becomes a
 * large span of its own at the same level, its block out and marked free as
 * a kept span's is, and is returned for the caller to keep. Caller holds
 * h->page_lock. */
nh_span *nh_pages_split(struct nh_heap *h, nh_segment *seg, nh_span *span, unsigned npages);
/* Joins next, a kept large span whose pages directly follow large span's
 * (taken out of wherever it was kept), into span. Caller holds
 * h->page_lock. */
void nh_pages_join(struct nh_heap *h, nh_segment *seg, nh_span *span, nh_span *next);
/* Unmaps every segment of h (tests, shutdown). */
void nh_segments_destroy(struct nh_heap *h);

/* ---- span.c: blocks inside spans -------------------------------------------- */


static inline uintptr_t nh_rotl(uintptr_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }
static inline uintptr_t nh_rotr(uintptr_t x, unsigned r) { return (x >> r) | (x << (64 - r)); }

/* Accessors of a free block's two words. Each opens and closes exactly the
 * bytes it touches for ASan/Valgrind (numa/track.h), so free blocks stay
 * inaccessible to everyone else. */
static inline void nh_block_set_next(void *block, void *next) {
  nh_track_open(block, sizeof(uintptr_t));
  ((uintptr_t *)block)[0] = nh_rotl((uintptr_t)next ^ nh_secret[0], 17) + ((uintptr_t)block ^ nh_secret[1]);
  nh_track_close(block, sizeof(uintptr_t));
}
static inline void *nh_block_next_raw(const void *block) {
  nh_track_open(block, sizeof(uintptr_t));
  uintptr_t v = ((const uintptr_t *)block)[0];
  nh_track_close(block, sizeof(uintptr_t));
  return (void *)(nh_rotr(v - ((uintptr_t)block ^ nh_secret[1]), 17) ^ nh_secret[0]);
}
/* The key of word 1 (top of this file). */
static inline uintptr_t nh_key_cached(const void *block) { return (uintptr_t)block ^ nh_secret[2]; }
static inline uintptr_t nh_block_word1(const void *block) {
  const uintptr_t *w = (const uintptr_t *)block + 1;
  nh_track_open(w, sizeof *w);
  uintptr_t v = *w;
  nh_track_close(w, sizeof *w);
  return v;
}
static inline void nh_block_set_word1(void *block, uintptr_t v) {
  uintptr_t *w = (uintptr_t *)block + 1;
  nh_track_open(w, sizeof *w);
  *w = v;
  nh_track_close(w, sizeof *w);
}
/* Marks a block free (the cached key) / clears the mark (handed out). */
static inline void nh_block_mark_free(void *block) { nh_block_set_word1(block, nh_key_cached(block)); }
static inline void nh_block_clear_mark(void *block) { nh_block_set_word1(block, 0); }
/* Whether a block that may be live or free carries either free key; a live
 * block's word is left accessible. */
static inline bool nh_block_is_marked_free(const void *block) {
  const uintptr_t *w = (const uintptr_t *)block + 1;
  nh_track_open(w, sizeof *w);
  bool marked = *w == nh_key_cached(block);
  if (marked) nh_track_close(w, sizeof *w);
  return marked;
}

/* A block in a per-CPU cache carries only the free mark (word 1): the cache
 * is an array, so word 0 holds no link and is left as the program left it
 * (a write after free there cannot mislead the allocator, and no key is
 * handed out with the block). */
static inline void nh_block_mark_cached(void *block) { nh_block_mark_free(block); }
/* Checks a block taken from a per-CPU cache and clears its mark: false if
 * the mark was overwritten while it sat there (it is then left as found). */
static inline bool nh_block_unmark_cached(void *block) {
  uintptr_t *w = (uintptr_t *)block + 1;
  nh_track_open(w, sizeof *w);
  bool intact = *w == nh_key_cached(block);
  if (__builtin_expect(intact, 1)) *w = 0;
  nh_track_close(w, sizeof *w);
  return intact;
}

/* A block taken from a transfer cache or a refill batch lacks its cached
 * key: it was freed twice (another copy was handed out) or written while it
 * sat there. Stops the process. */
_Noreturn void nh_block_corrupt(const void *block) __attribute__((cold));
/* A block returned to a span that is no longer its span (released, or taken
 * again for another class or shard): a second copy of a block freed twice.
 * Stops the process. */
_Noreturn void nh_block_respanned(const void *block) __attribute__((cold));
/* A block a transfer cache gives whose span is gone (nh_heap_refill): a
 * second copy of a block freed twice. Stops the process. */
_Noreturn void nh_block_orphaned(const void *block) __attribute__((cold));
/* Hands a block of a refill batch out: checks its free mark and clears it. */
static inline void nh_block_handout(void *block) {
  if (__builtin_expect(!nh_block_unmark_cached(block), 0)) nh_block_corrupt(block);
}
/* Checks that a block of a refill batch still carries its free mark. */
static inline void nh_block_check_mark(void *block) {
  if (__builtin_expect(nh_block_word1(block) != nh_key_cached(block), 0)) nh_block_corrupt(block);
}

/* Decodes block's next link and checks it: NULL, or a 16-aligned address in
 * our address space (its segment map byte is set). A bad link stops the
 * process (corrupted free list). */
_Noreturn void nh_bad_link(const void *block, const void *next, const char *where)
    __attribute__((cold));
static inline void *nh_block_next(const void *block, const char *where) {
  void *next = nh_block_next_raw(block);
  uintptr_t a = (uintptr_t)next;
  if (__builtin_expect(a != 0 && ((a & (NH_MIN_ALIGN - 1)) != 0 || (a >> 48) != 0 ||
                                  atomic_load_explicit(&nh_segmap[a >> NH_SEGMENT_SHIFT],
                                                       memory_order_relaxed) == 0), 0))
    nh_bad_link(block, next, where);
  return next;
}

/* Paranoid mode: the byte every freed block holds past its two link words. */
#define NH_FREE_FILL 0xdf
/* Fills block bytes [16, size) with NH_FREE_FILL / checks they still hold it
 * (a write after free otherwise: stops the process naming the block). */
void nh_block_fill_freed(void *block, size_t size);
void nh_block_check_freed(const void *block, size_t size, const char *call);

/* Span set-up and block moves. Caller holds the bin lock. */
void nh_span_format(nh_span *span, uint8_t *start, unsigned cls, size_t bytes);
/* Up to n blocks: free ones (lowest first, untouched: they carry the
 * cached key their free wrote), then fresh ones carved and marked. */
size_t nh_span_pop(nh_span *span, void **out, size_t n);
/* Gives one block back (its bit set, without touching it); returns the
 * span's used count after. A block the span holds already, or not at the
 * start of one of its carved blocks, was freed twice: stops the process
 * naming it. */
unsigned nh_span_push(nh_span *span, void *block);

/* ---- xfer.c: the per-node transfer caches ------------------------------------
 * Per (node, CPU shard, class) a ring of free block pointers between the
 * caches above and the spans; batches move by memcpy without touching the
 * blocks (xfer.c has the design). Every block held is of the node and
 * carries the free mark. */

#define NH_XFER_MAX_SLOTS 65536 /* most blocks one class's shard holds */
#define NH_XFER_MAX_SHARDS 64   /* a node's CPUs beyond this share shards */

/* A class's rings, the same in every shard of a node. Constant after init
 * but for released. */
typedef struct nh_xfer_class {
  uint32_t cap;    /* constant: most blocks held per shard; 0: class not cached */
  uint32_t mask;   /* constant: ring size - 1 (a power of two >= cap) */
  uint32_t off;    /* constant: the class's ring in a shard's part of xfer_slots */
  /* Spans of the class given back on the node (nh_xfer_span_released, under
   * the bin lock: release order); read acquire by the rings' takes and puts
   * (nh_xfer.checked). Rarely written: a span is given back when it empties
   * and is not its bin's last. */
  _Atomic uint32_t released;
} nh_xfer_class;

/* Every field starts at zero (the array's pages come zeroed from the OS and
 * init writes none of it): only the entries of the (shard, class) pairs in
 * use are ever touched, so the array costs no memory for idle CPUs and
 * classes (docs/benchmarks.md, footprint). */
typedef struct nh_xfer {
  nh_lock lock;    /* a leaf: no other lock is taken while it is held */
  uint32_t first;  /* Guarded by lock: ring index of the oldest block */
  /* Guarded by lock; read relaxed without it by refills looking for a shard
   * that has blocks (a stale read only skips or visits a shard) */
  _Atomic uint32_t count;
  uint32_t low;    /* Guarded by lock: fewest held since the last decay pass */
  uint32_t ticks;  /* Guarded by lock: operations since the last look at the clock */
  /* Guarded by lock: the class's released count when the ring was last
   * empty. While it still equals released and recheck is clear, every block
   * the ring holds lies in a live span of its class (each was checked as it
   * was put, nh_heap_drain), and a take need not look at their spans. */
  uint32_t checked;
  bool recheck;    /* Guarded by lock: a put raced with a span's release; cleared when empty */
} __attribute__((aligned(64))) nh_xfer;

struct nh_heap;
/* Blocks a class's shard may hold for a byte bound (0: not cached). */
uint32_t nh_xfer_cap_for(uint64_t bytes, unsigned cls);
/* Sets up h's transfer caches: one per CPU shard (h->shards, set), the
 * node's bytes per class split among them, decay period. 0 or -1. */
int nh_xfer_init(struct nh_heap *h, uint64_t bytes, uint64_t decay_ms);
void nh_xfer_destroy(struct nh_heap *h);
/* Up to n of the newest blocks of shard / puts up to n blocks on shard
 * (blocks of its spans); returns how many. *look: time to look at the decay
 * clock (every 64 operations of a shard's class). A take sets *check when
 * a span of the class may have been given back while the blocks waited:
 * the caller must then check the blocks' spans. A put's blocks were checked
 * to lie in live spans of the class after the caller read seen
 * (nh_xfer_released). */
size_t nh_xfer_take(struct nh_heap *h, unsigned shard, unsigned cls, void **out, size_t n,
                    bool *look, bool *check);
size_t nh_xfer_put(struct nh_heap *h, unsigned shard, unsigned cls, void *const *in, size_t n,
                   bool *look, uint32_t seen);
/* Up to n of the newest blocks of up to 8 of the node's shards after own;
 * *check as for nh_xfer_take. */
size_t nh_xfer_steal(struct nh_heap *h, unsigned own, unsigned cls, void **out, size_t n,
                     bool *check);
/* One more span of cls given back on h (release; the caller holds the
 * span's bin lock and has not yet given the pages back). */
void nh_xfer_span_released(struct nh_heap *h, unsigned cls);
/* Up to n of the oldest blocks of one shard: all of them, or (decay) no
 * more than the fewest held since the last pass; the call that takes the
 * last of them (fewer than n) starts the shard's next decay window. */
size_t nh_xfer_take_oldest(struct nh_heap *h, unsigned shard, unsigned cls, void **out, size_t n,
                           bool decay);
/* true for the one caller that should run h's decay pass now. */
bool nh_xfer_pass_due(struct nh_heap *h, uint64_t now);
/* Blocks a class's transfer cache holds now, all shards (tests, stats). */
uint32_t nh_xfer_count(struct nh_heap *h, unsigned cls);
/* Checks shard's transfer cache of cls against the invariants of
 * docs/architecture.md (count within cap, every block a free-marked block of
 * a span of this node, shard and class, none held twice); stops the process
 * naming what is wrong. Takes the shard's lock: no heap lock held. */
void nh_xfer_check(struct nh_heap *h, unsigned shard, unsigned cls);
void nh_xfer_prefork(struct nh_heap *h);
void nh_xfer_postfork(struct nh_heap *h, int child);

/* ---- heap.c: the per-node heaps -------------------------------------------- */

typedef struct nh_bin {
  nh_lock lock;
  nh_span *spans;  /* Guarded by lock: spans with free blocks */
  /* Written under lock (relaxed stores); read relaxed without it by a
   * refill looking for another shard's bin with spans (a stale read only
   * skips or visits a bin) */
  _Atomic uint32_t nspans;
} __attribute__((aligned(64))) nh_bin;

/* Statistics. Synchronization: atomic, relaxed; read racily by snapshots. */
typedef struct nh_heap_counters {
  _Atomic uint64_t committed, peak_committed;
  _Atomic uint64_t level_committed[NH_LEVELS];
  _Atomic uint64_t fallback_out, fallback_in;
  _Atomic uint64_t failures[NH_LEVELS];
  _Atomic uint64_t purged, segments;
  _Atomic uint64_t huge_kept;    /* bytes of freed huge mappings kept for reuse */
  _Atomic uint64_t huge_reused;  /* huge requests served from a kept mapping */
  _Atomic uint64_t thp_bytes;    /* bytes of mappings advised MADV_HUGEPAGE, mapped now */
  _Atomic uint64_t hugetlb_bytes; /* bytes of mappings of explicit huge pages, mapped now */
  _Atomic uint64_t hugetlb_fallbacks; /* hugetlb mappings refused, served by thp instead */
} nh_heap_counters;

/* The counters every refill and drain writes: a set per CPU shard, on a
 * line of its own, written by the shard's CPU (a relaxed add, its line
 * staying in that CPU's cache) and summed by a snapshot
 * (nh_heap_sum_counters). Node-wide, every CPU of the node moved their line
 * on each batch: batch (50000 blocks) at 2 threads took 8-15% less time
 * without them, and a node of 64 CPUs has 32 times the writers. A gauge
 * (in_use, xfer_bytes) is the sum of the shards' shares; one share may wrap
 * below zero (a block allocated on one shard, freed on another).
 * Synchronization: atomic, relaxed. */
typedef struct nh_shard_counters {
  _Atomic uint64_t allocs, frees, remote_frees, in_use;
  /* transfer caches (xfer.c): blocks a refill took from them (hits) or from
   * the spans (misses), blocks given back to the spans by decay or trim,
   * and the bytes they hold now */
  _Atomic uint64_t xfer_hits, xfer_misses, xfer_released, xfer_bytes;
} __attribute__((aligned(64))) nh_shard_counters;

/* Freed large spans a CPU shard keeps for its next large request that one
 * of them holds (heap.c, "Large stashes"). Lock order: page lock < a stash's
 * lock (a purge empties the stashes under the page lock; the paths that
 * fill or take from one hold no other lock). */
#define NH_LARGE_STASH 2
typedef struct nh_large_stash {
  nh_lock lock;
  _Atomic uint32_t n;             /* written under lock; read relaxed without it
                                     (a stale read only skips or visits the stash) */
  nh_span *span[NH_LARGE_STASH];  /* Guarded by lock: [0, n), each block marked free */
} __attribute__((aligned(64))) nh_large_stash;

/* The sums of a heap's shard counters (a snapshot: racy, a gauge clamped at 0). */
typedef struct nh_shard_sums {
  uint64_t allocs, frees, remote_frees, in_use;
  uint64_t xfer_hits, xfer_misses, xfer_released, xfer_bytes;
} nh_shard_sums;

typedef struct nh_heap {
  /* Read by every refill and drain of the node's CPUs: on lines of their
   * own, apart from the page lock's fields and the counters, which those
   * CPUs write (sharing a line, the counters' writes made every other CPU's
   * next read of these miss). */
  int node;               /* logical node; constant */
  int os_node;            /* real OS node memory is bound to; constant */
  uint64_t mem_bytes;     /* node memory; constant */
  /* CPU shards: one per CPU of the node (its rank, nh_heaps.cpu_rank), a
   * node of more than NH_XFER_MAX_SHARDS CPUs sharing them. Each class has a
   * bin and a transfer cache per shard. Constant after init. */
  unsigned shards;
  nh_bin *bins;                 /* constant after init: [shards][NH_CLASS_COUNT], [.][0] unused */
  nh_shard_counters *sst;       /* constant after init: [shards], in the bins' block after them */
  nh_large_stash *stash;        /* constant after init: [shards], in that block after sst */
  nh_xfer *xfer;                /* constant after init: [shards][NH_CLASS_COUNT], [.][0] unused;
                                   in one block after xfer_cls */
  nh_xfer_class *xfer_cls;      /* constant after init: [NH_CLASS_COUNT], the block's start */
  size_t xfer_ring;             /* constant after init: slots of one shard's rings */
  void **xfer_slots;            /* constant after init: every shard's and class's rings */
  size_t xfer_slots_count;      /* constant after init: slots in xfer_slots */
  uint64_t xfer_decay_ns;       /* constant after init: decay period, 0: none */
  /* Limits: set at start-up, replaced by nh_heaps_set_limits.
   * Synchronization: atomic, relaxed (a limit is a number, not a guard). */
  _Atomic uint64_t budget, reserve;
  _Atomic uint64_t limit[NH_LEVELS]; /* committed bytes a level may reach */
  _Alignas(64) nh_lock page_lock;
  nh_segment *segments;   /* Guarded by page_lock: normal segments */
  nh_segment *huge;       /* Guarded by page_lock: segments of huge blocks */
  nh_segment *reserve_segs; /* Guarded by page_lock: the pre-committed emergency reserve */
  uint64_t reserve_mapped;  /* Guarded by page_lock: bytes populated for the reserve */
  uint64_t avail, avail_at; /* Guarded by page_lock: OS bytes free on os_node, and when read */
  uint64_t dirty_bytes;   /* Guarded by page_lock: free, committed, not purged */
  uint64_t last_purge_ns; /* Guarded by page_lock */
  /* Guarded by page_lock: large spans whose block was freed, kept whole
   * (block marked free, pages still taken) for the next large request of
   * the same size; every purge pass gives them back (segment.c). */
  nh_span *large_cache[NH_LARGE_CACHE];
  unsigned large_cached;
  nh_segment *huge_kept;    /* Guarded by page_lock: freed huge mappings, newest first */
  uint64_t huge_kept_bytes; /* Guarded by page_lock: their mapped bytes */
  _Alignas(64) nh_heap_counters st;
  _Alignas(64) _Atomic uint64_t xfer_pass_ns; /* relaxed: when the last decay pass ran (CAS elects one) */
} nh_heap;

/* Spans of cls given back on h so far (acquire: pairs with
 * nh_xfer_span_released). */
static inline uint32_t nh_xfer_released(const nh_heap *h, unsigned cls) {
  return atomic_load_explicit(&h->xfer_cls[cls].released, memory_order_acquire);
}

/* What the heaps need from the configuration (filled by api/init.c). */
typedef struct nh_node_limits {
  uint64_t budget, reserve; /* bytes */
} nh_node_limits;

/* The committed bytes each level may reach on a node of these limits (the
 * reserve capped at the budget): task = task share of (budget - reserve),
 * appdomain = budget - reserve, process = budget. */
static inline void nh_level_limits(nh_node_limits lim, uint32_t task_milli_pct,
                                   uint64_t out[NH_LEVELS]) {
  uint64_t reserve = lim.reserve > lim.budget ? lim.budget : lim.reserve;
  out[2] = lim.budget;
  out[1] = lim.budget - reserve;
  out[0] = (uint64_t)((unsigned __int128)out[1] * task_milli_pct / 100000u);
}

typedef struct nh_heap_params {
  const nh_topo *topo;
  const nh_node_limits *limits; /* [topo->nnodes] */
  uint32_t task_limit_milli_pct; /* share of (budget - reserve) for task level */
  int spill[NH_LEVELS];          /* NH_SPILL_* of api/options.h: 0 none, 1 package, 2 any */
  uint64_t purge_delay_ms;
  uint64_t huge_keep;            /* [heap] huge_keep: bytes of freed huge mappings kept a node */
  int huge_pages;                /* NH_HUGE_*: the mode asked for ([heap] huge_pages) */
  int paranoid;                  /* [safety] mode = paranoid */
  uint64_t xfer_bytes;           /* [cache] transfer_size: per node and class (split among
                                    the node's CPU shards), 0: none */
  uint64_t xfer_decay_ms;        /* [cache] transfer_decay */
} nh_heap_params;

typedef struct nh_heaps {
  const nh_topo *topo;
  int nnodes;
  nh_heap *heap;               /* [nnodes]; one block with home and cpu_rank */
  size_t tables_bytes;         /* that block's size; constant after init */
  int *home;                   /* [nnodes]: node serving a node's CPUs (itself, or the
                                  nearest node with memory when it has none) */
  uint16_t *cpu_rank;          /* [topo->ncpu_slots]: rank of a CPU among its node's CPUs
                                  (its transfer cache shard); constant after init */
  int spill[NH_LEVELS];        /* Synchronization: atomic via relaxed int stores (set at init/reconfig) */
  uint32_t task_limit_milli_pct;
  uint64_t purge_delay_ms;
  uint64_t huge_keep;          /* bytes of freed huge mappings a node keeps */
  int huge_pages;              /* NH_HUGE_OFF, NH_HUGE_THP or NH_HUGE_HUGETLB (in force) */
  const char *huge_reason;     /* why that mode (a static string, for topo and stats) */
  bool thp_ok;                 /* the kernel's THP is madvise or always */
  bool thp_always;             /* the kernel's THP is always: mappings meant for base
                                  pages must say so (nh_os_advise_small) */
  int paranoid;                /* [safety] mode = paranoid: fill and check freed blocks,
                                  guard pages after huge blocks (constant while running) */
  void (*reclaim_hook)(void);  /* called before failing a request (percpu drains caches) */
  void (*pressure_hook)(int node, int level); /* a request failed or spilled for lack of memory */
} nh_heaps;

extern nh_heaps nh_g; /* the process's heaps; constant after nh_heaps_init */

int nh_heaps_init(const nh_heap_params *p, char *err, size_t errlen);
/* The huge-page mode in force (NH_HUGE_*) for asked given the kernel's THP
 * setting thp (NH_OS_THP_*); *thp_ok: transparent huge pages can be asked
 * for; *why: a static sentence naming the mode and the reason. */
int nh_huge_mode_resolve(int asked, int thp, bool *thp_ok, const char **why);
void nh_heaps_set_limits(const nh_heap_params *p);
void nh_heaps_destroy(void);
void nh_heaps_trim(void);
/* nh_heap_precommit_reserve on every node. 0, or -1 if any node's failed. */
int nh_heaps_precommit_reserves(void);
/* Fork: lock everything in the parent before fork, unlock after (both sides). */
void nh_heaps_prefork(void);
void nh_heaps_postfork(int child);

/* Moves up to n blocks of class cls from node's heap (its transfer cache,
 * then its spans) into out[], growing the heap within the limit of level.
 * Returns how many (0: the node cannot). Every block comes out carrying the
 * free mark (nh_block_mark_free): the caller clears it on the block it hands
 * out (nh_block_clear_mark) and may cache the others as they are. */
size_t nh_heap_refill(int node, unsigned cls, int level, void **out, size_t n);
/* Returns n blocks of class cls that all belong to node's heap, each
 * already carrying the free mark; remote says they were freed by a CPU of
 * another node (statistics). */
void nh_heap_drain(int node, unsigned cls, void *const *blocks, size_t n, bool remote);
/* The calling CPU's shard of h (a CPU of another node: the shard of its
 * rank there; 0 when the CPU is unknown). */
unsigned nh_heap_shard(const nh_heap *h);
/* The counters of the calling CPU's shard of h. */
static inline nh_shard_counters *nh_heap_counters_here(nh_heap *h) {
  return &h->sst[nh_heap_shard(h)];
}
/* Moves bytes of h's committed memory from level from to level to: pages
 * already committed that change level (a kept span taken over, or joined
 * into a span, at another level), so no growth and no budget check. */
static inline void nh_heap_level_move(nh_heap *h, int from, int to, uint64_t bytes) {
  if (from == to) return;
  atomic_fetch_sub_explicit(&h->st.level_committed[from], bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->st.level_committed[to], bytes, memory_order_relaxed);
}
/* Sums h's shard counters into *s. */
void nh_heap_sum_counters(const nh_heap *h, nh_shard_sums *s);
/* Whether h keeps freed large spans, its own (large_cache) or in its CPU
 * shards' stashes (a racy look at the stashes). Caller holds the page lock. */
bool nh_heap_keeps_large(const nh_heap *h);
/* Takes every span out of shard's stash of h into out[] (room for
 * NH_LARGE_STASH); returns how many. Caller holds the page lock. */
size_t nh_heap_unstash(nh_heap *h, unsigned shard, nh_span **out);
/* The bin of (h, shard, cls). */
static inline nh_bin *nh_heap_bin(nh_heap *h, unsigned shard, unsigned cls) {
  return &h->bins[(size_t)shard * NH_CLASS_COUNT + cls];
}
/* Gives every block of node's transfer caches back to the spans (all) or
 * only those unused for a decay period. */
void nh_heap_xfer_release(int node, bool all);

/* One block of any size on exactly node (no fallback). align <= NH_PAGE_SIZE
 * for classed sizes; any power of two otherwise. NULL if the node cannot. */
void *nh_heap_alloc_on(int node, size_t size, size_t align, int level);
/* A block on home's heap or, when home cannot, on the nodes its fallback
 * order and the level's spill scope allow; reclaims caches and retries once
 * before failing. *served gets the node used. NULL (failure counted) if none. */
void *nh_heap_alloc_fallback(int home, size_t size, size_t align, int level, int *served);
/* A block of whole pages on exactly node, even for a classed size, that
 * realloc can grow without copying: a large span (with room after it, the
 * stash's largest) up to half the largest large size (NH_LARGE_MAX / 2,
 * 2016 KiB), which nh_heap_grow_large extends in place, and a huge block
 * past it, whose mapping grows or moves (a large block would be copied once
 * more when it outgrew a segment). realloc moves a block growing past
 * NH_GROW_IN_PAGES into one. NULL if the node cannot (no fallback, no
 * failure counted). */
void *nh_heap_alloc_pages_on(int node, size_t size, int level);

/* Whether node b is within level's spill scope seen from node a. */
bool nh_heap_may_spill(int a, int b, int level);

/* ---- lookup.c: pointer to block --------------------------------------------- */

typedef enum nh_lookup_status {
  NH_LOOKUP_OK = 0,        /* p is the start of a block that is not marked free */
  NH_LOOKUP_FOREIGN = 1,   /* p is not in numaheap's memory */
  NH_LOOKUP_INTERIOR = 2,  /* p is inside a block, not at its start */
  NH_LOOKUP_FREED = 3,     /* p's block is already free (double free) */
  NH_LOOKUP_NEVER = 4,     /* p is the start of a block never handed out */
} nh_lookup_status;

typedef struct nh_block_info {
  nh_segment *seg;
  nh_span *span;   /* NULL for huge */
  int node;
  unsigned cls;    /* 0: large or huge */
  size_t size;     /* usable size */
} nh_block_info;

nh_lookup_status nh_block_lookup_huge(nh_segment *seg, const uint8_t *p, nh_block_info *info);

/* Classifies p and fills info. O(1), lock-free: the segment map gives the
 * segment, the page index its span descriptor, one multiplication the block
 * index. Inline: it is on every free. */
static inline nh_lookup_status nh_block_lookup(const void *ptr, nh_block_info *info) {
  const uint8_t *p = (const uint8_t *)ptr;
  nh_segment *seg = nh_segment_of(p);
  if (__builtin_expect(seg == NULL, 0)) return NH_LOOKUP_FOREIGN;
  info->seg = seg;
  info->node = seg->node;
  if (__builtin_expect(seg->huge, 0)) return nh_block_lookup_huge(seg, p, info);
  size_t idx = (size_t)(p - (const uint8_t *)seg) >> NH_PAGE_SHIFT;
  if (__builtin_expect(idx == 0, 0)) return NH_LOOKUP_FOREIGN; /* the header page */
  nh_span *span = &seg->spans[idx];
  if (__builtin_expect(span->kind != NH_PAGE_HEAD, 0)) {
    if (span->kind == NH_PAGE_FREE) return NH_LOOKUP_FREED;
    span -= span->back;
  }
  uint64_t off = (uint64_t)(p - span->start);
  uint64_t q = span->cls ? nh_block_index(off, span->div_magic) : off == 0 ? 0 : UINT64_MAX;
  if (__builtin_expect(q >= span->capacity, 0)) return NH_LOOKUP_INTERIOR; /* or past the end */
  /* carved only grows while the span lives, so a live block is always below
   * it; a racy read can only be stale for blocks that are not live */
  if (__builtin_expect(q >= __atomic_load_n(&span->carved, __ATOMIC_RELAXED), 0))
    return NH_LOOKUP_NEVER;
  if (__builtin_expect(nh_block_is_marked_free(p), 0)) return NH_LOOKUP_FREED;
  info->span = span;
  info->cls = span->cls;
  info->size = span->block_size;
  return NH_LOOKUP_OK;
}
/* The span holding ptr in an ordinary segment, found without a header
 * load beyond the cookie (*seg gets the segment), or NULL: ptr is in no
 * ordinary segment, or in a page of no span (free, or the header page,
 * whose descriptor is never a head or tail), or map_slots (the caller's
 * gate: NH_SEGMAP_SLOTS or 0) says so. Only while the segment map exists. */
static inline const nh_span *nh_span_fast(uintptr_t a, size_t map_slots, nh_segment **seg) {
  size_t si = a >> NH_SEGMENT_SHIFT; /* one compare: 48-bit address and the caller's gate */
  if (__builtin_expect(si >= map_slots, 0) ||
      atomic_load_explicit(&nh_segmap[si], memory_order_acquire) != NH_MAP_SEGMENT)
    return NULL;
  *seg = nh_segment_checked((nh_segment *)(a & ~(uintptr_t)(NH_SEGMENT_SIZE - 1)));
  const nh_span *span = (const nh_span *)((const char *)(*seg)->spans +
                                          ((a >> (NH_PAGE_SHIFT - 6)) & ((NH_PAGES_PER_SEGMENT - 1) << 6)));
  if (__builtin_expect(span->kind != NH_PAGE_HEAD, 0)) {
    if (span->kind != NH_PAGE_TAIL) return NULL;
    span -= span->back;
  }
  return span;
}

/* The free fast path's lookup: true (with *cls and *node) when p is the
 * start of a block of a size class: in an ordinary segment, at a block
 * boundary of a span, below its carved mark. It does not read the block
 * (whether it is already free: the top of this file says when a second free
 * is caught). false for anything else (large, huge, foreign, interior, never
 * handed out), or when map_slots says so (nh_span_fast), which
 * nh_block_lookup then classifies. The checks of nh_block_lookup with fewer
 * steps: the map value tells ordinary from huge (no header load), the
 * header page's descriptor is never a head, and the carved check also bounds
 * the index (carved <= capacity; a block's offset from its span's start is
 * never negative: a head page's span starts on it). size, unless NULL, gets
 * the block's size (its class's). */
static inline bool nh_block_lookup_small(const void *ptr, size_t map_slots, unsigned *cls,
                                         int *node, size_t *size) {
  nh_segment *seg;
  const nh_span *span = nh_span_fast((uintptr_t)ptr, map_slots, &seg);
  if (__builtin_expect(span == NULL, 0)) return false;
  /* a large block's div_magic is 0: no index, so it fails here too */
  uint64_t q = nh_block_index((uint64_t)((uintptr_t)ptr - (uintptr_t)span->start), span->div_magic);
  if (__builtin_expect(q >= __atomic_load_n(&span->carved, __ATOMIC_RELAXED), 0)) return false;
  *cls = span->cls;
  *node = seg->node;
  if (size != NULL) *size = span->block_size;
  return true;
}

/* The same for a large block (class 0: one block at its span's start, its
 * span's whole pages): true with *size. Not whether it is free. */
static inline bool nh_block_lookup_large(const void *ptr, size_t map_slots, size_t *size) {
  nh_segment *seg;
  const nh_span *span = nh_span_fast((uintptr_t)ptr, map_slots, &seg);
  if (span == NULL || span->cls != 0 || span->start != (const uint8_t *)ptr ||
      __atomic_load_n(&span->carved, __ATOMIC_RELAXED) == 0)
    return false;
  *size = span->block_size;
  return true;
}

/* Node owning any address inside numaheap's blocks, -1 otherwise. */
int nh_addr_node(const void *p);
/* Frees a large (cls 0) or huge block found by nh_block_lookup. */
void nh_heap_free_large(const nh_block_info *info, void *p);
/* Grows a large or huge block to at least size bytes without copying it:
 * true (info->size updated; a huge block's mapping may have moved, its new
 * header in info->seg, the block at info->seg->huge_block) when it could,
 * false when the block must be copied. */
bool nh_heap_grow_large(nh_block_info *info, size_t size);
/* Shrinks a large or huge block in place to size bytes (what lies past it
 * goes back to the heap): true (info->size updated), or false when size is
 * below the block's kind (a large block to a classed size, a huge one to a
 * large size): it must move. */
bool nh_heap_shrink_large(nh_block_info *info, size_t size);

/* ---- check.c: invariants (docs/architecture.md) ----------------------------------
 * Both stop the process naming what is broken. nh_span_check: caller holds
 * the span's bin lock. nh_heaps_check: takes every lock in order, node by node. */
void nh_span_check(const nh_span *span);
void nh_heaps_check(void);
#if defined(NH_DEBUG)
#define NH_DEBUG_CHECK_SPAN(s) nh_span_check(s)
#else
#define NH_DEBUG_CHECK_SPAN(s) ((void)(s))
#endif

/* ---- report.c: fatal errors ---------------------------------------------------- */
/* Prints "numaheap: <message>" to stderr without allocating, then aborts. */
_Noreturn void nh_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#pragma GCC visibility pop

#endif
