/*
 * sqlite/file.c — a main database file on a quire volume.
 *
 * Bytes. Byte offset o lives in volume page o/4096 + 1 at o%4096. A SQLite
 * page smaller than 4096 bytes shares a volume page with its neighbours; a
 * larger one spans several. A write that covers a whole volume page goes
 * to the writer as is; a partial one is read-modify-write of the volume
 * page inside the writer, staged in f->stage so that a run of small pages
 * (eight 512-byte pages) costs one write of the volume page, not eight.
 * The file's size is page_count * 4096: with SQLite pages under 4 KiB the
 * last volume page may hold fewer SQLite pages than fit, and the rest of it
 * is zeros (a truncation inside a volume page zeroes the tail). SQLite
 * takes a database's exact length from its own header (the page count at
 * offset 28, valid whenever the change counter at 24 equals the
 * version-valid-for number at 92, which every writer since 3.7.0
 * maintains), so the slack is never read as pages.
 *
 * Locks (SQLite's lock levels onto quire's readers and writers):
 *   NONE → SHARED      a reader pins the snapshot of the local head: the
 *                      read transaction sees exactly that snapshot;
 *   SHARED → RESERVED  the volume's write lock in this process (another
 *                      connection holding it: SQLITE_BUSY) and a writer on
 *                      the snapshot; if the head moved since the snapshot
 *                      SQLite's cache is stale: SQLITE_BUSY_SNAPSHOT (and
 *                      so while the volume is in conflict);
 *   PENDING/EXCLUSIVE  nothing more: readers never block the writer;
 *   → SHARED / NONE    ends the write transaction; NONE drops the reader.
 * Commit. SQLite's commit sends SQLITE_FCNTL_SYNC after writing every
 * page and before finalizing its journal; that is where the writer
 * becomes one local commit (also with synchronous=OFF: the control is sent
 * either way). A failure there (SQLITE_BUSY_SNAPSHOT when the head moved)
 * fails COMMIT and SQLite rolls back from its journal, whose writes are then
 * dropped. SQLITE_FCNTL_COMMIT_ATOMIC_WRITE commits the same way for
 * SQLite builds with batch atomic writes. A transaction that ends without
 * the control rolled back: its writer is dropped at unlock. Writes after
 * the commit in the same lock (SQLite's truncation of a shrunk database)
 * are avoided by truncating to the header's page count at the commit, and
 * otherwise committed at SQLITE_FCNTL_COMMIT_PHASETWO.
 * Cache. SQLite keeps its page cache across transactions and drops it when
 * the 16 bytes at offset 24 (the change counter and what follows) differ
 * from what it last saw. Another connection's commit changes them; a pull,
 * a reset or an import may not (two clients can reach the same counter).
 * So when a lock finds a snapshot other than the one the cache reflects,
 * the check read reports bytes that differ from what SQLite last saw, and
 * SQLite reloads every page. The cache reflects the lock's snapshot only
 * once that check read has been answered: a lock whose check read failed
 * (page 1 not local, the pagestore down) leaves the next lock to check
 * again. After a failed commit SQLite restores page 1 from its journal
 * while the volume saw none of it, so what SQLite last saw is unknown and
 * the next check forces the reload.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite/qs_int.h"
#include "util/log.h"

#define PAGE QUIRE_PAGE_SIZE

static const char sqlite_magic[16] = "SQLite format 3";

/* ---- views ------------------------------------------------------------------ */

/* The reader reads come from when there is no writer: the pinned snapshot
 * of an immutable file, the lock's snapshot, or (before any lock: the
 * header read at open) a snapshot of the head for this call only. */
static int view_reader(struct qs_file *f, quire_reader **r, int *transient) {
  *transient = 0;
  if (f->immutable) {
    if (!f->pinned) {
      int rc = quire_reader_open(f->vol->v, &f->pinned);
      if (rc) return rc;
    }
    *r = f->pinned;
    return 0;
  }
  if (f->reader) {
    *r = f->reader;
    return 0;
  }
  *transient = 1;
  return quire_reader_open(f->vol->v, r);
}

static quire_pagecount writer_pages(struct qs_file *f) {
  quire_pagecount n = quire_writer_page_count(f->writer);
  return f->stage_idx && f->stage_dirty && f->stage_idx > n ? f->stage_idx : n;
}

