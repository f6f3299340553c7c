/*
 * net/http_server.c — the libmicrohttpd server (see http_server.h).
 *
 * Request life cycle in the access callback (MHD calls it several times per
 * request): the first call allocates a quire_http_req, finds the route and
 * applies the admission checks (closing, overload, Content-Length, content
 * type); later calls append body chunks (discarding them once over the cap);
 * the final call (no more data) suspends the connection and hands the
 * request to a worker pool, so a handler blocked on the object store never
 * stalls the other connections of its server thread. The handler's answer
 * is stored in the request and the connection resumed; MHD then calls back
 * once more and the stored response is queued. A parked request (long poll)
 * stays suspended until its wake, then goes to a worker again, or is taken
 * back by the thread that has its answer (unpark) and answered from there
 * like a handler would. The completion
 * callback records metrics and frees the request.
 *
 * Every suspend is matched by exactly one resume: by the answer (which is
 * given exactly once) or by the wake of a parked request.
 *
 * Admission: a request holds a receiving slot (max_receiving) from its
 * headers until its body is complete, then an in-flight slot (max_inflight)
 * until it is answered; a slow body never holds an in-flight slot, and the
 * front door (http_guard.c) closes bodies that miss the deadline or the
 * minimum rate. The guard is told where each request is (headers done, body
 * bytes, body done, request done).
 *
 * Locking: s->mu protects inflight, receiving, parked and closing; s->idle
 * is signalled when the counts may have dropped. No lock is held while a
 * handler runs.
 */
#include "net/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/errmap.h"
#include "net/http_guard.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"
#include "util/pool.h"

#define MAX_ROUTES 32
/* Past the cap a chunked body is read and dropped up to this many times the
 * cap (so the client gets its 413), then the connection is closed. */
#define DISCARD_FACTOR 4
/* A refused request (401/403/429) with a body up to this long is answered
 * once its body was read and dropped: answering first makes the close
 * reset the connection while the client still sends, and the client sees
 * "failed sending data" instead of the status. Longer bodies are answered
 * at once (and the connection closed). */
#define REFUSE_DRAIN_MAX (8u << 20)
/* Request bodies: one announced by Content-Length is received into one
 * buffer of that size, allocated once (no regrowth, no copies). Buffers of
 * at least BODY_POOL_MIN bytes are kept for the next bodies when their
 * request ends, up to BODY_POOL_MAX buffers and BODY_POOL_FACTOR × max_body
 * bytes, so a steady stream of large bodies (pagestore writes) lands in
 * memory already faulted in: on a VM a page fault costs more than the copy
 * into it. */
#define BODY_POOL_MIN (64u << 10)
#define BODY_POOL_MAX 16
#define BODY_POOL_FACTOR 2

struct route {
  char method[8];
  char path[96];
  unsigned perm;                /* enum quire_perm the token must carry */
  enum quire_route_scope scope; /* what it must cover */
  quire_http_handler fn;
  void *ctx;
  quire_http_check_fn check; /* may be NULL */
  void *check_ctx;
};

struct quire_http_server {
  struct quire_http_server_opts o;
  char *tls_cert_pem, *tls_key_pem; /* TLS on when set */
  char name[32];
  struct MHD_Daemon *mhd;
  int listen_fd;
  uint16_t port;
  struct route routes[MAX_ROUTES];
  unsigned nroutes;
  quire_http_ready_fn ready;
  void *ready_ctx;
  quire_http_drain_fn drain;
  void *drain_ctx;
  quire_pool *workers; /* runs the handlers */
  http_guard *guard;   /* accepts connections, watches them until their request is in */
  pthread_mutex_t mu;  /* guards inflight, receiving, parked, closing */
  pthread_cond_t idle;
  unsigned inflight, receiving, parked;
  int closing, stopped;
  int collector;           /* the gauges' collector is registered */
  pthread_mutex_t pool_mu; /* guards the body pool */
  struct body_slot {
    uint8_t *data;
    size_t cap;
  } pool[BODY_POOL_MAX]; /* request-body buffers kept for reuse */
  unsigned npool;
  size_t pool_bytes; /* their caps' sum */
};

enum req_state { RS_BODY, RS_TOO_LARGE, RS_REFUSED, RS_ANSWERED, RS_PARKED, RS_RESUMED };

struct quire_http_req {
  quire_http_server *srv;
  struct MHD_Connection *conn;
  const struct route *route;
  const char *endpoint; /* metrics label */
  quire_buf body;
  size_t discarded;
  uint64_t start_ns, deadline_ms;
  enum req_state state;
  int status;
  int counted;                  /* holds an inflight slot */
  int receiving;                /* holds a receiving slot (headers in, body not yet complete) */
  struct http_conn *conn_track; /* the guard's view of the connection (may be NULL) */
  int resumed;
  int deferred;                 /* on a worker, connection suspended: answers are stored */
  struct MHD_Response *pending; /* a stored answer, queued after the resume */
  void *user;
  void (*user_free)(void *);
  int authed;             /* tok holds the caller's verified token */
  struct quire_token tok; /* (auth on) */
  struct {                /* RS_REFUSED: the answer once the body is dropped */
    int status, rc;
    unsigned retry_after;
    char message[320];
  } refusal;
};

static const char *const builtin_paths[] = {"/health", "/ready", "/metrics"};

/* ---- request-body buffers (see BODY_POOL_MIN) ------------------------------ */

static void release_receiving(quire_http_server *s, quire_http_req *r);

/* Gives r's body a buffer of at least n bytes, sized once: the smallest
 * kept buffer that holds n, else a fresh one. QUIRE_ENOMEM. */
static int body_take(quire_http_server *s, quire_http_req *r, size_t n) {
  if (n == 0 || r->body.cap >= n) return 0;
  int reused = 0;
  if (n >= BODY_POOL_MIN) {
    pthread_mutex_lock(&s->pool_mu);
    unsigned best = s->npool;
    for (unsigned i = 0; i < s->npool; i++)
      if (s->pool[i].cap >= n && (best == s->npool || s->pool[i].cap < s->pool[best].cap)) best = i;
    if (best < s->npool) {
      quire__buf_free(&r->body);
      r->body.data = s->pool[best].data;
      r->body.cap = s->pool[best].cap;
      s->pool_bytes -= s->pool[best].cap;
      s->pool[best] = s->pool[--s->npool];
      reused = 1;
    }
    pthread_mutex_unlock(&s->pool_mu);
  }
  if (reused) {
    if (s->o.metrics)
      quire__metrics_count(s->o.metrics, "quire_http_body_buffers_reused_total",
                           "request bodies received into a kept buffer", "", 1);
    return 0;
  }
  /* Large ones are rounded up to BODY_POOL_MIN, so that the next body of
   * about the same size (a few bytes more: other page indexes) fits. */
  size_t cap = n >= BODY_POOL_MIN && n <= SIZE_MAX - BODY_POOL_MIN
                   ? (n + BODY_POOL_MIN - 1) / BODY_POOL_MIN * BODY_POOL_MIN
                   : n;
  uint8_t *p = quire__malloc(cap);
  if (!p) return quire__err(QUIRE_ENOMEM, "request body of %zu bytes", n);
  quire__buf_free(&r->body);
  r->body.data = p;
  r->body.cap = cap;
  return 0;
}

