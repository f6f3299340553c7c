/*
 * client/client_int.h — the client runtime's internals (quire/quire.h is
 * the public side; docs/CLIENT.md describes the local store and the sync
 * state machine).
 *
 * Files: client.c (open/close, the client record, the volume registry),
 * store.c (key and value encodings of the local store, page lookups),
 * volume.c (volumes, pins, readers, writers, local commits, truncation),
 * fetch.c (single-flight fetcher and read-ahead), sync.c (push, pull, reset,
 * fork), autosync.c (the background thread per volume), imex.c (import,
 * export, status), stats.c (counters), remote.c (the metastore and
 * pagestore calls).
 *
 * Lock order: vol->sync_mu → vol->mu → vol->fmu → client->mu. No lock is
 * held across a network call except sync_mu (which only orders push, pull,
 * reset and fork of one volume).
 */
#ifndef QUIRE_CLIENT_INT_H
#define QUIRE_CLIENT_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quire/lsm.h"
#include "quire/quire.h"
#include "quire/splinter.h"
#include "util/buf.h"

/* ---- local store keys (docs/CLIENT.md "Local store") -------------------- */

#define CL_KEY_MAX 64
#define CL_P_KEY_LEN 29 /* 'P' vid[16] idx BE32 lsn BE64 */

#define CL_VALUE_EMPTY 'E'   /* 1 byte: the page is all zeros */
#define CL_VALUE_PENDING 'P' /* 'P' + remote lsn LE64: exists remotely, not here yet */

enum { CL_PAGE_ABSENT = 0, CL_PAGE_DATA, CL_PAGE_EMPTY, CL_PAGE_PENDING };

/* The decoded volume record V{vid}. */
struct cl_vrec {
  quire_lsn head;         /* local head lsn (0: no commit yet) */
  quire_pagecount count;  /* page_count at head */
  quire_pagecount hwm;    /* highest page_count this volume ever had locally */
  quire_lsn remote_lsn;   /* last remote lsn known here (0: none) */
  quire_lsn remote_local; /* the local lsn remote_lsn maps to */
  quire_pagecount remote_count; /* page_count at remote_lsn */
  int state;              /* enum quire_volume_state (only OK / CONFLICT are persisted) */
  int adopted_unpulled;   /* 1: adopted by vid and never pulled: its content is unknown */
  int last_error;
  char last_error_msg[200];
  char name[256];
};

/* A persisted push intent I{vid}. */
struct cl_intent {
  quire_gid commit_id;
  quire_lsn base_remote;   /* remote lsn the commit goes on (0: the first commit) */
  quire_lsn end_local;     /* last local lsn folded in */
  quire_pagecount count;   /* page_count of the remote commit */
  uint64_t created_ms;     /* wall clock when the intent was made (sync lag) */
  uint64_t first_commit_ms;/* wall clock of the oldest local commit folded in */
  uint32_t nsegs;
  struct cl_seg {          /* what write_pages answered so far */
    quire_gid sid;
    uint8_t *graft;        /* owned, splinter bytes */
    uint32_t graft_len;
    uint8_t receipt[32];   /* the pagestore's write receipt (core/receipt.h) */
    uint32_t receipt_len;  /* 0: none given */
  } *segs;                 /* owned */
};

void cl__intent_clear(struct cl_intent *in);

size_t cl__key_m(uint8_t *k);
size_t cl__key_n(uint8_t *k, const char *name, size_t len); /* len <= 255 */
size_t cl__key_v(uint8_t *k, const quire_gid *vid);
size_t cl__key_i(uint8_t *k, const quire_gid *vid);
size_t cl__key_l(uint8_t *k, const quire_gid *vid, quire_lsn lsn);
size_t cl__key_p(uint8_t *k, const quire_gid *vid, quire_pageidx idx, quire_lsn lsn);
/* Reads back the idx and lsn of a P key of vid; 0 if k is not one. */
int cl__key_p_parse(const uint8_t *k, size_t kl, const quire_gid *vid, quire_pageidx *idx, quire_lsn *lsn);

int cl__vrec_encode(const struct cl_vrec *v, quire_buf *out);
int cl__vrec_decode(const void *p, size_t n, struct cl_vrec *v);
int cl__intent_encode(const struct cl_intent *in, quire_buf *out);
int cl__intent_decode(const void *p, size_t n, struct cl_intent *in);
/* L record: a local commit's page_count, time and changed pages. */
int cl__lrec_encode(quire_pagecount count, uint64_t time_ms, const splinter_t *pages, quire_buf *out);
/* *pages is a view into p (p must outlive it). */
int cl__lrec_decode(const void *p, size_t n, quire_pagecount *count, uint64_t *time_ms, splinter_view_t *pages);

