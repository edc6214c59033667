/*
 * tests/vm/vm_host.c: the CLR host API (numaheap/hostmem.h) on a real
 * multi-node VM, judged by the kernel (move_pages(2) and the distance table
 * in /sys/devices/system/node).
 *
 *   vm_host --layout NAME --expect SPEC [CHECK...]
 *
 * CHECK is one of the names below (default: all, in this order):
 *   alloc-local  a thread pinned to each CPU gets 64 B, 64 KiB and 4 MiB blocks
 *                from IHostMalloc::Alloc (CreateMalloc(MALLOC_THREADSAFE)) at
 *                each criticality level: every page on that CPU's node, and
 *                nh_ptr_node() agrees with the kernel;
 *   virtual      VirtualAlloc(MEM_RESERVE), then MEM_COMMIT of 1 MiB chunks
 *                from a thread on each node: the pages are on that node;
 *                MEM_DECOMMIT drops them, and a recommit from a CPU of
 *                another node puts them on that other node (the chunks not
 *                decommitted stay where they were);
 *   levels       in a child process started with a config of small budgets
 *                (levels_ini), a thread on node 0 allocates 64 KiB blocks at
 *                eTaskCritical, then eAppDomainCritical, then
 *                eProcessCritical, each until E_OUTOFMEMORY: task blocks stay
 *                on node 0 up to its task limit, then go to node 0's package
 *                only; appdomain blocks fill node 0, then spill by increasing
 *                distance (the kernel's table); process blocks take node 0's
 *                reserve and never leave node 0 (spill none). Every failure
 *                is E_OUTOFMEMORY with *ppMem == NULL, and comes only when
 *                every node the level may use is at the level's limit.
 *
 * Logical node i of numaheap is the i-th OS node in increasing order; the
 * layouts this runs on (2node, 4node) have memory on every node.
 */
#include "vmnh.h"

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <numaheap/hostmem.h>
#include <numaheap/numaheap.h>

#define MIB ((size_t)1 << 20)

static vm_topo topo;               /* the kernel's view; read once in main, then read-only */
static const char *me;             /* argv[0], for the levels child; set once in main */
static const vm_args *args;        /* set once in main */
static IHostMemoryManager *mgr;    /* set once in main, before any thread */
static IHostMalloc *hmalloc;       /* CreateMalloc(MALLOC_THREADSAFE); set once in main */

static const char *const level_name[] = {"eTaskCritical", "eAppDomainCritical",
                                         "eProcessCritical"};

/* ---- alloc-local -------------------------------------------------------------- */

