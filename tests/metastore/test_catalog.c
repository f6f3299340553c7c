/*
 * Catalogs (memory and LSM file) against a model: random appends with
 * overlaps (skipped), gaps (refused), forgotten volumes and many volumes; gets and latest
 * compared after every step; the LSM catalog reopened and compared again; a
 * corrupt catalog file is moved aside and rebuilt empty. Readers are not
 * blocked while an append holds the catalog (a hook holds it inside).
 */
#include "test.h"
#include "metastore/catalog.h"
#include "util/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { VOLS = 5, MAXLSN = 300 };

struct model {
  quire_gid vids[VOLS];
  quire_lsn latest[VOLS];
  quire_lsn first[VOLS]; /* a volume's first record: 1, or its base (docs/GC.md) */
};

/* Record bytes for (v, lsn): deterministic, of varying length. */
static size_t rec_for(int v, quire_lsn lsn, uint8_t *buf) {
  size_t n = 1 + (size_t)((lsn * 7 + (unsigned)v * 13) % 200);
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(lsn * 31 + (unsigned)v + i);
  return n;
}

static void check_against(ms_catalog *c, const struct model *m, int full) {
  quire_buf b;
  quire__buf_init(&b, 1 << 20);
  uint64_t total = 0;
  for (int v = 0; v < VOLS; v++) {
    quire_lsn l;
    CHECK_OK(ms_catalog_latest(c, &m->vids[v], &l));
    CHECK(l == m->latest[v]);
    total += l ? l - m->first[v] + 1 : 0;
    quire_lsn probe[3] = {1 + test_rand_below(MAXLSN), m->latest[v], m->latest[v] + 1};
    for (quire_lsn lsn = 1; lsn <= (full ? m->latest[v] + 1 : 3); lsn++) {
      quire_lsn at = full ? lsn : probe[lsn - 1];
      if (at == 0) continue;
      quire__buf_reset(&b);
      int rc = ms_catalog_get(c, &m->vids[v], at, &b);
      if (at > m->latest[v] || at < m->first[v]) {
        CHECK_RC(rc, QUIRE_ENOTFOUND);
      } else {
        uint8_t want[256];
        size_t n = rec_for(v, at, want);
        CHECK_OK(rc);
        CHECK(b.len == n && memcmp(b.data, want, n) == 0);
      }
    }
  }
  uint64_t vols, commits;
  c->ops->stats(c, &vols, &commits);
  CHECK(commits == total);
  quire__buf_free(&b);
}

static void run(ms_catalog **c, const char *reopen_path) {
  struct model m = {0};
  for (int v = 0; v < VOLS; v++) CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &m.vids[v]));
  for (int step = 0; step < 400; step++) {
    int v = (int)test_rand_below(VOLS);
    if (test_rand_below(25) == 0) {
      /* Retention moved the log past the catalog: it forgets the volume,
       * which may then start again anywhere. */
      CHECK_OK(ms_catalog_forget(*c, &m.vids[v]));
      m.latest[v] = m.first[v] = 0;
      check_against(*c, &m, 0);
      continue;
    }
    /* first in [latest - 3, latest + 2]: overlaps, exact appends and gaps;
     * an empty volume starts at 1 or, as at a base, further on. */
    quire_lsn first = m.latest[v] + 2 > 4 ? m.latest[v] - 3 + test_rand_below(6) : 1 + test_rand_below(3);
    if (m.latest[v] == 0 && test_rand_below(3) == 0) first = 1 + test_rand_below(20);
    if (first == 0) first = 1;
    size_t n = 1 + test_rand_below(4);
    uint8_t bufs[4][256];
    const uint8_t *recs[4];
    size_t lens[4];
    for (size_t i = 0; i < n; i++) {
      lens[i] = rec_for(v, first + i, bufs[i]);
      recs[i] = bufs[i];
    }
    int rc = ms_catalog_append(*c, &m.vids[v], first, n, recs, lens);
    if (m.latest[v] && first > m.latest[v] + 1) {
      CHECK_RC(rc, QUIRE_EINVAL);
    } else {
      CHECK_OK(rc);
      if (m.latest[v] == 0) m.first[v] = first;
      if (first + n - 1 > m.latest[v]) m.latest[v] = first + n - 1;
    }
    check_against(*c, &m, 0);
  }
  CHECK_RC(ms_catalog_append(*c, &m.vids[0], 0, 0, NULL, NULL), QUIRE_EINVAL);
  check_against(*c, &m, 1);
  if (reopen_path) {
    CHECK_OK(ms_catalog_close(*c));
    CHECK_OK(quire__catalog_open(reopen_path, c));
    check_against(*c, &m, 1);
  }
}

/* --- readers while an append holds the catalog ------------------------------ */

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static quire_gid held_vid;
static int held, released;

/* The append hook: an append to held_vid stops inside the catalog (holding
 * whatever the catalog holds during an append) until released. */
