/*
 * splinter/view.c — views: parsing node headers, validating a whole encoding
 * (splinter_view_open) and answering queries in place on the bytes.
 *
 * The layout is in docs/SPLINTER.md. A node is parsed from its last byte (the
 * kind byte) backwards, within the extent its parent's index gives it (the
 * root: everything before the footer). The validator walks the fixed four
 * levels with a recursion depth of at most 4, checks every length, offset,
 * order and count against the bytes it was given, and recomputes every
 * cardinality, so that queries afterwards can trust the structure without
 * re-checking it.
 */
#include "splinter/splinter_int.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

static int corrupt(const char *what) { return quire__err(QUIRE_ECORRUPT, "splinter: %s", what); }

int sp__node_parse(const uint8_t *p, size_t len, int level, uint32_t base, sp_node *out) {
  if (len < 1) return corrupt("empty node");
  uint8_t kb = p[len - 1];
  unsigned w = 4 - (unsigned)level, kind = SP_KIND(kb), wa = SP_FA(kb) + 1, wb = SP_FB(kb) + 1;
  if (kb & 0x80) return corrupt("reserved kind bit set");
  switch (kind) {
  case SP_EMPTY:
  case SP_FULL:
    if (kb != kind) return corrupt("widths on an empty/full node");
    if (len != 1) return corrupt("empty/full node with payload");
    if (kind == SP_EMPTY && level != 0) return corrupt("empty node below the root");
    break;
  case SP_ARRAY: {
    if (wa > w || SP_FB(kb)) return corrupt("bad array widths");
    size_t n = (len - 1) / wa;
    if (n == 0 || n * wa != len - 1 || n > UINT32_MAX) return corrupt("bad array length");
    break;
  }
  case SP_RUNS: {
    if (wa > w || wb > w) return corrupt("bad runs widths");
    size_t step = (size_t)wa + wb, n = (len - 1) / step;
    if (n == 0 || n * step != len - 1 || n > UINT32_MAX) return corrupt("bad runs length");
    break;
  }
  case SP_BITMAP: {
    unsigned sw = sp_bstart_width(SP_FA(kb));
    if (SP_FB(kb)) return corrupt("bad bitmap widths");
    if (len < 2 + (size_t)sw) return corrupt("bitmap truncated");
    uint64_t start = sw ? sp_rd(p + len - 1 - sw, sw) : 0, m = len - 1 - sw;
    if (start + m > sp_level_cap(level) / 8) return corrupt("bitmap past the end of its node");
    break;
  }
  case SP_TREE: {
    if (level == 3) return corrupt("tree at block level");
    if (len < 3) return corrupt("tree truncated");
    uint32_t k = (uint32_t)p[len - 2] + 1;
    uint64_t index = 2 + sp_keystore_size(k) + (uint64_t)(k - 1) * (wa + wb);
    if (index + k > len) return corrupt("tree index truncated"); /* every child has >= 1 byte */
    break;
  }
  default: return corrupt("unknown node kind");
  }
  sp_node_fill(p, len, level, base, out);
  return 0;
}

uint32_t sp__tree_key(const sp_node *t, uint32_t i) {
  if (t->keymode == 2) return i;
  if (t->keymode == 0) return t->keys[i];
  /* i-th set bit of the 256-bit key bitmap: find the byte by popcount, then the bit */
  uint32_t seen = 0;
  for (uint32_t b = 0; b < 32; b++) {
    uint32_t x = t->keys[b], c = (uint32_t)__builtin_popcount(x);
    if (i < seen + c) {
      for (uint32_t j = seen; j < i; j++) x &= x - 1;
      return b * 8 + (uint32_t)__builtin_ctz(x);
    }
    seen += c;
  }
  return 255;
}

