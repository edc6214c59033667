/*
 * numa/cgroup.c: reads the process's control group (numa/cgroup.h).
 *
 * Steps: /proc/self/cgroup names the group (v1: the line whose controllers
 * include "memory", taken first because a hybrid machine keeps the memory
 * controller on v1; else v2's "0::/path"); /proc/self/mountinfo says where
 * that hierarchy is mounted (cgroup2, or cgroup with the memory option;
 * /sys/fs/cgroup[/memory] when it does not say); then the limit files of the
 * group and of each group above it up to the mount, the tightest winning.
 * The cpusets likewise: v1's cpuset line and its own mount (cgroup with the
 * cpuset option), else v2's group; the files of the nearest group that has
 * them (v1: cpuset.effective_cpus/_mems, else cpuset.cpus/.mems).
 *
 * No malloc: paths and small file texts live in fixed buffers on the stack
 * (a few KiB), /proc/self/cgroup and mountinfo in pages from the OS layer.
 */
#include "numa/cgroup.h"

#include <inttypes.h>
#include <string.h>

#include "numa/heap.h"
#include "numa/json.h"
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

/* The groups /proc/self/cgroup names: v1's memory and cpuset hierarchies
 * and v2's unified one (empty strings where there is no such line). */
typedef struct proc_groups {
  char memory[NH_CGROUP_PATH_MAX], cpuset[NH_CGROUP_PATH_MAX], unified[NH_CGROUP_PATH_MAX];
} proc_groups;

/* Takes one "id:controllers:/path" line [line, eol) into g. 0, or -1 when
 * it is not such a line or the path is too long. */
static int take_line(reader *r, const char *path, const char *line, const char *eol, proc_groups *g) {
  const char *c1 = memchr(line, ':', (size_t)(eol - line));
  const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
  if (c2 == NULL || c2[1] != '/') return fail(r, path, "a line is not \"id:controllers:/path\"");
  char *out = NULL;
  if (has_word(c1 + 1, c2, "memory")) out = g->memory;
  else if (has_word(c1 + 1, c2, "cpuset")) out = g->cpuset;
  else if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) out = g->unified;
  if (out && copy_span(out, NH_CGROUP_PATH_MAX, c2 + 1, eol) != 0) return fail(r, path, "path too long");
  return 0;
}

/* Reads every line of /proc/self/cgroup's text into g. 0, or -1 on a
 * malformed file. */
