/*
 * tests/lsm/faultfs.h — an in-memory file layer for the LSM engine that
 * simulates power loss. It keeps the image as of the last sync and the list
 * of writes since; after an injected crash (the Nth write or sync fails, and
 * everything after it) a test builds the image a power cut could leave:
 * every unsynced write dropped, kept, kept in a random subset, or the first
 * ones kept and the next torn (a prefix of its bytes). Also a plain memory
 * file for fuzzing and OOM tests (crash_at = 0 never crashes).
 *
 * One-shot faults (fail_kind, fail_at): exactly one sync or write fails and
 * the program goes on, every later call succeeding. A failed sync behaves
 * like Linux after a writeback error: the writes since the last sync stay
 * readable (page cache) but never become durable (FFS_FAIL_SYNC), or only a
 * prefix of them did, the last one torn (FFS_FAIL_SYNC_PARTIAL); a later
 * successful sync does not bring them back. A failed write lands nothing
 * (FFS_FAIL_WRITE) or a prefix of its bytes (FFS_FAIL_WRITE_PARTIAL). Syncs
 * and writes are counted (nsync, nwrite) so a dry run tells how many fault
 * positions a workload has.
 */
#ifndef QUIRE_TEST_FAULTFS_H
#define QUIRE_TEST_FAULTFS_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm_vfs.h"
#include "test.h"

typedef struct ffs_write {
  uint64_t off;
  size_t n; /* SIZE_MAX: a truncate to off */
  uint8_t *data;
} ffs_write;

typedef struct faultfs {
  struct lsm_vfs vfs;
  uint8_t *durable, *cur;
  size_t dlen, clen, dcap, ccap;
  ffs_write *log;
  size_t nlog, caplog;
  long ops, crash_at;
  int crashed;
  int fail_kind;      /* enum ffs_fail_kind */
  long fail_at;       /* 1-based index of the sync (sync kinds) or write that fails; 0 never */
  long nsync, nwrite; /* calls so far */
  int failed;         /* the one-shot fault has fired */
  uint64_t rng;       /* chooses partial lengths (set it to vary them) */
} faultfs;

enum ffs_fail_kind {
  FFS_FAIL_SYNC,
  FFS_FAIL_SYNC_PARTIAL,
  FFS_FAIL_WRITE,
  FFS_FAIL_WRITE_PARTIAL,
  FFS_FAIL_KINDS
};

typedef struct ffs_file {
  lsm_file base;
  faultfs *fs;
} ffs_file;

