/*
 * quire/lsm_vfs.h — the file layer under the LSM engine (lsm_options.vfs).
 *
 * Every byte the engine reads or writes goes through one of these vtables,
 * so an application or a test can put its own layer underneath: fault
 * injection (fail one sync, drop unsynced writes to simulate power loss),
 * an in-memory file, accounting. lsm_vfs_posix() is the default (pread,
 * pwrite, fdatasync, flock). tests/testlib/lsm_faultfs.h is a fault-injecting
 * in-memory layer built on this interface.
 *
 * The engine opens exactly one file per database (the path given to
 * lsm_open) and calls its methods from several threads at once: readers,
 * the committing thread and background merge threads. A layer must
 * therefore be thread-safe and positioned (no shared file offset). Every
 * method returns 0 or a negative error (a QUIRE_E* code or -errno; detail
 * may be recorded for quire_errmsg()).
 *
 * Durability contract, which the engine's crash safety rests on:
 *   - a write that returned 0 is visible to later reads at once;
 *   - a sync that returned 0 has made every write that returned before the
 *     sync was called durable;
 *   - a write or sync that failed may have landed none, part or all of its
 *     bytes, and after a failed sync the writes before it may be lost even
 *     if a later sync succeeds (as Linux does after a writeback error). The
 *     engine therefore stops writing after any failed write, sync or
 *     truncate until the database is reopened (docs/LSM.md "When a write
 *     fails").
 *
 * Ownership: lsm_options.vfs is borrowed; it (and its ctx) must outlive
 * every database opened with it. The lsm_file returned by open belongs to
 * the engine, which releases it with close exactly once.
 */
#ifndef QUIRE_LSM_VFS_H
#define QUIRE_LSM_VFS_H

#include <stddef.h>
#include <stdint.h>

#include "quire/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsm_file lsm_file;

struct lsm_file_ops {
  /* Reads exactly n bytes at off into buf. QUIRE_ECORRUPT if the file ends
   * before off + n (the engine bounds every structure by the file size). */
  int (*read)(lsm_file *f, void *buf, size_t n, uint64_t off);
  /* Writes exactly n bytes at off, extending the file as needed. */
  int (*write)(lsm_file *f, const void *buf, size_t n, uint64_t off);
  /* Makes every write completed before the call durable (fdatasync). */
  int (*sync)(lsm_file *f);
  /* The file's current length in bytes. */
  int (*size)(lsm_file *f, uint64_t *out);
  /* Sets the file's length (grows with zeros or cuts). */
  int (*truncate)(lsm_file *f, uint64_t size);
  /* Takes an exclusive lock for the life of the handle, so that one file is
   * open in one database at a time; QUIRE_EBUSY if it is held elsewhere.
   * Called once, right after open. */
  int (*lock)(lsm_file *f);
  /* Releases the lock and the handle (f is not used again). */
  void (*close)(lsm_file *f);
  /* Optional (may be NULL): gives the disk space of [off, off+n) back to the
   * file system; those bytes then read as zeros. Only ever called on free
   * pages; a failure is ignored. */
  int (*punch)(lsm_file *f, uint64_t off, uint64_t n);
};

/* A handle: a layer embeds this as its first member and casts. */
struct lsm_file {
  const struct lsm_file_ops *ops;
};

struct lsm_vfs {
  /* Opens path; with create, makes it (empty) if it does not exist, else
   * -ENOENT. On success *out belongs to the engine until ops->close. */
  int (*open)(const struct lsm_vfs *vfs, const char *path, int create, lsm_file **out);
  void *ctx; /* the layer's own state, untouched by the engine */
};

/* The default layer: POSIX files (pread/pwrite, fdatasync, flock,
 * fallocate punch-hole). Static; never freed. A layer that wraps the real
 * file system can delegate to it. */
QUIRE_API const struct lsm_vfs *lsm_vfs_posix(void);

#ifdef __cplusplus
}
#endif
#endif
