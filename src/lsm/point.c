/*
 * lsm/point.c — point reads: lsm_get (the newest version of one key, source
 * by source, newest first) and the nearest entry (lsm_get_seek,
 * lsm_txn_get_seek): the largest live key <= k or the smallest >= k and its
 * value, without building a cursor. The client reads pages this way: keys
 * end in a big-endian LSN, and "the newest version at or below lsn" is a
 * seek LE.
 *
 * Each round asks every source (newest first: a transaction's buffer and
 * pending segments, the memtable, the segments) for its nearest key within
 * its bound, takes the nearest of all (on a tie the newest source holds
 * it), and checks whether that entry is live: not a tombstone, not covered
 * by a range delete of a newer source (or, in a memtable, by a newer range of
 * its own). If it is deleted, the next round excludes it from every source;
 * when a range [lo, hi) deleted it, the sources older than the range's skip
 * the whole range at once (LE: below lo; GE: from hi on). Bounds only
 * tighten, so the rounds end. Memory: one key buffer for the best entry,
 * one for the last rejected key and one for segment cursors, on the stack
 * for page sizes up to 4 KiB (heap beyond); segment cursors live on the
 * stack and pin at most the current path; the best entry's leaf stays
 * pinned until its value is taken (lsm_get's value rules).
 */
#include <string.h>

#include "lsm/lsm_int.h"

typedef lsm_bound bound;

/* 1 if b is tighter than a in direction op (LE: smaller; GE: larger; at
 * equal keys an exclusive bound is the tighter). */
static int tighter(const bound *a, const bound *b, int op) {
  int c = lsm__keycmp(b->k, b->kl, a->k, a->kl);
  if (c == 0) return a->incl && !b->incl;
  return op == LSM_SEEK_LE ? c < 0 : c > 0;
}

/* The best entry so far. */
typedef struct best {
  int src; /* -1: none */
  size_t kl;
  int kind;
  const uint8_t *val; /* memtable value, or the inline value / split tail in page */
  uint64_t vlen;
  uint32_t ovf;
  uint64_t seq; /* memtable version */
  lsm_page *pg; /* segment entries: its leaf, pinned */
  lsm_mnode *node;
} best;

static void best_drop(lsm_db *db, best *b) {
  lsm__page_put(db, b->pg);
  b->pg = NULL;
  b->src = -1;
}

/* Is key k of source `at` live? 0 live, 1 deleted (*r = the range that
 * covers it and *rsrc its source, or *rsrc = -1 for a tombstone). */
static int deleted(const lsm_point_src *s, int at, const best *b, const uint8_t *k, size_t kl, lsm_range *r,
                   int *rsrc) {
  *rsrc = -1;
  if (b->kind == LSM_V_TOMB) return 1;
  for (int j = 0; j <= at; j++) {
    if (s[j].m) {
      /* a memtable's ranges hide older sources, and its own older versions */
      const lsm_mrange *mr = lsm__mem_covering(s[j].m, k, kl, j == at ? b->seq : 0, s[j].snap);
      if (mr) {
        *r = mr->r;
        *rsrc = j;
        return 1;
      }
    } else if (j < at && s[j].seg->nranges) {
      /* a segment's ranges hide older sources only */
      const lsm_seg *g = s[j].seg;
      size_t lo = 0, hi = g->nranges;
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (lsm__keycmp(g->ranges[mid].lo, g->ranges[mid].lol, k, kl) <= 0)
          lo = mid + 1;
        else
          hi = mid;
      }
      if (lo && lsm__keycmp(k, kl, g->ranges[lo - 1].hi, g->ranges[lo - 1].hil) < 0) {
        *r = g->ranges[lo - 1];
        *rsrc = j;
        return 1;
      }
    }
  }
  return 0;
}

