/*
 * metastore/client.h — the C client of the metastore API (docs/PROTOCOL.md
 * "Metastore"), used by the client runtime, the pagestore, tests and
 * benchmarks. It depends only on core/, util/, net/http_client.h and
 * quire/ headers, never on the service's own headers.
 *
 * Handles. One quire_msclient per metastore URL, created by
 * quire__msclient_open and freed by quire__msclient_close. It is
 * thread-safe: any number of threads may call it at once (each call borrows
 * a keep-alive connection from a pool). Close it only when no call is
 * running.
 *
 * Calls. Every call takes `const struct quire_call *call` (NULL = the
 * defaults: a deadline of now + opts.timeout_ms, not cancellable), read
 * during the call only. A call returns 0 or a negative quire code with a
 * detail in quire_errmsg():
 *   QUIRE_ECANCELED     call->cancel fired (within milliseconds, even in a
 *                       long poll or a retry backoff);
 *   QUIRE_ETIMEDOUT     the deadline passed before an answer;
 *   QUIRE_EUNAVAILABLE  the metastore could not be reached or answered 503
 *                       until the retries ran out (or until the next retry
 *                       would pass the deadline);
 *   QUIRE_EUNAUTHORIZED / QUIRE_EFORBIDDEN  the credentials were refused;
 *   QUIRE_ECORRUPT      the answer broke the protocol (undecodable, a field
 *                       missing or of the wrong type);
 *   QUIRE_ENOMEM;
 * plus the per-call codes below. Outputs are written only on success.
 *
 * Retries. Every call is safe to retry and is retried on connection
 * failures and 503/429 (honouring Retry-After) within its deadline:
 * snapshot and the pulls are reads, and a commit is exactly idempotent by
 * its commit id (DESIGN.md §8.3), so a retried commit whose first attempt
 * succeeded returns that commit's snapshot.
 */
#ifndef QUIRE_METASTORE_CLIENT_H
#define QUIRE_METASTORE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/commit_record.h"
#include "core/snapshot.h"
#include "net/http_client.h"
#include "quire/ids.h"
#include "util/buf.h"

typedef struct quire_msclient quire_msclient;

/* A client of the metastore at url ("http://HOST:PORT"). opts may be NULL
 * (defaults); opts->base_url is ignored in favour of url; opts->token /
 * auth_fn set the credentials (copied, see net/http_client.h). Nothing is
 * sent until the first call. QUIRE_EINVAL for a bad URL, QUIRE_ENOMEM. */
int quire__msclient_open(const char *url, const struct quire_http_client_opts *opts, quire_msclient **out);
/* Frees c and its connections (accepts NULL). No call may be running. */
void quire__msclient_close(quire_msclient *c);

/* The snapshot of vid at lsn, or the latest with lsn 0, into *out.
 * QUIRE_ENOTFOUND: the volume has no commits, or lsn is past the latest. */
int quire__msclient_snapshot(quire_msclient *c, const quire_gid *vid, quire_lsn lsn,
                             const struct quire_call *call, struct quire_snapshot *out);

/* Commits segs[0..nsegs) (segment ids and their pages in vid as serialized
 * splinters; read during the call only) as LSN base_lsn + 1 of vid
 * (base_lsn 0: the first commit), with page_count the volume's new size.
 * commit_id is the idempotency key: persist it before the first attempt and
 * reuse it for every retry, after a crash too. *out gets the new snapshot —
 * or, when this commit had already succeeded, that commit's snapshot.
 * QUIRE_ECONFLICT: another commit holds that LSN (the base is out of date);
 * QUIRE_ENOTFOUND: base_lsn is past the latest; QUIRE_EINVAL: the request
 * was refused (the message says why: bad ids, overlapping segments, a page
 * over page_count); QUIRE_ETOOLARGE. A commit with no segments changes only
 * page_count. */
int quire__msclient_commit(quire_msclient *c, const quire_gid *vid, const quire_gid *client_id,
                           const quire_gid *commit_id, quire_lsn base_lsn, quire_pagecount page_count,
                           const struct quire_commit_segment *segs, uint32_t nsegs,
                           const struct quire_call *call, struct quire_snapshot *out);

/* The pages of vid changed in (from, to] (to 0 = the latest). On success
 * *to_out is the end of the range covered (== from when nothing is newer;
 * the server covers at most 10 000 commits per answer, ask again from
 * *to_out), graft (reset first; the caller owns it) holds the serialized
 * splinter of the changed pages, and *snap the snapshot at *to_out (when
 * *to_out == from, the snapshot at from).
 * wait_ms > 0 (with to 0) makes it a long poll: the server answers as soon
 * as a commit newer than from exists, or after wait_ms (capped at 60 s by
 * the server) with an empty range. The call's deadline is extended by
 * wait_ms (a long poll does not time out because of its own wait), and a
 * cancel ends it at once.
 * QUIRE_ENOTFOUND: no commits (after the wait, for a long poll), or from/to
 * past the latest; QUIRE_EINVAL: to < from. *min_count (may be NULL) gets
 * the smallest page_count of a commit in the range covered — pages above
 * it that the graft leaves out were truncated away and read as zeros at
 * *to_out — or UINT32_MAX from a server that does not say. */
int quire__msclient_pull_graft(quire_msclient *c, const quire_gid *vid, quire_lsn from, quire_lsn to,
                               unsigned wait_ms, const struct quire_call *call, struct quire_snapshot *snap,
                               quire_lsn *to_out, quire_buf *graft, quire_pagecount *min_count);

/* Server-side fork of vid at lsn (0: the latest): the new volume's
 * snapshot (lsn 1, a checkpoint). 410 GONE below the base. */
int quire__msclient_fork(quire_msclient *c, const quire_gid *vid, quire_lsn lsn, const struct quire_call *call,
                         struct quire_snapshot *out);

/* One page of the commits of vid with LSN in [from, to] (from 0 = 1, to 0 =
 * the latest), in LSN order, at most limit (0 = the server default, 100;
 * capped at 1 000). *out is filled on success and must be released with
 * quire__msclient_commits_free (also safe on a zeroed struct); on failure
 * it is left zeroed. Each commits[i] has its segment array allocated and
 * its graft pointers point into the response held by *out: valid until
 * quire__msclient_commits_free. snaps[i] is commits[i] as a snapshot.
 * next_lsn != 0 says more of the range remains: ask again from there.
 * from == latest + 1 answers an empty page. QUIRE_ENOTFOUND: from is past
 * latest + 1. */
struct quire_msclient_commits {
  struct quire_snapshot *snaps;
  struct quire_commit *commits; /* segments[].graft point into the response */
  size_t count;
  quire_lsn next_lsn;   /* 0 when this was the last page */
  quire_lsn latest_lsn; /* the volume's latest when the server answered */
  void *msg_;           /* internal */
};
int quire__msclient_pull_commits(quire_msclient *c, const quire_gid *vid, quire_lsn from, quire_lsn to,
                                 unsigned limit, const struct quire_call *call,
                                 struct quire_msclient_commits *out);
/* Frees what a successful pull_commits put in *p and zeroes it. */
void quire__msclient_commits_free(struct quire_msclient_commits *p);

#endif
