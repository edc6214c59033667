/*
 * numa/topo.c: builds an nh_topo (numa/topo.h) from hwloc: the real machine,
 * a synthetic string or an XML file.
 *
 * Steps of nh_topo_load, one function each:
 *   open_source      hwloc init, flags, source, load (hwloc mallocs here)
 *   alloc_tables     every array of the result, from nh_os_meta_alloc
 *   fill_nodes       logical nodes by increasing os_index; memory; package
 *   fill_cpus        CPU id -> logical node (the nearest NUMA node above)
 *   fill_distances   hwloc's latency matrix, else (real machine) the
 *                    kernel's /sys node distances, else derived 10/20/30
 *   fill_fallbacks   per node: the others by distance, same package, number
 *   fill_binding     simulated node i -> real_node_ids[i % real_nodes]
 * The hwloc topology is destroyed before nh_topo_load returns; the result
 * refers to nothing of hwloc's.
 *
 * Reading /sys: the real machine's possible CPUs and, when hwloc reports no
 * distances, the kernel's distance rows. Both use open/read into stack
 * buffers (no stdio, no malloc).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hwloc.h>

#include "numa/os.h"
#include "numa/topo.h"

#define DIST_LOCAL 10
#define DIST_PACKAGE 20
#define DIST_REMOTE 30
#define MAX_MATRICES 8
#define MAX_NODES 1024 /* the kernel's MAX_NUMNODES limit */

/* ---- errors ------------------------------------------------------------------ */

static const char *kind_name(nh_topo_kind k) {
  switch (k) {
  case NH_TOPO_REAL: return "real";
  case NH_TOPO_SYNTHETIC: return "synthetic";
  case NH_TOPO_XML: return "xml";
  }
  return "unknown";
}

/* Writes "<source>: <message>" to err, e.g.
 * `synthetic topology "foo:2": hwloc could not parse it`. */
