#!/usr/bin/env bash
# sqlite3 builds and queries a database, with LD_PRELOAD and NUMAHEAP_STATS=json
# (the way a service manager would start it).
. "$(dirname "$0")/lib.sh"
need sqlite3
cat > "$WORK/build.sql" <<'SQL'
PRAGMA journal_mode = WAL;
CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, price REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
INSERT INTO item SELECT i, 'item-' || i || '-' || hex(randomblob(8)), i % 100, i * 0.5 FROM n;
CREATE INDEX item_grp ON item(grp, price);
CREATE TABLE total AS SELECT grp, count(*) AS c, sum(price) AS s FROM item GROUP BY grp;
SQL
cat > "$WORK/query.sql" <<'SQL'
SELECT count(*), sum(c), sum(s) FROM total;
SELECT count(DISTINCT name) FROM item;
SELECT name FROM item WHERE grp = 42 ORDER BY price DESC LIMIT 1;
SQL
LD_PRELOAD="$NH_LIB" NUMAHEAP_STATS=json sqlite3 "$WORK/db" <"$WORK/build.sql" >/dev/null 2>"$WORK/err1" ||
  { cat "$WORK/err1" >&2; fail "sqlite3 (build) failed"; }
LD_PRELOAD="$NH_LIB" NUMAHEAP_STATS=json sqlite3 "$WORK/db" <"$WORK/query.sql" >"$WORK/out" 2>"$WORK/err2" ||
  { cat "$WORK/err2" >&2; fail "sqlite3 (query) failed"; }
cat "$WORK/out"
[ "$(sed -n 1p "$WORK/out")" = "100|60000|900015000.0" ] || fail "wrong totals"
[ "$(sed -n 2p "$WORK/out")" = "60000" ] || fail "wrong distinct count"
sed -n 3p "$WORK/out" | grep -q "^item-59942-" || fail "wrong row"
check_stats "$WORK/err1" 2000 1
check_stats "$WORK/err2" 1000 1
