/*
 * util/err.h — internal error helpers on top of quire/common.h.
 *
 * quire__err(rc, fmt, ...) records a detail message for the calling thread
 * and returns rc, so a failure path reads `return quire__err(QUIRE_ECORRUPT,
 * "leaf %u: key past end", pgno);`. QUIRE_ALWAYS/QUIRE_NEVER are cheap
 * invariant checks that stay on in release builds: a hit is logged and counted
 * (tests assert the count stays zero) and the caller turns it into an error
 * code instead of undefined behaviour:
 *     if (QUIRE_NEVER(off > len)) return QUIRE_ECORRUPT;
 */
#ifndef QUIRE_UTIL_ERR_H
#define QUIRE_UTIL_ERR_H

#include "quire/common.h"

int quire__err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like quire__err with errno: returns -errno and records "what: strerror". */
int quire__errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void quire__err_clear(void);

int quire__never_hit(const char *expr, const char *file, int line);
/* How many QUIRE_NEVER/QUIRE_ALWAYS checks have fired in this process. */
QUIRE_API long quire__never_count(void);

#define QUIRE_NEVER(x) (__builtin_expect(!!(x), 0) ? quire__never_hit(#x, __FILE__, __LINE__) : 0)
#define QUIRE_ALWAYS(x) (__builtin_expect(!!(x), 1) ? 1 : !quire__never_hit("!(" #x ")", __FILE__, __LINE__))

#define QUIRE_UNUSED(x) ((void)(x))
#define QUIRE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define QUIRE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define QUIRE_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
