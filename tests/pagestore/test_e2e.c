/*
 * Pagestore end to end, through real HTTP on loopback: a metastore and a
 * pagestore sharing a file:// store. Two volumes are written concurrently
 * (so they share segments), committed through the metastore, and read back
 * at every LSN: every page must have the content of its newest version at
 * or below that LSN, never-written pages must be reported missing. Then:
 * unknown LSNs, malformed requests, single flight on cold segments (100
 * concurrent reads, one download, one catalog catch-up), restart with the
 * cache and catalog resumed, partial (ranged) reads, and a store that fails.
 * Both services share a write-receipt key: every commit passes on the
 * receipts write_pages gave. A read of a caught-up volume completes while
 * another volume's catalog catch-up is held inside the catalog.
 */
#include "test.h"
#include "core/receipt.h"
#include "metastore/catalog.h"
#include "metastore/client.h"
#include "metastore/service.h"
#include "net/http_client.h"
#include "pagestore/client.h"
#include "pagestore/service.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define MAXPAGE 160
#define MAXLSN 64

static char *root;
static char ms_url[64], store_url[512], receipt_key[512];
static quire_ms_service *ms;
static quire_msclient *msc;

/* model[v][lsn][idx]: the lsn that wrote the version visible at lsn (0 = never). */
static uint16_t model[2][MAXLSN + 1][MAXPAGE + 1];
static quire_gid vids[2];
static quire_lsn latest[2];

static void fill_page(uint8_t *p, int v, quire_pageidx idx, quire_lsn writer) {
  uint64_t x = ((uint64_t)v << 48) ^ ((uint64_t)idx << 20) ^ writer ^ 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy(p + i, &x, 8);
  }
}

static quire_ps_service *open_ps(const char *cache, const char *catalog, const char *store,
                                 unsigned partial) {
  struct quire_ps_settings s = {.listen = "127.0.0.1:0"};
  s.ps.store_url = store;
  s.ps.metastore_url = ms_url;
  s.ps.catalog_path = catalog;
  s.ps.cache_dir = cache;
  s.ps.flush_interval_ms = 20;
  s.ps.partial_read_percent = partial;
  s.ps.no_partial_reads = partial == 0;
  s.ps.cache_bytes = 64u << 20;
  s.receipt_key_file = receipt_key;
  quire_ps_service *svc;
  CHECK_OK(quire__ps_service_open(&s, &svc));
  return svc;
}

static quire_psclient *client_for(quire_ps_service *svc) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", quire__ps_service_port(svc));
  quire_psclient *c;
  CHECK_OK(quire__psclient_open(url, NULL, &c));
  return c;
}

/* One commit on volume v: write a random set of pages, commit them. */
struct writer_arg {
  quire_psclient *c;
  int v;
  int commits;
  uint64_t seed;
};

static void *writer(void *arg) {
  struct writer_arg *a = arg;
  uint64_t s = a->seed;
  for (int k = 0; k < a->commits; k++) {
    quire_lsn lsn = latest[a->v] + 1;
    quire_pageidx idx[64];
    uint8_t *bufs[64];
    const uint8_t *pages[64];
    size_t n = 0;
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    quire_pageidx range = k % 3 == 0 ? 20 : MAXPAGE - 10; /* every third commit hits low pages */
    size_t want = 1 + s % (range < 40 ? range : 40);
    uint8_t used[MAXPAGE + 1] = {0};
    while (n < want) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      quire_pageidx i = 1 + (quire_pageidx)(s % range);
      if (used[i]) continue;
      used[i] = 1;
      idx[n] = i;
      bufs[n] = malloc(QUIRE_PAGE_SIZE);
      fill_page(bufs[n], a->v, i, lsn);
      pages[n] = bufs[n];
      n++;
    }
    struct quire_ps_written *segs;
    size_t nsegs;
    CHECK_OK(quire__psclient_write_pages(a->c, &vids[a->v], idx, pages, n, NULL, &segs, &nsegs));
    CHECK(nsegs >= 1);
    struct quire_commit_segment cs[16];
    uint64_t total = 0;
    for (size_t i = 0; i < nsegs; i++) {
      cs[i] = (struct quire_commit_segment){segs[i].sid, segs[i].graft, (uint32_t)segs[i].graft_len};
      CHECK(segs[i].receipt_len == 32); /* the metastore takes nothing without it */
      cs[i].receipt = segs[i].receipt;
      cs[i].receipt_len = (uint32_t)segs[i].receipt_len;
      splinter_view_t gv;
      CHECK_OK(splinter_view_open(segs[i].graft, segs[i].graft_len, &gv));
      total += splinter_view_cardinality(&gv);
    }
    CHECK(total == n); /* every page is in exactly one reported segment */
    quire_gid client, commit;
    CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit));
    struct quire_snapshot snap;
    CHECK_OK(quire__msclient_commit(msc, &vids[a->v], &client, &commit, lsn - 1, MAXPAGE, cs, (uint32_t)nsegs,
                                    NULL, &snap));
    CHECK(snap.lsn == lsn);
    memcpy(model[a->v][lsn], model[a->v][lsn - 1], sizeof model[0][0]);
    for (size_t i = 0; i < n; i++) model[a->v][lsn][idx[i]] = (uint16_t)lsn;
    latest[a->v] = lsn;
    quire__psclient_written_free(segs, nsegs);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
  }
  return NULL;
}

