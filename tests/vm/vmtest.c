/*
 * tests/vm/vmtest.c: argument parsing, topology reading, page queries and
 * check reporting for the in-VM test programs (see vmtest.h).
 */
#include "vmtest.h"

#include <ctype.h>
#include <pthread.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define VM_MPOL_BIND 2

static const char *vm_layout_name = "?";

/* ---- reporting ------------------------------------------------------------ */

void vm_ok(const char *check, const char *fmt, ...) {
  va_list ap;
  printf("ok %s: ", check);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

_Noreturn void vm_fail(const char *check, const char *fmt, ...) {
  va_list ap;
  printf("FAIL %s [%s]: ", check, vm_layout_name);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
  exit(1);
}

/* ---- expectation strings ---------------------------------------------------- */

/* Parses a CPU list ("0-1,4", "none") into *set; 0 or -1. */
static int parse_cpulist(const char *s, size_t len, cpu_set_t *set, int *count) {
  CPU_ZERO(set);
  *count = 0;
  if (len == 4 && strncmp(s, "none", 4) == 0) return 0;
  const char *end = s + len;
  while (s < end) {
    char *e;
    long a = strtol(s, &e, 10), b = a;
    if (e == s || a < 0 || a >= CPU_SETSIZE) return -1;
    if (e < end && *e == '-') {
      const char *bs = e + 1;
      b = strtol(bs, &e, 10);
      if (e == bs || b < a || b >= CPU_SETSIZE) return -1;
    }
    for (long c = a; c <= b; c++) CPU_SET((int)c, set);
    *count += (int)(b - a + 1);
    if (e < end && *e != ',') return -1;
    s = (e < end) ? e + 1 : e;
  }
  return 0;
}

/* Splits "a/b/c" (len bytes) into at most max entries; returns their count
 * or -1 when there are more than max. */
static int split_nodes(const char *s, size_t len, const char **ent, size_t *elen, int max) {
  int n = 0;
  const char *end = s + len;
  while (s <= end) {
    const char *slash = memchr(s, '/', (size_t)(end - s));
    const char *e = slash ? slash : end;
    if (n == max) return -1;
    ent[n] = s;
    elen[n++] = (size_t)(e - s);
    s = e + 1;
  }
  return n;
}

/* Finds "key=" in the ';'-separated spec; returns the value and its length. */
static const char *spec_field(const char *spec, const char *key, size_t *len) {
  size_t klen = strlen(key);
  for (const char *p = spec; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
    if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
      const char *v = p + klen + 1, *semi = strchr(v, ';');
      *len = semi ? (size_t)(semi - v) : strlen(v);
      return v;
    }
  }
  return NULL;
}

static int parse_dist_row(const char *s, size_t len, int *row, int n) {
  const char *end = s + len;
  for (int j = 0; j < n; j++) {
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s || e > end || v < 10 || v > 255) return -1;
    row[j] = (int)v;
    if (j + 1 < n && (e >= end || *e != ',')) return -1;
    s = e + 1;
  }
  return (s - 1 == end) ? 0 : -1;
}

int vm_parse_expect(const char *spec, vm_topo *t, char *err, size_t errlen) {
  const char *ent[VM_MAX_NODES];
  size_t elen[VM_MAX_NODES], clen, mlen, dlen;
  const char *c = spec_field(spec, "cpus", &clen), *m = spec_field(spec, "mem", &mlen);
  const char *d = spec_field(spec, "dist", &dlen);
  memset(t, 0, sizeof *t);
  if (!c || !m || !d) {
    snprintf(err, errlen, "expectation '%s' lacks cpus=, mem= or dist=", spec);
    return -1;
  }
  t->nnodes = split_nodes(c, clen, ent, elen, VM_MAX_NODES);
  for (int i = 0; i < t->nnodes; i++) {
    t->os_id[i] = i;
    if (parse_cpulist(ent[i], elen[i], &t->cpus[i], &t->ncpus[i]) != 0) {
      snprintf(err, errlen, "expectation: bad CPU list '%.*s' of node %d", (int)elen[i], ent[i], i);
      return -1;
    }
  }
  if (t->nnodes < 1 || split_nodes(m, mlen, ent, elen, VM_MAX_NODES) != t->nnodes) {
    snprintf(err, errlen, "expectation: mem= and cpus= name different node counts");
    return -1;
  }
  for (int i = 0; i < t->nnodes; i++) t->mem_kib[i] = strtoull(ent[i], NULL, 10) * 1024u;
  if (split_nodes(d, dlen, ent, elen, VM_MAX_NODES) != t->nnodes) {
    snprintf(err, errlen, "expectation: dist= must have %d rows", t->nnodes);
    return -1;
  }
  for (int i = 0; i < t->nnodes; i++) {
    if (parse_dist_row(ent[i], elen[i], t->dist[i], t->nnodes) != 0) {
      snprintf(err, errlen, "expectation: bad distance row '%.*s' (want %d values)",
               (int)elen[i], ent[i], t->nnodes);
      return -1;
    }
  }
  return 0;
}

