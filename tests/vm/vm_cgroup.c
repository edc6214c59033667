/*
 * tests/vm/vm_cgroup.c: numaheap in a container and beside a process that
 * fills a node, on a real multi-node VM (docs/vm-tests.md).
 *
 *   vm_cgroup --layout NAME --expect SPEC [CHECK...]
 *
 * CHECK (default: fill, split, then limit):
 *   fill   numaheap runs on node 0 and holds 1 MiB blocks whose pages it has
 *          not touched yet; a second process (MPOL_BIND to node 0) fills node
 *          0 until under 24 MiB is free (FILL_FREE). numaheap then touches its blocks: it
 *          survives (the default preferred binding), the pages node 0 could
 *          not give come from the nearest node by the kernel's distances;
 *          new blocks spill to the nearest node too (the heap's own
 *          fallback), and the filler was killed by us, not by the OOM killer;
 *   split  in a child with budgets of 32 MiB (reserve 1 MiB), a thread on
 *          node 0 commits 48 MiB with one VirtualAlloc: the first pages (in
 *          address order) are on node 0, the rest on the nearest node, none
 *          elsewhere, and nh_stats counts each part on its node;
 *   limit  mounts cgroup2, makes /sys/fs/cgroup/nhjob with memory.max 96 MiB
 *          and cpuset.mems 0, joins it, and runs limit-child in it:
 *            budgets   the statistics show the group; node 0's budget is 90%
 *                      of the limit, the other nodes' 0 (not in cpuset.mems);
 *            load      GetMemoryLoad matches memory.current / memory.max;
 *            fail      1 MiB IHostMalloc::Alloc blocks, each written, until
 *                      E_OUTOFMEMORY (NULL, every page on node 0); nh_malloc
 *                      then fails with ENOMEM;
 *            notify    eMemoryAvailableLow arrives, then after everything is
 *                      freed eMemoryAvailableHigh, in that order; the Low
 *                      trim is counted;
 *          then memory.events of the group shows oom_kill 0;
 *   psi    (not in the default list: the entry vm.2node.vm_cgroup.psi runs
 *          psi and high) numaheap in the root group with [notify] psi, and
 *          a second process in /sys/fs/cgroup/nhstall (memory.high 16 MiB,
 *          no swap) touching 64 MiB: every charge over memory.high is
 *          throttled, which PSI records as memory stall. The only way
 *          numaheap can learn of it is its PSI trigger (its own load is
 *          nil, it has no limit, no request fails): Low arrives, counted as
 *          PSI's (psi_lows), and stays while the stall goes on (no High for
 *          three PSI windows: hysteresis); once the staller is killed, High;
 *          memory.events of nhstall shows the throttling (high > 0);
 *   high   joins /sys/fs/cgroup/nhhigh (memory.high 32 MiB, no memory.max)
 *          and runs high-child in it: the budgets are not capped by
 *          memory.high; 1 MiB blocks, each written, go past memory.high
 *          without a failure; Low arrives, counted as memory.high's, and a
 *          trim; GetMemoryLoad matches memory.current / memory.high; after
 *          the frees, High.
 */
#include "vmnh.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <numaheap/hostmem.h>
#include <numaheap/numaheap.h>

#define MIB ((size_t)1 << 20)
#define GROUP "/sys/fs/cgroup/nhjob"
#define LIMIT (96 * MIB)

static vm_topo topo;        /* the kernel's view; read once in main */
static const char *me;      /* argv[0]; set once in main */
static const vm_args *args; /* set once in main */

/* ---- helpers ------------------------------------------------------------------ */

static void write_file(const char *check, const char *path, const char *text) {
  int fd = open(path, O_WRONLY);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
    vm_fail(check, "writing \"%s\" to %s: %s", text, path, strerror(errno));
  close(fd);
}

/* A number from a file (after key, or the first): open/read into a stack
 * buffer, since at the limit malloc (stdio's FILE) fails by design. */
