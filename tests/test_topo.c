/*
 * tests/test_topo.c: numa/topo.c. Synthetic topologies from 1 to 72 nodes,
 * hwloc XML fixtures (tests/data/topo: asymmetric distances with ties,
 * CPU-less and memory-less nodes, sparse CPU ids past 64 with disallowed and
 * offline CPUs), the kernel distance reader on a sysfs fixture, the /sys
 * reader on fixture trees, the real machine (read by hwloc and by /sys: the
 * same value), hwloc that cannot be loaded, errors, the binding of simulated
 * nodes, and the printers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numa/os.h"
#include "numa/topo.h"

#define UNUSED __attribute__((unused))
#define GiB (UINT64_C(1) << 30)

static char err[1024];

/* ---- helpers ------------------------------------------------------------------ */

static const char *data_path(const char *name) {
  static char path[4096];
  const char *dir = getenv("NUMAHEAP_TEST_DATA");
  if (!dir) fail_msg("NUMAHEAP_TEST_DATA is not set (ctest sets it)");
  snprintf(path, sizeof path, "%s/topo/%s", dir, name);
  return path;
}

static void load_src(nh_topo *t, nh_topo_kind kind, const char *spec, int real_nodes,
                     const int *ids) {
  nh_topo_source src = {.kind = kind, .spec = spec, .real_nodes = real_nodes, .real_node_ids = ids};
  err[0] = '\0';
  if (nh_topo_load(t, &src, err, sizeof err) != 0) fail_msg("loading %s: %s", spec ? spec : "the real machine", err);
}

static void load_synthetic(nh_topo *t, const char *spec) {
  load_src(t, NH_TOPO_SYNTHETIC, spec, 1, NULL);
}

static void load_xml(nh_topo *t, const char *name) {
  load_src(t, NH_TOPO_XML, data_path(name), 1, NULL);
}

static void assert_fallback(const nh_topo *t, int node, const int *want) {
  for (int k = 0; k < t->nnodes - 1; k++) {
    if (t->nodes[node].fallback[k] != want[k])
      fail_msg("node %d fallback[%d] is %d, want %d", node, k, t->nodes[node].fallback[k],
               want[k]);
  }
}

static void assert_row(const nh_topo *t, int from, const uint32_t *want) {
  for (int j = 0; j < t->nnodes; j++) {
    if (nh_topo_dist(t, from, j) != want[j])
      fail_msg("dist(%d,%d) is %u, want %u", from, j, nh_topo_dist(t, from, j), want[j]);
  }
}

static int is_zeroed(const nh_topo *t) {
  static const nh_topo zero;
  return memcmp(t, &zero, sizeof zero) == 0;
}

/* A topology of `packages` packages of `per` nodes of `cpus` CPUs each, as
 * synthetic strings like "package:P numa:N pu:C" build: checks every table
 * against the formulas (node n holds CPUs n*cpus..; package n / per; derived
 * 10/20/30; fallback: own package by number, then the others by number). */
static void check_regular(const nh_topo *t, int packages, int per, int cpus) {
  int n = packages * per;
  assert_int_equal(t->nnodes, n);
  assert_int_equal(t->npackages, packages);
  assert_int_equal(t->ncpus, n * cpus);
  assert_int_equal(t->ncpu_slots, n * cpus);
  assert_int_equal(t->dist_derived, 1);
  for (int c = 0; c < n * cpus; c++) assert_int_equal(nh_topo_cpu_node(t, c), c / cpus);
  for (int i = 0; i < n; i++) {
    assert_int_equal(t->nodes[i].os_index, i);
    assert_int_equal(t->nodes[i].package, i / per);
    assert_int_equal(t->nodes[i].ncpus, cpus);
    assert_true(t->nodes[i].mem_bytes > 0);
    for (int j = 0; j < n; j++) {
      uint32_t want = i == j ? 10 : i / per == j / per ? 20 : 30;
      assert_int_equal(nh_topo_dist(t, i, j), want);
    }
    int k = 0;
    for (int j = (i / per) * per; j < (i / per + 1) * per; j++)
      if (j != i) assert_int_equal(t->nodes[i].fallback[k++], j);
    for (int j = 0; j < n; j++)
      if (j / per != i / per) assert_int_equal(t->nodes[i].fallback[k++], j);
  }
}

/* ---- synthetic ------------------------------------------------------------------ */