/* Volume page idx as the writer (with the staged page) or r sees it. */
static int page_get(struct qs_file *f, quire_reader *r, quire_pageidx idx, uint8_t *out) {
  if (!f->writer) return quire_reader_read(r, idx, out);
  if (f->stage_idx == idx) {
    memcpy(out, f->stage, PAGE);
    return 0;
  }
  return quire_writer_read(f->writer, idx, out);
}

static int stage_flush(struct qs_file *f) {
  int rc = 0;
  if (f->stage_idx && f->stage_dirty) rc = quire_writer_write(f->writer, f->stage_idx, f->stage);
  f->stage_idx = 0;
  f->stage_dirty = 0;
  return rc;
}

static void stage_drop(struct qs_file *f) {
  f->stage_idx = 0;
  f->stage_dirty = 0;
}

__attribute__((format(printf, 4, 5))) static int fail(struct qs_file *f, int code, int rc, const char *fmt,
                                                      ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  size_t n = strlen(what);
  snprintf(what + n, sizeof what - n, " (volume '%s')", f->name);
  return qs__fail(f->vol, code, rc, what);
}

/* ---- the writer ---------------------------------------------------------------- */

/* Opens the writer of this write lock if there is none (after a commit,
 * later writes of the same lock need a new one). Its base must be the
 * snapshot SQLite's cache reflects. */
static int ensure_writer(struct qs_file *f) {
  if (f->writer) return SQLITE_OK;
  if (!f->write_locked) return fail(f, SQLITE_IOERR_WRITE, 0, "write without a write lock");
  quire_writer *w;
  int rc = quire_writer_open(f->vol->v, &w);
  if (rc) return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_WRITE), rc, "cannot begin a write transaction");
  if (quire_writer_base_lsn(w) != f->cache_lsn) {
    quire_lsn base = quire_writer_base_lsn(w);
    quire_writer_abort(w);
    return fail(f, SQLITE_BUSY_SNAPSHOT, 0,
                "the volume moved to local lsn %llu since this transaction's snapshot: roll back and retry",
                (unsigned long long)base);
  }
  f->writer = w;
  f->nwrites = 0;
  return SQLITE_OK;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The database size in bytes that a valid SQLite header in page p states,
 * or 0 when p holds no such header. */
static uint64_t header_bytes(const uint8_t *p) {
  if (memcmp(p, sqlite_magic, 16) != 0) return 0;
  uint32_t pgsz = (uint32_t)p[16] << 8 | p[17];
  if (pgsz == 1) pgsz = 65536;
  if (pgsz < 512 || pgsz > 65536 || (pgsz & (pgsz - 1))) return 0;
  uint32_t npages = be32(p + 28);
  if (!npages || be32(p + 24) != be32(p + 92)) return 0;
  return (uint64_t)npages * pgsz;
}

/* Sets the writer's size to `bytes`: page_count rounds up, and the part of
 * the last volume page past `bytes` becomes zeros. The stage is flushed. */
static int writer_resize(struct qs_file *f, uint64_t bytes) {
  int rc = stage_flush(f);
  if (rc) return rc;
  uint64_t pages = (bytes + PAGE - 1) / PAGE;
  if (pages > UINT32_MAX) return QUIRE_ETOOLARGE;
  if ((rc = quire_writer_truncate(f->writer, (quire_pagecount)pages)) != 0) return rc;
  size_t tail = (size_t)(bytes % PAGE);
  if (!tail) return 0;
  uint8_t page[PAGE];
  if ((rc = quire_writer_read(f->writer, (quire_pageidx)pages, page)) != 0) return rc;
  for (size_t i = tail; i < PAGE; i++)
    if (page[i]) {
      memset(page + tail, 0, PAGE - tail);
      return quire_writer_write(f->writer, (quire_pageidx)pages, page);
    }
  return 0;
}

/* At commit: a database the header says is shorter than the volume is
 * truncated now, in the same commit (SQLite would do it right after). */
static int pretrim(struct qs_file *f) {
  quire_pagecount count = quire_writer_page_count(f->writer);
  if (!count) return 0;
  uint8_t p1[PAGE];
  int rc = quire_writer_read(f->writer, 1, p1);
  if (rc) return rc;
  uint64_t bytes = header_bytes(p1);
  if (!bytes || (bytes + PAGE - 1) / PAGE >= count) return 0;
  return writer_resize(f, bytes);
}

/* Makes the writer one local commit. On success SQLite's cache reflects
 * the new lsn and the lock's reader moves there; on failure the rest of the
 * transaction's writes are dropped (SQLite rolls back). */
