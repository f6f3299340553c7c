/*
 * pagestore/writer.c — write_pages: pack pages into segments and upload them
 * (DESIGN.md §9.1; where the time goes: docs/PAGESTORE.md "Writing").
 *
 * Each open segment owns one buffer the size of a whole segment (reused:
 * a few are kept, so the hot path touches no fresh memory). A request
 * reserves slots in it under the lock and then, outside the lock and on
 * its own HTTP thread, copies its pages into their slots and checksums
 * them — the one copy of the page bytes the pagestore makes. The open
 * segment is sealed when
 *   - it is full (the next page would pass the size target),
 *   - a request for a volume it already holds arrives (a segment holds one
 *     version of a page), or
 *   - its flush interval has passed since its first page (the latency bound),
 *   - or no page has been added for flush_idle_ms and no other segment is
 *     on its way to the store (a lull: waiting longer would only add
 *     latency; while the store is busy, waiting fills the segment for free
 *     — group commit).
 * The flusher thread builds each sealed segment once its copies are in: it
 * sorts the slots by volume and index; when they are already in order
 * (one request, or requests in volume order) the pages are the segment and
 * index + footer go right after them, else the pages are gathered once into
 * a second buffer in order. It hands the bytes to the object store's upload
 * pool and, while the upload runs, writes them into a cache slot that is
 * published only once the upload succeeded (abandoned otherwise). When the
 * upload finishes, every request with pages in the segment learns its
 * outcome; a request is done when all its segments are durable (success,
 * with the splinter of its pages per segment) or one failed
 * (QUIRE_EUNAVAILABLE: nothing of it is reported durable).
 */
#include "pagestore/ps_int.h"

#include <stdlib.h>
#include <string.h>

struct entry {
  quire_gid vid;
  quire_pageidx idx;
  uint32_t slot; /* where its bytes are in buf (arrival order) */
  ps_write *w;
};

struct open_seg {
  quire_gid sid;
  struct entry *e;
  size_t n, cap;
  quire_gid *vols; /* distinct volumes, unsorted */
  size_t nvols, capvols;
  ps_write **reqs; /* distinct requests */
  size_t nreqs, capreqs;
  uint64_t deadline_ms; /* flush by then at the latest (flush interval) */
  uint64_t idle_at_ms;  /* flush then unless more pages arrive (idle flush) */
  uint8_t *buf;         /* a segment-sized buffer: page slots, then the tail */
  uint64_t *sums;       /* checksum per slot */
  unsigned copying;     /* requests still copying into their slots (wmu) */
  const uint8_t *bytes; /* the built segment (in buf) while it uploads */
  size_t len;
  int refs; /* the upload and the cache write, once built (wmu) */
  int upload_rc;
  ps_cache_slot slot;
  int cached; /* slot holds the whole segment */
  uint64_t first_ns, sealed_ns, upload_start_ns;
  struct open_seg *next;
  quire_pagestore *ps;
};

struct ps_write {
  quire_pagestore *ps;
  ps_write_done_fn done;
  void *ctx;
  unsigned pending; /* segments not yet finished */
  int rc;
  char why[240]; /* what failed it, when rc != 0 */
  int submitted; /* all pages placed and copied */
  quire_gid *sids;
  splinter_t **grafts;
  size_t nres, capres;
};

/* Segment buffers: wbuf_size bytes each; up to WBUF_KEEP are kept for
 * reuse (wmu). */
static uint8_t *buf_get_locked(quire_pagestore *ps) {
  if (ps->nwbufs) return ps->wbufs[--ps->nwbufs];
  return quire__malloc(ps->wbuf_size);
}

static void buf_put(quire_pagestore *ps, uint8_t *b) {
  if (!b) return;
  pthread_mutex_lock(&ps->wmu);
  if (ps->nwbufs < PS_WBUF_KEEP) {
    ps->wbufs[ps->nwbufs++] = b;
    b = NULL;
  }
  pthread_mutex_unlock(&ps->wmu);
  quire__free(b);
}