int sp__tree_find(const sp_node *t, uint32_t key, uint32_t *idx) {
  if (t->keymode == 2) {
    *idx = key;
    return 1;
  }
  if (t->keymode == 1) {
    uint32_t r = 0, word = key >> 6;
    for (uint32_t b = 0; b < word; b++) r += (uint32_t)__builtin_popcountll(ld_le64(t->keys + b * 8));
    uint64_t x = ld_le64(t->keys + word * 8);
    r += (uint32_t)__builtin_popcountll(x & ((1ull << (key & 63)) - 1));
    *idx = r;
    return (x >> (key & 63)) & 1;
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

/* Set bits in bytes p[0..n). */
static uint64_t popcount_bytes(const uint8_t *p, size_t n) {
  uint64_t c = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) c += (uint64_t)__builtin_popcountll(ld_le64(p + i));
  for (; i < n; i++) c += (uint64_t)__builtin_popcount(p[i]);
  return c;
}

/* ---- validation --------------------------------------------------------------------- */

/* 1 if the n values (1 or 2 bytes each) at q are not strictly ascending.
 * Most of a view's validation is this loop, so on x86-64 it compares 16
 * bytes at a time (SSE2 is part of the x86-64 baseline). */
static int unsorted_u8(const uint8_t *q, uint32_t n) {
  uint32_t i = 1;
  int bad = 0;
#ifdef __SSE2__
  const __m128i flip = _mm_set1_epi8((char)0x80);
  __m128i acc = _mm_setzero_si128();
  for (; i + 16 <= n; i += 16) { /* q[i..i+15] > q[i-1..i+14], unsigned */
    __m128i cur = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(q + i)), flip);
    __m128i prev = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(q + i - 1)), flip);
    acc = _mm_or_si128(acc, _mm_cmpgt_epi8(prev, cur));
    acc = _mm_or_si128(acc, _mm_cmpeq_epi8(prev, cur));
  }
  bad = _mm_movemask_epi8(acc) != 0;
#endif
  for (; i < n; i++) bad |= q[i] <= q[i - 1];
  return bad;
}
/* unsorted_u8 for the short arrays of blocks (a level-2 tree's children hold
 * ~10-20 values each): up to 17 values in one compare of two overlapping
 * 16-byte loads, when 17 bytes from q lie inside the buffer (end: its end). */
static inline int unsorted_u8_short(const uint8_t *q, uint32_t n, const uint8_t *end) {
#ifdef __SSE2__
  if (n >= 2 && n <= 17 && end - q >= 17) {
    const __m128i flip = _mm_set1_epi8((char)0x80);
    __m128i cur = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(q + 1)), flip);
    __m128i prev = _mm_xor_si128(_mm_loadu_si128((const __m128i *)q), flip);
    __m128i bad = _mm_or_si128(_mm_cmpgt_epi8(prev, cur), _mm_cmpeq_epi8(prev, cur));
    return (_mm_movemask_epi8(bad) & ((1u << (n - 1)) - 1)) != 0; /* pairs (q[i], q[i+1]), i < n - 1 */
  }
#else
  (void)end;
#endif
  return unsorted_u8(q, n);
}
static int unsorted_u16(const uint8_t *q, uint32_t n) {
  uint32_t i = 1;
  int bad = 0;
#ifdef __SSE2__
  const __m128i flip = _mm_set1_epi16((short)0x8000);
  __m128i acc = _mm_setzero_si128();
  for (; i + 8 <= n; i += 8) {
    __m128i cur = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(q + 2 * i)), flip);
    __m128i prev = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(q + 2 * (i - 1))), flip);
    acc = _mm_or_si128(acc, _mm_cmpgt_epi16(prev, cur));
    acc = _mm_or_si128(acc, _mm_cmpeq_epi16(prev, cur));
  }
  bad = _mm_movemask_epi8(acc) != 0;
#endif
  for (; i < n; i++) bad |= ld_le16(q + 2 * i) <= ld_le16(q + 2 * (i - 1));
  return bad;
}

static int validate(const sp_node *nd, const uint8_t *end, uint64_t *card);

/* A level-3 child (a block) checked without a call, for the kinds the
 * encoder writes there: 1 and *card set if it is valid, 0 if it is corrupt,
 * -1 for anything else (the general path decides). */
