/*
 * tests/vm/vm_huge.c: huge pages per node ([heap] huge_pages) on a real
 * multi-node VM, judged by the kernel (move_pages(2), /proc/self/smaps,
 * the per-node hugepage counters in /sys).
 *
 *   vm_huge --layout NAME --expect SPEC [CHECK...]
 *
 * CHECK is one of (default: small, thp, then hugetlb):
 *   small    the kernel's THP is set to `always` (Debian's and RHEL's
 *            default), and in a child with the default configuration the
 *            main thread, pinned to each node's first CPU in turn, allocates
 *            a few hundred small blocks: no mapping of the process has
 *            AnonHugePages (a node's first segments, the segment map, the
 *            per-CPU regions and the start-up region stay on base pages;
 *            before 2026-12-03 such a program's peak RSS was 5.9 MB on the
 *            8node layout, 2 MiB pages of the segment map and the regions);
 *            the setting is restored after;
 *   thp      the kernel's THP is made available (`madvise` written to
 *            /sys/kernel/mm/transparent_hugepage/enabled when it is `never`);
 *            then, in a child started with huge_pages = thp, a thread pinned
 *            to each node's first CPU allocates an 8 MiB block and fills it:
 *            every page is on that node, the block's mapping shows
 *            AnonHugePages in /proc/self/smaps (at least 4 MiB of it), and
 *            the statistics say thp is in force and count the bytes;
 *   hugetlb  8 huge pages of 2 MiB are reserved on node 0 only (its
 *            nr_hugepages in /sys); in a child started with huge_pages =
 *            hugetlb, a thread on node 0 gets a 6 MiB block backed by them
 *            (node 0's free_hugepages drops by at least 4, the pages are on
 *            node 0, hugetlb_bytes counts them), and a thread on node 1, which
 *            has none reserved, gets an 8 MiB - 64 KiB block on node 1 from a
 *            thp mapping with the fall back counted (hugetlb_fallbacks).
 *
 * Logical node i of numaheap is the i-th OS node in increasing order.
 */
#include "vmnh.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <numaheap/numaheap.h>

#define MIB ((size_t)1 << 20)

static const char thp_path[] = "/sys/kernel/mm/transparent_hugepage/enabled";

static vm_topo topo;        /* the kernel's view; read once in main */
static const char *me;      /* argv[0], for the children; set once in main */
static const vm_args *args; /* set once in main */

/* ---- helpers ------------------------------------------------------------------ */

static int read_text(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
  return 0;
}

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  int rc = fputs(text, f) < 0 ? -1 : 0;
  return fclose(f) != 0 ? -1 : rc;
}

static long node_hugepages(int os_node, const char *what) {
  char path[160], buf[64];
  snprintf(path, sizeof path, "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/%s",
           os_node, what);
  return read_text(path, buf, sizeof buf) == 0 ? atol(buf) : -1;
}

/* AnonHugePages (KiB) from /proc/self/smaps: of the mapping holding p, or
 * -1 if no mapping holds it; with p NULL, the sum over every mapping, and
 * where (when not NULL) gets the header line of the first that has any. */
static long anon_huge(const void *p, char *where, size_t cap) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return -1;
  char line[512], head[512] = "";
  int inside = 0;
  long total = p ? -1 : 0, kib;
  if (where) where[0] = '\0';
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = p && (uintptr_t)p >= lo && (uintptr_t)p < hi;
      snprintf(head, sizeof head, "%s", line);
      continue;
    }
    if (sscanf(line, "AnonHugePages: %ld kB", &kib) != 1) continue;
    if (inside) {
      total = kib;
      break;
    }
    if (p == NULL && kib > 0) {
      total += kib;
      if (where && !where[0]) snprintf(where, cap, "%.*s", (int)strcspn(head, "\n"), head);
    }
  }
  fclose(f);
  return total;
}

static nh_node_stats node_stats(int node, int *mode) {
  static nh_stats st;
  vm_nh_stats(&st);
  if (mode) *mode = st.huge_pages;
  return st.nodes[node];
}

/* Fills a block of size on the calling thread and checks its pages are on
 * os_node. */