struct check_ctx {
  int v;
  quire_lsn lsn;
  uint8_t seen[MAXPAGE + 1];
  uint8_t page[QUIRE_PAGE_SIZE];
};

static int on_page(void *ctx, quire_pageidx idx, const uint8_t *data) {
  struct check_ctx *c = ctx;
  CHECKF(idx <= MAXPAGE && !c->seen[idx], "page %u twice or out of range", idx);
  c->seen[idx] = 1;
  quire_lsn w = model[c->v][c->lsn][idx];
  CHECKF(w != 0, "vol %d lsn %llu: page %u was never written but came back", c->v, (unsigned long long)c->lsn,
         idx);
  fill_page(c->page, c->v, idx, w);
  CHECKF(memcmp(c->page, data, QUIRE_PAGE_SIZE) == 0,
         "vol %d lsn %llu page %u: wrong version (want lsn %llu)", c->v, (unsigned long long)c->lsn, idx,
         (unsigned long long)w);
  return 0;
}

/* Reads pages 1..MAXPAGE of v at lsn and checks them against the model. */
static void check_read(quire_psclient *c, int v, quire_lsn lsn) {
  splinter_t *wanted, *missing;
  CHECK_OK(splinter_new(&wanted));
  CHECK_OK(splinter_insert_range(wanted, 1, MAXPAGE));
  struct check_ctx ctx = {.v = v, .lsn = lsn};
  CHECK_OK(quire__psclient_read_pages(c, &vids[v], lsn, wanted, NULL, on_page, &ctx, &missing));
  for (quire_pageidx i = 1; i <= MAXPAGE; i++) {
    int never = model[v][lsn][i] == 0;
    CHECKF(ctx.seen[i] == !never, "vol %d lsn %llu page %u: seen %d, never written %d", v,
           (unsigned long long)lsn, i, ctx.seen[i], never);
    CHECK(splinter_contains(missing, i) == never);
  }
  splinter_free(wanted);
  splinter_free(missing);
}

