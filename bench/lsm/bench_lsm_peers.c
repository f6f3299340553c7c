/*
 * bench/lsm/bench_lsm_peers.c — db_bench-style comparison of the quire LSM
 * engine with LevelDB, RocksDB and LMDB: one process, one run, one machine,
 * the same keys and values for every engine, printed as a table with ratios
 * (docs/BENCH_LSM.md explains every row and measure).
 *
 * Engines sit behind one small vtable (open, put, delete, get, scan, seek,
 * close) and use only their C APIs. Each engine runs the whole row list in
 * turn (engine-major), in a fresh directory per database; one write batch
 * is one put, as db_bench does with its default batch size of 1.
 *
 * usage: bench_lsm_peers [--num N] [--num4k N] [--value-size B] [--short] [--strict]
 *                        [--engines quire,leveldb,rocksdb,lmdb]
 *                        [--rows fillseq,...] [--dir DIR]
 *                        [--quire-merge-threads N] [--quire-wal-pages N] [--quire-memtable-mib N]
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "quire/lsm.h"

#if QB_HAVE_LEVELDB
#include <leveldb/c.h>
#endif
#if QB_HAVE_ROCKSDB
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <rocksdb/c.h>
#pragma GCC diagnostic pop
#endif
#if QB_HAVE_LMDB
#include <lmdb.h>
#endif

#define KEY_LEN 16
#define FILLSYNC_OPS 10000u
/* the client's page keys: {16-byte volume id}{page index BE32}{lsn BE64} */
#define PAGE_KEY_LEN 28
#define PAGE_KEY_MAX 64

static char top_dir[PATH_MAX]; /* the run's temp directory, removed by die() too */
static void rm_rf(const char *dir);

static void die(const char *fmt, ...) {
  static int dying;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench_lsm_peers: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (!dying++ && top_dir[0]) rm_rf(top_dir);
  exit(1);
}

/* An engine call that fails inside a row (a bug or a full disk) does not end
 * the run: it jumps back to run_engine, which marks the row failed, closes
 * the database if it can and goes on with the next row. */
static jmp_buf *row_jmp; /* where eng_fail jumps while row_jmp_armed */
static int row_jmp_armed;
static char row_err[512];

static void eng_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(row_err, sizeof row_err, fmt, ap);
  va_end(ap);
  if (!row_jmp_armed) die("%s", row_err);
  row_jmp_armed = 0;
  longjmp(*row_jmp, 1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: the same fixed-seed sequence for every engine */
typedef struct {
  uint64_t s;
} prng;
static uint64_t prng_next(prng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ull;
}
static uint64_t prng_below(prng *r, uint64_t n) { return prng_next(r) % n; }

/* db_bench keys: the zero-padded decimal of the index, 16 bytes. */
static void key_of(uint64_t i, char *k) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%016" PRIu64, i);
  memcpy(k, tmp, KEY_LEN);
}

/* db_bench values: a 1 MiB buffer of 100-byte pieces, each 50 random
 * printable bytes written twice (compression ratio ~0.5); value i is the
 * next slice of the buffer, wrapping. */
typedef struct {
  char *buf;
  size_t len, pos;
} valgen;
static void valgen_init(valgen *g, size_t max_value) {
  g->len = ((size_t)1 << 20) + max_value;
  g->buf = malloc(g->len);
  if (!g->buf) die("out of memory");
  prng r = {301};
  for (size_t off = 0; off < g->len; off += 100) {
    char piece[50];
    for (int i = 0; i < 50; i++) piece[i] = (char)(' ' + prng_below(&r, 95));
    for (size_t i = 0; i < 100 && off + i < g->len; i++) g->buf[off + i] = piece[i % 50];
  }
  g->pos = 0;
}
static const char *valgen_next(valgen *g, size_t n) {
  if (g->pos + n > g->len) g->pos = 0;
  const char *p = g->buf + g->pos;
  g->pos += n;
  return p;
}

/* bytes passed to write()/pwrite()/writev() by the whole process so far */
static uint64_t proc_wchar(void) {
  FILE *f = fopen("/proc/self/io", "r");
  if (!f) return 0;
  char line[128];
  uint64_t v = 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "wchar:", 6)) v = strtoull(line + 6, NULL, 10);
  fclose(f);
  return v;
}

static uint64_t du_total;
static int du_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)p, (void)flag, (void)ftw;
  du_total += (uint64_t)sb->st_blocks * 512u;
  return 0;
}
/* allocated bytes of every file under dir */
static uint64_t dir_bytes(const char *dir) {
  du_total = 0;
  if (nftw(dir, du_one, 16, FTW_PHYS) != 0) return 0;
  return du_total;
}
static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}
static void rm_rf(const char *dir) {
  struct stat st;
  if (lstat(dir, &st) != 0) return;
  if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) die("cannot remove %s: %s", dir, strerror(errno));
}

/* ------------------------------------------------------------------------- */
/* the engine vtable                                                          */

typedef struct engine engine;
typedef struct engine_vt {
  const char *name;
  /* opens (creating) a database in the existing empty directory dir;
   * sync_each = make every write durable before it returns */
  engine *(*open)(const char *dir, int sync_each);
  void (*put)(engine *e, const char *k, size_t kl, const char *v, size_t vl);
  void (*del)(engine *e, const char *k, size_t kl);
  /* 1 when found (*vlen = value length, value bytes touched), else 0 */
  int (*get)(engine *e, const char *k, size_t kl, size_t *vlen);
  /* visits every entry forward or backward, touching key and value; returns
   * the count and adds key+value bytes to *bytes */
  uint64_t (*scan)(engine *e, int reverse, uint64_t *bytes);
  /* a new iterator positioned at the first key >= k (key and value read);
   * 1 when that key equals k */
  int (*seek)(engine *e, const char *k, size_t kl);
  /* the largest key <= k (key copied into kout, at most PAGE_KEY_MAX bytes,
   * value touched): 1 when there is one (the client's page read, "the
   * newest version at or below an LSN"), else 0 */
  int (*seek_le)(engine *e, const char *k, size_t kl, char *kout, size_t *koutl, size_t *vlen);
  void (*close)(engine *e);
  const char *(*version)(void);
  /* the engine's own count of bytes written to its files since open, or
   * NULL when it keeps none (cross-checks the wchar measure) */
  uint64_t (*own_written)(engine *e);
  /* a one-line summary of the engine's internal counters, or NULL */
  void (*describe)(engine *e, char *buf, size_t n);
} engine_vt;

struct engine {
  int unused_; /* each implementation's struct starts with this */
};

static uint64_t touch(const void *p, size_t n) {
  /* read the first and last byte so the value is really fetched */
  const unsigned char *b = p;
  return n ? (uint64_t)b[0] + b[n - 1] : 0;
}
static volatile uint64_t sink;

/* --- quire --------------------------------------------------------------- */

typedef struct {
  engine base;
  lsm_db *db;
} quire_eng;

/* quire tuning knobs for experiments; 0 = the engine's default */
static unsigned quire_merge_threads; /* --quire-merge-threads */
static uint32_t quire_wal_pages;     /* --quire-wal-pages */
static uint64_t quire_mem_bytes;     /* --quire-memtable-mib (in bytes) */

static void qdie(const char *what, int rc) {
  eng_fail("quire %s: %s (%s)", what, quire_strerror(rc), quire_errmsg());
}

