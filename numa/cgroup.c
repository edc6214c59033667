/*
 * numa/cgroup.c: reads the process's control group (numa/cgroup.h).
 *
 * Steps: /proc/self/cgroup names the group (v1: the line whose controllers
 * include "memory", taken first because a hybrid machine keeps the memory
 * controller on v1; else v2's "0::/path"); /proc/self/mountinfo says where
 * that hierarchy is mounted (cgroup2, or cgroup with the memory option;
 * /sys/fs/cgroup[/memory] when it does not say); then the limit files of the
 * group and of each group above it up to the mount, the tightest winning;
 * the cpuset files of the nearest group that has them.
 *
 * No malloc: paths and file texts live in fixed buffers on the stack (a few
 * KiB), mountinfo in pages from the OS layer.
 */
#include "numa/cgroup.h"

#include <inttypes.h>
#include <string.h>

#include "numa/heap.h"
#include "numa/os.h"

/* v1 writes this (or a page-rounded neighbour) for "no limit". */
#define V1_UNLIMITED 0x7FFFFFFFFFFFF000ull

typedef struct reader {
  const char *root;
  char *err;
  size_t errlen;
} reader;

static int fail(reader *r, const char *path, const char *problem) {
  snprintf(r->err, r->errlen, "%s: %s", path, problem);
  return -1;
}

/* "root" + "a" + "b" into out; -1 when too long. */
static int join(char *out, size_t cap, const char *root, const char *a, const char *b) {
  return nh_os_path(out, cap, root, a, -1, b) < 0 ? -1 : 0;
}

/* Reads a file into buf: length, -1 when missing/unreadable. */
static long slurp(const char *path, char *buf, size_t cap) {
  int e;
  return nh_os_read_file(path, buf, cap, &e);
}

/* ---- /proc/self/cgroup -------------------------------------------------------- */

/* Whether the comma-separated list [s, end) holds word. */
static int has_word(const char *s, const char *end, const char *word) {
  size_t n = strlen(word);
  while (s < end) {
    const char *c = memchr(s, ',', (size_t)(end - s));
    const char *e = c ? c : end;
    if ((size_t)(e - s) == n && memcmp(s, word, n) == 0) return 1;
    s = e + 1;
  }
  return 0;
}

/* Copies [s, e) into out (cap bytes). -1 when too long. */
static int copy_span(char *out, size_t cap, const char *s, const char *e) {
  if ((size_t)(e - s) >= cap) return -1;
  memcpy(out, s, (size_t)(e - s));
  out[e - s] = '\0';
  return 0;
}

/* Finds the group: sets cg->version and cg->path. 0 (version 0 when no
 * line fits), -1 on a malformed file. */
static int parse_proc_cgroup(reader *r, const char *path, const char *text, nh_cgroup *cg) {
  char v2[NH_CGROUP_PATH_MAX] = "";
  int have_v2 = 0;
  for (const char *line = text; *line;) {
    const char *eol = strchr(line, '\n');
    if (eol == NULL) eol = line + strlen(line);
    const char *c1 = memchr(line, ':', (size_t)(eol - line));
    const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
    if (eol > line && (c2 == NULL || c2[1] != '/'))
      return fail(r, path, "a line is not \"id:controllers:/path\"");
    if (c2 && has_word(c1 + 1, c2, "memory")) {
      if (copy_span(cg->path, sizeof cg->path, c2 + 1, eol) != 0) return fail(r, path, "path too long");
      cg->version = 1;
      return 0;
    }
    if (c2 && c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
      if (copy_span(v2, sizeof v2, c2 + 1, eol) != 0) return fail(r, path, "path too long");
      have_v2 = 1;
    }
    line = *eol ? eol + 1 : eol;
  }
  if (have_v2) {
    memcpy(cg->path, v2, sizeof v2);
    cg->version = 2;
  }
  return 0;
}

/* ---- /proc/self/mountinfo ----------------------------------------------------------- */

/* The n-th blank-separated field of [s, e) (0-based): its start, with *len. */
static const char *field(const char *s, const char *e, int n, size_t *len) {
  for (int i = 0;; i++) {
    while (s < e && *s == ' ') s++;
    const char *f = s;
    while (s < e && *s != ' ') s++;
    if (f == s) return NULL;
    if (i == n) {
      *len = (size_t)(s - f);
      return f;
    }
  }
}

