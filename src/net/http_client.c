/*
 * net/http_client.c — the service HTTP client (see http_client.h) on the
 * shared libcurl layer (net/xfer.h).
 *
 * One attempt = one request on a pooled connection, driven by
 * quire__xfer_run under the call's deadline and cancel token. The retry loop
 * (run_call) decides what to retry and waits with quire__backoff_wait.
 *
 * Locking: none here; the pool locks its idle stack, a borrowed connection
 * is used by one thread.
 */
#include "net/http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/errmap.h"
#include "net/xfer.h"
#include "proto/pb.h"
#include "util/alloc.h"
#include "util/backoff.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

#define IDLE_MAX 32
#define EXPECT_THRESHOLD (256u << 10)
#define AUTH_MAX 4096
#define ERRBODY_MAX (64u << 10)
#define BACKOFF_CAP_MS 5000

struct quire_http_client {
  struct quire_http_client_opts o;
  char *base;    /* base_url without trailing '/' (o.base_url points here) */
  char *token;   /* copy of o.token, or NULL */
  char *ca_file; /* copy of o.ca_file, or NULL */
  quire_xfer_pool *pool;
};

int quire__http_client_create(const struct quire_http_client_opts *o, quire_http_client **out) {
  *out = NULL;
  if (!o->base_url || strncmp(o->base_url, "http", 4) != 0)
    return quire__err(QUIRE_EINVAL, "base url must start with http:// or https://");
  if (o->token && strpbrk(o->token, "\r\n"))
    return quire__err(QUIRE_EINVAL, "token must not contain CR or LF");
  quire_http_client *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  c->o = *o;
  c->base = quire__strdup(o->base_url);
  c->token = o->token && *o->token ? quire__strdup(o->token) : NULL;
  /* QUIRE_CA names the CA bundle for every client that was given none. */
  const char *ca = o->ca_file && *o->ca_file ? o->ca_file : getenv("QUIRE_CA");
  c->ca_file = ca && *ca ? quire__strdup(ca) : NULL;
  int rc = c->base && (c->token || !o->token || !*o->token) && (c->ca_file || !ca || !*ca) ? 0 : QUIRE_ENOMEM;
  if (!rc) rc = quire__xfer_pool_create(IDLE_MAX, &c->pool);
  if (rc) {
    quire__http_client_destroy(c);
    return rc;
  }
  size_t n = strlen(c->base);
  while (n > 0 && c->base[n - 1] == '/') c->base[--n] = '\0';
  c->o.base_url = c->base;
  c->o.token = c->token;
  c->o.ca_file = c->ca_file;
  if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 5000;
  if (!c->o.timeout_ms) c->o.timeout_ms = 30000;
  if (!c->o.backoff_ms) c->o.backoff_ms = 50;
  if (!c->o.max_response) c->o.max_response = 64u << 20;
  if (!o->retries) c->o.retries = 3;
  if (o->no_retry) c->o.retries = 0;
  *out = c;
  return 0;
}

void quire__http_client_destroy(quire_http_client *c) {
  if (!c) return;
  quire__xfer_pool_destroy(c->pool);
  quire__free(c->base);
  quire__free(c->token);
  quire__free(c->ca_file);
  quire__free(c);
}

int quire__http_client_open(const char *url, const struct quire_http_client_opts *opts, size_t max_response,
                            quire_http_client **out) {
  struct quire_http_client_opts o = {0};
  if (opts) o = *opts;
  o.base_url = url;
  if (!o.max_response) o.max_response = max_response;
  return quire__http_client_create(&o, out);
}

uint64_t quire__http_deadline(const quire_http_client *c, const struct quire_call *call) {
  if (call && call->deadline_ms) return call->deadline_ms;
  return quire__now_ms() + c->o.timeout_ms;
}

/* ---- one attempt ----------------------------------------------------------- */

