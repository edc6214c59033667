/*
 * tests/test_cgroup.c: numa/cgroup.c and api/container.c on fake cgroup
 * trees built in a temporary directory (the test-only root): v2 with nested
 * groups, v1's memory controller and cpusets (on their own mount, the
 * fallbacks, beside v2), no limit, a cgroup namespace's mount root,
 * malformed files; the budget caps (proportional, equal, off, cpuset
 * nodes); and the allocator started inside a fake group (budgets, stats,
 * the load the host API reports, a clean failure at the limit).
 */
#include "nh_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api/host_internal.h"
#include "numa/cgroup.h"
#include "numa/json.h"
#include "numa/os.h"
#include "numaheap/hostmem.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

static char root[256];
static char err[1024];

/* ---- the fake tree ------------------------------------------------------------- */

static void mkdirs(const char *path) {
  char p[1024];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    mkdir(p, 0755);
    *s = '/';
  }
  mkdir(p, 0755);
}

/* Writes text to root/rel, creating its directories. */
static void put(const char *rel, const char *text) {
  char path[1024], dir[1024];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  snprintf(dir, sizeof dir, "%s", path);
  *strrchr(dir, '/') = '\0';
  mkdirs(dir);
  FILE *f = fopen(path, "w");
  if (f == NULL) fail_msg("cannot write %s", path);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state) {
  (void)state;
  snprintf(root, sizeof root, "%s/nh_cgroup_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(root) == NULL) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  return system(cmd) == 0 ? 0 : -1;
}

#define V2_MOUNT "30 20 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
#define V2 "sys/fs/cgroup"

/* A v2 tree: the process in /a/b/c; limits on a (max) and b (high). */
static void v2_tree(void) {
  put("proc/self/cgroup", "0::/a/b/c\n");
  put("proc/self/mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" V2_MOUNT);
  put(V2 "/memory.current", "999\n"); /* the root group has no memory.max */
  put(V2 "/a/memory.max", "1073741824\n");
  put(V2 "/a/memory.high", "max\n");
  put(V2 "/a/memory.current", "314572800\n");
  put(V2 "/a/b/memory.max", "max\n");
  put(V2 "/a/b/memory.high", "805306368\n");
  put(V2 "/a/b/memory.current", "104857600\n");
  put(V2 "/a/b/c/memory.max", "2147483648\n");
  put(V2 "/a/b/c/memory.high", "max\n");
  put(V2 "/a/b/c/memory.current", "1048576\n");
  put(V2 "/a/b/c/cpuset.mems.effective", "1,3\n");
  put(V2 "/a/b/c/cpuset.cpus.effective", "0-3\n");
}

static void read_ok(nh_cgroup *cg) {
  err[0] = '\0';
  if (nh_cgroup_read(cg, root, err, sizeof err) != 0) fail_msg("nh_cgroup_read: %s", err);
}

static void read_fails(nh_cgroup *cg, const char *want1, const char *want2) {
  err[0] = '\0';
  assert_int_equal(nh_cgroup_read(cg, root, err, sizeof err), -1);
  assert_int_equal(cg->version, 0);
  if (strstr(err, want1) == NULL || strstr(err, want2) == NULL)
    fail_msg("error \"%s\" should name \"%s\" and \"%s\"", err, want1, want2);
}

/* ---- reading ------------------------------------------------------------------- */

static void test_v2_nested_takes_the_tightest(void **state) {
  (void)state;
  v2_tree();
  static nh_cgroup cg;
  read_ok(&cg);
  assert_int_equal(cg.version, 2);
  assert_string_equal(cg.path, "/a/b/c");
  assert_true(cg.max == GiB);          /* a's, tighter than c's 2 GiB */
  assert_true(cg.high == 768 * MiB);   /* b's */
  assert_true(nh_cgroup_limit(&cg) == GiB); /* the hard limit: memory.high caps nothing */
  assert_string_equal(cg.limit_dir + strlen(root), "/" V2 "/a");
  assert_string_equal(cg.high_dir + strlen(root), "/" V2 "/a/b");
  assert_true(cg.usage == 300 * MiB);      /* a's memory.current: the group that limits */
  assert_true(cg.high_usage == 100 * MiB); /* b's: the group whose high is the lowest */
  assert_int_equal(cg.has_mems, 1);
  assert_string_equal(cg.mems_text, "1,3");
  assert_string_equal(cg.cpus_text, "0-3");
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 1), 1);
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 0), 0);
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 3), 1);
  /* usage follows the files */
  put(V2 "/a/memory.current", "419430400\n");
  put(V2 "/a/b/memory.current", "209715200\n");
  assert_int_equal(nh_cgroup_read_usage(&cg), 0);
  assert_true(cg.usage == 400 * MiB && cg.high_usage == 200 * MiB);
}