static inline int block_quick(const uint8_t *q, size_t len, const uint8_t *bend, uint64_t *card) {
  uint8_t kb = q[len - 1];
  size_t b = len - 1;
  if (kb == SP_KINDBYTE(SP_ARRAY, 0, 0)) {
    if (b < 1) return 0;
    *card = b;
    return !unsorted_u8_short(q, (uint32_t)b, bend);
  }
  if (kb == SP_KINDBYTE(SP_RUNS, 0, 0)) { /* (start, length - 1) byte pairs */
    if (b < 2 || (b & 1)) return 0;
    uint64_t total = 0;
    int prev_end = -2;
    for (size_t i = 0; i < b; i += 2) {
      int s = q[i], e = s + q[i + 1];
      if (e > 255 || s <= prev_end + 1) return 0;
      prev_end = e;
      total += (uint64_t)(e - s + 1);
    }
    *card = total;
    return 1;
  }
  if (kb == SP_KINDBYTE(SP_BITMAP, 0, 0) || kb == SP_KINDBYTE(SP_BITMAP, 1, 0)) {
    unsigned sw = kb == SP_KINDBYTE(SP_BITMAP, 1, 0);
    if (b < 1 + sw) return 0;
    size_t m = b - sw, start = sw ? q[m] : 0;
    if (start + m > 32) return 0;
    *card = popcount_bytes(q, m);
    return *card != 0;
  }
  return -1;
}

/* The children of a tree, in one pass: extent, key (the next set bit of a
 * key bitmap, not a count from the start), the child, the cumulative count.
 * Compiled for the offset and count widths of most trees (ow, cw constant). */
static inline __attribute__((always_inline)) int validate_children(const sp_node *t, const uint8_t *bend,
                                                                   uint64_t *card, const unsigned ow,
                                                                   const unsigned cw) {
  const uint32_t k = t->n;
  const unsigned shift = 8 * (3 - t->level);
  uint64_t total = 0;
  size_t prev = 0;
  uint32_t key = 0;
  for (uint32_t i = 0; i < k; i++) {
    size_t end = i + 1 < k ? sp_rd(t->ends + (size_t)i * ow, ow) : t->region;
    /* (checked before the child is read: a later, smaller end would come too late) */
    if (end <= prev || end > t->region) return corrupt("tree child offsets not ascending");
    const uint8_t *cp = t->p + prev;
    size_t clen = end - prev;
    prev = end;
    if (t->keymode == 0) {
      key = t->keys[i];
    } else if (t->keymode == 2) {
      key = i;
    } else { /* the next set bit of the key bitmap (k bits are set: checked) */
      uint32_t b = i ? key + 1 : 0;
      uint64_t x = b < 256 ? ld_le64(t->keys + (b >> 6) * 8) >> (b & 63) : 0;
      while (!x && b < 256) {
        b = (b | 63) + 1;
        x = b < 256 ? ld_le64(t->keys + (b >> 6) * 8) : 0;
      }
      key = b + (x ? (uint32_t)__builtin_ctzll(x) : 0);
    }
    uint64_t c;
    int quick = t->level == 2 ? block_quick(cp, clen, bend, &c) : -1;
    if (quick == 0) return corrupt("bad block");
    if (quick < 0) {
      sp_node child;
      int rc = sp__node_parse(cp, clen, t->level + 1, t->base | (key << shift), &child);
      if (rc) return rc;
      rc = validate(&child, bend, &c);
      if (rc) return rc;
    }
    total += c;
    if (i + 1 < k && sp_rd(t->cums + (size_t)i * cw, cw) != total)
      return corrupt("tree cumulative cardinality mismatch");
  }
  *card = total;
  return 0;
}

