/*
 * Crash safety under simulated power loss. A scripted workload (small and
 * large transactions, range deletes, flushes, merges) runs on the fault
 * file layer; for every write point N it is run again with the Nth write or
 * sync failing (power cut), then the file image a power cut could leave is
 * built four ways (unsynced writes dropped, kept, torn, random subset) and
 * reopened. A quarter of the transactions commit with the other sync mode
 * (lsm_txn_set_sync). The state must be a prefix of the commits (nothing
 * half-applied) that holds every commit up to the last acknowledged FULL
 * one, so FULL alone: exactly every acknowledged commit (or one more, the
 * commit in flight). The reopened file must pass lsm check and accept new
 * commits.
 */
#include <stdio.h>

#include "lsm_faultfs.h"
#include "lsm/lsm_int.h"
#include "lsm_testutil.h"

enum { S_TXN, S_BIG, S_FLUSH, S_COMPACT };
enum { O_PUT, O_DEL, O_RANGE };

typedef struct sop {
  int kind;
  unsigned a, b, vlen, vseed;
} sop;

typedef struct sstep {
  int kind;
  sop ops[4];
  int nops;
  int flip; /* committed with the other sync mode (lsm_txn_set_sync) */
} sstep;

#define NK 300

static size_t key_of(unsigned a, char *buf) { return (size_t)snprintf(buf, 32, "key%04u", a); }

static size_t val_of(const sop *o, uint8_t *buf) {
  for (unsigned i = 0; i < o->vlen; i++) buf[i] = (uint8_t)(o->vseed + i * 13 + (i >> 8));
  return o->vlen;
}

static uint64_t srng;
static uint64_t sr(uint64_t n) {
  srng += 0x9e3779b97f4a7c15ull;
  uint64_t z = srng;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (z ^ (z >> 31)) % n;
}

static int make_script(sstep *s, int n, uint64_t seed) {
  srng = seed;
  int ntxn = 0;
  for (int i = 0; i < n; i++) {
    uint64_t r = sr(100);
    memset(&s[i], 0, sizeof s[i]);
    if (r < 5)
      s[i].kind = S_FLUSH;
    else if (r < 8)
      s[i].kind = S_COMPACT;
    else if (r < 14)
      s[i].kind = S_BIG, s[i].ops[0].vseed = (unsigned)sr(256), ntxn++;
    else {
      s[i].kind = S_TXN;
      ntxn++;
      s[i].flip = sr(4) == 0;
      s[i].nops = 1 + (int)sr(4);
      for (int j = 0; j < s[i].nops; j++) {
        sop *o = &s[i].ops[j];
        uint64_t q = sr(100);
        o->kind = q < 70 ? O_PUT : q < 90 ? O_DEL : O_RANGE;
        o->a = (unsigned)sr(NK);
        o->b = o->a + (unsigned)sr(20);
        o->vlen = sr(10) == 0 ? (unsigned)sr(9000) : (unsigned)sr(200);
        o->vseed = (unsigned)sr(256);
      }
    }
  }
  return ntxn;
}

static void model_apply(model *m, const sstep *s, uint8_t *vbuf) {
  char k[32], h[32];
  if (s->kind == S_BIG) {
    for (unsigned i = 0; i < 150; i++) {
      sop o = {O_PUT, (i * 7) % NK, 0, 100, s->ops[0].vseed + i};
      size_t kl = key_of(o.a, k), vl = val_of(&o, vbuf);
      model_put(m, k, kl, vbuf, vl);
    }
    return;
  }
  for (int j = 0; j < s->nops; j++) {
    const sop *o = &s->ops[j];
    size_t kl = key_of(o->a, k);
    if (o->kind == O_PUT)
      model_put(m, k, kl, vbuf, val_of(o, vbuf));
    else if (o->kind == O_DEL)
      model_del(m, k, kl);
    else
      model_del_range(m, k, kl, h, key_of(o->b, h));
  }
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
  o.merge_inline = 1; /* merges at fixed points: every write point of a merge is cut */
  o.promote_leaves = 2;
  o.level0_bytes = 8 * 4096;
  o.level_factor = 2;
  o.block_pages = 4;
  o.cache_bytes = 32 * 1024;
  o.vfs = &fs->vfs;
  return o;
}

static lsm_stats dry_stats; /* of the last run without a crash */

