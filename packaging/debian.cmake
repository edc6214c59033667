# packaging/debian.cmake: three Debian packages made by CPack's DEB generator
# from the install components (docs/packaging.md):
#   libnumaheap0     runtime  libnumaheap.so.0 (the library, malloc override included)
#   libnumaheap-dev  dev      headers, libnumaheap.so and libnumaheap.a, the CMake
#                             package (find_package(numaheap)) and numaheap.pc
#   numaheap         tool     the numaheap command and its manual page
# Configure with -DCMAKE_INSTALL_PREFIX=/usr (GNUInstallDirs then picks the
# multiarch libdir, lib/x86_64-linux-gnu), build, then `cpack -G DEB`.
set(CPACK_PACKAGE_NAME numaheap)
set(CPACK_PACKAGE_VENDOR "numaheap")
set(CPACK_PACKAGE_CONTACT "numaheap maintainers <numaheap@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "NUMA-aware memory allocator")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://localhost/numaheap")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev tool)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)           # name_version_arch.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)             # dpkg-shlibdeps (dpkg-dev) fills Depends
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)      # dev and tool depend on the runtime

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libnumaheap0)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "NUMA-aware memory allocator (shared library)
 numaheap keeps one heap per NUMA node and a cache per CPU, with per-node
 budgets and criticality-aware fallback between nodes. Linking it (or
 LD_PRELOAD) replaces malloc; it also serves the CLR hosting memory API.")
# libhwloc is loaded with dlopen (numa/hwloc_load.h), so dpkg-shlibdeps does
# not see it: named here (machines with several NUMA nodes, synthetic and XML
# topologies use it). CPack adds the shlibdeps it finds to this list.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "libhwloc15")
# ldconfig after install and removal (the library's SONAME link and cache)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_LIST_DIR}/triggers)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libnumaheap-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# libnumaheap.a links inih: its users need its -dev package (hwloc is loaded
# at run time: the runtime package's libhwloc15 is enough)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libinih-dev")
set(CPACK_DEBIAN_DEV_DESCRIPTION "NUMA-aware memory allocator (development files)
 Headers, the static library, the CMake package (find_package(numaheap))
 and the pkg-config module (numaheap) of numaheap.")

set(CPACK_DEBIAN_TOOL_PACKAGE_NAME numaheap)
set(CPACK_DEBIAN_TOOL_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOL_DESCRIPTION "NUMA-aware memory allocator (the numaheap command)
 numaheap topo, run, check-config, demo, and stats and top: the live per-node
 statistics of a running process, as text, JSON or Prometheus metrics.")

set(CPACK_COMPONENT_DEV_DEPENDS runtime)
set(CPACK_COMPONENT_TOOL_DEPENDS runtime)       # `numaheap run` preloads libnumaheap.so.0
include(CPack)
