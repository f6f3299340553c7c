/*
 * Corruption: flip random bytes in (or truncate) a closed database file;
 * opening and reading must either return the intact data or
 * QUIRE_ECORRUPT, never crash and never return wrong data. Runs on an
 * in-memory image through the fault file layer (no faults injected).
 */
#include <stdio.h>

#include "lsm_faultfs.h"
#include "lsm/lsm_int.h"
#include "lsm_testutil.h"

static lsm_options opts(faultfs *fs) {
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = LSM_SYNC_NORMAL;
  o.wal_pages = 8;
  o.max_incoming = 4;
  o.merge_inline = 1; /* the in-memory file layer is single-threaded */
  o.block_pages = 8;
  o.cache_bytes = 64 * 1024;
  o.vfs = &fs->vfs;
  return o;
}

static void build(faultfs *fs, model *m) {
  lsm_options o = opts(fs);
  lsm_db *db;
  CHECK_OK(lsm_open("c.db", &o, &db));
  uint8_t *v = malloc(20000);
  char k[32];
  for (int round = 0; round < 5; round++) {
    lsm_txn *t;
    CHECK_OK(lsm_txn_begin(db, 0, &t));
    for (int i = 0; i < 120; i++) {
      int n = snprintf(k, sizeof k, "key%05d", (int)test_rand_below(400));
      size_t vl = test_rand_below(10) == 0 ? 5000 + test_rand_below(9000) : test_rand_below(120);
      for (size_t j = 0; j < vl; j++) v[j] = (uint8_t)(round + j * 3 + (size_t)n);
      CHECK_OK(lsm_txn_put(t, k, (size_t)n, v, vl));
      model_put(m, k, (size_t)n, v, vl);
    }
    int a = (int)test_rand_below(400);
    char lo[32], hi[32];
    int ll = snprintf(lo, sizeof lo, "key%05d", a), hl = snprintf(hi, sizeof hi, "key%05d", a + 5);
    CHECK_OK(lsm_txn_delete_range(t, lo, (size_t)ll, hi, (size_t)hl));
    model_del_range(m, lo, (size_t)ll, hi, (size_t)hl);
    CHECK_OK(lsm_txn_commit(t));
    if (round % 2) CHECK_OK(lsm_flush(db));
  }
  CHECK_OK(lsm_close(db));
  free(v);
}

static long opened, refused, read_errors, intact;

/* Opens the image and reads everything; returns only if nothing wrong was
 * returned silently. */
static void probe(const uint8_t *img, size_t len, const model *m) {
  faultfs fs;
  ffs_init(&fs, img, len);
  lsm_options o = opts(&fs);
  o.create = 0;
  lsm_db *db;
  int rc = lsm_open("c.db", &o, &db);
  if (rc) {
    CHECKF(rc == QUIRE_ECORRUPT, "open: unexpected %s (%s)", quire_strerror(rc), quire_errmsg());
    refused++;
    ffs_free(&fs);
    return;
  }
  opened++;
  int bad = 0;
  lsm_cursor *c;
  CHECK_OK(lsm_cursor_open(db, &c));
  size_t i = 0;
  for (rc = lsm_cursor_first(c); rc == 0; rc = lsm_cursor_next(c), i++) {
    const void *k, *v;
    size_t kl, vl;
    CHECK_OK(lsm_cursor_key(c, &k, &kl));
    rc = lsm_cursor_value(c, &v, &vl);
    if (rc) break;
    CHECKF(i < m->n && model_cmp(k, kl, m->e[i].k, m->e[i].kl) == 0, "scan returned a wrong key at %zu", i);
    CHECKF(vl == m->e[i].vl && memcmp(v, m->e[i].v, vl) == 0, "scan returned a wrong value at %zu", i);
  }
  if (rc == QUIRE_EEND)
    CHECKF(i == m->n, "scan ended early at %zu of %zu without an error", i, m->n);
  else {
    CHECKF(rc == QUIRE_ECORRUPT, "scan: unexpected %s", quire_strerror(rc));
    bad = 1;
  }
  lsm_cursor_close(c);
  for (size_t j = 0; j < m->n; j++) {
    lsm_value v;
    rc = lsm_get(db, m->e[j].k, m->e[j].kl, &v);
    if (rc == QUIRE_ECORRUPT) {
      bad = 1;
      continue;
    }
    CHECKF(rc == 0, "get %zu: %s", j, quire_strerror(rc));
    CHECKF(v.len == m->e[j].vl && memcmp(v.data, m->e[j].v, v.len) == 0, "get returned a wrong value");
    lsm_value_release(&v);
  }
  if (bad)
    read_errors++;
  else
    intact++;
  (void)lsm_close(db);
  ffs_free(&fs);
}

