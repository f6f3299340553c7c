/*
 * quire/quire.h — the client runtime (DESIGN.md §11, docs/CLIENT.md).
 *
 * The library an application embeds. A client owns one data directory with
 * a local store (one LSM file) of page versions. Volumes are sparse arrays
 * of 4096-byte pages; a client commits to a volume locally at once, pushes
 * its commits to the metastore and pagestore in the background, pulls the
 * commits of others, and fetches the pages its reads touch on demand (with
 * read-ahead on sequential and strided runs).
 *
 * Lifecycle: quire_client_open → quire_volume_open → readers and writers →
 * close everything in reverse order. Handles are opaque; every handle
 * returned through an out parameter belongs to the caller until the matching
 * close/abort/commit. A client must outlive its volumes, a volume its
 * readers and writers.
 *
 * Threads: a client and a volume may be used from many threads at once. A
 * reader is an immutable snapshot: several threads may read through one
 * reader. A writer belongs to one thread at a time. At most one writer per
 * volume is open in a process; a second gets QUIRE_EBUSY.
 *
 * Errors: 0 on success, a negative QUIRE_E* code or -errno (quire/common.h),
 * with a human-readable detail in quire_errmsg() on the failing thread.
 * What each error means for the application is in docs/CLIENT.md.
 */
#ifndef QUIRE_QUIRE_H
#define QUIRE_QUIRE_H

#include <stddef.h>
#include <stdint.h>

#include "quire/common.h"
#include "quire/ids.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct quire_client quire_client;
typedef struct quire_volume quire_volume;
typedef struct quire_reader quire_reader;
typedef struct quire_writer quire_writer;

/* Durability of a local commit (the local store's sync mode). */
enum quire_sync_mode {
  QUIRE_SYNC_FULL = 0,   /* an acknowledged commit survives power loss (fsync) */
  QUIRE_SYNC_NORMAL = 1, /* survives a crash of the process, not of the machine */
  QUIRE_SYNC_OFF = 2     /* bulk loads and tests: a crash may lose recent commits */
};

typedef struct quire_client_opts {
  const char *data_dir;      /* required; created (mode 0700) if missing */
  const char *metastore_url; /* "http://127.0.0.1:3001"; NULL or "" = local only */
  const char *pagestore_url; /* "http://127.0.0.1:3002"; NULL or "" = local only */
  const char *token;         /* sent as "Authorization: Bearer <token>"; NULL = the environment
                                variable QUIRE_TOKEN if set; "" = none (docs/SECURITY.md) */
  int autosync;              /* 1: push and pull in the background (default 0) */
  int sync_mode;             /* enum quire_sync_mode; default FULL */
  size_t cache_bytes;        /* local store page cache; 0 = 64 MiB */
  unsigned fetch_timeout_ms; /* a read of an absent page fails with QUIRE_EUNAVAILABLE after this
                                (0 = 10000) */
  unsigned call_timeout_ms;  /* one network call (write_pages, commit, read_pages, ...) at most; 0 = 30000 */
  unsigned push_delay_ms;    /* autosync waits this long after a local commit to coalesce bursts
                                (0 = 2) */
  unsigned poll_wait_ms;     /* autosync long-poll length (0 = 30000) */
  unsigned prefetch_max;     /* largest read-ahead window in pages (0 = 1024) */
  unsigned fetch_threads;    /* concurrent fetches (0 = 4) */
  unsigned push_batch_pages; /* pages per write_pages call (0 = 1024) */
  unsigned push_inflight;    /* write_pages calls in flight per push (0 = 2) */
} quire_client_opts;

/* Fills o with the defaults (every field 0/NULL means "default"). */
QUIRE_API void quire_client_opts_init(quire_client_opts *o);

/* Opens the client of data_dir: its local store, its persisted client id,
 * and (with autosync) the background sync. *out belongs to the caller;
 * release with quire_client_close. Errors: QUIRE_EBUSY when another process
 * (or another client in this one) has the data directory open (the message
 * names the directory), QUIRE_ECORRUPT, QUIRE_EVERSION, QUIRE_EINVAL. */
QUIRE_API int quire_client_open(const quire_client_opts *o, quire_client **out);

/* Stops the background sync (an interrupted push resumes at the next open),
 * closes the local store and frees c. Every volume must have been closed.
 * Accepts NULL. Returns the first error met while closing the store. */
QUIRE_API int quire_client_close(quire_client *c);

/* The client id, created at the first open of the data directory and
 * persisted: the metastore's idempotency key together with commit ids. */
QUIRE_API void quire_client_id(const quire_client *c, quire_gid *out);

/* ---- volumes ------------------------------------------------------------- */

#define QUIRE_CREATE 1u   /* create the volume if the name is unknown */
#define QUIRE_READONLY 2u /* writers are refused (QUIRE_EINVAL) */

