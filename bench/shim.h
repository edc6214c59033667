/*
 * bench/shim.h: a C face for Google Benchmark.
 *
 * The workloads are C; this header is all they see of Google Benchmark.
 * shim.cc (the only C++ in the repository) implements it on top of
 * benchmark::State and benchmark::internal::Benchmark.
 *
 * Rules for workloads:
 *   - the timed region is the body of `while (nhb_keep_running(st))`; nothing
 *     in it may allocate except the allocator calls being measured;
 *   - counters, items and labels allocate inside Google Benchmark (std::map,
 *     std::string): set them after the loop only;
 *   - with nhb_threads(), the function runs on that many threads at once, each
 *     with its own state; all threads pass a barrier on their first
 *     nhb_keep_running() and another when the loop ends, so shared state set
 *     up by thread 0 before the loop is visible to all threads inside it, and
 *     every thread has left the loop before any thread runs its code after it.
 */
#ifndef NHB_SHIM_H
#define NHB_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One running benchmark thread (a benchmark::State). */
typedef struct nhb_state nhb_state;
/** One registered benchmark family (a benchmark::internal::Benchmark). */
typedef struct nhb_bench nhb_bench;
/** A workload: runs its loop on @p st. */
typedef void (*nhb_fn)(nhb_state *st);

/** Counter flags, the same meaning as benchmark::Counter::Flags. */
enum nhb_counter_flags {
  NHB_COUNTER_PLAIN = 0,          /**< value as given, summed over threads */
  NHB_COUNTER_RATE = 1 << 0,      /**< divided by the run's seconds */
  NHB_COUNTER_AVG_THREADS = 1 << 1, /**< averaged over threads instead of summed */
  NHB_COUNTER_BYTES = 1 << 2      /**< printed with 1024-based prefixes */
};

/* ---- registration (call before nhb_run) ---------------------------------- */

/** Registers @p fn as benchmark family @p name (wall-clock timed). */
nhb_bench *nhb_register(const char *name, nhb_fn fn);
/** Adds one instance with a single argument. */
nhb_bench *nhb_arg(nhb_bench *b, int64_t a);
/** Adds one instance with two arguments. */
nhb_bench *nhb_args2(nhb_bench *b, int64_t a0, int64_t a1);
/** Names argument @p i (0 or 1) in the benchmark name, e.g. "size". */
nhb_bench *nhb_arg_name(nhb_bench *b, const char *name0, const char *name1);
/** Adds a thread count; call once per count (1, 2, 4 ...). */
nhb_bench *nhb_threads(nhb_bench *b, int n);
/** Runs exactly @p n iterations per instance (a fixed amount of work, for
 *  workloads whose footprint depends on how much they did). */
nhb_bench *nhb_fixed_iterations(nhb_bench *b, int64_t n);
/** Reports times in milliseconds instead of nanoseconds. */
nhb_bench *nhb_unit_ms(nhb_bench *b);
/** Reports times in microseconds instead of nanoseconds. */
nhb_bench *nhb_unit_us(nhb_bench *b);

/* ---- running ------------------------------------------------------------- */

/** Adds a key/value to the "context" of the report (JSON and console). */
void nhb_add_context(const char *key, const char *value);
/** Parses Google Benchmark's flags from argv (removing them), runs the
 *  selected benchmarks, and returns 0, or 1 on unrecognized arguments. */
int nhb_run(int *argc, char **argv);

/* ---- inside a workload ----------------------------------------------------- */

/** Loop condition: true while more iterations must run (timer running). */
int nhb_keep_running(nhb_state *st);
/** Argument @p i of this instance. */
int64_t nhb_range(const nhb_state *st, int i);
/** Iterations this thread ran (valid after the loop). */
int64_t nhb_iterations(const nhb_state *st);
/** This thread's index, 0 .. nhb_thread_count()-1. */
int nhb_thread_index(const nhb_state *st);
/** Number of threads running this instance. */
int nhb_thread_count(const nhb_state *st);
/** Stops the timer (for untimed work inside the loop). */
void nhb_pause(nhb_state *st);
/** Restarts the timer after nhb_pause. */
void nhb_resume(nhb_state *st);
/** Sets the items processed by this thread (after the loop). */
void nhb_set_items(nhb_state *st, int64_t items);
/** Sets counter @p name to @p value with @p flags (after the loop). */
void nhb_counter(nhb_state *st, const char *name, double value, int flags);
/** Marks the instance failed with @p msg; the loop then stops. */
void nhb_error(nhb_state *st, const char *msg);

#ifdef __cplusplus
}
#endif
#endif /* NHB_SHIM_H */
