/*
 * numa/topo_hwloc.c: an nh_topo (numa/topo.h) from hwloc: the real machine,
 * a synthetic string or an XML file. hwloc is called through the table of
 * numa/hwloc_load.h (libnumaheap does not link it).
 *
 * Steps of nh_topo_load_hwloc, one function each:
 *   open_source      hwloc init, flags, source, load (hwloc mallocs here)
 *   nh_topo_alloc_tables  every array of the result (numa/topo.c)
 *   fill_nodes       logical nodes by increasing os_index; memory; package
 *   fill_cpus        CPU id -> logical node (the nearest NUMA node above)
 *   hwloc_distances  hwloc's latency matrix; numa/topo.c's nh_topo_finish
 *                    falls back to the kernel's rows or derives 10/20/30
 * The hwloc topology is destroyed before nh_topo_load_hwloc returns; the
 * result refers to nothing of hwloc's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "numa/os.h"
#include "numa/topo_build.h"

#define MAX_MATRICES 8

/* One hwloc topology and the table its functions are called through. */
typedef struct hw_topo {
  const nh_hwloc_api *hw;
  hwloc_topology_t topo;
} hw_topo;

/* ---- hwloc.h's inline helpers, on the table ------------------------------------ */

static int nbobjs_by_type(const hw_topo *h, hwloc_obj_type_t type) {
  int depth = h->hw->get_type_depth(h->topo, type);
  if (depth == HWLOC_TYPE_DEPTH_UNKNOWN) return 0;
  if (depth == HWLOC_TYPE_DEPTH_MULTIPLE) return -1;
  return (int)h->hw->get_nbobjs_by_depth(h->topo, depth);
}

static hwloc_obj_t obj_by_type(const hw_topo *h, hwloc_obj_type_t type, unsigned idx) {
  int depth = h->hw->get_type_depth(h->topo, type);
  if (depth == HWLOC_TYPE_DEPTH_UNKNOWN || depth == HWLOC_TYPE_DEPTH_MULTIPLE) return NULL;
  return h->hw->get_obj_by_depth(h->topo, depth, idx);
}

static hwloc_obj_t next_obj_by_type(const hw_topo *h, hwloc_obj_type_t type, hwloc_obj_t prev) {
  if (prev == NULL) return obj_by_type(h, type, 0);
  return prev->type == type ? prev->next_cousin : NULL;
}

static hwloc_const_cpuset_t complete_cpuset(const hw_topo *h) {
  return h->hw->topology_get_complete_cpuset(h->topo);
}

/* ---- open the source ------------------------------------------------------------ */

/* An XML file hwloc cannot open leaves errno saying why; a malformed one
 * leaves EINVAL (or nothing). */
static int xml_failed(const nh_topo_source *src, int e, char *err, size_t errlen) {
  if (e != 0 && e != EINVAL)
    return nh_topo_fail(src, err, errlen, "hwloc could not read it (%s)", strerror(e));
  return nh_topo_fail(src, err, errlen,
                      "hwloc could not parse it (without its libxml2 plugin, Debian's "
                      "libhwloc-plugins, hwloc reads only XML that hwloc itself wrote)");
}

static int set_source(const hw_topo *h, const nh_topo_source *src, char *err, size_t errlen) {
  errno = 0;
  if (src->kind == NH_TOPO_SYNTHETIC && h->hw->topology_set_synthetic(h->topo, src->spec) != 0)
    return nh_topo_fail(src, err, errlen, "hwloc could not parse it");
  if (src->kind == NH_TOPO_XML && h->hw->topology_set_xml(h->topo, src->spec) != 0)
    return xml_failed(src, errno, err, errlen);
  return 0;
}

static int load_failed(const nh_topo_source *src, int e, char *err, size_t errlen) {
  if (src->kind == NH_TOPO_XML) return xml_failed(src, e, err, errlen);
  if (src->kind == NH_TOPO_SYNTHETIC)
    return nh_topo_fail(src, err, errlen, "hwloc could not build it (%s)",
                        strerror(e ? e : EINVAL));
  return nh_topo_fail(src, err, errlen, "hwloc could not discover it (%s)",
                      strerror(e ? e : EINVAL));
}

