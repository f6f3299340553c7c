/*
 * tests/testlib/lsm_faultfs.h — an in-memory file layer (quire/lsm_vfs.h)
 * for crash and fault tests of the LSM engine and of what is built on it
 * (the client runtime's local store). One faultfs holds one file, whatever
 * path it is opened with; give each database its own. Header-only; link
 * quire_testlib (test_rand_below for the crash images).
 *
 * It keeps the file twice: as the page cache holds it (cur: what reads see,
 * what a process that exits leaves) and as the disk holds it (durable: what
 * a power cut leaves), plus the writes since the last sync. A successful
 * sync applies those writes to the durable image.
 *
 * Faults:
 *   - Crash (crash_at = N, or ffs_crash_now): the Nth write/sync/truncate
 *     fails and so does every call after it; ffs_crash_image() then builds
 *     the image a power cut could leave: every unsynced write dropped, kept,
 *     kept in a random subset, or the first ones kept and the next torn.
 *   - One-shot (fail_kind, fail_at = N): exactly one sync or write fails and
 *     the program goes on, every later call succeeding. A failed sync
 *     behaves like Linux after a writeback error: the writes since the last
 *     sync stay readable but never become durable (FFS_FAIL_SYNC), or only a
 *     prefix of them did, the last one torn (FFS_FAIL_SYNC_PARTIAL); a later
 *     successful sync does not bring them back. A failed write lands nothing
 *     (FFS_FAIL_WRITE) or a prefix of its bytes (FFS_FAIL_WRITE_PARTIAL).
 *   - Hook (hook, hook_arg): called before every write (FFS_OP_WRITE) and
 *     sync (FFS_OP_SYNC), without the layer's lock held; a nonzero return
 *     fails that call as the one-shot kinds FFS_FAIL_WRITE / FFS_FAIL_SYNC
 *     do. A hook may block (to hold a sync while other threads work).
 * Syncs and writes are counted (nsync, nwrite) so a dry run tells how many
 * fault positions a workload has. Every method takes the layer's mutex, so
 * databases with background threads may use it; read the counters and
 * images from the test thread when the database is idle or closed (or under
 * fs->mu).
 */
#ifndef QUIRE_TEST_LSM_FAULTFS_H
#define QUIRE_TEST_LSM_FAULTFS_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quire/lsm_vfs.h"
#include "test.h"

typedef struct ffs_write {
  uint64_t off;
  size_t n; /* SIZE_MAX: a truncate to off */
  uint8_t *data;
} ffs_write;

enum ffs_fail_kind {
  FFS_FAIL_SYNC,
  FFS_FAIL_SYNC_PARTIAL,
  FFS_FAIL_WRITE,
  FFS_FAIL_WRITE_PARTIAL,
  FFS_FAIL_KINDS
};

enum { FFS_OP_WRITE = 1, FFS_OP_SYNC = 2 };