static void test_refresh_follows_a_resize(void **state) {
  (void)state;
  v2_tree();
  static nh_cgroup cg;
  read_ok(&cg);
  put(V2 "/a/memory.max", "268435456\n"); /* 256 MiB */
  put(V2 "/a/b/memory.high", "max\n");
  put(V2 "/a/b/c/memory.max", "134217728\n"); /* and c's max, tighter */
  put(V2 "/a/b/c/cpuset.mems.effective", "0\n");
  assert_int_equal(nh_cgroup_refresh(&cg, err, sizeof err), 0);
  assert_true(nh_cgroup_limit(&cg) == 128 * MiB);
  assert_non_null(strstr(cg.limit_dir, "/a/b/c"));
  assert_true(cg.usage == 1 * MiB); /* c's memory.current */
  assert_true(cg.high == NH_CGROUP_NO_LIMIT && cg.high_usage == 1 * MiB);
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 0), 1);
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 1), 0);
  put(V2 "/a/b/c/memory.max", "lots\n");
  assert_int_equal(nh_cgroup_refresh(&cg, err, sizeof err), -1);
  assert_non_null(strstr(err, "/a/b/c/memory.max"));
}

static void test_v2_no_limit(void **state) {
  (void)state;
  put("proc/self/cgroup", "0::/svc\n");
  put("proc/self/mountinfo", V2_MOUNT);
  put(V2 "/svc/memory.max", "max\n");
  put(V2 "/svc/memory.high", "max\n");
  put(V2 "/svc/memory.current", "4096\n");
  static nh_cgroup cg;
  read_ok(&cg);
  assert_int_equal(cg.version, 2);
  assert_true(nh_cgroup_limit(&cg) == NH_CGROUP_NO_LIMIT);
  assert_true(cg.usage == 4096);
  assert_int_equal(cg.has_mems, 0); /* no cpuset file: every node */
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 7), 1);
}

static void test_v2_namespace_mount_root(void **state) {
  (void)state;
  /* the mount's root is the container's group: paths are relative to it */
  put("proc/self/cgroup", "0::/docker/abc/inner\n");
  put("proc/self/mountinfo", "30 20 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  put(V2 "/inner/memory.max", "67108864\n");
  put(V2 "/inner/memory.current", "1024\n");
  static nh_cgroup cg;
  read_ok(&cg);
  assert_true(cg.max == 64 * MiB);
  assert_true(cg.usage == 1024);
}

static void test_v1_memory_controller(void **state) {
  (void)state;
  put("proc/self/cgroup",
      "5:cpuset:/\n4:cpu,cpuacct:/x\n3:memory:/docker/x\n0::/\n"); /* hybrid: v1 memory wins */
  put("proc/self/mountinfo",
      "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "35 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n"); /* unlimited */
  put("sys/fs/cgroup/memory/docker/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/memory/docker/x/memory.limit_in_bytes", "536870912\n");
  put("sys/fs/cgroup/memory/docker/x/memory.usage_in_bytes", "52428800\n");
  static nh_cgroup cg;
  read_ok(&cg);
  assert_int_equal(cg.version, 1);
  assert_string_equal(cg.path, "/docker/x");
  assert_true(cg.max == 512 * MiB);
  assert_true(cg.high == NH_CGROUP_NO_LIMIT);
  assert_true(cg.usage == 50 * MiB);
}

#define V1_MEMORY_MOUNT "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
#define V1_CPUSET_MOUNT "36 30 0:33 / /srv/cg/cpuset rw - cgroup cgroup rw,cpuset\n"
#define V1_CS "srv/cg/cpuset"

/* v1 with its cpuset hierarchy mounted apart (not where the memory
 * controller's default would put it): the effective files win over the
 * configured ones. */
static void test_v1_cpusets(void **state) {
  (void)state;
  put("proc/self/cgroup", "6:cpuset:/job\n3:memory:/job\n0::/\n");
  put("proc/self/mountinfo", V1_MEMORY_MOUNT V1_CPUSET_MOUNT);
  put("sys/fs/cgroup/memory/job/memory.limit_in_bytes", "268435456\n");
  put("sys/fs/cgroup/memory/job/memory.usage_in_bytes", "1048576\n");
  put(V1_CS "/job/cpuset.cpus", "0-7\n");
  put(V1_CS "/job/cpuset.mems", "0-3\n");
  put(V1_CS "/job/cpuset.effective_cpus", "2-3\n");
  put(V1_CS "/job/cpuset.effective_mems", "1\n");
  static nh_cgroup cg;
  read_ok(&cg);
  assert_int_equal(cg.version, 1);
  assert_int_equal(cg.cpuset_version, 1);
  assert_true(cg.max == 256 * MiB);
  assert_int_equal(cg.has_mems, 1);
  assert_int_equal(cg.has_cpus, 1);
  assert_string_equal(cg.mems_text, "1");
  assert_string_equal(cg.cpus_text, "2-3");
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 1), 1);
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 0), 0);
  /* a resize of the cpuset is seen by a refresh */
  put(V1_CS "/job/cpuset.effective_mems", "0,2\n");
  assert_int_equal(nh_cgroup_refresh(&cg, err, sizeof err), 0);
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 1), 0);
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 2), 1);
}

