#!/bin/bash
# bench/ab_cores.sh: compares two allocator libraries on one-thread
# benchmarks of nh_bench with both running at the same time, each pinned to
# one of the first two cores, then swapped; prints the least time of each
# over the rounds and their ratio. On a shared host whose speed moves from
# minute to minute, both builds then see the same host at the same moment,
# where interleaved runs see different ones (docs/benchmarks.md, "Two builds
# at once, one per core").
#
#   bench/ab_cores.sh NH_BENCH FILTER ROUNDS LIB_A LIB_B
#
# FILTER is a --benchmark_filter regex; give it one-thread benchmarks only
# (a benchmark of two threads would share its core with the other build).
# LIB_A and LIB_B are preloaded (LD_PRELOAD); "glibc" runs without one.
set -euo pipefail
if [ $# -ne 5 ]; then
  echo "usage: $0 NH_BENCH FILTER ROUNDS LIB_A LIB_B" >&2
  exit 2
fi
bench=$1 filter=$2 rounds=$3 lib_a=$4 lib_b=$5
if [ "$(nproc)" -lt 2 ]; then
  echo "$0: needs two cores" >&2
  exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run LIB CPU LABEL: one nh_bench process on CPU, "LABEL NAME TIME" lines
run() {
  local preload=$1
  [ "$preload" = glibc ] && preload=
  taskset -c "$2" env LD_PRELOAD="$preload" "$bench" --benchmark_filter="$filter" \
    --benchmark_min_time=0.3 --benchmark_format=json 2>/dev/null |
    python3 -c '
import json, sys
for b in json.load(sys.stdin)["benchmarks"]:
    print(sys.argv[1], b["name"], b["real_time"])' "$3"
}

for r in $(seq "$rounds"); do
  run "$lib_a" 0 A >"$out/$r.a" & run "$lib_b" 1 B >"$out/$r.b" & wait
  run "$lib_b" 0 B >"$out/$r.c" & run "$lib_a" 1 A >"$out/$r.d" & wait
done
cat "$out"/* | python3 -c '
import collections, sys
least = collections.defaultdict(lambda: float("inf"))
for line in sys.stdin:
    label, name, t = line.split()
    least[(name, label)] = min(least[(name, label)], float(t))
for name in sorted({n for n, _ in least}):
    a, b = least[(name, "A")], least[(name, "B")]
    print(f"{name}  A {a:.1f}  B {b:.1f}  B/A {b / a:.3f}")'