/* Ends r's body: its buffer is kept for the next bodies when it is large
 * enough and the pool has room (the smallest kept ones make way for a
 * larger one), else freed. */
static void body_release(quire_http_server *s, quire_http_req *r) {
  uint8_t *data = r->body.data;
  size_t cap = r->body.cap, limit = BODY_POOL_FACTOR * s->o.max_body;
  quire__buf_init(&r->body, s->o.max_body);
  if (!data) return;
  if (cap >= BODY_POOL_MIN && cap <= limit) {
    pthread_mutex_lock(&s->pool_mu);
    while (s->npool > 0 && (s->npool == BODY_POOL_MAX || s->pool_bytes + cap > limit)) {
      unsigned small = 0;
      for (unsigned i = 1; i < s->npool; i++)
        if (s->pool[i].cap < s->pool[small].cap) small = i;
      if (s->pool[small].cap >= cap) break; /* every kept one is at least as useful */
      quire__free(s->pool[small].data);
      s->pool_bytes -= s->pool[small].cap;
      s->pool[small] = s->pool[--s->npool];
    }
    if (s->npool < BODY_POOL_MAX && s->pool_bytes + cap <= limit) {
      s->pool[s->npool++] = (struct body_slot){data, cap};
      s->pool_bytes += cap;
      data = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
  }
  quire__free(data);
}

/* Reads a PEM file (at most 1 MiB) into a NUL-terminated string. */
static int read_pem(const char *path, char **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return quire__errno("TLS file %s", path);
  quire_buf b;
  quire__buf_init(&b, 1u << 20);
  int rc = 0;
  for (;;) {
    uint8_t chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = quire__errno("reading %s", path);
    if (n <= 0) break;
    rc = quire__buf_append(&b, chunk, (size_t)n);
    if (rc) break;
  }
  close(fd);
  if (!rc) rc = quire__buf_append(&b, "", 1);
  if (!rc && !strstr((const char *)b.data, "-----BEGIN "))
    rc = quire__err(QUIRE_EINVAL, "%s is not PEM", path);
  if (!rc) {
    *out = quire__strdup((const char *)b.data);
    if (!*out) rc = QUIRE_ENOMEM;
  }
  if (b.data) sodium_memzero(b.data, b.len);
  quire__buf_free(&b);
  if (rc == QUIRE_ETOOLARGE) rc = quire__err(rc, "%s is over 1 MiB", path);
  return rc;
}

int quire__http_server_create(const struct quire_http_server_opts *opts, quire_http_server **out) {
  *out = NULL;
  quire_http_server *s = quire__calloc(1, sizeof *s);
  if (!s) return QUIRE_ENOMEM;
  s->o = *opts;
  if (!s->o.threads) s->o.threads = 4;
  if (!s->o.max_connections) s->o.max_connections = 1024;
  if (!s->o.max_inflight) s->o.max_inflight = 256;
  if (!s->o.max_receiving) s->o.max_receiving = s->o.max_inflight;
  if (!s->o.max_per_address) s->o.max_per_address = 128;
  if (!s->o.header_timeout_ms) s->o.header_timeout_ms = 10000;
  if (!s->o.min_body_rate) s->o.min_body_rate = 1024;
  if (!s->o.max_body) s->o.max_body = 16u << 20;
  if (!s->o.deadline_ms) s->o.deadline_ms = 30000;
  if (!s->o.idle_timeout_s) s->o.idle_timeout_s = 60;
  if (!s->o.workers) s->o.workers = 64;
  snprintf(s->name, sizeof s->name, "%s", opts->name ? opts->name : "http");
  s->o.name = s->name;
  s->o.listen = NULL; /* copied below */
  s->listen_fd = -1;
  s->o.tls_cert_file = s->o.tls_key_file = NULL;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->pool_mu, NULL);
  pthread_cond_init(&s->idle, NULL);
  *out = s;
  int rc = 0;
  if (!opts->tls_cert_file != !opts->tls_key_file)
    rc = quire__err(QUIRE_EINVAL, "TLS needs both a certificate (--tls-cert) and a key (--tls-key)");
  if (!rc && opts->tls_cert_file) rc = read_pem(opts->tls_cert_file, &s->tls_cert_pem);
  if (!rc && opts->tls_key_file) rc = read_pem(opts->tls_key_file, &s->tls_key_pem);
  if (rc) {
    quire__http_server_destroy(s);
    *out = NULL;
    return rc;
  }
  if (!opts->listen) return 0;
  s->o.listen = quire__strdup(opts->listen);
  if (!s->o.listen) {
    quire__http_server_destroy(s);
    *out = NULL;
    return QUIRE_ENOMEM;
  }
  return 0;
}

int quire__http_server_route(quire_http_server *s, const char *method, const char *path,
                             quire_http_handler fn, void *ctx) {
  return quire__http_server_route_auth(s, method, path, QUIRE_PERM_ADMIN, QUIRE_SCOPE_SERVICE, fn, ctx);
}

int quire__http_server_route_auth(quire_http_server *s, const char *method, const char *path, unsigned perm,
                                  enum quire_route_scope scope, quire_http_handler fn, void *ctx) {
  if (s->nroutes >= MAX_ROUTES) return quire__err(QUIRE_ETOOLARGE, "too many routes");
  if (perm < QUIRE_PERM_READ || perm > QUIRE_PERM_ADMIN ||
      (scope != QUIRE_SCOPE_VOLUME && scope != QUIRE_SCOPE_SERVICE))
    return quire__err(QUIRE_EINVAL, "route %s: bad permission or scope", path);
  if (strlen(method) >= sizeof s->routes[0].method || strlen(path) >= sizeof s->routes[0].path)
    return quire__err(QUIRE_EINVAL, "route too long");
  struct route *r = &s->routes[s->nroutes++];
  snprintf(r->method, sizeof r->method, "%s", method);
  snprintf(r->path, sizeof r->path, "%s", path);
  r->perm = perm;
  r->scope = scope;
  r->fn = fn;
  r->ctx = ctx;
  return 0;
}