static void seg_free(struct open_seg *s) {
  if (!s) return;
  quire__free(s->e);
  quire__free(s->vols);
  quire__free(s->reqs);
  quire__free(s->sums);
  buf_put(s->ps, s->buf);
  quire__free(s);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap * 2 : 16;
  while (n < need) n *= 2;
  void *q = quire__realloc(*p, n * elem);
  if (!q) return QUIRE_ENOMEM;
  *p = q;
  *cap = n;
  return 0;
}

static int seg_has_vol(const struct open_seg *s, const quire_gid *vid) {
  for (size_t i = 0; i < s->nvols; i++)
    if (quire_gid_cmp(&s->vols[i], vid) == 0) return 1;
  return 0;
}

/* A new open segment (wmu held). */
static struct open_seg *seg_new(quire_pagestore *ps) {
  struct open_seg *s = quire__calloc(1, sizeof *s);
  if (!s) return NULL;
  s->ps = ps;
  s->slot.fd = -1;
  s->buf = buf_get_locked(ps);
  s->sums = quire__malloc(ps->seglimits.max_pages * sizeof *s->sums);
  if (!s->buf || !s->sums || quire_gid_new(QUIRE_GID_SEGMENT, &s->sid) != 0) {
    if (s->buf && ps->nwbufs < PS_WBUF_KEEP)
      ps->wbufs[ps->nwbufs++] = s->buf;
    else
      quire__free(s->buf);
    quire__free(s->sums);
    quire__free(s);
    return NULL;
  }
  return s;
}

/* Moves the open segment to the sealed list (wmu held). */
static void seal_open(quire_pagestore *ps) {
  struct open_seg *s = ps->open;
  if (!s) return;
  ps->open = NULL;
  if (s->n == 0) { /* nothing placed (so nothing being copied) */
    if (ps->nwbufs < PS_WBUF_KEEP) {
      ps->wbufs[ps->nwbufs++] = s->buf;
      s->buf = NULL;
    }
    quire__free(s->buf);
    quire__free(s->e);
    quire__free(s->vols);
    quire__free(s->reqs);
    quire__free(s->sums);
    quire__free(s);
    return;
  }
  s->sealed_ns = quire__mono_ns();
  ps->w_inflight++;
  if (ps->sealed_tail)
    ps->sealed_tail->next = s;
  else
    ps->sealed = s;
  ps->sealed_tail = s;
  pthread_cond_broadcast(&ps->wcond);
}

static int cmp_idx(const void *a, const void *b) {
  quire_pageidx x = *(const quire_pageidx *)a, y = *(const quire_pageidx *)b;
  return x < y ? -1 : x > y;
}

static int validate(quire_pagestore *ps, const quire_gid *vid, const quire_pageidx *idx, size_t n) {
  if (quire_gid_type(vid) != QUIRE_GID_VOLUME) return quire__err(QUIRE_EINVAL, "vid is not a volume id");
  if (n == 0) return quire__err(QUIRE_EINVAL, "no pages to write");
  if (n > ps->o.max_write_pages)
    return quire__err(QUIRE_ETOOLARGE, "%zu pages in one request; the limit is %u", n, ps->o.max_write_pages);
  quire_pageidx *sorted = quire__malloc(n * sizeof *sorted);
  if (!sorted) return QUIRE_ENOMEM;
  memcpy(sorted, idx, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_idx);
  int rc = 0;
  if (sorted[0] == 0) rc = quire__err(QUIRE_EINVAL, "page index 0 (pages are 1-based)");
  for (size_t i = 1; i < n && !rc; i++)
    if (sorted[i] == sorted[i - 1]) rc = quire__err(QUIRE_EINVAL, "duplicate page index %u", sorted[i]);
  quire__free(sorted);
  return rc;
}

/* Pages of one request placed in one segment: slots [slot, slot+count)
 * receive pages [from, from+count). */
