/* tests/lsm/lsm_testutil.h — a sorted-map model and comparison helpers
 * shared by the LSM tests. */
#ifndef QUIRE_LSM_TESTUTIL_H
#define QUIRE_LSM_TESTUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quire/lsm.h"
#include "test.h"
#include "util/util.h"

typedef struct model_ent {
  uint8_t *k, *v;
  size_t kl, vl;
} model_ent;

typedef struct model {
  model_ent *e;
  size_t n, cap;
} model;

static inline int model_cmp(const void *a, size_t al, const void *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c;
  return al < bl ? -1 : al > bl;
}

/* first index with key >= k */
static inline size_t model_lb(const model *m, const void *k, size_t kl) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (model_cmp(m->e[mid].k, m->e[mid].kl, k, kl) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static inline uint8_t *dup_bytes(const void *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (n) memcpy(d, p, n);
  return d;
}

static inline void model_put(model *m, const void *k, size_t kl, const void *v, size_t vl) {
  size_t i = model_lb(m, k, kl);
  if (i < m->n && model_cmp(m->e[i].k, m->e[i].kl, k, kl) == 0) {
    free(m->e[i].v);
    m->e[i].v = dup_bytes(v, vl);
    m->e[i].vl = vl;
    return;
  }
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 64;
    m->e = realloc(m->e, m->cap * sizeof *m->e);
  }
  memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof *m->e);
  m->e[i] = (model_ent){dup_bytes(k, kl), dup_bytes(v, vl), kl, vl};
  m->n++;
}

static inline void model_del_range(model *m, const void *lo, size_t lol, const void *hi, size_t hil) {
  size_t a = model_lb(m, lo, lol), b = model_lb(m, hi, hil);
  if (b <= a) return;
  for (size_t i = a; i < b; i++) free(m->e[i].k), free(m->e[i].v);
  memmove(&m->e[a], &m->e[b], (m->n - b) * sizeof *m->e);
  m->n -= b - a;
}

static inline void model_del(model *m, const void *k, size_t kl) {
  size_t i = model_lb(m, k, kl);
  if (i < m->n && model_cmp(m->e[i].k, m->e[i].kl, k, kl) == 0) {
    free(m->e[i].k), free(m->e[i].v);
    memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof *m->e);
    m->n--;
  }
}

static inline void model_free(model *m) {
  for (size_t i = 0; i < m->n; i++) free(m->e[i].k), free(m->e[i].v);
  free(m->e);
  memset(m, 0, sizeof *m);
}

static inline void model_copy(model *dst, const model *src) {
  model_free(dst);
  for (size_t i = 0; i < src->n; i++) model_put(dst, src->e[i].k, src->e[i].kl, src->e[i].v, src->e[i].vl);
}

/* The cursor is on entry i of m (or invalid when i == m->n / SIZE_MAX). */
static inline void expect_at(lsm_cursor *c, int rc, const model *m, size_t i, const char *what) {
  if (i >= m->n) {
    CHECKF(rc == QUIRE_EEND || rc == QUIRE_ENOTFOUND, "%s: expected end, got rc %d", what, rc);
    CHECKF(!lsm_cursor_valid(c), "%s: cursor should be invalid", what);
    return;
  }
  CHECKF(rc == 0, "%s: expected entry %zu, got rc %d (%s)", what, i, rc, quire_errmsg());
  const void *k, *v;
  size_t kl, vl;
  CHECK_OK(lsm_cursor_key(c, &k, &kl));
  CHECKF(model_cmp(k, kl, m->e[i].k, m->e[i].kl) == 0, "%s: key mismatch at %zu (len %zu vs %zu)", what, i,
         kl, m->e[i].kl);
  CHECK_OK(lsm_cursor_value(c, &v, &vl));
  CHECKF(vl == m->e[i].vl && (vl == 0 || memcmp(v, m->e[i].v, vl) == 0),
         "%s: value mismatch at %zu (len %zu vs %zu)", what, i, vl, m->e[i].vl);
}

/* Full forward and backward walks. */
static inline void compare_walks(lsm_cursor *c, const model *m) {
  int rc = lsm_cursor_first(c);
  for (size_t i = 0; i < m->n; i++) {
    expect_at(c, rc, m, i, "forward");
    rc = lsm_cursor_next(c);
  }
  expect_at(c, rc, m, m->n, "forward end");
  rc = lsm_cursor_last(c);
  for (size_t i = m->n; i-- > 0;) {
    expect_at(c, rc, m, i, "backward");
    rc = lsm_cursor_prev(c);
  }
  expect_at(c, rc, m, m->n, "backward end");
}

static inline void compare_seek(lsm_cursor *c, const model *m, const void *k, size_t kl) {
  size_t i = model_lb(m, k, kl);
  int exact = i < m->n && model_cmp(m->e[i].k, m->e[i].kl, k, kl) == 0;
  expect_at(c, lsm_cursor_seek(c, k, kl, LSM_SEEK_GE), m, i, "seek GE");
  if (i + 1 < m->n) { /* and step both ways from there */
    expect_at(c, lsm_cursor_next(c), m, i + 1, "GE then next");
    expect_at(c, lsm_cursor_prev(c), m, i, "GE next prev");
  }
  size_t le = exact ? i : (i == 0 ? SIZE_MAX : i - 1);
  expect_at(c, lsm_cursor_seek(c, k, kl, LSM_SEEK_LE), m, le, "seek LE");
  if (le != SIZE_MAX) {
    expect_at(c, lsm_cursor_prev(c), m, le == 0 ? SIZE_MAX : le - 1, "LE then prev");
    if (le > 0) expect_at(c, lsm_cursor_next(c), m, le, "LE prev next");
  }
  expect_at(c, lsm_cursor_seek(c, k, kl, LSM_SEEK_EQ), m, exact ? i : SIZE_MAX, "seek EQ");
}

/* Digest of the model's contents, and of what a cursor over the latest
 * commit reads: the same entries hash the same (crash and fault tests
 * compare states by it). */
static inline uint64_t model_hash(const model *m) {
  quire_hasher h;
  quire__hasher_init(&h);
  for (size_t i = 0; i < m->n; i++) {
    uint64_t l[2] = {m->e[i].kl, m->e[i].vl};
    quire__hasher_update(&h, l, sizeof l);
    quire__hasher_update(&h, m->e[i].k, m->e[i].kl);
    quire__hasher_update(&h, m->e[i].v, m->e[i].vl);
  }
  return quire__hasher_digest(&h);
}

static inline int db_hash(lsm_db *db, uint64_t *out) {
  lsm_cursor *c;
  int rc = lsm_cursor_open(db, &c);
  if (rc) return rc;
  quire_hasher h;
  quire__hasher_init(&h);
  for (rc = lsm_cursor_first(c); rc == 0; rc = lsm_cursor_next(c)) {
    const void *k, *v;
    size_t kl, vl;
    if ((rc = lsm_cursor_key(c, &k, &kl)) || (rc = lsm_cursor_value(c, &v, &vl))) break;
    uint64_t l[2] = {kl, vl};
    quire__hasher_update(&h, l, sizeof l);
    quire__hasher_update(&h, k, kl);
    quire__hasher_update(&h, v, vl);
  }
  lsm_cursor_close(c);
  if (rc != QUIRE_EEND) return rc;
  *out = quire__hasher_digest(&h);
  return 0;
}

#endif
