/*
 * api/cli/region.c: finding and reading another process's published
 * statistics (the writer is api/publish.c; the layout api/publish_layout.h).
 *
 * The region is a memfd the process keeps open: we look for a descriptor of
 * /proc/PID/fd that links to "/memfd:numaheap-stats", open it through that
 * link (the kernel applies /proc/PID's rules: same user or root), and keep
 * it only when its header names PID and PID's start time (a region a child
 * inherited across fork before it published its own is not its own).
 * Reading copies the whole region under the sequence lock.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/cli/cli.h"

/* "Name:" line of /proc/PID/status would do too; comm is one line. */
static void read_comm(pid_t pid, char *out, size_t len) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
  FILE *f = fopen(path, "r");
  out[0] = '\0';
  if (f == NULL) return;
  if (fgets(out, (int)len, f) != NULL) out[strcspn(out, "\n")] = '\0';
  fclose(f);
}

/* State letter (field 3) and start time (field 22) of /proc/PID/stat. 0, or -1. */
static int read_stat(pid_t pid, char *state, uint64_t *start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ') return -1;
  *state = p[2];
  for (int field = 2; field < 22; field++)
    if ((p = strchr(p + 1, ' ')) == NULL) return -1;
  *start = strtoull(p + 1, NULL, 10);
  return 0;
}

static int say(int quiet, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(int quiet, int rc, const char *fmt, ...) {
  if (quiet) return rc;
  va_list ap;
  fprintf(stderr, "numaheap: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  return rc;
}

/* Checks that PID exists, runs, and may be read by us. 0 or an exit status. */
static int check_process(pid_t pid, int quiet, uint64_t *start) {
  char path[64], state;
  struct stat st;
  snprintf(path, sizeof path, "/proc/%d", (int)pid);
  if (stat(path, &st) != 0 || read_stat(pid, &state, start) != 0)
    return say(quiet, NH_CLI_EXIT_NO_PROCESS, "no process %d", (int)pid);
  if (state == 'Z' || state == 'X')
    return say(quiet, NH_CLI_EXIT_NO_PROCESS, "process %d has exited (not yet reaped)", (int)pid);
  if (geteuid() != 0 && st.st_uid != geteuid()) {
    struct passwd *pw = getpwuid(st.st_uid);
    return say(quiet, NH_CLI_EXIT_PERMISSION,
               "process %d belongs to user %s (uid %u): only that user or root may read its "
               "statistics", (int)pid, pw ? pw->pw_name : "?", (unsigned)st.st_uid);
  }
  return 0;
}

/* Maps the region open as fd if it is PID's: 1 (kept in *r), 0 (not PID's
 * region: skipped), or -1 with *version set (a layout we do not read). */
static int try_region(int fd, pid_t pid, uint64_t start, nh_cli_region *r, uint32_t *version) {
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(nh_pub_header)) return 0;
  size_t size = (size_t)st.st_size;
  const nh_pub_header *h = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (h == MAP_FAILED) return 0;
  int rc = 0;
  if (memcmp(h->magic, NH_PUB_MAGIC, sizeof h->magic) != 0) rc = 0;
  else if (h->version != NH_PUB_VERSION || h->header_size != sizeof(nh_pub_header)) {
    *version = h->version;
    rc = -1;
  } else if (h->pid == pid && h->start_time == start && h->size == size) {
    r->map = h, r->map_size = size, r->pid = pid;
    return 1;
  }
  munmap((void *)h, size);
  return rc;
}

/* Scans /proc/PID/fd for the region. 0 or an exit status. */
static int scan_fds(pid_t pid, uint64_t start, int quiet, nh_cli_region *r) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL) {
    if (errno == EACCES || errno == EPERM)
      return say(quiet, NH_CLI_EXIT_PERMISSION,
                 "process %d: permission denied reading /proc/%d/fd (another user's process, "
                 "or one that is not dumpable): run as its user or root", (int)pid, (int)pid);
    return say(quiet, NH_CLI_EXIT_NO_PROCESS, "no process %d", (int)pid);
  }
  uint32_t version = 0;
  int found = 0, bad_version = 0;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    char link[512], fdpath[400];
    snprintf(fdpath, sizeof fdpath, "%s/%s", path, e->d_name);
    ssize_t n = readlink(fdpath, link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = '\0';
    if (strncmp(link, "/memfd:" NH_PUB_MEMFD_NAME, strlen("/memfd:" NH_PUB_MEMFD_NAME)) != 0)
      continue;
    int fd = open(fdpath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    int t = try_region(fd, pid, start, r, &version);
    close(fd);
    found = t == 1;
    bad_version |= t < 0;
  }
  closedir(d);
  if (found) return 0;
  if (bad_version)
    return say(quiet, NH_CLI_EXIT_VERSION,
               "process %d publishes statistics in layout version %u; this numaheap (%s) reads "
               "layout version %u only: use the numaheap command of the library it runs",
               (int)pid, (unsigned)version, NUMAHEAP_VERSION_STRING, NH_PUB_VERSION);
  char comm[64];
  read_comm(pid, comm, sizeof comm);
  return say(quiet, NH_CLI_EXIT_NOT_NUMAHEAP,
             "process %d (%s) is not on numaheap (no published statistics; or it runs with "
             "[stats] publish = no, or started less than one publish interval ago)", (int)pid, comm);
}

