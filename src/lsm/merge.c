/*
 * lsm/merge.c — the partial merge: a window of the source segment S's leaves
 * is promoted into the destination D (the next level), rewriting only what
 * overlaps and recycling every other subtree by reference.
 *
 *   1. Window: about in->window contiguous leaves of S, found through S's
 *      parent pages alone (their items name the leaves, their last keys and
 *      counts): around the leaf richest in tombstones if S has any, else from
 *      the compaction pointer (wrapping to the first leaf). The whole of S is
 *      promoted when the window covers it, when S has range tombstones, or
 *      when S has no tree. The window is the key span (slo, hi]: slo is the
 *      last key of the leaf before the window (none: from the start), hi the
 *      last key of the window's last leaf. M = the entries in that span of S
 *      and of the newer sources in->newer (a Waiting pass's batch), read with
 *      one segment cursor each and merged, the newest winning (an older
 *      version disappears: its overflow run is freed).
 *   2. D' = D's tree walked from the root, M merged in. A child subtree
 *      (parent items give its page, last key and counts; its keys are above
 *      the previous sibling's last key) that holds no entry of M and meets no
 *      range tombstone of S is recycled whole, unless it is on D's right edge
 *      (always descended: no thin, deep right edges) or recycling it now
 *      would write a pending page below half full (lsm__build_clean); then it
 *      is descended into, and leaves are streamed merged with M. Every page
 *      descended into or streamed is freed. While copying a page's items,
 *      lsm__build_split starts a new page early when the pending one and the
 *      rest of the page would not fit together but each fills half a page,
 *      so that recycling resumes right after the rewritten region.
 *   3. S' = the same walk over S removing the window (and likewise each
 *      newer source): subtrees inside the window are freed page by page
 *      (leaves unread: their entries moved), the rest recycled or streamed
 *      by the same rules.
 *
 * Entries: M wins over D on equal keys (the shadowed entry's overflow run is
 * freed); D entries under S's range tombstones are dropped; a point tombstone
 * written to D' is dropped when no older segment's key span holds its key.
 * Overflow values move by reference. D' keeps D's ranges plus S's, or none
 * when nothing older exists at all. Old pages are only read, never changed.
 */
#include <string.h>

#include "lsm/lsm_int.h"

typedef struct bound {
  const uint8_t *k;
  size_t kl;
  int has, incl; /* keys > k (>= k when incl); !has: no bound */
} bound;

typedef struct mctx {
  lsm_db *db;
  const lsm_merge_in *in;
  lsm_merge_out *out;
  /* S side: the window (slo, shi]; !has_slo: from the start, !has_shi: to the end */
  uint8_t *slo, *shi;
  uint32_t slol, shil;
  int has_slo, has_shi;
  lsm_src *m; /* M's current entry: the winning cursor of ms[], valid while mvalid */
  int mvalid;
  lsm_src *ms[LSM_MAX_BATCH];   /* cursors of the promoted sources, newest first (S last) */
  uint32_t mord[LSM_MAX_BATCH]; /* each cursor's source: index into bsrc */
  uint32_t nm;
  lsm_seg *bsrc[LSM_MAX_BATCH]; /* the promoted sources, newest first (S last) */
  uint32_t nb;
  const lsm_range *sr; /* S's ranges applied to D's entries */
  size_t nsr;
} mctx;

typedef struct side {
  mctx *c;
  lsm_builder *b;
  int dst; /* 1: building D' (merging M in); 0: building S' (removing the window) */
} side;

enum { POS_BEFORE, POS_AFTER, POS_INSIDE, POS_OVERLAP };

static int dup_key(const uint8_t *k, size_t kl, uint8_t **out, uint32_t *outl) {
  uint8_t *p = quire__malloc(kl + 1);
  if (!p) return QUIRE_ENOMEM;
  if (kl) memcpy(p, k, kl);
  *out = p;
  *outl = (uint32_t)kl;
  return 0;
}