/* Opens a volume by local name or by volume id (22 characters of base58).
 * A name is bound to a volume id in the local store: an unknown name is
 * created (a new volume id) with QUIRE_CREATE, else QUIRE_ENOTFOUND. A
 * volume id that this data directory has never seen is adopted: its remote
 * head is pulled (when the services answer) and its pages are fetched as
 * they are read. *out belongs to the caller; release with
 * quire_volume_close. A volume may be opened several times; each handle
 * counts. */
QUIRE_API int quire_volume_open(quire_client *c, const char *name_or_vid, unsigned flags, quire_volume **out);

/* Binds the local name to vid (the SQLite "vid=" parameter): QUIRE_EEXIST
 * if the name is bound to another volume id, 0 if already bound to vid. */
QUIRE_API int quire_volume_bind(quire_client *c, const char *name, const quire_gid *vid);

/* Closes the handle. Every reader and writer of it must have been closed.
 * Accepts NULL. */
QUIRE_API void quire_volume_close(quire_volume *v);

QUIRE_API void quire_volume_vid(const quire_volume *v, quire_gid *out);

/* Volumes known to the local store, for listing. *names and *vids are
 * arrays of *n entries (names may hold "" for a volume without a local
 * name); free the whole result with quire_volume_list_free. */
typedef struct quire_volume_info {
  char name[256];
  quire_gid vid;
} quire_volume_info;
QUIRE_API int quire_volume_list(quire_client *c, quire_volume_info **out, size_t *n);
QUIRE_API void quire_volume_list_free(quire_volume_info *list);

/* ---- readers ------------------------------------------------------------- */

/* Pins a snapshot of the volume's local head: (vid, local lsn, page_count).
 * Later commits are not visible through it. *out belongs to the caller;
 * release with quire_reader_close. */
QUIRE_API int quire_reader_open(quire_volume *v, quire_reader **out);
QUIRE_API void quire_reader_close(quire_reader *r); /* accepts NULL */

/* Reads page idx (1-based) of the snapshot into page[4096]. Pages never
 * written, or past page_count, read as zeros. A page that exists remotely
 * and is not local yet is fetched (with read-ahead) and kept. Errors:
 * QUIRE_ERANGE for idx 0, QUIRE_EUNAVAILABLE when the page is not local and
 * cannot be fetched within fetch_timeout_ms (offline), QUIRE_ECORRUPT when
 * the local store or the pagestore answered with damaged bytes. */
QUIRE_API int quire_reader_read(quire_reader *r, quire_pageidx idx, uint8_t page[QUIRE_PAGE_SIZE]);

QUIRE_API quire_pagecount quire_reader_page_count(const quire_reader *r);
QUIRE_API quire_lsn quire_reader_lsn(const quire_reader *r); /* local lsn; 0 for an empty volume */
/* The remote lsn whose content this snapshot is based on (0: none yet). */
QUIRE_API quire_lsn quire_reader_remote_lsn(const quire_reader *r);

/* ---- writers ------------------------------------------------------------- */

/* A snapshot of the local head plus buffered writes that its reads see.
 * QUIRE_EBUSY if the volume already has an open writer in this process.
 * Large write sets spill to the local store, so memory stays bounded. */
QUIRE_API int quire_writer_open(quire_volume *v, quire_writer **out);
/* Buffers page idx (copied). Writing past page_count grows the volume. */
QUIRE_API int quire_writer_write(quire_writer *w, quire_pageidx idx, const uint8_t page[QUIRE_PAGE_SIZE]);
/* Sets page_count; pages past it are dropped and read as zeros, also if the
 * volume grows again later. */
QUIRE_API int quire_writer_truncate(quire_writer *w, quire_pagecount page_count);
QUIRE_API int quire_writer_read(quire_writer *w, quire_pageidx idx, uint8_t page[QUIRE_PAGE_SIZE]);
QUIRE_API quire_pagecount quire_writer_page_count(const quire_writer *w);
QUIRE_API quire_lsn quire_writer_base_lsn(const quire_writer *w);
/* One local commit of everything written, durable per the client's sync
 * mode when it returns 0; *lsn (may be NULL) gets its local lsn (the base
 * lsn when nothing was written). Frees w whatever the outcome.
 * QUIRE_ECONFLICT if the volume's head moved since the writer's snapshot
 * (a pull or another commit landed): nothing was committed. */
QUIRE_API int quire_writer_commit(quire_writer *w, quire_lsn *lsn);
QUIRE_API void quire_writer_abort(quire_writer *w); /* accepts NULL */

/* ---- sync ----------------------------------------------------------------
 * timeout_ms bounds the whole operation (0: no overall bound); every
 * network call inside it is bounded by the client's call_timeout_ms. */

/* Pushes every unpushed local commit as one remote commit (resuming an
 * interrupted push with the same commit id), then what was committed
 * after it, until nothing is left. QUIRE_ECONFLICT when another client committed first (the
 * volume is then in state "conflict": see reset and fork),
 * QUIRE_EUNAVAILABLE / QUIRE_ETIMEDOUT when the services do not answer
 * (the push resumes later), QUIRE_EINVAL for a local-only client. */