/* Older kernels have no effective files: cpuset.cpus and cpuset.mems; a
 * group without them takes its parent's; a noprefix mount drops "cpuset.". */
static void test_v1_cpusets_fallbacks(void **state) {
  (void)state;
  put("proc/self/cgroup", "6:cpuset:/a/b\n3:memory:/a/b\n");
  put("proc/self/mountinfo", V1_MEMORY_MOUNT V1_CPUSET_MOUNT);
  put("sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "268435456\n");
  put(V1_CS "/a/cpuset.cpus", "0-1\n");
  put(V1_CS "/a/cpuset.mems", "0\n");
  put(V1_CS "/a/b/tasks", "1\n"); /* the group, without cpuset files */
  static nh_cgroup cg;
  read_ok(&cg);
  assert_int_equal(cg.has_mems, 1);
  assert_string_equal(cg.mems_text, "0");
  assert_string_equal(cg.cpus_text, "0-1");
  /* noprefix: "effective_mems", "mems" */
  put("proc/self/mountinfo",
      V1_MEMORY_MOUNT "36 30 0:33 / /srv/cg/cpuset rw - cgroup cgroup rw,cpuset,noprefix\n");
  put(V1_CS "/a/b/effective_mems", "3\n");
  put(V1_CS "/a/b/cpus", "5\n");
  read_ok(&cg);
  assert_int_equal(cg.cpuset_noprefix, 1);
  assert_string_equal(cg.mems_text, "3");
  assert_string_equal(cg.cpus_text, "5");
  /* a malformed one is named */
  put(V1_CS "/a/b/effective_mems", "1-x\n");
  read_fails(&cg, "effective_mems", "not a node list");
}

/* A hybrid machine with the memory controller on v2 and the cpusets on v1,
 * and a cpuset mount whose root is the container's group (a namespace). */
static void test_v1_cpusets_beside_v2(void **state) {
  (void)state;
  put("proc/self/cgroup", "2:cpuset:/ctr/inner\n0::/svc\n");
  put("proc/self/mountinfo", V2_MOUNT "36 30 0:33 /ctr /srv/cg/cpuset rw - cgroup cgroup rw,cpuset\n");
  put(V2 "/svc/memory.max", "134217728\n");
  put(V2 "/svc/memory.current", "4096\n");
  put(V1_CS "/inner/cpuset.effective_mems", "0-1\n");
  put(V1_CS "/inner/cpuset.effective_cpus", "0-3\n");
  static nh_cgroup cg;
  read_ok(&cg);
  assert_int_equal(cg.version, 2);
  assert_int_equal(cg.cpuset_version, 1);
  assert_true(cg.max == 128 * MiB);
  assert_string_equal(cg.mems_text, "0-1");
  assert_string_equal(cg.cpus_text, "0-3");
  assert_int_equal(nh_cgroup_has_mem_node(&cg, 2), 0);
}

static void test_no_cgroup(void **state) {
  (void)state;
  static nh_cgroup cg;
  read_ok(&cg); /* an empty root: no /proc/self/cgroup */
  assert_int_equal(cg.version, 0);
  assert_true(nh_cgroup_limit(&cg) == NH_CGROUP_NO_LIMIT);
  put("proc/self/cgroup", "2:cpu:/x\n"); /* v1 without the memory controller, no v2 line */
  read_ok(&cg);
  assert_int_equal(cg.version, 0);
}

static void test_bad_files(void **state) {
  (void)state;
  static nh_cgroup cg;
  v2_tree();
  put(V2 "/a/b/memory.max", "12abc\n");
  read_fails(&cg, "/a/b/memory.max", "not a number of bytes");
  v2_tree();
  put(V2 "/a/memory.high", "\n");
  read_fails(&cg, "/a/memory.high", "not a number");
  v2_tree();
  put(V2 "/a/b/c/cpuset.mems.effective", "0-x\n");
  read_fails(&cg, "cpuset.mems.effective", "not a node list");
  v2_tree();
  put(V2 "/a/b/c/cpuset.mems.effective", "3-1\n");
  read_fails(&cg, "cpuset.mems.effective", "not a node list");
  put("proc/self/cgroup", "garbage without colons\n");
  read_fails(&cg, "proc/self/cgroup", "id:controllers:/path");
  put("proc/self/cgroup", "0::relative\n");
  read_fails(&cg, "proc/self/cgroup", "id:controllers:/path");
  put("proc/self/cgroup", "0::/a/b/c\n"); /* the tree again: fine */
  v2_tree();
  read_ok(&cg);
  assert_int_equal(cg.version, 2);
}

/* ---- budgets --------------------------------------------------------------------- */

/* Two nodes of 3 GiB and 1 GiB, real nodes 0 and 1. */
static nh_topo two_nodes(void) {
  static nh_topo_node nodes[2];
  nodes[0] = (nh_topo_node){.os_index = 0, .bind_os_node = 0, .mem_bytes = 3 * GiB};
  nodes[1] = (nh_topo_node){.os_index = 1, .bind_os_node = 1, .mem_bytes = 1 * GiB};
  return (nh_topo){.nnodes = 2, .nodes = nodes};
}

static void cap(const nh_cgroup *cg, int split, uint32_t share, nh_node_limits *l) {
  const nh_topo t = two_nodes();
  l[0] = (nh_node_limits){.budget = 2 * GiB, .reserve = 10 * MiB};
  l[1] = (nh_node_limits){.budget = 800 * MiB, .reserve = 10 * MiB};
  nh_cgroup_cap_budgets(cg, &t, split, share, l);
}

static void test_caps(void **state) {
  (void)state;
  static nh_cgroup cg;
  memset(&cg, 0, sizeof cg);
  cg.version = 2;
  cg.max = 1 * GiB;
  cg.high = NH_CGROUP_NO_LIMIT;
  nh_node_limits l[2];
  cap(&cg, NH_CGROUP_SPLIT_PROPORTIONAL, 100000, l);
  assert_true(l[0].budget == 768 * MiB && l[1].budget == 256 * MiB); /* 3:1 */
  assert_true(l[0].reserve == 10 * MiB * 768 / 2048 && l[1].reserve == 10 * MiB * 256 / 800);
  cap(&cg, NH_CGROUP_SPLIT_PROPORTIONAL, 50000, l);
  assert_true(l[0].budget == 384 * MiB && l[1].budget == 128 * MiB);
  cap(&cg, NH_CGROUP_SPLIT_EQUAL, 100000, l);
  assert_true(l[0].budget == 512 * MiB && l[1].budget == 512 * MiB);
  cap(&cg, NH_CGROUP_SPLIT_OFF, 100000, l);
  assert_true(l[0].budget == 2 * GiB && l[1].budget == 800 * MiB);
  cg.high = 256 * MiB; /* memory.high caps nothing: the kernel fails nothing there */
  cap(&cg, NH_CGROUP_SPLIT_PROPORTIONAL, 100000, l);
  assert_true(l[0].budget == 768 * MiB && l[1].budget == 256 * MiB);
  cg.max = NH_CGROUP_NO_LIMIT;
  cap(&cg, NH_CGROUP_SPLIT_PROPORTIONAL, 100000, l);
  assert_true(l[0].budget == 2 * GiB && l[1].budget == 800 * MiB);
  cg.high = NH_CGROUP_NO_LIMIT;
  cg.max = 8 * GiB; /* a loose limit: the node budgets stand */
  cap(&cg, NH_CGROUP_SPLIT_PROPORTIONAL, 90000, l);
  assert_true(l[0].budget == 2 * GiB && l[1].budget == 800 * MiB);
  /* cpuset.mems without node 1: its budget is 0, node 0 gets the whole share */
  cg.max = 1 * GiB;
  cg.has_mems = 1;
  cg.mems[0] = 1;
  cap(&cg, NH_CGROUP_SPLIT_PROPORTIONAL, 100000, l);
  assert_true(l[0].budget == 1 * GiB && l[1].budget == 0);
  cg.max = NH_CGROUP_NO_LIMIT;
  cap(&cg, NH_CGROUP_SPLIT_PROPORTIONAL, 100000, l);
  assert_true(l[0].budget == 2 * GiB && l[1].budget == 0);
  cg.version = 0; /* no cgroup: nothing changes */
  cap(&cg, NH_CGROUP_SPLIT_PROPORTIONAL, 100000, l);
  assert_true(l[0].budget == 2 * GiB && l[1].budget == 800 * MiB);
}

static void test_print(void **state) {
  (void)state;
  v2_tree();
  static nh_cgroup cg;
  read_ok(&cg);
  char buf[2048];
  FILE *f = fmemopen(buf, sizeof buf, "w");
  nh_cgroup_print(&cg, f, 1);
  fclose(f);
  assert_non_null(strstr(buf, "\"version\":2"));
  assert_non_null(strstr(buf, "\"max\":1073741824"));
  assert_non_null(strstr(buf, "\"high\":805306368"));
  assert_non_null(strstr(buf, "\"mems\":\"1,3\""));
  f = fmemopen(buf, sizeof buf, "w");
  nh_cgroup_print(&cg, f, 0);
  fclose(f);
  assert_non_null(strstr(buf, "cgroup: v2 /a/b/c: max 1024 MiB high 768 MiB"));
}

/* A group name with a quote, a backslash and a tab: the JSON escapes them
 * (the text form prints the name as it is). */
static void test_print_escapes_the_path(void **state) {
  (void)state;
  put("proc/self/cgroup", "0::/a\"b\\c\td\n");
  put("proc/self/mountinfo", V2_MOUNT);
  put(V2 "/a\"b\\c\td/memory.max", "1048576\n");
  static nh_cgroup cg;
  read_ok(&cg);
  assert_string_equal(cg.path, "/a\"b\\c\td");
  assert_true(cg.max == MiB);
  char buf[2048];
  FILE *f = fmemopen(buf, sizeof buf, "w");
  nh_cgroup_print(&cg, f, 1);
  fclose(f);
  assert_non_null(strstr(buf, "\"path\":\"/a\\\"b\\\\c\\td\",\"max\":1048576"));
  f = fmemopen(buf, sizeof buf, "w");
  nh_json_string(f, "\x01\x7f\n\xe2\x82\xac\xe2\x82\xc3\xa9\xed\xa0\x80");
  fclose(f);
  /* control characters; the euro sign kept; a cut sequence and a surrogate
   * replaced byte by byte */
  assert_string_equal(buf, "\"\\u0001\\u007f\\n\xe2\x82\xac\\ufffd\\ufffd\xc3\xa9"
                           "\\ufffd\\ufffd\\ufffd\"");
}

/* ---- the allocator inside a fake group ------------------------------------------- */

#define TWO_NODES "package:2 numa:1 core:1 pu:1"

static void start_in_group_reread(const char *split, const char *reread) {
  put("proc/self/cgroup", "0::/job\n");
  put("proc/self/mountinfo", V2_MOUNT);
  put(V2 "/job/memory.max", "67108864\n"); /* 64 MiB */
  put(V2 "/job/memory.current", "16777216\n");
  setenv("NUMAHEAP_TEST_CGROUP_ROOT", root, 1);
  nh_test_start(TWO_NODES, "cgroup", "split", split, "cache", "mode", "off", "cgroup", "reread",
                reread, NULL);
  unsetenv("NUMAHEAP_TEST_CGROUP_ROOT");
}

static void start_in_group(const char *split) { start_in_group_reread(split, "1000"); }

/* A container resized while the allocator runs: memory gets tight, the
 * cgroup is read again, the budgets follow. */
static void test_allocator_follows_a_resize(void **state) {
  (void)state;
  start_in_group_reread("equal", "1");
  assert_true(nh_test_node_stats(0).budget == (uint64_t)(64 * MiB * 0.9) / 2);
  put(V2 "/job/memory.max", "33554432\n"); /* 32 MiB */
  usleep(20000); /* past [cgroup] reread on the coarse (jiffy) clock */
  nh_container_tight();
  assert_true(nh_test_node_stats(0).budget == (uint64_t)(32 * MiB * 0.9) / 2);
  assert_true(nh_test_node_stats(1).budget == (uint64_t)(32 * MiB * 0.9) / 2);
  static nh_stats st;
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  assert_int_equal(nh_stats_get(&st), 0);
  assert_true(st.cgroup.limit == 32 * MiB && st.cgroup.rereads >= 1);
  /* reread = 0: read at start only */
  start_in_group_reread("equal", "0");
  put(V2 "/job/memory.max", "16777216\n");
  nh_container_tight();
  assert_true(nh_test_node_stats(0).budget == (uint64_t)(64 * MiB * 0.9) / 2);
}

static void test_allocator_budgets_follow_the_limit(void **state) {
  (void)state;
  start_in_group("equal");
  static nh_stats st;
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  assert_int_equal(nh_stats_get(&st), 0);
  assert_int_equal(st.cgroup.version, 2);
  assert_true(st.cgroup.limit == 64 * MiB);
  assert_true(st.cgroup.usage == 16 * MiB);
  uint64_t want = (uint64_t)(64 * MiB * 0.9) / 2;
  assert_true(st.nodes[0].budget == want && st.nodes[1].budget == want);
  /* allocation fails cleanly at the budgets, after spilling to node 1 */
  put(V2 "/job/memory.current", "1048576\n"); /* room enough: the budgets bind */
  usleep(20000);                              /* the heaps re-read it every 10 ms */
  void *p[128];
  int n = 0;
  while (n < 128 && (p[n] = nh_malloc(MiB)) != NULL) n++;
  if (n < 48 || n > 57) fail_msg("%d blocks of 1 MiB within 57.6 MiB of budgets", n);
  assert_null(nh_malloc(MiB));
  assert_int_equal(errno, ENOMEM);
  for (int i = 0; i < n; i++) nh_free(p[i]);
  /* the cgroup's own usage bounds growth too (THP, stacks, files: what the
   * budgets do not count): with 60 MiB used of 64 nothing new is taken */
  nh_trim();
  put(V2 "/job/memory.current", "62914560\n");
  usleep(20000);
  errno = 0;
  assert_null(nh_malloc(MiB));
  assert_int_equal(errno, ENOMEM);
  put(V2 "/job/memory.current", "1048576\n");
  usleep(20000);
  void *q = nh_malloc(MiB);
  assert_non_null(q);
  nh_free(q);
  /* the text and JSON stats name it */
  char buf[1 << 16];
  FILE *f = fmemopen(buf, sizeof buf, "w");
  assert_int_equal(nh_stats_print(f, 1), 0);
  fclose(f);
  assert_non_null(strstr(buf, "\"cgroup\":{\"version\":2,\"limit\":67108864"));
  /* split off: the node budgets stand */
  start_in_group("off");
  assert_int_equal(nh_stats_get(&st), 0);
  assert_true(st.nodes[0].budget > 64 * MiB);
}

static void test_host_load_is_the_groups(void **state) {
  (void)state;
  start_in_group("proportional");
  IHostMemoryManager *m = NULL;
  assert_int_equal(NhCreateHostMemoryManager(&m), S_OK);
  DWORD load;
  SIZE_T avail;
  assert_int_equal(IHostMemoryManager_GetMemoryLoad(m, &load, &avail), S_OK);
  assert_int_equal(load, 25); /* 16 MiB of 64 */
  assert_true(avail <= 48 * MiB);
  put(V2 "/job/memory.current", "50331648\n"); /* 48 MiB */
  assert_int_equal(IHostMemoryManager_GetMemoryLoad(m, &load, &avail), S_OK);
  assert_int_equal(load, 75);
  assert_true(avail == 16 * MiB);
  IHostMemoryManager_Release(m);
}

/* ---- memory.high: a soft limit ------------------------------------------------------ */

static _Atomic int notes[4]; /* notifications received, by EMemoryAvailable */

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
  atomic_fetch_add(&notes[e], 1);
  return S_OK;
}
static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {cb_qi, cb_ref, cb_ref, cb_note};
static ICLRMemoryNotificationCallback note_cb = {&cb_vtbl};

