/*
 * pagestore/client.h — C client for the pagestore API (docs/PROTOCOL.md),
 * used by tests, benchmarks and the client runtime. Thread-safe; keeps
 * connections alive. write_pages is retried on transport failures and 503
 * (a retry writes the pages into new segments; only the answered attempt's
 * segments are reported, the others are garbage for GC). read_pages parses
 * the framed answer strictly: every page must be one that was asked for,
 * exactly 4096 bytes, and the answer must end with its closing frame.
 */
#ifndef QUIRE_PAGESTORE_CLIENT_H
#define QUIRE_PAGESTORE_CLIENT_H

#include "net/http_client.h"
#include "quire/ids.h"
#include "quire/splinter.h"

typedef struct quire_psclient quire_psclient;

int quire__psclient_open(const char *url, const struct quire_http_client_opts *opts, quire_psclient **out);
void quire__psclient_close(quire_psclient *c); /* accepts NULL */

/* One segment holding some of the written pages: its id and the splinter of
 * the pages it holds (bytes owned by the array). */
struct quire_ps_written {
  quire_gid sid;
  uint8_t *graft;
  size_t graft_len;
  uint8_t receipt[32]; /* the write receipt to commit with (receipt_len 0: none given) */
  size_t receipt_len;
};
/* Writes n pages (idx[i] → pages[i], 4096 bytes each) of vid and waits
 * until they are durable. *segs (free with quire__psclient_written_free)
 * lists the segments holding them. */
int quire__psclient_write_pages(quire_psclient *c, const quire_gid *vid, const quire_pageidx *idx,
                                const uint8_t *const *pages, size_t n, struct quire_ps_written **segs,
                                size_t *nsegs);
void quire__psclient_written_free(struct quire_ps_written *segs, size_t n);

/* Called for each page received (page valid during the call); nonzero stops. */
typedef int (*quire_ps_page_fn)(void *ctx, quire_pageidx idx, const uint8_t *page);
/* Reads the wanted pages of vid as of lsn. *missing (new; caller frees)
 * gets the pages no segment holds (never written: zeros to the reader). */
int quire__psclient_read_pages(quire_psclient *c, const quire_gid *vid, quire_lsn lsn,
                               const splinter_t *wanted, quire_ps_page_fn fn, void *ctx,
                               splinter_t **missing);

/* Parses a read_pages answer body (the frames): calls fn per page, fills
 * *missing from the closing frame. QUIRE_ECORRUPT / QUIRE_EUNAVAILABLE for a
 * malformed or truncated body, the carried error for a failed read. */
int quire__psclient_parse_frames(const uint8_t *data, size_t len, const splinter_t *wanted,
                                 quire_ps_page_fn fn, void *ctx, splinter_t **missing);

#endif