struct placement {
  struct open_seg *s;
  uint32_t slot;
  size_t from, count;
};

static void copy_in(const struct placement *pl, const uint8_t *const *pages) {
  struct open_seg *s = pl->s;
  for (size_t i = 0; i < pl->count; i++) {
    uint8_t *dst = s->buf + (size_t)(pl->slot + i) * QUIRE_PAGE_SIZE;
    memcpy(dst, pages[pl->from + i], QUIRE_PAGE_SIZE);
    s->sums[pl->slot + i] = quire_segment_page_checksum(dst); /* still in the CPU cache */
  }
}

int quire__ps_write_submit(quire_pagestore *ps, const quire_gid *vid, const quire_pageidx *idx,
                           const uint8_t *const *pages, size_t n, ps_write_done_fn done, void *ctx,
                           ps_write **out) {
  *out = NULL;
  int rc = validate(ps, vid, idx, n);
  if (rc) return rc;
  ps_write *w = quire__calloc(1, sizeof *w);
  if (!w) return QUIRE_ENOMEM;
  w->ps = ps;
  w->done = done;
  w->ctx = ctx;
  struct placement one[2], *pl = one;
  size_t npl = 0, cappl = 2;
  uint64_t t0 = quire__mono_ns();
  pthread_mutex_lock(&ps->wmu);
  if (ps->stopping) {
    pthread_mutex_unlock(&ps->wmu);
    quire__free(w);
    return quire__err(QUIRE_ECLOSED, "pagestore is shutting down");
  }
  if (ps->open && seg_has_vol(ps->open, vid)) seal_open(ps);
  size_t placed = 0;
  while (placed < n) {
    if (!ps->open) {
      ps->open = seg_new(ps);
      if (!ps->open) {
        rc = QUIRE_ENOMEM;
        break;
      }
    }
    struct open_seg *s = ps->open;
    int new_vol = !seg_has_vol(s, vid);
    /* How many more pages fit under the size target. */
    uint64_t base = quire_segment_size(s->nvols + (size_t)new_vol, s->n);
    uint64_t room = base >= ps->seglimits.target_bytes
                        ? 0
                        : (ps->seglimits.target_bytes - base) / QUIRE_SEGMENT_PAGE_COST;
    if (room > ps->seglimits.max_pages - s->n) room = ps->seglimits.max_pages - s->n;
    if (new_vol && s->nvols >= ps->seglimits.max_volumes) room = 0;
    if (room == 0) {
      if (s->n == 0) { /* cannot happen with valid limits */
        rc = quire__err(QUIRE_EINTERNAL, "segment limits admit no page");
        break;
      }
      seal_open(ps);
      continue;
    }
    size_t take = n - placed < room ? n - placed : (size_t)room;
    if (npl == cappl) {
      struct placement *q = quire__malloc(2 * cappl * sizeof *q);
      if (!q) {
        rc = QUIRE_ENOMEM;
        break;
      }
      memcpy(q, pl, npl * sizeof *q);
      if (pl != one) quire__free(pl);
      pl = q;
      cappl *= 2;
    }
    if ((rc = grow((void **)&s->e, &s->cap, s->n + take, sizeof *s->e)) != 0) break;
    if (new_vol && (rc = grow((void **)&s->vols, &s->capvols, s->nvols + 1, sizeof *s->vols)) != 0) break;
    if ((rc = grow((void **)&s->reqs, &s->capreqs, s->nreqs + 1, sizeof *s->reqs)) != 0) break;
    if (new_vol) s->vols[s->nvols++] = *vid;
    if (s->n == 0) {
      s->first_ns = quire__mono_ns();
      s->deadline_ms = quire__mono_ms() + ps->o.flush_interval_ms;
      pthread_cond_broadcast(&ps->wcond);
    }
    pl[npl++] = (struct placement){s, (uint32_t)s->n, placed, take};
    for (size_t i = 0; i < take; i++)
      s->e[s->n + i] = (struct entry){*vid, idx[placed + i], (uint32_t)(s->n + i), w};
    s->n += take;
    s->copying++;
    s->idle_at_ms = quire__mono_ms() + ps->o.flush_idle_ms;
    s->reqs[s->nreqs++] = w;
    w->pending++;
    placed += take;
    if (placed < n) seal_open(ps); /* full: the rest goes to a new segment */
  }
  if (rc && placed == 0 && w->pending == 0) {
    pthread_mutex_unlock(&ps->wmu);
    if (pl != one) quire__free(pl);
    quire__free(w);
    return rc;
  }
  if (rc) { /* partly placed: fail it when its segments finish */
    w->rc = rc;
    snprintf(w->why, sizeof w->why, "placing pages: %s", quire_errmsg());
  }
  pthread_mutex_unlock(&ps->wmu);
  /* The copies, outside the lock: requests fill their slots in parallel.
   * No segment with a copy in progress is built (copying > 0). */
  for (size_t i = 0; i < npl; i++) copy_in(&pl[i], pages);
  pthread_mutex_lock(&ps->wmu);
  for (size_t i = 0; i < npl; i++)
    if (--pl[i].s->copying == 0) pthread_cond_broadcast(&ps->wcond);
  w->submitted = 1;
  atomic_fetch_add(&ps->pages_written, placed);
  atomic_fetch_add(&ps->wt.requests, 1);
  atomic_fetch_add(&ps->wt.copy_ns, quire__mono_ns() - t0);
  *out = w;
  pthread_mutex_unlock(&ps->wmu);
  if (pl != one) quire__free(pl);
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  const struct entry *x = a, *y = b;
  int c = quire_gid_cmp(&x->vid, &y->vid);
  if (c) return c;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void finish_segment(struct open_seg *s, int rc, const char *why);

/* Drops one of the two references of a built segment (the upload, the
 * cache write). The last one publishes the cache slot if the upload
 * succeeded, abandons it otherwise, and frees the segment. */
static void seg_release(struct open_seg *s) {
  quire_pagestore *ps = s->ps;
  pthread_mutex_lock(&ps->wmu);
  int last = --s->refs == 0;
  pthread_mutex_unlock(&ps->wmu);
  if (!last) return;
  if (s->cached && s->upload_rc == 0) {
    int crc = ps__cache_publish(&s->slot);
    if (crc) QLOG_DEBUG("pagestore: segment not cached: %s", quire_strerror(crc));
  } else {
    ps__cache_abandon(&s->slot);
  }
  seg_free(s);
}

static void upload_done(void *arg, int rc) {
  struct open_seg *s = arg;
  quire_pagestore *ps = s->ps;
  char why[240] = "";
  uint64_t now = quire__mono_ns();
  if (rc) {
    char sid[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&s->sid, sid);
    snprintf(why, sizeof why, "uploading segments/%s: %s%s%s", sid, quire_strerror(rc),
             quire_errmsg()[0] ? ": " : "", quire_errmsg());
    QLOG_WARN("pagestore: %s", why);
    atomic_fetch_add(&ps->upload_failures, 1);
  } else {
    atomic_fetch_add(&ps->segments_uploaded, 1);
    atomic_fetch_add(&ps->wt.upload_ns, now - s->upload_start_ns);
    quire__metrics_observe(ps->o.metrics, "quire_ps_upload_seconds", "segment upload latency", "",
                           (double)(now - s->upload_start_ns) / 1e9);
  }
  s->upload_rc = rc;
  finish_segment(s, rc ? QUIRE_EUNAVAILABLE : 0, why);
  pthread_mutex_lock(&ps->wmu);
  ps->w_inflight--;
  pthread_cond_broadcast(&ps->wcond); /* the store may be idle: an idle segment can go */
  pthread_mutex_unlock(&ps->wmu);
  seg_release(s);
}

/* Lays the sealed segment out in segment order and appends index and
 * footer: s->bytes, s->len. */
static int build(quire_pagestore *ps, struct open_seg *s) {
  qsort(s->e, s->n, sizeof *s->e, cmp_entry);
  quire_segment_page *pg = quire__malloc(s->n * sizeof *pg);
  if (!pg) return QUIRE_ENOMEM;
  int in_place = 1;
  for (size_t i = 0; i < s->n; i++) {
    pg[i] = (quire_segment_page){s->e[i].vid, s->e[i].idx, s->sums[s->e[i].slot]};
    if (s->e[i].slot != i) in_place = 0;
  }
  if (!in_place) { /* gather the pages in order into a second buffer, run by run */
    pthread_mutex_lock(&ps->wmu);
    uint8_t *out = buf_get_locked(ps);
    pthread_mutex_unlock(&ps->wmu);
    if (!out) {
      quire__free(pg);
      return QUIRE_ENOMEM;
    }
    for (size_t i = 0; i < s->n;) {
      size_t j = i + 1;
      while (j < s->n && s->e[j].slot == s->e[j - 1].slot + 1) j++;
      memcpy(out + i * QUIRE_PAGE_SIZE, s->buf + (size_t)s->e[i].slot * QUIRE_PAGE_SIZE,
             (j - i) * QUIRE_PAGE_SIZE);
      i = j;
    }
    buf_put(ps, s->buf);
    s->buf = out;
    atomic_fetch_add(&ps->wt.gathered, 1);
  }
  size_t plen = s->n * QUIRE_PAGE_SIZE, tlen;
  int rc = quire_segment_tail_build(&s->sid, &ps->seglimits, pg, (uint32_t)s->n, s->buf + plen,
                                    ps->wbuf_size - plen, &tlen);
  quire__free(pg);
  if (rc) return rc;
  s->bytes = s->buf;
  s->len = plen + tlen;
  return 0;
}

/* Builds a sealed segment, queues its upload and, while it runs, writes it
 * into a cache slot (flusher thread, no lock held). */
static void flush_segment(quire_pagestore *ps, struct open_seg *s) {
  uint64_t t0 = quire__mono_ns();
  atomic_fetch_add(&ps->wt.fill_ns, s->sealed_ns - s->first_ns);
  atomic_fetch_add(&ps->wt.queue_ns, t0 - s->sealed_ns);
  int rc = build(ps, s);
  if (rc) {
    char why[240];
    snprintf(why, sizeof why, "building a segment: %s: %s", quire_strerror(rc), quire_errmsg());
    QLOG_ERROR("pagestore: %s", why);
    finish_segment(s, rc, why);
    pthread_mutex_lock(&ps->wmu);
    ps->w_inflight--;
    pthread_cond_broadcast(&ps->wcond);
    pthread_mutex_unlock(&ps->wmu);
    seg_free(s);
    return;
  }
  uint64_t t1 = quire__mono_ns();
  atomic_fetch_add(&ps->wt.build_ns, t1 - t0);
  atomic_fetch_add(&ps->segments_flushed, 1);
  atomic_fetch_add(&ps->wt.bytes, s->len);
  atomic_fetch_add(&ps->wt.segments, 1);
  char key[64], sid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&s->sid, sid);
  snprintf(key, sizeof key, "segments/%s", sid);
  s->refs = 2;
  s->upload_start_ns = t1;
  rc = quire_objstore_uploads_put(ps->uploads, key, s->bytes, s->len, 0, upload_done, s);
  if (rc) {
    char why[240];
    snprintf(why, sizeof why, "queueing the upload of %s: %s: %s", key, quire_strerror(rc), quire_errmsg());
    s->upload_rc = rc;
    finish_segment(s, QUIRE_EUNAVAILABLE, why);
    pthread_mutex_lock(&ps->wmu);
    ps->w_inflight--;
    pthread_cond_broadcast(&ps->wcond);
    pthread_mutex_unlock(&ps->wmu);
    s->refs = 1;
    seg_release(s);
    return;
  }
  /* The cache write overlaps the upload; the slot is published only once
   * the upload succeeded. A full cache (pinned entries) only costs a later
   * download. */
  int crc = ps__cache_reserve(ps->cache, &s->sid, s->len, &s->slot);
  if (crc == 0) {
    crc = ps__cache_slot_write(&s->slot, s->bytes, s->len);
    if (crc == 0)
      s->cached = 1;
    else
      ps__cache_abandon(&s->slot);
  }
  if (crc && crc != QUIRE_EEXIST) QLOG_DEBUG("pagestore: segment not cached: %s", quire_strerror(crc));
  atomic_fetch_add(&ps->wt.cache_ns, quire__mono_ns() - t1);
  seg_release(s);
}

