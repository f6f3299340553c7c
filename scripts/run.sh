#!/usr/bin/env bash
# scripts/run.sh BUILD_DIR — the end-to-end demo on the embedded default.
#
#  1. starts `quire server --data ./quire-data` (QUIRE_DATA picks another
#     directory): the metastore on 127.0.0.1:3001 and the pagestore on :3002,
#     over the object store ./quire-data/objects; authentication is on, and
#     the demo prints where the server put its admin token;
#  2. client A (its own data directory, a write token) creates the volume
#     "demo" and writes a
#     generated shop database of a few tens of MiB through the sqlite3 shell
#     with the quire extension loaded;
#  3. client B (another data directory, nothing local, a read token for
#     that one volume) opens the same volume lazily and runs an indexed point query and an aggregate, and the demo
#     prints how many pages B fetched out of how many the database has;
#  4. A updates a row while B is connected: the demo prints the replication
#     lag (A's COMMIT until B's next transaction sees it);
#  5. the server keeps running, and the demo prints the one-line sqlite3
#     command to open the database by hand. Ctrl-C stops the server.
# DEMO_ORDERS sets the number of orders (default 300000, about 40 MiB).
set -euo pipefail
B=$(cd "$1" && pwd)
Q="$B/quire"
EXT="$B/libquire_sqlite.so"
DATA=${QUIRE_DATA:-./quire-data}
ORDERS=${DEMO_ORDERS:-300000}
SQLITE3=${QUIRE_SQLITE3:-sqlite3}

command -v "$SQLITE3" >/dev/null || { echo "run.sh: the sqlite3 shell is missing (apt-get install sqlite3)" >&2; exit 1; }
[ -r "$EXT" ] || { echo "run.sh: $EXT is missing (make release builds it)" >&2; exit 1; }
"$Q" version

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_busy 3001 || port_busy 3002; then
  echo "run.sh: 127.0.0.1:3001 or :3002 is in use (another quire server?); stop it first" >&2
  exit 1
fi

mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)
"$Q" server --data "$DATA" >"$DATA/server.log" 2>&1 &
SERVER=$!
stop_server() { kill -INT "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
trap 'stop_server; exit 130' INT TERM
trap 'status=$?; if [ $status -ne 0 ]; then echo "run.sh: failed (server log: $DATA/server.log)" >&2; stop_server; fi' EXIT
for _ in $(seq 200); do port_busy 3001 && port_busy 3002 && break; sleep 0.05; done
port_busy 3002 || { echo "run.sh: the server did not start:" >&2; cat "$DATA/server.log" >&2; exit 1; }
echo "quire server: metastore 127.0.0.1:3001, pagestore 127.0.0.1:3002, objects in $DATA/objects"
echo "quire server: admin token in $DATA/admin.token (export QUIRE_TOKEN=\$(cat $DATA/admin.token))"
# Each client gets the least it needs (docs/SECURITY.md): A may write any
# volume (it creates one), B may only read the volume A made.
A_TOKEN=$("$Q" token new --data "$DATA" --perm write --subject demo-client-a --ttl 1d)
echo "   client A: a write token for every volume (quire token new --perm write)"

# The demo's output stays readable: quire's own warnings (stderr) only from
# level error unless QUIRE_LOG says otherwise.
export QUIRE_LOG=${QUIRE_LOG:-error}
A_DIR="$DATA/demo/client-a"
B_DIR="$DATA/demo/client-b"
rm -rf "$A_DIR" "$B_DIR"
# sqlq DIR URI SQL...: the user's sqlite3 shell with the extension on a volume.
sqlq() {
  local dir=$1 uri=$2; shift 2
  QUIRE_DATA_DIR="$dir" QUIRE_TOKEN="$A_TOKEN" "$SQLITE3" -batch -cmd ".load '$EXT'" -cmd ".open '$uri'" :memory: "$@"
}
now_ms() { date +%s%3N; }

echo
echo "== client A ($A_DIR) writes the database"
t0=$(now_ms)
sqlq "$A_DIR" "file:demo?vfs=quire" "
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, country TEXT, since INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER, amount_cents INTEGER, created INTEGER, note TEXT);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO customers SELECT i, 'customer ' || i,
  CASE i % 5 WHEN 0 THEN 'FR' WHEN 1 THEN 'DE' WHEN 2 THEN 'JP' WHEN 3 THEN 'BR' ELSE 'US' END,
  1600000000 + i * 1000 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ORDERS)
