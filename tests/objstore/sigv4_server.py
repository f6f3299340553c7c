#!/usr/bin/env python3
"""A loopback HTTP server that checks the AWS SigV4 signature of every
request it receives, computed independently from the request as received
(s3rver does not verify v4 signatures). Prints its port, serves until it
gets POST /done, then exits 0 if every signature matched, 1 otherwise.
Answers are minimal S3-like responses so the client proceeds."""
import hashlib, hmac, http.server, sys, urllib.parse

SECRET = sys.argv[1] if len(sys.argv) > 1 else "S3RVER"
checked, bad = 0, 0


def uri_encode(s, slash_ok):
    return urllib.parse.quote(s, safe="-_.~" + ("/" if slash_ok else ""))


def verify(handler, body):
    global checked, bad
    h = {k.lower(): v for k, v in handler.headers.items()}
    auth = h.get("authorization", "")
    try:
        cred = auth.split("Credential=")[1].split(",")[0]
        signed = auth.split("SignedHeaders=")[1].split(",")[0]
        sig = auth.split("Signature=")[1].strip()
    except IndexError:
        print("no SigV4 authorization on", handler.command, handler.path, file=sys.stderr)
        bad += 1
        return
    path, _, query = handler.path.partition("?")
    pairs = []
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        pairs.append((uri_encode(urllib.parse.unquote(k), False), uri_encode(urllib.parse.unquote(v), False)))
    pairs.sort()
    canon_query = "&".join(f"{k}={v}" for k, v in pairs)
    canon_path = uri_encode(urllib.parse.unquote(path), True)
    for name in signed.split(";"):
        if name not in h:
            print(f"signed header {name} not sent ({handler.command} {handler.path})", file=sys.stderr)
            bad += 1
            return
    canon_headers = "".join(f"{n}:{' '.join(h[n].split())}\n" for n in signed.split(";"))
    payload = h.get("x-amz-content-sha256", "")
    if payload not in ("UNSIGNED-PAYLOAD", hashlib.sha256(body).hexdigest()):
        print("bad x-amz-content-sha256", file=sys.stderr)
        bad += 1
        return
    creq = "\n".join([handler.command, canon_path, canon_query, canon_headers, signed, payload])
    scope = cred.split("/", 1)[1]
    sts = "\n".join(["AWS4-HMAC-SHA256", h["x-amz-date"], scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + SECRET).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    checked += 1
    if hmac.new(key, sts.encode(), hashlib.sha256).hexdigest() != sig:
        print(f"signature mismatch: {handler.command} {handler.path}\n{creq}", file=sys.stderr)
        bad += 1


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body=b"", extra=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"0123456789abcdef"')
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        if self.headers.get("Expect", "").lower() == "100-continue":
            pass  # BaseHTTPRequestHandler answers 100 itself (handle_expect_100)
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        verify(self, b"")
        if "list-type=2" in self.path:
            self.reply(200, b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
        elif "Range" in self.headers:
            self.reply(206, b"0123", [("Content-Range", "bytes 0-3/100")])
        else:
            self.reply(200, b"hello")

    def do_HEAD(self):
        verify(self, b"")
        self.reply(200, b"")

    def do_PUT(self):
        verify(self, self.body())
        self.reply(200)

    def do_DELETE(self):
        verify(self, b"")
        self.reply(204)

    def do_POST(self):
        self.reply(200)
        self.server.done = True

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
srv.done = False
print(srv.server_address[1], flush=True)
while not srv.done:
    srv.handle_request()
print(f"sigv4: {checked} signatures checked, {bad} bad", file=sys.stderr)
sys.exit(1 if bad or checked < 5 else 0)
