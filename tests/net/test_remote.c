/*
 * The remote layer under the service clients: cancel tokens, the retry-delay
 * policy, and the HTTP client against a loopback stub that misbehaves on
 * purpose — a server that never answers (deadline, cancel of a call in
 * flight and of a retry backoff), 503 / 429 with Retry-After, the
 * Authorization header, streamed answers. Assertions count requests and
 * outcomes; the only time checks are lower bounds (a Retry-After was
 * waited) and generous upper bounds far above the expected latency.
 */
#include "test.h"
#include "stub.h"

#include "net/http_client.h"
#include "net/xfer.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ---- cancel tokens and backoff ---------------------------------------------- */

struct sleeper {
  quire_cancel *c;
  unsigned ms;
  int rc;
};

static void *sleep_main(void *arg) {
  struct sleeper *s = arg;
  s->rc = quire__cancel_sleep(s->c, s->ms);
  return NULL;
}

static int watch_calls;
static void on_fire(void *ctx) {
  (void)ctx;
  watch_calls++;
}

static void test_cancel_token(void) {
  quire_cancel *c;
  CHECK_OK(quire__cancel_create(&c));
  CHECK(!quire__cancel_fired(c));
  CHECK(!quire__cancel_fired(NULL));
  uint64_t t0 = quire__now_ms();
  CHECK_OK(quire__cancel_sleep(c, 30));
  CHECK(quire__now_ms() - t0 >= 30);
  CHECK_OK(quire__cancel_sleep(NULL, 1));

  /* Several sleepers, one fire: all wake with ECANCELED (a 60 s sleep that
   * returned did not run out). */
  enum { N = 4 };
  struct sleeper s[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    s[i] = (struct sleeper){c, 60000, 1};
    CHECK(pthread_create(&th[i], NULL, sleep_main, &s[i]) == 0);
  }
  struct quire_cancel_watch w1 = {.fn = on_fire}, w2 = {.fn = on_fire}, w3 = {.fn = on_fire};
  CHECK_OK(quire__cancel_watch(c, &w1));
  CHECK_OK(quire__cancel_watch(c, &w2));
  CHECK_OK(quire__cancel_watch(c, &w3));
  quire__cancel_unwatch(c, &w2);
  quire__sleep_ms(20);
  quire__cancel_fire(c);
  quire__cancel_fire(c); /* idempotent */
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    CHECK_RC(s[i].rc, QUIRE_ECANCELED);
  }
  CHECK(watch_calls == 2);
  quire__cancel_unwatch(c, &w1);
  quire__cancel_unwatch(c, &w3);
  CHECK(quire__cancel_fired(c));
  /* Fired stays fired: sleeps and watches are refused at once. */
  CHECK_RC(quire__cancel_sleep(c, 60000), QUIRE_ECANCELED);
  struct quire_cancel_watch late = {.fn = on_fire};
  CHECK_RC(quire__cancel_watch(c, &late), QUIRE_ECANCELED);
  quire__cancel_unwatch(c, &late);
  CHECK(watch_calls == 2);
  quire__cancel_destroy(c);
  quire__cancel_destroy(NULL);
}

static void test_backoff(void) {
  for (unsigned a = 0; a < 12; a++) {
    unsigned d = 10u << a;
    if (d > 1000) d = 1000;
    for (int i = 0; i < 50; i++) {
      unsigned got = quire__backoff_delay(10, 1000, a);
      CHECKF(got >= d / 2 && got <= d, "attempt %u: %u not in [%u, %u]", a, got, d / 2, d);
    }
  }
  CHECK(quire__backoff_delay(0, 1000, 3) == 0);
  /* A wait that would pass the deadline is not made. */
  uint64_t t0 = quire__now_ms();
  CHECK_RC(quire__backoff_wait(5000, 0, t0 + 1000, NULL), QUIRE_ETIMEDOUT);
  CHECK_RC(quire__backoff_wait(1, 5000, t0 + 1000, NULL), QUIRE_ETIMEDOUT);
  CHECK(quire__now_ms() - t0 < 1000);
  /* Retry-After outweighs a shorter backoff. */
  CHECK_OK(quire__backoff_wait(1, 50, 0, NULL));
  CHECK(quire__now_ms() - t0 >= 50);
  quire_cancel *c;
  CHECK_OK(quire__cancel_create(&c));
  quire__cancel_fire(c);
  CHECK_RC(quire__backoff_wait(1, 0, 0, c), QUIRE_ECANCELED);
  quire__cancel_destroy(c);
}