__attribute__((format(printf, 4, 5))) static int fail(const nh_topo_source *src, char *err,
                                                      size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return -1;
  int n;
  if (src->kind == NH_TOPO_REAL) n = snprintf(err, errlen, "real topology: ");
  else if (src->kind == NH_TOPO_SYNTHETIC)
    n = snprintf(err, errlen, "synthetic topology \"%s\": ", src->spec ? src->spec : "");
  else n = snprintf(err, errlen, "XML topology \"%s\": ", src->spec ? src->spec : "");
  if (n < 0 || (size_t)n >= errlen) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- /sys readers (open/read, no stdio, no malloc) --------------------------- */

/* Reads a small file into buf, NUL-terminated. Length, or -1. */
static int read_file(const char *path, char *buf, size_t cap) {
  int err;
  return (int)nh_os_read_file(path, buf, cap, &err);
}

/* Parses one unsigned decimal at *s (skipping blanks); -1 if none. */
static long parse_num(const char **s) {
  const char *p = *s;
  while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n') p++;
  if (*p < '0' || *p > '9') return -1;
  long v = 0;
  while (*p >= '0' && *p <= '9' && v < (1L << 40)) v = v * 10 + (*p++ - '0');
  *s = p;
  return v;
}

/* Highest number in a kernel list ("0-3,8,10-11") + 1; 0 if none. */
static int list_slots(const char *s) {
  int max = 0;
  for (long v; (v = parse_num(&s)) >= 0;) {
    if (*s == '-') s++;
    if (v + 1 > max && v < (1L << 30)) max = (int)v + 1;
  }
  return max;
}

/* Rank of id in a kernel list (its position among the listed numbers); -1
 * if absent. */
static int list_rank(const char *s, int id) {
  int rank = 0;
  for (long a; (a = parse_num(&s)) >= 0;) {
    long b = a;
    if (*s == '-') {
      s++;
      if ((b = parse_num(&s)) < a || b >= (1L << 30)) return -1;
    }
    if (id >= a && id <= b) return rank + (int)(id - a);
    rank += (int)(b - a + 1);
  }
  return -1;
}

/* The real machine's possible CPU ids + 1, from /sys; 0 if unknown. */
static int sys_possible_cpus(void) {
  char buf[4096];
  if (read_file("/sys/devices/system/cpu/possible", buf, sizeof buf) <= 0) return 0;
  return list_slots(buf);
}

/* Reads node i's kernel distance row into row[0..t->nnodes), one column per
 * node of t, found by its os_index's rank in the online list. */
static int read_sys_row(const nh_topo *t, const char *node_dir, const char *online, int i,
                        uint32_t *row) {
  char path[4096], buf[8192];
  long want[MAX_NODES];
  int nwant = 0;
  snprintf(path, sizeof path, "%s/node%d/distance", node_dir, t->nodes[i].os_index);
  if (read_file(path, buf, sizeof buf) <= 0) return -1;
  const char *s = buf;
  for (long v; nwant < MAX_NODES && (v = parse_num(&s)) >= 0;) want[nwant++] = v;
  for (int j = 0; j < t->nnodes; j++) {
    int col = list_rank(online, t->nodes[j].os_index);
    if (col < 0 || col >= nwant || want[col] <= 0 || want[col] > (long)UINT32_MAX) return -1;
    row[j] = (uint32_t)want[col];
  }
  return 0;
}

int nh_topo_read_sys_distances(nh_topo *t, const char *node_dir) {
  char path[4096], online[4096];
  size_t size = sizeof(uint32_t) * (size_t)t->nnodes * (size_t)t->nnodes;
  snprintf(path, sizeof path, "%s/online", node_dir);
  if (read_file(path, online, sizeof online) <= 0) return -1;
  uint32_t *m = nh_os_meta_alloc(size);
  if (!m) return -1;
  int rc = 0;
  for (int i = 0; i < t->nnodes && rc == 0; i++)
    rc = read_sys_row(t, node_dir, online, i, m + (size_t)i * (size_t)t->nnodes);
  if (rc == 0) memcpy(t->dist, m, size);
  nh_os_meta_free(m, size);
  return rc;
}

/* ---- hwloc: open the source ------------------------------------------------- */

/* An XML file hwloc cannot open leaves errno saying why; a malformed one
 * leaves EINVAL (or nothing). */
static int xml_failed(const nh_topo_source *src, int e, char *err, size_t errlen) {
  if (e != 0 && e != EINVAL)
    return fail(src, err, errlen, "hwloc could not read it (%s)", strerror(e));
  return fail(src, err, errlen,
              "hwloc could not parse it (without its libxml2 plugin, Debian's libhwloc-plugins, "
              "hwloc reads only XML that hwloc itself wrote)");
}

static int set_source(hwloc_topology_t topo, const nh_topo_source *src, char *err,
                      size_t errlen) {
  errno = 0;
  if (src->kind == NH_TOPO_SYNTHETIC && hwloc_topology_set_synthetic(topo, src->spec) != 0)
    return fail(src, err, errlen, "hwloc could not parse it");
  if (src->kind == NH_TOPO_XML && hwloc_topology_set_xml(topo, src->spec) != 0)
    return xml_failed(src, errno, err, errlen);
  return 0;
}

static int load_failed(const nh_topo_source *src, int e, char *err, size_t errlen) {
  if (src->kind == NH_TOPO_XML) return xml_failed(src, e, err, errlen);
  if (src->kind == NH_TOPO_SYNTHETIC)
    return fail(src, err, errlen, "hwloc could not build it (%s)", strerror(e ? e : EINVAL));
  return fail(src, err, errlen, "hwloc could not discover it (%s)", strerror(e ? e : EINVAL));
}

/* hwloc_topology_init loads every hwloc plugin installed (dlopen): I/O,
 * OpenCL, OpenGL and libxml2 readers, the last pulling in ICU and libstdc++,
 * about 1.1 MB of a small program's RSS. numaheap needs none of them except
 * the libxml2 reader for an XML topology, so for the others hwloc is pointed
 * at no plugin directory while it initialises (unless the user chose one). */
static int init_without_plugins(hwloc_topology_t *topo, const nh_topo_source *src) {
  bool hide = src->kind != NH_TOPO_XML && getenv("HWLOC_PLUGINS_PATH") == NULL &&
              setenv("HWLOC_PLUGINS_PATH", "/nonexistent/numaheap-needs-no-hwloc-plugins", 0) == 0;
  int rc = hwloc_topology_init(topo);
  if (hide) unsetenv("HWLOC_PLUGINS_PATH");
  return rc;
}

static int open_source(hwloc_topology_t *out, const nh_topo_source *src, char *err,
                       size_t errlen) {
  hwloc_topology_t topo;
  if (init_without_plugins(&topo, src) != 0)
    return fail(src, err, errlen, "hwloc_topology_init failed");
  hwloc_topology_set_flags(topo, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  hwloc_topology_set_cache_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_NONE);
  hwloc_topology_set_icache_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_NONE);
  if (set_source(topo, src, err, errlen) != 0) {
    hwloc_topology_destroy(topo);
    return -1;
  }
  errno = 0;
  if (hwloc_topology_load(topo) != 0) {
    int e = errno;
    hwloc_topology_destroy(topo);
    return load_failed(src, e, err, errlen);
  }
  *out = topo;
  return 0;
}