int quire__http_server_route_check(quire_http_server *s, const char *method, const char *path,
                                   quire_http_check_fn fn, void *ctx) {
  for (unsigned i = 0; i < s->nroutes; i++)
    if (strcmp(s->routes[i].method, method) == 0 && strcmp(s->routes[i].path, path) == 0) {
      s->routes[i].check = fn;
      s->routes[i].check_ctx = ctx;
      return 0;
    }
  return quire__err(QUIRE_ENOTFOUND, "no route %s %s", method, path);
}

void quire__http_server_set_ready(quire_http_server *s, quire_http_ready_fn fn, void *ctx) {
  s->ready = fn;
  s->ready_ctx = ctx;
}

void quire__http_server_set_drain(quire_http_server *s, quire_http_drain_fn fn, void *ctx) {
  s->drain = fn;
  s->drain_ctx = ctx;
}

uint16_t quire__http_server_port(const quire_http_server *s) { return s->port; }

unsigned quire__http_server_connections(quire_http_server *s) {
  return s->guard ? quire__http_guard_connections(s->guard) : 0;
}

int quire__http_server_closing(quire_http_server *s) {
  pthread_mutex_lock(&s->mu);
  int c = s->closing;
  pthread_mutex_unlock(&s->mu);
  return c;
}

/* --- answering ------------------------------------------------------------- */

/* Set on a worker thread when the handler it runs answers or parks. */
static _Thread_local int answered_here, parked_here;

/* Gives resp (our reference) to the connection: queued at once on the MHD
 * thread, or, on a worker, stored and the connection resumed so the MHD
 * thread queues it (r is not ours after that). */
static int hand_over(quire_http_req *r, int status, struct MHD_Response *resp) {
  r->state = RS_ANSWERED;
  r->status = status;
  if (r->deferred) {
    answered_here = 1;
    r->pending = resp;
    MHD_resume_connection(r->conn);
    return 0;
  }
  enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return ok == MHD_YES ? 0 : QUIRE_EIO;
}

/* close: the connection closes after this answer (a request whose framing
 * cannot be trusted must not be followed by another on the same stream). */
static int queue(quire_http_req *r, int status, const char *ctype, const void *body, size_t len,
                 unsigned retry_after, int close) {
  if (QUIRE_NEVER(r->state == RS_ANSWERED)) return QUIRE_EINTERNAL;
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (resp) {
    if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (retry_after) {
      char ra[16];
      snprintf(ra, sizeof ra, "%u", retry_after);
      MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (close) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  }
  if (r->authed) quire__auth_charge(r->srv->o.auth, r->tok.id, len);
  if (!resp) {
    if (!r->deferred) return QUIRE_ENOMEM;
    /* Without a response the resumed connection is closed. */
    r->state = RS_ANSWERED;
    r->status = status;
    answered_here = 1;
    MHD_resume_connection(r->conn);
    return QUIRE_ENOMEM;
  }
  return hand_over(r, status, resp);
}

int quire__http_respond(quire_http_req *r, int status, const char *content_type, const void *body,
                        size_t len) {
  return queue(r, status, content_type, body, len, status == 503, 0);
}

static int respond_error_retry(quire_http_req *r, int status, int rc, const char *message, int close,
                               unsigned retry_after) {
  quire_buf b;
  quire__buf_init(&b, 1u << 20);
  if (quire__errmap_body(rc, message, &b) != 0) {
    quire__buf_free(&b);
    return queue(r, status, "text/plain", "error\n", 6, retry_after, close);
  }
  int ret = queue(r, status, QUIRE_CONTENT_PROTOBUF, b.data, b.len, retry_after, close);
  quire__buf_free(&b);
  return ret;
}

static int respond_error_close(quire_http_req *r, int status, int rc, const char *message, int close) {
  return respond_error_retry(r, status, rc, message, close, status == 503);
}

static int respond_status_error(quire_http_req *r, int status, int rc, const char *message) {
  return respond_error_close(r, status, rc, message, 0);
}

int quire__http_respond_error(quire_http_req *r, int rc, const char *message) {
  if (!message) message = quire_errmsg();
  int status = quire__errmap_status(rc);
  if (status >= 500)
    QLOG_INFO("%s: %s -> %d %s: %s", r->srv->name, r->endpoint, status, quire_errname(rc), message);
  else
    QLOG_DEBUG("%s: %s -> %d %s: %s", r->srv->name, r->endpoint, status, quire_errname(rc), message);
  return respond_status_error(r, status, rc, message);
}

/* --- streaming answers ----------------------------------------------------- */

/* Locking: st->mu guards every field. It is taken by the MHD thread in
 * stream_read/stream_release and by the producer; MHD_suspend/resume are
 * called under it so that a resume never races a suspend. */
struct quire_http_stream {
  pthread_mutex_t mu;
  pthread_cond_t room;
  struct MHD_Connection *conn; /* NULL once MHD released the response */
  quire_buf buf;               /* unsent bytes are buf.data[off .. len) */
  size_t off, max_buffer;
  /* suspended: the connection waits for a kick (a resume) to send more;
   * set at the start when the answer came from a worker or an unparked
   * request, whose connection is suspended until the first kick. */
  int refs, done, failed, cancelled, suspended;
  quire_auth *auth; /* charge the bytes to token id (NULL: no auth) */
  uint8_t id[16];
};

static void stream_unref(quire_http_stream *st) {
  pthread_mutex_lock(&st->mu);
  int left = --st->refs;
  pthread_mutex_unlock(&st->mu);
  if (left) return;
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->room);
  quire__buf_free(&st->buf);
  quire__free(st);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
  (void)pos;
  quire_http_stream *st = cls;
  ssize_t n;
  pthread_mutex_lock(&st->mu);
  size_t avail = st->buf.len - st->off;
  if (avail > 0) {
    n = (ssize_t)(avail < max ? avail : max);
    memcpy(out, st->buf.data + st->off, (size_t)n);
    st->off += (size_t)n;
    if (st->off == st->buf.len) st->off = st->buf.len = 0;
    pthread_cond_broadcast(&st->room);
  } else if (st->done) {
    n = st->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
  } else {
    st->suspended = 1;
    MHD_suspend_connection(st->conn);
    n = 0;
  }
  pthread_mutex_unlock(&st->mu);
  return n;
}

