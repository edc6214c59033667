/*
 * bench/main.c: the nh_bench program.
 *
 *   nh_bench [--nhb_identify] [--nhb_expect=NAME] [Google Benchmark flags]
 *
 * It measures whichever malloc is live (it does not link numaheap): run it
 * plain for glibc, or with LD_PRELOAD=<allocator.so>. It names the live
 * allocator on stderr and in the report context ("allocator",
 * "malloc_object"), so every result file says what it measured.
 *   --nhb_identify     print "allocator=NAME malloc_object=PATH" and exit 0;
 *   --nhb_expect=NAME  exit 3 before running anything unless NAME is live.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

struct nhb_flags {
  int identify;       /* --nhb_identify given */
  const char *expect; /* --nhb_expect value, or NULL */
};

/* Takes our own flags out of argv, leaving Google Benchmark's. 0 or -1. */
static int nhb_parse_flags(int *argc, char **argv, struct nhb_flags *f) {
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--nhb_identify") == 0) {
      f->identify = 1;
    } else if (strncmp(a, "--nhb_expect=", 13) == 0 && a[13]) {
      f->expect = a + 13;
    } else if (strncmp(a, "--nhb_", 6) == 0) {
      fprintf(stderr, "nh_bench: unknown option '%s' (known: --nhb_identify, --nhb_expect=NAME)\n", a);
      return -1;
    } else {
      argv[out++] = argv[i];
    }
  }
  argv[out] = NULL;
  *argc = out;
  return 0;
}

static void nhb_register_all(void) {
  nhb_register_pair();
  nhb_register_batch();
  nhb_register_larson();
  nhb_register_prodcons();
  nhb_register_cache();
  nhb_register_realloc();
  nhb_register_frag();
  nhb_register_larson_classic();
  nhb_register_glibc_thread();
  nhb_register_mpmc();
  nhb_register_server();
  nhb_register_large();
  nhb_register_chase();
  nhb_register_cfrac();
  nhb_register_threads();
  nhb_register_pystart();
#ifdef NHB_HAVE_HOST
  nhb_register_host();
#endif
}

int main(int argc, char **argv) {
  struct nhb_flags flags = {0, NULL};
  if (nhb_parse_flags(&argc, argv, &flags) != 0) return 2;
  const char *name = nhb_allocator_name();
  const char *object = nhb_malloc_object();
  fprintf(stderr, "nh_bench: allocator=%s malloc_object=%s\n", name, object);
  if (flags.identify) {
    printf("allocator=%s malloc_object=%s\n", name, object);
    return 0;
  }
  if (flags.expect && strcmp(flags.expect, name) != 0) {
    fprintf(stderr, "nh_bench: expected allocator '%s' but '%s' is live (malloc from %s)\n",
            flags.expect, name, object);
    return 3;
  }
  nhb_add_context("allocator", name);
  nhb_add_context("malloc_object", object);
  nhb_register_all();
  return nhb_run(&argc, argv);
}
