#!/usr/bin/env bash
# tests/sanitize.sh: the extra builds of the test suite (docs/reliability.md).
#
#   tests/sanitize.sh [stage...]     stages: asan tsan valgrind fuzz (default: all four)
#
#   asan      unit tests (ctest label "unit") built with -DNH_SANITIZE="address;undefined"
#   tsan      stress tests (label "stress") built with -DNH_SANITIZE=thread
#   valgrind  unit tests under valgrind memcheck, NUMAHEAP_CACHE_MODE=perthread
#   fuzz      the libFuzzer targets (clang), NH_FUZZ_SECONDS each (default 45)
#
# Each stage builds in its own folder, ${SAN_BUILD_ROOT:-build}-<stage>,
# prints a banner, and ends with one summary line:
#   == stage <name>: PASS|FAIL|SKIP (<seconds> s) <detail>
# The script runs every stage asked for and exits 1 if any failed.
# Environment: JOBS (default nproc), NH_FUZZ_SECONDS, NH_SOAK_SECONDS (soak
# length inside these stages; default 5), CC_FUZZ (default clang).
# shellcheck disable=SC2317 # the stage_* functions are called by name
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=${SAN_BUILD_ROOT:-build}
JOBS=${JOBS:-$(nproc)}
export NH_SOAK_SECONDS=${NH_SOAK_SECONDS:-5}
export NH_STRESS_OPS=${NH_STRESS_OPS:-25000} # test_stress per thread (its default: 100000)
export CMOCKA_MESSAGE_OUTPUT=stdout
failed=0
summary=()

banner() { printf '\n==================== stage %s: %s ====================\n' "$1" "$2"; }

# finish <stage> <status> <start seconds> <detail>
finish() {
  local line
  line=$(printf '== stage %s: %s (%d s) %s' "$1" "$2" $((SECONDS - $3)) "$4")
  echo "$line"
  summary+=("$line")
  [ "$2" = FAIL ] && failed=1
  return 0
}

# configure <dir> <cmake args...>: a Debug-info build of the test suite.
configure() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNH_BUILD_TESTS=ON -DNH_WERROR=ON \
    -DNH_BUILD_BENCH=OFF "$@" >"$dir.configure.log" 2>&1 ||
    { tail -20 "$dir.configure.log"; return 1; }
}

# tests_of <dir> <ctest label>: the test names with that label.
tests_of() {
  (cd "$1" && ctest -N -L "$2" | sed -n 's/^ *Test *#[0-9]*: //p')
}

# build_tests <dir> <label>: builds only the programs of the labelled tests.
build_tests() {
  local targets
  targets=$(tests_of "$1" "$2")
  [ -n "$targets" ] || { echo "no tests labelled $2"; return 1; }
  # shellcheck disable=SC2086 # one target per word
  cmake --build "$1" -j "$JOBS" --target $targets >"$1.build.log" 2>&1 ||
    { grep -E 'error|Error' "$1.build.log" | head -30; return 1; }
}

# count <ctest log>: "N tests, M failed"
count() {
  sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\)/\2 tests, \1 failed/p' "$1" | tail -1
}

stage_asan() {
  local t0=$SECONDS dir=$ROOT-asan
  banner asan "unit tests with AddressSanitizer + UndefinedBehaviorSanitizer"
  if ! configure "$dir" -DNH_SANITIZE="address;undefined" || ! build_tests "$dir" unit; then
    finish asan FAIL "$t0" "configure or build failed"
    return
  fi
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd "$dir" && ctest -L unit --output-on-failure -j "$JOBS" --timeout 600) | tee "$dir.ctest.log"
  local rc=${PIPESTATUS[0]}
  unset ASAN_OPTIONS UBSAN_OPTIONS
  finish asan "$([ "$rc" = 0 ] && echo PASS || echo FAIL)" "$t0" "$(count "$dir.ctest.log")"
}

# TSan maps its shadow at fixed addresses; with the 28+ bits of mmap
# randomisation of recent kernels it may find them taken ("unexpected memory
# mapping"). Running without randomisation (setarch -R) avoids that.
tsan_runner() {
  if setarch "$(uname -m)" -R true 2>/dev/null; then echo "setarch $(uname -m) -R"; fi
}

stage_tsan() {
  local t0=$SECONDS dir=$ROOT-tsan
  banner tsan "stress tests with ThreadSanitizer"
  # Without -Werror: gcc warns (-Wtsan) that TSan does not model
  # atomic_thread_fence, which api/host_virtual.c uses; the stress tests do not
  # reach that file.
  if ! configure "$dir" -DNH_SANITIZE=thread -DNH_WERROR=OFF || ! build_tests "$dir" stress; then
    finish tsan FAIL "$t0" "configure or build failed"
    return
  fi
  local run
  run=$(tsan_runner)
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
  export NH_STRESS_OPS=${NH_STRESS_OPS_TSAN:-8000} # TSan makes the pattern writes ~20x slower
  # shellcheck disable=SC2086 # the runner is a command and its arguments
  (cd "$dir" && $run ctest -L stress --output-on-failure -j "$JOBS" --timeout 900) | tee "$dir.ctest.log"
  local rc=${PIPESTATUS[0]}
  unset TSAN_OPTIONS
  finish tsan "$([ "$rc" = 0 ] && echo PASS || echo FAIL)" "$t0" "$(count "$dir.ctest.log")${run:+ (under $run)}"
}

