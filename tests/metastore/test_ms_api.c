/*
 * The metastore API over real HTTP on loopback, against mem://, file:// and
 * fault+ stores: commit chains, snapshots, pull_graft ranges, pull_commits
 * paging, exact idempotency, and every 4xx path.
 */
#include "ms_test.h"
#include "metastore/ms_int.h"
#include "net/http_client.h"
#include "proto/metastore.pb-c.h"
#include "proto/pb.h"
#include "util/util.h"

#include <stdlib.h>

/* The pages of commit k (1-based) in the chain: a run and a scattered page. */
static size_t pages_of(unsigned k, uint32_t *out) {
  size_t n = 0;
  for (uint32_t p = 10 * k; p < 10 * k + 3; p++) out[n++] = p;
  out[n++] = 500 + k;
  return n;
}

static void chain(struct ms_env *e, const quire_gid *vid, const quire_gid *client, unsigned count,
                  quire_gid *commit_ids) {
  for (unsigned k = 1; k <= count; k++) {
    uint32_t pages[8];
    size_t n = pages_of(k, pages);
    struct quire_snapshot s;
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit_ids[k]));
    CHECK_OK(commit_pages(e->cli, vid, client, &commit_ids[k], k - 1, 1000, pages, n, &s));
    CHECK(s.lsn == k && s.page_count == 1000 && quire_gid_cmp(&s.commit_id, &commit_ids[k]) == 0);
    CHECK(s.checkpoint_lsn == 0 && s.timestamp_ms > 0);
  }
}

static int graft_has(const quire_buf *g, uint32_t page) {
  splinter_view_t v;
  CHECK_OK(splinter_view_open(g->data, g->len, &v));
  return splinter_view_contains(&v, page);
}

static uint64_t graft_card(const quire_buf *g) {
  splinter_view_t v;
  CHECK_OK(splinter_view_open(g->data, g->len, &v));
  return splinter_view_cardinality(&v);
}

