#!/usr/bin/env bash
# The metastore's start-up probe on s3:// (against s3rver, which ignores
# If-None-Match): without --single-instance the metastore refuses to start
# and says why; with it, it starts, warns, and commits work end to end.
# If s3rver cannot be installed this test fails; it never skips.
set -euo pipefail
Q=$1 S3RVER_SH=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/quire-ms-s3.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; "$S3RVER_SH" stop "$dir" || true; rm -rf "$dir"; }
trap cleanup EXIT
port=$("$S3RVER_SH" start "$dir")
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_ENDPOINT_URL AWS_SESSION_TOKEN
url="s3://quire-test/ms-$$?endpoint=http://127.0.0.1:$port&region=us-east-1"

set +e
"$Q" metastore --no-auth --store "$url" --listen 127.0.0.1:0 >"$dir/out" 2>"$dir/err"
rc=$?
set -e
[ "$rc" -eq 1 ] || { echo "FAIL: want exit 1 without --single-instance, got $rc"; cat "$dir/err"; exit 1; }
grep -q "does not honour conditional create" "$dir/err" || { echo "FAIL: no reason given"; cat "$dir/err"; exit 1; }
grep -q -- "--single-instance" "$dir/err" || { echo "FAIL: the way out is not named"; cat "$dir/err"; exit 1; }
echo "refused without --single-instance: $(cat "$dir/err")"

"$Q" metastore --no-auth --store "$url" --listen 127.0.0.1:0 --single-instance >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 1 200); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.05; done
grep -q "listening on" "$dir/out" || { echo "FAIL: did not start with --single-instance"; cat "$dir/err"; exit 1; }
grep -q "conditional create" "$dir/err" || { echo "FAIL: no warning"; cat "$dir/err"; exit 1; }
mport=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$dir/out" | head -1)
for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$mport/ready" >"$dir/ready" || true; grep -q ready "$dir/ready" && break; sleep 0.1; done
grep -q ready "$dir/ready" || { echo "FAIL: not ready"; cat "$dir/ready" "$dir/err"; exit 1; }
kill -TERM "$pid"; wait "$pid"; pid=
echo "started with --single-instance, ready, stopped cleanly"
