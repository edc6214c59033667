/*
 * numa/os.h: the contract of the OS layer. Every mmap, munmap, mbind,
 * madvise, mprotect and CPU query of numaheap goes through here; nothing
 * above this file includes <sys/mman.h> or issues a NUMA syscall.
 *
 * Conventions, stated once:
 *   - addresses and sizes passed in are multiples of nh_os_page_size()
 *     unless a function says otherwise;
 *   - functions returning int return 0 on success and an errno value (> 0)
 *     on failure; they never set errno themselves;
 *   - functions returning a pointer return NULL on failure;
 *   - none of them calls malloc.
 *
 * Fault injection: tests install an nh_os_faults table (nh_os_set_faults) to
 * make the next N maps or binds fail, so that the heap's handling of OS
 * failures is tested without exhausting the machine.
 */
#ifndef NH_NUMA_OS_H
#define NH_NUMA_OS_H

#include <stddef.h>
#include <stdint.h>

/* Page size of the OS (4096 on x86-64). */
size_t nh_os_page_size(void);

/* How ranges are bound to a node (every os_node >= 0 below): strict != 0,
 * MPOL_BIND (a page the node cannot give meets the OOM killer); 0 (the
 * default), MPOL_PREFERRED_MANY of that one node where the kernel has it
 * (5.15+), else MPOL_PREFERRED: the node's pages while it has free pages,
 * then the kernel's fallback, nearest node first (docs/numa.md, "Binding").
 * nh_os_bind_name: "bind", "preferred_many" or "preferred" (the latter two
 * known after the first bind). */
void nh_os_set_bind(int strict);
const char *nh_os_bind_name(void);

/* Maps size bytes of read-write anonymous memory aligned to align (a power of
 * two >= page size). When os_node >= 0 the range is bound to that real OS
 * node (nh_os_set_bind's policy) before any page is touched; if the bind fails the range is
 * unmapped and NULL returned. os_node < 0: no binding (the thread's policy). */
void *nh_os_map_aligned(size_t size, size_t align, int os_node);

/* Extends a mapping in place from old_size to new_size bytes (mremap without
 * moving; the new pages keep the mapping's binding). 0, or an errno value
 * (ENOMEM when the address space after it is taken). */
int nh_os_grow_in_place(void *addr, size_t old_size, size_t new_size);

/* Moves a mapping of old_size bytes to a new address aligned to align,
 * extended to new_size bytes (mremap: the pages move, nothing is copied;
 * the moved and the new pages keep the mapping's binding and advice). The
 * new address, or NULL (the mapping is then left where it was). */
void *nh_os_move(void *addr, size_t old_size, size_t new_size, size_t align);

/* Huge pages. nh_os_thp_mode: the kernel's transparent huge page setting
 * (/sys/kernel/mm/transparent_hugepage/enabled): NH_OS_THP_NEVER, _MADVISE,
 * _ALWAYS, or NH_OS_THP_NONE when the kernel has no THP. */
enum { NH_OS_THP_NONE = -1, NH_OS_THP_NEVER = 0, NH_OS_THP_MADVISE = 1, NH_OS_THP_ALWAYS = 2 };
int nh_os_thp_mode(void);
/* Asks for transparent huge pages on a range before its first touch
 * (MADV_HUGEPAGE). addr and size multiples of 2 MiB for the whole range to
 * qualify. */
int nh_os_advise_huge(void *addr, size_t size);
/* Asks for base pages on a range (MADV_NOHUGEPAGE): where the kernel's THP
 * is `always`, a range that should stay small (a heap's first segments,
 * [heap] huge_pages = off, sparse metadata) would otherwise get a 2 MiB page
 * at its first touch. 0 or errno. */
int nh_os_advise_small(void *addr, size_t size);
/* Free page reporting: whether this kernel hands the memory it frees back to
 * its hypervisor (a virtio balloon device with VIRTIO_BALLOON_F_REPORTING is
 * bound, /sys/bus/virtio/drivers/virtio_balloon/virtioN/features), which the
 * host then takes back; a page faulted on such memory waits for the host to
 * back it again. *order: the smallest free block reported, as a page order
 * (/sys/module/page_reporting/parameters/page_reporting_order), -1 if not
 * known. root prefixes both paths ("" for the real ones; tests name a fake
 * tree). 1 if on, 0 if not. Reads files only (no malloc). */