static int free_run(mctx *c, uint32_t start, uint32_t count) {
  return lsm__extv_insert(&c->out->freed, start, count);
}

/* 1 if a tombstone for k may be dropped: no older segment's span holds k. */
static int droppable(const mctx *c, const uint8_t *k, size_t kl) {
  for (size_t i = 0; i < c->in->nolder; i++) {
    const lsm_keyspan *o = &c->in->older[i];
    if (lsm__keycmp(k, kl, o->lo, o->lol) >= 0 && lsm__keycmp(k, kl, o->hi, o->hil) <= 0) return 0;
  }
  return 1;
}

static int put(lsm_builder *b, const uint8_t *k, size_t kl, int kind, const uint8_t *v, uint64_t vl,
               uint32_t ovf) {
  if (lsm__is_ovf(kind)) return lsm__build_add_ref(b, k, kl, vl, ovf, kind == LSM_V_SPLIT ? v : NULL);
  return lsm__build_add(b, k, kl, kind, v, (size_t)vl);
}

/* A cursor of M still inside the window? */
static int m_live(const mctx *c, const lsm_src *s) {
  return s->valid && (!c->has_shi || lsm__keycmp(s->key, s->klen, c->shi, c->shil) <= 0);
}

/* Drops the entries at m's key of m and of every older cursor (deleted by a
 * newer source's range, or shadowed by m): their overflow runs are freed,
 * their tombstones counted as dropped. keep_m: m itself stays. */
static int m_skip_key(mctx *c, lsm_src *m, int keep_m) {
  int rc = 0;
  for (uint32_t i = 0; i < c->nm && !rc; i++) {
    lsm_src *s = c->ms[i];
    if (s == m || !m_live(c, s) || lsm__keycmp(s->key, s->klen, m->key, m->klen) != 0) continue;
    if (s->kind == LSM_V_TOMB) c->out->tombs_dropped++;
    if (lsm__is_ovf(s->kind))
      rc = free_run(c, s->ovf, lsm__blob_pages(c->db, lsm__run_bytes(c->db, s->kind, s->vlen)));
    if (!rc) rc = s->ops->next(s);
  }
  if (rc || keep_m) return rc;
  if (m->kind == LSM_V_TOMB) c->out->tombs_dropped++;
  if (lsm__is_ovf(m->kind))
    rc = free_run(c, m->ovf, lsm__blob_pages(c->db, lsm__run_bytes(c->db, m->kind, m->vlen)));
  return rc ? rc : m->ops->next(m);
}

/* M's current entry: the smallest key of the sources' cursors inside the
 * window, the newest source winning a tie; a key a range of a source newer
 * than the winner's covers is deleted, every version of it dropped. */
static int m_pick(mctx *c) {
  for (;;) {
    c->m = NULL;
    uint32_t wi = 0;
    for (uint32_t i = 0; i < c->nm; i++) {
      lsm_src *s = c->ms[i];
      if (!m_live(c, s)) continue;
      if (!c->m || lsm__keycmp(s->key, s->klen, c->m->key, c->m->klen) < 0) c->m = s, wi = i;
    }
    c->mvalid = c->m != NULL;
    if (!c->m) return 0;
    int covered = 0;
    for (uint32_t j = 0; j < c->mord[wi] && !covered; j++)
      covered = c->bsrc[j]->nranges &&
                lsm__ranges_cover(c->bsrc[j]->ranges, c->bsrc[j]->nranges, c->m->key, c->m->klen);
    if (!covered) return 0;
    int rc = m_skip_key(c, c->m, 0);
    if (rc) return rc;
  }
}

/* Moves M past its current entry; M ends after the window. Older sources'
 * versions of the same key disappear (shadowed). */
static int m_next(mctx *c) {
  lsm_src *m = c->m;
  int rc = m_skip_key(c, m, 1);
  if (!rc) rc = m->ops->next(m);
  return rc ? rc : m_pick(c);
}