/* Fills out with the value of b (pins move into it). */
static int take_value(lsm_db *db, const lsm_point_src *s, best *b, lsm_value *out) {
  memset(out, 0, sizeof *out);
  if (s[b->src].m) {
    out->data = b->vlen ? b->val : (const void *)"";
    out->len = b->vlen;
    out->pin_[0] = s[b->src].m;
    lsm__mem_ref(s[b->src].m);
    return 0;
  }
  if (b->kind == LSM_V_INLINE) {
    out->data = b->vlen ? b->val : (const void *)"";
    out->len = b->vlen;
    out->pin_[0] = b->pg;
    out->pin_[1] = db;
    b->pg = NULL;
    return 0;
  }
  uint8_t *heap = quire__malloc(b->vlen ? b->vlen : 1);
  if (!heap) return QUIRE_ENOMEM;
  int rc = lsm__value_read(db, b->kind, b->ovf, b->val, b->vlen, 0, heap, b->vlen);
  if (rc) {
    quire__free(heap);
    return rc;
  }
  out->data = heap;
  out->len = b->vlen;
  out->pin_[2] = heap;
  return 0;
}

#define STACK_KEY 1024 /* keys of 4 KiB pages (limit 1006) fit on the stack */

int lsm__point_seek(lsm_db *db, lsm_point_src *s, size_t n, const void *key, size_t klen, int op,
                    void *keybuf, size_t keycap, size_t *klen_out, lsm_value *out) {
  uint8_t stackbuf[3 * STACK_KEY];
  size_t kcap = (size_t)db->klim + 1;
  uint8_t *mem = kcap <= STACK_KEY ? stackbuf : quire__malloc(3 * kcap);
  if (!mem) return QUIRE_ENOMEM;
  uint8_t *bestkey = mem, *lastkey = mem + kcap, *curkey = mem + 2 * kcap;
  for (size_t i = 0; i < n; i++) s[i].b = (bound){key, klen, 1};
  best b = {.src = -1};
  int rc = 0;
  for (;;) {
    b.src = -1;
    b.kl = 0;
    for (size_t i = 0; i < n && !rc; i++) {
      const uint8_t *ck;
      size_t ckl;
      if (s[i].m) {
        lsm_mnode *nd = lsm__mem_near(s[i].m, s[i].b.k, s[i].b.kl, op, s[i].b.incl, s[i].snap);
        if (!nd) continue;
        ck = nd->key, ckl = nd->klen;
        int c = b.src < 0 ? 0 : lsm__keycmp(ck, ckl, bestkey, b.kl);
        if (b.src >= 0 && (op == LSM_SEEK_LE ? c <= 0 : c >= 0)) continue;
        best_drop(db, &b);
        b = (best){(int)i, ckl, nd->kind, nd->val, nd->vlen, 0, nd->seq, NULL, nd};
        memcpy(bestkey, ck, ckl);
        continue;
      }
      if (!s[i].seg->d.root) continue;
      lsm_segcur c;
      lsm__segcur_init(&c, db, s[i].seg, curkey);
      lsm_src *src = &c.base;
      rc = src->ops->seek(src, s[i].b.k, s[i].b.kl, op == LSM_SEEK_GE);
      if (!rc && src->valid && !s[i].b.incl && lsm__keycmp(src->key, src->klen, s[i].b.k, s[i].b.kl) == 0)
        rc = op == LSM_SEEK_GE ? src->ops->next(src) : src->ops->prev(src);
      if (!rc && src->valid) {
        int cmp = b.src < 0 ? 0 : lsm__keycmp(src->key, src->klen, bestkey, b.kl);
        if (b.src < 0 || (op == LSM_SEEK_LE ? cmp > 0 : cmp < 0)) {
          best_drop(db, &b);
          lsm_page *leaf = c.st[c.nst - 1].pg;
          lsm__page_ref(db, leaf);
          b = (best){(int)i, src->klen, src->kind, src->val, src->vlen, src->ovf, LSM_SEQ_OWN, leaf, NULL};
          memcpy(bestkey, src->key, src->klen);
        }
      }
      lsm__segcur_fini(&c);
    }
    if (rc) break;
    if (b.src < 0) {
      rc = QUIRE_ENOTFOUND;
      break;
    }
    lsm_range r = {NULL, NULL, 0, 0};
    int rsrc;
    if (!deleted(s, b.src, &b, bestkey, b.kl, &r, &rsrc)) break;
    /* excluded from every source from now on; past the covering range from
     * the sources it hides */
    memcpy(lastkey, bestkey, b.kl);
    bound past = {lastkey, b.kl, 0};
    bound skip = op == LSM_SEEK_LE ? (bound){r.lo, r.lol, 0} : (bound){r.hi, r.hil, 1};
    for (size_t i = 0; i < n; i++) {
      /* a bound at the previous rejected key (whose bytes were just
       * replaced) becomes the new one, which is nearer than it */
      if (s[i].b.k == lastkey || tighter(&s[i].b, &past, op)) s[i].b = past;
      if (rsrc >= 0 && (int)i > rsrc && tighter(&s[i].b, &skip, op)) s[i].b = skip;
    }
    best_drop(db, &b);
  }
  if (!rc) {
    *klen_out = b.kl;
    if (b.kl > keycap) {
      rc = quire__err(QUIRE_ETOOLARGE, "lsm: the key found has %zu bytes, the buffer %zu", b.kl, keycap);
    } else {
      if (b.kl) memcpy(keybuf, bestkey, b.kl);
      rc = take_value(db, s, &b, out);
    }
  }
  best_drop(db, &b);
  if (mem != stackbuf) quire__free(mem);
  return rc;
}

