/*
 * The write path's behaviour (writer.c, docs/PAGESTORE.md "Writing"):
 *  1. submit copies the pages: the caller may overwrite its buffers as soon
 *     as quire__ps_write_submit returns, and the segment holds what was
 *     submitted;
 *  2. a segment whose pages arrived out of segment order (descending
 *     indexes, volumes in descending id order) is gathered into order, and
 *     its bytes are exactly what the segment builder makes of the same
 *     pages (the format did not change);
 *  3. an upload that fails leaves nothing in the store and nothing in the
 *     cache (the cache slot written beside the upload is abandoned), the
 *     request fails with QUIRE_EUNAVAILABLE naming the segment, and the same
 *     pagestore then writes and caches normally; a lost ack (the store
 *     stored it but said it failed) is not cached either;
 *  4. group commit: while a segment is on its way to the store, the idle
 *     timer does not seal the open segment; requests arriving during the
 *     upload share one segment.
 * No metastore is needed: writes never talk to it.
 */
#include "test.h"
#include "pagestore/ps_int.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

static char *root;
static char store_url[4200];

static void fill(uint8_t *p, quire_pageidx idx, unsigned version) {
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 4)
    st_le32(p + i, idx * 1000003u + version * 7919u + (uint32_t)i);
}

static quire_pagestore *open_ps(const char *name, const char *url, uint64_t flush_ms) {
  char cache[4200];
  snprintf(cache, sizeof cache, "%s/%s", root, name);
  struct quire_pagestore_opts o = {.store_url = url,
                                   .metastore_url = "http://127.0.0.1:9",
                                   .catalog_path = ":memory:",
                                   .cache_dir = cache,
                                   .flush_interval_ms = flush_ms};
  quire_pagestore *ps;
  CHECK_OK(quire__pagestore_open(&o, &ps));
  return ps;
}

static int get_segment(quire_objstore *store, const quire_gid *sid, uint8_t **data, size_t *len) {
  char key[64], s[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(sid, s);
  snprintf(key, sizeof key, "segments/%s", s);
  return quire_objstore_get(store, key, data, len);
}

/* The segment's bytes equal the builder's for the pages it holds. */
static void check_same_as_builder(const uint8_t *data, size_t len) {
  quire_segment_view v;
  CHECK_OK(quire_segment_open(data, len, NULL, &v));
  CHECK_OK(quire_segment_verify_pages(&v));
  quire_segment_builder *b;
  CHECK_OK(quire_segment_builder_new(&v.sid, NULL, &b));
  for (uint32_t k = 0; k < v.volume_count; k++) {
    const uint8_t *e = v.volumes + 24ull * k;
    quire_gid vid;
    memcpy(vid.b, e, QUIRE_GID_SIZE);
    uint32_t first = ld_le32(e + 16), count = ld_le32(e + 20);
    for (uint32_t s = first; s < first + count; s++)
      CHECK_OK(quire_segment_builder_add(b, &vid, ld_le32(v.pageidx + 4ull * s),
                                         v.pages + (size_t)s * QUIRE_PAGE_SIZE));
  }
  uint8_t *want;
  size_t wlen;
  CHECK_OK(quire_segment_builder_to_buf(b, &want, &wlen));
  CHECK(wlen == len && memcmp(want, data, len) == 0);
  quire_segment_free(want);
  quire_segment_builder_free(b);
}

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
};

static void wake(void *ctx, ps_write *w) {
  (void)w;
  struct waiter *wt = ctx;
  pthread_mutex_lock(&wt->mu);
  wt->done = 1;
  pthread_cond_signal(&wt->cv);
  pthread_mutex_unlock(&wt->mu);
}

static void wait_done(struct waiter *wt) {
  pthread_mutex_lock(&wt->mu);
  while (!wt->done) pthread_cond_wait(&wt->cv, &wt->mu);
  pthread_mutex_unlock(&wt->mu);
}

#define NP 16

/* Submits NP pages of vid with indexes base+1.. (descending if desc),
 * version ver, from one buffer that is overwritten as soon as submit
 * returns. */
