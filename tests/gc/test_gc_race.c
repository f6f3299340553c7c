/*
 * GC races (issue 15).
 *
 * in_flight: segments uploaded through the pagestore but not committed yet
 * — some before a pass, some while it runs (between its mark phase and its
 * sweep, the worst moment) — survive the pass (they are younger than the
 * grace period) while old unreferenced segments beside them go; afterwards
 * they are committed and read back, warm and cold, with the model's bytes.
 *
 * lost_race: a segment another pass deletes between this pass's listing and
 * its delete is counted as already gone, not as deleted by this pass.
 *
 * catalog_behind: a metastore whose catalog holds the start of a log that
 * another pass's retention deleted restarts the volume at the base (it is
 * not a gap in the log); so does a pagestore's catalog when pull_commits
 * answers from the base.
 *
 * old_retry: a retried commit whose segments passed the metastore's age
 * limit but whose first attempt already landed (unseen) is answered as a
 * retry; a new commit of such segments is still refused.
 *
 * two_passes: two passes on two metastore cores (two store handles: what
 * two `quire gc` processes are) run at once over the same store, both
 * sweeping at the same moment, while a client keeps committing and their
 * checkpoints race its commits. Nothing live is deleted (every segment a
 * retained commit references exists and every retained read returns the
 * model's bytes), every old unreferenced segment is gone, and the deletes
 * the two passes report add up to exactly the segments that were there to
 * delete: nothing is counted twice.
 */
#include "gc_test.h"

#include <pthread.h>
#include <unistd.h>

#include "util/clock.h"

#define VOLS 3

static struct gt T;
static struct gt_vol V[VOLS];

static void read_retained(int cold) {
  if (cold) gt_cold_ps(&T);
  for (int i = 0; i < VOLS; i++) {
    quire_lsn base;
    CHECK_OK(quire__ms_base(gt_ms(&T), &V[i].vid, 0, &base));
    for (quire_lsn l = base; l <= V[i].head; l++) CHECK_OK(gt_read(T.psc, &V[i], &V[i].vid, l));
  }
}

/* n unreferenced segments with ids two hours old (a crashed client's
 * uploads, long ago): what a pass must delete. Their keys go to keys[]. */
static void plant_old(size_t n, char (*keys)[64]) {
  uint8_t junk[100];
  memset(junk, 0x5a, sizeof junk);
  uint64_t old = quire__wall_ms() - 2 * 3600 * 1000;
  for (size_t i = 0; i < n; i++) {
    quire_gid sid;
    char s[QUIRE_GID_TEXT_LEN + 1];
    CHECK_OK(quire_gid_new_at(QUIRE_GID_SEGMENT, old + i, &sid));
    quire_gid_format(&sid, s);
    snprintf(keys[i], 64, "segments/%s", s);
    CHECK_OK(quire_objstore_put(T.store, keys[i], junk, sizeof junk));
  }
}

static size_t count_present(size_t n, char (*keys)[64]) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    quire_objstore_info info;
    int rc = quire_objstore_head(T.store, keys[i], &info);
    CHECK(rc == 0 || rc == QUIRE_ENOTFOUND);
    k += rc == 0;
  }
  return k;
}

/* ---- in_flight -------------------------------------------------------------- */

/* An upload of a few pages of v that is not committed yet. */
struct upload {
  struct gt_vol *v;
  quire_pageidx idx[4];
  uint32_t tag[4];
  size_t n;
  struct quire_ps_written *segs;
  size_t nsegs;
};

static void upload(struct upload *u, struct gt_vol *v) {
  memset(u, 0, sizeof *u);
  u->v = v;
  u->n = 1 + test_rand_below(4);
  uint8_t bufs[4][QUIRE_PAGE_SIZE];
  const uint8_t *pages[4];
  for (size_t i = 0; i < u->n; i++) {
    u->idx[i] = (quire_pageidx)(1 + i * 7 + test_rand_below(7)); /* distinct */
    u->tag[i] = ++T.tag;
    gt_fill(bufs[i], u->idx[i], u->tag[i]);
    pages[i] = bufs[i];
  }
  CHECK_OK(quire__psclient_write_pages(T.psc, &v->vid, u->idx, pages, u->n, NULL, &u->segs, &u->nsegs));
}

