#!/usr/bin/env bash
# TLS end to end: `quire server --tls-cert --tls-key` with a self-signed
# certificate made here (openssl), then
#  - curl with the certificate as CA gets /health over https; plain http on
#    the TLS port is closed without an answer;
#  - a C client (quire volume) given the CA (QUIRE_CA) and a token creates
#    and imports a volume (the pagestore reads the metastore over TLS too);
#  - a C client without the CA is refused (certificate not verified), and
#    so is one with the CA but no token (401).
set -u
Q=$1
. "$(dirname "$0")/../testlib/cli.sh"
command -v openssl >/dev/null || { echo "SKIP: openssl missing"; exit 0; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$T/key.pem" -out "$T/cert.pem" >"$T/openssl.out" 2>&1 || { cat "$T/openssl.out"; exit 1; }
"$Q" server --data "$T/srv" --metastore-listen 127.0.0.1:0 --pagestore-listen 127.0.0.1:0 \
  --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" >"$T/srv.out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do grep -q "pagestore listening" "$T/srv.out" && break; sleep 0.1; done
ms=$(grep "metastore listening" "$T/srv.out" | grep -o 'https://[0-9.:]*')
ps=$(grep "pagestore listening" "$T/srv.out" | grep -o 'https://[0-9.:]*')
[ -n "$ms" ] && [ -n "$ps" ] && ok || { bad "no https listeners"; cat "$T/srv.out"; exit 1; }
[ "$(curl -s --cacert "$T/cert.pem" "$ps/health")" = "ok" ] && ok || bad "https /health with the CA"
curl -s --max-time 5 "http://${ps#https://}/health" >"$T/plain" 2>&1; rc=$?
[ $rc -ne 0 ] && ! grep -q ok "$T/plain" && ok || bad "plain http on the TLS port was answered"
curl -s --max-time 5 "$ps/health" >/dev/null 2>&1; [ $? -ne 0 ] && ok || bad "curl without the CA was not refused"

export QUIRE_METASTORE=$ms QUIRE_PAGESTORE=$ps
TOKEN=$(cat "$T/srv/admin.token")
head -c 20000 /dev/urandom >"$T/img"
expect 0 "create over TLS" -- env QUIRE_CA="$T/cert.pem" QUIRE_TOKEN="$TOKEN" "$Q" volume create docs --data "$T/a"
vid=$(awk '{print $2}' "$T/out")
expect 0 "import over TLS" -- env QUIRE_CA="$T/cert.pem" QUIRE_TOKEN="$TOKEN" "$Q" volume import docs "$T/img" --data "$T/a"
expect 0 "export over TLS (pages fetched)" -- env QUIRE_CA="$T/cert.pem" QUIRE_TOKEN="$TOKEN" \
  "$Q" volume export "$vid" "$T/out.img" --data "$T/b"
cmp -s <(head -c 20000 "$T/out.img") "$T/img" && ok || bad "exported bytes differ"
expect 1 "a client without the CA is refused" -- env -u QUIRE_CA QUIRE_TOKEN="$TOKEN" \
  "$Q" volume export "$vid" "$T/out2.img" --data "$T/c" --timeout-ms 5000
has "the refusal says why" "TLS: SSL peer certificate"
expect 1 "a client with the CA but no token is refused" -- env -u QUIRE_TOKEN QUIRE_CA="$T/cert.pem" \
  "$Q" volume export "$vid" "$T/out3.img" --data "$T/d" --timeout-ms 5000
has "the refusal says why" "no Authorization header"
kill -TERM $pid; wait $pid; [ $? -eq 0 ] && ok || bad "server exit status"
echo "tls: $passes passed, $fails failed"
[ $fails -eq 0 ]