static ps_write *submit(quire_pagestore *ps, const quire_gid *vid, quire_pageidx base, int desc, unsigned ver,
                        struct waiter *wt) {
  static uint8_t buf[NP][QUIRE_PAGE_SIZE];
  quire_pageidx idx[NP];
  const uint8_t *pages[NP];
  for (unsigned i = 0; i < NP; i++) {
    idx[i] = desc ? base + NP - i : base + 1 + i;
    fill(buf[i], idx[i], ver);
    pages[i] = buf[i];
  }
  ps_write *w;
  CHECK_OK(quire__ps_write_submit(ps, vid, idx, pages, NP, wake, wt, &w));
  memset(buf, 0xEE, sizeof buf); /* the pagestore must have its own copy */
  return w;
}

/* Every page of the write's segments holds version ver. */
static void check_write(quire_objstore *store, ps_write *w, const quire_gid *vid, unsigned ver, int builder_eq) {
  CHECK_OK(quire__ps_write_result(w));
  const quire_gid *sids;
  const splinter_t *const *grafts;
  size_t n = quire__ps_write_segments(w, &sids, &grafts);
  CHECK(n >= 1);
  uint64_t total = 0;
  for (size_t k = 0; k < n; k++) {
    uint8_t *data;
    size_t len;
    CHECK_OK(get_segment(store, &sids[k], &data, &len));
    quire_segment_view v;
    CHECK_OK(quire_segment_open(data, len, NULL, &v));
    splinter_iter_t it;
    splinter_iter_init(&it, splinter_ref_owned(grafts[k]), 0);
    uint32_t idx;
    uint8_t want[QUIRE_PAGE_SIZE];
    while (splinter_iter_next(&it, &idx)) {
      const uint8_t *page;
      CHECK_OK(quire_segment_read_page(&v, vid, idx, &page));
      fill(want, idx, ver);
      CHECK(memcmp(page, want, QUIRE_PAGE_SIZE) == 0);
      total++;
    }
    if (builder_eq) check_same_as_builder(data, len);
    quire_objstore_free(data);
  }
  CHECK(total == NP);
}

/* Waits (bounded) until the cache holds `entries` published entries. */
static void wait_cached(quire_pagestore *ps, uint64_t entries) {
  ps_cache_stats st;
  for (int i = 0; i < 1000; i++) {
    ps__cache_stats(ps->cache, &st);
    if (st.entries == entries) break;
    usleep(10 * 1000);
  }
  CHECKF(st.entries == entries, "cache entries %llu, want %llu", (unsigned long long)st.entries,
         (unsigned long long)entries);
}

static void test_copy_and_order(quire_objstore *store) {
  quire_pagestore *ps = open_ps("cache-order", store_url, 10000);
  /* Two volumes, the higher id first, each with descending indexes: the
   * arrival order is the reverse of the segment order. */
  quire_gid a, b;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &a));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &b));
  if (quire_gid_cmp(&a, &b) < 0) {
    quire_gid t = a;
    a = b;
    b = t;
  }
  struct waiter wa = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  struct waiter wb = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  ps_write *w1 = submit(ps, &a, 100, 1, 1, &wa);
  ps_write *w2 = submit(ps, &b, 0, 1, 2, &wb);
  wait_done(&wa);
  wait_done(&wb);
  check_write(store, w1, &a, 1, 1);
  check_write(store, w2, &b, 2, 1);
  struct ps_write_timing t;
  quire__ps_write_timing(ps, &t);
  CHECK(t.gathered >= 1); /* out of order: the gather path ran */
  quire__ps_write_free(w1);
  quire__ps_write_free(w2);
  /* In order, one request: built in place, same bytes as the builder. */
  struct waiter wc = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  uint64_t gathered = t.gathered;
  ps_write *w3 = submit(ps, &a, 1000, 0, 3, &wc);
  wait_done(&wc);
  check_write(store, w3, &a, 3, 1);
  quire__ps_write_timing(ps, &t);
  CHECK(t.gathered == gathered);
  quire__ps_write_free(w3);
  quire__pagestore_close(ps);
}

static size_t count_segments(quire_objstore *store) {
  quire_objstore_list l = {0};
  CHECK_OK(quire_objstore_list_keys(store, "segments/", NULL, 10000, &l));
  size_t n = l.count;
  quire_objstore_list_free(&l);
  return n;
}

