/*
 * api/host_debug.c: the table of DebugAlloc sites. One entry per distinct
 * file:line (the file name copied, the runtime may unload the string), with
 * the blocks and bytes still live. Kept in memory from nh_os_meta_alloc
 * (never malloc: DebugAlloc may be the process's malloc) and guarded by one
 * lock; DebugAlloc is a diagnostic path, a lock per call is fine.
 *
 * Site 0 is "(site table full)": it collects the sites that came after the
 * table filled up, so the totals stay right.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/host_internal.h"
#include "api/internal.h"
#include "numa/lock.h"
#include "numa/os.h"

#define SITE_MAX 4096          /* sites, site 0 included */
#define SITE_SLOTS 8192        /* hash slots (power of two, > SITE_MAX) */
#define SITE_FILE_LEN 120

typedef struct host_site {
  char file[SITE_FILE_LEN];
  int line;
  int64_t blocks, bytes; /* live */
  uint64_t allocs;       /* ever */
} host_site;

typedef struct site_table {
  int count;                  /* sites in use, site 0 included */
  uint16_t slot[SITE_SLOTS];  /* site index + 1, 0 = empty */
  host_site site[SITE_MAX];
} site_table;

static nh_lock site_lock;
static site_table *sites; /* Guarded by site_lock (allocated once, never freed) */

static uint32_t site_hash(const char *file, int line) {
  uint32_t h = 2166136261u ^ (uint32_t)line;
  for (const unsigned char *s = (const unsigned char *)file; *s; s++) h = (h ^ *s) * 16777619u;
  return h;
}

static bool site_is(const host_site *s, const char *file, int line) {
  return s->line == line && strncmp(s->file, file, SITE_FILE_LEN - 1) == 0;
}

/* Caller holds site_lock. */
static site_table *table_get(void) {
  if (sites == NULL && (sites = nh_os_meta_alloc(sizeof *sites)) != NULL) {
    snprintf(sites->site[0].file, SITE_FILE_LEN, "(site table full)");
    sites->count = 1;
  }
  return sites;
}

/* The slot of file:line, or of the empty slot where it would go. Caller holds site_lock. */
static uint16_t *slot_find(site_table *t, const char *file, int line) {
  for (uint32_t i = site_hash(file, line);; i++) {
    uint16_t *slot = &t->slot[i & (SITE_SLOTS - 1)];
    if (*slot == 0 || site_is(&t->site[*slot - 1], file, line)) return slot;
  }
}

int nh_host_site_get(const char *file, int line) {
  int idx = -1;
  nh_lock_acquire(&site_lock);
  site_table *t = table_get();
  if (t) {
    uint16_t *slot = slot_find(t, file, line);
    if (*slot == 0 && t->count < SITE_MAX) {
      host_site *s = &t->site[t->count];
      snprintf(s->file, SITE_FILE_LEN, "%s", file);
      s->line = line;
      *slot = (uint16_t)(++t->count);
    }
    idx = *slot ? *slot - 1 : 0;
  }
  nh_lock_release(&site_lock);
  return idx;
}

void nh_host_site_add(int site, int64_t blocks, int64_t bytes) {
  if (site < 0) return;
  nh_lock_acquire(&site_lock);
  if (sites && site < sites->count) {
    host_site *s = &sites->site[site];
    s->blocks += blocks;
    s->bytes += bytes;
    if (blocks > 0) s->allocs += (uint64_t)blocks;
  }
  nh_lock_release(&site_lock);
}

bool nh_host_site_live(const char *file, int line, uint64_t *blocks, uint64_t *bytes) {
  bool found = false;
  nh_lock_acquire(&site_lock);
  if (sites) {
    uint16_t *slot = slot_find(sites, file, line);
    if (*slot) {
      *blocks = (uint64_t)sites->site[*slot - 1].blocks;
      *bytes = (uint64_t)sites->site[*slot - 1].bytes;
      found = true;
    }
  }
  nh_lock_release(&site_lock);
  return found;
}

/* Prints the sites with live blocks, one line each. */
void nh_host_sites_print(FILE *out) {
  nh_lock_acquire(&site_lock);
  int live = 0;
  for (int i = 0; sites && i < sites->count; i++) {
    const host_site *s = &sites->site[i];
    if (s->blocks == 0) continue;
    if (live++ == 0) fprintf(out, "host DebugAlloc live blocks by site:\n");
    fprintf(out, "  %s:%d blocks %" PRId64 " bytes %" PRId64 " (allocs %" PRIu64 ")\n", s->file,
            s->line, s->blocks, s->bytes, s->allocs);
  }
  nh_lock_release(&site_lock);
}