static void test_header_parsing(void) {
  long st = 0;
  unsigned ms = 0;
  CHECK(quire__xfer_status_line("HTTP/1.1 503 Service Unavailable\r\n", 34, &st) && st == 503);
  CHECK(quire__xfer_status_line("HTTP/2 200 \r\n", 13, &st) && st == 200);
  CHECK(!quire__xfer_status_line("Retry-After: 1\r\n", 16, &st));
  CHECK(!quire__xfer_status_line("HTTP/1.1 5x3 X\r\n", 16, &st));
  CHECK(quire__xfer_retry_after("Retry-After: 1\r\n", 16, &ms) && ms == 1000);
  CHECK(quire__xfer_retry_after("retry-after:7\r\n", 15, &ms) && ms == 7000);
  CHECK(quire__xfer_retry_after("Retry-After: 99999999999999999999\r\n", 35, &ms) && ms == 3600000);
  CHECK(!quire__xfer_retry_after("Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", 44, &ms));
  CHECK(!quire__xfer_retry_after("Retry-After: \r\n", 15, &ms));
  CHECK(!quire__xfer_retry_after("Retry-Afterx: 1\r\n", 17, &ms));
}

/* ---- the stub --------------------------------------------------------------- */

enum mode {
  SILENT,          /* read the request, never answer */
  RETRY_AFTER_1,   /* 503 + Retry-After: 1, then 200 */
  RETRY_AFTER_30,  /* 503 + Retry-After: 30, always */
  THROTTLE_ONCE,   /* 429, then 200 */
  AUTH_ECHO,       /* 200 with the Authorization header as the body ("-" if none) */
  STREAM_HOLD,     /* 200, the first half of the body, then wait for `release`, then the rest */
  UNAVAILABLE_503, /* 503 without Retry-After, always */
};

static struct {
  atomic_int mode;
  atomic_uint closed; /* connections the client closed while the stub waited */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int release;
  int rest_sent;
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static const char stream_body[] = "0123456789abcdefghij";

static void handler(void *ctx, struct stub_conn *c) {
  struct stub *s = ctx ? *(struct stub **)ctx : NULL;
  struct stub_request r = {0};
  while (stub_read_request(c, &r)) {
    unsigned n = stub_requests(s);
    char v[512];
    switch (atomic_load(&st.mode)) {
    case SILENT:
      stub_wait_closed(c);
      atomic_fetch_add(&st.closed, 1);
      stub_request_free(&r);
      return;
    case RETRY_AFTER_1:
      if (n == 1)
        stub_respond(c, 503, "Retry-After: 1\r\n", "", 0);
      else
        stub_respond(c, 200, NULL, "ok", 2);
      break;
    case RETRY_AFTER_30: stub_respond(c, 503, "Retry-After: 30\r\n", "", 0); break;
    case UNAVAILABLE_503: stub_respond(c, 503, NULL, "", 0); break;
    case THROTTLE_ONCE:
      if (n == 1)
        stub_respond(c, 429, NULL, "", 0);
      else
        stub_respond(c, 200, NULL, "ok", 2);
      break;
    case AUTH_ECHO: {
      const char *a = stub_header(&r, "Authorization", v, sizeof v);
      if (!a) a = "-";
      stub_respond(c, 200, NULL, a, strlen(a));
      break;
    }
    case STREAM_HOLD: {
      char head[128];
      snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof stream_body - 1);
      stub_write(c, head, strlen(head));
      stub_write(c, stream_body, 10);
      pthread_mutex_lock(&st.mu);
      while (!st.release) pthread_cond_wait(&st.cv, &st.mu);
      st.rest_sent = 1;
      pthread_mutex_unlock(&st.mu);
      stub_write(c, stream_body + 10, sizeof stream_body - 11);
      break;
    }
    }
  }
  stub_request_free(&r);
}

