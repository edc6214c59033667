/*
 * numa/topo.c: the topology value (numa/topo.h): its tables, the steps every
 * source shares, the choice of source, and printing. The sources fill nodes
 * and CPUs: numa/topo_hwloc.c (hwloc, loaded with dlopen: real machines with
 * more than one node, synthetic strings, XML files) and numa/topo_sys.c (the
 * kernel's /sys files: a real machine with one node, or any real machine
 * when hwloc is not wanted or cannot be loaded).
 *
 * Steps after a source, one function each:
 *   nh_topo_finish   the kernel's /sys node distances when the source had
 *                    none (real machine), else derived 10/20/30; then
 *   fill_fallbacks   per node: the others by distance, same package, number
 *   fill_binding     simulated node i -> real_node_ids[i % real_nodes]
 *
 * Reading /sys: open/read into stack buffers (no stdio, no malloc).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "numa/os.h"
#include "numa/topo_build.h"

#define DIST_LOCAL 10
#define DIST_PACKAGE 20
#define DIST_REMOTE 30

/* ---- errors ------------------------------------------------------------------ */

static const char *via_name(nh_topo_discovery d) {
  return d == NH_DISCOVERY_SYSFS ? "sysfs" : "hwloc";
}

static const char *kind_name(nh_topo_kind k) {
  switch (k) {
  case NH_TOPO_REAL: return "real";
  case NH_TOPO_SYNTHETIC: return "synthetic";
  case NH_TOPO_XML: return "xml";
  }
  return "unknown";
}

