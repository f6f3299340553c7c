#!/usr/bin/env bash
# `quire splinter make|dump`: hex round trip, file input, corrupt bytes exit 1,
# usage errors exit 2.
set -u
Q=$1
. "$(dirname "$0")/../testlib/cli.sh"
expect 0 "make" -- "$Q" splinter make 1 2 3 10-20 70000
hex=$(cat "$T/out")
expect 0 "dump hex" -- "$Q" splinter dump "$hex"
has "dump cardinality" "cardinality: 15"
has "dump values" "values: 1-3 10-20 70000"
printf "$(printf '%s' "$hex" | sed 's/../\\x&/g')" >"$T/set.bin"
expect 0 "dump file" -- "$Q" splinter dump --no-values "$T/set.bin"
has "dump footer" "version=1 magic=b571"
has "file cardinality" "cardinality: 15"
expect 0 "golden" -- "$Q" splinter make 1-100000
has "golden bytes" "^019f860143a0860121b57115681a9287e60123$"
bad=$(printf '%s' "$hex" | sed 's/^0/1/')
expect 1 "corrupt" -- "$Q" splinter dump "$bad"
has "corrupt reason" "checksum mismatch"
expect 1 "truncated" -- "$Q" splinter dump "${hex:0:10}"
expect 1 "not hex" -- "$Q" splinter dump "zz-not-a-file"
expect 2 "no args" -- "$Q" splinter
expect 2 "bad range" -- "$Q" splinter make 5-1
expect 2 "unknown sub" -- "$Q" splinter frobnicate
expect 0 "help" -- "$Q" splinter --help
has "help text" "usage: quire splinter dump"
echo "test_splinter_cli: $passes checks passed, $fails failed"
[ "$fails" -eq 0 ]