/* ---- the tables ---------------------------------------------------------------- */

static size_t nodes_size(int n) { return sizeof(nh_topo_node) * (size_t)n; }
static size_t dist_size(int n) { return sizeof(uint32_t) * (size_t)n * (size_t)n; }
static size_t fallback_size(int n) { return sizeof(int) * (size_t)n * (size_t)(n - 1); }
static size_t cpu_size(int slots) { return sizeof(int) * (size_t)slots; }

void nh_topo_free(nh_topo *t) {
  if (!t) return;
  if (t->nodes) {
    nh_os_meta_free(t->nodes[0].fallback, fallback_size(t->nnodes));
    nh_os_meta_free(t->nodes, nodes_size(t->nnodes));
  }
  nh_os_meta_free(t->dist, dist_size(t->nnodes));
  nh_os_meta_free(t->cpu_node, cpu_size(t->ncpu_slots));
  memset(t, 0, sizeof *t);
}

/* Allocates every array for nnodes nodes and slots CPU ids; on failure frees
 * what was taken and returns -1. The fallback rows share one block, whose
 * start is nodes[0].fallback (what nh_topo_free releases). */
static int alloc_tables(nh_topo *t, int nnodes, int slots) {
  t->nnodes = nnodes;
  t->ncpu_slots = slots;
  t->nodes = nh_os_meta_alloc(nodes_size(nnodes));
  t->dist = nh_os_meta_alloc(dist_size(nnodes));
  t->cpu_node = nh_os_meta_alloc(cpu_size(slots));
  if (t->nodes) t->nodes[0].fallback = nh_os_meta_alloc(fallback_size(nnodes));
  if (!t->nodes || !t->nodes[0].fallback || !t->dist || !t->cpu_node) {
    nh_topo_free(t);
    return -1;
  }
  int *fb = t->nodes[0].fallback;
  for (int i = 0; i < nnodes; i++) t->nodes[i].fallback = fb + (size_t)i * (size_t)(nnodes - 1);
  for (int c = 0; c < slots; c++) t->cpu_node[c] = -1;
  return 0;
}

/* Table size for CPU ids: the highest id the topology (or, for the real
 * machine, the kernel) knows + 1. */
static int cpu_slots(hwloc_topology_t topo, nh_topo_kind kind) {
  int last = hwloc_bitmap_last(hwloc_topology_get_complete_cpuset(topo));
  int slots = last >= 0 ? last + 1 : 1;
  if (kind == NH_TOPO_REAL) {
    int sys = sys_possible_cpus();
    if (sys > slots) slots = sys;
  }
  return slots;
}

/* ---- nodes ------------------------------------------------------------------- */

/* Fills objs[] with the NUMA nodes by increasing os_index, and tags each with
 * its logical number + 1 in userdata (the topology is ours alone). */
static void sorted_nodes(hwloc_topology_t topo, hwloc_obj_t *objs, int n) {
  for (int i = 0; i < n; i++) {
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
    int j = i;
    for (; j > 0 && objs[j - 1]->os_index > o->os_index; j--) objs[j] = objs[j - 1];
    objs[j] = o;
  }
  for (int i = 0; i < n; i++) objs[i]->userdata = (void *)(intptr_t)(i + 1);
}

