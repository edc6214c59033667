/*
 * tests/vm/vm_layout.c: proves a VM layout is what it says, with the kernel
 * alone (no numaheap).
 *
 *   vm_layout --layout NAME --expect SPEC
 *
 * Checks, in order: the node count and ids, each node's CPUs and memory, the
 * distance matrix (all from /sys/devices/system/node against SPEC); then for
 * every CPU that getcpu(2) reports its node; for every node with CPUs that
 * first-touch pages of a thread pinned there land there (on the nearest node
 * with memory for a memory-less node); for every node with memory that pages
 * bound to it with MPOL_BIND land there even when touched from another node's
 * CPU. move_pages(2) says where each page is.
 */
#include "vmtest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define REGION (4u << 20)

static void check_nodes(const vm_topo *want, const vm_topo *got) {
  if (got->nnodes != want->nnodes)
    vm_fail("node-count", "kernel shows %d nodes, layout has %d", got->nnodes, want->nnodes);
  for (int i = 0; i < got->nnodes; i++) {
    if (got->os_id[i] != want->os_id[i])
      vm_fail("node-ids", "node entry %d is OS node %d, want %d", i, got->os_id[i], want->os_id[i]);
  }
  vm_ok("node-count", "%d nodes, ids 0..%d", got->nnodes, got->nnodes - 1);
}

static void check_cpus_mem(const vm_topo *want, const vm_topo *got) {
  for (int i = 0; i < got->nnodes; i++) {
    if (!CPU_EQUAL(&got->cpus[i], &want->cpus[i]))
      vm_fail("node-cpus", "node %d has %d CPUs (first %d), want %d (first %d)", i,
              got->ncpus[i], vm_first_cpu(got, i), want->ncpus[i], vm_first_cpu(want, i));
    /* MemTotal excludes what firmware, the kernel image, the initramfs and
     * the page structures keep (up to a third of a 128 MiB node seen here). */
    uint64_t hi = want->mem_kib[i], lo = hi / 2;
    if (got->mem_kib[i] > hi || got->mem_kib[i] < lo)
      vm_fail("node-mem", "node %d has MemTotal %llu KiB, want %llu..%llu", i,
              (unsigned long long)got->mem_kib[i], (unsigned long long)lo,
              (unsigned long long)hi);
    vm_ok("node-cpus-mem", "node %d: %d CPUs, %llu MiB", i, got->ncpus[i],
          (unsigned long long)got->mem_kib[i] / 1024);
  }
}

static void check_distances(const vm_topo *want, const vm_topo *got) {
  for (int i = 0; i < got->nnodes; i++) {
    for (int j = 0; j < got->nnodes; j++) {
      if (got->dist[i][j] != want->dist[i][j])
        vm_fail("distance", "distance %d->%d is %d, want %d", i, j, got->dist[i][j],
                want->dist[i][j]);
    }
  }
  vm_ok("distance", "%dx%d matrix matches", got->nnodes, got->nnodes);
}

static void check_getcpu(const vm_topo *t) {
  int n = 0;
  for (int i = 0; i < t->nnodes; i++) {
    for (int c = 0; c < CPU_SETSIZE; c++) {
      if (!CPU_ISSET(c, &t->cpus[i])) continue;
      if (vm_pin_cpu(c) != 0) vm_fail("getcpu", "cannot pin to CPU %d: %s", c, strerror(errno));
      int node = vm_current_node();
      if (node != t->os_id[i])
        vm_fail("getcpu", "on CPU %d getcpu says node %d, want %d", c, node, t->os_id[i]);
      n++;
    }
  }
  vm_ok("getcpu", "%d CPUs report their node", n);
}

/* Maps REGION bytes, optionally binds them to os_node, touches them and
 * checks they all are on os_node. */
static void check_region(const char *check, int os_node, int bind, int cpu) {
  void *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const void *bad = NULL;
  int bad_node = 0;
  if (p == MAP_FAILED) vm_fail(check, "mmap of %u bytes: %s", REGION, strerror(errno));
  if (bind && vm_bind(p, REGION, os_node) != 0)
    vm_fail(check, "mbind to node %d: %s", os_node, strerror(errno));
  vm_touch(p, REGION);
  long off = vm_range_off_node(p, REGION, os_node, &bad, &bad_node);
  if (off < 0) vm_fail(check, "move_pages: %s", strerror(errno));
  if (off > 0)
    vm_fail(check, "%ld of %u pages touched on CPU %d are off node %d (first %p on %d)", off,
            REGION / VM_PAGE, cpu, os_node, bad, bad_node);
  munmap(p, REGION);
  vm_ok(check, "%u pages %s from CPU %d are on node %d", REGION / VM_PAGE,
        bind ? "bound" : "first-touched", cpu, os_node);
}

/* A CPU of another node than entry i (the first such), or -1. */
static int foreign_cpu(const vm_topo *t, int i) {
  for (int j = 0; j < t->nnodes; j++) {
    if (j != i && t->ncpus[j] > 0) return vm_first_cpu(t, j);
  }
  return -1;
}

static void check_placement(const vm_topo *t) {
  for (int i = 0; i < t->nnodes; i++) {
    int cpu = vm_first_cpu(t, i), home = vm_mem_home(t, i);
    if (cpu >= 0 && home >= 0) {
      /* A memory-less node's CPUs get memory from its nearest node. */
      if (vm_pin_cpu(cpu) != 0) vm_fail("local", "cannot pin to CPU %d", cpu);
      check_region(home == i ? "local" : "local-memless", t->os_id[home], 0, cpu);
    }
    if (t->mem_kib[i] == 0) continue; /* nothing to bind to */
    cpu = foreign_cpu(t, i);
    if (cpu < 0) cpu = vm_first_cpu(t, i);
    if (vm_pin_cpu(cpu) != 0) vm_fail("bind", "cannot pin to CPU %d", cpu);
    check_region("bind", t->os_id[i], 1, cpu);
  }
}

int main(int argc, char **argv) {
  vm_args a;
  vm_topo got;
  vm_start_topo(argc, argv, &a, &got);
  if (a.argc != 0) vm_fail("arguments", "unexpected argument '%s'", a.argv[0]);
  check_nodes(&a.expect, &got);
  check_cpus_mem(&a.expect, &got);
  check_distances(&a.expect, &got);
  check_getcpu(&got);
  check_placement(&got);
  return 0;
}
