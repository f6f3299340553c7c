/*
 * Commits of different durability in one database, with threads: a gate in
 * the file layer holds a FULL commit's sync while a NORMAL commit is made
 * behind it. The NORMAL one is written but must not be acknowledged or
 * visible (nor the FULL one through it) until the FULL one is durable; when
 * the held sync fails, both fail and neither is found after reopen, as the
 * page cache or the disk holds the file. Waits are on conditions, never on
 * time. Runs under TSan.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "lsm_faultfs.h"
#include "lsm/lsm_int.h"
#include "test.h"

static lsm_options opts(faultfs *fs, int mode) {
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = mode;
  o.merge_off = 1;  /* no background thread touches the file */
  o.wal_pages = 16; /* a small file: the in-memory images are copied whole */
  o.vfs = &fs->vfs;
  return o;
}

/* A gate in the file layer holds the FULL commit's sync while a NORMAL
 * commit is made: the NORMAL one is written but must not be acknowledged or
 * visible (nor the FULL one through it) until the FULL one is durable; when
 * the held sync fails, both fail and neither is found after reopen. */
typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int armed, holding, release, result;
} gate;

static int gate_hook(faultfs *fs, void *arg, int op, uint64_t off, size_t n) {
  (void)fs, (void)off, (void)n;
  gate *g = arg;
  if (op != FFS_OP_SYNC) return 0;
  pthread_mutex_lock(&g->mu);
  int rc = 0;
  if (g->armed) {
    g->armed = 0;
    g->holding = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->release) pthread_cond_wait(&g->cv, &g->mu);
    g->holding = 0;
    rc = g->result;
  }
  pthread_mutex_unlock(&g->mu);
  return rc;
}

typedef struct committer {
  lsm_db *db;
  const char *key;
  int mode, rc;
} committer;

static void *commit_one(void *arg) {
  committer *c = arg;
  lsm_txn *t;
  c->rc = lsm_txn_begin(c->db, 0, &t);
  if (!c->rc) c->rc = lsm_txn_set_sync(t, c->mode);
  if (!c->rc) c->rc = lsm_txn_put(t, c->key, strlen(c->key), "v", 1);
  if (!c->rc)
    c->rc = lsm_txn_commit(t);
  else
    lsm_txn_abort(t);
  return NULL;
}

static int has(lsm_db *db, const char *k) {
  lsm_value v;
  int rc = lsm_get(db, k, strlen(k), &v);
  lsm_value_release(&v);
  CHECK(rc == 0 || rc == QUIRE_ENOTFOUND);
  return rc == 0;
}

static void test_normal_behind_full(int sync_fails) {
  faultfs fs;
  ffs_init(&fs, NULL, 0);
  gate g = {.result = sync_fails ? QUIRE_EIO : 0};
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  lsm_options o = opts(&fs, LSM_SYNC_NORMAL);
  lsm_db *db;
  CHECK_OK(lsm_open("fault.db", &o, &db));
  committer before = {db, "before", LSM_SYNC_NORMAL, 0};
  commit_one(&before);
  CHECK_OK(before.rc);
  fs.hook = gate_hook;
  fs.hook_arg = &g;
  pthread_mutex_lock(&g.mu);
  g.armed = 1;
  pthread_mutex_unlock(&g.mu);
  committer full = {db, "full", LSM_SYNC_FULL, 0}, normal = {db, "normal", LSM_SYNC_NORMAL, 0};
  pthread_t ta, tb;
  CHECK(pthread_create(&ta, NULL, commit_one, &full) == 0);
  pthread_mutex_lock(&g.mu);
  while (!g.holding) pthread_cond_wait(&g.cv, &g.mu); /* the FULL commit is in its sync */
  pthread_mutex_unlock(&g.mu);
  pthread_mutex_lock(&fs.mu);
  long writes = fs.nwrite;
  pthread_mutex_unlock(&fs.mu);
  CHECK(pthread_create(&tb, NULL, commit_one, &normal) == 0);
  for (;;) { /* wait until the NORMAL commit's record is written */
    pthread_mutex_lock(&fs.mu);
    long now = fs.nwrite;
    pthread_mutex_unlock(&fs.mu);
    if (now > writes) break;
    sched_yield();
  }
  /* written, but behind a FULL commit that is not durable: neither is visible */
  CHECK(has(db, "before"));
  CHECK(!has(db, "normal"));
  CHECK(!has(db, "full"));
  pthread_mutex_lock(&g.mu);
  g.release = 1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  fs.hook = NULL;
  if (sync_fails) {
    CHECK_RC(full.rc, QUIRE_EIO);
    CHECK_RC(normal.rc, QUIRE_EIO);
    CHECK(!has(db, "full") && !has(db, "normal"));
    CHECK_RC(lsm_close(db), QUIRE_EIO);
  } else {
    CHECK_OK(full.rc);
    CHECK_OK(normal.rc);
    CHECK(has(db, "full") && has(db, "normal"));
    CHECK_OK(lsm_close(db));
  }
  for (int power_cut = 0; power_cut < 2; power_cut++) {
    uint8_t *img;
    size_t len;
    if (power_cut)
      ffs_crash_image(&fs, FFS_DROP, &img, &len);
    else
      ffs_cached_image(&fs, &img, &len);
    faultfs fs2;
    ffs_init(&fs2, img, len);
    free(img);
    lsm_options o2 = opts(&fs2, LSM_SYNC_NORMAL);
    CHECK_OK(lsm_open("fault.db", &o2, &db));
    CHECK(has(db, "full") == !sync_fails);
    CHECK(has(db, "normal") == !sync_fails);
    CHECK_OK(lsm_close(db));
    ffs_free(&fs2);
  }
  ffs_free(&fs);
  pthread_mutex_destroy(&g.mu);
  pthread_cond_destroy(&g.cv);
}

int main(void) {
  test_seed();
  test_normal_behind_full(0);
  test_normal_behind_full(1);
  CHECK(quire__never_count() == 0);
  return test_done("test_lsm_sync");
}
