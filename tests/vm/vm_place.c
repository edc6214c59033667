/*
 * tests/vm/vm_place.c: numaheap's placement promises, judged by the kernel
 * (move_pages(2)) on a real multi-node VM.
 *
 *   vm_place --layout NAME --expect SPEC [CHECK...]
 *
 * CHECK is one of the names below (default: all, in this order):
 *   cpu-local    a thread pinned to each CPU gets 64 B, 64 KiB and 4 MiB blocks
 *                from nh_malloc and from malloc (numaheap's replacement) on
 *                that CPU's node, and nh_ptr_node() agrees with the kernel;
 *   node-alloc   nh_malloc_node(size, n) lands on n for every node, CPU-less
 *                nodes included, called from a CPU of another node;
 *   remote-free  blocks made on node A and freed on node B (whose caches are
 *                warm) go home: B's next allocations never come from A's
 *                memory; A's remote_frees counts them (all of them once
 *                nh_trim has drained the per-CPU remote buffers);
 *   migrate      a thread moved to another node is served there from its very
 *                next allocation on;
 *   fill         in a child process started with a config of small budgets, a
 *                thread on node 0 allocates until NULL: blocks stay on node 0
 *                until its budget is used, then spill by increasing distance
 *                (the kernel's table), and NULL/ENOMEM comes only when every
 *                node's budget is used.
 *
 * Logical node i of numaheap is the i-th OS node in increasing order. A
 * memory-less node's memory is its nearest node's (vm_mem_home): CPUs there
 * and nh_malloc_node for it are served from that node.
 */
#include "vmnh.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <numaheap/numaheap.h>

static vm_topo topo;      /* the kernel's view; read once in main, then read-only */
static const char *me;    /* argv[0], for the fill child; set once in main */
static const vm_args *args; /* set once in main */

