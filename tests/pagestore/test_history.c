/*
 * A long commit history through both services over loopback HTTP: 1 000
 * commits (10 000 with QUIRE_TEST_LONG=1), each writing 1–3 of 64 pages, then
 * reads at sampled LSNs (the oldest, the newest and random ones in between)
 * checked against a model. Reads of pages last written long ago walk back
 * through thousands of commits; a cold pagestore catches its catalog up from
 * the metastore in pages.
 */
#include "test.h"
#include "metastore/client.h"
#include "metastore/service.h"
#include "pagestore/client.h"
#include "pagestore/service.h"
#include "util/util.h"

#include <string.h>

#define PAGES 64

static uint16_t (*model)[PAGES + 1]; /* model[lsn][idx] = writer lsn (0 = never) */

static void fill(uint8_t *p, quire_pageidx idx, uint32_t writer) {
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 8) {
    st_le32(p + i, idx);
    st_le32(p + i + 4, writer ^ (uint32_t)i);
  }
}

static int check_page(void *ctx, quire_pageidx idx, const uint8_t *data) {
  quire_lsn lsn = *(quire_lsn *)ctx;
  uint8_t want[QUIRE_PAGE_SIZE];
  CHECKF(idx <= PAGES && model[lsn][idx] != 0, "lsn %llu: page %u should not exist", (unsigned long long)lsn,
         idx);
  fill(want, idx, model[lsn][idx]);
  CHECKF(memcmp(want, data, QUIRE_PAGE_SIZE) == 0, "lsn %llu page %u: wrong version", (unsigned long long)lsn,
         idx);
  return 0;
}

static void read_at(quire_psclient *c, const quire_gid *vid, quire_lsn lsn) {
  splinter_t *wanted, *missing;
  CHECK_OK(splinter_new(&wanted));
  CHECK_OK(splinter_insert_range(wanted, 1, PAGES));
  CHECK_OK(quire__psclient_read_pages(c, vid, lsn, wanted, NULL, check_page, &lsn, &missing));
  for (quire_pageidx i = 1; i <= PAGES; i++) CHECK(splinter_contains(missing, i) == (model[lsn][i] == 0));
  splinter_free(wanted);
  splinter_free(missing);
}

static quire_ps_service *start_ps(const char *store, const char *ms_url, const char *cache) {
  struct quire_ps_settings s = {.listen = "127.0.0.1:0"};
  s.ps.store_url = store;
  s.ps.metastore_url = ms_url;
  s.ps.catalog_path = ":memory:";
  s.ps.cache_dir = cache;
  quire_ps_service *svc;
  CHECK_OK(quire__ps_service_open(&s, &svc));
  return svc;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_seed();
  int commits = test_long_mode() ? 10000 : 1000;
  model = calloc((size_t)commits + 1, sizeof *model);
  char *root = test_tmpdir("ps-history");
  char store[4200], cache[4200], cache2[4200], ms_url[64], ps_url[64];
  snprintf(store, sizeof store, "file://%s/objects?fsync=0", root);
  snprintf(cache, sizeof cache, "%s/cache", root);
  snprintf(cache2, sizeof cache2, "%s/cache-cold", root);
  struct quire_ms_settings mss = {.listen = "127.0.0.1:0", .store_url = store, .catalog_path = ":memory:"};
  quire_ms_service *ms;
  CHECK_OK(quire__ms_service_open(&mss, &ms));
  snprintf(ms_url, sizeof ms_url, "http://127.0.0.1:%u", quire__ms_service_port(ms));
  quire_msclient *msc;
  CHECK_OK(quire__msclient_open(ms_url, NULL, &msc));
  quire_ps_service *ps = start_ps(store, ms_url, cache);
  snprintf(ps_url, sizeof ps_url, "http://127.0.0.1:%u", quire__ps_service_port(ps));
  quire_psclient *c;
  CHECK_OK(quire__psclient_open(ps_url, NULL, &c));
  quire_gid vid, client;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));

  uint8_t bufs[3][QUIRE_PAGE_SIZE];
  for (quire_lsn lsn = 1; lsn <= (quire_lsn)commits; lsn++) {
    memcpy(model[lsn], model[lsn - 1], sizeof model[0]);
    quire_pageidx idx[3];
    const uint8_t *pages[3];
    size_t n = 1 + (size_t)test_rand_below(3);
    for (size_t i = 0; i < n; i++) {
      quire_pageidx p;
      int dup;
      do { /* pages 33..64 are rarely rewritten: old versions stay deep in history */
        p = test_rand_below(8) == 0 ? 33 + (quire_pageidx)test_rand_below(32)
                                    : 1 + (quire_pageidx)test_rand_below(32);
        dup = 0;
        for (size_t k = 0; k < i; k++) dup |= idx[k] == p;
      } while (dup || (lsn > 64 && p > 32 && test_rand_below(64) != 0));
      idx[i] = p;
      fill(bufs[i], p, (uint32_t)lsn);
      pages[i] = bufs[i];
      model[lsn][p] = (uint16_t)lsn;
    }
    struct quire_ps_written *segs;
    size_t nsegs;
    CHECK_OK(quire__psclient_write_pages(c, &vid, idx, pages, n, NULL, &segs, &nsegs));
    struct quire_commit_segment cs[4];
    for (size_t i = 0; i < nsegs; i++)
      cs[i] = (struct quire_commit_segment){segs[i].sid, segs[i].graft, (uint32_t)segs[i].graft_len};
    quire_gid commit;
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit));
    struct quire_snapshot snap;
    CHECK_OK(quire__msclient_commit(msc, &vid, &client, &commit, lsn - 1, PAGES, cs, (uint32_t)nsegs, NULL,
                                    &snap));
    CHECK(snap.lsn == lsn);
    quire__psclient_written_free(segs, nsegs);
  }
  printf("%d commits written\n", commits);

  /* Warm pagestore: oldest, newest, random LSNs. */
  read_at(c, &vid, 1);
  read_at(c, &vid, (quire_lsn)commits);
  for (int i = 0; i < 30; i++) read_at(c, &vid, 1 + test_rand_below((uint64_t)commits));
  quire__psclient_close(c);

  /* A cold pagestore (empty catalog and cache) catches up and answers alike. */
  quire_ps_service *cold = start_ps(store, ms_url, cache2);
  snprintf(ps_url, sizeof ps_url, "http://127.0.0.1:%u", quire__ps_service_port(cold));
  CHECK_OK(quire__psclient_open(ps_url, NULL, &c));
  read_at(c, &vid, (quire_lsn)commits);
  for (int i = 0; i < 10; i++) read_at(c, &vid, 1 + test_rand_below((uint64_t)commits));
  quire__psclient_close(c);
  quire__ps_service_close(cold, 1000);
  quire__ps_service_close(ps, 1000);
  quire__msclient_close(msc);
  quire__ms_service_close(ms, 1000);
  CHECK(quire__never_count() == 0);
  test_rmtree(root);
  free(root);
  free(model);
  return test_done("pagestore_history");
}