struct attempt {
  /* the request */
  const char *method, *path, *content_type;
  const void *body;
  size_t len;
  /* or the body in pieces (len is their total), read by on_read from
   * (iov_at, iov_off) */
  const struct iovec *iov;
  size_t niov, iov_at, iov_off;
  /* where the body goes: a 2xx body to sink when set; otherwise (and any
   * non-2xx body) to resp */
  quire_http_sink_fn sink;
  void *sink_ctx;
  quire_buf *resp;
  /* results of the last attempt */
  long status;
  unsigned retry_after_ms;
  int delivered; /* sink got bytes (sticky across attempts) */
  int sink_rc;
  int too_large;
};

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  struct attempt *a = ud;
  size_t len = size * n;
  long status;
  unsigned ms;
  if (quire__xfer_status_line(line, len, &status)) {
    a->status = status; /* a new response (after 100 Continue): start over */
    a->retry_after_ms = 0;
  } else if (quire__xfer_retry_after(line, len, &ms)) {
    a->retry_after_ms = ms;
  }
  return len;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud) {
  struct attempt *a = ud;
  size_t n = size * nmemb;
  if (a->sink && a->status >= 200 && a->status < 300) {
    a->delivered = 1;
    int rc = a->sink(a->sink_ctx, (const uint8_t *)p, n);
    if (rc) {
      a->sink_rc = rc;
      return 0; /* aborts the transfer */
    }
    return n;
  }
  if (a->sink) { /* an error body: keep what fits, for the message */
    size_t room = a->resp->limit - a->resp->len;
    (void)quire__buf_append(a->resp, p, n < room ? n : room);
    return n;
  }
  int rc = quire__buf_append(a->resp, p, n);
  if (rc) {
    a->too_large = rc == QUIRE_ETOOLARGE;
    return 0; /* aborts the transfer */
  }
  return n;
}

/* curl asks for the next body bytes: copied from the pieces, in order. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *ud) {
  struct attempt *a = ud;
  size_t room = size * nitems, n = 0;
  while (room > 0 && a->iov_at < a->niov) {
    const struct iovec *v = &a->iov[a->iov_at];
    size_t take = v->iov_len - a->iov_off;
    if (take > room) take = room;
    if (take) memcpy(buf + n, (const uint8_t *)v->iov_base + a->iov_off, take);
    n += take;
    room -= take;
    a->iov_off += take;
    if (a->iov_off == v->iov_len) {
      a->iov_at++;
      a->iov_off = 0;
    }
  }
  return n;
}

/* curl rewinds the body (a redirect or a resend on a reused connection
 * that turned out dead): find the piece holding offset. */
static int on_seek(void *ud, curl_off_t offset, int origin) {
  struct attempt *a = ud;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > a->len) return CURL_SEEKFUNC_FAIL;
  size_t left = (size_t)offset;
  a->iov_at = 0;
  a->iov_off = 0;
  while (a->iov_at < a->niov && left >= a->iov[a->iov_at].iov_len) left -= a->iov[a->iov_at++].iov_len;
  a->iov_off = left;
  return CURL_SEEKFUNC_OK;
}

/* The Authorization header line into out ("" for none). */
static int auth_header(quire_http_client *c, char *out, size_t cap) {
  out[0] = '\0';
  char value[AUTH_MAX];
  value[0] = '\0';
  if (c->o.auth_fn) {
    int rc = c->o.auth_fn(c->o.auth_ctx, value, sizeof value);
    if (rc) return rc < 0 ? rc : quire__err(QUIRE_EUNAUTHORIZED, "auth callback refused (%d)", rc);
    value[sizeof value - 1] = '\0';
    if (strpbrk(value, "\r\n")) return quire__err(QUIRE_EINVAL, "auth callback returned CR or LF");
  } else if (c->token) {
    snprintf(value, sizeof value, "%s", c->token);
  }
  if (!value[0]) return 0;
  int n = snprintf(out, cap, "Authorization: %s%s", strchr(value, ' ') ? "" : "Bearer ", value);
  if (n < 0 || (size_t)n >= cap) return quire__err(QUIRE_EINVAL, "authorization value too long");
  return 0;
}

/* One request. 0 with a->status set when the server answered (any status);
 * a transport failure, the sink's value, QUIRE_ECANCELED or QUIRE_ETIMEDOUT
 * otherwise. */