static int commit_writer(struct qs_file *f) {
  quire_lsn lsn = 0;
  int rc = stage_flush(f);
  if (!rc) rc = pretrim(f);
  if (rc)
    quire_writer_abort(f->writer);
  else
    rc = quire_writer_commit(f->writer, &lsn);
  f->writer = NULL;
  f->nwrites = 0;
  if (rc) {
    f->doomed = 1;
    f->vers_known = 0; /* SQLite's rollback restores page 1 without us */
    return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_FSYNC), rc, "commit failed, the transaction rolls back");
  }
  f->committed = 1;
  if (lsn == f->cache_lsn) return SQLITE_OK;
  f->cache_lsn = f->lock_lsn = lsn;
  if (f->reader) {
    quire_reader *nr;
    if (quire_reader_open(f->vol->v, &nr) == 0) {
      if (quire_reader_lsn(nr) != lsn)
        QLOG_INFO(
            "quire sqlite: volume '%s' moved past this connection's commit at lsn %llu before it could pin "
            "it; the rest of this lock reads lsn %llu",
            f->name, (unsigned long long)lsn, (unsigned long long)quire_reader_lsn(nr));
      quire_reader_close(f->reader);
      f->reader = nr;
    } else {
      f->cache_lsn = UINT64_MAX; /* the next lock reloads */
    }
  }
  return SQLITE_OK;
}

/* Ends the write transaction at unlock: writes after the commit are
 * committed too; a transaction that never committed is dropped. */
static int end_write(struct qs_file *f) {
  int rc = SQLITE_OK;
  if (f->writer) {
    if (f->committed && !f->doomed && (f->nwrites || f->stage_dirty))
      rc = commit_writer(f);
    else
      quire_writer_abort(f->writer);
    f->writer = NULL;
  }
  stage_drop(f);
  if (f->write_locked) qs__vol_unlock(f->vol, f);
  f->write_locked = 0;
  f->committed = f->doomed = 0;
  f->nwrites = 0;
  return rc;
}

/* ---- io methods ---------------------------------------------------------------- */

static int file_close(sqlite3_file *file) {
  struct qs_file *f = (struct qs_file *)file;
  if (f->writer) quire_writer_abort(f->writer);
  f->writer = NULL;
  if (f->write_locked) qs__vol_unlock(f->vol, f);
  quire_reader_close(f->reader);
  quire_reader_close(f->pinned);
  f->reader = f->pinned = NULL;
  free(f->stage);
  f->stage = NULL;
  qs__vol_release(f->vol);
  f->vol = NULL;
  return SQLITE_OK;
}

static void after_read(struct qs_file *f, uint8_t *buf, int amt, sqlite3_int64 off) {
  if (off == 0 && amt >= 20 && memcmp(buf, sqlite_magic, 16) == 0 && buf[18] == 2 && buf[19] == 2) {
    /* A WAL-mode header (an imported file): the volume has no WAL, so it
     * is a rollback-journal database. */
    buf[18] = buf[19] = 1;
  }
  if (off == 0 && amt >= 512) {
    memcpy(f->vers, buf + 24, 16);
    f->vers_known = 1;
  } else if (off == 24 && amt == 16 && f->check_version) {
    /* SQLite's cache check at a new lock: report a change. */
    QLOG_TRACE("quire sqlite: '%s' cache check (%s)", f->name,
               !f->vers_known || memcmp(buf, f->vers, 16) == 0 ? "forced" : "changed");
    f->check_version = 0;
    f->cache_lsn = f->lock_lsn; /* SQLite drops its cache now */
    if (!f->vers_known || memcmp(buf, f->vers, 16) == 0)
      for (int i = 0; i < 16; i++) buf[i] ^= 0xff;
  }
}