/* Tells every request with pages in s how the segment ended and completes
 * the requests that have nothing else pending. */
static void finish_segment(struct open_seg *s, int rc, const char *why) {
  quire_pagestore *ps = s->ps;
  size_t nready = 0; /* completed requests are moved to the front of s->reqs */
  pthread_mutex_lock(&ps->wmu);
  for (size_t r = 0; r < s->nreqs; r++) {
    ps_write *w = s->reqs[r];
    if (rc) {
      if (!w->rc) {
        w->rc = rc;
        snprintf(w->why, sizeof w->why, "%s", why);
      }
    } else if (!w->rc) {
      splinter_t *g = NULL;
      int e = splinter_new(&g);
      for (size_t i = 0; i < s->n && e == 0; i++)
        if (s->e[i].w == w && splinter_insert(g, s->e[i].idx) < 0) e = QUIRE_ENOMEM;
      size_t capres = w->capres;
      if (e == 0) e = grow((void **)&w->sids, &capres, w->nres + 1, sizeof *w->sids);
      if (e == 0) e = grow((void **)&w->grafts, &w->capres, w->nres + 1, sizeof *w->grafts);
      if (e == 0) {
        w->sids[w->nres] = s->sid;
        w->grafts[w->nres++] = g;
      } else {
        splinter_free(g);
        w->rc = e;
        snprintf(w->why, sizeof w->why, "out of memory recording a finished segment");
      }
    }
    if (--w->pending == 0 && w->submitted) s->reqs[nready++] = w;
  }
  pthread_mutex_unlock(&ps->wmu);
  for (size_t i = 0; i < nready; i++) s->reqs[i]->done(s->reqs[i]->ctx, s->reqs[i]);
}