static void test_upload_failure(quire_objstore *store, const char *params, const char *name) {
  char url[4400];
  snprintf(url, sizeof url, "fault+%s?%s", store_url, params);
  quire_pagestore *ps = open_ps(name, url, 5);
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  size_t before = count_segments(store);
  struct waiter wt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  ps_write *w = submit(ps, &vid, 0, 0, 1, &wt);
  wait_done(&wt);
  CHECK_RC(quire__ps_write_result(w), QUIRE_EUNAVAILABLE);
  CHECKF(strstr(quire__ps_write_error(w), "uploading segments/") != NULL, "error: %s", quire__ps_write_error(w));
  const quire_gid *sids;
  const splinter_t *const *grafts;
  CHECK(quire__ps_write_segments(w, &sids, &grafts) == 0);
  quire__ps_write_free(w);
  quire__pagestore_close(ps); /* waits for the uploads: the slot is settled */
  /* Reopen the same cache directory without faults: nothing of the failed
   * segment was published (and leftovers of the slot are gone). */
  ps = open_ps(name, store_url, 5);
  ps_cache_stats st;
  ps__cache_stats(ps->cache, &st);
  CHECKF(st.entries == 0 && st.bytes == 0, "%llu entries, %llu bytes cached after a failed upload",
         (unsigned long long)st.entries, (unsigned long long)st.bytes);
  if (strstr(params, "lost_ack") == NULL) CHECK(count_segments(store) == before);
  /* The same writer path then works and caches. */
  struct waiter wt2 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  w = submit(ps, &vid, 0, 0, 2, &wt2);
  wait_done(&wt2);
  check_write(store, w, &vid, 2, 0);
  quire__ps_write_free(w);
  wait_cached(ps, 1);
  quire__pagestore_close(ps);
}

static void test_group_commit(void) {
  /* Every store call takes 1.5 s; the flush interval is long. */
  char url[4400];
  snprintf(url, sizeof url, "fault+%s?latency=1500&latency_p=1", store_url);
  quire_pagestore *ps = open_ps("cache-group", url, 60000);
  quire_gid v[3];
  struct waiter wt[3];
  ps_write *w[3];
  for (int i = 0; i < 3; i++) {
    CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &v[i]));
    wt[i] = (struct waiter){PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  }
  w[0] = submit(ps, &v[0], 0, 0, 1, &wt[0]);
  /* Its segment is sealed on idle (nothing in flight) and starts uploading. */
  for (int i = 0; i < 1000 && atomic_load(&ps->segments_flushed) == 0; i++) usleep(5 * 1000);
  CHECK(atomic_load(&ps->segments_flushed) == 1);
  /* Two more requests, well past the idle time apart: with an upload in
   * flight they wait for it and share one segment. */
  w[1] = submit(ps, &v[1], 0, 0, 2, &wt[1]);
  usleep(20 * 1000);
  w[2] = submit(ps, &v[2], 0, 0, 3, &wt[2]);
  for (int i = 0; i < 3; i++) wait_done(&wt[i]);
  CHECK(atomic_load(&ps->segments_flushed) == 2);
  const quire_gid *s1, *s2;
  const splinter_t *const *g;
  CHECK_OK(quire__ps_write_result(w[1]));
  CHECK_OK(quire__ps_write_result(w[2]));
  CHECK(quire__ps_write_segments(w[1], &s1, &g) == 1);
  CHECK(quire__ps_write_segments(w[2], &s2, &g) == 1);
  CHECK(quire_gid_cmp(s1, s2) == 0);
  for (int i = 0; i < 3; i++) quire__ps_write_free(w[i]);
  quire__pagestore_close(ps);
}

int main(void) {
  test_seed();
  root = test_tmpdir("ps-writer");
  snprintf(store_url, sizeof store_url, "file://%s/objects", root);
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(store_url, &store));
  test_copy_and_order(store);
  test_upload_failure(store, "err=1", "cache-fail");
  test_upload_failure(store, "lost_ack=1", "cache-lost");
  test_group_commit();
  quire_objstore_close(store);
  return test_done("pagestore_writer");
}
