#!/bin/sh
# percpu/check-fastpath.sh LIBRARY: checks that the fast paths of a built
# numaheap library (malloc and free with their restartable sequences inline,
# the native nh_malloc/nh_free, and the cache layer's entry points) hold no
# lock-prefixed instruction, no xchg/cmpxchg on memory, no system call, and
# call (or tail-call) nothing but their slow paths; prints each one's
# instruction count (padding nops left out) and fails when it grows past its
# ceiling (golden counts: docs/percpu.md).
set -eu
lib=${1:?usage: check-fastpath.sh libnumaheap.so}
command -v objdump >/dev/null || { echo "check-fastpath: objdump not found" >&2; exit 1; }
[ -r "$lib" ] || { echo "check-fastpath: cannot read $lib" >&2; exit 1; }

# function  ceiling  allowed call/jump targets outside the function
checks="malloc 52 malloc_full
free 88 nh_free_named_slow|nh_cache_free_slow
nh_malloc 52 malloc_full
nh_free 96 nh_free_named_slow|nh_free_checked_slow|nh_cache_free_slow|nh_bad_free
nh_cache_alloc 44 nh_pc_alloc_slow|nh_tc_alloc
nh_cache_free 40 nh_pc_free_slow|nh_tc_free"

status=0
echo "$checks" | while read -r fn ceiling allowed; do
  body=$(objdump -d --no-show-raw-insn --disassemble="$fn" "$lib" | sed -n "/^[0-9a-f]* <$fn>:/,/^\$/p" |
    grep -E '^ +[0-9a-f]+:' | grep -v -E '\bnop|xchg +%ax,%ax' || true)
  if [ -z "$body" ]; then
    echo "check-fastpath: $fn not found in $lib" >&2
    exit 1
  fi
  count=$(printf '%s\n' "$body" | wc -l)
  bad=$(printf '%s\n' "$body" | grep -E '\block\b|xchg|syscall|sysenter|int +\$?0x80' || true)
  calls=$(printf '%s\n' "$body" | grep -E '\b(call|jmp)[a-z]* +[0-9a-f]+ <' |
    sed -E 's/.*<([^>+]*)(\+0x[0-9a-f]+)?>.*/\1/' | grep -v -x -E "$fn|$allowed" || true)
  indirect=$(printf '%s\n' "$body" | grep -E '\b(call|jmp)[a-z]* +\*' || true)
  echo "$fn: $count instructions (ceiling $ceiling)"
  if [ -n "$bad" ]; then echo "check-fastpath: $fn has atomics or system calls:"; echo "$bad"; exit 1; fi
  if [ -n "$calls" ]; then echo "check-fastpath: $fn calls: $calls"; exit 1; fi
  if [ -n "$indirect" ]; then echo "check-fastpath: $fn has indirect calls:"; echo "$indirect"; exit 1; fi
  if [ "$count" -gt "$ceiling" ]; then echo "check-fastpath: $fn grew past $ceiling"; exit 1; fi
done || status=1
exit $status