/* Waits up to 3 s for notes[what] to reach want, then checks that it stays
 * there for 400 ms (the notifier polls every 100 ms). */
static void expect_notes(int what, int want) {
  for (int i = 0; i < 300 && atomic_load(&notes[what]) < want; i++) usleep(10000);
  usleep(400000);
  assert_int_equal(atomic_load(&notes[what]), want);
}

/* Starts the allocator in /job with these memory.max and memory.high. */
static void start_with_high(const char *max, const char *high, const char *current) {
  put("proc/self/cgroup", "0::/job\n");
  put("proc/self/mountinfo", V2_MOUNT);
  put(V2 "/job/memory.max", max);
  put(V2 "/job/memory.high", high);
  put(V2 "/job/memory.current", current);
  setenv("NUMAHEAP_TEST_CGROUP_ROOT", root, 1);
  nh_test_start(TWO_NODES, "cgroup", "split", "proportional", "cache", "mode", "off", "notify",
                "psi", "0", "notify", "low", "90",
                "notify", "high", "60", NULL);
  unsetenv("NUMAHEAP_TEST_CGROUP_ROOT");
}

static nh_stats *stats_now(void) {
  static nh_stats st;
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  assert_int_equal(nh_stats_get(&st), 0);
  return &st;
}

/* The kernel fails nothing at memory.high (it throttles and reclaims): no
 * budget is capped by it and nothing fails above it. GetMemoryLoad is
 * against it when there is no memory.max. */
