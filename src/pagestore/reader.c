/*
 * pagestore/reader.c — read_pages: the segment query (DESIGN.md §9.2).
 *
 *  1. Catalog catch-up. The catalog (metastore/catalog.h: {vid}{lsn BE} →
 *     commit record, in an LSM file) must hold vid up to lsn. If it does
 *     not, one caller per volume (the keyed limiter) pulls the missing
 *     commits from the metastore page by page and appends them; the others
 *     wait for it and find the work done. An LSN past the metastore's latest
 *     is QUIRE_ENOTFOUND, never a crash.
 *  2. The cut. wanted starts as the requested pages. Walking the volume's
 *     commits from lsn down to the checkpoint, newest first (and each
 *     commit's segments last to first), cut = wanted.cut(segment pages);
 *     a non-empty cut is one load job (segment, cut). The walk stops as soon
 *     as wanted is empty; what is left was never written. Pages above the
 *     smallest page_count between a commit and lsn are dropped from wanted
 *     before that commit is cut: a volume shrunk below a page and grown
 *     again reads it as never written, not as its old bytes.
 *  3. Loading. Jobs run concurrently on the loader pool. A job pins the
 *     segment in the disk cache; on a miss it either fetches only the
 *     needed pages with ranged GETs (when the cut is a small part of the
 *     segment: footer and index first, then coalesced page ranges), or
 *     downloads the whole segment through the per-segment single flight and
 *     caches it. Every page is checked against its checksum in the
 *     segment's index; a page the catalog promises but the segment lacks
 *     is QUIRE_ECORRUPT for this request only. A cached copy that fails a
 *     check is dropped and fetched again once.
 */
#include "pagestore/ps_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- catalog catch-up ----------------------------------------------------- */

