#!/usr/bin/env bash
# Debian's python3 runs an allocation-heavy script under `numaheap run
# --stats=json`, with a multiprocessing pool forked while threads allocate.
. "$(dirname "$0")/lib.sh"
cat > "$WORK/work.py" <<'PY'
import collections, json, random
random.seed(7)
# many small objects: dicts, tuples, strings, lists that grow and shrink
table = {}
for i in range(200000):
    table[f"key-{i}"] = (i, str(i) * (i % 7), [i] * (i % 5))
words = collections.Counter()
for i in range(100000):
    words[random.choice(("alpha", "beta", "gamma", "delta")) + str(i % 97)] += 1
blob = json.dumps({k: v[1] for k, v in list(table.items())[:50000]})
back = json.loads(blob)
big = [bytearray(4096 * (i % 300 + 1)) for i in range(300)]   # large blocks too
del big[::2]
s = sum(v[0] for v in table.values())
assert s == sum(range(200000)), s
assert len(back) == 50000 and sum(words.values()) == 100000
# fork while threads allocate: a multiprocessing pool (fork start method)
import multiprocessing as mp, threading
def work(n):
    d = {i: str(i) * 3 for i in range(n)}
    return sum(len(v) for v in d.values())
if __name__ == "__main__":
    mp.set_start_method("fork")
    busy = [threading.Thread(target=work, args=(100000,)) for _ in range(2)]
    for t in busy: t.start()
    with mp.Pool(2) as pool:
        r = pool.map(work, [20000] * 8)
    for t in busy: t.join()
    assert sum(r) == 8 * work(20000), r
print("python ok", s, len(words))
PY
"$NH_CLI" run --stats=json -- "$PY" "$WORK/work.py" >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err" >&2; fail "python3 exited $?"; }
cat "$WORK/out"
grep -q "^python ok 19999900000 " "$WORK/out" || fail "python3 did not print its result"
check_stats "$WORK/err" 2000 1
