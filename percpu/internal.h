/*
 * percpu/internal.h: what the files of percpu/ share, grouped by the file
 * that defines it. The API layer uses percpu/cache.h only.
 */
#ifndef NH_PERCPU_INTERNAL_H
#define NH_PERCPU_INTERNAL_H

#include <stdint.h>

#include "percpu/cache.h"

#define NH_HIDDEN __attribute__((visibility("hidden")))

/* ---- cache.c: the entry points ------------------------------------------------ */
/* The node whose blocks a cache of cpu holds (the CPU's node, or the nearest
 * node with memory; CPUs outside the topology wrap around it). */
int nh_cpu_home(int cpu) NH_HIDDEN;

/* ---- tcache.c: per-thread caches ---------------------------------------------- */
int nh_tc_init(const nh_cache_params *p, int enabled) NH_HIDDEN;
void *nh_tc_alloc(unsigned cls, int level) NH_HIDDEN;
void nh_tc_free(void *p, unsigned cls, int node) NH_HIDDEN;
int nh_tc_cpu(void) NH_HIDDEN; /* the override, or the real CPU */
void nh_tc_set_cpu_override(int cpu) NH_HIDDEN;
void nh_tc_flush_thread(void) NH_HIDDEN;
void nh_tc_reset(void) NH_HIDDEN;
void nh_tc_stats_get(nh_cache_stats *out) NH_HIDDEN;
void nh_tc_postfork_child(void) NH_HIDDEN;

/* ---- pcpu.c: per-CPU caches on rseq ------------------------------------------- */
/* 1 while the percpu mode is on. Written only by init and reset. */
extern int nh_pc_on NH_HIDDEN;

/* 0, or -1 when rseq or the membarrier fence is not available (the caller
 * falls back to per-thread caches). */
int nh_pc_init(const nh_cache_params *p) NH_HIDDEN;
/* The slow paths: the current CPU's slab was empty / full / not of node. */
void *nh_pc_alloc_slow(unsigned cls, int level) NH_HIDDEN;
void nh_pc_free_slow(void *p, unsigned cls, int node) NH_HIDDEN;
/* Drains every CPU's cache to the heaps (any thread, any time). */
void nh_pc_drain_all(void) NH_HIDDEN;
void nh_pc_reset(void) NH_HIDDEN;
void nh_pc_stats_add(nh_cache_stats *out) NH_HIDDEN;
int nh_pc_cpu_stats(int cpu, nh_cache_cpu_stats *out) NH_HIDDEN;
void nh_pc_set_idle_ms(uint64_t ms) NH_HIDDEN;
void nh_pc_idle_scan(void) NH_HIDDEN;

#endif