/* Runs the script until the file layer fails. *acked = transactions
 * acknowledged; *inflight = 1 if it stopped inside a commit; *last_full =
 * how many were acknowledged up to and including the last FULL one. */
static void workload(faultfs *fs, int mode, const sstep *s, int n, int *acked, int *inflight,
                     int *last_full) {
  lsm_options o = opts(fs, mode);
  lsm_db *db;
  uint8_t *vbuf = malloc(10000);
  char k[32], h[32];
  *acked = 0;
  *inflight = 0;
  *last_full = 0;
  if (lsm_open("crash.db", &o, &db)) {
    free(vbuf);
    return;
  }
  for (int i = 0; i < n; i++) {
    int rc = 0;
    if (s[i].kind == S_FLUSH)
      rc = lsm_flush(db);
    else if (s[i].kind == S_COMPACT)
      rc = lsm_compact(db);
    else {
      lsm_txn *t;
      rc = lsm_txn_begin(db, 0, &t);
      if (rc) break;
      int txn_mode = s[i].flip ? (mode == LSM_SYNC_FULL ? LSM_SYNC_NORMAL : LSM_SYNC_FULL) : mode;
      CHECK_OK(lsm_txn_set_sync(t, txn_mode));
      if (s[i].kind == S_BIG) {
        for (unsigned j = 0; j < 150 && !rc; j++) {
          sop op = {O_PUT, (j * 7) % NK, 0, 100, s[i].ops[0].vseed + j};
          rc = lsm_txn_put(t, k, key_of(op.a, k), vbuf, val_of(&op, vbuf));
        }
      }
      for (int j = 0; j < s[i].nops && !rc; j++) {
        const sop *op = &s[i].ops[j];
        size_t kl = key_of(op->a, k);
        if (op->kind == O_PUT)
          rc = lsm_txn_put(t, k, kl, vbuf, val_of(op, vbuf));
        else if (op->kind == O_DEL)
          rc = lsm_txn_delete(t, k, kl);
        else
          rc = lsm_txn_delete_range(t, k, kl, h, key_of(op->b, h));
      }
      if (rc) {
        lsm_txn_abort(t);
        *inflight = 1; /* a spill failed: the commit never started, but be lenient */
        *inflight = 0;
        break;
      }
      rc = lsm_txn_commit(t);
      if (rc) {
        *inflight = 1;
        break;
      }
      (*acked)++;
      if (txn_mode == LSM_SYNC_FULL) *last_full = *acked;
    }
    if (rc) break;
  }
  if (!fs->crash_at) (void)lsm_stats_get(db, &dry_stats);
  (void)lsm_close(db);
  free(vbuf);
}

static long crash_runs, reopens;

static void check_image(const uint8_t *img, size_t len, int mode, const uint64_t *hashes, int acked,
                        int inflight, int last_full, int ntxn, long at, int variant) {
  faultfs fs;
  ffs_init(&fs, img, len);
  lsm_options o = opts(&fs, mode);
  lsm_db *db;
  int rc = lsm_open("crash.db", &o, &db);
  CHECKF(rc == 0, "crash at %ld variant %d: reopen failed: %s (%s)", at, variant, quire_strerror(rc),
         quire_errmsg());
  uint64_t hsh = 0;
  CHECK_OK(db_hash(db, &hsh));
  /* a prefix of the commits: every one up to the last FULL one acknowledged
   * (FULL: all acknowledged), at most the one in flight beyond them */
  int found = -1;
  for (int j = last_full; j <= acked + inflight && j <= ntxn && found < 0; j++)
    if (hashes[j] == hsh) found = j;
  if (found < 0)
    for (int j = ntxn; j >= 0 && found < 0; j--)
      if (hashes[j] == hsh) found = -2 - j;
  CHECKF(found >= 0,
         "crash at %ld variant %d: state matches commit %d, acknowledged %d (%d up to the last FULL)%s", at,
         variant, found < -1 ? -2 - found : -1, acked, last_full, inflight ? " (+1 in flight)" : "");
  lsm_check_counts cnt;
  CHECKF(lsm__check(db, NULL, NULL, &cnt) == 0, "crash at %ld variant %d: check: %s", at, variant,
         quire_errmsg());
  /* the recovered file takes new commits and survives a clean reopen */
  lsm_txn *t;
  CHECK_OK(lsm_txn_begin(db, 0, &t));
  CHECK_OK(lsm_txn_put(t, "zz-after", 8, "x", 1));
  CHECK_OK(lsm_txn_commit(t));
  CHECK_OK(lsm_close(db));
  fs.crash_at = 0;
  CHECK_OK(lsm_open("crash.db", &o, &db));
  lsm_value v;
  CHECK_OK(lsm_get(db, "zz-after", 8, &v));
  lsm_value_release(&v);
  CHECK_OK(lsm__check(db, NULL, NULL, &cnt));
  CHECKF(cnt.leaked == 0 && cnt.double_use == 0, "leaks after a clean close: %llu",
         (unsigned long long)cnt.leaked);
  CHECK_OK(lsm_close(db));
  ffs_free(&fs);
  reopens++;
}

