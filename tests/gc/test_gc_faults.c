/*
 * GC and checkpoints over a `fault+` store: every store call of the pass
 * (listing, commit GETs, checkpoint uploads and commits, base markers, log
 * and segment deletes) may fail (err) or succeed with its acknowledgement
 * lost (lost_ack). Clients commit through a clean metastore meanwhile and
 * old unreferenced segments are planted before each pass. After every
 * faulty pass, whether it failed or not: every segment a retained commit
 * references exists and every retained LSN reads the model's bytes. After
 * the faults stop, one clean pass finishes the work: no commit object or
 * base marker below the base is left, no old unreferenced segment is left,
 * and everything retained still reads right (cold too).
 * Short: 8 faulty passes; QUIRE_TEST_LONG=1: 40.
 */
#include "gc_test.h"

#include <unistd.h>

#include "util/clock.h"

#define VOLS 3

static struct gt T;
static struct gt_vol V[VOLS];

static void check_invariant(int cold) {
  if (cold) gt_cold_ps(&T);
  for (int i = 0; i < VOLS; i++) gt_sync_rewrites(&T, &V[i]);
  (void)gt_check_retained(&T, gt_ms(&T), V, VOLS);
  for (int i = 0; i < VOLS; i++) {
    quire_lsn base;
    CHECK_OK(quire__ms_base(gt_ms(&T), &V[i].vid, 0, &base));
    for (quire_lsn l = base; l <= V[i].head; l++) CHECK_OK(gt_read(T.psc, &V[i], &V[i].vid, l));
  }
}