static uint64_t ffs_rand_below(faultfs *fs, uint64_t n) {
  uint64_t z = (fs->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return n ? (z ^ (z >> 31)) % n : 0;
}

static void ffs_resize(uint8_t **p, size_t *len, size_t *cap, size_t n) {
  if (n > *cap) {
    size_t c = *cap ? *cap : 65536;
    while (c < n) c *= 2;
    *p = realloc(*p, c);
    *cap = c;
  }
  if (n > *len) memset(*p + *len, 0, n - *len);
  *len = n;
}

static void ffs_apply(uint8_t **p, size_t *len, size_t *cap, const ffs_write *w, size_t n) {
  if (w->n == SIZE_MAX) {
    ffs_resize(p, len, cap, w->off);
    *len = w->off;
    return;
  }
  if (w->off + n > *len) ffs_resize(p, len, cap, w->off + n);
  memcpy(*p + w->off, w->data, n);
}

static int ffs_tick(faultfs *fs) {
  if (fs->crashed) return QUIRE_EIO;
  fs->ops++;
  if (fs->crash_at && fs->ops >= fs->crash_at) {
    fs->crashed = 1;
    return QUIRE_EIO;
  }
  return 0;
}

static void ffs_log(faultfs *fs, uint64_t off, size_t n, const void *data) {
  if (fs->nlog == fs->caplog) {
    fs->caplog = fs->caplog ? fs->caplog * 2 : 64;
    fs->log = realloc(fs->log, fs->caplog * sizeof *fs->log);
  }
  ffs_write *w = &fs->log[fs->nlog++];
  w->off = off;
  w->n = n;
  w->data = NULL;
  if (n != SIZE_MAX) {
    w->data = malloc(n ? n : 1);
    memcpy(w->data, data, n);
  }
  ffs_apply(&fs->cur, &fs->clen, &fs->ccap, w, n);
}

static void ffs_clear_log(faultfs *fs) {
  for (size_t i = 0; i < fs->nlog; i++) free(fs->log[i].data);
  fs->nlog = 0;
}

static int ffs_read(lsm_file *f, void *buf, size_t n, uint64_t off) {
  faultfs *fs = ((ffs_file *)f)->fs;
  if (fs->crashed) return QUIRE_EIO;
  if (off + n > fs->clen) return QUIRE_ECORRUPT;
  memcpy(buf, fs->cur + off, n);
  return 0;
}

static int ffs_writef(lsm_file *f, const void *buf, size_t n, uint64_t off) {
  faultfs *fs = ((ffs_file *)f)->fs;
  if (!fs->crashed) fs->nwrite++;
  if (!fs->crashed && !fs->failed && fs->fail_at == fs->nwrite &&
      (fs->fail_kind == FFS_FAIL_WRITE || fs->fail_kind == FFS_FAIL_WRITE_PARTIAL)) {
    fs->failed = 1;
    if (fs->fail_kind == FFS_FAIL_WRITE_PARTIAL && n > 1)
      ffs_log(fs, off, 1 + (size_t)ffs_rand_below(fs, n - 1), buf);
    return QUIRE_EIO;
  }
  int crashed_now = !fs->crashed && fs->crash_at && fs->ops + 1 >= fs->crash_at;
  int rc = ffs_tick(fs);
  if (crashed_now) ffs_log(fs, off, n, buf); /* the write in flight may land, in part */
  if (rc) return rc;
  ffs_log(fs, off, n, buf);
  return 0;
}

static int ffs_sync(lsm_file *f) {
  faultfs *fs = ((ffs_file *)f)->fs;
  if (!fs->crashed) fs->nsync++;
  if (!fs->crashed && !fs->failed && fs->fail_at == fs->nsync &&
      (fs->fail_kind == FFS_FAIL_SYNC || fs->fail_kind == FFS_FAIL_SYNC_PARTIAL)) {
    /* writeback failed: what did not reach the disk never will */
    fs->failed = 1;
    if (fs->fail_kind == FFS_FAIL_SYNC_PARTIAL && fs->nlog) {
      size_t keep = (size_t)ffs_rand_below(fs, fs->nlog);
      for (size_t i = 0; i <= keep; i++) {
        size_t n = fs->log[i].n;
        if (i == keep && n != SIZE_MAX) n = (size_t)ffs_rand_below(fs, n + 1);
        ffs_apply(&fs->durable, &fs->dlen, &fs->dcap, &fs->log[i], n);
      }
    }
    ffs_clear_log(fs);
    return QUIRE_EIO;
  }
  int rc = ffs_tick(fs);
  if (rc) return rc;
  for (size_t i = 0; i < fs->nlog; i++)
    ffs_apply(&fs->durable, &fs->dlen, &fs->dcap, &fs->log[i], fs->log[i].n);
  ffs_clear_log(fs);
  return 0;
}

static int ffs_size(lsm_file *f, uint64_t *out) {
  faultfs *fs = ((ffs_file *)f)->fs;
  if (fs->crashed) return QUIRE_EIO;
  *out = fs->clen;
  return 0;
}

static int ffs_truncate(lsm_file *f, uint64_t size) {
  faultfs *fs = ((ffs_file *)f)->fs;
  int rc = ffs_tick(fs);
  if (rc) return rc;
  ffs_log(fs, size, SIZE_MAX, NULL);
  return 0;
}

static int ffs_lock(lsm_file *f) {
  (void)f;
  return 0;
}

static void ffs_close(lsm_file *f) { free(f); }

static const struct lsm_file_ops ffs_ops = {ffs_read,     ffs_writef, ffs_sync, ffs_size,
                                            ffs_truncate, ffs_lock,   ffs_close};

static int ffs_open(const struct lsm_vfs *vfs, const char *path, int create, lsm_file **out) {
  (void)path;
  faultfs *fs = vfs->ctx;
  if (fs->crashed) return QUIRE_EIO;
  if (!create && fs->clen == 0 && !fs->cur) return -ENOENT;
  ffs_file *f = calloc(1, sizeof *f);
  f->base.ops = &ffs_ops;
  f->fs = fs;
  *out = &f->base;
  return 0;
}

/* A fresh file system whose file holds image (copied; may be NULL). */
static inline void ffs_init(faultfs *fs, const uint8_t *image, size_t len) {
  memset(fs, 0, sizeof *fs);
  fs->vfs.open = ffs_open;
  fs->vfs.ctx = fs;
  ffs_resize(&fs->cur, &fs->clen, &fs->ccap, len);
  ffs_resize(&fs->durable, &fs->dlen, &fs->dcap, len);
  if (len) {
    memcpy(fs->cur, image, len);
    memcpy(fs->durable, image, len);
  }
}

static inline void ffs_free(faultfs *fs) {
  ffs_clear_log(fs);
  free(fs->log);
  free(fs->cur);
  free(fs->durable);
  memset(fs, 0, sizeof *fs);
}

enum { FFS_DROP, FFS_KEEP, FFS_TEAR, FFS_SUBSET, FFS_VARIANTS };

/* The file as the page cache holds it (what a process that exits without a
 * power cut leaves). Caller frees *out. */
static inline void ffs_cached_image(const faultfs *fs, uint8_t **out, size_t *len) {
  *out = malloc(fs->clen ? fs->clen : 1);
  if (fs->clen) memcpy(*out, fs->cur, fs->clen);
  *len = fs->clen;
}

/* The image a power cut leaves: the durable image plus some unsynced
 * writes (per variant). Caller frees *out. */
static inline void ffs_crash_image(const faultfs *fs, int variant, uint8_t **out, size_t *len) {
  uint8_t *img = NULL;
  size_t ilen = 0, icap = 0;
  ffs_resize(&img, &ilen, &icap, fs->dlen);
  if (fs->dlen) memcpy(img, fs->durable, fs->dlen);
  size_t keep = 0, torn = SIZE_MAX;
  if (variant == FFS_KEEP) keep = fs->nlog;
  if (variant == FFS_TEAR && fs->nlog) {
    keep = (size_t)test_rand_below(fs->nlog);
    torn = keep;
  }
  for (size_t i = 0; i < fs->nlog; i++) {
    const ffs_write *w = &fs->log[i];
    size_t n = w->n;
    if (variant == FFS_SUBSET) {
      if (test_rand_below(2)) continue;
      if (n != SIZE_MAX && test_rand_below(4) == 0) n = (size_t)test_rand_below(n + 1);
    } else if (i == torn) {
      if (n != SIZE_MAX) n = (size_t)test_rand_below(n + 1);
    } else if (i >= keep) {
      break;
    }
    ffs_apply(&img, &ilen, &icap, w, n);
  }
  *out = img;
  *len = ilen;
}

#endif