static void *flusher_main(void *arg) {
  quire_pagestore *ps = arg;
  pthread_setname_np(pthread_self(), "ps-flusher");
  pthread_mutex_lock(&ps->wmu);
  for (;;) {
    if (ps->open && ps->open->n > 0) {
      uint64_t now = quire__mono_ms();
      /* Idle: only while nothing else is on its way to the store. */
      int idle = now >= ps->open->idle_at_ms && ps->w_inflight == 0;
      if (ps->stopping || now >= ps->open->deadline_ms || idle) seal_open(ps);
    }
    if (ps->sealed && ps->sealed->copying == 0) {
      struct open_seg *s = ps->sealed;
      ps->sealed = s->next;
      if (!ps->sealed) ps->sealed_tail = NULL;
      s->next = NULL;
      pthread_mutex_unlock(&ps->wmu);
      flush_segment(ps, s);
      pthread_mutex_lock(&ps->wmu);
      continue;
    }
    if (ps->stopping && !ps->open && !ps->sealed) break;
    if (ps->open && ps->open->n > 0) {
      uint64_t now = quire__mono_ms(), dl = ps->open->deadline_ms;
      if (ps->w_inflight == 0) dl = QUIRE_MIN(dl, ps->open->idle_at_ms);
      struct timespec ts;
      quire__deadline_after_ms(&ts, dl > now ? dl - now : 0);
      pthread_cond_timedwait(&ps->wcond, &ps->wmu, &ts);
    } else {
      pthread_cond_wait(&ps->wcond, &ps->wmu);
    }
  }
  pthread_mutex_unlock(&ps->wmu);
  return NULL;
}

