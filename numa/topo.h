/*
 * numa/topo.h: what the machine's topology is, as a value.
 *
 * A topology is built once from one of three sources (the real machine, an
 * hwloc synthetic string, or an hwloc XML file) and is then
 * immutable: after nh_topo_load() returns, any thread may read it without
 * locks. It says nothing about how memory is bound: each logical node only
 * names the real OS node its memory should be bound to (bind_os_node), and
 * numa/os.h does the binding.
 *
 * Memory: every array is taken from the OS layer (nh_os_meta_alloc), never
 * from malloc, so a topology can be built while numaheap is the process's
 * malloc. hwloc itself does call malloc during discovery (and dlopen, which
 * loads it: numa/hwloc_load.h); the caller (api/init.c) serves those calls
 * from the bootstrap region.
 *
 * Discovery of the real machine (nh_topo_source.discovery): hwloc is loaded
 * only where there is something to discover, a machine with more than one
 * NUMA node; one with a single node is read from /sys directly
 * (nh_topo_load_sysfs), which gives the value hwloc would (tests/test_topo.c
 * builds both and compares them). Synthetic and XML topologies always need
 * hwloc. A real machine whose hwloc cannot be loaded is read from /sys,
 * with a warning in nh_topo.warning.
 */
#ifndef NH_NUMA_TOPO_H
#define NH_NUMA_TOPO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where a topology comes from. */
typedef enum nh_topo_kind {
  NH_TOPO_REAL = 0,      /* this machine, through hwloc or /sys (nh_topo_discovery) */
  NH_TOPO_SYNTHETIC = 1, /* hwloc synthetic string, e.g. "package:2 numa:2 core:2 pu:1" */
  NH_TOPO_XML = 2,       /* hwloc XML file */
} nh_topo_kind;

/* How the real machine is discovered ([topology] discovery). */
typedef enum nh_topo_discovery {
  NH_DISCOVERY_AUTO = 0,  /* hwloc when /sys lists more than one online node, else /sys */
  NH_DISCOVERY_HWLOC = 1, /* always hwloc (loaded with dlopen) */
  NH_DISCOVERY_SYSFS = 2, /* never hwloc: nodes, CPUs, memory, packages and
                             distances from /sys (nh_topo_load_sysfs) */
} nh_topo_discovery;

typedef struct nh_topo_source {
  nh_topo_kind kind;
  const char *spec;    /* synthetic string or XML path; NULL for NH_TOPO_REAL */
  int real_nodes;      /* real OS nodes to bind simulated nodes to (0: ask the OS) */
  const int *real_node_ids; /* their OS ids, ascending (NULL: 0..real_nodes-1) */
  nh_topo_discovery discovery; /* NH_TOPO_REAL only; synthetic and XML need hwloc */
  const char *hwloc_soname; /* NULL: NH_HWLOC_SONAME (tests name one that fails) */
} nh_topo_source;

typedef struct nh_topo_node {
  int os_index;        /* NUMA node id in the source (OS id for real machines) */
  int bind_os_node;    /* real OS node whose memory backs this node: itself
                          for a real topology, real_node_ids[i % real_nodes]
                          for a simulated one */
  int package;         /* index of the package holding this node (0-based,
                          dense); -1 if the source has no package above it */
  int ncpus;           /* CPUs (PUs) whose local node this is; 0 = CPU-less */
  uint64_t mem_bytes;  /* memory of the node (0 = memory-less) */
  int *fallback;       /* the other nodes (nnodes-1 entries) by increasing
                          distance; ties: same package first, then lower
                          logical number */
} nh_topo_node;