int nh_topo_fail(const nh_topo_source *src, char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return -1;
  int n;
  if (src->kind == NH_TOPO_REAL) n = snprintf(err, errlen, "real topology: ");
  else if (src->kind == NH_TOPO_SYNTHETIC)
    n = snprintf(err, errlen, "synthetic topology \"%s\": ", src->spec ? src->spec : "");
  else n = snprintf(err, errlen, "XML topology \"%s\": ", src->spec ? src->spec : "");
  if (n < 0 || (size_t)n >= errlen) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- /sys readers (open/read, no stdio, no malloc) --------------------------- */

int nh_topo_read_file(const char *path, char *buf, size_t cap) {
  int err;
  return (int)nh_os_read_file(path, buf, cap, &err);
}

long nh_topo_parse_num(const char **s) {
  const char *p = *s;
  while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n') p++;
  if (*p < '0' || *p > '9') return -1;
  long v = 0;
  while (*p >= '0' && *p <= '9' && v < (1L << 40)) v = v * 10 + (*p++ - '0');
  *s = p;
  return v;
}

int nh_topo_list_slots(const char *s) {
  int max = 0;
  for (long v; (v = nh_topo_parse_num(&s)) >= 0;) {
    if (*s == '-') s++;
    if (v + 1 > max && v < (1L << 30)) max = (int)v + 1;
  }
  return max;
}

/* The next range "a" or "a-b" of a kernel list at *s: 1 (*a <= *b), 0 at
 * the end, -1 if malformed (b below a, or 2^30 and above). */
static int next_range(const char **s, long *a, long *b) {
  if ((*a = nh_topo_parse_num(s)) < 0) return 0;
  *b = *a;
  if (**s == '-') {
    (*s)++;
    if ((*b = nh_topo_parse_num(s)) < *a || *b >= (1L << 30)) return -1;
  }
  return 1;
}

int nh_topo_list_count(const char *s) {
  int count = 0, r;
  for (long a, b; (r = next_range(&s, &a, &b)) > 0;) count += (int)(b - a + 1);
  return r < 0 ? -1 : count;
}

/* Rank of id in a kernel list (its position among the listed numbers); -1
 * if absent. */
static int list_rank(const char *s, int id) {
  int rank = 0;
  for (long a, b; next_range(&s, &a, &b) > 0;) {
    if (id >= a && id <= b) return rank + (int)(id - a);
    rank += (int)(b - a + 1);
  }
  return -1;
}

int nh_topo_possible_cpus(const char *cpu_dir) {
  char path[512], buf[4096];
  nh_os_path(path, sizeof path, cpu_dir, "/possible", -1, "");
  if (nh_topo_read_file(path, buf, sizeof buf) <= 0) return 0;
  return nh_topo_list_slots(buf);
}

/* The col-th number (0-based) of a distance row; -1 if it has fewer. */
static long row_column(const char *s, int col) {
  long v = -1;
  for (int k = 0; k <= col; k++)
    if ((v = nh_topo_parse_num(&s)) < 0) return -1;
  return v;
}

/* Reads node i's kernel distance row into row[0..t->nnodes), one column per
 * node of t, found by its os_index's rank in the online list; buf: ROW_CAP
 * bytes of scratch. */
#define ROW_CAP 8192
#define ONLINE_CAP 4096
static int read_sys_row(const nh_topo *t, const char *node_dir, const char *online, int i,
                        uint32_t *row, char *buf) {
  char path[512];
  nh_os_path(path, sizeof path, node_dir, "/node", t->nodes[i].os_index, "/distance");
  if (nh_topo_read_file(path, buf, ROW_CAP) <= 0) return -1;
  for (int j = 0; j < t->nnodes; j++) {
    int col = list_rank(online, t->nodes[j].os_index);
    long v = col < 0 ? -1 : row_column(buf, col);
    if (v <= 0 || v > (long)UINT32_MAX) return -1;
    row[j] = (uint32_t)v;
  }
  return 0;
}

/* The rows and the texts read go to one block from the OS layer, unmapped
 * after: 12 KiB of buffers on the starting thread's stack would stay
 * resident for the life of the process (docs/benchmarks.md, footprint). */
int nh_topo_read_sys_distances(nh_topo *t, const char *node_dir) {
  char path[512];
  size_t size = sizeof(uint32_t) * (size_t)t->nnodes * (size_t)t->nnodes;
  uint32_t *m = nh_os_meta_alloc(size + ONLINE_CAP + ROW_CAP);
  if (!m) return -1;
  char *online = (char *)m + size, *buf = online + ONLINE_CAP;
  nh_os_path(path, sizeof path, node_dir, "/online", -1, "");
  int rc = nh_topo_read_file(path, online, ONLINE_CAP) <= 0 ? -1 : 0;
  for (int i = 0; i < t->nnodes && rc == 0; i++)
    rc = read_sys_row(t, node_dir, online, i, m + (size_t)i * (size_t)t->nnodes, buf);
  if (rc == 0) memcpy(t->dist, m, size);
  nh_os_meta_free(m, size + ONLINE_CAP + ROW_CAP);
  return rc;
}

/* ---- the tables ---------------------------------------------------------------- */

static size_t nodes_size(int n) { return sizeof(nh_topo_node) * (size_t)n; }
static size_t dist_size(int n) { return sizeof(uint32_t) * (size_t)n * (size_t)n; }
static size_t fallback_size(int n) { return sizeof(int) * (size_t)n * (size_t)(n - 1); }
static size_t cpu_size(int slots) { return sizeof(int) * (size_t)slots; }

/* The four tables share one block (one page for up to hundreds of CPUs and
 * dozens of nodes, not a page each: docs/benchmarks.md, footprint), in this
 * order: nodes (pointer-aligned, first), the fallback rows, dist, cpu_node
 * (4-byte entries). */
static size_t tables_size(int nnodes, int slots) {
  return nodes_size(nnodes) + fallback_size(nnodes) + dist_size(nnodes) + cpu_size(slots);
}

void nh_topo_free(nh_topo *t) {
  if (!t) return;
  nh_os_meta_free(t->nodes, tables_size(t->nnodes, t->ncpu_slots));
  memset(t, 0, sizeof *t);
}

int nh_topo_alloc_tables(nh_topo *t, int nnodes, int slots) {
  char *block = nh_os_meta_alloc(tables_size(nnodes, slots));
  if (block == NULL) {
    memset(t, 0, sizeof *t);
    return -1;
  }
  t->nnodes = nnodes;
  t->ncpu_slots = slots;
  t->nodes = (nh_topo_node *)block;
  int *fb = (int *)(block + nodes_size(nnodes));
  t->dist = (uint32_t *)((char *)fb + fallback_size(nnodes));
  t->cpu_node = (int *)((char *)t->dist + dist_size(nnodes));
  for (int i = 0; i < nnodes; i++) t->nodes[i].fallback = fb + (size_t)i * (size_t)(nnodes - 1);
  for (int c = 0; c < slots; c++) t->cpu_node[c] = -1;
  return 0;
}

void nh_topo_map_cpu(nh_topo *t, int cpu, int node) {
  if (cpu < 0 || cpu >= t->ncpu_slots || t->cpu_node[cpu] >= 0 || node < 0) return;
  t->cpu_node[cpu] = node;
  t->nodes[node].ncpus++;
  t->ncpus++;
}

/* ---- distances ----------------------------------------------------------------- */

/* 10 local, 20 same package, 30 otherwise (the kernel's scale). */
static void derive_distances(nh_topo *t) {
  for (int a = 0; a < t->nnodes; a++)
    for (int b = 0; b < t->nnodes; b++)
      t->dist[(size_t)a * (size_t)t->nnodes + (size_t)b] =
          a == b ? DIST_LOCAL : nh_topo_same_package(t, a, b) ? DIST_PACKAGE : DIST_REMOTE;
  t->dist_derived = 1;
}

static void fill_fallbacks(nh_topo *t);

void nh_topo_finish(nh_topo *t, int have_dist, const char *node_dir) {
  if (!have_dist && !(t->kind == NH_TOPO_REAL && nh_topo_read_sys_distances(t, node_dir) == 0))
    derive_distances(t);
  fill_fallbacks(t);
}

/* ---- fallback order ------------------------------------------------------------- */

/* 1 if, seen from node `from`, node a comes before node b. */
static int before(const nh_topo *t, int from, int a, int b) {
  uint32_t da = nh_topo_dist(t, from, a), db = nh_topo_dist(t, from, b);
  if (da != db) return da < db;
  int pa = nh_topo_same_package(t, from, a), pb = nh_topo_same_package(t, from, b);
  if (pa != pb) return pa;
  return a < b;
}

/* Heap sort (no malloc, n log n: machines may have up to 1024 nodes). */
static void sift_down(const nh_topo *t, int from, int *v, int root, int n) {
  for (int child; (child = 2 * root + 1) < n; root = child) {
    if (child + 1 < n && before(t, from, v[child], v[child + 1])) child++;
    if (!before(t, from, v[root], v[child])) return;
    int tmp = v[root];
    v[root] = v[child];
    v[child] = tmp;
  }
}

static void sort_fallback(const nh_topo *t, int from, int *v, int n) {
  for (int i = n / 2 - 1; i >= 0; i--) sift_down(t, from, v, i, n);
  for (int end = n - 1; end > 0; end--) {
    int tmp = v[0];
    v[0] = v[end];
    v[end] = tmp;
    sift_down(t, from, v, 0, end);
  }
}

static void fill_fallbacks(nh_topo *t) {
  for (int i = 0; i < t->nnodes; i++) {
    int *fb = t->nodes[i].fallback, k = 0;
    for (int j = 0; j < t->nnodes; j++)
      if (j != i) fb[k++] = j;
    sort_fallback(t, i, fb, k);
  }
}

/* ---- binding of simulated nodes -------------------------------------------------- */

/* Real nodes with memory, ascending, into a meta array (*size set). */
static int *os_memory_nodes(int *count, size_t *size) {
  int slots = nh_os_real_node_slots();
  *size = sizeof(int) * (size_t)(slots > 0 ? slots : 1);
  int *ids = nh_os_meta_alloc(*size);
  if (!ids) return NULL;
  *count = 0;
  for (int n = 0; n < slots; n++)
    if (nh_os_real_node_has_memory(n)) ids[(*count)++] = n;
  if (*count == 0) ids[(*count)++] = 0; /* no sysfs NUMA: node 0 */
  return ids;
}

static int fill_binding(nh_topo *t, const nh_topo_source *src) {
  if (t->kind == NH_TOPO_REAL) return 0;
  int count = src->real_nodes;
  size_t size = 0;
  int *own = NULL;
  const int *ids = src->real_node_ids;
  if (count == 0) {
    if (!(own = os_memory_nodes(&count, &size))) return -1;
    ids = own;
  }
  for (int i = 0; i < t->nnodes; i++)
    t->nodes[i].bind_os_node = ids ? ids[i % count] : i % count;
  nh_os_meta_free(own, size);
  return 0;
}

/* ---- load ------------------------------------------------------------------------ */

static int check_source(const nh_topo_source *src, char *err, size_t errlen) {
  if (src->kind != NH_TOPO_REAL && src->kind != NH_TOPO_SYNTHETIC && src->kind != NH_TOPO_XML)
    return nh_topo_fail(src, err, errlen, "unknown source kind %d", (int)src->kind);
  if (src->kind != NH_TOPO_REAL && (!src->spec || !src->spec[0]))
    return nh_topo_fail(src, err, errlen, "no %s given",
                src->kind == NH_TOPO_XML ? "file name" : "synthetic string");
  if (src->discovery < NH_DISCOVERY_AUTO || src->discovery > NH_DISCOVERY_SYSFS)
    return nh_topo_fail(src, err, errlen, "unknown discovery %d", (int)src->discovery);
  if (src->real_nodes < 0)
    return nh_topo_fail(src, err, errlen, "real_nodes is %d; it must be >= 0", src->real_nodes);
  for (int i = 0; src->real_node_ids && i < src->real_nodes; i++)
    if (src->real_node_ids[i] < 0)
      return nh_topo_fail(src, err, errlen, "real_node_ids[%d] is %d; it must be >= 0", i,
                  src->real_node_ids[i]);
  return 0;
}

/* How a real machine is discovered: hwloc when asked, or (auto) when /sys
 * lists more than one online node. */
static bool wants_hwloc(const nh_topo_source *src) {
  if (src->kind != NH_TOPO_REAL || src->discovery == NH_DISCOVERY_HWLOC) return true;
  if (src->discovery == NH_DISCOVERY_SYSFS) return false;
  char online[4096];
  if (nh_topo_read_file("/sys/devices/system/node/online", online, sizeof online) <= 0) return false;
  return nh_topo_list_count(online) > 1;
}

/* hwloc could not be loaded for the real machine: /sys instead, and say so. */
static int sysfs_instead(nh_topo *t, const nh_topo_source *src, const char *why, char *err,
                         size_t errlen) {
  if (nh_topo_load_sysfs(t, "/sys/devices/system", err, errlen) != 0) return -1;
  snprintf(t->warning, sizeof t->warning,
           "real topology: %s; read from /sys instead, without hwloc", why);
  return 0;
}

static int load_hwloc(nh_topo *t, const nh_topo_source *src, char *err, size_t errlen) {
  char why[256];
  const nh_hwloc_api *hw = nh_hwloc_open(src->hwloc_soname, why, sizeof why);
  if (hw == NULL && src->kind == NH_TOPO_REAL) return sysfs_instead(t, src, why, err, errlen);
  if (hw == NULL) return nh_topo_fail(src, err, errlen, "%s", why);
  if (nh_topo_load_hwloc(t, src, hw, err, errlen) != 0) return -1;
  if (fill_binding(t, src) != 0) {
    nh_topo_free(t);
    return nh_topo_fail(src, err, errlen, "out of memory for the real node list");
  }
  return 0;
}

int nh_topo_load(nh_topo *t, const nh_topo_source *src, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  if (check_source(src, err, errlen) != 0) return -1;
  if (wants_hwloc(src)) return load_hwloc(t, src, err, errlen);
  return nh_topo_load_sysfs(t, "/sys/devices/system", err, errlen);
}

/* ---- printing -------------------------------------------------------------------- */

/* Writes node's CPU ids as ranges ("0-3,8"), or "-" when it has none. */
static void print_cpus(const nh_topo *t, int node, FILE *out) {
  int any = 0;
  for (int c = 0; c < t->ncpu_slots; c++) {
    if (t->cpu_node[c] != node) continue;
    int end = c;
    while (end + 1 < t->ncpu_slots && t->cpu_node[end + 1] == node) end++;
    fprintf(out, "%s%d", any ? "," : "", c);
    if (end > c) fprintf(out, "-%d", end);
    any = 1;
    c = end;
  }
  if (!any) fputs("-", out);
}

static void print_fallback(const nh_topo *t, int node, FILE *out, const char *sep) {
  for (int k = 0; k < t->nnodes - 1; k++)
    fprintf(out, "%s%d", k ? sep : "", t->nodes[node].fallback[k]);
}

static void print_text(const nh_topo *t, FILE *out) {
  fprintf(out, "topology: %s%s%s, %d node%s, %d package%s, %d CPUs (ids below %d), distances %s\n",
          kind_name(t->kind), t->kind == NH_TOPO_REAL ? " via " : "",
          t->kind == NH_TOPO_REAL ? via_name(t->via) : "", t->nnodes, t->nnodes == 1 ? "" : "s", t->npackages,
          t->npackages == 1 ? "" : "s", t->ncpus, t->ncpu_slots,
          t->dist_derived ? "derived from the hierarchy" : "from the source");
  if (t->warning[0]) fprintf(out, "warning: %s\n", t->warning);
  for (int i = 0; i < t->nnodes; i++) {
    const nh_topo_node *nd = &t->nodes[i];
    fprintf(out, "node %d: os %d, bind %d, package ", i, nd->os_index, nd->bind_os_node);
    if (nd->package >= 0) fprintf(out, "%d", nd->package);
    else fputs("-", out);
    fputs(", cpus ", out);
    print_cpus(t, i, out);
    fprintf(out, ", memory %" PRIu64 " MiB, fallback ", nd->mem_bytes >> 20);
    if (t->nnodes > 1) print_fallback(t, i, out, " ");
    else fputs("-", out);
    fputs("\n", out);
  }
  fputs("distances:\n     ", out);
  for (int j = 0; j < t->nnodes; j++) fprintf(out, " %4d", j);
  for (int i = 0; i < t->nnodes; i++) {
    fprintf(out, "\n%4d:", i);
    for (int j = 0; j < t->nnodes; j++) fprintf(out, " %4" PRIu32, nh_topo_dist(t, i, j));
  }
  fputs("\n", out);
}

static void print_json_node(const nh_topo *t, int i, FILE *out) {
  const nh_topo_node *nd = &t->nodes[i];
  fprintf(out, "{\"node\":%d,\"os_index\":%d,\"bind_os_node\":%d,\"package\":%d,\"cpus\":\"", i,
          nd->os_index, nd->bind_os_node, nd->package);
  print_cpus(t, i, out);
  fprintf(out, "\",\"ncpus\":%d,\"memory\":%" PRIu64 ",\"fallback\":[", nd->ncpus, nd->mem_bytes);
  print_fallback(t, i, out, ",");
  fputs("]}", out);
}

/* A JSON string's body: quotes, backslashes and control characters escaped. */
static void print_json_text(const char *s, FILE *out) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(out, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(out, "\\u%04x", (unsigned)*s);
    else fputc(*s, out);
  }
}

