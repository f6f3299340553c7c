/*
 * net/http_client.h — the HTTP client for quire's own services (libcurl).
 *
 * One client per base URL ("http://127.0.0.1:3001"). Connections are kept
 * alive and reused: each call borrows an idle curl handle (with its open
 * connection) from a small pool and returns it. Calls are thread-safe.
 * quire__http_call speaks the RPC convention of docs/PROTOCOL.md: POST a
 * protobuf body, 2xx → the response body, anything else → the QUIRE_E* of the
 * Error body with its message in quire_errmsg(). Idempotent calls are retried
 * on transport failures and 503 with jittered exponential backoff.
 */
#ifndef QUIRE_NET_HTTP_CLIENT_H
#define QUIRE_NET_HTTP_CLIENT_H

#include <stddef.h>

#include "util/buf.h"

typedef struct quire_http_client quire_http_client;

struct quire_http_client_opts {
  const char *base_url;        /* "http://HOST:PORT", no trailing slash */
  unsigned connect_timeout_ms; /* default 5000 */
  unsigned timeout_ms;         /* whole call, default 30000 */
  unsigned retries;            /* extra attempts for idempotent calls, default 3 */
  int no_retry;                /* 1: never retry (tests of lost replies) */
  unsigned backoff_ms;         /* first retry delay, doubled each time, default 50 */
  size_t max_response;         /* response body cap, default 64 MiB */
};

int quire__http_client_create(const struct quire_http_client_opts *o, quire_http_client **out);
void quire__http_client_destroy(quire_http_client *c); /* accepts NULL */
/* A client for a service at url: opts (may be NULL) with base_url set to url
 * and, when opts leaves it 0, max_response set to max_response. */
int quire__http_client_open(const char *url, const struct quire_http_client_opts *opts, size_t max_response,
                            quire_http_client **out);

/* One request, no retries. On any HTTP answer returns 0 with *status and the
 * body in resp (reset first). Transport failures: QUIRE_EUNAVAILABLE
 * (connect, reset), QUIRE_ETIMEDOUT, QUIRE_ETOOLARGE (response over the cap).
 * timeout_ms 0 uses the client's. content_type NULL sends none. */
int quire__http_request(quire_http_client *c, const char *method, const char *path, const char *content_type,
                        const void *body, size_t len, unsigned timeout_ms, int *status, quire_buf *resp);

/* RPC: POST path with a protobuf body. 0 and the body in resp on 2xx; the
 * mapped QUIRE_E* otherwise. */
int quire__http_call(quire_http_client *c, const char *path, const void *body, size_t len,
                     unsigned timeout_ms, int idempotent, quire_buf *resp);

#endif
