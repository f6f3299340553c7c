/*
 * net/http_guard.c — accept, first-byte checks and the receive watchdog of
 * the HTTP server (see http_guard.h).
 *
 * A connection's life here:
 *   PENDING  accepted, in our epoll set, waiting for its first byte (it
 *            holds a connection slot and counts against its address);
 *   HANDED   given to libmicrohttpd (MHD_add_connection), not yet started;
 *   STARTED  libmicrohttpd runs it; the watchdog follows its phase:
 *            IDLE (between requests: kernel byte count compared with the
 *            count when the last request ended), HEADERS (a request's
 *            first bytes are in, its headers are not), BODY (headers in,
 *            body arriving), BUSY (request complete: handler, long poll or
 *            answer; not ours to time).
 * It ends in the NOTIFY_CLOSED callback (or here, while PENDING).
 */
#include "net/http_guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/errmap.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

#define TICK_MS 250
#define BODY_GRACE_MS 2000 /* the minimum rate applies after this much of a body's time */
#define ADDR_BUCKETS 256
#define ACCEPT_PAUSE_MS 100 /* after EMFILE/ENFILE */

enum conn_state { CS_PENDING, CS_HANDED, CS_STARTED };
enum phase { PH_IDLE, PH_HEADERS, PH_BODY, PH_BUSY };

/* Open connections from one client address. */
struct addr_slot {
  struct addr_slot *next;
  uint8_t len;
  uint8_t bytes[16];
  unsigned count;
};

struct http_conn {
  int fd;
  enum conn_state state;
  enum phase phase;
  uint64_t accepted_ms, since_ms; /* since_ms: start of the phase */
  uint64_t base_bytes;            /* kernel bytes received when IDLE began */
  uint64_t body_bytes;            /* body bytes the handler has seen */
  int killed, kill_status;
  struct addr_slot *addr;
  struct sockaddr_storage sa;
  socklen_t salen;
  struct http_conn *prev, *next;
};

struct http_guard {
  struct http_guard_opts o;
  char name[32];
  struct MHD_Daemon *mhd;
  int epfd, wakefd;
  pthread_t thread;
  int started;
  atomic_int stop;
  uint64_t accept_paused_until; /* thread only */
  pthread_mutex_t mu;           /* guards everything below and every http_conn */
  struct http_conn *conns;
  unsigned nconns;
  struct http_conn **by_fd;
  size_t by_fd_cap;
  struct addr_slot *addrs[ADDR_BUCKETS];
};

static char wake_tag; /* epoll data for the wake eventfd; NULL is the listen fd */

static void count_closed(http_guard *g, const char *reason) {
  char labels[64];
  snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
  quire__metrics_count(g->o.metrics, "quire_http_connections_closed_total",
                       "connections closed by the server before a complete request, by reason", labels, 1);
}

/* --- addresses ------------------------------------------------------------- */

static void addr_key(const struct sockaddr_storage *sa, uint8_t bytes[16], uint8_t *len) {
  if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      memcpy(bytes, a->sin6_addr.s6_addr + 12, 4);
      *len = 4;
    } else {
      memcpy(bytes, a->sin6_addr.s6_addr, 16);
      *len = 16;
    }
  } else if (sa->ss_family == AF_INET) {
    memcpy(bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    *len = 4;
  } else {
    *len = 0; /* every other family shares one slot */
  }
}

static unsigned addr_hash(const uint8_t *b, uint8_t len) {
  unsigned h = 2166136261u;
  for (uint8_t i = 0; i < len; i++) h = (h ^ b[i]) * 16777619u;
  return h % ADDR_BUCKETS;
}

