/*
 * pagestore/client.h — the C client of the pagestore API (docs/PROTOCOL.md
 * "Pagestore"), used by the client runtime, tests and benchmarks. It
 * depends only on core/, util/, net/http_client.h and quire/ headers.
 *
 * Handles. One quire_psclient per pagestore URL (quire__psclient_open /
 * quire__psclient_close). Thread-safe: any number of calls may run at once
 * on keep-alive connections from a pool. Close it only when no call runs.
 *
 * Calls take `const struct quire_call *call` (NULL = defaults: a deadline of
 * now + opts.timeout_ms, not cancellable; see net/http_client.h) and return
 * 0 or a negative quire code with a detail in quire_errmsg():
 * QUIRE_ECANCELED (call->cancel fired; returned within milliseconds),
 * QUIRE_ETIMEDOUT (the deadline passed), QUIRE_EUNAVAILABLE (unreachable,
 * 503 until the retries or the deadline ran out, or an answer cut off),
 * QUIRE_EUNAUTHORIZED / QUIRE_EFORBIDDEN, QUIRE_EINVAL / QUIRE_ETOOLARGE
 * (the request was refused; the message says why), QUIRE_ECORRUPT (the
 * answer broke the protocol), QUIRE_ENOMEM.
 */
#ifndef QUIRE_PAGESTORE_CLIENT_H
#define QUIRE_PAGESTORE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "net/http_client.h"
#include "quire/ids.h"
#include "quire/splinter.h"

typedef struct quire_psclient quire_psclient;

/* A client of the pagestore at url ("http://HOST:PORT"); opts as for
 * quire__msclient_open (may be NULL). Nothing is sent until the first
 * call. QUIRE_EINVAL for a bad URL, QUIRE_ENOMEM. */
int quire__psclient_open(const char *url, const struct quire_http_client_opts *opts, quire_psclient **out);
/* Frees c and its connections (accepts NULL). No call may be running. */
void quire__psclient_close(quire_psclient *c);

/* One segment holding some of the written pages: its id and the splinter of
 * the pages of this request it holds (graft: graft_len bytes, owned by the
 * array). */
struct quire_ps_written {
  quire_gid sid;
  uint8_t *graft;
  size_t graft_len;
  uint8_t receipt[32]; /* the write receipt to commit with (receipt_len 0: none given) */
  size_t receipt_len;
};
/* Writes n pages of vid (idx[i] → pages[i], QUIRE_PAGE_SIZE bytes each;
 * 1 ≤ n ≤ 4096, indexes non-zero and distinct; read during the call only)
 * and returns when they are durable in object storage. On success *segs
 * (the caller frees it with quire__psclient_written_free(*segs, *nsegs))
 * lists the segments holding them: the grafts are disjoint and cover the
 * request; commit exactly these through the metastore. On failure *segs is
 * NULL and *nsegs 0.
 * Retried on connection failures and 503 (a retry writes the pages into new
 * segments; only the answered attempt's are reported, the others are
 * garbage for GC). QUIRE_EINVAL: a bad page (the message names it);
 * QUIRE_ETOOLARGE: over 4096 pages. */
int quire__psclient_write_pages(quire_psclient *c, const quire_gid *vid, const quire_pageidx *idx,
                                const uint8_t *const *pages, size_t n, const struct quire_call *call,
                                struct quire_ps_written **segs, size_t *nsegs);
/* Frees what write_pages returned (accepts NULL). */
void quire__psclient_written_free(struct quire_ps_written *segs, size_t n);

/* Called for each page received: idx and its QUIRE_PAGE_SIZE bytes, valid
 * during the call only. Return 0 to go on; nonzero stops the read, which
 * returns that value. Called on the thread that called read_pages, one page
 * at a time. */
typedef int (*quire_ps_page_fn)(void *ctx, quire_pageidx idx, const uint8_t *page);

/* Reads the pages in wanted (1 ≤ cardinality ≤ 4096, no page 0) of vid as
 * of lsn. The answer is parsed as it arrives: fn is called for each page as
 * soon as the frame holding it is complete (frames hold up to 256 pages and
 * go out as the pagestore finds them), so the first pages are in the
 * caller's hands while the rest are still on the way, and memory holds at
 * most one frame, never the whole answer. On success every wanted page was
 * either passed to fn exactly once or is in *missing (new; the caller frees
 * it with splinter_free): the pages no segment holds, never written, which
 * read as zeros. On failure *missing is NULL and fn may have been called
 * for some pages (they are valid pages of vid at lsn).
 * The answer is checked strictly (QUIRE_ECORRUPT): every page was asked
 * for, is exactly 4096 bytes and comes once, the closing frame accounts for
 * every page not sent, nothing follows it. An answer that ends before its
 * closing frame is QUIRE_EUNAVAILABLE; a read that failed on the server
 * after the answer began returns the error its last frame carries.
 * Retries: connection failures and 503 before any page arrived are retried
 * by the HTTP layer; an answer cut off after some pages is resumed here —
 * a new request for the pages not delivered yet (so fn still sees each
 * page once), up to the client's retries, with its backoff, within the
 * call's one deadline. If every page came and only the closing frame was
 * lost, the read succeeds with an empty *missing. When resuming gives up
 * the result is QUIRE_EUNAVAILABLE (or QUIRE_ECANCELED), and the pages fn
 * got are good. QUIRE_ENOTFOUND: an LSN the metastore does not have. */
int quire__psclient_read_pages(quire_psclient *c, const quire_gid *vid, quire_lsn lsn,
                               const splinter_t *wanted, const struct quire_call *call, quire_ps_page_fn fn,
                               void *ctx, splinter_t **missing);

/* The read_pages frame parser, incremental (what read_pages runs in curl's
 * write callback): feed it the answer body in pieces of any size; it calls
 * fn per page as each frame completes and buffers at most one frame
 * (frames over 4 MiB are QUIRE_ECORRUPT). wanted and ctx must outlive the
 * parser. */
typedef struct quire_ps_frames quire_ps_frames;
int quire__ps_frames_new(const splinter_t *wanted, quire_ps_page_fn fn, void *ctx, quire_ps_frames **out);
/* Parses the next len bytes. 0 to go on; an error (sticky: later feeds
 * return it too) or fn's nonzero value stops the parse. */
int quire__ps_frames_feed(quire_ps_frames *p, const uint8_t *data, size_t len);
/* The body has ended: checks that the closing frame came and accounts for
 * every wanted page; on success *missing (new; caller frees) is the
 * never-written set. Returns the sticky error if feed failed. */
int quire__ps_frames_finish(quire_ps_frames *p, splinter_t **missing);
void quire__ps_frames_free(quire_ps_frames *p); /* accepts NULL */
/* The pages passed to fn so far (valid until the parser is freed). */
splinter_ref_t quire__ps_frames_seen(const quire_ps_frames *p);

/* The whole-buffer form: parses a complete read_pages answer body (the
 * frames) with the incremental parser in one feed, then finishes. */
int quire__psclient_parse_frames(const uint8_t *data, size_t len, const splinter_t *wanted,
                                 quire_ps_page_fn fn, void *ctx, splinter_t **missing);

#endif