/* Whether a mountinfo line [s, e) mounts our hierarchy; fills mnt and mroot. */
static int match_mount(const char *s, const char *e, int version, char *mnt, char *mroot) {
  const char *dash = strstr(s, " - ");
  if (dash == NULL || dash > e) return 0;
  size_t tl = 0, ol = 0, rl = 0, ml = 0;
  const char *type = field(dash + 3, e, 0, &tl);
  const char *opts = field(dash + 3, e, 2, &ol);
  if (type == NULL) return 0;
  int hit = version == 2 ? (tl == 7 && memcmp(type, "cgroup2", 7) == 0)
                         : (tl == 6 && memcmp(type, "cgroup", 6) == 0 && opts &&
                            has_word(opts, opts + ol, "memory"));
  const char *root = field(s, dash, 3, &rl), *point = field(s, dash, 4, &ml);
  if (!hit || root == NULL || point == NULL) return 0;
  if (copy_span(mroot, NH_CGROUP_PATH_MAX, root, root + rl) != 0) return 0;
  return copy_span(mnt, NH_CGROUP_PATH_MAX, point, point + ml) == 0;
}

#define MOUNTINFO_MAX ((size_t)256 << 10) /* beyond it, the default mount points */

/* Where the hierarchy is mounted (mnt) and which group is its root (mroot). */
static void find_mount(reader *r, int version, char *mnt, char *mroot) {
  strcpy(mnt, version == 2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory");
  strcpy(mroot, "/");
  char path[NH_CGROUP_PATH_MAX];
  if (join(path, sizeof path, r->root, "/proc/self/mountinfo", "") != 0) return;
  /* mountinfo runs to tens of KiB on container hosts: pages from the OS
   * layer, not the starting thread's stack (nor malloc) */
  char *text = nh_os_meta_alloc(MOUNTINFO_MAX);
  if (text == NULL) return;
  if (slurp(path, text, MOUNTINFO_MAX) > 0) {
    char m[NH_CGROUP_PATH_MAX], mr[NH_CGROUP_PATH_MAX];
    for (const char *line = text; *line;) {
      const char *eol = strchr(line, '\n');
      if (eol == NULL) eol = line + strlen(line);
      if (match_mount(line, eol, version, m, mr)) {
        strcpy(mnt, m);
        strcpy(mroot, mr);
        break;
      }
      line = *eol ? eol + 1 : eol;
    }
  }
  nh_os_meta_free(text, MOUNTINFO_MAX);
}

/* ---- limit files ------------------------------------------------------------------ */

/* Parses a limit file's text: 0 with *v (NH_CGROUP_NO_LIMIT for "max" or
 * v1's unlimited), -1 when it is not a number. */
static int parse_limit(const char *s, uint64_t *v) {
  if (strncmp(s, "max", 3) == 0 && (s[3] == '\n' || s[3] == '\0')) {
    *v = NH_CGROUP_NO_LIMIT;
    return 0;
  }
  uint64_t x = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (x > (UINT64_MAX - 9) / 10) return -1;
    x = x * 10 + (uint64_t)(*p - '0');
  }
  if (p == s || (*p != '\n' && *p != '\0')) return -1;
  *v = x >= V1_UNLIMITED ? NH_CGROUP_NO_LIMIT : x;
  return 0;
}

/* Reads dir/name into *v. 1 read, 0 missing, -1 malformed (err set). */
static int read_limit(reader *r, const char *dir, const char *name, uint64_t *v) {
  char path[NH_CGROUP_PATH_MAX + 32], text[64];
  if (join(path, sizeof path, dir, "/", name) != 0) return 0;
  if (slurp(path, text, sizeof text) < 0) return 0;
  if (parse_limit(text, v) != 0) return fail(r, path, "not a number of bytes (nor \"max\")");
  return 1;
}

/* Drops the last component of dir, not going above top. 0, or -1 at top. */
static int go_up(char *dir, size_t top_len) {
  size_t n = strlen(dir);
  if (n <= top_len) return -1;
  char *slash = strrchr(dir, '/');
  if (slash == NULL || (size_t)(slash - dir) < top_len) return -1;
  *slash = '\0';
  return 0;
}

