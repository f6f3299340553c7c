/*
 * net/http_server.h — the HTTP server every quire service runs on
 * (libmicrohttpd, a pool of threads each with its own epoll loop).
 *
 * A service registers routes (method + exact path → handler) and starts the
 * server. Handlers run on a pool of worker threads (the connection is
 * suspended meanwhile), so a slow one holds no server thread. The server
 * owns everything generic: it accepts connections through its front door
 * (net/http_guard.h: connection caps, per-address caps, non-HTTP bytes,
 * header and body receive deadlines and a minimum body rate), rejects
 * ambiguous framing (two Content-Length headers, Transfer-Encoding with
 * Content-Length: 400 and close), reads the body up to a cap (413 past it,
 * answered before the body is read when Content-Length says so), checks the
 * content type of POSTs (415), answers unknown paths (404) and wrong
 * methods (405), refuses work beyond max_receiving (bodies arriving) and
 * max_inflight (complete requests being handled) with 503 and Retry-After,
 * serves GET /health, /ready (503 when saturated) and /metrics, and records
 * per-endpoint request counts and latencies. Handlers see a complete body
 * and a deadline, and answer with quire__http_respond*().
 *
 * Long polls: a handler may park its request (quire__http_req_park) instead of
 * answering; some other thread later calls quire__http_req_wake, and the
 * handler runs again on a worker with quire__http_req_resumed() true
 * and must answer then. Parked requests do not hold a server thread and do
 * not count against max_inflight.
 *
 * Shutdown (quire__http_server_stop): stop accepting, answer new requests on
 * open connections with 503, run the drain callback (which must wake every
 * parked request), wait for in-flight requests up to a deadline, stop.
 */
#ifndef QUIRE_NET_HTTP_SERVER_H
#define QUIRE_NET_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "net/auth.h"
#include "net/metrics.h"

typedef struct quire_http_server quire_http_server;
typedef struct quire_http_req quire_http_req;

/* Runs on a server thread; must answer with quire__http_respond*() or park. */
typedef void (*quire_http_handler)(void *ctx, quire_http_req *req);
/* GET /ready: 0 when the service can serve (its object store is reachable). */
typedef int (*quire_http_ready_fn)(void *ctx);
/* Called once at the start of shutdown: wake every parked request. */
typedef void (*quire_http_drain_fn)(void *ctx);

/* For min_body_rate: no minimum. */
#define QUIRE_HTTP_NO_MIN_RATE 0xFFFFFFFFu

struct quire_http_server_opts {
  const char *listen;       /* "HOST:PORT"; PORT 0 picks a free port */
  unsigned threads;         /* server threads, each with its own epoll loop (default 4) */
  unsigned workers;         /* threads running handlers (default 64) */
  unsigned max_connections; /* open connections (default 1024); more are refused */
  unsigned max_per_address; /* open connections from one client address (default 128) */
  unsigned max_inflight;    /* requests being handled, bodies complete (default 256); more get 503 */
  unsigned max_receiving;   /* requests receiving their bodies (default: max_inflight); more get 503 */
  size_t max_body;          /* request body cap in bytes (default 16 MiB) */
  /* Per-request deadline (default 30000): the body must be complete this
   * long after the headers (else 408 and close), and handlers honour it. */
  unsigned deadline_ms;
  unsigned header_timeout_ms; /* headers complete after the first byte (default 10000), else 408 */
  unsigned min_body_rate;     /* bytes/s a body must keep after 2 s (default 1024; QUIRE_HTTP_NO_MIN_RATE) */
  unsigned idle_timeout_s;    /* idle keep-alive connections close after (default 60) */
  quire_metrics *metrics;     /* may be NULL; not owned */
  const char *name;           /* for logs: "metastore" */
  /* Bearer tokens, permissions, volume scope and quotas (net/auth.h,
   * docs/SECURITY.md); not owned. NULL: no authentication at all, which
   * the server logs loudly when it starts. */
  quire_auth *auth;
  /* TLS: PEM files of the certificate (chain) and its private key, read at
   * create; both set, or neither. The port then speaks only HTTPS. */
  const char *tls_cert_file, *tls_key_file;
};

#define QUIRE_CONTENT_PROTOBUF "application/x-protobuf"

int quire__http_server_create(const struct quire_http_server_opts *opts, quire_http_server **out);

/* What a route is about, for the volume scope of tokens. */
enum quire_route_scope {
  /* The body is a protobuf message whose field 1 is the volume id (every
   * volume request of docs/PROTOCOL.md): the server reads it once the body
   * is in and answers 403 unless the token covers that volume. */
  QUIRE_SCOPE_VOLUME = 1,
  /* Not about one volume (service-wide admin, GC): the token must cover
   * every volume. */
  QUIRE_SCOPE_SERVICE = 2
};

/* Before start. method "GET" or "POST"; POST routes require the protobuf
 * content type. Up to 32 routes. perm (core/token.h: QUIRE_PERM_READ,
 * _WRITE, _ADMIN) is what the token must carry, scope what it must cover.
 * With auth on, the server answers before the handler runs: 401 for a
 * missing, malformed, badly signed or expired token; 403 for a genuine one
 * without perm or not covering the scope; 429 with Retry-After when the
 * token is over its quota. The handler never sees such a request. */
int quire__http_server_route_auth(quire_http_server *s, const char *method, const char *path, unsigned perm,
                                  enum quire_route_scope scope, quire_http_handler fn, void *ctx);