static int logical_of(hwloc_obj_t numa) { return (int)(intptr_t)numa->userdata - 1; }

/* Dense package numbers: packages holding nodes, in hwloc's logical order. */
static void fill_packages(nh_topo *t, hwloc_topology_t topo, hwloc_obj_t *objs) {
  int npk = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
  int dense = 0;
  for (int p = 0; p < npk; p++) {
    int used = 0;
    for (int i = 0; i < t->nnodes; i++) {
      hwloc_obj_t pk = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, objs[i]);
      if (pk && pk->logical_index == (unsigned)p) t->nodes[i].package = dense, used = 1;
    }
    dense += used;
  }
  t->npackages = dense > 0 ? dense : 1;
}

static void fill_nodes(nh_topo *t, hwloc_topology_t topo, hwloc_obj_t *objs) {
  for (int i = 0; i < t->nnodes; i++) {
    t->nodes[i].os_index = (int)objs[i]->os_index;
    t->nodes[i].bind_os_node = (int)objs[i]->os_index;
    t->nodes[i].mem_bytes = objs[i]->attr ? objs[i]->attr->numanode.local_memory : 0;
    t->nodes[i].package = -1;
  }
  fill_packages(t, topo, objs);
}

/* ---- CPUs -------------------------------------------------------------------- */

/* The local NUMA node of a PU: the first NUMA node among the memory children
 * of its nearest ancestor that has any. hwloc filters memory-side caches out
 * by default; should one be kept, look through it to its node. */
static hwloc_obj_t local_numa(hwloc_obj_t pu) {
  for (hwloc_obj_t a = pu->parent; a; a = a->parent) {
    hwloc_obj_t m = a->memory_first_child;
    while (m && m->type != HWLOC_OBJ_NUMANODE) m = m->memory_first_child;
    if (m) return m;
  }
  return NULL;
}

static void map_cpu(nh_topo *t, int cpu, int node) {
  if (cpu < 0 || cpu >= t->ncpu_slots || t->cpu_node[cpu] >= 0 || node < 0) return;
  t->cpu_node[cpu] = node;
  t->nodes[node].ncpus++;
  t->ncpus++;
}

/* A CPU id the topology knows but has no PU for (offline): the node with the
 * smallest complete cpuset holding it; ties: a node with CPUs, then lower. */
static int nearest_by_cpuset(const nh_topo *t, hwloc_obj_t *objs, int cpu) {
  int best = -1, best_w = 0;
  for (int i = 0; i < t->nnodes; i++) {
    hwloc_const_cpuset_t cs = objs[i]->complete_cpuset;
    if (!cs || !hwloc_bitmap_isset(cs, (unsigned)cpu)) continue;
    int w = hwloc_bitmap_weight(cs);
    if (best < 0 || w < best_w ||
        (w == best_w && t->nodes[i].ncpus > 0 && t->nodes[best].ncpus == 0))
      best = i, best_w = w;
  }
  return best;
}

static void fill_cpus(nh_topo *t, hwloc_topology_t topo, hwloc_obj_t *objs) {
  hwloc_obj_t pu = NULL;
  while ((pu = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, pu)) != NULL) {
    hwloc_obj_t numa = local_numa(pu);
    if (numa) map_cpu(t, (int)pu->os_index, logical_of(numa));
  }
  hwloc_const_cpuset_t all = hwloc_topology_get_complete_cpuset(topo);
  int cpu;
  hwloc_bitmap_foreach_begin(cpu, all) {
    if (cpu >= t->ncpu_slots) break;
    if (t->cpu_node[cpu] < 0) map_cpu(t, cpu, nearest_by_cpuset(t, objs, cpu));
  }
  hwloc_bitmap_foreach_end();
}

/* ---- distances ----------------------------------------------------------------- */

/* Copies matrix d into t->dist if it covers every node with values that fit;
 * 0 on success. */
