/*
 * tests/nh_reliab.h: what the reliability tests (test_faults.c, test_soak.c)
 * share (restarts use nh_test.h's nh_test_start, which honours the NUMAHEAP_*
 * environment, so the Valgrind stage's NUMAHEAP_CACHE_MODE applies): a pattern written
 * into every block and checked before it is freed, process measurements, and
 * the "figures:" line docs/reliability.md is refreshed from.
 */
#ifndef NH_RELIAB_H
#define NH_RELIAB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "nh_test.h"

#define NH_FOUR_NODES "package:2 numa:2 core:1 pu:1" /* CPU k on node k; packages {0,1} {2,3} */

static inline uint64_t nh_reliab_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* The byte at offset i of a block with this seed. */
static inline uint8_t nh_reliab_byte(uint64_t seed, size_t i) {
  return (uint8_t)(seed + i * 131 + (i >> 8));
}

/* Writes the pattern into every byte of p[0..n). */
static inline void nh_reliab_fill(uint8_t *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) p[i] = nh_reliab_byte(seed, i);
}

/* 1 if every byte of p[0..n) holds the pattern. */
static inline int nh_reliab_intact(const uint8_t *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != nh_reliab_byte(seed, i)) return 0;
  return 1;
}

/* A field of /proc/self/statm in bytes (0: size, 1: resident). */
static inline uint64_t nh_reliab_statm(int field) {
  unsigned long v[2] = {0, 0};
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return 0;
  if (fscanf(f, "%lu %lu", &v[0], &v[1]) != 2) v[0] = v[1] = 0;
  fclose(f);
  return (uint64_t)v[field] * 4096u;
}

/* Every block came back: after the calling thread's cache is flushed (other
 * threads must have ended or flushed theirs), allocs == frees, nothing in use. */
static inline void nh_reliab_assert_all_returned(void) {
  nh_cache_flush_thread();
  nh_node_stats t = nh_test_node_stats(-1);
  if (t.allocs != t.frees || t.in_use != 0)
    fail_msg("blocks lost: allocs %llu frees %llu in_use %llu", (unsigned long long)t.allocs,
             (unsigned long long)t.frees, (unsigned long long)t.in_use);
}

/* Committed bytes that nh_trim keeps by design, summed over every node: the
 * empty span each bin (of each CPU shard) keeps against churn, and the header of every mapped
 * segment (segment.c charges sizeof(nh_segment) rounded to 4 KiB). What is
 * committed beyond these is memory in use or lost. Single-threaded callers. */
static inline uint64_t nh_reliab_kept_bytes(void) {
  uint64_t bytes = nh_test_node_stats(-1).segments * ((sizeof(nh_segment) + 4095) & ~(size_t)4095);
  for (int n = 0; n < nh_g.nnodes; n++)
    for (unsigned sh = 0; sh < nh_g.heap[n].shards; sh++)
      for (unsigned c = 1; c < NH_CLASS_COUNT; c++) {
        nh_bin *b = nh_heap_bin(&nh_g.heap[n], sh, c);
        nh_lock_acquire(&b->lock);
        for (const nh_span *s = b->spans; s; s = s->next)
          if (s->used == 0) bytes += (uint64_t)s->npages * NH_PAGE_SIZE;
        nh_lock_release(&b->lock);
      }
  return bytes;
}

/* Set when running under Valgrind (slow; address-space limits do not apply). */
static inline int nh_reliab_under_valgrind(void) {
  const char *p = getenv("LD_PRELOAD");
  return p != NULL && strstr(p, "vgpreload") != NULL;
}

#endif
