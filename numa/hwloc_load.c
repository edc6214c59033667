/*
 * numa/hwloc_load.c: dlopen of libhwloc and its function table
 * (numa/hwloc_load.h).
 *
 * Synchronization: the default library's table is filled once under
 * open_lock and then published with a release store of g_default (read with
 * acquire); after that it is constant.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "numa/hwloc_load.h"
#include "numa/lock.h"

static nh_lock open_lock;
static nh_hwloc_api g_table;                   /* Guarded by open_lock until published */
static const nh_hwloc_api *_Atomic g_default;  /* &g_table once filled */

/* One row per function: its name in libhwloc and its slot in the table. */
#define SLOT(field, name) {name, offsetof(nh_hwloc_api, field)}
static const struct {
  const char *name;
  size_t offset;
} symbols[] = {
    SLOT(get_api_version, "hwloc_get_api_version"),
    SLOT(topology_init, "hwloc_topology_init"),
    SLOT(topology_set_flags, "hwloc_topology_set_flags"),
    SLOT(topology_set_cache_types_filter, "hwloc_topology_set_cache_types_filter"),
    SLOT(topology_set_icache_types_filter, "hwloc_topology_set_icache_types_filter"),
    SLOT(topology_set_synthetic, "hwloc_topology_set_synthetic"),
    SLOT(topology_set_xml, "hwloc_topology_set_xml"),
    SLOT(topology_load, "hwloc_topology_load"),
    SLOT(topology_destroy, "hwloc_topology_destroy"),
    SLOT(topology_get_complete_cpuset, "hwloc_topology_get_complete_cpuset"),
    SLOT(get_type_depth, "hwloc_get_type_depth"),
    SLOT(get_nbobjs_by_depth, "hwloc_get_nbobjs_by_depth"),
    SLOT(get_obj_by_depth, "hwloc_get_obj_by_depth"),
    SLOT(bitmap_last, "hwloc_bitmap_last"),
    SLOT(bitmap_next, "hwloc_bitmap_next"),
    SLOT(bitmap_isset, "hwloc_bitmap_isset"),
    SLOT(bitmap_weight, "hwloc_bitmap_weight"),
    SLOT(distances_get_by_type, "hwloc_distances_get_by_type"),
    SLOT(distances_release, "hwloc_distances_release"),
};

/* dlerror's text, or a placeholder when it has none. */
static const char *dl_message(void) {
  const char *m = dlerror();
  return m ? m : "no reason given";
}

/* Fills *api from the opened library; 0, or -1 with err. */
static int fill(nh_hwloc_api *api, void *lib, const char *soname, char *err, size_t errlen) {
  for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
    void *f = dlsym(lib, symbols[i].name);
    if (f == NULL) {
      snprintf(err, errlen, "%s has no %s (%s)", soname, symbols[i].name, dl_message());
      return -1;
    }
    memcpy((char *)api + symbols[i].offset, &f, sizeof f);
  }
  unsigned v = api->get_api_version();
  if ((v >> 16) != (HWLOC_API_VERSION >> 16)) {
    snprintf(err, errlen, "%s has hwloc API %u.%u; numaheap needs %u.x", soname, v >> 16,
             (v >> 8) & 0xff, HWLOC_API_VERSION >> 16);
    return -1;
  }
  return 0;
}

/* dlopen + fill; the library is closed again when it does not fit.
 * RTLD_GLOBAL: hwloc's plugins (the libxml2 XML reader an XML topology
 * needs) are not linked to libhwloc and find its symbols in the global
 * scope; hwloc disables them when it was loaded RTLD_LOCAL. */
static int open_into(nh_hwloc_api *api, const char *soname, char *err, size_t errlen) {
  void *lib = dlopen(soname, RTLD_NOW | RTLD_GLOBAL);
  if (lib == NULL) {
    snprintf(err, errlen, "cannot load %s (%s)", soname, dl_message());
    return -1;
  }
  if (fill(api, lib, soname, err, errlen) != 0) {
    dlclose(lib);
    return -1;
  }
  return 0;
}

/* A table for a soname other than the default: opened on every call, kept in
 * one static slot (tests call it from one thread). */
static nh_hwloc_api g_other; /* Guarded by open_lock */

const nh_hwloc_api *nh_hwloc_open(const char *soname, char *err, size_t errlen) {
  const nh_hwloc_api *api = atomic_load_explicit(&g_default, memory_order_acquire);
  if (soname == NULL && api) return api;
  nh_lock_acquire(&open_lock);
  api = NULL;
  if (soname != NULL && strcmp(soname, NH_HWLOC_SONAME) != 0) {
    if (open_into(&g_other, soname, err, errlen) == 0) api = &g_other;
  } else if ((api = atomic_load_explicit(&g_default, memory_order_relaxed)) == NULL &&
             open_into(&g_table, NH_HWLOC_SONAME, err, errlen) == 0) {
    api = &g_table;
    atomic_store_explicit(&g_default, api, memory_order_release); /* pairs with the acquire above */
  }
  nh_lock_release(&open_lock);
  return api;
}
