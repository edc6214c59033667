/*
 * tests/preload/hwloc_load.c: run with libnumaheap.so preloaded. A
 * constructor's malloc starts numaheap (its first use in the process), and
 * numaheap loads libhwloc with dlopen from inside it, or not, as [topology]
 * discovery says. argv[1]: "loaded" or "not-loaded", what to expect. The
 * program does not link hwloc, so only numaheap can have loaded it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *early_block;

__attribute__((constructor(101))) static void before_main(void) {
  early_block = malloc(100);
  if (early_block) memset(early_block, 7, 100);
}

int main(int argc, char **argv) {
  if (argc != 2 || (strcmp(argv[1], "loaded") != 0 && strcmp(argv[1], "not-loaded") != 0)) {
    fprintf(stderr, "usage: nh_hwloc_load loaded|not-loaded\n");
    return 2;
  }
  int (*ptr_node)(const void *) =
      (int (*)(const void *))(uintptr_t)dlsym(RTLD_DEFAULT, "nh_ptr_node");
  if (ptr_node == NULL || ptr_node(early_block) < 0) {
    printf("FAIL: the constructor's block is not numaheap's\n");
    return 1;
  }
  int loaded = dlopen("libhwloc.so.15", RTLD_NOW | RTLD_NOLOAD) != NULL;
  int want = strcmp(argv[1], "loaded") == 0;
  printf("%s: libhwloc %s\n", loaded == want ? "ok" : "FAIL", loaded ? "loaded" : "not loaded");
  return loaded == want ? 0 : 1;
}