static void test_chain(const char *store_url) {
  struct ms_env e;
  env_start(&e, store_url, 50);
  quire_gid vid, client, ids[11];
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  struct quire_snapshot s;
  CHECK_RC(quire__msclient_snapshot(e.cli, &vid, 0, NULL, &s), QUIRE_ENOTFOUND);
  chain(&e, &vid, &client, 10, ids);

  CHECK_OK(quire__msclient_snapshot(e.cli, &vid, 0, NULL, &s));
  CHECK(s.lsn == 10 && quire_gid_cmp(&s.commit_id, &ids[10]) == 0);
  CHECK_OK(quire__msclient_snapshot(e.cli, &vid, 4, NULL, &s));
  CHECK(s.lsn == 4 && quire_gid_cmp(&s.commit_id, &ids[4]) == 0 && quire_gid_cmp(&s.vid, &vid) == 0);
  CHECK_RC(quire__msclient_snapshot(e.cli, &vid, 11, NULL, &s), QUIRE_ENOTFOUND);

  /* pull_graft: unions over ranges. */
  quire_buf g;
  quire__buf_init(&g, 1 << 20);
  quire_lsn to;
  CHECK_OK(quire__msclient_pull_graft(e.cli, &vid, 0, 0, 0, NULL, &s, &to, &g, NULL));
  CHECK(to == 10 && s.lsn == 10 && graft_card(&g) == 40);
  CHECK(graft_has(&g, 10) && graft_has(&g, 102) && graft_has(&g, 510) && !graft_has(&g, 103));
  CHECK_OK(quire__msclient_pull_graft(e.cli, &vid, 3, 5, 0, NULL, &s, &to, &g, NULL));
  CHECK(to == 5 && s.lsn == 5 && graft_card(&g) == 8);
  CHECK(graft_has(&g, 40) && graft_has(&g, 52) && graft_has(&g, 505) && !graft_has(&g, 30));
  /* Nothing newer: an empty graft and the range end equal to its start. */
  CHECK_OK(quire__msclient_pull_graft(e.cli, &vid, 10, 0, 0, NULL, &s, &to, &g, NULL));
  CHECK(to == 10 && s.lsn == 10 && graft_card(&g) == 0);
  CHECK_RC(quire__msclient_pull_graft(e.cli, &vid, 11, 0, 0, NULL, &s, &to, &g, NULL), QUIRE_ENOTFOUND);
  CHECK_RC(quire__msclient_pull_graft(e.cli, &vid, 5, 3, 0, NULL, &s, &to, &g, NULL), QUIRE_EINVAL);
  CHECK_RC(quire__msclient_pull_graft(e.cli, &vid, 5, 12, 0, NULL, &s, &to, &g, NULL), QUIRE_ENOTFOUND);
  quire_gid other;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &other));
  CHECK_RC(quire__msclient_pull_graft(e.cli, &other, 0, 0, 0, NULL, &s, &to, &g, NULL), QUIRE_ENOTFOUND);

  /* pull_commits, paged by 3. */
  quire_lsn from = 1;
  unsigned seen = 0, pages = 0;
  while (from) {
    struct quire_msclient_commits pc;
    CHECK_OK(quire__msclient_pull_commits(e.cli, &vid, from, 0, 3, NULL, &pc));
    CHECK(pc.latest_lsn == 10 && pc.count <= 3);
    for (size_t i = 0; i < pc.count; i++) {
      seen++;
      CHECK(pc.snaps[i].lsn == seen && quire_gid_cmp(&pc.snaps[i].commit_id, &ids[seen]) == 0);
      CHECK(pc.commits[i].nsegments == 1);
      splinter_view_t v;
      CHECK_OK(splinter_view_open(pc.commits[i].segments[0].graft, pc.commits[i].segments[0].graft_len, &v));
      uint32_t want[8];
      size_t n = pages_of(seen, want);
      CHECK(splinter_view_cardinality(&v) == n);
      for (size_t k = 0; k < n; k++) CHECK(splinter_view_contains(&v, want[k]));
    }
    from = pc.next_lsn;
    pages++;
    quire__msclient_commits_free(&pc);
  }
  CHECK(seen == 10 && pages == 4);
  struct quire_msclient_commits pc;
  CHECK_OK(quire__msclient_pull_commits(e.cli, &vid, 4, 6, 0, NULL, &pc));
  CHECK(pc.count == 3 && pc.snaps[0].lsn == 4 && pc.next_lsn == 0);
  quire__msclient_commits_free(&pc);
  CHECK_OK(quire__msclient_pull_commits(e.cli, &vid, 11, 0, 0, NULL, &pc)); /* caught up */
  CHECK(pc.count == 0 && pc.next_lsn == 0 && pc.latest_lsn == 10);
  quire__msclient_commits_free(&pc);
  CHECK_RC(quire__msclient_pull_commits(e.cli, &vid, 12, 0, 0, NULL, &pc), QUIRE_ENOTFOUND);
  CHECK_RC(quire__msclient_pull_commits(e.cli, &vid, 0, 0, 0, NULL, &pc), QUIRE_EINVAL);
  CHECK_RC(quire__msclient_pull_commits(e.cli, &vid, 5, 4, 0, NULL, &pc), QUIRE_EINVAL);

  /* Idempotency: the same commit id at a taken LSN returns that commit. */
  uint32_t p1[8];
  size_t n1 = pages_of(1, p1);
  CHECK_OK(commit_pages(e.cli, &vid, &client, &ids[1], 0, 1000, p1, n1, &s));
  CHECK(s.lsn == 1 && quire_gid_cmp(&s.commit_id, &ids[1]) == 0);
  uint32_t p7[8];
  size_t n7 = pages_of(7, p7);
  CHECK_OK(commit_pages(e.cli, &vid, &client, &ids[7], 6, 1000, p7, n7, &s));
  CHECK(s.lsn == 7);
  /* The same commit id with other content is a client bug, never a success:
   * other pages, another page_count, no segments. */
  CHECK_RC(commit_pages(e.cli, &vid, &client, &ids[7], 6, 1000, p1, n1, &s), QUIRE_ECONFLICT);
  CHECK(strstr(quire_errmsg(), "other content") && strstr(quire_errmsg(), "segment 0 has other pages"));
  CHECK_RC(commit_pages(e.cli, &vid, &client, &ids[7], 6, 999, p7, n7, &s), QUIRE_ECONFLICT);
  CHECK(strstr(quire_errmsg(), "page_count 999"));
  CHECK_RC(commit_pages(e.cli, &vid, &client, &ids[7], 6, 1000, NULL, 0, &s), QUIRE_ECONFLICT);
  CHECK(strstr(quire_errmsg(), "0 segments"));
  {
    struct quire_commit_segment seg7 = {0};
    uint8_t *bytes;
    size_t len;
    graft_of(p7, n7, &bytes, &len);
    CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &seg7.sid));
    seg7.graft = bytes;
    seg7.graft_len = (uint32_t)len;
    CHECK_RC(quire__msclient_commit(e.cli, &vid, &client, &ids[7], 6, 1000, &seg7, 1, NULL, &s), QUIRE_ECONFLICT);
    CHECK(strstr(quire_errmsg(), "another segment id"));
    splinter_bytes_free(bytes);
  }
  /* Anything else at a taken LSN is a conflict. */
  quire_gid fresh, other_client;
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &fresh));
  CHECK_RC(commit_pages(e.cli, &vid, &client, &fresh, 0, 1000, p1, n1, &s), QUIRE_ECONFLICT);
  CHECK_RC(commit_pages(e.cli, &vid, &client, &fresh, 9, 1000, p1, n1, &s), QUIRE_ECONFLICT);
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &other_client));
  CHECK_RC(commit_pages(e.cli, &vid, &other_client, &ids[3], 2, 1000, p1, n1, &s), QUIRE_ECONFLICT);
  /* A base past the end does not exist. */
  CHECK_RC(commit_pages(e.cli, &vid, &client, &fresh, 12, 1000, p1, n1, &s), QUIRE_ENOTFOUND);
  /* The log did not change. */
  CHECK_OK(quire__msclient_snapshot(e.cli, &vid, 0, NULL, &s));
  CHECK(s.lsn == 10);
  /* A commit without segments (page count change) is fine. */
  CHECK_OK(commit_pages(e.cli, &vid, &client, &fresh, 10, 5000, NULL, 0, &s));
  CHECK(s.lsn == 11 && s.page_count == 5000);
  quire__buf_free(&g);
  env_stop(&e, 0);
}

