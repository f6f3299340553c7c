/*
 * The HTTP server and client over real loopback sockets: routing, 404/405/
 * 413/415, error bodies, overload 503 + Retry-After, long-poll park/wake,
 * graceful stop with a parked request, garbage on the wire, metrics.
 */
#include "test.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int slow_entered, slow_release;
static quire_http_req *parked_req;
static int parked_woken;

static void h_echo(void *ctx, quire_http_req *r) {
  (void)ctx;
  size_t n;
  const uint8_t *b = quire__http_req_body(r, &n);
  quire__http_respond(r, 200, QUIRE_CONTENT_PROTOBUF, b, n);
}

/* Answers 503 while flaky_left > 0, then echoes. */
static atomic_int flaky_left, flaky_calls;
static void h_flaky(void *ctx, quire_http_req *r) {
  atomic_fetch_add(&flaky_calls, 1);
  if (atomic_fetch_sub(&flaky_left, 1) > 0) {
    quire__http_respond_error(r, QUIRE_EBUSY, "busy");
    return;
  }
  h_echo(ctx, r);
}

static void h_fail(void *ctx, quire_http_req *r) {
  (void)ctx;
  quire__http_respond_error(r, QUIRE_ECONFLICT, "nope");
}

static void h_slow(void *ctx, quire_http_req *r) {
  (void)ctx;
  pthread_mutex_lock(&mu);
  slow_entered = 1;
  pthread_cond_broadcast(&cond);
  while (!slow_release) pthread_cond_wait(&cond, &mu);
  pthread_mutex_unlock(&mu);
  quire__http_respond(r, 200, QUIRE_CONTENT_PROTOBUF, "slow", 4);
}

static void h_park(void *ctx, quire_http_req *r) {
  (void)ctx;
  if (quire__http_req_resumed(r)) {
    quire__http_respond(r, 200, QUIRE_CONTENT_PROTOBUF, "woke", 4);
    return;
  }
  pthread_mutex_lock(&mu);
  quire__http_req_park(r);
  parked_req = r;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&mu);
}

/* Streaming: a producer thread writes 1 MiB in 4 KiB pieces through a
 * 16 KiB buffer (so the writer blocks and the connection suspends). */
static void *produce(void *arg) {
  quire_http_stream *st = arg;
  uint8_t piece[4096];
  int failed = 0;
  for (uint32_t i = 0; i < 256 && !failed; i++) {
    for (size_t k = 0; k < sizeof piece; k++) piece[k] = (uint8_t)(i + k);
    failed = quire__http_stream_write(st, piece, sizeof piece) != 0;
  }
  quire__http_stream_end(st, failed);
  return NULL;
}

static void h_stream(void *ctx, quire_http_req *r) {
  (void)ctx;
  quire_http_stream *st;
  if (quire__http_respond_stream(r, 200, QUIRE_CONTENT_PROTOBUF, 16384, &st) != 0) return;
  pthread_t t;
  if (pthread_create(&t, NULL, produce, st) == 0)
    pthread_detach(t);
  else
    quire__http_stream_end(st, 1);
}

static void wake_parked(void) {
  pthread_mutex_lock(&mu);
  if (parked_req) {
    quire__http_req_wake(parked_req);
    parked_req = NULL;
    parked_woken++;
  }
  pthread_mutex_unlock(&mu);
}

static void drain(void *ctx) {
  (void)ctx;
  wake_parked();
}