static void test_synthetic_one_node(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "core:2 pu:2");
  assert_int_equal(t.kind, NH_TOPO_SYNTHETIC);
  assert_int_equal(t.nnodes, 1);
  assert_int_equal(t.npackages, 1);
  assert_int_equal(t.nodes[0].package, -1); /* no package object in the string */
  assert_int_equal(t.ncpus, 4);
  assert_int_equal(t.ncpu_slots, 4);
  for (int c = 0; c < 4; c++) assert_int_equal(nh_topo_cpu_node(&t, c), 0);
  assert_int_equal(nh_topo_cpu_node(&t, 4), -1);
  assert_int_equal(nh_topo_cpu_node(&t, -1), -1);
  assert_int_equal(nh_topo_dist(&t, 0, 0), 10);
  assert_int_equal(t.dist_derived, 1);
  assert_int_equal(t.nodes[0].ncpus, 4);
  assert_true(t.nodes[0].mem_bytes > 0);
  nh_topo_free(&t);
  assert_true(is_zeroed(&t));
  nh_topo_free(&t); /* a freed topology may be freed again */

  load_synthetic(&t, "package:1 core:2 pu:1");
  assert_int_equal(t.nnodes, 1);
  assert_int_equal(t.nodes[0].package, 0);
  nh_topo_free(&t);
}

static void test_synthetic_two_nodes(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "package:2 numa:1 core:2 pu:1");
  check_regular(&t, 2, 1, 2);
  nh_topo_free(&t);

  /* Nodes without a package: no two share one, so they are 30 apart. */
  load_synthetic(&t, "numa:2 core:2 pu:1");
  assert_int_equal(t.nnodes, 2);
  assert_int_equal(t.npackages, 1);
  assert_int_equal(t.nodes[0].package, -1);
  assert_int_equal(t.nodes[1].package, -1);
  assert_int_equal(nh_topo_dist(&t, 0, 1), 30);
  assert_int_equal(nh_topo_same_package(&t, 0, 1), 0);
  assert_int_equal(t.nodes[1].fallback[0], 0);
  nh_topo_free(&t);
}

static void test_synthetic_four_nodes(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "package:2 numa:2 core:2 pu:1");
  check_regular(&t, 2, 2, 2);
  static const int cpu_node[8] = {0, 0, 1, 1, 2, 2, 3, 3};
  for (int c = 0; c < 8; c++) assert_int_equal(t.cpu_node[c], cpu_node[c]);
  static const uint32_t row2[4] = {30, 30, 10, 20};
  assert_row(&t, 2, row2);
  static const int fb[4][3] = {{1, 2, 3}, {0, 2, 3}, {3, 0, 1}, {2, 0, 1}};
  for (int i = 0; i < 4; i++) assert_fallback(&t, i, fb[i]);
  for (int i = 0; i < 4; i++) assert_int_equal(t.nodes[i].mem_bytes, GiB); /* hwloc's default */
  assert_int_equal(nh_topo_same_package(&t, 0, 1), 1);
  assert_int_equal(nh_topo_same_package(&t, 1, 2), 0);
  nh_topo_free(&t);
}

static void test_synthetic_eight_nodes(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "package:2 numa:4 pu:1");
  check_regular(&t, 2, 4, 1);
  static const int fb5[7] = {4, 6, 7, 0, 1, 2, 3};
  assert_fallback(&t, 5, fb5);
  nh_topo_free(&t);
}

static void test_synthetic_sixteen_nodes(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "package:4 numa:4 core:1 pu:2");
  check_regular(&t, 4, 4, 2);
  static const int fb9[15] = {8, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15};
  assert_fallback(&t, 9, fb9);
  assert_int_equal(nh_topo_cpu_node(&t, 31), 15);
  nh_topo_free(&t);
}

/* More than 64 nodes and 64 CPUs: no 64-bit masks anywhere. */
static void test_synthetic_72_nodes(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "package:8 numa:9 pu:2");
  check_regular(&t, 8, 9, 2);
  assert_int_equal(nh_topo_cpu_node(&t, 143), 71);
  assert_int_equal(nh_topo_cpu_node(&t, 144), -1);
  assert_int_equal(t.nodes[70].package, 7);
  assert_int_equal(t.nodes[70].fallback[0], 63);
  assert_int_equal(t.nodes[70].fallback[8], 0);
  nh_topo_free(&t);
}

/* The bracket syntax attaches memory children with explicit sizes. */
static void test_synthetic_memory_attribute(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "pack:2 [numa(memory=1GB)] core:4 pu:1");
  assert_int_equal(t.nnodes, 2);
  assert_int_equal(t.npackages, 2);
  assert_int_equal(t.nodes[0].mem_bytes, 1000000000u);
  assert_int_equal(t.nodes[1].mem_bytes, 1000000000u);
  for (int c = 0; c < 8; c++) assert_int_equal(t.cpu_node[c], c / 4);
  assert_int_equal(nh_topo_dist(&t, 0, 1), 30);
  nh_topo_free(&t);
}

