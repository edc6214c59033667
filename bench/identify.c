/*
 * bench/identify.c: which allocator serves this process's malloc.
 *
 * Two independent witnesses must agree: the shared object that defines the
 * live `malloc` (dladdr on dlsym(RTLD_DEFAULT, "malloc"), i.e. what every
 * malloc call in the workloads binds to), and a symbol only that allocator
 * exports. compare.py checks the answer against the allocator it preloaded,
 * so a preload that silently failed cannot pass as a measurement.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

struct nhb_candidate {
  const char *name;   /* what we report */
  const char *object; /* fragment of the file name that defines malloc */
  const char *probe;  /* a symbol only this allocator exports */
  const char *probe2; /* an alternative probe, or NULL */
};

static const struct nhb_candidate nhb_candidates[] = {
    {"numaheap", "numaheap", "nh_malloc", NULL},
    {"jemalloc", "jemalloc", "mallctl", NULL},
    {"mimalloc", "mimalloc", "mi_version", NULL},
    {"tcmalloc", "tcmalloc", "MallocExtension_GetNumericProperty", "tc_version"},
    {"tbbmalloc", "tbbmalloc", "scalable_malloc", NULL},
    {"glibc", "libc.so", "__libc_malloc", NULL},
};

static int nhb_has_symbol(const char *name) {
  return name && dlsym(RTLD_DEFAULT, name) != NULL;
}

const char *nhb_malloc_object(void) {
  Dl_info info;
  void *fn = dlsym(RTLD_DEFAULT, "malloc");
  if (!fn || !dladdr(fn, &info) || !info.dli_fname) return "?";
  return info.dli_fname;
}

/* numaheap can say for itself whether a fresh block is its own. */
static int nhb_numaheap_owns_malloc(void) {
  int (*ptr_node)(const void *);
  *(void **)&ptr_node = dlsym(RTLD_DEFAULT, "nh_ptr_node");
  if (!ptr_node) return 0;
  void *p = malloc(64);
  int owned = p && ptr_node(p) >= 0;
  free(p);
  return owned;
}

const char *nhb_allocator_name(void) {
  const char *object = nhb_malloc_object();
  size_t n = sizeof nhb_candidates / sizeof nhb_candidates[0];
  for (size_t i = 0; i < n; i++) {
    const struct nhb_candidate *c = &nhb_candidates[i];
    if (!strstr(object, c->object)) continue;
    if (!nhb_has_symbol(c->probe) && !nhb_has_symbol(c->probe2)) continue;
    if (strcmp(c->name, "numaheap") == 0 && !nhb_numaheap_owns_malloc()) continue;
    return c->name;
  }
  return "unknown";
}