static int validate_tree(const sp_node *t, const uint8_t *bend, uint64_t *card) {
  uint32_t k = t->n;
  if (t->keymode == 0) {
    for (uint32_t i = 1; i < k; i++)
      if (t->keys[i] <= t->keys[i - 1]) return corrupt("tree keys not ascending");
  } else if (t->keymode == 1) {
    if (popcount_bytes(t->keys, 32) != k) return corrupt("tree key bitmap count mismatch");
  }
  if (t->wa == 1 && t->wb == 1) return validate_children(t, bend, card, 1, 1);
  if (t->wa == 2 && t->wb == 2) return validate_children(t, bend, card, 2, 2);
  if (t->wa == 2 && t->wb == 1) return validate_children(t, bend, card, 2, 1);
  return validate_children(t, bend, card, t->wa, t->wb);
}

static int validate(const sp_node *nd, const uint8_t *end, uint64_t *card) {
  switch (nd->kind) {
  case SP_EMPTY: *card = 0; return 0;
  case SP_FULL: *card = sp_level_cap(nd->level); return 0;
  case SP_ARRAY: {
    const uint8_t *q = nd->p;
    uint32_t n = nd->n, bad = 0;
    switch (nd->wa) { /* strictly ascending; one loop per width so it vectorizes */
    case 1: bad = (uint32_t)unsorted_u8_short(q, n, end); break;
    case 2: bad = (uint32_t)unsorted_u16(q, n); break;
    default: {
      unsigned w = nd->wa;
      for (uint32_t i = 1; i < n; i++)
        bad |= sp_rd(q + (size_t)i * w, w) <= sp_rd(q + (size_t)(i - 1) * w, w);
      break;
    }
    }
    if (bad) return corrupt("array values not ascending");
    *card = n;
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
    uint64_t total = popcount_bytes(nd->p, nd->n);
    if (total == 0) return corrupt("empty bitmap");
    *card = total;
    return 0;
  }
  case SP_TREE: return validate_tree(nd, end, card);
  default: return corrupt("unknown node kind");
  }
}

