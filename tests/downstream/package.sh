#!/usr/bin/env bash
# tests/downstream/package.sh SOURCE_DIR C_COMPILER: the Debian packages.
# Configures the source for /usr (Release, no tests), builds it, makes the
# three packages with `cpack -G DEB`, then checks:
#   1. their names, versions and dependencies (dpkg-deb -f), and their contents
#      (dpkg-deb -c): each file in the package it belongs to, nothing else;
#   2. that apt would install all three on this system (apt-get --simulate:
#      every dependency resolves on Debian 12);
#   3. an install into a scratch root (dpkg --root, its own database; the
#      system's packages are not in it, hence --force-depends), a downstream
#      build against it (find_package and pkg-config, tests/downstream/project),
#      the installed command and manual page, then dpkg --purge of all three
#      leaves no file behind.
set -euo pipefail
SRC=${1:?usage: package.sh SOURCE_DIR C_COMPILER}
CC=${2:?usage: package.sh SOURCE_DIR C_COMPILER}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nh-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
unset LD_PRELOAD NUMAHEAP_CONFIG NUMAHEAP_STATS
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found"
command -v dpkg-shlibdeps >/dev/null || fail "dpkg-shlibdeps not found (apt-get install dpkg-dev)"

echo "== build for /usr and cpack -G DEB"
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DNH_BUILD_TESTS=OFF -DNH_BUILD_BENCH=OFF -DCMAKE_C_COMPILER="$CC" >"$WORK/log" 2>&1 \
  || { cat "$WORK/log"; fail "configure"; }