/* ---- XML fixtures --------------------------------------------------------------- */

static void test_xml_asymmetric_distances(void **state UNUSED) {
  nh_topo t;
  load_xml(&t, "asym4.xml");
  assert_int_equal(t.kind, NH_TOPO_XML);
  assert_int_equal(t.nnodes, 4);
  assert_int_equal(t.npackages, 2);
  assert_int_equal(t.dist_derived, 0);
  static const uint32_t d[4][4] = {
      {10, 21, 20, 20}, {12, 10, 12, 30}, {20, 20, 10, 20}, {30, 12, 12, 10}};
  for (int i = 0; i < 4; i++) assert_row(&t, i, d[i]);
  static const int fb[4][3] = {{2, 3, 1}, {0, 2, 3}, {3, 0, 1}, {2, 1, 0}};
  for (int i = 0; i < 4; i++) assert_fallback(&t, i, fb[i]);
  for (int c = 0; c < 8; c++) assert_int_equal(t.cpu_node[c], c / 2);
  nh_topo_free(&t);
}

/* Nodes 2 (in package 0) and 3 (outside packages) have memory, no CPUs; hwloc
 * numbers them L#1 and L#3, we number them by os_index. */
static void test_xml_cpuless_nodes(void **state UNUSED) {
  nh_topo t;
  load_xml(&t, "cpuless.xml");
  assert_int_equal(t.nnodes, 4);
  assert_int_equal(t.npackages, 2);
  static const int pkg[4] = {0, 1, 0, -1}, ncpus[4] = {4, 4, 0, 0};
  static const uint64_t mem[4] = {2 * GiB, 2 * GiB, 8 * GiB, 4 * GiB};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(t.nodes[i].os_index, i);
    assert_int_equal(t.nodes[i].package, pkg[i]);
    assert_int_equal(t.nodes[i].ncpus, ncpus[i]);
    assert_int_equal(t.nodes[i].mem_bytes, mem[i]);
  }
  assert_int_equal(t.ncpus, 8);
  for (int c = 0; c < 8; c++) assert_int_equal(t.cpu_node[c], c < 4 ? 0 : 1);
  assert_int_equal(t.dist_derived, 1);
  static const uint32_t d[4][4] = {
      {10, 30, 20, 30}, {30, 10, 30, 30}, {20, 30, 10, 30}, {30, 30, 30, 10}};
  for (int i = 0; i < 4; i++) assert_row(&t, i, d[i]);
  static const int fb[4][3] = {{2, 1, 3}, {0, 2, 3}, {0, 1, 3}, {0, 1, 2}};
  for (int i = 0; i < 4; i++) assert_fallback(&t, i, fb[i]);
  nh_topo_free(&t);
}

static void test_xml_memoryless_node(void **state UNUSED) {
  nh_topo t;
  load_xml(&t, "memless.xml");
  assert_int_equal(t.nnodes, 2);
  assert_int_equal(t.nodes[0].mem_bytes, 4 * GiB);
  assert_int_equal(t.nodes[1].mem_bytes, 0);
  assert_int_equal(t.nodes[0].ncpus, 2);
  assert_int_equal(t.nodes[1].ncpus, 2);
  static const int cpu_node[4] = {0, 0, 1, 1};
  for (int c = 0; c < 4; c++) assert_int_equal(t.cpu_node[c], cpu_node[c]);
  assert_int_equal(t.dist_derived, 0);
  assert_int_equal(nh_topo_dist(&t, 0, 1), 21);
  assert_int_equal(nh_topo_dist(&t, 1, 1), 10);
  nh_topo_free(&t);
}

/* Nodes behind memory-side caches are still the CPUs' local nodes. */
static void test_xml_memory_side_cache(void **state UNUSED) {
  nh_topo t;
  load_xml(&t, "memcache.xml");
  assert_int_equal(t.nnodes, 2);
  static const int cpu_node[4] = {0, 0, 1, 1};
  for (int c = 0; c < 4; c++) assert_int_equal(t.cpu_node[c], cpu_node[c]);
  assert_int_equal(t.nodes[0].package, 0);
  assert_int_equal(t.nodes[1].package, 1);
  assert_int_equal(t.nodes[1].mem_bytes, 2 * GiB);
  nh_topo_free(&t);
}

/* Two memory children per package: the first gets the CPUs, the second
 * (HBM-like) is CPU-less but shares the package. */
