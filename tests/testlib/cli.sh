# tests/testlib/cli.sh — sourced by the CLI test scripts: a private temp dir
# $T (removed at exit), pass/fail counters, ok/bad, and expect.
#   expect <exit code> <description> -- command...   (its output is in $T/out)
#   has <description> <pattern>                       (the last output matches)
mkdir -p "${QUIRE_TEST_TMP:-/tmp}"
T=$(mktemp -d "${QUIRE_TEST_TMP:-/tmp}/quire-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
expect() {
  local want=$1 what=$2; shift 3
  "$@" >"$T/out" 2>&1; local got=$?
  if [ "$got" -ne "$want" ]; then bad "$what: exit $got, want $want"; cat "$T/out"; else ok; fi
}
has() {
  if grep -q -- "$2" "$T/out"; then ok; else bad "$1: output lacks '$2'"; cat "$T/out"; fi
}
