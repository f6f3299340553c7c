/*
 * The client runtime with real services on loopback: push and pull between
 * two clients with their own data directories, lazy fetch with read-ahead
 * (round trips and overfetch counted), conflicts that survive a restart and
 * that reset and fork each resolve, autosync (a commit on A readable on B
 * without any explicit call), and offline operation (local reads and
 * commits go on; an absent page fails with QUIRE_EUNAVAILABLE in bounded
 * time; the push resumes once the services are back).
 */
#include "client_test.h"
#include "services.h"
#include "gc/gc.h"
#include "util/clock.h"

static struct services svc;
static char *root;

static quire_client *open_client(const char *name, int autosync) {
  char dir[1024];
  pathf(dir, sizeof dir, "%s/%s", root, name);
  quire_client_opts o;
  client_opts(&o, dir, &svc);
  o.autosync = autosync;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  return c;
}

static void expect_pages(quire_volume *v, quire_pageidx lo, quire_pageidx hi, uint64_t tag0) {
  quire_reader *r;
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECK_OK(quire_reader_open(v, &r));
  for (quire_pageidx i = lo; i <= hi; i++) {
    CHECK_OK(quire_reader_read(r, i, page));
    CHECKF(page_is(page, tag0 + i), "page %u: want tag %llu got %llu", i, (unsigned long long)(tag0 + i),
           (unsigned long long)page_tag(page));
  }
  quire_reader_close(r);
}

static void vid_text(quire_volume *v, char out[QUIRE_GID_TEXT_LEN + 1]) {
  quire_gid vid;
  quire_volume_vid(v, &vid);
  quire_gid_format(&vid, out);
}

static void push_pull(void) {
  quire_client *a = open_client("pp_a", 0), *b = open_client("pp_b", 0);
  quire_volume *va, *vb;
  CHECK_OK(quire_volume_open(a, "pp", QUIRE_CREATE, &va));
  write_tagged(va, 1, 100, 1000);
  write_tagged(va, 50, 60, 2000); /* two local commits fold into one push */
  CHECK_OK(quire_volume_push(va, 0));
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.remote_lsn == 1 && st.unpushed_commits == 0 && st.state == QUIRE_STATE_OK && !st.push_in_progress);
  char id[QUIRE_GID_TEXT_LEN + 1];
  vid_text(va, id);
  CHECK_OK(quire_volume_open(b, id, 0, &vb)); /* adopted: pulled at open */
  CHECK_OK(quire_volume_status_get(vb, &st));
  CHECK(st.remote_lsn == 1 && st.page_count == 100 && st.pages_pending == 100);
  expect_pages(vb, 1, 49, 1000);
  expect_pages(vb, 50, 60, 2000);
  expect_pages(vb, 61, 100, 1000);
  quire_stats s;
  quire_volume_stats(vb, &s);
  printf("sequential cold read of 100 pages: %llu round trips, %llu pages fetched, %llu read-ahead, %llu used\n",
         (unsigned long long)s.fetch_round_trips, (unsigned long long)s.fetch_pages,
         (unsigned long long)s.prefetch_pages, (unsigned long long)s.prefetch_used);
  printf("missing %llu errors %llu\n", (unsigned long long)s.fetch_missing, (unsigned long long)s.fetch_errors);
  CHECK(s.fetch_pages == 100);             /* no page fetched twice */
  CHECK(s.fetch_round_trips <= 12);        /* the window grows */
  expect_pages(vb, 1, 49, 1000);           /* all local now */
  quire_stats s2;
  quire_volume_stats(vb, &s2);
  CHECK(s2.fetch_round_trips == s.fetch_round_trips);
  /* B commits and pushes; A pulls and sees it. */
  write_tagged(vb, 90, 110, 3000);
  CHECK_OK(quire_volume_push(vb, 0));
  CHECK_OK(quire_volume_pull(va, 0));
  expect_pages(va, 90, 110, 3000);
  expect_pages(va, 1, 49, 1000);
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.remote_lsn == 2 && st.page_count == 110);
  quire_volume_close(va);
  quire_volume_close(vb);
  CHECK_OK(quire_client_close(a));
  CHECK_OK(quire_client_close(b));
}

