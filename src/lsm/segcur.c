/*
 * lsm/segcur.c — cursors over one source: a segment (B+tree walked through
 * its parent pages, pinned pages on a stack) and the memtable (skiplist at a
 * snapshot sequence). Both implement struct lsm_src for the multi-cursor.
 * Also loads a segment's range tombstones and lists a segment's pages.
 */
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm_int.h"

/* ---- range tombstones -------------------------------------------------- */
int lsm__ranges_cover(const lsm_range *r, size_t n, const uint8_t *k, size_t kl) {
  /* last range with lo <= k */
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (lsm__keycmp(r[mid].lo, r[mid].lol, k, kl) <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) return 0;
  return lsm__keycmp(k, kl, r[lo - 1].hi, r[lo - 1].hil) < 0;
}

static int range_cmp(const void *a, const void *b) {
  const lsm_range *x = a, *y = b;
  return lsm__keycmp(x->lo, x->lol, y->lo, y->lol);
}

size_t lsm__ranges_coalesce(lsm_range *r, size_t k) {
  qsort(r, k, sizeof *r, range_cmp);
  size_t o = 0;
  for (size_t i = 0; i < k; i++) {
    if (o && lsm__keycmp(r[i].lo, r[i].lol, r[o - 1].hi, r[o - 1].hil) <= 0) {
      if (lsm__keycmp(r[i].hi, r[i].hil, r[o - 1].hi, r[o - 1].hil) > 0)
        r[o - 1].hi = r[i].hi, r[o - 1].hil = r[i].hil;
    } else {
      r[o++] = r[i];
    }
  }
  return o;
}

static int parse_ranges(lsm_seg *s) {
  const uint8_t *p = s->range_blob, *end = p + s->d.rt_len;
  if (s->d.rt_len < 4) return QUIRE_ECORRUPT;
  uint32_t n = ld_le32(p);
  p += 4;
  if (n == 0 || n > s->d.rt_len / 2) return QUIRE_ECORRUPT;
  s->ranges = quire__calloc(n, sizeof *s->ranges);
  if (!s->ranges) return QUIRE_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t l;
    int c = quire__varint_get(p, (size_t)(end - p), &l);
    if (c < 0 || l > (uint64_t)(end - p - c)) return QUIRE_ECORRUPT;
    p += c;
    s->ranges[i].lo = p, s->ranges[i].lol = (uint32_t)l;
    p += l;
    c = quire__varint_get(p, (size_t)(end - p), &l);
    if (c < 0 || l > (uint64_t)(end - p - c)) return QUIRE_ECORRUPT;
    p += c;
    s->ranges[i].hi = p, s->ranges[i].hil = (uint32_t)l;
    p += l;
    if (lsm__keycmp(s->ranges[i].lo, s->ranges[i].lol, s->ranges[i].hi, s->ranges[i].hil) >= 0)
      return QUIRE_ECORRUPT;
    if (i && lsm__keycmp(s->ranges[i - 1].hi, s->ranges[i - 1].hil, s->ranges[i].lo, s->ranges[i].lol) > 0)
      return QUIRE_ECORRUPT;
  }
  if (p != end) return QUIRE_ECORRUPT;
  s->nranges = n;
  return 0;
}

/* Copies the key of item i of page v into a fresh allocation. */
static int item_key(lsm_db *db, const lsm_pview *v, uint32_t i, uint8_t **out, uint32_t *len) {
  lsm_item it;
  int rc = lsm__pitem(db, v, i, &it);
  if (rc) return rc;
  size_t kl = (size_t)v->plen + it.slen;
  if (kl > db->klim) return quire__err(QUIRE_ECORRUPT, "lsm: key longer than the limit");
  uint8_t *k = quire__malloc(kl + 1);
  if (!k) return QUIRE_ENOMEM;
  memcpy(k, v->prefix, v->plen);
  memcpy(k + v->plen, it.suf, it.slen);
  *out = k;
  *len = (uint32_t)kl;
  return 0;
}

