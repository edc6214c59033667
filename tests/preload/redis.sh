#!/usr/bin/env bash
# redis-server on numaheap (`numaheap run --stats=json`), on 127.0.0.1 and a
# free port, loaded by redis-benchmark (itself preloaded with LD_PRELOAD): a
# bounded run, checked values, a BGSAVE (fork of the running server), then a
# clean shutdown.
. "$(dirname "$0")/lib.sh"
need redis-server redis-benchmark redis-cli
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cli() { timeout 10 redis-cli -h 127.0.0.1 -p "$port" "$@"; }
# start_server: 0 once it answers PING; 1 if it exited (another process may
# have taken the free port between the probe and redis's bind).
start_server() {
  port=$(free_port)
  "$NH_CLI" run --stats=json -- redis-server --port "$port" --bind 127.0.0.1 --save "" \
    --appendonly no --daemonize no --dir "$WORK" --logfile "" >"$WORK/server.out" 2>"$WORK/server.err" &
  server=$!
  cleanup_hooks+=("kill $server 2>/dev/null")
  for _ in $(seq 100); do
    [ "$(cli ping 2>/dev/null)" = PONG ] && return 0
    kill -0 "$server" 2>/dev/null || return 1
    sleep 0.1
  done
  return 0
}
for try in 1 2 3; do
  start_server && break
  cat "$WORK/server.out" "$WORK/server.err" >&2
  [ "$try" = 3 ] && fail "redis-server exited at start-up, three times"
done
[ "$(cli ping)" = PONG ] || fail "redis-server does not answer on port $port"
LD_PRELOAD="$NH_LIB" NUMAHEAP_STATS=json timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" \
  -n 20000 -c 20 -r 10000 -d 64 -q -t set,get,incr,lpush,lpop,sadd,hset,mset \
  >"$WORK/bench.out" 2>"$WORK/bench.err" || { cat "$WORK/bench.out" "$WORK/bench.err" >&2; fail "redis-benchmark failed"; }
tr '\r' '\n' <"$WORK/bench.out" | grep "requests per second" | sort -u
[ "$(tr '\r' '\n' <"$WORK/bench.out" | grep -c "requests per second")" -ge 8 ] || fail "redis-benchmark did not finish every test"
cli set numaheap:key "$(printf 'v%.0s' $(seq 5000))" >/dev/null
[ "$(cli strlen numaheap:key)" = 5000 ] || fail "a 5000-byte value did not round-trip"
cli dbsize
[ "$(cli dbsize)" -gt 1000 ] || fail "the benchmark's keys are not there"
# BGSAVE forks the server (its I/O threads alive) and the child writes the
# whole dataset: fork on numaheap in a real multi-threaded server.
cli bgsave >/dev/null
for _ in $(seq 200); do
  cli info persistence | grep -q "^rdb_bgsave_in_progress:0" && break
  sleep 0.1
done
cli info persistence | tr -d '\r' | grep -E "^rdb_(bgsave_in_progress|last_bgsave_status):"
cli info persistence | grep -q "^rdb_last_bgsave_status:ok" || fail "BGSAVE (a forked child) failed"
[ -s "$WORK/dump.rdb" ] || fail "BGSAVE wrote no dump.rdb"
cli shutdown nosave >/dev/null 2>&1 || true
rc=0
wait "$server" || rc=$?
[ "$rc" = 0 ] || { tail -20 "$WORK/server.out" "$WORK/server.err" >&2; fail "redis-server exited with $rc"; }
check_stats "$WORK/server.err" 10000 1
check_stats "$WORK/bench.err" 1000 1
