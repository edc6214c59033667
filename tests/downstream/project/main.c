/* tests/downstream/project/main.c: a user's program on an installed
 * numaheap: the native API, the public statistics, and plain malloc (which
 * linking the library alone puts on numaheap). Prints "downstream ok". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <numaheap/numaheap.h>

int main(void) {
  int nodes = nh_node_count();
  void *a = nh_malloc_node(1000, nodes - 1);
  char *m = malloc(4096);
  if (a == NULL || m == NULL) return 1;
  memset(m, 1, 4096);
  if (nh_ptr_node(a) != nodes - 1 || nh_ptr_node(m) < 0) {
    printf("downstream: blocks are not numaheap's (%d, %d)\n", nh_ptr_node(a), nh_ptr_node(m));
    return 1;
  }
  nh_stats st = {.size = sizeof st, .version = NH_STATS_VERSION};
  if (nh_stats_get(&st) != 0 || st.total.allocs == 0) {
    printf("downstream: nh_stats_get: %s\n", nh_last_error());
    return 1;
  }
  nh_free(a);
  free(m);
  printf("downstream ok: numaheap %s, %d node(s)\n", NUMAHEAP_VERSION_STRING, nodes);
  return 0;
}
