/*
 * lsm/cursor.c — the merged view. A multi-cursor walks several sources
 * ordered newest first (transaction buffer, its pending segments, memtable,
 * Incoming segments, Regular levels); on equal keys the newest source wins.
 * An entry is deleted when it is a point tombstone, when a range tombstone of
 * a newer source covers it, or (memtable) when a newer range of its own
 * source covers it. The living cursor (what users get) skips deleted
 * entries. Direction changes re-seek every source around the current key.
 */
#include <string.h>

#include "lsm/lsm_int.h"

struct lsm_mcur {
  lsm_src **s;
  size_t n;
  int living;
  int dir; /* 1 forward, -1 backward, 0 unpositioned */
  int cur; /* winning source or -1 */
  int deleted;
  uint8_t *key;
  size_t klen, kcap;
};

int lsm__mcur_new(lsm_src **srcs, size_t n, int living, lsm_mcur **out) {
  lsm_mcur *m = quire__calloc(1, sizeof *m);
  if (!m) return QUIRE_ENOMEM;
  m->s = quire__calloc(n ? n : 1, sizeof *m->s);
  if (!m->s) {
    quire__free(m);
    return QUIRE_ENOMEM;
  }
  memcpy(m->s, srcs, n * sizeof *srcs);
  m->n = n;
  m->living = living;
  m->cur = -1;
  *out = m;
  return 0;
}

void lsm__mcur_free(lsm_mcur *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n; i++)
    if (m->s[i]) m->s[i]->ops->close(m->s[i]);
  quire__free(m->s);
  quire__free(m->key);
  quire__free(m);
}

lsm_src *lsm__mcur_cur(lsm_mcur *m) { return m->cur >= 0 ? m->s[m->cur] : NULL; }
int lsm__mcur_deleted(lsm_mcur *m) { return m->deleted; }

/* Picks the smallest (dir 1) or largest (dir -1) key; newest source wins. */
static int pick(lsm_mcur *m, int dir) {
  int best = -1;
  for (size_t i = 0; i < m->n; i++) {
    lsm_src *s = m->s[i];
    if (!s->valid) continue;
    if (best < 0) {
      best = (int)i;
      continue;
    }
    int c = lsm__keycmp(s->key, s->klen, m->s[best]->key, m->s[best]->klen);
    if (dir > 0 ? c < 0 : c > 0) best = (int)i;
  }
  m->cur = best;
  m->dir = dir;
  m->deleted = 0;
  if (best < 0) return 0;
  lsm_src *w = m->s[best];
  if (w->klen > m->kcap) {
    uint8_t *k = quire__realloc(m->key, w->klen);
    if (!k) {
      m->cur = -1;
      return QUIRE_ENOMEM;
    }
    m->key = k, m->kcap = w->klen;
  }
  if (w->klen) memcpy(m->key, w->key, w->klen);
  m->klen = w->klen;
  if (w->kind == LSM_V_TOMB) {
    m->deleted = 1;
    return 0;
  }
  for (int j = 0; j < best; j++) {
    if (m->s[j]->ops->covers(m->s[j], m->key, m->klen, 0)) {
      m->deleted = 1;
      return 0;
    }
  }
  m->deleted = w->ops->covers(w, m->key, m->klen, w->seq);
  return 0;
}

static int skip(lsm_mcur *m, int dir);

int lsm__mcur_first(lsm_mcur *m) {
  for (size_t i = 0; i < m->n; i++) {
    int rc = m->s[i]->ops->first(m->s[i]);
    if (rc) return rc;
  }
  int rc = pick(m, 1);
  return rc ? rc : skip(m, 1);
}

int lsm__mcur_last(lsm_mcur *m) {
  for (size_t i = 0; i < m->n; i++) {
    int rc = m->s[i]->ops->last(m->s[i]);
    if (rc) return rc;
  }
  int rc = pick(m, -1);
  return rc ? rc : skip(m, -1);
}

/* One raw step from the current key in direction dir. */
static int step(lsm_mcur *m, int dir) {
  int rc;
  if (m->cur < 0) return 0;
  if (m->dir != dir) {
    /* put every source at the current key or its neighbour on the new side */
    for (size_t i = 0; i < m->n; i++) {
      if ((rc = m->s[i]->ops->seek(m->s[i], m->key, m->klen, dir > 0))) return rc;
    }
  }
  for (size_t i = 0; i < m->n; i++) {
    lsm_src *s = m->s[i];
    if (s->valid && lsm__keycmp(s->key, s->klen, m->key, m->klen) == 0) {
      if ((rc = dir > 0 ? s->ops->next(s) : s->ops->prev(s))) return rc;
    }
  }
  return pick(m, dir);
}

static int skip(lsm_mcur *m, int dir) {
  while (m->living && m->cur >= 0 && m->deleted) {
    int rc = step(m, dir);
    if (rc) return rc;
  }
  return 0;
}

int lsm__mcur_next(lsm_mcur *m) {
  int rc = step(m, 1);
  return rc ? rc : skip(m, 1);
}

int lsm__mcur_prev(lsm_mcur *m) {
  int rc = step(m, -1);
  return rc ? rc : skip(m, -1);
}

