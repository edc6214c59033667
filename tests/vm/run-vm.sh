#!/usr/bin/env bash
# tests/vm/run-vm.sh: runs one in-VM test under qemu on a multi-node layout.
#
#   run-vm.sh [options] LAYOUT TESTBIN [ARGS...]
#
# Boots the host's Debian kernel (/boot/vmlinuz-*) under qemu (TCG, no KVM)
# with the NUMA layout LAYOUT (see layouts.sh), runs
#   TESTBIN --layout LAYOUT --expect <layout expectations> ARGS...
# inside it and exits 0 only when the VM reports PASS. On failure it prints
# the layout, the test and the failed check (the first FAIL line).
#
# Options:
#   --bins A:B:...   more binaries to put into the image, so one cached image
#                    serves every test of a ctest run (TESTBIN is always in)
#   --libs A:B:...   shared libraries to put into /lib/x86_64-linux-gnu of the
#                    image with everything ldd finds for them (e.g. an
#                    allocator to preload)
#   --env NAME=VALUE the test runs with this in its environment (repeatable;
#                    e.g. LD_PRELOAD=/lib/x86_64-linux-gnu/libnumaheap.so)
#   --cache DIR      where images and serial logs go (default: $NHVM_CACHE or
#                    ${TMPDIR:-/tmp}/numaheap-vm)
#   --timeout SEC    wall-clock bound of the VM run (default: $NHVM_TIMEOUT or 120)
#   --list           prints the layout names and exits
# Environment: NHVM_KERNEL (kernel image, default the newest /boot/vmlinuz-*),
#   NHVM_QEMU (default qemu-system-x86_64), NHVM_VERBOSE=1 (show the whole
#   serial console; by default only the test's own lines are shown),
#   NHVM_APPEND (more kernel arguments, e.g. "loglevel=7" to see OOM reports).
#
# The image (busybox-static, the binaries, every shared library ldd finds for
# them, the dynamic loader and init.sh as /init) is built once and cached under
# a key made of the paths, sizes and mtimes of all those files; each run
# appends a tiny archive holding /nhvm-run (the command line) to it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/layouts.sh disable=SC1091
. "$here/layouts.sh"

die() { echo "run-vm.sh: $*" >&2; exit 2; }

bins=()
extra_libs=()
run_env=()
cache=${NHVM_CACHE:-${TMPDIR:-/tmp}/numaheap-vm}
timeout_s=${NHVM_TIMEOUT:-120}
while (($#)); do
  case $1 in
    --bins) [[ $# -ge 2 ]] || die "--bins needs a value"
            IFS=: read -r -a more <<< "$2"; bins+=("${more[@]}"); shift 2 ;;
    --libs) [[ $# -ge 2 ]] || die "--libs needs a value"
            IFS=: read -r -a more <<< "$2"; extra_libs+=("${more[@]}"); shift 2 ;;
    --env) [[ $# -ge 2 && $2 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env needs NAME=VALUE"
           run_env+=("$2"); shift 2 ;;
    --cache) [[ $# -ge 2 ]] || die "--cache needs a value"; cache=$2; shift 2 ;;
    --timeout) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "--timeout needs seconds"
               timeout_s=$2; shift 2 ;;
    --list) echo "$NHVM_LAYOUTS"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option '$1'" ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || die "usage: run-vm.sh [--bins A:B] [--libs A:B] [--env N=V] [--cache DIR] [--timeout SEC] LAYOUT TESTBIN [ARGS...]"
layout=$1 testbin=$2
shift 2
[[ " $NHVM_LAYOUTS " == *" $layout "* ]] || die "unknown layout '$layout' (known: $NHVM_LAYOUTS)"
[[ -x $testbin ]] || die "test binary '$testbin' is missing or not executable"
testname=$(basename "$testbin")
bins=("$testbin" "${bins[@]}")

# ---- tools -------------------------------------------------------------------
qemu=${NHVM_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || die "'$qemu' not found (apt-get install qemu-system-x86)"
busybox=$(command -v busybox || true)
[[ -n $busybox ]] || die "busybox not found (apt-get install busybox-static)"
ldd "$busybox" >/dev/null 2>&1 && die "$busybox is dynamically linked (apt-get install busybox-static)"
for tool in cpio gzip ldd timeout flock; do
  command -v "$tool" >/dev/null || die "'$tool' not found"
done
kernel=${NHVM_KERNEL:-$(printf '%s\n' /boot/vmlinuz-* | sort -V | tail -n 1)}
[[ -n $kernel && -r $kernel ]] || die "no readable kernel (apt-get install linux-image-amd64, or set NHVM_KERNEL)"

# ---- the cached base image ---------------------------------------------------
# libs_of FILE: the resolved paths of every shared library FILE needs, and the
# dynamic loader, one per line as "NAME PATH".
libs_of() {
  ldd "$1" | awk '
    $2 == "=>" && $3 ~ /^\// { print $1, $3; next }
    $2 == "=>" && $3 == "not" { print "MISSING", $1; next }
    $1 ~ /^\// { print "LOADER", $1 }'
}

declare -A libs=()
loader=""
for b in "${bins[@]}"; do
  [[ -x $b ]] || die "binary '$b' is missing or not executable"
  while read -r name path; do
    case $name in
      MISSING) die "ldd: $b needs $path, which is not found" ;;
      LOADER) loader=$path ;;
      *) libs[$name]=$path ;;
    esac
  done < <(libs_of "$b")
done
for l in "${extra_libs[@]}"; do
  [[ -f $l && -r $l ]] || die "library '$l' (--libs) is missing or not readable"
  libs[$(basename "$l")]=$l
  while read -r name path; do
    case $name in
      MISSING) die "ldd: $l needs $path, which is not found" ;;
      LOADER) loader=$path ;;
      *) libs[$name]=$path ;;
    esac
  done < <(libs_of "$l")