/* A check of route (method, path), run after the token checks and before
 * the handler, on the server thread, with the whole body: returns 0, or a
 * QUIRE_E* (message set) that is answered instead of running the handler.
 * For cheap policy checks (per-volume limits), not work. */
typedef int (*quire_http_check_fn)(void *ctx, quire_http_req *r, const uint8_t *body, size_t len);
int quire__http_server_route_check(quire_http_server *s, const char *method, const char *path,
                                   quire_http_check_fn fn, void *ctx);

/* A route that declares nothing: admin on the whole service (fails closed;
 * declare with _route_auth instead). */
int quire__http_server_route(quire_http_server *s, const char *method, const char *path,
                             quire_http_handler fn, void *ctx);
void quire__http_server_set_ready(quire_http_server *s, quire_http_ready_fn fn, void *ctx);
void quire__http_server_set_drain(quire_http_server *s, quire_http_drain_fn fn, void *ctx);
/* Binds and starts serving. -errno if the address cannot be bound. */
int quire__http_server_start(quire_http_server *s);
/* The bound port (after start). */
uint16_t quire__http_server_port(const quire_http_server *s);
/* Open connections (waiting for their first byte or served); 0 when not running. */
unsigned quire__http_server_connections(quire_http_server *s);
/* Graceful stop (see the file comment), waiting at most drain_ms for
 * in-flight requests. Returns the number of requests cut off. */
unsigned quire__http_server_stop(quire_http_server *s, unsigned drain_ms);
/* Stops if running and frees. Accepts NULL. */
void quire__http_server_destroy(quire_http_server *s);
/* 1 once stop has begun. */
int quire__http_server_closing(quire_http_server *s);

/* --- inside a handler ---------------------------------------------------- */
/* The caller's verified token, or NULL when the server runs without auth. */
const struct quire_token *quire__http_req_token(const quire_http_req *r);
/* The server's auth (limits and quotas), or NULL when it runs without. */
quire_auth *quire__http_req_auth(const quire_http_req *r);
const uint8_t *quire__http_req_body(const quire_http_req *r, size_t *len);
/* Absolute CLOCK_MONOTONIC ms by which the request should be answered. */
uint64_t quire__http_req_deadline_ms(const quire_http_req *r);
const char *quire__http_req_path(const quire_http_req *r);
/* Copies body. Returns 0, or QUIRE_ENOMEM (the connection is then closed). */
int quire__http_respond(quire_http_req *r, int status, const char *content_type, const void *body,
                        size_t len);
/* Status and Error{code, message} for rc; message NULL uses quire_errmsg()
 * or the code's text. 503 answers carry Retry-After. */
int quire__http_respond_error(quire_http_req *r, int rc, const char *message);

/* Streaming answers (the pagestore's read_pages). The handler (or the
 * thread that took a parked request, quire__http_req_unpark) answers with a
 * stream and produces it, or hands it to a producer on another thread, which
 * appends bytes with quire__http_stream_write and finishes with
 * quire__http_stream_end. While the stream has nothing to send the
 * connection is suspended, so a slow producer holds no server thread.
 * Writes are corked: the connection is woken to send once 64 KiB wait, on
 * quire__http_stream_flush, or at the end — a small answer written in a few
 * pieces costs one wake-up, not one per piece; a producer about to wait for
 * something slow flushes first. At most max_buffer bytes wait in the
 * stream: write blocks while it is full (back-pressure), except that one
 * write into an empty buffer may be larger. The stream is shared by the
 * server and the producer; the producer must call _end exactly once and not
 * touch the stream afterwards. Writes after the client went away return
 * QUIRE_ECLOSED (quire__http_stream_cancelled tells it early). */
typedef struct quire_http_stream quire_http_stream;
int quire__http_respond_stream(quire_http_req *r, int status, const char *content_type, size_t max_buffer,
                               quire_http_stream **out);
int quire__http_stream_write(quire_http_stream *st, const void *p, size_t n);
/* Appends n bytes produced in place: fill(ctx, dst) writes exactly n bytes
 * at dst (inside the stream's buffer, under its lock: keep it short). Saves
 * a copy for large frames. Same blocking and errors as _write. */
int quire__http_stream_write_fn(quire_http_stream *st, size_t n, void (*fill)(void *ctx, uint8_t *dst),
                                void *ctx);
/* Wakes the connection to send what waits (see corking above). */
void quire__http_stream_flush(quire_http_stream *st);
/* failed != 0 cuts the response off (the client sees a truncated body). */
void quire__http_stream_end(quire_http_stream *st, int failed);
int quire__http_stream_cancelled(quire_http_stream *st);

/* Per-request state for a handler (e.g. a long-poll waiter); freed with
 * free_fn when the request completes. */
void quire__http_req_set_user(quire_http_req *r, void *user, void (*free_fn)(void *));
void *quire__http_req_user(const quire_http_req *r);

/* Parks the request (long poll). Call from the handler while holding the
 * lock that also guards the wake-up, then return without answering. */
void quire__http_req_park(quire_http_req *r);
/* Resumes a parked request exactly once; any thread. */
void quire__http_req_wake(quire_http_req *r);
/* Instead of a wake: takes a parked request back in flight on the calling
 * thread (any thread), which must then answer it with quire__http_respond*
 * itself — the handler does not run again, and no other thread is woken
 * until the answer is there. Call under the lock that also guarded the park,
 * so the request is known to be parked and still there. */
void quire__http_req_unpark(quire_http_req *r);
/* 1 when the handler runs again after a wake. */
int quire__http_req_resumed(const quire_http_req *r);

#endif
