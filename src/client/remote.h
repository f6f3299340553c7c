/*
 * client/remote.h — the client runtime's view of the services (remote.c).
 */
#ifndef QUIRE_CLIENT_REMOTE_H
#define QUIRE_CLIENT_REMOTE_H

#include "client/client_int.h"
#include "core/commit_record.h"
#include "metastore/client.h"
#include "pagestore/client.h"

struct cl_remote {
  quire_msclient *ms;
  quire_psclient *ps;
};

int cl__ms_pull_graft(struct cl_remote *r, const quire_gid *vid, quire_lsn from, unsigned wait_ms,
                      const struct cl_call *call, struct quire_snapshot *snap, quire_lsn *to, quire_buf *graft,
                      quire_pagecount *min_count);
int cl__ms_snapshot(struct cl_remote *r, const quire_gid *vid, quire_lsn lsn, const struct cl_call *call,
                    struct quire_snapshot *out);
int cl__ms_commit(struct cl_remote *r, const quire_gid *vid, const quire_gid *client_id, const quire_gid *commit_id,
                  quire_lsn base, quire_pagecount count, const struct quire_commit_segment *segs, uint32_t nsegs,
                  const struct cl_call *call, struct quire_snapshot *out);
int cl__ps_write_pages(struct cl_remote *r, const quire_gid *vid, const quire_pageidx *idx,
                       const uint8_t *const *pages, size_t n, const struct cl_call *call,
                       struct quire_ps_written **segs, size_t *nsegs);
int cl__ps_read_pages(struct cl_remote *r, const quire_gid *vid, quire_lsn lsn, const splinter_t *wanted,
                      const struct cl_call *call, quire_ps_page_fn fn, void *ctx, splinter_t **missing);

#endif