static engine *quire_open(const char *dir, int sync_each) {
  quire_eng *e = calloc(1, sizeof *e);
  if (!e) die("out of memory");
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/quire.db", dir);
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = sync_each ? LSM_SYNC_FULL : LSM_SYNC_NORMAL;
  o.merge_threads = quire_merge_threads;
  o.wal_pages = quire_wal_pages;
  o.memtable_bytes = (size_t)quire_mem_bytes;
  int rc = lsm_open(path, &o, &e->db);
  if (rc) qdie("open", rc);
  return &e->base;
}
static void quire_put(engine *b, const char *k, size_t kl, const char *v, size_t vl) {
  quire_eng *e = (quire_eng *)b;
  lsm_txn *t;
  int rc;
  if ((rc = lsm_txn_begin(e->db, 0, &t))) qdie("begin", rc);
  if ((rc = lsm_txn_put(t, k, kl, v, vl))) {
    lsm_txn_abort(t);
    qdie("put", rc);
  }
  if ((rc = lsm_txn_commit(t))) qdie("commit", rc);
}
static void quire_del(engine *b, const char *k, size_t kl) {
  quire_eng *e = (quire_eng *)b;
  lsm_txn *t;
  int rc;
  if ((rc = lsm_txn_begin(e->db, 0, &t))) qdie("begin", rc);
  if ((rc = lsm_txn_delete(t, k, kl))) {
    lsm_txn_abort(t);
    qdie("delete", rc);
  }
  if ((rc = lsm_txn_commit(t))) qdie("commit", rc);
}
static int quire_get(engine *b, const char *k, size_t kl, size_t *vlen) {
  quire_eng *e = (quire_eng *)b;
  lsm_value v;
  int rc = lsm_get(e->db, k, kl, &v);
  if (rc == QUIRE_ENOTFOUND) return 0;
  if (rc) qdie("get", rc);
  *vlen = v.len;
  sink += touch(v.data, v.len);
  lsm_value_release(&v);
  return 1;
}
static uint64_t quire_scan(engine *b, int reverse, uint64_t *bytes) {
  quire_eng *e = (quire_eng *)b;
  lsm_cursor *c;
  int rc;
  uint64_t n = 0, acc = 0;
  if ((rc = lsm_cursor_open(e->db, &c))) qdie("cursor", rc);
  for (rc = reverse ? lsm_cursor_last(c) : lsm_cursor_first(c); rc == 0;
       rc = reverse ? lsm_cursor_prev(c) : lsm_cursor_next(c)) {
    const void *k, *v;
    size_t kl, vl;
    if ((rc = lsm_cursor_key(c, &k, &kl)) || (rc = lsm_cursor_value(c, &v, &vl))) break;
    acc += touch(k, kl) + touch(v, vl);
    *bytes += kl + vl;
    n++;
  }
  lsm_cursor_close(c);
  if (rc != QUIRE_EEND) qdie("scan", rc);
  sink += acc;
  return n;
}
static int quire_seek(engine *b, const char *k, size_t kl) {
  quire_eng *e = (quire_eng *)b;
  lsm_cursor *c;
  int rc, eq = 0;
  if ((rc = lsm_cursor_open(e->db, &c))) qdie("cursor", rc);
  rc = lsm_cursor_seek(c, k, kl, LSM_SEEK_GE);
  if (rc == 0) {
    const void *ck, *cv;
    size_t ckl, cvl;
    if ((rc = lsm_cursor_key(c, &ck, &ckl)) == 0 && (rc = lsm_cursor_value(c, &cv, &cvl)) == 0) {
      eq = ckl == kl && memcmp(ck, k, kl) == 0;
      sink += touch(cv, cvl);
    }
  } else if (rc == QUIRE_ENOTFOUND) {
    rc = 0;
  }
  lsm_cursor_close(c);
  if (rc) qdie("seek", rc);
  return eq;
}
static int quire_seek_le(engine *b, const char *k, size_t kl, char *kout, size_t *koutl, size_t *vlen) {
  quire_eng *e = (quire_eng *)b;
  lsm_value v;
  int rc = lsm_get_seek(e->db, k, kl, LSM_SEEK_LE, kout, PAGE_KEY_MAX, koutl, &v);
  if (rc == QUIRE_ENOTFOUND) return 0;
  if (rc) qdie("get_seek", rc);
  *vlen = v.len;
  sink += touch(v.data, v.len);
  lsm_value_release(&v);
  return 1;
}
static void quire_close(engine *b) {
  quire_eng *e = (quire_eng *)b;
  int rc = lsm_close(e->db);
  free(e);
  if (rc) qdie("close", rc);
}
static const char *qe_version(void) { return "this tree"; }
static void quire_describe(engine *b, char *buf, size_t n) {
  quire_eng *e = (quire_eng *)b;
  lsm_stats st;
  int rc = lsm_stats_get(e->db, &st);
  if (rc) qdie("stats", rc);
  int at =
      snprintf(buf, n,
               "flushes %" PRIu64 ", merges %" PRIu64 " (full %" PRIu64 ", partial %" PRIu64
               ", moved %" PRIu64 "), merge pages written %" PRIu64 ", stalls %" PRIu64 " (%.1f s); levels:",
               st.flushes, st.merges, st.merges_full, st.merges_partial, st.merges_moved,
               st.merge_pages_written, st.stalls, (double)st.stall_us / 1e6);
  for (uint32_t i = 0; i < st.nlevels && i < LSM_STATS_LEVELS && at > 0 && (size_t)at < n; i++)
    if (st.level[i].segments)
      at += snprintf(buf + at, n - (size_t)at, " %s %u seg %.1f MiB", st.level[i].name, st.level[i].segments,
                     (double)st.level[i].bytes / 1048576.0);
}
static uint64_t quire_own_written(engine *b) {
  quire_eng *e = (quire_eng *)b;
  lsm_stats st;
  int rc = lsm_stats_get(e->db, &st);
  if (rc) qdie("stats", rc);
  return st.bytes_written;
}
static const engine_vt quire_vt = {"quire",     quire_open, quire_put,         quire_del,
                                   quire_get,   quire_scan, quire_seek,        quire_seek_le,
                                   quire_close, qe_version, quire_own_written, quire_describe};

/* --- LevelDB ------------------------------------------------------------- */
#if QB_HAVE_LEVELDB
typedef struct {
  engine base;
  leveldb_t *db;
  leveldb_options_t *opts;
  leveldb_writeoptions_t *wo;
  leveldb_readoptions_t *ro;
} ldb_eng;

static void ldb_check(const char *what, char *err) {
  if (err) eng_fail("leveldb %s: %s", what, err);
}
static engine *ldb_open(const char *dir, int sync_each) {
  ldb_eng *e = calloc(1, sizeof *e);
  if (!e) die("out of memory");
  char *err = NULL;
  e->opts = leveldb_options_create();
  leveldb_options_set_create_if_missing(e->opts, 1);
  e->db = leveldb_open(e->opts, dir, &err);
  ldb_check("open", err);
  e->wo = leveldb_writeoptions_create();
  leveldb_writeoptions_set_sync(e->wo, (unsigned char)(sync_each != 0));
  e->ro = leveldb_readoptions_create();
  return &e->base;
}
static void ldb_put(engine *b, const char *k, size_t kl, const char *v, size_t vl) {
  ldb_eng *e = (ldb_eng *)b;
  char *err = NULL;
  leveldb_put(e->db, e->wo, k, kl, v, vl, &err);
  ldb_check("put", err);
}
static void ldb_del(engine *b, const char *k, size_t kl) {
  ldb_eng *e = (ldb_eng *)b;
  char *err = NULL;
  leveldb_delete(e->db, e->wo, k, kl, &err);
  ldb_check("delete", err);
}
static int ldb_get(engine *b, const char *k, size_t kl, size_t *vlen) {
  ldb_eng *e = (ldb_eng *)b;
  char *err = NULL;
  char *v = leveldb_get(e->db, e->ro, k, kl, vlen, &err);
  ldb_check("get", err);
  if (!v) return 0;
  sink += touch(v, *vlen);
  leveldb_free(v);
  return 1;
}
static uint64_t ldb_scan(engine *b, int reverse, uint64_t *bytes) {
  ldb_eng *e = (ldb_eng *)b;
  leveldb_iterator_t *it = leveldb_create_iterator(e->db, e->ro);
  uint64_t n = 0, acc = 0;
  if (reverse)
    leveldb_iter_seek_to_last(it);
  else
    leveldb_iter_seek_to_first(it);
  while (leveldb_iter_valid(it)) {
    size_t kl, vl;
    const char *k = leveldb_iter_key(it, &kl), *v = leveldb_iter_value(it, &vl);
    acc += touch(k, kl) + touch(v, vl);
    *bytes += kl + vl;
    n++;
    if (reverse)
      leveldb_iter_prev(it);
    else
      leveldb_iter_next(it);
  }
  char *err = NULL;
  leveldb_iter_get_error(it, &err);
  ldb_check("iterate", err);
  leveldb_iter_destroy(it);
  sink += acc;
  return n;
}
static int ldb_seek(engine *b, const char *k, size_t kl) {
  ldb_eng *e = (ldb_eng *)b;
  leveldb_iterator_t *it = leveldb_create_iterator(e->db, e->ro);
  int eq = 0;
  leveldb_iter_seek(it, k, kl);
  if (leveldb_iter_valid(it)) {
    size_t ckl, cvl;
    const char *ck = leveldb_iter_key(it, &ckl), *cv = leveldb_iter_value(it, &cvl);
    eq = ckl == kl && memcmp(ck, k, kl) == 0;
    sink += touch(cv, cvl);
  }
  leveldb_iter_destroy(it);
  return eq;
}
/* LevelDB has no SeekForPrev: Seek, then Prev unless the key is exact (or
 * SeekToLast past the end), as its users do. */
