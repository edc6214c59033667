/*
 * tests/vm/vm_locality.c: how many of each thread's blocks live on its own
 * node, for whatever allocator serves this process's malloc (LD_PRELOAD picks
 * it; this program links no allocator of its own).
 *
 *   vm_locality --layout L --expect SPEC [--want-allocator NAME]
 *               [--min-local PCT] [--slots N] WORKLOADS OPS
 *
 * WORKLOADS is larson, prodcons or both comma-separated (each then runs in a
 * fresh process of its own); OPS is the number of allocations each thread
 * makes. One thread is pinned to each CPU.
 *
 * - larson: each thread replaces random blocks (16..1024 B) in its slots and,
 *   every HANDOFF_EVERY allocations, hands HANDOFF_COUNT of its live blocks
 *   to a thread on another node, which frees them.
 * - prodcons: threads are paired across nodes; the producer allocates
 *   messages the consumer frees (every such free is remote), and both keep a
 *   working set of their own (the producer replaces a slot every 4th
 *   allocation, the consumer one per message it frees).
 *
 * After the timed steady state every thread touches its live blocks (those
 * it allocated itself and still holds, at most SAMPLE_MAX) and asks
 * move_pages(2) where each page of each block lives; a block is local when
 * all its pages are on the thread's memory home (its node, or for a
 * memory-less node the nearest node with memory). Output:
 *   thread cpu=C node=N home=H blocks=B local=L pct=P on: n0=.. n1=..
 *   LOCALITY <allocator> <workload> <pct_local_min> <pct_local_mean>
 *   SPEED <allocator> <workload> <allocations/s> <seconds> <threads>
 * and one "ok" line per workload. FAIL (exit 1) when the live allocator is
 * not --want-allocator or a thread's share is below --min-local.
 */
#include "vmtest.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RING_CAP 1024u     /* pointers in flight per receiving thread (power of 2) */
#define SAMPLE_MAX 4096    /* live blocks sampled per thread */
#define SLOTS_DEFAULT 2048 /* working-set slots per thread */
#define HANDOFF_EVERY 64   /* larson: allocations between handoffs */
#define HANDOFF_COUNT 16   /* larson: blocks per handoff */
#define BLOCK_MIN 16     /* block sizes, bytes */
#define BLOCK_MAX 1024

/* ---- which allocator is live ------------------------------------------------ */

struct loc_candidate {
  const char *name;   /* what we report */
  const char *object; /* fragment of the file name that defines malloc */
  const char *probe;  /* a symbol only this allocator exports */
};

static const struct loc_candidate loc_candidates[] = {
    {"numaheap", "numaheap", "nh_malloc"},     {"jemalloc", "jemalloc", "mallctl"},
    {"mimalloc", "mimalloc", "mi_version"},    {"tcmalloc", "tcmalloc", "tc_malloc"},
    {"tbbmalloc", "tbbmalloc", "scalable_malloc"}, {"glibc", "libc.so", "__libc_malloc"},
};

/* The file that defines the malloc every call here binds to. */
static const char *loc_malloc_object(void) {
  Dl_info info;
  void *fn = dlsym(RTLD_DEFAULT, "malloc");
  if (!fn || !dladdr(fn, &info) || !info.dli_fname) return "?";
  return info.dli_fname;
}

/* The allocator whose library defines malloc and exports its own probe. */
static const char *loc_allocator_name(void) {
  const char *object = loc_malloc_object();
  for (size_t i = 0; i < sizeof loc_candidates / sizeof loc_candidates[0]; i++) {
    const struct loc_candidate *c = &loc_candidates[i];
    if (strstr(object, c->object) && dlsym(RTLD_DEFAULT, c->probe)) return c->name;
  }
  return "unknown";
}

/* ---- single-producer single-consumer ring of block pointers ------------------- */

typedef struct loc_ring {
  _Atomic size_t tail; /* next slot to fill; written by the sender only */
  _Atomic size_t head; /* next slot to drain; written by the receiver only */
  void *slot[RING_CAP];
} loc_ring;

/* Sender: 0 on success, -1 when full. The release store of tail pairs with
 * the acquire load in ring_pop, publishing slot[t]. */
static int ring_push(loc_ring *r, void *p) {
  size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  /* acquire: pairs with ring_pop's release of head, the slot is free again */
  if (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING_CAP) return -1;
  r->slot[t % RING_CAP] = p;
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
  return 0;
}

