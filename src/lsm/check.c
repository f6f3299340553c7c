/*
 * lsm/check.c — walking segments: the page list of one segment (to free it
 * after a merge), the reachability bitmap (to rebuild the free list after a
 * crash or when it is unreadable) and `lsm check`, which also verifies every
 * checksum, key order inside and across pages, parent keys and counts, and
 * reports pages that are neither reachable nor free (leaks).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm_int.h"

typedef struct walk {
  lsm_db *db;
  uint8_t *bits;  /* reachable pages, or NULL */
  lsm_extv *list; /* pages visited, or NULL */
  int strict;
  lsm_report_fn report;
  void *ctx;
  uint64_t errors;
} walk;

static void complain(walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void complain(walk *w, const char *fmt, ...) {
  w->errors++;
  if (!w->report) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  w->report(w->ctx, msg);
}

static int mark(walk *w, uint32_t start, uint32_t count) {
  uint32_t np = atomic_load(&w->db->npages);
  if (start < 2 || (uint64_t)start + count > np) {
    complain(w, "pages %u..%u are past the file end (%u)", start, start + count - 1, np);
    return QUIRE_ECORRUPT;
  }
  if (w->bits) {
    for (uint32_t p = start; p < start + count; p++) {
      if (w->bits[p >> 3] & (1u << (p & 7))) {
        complain(w, "page %u is used twice", p);
        return QUIRE_ECORRUPT;
      }
      w->bits[p >> 3] |= (uint8_t)(1u << (p & 7));
    }
  }
  if (w->list) return lsm__extv_push(w->list, start, count);
  return 0;
}

/* Verifies every page of a run (strict mode reads them all). */
static int check_run(walk *w, uint32_t first, uint64_t len) {
  lsm_db *db = w->db;
  int rc = lsm__check_run(db, first, len);
  if (rc) {
    complain(w, "run at page %u (%llu bytes) is out of range", first, (unsigned long long)len);
    return rc;
  }
  uint32_t n = lsm__blob_pages(db, len);
  if ((rc = mark(w, first, n))) return rc;
  if (!w->strict) return 0;
  for (uint32_t i = 0; i < n; i++) {
    if ((rc = lsm__read_pages(db, first + i, 1, db->scratch))) {
      complain(w, "page %u of a run: %s", first + i, quire_errmsg());
      return rc;
    }
  }
  return 0;
}

typedef struct sub {
  uint8_t *last; /* out: last key of the subtree (klim bytes) */
  size_t lastlen;
  uint64_t leaves, tombs;
} sub;

static int walk_tree(walk *w, uint32_t pgno, int want, const uint8_t *lo, size_t lol, int has_lo, sub *out) {
  lsm_db *db = w->db;
  lsm_page *pg = NULL;
  int rc = mark(w, pgno, 1);
  if (rc) return rc;
  if ((rc = lsm__page_get(db, pgno, &pg))) {
    complain(w, "page %u: %s", pgno, quire_errmsg());
    return rc;
  }
  lsm_pview v;
  uint8_t *prev = NULL, *key = NULL;
  size_t prevlen = 0;
  int has_prev = has_lo;
  if ((rc = lsm__pview(db, pg->data, &v))) {
    complain(w, "page %u: %s", pgno, quire_errmsg());
    goto out;
  }
  if (want >= 0 && (int)v.depth != want) {
    complain(w, "page %u: depth %u where %d was expected", pgno, v.depth, want);
    rc = QUIRE_ECORRUPT;
    goto out;
  }
  prev = quire__malloc(db->klim + 1);
  key = quire__malloc(db->klim + 1);
  if (!prev || !key) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  if (has_lo) memcpy(prev, lo, lol), prevlen = lol;
  out->leaves = out->tombs = 0;
  for (uint32_t i = 0; i < v.n; i++) {
    lsm_item it;
    if ((rc = lsm__pitem(db, &v, i, &it))) {
      complain(w, "page %u item %u: %s", pgno, i, quire_errmsg());
      goto out;
    }
    size_t kl = (size_t)v.plen + it.slen;
    if (kl > db->klim) {
      complain(w, "page %u item %u: key longer than the limit", pgno, i);
      rc = QUIRE_ECORRUPT;
      goto out;
    }
    memcpy(key, v.prefix, v.plen);
    memcpy(key + v.plen, it.suf, it.slen);
    if (v.type == LSM_PAGE_LEAF) {
      if (w->strict && has_prev && lsm__keycmp(prev, prevlen, key, kl) >= 0) {
        complain(w, "page %u item %u: keys out of order", pgno, i);
        rc = QUIRE_ECORRUPT;
        goto out;
      }
      if (lsm__is_ovf(it.kind) && (rc = check_run(w, it.ovf, lsm__run_bytes(db, it.kind, it.vlen)))) goto out;
      out->tombs += it.kind == LSM_V_TOMB;
    } else {
      sub s = {.last = quire__malloc(db->klim + 1)};
      if (!s.last) {
        rc = QUIRE_ENOMEM;
        goto out;
      }
      rc = walk_tree(w, (uint32_t)it.child, (int)v.depth - 1, prev, prevlen, has_prev, &s);
      if (!rc && w->strict) {
        if (lsm__keycmp(s.last, s.lastlen, key, kl) != 0) {
          complain(w, "page %u item %u: parent key differs from the child's last key", pgno, i);
          rc = QUIRE_ECORRUPT;
        } else if (s.leaves != it.leaves || s.tombs != it.tombs) {
          complain(w, "page %u item %u: counts %llu/%llu, child has %llu/%llu", pgno, i,
                   (unsigned long long)it.leaves, (unsigned long long)it.tombs, (unsigned long long)s.leaves,
                   (unsigned long long)s.tombs);
          rc = QUIRE_ECORRUPT;
        }
      }
      quire__free(s.last);
      if (rc) goto out;
      out->leaves += it.leaves;
      out->tombs += it.tombs;
    }
    memcpy(prev, key, kl);
    prevlen = kl;
    has_prev = 1;
  }
  if (v.type == LSM_PAGE_LEAF) out->leaves = 1;
  memcpy(out->last, prev, prevlen);
  out->lastlen = prevlen;
out:
  quire__free(prev);
  quire__free(key);
  lsm__page_put(db, pg);
  return rc;
}

static int walk_seg(walk *w, const lsm_segdesc *d) {
  int rc = 0;
  if (d->root) {
    sub s = {.last = quire__malloc(w->db->klim + 1)};
    if (!s.last) return QUIRE_ENOMEM;
    rc = walk_tree(w, d->root, -1, NULL, 0, 0, &s);
    quire__free(s.last);
  }
  if (!rc && d->rt_page) {
    rc = check_run(w, d->rt_page, d->rt_len);
    if (!rc && w->strict) {
      lsm_seg *s;
      rc = lsm__seg_load(w->db, d, &s);
      if (rc)
        complain(w, "range tombstones at page %u: %s", d->rt_page, quire_errmsg());
      else
        lsm__seg_unref(w->db, s);
    }
  }
  return rc;
}

int lsm__seg_pages(lsm_db *db, const lsm_segdesc *d, lsm_extv *out) {
  lsm_extv list = {0};
  walk w = {.db = db, .list = &list};
  int rc = walk_seg(&w, d);
  if (!rc && list.n) {
    lsm__extv_sort(&list);
    for (size_t i = 0; i < list.n && !rc; i++) rc = lsm__extv_push(out, list.v[i].start, list.v[i].count);
  }
  lsm__extv_free(&list);
  return rc;
}

int lsm__reachable(lsm_db *db, const lsm_hdr *h, uint8_t **bits, int strict, lsm_report_fn report,
                   void *ctx) {
  uint32_t np = atomic_load(&db->npages);
  uint8_t *b = quire__calloc((size_t)np / 8 + 1, 1);
  if (!b) return QUIRE_ENOMEM;
  walk w = {.db = db, .bits = b, .strict = strict, .report = report, .ctx = ctx};
  b[0] |= 2; /* page 1: the header */
  int rc = mark(&w, h->wal_start, h->wal_pages);
  for (uint32_t i = 0; !rc && i < h->n_in + h->n_wait + h->n_reg; i++) rc = walk_seg(&w, &h->seg[i]);
  if (rc) {
    quire__free(b);
    return rc;
  }
  *bits = b;
  return 0;
}

static int check_locked(lsm_db *db, lsm_report_fn report, void *ctx, lsm_check_counts *cnt);

typedef struct check_sink {
  lsm_db *db;
  lsm_check_result *out;
} check_sink;

static void check_report(void *ctx, const char *msg) {
  check_sink *k = ctx;
  if (!k->out->message[0]) snprintf(k->out->message, sizeof k->out->message, "%s", msg);
  lsm__log(k->db, LSM_LOG_ERROR, "lsm check: %s", msg);
}

int lsm_check(lsm_db *db, lsm_check_result *out) {
  if (!db || !out) return QUIRE_EINVAL;
  memset(out, 0, sizeof *out);
  check_sink k = {db, out};
  lsm_check_counts cnt;
  int rc = lsm__check(db, check_report, &k, &cnt);
  out->pages_total = cnt.total;
  out->pages_header = cnt.header;
  out->pages_log = cnt.log;
  out->pages_segments = cnt.reachable;
  out->pages_free = cnt.free;
  out->pages_limbo = cnt.limbo;
  out->pages_leaked = cnt.leaked;
  out->pages_double = cnt.double_use;
  out->error = rc;
  if (rc && !out->message[0]) snprintf(out->message, sizeof out->message, "%s", quire_errmsg());
  return rc;
}

/* Full check of the open database's durable state and page accounting:
 * every page must be exactly one of header, log, reachable from a segment,
 * or free (the free list, pages freed by the next header, pages in limbo,
 * the saved free-list blob). Returns QUIRE_ECORRUPT if anything is wrong;
 * leaked pages (none of these) are counted, not fatal. */
int lsm__check(lsm_db *db, lsm_report_fn report, void *ctx, lsm_check_counts *cnt) {
  memset(cnt, 0, sizeof *cnt);
  /* merges in flight hold pages that are neither reachable nor free yet:
   * let them finish and hold new ones back while counting */
  lsm__merge_pause(db, 1);
  int rc = check_locked(db, report, ctx, cnt);
  lsm__merge_pause(db, 0);
  return rc;
}

static int check_locked(lsm_db *db, lsm_report_fn report, void *ctx, lsm_check_counts *cnt) {
  pthread_mutex_lock(&db->commit_lock);
  uint8_t *bits = NULL;
  walk w = {.db = db, .report = report, .ctx = ctx};
  int rc = lsm__reachable(db, &db->hdr, &bits, 1, report, ctx);
  if (rc) {
    pthread_mutex_unlock(&db->commit_lock);
    return rc == QUIRE_ENOMEM ? rc : QUIRE_ECORRUPT;
  }
  uint32_t np = atomic_load(&db->npages);
  uint8_t *freebits = quire__calloc((size_t)np / 8 + 1, 1);
  if (!freebits) {
    quire__free(bits);
    pthread_mutex_unlock(&db->commit_lock);
    return QUIRE_ENOMEM;
  }
  uint64_t twice = 0, both = 0;
#define FREE_PAGE(pg)                                                                                        \
  do {                                                                                                       \
    uint64_t p_ = (pg);                                                                                      \
    if (p_ >= np) break;                                                                                     \
    if (bits[p_ >> 3] & (1u << (p_ & 7))) {                                                                  \
      if (both++ < 10) complain(&w, "page %llu is both in use and free", (unsigned long long)p_);            \
    } else if (freebits[p_ >> 3] & (1u << (p_ & 7))) {                                                       \
      if (twice++ < 10) complain(&w, "page %llu is free twice", (unsigned long long)p_);                     \
    }                                                                                                        \
    freebits[p_ >> 3] |= (uint8_t)(1u << (p_ & 7));                                                          \
  } while (0)
  pthread_mutex_lock(&db->lock);
  lsm_extv *lists[2] = {&db->free, &db->pending};
  for (int l = 0; l < 2; l++)
    for (size_t i = 0; i < lists[l]->n; i++)
      for (uint64_t p = lists[l]->v[i].start; p < (uint64_t)lists[l]->v[i].start + lists[l]->v[i].count; p++)
        FREE_PAGE(p);
  for (lsm_limbo *l = db->limbo; l; l = l->next)
    for (size_t i = 0; i < l->pages.n; i++)
      for (uint64_t p = l->pages.v[i].start; p < (uint64_t)l->pages.v[i].start + l->pages.v[i].count; p++) {
        FREE_PAGE(p);
        cnt->limbo += p < np && !(bits[p >> 3] & (1u << (p & 7)));
      }
  pthread_mutex_unlock(&db->lock);
  if (db->hdr.fl_page)
    for (uint64_t p = db->hdr.fl_page; p < (uint64_t)db->hdr.fl_page + lsm__blob_pages(db, db->hdr.fl_len);
         p++)
      FREE_PAGE(p);
#undef FREE_PAGE
  if (twice > 10 || both > 10)
    complain(&w, "(%llu more free-list problems)", (unsigned long long)(twice + both - 20));
  cnt->total = np > 0 ? np - 1 : 0;
  cnt->header = 1;
  cnt->log = db->hdr.wal_pages;
  for (uint32_t p = 2; p < np; p++) {
    int used = !!(bits[p >> 3] & (1u << (p & 7))), fr = !!(freebits[p >> 3] & (1u << (p & 7)));
    if (used && !(p >= db->hdr.wal_start && p < db->hdr.wal_start + db->hdr.wal_pages)) cnt->reachable++;
    if (fr && !used) cnt->free++;
    if (!used && !fr) cnt->leaked++;
  }
  cnt->double_use = twice + both;
  if (cnt->leaked && report) {
    char msg[128];
    snprintf(msg, sizeof msg, "%llu pages are neither reachable nor free (leaked)",
             (unsigned long long)cnt->leaked);
    report(ctx, msg);
  }
  quire__free(bits);
  quire__free(freebits);
  pthread_mutex_unlock(&db->commit_lock);
  return w.errors ? QUIRE_ECORRUPT : 0;
}
