/*
 * splinter/owned.c — the owned (mutable, in-memory) splinter: a sorted array
 * of 256-value blocks, each a bitmap or a span of full blocks (see
 * splinter_int.h), plus the builder every producer of owned sets uses.
 *
 * Invariants (kept by every function here and by sp_build): blocks sorted by
 * key and disjoint; a bitmap block is neither empty nor full; full spans are
 * maximal (never adjacent to another full span); card is the element count.
 */
#include "splinter/splinter_int.h"

#include <stdlib.h>

static bool bits_full(const uint64_t w[4]) { return (w[0] & w[1] & w[2] & w[3]) == ~0ull; }
static bool bits_empty(const uint64_t w[4]) { return (w[0] | w[1] | w[2] | w[3]) == 0; }

/* ---- builder ------------------------------------------------------------------ */

int sp__build_grow(sp_build *o, size_t extra) {
  size_t need = o->n + extra, ncap = o->cap ? o->cap : 8;
  while (ncap < need) ncap *= 2;
  sp_blk *nb;
  if (o->n == 0) { /* nothing to keep (a spare array holds stale blocks): no copy */
    nb = quire__malloc(ncap * sizeof *nb);
    if (nb) quire__free(o->b);
  } else {
    nb = quire__realloc(o->b, ncap * sizeof *nb);
  }
  if (!nb) return quire__err(QUIRE_ENOMEM, "splinter: out of memory");
  o->b = nb;
  o->cap = ncap;
  return 0;
}

int sp__build_bits(sp_build *o, uint32_t key, const uint64_t w[4]) {
  int rc = sp_build_room(o, 1);
  if (rc) return rc;
  sp_build_bits_r(o, key, w);
  return 0;
}

int sp__build_rest(sp_build *o, sp_cur *c) {
  if (c->view) return sp__cur_drain(o, c, SP_LAST_KEY);
  while (sp_cur_ok(c)) {
    size_t cnt = c->n - c->i;
    int rc = sp_build_room(o, cnt);
    if (rc) return rc;
    /* the first block may continue the output's last full span; the rest of a window is canonical */
    const sp_blk *x = &c->b[c->i];
    sp_build_copy_r(o, x, sp_cur_lo(c));
    memcpy(o->b + o->n, x + 1, (cnt - 1) * sizeof *x);
    uint64_t card = 0;
    for (size_t k = 1; k < cnt; k++) card += sp_blk_card(&x[k]);
    o->n += cnt - 1;
    o->card += card;
    c->i = c->n;
    c->skip = 0;
  }
  return 0;
}

void sp__build_free(sp_build *o) {
  quire__free(o->b);
  memset(o, 0, sizeof *o);
}

void sp__build_start(sp_build *o, splinter_t *s) {
  o->b = s->spare;
  o->cap = s->spare_cap;
  o->n = 0;
  o->card = 0;
  s->spare = NULL;
  s->spare_cap = 0;
}

void sp__build_abort(sp_build *o, splinter_t *s) {
  if (!s->spare) {
    s->spare = o->b;
    s->spare_cap = o->cap;
  } else {
    quire__free(o->b);
  }
  memset(o, 0, sizeof *o);
}

void sp__build_commit(sp_build *o, splinter_t *s) {
  sp_blk *old = s->b;
  size_t old_cap = s->cap;
  s->b = o->b;
  s->n = o->n;
  s->cap = o->cap;
  s->card = o->card;
  memset(o, 0, sizeof *o);
  if (old && !s->spare && old_cap <= 4 * s->cap + 64) {
    s->spare = old;
    s->spare_cap = old_cap;
  } else {
    quire__free(old);
  }
}

/* ---- lifecycle ------------------------------------------------------------------ */

int splinter_new(splinter_t **out) {
  splinter_t *s = quire__calloc(1, sizeof *s);
  if (!s) return quire__err(QUIRE_ENOMEM, "splinter: out of memory");
  *out = s;
  return 0;
}

void splinter_free(splinter_t *s) {
  if (!s) return;
  quire__free(s->spare);
  quire__free(s->b);
  quire__free(s);
}