static int take_matrix(nh_topo *t, const struct hwloc_distances_s *d) {
  int n = t->nnodes;
  int *idx = nh_os_meta_alloc(sizeof(int) * d->nbobjs);
  if (!idx) return -1;
  int seen = 0, ok = 1;
  for (unsigned k = 0; k < d->nbobjs; k++) {
    idx[k] = d->objs[k] && d->objs[k]->type == HWLOC_OBJ_NUMANODE ? logical_of(d->objs[k]) : -1;
    seen += idx[k] >= 0;
  }
  for (unsigned a = 0; ok && a < d->nbobjs; a++)
    for (unsigned b = 0; b < d->nbobjs; b++) {
      uint64_t v = d->values[(size_t)a * d->nbobjs + b];
      if (idx[a] < 0 || idx[b] < 0) continue;
      if (v == 0 || v > UINT32_MAX) ok = 0;
      else t->dist[(size_t)idx[a] * (size_t)n + (size_t)idx[b]] = (uint32_t)v;
    }
  nh_os_meta_free(idx, sizeof(int) * d->nbobjs);
  return ok && seen == n ? 0 : -1;
}

/* hwloc's node latency matrix (from the OS or the XML's author); 0 if one
 * covering every node was found. */
static int hwloc_distances(nh_topo *t, hwloc_topology_t topo) {
  struct hwloc_distances_s *ds[MAX_MATRICES];
  unsigned nr = MAX_MATRICES;
  unsigned long kind = HWLOC_DISTANCES_KIND_FROM_OS | HWLOC_DISTANCES_KIND_FROM_USER |
                       HWLOC_DISTANCES_KIND_MEANS_LATENCY;
  if (hwloc_distances_get_by_type(topo, HWLOC_OBJ_NUMANODE, &nr, ds, kind, 0) != 0) return -1;
  if (nr > MAX_MATRICES) nr = MAX_MATRICES;
  int found = 0;
  for (unsigned i = 0; i < nr; i++) {
    if (!found) found = take_matrix(t, ds[i]) == 0;
    hwloc_distances_release(topo, ds[i]);
  }
  return found ? 0 : -1;
}

/* 10 local, 20 same package, 30 otherwise (the kernel's scale). */
static void derive_distances(nh_topo *t) {
  for (int a = 0; a < t->nnodes; a++)
    for (int b = 0; b < t->nnodes; b++)
      t->dist[(size_t)a * (size_t)t->nnodes + (size_t)b] =
          a == b ? DIST_LOCAL : nh_topo_same_package(t, a, b) ? DIST_PACKAGE : DIST_REMOTE;
  t->dist_derived = 1;
}

static void fill_distances(nh_topo *t, hwloc_topology_t topo) {
  if (hwloc_distances(t, topo) == 0) return;
  if (t->kind == NH_TOPO_REAL && nh_topo_read_sys_distances(t, "/sys/devices/system/node") == 0)
    return;
  derive_distances(t);
}

/* ---- fallback order ------------------------------------------------------------- */

/* 1 if, seen from node `from`, node a comes before node b. */
static int before(const nh_topo *t, int from, int a, int b) {
  uint32_t da = nh_topo_dist(t, from, a), db = nh_topo_dist(t, from, b);
  if (da != db) return da < db;
  int pa = nh_topo_same_package(t, from, a), pb = nh_topo_same_package(t, from, b);
  if (pa != pb) return pa;
  return a < b;
}

/* Heap sort (no malloc, n log n: machines may have up to 1024 nodes). */
static void sift_down(const nh_topo *t, int from, int *v, int root, int n) {
  for (int child; (child = 2 * root + 1) < n; root = child) {
    if (child + 1 < n && before(t, from, v[child], v[child + 1])) child++;
    if (!before(t, from, v[root], v[child])) return;
    int tmp = v[root];
    v[root] = v[child];
    v[child] = tmp;
  }
}

static void sort_fallback(const nh_topo *t, int from, int *v, int n) {
  for (int i = n / 2 - 1; i >= 0; i--) sift_down(t, from, v, i, n);
  for (int end = n - 1; end > 0; end--) {
    int tmp = v[0];
    v[0] = v[end];
    v[end] = tmp;
    sift_down(t, from, v, 0, end);
  }
}

