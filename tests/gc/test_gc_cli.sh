#!/usr/bin/env bash
# `quire gc`: usage errors, a dry run that deletes nothing, and a pass that
# keeps a young unreferenced segment within the grace period and deletes it
# after (an upload never committed, as a crashed client leaves behind).
set -u
Q=$1
. "$(dirname "$0")/../testlib/cli.sh"
S="file://$T/objects?fsync=0"
expect 0 "gc --help" -- "$Q" gc --help
expect 2 "gc without a store" -- "$Q" gc
expect 2 "gc bad duration" -- "$Q" gc --store "$S" --every 5 parsecs
expect 2 "gc bad unit" -- "$Q" gc --store "$S" --grace 5y
expect 0 "gc on an empty store" -- "$Q" gc --store "$S" --quiet
has "summary" "0 volumes"
sid=$("$Q" gid new --type segment)
mkdir -p "$T/objects/segments"
head -c 5000 /dev/urandom >"$T/objects/segments/$sid"
expect 0 "gc within the grace period" -- "$Q" gc --store "$S" --quiet
has "young segment kept" "1 live (5000 bytes, 1 of them only young), 0 deleted"
[ -f "$T/objects/segments/$sid" ] && ok || bad "the young segment was deleted"
sleep 0.2
expect 0 "gc dry run" -- "$Q" gc --store "$S" --grace 100ms --dry-run
has "dry run counts" "1 would be deleted (5000 bytes)"
[ -f "$T/objects/segments/$sid" ] && ok || bad "a dry run deleted the segment"
expect 0 "gc past the grace period" -- "$Q" gc --store "$S" --grace 100ms
has "deleted" "1 deleted (5000 bytes)"
[ -f "$T/objects/segments/$sid" ] && bad "the old unreferenced segment is still there" || ok
# Server-side fork: argument checks; a metastore that is not there fails (1).
vid=$("$Q" gid new --type volume)
expect 2 "fork-at without an lsn" -- "$Q" volume fork-at "$vid"
expect 2 "fork-at bad vid" -- "$Q" volume fork-at nonsense 3
expect 2 "fork-at bad lsn" -- "$Q" volume fork-at "$vid" x3
expect 1 "fork-at with no metastore" -- "$Q" volume fork-at "$vid" 3 --metastore http://127.0.0.1:1
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