static void test_synthetic_cpuless_nodes(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "pack:2 [numa(memory=2GB)] [numa(memory=8GB)] core:2 pu:1");
  assert_int_equal(t.nnodes, 4);
  static const int ncpus[4] = {2, 0, 2, 0}, pkg[4] = {0, 0, 1, 1};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(t.nodes[i].ncpus, ncpus[i]);
    assert_int_equal(t.nodes[i].package, pkg[i]);
  }
  assert_int_equal(t.nodes[1].mem_bytes, 8000000000u);
  static const int cpu_node[4] = {0, 0, 2, 2};
  for (int c = 0; c < 4; c++) assert_int_equal(t.cpu_node[c], cpu_node[c]);
  static const int fb3[3] = {2, 0, 1};
  assert_fallback(&t, 3, fb3);
  nh_topo_free(&t);
}

/* PUs 0,1,8,9 (8 and 9 disallowed) on node 0; 130, 131 and offline 140 on
 * node 5. */
static void test_xml_sparse_cpus(void **state UNUSED) {
  nh_topo t;
  load_xml(&t, "sparse.xml");
  assert_int_equal(t.nnodes, 2);
  assert_int_equal(t.nodes[0].os_index, 0);
  assert_int_equal(t.nodes[1].os_index, 5);
  assert_int_equal(t.ncpu_slots, 141);
  assert_int_equal(t.ncpus, 7);
  assert_int_equal(t.nodes[0].ncpus, 4);
  assert_int_equal(t.nodes[1].ncpus, 3);
  for (int c = 0; c < t.ncpu_slots; c++) {
    int want = (c <= 1 || c == 8 || c == 9) ? 0 : (c == 130 || c == 131 || c == 140) ? 1 : -1;
    if (t.cpu_node[c] != want) fail_msg("cpu %d: node %d, want %d", c, t.cpu_node[c], want);
  }
  assert_int_equal(nh_topo_cpu_node(&t, 141), -1);
  assert_int_equal(nh_topo_dist(&t, 1, 0), 30);
  assert_int_equal(t.nodes[1].mem_bytes, 3 * GiB);
  nh_topo_free(&t);
}

/* ---- the kernel's distance files ------------------------------------------------- */

/* Fixture: online nodes 0-1,4; rows "10 20 32", "20 10 32", "31 33 10". */
static void test_sys_distances(void **state UNUSED) {
  nh_topo_node nodes[3] = {{.os_index = 0}, {.os_index = 1}, {.os_index = 4}};
  uint32_t dist[9] = {0};
  nh_topo t = {.nnodes = 3, .nodes = nodes, .dist = dist};
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", data_path("sysfs"));
  assert_int_equal(nh_topo_read_sys_distances(&t, dir), 0);
  static const uint32_t want[9] = {10, 20, 32, 20, 10, 32, 31, 33, 10};
  assert_memory_equal(dist, want, sizeof want);

  /* A subset of the nodes, in another order: columns follow os ids. */
  nodes[0].os_index = 4, nodes[1].os_index = 0;
  t.nnodes = 2;
  assert_int_equal(nh_topo_read_sys_distances(&t, dir), 0);
  static const uint32_t want2[4] = {10, 31, 32, 10};
  assert_memory_equal(dist, want2, sizeof want2);

  /* Node 2 is not online and has no row: fails, leaving dist as it was. */
  nodes[1].os_index = 2;
  assert_int_equal(nh_topo_read_sys_distances(&t, dir), -1);
  assert_memory_equal(dist, want2, sizeof want2);
  assert_int_equal(nh_topo_read_sys_distances(&t, data_path("no-such-dir")), -1);
}

/* ---- the real machine ------------------------------------------------------------- */

static void test_real_machine(void **state UNUSED) {
  nh_topo t;
  load_src(&t, NH_TOPO_REAL, NULL, 0, NULL);
  assert_int_equal(t.kind, NH_TOPO_REAL);
  assert_true(t.nnodes >= 1);
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  assert_true(t.ncpu_slots >= online);
  assert_true(t.ncpus >= 1);
  for (int i = 0; i < t.nnodes; i++) {
    assert_int_equal(t.nodes[i].bind_os_node, t.nodes[i].os_index);
    assert_int_equal(nh_topo_dist(&t, i, i), 10);
    if (i > 0) assert_true(t.nodes[i].os_index > t.nodes[i - 1].os_index);
  }
  int cpu = nh_os_current_cpu();
  assert_true(cpu >= 0);
  assert_true(nh_topo_cpu_node(&t, cpu) >= 0);
  if (t.nnodes == 1) { /* this build machine: node 0 has every CPU */
    assert_int_equal(t.nodes[0].os_index, 0);
    for (int c = 0; c < online; c++) assert_int_equal(nh_topo_cpu_node(&t, c), 0);
    assert_int_equal(t.nodes[0].ncpus, t.ncpus);
    assert_true(t.nodes[0].mem_bytes > 0);
    assert_int_equal(t.dist_derived, 0); /* hwloc or /sys gave 10 */
  }
  nh_topo_free(&t);
}

