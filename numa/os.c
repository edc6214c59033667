/*
 * numa/os.c: the Linux back end of numa/os.h. The only file of numaheap that
 * calls mmap, munmap, mbind, madvise, mprotect, move_pages and getcpu.
 *
 * mbind and move_pages are issued as raw syscalls: libnuma's wrappers may
 * allocate and its own header calls them slow for per-allocation use.
 */
#define _GNU_SOURCE
#include "numa/os.h"

#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <poll.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MPOL_BIND
#define MPOL_BIND 2
#endif
#ifndef MPOL_MF_STRICT
#define MPOL_MF_STRICT (1 << 0)
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* ---- fault injection (tests) -------------------------------------------- */

/* Synchronization: atomic, relaxed (test-only counters; no ordering needed). */
static _Atomic int os_fail_maps;
static _Atomic int os_fail_binds;
static _Atomic uint64_t os_faults_fired;
static _Atomic uint64_t os_node_avail; /* nonzero: every node reports this */

void nh_os_set_faults(const nh_os_faults *f) {
  atomic_store_explicit(&os_fail_maps, f ? f->fail_maps : 0, memory_order_relaxed);
  atomic_store_explicit(&os_fail_binds, f ? f->fail_binds : 0, memory_order_relaxed);
  atomic_store_explicit(&os_node_avail, f ? f->node_avail : 0, memory_order_relaxed);
}

uint64_t nh_os_faults_injected(void) {
  return atomic_load_explicit(&os_faults_fired, memory_order_relaxed);
}

/* 1 if the next call of this kind must fail. */
static int fault_fires(_Atomic int *counter) {
  int n = atomic_load_explicit(counter, memory_order_relaxed);
  while (n != 0) {
    int next = n > 0 ? n - 1 : n;
    if (atomic_compare_exchange_weak_explicit(counter, &n, next, memory_order_relaxed,
                                              memory_order_relaxed)) {
      atomic_fetch_add_explicit(&os_faults_fired, 1, memory_order_relaxed);
      return 1;
    }
  }
  return 0;
}

/* ---- pages ----------------------------------------------------------------- */

size_t nh_os_page_size(void) {
  static size_t page; /* benign race: every thread computes the same value */
  if (page == 0) {
    unsigned long v = getauxval(AT_PAGESZ); /* not sysconf: its code and tables cost pages */
    page = v > 0 ? (size_t)v : 4096;
  }
  return page;
}

/* How segments are bound (nh_os_set_bind). Synchronization: atomic,
 * relaxed (a setting read at each bind; set before the heaps map anything). */
static _Atomic int os_bind_strict;
/* Whether the kernel takes MPOL_PREFERRED_MANY (5.15+): 0 not known yet,
 * 1 yes, -1 no. Relaxed: every thread finds the same answer. */
static _Atomic int os_pref_many;
#define NH_MPOL_PREFERRED 1
#define NH_MPOL_PREFERRED_MANY 5

void nh_os_set_bind(int strict) {
  atomic_store_explicit(&os_bind_strict, strict, memory_order_relaxed);
}

const char *nh_os_bind_name(void) {
  if (atomic_load_explicit(&os_bind_strict, memory_order_relaxed)) return "bind";
  return atomic_load_explicit(&os_pref_many, memory_order_relaxed) < 0 ? "preferred"
                                                                       : "preferred_many";
}

static int mbind_range(void *addr, size_t size, int os_node) {
  unsigned long mask[16]; /* up to 1024 OS nodes */
  if (os_node < 0 || os_node >= (int)(sizeof mask * 8)) return EINVAL;
  memset(mask, 0, sizeof mask);
  mask[os_node / (8 * sizeof(unsigned long))] |= 1UL << (os_node % (8 * sizeof(unsigned long)));
  if (fault_fires(&os_fail_binds)) return EIO;
  if (atomic_load_explicit(&os_bind_strict, memory_order_relaxed)) {
    long r = syscall(SYS_mbind, addr, size, MPOL_BIND, mask, sizeof mask * 8, 0UL);
    return r == 0 ? 0 : errno;
  }
  if (atomic_load_explicit(&os_pref_many, memory_order_relaxed) >= 0) {
    long r = syscall(SYS_mbind, addr, size, NH_MPOL_PREFERRED_MANY, mask, sizeof mask * 8, 0UL);
    if (r == 0) {
      atomic_store_explicit(&os_pref_many, 1, memory_order_relaxed);
      return 0;
    }
    if (errno != EINVAL) return errno;
    /* EINVAL: a kernel before 5.15 (or a node the cpuset forbids, which
     * MPOL_PREFERRED below refuses as well) */
  }
  long r = syscall(SYS_mbind, addr, size, NH_MPOL_PREFERRED, mask, sizeof mask * 8, 0UL);
  if (r == 0 && atomic_load_explicit(&os_pref_many, memory_order_relaxed) == 0)
    atomic_store_explicit(&os_pref_many, -1, memory_order_relaxed);
  return r == 0 ? 0 : errno;
}

