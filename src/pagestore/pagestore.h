/*
 * pagestore/pagestore.h — the pagestore service (DESIGN.md §9).
 *
 * write_pages packs written pages into segments, uploads them and answers
 * once every segment holding the request's pages is durable; read_pages
 * answers "these pages of volume V as of LSN L" by walking the volume's
 * commits newest first and cutting the wanted set against each segment's
 * pages (the segment query), then fetching and streaming the pages.
 *
 * The service object is independent of HTTP: tests drive it directly
 * (ps_write_*, ps_read) and ps_http.c exposes it as POST
 * /pagestore/v1/{write_pages,read_pages}.
 */
#ifndef QUIRE_PAGESTORE_H
#define QUIRE_PAGESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "net/http_server.h"
#include "net/metrics.h"
#include "quire/ids.h"
#include "quire/objstore.h"
#include "quire/splinter.h"

typedef struct quire_pagestore quire_pagestore;

struct quire_pagestore_opts {
  const char *store_url;      /* object store holding segments/ */
  quire_objstore *store;      /* or an open store (not owned); wins over store_url */
  const char *metastore_url;  /* where the catalog catches up from */
  const char *metastore_token;   /* bearer token for it (read on every volume); NULL: none */
  const char *metastore_ca_file; /* https:// metastore: CA bundle to verify it; NULL: system CAs */
  const char *catalog_path;   /* LSM file, or ":memory:" */
  const char *cache_dir;      /* segment disk cache */
  uint64_t cache_bytes;       /* its budget (default 1 GiB) */
  unsigned cache_mappings;    /* open mappings at most (default 256) */
  unsigned flush_interval_ms; /* write latency bound (default 100) */
  /* An open segment is also flushed once no page has been added for this
   * long (default 2): a lull means nobody is about to fill it. */
  unsigned flush_idle_ms;
  uint64_t segment_bytes;        /* segment size target (default 16 MiB) */
  unsigned upload_concurrency;   /* concurrent segment uploads (default 4) */
  unsigned download_concurrency; /* concurrent segment downloads (default 8) */
  unsigned read_threads;         /* threads running read_pages (default 8) */
  unsigned max_read_pages;       /* pages per read_pages request (default 4096) */
  unsigned max_write_pages;      /* pages per write_pages request (default 4096) */
  /* Fetch only the needed pages (ranged GETs) of an uncached segment when
   * the cut needs at most this percentage of its pages; else the whole
   * segment into the cache (0 means the default, 25). */
  unsigned partial_read_percent;
  int no_partial_reads; /* 1: always fetch whole segments */
  /* Write-receipt key shared with the metastore (core/receipt.h), copied:
   * write_pages answers carry a receipt per segment. NULL: no receipts. */
  const uint8_t *receipt_key;
  quire_metrics *metrics; /* may be NULL; not owned */
};

int quire__pagestore_open(const struct quire_pagestore_opts *o, quire_pagestore **out);
/* Flushes the open segment, waits for uploads and frees. Accepts NULL. */
void quire__pagestore_close(quire_pagestore *ps);
/* Registers POST /pagestore/v1/write_pages and read_pages on srv. */
int quire__pagestore_routes(quire_pagestore *ps, quire_http_server *srv);
/* 0 when the object store answers (GET /ready). */
int quire__pagestore_ready(quire_pagestore *ps);

/* ---- write_pages ---------------------------------------------------------- */

/* One write_pages request in flight. The page bytes are borrowed and must
 * stay valid until done runs. */
typedef struct ps_write ps_write;
typedef void (*ps_write_done_fn)(void *ctx, ps_write *w);

/* Validates (indexes non-zero and distinct, count within the cap; pages
 * are QUIRE_PAGE_SIZE bytes each) and queues the pages. done runs exactly
 * once, on a writer or upload thread, when every segment holding them is
 * durable or one failed. Returns QUIRE_EINVAL / QUIRE_ETOOLARGE without
 * calling done. */
int quire__ps_write_submit(quire_pagestore *ps, const quire_gid *vid, const quire_pageidx *idx,
                           const uint8_t *const *pages, size_t n, ps_write_done_fn done, void *ctx,
                           ps_write **out);
/* After done: 0 or the error that failed the write (QUIRE_EUNAVAILABLE
 * when an upload failed: nothing of the request is reported durable). */
int quire__ps_write_result(const ps_write *w);
/* After done with an error: what failed it (names the segment and the
 * reason). Owned by w. */
const char *quire__ps_write_error(const ps_write *w);
/* After done with result 0: the segments holding the request's pages and,
 * for each, the splinter of its pages there (owned by w). */
size_t quire__ps_write_segments(const ps_write *w, const quire_gid **sids, const splinter_t *const **grafts);
void quire__ps_write_free(ps_write *w);
/* Synchronous form: submits and waits; fills sids/grafts copies the caller
 * frees with quire__ps_write_free on *out. */
int quire__ps_write_wait(quire_pagestore *ps, const quire_gid *vid, const quire_pageidx *idx,
                         const uint8_t *const *pages, size_t n, ps_write **out);

/* ---- read_pages ----------------------------------------------------------- */

/* Receives the pages of one segment (idx[i] → pages[i], 4096 bytes each,
 * valid during the call) as they are found; 0 to go on, an error to stop. */
typedef int (*ps_read_pages_fn)(void *ctx, const quire_pageidx *idx, const uint8_t *const *pages, size_t n);

/* The pages in wanted of vid as of lsn. Calls emit for each segment's pages
 * as they arrive; on success *missing (new, caller frees) holds the wanted
 * pages no segment holds (never written). QUIRE_ENOTFOUND for an LSN the
 * metastore does not have, QUIRE_EUNAVAILABLE when the store or metastore
 * is down, QUIRE_ECORRUPT when the catalog and a segment disagree. */
int quire__ps_read(quire_pagestore *ps, const quire_gid *vid, quire_lsn lsn, splinter_ref_t wanted,
                   ps_read_pages_fn emit, void *ctx, splinter_t **missing);

/* Counters for tests and /metrics. */
struct ps_stats {
  uint64_t segments_flushed, segments_uploaded, upload_failures;
  uint64_t pages_written, pages_served;
  uint64_t downloads_whole, downloads_partial, catalog_catchups;
};
void quire__ps_stats(quire_pagestore *ps, struct ps_stats *out);

#endif
