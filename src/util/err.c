/*
 * util/err.c — error names, the thread-local detail message, invariant checks.
 */
#include "util/err.h"
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#ifndef QUIRE_GIT_REVISION
#define QUIRE_GIT_REVISION "unknown"
#endif

static _Thread_local char errmsg[1024];
static atomic_long never_count;

static const struct {
  int code;
  const char *name;
  const char *text;
} codes[] = {
    {QUIRE_OK, "QUIRE_OK", "success"},
    {QUIRE_ENOTFOUND, "QUIRE_ENOTFOUND", "not found"},
    {QUIRE_EEXIST, "QUIRE_EEXIST", "already exists"},
    {QUIRE_ECONFLICT, "QUIRE_ECONFLICT", "conflict with a concurrent change"},
    {QUIRE_EBUSY, "QUIRE_EBUSY", "busy or locked"},
    {QUIRE_ECORRUPT, "QUIRE_ECORRUPT", "data is corrupt"},
    {QUIRE_EIO, "QUIRE_EIO", "I/O error"},
    {QUIRE_ENOMEM, "QUIRE_ENOMEM", "out of memory"},
    {QUIRE_EINVAL, "QUIRE_EINVAL", "invalid argument"},
    {QUIRE_ETOOLARGE, "QUIRE_ETOOLARGE", "too large"},
    {QUIRE_EUNAVAILABLE, "QUIRE_EUNAVAILABLE", "service unavailable"},
    {QUIRE_EUNAUTHORIZED, "QUIRE_EUNAUTHORIZED", "unauthenticated"},
    {QUIRE_EFORBIDDEN, "QUIRE_EFORBIDDEN", "forbidden"},
    {QUIRE_ECLOSED, "QUIRE_ECLOSED", "closed or shutting down"},
    {QUIRE_EINTERNAL, "QUIRE_EINTERNAL", "internal error (a bug)"},
    {QUIRE_ETIMEDOUT, "QUIRE_ETIMEDOUT", "timed out"},
    {QUIRE_EVERSION, "QUIRE_EVERSION", "unsupported format or protocol version"},
    {QUIRE_EUNSUPPORTED, "QUIRE_EUNSUPPORTED", "not supported"},
    {QUIRE_ERANGE, "QUIRE_ERANGE", "value out of range"},
    {QUIRE_EEND, "QUIRE_EEND", "end of iteration"},
    {QUIRE_ECANCELED, "QUIRE_ECANCELED", "cancelled"},
    {QUIRE_EGONE, "QUIRE_EGONE", "gone (below the retained history)"},
};

const char *quire_strerror(int rc) {
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(codes); i++)
    if (codes[i].code == rc) return codes[i].text;
  if (rc < 0 && rc > -4096) return strerrordesc_np(-rc) ? strerrordesc_np(-rc) : "unknown errno";
  return "unknown error";
}

const char *quire_errname(int rc) {
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(codes); i++)
    if (codes[i].code == rc) return codes[i].name;
  if (rc < 0 && rc > -4096) return strerrorname_np(-rc) ? strerrorname_np(-rc) : "E?";
  return "QUIRE_E?";
}

const char *quire_errmsg(void) { return errmsg; }

void quire__err_clear(void) { errmsg[0] = '\0'; }

int quire__err(int rc, const char *fmt, ...) {
  /* Format into a copy first: callers wrap the previous detail
   * (quire__err(rc, "%s: %s", key, quire_errmsg())), and formatting into
   * the buffer an argument points into garbles it. */
  char msg[sizeof errmsg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  memcpy(errmsg, msg, sizeof errmsg);
  return rc;
}

int quire__errno(const char *fmt, ...) {
  int e = errno ? errno : EIO;
  char what[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(errmsg, sizeof errmsg, "%s: %s", what, strerror(e));
  return -e;
}

int quire__never_hit(const char *expr, const char *file, int line) {
  atomic_fetch_add(&never_count, 1);
  quire__err(QUIRE_EINTERNAL, "invariant failed at %s:%d: %s", file, line, expr);
  QLOG_ERROR("invariant failed at %s:%d: %s", file, line, expr);
  return 1;
}

long quire__never_count(void) { return atomic_load(&never_count); }

const char *quire_version(void) { return "0.1.0"; }
const char *quire_build_revision(void) { return QUIRE_GIT_REVISION; }