/* Classifies a P value: CL_PAGE_DATA (4096 bytes), EMPTY, PENDING (with its
 * remote lsn); QUIRE_ECORRUPT for anything else. */
int cl__pval_kind(const void *v, size_t n, quire_lsn *pending_lsn);

/* The newest version of page idx at or below lsn: *kind (CL_PAGE_ABSENT when
 * none), *at (its lsn), *pending (remote lsn of a PENDING marker); with page
 * non-NULL a DATA version's bytes are copied there (zeros for EMPTY/absent). */
int cl__page_lookup(lsm_db *db, const quire_gid *vid, quire_pageidx idx, quire_lsn lsn, int *kind,
                    quire_lsn *at, quire_lsn *pending, uint8_t *page);

/* ---- counters ------------------------------------------------------------ */

struct cl_counters {
  _Atomic uint64_t v[sizeof(quire_stats) / sizeof(uint64_t)];
};
#define CL_STAT(field) (offsetof(quire_stats, field) / sizeof(uint64_t))
void cl__count(struct cl_counters *vol, struct cl_counters *cli, size_t field, uint64_t n);
void cl__hist(struct cl_counters *vol, struct cl_counters *cli, size_t field, uint64_t us);
void cl__set(struct cl_counters *vol, struct cl_counters *cli, size_t field, uint64_t v);
void cl__counters_read(const struct cl_counters *c, quire_stats *out);

/* ---- the remote services (remote.c) --------------------------------------- */

struct cl_remote;
struct quire_snapshot;
int cl__remote_open(const quire_client_opts *o, struct cl_remote **out);
void cl__remote_close(struct cl_remote *r);
struct quire_cancel;
/* One sync operation's limits: each network call gets call_ms at most,
 * and none runs past deadline_ms (0: no overall limit). */
struct cl_call {
  uint64_t deadline_ms; /* monotonic; 0 = none */
  unsigned call_ms;     /* per network call */
  struct quire_cancel *cancel;
};

/* 1 for the errors of a service that did not answer (retry later). */
int cl__transport_error(int rc);

/* ---- the fetcher (fetch.c) ---------------------------------------------- */

struct cl_fetch_slot;
#define CL_STREAMS 8
#define CL_NEAR 16 /* a read this close to a stream's last read starts a new step there */
struct cl_fetcher {
  pthread_mutex_t mu; /* guards everything below; lock order: after vol->mu */
  pthread_cond_t cv;  /* a slot changed state */
  struct cl_fetch_slot **tab;
  size_t tab_cap, tab_n;
  unsigned jobs;      /* fetch jobs queued or running */
  int closing;
  struct quire_cancel *cancel; /* fired at close: running fetches stop at once */
  /* read-ahead: the last few access streams of the volume (several readers
   * interleave; each scan is its own stream) */
  struct cl_stream {
    quire_pageidx last; /* 0: unused */
    int64_t delta;      /* its step (1 forward, -1 backward, k a stride) */
    unsigned run;       /* consecutive reads continuing delta */
    unsigned window;    /* read-ahead window in pages */
    quire_pageidx ahead; /* the furthest page its read-ahead asked for (0: none) */
    uint64_t tick;      /* last use, for replacement */
  } streams[CL_STREAMS];
  uint64_t tick;
  splinter_t *prefetched; /* read-ahead pages fetched and not read yet */
};

/* ---- volumes ------------------------------------------------------------- */

struct cl_pin {
  quire_lsn lsn;
  unsigned n;
};

struct quire_volume {
  quire_client *client;
  struct quire_volume *next; /* client->vols list */
  unsigned refs;             /* open handles (client->mu) */

  pthread_mutex_t sync_mu; /* orders push, pull, reset, fork of this volume */

  pthread_mutex_t mu; /* guards the fields below */
  pthread_cond_t cv;  /* head or remote lsn moved, autosync wake-ups */
  quire_gid vid;
  struct cl_vrec rec;     /* the persisted record, as of the last commit */
  int has_intent;         /* a push intent is persisted */
  quire_lsn intent_end;   /* its end_local (pinned) */
  int offline;            /* the last network call failed */
  int writer_open;
  unsigned readers;
  struct cl_pin *pins;
  size_t npins, pins_cap;
  uint64_t oldest_unpushed_ms; /* wall clock of the oldest unpushed local commit (0: none) */
  /* autosync */
  pthread_t sync_thread;
  int sync_running, sync_stop;
  uint64_t push_due_ms; /* monotonic; 0 = nothing to push */
  struct quire_cancel *poll_cancel; /* the current call of the autosync thread */
  int polling;                      /* that call is a long poll (a commit may cancel it) */