int nh_os_bind(void *addr, size_t size, int os_node) {
  return mbind_range(addr, size, os_node);
}

/* Maps size+align bytes and trims both ends so that the result is aligned. */
static void *map_aligned(void *hint, size_t size, size_t align, int prot) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (align <= nh_os_page_size()) {
    void *p = mmap(hint, size, prot, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
  }
  if (size + align < size) return NULL;
  char *raw = mmap(hint, size + align, prot, flags, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = start - (uintptr_t)raw;
  size_t tail = align - head;
  if (head) munmap(raw, head);
  if (tail) munmap((char *)start + size, tail);
  return (void *)start;
}

void *nh_os_map_aligned(size_t size, size_t align, int os_node) {
  if (fault_fires(&os_fail_maps)) return NULL;
  void *p = map_aligned(NULL, size, align, PROT_READ | PROT_WRITE);
  if (p == NULL) return NULL;
  if (os_node >= 0 && mbind_range(p, size, os_node) != 0) {
    munmap(p, size);
    return NULL;
  }
  return p;
}

int nh_os_grow_in_place(void *addr, size_t old_size, size_t new_size) {
  if (fault_fires(&os_fail_maps)) return ENOMEM;
  void *p = mremap(addr, old_size, new_size, 0);
  return p == MAP_FAILED ? errno : 0;
}

void *nh_os_move(void *addr, size_t old_size, size_t new_size, size_t align) {
  if (fault_fires(&os_fail_maps)) return NULL;
  void *to = map_aligned(NULL, new_size, align, PROT_NONE); /* an aligned place to land */
  if (to == NULL) return NULL;
  void *p = mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  if (p == MAP_FAILED) {
    munmap(to, new_size);
    return NULL;
  }
  return p;
}

/* ---- huge pages -------------------------------------------------------------- */

#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif
#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

static int read_small_file(const char *path, char *buf, size_t cap);

int nh_os_thp_mode(void) {
  char buf[128];
  if (read_small_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) <= 0)
    return NH_OS_THP_NONE;
  if (strstr(buf, "[always]")) return NH_OS_THP_ALWAYS;
  if (strstr(buf, "[madvise]")) return NH_OS_THP_MADVISE;
  return NH_OS_THP_NEVER;
}

int nh_os_advise_huge(void *addr, size_t size) {
  return madvise(addr, size, MADV_HUGEPAGE) == 0 ? 0 : errno;
}

int nh_os_advise_small(void *addr, size_t size) {
  return madvise(addr, size, MADV_NOHUGEPAGE) == 0 ? 0 : errno;
}

/* The decimal number a small sysfs file starts with: true and *v, or false
 * (no such file, or no digit first). Saturates rather than wraps. */
static bool read_decimal_file(const char *path, uint64_t *v) {
  char buf[64];
  if (read_small_file(path, buf, sizeof buf) <= 0 || buf[0] < '0' || buf[0] > '9') return false;
  *v = 0;
  for (const char *p = buf; *p >= '0' && *p <= '9'; p++)
    *v = *v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : *v * 10 + (uint64_t)(*p - '0');
  return true;
}

uint64_t nh_os_node_free_hugepages(int os_node) {
  char path[128];
  nh_os_path(path, sizeof path, "/sys/devices/system/node/node", "", os_node,
             "/hugepages/hugepages-2048kB/free_hugepages");
  uint64_t v;
  return read_decimal_file(path, &v) ? v : 0;
}

