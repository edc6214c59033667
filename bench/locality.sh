#!/usr/bin/env bash
# bench/locality.sh: where each thread's blocks live, numaheap against glibc
# and the peers, in a multi-node VM (tests/vm/run-vm.sh, qemu TCG).
#
#   bench/locality.sh [options] BUILD_DIR
#
# BUILD_DIR is a numaheap build holding libnumaheap.so and
# tests/vm/vm_locality (cmake --build BUILD_DIR --target numaheap vm_locality).
# For every allocator it boots one VM of the layout, runs vm_locality with the
# allocator preloaded (glibc: nothing preloaded) for the workloads, checks
# that the live allocator is the one preloaded, and prints a Markdown table:
# per workload the least and the mean share of a thread's live blocks on its
# own node (its memory home on a memory-less node), and the allocations per
# second in the VM (TCG: useful only to compare allocators with each other).
# Every workload runs in a fresh process.
#
# Options:
#   --layout NAME       VM layout (default 4node; see tests/vm/layouts.sh)
#   --ops N             allocations per thread and workload (default 20000)
#   --workloads LIST    comma-separated (default larson,prodcons)
#   --allocators LIST   comma-separated among numaheap,glibc,jemalloc,mimalloc,
#                       tcmalloc,tbbmalloc (default all)
#   --repeat R          runs every allocator R times, round robin (default 3);
#                       the table gives the least thread over all runs, the
#                       mean of the runs' means and the median speed (with
#                       the lowest and highest run)
#   --out FILE          also write the table to FILE
#   --cache DIR         run-vm.sh's image cache; each allocator's whole VM
#                       output is kept there as locality-<layout>-<name>.txt
#                       (default ${TMPDIR:-/tmp}/numaheap-locality)
#   --timeout SEC       bound of each VM run (default 300)
# Missing peer packages are installed with apt-get (as root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run_vm="$here/../tests/vm/run-vm.sh"
vm_lib=/lib/x86_64-linux-gnu

die() { echo "locality.sh: $*" >&2; exit 2; }

# Debian package and the file name of the library to preload, per peer.
declare -A peer_pkg=([jemalloc]=libjemalloc2 [mimalloc]=libmimalloc2.0
  [tcmalloc]=libtcmalloc-minimal4 [tbbmalloc]=libtbbmalloc2)
declare -A peer_so=([jemalloc]=libjemalloc.so.2 [mimalloc]=libmimalloc.so.2
  [tcmalloc]=libtcmalloc_minimal.so.4 [tbbmalloc]=libtbbmalloc_proxy.so.2)
all_allocators=numaheap,glibc,jemalloc,mimalloc,tcmalloc,tbbmalloc

layout=4node ops=20000 workloads=larson,prodcons allocators=$all_allocators
repeat=3 out="" cache=${TMPDIR:-/tmp}/numaheap-locality timeout_s=300
while (($#)); do
  case $1 in
    --layout|--ops|--workloads|--allocators|--repeat|--out|--cache|--timeout)
      [[ $# -ge 2 ]] || die "$1 needs a value" ;;&
    --layout) layout=$2; shift 2 ;;
    --ops) [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--ops '$2' is not a positive number"
           ops=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --repeat) [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--repeat '$2' is not a positive number"
              repeat=$2; shift 2 ;;
    --allocators) allocators=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --timeout) [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--timeout '$2' is not a number of seconds"
               timeout_s=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1'" ;;
    *) break ;;
  esac
done
[[ $# -eq 1 ]] || die "usage: locality.sh [options] BUILD_DIR (--help for the options)"
build=$1
numaheap_so="$build/libnumaheap.so"
prog="$build/tests/vm/vm_locality"
[[ -r $numaheap_so ]] || die "'$numaheap_so' not found: build the numaheap target in $build"
[[ -x $prog ]] || die "'$prog' not found: build the vm_locality target in $build"

IFS=, read -r -a chosen <<< "$allocators"
IFS=, read -r -a wl_list <<< "$workloads"
for w in "${wl_list[@]}"; do
  [[ $w == larson || $w == prodcons ]] || die "unknown workload '$w' (larson, prodcons)"
done
for a in "${chosen[@]}"; do
  [[ ",$all_allocators," == *",$a,"* ]] || die "unknown allocator '$a' (known: $all_allocators)"
done

# ---- the peers' libraries ----------------------------------------------------
missing=()
for a in "${chosen[@]}"; do
  pkg=${peer_pkg[$a]:-}
  [[ -z $pkg ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}: run as root or apt-get install them"
  echo "locality.sh: apt-get install ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
fi

# library_of NAME: the file to preload for allocator NAME ("" for glibc).
library_of() {
  case $1 in
    glibc) echo "" ;;
    numaheap) echo "$numaheap_so" ;;
    *) local f
       f=$(dpkg -L "${peer_pkg[$1]}" | grep -m1 "/${peer_so[$1]//./\\.}\$" || true)
       [[ -n $f && -e $f ]] || die "$1: package ${peer_pkg[$1]} has no ${peer_so[$1]}"
       echo "$f" ;;
  esac
}

