/*
 * tests/preload/linked.c: a program that calls plain malloc and free and is
 * linked with -lnumaheap (shared, and in a second build with libnumaheap.a):
 * linking alone must put it on numaheap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numaheap/numaheap.h"

int main(void) {
  void *p = malloc(100), *q = calloc(10, 1000), *r = realloc(NULL, 1 << 20);
  char *s = strdup("linked");
  if (p == NULL || q == NULL || r == NULL || s == NULL) return 1;
  memset(p, 1, 100);
  memset(r, 2, 1 << 20);
  int ok = nh_ptr_node(p) >= 0 && nh_ptr_node(q) >= 0 && nh_ptr_node(r) >= 0 && nh_ptr_node(s) >= 0;
  printf("%s: malloc, calloc, realloc and strdup %s numaheap's\n", ok ? "ok" : "FAIL",
         ok ? "are" : "are not all");
  free(p);
  free(q);
  free(r);
  free(s);
  return ok ? 0 : 1;
}