/* ---- the /sys reader -------------------------------------------------------------- */

static void load_sysroot(nh_topo *t, const char *name) {
  char root[4096];
  snprintf(root, sizeof root, "%s", data_path(name));
  err[0] = '\0';
  if (nh_topo_load_sysfs(t, root, err, sizeof err) != 0) fail_msg("loading %s: %s", root, err);
}

/* tests/data/topo/sysroot: nodes 0, 1, 4; CPUs 0-1 on node 0 (package 0),
 * 2-3 on node 1 (physical package 3), node 4 without CPUs (in the package of
 * node 0, the one nearest to it: 31 against 33); 8 possible CPUs; the
 * distances of the sysfs fixture above. */
static void test_sysfs_fixture(void **state UNUSED) {
  nh_topo t;
  load_sysroot(&t, "sysroot");
  assert_int_equal(t.kind, NH_TOPO_REAL);
  assert_int_equal(t.via, NH_DISCOVERY_SYSFS);
  assert_int_equal(t.nnodes, 3);
  assert_int_equal(t.npackages, 2);
  assert_int_equal(t.ncpu_slots, 8);
  assert_int_equal(t.ncpus, 4);
  static const int os[3] = {0, 1, 4}, pkg[3] = {0, 1, 0}, ncpus[3] = {2, 2, 0};
  static const uint64_t mem[3] = {4 * GiB, 2 * GiB, 8 * GiB};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(t.nodes[i].os_index, os[i]);
    assert_int_equal(t.nodes[i].bind_os_node, os[i]);
    assert_int_equal(t.nodes[i].package, pkg[i]);
    assert_int_equal(t.nodes[i].ncpus, ncpus[i]);
    assert_int_equal(t.nodes[i].mem_bytes, mem[i]);
  }
  static const int cpu_node[8] = {0, 0, 1, 1, -1, -1, -1, -1};
  for (int c = 0; c < 8; c++) assert_int_equal(nh_topo_cpu_node(&t, c), cpu_node[c]);
  static const uint32_t dist[9] = {10, 20, 32, 20, 10, 32, 31, 33, 10};
  assert_memory_equal(t.dist, dist, sizeof dist);
  assert_int_equal(t.dist_derived, 0);
  static const int fb0[2] = {1, 2}, fb1[2] = {0, 2}, fb2[2] = {0, 1};
  assert_fallback(&t, 0, fb0);
  assert_fallback(&t, 1, fb1);
  assert_fallback(&t, 2, fb2);
  assert_string_equal(t.warning, "");
  nh_topo_free(&t);
}

/* No node/ directory (a kernel without NUMA): one node 0 with cpu/present's
 * CPUs, /proc/meminfo's memory, no package ids (-1), derived distances. */
static void test_sysfs_without_numa(void **state UNUSED) {
  nh_topo t;
  load_sysroot(&t, "sysroot-nonuma");
  assert_int_equal(t.nnodes, 1);
  assert_int_equal(t.nodes[0].os_index, 0);
  assert_int_equal(t.nodes[0].package, -1);
  assert_int_equal(t.npackages, 1);
  assert_int_equal(t.ncpu_slots, 4);
  assert_int_equal(t.ncpus, 3);
  assert_int_equal(nh_topo_cpu_node(&t, 2), 0);
  assert_int_equal(nh_topo_cpu_node(&t, 3), -1);
  assert_true(t.nodes[0].mem_bytes > 0);
  assert_int_equal(t.dist_derived, 1);
  assert_int_equal(nh_topo_dist(&t, 0, 0), 10);
  nh_topo_free(&t);
}

static void test_sysfs_errors(void **state UNUSED) {
  nh_topo t;
  memset(&t, 0xa5, sizeof t);
  char root[4096];
  snprintf(root, sizeof root, "%s", data_path("sysroot-badnodes"));
  assert_int_equal(nh_topo_load_sysfs(&t, root, err, sizeof err), -1);
  assert_true(is_zeroed(&t));
  if (!strstr(err, "real topology: ") || !strstr(err, "sysroot-badnodes/node/online lists no node"))
    fail_msg("error \"%s\"", err);
}

