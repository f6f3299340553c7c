/*
 * quire/common.h — what every quire API shares: the export macro, the error
 * model and the thread-local error detail.
 *
 * Error model. Every fallible function returns int: 0 on success, a negative
 * quire code (QUIRE_E*, in the band -10000 .. -10999, far below any -errno,
 * which Linux keeps above -4096) or a negative errno. quire_strerror() names
 * both. A human-readable detail for the most recent failure on the calling
 * thread is in quire_errmsg(); it is never printed by the library.
 * Corruption of anything read from disk or the network is QUIRE_ECORRUPT,
 * never an assert or an abort.
 */
#ifndef QUIRE_COMMON_H
#define QUIRE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QUIRE_API __attribute__((visibility("default")))

#define QUIRE_OK 0
#define QUIRE_EBAND (-10000)
enum {
  QUIRE_ENOTFOUND = QUIRE_EBAND - 1,     /* no such key, object, LSN or volume */
  QUIRE_EEXIST = QUIRE_EBAND - 2,        /* already exists (put_if_absent) */
  QUIRE_ECONFLICT = QUIRE_EBAND - 3,     /* optimistic check failed; retry from newer base */
  QUIRE_EBUSY = QUIRE_EBAND - 4,         /* locked by someone else (file lock, overload) */
  QUIRE_ECORRUPT = QUIRE_EBAND - 5,      /* bytes failed validation: checksum, bounds, order */
  QUIRE_EIO = QUIRE_EBAND - 6,           /* an I/O operation failed (detail in errmsg) */
  QUIRE_ENOMEM = QUIRE_EBAND - 7,        /* allocation failed */
  QUIRE_EINVAL = QUIRE_EBAND - 8,        /* bad argument or malformed request */
  QUIRE_ETOOLARGE = QUIRE_EBAND - 9,     /* over a documented size limit */
  QUIRE_EUNAVAILABLE = QUIRE_EBAND - 10, /* a dependency (store, peer) is down; retry later */
  QUIRE_EUNAUTHORIZED = QUIRE_EBAND - 11,
  QUIRE_EFORBIDDEN = QUIRE_EBAND - 12,
  QUIRE_ECLOSED = QUIRE_EBAND - 13,      /* the handle or service is shutting down */
  QUIRE_EINTERNAL = QUIRE_EBAND - 14,    /* a bug: an invariant of our own was broken */
  QUIRE_ETIMEDOUT = QUIRE_EBAND - 15,    /* a deadline passed */
  QUIRE_EVERSION = QUIRE_EBAND - 16,     /* a format or protocol version we do not speak */
  QUIRE_EUNSUPPORTED = QUIRE_EBAND - 17, /* valid, but not supported by this build or store */
  QUIRE_ERANGE = QUIRE_EBAND - 18,       /* a value outside its valid range (page 0, lsn 0) */
  QUIRE_EEND = QUIRE_EBAND - 19,         /* iteration is past its last item (not an error) */
  QUIRE_ECANCELED = QUIRE_EBAND - 20,    /* the caller cancelled the call (a cancel token fired) */
  QUIRE_EGONE = QUIRE_EBAND - 21,        /* below the retained history (an LSN under the volume's base) */
  QUIRE_ELAST_ = QUIRE_EBAND - 22
};

/* Static string naming rc: a QUIRE_E* code, a -errno, or 0. Never NULL. */
QUIRE_API const char *quire_strerror(int rc);
/* Short symbolic name ("QUIRE_ECORRUPT", "ENOENT"). Never NULL. */
QUIRE_API const char *quire_errname(int rc);

/* Detail message of the last error recorded on this thread ("" if none).
 * Valid until the next quire call on this thread that records an error. */
QUIRE_API const char *quire_errmsg(void);

/* Library version "MAJOR.MINOR.PATCH" and the git revision it was built from. */
QUIRE_API const char *quire_version(void);
QUIRE_API const char *quire_build_revision(void);

#ifdef __cplusplus
}
#endif
#endif