/* --- 4xx paths ------------------------------------------------------------ */

static int raw_commit(struct ms_env *e, Quire__Metastore__V1__CommitRequest *m) {
  quire_buf req, resp;
  quire__buf_init(&req, 1 << 20);
  quire__buf_init(&resp, 1 << 20);
  CHECK_OK(quire__pb_pack(&m->base, &req));
  struct quire_http_client_opts o = {.base_url = e->url, .no_retry = 1};
  quire_http_client *c;
  CHECK_OK(quire__http_client_create(&o, &c));
  int rc =
      quire__http_call(c, "/metastore/v1/commit", req.data ? (void *)req.data : "", req.len, NULL, 0, &resp);
  quire__http_client_destroy(c);
  quire__buf_free(&req);
  quire__buf_free(&resp);
  return rc;
}

static void test_bad_requests(void) {
  struct ms_env e;
  env_start(&e, "mem://", 50);
  quire_gid vid, client, cid, sid, sid2;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid));
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid2));
  uint8_t *g1, *g2, *g0, *gbig, *gempty;
  size_t l1, l2, l0, lbig, lempty;
  uint32_t a[] = {1, 2, 3}, b[] = {3, 4}, zero[] = {0, 5}, big[] = {7, 101};
  graft_of(a, 3, &g1, &l1);
  graft_of(b, 2, &g2, &l2);
  graft_of(zero, 2, &g0, &l0);
  graft_of(big, 2, &gbig, &lbig);
  graft_of(NULL, 0, &gempty, &lempty);

  Quire__Common__V1__SegmentInfo s1 = QUIRE__COMMON__V1__SEGMENT_INFO__INIT, s2 = s1;
  Quire__Common__V1__SegmentInfo *segs[2] = {&s1, &s2};
  Quire__Metastore__V1__CommitRequest ok = QUIRE__METASTORE__V1__COMMIT_REQUEST__INIT;
  ok.has_vid = ok.has_client_id = ok.has_commit_id = ok.has_page_count = 1;
  ok.vid = quire__pb_gid_bytes(&vid);
  ok.client_id = quire__pb_gid_bytes(&client);
  ok.commit_id = quire__pb_gid_bytes(&cid);
  ok.page_count = 100;
  s1.has_sid = s1.has_graft = 1;
  s1.sid = quire__pb_gid_bytes(&sid);
  s1.graft.data = g1;
  s1.graft.len = l1;
  s2 = s1;
  s2.sid = quire__pb_gid_bytes(&sid2);
  s2.graft.data = g2;
  s2.graft.len = l2;
  ok.segments = segs;
  ok.n_segments = 1;

  Quire__Metastore__V1__CommitRequest m;
