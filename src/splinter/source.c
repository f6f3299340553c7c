/*
 * splinter/source.c — block cursors, view walkers and the public iterator.
 *
 * Every generic algorithm reads a set as a window of owned-form blocks (a
 * 256-value bitmap, or a span of full blocks) through a cursor (sp_cur in
 * splinter_int.h). An owned set's window is its own block array. A view is
 * decoded by a walker, many blocks per call, into a small buffer the caller
 * provides: each leaf node is turned into blocks with one loop per node kind
 * (bitmap bytes are loaded as words; a block's array values and runs are
 * ORed together from constant word-mask tables), and a level-2 tree, whose
 * children are all single blocks, has a loop of its own. Blocks that go to a
 * result unchanged are decoded straight into it (sp__cur_drain). Nothing
 * here allocates.
 */
#include "splinter/splinter_int.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- appending decoded blocks ----------------------------------------------------------
 * A window is canonical like an owned set: no empty or full bitmap blocks,
 * adjacent full spans merged (an encoding may hold two full leaves side by
 * side, or a bitmap chunk with every bit set). Across two windows a full span
 * may continue; consumers merge that as they append. */

static inline void put_full(sp_blk *out, size_t *n, uint32_t lo, uint32_t hi) {
  if (*n) {
    sp_blk *p = &out[*n - 1];
    if (p->nfull && (uint64_t)p->key + p->nfull == lo) {
      p->nfull += hi - lo + 1;
      return;
    }
  }
  sp_blk *b = &out[(*n)++];
  b->key = lo;
  b->nfull = hi - lo + 1;
  memset(b->w, 0xff, sizeof b->w);
}

/* w is not empty. */
static inline void put_bits(sp_blk *out, size_t *n, uint32_t key, const uint64_t w[4]) {
  if ((w[0] & w[1] & w[2] & w[3]) == ~0ull) {
    put_full(out, n, key, key);
    return;
  }
  sp_blk *b = &out[(*n)++];
  b->key = key;
  b->nfull = 0;
  memcpy(b->w, w, sizeof b->w);
}

/* put_bits with the words in scalars (w is not empty). */
static inline void put_words(sp_blk *out, size_t *n, uint32_t key, uint64_t w0, uint64_t w1, uint64_t w2,
                             uint64_t w3) {
  if ((w0 & w1 & w2 & w3) == ~0ull) {
    put_full(out, n, key, key);
    return;
  }
  sp_blk *b = &out[(*n)++];
  b->key = key;
  b->nfull = 0;
  b->w[0] = w0, b->w[1] = w1, b->w[2] = w2, b->w[3] = w3;
}

/* ---- decoding leaves ------------------------------------------------------------------------ */

/* Word masks of one block, as constant tables (8 KiB each, built by the
 * preprocessor): ONEHOT[v] holds only value v; FROM[v] holds v..255 (FROM[256]
 * nothing), so a run [s, e] is FROM[s] & ~FROM[e + 1]. Decoding a block's
 * array or runs is then two 16-byte loads and ORs per value or run, with no
 * chain through memory (setting bits in an array of words one value at a
 * time makes every store wait for the load of the one before). */
typedef struct blockmask {
  _Alignas(16) uint64_t w[4];
} blockmask;
#define SP_WSHIFT(v, k) ((unsigned)((v)-64 * (k)) & 63u)
#define SP_OH_W(v, k) ((unsigned)(v) >> 6 == (k) ? 1ull << SP_WSHIFT(v, k) : 0)
#define SP_FROM_W(v, k) ((v) <= 64 * (k) ? ~0ull : (v) >= 64 * (k) + 64 ? 0 : ~0ull << SP_WSHIFT(v, k))
#define SP_OH(v)                                                                                             \
  {                                                                                                          \
    { SP_OH_W(v, 0), SP_OH_W(v, 1), SP_OH_W(v, 2), SP_OH_W(v, 3) }                                           \
  }
#define SP_FR(v)                                                                                             \
  {                                                                                                          \
    { SP_FROM_W(v, 0), SP_FROM_W(v, 1), SP_FROM_W(v, 2), SP_FROM_W(v, 3) }                                   \
  }
#define SP_X4(M, v) M((v)), M((v) + 1), M((v) + 2), M((v) + 3)
#define SP_X16(M, v) SP_X4(M, v), SP_X4(M, (v) + 4), SP_X4(M, (v) + 8), SP_X4(M, (v) + 12)
#define SP_X64(M, v) SP_X16(M, v), SP_X16(M, (v) + 16), SP_X16(M, (v) + 32), SP_X16(M, (v) + 48)
#define SP_X256(M) SP_X64(M, 0), SP_X64(M, 64), SP_X64(M, 128), SP_X64(M, 192)
static const blockmask ONEHOT[256] = {SP_X256(SP_OH)};
static const blockmask FROM[257] = {SP_X256(SP_FR), {{0, 0, 0, 0}}};
#undef SP_X256
#undef SP_X64
#undef SP_X16
#undef SP_X4
#undef SP_FR
#undef SP_OH
#undef SP_FROM_W
#undef SP_OH_W
#undef SP_WSHIFT

