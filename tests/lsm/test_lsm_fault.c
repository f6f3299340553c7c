/*
 * A failed commit never takes effect. A scripted workload (small and large
 * transactions, range deletes, flushes, compactions, inline merges) runs on
 * the fault file layer with exactly one fault: one sync fails (its writes
 * lost, or partly written), or one write fails (nothing or a prefix of it
 * landed). Then the program goes on: every later commit and flush must be
 * refused with QUIRE_EIO, reads must show exactly the acknowledged commits,
 * and after close the file is reopened twice: as the page cache holds it (a
 * process restart) and as the disk holds it (a power cut after the fault).
 * Both must hold exactly the acknowledged commits (NORMAL after a power cut:
 * a prefix of them) and never the commit reported as failed, pass lsm check
 * and take new commits. Every sync and every write of the script is a fault
 * position (the short mode takes a stride through them).
 */
#include <stdio.h>
#include <unistd.h>

#include "lsm_faultfs.h"
#include "lsm/lsm_int.h"
#include "lsm_testutil.h"

#define NK 200

enum { S_TXN, S_BIG, S_FLUSH, S_COMPACT };

typedef struct step {
  int kind;
  unsigned nops;
  unsigned op[4], a[4], b[4], vlen[4], vseed[4];
} step;

static size_t key_of(unsigned a, char *buf) { return (size_t)snprintf(buf, 32, "key%04u", a); }

static size_t val_of(unsigned vlen, unsigned vseed, uint8_t *buf) {
  for (unsigned i = 0; i < vlen; i++) buf[i] = (uint8_t)(vseed + i * 13 + (i >> 8));
  return vlen;
}

static int make_script(step *s, int n) {
  int ntxn = 0;
  for (int i = 0; i < n; i++) {
    uint64_t r = test_rand_below(100);
    memset(&s[i], 0, sizeof s[i]);
    s[i].kind = r < 4 ? S_FLUSH : r < 6 ? S_COMPACT : r < 12 ? S_BIG : S_TXN;
    if (s[i].kind == S_FLUSH || s[i].kind == S_COMPACT) continue;
    ntxn++;
    s[i].nops = s[i].kind == S_BIG ? 1 : 1 + (unsigned)test_rand_below(4);
    for (unsigned j = 0; j < s[i].nops; j++) {
      uint64_t q = test_rand_below(100);
      s[i].op[j] = q < 70 ? 0 : q < 90 ? 1 : 2;
      s[i].a[j] = (unsigned)test_rand_below(NK);
      s[i].b[j] = s[i].a[j] + (unsigned)test_rand_below(20);
      s[i].vlen[j] =
          test_rand_below(10) == 0 ? (unsigned)test_rand_below(9000) : (unsigned)test_rand_below(200);
      s[i].vseed[j] = (unsigned)test_rand_below(256);
    }
  }
  return ntxn;
}

/* Applies a transaction step to the model, or with t to the engine. */
static int apply(const step *s, model *m, lsm_txn *t, uint8_t *vbuf) {
  char k[32], h[32];
  int rc = 0;
  if (s->kind == S_BIG) {
    for (unsigned i = 0; i < 150 && !rc; i++) {
      size_t kl = key_of((i * 7) % NK, k), vl = val_of(100, s->vseed[0] + i, vbuf);
      if (t)
        rc = lsm_txn_put(t, k, kl, vbuf, vl);
      else
        model_put(m, k, kl, vbuf, vl);
    }
    return rc;
  }
  for (unsigned j = 0; j < s->nops && !rc; j++) {
    size_t kl = key_of(s->a[j], k);
    if (s->op[j] == 0) {
      size_t vl = val_of(s->vlen[j], s->vseed[j], vbuf);
      if (t)
        rc = lsm_txn_put(t, k, kl, vbuf, vl);
      else
        model_put(m, k, kl, vbuf, vl);
    } else if (s->op[j] == 1) {
      if (t)
        rc = lsm_txn_delete(t, k, kl);
      else
        model_del(m, k, kl);
    } else {
      size_t hl = key_of(s->b[j], h);
      if (t)
        rc = lsm_txn_delete_range(t, k, kl, h, hl);
      else
        model_del_range(m, k, kl, h, hl);
    }
  }
  return rc;
}

