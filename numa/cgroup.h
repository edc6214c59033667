/*
 * numa/cgroup.h: the process's control group, as a value.
 *
 * What a container grants: the hard memory limit (cgroup v2 memory.max, the
 * tightest along the chain of nested groups; v1's memory.limit_in_bytes
 * where the machine has the v1 memory controller), the soft one (v2
 * memory.high: the kernel throttles and reclaims there, it fails nothing),
 * the usage counted against each (memory.current, v1 memory.usage_in_bytes)
 * and the nodes and CPUs it may use (cpuset.mems.effective,
 * cpuset.cpus.effective). Nothing here decides anything: api/ caps the
 * node budgets by the hard limit with nh_cgroup_cap_budgets() and reads the
 * usage for the memory load; memory.high is where the notifier sends Low.
 *
 * Files are read with nh_os_read_file into stack buffers (mountinfo into
 * pages from nh_os_meta_alloc): no malloc, so
 * this runs while numaheap starts as the process's malloc. Every path is
 * taken under a root prefix ("" for the real machine); tests pass a fake
 * tree (tests/data/cgroup/...) that holds proc/self/cgroup,
 * proc/self/mountinfo and the group directories the mountinfo names.
 *
 * Concurrency: an nh_cgroup is a plain value; whoever shares one guards it
 * (api/container.c).
 */
#ifndef NH_NUMA_CGROUP_H
#define NH_NUMA_CGROUP_H

#include <stddef.h>
#include <stdint.h>

#include "numa/topo.h"

#define NH_CGROUP_PATH_MAX 512
#define NH_CGROUP_NODE_WORDS 16 /* node masks cover OS nodes 0..1023 */
#define NH_CGROUP_NO_LIMIT UINT64_MAX

typedef struct nh_cgroup {
  int version;                  /* 0: no cgroup found (or no memory controller), 1 or 2 */
  char path[NH_CGROUP_PATH_MAX];  /* the group, as /proc/self/cgroup names it */
  char dir[NH_CGROUP_PATH_MAX];   /* its directory (root prefix included) */
  char limit_dir[NH_CGROUP_PATH_MAX]; /* the group whose max is the tightest (dir if none) */
  char high_dir[NH_CGROUP_PATH_MAX];  /* the group whose high is the tightest (dir if none) */
  uint64_t max;                 /* tightest hard limit; NH_CGROUP_NO_LIMIT if none */
  uint64_t high;                /* tightest memory.high (v2); NH_CGROUP_NO_LIMIT if none */
  uint64_t usage;               /* limit_dir's memory.current when last read */
  uint64_t high_usage;          /* high_dir's memory.current when last read */
  int has_mems, has_cpus;       /* 1 when the cpuset files were found */
  uint64_t mems[NH_CGROUP_NODE_WORDS]; /* OS nodes the group may use */
  char mems_text[128], cpus_text[256]; /* the files' text, for reports */
  size_t top_len;               /* length of the mount's directory in dir */
  int cpuset_version;           /* hierarchy of the cpuset files: 0 none, 1 or 2 */
  int cpuset_noprefix;          /* v1 mounted with noprefix: "mems", not "cpuset.mems" */
  char cpuset_dir[NH_CGROUP_PATH_MAX]; /* the group in the cpuset's hierarchy */
  size_t cpuset_top_len;        /* length of that mount's directory in cpuset_dir */
} nh_cgroup;

/* Reads the process's cgroup under root ("" or NULL: the real machine).
 * 0 with *cg filled (cg->version 0 when the process is in no cgroup with a
 * memory controller: not an error); -1 with err naming the file and the
 * problem when a file the kernel always writes is unreadable or malformed
 * (then *cg says no cgroup). */
int nh_cgroup_read(nh_cgroup *cg, const char *root, char *err, size_t errlen);

/* Reads the limits, cpusets and usage of the group cg names again, in
 * place (not /proc: the group is taken to be the same), with small stack
 * buffers only (it runs on allocating threads). 0, or -1 with err (*cg then
 * half updated: callers refresh a copy). */
int nh_cgroup_refresh(nh_cgroup *cg, char *err, size_t errlen);

/* Re-reads cg->usage from limit_dir and cg->high_usage from high_dir. 0,
 * or -1 when a file was unreadable (its figure unchanged). */
int nh_cgroup_read_usage(nh_cgroup *cg);

/* The hard limit, which budgets and the heaps' room are capped by:
 * memory.max (v1 memory.limit_in_bytes); NH_CGROUP_NO_LIMIT if none.
 * memory.high is not one: the kernel fails no allocation there. */
static inline uint64_t nh_cgroup_limit(const nh_cgroup *cg) { return cg->max; }

/* Whether OS node os_node is in the group's cpuset.mems.effective (always
 * 1 when the file was not found). */
int nh_cgroup_has_mem_node(const nh_cgroup *cg, int os_node);

/* How the limit is split among nodes ([cgroup] split). */
enum { NH_CGROUP_SPLIT_PROPORTIONAL = 0, NH_CGROUP_SPLIT_EQUAL = 1, NH_CGROUP_SPLIT_OFF = 2 };

/* Caps the budgets of limits[] (one per logical node of t, as the config
 * gives them) so
 * that they sum to at most share_milli_pct of the cgroup's limit: a node
 * whose memory (its bind_os_node) is outside cpuset.mems gets 0; the others
 * get their share of the limit (by node memory, or equal), never more than
 * their own budget; a budget cut keeps its reserve's share of it. Nothing changes with split off, or without a limit
 * (apart from the cpuset's nodes). */
struct nh_node_limits;
void nh_cgroup_cap_budgets(const nh_cgroup *cg, const nh_topo *t, int split,
                           uint32_t share_milli_pct, struct nh_node_limits *limits);

/* ---- the room left under the limit, for the heaps ------------------------------
 * The node budgets count committed 64 KiB pages; the cgroup counts every
 * page the process holds, and more of them than numaheap commits when the
 * kernel backs a segment with transparent huge pages, plus stacks, libc and
 * file pages. So before growing, the heaps also ask how much the cgroup has
 * left (numa/segment.c's node_has_room, re-read every 10 ms per node):
 * limit - memory.current - slack (slack: 1/16 of the limit, 4 MiB to
 * 256 MiB). nh_cgroup_room_set(cg) starts it (NULL, version 0 or no limit:
 * stops it); UINT64_MAX while stopped. Synchronization: the path lives in
 * one of two buffers, published by a release store of its index (acquire
 * load); a set reuses the buffer of the set before last, and sets happen
 * only at start-up and when the limit changes. */
void nh_cgroup_room_set(const nh_cgroup *cg);
uint64_t nh_cgroup_room(void);

/* Writes what was found, as text (lines ending in newlines) or as one JSON
 * object (no newline). */
#include <stdio.h>
void nh_cgroup_print(const nh_cgroup *cg, FILE *out, int json);

#endif