/* Old unreferenced segments (ids two hours old): work for the sweep. */
static void plant_old(size_t n) {
  uint64_t old = quire__wall_ms() - 2 * 3600 * 1000;
  for (size_t i = 0; i < n; i++) {
    quire_gid sid;
    char key[64], s[QUIRE_GID_TEXT_LEN + 1];
    CHECK_OK(quire_gid_new_at(QUIRE_GID_SEGMENT, old + test_rand_below(1000), &sid));
    quire_gid_format(&sid, s);
    snprintf(key, sizeof key, "segments/%s", s);
    CHECK_OK(quire_objstore_put(T.store, key, "junk", 4));
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  uint64_t seed = test_seed();
  gt_open(&T, "gc-faults");
  for (int i = 0; i < VOLS; i++) gt_vol_new(&V[i]);
  /* The faulty pass's own metastore core on a fault+ handle of the same
   * store (what `quire gc --store fault+...` is), kept across passes. */
  char url[4600];
  snprintf(url, sizeof url, "fault+file://%s/objects?fsync=0&err=0.02&lost_ack=0.1&seed=%llu", T.root,
           (unsigned long long)(seed & 0xffffffff));
  quire_objstore *fstore;
  CHECK_OK(quire_objstore_open(url, &fstore));
  ms_catalog *cat;
  CHECK_OK(quire__catalog_mem_open(&cat));
  struct quire_metastore_opts mo = {.store = fstore, .catalog = cat};
  quire_metastore *fms;
  CHECK_OK(quire_metastore_open(&mo, &fms));
  quire_segment_limits lim = {.target_bytes = quire_segment_size(1, 16), .max_volumes = 4, .max_pages = 16};
  struct gc_pass_opts o = {.store = fstore, .work_dir = T.root, .grace_ms = 3600 * 1000};
  o.checkpoint.limits = &lim;
  o.checkpoint.max_walk_segments = 4;
  o.retention.min_commits = 3;
  o.retention.max_age_ms = 1;
  int passes = test_long_mode() ? 40 : 8, failed = 0, skipped = 0;
  uint64_t checkpoints = 0, deleted = 0, commits_deleted = 0, planted = 0;
  for (int p = 0; p < passes; p++) {
    for (int k = 0; k < 6; k++) {
      struct gt_vol *v = &V[test_rand_below(VOLS)];
      gt_sync_rewrites(&T, v);
      CHECK_OK(gt_commit(&T, v, 1 + test_rand_below(4), GT_PAGES));
    }
    size_t n = 20 + test_rand_below(40);
    plant_old(n);
    planted += n;
    usleep(3000); /* past max_age_ms */
    struct gc_pass_result r;
    int rc = quire__gc_pass(fms, &o, &r);
    failed += rc != 0;
    skipped += r.volume_errors != 0;
    checkpoints += r.checkpoints;
    deleted += r.objects_deleted;
    commits_deleted += r.commits_deleted;
    check_invariant(p % 4 == 3);
  }
  quire_objstore_stats st;
  quire_objstore_stats_get(fstore, &st);
  printf("%d faulty passes (%d failed, %d skipped volumes so swept nothing): %llu errors and %llu lost acks "
         "injected; %llu checkpoints, %llu commits and %llu of %llu planted segments deleted\n",
         passes, failed, skipped, (unsigned long long)st.injected_errors,
         (unsigned long long)st.injected_lost_acks, (unsigned long long)checkpoints,
         (unsigned long long)commits_deleted, (unsigned long long)deleted, (unsigned long long)planted);
  CHECK(st.injected_errors > 0 && st.injected_lost_acks > 0);
  quire_metastore_close(fms);
  ms_catalog_close(cat);
  quire_objstore_close(fstore);

  /* The faults stop: one clean pass (a fresh process: its own core on a
   * clean handle) finishes the work. */
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(T.store_url, &store));
  CHECK_OK(quire__catalog_mem_open(&cat));
  mo = (struct quire_metastore_opts){.store = store, .catalog = cat};
  quire_metastore *ms;
  CHECK_OK(quire_metastore_open(&mo, &ms));
  o.store = store;
  o.no_checkpoints = 1; /* only finish: retention and the sweep */
  struct gc_pass_result r;
  CHECK_OK(quire__gc_pass(ms, &o, &r));
  CHECK(r.volume_errors == 0);
  check_invariant(1);
  /* No commit object or marker below the base, one marker at most. */
  for (int i = 0; i < VOLS; i++) {
    quire_lsn base;
    CHECK_OK(quire__ms_base(ms, &V[i].vid, 0, &base));
    char vs[QUIRE_GID_TEXT_LEN + 1], prefix[96];
    quire_gid_format(&V[i].vid, vs);
    snprintf(prefix, sizeof prefix, "volumes/%s/log/", vs);
    size_t logs = gt_count_keys(&T, prefix);
    CHECKF(logs == V[i].head - base + 1, "volume %d: %zu commit objects for [%llu, %llu]", i, logs,
           (unsigned long long)base, (unsigned long long)V[i].head);
    snprintf(prefix, sizeof prefix, "volumes/%s/base/", vs);
    size_t markers = gt_count_keys(&T, prefix);
    CHECKF(markers == (base > 1), "volume %d: %zu base markers (base %llu)", i, markers,
           (unsigned long long)base);
  }
  /* No old unreferenced segment: every stored one is marked or young. */
  {
    quire_objstore_list list;
    char after[160] = "";
    uint64_t now = quire__wall_ms(), old_unmarked = 0;
    size_t stored = 0;
    for (;;) {
      CHECK_OK(quire_objstore_list_keys(T.store, "segments/", after, 1000, &list));
      for (size_t i = 0; i < list.count; i++) {
        quire_gid sid;
        CHECK_OK(quire_gid_parse(list.entries[i].key + 9, QUIRE_GID_TEXT_LEN, QUIRE_GID_SEGMENT, &sid));
        old_unmarked += quire_gid_time_ms(&sid) + 3600 * 1000 < now;
        stored++;
      }
      int more = list.truncated && list.count;
      if (more) snprintf(after, sizeof after, "%s", list.entries[list.count - 1].key);
      quire_objstore_list_free(&list);
      if (!more) break;
    }
    CHECKF(old_unmarked == 0, "%llu old segments left", (unsigned long long)old_unmarked);
    CHECKF(stored == r.objects_live, "%zu stored, %llu live", stored, (unsigned long long)r.objects_live);
    printf("clean pass: %llu more planted segments and %llu commits deleted; %zu segments stored (%llu "
           "referenced, the rest young: uploads of checkpoints that lost their commit to a fault)\n",
           (unsigned long long)r.objects_deleted, (unsigned long long)r.commits_deleted, stored,
           (unsigned long long)r.segments_marked);
    CHECK(deleted + r.objects_deleted <= planted);
  }
  quire_metastore_close(ms);
  ms_catalog_close(cat);
  quire_objstore_close(store);
  for (int i = 0; i < VOLS; i++) gt_vol_free(&V[i]);
  gt_close(&T);
  return test_done("gc_faults");
}