static void conflicts(void) {
  quire_client *a = open_client("cf_a", 0), *b = open_client("cf_b", 0);
  quire_volume *va, *vb;
  CHECK_OK(quire_volume_open(a, "cf", QUIRE_CREATE, &va));
  write_tagged(va, 1, 10, 100);
  CHECK_OK(quire_volume_push(va, 0));
  char id[QUIRE_GID_TEXT_LEN + 1];
  vid_text(va, id);
  CHECK_OK(quire_volume_open(b, id, 0, &vb));
  /* Both commit on the same base; B pushes first. */
  write_tagged(va, 1, 5, 200);
  write_tagged(vb, 3, 8, 300);
  CHECK_OK(quire_volume_push(vb, 0));
  CHECK_RC(quire_volume_push(va, 0), QUIRE_ECONFLICT);
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.state == QUIRE_STATE_CONFLICT && st.unpushed_commits == 1);
  expect_pages(va, 1, 5, 200); /* local commits are kept */
  /* The state survives a restart. */
  quire_volume_close(va);
  CHECK_OK(quire_client_close(a));
  a = open_client("cf_a", 0);
  CHECK_OK(quire_volume_open(a, "cf", 0, &va));
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.state == QUIRE_STATE_CONFLICT);
  CHECK_RC(quire_volume_push(va, 0), QUIRE_ECONFLICT);
  CHECK_RC(quire_volume_pull(va, 0), QUIRE_ECONFLICT);
  /* reset: A's commit goes, B's content comes. */
  CHECK_OK(quire_volume_reset(va, 0));
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.state == QUIRE_STATE_OK && st.unpushed_commits == 0 && st.remote_lsn == 2);
  expect_pages(va, 1, 2, 100);
  expect_pages(va, 3, 8, 300);
  expect_pages(va, 9, 10, 100);
  /* Conflict again; fork keeps A's commit in a new volume. */
  write_tagged(va, 1, 4, 400);
  write_tagged(vb, 9, 10, 500);
  CHECK_OK(quire_volume_push(vb, 0));
  CHECK_RC(quire_volume_push(va, 0), QUIRE_ECONFLICT);
  quire_gid fork;
  CHECK_OK(quire_volume_fork(va, 0, &fork));
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.state == QUIRE_STATE_OK && memcmp(st.vid.b, fork.b, 16) == 0 && st.remote_lsn == 1);
  expect_pages(va, 1, 4, 400);
  expect_pages(va, 5, 8, 300);
  expect_pages(va, 9, 10, 100);
  /* B sees the fork's content by its id. */
  char fid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&fork, fid);
  quire_volume *vf;
  CHECK_OK(quire_volume_open(b, fid, 0, &vf));
  expect_pages(vf, 1, 4, 400);
  expect_pages(vf, 9, 10, 100);
  /* The name follows the fork, also after a restart. */
  quire_volume_close(va);
  CHECK_OK(quire_client_close(a));
  a = open_client("cf_a", 0);
  CHECK_OK(quire_volume_open(a, "cf", 0, &va));
  quire_gid now;
  quire_volume_vid(va, &now);
  CHECK(memcmp(now.b, fork.b, 16) == 0);
  write_tagged(va, 20, 20, 600);
  CHECK_OK(quire_volume_push(va, 0));
  quire_volume_close(vf);
  quire_volume_close(va);
  quire_volume_close(vb);
  CHECK_OK(quire_client_close(a));
  CHECK_OK(quire_client_close(b));
}

static void autosync(void) {
  quire_client *a = open_client("as_a", 1), *b = open_client("as_b", 1);
  quire_volume *va, *vb;
  CHECK_OK(quire_volume_open(a, "as", QUIRE_CREATE, &va));
  write_tagged(va, 1, 4, 10);
  char id[QUIRE_GID_TEXT_LEN + 1];
  vid_text(va, id);
  CHECK_OK(quire_volume_wait(va, 1, 10000));
  CHECK_OK(quire_volume_open(b, id, 0, &vb));
  expect_pages(vb, 1, 4, 10);
  uint64_t lag_sum = 0, lag_max = 0;
  for (int i = 0; i < 20; i++) {
    uint64_t t0 = quire__mono_ms();
    write_tagged(va, 1, 2, 100 * (uint64_t)(i + 2));
    CHECK_OK(quire_volume_wait(vb, (quire_lsn)i + 2, 10000));
    uint64_t lag = quire__mono_ms() - t0;
    lag_sum += lag;
    if (lag > lag_max) lag_max = lag;
    expect_pages(vb, 1, 2, 100 * (uint64_t)(i + 2));
  }
  printf("autosync: commit on A readable on B in %llu ms on average, %llu ms at most\n",
         (unsigned long long)(lag_sum / 20), (unsigned long long)lag_max);
  quire_volume_close(va);
  quire_volume_close(vb);
  CHECK_OK(quire_client_close(a));
  CHECK_OK(quire_client_close(b));
}