int quire__ps_writer_start(quire_pagestore *ps) {
  pthread_mutex_init(&ps->wmu, NULL);
  pthread_cond_init(&ps->wcond, NULL);
  /* A whole segment fits: segment_size(V, N) <= target_bytes for any
   * segment within the limits. */
  uint64_t most = quire_segment_size(ps->seglimits.max_volumes, ps->seglimits.max_pages);
  ps->wbuf_size = (size_t)QUIRE_MIN(most, ps->seglimits.target_bytes);
  int e = pthread_create(&ps->flusher, NULL, flusher_main, ps);
  if (e) return quire__err(-e, "pagestore: cannot start the flusher");
  ps->flusher_started = 1;
  return 0;
}

void quire__ps_writer_stop(quire_pagestore *ps) {
  if (!ps->flusher_started) return;
  pthread_mutex_lock(&ps->wmu);
  ps->stopping = 1;
  pthread_cond_broadcast(&ps->wcond);
  pthread_mutex_unlock(&ps->wmu);
  pthread_join(ps->flusher, NULL);
  ps->flusher_started = 0;
  quire_objstore_uploads_wait(ps->uploads);
  while (ps->nwbufs) quire__free(ps->wbufs[--ps->nwbufs]);
  pthread_mutex_destroy(&ps->wmu);
  pthread_cond_destroy(&ps->wcond);
}

