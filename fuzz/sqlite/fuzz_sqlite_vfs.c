/*
 * fuzz/sqlite/fuzz_sqlite_vfs.c — the quire VFS's byte-offset mapping
 * against a plain-file model.
 *
 * Each input is a program of operations on one main-database file of the
 * quire VFS (a fresh volume of a local-only client): writes and reads at
 * any offset and of any size (inside a 4 KiB volume page, across several,
 * partial at both ends), truncations to any size, commits
 * (SQLITE_FCNTL_SYNC), rollbacks (unlock without it), the batch-atomic
 * controls, and checks through a second handle of what is committed. The
 * model is a byte array with the last committed copy beside it. The VFS's
 * file size is the model's size rounded up to 4 KiB (page_count x 4096),
 * and the slack reads as zeros; anything else is a finding (abort).
 *
 * Op encoding (one byte, then its arguments, little-endian):
 *   0 write  off:u24 len:u16 seed:u8     1 read  off:u24 len:u16
 *   2 truncate size:u24                  3 commit (SQLITE_FCNTL_SYNC)
 *   4 rollback (unlock to NONE)          5 check committed content (2nd handle)
 *   6 batch: BEGIN, writes as above, COMMIT or ROLLBACK by seed parity
 *   7 size check
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "quire/quire_sqlite.h"

#define PAGE 4096
#define MAX_OFF (300 * 1024)
#define MAX_LEN 70000
#define MAX_SIZE (MAX_OFF + MAX_LEN)

static sqlite3_vfs *vfs;

static void die(const char *what, long a, long b) {
  fprintf(stderr, "fuzz_sqlite_vfs: %s (%ld, %ld)\n", what, a, b);
  abort();
}

static void setup(void) {
  if (vfs) return;
  char dir[] = "/tmp/quire-fuzz-vfs.XXXXXX";
  if (!mkdtemp(dir)) die("mkdtemp", 0, 0);
  setenv("QUIRE_DATA_DIR", dir, 1);
  setenv("QUIRE_METASTORE", "none", 1);
  setenv("QUIRE_SYNC", "off", 1);
  if (quire_sqlite_register() != SQLITE_OK) die("register", 0, 0);
  vfs = sqlite3_vfs_find("quire");
  if (!vfs) die("no vfs", 0, 0);
}

struct in {
  const uint8_t *p;
  size_t n;
};

static unsigned take(struct in *in, int bytes) {
  unsigned v = 0;
  for (int i = 0; i < bytes; i++) {
    v |= (unsigned)(in->n ? *in->p : 0) << (8 * i);
    if (in->n) in->p++, in->n--;
  }
  return v;
}

struct model {
  uint8_t *cur, *committed;
  long size, committed_size;
};

static long round_up(long n) { return (n + PAGE - 1) / PAGE * PAGE; }

/* name must be a filename as SQLite hands them to xOpen (URI parameters
 * after it): made with sqlite3_create_filename. */
static sqlite3_file *open_file(sqlite3_filename name) {
  sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile);
  int flags = SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (!f || vfs->xOpen(vfs, name, f, flags, &flags) != SQLITE_OK) die("open", 0, 0);
  return f;
}

static void close_file(sqlite3_file *f) {
  if (f->pMethods->xClose(f) != SQLITE_OK) die("close", 0, 0);
  free(f);
}

static void lock_write(sqlite3_file *f) {
  if (f->pMethods->xLock(f, SQLITE_LOCK_SHARED) != SQLITE_OK) die("lock shared", 0, 0);
  if (f->pMethods->xLock(f, SQLITE_LOCK_RESERVED) != SQLITE_OK) die("lock reserved", 0, 0);
  if (f->pMethods->xLock(f, SQLITE_LOCK_EXCLUSIVE) != SQLITE_OK) die("lock exclusive", 0, 0);
}

static void do_write(sqlite3_file *f, struct model *m, long off, long len, unsigned seed) {
  uint8_t *buf = malloc((size_t)len);
  for (long i = 0; i < len; i++) buf[i] = (uint8_t)(seed + (unsigned)i * 31u + (unsigned)(i >> 8));
  if (f->pMethods->xWrite(f, buf, (int)len, off) != SQLITE_OK) die("write", off, len);
  if (off > m->size) memset(m->cur + m->size, 0, (size_t)(off - m->size));
  memcpy(m->cur + off, buf, (size_t)len);
  if (off + len > m->size) m->size = off + len;
  free(buf);
}

/* Reads [off, off+len) and compares with the model (size: its logical
 * size; bytes past it up to the next 4 KiB are zeros). */
static void check_read(sqlite3_file *f, const uint8_t *model, long size, long off, long len) {
  uint8_t *buf = malloc((size_t)len);
  memset(buf, 0xee, (size_t)len);
  int rc = f->pMethods->xRead(f, buf, (int)len, off);
  long end = round_up(size);
  int want = off + len > end ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
  if (rc != want) die("read result", rc, want);
  for (long i = 0; i < len; i++) {
    long at = off + i;
    uint8_t expect = at < size ? model[at] : 0;
    if (buf[i] != expect) die("read byte", at, buf[i]);
  }
  free(buf);
}