static struct stub *stub_self;

static quire_http_client *client(const char *url, unsigned timeout_ms, unsigned retries) {
  struct quire_http_client_opts o = {
      .base_url = url, .timeout_ms = timeout_ms, .retries = retries, .backoff_ms = 5};
  quire_http_client *c;
  CHECK_OK(quire__http_client_create(&o, &c));
  return c;
}

static void release_stream(void) {
  pthread_mutex_lock(&st.mu);
  st.release = 1;
  pthread_cond_broadcast(&st.cv);
  pthread_mutex_unlock(&st.mu);
}

static unsigned wait_requests(struct stub *s, unsigned n) {
  for (int i = 0; i < 10000 && stub_requests(s) < n; i++) quire__sleep_ms(1);
  return stub_requests(s);
}

static void wait_closed(unsigned n) {
  for (int i = 0; i < 10000 && atomic_load(&st.closed) < n; i++) quire__sleep_ms(1);
  CHECK(atomic_load(&st.closed) == n);
}

/* ---- deadlines ---------------------------------------------------------------- */

static void test_deadline(void) {
  atomic_store(&st.mode, SILENT);
  atomic_store(&st.closed, 0);
  stub_self = stub_start(handler, &stub_self);
  quire_http_client *c = client(stub_url(stub_self), 30000, 5);
  quire_buf resp;
  quire__buf_init(&resp, 1 << 16);
  /* An explicit deadline, far below the client's 30 s: ETIMEDOUT, one
   * request (a passed deadline is never retried). */
  struct quire_call call = {.deadline_ms = quire__now_ms() + 200};
  uint64_t t0 = quire__now_ms();
  CHECK_RC(quire__http_call(c, "/x", "a", 1, &call, 1, &resp), QUIRE_ETIMEDOUT);
  CHECK(quire__now_ms() - t0 >= 190);
  CHECK(stub_requests(stub_self) == 1);
  wait_closed(1); /* the client hung up */
  quire__http_client_destroy(c);
  /* NULL call: the client's timeout_ms is the deadline. */
  c = client(stub_url(stub_self), 200, 5);
  CHECK_RC(quire__http_call(c, "/x", "a", 1, NULL, 1, &resp), QUIRE_ETIMEDOUT);
  CHECK(stub_requests(stub_self) == 2);
  /* A deadline already passed: nothing is sent. */
  call.deadline_ms = quire__now_ms() - 1;
  CHECK_RC(quire__http_call(c, "/x", "a", 1, &call, 1, &resp), QUIRE_ETIMEDOUT);
  wait_closed(2);
  CHECK(stub_requests(stub_self) == 2);
  quire__buf_free(&resp);
  quire__http_client_destroy(c);
  stub_stop(stub_self);
}

/* ---- cancel ------------------------------------------------------------------- */

struct caller {
  quire_http_client *c;
  struct quire_call call;
  int rc;
  unsigned requests_at_return;
};

static void *call_main(void *arg) {
  struct caller *k = arg;
  quire_buf resp;
  quire__buf_init(&resp, 1 << 16);
  k->rc = quire__http_call(k->c, "/x", "a", 1, &k->call, 1, &resp);
  k->requests_at_return = stub_requests(stub_self);
  quire__buf_free(&resp);
  return NULL;
}

