/*
 * lsm/lsm_vfs.h — the file layer under the LSM engine. Every byte the engine
 * reads or writes goes through one of these vtables, so tests can put a
 * fault-injecting layer underneath (drop, keep or tear unsynced writes,
 * fail calls) without touching the engine. lsm__vfs_posix() is the default.
 */
#ifndef QUIRE_LSM_VFS_H
#define QUIRE_LSM_VFS_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsm_file lsm_file;

struct lsm_file_ops {
  /* Reads exactly n bytes at off. QUIRE_ECORRUPT if the file ends first. */
  int (*read)(lsm_file *f, void *buf, size_t n, uint64_t off);
  /* Writes exactly n bytes at off (extending the file as needed). */
  int (*write)(lsm_file *f, const void *buf, size_t n, uint64_t off);
  /* Makes every completed write durable (fdatasync). */
  int (*sync)(lsm_file *f);
  int (*size)(lsm_file *f, uint64_t *out);
  int (*truncate)(lsm_file *f, uint64_t size);
  /* Takes the exclusive single-process lock; QUIRE_EBUSY if held elsewhere. */
  int (*lock)(lsm_file *f);
  void (*close)(lsm_file *f);
  /* Optional (may be NULL): gives the space of [off, off+n) back to the file
   * system; those bytes then read as zeros. Only ever called on free pages. */
  int (*punch)(lsm_file *f, uint64_t off, uint64_t n);
};

struct lsm_file {
  const struct lsm_file_ops *ops;
};

struct lsm_vfs {
  /* Opens path; with create, makes it if missing (-ENOENT otherwise). */
  int (*open)(const struct lsm_vfs *vfs, const char *path, int create, lsm_file **out);
  void *ctx;
};

const struct lsm_vfs *lsm__vfs_posix(void);

#endif
