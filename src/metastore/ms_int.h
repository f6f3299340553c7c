/*
 * metastore/ms_int.h — internals shared by the metastore's files:
 * ms_core.c (volumes, catch-up, commit, long-poll loops), ms_api.c (request
 * messages → core → response messages) and ms_http.c (the endpoints).
 */
#ifndef QUIRE_METASTORE_INT_H
#define QUIRE_METASTORE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/receipt.h"
#include "metastore/gidmap.h"
#include "metastore/metastore.h"
#include "util/limiter.h"
#include "util/pool.h"

struct ms_waiter;

/* Comparisons the duplicate segment-id check of commit validation made, over
 * all commits (ms_api.c; tests bound it). */
extern atomic_uint_fast64_t quire__ms_sid_check_steps;
/* Cardinalities merged by commit validation's overlap check (tests count it). */
extern atomic_uint_fast64_t quire__ms_overlap_check_steps;

/* In-memory state of one volume. Created on first use, freed at close. */
struct ms_volume {
  struct ms_gid_node node; /* first: the volume table keys it */
  quire_metastore *ms;
  pthread_mutex_t mu; /* guards everything below except active_next */
  quire_lsn latest;   /* highest LSN known to be in the catalog */
  uint64_t tickets;   /* refresh calls started (see ms_core.c, refresh) */
  uint64_t covered;   /* every call with a ticket <= covered is satisfied */
  struct ms_waiter *waiters;
  unsigned nwaiters;
  int polling;                   /* a store poll for the waiters is in flight */
  uint64_t last_poll_ms;         /* when the last one started */
  int active;                    /* on ms->active (also guarded by ms->sched_mu) */
  struct ms_volume *active_next; /* under ms->sched_mu */
  /* History integrity (see ms_core.c, "Gaps and corrupt commit objects"). */
  int probed;           /* the cold-start gap probe ran and found no gap */
  quire_lsn broken;     /* first LSN the log cannot be read past (0: intact) */
  int broken_gap;       /* broken because that LSN is missing and a later one exists */
  char broken_why[320]; /* names the key and the reason */
  /* Retention (docs/GC.md): the first retained LSN, as last read from the
   * base markers (or set by this process's retention pass), and when. */
  quire_lsn base;
  uint64_t base_read_ms; /* 0: never read */
};

struct quire_metastore {
  struct quire_metastore_opts o; /* o.receipt_key points at receipt_key below, or is NULL */
  uint8_t receipt_key[QUIRE_RECEIPT_KEY_SIZE];
  quire_limiter *catchups; /* single flight per volume id */
  quire_pool *getters;     /* parallel GETs of catch-ups */
  quire_pool *pollers;     /* store polls for long-poll waiters */
  struct ms_gidtab vols;   /* vid -> struct ms_volume; lock-free lookups, its mutex before any vol->mu */
  atomic_int closing;
  atomic_uint nwaiters;
  /* The long-poll scheduler. sched_mu guards the active list, nactive,
   * sched_stop and sched_kick; lock order: a vol->mu before sched_mu. */
  pthread_t sched;
  int sched_started, sched_stop, sched_kick;
  pthread_mutex_t sched_mu;
  pthread_cond_t sched_cond;
  struct ms_volume *active; /* volumes with waiters */
  size_t nactive;
};

/* The volume's state, created if new. NULL only on allocation failure. */
struct ms_volume *quire__ms_volume(quire_metastore *ms, const quire_gid *vid);

/* Decodes the record at (vid, lsn) from the catalog (catching up if
 * needed) into *snap; the record bytes go to buf, which must outlive any
 * use of rec (rec may be NULL). */
int quire__ms_load(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, quire_buf *buf,
                   struct quire_commit *rec, struct quire_snapshot *snap);
void quire__ms_snapshot_of(const struct quire_commit *rec, struct quire_snapshot *snap);

/* Commit with the rules of DESIGN.md §8.3; c->lsn is base + 1 and
 * c->segments already validated. *out is the resulting snapshot (the
 * earlier one on an idempotent retry). c->checkpoint_lsn == c->lsn on entry
 * makes the commit a checkpoint (the caller vouches that its segments hold
 * every page: only the in-process compaction and fork paths, gc/, do);
 * otherwise it inherits the base's checkpoint. c->flags is kept. */
int quire__ms_commit(quire_metastore *ms, struct quire_commit *c, struct quire_snapshot *out);

/* Long poll: parks req until vid has a commit newer than from or wait_ms
 * passes. Returns 1 if parked, 0 if such a commit already exists (answer
 * now), QUIRE_EBUSY over the waiter cap, QUIRE_ECLOSED when draining. */
int quire__ms_wait(quire_metastore *ms, const quire_gid *vid, quire_lsn from, unsigned wait_ms,
                   quire_http_req *req);

/* QUIRE_ECORRUPT (naming the bad key) when vid's history is broken: a
 * commit object that is missing while later ones exist, or unreadable.
 * Reads below that LSN go on; anything needing the latest LSN, and every
 * commit, gets this error. 0 otherwise. */
int quire__ms_broken(quire_metastore *ms, const quire_gid *vid);

/* --- retention (docs/GC.md) ------------------------------------------------ */

/* "volumes/{vid}/base/{lsn:016x}": a base marker; the volume's base is the
 * largest marker (1 when none). Markers only ever grow. */
void quire__ms_base_key(const quire_gid *vid, quire_lsn lsn, char out[80]);
/* Reads vid's base from the markers when the cached value is older than
 * max_age_ms (0: always), else the cached one. */
int quire__ms_base(quire_metastore *ms, const quire_gid *vid, uint64_t max_age_ms, quire_lsn *base);
/* Raises the cached base (a retention pass wrote its marker). */
void quire__ms_base_raise(quire_metastore *ms, const quire_gid *vid, quire_lsn base);
/* How long a base read from the markers is trusted: requests naming an
 * old LSN LIST the markers at most this often per volume (a base that is
 * stale only means answering from catalog records that retention deleted
 * since, which are still the right records). */
#define QUIRE_MS_BASE_TTL_MS 60000
/* QUIRE_EGONE with a clear message when lsn is below vid's base (read at
 * most every QUIRE_MS_BASE_TTL_MS); 0 otherwise. */
int quire__ms_check_gone(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn);
/* The EGONE error for lsn below base. */
int quire__ms_gone(const quire_gid *vid, quire_lsn lsn, quire_lsn base);

/* 1 when vid's poll loop is running and polled the store within the last
 * poll interval: a long poll may then trust the catalog without a GET. */
int quire__ms_polled_recently(quire_metastore *ms, const quire_gid *vid);

/* Object-store calls with metrics (calls, errors, latency by op). */
int quire__ms_store_get(quire_metastore *ms, const char *key, uint8_t **data, size_t *len);
int quire__ms_store_put_if_absent(quire_metastore *ms, const char *key, const void *p, size_t n);

#endif