/* Leaf/tombstone counts, depth, first and last key: from the root's items and
 * the leftmost path (depth + 1 page reads, mostly cached). */
static int seg_meta(lsm_db *db, lsm_seg *s) {
  lsm_page *pg = NULL;
  lsm_pview v;
  int rc = lsm__page_get(db, s->d.root, &pg);
  if (rc) return rc;
  if ((rc = lsm__pview(db, pg->data, &v))) goto out;
  s->depth = v.depth;
  if (v.type == LSM_PAGE_LEAF) {
    s->leaves = 1;
    for (uint32_t i = 0; i < v.n && !rc; i++) {
      lsm_item it;
      rc = lsm__pitem(db, &v, i, &it);
      if (!rc) s->tombs += it.kind == LSM_V_TOMB;
    }
  } else {
    for (uint32_t i = 0; i < v.n && !rc; i++) {
      lsm_item it;
      rc = lsm__pitem(db, &v, i, &it);
      if (!rc) s->leaves += it.leaves, s->tombs += it.tombs;
    }
  }
  if (!rc) rc = item_key(db, &v, v.n - 1, &s->maxkey, &s->maxlen);
  /* down the leftmost path to the first key */
  for (int guard = 0; !rc && v.type == LSM_PAGE_PARENT; guard++) {
    lsm_item it;
    uint32_t want = v.depth - 1;
    if (guard > LSM_MAX_DEPTH) rc = quire__err(QUIRE_ECORRUPT, "lsm: tree too deep");
    if (!rc) rc = lsm__pitem(db, &v, 0, &it);
    if (rc) break;
    lsm__page_put(db, pg);
    pg = NULL;
    if ((rc = lsm__page_get(db, (uint32_t)it.child, &pg))) break;
    if ((rc = lsm__pview(db, pg->data, &v))) break;
    if (v.depth != want)
      rc = quire__err(QUIRE_ECORRUPT, "lsm: page %u at the wrong depth", (unsigned)it.child);
  }
  if (!rc) rc = item_key(db, &v, 0, &s->minkey, &s->minlen);
out:
  lsm__page_put(db, pg);
  return rc;
}

int lsm__seg_load(lsm_db *db, const lsm_segdesc *d, lsm_seg **out) {
  lsm_seg *s = quire__calloc(1, sizeof *s);
  if (!s) return QUIRE_ENOMEM;
  atomic_init(&s->refs, 1);
  s->d = *d;
  int rc = 0;
  if (d->rt_page) {
    if ((rc = lsm__check_run(db, d->rt_page, d->rt_len))) goto fail;
    s->range_blob = quire__malloc(d->rt_len);
    if (!s->range_blob) {
      rc = QUIRE_ENOMEM;
      goto fail;
    }
    if ((rc = lsm__blob_read(db, d->rt_page, 0, s->range_blob, d->rt_len))) goto fail;
    rc = parse_ranges(s);
    if (rc == QUIRE_ECORRUPT) rc = quire__err(rc, "lsm: malformed range tombstones at page %u", d->rt_page);
    if (rc) goto fail;
  }
  if (d->root && (rc = seg_meta(db, s))) goto fail;
  *out = s;
  return 0;
fail:
  quire__free(s->ranges);
  quire__free(s->range_blob);
  quire__free(s->minkey);
  quire__free(s->maxkey);
  quire__free(s);
  return rc;
}

/* Drops a reference; the last one frees the object. (Pages are freed by the
 * merges that stop reaching them, through the db's limbo lists.) */
void lsm__seg_unref(lsm_db *db, lsm_seg *s) {
  (void)db;
  if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
  lsm__extv_free(&s->pages);
  quire__free(s->ranges);
  quire__free(s->range_blob);
  quire__free(s->minkey);
  quire__free(s->maxkey);
  quire__free(s);
}

/* ---- segment cursor ---------------------------------------------------- */
typedef lsm_segcur segcur;