cmake --build "$WORK/build" -j "${JOBS:-2}" >>"$WORK/log" 2>&1 || { tail -30 "$WORK/log"; fail "build"; }
(cd "$WORK/build" && cpack -G DEB) >>"$WORK/log" 2>&1 || { tail -30 "$WORK/log"; fail "cpack"; }
ver=$(sed -n 's/^project(numaheap VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
arch=$(dpkg --print-architecture)
multi=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for p in libnumaheap0 libnumaheap-dev numaheap; do
  deb=$WORK/build/${p}_${ver}-1_${arch}.deb
  [ -f "$deb" ] || fail "no $deb (made: $(ls "$WORK/build"/*.deb 2>/dev/null))"
  [ "$(dpkg-deb -f "$deb" Package)" = "$p" ] || fail "$deb: Package is not $p"
  echo "$p: Depends: $(dpkg-deb -f "$deb" Depends)"
  dpkg-deb -c "$deb" >"$WORK/$p.list"
  awk '{print $6}' "$WORK/$p.list" | sed 's|^\./|/|' | grep -v '/$' | sort >"$WORK/$p.files"
  echo "$p: $(wc -l <"$WORK/$p.files") files"
done
DEB=$WORK/build

echo "== contents (dpkg-deb -c)"
has() { grep -qx -- "$2" "$WORK/$1.files" || { cat "$WORK/$1.files"; fail "$1 lacks $2"; }; }
hasnt() { if grep -q -- "$2" "$WORK/$1.files"; then fail "$1 holds $2"; fi; }
has libnumaheap0 "/usr/lib/$multi/libnumaheap.so.0"
has libnumaheap0 "/usr/lib/$multi/libnumaheap.so.$ver"
hasnt libnumaheap0 "include/"
hasnt libnumaheap0 "libnumaheap.so\$"
hasnt libnumaheap0 "libnumaheap.a"
has libnumaheap-dev "/usr/include/numaheap/numaheap.h"
has libnumaheap-dev "/usr/include/numaheap/hostmem.h"
has libnumaheap-dev "/usr/lib/$multi/libnumaheap.so"
has libnumaheap-dev "/usr/lib/$multi/libnumaheap.a"
has libnumaheap-dev "/usr/lib/$multi/pkgconfig/numaheap.pc"
has libnumaheap-dev "/usr/lib/$multi/cmake/numaheap/numaheapConfig.cmake"
has libnumaheap-dev "/usr/lib/$multi/cmake/numaheap/numaheapConfigVersion.cmake"
has libnumaheap-dev "/usr/lib/$multi/cmake/numaheap/numaheapTargets.cmake"
hasnt libnumaheap-dev "libnumaheap.so.0"
has numaheap "/usr/bin/numaheap"
has numaheap "/usr/share/man/man1/numaheap.1"
hasnt numaheap "/usr/lib/"
dpkg-deb -f "$DEB/libnumaheap0_${ver}-1_${arch}.deb" Depends | grep -q libhwloc15 || fail "libnumaheap0 does not depend on libhwloc15"
dpkg-deb -f "$DEB/libnumaheap-dev_${ver}-1_${arch}.deb" Depends | grep -q "libnumaheap0 (= $ver-1)" || fail "libnumaheap-dev does not depend on libnumaheap0 (= $ver-1)"
dpkg-deb -f "$DEB/numaheap_${ver}-1_${arch}.deb" Depends | grep -q "libnumaheap0 (= $ver-1)" || fail "numaheap does not depend on libnumaheap0 (= $ver-1)"
grep -q '^-rwxr-xr-x root/root .* ./usr/bin/numaheap$' "$WORK/numaheap.list" || fail "/usr/bin/numaheap is not root-owned 0755"

echo "== apt-get --simulate install (dependencies resolve on this system)"
if command -v apt-get >/dev/null; then
  apt-get install --simulate --no-install-recommends "$DEB"/*.deb >"$WORK/apt.log" 2>&1 \
    || { cat "$WORK/apt.log"; fail "apt-get would not install the packages"; }
  grep -E "^Inst (libnumaheap0|libnumaheap-dev|numaheap) " "$WORK/apt.log" | sort
  [ "$(grep -cE '^Inst (libnumaheap0|libnumaheap-dev|numaheap) ' "$WORK/apt.log")" = 3 ] \
    || { cat "$WORK/apt.log"; fail "apt-get would not install all three"; }
fi

echo "== dpkg -i into a scratch root, a downstream build against it, dpkg --purge"
ROOT=$WORK/root
mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates" "$ROOT/usr"
touch "$ROOT/var/lib/dpkg/status" "$ROOT/var/lib/dpkg/available"
D=(dpkg --root="$ROOT" --admindir="$ROOT/var/lib/dpkg" --force-not-root --force-depends
   --force-script-chrootless --log=/dev/null)
"${D[@]}" -i "$DEB"/*.deb >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; fail "dpkg -i"; }
for p in libnumaheap0 libnumaheap-dev numaheap; do
  "${D[@]}" -s "$p" 2>/dev/null | grep -q "^Status: install ok installed" || fail "$p is not installed"
done
PREFIX=$ROOT/usr
cmake -S "$SRC/tests/downstream/project" -B "$WORK/ds" -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_C_COMPILER="$CC" >"$WORK/ds.log" 2>&1 || { cat "$WORK/ds.log"; fail "find_package(numaheap) in the installed package"; }
grep -q "$PREFIX/lib/$multi/cmake/numaheap" "$WORK/ds/CMakeCache.txt" || fail "find_package did not take the package's numaheapConfig.cmake"
cmake --build "$WORK/ds" >>"$WORK/ds.log" 2>&1 || { cat "$WORK/ds.log"; fail "downstream build"; }
LD_LIBRARY_PATH=$PREFIX/lib/$multi "$WORK/ds/use_shared" | grep -q "^downstream ok" || fail "use_shared"
"$WORK/ds/use_static" | grep -q "^downstream ok" || fail "use_static"
export PKG_CONFIG_PATH=$PREFIX/lib/$multi/pkgconfig
flags=$(pkg-config --cflags --libs numaheap) || fail "pkg-config does not know numaheap"
echo "pkg-config --cflags --libs numaheap: $flags"
# shellcheck disable=SC2086
"$CC" -std=gnu11 -Wall -Werror -o "$WORK/pc_prog" "$SRC/tests/downstream/project/main.c" $flags || fail "pkg-config build"
LD_LIBRARY_PATH=$PREFIX/lib/$multi "$WORK/pc_prog" | grep -q "^downstream ok" || fail "the pkg-config program"
"$PREFIX/bin/numaheap" --version | grep -q "^numaheap $ver$" || fail "the installed numaheap --version"
LD_LIBRARY_PATH=$PREFIX/lib/$multi "$PREFIX/bin/numaheap" run --stats=json -- ls / >/dev/null 2>"$WORK/stats" \
  || { cat "$WORK/stats"; fail "the installed numaheap run (libnumaheap.so.0 from libnumaheap0 alone)"; }
grep -q '"version":' "$WORK/stats" || fail "numaheap run printed no statistics"
MANPATH=$PREFIX/share/man man -w numaheap 2>/dev/null | grep -q "$PREFIX/share/man/man1/numaheap.1" \
  || [ -f "$PREFIX/share/man/man1/numaheap.1" ] || fail "no manual page"
"${D[@]}" --purge numaheap libnumaheap-dev libnumaheap0 >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; fail "dpkg --purge"; }
left=$(if [ -d "$PREFIX" ]; then find "$PREFIX" -type f -o -type l; fi)
[ -z "$left" ] || fail "files left after dpkg --purge: $left"
echo "package: all checks passed"