static void test_history(quire_psclient *c) {
  struct writer_arg a = {c, 0, 24, test_rand() | 1}, b = {c, 1, 24, test_rand() | 1};
  pthread_t ta, tb;
  CHECK(pthread_create(&ta, NULL, writer, &a) == 0);
  CHECK(pthread_create(&tb, NULL, writer, &b) == 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  for (int v = 0; v < 2; v++)
    for (quire_lsn l = 1; l <= latest[v]; l++) check_read(c, v, l);
}

static void test_errors(quire_ps_service *svc, quire_psclient *c) {
  splinter_t *wanted, *missing;
  CHECK_OK(splinter_from_sorted((uint32_t[]){1, 2, 3}, 3, &wanted));
  struct check_ctx ctx = {.v = 0, .lsn = 1};
  CHECK_RC(quire__psclient_read_pages(c, &vids[0], latest[0] + 100, wanted, NULL, on_page, &ctx, &missing),
           QUIRE_ENOTFOUND);
  CHECK(strstr(quire_errmsg(), "no LSN") != NULL);
  quire_gid stranger;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &stranger));
  CHECK_RC(quire__psclient_read_pages(c, &stranger, 1, wanted, NULL, on_page, &ctx, &missing),
           QUIRE_ENOTFOUND);
  CHECK_RC(quire__psclient_read_pages(c, &vids[0], 0, wanted, NULL, on_page, &ctx, &missing), QUIRE_EINVAL);
  splinter_free(wanted);
  CHECK_OK(splinter_from_sorted((uint32_t[]){0, 5}, 2, &wanted));
  CHECK_RC(quire__psclient_read_pages(c, &vids[0], 1, wanted, NULL, on_page, &ctx, &missing), QUIRE_EINVAL);
  splinter_free(wanted);
  CHECK_OK(splinter_new(&wanted));
  CHECK_OK(splinter_insert_range(wanted, 1, 5000));
  CHECK_RC(quire__psclient_read_pages(c, &vids[0], 1, wanted, NULL, on_page, &ctx, &missing),
           QUIRE_ETOOLARGE);
  splinter_free(wanted);

  /* Writes: index 0, duplicates, wrong volume type. */
  uint8_t page[QUIRE_PAGE_SIZE] = {0};
  const uint8_t *pages[2] = {page, page};
  struct quire_ps_written *segs;
  size_t nsegs;
  CHECK_RC(quire__psclient_write_pages(c, &vids[0], (quire_pageidx[]){0}, pages, 1, NULL, &segs, &nsegs),
           QUIRE_EINVAL);
  CHECK_RC(quire__psclient_write_pages(c, &vids[0], (quire_pageidx[]){7, 7}, pages, 2, NULL, &segs, &nsegs),
           QUIRE_EINVAL);
  CHECK(strstr(quire_errmsg(), "duplicate") != NULL);
  quire_gid seg;
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &seg));
  CHECK_RC(quire__psclient_write_pages(c, &seg, (quire_pageidx[]){1}, pages, 1, NULL, &segs, &nsegs),
           QUIRE_EINVAL);

  /* Raw hostile bodies: the server answers 4xx and keeps serving. */
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", quire__ps_service_port(svc));
  struct quire_http_client_opts o = {.base_url = url, .no_retry = 1};
  quire_http_client *h;
  CHECK_OK(quire__http_client_create(&o, &h));
  quire_buf resp;
  quire__buf_init(&resp, 1 << 20);
  uint8_t junk[256];
  for (int i = 0; i < 50; i++) {
    size_t n = (size_t)test_rand_below(sizeof junk);
    for (size_t k = 0; k < n; k++) junk[k] = (uint8_t)test_rand();
    int rc = quire__http_call(h, i % 2 ? "/pagestore/v1/write_pages" : "/pagestore/v1/read_pages", junk, n,
                              NULL, 0, &resp);
    CHECKF(rc == QUIRE_EINVAL || rc == QUIRE_ENOTFOUND, "junk request answered %s", quire_errname(rc));
  }
  /* A page of the wrong size, hand-encoded: field 1 vid, field 2 {1: idx, 2: 3 bytes}. */
  uint8_t body[64] = {0x0a, 16};
  memcpy(body + 2, vids[0].b, 16);
  uint8_t tail[] = {0x12, 7, 0x08, 0x01, 0x12, 0x03, 'a', 'b', 'c'};
  memcpy(body + 18, tail, sizeof tail);
  CHECK_RC(quire__http_call(h, "/pagestore/v1/write_pages", body, 18 + sizeof tail, NULL, 0, &resp),
           QUIRE_EINVAL);
  CHECK(strstr(quire_errmsg(), "4096") != NULL);
  int status;
  CHECK_OK(quire__http_request(h, "GET", "/ready", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200);
  CHECK_OK(quire__http_request(h, "GET", "/metrics", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200);
  CHECK(memmem(resp.data, resp.len, "quire_ps_cache_bytes", 20) != NULL);
  quire__buf_free(&resp);
  quire__http_client_destroy(h);
}

/* 100 concurrent reads of a cold segment: one download, one catch-up. */
struct reader_arg {
  quire_psclient *c;
  atomic_int *errors;
};
static void *cold_reader(void *arg) {
  struct reader_arg *a = arg;
  splinter_t *wanted, *missing;
  if (splinter_new(&wanted) != 0 || splinter_insert_range(wanted, 1, 20) != 0) abort();
  struct check_ctx ctx = {.v = 0, .lsn = latest[0]};
  int rc = quire__psclient_read_pages(a->c, &vids[0], latest[0], wanted, NULL, on_page, &ctx, &missing);
  if (rc) atomic_fetch_add(a->errors, 1);
  splinter_free(wanted);
  splinter_free(missing);
  return NULL;
}

static void test_single_flight(void) {
  char cache[4096], fault[600];
  snprintf(cache, sizeof cache, "%s/cold-cache", root);
  snprintf(fault, sizeof fault, "fault+%s", store_url);
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(fault, &store));
  struct quire_ps_settings s = {.listen = "127.0.0.1:0", .threads = 8, .max_inflight = 512};
  s.ps.store = store;
  s.ps.metastore_url = ms_url;
  s.ps.catalog_path = ":memory:";
  s.ps.cache_dir = cache;
  s.ps.no_partial_reads = 1;
  s.ps.read_threads = 16;
  s.ps.download_concurrency = 8;
  quire_ps_service *svc;
  CHECK_OK(quire__ps_service_open(&s, &svc));
  quire_psclient *c = client_for(svc);
  enum { N = 100 };
  pthread_t th[N];
  atomic_int errors = 0;
  struct reader_arg a = {c, &errors};
  for (int i = 0; i < N; i++) CHECK(pthread_create(&th[i], NULL, cold_reader, &a) == 0);
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  CHECK(atomic_load(&errors) == 0);
  struct ps_stats st;
  quire__ps_stats(quire__ps_service_pagestore(svc), &st);
  quire_objstore_stats os;
  quire_objstore_stats_get(store, &os);
  printf("single flight: %d concurrent cold reads -> %llu segment GETs for %llu segments, %llu catalog "
         "catch-ups\n",
         N, (unsigned long long)os.calls[QUIRE_OBJSTORE_OP_GET], (unsigned long long)st.downloads_whole,
         (unsigned long long)st.catalog_catchups);
  CHECK(st.catalog_catchups == 1);
  CHECK(os.calls[QUIRE_OBJSTORE_OP_GET] == st.downloads_whole); /* each segment fetched exactly once */
  CHECK(st.downloads_whole >= 1);
  quire__psclient_close(c);
  quire__ps_service_close(svc, 1000);
  quire_objstore_close(store);
}

