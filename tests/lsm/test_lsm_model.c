/*
 * Model-based property test of the LSM engine: random put / delete / range
 * delete / commit / abort / flush / compact / reopen sequences applied to the
 * engine and to a sorted-array model, with full cursor walks in both
 * directions, seeks of every kind, point gets and transaction reads compared
 * after every step. Keys run from empty to the key limit, values from empty
 * to several pages; small memory budgets force spills, flushes and merges.
 */
#include <stdio.h>

#include "lsm/lsm_int.h"
#include "lsm_testutil.h"

#define NKEYS 160

static size_t klim;

static size_t make_key(unsigned i, uint8_t *buf) {
  if (i == 0) return 0; /* the empty key */
  int n = snprintf((char *)buf, 16, "k%03u", i);
  size_t len = (size_t)n;
  if (i % 13 == 0) { /* long keys sharing a prefix */
    size_t pad = ((size_t)i * 131) % (klim - 8);
    memset(buf + len, 'x', pad);
    len += pad;
  }
  if (i % 29 == 0) buf[len++] = 0xff;
  return len;
}

static size_t make_value(uint8_t *buf, size_t cap) {
  uint64_t r = test_rand_below(100);
  size_t len;
  if (r < 60)
    len = test_rand_below(40);
  else if (r < 85)
    len = test_rand_below(1500);
  else
    len = test_rand_below(cap);
  uint8_t b = (uint8_t)test_rand();
  for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(b + i * 7);
  return len;
}

static void probe_key(uint8_t *buf, size_t *len) {
  unsigned i = (unsigned)test_rand_below(NKEYS + 5);
  *len = make_key(i, buf);
  uint64_t r = test_rand_below(4);
  if (r == 1)
    buf[(*len)++] = 0; /* just after a key */
  else if (r == 2 && *len)
    (*len)--; /* a prefix of a key */
}

/* lsm_get_seek (t NULL) or lsm_txn_get_seek, every op, against the model;
 * a key buffer one byte short gives QUIRE_ETOOLARGE and the length. */
static void compare_point_seek(lsm_db *db, lsm_txn *t, const model *m, const uint8_t *k, size_t kl) {
  static const int ops[] = {LSM_SEEK_LE, LSM_SEEK_GE, LSM_SEEK_EQ};
  uint8_t *kb = malloc(klim + 1);
  size_t i = model_lb(m, k, kl);
  int exact = i < m->n && model_cmp(m->e[i].k, m->e[i].kl, k, kl) == 0;
  for (int o = 0; o < 3; o++) {
    size_t want = ops[o] == LSM_SEEK_GE ? i : exact ? i : ops[o] == LSM_SEEK_EQ || i == 0 ? SIZE_MAX : i - 1;
    if (want >= m->n) want = SIZE_MAX;
    lsm_value v;
    size_t got = 12345;
    int rc = t ? lsm_txn_get_seek(t, k, kl, ops[o], kb, klim + 1, &got, &v)
               : lsm_get_seek(db, k, kl, ops[o], kb, klim + 1, &got, &v);
    if (want == SIZE_MAX) {
      CHECKF(rc == QUIRE_ENOTFOUND, "point seek op %d: rc %d, expected nothing", ops[o], rc);
      continue;
    }
    CHECKF(rc == 0, "point seek op %d: rc %d (%s)", ops[o], rc, quire_errmsg());
    const model_ent *e = &m->e[want];
    CHECKF(got == e->kl && model_cmp(kb, got, e->k, e->kl) == 0,
           "point seek op %d: key of %zu bytes, wanted %zu", ops[o], got, e->kl);
    CHECKF(v.len == e->vl && (v.len == 0 || memcmp(v.data, e->v, v.len) == 0), "point seek op %d: value",
           ops[o]);
    lsm_value_release(&v);
    if (e->kl) {
      got = 0;
      rc = t ? lsm_txn_get_seek(t, k, kl, ops[o], kb, e->kl - 1, &got, &v)
             : lsm_get_seek(db, k, kl, ops[o], kb, e->kl - 1, &got, &v);
      CHECK_RC(rc, QUIRE_ETOOLARGE);
      CHECK(got == e->kl && v.data == NULL);
    }
  }
  free(kb);
}