int nh_os_page_reporting(const char *root, int *order);
/* Free explicit 2 MiB huge pages the administrator reserved on a real node
 * (/sys/devices/system/node/nodeN/hugepages/hugepages-2048kB/free_hugepages);
 * 0 when none or unknown. */
uint64_t nh_os_node_free_hugepages(int os_node);
/* Maps size bytes (a multiple of 2 MiB) of explicit 2 MiB huge pages
 * (MAP_HUGETLB) aligned to align, bound to os_node and faulted in at once,
 * so that a node without free huge pages is an error here rather than a
 * SIGBUS at first touch. NULL if any step fails. */
void *nh_os_map_hugetlb(size_t size, size_t align, int os_node);

/* Replaces the mapping at addr (size bytes, multiples of 2 MiB, which the
 * caller owns) by explicit 2 MiB huge pages with protection prot
 * (NH_OS_PROT_*), bound to os_node and faulted in. 0; or an errno value, the
 * range then mapped again as ordinary anonymous memory with prot and the
 * binding (its contents zero). */
int nh_os_remap_hugetlb(void *addr, size_t size, int prot, int os_node);

/* Unmaps a range returned by nh_os_map_aligned (or a page-aligned part of it). */
int nh_os_unmap(void *addr, size_t size);

/* Reserves address space (PROT_NONE, no commit). align as above. */
void *nh_os_reserve(void *hint, size_t size, size_t align, int fixed);

/* Makes a reserved range accessible (prot is NH_OS_PROT_*), bound to os_node
 * when >= 0. */
int nh_os_commit(void *addr, size_t size, int prot, int os_node);

/* Faults in every page of a range now (MADV_POPULATE_WRITE, or a write per
 * page on kernels without it), so later use needs no memory from the OS. */
int nh_os_populate(void *addr, size_t size);

/* Returns the pages of a range to the OS; contents become zero on next touch.
 * The range stays mapped and keeps its binding. */
int nh_os_purge(void *addr, size_t size);

/* Tells the OS the contents of a range are no longer needed but may be kept
 * (MADV_FREE where available, else DONTNEED). */
int nh_os_reset(void *addr, size_t size);

/* Makes a committed range inaccessible again and drops its pages. */
int nh_os_decommit(void *addr, size_t size);

#define NH_OS_PROT_NONE 0
#define NH_OS_PROT_READ 1
#define NH_OS_PROT_WRITE 2
#define NH_OS_PROT_EXEC 4
int nh_os_protect(void *addr, size_t size, int prot);

/* Binds an existing range to a real OS node (the policy above, moving nothing). */
int nh_os_bind(void *addr, size_t size, int os_node);

/* The CPU the caller runs on right now (may change at once). -1 if unknown. */
int nh_os_current_cpu(void);

/* The same, cheaply: one load from the rseq area glibc registers for every
 * thread (struct rseq.cpu_id at offset 4), or nh_os_current_cpu() when rseq
 * is not registered (old kernel, glibc.pthread.rseq=0, Valgrind). */
#include <sys/rseq.h>
static inline int nh_os_cpu_fast(void) {
  if (__rseq_size > 0) {
    const volatile int32_t *cpu_id =
        (const volatile int32_t *)((char *)__builtin_thread_pointer() + __rseq_offset + 4);
    int cpu = *cpu_id;
    if (cpu >= 0) return cpu;
  }
  return nh_os_current_cpu();
}

/* Restartable-sequence fences (membarrier): register the process once (0,
 * or an errno value: ENOSYS when the kernel lacks MEMBARRIER_CMD_PRIVATE_
 * EXPEDITED_RSEQ), then restart any rseq critical section running on cpu
 * (0 or an errno value). percpu/ uses them to drain another CPU's cache. */
int nh_os_rseq_fence_register(void);
int nh_os_rseq_fence_cpu(int cpu);

/* Real OS node holding the page at addr, -1 if not resident/unknown
 * (move_pages with no target). Used by tests and statistics, never per
 * allocation. */
int nh_os_page_node(const void *addr);

/* 1 if the page holding addr is mapped in this process (any protection,
 * resident or not), 0 if it is not (mincore). Never allocates; one syscall.
 * Used by the hosting API's VirtualQuery for addresses it did not map. */
int nh_os_is_mapped(const void *addr);

