/*
 * numa/topo_sys.c: an nh_topo (numa/topo.h) of the real machine from the
 * kernel's files, without hwloc: what a machine with one NUMA node is read
 * from (there is nothing for hwloc to discover there), and any real machine
 * with [topology] discovery = sysfs or when hwloc cannot be loaded.
 *
 * Under sys_root (normally /sys/devices/system):
 *   node/online                       the nodes (absent: one node 0)
 *   node/node<N>/cpulist              its CPUs (no node/: cpu/present)
 *   node/node<N>/meminfo              its MemTotal (no node/: /proc/meminfo)
 *   cpu/possible                      the CPU table's size
 *   cpu/cpu<C>/topology/physical_package_id   the packages
 *   node/node<N>/distance             the distances (numa/topo.c)
 * Files are read with open/read into stack buffers; paths are put together
 * by hand: no stdio and no malloc, since this runs inside the first malloc.
 */
#include <string.h>

#include "numa/os.h"
#include "numa/topo_build.h"

/* Stack buffers: small, since this runs at the bottom of the first malloc's
 * stack (a small program's stack high-water mark is part of its RSS). */
#define PATH_CAP 512
#define LIST_CAP 4096

/* buf (PATH_CAP bytes) = a + b + (n >= 0 ? decimal n : "") + c. */
static const char *path4(char *buf, const char *a, const char *b, long n, const char *c) {
  nh_os_path(buf, PATH_CAP, a, b, n, c);
  return buf;
}

/* The n-th number (0-based) of a kernel list; -1 past its end. */
static long list_nth(const char *s, int n) {
  for (long a; (a = nh_topo_parse_num(&s)) >= 0;) {
    long b = a;
    if (*s == '-') {
      s++;
      b = nh_topo_parse_num(&s);
    }
    if (b >= a && n <= b - a) return a + n;
    if (b >= a) n -= (int)(b - a + 1);
  }
  return -1;
}

/* The kB number after key (e.g. "MemTotal:") in a meminfo file, in bytes;
 * 0 if absent. buf: LIST_CAP bytes of scratch. */
static uint64_t meminfo_bytes(const char *path, const char *key, char *buf) {
  if (nh_topo_read_file(path, buf, LIST_CAP) <= 0) return 0;
  const char *at = strstr(buf, key);
  if (at == NULL) return 0;
  at += strlen(key);
  long kb = nh_topo_parse_num(&at);
  return kb > 0 ? (uint64_t)kb << 10 : 0;
}

/* The source's layout: its node list, and whether it has node/ at all; and
 * a scratch buffer for the texts read. In pages from the OS layer, unmapped
 * after loading: on the starting thread's stack these 8 KiB would stay
 * resident for the life of the process (docs/benchmarks.md, footprint). */
typedef struct sys_src {
  const char *root;
  char nodes[LIST_CAP];
  char buf[LIST_CAP];
  int numa; /* 0: no node/ (one node 0, its CPUs from cpu/present) */
} sys_src;

/* Node os's CPU list into buf; 0, or -1 if unreadable. */
static int node_cpus(const sys_src *s, long os, char *buf) {
  char path[PATH_CAP];
  if (s->numa) path4(path, s->root, "/node/node", os, "/cpulist");
  else path4(path, s->root, "/cpu/present", -1, "");
  return nh_topo_read_file(path, buf, LIST_CAP) < 0 ? -1 : 0;
}

static uint64_t node_memory(sys_src *s, long os) {
  char path[PATH_CAP];
  if (!s->numa) return meminfo_bytes("/proc/meminfo", "MemTotal:", s->buf);
  return meminfo_bytes(path4(path, s->root, "/node/node", os, "/meminfo"), "MemTotal:", s->buf);
}

/* CPU table size: the kernel's possible CPUs, or more if a node lists more. */
static int cpu_slots(sys_src *s, int n) {
  char path[PATH_CAP];
  int slots = nh_topo_possible_cpus(path4(path, s->root, "/cpu", -1, ""));
  for (int i = 0; i < n; i++) {
    int node_slots = node_cpus(s, list_nth(s->nodes, i), s->buf) == 0 ? nh_topo_list_slots(s->buf) : 0;
    if (node_slots > slots) slots = node_slots;
  }
  return slots > 0 ? slots : 1;
}

static void fill_node(nh_topo *t, sys_src *s, int i) {
  char *buf = s->buf; /* node_memory is done with it */
  long os = list_nth(s->nodes, i);
  t->nodes[i].os_index = (int)os;
  t->nodes[i].bind_os_node = (int)os;
  t->nodes[i].package = -1;
  t->nodes[i].mem_bytes = node_memory(s, os);
  if (node_cpus(s, os, buf) != 0) return;
  for (long c, k = 0; (c = list_nth(buf, (int)k)) >= 0; k++) nh_topo_map_cpu(t, (int)c, i);
}

