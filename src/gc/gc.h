/*
 * gc/gc.h — bounded history and a bounded storage bill (DESIGN.md §8.4,
 * docs/GC.md): checkpoints (compaction), fork, and segment garbage
 * collection. Everything here runs in-process next to a quire_metastore on
 * the same object store (under `quire server`, or alone as `quire gc`); it
 * commits through the metastore's core like any client would (OCC on the
 * base LSN), so any number of instances may run at once.
 */
#ifndef QUIRE_GC_H
#define QUIRE_GC_H

#include <stddef.h>
#include <stdint.h>

#include "core/snapshot.h"
#include "metastore/metastore.h"
#include "quire/objstore.h"
#include "quire/segment.h"
#include "quire/splinter.h"

/* ---- the walk: what the segment query would read ------------------------- */

/* The walk of vid at lsn from lsn down to its latest checkpoint (the
 * segment query of DESIGN.md §9.2, without the page bytes). */
struct gc_walk {
  quire_lsn lsn, checkpoint_lsn; /* checkpoint_lsn: where the walk stopped (1 = the whole log) */
  quire_pagecount page_count;    /* at lsn */
  uint32_t commits;              /* commits walked */
  uint32_t segments;             /* segment references crossed (the read latency of a cold page) */
  uint64_t pages_total;          /* pages held by those references */
  uint64_t pages_live;           /* pages the volume has at lsn (what a checkpoint holds) */
};

/* Fills *w. QUIRE_ENOTFOUND for an LSN the volume does not have. */
int quire__gc_walk(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, struct gc_walk *w);

/* ---- checkpoints ---------------------------------------------------------- */

struct gc_checkpoint_opts {
  quire_objstore *store;              /* holds segments/ (and the log) */
  const quire_segment_limits *limits; /* for the new segments; NULL = the defaults */
  unsigned max_walk_segments;         /* policy: checkpoint past this walk length (default 64) */
  unsigned min_live_percent;          /* policy: ... or under this live fraction (default 50) */
  unsigned max_retries;               /* OCC retries on a racing commit (default 8) */
  /* Test hook: called after the new segments are uploaded, before the
   * commit (a racing commit can be made here). */
  void (*before_commit)(void *ctx, const quire_gid *vid, quire_lsn base);
  void *hook_ctx;
};

struct gc_checkpoint_result {
  int written;           /* 1 when a checkpoint was committed */
  quire_lsn lsn;         /* its LSN (or the head when none was needed) */
  uint32_t segments;     /* new segments */
  uint64_t pages, bytes; /* pages and bytes uploaded */
  unsigned retries;      /* OCC conflicts retried */
  struct gc_walk before; /* the walk at the head before */
};

/* 1 when policy says vid needs a checkpoint at its head (w filled). */
int quire__gc_checkpoint_due(const struct gc_checkpoint_opts *o, const struct gc_walk *w);

/* Checkpoints vid at its head: reads every page through the walk, repacks
 * them into dense new segments, commits a rewrite at head + 1. With force
 * 0 only when quire__gc_checkpoint_due (and never when the head already is
 * a checkpoint). A racing commit makes it start over from the new head, up
 * to max_retries times (then QUIRE_ECONFLICT). Uploaded segments of an
 * attempt that lost stay unreferenced and are collected by GC after the
 * grace period. */
int quire__gc_checkpoint(quire_metastore *ms, const struct gc_checkpoint_opts *o, const quire_gid *vid,
                         int force, struct gc_checkpoint_result *out);

/* fork: a new volume *dst (created here) whose first commit (lsn 1) is a
 * checkpoint of src at lsn (0 = its head), its pages copied server-side
 * into new segments. *snap is the new volume's snapshot. */
int quire__gc_fork(quire_metastore *ms, const struct gc_checkpoint_opts *o, const quire_gid *src,
                   quire_lsn lsn, quire_gid *dst, struct quire_snapshot *snap);