done
[[ -n $loader ]] || die "no dynamic loader found by ldd for ${bins[*]}"

files=("$busybox" "$here/init.sh" "$loader" "${bins[@]}" "${libs[@]}")
key=$(for f in "${files[@]}"; do stat -L -c '%n %s %Y' "$f"; done | md5sum | cut -c1-16)
mkdir -p "$cache"
base="$cache/base-$key.cpio.gz"

build_base() {
  local root b name
  root=$(mktemp -d "$cache/root.XXXXXX")
  mkdir -p "$root"/{bin,lib/x86_64-linux-gnu,lib64,proc,sys,dev,tmp}
  cp "$busybox" "$root/bin/busybox"
  cp "$here/init.sh" "$root/init"
  chmod 755 "$root/init"
  cp -L "$loader" "$root/lib64/$(basename "$loader")"
  for name in "${!libs[@]}"; do
    cp -L "${libs[$name]}" "$root/lib/x86_64-linux-gnu/$name"
  done
  for b in "${bins[@]}"; do
    cp -L "$b" "$root/bin/$(basename "$b")"
  done
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$base.tmp"
  mv "$base.tmp" "$base"
  rm -rf "$root"
}

(
  flock 9
  if [[ ! -s $base ]]; then
    rm -f "$cache"/base-*.cpio.gz
    build_base
  fi
) 9> "$cache/.lock"

# ---- this run's image: the base plus /nhvm-run ----------------------------------
# squote WORD: WORD in single quotes for /bin/sh.
squote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

expect=$("layout_expect_$layout")
run=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$run"' EXIT
{
  echo "NHVM_LAYOUT=$(squote "$layout")"
  echo "NHVM_TEST=$(squote "$testname")"
  printf 'set --'
  # busybox env puts --env's variables into the test's environment only.
  ((${#run_env[@]})) && printf ' env'
  for e in "${run_env[@]}"; do printf ' %s' "$(squote "$e")"; done
  printf ' %s --layout %s --expect %s' "$(squote "/bin/$testname")" \
    "$(squote "$layout")" "$(squote "$expect")"
  for a in "$@"; do printf ' %s' "$(squote "$a")"; done
  echo
} > "$run/nhvm-run"
(cd "$run" && echo nhvm-run | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$run/extra.cpio.gz"
cat "$base" "$run/extra.cpio.gz" > "$run/initrd.gz"

# ---- boot --------------------------------------------------------------------
log="$cache/log-$layout-$testname.txt"
read -r -a layout_args <<< "$("layout_qemu_$layout")"
# shellcheck disable=SC2054  # commas inside qemu option values
qemu_args=(-accel tcg,thread=multi -cpu max -nographic -no-reboot -nic none
  -kernel "$kernel" -initrd "$run/initrd.gz"
  -append "console=ttyS0 quiet panic=-1 numa_balancing=disable mitigations=off psi=1 ${NHVM_APPEND:-}"
  "${layout_args[@]}")
echo "run-vm.sh: $layout $testname (timeout ${timeout_s}s, log $log)"
[[ ${NHVM_VERBOSE:-0} == 1 ]] && echo "$qemu ${qemu_args[*]}"
start=$SECONDS
set +e
timeout --kill-after=5 "$timeout_s" "$qemu" "${qemu_args[@]}" < /dev/null 2>&1 \
  | sed -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' > "$log"
qrc=${PIPESTATUS[0]}
set -e
elapsed=$((SECONDS - start))

if [[ ${NHVM_VERBOSE:-0} == 1 ]]; then
  cat "$log"
else
  # The test's own lines: from NHVM-START on.
  sed -n -e '/NHVM-START/,$p' "$log" | sed -e '1s/.*NHVM-START/NHVM-START/' 
fi

# show_tail: the console's last lines, unless they were shown above.
show_tail() {
  if [[ ${NHVM_VERBOSE:-0} != 1 ]] && ! grep -q NHVM-START "$log"; then
    echo "last console lines (the test never started):"
    tail -n 15 "$log"
  fi
}

result=$(grep -m1 "^NHVM-RESULT $layout $testname " "$log" || true)
if [[ $result == "NHVM-RESULT $layout $testname PASS"* ]]; then
  echo "run-vm.sh: PASS $layout $testname in ${elapsed}s"
  exit 0
fi
if [[ -n $result ]]; then
  echo "run-vm.sh: FAIL layout=$layout test=$testname: ${result#"NHVM-RESULT $layout $testname FAIL "}"
elif ((qrc == 124 || qrc == 137)); then
  echo "run-vm.sh: FAIL layout=$layout test=$testname: no result within ${timeout_s}s (VM killed)"
  show_tail
else
  echo "run-vm.sh: FAIL layout=$layout test=$testname: VM ended (qemu status $qrc) without a result line"
  show_tail
fi
exit 1