/* The OR of ONEHOT[p[i]] (or, with runs, of FROM[s] & ~FROM[e+1]) into w. */
static inline __attribute__((always_inline)) void array_words(const uint8_t *p, size_t n, uint64_t w[4]) {
#ifdef __SSE2__
  __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128();
  for (size_t i = 0; i < n; i++) {
    const blockmask *m = &ONEHOT[p[i]];
    lo = _mm_or_si128(lo, _mm_load_si128((const __m128i *)m->w));
    hi = _mm_or_si128(hi, _mm_load_si128((const __m128i *)(m->w + 2)));
  }
  _mm_storeu_si128((__m128i *)w, lo);
  _mm_storeu_si128((__m128i *)(w + 2), hi);
#else
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i < n; i++) {
    const blockmask *m = &ONEHOT[p[i]];
    a |= m->w[0], b |= m->w[1], c |= m->w[2], d |= m->w[3];
  }
  w[0] = a, w[1] = b, w[2] = c, w[3] = d;
#endif
}

/* Runs of one-byte (start, length-1) pairs p[0..2r). */
static inline __attribute__((always_inline)) void runs_words(const uint8_t *p, size_t r, uint64_t w[4]) {
#ifdef __SSE2__
  __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128();
  for (size_t i = 0; i < r; i++) {
    unsigned s = p[2 * i], e1 = s + p[2 * i + 1] + 1u;
    const blockmask *a = &FROM[s], *b = &FROM[e1];
    lo = _mm_or_si128(
        lo, _mm_andnot_si128(_mm_load_si128((const __m128i *)b->w), _mm_load_si128((const __m128i *)a->w)));
    hi = _mm_or_si128(hi, _mm_andnot_si128(_mm_load_si128((const __m128i *)(b->w + 2)),
                                           _mm_load_si128((const __m128i *)(a->w + 2))));
  }
  _mm_storeu_si128((__m128i *)w, lo);
  _mm_storeu_si128((__m128i *)(w + 2), hi);
#else
  uint64_t x[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < r; i++) {
    unsigned s = p[2 * i], e1 = s + p[2 * i + 1] + 1u;
    for (int k = 0; k < 4; k++) x[k] |= FROM[s].w[k] & ~FROM[e1].w[k];
  }
  memcpy(w, x, sizeof x);
#endif
}

/* The block a level-3 node p[0..len) holds, as words. A level-3 node is never
 * empty and its values and run fields are one byte wide (validation). */
static inline __attribute__((always_inline)) void block_words(const uint8_t *p, size_t len, uint64_t w[4]) {
  uint8_t kb = p[len - 1];
  switch (SP_KIND(kb)) {
  case SP_ARRAY: array_words(p, len - 1, w); return;
  case SP_BITMAP: {
    unsigned sw = sp_bstart_width(SP_FA(kb));
    size_t m = len - 1 - sw;
    if (m == 32) { /* the whole block: then its start field is 0 */
      w[0] = ld_le64(p), w[1] = ld_le64(p + 8), w[2] = ld_le64(p + 16), w[3] = ld_le64(p + 24);
      return;
    }
    uint8_t buf[32] = {0};
    memcpy(buf + (sw ? sp_rd(p + m, sw) : 0), p, m);
    w[0] = ld_le64(buf), w[1] = ld_le64(buf + 8), w[2] = ld_le64(buf + 16), w[3] = ld_le64(buf + 24);
    return;
  }
  case SP_RUNS: runs_words(p, (len - 1) / 2, w); return;
  default: /* FULL */ memset(w, 0xff, 4 * sizeof *w); return;
  }
}

/* Appends the level-3 node p[0..len) as block key, decoded straight into the
 * next slot of out (no copy of its words). */
static inline __attribute__((always_inline)) void put_block(sp_blk *out, size_t *n, uint32_t key,
                                                            const uint8_t *p, size_t len) {
  sp_blk *b = &out[*n];
  block_words(p, len, b->w);
  if ((b->w[0] & b->w[1] & b->w[2] & b->w[3]) == ~0ull) {
    put_full(out, n, key, key); /* into this slot, or merged into the span before it */
    return;
  }
  b->key = key;
  b->nfull = 0;
  (*n)++;
}

