#!/usr/bin/env bash
# A C# program compiled with mcs runs on the mono CLR on numaheap (`numaheap
# run --stats=json`): the runtime's own allocations, threads and the GC.
. "$(dirname "$0")/lib.sh"
need mcs mono
cat > "$WORK/Work.cs" <<'CS'
using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;

static class Work {
  static long Churn(int seed) {
    var rng = new Random(seed);
    var map = new Dictionary<string, List<int>>();
    long sum = 0;
    for (int i = 0; i < 100000; i++) {
      string key = "k" + rng.Next(5000);
      List<int> l;
      if (!map.TryGetValue(key, out l)) { l = new List<int>(); map[key] = l; }
      l.Add(i);
      sum += l.Count;
    }
    var sb = new StringBuilder();
    foreach (var kv in map) sb.Append(kv.Key).Append(kv.Value.Count);
    return sum + sb.Length;
  }
  static int Main() {
    var results = new long[4];
    var threads = new Thread[4];
    for (int t = 0; t < 4; t++) {
      int id = t;
      threads[t] = new Thread(() => results[id] = Churn(id + 1));
      threads[t].Start();
    }
    foreach (var th in threads) th.Join();
    long first = Churn(1);
    GC.Collect();
    Console.WriteLine("mono ok " + (results[0] == first) + " " + results.Length);
    return results[0] == first ? 0 : 1;
  }
}
CS
mcs -out:"$WORK/Work.exe" "$WORK/Work.cs" >"$WORK/mcs.out" 2>&1 || { cat "$WORK/mcs.out" >&2; fail "mcs failed"; }
"$NH_CLI" run --stats=json -- mono "$WORK/Work.exe" >"$WORK/out" 2>"$WORK/err" ||
  { cat "$WORK/out" "$WORK/err" >&2; fail "mono exited $?"; }
cat "$WORK/out"
grep -q "^mono ok True 4$" "$WORK/out" || fail "the C# program did not print its result"
check_stats "$WORK/err" 5000 1
