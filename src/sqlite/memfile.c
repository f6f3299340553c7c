/*
 * sqlite/memfile.c — the in-memory files that stand in for rollback
 * journals, statement and sub-journals, super-journals and temp databases.
 *
 * A quire write transaction is buffered in a quire_writer and becomes one
 * local commit or nothing, so a journal only has to serve SQLite's own
 * in-process rollback; it never has to survive a crash. Keeping it in
 * memory means there is never a hot journal to find and no file next to a
 * name that is not a path. Each handle owns its bytes (freed at close), in
 * 64 KiB chunks so that a large temp file never needs one big realloc.
 */
#include <stdlib.h>
#include <string.h>

#include "sqlite/qs_int.h"

#define CHUNK (64 * 1024)

struct qs_memfile {
  sqlite3_file base;
  uint8_t **chunks; /* chunks[i] covers [i*CHUNK, (i+1)*CHUNK); NULL: zeros */
  size_t nchunks;
  sqlite3_int64 size;
};

static int mem_close(sqlite3_file *file) {
  struct qs_memfile *m = (struct qs_memfile *)file;
  for (size_t i = 0; i < m->nchunks; i++) free(m->chunks[i]);
  free(m->chunks);
  m->chunks = NULL;
  m->nchunks = 0;
  m->size = 0;
  return SQLITE_OK;
}

static int mem_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off) {
  struct qs_memfile *m = (struct qs_memfile *)file;
  uint8_t *out = buf;
  int rc = SQLITE_OK;
  if (off + amt > m->size) {
    rc = SQLITE_IOERR_SHORT_READ;
    sqlite3_int64 have = m->size > off ? m->size - off : 0;
    memset(out + have, 0, (size_t)(amt - have));
    amt = (int)have;
  }
  while (amt > 0) {
    size_t ci = (size_t)(off / CHUNK), co = (size_t)(off % CHUNK);
    size_t n = CHUNK - co < (size_t)amt ? CHUNK - co : (size_t)amt;
    if (ci < m->nchunks && m->chunks[ci])
      memcpy(out, m->chunks[ci] + co, n);
    else
      memset(out, 0, n);
    out += n, off += (sqlite3_int64)n, amt -= (int)n;
  }
  return rc;
}

static int mem_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off) {
  struct qs_memfile *m = (struct qs_memfile *)file;
  const uint8_t *in = buf;
  sqlite3_int64 end = off + amt;
  size_t need = (size_t)((end + CHUNK - 1) / CHUNK);
  if (need > m->nchunks) {
    uint8_t **c = realloc(m->chunks, need * sizeof *c);
    if (!c) return SQLITE_IOERR_NOMEM;
    memset(c + m->nchunks, 0, (need - m->nchunks) * sizeof *c);
    m->chunks = c;
    m->nchunks = need;
  }
  while (amt > 0) {
    size_t ci = (size_t)(off / CHUNK), co = (size_t)(off % CHUNK);
    size_t n = CHUNK - co < (size_t)amt ? CHUNK - co : (size_t)amt;
    if (!m->chunks[ci] && !(m->chunks[ci] = calloc(1, CHUNK))) return SQLITE_IOERR_NOMEM;
    memcpy(m->chunks[ci] + co, in, n);
    in += n, off += (sqlite3_int64)n, amt -= (int)n;
  }
  if (end > m->size) m->size = end;
  return SQLITE_OK;
}

static int mem_truncate(sqlite3_file *file, sqlite3_int64 size) {
  struct qs_memfile *m = (struct qs_memfile *)file;
  if (size >= m->size) return SQLITE_OK;
  size_t keep = (size_t)((size + CHUNK - 1) / CHUNK);
  for (size_t i = keep; i < m->nchunks; i++) {
    free(m->chunks[i]);
    m->chunks[i] = NULL;
  }
  /* Bytes past the end read as zeros if the file grows again. */
  if (size % CHUNK && keep - 1 < m->nchunks && m->chunks[keep - 1])
    memset(m->chunks[keep - 1] + size % CHUNK, 0, CHUNK - (size_t)(size % CHUNK));
  m->size = size;
  return SQLITE_OK;
}

static int mem_sync(sqlite3_file *file, int flags) {
  (void)file, (void)flags;
  return SQLITE_OK;
}

static int mem_size(sqlite3_file *file, sqlite3_int64 *size) {
  *size = ((struct qs_memfile *)file)->size;
  return SQLITE_OK;
}

static int mem_lock(sqlite3_file *file, int level) {
  (void)file, (void)level;
  return SQLITE_OK;
}

static int mem_check_reserved(sqlite3_file *file, int *out) {
  (void)file;
  *out = 0;
  return SQLITE_OK;
}

static int mem_fcntl(sqlite3_file *file, int op, void *arg) {
  (void)file;
  if (op == SQLITE_FCNTL_VFSNAME) {
    *(char **)arg = sqlite3_mprintf("%s", QS_VFS_NAME);
    return SQLITE_OK;
  }
  return SQLITE_NOTFOUND;
}

static int mem_sector(sqlite3_file *file) {
  (void)file;
  return 512;
}

static int mem_caps(sqlite3_file *file) {
  (void)file;
  return SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_SEQUENTIAL | SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

const sqlite3_io_methods qs__memfile_methods = {
    .iVersion = 1,
    .xClose = mem_close,
    .xRead = mem_read,
    .xWrite = mem_write,
    .xTruncate = mem_truncate,
    .xSync = mem_sync,
    .xFileSize = mem_size,
    .xLock = mem_lock,
    .xUnlock = mem_lock,
    .xCheckReservedLock = mem_check_reserved,
    .xFileControl = mem_fcntl,
    .xSectorSize = mem_sector,
    .xDeviceCharacteristics = mem_caps,
};

int qs__memfile_open(sqlite3_file *file) {
  struct qs_memfile *m = (struct qs_memfile *)file;
  memset(m, 0, sizeof *m);
  m->base.pMethods = &qs__memfile_methods;
  return SQLITE_OK;
}

/* szOsFile must hold either kind of file. */
_Static_assert(sizeof(struct qs_memfile) <= sizeof(struct qs_file), "qs_file is the larger file");
