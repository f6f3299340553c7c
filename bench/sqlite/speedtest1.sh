#!/usr/bin/env bash
# bench/sqlite/speedtest1.sh — SQLite's speedtest1 through the quire VFS and
# through the unix VFS, same options, in one run: warm (every page local: a
# local-only client builds the database from scratch), with synchronous FULL
# (quire: QUIRE_SYNC=full, an fsync per local commit) and NORMAL (quire:
# QUIRE_SYNC=normal). Prints each test case and the total as times and
# quire/unix ratios (target: total within 1.3x).
#
# speedtest1.c comes from Debian's sqlite3 source package, fetched here with
# `apt-get source` (a deb-src line is added when run as root and none exists)
# and cached in the build directory; it is never vendored. Without it the
# benchmark is skipped with a message.
#   speedtest1.sh BUILD_DIR [speedtest1 options...]   (default: --size 50)
set -uo pipefail
BUILD=$(cd "$1" && pwd); shift
OPTS=("$@")
[ ${#OPTS[@]} -eq 0 ] && OPTS=(--size "${SPEEDTEST_SIZE:-50}")
SRC_DIR="$BUILD/bench/sqlite/speedtest1-src"
BIN="$BUILD/bench/sqlite/speedtest1"
HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE_ROOT=${QUIRE_SOURCE_DIR:-$(cd "$HERE/../.." 2>/dev/null && pwd)}
skip() { echo "speedtest1: skipped: $*"; exit 0; }

fetch_source() {
  [ -f "$SRC_DIR/speedtest1.c" ] && return 0
  command -v apt-get >/dev/null || skip "no apt-get to fetch Debian's sqlite3 source package"
  mkdir -p "$SRC_DIR/pkg"
  if ! (cd "$SRC_DIR/pkg" && apt-get source --download-only sqlite3 >/dev/null 2>&1); then
    if [ "$(id -u)" -eq 0 ] && ! grep -rqs "^Types:.*deb-src\|^deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "speedtest1: adding deb-src lines for Debian's sources (/etc/apt/sources.list.d/quire-deb-src.*)"
      if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
          >/etc/apt/sources.list.d/quire-deb-src.sources 2>/dev/null || true
      fi
      if grep -qs '^deb ' /etc/apt/sources.list; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >/etc/apt/sources.list.d/quire-deb-src.list || true
      fi
      apt-get update -qq >/dev/null 2>&1 || true
    fi
    (cd "$SRC_DIR/pkg" && apt-get source --download-only sqlite3 >/dev/null 2>&1) ||
      skip "apt-get source sqlite3 failed (no deb-src line in the apt sources? run make bench as root once)"
  fi
  local tarball
  tarball=$(ls "$SRC_DIR"/pkg/sqlite3_*.orig.tar.* 2>/dev/null | grep -v www | head -1)
  [ -n "$tarball" ] || skip "the sqlite3 source package has no orig tarball"
  tar -xf "$tarball" -C "$SRC_DIR/pkg" --wildcards '*/test/speedtest1.c' || skip "no test/speedtest1.c in $tarball"
  cp "$(find "$SRC_DIR/pkg" -name speedtest1.c | head -1)" "$SRC_DIR/speedtest1.c"
}

build() {
  [ -x "$BIN" ] && [ "$BIN" -nt "$BUILD/libquire_sqlite.so" ] && return 0
  cc -O2 -w -Dmain=speedtest1_main -c "$SRC_DIR/speedtest1.c" -o "$SRC_DIR/speedtest1.o" || skip "speedtest1.c does not compile"
  cc -O2 -I"$SOURCE_ROOT/include" "$HERE/speedtest1_shim.c" "$SRC_DIR/speedtest1.o" -o "$BIN" \
    -L"$BUILD" -lquire_sqlite -Wl,-rpath,"$BUILD" -lsqlite3 -lm || skip "speedtest1 does not link"
}

fetch_source
build
TMP=$(mktemp -d "${TMPDIR:-/tmp}/quire-speedtest1.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
run() { # run NAME VFS SYNC
  local name=$1 vfs=$2 sync=$3
  if [ "$vfs" = quire ]; then
    QUIRE_DATA_DIR="$TMP/$name" QUIRE_METASTORE=none QUIRE_SYNC=$sync SPEEDTEST_SYNC=$sync \
      "$BIN" "${OPTS[@]}" --vfs quire speedtest >"$TMP/$name.out" 2>"$TMP/$name.err"
  else
    mkdir -p "$TMP/$name"
    SPEEDTEST_SYNC=$sync "$BIN" "${OPTS[@]}" --vfs unix "$TMP/$name/speedtest.db" >"$TMP/$name.out" 2>"$TMP/$name.err"
  fi || { echo "speedtest1 ($name) failed:"; tail -5 "$TMP/$name.err"; exit 1; }
}
echo "speedtest1 ${OPTS[*]} ($(sqlite3 --version 2>/dev/null | cut -d' ' -f1)), warm: every page local"
for s in full normal; do
  run "unix-$s" unix "$s"
  run "quire-$s" quire "$s"
done
python3 - "$TMP" <<'PY'
import re, sys
d = sys.argv[1]
def parse(name):
    rows, total = [], None
    for line in open(f"{d}/{name}.out"):
        m = re.match(r"\s*(\d+) - (.*?)\.*\s+(\d+\.\d+)s", line)
        if m: rows.append((int(m.group(1)), m.group(2).strip(), float(m.group(3))))
        m = re.match(r"\s*TOTAL\.*\s+(\d+\.\d+)s", line)
        if m: total = float(m.group(1))
    return rows, total
runs = {n: parse(n) for n in ["unix-full", "quire-full", "unix-normal", "quire-normal"]}
def ratio(q, u): return f"{q / u:5.2f}x" if u > 0.0005 else "   - "
print(f"{'test':<52} {'unix FULL':>9} {'quire':>7} {'ratio':>6}   {'unix NORMAL':>11} {'quire':>7} {'ratio':>6}")
for i, (num, name, uf) in enumerate(runs["unix-full"][0]):
    qf = runs["quire-full"][0][i][2]; un = runs["unix-normal"][0][i][2]; qn = runs["quire-normal"][0][i][2]
    print(f"{num:4d} {name[:47]:<47} {uf:9.3f} {qf:7.3f} {ratio(qf, uf)}   {un:11.3f} {qn:7.3f} {ratio(qn, un)}")
uf, qf, un, qn = (runs[n][1] for n in ["unix-full", "quire-full", "unix-normal", "quire-normal"])
print(f"{'TOTAL':<52} {uf:9.3f} {qf:7.3f} {ratio(qf, uf)}   {un:11.3f} {qn:7.3f} {ratio(qn, un)}")
print(f"target: quire within 1.3x of unix on the total: FULL {'met' if qf <= 1.3 * uf else 'NOT met'}, NORMAL {'met' if qn <= 1.3 * un else 'NOT met'}")
PY
