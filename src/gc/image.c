/*
 * gc/image.c — a volume's full image at one LSN, repacked into dense new
 * segments: the common half of a checkpoint and of a fork.
 *
 * The walk is the segment query of DESIGN.md §9.2 over the metastore's own
 * catalog: from lsn down to the checkpoint of the commit at lsn, newest
 * first and each commit's segments last to first, wanted (all pages
 * 1..page_count) is cut against each segment's pages; a non-empty cut says
 * "these pages are read from that segment". Pages above the smallest
 * page_count between a commit and lsn are dropped before that commit is cut
 * (as the reader does: a volume shrunk and grown again reads them as never
 * written). Unlike the reader, the walk goes on to the checkpoint even when
 * wanted is empty, counting what it crosses (the checkpoint policy's walk
 * length and live fraction).
 *
 * The image is built in page order, max_pages pages per new segment: for
 * each run of pages the source segments that hold them are fetched (a small
 * LRU keeps the last few, since one old segment usually feeds consecutive
 * runs), each page is checked against its checksum (quire_segment_read_page)
 * and copied into the builder, and the finished segment is uploaded under
 * segments/{sid} before the next is started.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc/gc_int.h"
#include "util/alloc.h"
#include "util/err.h"

void quire__gc_jobs_free(struct gc_jobs *j) {
  for (size_t i = 0; i < j->n; i++) splinter_free(j->cut[i]);
  quire__free(j->sid);
  quire__free(j->cut);
  splinter_free(j->live);
  memset(j, 0, sizeof *j);
}

static int add_job(struct gc_jobs *j, const quire_gid *sid, splinter_t *cut) {
  if (j->n == j->cap) {
    size_t n = j->cap ? j->cap * 2 : 16;
    quire_gid *s = quire__realloc(j->sid, n * sizeof *s);
    if (!s) return QUIRE_ENOMEM;
    j->sid = s;
    splinter_t **c = quire__realloc(j->cut, n * sizeof *c);
    if (!c) return QUIRE_ENOMEM;
    j->cut = c;
    j->cap = n;
  }
  j->sid[j->n] = *sid;
  j->cut[j->n] = cut;
  j->n++;
  return 0;
}

int quire__gc_walk_jobs(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, struct gc_walk *w,
                        struct gc_jobs *jobs) {
  memset(w, 0, sizeof *w);
  if (jobs) memset(jobs, 0, sizeof *jobs);
  if (lsn == 0) return quire__err(QUIRE_EINVAL, "lsn 0");
  splinter_t *wanted = NULL, *live = NULL;
  int rc = splinter_new(&wanted);
  if (!rc) rc = splinter_new(&live);
  quire_buf buf;
  quire__buf_init(&buf, QUIRE_COMMIT_MAX_SIZE);
  quire_lsn stop = 1;
  uint32_t limit = UINT32_MAX;
  w->lsn = lsn;
  for (quire_lsn l = lsn; rc == 0 && l >= stop && l > 0; l--) {
    struct quire_commit c;
    rc = quire__ms_load(ms, vid, l, &buf, &c, NULL);
    if (rc) break;
    if (l == lsn) {
      w->page_count = c.page_count;
      if (c.checkpoint_lsn > stop) stop = c.checkpoint_lsn;
      if (c.page_count) rc = splinter_insert_range(wanted, 1, c.page_count) < 0 ? QUIRE_ENOMEM : 0;
    }
    if (rc == 0 && c.page_count < limit) {
      limit = c.page_count;
      uint32_t hi;
      if (splinter_max(wanted, &hi) == 0 && hi > limit && splinter_remove_range(wanted, limit + 1, hi) < 0)
        rc = QUIRE_ENOMEM;
    }
    w->commits++;
    for (uint32_t k = c.nsegments; k-- > 0 && rc == 0;) {
      splinter_view_t pages;
      rc = splinter_view_open(c.segments[k].graft, c.segments[k].graft_len, &pages);
      if (rc) {
        rc = quire__err(QUIRE_ECORRUPT, "commit %llu: a segment's page set does not decode",
                        (unsigned long long)l);
        break;
      }
      w->segments++;
      w->pages_total += splinter_view_cardinality(&pages);
      if (splinter_is_empty(wanted)) continue;
      splinter_t *cut = NULL;
      if ((rc = splinter_new(&cut)) != 0) break;
      rc = splinter_cut(wanted, splinter_ref_view(&pages), cut);
      if (rc == 0 && !splinter_is_empty(cut)) {
        w->pages_live += splinter_cardinality(cut);
        rc = splinter_union(splinter_ref_owned(live), splinter_ref_owned(cut), live);
        if (rc == 0 && jobs) {
          rc = add_job(jobs, &c.segments[k].sid, cut);
          if (rc == 0) cut = NULL;
        }
      }
      splinter_free(cut);
    }
    quire__commit_clear(&c);
  }
  w->checkpoint_lsn = stop;
  quire__buf_free(&buf);
  splinter_free(wanted);
  if (rc == 0 && jobs) {
    jobs->live = live;
    live = NULL;
  }
  splinter_free(live);
  if (rc && jobs) quire__gc_jobs_free(jobs);
  return rc;
}

int quire__gc_walk(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, struct gc_walk *w) {
  return quire__gc_walk_jobs(ms, vid, lsn, w, NULL);
}

/* ---- building the image ---------------------------------------------------- */