static void run_mode(int mode, int nsteps, uint64_t seed, long max_points) {
  sstep *s = calloc((size_t)nsteps, sizeof *s);
  int ntxn = make_script(s, nsteps, seed);
  uint64_t *hashes = calloc((size_t)ntxn + 1, sizeof *hashes);
  model m = {0};
  uint8_t *vbuf = malloc(10000);
  int j = 0;
  hashes[0] = model_hash(&m);
  for (int i = 0; i < nsteps; i++) {
    if (s[i].kind != S_TXN && s[i].kind != S_BIG) continue;
    model_apply(&m, &s[i], vbuf);
    hashes[++j] = model_hash(&m);
  }
  /* dry run: how many write points, and the final state is right */
  faultfs fs;
  ffs_init(&fs, NULL, 0);
  int acked, inflight, last_full;
  workload(&fs, mode, s, nsteps, &acked, &inflight, &last_full);
  CHECKF(acked == ntxn, "dry run acknowledged %d of %d", acked, ntxn);
  long total = fs.ops;
  {
    uint8_t *img;
    size_t len;
    ffs_crash_image(&fs, FFS_DROP, &img, &len);
    check_image(img, len, mode, hashes, acked, 0, last_full, ntxn, 0, -1);
    free(img);
  }
  ffs_free(&fs);
  long stride = total / max_points + 1;
  for (long at = 1 + (long)test_rand_below((uint64_t)stride); at <= total; at += stride) {
    ffs_init(&fs, NULL, 0);
    fs.crash_at = at;
    workload(&fs, mode, s, nsteps, &acked, &inflight, &last_full);
    CHECKF(fs.crashed, "no crash at write %ld of %ld (the run made %ld writes, acked %d)", at, total,
           (long)fs.ops, acked);
    for (int v = 0; v < FFS_VARIANTS; v++) {
      uint8_t *img;
      size_t len;
      ffs_crash_image(&fs, v, &img, &len);
      check_image(img, len, mode, hashes, acked, inflight, last_full, ntxn, at, v);
      free(img);
    }
    ffs_free(&fs);
    crash_runs++;
  }
  printf("  %s: %d steps, %d transactions, %ld write points, crashed at %ld of them; the script runs %llu "
         "merges (%llu partial, %llu moved, %llu full) and %llu flushes\n",
         mode == LSM_SYNC_FULL ? "FULL" : "NORMAL", nsteps, ntxn, total, crash_runs,
         (unsigned long long)dry_stats.merges, (unsigned long long)dry_stats.merges_partial,
         (unsigned long long)dry_stats.merges_moved, (unsigned long long)dry_stats.merges_full,
         (unsigned long long)dry_stats.flushes);
  CHECK(dry_stats.merges_partial > 0); /* crash points fall inside partial merges too */
  model_free(&m);
  free(vbuf);
  free(hashes);
  free(s);
}

int main(void) {
  uint64_t seed = test_seed();
  quire__log_set_level(-1); /* expected "free list unreadable" warnings */
  int longm = test_long_mode();
  run_mode(LSM_SYNC_FULL, longm ? 400 : 70, seed, longm ? 100000 : 400);
  long full_runs = crash_runs;
  crash_runs = 0;
  run_mode(LSM_SYNC_NORMAL, longm ? 400 : 60, seed + 1, longm ? 100000 : 150);
  printf("  simulated power cuts: %ld (FULL) + %ld (NORMAL), %ld reopened images\n", full_runs, crash_runs,
         reopens);
  CHECK(quire__never_count() == 0);
  return test_done("test_lsm_crash");
}
