/*
 * api/cli/cmd_stats.c: numaheap stats [PID] [--json|--prometheus].
 * With a PID: the process's published statistics (api/cli/region.c) as
 * text, JSON or the Prometheus text exposition format. Without: the running
 * processes that publish numaheap statistics (those this user may read).
 * Every field is printed from the region's own descriptors, so counters a
 * newer library adds appear without a change here.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/cli/cli.h"
#include "numa/json.h"

static int stats_main(int argc, char **argv);

const nh_cli_command nh_cli_stats = {
    "stats", "[PID] [--json | --prometheus]",
    "With PID: prints the live statistics process PID publishes (numaheap\n"
    "[stats] publish = yes, the default): per node, per criticality level, per\n"
    "CPU cache, and the CLR host API's, from its last snapshot (taken every\n"
    "[stats] publish_interval ms, 1000 by default).\n"
    "Without PID: lists the running processes on numaheap this user may read.\n"
    "\n"
    "  --json          one JSON object (with PID) or array (without)\n"
    "  --prometheus    the Prometheus text exposition format (with PID only):\n"
    "                  metrics numaheap_*, labels node, cpu, level; counters\n"
    "                  end in _total\n"
    "\n"
    "Only the process's user or root may read it (the rules of /proc/PID).\n"
    "Exit status: 0 success; 1 no consistent snapshot; 2 bad usage; 3 no such\n"
    "process; 4 the process is not on numaheap (or does not publish); 5 another\n"
    "user's process; 6 a statistics layout version this command does not read.\n",
    stats_main};

enum { FMT_TEXT, FMT_JSON, FMT_PROM };

static const char *const level_names[] = {"task", "appdomain", "process"};

/* A value as its kind wants it: labels are signed (os_node may be -1). */
static void put_value(FILE *out, const nh_pub_field *f, uint64_t v) {
  if (f->kind == NH_PUB_LABEL) fprintf(out, "%" PRId64, (int64_t)v);
  else fprintf(out, "%" PRIu64, v);
}

/* ---- text ---------------------------------------------------------------------- */

/* "node 0 os_node 0: budget ... " (the labels first, then every other field),
 * wrapped at 100 columns; a section without labels is titled by its name. */
static void text_record(const nh_cli_region *r, int s, uint32_t i) {
  const nh_pub_section *sec = nh_cli_section(r, s);
  const nh_pub_field *f = nh_cli_fields(r, s);
  const uint64_t *v = nh_cli_record(r, s, i);
  int col = 0, labels = 0;
  for (uint32_t k = 0; k < sec->nfields; k++)
    if (f[k].kind == NH_PUB_LABEL)
      col += printf("%s%.*s %" PRId64, labels++ ? " " : "", (int)sizeof f[k].name, f[k].name,
                    (int64_t)v[k]);
  if (labels == 0) col += printf("%.16s", sec->name);
  col += printf(":");
  for (uint32_t k = 0; k < sec->nfields; k++) {
    if (f[k].kind == NH_PUB_LABEL) continue;
    char item[96];
    int n = snprintf(item, sizeof item, " %.*s %" PRIu64, (int)sizeof f[k].name, f[k].name, v[k]);
    if (col + n > 100) col = printf("\n       ") - 1;
    col += printf("%s", item);
  }
  printf("\n");
}

static void print_text(const nh_cli_region *r) {
  const nh_pub_header *h = r->h;
  double age = ((double)time(NULL) * 1e9 - (double)h->updated_ns) / 1e9;
  printf("numaheap statistics of process %d (%s): library %.16s, cache %.16s, layout %u\n",
         (int)r->pid, r->comm, h->library, h->cache_mode, (unsigned)h->version);
  printf("snapshot %" PRIu64 ", %.1f s old; published every %" PRIu64 " ms\n", h->snapshots,
         age < 0 ? 0.0 : age, h->interval_ms);
  for (int s = 0; s < NH_PUB_SECTIONS; s++) {
    const nh_pub_section *sec = nh_cli_section(r, s);
    if (s == NH_PUB_HOST && nh_cli_value(r, s, 0, "manager") == 0) continue;
    for (uint32_t i = 0; i < sec->count; i++) text_record(r, s, i);
  }
}

/* ---- JSON ---------------------------------------------------------------------- */

static void json_record(const nh_cli_region *r, int s, uint32_t i) {
  const nh_pub_field *f = nh_cli_fields(r, s);
  const uint64_t *v = nh_cli_record(r, s, i);
  printf("{");
  for (uint32_t k = 0; k < nh_cli_section(r, s)->nfields; k++) {
    printf("%s\"%.*s\":", k ? "," : "", (int)sizeof f[k].name, f[k].name);
    put_value(stdout, &f[k], v[k]);
  }
  printf("}");
}

