#!/usr/bin/env bash
# The extension in the programs users have: the real sqlite3 shell (.load,
# .open, staying loaded across connections, .vfsinfo, .backup/.restore,
# VACUUM INTO a plain file, pragmas), `quire sql`, and Python's sqlite3
# module with sqlite3_load_extension. Local-only clients.
#   test_sqlite_shell.sh QUIRE_BIN EXTENSION [SANITIZER_PRELOAD]
set -u
Q=$1
EXT=$2
PRELOAD=${3:-}
. "$(dirname "$0")/../testlib/cli.sh"
if ! command -v sqlite3 >/dev/null; then echo "sqlite3 shell missing"; exit 1; fi
if [ -n "$PRELOAD" ]; then
  export LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=detect_leaks=0
fi
export QUIRE_DATA_DIR="$T/client" QUIRE_METASTORE=none QUIRE_SYNC=normal
# expect_fail DESC -- command...: any non-zero exit.
expect_fail() {
  local what=$1; shift 2
  "$@" >"$T/out" 2>&1 && { bad "$what: exit 0, want a failure"; cat "$T/out"; return; }
  ok
}
# shell SQL...: the shell with the extension loaded on volume "shop".
shell() { sqlite3 -batch -cmd ".load '$EXT'" -cmd ".open 'file:shop?vfs=quire'" :memory: "$@"; }

expect 0 "create" -- shell "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price INT)" \
  "INSERT INTO items(name, price) VALUES ('apple', 3), ('pear', 4), ('plum', 5)"
expect 0 "read back" -- shell "SELECT group_concat(name) FROM items"
has "read back" "apple,pear,plum"
# .load without the suffix, several connections, the VFS outlives them.
expect 0 "stays loaded" -- sqlite3 -batch -cmd ".load '${EXT%.so}'" :memory: \
  ".open 'file:other?vfs=quire'" "CREATE TABLE t(x); INSERT INTO t VALUES (7)" \
  ".open 'file:shop?vfs=quire'" "SELECT sum(price) FROM items" \
  ".open 'file:other?vfs=quire'" "SELECT x FROM t" ".vfsinfo"
has "stays loaded: second volume" "^12$"
has "stays loaded: first volume again" "^7$"
has "vfsinfo" "vfs.zName *= \"quire\""
expect 0 "quire pragmas" -- shell "PRAGMA quire_status" "PRAGMA quire_version" "PRAGMA quire_pages"
has "status" "^volume=shop$"
has "version" "^quire [0-9]"
has "pages" "^sqlite_page_size=4096$"
expect 0 "quire_stats table" -- shell "SELECT count(*) > 20 FROM quire_stats"
has "quire_stats table" "^1$"
expect 0 "WAL refused" -- shell "PRAGMA journal_mode=WAL" "PRAGMA journal_mode" "SELECT count(*) FROM items"
if [ "$(grep -c '^delete$' "$T/out")" -eq 2 ] && grep -q '^3$' "$T/out"; then ok; else bad "WAL: $(cat "$T/out")"; fi
expect 1 "exclusive refused" -- shell "PRAGMA locking_mode=EXCLUSIVE"
has "exclusive refused" "locking_mode=EXCLUSIVE is not supported"
expect 1 "unknown quire pragma" -- shell "PRAGMA quire_frobnicate"
has "unknown quire pragma" "unknown pragma quire_frobnicate"
# A plain file from a quire connection: VACUUM INTO, .backup, .restore.
expect 0 "vacuum into" -- shell "VACUUM INTO '$T/plain.db'"
expect 0 "plain file" -- sqlite3 "$T/plain.db" "PRAGMA integrity_check" "SELECT count(*) FROM items"
has "plain file integrity" "^ok$"
has "plain file rows" "^3$"
expect 0 "backup" -- shell ".backup '$T/backup.db'"
expect 0 "backup file" -- sqlite3 "$T/backup.db" "SELECT group_concat(name) FROM items"
has "backup file" "apple,pear,plum"
sqlite3 "$T/backup.db" "INSERT INTO items(name, price) VALUES ('fig', 9)"
expect 0 "restore" -- sqlite3 -batch -cmd ".load '$EXT'" -cmd ".open 'file:restored?vfs=quire'" :memory: \
  ".restore '$T/backup.db'" "PRAGMA integrity_check" "SELECT group_concat(name) FROM items"
has "restore" "apple,pear,plum,fig"
expect 0 "import" -- sqlite3 -batch -cmd ".load '$EXT'" -cmd ".open 'file:imported?vfs=quire'" :memory: \
  "PRAGMA quire_import='$T/backup.db'" "SELECT count(*) FROM items"
has "import" "imported"
has "import rows" "^4$"
# Read-only: an unknown name is not created.
expect 0 "read-only unknown" -- sqlite3 -batch -cmd ".load '$EXT'" -cmd ".open 'file:nosuch?vfs=quire&mode=ro'" \
  :memory: "SELECT 1"
has "read-only unknown: the shell says" "unable to open database"
has "read-only unknown: quire says why" "no volume named 'nosuch'"

# quire sql
QUIRE_SQLITE_EXT="$EXT" expect 0 "quire sql" -- "$Q" sql shop "SELECT name FROM items WHERE price = 4"
has "quire sql" "^pear$"
QUIRE_SQLITE_EXT="$EXT" expect_fail "quire sql --readonly" -- "$Q" sql --readonly shop "DELETE FROM items"
has "quire sql --readonly" "readonly"
QUIRE_SQLITE_EXT="$EXT" expect 0 "quire sql --print" -- "$Q" sql --print --vid 11111111111111111111111 shop
has "quire sql --print" "vfs=quire&vid=11111111111111111111111"
QUIRE_SQLITE_EXT="$T/nope.so" expect 1 "quire sql without the extension" -- "$Q" sql shop "SELECT 1"
has "quire sql without the extension" "cannot find the extension"
expect 2 "quire sql without a name" -- "$Q" sql
expect 2 "quire sql with a path" -- "$Q" sql ./shop.db

# Python's sqlite3 module (Debian's python3; a Python built without
# extension loading is skipped).
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
if "$PY" -c "import sqlite3; sqlite3.connect(':memory:').enable_load_extension" 2>/dev/null; then
  cat >"$T/recipe.py" <<EOF
import sqlite3
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension("$EXT")
db = sqlite3.connect("file:shop?vfs=quire", uri=True)
db.execute("INSERT INTO items(name, price) VALUES ('kiwi', 6)")
db.commit()
print(",".join(r[0] for r in db.execute("SELECT name FROM items ORDER BY id")))
print(dict(db.execute("SELECT name, value FROM quire_stats WHERE scope = 'volume'"))["commits"] > 0)
status = db.execute("PRAGMA quire_status").fetchone()[0]
print([l for l in status.splitlines() if l.startswith("volume=")][0])
EOF
  expect 0 "python" -- "$PY" "$T/recipe.py"
  has "python rows" "apple,pear,plum,kiwi"
  has "python stats" "^True$"
  has "python status" "^volume=shop$"
else
  echo "no python3 with sqlite3 extension loading: skipping the Python recipe"
fi
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