/* The slot for sa, created if missing (NULL on allocation failure). */
static struct addr_slot *addr_get(http_guard *g, const struct sockaddr_storage *sa) {
  uint8_t b[16], len;
  addr_key(sa, b, &len);
  unsigned h = addr_hash(b, len);
  for (struct addr_slot *s = g->addrs[h]; s; s = s->next)
    if (s->len == len && memcmp(s->bytes, b, len) == 0) return s;
  struct addr_slot *s = quire__calloc(1, sizeof *s);
  if (!s) return NULL;
  s->len = len;
  memcpy(s->bytes, b, len);
  s->next = g->addrs[h];
  g->addrs[h] = s;
  return s;
}

static void addr_put(http_guard *g, struct addr_slot *s) {
  if (!s || --s->count > 0) return;
  struct addr_slot **pp = &g->addrs[addr_hash(s->bytes, s->len)];
  while (*pp != s) pp = &(*pp)->next;
  *pp = s->next;
  quire__free(s);
}

/* --- the connection table (all under g->mu) ------------------------------- */

static int table_set(http_guard *g, int fd, struct http_conn *c) {
  if ((size_t)fd >= g->by_fd_cap) {
    size_t cap = g->by_fd_cap ? g->by_fd_cap : 256;
    while (cap <= (size_t)fd) cap *= 2;
    struct http_conn **t = quire__realloc(g->by_fd, cap * sizeof *t);
    if (!t) return QUIRE_ENOMEM;
    memset(t + g->by_fd_cap, 0, (cap - g->by_fd_cap) * sizeof *t);
    g->by_fd = t;
    g->by_fd_cap = cap;
  }
  g->by_fd[fd] = c;
  return 0;
}

static struct http_conn *table_get(http_guard *g, int fd) {
  return fd >= 0 && (size_t)fd < g->by_fd_cap ? g->by_fd[fd] : NULL;
}

static void conn_remove(http_guard *g, struct http_conn *c) {
  if (table_get(g, c->fd) == c) g->by_fd[c->fd] = NULL;
  if (c->prev)
    c->prev->next = c->next;
  else
    g->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  g->nconns--;
  addr_put(g, c->addr);
  quire__free(c);
}

/* Kernel count of bytes received on fd (0 when the kernel does not say). */
static uint64_t bytes_received(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 0;
  if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) return 0;
  return ti.tcpi_bytes_received;
}

/* --- closing --------------------------------------------------------------- */

/* Answers 408 with Error{TIMED_OUT, msg} straight on the socket and shuts it
 * down; libmicrohttpd then reads the end of the stream and closes it. Call
 * with g->mu held, on a STARTED connection in HEADERS or BODY (nothing of
 * libmicrohttpd's is being written then). */
static void kill_conn(http_guard *g, struct http_conn *c, const char *reason, const char *msg) {
  c->killed = 1;
  c->kill_status = 408;
  quire_buf body;
  quire__buf_init(&body, 4096);
  char head[256];
  if (quire__errmap_body(QUIRE_ETIMEDOUT, msg, &body) == 0) {
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/x-protobuf\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     body.len);
    if (send(c->fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n && body.len)
      (void)!send(c->fd, body.data, body.len, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  quire__buf_free(&body);
  count_closed(g, reason); /* before the peer can see the close */
  shutdown(c->fd, SHUT_RDWR);
  char peer[INET6_ADDRSTRLEN] = "?";
  if (c->sa.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&c->sa)->sin_addr, peer, sizeof peer);
  else if (c->sa.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&c->sa)->sin6_addr, peer, sizeof peer);
  QLOG_DEBUG("%s: closed a connection from %s: %s", g->name, peer, msg);
}

/* Closes a connection we still own (PENDING). Call with g->mu held. */
static void close_pending(http_guard *g, struct http_conn *c, const char *reason) {
  if (reason) count_closed(g, reason); /* before the peer can see the close */
  epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  conn_remove(g, c);
}

/* --- the thread ------------------------------------------------------------ */

/* Can b begin an HTTP/1.1 request? A method is a token (RFC 9110: letters
 * in practice), and a client may send empty lines first. A TLS record
 * starts with 0x16, an SSLv2 hello with a byte >= 0x80. */
