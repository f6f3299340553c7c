/*
 * tests/splinter/model.h — the trivial model the splinter tests compare
 * against: a sorted array of distinct u32 values, and helpers that check a
 * splinter (owned or view) holds exactly the model's elements.
 */
#ifndef QUIRE_TEST_SPLINTER_MODEL_H
#define QUIRE_TEST_SPLINTER_MODEL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quire/splinter.h"
#include "test.h"

typedef struct model {
  uint32_t *v;
  size_t n, cap;
} model;

static inline void model_reserve(model *m, size_t n) {
  if (n <= m->cap) return;
  size_t c = m->cap ? m->cap : 64;
  while (c < n) c *= 2;
  m->v = realloc(m->v, c * sizeof *m->v);
  if (!m->v) abort();
  m->cap = c;
}

/* Index of the first element >= x. */
static inline size_t model_lower(const model *m, uint64_t x) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (m->v[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}
static inline int model_has(const model *m, uint32_t x) {
  size_t i = model_lower(m, x);
  return i < m->n && m->v[i] == x;
}
static inline int model_insert_range(model *m, uint32_t lo, uint32_t hi) {
  size_t a = model_lower(m, lo), b = model_lower(m, (uint64_t)hi + 1);
  size_t want = (size_t)((uint64_t)hi - lo + 1);
  size_t had = b - a;
  model_reserve(m, m->n - had + want + 1);
  memmove(m->v + a + want, m->v + b, (m->n - b) * sizeof *m->v);
  for (size_t i = 0; i < want; i++) m->v[a + i] = lo + (uint32_t)i;
  m->n = m->n - had + want;
  return want != had;
}
static inline int model_remove_range(model *m, uint32_t lo, uint32_t hi) {
  if (m->n == 0) return 0;
  size_t a = model_lower(m, lo), b = model_lower(m, (uint64_t)hi + 1);
  memmove(m->v + a, m->v + b, (m->n - b) * sizeof *m->v);
  m->n -= b - a;
  return b != a;
}
static inline void model_free(model *m) { free(m->v), memset(m, 0, sizeof *m); }
static inline void model_copy(model *dst, const model *src) {
  model_reserve(dst, src->n + 1);
  memcpy(dst->v, src->v, src->n * sizeof *src->v);
  dst->n = src->n;
}

/* op: 0 union, 1 intersection, 2 a - b, 3 symmetric difference. */
static inline void model_op(const model *a, const model *b, int op, model *out) {
  out->n = 0;
  model_reserve(out, a->n + b->n + 1);
  size_t i = 0, j = 0;
  while (i < a->n || j < b->n) {
    int in_a, in_b;
    uint32_t x;
    if (j == b->n || (i < a->n && a->v[i] < b->v[j]))
      x = a->v[i++], in_a = 1, in_b = 0;
    else if (i == a->n || b->v[j] < a->v[i])
      x = b->v[j++], in_a = 0, in_b = 1;
    else
      x = a->v[i++], j++, in_a = in_b = 1;
    int keep = op == 0 ? 1 : op == 1 ? (in_a && in_b) : op == 2 ? (in_a && !in_b) : (in_a != in_b);
    if (keep) out->v[out->n++] = x;
  }
}

/* Checks that set holds exactly the model's elements: iteration, cardinality,
 * min/max, and contains/rank/select at sampled points. */
static inline void model_check(const model *m, splinter_ref_t set) {
  CHECK(splinter_ref_cardinality(set) == m->n);
  splinter_iter_t it;
  splinter_iter_init(&it, set, 0);
  uint32_t x;
  for (size_t i = 0; i < m->n; i++) {
    CHECK(splinter_iter_next(&it, &x) == 1);
    CHECKF(x == m->v[i], "element %zu: got %u want %u", i, x, m->v[i]);
  }
  CHECK(splinter_iter_next(&it, &x) == 0);
  uint32_t mn, mx;
  if (m->n) {
    CHECK_OK(splinter_ref_min(set, &mn));
    CHECK_OK(splinter_ref_max(set, &mx));
    CHECK(mn == m->v[0] && mx == m->v[m->n - 1]);
  } else {
    CHECK_RC(splinter_ref_min(set, &mn), QUIRE_ENOTFOUND);
    CHECK_RC(splinter_ref_max(set, &mx), QUIRE_ENOTFOUND);
  }
  /* sampled probes: elements, neighbours, boundaries, random values */
  for (int k = 0; k < 24; k++) {
    uint32_t p;
    switch (k % 4) {
    case 0: p = m->n ? m->v[test_rand_below(m->n)] : 0; break;
    case 1: p = m->n ? m->v[test_rand_below(m->n)] + 1 : 1; break;
    case 2: p = m->n ? m->v[test_rand_below(m->n)] - 1 : UINT32_MAX; break;
    default: p = (uint32_t)test_rand(); break;
    }
    if (k == 0) p = 0;
    if (k == 1) p = UINT32_MAX;
    int want = model_has(m, p);
    CHECKF(splinter_ref_contains(set, p) == (want != 0), "contains(%u) want %d", p, want);
    uint64_t rank = model_lower(m, (uint64_t)p + 1);
    uint64_t got_rank = set.owned ? splinter_rank(set.owned, p) : splinter_view_rank(set.view, p);
    CHECKF(got_rank == rank, "rank(%u) got %llu want %llu", p, (unsigned long long)got_rank,
           (unsigned long long)rank);
    /* iteration from a lower bound; an iterator is a value: a copy goes on alone */
    splinter_iter_t lb;
    splinter_iter_init(&lb, set, p);
    size_t i = model_lower(m, p);
    uint32_t batch[7];
    size_t got = splinter_iter_next_batch(&lb, batch, 7);
    for (size_t b = 0; b < got; b++) CHECK(i + b < m->n && batch[b] == m->v[i + b]);
    CHECK(got == (m->n - i < 7 ? m->n - i : 7));
    splinter_iter_t copy = lb;
    memset(&lb, 0xA5, sizeof lb);
    for (size_t b = i + got; b < m->n && b < i + got + 300; b++) {
      uint32_t next;
      CHECK(splinter_iter_next(&copy, &next) == 1 && next == m->v[b]);
    }
    if (m->n) {
      uint64_t idx = test_rand_below(m->n);
      uint32_t sel;
      CHECK_OK(set.owned ? splinter_select(set.owned, idx, &sel) : splinter_view_select(set.view, idx, &sel));
      CHECK(sel == m->v[idx]);
    }
  }
  uint32_t sel;
  CHECK_RC(set.owned ? splinter_select(set.owned, m->n, &sel) : splinter_view_select(set.view, m->n, &sel),
           QUIRE_ENOTFOUND);
}

#endif