/* ---- the real machine, by both readers -------------------------------------------- */

static void load_real(nh_topo *t, nh_topo_discovery d) {
  nh_topo_source src = {.kind = NH_TOPO_REAL, .discovery = d};
  err[0] = '\0';
  if (nh_topo_load(t, &src, err, sizeof err) != 0) fail_msg("real machine: %s", err);
}

/* Every field but `via`. */
static void assert_same_topo(const nh_topo *a, const nh_topo *b) {
  assert_int_equal(a->kind, b->kind);
  assert_int_equal(a->nnodes, b->nnodes);
  assert_int_equal(a->npackages, b->npackages);
  assert_int_equal(a->ncpu_slots, b->ncpu_slots);
  assert_int_equal(a->ncpus, b->ncpus);
  assert_int_equal(a->dist_derived, b->dist_derived);
  assert_memory_equal(a->cpu_node, b->cpu_node, sizeof(int) * (size_t)a->ncpu_slots);
  assert_memory_equal(a->dist, b->dist, sizeof(uint32_t) * (size_t)a->nnodes * (size_t)a->nnodes);
  for (int i = 0; i < a->nnodes; i++) {
    assert_int_equal(a->nodes[i].os_index, b->nodes[i].os_index);
    assert_int_equal(a->nodes[i].bind_os_node, b->nodes[i].bind_os_node);
    assert_int_equal(a->nodes[i].package, b->nodes[i].package);
    assert_int_equal(a->nodes[i].ncpus, b->nodes[i].ncpus);
    assert_int_equal(a->nodes[i].mem_bytes, b->nodes[i].mem_bytes);
    assert_fallback(b, i, a->nodes[i].fallback);
  }
}

/* The /sys reader gives the value hwloc gives (on this machine; the VM
 * tests run the same comparison on several nodes: tests/vm). */
static void test_real_sysfs_equals_hwloc(void **state UNUSED) {
  nh_topo by_hwloc, by_sys;
  load_real(&by_hwloc, NH_DISCOVERY_HWLOC);
  load_real(&by_sys, NH_DISCOVERY_SYSFS);
  assert_int_equal(by_hwloc.via, NH_DISCOVERY_HWLOC);
  assert_int_equal(by_sys.via, NH_DISCOVERY_SYSFS);
  assert_same_topo(&by_hwloc, &by_sys);
  nh_topo_free(&by_hwloc);
  nh_topo_free(&by_sys);
}

/* auto: hwloc only where /sys lists more than one online node. */
static void test_real_auto(void **state UNUSED) {
  char online[4096];
  int multi = 0;
  FILE *f = fopen("/sys/devices/system/node/online", "r");
  if (f && fgets(online, sizeof online, f)) multi = strchr(online, '-') || strchr(online, ',');
  if (f) fclose(f);
  nh_topo t;
  load_real(&t, NH_DISCOVERY_AUTO);
  assert_int_equal(t.via, multi ? NH_DISCOVERY_HWLOC : NH_DISCOVERY_SYSFS);
  nh_topo_free(&t);
}

/* An hwloc that cannot be loaded: the real machine is read from /sys, with a
 * warning naming the library; a synthetic topology fails naming it. */
static void test_hwloc_missing(void **state UNUSED) {
  nh_topo t;
  nh_topo_source src = {.kind = NH_TOPO_REAL, .discovery = NH_DISCOVERY_HWLOC,
                        .hwloc_soname = "libnumaheap-test-no-hwloc.so.15"};
  assert_int_equal(nh_topo_load(&t, &src, err, sizeof err), 0);
  assert_int_equal(t.via, NH_DISCOVERY_SYSFS);
  if (!strstr(t.warning, "real topology: cannot load libnumaheap-test-no-hwloc.so.15 (") ||
      !strstr(t.warning, "; read from /sys instead, without hwloc"))
    fail_msg("warning \"%s\"", t.warning);
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  nh_topo_print(&t, out, 0);
  fclose(out);
  if (!strstr(buf, "topology: real via sysfs, ") || !strstr(buf, "\nwarning: real topology: cannot load"))
    fail_msg("printed \"%s\"", buf);
  free(buf);
  nh_topo_free(&t);

  memset(&t, 0xa5, sizeof t);
  src = (nh_topo_source){.kind = NH_TOPO_SYNTHETIC, .spec = "numa:2 pu:1",
                         .hwloc_soname = "libnumaheap-test-no-hwloc.so.15"};
  assert_int_equal(nh_topo_load(&t, &src, err, sizeof err), -1);
  assert_true(is_zeroed(&t));
  if (!strstr(err, "synthetic topology \"numa:2 pu:1\": cannot load libnumaheap-test-no-hwloc.so.15 ("))
    fail_msg("error \"%s\"", err);
}