/* ---- retention ------------------------------------------------------------ */

struct gc_retention_opts {
  uint64_t max_age_ms;  /* keep commits younger than this (default 7 days) */
  unsigned min_commits; /* keep at least this many of the newest (default 100) */
};

struct gc_retain_result {
  quire_lsn head, base_before, base; /* base: the first retained LSN afterwards */
  uint64_t commits_deleted;
};

/* Applies retention to vid: the new base is the latest checkpoint at or
 * below the oldest commit retention must keep (the newest min_commits,
 * those younger than max_age, the head's checkpoint). It writes the marker
 * volumes/{vid}/base/{B} when B rises, then deletes every marker and
 * commit object below the base (listed, so also what an earlier pass left)
 * in key order, the log oldest first; commits_deleted counts the commit
 * objects this call removed (with dry_run: only says what it would do). */
int quire__gc_retain(quire_metastore *ms, quire_objstore *store, const struct gc_retention_opts *o,
                     const quire_gid *vid, int dry_run, struct gc_retain_result *out);

/* ---- a whole pass --------------------------------------------------------- */

struct gc_pass_opts {
  quire_objstore *store;
  struct gc_checkpoint_opts checkpoint; /* .store is set from store */
  struct gc_retention_opts retention;
  uint64_t grace_ms;    /* sweep only segments older than this (default 1 h) */
  const char *work_dir; /* where the mark set's LSM file lives (default $TMPDIR or /tmp) */
  int dry_run;          /* report, write and delete nothing */
  int no_checkpoints;   /* skip the checkpoint policy */
  /* Progress: called every 1000 objects listed, at the end of each phase,
   * and with phase "marked" (done = segments marked) once every volume is
   * marked, right before the sweep lists segments/ (may be NULL). */
  void (*progress)(void *ctx, const char *phase, uint64_t done);
  void *progress_ctx;
  quire_metrics *metrics; /* may be NULL */
  /* Test hook: called before each segment delete of the sweep (a racing
   * pass can delete it first here). */
  void (*before_delete)(void *ctx, const char *key);
  void *hook_ctx;
};

struct gc_pass_result {
  uint64_t volumes, checkpoints, commits_deleted;
  uint64_t segments_marked;                /* references from retained commits (distinct segments) */
  uint64_t objects_live, bytes_live;       /* segments kept: referenced or young */
  uint64_t objects_young;                  /* of those, kept only for the grace period */
  uint64_t objects_deleted, bytes_deleted; /* (or that would be, with dry_run) */
  uint64_t objects_gone;                   /* deletes that found the key already gone (a racing
                                            * pass): no-ops, not counted as deleted */
  uint64_t stale_marks_removed;            /* mark files of killed passes removed from work_dir */
  uint64_t requests;                       /* object-store calls spent */
  uint64_t duration_ms;
  unsigned volume_errors; /* volumes skipped this pass (logged) */
};

/* One pass: for every volume under volumes/, checkpoint by policy, apply
 * retention, and mark every segment a retained commit references (in an
 * LSM file, so memory stays bounded); then list segments/ page by page and
 * delete what is unmarked and older than the grace period. A volume that
 * fails is skipped, and nothing is swept when any did (its segments were
 * not marked). */
int quire__gc_pass(quire_metastore *ms, const struct gc_pass_opts *o, struct gc_pass_result *out);

/* Passes every every_ms on a thread of their own (o is copied; the store
 * and metrics it points at must outlive the runner). */
struct gc_runner;
int quire__gc_runner_start(quire_metastore *ms, const struct gc_pass_opts *o, uint64_t every_ms,
                           struct gc_runner **out);
/* Stops the thread, waiting for a pass in flight. Accepts NULL. */
void quire__gc_runner_stop(struct gc_runner *r);

/* "90s", "15m", "1h", "7d", "250ms" or a plain number of seconds, in ms. */
int quire__gc_parse_duration(const char *text, uint64_t *ms);

#endif
