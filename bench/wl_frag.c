/*
 * bench/wl_frag.c: fragmentation, reported as resident memory against live
 * bytes.
 *
 * One iteration: fill up to `live` MiB with small blocks (16..512 B), free a
 * random three quarters of them (the survivors pin their pages), fill back up
 * to `live` MiB with medium blocks (1..8 KiB) that do not fit the small
 * holes, then free everything. An allocator that can reuse the pinned pages
 * for other sizes, or return the freed ones, keeps the resident set near the
 * live bytes; one that cannot grows by up to the freed three quarters.
 *
 * Counters (bytes, except overhead):
 *   live_peak    bytes asked for and live at the peak (end of the second fill)
 *   rss_at_peak  resident set (/proc/self/statm) at that moment, largest over
 *                iterations
 *   rss_end      resident set after everything was freed (last iteration):
 *                what the allocator keeps
 *   rss_peak     the process's high-water mark (getrusage ru_maxrss); covers
 *                everything the process ran before, so run this workload
 *                alone (compare.py does) to read it as this workload's peak
 *   rss_base     resident set before any benchmark ran (the program itself)
 *   overhead     (rss_at_peak - rss_base) / live_peak; 1.0 is no waste
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#define NHB_FRAG_MAX_BLOCKS (1u << 19)
#define NHB_FRAG_MIB (1u << 20)

/* The workload's own bookkeeping, touched at registration so it belongs to
 * rss_base. Single-threaded: owned by the one benchmark thread. */
static void *nhb_frag_ptr[NHB_FRAG_MAX_BLOCKS];
static uint32_t nhb_frag_size[NHB_FRAG_MAX_BLOCKS];
static uint64_t nhb_frag_rss_base;

struct nhb_frag_result {
  uint64_t live_peak, rss_at_peak, rss_end;
};

/* Allocates blocks of [lo, hi] bytes into free entries from *count on until
 * *live reaches target. */
static void nhb_frag_fill(uint32_t *count, uint64_t *live, uint64_t target, uint32_t lo,
                          uint32_t hi, uint64_t *rng) {
  while (*live < target && *count < NHB_FRAG_MAX_BLOCKS) {
    uint32_t size = (uint32_t)nhb_rand_range(rng, lo, hi);
    char *p = malloc(size);
    if (!p) nhb_out_of_memory("frag", size);
    nhb_touch(p, size);
    nhb_frag_ptr[*count] = p;
    nhb_frag_size[*count] = size;
    (*count)++;
    *live += size;
  }
}

/* Frees about three quarters of the blocks, compacting the survivors. */
static void nhb_frag_thin(uint32_t *count, uint64_t *live, uint64_t *rng) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < *count; i++) {
    if (nhb_rand(rng) % 4 == 0) {
      nhb_frag_ptr[kept] = nhb_frag_ptr[i];
      nhb_frag_size[kept++] = nhb_frag_size[i];
      continue;
    }
    free(nhb_frag_ptr[i]);
    *live -= nhb_frag_size[i];
  }
  *count = kept;
}

static void nhb_frag_cycle(uint64_t target, struct nhb_frag_result *r) {
  uint64_t rng = 0x853C49E6748FEA9BULL, live = 0;
  uint32_t count = 0;
  nhb_frag_fill(&count, &live, target, 16, 512, &rng);
  nhb_frag_thin(&count, &live, &rng);
  nhb_frag_fill(&count, &live, target, 1024, 8192, &rng);
  uint64_t rss = nhb_rss_now();
  if (rss > r->rss_at_peak) r->rss_at_peak = rss;
  r->live_peak = live;
  for (uint32_t i = 0; i < count; i++) free(nhb_frag_ptr[i]);
  r->rss_end = nhb_rss_now();
}

static void nhb_frag(nhb_state *st) {
  uint64_t target = (uint64_t)nhb_range(st, 0) * NHB_FRAG_MIB;
  struct nhb_frag_result r = {0, 0, 0};
  while (nhb_keep_running(st)) nhb_frag_cycle(target, &r);
  if (r.rss_at_peak == 0) {
    nhb_error(st, "cannot read /proc/self/statm");
    return;
  }
  double grown = (double)r.rss_at_peak - (double)nhb_frag_rss_base;
  nhb_counter(st, "live_peak", (double)r.live_peak, NHB_COUNTER_BYTES);
  nhb_counter(st, "rss_at_peak", (double)r.rss_at_peak, NHB_COUNTER_BYTES);
  nhb_counter(st, "rss_end", (double)r.rss_end, NHB_COUNTER_BYTES);
  nhb_counter(st, "rss_peak", (double)nhb_rss_peak(), NHB_COUNTER_BYTES);
  nhb_counter(st, "rss_base", (double)nhb_frag_rss_base, NHB_COUNTER_BYTES);
  nhb_counter(st, "overhead", r.live_peak ? grown / (double)r.live_peak : 0.0, 0);
}

void nhb_register_frag(void) {
  memset(nhb_frag_ptr, 0, sizeof nhb_frag_ptr);
  memset(nhb_frag_size, 0, sizeof nhb_frag_size);
  nhb_frag_rss_base = nhb_rss_now();
  nhb_bench *b = nhb_unit_ms(nhb_register("frag", nhb_frag));
  nhb_arg(nhb_arg(nhb_arg_name(b, "live_mib", NULL), 16), 64);
}