/* ---- point reads ------------------------------------------------------- */
void lsm_value_release(lsm_value *v) {
  if (!v) return;
  if (v->pin_[0]) {
    if (v->pin_[1])
      lsm__page_put((lsm_db *)v->pin_[1], (lsm_page *)v->pin_[0]);
    else
      lsm__mem_unref((lsm_mem *)v->pin_[0]);
  }
  quire__free(v->pin_[2]);
  memset(v, 0, sizeof *v);
}

/* Point lookup in one segment: 1 found (out filled, kind in *kind), 0 not. */
int lsm__seg_get(lsm_db *db, lsm_seg *s, const uint8_t *k, size_t kl, lsm_value *out, int *kind) {
  uint32_t pgno = s->d.root;
  int want = -1;
  if (!pgno) return 0;
  for (int lvl = 0; lvl <= LSM_MAX_DEPTH; lvl++) {
    lsm_page *pg;
    int rc = lsm__page_get(db, pgno, &pg);
    if (rc) return rc;
    lsm_pview v;
    uint32_t idx;
    int eq;
    lsm_item it;
    if ((rc = lsm__pview(db, pg->data, &v))) goto done;
    if (want >= 0 && (int)v.depth != want) {
      rc = quire__err(QUIRE_ECORRUPT, "lsm: page %u at the wrong depth", pgno);
      goto done;
    }
    if ((rc = lsm__psearch(db, &v, k, kl, &idx, &eq))) goto done;
    if (idx == v.n || (v.type == LSM_PAGE_LEAF && !eq)) goto done; /* rc 0: absent */
    if ((rc = lsm__pitem(db, &v, idx, &it))) goto done;
    if (v.type == LSM_PAGE_PARENT) {
      pgno = (uint32_t)it.child;
      want = (int)v.depth - 1;
      lsm__page_put(db, pg);
      continue;
    }
    *kind = it.kind;
    if (it.kind == LSM_V_TOMB) goto done_found;
    if (it.kind == LSM_V_INLINE) {
      out->data = it.vlen ? it.val : (const void *)"";
      out->len = it.vlen;
      out->pin_[0] = pg;
      out->pin_[1] = db;
      return 1;
    }
    {
      uint8_t *heap = quire__malloc(it.vlen);
      if (!heap) {
        rc = QUIRE_ENOMEM;
        goto done;
      }
      rc = lsm__value_read(db, it.kind, it.ovf, it.val, it.vlen, 0, heap, it.vlen);
      if (rc) {
        quire__free(heap);
        goto done;
      }
      out->data = heap;
      out->len = it.vlen;
      out->pin_[2] = heap;
    }
  done_found:
    lsm__page_put(db, pg);
    return 1;
  done:
    lsm__page_put(db, pg);
    return rc;
  }
  return quire__err(QUIRE_ECORRUPT, "lsm: tree too deep");
}

int lsm__mem_get(lsm_mem *m, uint64_t snap, const uint8_t *k, size_t kl, lsm_value *out, int *kind) {
  lsm_mnode *n = lsm__mem_find(m, k, kl, snap);
  if (!n) return 0;
  if (lsm__mem_covered(m, k, kl, n->seq, snap)) {
    *kind = LSM_V_TOMB;
    return 1;
  }
  *kind = n->kind;
  if (n->kind == LSM_V_TOMB) return 1;
  out->data = n->vlen ? n->val : (const void *)"";
  out->len = n->vlen;
  out->pin_[0] = m;
  lsm__mem_ref(m);
  return 1;
}

