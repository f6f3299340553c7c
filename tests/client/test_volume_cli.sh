#!/usr/bin/env bash
# `quire volume` against a real `quire server` process: create, import a
# page image, export it back byte for byte from another data directory (the
# pages are fetched), status, list, a conflict between two data directories
# that `reset` resolves, fork, and usage errors (exit 2).
set -u
Q=$1
. "$(dirname "$0")/../testlib/cli.sh"
"$Q" server --data "$T/srv" --metastore-listen 127.0.0.1:0 --pagestore-listen 127.0.0.1:0 >"$T/srv.out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do grep -q "pagestore listening" "$T/srv.out" && break; sleep 0.1; done
ms=$(grep "metastore listening" "$T/srv.out" | grep -o 'http://[0-9.:]*')
ps=$(grep "pagestore listening" "$T/srv.out" | grep -o 'http://[0-9.:]*')
export QUIRE_METASTORE=$ms QUIRE_PAGESTORE=$ps
QUIRE_TOKEN=$(cat "$T/srv/admin.token"); export QUIRE_TOKEN
A="--data $T/a"; B="--data $T/b"

head -c 300000 /dev/urandom >"$T/img"   # 73 pages and a bit: the last page is padded
expect 0 "create" -- "$Q" volume create docs $A
vid=$(awk '{print $2}' "$T/out")
[ ${#vid} -eq 22 ] && ok || bad "create prints the volume id (got '$vid')"
expect 1 "create twice" -- "$Q" volume create docs $A
has "create twice says so" "already exists"
expect 0 "import" -- "$Q" volume import docs "$T/img" $A
has "import counts pages" "imported 74 pages"
expect 0 "export from another data directory" -- "$Q" volume export "$vid" "$T/out.img" $B
cmp -s <(head -c 300000 "$T/out.img") "$T/img" && ok || bad "exported bytes differ from the imported ones"
[ "$(stat -c %s "$T/out.img")" -eq $((74 * 4096)) ] && ok || bad "export is 74 whole pages"
expect 0 "status" -- "$Q" volume status "$vid" $B
has "status shows the state" "state       ok"
has "status counts pages" "pages       74 (74 local, 0 not fetched yet)"
expect 0 "list" -- "$Q" volume list $A
has "list names the volume" "$vid  docs"

# A conflict: both import on the same base, B first; A's sync fails, reset wins.
head -c 8192 /dev/urandom >"$T/b.img"; head -c 4096 /dev/urandom >"$T/a.img"
expect 0 "B imports" -- "$Q" volume import "$vid" "$T/b.img" $B
expect 1 "A imports on a stale base" -- "$Q" volume import docs "$T/a.img" $A
has "the push failed with a conflict" "conflict"
expect 0 "status in conflict" -- "$Q" volume status docs $A
has "state conflict persists" "state       conflict"
expect 0 "reset" -- "$Q" volume reset docs $A
has "reset back to ok" "state       ok"
expect 0 "export after reset" -- "$Q" volume export docs "$T/r.img" $A
cmp -s "$T/r.img" "$T/b.img" && ok || bad "after reset A has B's content"
expect 0 "fork" -- "$Q" volume fork docs $A
has "fork names the new volume" "forked into"

expect 2 "no subcommand" -- "$Q" volume
expect 2 "unknown subcommand" -- "$Q" volume frobnicate x
expect 2 "missing argument" -- "$Q" volume import docs
expect 2 "unknown flag" -- "$Q" volume list --bogus
expect 1 "unknown volume" -- "$Q" volume status nosuch --local $A
"$Q" volume --help | grep -q "quire volume import" && ok || bad "--help"
kill -TERM $pid; wait $pid
# What the server and the clients made is private to their user (0600 / 0700).
[ -n "$(find "$T/srv/objects" -type f | head -1)" ] && ok || bad "no object in the store to check"
open=$(find "$T/srv" "$T/a" "$T/b" -perm /077 | head -5)
[ -z "$open" ] && ok || bad "readable by others: $open"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