static void compare_all(lsm_db *db, const model *m, lsm_txn *t, const model *tm) {
  lsm_cursor *c;
  CHECK_OK(lsm_cursor_open(db, &c));
  compare_walks(c, m);
  uint8_t *k = malloc(klim + 2);
  for (int i = 0; i < 12; i++) {
    size_t kl;
    probe_key(k, &kl);
    compare_seek(c, m, k, kl);
    compare_point_seek(db, NULL, m, k, kl);
    lsm_value v;
    size_t j = model_lb(m, k, kl);
    int present = j < m->n && model_cmp(m->e[j].k, m->e[j].kl, k, kl) == 0;
    int rc = lsm_get(db, k, kl, &v);
    if (present) {
      CHECKF(rc == 0, "get: rc %d (%s)", rc, quire_errmsg());
      CHECK(v.len == m->e[j].vl && (v.len == 0 || memcmp(v.data, m->e[j].v, v.len) == 0));
      lsm_value_release(&v);
    } else {
      CHECK_RC(rc, QUIRE_ENOTFOUND);
    }
  }
  lsm_cursor_close(c);
  if (t) {
    lsm_cursor *tc;
    CHECK_OK(lsm_txn_cursor_open(t, &tc));
    compare_walks(tc, tm);
    for (int i = 0; i < 6; i++) {
      size_t kl;
      probe_key(k, &kl);
      compare_seek(tc, tm, k, kl);
      compare_point_seek(db, t, tm, k, kl);
      size_t j = model_lb(tm, k, kl);
      int present = j < tm->n && model_cmp(tm->e[j].k, tm->e[j].kl, k, kl) == 0;
      lsm_value v;
      int rc = lsm_txn_get(t, k, kl, &v);
      if (present) {
        CHECKF(rc == 0, "txn get: rc %d (%s)", rc, quire_errmsg());
        CHECK(v.len == tm->e[j].vl && (v.len == 0 || memcmp(v.data, tm->e[j].v, v.len) == 0));
        lsm_value_release(&v);
      } else {
        CHECK_RC(rc, QUIRE_ENOTFOUND);
      }
    }
    lsm_cursor_close(tc);
  }
  free(k);
}

/* Page accounting (the public lsm_check): every page is header, log,
 * reachable or free. */
static void check_file(lsm_db *db) {
  lsm_check_result cnt;
  int rc = lsm_check(db, &cnt);
  CHECKF(rc == 0 && cnt.error == 0, "check failed: %s", cnt.message);
  CHECKF(cnt.pages_leaked == 0 && cnt.pages_double == 0, "pages: %llu leaked, %llu used twice (%s)",
         (unsigned long long)cnt.pages_leaked, (unsigned long long)cnt.pages_double, cnt.message);
  CHECK(cnt.pages_header + cnt.pages_log + cnt.pages_segments + cnt.pages_free == cnt.pages_total);
  CHECK(cnt.pages_limbo <= cnt.pages_free && cnt.message[0] == 0);
}