static void test_cancel(void) {
  atomic_store(&st.closed, 0);
  stub_self = stub_start(handler, &stub_self);
  quire_http_client *c = client(stub_url(stub_self), 60000, 5);
  quire_cancel *cancel;

  /* A call waiting on a server that never answers: fire, and it returns
   * ECANCELED (the server never answers, so any other outcome is a fail),
   * hanging up its connection. */
  atomic_store(&st.mode, SILENT);
  CHECK_OK(quire__cancel_create(&cancel));
  struct caller k = {.c = c, .call = {.cancel = cancel}};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, call_main, &k) == 0);
  CHECK(wait_requests(stub_self, 1) == 1);
  uint64_t t0 = quire__now_ms();
  quire__cancel_fire(cancel);
  pthread_join(th, NULL);
  uint64_t took = quire__now_ms() - t0;
  CHECK_RC(k.rc, QUIRE_ECANCELED);
  CHECK(took < 5000); /* expected: a few ms; the call's own deadline is 60 s */
  printf("cancel of a call in flight returned after %llu ms\n", (unsigned long long)took);
  wait_closed(1);
  CHECK(stub_requests(stub_self) == 1);
  quire__cancel_destroy(cancel);

  /* A call sleeping in its retry backoff (503, Retry-After: 30): fire, and
   * it returns ECANCELED without a second request. */
  atomic_store(&st.mode, RETRY_AFTER_30);
  CHECK_OK(quire__cancel_create(&cancel));
  k = (struct caller){.c = c, .call = {.cancel = cancel}};
  CHECK(pthread_create(&th, NULL, call_main, &k) == 0);
  CHECK(wait_requests(stub_self, 2) == 2);
  quire__sleep_ms(50); /* let it reach the backoff */
  quire__cancel_fire(cancel);
  pthread_join(th, NULL);
  CHECK_RC(k.rc, QUIRE_ECANCELED);
  CHECK(k.requests_at_return == 2);
  /* Already fired: nothing is sent. */
  CHECK_RC(quire__http_request(c, "GET", "/x", NULL, NULL, 0, &k.call, &(int){0}, &(quire_buf){.limit = 64}),
           QUIRE_ECANCELED);
  CHECK(stub_requests(stub_self) == 2);
  quire__cancel_destroy(cancel);
  quire__http_client_destroy(c);
  stub_stop(stub_self);
}

/* ---- Retry-After, 429, auth ------------------------------------------------------ */

/* One idempotent call (3 retries) to a fresh stub in mode; checks its result
 * and returns how many requests the stub saw. */
static unsigned call_fresh_stub(enum mode mode, int want_rc) {
  stub_self = stub_start(handler, &stub_self);
  quire_http_client *c = client(stub_url(stub_self), 30000, 3);
  quire_buf resp;
  quire__buf_init(&resp, 1 << 16);
  atomic_store(&st.mode, mode);
  CHECK_RC(quire__http_call(c, "/x", "a", 1, NULL, 1, &resp), want_rc);
  unsigned n = stub_requests(stub_self);
  quire__buf_free(&resp);
  quire__http_client_destroy(c);
  stub_stop(stub_self);
  return n;
}