/* Receiver: the oldest pointer, or NULL when empty. */
static void *ring_pop(loc_ring *r) {
  size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  if (h == atomic_load_explicit(&r->tail, memory_order_acquire)) return NULL;
  void *p = r->slot[h % RING_CAP];
  /* release: the slot was read before the sender may reuse it */
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
  return p;
}

/* ---- threads -------------------------------------------------------------------- */

enum loc_role { ROLE_LARSON, ROLE_PRODUCER, ROLE_CONSUMER };

typedef struct loc_thread {
  int cpu;                 /* pinned CPU */
  int entry;               /* topology entry of cpu's node */
  int home_os;             /* OS node its memory should come from */
  enum loc_role role;
  struct loc_thread *to;   /* whom it hands blocks to, or NULL */
  struct loc_thread *from; /* who hands blocks to it, or NULL */
  loc_ring inbox;          /* blocks from `from`, to be freed here */
  _Atomic int done;        /* set (release) once it sends no more; read by `to` */
  void **slots;            /* its own live blocks; NULL = empty slot */
  uint16_t *sizes;         /* their sizes */
  size_t nslots;
  uint64_t rng;
  uint64_t allocs;         /* allocations made in the timed phase */
  long sampled, local;     /* the locality sample */
  long on_node[VM_MAX_NODES];
  char err[160];           /* first error, empty if none */
} loc_thread;

typedef struct loc_run {
  const char *workload;
  long ops;
  size_t nslots;
  int nthreads;
  loc_thread *t;
  const vm_topo *topo;
  pthread_barrier_t bar;
} loc_run;

typedef struct loc_arg {
  loc_run *run;
  loc_thread *self;
} loc_arg;

static uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* A block of random size, written all over (first touch happens here). */
static void *alloc_block(loc_thread *t, size_t *sizep) {
  size_t size = BLOCK_MIN + (size_t)(rng_next(&t->rng) % (BLOCK_MAX - BLOCK_MIN + 1));
  unsigned char *p = malloc(size);
  if (!p) {
    snprintf(t->err, sizeof t->err, "malloc(%zu) failed on CPU %d", size, t->cpu);
    return NULL;
  }
  memset(p, (int)(t->allocs & 0xff), size);
  t->allocs++;
  *sizep = size;
  return p;
}

/* Frees whatever the inbox holds; returns how many. */
static long drain_inbox(loc_thread *t) {
  long n = 0;
  void *p;
  while ((p = ring_pop(&t->inbox)) != NULL) {
    free(p);
    n++;
  }
  return n;
}

/* Hands p to t->to, draining t's own inbox while the receiver's is full (so
 * two threads that send to each other cannot wait on each other). */
static void send_block(loc_thread *t, void *p) {
  while (ring_push(&t->to->inbox, p) != 0) {
    if (drain_inbox(t) == 0) sched_yield();
  }
}

/* Replaces the block in a random slot; 0 or -1 (t->err set). */
static int replace_slot(loc_thread *t) {
  size_t i = (size_t)(rng_next(&t->rng) % t->nslots);
  size_t size = 0;
  free(t->slots[i]);
  t->slots[i] = alloc_block(t, &size);
  t->sizes[i] = (uint16_t)size;
  return t->slots[i] ? 0 : -1;
}

/* larson: slot replacements, with a handoff of live blocks now and then. */
static void run_larson(loc_thread *t, long ops) {
  for (long k = 1; k <= ops && !t->err[0]; k++) {
    if (replace_slot(t) != 0) return;
    if (k % HANDOFF_EVERY != 0) continue;
    for (int h = 0; h < HANDOFF_COUNT; h++) {
      size_t i = (size_t)(rng_next(&t->rng) % t->nslots);
      if (!t->slots[i]) continue;
      send_block(t, t->slots[i]);
      t->slots[i] = NULL;
    }
    drain_inbox(t);
  }
}

/* producer: three messages for the consumer, then one working-set slot. */
static void run_producer(loc_thread *t, long ops) {
  for (long k = 1; k <= ops && !t->err[0]; k++) {
    if (k % 4 == 0) {
      if (replace_slot(t) != 0) return;
      continue;
    }
    size_t size = 0;
    void *msg = alloc_block(t, &size);
    if (!msg) return;
    send_block(t, msg);
  }
}