static void fill_fallbacks(nh_topo *t) {
  for (int i = 0; i < t->nnodes; i++) {
    int *fb = t->nodes[i].fallback, k = 0;
    for (int j = 0; j < t->nnodes; j++)
      if (j != i) fb[k++] = j;
    sort_fallback(t, i, fb, k);
  }
}

/* ---- binding of simulated nodes -------------------------------------------------- */

/* Real nodes with memory, ascending, into a meta array (*size set). */
static int *os_memory_nodes(int *count, size_t *size) {
  int slots = nh_os_real_node_slots();
  *size = sizeof(int) * (size_t)(slots > 0 ? slots : 1);
  int *ids = nh_os_meta_alloc(*size);
  if (!ids) return NULL;
  *count = 0;
  for (int n = 0; n < slots; n++)
    if (nh_os_real_node_has_memory(n)) ids[(*count)++] = n;
  if (*count == 0) ids[(*count)++] = 0; /* no sysfs NUMA: node 0 */
  return ids;
}

static int fill_binding(nh_topo *t, const nh_topo_source *src) {
  if (t->kind == NH_TOPO_REAL) return 0;
  int count = src->real_nodes;
  size_t size = 0;
  int *own = NULL;
  const int *ids = src->real_node_ids;
  if (count == 0) {
    if (!(own = os_memory_nodes(&count, &size))) return -1;
    ids = own;
  }
  for (int i = 0; i < t->nnodes; i++)
    t->nodes[i].bind_os_node = ids ? ids[i % count] : i % count;
  nh_os_meta_free(own, size);
  return 0;
}

/* ---- load ------------------------------------------------------------------------ */

static int check_source(const nh_topo_source *src, char *err, size_t errlen) {
  if (src->kind != NH_TOPO_REAL && src->kind != NH_TOPO_SYNTHETIC && src->kind != NH_TOPO_XML)
    return fail(src, err, errlen, "unknown source kind %d", (int)src->kind);
  if (src->kind != NH_TOPO_REAL && (!src->spec || !src->spec[0]))
    return fail(src, err, errlen, "no %s given",
                src->kind == NH_TOPO_XML ? "file name" : "synthetic string");
  if (src->real_nodes < 0)
    return fail(src, err, errlen, "real_nodes is %d; it must be >= 0", src->real_nodes);
  for (int i = 0; src->real_node_ids && i < src->real_nodes; i++)
    if (src->real_node_ids[i] < 0)
      return fail(src, err, errlen, "real_node_ids[%d] is %d; it must be >= 0", i,
                  src->real_node_ids[i]);
  return 0;
}

/* Everything after hwloc has loaded: the tables and their contents. */
static int build(nh_topo *t, hwloc_topology_t topo, const nh_topo_source *src, char *err,
                 size_t errlen) {
  int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  if (n <= 0) return fail(src, err, errlen, "it has no NUMA node");
  size_t objs_size = sizeof(hwloc_obj_t) * (size_t)n;
  hwloc_obj_t *objs = nh_os_meta_alloc(objs_size);
  if (!objs || alloc_tables(t, n, cpu_slots(topo, src->kind)) != 0) {
    nh_os_meta_free(objs, objs_size);
    return fail(src, err, errlen, "out of memory for the topology tables");
  }
  t->kind = src->kind;
  sorted_nodes(topo, objs, n);
  fill_nodes(t, topo, objs);
  fill_cpus(t, topo, objs);
  fill_distances(t, topo);
  fill_fallbacks(t);
  nh_os_meta_free(objs, objs_size);
  if (fill_binding(t, src) != 0) {
    nh_topo_free(t);
    return fail(src, err, errlen, "out of memory for the real node list");
  }
  return 0;
}

int nh_topo_load(nh_topo *t, const nh_topo_source *src, char *err, size_t errlen) {
  hwloc_topology_t topo = NULL;
  memset(t, 0, sizeof *t);
  if (check_source(src, err, errlen) != 0) return -1;
  if (open_source(&topo, src, err, errlen) != 0) return -1;
  int rc = build(t, topo, src, err, errlen);
  hwloc_topology_destroy(topo);
  return rc;
}

