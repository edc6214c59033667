#!/usr/bin/env bash
# tests/downstream/run.sh BUILD_DIR C_COMPILER
# Installs the built numaheap into a temporary prefix, then uses it as a user
# would: (1) a CMake project with find_package(numaheap) linking the shared
# and the static library; (2) a C file compiled with
# `pkg-config --cflags --libs numaheap`; (3) the installed `numaheap` command
# finding the installed library for `run`. Each program must run and print
# "downstream ok".
set -euo pipefail
BUILD=${1:?usage: run.sh BUILD_DIR C_COMPILER}
CC=${2:?usage: run.sh BUILD_DIR C_COMPILER}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nh-downstream.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
unset LD_PRELOAD NUMAHEAP_CONFIG NUMAHEAP_STATS
PREFIX=$WORK/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" || { cat "$WORK/install.log" >&2; fail "cmake --install"; }
libdir=$(dirname "$(find "$PREFIX" -name libnumaheap.so -print -quit)")
[ -d "$libdir" ] || fail "no libnumaheap.so under $PREFIX"
[ -f "$PREFIX/include/numaheap/numaheap.h" ] || fail "numaheap.h not installed"

echo "== find_package(numaheap)"
cmake -S "$HERE/project" -B "$WORK/build" -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" \
  >"$WORK/configure.log" 2>&1 || { cat "$WORK/configure.log" >&2; fail "configuring the downstream project"; }
cmake --build "$WORK/build" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "building the downstream project"; }
# the shared one finds libnumaheap.so through the RUNPATH CMake gives build trees
"$WORK/build/use_shared" | tee "$WORK/out1"
grep -q "^downstream ok" "$WORK/out1" || fail "use_shared"
"$WORK/build/use_static" | tee "$WORK/out2"
grep -q "^downstream ok" "$WORK/out2" || fail "use_static"
if ldd "$WORK/build/use_static" | grep -q libnumaheap; then fail "use_static links libnumaheap.so"; fi

echo "== pkg-config numaheap"
export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs numaheap) || fail "pkg-config does not know numaheap"
echo "pkg-config --cflags --libs numaheap: $flags"
# shellcheck disable=SC2086  # the flags are words
"$CC" -std=gnu11 -Wall -Werror -o "$WORK/pc_prog" "$HERE/project/main.c" $flags || fail "compiling with pkg-config's flags"
LD_LIBRARY_PATH=$libdir "$WORK/pc_prog" | tee "$WORK/out3"
grep -q "^downstream ok" "$WORK/out3" || fail "the pkg-config program"
static_flags=$(pkg-config --static --cflags --libs numaheap)
# shellcheck disable=SC2086
"$CC" -std=gnu11 -o "$WORK/pc_static" "$HERE/project/main.c" -Wl,-Bstatic -lnumaheap -Wl,-Bdynamic \
  $(echo "$static_flags" | sed 's/-lnumaheap//') || fail "static link with pkg-config --static's flags"
"$WORK/pc_static" | grep -q "^downstream ok" || fail "the statically linked pkg-config program"

echo "== installed numaheap command"
if [ -x "$PREFIX/bin/numaheap" ]; then
  "$PREFIX/bin/numaheap" --version | grep -q "^numaheap " || fail "numaheap --version"
  NUMAHEAP_LIB= "$PREFIX/bin/numaheap" run --stats=json -- ls / >/dev/null 2>"$WORK/stats" || fail "installed numaheap run"
  grep -q '"version":' "$WORK/stats" || fail "installed numaheap run printed no statistics"
  if [ -f "$PREFIX/share/man/man1/numaheap.1" ]; then echo "man page installed"; else fail "man page not installed"; fi
fi
echo "downstream: all checks passed"