static void check_size(sqlite3_file *f, long size) {
  sqlite3_int64 got;
  if (f->pMethods->xFileSize(f, &got) != SQLITE_OK) die("size", 0, 0);
  if (got != round_up(size)) die("size", (long)got, round_up(size));
}

static void truncate_model(struct model *m, long size) {
  if (size < m->size) memset(m->cur + size, 0, (size_t)(m->size - size));
  if (size > m->size) memset(m->cur + m->size, 0, (size_t)(size - m->size));
  m->size = size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned long counter;
  setup();
  char text[64];
  snprintf(text, sizeof text, "fuzz-%d-%lu", getpid(), counter++);
  sqlite3_filename name = sqlite3_create_filename(text, "", "", 0, NULL);
  struct model m = {calloc(1, MAX_SIZE), calloc(1, MAX_SIZE), 0, 0};
  sqlite3_file *f = open_file(name);
  struct in in = {data, size};
  int locked = 0, ops = 0;
  while (in.n && ops++ < 64) {
    unsigned op = take(&in, 1) % 8;
    if (!locked && op != 5) {
      lock_write(f);
      locked = 1;
    }
    switch (op) {
    case 0: {
      long off = take(&in, 3) % MAX_OFF, len = 1 + take(&in, 2) % MAX_LEN;
      do_write(f, &m, off, len, take(&in, 1));
      break;
    }
    case 1: {
      long off = take(&in, 3) % MAX_OFF, len = 1 + take(&in, 2) % MAX_LEN;
      check_read(f, m.cur, m.size, off, len);
      break;
    }
    case 2: {
      long to = take(&in, 3) % MAX_SIZE;
      if (f->pMethods->xTruncate(f, to) != SQLITE_OK) die("truncate", to, 0);
      /* The file keeps whole volume pages: a truncation inside the last
       * one zeroes its tail, so the model is the same bytes to `to`. */
      truncate_model(&m, to);
      break;
    }
    case 3:
      if (f->pMethods->xFileControl(f, SQLITE_FCNTL_SYNC, NULL) != SQLITE_OK) die("commit", 0, 0);
      if (f->pMethods->xUnlock(f, SQLITE_LOCK_NONE) != SQLITE_OK) die("unlock", 0, 0);
      locked = 0;
      memcpy(m.committed, m.cur, MAX_SIZE);
      m.committed_size = m.size;
      break;
    case 4:
      if (f->pMethods->xUnlock(f, SQLITE_LOCK_NONE) != SQLITE_OK) die("unlock", 0, 0);
      locked = 0;
      memcpy(m.cur, m.committed, MAX_SIZE);
      m.size = m.committed_size;
      break;
    case 5: {
      sqlite3_file *g = open_file(name);
      if (g->pMethods->xLock(g, SQLITE_LOCK_SHARED) != SQLITE_OK) die("lock 2", 0, 0);
      check_size(g, m.committed_size);
      long off = take(&in, 3) % MAX_OFF, len = 1 + take(&in, 2) % MAX_LEN;
      check_read(g, m.committed, m.committed_size, off, len);
      check_read(g, m.committed, m.committed_size, 0, round_up(m.committed_size) + 1);
      close_file(g);
      break;
    }
    case 6: {
      unsigned seed = take(&in, 1);
      int dummy = 0, spilled = 0;
      /* After a commit in this lock, SQLite would not batch; nor with
       * writes already spilled: the VFS says so and the batch is skipped. */
      int rc = f->pMethods->xFileControl(f, SQLITE_FCNTL_BEGIN_ATOMIC_WRITE, &dummy);
      if (rc == SQLITE_IOERR_BEGIN_ATOMIC)
        spilled = 1;
      else if (rc != SQLITE_OK)
        die("begin atomic", rc, 0);
      if (spilled) break;
      uint8_t *save = malloc(MAX_SIZE);
      memcpy(save, m.cur, MAX_SIZE);
      long save_size = m.size;
      for (unsigned k = 0; k < 1 + seed % 3; k++) {
        long off = take(&in, 3) % MAX_OFF, len = 1 + take(&in, 2) % MAX_LEN;
        do_write(f, &m, off, len, seed + k);
      }
      if (seed & 1) {
        if (f->pMethods->xFileControl(f, SQLITE_FCNTL_COMMIT_ATOMIC_WRITE, &dummy) != SQLITE_OK)
          die("commit atomic", 0, 0);
        if (f->pMethods->xUnlock(f, SQLITE_LOCK_NONE) != SQLITE_OK) die("unlock", 0, 0);
        locked = 0;
        memcpy(m.committed, m.cur, MAX_SIZE);
        m.committed_size = m.size;
      } else {
        f->pMethods->xFileControl(f, SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE, &dummy);
        memcpy(m.cur, save, MAX_SIZE);
        m.size = save_size;
      }
      free(save);
      break;
    }
    case 7: check_size(f, m.size); break;
    }
  }
  if (locked && f->pMethods->xUnlock(f, SQLITE_LOCK_NONE) != SQLITE_OK) die("unlock", 0, 0);
  close_file(f);
  sqlite3_free_filename(name);
  free(m.cur);
  free(m.committed);
  return 0;
}