int nh_os_page_reporting(const char *root, int *order) {
  char path[256], buf[160];
  int on = 0;
  *order = -1;
  for (int n = 0; n < 64 && !on; n++) { /* virtioN: the bound balloon devices */
    snprintf(path, sizeof path, "%s/sys/bus/virtio/drivers/virtio_balloon/virtio%d/features", root, n);
    /* one character a feature bit; bit 5 is VIRTIO_BALLOON_F_REPORTING */
    on = read_small_file(path, buf, sizeof buf) > 5 && buf[5] == '1';
  }
  if (!on) return 0;
  snprintf(path, sizeof path, "%s/sys/module/page_reporting/parameters/page_reporting_order", root);
  uint64_t v;
  if (read_decimal_file(path, &v) && v < 64) *order = (int)v;
  return 1;
}

void *nh_os_map_hugetlb(size_t size, size_t align, int os_node) {
  if (fault_fires(&os_fail_maps)) return NULL;
  const size_t huge = (size_t)2 << 20;
  if (size % huge != 0 || align < huge) return NULL;
  /* reserve an aligned range, then place the huge page mapping over it */
  void *at = map_aligned(NULL, size, align, PROT_NONE);
  if (at == NULL) return NULL;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
  void *p = mmap(at, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) {
    munmap(at, size);
    return NULL;
  }
  if ((os_node >= 0 && mbind_range(p, size, os_node) != 0) ||
      madvise(p, size, MADV_POPULATE_WRITE) != 0) {
    munmap(p, size);
    return NULL;
  }
  return p;
}

static int to_prot(int prot);