static void test_retry_after(void) {
  stub_self = stub_start(handler, &stub_self);
  quire_http_client *c = client(stub_url(stub_self), 30000, 3);
  quire_buf resp;
  quire__buf_init(&resp, 1 << 16);
  /* 503 + Retry-After: 1, then 200: two requests, a second apart, success. */
  atomic_store(&st.mode, RETRY_AFTER_1);
  uint64_t t0 = quire__now_ms();
  CHECK_OK(quire__http_call(c, "/x", "a", 1, NULL, 1, &resp));
  uint64_t took = quire__now_ms() - t0;
  CHECK(resp.len == 2 && memcmp(resp.data, "ok", 2) == 0);
  CHECK(stub_requests(stub_self) == 2);
  CHECKF(took >= 990, "the retry came after %llu ms, before the server's Retry-After: 1",
         (unsigned long long)took);
  quire__http_client_destroy(c);
  stub_stop(stub_self);

  /* Retry-After past the deadline: the 503 comes back at once, one request. */
  stub_self = stub_start(handler, &stub_self);
  c = client(stub_url(stub_self), 30000, 3);
  atomic_store(&st.mode, RETRY_AFTER_30);
  struct quire_call call = {.deadline_ms = quire__now_ms() + 2000};
  CHECK_RC(quire__http_call(c, "/x", "a", 1, &call, 1, &resp), QUIRE_EUNAVAILABLE);
  CHECKF(strstr(quire_errmsg(), "deadline") != NULL, "%s", quire_errmsg());
  CHECK(stub_requests(stub_self) == 1);
  CHECK(quire__now_ms() < call.deadline_ms);
  /* Not idempotent: no retry either way. */
  CHECK_RC(quire__http_call(c, "/x", "a", 1, NULL, 0, &resp), QUIRE_EUNAVAILABLE);
  CHECK(stub_requests(stub_self) == 2);
  quire__http_client_destroy(c);
  stub_stop(stub_self);

  quire__buf_free(&resp);
  /* 429 is retried like 503. */
  CHECK(call_fresh_stub(THROTTLE_ONCE, 0) == 2);
  /* A plain 503: retries run out (1 + 3 attempts). */
  CHECK(call_fresh_stub(UNAVAILABLE_503, QUIRE_EUNAVAILABLE) == 4);
}

static int auth_calls;
static int auth_dynamic(void *ctx, char *buf, size_t cap) {
  const char *what = ctx;
  auth_calls++;
  if (strcmp(what, "refuse") == 0) return 1;
  if (strcmp(what, "enomem") == 0) return QUIRE_ENOMEM;
  if (strcmp(what, "crlf") == 0) {
    snprintf(buf, cap, "Bearer a\r\nX-Evil: 1");
    return 0;
  }
  snprintf(buf, cap, "%s", what);
  return 0;
}

static void echo_auth(const char *url, const char *token, int (*fn)(void *, char *, size_t),
                      const char *fn_ctx, int want_rc, const char *want) {
  struct quire_http_client_opts o = {
      .base_url = url, .token = token, .auth_fn = fn, .auth_ctx = (void *)fn_ctx, .backoff_ms = 5};
  quire_http_client *c;
  char tok_copy[64] = "";
  if (token) snprintf(tok_copy, sizeof tok_copy, "%s", token);
  o.token = token ? tok_copy : NULL;
  CHECK_OK(quire__http_client_create(&o, &c));
  memset(tok_copy, 'x', sizeof tok_copy - 1); /* the client kept its own copy */
  quire_buf resp;
  quire__buf_init(&resp, 1 << 16);
  CHECK_RC(quire__http_call(c, "/x", "a", 1, NULL, 1, &resp), want_rc);
  if (!want_rc) {
    CHECKF(resp.len == strlen(want) && memcmp(resp.data, want, resp.len) == 0, "got %.*s, want %s",
           (int)resp.len, (const char *)resp.data, want);
  }
  quire__buf_free(&resp);
  quire__http_client_destroy(c);
}

