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
#define NH_CLASS_SLOTS_MAX 97 /* = NH_CLASS_COUNT (numa/heap.h), checked in pcpu.c */
#define NH_RSEQ_TOP_OFF 64    /* word[class], 8 bytes each */
#define NH_RSEQ_BND_OFF 840   /* = TOP_OFF + 8 * NH_CLASS_SLOTS_MAX: bounds[class] */
/* Regions are 1 << NH_RSEQ_STRIDE_SHIFT bytes apart: 512 KiB, the most a
 * region can need (its slot indices are 16-bit: 65536 slots of 8 bytes), so
 * the sequences shift by a constant. Only the pages a CPU uses are touched. */
#define NH_RSEQ_STRIDE_SHIFT 19

/* Where the per-CPU regions are; written by pcpu.c while no thread can be in
 * a sequence (init, reset), constant otherwise. */
typedef struct nh_rseq_layout {
  char *base;       /* region of CPU c at base + (c << NH_RSEQ_STRIDE_SHIFT) */
  uint64_t nslots;  /* CPUs with a region */
  int64_t rseq_off; /* glibc's __rseq_offset */
} nh_rseq_layout;

extern nh_rseq_layout nh_rseq_g __attribute__((visibility("hidden")));

#if defined(__x86_64__)
#define NH_RSEQ_ARCH 1
#include "percpu/rseq_x86_64.h"
#else
#define NH_RSEQ_ARCH 0
static inline void *nh_rseq_pop(uint64_t cls) {
  (void)cls;
  return NULL;
}
static inline int nh_rseq_push(void *p, uint64_t cls, int32_t node) {
  (void)p, (void)cls, (void)node;
  return 0;
}
static inline size_t nh_rseq_push_batch(void *const *src, uint64_t n, uint64_t cls, int32_t node) {
  (void)src, (void)n, (void)cls, (void)node;
  return 0;
}
static inline size_t nh_rseq_pop_batch(void **out, uint64_t n, uint64_t cls, int32_t *node) {
  (void)out, (void)n, (void)cls;
  *node = -1;
  return 0;
}
#endif

#endif
