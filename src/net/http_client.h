/*
 * net/http_client.h — the HTTP client for quire's own services, on the
 * shared libcurl layer (net/xfer.h).
 *
 * One client per base URL ("http://127.0.0.1:3001"). Connections are kept
 * alive and reused from a small pool. Calls are thread-safe.
 * quire__http_call speaks the RPC convention of docs/PROTOCOL.md: POST a
 * protobuf body, 2xx → the response body, anything else → the QUIRE_E* of the
 * Error body with its message in quire_errmsg().
 *
 * Every call runs under a struct quire_call: an absolute deadline for the
 * whole call, retries and backoff included, and an optional cancel token.
 * A cancelled call returns QUIRE_ECANCELED within milliseconds (the transfer
 * is woken, not polled); a call whose deadline passes returns
 * QUIRE_ETIMEDOUT. Idempotent calls are retried on connection failures and
 * on 503 / 429 with jittered exponential backoff (util/backoff.h), waiting
 * at least the server's Retry-After; a retry that could not start before the
 * deadline is not made (the last error is returned at once).
 *
 * Authentication: a bearer token (opts.token) or a callback (opts.auth_fn)
 * that produces the Authorization header value for each attempt.
 */
#ifndef QUIRE_NET_HTTP_CLIENT_H
#define QUIRE_NET_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/buf.h"
#include "util/cancel.h"

typedef struct quire_http_client quire_http_client;

/* Per-call limits. Pass NULL wherever a `const struct quire_call *` is taken
 * for the defaults (now + the client's timeout_ms, not cancellable). The
 * struct is read during the call only; cancel must outlive the call. */
struct quire_call {
  uint64_t deadline_ms; /* absolute, on the quire__now_ms() monotonic clock (util/clock.h);
                           0 = now + the client's timeout_ms */
  quire_cancel *cancel; /* NULL: not cancellable */
};

struct quire_http_client_opts {
  const char *base_url;        /* "http://HOST:PORT", no trailing slash */
  unsigned connect_timeout_ms; /* default 5000 */
  unsigned timeout_ms;         /* default deadline of a whole call (retries included), default 30000 */
  unsigned retries;            /* extra attempts for idempotent calls, default 3 */
  int no_retry;                /* 1: never retry (tests of lost replies) */
  unsigned backoff_ms;         /* first retry delay, doubled each time (capped at 5 s), default 50 */
  size_t max_response;         /* buffered response body cap, default 64 MiB */
  /* Authentication (docs/PROTOCOL.md "Authentication"). token: sent as
   * "Authorization: Bearer <token>"; copied at create. auth_fn, when set,
   * overrides token: called before every attempt (from any calling thread,
   * possibly concurrently) to write the header value into buf (cap bytes,
   * NUL-terminated): either a whole value ("Bearer abc") or a bare token,
   * which is sent as "Bearer <token>". An empty value sends no header. A
   * nonzero return fails the call with that value (QUIRE_EUNAUTHORIZED if it
   * is positive) before anything is sent. Values with CR or LF are refused
   * (QUIRE_EINVAL). */
  const char *token;
  int (*auth_fn)(void *ctx, char *buf, size_t cap);
  void *auth_ctx;
  /* https:// URLs: the server certificate is verified (always) against
   * this PEM CA bundle, or when NULL the one named by the environment
   * variable QUIRE_CA, or the system CAs; copied at create. */
  const char *ca_file;
};

int quire__http_client_create(const struct quire_http_client_opts *o, quire_http_client **out);
void quire__http_client_destroy(quire_http_client *c); /* accepts NULL */
/* A client for a service at url: opts (may be NULL) with base_url set to url
 * and, when opts leaves it 0, max_response set to max_response. */
int quire__http_client_open(const char *url, const struct quire_http_client_opts *opts, size_t max_response,
                            quire_http_client **out);

/* The absolute deadline a call under `call` (may be NULL) has: its
 * deadline_ms, or now + the client's timeout_ms. */
uint64_t quire__http_deadline(const quire_http_client *c, const struct quire_call *call);

/* One request, no retries. On any HTTP answer returns 0 with *status and the
 * body in resp (reset first). Transport failures: QUIRE_EUNAVAILABLE
 * (connect, reset), QUIRE_ETIMEDOUT (deadline), QUIRE_ECANCELED,
 * QUIRE_ETOOLARGE (response over the cap). content_type NULL sends none. */
int quire__http_request(quire_http_client *c, const char *method, const char *path, const char *content_type,
                        const void *body, size_t len, const struct quire_call *call, int *status,
                        quire_buf *resp);

/* RPC: POST path with a protobuf body. 0 and the body in resp on 2xx; the
 * mapped QUIRE_E* otherwise (see the file comment for retries). */
int quire__http_call(quire_http_client *c, const char *path, const void *body, size_t len,
                     const struct quire_call *call, int idempotent, quire_buf *resp);

/* RPC with a body in pieces: like quire__http_call with the body
 * iov[0] ‖ iov[1] ‖ … ‖ iov[niov-1], sent as it is (curl reads it through a
 * callback into its own upload buffer) without ever being joined into one
 * buffer. The pieces are read during the call only, from the start again on
 * every retry; empty pieces are fine. */
int quire__http_call_iov(quire_http_client *c, const char *path, const struct iovec *iov, size_t niov,
                         const struct quire_call *call, int idempotent, quire_buf *resp);

/* Streaming RPC: like quire__http_call, but a 2xx body is handed to sink as
 * it arrives, piece by piece, never buffered whole. sink returns 0 to go on;
 * a nonzero return stops the transfer and the call returns that value.
 * Retries happen only while sink has received nothing (*delivered, if not
 * NULL, says whether it did): once a piece went to the sink, a failure is
 * returned as it is (QUIRE_EUNAVAILABLE for a connection lost midway) and
 * the caller decides. A 2xx answer that completes returns 0; the sink saw
 * every byte. */
typedef int (*quire_http_sink_fn)(void *ctx, const uint8_t *data, size_t len);
int quire__http_call_stream(quire_http_client *c, const char *path, const void *body, size_t len,
                            const struct quire_call *call, int idempotent, quire_http_sink_fn sink,
                            void *sink_ctx, int *delivered);

/* For a caller that retries a whole operation itself (read_pages resuming an
 * answer cut off after some pages): waits before its retry number `retry`
 * (0 = the first) with this client's backoff, under call (whose deadline
 * should be fixed by the caller with quire__http_deadline, so that every
 * retry shares it). 0: go ahead; QUIRE_EUNAVAILABLE: retry is past the
 * client's retries; QUIRE_ETIMEDOUT: the wait would pass the deadline;
 * QUIRE_ECANCELED. Records no error message. */
int quire__http_retry_wait(const quire_http_client *c, unsigned retry, const struct quire_call *call);

#endif