static int attempt_once(quire_http_client *c, struct attempt *a, uint64_t deadline, quire_cancel *cancel) {
  a->status = 0;
  a->retry_after_ms = 0;
  a->sink_rc = 0;
  a->too_large = 0;
  a->iov_at = a->iov_off = 0; /* every attempt sends the body from its start */
  quire__buf_reset(a->resp);
  char url[1024];
  if ((size_t)snprintf(url, sizeof url, "%s%s", c->base, a->path) >= sizeof url)
    return quire__err(QUIRE_EINVAL, "url too long");
  char auth[AUTH_MAX + 64];
  int rc = auth_header(c, auth, sizeof auth);
  if (rc) return rc;
  quire_xfer_conn *x = quire__xfer_borrow(c->pool);
  if (!x) return QUIRE_ENOMEM;
  CURL *h = quire__xfer_easy(x);
  struct curl_slist *hdrs = NULL, *t;
  char ct[128];
  if (a->content_type) {
    snprintf(ct, sizeof ct, "Content-Type: %s", a->content_type);
    t = curl_slist_append(hdrs, ct);
    if (t) hdrs = t;
  }
  /* Small bodies go at once; big ones wait for 100 Continue, so a server
   * refusing them (413, 503) answers before the body is sent. */
  if (a->len < EXPECT_THRESHOLD) {
    t = curl_slist_append(hdrs, "Expect:");
    if (t) hdrs = t;
  }
  if (auth[0]) {
    t = curl_slist_append(hdrs, auth);
    if (!t) {
      curl_slist_free_all(hdrs);
      quire__xfer_give_back(c->pool, x, 1);
      return QUIRE_ENOMEM;
    }
    hdrs = t;
  }
  curl_easy_setopt(h, CURLOPT_URL, url);
  /* Page-sized answers: take them in 256 KiB reads, not curl's 16 KiB. */
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->o.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  /* https: the peer is always verified (curl's default, stated here). */
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (c->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
  if (strcmp(a->method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    if (a->iov) {
      curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(h, CURLOPT_READDATA, a);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, a);
      /* curl's upload buffer stays at its 64 KiB: setting a size makes
       * curl free and allocate it on every call, and a fresh 512 KiB is
       * 128 page faults. */
    } else {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, a->body ? a->body : "");
    }
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->len);
  } else if (strcmp(a->method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, a->method);
  }
  CURLcode cc = CURLE_OK;
  rc = quire__xfer_run(x, deadline, cancel, &cc);
  int reuse = rc == 0 && cc == CURLE_OK;
  if (rc == QUIRE_ECANCELED) {
    rc = quire__err(rc, "%s: cancelled", url);
  } else if (rc == QUIRE_ETIMEDOUT) {
    rc = quire__err(rc, "%s: deadline passed", url);
  } else if (rc) {
    /* curl's multi interface failed; message set */
  } else if (cc == CURLE_OK) {
    /* an answer */
  } else if ((cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR) && a->status >= 400) {
    /* The server answered (413, 503...) and closed while we were sending. */
  } else if (a->sink_rc) {
    rc = a->sink_rc;
  } else if (a->too_large) {
    rc = quire__err(QUIRE_ETOOLARGE, "%s: response over %zu bytes", a->path, a->resp->limit);
  } else if (cc == CURLE_OUT_OF_MEMORY || cc == CURLE_WRITE_ERROR) {
    rc = QUIRE_ENOMEM;
  } else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
             cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_ISSUER_ERROR) {
    /* the server could not be verified: retrying will not change that */
    rc = quire__err(QUIRE_EUNAUTHORIZED, "%s: TLS: %s", url, curl_easy_strerror(cc));
  } else {
    /* connect refused or timed out, reset, answer cut short: worth a retry */
    rc = quire__err(QUIRE_EUNAVAILABLE, "%s: %s", url, curl_easy_strerror(cc));
  }
  curl_slist_free_all(hdrs);
  quire__xfer_give_back(c->pool, x, reuse);
  return rc;
}

/* ---- calls ----------------------------------------------------------------- */

/* Turns a non-2xx answer into a QUIRE_E* with the server's message. */
static int decode_error(const char *path, long status, const quire_buf *body) {
  Quire__Common__V1__Error *e = quire__common__v1__error__unpack(&quire__pb_allocator, body->len, body->data);
  int rc;
  if (e && e->has_code) {
    rc = quire__errmap_rc(e->code, (int)status);
    quire__err(rc, "%s", e->message ? e->message : quire_strerror(rc));
  } else {
    rc = quire__errmap_rc(-1, (int)status);
    quire__err(rc, "%s: HTTP %ld", path, status);
  }
  if (e) quire__common__v1__error__free_unpacked(e, &quire__pb_allocator);
  return rc;
}

/* Attempts until an answer that is not worth retrying, the retries run out,
 * the deadline would pass, or the call is cancelled. */
