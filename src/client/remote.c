/*
 * client/remote.c — the client's calls to the metastore and the pagestore,
 * through their C clients (src/metastore/client.h, src/pagestore/client.h).
 * Every call carries a deadline and a cancel token (struct cl_call).
 */
#include <stdlib.h>
#include <string.h>

#include "client/remote.h"
#include "util/util.h"

int cl__remote_open(const quire_client_opts *o, struct cl_remote **out) {
  *out = NULL;
  struct cl_remote *r = quire__calloc(1, sizeof *r);
  if (!r) return QUIRE_ENOMEM;
  struct quire_http_client_opts ho = {0};
  ho.timeout_ms = o->call_timeout_ms;
  ho.connect_timeout_ms = 2000;
  /* No token given: the environment's QUIRE_TOKEN, if any ("" sends none). */
  ho.token = o->token ? o->token : getenv("QUIRE_TOKEN");
  int rc = quire__msclient_open(o->metastore_url, &ho, &r->ms);
  if (!rc) rc = quire__psclient_open(o->pagestore_url, &ho, &r->ps);
  if (rc) {
    cl__remote_close(r);
    return rc;
  }
  *out = r;
  return 0;
}

void cl__remote_close(struct cl_remote *r) {
  if (!r) return;
  quire__msclient_close(r->ms);
  quire__psclient_close(r->ps);
  quire__free(r);
}

void cl__call_init(quire_client *c, unsigned timeout_ms, struct cl_call *call) {
  call->deadline_ms = timeout_ms ? quire__mono_ms() + timeout_ms : 0;
  call->call_ms = c->o.call_timeout_ms;
  call->cancel = NULL;
}

static struct quire_call qc(const struct cl_call *call) {
  struct quire_call q = {0};
  if (call) {
    q.deadline_ms = quire__mono_ms() + call->call_ms;
    if (call->deadline_ms && call->deadline_ms < q.deadline_ms) q.deadline_ms = call->deadline_ms;
    q.cancel = call->cancel;
  }
  return q;
}

int cl__ms_pull_graft(struct cl_remote *r, const quire_gid *vid, quire_lsn from, unsigned wait_ms,
                      const struct cl_call *call, struct quire_snapshot *snap, quire_lsn *to, quire_buf *graft,
                      quire_pagecount *min_count) {
  struct quire_call q = qc(call);
  return quire__msclient_pull_graft(r->ms, vid, from, 0, wait_ms, &q, snap, to, graft, min_count);
}

int cl__ms_snapshot(struct cl_remote *r, const quire_gid *vid, quire_lsn lsn, const struct cl_call *call,
                    struct quire_snapshot *out) {
  struct quire_call q = qc(call);
  return quire__msclient_snapshot(r->ms, vid, lsn, &q, out);
}

int cl__ms_commit(struct cl_remote *r, const quire_gid *vid, const quire_gid *client_id, const quire_gid *commit_id,
                  quire_lsn base, quire_pagecount count, const struct quire_commit_segment *segs, uint32_t nsegs,
                  const struct cl_call *call, struct quire_snapshot *out) {
  struct quire_call q = qc(call);
  return quire__msclient_commit(r->ms, vid, client_id, commit_id, base, count, segs, nsegs, &q, out);
}

int cl__ps_write_pages(struct cl_remote *r, const quire_gid *vid, const quire_pageidx *idx,
                       const uint8_t *const *pages, size_t n, const struct cl_call *call,
                       struct quire_ps_written **segs, size_t *nsegs) {
  struct quire_call q = qc(call);
  return quire__psclient_write_pages(r->ps, vid, idx, pages, n, &q, segs, nsegs);
}

int cl__ps_read_pages(struct cl_remote *r, const quire_gid *vid, quire_lsn lsn, const splinter_t *wanted,
                      const struct cl_call *call, quire_ps_page_fn fn, void *ctx, splinter_t **missing) {
  struct quire_call q = qc(call);
  return quire__psclient_read_pages(r->ps, vid, lsn, wanted, &q, fn, ctx, missing);
}