static long long read_number(const char *path, const char *key) {
  char buf[4096];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = '\0';
  if (key == NULL) return strtoll(buf, NULL, 10);
  const char *p = strstr(buf, key);
  return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* MemFree of an OS node, in bytes. */
static long long node_free(int os_node) {
  char path[96];
  snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", os_node);
  char buf[4096];
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strstr(buf, "MemFree:");
  return p ? strtoll(p + 8, NULL, 10) * 1024 : -1;
}

/* The nearest other entry of topo from entry 0 (lowest distance, then index). */
static int nearest_to_0(void) {
  int best = -1;
  for (int j = 1; j < topo.nnodes; j++)
    if (topo.mem_kib[j] > 0 && (best < 0 || topo.dist[0][j] < topo.dist[0][best])) best = j;
  return best;
}

/* Pages of [p, p+len) per entry of topo; -1 for a page the kernel does not know. */
static void count_pages(void *p, size_t len, long *per_entry) {
  for (size_t off = 0; off < len; off += VM_PAGE) {
    int os = vm_page_node((char *)p + off);
    int e = os >= 0 ? vm_entry_of_os_node(&topo, os) : -1;
    if (e >= 0) per_entry[e]++;
  }
}

/* ---- fill ----------------------------------------------------------------------- */

#define FILL_BLOCKS 48
/* The filler stops when node 0 has this many MiB free: MemFree counts pages
 * the kernel keeps back (watermarks, the DMA zones' lowmem reserve; an
 * MPOL_BIND filler that went down to 8 MiB met the OOM killer), and numaheap's
 * own watermark is 16 MiB, under which it treats the node as full. */
#define FILL_FREE 24

/* The filler: binds anonymous memory to node 0 and writes it until node 0
 * has under 8 MiB free, reports through fd, then waits to be killed. */
static _Noreturn void filler(int fd) {
  size_t len = 512 * MIB;
  char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (m == MAP_FAILED || vm_bind(m, len, topo.os_id[0]) != 0) _exit(3);
  size_t off = 0;
  while (off < len && node_free(topo.os_id[0]) > (long long)(FILL_FREE * MIB)) {
    memset(m + off, 1, MIB);
    off += MIB;
  }
  char c = (char)(off / MIB > 255 ? 255 : off / MIB);
  if (write(fd, &c, 1) != 1) _exit(4);
  for (;;) pause();
}

static void check_fill(void) {
  int cpu = vm_first_cpu(&topo, 0), near = nearest_to_0();
  if (cpu < 0 || near < 0) vm_fail("fill", "needs CPUs on node 0 and memory on another node");
  if (vm_pin_cpu(cpu) != 0) vm_fail("fill", "cannot pin to CPU %d", cpu);
  static void *blocks[FILL_BLOCKS];
  for (int i = 0; i < FILL_BLOCKS; i++)
    if ((blocks[i] = nh_malloc(MIB)) == NULL || nh_ptr_node(blocks[i]) != 0)
      vm_fail("fill", "block %d: %p on node %d before the fill", i, blocks[i],
              blocks[i] ? nh_ptr_node(blocks[i]) : -1);
  int pfd[2];
  if (pipe(pfd) != 0) vm_fail("fill", "pipe: %s", strerror(errno));
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) vm_fail("fill", "fork: %s", strerror(errno));
  if (pid == 0) filler(pfd[1]);
  close(pfd[1]); /* so that a filler that dies ends the read */
  char filled;
  if (read(pfd[0], &filled, 1) != 1) vm_fail("fill", "the filler died before node 0 was full");
  long long left = node_free(topo.os_id[0]);
  vm_ok("fill", "a second process took %d MiB of node 0; %lld MiB left free", (unsigned char)filled,
        left >> 20);
  long pages[VM_MAX_NODES] = {0};
  for (int i = 0; i < FILL_BLOCKS; i++) {
    memset(blocks[i], 0x5a, MIB); /* first touch, node 0 exhausted */
    count_pages(blocks[i], MIB, pages);
  }
  long off0 = 0;
  for (int e = 1; e < topo.nnodes; e++) off0 += pages[e];
  if (off0 == 0) vm_fail("kernel-spill", "node 0 gave all %d MiB: it was not full", FILL_BLOCKS);
  if (pages[near] != off0)
    vm_fail("kernel-spill", "of %ld pages off node 0 only %ld are on the nearest node (OS %d)",
            off0, pages[near], topo.os_id[near]);
  vm_ok("kernel-spill", "numaheap survived; %ld pages on node 0, %ld on the nearest node (OS %d)",
        pages[0], pages[near], topo.os_id[near]);
  void *fresh = nh_malloc(MIB);
  if (fresh == NULL) vm_fail("heap-spill", "nh_malloc failed while other nodes have room");
  memset(fresh, 1, MIB);
  long fp[VM_MAX_NODES] = {0};
  count_pages(fresh, MIB, fp);
  if (nh_ptr_node(fresh) != near || fp[near] != (long)(MIB / VM_PAGE))
    vm_fail("heap-spill", "a new block is on node %d (%ld of its pages on the nearest node %d)",
            nh_ptr_node(fresh), fp[near], near);
  vm_ok("heap-spill", "a new block went to the nearest node %d, all its pages there", near);
  int status = 0;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    vm_fail("fill", "the filler ended with status 0x%x, not by our SIGKILL", status);
  nh_free(fresh);
  for (int i = 0; i < FILL_BLOCKS; i++) nh_free(blocks[i]);
  close(pfd[0]);

}