static void stream_release(void *cls) {
  quire_http_stream *st = cls;
  pthread_mutex_lock(&st->mu);
  st->cancelled = 1;
  st->conn = NULL;
  pthread_cond_broadcast(&st->room);
  pthread_mutex_unlock(&st->mu);
  stream_unref(st);
}

static void stream_kick(quire_http_stream *st) {
  if (st->suspended && st->conn) {
    st->suspended = 0;
    MHD_resume_connection(st->conn);
  }
}

/* Corking: below this many unsent bytes a write does not wake the
 * connection (MHD reads the stream in blocks of this size). */
#define STREAM_CORK (64u * 1024)

int quire__http_respond_stream(quire_http_req *r, int status, const char *content_type, size_t max_buffer,
                               quire_http_stream **out) {
  *out = NULL;
  if (QUIRE_NEVER(r->state == RS_ANSWERED)) return QUIRE_EINTERNAL;
  quire_http_stream *st = quire__calloc(1, sizeof *st);
  if (!st) return QUIRE_ENOMEM;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->room, NULL);
  quire__buf_init(&st->buf, SIZE_MAX / 2);
  st->max_buffer = max_buffer ? max_buffer : (1u << 20);
  st->conn = r->conn;
  st->refs = 2; /* the response and the producer */
  if (r->authed) {
    st->auth = r->srv->o.auth;
    memcpy(st->id, r->tok.id, sizeof st->id);
  }
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, st, stream_release);
  if (!resp) {
    st->refs = 1;
    stream_unref(st);
    return QUIRE_ENOMEM;
  }
  if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  /* The connection holds the response; stream_release runs when it is done.
   * From a worker (or an unparked request) the connection stays suspended
   * until the first kick — the first bytes worth sending, a flush or the
   * end — and then queues the response; if that fails the release cancels
   * the stream and the producer's writes get QUIRE_ECLOSED. */
  if (r->deferred) {
    r->state = RS_ANSWERED;
    r->status = status;
    r->pending = resp;
    answered_here = 1;
    st->suspended = 1; /* the first kick resumes the connection */
    *out = st;
    return 0;
  }
  if (hand_over(r, status, resp) != 0) {
    stream_unref(st); /* release already dropped the response's reference */
    return QUIRE_EIO;
  }
  *out = st;
  return 0;
}

int quire__http_stream_write_fn(quire_http_stream *st, size_t n, void (*fill)(void *ctx, uint8_t *dst),
                                void *ctx) {
  int rc = 0;
  pthread_mutex_lock(&st->mu);
  while (!st->cancelled && st->buf.len - st->off > 0 && st->buf.len - st->off + n > st->max_buffer) {
    stream_kick(st); /* corked bytes must go out before there is room */
    pthread_cond_wait(&st->room, &st->mu);
  }
  if (st->cancelled) {
    rc = quire__err(QUIRE_ECLOSED, "the client went away");
  } else {
    if (st->off > 0) { /* compact: keep the unsent tail at the front */
      memmove(st->buf.data, st->buf.data + st->off, st->buf.len - st->off);
      st->buf.len -= st->off;
      st->off = 0;
    }
    rc = quire__buf_reserve(&st->buf, n);
    if (rc == 0) {
      fill(ctx, st->buf.data + st->buf.len);
      st->buf.len += n;
    }
    if (st->buf.len - st->off >= STREAM_CORK) stream_kick(st);
  }
  pthread_mutex_unlock(&st->mu);
  if (rc == 0 && st->auth) quire__auth_charge(st->auth, st->id, n);
  return rc;
}

struct bytes_ref {
  const void *p;
  size_t n;
};
static void copy_bytes(void *ctx, uint8_t *dst) {
  const struct bytes_ref *b = ctx;
  if (b->n) memcpy(dst, b->p, b->n);
}

int quire__http_stream_write(quire_http_stream *st, const void *p, size_t n) {
  struct bytes_ref b = {p, n};
  return quire__http_stream_write_fn(st, n, copy_bytes, &b);
}

void quire__http_stream_flush(quire_http_stream *st) {
  pthread_mutex_lock(&st->mu);
  if (st->buf.len > st->off) stream_kick(st);
  pthread_mutex_unlock(&st->mu);
}

void quire__http_stream_end(quire_http_stream *st, int failed) {
  if (!st) return;
  pthread_mutex_lock(&st->mu);
  st->done = 1;
  st->failed = failed;
  stream_kick(st);
  pthread_mutex_unlock(&st->mu);
  stream_unref(st);
}

int quire__http_stream_cancelled(quire_http_stream *st) {
  pthread_mutex_lock(&st->mu);
  int c = st->cancelled;
  pthread_mutex_unlock(&st->mu);
  return c;
}

/* --- request accessors ----------------------------------------------------- */

const uint8_t *quire__http_req_body(const quire_http_req *r, size_t *len) {
  *len = r->body.len;
  return r->body.data ? r->body.data : (const uint8_t *)"";
}
uint64_t quire__http_req_deadline_ms(const quire_http_req *r) { return r->deadline_ms; }
const char *quire__http_req_path(const quire_http_req *r) { return r->endpoint; }
const struct quire_token *quire__http_req_token(const quire_http_req *r) {
  return r->authed ? &r->tok : NULL;
}
quire_auth *quire__http_req_auth(const quire_http_req *r) { return r->srv->o.auth; }
int quire__http_req_resumed(const quire_http_req *r) { return r->resumed; }
void *quire__http_req_user(const quire_http_req *r) { return r->user; }

void quire__http_req_set_user(quire_http_req *r, void *user, void (*free_fn)(void *)) {
  r->user = user;
  r->user_free = free_fn;
}

void quire__http_req_park(quire_http_req *r) {
  quire_http_server *s = r->srv;
  /* Handlers run on workers with the connection already suspended. */
  parked_here = 1;
  r->state = RS_PARKED;
  pthread_mutex_lock(&s->mu);
  s->parked++;
  if (r->counted) {
    r->counted = 0;
    s->inflight--;
  }
  pthread_mutex_unlock(&s->mu);
}

void quire__http_req_wake(quire_http_req *r) { MHD_resume_connection(r->conn); }

/* A parked request is back in flight: shutdown must wait for its answer. */
static void back_in_flight(quire_http_req *r) {
  quire_http_server *s = r->srv;
  pthread_mutex_lock(&s->mu);
  s->parked--;
  s->inflight++;
  r->counted = 1;
  pthread_mutex_unlock(&s->mu);
  r->state = RS_RESUMED;
  r->resumed = 1;
}

