#!/usr/bin/env bash
# tests/live/top_tmux.sh NUMAHEAP PUB_CHILD: `numaheap top` in a real terminal
# (a detached tmux session of 160x30): the pane shows the per-node table of a
# child on a simulated two-node topology, refreshed (two different clock
# stamps), with a non-zero allocation rate while the child churns.
set -euo pipefail
NUMAHEAP=$1 CHILD=$2
command -v tmux >/dev/null || { echo "FAIL: tmux is not installed (quickstart installs it)"; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nh-top.XXXXXX")
SOCK=$WORK/tmux.sock
cleanup() {
  tmux -S "$SOCK" kill-server 2>/dev/null || true
  [ -n "${CPID:-}" ] && kill "$CPID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
unset LD_PRELOAD
export NUMAHEAP_TOPOLOGY_SYNTHETIC="numa:2 core:1 pu:1" NUMAHEAP_STATS_PUBLISH_INTERVAL=50
mkfifo "$WORK/in"
# the child churns for 30 s (we stop it sooner), its stdin kept open by fd 3
"$CHILD" <"$WORK/in" >"$WORK/out" &
CPID=$!
exec 3>"$WORK/in"
echo "churn 30" >&3
for _ in $(seq 100); do [ -s "$WORK/out" ] && break; sleep 0.05; done
sleep 0.3
tmux -S "$SOCK" new-session -d -x 160 -y 30 "$NUMAHEAP top $CPID --interval 0.3; sleep 30"
pane() { tmux -S "$SOCK" capture-pane -p -t 0; }
ok=0
for _ in $(seq 60); do
  sleep 0.2
  if pane | grep -q '^total ' && pane | grep -Eq '^1 +[0-9]'; then ok=1; break; fi
done
first=$(pane)
echo "$first"
[ $ok = 1 ] || { echo "FAIL: no per-node table in the pane"; exit 1; }
grep -q "^numaheap top - process $CPID (pub_child)" <<<"$first" || { echo "FAIL: no title line"; exit 1; }
grep -Eq '^NODE +ALLOC/s +FREE/s +RFREE/s +FB_IN +FB_OUT +FAIL T/A/P +HIT% +COMMITTED +IN_USE' <<<"$first" \
  || { echo "FAIL: no column header"; exit 1; }
# a later frame: a new clock stamp or rates, and allocations per second above zero on a node
for _ in $(seq 40); do
  sleep 0.2
  later=$(pane)
  [ "$later" != "$first" ] && grep -Eq '^(0|1) +[1-9][0-9]* ' <<<"$later" && break
done
[ "$later" != "$first" ] || { echo "FAIL: the table did not refresh"; exit 1; }
grep -Eq '^(0|1) +[1-9][0-9]* ' <<<"$later" || { echo "FAIL: no allocation rate while the child churns"; echo "$later"; exit 1; }
# only one table on screen: the screen is cleared between frames
[ "$(grep -c '^NODE ' <<<"$later")" = 1 ] || { echo "FAIL: frames are not cleared"; exit 1; }
echo "top: ok"