/* ---- printing -------------------------------------------------------------------- */

/* Writes node's CPU ids as ranges ("0-3,8"), or "-" when it has none. */
static void print_cpus(const nh_topo *t, int node, FILE *out) {
  int any = 0;
  for (int c = 0; c < t->ncpu_slots; c++) {
    if (t->cpu_node[c] != node) continue;
    int end = c;
    while (end + 1 < t->ncpu_slots && t->cpu_node[end + 1] == node) end++;
    fprintf(out, "%s%d", any ? "," : "", c);
    if (end > c) fprintf(out, "-%d", end);
    any = 1;
    c = end;
  }
  if (!any) fputs("-", out);
}

static void print_fallback(const nh_topo *t, int node, FILE *out, const char *sep) {
  for (int k = 0; k < t->nnodes - 1; k++)
    fprintf(out, "%s%d", k ? sep : "", t->nodes[node].fallback[k]);
}

static void print_text(const nh_topo *t, FILE *out) {
  fprintf(out, "topology: %s, %d node%s, %d package%s, %d CPUs (ids below %d), distances %s\n",
          kind_name(t->kind), t->nnodes, t->nnodes == 1 ? "" : "s", t->npackages,
          t->npackages == 1 ? "" : "s", t->ncpus, t->ncpu_slots,
          t->dist_derived ? "derived from the hierarchy" : "from the source");
  for (int i = 0; i < t->nnodes; i++) {
    const nh_topo_node *nd = &t->nodes[i];
    fprintf(out, "node %d: os %d, bind %d, package ", i, nd->os_index, nd->bind_os_node);
    if (nd->package >= 0) fprintf(out, "%d", nd->package);
    else fputs("-", out);
    fputs(", cpus ", out);
    print_cpus(t, i, out);
    fprintf(out, ", memory %" PRIu64 " MiB, fallback ", nd->mem_bytes >> 20);
    if (t->nnodes > 1) print_fallback(t, i, out, " ");
    else fputs("-", out);
    fputs("\n", out);
  }
  fputs("distances:\n     ", out);
  for (int j = 0; j < t->nnodes; j++) fprintf(out, " %4d", j);
  for (int i = 0; i < t->nnodes; i++) {
    fprintf(out, "\n%4d:", i);
    for (int j = 0; j < t->nnodes; j++) fprintf(out, " %4" PRIu32, nh_topo_dist(t, i, j));
  }
  fputs("\n", out);
}

static void print_json_node(const nh_topo *t, int i, FILE *out) {
  const nh_topo_node *nd = &t->nodes[i];
  fprintf(out, "{\"node\":%d,\"os_index\":%d,\"bind_os_node\":%d,\"package\":%d,\"cpus\":\"", i,
          nd->os_index, nd->bind_os_node, nd->package);
  print_cpus(t, i, out);
  fprintf(out, "\",\"ncpus\":%d,\"memory\":%" PRIu64 ",\"fallback\":[", nd->ncpus, nd->mem_bytes);
  print_fallback(t, i, out, ",");
  fputs("]}", out);
}

static void print_json(const nh_topo *t, FILE *out) {
  fprintf(out, "{\"source\":\"%s\",\"npackages\":%d,\"ncpus\":%d,\"ncpu_slots\":%d,\"nodes\":[",
          kind_name(t->kind), t->npackages, t->ncpus, t->ncpu_slots);
  for (int i = 0; i < t->nnodes; i++) {
    if (i) fputs(",", out);
    print_json_node(t, i, out);
  }
  fputs("],\"distances\":[", out);
  for (int i = 0; i < t->nnodes; i++) {
    fputs(i ? ",[" : "[", out);
    for (int j = 0; j < t->nnodes; j++)
      fprintf(out, "%s%" PRIu32, j ? "," : "", nh_topo_dist(t, i, j));
    fputs("]", out);
  }
  fprintf(out, "],\"distances_derived\":%s}", t->dist_derived ? "true" : "false");
}

void nh_topo_print(const nh_topo *t, FILE *out, int json) {
  if (json) print_json(t, out);
  else print_text(t, out);
}