static int run_call(quire_http_client *c, struct attempt *a, const struct quire_call *call, int idempotent) {
  uint64_t deadline = quire__http_deadline(c, call);
  quire_cancel *cancel = call ? call->cancel : NULL;
  unsigned attempts = idempotent ? c->o.retries + 1 : 1;
  for (unsigned n = 0;; n++) {
    int rc = attempt_once(c, a, deadline, cancel);
    int overloaded = 0;
    if (rc == 0) {
      if (a->status >= 200 && a->status < 300) return 0;
      rc = decode_error(a->path, a->status, a->resp);
      overloaded = a->status == 503 || a->status == 429;
    } else if (rc != QUIRE_EUNAVAILABLE) {
      return rc; /* cancelled, deadline, sink, local failure: final */
    }
    if (a->delivered || n + 1 >= attempts) return rc;
    unsigned delay = quire__backoff_delay(c->o.backoff_ms, BACKOFF_CAP_MS, n);
    unsigned after = overloaded ? a->retry_after_ms : 0;
    char why[256];
    snprintf(why, sizeof why, "%s", quire_errmsg());
    int w = quire__backoff_wait(delay, after, deadline, cancel);
    if (w == QUIRE_ECANCELED) return quire__err(w, "%s: cancelled while waiting to retry (%s)", a->path, why);
    if (w == QUIRE_ETIMEDOUT)
      return quire__err(rc, "%s (no retry: waiting %u ms would pass the deadline)", why,
                        delay > after ? delay : after);
    QLOG_DEBUG("%s: attempt %u failed (%s), retrying", a->path, n + 1, why);
  }
}

int quire__http_request(quire_http_client *c, const char *method, const char *path, const char *content_type,
                        const void *body, size_t len, const struct quire_call *call, int *status,
                        quire_buf *resp) {
  *status = 0;
  size_t saved_limit = resp->limit;
  if (resp->limit > c->o.max_response) resp->limit = c->o.max_response;
  struct attempt a = {
      .method = method, .path = path, .content_type = content_type, .body = body, .len = len, .resp = resp};
  int rc = attempt_once(c, &a, quire__http_deadline(c, call), call ? call->cancel : NULL);
  resp->limit = saved_limit;
  if (!rc) *status = (int)a.status;
  return rc;
}

/* An RPC whose answer goes to resp (capped at max_response): the attempt
 * a (method, path, body set) run with retries. */
static int call_buffered(quire_http_client *c, struct attempt *a, const struct quire_call *call,
                         int idempotent, quire_buf *resp) {
  size_t saved_limit = resp->limit;
  if (resp->limit > c->o.max_response) resp->limit = c->o.max_response;
  a->method = "POST";
  a->content_type = "application/x-protobuf";
  a->resp = resp;
  int rc = run_call(c, a, call, idempotent);
  resp->limit = saved_limit;
  return rc;
}

int quire__http_call(quire_http_client *c, const char *path, const void *body, size_t len,
                     const struct quire_call *call, int idempotent, quire_buf *resp) {
  struct attempt a = {.path = path, .body = body, .len = len};
  return call_buffered(c, &a, call, idempotent, resp);
}

int quire__http_call_iov(quire_http_client *c, const char *path, const struct iovec *iov, size_t niov,
                         const struct quire_call *call, int idempotent, quire_buf *resp) {
  size_t total = 0;
  for (size_t i = 0; i < niov; i++) {
    if (iov[i].iov_len > SIZE_MAX - total) return quire__err(QUIRE_EINVAL, "%s: body too long", path);
    total += iov[i].iov_len;
  }
  struct attempt a = {.path = path, .len = total, .iov = iov, .niov = niov};
  return call_buffered(c, &a, call, idempotent, resp);
}

int quire__http_call_stream(quire_http_client *c, const char *path, const void *body, size_t len,
                            const struct quire_call *call, int idempotent, quire_http_sink_fn sink,
                            void *sink_ctx, int *delivered) {
  quire_buf errbody;
  quire__buf_init(&errbody, ERRBODY_MAX);
  struct attempt a = {.method = "POST",
                      .path = path,
                      .content_type = "application/x-protobuf",
                      .body = body,
                      .len = len,
                      .sink = sink,
                      .sink_ctx = sink_ctx,
                      .resp = &errbody};
  int rc = run_call(c, &a, call, idempotent);
  quire__buf_free(&errbody);
  if (delivered) *delivered = a.delivered;
  return rc;
}

int quire__http_retry_wait(const quire_http_client *c, unsigned retry, const struct quire_call *call) {
  if (retry >= c->o.retries) return QUIRE_EUNAVAILABLE;
  unsigned delay = quire__backoff_delay(c->o.backoff_ms, BACKOFF_CAP_MS, retry);
  return quire__backoff_wait(delay, 0, quire__http_deadline(c, call), call ? call->cancel : NULL);
}