/* merge: 0 background threads, 1 inline */
static void run(const char *dir, uint32_t pgsz, int steps, int sync_mode, int merge) {
  char path[512];
  snprintf(path, sizeof path, "%s/model-%u-%d-%d.db", dir, pgsz, sync_mode, merge);
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.page_size = pgsz;
  o.reserve_bytes = pgsz == 8192 ? 16 : 0;
  o.sync_mode = sync_mode;
  o.wal_pages = 16;
  o.txn_mem_bytes = 48 * 1024;
  o.memtable_bytes = 160 * 1024;
  o.max_incoming = 3;
  o.block_pages = 8;
  o.cache_bytes = 64 * 1024;
  /* tiny levels so partial merges run all the time */
  o.merge_inline = merge;
  o.level0_bytes = 12 * (uint64_t)pgsz;
  o.level_factor = 3;
  o.promote_leaves = 3;
  lsm_db *db;
  CHECK_OK(lsm_open(path, &o, &db));
  klim = lsm_max_key_len(db);
  model m = {0}, tm = {0};
  lsm_txn *t = NULL;
  uint8_t *k = malloc(klim + 2), *v = malloc(4 * pgsz);
  for (int step = 0; step < steps; step++) {
    uint64_t r = test_rand_below(100);
    if (!t) {
      if (r < 4) {
        CHECK_OK(lsm_close(db));
        CHECK_OK(lsm_open(path, &o, &db));
      } else if (r < 6) {
        CHECK_OK(lsm_flush(db));
      } else if (r < 7) {
        CHECK_OK(lsm_compact(db));
        check_file(db);
      } else if (r < 40) {
        /* a small transaction, the common case (goes through the log) */
        CHECK_OK(lsm_txn_begin(db, 0, &t));
        size_t kl = make_key((unsigned)test_rand_below(NKEYS), k);
        if (r < 32) {
          size_t vl = make_value(v, 2 * pgsz);
          CHECK_OK(lsm_txn_put(t, k, kl, v, vl));
          model_put(&m, k, kl, v, vl);
        } else {
          CHECK_OK(lsm_txn_delete(t, k, kl));
          model_del(&m, k, kl);
        }
        CHECKF(lsm_txn_commit(t) == 0, "commit: %s", quire_errmsg());
        t = NULL;
      } else {
        CHECK_OK(lsm_txn_begin(db, 0, &t));
        model_copy(&tm, &m);
      }
    } else if (r < 55) {
      size_t kl = make_key((unsigned)test_rand_below(NKEYS), k);
      size_t vl = make_value(v, 3 * pgsz + 100);
      CHECK_OK(lsm_txn_put(t, k, kl, v, vl));
      model_put(&tm, k, kl, v, vl);
    } else if (r < 70) {
      size_t kl = make_key((unsigned)test_rand_below(NKEYS), k);
      CHECK_OK(lsm_txn_delete(t, k, kl));
      model_del(&tm, k, kl);
    } else if (r < 74) {
      unsigned a = (unsigned)test_rand_below(NKEYS), b = a + (unsigned)test_rand_below(25);
      uint8_t *hi = malloc(klim + 2);
      size_t lol = make_key(a, k), hil = make_key(b, hi);
      CHECK_OK(lsm_txn_delete_range(t, k, lol, hi, hil));
      if (model_cmp(k, lol, hi, hil) < 0) model_del_range(&tm, k, lol, hi, hil);
      free(hi);
    } else if (r < 80) {
      /* a burst of writes so transactions spill */
      int n = (int)test_rand_below(120);
      for (int i = 0; i < n; i++) {
        size_t kl = make_key((unsigned)test_rand_below(NKEYS), k);
        size_t vl = make_value(v, 2 * pgsz);
        CHECK_OK(lsm_txn_put(t, k, kl, v, vl));
        model_put(&tm, k, kl, v, vl);
      }
    } else if (r < 94) {
      CHECKF(lsm_txn_commit(t) == 0, "commit: %s", quire_errmsg());
      t = NULL;
      model_copy(&m, &tm);
    } else {
      lsm_txn_abort(t);
      t = NULL;
    }
    compare_all(db, &m, t, &tm);
  }
  if (t) lsm_txn_abort(t);
  check_file(db);
  lsm_stats st;
  CHECK_OK(lsm_stats_get(db, &st));
  printf(
      "  page %u sync %d merges %s: %d steps, %zu keys, %llu commits, %llu flushes, %llu merges (%llu moved, "
      "%llu full, %llu partial, %llu batched), %u levels, %llu pages\n",
      pgsz, sync_mode, merge ? "inline" : "threads", steps, m.n, (unsigned long long)st.commits,
      (unsigned long long)st.flushes, (unsigned long long)st.merges, (unsigned long long)st.merges_moved,
      (unsigned long long)st.merges_full, (unsigned long long)st.merges_partial,
      (unsigned long long)st.merges_batched, st.nlevels, (unsigned long long)st.pages_total);
  CHECK_OK(lsm_close(db));
  /* reopen once more: everything committed is there */
  CHECK_OK(lsm_open(path, &o, &db));
  compare_all(db, &m, NULL, NULL);
  check_file(db);
  CHECK_OK(lsm_close(db));
  model_free(&m);
  model_free(&tm);
  free(k);
  free(v);
}

/* Heavy merging: tiny levels (Regular 0 of 2 MiB), a small memtable, small
 * promote windows, thousands of random transactions of puts, deletes and
 * range deletes over a key space large enough to fragment the free list
 * into hundreds of runs (and 1 KiB reserved per page, so a page of the saved
 * list holds 382 of them: more boundaries crossed). Every commit and every
 * background merge must succeed: the free-list save once failed here with
 * QUIRE_EINTERNAL ("keeps changing while it is saved") when allocating its
 * own blob moved the list across a page boundary and back (and a flush that
 * failed so leaked its segment's pages). test_lsm_basic has the exact shape
 * that oscillated. Compared with the model every 1000 transactions. */
#define CHURN_KEYS 40000u

static size_t churn_key(unsigned i, uint8_t *buf) { return (size_t)snprintf((char *)buf, 24, "c%08u", i); }

static void churn_compare(lsm_db *db, const model *m) {
  lsm_cursor *c;
  CHECK_OK(lsm_cursor_open(db, &c));
  compare_walks(c, m);
  lsm_cursor_close(c);
}

/* ranges 0: no range deletes, so Waiting passes take whole batches (a
 * segment with ranges ends a batch) */