/* Commits an upload at the volume's head (after any checkpoint a pass
 * wrote) and records it in the model. */
static void commit_upload(struct upload *u) {
  struct gt_vol *v = u->v;
  gt_sync_rewrites(&T, v);
  quire_lsn lsn = v->head + 1;
  CHECK(lsn <= GT_MAX_LSN);
  memcpy(v->model[lsn], v->model[lsn - 1], sizeof v->model[0]);
  for (size_t i = 0; i < u->n; i++) v->model[lsn][u->idx[i]] = u->tag[i];
  struct quire_commit_segment cs[8];
  CHECK(u->nsegs <= 8);
  for (size_t i = 0; i < u->nsegs; i++)
    cs[i] = (struct quire_commit_segment){u->segs[i].sid, u->segs[i].graft, (uint32_t)u->segs[i].graft_len};
  quire_gid commit;
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit));
  struct quire_snapshot snap;
  CHECK_OK(quire__msclient_commit(T.msc, &v->vid, &T.client, &commit, v->head, GT_PAGES, cs,
                                  (uint32_t)u->nsegs, NULL, &snap));
  CHECK(snap.lsn == lsn);
  v->head = lsn;
  v->page_count[lsn] = GT_PAGES;
  quire__psclient_written_free(u->segs, u->nsegs);
  u->segs = NULL;
}

#define UPLOADS 6
static struct upload U[UPLOADS];
static size_t nuploads;

/* The pass's progress hook: once the volumes are marked (right before the
 * sweep lists segments/), upload more. */
static void upload_midpass(void *ctx, const char *phase, uint64_t done) {
  (void)ctx;
  (void)done;
  if (strcmp(phase, "marked") != 0 || nuploads >= UPLOADS) return;
  while (nuploads < UPLOADS) {
    upload(&U[nuploads], &V[nuploads % VOLS]);
    nuploads++;
  }
}