/* ---- split -------------------------------------------------------------------------- */

static const char split_ini[] = "[heap]\nbudget = 32M\nreserve = 1M\n[cache]\nmode = off\n";

static void check_split_child(void) {
  int near = nearest_to_0();
  if (vm_pin_cpu(vm_first_cpu(&topo, 0)) != 0) vm_fail("split", "cannot pin to node 0");
  IHostMemoryManager *m = NULL;
  if (NhCreateHostMemoryManager(&m) != S_OK) vm_fail("split", "NhCreateHostMemoryManager failed");
  void *p = NULL;
  HRESULT hr = IHostMemoryManager_VirtualAlloc(m, NULL, 48 * MIB, MEM_RESERVE | MEM_COMMIT,
                                               PAGE_READWRITE, eAppDomainCritical, &p);
  if (hr != S_OK) vm_fail("split", "VirtualAlloc of 48 MiB over 31 MiB nodes: 0x%08x", (unsigned)hr);
  memset(p, 0x77, 48 * MIB);
  size_t npages = 48 * MIB / VM_PAGE, boundary = npages;
  for (size_t i = 0; i < npages; i++) {
    int e = vm_entry_of_os_node(&topo, vm_page_node((char *)p + i * VM_PAGE));
    if (boundary == npages && e != 0) boundary = i;
    if (boundary != npages && e != near)
      vm_fail("split", "page %zu is on entry %d; after node 0's part every page must be on the "
              "nearest node %d", i, e, near);
  }
  if (boundary == npages || boundary * VM_PAGE < 24 * MIB)
    vm_fail("split", "node 0 took %zu MiB of 48 (its room is 31)", boundary * VM_PAGE / MIB);
  static nh_stats st;
  vm_nh_stats(&st);
  if (st.nodes[near].committed < (48 * MIB - boundary * VM_PAGE))
    vm_fail("split", "node %d counts %llu bytes committed, less than its part", near,
            (unsigned long long)st.nodes[near].committed);
  vm_ok("split", "%zu MiB on node 0, then %zu MiB on the nearest node %d, in address order",
        boundary * VM_PAGE / MIB, 48 - boundary * VM_PAGE / MIB, near);
  IHostMemoryManager_VirtualFree(m, p, 0, MEM_RELEASE);
}