int nh_cli_region_open(pid_t pid, int quiet, nh_cli_region *r) {
  uint64_t start = 0;
  memset(r, 0, sizeof *r);
  int rc = check_process(pid, quiet, &start);
  if (rc == 0) rc = scan_fds(pid, start, quiet, r);
  if (rc == 0) read_comm(pid, r->comm, sizeof r->comm);
  return rc;
}

void nh_cli_region_close(nh_cli_region *r) {
  if (r->map) munmap((void *)r->map, r->map_size);
  free(r->copy);
  memset(r, 0, sizeof *r);
}

/* One copy under the sequence lock: true when it is consistent. The acquire
 * load of seq pairs with the writer's final release store; the acquire fence
 * keeps the copy's loads before the second load of seq. */
static bool copy_once(nh_cli_region *r) {
  const nh_pub_header *h = r->map;
  uint64_t s1 = atomic_load_explicit(&((nh_pub_header *)h)->seq, memory_order_acquire);
  if (s1 & 1) return false;
  const _Atomic uint64_t *src = (const _Atomic uint64_t *)(const void *)h;
  uint64_t *dst = (uint64_t *)r->copy;
  for (size_t i = 0; i < r->map_size / sizeof(uint64_t); i++)
    dst[i] = atomic_load_explicit((_Atomic uint64_t *)&src[i], memory_order_relaxed);
  atomic_thread_fence(memory_order_acquire);
  return atomic_load_explicit(&((nh_pub_header *)h)->seq, memory_order_relaxed) == s1;
}

/* Offsets and counts inside the copy: 0, or -1 when they point outside it. */
static int validate(const nh_cli_region *r) {
  const nh_pub_header *h = (const nh_pub_header *)r->copy;
  if (h->nsections < NH_PUB_SECTIONS) return -1;
  for (int s = 0; s < NH_PUB_SECTIONS; s++) {
    const nh_pub_section *sec = &h->sections[s];
    uint64_t fend = sec->fields_offset + (uint64_t)sec->nfields * sizeof(nh_pub_field);
    uint64_t rend = sec->records_offset + (uint64_t)sec->capacity * sec->nfields * sizeof(uint64_t);
    if (fend > r->map_size || rend > r->map_size || sec->count > sec->capacity) return -1;
  }
  return 0;
}

int nh_cli_region_read(nh_cli_region *r) {
  if (r->copy == NULL && (r->copy = malloc(r->map_size)) == NULL)
    return say(0, 1, "out of memory for a copy of %zu bytes", r->map_size);
  for (int attempt = 0; attempt < 2000; attempt++) {
    if (copy_once(r)) {
      if (validate(r) != 0)
        return say(0, NH_CLI_EXIT_VERSION, "process %d: its statistics region is malformed",
                   (int)r->pid);
      r->h = (const nh_pub_header *)r->copy;
      return 0;
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return say(0, 1, "process %d: no consistent snapshot in 2 s (its publisher stopped while "
                   "writing: is the process stopped?)", (int)r->pid);
}

const nh_pub_section *nh_cli_section(const nh_cli_region *r, int s) { return &r->h->sections[s]; }

const nh_pub_field *nh_cli_fields(const nh_cli_region *r, int s) {
  return (const nh_pub_field *)(r->copy + r->h->sections[s].fields_offset);
}

const uint64_t *nh_cli_record(const nh_cli_region *r, int s, uint32_t i) {
  const nh_pub_section *sec = &r->h->sections[s];
  return (const uint64_t *)(r->copy + sec->records_offset) + (uint64_t)i * sec->nfields;
}

int nh_cli_field(const nh_cli_region *r, int s, const char *name) {
  const nh_pub_field *f = nh_cli_fields(r, s);
  for (uint32_t k = 0; k < r->h->sections[s].nfields; k++)
    if (strncmp(f[k].name, name, sizeof f[k].name) == 0) return (int)k;
  return -1;
}

uint64_t nh_cli_value(const nh_cli_region *r, int s, uint32_t i, const char *name) {
  int k = nh_cli_field(r, s, name);
  return k < 0 || i >= r->h->sections[s].count ? 0 : nh_cli_record(r, s, i)[k];
}

int nh_cli_parse_pid(const nh_cli_command *cmd, const char *s, pid_t *pid) {
  long v;
  if (nh_cli_parse_long(cmd, "PID", s, 1, 4194304, &v) != 0) return -1; /* pid_max's limit */
  *pid = (pid_t)v;
  return 0;
}

void nh_cli_bytes(char *buf, size_t len, uint64_t v) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double x = (double)v;
  int u = 0;
  while (x >= 1024 && u < 5) x /= 1024, u++;
  if (u == 0) snprintf(buf, len, "%" PRIu64 " B", v);
  else snprintf(buf, len, "%.1f %s", x, units[u]);
}