/* ---- errors ------------------------------------------------------------------------ */

static void expect_error(nh_topo_kind kind, const char *spec, int real_nodes, const char *want) {
  nh_topo t;
  memset(&t, 0xa5, sizeof t);
  nh_topo_source src = {.kind = kind, .spec = spec, .real_nodes = real_nodes};
  err[0] = '\0';
  assert_int_equal(nh_topo_load(&t, &src, err, sizeof err), -1);
  assert_true(is_zeroed(&t));
  if (!strstr(err, want)) fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_errors(void **state UNUSED) {
  nh_topo t0;
  expect_error(NH_TOPO_SYNTHETIC, "foo:2", 0, "synthetic topology \"foo:2\": hwloc could not parse it");
  assert_string_equal(err, "synthetic topology \"foo:2\": hwloc could not parse it");
  expect_error(NH_TOPO_SYNTHETIC, "package:2 numa:x", 0, "hwloc could not parse it");
  expect_error(NH_TOPO_SYNTHETIC, NULL, 0, "synthetic topology \"\": no synthetic string given");
  expect_error(NH_TOPO_SYNTHETIC, "numa:2 pu:1", -1, "real_nodes is -1; it must be >= 0");

  char path[4096];
  snprintf(path, sizeof path, "%s", data_path("missing.xml"));
  char want[4200];
  snprintf(want, sizeof want, "XML topology \"%s\": hwloc could not read it (No such file", path);
  expect_error(NH_TOPO_XML, path, 0, want);
  expect_error(NH_TOPO_XML, data_path("bad.xml"), 0, "bad.xml\": hwloc could not parse it");
  expect_error(NH_TOPO_XML, data_path("nonuma.xml"), 0, "nonuma.xml\": hwloc could not parse it");
  expect_error(NH_TOPO_XML, "", 0, "XML topology \"\": no file name given");
  expect_error((nh_topo_kind)7, "x", 0, "unknown source kind 7");
  nh_topo_source bad = {.kind = NH_TOPO_REAL, .discovery = (nh_topo_discovery)5};
  assert_int_equal(nh_topo_load(&t0, &bad, err, sizeof err), -1);
  assert_string_equal(err, "real topology: unknown discovery 5");

  /* A short buffer gets a truncated, terminated message. */
  nh_topo t;
  nh_topo_source src = {.kind = NH_TOPO_SYNTHETIC, .spec = "foo:2"};
  char small[12];
  assert_int_equal(nh_topo_load(&t, &src, small, sizeof small), -1);
  assert_string_equal(small, "synthetic t");
}

/* ---- binding of simulated nodes ------------------------------------------------------ */

static void expect_binding(int real_nodes, const int *ids, const int *want) {
  nh_topo t;
  load_src(&t, NH_TOPO_SYNTHETIC, "package:2 numa:3 core:1 pu:1", real_nodes, ids);
  for (int i = 0; i < 6; i++)
    if (t.nodes[i].bind_os_node != want[i])
      fail_msg("real_nodes %d: node %d binds to %d, want %d", real_nodes, i,
               t.nodes[i].bind_os_node, want[i]);
  nh_topo_free(&t);
}

static void test_binding(void **state UNUSED) {
  static const int two[6] = {0, 1, 0, 1, 0, 1}, three[6] = {0, 1, 2, 0, 1, 2};
  static const int ids[2] = {0, 2}, even[6] = {0, 2, 0, 2, 0, 2};
  static const int one[6] = {0, 0, 0, 0, 0, 0};
  expect_binding(2, NULL, two);
  expect_binding(3, NULL, three);
  expect_binding(2, ids, even);
  expect_binding(1, NULL, one);

  /* real_nodes 0: the real nodes with memory, ascending, round robin. */
  int mem[64], nmem = 0;
  for (int n = 0; n < nh_os_real_node_slots() && nmem < 64; n++)
    if (nh_os_real_node_has_memory(n)) mem[nmem++] = n;
  assert_true(nmem >= 1);
  int want[6];
  for (int i = 0; i < 6; i++) want[i] = mem[i % nmem];
  expect_binding(0, NULL, want);
}

/* ---- printing ------------------------------------------------------------------------- */

static char *print_to_string(const nh_topo *t, int json) {
  static char buf[65536];
  FILE *f = fmemopen(buf, sizeof buf, "w");
  assert_non_null(f);
  nh_topo_print(t, f, json);
  assert_false(ferror(f));
  fclose(f);
  return buf;
}

static void expect_in(const char *text, const char *want) {
  if (!strstr(text, want)) fail_msg("output lacks \"%s\":\n%s", want, text);
}

static void test_print_text(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "package:2 numa:1 core:2 pu:1");
  char *s = print_to_string(&t, 0);
  expect_in(s, "topology: synthetic, 2 nodes, 2 packages, 4 CPUs (ids below 4), distances derived");
  expect_in(s, "node 0: os 0, bind 0, package 0, cpus 0-1, memory 1024 MiB, fallback 1\n");
  expect_in(s, "node 1: os 1, bind 0, package 1, cpus 2-3, memory 1024 MiB, fallback 0\n");
  expect_in(s, "distances:\n         0    1\n   0:   10   30\n   1:   30   10\n");
  nh_topo_free(&t);

  load_xml(&t, "sparse.xml");
  s = print_to_string(&t, 0);
  expect_in(s, "node 0: os 0, bind 0, package 0, cpus 0-1,8-9, memory 1024 MiB, fallback 1\n");
  expect_in(s, "node 1: os 5, bind 0, package 1, cpus 130-131,140, memory 3072 MiB");
  nh_topo_free(&t);

  load_xml(&t, "cpuless.xml");
  s = print_to_string(&t, 0);
  expect_in(s, "node 3: os 3, bind 0, package -, cpus -, memory 4096 MiB, fallback 0 1 2\n");
  nh_topo_free(&t);
}