/* ---- packages ---------------------------------------------------------------- */

/* Physical package id of CPU c; -1 if unknown. */
static long cpu_package(const sys_src *s, int c) {
  char path[PATH_CAP], buf[64];
  path4(path, s->root, "/cpu/cpu", c, "/topology/physical_package_id");
  if (nh_topo_read_file(path, buf, sizeof buf) <= 0) return -1;
  const char *p = buf;
  return nh_topo_parse_num(&p);
}

/* The package all of node i's CPUs are in; -1 if none or several. */
static long node_package(const nh_topo *t, const sys_src *s, int i) {
  long pkg = -1;
  for (int c = 0; c < t->ncpu_slots; c++) {
    if (t->cpu_node[c] != i) continue;
    long p = cpu_package(s, c);
    if (p < 0 || (pkg >= 0 && p != pkg)) return -1;
    pkg = p;
  }
  return pkg;
}

/* Physical ids -> dense numbers, in increasing physical id (ids[] holds
 * each node's physical id, or -1). */
static void fill_packages(nh_topo *t, const long *ids) {
  int dense = 0;
  for (long last = -1;;) {
    long next = -1;
    for (int i = 0; i < t->nnodes; i++)
      if (ids[i] > last && (next < 0 || ids[i] < next)) next = ids[i];
    if (next < 0) break;
    for (int i = 0; i < t->nnodes; i++)
      if (ids[i] == next) t->nodes[i].package = dense;
    dense++;
    last = next;
  }
  t->npackages = dense > 0 ? dense : 1;
}

/* A node without CPUs: the node with CPUs nearest to it, when exactly one
 * is nearest (hwloc's rule: it gives the CPU-less node that node's CPUs as
 * its locality, so it sits in the same package); -1 otherwise, or without
 * distances. */
static int nearest_with_cpus(const nh_topo *t, int i, int have_dist) {
  int best = -1;
  uint32_t best_d = UINT32_MAX;
  for (int j = 0; have_dist && j < t->nnodes; j++) {
    uint32_t d = nh_topo_dist(t, i, j);
    if (j == i || t->nodes[j].ncpus == 0 || d > best_d) continue;
    best = d < best_d ? j : -1;
    best_d = d;
  }
  return best;
}

static int packages(nh_topo *t, const sys_src *s, int have_dist) {
  size_t size = sizeof(long) * (size_t)t->nnodes;
  long *ids = nh_os_meta_alloc(size);
  if (ids == NULL) return -1;
  for (int i = 0; i < t->nnodes; i++) ids[i] = node_package(t, s, i);
  for (int i = 0; i < t->nnodes; i++) {
    int near = t->nodes[i].ncpus == 0 ? nearest_with_cpus(t, i, have_dist) : -1;
    if (near >= 0) ids[i] = ids[near];
  }
  fill_packages(t, ids);
  nh_os_meta_free(ids, size);
  return 0;
}

/* ---- load ------------------------------------------------------------------------ */

static const nh_topo_source real = {.kind = NH_TOPO_REAL};

/* nh_topo_load_sysfs with its source s (root set, the rest zero). */
static int load_with(nh_topo *t, sys_src *s, char *err, size_t errlen) {
  char path[PATH_CAP];
  s->numa = 1;
  if (nh_topo_read_file(path4(path, s->root, "/node/online", -1, ""), s->nodes,
                        sizeof s->nodes) < 0) {
    memcpy(s->nodes, "0", 2);
    s->numa = 0;
  }
  int n = nh_topo_list_count(s->nodes);
  if (n <= 0 || n > NH_TOPO_MAX_NODES)
    return nh_topo_fail(&real, err, errlen, "%s lists no node the kernel can have", path);
  if (nh_topo_alloc_tables(t, n, cpu_slots(s, n)) != 0)
    return nh_topo_fail(&real, err, errlen, "out of memory for the topology tables");
  t->kind = NH_TOPO_REAL;
  t->via = NH_DISCOVERY_SYSFS;
  for (int i = 0; i < n; i++) fill_node(t, s, i);
  int have_dist = nh_topo_read_sys_distances(t, path4(path, s->root, "/node", -1, "")) == 0;
  if (packages(t, s, have_dist) != 0) {
    nh_topo_free(t);
    return nh_topo_fail(&real, err, errlen, "out of memory for the package table");
  }
  nh_topo_finish(t, have_dist, path);
  return 0;
}

int nh_topo_load_sysfs(nh_topo *t, const char *sys_root, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  sys_src *s = nh_os_meta_alloc(sizeof *s);
  if (s == NULL) return nh_topo_fail(&real, err, errlen, "out of memory to read %s", sys_root);
  s->root = sys_root;
  int rc = load_with(t, s, err, errlen);
  nh_os_meta_free(s, sizeof *s);
  return rc;
}