/* Looks k up in version v at snap, after the sources in front (a txn). */
int lsm__version_get(lsm_db *db, lsm_version *v, uint64_t snap, const uint8_t *k, size_t kl, lsm_value *out) {
  int kind = LSM_V_TOMB, rc;
  memset(out, 0, sizeof *out);
  rc = lsm__mem_get(v->mem, snap, k, kl, out, &kind);
  if (rc < 0) return rc;
  if (rc == 0 && lsm__mem_covered(v->mem, k, kl, 0, snap)) return QUIRE_ENOTFOUND;
  for (uint32_t i = 0; rc == 0 && i < lsm__vcount(v); i++) {
    lsm_seg *s = v->segs[i];
    if (!s) continue;
    rc = lsm__seg_get(db, s, k, kl, out, &kind);
    if (rc < 0) return rc;
    if (rc == 0 && s->nranges && lsm__ranges_cover(s->ranges, s->nranges, k, kl)) return QUIRE_ENOTFOUND;
  }
  if (rc == 0 || kind == LSM_V_TOMB) {
    lsm_value_release(out);
    return QUIRE_ENOTFOUND;
  }
  return 0;
}

int lsm_get(lsm_db *db, const void *key, size_t klen, lsm_value *out) {
  if (!db || !out || (!key && klen)) return QUIRE_EINVAL;
  memset(out, 0, sizeof *out);
  if (klen > db->klim) return QUIRE_ENOTFOUND;
  uint64_t snap;
  lsm_version *v = lsm__pin(db, &snap);
  int rc = lsm__version_get(db, v, snap, key, klen, out);
  lsm__version_unref(db, v);
  return rc;
}

/* Adds the sources of version v at snap (memtable, then segments) to s. */
size_t lsm__point_sources(lsm_version *v, uint64_t snap, lsm_point_src *s, size_t n) {
  s[n++] = (lsm_point_src){.m = v->mem, .snap = snap};
  for (uint32_t i = 0; i < lsm__vcount(v); i++)
    if (v->segs[i]) s[n++] = (lsm_point_src){.seg = v->segs[i]};
  return n;
}

/* EQ: the key itself, as lsm_get finds it. */
int lsm__seek_eq(int rc, const void *key, size_t klen, void *keybuf, size_t keycap, size_t *klen_out,
                 lsm_value *out) {
  if (rc) return rc;
  *klen_out = klen;
  if (klen > keycap) {
    lsm_value_release(out);
    return quire__err(QUIRE_ETOOLARGE, "lsm: the key found has %zu bytes, the buffer %zu", klen, keycap);
  }
  if (klen) memcpy(keybuf, key, klen);
  return 0;
}

int lsm__seek_args(const void *key, size_t klen, int op, const void *keybuf, size_t keycap,
                   const size_t *klen_out, const lsm_value *out) {
  if (!out || !klen_out || (!key && klen) || (!keybuf && keycap)) return QUIRE_EINVAL;
  if (op != LSM_SEEK_EQ && op != LSM_SEEK_LE && op != LSM_SEEK_GE) return QUIRE_EINVAL;
  return 0;
}

int lsm_get_seek(lsm_db *db, const void *key, size_t klen, int op, void *keybuf, size_t keycap,
                 size_t *klen_out, lsm_value *out) {
  int rc = db ? lsm__seek_args(key, klen, op, keybuf, keycap, klen_out, out) : QUIRE_EINVAL;
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  *klen_out = 0;
  if (op == LSM_SEEK_EQ)
    return lsm__seek_eq(lsm_get(db, key, klen, out), key, klen, keybuf, keycap, klen_out, out);
  uint64_t snap;
  lsm_version *v = lsm__pin(db, &snap);
  lsm_point_src s[LSM_MAX_SEGS + 1];
  size_t n = lsm__point_sources(v, snap, s, 0);
  rc = lsm__point_seek(db, s, n, key, klen, op, keybuf, keycap, klen_out, out);
  lsm__version_unref(db, v);
  return rc;
}