static int file_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off) {
  struct qs_file *f = (struct qs_file *)file;
  quire_reader *r = NULL;
  int transient = 0, rc = 0;
  if (!f->writer && (rc = view_reader(f, &r, &transient)) != 0)
    return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_READ), rc, "cannot read the volume");
  uint64_t size = (uint64_t)(f->writer ? writer_pages(f) : quire_reader_page_count(r)) * PAGE;
  uint8_t *out = buf;
  int want = amt, short_read = 0;
  if ((uint64_t)off + (uint64_t)amt > size) {
    short_read = 1;
    want = (uint64_t)off >= size ? 0 : (int)(size - (uint64_t)off);
    memset(out + want, 0, (size_t)(amt - want));
  }
  uint64_t pos = (uint64_t)off;
  quire_pageidx idx = 0;
  while (want > 0) {
    idx = (quire_pageidx)(pos / PAGE + 1);
    size_t po = (size_t)(pos % PAGE), n = PAGE - po < (size_t)want ? PAGE - po : (size_t)want;
    if (n == PAGE) {
      rc = page_get(f, r, idx, out);
    } else {
      uint8_t page[PAGE];
      rc = page_get(f, r, idx, page);
      if (!rc) memcpy(out, page + po, n);
    }
    if (rc) break;
    out += n, pos += n, want -= (int)n;
  }
  if (transient) quire_reader_close(r);
  if (rc) return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_READ), rc, "read of volume page %u failed", idx);
  after_read(f, buf, amt, off);
  return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int file_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off) {
  struct qs_file *f = (struct qs_file *)file;
  if (f->doomed) return SQLITE_OK; /* a failed commit's rollback: the volume never changed */
  if (f->readonly || f->immutable) return SQLITE_READONLY;
  int rc = ensure_writer(f);
  if (rc) return rc;
  if ((uint64_t)off + (uint64_t)amt > (uint64_t)UINT32_MAX * PAGE) return SQLITE_FULL;
  const uint8_t *in = buf;
  uint64_t pos = (uint64_t)off;
  int left = amt, qrc = 0;
  quire_pageidx idx = 0;
  while (left > 0 && !qrc) {
    idx = (quire_pageidx)(pos / PAGE + 1);
    size_t po = (size_t)(pos % PAGE), n = PAGE - po < (size_t)left ? PAGE - po : (size_t)left;
    if (n == PAGE) {
      if (f->stage_idx == idx) stage_drop(f);
      qrc = quire_writer_write(f->writer, idx, in);
    } else {
      if (f->stage_idx != idx) {
        qrc = stage_flush(f);
        if (!qrc) qrc = quire_writer_read(f->writer, idx, f->stage);
        if (!qrc) f->stage_idx = idx;
      }
      if (!qrc) {
        memcpy(f->stage + po, in, n);
        f->stage_dirty = 1;
      }
    }
    in += n, pos += n, left -= (int)n;
  }
  if (qrc)
    return fail(f, qs__sqlite_code(qrc, SQLITE_IOERR_WRITE), qrc, "write of volume page %u failed", idx);
  f->nwrites++;
  if (off == 0 && amt >= 40) {
    memcpy(f->vers, (const uint8_t *)buf + 24, 16);
    f->vers_known = 1;
  }
  return SQLITE_OK;
}

static int file_truncate(sqlite3_file *file, sqlite3_int64 size) {
  struct qs_file *f = (struct qs_file *)file;
  if (f->doomed) return SQLITE_OK;
  if (f->readonly || f->immutable) return SQLITE_READONLY;
  if (size < 0) return SQLITE_IOERR_TRUNCATE;
  /* Nothing to do (the size SQLite asks for is inside the last volume
   * page, whose tail is already zeros) needs no writer. */
  if (!f->writer) {
    quire_reader *r;
    int transient, rc = view_reader(f, &r, &transient);
    if (rc) return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_TRUNCATE), rc, "truncate: cannot read");
    quire_pagecount count = quire_reader_page_count(r);
    int same = (uint64_t)count == ((uint64_t)size + PAGE - 1) / PAGE;
    if (same && size % PAGE) {
      uint8_t page[PAGE];
      rc = quire_reader_read(r, count, page);
      for (size_t i = (size_t)(size % PAGE); !rc && same && i < PAGE; i++) same = !page[i];
    }
    if (transient) quire_reader_close(r);
    if (rc) return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_TRUNCATE), rc, "truncate: cannot read");
    if (same) return SQLITE_OK;
  }
  int rc = ensure_writer(f);
  if (rc) return rc;
  int qrc = writer_resize(f, (uint64_t)size);
  if (qrc)
    return fail(f, qs__sqlite_code(qrc, SQLITE_IOERR_TRUNCATE), qrc, "truncate to %llu bytes failed",
                (unsigned long long)size);
  f->nwrites++;
  return SQLITE_OK;
}

static int file_sync(sqlite3_file *file, int flags) {
  (void)file, (void)flags; /* the commit is at SQLITE_FCNTL_SYNC, sent just before */
  return SQLITE_OK;
}