/* Block c (node-local) of a BITMAP node, as words. */
static inline void bitmap_chunk(const sp_node *nd, uint32_t c, uint64_t w[4]) {
  uint64_t lo = (uint64_t)c * 32, bs = nd->bstart, be = bs + nd->n;
  if (lo >= bs && lo + 32 <= be) {
    const uint8_t *q = nd->p + (lo - bs);
    w[0] = ld_le64(q), w[1] = ld_le64(q + 8), w[2] = ld_le64(q + 16), w[3] = ld_le64(q + 24);
    return;
  }
  uint8_t buf[32] = {0};
  uint64_t a = lo > bs ? lo : bs, b = lo + 32 < be ? lo + 32 : be;
  if (a < b) memcpy(buf + (a - lo), nd->p + (a - bs), (size_t)(b - a));
  w[0] = ld_le64(buf), w[1] = ld_le64(buf + 8), w[2] = ld_le64(buf + 16), w[3] = ld_le64(buf + 24);
}

static inline uint32_t arr_at(const sp_node *nd, uint32_t i) {
  return sp_rd(nd->p + (size_t)i * nd->wa, nd->wa);
}
static inline uint64_t run_s(const sp_node *nd, uint32_t i) {
  return (uint64_t)nd->base + sp_rd(nd->p + (size_t)i * (nd->wa + nd->wb), nd->wa);
}
static inline uint64_t run_e(const sp_node *nd, uint32_t i) {
  return run_s(nd, i) + sp_rd(nd->p + (size_t)i * (nd->wa + nd->wb) + nd->wa, nd->wb);
}

/* An array leaf above level 3: values grouped by block, one loop per width. */
static void array_fill(sp_walk *w, sp_blk *out, size_t *n, size_t cap) {
  const sp_node *nd = &w->leaf;
  const uint8_t *q = nd->p;
  uint32_t pos = w->pos, cnt = nd->n, kbase = nd->base >> 8;
  switch (nd->wa) {
#define SP_ARRAY_FILL(W, LD)                                                                                 \
  while (pos < cnt && *n < cap) { /* the block's words in scalars, one table row per value */                \
    uint32_t x = LD(q + (size_t)pos * W), key = x >> 8;                                                      \
    const blockmask *m = &ONEHOT[x & 255];                                                                   \
    uint64_t b0 = m->w[0], b1 = m->w[1], b2 = m->w[2], b3 = m->w[3];                                         \
    while (++pos < cnt) {                                                                                    \
      x = LD(q + (size_t)pos * W);                                                                           \
      if (x >> 8 != key) break;                                                                              \
      m = &ONEHOT[x & 255];                                                                                  \
      b0 |= m->w[0], b1 |= m->w[1], b2 |= m->w[2], b3 |= m->w[3];                                            \
    }                                                                                                        \
    put_words(out, n, kbase + key, b0, b1, b2, b3);                                                          \
  }                                                                                                          \
  break;
#define SP_LD1(a) ((uint32_t) * (a))
#define SP_LD3(a) ((uint32_t)ld_le16(a) | (uint32_t)(a)[2] << 16)
  case 1: SP_ARRAY_FILL(1, SP_LD1)
  case 2: SP_ARRAY_FILL(2, ld_le16)
  case 3: SP_ARRAY_FILL(3, SP_LD3)
  default: SP_ARRAY_FILL(4, ld_le32)
#undef SP_ARRAY_FILL
#undef SP_LD1
#undef SP_LD3
  }
  w->pos = pos;
  if (pos >= cnt) w->leaf_active = 0;
}

static void runs_fill(sp_walk *w, sp_blk *out, size_t *n, size_t cap) {
  const sp_node *nd = &w->leaf;
  while (w->pos < nd->n && *n < cap) {
    uint64_t s = run_s(nd, w->pos), e = run_e(nd, w->pos);
    if (w->c < s) w->c = s;
    uint64_t c = w->c, key = c >> 8;
    if ((c & 255) == 0 && e >= c + 255) { /* whole blocks */
      uint64_t hi = ((e + 1) >> 8) - 1;
      put_full(out, n, (uint32_t)key, (uint32_t)hi);
      w->c = (hi + 1) << 8;
      if (w->c > e) w->pos++;
      continue;
    }
    uint64_t bend = key * 256 + 255, upto = e < bend ? e : bend;
    /* the block's words in scalars: through an array, the vector stores of
     * the masks and the word loads of put_bits stall on store forwarding */
    const blockmask *f = &FROM[c & 255], *t = &FROM[(upto & 255) + 1];
    uint64_t b0 = f->w[0] & ~t->w[0], b1 = f->w[1] & ~t->w[1], b2 = f->w[2] & ~t->w[2],
             b3 = f->w[3] & ~t->w[3];
    w->c = upto + 1;
    if (w->c > e) { /* later runs that start in this block join it */
      w->pos++;
      while (w->pos < nd->n) {
        s = run_s(nd, w->pos);
        if (s > bend) break;
        e = run_e(nd, w->pos);
        upto = e < bend ? e : bend;
        f = &FROM[s & 255], t = &FROM[(upto & 255) + 1];
        b0 |= f->w[0] & ~t->w[0], b1 |= f->w[1] & ~t->w[1], b2 |= f->w[2] & ~t->w[2],
            b3 |= f->w[3] & ~t->w[3];
        w->c = upto + 1;
        if (e > bend) break;
        w->pos++;
      }
    }
    put_words(out, n, (uint32_t)key, b0, b1, b2, b3);
  }
  if (w->pos >= nd->n) w->leaf_active = 0;
}