/* consumer: frees each message (a remote free) and replaces one of its own
 * slots per message, until the producer is done and the inbox empty. */
static void run_consumer(loc_thread *t) {
  for (;;) {
    void *msg = ring_pop(&t->inbox);
    if (!msg) {
      /* acquire: pairs with the producer's release of done, so its last
       * pushes are visible to the ring_pop below */
      if (atomic_load_explicit(&t->from->done, memory_order_acquire)) {
        if ((msg = ring_pop(&t->inbox)) == NULL) return;
      } else {
        sched_yield();
        continue;
      }
    }
    free(msg);
    if (!t->err[0] && replace_slot(t) != 0) return;
  }
}

/* After its own work: frees what its sender still hands over. */
static void drain_until_sender_done(loc_thread *t) {
  if (!t->from) return;
  for (;;) {
    /* acquire: pairs with the sender's release of done (see run_consumer) */
    int sender_done = atomic_load_explicit(&t->from->done, memory_order_acquire);
    if (drain_inbox(t) == 0) {
      if (sender_done) return;
      sched_yield();
    }
  }
}

/* Pins t to its CPU and checks the kernel agrees on the node. */
static int pin(loc_thread *t, const vm_topo *topo) {
  if (vm_pin_cpu(t->cpu) != 0) {
    snprintf(t->err, sizeof t->err, "sched_setaffinity(CPU %d): %s", t->cpu, strerror(errno));
    return -1;
  }
  int os = vm_current_node();
  if (os != topo->os_id[t->entry]) {
    snprintf(t->err, sizeof t->err, "CPU %d runs on node %d, sysfs says node %d", t->cpu, os,
             topo->os_id[t->entry]);
    return -1;
  }
  return 0;
}

/* ---- the sample ------------------------------------------------------------------ */

/* Asks move_pages for n pages; 0 or -1 (t->err set). */
static int query_pages(loc_thread *t, void **pages, int *status, unsigned long n) {
  if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) == 0) return 0;
  snprintf(t->err, sizeof t->err, "move_pages(query %lu pages): %s", n, strerror(errno));
  return -1;
}

/* Touches up to SAMPLE_MAX live blocks and counts those whose first and last
 * pages are both on t's home; records each block's first page's node. */
static void sample(loc_thread *t) {
  enum { BATCH = 256 }; /* blocks per move_pages call, two pages each */
  void *pages[2 * BATCH];
  int status[2 * BATCH];
  size_t i = 0;
  while (i < t->nslots && t->sampled < SAMPLE_MAX && !t->err[0]) {
    unsigned long n = 0;
    for (size_t b = 0; b < BATCH && i < t->nslots && t->sampled + (long)b < SAMPLE_MAX; i++) {
      volatile unsigned char *p = t->slots[i];
      if (!p) continue;
      uintptr_t last = (uintptr_t)p + t->sizes[i] - 1;
      p[0]++; /* touch: a page never written would not be placed yet */
      p[t->sizes[i] - 1]++;
      pages[n++] = (void *)((uintptr_t)p & ~(uintptr_t)(VM_PAGE - 1));
      pages[n++] = (void *)(last & ~(uintptr_t)(VM_PAGE - 1));
      b++;
    }
    if (n == 0 || query_pages(t, pages, status, n) != 0) return;
    for (unsigned long k = 0; k < n; k += 2) {
      t->sampled++;
      if (status[k] >= 0 && status[k] < VM_MAX_NODES) t->on_node[status[k]]++;
      if (status[k] == t->home_os && status[k + 1] == t->home_os) t->local++;
    }
  }
}

/* ---- one workload ---------------------------------------------------------------- */

static void *thread_main(void *argp) {
  loc_arg *a = argp;
  loc_thread *t = a->self;
  loc_run *run = a->run;
  int ok = pin(t, run->topo) == 0;
  pthread_barrier_wait(&run->bar); /* start of the timed phase */
  if (ok && t->role == ROLE_LARSON) run_larson(t, run->ops);
  if (ok && t->role == ROLE_PRODUCER) run_producer(t, run->ops);
  if (ok && t->role == ROLE_CONSUMER) run_consumer(t);
  /* release: publishes every block t sent before it (see run_consumer) */
  atomic_store_explicit(&t->done, 1, memory_order_release);
  drain_until_sender_done(t);
  pthread_barrier_wait(&run->bar); /* end of the steady state */
  if (ok && !t->err[0]) sample(t);
  pthread_barrier_wait(&run->bar); /* every sample taken before anything is freed */
  drain_inbox(t);
  for (size_t i = 0; i < t->nslots; i++) free(t->slots[i]);
  return NULL;
}