static int ldb_seek_le(engine *b, const char *k, size_t kl, char *kout, size_t *koutl, size_t *vlen) {
  ldb_eng *e = (ldb_eng *)b;
  leveldb_iterator_t *it = leveldb_create_iterator(e->db, e->ro);
  int found = 0;
  leveldb_iter_seek(it, k, kl);
  if (!leveldb_iter_valid(it)) {
    leveldb_iter_seek_to_last(it);
  } else {
    size_t ckl;
    const char *ck = leveldb_iter_key(it, &ckl);
    if (!(ckl == kl && memcmp(ck, k, kl) == 0)) leveldb_iter_prev(it);
  }
  if (leveldb_iter_valid(it)) {
    size_t ckl;
    const char *ck = leveldb_iter_key(it, &ckl), *cv = leveldb_iter_value(it, vlen);
    if (ckl > PAGE_KEY_MAX) ckl = PAGE_KEY_MAX;
    memcpy(kout, ck, ckl);
    *koutl = ckl;
    sink += touch(cv, *vlen);
    found = 1;
  }
  leveldb_iter_destroy(it);
  return found;
}
static void ldb_close(engine *b) {
  ldb_eng *e = (ldb_eng *)b;
  leveldb_close(e->db);
  leveldb_writeoptions_destroy(e->wo);
  leveldb_readoptions_destroy(e->ro);
  leveldb_options_destroy(e->opts);
  free(e);
}
static const char *ldb_version(void) {
  static char v[32];
  snprintf(v, sizeof v, "%d.%d", leveldb_major_version(), leveldb_minor_version());
  return v;
}
static const engine_vt ldb_vt = {"leveldb", ldb_open, ldb_put,     ldb_del,   ldb_get,
                                 ldb_scan,  ldb_seek, ldb_seek_le, ldb_close, ldb_version};
#endif

/* --- RocksDB ------------------------------------------------------------- */
#if QB_HAVE_ROCKSDB
typedef struct {
  engine base;
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_writeoptions_t *wo;
  rocksdb_readoptions_t *ro;
} rdb_eng;