void splinter_clear(splinter_t *s) {
  s->n = 0;
  s->card = 0;
}

int splinter_from_sorted(const uint32_t *vals, size_t n, splinter_t **out) {
  for (size_t i = 1; i < n; i++)
    if (vals[i] <= vals[i - 1]) return quire__err(QUIRE_EINVAL, "splinter_from_sorted: values not ascending");
  splinter_t *s;
  int rc = splinter_new(&s);
  if (rc) return rc;
  sp_build o = {0};
  size_t i = 0;
  while (i < n) {
    uint32_t key = vals[i] >> 8;
    uint64_t w[4] = {0};
    for (; i < n && vals[i] >> 8 == key; i++) w[(vals[i] >> 6) & 3] |= 1ull << (vals[i] & 63);
    rc = sp__build_bits(&o, key, w);
    if (rc) {
      sp__build_free(&o);
      splinter_free(s);
      return rc;
    }
  }
  sp__build_commit(&o, s);
  *out = s;
  return 0;
}

int splinter_assign(splinter_t *dst, splinter_ref_t src) {
  if (!dst || !sp_ref_ok(src)) return quire__err(QUIRE_EINVAL, "splinter_assign: bad argument");
  if (src.owned == dst) return 0;
  if (src.owned && dst->cap >= src.owned->n) { /* fits: no allocation, so nothing can fail */
    if (src.owned->n) memcpy(dst->b, src.owned->b, src.owned->n * sizeof *dst->b);
    dst->n = src.owned->n;
    dst->card = src.owned->card;
    return 0;
  }
  sp_blk window[64];
  sp_cur c;
  sp__cur_ref(&c, src, window, sizeof window / sizeof window[0]);
  sp_build o;
  sp__build_start(&o, dst);
  int rc = sp_build_room(&o, sp__cur_estimate(&c) + 1);
  if (!rc) rc = sp__build_rest(&o, &c);
  if (rc) {
    sp__build_abort(&o, dst);
    return rc;
  }
  sp__build_commit(&o, dst);
  return 0;
}