static int http_start_byte(uint8_t b) {
  return (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || b == '\r' || b == '\n';
}

static void accept_all(http_guard *g) {
  for (;;) {
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    int fd = accept4(g->o.listen_fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        QLOG_WARN("%s: accept: %s; pausing accepts for %d ms", g->name, strerror(errno), ACCEPT_PAUSE_MS);
        g->accept_paused_until = quire__mono_ms() + ACCEPT_PAUSE_MS;
        struct epoll_event ev = {.events = 0, .data.ptr = NULL};
        epoll_ctl(g->epfd, EPOLL_CTL_MOD, g->o.listen_fd, &ev);
      }
      return;
    }
    const char *refused = NULL;
    struct http_conn *c = NULL;
    pthread_mutex_lock(&g->mu);
    struct addr_slot *slot = NULL;
    if (g->nconns >= g->o.max_connections) {
      refused = "connection_limit";
    } else if (!(slot = addr_get(g, &sa))) {
      refused = "no_memory";
    } else if (slot->count >= g->o.max_per_address) {
      refused = "per_address_limit";
      slot->count++; /* addr_put below undoes it (and frees a new slot) */
      addr_put(g, slot);
    } else {
      c = quire__calloc(1, sizeof *c);
      if (!c || table_set(g, fd, c) != 0) {
        quire__free(c);
        c = NULL;
        refused = "no_memory";
        slot->count++;
        addr_put(g, slot);
      }
    }
    if (c) {
      slot->count++;
      c->fd = fd;
      c->addr = slot;
      c->sa = sa;
      c->salen = salen;
      c->state = CS_PENDING;
      c->accepted_ms = quire__mono_ms();
      c->next = g->conns;
      if (g->conns) g->conns->prev = c;
      g->conns = c;
      g->nconns++;
      struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
      if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        refused = "no_memory";
        close_pending(g, c, NULL);
        fd = -1;
      }
    }
    pthread_mutex_unlock(&g->mu);
    if (refused) {
      count_closed(g, refused);
      if (fd >= 0) close(fd);
      QLOG_DEBUG("%s: refused a connection: %s", g->name, refused);
    }
  }
}

/* The first bytes of a PENDING connection arrived (or it closed). */
static void first_bytes(http_guard *g, struct http_conn *c) {
  uint8_t b;
  ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  pthread_mutex_lock(&g->mu);
  if (r <= 0) {
    close_pending(g, c, NULL); /* gone before saying anything */
    pthread_mutex_unlock(&g->mu);
    return;
  }
  if (g->o.tls ? b != 0x16 : !http_start_byte(b)) {
    QLOG_DEBUG("%s: closed a connection whose first byte (0x%02x%s) cannot start %s", g->name, b,
               b == 0x16 ? ", a TLS handshake" : "", g->o.tls ? "a TLS handshake" : "an HTTP/1.1 request");
    close_pending(g, c, "not_http");
    pthread_mutex_unlock(&g->mu);
    return;
  }
  epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  c->state = CS_HANDED;
  c->phase = PH_HEADERS;
  c->since_ms = quire__mono_ms();
  int fd = c->fd;
  struct sockaddr_storage sa = c->sa;
  socklen_t salen = c->salen;
  pthread_mutex_unlock(&g->mu);
  if (MHD_add_connection(g->mhd, fd, (const struct sockaddr *)&sa, salen) != MHD_YES) {
    QLOG_WARN("%s: libmicrohttpd did not take a connection: %s", g->name, strerror(errno));
    /* libmicrohttpd closed the socket; forget it unless its close callback
     * already did. Only this thread creates connections, so the table entry
     * for fd, if any, is still ours. */
    pthread_mutex_lock(&g->mu);
    struct http_conn *still = table_get(g, fd);
    if (still && still->state == CS_HANDED) conn_remove(g, still);
    pthread_mutex_unlock(&g->mu);
    count_closed(g, "server_refused");
  }
}

