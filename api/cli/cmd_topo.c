/*
 * api/cli/cmd_topo.c: numaheap topo [--config FILE] [--json]. The topology,
 * then per node the budget, reserve and level limits the config gives, and
 * the order of nodes a request at each level would try.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cli/cli.h"
#include "numa/cgroup.h"
#include "numa/heap.h"
#include "numa/json.h"
#include "numa/os.h"

static int topo_main(int argc, char **argv);

const nh_cli_command nh_cli_topo = {
    "topo", "[--config FILE] [--json]",
    "Prints the topology numaheap would use (the machine's, or the one the\n"
    "configuration's [topology] section names): nodes, their CPUs and memory,\n"
    "the distance matrix; the process's cgroup (memory limit, usage, allowed\n"
    "nodes and CPUs); then, per node, the budget (capped by the cgroup's limit\n"
    "as [cgroup] split says), reserve and limit of each\n"
    "criticality level, and the order of nodes a request of each level made on\n"
    "that node would try (its spill setting decides how far it may fall back);\n"
    "last, the huge-page mode [heap] huge_pages puts in force on this kernel,\n"
    "and why, whether the kernel hands freed memory back to a hypervisor (free\n"
    "page reporting, which makes fresh huge pages slow), and the free 2 MiB\n"
    "pages reserved on each node.\n"
    "\n"
    "  --config FILE   read FILE (default: $NUMAHEAP_CONFIG, if set), then the\n"
    "                  NUMAHEAP_* variables, as the allocator does\n"
    "  --json          one JSON object instead of text\n"
    "\n"
    "Exit status: 0; 2 for bad usage or a bad configuration; 1 when the\n"
    "topology cannot be loaded.\n",
    topo_main};

static const char *const level_names[3] = {"task", "appdomain", "process"};
static const nh_opt spill_opt[3] = {NH_OPT_TASK_SPILL, NH_OPT_APPDOMAIN_SPILL, NH_OPT_PROCESS_SPILL};

static int reachable(const nh_topo *t, const nh_config *cfg, int level, int a, int b) {
  switch (cfg->v[spill_opt[level]].choice) {
  case NH_SPILL_NONE: return 0;
  case NH_SPILL_PACKAGE: return nh_topo_same_package(t, a, b);
  default: return 1;
  }
}

typedef struct limits { uint64_t budget, reserve, limit[NH_LEVELS]; } limits;

/* The cgroup numaheap would find (NUMAHEAP_TEST_CGROUP_ROOT: a fake tree). */
static nh_cgroup g_cg;

/* The budgets and reserves of every node, capped by the cgroup (api/init.c). */
static nh_node_limits *all_limits(const nh_topo *t, const nh_config *cfg) {
  nh_node_limits *nl = calloc((size_t)t->nnodes, sizeof *nl);
  if (nl == NULL) return NULL;
  for (int n = 0; n < t->nnodes; n++) {
    nh_size_spec b, r;
    nh_config_node_specs(cfg, n, &b, &r);
    nl[n].budget = nh_size_resolve(b, t->nodes[n].mem_bytes);
    nl[n].reserve = nh_size_resolve(r, t->nodes[n].mem_bytes);
  }
  nh_cgroup_cap_budgets(&g_cg, t, cfg->v[NH_OPT_CGROUP_SPLIT].choice,
                        cfg->v[NH_OPT_CGROUP_SHARE].milli_pct, nl);
  return nl;
}

/* What the running allocator would set for node n (api/init.c, numa/heap.c). */
static limits node_limits(const nh_topo *t, const nh_config *cfg, int n) {
  nh_node_limits *all = all_limits(t, cfg);
  nh_node_limits nl = all ? all[n] : (nh_node_limits){0, 0};
  free(all);
  limits l;
  nh_level_limits(nl, cfg->v[NH_OPT_TASK_LIMIT].milli_pct, l.limit);
  l.budget = nl.budget;
  l.reserve = l.limit[2] - l.limit[1];
  return l;
}

/* Prints the order of nodes tried from node n at level, separated by sep. */
static void print_order(FILE *out, const nh_topo *t, const nh_config *cfg, int n, int level,
                        const char *sep) {
  fprintf(out, "%d", n);
  for (int i = 0; i < t->nnodes - 1; i++) {
    int m = t->nodes[n].fallback[i];
    if (reachable(t, cfg, level, n, m)) fprintf(out, "%s%d", sep, m);
  }
}

/* The huge-page mode the allocator would put in force (numa/heap.c), and why. */
static int huge_mode(const nh_config *cfg, const char **why) {
  bool thp_ok;
  return nh_huge_mode_resolve(cfg->v[NH_OPT_HEAP_HUGE_PAGES].choice, nh_os_thp_mode(), &thp_ok, why);
}

static uint64_t free_hugepages(const nh_topo *t, int n) {
  int os = t->nodes[n].bind_os_node;
  return os >= 0 ? nh_os_node_free_hugepages(os) : 0;
}

/* Whether the kernel gives freed memory back to its hypervisor (free page
 * reporting; NUMAHEAP_TEST_SYSFS_ROOT: a fake tree), and from which block
 * size on (bytes, 0 if not known). */
static int page_reporting(uint64_t *from) {
  const char *root = getenv("NUMAHEAP_TEST_SYSFS_ROOT");
  int order;
  int on = nh_os_page_reporting(root ? root : "", &order);
  *from = on && order >= 0 ? (uint64_t)nh_os_page_size() << order : 0;
  return on;
}

/* What free page reporting means for huge pages (docs/numa.md, "Huge pages
 * on a virtual machine"). */
