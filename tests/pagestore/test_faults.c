/*
 * Pagestore over a fault-injecting object store (seeded, reproducible):
 *  - with failing uploads, a write either succeeds, and then every segment
 *    it reports is really in the store and holds exactly its pages, or fails
 *    with QUIRE_EUNAVAILABLE;
 *  - with "lost acks" (the upload succeeded but the caller is told it
 *    failed), writes fail and are never reported durable;
 *  - with failing reads, a read either returns exactly the right pages or
 *    fails with QUIRE_EUNAVAILABLE; the server never crashes.
 */
#include "test.h"
#include "metastore/client.h"
#include "metastore/service.h"
#include "pagestore/ps_int.h"

#include <string.h>

static char *root;
static char ms_url[64], store_dir[4096], store_url[4200];
static quire_gid vid;

static void fill(uint8_t *p, quire_pageidx idx, unsigned version) {
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 4)
    st_le32(p + i, idx * 1000003u + version * 7919u + (uint32_t)i);
}

static quire_pagestore *open_ps(const char *name, const char *fault_params) {
  char url[4400], cache[4200];
  snprintf(url, sizeof url, "fault+%s?%s", store_url, fault_params);
  snprintf(cache, sizeof cache, "%s/%s", root, name);
  struct quire_pagestore_opts o = {.store_url = url,
                                   .metastore_url = ms_url,
                                   .catalog_path = ":memory:",
                                   .cache_dir = cache,
                                   .flush_interval_ms = 5,
                                   .partial_read_percent = 50};
  quire_pagestore *ps;
  CHECK_OK(quire__pagestore_open(&o, &ps));
  return ps;
}