static void sc_drop_from(segcur *c, int lvl) {
  for (int i = lvl; i < c->nst; i++) {
    lsm__page_put(c->db, c->st[i].pg);
    c->st[i].pg = NULL;
  }
  if (c->nst > lvl) c->nst = lvl;
}

static void sc_invalidate(segcur *c) {
  sc_drop_from(c, 0);
  c->base.valid = 0;
}

/* Loads page pgno at stack level lvl, expecting a parent of depth want
 * (0 = a leaf). */
static int sc_load(segcur *c, int lvl, uint32_t pgno, int want) {
  lsm_page *pg;
  if (lvl > LSM_MAX_DEPTH) return quire__err(QUIRE_ECORRUPT, "lsm: tree too deep");
  int rc = lsm__page_get(c->db, pgno, &pg);
  if (rc) return rc;
  lsm_pview v;
  if ((rc = lsm__pview(c->db, pg->data, &v))) goto bad;
  if (want >= 0 && (int)v.depth != want) {
    rc = quire__err(QUIRE_ECORRUPT, "lsm: page %u has depth %u, expected %d", pgno, v.depth, want);
    goto bad;
  }
  c->st[lvl].pg = pg;
  c->st[lvl].v = v;
  c->st[lvl].idx = 0;
  c->nst = lvl + 1;
  return 0;
bad:
  lsm__page_put(c->db, pg);
  return rc;
}

/* Fills base from the leaf item at the top of the stack. */
static int sc_fill(segcur *c) {
  lsm_item it;
  int lvl = c->nst - 1;
  int rc = lsm__pitem(c->db, &c->st[lvl].v, c->st[lvl].idx, &it);
  if (rc) return rc;
  size_t kl = (size_t)c->st[lvl].v.plen + it.slen;
  if (kl > c->db->klim) return quire__err(QUIRE_ECORRUPT, "lsm: key longer than the limit");
  memcpy(c->kbuf, c->st[lvl].v.prefix, c->st[lvl].v.plen);
  memcpy(c->kbuf + c->st[lvl].v.plen, it.suf, it.slen);
  c->base.key = c->kbuf;
  c->base.klen = kl;
  c->base.kind = it.kind;
  c->base.val = it.kind == LSM_V_INLINE || it.kind == LSM_V_SPLIT ? it.val : NULL;
  c->base.vlen = it.vlen;
  c->base.ovf = it.ovf;
  c->base.seq = LSM_SEQ_OWN;
  c->base.valid = 1;
  return 0;
}

/* Descends from stack level lvl (already loaded, idx set) to a leaf, taking
 * the first (dir > 0) or last (dir < 0) child at each lower level. */
static int sc_descend(segcur *c, int lvl, int dir) {
  int rc;
  for (;;) {
    lsm_pview *v = &c->st[lvl].v;
    if (v->type == LSM_PAGE_LEAF) return sc_fill(c);
    lsm_item it;
    if ((rc = lsm__pitem(c->db, v, c->st[lvl].idx, &it))) return rc;
    if ((rc = sc_load(c, lvl + 1, (uint32_t)it.child, (int)v->depth - 1))) return rc;
    lvl++;
    c->st[lvl].idx = dir > 0 ? 0 : c->st[lvl].v.n - 1;
  }
}

static int sc_edge(lsm_src *s, int dir) {
  segcur *c = (segcur *)s;
  sc_invalidate(c);
  if (!c->seg->d.root) return 0;
  int rc = sc_load(c, 0, c->seg->d.root, -1);
  if (rc) return rc;
  c->st[0].idx = dir > 0 ? 0 : c->st[0].v.n - 1;
  rc = sc_descend(c, 0, dir);
  if (rc) sc_invalidate(c);
  return rc;
}

static int sc_first(lsm_src *s) { return sc_edge(s, 1); }
static int sc_last(lsm_src *s) { return sc_edge(s, -1); }

