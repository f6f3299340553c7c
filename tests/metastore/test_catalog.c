/*
 * Catalogs (memory and LSM file) against a model: random appends with
 * overlaps (skipped), gaps (refused) and many volumes; gets and latest
 * compared after every step; the LSM catalog reopened and compared again; a
 * corrupt catalog file is moved aside and rebuilt empty.
 */
#include "test.h"
#include "metastore/catalog.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int main(void) {
  test_seed();
  ms_catalog *c;
  CHECK_OK(quire__catalog_open(":memory:", &c));
  run(&c, NULL);
  CHECK_OK(ms_catalog_close(c));

  char *dir = test_tmpdir("catalog");
  char path[4096];
  snprintf(path, sizeof path, "%s/ms.catalog", dir);
  CHECK_OK(quire__catalog_open(path, &c));
  run(&c, path);
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
