/*
 * splinter/view.c — views: parsing node headers, validating a whole encoding
 * (splinter_view_open) and answering queries in place on the bytes.
 *
 * The layout is in docs/SPLINTER.md. Nodes are parsed from their last byte
 * (the kind byte) backwards; a tree's index gives each child's extent. The
 * validator walks the fixed four levels with a recursion depth of at most 4,
 * checks every length, offset, order and count against the bytes it was
 * given, and recomputes every cardinality, so that queries afterwards can
 * trust the structure without re-checking it.
 */
#include "splinter/splinter_int.h"

#define FOOTER SPLINTER_FOOTER_SIZE

static int corrupt(const char *what) { return quire__err(QUIRE_ECORRUPT, "splinter: %s", what); }

static size_t keystore_size(uint32_t k) { return k <= 32 ? k : k < 256 ? 32 : 0; }

int sp__node_parse(const uint8_t *p, size_t len, int level, uint32_t base, sp_node *out) {
  if (len < 1) return corrupt("empty node");
  uint8_t kb = p[len - 1];
  unsigned w = 4 - (unsigned)level;
  memset(out, 0, sizeof *out);
  out->p = p;
  out->len = len;
  out->base = base;
  out->level = (uint8_t)level;
  out->kind = (uint8_t)SP_KIND(kb);
  out->wa = (uint8_t)SP_WA(kb);
  out->wb = (uint8_t)SP_WB(kb);
  if (kb & 0x80) return corrupt("reserved kind bit set");
  switch (out->kind) {
  case SP_EMPTY:
  case SP_FULL:
    if (kb != out->kind) return corrupt("widths on an empty/full node");
    if (len != 1) return corrupt("empty/full node with payload");
    if (out->kind == SP_EMPTY && level != 0) return corrupt("empty node below the root");
    return 0;
  case SP_ARRAY: {
    if (out->wa > w || out->wb > w) return corrupt("array width too large");
    if (len < 1u + out->wb) return corrupt("array truncated");
    uint64_t n = (uint64_t)sp_rd(p + len - 1 - out->wb, out->wb) + 1;
    if (n > UINT32_MAX || n * out->wa + out->wb + 1 != len) return corrupt("array length mismatch");
    out->n = (uint32_t)n;
    return 0;
  }
  case SP_RUNS: {
    if (out->wa > w || out->wb > w) return corrupt("runs width too large");
    if (len < 1u + out->wb) return corrupt("runs truncated");
    uint64_t n = (uint64_t)sp_rd(p + len - 1 - out->wb, out->wb) + 1;
    if (n > UINT32_MAX || n * (out->wa + out->wb) + out->wb + 1 != len)
      return corrupt("runs length mismatch");
    out->n = (uint32_t)n;
    return 0;
  }
  case SP_BITMAP:
    if (kb != out->kind) return corrupt("widths on a bitmap node");
    if (level == 0) return corrupt("bitmap at the root");
    if (len != sp_level_cap(level) / 8 + 1) return corrupt("bitmap length mismatch");
    return 0;
  case SP_TREE: {
    if (level == 3) return corrupt("tree at block level");
    if (len < 2) return corrupt("tree truncated");
    uint32_t k = (uint32_t)p[len - 2] + 1;
    size_t ks = keystore_size(k);
    uint64_t index = 2 + ks + (uint64_t)k * (out->wa + out->wb);
    if (index > len) return corrupt("tree index truncated");
    out->n = k;
    out->keymode = k <= 32 ? 0 : k < 256 ? 1 : 2;
    out->keys = p + len - 2 - ks;
    out->cums = out->keys - (size_t)k * out->wb;
    out->ends = out->cums - (size_t)k * out->wa;
    size_t region = len - (size_t)index;
    if (sp_rd(out->ends + (size_t)(k - 1) * out->wa, out->wa) != region)
      return corrupt("tree children length mismatch");
    return 0;
  }
  default: return corrupt("unknown node kind");
  }
}

uint32_t sp__tree_key(const sp_node *t, uint32_t i) {
  if (t->keymode == 2) return i;
  if (t->keymode == 0) return t->keys[i];
  /* i-th set bit of the key bitmap */
  uint32_t seen = 0;
  for (uint32_t b = 0; b < 32; b++) {
    uint32_t c = (uint32_t)__builtin_popcount(t->keys[b]);
    if (i < seen + c) {
      uint32_t x = t->keys[b];
      for (uint32_t j = seen; j < i; j++) x &= x - 1;
      return b * 8 + (uint32_t)__builtin_ctz(x);
    }
    seen += c;
  }
  return 255;
}

static size_t tree_end(const sp_node *t, uint32_t i) { return sp_rd(t->ends + (size_t)i * t->wa, t->wa); }

