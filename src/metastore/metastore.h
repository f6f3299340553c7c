/*
 * metastore/metastore.h — the metastore service (DESIGN.md §8): orders the
 * commits of every volume by conditional create of the commit object
 * volumes/{vid}/log/{lsn:016x} in object storage, keeps a catalog of what it
 * has seen, and answers snapshot / pull_graft / pull_commits / commit.
 *
 * quire_metastore is the service without HTTP (ms_core.c); ms_http.c maps
 * the protobuf endpoints of docs/PROTOCOL.md onto it and registers them on a
 * quire_http_server, so one process can serve the metastore and the
 * pagestore on one listener (path routing: /metastore/v1/..., /pagestore/v1/...).
 */
#ifndef QUIRE_METASTORE_H
#define QUIRE_METASTORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/commit_record.h"
#include "core/snapshot.h"
#include "metastore/catalog.h"
#include "net/http_server.h"
#include "net/metrics.h"
#include "quire/objstore.h"

typedef struct quire_metastore quire_metastore;

struct quire_metastore_opts {
  quire_objstore *store;      /* not owned */
  ms_catalog *catalog;        /* not owned */
  quire_metrics *metrics;     /* may be NULL; not owned */
  unsigned catchup_inflight;  /* GETs in flight while catching up (default 4) */
  unsigned catchup_threads;   /* threads for those GETs, shared by all volumes (default 8) */
  unsigned max_catchups;      /* volumes catching up at once (default 64) */
  unsigned poll_interval_ms;  /* long-poll loop: one store GET per volume per interval (default 500) */
  unsigned max_wait_ms;       /* cap on a long poll's wait_ms (default 60000) */
  unsigned max_waiters;       /* long polls parked at once (default 10000) */
  unsigned max_pull_commits;  /* commits per pull_commits page (default 1000) */
  size_t max_pull_bytes;      /* bytes of records per pull_commits page (default 4 MiB) */
  unsigned max_graft_commits; /* commits one pull_graft answer covers at most (default 10000) */
  /* Write-receipt key shared with the pagestores (core/receipt.h), copied;
   * with it every committed segment must carry a valid receipt. NULL:
   * commits are not checked against written segments. */
  const uint8_t *receipt_key;
  /* Segment GC (docs/GC.md): commits of segments whose id is older than
   * this are refused (QUIRE_EINVAL: re-upload the pages), so a segment the
   * GC found unreferenced past its grace period can never be committed
   * afterwards. Half the GC grace period; 0: no limit (no GC runs). */
  uint64_t max_segment_age_ms;
};

int quire_metastore_open(const struct quire_metastore_opts *o, quire_metastore **out);
/* Wakes every long poll and stops the poll loops; then requests answer
 * QUIRE_ECLOSED. Safe to call more than once. */
void quire_metastore_drain(quire_metastore *ms);
/* Drains, waits for the poll loops, frees. Accepts NULL. */
void quire_metastore_close(quire_metastore *ms);

/* Registers POST /metastore/v1/{snapshot,pull_graft,pull_commits,commit} and
 * the ready/drain callbacks on srv. */
int quire_metastore_serve(quire_metastore *ms, quire_http_server *srv);

/* --- the service, without HTTP (also used by the fuzzers and tests) ------- */

/* Catches vid up from object storage; *latest (optional) is its latest LSN
 * afterwards (0 = no commits). */
int quire__ms_refresh(quire_metastore *ms, const quire_gid *vid, quire_lsn *latest);
/* The commit record at (vid, lsn), appended to out; catches up if needed.
 * QUIRE_ENOTFOUND if the log has no such LSN. */
int quire__ms_record(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, quire_buf *out);

/* Handles one encoded request message; the encoded response goes to out.
 * Errors are QUIRE_E* with a detail in quire_errmsg(). */
int quire__ms_handle_snapshot(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out);
int quire__ms_handle_commit(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out);
int quire__ms_handle_pull_commits(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out);
/* fork(vid, lsn): a new volume, first commit a checkpoint of vid at lsn
 * (gc/gc.h, quire__gc_fork); pages copied into new segments in the
 * metastore's store. */
int quire__ms_handle_fork(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out);
/* pull_graft without waiting (wait_ms is ignored). */
int quire__ms_handle_pull_graft(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out);

#endif