/* Writes M's current entry to D' (or drops it if it is an unneeded tombstone). */
static int m_emit(side *sd) {
  mctx *c = sd->c;
  lsm_src *m = c->m;
  int rc = 0;
  if (m->kind == LSM_V_TOMB && droppable(c, m->key, m->klen))
    c->out->tombs_dropped++;
  else
    rc = put(sd->b, m->key, m->klen, m->kind, m->val, m->vlen, m->ovf);
  if (!rc) rc = m_next(c);
  return rc;
}

static int m_flush(side *sd) {
  int rc = 0;
  while (!rc && sd->c->mvalid) rc = m_emit(sd);
  return rc;
}

/* An entry of D that disappears: its overflow run is freed. */
static int d_gone(mctx *c, const lsm_item *it) {
  if (it->kind == LSM_V_TOMB) c->out->tombs_dropped++;
  if (lsm__is_ovf(it->kind))
    return free_run(c, it->ovf, lsm__blob_pages(c->db, lsm__run_bytes(c->db, it->kind, it->vlen)));
  return 0;
}

static int in_window(const mctx *c, const uint8_t *k, size_t kl) {
  if (c->has_slo && lsm__keycmp(k, kl, c->slo, c->slol) <= 0) return 0;
  if (c->has_shi && lsm__keycmp(k, kl, c->shi, c->shil) > 0) return 0;
  return 1;
}

/* End offset of the last item of a page (0 if it does not parse). */
static size_t items_end(const lsm_db *db, const lsm_pview *v) {
  lsm_item it;
  if (lsm__pitem(db, v, v->n - 1, &it)) return 0;
  return lsm__item_end(db, v, &it);
}

/* Bytes (offsets and items) of items j.. of a page as a page of their own
 * would hold them: the builder lays items out in key order, so they run from
 * item j's offset to the end; a page of just these shares a longer prefix
 * (that of items j and n-1), which each of them then stores once less. An
 * estimate for lsm__build_split only (a wrong one costs fill, never
 * correctness). */
static size_t rest_bytes(const lsm_db *db, const lsm_pview *v, uint32_t j, size_t end) {
  if (j >= v->n || !end) return 0;
  size_t off = ld_le16(v->p + LSM_PAGE_HDR + v->plen + 2 * (size_t)j);
  if (off >= end) return 0;
  size_t n = v->n - j, rest = end - off + 2 * n, c = 0;
  lsm_item a, z;
  if (!lsm__pitem(db, v, j, &a) && !lsm__pitem(db, v, v->n - 1, &z)) {
    size_t m = a.slen < z.slen ? a.slen : z.slen;
    while (c < m && a.suf[c] == z.suf[c]) c++;
  }
  return rest - c * n + c < rest ? rest - c * n + c : rest;
}

/* Streams the items of a leaf into the side's builder. */
static int stream_leaf(side *sd, const lsm_pview *v, uint8_t *key) {
  mctx *c = sd->c;
  lsm_db *db = c->db;
  int rc = 0;
  size_t end = items_end(db, v);
  for (uint32_t i = 0; i < v->n && !rc; i++) {
    lsm_item it;
    if (i && (rc = lsm__build_split(sd->b, 0, rest_bytes(db, v, i, end))) < 0) break;
    rc = 0;
    if ((rc = lsm__pitem(db, v, i, &it))) break;
    size_t kl = (size_t)v->plen + it.slen;
    if (kl > db->klim) return quire__err(QUIRE_ECORRUPT, "lsm: key longer than the limit");
    memcpy(key, v->prefix, v->plen);
    memcpy(key + v->plen, it.suf, it.slen);
    if (!sd->dst) {
      /* promoted entries now belong to D' (their overflow runs too) */
      if (!in_window(c, key, kl)) rc = put(sd->b, key, kl, it.kind, it.val, it.vlen, it.ovf);
      continue;
    }
    while (!rc && c->mvalid && lsm__keycmp(c->m->key, c->m->klen, key, kl) < 0) rc = m_emit(sd);
    if (rc) break;
    if (c->mvalid && lsm__keycmp(c->m->key, c->m->klen, key, kl) == 0) {
      rc = m_emit(sd); /* S's entry shadows D's */
      if (!rc) rc = d_gone(c, &it);
    } else if (c->nsr && lsm__ranges_cover(c->sr, c->nsr, key, kl)) {
      rc = d_gone(c, &it); /* under a range tombstone of S */
    } else if (it.kind == LSM_V_TOMB && droppable(c, key, kl)) {
      rc = d_gone(c, &it);
    } else {
      rc = put(sd->b, key, kl, it.kind, it.val, it.vlen, it.ovf);
    }
  }
  return rc;
}

