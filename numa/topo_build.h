/*
 * numa/topo_build.h: what the topology sources (numa/topo_hwloc.c,
 * numa/topo_sys.c) share with numa/topo.c, which owns the tables and the
 * steps common to every source. Internal to numa/topo*.c.
 */
#ifndef NH_NUMA_TOPO_BUILD_H
#define NH_NUMA_TOPO_BUILD_H

#include <stddef.h>

#include "numa/hwloc_load.h"
#include "numa/topo.h"

#define NH_TOPO_MAX_NODES 1024 /* the kernel's MAX_NUMNODES limit */

/* Writes "<source>: <message>" to err, e.g.
 * `synthetic topology "foo:2": hwloc could not parse it`; returns -1. */
__attribute__((format(printf, 4, 5))) int nh_topo_fail(const nh_topo_source *src, char *err,
                                                       size_t errlen, const char *fmt, ...);

/* Allocates every array for nnodes nodes and slots CPU ids (cpu_node all -1);
 * on failure frees what was taken and returns -1. */
int nh_topo_alloc_tables(nh_topo *t, int nnodes, int slots);

/* Maps CPU id cpu to logical node node (first mapping wins; out of range or
 * node < 0: ignored), counting it in t->ncpus and the node's ncpus. */
void nh_topo_map_cpu(nh_topo *t, int cpu, int node);

/* Kernel lists ("0-3,8,10-11"): one unsigned decimal at *s (skipping
 * blanks and commas), -1 if none; the highest number + 1 (0 if none). A
 * reader of /sys files: a small file into buf, NUL-terminated, its length or
 * -1. */
int nh_topo_read_file(const char *path, char *buf, size_t cap);
long nh_topo_parse_num(const char **s);
int nh_topo_list_slots(const char *s);
/* How many numbers a kernel list holds ("0-3,8": 5); -1 if malformed. */
int nh_topo_list_count(const char *s);

/* The real machine's possible CPU ids + 1, from <cpu_dir>/possible; 0 if
 * unknown. */
int nh_topo_possible_cpus(const char *cpu_dir);

/* After a source filled nodes and CPUs (and maybe t->dist, have_dist = 1):
 * distances for a real machine from <node_dir> (the kernel's rows), else
 * derived from the hierarchy; then every node's fallback order. */
void nh_topo_finish(nh_topo *t, int have_dist, const char *node_dir);

/* The sources. Both leave *t empty on failure, with err. */
int nh_topo_load_hwloc(nh_topo *t, const nh_topo_source *src, const nh_hwloc_api *hw, char *err,
                       size_t errlen);

#endif
