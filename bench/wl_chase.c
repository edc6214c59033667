/*
 * bench/wl_chase.c: a random pointer chase through many small objects: how
 * well the allocator's layout uses the TLB (issue 14).
 *
 * Untimed set-up (once per process and size, by thread 0): malloc
 * `mib` MiB worth of 64-byte nodes one by one, then link them into one cycle
 * in a random order (a shuffled index array, freed afterwards). Timed: each
 * thread follows NHB_CHASE_STEPS links per iteration from its own starting
 * node; every step is a dependent load from a random node, so with a working
 * set far beyond the TLB's reach each step pays a page walk unless the
 * allocator's memory is backed by huge pages (or its blocks are dense enough
 * to share pages better). mib:1024 (16.7 million nodes) is the TLB-bound
 * case; mib:64 the smaller variant. The list is read-only while timed, shared
 * by both threads of the 2-thread instance. One item is one step.
 */
#include "bench.h"

#include <stdlib.h>

#define NHB_CHASE_NODE 64
#define NHB_CHASE_STEPS (1 << 18)

struct nhb_chase_node {
  struct nhb_chase_node *next;
  char pad[NHB_CHASE_NODE - sizeof(void *)];
};

/* The list, built and freed by thread 0 before the start barrier; read by
 * all threads inside the loop. */
static struct nhb_chase_node **nhb_chase_nodes; /* in allocation order */
static int64_t nhb_chase_count;

static void nhb_chase_free(void) {
  for (int64_t i = 0; i < nhb_chase_count; i++) free(nhb_chase_nodes[i]);
  free(nhb_chase_nodes);
  nhb_chase_nodes = NULL;
  nhb_chase_count = 0;
}

static void nhb_chase_build(int64_t count) {
  nhb_chase_nodes = malloc((size_t)count * sizeof *nhb_chase_nodes);
  size_t *order = malloc((size_t)count * sizeof *order);
  if (!nhb_chase_nodes || !order) nhb_out_of_memory("chase index", (size_t)count * 8);
  for (int64_t i = 0; i < count; i++) {
    nhb_chase_nodes[i] = malloc(NHB_CHASE_NODE);
    if (!nhb_chase_nodes[i]) nhb_out_of_memory("chase", NHB_CHASE_NODE);
    order[i] = (size_t)i;
  }
  uint64_t rng = 0x243F6A8885A308D3ULL;
  for (int64_t i = count - 1; i > 0; i--) {
    size_t k = (size_t)(nhb_rand(&rng) % (uint64_t)(i + 1)), tmp = order[i];
    order[i] = order[k];
    order[k] = tmp;
  }
  for (int64_t i = 0; i < count; i++)
    nhb_chase_nodes[order[i]]->next = nhb_chase_nodes[order[(i + 1) % count]];
  free(order);
  nhb_chase_count = count;
}

static void nhb_chase(nhb_state *st) {
  if (nhb_check_threads(st)) return;
  int t = nhb_thread_index(st);
  int64_t count = (nhb_range(st, 0) << 20) / NHB_CHASE_NODE;
  if (t == 0 && nhb_chase_count != count) { /* kept between calls of one size */
    nhb_chase_free();
    nhb_chase_build(count);
  }
  struct nhb_chase_node *p = NULL;
  while (nhb_keep_running(st)) {
    if (!p) p = nhb_chase_nodes[count / (t + 2)]; /* after the barrier: built */
    for (int i = 0; i < NHB_CHASE_STEPS; i++) p = p->next;
  }
  nhb_escape(p);
  nhb_set_items(st, nhb_iterations(st) * NHB_CHASE_STEPS);
}

void nhb_register_chase(void) {
  nhb_bench *b = nhb_arg_name(nhb_register("chase", nhb_chase), "mib", NULL);
  nhb_threads(nhb_threads(nhb_unit_ms(nhb_arg(nhb_arg(b, 64), 1024)), 1), 2);
}