static uint64_t hash_of(lsm_db *db) {
  uint64_t h = 0;
  CHECK_OK(db_hash(db, &h));
  return h;
}

static lsm_options opts(faultfs *fs, int mode) {
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = mode;
  o.wal_pages = 6;
  o.txn_mem_bytes = 12 * 1024;
  o.memtable_bytes = 48 * 1024;
  o.max_incoming = 2;
  o.merge_inline = 1;
  o.promote_leaves = 2;
  o.level0_bytes = 8 * 4096;
  o.level_factor = 2;
  o.block_pages = 4;
  o.cache_bytes = 32 * 1024;
  o.vfs = &fs->vfs;
  return o;
}

typedef struct outcome {
  int acked;  /* transactions acknowledged */
  int failed; /* 1: the transaction after them was reported failed */
  int faulted;
} outcome;

static long refused_commits, refused_flushes;

/* Runs the script; after the first failure checks that reads show exactly
 * the acknowledged commits and that nothing more is accepted. */
static outcome workload(faultfs *fs, int mode, const step *s, int n, const uint64_t *hashes) {
  lsm_options o = opts(fs, mode);
  lsm_db *db;
  uint8_t *vbuf = malloc(10000);
  outcome out = {0, 0, 0};
  CHECK_OK(lsm_open("fault.db", &o, &db));
  for (int i = 0; i < n; i++) {
    int rc;
    if (s[i].kind == S_FLUSH) {
      rc = lsm_flush(db);
    } else if (s[i].kind == S_COMPACT) {
      rc = lsm_compact(db);
    } else {
      lsm_txn *t;
      CHECK_OK(lsm_txn_begin(db, 0, &t));
      rc = apply(&s[i], NULL, t, vbuf);
      if (rc) {
        lsm_txn_abort(t); /* a spill failed: nothing was committed */
      } else {
        rc = lsm_txn_commit(t);
        if (!rc) out.acked++;
      }
      if (rc) out.failed = 1;
    }
    if (rc) {
      CHECKF(fs->failed, "step %d failed without a fault: %s (%s)", i, quire_strerror(rc), quire_errmsg());
      out.faulted = 1;
      break;
    }
  }
  if (out.faulted) {
    /* readers see the acknowledged commits, never the failed one */
    CHECKF(hash_of(db) == hashes[out.acked], "after the fault: reads do not show the %d acknowledged commits",
           out.acked);
    for (int i = 0; i < 3; i++) {
      lsm_txn *t;
      CHECK_OK(lsm_txn_begin(db, 0, &t));
      CHECK_OK(lsm_txn_put(t, "zz-refused", 10, "x", 1));
      int rc = lsm_txn_commit(t);
      CHECKF(rc == QUIRE_EIO, "a commit after the fault: %s", quire_strerror(rc));
      CHECKF(strstr(quire_errmsg(), "reopen") != NULL, "unclear error: %s", quire_errmsg());
      refused_commits++;
    }
    CHECK_RC(lsm_flush(db), QUIRE_EIO);
    CHECK_RC(lsm_compact(db), QUIRE_EIO);
    refused_flushes++;
    CHECK(hash_of(db) == hashes[out.acked]);
    int rc = lsm_close(db);
    CHECKF(rc == QUIRE_EIO, "close after the fault: %s", quire_strerror(rc));
  } else {
    /* the fault may hit the final flush and header writes of close */
    int rc = lsm_close(db);
    CHECKF(rc == 0 || (fs->failed && rc == QUIRE_EIO), "close: %s (%s)", quire_strerror(rc), quire_errmsg());
  }
  free(vbuf);
  return out;
}

static long reopened;

/* Reopens an image: exactly the acknowledged state (or, power_cut in NORMAL,
 * a prefix of it); checks it and commits to it. */
