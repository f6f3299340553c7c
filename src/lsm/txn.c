/*
 * lsm/txn.c — transactions: a buffer of the transaction's own writes (a
 * memtable with per-operation sequence numbers) over a pinned snapshot,
 * spilled to pending segments past txn_mem_bytes (folded together beyond
 * LSM_MAX_PENDING), reads that see the buffer, the pending segments, then
 * the snapshot, and the read set of optimistic transactions. Commit is in
 * commit.c.
 */
#include <string.h>

#include "lsm/lsm_int.h"

int lsm_txn_begin(lsm_db *db, unsigned flags, lsm_txn **out) {
  if (!db || !out || (flags & ~LSM_TXN_OPTIMISTIC)) return QUIRE_EINVAL;
  lsm_txn *t = quire__calloc(1, sizeof *t);
  if (!t) return QUIRE_ENOMEM;
  int rc = lsm__mem_new(&t->buf);
  if (rc) {
    quire__free(t);
    return rc;
  }
  t->db = db;
  t->flags = flags;
  t->sync_mode = db->sync_mode;
  t->ver = lsm__pin(db, &t->snap);
  *out = t;
  return 0;
}

int lsm_txn_set_sync(lsm_txn *t, int sync_mode) {
  if (!t) return QUIRE_EINVAL;
  if (sync_mode != LSM_SYNC_FULL && sync_mode != LSM_SYNC_NORMAL)
    return quire__err(QUIRE_EINVAL, "lsm: a transaction's sync mode is LSM_SYNC_FULL or LSM_SYNC_NORMAL "
                                    "(a commit without a log record could be lost while later ones survive)");
  if (t->db->sync_mode == LSM_SYNC_OFF)
    return quire__err(QUIRE_EINVAL, "lsm: the database was opened with LSM_SYNC_OFF and keeps no log");
  t->sync_mode = sync_mode;
  return 0;
}

/* Discards the uncommitted pending segments: their pages go free at once
 * (no header ever named them). */
static void pend_discard(lsm_txn *t) {
  lsm_db *db = t->db;
  for (size_t i = 0; i < t->npend; i++) {
    lsm_seg *s = t->pend[i];
    pthread_mutex_lock(&db->lock);
    db->inflight -= lsm__extv_pages(&s->pages);
    pthread_mutex_unlock(&db->lock);
    for (size_t j = 0; j < s->pages.n; j++) lsm__free_now(db, s->pages.v[j].start, s->pages.v[j].count);
    lsm__seg_unref(db, s);
  }
  t->npend = 0;
}

void lsm_txn_abort(lsm_txn *t) {
  if (!t) return;
  lsm_db *db = t->db;
  pend_discard(t);
  lsm__mem_unref(t->buf);
  lsm__version_unref(db, t->ver);
  quire__free(t->reads);
  quire__free(t);
}

