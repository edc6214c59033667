/*
 * numa/os_meta.c: metadata memory, the allocator's own tables (numa/os.h).
 * Never from malloc: these tables are what malloc runs on.
 *
 * Two kinds of request:
 *   - above META_SMALL_MAX bytes: a mapping of its own (nh_os_meta_map), given
 *     back whole by the free;
 *   - up to META_SMALL_MAX bytes (the topology's and the heaps' tables, the
 *     node limits, the per-CPU ready flags, a thread's cache in perthread
 *     mode...): a block of a power-of-two class, 16 B to 2 KiB, carved from
 *     shared pages. A process's start-up tables then share one page instead
 *     of taking a page each (docs/architecture.md, "Start-up").
 *
 * A freed small block goes on its class's free list and is zeroed when it is
 * handed out again; the shared pages are never unmapped (what they hold is
 * bounded by the tables: a few KiB). A block is aligned to its class's size,
 * so a table that wants 64-byte alignment (64 bytes or more) has it.
 *
 * Synchronization: meta_lock guards the free lists and the carving page. It
 * is a leaf (nothing is taken under it; mmap is the only call made while it
 * is held), taken and released across fork by nh_os_meta_prefork /
 * nh_os_meta_postfork: perthread mode allocates threads' caches here while
 * other threads run.
 */
#include <stdint.h>
#include <string.h>

#include "numa/lock.h"
#include "numa/os.h"

#define META_MIN_SHIFT 4 /* 16 B */
#define META_CLASSES 8   /* 16 B .. 2 KiB */
#define META_SMALL_MAX ((size_t)1 << (META_MIN_SHIFT + META_CLASSES - 1))
#define META_PAGE ((size_t)4096) /* the carving unit: small blocks are at most half of it */

typedef struct meta_free { struct meta_free *next; } meta_free;

static nh_lock meta_lock;
static meta_free *meta_lists[META_CLASSES]; /* Guarded by meta_lock */
static char *carve_pos, *carve_end;         /* Guarded by meta_lock: the page being carved */

static size_t class_bytes(unsigned cls) { return (size_t)1 << (META_MIN_SHIFT + cls); }

/* The smallest class that holds size bytes (0 for a size of 0). */
static unsigned meta_class(size_t size) {
  unsigned cls = 0;
  while (class_bytes(cls) < size) cls++;
  return cls;
}

/* A fresh block of class cls from the carving page (a new page when the
 * rest of this one is too small: the rest is left unused). Caller holds
 * meta_lock. */
static void *carve(unsigned cls) {
  size_t bytes = class_bytes(cls);
  uintptr_t at = ((uintptr_t)carve_pos + bytes - 1) & ~(uintptr_t)(bytes - 1);
  if (carve_pos == NULL || at + bytes > (uintptr_t)carve_end) {
    char *page = nh_os_meta_map(META_PAGE);
    if (page == NULL) return NULL;
    carve_pos = page, carve_end = page + META_PAGE;
    at = (uintptr_t)page;
  }
  carve_pos = (char *)(at + bytes);
  return (void *)at;
}

void *nh_os_meta_alloc(size_t size) {
  if (size > META_SMALL_MAX) return nh_os_meta_map(size);
  unsigned cls = meta_class(size);
  nh_lock_acquire(&meta_lock);
  meta_free *b = meta_lists[cls];
  if (b) meta_lists[cls] = b->next;
  void *p = b ? (void *)b : carve(cls);
  nh_lock_release(&meta_lock);
  if (b) memset(b, 0, class_bytes(cls)); /* carved blocks are still zero */
  return p;
}

void nh_os_meta_free(void *p, size_t size) {
  if (p == NULL) return;
  if (size > META_SMALL_MAX) {
    nh_os_meta_unmap(p, size);
    return;
  }
  unsigned cls = meta_class(size);
  meta_free *b = p;
  nh_lock_acquire(&meta_lock);
  b->next = meta_lists[cls];
  meta_lists[cls] = b;
  nh_lock_release(&meta_lock);
}

void nh_os_meta_prefork(void) { nh_lock_acquire(&meta_lock); }

void nh_os_meta_postfork(int child) {
  if (child)
    nh_lock_reset(&meta_lock);
  else
    nh_lock_release(&meta_lock);
}
