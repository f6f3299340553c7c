/*
 * Concurrency: reader threads on pinned snapshots see a stable, consistent
 * view while a writer commits, flushes and merges (freeing and reusing
 * pages). Every commit rewrites all keys with one generation number, so a
 * snapshot must show a single generation everywhere, the same on a second
 * pass, and point reads never go backwards. Run under TSan (label tsan).
 */
#include <pthread.h>
#include <stdio.h>

#include "lsm/lsm_int.h"
#include "test.h"

#define NKEYS 60
#define NREADERS 3

static lsm_db *db;
static atomic_int done;
static int commits;
static atomic_long scans;

static size_t val_len(int i) { return i % 17 == 0 ? 6000 : 40; }

static void *writer(void *arg) {
  (void)arg;
  uint8_t v[6000];
  for (int g = 1; g <= commits; g++) {
    lsm_txn *t;
    CHECK_OK(lsm_txn_begin(db, 0, &t));
    for (int i = 0; i < NKEYS; i++) {
      char k[16];
      int n = snprintf(k, sizeof k, "key%03d", i);
      memset(v, (uint8_t)g, sizeof v);
      st_be64(v, (uint64_t)g);
      CHECK_OK(lsm_txn_put(t, k, (size_t)n, v, val_len(i)));
    }
    CHECK_OK(lsm_txn_commit(t));
    if (g % 7 == 0) CHECK_OK(lsm_flush(db));
    if (g % 23 == 0) CHECK_OK(lsm_compact(db));
  }
  atomic_store(&done, 1);
  return NULL;
}

/* One pass; returns the generation seen (all equal) or 0 if empty. */
static uint64_t scan(lsm_cursor *c) {
  uint64_t gen = 0;
  int n = 0, rc;
  for (rc = lsm_cursor_first(c); rc == 0; rc = lsm_cursor_next(c), n++) {
    const void *v;
    size_t vl;
    CHECK_OK(lsm_cursor_value(c, &v, &vl));
    CHECK(vl >= 8);
    uint64_t g = ld_be64(v);
    CHECK(((const uint8_t *)v)[vl - 1] == (uint8_t)g);
    if (n == 0) gen = g;
    CHECKF(g == gen, "snapshot mixes generations %llu and %llu", (unsigned long long)gen,
           (unsigned long long)g);
  }
  CHECK_RC(rc, QUIRE_EEND);
  CHECK(n == 0 || n == NKEYS);
  return gen;
}

static void *reader(void *arg) {
  (void)arg;
  uint64_t last_get = 0;
  while (!atomic_load(&done)) {
    lsm_cursor *c;
    CHECK_OK(lsm_cursor_open(db, &c));
    uint64_t g1 = scan(c);
    for (int i = 0; i < 3; i++) {
      lsm_value v;
      int rc = lsm_get(db, "key017", 6, &v);
      if (rc == QUIRE_ENOTFOUND) continue;
      CHECK_OK(rc);
      uint64_t g = ld_be64(v.data);
      CHECK(g >= last_get);
      last_get = g;
      lsm_value_release(&v);
    }
    uint64_t g2 = scan(c); /* the writer has moved on; the snapshot has not */
    CHECK(g1 == g2);
    lsm_cursor_close(c);
    atomic_fetch_add(&scans, 1);
  }
  return NULL;
}

/* FULL-mode committers in parallel share log syncs (group commit); every
 * acknowledged commit must be there after a reopen. */
#define NCOMMITTERS 4
static int per_thread;

static void *committer(void *arg) {
  int id = (int)(intptr_t)arg;
  for (int i = 0; i < per_thread; i++) {
    char k[32];
    int n = snprintf(k, sizeof k, "g%d-%04d", id, i);
    lsm_txn *t;
    CHECK_OK(lsm_txn_begin(db, 0, &t));
    CHECK_OK(lsm_txn_put(t, k, (size_t)n, k, (size_t)n));
    CHECK_OK(lsm_txn_commit(t));
    lsm_value v; /* read-your-commit: visible as soon as commit returns */
    CHECK_OK(lsm_get(db, k, (size_t)n, &v));
    lsm_value_release(&v);
  }
  return NULL;
}