static quire_http_server *start(quire_metrics *m, unsigned max_inflight, size_t max_body) {
  struct quire_http_server_opts o = {.listen = "127.0.0.1:0",
                                     .threads = 2,
                                     .max_inflight = max_inflight,
                                     .max_body = max_body,
                                     .metrics = m,
                                     .name = "test"};
  quire_http_server *s;
  CHECK_OK(quire__http_server_create(&o, &s));
  CHECK_OK(quire__http_server_route(s, "POST", "/t/echo", h_echo, NULL));
  CHECK_OK(quire__http_server_route(s, "POST", "/t/fail", h_fail, NULL));
  CHECK_OK(quire__http_server_route(s, "POST", "/t/flaky", h_flaky, NULL));
  CHECK_OK(quire__http_server_route(s, "POST", "/t/slow", h_slow, NULL));
  CHECK_OK(quire__http_server_route(s, "POST", "/t/park", h_park, NULL));
  CHECK_OK(quire__http_server_route(s, "POST", "/t/stream", h_stream, NULL));
  quire__http_server_set_drain(s, drain, NULL);
  CHECK_OK(quire__http_server_start(s));
  CHECK(quire__http_server_port(s) != 0);
  return s;
}

static quire_http_client *client_for(quire_http_server *s) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", quire__http_server_port(s));
  struct quire_http_client_opts o = {.base_url = url, .timeout_ms = 10000, .backoff_ms = 5};
  quire_http_client *c;
  CHECK_OK(quire__http_client_create(&o, &c));
  return c;
}

/* Sends raw bytes, returns what came back (NUL-terminated, up to cap). */
static void raw_ex(quire_http_server *s, const char *req, size_t len, char *reply, size_t cap,
                   int half_close);
static void raw(quire_http_server *s, const char *req, size_t len, char *reply, size_t cap) {
  raw_ex(s, req, len, reply, cap, 1);
}
/* half_close 0: the write side stays open (the server may take a
 * half-close for a client that left, once its handler answers). */
static void raw_ex(quire_http_server *s, const char *req, size_t len, char *reply, size_t cap,
                   int half_close) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(quire__http_server_port(s))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
    if (w <= 0) break; /* the server may close early: fine */
    off += (size_t)w;
  }
  if (half_close) shutdown(fd, SHUT_WR);
  size_t got = 0;
  for (;;) {
    ssize_t r = recv(fd, reply + got, cap - 1 - got, 0);
    if (r <= 0) break;
    got += (size_t)r;
    if (got == cap - 1) break;
  }
  reply[got] = '\0';
  close(fd);
}