static void check_image(uint8_t *img, size_t len, int mode, const uint64_t *hashes, outcome out,
                        int power_cut, const char *what) {
  faultfs fs;
  ffs_init(&fs, img, len);
  free(img);
  lsm_options o = opts(&fs, mode);
  lsm_db *db;
  int rc = lsm_open("fault.db", &o, &db);
  CHECKF(rc == 0, "%s: reopen failed: %s (%s)", what, quire_strerror(rc), quire_errmsg());
  uint64_t h = hash_of(db);
  if (mode == LSM_SYNC_FULL || !power_cut) {
    CHECKF(h == hashes[out.acked], "%s: the state is not the %d acknowledged commits%s", what, out.acked,
           out.failed && h == hashes[out.acked + 1] ? " (the failed one took effect)" : "");
  } else {
    int found = 0;
    for (int j = 0; j <= out.acked && !found; j++) found = h == hashes[j];
    CHECKF(found, "%s: the state is no prefix of the %d acknowledged commits", what, out.acked);
  }
  lsm_check_counts cnt;
  CHECKF(lsm__check(db, NULL, NULL, &cnt) == 0, "%s: check: %s", what, quire_errmsg());
  CHECKF(cnt.double_use == 0, "%s: pages used twice", what);
  lsm_txn *t;
  CHECK_OK(lsm_txn_begin(db, 0, &t));
  CHECK_OK(lsm_txn_put(t, "zz-after", 8, "x", 1));
  CHECK_OK(lsm_txn_commit(t));
  CHECK_OK(lsm_close(db));
  CHECK_OK(lsm_open("fault.db", &o, &db));
  lsm_value v;
  CHECK_OK(lsm_get(db, "zz-after", 8, &v));
  lsm_value_release(&v);
  CHECK_OK(lsm__check(db, NULL, NULL, &cnt));
  CHECKF(cnt.leaked == 0 && cnt.double_use == 0, "%s: %llu pages leaked after a clean close", what,
         (unsigned long long)cnt.leaked);
  CHECK_OK(lsm_close(db));
  ffs_free(&fs);
  reopened++;
}

static const char *kind_name[] = {"sync", "sync after a partial write", "write", "partial write"};

static void run_mode(int mode, int nsteps, long max_points) {
  step *s = calloc((size_t)nsteps, sizeof *s);
  int ntxn = make_script(s, nsteps);
  uint64_t *hashes = calloc((size_t)ntxn + 2, sizeof *hashes);
  model m = {0};
  uint8_t *vbuf = malloc(10000);
  int j = 0;
  hashes[0] = model_hash(&m);
  for (int i = 0; i < nsteps; i++) {
    if (s[i].kind != S_TXN && s[i].kind != S_BIG) continue;
    apply(&s[i], &m, NULL, vbuf);
    hashes[++j] = model_hash(&m);
  }
  hashes[ntxn + 1] = hashes[ntxn];
  /* the empty database every run starts from */
  faultfs fs;
  ffs_init(&fs, NULL, 0);
  {
    lsm_options o = opts(&fs, mode);
    lsm_db *db;
    CHECK_OK(lsm_open("fault.db", &o, &db));
    CHECK_OK(lsm_close(db));
  }
  uint8_t *base;
  size_t blen;
  ffs_cached_image(&fs, &base, &blen);
  ffs_free(&fs);
  /* dry run: how many syncs and writes */
  ffs_init(&fs, base, blen);
  outcome dry = workload(&fs, mode, s, nsteps, hashes);
  CHECKF(dry.acked == ntxn && !dry.faulted, "dry run acknowledged %d of %d", dry.acked, ntxn);
  long total[2] = {fs.nsync, fs.nwrite};
  ffs_free(&fs);
  long runs[FFS_FAIL_KINDS] = {0}, failures[FFS_FAIL_KINDS] = {0};
  for (int kind = 0; kind < FFS_FAIL_KINDS; kind++) {
    long points = total[kind >= FFS_FAIL_WRITE];
    long stride = points / max_points + 1;
    for (long at = 1 + (long)test_rand_below((uint64_t)stride); at <= points; at += stride) {
      ffs_init(&fs, base, blen);
      fs.fail_kind = kind;
      fs.fail_at = at;
      fs.rng = test_rand();
      outcome out = workload(&fs, mode, s, nsteps, hashes);
      CHECKF(fs.failed, "%s %ld of %ld: the fault never fired", kind_name[kind], at, points);
      char what[128];
      snprintf(what, sizeof what, "%s %s %ld (page cache)", mode == LSM_SYNC_FULL ? "FULL" : "NORMAL",
               kind_name[kind], at);
      uint8_t *img;
      size_t len;
      ffs_cached_image(&fs, &img, &len);
      check_image(img, len, mode, hashes, out, 0, what);
      snprintf(what, sizeof what, "%s %s %ld (power cut)", mode == LSM_SYNC_FULL ? "FULL" : "NORMAL",
               kind_name[kind], at);
      ffs_crash_image(&fs, FFS_DROP, &img, &len);
      check_image(img, len, mode, hashes, out, 1, what);
      ffs_free(&fs);
      runs[kind]++;
      failures[kind] += out.faulted;
    }
  }
  printf("  %s: %d steps, %d transactions, %ld syncs and %ld writes; faults injected: %ld failed syncs, %ld "
         "syncs after a partial write, %ld failed writes, %ld partial writes (%ld, %ld, %ld, %ld of them "
         "failed an operation)\n",
         mode == LSM_SYNC_FULL ? "FULL" : "NORMAL", nsteps, ntxn, total[0], total[1], runs[0], runs[1],
         runs[2], runs[3], failures[0], failures[1], failures[2], failures[3]);
  free(base);
  model_free(&m);
  free(vbuf);
  free(hashes);
  free(s);
}