#define EXPECT_400(setup, needle)                                                                            \
  do {                                                                                                       \
    m = ok;                                                                                                  \
    s1.graft.data = g1, s1.graft.len = l1, s1.sid = quire__pb_gid_bytes(&sid);                               \
    s1.has_sid = s1.has_graft = 1;                                                                           \
    s2.sid = quire__pb_gid_bytes(&sid2);                                                                     \
    setup;                                                                                                   \
    CHECK_RC(raw_commit(&e, &m), QUIRE_EINVAL);                                                              \
    CHECKF(strstr(quire_errmsg(), needle) != NULL, "want '%s' in '%s'", needle, quire_errmsg());             \
  } while (0)
  EXPECT_400(m.has_vid = 0, "vid is missing");
  EXPECT_400(m.vid = quire__pb_gid_bytes(&client), "not a volume id");
  EXPECT_400(m.vid.len = 15, "vid: 15 bytes");
  EXPECT_400(m.has_client_id = 0, "client_id is missing");
  EXPECT_400(m.client_id = quire__pb_gid_bytes(&cid), "client_id: not a client id");
  EXPECT_400(m.has_commit_id = 0, "commit_id is missing");
  EXPECT_400(m.has_page_count = 0, "page_count is missing");
  EXPECT_400(s1.has_sid = 0, "segment 0: sid is missing");
  EXPECT_400(s1.sid = quire__pb_gid_bytes(&vid), "segment 0: sid: not a segment id");
  EXPECT_400(s1.has_graft = 0, "segment 0: graft is missing");
  EXPECT_400((s1.graft.data = (uint8_t *)"garbage-bytes-not-a-splinter", s1.graft.len = 28),
             "not a valid splinter");
  EXPECT_400((s1.graft.data = g1, s1.graft.len = l1 - 1), "not a valid splinter");
  EXPECT_400((s1.graft.data = gempty, s1.graft.len = lempty), "graft is empty");
  EXPECT_400((s1.graft.data = g0, s1.graft.len = l0), "page index 0");
  EXPECT_400((s1.graft.data = gbig, s1.graft.len = lbig), "page 101 is above page_count 100");
  EXPECT_400((m.n_segments = 2), "segment 1: shares pages");
  EXPECT_400((m.n_segments = 2, s2.sid = s1.sid), "segment 1: same segment id");
  /* The well-formed version succeeds, and a disjoint pair too. */
  m = ok;
  s1.graft.data = g1, s1.graft.len = l1, s1.sid = quire__pb_gid_bytes(&sid);
  CHECK_OK(raw_commit(&e, &m));

  /* Bodies that are not the message at all. */
  struct quire_http_client_opts o = {.base_url = e.url, .no_retry = 1};
  quire_http_client *c;
  CHECK_OK(quire__http_client_create(&o, &c));
  quire_buf resp;
  quire__buf_init(&resp, 1 << 20);
  const char *paths[] = {"/metastore/v1/commit", "/metastore/v1/snapshot", "/metastore/v1/pull_graft",
                         "/metastore/v1/pull_commits"};
  const char junk[] = "\xff\xff\xff\xff\x0f garbage";
  for (size_t i = 0; i < 4; i++) {
    CHECK_RC(quire__http_call(c, paths[i], junk, sizeof junk, NULL, 0, &resp), QUIRE_EINVAL);
    CHECK(strstr(quire_errmsg(), "malformed") != NULL);
    /* An empty body decodes to an empty message: missing vid. */
    CHECK_RC(quire__http_call(c, paths[i], "", 0, NULL, 0, &resp), QUIRE_EINVAL);
    CHECK(strstr(quire_errmsg(), "vid is missing") != NULL);
    /* Truncated valid request (a field header with no value). */
    CHECK_RC(quire__http_call(c, paths[i], "\x0a\x10", 2, NULL, 0, &resp), QUIRE_EINVAL);
    int status;
    CHECK_OK(quire__http_request(c, "POST", paths[i], "application/json", "{}", 2, NULL, &status, &resp));
    CHECK(status == 415);
    CHECK_OK(quire__http_request(c, "GET", paths[i], NULL, NULL, 0, NULL, &status, &resp));
    CHECK(status == 405);
  }
  static char huge[2 << 20];
  CHECK_RC(quire__http_call(c, "/metastore/v1/commit", huge, sizeof huge, NULL, 0, &resp), QUIRE_ETOOLARGE);
  /* Still serving. */
  int status;
  CHECK_OK(quire__http_request(c, "GET", "/ready", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200);
  CHECK_OK(quire__http_request(c, "GET", "/metrics", NULL, NULL, 0, NULL, &status, &resp));
  CHECK(status == 200);
  CHECK_OK(quire__buf_append_u8(&resp, 0));
  CHECK(strstr((char *)resp.data,
               "quire_http_requests_total{endpoint=\"/metastore/v1/commit\",status=\"400\"}"));
  CHECK(strstr((char *)resp.data, "quire_objstore_calls_total{op=\"put_if_absent\"} 1"));
  CHECK(strstr((char *)resp.data, "quire_metastore_catalog_commits 1"));
  quire__buf_free(&resp);
  quire__http_client_destroy(c);
  splinter_bytes_free(g1);
  splinter_bytes_free(g2);
  splinter_bytes_free(g0);
  splinter_bytes_free(gbig);
  splinter_bytes_free(gempty);
  env_stop(&e, 0);
}