/* The entry whose CPU list holds cpu, -1 if none. */
static int entry_of_cpu(const vm_topo *topo, int cpu) {
  for (int i = 0; i < topo->nnodes; i++) {
    if (CPU_ISSET(cpu, &topo->cpus[i])) return i;
  }
  return -1;
}

/* Threads in "interleaved" order: rank 0 of every node with CPUs, then rank
 * 1, ...; consecutive threads are then on different nodes. */
static int order_threads(const vm_topo *topo, int *cpus, int max) {
  int n = 0;
  for (int rank = 0; rank < CPU_SETSIZE; rank++) {
    int found = 0;
    for (int i = 0; i < topo->nnodes; i++) {
      int seen = 0;
      for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &topo->cpus[i]) || seen++ != rank) continue;
        if (n == max) return n;
        cpus[n++] = c;
        found = 1;
        break;
      }
    }
    if (!found) break;
  }
  return n;
}

/* larson: each thread sends to the next one in the interleaved order (a
 * ring, so every thread has one sender), which is on another node. */
static void link_larson(loc_run *run) {
  for (int k = 0; k < run->nthreads; k++) {
    int dst = (k + 1) % run->nthreads;
    run->t[k].role = ROLE_LARSON;
    run->t[k].to = &run->t[dst];
    run->t[dst].from = &run->t[k];
  }
}

/* prodcons: consecutive threads form pairs; odd pairs run the other way. */
static void link_prodcons(loc_run *run) {
  for (int k = 0; k + 1 < run->nthreads; k += 2) {
    int swap = (k / 2) % 2;
    loc_thread *p = &run->t[k + swap], *c = &run->t[k + 1 - swap];
    p->role = ROLE_PRODUCER;
    c->role = ROLE_CONSUMER;
    p->to = c;
    c->from = p;
  }
}