/* 1 if one of S's ranges meets the subtree (lb, last]. */
static int ranges_meet(const mctx *c, const bound *lb, const uint8_t *last, size_t lastl) {
  size_t lo = 0, hi = c->nsr;
  if (lb->has) { /* the first range ending above lb (ranges are sorted and disjoint) */
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (lsm__keycmp(c->sr[mid].hi, c->sr[mid].hil, lb->k, lb->kl) <= 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  }
  return lo < c->nsr && lsm__keycmp(c->sr[lo].lo, c->sr[lo].lol, last, lastl) <= 0;
}

/* D side: writes M's entries that sort before a subtree whose keys lie
 * above lb. */
static int m_upto(side *sd, const bound *lb) {
  mctx *c = sd->c;
  int rc = 0;
  if (!lb->has) return 0;
  while (!rc && c->mvalid) {
    int x = lsm__keycmp(c->m->key, c->m->klen, lb->k, lb->kl);
    if (x > 0 || (x == 0 && lb->incl)) break;
    rc = m_emit(sd);
  }
  return rc;
}

/* Where the subtree (lb, last] lies relative to what this side changes. On
 * the D side: untouched (POS_BEFORE) unless an entry of M (whose head is the
 * smallest left, the ones below lb being written already) or a range of S
 * falls in it. On the S side: before, after, inside or across the window. */
static int classify(const side *sd, const bound *lb, const uint8_t *last, size_t lastl) {
  const mctx *c = sd->c;
  if (sd->dst) {
    if (c->mvalid && lsm__keycmp(c->m->key, c->m->klen, last, lastl) <= 0) return POS_OVERLAP;
    if (c->nsr && ranges_meet(c, lb, last, lastl)) return POS_OVERLAP;
    return POS_BEFORE;
  }
  if (c->has_slo && lsm__keycmp(last, lastl, c->slo, c->slol) <= 0) return POS_BEFORE;
  if (c->has_shi && lb->has && lsm__keycmp(lb->k, lb->kl, c->shi, c->shil) >= 0) return POS_AFTER;
  int lo_in = !c->has_slo;
  if (!lo_in && lb->has) {
    int x = lsm__keycmp(lb->k, lb->kl, c->slo, c->slol);
    lo_in = x > 0 || (x == 0 && !lb->incl);
  }
  int hi_in = !c->has_shi || lsm__keycmp(last, lastl, c->shi, c->shil) <= 0;
  return lo_in && hi_in ? POS_INSIDE : POS_OVERLAP;
}

/* Frees a promoted subtree of S: its tree pages (leaves unread); the
 * entries, with their overflow runs, now live in D'. */
static int drop_subtree(mctx *c, uint32_t pgno, uint32_t depth) {
  int rc = free_run(c, pgno, 1);
  if (rc || depth == 0) return rc;
  lsm_page *pg = NULL;
  lsm_pview v;
  if ((rc = lsm__page_get(c->db, pgno, &pg))) return rc;
  rc = lsm__pview(c->db, pg->data, &v);
  if (!rc && v.depth != depth) rc = quire__err(QUIRE_ECORRUPT, "lsm: page %u at the wrong depth", pgno);
  for (uint32_t i = 0; !rc && i < v.n; i++) {
    lsm_item it;
    rc = lsm__pitem(c->db, &v, i, &it);
    if (!rc) rc = drop_subtree(c, (uint32_t)it.child, depth - 1);
  }
  lsm__page_put(c->db, pg);
  return rc;
}

/* Rewrites the subtree at pgno (of depth want; -1: any, for a root) whose
 * keys lie above lb; edge: it is on the tree's right edge. The page itself
 * is freed; its children are recycled, dropped or walked. */
static int walk(side *sd, uint32_t pgno, int want, const bound *lb, int edge) {
  mctx *c = sd->c;
  lsm_db *db = c->db;
  lsm_page *pg = NULL;
  uint8_t *kb[2] = {NULL, NULL};
  lsm_pview v;
  int rc = free_run(c, pgno, 1);
  if (rc) return rc;
  if ((rc = lsm__page_get(db, pgno, &pg))) return rc;
  if ((rc = lsm__pview(db, pg->data, &v))) goto out;
  if (want >= 0 && (int)v.depth != want) {
    rc = quire__err(QUIRE_ECORRUPT, "lsm: page %u has depth %u, expected %d", pgno, v.depth, want);
    goto out;
  }
  kb[0] = quire__malloc(db->klim + 1);
  kb[1] = quire__malloc(db->klim + 1);
  if (!kb[0] || !kb[1]) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  if (v.type == LSM_PAGE_LEAF) {
    rc = stream_leaf(sd, &v, kb[0]);
    goto out;
  }
  bound prev = *lb;
  size_t end = items_end(db, &v);
  for (uint32_t i = 0; i < v.n && !rc; i++) {
    lsm_item it;
    /* keep the pending parent able to take the rest of this page's children */
    if (i && (rc = lsm__build_split(sd->b, v.depth, rest_bytes(db, &v, i, end))) < 0) break;
    rc = 0;
    if ((rc = lsm__pitem(db, &v, i, &it))) break;
    uint8_t *key = kb[i & 1];
    size_t kl = (size_t)v.plen + it.slen;
    if (kl > db->klim) {
      rc = quire__err(QUIRE_ECORRUPT, "lsm: key longer than the limit");
      break;
    }
    memcpy(key, v.prefix, v.plen);
    memcpy(key + v.plen, it.suf, it.slen);
    uint32_t cd = v.depth - 1;
    int cedge = edge && i == v.n - 1;
    if (sd->dst && (rc = m_upto(sd, &prev))) break;
    int pos = classify(sd, &prev, key, kl);
    if (pos == POS_INSIDE) {
      rc = drop_subtree(c, (uint32_t)it.child, cd);
    } else {
      if (pos != POS_OVERLAP && !cedge && lsm__build_clean(sd->b, cd)) {
        rc = lsm__build_add_child(sd->b, cd, key, kl, (uint32_t)it.child, it.leaves, it.tombs);
        c->out->recycled++;
      } else {
        rc = walk(sd, (uint32_t)it.child, (int)cd, &prev, cedge);
      }
    }
    prev = (bound){key, kl, 1, 0};
  }
out:
  quire__free(kb[0]);
  quire__free(kb[1]);
  lsm__page_put(db, pg);
  return rc;
}

/* ---- choosing the window ------------------------------------------------ */
/* Ordinal of the first leaf of the window (parent pages only). */
static int window_start(lsm_db *db, const lsm_merge_in *in, uint64_t *start) {
  lsm_seg *S = in->src;
  lsm_page *pg = NULL;
  lsm_pview v;
  uint64_t acc = 0;
  uint32_t pgno = S->d.root;
  int rc = 0, by_tombs = S->tombs > 0;
  *start = 0;
  if (!by_tombs && !in->after) return 0;
  for (int lvl = 0;; lvl++) {
    if (lvl > LSM_MAX_DEPTH) return quire__err(QUIRE_ECORRUPT, "lsm: tree too deep");
    if ((rc = lsm__page_get(db, pgno, &pg))) return rc;
    if ((rc = lsm__pview(db, pg->data, &v))) break;
    if (v.type == LSM_PAGE_LEAF) break; /* a one-leaf tree: from its start */
    uint32_t idx = 0;
    if (by_tombs) {
      uint64_t best = 0;
      for (uint32_t i = 0; i < v.n && !rc; i++) {
        lsm_item it;
        rc = lsm__pitem(db, &v, i, &it);
        if (!rc && it.tombs > best) best = it.tombs, idx = i;
      }
    } else {
      int eq;
      rc = lsm__psearch(db, &v, in->after, in->afterlen, &idx, &eq);
      if (!rc && eq) idx++;
      if (!rc && idx == v.n && lvl == 0) { /* nothing after the pointer: wrap */
        acc = 0;
        break;
      }
    }
    uint64_t child = 0;
    for (uint32_t i = 0; i < v.n && i <= idx && !rc; i++) {
      lsm_item it;
      rc = lsm__pitem(db, &v, i, &it);
      if (rc) break;
      if (i < idx)
        acc += it.leaves;
      else
        child = it.child;
    }
    if (rc || idx == v.n || v.depth == 1) {
      if (!rc && v.depth == 1 && idx < v.n && by_tombs) {
        /* centre the window on the richest leaf */
        uint64_t half = in->window / 2;
        acc = acc >= half ? acc - half : 0;
      }
      break;
    }
    lsm__page_put(db, pg);
    pg = NULL;
    pgno = (uint32_t)child;
  }
  lsm__page_put(db, pg);
  if (rc) return rc;
  if (by_tombs && acc + in->window > S->leaves) acc = S->leaves - in->window;
  *start = acc < S->leaves ? acc : 0;
  return 0;
}

/* Last key of leaf number ord of S (copied). */
static int leaf_last(lsm_db *db, lsm_seg *S, uint64_t ord, uint8_t **key, uint32_t *kl) {
  lsm_page *pg = NULL;
  lsm_pview v;
  uint32_t pgno = S->d.root;
  int rc = 0;
  for (int lvl = 0;; lvl++) {
    if (lvl > LSM_MAX_DEPTH) return quire__err(QUIRE_ECORRUPT, "lsm: tree too deep");
    if ((rc = lsm__page_get(db, pgno, &pg))) return rc;
    if ((rc = lsm__pview(db, pg->data, &v))) break;
    if (v.type == LSM_PAGE_LEAF) {
      rc = quire__err(QUIRE_ECORRUPT, "lsm: leaf counts disagree with the tree");
      break;
    }
    lsm_item it;
    uint32_t i = 0;
    for (; i < v.n; i++) {
      if ((rc = lsm__pitem(db, &v, i, &it))) break;
      if (ord < it.leaves) break;
      ord -= it.leaves;
    }
    if (rc) break;
    if (i == v.n) {
      rc = quire__err(QUIRE_ECORRUPT, "lsm: leaf counts disagree with the tree");
      break;
    }
    if (v.depth == 1) {
      size_t l = (size_t)v.plen + it.slen;
      if (l > db->klim) {
        rc = quire__err(QUIRE_ECORRUPT, "lsm: key longer than the limit");
        break;
      }
      uint8_t *k = quire__malloc(l + 1);
      if (!k) {
        rc = QUIRE_ENOMEM;
        break;
      }
      memcpy(k, v.prefix, v.plen);
      memcpy(k + v.plen, it.suf, it.slen);
      *key = k;
      *kl = (uint32_t)l;
      break;
    }
    lsm__page_put(db, pg);
    pg = NULL;
    pgno = (uint32_t)it.child;
  }
  lsm__page_put(db, pg);
  return rc;
}

/* ---- the merge ------------------------------------------------------------ */
void lsm__merge_out_free(lsm_merge_out *out) {
  lsm__extv_free(&out->freed);
  lsm__extv_free(&out->written);
  quire__free(out->next);
  out->next = NULL;
}

static void free_pages(lsm_db *db, lsm_extv *x) {
  for (size_t i = 0; i < x->n; i++) lsm__free_now(db, x->v[i].start, x->v[i].count);
  lsm__extv_free(x);
}

/* Finishes a builder into *d; *pages gets what it wrote (a failed finish
 * has freed its pages itself). */
static int finish(lsm_builder *b, lsm_segdesc *d, lsm_extv *pages) {
  lsm_extv tmp = {0};
  int rc = lsm__build_finish(b, d, &tmp);
  if (rc) {
    lsm__extv_free(&tmp);
    memset(d, 0, sizeof *d);
    return rc;
  }
  *pages = tmp;
  return 0;
}

static int free_blob(mctx *c, const lsm_segdesc *d) {
  if (!d->rt_page) return 0;
  return free_run(c, d->rt_page, lsm__blob_pages(c->db, d->rt_len));
}

int lsm__merge_partial(lsm_db *db, const lsm_merge_in *in, lsm_merge_out *out) {
  lsm_seg *S = in->src, *D = in->dst;
  mctx c;
  lsm_builder *b = NULL;
  lsm_extv wd = {0}, ws[LSM_MAX_BATCH]; /* pages written for D', and for each source's S' */
  lsm_range *r = NULL;
  int rc = 0;
  memset(out, 0, sizeof *out);
  memset(ws, 0, sizeof ws);
  memset(&c, 0, sizeof c);
  c.db = db, c.in = in, c.out = out;
  if (!S) return quire__err(QUIRE_EINVAL, "lsm: merge without a source");
  if (in->nnewer > LSM_MAX_BATCH - 1) return quire__err(QUIRE_EINVAL, "lsm: too many sources for one merge");
  /* the sources, newest first; any range tombstone makes the promotion whole */
  size_t nsr_all = 0;
  for (uint32_t i = 0; i <= in->nnewer; i++) {
    c.bsrc[c.nb++] = i < in->nnewer ? in->newer[i] : S;
    nsr_all += c.bsrc[c.nb - 1]->nranges;
  }
  int whole = in->window == 0 || in->window >= S->leaves || nsr_all || !S->d.root;
  uint64_t start = 0, count = S->leaves;
  if (!whole) {
    if ((rc = window_start(db, in, &start))) goto fail;
    count = S->leaves - start < in->window ? S->leaves - start : in->window;
    whole = start == 0 && count == S->leaves;
  }
  if (!whole) {
    if (start > 0) {
      if ((rc = leaf_last(db, S, start - 1, &c.slo, &c.slol))) goto fail;
      c.has_slo = 1;
    }
    if (start + count < S->leaves) {
      if ((rc = leaf_last(db, S, start + count - 1, &c.shi, &c.shil))) goto fail;
      c.has_shi = 1;
    }
  }
  out->promoted_leaves = count;
  /* M: the entries in the window of the newer sources and of S (last) */
  for (uint32_t i = 0; i < c.nb; i++) {
    lsm_seg *src = c.bsrc[i];
    if (!src->d.root) continue;
    lsm_src *cur = NULL;
    if ((rc = lsm__segcur_open(db, src, &cur))) goto fail;
    c.mord[c.nm] = i;
    c.ms[c.nm++] = cur;
    rc = c.has_slo ? cur->ops->seek(cur, c.slo, c.slol, 1) : cur->ops->first(cur);
    if (!rc && c.has_slo && cur->valid && lsm__keycmp(cur->key, cur->klen, c.slo, c.slol) == 0)
      rc = cur->ops->next(cur);
    if (rc) goto fail;
    if (src == S && m_live(&c, cur)) {
      /* the compaction pointer: the end of S's window */
      if (c.has_shi)
        rc = dup_key(c.shi, c.shil, &out->next, &out->nextlen);
      else
        rc = dup_key(S->maxkey, S->maxlen, &out->next, &out->nextlen);
      if (rc) goto fail;
    }
  }
  /* the sources' ranges, applied to D's entries (the promotion is whole if
   * there are any) */
  if (nsr_all) {
    size_t total = nsr_all + (D ? D->nranges : 0), k = 0;
    r = quire__calloc(total, sizeof *r);
    if (!r) {
      rc = QUIRE_ENOMEM;
      goto fail;
    }
    for (uint32_t i = 0; i < c.nb; i++)
      for (size_t j = 0; j < c.bsrc[i]->nranges; j++) r[k++] = c.bsrc[i]->ranges[j];
    c.sr = r;
    c.nsr = lsm__ranges_coalesce(r, k);
  }
  if ((rc = m_pick(&c))) goto fail;

  /* D' */
  int drop_ranges = in->nolder == 0 && !in->older_ranges;
  side sd = {&c, NULL, 1};
  if ((rc = lsm__build_new(db, &b))) goto fail;
  sd.b = b;
  if (D && D->d.root) {
    bound lb = {D->minkey, D->minlen, 1, 1};
    if ((rc = walk(&sd, D->d.root, -1, &lb, 1))) goto fail;
  }
  if ((rc = m_flush(&sd))) goto fail;
  size_t nr = 0;
  int keep_dblob = 0;
  if (!drop_ranges && nsr_all) {
    /* D' keeps the sources' ranges and D's: r has room for D's after them */
    size_t k = c.nsr;
    for (size_t i = 0; D && i < D->nranges; i++) r[k++] = D->ranges[i];
    nr = lsm__ranges_coalesce(r, k);
    c.nsr = 0;
    if ((rc = lsm__build_ranges(b, r, nr))) goto fail;
  } else if (!drop_ranges && D && D->d.rt_page) {
    keep_dblob = 1; /* D's ranges stay as they are, by reference */
  }
  if (D && !keep_dblob && (rc = free_blob(&c, &D->d))) goto fail;
  rc = finish(b, &out->dst_new, &wd);
  b = NULL;
  if (rc) goto fail;
  if (keep_dblob) out->dst_new.rt_page = D->d.rt_page, out->dst_new.rt_len = D->d.rt_len;

  /* S' and each newer source without the window (S last) */
  for (uint32_t i = 0; i <= in->nnewer; i++) {
    lsm_seg *src = i < in->nnewer ? in->newer[i] : S;
    lsm_segdesc *nd = i < in->nnewer ? &out->newer_new[i] : &out->src_new;
    if ((rc = free_blob(&c, &src->d))) goto fail;
    if (!src->d.root) continue;
    if (whole) {
      rc = drop_subtree(&c, src->d.root, src->depth);
    } else {
      side ss = {&c, NULL, 0};
      if ((rc = lsm__build_new(db, &b))) goto fail;
      ss.b = b;
      bound lb = {src->minkey, src->minlen, 1, 1};
      if ((rc = walk(&ss, src->d.root, -1, &lb, 1))) goto fail;
      rc = finish(b, nd, &ws[i]);
      b = NULL;
    }
    if (rc) goto fail;
  }
  for (size_t i = 0; i < wd.n && !rc; i++) rc = lsm__extv_insert(&out->written, wd.v[i].start, wd.v[i].count);
  for (uint32_t k = 0; k < LSM_MAX_BATCH; k++)
    for (size_t i = 0; i < ws[k].n && !rc; i++)
      rc = lsm__extv_insert(&out->written, ws[k].v[i].start, ws[k].v[i].count);
  if (rc) goto fail;
  lsm__extv_free(&wd);
  for (uint32_t k = 0; k < LSM_MAX_BATCH; k++) lsm__extv_free(&ws[k]);
  out->written_pages = lsm__extv_pages(&out->written);
  for (uint32_t i = 0; i < c.nm; i++) c.ms[i]->ops->close(c.ms[i]);
  quire__free(c.slo);
  quire__free(c.shi);
  quire__free(r);
  return 0;
fail:
  lsm__build_abort(b);
  free_pages(db, &wd);
  for (uint32_t k = 0; k < LSM_MAX_BATCH; k++) free_pages(db, &ws[k]);
  lsm__merge_out_free(out);
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < c.nm; i++) c.ms[i]->ops->close(c.ms[i]);
  quire__free(c.slo);
  quire__free(c.shi);
  quire__free(r);
  return rc;
}