/* ---- the kernel's topology ---------------------------------------------------- */

/* Reads a whole small file into buf; 0 or -1. */
static int read_text(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, len - 1, f);
  fclose(f);
  buf[n] = '\0';
  while (n > 0 && isspace((unsigned char)buf[n - 1])) buf[--n] = '\0';
  return 0;
}

static int cmp_int(const void *a, const void *b) {
  return *(const int *)a - *(const int *)b;
}

/* The online node ids, ascending, from the node directories. */
static int list_nodes(vm_topo *t, char *err, size_t errlen) {
  DIR *dir = opendir("/sys/devices/system/node");
  struct dirent *de;
  if (!dir) {
    snprintf(err, errlen, "cannot open /sys/devices/system/node: %s", strerror(errno));
    return -1;
  }
  t->nnodes = 0;
  while ((de = readdir(dir)) != NULL) {
    char *e;
    if (strncmp(de->d_name, "node", 4) != 0 || !isdigit((unsigned char)de->d_name[4])) continue;
    long id = strtol(de->d_name + 4, &e, 10);
    if (*e == '\0' && t->nnodes < VM_MAX_NODES) t->os_id[t->nnodes++] = (int)id;
  }
  closedir(dir);
  qsort(t->os_id, (size_t)t->nnodes, sizeof(int), cmp_int);
  return 0;
}

/* MemTotal of node os in KiB from its meminfo. */
static uint64_t node_memtotal_kib(int os) {
  char path[128], line[256];
  unsigned long long kib = 0;
  snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", os);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    const char *p = strstr(line, "MemTotal:");
    if (p && sscanf(p + 9, "%llu", &kib) == 1) break;
  }
  fclose(f);
  return kib;
}

static int read_node(vm_topo *t, int i, char *err, size_t errlen) {
  char path[128], buf[4096];
  int os = t->os_id[i];
  snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", os);
  if (read_text(path, buf, sizeof buf) != 0 ||
      parse_cpulist(buf, strlen(buf), &t->cpus[i], &t->ncpus[i]) != 0) {
    snprintf(err, errlen, "cannot read or parse %s", path);
    return -1;
  }
  t->mem_kib[i] = node_memtotal_kib(os);
  snprintf(path, sizeof path, "/sys/devices/system/node/node%d/distance", os);
  if (read_text(path, buf, sizeof buf) != 0) {
    snprintf(err, errlen, "cannot read %s", path);
    return -1;
  }
  char *s = buf;
  for (int j = 0; j < t->nnodes; j++) {
    char *e;
    t->dist[i][j] = (int)strtol(s, &e, 10);
    if (e == s) {
      snprintf(err, errlen, "%s: '%s' has fewer than %d values", path, buf, t->nnodes);
      return -1;
    }
    s = e;
  }
  return 0;
}

int vm_read_kernel_topo(vm_topo *t, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  if (list_nodes(t, err, errlen) != 0) return -1;
  for (int i = 0; i < t->nnodes; i++) {
    if (read_node(t, i, err, errlen) != 0) return -1;
  }
  return 0;
}

/* ---- arguments ------------------------------------------------------------------- */

void vm_start(int argc, char **argv, vm_args *a) {
  char err[256];
  const char *spec = NULL;
  setvbuf(stdout, NULL, _IOLBF, 0);
  memset(a, 0, sizeof *a);
  int i = 1;
  for (; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--layout") == 0) a->layout = argv[i + 1];
    else if (strcmp(argv[i], "--expect") == 0) spec = argv[i + 1];
    else break;
  }
  if (!a->layout || !spec) {
    fprintf(stderr, "usage: %s --layout NAME --expect SPEC [ARGS...]\n", argv[0]);
    exit(2);
  }
  vm_layout_name = a->layout;
  a->spec = spec;
  if (vm_parse_expect(spec, &a->expect, err, sizeof err) != 0) vm_fail("arguments", "%s", err);
  a->argc = argc - i;
  a->argv = argv + i;
}

/* ---- CPUs and pages ---------------------------------------------------------------- */

int vm_pin_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) return -1;
  sched_yield(); /* let the scheduler move us now */
  return 0;
}

int vm_current_node(void) {
  unsigned cpu, node;
  if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0) return -1;
  return (int)node;
}

int vm_first_cpu(const vm_topo *t, int i) {
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (CPU_ISSET(c, &t->cpus[i])) return c;
  }
  return -1;
}