static void print_reporting_text(FILE *out, int mode) {
  uint64_t from;
  if (!page_reporting(&from)) return;
  char size[48] = "";
  if (from >= (1u << 20) && from % (1u << 20) == 0)
    snprintf(size, sizeof size, " of %" PRIu64 " MiB and more", from >> 20);
  else if (from)
    snprintf(size, sizeof size, " of %" PRIu64 " KiB and more", from >> 10);
  fprintf(out, "host: this kernel hands free memory blocks%s back to its hypervisor (free page "
               "reporting)%s\n", size,
          mode == NH_HUGE_THP
              ? "; a huge page faulted where the kernel had such a block waits for the host "
                "to back all of it again, several times what base pages cost, which come from "
                "smaller blocks (docs/numa.md): huge_pages = off spares short-lived processes that"
              : "");
}

static void print_huge_text(FILE *out, const nh_topo *t, const nh_config *cfg) {
  const char *why;
  int mode = huge_mode(cfg, &why);
  fprintf(out, "\nhuge pages: %s\n", why);
  print_reporting_text(out, mode);
  for (int n = 0; n < t->nnodes; n++)
    fprintf(out, "node %d: %" PRIu64 " free reserved 2 MiB pages\n", n, free_hugepages(t, n));
}

static void print_text(FILE *out, const nh_topo *t, const nh_config *cfg) {
  nh_topo_print(t, out, 0);
  if (g_cg.version != 0) { /* in no cgroup (or none with a memory controller): no line */
    fprintf(out, "\n");
    nh_cgroup_print(&g_cg, out, 0);
  }
  fprintf(out, "\nbudgets and fallback (criticality: task.limit %.1f%%; spill task=%s appdomain=%s process=%s)\n",
          cfg->v[NH_OPT_TASK_LIMIT].milli_pct / 1000.0,
          nh_options[NH_OPT_TASK_SPILL].choices[cfg->v[NH_OPT_TASK_SPILL].choice],
          nh_options[NH_OPT_APPDOMAIN_SPILL].choices[cfg->v[NH_OPT_APPDOMAIN_SPILL].choice],
          nh_options[NH_OPT_PROCESS_SPILL].choices[cfg->v[NH_OPT_PROCESS_SPILL].choice]);
  for (int n = 0; n < t->nnodes; n++) {
    limits l = node_limits(t, cfg, n);
    fprintf(out, "node %d: budget %" PRIu64 " MiB, reserve %" PRIu64 " MiB; limits task %" PRIu64
                 " MiB, appdomain %" PRIu64 " MiB, process %" PRIu64 " MiB\n",
            n, l.budget >> 20, l.reserve >> 20, l.limit[0] >> 20, l.limit[1] >> 20, l.limit[2] >> 20);
    for (int lv = 0; lv < 3; lv++) {
      fprintf(out, "  %-9s tries ", level_names[lv]);
      print_order(out, t, cfg, n, lv, " -> ");
      fprintf(out, "\n");
    }
  }
  print_huge_text(out, t, cfg);
}

static void print_json(FILE *out, const nh_topo *t, const nh_config *cfg) {
  fprintf(out, "{\"topology\":");
  nh_topo_print(t, out, 1);
  fprintf(out, ",\"cgroup\":");
  nh_cgroup_print(&g_cg, out, 1);
  fprintf(out, ",\"nodes\":[");
  for (int n = 0; n < t->nnodes; n++) {
    limits l = node_limits(t, cfg, n);
    fprintf(out, "%s{\"node\":%d,\"budget\":%" PRIu64 ",\"reserve\":%" PRIu64
                 ",\"free_hugepages\":%" PRIu64, n ? "," : "", n, l.budget, l.reserve,
            free_hugepages(t, n));
    for (int lv = 0; lv < 3; lv++) {
      fprintf(out, ",\"%s\":{\"limit\":%" PRIu64 ",\"order\":[", level_names[lv], l.limit[lv]);
      print_order(out, t, cfg, n, lv, ",");
      fprintf(out, "]}");
    }
    fprintf(out, "}");
  }
  const char *why;
  int mode = huge_mode(cfg, &why);
  fprintf(out, "],\"huge_pages\":{\"mode\":\"%s\",\"why\":",
          nh_options[NH_OPT_HEAP_HUGE_PAGES].choices[mode]);
  nh_json_string(out, why);
  uint64_t from;
  int reporting = page_reporting(&from);
  fprintf(out, ",\"free_page_reporting\":%s", reporting ? "true" : "false");
  if (reporting && from) fprintf(out, ",\"free_page_reporting_from\":%" PRIu64, from);
  fputs("}}\n", out);
}

static int topo_main(int argc, char **argv) {
  const char *config = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (nh_cli_is_help(&nh_cli_topo, argv[i])) return 0;
    int got = nh_cli_opt_value(&nh_cli_topo, argc, argv, &i, "config", &config);
    if (got < 0) return 2;
    if (got > 0) continue;
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (argv[i][0] == '-') return nh_cli_bad_usage(&nh_cli_topo, "unknown option \"%s\"", argv[i]);
    else return nh_cli_bad_usage(&nh_cli_topo, "unexpected argument \"%s\"", argv[i]);
  }
  static nh_config cfg;
  nh_topo topo;
  if (nh_cli_load_config(&cfg, config) != 0) return 2;
  if (nh_cli_load_topology(&cfg, &topo) != 0) return 1;
  char err[600];
  const char *root = getenv("NUMAHEAP_TEST_CGROUP_ROOT");
  if (nh_cgroup_read(&g_cg, root ? root : "", err, sizeof err) != 0)
    fprintf(stderr, "numaheap topo: %s; the cgroup's limits are not applied\n", err);
  if (json) print_json(stdout, &topo, &cfg);
  else print_text(stdout, &topo, &cfg);
  nh_topo_free(&topo);
  fflush(stdout);
  return ferror(stdout) ? 1 : 0;
}