/* hwloc_topology_init loads every hwloc plugin installed (dlopen): I/O,
 * OpenCL, OpenGL and libxml2 readers, the last pulling in ICU and libstdc++,
 * about 1.1 MB of a small program's RSS. numaheap needs none of them except
 * the libxml2 reader for an XML topology, so for the others hwloc is pointed
 * at no plugin directory while it initialises (unless the user chose one). */
static int init_without_plugins(hw_topo *h, const nh_topo_source *src) {
  bool hide = src->kind != NH_TOPO_XML && getenv("HWLOC_PLUGINS_PATH") == NULL &&
              setenv("HWLOC_PLUGINS_PATH", "/nonexistent/numaheap-needs-no-hwloc-plugins", 0) == 0;
  int rc = h->hw->topology_init(&h->topo);
  if (hide) unsetenv("HWLOC_PLUGINS_PATH");
  return rc;
}

static int open_source(hw_topo *h, const nh_topo_source *src, char *err, size_t errlen) {
  if (init_without_plugins(h, src) != 0)
    return nh_topo_fail(src, err, errlen, "hwloc_topology_init failed");
  h->hw->topology_set_flags(h->topo, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  h->hw->topology_set_cache_types_filter(h->topo, HWLOC_TYPE_FILTER_KEEP_NONE);
  h->hw->topology_set_icache_types_filter(h->topo, HWLOC_TYPE_FILTER_KEEP_NONE);
  if (set_source(h, src, err, errlen) != 0) {
    h->hw->topology_destroy(h->topo);
    return -1;
  }
  errno = 0;
  if (h->hw->topology_load(h->topo) != 0) {
    int e = errno;
    h->hw->topology_destroy(h->topo);
    return load_failed(src, e, err, errlen);
  }
  return 0;
}

/* Table size for CPU ids: the highest id the topology (or, for the real
 * machine, the kernel) knows + 1. */
static int cpu_slots(const hw_topo *h, nh_topo_kind kind) {
  int last = h->hw->bitmap_last(complete_cpuset(h));
  int slots = last >= 0 ? last + 1 : 1;
  if (kind == NH_TOPO_REAL) {
    int sys = nh_topo_possible_cpus("/sys/devices/system/cpu");
    if (sys > slots) slots = sys;
  }
  return slots;
}

/* ---- nodes ------------------------------------------------------------------- */

/* Fills objs[] with the NUMA nodes by increasing os_index, and tags each with
 * its logical number + 1 in userdata (the topology is ours alone). */
static void sorted_nodes(const hw_topo *h, hwloc_obj_t *objs, int n) {
  for (int i = 0; i < n; i++) {
    hwloc_obj_t o = obj_by_type(h, HWLOC_OBJ_NUMANODE, (unsigned)i);
    int j = i;
    for (; j > 0 && objs[j - 1]->os_index > o->os_index; j--) objs[j] = objs[j - 1];
    objs[j] = o;
  }
  for (int i = 0; i < n; i++) objs[i]->userdata = (void *)(intptr_t)(i + 1);
}

static int logical_of(hwloc_obj_t numa) { return (int)(intptr_t)numa->userdata - 1; }

/* The package above obj, or NULL (hwloc.h's get_ancestor_obj_by_type). */
static hwloc_obj_t package_of(hwloc_obj_t obj) {
  hwloc_obj_t a = obj->parent;
  while (a && a->type != HWLOC_OBJ_PACKAGE) a = a->parent;
  return a;
}

/* Dense package numbers: packages holding nodes, in hwloc's logical order. */
static void fill_packages(nh_topo *t, const hw_topo *h, hwloc_obj_t *objs) {
  int npk = nbobjs_by_type(h, HWLOC_OBJ_PACKAGE);
  int dense = 0;
  for (int p = 0; p < npk; p++) {
    int used = 0;
    for (int i = 0; i < t->nnodes; i++) {
      hwloc_obj_t pk = package_of(objs[i]);
      if (pk && pk->logical_index == (unsigned)p) t->nodes[i].package = dense, used = 1;
    }
    dense += used;
  }
  t->npackages = dense > 0 ? dense : 1;
}

static void fill_nodes(nh_topo *t, const hw_topo *h, hwloc_obj_t *objs) {
  for (int i = 0; i < t->nnodes; i++) {
    t->nodes[i].os_index = (int)objs[i]->os_index;
    t->nodes[i].bind_os_node = (int)objs[i]->os_index;
    t->nodes[i].mem_bytes = objs[i]->attr ? objs[i]->attr->numanode.local_memory : 0;
    t->nodes[i].package = -1;
  }
  fill_packages(t, h, objs);
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

/* A CPU id the topology knows but has no PU for (offline): the node with the
 * smallest complete cpuset holding it; ties: a node with CPUs, then lower. */
static int nearest_by_cpuset(const nh_topo *t, const hw_topo *h, hwloc_obj_t *objs, int cpu) {
  int best = -1, best_w = 0;
  for (int i = 0; i < t->nnodes; i++) {
    hwloc_const_cpuset_t cs = objs[i]->complete_cpuset;
    if (!cs || !h->hw->bitmap_isset(cs, (unsigned)cpu)) continue;
    int w = h->hw->bitmap_weight(cs);
    if (best < 0 || w < best_w ||
        (w == best_w && t->nodes[i].ncpus > 0 && t->nodes[best].ncpus == 0))
      best = i, best_w = w;
  }
  return best;
}

static void fill_cpus(nh_topo *t, const hw_topo *h, hwloc_obj_t *objs) {
  hwloc_obj_t pu = NULL;
  while ((pu = next_obj_by_type(h, HWLOC_OBJ_PU, pu)) != NULL) {
    hwloc_obj_t numa = local_numa(pu);
    if (numa) nh_topo_map_cpu(t, (int)pu->os_index, logical_of(numa));
  }
  hwloc_const_cpuset_t all = complete_cpuset(h);
  for (int cpu = h->hw->bitmap_next(all, -1); cpu >= 0 && cpu < t->ncpu_slots;
       cpu = h->hw->bitmap_next(all, cpu))
    if (t->cpu_node[cpu] < 0) nh_topo_map_cpu(t, cpu, nearest_by_cpuset(t, h, objs, cpu));
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

/* hwloc's node latency matrix (from the OS or the XML's author); 1 if one
 * covering every node was found. */
static int hwloc_distances(nh_topo *t, const hw_topo *h) {
  struct hwloc_distances_s *ds[MAX_MATRICES];
  unsigned nr = MAX_MATRICES;
  unsigned long kind = HWLOC_DISTANCES_KIND_FROM_OS | HWLOC_DISTANCES_KIND_FROM_USER |
                       HWLOC_DISTANCES_KIND_MEANS_LATENCY;
  if (h->hw->distances_get_by_type(h->topo, HWLOC_OBJ_NUMANODE, &nr, ds, kind, 0) != 0) return 0;
  if (nr > MAX_MATRICES) nr = MAX_MATRICES;
  int found = 0;
  for (unsigned i = 0; i < nr; i++) {
    if (!found) found = take_matrix(t, ds[i]) == 0;
    h->hw->distances_release(h->topo, ds[i]);
  }
  return found;
}

/* ---- load ------------------------------------------------------------------------ */

/* Everything after hwloc has loaded: the tables and their contents. */
static int build(nh_topo *t, const hw_topo *h, const nh_topo_source *src, char *err,
                 size_t errlen) {
  int n = nbobjs_by_type(h, HWLOC_OBJ_NUMANODE);
  if (n <= 0) return nh_topo_fail(src, err, errlen, "it has no NUMA node");
  size_t objs_size = sizeof(hwloc_obj_t) * (size_t)n;
  hwloc_obj_t *objs = nh_os_meta_alloc(objs_size);
  if (!objs || nh_topo_alloc_tables(t, n, cpu_slots(h, src->kind)) != 0) {
    nh_os_meta_free(objs, objs_size);
    return nh_topo_fail(src, err, errlen, "out of memory for the topology tables");
  }
  t->kind = src->kind;
  t->via = NH_DISCOVERY_HWLOC;
  sorted_nodes(h, objs, n);
  fill_nodes(t, h, objs);
  fill_cpus(t, h, objs);
  nh_topo_finish(t, hwloc_distances(t, h), "/sys/devices/system/node");
  nh_os_meta_free(objs, objs_size);
  return 0;
}

int nh_topo_load_hwloc(nh_topo *t, const nh_topo_source *src, const nh_hwloc_api *hw, char *err,
                       size_t errlen) {
  hw_topo h = {hw, NULL};
  if (open_source(&h, src, err, errlen) != 0) return -1;
  int rc = build(t, &h, src, err, errlen);
  hw->topology_destroy(h.topo);
  return rc;
}