#define LRU 4

struct fetched {
  quire_gid sid;
  uint8_t *data;
  size_t len;
  quire_segment_view view;
  uint64_t used;
};

struct builder_ctx {
  quire_objstore *store;
  struct fetched lru[LRU];
  uint64_t tick;
};

static void lru_clear(struct builder_ctx *b) {
  for (int i = 0; i < LRU; i++) quire_objstore_free(b->lru[i].data);
  memset(b->lru, 0, sizeof b->lru);
}

static int fetch(struct builder_ctx *b, const quire_gid *sid, const quire_segment_view **out) {
  int victim = 0;
  for (int i = 0; i < LRU; i++) {
    if (b->lru[i].data && quire_gid_cmp(&b->lru[i].sid, sid) == 0) {
      b->lru[i].used = ++b->tick;
      *out = &b->lru[i].view;
      return 0;
    }
    if (!b->lru[i].data || b->lru[i].used < b->lru[victim].used) victim = i;
  }
  struct fetched *f = &b->lru[victim];
  quire_objstore_free(f->data);
  memset(f, 0, sizeof *f);
  char key[64], s[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(sid, s);
  snprintf(key, sizeof key, "segments/%s", s);
  int rc = quire_objstore_get(b->store, key, &f->data, &f->len);
  if (rc == QUIRE_ENOTFOUND)
    return quire__err(QUIRE_ECORRUPT, "%s is referenced by a retained commit but missing", key);
  if (rc) return quire__err(rc, "GET %s: %s", key, quire_errmsg());
  rc = quire_segment_open(f->data, f->len, NULL, &f->view);
  if (rc) {
    quire_objstore_free(f->data);
    f->data = NULL;
    return quire__err(QUIRE_ECORRUPT, "%s: %s", key, quire_errmsg());
  }
  f->sid = *sid;
  f->used = ++b->tick;
  *out = &f->view;
  return 0;
}

void quire__gc_image_free(struct gc_image *im) {
  for (uint32_t i = 0; i < im->n; i++) splinter_bytes_free(im->graft[i]);
  quire__free(im->sid);
  quire__free(im->graft);
  quire__free(im->graft_len);
  memset(im, 0, sizeof *im);
}

static int image_add(struct gc_image *im, const quire_gid *sid, const splinter_t *pages) {
  if (im->n == im->cap) {
    uint32_t n = im->cap ? im->cap * 2 : 8;
    quire_gid *s = quire__realloc(im->sid, n * sizeof *s);
    if (!s) return QUIRE_ENOMEM;
    im->sid = s;
    uint8_t **g = quire__realloc(im->graft, n * sizeof *g);
    if (!g) return QUIRE_ENOMEM;
    im->graft = g;
    uint32_t *gl = quire__realloc(im->graft_len, n * sizeof *gl);
    if (!gl) return QUIRE_ENOMEM;
    im->graft_len = gl;
    im->cap = n;
  }
  size_t len;
  int rc = splinter_serialize_alloc(pages, &im->graft[im->n], &len);
  if (rc) return rc;
  im->sid[im->n] = *sid;
  im->graft_len[im->n] = (uint32_t)len;
  im->n++;
  return 0;
}

struct slot {
  uint32_t page, job;
};

static int by_page(const void *a, const void *b) {
  uint32_t x = ((const struct slot *)a)->page, y = ((const struct slot *)b)->page;
  return (x > y) - (x < y);
}

int quire__gc_image_build(quire_objstore *store, const quire_segment_limits *limits, const quire_gid *src,
                          const struct gc_jobs *jobs, const quire_gid *dst, struct gc_image *out) {
  memset(out, 0, sizeof *out);
  quire_segment_limits lim;
  if (limits)
    lim = *limits;
  else
    quire_segment_limits_default(&lim);
  /* Pages per new segment: what fits one volume's pages. */
  uint32_t per = lim.max_pages;
  while (per > 1 && quire_segment_size(1, per) > lim.target_bytes) per--;
  struct builder_ctx bc = {.store = store};
  struct slot *slots = quire__calloc(per, sizeof *slots);
  splinter_t *pages = NULL;
  int rc = slots ? splinter_new(&pages) : QUIRE_ENOMEM;
  splinter_iter_t it;
  if (rc == 0) splinter_iter_init(&it, splinter_ref_owned(jobs->live), 1);
  uint32_t first;
  int more = rc == 0 && splinter_iter_next(&it, &first);
  while (rc == 0 && more) {
    /* The run: up to per live pages from first on. */
    uint32_t last = first, n = 1, x;
    while (n < per && (more = splinter_iter_next(&it, &x))) last = x, n++;
    if (n == per) more = splinter_iter_next(&it, &x);
    uint32_t next_first = more ? x : 0;
    size_t k = 0;
    for (size_t j = 0; j < jobs->n && rc == 0; j++) {
      splinter_iter_t jt;
      splinter_iter_init(&jt, splinter_ref_owned(jobs->cut[j]), first);
      uint32_t p;
      while (splinter_iter_next(&jt, &p) && p <= last) {
        if (k == per) {
          rc = quire__err(QUIRE_EINTERNAL, "image: a page is in two cuts");
          break;
        }
        slots[k++] = (struct slot){p, (uint32_t)j};
      }
    }
    if (rc) break;
    if (k != n) {
      rc = quire__err(QUIRE_EINTERNAL, "image: %zu pages found for a run of %u", k, n);
      break;
    }
    qsort(slots, k, sizeof *slots, by_page);
    quire_gid sid;
    quire_segment_builder *b = NULL;
    rc = quire_gid_new(QUIRE_GID_SEGMENT, &sid);
    if (!rc) rc = quire_segment_builder_new(&sid, &lim, &b);
    splinter_clear(pages);
    for (size_t i = 0; i < k && rc == 0; i++) {
      const quire_segment_view *v = NULL;
      rc = fetch(&bc, &jobs->sid[slots[i].job], &v);
      const uint8_t *page = NULL;
      if (rc == 0) {
        rc = quire_segment_read_page(v, src, slots[i].page, &page);
        if (rc == QUIRE_ENOTFOUND) {
          char s[QUIRE_GID_TEXT_LEN + 1];
          quire_gid_format(&jobs->sid[slots[i].job], s);
          rc = quire__err(QUIRE_ECORRUPT, "segment %s lacks page %u its commit promises", s, slots[i].page);
        }
      }
      if (rc == 0) rc = quire_segment_builder_add(b, dst, slots[i].page, page);
      if (rc == 0 && splinter_insert(pages, slots[i].page) < 0) rc = QUIRE_ENOMEM;
    }
    if (rc == 0) {
      char key[64], s[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(&sid, s);
      snprintf(key, sizeof key, "segments/%s", s);
      rc = quire_segment_builder_to_store(b, store, key, 0);
      if (rc) rc = quire__err(rc, "uploading %s: %s", key, quire_errmsg());
    }
    if (rc == 0) {
      out->pages += k;
      out->bytes += quire_segment_builder_size(b);
      rc = image_add(out, &sid, pages);
    }
    quire_segment_builder_free(b);
    first = next_first;
  }
  lru_clear(&bc);
  splinter_free(pages);
  quire__free(slots);
  if (rc) quire__gc_image_free(out);
  return rc;
}
