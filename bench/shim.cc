// bench/shim.cc: the C API of shim.h on top of Google Benchmark.
//
// The C++ side of bench/ (with wl_server.cc, the C++ workload). An nhb_state* is a benchmark::State*, an
// nhb_bench* is a benchmark::internal::Benchmark*; both are opaque to C.

#include "shim.h"

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace {

benchmark::State &S(nhb_state *st) { return *reinterpret_cast<benchmark::State *>(st); }
const benchmark::State &S(const nhb_state *st) {
  return *reinterpret_cast<const benchmark::State *>(st);
}
benchmark::internal::Benchmark *B(nhb_bench *b) {
  return reinterpret_cast<benchmark::internal::Benchmark *>(b);
}
nhb_bench *C(benchmark::internal::Benchmark *b) { return reinterpret_cast<nhb_bench *>(b); }

benchmark::Counter::Flags counter_flags(int flags) {
  int f = benchmark::Counter::kDefaults;
  if (flags & NHB_COUNTER_RATE) f |= benchmark::Counter::kIsRate;
  if (flags & NHB_COUNTER_AVG_THREADS) f |= benchmark::Counter::kAvgThreads;
  return static_cast<benchmark::Counter::Flags>(f);
}

}  // namespace

extern "C" {

nhb_bench *nhb_register(const char *name, nhb_fn fn) {
  auto *b = benchmark::RegisterBenchmark(name, [fn](benchmark::State &st) {
    fn(reinterpret_cast<nhb_state *>(&st));
  });
  return C(b->UseRealTime());
}

nhb_bench *nhb_arg(nhb_bench *b, int64_t a) { return C(B(b)->Arg(a)); }

nhb_bench *nhb_args2(nhb_bench *b, int64_t a0, int64_t a1) {
  return C(B(b)->Args({a0, a1}));
}

nhb_bench *nhb_arg_name(nhb_bench *b, const char *name0, const char *name1) {
  std::vector<std::string> names{name0};
  if (name1) names.emplace_back(name1);
  return C(B(b)->ArgNames(names));
}

nhb_bench *nhb_threads(nhb_bench *b, int n) { return C(B(b)->Threads(n)); }
nhb_bench *nhb_fixed_iterations(nhb_bench *b, int64_t n) { return C(B(b)->Iterations(n)); }
nhb_bench *nhb_unit_ms(nhb_bench *b) { return C(B(b)->Unit(benchmark::kMillisecond)); }
nhb_bench *nhb_unit_us(nhb_bench *b) { return C(B(b)->Unit(benchmark::kMicrosecond)); }

void nhb_add_context(const char *key, const char *value) {
  benchmark::AddCustomContext(key, value);
}

int nhb_run(int *argc, char **argv) {
  benchmark::Initialize(argc, argv);
  if (benchmark::ReportUnrecognizedArguments(*argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

int nhb_keep_running(nhb_state *st) { return S(st).KeepRunning(); }
int64_t nhb_range(const nhb_state *st, int i) { return S(st).range(static_cast<size_t>(i)); }
int64_t nhb_iterations(const nhb_state *st) { return static_cast<int64_t>(S(st).iterations()); }
int nhb_thread_index(const nhb_state *st) { return S(st).thread_index(); }
int nhb_thread_count(const nhb_state *st) { return S(st).threads(); }
void nhb_pause(nhb_state *st) { S(st).PauseTiming(); }
void nhb_resume(nhb_state *st) { S(st).ResumeTiming(); }
void nhb_set_items(nhb_state *st, int64_t items) { S(st).SetItemsProcessed(items); }

void nhb_counter(nhb_state *st, const char *name, double value, int flags) {
  benchmark::Counter::OneK base = (flags & NHB_COUNTER_BYTES) ? benchmark::Counter::kIs1024
                                                               : benchmark::Counter::kIs1000;
  S(st).counters[name] = benchmark::Counter(value, counter_flags(flags), base);
}

void nhb_error(nhb_state *st, const char *msg) { S(st).SkipWithError(msg); }

}  // extern "C"