static void print_json(const nh_cli_region *r) {
  const nh_pub_header *h = r->h;
  printf("{\"pid\":%d,\"command\":", (int)r->pid);
  nh_json_string(stdout, r->comm);
  printf(",\"library\":\"%.16s\",\"layout\":%u,\"cache_mode\":\"%.16s\",\"interval_ms\":%" PRIu64
         ",\"updated_ns\":%" PRIu64 ",\"snapshots\":%" PRIu64,
         h->library, (unsigned)h->version, h->cache_mode, h->interval_ms, h->updated_ns,
         h->snapshots);
  static const char *const keys[] = {"nodes", "cpus", "cache", "host"};
  for (int s = 0; s < NH_PUB_SECTIONS; s++) {
    const nh_pub_section *sec = nh_cli_section(r, s);
    int array = sec->capacity != 1;
    printf(",\"%s\":%s", keys[s], array ? "[" : "");
    for (uint32_t i = 0; i < sec->count; i++) {
      if (i) printf(",");
      json_record(r, s, i);
    }
    if (!array && sec->count == 0) printf("null");
    printf("%s", array ? "]" : "");
  }
  printf("}\n");
}

/* ---- Prometheus ---------------------------------------------------------------- */

/* HELP text: backslash and newline escaped. */
static void prom_help(const char *s, size_t len) {
  for (size_t i = 0; i < len && s[i]; i++) {
    if (s[i] == '\\') printf("\\\\");
    else if (s[i] == '\n') printf("\\n");
    else putchar(s[i]);
  }
}

static void prom_name(const nh_pub_field *f) {
  printf("numaheap_%.*s%s", (int)sizeof f->metric, f->metric, f->kind == NH_PUB_COUNTER ? "_total" : "");
}

/* The samples of family `metric` in section s: one per record and field of
 * that metric, labelled by the record's label fields and the field's level. */
static void prom_samples(const nh_cli_region *r, int s, const nh_pub_field *fam) {
  const nh_pub_section *sec = nh_cli_section(r, s);
  const nh_pub_field *f = nh_cli_fields(r, s);
  for (uint32_t i = 0; i < sec->count; i++) {
    const uint64_t *v = nh_cli_record(r, s, i);
    for (uint32_t k = 0; k < sec->nfields; k++) {
      if (f[k].kind == NH_PUB_LABEL || strncmp(f[k].metric, fam->metric, sizeof f[k].metric) != 0)
        continue;
      prom_name(&f[k]);
      int n = 0;
      for (uint32_t l = 0; l < sec->nfields; l++)
        if (f[l].kind == NH_PUB_LABEL)
          printf("%s%.*s=\"%" PRId64 "\"", n++ ? "," : "{", (int)sizeof f[l].name, f[l].name,
                 (int64_t)v[l]);
      if (f[k].level >= 0 && f[k].level < 3)
        printf("%slevel=\"%s\"", n++ ? "," : "{", level_names[f[k].level]);
      printf("%s %" PRIu64 "\n", n ? "}" : "", v[k]);
    }
  }
}

/* 1 when an earlier field of sections 0..s (up to field k of s) has fam's metric. */
static int seen_before(const nh_cli_region *r, int s, uint32_t k) {
  const nh_pub_field *fam = &nh_cli_fields(r, s)[k];
  for (int t = 0; t <= s; t++) {
    const nh_pub_field *f = nh_cli_fields(r, t);
    uint32_t end = t == s ? k : nh_cli_section(r, t)->nfields;
    for (uint32_t j = 0; j < end; j++)
      if (f[j].kind != NH_PUB_LABEL && strncmp(f[j].metric, fam->metric, sizeof f[j].metric) == 0)
        return 1;
  }
  return 0;
}