static void offline(void) {
  quire_client *a = open_client("off_a", 0), *b = open_client("off_b", 0);
  quire_volume *va, *vb;
  CHECK_OK(quire_volume_open(a, "off", QUIRE_CREATE, &va));
  write_tagged(va, 1, 20, 10);
  CHECK_OK(quire_volume_push(va, 0));
  char id[QUIRE_GID_TEXT_LEN + 1];
  vid_text(va, id);
  CHECK_OK(quire_volume_open(b, id, 0, &vb));
  expect_pages(vb, 1, 1, 10); /* page 1 local, the rest pending */
  services_stop(&svc);
  /* Local work goes on. */
  write_tagged(va, 30, 31, 50);
  expect_pages(va, 1, 20, 10);
  expect_pages(vb, 1, 1, 10);
  quire_reader *r;
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECK_OK(quire_reader_open(vb, &r));
  uint64_t t0 = quire__mono_ms();
  CHECK_RC(quire_reader_read(r, 15, page), QUIRE_EUNAVAILABLE);
  printf("offline: an absent page failed after %llu ms: %s\n", (unsigned long long)(quire__mono_ms() - t0),
         quire_errmsg());
  quire_reader_close(r);
  int rc = quire_volume_push(va, 2000);
  CHECK(rc == QUIRE_EUNAVAILABLE || rc == QUIRE_ETIMEDOUT);
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.state == QUIRE_STATE_OFFLINE && st.push_in_progress && st.unpushed_commits == 1);
  /* Back on the same ports: the interrupted push resumes with its commit id. */
  services_start_ms(&svc);
  services_start_ps(&svc);
  CHECK_OK(quire_volume_push(va, 0));
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.state == QUIRE_STATE_OK && st.remote_lsn == 2 && !st.push_in_progress);
  CHECK_OK(quire_volume_pull(vb, 0));
  expect_pages(vb, 1, 20, 10);
  expect_pages(vb, 30, 31, 50);
  quire_volume_close(va);
  quire_volume_close(vb);
  CHECK_OK(quire_client_close(a));
  CHECK_OK(quire_client_close(b));
}

static void truncate_to(quire_volume *v, quire_pagecount n) {
  quire_writer *w;
  CHECK_OK(quire_writer_open(v, &w));
  CHECK_OK(quire_writer_truncate(w, n));
  CHECK_OK(quire_writer_commit(w, NULL));
}

static void expect_zeros(quire_volume *v, quire_pageidx lo, quire_pageidx hi) {
  quire_reader *r;
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECK_OK(quire_reader_open(v, &r));
  for (quire_pageidx i = lo; i <= hi; i++) {
    CHECK_OK(quire_reader_read(r, i, page));
    CHECKF(page_tag(page) == 0, "page %u: want zeros got tag %llu", i, (unsigned long long)page_tag(page));
  }
  quire_reader_close(r);
}

/* A commit that only grows page_count (no segments: the protocol allows it,
 * whatever client sends it), straight to the metastore. */
static void remote_grow(quire_volume *v, quire_pagecount count) {
  quire_msclient *ms;
  CHECK_OK(quire__msclient_open(svc.ms_url, NULL, &ms));
  quire_gid vid, client, commit;
  quire_volume_vid(v, &vid);
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit));
  struct quire_snapshot head, out;
  CHECK_OK(quire__msclient_snapshot(ms, &vid, 0, NULL, &head));
  CHECK(head.page_count < count);
  CHECK_OK(quire__msclient_commit(ms, &vid, &client, &commit, head.lsn, count, NULL, 0, NULL, &out));
  quire__msclient_close(ms);
}

/* A remote truncation and regrowth inside one pulled range: B held the old
 * pages locally, the range's graft names only what was written after the
 * growth, and the pages in between must read as zeros (the range's smallest
 * page_count says so) — after a pull, and after a reset. */
static void truncate_regrow(void) {
  quire_client *a = open_client("tr_a", 0), *b = open_client("tr_b", 0);
  quire_volume *va, *vb;
  CHECK_OK(quire_volume_open(a, "tr", QUIRE_CREATE, &va));
  write_tagged(va, 1, 10, 100);
  CHECK_OK(quire_volume_push(va, 0));
  char id[QUIRE_GID_TEXT_LEN + 1];
  vid_text(va, id);
  CHECK_OK(quire_volume_open(b, id, 0, &vb));
  expect_pages(vb, 1, 10, 100); /* fetched: B holds every page */
  truncate_to(va, 3);
  CHECK_OK(quire_volume_push(va, 0));
  remote_grow(va, 10);
  CHECK_OK(quire_volume_pull(vb, 0));
  expect_pages(vb, 1, 3, 100);
  expect_zeros(vb, 4, 10);
  /* Again with B holding an unpushed commit over the cut pages: reset. */
  CHECK_OK(quire_volume_pull(va, 0));
  write_tagged(va, 4, 10, 300);
  CHECK_OK(quire_volume_push(va, 0));
  CHECK_OK(quire_volume_pull(vb, 0));
  expect_pages(vb, 4, 10, 300);
  write_tagged(vb, 5, 6, 400); /* unpushed */
  truncate_to(va, 2);
  CHECK_OK(quire_volume_push(va, 0));
  remote_grow(va, 10);
  CHECK_RC(quire_volume_pull(vb, 0), QUIRE_ECONFLICT);
  CHECK_OK(quire_volume_reset(vb, 0));
  expect_pages(vb, 1, 2, 100);
  expect_zeros(vb, 3, 10);
  quire_volume_close(va);
  quire_volume_close(vb);
  CHECK_OK(quire_client_close(a));
  CHECK_OK(quire_client_close(b));
}