int splinter_view_open(const void *bytes, size_t len, splinter_view_t *view) {
  const uint8_t *p = bytes;
  if (!p || len < SPLINTER_MIN_SIZE) return corrupt("too short");
  const uint8_t *magic = p + len - 10;
  if (magic[0] != SP_MAGIC0 || magic[1] != SP_MAGIC1) return corrupt("bad magic");
  if (quire__xxh3(p, len - 8) != ld_le64(p + len - 8)) return corrupt("checksum mismatch");
  uint8_t flags = p[len - 11];
  if ((flags & 15) != SPLINTER_FORMAT_VERSION)
    return quire__err(QUIRE_EVERSION, "splinter: format version %u (this build reads %u)", flags & 15,
                      SPLINTER_FORMAT_VERSION);
  if (flags & 0xC0) return corrupt("reserved footer bits set");
  unsigned cw = ((flags >> 4) & 3) + 1;
  if (len < (size_t)SP_FOOTER_FIXED + cw + 1) return corrupt("too short");
  size_t root_len = len - SP_FOOTER_FIXED - cw;
  uint32_t footer_card = sp_rd(p + root_len, cw);
  sp_node root;
  int rc = sp__node_parse(p, root_len, 0, 0, &root);
  if (rc) return rc;
  uint64_t card;
  rc = validate(&root, p + len, &card);
  if (rc) return rc;
  if ((uint32_t)card != footer_card) return corrupt("footer cardinality mismatch");
  view->bytes = p;
  view->len = len;
  view->root_len = root_len;
  view->cardinality = card;
  /* Lookups start below the one-child trees on top (a small volume's values
   * all share their top bytes: two such levels under 65536 pages). */
  size_t nlen = root_len;
  unsigned level = 0;
  uint32_t prefix = 0;
  while (level < 3 && SP_KIND(p[nlen - 1]) == SP_TREE && p[nlen - 2] == 0) {
    prefix = prefix << 8 | p[nlen - 3];
    nlen -= 3;
    level++;
  }
  view->entry_len = nlen;
  view->entry_prefix = prefix;
  view->entry_level = (uint8_t)level;
  return 0;
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
static inline uint32_t arr_upper(const sp_node *nd, uint32_t x) {
  const uint8_t *q = nd->p;
  uint32_t lo = 0, n = nd->n;
  switch (nd->wa) { /* branch-light binary search, one loop per width */
#define SP_UPPER(W, LD)                                                                                      \
  while (n > 1) {                                                                                            \
    uint32_t half = n / 2;                                                                                   \
    lo = (LD(q + (size_t)(lo + half) * W) <= x) ? lo + half : lo;                                            \
    n -= half;                                                                                               \
  }                                                                                                          \
  return lo + (n == 1 && LD(q + (size_t)lo * W) <= x);
#define SP_LD1(a) (*(a))
#define SP_LD3(a) ((uint32_t)ld_le16(a) | (uint32_t)(a)[2] << 16)
  case 1: SP_UPPER(1, SP_LD1)
  case 2: SP_UPPER(2, ld_le16)
  case 3: SP_UPPER(3, SP_LD3)
  default: SP_UPPER(4, ld_le32)
  }
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

/* The hot query: walks down from the root decoding only the fields it needs
 * (no node descriptor), with one binary-search loop per value width. */
bool splinter_view_contains(const splinter_view_t *v, uint32_t value) {
  const uint8_t *p = v->bytes, *vend = v->bytes + v->len;
  size_t len = v->entry_len;
  unsigned level = v->entry_level;
  uint32_t x = value;
  if (level) { /* below the one-child trees on top: the prefix they fix, then the local value */
    unsigned shift = 8 * (4 - level);
    if (value >> shift != v->entry_prefix) return false;
    x = value & ((1u << shift) - 1);
  }
  for (;;) {
    uint8_t kb = p[len - 1];
    switch (kb & 7) {
    case SP_FULL: return true;
    case SP_ARRAY: {
      size_t b = len - 1;
#ifdef __SSE2__
      /* one-byte values (a block's array, or a root below 256): one compare (x < 256, or the
       * byte compare would find x's low byte) */
      if (kb == SP_KINDBYTE(SP_ARRAY, 0, 0) && b <= 32 && x < 256 && vend - p >= 32) {
        const __m128i xv = _mm_set1_epi8((char)x);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), xv)) |
                     (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), xv))
                         << 16;
        return (m & (uint32_t)((1ull << b) - 1)) != 0;
      }
#endif
      switch (SP_FA(kb)) { /* lower bound, then compare, one loop per width */
#define SP_FIND(W, LD)                                                                                       \
  {                                                                                                          \
    uint32_t lo = 0, n = (uint32_t)(b / W);                                                                  \
    while (n > 1) {                                                                                          \
      uint32_t half = n / 2;                                                                                 \
      lo = LD(p + (size_t)(lo + half) * W) < x ? lo + half : lo;                                             \
      n -= half;                                                                                             \
    }                                                                                                        \
    uint32_t y = LD(p + (size_t)lo * W);                                                                     \
    if (y < x && (size_t)(lo + 1) * W < b) y = LD(p + (size_t)(lo + 1) * W);                                 \
    return y == x;                                                                                           \
  }
      case 0: SP_FIND(1, SP_LD1)
      case 1:
#ifdef __SSE2__
      { /* halve down to 16 candidates, then compare them all at once (no chain of dependent loads) */
        uint32_t lo = 0, n = (uint32_t)(b / 2);
        if (x > 0xFFFF) return false;
        while (n > 15) {
          uint32_t half = n / 2;
          lo = ld_le16(p + (size_t)(lo + half) * 2) < x ? lo + half : lo;
          n -= half;
        }
        /* the lower bound of x is in lo .. lo + n: at most 16 values, fewer at the end */
        const uint8_t *q = p + (size_t)lo * 2;
        if (vend - q >= 32) {
          uint32_t m = (uint32_t)(b / 2) - lo;
          if (m > 16) m = 16;
          const __m128i xv = _mm_set1_epi16((short)x);
          uint32_t eq = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_loadu_si128((const __m128i *)q), xv)) |
                        (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_loadu_si128((const __m128i *)(q + 16)), xv))
                            << 16;
          return (eq & (uint32_t)((1ull << (2 * m)) - 1)) != 0;
        }
      }
