#!/usr/bin/env bash
# scripts/s3rver.sh — a real S3 REST endpoint on loopback for the S3 tests
# and benchmarks (s3rver, from npm).
#
#   scripts/s3rver.sh install        install s3rver if missing (cached)
#   scripts/s3rver.sh start WORKDIR  start it on a free 127.0.0.1 port with
#                                    WORKDIR/data as storage and bucket
#                                    "quire-test"; writes WORKDIR/pid and
#                                    WORKDIR/port, waits until it answers
#   scripts/s3rver.sh stop WORKDIR   stop the one started in WORKDIR
#
# The cache is $QUIRE_S3RVER_DIR or ~/.cache/quire-s3rver (npm install
# --prefix, only when missing). Failing to install is an error, never a
# silent skip. Credentials for s3rver: S3RVER / S3RVER.
set -euo pipefail
S3RVER_VERSION=3.7.1
CACHE=${QUIRE_S3RVER_DIR:-${HOME:-/tmp}/.cache/quire-s3rver}
BIN="$CACHE/node_modules/.bin/s3rver"

install() {
  if [ -x "$BIN" ]; then return 0; fi
  command -v npm >/dev/null || { echo "s3rver.sh: npm is missing (scripts/deps.sh installs nodejs and npm)" >&2; exit 1; }
  mkdir -p "$CACHE"
  echo "s3rver.sh: installing s3rver@$S3RVER_VERSION into $CACHE" >&2
  # A lock so parallel tests do not install twice.
  (
    flock 9
    [ -x "$BIN" ] || npm install --prefix "$CACHE" --no-audit --no-fund --loglevel=error "s3rver@$S3RVER_VERSION" >&2
  ) 9>"$CACHE/.install.lock"
  [ -x "$BIN" ] || { echo "s3rver.sh: s3rver did not install" >&2; exit 1; }
}

start() {
  local dir=$1
  install
  mkdir -p "$dir/data"
  # s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3
  # only offers through its legacy provider.
  NODE_OPTIONS="${NODE_OPTIONS:-} --openssl-legacy-provider" "$BIN" -d "$dir/data" -a 127.0.0.1 -p 0 --configure-bucket quire-test >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  local port=""
  for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { echo "s3rver.sh: s3rver exited:" >&2; cat "$dir/log" >&2; exit 1; }
    sleep 0.05
  done
  [ -n "$port" ] || { echo "s3rver.sh: s3rver did not start" >&2; cat "$dir/log" >&2; stop "$dir"; exit 1; }
  echo "$port" >"$dir/port"
  echo "$port"
}

stop() {
  local dir=$1
  [ -f "$dir/pid" ] || return 0
  local pid; pid=$(cat "$dir/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?WORKDIR}" ;;
  stop) stop "${2:?WORKDIR}" ;;
  *) echo "usage: $0 install | start WORKDIR | stop WORKDIR" >&2; exit 2 ;;
esac