static void hold_append(const quire_gid *vid, quire_lsn first) {
  (void)first;
  if (quire_gid_cmp(vid, &held_vid) != 0) return;
  pthread_mutex_lock(&hold_mu);
  held = 1;
  pthread_cond_broadcast(&hold_cv);
  while (!released) pthread_cond_wait(&hold_cv, &hold_mu);
  pthread_mutex_unlock(&hold_mu);
}

struct held_append {
  ms_catalog *c;
  int rc;
};

static void *append_held(void *arg) {
  struct held_append *a = arg;
  uint8_t rec[256];
  const uint8_t *recs[1] = {rec};
  size_t lens[1] = {rec_for(0, 4, rec)};
  a->rc = ms_catalog_append(a->c, &held_vid, 4, 1, recs, lens);
  return NULL;
}

static void append_one(ms_catalog *c, const quire_gid *vid, int v, quire_lsn lsn) {
  uint8_t rec[256];
  const uint8_t *recs[1] = {rec};
  size_t lens[1] = {rec_for(v, lsn, rec)};
  CHECK_OK(ms_catalog_append(c, vid, lsn, 1, recs, lens));
}

/* While an append to volume A is held inside the catalog: latest and get of
 * A (at what it already holds) and of B, an append to B, and a new volume
 * all complete. Before the per-volume locking they waited for A's append
 * (one catalog mutex held across the LSM commit), and the test hung until
 * the alarm killed it: the alarm is a deadlock detector, not a timing
 * assertion — nothing here waits on the held append. */
static void test_readers_not_blocked(ms_catalog *c) {
  quire_gid b, fresh;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &held_vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &b));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &fresh));
  for (quire_lsn l = 1; l <= 3; l++) append_one(c, &held_vid, 0, l);
  for (quire_lsn l = 1; l <= 2; l++) append_one(c, &b, 1, l);
  held = released = 0;
  quire__catalog_append_hook = hold_append;
  struct held_append a = {c, -1};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, append_held, &a) == 0);
  pthread_mutex_lock(&hold_mu);
  while (!held) pthread_cond_wait(&hold_cv, &hold_mu);
  pthread_mutex_unlock(&hold_mu);
  alarm(60);
  quire_lsn l;
  CHECK_OK(ms_catalog_latest(c, &held_vid, &l));
  CHECK(l == 3); /* the held append is not published yet */
  quire_buf buf;
  quire__buf_init(&buf, 1 << 20);
  CHECK_OK(ms_catalog_get(c, &held_vid, 2, &buf));
  quire__buf_reset(&buf);
  CHECK_RC(ms_catalog_get(c, &held_vid, 4, &buf), QUIRE_ENOTFOUND);
  CHECK_OK(ms_catalog_latest(c, &b, &l));
  CHECK(l == 2);
  quire__buf_reset(&buf);
  CHECK_OK(ms_catalog_get(c, &b, 1, &buf));
  append_one(c, &b, 1, 3);
  CHECK_OK(ms_catalog_latest(c, &b, &l));
  CHECK(l == 3);
  append_one(c, &fresh, 2, 1);
  uint64_t vols, commits;
  c->ops->stats(c, &vols, &commits);
  alarm(0);
  pthread_mutex_lock(&hold_mu);
  released = 1;
  pthread_cond_broadcast(&hold_cv);
  pthread_mutex_unlock(&hold_mu);
  pthread_join(t, NULL);
  quire__catalog_append_hook = NULL;
  CHECK_OK(a.rc);
  CHECK_OK(ms_catalog_latest(c, &held_vid, &l));
  CHECK(l == 4);
  quire__buf_reset(&buf);
  CHECK_OK(ms_catalog_get(c, &held_vid, 4, &buf));
  quire__buf_free(&buf);
}

int main(void) {
  test_seed();
  ms_catalog *c;
  CHECK_OK(quire__catalog_open(":memory:", &c));
  run(&c, NULL);
  test_readers_not_blocked(c);
  CHECK_OK(ms_catalog_close(c));

  char *dir = test_tmpdir("catalog");
  char path[4096];
  snprintf(path, sizeof path, "%s/ms.catalog", dir);
  CHECK_OK(quire__catalog_open(path, &c));
  run(&c, path);
  test_readers_not_blocked(c);
  CHECK_OK(ms_catalog_close(c));
  /* A damaged file is moved aside and the catalog starts empty. */
  FILE *f = fopen(path, "r+b");
  CHECK(f != NULL);
  static uint8_t junk[8192];
  memset(junk, 0xA5, sizeof junk);
  CHECK(fwrite(junk, 1, sizeof junk, f) == sizeof junk);
  fclose(f);
  quire__log_set_level(-1);
  CHECK_OK(quire__catalog_open(path, &c));
  uint64_t vols, commits;
  c->ops->stats(c, &vols, &commits);
  CHECK(vols == 0 && commits == 0);
  CHECK_OK(ms_catalog_close(c));
  char aside[4200];
  snprintf(aside, sizeof aside, "%s.corrupt", path);
  struct stat st;
  CHECK(stat(aside, &st) == 0);
  test_rmtree(dir);
  free(dir);
  return test_done("metastore_catalog");
}