int vm_mem_home(const vm_topo *t, int i) {
  int best = -1;
  if (t->mem_kib[i] > 0) return i;
  for (int j = 0; j < t->nnodes; j++) {
    if (t->mem_kib[j] > 0 && (best < 0 || t->dist[i][j] < t->dist[i][best])) best = j;
  }
  return best;
}

int vm_entry_of_os_node(const vm_topo *t, int os_node) {
  for (int i = 0; i < t->nnodes; i++) {
    if (t->os_id[i] == os_node) return i;
  }
  return -1;
}

int vm_page_node(const void *p) {
  void *page = (void *)((uintptr_t)p & ~(uintptr_t)(VM_PAGE - 1));
  int status = -1;
  if (syscall(SYS_move_pages, 0, 1UL, &page, NULL, &status, 0) != 0) return -errno;
  return status;
}

long vm_range_off_node(const void *p, size_t len, int os_node, const void **bad_addr,
                       int *bad_node) {
  enum { BATCH = 512 };
  void *pages[BATCH];
  int status[BATCH];
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(VM_PAGE - 1), end = (uintptr_t)p + len;
  long off = 0;
  while (a < end) {
    unsigned long n = 0;
    for (; n < BATCH && a < end; n++, a += VM_PAGE) pages[n] = (void *)a;
    if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) != 0) return -1;
    for (unsigned long k = 0; k < n; k++) {
      if (status[k] == os_node) continue;
      if (off++ == 0) {
        *bad_addr = pages[k];
        *bad_node = status[k];
      }
    }
  }
  return off;
}

int vm_bind(void *p, size_t len, int os_node) {
  unsigned long mask = 1UL << os_node;
  /* maxnode counts bits plus one: the kernel's historical off-by-one. */
  return (int)syscall(SYS_mbind, p, len, VM_MPOL_BIND, &mask, 8 * sizeof mask + 1, 0);
}

void vm_touch(void *p, size_t len) {
  volatile char *c = p;
  for (size_t off = 0; off < len; off += VM_PAGE) c[off] = (char)(off >> 12 | 1);
  if (len) c[len - 1] = 1;
}

void vm_run_config_child(const char *check, const char *path, const char *ini, const char *me,
                         const vm_args *a, const char *child_check) {
  FILE *f = fopen(path, "w");
  if (!f || fputs(ini, f) < 0 || fclose(f) != 0)
    vm_fail(check, "cannot write %s: %s", path, strerror(errno));
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("NUMAHEAP_CONFIG", path, 1);
    execl(me, me, "--layout", a->layout, "--expect", a->spec, child_check, (char *)NULL);
    printf("FAIL %s [%s]: exec %s: %s\n", check, a->layout, me, strerror(errno));
    _exit(1);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) vm_fail(check, "fork/wait failed");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    vm_fail(check, "the %s child failed (status 0x%x; its FAIL line is above)", check, status);
}

static const vm_check *find_check(const vm_check *table, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(table[i].name, name) == 0) return &table[i];
  char known[512] = "";
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(known);
    snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", table[i].name);
  }
  vm_fail("usage", "unknown check \"%s\" (%s)", name, known);
}

void vm_run_checks(const vm_check *table, size_t n, const vm_args *a) {
  if (a->argc > 0) {
    for (int i = 0; i < a->argc; i++) find_check(table, n, a->argv[i])->fn();
    return;
  }
  for (size_t i = 0; i < n; i++)
    if (table[i].by_default) table[i].fn();
}

void vm_start_topo(int argc, char **argv, vm_args *a, vm_topo *t) {
  char err[256];
  vm_start(argc, argv, a);
  if (vm_read_kernel_topo(t, err, sizeof err) != 0) vm_fail("sysfs", "%s", err);
}

struct pinned { int cpu; vm_body body; void *arg; };

static void *pinned_main(void *p) {
  struct pinned *pn = p;
  if (vm_pin_cpu(pn->cpu) != 0) vm_fail("pin", "cannot pin a thread to CPU %d", pn->cpu);
  pn->body(pn->arg);
  return NULL;
}

void vm_run_on_cpu(int cpu, vm_body body, void *arg) {
  pthread_t th;
  struct pinned pn = {cpu, body, arg};
  int rc = pthread_create(&th, NULL, pinned_main, &pn);
  if (rc != 0) vm_fail("thread", "pthread_create: %s", strerror(rc));
  pthread_join(th, NULL);
}

int vm_run_on_each_cpu(const vm_topo *t, vm_body body) {
  int n = 0;
  for (int node = 0; node < t->nnodes; node++)
    for (int c = 0; c < CPU_SETSIZE; c++) {
      if (!CPU_ISSET(c, &t->cpus[node])) continue;
      vm_run_on_cpu(c, body, &c);
      n++;
    }
  return n;
}