static void in_flight(void) {
  for (int r = 0; r < 4; r++)
    for (int i = 0; i < VOLS; i++) CHECK_OK(gt_commit(&T, &V[i], 1 + test_rand_below(4), GT_PAGES));
  char old[40][64];
  plant_old(40, old);
  nuploads = 0;
  for (; nuploads < UPLOADS / 2; nuploads++) upload(&U[nuploads], &V[nuploads % VOLS]);
  quire_segment_limits lim = {.target_bytes = quire_segment_size(1, 16), .max_volumes = 4, .max_pages = 16};
  struct gc_pass_opts o = {.store = T.store, .work_dir = T.root, .grace_ms = 3600 * 1000};
  o.checkpoint.limits = &lim;
  o.checkpoint.max_walk_segments = 2; /* every volume gets a checkpoint */
  o.retention.min_commits = 1;
  o.retention.max_age_ms = 1;
  o.progress = upload_midpass;
  struct gc_pass_result r;
  CHECK_OK(quire__gc_pass(gt_ms(&T), &o, &r));
  CHECK(r.volume_errors == 0);
  CHECKF(nuploads == UPLOADS, "the mid-pass uploads ran (%zu)", nuploads);
  CHECKF(r.checkpoints == VOLS, "checkpoints %llu", (unsigned long long)r.checkpoints);
  /* The old garbage went; the uploads in flight are still there. */
  CHECKF(count_present(40, old) == 0 && r.objects_deleted == 40, "%zu old left, %llu deleted",
         count_present(40, old), (unsigned long long)r.objects_deleted);
  for (size_t i = 0; i < UPLOADS; i++)
    for (size_t k = 0; k < U[i].nsegs; k++) {
      char key[64], s[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(&U[i].segs[k].sid, s);
      snprintf(key, sizeof key, "segments/%s", s);
      quire_objstore_info info;
      CHECKF(quire_objstore_head(T.store, key, &info) == 0, "upload %zu (%s) was deleted", i, key);
    }
  CHECKF(r.objects_young >= UPLOADS, "young %llu", (unsigned long long)r.objects_young);
  /* They can be committed now, and read. */
  for (size_t i = 0; i < UPLOADS; i++) commit_upload(&U[i]);
  (void)gt_check_retained(&T, gt_ms(&T), V, VOLS);
  read_retained(0);
  read_retained(1);
  printf("in_flight: %d uploads in flight survived a pass that deleted %llu old segments and wrote %llu "
         "checkpoints; committed and read back\n",
         UPLOADS, (unsigned long long)r.objects_deleted, (unsigned long long)r.checkpoints);
}

/* ---- lost_race -------------------------------------------------------------- */

static int lost_once;
static void delete_first(void *ctx, const char *key) {
  (void)ctx;
  if (lost_once++ == 0) CHECK_OK(quire_objstore_delete(T.store, key)); /* the other pass wins this one */
}

static void lost_race(void) {
  char old[10][64];
  plant_old(10, old);
  struct gc_pass_opts o = {
      .store = T.store, .work_dir = T.root, .grace_ms = 3600 * 1000, .no_checkpoints = 1};
  o.retention.min_commits = 1000;
  o.before_delete = delete_first;
  lost_once = 0;
  struct gc_pass_result r;
  CHECK_OK(quire__gc_pass(gt_ms(&T), &o, &r));
  CHECKF(r.objects_deleted == 9 && r.objects_gone == 1, "deleted %llu, already gone %llu",
         (unsigned long long)r.objects_deleted, (unsigned long long)r.objects_gone);
  CHECK(r.bytes_deleted == 9 * 100);
  CHECK(count_present(10, old) == 0);
  printf("lost_race: 9 deleted, 1 already gone\n");
}

/* ---- two_passes ------------------------------------------------------------- */

struct racer {
  quire_objstore *store;
  ms_catalog *cat;
  quire_metastore *ms;
  struct gc_pass_opts o;
  struct gc_pass_result r;
  int rc, at_barrier;
  pthread_t th;
};

static pthread_barrier_t sweep_barrier;
static _Atomic int passes_done;

/* Both passes start their sweeps at the same moment. */
static void meet_before_sweep(void *ctx, const char *phase, uint64_t done) {
  struct racer *x = ctx;
  (void)done;
  if (strcmp(phase, "marked") != 0 || x->at_barrier) return;
  x->at_barrier = 1;
  pthread_barrier_wait(&sweep_barrier);
}

static void *run_pass(void *arg) {
  struct racer *x = arg;
  x->rc = quire__gc_pass(x->ms, &x->o, &x->r);
  if (!x->at_barrier) pthread_barrier_wait(&sweep_barrier); /* never leave the other one waiting */
  passes_done++;
  return NULL;
}

static void two_passes(int rounds) {
  quire_segment_limits lim = {.target_bytes = quire_segment_size(1, 16), .max_volumes = 4, .max_pages = 16};
  uint64_t total_deleted = 0, total_gone = 0, total_planted = 0, checkpoints = 0, commits = 0;
  for (int round = 0; round < rounds; round++) {
    size_t nold = 1200 + test_rand_below(800); /* two listing pages */
    char(*old)[64] = malloc(nold * sizeof *old);
    CHECK(old);
    plant_old(nold, old);
    total_planted += nold;
    struct racer x[2];
    memset(x, 0, sizeof x);
    CHECK(pthread_barrier_init(&sweep_barrier, NULL, 2) == 0);
    passes_done = 0;
    for (int k = 0; k < 2; k++) {
      CHECK_OK(quire_objstore_open(T.store_url, &x[k].store));
      CHECK_OK(quire__catalog_mem_open(&x[k].cat));
      struct quire_metastore_opts mo = {.store = x[k].store, .catalog = x[k].cat};
      CHECK_OK(quire_metastore_open(&mo, &x[k].ms));
      x[k].o = (struct gc_pass_opts){.store = x[k].store, .work_dir = T.root, .grace_ms = 3600 * 1000};
      x[k].o.checkpoint.limits = &lim;
      x[k].o.checkpoint.max_walk_segments = 3;
      x[k].o.retention.min_commits = 2;
      x[k].o.retention.max_age_ms = 1;
      x[k].o.progress = meet_before_sweep;
      x[k].o.progress_ctx = &x[k];
    }
    for (int k = 0; k < 2; k++) CHECK(pthread_create(&x[k].th, NULL, run_pass, &x[k]) == 0);
    /* A client keeps committing meanwhile; a checkpoint that lands first
     * makes its commit a 409 (stale base): it syncs and commits again. */
    int n = 0;
    while (passes_done < 2 || n < 3) {
      if (n >= 40) { /* enough for this round (GT_MAX_LSN bounds the model) */
        usleep(5000);
        continue;
      }
      struct gt_vol *v = &V[test_rand_below(VOLS)];
      gt_sync_rewrites(&T, v);
      int rc = gt_commit(&T, v, 1 + test_rand_below(4), GT_PAGES);
      CHECKF(rc == 0 || rc == QUIRE_ECONFLICT, "commit: %s", quire_strerror(rc));
      n += rc == 0;
    }
    commits += (uint64_t)n;
    for (int k = 0; k < 2; k++) {
      CHECK(pthread_join(x[k].th, NULL) == 0);
      CHECKF(x[k].rc == 0 && x[k].r.volume_errors == 0, "pass %d: %s, %u volume errors", k,
             quire_strerror(x[k].rc), x[k].r.volume_errors);
    }
    pthread_barrier_destroy(&sweep_barrier);
    for (int i = 0; i < VOLS; i++) gt_sync_rewrites(&T, &V[i]);
    uint64_t deleted = x[0].r.objects_deleted + x[1].r.objects_deleted;
    uint64_t gone = x[0].r.objects_gone + x[1].r.objects_gone;
    /* Only the planted segments were old: each was deleted by exactly one
     * pass; every other delete attempt found it gone. */
    CHECKF(count_present(nold, old) == 0, "%zu old segments left", count_present(nold, old));
    CHECKF(deleted == nold, "round %d: the passes report %llu deletes (%llu + %llu) of %zu segments", round,
           (unsigned long long)deleted, (unsigned long long)x[0].r.objects_deleted,
           (unsigned long long)x[1].r.objects_deleted, nold);
    CHECK(x[0].r.bytes_deleted + x[1].r.bytes_deleted == nold * 100);
    total_deleted += deleted;
    total_gone += gone;
    checkpoints += x[0].r.checkpoints + x[1].r.checkpoints;
    (void)gt_check_retained(&T, gt_ms(&T), V, VOLS);
    read_retained(round == rounds - 1);
    for (int k = 0; k < 2; k++) {
      quire_metastore_close(x[k].ms);
      ms_catalog_close(x[k].cat);
      quire_objstore_close(x[k].store);
    }
    free(old);
  }
  printf("two_passes: %d rounds, %llu client commits, %llu checkpoints; %llu old segments, %llu deleted once "
         "each, %llu deletes found them already gone\n",
         rounds, (unsigned long long)commits, (unsigned long long)checkpoints,
         (unsigned long long)total_planted, (unsigned long long)total_deleted,
         (unsigned long long)total_gone);
}

/* ---- catalog_behind ---------------------------------------------------------- */

/* A metastore (a second gc process) whose catalog holds the start of a
 * volume's log when another pass's retention deletes the log up to a new
 * base: its catch-up finds log/{latest+1} missing and later commits
 * present. That is not a broken volume: the catalog restarts at the base.
 * Deterministic: the catalog is seeded with log/1 before retention runs. */
static void catalog_behind(void) {
  struct gt_vol v;
  gt_vol_new(&v);
  for (int k = 0; k < 6; k++) CHECK_OK(gt_commit(&T, &v, 2, GT_PAGES));
  /* The pagestore's catalog learns the log up to 5 (a read there). */
  gt_cold_ps(&T);
  CHECK_OK(gt_read(T.psc, &v, &v.vid, 5));
  ms_catalog *cat;
  CHECK_OK(quire__catalog_mem_open(&cat));
  {
    char key[64];
    quire__commit_key(&v.vid, 1, key);
    uint8_t *rec;
    size_t len;
    CHECK_OK(quire_objstore_get(T.store, key, &rec, &len));
    const uint8_t *recs[1] = {rec};
    CHECK_OK(ms_catalog_append(cat, &v.vid, 1, 1, recs, &len));
    quire_objstore_free(rec);
  }
  /* Retention on the service's core: a checkpoint at 7, base 7, log/1..6
   * deleted; then more commits. */
  struct gc_checkpoint_opts co = {.store = T.store};
  struct gc_checkpoint_result cr;
  CHECK_OK(quire__gc_checkpoint(gt_ms(&T), &co, &v.vid, 1, &cr));
  CHECK(cr.written && cr.lsn == 7);
  gt_rewrite(&v, 7);
  usleep(5000); /* past max_age_ms */
  struct gc_retention_opts ro = {.min_commits = 1, .max_age_ms = 1};
  struct gc_retain_result rr;
  CHECK_OK(quire__gc_retain(gt_ms(&T), T.store, &ro, &v.vid, 0, &rr));
  CHECKF(rr.base == 7 && rr.commits_deleted == 6, "base %llu, %llu deleted", (unsigned long long)rr.base,
         (unsigned long long)rr.commits_deleted);
  for (int k = 0; k < 3; k++) CHECK_OK(gt_commit(&T, &v, 2, GT_PAGES));
  /* The same pagestore reads past the cut: pull_commits answers from the
   * base 7, past what its catalog holds (5), and it restarts there. */
  for (quire_lsn l = 7; l <= v.head; l++) CHECK_OK(gt_read(T.psc, &v, &v.vid, l));
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(T.store_url, &store));
  struct quire_metastore_opts mo = {.store = store, .catalog = cat};
  quire_metastore *ms2;
  CHECK_OK(quire_metastore_open(&mo, &ms2));
  quire_lsn head, base;
  int rc = quire__ms_refresh(ms2, &v.vid, &head);
  CHECKF(rc == 0, "refresh: %s: %s", quire_strerror(rc), quire_errmsg());
  CHECK(head == v.head);
  CHECK_OK(quire__ms_base(ms2, &v.vid, 0, &base));
  CHECK(base == 7);
  quire_buf b;
  quire__buf_init(&b, QUIRE_COMMIT_MAX_SIZE);
  for (quire_lsn l = 7; l <= head; l++) CHECK_OK(quire__ms_record(ms2, &v.vid, l, &b));
  CHECK_RC(quire__ms_record(ms2, &v.vid, 1, &b), QUIRE_EGONE);
  quire__buf_free(&b);
  /* A pass on that core marks the volume (no volume error) and reads right. */
  struct gc_pass_opts o = {.store = store, .work_dir = T.root, .grace_ms = 3600 * 1000, .no_checkpoints = 1};
  struct gc_pass_result r;
  CHECK_OK(quire__gc_pass(ms2, &o, &r));
  CHECK(r.volume_errors == 0);
  for (quire_lsn l = 7; l <= v.head; l++) CHECK_OK(gt_read(T.psc, &v, &v.vid, l));
  quire_metastore_close(ms2);
  ms_catalog_close(cat);
  quire_objstore_close(store);
  gt_vol_free(&v);
  printf("catalog_behind: a catalog holding lsn 1 restarted at the base 7 and reads to %llu\n",
         (unsigned long long)head);
}

