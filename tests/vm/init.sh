#!/bin/busybox sh
# shellcheck shell=dash disable=SC1091
# /init of the test VM (tests/vm/run-vm.sh copies this file into the
# initramfs). It mounts the kernel file systems, runs the command that
# /nhvm-run (a per-run archive appended to the image) puts in "$@", prints one
#   NHVM-RESULT <layout> <test> PASS|FAIL <detail>
# line and powers the VM off. If anything here goes wrong the kernel panics
# (init exits) and qemu -no-reboot ends; the host then finds no result line.
#
# NHVM-INIT comes first: the kernel is booted with "quiet" and prints nothing
# on a normal boot, so this line is how run-vm.sh knows the kernel started
# (no NHVM-INIT within NHVM_BOOT_TIMEOUT: a hung boot, retried).
echo
echo NHVM-INIT
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu

. /nhvm-run
echo
echo "NHVM-START $NHVM_LAYOUT $NHVM_TEST: $*"
{ "$@"; echo "$?" > /tmp/rc; } 2>&1 | tee /tmp/out
rc=$(cat /tmp/rc 2>/dev/null || echo unknown)

fail=$(grep -m1 '^FAIL' /tmp/out | sed 's/^FAIL //')
if [ "$rc" = 0 ] && [ -z "$fail" ]; then
  echo "NHVM-RESULT $NHVM_LAYOUT $NHVM_TEST PASS $(grep -c '^ok' /tmp/out) checks"
else
  if [ -z "$fail" ]; then
    case "$rc" in
      ''|*[!0-9]*) fail="no exit status" ;;
      *) if [ "$rc" -gt 128 ]; then fail="killed by signal $((rc - 128))";
         else fail="exit status $rc"; fi ;;
    esac
    fail="$fail; last output: $(tail -n 1 /tmp/out)"
  fi
  echo "NHVM-RESULT $NHVM_LAYOUT $NHVM_TEST FAIL $fail"
fi
poweroff -f
sleep 30