static void print_prometheus(const nh_cli_region *r) {
  const nh_pub_header *h = r->h;
  printf("# HELP numaheap_info The numaheap library of the process (value 1).\n");
  printf("# TYPE numaheap_info gauge\n");
  printf("numaheap_info{pid=\"%d\",library=\"%.16s\",cache_mode=\"%.16s\",layout=\"%u\"} 1\n",
         (int)r->pid, h->library, h->cache_mode, (unsigned)h->version);
  printf("# HELP numaheap_snapshot_timestamp_seconds When the process took this snapshot.\n");
  printf("# TYPE numaheap_snapshot_timestamp_seconds gauge\n");
  printf("numaheap_snapshot_timestamp_seconds %.3f\n", (double)h->updated_ns / 1e9);
  for (int s = 0; s < NH_PUB_SECTIONS; s++) {
    const nh_pub_field *f = nh_cli_fields(r, s);
    for (uint32_t k = 0; k < nh_cli_section(r, s)->nfields; k++) {
      if (f[k].kind == NH_PUB_LABEL || seen_before(r, s, k)) continue;
      printf("# HELP ");
      prom_name(&f[k]);
      printf(" ");
      prom_help(f[k].help, sizeof f[k].help);
      printf(".\n# TYPE ");
      prom_name(&f[k]);
      printf(" %s\n", f[k].kind == NH_PUB_COUNTER ? "counter" : "gauge");
      for (int t = s; t < NH_PUB_SECTIONS; t++) prom_samples(r, t, &f[k]);
    }
  }
}

/* ---- the list of processes ------------------------------------------------------- */

static uint64_t sum_nodes(const nh_cli_region *r, const char *name) {
  uint64_t t = 0;
  for (uint32_t i = 0; i < nh_cli_section(r, NH_PUB_NODE)->count; i++)
    t += nh_cli_value(r, NH_PUB_NODE, i, name);
  return t;
}

static void list_row(const nh_cli_region *r, int json, int first) {
  const nh_pub_header *h = r->h;
  uint32_t nodes = nh_cli_section(r, NH_PUB_NODE)->count, cpus = nh_cli_section(r, NH_PUB_CPU)->count;
  uint64_t committed = sum_nodes(r, "committed"), in_use = sum_nodes(r, "in_use");
  if (json) {
    printf("%s{\"pid\":%d,\"command\":", first ? "" : ",", (int)r->pid);
    nh_json_string(stdout, r->comm);
    printf(",\"library\":\"%.16s\",\"nodes\":%u,\"cpus\":%u,\"committed\":%" PRIu64
           ",\"in_use\":%" PRIu64 "}", h->library, nodes, cpus, committed, in_use);
    return;
  }
  char c[32], u[32];
  nh_cli_bytes(c, sizeof c, committed);
  nh_cli_bytes(u, sizeof u, in_use);
  printf("%-8d %-16s %5u %5u %12s %12s  %.16s\n", (int)r->pid, r->comm, nodes, cpus, c, u,
         h->library);
}

static int list_processes(int json) {
  DIR *d = opendir("/proc");
  if (d == NULL) {
    fprintf(stderr, "numaheap: cannot read /proc\n");
    return 1;
  }
  if (json) printf("[");
  else printf("%-8s %-16s %5s %5s %12s %12s  %s\n", "PID", "COMMAND", "NODES", "CPUS",
              "COMMITTED", "IN_USE", "LIBRARY");
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    nh_cli_region r;
    if (nh_cli_region_open((pid_t)atoi(e->d_name), 1, &r) != 0) continue;
    if (nh_cli_region_read(&r) == 0) list_row(&r, json, n++ == 0);
    nh_cli_region_close(&r);
  }
  closedir(d);
  if (json) printf("]\n");
  return 0;
}

/* ---- the command --------------------------------------------------------------------- */

static int stats_main(int argc, char **argv) {
  int fmt = FMT_TEXT;
  const char *pid_arg = NULL;
  for (int i = 1; i < argc; i++) {
    if (nh_cli_is_help(&nh_cli_stats, argv[i])) return 0;
    if (!strcmp(argv[i], "--json")) fmt = FMT_JSON;
    else if (!strcmp(argv[i], "--prometheus")) fmt = FMT_PROM;
    else if (argv[i][0] == '-') return nh_cli_bad_usage(&nh_cli_stats, "unknown option \"%s\"", argv[i]);
    else if (pid_arg) return nh_cli_bad_usage(&nh_cli_stats, "expects one PID, got more");
    else pid_arg = argv[i];
  }
  if (pid_arg == NULL) {
    if (fmt == FMT_PROM) return nh_cli_bad_usage(&nh_cli_stats, "--prometheus needs a PID");
    return list_processes(fmt == FMT_JSON);
  }
  pid_t pid;
  if (nh_cli_parse_pid(&nh_cli_stats, pid_arg, &pid) != 0) return 2;
  nh_cli_region r;
  int rc = nh_cli_region_open(pid, 0, &r);
  if (rc == 0) rc = nh_cli_region_read(&r);
  if (rc == 0) {
    if (fmt == FMT_JSON) print_json(&r);
    else if (fmt == FMT_PROM) print_prometheus(&r);
    else print_text(&r);
  }
  nh_cli_region_close(&r);
  if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) rc = 1;
  return rc;
}