int nh_os_remap_hugetlb(void *addr, size_t size, int prot, int os_node) {
  if (size % ((size_t)2 << 20) != 0 || ((uintptr_t)addr & (((size_t)2 << 20) - 1)) != 0)
    return EINVAL;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, rc = 0;
  if (fault_fires(&os_fail_maps)) return ENOMEM; /* before anything is replaced */
  void *p = mmap(addr, size, to_prot(prot), flags | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
  if (p == MAP_FAILED) rc = errno;
  if (rc == 0 && os_node >= 0) rc = mbind_range(addr, size, os_node);
  if (rc == 0 && madvise(addr, size, MADV_POPULATE_WRITE) != 0) rc = errno;
  if (rc == 0) return 0;
  /* MAP_FIXED may have removed the old mapping already: put an ordinary one back */
  p = mmap(addr, size, to_prot(prot), flags | MAP_NORESERVE, -1, 0);
  if (p != MAP_FAILED && os_node >= 0) mbind_range(addr, size, os_node);
  return rc;
}

int nh_os_unmap(void *addr, size_t size) {
  return munmap(addr, size) == 0 ? 0 : errno;
}

void *nh_os_reserve(void *hint, size_t size, size_t align, int fixed) {
  if (fault_fires(&os_fail_maps)) return NULL;
  if (fixed) {
    void *p = mmap(hint, size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (p != hint) { /* kernels before 4.17 ignore MAP_FIXED_NOREPLACE */
      munmap(p, size);
      return NULL;
    }
    return p;
  }
  return map_aligned(hint, size, align, PROT_NONE);
}

static int to_prot(int prot) {
  return ((prot & NH_OS_PROT_READ) ? PROT_READ : 0) | ((prot & NH_OS_PROT_WRITE) ? PROT_WRITE : 0) |
         ((prot & NH_OS_PROT_EXEC) ? PROT_EXEC : 0);
}

int nh_os_commit(void *addr, size_t size, int prot, int os_node) {
  if (mprotect(addr, size, to_prot(prot)) != 0) return errno;
  if (os_node >= 0) return mbind_range(addr, size, os_node);
  return 0;
}

int nh_os_populate(void *addr, size_t size) {
  if (madvise(addr, size, MADV_POPULATE_WRITE) == 0) return 0;
  if (errno != EINVAL) return errno;
  size_t pg = nh_os_page_size();
  for (size_t off = 0; off < size; off += pg) ((volatile char *)addr)[off] = 0;
  return 0;
}

int nh_os_purge(void *addr, size_t size) {
  return madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : errno;
}

int nh_os_reset(void *addr, size_t size) {
  if (madvise(addr, size, MADV_FREE) == 0) return 0;
  return madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : errno;
}

int nh_os_decommit(void *addr, size_t size) {
  if (madvise(addr, size, MADV_DONTNEED) != 0) return errno;
  return mprotect(addr, size, PROT_NONE) == 0 ? 0 : errno;
}

int nh_os_protect(void *addr, size_t size, int prot) {
  return mprotect(addr, size, to_prot(prot)) == 0 ? 0 : errno;
}

/* ---- CPUs and nodes -------------------------------------------------------- */

int nh_os_current_cpu(void) {
  return sched_getcpu(); /* vDSO on x86-64; -1 with errno if unsupported */
}

static int membarrier(int cmd, unsigned flags, int cpu) {
  return (int)syscall(__NR_membarrier, cmd, flags, cpu);
}

int nh_os_rseq_fence_register(void) {
  int cmds = membarrier(MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0) return errno;
  if (!(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)) return ENOSYS;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0 ? 0 : errno;
}

int nh_os_rseq_fence_cpu(int cpu) {
  return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_FLAG_CPU, cpu) == 0
             ? 0
             : errno;
}

int nh_os_page_node(const void *addr) {
  void *pages[1] = {(void *)((uintptr_t)addr & ~(uintptr_t)(nh_os_page_size() - 1))};
  int status[1] = {-1};
  if (syscall(SYS_move_pages, 0, 1UL, pages, NULL, status, 0) != 0) return -1;
  return status[0] >= 0 ? status[0] : -1;
}

int nh_os_is_mapped(const void *addr) {
  unsigned char vec[1];
  void *page = (void *)((uintptr_t)addr & ~(uintptr_t)(nh_os_page_size() - 1));
  if (mincore(page, nh_os_page_size(), vec) == 0) return 1;
  return errno == ENOMEM ? 0 : 1; /* ENOMEM: unmapped; anything else (EAGAIN): assume mapped */
}

long nh_os_path(char *buf, size_t cap, const char *a, const char *b, long n, const char *c) {
  char num[24];
  int k = 0;
  if (n >= 0) do num[k++] = (char)('0' + n % 10); while ((n /= 10) > 0 && k < 23);
  size_t len = 0;
  bool fits = cap > 0;
  for (const char *s = a; *s && fits; s++) fits = len + 1 < cap && (buf[len++] = *s);
  for (const char *s = b; *s && fits; s++) fits = len + 1 < cap && (buf[len++] = *s);
  while (k > 0 && fits) fits = len + 1 < cap && (buf[len++] = num[--k]);
  for (const char *s = c; *s && fits; s++) fits = len + 1 < cap && (buf[len++] = *s);
  if (cap > 0) buf[len] = '\0';
  return fits ? (long)len : -1;
}

/* The start-up's file reads go through syscall(2), which the mmap and
 * madvise wrappers sit beside in libc's text, not through open/read/close,
 * whose page (and the 64 KiB the kernel maps around it) a program that
 * allocates little would otherwise map for numaheap alone
 * (docs/benchmarks.md, footprint). */
static int sys_open(const char *path, int flags) {
  return (int)syscall(SYS_openat, AT_FDCWD, path, flags, 0);
}
static ssize_t sys_read(int fd, void *buf, size_t n) { return (ssize_t)syscall(SYS_read, fd, buf, n); }
static void sys_close(int fd) { (void)syscall(SYS_close, fd); }

long nh_os_read_file(const char *path, char *buf, size_t cap, int *err) {
  int fd = sys_open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t r = sys_read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      *err = errno;
      sys_close(fd);
      return -1;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  sys_close(fd);
  buf[len] = '\0';
  return (long)len;
}

static int read_small_file(const char *path, char *buf, size_t cap) {
  int err;
  return (int)nh_os_read_file(path, buf, cap, &err);
}

/* Parses a kernel list like "0-3,8,10-11" and calls fn for each number. */
static void parse_list(const char *s, void (*fn)(int, void *), void *arg) {
  while (*s) {
    if (*s < '0' || *s > '9') { s++; continue; }
    int a = 0, b;
    while (*s >= '0' && *s <= '9') a = a * 10 + (*s++ - '0');
    b = a;
    if (*s == '-') {
      s++;
      b = 0;
      while (*s >= '0' && *s <= '9') b = b * 10 + (*s++ - '0');
    }
    for (int i = a; i <= b; i++) fn(i, arg);
  }
}

/* The kB value after `key` in a meminfo text, or -1. */
static long long meminfo_kb(const char *text, const char *key) {
  const char *p = strstr(text, key);
  if (p == NULL) return -1;
  p += strlen(key);
  while (*p == ' ' || *p == ':') p++;
  long long v = 0;
  if (*p < '0' || *p > '9') return -1;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  return v;
}

uint64_t nh_os_node_available(int os_node) {
  uint64_t injected = atomic_load_explicit(&os_node_avail, memory_order_relaxed);
  if (injected) return injected;
  char path[96], buf[4096];
  nh_os_path(path, sizeof path, "/sys/devices/system/node/node", "", os_node, "/meminfo");
  if (read_small_file(path, buf, sizeof buf) <= 0) return UINT64_MAX;
  long long free_kb = meminfo_kb(buf, "MemFree"), cache_kb = meminfo_kb(buf, "Inactive(file)");
  if (free_kb < 0) return UINT64_MAX;
  return ((uint64_t)free_kb + (uint64_t)(cache_kb > 0 ? cache_kb : 0)) * 1024u;
}

static void track_max(int v, void *arg) {
  int *m = arg;
  if (v + 1 > *m) *m = v + 1;
}

int nh_os_real_node_slots(void) {
  char buf[4096];
  int max = 0;
  if (read_small_file("/sys/devices/system/node/possible", buf, sizeof buf) < 0) return 1;
  parse_list(buf, track_max, &max);
  return max > 0 ? max : 1;
}

struct find_arg { int want, found; };
static void find_num(int v, void *arg) {
  struct find_arg *f = arg;
  if (v == f->want) f->found = 1;
}

int nh_os_real_node_has_memory(int os_node) {
  char buf[4096];
  if (read_small_file("/sys/devices/system/node/has_memory", buf, sizeof buf) < 0)
    return os_node == 0; /* no sysfs NUMA: one node, 0 */
  struct find_arg f = {os_node, 0};
  parse_list(buf, find_num, &f);
  return f.found;
}

/* ---- metadata -------------------------------------------------------------- */

static size_t round_pages(size_t size) {
  size_t pg = nh_os_page_size();
  return (size + pg - 1) & ~(pg - 1);
}

void *nh_os_meta_map(size_t size) {
  if (size == 0) size = 1;
  void *p = mmap(NULL, round_pages(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) return NULL;
  /* metadata is touched sparsely (a CPU's region, a class's ring): where the
   * kernel's THP is `always`, a 2 MiB page at the first touch would make a
   * page's worth of it cost 512 (2 MiB ranges only: smaller ones never get one) */
  if (size >= ((size_t)2 << 20)) (void)nh_os_advise_small(p, round_pages(size));
  return p;
}

void nh_os_meta_unmap(void *p, size_t size) {
  if (p) munmap(p, round_pages(size ? size : 1));
}

/* ---- time, randomness, stderr ---------------------------------------------- */

/* Synchronization: atomic, relaxed (set by tests between phases). */
static _Atomic(uint64_t (*)(void)) os_clock;

void nh_os_set_clock(uint64_t (*fn)(void)) {
  atomic_store_explicit(&os_clock, fn, memory_order_relaxed);
}

typedef int (*gettime_fn)(clockid_t, struct timespec *);

/* The vDSO's dynamic symbol `name`, or NULL (no vDSO: Valgrind hides it;
 * no DT_HASH to count its symbols). */
static void *vdso_symbol(const char *name) {
  const char *base = (const char *)(uintptr_t)getauxval(AT_SYSINFO_EHDR);
  if (base == NULL) return NULL;
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)base;
  const Elf64_Phdr *ph = (const Elf64_Phdr *)(const void *)(base + eh->e_phoff);
  const Elf64_Dyn *dyn = NULL;
  uintptr_t bias = 0;
  for (int i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0) bias = (uintptr_t)base - ph[i].p_vaddr;
    if (ph[i].p_type == PT_DYNAMIC) dyn = (const Elf64_Dyn *)(const void *)(base + ph[i].p_offset);
  }
  if (dyn == NULL) return NULL;
  const Elf64_Sym *sym = NULL;
  const char *str = NULL;
  const Elf32_Word *hash = NULL;
  for (; dyn->d_tag != DT_NULL; dyn++) {
    if (dyn->d_tag == DT_SYMTAB) sym = (const Elf64_Sym *)(bias + dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_STRTAB) str = (const char *)(bias + dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_HASH) hash = (const Elf32_Word *)(bias + dyn->d_un.d_ptr);
  }
  if (sym == NULL || str == NULL || hash == NULL) return NULL;
  for (Elf32_Word i = 0; i < hash[1]; i++) /* hash[1]: the number of symbols */
    if (ELF64_ST_TYPE(sym[i].st_info) == STT_FUNC && sym[i].st_shndx != SHN_UNDEF &&
        strcmp(str + sym[i].st_name, name) == 0)
      return (void *)(bias + sym[i].st_value);
  return NULL;
}