static int sc_step(lsm_src *s, int dir) {
  segcur *c = (segcur *)s;
  if (!c->base.valid) return 0;
  int lvl = c->nst - 1;
  while (lvl >= 0) {
    uint32_t idx = c->st[lvl].idx;
    if (dir > 0 ? idx + 1 < c->st[lvl].v.n : idx > 0) break;
    lvl--;
  }
  if (lvl < 0) {
    sc_invalidate(c);
    return 0;
  }
  sc_drop_from(c, lvl + 1);
  c->st[lvl].idx += dir > 0 ? 1 : (uint32_t)-1;
  int rc = sc_descend(c, lvl, dir);
  if (rc) sc_invalidate(c);
  return rc;
}

static int sc_next(lsm_src *s) { return sc_step(s, 1); }
static int sc_prev(lsm_src *s) { return sc_step(s, -1); }

static int sc_seek(lsm_src *s, const uint8_t *k, size_t kl, int ge) {
  segcur *c = (segcur *)s;
  sc_invalidate(c);
  if (!c->seg->d.root) return 0;
  int rc = sc_load(c, 0, c->seg->d.root, -1);
  int lvl = 0;
  while (!rc) {
    uint32_t idx;
    int eq;
    if ((rc = lsm__psearch(c->db, &c->st[lvl].v, k, kl, &idx, &eq))) break;
    if (idx == c->st[lvl].v.n) {
      /* k is past every key here */
      if (lvl == 0 || c->st[lvl].v.type == LSM_PAGE_LEAF) {
        c->st[lvl].idx = c->st[lvl].v.n - 1;
        rc = sc_descend(c, lvl, -1);
        if (!rc && ge) rc = sc_next(s); /* moves past the end (or on, if the parent lied) */
        goto done;
      }
      idx = c->st[lvl].v.n - 1; /* a parent whose key was too low: take the last child */
    }
    c->st[lvl].idx = idx;
    if (c->st[lvl].v.type == LSM_PAGE_LEAF) {
      rc = sc_fill(c);
      if (!rc && !ge && !eq) rc = sc_prev(s);
      goto done;
    }
    lsm_item it;
    if ((rc = lsm__pitem(c->db, &c->st[lvl].v, idx, &it))) break;
    rc = sc_load(c, lvl + 1, (uint32_t)it.child, (int)c->st[lvl].v.depth - 1);
    lvl++;
  }
done:
  if (rc) sc_invalidate(c);
  return rc;
}

static int sc_covers(lsm_src *s, const uint8_t *k, size_t kl, uint64_t seq) {
  segcur *c = (segcur *)s;
  if (seq == LSM_SEQ_OWN || !c->seg->nranges) return 0; /* a segment's points beat its own ranges */
  return lsm__ranges_cover(c->seg->ranges, c->seg->nranges, k, kl);
}

static int sc_value(lsm_src *s, uint64_t off, uint8_t *buf, size_t n) {
  segcur *c = (segcur *)s;
  return lsm__value_read(c->db, c->base.kind, c->base.ovf, c->base.val, c->base.vlen, off, buf, n);
}

static void sc_close(lsm_src *s) {
  segcur *c = (segcur *)s;
  if (!c) return;
  sc_invalidate(c);
  lsm__seg_unref(c->db, c->seg);
  quire__free(c->kbuf);
  quire__free(c);
}

static const struct lsm_src_ops sc_ops = {sc_first, sc_last,   sc_next,  sc_prev,
                                          sc_seek,  sc_covers, sc_value, sc_close};

void lsm__segcur_init(lsm_segcur *c, lsm_db *db, lsm_seg *seg, uint8_t *kbuf) {
  memset(c, 0, sizeof *c);
  c->base.ops = &sc_ops;
  c->db = db;
  c->seg = seg;
  c->kbuf = kbuf;
}

void lsm__segcur_fini(lsm_segcur *c) { sc_invalidate(c); }

