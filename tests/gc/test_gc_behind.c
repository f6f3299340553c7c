/*
 * A metastore that falls behind retention: instance B learns a volume's log
 * up to lsn 10, then commits go on through instance A, a checkpoint is made
 * and retention deletes the log below the new base (31) while B is idle. B's
 * next catch-up finds log/11 gone: it must go on at the base (the log
 * really continues there), not take 10 for the head nor call the volume
 * broken. Reads below the base answer QUIRE_EGONE on B too, and B accepts
 * the next commit.
 */
#include "gc_test.h"

static struct gt T;

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_seed();
  gt_open(&T, "gc-behind");
  struct quire_ms_settings mss = {.listen = "127.0.0.1:0", .store_url = T.store_url, .catalog_path = ":memory:"};
  quire_ms_service *b_svc;
  CHECK_OK(quire__ms_service_open(&mss, &b_svc));
  quire_metastore *b = quire__ms_service_metastore(b_svc);
  char b_url[64];
  snprintf(b_url, sizeof b_url, "http://127.0.0.1:%u", quire__ms_service_port(b_svc));
  quire_msclient *b_client;
  CHECK_OK(quire__msclient_open(b_url, NULL, &b_client));

  struct gt_vol v;
  gt_vol_new(&v);
  for (int i = 0; i < 10; i++) CHECK_OK(gt_commit(&T, &v, 2, GT_PAGES));
  quire_lsn latest;
  CHECK_OK(quire__ms_refresh(b, &v.vid, &latest));
  CHECK(latest == 10);
  for (int i = 0; i < 20; i++) CHECK_OK(gt_commit(&T, &v, 2, GT_PAGES));
  /* Checkpoint and retention through A. */
  quire_segment_limits lim = {.target_bytes = quire_segment_size(1, 16), .max_volumes = 4, .max_pages = 16};
  struct gc_pass_opts o = {.store = T.store, .work_dir = T.root, .grace_ms = 3600 * 1000};
  o.checkpoint.limits = &lim;
  o.checkpoint.max_walk_segments = 8;
  o.retention.min_commits = 4;
  o.retention.max_age_ms = 1;
  struct gc_pass_result r;
  CHECK_OK(quire__gc_pass(gt_ms(&T), &o, &r)); /* the checkpoint at 31 */
  CHECK(r.checkpoints == 1);
  quire_lsn head;
  CHECK_OK(quire__ms_refresh(gt_ms(&T), &v.vid, &head));
  CHECK(head == 31);
  gt_rewrite(&v, 31);
  for (int i = 0; i < 5; i++) CHECK_OK(gt_commit(&T, &v, 2, GT_PAGES));
  CHECK_OK(quire__gc_pass(gt_ms(&T), &o, &r)); /* the base moves to 31: log 1..30 goes */
  CHECKF(r.commits_deleted == 30, "commits deleted %llu", (unsigned long long)r.commits_deleted);
  /* B catches up past the deleted log. */
  CHECK_OK(quire__ms_refresh(b, &v.vid, &latest));
  CHECKF(latest == 36, "B's head %llu, want 36", (unsigned long long)latest);
  struct quire_snapshot snap;
  CHECK_OK(quire__msclient_snapshot(b_client, &v.vid, 31, NULL, &snap));
  CHECK(snap.lsn == 31 && snap.checkpoint_lsn == 31);
  CHECK_RC(quire__msclient_snapshot(b_client, &v.vid, 12, NULL, &snap), QUIRE_EGONE);
  CHECK_OK(gt_read(T.psc, &v, &v.vid, 31));
  CHECK_OK(gt_read(T.psc, &v, &v.vid, 36));
  /* A commit through B lands at 32 and A sees it. */
  quire__msclient_close(T.msc);
  T.msc = b_client;
  CHECK_OK(gt_commit(&T, &v, 2, GT_PAGES));
  CHECK(v.head == 37);
  CHECK_OK(quire__ms_refresh(gt_ms(&T), &v.vid, &head));
  CHECK(head == 37);
  CHECK_OK(gt_read(T.psc, &v, &v.vid, 37));
  printf("a metastore 26 commits behind retention caught up at the base (lsn %llu) and committed lsn 37\n",
         (unsigned long long)snap.checkpoint_lsn);
  quire__ms_service_close(b_svc, 2000);
  gt_vol_free(&v);
  gt_close(&T);
  return test_done("test_gc_behind");
}