static int parse_proc_cgroup(reader *r, const char *path, const char *text, proc_groups *g) {
  g->memory[0] = g->cpuset[0] = g->unified[0] = '\0';
  for (const char *line = text; *line;) {
    const char *eol = strchr(line, '\n');
    if (eol == NULL) eol = line + strlen(line);
    if (eol > line && take_line(r, path, line, eol, g) != 0) return -1;
    line = *eol ? eol + 1 : eol;
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

/* A hierarchy's mount: where (point), which group is its root, and
 * whether v1 files go without the controller's prefix ("noprefix"). */
typedef struct mount_at {
  char point[NH_CGROUP_PATH_MAX], root[NH_CGROUP_PATH_MAX];
  int noprefix;
} mount_at;

/* Whether a mountinfo line [s, e) mounts the hierarchy (cgroup2 for
 * version 2, else v1 "cgroup" with controller ctl among its options); fills m. */
static int match_mount(const char *s, const char *e, int version, const char *ctl, mount_at *m) {
  const char *dash = strstr(s, " - ");
  if (dash == NULL || dash > e) return 0;
  size_t tl = 0, ol = 0, rl = 0, ml = 0;
  const char *type = field(dash + 3, e, 0, &tl);
  const char *opts = field(dash + 3, e, 2, &ol);
  if (type == NULL) return 0;
  int hit = version == 2 ? (tl == 7 && memcmp(type, "cgroup2", 7) == 0)
                         : (tl == 6 && memcmp(type, "cgroup", 6) == 0 && opts &&
                            has_word(opts, opts + ol, ctl));
  const char *root = field(s, dash, 3, &rl), *point = field(s, dash, 4, &ml);
  if (!hit || root == NULL || point == NULL) return 0;
  if (copy_span(m->root, sizeof m->root, root, root + rl) != 0) return 0;
  m->noprefix = version == 1 && has_word(opts, opts + ol, "noprefix");
  return copy_span(m->point, sizeof m->point, point, point + ml) == 0;
}

#define MOUNTINFO_MAX ((size_t)256 << 10) /* beyond it, the default mount points */

/* Where the hierarchy is mounted (version 2, or v1's of controller ctl);
 * /sys/fs/cgroup[/ctl] with root "/" when mountinfo does not say. */
static void find_mount(reader *r, int version, const char *ctl, mount_at *m) {
  if (version == 2) strcpy(m->point, "/sys/fs/cgroup");
  else nh_os_path(m->point, sizeof m->point, "/sys/fs/cgroup/", ctl, -1, "");
  strcpy(m->root, "/");
  m->noprefix = 0;
  char path[NH_CGROUP_PATH_MAX];
  if (join(path, sizeof path, r->root, "/proc/self/mountinfo", "") != 0) return;
  /* mountinfo runs to tens of KiB on container hosts: pages from the OS
   * layer, not the starting thread's stack (nor malloc) */
  char *text = nh_os_meta_alloc(MOUNTINFO_MAX);
  if (text == NULL) return;
  if (slurp(path, text, MOUNTINFO_MAX) > 0) {
    mount_at found;
    for (const char *line = text; *line;) {
      const char *eol = strchr(line, '\n');
      if (eol == NULL) eol = line + strlen(line);
      if (match_mount(line, eol, version, ctl, &found)) {
        *m = found;
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

/* Takes the tightest max and high of the chain from cg->dir up to top;
 * limit_dir and high_dir are the groups that set them. */
static int read_limits(reader *r, nh_cgroup *cg, size_t top_len) {
  const char *max_name = cg->version == 2 ? "memory.max" : "memory.limit_in_bytes";
  char dir[NH_CGROUP_PATH_MAX];
  strcpy(dir, cg->dir);
  do {
    uint64_t mx = NH_CGROUP_NO_LIMIT, hi = NH_CGROUP_NO_LIMIT;
    if (read_limit(r, dir, max_name, &mx) < 0) return -1;
    if (cg->version == 2 && read_limit(r, dir, "memory.high", &hi) < 0) return -1;
    if (mx < cg->max) {
      cg->max = mx;
      strcpy(cg->limit_dir, dir);
    }
    if (hi < cg->high) {
      cg->high = hi;
      strcpy(cg->high_dir, dir);
    }
  } while (go_up(dir, top_len) == 0);
  if (cg->limit_dir[0] == '\0') strcpy(cg->limit_dir, cg->dir);
  if (cg->high_dir[0] == '\0') strcpy(cg->high_dir, cg->dir);
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

/* Text of the nearest dir/name from dir up to top, without its newline.
 * 1, 0 none. */
static int read_nearest(const char *from, size_t top_len, const char *name, char *out, size_t cap) {
  char dir[NH_CGROUP_PATH_MAX], path[NH_CGROUP_PATH_MAX + 40];
  strcpy(dir, from);
  do {
    if (join(path, sizeof path, dir, "/", name) == 0 && slurp(path, out, cap) >= 0) {
      char *nl = strchr(out, '\n'); /* not strcspn: a libc page only we would touch */
      if (nl != NULL) *nl = '\0';
      return 1;
    }
  } while (go_up(dir, top_len) == 0);
  return 0;
}

/* The nearest of the cpuset file what ("cpus" or "mems"): v2's
 * cpuset.<what>.effective; v1's cpuset.effective_<what>, else
 * cpuset.<what> (without "cpuset." on a noprefix mount). The name read goes
 * to name. 1, 0 none. */
static int read_cpuset_file(const nh_cgroup *cg, const char *what, char *out, size_t cap,
                            char *name, size_t name_cap) {
  const char *pre = cg->cpuset_noprefix ? "" : "cpuset.";
  /* names put together with nh_os_path: printf would be start-up's only use
   * of libc's printf code and tables (docs/benchmarks.md, footprint) */
  if (cg->cpuset_version == 2) {
    nh_os_path(name, name_cap, "cpuset.", what, -1, ".effective");
    return read_nearest(cg->cpuset_dir, cg->cpuset_top_len, name, out, cap);
  }
  nh_os_path(name, name_cap, pre, "effective_", -1, what);
  if (read_nearest(cg->cpuset_dir, cg->cpuset_top_len, name, out, cap)) return 1;
  nh_os_path(name, name_cap, pre, what, -1, "");
  return read_nearest(cg->cpuset_dir, cg->cpuset_top_len, name, out, cap);
}

static int read_cpusets(reader *r, nh_cgroup *cg) {
  if (cg->cpuset_version == 0) return 0;
  char name[40];
  cg->has_cpus = read_cpuset_file(cg, "cpus", cg->cpus_text, sizeof cg->cpus_text, name, sizeof name);
  if (!read_cpuset_file(cg, "mems", cg->mems_text, sizeof cg->mems_text, name, sizeof name))
    return 0;
  if (cg->mems_text[0] == '\0') return 0; /* an empty file: the controller is off here */
  if (parse_node_list(cg->mems_text, cg->mems) != 0) {
    char p[NH_CGROUP_PATH_MAX + 64], n[64];
    snprintf(n, sizeof n, "%s (or a parent's)", name);
    join(p, sizeof p, cg->cpuset_dir, "/", n);
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

/* A group's directory (dir) from its hierarchy's mount and the path
 * /proc/self/cgroup gives, with the length of the mount's directory in it. */
static int group_dir(reader *r, int version, const char *ctl, const char *path, char *dir,
                     size_t *top_len, int *noprefix) {
  mount_at m;
  char top[NH_CGROUP_PATH_MAX];
  find_mount(r, version, ctl, &m);
  const char *rel = path;
  size_t rl = strlen(m.root);
  if (rl > 1 && strncmp(rel, m.root, rl) == 0 && (rel[rl] == '/' || rel[rl] == '\0')) rel += rl;
  if (strcmp(rel, "/") == 0) rel = "";
  if (join(top, sizeof top, r->root, m.point, "") != 0 ||
      join(dir, NH_CGROUP_PATH_MAX, top, rel, "") != 0)
    return fail(r, m.point, "cgroup path too long");
  *top_len = strlen(top);
  if (noprefix) *noprefix = m.noprefix;
  return 0;
}

/* Picks the memory controller's group (v1's line first: a hybrid machine
 * keeps it on v1; else v2's) and the cpuset's (v1's cpuset line, else v2's
 * group when there is one). */
static int locate(reader *r, const proc_groups *g, nh_cgroup *cg) {
  cg->version = g->memory[0] ? 1 : g->unified[0] ? 2 : 0;
  if (cg->version == 0) return 0;
  strcpy(cg->path, cg->version == 1 ? g->memory : g->unified);
  if (group_dir(r, cg->version, "memory", cg->path, cg->dir, &cg->top_len, NULL) != 0) return -1;
  cg->cpuset_version = g->cpuset[0] ? 1 : g->unified[0] ? 2 : 0;
  if (cg->cpuset_version == 0) return 0;
  return group_dir(r, cg->cpuset_version, "cpuset", cg->cpuset_version == 1 ? g->cpuset : g->unified,
                   cg->cpuset_dir, &cg->cpuset_top_len, &cg->cpuset_noprefix);
}

#define PROC_CGROUP_MAX 8192

/* With the text of /proc/self/cgroup in text (PROC_CGROUP_MAX bytes). */
static int read_with(reader *r, nh_cgroup *cg, char *text) {
  char path[NH_CGROUP_PATH_MAX];
  proc_groups g;
  if (join(path, sizeof path, r->root, "/proc/self/cgroup", "") != 0)
    return fail(r, r->root, "root path too long");
  if (slurp(path, text, PROC_CGROUP_MAX) < 0) return 0; /* no /proc: no cgroup */
  if (parse_proc_cgroup(r, path, text, &g) != 0 || locate(r, &g, cg) != 0 ||
      (cg->version && (read_limits(r, cg, cg->top_len) || read_cpusets(r, cg)))) {
    reset(cg);
    return -1;
  }
  if (cg->version == 0) reset(cg);
  if (cg->version) nh_cgroup_read_usage(cg);
  return 0;
}

int nh_cgroup_read(nh_cgroup *cg, const char *root, char *err, size_t errlen) {
  reader r = {root ? root : "", err, errlen};
  reset(cg);
  /* the text in pages from the OS layer, unmapped after: on the starting
   * thread's stack it would stay resident (docs/benchmarks.md, footprint) */
  char *text = nh_os_meta_alloc(PROC_CGROUP_MAX);
  if (text == NULL) return fail(&r, "/proc/self/cgroup", "out of memory to read it");
  int rc = read_with(&r, cg, text);
  nh_os_meta_free(text, PROC_CGROUP_MAX);
  return rc;
}

int nh_cgroup_refresh(nh_cgroup *cg, char *err, size_t errlen) {
  if (cg->version == 0) return 0;
  reader r = {"", err, errlen};
  cg->max = cg->high = NH_CGROUP_NO_LIMIT;
  cg->limit_dir[0] = cg->high_dir[0] = '\0';
  cg->has_mems = cg->has_cpus = 0;
  memset(cg->mems, 0, sizeof cg->mems);
  if (read_limits(&r, cg, cg->top_len) != 0 || read_cpusets(&r, cg) != 0) return -1;
  nh_cgroup_read_usage(cg);
  return 0;
}

/* memory.current (v1 memory.usage_in_bytes) of dir into *v. 0, or -1. */
static int read_current(const nh_cgroup *cg, const char *dir, uint64_t *v) {
  char path[NH_CGROUP_PATH_MAX + 32], text[64];
  const char *name = cg->version == 2 ? "/memory.current" : "/memory.usage_in_bytes";
  if (join(path, sizeof path, dir, name, "") != 0 || slurp(path, text, sizeof text) < 0 ||
      parse_limit(text, v) != 0 || *v == NH_CGROUP_NO_LIMIT)
    return -1;
  return 0;
}

int nh_cgroup_read_usage(nh_cgroup *cg) {
  if (cg->version == 0) return -1;
  uint64_t v, h;
  if (read_current(cg, cg->limit_dir, &v) != 0) return -1;
  cg->usage = v;
  if (strcmp(cg->high_dir, cg->limit_dir) == 0) cg->high_usage = v;
  else if (read_current(cg, cg->high_dir, &h) == 0) cg->high_usage = h;
  else return -1;
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
  if (json) {
    fprintf(out, "{\"version\":%d,\"path\":", cg->version);
    nh_json_string(out, cg->path);
  } else {
    fprintf(out, "cgroup: v%d %s:", cg->version, cg->path);
  }
  print_limit(out, "max", cg->max, json);
  print_limit(out, "high", cg->high, json);
  print_limit(out, "usage", cg->usage, json);
  if (json) {
    fputs(",\"mems\":", out);
    nh_json_string(out, cg->has_mems ? cg->mems_text : "");
    fputs(",\"cpus\":", out);
    nh_json_string(out, cg->has_cpus ? cg->cpus_text : "");
    fputs("}", out);
    return;
  }
  fprintf(out, "; mems %s; cpus %s\n", cg->has_mems ? cg->mems_text : "any",
          cg->has_cpus ? cg->cpus_text : "any");
}
