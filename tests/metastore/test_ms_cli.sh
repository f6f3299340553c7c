#!/usr/bin/env bash
# `quire metastore` and `quire server` as commands: help, usage errors (exit
# 2), settings from flags over QUIRE_* environment over the INI file, start
# and graceful stop on SIGTERM and SIGINT (exit 0).
set -u
Q=$1
. "$(dirname "$0")/../testlib/cli.sh"
expect 0 "metastore --help" -- "$Q" metastore --help
grep -q "QUIRE_METASTORE_LISTEN" "$T/out" && ok || bad "help names the env variable"
grep -q "\[metastore\] store" "$T/out" && ok || bad "help names the INI key"
expect 0 "server --help" -- "$Q" server --help
expect 2 "metastore without --store" -- env -u QUIRE_STORE "$Q" metastore
expect 2 "metastore unknown flag" -- "$Q" metastore --store mem:// --frob
expect 2 "metastore missing value" -- "$Q" metastore --store
expect 2 "metastore positional" -- "$Q" metastore extra
expect 2 "metastore bad number" -- "$Q" metastore --store mem:// --threads lots
expect 2 "metastore bad config key" -- bash -c "printf '[metastore]\nfrob = 1\n' > '$T/bad.ini'; '$Q' metastore --config '$T/bad.ini'"
expect 2 "metastore missing config file" -- "$Q" metastore --config "$T/nope.ini"
expect 2 "metastore without --auth-key or --no-auth" -- "$Q" metastore --store mem://
export QUIRE_NO_AUTH=1   # the metastore runs below are about settings, not tokens
expect 1 "metastore unusable address" -- "$Q" metastore --store mem:// --listen 203.0.113.1:1

# Start with settings from each layer; the first output line says where.
start() { # start <outfile> <args...>: runs in the background, waits for the line
  local out=$1; shift
  "$@" >"$out" 2>"$out.err" &
  PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$out" 2>/dev/null && return 0; sleep 0.05; done
  bad "no 'listening on' line from: $*"; cat "$out.err"; return 1
}
printf '[metastore]\nlisten = 127.0.0.1:0\nstore = file://%s/objects\n[http]\nthreads = 2\n' "$T" > "$T/ms.ini"
start "$T/a" "$Q" metastore --config "$T/ms.ini"
grep -q "listening on http://127.0.0.1:" "$T/a" && ok || bad "INI listen used"
grep -q "store file://$T/objects" "$T/a" && ok || bad "INI store used"
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$T/a")
curl -sf "http://127.0.0.1:$port/ready" >/dev/null && ok || bad "ready on $port"
kill -TERM "$PID"; wait "$PID"; [ $? -eq 0 ] && ok || bad "SIGTERM exit status"
grep -q "stopped" "$T/a" && ok || bad "stopped line"

start "$T/b" env QUIRE_METASTORE_LISTEN=localhost:0 "$Q" metastore --config "$T/ms.ini"
grep -q "listening on http://localhost:" "$T/b" && ok || bad "env overrides INI"
kill -INT "$PID"; wait "$PID"; [ $? -eq 0 ] && ok || bad "SIGINT exit status"

start "$T/c" env QUIRE_METASTORE_LISTEN=localhost:0 "$Q" metastore --config "$T/ms.ini" --listen 127.0.0.1:0 --store mem://
grep -q "listening on http://127.0.0.1:" "$T/c" && ok || bad "flag overrides env"
grep -q "store mem://" "$T/c" && ok || bad "flag overrides INI store"
kill -TERM "$PID"; wait "$PID"

unset QUIRE_NO_AUTH
start "$T/d" "$Q" server --data "$T/data" --metastore-listen 127.0.0.1:0 --pagestore-listen 127.0.0.1:0
[ -d "$T/data/objects" ] && ok || bad "server made the data directory"
grep -q "metastore listening on http://127.0.0.1:" "$T/d" && ok || bad "server prints the metastore address"
kill -TERM "$PID"; wait "$PID"; [ $? -eq 0 ] && ok || bad "server SIGTERM exit status"
[ -f "$T/data/metastore.catalog" ] && ok || bad "server catalog file"
[ "$(stat -c %a "$T/data")" = 700 ] && ok || bad "data directory is not 0700"
for f in auth.key admin.token receipt.key; do
  [ "$(stat -c %a "$T/data/$f")" = 600 ] && ok || bad "$f is not 0600"
done
grep -q "admin token in $T/data/admin.token" "$T/d" && ok || bad "server says where the admin token is"
"$Q" token inspect --data "$T/data" "$(cat "$T/data/admin.token")" | grep -q "perm=admin" && ok || bad "admin token inspects as admin"

echo "metastore cli: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