/* Raw windows are worth it from this many whole chunks on. */
#define SP_RAW_MIN 4

/* Decodes the current leaf into out[*n..cap); clears leaf_active when done.
 * With raw_ok and nothing decoded yet, a bitmap leaf's stretch of whole
 * chunks is handed over raw instead (w->raw_n). */
static void leaf_fill(sp_walk *w, sp_blk *out, size_t *n, size_t cap, int raw_ok) {
  const sp_node *nd = &w->leaf;
  uint32_t kbase = nd->base >> 8;
  if (nd->level == 3) {
    put_block(out, n, kbase, nd->p, nd->len);
    w->leaf_active = 0;
    return;
  }
  switch (nd->kind) {
  case SP_FULL:
    put_full(out, n, kbase, (uint32_t)(kbase + (sp_level_cap(nd->level) >> 8) - 1));
    w->leaf_active = 0;
    return;
  case SP_BITMAP: { /* 32 bytes a block, loaded as words (the node's fields in locals) */
    const uint8_t *p = nd->p;
    const uint64_t bs = nd->bstart, be = bs + nd->n;
    uint32_t c = w->pos, last = (uint32_t)((be - 1) / 32);
    size_t m = *n;
    if (c < bs / 32) c = (uint32_t)(bs / 32);
    if (raw_ok && m == 0 && (uint64_t)c * 32 >= bs && be >= 32) {
      uint64_t whole_end = be / 32; /* chunks c .. whole_end-1 lie inside the bytes */
      if (whole_end >= (uint64_t)c + SP_RAW_MIN) {
        w->raw = p + ((uint64_t)c * 32 - bs);
        w->raw_key = kbase + c;
        w->raw_n = (uint32_t)(whole_end - c);
        w->pos = (uint32_t)whole_end;
        if (w->pos > last) w->leaf_active = 0;
        return;
      }
    }
    for (; c <= last && m < cap; c++) {
      uint64_t lo = (uint64_t)c * 32, bw[4];
      if (lo >= bs && lo + 32 <= be) {
        const uint8_t *q = p + (lo - bs);
        bw[0] = ld_le64(q), bw[1] = ld_le64(q + 8), bw[2] = ld_le64(q + 16), bw[3] = ld_le64(q + 24);
      } else {
        bitmap_chunk(nd, c, bw);
      }
      if (bw[0] | bw[1] | bw[2] | bw[3]) put_bits(out, &m, kbase + c, bw);
    }
    *n = m;
    w->pos = c;
    if (c > last) w->leaf_active = 0;
    return;
  }
  case SP_ARRAY: array_fill(w, out, n, cap); return;
  case SP_RUNS: runs_fill(w, out, n, cap); return;
  default: w->leaf_active = 0; return;
  }
}

/* ---- walking a view ---------------------------------------------------------------------- */

/* Key of child idx, given the key of child idx-1 (prev, -1 for none): with a
 * key bitmap this is the next set bit, not a count from the start. */
static inline uint32_t next_key(const sp_node *t, uint32_t idx, int prev) {
  if (t->keymode == 0) return t->keys[idx];
  if (t->keymode == 2) return idx;
  for (uint32_t b = (uint32_t)(prev + 1); b < 256;) {
    uint64_t x = ld_le64(t->keys + (b >> 6) * 8) >> (b & 63);
    if (x) return b + (uint32_t)__builtin_ctzll(x);
    b = (b | 63) + 1;
  }
  return 255;
}

/* Opens child idx (key key) of the frame on top (w->fr[w->depth - 1]) in
 * place: as the next frame if it is a tree, else as the leaf. Nodes are
 * filled where they will live (copying a node just filled field by field
 * stalls on store forwarding). Returns 1 if the child is a tree. */
