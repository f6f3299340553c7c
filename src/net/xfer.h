/*
 * net/xfer.h — the one libcurl layer under every quire HTTP client: the
 * service client (net/http_client.c, speaking to the metastore and the
 * pagestore) and the S3 object store (objstore/objstore_s3.c).
 *
 * It owns what both need and neither should do twice:
 *   - a pool of idle connections (an easy handle driven by its own multi
 *     handle, whose connection cache keeps the TCP connection alive between
 *     requests from any thread);
 *   - running one transfer under an absolute deadline and a cancel token:
 *     the transfer is driven with curl_multi_poll, and a cancel wakes the
 *     poll at once (curl_multi_wakeup from the firing thread), so a cancelled
 *     or timed-out call returns within milliseconds whatever the server does;
 *   - the parsing of the response headers both clients care about (status
 *     line, Retry-After).
 * Retry policy (how long to wait between attempts) is util/backoff.h; what
 * to retry is the caller's business (RPC status codes and S3 status codes
 * differ).
 *
 * Thread-safety: a pool is thread-safe; a borrowed connection belongs to one
 * thread until it is given back.
 */
#ifndef QUIRE_NET_XFER_H
#define QUIRE_NET_XFER_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "util/cancel.h"

typedef struct quire_xfer_pool quire_xfer_pool;
typedef struct quire_xfer_conn quire_xfer_conn;

/* A pool keeping at most max_idle idle connections (0: 32). QUIRE_ENOMEM. */
int quire__xfer_pool_create(unsigned max_idle, quire_xfer_pool **out);
/* Frees the pool and its idle connections (accepts NULL). No connection
 * may be borrowed. */
void quire__xfer_pool_destroy(quire_xfer_pool *p);

/* Borrows an idle connection or makes a new one. Its easy handle has been
 * curl_easy_reset (no options; the live connection is kept) and has the
 * options every quire transfer uses (NOSIGNAL, TCP_NODELAY, TCP keep-alive).
 * NULL when out of memory. */
quire_xfer_conn *quire__xfer_borrow(quire_xfer_pool *p);
/* The easy handle to set the request's options on. */
CURL *quire__xfer_easy(quire_xfer_conn *x);
/* Gives x back: kept for reuse when reusable (the last transfer completed
 * and its connection may carry another request), else freed. */
void quire__xfer_give_back(quire_xfer_pool *p, quire_xfer_conn *x, int reusable);

/* Performs the transfer configured on x's easy handle until it completes,
 * deadline_ms passes (absolute, quire__now_ms(); 0 = none), or cancel fires
 * (may be NULL). Returns 0 with curl's result in *result when the transfer
 * ended by itself (success or a transport failure, including a write or
 * header callback that aborted it); QUIRE_ECANCELED or QUIRE_ETIMEDOUT
 * (message set) when it was stopped; QUIRE_ENOMEM / QUIRE_EIO when curl's
 * multi interface fails. A stopped transfer's connection must not be reused. */
int quire__xfer_run(quire_xfer_conn *x, uint64_t deadline_ms, quire_cancel *cancel, CURLcode *result);

/* Response header helpers, for CURLOPT_HEADERFUNCTION callbacks (line is not
 * NUL-terminated). A status line "HTTP/1.1 503 ..." gives its code (1), else
 * 0. A new status line starts a new response (100 Continue, redirects):
 * reset what was parsed. */
int quire__xfer_status_line(const char *line, size_t len, long *status);
/* "Retry-After: N" (delay-seconds) gives N * 1000 ms, capped at one hour
 * (1); the HTTP-date form and anything else give 0. */
int quire__xfer_retry_after(const char *line, size_t len, unsigned *ms);

#endif
