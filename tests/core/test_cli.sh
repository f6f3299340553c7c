#!/usr/bin/env bash
# The `quire` command: help, version, gid new/parse, usage errors (exit 2).
set -u
Q=$1
. "$(dirname "$0")/../testlib/cli.sh"
expect 0 "help" -- "$Q" --help
expect 2 "no command" -- "$Q"
expect 2 "unknown command" -- "$Q" frobnicate
expect 0 "version" -- "$Q" version
expect 2 "version extra arg" -- "$Q" version extra
expect 0 "gid --help" -- "$Q" gid --help
expect 0 "gid new" -- "$Q" gid new
expect 0 "gid new typed" -- "$Q" gid new --type segment -n 3
expect 2 "gid new bad type" -- "$Q" gid new --type pony
expect 2 "gid new unknown flag" -- "$Q" gid new --frob
expect 2 "gid new missing value" -- "$Q" gid new --type
expect 2 "gid unknown sub" -- "$Q" gid eat
expect 1 "gid parse invalid" -- "$Q" gid parse 0000000000000000000000
id=$("$Q" gid new --type client)
expect 0 "gid parse valid" -- "$Q" gid parse "$id"
if "$Q" gid parse "$id" | grep -q "type=client"; then passes=$((passes+1)); else
  echo "FAIL: parse does not report type=client"; fails=$((fails+1)); fi
n=$("$Q" gid new -n 1000 | sort -u | wc -l)
if [ "$n" -eq 1000 ]; then passes=$((passes+1)); else echo "FAIL: 1000 ids, $n unique"; fails=$((fails+1)); fi
if "$Q" version | grep -qE '^quire [0-9]+\.[0-9]+\.[0-9]+'; then passes=$((passes+1)); else
  echo "FAIL: version format"; fails=$((fails+1)); fi
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
