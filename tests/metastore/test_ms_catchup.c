/*
 * Catch-up from object storage (no HTTP): a log written straight into the
 * store is read by GETs of log/{latest+1}, ... (never LIST), concurrent
 * catch-ups of one volume collapse into one (GET count bounded near the log
 * length, not 16 times it). A gap (a missing commit object with a later one
 * present, found by the cold-start probe) and an object that is not the
 * record its key names both break the volume: reported with the key, never
 * trusted, reads below keep working, commits are refused until it is
 * repaired.
 */
#include "ms_test.h"
#include "metastore/ms_int.h"
#include "proto/metastore.pb-c.h"
#include "proto/pb.h"
#include "util/util.h"

#include <pthread.h>

static quire_gid vid, client;

static void put_record(quire_objstore *store, quire_lsn lsn, quire_lsn claimed) {
  struct quire_commit c = {.vid = vid, .client_id = client, .lsn = claimed, .page_count = 10};
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id));
  quire_buf b;
  quire__buf_init(&b, 1 << 20);
  CHECK_OK(quire__commit_encode(&c, &b));
  char key[64];
  quire__commit_key(&vid, lsn, key);
  CHECK_OK(quire_objstore_put(store, key, b.data, b.len));
  quire__buf_free(&b);
}

struct refresher {
  quire_metastore *ms;
  quire_lsn latest;
  int rc;
};

static void *refresh(void *arg) {
  struct refresher *r = arg;
  r->rc = quire__ms_refresh(r->ms, &vid, &r->latest);
  return NULL;
}