static unsigned char *block_on(const char *check, size_t size, int os_node) {
  unsigned char *p = malloc(size);
  if (p == NULL) vm_fail(check, "malloc(%zu) failed", size);
  memset(p, 0x5a, size);
  const void *bad;
  int bad_node;
  long off = vm_range_off_node(p, size, os_node, &bad, &bad_node);
  if (off != 0)
    vm_fail(check, "%ld pages of the %zu-byte block %p not on OS node %d (first %p on %d)", off,
            size, (void *)p, os_node, bad, bad_node);
  return p;
}

/* ---- thp ------------------------------------------------------------------------ */

static void thp_body(void *arg) {
  int i = *(const int *)arg, mode;
  unsigned char *p = block_on("thp", 8 * MIB, topo.os_id[i]);
  long kib = anon_huge(p, NULL, 0);
  if (kib < 4096) vm_fail("thp", "node %d: the 8 MiB block's mapping has AnonHugePages %ld kB", i, kib);
  nh_node_stats s = node_stats(i, &mode);
  if (mode != 1 || s.thp_bytes < 8 * MIB)
    vm_fail("thp", "node %d: statistics say mode %d, thp_bytes %llu", i, mode,
            (unsigned long long)s.thp_bytes);
  vm_ok("thp", "node %d: 8 MiB block on its node, AnonHugePages %ld kB, thp_bytes %llu", i, kib,
        (unsigned long long)s.thp_bytes);
  free(p);
}

static void check_thp_child(void) {
  for (int i = 0; i < topo.nnodes; i++) {
    int cpu = vm_first_cpu(&topo, i);
    if (cpu >= 0 && topo.mem_kib[i] > 0) vm_run_on_cpu(cpu, thp_body, &i);
  }
}

static void check_thp(void) {
  char buf[128];
  if (read_text(thp_path, buf, sizeof buf) != 0) vm_fail("thp", "the kernel has no THP (%s)", thp_path);
  if (strstr(buf, "[never]") && write_text(thp_path, "madvise") != 0)
    vm_fail("thp", "cannot write madvise to %s: %s", thp_path, strerror(errno));
  read_text(thp_path, buf, sizeof buf);
  buf[strcspn(buf, "\n")] = '\0';
  vm_ok("thp", "THP enabled: %s", buf);
  vm_run_config_child("thp", "/tmp/vm_huge_thp.ini", "[heap]\nhuge_pages = thp\n", me, args,
                      "thp-child");
}

/* ---- small -------------------------------------------------------------------- */

static void check_small_child(void) {
  static void *kept[8][300];
  int nodes = 0;
  for (int i = 0; i < topo.nnodes && i < 8; i++) {
    int cpu = vm_first_cpu(&topo, i);
    if (cpu < 0 || vm_pin_cpu(cpu) != 0) continue;
    for (int k = 0; k < 300; k++)
      if ((kept[i][k] = malloc(16 + (size_t)(k % 40) * 24)) == NULL) vm_fail("small", "malloc failed");
    for (int k = 0; k < 300; k += 2) free(kept[i][k]);
    nodes++;
  }
  char where[512];
  long kib = anon_huge(NULL, where, sizeof where);
  if (kib != 0) vm_fail("small", "AnonHugePages %ld kB in a small program, first in %s", kib, where);
  vm_ok("small", "blocks on %d nodes' CPUs, no mapping has AnonHugePages", nodes);
}

static void check_small(void) {
  char was[128];
  if (read_text(thp_path, was, sizeof was) != 0) vm_fail("small", "the kernel has no THP");
  if (write_text(thp_path, "always") != 0)
    vm_fail("small", "cannot write always to %s: %s", thp_path, strerror(errno));
  vm_ok("small", "THP set to always (was %.*s)", (int)strcspn(was, "\n"), was);
  vm_run_config_child("small", "/tmp/vm_huge_small.ini", "[heap]\nhuge_pages = thp\n", me, args,
                      "small-child");
  const char *mode = strstr(was, "[always]") ? "always" : strstr(was, "[never]") ? "never" : "madvise";
  if (write_text(thp_path, mode) != 0) vm_fail("small", "cannot restore %s", thp_path);
}