QUIRE_API int quire_volume_push(quire_volume *v, unsigned timeout_ms);
/* Pulls the remote head (metadata only: changed pages become "pending" and
 * are fetched when read). QUIRE_ECONFLICT when there are unpushed local
 * commits and the remote moved (state "conflict"). */
QUIRE_API int quire_volume_pull(quire_volume *v, unsigned timeout_ms);
/* Push, then pull. */
QUIRE_API int quire_volume_sync(quire_volume *v, unsigned timeout_ms);
/* Waits until the local head includes remote lsn (through autosync or
 * another thread's pull). QUIRE_ETIMEDOUT after timeout_ms. */
QUIRE_API int quire_volume_wait(quire_volume *v, quire_lsn remote_lsn, unsigned timeout_ms);
/* Drops every unpushed local commit (and a conflict) and makes the local
 * head equal to the remote head. */
QUIRE_API int quire_volume_reset(quire_volume *v, unsigned timeout_ms);
/* Pushes the local head as the first commit of a new volume and rebinds
 * this volume (and its local name) to it: the way out of a conflict that
 * keeps the local commits. *new_vid (may be NULL) gets its id. Every reader
 * and writer of the volume must be closed (QUIRE_EBUSY otherwise). */
QUIRE_API int quire_volume_fork(quire_volume *v, unsigned timeout_ms, quire_gid *new_vid);

enum quire_volume_state {
  QUIRE_STATE_OK = 0,
  QUIRE_STATE_CONFLICT = 1, /* remote moved while local commits were unpushed */
  QUIRE_STATE_OFFLINE = 2   /* the last network call failed; retried in the background */
};

typedef struct quire_volume_status {
  quire_gid vid;
  char name[256];
  quire_lsn local_lsn;      /* local head */
  quire_lsn remote_lsn;     /* last remote lsn known locally */
  quire_lsn remote_local;   /* the local lsn that remote_lsn maps to */
  quire_pagecount page_count;
  uint64_t unpushed_commits; /* local commits after remote_local */
  int push_in_progress;      /* a persisted push intent exists */
  int state;                 /* enum quire_volume_state */
  int last_error;            /* 0 or the last sync error */
  char last_error_msg[256];
  uint64_t pages_local;      /* page versions at the head stored locally */
  uint64_t pages_pending;    /* pages at the head that exist remotely and are not local */
} quire_volume_status;

QUIRE_API int quire_volume_status_get(quire_volume *v, quire_volume_status *out);
QUIRE_API const char *quire_volume_state_name(int state);

/* ---- counters (DESIGN.md §11.5) ------------------------------------------ */

#define QUIRE_HIST_BUCKETS 24 /* bucket i counts samples in [2^i, 2^(i+1)) microseconds; 0 holds < 2 */

typedef struct quire_stats {
  uint64_t reads, read_hits, read_fetched; /* page reads; served locally; needed a fetch */
  uint64_t read_zero;                      /* never written or past page_count */
  uint64_t fetch_round_trips, fetch_pages, fetch_bytes, fetch_missing, fetch_errors;
  uint64_t prefetch_pages, prefetch_used, prefetch_wasted; /* read-ahead pages fetched; read later;
                                                              never read (counted at close) */
  uint64_t commits, commit_pages, conflicts;
  uint64_t pushes, push_pages, push_round_trips, push_errors;
  uint64_t pulls, pull_commits, pull_errors;
  uint64_t rebases;           /* pushes and pulls that moved past server checkpoints (no conflict) */
  uint64_t resets, forks;
  uint64_t sync_lag_ms_last;  /* last push: local commit until the remote commit was acknowledged */
  uint64_t remote_lag_ms_last;/* last pull: remote commit time until it was known locally */
  uint64_t read_us[QUIRE_HIST_BUCKETS];
  uint64_t fetch_us[QUIRE_HIST_BUCKETS];
  uint64_t commit_us[QUIRE_HIST_BUCKETS];
  uint64_t push_us[QUIRE_HIST_BUCKETS];
} quire_stats;

QUIRE_API void quire_client_stats(quire_client *c, quire_stats *out);
QUIRE_API void quire_volume_stats(quire_volume *v, quire_stats *out);
/* Visits every counter of s as (name, value), in a stable order: for
 * `quire volume status`, the SQLite pragma and virtual table. Histograms are
 * reported as p50/p99 estimates in microseconds ("read_us_p50"). */
QUIRE_API void quire_stats_foreach(const quire_stats *s, void (*fn)(void *ctx, const char *name, uint64_t value),
                                   void *ctx);

/* ---- page images ---------------------------------------------------------- */

/* Reads a file of whole 4096-byte pages (a trailing partial page is padded
 * with zeros) into the volume as one local commit, replacing its content
 * (page_count becomes the file's page count). */
QUIRE_API int quire_volume_import(quire_volume *v, const char *path);
/* Writes every page of the volume's head (fetching absent ones) to path:
 * page_count x 4096 bytes, the same bytes an import took in. */
QUIRE_API int quire_volume_export(quire_volume *v, const char *path);

#ifdef __cplusplus
}
#endif
#endif
