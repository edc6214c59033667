/*
 * tests/vm/vm_topo.c: numaheap's two readers of a real machine agree on a
 * multi-node one. The topology is loaded through hwloc (dlopen'd:
 * numa/hwloc_load.c) and from /sys (numa/topo_sys.c), and every field is
 * compared (tests/test_topo.c does the same on the one-node build machine);
 * then auto must have chosen hwloc, the machine having several nodes.
 *
 *   vm_topo --layout NAME --expect SPEC
 *
 * Linked with nh_core (the internals), not libnumaheap.so.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "numa/topo.h"
#include "vmtest.h"

static void load(nh_topo *t, nh_topo_discovery d, const char *what) {
  nh_topo_source src = {.kind = NH_TOPO_REAL, .discovery = d};
  char err[512];
  if (nh_topo_load(t, &src, err, sizeof err) != 0) vm_fail(what, "%s", err);
  if (t->warning[0]) vm_fail(what, "%s", t->warning);
}

#define SAME(field, fmt)                                                                     \
  do {                                                                                       \
    if (a->field != b->field)                                                                \
      vm_fail("same", "%s: hwloc " fmt ", sysfs " fmt, #field, a->field, b->field);          \
  } while (0)

static void compare_nodes(const nh_topo *a, const nh_topo *b) {
  for (int i = 0; i < a->nnodes; i++) {
    SAME(nodes[i].os_index, "%d");
    SAME(nodes[i].package, "%d");
    SAME(nodes[i].ncpus, "%d");
    SAME(nodes[i].mem_bytes, "%" PRIu64);
    for (int k = 0; k < a->nnodes - 1; k++) SAME(nodes[i].fallback[k], "%d");
    for (int j = 0; j < a->nnodes; j++) SAME(dist[i * a->nnodes + j], "%u");
  }
  for (int c = 0; c < a->ncpu_slots; c++) SAME(cpu_node[c], "%d");
}

int main(int argc, char **argv) {
  vm_args args;
  vm_start(argc, argv, &args);
  nh_topo h, s, au;
  load(&h, NH_DISCOVERY_HWLOC, "hwloc");
  load(&s, NH_DISCOVERY_SYSFS, "sysfs");
  const nh_topo *a = &h, *b = &s;
  SAME(nnodes, "%d");
  SAME(npackages, "%d");
  SAME(ncpu_slots, "%d");
  SAME(ncpus, "%d");
  SAME(dist_derived, "%d");
  compare_nodes(a, b);
  vm_ok("same", "hwloc and sysfs: %d nodes, %d packages, %d CPUs, every field equal", h.nnodes,
        h.npackages, h.ncpus);
  load(&au, NH_DISCOVERY_AUTO, "auto");
  if (au.via != (h.nnodes > 1 ? NH_DISCOVERY_HWLOC : NH_DISCOVERY_SYSFS))
    vm_fail("auto", "%d nodes read by %s", au.nnodes, au.via == NH_DISCOVERY_HWLOC ? "hwloc" : "sysfs");
  vm_ok("auto", "%d nodes: read by %s", au.nnodes, au.via == NH_DISCOVERY_HWLOC ? "hwloc" : "sysfs");
  nh_topo_free(&h);
  nh_topo_free(&s);
  nh_topo_free(&au);
  return 0;
}