int lsm__mcur_seek(lsm_mcur *m, const uint8_t *k, size_t kl, int op) {
  int ge = op != LSM_SEEK_LE;
  for (size_t i = 0; i < m->n; i++) {
    int rc = m->s[i]->ops->seek(m->s[i], k, kl, ge);
    if (rc) return rc;
  }
  int rc = pick(m, ge ? 1 : -1);
  if (!rc) rc = skip(m, ge ? 1 : -1);
  if (rc) return rc;
  if (m->cur < 0) return QUIRE_ENOTFOUND;
  if (op == LSM_SEEK_EQ && (lsm__keycmp(m->key, m->klen, k, kl) != 0 || m->deleted)) {
    m->cur = -1;
    return QUIRE_ENOTFOUND;
  }
  return 0;
}

/* ---- public cursor ------------------------------------------------------ */
struct lsm_cursor {
  lsm_db *db;
  lsm_version *ver;
  lsm_mcur *mc;
  uint8_t *vbuf;
  size_t vcap;
};

int lsm__cursor_make(lsm_db *db, lsm_version *ver, lsm_src **srcs, size_t n, lsm_cursor **out) {
  lsm_cursor *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  int rc = lsm__mcur_new(srcs, n, 1, &c->mc);
  if (rc) {
    quire__free(c);
    return rc;
  }
  c->db = db;
  c->ver = ver;
  *out = c;
  return 0;
}

int lsm_cursor_open(lsm_db *db, lsm_cursor **out) {
  if (!db || !out) return QUIRE_EINVAL;
  uint64_t snap;
  lsm_version *v = lsm__pin(db, &snap);
  lsm_src *srcs[LSM_MAX_SEGS + 1];
  size_t n = 0;
  int rc = lsm__sources(db, v, snap, srcs, &n);
  if (!rc) rc = lsm__cursor_make(db, v, srcs, n, out);
  if (rc) {
    for (size_t i = 0; i < n; i++) srcs[i]->ops->close(srcs[i]);
    lsm__version_unref(db, v);
  }
  return rc;
}

void lsm_cursor_close(lsm_cursor *c) {
  if (!c) return;
  lsm__mcur_free(c->mc);
  if (c->ver) lsm__version_unref(c->db, c->ver);
  quire__free(c->vbuf);
  quire__free(c);
}

static int moved(lsm_cursor *c, int rc) {
  if (rc) {
    c->mc->cur = -1;
    return rc;
  }
  return c->mc->cur >= 0 ? 0 : QUIRE_EEND;
}

int lsm_cursor_first(lsm_cursor *c) { return moved(c, lsm__mcur_first(c->mc)); }
int lsm_cursor_last(lsm_cursor *c) { return moved(c, lsm__mcur_last(c->mc)); }
int lsm_cursor_next(lsm_cursor *c) {
  if (c->mc->cur < 0) return QUIRE_EEND;
  return moved(c, lsm__mcur_next(c->mc));
}
int lsm_cursor_prev(lsm_cursor *c) {
  if (c->mc->cur < 0) return QUIRE_EEND;
  return moved(c, lsm__mcur_prev(c->mc));
}

int lsm_cursor_seek(lsm_cursor *c, const void *k, size_t kl, int op) {
  if (op != LSM_SEEK_EQ && op != LSM_SEEK_LE && op != LSM_SEEK_GE) return QUIRE_EINVAL;
  if (!k && kl) return QUIRE_EINVAL;
  int rc = lsm__mcur_seek(c->mc, k, kl, op);
  if (rc) c->mc->cur = -1;
  return rc;
}

int lsm_cursor_valid(const lsm_cursor *c) { return c && c->mc->cur >= 0; }

int lsm_cursor_key(lsm_cursor *c, const void **k, size_t *kl) {
  if (c->mc->cur < 0) return QUIRE_EINVAL;
  *k = c->mc->key;
  *kl = c->mc->klen;
  return 0;
}

int lsm_cursor_value_len(lsm_cursor *c, uint64_t *len) {
  lsm_src *s = lsm__mcur_cur(c->mc);
  if (!s) return QUIRE_EINVAL;
  *len = s->vlen;
  return 0;
}

int lsm_cursor_value(lsm_cursor *c, const void **v, size_t *vl) {
  lsm_src *s = lsm__mcur_cur(c->mc);
  if (!s) return QUIRE_EINVAL;
  if (s->kind == LSM_V_INLINE) {
    *v = s->vlen ? s->val : (const void *)"";
    *vl = s->vlen;
    return 0;
  }
  if (s->vlen > c->vcap) {
    uint8_t *b = quire__realloc(c->vbuf, s->vlen);
    if (!b) return QUIRE_ENOMEM;
    c->vbuf = b, c->vcap = s->vlen;
  }
  int rc = s->ops->value(s, 0, c->vbuf, s->vlen);
  if (rc) return rc;
  *v = c->vbuf;
  *vl = s->vlen;
  return 0;
}

int lsm_cursor_value_read(lsm_cursor *c, uint64_t off, void *buf, size_t n, size_t *got) {
  lsm_src *s = lsm__mcur_cur(c->mc);
  if (!s) return QUIRE_EINVAL;
  *got = 0;
  if (off >= s->vlen) return 0;
  if (n > s->vlen - off) n = (size_t)(s->vlen - off);
  if (s->kind == LSM_V_INLINE) {
    memcpy(buf, s->val + off, n);
  } else {
    int rc = s->ops->value(s, off, buf, n);
    if (rc) return rc;
  }
  *got = n;
  return 0;
}