/* Flips one byte of the checksum of the newest header slot of a file left
 * by a crash (the page-cache image of a database never closed) whose log
 * holds acknowledged commits. Opening must not silently go back in time:
 * after a flush (the log began a new epoch, so the older slot's records are
 * gone) it is QUIRE_ECORRUPT; after a merge (same epoch) the older slot and
 * the log replayed from its position hold every commit. */
static void put_keys(lsm_db *db, int from, int to, model *m) {
  char k[32], v[32];
  for (int i = from; i < to; i++) {
    lsm_txn *t;
    int kl = snprintf(k, sizeof k, "slot%05d", i), vl = snprintf(v, sizeof v, "value %d", i);
    CHECK_OK(lsm_txn_begin(db, 0, &t));
    CHECK_OK(lsm_txn_put(t, k, (size_t)kl, v, (size_t)vl));
    CHECK_OK(lsm_txn_commit(t));
    model_put(m, k, (size_t)kl, v, (size_t)vl);
  }
}

static void test_damaged_newest_slot(void) {
  for (int merge = 0; merge < 2; merge++) {
    faultfs fs;
    ffs_init(&fs, NULL, 0);
    lsm_options o = opts(&fs);
    o.merge_inline = 0;
    o.merge_off = 1;
    lsm_db *db;
    model m = {0};
    CHECK_OK(lsm_open("c.db", &o, &db));
    put_keys(db, 0, 50, &m);
    CHECK_OK(lsm_flush(db));
    put_keys(db, 50, 100, &m);
    if (merge)
      CHECK_OK(lsm_compact(db)); /* a flush, then a merge header in the same epoch */
    else
      CHECK_OK(lsm_flush(db));
    put_keys(db, 100, 130, &m); /* acknowledged, in the log only */
    uint8_t *img;
    size_t len;
    ffs_cached_image(&fs, &img, &len); /* a crash: never closed */
    CHECK_OK(lsm_close(db));
    ffs_free(&fs);
    lsm_hdr a, b;
    CHECK_OK(lsm__hdr_decode(img, &a));
    CHECK_OK(lsm__hdr_decode(img + LSM_SLOT_SIZE, &b));
    size_t newest = a.generation > b.generation ? 0 : 1;
    img[newest * LSM_SLOT_SIZE + LSM_SLOT_SIZE - 1 - test_rand_below(8)] ^=
        (uint8_t)(1 + test_rand_below(255));
    for (int ro = 0; ro < 2; ro++) {
      ffs_init(&fs, img, len);
      o = opts(&fs);
      o.read_only = ro;
      int rc = lsm_open("c.db", &o, &db);
      if (merge) {
        CHECKF(rc == 0, "merge header damaged: %s (%s)", quire_strerror(rc), quire_errmsg());
        lsm_cursor *c;
        CHECK_OK(lsm_cursor_open(db, &c));
        compare_walks(c, &m);
        lsm_cursor_close(c);
        CHECK_OK(lsm_close(db));
      } else {
        CHECKF(rc == QUIRE_ECORRUPT, "flush header damaged, commits in the log: open gave %s",
               quire_strerror(rc));
        CHECKF(strstr(quire_errmsg(), "newest header slot") != NULL, "unclear: %s", quire_errmsg());
      }
      ffs_free(&fs);
    }
    free(img);
    model_free(&m);
  }
}

int main(void) {
  test_seed();
  quire__log_set_level(-1);
  faultfs fs;
  ffs_init(&fs, NULL, 0);
  model m = {0};
  build(&fs, &m);
  size_t len = fs.clen;
  uint8_t *orig = malloc(len), *img = malloc(len);
  memcpy(orig, fs.cur, len);
  ffs_free(&fs);
  probe(orig, len, &m);
  CHECK(intact == 1);
  int trials = test_long_mode() ? 5000 : 400;
  for (int t = 0; t < trials; t++) {
    memcpy(img, orig, len);
    int flips = 1 + (int)test_rand_below(3);
    for (int f = 0; f < flips; f++) {
      size_t at = t % 4 == 0 ? test_rand_below(2 * LSM_SLOT_SIZE) : test_rand_below(len);
      img[at] ^= (uint8_t)(1 + test_rand_below(255));
    }
    probe(img, len, &m);
  }
  for (int t = 0; t < 40; t++) probe(orig, test_rand_below(len), &m); /* truncations */
  test_damaged_newest_slot();
  printf("  %d byte-flip trials + 40 truncations: %ld refused to open, %ld opened (%ld read errors, %ld "
         "fully intact)\n",
         trials, refused, opened, read_errors, intact);
  model_free(&m);
  free(orig);
  free(img);
  CHECK(quire__never_count() == 0);
  return test_done("test_lsm_corrupt");
}