/* Bytes the OS could hand out on a real node soon: its MemFree plus its
 * Inactive(file) page cache, from /sys/devices/system/node/nodeN/meminfo.
 * UINT64_MAX when unknown (no sysfs NUMA information). */
uint64_t nh_os_node_available(int os_node);

/* Highest real OS node id + 1, and whether a real node id is online with
 * memory. Read from /sys without malloc. */
int nh_os_real_node_slots(void);
int nh_os_real_node_has_memory(int os_node);

/* Puts a path together without printf (whose code and tables would be a
 * small program's only use of them: pages of RSS): a + b + (n >= 0 ? n in
 * decimal : nothing) + c into buf. Its length, or -1 when it does not fit in
 * cap (buf then holds a truncated, terminated path). */
long nh_os_path(char *buf, size_t cap, const char *a, const char *b, long n, const char *c);

/* Reads up to cap-1 bytes of a file into buf and NUL-terminates them:
 * the length read, or -1 with *err set to the errno value. open/read only:
 * no stdio, no malloc (safe while numaheap starts as the process's malloc). */
long nh_os_read_file(const char *path, char *buf, size_t cap, int *err);

/* Pressure stall information (PSI) triggers on a pressure file (a cgroup's
 * memory.pressure, or /proc/pressure/memory): opens path and asks for an
 * event whenever tasks stall on memory ("some") for stall_us within
 * window_us. The fd, or -1 with *err (ENOENT: no PSI; EINVAL: the kernel
 * refuses the window). nh_os_psi_wait: 1 when an event came, 0 after
 * timeout_ms without one, -1 when the trigger is gone (POLLERR). */
int nh_os_psi_open(const char *path, uint32_t stall_us, uint32_t window_us, int *err);
int nh_os_psi_wait(int fd, int timeout_ms);
void nh_os_psi_close(int fd);

/* Whether the process runs under Valgrind (its preload library is in
 * LD_PRELOAD): 1 or 0, read once. */
int nh_os_under_valgrind(void);

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC_COARSE: cheap, ms-grained),
 * or the test's clock while one is installed. */
uint64_t nh_os_clock_ns(void);
/* Tests: replaces the clock (the purge and decay timers read it) with fn;
 * NULL puts the real one back. */
void nh_os_set_clock(uint64_t (*fn)(void));

/* Fills buf with random bytes (getrandom; falls back to time and address
 * entropy where it is unavailable). Never blocks for long, never allocates. */
void nh_os_random(void *buf, size_t len);

/* A private duplicate of standard error (close-on-exec), so that reports at
 * exit still reach it when the program closed fd 2 first (coreutils do). -1
 * if fd 2 is not open. */
int nh_os_dup_stderr(void);

/* Writes len bytes to standard error, retrying short writes. */
void nh_os_write_stderr(const char *buf, size_t len);

/* Metadata memory for the allocator's own tables (numa/os_meta.c): zeroed,
 * never from malloc. Up to 2 KiB, a block aligned to its size rounded up to
 * a power of two, in a page shared with other small tables; above that,
 * whole pages. The free takes the size given to the alloc. */
void *nh_os_meta_alloc(size_t size);
void nh_os_meta_free(void *p, size_t size);
/* The small blocks' lock across fork: taken by the prepare handler (after
 * every other allocator lock: it is a leaf), released in the parent
 * (child 0) or reset in the child (child 1). */
void nh_os_meta_prefork(void);
void nh_os_meta_postfork(int child);
/* A zeroed private mapping of size bytes rounded up to pages (numa/os.c),
 * and its unmapping: what nh_os_meta_alloc uses. */
void *nh_os_meta_map(size_t size);
void nh_os_meta_unmap(void *p, size_t size);

/* Fault injection (tests only). fail_maps / fail_binds: how many of the next
 * calls fail (with ENOMEM / EIO); -1 = every call. Counters decrease as faults
 * fire; injected counts the faults fired so far. node_avail: when nonzero,
 * nh_os_node_available reports it for every node (a node the OS has nearly
 * exhausted, without exhausting the machine). */
typedef struct nh_os_faults {
  int fail_maps;
  int fail_binds;
  uint64_t injected;
  uint64_t node_avail;
} nh_os_faults;
void nh_os_set_faults(const nh_os_faults *f);
uint64_t nh_os_faults_injected(void);

#endif