/* ---- old_retry ---------------------------------------------------------------- */

/* One commit of page 1 at lsn in segment sid. */
static int commit_old(quire_metastore *ms, const quire_gid *vid, const quire_gid *commit_id, quire_lsn lsn,
                      const quire_gid *sid, struct quire_snapshot *snap) {
  splinter_t *g;
  CHECK_OK(splinter_new(&g));
  CHECK(splinter_insert(g, 1) >= 0);
  uint8_t *gb;
  size_t gl;
  CHECK_OK(splinter_serialize_alloc(g, &gb, &gl));
  splinter_free(g);
  struct quire_commit_segment seg = {*sid, gb, (uint32_t)gl};
  struct quire_commit c = {.vid = *vid,
                           .client_id = T.client,
                           .commit_id = *commit_id,
                           .lsn = lsn,
                           .page_count = 1,
                           .nsegments = 1,
                           .segments = &seg};
  int rc = quire__ms_commit(ms, &c, snap);
  free(gb);
  return rc;
}

/* A resumed push whose segments are older than half the grace period (the
 * metastore of a server running GC refuses to commit those) but whose first
 * attempt already landed — unseen by the metastore that gets the retry —
 * is answered as the idempotent retry it is. A new commit of old segments
 * is still refused, and another commit id at that LSN is a conflict. */