void quire__http_req_unpark(quire_http_req *r) {
  /* As on_request does for a woken request, but on this thread; the
   * connection stays suspended (r->deferred) until the answer resumes it. */
  back_in_flight(r);
}

/* --- built-in endpoints ---------------------------------------------------- */

/* Why the server cannot take more work now, or NULL (for /ready). */
static const char *saturated(quire_http_server *s, char *why, size_t cap) {
  pthread_mutex_lock(&s->mu);
  unsigned inflight = s->inflight, receiving = s->receiving;
  pthread_mutex_unlock(&s->mu);
  unsigned conns = s->guard ? quire__http_guard_connections(s->guard) : 0;
  if (inflight >= s->o.max_inflight)
    snprintf(why, cap, "saturated: %u of %u requests being handled (--max-inflight)", inflight,
             s->o.max_inflight);
  else if (receiving >= s->o.max_receiving)
    snprintf(why, cap, "saturated: %u of %u request bodies being received", receiving, s->o.max_receiving);
  else if (conns >= s->o.max_connections)
    snprintf(why, cap, "saturated: %u of %u connections open (--max-connections)", conns,
             s->o.max_connections);
  else
    return NULL;
  return why;
}

static void serve_builtin(quire_http_req *r, size_t which) {
  quire_http_server *s = r->srv;
  if (which == 0) {
    quire__http_respond(r, 200, "text/plain", "ok\n", 3);
  } else if (which == 1) {
    int rc = s->ready ? s->ready(s->ready_ctx) : 0;
    char why[160];
    const char *msg = NULL;
    if (rc) {
      msg = quire_errmsg()[0] ? quire_errmsg() : "the object store does not answer";
      rc = QUIRE_EUNAVAILABLE;
    } else if (quire__http_server_closing(s)) {
      rc = QUIRE_ECLOSED;
      msg = "shutting down";
    } else if ((msg = saturated(s, why, sizeof why)) != NULL) {
      rc = QUIRE_EBUSY;
    }
    if (rc == 0)
      quire__http_respond(r, 200, "text/plain", "ready\n", 6);
    else
      quire__http_respond_error(r, rc, msg);
  } else {
    quire_buf b;
    quire__buf_init(&b, 64u << 20);
    int rc = s->o.metrics ? quire__metrics_render(s->o.metrics, &b) : 0;
    if (rc)
      quire__http_respond_error(r, rc, "rendering metrics");
    else
      quire__http_respond(r, 200, "text/plain; version=0.0.4", b.data ? (void *)b.data : "", b.len);
    quire__buf_free(&b);
  }
}

/* --- the MHD callbacks ----------------------------------------------------- */

static int content_type_ok(struct MHD_Connection *conn) {
  const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!ct) return 0;
  size_t n = strlen(QUIRE_CONTENT_PROTOBUF);
  return strncasecmp(ct, QUIRE_CONTENT_PROTOBUF, n) == 0 && (ct[n] == '\0' || ct[n] == ';');
}

struct framing {
  unsigned content_length, transfer_encoding;
  int cl_bad, te_bad;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  struct framing *f = cls;
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
    f->content_length++;
    if (!value || !*value || strspn(value, "0123456789") != strlen(value)) f->cl_bad = 1;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
    f->transfer_encoding++;
    if (!value || strcasecmp(value, "chunked") != 0) f->te_bad = 1;
  }
  return MHD_YES;
}

/* RFC 9112 §6: a request whose length two parts of the chain could read
 * differently (request smuggling) is refused, and the connection closed.
 * Returns 1 when it answered. */
static int reject_framing(quire_http_req *r) {
  struct framing f = {0};
  MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, &f);
  const char *why = NULL;
  int status = 400, rc = QUIRE_EINVAL;
  if (f.content_length > 1)
    why = "more than one Content-Length header";
  else if (f.content_length && f.transfer_encoding)
    why = "both Transfer-Encoding and Content-Length";
  else if (f.cl_bad)
    why = "Content-Length is not a decimal number";
  else if (f.transfer_encoding > 1)
    why = "more than one Transfer-Encoding header";
  else if (f.te_bad)
    why = "Transfer-Encoding other than chunked", status = 501, rc = QUIRE_EUNSUPPORTED;
  if (!why) return 0;
  respond_error_close(r, status, rc, why, 1);
  return 1;
}