static const size_t sizes[] = {64, 64u << 10, 4u << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define NLEVELS 3
/* Blocks per size and level: one large one, so a 256 MiB node holds them. */
static const int per_size[NSIZES] = {8, 4, 1};

static void alloc_local_body(void *arg) {
  int cpu = *(int *)arg, node = vm_mem_home(&topo, vm_nh_here_node(&topo, "alloc-local"));
  void *blk[NLEVELS][NSIZES][8];
  char what[96];
  for (int lv = 0; lv < NLEVELS; lv++) {
    snprintf(what, sizeof what, "Alloc(%s) on CPU %d", level_name[lv], cpu);
    for (size_t s = 0; s < NSIZES; s++) {
      for (int k = 0; k < per_size[s]; k++) {
        void *p = NULL;
        HRESULT hr = IHostMalloc_Alloc(hmalloc, sizes[s], (EMemoryCriticalLevel)lv, &p);
        if (hr != S_OK || p == NULL)
          vm_fail("alloc-local", "%s of %zu bytes: HRESULT 0x%08x, block %p", what, sizes[s],
                  (unsigned)hr, p);
        if ((uintptr_t)p % 16 != 0)
          vm_fail("alloc-local", "%s: block %p is not 16-byte aligned", what, p);
        vm_nh_block_on(&topo, "alloc-local", what, p, sizes[s], node);
        blk[lv][s][k] = p;
      }
    }
  }
  for (int lv = 0; lv < NLEVELS; lv++) {
    for (size_t s = 0; s < NSIZES; s++) {
      for (int k = 0; k < per_size[s]; k++) {
        HRESULT hr = IHostMalloc_Free(hmalloc, blk[lv][s][k]);
        if (hr != S_OK)
          vm_fail("alloc-local", "Free(%p): HRESULT 0x%08x", blk[lv][s][k], (unsigned)hr);
      }
    }
  }
}

static void check_alloc_local(void) {
  int ncpu = vm_run_on_each_cpu(&topo, alloc_local_body);
  vm_ok("alloc-local", "%d CPUs: Alloc of 64 B, 64 KiB, 4 MiB at each level on the CPU's node",
        ncpu);
}

/* ---- virtual ------------------------------------------------------------------ */

#define VIRT_CHUNKS 4 /* 1 MiB chunks committed one by one */
#define VIRT_AGAIN 2  /* the first chunks, decommitted and committed again elsewhere */

struct virt { char *base; int node; };

static void virt_commit(const char *what, char *at, size_t len, int level) {
  void *p = NULL;
  HRESULT hr = IHostMemoryManager_VirtualAlloc(mgr, at, len, MEM_COMMIT, PAGE_READWRITE,
                                               (EMemoryCriticalLevel)level, &p);
  if (hr != S_OK || p != at)
    vm_fail("virtual", "%s: VirtualAlloc(%p, %zu, MEM_COMMIT, %s): HRESULT 0x%08x, address %p",
            what, at, len, level_name[level], (unsigned)hr, p);
  vm_touch(at, len);
}

static void virt_expect_state(char *at, DWORD state) {
  MEMORY_BASIC_INFORMATION mbi;
  SIZE_T got = 0;
  HRESULT hr = IHostMemoryManager_VirtualQuery(mgr, at, &mbi, sizeof mbi, &got);
  if (hr != S_OK || got != sizeof mbi || mbi.State != state)
    vm_fail("virtual", "VirtualQuery(%p): HRESULT 0x%08x, %zu bytes, state 0x%x (want 0x%x)", at,
            (unsigned)hr, (size_t)got, (unsigned)mbi.State, (unsigned)state);
}

/* On the reserving node: reserve, commit chunk by chunk (levels in turn). */
static void virt_first_body(void *arg) {
  struct virt *v = arg;
  v->node = vm_mem_home(&topo, vm_nh_here_node(&topo, "virtual"));
  void *p = NULL;
  HRESULT hr = IHostMemoryManager_VirtualAlloc(mgr, NULL, VIRT_CHUNKS * MIB, MEM_RESERVE,
                                               PAGE_READWRITE, eAppDomainCritical, &p);
  if (hr != S_OK || p == NULL)
    vm_fail("virtual", "VirtualAlloc(NULL, %zu, MEM_RESERVE): HRESULT 0x%08x", VIRT_CHUNKS * MIB,
            (unsigned)hr);
  v->base = p;
  for (int k = 0; k < VIRT_CHUNKS; k++) {
    char *at = v->base + (size_t)k * MIB;
    virt_commit("first commit", at, MIB, k % NLEVELS);
    vm_nh_pages_on(&topo, "virtual", "committed chunk", at, MIB, v->node);
  }
  virt_expect_state(v->base, MEM_COMMIT);
}

/* Decommits the first chunks: no page of them may be left. */
static void virt_decommit(struct virt *v) {
  HRESULT hr = IHostMemoryManager_VirtualFree(mgr, v->base, VIRT_AGAIN * MIB, MEM_DECOMMIT);
  if (hr != S_OK) vm_fail("virtual", "VirtualFree(%p, MEM_DECOMMIT): HRESULT 0x%08x", v->base,
                          (unsigned)hr);
  virt_expect_state(v->base, MEM_RESERVE);
  for (size_t off = 0; off < VIRT_AGAIN * MIB; off += VM_PAGE) {
    int os = vm_page_node(v->base + off);
    if (os >= 0)
      vm_fail("virtual", "decommitted page %p is still present on OS node %d", v->base + off, os);
  }
}

/* On another node: commit the decommitted chunks again. */
static void virt_again_body(void *arg) {
  struct virt *v = arg;
  int node = vm_mem_home(&topo, vm_nh_here_node(&topo, "virtual"));
  virt_commit("recommit", v->base, VIRT_AGAIN * MIB, eTaskCritical);
  vm_nh_pages_on(&topo, "virtual", "recommitted chunk", v->base, VIRT_AGAIN * MIB, node);
  vm_nh_pages_on(&topo, "virtual", "chunk not decommitted", v->base + VIRT_AGAIN * MIB,
           (VIRT_CHUNKS - VIRT_AGAIN) * MIB, v->node);
}

/* The next node after n (in a ring) with CPUs and a different memory home. */
static int other_node(int n) {
  for (int i = 1; i < topo.nnodes; i++) {
    int m = (n + i) % topo.nnodes;
    if (topo.ncpus[m] > 0 && vm_mem_home(&topo, m) != vm_mem_home(&topo, n)) return m;
  }
  return -1;
}

static void check_virtual(void) {
  for (int n = 0; n < topo.nnodes; n++) {
    int m = other_node(n);
    if (topo.ncpus[n] == 0 || m < 0) continue;
    struct virt v = {NULL, -1};
    vm_run_on_cpu(vm_first_cpu(&topo, n), virt_first_body, &v);
    virt_decommit(&v);
    vm_run_on_cpu(vm_first_cpu(&topo, m), virt_again_body, &v);
    HRESULT hr = IHostMemoryManager_VirtualFree(mgr, v.base, 0, MEM_RELEASE);
    if (hr != S_OK) vm_fail("virtual", "VirtualFree(%p, 0, MEM_RELEASE): HRESULT 0x%08x", v.base,
                            (unsigned)hr);
    vm_ok("virtual", "%d x 1 MiB committed on node %d; %d MiB decommitted, recommitted from node "
          "%d landed there", VIRT_CHUNKS, n, VIRT_AGAIN, m);
  }
}

/* ---- levels (runs in a child with its own config) ----------------------------- */

#define LV_BLOCK (64u << 10)
#define LV_BUDGET_MIB 48
#define LV_RESERVE_MIB 8
#define LV_TASK_PCT 50
#define LV_MAX 4096
/* What a heap may leave unused at a limit's edge: a new span (8 pages of
 * 64 KiB for this block size) plus a segment header page, rounded up. */
#define LV_SLACK ((uint64_t)1 << 20)

#define LV_STR2(x) #x
#define LV_STR(x) LV_STR2(x)

/* Limits on each node: task 20 MiB, appdomain 40 MiB, process 48 MiB. */
static const char levels_ini[] =
    "# written by tests/vm/vm_host.c (levels)\n"
    "[heap]\nbudget = " LV_STR(LV_BUDGET_MIB) "M\nreserve = " LV_STR(LV_RESERVE_MIB) "M\n"
    "[criticality]\ntask.limit = " LV_STR(LV_TASK_PCT) "%\ntask.spill = package\n"
    "appdomain.spill = any\nprocess.spill = none\n";

static uint64_t level_limit(int level) {
  uint64_t normal = (uint64_t)(LV_BUDGET_MIB - LV_RESERVE_MIB) << 20;
  if (level == eTaskCritical) return normal * LV_TASK_PCT / 100;
  return level == eAppDomainCritical ? normal : (uint64_t)LV_BUDGET_MIB << 20;
}

/* Blocks in allocation order (all phases) and the node each landed on.
 * Written and read by the filler thread only. */
static void *lv_blk[LV_MAX];
static int lv_node[LV_MAX];
static int lv_total;
static int package_of[VM_MAX_NODES]; /* physical package of each node's CPUs; set in main */

struct phase {
  int level;
  const char *check;
  int first, count;      /* its blocks: lv_blk[first .. first+count) */
  int on0;               /* leading blocks on node 0 */
  uint64_t committed0;   /* node 0's committed bytes at its first spill */
  uint64_t failures0;    /* node 0's failures[level] before the phase */
  uint64_t fallback0;    /* node 0's fallback_out before the phase */
};

/* Physical package of the first CPU of entry i (sysfs), -1 if CPU-less. */
static int read_package(int i) {
  int cpu = vm_first_cpu(&topo, i), id = -1;
  char path[128];
  if (cpu < 0) return -1;
  snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
  FILE *f = fopen(path, "r");
  if (!f || fscanf(f, "%d", &id) != 1) vm_fail("sysfs", "cannot read %s", path);
  fclose(f);
  return id;
}

/* May a block of node 0 at this level be served by node m (the config's spill
 * scopes, packages as the kernel shows them)? */
static bool level_may_use(int level, int m) {
  if (m == 0) return true;
  if (topo.mem_kib[m] == 0) return false;
  if (level == eTaskCritical) return package_of[m] >= 0 && package_of[m] == package_of[0];
  return level == eAppDomainCritical;
}

/* Node of a freshly allocated block, by the kernel; all its pages must be
 * there and nh_ptr_node must agree. */
static int block_node(const struct phase *ph, void *p) {
  memset(p, 0x5a, LV_BLOCK);
  int os = vm_page_node(p), node = vm_entry_of_os_node(&topo, os);
  if (node < 0) vm_fail(ph->check, "block %p: move_pages gives %d", p, os);
  vm_nh_block_on(&topo, ph->check, "block", p, LV_BLOCK, node);
  return node;
}

/* Allocates blocks at ph->level until the first failure, which must be
 * E_OUTOFMEMORY with *ppMem set to NULL. */
static void phase_fill(struct phase *ph) {
  static nh_stats st;
  vm_nh_stats(&st);
  ph->failures0 = st.nodes[0].failures[ph->level];
  ph->fallback0 = st.nodes[0].fallback_out;
  ph->first = lv_total;
  for (;;) {
    if (lv_total == LV_MAX)
      vm_fail(ph->check, "%d blocks of %u bytes and still no E_OUTOFMEMORY", LV_MAX, LV_BLOCK);
    void *p = &lv_total; /* not NULL: Alloc must clear it on failure */
    HRESULT hr = IHostMalloc_Alloc(hmalloc, LV_BLOCK, (EMemoryCriticalLevel)ph->level, &p);
    if (hr != S_OK) {
      if (hr != E_OUTOFMEMORY || p != NULL)
        vm_fail(ph->check, "failed Alloc: HRESULT 0x%08x (want E_OUTOFMEMORY 0x%08x), *ppMem %p",
                (unsigned)hr, (unsigned)E_OUTOFMEMORY, p);
      break;
    }
    lv_blk[lv_total] = p;
    lv_node[lv_total] = block_node(ph, p);
    if (lv_node[lv_total] != 0 && ph->committed0 == 0) {
      vm_nh_stats(&st);
      ph->committed0 = st.nodes[0].committed;
    }
    lv_total++;
  }
  ph->count = lv_total - ph->first;
  while (ph->on0 < ph->count && lv_node[ph->first + ph->on0] == 0) ph->on0++;
}

/* Node 0 first, up to the level's limit; then only nodes the level may use,
 * never node 0 again, by non-decreasing distance from node 0. */
static void phase_check_order(const struct phase *ph) {
  uint64_t limit = level_limit(ph->level);
  if (ph->on0 < ph->count && ph->committed0 + LV_SLACK < limit)
    vm_fail(ph->check, "first spill (block %d, to node %d) when node 0 had committed %llu of "
            "its %s limit %llu", ph->on0, lv_node[ph->first + ph->on0],
            (unsigned long long)ph->committed0, level_name[ph->level], (unsigned long long)limit);
  int last = 10;
  for (int k = ph->on0; k < ph->count; k++) {
    int m = lv_node[ph->first + k], d = topo.dist[0][m];
    if (m == 0 || !level_may_use(ph->level, m))
      vm_fail(ph->check, "block %d went to node %d (package %d, node 0's is %d) after %d blocks "
              "on node 0: %s may not spill there", k, m, package_of[m], package_of[0], ph->on0,
              level_name[ph->level]);
    if (d < last)
      vm_fail(ph->check, "block %d went to node %d (distance %d) after a block at distance %d: "
              "spill must go to the nearest node first", k, m, d, last);
    last = d;
  }
}

/* node 0's counters: one more failure at the level, every spilled block
 * counted in fallback_out. */
static void phase_check_counters(const struct phase *ph, const nh_stats *st) {
  const nh_node_stats *n0 = &st->nodes[0];
  if (n0->failures[ph->level] <= ph->failures0)
    vm_fail(ph->check, "node 0's failures[%s] is still %llu after E_OUTOFMEMORY",
            level_name[ph->level], (unsigned long long)n0->failures[ph->level]);
  if (n0->fallback_out - ph->fallback0 < (uint64_t)(ph->count - ph->on0))
    vm_fail(ph->check, "node 0 spilled %d blocks but its fallback_out grew by %llu only",
            ph->count - ph->on0, (unsigned long long)(n0->fallback_out - ph->fallback0));
}

/* At the failure every node the level may use is at the limit (less the
 * slack), none above it, and the budgets are the config's. */
static void phase_check_full(const struct phase *ph) {
  static nh_stats st;
  uint64_t limit = level_limit(ph->level);
  vm_nh_stats(&st);
  phase_check_counters(ph, &st);
  for (int n = 0; n < topo.nnodes; n++) {
    const nh_node_stats *ns = &st.nodes[n];
    if (ns->budget != (uint64_t)LV_BUDGET_MIB << 20 ||
        ns->reserve != (uint64_t)LV_RESERVE_MIB << 20)
      vm_fail(ph->check, "node %d reports budget %llu reserve %llu, config says %d MiB and %d MiB",
              n, (unsigned long long)ns->budget, (unsigned long long)ns->reserve, LV_BUDGET_MIB,
              LV_RESERVE_MIB);
    if (!level_may_use(ph->level, n)) continue;
    if (ns->committed > limit || ns->committed + LV_SLACK < limit)
      vm_fail(ph->check, "E_OUTOFMEMORY at %s when node %d had committed %llu: want the limit "
              "%llu (less %llu at most)", level_name[ph->level], n,
              (unsigned long long)ns->committed, (unsigned long long)limit,
              (unsigned long long)LV_SLACK);
  }
}

/* "node 1: 312, node 2: 640" for the spilled blocks, in the order reached. */
static void spill_summary(const struct phase *ph, char *buf, size_t len) {
  size_t at = 0;
  buf[0] = '\0';
  for (int k = ph->on0; k < ph->count && at < len;) {
    int m = lv_node[ph->first + k], run = 0;
    for (; k < ph->count && lv_node[ph->first + k] == m; k++) run++;
    at += (size_t)snprintf(buf + at, len - at, "%snode %d: %d", at ? ", " : "", m, run);
  }
  if (at == 0) snprintf(buf, len, "none");
}

static void phase_run(int level, const char *check) {
  struct phase ph = {level, check, 0, 0, 0, 0, 0, 0};
  char spilled[256];
  phase_fill(&ph);
  phase_check_order(&ph);
  phase_check_full(&ph);
  spill_summary(&ph, spilled, sizeof spilled);
  vm_ok(check, "%s: %d blocks on node 0, then spilled to %s; E_OUTOFMEMORY with every node "
        "it may use at its limit %llu MiB", level_name[level], ph.on0, spilled,
        (unsigned long long)(level_limit(level) >> 20));
}

static void levels_body(void *arg) {
  (void)arg;
  if (vm_nh_here_node(&topo, "levels") != 0) vm_fail("levels", "filler thread is not on node 0");
  phase_run(eTaskCritical, "levels-task");
  phase_run(eAppDomainCritical, "levels-appdomain");
  phase_run(eProcessCritical, "levels-process");
  for (int k = 0; k < lv_total; k++) {
    HRESULT hr = IHostMalloc_Free(hmalloc, lv_blk[k]);
    if (hr != S_OK) vm_fail("levels", "Free(%p): HRESULT 0x%08x", lv_blk[k], (unsigned)hr);
  }
}

static void levels_child(void) {
  if (topo.ncpus[0] == 0 || topo.mem_kib[0] == 0)
    vm_fail("levels", "node 0 has no CPU to fill it from, or no memory");
  for (int n = 0; n < topo.nnodes; n++) package_of[n] = read_package(n);
  vm_run_on_cpu(vm_first_cpu(&topo, 0), levels_body, NULL);
}

/* Writes the config and runs "vm_host ... levels-child" with NUMAHEAP_CONFIG. */
static void check_levels(void) {
  vm_run_config_child("levels", "/tmp/vm_host_levels.ini", levels_ini, me, args, "levels-child");
}

/* ---- main ------------------------------------------------------------------------ */

static const vm_check checks[] = {
    {"alloc-local", check_alloc_local, 1},
    {"virtual", check_virtual, 1},
    {"levels", check_levels, 1},
    {"levels-child", levels_child, 0},
};

static void host_start(void) {
  HRESULT hr = NhCreateHostMemoryManager(&mgr);
  if (hr != S_OK || mgr == NULL)
    vm_fail("host", "NhCreateHostMemoryManager: HRESULT 0x%08x", (unsigned)hr);
  hr = IHostMemoryManager_CreateMalloc(mgr, MALLOC_THREADSAFE, &hmalloc);
  if (hr != S_OK || hmalloc == NULL)
    vm_fail("host", "CreateMalloc(MALLOC_THREADSAFE): HRESULT 0x%08x", (unsigned)hr);
}

int main(int argc, char **argv) {
  static vm_args a;
  vm_start_topo(argc, argv, &a, &topo);
  me = argv[0];
  args = &a;
  vm_nh_same_nodes(&topo, &a);
  host_start();
  vm_run_checks(checks, sizeof checks / sizeof *checks, &a);
  return 0;
}