/* Takes the tightest max (and high) of the chain from cg->dir up to top;
 * limit_dir is the group whose max or high is the lowest of all. */
static int read_limits(reader *r, nh_cgroup *cg, size_t top_len) {
  const char *max_name = cg->version == 2 ? "memory.max" : "memory.limit_in_bytes";
  char dir[NH_CGROUP_PATH_MAX];
  strcpy(dir, cg->dir);
  do {
    uint64_t mx = NH_CGROUP_NO_LIMIT, hi = NH_CGROUP_NO_LIMIT;
    if (read_limit(r, dir, max_name, &mx) < 0) return -1;
    if (cg->version == 2 && read_limit(r, dir, "memory.high", &hi) < 0) return -1;
    uint64_t here = mx < hi ? mx : hi;
    if (here < nh_cgroup_limit(cg)) strcpy(cg->limit_dir, dir);
    if (mx < cg->max) cg->max = mx;
    if (hi < cg->high) cg->high = hi;
  } while (go_up(dir, top_len) == 0);
  return 0;
}

/* ---- cpusets ------------------------------------------------------------------------ */

/* Parses "0-3,8" into mask; -1 on anything else. */
static int parse_node_list(const char *s, uint64_t *mask) {
  memset(mask, 0, sizeof(uint64_t) * NH_CGROUP_NODE_WORDS);
  while (*s && *s != '\n') {
    unsigned a = 0, b;
    if (*s < '0' || *s > '9') return -1;
    while (*s >= '0' && *s <= '9') a = a * 10 + (unsigned)(*s++ - '0');
    b = a;
    if (*s == '-') {
      s++;
      if (*s < '0' || *s > '9') return -1;
      for (b = 0; *s >= '0' && *s <= '9';) b = b * 10 + (unsigned)(*s++ - '0');
    }
    if (b < a || b >= 64 * NH_CGROUP_NODE_WORDS) return -1;
    for (unsigned i = a; i <= b; i++) mask[i / 64] |= (uint64_t)1 << (i % 64);
    if (*s == ',') s++;
    else if (*s && *s != '\n') return -1;
  }
  return 0;
}

/* Text of the nearest dir/name up to top, without its newline. 1, 0 none. */
static int read_nearest(const nh_cgroup *cg, size_t top_len, const char *name, char *out,
                        size_t cap) {
  char dir[NH_CGROUP_PATH_MAX], path[NH_CGROUP_PATH_MAX + 40];
  strcpy(dir, cg->dir);
  do {
    if (join(path, sizeof path, dir, "/", name) == 0 && slurp(path, out, cap) >= 0) {
      out[strcspn(out, "\n")] = '\0';
      return 1;
    }
  } while (go_up(dir, top_len) == 0);
  return 0;
}

static int read_cpusets(reader *r, nh_cgroup *cg, size_t top_len) {
  if (cg->version != 2) return 0; /* v1 cpusets are a separate hierarchy: not read */
  cg->has_cpus = read_nearest(cg, top_len, "cpuset.cpus.effective", cg->cpus_text,
                              sizeof cg->cpus_text);
  if (!read_nearest(cg, top_len, "cpuset.mems.effective", cg->mems_text, sizeof cg->mems_text))
    return 0;
  if (cg->mems_text[0] == '\0') return 0; /* an empty file: the controller is off here */
  if (parse_node_list(cg->mems_text, cg->mems) != 0) {
    char p[NH_CGROUP_PATH_MAX + 40];
    join(p, sizeof p, cg->dir, "/", "cpuset.mems.effective (or a parent's)");
    return fail(r, p, "not a node list such as \"0-1,3\"");
  }
  cg->has_mems = 1;
  return 0;
}

/* ---- the whole ---------------------------------------------------------------------- */

static void reset(nh_cgroup *cg) {
  memset(cg, 0, sizeof *cg);
  cg->max = cg->high = NH_CGROUP_NO_LIMIT;
}

