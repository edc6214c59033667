/*
 * tests/footprint/small.c: the "small program" of issue 14's footprint target
 * (docs/benchmarks.md, "Footprint of a small program"). It allocates once,
 * reads a file through stdio as most commands do, and prints its own peak
 * RSS (the kernel's VmHWM) on stderr. Linked with nothing but libc: the
 * allocator under test is preloaded (bench/compare.py --small-runs), and
 * the test text_order_ran runs it under gdb with libnumaheap preloaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  char *p = malloc(100);
  if (p == NULL) return 1;
  strcpy(p, "x");
  free(p);
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return 1;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmHWM", 5) == 0) fputs(line, stderr);
  }
  fclose(f);
  return 0;
}