/* --- reads while a catch-up holds the catalog ------------------------------- */

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int held, released;

/* Catalog append hook: the pagestore's catch-up of vids[1] stops inside the
 * catalog until released. */
static void hold_catchup(const quire_gid *vid, quire_lsn first) {
  (void)first;
  if (quire_gid_cmp(vid, &vids[1]) != 0) return;
  pthread_mutex_lock(&hold_mu);
  held = 1;
  pthread_cond_broadcast(&hold_cv);
  while (!released) pthread_cond_wait(&hold_cv, &hold_mu);
  pthread_mutex_unlock(&hold_mu);
}

static void *read_vol1(void *arg) {
  check_read(arg, 1, latest[1]);
  return NULL;
}

/* While the catch-up of volume 1 holds the catalog (a hook inside its
 * append), a read of volume 0, already caught up, completes. With one
 * catalog lock held across the append it waited for the catch-up, and the
 * alarm (a deadlock detector, not a timing assertion) killed the test. */
static void test_read_during_catchup(void) {
  char cache[4096], catalog[4096];
  snprintf(cache, sizeof cache, "%s/cache-held", root);
  snprintf(catalog, sizeof catalog, "%s/held.catalog", root);
  quire_ps_service *svc = open_ps(cache, catalog, store_url, 0);
  quire_psclient *c = client_for(svc);
  check_read(c, 0, latest[0]); /* volume 0 caught up (and its segments cached) */
  quire__catalog_append_hook = hold_catchup;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, read_vol1, c) == 0);
  pthread_mutex_lock(&hold_mu);
  while (!held) pthread_cond_wait(&hold_cv, &hold_mu);
  pthread_mutex_unlock(&hold_mu);
  alarm(60);
  check_read(c, 0, latest[0]);
  check_read(c, 0, 1);
  alarm(0);
  pthread_mutex_lock(&hold_mu);
  released = 1;
  pthread_cond_broadcast(&hold_cv);
  pthread_mutex_unlock(&hold_mu);
  pthread_join(t, NULL); /* the held read completes once released */
  quire__catalog_append_hook = NULL;
  quire__psclient_close(c);
  quire__ps_service_close(svc, 1000);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_seed();
  root = test_tmpdir("ps-e2e");
  snprintf(store_url, sizeof store_url, "file://%s/objects", root);
  snprintf(receipt_key, sizeof receipt_key, "%s/receipt.key", root);
  uint8_t key[QUIRE_RECEIPT_KEY_SIZE];
  CHECK_OK(quire__receipt_key_ensure(receipt_key, key));
  struct quire_ms_settings mss = {.listen = "127.0.0.1:0",
                                  .store_url = store_url,
                                  .catalog_path = ":memory:",
                                  .receipt_key_file = receipt_key};
  CHECK_OK(quire__ms_service_open(&mss, &ms));
  snprintf(ms_url, sizeof ms_url, "http://127.0.0.1:%u", quire__ms_service_port(ms));
  CHECK_OK(quire__msclient_open(ms_url, NULL, &msc));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vids[0]));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vids[1]));

  char cache[4096], catalog[4096];
  snprintf(cache, sizeof cache, "%s/cache", root);
  snprintf(catalog, sizeof catalog, "%s/ps.catalog", root);
  quire_ps_service *svc = open_ps(cache, catalog, store_url, 0);
  quire_psclient *c = client_for(svc);
  test_history(c);
  test_errors(svc, c);
  struct ps_stats st;
  quire__ps_stats(quire__ps_service_pagestore(svc), &st);
  printf("history: %llu segments flushed, %llu uploaded, %llu pages written, %llu served\n",
         (unsigned long long)st.segments_flushed, (unsigned long long)st.segments_uploaded,
         (unsigned long long)st.pages_written, (unsigned long long)st.pages_served);
  CHECK(st.segments_uploaded == st.segments_flushed && st.upload_failures == 0);
  quire__psclient_close(c);
  quire__ps_service_close(svc, 1000);

  /* Restart on the same cache and catalog: no catch-up, no download. */
  svc = open_ps(cache, catalog, store_url, 0);
  c = client_for(svc);
  for (int v = 0; v < 2; v++) check_read(c, v, latest[v]);
  quire__ps_stats(quire__ps_service_pagestore(svc), &st);
  CHECK(st.downloads_whole == 0 && st.downloads_partial == 0);     /* the disk cache resumed */
  if (access(catalog, F_OK) == 0) CHECK(st.catalog_catchups == 0); /* a persistent catalog resumed too */
  quire__psclient_close(c);
  quire__ps_service_close(svc, 1000);

  /* Cold cache with partial reads allowed: ranged GETs serve small cuts. */
  char cache2[4096];
  snprintf(cache2, sizeof cache2, "%s/cache-partial", root);
  svc = open_ps(cache2, ":memory:", store_url, 100);
  c = client_for(svc);
  check_read(c, 0, latest[0]);
  check_read(c, 1, 3);
  quire__ps_stats(quire__ps_service_pagestore(svc), &st);
  CHECK(st.downloads_partial > 0 && st.downloads_whole == 0);
  quire__psclient_close(c);
  quire__ps_service_close(svc, 1000);

  test_single_flight();
  test_read_during_catchup();

  quire__msclient_close(msc);
  quire__ms_service_close(ms, 1000);
  CHECK(quire__never_count() == 0);
  test_rmtree(root);
  free(root);
  return test_done("pagestore_e2e");
}