static inline int open_child(sp_walk *w, uint32_t idx, uint32_t key) {
  const sp_node *t = &w->fr[w->depth - 1];
  size_t start = sp_tree_start(t, idx), len = sp_tree_end(t, idx) - start;
  const uint8_t *p = t->p + start;
  uint32_t base = t->base | (key << (8 * (3 - t->level)));
  int level = t->level + 1;
  if (SP_KIND(p[len - 1]) == SP_TREE) {
    sp_node_fill(p, len, level, base, &w->fr[w->depth]);
    w->fidx[w->depth] = 0;
    w->fkey[w->depth] = -1;
    w->depth++;
    return 1;
  }
  sp_node_fill(p, len, level, base, &w->leaf);
  w->leaf_active = 1;
  w->pos = 0;
  w->c = 0;
  return 0;
}

/* The children of a level-2 tree are single blocks: decode them in one loop,
 * with the tree's fields in locals (stores to out may alias anything). */
static inline __attribute__((always_inline)) void tree2_loop(sp_walk *w, int f, sp_blk *out, size_t *np,
                                                             size_t cap, const unsigned ow) {
  const sp_node *t = &w->fr[f];
  const uint8_t *p = t->p, *ends = t->ends, *keys = t->keys;
  const unsigned mode = t->keymode;
  const uint32_t k = t->n, kbase = t->base >> 8;
  const size_t region = t->region;
  uint32_t i = w->fidx[f];
  int prev = w->fkey[f];
  size_t n = *np, start = i ? sp_rd(ends + (size_t)(i - 1) * ow, ow) : 0;
  for (; i < k && n < cap; i++) {
    uint32_t key;
    if (mode == 0) {
      key = keys[i];
    } else if (mode == 2) {
      key = i;
    } else { /* the next set bit of the key bitmap */
      uint32_t b = (uint32_t)(prev + 1);
      uint64_t x = ld_le64(keys + (b >> 6) * 8) >> (b & 63);
      while (!x) {
        b = (b | 63) + 1;
        x = ld_le64(keys + (b >> 6) * 8);
      }
      key = b + (uint32_t)__builtin_ctzll(x);
    }
    size_t end = i + 1 < k ? sp_rd(ends + (size_t)i * ow, ow) : region;
    put_block(out, &n, kbase + key, p + start, end - start);
    prev = (int)key;
    start = end;
  }
  *np = n;
  w->fidx[f] = i;
  w->fkey[f] = prev;
}

static void tree2_fill(sp_walk *w, int f, sp_blk *out, size_t *n, size_t cap) {
  switch (w->fr[f].wa) { /* the encoder writes 1 or 2 (children take at most 256 * 33 bytes) */
  case 1: tree2_loop(w, f, out, n, cap, 1); break;
  case 2: tree2_loop(w, f, out, n, cap, 2); break;
  default: tree2_loop(w, f, out, n, cap, w->fr[f].wa); break;
  }
}

static void walk_init(sp_walk *w, const splinter_view_t *v) {
  w->view = v;
  w->depth = 0;
  w->leaf_active = 0;
  uint8_t kind = SP_KIND(v->bytes[v->root_len - 1]);
  if (kind == SP_TREE) {
    sp__view_root(v, &w->fr[0]);
    w->fidx[0] = 0;
    w->fkey[0] = -1;
    w->depth = 1;
  } else if (kind != SP_EMPTY) {
    sp__view_root(v, &w->leaf);
    w->leaf_active = 1;
    w->pos = 0;
    w->c = 0;
  }
}

/* Decodes up to cap (>= 1) next blocks into out; 0 only at the end, or when
 * (with raw_ok) a raw stretch was found instead (w->raw_n > 0). */
static size_t walk_fill(sp_walk *w, sp_blk *out, size_t cap, int raw_ok) {
  size_t n = 0;
  w->raw_n = 0;
  while (n < cap) {
    if (w->leaf_active) {
      leaf_fill(w, out, &n, cap, raw_ok);
      if (w->raw_n) break;
      continue;
    }
    if (w->depth == 0) break;
    int f = w->depth - 1;
    sp_node *t = &w->fr[f];
    if (w->fidx[f] >= t->n) {
      w->depth--;
      continue;
    }
    if (t->level == 2) {
      tree2_fill(w, f, out, &n, cap);
      continue;
    }
    uint32_t key = next_key(t, w->fidx[f], w->fkey[f]);
    w->fkey[f] = (int)key;
    open_child(w, w->fidx[f]++, key);
  }
  return n;
}