/* Takes a new reference on seg. */
int lsm__segcur_open(lsm_db *db, lsm_seg *seg, lsm_src **out) {
  segcur *c = quire__calloc(1, sizeof *c);
  uint8_t *kbuf = quire__malloc(db->klim + 1);
  if (!c || !kbuf) {
    quire__free(c);
    quire__free(kbuf);
    return QUIRE_ENOMEM;
  }
  lsm__segcur_init(c, db, seg, kbuf);
  atomic_fetch_add(&seg->refs, 1);
  *out = &c->base;
  return 0;
}

/* ---- memtable cursor --------------------------------------------------- */
typedef struct memcur {
  lsm_src base;
  lsm_mem *m;
  uint64_t snap;
  lsm_mnode *n;
} memcur;

static void mc_set(memcur *c, lsm_mnode *n) {
  c->n = n;
  c->base.valid = n != NULL;
  if (!n) return;
  c->base.key = n->key;
  c->base.klen = n->klen;
  c->base.kind = n->kind;
  c->base.val = n->val;
  c->base.vlen = n->vlen;
  c->base.ovf = 0;
  c->base.seq = n->seq;
}

static lsm_mnode *mc_visible_fwd(memcur *c, lsm_mnode *n) { return lsm__mem_visible(n, c->snap); }

static int mc_first(lsm_src *s) {
  memcur *c = (memcur *)s;
  mc_set(c, mc_visible_fwd(c, lsm__mem_seek(c->m, NULL, 0, c->snap)));
  return 0;
}

static int mc_next(lsm_src *s) {
  memcur *c = (memcur *)s;
  if (!c->n) return 0;
  lsm_mnode *n = lsm__mnext(c->n);
  while (n && lsm__keycmp(n->key, n->klen, c->n->key, c->n->klen) == 0) n = lsm__mnext(n);
  mc_set(c, mc_visible_fwd(c, n));
  return 0;
}

static lsm_mnode *mc_before(memcur *c, const uint8_t *k, size_t kl, int has_k) {
  return lsm__mem_before(c->m, has_k ? k : NULL, kl, c->snap);
}

static int mc_last(lsm_src *s) {
  memcur *c = (memcur *)s;
  mc_set(c, mc_before(c, NULL, 0, 0));
  return 0;
}

static int mc_prev(lsm_src *s) {
  memcur *c = (memcur *)s;
  if (!c->n) return 0;
  mc_set(c, mc_before(c, c->n->key, c->n->klen, 1));
  return 0;
}

static int mc_seek(lsm_src *s, const uint8_t *k, size_t kl, int ge) {
  memcur *c = (memcur *)s;
  lsm_mnode *n = mc_visible_fwd(c, lsm__mem_seek(c->m, k, kl, c->snap));
  if (ge) {
    mc_set(c, n);
    return 0;
  }
  if (n && lsm__keycmp(n->key, n->klen, k, kl) == 0) {
    mc_set(c, n);
    return 0;
  }
  mc_set(c, mc_before(c, k, kl, 1));
  return 0;
}

static int mc_covers(lsm_src *s, const uint8_t *k, size_t kl, uint64_t seq) {
  memcur *c = (memcur *)s;
  return lsm__mem_covered(c->m, k, kl, seq, c->snap);
}

static int mc_value(lsm_src *s, uint64_t off, uint8_t *buf, size_t n) {
  memcur *c = (memcur *)s;
  if (!c->n || off + n > c->n->vlen) return QUIRE_EINVAL;
  memcpy(buf, c->n->val + off, n);
  return 0;
}

static void mc_close(lsm_src *s) {
  memcur *c = (memcur *)s;
  if (!c) return;
  lsm__mem_unref(c->m);
  quire__free(c);
}

static const struct lsm_src_ops mc_ops = {mc_first, mc_last,   mc_next,  mc_prev,
                                          mc_seek,  mc_covers, mc_value, mc_close};

/* Takes a reference on m. */
int lsm__memcur_open(lsm_mem *m, uint64_t snap, lsm_src **out) {
  memcur *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  c->base.ops = &mc_ops;
  c->m = m;
  c->snap = snap;
  lsm__mem_ref(m);
  *out = &c->base;
  return 0;
}