static void test_print_json(void **state UNUSED) {
  nh_topo t;
  load_synthetic(&t, "package:2 numa:1 core:2 pu:1");
  char *s = print_to_string(&t, 1);
  assert_string_equal(
      s, "{\"source\":\"synthetic\",\"npackages\":2,\"ncpus\":4,\"ncpu_slots\":4,\"nodes\":["
         "{\"node\":0,\"os_index\":0,\"bind_os_node\":0,\"package\":0,\"cpus\":\"0-1\","
         "\"ncpus\":2,\"memory\":1073741824,\"fallback\":[1]},"
         "{\"node\":1,\"os_index\":1,\"bind_os_node\":0,\"package\":1,\"cpus\":\"2-3\","
         "\"ncpus\":2,\"memory\":1073741824,\"fallback\":[0]}],"
         "\"distances\":[[10,30],[30,10]],\"distances_derived\":true}");
  nh_topo_free(&t);

  load_xml(&t, "asym4.xml");
  s = print_to_string(&t, 1);
  expect_in(s, "\"source\":\"xml\"");
  expect_in(s, "\"fallback\":[2,3,1]");
  expect_in(s, "\"distances\":[[10,21,20,20],[12,10,12,30],[20,20,10,20],[30,12,12,10]]");
  expect_in(s, "\"distances_derived\":false}");
  nh_topo_free(&t);

  load_synthetic(&t, "core:1 pu:1");
  s = print_to_string(&t, 1);
  expect_in(s, "\"package\":-1,\"cpus\":\"0\",\"ncpus\":1,");
  expect_in(s, "\"fallback\":[]}]");
  nh_topo_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_synthetic_one_node),
      cmocka_unit_test(test_synthetic_two_nodes),
      cmocka_unit_test(test_synthetic_four_nodes),
      cmocka_unit_test(test_synthetic_eight_nodes),
      cmocka_unit_test(test_synthetic_sixteen_nodes),
      cmocka_unit_test(test_synthetic_72_nodes),
      cmocka_unit_test(test_synthetic_memory_attribute),
      cmocka_unit_test(test_xml_asymmetric_distances),
      cmocka_unit_test(test_xml_cpuless_nodes),
      cmocka_unit_test(test_xml_memoryless_node),
      cmocka_unit_test(test_xml_sparse_cpus),
      cmocka_unit_test(test_xml_memory_side_cache),
      cmocka_unit_test(test_synthetic_cpuless_nodes),
      cmocka_unit_test(test_sys_distances),
      cmocka_unit_test(test_real_machine),
      cmocka_unit_test(test_sysfs_fixture),
      cmocka_unit_test(test_sysfs_without_numa),
      cmocka_unit_test(test_sysfs_errors),
      cmocka_unit_test(test_real_sysfs_equals_hwloc),
      cmocka_unit_test(test_real_auto),
      cmocka_unit_test(test_hwloc_missing),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_binding),
      cmocka_unit_test(test_print_text),
      cmocka_unit_test(test_print_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