int splinter_from_ref(splinter_ref_t src, splinter_t **out) {
  if (!sp_ref_ok(src)) return quire__err(QUIRE_EINVAL, "splinter_from_ref: bad argument");
  splinter_t *s;
  int rc = splinter_new(&s);
  if (rc) return rc;
  rc = splinter_assign(s, src);
  if (rc) {
    splinter_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* ---- lookup ------------------------------------------------------------------------ */

size_t sp__blk_find(const sp_blk *b, size_t lo, size_t n, uint32_t key) {
  size_t hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (sp_blk_last(&b[mid]) < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

bool splinter_contains(const splinter_t *s, uint32_t value) {
  uint32_t key = value >> 8;
  size_t i = sp__blk_find(s->b, 0, s->n, key);
  if (i == s->n || s->b[i].key > key) return false;
  const sp_blk *b = &s->b[i];
  return b->nfull || ((b->w[(value >> 6) & 3] >> (value & 63)) & 1);
}

uint64_t splinter_cardinality(const splinter_t *s) { return s->card; }
bool splinter_is_empty(const splinter_t *s) { return s->card == 0; }

static int first_bit(const uint64_t w[4]) {
  for (int i = 0; i < 4; i++)
    if (w[i]) return i * 64 + __builtin_ctzll(w[i]);
  return -1;
}
static int last_bit(const uint64_t w[4]) {
  for (int i = 3; i >= 0; i--)
    if (w[i]) return i * 64 + 63 - __builtin_clzll(w[i]);
  return -1;
}

int splinter_min(const splinter_t *s, uint32_t *out) {
  if (!s->n) return QUIRE_ENOTFOUND;
  const sp_blk *b = &s->b[0];
  *out = (b->key << 8) | (uint32_t)(b->nfull ? 0 : first_bit(b->w));
  return 0;
}

int splinter_max(const splinter_t *s, uint32_t *out) {
  if (!s->n) return QUIRE_ENOTFOUND;
  const sp_blk *b = &s->b[s->n - 1];
  *out = (sp_blk_last(b) << 8) | (uint32_t)(b->nfull ? 255 : last_bit(b->w));
  return 0;
}

/* Elements of w at positions <= pos. */
static uint64_t bits_rank(const uint64_t w[4], unsigned pos) {
  uint64_t r = 0;
  unsigned word = pos >> 6;
  for (unsigned i = 0; i < word; i++) r += (uint64_t)__builtin_popcountll(w[i]);
  unsigned sh = pos & 63;
  uint64_t mask = sh == 63 ? ~0ull : ((1ull << (sh + 1)) - 1);
  return r + (uint64_t)__builtin_popcountll(w[word] & mask);
}

/* Position of the idx-th (0-based) set bit of w; idx < popcount(w). */
static unsigned bits_select(const uint64_t w[4], unsigned idx) {
  for (unsigned i = 0; i < 4; i++) {
    unsigned c = (unsigned)__builtin_popcountll(w[i]);
    if (idx < c) {
      uint64_t x = w[i];
      for (unsigned k = 0; k < idx; k++) x &= x - 1;
      return i * 64 + (unsigned)__builtin_ctzll(x);
    }
    idx -= c;
  }
  return 255;
}

uint64_t splinter_rank(const splinter_t *s, uint32_t value) {
  uint32_t key = value >> 8;
  uint64_t r = 0;
  for (size_t i = 0; i < s->n; i++) {
    const sp_blk *b = &s->b[i];
    if (b->key > key) break;
    if (sp_blk_last(b) < key) {
      r += sp_blk_card(b);
      continue;
    }
    if (b->nfull)
      r += ((uint64_t)key - b->key) * 256 + (value & 255) + 1;
    else
      r += bits_rank(b->w, value & 255);
    break;
  }
  return r;
}

int splinter_select(const splinter_t *s, uint64_t idx, uint32_t *out) {
  if (idx >= s->card) return QUIRE_ENOTFOUND;
  for (size_t i = 0; i < s->n; i++) {
    const sp_blk *b = &s->b[i];
    uint64_t c = sp_blk_card(b);
    if (idx >= c) {
      idx -= c;
      continue;
    }
    if (b->nfull)
      *out = (uint32_t)(((uint64_t)b->key << 8) + idx);
    else
      *out = (b->key << 8) | bits_select(b->w, (unsigned)idx);
    return 0;
  }
  return quire__err(QUIRE_EINTERNAL, "splinter_select: cardinality out of sync");
}

/* ---- mutation ------------------------------------------------------------------------ */

static int reserve(splinter_t *s, size_t extra) {
  if (s->n + extra <= s->cap) return 0;
  size_t ncap = s->cap ? s->cap : 8;
  while (ncap < s->n + extra) ncap *= 2;
  sp_blk *nb = quire__realloc(s->b, ncap * sizeof *nb);
  if (!nb) return quire__err(QUIRE_ENOMEM, "splinter: out of memory");
  s->b = nb;
  s->cap = ncap;
  return 0;
}

/* Replaces blocks [i, i+del) by add[0..nadd) (room already reserved). */
static void splice(splinter_t *s, size_t i, size_t del, const sp_blk *add, size_t nadd) {
  if (s->n - i - del) memmove(&s->b[i + nadd], &s->b[i + del], (s->n - i - del) * sizeof(sp_blk));
  if (nadd) memcpy(&s->b[i], add, nadd * sizeof(sp_blk));
  s->n = s->n - del + nadd;
}

/* Block i just became a full span: merge it with full neighbours. */
static void merge_full(splinter_t *s, size_t i) {
  if (i + 1 < s->n && s->b[i + 1].nfull && sp_blk_last(&s->b[i]) + 1 == s->b[i + 1].key) {
    s->b[i].nfull += s->b[i + 1].nfull;
    splice(s, i + 1, 1, NULL, 0);
  }
  if (i > 0 && s->b[i - 1].nfull && sp_blk_last(&s->b[i - 1]) + 1 == s->b[i].key) {
    s->b[i - 1].nfull += s->b[i].nfull;
    splice(s, i, 1, NULL, 0);
  }
}

int splinter_insert(splinter_t *s, uint32_t value) {
  uint32_t key = value >> 8;
  uint64_t bit = 1ull << (value & 63);
  unsigned word = (value >> 6) & 3;
  size_t i;
  if (s->n == 0 || sp_blk_last(&s->b[s->n - 1]) < key)
    i = s->n; /* append */
  else if (sp_blk_last(&s->b[s->n - 1]) == key)
    i = s->n - 1;
  else
    i = sp__blk_find(s->b, 0, s->n, key);
  if (i < s->n && s->b[i].key <= key) {
    sp_blk *b = &s->b[i];
    if (b->nfull || (b->w[word] & bit)) return 0;
    b->w[word] |= bit;
    s->card++;
    if (bits_full(b->w)) {
      b->nfull = 1;
      merge_full(s, i);
    }
    return 1;
  }
  int rc = reserve(s, 1);
  if (rc) return rc;
  sp_blk nb = {key, 0, {0, 0, 0, 0}};
  nb.w[word] = bit;
  splice(s, i, 0, &nb, 1);
  s->card++;
  return 1;
}

int splinter_remove(splinter_t *s, uint32_t value) {
  uint32_t key = value >> 8;
  uint64_t bit = 1ull << (value & 63);
  unsigned word = (value >> 6) & 3;
  size_t i = sp__blk_find(s->b, 0, s->n, key);
  if (i == s->n || s->b[i].key > key) return 0;
  sp_blk *b = &s->b[i];
  if (!b->nfull) {
    if (!(b->w[word] & bit)) return 0;
    b->w[word] &= ~bit;
    s->card--;
    if (bits_empty(b->w)) splice(s, i, 1, NULL, 0);
    return 1;
  }
  /* Split the full span [first, last] around key. */
  int rc = reserve(s, 2);
  if (rc) return rc;
  b = &s->b[i];
  uint32_t first = b->key, last = sp_blk_last(b);
  sp_blk add[3];
  size_t nadd = 0;
  if (first < key) add[nadd++] = (sp_blk){first, key - first, {~0ull, ~0ull, ~0ull, ~0ull}};
  add[nadd] = (sp_blk){key, 0, {~0ull, ~0ull, ~0ull, ~0ull}};
  add[nadd++].w[word] &= ~bit;
  if (key < last) add[nadd++] = (sp_blk){key + 1, last - key, {~0ull, ~0ull, ~0ull, ~0ull}};
  splice(s, i, 1, add, nadd);
  s->card--;
  return 1;
}

int splinter_insert_range(splinter_t *s, uint32_t lo, uint32_t hi) {
  if (lo > hi) return quire__err(QUIRE_EINVAL, "splinter_insert_range: lo > hi");
  return sp__op_range(s, lo, hi, 0);
}

int splinter_remove_range(splinter_t *s, uint32_t lo, uint32_t hi) {
  if (lo > hi) return quire__err(QUIRE_EINVAL, "splinter_remove_range: lo > hi");
  return sp__op_range(s, lo, hi, 1);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int splinter_insert_many(splinter_t *s, const uint32_t *vals, size_t n) {
  bool ascending = true;
  for (size_t i = 1; i < n && ascending; i++) ascending = vals[i] > vals[i - 1];
  if (ascending || n < 64) {
    for (size_t i = 0; i < n; i++) {
      int rc = splinter_insert(s, vals[i]);
      if (rc < 0) return rc;
    }
    return 0;
  }
  uint32_t *sorted = quire__malloc(n * sizeof *sorted);
  if (!sorted) return quire__err(QUIRE_ENOMEM, "splinter: out of memory");
  memcpy(sorted, vals, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_u32);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (m == 0 || sorted[i] != sorted[m - 1]) sorted[m++] = sorted[i];
  splinter_t *add = NULL;
  int rc = splinter_from_sorted(sorted, m, &add);
  quire__free(sorted);
  if (rc) return rc;
  rc = splinter_union(splinter_ref_owned(s), splinter_ref_owned(add), s);
  splinter_free(add);
  return rc;
}