static const size_t sizes[] = {64, 64u << 10, 4u << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* ---- helpers ------------------------------------------------------------------ */

/* The i-th node with CPUs (wrapping), -1 if none has CPUs. */
static int cpu_node(int i) {
  int seen = 0, with = 0;
  for (int n = 0; n < topo.nnodes; n++) with += topo.ncpus[n] > 0;
  if (with == 0) return -1;
  i %= with;
  for (int n = 0; n < topo.nnodes; n++) {
    if (topo.ncpus[n] > 0 && seen++ == i) return n;
  }
  return -1;
}

/* ---- cpu-local -------------------------------------------------------------- */

/* Blocks per size in cpu-local: few large ones, so a 256 MiB node holds them. */
static const int per_size[NSIZES] = {8, 4, 2};

static void cpu_local_body(void *arg) {
  int cpu = *(int *)arg, node = vm_mem_home(&topo, vm_nh_here_node(&topo, "cpu-local"));
  void *blk[2][NSIZES][8];
  char what[64];
  for (int via = 0; via < 2; via++) {
    snprintf(what, sizeof what, "%s on CPU %d", via ? "malloc" : "nh_malloc", cpu);
    for (size_t s = 0; s < NSIZES; s++) {
      for (int k = 0; k < per_size[s]; k++) {
        blk[via][s][k] = via ? malloc(sizes[s]) : nh_malloc(sizes[s]);
        vm_nh_block_on(&topo, "cpu-local", what, blk[via][s][k], sizes[s], node);
      }
    }
  }
  for (size_t s = 0; s < NSIZES; s++) {
    for (int k = 0; k < per_size[s]; k++) {
      nh_free(blk[0][s][k]);
      free(blk[1][s][k]);
    }
  }
}

static void check_cpu_local(void) {
  int ncpu = vm_run_on_each_cpu(&topo, cpu_local_body);
  vm_ok("cpu-local", "%d CPUs: nh_malloc and malloc of 64 B, 64 KiB, 4 MiB on the CPU's node",
        ncpu);
}

/* ---- node-alloc ------------------------------------------------------------- */

static void node_alloc_body(void *arg) {
  int n = *(int *)arg;
  char what[64];
  snprintf(what, sizeof what, "nh_malloc_node(.., %d) from node %d", n, vm_nh_here_node(&topo, "node-alloc"));
  for (size_t s = 0; s < NSIZES; s++) {
    void *p[4];
    for (int k = 0; k < 4; k++) {
      p[k] = nh_malloc_node(sizes[s], n);
      vm_nh_block_on(&topo, "node-alloc", what, p[k], sizes[s], vm_mem_home(&topo, n));
    }
    for (int k = 0; k < 4; k++) nh_free(p[k]);
  }
}

static void check_node_alloc(void) {
  for (int n = 0; n < topo.nnodes; n++) {
    int want = vm_mem_home(&topo, n), from = -1;
    /* Ask from a CPU whose own memory is elsewhere, so first touch alone
     * would put the block elsewhere (any CPU on a one-node machine). */
    for (int i = 0; i < topo.nnodes && from < 0; i++) {
      int m = (n + 1 + i) % topo.nnodes;
      if (topo.ncpus[m] > 0 && vm_mem_home(&topo, m) != want) from = m;
    }
    if (from < 0) from = cpu_node(0);
    vm_run_on_cpu(vm_first_cpu(&topo, from), node_alloc_body, &n);
    vm_ok("node-alloc", "node %d (%d CPUs, %llu MiB) served on node %d, asked from node %d", n,
          topo.ncpus[n], (unsigned long long)topo.mem_kib[n] / 1024, want, from);
  }
}

/* ---- remote-free ------------------------------------------------------------ */

#define RF_SMALL 2000
#define RF_MEDIUM 100
#define RF_BLOCKS (RF_SMALL + RF_MEDIUM)

/* Producer then consumer: one thread at a time (run_on_cpu joins each). */
struct rf { int a, b; void *blk[RF_BLOCKS]; };

static size_t rf_size(int k) { return k < RF_SMALL ? 64 : (64u << 10); }

static void rf_produce(void *arg) {
  struct rf *r = arg;
  if (vm_nh_here_node(&topo, "remote-free") != r->a) vm_fail("remote-free", "producer not on node %d", r->a);
  for (int k = 0; k < RF_BLOCKS; k++) {
    r->blk[k] = nh_malloc(rf_size(k));
    vm_nh_block_on(&topo, "remote-free", "producer block", r->blk[k], rf_size(k), vm_mem_home(&topo, r->a));
  }
}

/* Frees A's blocks on B, then allocates as many on B: none may be A's. */
static void rf_consume(void *arg) {
  struct rf *r = arg;
  void *own[64];
  if (vm_nh_here_node(&topo, "remote-free") != r->b) vm_fail("remote-free", "consumer not on node %d", r->b);
  /* Warm this thread's caches first, as a consumer that allocates would. */
  for (int k = 0; k < 64; k++) own[k] = nh_malloc(rf_size(k * RF_BLOCKS / 64));
  for (int k = 0; k < 64; k++) nh_free(own[k]);
  for (int k = 0; k < RF_BLOCKS; k++) nh_free(r->blk[k]);
  for (int k = 0; k < RF_BLOCKS; k++) {
    r->blk[k] = nh_malloc(rf_size(k));
    vm_nh_block_on(&topo, "remote-free", "block allocated after remote frees", r->blk[k], rf_size(k),
              vm_mem_home(&topo, r->b));
  }
  for (int k = 0; k < RF_BLOCKS; k++) nh_free(r->blk[k]);
}

/* Blocks that may still wait in one CPU's remote buffer after the consumer's
 * frees (REMOTE_CAP in percpu/pcpu.c, docs/percpu.md): they go home when the
 * buffer fills or the caches are drained (nh_trim). */
#define RF_PENDING_MAX 64

/* remote_frees growth since *before: on node a (the blocks' home) and in total. */
static void rf_grown(const nh_stats *before, int a, uint64_t *home, uint64_t *total) {
  static nh_stats now;
  vm_nh_stats(&now);
  *home = now.nodes[a].remote_frees - before->nodes[a].remote_frees;
  *total = now.total.remote_frees - before->total.remote_frees;
}

/* Blocks made by a thread on node a, freed on node b; ha and hb are where
 * those nodes' memory is (themselves unless memory-less). */
static void remote_free_pair(int a, int b) {
  static struct rf r;
  static nh_stats before;
  uint64_t home, total;
  int ha = vm_mem_home(&topo, a), hb = vm_mem_home(&topo, b);
  r.a = a;
  r.b = b;
  vm_nh_stats(&before);
  vm_run_on_cpu(vm_first_cpu(&topo, a), rf_produce, &r);
  vm_run_on_cpu(vm_first_cpu(&topo, b), rf_consume, &r);
  rf_grown(&before, ha, &home, &total);
  if (home + RF_PENDING_MAX < RF_BLOCKS || total < home)
    vm_fail("remote-free", "%d blocks of node %d freed on node %d: remote_frees grew by %llu "
            "on node %d (%llu in total), want >= %d less at most %d still buffered",
            RF_BLOCKS, ha, b, (unsigned long long)home, ha, (unsigned long long)total, RF_BLOCKS,
            RF_PENDING_MAX);
  uint64_t before_trim = home;
  nh_trim(); /* drains every cache: whatever was buffered goes home now */
  rf_grown(&before, ha, &home, &total);
  if (home < RF_BLOCKS || total < home)
    vm_fail("remote-free", "%d blocks of node %d freed on node %d: after nh_trim remote_frees "
            "grew by %llu on node %d (%llu in total), want >= %d", RF_BLOCKS, ha, b,
            (unsigned long long)home, ha, (unsigned long long)total, RF_BLOCKS);
  vm_ok("remote-free", "made on node %d, freed on node %d: %d blocks of node %d went home "
        "(remote_frees +%llu, +%llu after nh_trim), %d new blocks on node %d", a, b, RF_BLOCKS,
        ha, (unsigned long long)before_trim, (unsigned long long)home, RF_BLOCKS, hb);
}

static void check_remote_free(void) {
  int with = 0;
  for (int n = 0; n < topo.nnodes; n++) with += topo.ncpus[n] > 0;
  if (with < 2) vm_fail("remote-free", "needs two nodes with CPUs, layout has %d", with);
  /* Every ordered pair on small layouts; a ring both ways on larger ones. */
  for (int i = 0; i < with; i++) {
    for (int j = 0; j < with; j++) {
      int ring = j == (i + 1) % with || i == (j + 1) % with;
      int a = cpu_node(i), b = cpu_node(j);
      /* Two nodes whose memory is the same node's free nothing remotely. */
      if (vm_mem_home(&topo, a) == vm_mem_home(&topo, b)) continue;
      if (with <= 4 || ring) remote_free_pair(a, b);
    }
  }
}

/* ---- migrate ------------------------------------------------------------------ */

struct mig { int from, to; };

#define MIG_WARM 48
#define MIG_AFTER 200
#define MIG_KEEP 32

/* Sizes of the k-th allocation of migrate: small and medium, a large one
 * every 16th (the footprint must fit a node with room to spare). */
static size_t mig_size(int k) { return k % 16 == 15 ? sizes[2] : sizes[k % 2]; }

static void migrate_body(void *arg) {
  struct mig *m = arg;
  void *warm[MIG_WARM], *keep[MIG_KEEP];
  char what[96];
  /* Warm the size classes on the old node, so caches hold its memory. */
  for (int k = 0; k < MIG_WARM; k++) {
    warm[k] = nh_malloc(mig_size(k));
    vm_nh_block_on(&topo, "migrate", "block before the move", warm[k], mig_size(k), vm_mem_home(&topo, m->from));
  }
  for (int k = 0; k < MIG_WARM / 2; k++) nh_free(warm[k]); /* half back into the caches */
  if (vm_pin_cpu(vm_first_cpu(&topo, m->to)) != 0)
    vm_fail("migrate", "sched_setaffinity to node %d failed", m->to);
  if (vm_nh_here_node(&topo, "migrate") != m->to) vm_fail("migrate", "thread did not move to node %d", m->to);
  for (int k = 0; k < MIG_AFTER; k++) {
    void *p = (k % 3 == 1) ? malloc(mig_size(k)) : nh_malloc(mig_size(k));
    snprintf(what, sizeof what, "allocation #%d after the move from node %d", k + 1, m->from);
    vm_nh_block_on(&topo, "migrate", what, p, mig_size(k), vm_mem_home(&topo, m->to));
    if (k < MIG_KEEP) keep[k] = p; /* the first ones stay live: each must be fresh */
    else nh_free(p);
  }
  for (int k = 0; k < MIG_KEEP; k++) nh_free(keep[k]);
  for (int k = MIG_WARM / 2; k < MIG_WARM; k++) nh_free(warm[k]);
}

static void check_migrate(void) {
  int with = 0;
  for (int n = 0; n < topo.nnodes; n++) with += topo.ncpus[n] > 0;
  for (int i = 0; i < with; i++) {
    struct mig m = {cpu_node(i), cpu_node(i + 1)};
    if (m.from == m.to) continue;
    vm_run_on_cpu(vm_first_cpu(&topo, m.from), migrate_body, &m);
    vm_ok("migrate", "node %d -> node %d: all %d allocations after the move on node %d", m.from,
          m.to, MIG_AFTER, vm_mem_home(&topo, m.to));
  }
}

/* ---- fill (runs in a child with its own config) --------------------------------- */

#define FILL_BLOCK (64u << 10)
#define FILL_BUDGET0_MIB 8
#define FILL_BUDGET_MIB 16
#define FILL_MAX 8192
/* What a heap may leave unused at its budget's edge: a new span (8 pages of
 * 64 KiB for this block size) plus a segment header page, rounded up. */
#define FILL_SLACK (1u << 20)

#define FILL_STR2(x) #x
#define FILL_STR(x) FILL_STR2(x)

/* Small budgets on every node (node 0 smallest), no reserve, no per-level
 * limit, and spilling allowed to any node at every level. */
static const char fill_ini[] =
    "# written by tests/vm/vm_place.c (fill)\n"
    "[heap]\nbudget = " FILL_STR(FILL_BUDGET_MIB) "M\nreserve = 0\n"
    "[criticality]\ntask.limit = 100\ntask.spill = any\n"
    "appdomain.spill = any\nprocess.spill = any\n"
    "[node:0]\nbudget = " FILL_STR(FILL_BUDGET0_MIB) "M\n";

/* Blocks in allocation order and the node each landed on. Written by the
 * filler thread only, read by the main thread after pthread_join. */
static void *fill_blk[FILL_MAX];
static int fill_node[FILL_MAX];
static uint64_t fill_committed0; /* node 0's committed bytes at the first spill */

/* Checks that, after node 0, the nodes used come by non-decreasing distance. */
static void fill_check_order(int count) {
  int last = 10, prev = 0;
  for (int k = 0; k < count; k++) {
    int d = topo.dist[0][fill_node[k]];
    if (d < last)
      vm_fail("fill-order", "block %d went to node %d (distance %d) after a block on node %d "
              "(distance %d): spill must go to the nearest node first", k, fill_node[k], d, prev, last);
    last = d;
    prev = fill_node[k];
  }
}

static void fill_check_budgets(int count) {
  static nh_stats st;
  int per[VM_MAX_NODES] = {0};
  vm_nh_stats(&st);
  for (int k = 0; k < count; k++) per[fill_node[k]]++;
  for (int n = 0; n < topo.nnodes; n++) {
    uint64_t budget = (uint64_t)(n == 0 ? FILL_BUDGET0_MIB : FILL_BUDGET_MIB) << 20;
    if (topo.mem_kib[n] == 0) {
      if (per[n] != 0) vm_fail("fill-budget", "%d blocks on memory-less node %d", per[n], n);
      continue;
    }
    if (st.nodes[n].budget != budget)
      vm_fail("fill-budget", "node %d reports budget %llu, config says %llu", n,
              (unsigned long long)st.nodes[n].budget, (unsigned long long)budget);
    if (st.nodes[n].committed + FILL_SLACK < budget || per[n] == 0)
      vm_fail("fill-budget", "NULL came while node %d had committed only %llu of %llu bytes "
              "(%d blocks there)", n, (unsigned long long)st.nodes[n].committed,
              (unsigned long long)budget, per[n]);
    vm_ok("fill-budget", "node %d: %d blocks, committed %llu of budget %llu", n, per[n],
          (unsigned long long)st.nodes[n].committed, (unsigned long long)budget);
  }
  if ((uint64_t)(count - per[0]) > st.nodes[0].fallback_out)
    vm_fail("fill-budget", "node 0 spilled %d blocks but its fallback_out is only %llu",
            count - per[0], (unsigned long long)st.nodes[0].fallback_out);
}

static void fill_body(void *arg) {
  int *count = arg, k = 0;
  if (vm_nh_here_node(&topo, "fill") != 0) vm_fail("fill", "filler thread is not on node 0");
  for (; k < FILL_MAX; k++) {
    errno = 0;
    fill_blk[k] = nh_malloc(FILL_BLOCK);
    if (!fill_blk[k]) break;
    memset(fill_blk[k], 1, FILL_BLOCK);
    fill_node[k] = nh_ptr_node(fill_blk[k]);
    if (fill_node[k] < 0 || fill_node[k] >= topo.nnodes)
      vm_fail("fill", "nh_ptr_node of block %d is %d", k, fill_node[k]);
    vm_nh_block_on(&topo, "fill", "filling block", fill_blk[k], FILL_BLOCK, fill_node[k]);
    if (fill_node[k] != 0 && fill_committed0 == 0) {
      static nh_stats st;
      vm_nh_stats(&st);
      fill_committed0 = st.nodes[0].committed;
    }
  }
  if (k == FILL_MAX) vm_fail("fill", "%d blocks of %u bytes and still no NULL", k, FILL_BLOCK);
  if (errno != ENOMEM)
    vm_fail("fill", "NULL after %d blocks with errno %d, want ENOMEM (%s)", k, errno,
            nh_last_error());
  *count = k;
}

static void fill_child(void) {
  int count = 0, on0 = 0;
  if (topo.ncpus[0] == 0 || topo.mem_kib[0] == 0)
    vm_fail("fill", "node 0 has no CPU to fill it from, or no memory");
  vm_run_on_cpu(vm_first_cpu(&topo, 0), fill_body, &count);
  while (on0 < count && fill_node[on0] == 0) on0++;
  if (on0 < count) {
    if (fill_committed0 + FILL_SLACK < ((uint64_t)FILL_BUDGET0_MIB << 20))
      vm_fail("fill-local", "first spill (to node %d) after %d blocks of %u bytes on node 0, "
              "whose committed bytes were %llu of its %d MiB budget", fill_node[on0], on0,
              FILL_BLOCK, (unsigned long long)fill_committed0, FILL_BUDGET0_MIB);
    vm_ok("fill-local", "%d blocks on node 0 (committed %llu) before the first spill", on0,
          (unsigned long long)fill_committed0);
  } else {
    int others = 0;
    for (int n = 1; n < topo.nnodes; n++) others += topo.mem_kib[n] > 0;
    if (others > 0)
      vm_fail("fill-local", "all %d blocks stayed on node 0: no spill to the %d other nodes "
              "with memory", count, others);
  }
  fill_check_order(count);
  vm_ok("fill-order", "%d spilled blocks came by increasing distance from node 0", count - on0);
  fill_check_budgets(count);
  vm_ok("fill", "ENOMEM after %d blocks, every node's budget used", count);
  for (int k = 0; k < count; k++) nh_free(fill_blk[k]);
}

/* Writes the config and runs "vm_place ... fill-child" with NUMAHEAP_CONFIG. */
static void check_fill(void) {
  vm_run_config_child("fill", "/tmp/vm_place_fill.ini", fill_ini, me, args, "fill-child");
}

/* Criticality levels (CLR host API): tests/vm/vm_host.c checks their limits and spill scopes. */

/* ---- main ------------------------------------------------------------------------ */

static const vm_check checks[] = {
    {"cpu-local", check_cpu_local, 1},     {"node-alloc", check_node_alloc, 1},
    {"remote-free", check_remote_free, 1}, {"migrate", check_migrate, 1},
    {"fill", check_fill, 1},               {"fill-child", fill_child, 0},
};

int main(int argc, char **argv) {
  static vm_args a;
  vm_start_topo(argc, argv, &a, &topo);
  me = argv[0];
  args = &a;
  vm_nh_same_nodes(&topo, &a);
  vm_run_checks(checks, sizeof checks / sizeof *checks, &a);
  return 0;
}