static void test_high_caps_nothing(void **state) {
  (void)state;
  start_with_high("max\n", "33554432\n", "8388608\n"); /* high 32 MiB, 8 used */
  nh_stats *st = stats_now();
  assert_true(st->cgroup.limit == UINT64_MAX && st->cgroup.high == 32 * MiB);
  assert_true(st->nodes[0].budget > 64 * MiB && st->nodes[1].budget > 64 * MiB);
  IHostMemoryManager *m = NULL;
  assert_int_equal(NhCreateHostMemoryManager(&m), S_OK);
  DWORD load;
  SIZE_T avail;
  assert_int_equal(IHostMemoryManager_GetMemoryLoad(m, &load, &avail), S_OK);
  assert_int_equal(load, 25);
  assert_true(avail == 24 * MiB);
  put(V2 "/job/memory.current", "41943040\n"); /* 40 MiB: over high */
  usleep(20000);                                /* the heaps re-read it every 10 ms */
  static void *p[48];
  for (int i = 0; i < 48; i++) assert_non_null(p[i] = nh_malloc(MiB));
  for (int i = 0; i < 48; i++) nh_free(p[i]);
  assert_int_equal(IHostMemoryManager_GetMemoryLoad(m, &load, &avail), S_OK);
  assert_int_equal(load, 100);
  assert_true(avail == 0);
  IHostMemoryManager_Release(m);
  /* with a memory.max too: it caps the budgets and is what the load is against */
  start_with_high("134217728\n", "33554432\n", "67108864\n"); /* max 128, high 32, 64 used */
  st = stats_now();
  assert_true(st->cgroup.limit == 128 * MiB && st->cgroup.high == 32 * MiB);
  assert_true(st->nodes[0].budget == (uint64_t)(128 * MiB * 0.9) / 2);
  assert_int_equal(NhCreateHostMemoryManager(&m), S_OK);
  assert_int_equal(IHostMemoryManager_GetMemoryLoad(m, &load, &avail), S_OK);
  assert_int_equal(load, 50);
  IHostMemoryManager_Release(m);
}