static void rdb_check(const char *what, char *err) {
  if (err) eng_fail("rocksdb %s: %s", what, err);
}
static engine *rdb_open(const char *dir, int sync_each) {
  rdb_eng *e = calloc(1, sizeof *e);
  if (!e) die("out of memory");
  char *err = NULL;
  e->opts = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(e->opts, 1);
  e->db = rocksdb_open(e->opts, dir, &err);
  rdb_check("open", err);
  e->wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(e->wo, (unsigned char)(sync_each != 0));
  e->ro = rocksdb_readoptions_create();
  return &e->base;
}
static void rdb_put(engine *b, const char *k, size_t kl, const char *v, size_t vl) {
  rdb_eng *e = (rdb_eng *)b;
  char *err = NULL;
  rocksdb_put(e->db, e->wo, k, kl, v, vl, &err);
  rdb_check("put", err);
}
static void rdb_del(engine *b, const char *k, size_t kl) {
  rdb_eng *e = (rdb_eng *)b;
  char *err = NULL;
  rocksdb_delete(e->db, e->wo, k, kl, &err);
  rdb_check("delete", err);
}
static int rdb_get(engine *b, const char *k, size_t kl, size_t *vlen) {
  rdb_eng *e = (rdb_eng *)b;
  char *err = NULL;
  rocksdb_pinnableslice_t *p = rocksdb_get_pinned(e->db, e->ro, k, kl, &err);
  rdb_check("get", err);
  if (!p) return 0;
  const char *v = rocksdb_pinnableslice_value(p, vlen);
  int found = v != NULL;
  if (found) sink += touch(v, *vlen);
  rocksdb_pinnableslice_destroy(p);
  return found;
}
static uint64_t rdb_scan(engine *b, int reverse, uint64_t *bytes) {
  rdb_eng *e = (rdb_eng *)b;
  rocksdb_iterator_t *it = rocksdb_create_iterator(e->db, e->ro);
  uint64_t n = 0, acc = 0;
  if (reverse)
    rocksdb_iter_seek_to_last(it);
  else
    rocksdb_iter_seek_to_first(it);
  while (rocksdb_iter_valid(it)) {
    size_t kl, vl;
    const char *k = rocksdb_iter_key(it, &kl), *v = rocksdb_iter_value(it, &vl);
    acc += touch(k, kl) + touch(v, vl);
    *bytes += kl + vl;
    n++;
    if (reverse)
      rocksdb_iter_prev(it);
    else
      rocksdb_iter_next(it);
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  rdb_check("iterate", err);
  rocksdb_iter_destroy(it);
  sink += acc;
  return n;
}
static int rdb_seek(engine *b, const char *k, size_t kl) {
  rdb_eng *e = (rdb_eng *)b;
  rocksdb_iterator_t *it = rocksdb_create_iterator(e->db, e->ro);
  int eq = 0;
  rocksdb_iter_seek(it, k, kl);
  if (rocksdb_iter_valid(it)) {
    size_t ckl, cvl;
    const char *ck = rocksdb_iter_key(it, &ckl), *cv = rocksdb_iter_value(it, &cvl);
    eq = ckl == kl && memcmp(ck, k, kl) == 0;
    sink += touch(cv, cvl);
  }
  rocksdb_iter_destroy(it);
  return eq;
}
static int rdb_seek_le(engine *b, const char *k, size_t kl, char *kout, size_t *koutl, size_t *vlen) {
  rdb_eng *e = (rdb_eng *)b;
  rocksdb_iterator_t *it = rocksdb_create_iterator(e->db, e->ro);
  int found = 0;
  rocksdb_iter_seek_for_prev(it, k, kl);
  if (rocksdb_iter_valid(it)) {
    size_t ckl;
    const char *ck = rocksdb_iter_key(it, &ckl), *cv = rocksdb_iter_value(it, vlen);
    if (ckl > PAGE_KEY_MAX) ckl = PAGE_KEY_MAX;
    memcpy(kout, ck, ckl);
    *koutl = ckl;
    sink += touch(cv, *vlen);
    found = 1;
  }
  rocksdb_iter_destroy(it);
  return found;
}
static void rdb_close(engine *b) {
  rdb_eng *e = (rdb_eng *)b;
  rocksdb_close(e->db);
  rocksdb_writeoptions_destroy(e->wo);
  rocksdb_readoptions_destroy(e->ro);
  rocksdb_options_destroy(e->opts);
  free(e);
}
static const char *rdb_version(void) {
#ifdef QB_ROCKSDB_VERSION
  return QB_ROCKSDB_VERSION;
#else
  return "?";
#endif
}
static const engine_vt rdb_vt = {"rocksdb", rdb_open, rdb_put,     rdb_del,   rdb_get,
                                 rdb_scan,  rdb_seek, rdb_seek_le, rdb_close, rdb_version};
#endif

/* --- LMDB ---------------------------------------------------------------- */
#if QB_HAVE_LMDB
typedef struct {
  engine base;
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *rtxn; /* one read transaction, reset between operations */
} lm_eng;

static void lm_check(const char *what, int rc) {
  if (rc) eng_fail("lmdb %s: %s", what, mdb_strerror(rc));
}
static engine *lm_open(const char *dir, int sync_each) {
  lm_eng *e = calloc(1, sizeof *e);
  if (!e) die("out of memory");
  MDB_txn *t;
  lm_check("env", mdb_env_create(&e->env));
  lm_check("mapsize", mdb_env_set_mapsize(e->env, (size_t)64 << 30)); /* sparse, grows as used */
  unsigned flags = MDB_NOTLS | (sync_each ? 0u : (unsigned)(MDB_NOSYNC | MDB_NOMETASYNC));
  lm_check("open", mdb_env_open(e->env, dir, flags, 0644));
  lm_check("begin", mdb_txn_begin(e->env, NULL, 0, &t));
  lm_check("dbi", mdb_dbi_open(t, NULL, 0, &e->dbi));
  lm_check("commit", mdb_txn_commit(t));
  lm_check("begin read", mdb_txn_begin(e->env, NULL, MDB_RDONLY, &e->rtxn));
  mdb_txn_reset(e->rtxn);
  return &e->base;
}
static void lm_put(engine *b, const char *k, size_t kl, const char *v, size_t vl) {
  lm_eng *e = (lm_eng *)b;
  MDB_txn *t;
  MDB_val mk = {kl, (void *)k}, mv = {vl, (void *)v};
  lm_check("begin", mdb_txn_begin(e->env, NULL, 0, &t));
  lm_check("put", mdb_put(t, e->dbi, &mk, &mv, 0));
  lm_check("commit", mdb_txn_commit(t));
}
static void lm_del(engine *b, const char *k, size_t kl) {
  lm_eng *e = (lm_eng *)b;
  MDB_txn *t;
  MDB_val mk = {kl, (void *)k};
  lm_check("begin", mdb_txn_begin(e->env, NULL, 0, &t));
  int rc = mdb_del(t, e->dbi, &mk, NULL);
  if (rc == MDB_NOTFOUND) {
    mdb_txn_abort(t);
    return;
  }
  lm_check("delete", rc);
  lm_check("commit", mdb_txn_commit(t));
}
static int lm_get(engine *b, const char *k, size_t kl, size_t *vlen) {
  lm_eng *e = (lm_eng *)b;
  MDB_val mk = {kl, (void *)k}, mv;
  lm_check("renew", mdb_txn_renew(e->rtxn));
  int rc = mdb_get(e->rtxn, e->dbi, &mk, &mv);
  int found = rc == 0;
  if (rc && rc != MDB_NOTFOUND) lm_check("get", rc);
  if (found) {
    *vlen = mv.mv_size;
    sink += touch(mv.mv_data, mv.mv_size);
  }
  mdb_txn_reset(e->rtxn);
  return found;
}
static uint64_t lm_scan(engine *b, int reverse, uint64_t *bytes) {
  lm_eng *e = (lm_eng *)b;
  MDB_cursor *c;
  MDB_val mk, mv;
  uint64_t n = 0, acc = 0;
  lm_check("renew", mdb_txn_renew(e->rtxn));
  lm_check("cursor", mdb_cursor_open(e->rtxn, e->dbi, &c));
  int rc;
  for (rc = mdb_cursor_get(c, &mk, &mv, reverse ? MDB_LAST : MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &mk, &mv, reverse ? MDB_PREV : MDB_NEXT)) {
    acc += touch(mk.mv_data, mk.mv_size) + touch(mv.mv_data, mv.mv_size);
    *bytes += mk.mv_size + mv.mv_size;
    n++;
  }
  if (rc != MDB_NOTFOUND) lm_check("cursor move", rc);
  mdb_cursor_close(c);
  mdb_txn_reset(e->rtxn);
  sink += acc;
  return n;
}
static int lm_seek(engine *b, const char *k, size_t kl) {
  lm_eng *e = (lm_eng *)b;
  MDB_cursor *c;
  MDB_val mk = {kl, (void *)k}, mv;
  int eq = 0;
  lm_check("renew", mdb_txn_renew(e->rtxn));
  lm_check("cursor", mdb_cursor_open(e->rtxn, e->dbi, &c));
  int rc = mdb_cursor_get(c, &mk, &mv, MDB_SET_RANGE);
  if (rc == 0) {
    eq = mk.mv_size == kl && memcmp(mk.mv_data, k, kl) == 0;
    sink += touch(mv.mv_data, mv.mv_size);
  } else if (rc != MDB_NOTFOUND) {
    lm_check("seek", rc);
  }
  mdb_cursor_close(c);
  mdb_txn_reset(e->rtxn);
  return eq;
}
static int lm_seek_le(engine *b, const char *k, size_t kl, char *kout, size_t *koutl, size_t *vlen) {
  lm_eng *e = (lm_eng *)b;
  MDB_cursor *c;
  MDB_val mk = {kl, (void *)k}, mv;
  int found = 0;
  lm_check("renew", mdb_txn_renew(e->rtxn));
  lm_check("cursor", mdb_cursor_open(e->rtxn, e->dbi, &c));
  int rc = mdb_cursor_get(c, &mk, &mv, MDB_SET_RANGE);
  if (rc == MDB_NOTFOUND)
    rc = mdb_cursor_get(c, &mk, &mv, MDB_LAST);
  else if (rc == 0 && !(mk.mv_size == kl && memcmp(mk.mv_data, k, kl) == 0))
    rc = mdb_cursor_get(c, &mk, &mv, MDB_PREV);
  if (rc == 0) {
    size_t ckl = mk.mv_size > PAGE_KEY_MAX ? PAGE_KEY_MAX : mk.mv_size;
    memcpy(kout, mk.mv_data, ckl);
    *koutl = ckl;
    *vlen = mv.mv_size;
    sink += touch(mv.mv_data, mv.mv_size);
    found = 1;
  } else if (rc != MDB_NOTFOUND) {
    lm_check("seek", rc);
  }
  mdb_cursor_close(c);
  mdb_txn_reset(e->rtxn);
  return found;
}
static void lm_close(engine *b) {
  lm_eng *e = (lm_eng *)b;
  mdb_txn_abort(e->rtxn);
  mdb_dbi_close(e->env, e->dbi);
  mdb_env_close(e->env);
  free(e);
}
static const char *lm_version(void) {
  static char v[32];
  int a, b, c;
  mdb_version(&a, &b, &c);
  snprintf(v, sizeof v, "%d.%d.%d", a, b, c);
  return v;
}
static const engine_vt lm_vt = {"lmdb",  lm_open, lm_put,     lm_del,   lm_get,
                                lm_scan, lm_seek, lm_seek_le, lm_close, lm_version};
#endif

/* ------------------------------------------------------------------------- */
/* rows                                                                       */

enum { NEED_FRESH, NEED_SMALL, NEED_BIG, NEED_PAGES, NEED_PAGES2 };
enum { ST_NONE, ST_SMALL, ST_BIG, ST_OTHER, ST_PAGES, ST_PAGES2 };
enum {
  R_FILLSEQ,
  R_FILLRANDOM,
  R_OVERWRITE,
  R_READRANDOM,
  R_READSEQ,
  R_READREVERSE,
  R_SEEKRANDOM,
  R_DELETERANDOM,
  R_FILLSYNC,
  R_FILL4K,
  R_READRANDOM4K,
  R_PAGEFILL,
  R_PAGEREAD,
  R_PAGEREWRITE,
  R_PAGEREREAD,
  R_PAGESCAN,
  R_COUNT
};

typedef struct row_def {
  const char *name;
  int need;
  int writes; /* 1 = write amplification is reported */
} row_def;

static const row_def row_defs[R_COUNT] = {
    {"fillseq", NEED_FRESH, 1},    {"fillrandom", NEED_FRESH, 1},   {"overwrite", NEED_SMALL, 1},
    {"readrandom", NEED_SMALL, 0}, {"readseq", NEED_SMALL, 0},      {"readreverse", NEED_SMALL, 0},
    {"seekrandom", NEED_SMALL, 0}, {"deleterandom", NEED_SMALL, 1}, {"fillsync", NEED_FRESH, 1},
    {"fill4k", NEED_FRESH, 1},     {"readrandom4k", NEED_BIG, 0},   {"pagefill", NEED_FRESH, 1},
    {"pageread", NEED_PAGES, 0},   {"pagerewrite", NEED_PAGES, 1},  {"pagereread", NEED_PAGES2, 0},
    {"pagescan", NEED_PAGES2, 0},
};

#define MAX_ENGINES 4

typedef struct result {
  int ran;
  uint64_t ops, expect, found; /* found/expect: reads that must all hit */
  uint64_t user_bytes;         /* keys + values moved */
  uint64_t wchar;              /* process write() bytes during the row */
  uint64_t own;                /* the engine's own count of the same, if it keeps one */
  int failed;                  /* an engine call failed: err says which */
  char err[512];
  double secs;
} result;

typedef struct cfg {
  uint64_t num, num4k;
  size_t value_size;
  int rows[R_COUNT];
} cfg;

typedef struct runner {
  const engine_vt *vt;
  engine *e;
  char dir[PATH_MAX];
  int state;
  int db_row;                /* the row that created the open database */
  uint64_t db_user, db_w0;   /* user bytes written into it, wchar at its creation */
  result *res;               /* [R_COUNT] of this engine */
  double life_wamp[R_COUNT]; /* whole-life write amplification of the db a row created */
  double space_overwrite, space_fill4k;
  char internals[R_COUNT][512]; /* describe() of the db a row created, just before close */
  char close_err[R_COUNT][512]; /* closing the db a row created failed: why */
  uint64_t bytes_overwrite, bytes_fill4k;
} runner;

static valgen vg;
static uint32_t *perm, *perm4k, *perm_rw;
static uint64_t *page_lsn; /* [num4k]: the newest LSN written of each page */
static uint64_t head_lsn;  /* the newest LSN written */
static uint8_t page_vid[16];

/* The client's page key: {volume id}{page index BE32}{lsn BE64}. */
static void page_key(uint32_t page, uint64_t lsn, char *k) {
  memcpy(k, page_vid, 16);
  for (int i = 0; i < 4; i++) k[16 + i] = (char)(page >> (24 - 8 * i));
  for (int i = 0; i < 8; i++) k[20 + i] = (char)(lsn >> (56 - 8 * i));
}
static uint64_t page_key_lsn(const char *k) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | (uint8_t)k[20 + i];
  return v;
}
/* Reads the newest version of a random page at or below the head LSN (a
 * seek LE and a prefix check, as the client does); counts it found when it
 * is the version last written. */