static int file_size(sqlite3_file *file, sqlite3_int64 *size) {
  struct qs_file *f = (struct qs_file *)file;
  if (f->writer) {
    *size = (sqlite3_int64)writer_pages(f) * PAGE;
    return SQLITE_OK;
  }
  quire_reader *r;
  int transient, rc = view_reader(f, &r, &transient);
  if (rc) return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_FSTAT), rc, "cannot read the volume's size");
  *size = (sqlite3_int64)quire_reader_page_count(r) * PAGE;
  if (transient) quire_reader_close(r);
  if (!*size && f->check_version && !transient) {
    /* SQLite checks an empty file without the read at 24: its cache is
     * dropped or already empty. */
    f->check_version = 0;
    f->cache_lsn = f->lock_lsn;
  }
  return SQLITE_OK;
}

static int lock_shared(struct qs_file *f) {
  if (f->immutable) {
    quire_reader *r;
    int transient, rc = view_reader(f, &r, &transient);
    if (rc) return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_LOCK), rc, "cannot open a snapshot");
    return SQLITE_OK;
  }
  int rc = quire_reader_open(f->vol->v, &f->reader);
  if (rc) {
    f->reader = NULL;
    return fail(f, qs__sqlite_code(rc, SQLITE_IOERR_LOCK), rc, "cannot open a snapshot");
  }
  quire_lsn lsn = quire_reader_lsn(f->reader);
  f->check_version = f->cache_known && lsn != f->cache_lsn;
  QLOG_TRACE("quire sqlite: '%s' SHARED at lsn %llu (cache at %llu%s)", f->name, (unsigned long long)lsn,
             (unsigned long long)f->cache_lsn, f->check_version ? ": reload" : "");
  f->lock_lsn = lsn;
  if (!f->cache_known) f->cache_lsn = lsn; /* nothing cached yet */
  f->cache_known = 1;
  return SQLITE_OK;
}

static int lock_reserved(struct qs_file *f) {
  if (f->readonly || f->immutable) return SQLITE_READONLY;
  if (qs__vol_lock(f->vol, f) != SQLITE_OK) return SQLITE_BUSY;
  f->write_locked = 1;
  f->committed = f->doomed = 0;
  int rc;
  if (qs__vol_in_conflict(f->vol))
    rc =
        fail(f, SQLITE_BUSY_SNAPSHOT, 0,
             "the volume is in conflict (another client committed while local commits were unpushed): PRAGMA "
             "quire_reset drops them, PRAGMA quire_fork keeps them in a new volume");
  else
    rc = ensure_writer(f);
  if (rc) {
    qs__vol_unlock(f->vol, f);
    f->write_locked = 0;
  }
  return rc;
}

static int file_lock(sqlite3_file *file, int level) {
  struct qs_file *f = (struct qs_file *)file;
  if (level <= f->lock) return SQLITE_OK;
  int rc;
  if (f->lock == SQLITE_LOCK_NONE) {
    if ((rc = lock_shared(f)) != SQLITE_OK) return rc;
    f->lock = SQLITE_LOCK_SHARED;
  }
  /* RESERVED → EXCLUSIVE adds nothing: the write lock and the writer are
   * taken once (taking them again could fail — the volume fell into
   * conflict meanwhile — and leave the lock below RESERVED with the writer
   * open, which no unlock would then end). */
  if (level >= SQLITE_LOCK_RESERVED && f->lock < SQLITE_LOCK_RESERVED && !f->immutable) {
    if ((rc = lock_reserved(f)) != SQLITE_OK) return rc;
  }
  f->lock = level;
  return SQLITE_OK;
}

static int file_unlock(sqlite3_file *file, int level) {
  struct qs_file *f = (struct qs_file *)file;
  if (level >= f->lock) return SQLITE_OK;
  QLOG_TRACE("quire sqlite: '%s' unlock %d -> %d", f->name, f->lock, level);
  int rc = SQLITE_OK;
  if (f->lock >= SQLITE_LOCK_RESERVED || f->writer || f->write_locked) rc = end_write(f);
  if (level == SQLITE_LOCK_NONE) {
    quire_reader_close(f->reader);
    f->reader = NULL;
    f->check_version = 0;
  }
  f->lock = level;
  return rc;
}

static int file_check_reserved(sqlite3_file *file, int *out) {
  struct qs_file *f = (struct qs_file *)file;
  *out = qs__vol_locked(f->vol);
  return SQLITE_OK;
}

