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
#   --timeout SEC    wall-clock bound of one VM run (default: $NHVM_TIMEOUT or 120)
#   --list           prints the layout names and exits
# Environment: NHVM_KERNEL (kernel image, default the newest /boot/vmlinuz-*),
#   NHVM_QEMU (default qemu-system-x86_64), NHVM_VERBOSE=1 (show the whole
#   serial console; by default only the test's own lines are shown),
#   NHVM_APPEND (more kernel arguments, e.g. "loglevel=7" to see OOM reports),
#   NHVM_BOOT_TIMEOUT (default 60) and NHVM_BOOT_RETRIES (default 2): a boot
#   whose console shows no NHVM-INIT (init.sh's first line) within
#   NHVM_BOOT_TIMEOUT seconds hung before the kernel started; that qemu is
#   killed and the VM booted again, at most NHVM_BOOT_RETRIES times. A VM
#   that got to init is never booted again, whatever its test did. The whole
#   run takes at most NHVM_BOOT_RETRIES * (NHVM_BOOT_TIMEOUT + 6) + the
#   timeout + 5 seconds (each hung qemu gets 5 s after SIGTERM).
#   NHVM_TEST_HANG_BOOTS=N (tests only): the first N boots hang in the
#   firmware (no kernel given), to see the retry work.
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
# A boot can hang before the kernel starts: once in CI the console showed
# SeaBIOS's "Booting from ROM..." and nothing more until the timeout, and the
# same test passed on a rerun. init.sh prints NHVM-INIT first thing (the
# kernel, booted "quiet", prints nothing before it), so a console without it
# after NHVM_BOOT_TIMEOUT seconds is such a hang: that qemu is killed and the
# VM booted again, at most NHVM_BOOT_RETRIES times. Once NHVM-INIT is seen
# there is no retry: a test that started and then failed, crashed or timed
# out is reported as it is. Nor is a qemu that ended by itself before
# NHVM-INIT retried (a bad option or a kernel panic says something).
log="$cache/log-$layout-$testname.txt"
read -r -a layout_args <<< "$("layout_qemu_$layout")"
# shellcheck disable=SC2054  # commas inside qemu option values
machine_args=(-accel tcg,thread=multi -cpu max -nographic -no-reboot -nic none
  "${layout_args[@]}")
kernel_args=(-kernel "$kernel" -initrd "$run/initrd.gz"
  -append "console=ttyS0 quiet panic=-1 numa_balancing=disable mitigations=off psi=1 ${NHVM_APPEND:-}")
boot_timeout=${NHVM_BOOT_TIMEOUT:-60}
boot_retries=${NHVM_BOOT_RETRIES:-2}
hang_boots=${NHVM_TEST_HANG_BOOTS:-0}
[[ $boot_timeout =~ ^[1-9][0-9]*$ ]] || die "NHVM_BOOT_TIMEOUT '$boot_timeout' is not a number of seconds (at least 1)"
[[ $boot_retries =~ ^[0-9]+$ ]] || die "NHVM_BOOT_RETRIES '$boot_retries' is not a number"
[[ $hang_boots =~ ^[0-9]+$ ]] || die "NHVM_TEST_HANG_BOOTS '$hang_boots' is not a number"
attempts=$((boot_retries + 1))
verbose=${NHVM_VERBOSE:-0}

# clean_console: the raw serial console on stdin without CRs and escapes.
clean_console() { sed -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g'; }

# now_us: microseconds of wall-clock time; tenths US: US as seconds, "7.4".
now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }
tenths() { printf '%d.%d' $(($1 / 1000000)) $(($1 / 100000 % 10)); }

# The VM's timeout process while one runs, killed (with its qemu) if we end.
vm=""
trap '{ [[ -z $vm ]] || kill "$vm" 2>/dev/null || true; }; rm -rf "$run"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