void quire__ps_write_timing(quire_pagestore *ps, struct ps_write_timing *out) {
  out->requests = atomic_load(&ps->wt.requests);
  out->segments = atomic_load(&ps->wt.segments);
  out->gathered = atomic_load(&ps->wt.gathered);
  out->bytes = atomic_load(&ps->wt.bytes);
  out->decode_ns = atomic_load(&ps->wt.decode_ns);
  out->copy_ns = atomic_load(&ps->wt.copy_ns);
  out->fill_ns = atomic_load(&ps->wt.fill_ns);
  out->queue_ns = atomic_load(&ps->wt.queue_ns);
  out->build_ns = atomic_load(&ps->wt.build_ns);
  out->upload_ns = atomic_load(&ps->wt.upload_ns);
  out->cache_ns = atomic_load(&ps->wt.cache_ns);
  out->serve_ns = atomic_load(&ps->wt.serve_ns);
}

int quire__ps_write_result(const ps_write *w) { return w->rc; }

const char *quire__ps_write_error(const ps_write *w) { return w->why; }

size_t quire__ps_write_segments(const ps_write *w, const quire_gid **sids, const splinter_t *const **grafts) {
  *sids = w->sids;
  *grafts = (const splinter_t *const *)w->grafts;
  return w->rc ? 0 : w->nres;
}

void quire__ps_write_free(ps_write *w) {
  if (!w) return;
  for (size_t i = 0; i < w->nres; i++) splinter_free(w->grafts[i]);
  quire__free(w->grafts);
  quire__free(w->sids);
  quire__free(w);
}

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
};

static void wake_waiter(void *ctx, ps_write *w) {
  (void)w;
  struct waiter *wt = ctx;
  pthread_mutex_lock(&wt->mu);
  wt->done = 1;
  pthread_cond_signal(&wt->cv);
  pthread_mutex_unlock(&wt->mu);
}

int quire__ps_write_wait(quire_pagestore *ps, const quire_gid *vid, const quire_pageidx *idx,
                         const uint8_t *const *pages, size_t n, ps_write **out) {
  struct waiter wt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  int rc = quire__ps_write_submit(ps, vid, idx, pages, n, wake_waiter, &wt, out);
  if (rc) return rc;
  pthread_mutex_lock(&wt.mu);
  while (!wt.done) pthread_cond_wait(&wt.cv, &wt.mu);
  pthread_mutex_unlock(&wt.mu);
  pthread_mutex_destroy(&wt.mu);
  pthread_cond_destroy(&wt.cv);
  return (*out)->rc;
}