static uint64_t page_reads(runner *ru, uint64_t m, prng *rnd, uint64_t *ub) {
  uint64_t found = 0;
  char k[PAGE_KEY_LEN], kout[PAGE_KEY_MAX];
  for (uint64_t i = 0; i < m; i++) {
    uint32_t p = (uint32_t)prng_below(rnd, m);
    size_t kl = 0, vlen = 0;
    page_key(p, head_lsn, k);
    if (ru->vt->seek_le(ru->e, k, PAGE_KEY_LEN, kout, &kl, &vlen) && kl == PAGE_KEY_LEN &&
        !memcmp(kout, k, 20) && page_key_lsn(kout) == page_lsn[p] && vlen == 4096)
      found++, *ub += PAGE_KEY_LEN + vlen;
  }
  return found;
}

static void shuffle(uint32_t *a, uint64_t n, uint64_t seed) {
  prng r = {seed};
  for (uint64_t i = 0; i < n; i++) a[i] = (uint32_t)i;
  for (uint64_t i = n; i > 1; i--) {
    uint64_t j = prng_below(&r, i);
    uint32_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

static void db_close(runner *ru) {
  if (!ru->e) return;
  engine *e = ru->e;
  ru->e = NULL; /* a failing close frees it too */
  ru->state = ST_NONE;
  jmp_buf jb, *outer = row_jmp;
  int outer_armed = row_jmp_armed;
  row_jmp = &jb;
  if (setjmp(jb) == 0) {
    row_jmp_armed = 1;
    if (ru->vt->describe) ru->vt->describe(e, ru->internals[ru->db_row], sizeof ru->internals[ru->db_row]);
    ru->vt->close(e);
  } else {
    snprintf(ru->close_err[ru->db_row], sizeof ru->close_err[ru->db_row], "%s", row_err);
    fprintf(stderr, " [close FAILED: %s]", row_err);
  }
  row_jmp = outer;
  row_jmp_armed = outer_armed;
  uint64_t w = proc_wchar() - ru->db_w0;
  if (ru->db_user) ru->life_wamp[ru->db_row] = (double)w / (double)ru->db_user;
}

static void db_fresh(runner *ru, int row, int sync_each) {
  db_close(ru);
  rm_rf(ru->dir);
  if (mkdir(ru->dir, 0755) != 0) die("mkdir %s: %s", ru->dir, strerror(errno));
  ru->db_w0 = proc_wchar();
  ru->db_user = 0;
  ru->db_row = row;
  ru->e = ru->vt->open(ru->dir, sync_each);
}

/* Runs row r on the engine; the caller times it. Returns the op count. */
static void row_body(runner *ru, const cfg *c, int r, result *out) {
  engine *e = ru->e;
  const engine_vt *vt = ru->vt;
  char k[KEY_LEN];
  size_t vlen;
  prng rnd = {0x9e3779b97f4a7c15ull + (uint64_t)r};
  uint64_t n = c->num, ub = 0, found = 0, ops = 0;
  vg.pos = 0;
  switch (r) {
  case R_FILLSEQ:
  case R_FILLRANDOM:
    for (uint64_t i = 0; i < n; i++) {
      key_of(r == R_FILLSEQ ? i : perm[i], k);
      vt->put(e, k, KEY_LEN, valgen_next(&vg, c->value_size), c->value_size);
    }
    ops = n, ub = n * (KEY_LEN + c->value_size);
    break;
  case R_OVERWRITE:
    for (uint64_t i = 0; i < n; i++) {
      key_of(prng_below(&rnd, n), k);
      vt->put(e, k, KEY_LEN, valgen_next(&vg, c->value_size), c->value_size);
    }
    ops = n, ub = n * (KEY_LEN + c->value_size);
    break;
  case R_FILLSYNC: {
    uint64_t m = n < FILLSYNC_OPS ? n : FILLSYNC_OPS;
    for (uint64_t i = 0; i < m; i++) {
      key_of(prng_below(&rnd, n), k);
      vt->put(e, k, KEY_LEN, valgen_next(&vg, c->value_size), c->value_size);
    }
    ops = m, ub = m * (KEY_LEN + c->value_size);
    break;
  }
  case R_FILL4K:
    for (uint64_t i = 0; i < c->num4k; i++) {
      key_of(perm4k[i], k);
      vt->put(e, k, KEY_LEN, valgen_next(&vg, 4096), 4096);
    }
    ops = c->num4k, ub = c->num4k * (KEY_LEN + 4096);
    break;
  case R_READRANDOM:
  case R_READRANDOM4K: {
    uint64_t m = r == R_READRANDOM ? n : c->num4k;
    for (uint64_t i = 0; i < m; i++) {
      key_of(prng_below(&rnd, m), k);
      if (vt->get(e, k, KEY_LEN, &vlen)) found++, ub += KEY_LEN + vlen;
    }
    ops = m, out->expect = m;
    break;
  }
  case R_READSEQ:
  case R_READREVERSE:
    ops = found = vt->scan(e, r == R_READREVERSE, &ub);
    out->expect = n;
    break;
  case R_SEEKRANDOM:
    for (uint64_t i = 0; i < n; i++) {
      key_of(prng_below(&rnd, n), k);
      found += (uint64_t)vt->seek(e, k, KEY_LEN);
    }
    ops = n, ub = n * (KEY_LEN + c->value_size), out->expect = n;
    break;
  case R_DELETERANDOM:
    for (uint64_t i = 0; i < n; i++) {
      key_of(prng_below(&rnd, n), k);
      vt->del(e, k, KEY_LEN);
    }
    ops = n, ub = n * KEY_LEN;
    break;
  case R_PAGEFILL:
    /* every page once, in random order, LSNs rising */
    head_lsn = 0;
    for (uint64_t i = 0; i < c->num4k; i++) {
      char pk[PAGE_KEY_LEN];
      page_lsn[perm4k[i]] = ++head_lsn;
      page_key(perm4k[i], head_lsn, pk);
      vt->put(e, pk, PAGE_KEY_LEN, valgen_next(&vg, 4096), 4096);
    }
    ops = c->num4k, ub = c->num4k * (PAGE_KEY_LEN + 4096);
    break;
  case R_PAGEREWRITE: {
    /* a new version of 20% of the pages (random, distinct) */
    uint64_t m = c->num4k / 5;
    for (uint64_t i = 0; i < m; i++) {
      char pk[PAGE_KEY_LEN];
      page_lsn[perm_rw[i]] = ++head_lsn;
      page_key(perm_rw[i], head_lsn, pk);
      vt->put(e, pk, PAGE_KEY_LEN, valgen_next(&vg, 4096), 4096);
    }
    ops = m, ub = m * (PAGE_KEY_LEN + 4096);
    break;
  }
  case R_PAGEREAD:
  case R_PAGEREREAD:
    found = page_reads(ru, c->num4k, &rnd, &ub);
    ops = out->expect = c->num4k;
    break;
  case R_PAGESCAN:
    ops = found = vt->scan(e, 0, &ub);
    out->expect = c->num4k + c->num4k / 5;
    break;
  default: die("unknown row %d", r);
  }
  out->ops = ops;
  out->found = found;
  out->user_bytes = ub;
  if (row_defs[r].writes) ru->db_user += ub;
}

/* Brings the engine to the state row r needs, untimed (a row run on its
 * own, e.g. --rows readrandom, first loads the database it reads). */
static void row_prepare(runner *ru, const cfg *c, int r) {
  int need = row_defs[r].need;
  if (need == NEED_FRESH) {
    db_fresh(ru, r, r == R_FILLSYNC);
    return;
  }
  int want = need == NEED_SMALL   ? ST_SMALL
             : need == NEED_BIG   ? ST_BIG
             : need == NEED_PAGES ? ST_PAGES
                                  : ST_PAGES2;
  if (ru->state == want) return;
  result scratch = {0};
  if (want == ST_PAGES2 && ru->state == ST_PAGES) {
    fprintf(stderr, " (untimed %s)", row_defs[R_PAGEREWRITE].name);
    row_body(ru, c, R_PAGEREWRITE, &scratch);
    ru->state = want;
    return;
  }
  int prep = need == NEED_SMALL ? R_FILLRANDOM : need == NEED_BIG ? R_FILL4K : R_PAGEFILL;
  fprintf(stderr, " (untimed %s)", row_defs[prep].name);
  db_fresh(ru, prep, 0);
  row_body(ru, c, prep, &scratch);
  if (want == ST_PAGES2) {
    fprintf(stderr, " (untimed %s)", row_defs[R_PAGEREWRITE].name);
    row_body(ru, c, R_PAGEREWRITE, &scratch);
  }
  ru->state = want;
}

/* Profiling aid (docs/BENCH_LSM.md): with BENCH_PERF_CTL naming the control
 * fifo of `perf record --control=fifo:CTL -D -1` and BENCH_PERF_ROW a row
 * name (optionally BENCH_PERF_ENGINE), events are enabled for that row only. */
static void perf_control(const runner *ru, int r, const char *cmd) {
  const char *ctl = getenv("BENCH_PERF_CTL"), *row = getenv("BENCH_PERF_ROW"),
             *eng = getenv("BENCH_PERF_ENGINE");
  if (!ctl || !row || strcmp(row, row_defs[r].name) || (eng && strcmp(eng, ru->vt->name))) return;
  FILE *f = fopen(ctl, "w");
  if (!f) die("cannot open perf control fifo %s: %s", ctl, strerror(errno));
  fputs(cmd, f);
  fclose(f);
}

/* After a failed row: close the database if that works, else abandon it
 * (leaked, its files removed), so the next row starts clean. */
static void after_failure(runner *ru) {
  row_jmp_armed = 0;
  if (ru->e) {
    engine *e = ru->e;
    ru->e = NULL;
    jmp_buf jb;
    row_jmp = &jb;
    if (setjmp(jb) == 0) {
      row_jmp_armed = 1;
      if (ru->vt->describe) ru->vt->describe(e, ru->internals[ru->db_row], sizeof ru->internals[ru->db_row]);
      ru->vt->close(e);
    }
    row_jmp_armed = 0;
  }
  ru->state = ST_NONE;
  rm_rf(ru->dir);
}

static void run_engine(runner *ru, const cfg *c) {
  for (volatile int r = 0; r < R_COUNT; r++) {
    if (!c->rows[r]) continue;
    result *res = &ru->res[r];
    jmp_buf jb;
    row_jmp = &jb;
    if (setjmp(jb)) {
      res->failed = 1;
      snprintf(res->err, sizeof res->err, "%s", row_err);
      fprintf(stderr, " [%s FAILED: %s]", row_defs[r].name, row_err);
      after_failure(ru);
      continue;
    }
    row_jmp_armed = 1;
    row_prepare(ru, c, r);
    fprintf(stderr, " %s", row_defs[r].name);
    perf_control(ru, r, "enable\n");
    uint64_t w0 = proc_wchar(), o0 = ru->vt->own_written ? ru->vt->own_written(ru->e) : 0;
    double t0 = now_s();
    row_body(ru, c, r, res);
    res->secs = now_s() - t0;
    if (ru->vt->own_written) res->own = ru->vt->own_written(ru->e) - o0;
    perf_control(ru, r, "disable\n");
    res->wchar = proc_wchar() - w0;
    res->ran = 1;
    row_jmp_armed = 0;
    switch (r) {
    case R_FILLRANDOM:
    case R_OVERWRITE: ru->state = ST_SMALL; break;
    case R_FILL4K: ru->state = ST_BIG; break;
    case R_PAGEFILL: ru->state = ST_PAGES; break;
    case R_PAGEREWRITE: ru->state = ST_PAGES2; break;
    case R_FILLSEQ:
    case R_FILLSYNC:
    case R_DELETERANDOM: ru->state = ST_OTHER; break;
    default: break;
    }
    if (r == R_OVERWRITE) {
      ru->bytes_overwrite = dir_bytes(ru->dir);
      ru->space_overwrite = (double)ru->bytes_overwrite / (double)(c->num * (KEY_LEN + c->value_size));
    }
    if (r == R_FILL4K) {
      ru->bytes_fill4k = dir_bytes(ru->dir);
      ru->space_fill4k = (double)ru->bytes_fill4k / (double)(c->num4k * (KEY_LEN + 4096));
    }
  }
  db_close(ru);
  rm_rf(ru->dir);
}

/* ------------------------------------------------------------------------- */
/* report                                                                     */

static double ops_per_s(const result *r) { return r->secs > 0 ? (double)r->ops / r->secs : 0; }

static void cpu_model(char *out, size_t n) {
  snprintf(out, n, "?");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "model name", 10)) {
      char *p = strchr(line, ':');
      if (p) {
        p += 1 + (p[1] == ' ');
        p[strcspn(p, "\n")] = 0;
        snprintf(out, n, "%s", p);
      }
      break;
    }
  }
  fclose(f);
}

