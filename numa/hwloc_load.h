/*
 * numa/hwloc_load.h: libhwloc, loaded at run time (dlopen) only when a
 * topology needs it.
 *
 * libnumaheap does not link hwloc: linking it put libhwloc, libm and libudev
 * (about 800 kB of RSS) into every process, a small one included, even on a
 * machine with one NUMA node where there is nothing to discover. numa/topo.c
 * loads it for a synthetic or XML topology, for a real machine with more
 * than one NUMA node, or when [topology] discovery = hwloc; the functions it
 * calls are the pointers of one table, nh_hwloc_api. The library stays
 * loaded once opened (the table is never released).
 *
 * From inside malloc: nh_hwloc_open may run in the first malloc of the
 * process (api/init.c's start-up). dlopen then allocates on the starting
 * thread, which api/init.c serves from the bootstrap region; glibc's loader
 * lock is recursive, so a first malloc made by a constructor that dlopen is
 * running may open hwloc too.
 */
#ifndef NH_NUMA_HWLOC_LOAD_H
#define NH_NUMA_HWLOC_LOAD_H

#include <stddef.h>

#include <hwloc.h>

/* The soname numaheap was built against (hwloc 2.x: ABI 15). */
#define NH_HWLOC_SONAME "libhwloc.so.15"

/* The hwloc functions numa/topo.c calls (the inline helpers of hwloc.h call
 * linked symbols, so topo.c writes its own on top of these). */
typedef struct nh_hwloc_api {
  unsigned (*get_api_version)(void);
  int (*topology_init)(hwloc_topology_t *);
  int (*topology_set_flags)(hwloc_topology_t, unsigned long);
  int (*topology_set_cache_types_filter)(hwloc_topology_t, enum hwloc_type_filter_e);
  int (*topology_set_icache_types_filter)(hwloc_topology_t, enum hwloc_type_filter_e);
  int (*topology_set_synthetic)(hwloc_topology_t, const char *);
  int (*topology_set_xml)(hwloc_topology_t, const char *);
  int (*topology_load)(hwloc_topology_t);
  void (*topology_destroy)(hwloc_topology_t);
  hwloc_const_cpuset_t (*topology_get_complete_cpuset)(hwloc_topology_t);
  int (*get_type_depth)(hwloc_topology_t, hwloc_obj_type_t);
  unsigned (*get_nbobjs_by_depth)(hwloc_topology_t, int);
  hwloc_obj_t (*get_obj_by_depth)(hwloc_topology_t, int, unsigned);
  int (*bitmap_last)(hwloc_const_bitmap_t);
  int (*bitmap_next)(hwloc_const_bitmap_t, int);
  int (*bitmap_isset)(hwloc_const_bitmap_t, unsigned);
  int (*bitmap_weight)(hwloc_const_bitmap_t);
  int (*distances_get_by_type)(hwloc_topology_t, hwloc_obj_type_t, unsigned *,
                               struct hwloc_distances_s **, unsigned long, unsigned long);
  void (*distances_release)(hwloc_topology_t, struct hwloc_distances_s *);
} nh_hwloc_api;

/* Opens hwloc (NH_HWLOC_SONAME when soname is NULL) and fills the table.
 * The default library is opened once per process and its table kept; another
 * soname (tests) is opened on every call. The table, or NULL with a message in
 * err naming the library and what failed (dlopen's own error, a missing
 * symbol, or an hwloc whose API is not 2.x). */
const nh_hwloc_api *nh_hwloc_open(const char *soname, char *err, size_t errlen);

#endif