/* One watchdog pass over every connection. */
static void tick(http_guard *g) {
  uint64_t now = quire__mono_ms();
  if (g->accept_paused_until && now >= g->accept_paused_until) {
    g->accept_paused_until = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g->epfd, EPOLL_CTL_MOD, g->o.listen_fd, &ev);
  }
  char msg[200];
  pthread_mutex_lock(&g->mu);
  for (struct http_conn *c = g->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == CS_PENDING) {
      if (now - c->accepted_ms > g->o.header_timeout_ms) close_pending(g, c, "header_timeout");
      continue;
    }
    if (c->state != CS_STARTED || c->killed) continue;
    uint64_t elapsed = now - c->since_ms;
    switch (c->phase) {
    case PH_IDLE:
      if (bytes_received(c->fd) > c->base_bytes) { /* a new request has begun */
        c->phase = PH_HEADERS;
        c->since_ms = now;
      }
      break;
    case PH_HEADERS:
      if (elapsed > g->o.header_timeout_ms) {
        snprintf(msg, sizeof msg, "request headers incomplete after %u ms (the limit)",
                 g->o.header_timeout_ms);
        kill_conn(g, c, "header_timeout", msg);
      }
      break;
    case PH_BODY:
      if (elapsed > g->o.body_timeout_ms) {
        snprintf(msg, sizeof msg, "request body incomplete after %u ms (%llu bytes received)",
                 g->o.body_timeout_ms, (unsigned long long)c->body_bytes);
        kill_conn(g, c, "body_timeout", msg);
      } else if (g->o.min_body_rate && elapsed > BODY_GRACE_MS &&
                 c->body_bytes * 1000 < (uint64_t)g->o.min_body_rate * (elapsed - BODY_GRACE_MS)) {
        snprintf(msg, sizeof msg,
                 "request body arriving too slowly: %llu bytes in %llu ms, below the minimum of %u bytes/s",
                 (unsigned long long)c->body_bytes, (unsigned long long)elapsed, g->o.min_body_rate);
        kill_conn(g, c, "body_too_slow", msg);
      }
      break;
    case PH_BUSY: break;
    }
  }
  pthread_mutex_unlock(&g->mu);
}