static void print_tables(const cfg *c, runner *ru, int ne) {
  int qi = -1;
  for (int i = 0; i < ne; i++)
    if (ru[i].vt == &quire_vt) qi = i;
  printf("\n%-13s", "throughput");
  for (int i = 0; i < ne; i++) printf(" %18s", ru[i].vt->name);
  if (qi >= 0)
    for (int i = 0; i < ne; i++)
      if (i != qi) printf("  q/%-7s", ru[i].vt->name);
  printf("\n%-13s", "");
  for (int i = 0; i < ne; i++) printf(" %10s %7s", "ops/s", "MiB/s");
  if (qi >= 0)
    for (int i = 0; i < ne; i++)
      if (i != qi) printf("  %9s", "ops/s");
  printf("\n");
  for (int r = 0; r < R_COUNT; r++) {
    if (!c->rows[r]) continue;
    printf("%-13s", row_defs[r].name);
    for (int i = 0; i < ne; i++) {
      result *x = &ru[i].res[r];
      if (x->failed)
        printf(" %18s", "FAILED");
      else
        printf(" %10.0f %7.1f", ops_per_s(x), x->secs > 0 ? (double)x->user_bytes / 1048576.0 / x->secs : 0);
    }
    if (qi >= 0)
      for (int i = 0; i < ne; i++) {
        if (i == qi) continue;
        double p = ops_per_s(&ru[i].res[r]), q = ops_per_s(&ru[qi].res[r]);
        if (p > 0 && q > 0)
          printf("  %8.2fx", q / p);
        else
          printf("  %9s", "-");
      }
    for (int i = 0; i < ne; i++) {
      result *x = &ru[i].res[r];
      if (x->expect && x->found != x->expect)
        printf("  [%s found %" PRIu64 "/%" PRIu64 "]", ru[i].vt->name, x->found, x->expect);
    }
    printf("\n");
  }
  printf("(ratios: quire ops/s over the peer's; > 1 means quire is faster)\n");
  for (int r = 0; r < R_COUNT; r++)
    for (int i = 0; i < ne; i++)
      if (ru[i].res[r].failed)
        printf("FAILED %s on %s: %s\n", row_defs[r].name, ru[i].vt->name, ru[i].res[r].err);
  for (int r = 0; r < R_COUNT; r++)
    for (int i = 0; i < ne; i++)
      if (ru[i].close_err[r][0])
        printf("FAILED closing the %s database on %s: %s\n", row_defs[r].name, ru[i].vt->name,
               ru[i].close_err[r]);

  printf("\n%-26s", "write amplification");
  for (int i = 0; i < ne; i++) printf(" %9s", ru[i].vt->name);
  if (qi >= 0) printf("  quire's own count (lsm_stats.bytes_written)");
  printf("\n");
  for (int r = 0; r < R_COUNT; r++) {
    if (!c->rows[r] || !row_defs[r].writes) continue;
    printf("%-26s", row_defs[r].name);
    for (int i = 0; i < ne; i++) {
      result *x = &ru[i].res[r];
      if (x->failed || !x->user_bytes)
        printf(" %9s", "-");
      else
        printf(" %9.2f", (double)x->wchar / (double)x->user_bytes);
    }
    if (qi >= 0 && ru[qi].res[r].ran && ru[qi].res[r].user_bytes)
      printf("  %9.2f", (double)ru[qi].res[r].own / (double)ru[qi].res[r].user_bytes);
    printf("\n");
  }
  static const int life_rows[] = {R_FILLSEQ, R_FILLRANDOM, R_FILLSYNC, R_FILL4K, R_PAGEFILL};
  for (size_t j = 0; j < sizeof life_rows / sizeof life_rows[0]; j++) {
    int r = life_rows[j], any = 0;
    for (int i = 0; i < ne; i++) any |= ru[i].life_wamp[r] > 0;
    if (!any) continue;
    char label[64];
    snprintf(label, sizeof label, "%s db, whole life", row_defs[r].name);
    printf("%-26s", label);
    for (int i = 0; i < ne; i++) {
      if (ru[i].life_wamp[r] > 0)
        printf(" %9.2f", ru[i].life_wamp[r]);
      else
        printf(" %9s", "-");
    }
    printf("\n");
  }
  for (int i = 0; i < ne; i++)
    for (int r = 0; r < R_COUNT; r++)
      if (ru[i].internals[r][0])
        printf("%s, %s db at close: %s\n", ru[i].vt->name, row_defs[r].name, ru[i].internals[r]);
  if (c->rows[R_OVERWRITE] || c->rows[R_FILL4K]) {
    printf("\n%-26s", "space amplification");
    for (int i = 0; i < ne; i++) printf(" %9s", ru[i].vt->name);
    printf("\n");
  }
  if (c->rows[R_OVERWRITE]) {
    printf("%-26s", "after overwrite");
    for (int i = 0; i < ne; i++) printf(" %9.2f", ru[i].space_overwrite);
    printf("\n%-26s", "  (MiB on disk)");
    for (int i = 0; i < ne; i++) printf(" %9.1f", (double)ru[i].bytes_overwrite / 1048576.0);
    printf("\n");
  }
  if (c->rows[R_FILL4K]) {
    printf("%-26s", "after fill4k");
    for (int i = 0; i < ne; i++) printf(" %9.2f", ru[i].space_fill4k);
    printf("\n%-26s", "  (MiB on disk)");
    for (int i = 0; i < ne; i++) printf(" %9.1f", (double)ru[i].bytes_fill4k / 1048576.0);
    printf("\n");
  }
}