#endif
        SP_FIND(2, ld_le16)
      case 2: SP_FIND(3, SP_LD3)
      default: SP_FIND(4, ld_le32)
#undef SP_FIND
      }
    }
    case SP_BITMAP: {
      unsigned sw = sp_bstart_width(SP_FA(kb));
      uint32_t start = sw ? sp_rd(p + len - 1 - sw, sw) : 0, byte = x >> 3;
      return byte >= start && byte - start < len - 1 - sw && ((p[byte - start] >> (x & 7)) & 1);
    }
    case SP_TREE: {
      unsigned shift = 8 * (3 - level), ow = SP_FA(kb) + 1, cw = SP_FB(kb) + 1;
      uint32_t k = (uint32_t)p[len - 2] + 1, key = x >> shift, idx;
      if (k == 1) { /* one child (small volumes: the top levels): key, then the child is the rest */
        if (p[len - 3] != key) return false;
        len -= 3;
        level++;
        x &= (1u << shift) - 1;
        continue;
      }
      const uint8_t *keys = p + len - 2 - sp_keystore_size(k);
#ifdef __SSE2__
      if (k <= 32 && keys + 32 <= vend) { /* keys below key, counted in two 16-byte compares */
        const __m128i flip = _mm_set1_epi8((char)0x80), kv = _mm_set1_epi8((char)(key ^ 0x80));
        __m128i a = _mm_xor_si128(_mm_loadu_si128((const __m128i *)keys), flip);
        __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(keys + 16)), flip);
        uint32_t lt = (uint32_t)_mm_movemask_epi8(_mm_cmpgt_epi8(kv, a)) |
                      (uint32_t)_mm_movemask_epi8(_mm_cmpgt_epi8(kv, b)) << 16;
        idx = (uint32_t)__builtin_popcount(lt & (uint32_t)((1ull << k) - 1));
        if (idx == k || keys[idx] != key) return false;
      } else
#endif
      if (k <= 32) { /* branch-free lower bound: probes at random keys mispredict a branchy one */
        uint32_t lo = 0, n = k;
        while (n > 1) {
          uint32_t half = n / 2;
          lo = keys[lo + half] < key ? lo + half : lo;
          n -= half;
        }
        lo += keys[lo] < key;
        if (lo == k || keys[lo] != key) return false;
        idx = lo;
      } else if (k < 256) {
        uint32_t word = key >> 6, r = 0;
        for (uint32_t w = 0; w < word; w++) r += (uint32_t)__builtin_popcountll(ld_le64(keys + w * 8));
        uint64_t bits = ld_le64(keys + word * 8);
        if (!((bits >> (key & 63)) & 1)) return false;
        idx = r + (uint32_t)__builtin_popcountll(bits & ((1ull << (key & 63)) - 1));
      } else {
        idx = key;
      }
      const uint8_t *ends = keys - (size_t)(k - 1) * (ow + cw);
      size_t start = idx ? sp_rd(ends + (size_t)(idx - 1) * ow, ow) : 0;
      size_t end = idx + 1 < k ? sp_rd(ends + (size_t)idx * ow, ow) : (size_t)(ends - p);
      p += start;
      len = end - start;
      level++;
      x &= (1u << shift) - 1;
      continue;
    }
    case SP_RUNS: { /* last run starting at or below x: branch-light search, one loop per start width */
      unsigned sw = SP_FA(kb) + 1, lw = SP_FB(kb) + 1, step = sw + lw;
      uint32_t lo = 0, n = (uint32_t)sp_div_small(len - 1, step);
      switch (sw) {
#define SP_RUNFIND(LD)                                                                                       \
  while (n > 1) {                                                                                            \
    uint32_t half = n / 2;                                                                                   \
    lo = LD(p + (size_t)(lo + half) * step) <= x ? lo + half : lo;                                           \
    n -= half;                                                                                               \
  }                                                                                                          \
  break;
      case 1: SP_RUNFIND(SP_LD1)
      case 2: SP_RUNFIND(ld_le16)
      case 3: SP_RUNFIND(SP_LD3)
      default: SP_RUNFIND(ld_le32)
#undef SP_RUNFIND
      }
      const uint8_t *run = p + (size_t)lo * step;
      uint32_t start = sp_rd(run, sw);
      return start <= x && (uint64_t)x <= (uint64_t)start + sp_rd(run + sw, lw);
    }
    default: return false;
    }
  }
}

