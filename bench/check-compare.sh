#!/bin/sh
# bench/check-compare.sh: compare.py end to end on one short benchmark
# (the bench_compare test): numaheap, glibc and a --numaheap-variant side by
# side, each checked live by compare.py itself; the variant's column and its
# variables are in the report; a malformed variant, and one numaheap refuses
# (an unknown variable), are refused by name.
#
#   bench/check-compare.sh NH_BENCH LIBNUMAHEAP OUT_DIR
set -eu
bench=$1 lib=$2 out=$3
here=$(dirname "$0")
rm -rf "$out"
python3 "$here/compare.py" --bench "$bench" --numaheap "$lib" --no-install --no-host-probe \
  --allocators numaheap,glibc --numaheap-variant nothp:NUMAHEAP_HEAP_HUGE_PAGES=off \
  --filter '^pair/size:64/real_time/threads:1$' --rounds 1 --min-time 0.005 --small-runs 0 \
  --out "$out"
grep -q '| benchmark | numaheap | glibc | glibc/numaheap | numaheap-nothp | numaheap-nothp/numaheap |' \
  "$out/report.md" || { echo "check-compare: no numaheap-nothp column in $out/report.md" >&2; exit 1; }
grep -q 'numaheap-nothp=.* NUMAHEAP_HEAP_HUGE_PAGES=off' "$out/report.md" ||
  { echo "check-compare: the variant's variables are not in the report" >&2; exit 1; }
# any unit: on a loaded machine the first iteration alone can pass --min-time
t='[0-9.]* [nµm]*s'
grep -q "^| pair/size:64/threads:1 | $t | $t | [0-9.]* | $t |" "$out/report.md" ||
  { echo "check-compare: no times for the three" >&2; exit 1; }
# refused VARIANT MESSAGE: compare.py must exit non-zero with MESSAGE
refused() {
  if msg=$(python3 "$here/compare.py" --bench "$bench" --numaheap "$lib" --no-install \
    --no-host-probe --numaheap-variant "$1" --filter x --out "$out/bad" 2>&1); then
    echo "check-compare: variant $1 was accepted" >&2
    exit 1
  fi
  echo "$msg" | grep -q -- "$2" || { echo "check-compare: unclear refusal of $1: $msg" >&2; exit 1; }
}
refused 'nothp:HUGE_PAGES=off' "'HUGE_PAGES=off' is not NUMAHEAP_NAME=VALUE"
refused 'nothp:NUMAHEAP_HUGE_PAGES=off' \
  "numaheap refused the variant's variables: .*NUMAHEAP_HUGE_PAGES: unknown numaheap variable"
echo "check-compare: ok"