/* ------------------------------------------------------------------------- */

static const engine_vt *const all_engines[] = {
    &quire_vt,
#if QB_HAVE_LEVELDB
    &ldb_vt,
#endif
#if QB_HAVE_ROCKSDB
    &rdb_vt,
#endif
#if QB_HAVE_LMDB
    &lm_vt,
#endif
};
#define N_ALL (int)(sizeof all_engines / sizeof all_engines[0])

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_lsm_peers [--num N] [--num4k N] [--value-size B] [--short]\n"
          "                       [--engines quire,leveldb,rocksdb,lmdb] [--rows ROW,...] [--dir DIR] "
          "[--strict]\n"
          "                       [--quire-merge-threads N] [--quire-wal-pages N] [--quire-memtable-mib N]\n"
          "--strict: exit 1 when a row failed or an engine missed a key (else 0: make bench goes on)\n"
          "rows:");
  for (int r = 0; r < R_COUNT; r++) fprintf(f, " %s", row_defs[r].name);
  fprintf(f, "\nbuilt with:");
  for (int i = 0; i < N_ALL; i++) fprintf(f, " %s", all_engines[i]->name);
  fprintf(f, "\n");
}

static uint64_t parse_u64(const char *s, const char *opt) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v == 0 || v > UINT32_MAX) {
    fprintf(stderr, "bench_lsm_peers: bad %s: %s\n", opt, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  cfg c = {.num = 1000000, .num4k = 0, .value_size = 100};
  const char *engines = NULL, *rows = NULL, *base = getenv("TMPDIR");
  int short_run = 0, strict = 0;
  if (!base || !*base) base = "/tmp";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--short")) {
      short_run = 1;
    } else if (!strcmp(a, "--strict")) {
      strict = 1;
    } else if (!v) {
      usage(stderr);
      return 2;
    } else if (!strcmp(a, "--num")) {
      c.num = parse_u64(v, a), i++;
    } else if (!strcmp(a, "--num4k")) {
      c.num4k = parse_u64(v, a), i++;
    } else if (!strcmp(a, "--value-size")) {
      c.value_size = parse_u64(v, a), i++;
    } else if (!strcmp(a, "--engines")) {
      engines = v, i++;
    } else if (!strcmp(a, "--rows")) {
      rows = v, i++;
    } else if (!strcmp(a, "--quire-merge-threads")) {
      quire_merge_threads = (unsigned)parse_u64(v, a), i++;
    } else if (!strcmp(a, "--quire-memtable-mib")) {
      quire_mem_bytes = parse_u64(v, a) << 20, i++;
    } else if (!strcmp(a, "--quire-wal-pages")) {
      quire_wal_pages = (uint32_t)parse_u64(v, a), i++;
    } else if (!strcmp(a, "--dir")) {
      base = v, i++;
    } else {
      usage(stderr);
      return 2;
    }
  }
  int explicit_num = 0;
  for (int i = 1; i < argc; i++) explicit_num |= !strcmp(argv[i], "--num");
  if (short_run && !explicit_num) c.num = 100000;
  if (!c.num4k) c.num4k = short_run ? 8192 : c.num >= 1000000 ? 65536 : (c.num * 65536 + 999999) / 1000000;
  if (c.value_size > (1u << 20)) {
    fprintf(stderr, "bench_lsm_peers: --value-size at most 1 MiB\n");
    return 2;
  }

  /* engines and rows to run */
  runner ru[MAX_ENGINES];
  memset(ru, 0, sizeof ru);
  int ne = 0;
  for (int i = 0; i < N_ALL; i++) {
    const char *nm = all_engines[i]->name;
    int on = !engines;
    if (engines) {
      size_t l = strlen(nm);
      for (const char *p = engines; *p;) {
        size_t t = strcspn(p, ",");
        if (t == l && !strncmp(p, nm, l)) on = 1;
        p += t + (p[t] == ',');
      }
    }
    if (on) ru[ne++].vt = all_engines[i];
  }
  if (engines) {
    for (const char *p = engines; *p;) {
      size_t t = strcspn(p, ","), ok = 0;
      for (int i = 0; i < N_ALL; i++)
        ok |= strlen(all_engines[i]->name) == t && !strncmp(p, all_engines[i]->name, t);
      if (!ok) {
        fprintf(stderr, "bench_lsm_peers: unknown or not built engine: %.*s\n", (int)t, p);
        return 2;
      }
      p += t + (p[t] == ',');
    }
  }
  for (int r = 0; r < R_COUNT; r++) c.rows[r] = !rows;
  if (rows) {
    for (const char *p = rows; *p;) {
      size_t t = strcspn(p, ",");
      int ok = 0;
      for (int r = 0; r < R_COUNT; r++)
        if (strlen(row_defs[r].name) == t && !strncmp(p, row_defs[r].name, t)) c.rows[r] = ok = 1;
      if (!ok) {
        fprintf(stderr, "bench_lsm_peers: unknown row: %.*s\n", (int)t, p);
        return 2;
      }
      p += t + (p[t] == ',');
    }
  }
  if (!ne) {
    usage(stderr);
    return 2;
  }

  char *top = top_dir;
  if (mkdir(base, 0755) != 0 && errno != EEXIST) die("mkdir %s: %s", base, strerror(errno));
  snprintf(top, sizeof top_dir, "%s/bench_lsm_peers.XXXXXX", base);
  if (!mkdtemp(top)) {
    int e = errno;
    char tmpl[PATH_MAX];
    memcpy(tmpl, top_dir, sizeof tmpl);
    top_dir[0] = 0; /* nothing to remove */
    die("mkdtemp %s: %s", tmpl, strerror(e));
  }

  perm = malloc(c.num * sizeof *perm);
  perm4k = malloc(c.num4k * sizeof *perm4k);
  perm_rw = malloc(c.num4k * sizeof *perm_rw);
  page_lsn = calloc(c.num4k, sizeof *page_lsn);
  result *results = calloc((size_t)ne * R_COUNT, sizeof *results);
  if (!perm || !perm4k || !perm_rw || !page_lsn || !results) die("out of memory");
  shuffle(perm_rw, c.num4k, 91011);
  {
    prng vr = {1213};
    for (int i = 0; i < 16; i++) page_vid[i] = (uint8_t)prng_next(&vr);
  }
  shuffle(perm, c.num, 1234);
  shuffle(perm4k, c.num4k, 5678);
  valgen_init(&vg, c.value_size > 4096 ? c.value_size : 4096);

  double la[3] = {0};
  getloadavg(la, 3);
  char cpu[160];
  cpu_model(cpu, sizeof cpu);
  printf("bench_lsm_peers: db_bench-style rows, one process, engines one after another\n");
  printf("  entries %" PRIu64 " (fillsync %u, fill4k/readrandom4k %" PRIu64
         "), keys %d bytes (\"%%016d\"), values %zu "
         "bytes (4096 for *4k)\n",
         c.num, (unsigned)(c.num < FILLSYNC_OPS ? c.num : FILLSYNC_OPS), c.num4k, KEY_LEN, c.value_size);
  printf("  values: db_bench-style, half compressible (50 random printable bytes written twice per 100)\n");
  printf("  keys: fillrandom a fixed-seed permutation (every key once); overwrite/read*/seek/delete uniform\n"
         "        random over [0,N) from a fixed-seed PRNG, the same sequence for every engine\n");
  printf("  one put (or delete) per write batch/transaction; no fsync except fillsync (fsync per commit)\n");
  printf(
      "  page* rows: the client's pages, keys {16-byte volume id}{page BE32}{lsn BE64}, 4 KiB values;\n"
      "    pagefill every page once in random order, pagerewrite a new version of 20%% of them, page*read\n"
      "    the newest version at or below the head LSN (seek LE + prefix check), pagescan every version\n");
  printf("  machine: %ld cores, %s; load average at start %.2f %.2f %.2f\n", sysconf(_SC_NPROCESSORS_ONLN),
         cpu, la[0], la[1], la[2]);
  printf("  engines:");
  for (int i = 0; i < ne; i++) printf(" %s %s%s", ru[i].vt->name, ru[i].vt->version(), i + 1 < ne ? "," : "");
  printf("\n  settings: defaults + create (quire NORMAL / FULL for fillsync; leveldb and rocksdb default\n"
         "    options, sync write option for fillsync; lmdb 64 GiB sparse map, NOSYNC|NOMETASYNC except\n"
         "    fillsync, one write txn per put, no WRITEMAP, no MDB_APPEND); no waiting for compactions\n");
  if (quire_merge_threads) printf("  quire merge threads: %u (--quire-merge-threads)\n", quire_merge_threads);
  if (quire_wal_pages)
    printf("  quire log region: %u pages (--quire-wal-pages)\n", (unsigned)quire_wal_pages);
  if (quire_mem_bytes)
    printf("  quire memtable: %llu MiB (--quire-memtable-mib)\n",
           (unsigned long long)(quire_mem_bytes >> 20));
  printf("  write amp = bytes passed to write() by the whole process (/proc/self/io wchar, background\n"
         "    threads included) / user bytes (keys + values, keys only for deletes); \"whole life\" runs\n"
         "    from creating that database to closing it\n");
  printf("  space amp = allocated bytes (st_blocks) of the engine's directory / live user bytes\n");
  printf("  OS page cache not dropped (no root): reads are from memory once data is written\n");
  printf("  dir %s\n", top);
  fflush(stdout);

  for (int i = 0; i < ne; i++) {
    ru[i].res = results + (size_t)i * R_COUNT;
    if (snprintf(ru[i].dir, sizeof ru[i].dir, "%s/%s", top, ru[i].vt->name) >= (int)sizeof ru[i].dir)
      die("directory name too long: %s", top);
    double l[3] = {0};
    getloadavg(l, 3);
    fprintf(stderr, "%s (load %.2f):", ru[i].vt->name, l[0]);
    run_engine(&ru[i], &c);
    fprintf(stderr, "\n");
  }

  print_tables(&c, ru, ne);
  getloadavg(la, 3);
  printf("\nload average at end %.2f %.2f %.2f\n", la[0], la[1], la[2]);

  int bad = 0;
  for (int i = 0; i < ne; i++)
    for (int r = 0; r < R_COUNT; r++) {
      result *x = &ru[i].res[r];
      if (x->failed || ru[i].close_err[r][0] || (x->ran && x->expect && x->found != x->expect)) bad = 1;
    }
  if (bad) printf("ERROR: a row failed or an engine missed keys it must find (see FAILED / [found] above)\n");
  rm_rf(top);
  free(perm);
  free(perm4k);
  free(perm_rw);
  free(page_lsn);
  free(results);
  free(vg.buf);
  return bad && strict ? 1 : 0;
}
