#!/usr/bin/env bash
# tests/vm/test-boot-retry.sh: run-vm.sh boots a VM again when its boot hangs
# before the kernel starts, and only then (docs/vm-tests.md, "Hung boots").
#
#   test-boot-retry.sh hang|fail RUN-VM.SH [OPTIONS] LAYOUT TESTBIN [ARGS...]
#
# hang: the first boot hangs in the firmware (NHVM_TEST_HANG_BOOTS=1: no
#       kernel, SeaBIOS ends at "No bootable device."). run-vm.sh must kill it
#       after the boot window (NHVM_BOOT_TIMEOUT, 40 s unless set: the window
#       must hold the real boot that follows too, 7 s here on a quiet machine,
#       up to 24 s on a loaded one), say so with "(attempt 1/3); retrying",
#       boot again and PASS.
# fail: the test starts and fails (the caller gives TESTBIN an argument it
#       rejects). run-vm.sh must report that FAIL and exit 1 after one boot,
#       with no retry.
set -euo pipefail

die() { echo "test-boot-retry.sh: FAIL: $*" >&2; exit 1; }

[[ $# -ge 3 && ($1 == hang || $1 == fail) ]] || {
  echo "usage: test-boot-retry.sh hang|fail RUN-VM.SH [OPTIONS] LAYOUT TESTBIN [ARGS...]" >&2
  exit 2
}
mode=$1
shift
export NHVM_BOOT_RETRIES=2
if [[ $mode == hang ]]; then
  export NHVM_TEST_HANG_BOOTS=1 NHVM_BOOT_TIMEOUT=${NHVM_BOOT_TIMEOUT:-40}
else
  export NHVM_TEST_HANG_BOOTS=0
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
"$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e

hung_re='^run-vm\.sh: boot of [[:alnum:]]+ hung before the kernel started \(attempt [0-9]+/[0-9]+\)'
boots=$(grep -c '^run-vm\.sh: boot of .* hung before' "$out" || true)
starts=$(grep -c 'NHVM-START' "$out" || true)
if [[ $mode == hang ]]; then
  ((rc == 0)) || die "run-vm.sh exited with $rc, wanted 0 (PASS after a retry)"
  grep -Eq "$hung_re; retrying\$" "$out" || die "no retry line"
  first=$(grep -E -m1 "$hung_re" "$out")
  [[ $first == *"(attempt 1/3); retrying" ]] || die "the first retry line is not attempt 1/3: $first"
  grep -q "no NHVM-INIT from init.sh within ${NHVM_BOOT_TIMEOUT}s; last console line: No bootable device\." "$out" ||
    die "the hung boot was not the firmware's (no 'No bootable device.' as its last line)"
  grep -Eq '^run-vm\.sh: PASS .*; boot [2-3] of 3, [0-9]+s in all\)$' "$out" ||
    die "no PASS line from a later boot"
  ((starts == 1)) || die "the test started $starts times, wanted 1"
  # More than one hung boot means a real boot took longer than the window
  # (a loaded machine): the retry still did its job, but say so.
  ((boots == 1)) || echo "test-boot-retry.sh: note: $boots boots counted as hung (window ${NHVM_BOOT_TIMEOUT}s)"
  echo "test-boot-retry.sh: ok: the hung boot was retried and the test passed"
else
  ((rc == 1)) || die "run-vm.sh exited with $rc, wanted 1 (the test's FAIL)"
  grep -q '^run-vm\.sh: FAIL layout=' "$out" || die "no FAIL line"
  ((boots == 0)) || die "a boot was counted as hung"
  ((starts == 1)) || die "the test started $starts times, wanted 1 (no retry after the start)"
  echo "test-boot-retry.sh: ok: the failed test was reported after one boot, not retried"
fi