/* --- idempotency under faults --------------------------------------------- */

/* Every write is acknowledged as failed about half the time although it
 * happened; the client retries with the same commit id. */
static void test_lost_acks(void) {
  struct ms_env e;
  char url[128];
  uint64_t seed = test_rand();
  snprintf(url, sizeof url, "fault+mem://?lost_ack=0.5&seed=%llu", (unsigned long long)seed);
  env_start(&e, url, 50);
  quire_gid vid, client, ids[41];
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  for (unsigned k = 1; k <= 40; k++) {
    uint32_t pages[8];
    size_t n = pages_of(k, pages);
    struct quire_snapshot s;
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &ids[k]));
    CHECK_OK(commit_pages(e.cli, &vid, &client, &ids[k], k - 1, 1000, pages, n, &s));
    CHECK(s.lsn == k && quire_gid_cmp(&s.commit_id, &ids[k]) == 0);
  }
  quire_objstore_stats st;
  quire_objstore_stats_get(e.store, &st);
  CHECK(st.injected_lost_acks > 0);
  /* A different commit at a taken LSN is still refused. */
  quire_gid fresh;
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &fresh));
  struct quire_snapshot s;
  CHECK_RC(commit_pages(e.cli, &vid, &client, &fresh, 5, 1000, NULL, 0, &s), QUIRE_ECONFLICT);
  /* The log holds exactly the 40 commits, in order. */
  struct quire_msclient_commits pc;
  CHECK_OK(quire__msclient_pull_commits(e.cli, &vid, 1, 0, 100, NULL, &pc));
  CHECK(pc.count == 40 && pc.next_lsn == 0);
  for (size_t i = 0; i < pc.count; i++) CHECK(quire_gid_cmp(&pc.snaps[i].commit_id, &ids[i + 1]) == 0);
  quire__msclient_commits_free(&pc);
  printf("lost acks: 40 commits, %llu acknowledgements lost, 0 duplicates\n",
         (unsigned long long)st.injected_lost_acks);
  env_stop(&e, 0);
}

/* The client gives up before the reply (the store is slow), then retries
 * with the same commit id: exactly one commit. */
