/* tests/testlib/stub.c — see stub.h. */
#include "stub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

#define MAX_CONNS 64

struct stub_conn {
  struct stub *s;
  int fd;
  pthread_t th;
  char buf[16384]; /* bytes read past the last request */
  size_t have;
};

struct stub {
  stub_handler handler;
  void *ctx;
  int lfd;
  unsigned port;
  char url[64];
  pthread_t accept_th;
  pthread_mutex_t mu; /* protects conns, nconns */
  struct stub_conn *conns[MAX_CONNS];
  unsigned nconns;
  atomic_uint requests;
  atomic_int stopping;
};

static void *conn_main(void *arg) {
  struct stub_conn *c = arg;
  c->s->handler(c->s->ctx, c);
  shutdown(c->fd, SHUT_RDWR);
  return NULL;
}

static void *accept_main(void *arg) {
  struct stub *s = arg;
  for (;;) {
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) break; /* stub_stop shut the listener down */
    struct stub_conn *c = calloc(1, sizeof *c);
    CHECK(c);
    c->s = s;
    c->fd = fd;
    pthread_mutex_lock(&s->mu);
    CHECK(s->nconns < MAX_CONNS);
    s->conns[s->nconns++] = c;
    pthread_mutex_unlock(&s->mu);
    CHECK(pthread_create(&c->th, NULL, conn_main, c) == 0);
  }
  return NULL;
}

struct stub *stub_start(stub_handler handler, void *ctx) {
  struct stub *s = calloc(1, sizeof *s);
  CHECK(s);
  s->handler = handler;
  s->ctx = ctx;
  pthread_mutex_init(&s->mu, NULL);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(s->lfd >= 0);
  int one = 1;
  setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(s->lfd, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(listen(s->lfd, 16) == 0);
  socklen_t alen = sizeof a;
  CHECK(getsockname(s->lfd, (struct sockaddr *)&a, &alen) == 0);
  s->port = ntohs(a.sin_port);
  snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", s->port);
  CHECK(pthread_create(&s->accept_th, NULL, accept_main, s) == 0);
  return s;
}

unsigned stub_port(const struct stub *s) { return s->port; }
const char *stub_url(const struct stub *s) { return s->url; }
unsigned stub_requests(const struct stub *s) { return atomic_load(&((struct stub *)s)->requests); }
unsigned stub_connections(const struct stub *s) {
  struct stub *m = (struct stub *)s;
  pthread_mutex_lock(&m->mu);
  unsigned n = m->nconns;
  pthread_mutex_unlock(&m->mu);
  return n;
}

void stub_stop(struct stub *s) {
  atomic_store(&s->stopping, 1);
  shutdown(s->lfd, SHUT_RDWR);
  pthread_join(s->accept_th, NULL);
  close(s->lfd);
  pthread_mutex_lock(&s->mu);
  for (unsigned i = 0; i < s->nconns; i++) shutdown(s->conns[i]->fd, SHUT_RDWR);
  pthread_mutex_unlock(&s->mu);
  for (unsigned i = 0; i < s->nconns; i++) {
    pthread_join(s->conns[i]->th, NULL);
    close(s->conns[i]->fd);
    free(s->conns[i]);
  }
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* More bytes into c->buf; 0 when the peer closed. */
static int fill(struct stub_conn *c) {
  if (c->have == sizeof c->buf) return 0;
  ssize_t n = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
  if (n <= 0) return 0;
  c->have += (size_t)n;
  return 1;
}

int stub_read_request(struct stub_conn *c, struct stub_request *r) {
  free(r->body);
  r->body = NULL;
  r->body_len = 0;
  char *end;
  while (!(end = memmem(c->buf, c->have, "\r\n\r\n", 4)))
    if (!fill(c)) return 0;
  size_t head_len = (size_t)(end - c->buf) + 4;
  CHECK(head_len < sizeof r->head);
  memcpy(r->head, c->buf, head_len);
  r->head[head_len] = '\0';
  memmove(c->buf, c->buf + head_len, c->have - head_len);
  c->have -= head_len;
  char v[32];
  size_t len = stub_header(r, "Content-Length", v, sizeof v) ? strtoul(v, NULL, 10) : 0;
  if (stub_header(r, "Expect", v, sizeof v) && strcasecmp(v, "100-continue") == 0)
    (void)stub_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  r->body = malloc(len + 1);
  CHECK(r->body);
  while (r->body_len < len) {
    if (!c->have && !fill(c)) return 0;
    size_t take = c->have < len - r->body_len ? c->have : len - r->body_len;
    memcpy(r->body + r->body_len, c->buf, take);
    r->body_len += take;
    memmove(c->buf, c->buf + take, c->have - take);
    c->have -= take;
  }
  atomic_fetch_add(&c->s->requests, 1);
  return 1;
}

void stub_request_free(struct stub_request *r) {
  free(r->body);
  r->body = NULL;
}

const char *stub_header(const struct stub_request *r, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  for (const char *line = strstr(r->head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
    const char *h = line + 2;
    if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
      const char *v = h + n + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      size_t len = e ? (size_t)(e - v) : strlen(v);
      if (len >= cap) len = cap - 1;
      memcpy(out, v, len);
      out[len] = '\0';
      return out;
    }
  }
  return NULL;
}

int stub_write(struct stub_conn *c, const void *p, size_t n) {
  const char *b = p;
  while (n) {
    ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

int stub_respond(struct stub_conn *c, int status, const char *extra_headers, const void *body, size_t len) {
  char head[1024];
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\n\r\n", status,
                   extra_headers ? extra_headers : "", len);
  CHECK(n > 0 && (size_t)n < sizeof head);
  if (stub_write(c, head, (size_t)n)) return -1;
  return len ? stub_write(c, body, len) : 0;
}

void stub_wait_closed(struct stub_conn *c) {
  char b[4096];
  while (recv(c->fd, b, sizeof b, 0) > 0) {
  }
}