/* Writes the buffer as a pending segment (uncommitted; pages in flight). */
static int txn_spill(lsm_txn *t) {
  lsm_db *db = t->db;
  lsm_segdesc d;
  lsm_extv pages = {0};
  lsm_seg *s = NULL;
  lsm_mem *fresh = NULL;
  int rc = lsm__mem_new(&fresh);
  if (rc) return rc;
  if ((rc = lsm__build_from_mem(db, t->buf, &d, &pages))) goto fail;
  if (d.root || d.rt_page) {
    if ((rc = lsm__seg_load(db, &d, &s))) {
      for (size_t j = 0; j < pages.n; j++) lsm__free_now(db, pages.v[j].start, pages.v[j].count);
      goto fail;
    }
    s->pages = pages;
    pages = (lsm_extv){0};
    pthread_mutex_lock(&db->lock);
    db->inflight += lsm__extv_pages(&s->pages);
    pthread_mutex_unlock(&db->lock);
    t->pend[t->npend++] = s;
  }
  lsm__mem_unref(t->buf);
  t->buf = fresh;
  if (t->npend > LSM_MAX_PENDING) {
    /* fold the pending segments into one (keeping tombstones and ranges) */
    lsm_src *srcs[LSM_MAX_PENDING + 1];
    size_t n = 0;
    lsm_mcur *mc = NULL;
    lsm_builder *b = NULL;
    lsm_range *all = NULL;
    size_t nall = 0, capall = 0;
    for (size_t i = t->npend; i-- > 0 && !rc;) {
      rc = lsm__segcur_open(db, t->pend[i], &srcs[n]);
      if (!rc) n++;
    }
    if (!rc) rc = lsm__mcur_new(srcs, n, 0, &mc);
    if (rc) {
      for (size_t i = 0; i < n; i++) srcs[i]->ops->close(srcs[i]);
      return rc;
    }
    uint8_t *vbuf = NULL;
    rc = lsm__build_new(db, &b);
    for (rc = rc ? rc : lsm__mcur_first(mc); !rc && lsm__mcur_cur(mc); rc = lsm__mcur_next(mc)) {
      lsm_src *x = lsm__mcur_cur(mc);
      if (lsm__mcur_deleted(mc) && x->kind != LSM_V_TOMB) continue; /* under a newer range */
      const void *val = x->val;
      if (lsm__is_ovf(x->kind)) {
        quire__free(vbuf);
        vbuf = quire__malloc(x->vlen);
        if (!vbuf) {
          rc = QUIRE_ENOMEM;
          break;
        }
        if ((rc = x->ops->value(x, 0, vbuf, x->vlen))) break;
        val = vbuf;
      }
      rc =
          lsm__build_add(b, x->key, x->klen, x->kind == LSM_V_TOMB ? LSM_V_TOMB : LSM_V_INLINE, val, x->vlen);
    }
    quire__free(vbuf);
    for (size_t i = 0; i < t->npend && !rc; i++) {
      lsm_seg *p = t->pend[i];
      for (size_t j = 0; j < p->nranges && !rc; j++) {
        if (nall == capall) {
          size_t cap = capall ? capall * 2 : 16;
          lsm_range *r = quire__realloc(all, cap * sizeof *r);
          if (!r) {
            rc = QUIRE_ENOMEM;
            break;
          }
          all = r, capall = cap;
        }
        all[nall++] = p->ranges[j];
      }
    }
    if (!rc && nall) {
      rc = lsm__build_ranges(b, all, lsm__ranges_coalesce(all, nall));
    }
    quire__free(all);
    lsm__mcur_free(mc);
    lsm_extv np = {0};
    if (!rc) {
      rc = lsm__build_finish(b, &d, &np);
      b = NULL;
    }
    lsm__build_abort(b);
    lsm_seg *merged = NULL;
    if (!rc && (d.root || d.rt_page)) rc = lsm__seg_load(db, &d, &merged);
    if (rc) {
      for (size_t j = 0; j < np.n; j++) lsm__free_now(db, np.v[j].start, np.v[j].count);
      lsm__extv_free(&np);
      return rc;
    }
    pend_discard(t);
    if (merged) {
      merged->pages = np;
      pthread_mutex_lock(&db->lock);
      db->inflight += lsm__extv_pages(&np);
      pthread_mutex_unlock(&db->lock);
      t->pend[t->npend++] = merged;
    } else {
      lsm__extv_free(&np);
    }
  }
  return 0;
fail:
  lsm__extv_free(&pages);
  lsm__mem_unref(fresh);
  return rc;
}

static int txn_check(lsm_txn *t, size_t kl) {
  if (!t || t->failed) return t ? t->failed : QUIRE_EINVAL;
  if (kl > t->db->klim)
    return quire__err(QUIRE_ETOOLARGE, "lsm: key of %zu bytes (limit %u)", kl, t->db->klim);
  return 0;
}

static int txn_after_write(lsm_txn *t) {
  if (t->buf->bytes <= t->db->txn_budget || t->db->read_only) return 0;
  int rc = txn_spill(t);
  if (rc) t->failed = rc;
  return rc;
}

int lsm_txn_put(lsm_txn *t, const void *k, size_t kl, const void *v, size_t vl) {
  int rc = txn_check(t, kl);
  if (rc) return rc;
  if ((!k && kl) || (!v && vl)) return QUIRE_EINVAL;
  if (vl > UINT32_MAX) return quire__err(QUIRE_ETOOLARGE, "lsm: value over 4 GiB");
  if ((rc = lsm__mem_put(t->buf, k, kl, LSM_V_INLINE, v, vl, ++t->op))) return rc;
  return txn_after_write(t);
}

int lsm_txn_delete(lsm_txn *t, const void *k, size_t kl) {
  int rc = txn_check(t, kl);
  if (rc) return rc;
  if (!k && kl) return QUIRE_EINVAL;
  if ((rc = lsm__mem_put(t->buf, k, kl, LSM_V_TOMB, NULL, 0, ++t->op))) return rc;
  return txn_after_write(t);
}

