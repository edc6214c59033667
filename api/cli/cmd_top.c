/*
 * api/cli/cmd_top.c: numaheap top PID [--interval S] [--count N].
 * A refreshing per-node table of a process's published statistics: rates
 * between two snapshots (allocations, frees, remote frees per second, the
 * CPU caches' hit rate), totals of the rare events (fallbacks in and out,
 * failures per level) and the current bytes (committed, in use, and huge
 * pages, thp_bytes + hugetlb_bytes, when the library publishes them).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/cli/cli.h"

static int top_main(int argc, char **argv);

const nh_cli_command nh_cli_top = {
    "top", "PID [--interval S] [--count N]",
    "A per-node table of process PID's live statistics, refreshed every S\n"
    "seconds (default 1) until interrupted, or N times:\n"
    "  ALLOC/s FREE/s RFREE/s  blocks handed out, returned, and returned from\n"
    "                          another node, per second since the previous snapshot\n"
    "  FB_IN FB_OUT            requests served for another node / by another node\n"
    "  FAIL T/A/P              failed requests per level (task/appdomain/process)\n"
    "  HIT%                    allocations the CPU caches of the node served\n"
    "  COMMITTED IN_USE        bytes taken from the OS, bytes in blocks\n"
    "  HUGE                    bytes in huge pages (when the library publishes them)\n"
    "The process publishes a snapshot every [stats] publish_interval ms (1000 by\n"
    "default): refreshing faster than that shows the same rates again.\n"
    "\n"
    "  --interval S    seconds between refreshes (0.1 to 3600)\n"
    "  --count N       stop after N tables\n"
    "\n"
    "Exit status: 0 (also when the process exits while watched); 1 no consistent\n"
    "snapshot; 2 bad usage; 3 no such process; 4 not on numaheap; 5 another\n"
    "user's process; 6 a layout version this command does not read.\n",
    top_main};

/* Rates of one node between two snapshots. */
typedef struct node_rates {
  double allocs, frees, remote_frees, hit_pct; /* hit_pct < 0: no cache traffic */
} node_rates;

#define MAX_ROWS (NH_STATS_MAX_NODES + 1) /* the nodes, then the total */

typedef struct top_state {
  nh_cli_region prev;      /* copy of the previous snapshot (prev.h NULL: none yet) */
  node_rates rates[MAX_ROWS];
  double seconds;          /* between the two snapshots the rates come from */
} top_state;

static double per_s(uint64_t now, uint64_t before, double dt) {
  return now >= before && dt > 0 ? (double)(now - before) / dt : 0;
}

/* Hit and miss deltas of the CPUs of node (node < 0: every CPU). */
static double hit_pct(const nh_cli_region *cur, const nh_cli_region *prev, int node) {
  uint64_t dh = 0, dm = 0;
  uint32_t n = nh_cli_section(cur, NH_PUB_CPU)->count;
  if (nh_cli_section(prev, NH_PUB_CPU)->count < n) n = nh_cli_section(prev, NH_PUB_CPU)->count;
  for (uint32_t i = 0; i < n; i++) {
    if (node >= 0 && (int)nh_cli_value(cur, NH_PUB_CPU, i, "node") != node) continue;
    dh += nh_cli_value(cur, NH_PUB_CPU, i, "hits") - nh_cli_value(prev, NH_PUB_CPU, i, "hits");
    dm += nh_cli_value(cur, NH_PUB_CPU, i, "misses") - nh_cli_value(prev, NH_PUB_CPU, i, "misses");
  }
  return dh + dm ? 100.0 * (double)dh / (double)(dh + dm) : -1;
}

static uint64_t node_sum(const nh_cli_region *r, const char *name) {
  uint64_t t = 0;
  for (uint32_t i = 0; i < nh_cli_section(r, NH_PUB_NODE)->count; i++)
    t += nh_cli_value(r, NH_PUB_NODE, i, name);
  return t;
}

/* Value of a node row (row == count: the total). */
static uint64_t row_value(const nh_cli_region *r, uint32_t row, const char *name) {
  return row == nh_cli_section(r, NH_PUB_NODE)->count ? node_sum(r, name)
                                                       : nh_cli_value(r, NH_PUB_NODE, row, name);
}

static void update_rates(top_state *t, const nh_cli_region *cur) {
  const nh_cli_region *prev = &t->prev;
  double dt = (double)(cur->h->updated_ns - prev->h->updated_ns) / 1e9;
  uint32_t n = nh_cli_section(cur, NH_PUB_NODE)->count;
  for (uint32_t row = 0; row <= n && row < MAX_ROWS; row++) {
    node_rates *nr = &t->rates[row];
    nr->allocs = per_s(row_value(cur, row, "allocs"), row_value(prev, row, "allocs"), dt);
    nr->frees = per_s(row_value(cur, row, "frees"), row_value(prev, row, "frees"), dt);
    nr->remote_frees =
        per_s(row_value(cur, row, "remote_frees"), row_value(prev, row, "remote_frees"), dt);
    nr->hit_pct = hit_pct(cur, prev, row == n ? -1 : (int)row);
  }
  t->seconds = dt;
}

/* Keeps cur as the previous snapshot when it is newer; recomputes the rates. */
static int advance(top_state *t, const nh_cli_region *cur) {
  if (t->prev.h != NULL && cur->h->updated_ns <= t->prev.h->updated_ns) return 0;
  if (t->prev.h != NULL && nh_cli_section(cur, NH_PUB_NODE)->count ==
                               nh_cli_section(&t->prev, NH_PUB_NODE)->count)
    update_rates(t, cur);
  if (t->prev.copy == NULL || t->prev.map_size != cur->map_size) {
    free(t->prev.copy);
    if ((t->prev.copy = malloc(cur->map_size)) == NULL) return -1;
  }
  memcpy(t->prev.copy, cur->copy, cur->map_size);
  t->prev.map_size = cur->map_size;
  t->prev.h = (const nh_pub_header *)t->prev.copy;
  return 0;
}

