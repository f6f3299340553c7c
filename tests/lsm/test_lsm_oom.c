/*
 * Allocation failures: walk n = 1, 2, ... failing the nth allocation of a
 * small workload (create, commits through the log, a spilling transaction,
 * range delete, reads, flush, compact, close) until it runs untouched. Every
 * failure must surface as QUIRE_ENOMEM; afterwards the file must reopen,
 * pass lsm check and hold the state after some prefix of the commits. Leaks
 * are caught by LeakSanitizer at exit.
 */
#include <stdio.h>

#include "lsm_faultfs.h"
#include "lsm/lsm_int.h"
#include "lsm_testutil.h"

#define NCOMMITS 4

static lsm_options opts(faultfs *fs) {
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = LSM_SYNC_NORMAL;
  o.wal_pages = 4;
  o.txn_mem_bytes = 8 * 1024;
  o.max_incoming = 2;
  o.merge_inline = 1; /* allocations in a fixed order: every failure point is reached */
  o.level0_bytes = 8 * 4096;
  o.promote_leaves = 2;
  o.block_pages = 4;
  o.cache_bytes = 16 * 1024;
  o.vfs = &fs->vfs;
  return o;
}

static int commit_n(lsm_db *db, int c, model *m) {
  lsm_txn *t;
  int rc = lsm_txn_begin(db, 0, &t);
  if (rc) return rc;
  static uint8_t v[9000];
  memset(v, 'a' + c, sizeof v);
  char k[32];
  int nput = c == 2 ? 120 : 6;
  for (int i = 0; i < nput && !rc; i++) {
    int n = snprintf(k, sizeof k, "k%03d", (i * 7 + c) % 150);
    size_t vl = i == 3 ? 6000 : 90;
    rc = lsm_txn_put(t, k, (size_t)n, v, vl);
    if (m) model_put(m, k, (size_t)n, v, vl);
  }
  if (!rc && c == 3) {
    rc = lsm_txn_delete_range(t, "k010", 4, "k050", 4);
    if (m) model_del_range(m, "k010", 4, "k050", 4);
  }
  if (!rc && c == 1) {
    rc = lsm_txn_delete(t, "k008", 4);
    if (m) model_del(m, "k008", 4);
  }
  if (rc) {
    lsm_txn_abort(t);
    return rc;
  }
  lsm_value val;
  if (!(rc = lsm_txn_get(t, "k001", 4, &val))) lsm_value_release(&val);
  if (rc && rc != QUIRE_ENOTFOUND) {
    lsm_txn_abort(t);
    return rc;
  }
  return lsm_txn_commit(t);
}

static uint64_t state_hash(lsm_db *db, int *rcp) {
  lsm_cursor *c;
  uint64_t h = 0;
  int rc = lsm_cursor_open(db, &c);
  if (rc) {
    *rcp = rc;
    return 0;
  }
  for (rc = lsm_cursor_first(c); rc == 0; rc = lsm_cursor_next(c)) {
    const void *k, *v;
    size_t kl, vl;
    if ((rc = lsm_cursor_key(c, &k, &kl)) || (rc = lsm_cursor_value(c, &v, &vl))) break;
    h = quire__xxh3_seeded(k, kl, h);
    h = quire__xxh3_seeded(v, vl, h);
  }
  lsm_cursor_close(c);
  *rcp = rc == QUIRE_EEND ? 0 : rc;
  return h;
}

static uint64_t model_state(const model *m) {
  uint64_t h = 0;
  for (size_t i = 0; i < m->n; i++) {
    h = quire__xxh3_seeded(m->e[i].k, m->e[i].kl, h);
    h = quire__xxh3_seeded(m->e[i].v, m->e[i].vl, h);
  }
  return h;
}

/* The workload; returns the first error (after cleaning up). */
static int workload(faultfs *fs) {
  lsm_options o = opts(fs);
  lsm_db *db;
  int rc = lsm_open("oom.db", &o, &db);
  if (rc) return rc;
  for (int c = 0; c < NCOMMITS && !rc; c++) {
    rc = commit_n(db, c, NULL);
    if (!rc && c == 1) rc = lsm_flush(db);
  }
  if (!rc) {
    int r2;
    (void)state_hash(db, &r2);
    rc = r2;
  }
  lsm_value v;
  if (!rc && !(rc = lsm_get(db, "k003", 4, &v))) lsm_value_release(&v);
  if (rc == QUIRE_ENOTFOUND) rc = 0;
  if (!rc) rc = lsm_compact(db);
  int crc = lsm_close(db);
  return rc ? rc : crc;
}

int main(void) {
  test_seed();
  quire__log_set_level(-1);
  uint64_t hashes[NCOMMITS + 1];
  {
    model m = {0};
    hashes[0] = model_state(&m);
    faultfs scratch;
    ffs_init(&scratch, NULL, 0);
    lsm_options o = opts(&scratch);
    lsm_db *db;
    CHECK_OK(lsm_open("m.db", &o, &db));
    for (int c = 0; c < NCOMMITS; c++) {
      CHECK_OK(commit_n(db, c, &m));
      hashes[c + 1] = model_state(&m);
    }
    int rc;
    CHECK(state_hash(db, &rc) == hashes[NCOMMITS] && rc == 0);
    CHECK_OK(lsm_close(db));
    ffs_free(&scratch);
    model_free(&m);
  }
  long n, failed_runs = 0;
  for (n = 1;; n++) {
    faultfs fs;
    ffs_init(&fs, NULL, 0);
    quire_test_alloc_fail_at(n, 0);
    int rc = workload(&fs);
    long injected = quire_test_alloc_failures();
    quire_test_alloc_fail_at(0, 0);
    if (injected == 0) {
      CHECK_OK(rc);
      ffs_free(&fs);
      break;
    }
    CHECKF(rc == QUIRE_ENOMEM || rc == 0, "allocation %ld: got %s (%s)", n, quire_strerror(rc),
           quire_errmsg());
    failed_runs += rc != 0;
    /* the file is still good */
    if (fs.clen) {
      lsm_options o = opts(&fs);
      lsm_db *db;
      rc = lsm_open("oom.db", &o, &db);
      CHECKF(rc == 0, "allocation %ld: reopen: %s (%s)", n, quire_strerror(rc), quire_errmsg());
      lsm_check_counts cnt;
      CHECKF(lsm__check(db, NULL, NULL, &cnt) == 0, "allocation %ld: check: %s", n, quire_errmsg());
      uint64_t h = state_hash(db, &rc);
      CHECK_OK(rc);
      int ok = 0;
      for (int c = 0; c <= NCOMMITS; c++) ok |= h == hashes[c];
      CHECKF(ok, "allocation %ld: state is not a prefix of the commits", n);
      CHECK_OK(lsm_close(db));
    }
    ffs_free(&fs);
  }
  printf("  walked %ld allocation sites, %ld runs failed cleanly with QUIRE_ENOMEM\n", n - 1, failed_runs);
  CHECK(quire__never_count() == 0);
  return test_done("test_lsm_oom");
}