/* Sets up the threads of one workload; exits with FAIL on a bad layout. */
static void setup(loc_run *run, const vm_topo *topo) {
  int cpus[CPU_SETSIZE];
  int nodes_with_cpus = 0;
  for (int i = 0; i < topo->nnodes; i++) nodes_with_cpus += topo->ncpus[i] > 0;
  run->nthreads = order_threads(topo, cpus, CPU_SETSIZE);
  if (nodes_with_cpus < 2) vm_fail("setup", "needs CPUs on at least two nodes");
  run->t = calloc((size_t)run->nthreads, sizeof *run->t);
  if (!run->t) vm_fail("setup", "out of memory for %d threads", run->nthreads);
  for (int k = 0; k < run->nthreads; k++) {
    loc_thread *t = &run->t[k];
    t->cpu = cpus[k];
    t->entry = entry_of_cpu(topo, cpus[k]);
    int home = vm_mem_home(topo, t->entry);
    if (home < 0) vm_fail("setup", "no node has memory");
    t->home_os = topo->os_id[home];
    t->nslots = run->nslots;
    t->slots = calloc(run->nslots, sizeof *t->slots);
    t->sizes = calloc(run->nslots, sizeof *t->sizes);
    if (!t->slots || !t->sizes) vm_fail("setup", "out of memory for %zu slots", run->nslots);
    t->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)t->cpu << 32 | 1);
  }
  if (strcmp(run->workload, "larson") == 0) {
    link_larson(run);
    return;
  }
  if (run->nthreads % 2 != 0)
    vm_fail("setup", "prodcons pairs threads: %d CPUs is an odd count", run->nthreads);
  link_prodcons(run);
  for (int k = 0; k < run->nthreads; k++) {
    if (run->t[k].to && run->t[k].to->entry == run->t[k].entry)
      vm_fail("setup", "prodcons pair CPU %d -> CPU %d is on one node", run->t[k].cpu,
              run->t[k].to->cpu);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints one thread's line; returns its local share in percent. */
static double report_thread(const loc_run *run, const loc_thread *t) {
  static const char *roles[] = {"larson", "producer", "consumer"};
  char where[512];
  size_t len = 0;
  double pct = t->sampled ? 100.0 * (double)t->local / (double)t->sampled : 0.0;
  where[0] = '\0';
  for (int i = 0; i < run->topo->nnodes && len < sizeof where; i++) {
    int os = run->topo->os_id[i];
    if (t->on_node[os] == 0) continue;
    len += (size_t)snprintf(where + len, sizeof where - len, " n%d=%ld", os, t->on_node[os]);
  }
  printf("thread cpu=%d node=%d home=%d role=%s blocks=%ld local=%ld pct=%.1f on:%s\n", t->cpu,
         run->topo->os_id[t->entry], t->home_os, roles[t->role], t->sampled, t->local, pct,
         where);
  return pct;
}

/* Starts one thread per CPU, times the steady state and joins them; returns
 * the seconds between the start and the end of the steady state. */
static double run_threads(loc_run *run) {
  pthread_t *th = calloc((size_t)run->nthreads, sizeof *th);
  loc_arg *args = calloc((size_t)run->nthreads, sizeof *args);
  if (!th || !args) vm_fail(run->workload, "out of memory for %d threads", run->nthreads);
  pthread_barrier_init(&run->bar, NULL, (unsigned)run->nthreads + 1);
  for (int k = 0; k < run->nthreads; k++) {
    args[k] = (loc_arg){.run = run, .self = &run->t[k]};
    int rc = pthread_create(&th[k], NULL, thread_main, &args[k]);
    if (rc != 0) vm_fail(run->workload, "pthread_create: %s", strerror(rc));
  }
  pthread_barrier_wait(&run->bar);
  double start = now_s();
  pthread_barrier_wait(&run->bar);
  double secs = now_s() - start;
  pthread_barrier_wait(&run->bar);
  for (int k = 0; k < run->nthreads; k++) pthread_join(th[k], NULL);
  pthread_barrier_destroy(&run->bar);
  free(th);
  free(args);
  return secs;
}

/* Prints the thread lines, LOCALITY and SPEED; FAIL on a thread's error or
 * when the least local thread is below min_local percent. */
static void summarize(const loc_run *run, const char *allocator, double secs, double min_local) {
  const char *w = run->workload;
  double min = 100.0, sum = 0.0;
  int min_cpu = -1;
  uint64_t allocs = 0;
  for (int k = 0; k < run->nthreads; k++) {
    const loc_thread *t = &run->t[k];
    if (t->err[0]) vm_fail(w, "CPU %d: %s", t->cpu, t->err);
    if (t->sampled == 0) vm_fail(w, "CPU %d holds no live block to sample", t->cpu);
    double pct = report_thread(run, t);
    if (min_cpu < 0 || pct < min) {
      min = pct;
      min_cpu = t->cpu;
    }
    sum += pct;
    allocs += t->allocs;
  }
  double mean = sum / run->nthreads, rate = (double)allocs / secs;
  printf("LOCALITY %s %s %.1f %.1f\n", allocator, w, min, mean);
  printf("SPEED %s %s %.0f %.3f %d\n", allocator, w, rate, secs, run->nthreads);
  if (min < min_local)
    vm_fail(w, "%s: the thread on CPU %d has %.1f%% of its blocks on its node (want >= %.1f%%)",
            allocator, min_cpu, min, min_local);
  vm_ok(w, "%s: %d threads, %.1f%% min / %.1f%% mean local, %.0f allocations/s", allocator,
        run->nthreads, min, mean, rate);
}

/* Runs one workload and reports it. */
static void run_workload(const char *allocator, const char *workload, long ops, size_t nslots,
                         double min_local, const vm_topo *topo) {
  loc_run run = {.workload = workload, .ops = ops, .nslots = nslots, .topo = topo};
  setup(&run, topo);
  double secs = run_threads(&run);
  summarize(&run, allocator, secs, min_local);
  for (int k = 0; k < run.nthreads; k++) {
    free(run.t[k].slots);
    free(run.t[k].sizes);
  }
  free(run.t);
}

/* ---- command line ------------------------------------------------------------------ */

typedef struct loc_opts {
  const char *want;   /* --want-allocator, or NULL */
  double min_local;   /* --min-local, percent */
  size_t nslots;      /* --slots */
  char *workloads;    /* comma-separated */
  long ops;
} loc_opts;

static _Noreturn void usage(const char *why) {
  vm_fail("arguments", "%s; usage: vm_locality --layout L --expect SPEC [--want-allocator NAME] "
                       "[--min-local PCT] [--slots N] larson|prodcons[,...] OPS",
          why);
}

/* A whole-string number in [lo, hi], or usage(). */
static double parse_number(const char *s, double lo, double hi, const char *what) {
  char *e;
  char why[128];
  errno = 0;
  double v = strtod(s, &e);
  if (errno || e == s || *e || v < lo || v > hi) {
    snprintf(why, sizeof why, "%s '%s' is not a number in [%g, %g]", what, s, lo, hi);
    usage(why);
  }
  return v;
}

static void parse_opts(int argc, char **argv, loc_opts *o) {
  int i = 0;
  *o = (loc_opts){.min_local = 0.0, .nslots = SLOTS_DEFAULT};
  for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (strcmp(argv[i], "--want-allocator") == 0) o->want = argv[i + 1];
    else if (strcmp(argv[i], "--min-local") == 0)
      o->min_local = parse_number(argv[i + 1], 0, 100, "--min-local");
    else if (strcmp(argv[i], "--slots") == 0)
      o->nslots = (size_t)parse_number(argv[i + 1], 1, 1 << 20, "--slots");
    else {
      char why[128];
      snprintf(why, sizeof why, "unknown option '%s'", argv[i]);
      usage(why);
    }
  }
  if (argc - i != 2) usage("want WORKLOADS and OPS");
  o->workloads = argv[i];
  o->ops = (long)parse_number(argv[i + 1], 1, 1e9, "OPS");
}

