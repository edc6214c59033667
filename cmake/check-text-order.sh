#!/bin/sh
# cmake/check-text-order.sh LIBRARY ORDER.ld: checks that every function
# cmake/text-order.ld places (its "*(.text.NAME)" lines) is still a function
# of the built library, placed in the section .text.nh_first: a renamed or
# removed function would otherwise just lose its place, and the small
# program's footprint would grow without a word (docs/benchmarks.md).
set -eu
lib=${1:?usage: check-text-order.sh libnumaheap.so text-order.ld}
order=${2:?usage: check-text-order.sh libnumaheap.so text-order.ld}
command -v nm >/dev/null && command -v readelf >/dev/null || {
  echo "check-text-order: nm and readelf are needed" >&2; exit 1; }
sec=$(readelf -SW "$lib" | sed -n 's/.*\] \.text\.nh_first  *PROGBITS  *\([0-9a-f]*\) [0-9a-f]* \([0-9a-f]*\) .*/\1 \2/p')
[ -n "$sec" ] || { echo "check-text-order: $lib has no section .text.nh_first" >&2; exit 1; }
start=$((0x${sec% *})); end=$((start + 0x${sec#* }))
syms=$(nm "$lib" | awk '$2 == "t" || $2 == "T" {print $1, $3}')
status=0
for name in $(sed -n 's/^ *\*(\.text\.\([A-Za-z0-9_.]*\)).*/\1/p' "$order"); do
  addr=$(printf '%s\n' "$syms" | awk -v n="$name" '$2 == n {print $1; exit}')
  if [ -z "$addr" ]; then
    echo "check-text-order: $name (listed in $order) is not a function of $lib" >&2
    status=1
  elif [ $((0x$addr)) -lt $start ] || [ $((0x$addr)) -ge $end ]; then
    echo "check-text-order: $name is not in .text.nh_first" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "check-text-order: $(grep -c '^ *\*(\.text\.[A-Za-z]' "$order") functions in place"
exit $status
