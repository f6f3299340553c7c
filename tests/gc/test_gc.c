/*
 * Retention and segment GC against a model: random commits on several
 * volumes with checkpoints, retention and GC passes interleaved; every read
 * at a retained LSN returns the model's bytes (through the real segment
 * query, warm and cold), reads below the base are 410 GONE, nothing a
 * retained commit references is ever deleted, uncommitted uploads survive
 * their grace period and go after it, and after the final pass no
 * unreferenced segment older than the grace period remains. A second
 * metastore that never saw the volumes catches up from their bases.
 */
#include "gc_test.h"

#define VOLS 4

static struct gt T;
static struct gt_vol V[VOLS];

static void read_all(int cold) {
  if (cold) gt_cold_ps(&T);
  for (int i = 0; i < VOLS; i++) {
    if (V[i].head == 0) continue; /* no commit yet (the random draw skipped it so far) */
    quire_lsn base;
    CHECK_OK(quire__ms_base(gt_ms(&T), &V[i].vid, 0, &base));
    /* The head, the base, and a few in between. */
    CHECK_OK(gt_read(T.psc, &V[i], &V[i].vid, V[i].head));
    CHECK_OK(gt_read(T.psc, &V[i], &V[i].vid, base));
    for (int k = 0; k < 3; k++)
      CHECK_OK(gt_read(T.psc, &V[i], &V[i].vid, base + test_rand_below(V[i].head - base + 1)));
    if (base > 1) {
      struct quire_snapshot snap;
      int rc = quire__msclient_snapshot(T.msc, &V[i].vid, base - 1, NULL, &snap);
      CHECKF(rc == QUIRE_EGONE, "snapshot below the base: %s", quire_strerror(rc));
      CHECKF(strstr(quire_errmsg(), "below the retained history") != NULL, "%s", quire_errmsg());
      /* A cold pagestore too (a warm one may still hold the old commits
       * and, within the grace period, their segments: the right bytes). */
      if (cold) CHECK_RC(gt_read(T.psc, &V[i], &V[i].vid, base - 1), QUIRE_EGONE);
    }
  }
}

