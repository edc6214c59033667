# tests/preload/lib.sh: shared by the real-program drivers (sourced).
# Each driver is called as: DRIVER NUMAHEAP_CLI LIBNUMAHEAP_SO
set -euo pipefail
NH_CLI=${1:?usage: $0 NUMAHEAP_CLI LIBNUMAHEAP_SO}
NH_LIB=${2:?usage: $0 NUMAHEAP_CLI LIBNUMAHEAP_SO}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Debian's interpreter, never a shim (pyenv and friends put scripts first in PATH).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nh-preload.XXXXXX")
cleanup_hooks=()
cleanup() {
  local h
  for h in "${cleanup_hooks[@]+"${cleanup_hooks[@]}"}"; do eval "$h" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
unset NUMAHEAP_CONFIG NUMAHEAP_STATS LD_PRELOAD

need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "missing program: $t (./quickstart test installs it)" >&2; exit 1; }
  done
}

# check_stats FILE MIN_ALLOCS [MIN_PROCESSES]
check_stats() { "$PY" "$HERE/check_stats.py" "$@"; }

fail() { echo "FAIL: $*" >&2; exit 1; }
