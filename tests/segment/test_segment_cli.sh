#!/usr/bin/env bash
# `quire segment build|inspect`: round trip, corrupt pages/footer/truncation
# are reported with exit 1, usage errors exit 2.
set -u
Q=$1
. "$(dirname "$0")/../testlib/cli.sh"
flip() { # flip <file> <offset>: invert one byte (always a change)
  local b; b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\x$(printf %02x $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
mkdir -p "$T/pages"
for v in $("$Q" gid new --type volume -n 3); do
  mkdir "$T/pages/$v"
  for p in 1 2 7 100; do head -c 4096 /dev/urandom >"$T/pages/$v/$p"; done
done
expect 0 "build" -- "$Q" segment build -o "$T/seg" "$T/pages"
has "build summary" "3 volumes 12 pages 49432 bytes"
[ "$(stat -c %s "$T/seg")" -eq 49432 ] && passes=$((passes+1)) || { echo "FAIL: size"; fails=$((fails+1)); }
expect 0 "inspect" -- "$Q" segment inspect --pages "$T/seg"
has "inspect counts" "pages:         12"
has "inspect checksums" "12 of 12 pages ok"
has "inspect page list" "slot 11 page 100"
expect 1 "inspect over limits" -- "$Q" segment inspect --max-pages 5 "$T/seg"
# a flipped byte inside page slot 5
cp "$T/seg" "$T/bad"; flip "$T/bad" $((5*4096+17))
expect 1 "corrupt page" -- "$Q" segment inspect "$T/bad"
has "bad slot named" "BAD page checksum: slot 5"
# a flipped byte in the footer
cp "$T/seg" "$T/bad"; flip "$T/bad" $((49432-30))
expect 1 "corrupt footer" -- "$Q" segment inspect "$T/bad"
has "footer error" "corrupt"
head -c 49000 "$T/seg" >"$T/short"
expect 1 "truncated" -- "$Q" segment inspect "$T/short"
: >"$T/empty"
expect 1 "empty file" -- "$Q" segment inspect "$T/empty"
expect 1 "missing file" -- "$Q" segment inspect "$T/nope"
# build errors
mkdir -p "$T/badpages/$("$Q" gid new --type volume)"; d=$(ls "$T/badpages")
head -c 100 /dev/zero >"$T/badpages/$d/1"
expect 1 "short page file" -- "$Q" segment build -o "$T/x" "$T/badpages"
mkdir -p "$T/notvol/hello"
expect 1 "not a volume dir" -- "$Q" segment build -o "$T/x" "$T/notvol"
mkdir -p "$T/empty-dir"
expect 0 "empty segment" -- "$Q" segment build -o "$T/e" "$T/empty-dir"
expect 0 "inspect empty segment" -- "$Q" segment inspect "$T/e"
sid=$("$Q" gid new --type segment)
expect 0 "build with sid" -- "$Q" segment build --sid "$sid" -o "$T/s2" "$T/pages"
expect 0 "inspect sid" -- "$Q" segment inspect "$T/s2"
has "sid printed" "$sid"
expect 2 "no subcommand" -- "$Q" segment
expect 0 "help" -- "$Q" segment --help
expect 2 "unknown sub" -- "$Q" segment frob
expect 2 "inspect no file" -- "$Q" segment inspect
expect 2 "inspect bad flag" -- "$Q" segment inspect --frob x
expect 2 "build no -o" -- "$Q" segment build "$T/pages"
expect 2 "build bad sid" -- "$Q" segment build --sid xyz -o "$T/x" "$T/pages"
expect 2 "bad limit" -- "$Q" segment inspect --max-pages 0 "$T/seg"
echo "segment cli: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