static void group_commit_phase(const char *path) {
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = LSM_SYNC_FULL;
  o.wal_pages = 8;
  CHECK_OK(lsm_open(path, &o, &db));
  pthread_t th[NCOMMITTERS];
  for (int i = 0; i < NCOMMITTERS; i++)
    CHECK(pthread_create(&th[i], NULL, committer, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NCOMMITTERS; i++) pthread_join(th[i], NULL);
  lsm_stats st;
  CHECK_OK(lsm_stats_get(db, &st));
  printf("  group commit: %d FULL commits from %d threads, %llu syncs\n", NCOMMITTERS * per_thread,
         NCOMMITTERS, (unsigned long long)st.log_syncs);
  CHECK_OK(lsm_close(db));
  o.create = 0;
  CHECK_OK(lsm_open(path, &o, &db));
  for (int id = 0; id < NCOMMITTERS; id++) {
    for (int i = 0; i < per_thread; i++) {
      char k[32];
      int n = snprintf(k, sizeof k, "g%d-%04d", id, i);
      lsm_value v;
      CHECK_OK(lsm_get(db, k, (size_t)n, &v));
      CHECK(v.len == (size_t)n && memcmp(v.data, k, (size_t)n) == 0);
      lsm_value_release(&v);
    }
  }
  CHECK_OK(lsm_close(db));
}

/* The memtable under one writer and lock-free readers: a reader at snapshot
 * S must never get a version newer than S, even when the writer links one
 * right where the reader's descent stopped (a bug found here: readers saw a
 * commit before it was visible, then lost it again). */
static lsm_mem *race_mem;
static atomic_ullong race_published;
static atomic_int race_done;

static void *race_writer(void *arg) {
  (void)arg;
  uint64_t n = test_long_mode() ? 400000 : 60000;
  for (uint64_t seq = 1; seq <= n; seq++) {
    uint8_t v[8];
    st_be64(v, seq);
    CHECK_OK(lsm__mem_put(race_mem, "hot", 3, LSM_V_INLINE, v, 8, seq));
    if (seq % 3 == 0) CHECK_OK(lsm__mem_put(race_mem, "hou", 3, LSM_V_INLINE, v, 8, seq));
    atomic_store(&race_published, seq);
  }
  atomic_store(&race_done, 1);
  return NULL;
}

static void *race_reader(void *arg) {
  long *bad = arg;
  while (!atomic_load(&race_done)) {
    uint64_t snap = atomic_load(&race_published);
    lsm_mnode *n = lsm__mem_find(race_mem, "hot", 3, snap);
    if (n && n->seq > snap) (*bad)++;
    if (snap && (!n || n->seq != snap)) (*bad)++; /* the newest visible version, exactly */
  }
  return NULL;
}

static void test_mem_race(void) {
  CHECK_OK(lsm__mem_new(&race_mem));
  long bad[2] = {0, 0};
  pthread_t w, r[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&r[i], NULL, race_reader, &bad[i]) == 0);
  CHECK(pthread_create(&w, NULL, race_writer, NULL) == 0);
  pthread_join(w, NULL);
  for (int i = 0; i < 2; i++) pthread_join(r[i], NULL);
  CHECKF(bad[0] + bad[1] == 0, "%ld memtable reads saw the wrong version", bad[0] + bad[1]);
  lsm__mem_unref(race_mem);
}

int main(void) {
  test_seed();
  test_mem_race();
  commits = test_long_mode() ? 2000 : 150;
  char *dir = test_tmpdir("lsm_threads");
  char path[512];
  snprintf(path, sizeof path, "%s/t.db", dir);
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = LSM_SYNC_NORMAL;
  o.wal_pages = 16;
  o.max_incoming = 3;
  o.block_pages = 8;
  o.cache_bytes = 256 * 1024;
  CHECK_OK(lsm_open(path, &o, &db));
  pthread_t w, r[NREADERS];
  for (int i = 0; i < NREADERS; i++) CHECK(pthread_create(&r[i], NULL, reader, NULL) == 0);
  CHECK(pthread_create(&w, NULL, writer, NULL) == 0);
  pthread_join(w, NULL);
  for (int i = 0; i < NREADERS; i++) pthread_join(r[i], NULL);
  lsm_check_counts cnt;
  CHECK_OK(lsm__check(db, NULL, NULL, &cnt));
  CHECK(cnt.leaked == 0 && cnt.double_use == 0);
  lsm_stats st;
  CHECK_OK(lsm_stats_get(db, &st));
  printf("  %d commits, %ld snapshot scans, %llu flushes, %llu merges\n", commits, atomic_load(&scans),
         (unsigned long long)st.flushes, (unsigned long long)st.merges);
  CHECK_OK(lsm_close(db));
  per_thread = test_long_mode() ? 500 : 60;
  snprintf(path, sizeof path, "%s/g.db", dir);
  group_commit_phase(path);
  CHECK(quire__never_count() == 0);
  test_rmtree(dir);
  free(dir);
  return test_done("test_lsm_threads");
}
