/*
 * bench/wl_cfrac.c: a small single-threaded program's footprint, in the
 * manner of cfrac (the continued-fraction factoring program of the
 * allocator benchmark suites): big-number arithmetic where every operation
 * mallocs its result and frees its operands, so nearly every block lives for
 * a few operations and the peak is small (issue 14).
 *
 * A pool of `pool` numbers of 1..8 32-bit limbs (each a malloc of 8..40
 * bytes). Each iteration multiplies two random numbers of the pool
 * (a new block of up to 16 limbs), adds a third (another block), frees the
 * product, folds the sum back to at most 8 limbs (a third block), frees the
 * sum, and replaces the first number with the result (freeing it). So one
 * item is three mallocs and three frees of 8..72 bytes. pool:64 is a cfrac
 * sized live set (a few KiB), pool:4096 a larger one. This is not cfrac: its
 * measure is the process's peak RSS (compare.py's per-family table) against
 * a live set that fits in a few pages, plus `rss_hold`, the resident set at
 * the end of the loop.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#define NHB_CF_MAX_LIMBS 8

typedef struct nhb_big {
  uint32_t n;
  uint32_t limb[];
} nhb_big;

static nhb_big *nhb_big_new(uint32_t n) {
  nhb_big *b = malloc(sizeof *b + n * sizeof(uint32_t));
  if (!b) nhb_out_of_memory("cfrac", sizeof *b + n * sizeof(uint32_t));
  b->n = n;
  return b;
}

static nhb_big *nhb_big_mul(const nhb_big *a, const nhb_big *b) {
  nhb_big *r = nhb_big_new(a->n + b->n);
  memset(r->limb, 0, r->n * sizeof(uint32_t));
  for (uint32_t i = 0; i < a->n; i++) {
    uint64_t carry = 0;
    for (uint32_t j = 0; j < b->n; j++) {
      uint64_t cur = (uint64_t)a->limb[i] * b->limb[j] + r->limb[i + j] + carry;
      r->limb[i + j] = (uint32_t)cur;
      carry = cur >> 32;
    }
    r->limb[i + b->n] = (uint32_t)carry;
  }
  return r;
}

static nhb_big *nhb_big_add(const nhb_big *a, const nhb_big *b) {
  if (a->n < b->n) {
    const nhb_big *t = a;
    a = b;
    b = t;
  }
  nhb_big *r = nhb_big_new(a->n + 1);
  uint64_t carry = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    carry += (uint64_t)a->limb[i] + (i < b->n ? b->limb[i] : 0);
    r->limb[i] = (uint32_t)carry;
    carry >>= 32;
  }
  r->limb[a->n] = (uint32_t)carry;
  return r;
}

/* The low limbs of a, at most NHB_CF_MAX_LIMBS and at least one nonzero-length. */
static nhb_big *nhb_big_fold(const nhb_big *a, uint32_t keep) {
  uint32_t n = keep < a->n ? keep : a->n;
  nhb_big *r = nhb_big_new(n);
  memcpy(r->limb, a->limb, n * sizeof(uint32_t));
  r->limb[0] |= 1; /* keep it odd, never zero */
  return r;
}

static nhb_big *nhb_big_random(uint64_t *rng) {
  nhb_big *b = nhb_big_new((uint32_t)nhb_rand_range(rng, 1, NHB_CF_MAX_LIMBS));
  for (uint32_t i = 0; i < b->n; i++) b->limb[i] = (uint32_t)nhb_rand(rng) | 1;
  return b;
}

static void nhb_cfrac(nhb_state *st) {
  size_t pool = (size_t)nhb_range(st, 0);
  nhb_big **num = malloc(pool * sizeof *num);
  if (!num) nhb_out_of_memory("cfrac pool", pool * sizeof *num);
  uint64_t rng = 0x1F83D9ABFB41BD6BULL;
  for (size_t i = 0; i < pool; i++) num[i] = nhb_big_random(&rng);
  while (nhb_keep_running(st)) {
    size_t i = nhb_rand(&rng) % pool, j = nhb_rand(&rng) % pool, k = nhb_rand(&rng) % pool;
    nhb_big *prod = nhb_big_mul(num[i], num[j]);
    nhb_big *sum = nhb_big_add(prod, num[k]);
    free(prod);
    nhb_big *r = nhb_big_fold(sum, (uint32_t)nhb_rand_range(&rng, 1, NHB_CF_MAX_LIMBS));
    free(sum);
    free(num[i]);
    num[i] = r;
  }
  double rss = (double)nhb_rss_now();
  for (size_t i = 0; i < pool; i++) free(num[i]);
  free(num);
  nhb_set_items(st, nhb_iterations(st));
  nhb_counter(st, "rss_hold", rss, NHB_COUNTER_BYTES);
}

void nhb_register_cfrac(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("cfrac", nhb_cfrac), "pool", NULL);
  nhb_arg(nhb_arg(b, 64), 4096);
}
