/*
 * Allocation failures everywhere in the metastore's request paths: for n =
 * 1, 2, ... the n-th allocation fails while a commit, a snapshot, a
 * pull_graft and a pull_commits are handled (no HTTP: the handlers are
 * called directly). Each call must return 0 or an error code, never crash
 * or leak (ASan), and never break an invariant; afterwards, with injection
 * off, the log must be gap-free and every acknowledged commit in it.
 */
#include "ms_test.h"
#include "proto/metastore.pb-c.h"
#include "proto/pb.h"
#include "util/util.h"

static void pack_commit(const quire_gid *vid, const quire_gid *client, const quire_gid *cid, quire_lsn base,
                        const uint8_t *g, size_t gl, const quire_gid *sid, quire_buf *out) {
  Quire__Common__V1__SegmentInfo si = QUIRE__COMMON__V1__SEGMENT_INFO__INIT;
  Quire__Common__V1__SegmentInfo *segs[1] = {&si};
  si.has_sid = si.has_graft = 1;
  si.sid = quire__pb_gid_bytes(sid);
  si.graft.data = (uint8_t *)g;
  si.graft.len = gl;
  Quire__Metastore__V1__CommitRequest m = QUIRE__METASTORE__V1__COMMIT_REQUEST__INIT;
  m.has_vid = m.has_client_id = m.has_commit_id = m.has_page_count = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.client_id = quire__pb_gid_bytes(client);
  m.commit_id = quire__pb_gid_bytes(cid);
  m.has_base_lsn = base > 0;
  m.base_lsn = base;
  m.page_count = 100;
  m.n_segments = 1;
  m.segments = segs;
  CHECK_OK(quire__pb_pack(&m.base, out));
}

int main(void) {
  test_seed();
  quire__log_set_level(-1);
  quire_objstore *store;
  ms_catalog *cat;
  quire_metastore *ms;
  CHECK_OK(quire_objstore_open("mem://", &store));
  CHECK_OK(quire__catalog_mem_open(&cat));
  struct quire_metastore_opts mo = {.store = store, .catalog = cat, .catchup_threads = 1};
  CHECK_OK(quire_metastore_open(&mo, &ms));
  quire_gid vid, client;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  uint32_t pages[] = {1, 2, 3, 50};
  uint8_t *g;
  size_t gl;
  graft_of(pages, 4, &g, &gl);

  Quire__Metastore__V1__SnapshotRequest sr = QUIRE__METASTORE__V1__SNAPSHOT_REQUEST__INIT;
  sr.has_vid = 1;
  sr.vid = quire__pb_gid_bytes(&vid);
  Quire__Metastore__V1__PullGraftRequest pg = QUIRE__METASTORE__V1__PULL_GRAFT_REQUEST__INIT;
  pg.has_vid = 1;
  pg.vid = quire__pb_gid_bytes(&vid);
  Quire__Metastore__V1__PullCommitsRequest pc = QUIRE__METASTORE__V1__PULL_COMMITS_REQUEST__INIT;
  pc.has_vid = 1;
  pc.vid = quire__pb_gid_bytes(&vid);
  quire_buf sreq, preq, creq, req, out;
  quire__buf_init(&sreq, 1 << 20);
  quire__buf_init(&preq, 1 << 20);
  quire__buf_init(&creq, 1 << 20);
  quire__buf_init(&req, 1 << 20);
  quire__buf_init(&out, 64 << 20);
  CHECK_OK(quire__pb_pack(&sr.base, &sreq));
  CHECK_OK(quire__pb_pack(&pg.base, &preq));
  CHECK_OK(quire__pb_pack(&pc.base, &creq));

  quire_lsn acked = 0;
  long n;
  int clean = 0;
  for (n = 1; n < 2000 && !clean; n++) {
    quire_gid cid, sid;
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
    CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid));
    quire__buf_reset(&req);
    pack_commit(&vid, &client, &cid, acked, g, gl, &sid, &req);
    /* Reads of a fixed size: the newest commits only. */
    pg.has_from_lsn = 1;
    pg.from_lsn = acked > 2 ? acked - 2 : 0;
    pc.has_from_lsn = pc.has_limit = 1;
    pc.from_lsn = acked > 2 ? acked - 1 : 1;
    pc.limit = 3;
    quire__buf_reset(&preq);
    quire__buf_reset(&creq);
    CHECK_OK(quire__pb_pack(&pg.base, &preq));
    CHECK_OK(quire__pb_pack(&pc.base, &creq));
    quire_test_alloc_fail_at(n, 0);
    quire__buf_reset(&out);
    int rc = quire__ms_handle_commit(ms, req.data, req.len, &out);
    int r2 = quire__ms_handle_snapshot(ms, sreq.data, sreq.len, &out);
    int r3 = quire__ms_handle_pull_graft(ms, preq.data, preq.len, &out);
    int r4 = quire__ms_handle_pull_commits(ms, creq.data, creq.len, &out);
    clean = quire_test_alloc_failures() == 0;
    quire_test_alloc_fail_at(0, 0);
    CHECK(rc <= 0 && r2 <= 0 && r3 <= 0 && r4 <= 0);
    if (clean) CHECK(rc == 0 && r2 == 0 && r3 == 0 && r4 == 0);
    /* Retry the same commit id without faults: it lands exactly once,
     * whether or not the faulted attempt reached the store. */
    quire__buf_reset(&out);
    CHECK_OK(quire__ms_handle_commit(ms, req.data, req.len, &out));
    Quire__Metastore__V1__CommitResponse *cr =
        quire__metastore__v1__commit_response__unpack(&quire__pb_allocator, out.len, out.data);
    CHECK(cr && cr->snapshot && cr->snapshot->lsn == acked + 1);
    quire__metastore__v1__commit_response__free_unpacked(cr, &quire__pb_allocator);
    acked++;
  }
  CHECK(clean);
  /* The log: exactly the acknowledged commits, no gaps. */
  quire_lsn latest;
  CHECK_OK(quire__ms_refresh(ms, &vid, &latest));
  CHECK(latest == acked);
  CHECK(quire__never_count() == 0);
  printf("oom: failed each of %ld allocation sites in turn; %llu commits, log intact\n", n - 1,
         (unsigned long long)acked);
  splinter_bytes_free(g);
  quire__buf_free(&sreq);
  quire__buf_free(&preq);
  quire__buf_free(&creq);
  quire__buf_free(&req);
  quire__buf_free(&out);
  quire_metastore_close(ms);
  ms_catalog_close(cat);
  quire_objstore_close(store);
  return test_done("metastore_oom");
}