static void *run(void *arg) {
  http_guard *g = arg;
  uint64_t next_tick = quire__mono_ms() + TICK_MS;
  struct epoll_event evs[64];
  while (!atomic_load(&g->stop)) {
    uint64_t now = quire__mono_ms();
    int timeout = next_tick > now ? (int)(next_tick - now) : 0;
    int n = epoll_wait(g->epfd, evs, 64, timeout);
    for (int i = 0; i < n && !atomic_load(&g->stop); i++) {
      if (evs[i].data.ptr == NULL) {
        accept_all(g);
      } else if (evs[i].data.ptr == &wake_tag) {
        uint64_t v;
        (void)!read(g->wakefd, &v, sizeof v);
      } else {
        first_bytes(g, evs[i].data.ptr);
      }
    }
    if (quire__mono_ms() >= next_tick) {
      tick(g);
      next_tick = quire__mono_ms() + TICK_MS;
    }
  }
  /* Stopping: nothing waiting for its first byte is served any more. */
  pthread_mutex_lock(&g->mu);
  for (struct http_conn *c = g->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == CS_PENDING) close_pending(g, c, NULL);
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

/* --- life cycle ------------------------------------------------------------ */

int quire__http_guard_create(const struct http_guard_opts *o, http_guard **out) {
  *out = NULL;
  http_guard *g = quire__calloc(1, sizeof *g);
  if (!g) return QUIRE_ENOMEM;
  g->o = *o;
  snprintf(g->name, sizeof g->name, "%s", o->name ? o->name : "http");
  g->o.name = g->name;
  if (!g->o.max_per_address) g->o.max_per_address = g->o.max_connections;
  g->epfd = g->wakefd = -1;
  pthread_mutex_init(&g->mu, NULL);
  g->epfd = epoll_create1(EPOLL_CLOEXEC);
  g->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int rc = 0;
  if (g->epfd < 0 || g->wakefd < 0) {
    rc = quire__errno("%s: epoll/eventfd", g->name);
  } else {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &wake_tag};
    if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, o->listen_fd, &ev) != 0 ||
        epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->wakefd, &wev) != 0)
      rc = quire__errno("%s: epoll_ctl", g->name);
  }
  if (rc) {
    quire__http_guard_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

int quire__http_guard_start(http_guard *g, struct MHD_Daemon *mhd) {
  g->mhd = mhd;
  int e = pthread_create(&g->thread, NULL, run, g);
  if (e) {
    errno = e;
    return quire__errno("%s: starting the accept thread", g->name);
  }
  g->started = 1;
  return 0;
}

void quire__http_guard_stop(http_guard *g) {
  if (!g || !g->started) return;
  atomic_store(&g->stop, 1);
  uint64_t one = 1;
  (void)!write(g->wakefd, &one, sizeof one);
  pthread_join(g->thread, NULL);
  g->started = 0;
}

void quire__http_guard_free(http_guard *g) {
  if (!g) return;
  quire__http_guard_stop(g);
  pthread_mutex_lock(&g->mu);
  while (g->conns) conn_remove(g, g->conns); /* none once libmicrohttpd stopped */
  pthread_mutex_unlock(&g->mu);
  if (g->epfd >= 0) close(g->epfd);
  if (g->wakefd >= 0) close(g->wakefd);
  quire__free(g->by_fd);
  pthread_mutex_destroy(&g->mu);
  quire__free(g);
}

unsigned quire__http_guard_connections(http_guard *g) {
  pthread_mutex_lock(&g->mu);
  unsigned n = g->nconns;
  pthread_mutex_unlock(&g->mu);
  return n;
}

/* --- libmicrohttpd's side -------------------------------------------------- */

void quire__http_guard_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                              enum MHD_ConnectionNotificationCode code) {
  http_guard *g = cls;
  const union MHD_ConnectionInfo *info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
  int fd = info ? info->connect_fd : -1;
  pthread_mutex_lock(&g->mu);
  struct http_conn *c = *socket_context ? *socket_context : table_get(g, fd);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    if (c) {
      c->state = CS_STARTED;
      *socket_context = c;
    }
  } else if (c) {
    *socket_context = NULL;
    conn_remove(g, c);
  }
  pthread_mutex_unlock(&g->mu);
}

struct http_conn *quire__http_guard_conn(struct MHD_Connection *mc) {
  const union MHD_ConnectionInfo *info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info ? info->socket_context : NULL;
}

void quire__http_guard_headers_done(http_guard *g, struct http_conn *c) {
  if (!c) return;
  pthread_mutex_lock(&g->mu);
  c->phase = PH_BODY;
  c->since_ms = quire__mono_ms();
  c->body_bytes = 0;
  pthread_mutex_unlock(&g->mu);
}

void quire__http_guard_body(http_guard *g, struct http_conn *c, size_t n) {
  if (!c) return;
  pthread_mutex_lock(&g->mu);
  c->body_bytes += n;
  pthread_mutex_unlock(&g->mu);
}

int quire__http_guard_body_done(http_guard *g, struct http_conn *c) {
  if (!c) return 0;
  pthread_mutex_lock(&g->mu);
  int killed = c->killed;
  if (!killed) c->phase = PH_BUSY;
  pthread_mutex_unlock(&g->mu);
  return killed ? -1 : 0;
}

int quire__http_guard_request_done(http_guard *g, struct http_conn *c) {
  if (!c) return 0;
  pthread_mutex_lock(&g->mu);
  int status = c->kill_status;
  if (!c->killed) {
    c->phase = PH_IDLE;
    c->since_ms = quire__mono_ms();
    c->base_bytes = bytes_received(c->fd);
  }
  pthread_mutex_unlock(&g->mu);
  return status;
}