static int catch_up(quire_pagestore *ps, const quire_gid *vid, quire_lsn lsn) {
  quire_lsn latest = 0;
  int rc = ms_catalog_latest(ps->catalog, vid, &latest);
  if (rc) return rc;
  if (latest >= lsn) return 0; /* the hot path: no lock */
  quire_permit permit;
  rc = quire__limiter_acquire(ps->catchup, vid->b, sizeof vid->b, -1, &permit);
  if (rc) return rc;
  rc = ms_catalog_latest(ps->catalog, vid, &latest);
  if (rc || latest >= lsn) goto out; /* someone else caught up meanwhile */
  atomic_fetch_add(&ps->catalog_catchups, 1);
  quire_buf rec;
  quire__buf_init(&rec, QUIRE_COMMIT_MAX_SIZE);
  for (quire_lsn from = latest + 1; from != 0;) {
    struct quire_msclient_commits page;
    /* Up to lsn only: a read below a broken spot of the log must not
     * depend on the commits past it. */
    rc = quire__msclient_pull_commits(ps->ms, vid, from, lsn, 0, NULL, &page);
    if (rc == QUIRE_ENOTFOUND) { /* no commits at or after from */
      rc = 0;
      break;
    }
    if (rc) break;
    if (page.count && page.commits[0].lsn > from && page.commits[0].lsn > latest + 1) {
      /* Answered from the base: retention deleted the log between what
       * the catalog holds and the base (docs/GC.md). No read at or above
       * the base needs those commits; the catalog restarts at the base. */
      rc = ms_catalog_forget(ps->catalog, vid);
    }
    for (size_t i = 0; i < page.count && rc == 0; i++) {
      quire__buf_reset(&rec);
      rc = quire__commit_encode(&page.commits[i], &rec);
      const uint8_t *p = rec.data;
      size_t len = rec.len;
      if (rc == 0) rc = ms_catalog_append(ps->catalog, vid, page.commits[i].lsn, 1, &p, &len);
    }
    from = page.count ? page.next_lsn : 0;
    quire__msclient_commits_free(&page);
  }
  quire__buf_free(&rec);
  if (rc == 0) rc = ms_catalog_latest(ps->catalog, vid, &latest);
out:
  quire__limiter_release(&permit);
  if (rc == 0 && latest < lsn) {
    char v[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(vid, v);
    rc = quire__err(QUIRE_ENOTFOUND, "volume %s has no LSN %llu (latest is %llu)", v, (unsigned long long)lsn,
                    (unsigned long long)latest);
  }
  return rc;
}

/* ---- the plan --------------------------------------------------------------- */

struct job {
  quire_gid sid;
  splinter_t *cut;
};

struct ps_plan {
  quire_gid vid;
  quire_lsn lsn;
  struct job *jobs;
  size_t njobs, cap;
  splinter_t *wanted; /* after the walk: the pages nobody holds */
};

void quire__ps_plan_free(ps_plan *p) {
  if (!p) return;
  for (size_t i = 0; i < p->njobs; i++) splinter_free(p->jobs[i].cut);
  quire__free(p->jobs);
  splinter_free(p->wanted);
  quire__free(p);
}

const splinter_t *quire__ps_plan_missing(const ps_plan *p) { return p->wanted; }
size_t quire__ps_plan_jobs(const ps_plan *p) { return p->njobs; }

int quire__ps_plan_cached(quire_pagestore *ps, const ps_plan *p) {
  for (size_t i = 0; i < p->njobs; i++)
    if (!ps__cache_has(ps->cache, &p->jobs[i].sid)) return 0;
  return 1;
}

static int add_job(ps_plan *p, const quire_gid *sid, splinter_t *cut) {
  if (p->njobs == p->cap) {
    size_t n = p->cap ? p->cap * 2 : 8;
    struct job *j = quire__realloc(p->jobs, n * sizeof *j);
    if (!j) return QUIRE_ENOMEM;
    p->jobs = j;
    p->cap = n;
  }
  p->jobs[p->njobs++] = (struct job){*sid, cut};
  return 0;
}

/* Moves the pages of wanted above limit into dead: a commit between the
 * one being walked and the LSN read shrank the volume below them, so the
 * older versions are gone (pages past page_count read as never written, and
 * growing the volume again does not bring them back). */
static int drop_past(splinter_t *wanted, uint32_t limit, splinter_t *dead) {
  uint32_t hi;
  if (splinter_max(wanted, &hi) != 0 || hi <= limit) return 0;
  splinter_iter_t it;
  splinter_iter_init(&it, splinter_ref_owned(wanted), limit + 1);
  uint32_t x;
  int rc = 0;
  while (rc == 0 && splinter_iter_next(&it, &x)) rc = splinter_insert(dead, x) < 0 ? QUIRE_ENOMEM : 0;
  if (rc == 0) rc = splinter_remove_range(wanted, limit + 1, hi);
  return rc;
}

int quire__ps_plan(quire_pagestore *ps, const quire_gid *vid, quire_lsn lsn, splinter_ref_t wanted,
                   ps_plan **out) {
  *out = NULL;
  if (lsn == 0) return quire__err(QUIRE_EINVAL, "lsn 0 is not a valid LSN");
  if (quire_gid_type(vid) != QUIRE_GID_VOLUME) return quire__err(QUIRE_EINVAL, "vid is not a volume id");
  if (splinter_ref_contains(wanted, 0)) return quire__err(QUIRE_EINVAL, "page index 0 (pages are 1-based)");
  int rc = catch_up(ps, vid, lsn);
  if (rc) return rc;
  ps_plan *p = quire__calloc(1, sizeof *p);
  if (!p) return QUIRE_ENOMEM;
  p->vid = *vid;
  p->lsn = lsn;
  rc = splinter_from_ref(wanted, &p->wanted);
  splinter_t *dead = NULL; /* wanted pages cut off by a smaller page_count */
  if (rc == 0) rc = splinter_new(&dead);
  quire_buf rec;
  quire__buf_init(&rec, QUIRE_COMMIT_MAX_SIZE);
  quire_lsn checkpoint = 1;
  uint32_t limit = UINT32_MAX; /* the smallest page_count from lsn down to here */
  for (quire_lsn l = lsn; rc == 0 && l >= checkpoint && l > 0 && !splinter_is_empty(p->wanted); l--) {
    quire__buf_reset(&rec);
    rc = ms_catalog_get(ps->catalog, vid, l, &rec);
    if (rc == QUIRE_ENOTFOUND && l == lsn) {
      /* The catalog is gap-free from its first record up: the volume's
       * base when it caught up after retention deleted older commits. */
      rc = quire__err(QUIRE_EGONE, "lsn %llu is below the volume's retained history (docs/GC.md)",
                      (unsigned long long)l);
      break;
    }
    if (rc == QUIRE_ENOTFOUND) {
      rc = quire__err(QUIRE_ECORRUPT, "catalog has a gap at LSN %llu", (unsigned long long)l);
      break;
    }
    struct quire_commit c;
    if (rc || (rc = quire__commit_decode(rec.data, rec.len, &c)) != 0) break;
    if (l == lsn && c.checkpoint_lsn > checkpoint) checkpoint = c.checkpoint_lsn;
    if (c.page_count < limit) {
      limit = c.page_count;
      rc = drop_past(p->wanted, limit, dead);
    }
    for (uint32_t k = c.nsegments; k-- > 0 && rc == 0 && !splinter_is_empty(p->wanted);) {
      splinter_view_t pages;
      rc = splinter_view_open(c.segments[k].graft, c.segments[k].graft_len, &pages);
      if (rc) {
        rc = quire__err(QUIRE_ECORRUPT, "commit %llu: a segment's page set does not decode",
                        (unsigned long long)l);
        break;
      }
      splinter_t *cut = NULL;
      if ((rc = splinter_new(&cut)) != 0) break;
      rc = splinter_cut(p->wanted, splinter_ref_view(&pages), cut);
      if (rc == 0 && !splinter_is_empty(cut)) {
        rc = add_job(p, &c.segments[k].sid, cut);
        if (rc == 0) cut = NULL; /* the job owns it now */
      }
      splinter_free(cut);
    }
    quire__commit_clear(&c);
  }
  quire__buf_free(&rec);
  if (rc == 0 && !splinter_is_empty(dead))
    rc = splinter_union(splinter_ref_owned(p->wanted), splinter_ref_owned(dead), p->wanted);
  splinter_free(dead);
  if (rc) {
    quire__ps_plan_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

/* ---- loading ------------------------------------------------------------------ */

/* Emits the cut's pages from a full, validated segment view. */
static int emit_from_view(const quire_segment_view *v, const quire_gid *vid, const splinter_t *cut,
                          ps_read_pages_fn emit, void *ctx) {
  uint64_t n = splinter_cardinality(cut);
  quire_pageidx *idx = quire__malloc(n * sizeof *idx);
  const uint8_t **pages = quire__malloc(n * sizeof *pages);
  int rc = idx && pages ? 0 : QUIRE_ENOMEM;
  splinter_iter_t it;
  splinter_iter_init(&it, splinter_ref_owned(cut), 0);
  uint32_t x;
  size_t k = 0;
  while (rc == 0 && splinter_iter_next(&it, &x)) {
    rc = quire_segment_read_page(v, vid, x, &pages[k]);
    if (rc == QUIRE_ENOTFOUND) {
      char s[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(&v->sid, s);
      rc = quire__err(QUIRE_ECORRUPT, "the catalog puts page %u in segment %s, which lacks it", x, s);
    }
    idx[k++] = x;
  }
  if (rc == 0) rc = emit(ctx, idx, pages, k);
  quire__free(idx);
  quire__free(pages);
  return rc;
}

static void segment_key(const quire_gid *sid, char key[64]) {
  char s[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(sid, s);
  snprintf(key, 64, "segments/%s", s);
}

/* Serves the cut from the disk cache. QUIRE_ENOTFOUND on a miss; a cached
 * copy that fails validation is dropped (and QUIRE_ENOTFOUND returned so
 * the caller fetches it again). Other errors come from emit. */
static int from_cache(quire_pagestore *ps, const quire_gid *sid, const quire_gid *vid, const splinter_t *cut,
                      ps_read_pages_fn emit, void *ctx) {
  ps_cache_pin pin;
  int rc = ps__cache_pin(ps->cache, sid, &pin);
  if (rc) return rc == QUIRE_EUNAVAILABLE ? QUIRE_ENOTFOUND : rc; /* cache busy: fetch instead */
  quire_segment_view v;
  rc = quire_segment_open(pin.data, pin.len, &ps->seglimits, &v);
  if (rc == 0 && quire_gid_cmp(&v.sid, sid) != 0)
    rc = quire__err(QUIRE_ECORRUPT, "cached file holds another segment");
  if (rc == 0) rc = emit_from_view(&v, vid, cut, emit, ctx);
  ps__cache_unpin(&pin);
  if (rc == QUIRE_ECORRUPT) {
    QLOG_WARN("pagestore: dropping a corrupt cached segment: %s", quire_errmsg());
    ps__cache_invalidate(ps->cache, sid);
    return QUIRE_ENOTFOUND;
  }
  return rc;
}

static int store_rc(int rc) {
  /* The object store being down is 503 for the client, not a 500. */
  if (rc == QUIRE_ENOTFOUND)
    return quire__err(QUIRE_ECORRUPT, "a segment in the catalog is missing from the store");
  if (rc == QUIRE_ECORRUPT || rc == QUIRE_ENOMEM || rc == QUIRE_EVERSION) return rc;
  return QUIRE_EUNAVAILABLE;
}

/* Fetches the cut's pages with ranged GETs without caching the segment.
 * Returns 1 (in *done) when it served them, 0 when the cut is too large a
 * share of the segment (then the caller downloads it whole). */
static int partial(quire_pagestore *ps, const quire_gid *sid, const quire_gid *vid, const splinter_t *cut,
                   ps_read_pages_fn emit, void *ctx, int *done) {
  *done = 0;
  uint64_t t0 = quire__mono_ns();
  char key[64];
  segment_key(sid, key);
  quire_objstore_info info;
  int rc = quire_objstore_head(ps->store, key, &info);
  if (rc) return store_rc(rc);
  uint64_t tail = quire_segment_max_tail(&ps->seglimits);
  if (tail > info.size) tail = info.size;
  uint8_t *tb = quire__malloc(tail ? tail : 1);
  if (!tb) return QUIRE_ENOMEM;
  size_t got = 0;
  quire_segment_view v;
  rc = quire_objstore_get_range(ps->store, key, info.size - tail, tail, tb, &got);
  if (rc)
    rc = store_rc(rc);
  else if (got != tail)
    rc = quire__err(QUIRE_EUNAVAILABLE, "short read of a segment index");
  if (rc == 0) rc = quire_segment_index_open(tb, tail, info.size, &ps->seglimits, &v);
  uint64_t n = splinter_cardinality(cut);
  if (rc || n * 100 > (uint64_t)ps->o.partial_read_percent * v.page_count) {
    quire__free(tb);
    return rc;
  }
  quire_pageidx *want = quire__malloc(n * sizeof *want);
  quire_segment_range *ranges = NULL;
  size_t nranges = 0, missing = 0;
  if (!want) rc = QUIRE_ENOMEM;
  if (rc == 0) {
    splinter_iter_t it;
    splinter_iter_init(&it, splinter_ref_owned(cut), 0);
    splinter_iter_next_batch(&it, want, n);
    rc = quire_segment_plan(&v, vid, want, n, 4, &ranges, &nranges, &missing);
  }
  if (rc == 0 && missing)
    rc = quire__err(QUIRE_ECORRUPT, "the catalog puts %zu pages in a segment that lacks them", missing);
  uint32_t first = 0, count = 0;
  if (rc == 0 && nranges > 0) rc = quire_segment_find_volume(&v, vid, &first, &count);
  for (size_t r = 0; r < nranges && rc == 0; r++) {
    uint8_t *buf = quire__malloc(ranges[r].length);
    if (!buf) {
      rc = QUIRE_ENOMEM;
      break;
    }
    rc = quire_objstore_get_range(ps->store, key, ranges[r].offset, ranges[r].length, buf, &got);
    if (rc)
      rc = store_rc(rc);
    else if (got != ranges[r].length)
      rc = quire__err(QUIRE_EUNAVAILABLE, "short ranged read of a segment");
    /* Emit the wanted pages of this range, each checked on its own. */
    quire_pageidx *idx = quire__malloc(ranges[r].slot_count * sizeof *idx);
    const uint8_t **pages = quire__malloc(ranges[r].slot_count * sizeof *pages);
    size_t k = 0;
    if (rc == 0 && (!idx || !pages)) rc = QUIRE_ENOMEM;
    for (uint32_t s = 0; rc == 0 && s < ranges[r].slot_count; s++) {
      uint32_t slot = ranges[r].first_slot + s;
      quire_pageidx pi = quire_segment_slot_pageidx(&v, slot);
      if (slot < first || slot >= first + count || !splinter_contains(cut, pi))
        continue; /* a gap page, or another volume's */
      const uint8_t *page = buf + (size_t)s * QUIRE_PAGE_SIZE;
      rc = quire_segment_page_check(&v, slot, page);
      idx[k] = pi;
      pages[k++] = page;
    }
    if (rc == 0 && k) rc = emit(ctx, idx, pages, k);
    quire__free(idx);
    quire__free(pages);
    quire__free(buf);
  }
  quire_segment_free(ranges);
  quire__free(want);
  quire__free(tb);
  if (rc == 0) {
    atomic_fetch_add(&ps->downloads_partial, 1);
    quire__metrics_observe(ps->o.metrics, "quire_ps_download_seconds", "segment fetch latency",
                           "kind=\"partial\"", (double)(quire__mono_ns() - t0) / 1e9);
    *done = 1;
  }
  return rc;
}

/* Downloads the whole segment once (single flight), caches it, serves the
 * cut from it. */
static int whole(quire_pagestore *ps, const quire_gid *sid, const quire_gid *vid, const splinter_t *cut,
                 ps_read_pages_fn emit, void *ctx) {
  quire_permit permit;
  int rc = quire__limiter_acquire(ps->downloads, sid->b, sizeof sid->b, -1, &permit);
  if (rc) return rc;
  rc = from_cache(ps, sid, vid, cut, emit, ctx); /* someone else fetched it */
  if (rc != QUIRE_ENOTFOUND) {
    quire__limiter_release(&permit);
    return rc;
  }
  char key[64];
  segment_key(sid, key);
  uint8_t *data = NULL;
  size_t len = 0;
  uint64_t t0 = quire__mono_ns();
  rc = quire_objstore_get(ps->store, key, &data, &len);
  if (rc) rc = store_rc(rc);
  quire_segment_view v;
  if (rc == 0) {
    atomic_fetch_add(&ps->downloads_whole, 1);
    quire__metrics_observe(ps->o.metrics, "quire_ps_download_seconds", "segment fetch latency",
                           "kind=\"whole\"", (double)(quire__mono_ns() - t0) / 1e9);
    rc = quire_segment_open(data, len, &ps->seglimits, &v);
  }
  if (rc == 0 && quire_gid_cmp(&v.sid, sid) != 0)
    rc = quire__err(QUIRE_ECORRUPT, "object holds another segment");
  if (rc == 0) {
    int crc = ps__cache_put(ps->cache, sid, data, len);
    if (crc && crc != QUIRE_EEXIST)
      QLOG_DEBUG("pagestore: downloaded segment not cached: %s", quire_strerror(crc));
  }
  quire__limiter_release(&permit);
  if (rc == 0) rc = emit_from_view(&v, vid, cut, emit, ctx);
  quire_objstore_free(data);
  return rc;
}

static int load(quire_pagestore *ps, const quire_gid *vid, const struct job *j, ps_read_pages_fn emit,
                void *ctx) {
  int rc = from_cache(ps, &j->sid, vid, j->cut, emit, ctx);
  if (rc != QUIRE_ENOTFOUND) return rc;
  if (!ps->o.no_partial_reads) {
    int done;
    rc = partial(ps, &j->sid, vid, j->cut, emit, ctx, &done);
    if (rc || done) return rc;
  }
  return whole(ps, &j->sid, vid, j->cut, emit, ctx);
}

/* Jobs of one read run on the loader pool; emit is serialized by mu. */
struct fanout {
  quire_pagestore *ps;
  ps_plan *plan;
  ps_read_pages_fn emit;
  void *ctx;
  pthread_mutex_t mu; /* guards everything below, and calls to emit */
  pthread_cond_t cv;
  size_t left;
  int rc;
  char why[400]; /* the message of the first failure (it happened on a loader thread) */
};

struct task {
  struct fanout *f;
  size_t job;
};

static int serialized_emit(void *ctx, const quire_pageidx *idx, const uint8_t *const *pages, size_t n) {
  struct fanout *f = ctx;
  pthread_mutex_lock(&f->mu);
  int rc = f->rc ? f->rc : f->emit(f->ctx, idx, pages, n);
  pthread_mutex_unlock(&f->mu);
  if (rc == 0) atomic_fetch_add(&f->ps->pages_served, n);
  return rc;
}

static void run_task(void *arg) {
  struct task *t = arg;
  struct fanout *f = t->f;
  pthread_mutex_lock(&f->mu);
  int skip = f->rc != 0;
  pthread_mutex_unlock(&f->mu);
  int rc = skip ? 0 : load(f->ps, &f->plan->vid, &f->plan->jobs[t->job], serialized_emit, f);
  if (rc && !skip) {
    char s[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&f->plan->jobs[t->job].sid, s);
    QLOG_WARN("pagestore: read of segment %s failed: %s (%s)", s, quire_strerror(rc), quire_errmsg());
  }
  pthread_mutex_lock(&f->mu);
  if (rc && !f->rc) {
    f->rc = rc;
    char s[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&f->plan->jobs[t->job].sid, s);
    snprintf(f->why, sizeof f->why, "segment %s: %s", s,
             quire_errmsg()[0] ? quire_errmsg() : quire_strerror(rc));
  }
  if (--f->left == 0) pthread_cond_signal(&f->cv);
  pthread_mutex_unlock(&f->mu);
  quire__free(t);
}

int quire__ps_plan_run(quire_pagestore *ps, ps_plan *plan, ps_read_pages_fn emit, void *ctx) {
  if (plan->njobs == 0) return 0;
  if (plan->njobs == 1) { /* no need to hop threads */
    int rc = load(ps, &plan->vid, &plan->jobs[0], emit, ctx);
    if (rc == 0) atomic_fetch_add(&ps->pages_served, splinter_cardinality(plan->jobs[0].cut));
    return rc;
  }
  struct fanout f = {ps, plan, emit, ctx, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, ""};
  for (size_t i = 0; i < plan->njobs; i++) {
    struct task *t = quire__malloc(sizeof *t);
    int rc = t ? 0 : QUIRE_ENOMEM;
    if (t) {
      *t = (struct task){&f, i};
      pthread_mutex_lock(&f.mu);
      f.left++;
      pthread_mutex_unlock(&f.mu);
      rc = quire__pool_submit(ps->loaders, run_task, t);
      if (rc) {
        quire__free(t);
        pthread_mutex_lock(&f.mu);
        f.left--;
        pthread_mutex_unlock(&f.mu);
      }
    }
    if (rc) {
      pthread_mutex_lock(&f.mu);
      if (!f.rc) {
        f.rc = rc;
        snprintf(f.why, sizeof f.why, "queueing segment reads: %s", quire_strerror(rc));
      }
      pthread_mutex_unlock(&f.mu);
      break;
    }
  }
  pthread_mutex_lock(&f.mu);
  while (f.left > 0) pthread_cond_wait(&f.cv, &f.mu);
  int rc = f.rc;
  pthread_mutex_unlock(&f.mu);
  pthread_mutex_destroy(&f.mu);
  pthread_cond_destroy(&f.cv);
  /* The detail goes with the code to this thread, which answers. */
  if (rc && f.why[0]) quire__err(rc, "%s", f.why);
  return rc;
}

int quire__ps_read(quire_pagestore *ps, const quire_gid *vid, quire_lsn lsn, splinter_ref_t wanted,
                   ps_read_pages_fn emit, void *ctx, splinter_t **missing) {
  *missing = NULL;
  ps_plan *plan;
  int rc = quire__ps_plan(ps, vid, lsn, wanted, &plan);
  if (rc) return rc;
  rc = quire__ps_plan_run(ps, plan, emit, ctx);
  if (rc == 0) {
    *missing = plan->wanted;
    plan->wanted = NULL;
  }
  quire__ps_plan_free(plan);
  return rc;
}