/* The clock: the vDSO's clock_gettime, called directly, else libc's. Found
 * on the first read. Not libc's wrapper by default: it is the only thing
 * start-up would run in its 64 KiB of libc's code, which a small program
 * then maps (docs/benchmarks.md, "Footprint, fifth pass"). Synchronization:
 * relaxed; every thread that finds it stores the same pointer. */
static _Atomic(gettime_fn) os_gettime;

static gettime_fn find_gettime(void) {
  gettime_fn fn = (gettime_fn)vdso_symbol("__vdso_clock_gettime");
  if (fn == NULL) fn = clock_gettime;
  atomic_store_explicit(&os_gettime, fn, memory_order_relaxed);
  return fn;
}

uint64_t nh_os_clock_ns(void) {
  uint64_t (*fake)(void) = atomic_load_explicit(&os_clock, memory_order_relaxed);
  if (fake) return fake();
  gettime_fn fn = atomic_load_explicit(&os_gettime, memory_order_relaxed);
  if (__builtin_expect(fn == NULL, 0)) fn = find_gettime();
  struct timespec ts;
  if (fn(CLOCK_MONOTONIC_COARSE, &ts) != 0) clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void nh_os_random(void *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    long n = syscall(SYS_getrandom, (char *)buf + done, len - done, 0x0001 /* GRND_NONBLOCK */);
    if (n <= 0) break;
    done += (size_t)n;
  }
  if (done < len) { /* no getrandom: mix the clock, the pid and an address */
    uint64_t x = nh_os_clock_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)&x;
    for (size_t i = done; i < len; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      ((unsigned char *)buf)[i] = (unsigned char)x;
    }
  }
}