typedef struct faultfs faultfs;
struct faultfs {
  struct lsm_vfs vfs;
  pthread_mutex_t mu; /* protects everything below */
  uint8_t *durable, *cur;
  size_t dlen, clen, dcap, ccap;
  ffs_write *log; /* writes since the last sync, oldest first */
  size_t nlog, caplog;
  long ops, crash_at; /* crash: the crash_at-th write/sync/truncate fails, and all after it */
  int crashed;
  int fail_kind;      /* one-shot: enum ffs_fail_kind */
  long fail_at;       /* 1-based index of the sync (sync kinds) or write that fails; 0 never */
  long nsync, nwrite; /* calls so far */
  int failed;         /* a one-shot fault (or the hook) has failed a call */
  uint64_t rng;       /* chooses partial lengths (set it to vary them) */
  int (*hook)(faultfs *fs, void *arg, int op, uint64_t off, size_t n);
  void *hook_arg;
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

/* mu held */
static int ffs_tick(faultfs *fs) {
  if (fs->crashed) return QUIRE_EIO;
  fs->ops++;
  if (fs->crash_at && fs->ops >= fs->crash_at) {
    fs->crashed = 1;
    return QUIRE_EIO;
  }
  return 0;
}

/* mu held */
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
  int rc = 0;
  pthread_mutex_lock(&fs->mu);
  if (fs->crashed)
    rc = QUIRE_EIO;
  else if (off + n > fs->clen)
    rc = QUIRE_ECORRUPT;
  else
    memcpy(buf, fs->cur + off, n);
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

static int ffs_writef(lsm_file *f, const void *buf, size_t n, uint64_t off) {
  faultfs *fs = ((ffs_file *)f)->fs;
  int hooked = fs->hook ? fs->hook(fs, fs->hook_arg, FFS_OP_WRITE, off, n) : 0;
  int rc = 0;
  pthread_mutex_lock(&fs->mu);
  if (!fs->crashed) fs->nwrite++;
  if (!fs->crashed && ((!fs->failed && fs->fail_at == fs->nwrite &&
                        (fs->fail_kind == FFS_FAIL_WRITE || fs->fail_kind == FFS_FAIL_WRITE_PARTIAL)) ||
                       hooked)) {
    fs->failed = 1;
    if (!hooked && fs->fail_kind == FFS_FAIL_WRITE_PARTIAL && n > 1)
      ffs_log(fs, off, 1 + (size_t)ffs_rand_below(fs, n - 1), buf);
    pthread_mutex_unlock(&fs->mu);
    return hooked ? hooked : QUIRE_EIO;
  }
  int crashed_now = !fs->crashed && fs->crash_at && fs->ops + 1 >= fs->crash_at;
  rc = ffs_tick(fs);
  if (crashed_now) ffs_log(fs, off, n, buf); /* the write in flight may land, in part */
  if (!rc) ffs_log(fs, off, n, buf);
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

static int ffs_sync(lsm_file *f) {
  faultfs *fs = ((ffs_file *)f)->fs;
  int hooked = fs->hook ? fs->hook(fs, fs->hook_arg, FFS_OP_SYNC, 0, 0) : 0;
  pthread_mutex_lock(&fs->mu);
  if (!fs->crashed) fs->nsync++;
  if (!fs->crashed && ((!fs->failed && fs->fail_at == fs->nsync &&
                        (fs->fail_kind == FFS_FAIL_SYNC || fs->fail_kind == FFS_FAIL_SYNC_PARTIAL)) ||
                       hooked)) {
    /* writeback failed: what did not reach the disk never will */
    fs->failed = 1;
    if (!hooked && fs->fail_kind == FFS_FAIL_SYNC_PARTIAL && fs->nlog) {
      size_t keep = (size_t)ffs_rand_below(fs, fs->nlog);
      for (size_t i = 0; i <= keep; i++) {
        size_t n = fs->log[i].n;
        if (i == keep && n != SIZE_MAX) n = (size_t)ffs_rand_below(fs, n + 1);
        ffs_apply(&fs->durable, &fs->dlen, &fs->dcap, &fs->log[i], n);
      }
    }
    ffs_clear_log(fs);
    pthread_mutex_unlock(&fs->mu);
    return hooked ? hooked : QUIRE_EIO;
  }
  int rc = ffs_tick(fs);
  if (!rc) {
    for (size_t i = 0; i < fs->nlog; i++)
      ffs_apply(&fs->durable, &fs->dlen, &fs->dcap, &fs->log[i], fs->log[i].n);
    ffs_clear_log(fs);
  }
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

static int ffs_size(lsm_file *f, uint64_t *out) {
  faultfs *fs = ((ffs_file *)f)->fs;
  pthread_mutex_lock(&fs->mu);
  int rc = fs->crashed ? QUIRE_EIO : 0;
  if (!rc) *out = fs->clen;
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

static int ffs_truncate(lsm_file *f, uint64_t size) {
  faultfs *fs = ((ffs_file *)f)->fs;
  pthread_mutex_lock(&fs->mu);
  int rc = ffs_tick(fs);
  if (!rc) ffs_log(fs, size, SIZE_MAX, NULL);
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

static int ffs_lock(lsm_file *f) {
  (void)f;
  return 0;
}

static void ffs_close(lsm_file *f) { free(f); }

static const struct lsm_file_ops ffs_ops = {ffs_read,     ffs_writef, ffs_sync,  ffs_size,
                                            ffs_truncate, ffs_lock,   ffs_close, NULL /* no punch */};

static int ffs_open(const struct lsm_vfs *vfs, const char *path, int create, lsm_file **out) {
  (void)path;
  faultfs *fs = vfs->ctx;
  pthread_mutex_lock(&fs->mu);
  int rc = fs->crashed ? QUIRE_EIO : !create && fs->clen == 0 && !fs->cur ? -ENOENT : 0;
  pthread_mutex_unlock(&fs->mu);
  if (rc) return rc;
  ffs_file *f = calloc(1, sizeof *f);
  f->base.ops = &ffs_ops;
  f->fs = fs;
  *out = &f->base;
  return 0;
}

/* A fresh file system whose file holds image (copied; may be NULL: no file
 * until a database is created). Use &fs->vfs as lsm_options.vfs. */
static inline void ffs_init(faultfs *fs, const uint8_t *image, size_t len) {
  memset(fs, 0, sizeof *fs);
  pthread_mutex_init(&fs->mu, NULL);
  fs->vfs.open = ffs_open;
  fs->vfs.ctx = fs;
  ffs_resize(&fs->cur, &fs->clen, &fs->ccap, len);
  ffs_resize(&fs->durable, &fs->dlen, &fs->dcap, len);
  if (len) {
    memcpy(fs->cur, image, len);
    memcpy(fs->durable, image, len);
  }
}

/* Frees everything; the database using it must be closed first. */
static inline void ffs_free(faultfs *fs) {
  ffs_clear_log(fs);
  free(fs->log);
  free(fs->cur);
  free(fs->durable);
  pthread_mutex_destroy(&fs->mu);
  memset(fs, 0, sizeof *fs);
}

/* Power is cut now: every later write, sync, read and open fails (the
 * database can only be closed). Build the image with ffs_crash_image. */
static inline void ffs_crash_now(faultfs *fs) {
  pthread_mutex_lock(&fs->mu);
  fs->crashed = 1;
  pthread_mutex_unlock(&fs->mu);
}

enum { FFS_DROP, FFS_KEEP, FFS_TEAR, FFS_SUBSET, FFS_VARIANTS };

/* The image a power cut leaves: the durable image plus some unsynced
 * writes (per variant: FFS_DROP none, FFS_KEEP all, FFS_TEAR the first ones
 * and a prefix of the next, FFS_SUBSET a random subset, some cut short).
 * Caller frees *out (malloc). */
static inline void ffs_crash_image(faultfs *fs, int variant, uint8_t **out, size_t *len) {
  pthread_mutex_lock(&fs->mu);
  uint8_t *img = NULL;
  size_t ilen = 0, icap = 0;
  ffs_resize(&img, &ilen, &icap, fs->dlen ? fs->dlen : 1);
  ilen = fs->dlen;
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
  pthread_mutex_unlock(&fs->mu);
  *out = img;
  *len = ilen;
}

/* The file as the page cache holds it (what a process that exits, or is
 * killed, leaves without a power cut). Caller frees *out (malloc). */
static inline void ffs_cached_image(faultfs *fs, uint8_t **out, size_t *len) {
  pthread_mutex_lock(&fs->mu);
  *out = malloc(fs->clen ? fs->clen : 1);
  if (fs->clen) memcpy(*out, fs->cur, fs->clen);
  *len = fs->clen;
  pthread_mutex_unlock(&fs->mu);
}

#endif