/* Positions the current leaf so its next block is the first with a key >= key. */
static void leaf_seek(sp_walk *w, uint32_t key) {
  const sp_node *nd = &w->leaf;
  uint64_t target = (uint64_t)key << 8;
  if (target <= nd->base) return;
  switch (nd->kind) {
  case SP_BITMAP: { /* bitmap chunk c is node-local block c */
    uint32_t rel = key - (nd->base >> 8);
    if (rel > w->pos) w->pos = rel;
    return;
  }
  case SP_ARRAY: {
    uint32_t lo = w->pos, hi = nd->n;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if ((uint64_t)nd->base + arr_at(nd, mid) < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    w->pos = lo;
    return;
  }
  case SP_RUNS: {
    uint32_t lo = w->pos, hi = nd->n;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (run_e(nd, mid) < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    w->pos = lo;
    if (w->c < target) w->c = target;
    return;
  }
  default: return; /* FULL: the consumer trims the span */
  }
}

static inline bool node_holds(const sp_node *nd, uint64_t value) {
  return value >= nd->base && value - nd->base < sp_level_cap(nd->level);
}

/* Positions the walker so its next block is the first with a key >= key
 * (which is past everything it produced so far). The search starts from the
 * deepest open node that holds the key: inside the current leaf, or from a
 * tree on the current path, and only from the root when neither does. */
static void walk_seek(sp_walk *w, uint32_t key) {
  uint64_t target = (uint64_t)key << 8;
  if (w->leaf_active && node_holds(&w->leaf, target)) {
    leaf_seek(w, key);
    return;
  }
  w->leaf_active = 0;
  int d = w->depth;
  while (d > 0 && !node_holds(&w->fr[d - 1], target)) d--;
  if (d > 0) { /* that frame is searched again, in place */
    w->depth = d;
  } else {
    uint8_t kind = SP_KIND(w->view->bytes[w->view->root_len - 1]);
    w->depth = 0;
    if (kind == SP_EMPTY) return;
    if (kind != SP_TREE) {
      sp__view_root(w->view, &w->leaf);
      w->leaf_active = 1;
      w->pos = 0;
      w->c = 0;
      leaf_seek(w, key);
      return;
    }
    sp__view_root(w->view, &w->fr[0]);
    w->depth = 1;
  }
  for (;;) {
    int f = w->depth - 1;
    const sp_node *t = &w->fr[f];
    uint32_t byte = (key >> (8 * (2 - t->level))) & 255, idx;
    /* Not found: resume at the first child above byte. Found in a level-2
     * tree: resume at that child (a single block the frame's loop decodes). */
    if (!sp__tree_find(t, byte, &idx) || t->level == 2) {
      w->fidx[f] = idx;
      w->fkey[f] = (int)byte - 1;
      return;
    }
    w->fidx[f] = idx + 1;
    w->fkey[f] = (int)byte;
    if (!open_child(w, idx, byte)) {
      leaf_seek(w, key);
      return;
    }
  }
}

/* ---- cursors --------------------------------------------------------------------------------- */

void sp__cur_blocks(sp_cur *c, const sp_blk *b, size_t n) {
  c->b = b;
  c->i = 0;
  c->n = n;
  c->skip = 0;
  c->want = 0;
  c->buf = NULL;
  c->bufcap = 0;
  c->view = NULL;
  c->raw = NULL;
  c->raw_key = 0;
  c->raw_ok = 0;
  c->raw_hold = 0;
  c->drain_wait = 0;
}

void sp__cur_view(sp_cur *c, const splinter_view_t *v, sp_blk *buf, size_t cap) {
  sp__cur_blocks(c, buf, 0);
  c->walk.raw_n = 0;
  c->buf = buf;
  c->bufcap = cap;
  c->want = 4; /* then doubling while the reading is sequential */
  c->view = v;
  walk_init(&c->walk, v);
}

void sp__cur_ref(sp_cur *c, splinter_ref_t r, sp_blk *buf, size_t cap) {
  if (r.owned)
    sp__cur_blocks(c, r.owned->b, r.owned->n);
  else
    sp__cur_view(c, r.view, buf, cap);
}

bool sp__cur_refill(sp_cur *c) {
  if (!c->view) return false;
  size_t want = c->want < c->bufcap ? c->want : c->bufcap;
  c->raw = NULL;
  c->n = walk_fill(&c->walk, c->buf, want, c->raw_ok && !c->raw_hold);
  c->raw_hold = 0;
  c->b = c->buf;
  c->i = 0;
  c->skip = 0;
  if (c->walk.raw_n) {
    c->raw = c->walk.raw;
    c->raw_key = c->walk.raw_key;
    c->n = c->walk.raw_n;
    return true;
  }
  if (c->want < c->bufcap) c->want *= 2; /* sequential reading: decode more at a time */
  return c->n > 0;
}

void sp__cur_plain(sp_cur *c) {
  if (!c->raw) return;
  c->raw = NULL;
  if (c->i < c->n) { /* rewind the walker to the current chunk: its leaf is still the bitmap */
    sp_walk *w = &c->walk;
    w->pos = c->raw_key + (uint32_t)c->i - (w->leaf.base >> 8);
    w->leaf_active = 1;
    c->raw_hold = 1;
    sp__cur_refill(c);
  } else {
    c->i = c->n = 0;
  }
}

static bool walk_done(const sp_walk *w) { return w->depth == 0 && !w->leaf_active; }

void sp__cur_finish(sp_cur *c) {
  c->i = c->n;
  c->skip = 0;
  if (c->view) {
    c->walk.depth = 0;
    c->walk.leaf_active = 0;
  }
}

void sp__cur_seek_far(sp_cur *c, uint32_t key) {
  int sought = 0;
  int64_t seen = -1; /* the last key of the window before */
  for (;;) {
    if (c->raw) { /* consecutive keys: arithmetic */
      uint64_t end = (uint64_t)c->raw_key + c->n;
      if (c->i < c->n && key < end) {
        if (key > c->raw_key + c->i) c->i = key - c->raw_key;
        return;
      }
      seen = (int64_t)end - 1;
      c->raw = NULL;
      c->i = c->n = 0; /* the walker is past the raw chunks */
    } else if (c->n) {
      const sp_blk *b = c->b;
      if (c->i < c->n && sp_blk_last(&b[c->i]) >= key) break;
      if (c->i < c->n && sp_blk_last(&b[c->n - 1]) >= key) { /* in this window: gallop, then bisect */
        size_t base = c->i + 1, step = 1;
        while (base + step < c->n && sp_blk_last(&b[base + step - 1]) < key) {
          base += step;
          step *= 2;
        }
        c->i = sp__blk_find(b, base, base + step - 1 < c->n - 1 ? base + step : c->n, key);
        c->skip = 0;
        break;
      }
      seen = sp_blk_last(&b[c->n - 1]);
    }
    if (!c->view) {
      c->i = c->n;
      c->skip = 0;
      return;
    }
    c->i = c->n;
    c->skip = 0;
    if (walk_done(&c->walk)) return; /* nothing left to find */
    /* The next block or two: read on. Further (decoding a block costs about
     * what a descent does): re-descend, once; then read on. */
    if (!sought && (seen < 0 || key - seen > 2)) {
      walk_seek(&c->walk, key);
      c->want = 1; /* a seek may well be followed by another: decode little */
    }
    sought = 1;
    if (!sp__cur_refill(c)) return;
  }
  const sp_blk *x = &c->b[c->i];
  if (x->nfull && x->key + c->skip < key) c->skip = key - x->key;
}

int sp__cur_drain(sp_build *o, sp_cur *c, uint32_t hi) {
  sp__cur_plain(c);
  for (;;) {
    int rc;
    while (c->i < c->n) { /* the window's blocks */
      const sp_blk *x = &c->b[c->i];
      uint32_t lo = sp_cur_lo(c);
      if (lo > hi) return 0;
      if ((rc = sp_build_room(o, 1))) return rc;
      if (sp_blk_last(x) > hi) {
        sp_build_full_r(o, lo, hi);
        c->skip = hi + 1 - x->key;
        return 0;
      }
      sp_build_copy_r(o, x, lo);
      sp_cur_next(c);
    }
    if (!c->view || walk_done(&c->walk)) return 0;
    /* Decode straight into o; the blocks past hi go to the window. */
    if ((rc = sp_build_room(o, c->bufcap))) return rc;
    sp_blk *d = o->b + o->n;
    size_t n = walk_fill(&c->walk, d, c->bufcap, 0), k = n;
    if (n == 0) return 0;
    while (k > 0 && d[k - 1].key > hi) k--; /* d[0..k) start at or below hi */
    if (2 * k < n) c->drain_wait = 8;
    c->b = c->buf;
    c->i = 0;
    c->skip = 0;
    c->n = n - k;
    if (k > 0 && sp_blk_last(&d[k - 1]) > hi) { /* a full span across hi: split it */
      sp_blk *x = &d[k - 1];
      c->buf[0] = *x;
      c->skip = hi + 1 - x->key;
      c->n++;
      x->nfull = hi + 1 - x->key;
      memcpy(c->buf + 1, d + k, (n - k) * sizeof *d);
    } else {
      memcpy(c->buf, d + k, (n - k) * sizeof *d);
    }
    if (k > 0) {
      uint64_t card = 0;
      for (size_t j = 0; j < k; j++) card += sp_blk_card(&d[j]);
      o->card += card;
      sp_blk *p = o->n ? &o->b[o->n - 1] : NULL;
      if (p && p->nfull && d[0].nfull && (uint64_t)p->key + p->nfull == d[0].key) { /* a span goes on */
        p->nfull += d[0].nfull;
        memmove(d, d + 1, (k - 1) * sizeof *d);
        k--;
      }
      o->n += k;
    }
    if (c->n) return 0;
  }
}

size_t sp__cur_estimate(const sp_cur *c) {
  if (!c->view) return c->n - c->i;
  /* from ~3 bytes a block (sparse arrays) to ~33 (bitmaps): take the low end
   * of the count (outputs grow by doubling); at most one block per element */
  size_t est = c->view->len / 32;
  return est < c->view->cardinality ? est : (size_t)c->view->cardinality;
}

/* ---- public iterator -------------------------------------------------------------------- */

#define SP_ITER_WINDOW 3

typedef struct sp_iter {
  sp_cur cur;
  uint64_t c; /* next candidate value */
  sp_blk buf[SP_ITER_WINDOW];
} sp_iter;

_Static_assert(sizeof(sp_iter) <= sizeof(splinter_iter_t), "splinter_iter_t too small");
_Static_assert(_Alignof(sp_iter) <= _Alignof(splinter_iter_t), "splinter_iter_t misaligned");

/* The iterator is a value the caller may have copied: point a view's window
 * at this copy's buffer. */
static sp_iter *iter_of(splinter_iter_t *pub) {
  sp_iter *it = (sp_iter *)pub;
  if (it->cur.view) {
    it->cur.b = it->buf;
    it->cur.buf = it->buf;
  }
  return it;
}

void splinter_iter_init(splinter_iter_t *pub, splinter_ref_t set, uint32_t lower_bound) {
  sp_iter *it = (sp_iter *)pub;
  sp__cur_ref(&it->cur, set, it->buf, SP_ITER_WINDOW);
  it->c = lower_bound;
  if (lower_bound && sp_cur_ok(&it->cur)) sp_cur_seek(&it->cur, lower_bound >> 8);
}

static int iter_next(sp_iter *it, uint32_t *out) {
  while (sp_cur_ok(&it->cur)) {
    const sp_blk *x = &it->cur.b[it->cur.i];
    uint64_t first = (uint64_t)sp_cur_lo(&it->cur) << 8, last = ((uint64_t)sp_blk_last(x) << 8) | 255;
    if (it->c < first) it->c = first;
    if (it->c <= last) {
      if (x->nfull) {
        *out = (uint32_t)it->c++;
        return 1;
      }
      unsigned pos = (unsigned)(it->c & 255);
      for (unsigned wi = pos >> 6; wi < 4; wi++) {
        uint64_t w = x->w[wi];
        if (wi == pos >> 6) w &= ~0ull << (pos & 63);
        if (w) {
          uint64_t v = first + wi * 64 + (unsigned)__builtin_ctzll(w);
          *out = (uint32_t)v;
          it->c = v + 1;
          return 1;
        }
      }
    }
    sp_cur_next(&it->cur);
  }
  return 0;
}

int splinter_iter_next(splinter_iter_t *pub, uint32_t *out) { return iter_next(iter_of(pub), out); }

size_t splinter_iter_next_batch(splinter_iter_t *pub, uint32_t *out, size_t cap) {
  sp_iter *it = iter_of(pub);
  size_t n = 0;
  while (n < cap && sp_cur_ok(&it->cur)) {
    const sp_blk *x = &it->cur.b[it->cur.i];
    uint64_t first = (uint64_t)sp_cur_lo(&it->cur) << 8, last = ((uint64_t)sp_blk_last(x) << 8) | 255;
    if (it->c < first) it->c = first;
    if (x->nfull) {
      while (n < cap && it->c <= last) out[n++] = (uint32_t)it->c++;
    } else if (it->c <= last) {
      unsigned pos = (unsigned)(it->c & 255);
      for (unsigned wi = pos >> 6; wi < 4 && n < cap; wi++) {
        uint64_t w = x->w[wi];
        if (wi == pos >> 6) w &= ~0ull << (pos & 63);
        while (w && n < cap) {
          uint64_t v = first + wi * 64 + (unsigned)__builtin_ctzll(w);
          out[n++] = (uint32_t)v;
          it->c = v + 1;
          w &= w - 1;
        }
      }
      if (n < cap) it->c = last + 1;
    }
    if (it->c > last) sp_cur_next(&it->cur);
  }
  return n;
}