static void old_retry(void) {
  quire_objstore *store;
  ms_catalog *cat;
  quire_metastore *strict;
  CHECK_OK(quire_objstore_open(T.store_url, &store));
  CHECK_OK(quire__catalog_mem_open(&cat));
  struct quire_metastore_opts mo = {.store = store, .catalog = cat, .max_segment_age_ms = 30 * 60 * 1000};
  CHECK_OK(quire_metastore_open(&mo, &strict));
  quire_gid vid, sid_new, sid_old, id1, id2, id3;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid_new));
  CHECK_OK(quire_gid_new_at(QUIRE_GID_SEGMENT, quire__wall_ms() - 3600 * 1000, &sid_old));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &id1));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &id2));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &id3));
  struct quire_snapshot s1, s2, again;
  /* lsn 1 through the strict metastore: it knows the volume up to 1. */
  CHECK_OK(commit_old(strict, &vid, &id1, 1, &sid_new, &s1));
  /* The first attempt of lsn 2 lands through the service's core (no age
   * limit there), unseen by the strict one. */
  CHECK_OK(commit_old(gt_ms(&T), &vid, &id2, 2, &sid_old, &s2));
  /* The retry of that same commit through the strict metastore. */
  int rc = commit_old(strict, &vid, &id2, 2, &sid_old, &again);
  CHECKF(rc == 0, "retry refused: %s: %s", quire_strerror(rc), quire_errmsg());
  CHECK(again.lsn == 2 && quire_gid_cmp(&again.commit_id, &id2) == 0 &&
        again.timestamp_ms == s2.timestamp_ms);
  /* Another commit id at lsn 2 is a conflict; a new commit of the old
   * segment at lsn 3 is refused as before. */
  CHECK_RC(commit_old(strict, &vid, &id3, 2, &sid_old, &again), QUIRE_ECONFLICT);
  CHECK_RC(commit_old(strict, &vid, &id3, 3, &sid_old, &again), QUIRE_EINVAL);
  CHECKF(strstr(quire_errmsg(), "write the pages again") != NULL, "%s", quire_errmsg());
  quire_metastore_close(strict);
  ms_catalog_close(cat);
  quire_objstore_close(store);
  printf("old_retry: a retry of a landed commit with hour-old segments is answered; a new one is refused\n");
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_seed();
  gt_open(&T, "gc-race");
  for (int i = 0; i < VOLS; i++) gt_vol_new(&V[i]);
  in_flight();
  lost_race();
  catalog_behind();
  old_retry();
  two_passes(test_long_mode() ? 10 : 2);
  for (int i = 0; i < VOLS; i++) gt_vol_free(&V[i]);
  gt_close(&T);
  CHECK(quire__never_count() == 0);
  return test_done("gc_race");
}