static const char *header(quire_http_req *r, const char *name) {
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Refuses r with status: at once when it has no body (or one too long to
 * drop), else after its body was read and dropped (RS_REFUSED). */
static int refuse(quire_http_req *r, int status, int rc, const char *message, unsigned retry_after) {
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  char *end = NULL;
  errno = 0;
  unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
  if (cl && !errno && end && !*end && n > 0 && n <= REFUSE_DRAIN_MAX) {
    r->state = RS_REFUSED;
    r->refusal.status = status;
    r->refusal.rc = rc;
    r->refusal.retry_after = retry_after;
    snprintf(r->refusal.message, sizeof r->refusal.message, "%s", message);
    body_release(r->srv, r);
    return 1;
  }
  return respond_error_retry(r, status, rc, message, 0, retry_after), 1;
}

/* The token checks that need no body (docs/SECURITY.md): genuine (401),
 * the route's permission (403), a service-wide route needs an all-volume
 * token (403), the quota (429). Returns 1 when it answered. */
static int authorize(quire_http_server *s, quire_http_req *r) {
  const struct route *rt = r->route;
  if (quire__auth_check(s->o.auth, header(r, MHD_HTTP_HEADER_AUTHORIZATION), &r->tok) != 0) {
    QLOG_DEBUG("%s: %s -> 401: %s", s->name, r->endpoint, quire_errmsg());
    return refuse(r, 401, QUIRE_EUNAUTHORIZED, quire_errmsg(), 0);
  }
  char msg[320];
  if (r->tok.perm < rt->perm) {
    snprintf(msg, sizeof msg, "%s needs a %s token; this one (%s) is %s", rt->path,
             quire__perm_name(rt->perm), r->tok.subject, quire__perm_name(r->tok.perm));
    return refuse(r, 403, QUIRE_EFORBIDDEN, msg, 0);
  }
  if (rt->scope == QUIRE_SCOPE_SERVICE && r->tok.nvol != 0) {
    snprintf(msg, sizeof msg, "%s needs a token for every volume; this one (%s) is for %u", rt->path,
             r->tok.subject, (unsigned)r->tok.nvol);
    return refuse(r, 403, QUIRE_EFORBIDDEN, msg, 0);
  }
  unsigned retry_after = 0;
  if (quire__auth_admit(s->o.auth, &r->tok, &retry_after) != 0)
    return refuse(r, 429, QUIRE_EBUSY, quire_errmsg(), retry_after);
  r->authed = 1;
  return 0;
}

/* Once the body is in: the volume the request is about must be one the
 * token covers (403), and the body's bytes count against the token's byte
 * quota. Returns 1 when it answered. */
static int authorize_volume(quire_http_server *s, quire_http_req *r) {
  if (!r->authed) return 0;
  quire__auth_charge(s->o.auth, r->tok.id, r->body.len);
  if (r->route->scope != QUIRE_SCOPE_VOLUME || r->tok.nvol == 0) return 0;
  quire_gid vid;
  if (quire__auth_request_vid(r->body.data, r->body.len, &vid) != 0)
    return respond_status_error(r, 400, QUIRE_EINVAL, quire_errmsg()), 1;
  if (!quire__token_covers(&r->tok, &vid)) {
    char msg[256], text[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&vid, text);
    snprintf(msg, sizeof msg, "token %s does not cover volume %s", r->tok.subject, text);
    return respond_status_error(r, 403, QUIRE_EFORBIDDEN, msg), 1;
  }
  return 0;
}

/* First call: route, admission. Returns 0 to go on reading the body. */
static int admit(quire_http_server *s, quire_http_req *r, const char *url, const char *method) {
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(builtin_paths); i++) {
    if (strcmp(url, builtin_paths[i]) == 0) {
      r->endpoint = builtin_paths[i];
      if (reject_framing(r)) return 1;
      if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond_status_error(r, 405, QUIRE_EINVAL, "use GET"), 1;
      if (i > 0 && quire__auth_check_metrics(s->o.auth, header(r, MHD_HTTP_HEADER_AUTHORIZATION)) != 0)
        return respond_status_error(r, 401, QUIRE_EUNAUTHORIZED, quire_errmsg()), 1;
      serve_builtin(r, i);
      return 1;
    }
  }
  const struct route *path_match = NULL;
  for (unsigned i = 0; i < s->nroutes; i++) {
    if (strcmp(s->routes[i].path, url) != 0) continue;
    path_match = &s->routes[i];
    if (strcmp(s->routes[i].method, method) == 0) {
      r->route = &s->routes[i];
      break;
    }
  }
  if (reject_framing(r)) return 1;
  if (!r->route) {
    r->endpoint = path_match ? path_match->path : "other";
    if (path_match) {
      char msg[64];
      snprintf(msg, sizeof msg, "use %s", path_match->method);
      respond_status_error(r, 405, QUIRE_EINVAL, msg);
    } else {
      char msg[160];
      snprintf(msg, sizeof msg, "no such endpoint: %s %.100s", method, url);
      respond_status_error(r, 404, QUIRE_ENOTFOUND, msg);
    }
    return 1;
  }
  r->endpoint = r->route->path;
  if (s->o.auth && authorize(s, r)) return 1;
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  int too_large = 0;
  unsigned long long announced = 0;
  if (cl) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    if (errno || *end || n / DISCARD_FACTOR > s->o.max_body) {
      char msg[96];
      snprintf(msg, sizeof msg, "request body over %zu bytes", s->o.max_body);
      quire__http_respond_error(r, QUIRE_ETOOLARGE, msg);
      return 1;
    }
    too_large = n > s->o.max_body;
    announced = n;
  }
  if (strcmp(method, "POST") == 0 && !content_type_ok(r->conn)) {
    respond_status_error(r, 415, QUIRE_EINVAL, "Content-Type must be " QUIRE_CONTENT_PROTOBUF);
    return 1;
  }
  /* A receiving slot until the body is complete; the handlers' in-flight
   * slots are taken only then, so slow bodies cannot starve them. Refusing
   * here, before the body, also tells a client that waits for
   * 100-continue to back off. */
  pthread_mutex_lock(&s->mu);
  int closing = s->closing, busy = s->inflight >= s->o.max_inflight,
      full = s->receiving >= s->o.max_receiving;
  if (!closing && !busy && !full) {
    s->receiving++;
    r->receiving = 1;
  }
  unsigned inflight = s->inflight, receiving = s->receiving;
  pthread_mutex_unlock(&s->mu);
  char msg[160];
  if (closing) return quire__http_respond_error(r, QUIRE_ECLOSED, "server is shutting down"), 1;
  if (busy) {
    snprintf(msg, sizeof msg, "server overloaded: %u requests being handled (the limit); retry", inflight);
    return quire__http_respond_error(r, QUIRE_EBUSY, msg), 1;
  }
  if (full) {
    snprintf(msg, sizeof msg, "server overloaded: %u request bodies being received (the limit); retry",
             receiving);
    return quire__http_respond_error(r, QUIRE_EBUSY, msg), 1;
  }
  if (too_large) {
    /* Read and drop the body, then answer 413: answering before the body
     * is read makes the close reset the connection, and the client may
     * never see the status. */
    r->state = RS_TOO_LARGE;
    body_release(s, r);
  } else if (announced && body_take(s, r, (size_t)announced) != 0) {
    /* No memory for the body: refuse it before it arrives. */
    release_receiving(s, r);
    return quire__http_respond_error(r, QUIRE_EBUSY, "server out of memory for the request body; retry"), 1;
  }
  return 0;
}

/* Gives back the receiving slot (the body is complete, or the request is
 * over). */
static void release_receiving(quire_http_server *s, quire_http_req *r) {
  if (!r->receiving) return;
  pthread_mutex_lock(&s->mu);
  s->receiving--;
  r->receiving = 0;
  pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->mu);
}

/* Runs a handler on a worker (the connection is suspended). */
static void run_handler(void *arg) {
  quire_http_req *r = arg;
  answered_here = parked_here = 0;
  quire__err_clear();
  r->route->fn(r->route->ctx, r);
  if (!answered_here && !parked_here && QUIRE_NEVER(1))
    quire__http_respond_error(r, QUIRE_EINTERNAL, "handler did not answer");
}

/* Suspends the connection and queues the handler; an answer comes back
 * through a resume. */