/* ---- messages ------------------------------------------------------------ */
/* The library writes nothing to stderr: a failed sync and a failed
 * background merge are reported through lsm_options.log_fn only. */
typedef struct logbook {
  int errors, warnings;
  char first[512];
} logbook;

static void log_to_book(void *ctx, int level, const char *msg) {
  logbook *b = ctx;
  if (!b->errors && !b->warnings) snprintf(b->first, sizeof b->first, "%s", msg);
  if (level == LSM_LOG_ERROR) b->errors++;
  if (level == LSM_LOG_WARN) b->warnings++;
}

static void test_log_callback(void) {
  char tmpl[] = "/tmp/quire-lsm-stderr-XXXXXX";
  int fd = mkstemp(tmpl);
  CHECK(fd >= 0);
  unlink(tmpl);
  fflush(stderr);
  int saved = dup(2);
  CHECK(saved >= 0 && dup2(fd, 2) == 2);
  quire__log_set_level(4); /* the global logger at its loudest: still nothing from lsm */
  for (int with_fn = 0; with_fn < 2; with_fn++) {
    faultfs fs;
    ffs_init(&fs, NULL, 0);
    logbook book = {0, 0, ""};
    lsm_options o = opts(&fs, LSM_SYNC_FULL);
    if (with_fn) {
      o.log_fn = log_to_book;
      o.log_ctx = &book;
    }
    lsm_db *db;
    CHECK_OK(lsm_open("fault.db", &o, &db));
    fs.fail_kind = FFS_FAIL_SYNC;
    fs.fail_at = fs.nsync + 1;
    lsm_txn *t;
    CHECK_OK(lsm_txn_begin(db, 0, &t));
    CHECK_OK(lsm_txn_put(t, "k", 1, "v", 1));
    CHECK_RC(lsm_txn_commit(t), QUIRE_EIO);
    CHECK_RC(lsm_close(db), QUIRE_EIO);
    ffs_free(&fs);
    if (with_fn) {
      CHECKF(book.errors == 1 && strstr(book.first, "sync failed") != NULL, "%d errors, first: %s",
             book.errors, book.first);
    }
  }
  quire__log_set_level(-1);
  fflush(stderr);
  CHECK(dup2(saved, 2) == 2);
  close(saved);
  off_t len = lseek(fd, 0, SEEK_END);
  close(fd);
  CHECKF(len == 0, "the library wrote %lld bytes to stderr", (long long)len);
}

int main(void) {
  test_seed();
  quire__log_set_level(-1); /* expected warnings about failed writes */
  int longm = test_long_mode();
  test_log_callback();
  run_mode(LSM_SYNC_FULL, longm ? 300 : 60, longm ? 100000 : 60);
  run_mode(LSM_SYNC_NORMAL, longm ? 300 : 60, longm ? 100000 : 60);
  printf("  %ld refused commits, %ld refused flushes, %ld reopened images\n", refused_commits,
         refused_flushes, reopened);
  CHECK(quire__never_count() == 0);
  return test_done("test_lsm_fault");
}