/* The notifier sends Low when the usage reaches memory.high (and trims),
 * High when it falls under [notify] high / [notify] low of it (60/90: two
 * thirds), not between. */
static void test_high_sends_low(void **state) {
  (void)state;
  start_with_high("max\n", "33554432\n", "8388608\n");
  IHostMemoryManager *m = NULL;
  assert_int_equal(NhCreateHostMemoryManager(&m), S_OK);
  for (int i = 0; i < 4; i++) atomic_store(&notes[i], 0);
  assert_int_equal(IHostMemoryManager_RegisterMemoryNotificationCallback(m, &note_cb), S_OK);
  expect_notes(eMemoryAvailableLow, 0); /* 25% of high */
  uint64_t trims = stats_now()->cgroup.low_trims;
  put(V2 "/job/memory.current", "33554432\n"); /* at high */
  expect_notes(eMemoryAvailableLow, 1);
  nh_stats *st = stats_now();
  assert_true(st->cgroup.high_lows == 1 && st->cgroup.psi_lows == 0);
  assert_true(st->cgroup.low_trims > trims);
  put(V2 "/job/memory.current", "25165824\n"); /* 24 MiB: 75% of high, above two thirds */
  expect_notes(eMemoryAvailableHigh, 0);
  put(V2 "/job/memory.current", "20971520\n"); /* 20 MiB: 62.5% */
  expect_notes(eMemoryAvailableHigh, 1);
  expect_notes(eMemoryAvailableLow, 1);
  assert_int_equal(IHostMemoryManager_RegisterMemoryNotificationCallback(m, NULL), S_OK);
  IHostMemoryManager_Release(m);
}