static void test_auth(void) {
  stub_self = stub_start(handler, &stub_self);
  atomic_store(&st.mode, AUTH_ECHO);
  const char *url = stub_url(stub_self);
  /* Keep-alive: sequential calls share one connection. */
  quire_http_client *c = client(url, 30000, 3);
  quire_buf resp;
  quire__buf_init(&resp, 1 << 16);
  for (int i = 0; i < 10; i++) CHECK_OK(quire__http_call(c, "/x", "a", 1, NULL, 1, &resp));
  CHECK(stub_requests(stub_self) == 10 && stub_connections(stub_self) == 1);
  quire__buf_free(&resp);
  quire__http_client_destroy(c);
  echo_auth(url, NULL, NULL, NULL, 0, "-");
  echo_auth(url, "s3cret-token", NULL, NULL, 0, "Bearer s3cret-token");
  echo_auth(url, "s3cret-token", auth_dynamic, "Bearer from-callback", 0, "Bearer from-callback");
  echo_auth(url, NULL, auth_dynamic, "bare-token", 0, "Bearer bare-token");
  echo_auth(url, NULL, auth_dynamic, "", 0, "-");
  unsigned before = stub_requests(stub_self);
  auth_calls = 0;
  echo_auth(url, "t", auth_dynamic, "refuse", QUIRE_EUNAUTHORIZED, NULL);
  echo_auth(url, "t", auth_dynamic, "enomem", QUIRE_ENOMEM, NULL);
  echo_auth(url, NULL, auth_dynamic, "crlf", QUIRE_EINVAL, NULL);
  CHECK(auth_calls == 3);
  CHECK(stub_requests(stub_self) == before); /* refused before anything was sent */
  struct quire_http_client_opts o = {.base_url = url, .token = "a\nb"};
  CHECK_RC(quire__http_client_create(&o, &c), QUIRE_EINVAL);
  stub_stop(stub_self);
}

/* ---- streamed answers ------------------------------------------------------------ */

struct collect {
  char got[64];
  size_t len;
  int pieces, stop_at, rest_sent_at_first;
};

static int collect_sink(void *ctx, const uint8_t *data, size_t len) {
  struct collect *k = ctx;
  if (k->pieces++ == 0) {
    pthread_mutex_lock(&st.mu);
    k->rest_sent_at_first = st.rest_sent;
    pthread_mutex_unlock(&st.mu);
    release_stream();
  }
  CHECK(k->len + len <= sizeof k->got);
  memcpy(k->got + k->len, data, len);
  k->len += len;
  return k->stop_at && (int)k->len >= k->stop_at ? 42 : 0;
}

static void test_stream(void) {
  stub_self = stub_start(handler, &stub_self);
  quire_http_client *c = client(stub_url(stub_self), 30000, 3);
  atomic_store(&st.mode, STREAM_HOLD);
  /* The first piece reaches the sink while the server still holds the rest. */
  st.release = st.rest_sent = 0;
  struct collect k = {0};
  int delivered = 0;
  CHECK_OK(quire__http_call_stream(c, "/x", "a", 1, NULL, 1, collect_sink, &k, &delivered));
  CHECK(delivered && k.rest_sent_at_first == 0 && k.pieces >= 2);
  CHECK(k.len == sizeof stream_body - 1 && memcmp(k.got, stream_body, k.len) == 0);
  /* A sink that says stop: the call returns its value. */
  st.release = st.rest_sent = 0;
  k = (struct collect){.stop_at = 1};
  CHECK_RC(quire__http_call_stream(c, "/x", "a", 1, NULL, 1, collect_sink, &k, &delivered), 42);
  CHECK(k.pieces == 1 && k.rest_sent_at_first == 0);
  /* An error answer is decoded, not streamed. */
  atomic_store(&st.mode, UNAVAILABLE_503);
  unsigned before = stub_requests(stub_self);
  k = (struct collect){0};
  CHECK_RC(quire__http_call_stream(c, "/x", "a", 1, NULL, 1, collect_sink, &k, &delivered),
           QUIRE_EUNAVAILABLE);
  CHECK(!delivered && k.pieces == 0 && stub_requests(stub_self) == before + 4);
  quire__http_client_destroy(c);
  stub_stop(stub_self);
}

int main(void) {
  test_seed();
  test_cancel_token();
  test_backoff();
  test_header_parsing();
  test_deadline();
  test_cancel();
  test_retry_after();
  test_auth();
  test_stream();
  return test_done("net_remote");
}