/* ---- limit ------------------------------------------------------------------------ */

static const char limit_ini[] = "[cache]\nmode = off\n[notify]\nlow = 90\nhigh = 60\n";

/* Mounts cgroup2 (once) and enables the controllers for the groups below. */
static void mount_cgroup2(const char *check, const char *controllers) {
  mkdir("/sys/fs/cgroup", 0755);
  if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL) != 0 && errno != EBUSY)
    vm_fail(check, "mount cgroup2: %s", strerror(errno));
  write_file(check, "/sys/fs/cgroup/cgroup.subtree_control", controllers);
}

/* Makes group dir with memory.high (and memory.max unless NULL) set. */
static void make_group(const char *check, const char *dir, size_t high, const char *max) {
  char path[128], text[64];
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) vm_fail(check, "mkdir %s: %s", dir, strerror(errno));
  snprintf(path, sizeof path, "%s/memory.high", dir);
  snprintf(text, sizeof text, "%zu", high);
  write_file(check, path, text);
  if (max == NULL) return;
  snprintf(path, sizeof path, "%s/memory.max", dir);
  write_file(check, path, max);
}

static void join_group(const char *check, const char *dir) {
  char path[128], text[32];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  snprintf(text, sizeof text, "%d", (int)getpid());
  write_file(check, path, text);
}

static void check_limit(void) {
  mount_cgroup2("limit", "+memory +cpuset");
  if (mkdir(GROUP, 0755) != 0 && errno != EEXIST) vm_fail("limit", "mkdir %s: %s", GROUP, strerror(errno));
  char text[64];
  snprintf(text, sizeof text, "%zu", LIMIT);
  write_file("limit", GROUP "/memory.max", text);
  snprintf(text, sizeof text, "%d", topo.os_id[0]);
  write_file("limit", GROUP "/cpuset.mems", text);
  snprintf(text, sizeof text, "%d", (int)getpid());
  write_file("limit", GROUP "/cgroup.procs", text);
  vm_ok("limit", "in %s: memory.max %zu MiB, cpuset.mems %d", GROUP, LIMIT >> 20, topo.os_id[0]);
  vm_run_config_child("limit", "/tmp/vm_cgroup.ini", limit_ini, me, args, "limit-child");
  long long kills = read_number(GROUP "/memory.events", "oom_kill ");
  if (kills != 0) vm_fail("oom", "memory.events shows oom_kill %lld", kills);
  vm_ok("oom", "memory.events: oom_kill 0, oom %lld, max %lld",
        read_number(GROUP "/memory.events", "oom "), read_number(GROUP "/memory.events", "max "));
}

/* The notifications, in arrival order. */
static _Atomic int notes[64];
static _Atomic int nnotes;

static HRESULT STDMETHODCALLTYPE cb_qi(ICLRMemoryNotificationCallback *t, REFIID r, void **o) {
  (void)t, (void)r, (void)o;
  return E_NOINTERFACE;
}
static ULONG STDMETHODCALLTYPE cb_ref(ICLRMemoryNotificationCallback *t) {
  (void)t;
  return 1;
}
static HRESULT STDMETHODCALLTYPE cb_note(ICLRMemoryNotificationCallback *t, EMemoryAvailable e) {
  (void)t;
  int i = atomic_fetch_add(&nnotes, 1);
  if (i < 64) atomic_store(&notes[i], (int)e);
  return S_OK;
}
static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {cb_qi, cb_ref, cb_ref, cb_note};
static ICLRMemoryNotificationCallback cb = {&cb_vtbl};