  struct cl_fetcher f;
  struct cl_counters stats;
};

struct quire_client {
  quire_client_opts o;
  char *data_dir, *metastore_url, *pagestore_url, *token;
  lsm_db *db;
  quire_gid client_id;
  struct cl_remote *remote; /* NULL: local only */
  struct quire_pool *fetch_pool;
  pthread_mutex_t mu; /* guards vols */
  struct quire_volume *vols;
  struct cl_counters stats;
};

struct quire_reader {
  quire_volume *vol;
  quire_lsn lsn, remote_lsn;
  quire_pagecount count;
};

struct quire_writer {
  quire_volume *vol;
  quire_lsn base;           /* head at open */
  quire_lsn base_remote;
  quire_pagecount base_count, count, min_count;
  lsm_txn *txn;             /* the buffered pages, spilling to disk when large */
  splinter_t *written;      /* pages written (and not truncated away) */
  int pinned;               /* base is pinned (until commit prunes) */
};

/* volume.c */
int cl__vol_pin(quire_volume *v, quire_lsn lsn);   /* vol->mu held */
void cl__vol_unpin(quire_volume *v, quire_lsn lsn); /* vol->mu held */
quire_lsn cl__vol_min_pin(quire_volume *v);        /* vol->mu held; head when nothing is pinned */
int cl__vol_store_rec(quire_volume *v, lsm_txn *t, const struct cl_vrec *rec);
/* In txn t, which writes versions at lsn at = head+1: deletes the versions
 * of idx that no pin can see any more. vol->mu held. */
int cl__prune_page(quire_volume *v, lsm_txn *t, quire_pageidx idx, quire_lsn keep_from);
/* Pages in (from, to] that have versions but are not in `except` get EMPTY
 * at lsn (they were truncated away and must read as zeros now); they are
 * added to changed. */
int cl__regrow(quire_volume *v, lsm_txn *t, quire_pagecount from, quire_pagecount to, quire_lsn lsn,
               const splinter_t *except, splinter_t *changed);
void cl__vol_set_error(quire_volume *v, int rc); /* vol->mu held */
void cl__vol_wake(quire_volume *v);              /* vol->mu held: broadcast cv */
/* After a reset or fork committed rec: nothing unpushed, no intent, online
 * (vol->mu held). */
void cl__vol_settle(quire_volume *v, const struct cl_vrec *rec);

/* fetch.c */
int cl__fetcher_init(struct cl_fetcher *f);
void cl__fetcher_close(quire_volume *v); /* waits for the volume's jobs */
void cl__fetcher_destroy(struct cl_fetcher *f);
/* Observes a read of idx at the snapshot for read-ahead (before the page is
 * fetched, if it must be); a local hit may start the next window early. */
void cl__fetch_observe(quire_volume *v, const struct quire_reader *snap, quire_pageidx idx, int local_hit);
/* Fetches page idx whose newest version at or below snapshot lsn is the
 * PENDING marker at marker_lsn; copies the page into out. */
int cl__fetch_page(quire_volume *v, const struct quire_reader *snap, quire_pageidx idx, quire_lsn marker_lsn,
                   uint8_t *out);

/* sync.c */
struct quire_commit_segment;
struct quire_ps_written;
/* Adds write_pages' answer (segments, grafts, receipts) to in->segs. */
int cl__intent_add(struct cl_intent *in, const struct quire_ps_written *segs, size_t n);
struct quire_commit_segment *cl__commit_segs(const struct cl_seg *segs, uint32_t n); /* caller frees */
int cl__push(quire_volume *v, const struct cl_call *call);
int cl__pull(quire_volume *v, unsigned wait_ms, const struct cl_call *call);
/* timeout_ms: the whole operation's limit, 0 = none (each call still has
 * the client's call_timeout_ms). */
void cl__call_init(quire_client *c, unsigned timeout_ms, struct cl_call *call);

/* autosync.c */
int cl__autosync_start(quire_volume *v);
void cl__autosync_stop(quire_volume *v);
void cl__autosync_notify_commit(quire_volume *v); /* vol->mu held */

#endif