INSERT INTO orders SELECT i, 1 + (i * 7919) % 20000, 100 + (i * 104729) % 99900, 1700000000 + i * 60,
  hex(randomblob(40)) FROM n;
COMMIT;
CREATE INDEX orders_by_customer ON orders(customer_id);" >/dev/null
status_a=$(sqlq "$A_DIR" "file:demo?vfs=quire" "PRAGMA quire_push" "PRAGMA quire_status")
VID=$(sed -n 's/^vid=//p' <<<"$status_a")
pages=$(sed -n 's/^page_count=//p' <<<"$status_a")
echo "   $ORDERS orders of 20000 customers: $pages pages ($((pages * 4 / 1024)) MiB) in $(( $(now_ms) - t0 )) ms, pushed as volume $VID"

echo
echo "== client B ($B_DIR) opens volume $VID lazily"
B_TOKEN=$("$Q" token new --data "$DATA" --perm read --volume "$VID" --subject demo-client-b --ttl 1d)
echo "   with a read token for volume $VID only (quire token new --perm read --volume $VID)"
coproc BSH { QUIRE_DATA_DIR="$B_DIR" QUIRE_TOKEN="$B_TOKEN" "$SQLITE3" -batch -cmd ".load '$EXT'" \
  -cmd ".open 'file:demo?vfs=quire&vid=$VID'" :memory: 2>&1; }
# bq SQL: runs SQL in B's shell and prints its output.
bq() {
  printf '%s\nSELECT '"'"'__done__'"'"';\n' "$1" >&"${BSH[1]}"
  local line
  while IFS= read -r line <&"${BSH[0]}"; do
    [ "$line" = "__done__" ] && return 0
    printf '%s\n' "$line"
  done
  return 1
}
bstat() { bq "SELECT value FROM quire_stats WHERE scope = 'volume' AND name = '$1';"; }
t0=$(now_ms)
bq "SELECT printf('   customer 4242: %s (%s), %d orders, %.2f in total', name, country,
  (SELECT count(*) FROM orders WHERE customer_id = 4242),
  (SELECT sum(amount_cents) FROM orders WHERE customer_id = 4242) / 100.0) FROM customers WHERE id = 4242;"
t1=$(now_ms)
f1=$(bstat fetch_pages); r1=$(bstat fetch_round_trips)
echo "   indexed point query: $((t1 - t0)) ms, B fetched $f1 of $pages pages in $r1 round trips"
bq "SELECT printf('   %s: %d orders, %.2f in total', c.country, count(*), sum(o.amount_cents) / 100.0)
  FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.country ORDER BY c.country;"
t2=$(now_ms)
f2=$(bstat fetch_pages); r2=$(bstat fetch_round_trips)
echo "   aggregate over every order: $((t2 - t1)) ms, B has now fetched $f2 of $pages pages in $r2 round trips (read-ahead)"

echo
echo "== replication: A updates a customer while B is connected"
before=$(bq "SELECT name FROM customers WHERE id = 1;")
t_commit=$(sqlq "$A_DIR" "file:demo?vfs=quire" \
  "UPDATE customers SET name = 'Ada Lovelace' WHERE id = 1; SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);" |
  tail -1)
seen=""
for _ in $(seq 400); do
  seen=$(bq "SELECT name, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM customers WHERE id = 1;")
  case "$seen" in "Ada Lovelace|"*) break ;; esac
  sleep 0.02
done
case "$seen" in
  "Ada Lovelace|"*) echo "   B read '$before', then 'Ada Lovelace' $(( ${seen#*|} - t_commit )) ms after A's COMMIT (push, long poll, pull)" ;;
  *) echo "   B did not see A's commit within 8 s (server log: $DATA/server.log)"; exit 1 ;;
esac
printf '.quit\n' >&"${BSH[1]}"
wait "$BSH_PID" 2>/dev/null || true

echo
echo "The server keeps running (Ctrl-C stops it). Open the database yourself:"
echo "   QUIRE_TOKEN=\$(cat $DATA/admin.token) QUIRE_DATA_DIR=$DATA/you $SQLITE3 -cmd \".load '$EXT'\" -cmd \".open 'file:demo?vfs=quire&vid=$VID'\""
echo "(or: QUIRE_TOKEN=\$(cat $DATA/admin.token) $Q sql --data $DATA/you --vid $VID demo)"
trap 'stop_server; exit 0' INT TERM
trap - EXIT
wait "$SERVER"
