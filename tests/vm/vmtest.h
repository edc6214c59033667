/*
 * tests/vm/vmtest.h: what the in-VM test programs share.
 *
 * Every in-VM program is started by tests/vm/init.sh as
 *   PROG --layout NAME --expect SPEC [ARGS...]
 * where SPEC (tests/vm/layouts.sh) says what the layout should look like:
 *   cpus=<cpulist>/<cpulist>/...;mem=<MiB>/<MiB>/...;dist=<d,d,..>/<d,d,..>/...
 * one '/'-separated entry per node, "none" for a CPU-less node.
 *
 * Each check prints one line, "ok <check>: <detail>" or
 * "FAIL <check> [<layout>]: <detail>"; the first failure ends the program with
 * status 1 (init.sh turns that into the NHVM-RESULT line).
 *
 * The kernel is the judge: where a page lives is asked with move_pages(2),
 * the topology is read from /sys/devices/system/node. These are test programs,
 * so they call the kernel directly (raw syscalls, no libnuma).
 */
#ifndef NH_VMTEST_H
#define NH_VMTEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#define VM_MAX_NODES 64
#define VM_PAGE 4096u

/* A NUMA layout: what the kernel shows, or what a layout expects. */
typedef struct vm_topo {
  int nnodes;
  int os_id[VM_MAX_NODES];     /* OS node id of entry i, ascending */
  cpu_set_t cpus[VM_MAX_NODES];/* CPUs whose local node this is */
  int ncpus[VM_MAX_NODES];
  uint64_t mem_kib[VM_MAX_NODES]; /* expected: size given to qemu; kernel: MemTotal */
  int dist[VM_MAX_NODES][VM_MAX_NODES]; /* [i][j] by entry, 10 on the diagonal */
} vm_topo;

/* Parsed command line: --layout and --expect, then the program's own args. */
typedef struct vm_args {
  const char *layout;
  const char *spec;            /* the --expect string as given */
  vm_topo expect;
  int argc;                    /* remaining arguments */
  char **argv;
} vm_args;

/* Parses the common arguments (stops the program with a usage error on bad
 * input) and makes stdout line-buffered. */
void vm_start(int argc, char **argv, vm_args *a);
/* vm_start, then the kernel's view into *t (a failure fails the check
 * "sysfs"): how every in-VM program that reads the kernel's view at once
 * begins (vm_locality reads it after sending each workload to a child). */
void vm_start_topo(int argc, char **argv, vm_args *a, vm_topo *t);

/* Parses an expectation string into *t. 0, or -1 with a message in err. */
int vm_parse_expect(const char *spec, vm_topo *t, char *err, size_t errlen);

/* Reads the kernel's view from /sys/devices/system/node into *t (online
 * nodes, their cpulist, MemTotal and distance row). 0, or -1 with err. */
int vm_read_kernel_topo(vm_topo *t, char *err, size_t errlen);

/* Runs body(arg) in a new thread pinned to cpu and waits for it (a thread
 * that cannot be pinned fails the check "pin"). */
typedef void (*vm_body)(void *arg);
void vm_run_on_cpu(int cpu, vm_body body, void *arg);
/* Runs body(&cpu) on every CPU of t in turn, as vm_run_on_cpu; returns how
 * many. */
int vm_run_on_each_cpu(const vm_topo *t, vm_body body);

/* Runs check in a child process that starts numaheap on a config: writes
 * ini to path, then re-executes `me` with --layout/--expect from a, the
 * argument child_check and NUMAHEAP_CONFIG=path. A failure of the child (its
 * FAIL line is already printed) fails check. */
void vm_run_config_child(const char *check, const char *path, const char *ini, const char *me,
                         const vm_args *a, const char *child_check);

/* One check of an in-VM program: the name that selects it on the command
 * line, and whether it runs when none is named (a child check, which a
 * check runs by executing the program again, runs only when named). */
typedef struct vm_check {
  const char *name;
  void (*fn)(void);
  int by_default;
} vm_check;

/* Runs the checks a->argv names, in that order, or when it names none the
 * table's checks marked by_default, in table order. A name not in the table
 * fails the run (check "usage"), listing the names it knows. */
void vm_run_checks(const vm_check *table, size_t n, const vm_args *a);

/* Reports a passed check. */
void vm_ok(const char *check, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports a failed check and exits with status 1. */
_Noreturn void vm_fail(const char *check, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Pins the calling thread to one CPU; returns 0 or -1 with errno. */
int vm_pin_cpu(int cpu);
/* The CPU and node the calling thread runs on (getcpu(2)); -1 on error. */
int vm_current_node(void);
/* Lowest CPU of entry i of t, -1 if CPU-less. */
int vm_first_cpu(const vm_topo *t, int i);
/* Where memory local to entry i comes from: i itself when it has memory,
 * else the nearest entry with memory (lowest distance, then lowest index),
 * as the kernel's local allocation does; -1 if no entry has memory. */
int vm_mem_home(const vm_topo *t, int i);
/* Entry of t whose os_id is os_node, -1 if none. */
int vm_entry_of_os_node(const vm_topo *t, int os_node);

/* OS node of the page holding p (move_pages(2) query): >= 0, or a negative
 * errno (-ENOENT: not yet touched, -EFAULT: not mapped). */
int vm_page_node(const void *p);
/* Checks every page of [p, p+len) (each must have been touched). Returns
 * the number of pages not on os_node; *bad_addr and *bad_node describe the
 * first such page. -1 if move_pages itself failed. */
long vm_range_off_node(const void *p, size_t len, int os_node, const void **bad_addr,
                       int *bad_node);

/* mbind(2) MPOL_BIND of [p, p+len) to one OS node; 0 or -1 with errno. */
int vm_bind(void *p, size_t len, int os_node);

/* Writes one byte in every page of [p, p+len). */
void vm_touch(void *p, size_t len);

#endif