uint64_t splinter_view_cardinality(const splinter_view_t *v) { return v->cardinality; }
bool splinter_view_is_empty(const splinter_view_t *v) { return v->cardinality == 0; }

/* Elements <= x in a bitmap node (x local). */
static uint64_t bitmap_rank(const sp_node *nd, uint32_t x) {
  uint32_t byte = x >> 3;
  if (byte < nd->bstart) return 0;
  uint64_t rel = byte - nd->bstart;
  if (rel >= nd->n) return popcount_bytes(nd->p, nd->n);
  return popcount_bytes(nd->p, (size_t)rel) +
         (uint64_t)__builtin_popcount(nd->p[rel] & ((2u << (x & 7)) - 1));
}

uint64_t splinter_view_rank(const splinter_view_t *v, uint32_t value) {
  sp_node nd;
  sp__view_root(v, &nd);
  uint64_t r = 0, card = v->cardinality; /* card: elements in nd */
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
      int found = sp__tree_find(&nd, key, &idx);
      if (idx == nd.n) return r + card; /* every child is below key */
      uint64_t below = idx ? sp__tree_cum(&nd, idx - 1) : 0;
      r += below;
      if (!found) return r;
      card = (idx + 1 < nd.n ? sp__tree_cum(&nd, idx) : card) - below;
      sp_node child;
      sp__tree_child(&nd, idx, &child);
      nd = child;
      continue;
    }
    default: return r;
    }
  }
}

static int out_of_sync(void) { return quire__err(QUIRE_EINTERNAL, "splinter: view structure out of sync"); }

int splinter_view_select(const splinter_view_t *v, uint64_t idx, uint32_t *out) {
  if (idx >= v->cardinality) return QUIRE_ENOTFOUND;
  sp_node nd;
  sp__view_root(v, &nd);
  for (;;) {
    switch (nd.kind) {
    case SP_FULL: *out = nd.base + (uint32_t)idx; return 0;
    case SP_ARRAY:
      if (idx >= nd.n) return out_of_sync();
      *out = nd.base + arr_at(&nd, (uint32_t)idx);
      return 0;
    case SP_RUNS:
      for (uint32_t j = 0; j < nd.n; j++) {
        uint64_t c = (uint64_t)run_lenm1(&nd, j) + 1;
        if (idx < c) {
          *out = nd.base + run_start(&nd, j) + (uint32_t)idx;
          return 0;
        }
        idx -= c;
      }
      return out_of_sync();
    case SP_BITMAP:
      for (size_t i = 0; i < nd.n; i++) {
        unsigned b = nd.p[i], c = (unsigned)__builtin_popcount(b);
        if (idx < c) {
          for (uint64_t k = 0; k < idx; k++) b &= b - 1;
          *out = nd.base + (uint32_t)((nd.bstart + i) * 8) + (uint32_t)__builtin_ctz(b);
          return 0;
        }
        idx -= c;
      }
      return out_of_sync();
    case SP_TREE: {
      uint32_t lo = 0, hi = nd.n - 1; /* first child whose cumulative count > idx (the last if none) */
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
    default: return out_of_sync();
    }
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
    case SP_BITMAP:
      for (size_t i = nd.n; i-- > 0;)
        if (nd.p[i]) {
          *out = nd.base + (uint32_t)((nd.bstart + i) * 8) + 31 - (uint32_t)__builtin_clz(nd.p[i]);
          return 0;
        }
      return out_of_sync();
    case SP_TREE: {
      sp_node child;
      sp__tree_child(&nd, nd.n - 1, &child);
      nd = child;
      continue;
    }
    default: return out_of_sync();
    }
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
