/*
 * Checkpoints and fork through both services: a checkpoint holds every page
 * of the volume at its head in dense new segments, reads at every LSN
 * (before, at and after it) match the model, the segment query stops at it
 * (the old segments can go), pull_graft leaves it out, a racing client
 * commit makes it retry, and a fork reads exactly the source's bytes at the
 * fork LSN while later commits to either stay apart.
 */
#include "gc_test.h"

static struct gt T;
static struct gt_vol *race_vol;

static void race(void *ctx, const quire_gid *vid, quire_lsn base) {
  int *left = ctx;
  (void)vid;
  if (*left > 0) {
    (*left)--;
    CHECK(race_vol->head == base);
    CHECK_OK(gt_commit(&T, race_vol, 2, GT_PAGES));
  }
}

static void delete_segments_below(const struct gt_vol *v, quire_lsn below) {
  quire_buf buf;
  quire__buf_init(&buf, QUIRE_COMMIT_MAX_SIZE);
  for (quire_lsn l = 1; l < below; l++) {
    struct quire_commit c;
    CHECK_OK(quire__ms_load(gt_ms(&T), &v->vid, l, &buf, &c, NULL));
    for (uint32_t k = 0; k < c.nsegments; k++) {
      char key[64], s[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(&c.segments[k].sid, s);
      snprintf(key, sizeof key, "segments/%s", s);
      CHECK_OK(quire_objstore_delete(T.store, key));
    }
    quire__commit_clear(&c);
  }
  quire__buf_free(&buf);
}

static void test_checkpoint(void) {
  struct gt_vol v;
  gt_vol_new(&v);
  for (int i = 0; i < 30; i++) CHECK_OK(gt_commit(&T, &v, 1 + test_rand_below(3), GT_PAGES));
  CHECK_OK(gt_commit(&T, &v, 0, 40));       /* shrink: pages 41..48 are gone */
  CHECK_OK(gt_commit(&T, &v, 2, GT_PAGES)); /* and grow again: they read as never written */
  quire_segment_limits lim = {.target_bytes = quire_segment_size(1, 16), .max_volumes = 4, .max_pages = 16};
  int left = 1;
  race_vol = &v;
  struct gc_checkpoint_opts o = {
      .store = T.store, .limits = &lim, .max_walk_segments = 16, .before_commit = race, .hook_ctx = &left};
  struct gc_walk w;
  CHECK_OK(quire__gc_walk(gt_ms(&T), &v.vid, v.head, &w));
  CHECK(w.segments >= 31 && w.checkpoint_lsn == 1 && w.page_count == GT_PAGES);
  CHECK(quire__gc_checkpoint_due(&o, &w) == 1);
  quire_lsn before = v.head;
  struct gc_checkpoint_result r;
  CHECK_OK(quire__gc_checkpoint(gt_ms(&T), &o, &v.vid, 0, &r));
  CHECKF(r.written && r.retries == 1 && r.lsn == before + 2, "written %d retries %u lsn %llu", r.written,
         r.retries, (unsigned long long)r.lsn);
  gt_rewrite(&v, r.lsn);
  CHECK(r.pages == r.before.pages_live && r.segments == (r.pages + 15) / 16);
  printf("checkpoint at lsn %llu: walk %u segments, %llu of %llu pages live -> %u segments\n",
         (unsigned long long)r.lsn, r.before.segments, (unsigned long long)r.before.pages_live,
         (unsigned long long)r.before.pages_total, r.segments);
  /* The record: a rewrite, its own checkpoint. */
  struct quire_snapshot snap;
  CHECK_OK(quire__msclient_snapshot(T.msc, &v.vid, r.lsn, NULL, &snap));
  CHECK(snap.checkpoint_lsn == r.lsn && snap.flags == QUIRE_COMMIT_F_REWRITE && snap.page_count == GT_PAGES);
  /* The head is now a checkpoint: nothing due, a forced one does nothing. */
  CHECK_OK(quire__gc_walk(gt_ms(&T), &v.vid, v.head, &w));
  CHECK(w.checkpoint_lsn == v.head && w.segments == r.segments && w.pages_live == w.pages_total);
  CHECK(quire__gc_checkpoint_due(&o, &w) == 0);
  CHECK_OK(quire__gc_checkpoint(gt_ms(&T), &o, &v.vid, 1, &r));
  CHECK(!r.written && r.lsn == v.head);
  /* Later commits inherit the checkpoint. */
  quire_lsn ckpt = v.head;
  CHECK_OK(gt_commit(&T, &v, 2, GT_PAGES));
  CHECK_OK(quire__msclient_snapshot(T.msc, &v.vid, v.head, NULL, &snap));
  CHECK(snap.checkpoint_lsn == ckpt && snap.flags == 0);
  /* pull_graft: the rewrite adds nothing; the commit after it its pages. */
  quire_buf g;
  quire__buf_init(&g, 1 << 20);
  quire_lsn to;
  CHECK_OK(quire__msclient_pull_graft(T.msc, &v.vid, ckpt - 1, ckpt, 0, NULL, &snap, &to, &g, NULL));
  splinter_view_t gv;
  CHECK_OK(splinter_view_open(g.data, g.len, &gv));
  CHECK(to == ckpt && splinter_view_cardinality(&gv) == 0);
  quire__buf_reset(&g);
  CHECK_OK(quire__msclient_pull_graft(T.msc, &v.vid, ckpt - 1, v.head, 0, NULL, &snap, &to, &g, NULL));
  CHECK_OK(splinter_view_open(g.data, g.len, &gv));
  CHECK(splinter_view_cardinality(&gv) == 2);
  quire__buf_free(&g);
  /* Every LSN reads the model's bytes. */
  for (quire_lsn l = 1; l <= v.head; l++) CHECK_OK(gt_read(T.psc, &v, &v.vid, l));
  /* The segment query stops at the checkpoint: without the segments below
   * it, a cold pagestore still reads the head and everything after the
   * checkpoint (older LSNs now fail: that is what retention prevents). */
  delete_segments_below(&v, ckpt);
  gt_cold_ps(&T);
  for (quire_lsn l = ckpt; l <= v.head; l++) CHECK_OK(gt_read(T.psc, &v, &v.vid, l));
  CHECK(gt_read(T.psc, &v, &v.vid, ckpt - 1) != 0);
  gt_vol_free(&v);
}

static void test_fork(void) {
  struct gt_vol v, f;
  gt_vol_new(&v);
  gt_vol_new(&f);
  for (int i = 0; i < 12; i++) CHECK_OK(gt_commit(&T, &v, 1 + test_rand_below(4), GT_PAGES));
  quire_lsn at = 7;
  struct gc_checkpoint_opts o = {.store = T.store};
  struct quire_snapshot snap;
  CHECK_OK(quire__gc_fork(gt_ms(&T), &o, &v.vid, at, &f.vid, &snap));
  CHECK(snap.lsn == 1 && snap.checkpoint_lsn == 1 && snap.flags == 0 &&
        quire_gid_cmp(&snap.vid, &f.vid) == 0);
  memcpy(f.model[1], v.model[at], sizeof f.model[1]);
  f.head = 1;
  CHECK_OK(gt_read(T.psc, &f, &f.vid, 1));
  /* Later commits to either do not reach the other. */
  CHECK_OK(gt_commit(&T, &v, 3, GT_PAGES));
  CHECK_OK(gt_commit(&T, &f, 3, GT_PAGES));
  CHECK_OK(gt_read(T.psc, &f, &f.vid, 1));
  CHECK_OK(gt_read(T.psc, &f, &f.vid, 2));
  for (quire_lsn l = 1; l <= v.head; l++) CHECK_OK(gt_read(T.psc, &v, &v.vid, l));
  /* The same over HTTP (POST /metastore/v1/fork). */
  struct gt_vol h;
  gt_vol_new(&h);
  CHECK_OK(quire__msclient_fork(T.msc, &v.vid, 5, NULL, &snap));
  CHECK(snap.lsn == 1 && snap.checkpoint_lsn == 1 && quire_gid_type(&snap.vid) == QUIRE_GID_VOLUME);
  h.vid = snap.vid;
  memcpy(h.model[1], v.model[5], sizeof h.model[1]);
  h.head = 1;
  CHECK_OK(gt_read(T.psc, &h, &h.vid, 1));
  CHECK_RC(quire__msclient_fork(T.msc, &v.vid, v.head + 1, NULL, &snap), QUIRE_ENOTFOUND);
  gt_vol_free(&h);
  /* Past the head: not found. */
  quire_gid g;
  CHECK_RC(quire__gc_fork(gt_ms(&T), &o, &v.vid, v.head + 1, &g, &snap), QUIRE_ENOTFOUND);
  gt_vol_free(&v);
  gt_vol_free(&f);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_seed();
  gt_open(&T, "gc-checkpoint");
  test_checkpoint();
  test_fork();
  gt_close(&T);
  CHECK(quire__never_count() == 0);
  return test_done("gc_checkpoint");
}