static void print_row(const nh_cli_region *r, const top_state *t, uint32_t row, int huge) {
  uint32_t n = nh_cli_section(r, NH_PUB_NODE)->count;
  const node_rates *nr = &t->rates[row];
  char label[16], fails[48], hit[16], c[24], u[24], hg[24];
  if (row == n) snprintf(label, sizeof label, "total");
  else snprintf(label, sizeof label, "%" PRIu64, row_value(r, row, "node"));
  snprintf(fails, sizeof fails, "%" PRIu64 "/%" PRIu64 "/%" PRIu64, row_value(r, row, "failures_task"),
           row_value(r, row, "failures_appdomain"), row_value(r, row, "failures_process"));
  if (t->seconds <= 0 || nr->hit_pct < 0) snprintf(hit, sizeof hit, "-");
  else snprintf(hit, sizeof hit, "%.1f", nr->hit_pct);
  nh_cli_bytes(c, sizeof c, row_value(r, row, "committed"));
  nh_cli_bytes(u, sizeof u, row_value(r, row, "in_use"));
  printf("%-6s %10.0f %10.0f %9.0f %8" PRIu64 " %8" PRIu64 " %14s %6s %11s %11s", label, nr->allocs,
         nr->frees, nr->remote_frees, row_value(r, row, "fallback_in"),
         row_value(r, row, "fallback_out"), fails, hit, c, u);
  if (huge) {
    nh_cli_bytes(hg, sizeof hg, row_value(r, row, "thp_bytes") + row_value(r, row, "hugetlb_bytes"));
    printf(" %11s", hg);
  }
  printf("\n");
}

static void print_table(const nh_cli_region *r, const top_state *t, double interval, int clear) {
  int huge = nh_cli_field(r, NH_PUB_NODE, "thp_bytes") >= 0;
  char when[32];
  time_t now = time(NULL);
  strftime(when, sizeof when, "%H:%M:%S", localtime(&now));
  if (clear) printf("\033[H\033[2J");
  printf("numaheap top - process %d (%s), library %.16s, cache %.16s   %s\n", (int)r->pid, r->comm,
         r->h->library, r->h->cache_mode, when);
  printf("refresh %.1f s; snapshots every %" PRIu64 " ms; rates over %.1f s\n", interval,
         r->h->interval_ms, t->seconds);
  printf("%-6s %10s %10s %9s %8s %8s %14s %6s %11s %11s%s\n", "NODE", "ALLOC/s", "FREE/s",
         "RFREE/s", "FB_IN", "FB_OUT", "FAIL T/A/P", "HIT%", "COMMITTED", "IN_USE",
         huge ? "        HUGE" : "");
  uint32_t n = nh_cli_section(r, NH_PUB_NODE)->count;
  for (uint32_t row = 0; row <= n && row < MAX_ROWS; row++) print_row(r, t, row, huge);
  fflush(stdout);
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int parse_args(int argc, char **argv, pid_t *pid, double *interval, long *count) {
  const char *pid_arg = NULL, *v;
  for (int i = 1; i < argc; i++) {
    int o;
    if (nh_cli_is_help(&nh_cli_top, argv[i])) return 0;
    if ((o = nh_cli_opt_value(&nh_cli_top, argc, argv, &i, "interval", &v)) != 0) {
      if (o < 0 || nh_cli_parse_double(&nh_cli_top, "--interval", v, 0.099, 3600, interval) != 0)
        return 2;
    } else if ((o = nh_cli_opt_value(&nh_cli_top, argc, argv, &i, "count", &v)) != 0) {
      if (o < 0 || nh_cli_parse_long(&nh_cli_top, "--count", v, 1, 1000000000, count) != 0) return 2;
    } else if (argv[i][0] == '-') {
      return nh_cli_bad_usage(&nh_cli_top, "unknown option \"%s\"", argv[i]);
    } else if (pid_arg) {
      return nh_cli_bad_usage(&nh_cli_top, "expects one PID, got more");
    } else {
      pid_arg = argv[i];
    }
  }
  if (pid_arg == NULL) return nh_cli_bad_usage(&nh_cli_top, "no PID given");
  return nh_cli_parse_pid(&nh_cli_top, pid_arg, pid) == 0 ? -1 : 2;
}

static int top_main(int argc, char **argv) {
  pid_t pid;
  double interval = 1;
  long count = -1;
  int rc = parse_args(argc, argv, &pid, &interval, &count);
  if (rc >= 0) return rc; /* help shown, or bad usage */
  nh_cli_region r;
  static top_state t;
  if ((rc = nh_cli_region_open(pid, 0, &r)) == 0 && (rc = nh_cli_region_read(&r)) == 0)
    rc = advance(&t, &r) == 0 ? 0 : 1;
  int clear = isatty(STDOUT_FILENO);
  for (long shown = 0; rc == 0 && (count < 0 || shown < count); shown++) {
    sleep_s(interval);
    if (nh_cli_region_read(&r) != 0 || advance(&t, &r) != 0) {
      rc = 1;
      break;
    }
    print_table(&r, &t, interval, clear);
    /* the process is gone once its region is: /proc/PID/fd no longer holds it */
    nh_cli_region probe;
    if (nh_cli_region_open(pid, 1, &probe) != 0) {
      printf("process %d has exited\n", (int)pid);
      break;
    }
    nh_cli_region_close(&probe);
  }
  nh_cli_region_close(&r);
  free(t.prev.copy);
  return rc;
}