static void test_client_gives_up(void) {
  struct ms_env e;
  env_start(&e, "fault+mem://?latency=300&slow_first=2", 50);
  quire_gid vid, client, cid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
  struct quire_http_client_opts co = {.timeout_ms = 50, .no_retry = 1};
  quire_msclient *impatient;
  CHECK_OK(quire__msclient_open(e.url, &co, &impatient));
  uint32_t pages[] = {1, 2};
  struct quire_snapshot s;
  CHECK_RC(commit_pages(impatient, &vid, &client, &cid, 0, 10, pages, 2, &s), QUIRE_ETIMEDOUT);
  quire__msclient_close(impatient);
  CHECK_OK(commit_pages(e.cli, &vid, &client, &cid, 0, 10, pages, 2, &s));
  CHECK(s.lsn == 1 && quire_gid_cmp(&s.commit_id, &cid) == 0);
  quire_gid other;
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &other));
  CHECK_RC(commit_pages(e.cli, &vid, &client, &other, 0, 10, pages, 2, &s), QUIRE_ECONFLICT);
  CHECK_OK(quire__msclient_snapshot(e.cli, &vid, 0, NULL, &s));
  CHECK(s.lsn == 1);
  env_stop(&e, 0);
}

/* A commit request of n one-page segments (segment i holds page
 * page_of(i)) with fresh segment ids, for the validation tests below; the
 * caller may change segments before each pack. */
struct big_commit {
  uint32_t n;
  quire_gid vid, client, cid, *sids;
  Quire__Common__V1__SegmentInfo *infos, **segs;
  uint8_t **grafts;
  size_t *lens;
  Quire__Metastore__V1__CommitRequest m;
  quire_buf req, resp;
};

static void big_commit_init(struct big_commit *bc, uint32_t n, uint32_t (*page_of)(uint32_t),
                            quire_pagecount page_count) {
  memset(bc, 0, sizeof *bc);
  bc->n = n;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &bc->vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &bc->client));
  bc->sids = calloc(n, sizeof *bc->sids);
  bc->infos = calloc(n, sizeof *bc->infos);
  bc->segs = calloc(n, sizeof *bc->segs);
  bc->grafts = calloc(n, sizeof *bc->grafts);
  bc->lens = calloc(n, sizeof *bc->lens);
  CHECK(bc->sids && bc->infos && bc->segs && bc->grafts && bc->lens);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t page = page_of(i);
    graft_of(&page, 1, &bc->grafts[i], &bc->lens[i]);
    CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &bc->sids[i]));
    quire__common__v1__segment_info__init(&bc->infos[i]);
    bc->infos[i].has_sid = bc->infos[i].has_graft = 1;
    bc->infos[i].sid = quire__pb_gid_bytes(&bc->sids[i]);
    bc->infos[i].graft.data = bc->grafts[i];
    bc->infos[i].graft.len = bc->lens[i];
    bc->segs[i] = &bc->infos[i];
  }
  Quire__Metastore__V1__CommitRequest m = QUIRE__METASTORE__V1__COMMIT_REQUEST__INIT;
  bc->m = m;
  bc->m.has_vid = bc->m.has_client_id = bc->m.has_commit_id = bc->m.has_page_count = 1;
  bc->m.vid = quire__pb_gid_bytes(&bc->vid);
  bc->m.client_id = quire__pb_gid_bytes(&bc->client);
  bc->m.page_count = page_count;
  bc->m.segments = bc->segs;
  bc->m.n_segments = n;
  quire__buf_init(&bc->req, 64 << 20);
  quire__buf_init(&bc->resp, 1 << 20);
}

/* Sends the request (with a fresh commit id) to the handler directly (it is
 * larger than the test server's body cap). */
static int big_commit_send(struct big_commit *bc, quire_metastore *ms) {
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &bc->cid));
  bc->m.commit_id = quire__pb_gid_bytes(&bc->cid);
  quire__buf_reset(&bc->req);
  CHECK_OK(quire__pb_pack(&bc->m.base, &bc->req));
  return quire__ms_handle_commit(ms, bc->req.data, bc->req.len, &bc->resp);
}

static void big_commit_free(struct big_commit *bc) {
  quire__buf_free(&bc->req);
  quire__buf_free(&bc->resp);
  for (uint32_t i = 0; i < bc->n; i++) splinter_bytes_free(bc->grafts[i]);
  free(bc->lens);
  free(bc->grafts);
  free(bc->segs);
  free(bc->infos);
  free(bc->sids);
}

static uint32_t page_in_own_block(uint32_t i) { return 256 * i + 1; }
static uint32_t page_next(uint32_t i) { return i + 1; }