# Valgrind runs the unit tests except the stress tests (TSan covers those;
# under memcheck they take minutes): measured on 2 cores, see docs/reliability.md.
VALGRIND_EXCLUDE=${VALGRIND_EXCLUDE:-stress|soak}

stage_valgrind() {
  local t0=$SECONDS dir=$ROOT-valgrind
  banner valgrind "unit tests under valgrind memcheck, cache mode perthread"
  if ! command -v valgrind >/dev/null; then
    finish valgrind SKIP "$t0" "valgrind is not installed"
    return
  fi
  if ! configure "$dir" || ! build_tests "$dir" unit; then
    finish valgrind FAIL "$t0" "configure or build failed"
    return
  fi
  # --fair-sched=yes: Valgrind runs one thread at a time, and its default
  # lock lets a spinning thread keep it; test_hostmem's query thread then
  # starved (test_hostmem took 46 s in one CI run and 697 s in another,
  # against the 900 s timeout).
  local vg="valgrind --tool=memcheck --error-exitcode=1 --quiet --trace-children=no --fair-sched=yes"
  vg="$vg --child-silent-after-fork=yes --suppressions=$PWD/tests/valgrind.supp"
  local names rc=0 n=0 bad="" data=$PWD/tests/data
  names=$(tests_of "$dir" unit | grep -Ev "$VALGRIND_EXCLUDE")
  for t in $names; do
    n=$((n + 1))
    local exe
    exe=$(find "$dir/tests" -maxdepth 2 -type f -name "$t" -perm -u+x | head -1)
    [ -n "$exe" ] || continue
    local t1=$SECONDS
    # shellcheck disable=SC2086 # $vg is a command with arguments
    if ! (cd "$(dirname "$exe")" && NUMAHEAP_CACHE_MODE=perthread \
      NUMAHEAP_TEST_DATA="$data" timeout 900 $vg "./$t") >"$dir.$t.log" 2>&1; then
      rc=1
      bad="$bad $t"
      tail -40 "$dir.$t.log"
    fi
    echo "-- valgrind $t: $(case " $bad " in *" $t "*) echo FAIL ;; *) echo ok ;; esac) ($((SECONDS - t1)) s)"
  done
  finish valgrind "$([ "$rc" = 0 ] && echo PASS || echo FAIL)" "$t0" "$n tests${bad:+, failed:$bad}"
}

stage_fuzz() {
  local t0=$SECONDS dir=$ROOT-fuzz cc=${CC_FUZZ:-clang}
  banner fuzz "libFuzzer targets, ${NH_FUZZ_SECONDS:-45} s each"
  if ! command -v "$cc" >/dev/null; then
    finish fuzz SKIP "$t0" "$cc is not installed"
    return
  fi
  if ! CC=$cc configure "$dir" -DNH_FUZZ_SECONDS="${NH_FUZZ_SECONDS:-45}" -DNH_WERROR=OFF; then
    finish fuzz FAIL "$t0" "configure failed"
    return
  fi
  if ! grep -q "NH_HAVE_LIBFUZZER:INTERNAL=1" "$dir/CMakeCache.txt"; then
    finish fuzz SKIP "$t0" "$cc cannot link -fsanitize=fuzzer (install libclang-rt-14-dev)"
    return
  fi
  build_tests "$dir" fuzz || { finish fuzz FAIL "$t0" "configure or build failed"; return; }
  (cd "$dir" && ctest -L fuzz -V -j "$JOBS") >"$dir.ctest.log" 2>&1
  local rc=$?
  grep -E 'Done [0-9]+ runs|stat::number_of_executed_units|SUMMARY|ERROR|fuzz_(alloc|config):' \
    "$dir.ctest.log" | sed 's/^[0-9]*: //' | head -40
  local execs
  execs=$(awk '/stat::number_of_executed_units:/ { n += $NF } END { print n + 0 }' "$dir.ctest.log")
  echo "figures: test=fuzz executions=${execs:-0}"
  finish fuzz "$([ "$rc" = 0 ] && echo PASS || echo FAIL)" "$t0" "$(count "$dir.ctest.log"), ${execs:-0} executions"
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(asan tsan valgrind fuzz)
for s in "${stages[@]}"; do
  case "$s" in
    asan | tsan | valgrind | fuzz) "stage_$s" ;;
    *) echo "usage: $0 [asan|tsan|valgrind|fuzz]..." >&2; exit 2 ;;
  esac
done
printf '\n==================== extra builds: summary ====================\n'
printf '%s\n' "${summary[@]}"
exit $failed