typedef struct nh_topo {
  nh_topo_kind kind;
  int nnodes;          /* logical nodes, >= 1; numbered by increasing os_index */
  int npackages;       /* >= 1 */
  int ncpu_slots;      /* highest possible CPU id + 1 (table size, not the
                          allowed count: cpusets may narrow what runs) */
  int ncpus;           /* CPU ids mapped to a node (PUs, with disallowed ones;
                          for a real machine also offline CPUs hwloc knows) */
  int *cpu_node;       /* [ncpu_slots]: logical node of CPU id, -1 = none */
  nh_topo_node *nodes; /* [nnodes] */
  uint32_t *dist;      /* [nnodes*nnodes] row-major, dist[i*nnodes+j]; 10 on
                          the diagonal (the kernel's convention) */
  int dist_derived;    /* 1: the source had no matrix and it was derived from
                          the hierarchy (10 local, 20 same package, 30 other) */
  nh_topo_discovery via; /* what read it: NH_DISCOVERY_HWLOC or NH_DISCOVERY_SYSFS */
  char warning[400];   /* non-empty when the topology is not what was asked
                          for (hwloc could not be loaded: read from /sys) */
} nh_topo;

/* Builds *t from src. 0 on success; -1 with a message in err (naming the
 * source and the problem) on failure, with *t left empty. */
int nh_topo_load(nh_topo *t, const nh_topo_source *src, char *err, size_t errlen);

/* Builds *t for the real machine from the kernel's files under sys_root
 * (normally /sys/devices/system): node/online, node/node<N>/{cpulist,
 * meminfo,distance}, cpu/possible, cpu/cpu<N>/topology/physical_package_id.
 * Without node/ (a kernel without NUMA), one node 0 with cpu/present's CPUs
 * and /proc/meminfo's memory. A node's package is the one all its CPUs are
 * in (-1 across packages), numbered densely by physical id; a node without
 * CPUs takes the package of the one node with CPUs nearest to it (-1 if
 * several are equally near: hwloc's rule). No hwloc, no malloc, no stdio.
 * 0, or -1 with err. */
int nh_topo_load_sysfs(nh_topo *t, const char *sys_root, char *err, size_t errlen);

/* Releases the arrays of *t (it must not be in use by a live allocator) and
 * zeroes it; a zeroed *t may be freed again. */
void nh_topo_free(nh_topo *t);

/* Fills t->dist from the kernel's distance rows under node_dir (normally
 * /sys/devices/system/node): <node_dir>/online lists the online node ids and
 * row <node_dir>/node<N>/distance has one column per online node, in that
 * order. Reads the rows of t's nodes by os_index. 0 on success; -1 if a file
 * is missing or short (t->dist is then unchanged). nh_topo_load uses it for a
 * real machine whose hwloc reports no distances; tests pass a fixture dir. */
int nh_topo_read_sys_distances(nh_topo *t, const char *node_dir);

/* Distance from node a to node b. */
static inline uint32_t nh_topo_dist(const nh_topo *t, int a, int b) {
  return t->dist[(size_t)a * (size_t)t->nnodes + (size_t)b];
}

/* Logical node of a CPU id; nodes with CPUs only. -1 for an unknown CPU. */
static inline int nh_topo_cpu_node(const nh_topo *t, int cpu) {
  return (cpu >= 0 && cpu < t->ncpu_slots) ? t->cpu_node[cpu] : -1;
}

/* 1 if nodes a and b are in the same package. */
static inline int nh_topo_same_package(const nh_topo *t, int a, int b) {
  return t->nodes[a].package >= 0 && t->nodes[a].package == t->nodes[b].package;
}

/* Writes a description (nodes, their CPUs as ranges, memory, packages, the
 * distance matrix and each node's fallback order) as text (ending with a
 * newline) or, with json != 0, as one JSON object with no newline, so that
 * callers can embed it (a real topology adds "discovery":"hwloc"|"sysfs"
 * after "source", and "warning":"..." when it has one):
 *   {"source":"synthetic","npackages":2,"ncpus":4,"ncpu_slots":4,"nodes":[
 *    {"node":0,"os_index":0,"bind_os_node":0,"package":0,"cpus":"0-1",
 *     "ncpus":2,"memory":1073741824,"fallback":[1]},...],
 *    "distances":[[10,30],[30,10]],"distances_derived":true}
 * Mallocs nothing itself (stdio may buffer). */
void nh_topo_print(const nh_topo *t, FILE *out, int json);

#endif