int lsm_txn_delete_range(lsm_txn *t, const void *lo, size_t lol, const void *hi, size_t hil) {
  int rc = txn_check(t, lol > hil ? lol : hil);
  if (rc) return rc;
  if ((!lo && lol) || (!hi && hil)) return QUIRE_EINVAL;
  if (lsm__keycmp(lo, lol, hi, hil) >= 0) return 0;
  if ((rc = lsm__mem_range(t->buf, lo, lol, hi, hil, ++t->op))) return rc;
  return txn_after_write(t);
}

static int txn_note_read(lsm_txn *t, const void *k, size_t kl) {
  if (!(t->flags & LSM_TXN_OPTIMISTIC)) return 0;
  if (t->nreads == t->capreads) {
    size_t cap = t->capreads ? t->capreads * 2 : 16;
    uint64_t *r = quire__realloc(t->reads, cap * sizeof *r);
    if (!r) return QUIRE_ENOMEM;
    t->reads = r, t->capreads = cap;
  }
  t->reads[t->nreads++] = lsm__key_hash(k, kl);
  return 0;
}

int lsm_txn_get(lsm_txn *t, const void *k, size_t kl, lsm_value *out) {
  if (!t || !out || (!k && kl)) return QUIRE_EINVAL;
  memset(out, 0, sizeof *out);
  if (kl > t->db->klim) return QUIRE_ENOTFOUND;
  int rc = txn_note_read(t, k, kl);
  if (rc) return rc;
  int kind = LSM_V_TOMB;
  rc = lsm__mem_get(t->buf, UINT64_MAX, k, kl, out, &kind);
  if (rc == 0 && t->buf->nranges && lsm__mem_covered(t->buf, k, kl, 0, UINT64_MAX)) return QUIRE_ENOTFOUND;
  for (size_t i = t->npend; rc == 0 && i-- > 0;) {
    lsm_seg *s = t->pend[i];
    rc = lsm__seg_get(t->db, s, k, kl, out, &kind);
    if (rc == 0 && s->nranges && lsm__ranges_cover(s->ranges, s->nranges, k, kl)) return QUIRE_ENOTFOUND;
  }
  if (rc < 0) return rc;
  if (rc == 1) {
    if (kind != LSM_V_TOMB) return 0;
    lsm_value_release(out);
    return QUIRE_ENOTFOUND;
  }
  return lsm__version_get(t->db, t->ver, t->snap, k, kl, out);
}

int lsm_txn_get_seek(lsm_txn *t, const void *key, size_t klen, int op, void *keybuf, size_t keycap,
                     size_t *klen_out, lsm_value *out) {
  int rc = t ? lsm__seek_args(key, klen, op, keybuf, keycap, klen_out, out) : QUIRE_EINVAL;
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  *klen_out = 0;
  if (op == LSM_SEEK_EQ)
    return lsm__seek_eq(lsm_txn_get(t, key, klen, out), key, klen, keybuf, keycap, klen_out, out);
  lsm_point_src s[LSM_MAX_SEGS + LSM_MAX_PENDING + 2];
  size_t n = 0;
  s[n++] = (lsm_point_src){.m = t->buf, .snap = UINT64_MAX};
  for (size_t i = t->npend; i-- > 0;) s[n++] = (lsm_point_src){.seg = t->pend[i]};
  n = lsm__point_sources(t->ver, t->snap, s, n);
  rc = lsm__point_seek(t->db, s, n, key, klen, op, keybuf, keycap, klen_out, out);
  /* an optimistic transaction depends on the entry it found (the gap
   * before it is not tracked, as with cursors) */
  if (!rc && (rc = txn_note_read(t, keybuf, *klen_out))) lsm_value_release(out);
  return rc;
}

int lsm_txn_cursor_open(lsm_txn *t, lsm_cursor **out) {
  if (!t || !out) return QUIRE_EINVAL;
  lsm_db *db = t->db;
  lsm_src *srcs[LSM_MAX_SEGS + LSM_MAX_PENDING + 2];
  size_t n = 0;
  int rc = lsm__memcur_open(t->buf, UINT64_MAX - 1, &srcs[n]);
  if (!rc) n++;
  for (size_t i = t->npend; !rc && i-- > 0;) {
    rc = lsm__segcur_open(db, t->pend[i], &srcs[n]);
    if (!rc) n++;
  }
  if (!rc) {
    atomic_fetch_add(&t->ver->refs, 1);
    rc = lsm__sources(db, t->ver, t->snap, srcs, &n);
    if (!rc) rc = lsm__cursor_make(db, t->ver, srcs, n, out);
    if (rc) lsm__version_unref(db, t->ver);
  }
  if (rc)
    for (size_t i = 0; i < n; i++) srcs[i]->ops->close(srcs[i]);
  return rc;
}
