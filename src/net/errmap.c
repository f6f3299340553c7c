/*
 * net/errmap.c — quire codes ↔ HTTP statuses ↔ Error{code, message}.
 *
 * Request problems (EINVAL, ERANGE, EVERSION) are 400; missing things 404;
 * lost races 409; LSNs below a volume's retained history 410; size limits 413; a dependency down, overload, shutdown or a
 * passed deadline 503 (the client may retry); everything else is 500:
 * corruption of stored data (code CORRUPT, so a client can tell a damaged
 * object from a bug) and broken invariants (INTERNAL).
 */
#include "net/errmap.h"

#include "proto/pb.h"
#include "util/err.h"

static const struct {
  int rc;
  int status;
  Quire__Common__V1__ErrorCode code;
} table[] = {
    {QUIRE_EINVAL, 400, QUIRE__COMMON__V1__ERROR_CODE__BAD_REQUEST},
    {QUIRE_ERANGE, 400, QUIRE__COMMON__V1__ERROR_CODE__BAD_REQUEST},
    {QUIRE_EVERSION, 400, QUIRE__COMMON__V1__ERROR_CODE__BAD_REQUEST},
    {QUIRE_EUNSUPPORTED, 400, QUIRE__COMMON__V1__ERROR_CODE__BAD_REQUEST},
    {QUIRE_EUNAUTHORIZED, 401, QUIRE__COMMON__V1__ERROR_CODE__UNAUTHORIZED},
    {QUIRE_EFORBIDDEN, 403, QUIRE__COMMON__V1__ERROR_CODE__FORBIDDEN},
    {QUIRE_ENOTFOUND, 404, QUIRE__COMMON__V1__ERROR_CODE__NOT_FOUND},
    {QUIRE_ECONFLICT, 409, QUIRE__COMMON__V1__ERROR_CODE__CONFLICT},
    {QUIRE_EEXIST, 409, QUIRE__COMMON__V1__ERROR_CODE__CONFLICT},
    {QUIRE_ETOOLARGE, 413, QUIRE__COMMON__V1__ERROR_CODE__TOO_LARGE},
    {QUIRE_EUNAVAILABLE, 503, QUIRE__COMMON__V1__ERROR_CODE__UNAVAILABLE},
    {QUIRE_EBUSY, 503, QUIRE__COMMON__V1__ERROR_CODE__UNAVAILABLE},
    {QUIRE_ECLOSED, 503, QUIRE__COMMON__V1__ERROR_CODE__UNAVAILABLE},
    {QUIRE_EIO, 503, QUIRE__COMMON__V1__ERROR_CODE__UNAVAILABLE},
    {QUIRE_ENOMEM, 503, QUIRE__COMMON__V1__ERROR_CODE__UNAVAILABLE},
    {QUIRE_ETIMEDOUT, 503, QUIRE__COMMON__V1__ERROR_CODE__TIMED_OUT},
    /* A server's own call stopped by its cancel token (shutdown): retry. A
     * client never gets ECANCELED from the wire, only from its own token. */
    {QUIRE_ECANCELED, 503, QUIRE__COMMON__V1__ERROR_CODE__UNAVAILABLE},
    {QUIRE_ECORRUPT, 500, QUIRE__COMMON__V1__ERROR_CODE__CORRUPT},
    {QUIRE_EGONE, 410, QUIRE__COMMON__V1__ERROR_CODE__GONE},
};

int quire__errmap_status(int rc) {
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(table); i++)
    if (table[i].rc == rc) return table[i].status;
  return 500;
}

Quire__Common__V1__ErrorCode quire__errmap_code(int rc) {
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(table); i++)
    if (table[i].rc == rc) return table[i].code;
  return QUIRE__COMMON__V1__ERROR_CODE__INTERNAL;
}

int quire__errmap_rc(int code, int http_status) {
  switch (code) {
  case QUIRE__COMMON__V1__ERROR_CODE__BAD_REQUEST: return QUIRE_EINVAL;
  case QUIRE__COMMON__V1__ERROR_CODE__NOT_FOUND: return QUIRE_ENOTFOUND;
  case QUIRE__COMMON__V1__ERROR_CODE__CONFLICT: return QUIRE_ECONFLICT;
  case QUIRE__COMMON__V1__ERROR_CODE__UNAUTHORIZED: return QUIRE_EUNAUTHORIZED;
  case QUIRE__COMMON__V1__ERROR_CODE__FORBIDDEN: return QUIRE_EFORBIDDEN;
  case QUIRE__COMMON__V1__ERROR_CODE__TOO_LARGE: return QUIRE_ETOOLARGE;
  case QUIRE__COMMON__V1__ERROR_CODE__UNAVAILABLE: return QUIRE_EUNAVAILABLE;
  case QUIRE__COMMON__V1__ERROR_CODE__TIMED_OUT: return QUIRE_ETIMEDOUT;
  case QUIRE__COMMON__V1__ERROR_CODE__INTERNAL: return QUIRE_EINTERNAL;
  case QUIRE__COMMON__V1__ERROR_CODE__CORRUPT: return QUIRE_ECORRUPT;
  case QUIRE__COMMON__V1__ERROR_CODE__GONE: return QUIRE_EGONE;
  default: break;
  }
  switch (http_status) {
  case 400:
  case 405:
  case 415: return QUIRE_EINVAL;
  case 401: return QUIRE_EUNAUTHORIZED;
  case 403: return QUIRE_EFORBIDDEN;
  case 404: return QUIRE_ENOTFOUND;
  case 409: return QUIRE_ECONFLICT;
  case 410: return QUIRE_EGONE;
  case 413: return QUIRE_ETOOLARGE;
  case 429:
  case 503: return QUIRE_EUNAVAILABLE;
  default: return http_status >= 500 ? QUIRE_EINTERNAL : QUIRE_EINVAL;
  }
}

int quire__errmap_body(int rc, const char *message, quire_buf *out) {
  Quire__Common__V1__Error e = QUIRE__COMMON__V1__ERROR__INIT;
  e.has_code = 1;
  e.code = quire__errmap_code(rc);
  e.message = (char *)(message && *message ? message : quire_strerror(rc));
  return quire__pb_pack(&e.base, out);
}