declare -A lib=()
libs_arg=""
for a in "${chosen[@]}"; do
  lib[$a]=$(library_of "$a")
  [[ -n ${lib[$a]} ]] && libs_arg+="${libs_arg:+:}${lib[$a]}"
done
# libnumaheap loads libhwloc with dlopen on a multi-node machine: ldd does not
# list it, so the image gets it explicitly.
for h in /usr/lib/x86_64-linux-gnu/libhwloc.so.15 /usr/lib64/libhwloc.so.15; do
  [[ -f $h ]] && { libs_arg+="${libs_arg:+:}$h"; break; }
done

# ---- one VM per allocator and run ------------------------------------------------
mkdir -p "$cache"
# Per "allocator.workload": the runs' values, space-separated.
declare -A loc_min=() loc_mean=() speed=()
run_one() { # run_one ALLOCATOR RUN
  local a=$1 r=$2 w min mean rate env_args=() libs_opt=() log
  [[ -n ${lib[$a]} ]] && env_args=(--env "LD_PRELOAD=$vm_lib/$(basename "${lib[$a]}")")
  [[ -n $libs_arg ]] && libs_opt=(--libs "$libs_arg")
  log="$cache/locality-$layout-$a.txt"
  echo "locality.sh: run $r/$repeat: $a in $layout ($workloads, $ops allocations per thread)" >&2
  if ! "$run_vm" --cache "$cache" --timeout "$timeout_s" "${libs_opt[@]}" "${env_args[@]}" \
       "$layout" "$prog" --want-allocator "$a" "$workloads" "$ops" > "$log" 2>&1; then
    cat "$log" >&2
    die "$a: the VM run failed (output above, kept in $log)"
  fi
  for w in "${wl_list[@]}"; do
    read -r _ _ _ min mean < <(grep -m1 "^LOCALITY $a $w " "$log") ||
      die "$a: no LOCALITY line for $w in $log"
    read -r _ _ _ rate _ < <(grep -m1 "^SPEED $a $w " "$log") ||
      die "$a: no SPEED line for $w in $log"
    loc_min[$a.$w]+=" $min" loc_mean[$a.$w]+=" $mean" speed[$a.$w]+=" $rate"
    echo "locality.sh:   $w: $min% least thread, $mean% mean, $rate allocations/s" >&2
  done
}
for ((r = 1; r <= repeat; r++)); do
  for a in "${chosen[@]}"; do run_one "$a" "$r"; done
done

# least, mean, median VALUES...: one number from a run's values.
least() { printf '%s\n' "$@" | sort -g | head -n 1; }
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.1f\n", s / NR }'; }
# spread VALUES...: " (lowest-highest)" in thousands, nothing for one value.
spread() {
  (($# > 1)) || return 0
  printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
    END { printf " (%.0fk-%.0fk)\n", lo / 1000, hi / 1000 }'
}
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { printf "%.0f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- the table -------------------------------------------------------------------
threads=$(grep -m1 "^SPEED " "$cache/locality-$layout-${chosen[0]}.txt" | awk '{print $6}')
table() {
  local a w head="| allocator |" rule="|---|"
  for w in "${wl_list[@]}"; do
    head+=" $w: % local, least thread | $w: % local, mean | $w: allocations/s, median (range) |"
    rule+="---:|---:|---:|"
  done
  echo "$head"
  echo "$rule"
  for a in "${chosen[@]}"; do
    local row="| $a |"
    for w in "${wl_list[@]}"; do
      # shellcheck disable=SC2086  # the values are space-separated numbers
      row+=" $(least ${loc_min[$a.$w]}) | $(mean ${loc_mean[$a.$w]}) |"
      # shellcheck disable=SC2086
      row+=" $(median ${speed[$a.$w]})$(spread ${speed[$a.$w]}) |"
    done
    echo "$row"
  done
  echo
  echo "Layout $layout, $threads threads (one per CPU), $ops allocations per thread and workload," \
    "$repeat runs per allocator."
}
if [[ -n $out ]]; then table | tee "$out"; else table; fi