/* Runs workload w in a fresh process (this program, same options and
 * environment), so what one workload freed cannot seed the next one's
 * placement; exits with FAIL if the child failed (it printed why). */
static void run_in_child(char **argv, const vm_args *a, const char *w) {
  char *args[64];
  int n = 0;
  if (a->argc + 6 > (int)(sizeof args / sizeof args[0])) usage("too many arguments");
  args[n++] = argv[0];
  args[n++] = "--layout";
  args[n++] = (char *)a->layout;
  args[n++] = "--expect";
  args[n++] = (char *)a->spec;
  for (int i = 0; i < a->argc - 2; i++) args[n++] = a->argv[i]; /* the options */
  args[n++] = (char *)w;
  args[n++] = a->argv[a->argc - 1]; /* OPS */
  args[n] = NULL;
  fflush(stdout);
  pid_t pid;
  int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ), status;
  if (rc != 0) vm_fail(w, "posix_spawn(/proc/self/exe): %s", strerror(rc));
  if (waitpid(pid, &status, 0) != pid) vm_fail(w, "waitpid: %s", strerror(errno));
  if (WIFSIGNALED(status)) vm_fail(w, "killed by signal %d", WTERMSIG(status));
  if (WEXITSTATUS(status) != 0) exit(1);
}

/* Stops with a usage error unless every name in the comma list is known. */
static void check_workloads(const char *list) {
  for (const char *w = list;; w++) {
    size_t len = strcspn(w, ",");
    if (!(len == 6 && strncmp(w, "larson", 6) == 0) && !(len == 8 && strncmp(w, "prodcons", 8) == 0)) {
      char why[128];
      snprintf(why, sizeof why, "unknown workload '%.*s' (larson, prodcons)", (int)len, w);
      usage(why);
    }
    w += len;
    if (!*w) return;
  }
}

int main(int argc, char **argv) {
  vm_args a;
  loc_opts o;
  vm_topo topo;
  char err[256];
  vm_start(argc, argv, &a);
  parse_opts(a.argc, a.argv, &o);
  check_workloads(o.workloads);
  if (strchr(o.workloads, ',')) { /* several: each in a process of its own */
    for (char *save = NULL, *w = strtok_r(o.workloads, ",", &save); w;
         w = strtok_r(NULL, ",", &save))
      run_in_child(argv, &a, w);
    return 0;
  }
  if (vm_read_kernel_topo(&topo, err, sizeof err) != 0) vm_fail("topology", "%s", err);

  const char *allocator = loc_allocator_name();
  printf("allocator=%s malloc_from=%s\n", allocator, loc_malloc_object());
  if (o.want && strcmp(o.want, allocator) != 0)
    vm_fail("allocator", "wanted %s, but malloc is %s's (from %s): did the preload fail?", o.want,
            allocator, loc_malloc_object());
  run_workload(allocator, o.workloads, o.ops, o.nslots, o.min_local, &topo);
  return 0;
}
