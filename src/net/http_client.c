/*
 * net/http_client.c — libcurl client (see http_client.h).
 *
 * Locking: c->mu guards the idle handle stack only; a borrowed handle is used
 * by one thread at a time with no lock held.
 */
#include "net/http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "net/errmap.h"
#include "proto/pb.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

#define IDLE_MAX 32
#define EXPECT_THRESHOLD (256u << 10)

struct quire_http_client {
  struct quire_http_client_opts o;
  char *base;
  pthread_mutex_t mu;
  CURL *idle[IDLE_MAX];
  unsigned nidle;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int quire__http_client_create(const struct quire_http_client_opts *o, quire_http_client **out) {
  *out = NULL;
  if (!o->base_url || strncmp(o->base_url, "http", 4) != 0)
    return quire__err(QUIRE_EINVAL, "base url must start with http:// or https://");
  pthread_once(&curl_once, curl_init_once);
  quire_http_client *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  c->o = *o;
  c->base = quire__strdup(o->base_url);
  if (!c->base) {
    quire__free(c);
    return QUIRE_ENOMEM;
  }
  size_t n = strlen(c->base);
  while (n > 0 && c->base[n - 1] == '/') c->base[--n] = '\0';
  c->o.base_url = c->base;
  if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 5000;
  if (!c->o.timeout_ms) c->o.timeout_ms = 30000;
  if (!c->o.backoff_ms) c->o.backoff_ms = 50;
  if (!c->o.max_response) c->o.max_response = 64u << 20;
  if (!o->retries) c->o.retries = 3;
  if (o->no_retry) c->o.retries = 0;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return 0;
}

void quire__http_client_destroy(quire_http_client *c) {
  if (!c) return;
  for (unsigned i = 0; i < c->nidle; i++) curl_easy_cleanup(c->idle[i]);
  pthread_mutex_destroy(&c->mu);
  quire__free(c->base);
  quire__free(c);
}

static CURL *borrow(quire_http_client *c) {
  CURL *h = NULL;
  pthread_mutex_lock(&c->mu);
  if (c->nidle) h = c->idle[--c->nidle];
  pthread_mutex_unlock(&c->mu);
  if (h) {
    curl_easy_reset(h); /* keeps the connection cache */
    return h;
  }
  return curl_easy_init();
}

static void give_back(quire_http_client *c, CURL *h) {
  pthread_mutex_lock(&c->mu);
  if (c->nidle < IDLE_MAX) {
    c->idle[c->nidle++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&c->mu);
  if (h) curl_easy_cleanup(h);
}

struct sink {
  quire_buf *buf;
  int too_large;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud) {
  struct sink *s = ud;
  size_t n = size * nmemb;
  int rc = quire__buf_append(s->buf, p, n);
  if (rc) {
    s->too_large = rc == QUIRE_ETOOLARGE;
    return 0; /* aborts the transfer */
  }
  return n;
}

int quire__http_client_open(const char *url, const struct quire_http_client_opts *opts, size_t max_response,
                            quire_http_client **out) {
  struct quire_http_client_opts o = {0};
  if (opts) o = *opts;
  o.base_url = url;
  if (!o.max_response) o.max_response = max_response;
  return quire__http_client_create(&o, out);
}

int quire__http_request(quire_http_client *c, const char *method, const char *path, const char *content_type,
                        const void *body, size_t len, unsigned timeout_ms, int *status, quire_buf *resp) {
  *status = 0;
  quire__buf_reset(resp);
  char url[1024];
  if ((size_t)snprintf(url, sizeof url, "%s%s", c->base, path) >= sizeof url)
    return quire__err(QUIRE_EINVAL, "url too long");
  CURL *h = borrow(c);
  if (!h) return QUIRE_ENOMEM;
  struct curl_slist *hdrs = NULL, *t;
  char ct[128];
  if (content_type) {
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    t = curl_slist_append(hdrs, ct);
    if (t) hdrs = t;
  }
  /* Small bodies go at once; big ones wait for 100 Continue, so a server
   * refusing them (413, 503) answers before the body is sent. */
  if (len < EXPECT_THRESHOLD) {
    t = curl_slist_append(hdrs, "Expect:");
    if (t) hdrs = t;
  }
  struct sink sink = {resp, 0};
  size_t saved_limit = resp->limit;
  if (resp->limit > c->o.max_response) resp->limit = c->o.max_response;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  /* Page-sized answers: take them in 256 KiB reads, not curl's 16 KiB. */
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->o.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : c->o.timeout_ms));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  }
  CURLcode cc = curl_easy_perform(h);
  resp->limit = saved_limit;
  int rc = 0, reuse = 1;
  long early = 0;
  if (cc == CURLE_OK) {
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    *status = (int)code;
  } else if ((cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR) &&
             curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &early) == CURLE_OK && early >= 400) {
    /* The server answered (413, 503...) and closed while we were sending. */
    *status = (int)early;
    reuse = 0;
  } else if (sink.too_large) {
    rc = quire__err(QUIRE_ETOOLARGE, "%s: response over %zu bytes", path, c->o.max_response);
  } else if (cc == CURLE_OPERATION_TIMEDOUT) {
    rc = quire__err(QUIRE_ETIMEDOUT, "%s: %s", url, curl_easy_strerror(cc));
  } else if (cc == CURLE_OUT_OF_MEMORY || (cc == CURLE_WRITE_ERROR && !sink.too_large)) {
    rc = QUIRE_ENOMEM;
  } else {
    rc = quire__err(QUIRE_EUNAVAILABLE, "%s: %s", url, curl_easy_strerror(cc));
  }
  curl_slist_free_all(hdrs);
  if (rc || !reuse) {
    curl_easy_cleanup(h); /* its connection may be half-used */
  } else {
    give_back(c, h);
  }
  return rc;
}

/* Turns a non-2xx answer into a QUIRE_E* with the server's message. */
static int decode_error(const char *path, int status, const quire_buf *body) {
  Quire__Common__V1__Error *e = quire__common__v1__error__unpack(&quire__pb_allocator, body->len, body->data);
  int rc;
  if (e && e->has_code) {
    rc = quire__errmap_rc(e->code, status);
    quire__err(rc, "%s", e->message ? e->message : quire_strerror(rc));
  } else {
    rc = quire__errmap_rc(-1, status);
    quire__err(rc, "%s: HTTP %d", path, status);
  }
  if (e) quire__common__v1__error__free_unpacked(e, &quire__pb_allocator);
  return rc;
}

static unsigned jitter(unsigned ms) {
  unsigned r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) r = (unsigned)quire__mono_ns();
  return ms / 2 + (ms ? r % ms : 0);
}

int quire__http_call(quire_http_client *c, const char *path, const void *body, size_t len,
                     unsigned timeout_ms, int idempotent, quire_buf *resp) {
  unsigned attempts = idempotent ? c->o.retries + 1 : 1, delay = c->o.backoff_ms;
  int rc = 0;
  for (unsigned a = 0; a < attempts; a++) {
    if (a > 0) {
      quire__sleep_ms(jitter(delay));
      delay *= 2;
    }
    int status = 0;
    rc = quire__http_request(c, "POST", path, "application/x-protobuf", body, len, timeout_ms, &status, resp);
    if (rc == QUIRE_EUNAVAILABLE || rc == QUIRE_ETIMEDOUT) {
      QLOG_DEBUG("%s: attempt %u: %s", path, a + 1, quire_errmsg());
      continue;
    }
    if (rc) return rc;
    if (status >= 200 && status < 300) return 0;
    rc = decode_error(path, status, resp);
    if (status != 503) return rc;
  }
  return rc;
}
