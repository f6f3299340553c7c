/*
 * tests/testlib/stub.h — a loopback HTTP/1.1 stub server for tests that need
 * a server to misbehave on purpose (never answer, answer 503 with
 * Retry-After, stream a body in steps). Each accepted connection runs
 * handler(ctx, conn) on its own thread; the handler reads requests with
 * stub_read_request and writes raw bytes with stub_write. stub_stop shuts
 * every connection down (a handler blocked in a read returns) and joins.
 */
#ifndef QUIRE_TESTLIB_STUB_H
#define QUIRE_TESTLIB_STUB_H

#include <stddef.h>

struct stub;
struct stub_conn;

/* One request as read: its head (NUL-terminated) and body. */
struct stub_request {
  char head[8192];
  unsigned char *body; /* malloc'd; freed by the next read or stub_request_free */
  size_t body_len;
};

typedef void (*stub_handler)(void *ctx, struct stub_conn *c);

struct stub *stub_start(stub_handler handler, void *ctx);
unsigned stub_port(const struct stub *s);
/* "http://127.0.0.1:PORT" */
const char *stub_url(const struct stub *s);
/* Requests read so far (every stub_read_request that returned 1). */
unsigned stub_requests(const struct stub *s);
/* Connections accepted so far. */
unsigned stub_connections(const struct stub *s);
void stub_stop(struct stub *s);

/* Reads the next request on c: 1 with *r filled, 0 when the peer closed. */
int stub_read_request(struct stub_conn *c, struct stub_request *r);
void stub_request_free(struct stub_request *r);
/* The value of header name (case-insensitive) in r->head into out, or NULL. */
const char *stub_header(const struct stub_request *r, const char *name, char *out, size_t cap);
/* Writes all bytes; 0, or -1 when the peer is gone. */
int stub_write(struct stub_conn *c, const void *p, size_t n);
/* Writes "HTTP/1.1 <status>", extra header lines (may be NULL; each ending
 * in \r\n), Content-Length and the body. */
int stub_respond(struct stub_conn *c, int status, const char *extra_headers, const void *body, size_t len);
/* Blocks until the peer closes c (or stub_stop). */
void stub_wait_closed(struct stub_conn *c);

#endif
