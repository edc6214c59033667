#!/bin/sh
# cmake/check-text-ran.sh LIBRARY PROGRAM TEXT_ORDER_PY: runs PROGRAM with
# LIBRARY preloaded under gdb (bench/text_order.py) and checks that every
# function of the library it ran lies in the section .text.nh_first, where
# cmake/text-order.ld puts start-up, malloc and free. A start-up function
# that is not listed there (a new one, or a renamed static one) would run
# from the rest of the code and cost a small program another 64 KiB window
# of it (docs/benchmarks.md, "Footprint of a small program").
set -eu
lib=${1:?usage: check-text-ran.sh libnumaheap.so program text_order.py}
prog=${2:?usage: check-text-ran.sh libnumaheap.so program text_order.py}
script=${3:?usage: check-text-ran.sh libnumaheap.so program text_order.py}
for t in gdb nm readelf; do
  command -v $t >/dev/null || { echo "check-text-ran: $t is needed" >&2; exit 1; }
done
sec=$(readelf -SW "$lib" | sed -n 's/.*\] \.text\.nh_first  *PROGBITS  *\([0-9a-f]*\) [0-9a-f]* \([0-9a-f]*\) .*/\1 \2/p')
[ -n "$sec" ] || { echo "check-text-ran: $lib has no section .text.nh_first" >&2; exit 1; }
start=$((0x${sec% *})); end=$((start + 0x${sec#* }))
ran=$(NH_LIB="$lib" gdb -q -batch -x "$script" --args "$prog" 2>/dev/null | sed -n 's/^TEXT-ORDER //p')
[ -n "$ran" ] || { echo "check-text-ran: gdb reported no function of $lib run by $prog" >&2; exit 1; }
syms=$(nm "$lib" | awk '$2 == "t" || $2 == "T" {print $1, $3}')
status=0
n=0
for name in $ran; do
  n=$((n + 1))
  addr=$(printf '%s\n' "$syms" | awk -v n="$name" '$2 == n {print $1; exit}')
  if [ -z "$addr" ] || [ $((0x$addr)) -lt $start ] || [ $((0x$addr)) -ge $end ]; then
    echo "check-text-ran: $prog ran $name, which is not in .text.nh_first: list it in cmake/text-order.ld" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "check-text-ran: all $n functions $prog ran are in .text.nh_first"
exit $status
