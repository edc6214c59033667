/*
 * percpu/rseq.h: what the restartable sequences share across architectures
 * (the region header layout they address, where the regions are), and the
 * choice of the architecture's sequences: percpu/rseq_x86_64.h on x86-64.
 * Elsewhere NH_RSEQ_ARCH is 0, nh_pc_init refuses the percpu mode (the
 * per-thread caches serve), and the sequences below, never reached, fail.
 */
#ifndef NH_PERCPU_RSEQ_H
#define NH_PERCPU_RSEQ_H

#include <stddef.h>
#include <stdint.h>

#define NH_RSEQ_SIG 0x53053053u
#define NH_RSEQ_NODE_OFF 0
#define NH_RSEQ_HITS_OFF 8
#define NH_RSEQ_HDR_OFF 64

/* Where the per-CPU regions are; written by pcpu.c while no thread can be in
 * a sequence (init, reset), constant otherwise. */
typedef struct nh_rseq_layout {
  char *base;       /* region of CPU c at base + (c << shift) */
  uint64_t shift;
  uint64_t nslots;  /* CPUs with a region */
  int64_t rseq_off; /* glibc's __rseq_offset */
} nh_rseq_layout;

extern nh_rseq_layout nh_rseq_g __attribute__((visibility("hidden")));

#if defined(__x86_64__)
#define NH_RSEQ_ARCH 1
#include "percpu/rseq_x86_64.h"
#else
#define NH_RSEQ_ARCH 0
static inline void *nh_rseq_pop(uint64_t cls, uint64_t soff) {
  (void)cls, (void)soff;
  return NULL;
}
static inline int nh_rseq_push(void *p, uint64_t cls, uint64_t soff, int32_t node) {
  (void)p, (void)cls, (void)soff, (void)node;
  return 0;
}
static inline size_t nh_rseq_push_batch(void *const *src, uint64_t n, uint64_t cls, uint64_t soff,
                                        int32_t node) {
  (void)src, (void)n, (void)cls, (void)soff, (void)node;
  return 0;
}
static inline size_t nh_rseq_pop_batch(void **out, uint64_t n, uint64_t cls, uint64_t soff,
                                       int32_t *node) {
  (void)out, (void)n, (void)cls, (void)soff;
  *node = -1;
  return 0;
}
#endif

#endif
