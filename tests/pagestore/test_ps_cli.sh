#!/usr/bin/env bash
# `quire server` runs both services as one process on loopback (ports picked
# by the OS), answers /health, /ready and /metrics on the pagestore, and stops
# gracefully on SIGTERM with exit 0; `quire pagestore` refuses bad usage with
# exit 2.
set -u
Q=$1
dir=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
"$Q" server --data "$dir/data" --metastore-listen 127.0.0.1:0 --pagestore-listen 127.0.0.1:0 >"$dir/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "pagestore listening" "$dir/out" && break; sleep 0.1; done
port=$(grep "pagestore listening" "$dir/out" | grep -o '[0-9]*$')
[ -n "$port" ] && ok || { bad "no pagestore port"; cat "$dir/out"; }
[ "$(curl -s "http://127.0.0.1:$port/health")" = "ok" ] && ok || bad "/health"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = "200" ] && ok || bad "/ready"
curl -s "http://127.0.0.1:$port/metrics" | grep -q '^quire_ps_cache_budget_bytes 1073741824' && ok || bad "/metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/x-protobuf' \
  --data-binary 'garbage' "http://127.0.0.1:$port/pagestore/v1/read_pages")
[ "$code" = "401" ] && ok || bad "garbage read_pages without a token answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/x-protobuf' \
  -H "Authorization: Bearer $(cat "$dir/data/admin.token")" \
  --data-binary 'garbage' "http://127.0.0.1:$port/pagestore/v1/read_pages")
[ "$code" = "400" ] && ok || bad "garbage read_pages answered $code"
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 0 ] && ok || bad "server exit code $rc after SIGTERM"
grep -q "stopped" "$dir/out" && ok || bad "no 'stopped' line"
for f in objects cache metastore.catalog pagestore.catalog; do
  [ -e "$dir/data/$f" ] && ok || bad "missing $f in the data directory"
done
"$Q" pagestore --cache "$dir/c" >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "pagestore without --store must exit 2"
"$Q" pagestore --bogus >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown flag must exit 2"
"$Q" pagestore --help | grep -q -- "--partial-read-percent" && ok || bad "--help lists options"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