/* ---- binding ---------------------------------------------------------------------- */

/* The policy of the page holding p (get_mempolicy with MPOL_F_ADDR), and its node. */
static int policy_of(void *p, int *node) {
  unsigned long mask[16] = {0};
  int mode = -1;
  if (syscall(SYS_get_mempolicy, &mode, mask, sizeof mask * 8, p, 2UL /* MPOL_F_ADDR */) != 0)
    fail_msg("get_mempolicy: %s", strerror(errno));
  *node = -1;
  for (int i = 0; i < 1024; i++)
    if (mask[i / 64] >> (i % 64) & 1) {
      *node = i;
      break;
    }
  return mode;
}

static void test_segments_bound_preferred_or_strict(void **state) {
  (void)state;
  nh_test_start(NULL, "cache", "mode", "off", NULL);
  void *p = nh_malloc(100);
  int node, mode = policy_of(p, &node);
  /* MPOL_PREFERRED_MANY (5) on 5.15+, else MPOL_PREFERRED (1); of the heap's node */
  assert_true(mode == 5 || mode == 1);
  assert_string_equal(nh_os_bind_name(), mode == 5 ? "preferred_many" : "preferred");
  assert_int_equal(node, nh_g.heap[0].os_node);
  nh_free(p);
  nh_test_start(NULL, "cache", "mode", "off", "heap", "bind", "strict", NULL);
  p = nh_malloc(100);
  assert_int_equal(policy_of(p, &node), 2); /* MPOL_BIND */
  assert_int_equal(node, nh_g.heap[0].os_node);
  assert_string_equal(nh_os_bind_name(), "bind");
  nh_free(p);
  nh_test_start(NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_v2_nested_takes_the_tightest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refresh_follows_a_resize, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v2_no_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_allocator_follows_a_resize, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v2_namespace_mount_root, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v1_memory_controller, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v1_cpusets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v1_cpusets_fallbacks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v1_cpusets_beside_v2, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_cgroup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
      cmocka_unit_test(test_caps),
      cmocka_unit_test_setup_teardown(test_print, setup, teardown),
      cmocka_unit_test_setup_teardown(test_print_escapes_the_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_allocator_budgets_follow_the_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_load_is_the_groups, setup, teardown),
      cmocka_unit_test_setup_teardown(test_high_caps_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_high_sends_low, setup, teardown),
      cmocka_unit_test(test_segments_bound_preferred_or_strict),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
