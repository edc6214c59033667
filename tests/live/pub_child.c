/*
 * tests/live/pub_child.c: a process with a known allocation pattern, driven
 * line by line from stdin by tests/live/live_stats.py, which reads its
 * published statistics with `numaheap stats` while it runs.
 *
 * Commands (one per line); after each the child prints its own counters
 * (nh_stats_get) as "stats {json}" once it is quiet:
 *   start    pin to CPU 0 (node 0 of the simulated topology), empty the caches
 *            (nh_trim), print "node N"
 *   pattern  on node 1 from node 0: 100 small blocks allocated and freed
 *            (remote frees), 4 large blocks kept, a 40 MiB block node 1's
 *            budget cannot take (a fallback to node 0), a 1 GiB block no node
 *            can take (a failure at the appdomain level)
 *   churn S  allocate and free on both nodes for S seconds
 *   fork     fork a child that prints "child PID" and sleeps until killed
 *   closefds close every descriptor from 3 up, as daemons do, and open
 *            /dev/null (which may take the number numaheap's region had)
 *   exit     exit(0) (atexit handlers run)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "numaheap/numaheap.h"

static nh_stats st;
static void *kept[8];

static void print_stats(void) {
  st.size = sizeof st;
  st.version = NH_STATS_VERSION;
  if (nh_stats_get(&st) != 0) {
    printf("error %s\n", nh_last_error());
    return;
  }
  printf("stats {\"nodes\":[");
  for (int i = 0; i < st.node_count; i++) {
    const nh_node_stats *s = &st.nodes[i];
    printf("%s{\"node\":%d,\"allocs\":%" PRIu64 ",\"frees\":%" PRIu64 ",\"remote_frees\":%" PRIu64
           ",\"fallback_in\":%" PRIu64 ",\"fallback_out\":%" PRIu64 ",\"failures_task\":%" PRIu64
           ",\"failures_appdomain\":%" PRIu64 ",\"failures_process\":%" PRIu64
           ",\"committed\":%" PRIu64 ",\"in_use\":%" PRIu64 "}",
           i ? "," : "", s->node, s->allocs, s->frees, s->remote_frees, s->fallback_in,
           s->fallback_out, s->failures[0], s->failures[1], s->failures[2], s->committed, s->in_use);
  }
  printf("]}\n");
  fflush(stdout);
}

static void pattern(void) {
  void *small[100];
  for (int i = 0; i < 100; i++) small[i] = nh_malloc_node(64, 1);
  for (int i = 0; i < 100; i++) nh_free(small[i]);
  nh_trim(); /* sends the remote blocks home */
  for (int i = 0; i < 4; i++) kept[i] = nh_malloc_node(1 << 20, 1);
  kept[4] = nh_malloc_node(40 << 20, 1);                  /* node 1's budget is 32 MiB */
  void *none = nh_malloc_node((size_t)1 << 30, 1);        /* no node has 1 GiB of budget */
  if (none != NULL || kept[4] == NULL || nh_ptr_node(kept[4]) != 0) printf("error pattern\n");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void churn(double seconds) {
  static void *slots[512];
  unsigned x = 12345;
  for (double end = now_s() + seconds; now_s() < end;) {
    for (int k = 0; k < 1000; k++) {
      x = x * 1103515245u + 12345u;
      unsigned i = (x >> 8) % 512;
      nh_free(slots[i]);
      size_t size = 16 + (x >> 20) % 4000;
      slots[i] = (x & 1) ? nh_malloc(size) : nh_malloc_node(size, (int)(x >> 3) & 1);
    }
  }
  for (int i = 0; i < 512; i++) nh_free(slots[i]), slots[i] = NULL;
}

int main(void) {
  char line[128];
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("hello %d\n", (int)getpid()); /* stdio's buffers exist before any snapshot */
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (!strncmp(line, "start", 5)) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(0, &set);
      sched_setaffinity(0, sizeof set, &set);
      nh_trim(); /* the caches of other CPUs give back what they took before the pin */
      printf("node %d\n", nh_current_node());
    } else if (!strncmp(line, "pattern", 7)) {
      pattern();
    } else if (!strncmp(line, "churn", 5)) {
      churn(atof(line + 5));
    } else if (!strncmp(line, "fork", 4)) {
      pid_t c = fork();
      if (c == 0) {
        printf("child %d\n", (int)getpid());
        for (;;) pause();
      }
      continue;
    } else if (!strncmp(line, "closefds", 8)) {
      close_range(3, ~0u, 0);
      for (int i = 0; i < 600; i++) /* up to the region's old number (512 and up) */
        if (open("/dev/null", O_RDONLY) < 0) break;
    } else if (!strncmp(line, "exit", 4)) {
      exit(0);
    }
    print_stats();
  }
  return 0;
}