int nh_os_dup_stderr(void) {
  return fcntl(2, F_DUPFD_CLOEXEC, 3);
}

void nh_os_write_stderr(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(2, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buf += n;
    len -= (size_t)n;
  }
}

/* ---- pressure stall information ------------------------------------------------ */

int nh_os_psi_open(const char *path, uint32_t stall_us, uint32_t window_us, int *err) {
  int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  char trig[64];
  int n = snprintf(trig, sizeof trig, "some %u %u", stall_us, window_us);
  if (write(fd, trig, (size_t)n + 1) < 0) {
    *err = errno;
    close(fd);
    return -1;
  }
  return fd;
}

int nh_os_psi_wait(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLPRI};
  int r = poll(&p, 1, timeout_ms);
  if (r < 0) return errno == EINTR ? 0 : -1;
  if (r == 0) return 0;
  return (p.revents & POLLERR) ? -1 : 1;
}

void nh_os_psi_close(int fd) { close(fd); }

int nh_os_under_valgrind(void) {
  /* relaxed: threads that race on the first call all compute the same answer */
  static _Atomic int known = -1;
  int k = atomic_load_explicit(&known, memory_order_relaxed);
  if (k < 0) {
    const char *p = getenv("LD_PRELOAD");
    k = p != NULL && strstr(p, "vgpreload") != NULL;
    atomic_store_explicit(&known, k, memory_order_relaxed);
  }
  return k;
}
