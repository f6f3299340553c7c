/*
 * metastore/client.h — C client for the metastore API (docs/PROTOCOL.md),
 * used by tests, the pagestore and the client runtime.
 *
 * One client per metastore URL; thread-safe; connections are kept alive.
 * Every call is safe to retry and is retried on transport failures and 503:
 * snapshot and the pulls are reads, and a commit is exactly idempotent by
 * its commit id (DESIGN.md §8.3), so a retried commit whose first attempt
 * succeeded returns that commit's snapshot.
 */
#ifndef QUIRE_METASTORE_CLIENT_H
#define QUIRE_METASTORE_CLIENT_H

#include "core/commit_record.h"
#include "metastore/metastore.h"
#include "net/http_client.h"

typedef struct quire_msclient quire_msclient;

/* opts may be NULL (defaults); opts->base_url is ignored in favour of url. */
int quire__msclient_open(const char *url, const struct quire_http_client_opts *opts, quire_msclient **out);
void quire__msclient_close(quire_msclient *c); /* accepts NULL */

/* The snapshot at lsn, or the latest with lsn 0. QUIRE_ENOTFOUND if none. */
int quire__msclient_snapshot(quire_msclient *c, const quire_gid *vid, quire_lsn lsn,
                             struct quire_snapshot *out);

/* Commits segs at base_lsn + 1 (base_lsn 0: the first commit). The segment
 * grafts are serialized splinters. QUIRE_ECONFLICT when another commit holds
 * that LSN, QUIRE_EINVAL (message says why) for a bad request. */
int quire__msclient_commit(quire_msclient *c, const quire_gid *vid, const quire_gid *client_id,
                           const quire_gid *commit_id, quire_lsn base_lsn, quire_pagecount page_count,
                           const struct quire_commit_segment *segs, uint32_t nsegs,
                           struct quire_snapshot *out);

/* Pages changed in (from, to] (to 0 = the latest). With wait_ms, waits up
 * to that long for a commit newer than from. *to_out is the end of the range
 * covered (== from when nothing changed), graft gets the splinter bytes
 * (reset first), snap the snapshot at *to_out. */
int quire__msclient_pull_graft(quire_msclient *c, const quire_gid *vid, quire_lsn from, quire_lsn to,
                               unsigned wait_ms, struct quire_snapshot *snap, quire_lsn *to_out,
                               quire_buf *graft);

/* One page of commits [from, to] (to 0 = the latest), at most limit (0 = the
 * server default). Release with quire__msclient_commits_free. */
struct quire_msclient_commits {
  struct quire_snapshot *snaps;
  struct quire_commit *commits; /* segments point into the response */
  size_t count;
  quire_lsn next_lsn;   /* 0 when this was the last page */
  quire_lsn latest_lsn; /* the volume's latest when the server answered */
  void *msg_;           /* internal */
};
int quire__msclient_pull_commits(quire_msclient *c, const quire_gid *vid, quire_lsn from, quire_lsn to,
                                 unsigned limit, struct quire_msclient_commits *out);
void quire__msclient_commits_free(struct quire_msclient_commits *p);

#endif