echo "run-vm.sh: $layout $testname (timeout ${timeout_s}s, boot window ${boot_timeout}s, $boot_retries retries, log $log)"
rm -f "${log%.txt}"-hung*.txt
start=$SECONDS
for ((attempt = 1; ; attempt++)); do
  qemu_args=("${machine_args[@]}" "${kernel_args[@]}")
  # NHVM_TEST_HANG_BOOTS=N: the first N boots have no kernel, so SeaBIOS
  # prints "No bootable device." and waits forever: a boot that hangs in the
  # firmware, for the retry's own test (vm.2node.boot_retry).
  ((attempt <= hang_boots)) && qemu_args=("${machine_args[@]}")
  [[ $verbose == 1 ]] && echo "$qemu ${qemu_args[*]}"
  attempt_start=$SECONDS attempt_us=$(now_us)
  # qemu writes the console unbuffered to a file, which is watched for NHVM-INIT.
  timeout --kill-after=5 "$timeout_s" "$qemu" "${qemu_args[@]}" < /dev/null > "$run/console" 2>&1 &
  vm=$!
  hung=0 boot_s=""
  while :; do
    ended=0
    kill -0 "$vm" 2>/dev/null || ended=1
    if grep -aq NHVM-INIT "$run/console"; then
      boot_s=$(tenths $(($(now_us) - attempt_us)))
      break
    fi
    ((ended)) && break
    if (($(now_us) - attempt_us >= boot_timeout * 1000000)); then
      hung=1
      last=$(clean_console < "$run/console" | grep -a . | tail -n 1 || echo '(none)')
      kill -TERM "$vm" 2>/dev/null   # timeout passes it on to qemu (SIGKILL 5 s later)
      break
    fi
    sleep 0.5
  done
  set +e
  wait "$vm"
  qrc=$?
  set -e
  vm=""
  clean_console < "$run/console" > "$log"
  ((hung)) || break

  hung_log="${log%.txt}-hung$attempt.txt"
  mv "$log" "$hung_log"
  [[ $verbose == 1 ]] && cat "$hung_log"
  if ((attempt < attempts)); then
    echo "run-vm.sh: boot of $layout hung before the kernel started (attempt $attempt/$attempts); retrying"
  else
    echo "run-vm.sh: boot of $layout hung before the kernel started (attempt $attempt/$attempts)"
  fi
  echo "run-vm.sh:   no NHVM-INIT from init.sh within ${boot_timeout}s; last console line: $last (console in $hung_log)"
  if ((attempt >= attempts)); then
    echo "run-vm.sh: FAIL layout=$layout test=$testname: every boot ($attempts of $attempts) hung before the kernel started"
    exit 1
  fi
done
elapsed=$((SECONDS - attempt_start))
# How long the boot took to NHVM-INIT (to the 0.5 s of the polling), for
# choosing NHVM_BOOT_TIMEOUT.
how=" (init up after ${boot_s:-?}s"
((attempt > 1)) && how+="; boot $attempt of $attempts, $((SECONDS - start))s in all"
how+=")"

if [[ $verbose == 1 ]]; then
  cat "$log"
else
  # The test's own lines: from NHVM-START on.
  sed -n -e '/NHVM-START/,$p' "$log" | sed -e '1s/.*NHVM-START/NHVM-START/'
fi

# show_tail: the console's last lines, unless they were shown above.
show_tail() {
  if [[ $verbose != 1 ]] && ! grep -q NHVM-START "$log"; then
    if grep -q NHVM-INIT "$log"; then
      echo "last console lines (the test never started):"
    else
      echo "last console lines (init never started):"
    fi
    tail -n 15 "$log"
  fi
}

result=$(grep -m1 "^NHVM-RESULT $layout $testname " "$log" || true)
if [[ $result == "NHVM-RESULT $layout $testname PASS"* ]]; then
  echo "run-vm.sh: PASS $layout $testname in ${elapsed}s$how"
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
