/*
 * tests/preload/early.c: allocations at the edges of a process, run with
 * libnumaheap.so preloaded: from a constructor that runs before main (and
 * before numaheap's first use), through hwloc's and libnuma's own start-up
 * in the same process, through dlopen and thread-local storage of a new
 * thread, and from an atexit handler and a destructor. Every block must be
 * numaheap's (nh_ptr_node via dlsym) and usable.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <hwloc.h>
#include <numa.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*ptr_node_fn)(const void *);
static int failures;
static void *early_block;

/* Pointers to fresh blocks are passed as void *: with const void *, gcc
 * -O0 warns that the callee reads memory never written. */
static int ptr_node(void *p) {
  ptr_node_fn f = (ptr_node_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "nh_ptr_node");
  return f ? f(p) : -2;
}

static void expect(void *p, const char *what) {
  int n = ptr_node(p);
  if (p == NULL || n < 0) {
    printf("not numaheap's: %s (%p, node %d)\n", what, p, n);
    failures++;
  }
}

__attribute__((constructor(101))) static void before_main(void) {
  early_block = malloc(123);
  memset(early_block, 5, 123);
}

static __thread char tls_buf[100000]; /* dynamic TLS sizes are malloc'd by the loader */

static void *in_thread(void *arg) {
  tls_buf[0] = 1;
  void *p = malloc(1000);
  expect(p, "malloc in a new thread");
  free(p);
  return NULL;
}

static void at_exit(void) {
  void *p = malloc(777);
  if (ptr_node(p) < 0) {
    printf("not numaheap's: malloc in an atexit handler\n");
    _exit(1);
  }
  free(p);
}

int main(void) {
  expect(early_block, "malloc in a constructor before main");
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
    printf("hwloc failed\n");
    return 1;
  }
  int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  hwloc_topology_destroy(topo);
  if (numa_available() >= 0) {
    struct bitmask *bm = numa_allocate_nodemask();
    expect(bm, "libnuma's numa_allocate_nodemask");
    numa_free_nodemask(bm);
  }
  void *h = dlopen("libm.so.6", RTLD_NOW);
  if (h == NULL) printf("dlopen: %s\n", dlerror()), failures++;
  else dlclose(h);
  pthread_t t;
  pthread_create(&t, NULL, in_thread, NULL);
  pthread_join(t, NULL);
  atexit(at_exit);
  char *s = strdup("x");
  expect(s, "strdup");
  free(s);
  free(early_block);
  printf("%s: hwloc sees %d NUMA nodes\n", failures ? "FAIL" : "ok", nodes);
  return failures ? 1 : 0;
}