/* The group's directory from the mount and the path relative to its root. */
static int group_dir(reader *r, nh_cgroup *cg, size_t *top_len) {
  char mnt[NH_CGROUP_PATH_MAX], mroot[NH_CGROUP_PATH_MAX], top[NH_CGROUP_PATH_MAX];
  find_mount(r, cg->version, mnt, mroot);
  const char *rel = cg->path;
  size_t rl = strlen(mroot);
  if (rl > 1 && strncmp(rel, mroot, rl) == 0 && (rel[rl] == '/' || rel[rl] == '\0')) rel += rl;
  if (strcmp(rel, "/") == 0) rel = "";
  if (join(top, sizeof top, r->root, mnt, "") != 0 ||
      join(cg->dir, sizeof cg->dir, top, rel, "") != 0)
    return fail(r, mnt, "cgroup path too long");
  *top_len = strlen(top);
  return 0;
}

int nh_cgroup_read(nh_cgroup *cg, const char *root, char *err, size_t errlen) {
  reader r = {root ? root : "", err, errlen};
  char path[NH_CGROUP_PATH_MAX], text[8192];
  reset(cg);
  if (join(path, sizeof path, r.root, "/proc/self/cgroup", "") != 0)
    return fail(&r, r.root, "root path too long");
  if (slurp(path, text, sizeof text) < 0) return 0; /* no /proc: no cgroup */
  size_t top_len = 0;
  if (parse_proc_cgroup(&r, path, text, cg) != 0 || (cg->version && group_dir(&r, cg, &top_len)) ||
      (cg->version && (read_limits(&r, cg, top_len) || read_cpusets(&r, cg, top_len)))) {
    reset(cg);
    return -1;
  }
  cg->top_len = top_len;
  if (cg->version && cg->limit_dir[0] == '\0') strcpy(cg->limit_dir, cg->dir);
  if (cg->version) nh_cgroup_read_usage(cg);
  return 0;
}

int nh_cgroup_refresh(nh_cgroup *cg, char *err, size_t errlen) {
  if (cg->version == 0) return 0;
  reader r = {"", err, errlen};
  cg->max = cg->high = NH_CGROUP_NO_LIMIT;
  cg->limit_dir[0] = '\0';
  cg->has_mems = cg->has_cpus = 0;
  memset(cg->mems, 0, sizeof cg->mems);
  if (read_limits(&r, cg, cg->top_len) != 0 || read_cpusets(&r, cg, cg->top_len) != 0) return -1;
  if (cg->limit_dir[0] == '\0') strcpy(cg->limit_dir, cg->dir);
  nh_cgroup_read_usage(cg);
  return 0;
}

int nh_cgroup_read_usage(nh_cgroup *cg) {
  if (cg->version == 0) return -1;
  char path[NH_CGROUP_PATH_MAX + 32], text[64];
  const char *name = cg->version == 2 ? "/memory.current" : "/memory.usage_in_bytes";
  uint64_t v;
  if (join(path, sizeof path, cg->limit_dir, name, "") != 0 || slurp(path, text, sizeof text) < 0 ||
      parse_limit(text, &v) != 0 || v == NH_CGROUP_NO_LIMIT)
    return -1;
  cg->usage = v;
  return 0;
}

int nh_cgroup_has_mem_node(const nh_cgroup *cg, int os_node) {
  if (!cg->has_mems) return 1;
  if (os_node < 0 || os_node >= 64 * NH_CGROUP_NODE_WORDS) return 0;
  return (int)((cg->mems[os_node / 64] >> (os_node % 64)) & 1);
}

/* ---- budgets ------------------------------------------------------------------------ */