/* The server checkpoints a volume (a rewrite commit: no page changes) while
 * a client holds unpushed commits: the push lands on top of the checkpoint,
 * a pull moves past it, and no conflict is declared. A real commit by
 * another client in between still conflicts. */
static void checkpoint(quire_volume *v) {
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(svc.store_url, &store));
  struct gc_checkpoint_opts o = {.store = store};
  struct gc_checkpoint_result r;
  quire_gid vid;
  quire_volume_vid(v, &vid);
  CHECK_OK(quire__gc_checkpoint(quire__ms_service_metastore(svc.ms), &o, &vid, 1, &r));
  CHECK(r.written);
  quire_objstore_close(store);
}

static void over_checkpoints(void) {
  quire_client *a = open_client("ck_a", 0), *b = open_client("ck_b", 0);
  quire_volume *va, *vb;
  CHECK_OK(quire_volume_open(a, "ck", QUIRE_CREATE, &va));
  write_tagged(va, 1, 20, 100);
  CHECK_OK(quire_volume_push(va, 0));
  write_tagged(va, 3, 3, 100);
  CHECK_OK(quire_volume_push(va, 0)); /* lsn 1 is a checkpoint of its own */
  write_tagged(va, 5, 8, 200);
  checkpoint(va); /* lsn 3 */
  CHECK_OK(quire_volume_push(va, 0)); /* lsn 4 */
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECKF(st.remote_lsn == 4 && st.state == QUIRE_STATE_OK && st.unpushed_commits == 0, "remote lsn %llu state %d",
         (unsigned long long)st.remote_lsn, (int)st.state);
  /* A pull past a checkpoint with unpushed commits on top. */
  write_tagged(va, 10, 12, 300);
  checkpoint(va); /* lsn 5 */
  CHECK_OK(quire_volume_pull(va, 0));
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.remote_lsn == 5 && st.state == QUIRE_STATE_OK && st.unpushed_commits == 1);
  quire_stats stats;
  quire_volume_stats(va, &stats);
  CHECK(stats.rebases == 2 && stats.conflicts == 0);
  CHECK_OK(quire_volume_push(va, 0)); /* lsn 6 */
  char id[QUIRE_GID_TEXT_LEN + 1];
  vid_text(va, id);
  CHECK_OK(quire_volume_open(b, id, 0, &vb));
  expect_pages(vb, 1, 4, 100);
  expect_pages(vb, 5, 8, 200);
  expect_pages(vb, 9, 9, 100);
  expect_pages(vb, 10, 12, 300);
  expect_pages(vb, 13, 20, 100);
  /* A checkpoint, then a real commit by b: a's push is a conflict. */
  write_tagged(va, 1, 1, 400);
  checkpoint(va);
  write_tagged(vb, 2, 2, 500);
  CHECK_OK(quire_volume_push(vb, 0));
  CHECK_RC(quire_volume_push(va, 0), QUIRE_ECONFLICT);
  CHECK_OK(quire_volume_reset(va, 0));
  expect_pages(va, 2, 2, 500);
  quire_gid vid;
  quire_volume_vid(va, &vid);
  CHECK(check_remote_log(&svc, &vid) == 8); /* 4 pushes, 3 checkpoints, b's commit */
  quire_volume_close(va);
  quire_volume_close(vb);
  CHECK_OK(quire_client_close(a));
  CHECK_OK(quire_client_close(b));
}

int main(void) {
  test_seed();
  root = test_tmpdir("client_sync");
  char srv[1024];
  pathf(srv, sizeof srv, "%s/server", root);
  services_start(&svc, srv, NULL);
  push_pull();
  conflicts();
  autosync();
  offline();
  truncate_regrow();
  over_checkpoints();
  services_stop(&svc);
  test_rmtree(root);
  free(root);
  return test_done("test_client_sync");
}