static void run_churn(const char *dir, int txns, int merge, int ranges) {
  char path[512];
  snprintf(path, sizeof path, "%s/churn-%d-%d.db", dir, merge, ranges);
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = LSM_SYNC_OFF;
  o.reserve_bytes = 1024; /* 382 free runs per page of the saved list: more page boundaries crossed */
  o.wal_pages = 64;
  o.memtable_bytes = 256 * 1024;
  o.cache_bytes = 1 << 20;
  o.max_incoming = 4;
  o.merge_inline = merge;
  o.level0_bytes = 2u << 20;
  o.level_factor = 4;
  o.promote_leaves = 8;
  o.block_pages = 16;
  lsm_db *db;
  CHECK_OK(lsm_open(path, &o, &db));
  model m = {0};
  uint8_t k[24], hi[24], v[5000];
  size_t max_runs = 0;
  for (int i = 0; i < txns; i++) {
    lsm_txn *t;
    CHECK_OK(lsm_txn_begin(db, 0, &t));
    int nops = 1 + (int)test_rand_below(40);
    for (int j = 0; j < nops; j++) {
      uint64_t r = test_rand_below(100);
      size_t kl = churn_key((unsigned)test_rand_below(CHURN_KEYS), k);
      if (r < 80) {
        size_t vl = test_rand_below(20) ? 20 + test_rand_below(200) : 4096;
        memset(v, (int)test_rand_below(256), vl);
        v[0] = (uint8_t)i;
        CHECK_OK(lsm_txn_put(t, k, kl, v, vl));
        model_put(&m, k, kl, v, vl);
      } else if (r < 99 || !ranges) {
        CHECK_OK(lsm_txn_delete(t, k, kl));
        model_del(&m, k, kl);
      } else {
        unsigned a = (unsigned)test_rand_below(CHURN_KEYS);
        size_t lol = churn_key(a, k), hil = churn_key(a + 1 + (unsigned)test_rand_below(30), hi);
        CHECK_OK(lsm_txn_delete_range(t, k, lol, hi, hil));
        model_del_range(&m, k, lol, hi, hil);
      }
    }
    int rc = lsm_txn_commit(t);
    CHECKF(rc == 0, "commit %d: %s (%s)", i, quire_strerror(rc), quire_errmsg());
    pthread_mutex_lock(&db->lock);
    if (db->free.n > max_runs) max_runs = db->free.n;
    pthread_mutex_unlock(&db->lock);
    if (i % 1000 == 999) churn_compare(db, &m);
  }
  CHECK_OK(lsm_merge_wait(db));
  churn_compare(db, &m);
  check_file(db);
  lsm_stats st;
  CHECK_OK(lsm_stats_get(db, &st));
  printf("  churn, merges %s%s: %d transactions, %zu keys, %llu flushes, %llu merges (%llu partial, %llu "
         "batched), %u levels, %llu pages (%llu free), up to %zu free runs, %llu merge errors\n",
         merge ? "inline" : "threads", ranges ? "" : ", no range deletes", txns, m.n,
         (unsigned long long)st.flushes, (unsigned long long)st.merges, (unsigned long long)st.merges_partial,
         (unsigned long long)st.merges_batched, st.nlevels, (unsigned long long)st.pages_total,
         (unsigned long long)st.pages_free, max_runs, (unsigned long long)st.merge_errors);
  CHECK(st.merge_errors == 0);
  if (merge && !ranges)
    CHECK(st.merges_batched > (uint64_t)txns / 100); /* Waiting passes of several segments ran */
  CHECK_OK(lsm_close(db));
  CHECK_OK(lsm_open(path, &o, &db));
  churn_compare(db, &m);
  CHECK_OK(lsm_close(db));
  model_free(&m);
}

int main(void) {
  test_seed();
  char *dir = test_tmpdir("lsm_model");
  int steps = test_long_mode() ? 6000 : 700;
  run(dir, 4096, steps, LSM_SYNC_NORMAL, 0);
  run(dir, 4096, steps / 2, LSM_SYNC_NORMAL, 1);
  run(dir, 8192, steps / 2, LSM_SYNC_OFF, 0);
  run(dir, 4096, steps / 3, LSM_SYNC_FULL, 0);
  int churn = test_long_mode() ? 20000 : 4000;
  run_churn(dir, churn, 1, 1);
  run_churn(dir, churn, 0, 1);
  run_churn(dir, churn, 1, 0);
  CHECK(quire__never_count() == 0);
  test_rmtree(dir);
  free(dir);
  return test_done("test_lsm_model");
}