static void test_basics(void) {
  quire_metrics *m;
  CHECK_OK(quire__metrics_create(&m));
  quire_http_server *s = start(m, 64, 1024);
  quire_http_client *c = client_for(s);
  quire_buf resp;
  quire__buf_init(&resp, 1 << 20);
  int status;

  CHECK_OK(quire__http_call(c, "/t/echo", "hello", 5, NULL, 1, &resp));
  CHECK(resp.len == 5 && memcmp(resp.data, "hello", 5) == 0);
  CHECK_OK(quire__http_call(c, "/t/echo", "", 0, NULL, 1, &resp));
  CHECK(resp.len == 0);

  CHECK_RC(quire__http_call(c, "/t/fail", "x", 1, NULL, 1, &resp), QUIRE_ECONFLICT);
  CHECK(strcmp(quire_errmsg(), "nope") == 0);

  CHECK_OK(quire__http_request(c, "GET", "/health", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200 && resp.len == 3 && memcmp(resp.data, "ok\n", 3) == 0);
  CHECK_OK(quire__http_request(c, "GET", "/ready", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200);
  CHECK_OK(quire__http_request(c, "POST", "/health", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 405);
  CHECK_OK(quire__http_request(c, "GET", "/nope", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 404);
  CHECK_OK(quire__http_request(c, "GET", "/t/echo", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 405);
  CHECK_OK(quire__http_request(c, "POST", "/t/echo", "text/plain", "x", 1, NULL, &status, &resp));
  CHECK(status == 415);
  CHECK_OK(quire__http_request(c, "POST", "/t/echo", NULL, "x", 1, NULL, &status, &resp));
  CHECK(status == 415);
  /* Content-Type with parameters is fine. */
  CHECK_OK(quire__http_request(c, "POST", "/t/echo", "application/x-protobuf; charset=binary", "x", 1, NULL,
                               &status, &resp));
  CHECK(status == 200);
  /* Over the cap by Content-Length: 413 before the body is read. */
  static char big[4096];
  CHECK_RC(quire__http_call(c, "/t/echo", big, sizeof big, NULL, 1, &resp), QUIRE_ETOOLARGE);
  CHECK_OK(quire__http_call(c, "/t/echo", big, 1024, NULL, 1, &resp));
  CHECK(resp.len == 1024);

  /* Over the cap in chunks: still a 413, and the server goes on. */
  char reply[4096];
  quire_buf chunked;
  quire__buf_init(&chunked, 1 << 20);
  const char *head = "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  CHECK_OK(quire__buf_append(&chunked, head, strlen(head)));
  for (int i = 0; i < 4; i++) {
    CHECK_OK(quire__buf_append(&chunked, "200\r\n", 5));
    CHECK_OK(quire__buf_append(&chunked, big, 512));
    CHECK_OK(quire__buf_append(&chunked, "\r\n", 2));
  }
  CHECK_OK(quire__buf_append(&chunked, "0\r\n\r\n", 5));
  raw(s, (const char *)chunked.data, chunked.len, reply, sizeof reply);
  CHECK(strncmp(reply, "HTTP/1.1 413", 12) == 0);
  quire__buf_free(&chunked);

  /* Garbage and truncated requests: an error or a closed socket, never a crash. */
  const char *junk[] = {"GARBAGE\r\n\r\n",
                        "POST /t/echo HTTP/1.1\r\nContent-Length: 99\r\n\r\nabc",
                        "POST /t/echo HTTP/1.1\r\nContent-Length: -5\r\nHost: x\r\n\r\n",
                        "POST /t/echo HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\nHost: x\r\n\r\n",
                        "\x01\x02\xff\r\n\r\n",
                        "GET /health HTTP/9.9\r\n\r\n"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    uint64_t t0 = quire__mono_ms();
    raw(s, junk[i], strlen(junk[i]), reply, sizeof reply);
    if (getenv("DBG"))
      fprintf(stderr, "junk %zu: %llu ms %.30s\n", i, (unsigned long long)(quire__mono_ms() - t0), reply);
    CHECKF(reply[0] == '\0' || strncmp(reply, "HTTP/1.1 4", 10) == 0 ||
               strncmp(reply, "HTTP/1.0 4", 10) == 0 || strncmp(reply, "HTTP/1.1 5", 10) == 0,
           "junk %zu got %.40s", i, reply);
  }
  CHECK_OK(quire__http_request(c, "GET", "/health", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200);

  /* A streamed answer arrives whole and in order. */
  quire_buf big_resp;
  quire__buf_init(&big_resp, 4 << 20);
  CHECK_OK(quire__http_call(c, "/t/stream", "x", 1, NULL, 0, &big_resp));
  CHECK(big_resp.len == 256 * 4096);
  int in_order = 1;
  for (size_t k = 0; k < big_resp.len; k++)
    if (big_resp.data[k] != (uint8_t)(k / 4096 + k % 4096)) in_order = 0;
  CHECK(in_order);
  quire__buf_free(&big_resp);

  /* Metrics count what happened. */
  CHECK_OK(quire__http_request(c, "GET", "/metrics", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200);
  CHECK_OK(quire__buf_append_u8(&resp, 0));
  CHECK(strstr((char *)resp.data, "quire_http_requests_total{endpoint=\"/t/echo\",status=\"200\"}"));
  CHECKF(strstr((char *)resp.data, "quire_http_requests_total{endpoint=\"/t/echo\",status=\"415\"}"), "%s",
         (char *)resp.data);
  CHECK(strstr((char *)resp.data, "quire_http_request_duration_seconds_bucket{endpoint=\"/t/echo\""));

  quire__buf_free(&resp);
  quire__http_client_destroy(c);
  CHECK(quire__http_server_stop(s, 1000) == 0);
  quire__http_server_destroy(s);
  quire__metrics_destroy(m);
}

/* The value of an unlabelled metric in /metrics, or -1. */
static long long metric(quire_http_client *c, const char *name) {
  quire_buf resp;
  quire__buf_init(&resp, 1 << 20);
  int status;
  long long v = -1;
  CHECK_OK(quire__http_request(c, "GET", "/metrics", NULL, NULL, 0, NULL, &status, &resp));
  CHECK_OK(quire__buf_append_u8(&resp, 0));
  char key[160];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *p = strstr((const char *)resp.data, key);
  if (p) v = strtoll(p + strlen(key), NULL, 10);
  quire__buf_free(&resp);
  return v;
}

/* Request bodies: a body in pieces (quire__http_call_iov) arrives whole,
 * again from its start on a retry; bodies with Content-Length land in one
 * buffer sized once, large ones in a kept buffer the next time, with
 * nothing of the previous body showing; a chunked body (no Content-Length)
 * under the cap still works. */
static void test_bodies(void) {
  quire_metrics *m;
  CHECK_OK(quire__metrics_create(&m));
  quire_http_server *s = start(m, 64, 4u << 20);
  quire_http_client *c = client_for(s);
  quire_buf resp;
  quire__buf_init(&resp, 8u << 20);
  enum { BIG = 700 * 1024 };
  uint8_t *big = quire__malloc(BIG);
  CHECK(big != NULL);
  for (size_t k = 0; k < BIG; k++) big[k] = (uint8_t)(k * 31 + k / 4096);

  /* A large body's buffer is kept: the next large body reuses it, even a
   * few bytes longer (buffers are rounded up), and a shorter one shows
   * none of the longer one's bytes. */
  long long reused = metric(c, "quire_http_body_buffers_reused_total");
  CHECK_OK(quire__http_call(c, "/t/echo", big, BIG - 5, NULL, 1, &resp));
  CHECK(resp.len == BIG - 5 && memcmp(resp.data, big, BIG - 5) == 0);
  CHECK_OK(quire__http_call(c, "/t/echo", big, BIG, NULL, 1, &resp));
  CHECK(resp.len == BIG && memcmp(resp.data, big, BIG) == 0);
  CHECK_OK(quire__http_call(c, "/t/echo", big + 1000, 200000, NULL, 1, &resp));
  CHECK(resp.len == 200000 && memcmp(resp.data, big + 1000, 200000) == 0);
  long long now = metric(c, "quire_http_body_buffers_reused_total");
  CHECKF(now >= (reused < 0 ? 0 : reused) + 2, "reused %lld -> %lld", reused, now);

  /* Pieces of every size, empty ones included, small body and large. */
  size_t cuts[] = {0, 0, 1, 7, 7, 4096, 4100, 65536, 65537, 300000, 300000, 699999, BIG, BIG};
  struct iovec iov[sizeof cuts / sizeof cuts[0] - 1];
  size_t niov = sizeof iov / sizeof iov[0];
  for (size_t i = 0; i < niov; i++) iov[i] = (struct iovec){big + cuts[i], cuts[i + 1] - cuts[i]};
  CHECK_OK(quire__http_call_iov(c, "/t/echo", iov, niov, NULL, 1, &resp));
  CHECK(resp.len == BIG && memcmp(resp.data, big, BIG) == 0);
  CHECK_OK(quire__http_call_iov(c, "/t/echo", iov, 3, NULL, 1, &resp));
  CHECK(resp.len == 7 && memcmp(resp.data, big, 7) == 0);
  CHECK_OK(quire__http_call_iov(c, "/t/echo", iov, 0, NULL, 1, &resp));
  CHECK(resp.len == 0);
  /* A 503 (Retry-After: 1), then the echo: the second attempt sent the
   * whole body again. */
  for (size_t n = 5; n <= niov; n += niov - 5) {
    atomic_store(&flaky_left, 1);
    atomic_store(&flaky_calls, 0);
    CHECK_OK(quire__http_call_iov(c, "/t/flaky", iov, n, NULL, 1, &resp));
    CHECK(atomic_load(&flaky_calls) == 2);
    CHECK(resp.len == cuts[n] && memcmp(resp.data, big, cuts[n]) == 0);
  }

  /* Over the cap by Content-Length: still refused before the body. */
  uint8_t *huge = quire__calloc(1, (4u << 20) + 1);
  CHECK(huge != NULL);
  CHECK_RC(quire__http_call(c, "/t/echo", huge, (4u << 20) + 1, NULL, 1, &resp), QUIRE_ETOOLARGE);
  quire__free(huge);

  /* Chunked, under the cap: echoed whole. */
  quire_buf chunked;
  quire__buf_init(&chunked, 1 << 20);
  const char *head = "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  CHECK_OK(quire__buf_append(&chunked, head, strlen(head)));
  for (int i = 0; i < 12; i++) {
    CHECK_OK(quire__buf_append(&chunked, "4000\r\n", 6));
    CHECK_OK(quire__buf_append(&chunked, big + i * 16384, 16384));
    CHECK_OK(quire__buf_append(&chunked, "\r\n", 2));
  }
  CHECK_OK(quire__buf_append(&chunked, "0\r\n\r\n", 5));
  size_t cap = 4u << 20;
  char *reply = quire__malloc(cap);
  CHECK(reply != NULL);
  raw_ex(s, (const char *)chunked.data, chunked.len, reply, cap, 0);
  CHECKF(strncmp(reply, "HTTP/1.1 200", 12) == 0, "%.40s", reply);
  const char *body = strstr(reply, "\r\n\r\n");
  CHECK(body && strstr(reply, "Content-Length: 196608\r\n"));
  CHECK(body && memcmp(body + 4, big, 196608) == 0);
  quire__free(reply);
  quire__buf_free(&chunked);

  /* Every allocation failing in turn around a large body (a fresh server
   * each time: nothing kept): a clean error or the echo, never a crash or a
   * leak; the body buffer failing is refused with 503 before the body. */
  int saw_body_refused = 0, done = 0;
  for (long n = 1; n < 400 && !done; n++) {
    quire_http_server *s2 = start(NULL, 64, 4u << 20);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", quire__http_server_port(s2));
    struct quire_http_client_opts no = {.base_url = url, .timeout_ms = 10000, .no_retry = 1};
    quire_http_client *once;
    CHECK_OK(quire__http_client_create(&no, &once));
    quire_test_alloc_fail_at(n, 0);
    int rc = quire__http_call(once, "/t/echo", big + 7, 300000, NULL, 0, &resp);
    long failed = quire_test_alloc_failures();
    quire_test_alloc_fail_at(0, 0);
    if (rc && strstr(quire_errmsg(), "out of memory for the request body")) saw_body_refused = 1;
    CHECKF(rc == 0 || rc == QUIRE_ENOMEM || rc == QUIRE_EBUSY || rc == QUIRE_EUNAVAILABLE ||
               rc == QUIRE_EINTERNAL,
           "n %ld: %d %s", n, rc, quire_errmsg());
    if (rc == 0) CHECK(resp.len == 300000 && memcmp(resp.data, big + 7, 300000) == 0);
    done = rc == 0 && failed == 0;
    quire__http_client_destroy(once);
    quire__http_server_stop(s2, 1000);
    quire__http_server_destroy(s2);
  }
  CHECKF(done && saw_body_refused, "done %d, body refused %d", done, saw_body_refused);

  quire__free(big);
  quire__buf_free(&resp);
  quire__http_client_destroy(c);
  CHECK(quire__http_server_stop(s, 1000) == 0);
  quire__http_server_destroy(s);
  quire__metrics_destroy(m);
}

static void *call_slow(void *arg) {
  quire_http_client *c = arg;
  quire_buf resp;
  quire__buf_init(&resp, 1024);
  int rc = quire__http_call(c, "/t/slow", "x", 1, NULL, 0, &resp);
  quire__buf_free(&resp);
  return (void *)(intptr_t)rc;
}

static void test_overload(void) {
  quire_http_server *s = start(NULL, 1, 1024);
  quire_http_client *c = client_for(s);
  slow_entered = slow_release = 0;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, call_slow, c) == 0);
  pthread_mutex_lock(&mu);
  while (!slow_entered) pthread_cond_wait(&cond, &mu);
  pthread_mutex_unlock(&mu);
  int status;
  quire_buf resp;
  quire__buf_init(&resp, 1 << 16);
  CHECK_OK(quire__http_request(c, "POST", "/t/echo", QUIRE_CONTENT_PROTOBUF, "x", 1, NULL, &status, &resp));
  CHECK(status == 503);
  /* Raw, to see the Retry-After header. */
  char reply[2048];
  const char *req = "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                    "Content-Length: 1\r\nConnection: close\r\n\r\nx";
  raw(s, req, strlen(req), reply, sizeof reply);
  CHECK(strncmp(reply, "HTTP/1.1 503", 12) == 0);
  CHECK(strcasestr(reply, "Retry-After: 1") != NULL);
  /* Health is not subject to the in-flight cap. */
  CHECK_OK(quire__http_request(c, "GET", "/health", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200);
  pthread_mutex_lock(&mu);
  slow_release = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&mu);
  void *ret;
  pthread_join(t, &ret);
  CHECK((intptr_t)ret == 0);
  CHECK_OK(quire__http_call(c, "/t/echo", "y", 1, NULL, 1, &resp));
  quire__buf_free(&resp);
  quire__http_client_destroy(c);
  quire__http_server_destroy(s);
}

static void *call_park(void *arg) {
  quire_http_client *c = arg;
  quire_buf resp;
  quire__buf_init(&resp, 1024);
  int rc = quire__http_call(c, "/t/park", "x", 1, NULL, 0, &resp);
  if (rc == 0 && (resp.len != 4 || memcmp(resp.data, "woke", 4) != 0)) rc = -1;
  quire__buf_free(&resp);
  return (void *)(intptr_t)rc;
}

static void wait_parked(void) {
  pthread_mutex_lock(&mu);
  while (!parked_req) pthread_cond_wait(&cond, &mu);
  pthread_mutex_unlock(&mu);
}

static void test_park(void) {
  /* max_inflight 1: a parked request does not hold the slot. */
  quire_http_server *s = start(NULL, 1, 1024);
  quire_http_client *c = client_for(s);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, call_park, c) == 0);
  wait_parked();
  quire_buf resp;
  quire__buf_init(&resp, 1024);
  CHECK_OK(quire__http_call(c, "/t/echo", "z", 1, NULL, 0, &resp));
  wake_parked();
  void *ret;
  pthread_join(t, &ret);
  CHECK((intptr_t)ret == 0);

  /* Stop while a request is parked: the drain callback wakes it, it answers. */
  CHECK(pthread_create(&t, NULL, call_park, c) == 0);
  wait_parked();
  CHECK(quire__http_server_stop(s, 5000) == 0);
  pthread_join(t, &ret);
  CHECK((intptr_t)ret == 0);
  /* Stopped: calls fail cleanly. */
  CHECK(quire__http_call(c, "/t/echo", "z", 1, NULL, 0, &resp) == QUIRE_EUNAVAILABLE);
  quire__buf_free(&resp);
  quire__http_client_destroy(c);
  quire__http_server_destroy(s);
}

int main(void) {
  test_basics();
  test_bodies();
  test_overload();
  test_park();
  return test_done("net_http");
}