/* 65,536 one-page segments, each page in a block of its own: checking that
 * no two segments share a page merged a growing set once per segment
 * (about 2.1 billion pages merged); the balanced merge does about 17 per
 * segment, and naming the culprit of a shared page (the last segment
 * repeats the first one's page) costs a log factor more. Counted, not
 * timed. */
static void test_many_segments_overlap(void) {
  struct ms_env e;
  env_start(&e, "mem://", 50);
  const uint32_t n = QUIRE_COMMIT_MAX_SEGMENTS;
  struct big_commit bc;
  big_commit_init(&bc, n, page_in_own_block, 256 * n);
  /* The last segment shares page 1 with the first: refused, named. */
  bc.infos[n - 1].graft = bc.infos[0].graft;
  uint64_t before = atomic_load(&quire__ms_overlap_check_steps);
  CHECK_RC(big_commit_send(&bc, e.ms), QUIRE_EINVAL);
  uint64_t steps = atomic_load(&quire__ms_overlap_check_steps) - before;
  CHECKF(strstr(quire_errmsg(), "segment 65535: shares pages with an earlier segment") != NULL, "got '%s'",
         quire_errmsg());
  CHECKF(steps <= 17ull * 18 * n, "%llu pages merged for %u segments", (unsigned long long)steps, n);
  /* All disjoint: accepted, about 17 merges per segment. */
  bc.infos[n - 1].graft.data = bc.grafts[n - 1];
  bc.infos[n - 1].graft.len = bc.lens[n - 1];
  before = atomic_load(&quire__ms_overlap_check_steps);
  CHECK_OK(big_commit_send(&bc, e.ms));
  steps = atomic_load(&quire__ms_overlap_check_steps) - before;
  CHECKF(steps >= n && steps <= 18ull * n, "%llu pages merged for %u segments", (unsigned long long)steps, n);
  big_commit_free(&bc);
  env_stop(&e, 0);
}

/* A commit of the maximum 65,536 segments whose last segment repeats the
 * first one's id is refused naming both, and the duplicate-id check makes
 * O(n log n) comparisons: at most 17 per segment, where comparing every
 * pair made 32,768 per segment (2.1 billion in all). Operations are counted,
 * not timed. */
static void test_many_segments_duplicate_id(void) {
  struct ms_env e;
  env_start(&e, "mem://", 50);
  const uint32_t n = QUIRE_COMMIT_MAX_SEGMENTS;
  struct big_commit bc;
  big_commit_init(&bc, n, page_next, n);
  bc.sids[n - 1] = bc.sids[0];
  bc.infos[n - 1].sid = quire__pb_gid_bytes(&bc.sids[n - 1]);
  uint64_t before = atomic_load(&quire__ms_sid_check_steps);
  CHECK_RC(big_commit_send(&bc, e.ms), QUIRE_EINVAL);
  uint64_t steps = atomic_load(&quire__ms_sid_check_steps) - before;
  CHECKF(strstr(quire_errmsg(), "segment 65535: same segment id as segment 0") != NULL, "got '%s'",
         quire_errmsg());
  CHECKF(steps >= n - 1 && steps <= 17ull * n, "%llu comparisons for %u segments", (unsigned long long)steps, n);
  /* All distinct: accepted, and still bounded. */
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &bc.sids[n - 1]));
  bc.infos[n - 1].sid = quire__pb_gid_bytes(&bc.sids[n - 1]);
  before = atomic_load(&quire__ms_sid_check_steps);
  CHECK_OK(big_commit_send(&bc, e.ms));
  steps = atomic_load(&quire__ms_sid_check_steps) - before;
  CHECKF(steps <= 17ull * n, "%llu comparisons for %u segments", (unsigned long long)steps, n);
  big_commit_free(&bc);
  env_stop(&e, 0);
}

int main(void) {
  test_seed();
  test_chain("mem://");
  char *dir = test_tmpdir("ms_api");
  char url[512];
  snprintf(url, sizeof url, "file://%s/objects", dir);
  test_chain(url);
  test_chain("fault+mem://?err=0.1&retries=3&seed=7");
  test_bad_requests();
  test_lost_acks();
  test_client_gives_up();
  test_many_segments_duplicate_id();
  test_many_segments_overlap();
  test_rmtree(dir);
  free(dir);
  return test_done("metastore_api");
}