void sp__tree_child(const sp_node *t, uint32_t i, sp_node *child) {
  size_t start = i ? tree_end(t, i - 1) : 0, end = tree_end(t, i);
  unsigned shift = 8 * (3 - t->level);
  uint32_t base = t->base | (sp__tree_key(t, i) << shift);
  /* Validated by splinter_view_open; cannot fail here. */
  (void)sp__node_parse(t->p + start, end - start, t->level + 1, base, child);
}

/* Finds key in a tree: 1 and *idx = its child, or 0 and *idx = children below key. */
static int tree_find(const sp_node *t, uint32_t key, uint32_t *idx) {
  if (t->keymode == 2) {
    *idx = key;
    return 1;
  }
  if (t->keymode == 1) {
    uint32_t byte = key >> 3, r = 0;
    for (uint32_t b = 0; b < byte; b++) r += (uint32_t)__builtin_popcount(t->keys[b]);
    r += (uint32_t)__builtin_popcount(t->keys[byte] & ((1u << (key & 7)) - 1));
    *idx = r;
    return (t->keys[byte] >> (key & 7)) & 1;
  }
  uint32_t lo = 0, hi = t->n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (t->keys[mid] < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  *idx = lo;
  return lo < t->n && t->keys[lo] == key;
}

/* ---- validation --------------------------------------------------------------------- */

static int validate(const sp_node *nd, uint64_t *card);

static int validate_tree(const sp_node *t, uint64_t *card) {
  uint32_t k = t->n;
  if (t->keymode == 0) {
    for (uint32_t i = 1; i < k; i++)
      if (t->keys[i] <= t->keys[i - 1]) return corrupt("tree keys not ascending");
  } else if (t->keymode == 1) {
    uint32_t c = 0;
    for (int b = 0; b < 32; b++) c += (uint32_t)__builtin_popcount(t->keys[b]);
    if (c != k) return corrupt("tree key bitmap count mismatch");
  }
  uint64_t total = 0;
  size_t prev = 0;
  for (uint32_t i = 0; i < k; i++) {
    size_t end = tree_end(t, i);
    if (end <= prev) return corrupt("tree child offsets not ascending");
    prev = end;
  }
  for (uint32_t i = 0; i < k; i++) {
    sp_node child;
    size_t start = i ? tree_end(t, i - 1) : 0, end = tree_end(t, i);
    unsigned shift = 8 * (3 - t->level);
    int rc = sp__node_parse(t->p + start, end - start, t->level + 1, t->base | (sp__tree_key(t, i) << shift),
                            &child);
    if (rc) return rc;
    uint64_t c;
    rc = validate(&child, &c);
    if (rc) return rc;
    total += c;
    if (sp__tree_cum(t, i) != total) return corrupt("tree cumulative cardinality mismatch");
  }
  *card = total;
  return 0;
}

static int validate(const sp_node *nd, uint64_t *card) {
  switch (nd->kind) {
  case SP_EMPTY: *card = 0; return 0;
  case SP_FULL: *card = sp_level_cap(nd->level); return 0;
  case SP_ARRAY: {
    uint32_t prev = 0;
    for (uint32_t i = 0; i < nd->n; i++) {
      uint32_t v = sp_rd(nd->p + (size_t)i * nd->wa, nd->wa);
      if (i && v <= prev) return corrupt("array values not ascending");
      prev = v;
    }
    *card = nd->n;
    return 0;
  }
  case SP_RUNS: {
    uint64_t prev_end = 0, total = 0, cap = sp_level_cap(nd->level);
    size_t step = (size_t)nd->wa + nd->wb;
    for (uint32_t i = 0; i < nd->n; i++) {
      uint64_t s = sp_rd(nd->p + i * step, nd->wa);
      uint64_t e = s + sp_rd(nd->p + i * step + nd->wa, nd->wb);
      if (e >= cap) return corrupt("run past the end of its node");
      if (i && s <= prev_end + 1) return corrupt("runs overlap, touch or are not ascending");
      prev_end = e;
      total += e - s + 1;
    }
    *card = total;
    return 0;
  }
  case SP_BITMAP: {
    uint64_t total = 0;
    size_t nbytes = nd->len - 1;
    for (size_t i = 0; i < nbytes; i += 8) total += (uint64_t)__builtin_popcountll(ld_le64(nd->p + i));
    if (total == 0) return corrupt("empty bitmap");
    *card = total;
    return 0;
  }
  case SP_TREE: return validate_tree(nd, card);
  default: return corrupt("unknown node kind");
  }
}

int splinter_view_open(const void *bytes, size_t len, splinter_view_t *view) {
  const uint8_t *p = bytes;
  if (!p || len < SPLINTER_MIN_SIZE) return corrupt("too short");
  const uint8_t *f = p + len - FOOTER;
  if (f[5] != SP_MAGIC0 || f[6] != SP_MAGIC1) return corrupt("bad magic");
  if (quire__xxh3(p, len - 8) != ld_le64(f + 7)) return corrupt("checksum mismatch");
  if (f[4] != SPLINTER_FORMAT_VERSION)
    return quire__err(QUIRE_EVERSION, "splinter: format version %u (this build reads %u)", f[4],
                      SPLINTER_FORMAT_VERSION);
  sp_node root;
  int rc = sp__node_parse(p, len - FOOTER, 0, 0, &root);
  if (rc) return rc;
  uint64_t card;
  rc = validate(&root, &card);
  if (rc) return rc;
  if ((uint32_t)card != ld_le32(f)) return corrupt("footer cardinality mismatch");
  view->bytes = p;
  view->len = len;
  view->root_len = len - FOOTER;
  view->cardinality = card;
  return 0;
}

void sp__view_root(const splinter_view_t *v, sp_node *root) {
  (void)sp__node_parse(v->bytes, v->root_len, 0, 0, root);
}

/* ---- queries on nodes ------------------------------------------------------------------ */

static inline uint32_t arr_at(const sp_node *nd, uint32_t i) {
  return sp_rd(nd->p + (size_t)i * nd->wa, nd->wa);
}
static inline uint32_t run_start(const sp_node *nd, uint32_t i) {
  return sp_rd(nd->p + (size_t)i * (nd->wa + nd->wb), nd->wa);
}
static inline uint32_t run_lenm1(const sp_node *nd, uint32_t i) {
  return sp_rd(nd->p + (size_t)i * (nd->wa + nd->wb) + nd->wa, nd->wb);
}

/* Number of array values <= x. */
static uint32_t arr_upper(const sp_node *nd, uint32_t x) {
  uint32_t lo = 0, hi = nd->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (arr_at(nd, mid) <= x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}
/* Number of runs whose start is <= x. */
static uint32_t runs_upper(const sp_node *nd, uint32_t x) {
  uint32_t lo = 0, hi = nd->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (run_start(nd, mid) <= x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static inline uint32_t local_mask(int level) {
  return level == 0 ? 0xFFFFFFFFu : (uint32_t)(sp_level_cap(level) - 1);
}

bool splinter_view_contains(const splinter_view_t *v, uint32_t value) {
  sp_node nd;
  sp__view_root(v, &nd);
  for (;;) {
    uint32_t x = value & local_mask(nd.level);
    switch (nd.kind) {
    case SP_FULL: return true;
    case SP_ARRAY: {
      uint32_t i = arr_upper(&nd, x);
      return i > 0 && arr_at(&nd, i - 1) == x;
    }
    case SP_RUNS: {
      uint32_t i = runs_upper(&nd, x);
      return i > 0 && (uint64_t)x <= (uint64_t)run_start(&nd, i - 1) + run_lenm1(&nd, i - 1);
    }
    case SP_BITMAP: return (nd.p[x >> 3] >> (x & 7)) & 1;
    case SP_TREE: {
      uint32_t idx, key = x >> (8 * (3 - nd.level));
      if (!tree_find(&nd, key, &idx)) return false;
      sp_node child;
      sp__tree_child(&nd, idx, &child);
      nd = child;
      continue;
    }
    default: return false;
    }
  }
}

uint64_t splinter_view_cardinality(const splinter_view_t *v) { return v->cardinality; }
bool splinter_view_is_empty(const splinter_view_t *v) { return v->cardinality == 0; }

/* Elements <= x in a bitmap node (x local). */
static uint64_t bitmap_rank(const sp_node *nd, uint32_t x) {
  uint64_t r = 0;
  size_t word = x >> 6;
  for (size_t i = 0; i < word; i++) r += (uint64_t)__builtin_popcountll(ld_le64(nd->p + i * 8));
  unsigned sh = x & 63;
  uint64_t mask = sh == 63 ? ~0ull : ((1ull << (sh + 1)) - 1);
  return r + (uint64_t)__builtin_popcountll(ld_le64(nd->p + word * 8) & mask);
}

uint64_t splinter_view_rank(const splinter_view_t *v, uint32_t value) {
  sp_node nd;
  sp__view_root(v, &nd);
  uint64_t r = 0;
  for (;;) {
    uint32_t x = value & local_mask(nd.level);
    switch (nd.kind) {
    case SP_FULL: return r + (uint64_t)x + 1;
    case SP_ARRAY: return r + arr_upper(&nd, x);
    case SP_RUNS: {
      uint32_t i = runs_upper(&nd, x);
      for (uint32_t j = 0; j + 1 < i; j++) r += (uint64_t)run_lenm1(&nd, j) + 1;
      if (i) {
        uint64_t s = run_start(&nd, i - 1), e = s + run_lenm1(&nd, i - 1);
        r += (x <= e ? x : e) - s + 1;
      }
      return r;
    }
    case SP_BITMAP: return r + bitmap_rank(&nd, x);
    case SP_TREE: {
      uint32_t idx, key = x >> (8 * (3 - nd.level));
      int found = tree_find(&nd, key, &idx);
      if (idx) r += sp__tree_cum(&nd, idx - 1);
      if (!found) return r;
      sp_node child;
      sp__tree_child(&nd, idx, &child);
      nd = child;
      continue;
    }
    default: return r;
    }
  }
}

int splinter_view_select(const splinter_view_t *v, uint64_t idx, uint32_t *out) {
  if (idx >= v->cardinality) return QUIRE_ENOTFOUND;
  sp_node nd;
  sp__view_root(v, &nd);
  for (;;) {
    switch (nd.kind) {
    case SP_FULL: *out = nd.base + (uint32_t)idx; return 0;
    case SP_ARRAY: *out = nd.base + arr_at(&nd, (uint32_t)idx); return 0;
    case SP_RUNS:
      for (uint32_t j = 0; j < nd.n; j++) {
        uint64_t c = (uint64_t)run_lenm1(&nd, j) + 1;
        if (idx < c) {
          *out = nd.base + run_start(&nd, j) + (uint32_t)idx;
          return 0;
        }
        idx -= c;
      }
      break;
    case SP_BITMAP: {
      size_t nwords = (nd.len - 1) / 8;
      for (size_t i = 0; i < nwords; i++) {
        uint64_t w = ld_le64(nd.p + i * 8);
        unsigned c = (unsigned)__builtin_popcountll(w);
        if (idx < c) {
          for (uint64_t k = 0; k < idx; k++) w &= w - 1;
          *out = nd.base + (uint32_t)(i * 64) + (uint32_t)__builtin_ctzll(w);
          return 0;
        }
        idx -= c;
      }
      break;
    }
    case SP_TREE: {
      uint32_t lo = 0, hi = nd.n - 1; /* first child whose cumulative count > idx */
      while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (sp__tree_cum(&nd, mid) <= idx)
          lo = mid + 1;
        else
          hi = mid;
      }
      if (lo) idx -= sp__tree_cum(&nd, lo - 1);
      sp_node child;
      sp__tree_child(&nd, lo, &child);
      nd = child;
      continue;
    }
    default: break;
    }
    return quire__err(QUIRE_EINTERNAL, "splinter_view_select: structure out of sync");
  }
}

int splinter_view_min(const splinter_view_t *v, uint32_t *out) {
  if (v->cardinality == 0) return QUIRE_ENOTFOUND;
  return splinter_view_select(v, 0, out);
}

int splinter_view_max(const splinter_view_t *v, uint32_t *out) {
  if (v->cardinality == 0) return QUIRE_ENOTFOUND;
  sp_node nd;
  sp__view_root(v, &nd);
  for (;;) {
    switch (nd.kind) {
    case SP_FULL: *out = nd.base + local_mask(nd.level); return 0;
    case SP_ARRAY: *out = nd.base + arr_at(&nd, nd.n - 1); return 0;
    case SP_RUNS: *out = nd.base + run_start(&nd, nd.n - 1) + run_lenm1(&nd, nd.n - 1); return 0;
    case SP_BITMAP: {
      size_t nwords = (nd.len - 1) / 8;
      for (size_t i = nwords; i-- > 0;) {
        uint64_t w = ld_le64(nd.p + i * 8);
        if (w) {
          *out = nd.base + (uint32_t)(i * 64) + 63 - (uint32_t)__builtin_clzll(w);
          return 0;
        }
      }
      break;
    }
    case SP_TREE: {
      sp_node child;
      sp__tree_child(&nd, nd.n - 1, &child);
      nd = child;
      continue;
    }
    default: break;
    }
    return quire__err(QUIRE_EINTERNAL, "splinter_view_max: structure out of sync");
  }
}

/* ---- either form --------------------------------------------------------------------------- */

bool splinter_ref_contains(splinter_ref_t s, uint32_t value) {
  return s.owned ? splinter_contains(s.owned, value) : splinter_view_contains(s.view, value);
}
uint64_t splinter_ref_cardinality(splinter_ref_t s) {
  return s.owned ? splinter_cardinality(s.owned) : splinter_view_cardinality(s.view);
}
int splinter_ref_min(splinter_ref_t s, uint32_t *out) {
  return s.owned ? splinter_min(s.owned, out) : splinter_view_min(s.view, out);
}
int splinter_ref_max(splinter_ref_t s, uint32_t *out) {
  return s.owned ? splinter_max(s.owned, out) : splinter_view_max(s.view, out);
}
