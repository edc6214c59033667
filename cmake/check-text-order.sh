#!/bin/sh
# cmake/check-text-order.sh: checks what cmake/text-order.ld places in the
# section .text.nh_first, where a small program's code goes together
# (docs/benchmarks.md, "Footprint of a small program").
#
#   check-text-order.sh LIBRARY ORDER.ld
#     every function ORDER.ld lists (its "*(.text.NAME)" lines) is still a
#     function of the built library, placed in .text.nh_first: a renamed or
#     removed function would otherwise just lose its place, and the small
#     program's footprint would grow without a word.
#   check-text-order.sh LIBRARY --ran PROGRAM TEXT_ORDER_PY
#     every function of the library PROGRAM runs (with LIBRARY preloaded,
#     under gdb: bench/text_order.py) lies in .text.nh_first: a start-up
#     function not listed (a new one, or a renamed static one) would run from
#     the rest of the code and cost another 64 KiB window of it.
set -eu
usage="usage: check-text-order.sh libnumaheap.so text-order.ld, or libnumaheap.so --ran program text_order.py"
lib=${1:?$usage}
mode=${2:?$usage}
tools="nm readelf"
[ "$mode" = --ran ] && tools="$tools gdb"
for t in $tools; do
  command -v "$t" >/dev/null || { echo "check-text-order: $t is needed" >&2; exit 1; }
done
sec=$(readelf -SW "$lib" | sed -n 's/.*\] \.text\.nh_first  *PROGBITS  *\([0-9a-f]*\) [0-9a-f]* \([0-9a-f]*\) .*/\1 \2/p')
[ -n "$sec" ] || { echo "check-text-order: $lib has no section .text.nh_first" >&2; exit 1; }
start=$((0x${sec% *})); end=$((start + 0x${sec#* }))
syms=$(nm "$lib" | awk '$2 == "t" || $2 == "T" {print $1, $3}')

# The address of function $1 of the library (hex, empty if none).
addr_of() { printf '%s\n' "$syms" | awk -v n="$1" '$2 == n {print $1; exit}'; }
# Whether hex address $1 lies in .text.nh_first.
in_first() { [ $((0x$1)) -ge $start ] && [ $((0x$1)) -lt $end ]; }

status=0
if [ "$mode" = --ran ]; then
  prog=${3:?$usage}
  script=${4:?$usage}
  # gdb under a loaded machine (ctest -j) once in about fifteen runs
  # reported nothing at all (session 15): a second try, and gdb's own
  # messages when that fails too
  err=$(mktemp)
  trap 'rm -f "$err"' EXIT
  ran=
  for _ in 1 2; do
    ran=$(NH_LIB="$lib" gdb -q -batch -x "$script" --args "$prog" 2>"$err" | sed -n 's/^TEXT-ORDER //p')
    [ -n "$ran" ] && break
  done
  if [ -z "$ran" ]; then
    echo "check-text-order: gdb reported no function of $lib run by $prog (twice); gdb said:" >&2
    tail -n 20 "$err" >&2
    exit 1
  fi
  n=0
  for name in $ran; do
    n=$((n + 1))
    addr=$(addr_of "$name")
    if [ -z "$addr" ] || ! in_first "$addr"; then
      echo "check-text-order: $prog ran $name, which is not in .text.nh_first: list it in cmake/text-order.ld" >&2
      status=1
    fi
  done
  [ $status -eq 0 ] && echo "check-text-order: all $n functions $prog ran are in .text.nh_first"
  exit $status
fi

order=$mode
for name in $(sed -n 's/^ *\*(\.text\.\([A-Za-z0-9_.]*\)).*/\1/p' "$order"); do
  addr=$(addr_of "$name")
  if [ -z "$addr" ]; then
    echo "check-text-order: $name (listed in $order) is not a function of $lib" >&2
    status=1
  elif ! in_first "$addr"; then
    echo "check-text-order: $name is not in .text.nh_first" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "check-text-order: $(grep -c '^ *\*(\.text\.[A-Za-z]' "$order") functions in place"
exit $status