void nh_cgroup_cap_budgets(const nh_cgroup *cg, const nh_topo *t, int split,
                           uint32_t share_milli_pct, nh_node_limits *limits) {
  if (split == NH_CGROUP_SPLIT_OFF || cg->version == 0) return;
  uint64_t total_mem = 0;
  int n = 0;
  for (int i = 0; i < t->nnodes; i++) {
    if (!nh_cgroup_has_mem_node(cg, t->nodes[i].bind_os_node)) limits[i].budget = 0;
    if (limits[i].budget == 0) continue;
    total_mem += t->nodes[i].mem_bytes;
    n++;
  }
  uint64_t limit = nh_cgroup_limit(cg);
  if (limit == NH_CGROUP_NO_LIMIT || n == 0) return;
  uint64_t allowed = (uint64_t)((unsigned __int128)limit * share_milli_pct / 100000u);
  for (int i = 0; i < t->nnodes; i++) {
    if (limits[i].budget == 0) continue;
    uint64_t part = split == NH_CGROUP_SPLIT_EQUAL || total_mem == 0
                        ? allowed / (uint64_t)n
                        : (uint64_t)((unsigned __int128)allowed * t->nodes[i].mem_bytes / total_mem);
    if (part >= limits[i].budget) continue;
    /* the reserve shrinks with the budget: the same share of it */
    limits[i].reserve = (uint64_t)((unsigned __int128)limits[i].reserve * part / limits[i].budget);
    limits[i].budget = part;
  }
}

/* ---- room ---------------------------------------------------------------------------- */

static char room_path[2][NH_CGROUP_PATH_MAX + 32];
static _Atomic int room_idx = -1;        /* release on set, acquire on read */
static _Atomic uint64_t room_limit;      /* relaxed: read after room_idx */

void nh_cgroup_room_set(const nh_cgroup *cg) {
  uint64_t limit = cg ? nh_cgroup_limit(cg) : NH_CGROUP_NO_LIMIT;
  if (cg == NULL || cg->version == 0 || limit == NH_CGROUP_NO_LIMIT) {
    atomic_store_explicit(&room_idx, -1, memory_order_release);
    return;
  }
  int next = atomic_load_explicit(&room_idx, memory_order_relaxed) == 0 ? 1 : 0;
  const char *name = cg->version == 2 ? "/memory.current" : "/memory.usage_in_bytes";
  if (join(room_path[next], sizeof room_path[next], cg->limit_dir, name, "") != 0) return;
  atomic_store_explicit(&room_limit, limit, memory_order_relaxed);
  atomic_store_explicit(&room_idx, next, memory_order_release);
}

uint64_t nh_cgroup_room(void) {
  int i = atomic_load_explicit(&room_idx, memory_order_acquire);
  if (i < 0) return UINT64_MAX;
  uint64_t limit = atomic_load_explicit(&room_limit, memory_order_relaxed), usage;
  char text[64];
  if (slurp(room_path[i], text, sizeof text) < 0 || parse_limit(text, &usage) != 0)
    return UINT64_MAX; /* unreadable now: the node's own figure decides */
  uint64_t slack = limit / 16;
  if (slack < ((uint64_t)4 << 20)) slack = (uint64_t)4 << 20;
  if (slack > ((uint64_t)256 << 20)) slack = (uint64_t)256 << 20;
  return usage + slack >= limit ? 0 : limit - usage - slack;
}

/* ---- printing ----------------------------------------------------------------------- */

static void print_limit(FILE *out, const char *name, uint64_t v, int json) {
  if (json) {
    if (v == NH_CGROUP_NO_LIMIT) fprintf(out, ",\"%s\":null", name);
    else fprintf(out, ",\"%s\":%" PRIu64, name, v);
  } else if (v == NH_CGROUP_NO_LIMIT) {
    fprintf(out, " %s none", name);
  } else {
    fprintf(out, " %s %" PRIu64 " MiB", name, v >> 20);
  }
}

void nh_cgroup_print(const nh_cgroup *cg, FILE *out, int json) {
  if (cg->version == 0) {
    fputs(json ? "{\"version\":0}" : "cgroup: none (no memory controller found)\n", out);
    return;
  }
  if (json) fprintf(out, "{\"version\":%d,\"path\":\"%s\"", cg->version, cg->path);
  else fprintf(out, "cgroup: v%d %s:", cg->version, cg->path);
  print_limit(out, "max", cg->max, json);
  print_limit(out, "high", cg->high, json);
  print_limit(out, "usage", cg->usage, json);
  if (json) {
    fprintf(out, ",\"mems\":\"%s\",\"cpus\":\"%s\"}", cg->has_mems ? cg->mems_text : "",
            cg->has_cpus ? cg->cpus_text : "");
    return;
  }
  fprintf(out, "; mems %s; cpus %s\n", cg->has_mems ? cg->mems_text : "any",
          cg->has_cpus ? cg->cpus_text : "any");
}