static void pass(struct gc_pass_opts *o, struct gc_pass_result *r) {
  CHECK_OK(quire__gc_pass(gt_ms(&T), o, r));
  CHECK(r->volume_errors == 0);
  for (int i = 0; i < VOLS; i++) {
    /* Checkpoints the pass wrote: the model gains their rewrites. */
    quire_lsn head;
    CHECK_OK(quire__ms_refresh(gt_ms(&T), &V[i].vid, &head));
    while (V[i].head < head) gt_rewrite(&V[i], V[i].head + 1);
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_seed();
  gt_open(&T, "gc-sweep");
  for (int i = 0; i < VOLS; i++) gt_vol_new(&V[i]);
  quire_segment_limits lim = {.target_bytes = quire_segment_size(1, 16), .max_volumes = 4, .max_pages = 16};
  struct gc_pass_opts o = {.store = T.store, .work_dir = T.root, .grace_ms = 3600 * 1000};
  o.checkpoint.limits = &lim;
  o.checkpoint.max_walk_segments = 8;
  o.retention.min_commits = 4;
  o.retention.max_age_ms = 1; /* age never keeps anything here */
  struct gc_pass_result r;
  uint64_t deleted = 0, checkpoints = 0, commits_deleted = 0;
  int rounds = test_long_mode() ? 40 : 12;
  for (int round = 0; round < rounds; round++) {
    for (int k = 0; k < 12; k++) {
      struct gt_vol *v = &V[test_rand_below(VOLS)];
      CHECK_OK(gt_commit(&T, v, 1 + test_rand_below(4), GT_PAGES));
    }
    /* An upload that is never committed (a crashed client). */
    if (round % 3 == 0) {
      quire_pageidx idx = 1;
      uint8_t page[QUIRE_PAGE_SIZE];
      const uint8_t *pages[1] = {page};
      gt_fill(page, 1, 999);
      struct quire_ps_written *segs;
      size_t nsegs;
      CHECK_OK(quire__psclient_write_pages(T.psc, &V[0].vid, &idx, pages, 1, NULL, &segs, &nsegs));
      quire__psclient_written_free(segs, nsegs);
    }
    size_t before = gt_count_segments(&T);
    if (round % 4 == 3) {
      /* A dry run changes nothing. */
      o.dry_run = 1;
      CHECK_OK(quire__gc_pass(gt_ms(&T), &o, &r));
      CHECK(gt_count_segments(&T) == before);
      o.dry_run = 0;
    }
    pass(&o, &r);
    checkpoints += r.checkpoints;
    commits_deleted += r.commits_deleted;
    deleted += r.objects_deleted;
    (void)gt_check_retained(&T, gt_ms(&T), V, VOLS);
    read_all(round % 4 == 1);
  }
  printf("%d rounds: %llu checkpoints, %llu commits and %llu segments deleted (grace 1 h: only unreferenced "
         "and young ones remain)\n",
         rounds, (unsigned long long)checkpoints, (unsigned long long)commits_deleted,
         (unsigned long long)deleted);
  CHECK(checkpoints > 0 && commits_deleted > 0);
  /* With a grace period of 1 h nothing young went: everything unreferenced
   * is still there. Now with a zero grace period (nothing in flight). */
  o.grace_ms = 1;
  pass(&o, &r);
  (void)gt_check_retained(&T, gt_ms(&T), V, VOLS);
  CHECKF(r.objects_young == 0 && r.objects_deleted > 0, "young %llu deleted %llu",
         (unsigned long long)r.objects_young, (unsigned long long)r.objects_deleted);
  /* No unreferenced segment is left: the store holds exactly the marked ones. */
  CHECKF(gt_count_segments(&T) == r.segments_marked, "%zu segments, %llu marked", gt_count_segments(&T),
         (unsigned long long)r.segments_marked);
  /* Space amplification: stored segment bytes over the bytes of the page
   * versions retained history can read (the base checkpoint's pages and
   * those of every later commit that is not a rewrite). */
  {
    quire_buf b;
    quire__buf_init(&b, QUIRE_COMMIT_MAX_SIZE);
    uint64_t pages = 0;
    for (int i = 0; i < VOLS; i++) {
      quire_lsn base;
      CHECK_OK(quire__ms_base(gt_ms(&T), &V[i].vid, 0, &base));
      for (quire_lsn l = base; l <= V[i].head; l++) {
        struct quire_commit c;
        CHECK_OK(quire__ms_load(gt_ms(&T), &V[i].vid, l, &b, &c, NULL));
        if (l == base || !(c.flags & QUIRE_COMMIT_F_REWRITE))
          for (uint32_t k = 0; k < c.nsegments; k++) {
            splinter_view_t sv;
            CHECK_OK(splinter_view_open(c.segments[k].graft, c.segments[k].graft_len, &sv));
            pages += splinter_view_cardinality(&sv);
          }
        quire__commit_clear(&c);
      }
    }
    quire__buf_free(&b);
    printf("space amplification %.2f (%llu stored bytes / %llu bytes of retained page versions)\n",
           (double)r.bytes_live / (double)(pages * QUIRE_PAGE_SIZE), (unsigned long long)r.bytes_live,
           (unsigned long long)(pages * QUIRE_PAGE_SIZE));
  }
  printf("final pass: %llu segments live (%llu bytes), %llu deleted, %llu requests\n",
         (unsigned long long)r.objects_live, (unsigned long long)r.bytes_live,
         (unsigned long long)r.objects_deleted, (unsigned long long)r.requests);
  read_all(1);
  /* A metastore that never saw these volumes catches up from their bases. */
  {
    ms_catalog *cat;
    quire_metastore *ms2;
    CHECK_OK(quire__catalog_mem_open(&cat));
    struct quire_metastore_opts mo = {.store = T.store, .catalog = cat};
    CHECK_OK(quire_metastore_open(&mo, &ms2));
    for (int i = 0; i < VOLS; i++) {
      quire_lsn latest, base;
      CHECK_OK(quire__ms_refresh(ms2, &V[i].vid, &latest));
      CHECK(latest == V[i].head);
      CHECK_OK(quire__ms_base(ms2, &V[i].vid, 0, &base));
      quire_buf b;
      quire__buf_init(&b, QUIRE_COMMIT_MAX_SIZE);
      if (base > 1) CHECK_RC(quire__ms_record(ms2, &V[i].vid, base - 1, &b), QUIRE_EGONE);
      CHECK_OK(quire__ms_record(ms2, &V[i].vid, base, &b));
      quire__buf_free(&b);
    }
    (void)gt_check_retained(&T, ms2, V, VOLS);
    quire_metastore_close(ms2);
    ms_catalog_close(cat);
  }
  for (int i = 0; i < VOLS; i++) gt_vol_free(&V[i]);
  gt_close(&T);
  CHECK(quire__never_count() == 0);
  return test_done("gc_sweep");
}
