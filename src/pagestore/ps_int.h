/*
 * pagestore/ps_int.h — internals shared by the pagestore's files:
 * writer.c (write_pages), reader.c (read_pages), ps_http.c (the endpoints).
 */
#ifndef QUIRE_PAGESTORE_INT_H
#define QUIRE_PAGESTORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "core/receipt.h"
#include "metastore/catalog.h"
#include "metastore/client.h"
#include "pagestore/cache.h"
#include "pagestore/pagestore.h"
#include "quire/segment.h"
#include "util/util.h"

struct open_seg;

/* Where write_pages spends its time (writer.c, ps_http.c): sums over all
 * requests / segments, in nanoseconds of wall time. */
struct ps_write_timing {
  uint64_t requests, segments, gathered, bytes;
  uint64_t decode_ns; /* ps_http: parsing the request body, per request */
  uint64_t copy_ns;   /* placing and copying + checksumming pages, per request */
  uint64_t fill_ns;   /* first page to sealed, per segment */
  uint64_t queue_ns;  /* sealed to built (waiting for copies, the flusher) */
  uint64_t build_ns;  /* sort, gather if out of order, index + footer */
  uint64_t upload_ns; /* queued to durable in the store */
  uint64_t cache_ns;  /* writing the cache slot (overlaps the upload) */
  uint64_t serve_ns;  /* ps_http: body in to answer queued, per request */
};
#define PS_WBUF_KEEP 6 /* segment buffers kept for reuse */

struct quire_pagestore {
  struct quire_pagestore_opts o; /* o.receipt_key points at receipt_key below, or is NULL */
  uint8_t receipt_key[QUIRE_RECEIPT_KEY_SIZE];
  quire_objstore *store;
  int own_store;
  quire_objstore_uploads *uploads;
  ps_cache *cache;
  ms_catalog *catalog;
  quire_msclient *ms;
  quire_limiter *catchup;   /* single flight per volume */
  quire_limiter *downloads; /* single flight per segment */
  quire_pool *loaders;      /* fetches segments for reads, concurrently */
  quire_pool *readers;      /* runs read_pages requests */
  quire_segment_limits seglimits;

  /* Writer. wmu guards open, sealed, stopping and every ps_write's counters
   * (pending, rc, results). Lock order: wmu before nothing else. */
  pthread_mutex_t wmu;
  pthread_cond_t wcond; /* flusher wake-up: sealed work, a deadline, stop */
  struct open_seg *open;
  struct open_seg *sealed, *sealed_tail;
  int stopping;
  pthread_t flusher;
  int flusher_started;
  unsigned w_inflight;         /* segments sealed, not yet uploaded (wmu) */
  size_t wbuf_size;            /* bytes of a segment buffer */
  uint8_t *wbufs[PS_WBUF_KEEP]; /* free segment buffers (wmu) */
  unsigned nwbufs;
  struct {
    atomic_uint_fast64_t requests, segments, gathered, bytes;
    atomic_uint_fast64_t decode_ns, copy_ns, fill_ns, queue_ns, build_ns, upload_ns, cache_ns, serve_ns;
  } wt;

  atomic_uint_fast64_t segments_flushed, segments_uploaded, upload_failures;
  atomic_uint_fast64_t pages_written, pages_served;
  atomic_uint_fast64_t downloads_whole, downloads_partial, catalog_catchups;
};

/* Decoded, validated requests (ps_http.c). The parsers take untrusted
 * bytes: QUIRE_EINVAL / QUIRE_ETOOLARGE with a message for anything wrong. */
struct ps_write_req {
  quire_gid vid;
  size_t n;
  quire_pageidx *idx;
  const uint8_t **pages; /* point into the body parsed (no copy) */
};
int quire__ps_parse_write(const uint8_t *body, size_t len, unsigned max_pages, struct ps_write_req *out);
void quire__ps_write_req_clear(struct ps_write_req *w);

struct ps_read_req {
  quire_gid vid;
  quire_lsn lsn;
  splinter_view_t wanted; /* over msg's bytes */
  struct Quire__Pagestore__V1__ReadPagesRequest *msg;
};
int quire__ps_parse_read(const uint8_t *body, size_t len, unsigned max_pages, struct ps_read_req *out);
void quire__ps_read_req_clear(struct ps_read_req *q);

/* Unregisters the /metrics collector (pagestore close). */
void quire__ps_http_detach(quire_pagestore *ps);

int quire__ps_writer_start(quire_pagestore *ps);
/* Seals what is open, uploads everything, joins the flusher. */
void quire__ps_writer_stop(quire_pagestore *ps);
void quire__ps_write_timing(quire_pagestore *ps, struct ps_write_timing *out);

/* The segment query, split so that HTTP can answer errors with a status
 * before it starts streaming pages. */
typedef struct ps_plan ps_plan;
/* Catches the catalog up to lsn and cuts wanted against the volume's
 * segments newest first. *missing-to-be is kept in the plan. */
int quire__ps_plan(quire_pagestore *ps, const quire_gid *vid, quire_lsn lsn, splinter_ref_t wanted,
                   ps_plan **out);
/* Fetches the planned segments concurrently, calling emit (serialized) per
 * segment as each arrives. */
int quire__ps_plan_run(quire_pagestore *ps, ps_plan *plan, ps_read_pages_fn emit, void *ctx);
/* The number of segments the plan reads. */
size_t quire__ps_plan_jobs(const ps_plan *plan);
/* 1 when every segment the plan reads is in the disk cache (a hint: one
 * may be evicted before it is read, and is then fetched). */
int quire__ps_plan_cached(quire_pagestore *ps, const ps_plan *plan);
/* The wanted pages no segment holds. Borrowed from the plan. */
const splinter_t *quire__ps_plan_missing(const ps_plan *plan);
void quire__ps_plan_free(ps_plan *plan);

#endif
