#!/usr/bin/env python3
"""A loopback S3-like server that misbehaves on purpose, for the s3://
retry, timeout and hedging tests (tests/objstore/test_s3_extra.c --flaky).
Behaviour is chosen by the last component of the object key:

  fail503-N   the first N requests answer 503, then 200
  throttle    the first request answers 429 SlowDown, then 200
  slowfirst   the first GET is answered after 10 s, later ones at once
  hang        every request is answered after 10 s
  exists      a PUT answers 412 Precondition Failed (a conditional create lost)
  norange     a GET ignores Range and answers 200 with the whole object

GET /state answers "slow_sent=<0|1> requests=<n>"; POST /done stops the
server. Prints its port first."""
import http.server, sys, threading, time

lock = threading.Lock()
seen = {}
state = {"slow_sent": 0, "requests": 0}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"e"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n:
            self.rfile.read(n)
        path = self.path.split("?")[0]
        if path == "/state":
            self.send(200, f"slow_sent={state['slow_sent']} requests={state['requests']}".encode())
            return
        if path == "/done":
            self.send(200)
            threading.Thread(target=self.server.shutdown).start()
            return
        name = path.rsplit("/", 1)[-1]
        with lock:
            state["requests"] += 1
            count = seen[name] = seen.get(name, 0) + 1
        if name.startswith("fail503-") and count <= int(name.split("-")[1]):
            self.send(503, b"<Error><Code>SlowDown</Code></Error>")
        elif name == "exists" and self.command == "PUT":
            self.send(412, b"<Error><Code>PreconditionFailed</Code></Error>")
        elif name == "norange":
            self.send(200, b"0123456789abcdefghij")
        elif name == "throttle" and count == 1:
            self.send(429, b"<Error><Code>SlowDown</Code></Error>")
        elif name == "hang" or (name == "slowfirst" and count == 1 and self.command == "GET"):
            time.sleep(10)
            try:
                self.send(200, b"slow answer")
                if name == "slowfirst":
                    state["slow_sent"] = 1
            except OSError:
                pass
        else:
            self.send(200, b"fast answer")

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_any

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
