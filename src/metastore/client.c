/*
 * metastore/client.c — the metastore client (see client.h): encode the
 * request message, POST it with quire__http_call, decode and check the
 * response. A response that does not decode or lacks a field is
 * QUIRE_ECORRUPT (the server broke the protocol).
 */
#include "metastore/client.h"

#include <string.h>

#include "proto/metastore.pb-c.h"
#include "proto/pb.h"
#include "util/alloc.h"
#include "util/err.h"

struct quire_msclient {
  quire_http_client *http;
};

int quire__msclient_open(const char *url, const struct quire_http_client_opts *opts, quire_msclient **out) {
  *out = NULL;
  quire_msclient *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  int rc = quire__http_client_open(url, opts, 64u << 20, &c->http);
  if (rc) {
    quire__free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void quire__msclient_close(quire_msclient *c) {
  if (!c) return;
  quire__http_client_destroy(c->http);
  quire__free(c);
}

static int bad_response(const char *what) {
  return quire__err(QUIRE_ECORRUPT, "metastore sent a malformed %s", what);
}

/* Decodes pb into *out (written only when it is valid). */
static int read_snapshot(const Quire__Common__V1__Snapshot *pb, struct quire_snapshot *out) {
  if (!pb) return bad_response("snapshot (missing)");
  struct quire_snapshot s;
  memset(&s, 0, sizeof s);
  if (quire__pb_gid(pb->has_vid, &pb->vid, QUIRE_GID_VOLUME, "vid", &s.vid) ||
      quire__pb_gid(pb->has_client_id, &pb->client_id, QUIRE_GID_CLIENT, "client_id", &s.client_id) ||
      quire__pb_gid(pb->has_commit_id, &pb->commit_id, QUIRE_GID_COMMIT, "commit_id", &s.commit_id) ||
      !pb->has_lsn || pb->lsn == 0)
    return bad_response("snapshot");
  s.lsn = pb->lsn;
  s.checkpoint_lsn = pb->checkpoint_lsn;
  s.page_count = pb->page_count;
  s.timestamp_ms = pb->timestamp_ms;
  s.flags = pb->has_flags ? pb->flags : 0;
  *out = s;
  return 0;
}

/* Packs msg, calls path, leaves the response body in resp. */
static int rpc(quire_msclient *c, const char *path, const ProtobufCMessage *msg,
               const struct quire_call *call, quire_buf *resp) {
  quire_buf req;
  quire__buf_init(&req, 256u << 20);
  int rc = quire__pb_pack(msg, &req);
  if (!rc) rc = quire__http_call(c->http, path, req.data ? (void *)req.data : "", req.len, call, 1, resp);
  quire__buf_free(&req);
  return rc;
}

int quire__msclient_snapshot(quire_msclient *c, const quire_gid *vid, quire_lsn lsn,
                             const struct quire_call *call, struct quire_snapshot *out) {
  Quire__Metastore__V1__SnapshotRequest m = QUIRE__METASTORE__V1__SNAPSHOT_REQUEST__INIT;
  m.has_vid = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.has_lsn = lsn != 0;
  m.lsn = lsn;
  quire_buf resp;
  quire__buf_init(&resp, 1u << 20);
  int rc = rpc(c, "/metastore/v1/snapshot", &m.base, call, &resp);
  if (!rc) {
    Quire__Metastore__V1__SnapshotResponse *r =
        quire__metastore__v1__snapshot_response__unpack(&quire__pb_allocator, resp.len, resp.data);
    rc = r ? read_snapshot(r->snapshot, out) : bad_response("SnapshotResponse");
    if (r) quire__metastore__v1__snapshot_response__free_unpacked(r, &quire__pb_allocator);
  }
  quire__buf_free(&resp);
  return rc;
}

int quire__msclient_fork(quire_msclient *c, const quire_gid *vid, quire_lsn lsn, const struct quire_call *call,
                         struct quire_snapshot *out) {
  Quire__Metastore__V1__ForkRequest m = QUIRE__METASTORE__V1__FORK_REQUEST__INIT;
  m.has_vid = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.has_lsn = lsn != 0;
  m.lsn = lsn;
  quire_buf resp;
  quire__buf_init(&resp, 1u << 20);
  int rc = rpc(c, "/metastore/v1/fork", &m.base, call, &resp);
  if (!rc) {
    Quire__Metastore__V1__ForkResponse *r =
        quire__metastore__v1__fork_response__unpack(&quire__pb_allocator, resp.len, resp.data);
    rc = r ? read_snapshot(r->snapshot, out) : bad_response("ForkResponse");
    if (r) quire__metastore__v1__fork_response__free_unpacked(r, &quire__pb_allocator);
  }
  quire__buf_free(&resp);
  return rc;
}

int quire__msclient_commit(quire_msclient *c, const quire_gid *vid, const quire_gid *client_id,
                           const quire_gid *commit_id, quire_lsn base_lsn, quire_pagecount page_count,
                           const struct quire_commit_segment *segs, uint32_t nsegs,
                           const struct quire_call *call, struct quire_snapshot *out) {
  Quire__Metastore__V1__CommitRequest m = QUIRE__METASTORE__V1__COMMIT_REQUEST__INIT;
  m.has_vid = m.has_client_id = m.has_commit_id = m.has_page_count = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.client_id = quire__pb_gid_bytes(client_id);
  m.commit_id = quire__pb_gid_bytes(commit_id);
  m.has_base_lsn = base_lsn != 0;
  m.base_lsn = base_lsn;
  m.page_count = page_count;
  Quire__Common__V1__SegmentInfo *infos = quire__calloc(nsegs ? nsegs : 1, sizeof *infos);
  Quire__Common__V1__SegmentInfo **ptrs = quire__calloc(nsegs ? nsegs : 1, sizeof *ptrs);
  int rc = 0;
  quire_buf resp;
  quire__buf_init(&resp, 1u << 20);
  if (!infos || !ptrs) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  for (uint32_t i = 0; i < nsegs; i++) {
    quire__common__v1__segment_info__init(&infos[i]);
    infos[i].has_sid = infos[i].has_graft = 1;
    infos[i].sid = quire__pb_gid_bytes(&segs[i].sid);
    infos[i].graft.data = (uint8_t *)segs[i].graft;
    infos[i].graft.len = segs[i].graft_len;
    infos[i].has_receipt = segs[i].receipt != NULL;
    infos[i].receipt.data = (uint8_t *)segs[i].receipt;
    infos[i].receipt.len = segs[i].receipt_len;
    infos[i].has_receipt_graft = segs[i].receipt_graft != NULL;
    infos[i].receipt_graft.data = (uint8_t *)segs[i].receipt_graft;
    infos[i].receipt_graft.len = segs[i].receipt_graft_len;
    ptrs[i] = &infos[i];
  }
  m.n_segments = nsegs;
  m.segments = ptrs;
  rc = rpc(c, "/metastore/v1/commit", &m.base, call, &resp);
  if (!rc) {
    Quire__Metastore__V1__CommitResponse *r =
        quire__metastore__v1__commit_response__unpack(&quire__pb_allocator, resp.len, resp.data);
    rc = r ? read_snapshot(r->snapshot, out) : bad_response("CommitResponse");
    if (r) quire__metastore__v1__commit_response__free_unpacked(r, &quire__pb_allocator);
  }
out:
  quire__buf_free(&resp);
  quire__free(infos);
  quire__free(ptrs);
  return rc;
}

int quire__msclient_pull_graft(quire_msclient *c, const quire_gid *vid, quire_lsn from, quire_lsn to,
                               unsigned wait_ms, const struct quire_call *call, struct quire_snapshot *snap,
                               quire_lsn *to_out, quire_buf *graft, quire_pagecount *min_count) {
  Quire__Metastore__V1__PullGraftRequest m = QUIRE__METASTORE__V1__PULL_GRAFT_REQUEST__INIT;
  m.has_vid = m.has_from_lsn = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.from_lsn = from;
  m.has_to_lsn = to != 0;
  m.to_lsn = to;
  m.has_wait_ms = wait_ms != 0;
  m.wait_ms = wait_ms;
  quire_buf resp;
  quire__buf_init(&resp, 256u << 20);
  /* A long poll's deadline is the call's extended by the wait: the server
   * holds the answer up to wait_ms on purpose. The cancel token still ends
   * it at once. */
  struct quire_call lp = {quire__http_deadline(c->http, call), call ? call->cancel : NULL};
  lp.deadline_ms += wait_ms;
  int rc = rpc(c, "/metastore/v1/pull_graft", &m.base, &lp, &resp);
  if (!rc) {
    Quire__Metastore__V1__PullGraftResponse *r =
        quire__metastore__v1__pull_graft_response__unpack(&quire__pb_allocator, resp.len, resp.data);
    struct quire_snapshot s;
    if (!r || !r->has_to_lsn) {
      rc = bad_response("PullGraftResponse");
    } else {
      rc = read_snapshot(r->snapshot, &s);
      quire__buf_reset(graft);
      if (!rc) rc = quire__buf_append(graft, r->graft.data, r->graft.len);
      if (!rc) {
        *snap = s;
        *to_out = r->to_lsn;
        if (min_count) *min_count = r->has_min_page_count ? r->min_page_count : UINT32_MAX;
      }
    }
    if (r) quire__metastore__v1__pull_graft_response__free_unpacked(r, &quire__pb_allocator);
  }
  quire__buf_free(&resp);
  return rc;
}

void quire__msclient_commits_free(struct quire_msclient_commits *p) {
  for (size_t i = 0; p->commits && i < p->count; i++) quire__free(p->commits[i].segments);
  quire__free(p->commits);
  quire__free(p->snaps);
  if (p->msg_) quire__metastore__v1__pull_commits_response__free_unpacked(p->msg_, &quire__pb_allocator);
  memset(p, 0, sizeof *p);
}

int quire__msclient_pull_commits(quire_msclient *c, const quire_gid *vid, quire_lsn from, quire_lsn to,
                                 unsigned limit, const struct quire_call *call,
                                 struct quire_msclient_commits *out) {
  memset(out, 0, sizeof *out);
  Quire__Metastore__V1__PullCommitsRequest m = QUIRE__METASTORE__V1__PULL_COMMITS_REQUEST__INIT;
  m.has_vid = m.has_from_lsn = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.from_lsn = from;
  m.has_to_lsn = to != 0;
  m.to_lsn = to;
  m.has_limit = limit != 0;
  m.limit = limit;
  quire_buf resp;
  quire__buf_init(&resp, 256u << 20);
  int rc = rpc(c, "/metastore/v1/pull_commits", &m.base, call, &resp);
  Quire__Metastore__V1__PullCommitsResponse *r = NULL;
  if (rc) goto out;
  r = quire__metastore__v1__pull_commits_response__unpack(&quire__pb_allocator, resp.len, resp.data);
  if (!r) {
    rc = bad_response("PullCommitsResponse");
    goto out;
  }
  out->msg_ = r;
  out->count = r->n_commits;
  out->next_lsn = r->has_next_lsn ? r->next_lsn : 0;
  out->latest_lsn = r->latest_lsn;
  out->snaps = quire__calloc(out->count ? out->count : 1, sizeof *out->snaps);
  out->commits = quire__calloc(out->count ? out->count : 1, sizeof *out->commits);
  if (!out->snaps || !out->commits) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < out->count && !rc; i++) {
    Quire__Common__V1__Commit *pc = r->commits[i];
    rc = read_snapshot(pc->snapshot, &out->snaps[i]);
    if (rc) break;
    struct quire_commit *qc = &out->commits[i];
    qc->vid = out->snaps[i].vid;
    qc->client_id = out->snaps[i].client_id;
    qc->commit_id = out->snaps[i].commit_id;
    qc->lsn = out->snaps[i].lsn;
    qc->checkpoint_lsn = out->snaps[i].checkpoint_lsn;
    qc->page_count = out->snaps[i].page_count;
    qc->timestamp_ms = out->snaps[i].timestamp_ms;
    qc->flags = out->snaps[i].flags;
    qc->nsegments = (uint32_t)pc->n_segments;
    qc->segments = quire__calloc(pc->n_segments ? pc->n_segments : 1, sizeof *qc->segments);
    if (!qc->segments) {
      rc = QUIRE_ENOMEM;
      break;
    }
    for (size_t k = 0; k < pc->n_segments && !rc; k++) {
      Quire__Common__V1__SegmentInfo *si = pc->segments[k];
      rc = quire__pb_gid(si->has_sid, &si->sid, QUIRE_GID_SEGMENT, "sid", &qc->segments[k].sid);
      if (rc || si->graft.len > UINT32_MAX) rc = bad_response("segment");
      qc->segments[k].graft = si->graft.data;
      qc->segments[k].graft_len = (uint32_t)si->graft.len;
    }
  }
out:
  if (rc) quire__msclient_commits_free(out);
  quire__buf_free(&resp);
  return rc;
}