static int file_fcntl(sqlite3_file *file, int op, void *arg) {
  struct qs_file *f = (struct qs_file *)file;
  switch (op) {
  case SQLITE_FCNTL_PRAGMA: return qs__pragma(f, arg);
  case SQLITE_FCNTL_SYNC:
  case SQLITE_FCNTL_COMMIT_ATOMIC_WRITE:
    if (f->writer && f->lock >= SQLITE_LOCK_RESERVED) return commit_writer(f);
    return f->doomed && op == SQLITE_FCNTL_COMMIT_ATOMIC_WRITE ? SQLITE_BUSY_SNAPSHOT : SQLITE_OK;
  case SQLITE_FCNTL_COMMIT_PHASETWO:
    if (f->writer && f->committed && (f->nwrites || f->stage_dirty)) commit_writer(f); /* logged */
    return SQLITE_OK;
  case SQLITE_FCNTL_BEGIN_ATOMIC_WRITE:
    /* Pages already spilled: SQLite falls back to its journal. */
    return f->nwrites || f->stage_dirty || f->doomed ? SQLITE_IOERR_BEGIN_ATOMIC : SQLITE_OK;
  case SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE:
    if (f->writer) quire_writer_abort(f->writer);
    f->writer = NULL;
    f->nwrites = 0;
    stage_drop(f);
    return SQLITE_OK;
  case SQLITE_FCNTL_VFSNAME: *(char **)arg = sqlite3_mprintf("%s", QS_VFS_NAME); return SQLITE_OK;
  case SQLITE_FCNTL_SIZE_HINT:
  case SQLITE_FCNTL_CHUNK_SIZE: return SQLITE_OK;
  case SQLITE_FCNTL_HAS_MOVED: *(int *)arg = 0; return SQLITE_OK;
  case SQLITE_FCNTL_LOCKSTATE: *(int *)arg = f->lock; return SQLITE_OK;
  default: return SQLITE_NOTFOUND;
  }
}

static int file_sector(sqlite3_file *file) {
  (void)file;
  return PAGE;
}

/* BATCH_ATOMIC: a write transaction is one local commit or nothing. Not
 * ATOMIC: one write on its own is not durable until the commit. */
static int file_caps(sqlite3_file *file) {
  struct qs_file *f = (struct qs_file *)file;
  int caps = SQLITE_IOCAP_BATCH_ATOMIC | SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_SEQUENTIAL |
             SQLITE_IOCAP_POWERSAFE_OVERWRITE | SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN;
  return f->immutable ? caps | SQLITE_IOCAP_IMMUTABLE : caps;
}

const sqlite3_io_methods qs__file_methods = {
    .iVersion = 1,
    .xClose = file_close,
    .xRead = file_read,
    .xWrite = file_write,
    .xTruncate = file_truncate,
    .xSync = file_sync,
    .xFileSize = file_size,
    .xLock = file_lock,
    .xUnlock = file_unlock,
    .xCheckReservedLock = file_check_reserved,
    .xFileControl = file_fcntl,
    .xSectorSize = file_sector,
    .xDeviceCharacteristics = file_caps,
};

int qs__file_open(struct qs_file *f, const char *name, const struct qs_config *cfg, const char *vid,
                  int flags, char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  if (strlen(name) > QS_MAX_NAME) {
    snprintf(err, errlen, "quire: volume name longer than %d bytes", QS_MAX_NAME);
    return SQLITE_CANTOPEN;
  }
  snprintf(f->name, sizeof f->name, "%s", name);
  f->readonly = (flags & SQLITE_OPEN_READONLY) != 0;
  f->immutable = sqlite3_uri_boolean(name, "immutable", 0);
  unsigned qflags = f->readonly || f->immutable ? QUIRE_READONLY : 0;
  if ((flags & SQLITE_OPEN_CREATE) && !qflags && sqlite3_uri_boolean(name, "create", 1))
    qflags |= QUIRE_CREATE;
  if (!(f->stage = malloc(PAGE))) return SQLITE_NOMEM;
  int rc = qs__vol_acquire(cfg, name, vid, qflags, &f->vol, err, errlen);
  if (rc) {
    free(f->stage);
    f->stage = NULL;
    return rc;
  }
  f->base.pMethods = &qs__file_methods;
  return SQLITE_OK;
}

int qs__file_header(struct qs_file *f, uint8_t hdr[100]) { return file_read(&f->base, hdr, 100, 0); }