/* Waits up to ms for notification number k; its value, or 0. */
static int wait_note(int k, int ms) {
  for (int t = 0; t < ms / 10; t++) {
    if (atomic_load(&nnotes) > k) return atomic_load(&notes[k]);
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

static void child_budgets(void) {
  static nh_stats st;
  vm_nh_stats(&st);
  if (st.cgroup.version != 2 || st.cgroup.limit != LIMIT)
    vm_fail("budgets", "numaheap found cgroup v%d limit %llu", st.cgroup.version,
            (unsigned long long)st.cgroup.limit);
  uint64_t want = (uint64_t)((unsigned __int128)LIMIT * 9 / 10);
  if (st.nodes[0].budget != want)
    vm_fail("budgets", "node 0's budget is %llu, want %llu (90%% of the limit)",
            (unsigned long long)st.nodes[0].budget, (unsigned long long)want);
  for (int i = 1; i < st.node_count; i++)
    if (st.nodes[i].budget != 0)
      vm_fail("budgets", "node %d is outside cpuset.mems but has a budget of %llu", i,
              (unsigned long long)st.nodes[i].budget);
  vm_ok("budgets", "node 0 %llu MiB, the other %d nodes 0", (unsigned long long)want >> 20,
        st.node_count - 1);
}

/* GetMemoryLoad against group's memory.current (read right after it) over
 * limit, at most 100%. */
static void group_load(IHostMemoryManager *m, const char *when, const char *group, size_t limit) {
  DWORD load;
  SIZE_T avail;
  char path[128];
  if (IHostMemoryManager_GetMemoryLoad(m, &load, &avail) != S_OK) vm_fail("load", "GetMemoryLoad failed");
  snprintf(path, sizeof path, "%s/memory.current", group);
  long long usage = read_number(path, NULL);
  long long want = usage * 100 / (long long)limit;
  if (want > 100) want = 100;
  if (usage < 0 || (long long)load < want - 2 || (long long)load > want + 2)
    vm_fail("load", "%s: GetMemoryLoad says %u%%, memory.current/limit is %lld%%", when,
            (unsigned)load, want);
  vm_ok("load", "%s: GetMemoryLoad %u%%, usage/limit %lld%% (%lld MiB)", when, (unsigned)load, want,
        usage >> 20);
}

static void child_load(IHostMemoryManager *m, const char *when) { group_load(m, when, GROUP, LIMIT); }

static void check_limit_child(void) {
  child_budgets();
  IHostMemoryManager *m = NULL;
  IHostMalloc *h = NULL;
  if (NhCreateHostMemoryManager(&m) != S_OK || IHostMemoryManager_CreateMalloc(m, MALLOC_THREADSAFE, &h) != S_OK)
    vm_fail("limit-child", "cannot create the host memory manager");
  if (IHostMemoryManager_RegisterMemoryNotificationCallback(m, &cb) != S_OK)
    vm_fail("notify", "RegisterMemoryNotificationCallback failed");
  child_load(m, "at start");
  static void *blocks[256];
  int n = 0;
  HRESULT hr = S_OK;
  while (n < 256) {
    void *p = (void *)1;
    hr = IHostMalloc_Alloc(h, MIB, eAppDomainCritical, &p);
    if (hr != S_OK) {
      if (p != NULL) vm_fail("fail", "a failed Alloc left *ppMem %p", p);
      break;
    }
    memset(p, 0x3c, MIB);
    long pages[VM_MAX_NODES] = {0};
    count_pages(p, MIB, pages);
    if (pages[0] != (long)(MIB / VM_PAGE)) vm_fail("fail", "block %d has pages off node 0", n);
    blocks[n++] = p;
  }
  if (hr != E_OUTOFMEMORY) vm_fail("fail", "Alloc ended with 0x%08x after %d MiB", (unsigned)hr, n);
  errno = 0;
  if (nh_malloc(MIB) != NULL || errno != ENOMEM) vm_fail("fail", "nh_malloc did not fail with ENOMEM");
  vm_ok("fail", "%d MiB taken on node 0, then E_OUTOFMEMORY and ENOMEM", n);
  child_load(m, "at the limit");
  int first = wait_note(0, 5000);
  if (first != eMemoryAvailableLow) vm_fail("notify", "the first notification is %d, not Low", first);
  for (int i = 0; i < n; i++) IHostMalloc_Free(h, blocks[i]);
  nh_trim();
  int k = 1, second;
  while ((second = wait_note(k, 8000)) == eMemoryAvailableLow) k++;
  if (second != eMemoryAvailableHigh)
    vm_fail("notify", "after Low came %d, not High (%d notifications)", second, atomic_load(&nnotes));
  static nh_stats st;
  vm_nh_stats(&st);
  if (st.cgroup.low_trims == 0) vm_fail("notify", "no trim was counted on Low");
  vm_ok("notify", "Low, then High after the frees; %llu low trim(s)",
        (unsigned long long)st.cgroup.low_trims);
  IHostMemoryManager_RegisterMemoryNotificationCallback(m, NULL);
}

/* ---- psi and high --------------------------------------------------------------- */

#define STALL_GROUP "/sys/fs/cgroup/nhstall"
#define STALL_HIGH (16 * MIB)
#define HIGH_GROUP "/sys/fs/cgroup/nhhigh"
#define HIGH (32 * MIB)

static const char psi_ini[] = "[cache]\nmode = off\n[notify]\nlow = 90\nhigh = 60\npsi = 100\n";
static const char high_ini[] = "[cache]\nmode = off\n[notify]\nlow = 90\nhigh = 60\n";

static nh_stats *stats_now(void) {
  static nh_stats st;
  vm_nh_stats(&st);
  return &st;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* The staller: joins STALL_GROUP and writes 64 MiB over and over (each pass
 * given back with MADV_DONTNEED, so that every page is charged again): past
 * memory.high each charge is throttled (no swap: reclaim finds nothing, the
 * kernel makes it sleep up to 2 s), which PSI counts as memory stall. Only
 * syscalls and memset: it is a fork of a threaded process. */
static _Noreturn void staller(void) {
  /* dies with the child, even one that failed; and holds no end of the
   * console's pipe, which init waits on */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int null = open("/dev/null", O_WRONLY);
  if (null >= 0) dup2(null, 1), dup2(null, 2);
  char text[32];
  int n = snprintf(text, sizeof text, "%d", (int)getpid());
  int fd = open(STALL_GROUP "/cgroup.procs", O_WRONLY);
  if (fd < 0 || write(fd, text, (size_t)n) != n) _exit(3);
  close(fd);
  size_t len = 64 * MIB;
  char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) _exit(4);
  for (;;) {
    for (size_t off = 0; off < len; off += VM_PAGE) m[off] = 1;
    madvise(m, len, MADV_DONTNEED);
  }
}

static void check_psi(void) {
  if (access("/proc/pressure/memory", R_OK) != 0)
    vm_fail("psi", "/proc/pressure/memory: %s (a kernel without PSI, or psi=0)", strerror(errno));
  mount_cgroup2("psi", "+memory");
  make_group("psi", STALL_GROUP, STALL_HIGH, NULL);
  vm_ok("psi", "%s: memory.high %zu MiB, no memory.max; numaheap stays in the root group",
        STALL_GROUP, STALL_HIGH >> 20);
  vm_run_config_child("psi", "/tmp/vm_psi.ini", psi_ini, me, args, "psi-child");
  long long high = read_number(STALL_GROUP "/memory.events", "high ");
  if (high <= 0) vm_fail("psi", "memory.events of %s shows high %lld: never throttled", STALL_GROUP, high);
  vm_ok("psi", "memory.events of the staller's group: high %lld, oom_kill %lld", high,
        read_number(STALL_GROUP "/memory.events", "oom_kill "));
}

static void check_psi_child(void) {
  IHostMemoryManager *m = NULL;
  if (NhCreateHostMemoryManager(&m) != S_OK) vm_fail("psi", "cannot create the host memory manager");
  if (IHostMemoryManager_RegisterMemoryNotificationCallback(m, &cb) != S_OK)
    vm_fail("psi", "RegisterMemoryNotificationCallback failed");
  nh_stats *st = stats_now();
  if (st->cgroup.limit != UINT64_MAX || st->cgroup.high != UINT64_MAX)
    vm_fail("psi", "numaheap's own group has a limit (%llu, high %llu): the root group has none",
            (unsigned long long)st->cgroup.limit, (unsigned long long)st->cgroup.high);
  sleep_ms(1000);
  if (atomic_load(&nnotes) != 0) vm_fail("psi", "a notification (%d) before any stall", notes[0]);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) vm_fail("psi", "fork: %s", strerror(errno));
  if (pid == 0) staller();
  int first = wait_note(0, 30000);
  st = stats_now();
  if (first != eMemoryAvailableLow)
    vm_fail("psi", "no Low within 30 s of the stall (got %d; %llu PSI events)", first,
            (unsigned long long)st->cgroup.psi_events);
  if (st->cgroup.psi_lows != 1 || st->cgroup.high_lows != 0 || st->cgroup.psi_events == 0)
    vm_fail("psi", "the Low is not PSI's: psi_lows %llu high_lows %llu psi_events %llu",
            (unsigned long long)st->cgroup.psi_lows, (unsigned long long)st->cgroup.high_lows,
            (unsigned long long)st->cgroup.psi_events);
  uint64_t first_events = st->cgroup.psi_events; /* st is overwritten by the next stats_now */
  vm_ok("psi", "Low from the PSI trigger (psi_events %llu, psi_lows 1)",
        (unsigned long long)first_events);
  sleep_ms(6000); /* three 2 s PSI windows of stall */
  int seen = atomic_load(&nnotes);
  uint64_t events = stats_now()->cgroup.psi_events;
  if (seen != 1)
    vm_fail("hysteresis", "while the stall went on %d notifications came (the second: %d)", seen,
            notes[1]);
  if (events <= first_events)
    vm_fail("hysteresis", "no PSI event during 6 s of stall (memory.events of the staller's "
            "group: high %lld)", read_number(STALL_GROUP "/memory.events", "high "));
  vm_ok("hysteresis", "Low stayed through 6 s of stall (%llu more PSI events)",
        (unsigned long long)(events - first_events));
  int status = 0;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    vm_fail("psi", "the staller ended with status 0x%x, not by our SIGKILL", status);
  int second = wait_note(1, 20000);
  if (second != eMemoryAvailableHigh)
    vm_fail("psi", "after the stall ended came %d, not High (%d notifications)", second,
            atomic_load(&nnotes));
  sleep_ms(1000);
  if (atomic_load(&nnotes) != 2) vm_fail("psi", "a notification after High (%d)", notes[2]);
  vm_ok("psi", "Low, then High once the staller was gone; nothing more");
  IHostMemoryManager_RegisterMemoryNotificationCallback(m, NULL);
}

static void check_high(void) {
  mount_cgroup2("high", "+memory");
  make_group("high", HIGH_GROUP, HIGH, "max");
  join_group("high", HIGH_GROUP);
  vm_ok("high", "in %s: memory.high %zu MiB, memory.max max", HIGH_GROUP, HIGH >> 20);
  vm_run_config_child("high", "/tmp/vm_high.ini", high_ini, me, args, "high-child");
  vm_ok("high", "memory.events: high %lld, oom_kill %lld",
        read_number(HIGH_GROUP "/memory.events", "high "),
        read_number(HIGH_GROUP "/memory.events", "oom_kill "));
}

static void check_high_child(void) {
  nh_stats *st = stats_now();
  if (st->cgroup.version != 2 || st->cgroup.high != HIGH || st->cgroup.limit != UINT64_MAX)
    vm_fail("high", "numaheap found cgroup v%d high %llu limit %llu", st->cgroup.version,
            (unsigned long long)st->cgroup.high, (unsigned long long)st->cgroup.limit);
  if (st->nodes[0].budget <= HIGH)
    vm_fail("high", "node 0's budget %llu is capped by memory.high",
            (unsigned long long)st->nodes[0].budget);
  IHostMemoryManager *m = NULL;
  if (NhCreateHostMemoryManager(&m) != S_OK ||
      IHostMemoryManager_RegisterMemoryNotificationCallback(m, &cb) != S_OK)
    vm_fail("high", "cannot create the host memory manager and register");
  group_load(m, "at start", HIGH_GROUP, HIGH);
  /* a little past memory.high: each charge over it is throttled, harder
   * the further over it goes */
  static void *blocks[64];
  int n = 0;
  while (n < 64 && read_number(HIGH_GROUP "/memory.current", NULL) < (long long)(HIGH + MIB)) {
    if ((blocks[n] = nh_malloc(MIB)) == NULL)
      vm_fail("high", "nh_malloc failed after %d MiB, under memory.high's throttling", n);
    memset(blocks[n++], 0x5c, MIB);
  }
  long long usage = read_number(HIGH_GROUP "/memory.current", NULL);
  if (usage < (long long)HIGH) vm_fail("high", "64 MiB of blocks left usage at %lld MiB", usage >> 20);
  vm_ok("high", "%d MiB taken, memory.current %lld MiB: past memory.high, nothing failed", n,
        usage >> 20);
  group_load(m, "past memory.high", HIGH_GROUP, HIGH);
  int first = wait_note(0, 10000);
  /* the notifier trims after the callback returns (api/host_notify.c): its
   * count may come a moment after the note */
  st = stats_now();
  for (int waited = 0; st->cgroup.low_trims == 0 && waited < 5000; waited += 20) {
    sleep_ms(20);
    st = stats_now();
  }
  if (first != eMemoryAvailableLow || st->cgroup.high_lows != 1 || st->cgroup.low_trims == 0)
    vm_fail("high", "first notification %d; high_lows %llu, low_trims %llu", first,
            (unsigned long long)st->cgroup.high_lows, (unsigned long long)st->cgroup.low_trims);
  for (int i = 0; i < n; i++) nh_free(blocks[i]);
  nh_trim();
  int second = wait_note(1, 10000);
  if (second != eMemoryAvailableHigh)
    vm_fail("high", "after the frees came %d, not High (%d notifications; memory.current %lld MiB)",
            second, atomic_load(&nnotes), read_number(HIGH_GROUP "/memory.current", NULL) >> 20);
  vm_ok("high", "Low at memory.high (high_lows 1, %llu trim(s)), High after the frees",
        (unsigned long long)st->cgroup.low_trims);
  IHostMemoryManager_RegisterMemoryNotificationCallback(m, NULL);
}

static void check_split(void) {
  vm_run_config_child("split", "/tmp/vm_split.ini", split_ini, me, args, "split-child");
}

/* By default fill, split and limit, in that order: limit joins a cgroup, so
 * it comes last; psi and high (which also join one) only when named. */
static const vm_check checks[] = {
    {"fill", check_fill, 1},          {"split", check_split, 1},
    {"limit", check_limit, 1},        {"psi", check_psi, 0},
    {"high", check_high, 0},          {"limit-child", check_limit_child, 0},
    {"split-child", check_split_child, 0}, {"psi-child", check_psi_child, 0},
    {"high-child", check_high_child, 0},
};

int main(int argc, char **argv) {
  static vm_args a;
  vm_start_topo(argc, argv, &a, &topo);
  me = argv[0];
  args = &a;
  vm_run_checks(checks, sizeof checks / sizeof *checks, &a);
  return 0;
}
