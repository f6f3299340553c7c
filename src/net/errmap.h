/*
 * net/errmap.h — one table from quire return codes to HTTP statuses and wire
 * ErrorCodes (DESIGN.md §10, docs/PROTOCOL.md "Errors"), and back.
 */
#ifndef QUIRE_NET_ERRMAP_H
#define QUIRE_NET_ERRMAP_H

#include "proto/common.pb-c.h"
#include "util/buf.h"

/* The HTTP status and wire code for rc (a QUIRE_E* or -errno). */
int quire__errmap_status(int rc);
Quire__Common__V1__ErrorCode quire__errmap_code(int rc);
/* The QUIRE_E* a client reports for a wire code (or, when the body carried no
 * code, for the HTTP status). */
int quire__errmap_rc(int code, int http_status);
/* Encodes Error{code(rc), message} into out. */
int quire__errmap_body(int rc, const char *message, quire_buf *out);

#endif