static void dispatch(quire_http_server *s, quire_http_req *r) {
  r->deferred = 1;
  MHD_suspend_connection(r->conn);
  if (quire__pool_try_submit(s->workers, run_handler, r) != 0)
    quire__http_respond_error(r, QUIRE_EBUSY,
                              "server overloaded: no handler thread free; retry"); /* resumes */
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls) {
  (void)version;
  quire_http_server *s = cls;
  quire_http_req *r = *con_cls;
  if (!r) {
    r = quire__calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->srv = s;
    r->conn = conn;
    r->conn_track = quire__http_guard_conn(conn);
    r->start_ns = quire__mono_ns();
    r->deadline_ms = quire__mono_ms() + s->o.deadline_ms;
    r->endpoint = "other";
    quire__buf_init(&r->body, s->o.max_body);
    *con_cls = r;
    quire__http_guard_headers_done(s->guard, r->conn_track);
    if (admit(s, r, url, method) && r->state != RS_REFUSED)
      quire__http_guard_body_done(s->guard, r->conn_track); /* answered */
    return MHD_YES;
  }
  if (*upload_size > 0) {
    size_t n = *upload_size;
    *upload_size = 0;
    quire__http_guard_body(s->guard, r->conn_track, n);
    if (r->state == RS_BODY) {
      int rc = quire__buf_append(&r->body, upload, n);
      if (rc == QUIRE_ETOOLARGE) {
        r->state = RS_TOO_LARGE;
        r->discarded = r->body.len + n;
        body_release(s, r);
      } else if (rc) {
        return MHD_NO;
      }
    } else {
      r->discarded += n;
      if (r->discarded / DISCARD_FACTOR > s->o.max_body) return MHD_NO;
    }
    return MHD_YES;
  }
  switch (r->state) {
  case RS_ANSWERED:
    if (r->deferred) { /* back from a worker with its answer */
      r->deferred = 0;
      struct MHD_Response *resp = r->pending;
      r->pending = NULL;
      if (!resp) return MHD_NO;
      enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, resp);
      MHD_destroy_response(resp);
      return ok;
    }
    return MHD_YES;
  case RS_TOO_LARGE: {
    release_receiving(s, r);
    if (quire__http_guard_body_done(s->guard, r->conn_track) != 0) return MHD_NO;
    char msg[96];
    snprintf(msg, sizeof msg, "request body over %zu bytes", s->o.max_body);
    quire__http_respond_error(r, QUIRE_ETOOLARGE, msg);
    return MHD_YES;
  }
  case RS_REFUSED:
    if (quire__http_guard_body_done(s->guard, r->conn_track) != 0) return MHD_NO;
    respond_error_retry(r, r->refusal.status, r->refusal.rc, r->refusal.message, 0, r->refusal.retry_after);
    return MHD_YES;
  case RS_PARKED:
    back_in_flight(r);
    break;
  default: {
    /* The body is complete: trade the receiving slot for an in-flight one. */
    release_receiving(s, r);
    if (quire__http_guard_body_done(s->guard, r->conn_track) != 0) return MHD_NO; /* timed out meanwhile */
    if (quire__mono_ms() > r->deadline_ms) {
      /* The body took longer to arrive than the whole request may take. */
      respond_error_close(r, 408, QUIRE_ETIMEDOUT, "request deadline passed before the body arrived", 1);
      return MHD_YES;
    }
    if (authorize_volume(s, r)) return MHD_YES;
    int crc = r->route->check ? r->route->check(r->route->check_ctx, r, r->body.data, r->body.len) : 0;
    if (crc) {
      quire__http_respond_error(r, crc, NULL);
      return MHD_YES;
    }
    pthread_mutex_lock(&s->mu);
    int closing = s->closing, busy = s->inflight >= s->o.max_inflight;
    if (!closing && !busy) {
      s->inflight++;
      r->counted = 1;
    }
    unsigned inflight = s->inflight;
    pthread_mutex_unlock(&s->mu);
    if (closing) return quire__http_respond_error(r, QUIRE_ECLOSED, "server is shutting down"), MHD_YES;
    if (busy) {
      char msg[128];
      snprintf(msg, sizeof msg, "server overloaded: %u requests being handled (the limit); retry", inflight);
      quire__http_respond_error(r, QUIRE_EBUSY, msg);
      return MHD_YES;
    }
    break;
  }
  }
  r->deferred = 0;
  dispatch(s, r);
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)conn;
  quire_http_server *s = cls;
  quire_http_req *r = *con_cls;
  if (!r) return;
  *con_cls = NULL;
  int killed = quire__http_guard_request_done(s->guard, r->conn_track);
  if (killed && !r->status) r->status = killed; /* the watchdog answered it */
  pthread_mutex_lock(&s->mu);
  if (r->counted) s->inflight--;
  if (r->receiving) s->receiving--;
  if (r->state == RS_PARKED) s->parked--; /* cut off by shutdown */
  pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->mu);
  if (s->o.metrics) {
    char labels[160];
    int status = r->status ? r->status : 499; /* 499: the client went away first */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !r->status) status = 499;
    snprintf(labels, sizeof labels, "endpoint=\"%s\",status=\"%d\"", r->endpoint, status);
    quire__metrics_count(s->o.metrics, "quire_http_requests_total", "HTTP requests by endpoint and status",
                         labels, 1);
    snprintf(labels, sizeof labels, "endpoint=\"%s\"", r->endpoint);
    quire__metrics_observe(s->o.metrics, "quire_http_request_duration_seconds",
                           "HTTP request latency by endpoint (long polls included)", labels,
                           (double)(quire__mono_ns() - r->start_ns) / 1e9);
  }
  if (r->pending) MHD_destroy_response(r->pending);
  if (r->user_free) r->user_free(r->user);
  body_release(s, r);
  quire__free(r);
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap) {
  quire_http_server *s = cls;
  if (quire__log_level() < QUIRE_LOG_DEBUG) return;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n && line[n - 1] == '\n') line[--n] = '\0';
  QLOG_DEBUG("%s: libmicrohttpd: %s", s->name, line);
}

/* --- start and stop -------------------------------------------------------- */

static int bind_listen(const char *listen_addr, int *fd_out, uint16_t *port_out) {
  char host[256];
  const char *colon = strrchr(listen_addr, ':');
  if (!colon || colon == listen_addr || !colon[1])
    return quire__err(QUIRE_EINVAL, "listen address '%s': want HOST:PORT", listen_addr);
  size_t hl = (size_t)(colon - listen_addr);
  const char *h = listen_addr;
  if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') h++, hl -= 2;
  if (hl >= sizeof host) return quire__err(QUIRE_EINVAL, "listen host too long");
  memcpy(host, h, hl);
  host[hl] = '\0';
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int g = getaddrinfo(host, colon + 1, &hints, &ai);
  if (g) return quire__err(QUIRE_EINVAL, "listen address '%s': %s", listen_addr, gai_strerror(g));
  int rc = 0, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    rc = quire__errno("socket");
    goto out;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    rc = quire__errno("bind %s", listen_addr);
    goto out;
  }
  if (listen(fd, 1024) != 0) {
    rc = quire__errno("listen %s", listen_addr);
    goto out;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
  *fd_out = fd;
  fd = -1;
out:
  if (fd >= 0) close(fd);
  freeaddrinfo(ai);
  return rc;
}