/* Checks, in the real (unfaulted) store, that segment sid holds pages[] of vid. */
static void check_durable(quire_objstore *plain, const quire_gid *sid, const splinter_t *graft,
                          unsigned version) {
  char key[64], s[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(sid, s);
  snprintf(key, sizeof key, "segments/%s", s);
  uint8_t *data;
  size_t len;
  CHECK_OK(quire_objstore_get(plain, key, &data, &len));
  quire_segment_view v;
  CHECK_OK(quire_segment_open(data, len, NULL, &v));
  splinter_iter_t it;
  splinter_iter_init(&it, splinter_ref_owned(graft), 0);
  uint32_t idx;
  uint8_t want[QUIRE_PAGE_SIZE];
  while (splinter_iter_next(&it, &idx)) {
    const uint8_t *page;
    CHECK_OK(quire_segment_read_page(&v, &vid, idx, &page));
    fill(want, idx, version);
    CHECK(memcmp(page, want, QUIRE_PAGE_SIZE) == 0);
  }
  quire_objstore_free(data);
}

struct read_check {
  unsigned version;
  int pages;
};
static int on_pages(void *ctx, const quire_pageidx *idx, const uint8_t *const *pages, size_t n) {
  struct read_check *rc = ctx;
  uint8_t want[QUIRE_PAGE_SIZE];
  for (size_t i = 0; i < n; i++) {
    fill(want, idx[i], rc->version);
    CHECK(memcmp(pages[i], want, QUIRE_PAGE_SIZE) == 0);
    rc->pages++;
  }
  return 0;
}

int main(void) {
  test_seed();
  root = test_tmpdir("ps-faults");
  snprintf(store_dir, sizeof store_dir, "%s/objects", root);
  snprintf(store_url, sizeof store_url, "file://%s", store_dir);
  struct quire_ms_settings mss = {
      .listen = "127.0.0.1:0", .store_url = store_url, .catalog_path = ":memory:"};
  quire_ms_service *ms;
  CHECK_OK(quire__ms_service_open(&mss, &ms));
  snprintf(ms_url, sizeof ms_url, "http://127.0.0.1:%u", quire__ms_service_port(ms));
  quire_msclient *msc;
  CHECK_OK(quire__msclient_open(ms_url, NULL, &msc));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  quire_objstore *plain;
  CHECK_OK(quire_objstore_open(store_url, &plain));

  /* 1. Failing uploads. */
  char params[128];
  snprintf(params, sizeof params, "seed=%llu&err=0.3", (unsigned long long)test_rand_below(1u << 30));
  quire_pagestore *ps = open_ps("cache-w", params);
  int ok = 0, failed = 0;
  quire_lsn lsn = 0;
  unsigned last_version = 0; /* the round whose pages are visible at lsn */
  uint8_t bufs[8][QUIRE_PAGE_SIZE];
  for (unsigned round = 1; round <= 40; round++) {
    quire_pageidx idx[8];
    const uint8_t *pages[8];
    for (unsigned i = 0; i < 8; i++) {
      idx[i] = 1 + i * 3;
      fill(bufs[i], idx[i], round);
      pages[i] = bufs[i];
    }
    ps_write *w;
    int rc = quire__ps_write_wait(ps, &vid, idx, pages, 8, &w);
    if (rc == 0) {
      const quire_gid *sids;
      const splinter_t *const *grafts;
      size_t n = quire__ps_write_segments(w, &sids, &grafts);
      uint64_t total = 0;
      struct quire_commit_segment cs[8];
      uint8_t *gbytes[8];
      for (size_t k = 0; k < n; k++) {
        check_durable(plain, &sids[k], grafts[k], round);
        total += splinter_cardinality(grafts[k]);
        size_t glen;
        CHECK_OK(splinter_serialize_alloc(grafts[k], &gbytes[k], &glen));
        cs[k] = (struct quire_commit_segment){sids[k], gbytes[k], (uint32_t)glen};
      }
      CHECK(total == 8);
      /* Commit it, so reads below have history (the last success wins). */
      quire_gid client, commit;
      CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
      CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit));
      struct quire_snapshot snap;
      CHECK_OK(quire__msclient_commit(msc, &vid, &client, &commit, lsn, 100, cs, (uint32_t)n, NULL, &snap));
      lsn = snap.lsn;
      last_version = round;
      for (size_t k = 0; k < n; k++) splinter_bytes_free(gbytes[k]);
      ok++;
    } else {
      CHECK_RC(rc, QUIRE_EUNAVAILABLE);
      /* The answer says what failed. */
      CHECKF(strstr(quire__ps_write_error(w), "uploading segments/"), "'%s'", quire__ps_write_error(w));
      failed++;
    }
    quire__ps_write_free(w);
  }
  struct quire_snapshot snap;
  CHECK_OK(quire__msclient_snapshot(msc, &vid, 0, NULL, &snap));
  CHECK(snap.lsn == lsn);
  printf("uploads failing 30%%: %d writes durable, %d failed cleanly\n", ok, failed);
  CHECK(ok > 0 && failed > 0);
  quire__pagestore_close(ps);

  /* 2. Lost acks: every upload lands but is reported failed. */
  ps = open_ps("cache-l", "seed=7&lost_ack=1");
  {
    quire_pageidx idx[1] = {50};
    const uint8_t *pages[1] = {bufs[0]};
    ps_write *w;
    CHECK_RC(quire__ps_write_wait(ps, &vid, idx, pages, 1, &w), QUIRE_EUNAVAILABLE);
    const quire_gid *sids;
    const splinter_t *const *grafts;
    CHECK(quire__ps_write_segments(w, &sids, &grafts) == 0);
    quire__ps_write_free(w);
  }
  quire__pagestore_close(ps);

  /* 3. Failing reads (20% of store calls), each on a cold cache: right pages or EUNAVAILABLE. */
  splinter_t *wanted;
  CHECK_OK(splinter_new(&wanted));
  for (unsigned i = 0; i < 8; i++) CHECK(splinter_insert(wanted, 1 + i * 3) == 1);
  int rok = 0, rfail = 0;
  for (int round = 0; round < 20; round++) {
    snprintf(params, sizeof params, "seed=%llu&err=0.2", (unsigned long long)test_rand_below(1u << 30));
    char name[32];
    snprintf(name, sizeof name, "cache-r%d", round);
    ps = open_ps(name, params);
    splinter_t *m = NULL;
    struct read_check rc = {last_version, 0};
    int r = quire__ps_read(ps, &vid, lsn, splinter_ref_owned(wanted), on_pages, &rc, &m);
    if (r == 0) {
      rok++;
      CHECK(rc.pages == 8 && splinter_is_empty(m));
    } else {
      CHECKF(r == QUIRE_EUNAVAILABLE, "faulty read failed with %s", quire_errname(r));
      if (round == 0) printf("a failed read says: %s\n", quire_errmsg());
      rfail++;
    }
    splinter_free(m);
    quire__pagestore_close(ps);
  }
  printf("reads failing 20%%: %d correct, %d failed cleanly\n", rok, rfail);
  CHECK(rok > 0);

  splinter_free(wanted);
  quire_objstore_close(plain);
  quire__msclient_close(msc);
  quire__ms_service_close(ms, 1000);
  CHECK(quire__never_count() == 0);
  test_rmtree(root);
  free(root);
  return test_done("pagestore_faults");
}