static void print_json(const nh_topo *t, FILE *out) {
  fprintf(out, "{\"source\":\"%s\",", kind_name(t->kind));
  if (t->kind == NH_TOPO_REAL) fprintf(out, "\"discovery\":\"%s\",", via_name(t->via));
  if (t->warning[0]) {
    fputs("\"warning\":\"", out);
    print_json_text(t->warning, out);
    fputs("\",", out);
  }
  fprintf(out, "\"npackages\":%d,\"ncpus\":%d,\"ncpu_slots\":%d,\"nodes\":[", t->npackages,
          t->ncpus, t->ncpu_slots);
  for (int i = 0; i < t->nnodes; i++) {
    if (i) fputs(",", out);
    print_json_node(t, i, out);
  }
  fputs("],\"distances\":[", out);
  for (int i = 0; i < t->nnodes; i++) {
    fputs(i ? ",[" : "[", out);
    for (int j = 0; j < t->nnodes; j++)
      fprintf(out, "%s%" PRIu32, j ? "," : "", nh_topo_dist(t, i, j));
    fputs("]", out);
  }
  fprintf(out, "],\"distances_derived\":%s}", t->dist_derived ? "true" : "false");
}

void nh_topo_print(const nh_topo *t, FILE *out, int json) {
  if (json) print_json(t, out);
  else print_text(t, out);
}