/* Gauges of the admission state, refreshed before each /metrics render. */
static void collect(void *ctx, quire_metrics *m) {
  quire_http_server *s = ctx;
  pthread_mutex_lock(&s->mu);
  unsigned inflight = s->inflight, receiving = s->receiving, parked = s->parked;
  pthread_mutex_unlock(&s->mu);
  quire__metrics_gauge(m, "quire_http_inflight", "requests being handled (bodies complete)", "",
                       (int64_t)inflight);
  quire__metrics_gauge(m, "quire_http_receiving", "requests whose bodies are arriving", "",
                       (int64_t)receiving);
  quire__metrics_gauge(m, "quire_http_parked", "requests parked (long polls, writes waiting for uploads)", "",
                       (int64_t)parked);
  if (s->guard)
    quire__metrics_gauge(m, "quire_http_connections", "open connections", "",
                         (int64_t)quire__http_guard_connections(s->guard));
}

int quire__http_server_start(quire_http_server *s) {
  int rc = quire__pool_create(s->o.workers, s->o.max_inflight, s->name, &s->workers);
  if (rc) return rc;
  rc = bind_listen(s->o.listen ? s->o.listen : "127.0.0.1:0", &s->listen_fd, &s->port);
  if (rc) return rc;
  struct http_guard_opts go = {.listen_fd = s->listen_fd,
                               .max_connections = s->o.max_connections,
                               .max_per_address = s->o.max_per_address,
                               .header_timeout_ms = s->o.header_timeout_ms,
                               .body_timeout_ms = s->o.deadline_ms,
                               .min_body_rate =
                                   s->o.min_body_rate == QUIRE_HTTP_NO_MIN_RATE ? 0 : s->o.min_body_rate,
                               .metrics = s->o.metrics,
                               .name = s->name,
                               .tls = s->tls_cert_pem != NULL};
  rc = quire__http_guard_create(&go, &s->guard);
  if (rc) goto fail;
  /* The guard accepts and hands connections over: libmicrohttpd has no
   * listen socket of its own. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
  int tls = s->tls_cert_pem != NULL;
  if (tls) flags |= MHD_USE_TLS;
  /* The guard enforces max_connections. libmicrohttpd splits its own limit
   * evenly between its threads and places a handed-over connection by its
   * descriptor, so with the same limit it refuses connections when they
   * happen to land unevenly: give each thread room for all of them. */
  unsigned mhd_limit = s->o.max_connections > UINT32_MAX / 2 / s->o.threads
                           ? UINT32_MAX / 2
                           : s->o.max_connections * s->o.threads + s->o.threads;
  s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_THREAD_POOL_SIZE, s->o.threads,
                            MHD_OPTION_CONNECTION_LIMIT, mhd_limit, MHD_OPTION_CONNECTION_TIMEOUT,
                            s->o.idle_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, quire__http_guard_notify, s->guard,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            /* the TLS options last: without TLS they end the list early */
                            tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->tls_cert_pem,
                            MHD_OPTION_HTTPS_MEM_KEY, s->tls_key_pem, MHD_OPTION_END);
  if (!s->mhd) {
    rc = quire__err(QUIRE_EIO, "%s: libmicrohttpd failed to start on %s", s->name,
                    s->o.listen ? s->o.listen : "127.0.0.1:0");
    goto fail;
  }
  rc = quire__http_guard_start(s->guard, s->mhd);
  if (rc) goto fail;
  if (s->o.metrics && quire__metrics_add_collector(s->o.metrics, collect, s) == 0) s->collector = 1;
  QLOG_INFO("%s: listening on port %u (%u threads%s)", s->name, s->port, s->o.threads, tls ? ", TLS" : "");
  if (!s->o.auth)
    QLOG_WARN("%s: AUTHENTICATION IS OFF (--no-auth): anyone who reaches port %u can read, write and "
              "administer every volume",
              s->name, s->port);
  return 0;
fail:
  if (s->mhd) MHD_stop_daemon(s->mhd);
  s->mhd = NULL;
  quire__http_guard_free(s->guard);
  s->guard = NULL;
  close(s->listen_fd);
  s->listen_fd = -1;
  return rc;
}

unsigned quire__http_server_stop(quire_http_server *s, unsigned drain_ms) {
  if (!s->mhd || s->stopped) return 0;
  pthread_mutex_lock(&s->mu);
  s->closing = 1;
  pthread_mutex_unlock(&s->mu);
  quire__http_guard_stop(s->guard); /* no new connections */
  if (s->drain) s->drain(s->drain_ctx);
  struct timespec ts;
  quire__deadline_after_ms(&ts, drain_ms);
  pthread_mutex_lock(&s->mu);
  while (s->inflight + s->parked > 0)
    if (pthread_cond_timedwait(&s->idle, &s->mu, &ts) == ETIMEDOUT) break;
  unsigned left = s->inflight + s->parked;
  pthread_mutex_unlock(&s->mu);
  if (left) QLOG_WARN("%s: stopping with %u requests still running", s->name, left);
  /* Handlers still running finish (and resume their connections) before
   * the daemon goes away. */
  quire__pool_destroy(s->workers);
  s->workers = NULL;
  MHD_stop_daemon(s->mhd);
  s->mhd = NULL;
  if (s->collector) quire__metrics_remove_collector(s->o.metrics, collect, s);
  s->collector = 0;
  quire__http_guard_free(s->guard);
  s->guard = NULL;
  s->stopped = 1;
  if (s->listen_fd >= 0) close(s->listen_fd);
  s->listen_fd = -1;
  return left;
}

void quire__http_server_destroy(quire_http_server *s) {
  if (!s) return;
  if (s->mhd) quire__http_server_stop(s, 1000);
  quire__pool_destroy(s->workers);
  for (unsigned i = 0; i < s->npool; i++) quire__free(s->pool[i].data);
  pthread_mutex_destroy(&s->pool_mu);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->idle);
  quire__free((void *)s->o.listen);
  quire__free(s->tls_cert_pem);
  if (s->tls_key_pem) {
    sodium_memzero(s->tls_key_pem, strlen(s->tls_key_pem));
    quire__free(s->tls_key_pem);
  }
  quire__free(s);
}
