/* tests/vm/vmnh.c: see vmnh.h. */
#include "vmnh.h"

#include <errno.h>
#include <string.h>

int vm_nh_here_node(const vm_topo *t, const char *check) {
  int os = vm_current_node(), node = vm_entry_of_os_node(t, os);
  if (node < 0) vm_fail(check, "getcpu reports unknown node %d", os);
  if (nh_current_node() != node)
    vm_fail(check, "nh_current_node() = %d, kernel says node %d", nh_current_node(), node);
  return node;
}

void vm_nh_pages_on(const vm_topo *t, const char *check, const char *what, const void *p,
                    size_t size, int want) {
  const void *bad = NULL;
  int bad_node = 0;
  long off = vm_range_off_node(p, size, t->os_id[want], &bad, &bad_node);
  if (off < 0) vm_fail(check, "move_pages on %p: %s", p, strerror(errno));
  if (off > 0)
    vm_fail(check, "%s %p (%zu bytes) wanted on node %d: %ld pages elsewhere, first %p on OS node %d",
            what, p, size, want, off, bad, bad_node);
}

void vm_nh_block_on(const vm_topo *t, const char *check, const char *what, void *p, size_t size,
                    int want) {
  if (!p)
    vm_fail(check, "%s of %zu bytes returned NULL (errno %d: %s)", what, size, errno,
            nh_last_error());
  memset(p, 0x5a, size);
  vm_nh_pages_on(t, check, what, p, size, want);
  int nh = nh_ptr_node(p);
  if (nh != want)
    vm_fail(check, "%s %p (%zu bytes) is on node %d by the kernel, nh_ptr_node says %d", what, p,
            size, want, nh);
}

void vm_nh_stats(nh_stats *st) {
  memset(st, 0, sizeof *st);
  st->size = sizeof *st;
  st->version = NH_STATS_VERSION;
  if (nh_stats_get(st) != 0) vm_fail("stats", "nh_stats_get: %s", nh_last_error());
}

void vm_nh_same_nodes(const vm_topo *t, const vm_args *a) {
  if (t->nnodes != a->expect.nnodes || nh_node_count() != t->nnodes)
    vm_fail("topology", "kernel shows %d nodes, layout has %d, numaheap sees %d", t->nnodes,
            a->expect.nnodes, nh_node_count());
}
