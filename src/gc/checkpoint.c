/*
 * gc/checkpoint.c — checkpoints (compaction) and fork (DESIGN.md §8.4).
 *
 * A checkpoint of vid at its head H is a commit at H + 1 whose segments hold
 * every page of the volume at H, freshly packed (gc/image.c), with
 * checkpoint_lsn = H + 1 and the rewrite flag: its content equals H's, so
 * pull_graft adds nothing for it and readers' caches stay valid. It is
 * committed through the metastore's core with base H like any client
 * commit; a client commit that lands first makes it lose (QUIRE_ECONFLICT),
 * and the job starts over from the new head. The segments of the attempt
 * that lost were never referenced by a commit: segment GC deletes them
 * after the grace period.
 *
 * A fork is the same image of the source at an LSN, written as pages of a
 * new volume and committed there at LSN 1 as a checkpoint (not a rewrite:
 * there is nothing before it).
 */
#include <string.h>

#include "gc/gc_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

static void defaults(const struct gc_checkpoint_opts *o, unsigned *walk, unsigned *live, unsigned *retries) {
  *walk = o->max_walk_segments ? o->max_walk_segments : 64;
  *live = o->min_live_percent ? o->min_live_percent : 50;
  *retries = o->max_retries ? o->max_retries : 8;
}

int quire__gc_checkpoint_due(const struct gc_checkpoint_opts *o, const struct gc_walk *w) {
  unsigned walk, live, retries;
  defaults(o, &walk, &live, &retries);
  if (w->lsn == 0 || w->checkpoint_lsn == w->lsn) return 0; /* the head is a checkpoint */
  if (w->segments > walk) return 1;
  return w->pages_total > 0 && w->pages_live * 100 < (uint64_t)live * w->pages_total;
}

/* Commits the image as vid's commit at lsn. */
static int commit_image(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, uint32_t flags,
                        quire_pagecount page_count, const struct gc_image *im, struct quire_snapshot *snap) {
  struct quire_commit c = {0};
  c.vid = *vid;
  int rc = quire_gid_new(QUIRE_GID_CLIENT, &c.client_id);
  if (!rc) rc = quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id);
  if (rc) return rc;
  c.lsn = c.checkpoint_lsn = lsn;
  c.flags = flags;
  c.page_count = page_count;
  c.nsegments = im->n;
  if (im->n) {
    c.segments = quire__calloc(im->n, sizeof *c.segments);
    if (!c.segments) return QUIRE_ENOMEM;
    for (uint32_t i = 0; i < im->n; i++) {
      c.segments[i].sid = im->sid[i];
      c.segments[i].graft = im->graft[i];
      c.segments[i].graft_len = im->graft_len[i];
    }
  }
  rc = quire__ms_commit(ms, &c, snap);
  quire__free(c.segments);
  return rc;
}

int quire__gc_checkpoint(quire_metastore *ms, const struct gc_checkpoint_opts *o, const quire_gid *vid,
                         int force, struct gc_checkpoint_result *out) {
  memset(out, 0, sizeof *out);
  unsigned walk, live, retries;
  defaults(o, &walk, &live, &retries);
  for (;;) {
    quire_lsn head;
    int rc = quire__ms_refresh(ms, vid, &head);
    if (rc) return rc;
    out->lsn = head;
    if (head == 0) return 0; /* nothing to checkpoint */
    struct gc_jobs jobs;
    rc = quire__gc_walk_jobs(ms, vid, head, &out->before, &jobs);
    if (rc) return rc;
    if (out->before.checkpoint_lsn == head || (!force && !quire__gc_checkpoint_due(o, &out->before))) {
      quire__gc_jobs_free(&jobs);
      return 0;
    }
    struct gc_image im;
    rc = quire__gc_image_build(o->store, o->limits, vid, &jobs, vid, &im);
    quire__gc_jobs_free(&jobs);
    if (rc) return rc;
    if (o->before_commit) o->before_commit(o->hook_ctx, vid, head);
    struct quire_snapshot snap;
    rc = commit_image(ms, vid, head + 1, QUIRE_COMMIT_F_REWRITE, out->before.page_count, &im, &snap);
    if (rc == 0) {
      out->written = 1;
      out->lsn = snap.lsn;
      out->segments = im.n;
      out->pages = im.pages;
      out->bytes = im.bytes;
    }
    quire__gc_image_free(&im);
    if (rc != QUIRE_ECONFLICT) return rc;
    if (++out->retries > retries)
      return quire__err(QUIRE_ECONFLICT, "checkpoint lost to client commits %u times in a row", out->retries);
    QLOG_DEBUG("gc: checkpoint raced a client commit at lsn %llu; starting over", (unsigned long long)head + 1);
  }
}

int quire__gc_fork(quire_metastore *ms, const struct gc_checkpoint_opts *o, const quire_gid *src,
                   quire_lsn lsn, quire_gid *dst, struct quire_snapshot *snap) {
  quire_lsn head;
  int rc = quire__ms_refresh(ms, src, &head);
  if (rc == QUIRE_ECORRUPT && lsn) rc = 0; /* below a break still reads */
  if (rc) return rc;
  if (lsn == 0) lsn = head;
  if (lsn == 0) return quire__err(QUIRE_ENOTFOUND, "the source volume has no commits");
  if (lsn > head)
    return quire__err(QUIRE_ENOTFOUND, "lsn %llu is past the source's latest %llu", (unsigned long long)lsn,
                      (unsigned long long)head);
  struct gc_walk w;
  struct gc_jobs jobs;
  rc = quire__gc_walk_jobs(ms, src, lsn, &w, &jobs);
  if (rc) return rc;
  rc = quire_gid_new(QUIRE_GID_VOLUME, dst);
  struct gc_image im;
  if (!rc) rc = quire__gc_image_build(o->store, o->limits, src, &jobs, dst, &im);
  quire__gc_jobs_free(&jobs);
  if (rc) return rc;
  rc = commit_image(ms, dst, 1, 0, w.page_count, &im, snap);
  quire__gc_image_free(&im);
  return rc;
}