int main(void) {
  test_seed();
  quire__log_set_level(-1);
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  quire_objstore *store;
  CHECK_OK(quire_objstore_open("mem://", &store));
  enum { N = 300, THREADS = 16 };
  for (quire_lsn l = 1; l <= N; l++) put_record(store, l, l);
  put_record(store, N + 2, N + 2); /* after a gap: not part of the log */

  ms_catalog *cat;
  quire_metastore *ms;
  CHECK_OK(quire__catalog_mem_open(&cat));
  struct quire_metastore_opts mo = {.store = store, .catalog = cat, .max_graft_commits = 50};
  CHECK_OK(quire_metastore_open(&mo, &ms));
  quire_objstore_stats st0, st1;
  quire_objstore_stats_get(store, &st0);
  struct refresher rs[THREADS];
  pthread_t ts[THREADS];
  for (int i = 0; i < THREADS; i++) {
    rs[i] = (struct refresher){.ms = ms};
    CHECK(pthread_create(&ts[i], NULL, refresh, &rs[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(ts[i], NULL);
    /* The gap at N + 1 is found (N + 2 exists): never a shortened log. */
    CHECK_RC(rs[i].rc, QUIRE_ECORRUPT);
    CHECK(rs[i].latest == N);
  }
  char gap_key[64], later_key[64];
  quire__commit_key(&vid, N + 1, gap_key);
  quire__commit_key(&vid, N + 2, later_key);
  quire_objstore_stats_get(store, &st1);
  uint64_t gets = st1.calls[QUIRE_OBJSTORE_OP_GET] - st0.calls[QUIRE_OBJSTORE_OP_GET];
  uint64_t lists = st1.calls[QUIRE_OBJSTORE_OP_LIST] - st0.calls[QUIRE_OBJSTORE_OP_LIST];
  printf("catch-up of %d commits by %d threads at once: %llu GETs, %llu LISTs\n", N, THREADS,
         (unsigned long long)gets, (unsigned long long)lists);
  /* One catch-up: N found + a few past the end + the gap probe; each late
   * caller shares its answer. Without single flight it would be THREADS * N. */
  CHECK(gets >= N + 1 && gets <= N + 8 + THREADS * 8);
  CHECK(lists <= 1);
  quire_lsn latest;
  CHECK_OK(ms_catalog_latest(cat, &vid, &latest));
  CHECK(latest == N);
  CHECK_RC(quire__ms_refresh(ms, &vid, &latest), QUIRE_ECORRUPT);
  CHECKF(strstr(quire_errmsg(), gap_key) && strstr(quire_errmsg(), later_key), "%s", quire_errmsg());

  /* Broken, the volume still serves everything below the gap: pull_graft
   * answers at most max_graft_commits commits; to_lsn says where it stopped
   * and the next call goes on from there. */
  {
    quire_lsn from = 0;
    int calls = 0;
    while (from < N) {
      Quire__Metastore__V1__PullGraftRequest pg = QUIRE__METASTORE__V1__PULL_GRAFT_REQUEST__INIT;
      pg.has_vid = pg.has_from_lsn = pg.has_to_lsn = 1;
      pg.vid = quire__pb_gid_bytes(&vid);
      pg.from_lsn = from;
      pg.to_lsn = N;
      quire_buf req, out;
      quire__buf_init(&req, 1 << 20);
      quire__buf_init(&out, 1 << 20);
      CHECK_OK(quire__pb_pack(&pg.base, &req));
      CHECK_OK(quire__ms_handle_pull_graft(ms, req.data, req.len, &out));
      Quire__Metastore__V1__PullGraftResponse *r =
          quire__metastore__v1__pull_graft_response__unpack(&quire__pb_allocator, out.len, out.data);
      CHECK(r && r->from_lsn == from && r->to_lsn == QUIRE_MIN(from + 50, (quire_lsn)N));
      CHECK(r->snapshot && r->snapshot->lsn == r->to_lsn);
      from = r->to_lsn;
      quire__metastore__v1__pull_graft_response__free_unpacked(r, &quire__pb_allocator);
      /* The open form would claim N is the latest: refused. */
      pg.has_to_lsn = 0;
      quire__buf_reset(&req);
      quire__buf_reset(&out);
      CHECK_OK(quire__pb_pack(&pg.base, &req));
      CHECK_RC(quire__ms_handle_pull_graft(ms, req.data, req.len, &out), QUIRE_ECORRUPT);
      quire__buf_free(&req);
      quire__buf_free(&out);
      calls++;
    }
    CHECK(calls == (N + 49) / 50);
  }
  quire_buf rec;
  quire__buf_init(&rec, 1 << 20);
  CHECK_OK(quire__ms_record(ms, &vid, N, &rec));
  CHECK_RC(quire__ms_record(ms, &vid, N + 2, &rec), QUIRE_ECORRUPT);
  /* No commit fills the hole (which would fork acknowledged history), and
   * none goes after it either. */
  struct quire_snapshot snap;
  for (quire_lsn base = N; base <= N + 2; base += 2) {
    struct quire_commit c = {.vid = vid, .client_id = client, .lsn = base + 1, .page_count = 10};
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id));
    CHECK_RC(quire__ms_commit(ms, &c, &snap), QUIRE_ECORRUPT);
    CHECK(strstr(quire_errmsg(), gap_key) != NULL);
  }

  /* Fill the gap with an object that claims another LSN: still broken,
   * now because of that object. */
  put_record(store, N + 1, N + 5);
  CHECK_RC(quire__ms_refresh(ms, &vid, &latest), QUIRE_ECORRUPT);
  CHECK(strstr(quire_errmsg(), "another volume or lsn") != NULL);
  CHECK_OK(ms_catalog_latest(cat, &vid, &latest));
  CHECK(latest == N); /* nothing after the bad object was taken */
  /* Repaired, the log continues through N + 2 and takes commits again. */
  put_record(store, N + 1, N + 1);
  CHECK_OK(quire__ms_refresh(ms, &vid, &latest));
  CHECK(latest == N + 2);
  {
    struct quire_commit c = {.vid = vid, .client_id = client, .lsn = N + 3, .page_count = 10};
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id));
    CHECK_OK(quire__ms_commit(ms, &c, &snap));
    CHECK(snap.lsn == N + 3);
  }

  /* A poll that finds nothing costs exactly one GET (the probe ran once). */
  quire_objstore_stats_get(store, &st0);
  CHECK_OK(quire__ms_refresh(ms, &vid, &latest));
  quire_objstore_stats_get(store, &st1);
  CHECK(latest == N + 3 && st1.calls[QUIRE_OBJSTORE_OP_GET] - st0.calls[QUIRE_OBJSTORE_OP_GET] == 1);
  CHECK(st1.calls[QUIRE_OBJSTORE_OP_LIST] == st0.calls[QUIRE_OBJSTORE_OP_LIST]);

  /* Garbage bytes at the next key: corruption, named; older LSNs still read. */
  char key[64];
  quire__commit_key(&vid, N + 4, key);
  CHECK_OK(quire_objstore_put(store, key, "not a commit record", 19));
  CHECK_RC(quire__ms_refresh(ms, &vid, &latest), QUIRE_ECORRUPT);
  CHECKF(strstr(quire_errmsg(), key) != NULL, "%s", quire_errmsg());
  CHECK(latest == N + 3);
  CHECK_OK(quire__ms_record(ms, &vid, N + 3, &rec));
  {
    struct quire_commit c = {.vid = vid, .client_id = client, .lsn = N + 4, .page_count = 10};
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id));
    CHECK_RC(quire__ms_commit(ms, &c, &snap), QUIRE_ECORRUPT);
  }
  quire__buf_free(&rec);
  CHECK(quire__never_count() == 0);

  quire_metastore_close(ms);
  ms_catalog_close(cat);
  quire_objstore_close(store);

  /* A store that fails: the error says which GET failed and why (the GET
   * ran on another thread; its message used to be lost). */
  CHECK_OK(quire_objstore_open("fault+mem://?err=1&seed=3", &store));
  CHECK_OK(quire__catalog_mem_open(&cat));
  struct quire_metastore_opts fo = {.store = store, .catalog = cat};
  CHECK_OK(quire_metastore_open(&fo, &ms));
  quire__err_clear();
  int frc = quire__ms_refresh(ms, &vid, &latest);
  CHECK(frc != 0 && frc != QUIRE_ECORRUPT);
  CHECKF(strstr(quire_errmsg(), "GET volumes/") != NULL, "'%s'", quire_errmsg());
  quire_metastore_close(ms);
  ms_catalog_close(cat);
  quire_objstore_close(store);
  return test_done("metastore_catchup");
}
