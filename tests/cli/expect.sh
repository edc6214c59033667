#!/usr/bin/env bash
# tests/cli/expect.sh RC STDOUT_RE STDERR_RE [--json] -- COMMAND [ARGS...]
# Runs COMMAND; passes when it exits with RC, its stdout matches the extended
# regular expression STDOUT_RE and its stderr matches STDERR_RE (EMPTY: the
# stream must be empty; ANY: anything). --json: stdout must also be valid JSON.
set -uo pipefail
want_rc=$1 out_re=$2 err_re=$3
shift 3
json=0
[ "${1:-}" = --json ] && { json=1; shift; }
[ "${1:-}" = -- ] && shift
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$@" >"$out" 2>"$err"
rc=$?
ok=1
show() { echo "--- stdout:"; head -c 3000 "$out"; echo "--- stderr:"; head -c 3000 "$err"; }
match() { # match FILE RE
  case "$2" in
    ANY) return 0 ;;
    EMPTY) [ ! -s "$1" ] ;;
    *) grep -Eq -- "$2" "$1" ;;
  esac
}
[ "$rc" = "$want_rc" ] || { echo "exit status $rc, expected $want_rc"; ok=0; }
match "$out" "$out_re" || { echo "stdout does not match /$out_re/"; ok=0; }
match "$err" "$err_re" || { echo "stderr does not match /$err_re/"; ok=0; }
if [ $json = 1 ]; then
  PY=/usr/bin/python3
  [ -x "$PY" ] || PY=python3
  "$PY" -c 'import json, sys; json.load(open(sys.argv[1]))' "$out" || { echo "stdout is not JSON"; ok=0; }
fi
[ $ok = 1 ] || { echo "command: $*"; show; exit 1; }
echo "ok: $* (exit $rc)"