/* ---- hugetlb ---------------------------------------------------------------------- */

static void hugetlb_reserved_body(void *arg) {
  (void)arg;
  long before = node_hugepages(topo.os_id[0], "free_hugepages");
  unsigned char *p = block_on("hugetlb", 6 * MIB, topo.os_id[0]);
  long after = node_hugepages(topo.os_id[0], "free_hugepages");
  int mode;
  nh_node_stats s = node_stats(0, &mode);
  if (mode != 2 || before - after < 4 || s.hugetlb_bytes < 8 * MIB)
    vm_fail("hugetlb", "node 0: mode %d, free huge pages %ld -> %ld, hugetlb_bytes %llu", mode,
            before, after, (unsigned long long)s.hugetlb_bytes);
  vm_ok("hugetlb", "node 0: 6 MiB block on reserved huge pages (free %ld -> %ld, hugetlb_bytes %llu)",
        before, after, (unsigned long long)s.hugetlb_bytes);
  free(p);
}

static void hugetlb_fallback_body(void *arg) {
  int i = *(const int *)arg;
  /* the fall back is thp, which advises a huge block only where it leaves
   * empty at most a quarter of its size in the last 2 MiB unit it reaches
   * (numa/huge.c huge_pages_pay): this block, after the 64 KiB header page,
   * ends on a unit's end; a 6 MiB block would leave 1.94 MiB empty */
  unsigned char *p = block_on("hugetlb", 8 * MIB - 64 * 1024, topo.os_id[i]);
  nh_node_stats s = node_stats(i, NULL);
  if (s.hugetlb_fallbacks < 1 || s.hugetlb_bytes != 0 || s.thp_bytes < 8 * MIB)
    vm_fail("hugetlb", "node %d (none reserved): hugetlb_fallbacks %llu, hugetlb_bytes %llu, "
            "thp_bytes %llu", i, (unsigned long long)s.hugetlb_fallbacks,
            (unsigned long long)s.hugetlb_bytes, (unsigned long long)s.thp_bytes);
  vm_ok("hugetlb", "node %d: none reserved, block on its node from thp, %llu fall backs counted", i,
        (unsigned long long)s.hugetlb_fallbacks);
  free(p);
}

static void check_hugetlb_child(void) {
  int one = 1;
  vm_run_on_cpu(vm_first_cpu(&topo, 0), hugetlb_reserved_body, NULL);
  vm_run_on_cpu(vm_first_cpu(&topo, 1), hugetlb_fallback_body, &one);
}

static void check_hugetlb(void) {
  for (int i = 0; i < topo.nnodes; i++) {
    char path[160];
    snprintf(path, sizeof path,
             "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/nr_hugepages",
             topo.os_id[i]);
    if (write_text(path, i == 0 ? "8" : "0") != 0)
      vm_fail("hugetlb", "cannot write %s: %s", path, strerror(errno));
  }
  long free0 = node_hugepages(topo.os_id[0], "free_hugepages");
  if (free0 < 8) vm_fail("hugetlb", "node 0 reserved only %ld of 8 huge pages", free0);
  vm_ok("hugetlb", "8 huge pages reserved on node 0, %ld on node 1", node_hugepages(topo.os_id[1],
                                                                                     "free_hugepages"));
  vm_run_config_child("hugetlb", "/tmp/vm_huge_tlb.ini", "[heap]\nhuge_pages = hugetlb\n", me, args,
                      "hugetlb-child");
}

/* ---- main --------------------------------------------------------------------------- */

static const vm_check checks[] = {
    {"small", check_small, 1},
    {"thp", check_thp, 1},
    {"hugetlb", check_hugetlb, 1},
    {"small-child", check_small_child, 0},
    {"thp-child", check_thp_child, 0},
    {"hugetlb-child", check_hugetlb_child, 0},
};

int main(int argc, char **argv) {
  static vm_args a;
  vm_start_topo(argc, argv, &a, &topo);
  me = argv[0];
  args = &a;
  if (topo.nnodes < 2) vm_fail("topology", "needs 2 nodes, the kernel shows %d", topo.nnodes);
  vm_run_checks(checks, sizeof checks / sizeof *checks, &a);
  return 0;
}
