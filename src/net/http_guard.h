/*
 * net/http_guard.h — the front door of the HTTP server (http_server.c):
 * accepts connections itself and hands them to libmicrohttpd, and watches
 * every connection until its request has arrived. It exists because
 * libmicrohttpd bounds only idle time, which a client sending one byte every
 * few seconds resets forever.
 *
 * What it enforces (docs/OPERATIONS.md "Limits"):
 *  - open connections: at most max_connections in all (waiting for their
 *    first byte or served), at most max_per_address from one client
 *    address; more are closed at accept;
 *  - not HTTP: a connection whose first byte cannot start an HTTP/1.1
 *    request (a TLS or SSLv2 hello, binary) is closed at once; on a TLS
 *    port, one whose first byte cannot start a TLS handshake (plain HTTP);
 *  - headers: a request's headers must be complete header_timeout_ms after
 *    its first byte (also a fresh connection's first byte must come by
 *    then); else 408 and close;
 *  - body: a request's body must be complete body_timeout_ms after its
 *    headers, and arrive at min_body_rate bytes/s on average once the first
 *    2 s have passed; else 408 and close.
 *
 * One thread runs accept, the first-byte checks and a watchdog tick every
 * 250 ms. It learns where each connection is from the server's access
 * handler (the _headers_done / _body / _body_done / _request_done calls)
 * and, between requests, from the kernel's count of bytes received
 * (TCP_INFO), so a trickled request line is caught too. Closing one is a
 * 408 written straight to the socket, then shutdown(2): libmicrohttpd sees
 * the end of the stream and cleans up. No libmicrohttpd call is made on
 * another thread's connection.
 *
 * Lock: g->mu guards the connection table, every struct http_conn and the
 * address counts. libmicrohttpd closes a socket only after its
 * NOTIFY_CLOSED callback, which takes g->mu, so a socket the watchdog
 * writes to under g->mu is never a reused descriptor.
 */
#ifndef QUIRE_NET_HTTP_GUARD_H
#define QUIRE_NET_HTTP_GUARD_H

#include <microhttpd.h>
#include <stddef.h>

#include "net/metrics.h"

typedef struct http_guard http_guard;
struct http_conn;

struct http_guard_opts {
  int listen_fd; /* bound and listening; stays the caller's */
  unsigned max_connections;
  unsigned max_per_address;
  unsigned header_timeout_ms;
  unsigned body_timeout_ms;
  unsigned min_body_rate; /* bytes/s; 0: no minimum */
  quire_metrics *metrics; /* may be NULL */
  const char *name;       /* for logs */
  int tls;                /* the port speaks TLS: the first byte must start a TLS handshake (0x16) */
};

int quire__http_guard_create(const struct http_guard_opts *o, http_guard **out);
/* Starts accepting into mhd (started with MHD_USE_NO_LISTEN_SOCKET and
 * MHD_OPTION_NOTIFY_CONNECTION = quire__http_guard_notify, g). */
int quire__http_guard_start(http_guard *g, struct MHD_Daemon *mhd);
/* Stops accepting, closes connections still waiting for their first byte
 * and joins the thread. Connections already handed over stay. */
void quire__http_guard_stop(http_guard *g);
/* After MHD_stop_daemon. Accepts NULL. */
void quire__http_guard_free(http_guard *g);

/* The libmicrohttpd connection callback. */
void quire__http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code);

/* From the access handler, on the connection's thread. conn may be NULL
 * (then they do nothing). */
struct http_conn *quire__http_guard_conn(struct MHD_Connection *c);
void quire__http_guard_headers_done(http_guard *g, struct http_conn *conn);
void quire__http_guard_body(http_guard *g, struct http_conn *conn, size_t n);
/* The request is complete (or answered early). -1 when the watchdog
 * already closed the connection: do not dispatch it. */
int quire__http_guard_body_done(http_guard *g, struct http_conn *conn);
/* The request is over (its completion callback). Returns the status the
 * watchdog answered it with, or 0. */
int quire__http_guard_request_done(http_guard *g, struct http_conn *conn);

/* Open connections (waiting for a first byte or served). */
unsigned quire__http_guard_connections(http_guard *g);

#endif
