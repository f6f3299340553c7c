/*
 * splinter/encode.c — serializing an owned splinter (format in
 * docs/SPLINTER.md).
 *
 * Two passes over the blocks. plan() walks the four trie levels computing,
 * for every node, the exact size of each encoding (array, runs, bitmap,
 * tree — the tree's size needs its children's chosen sizes, so planning is
 * bottom-up) and records the cheapest in a pre-order list; records of
 * children under a node that does not choose "tree" are dropped again. Then
 * emit() writes the bytes in one forward pass, children before their parent's
 * index, following the records, and the footer closes the buffer.
 */
#include "splinter/splinter_int.h"

/* Bitmaps this large (bytes) win over encodings up to 1/8 smaller. */
#define SP_BITMAP_FAVOURED 64

typedef struct plan_rec {
  uint8_t kind, wa, wb;
  uint64_t size;
} plan_rec;

typedef struct enc {
  const sp_blk *b;
  plan_rec *rec;
  size_t nrec, caprec, ri;
  uint8_t *out;
  size_t pos, cap;
} enc;

static uint64_t level_blocks(int level) { return 1ull << (8 * (3 - level)); }
static uint64_t blk_last(const sp_blk *b) { return sp_blk_last(b); }

/* First position >= p whose bit equals want, or 256. */
static unsigned scan_bits(const uint64_t w[4], unsigned p, int want) {
  while (p < 256) {
    uint64_t x = want ? w[p >> 6] : ~w[p >> 6];
    x &= ~0ull << (p & 63);
    if (x) return (p & ~63u) + (unsigned)__builtin_ctzll(x);
    p = (p & ~63u) + 64;
  }
  return 256;
}

/* Raw intervals of the blocks [i, j) clipped to block keys [klo, khi];
 * adjacent intervals are merged by ivl_next. */
typedef struct ivl {
  const sp_blk *b;
  size_t i, j;
  uint64_t klo, khi;
  unsigned bit;
  int has_pending;
  uint64_t ps, pe;
} ivl;

static int ivl_raw(ivl *it, uint64_t *s, uint64_t *e) {
  while (it->i < it->j) {
    const sp_blk *b = &it->b[it->i];
    if (b->nfull) {
      uint64_t lo = b->key > it->klo ? b->key : it->klo, hi = blk_last(b) < it->khi ? blk_last(b) : it->khi;
      it->i++;
      if (lo > hi) continue;
      *s = lo << 8;
      *e = (hi << 8) | 255;
      return 1;
    }
    unsigned st = scan_bits(b->w, it->bit, 1);
    if (st == 256) {
      it->i++;
      it->bit = 0;
      continue;
    }
    unsigned en = scan_bits(b->w, st, 0);
    it->bit = en;
    *s = ((uint64_t)b->key << 8) + st;
    *e = ((uint64_t)b->key << 8) + en - 1;
    return 1;
  }
  return 0;
}

static int ivl_next(ivl *it, uint64_t *s, uint64_t *e) {
  uint64_t rs, re;
  if (!it->has_pending) {
    if (!ivl_raw(it, &rs, &re)) return 0;
    it->ps = rs, it->pe = re, it->has_pending = 1;
  }
  for (;;) {
    if (!ivl_raw(it, &rs, &re)) {
      it->has_pending = 0;
      break;
    }
    if (rs == it->pe + 1) {
      it->pe = re;
      continue;
    }
    *s = it->ps, *e = it->pe;
    it->ps = rs, it->pe = re;
    return 1;
  }
  *s = it->ps, *e = it->pe;
  return 1;
}

static void ivl_init(ivl *it, const sp_blk *b, size_t i, size_t j, uint64_t klo, uint64_t khi) {
  memset(it, 0, sizeof *it);
  it->b = b, it->i = i, it->j = j, it->klo = klo, it->khi = khi;
}

typedef struct stats {
  uint64_t card, nruns, max_start, max_lenm1, first, last;
} stats;

/* Exact node statistics by interval enumeration (the reference for the fast
 * version below; the tests compare the two). */
__attribute__((unused)) static void node_stats_slow(const enc *e, int level, uint64_t klo, size_t i, size_t j,
                                                    stats *st) {
  memset(st, 0, sizeof *st);
  uint64_t base = klo << 8;
  ivl it;
  ivl_init(&it, e->b, i, j, klo, klo + level_blocks(level) - 1);
  uint64_t s, en;
  while (ivl_next(&it, &s, &en)) {
    if (st->card == 0) st->first = s - base;
    st->card += en - s + 1;
    st->nruns++;
    if (s - base > st->max_start) st->max_start = s - base;
    if (en - s > st->max_lenm1) st->max_lenm1 = en - s;
    st->last = en - base;
  }
}

static unsigned ones_from_bottom(const uint64_t w[4]) { /* consecutive set bits from bit 0 */
  unsigned n = 0;
  for (int k = 0; k < 4; k++) {
    if (w[k] == ~0ull) {
      n += 64;
      continue;
    }
    return n + (unsigned)__builtin_ctzll(~w[k]);
  }
  return n;
}
static unsigned ones_from_top(const uint64_t w[4]) { /* consecutive set bits down from bit 255 */
  unsigned n = 0;
  for (int k = 3; k >= 0; k--) {
    if (w[k] == ~0ull) {
      n += 64;
      continue;
    }
    return n + (unsigned)__builtin_clzll(~w[k]);
  }
  return n;
}

/* The same statistics word-at-a-time: a bitmap block costs a few popcounts,
 * not a walk over its values. Run lengths only matter through their byte
 * width, and a run inside one (never full) bitmap block is shorter than 256,
 * so only runs that cross block edges are measured exactly. */
static void node_stats(const enc *e, int level, uint64_t klo, size_t i, size_t j, stats *st) {
  memset(st, 0, sizeof *st);
  uint64_t base = klo << 8, khi = klo + level_blocks(level) - 1;
  uint64_t prev_end = 0, open_len = 0, last_start = 0; /* open_len: run ending at prev_end */
  for (size_t x = i; x < j; x++) {
    const sp_blk *b = &e->b[x];
    if (b->nfull) {
      uint64_t lo = b->key > klo ? b->key : klo, hi = blk_last(b) < khi ? blk_last(b) : khi;
      if (lo > hi) continue;
      uint64_t s = lo << 8, en = (hi << 8) | 255;
      if (st->card && s == prev_end + 1) {
        open_len += en - s + 1;
      } else {
        if (!st->card) st->first = s - base;
        st->nruns++;
        open_len = en - s + 1;
        last_start = s;
      }
      st->card += en - s + 1;
      prev_end = en;
      if (open_len - 1 > st->max_lenm1) st->max_lenm1 = open_len - 1;
      continue;
    }
    uint64_t s0 = (uint64_t)b->key << 8;
    int cont = st->card && prev_end + 1 == s0;
    uint64_t starts_hi = 0, carry = cont ? 1 : 0;
    int starts_word = -1;
    uint64_t pc = 0;
    for (int k = 0; k < 4; k++) {
      uint64_t w = b->w[k], starts = w & ~((w << 1) | carry);
      carry = w >> 63;
      pc += (uint64_t)__builtin_popcountll(w);
      if (starts) {
        st->nruns += (uint64_t)__builtin_popcountll(starts);
        starts_hi = starts;
        starts_word = k;
      }
    }
    unsigned lead = ones_from_bottom(b->w), trail = ones_from_top(b->w);
    if (!st->card) {
      unsigned fb = 0;
      while (!b->w[fb >> 6]) fb += 64;
      st->first = s0 + fb + (unsigned)__builtin_ctzll(b->w[fb >> 6]) - base;
    }
    if (cont && lead) { /* the previous run goes on into this block and ends in it */
      open_len += lead;
      if (open_len - 1 > st->max_lenm1) st->max_lenm1 = open_len - 1;
    }
    if (starts_word >= 0)
      last_start = s0 + (uint64_t)starts_word * 64 + 63 - (uint64_t)__builtin_clzll(starts_hi);
    open_len = trail; /* only a run touching bit 255 can continue */
    if (trail && trail - 1 > st->max_lenm1) st->max_lenm1 = trail - 1;
    if (lead && !cont && lead - 1 > st->max_lenm1) st->max_lenm1 = lead - 1;
    unsigned lb = 255;
    while (!b->w[lb >> 6]) lb -= 64;
    prev_end = s0 + (lb & ~63u) + 63 - (unsigned)__builtin_clzll(b->w[lb >> 6]);
    st->card += pc;
  }
  st->max_start = last_start - base;
  st->last = prev_end - base;
}

#ifndef NDEBUG
/* Debug builds (the tests) check the fast statistics against the reference on every node. */
static void node_stats_checked(const enc *e, int level, uint64_t klo, size_t i, size_t j, stats *st) {
  stats ref;
  node_stats(e, level, klo, i, j, st);
  node_stats_slow(e, level, klo, i, j, &ref);
  if (QUIRE_NEVER(st->card != ref.card || st->nruns != ref.nruns || st->first != ref.first ||
                  st->last != ref.last || st->max_start != ref.max_start ||
                  sp_bytes_for(st->max_lenm1) != sp_bytes_for(ref.max_lenm1)))
    *st = ref;
}
#define node_stats node_stats_checked
#endif

/* Calls fn for each child of the node (level < 3) at block keys from klo. */
typedef struct child {
  uint32_t key;
  uint64_t klo;
  size_t i, j;
} child;

static size_t children(const enc *e, int level, uint64_t klo, size_t i, size_t j, child *out) {
  uint64_t cnb = level_blocks(level + 1), khi = klo + level_blocks(level) - 1, kc = klo;
  size_t k = 0, ci = i;
  while (ci < j && kc <= khi) {
    uint64_t first = e->b[ci].key > kc ? e->b[ci].key : kc;
    if (first > khi) break;
    uint64_t c = (first - klo) / cnb, cklo = klo + c * cnb, ckhi = cklo + cnb - 1;
    size_t cj = ci;
    while (cj < j && e->b[cj].key <= ckhi) cj++;
    out[k++] = (child){(uint32_t)c, cklo, ci, cj};
    kc = ckhi + 1;
    ci = (cj > ci && blk_last(&e->b[cj - 1]) > ckhi) ? cj - 1 : cj;
  }
  return k;
}

static size_t keystore_size(size_t k) { return k <= 32 ? k : k < 256 ? 32 : 0; }

static int push_rec(enc *e) {
  if (e->nrec == e->caprec) {
    size_t ncap = e->caprec ? e->caprec * 2 : 64;
    plan_rec *nr = quire__realloc(e->rec, ncap * sizeof *nr);
    if (!nr) return quire__err(QUIRE_ENOMEM, "splinter: out of memory");
    e->rec = nr;
    e->caprec = ncap;
  }
  e->nrec++;
  return 0;
}

static int plan(enc *e, int level, uint64_t klo, size_t i, size_t j, uint64_t *size_out, uint64_t *card_out) {
  size_t r = e->nrec;
  int rc = push_rec(e);
  if (rc) return rc;
  stats st;
  node_stats(e, level, klo, i, j, &st);
  uint64_t cap = sp_level_cap(level);
  plan_rec best = {SP_EMPTY, 1, 1, 1};
  *card_out = st.card;
  if (st.card == cap) {
    best.kind = SP_FULL;
  } else if (st.card > 0) {
    unsigned vw = sp_bytes_for(st.last);
    best = (plan_rec){SP_ARRAY, (uint8_t)vw, 1, st.card * vw + 1};
    unsigned sw = sp_bytes_for(st.max_start), lw = sp_bytes_for(st.max_lenm1);
    uint64_t rsize = st.nruns * (sw + lw) + 1;
    if (rsize < best.size) best = (plan_rec){SP_RUNS, (uint8_t)sw, (uint8_t)lw, rsize};
    uint64_t fb = st.first >> 3, m = (st.last >> 3) - fb + 1;
    unsigned bw = fb == 0 ? 0 : sp_bytes_for(fb) == 3 ? 4 : sp_bytes_for(fb);
    plan_rec bitmap = {SP_BITMAP, (uint8_t)bw, 0, m + bw + 1};
    if (bitmap.size < best.size) best = bitmap;
    if (level <= 2) {
      child ch[256];
      size_t k = children(e, level, klo, i, j, ch);
      uint64_t total = 0, csize = 0, ccard = 0;
      for (size_t c = 0; c < k; c++) {
        if ((rc = plan(e, level + 1, ch[c].klo, ch[c].i, ch[c].j, &csize, &ccard))) return rc;
        total += csize;
      }
      /* the last child's end and cumulative cardinality are implied */
      unsigned ow = sp_bytes_for(total - csize), cw = sp_bytes_for(st.card - ccard);
      uint64_t tsize = total + (k - 1) * (ow + cw) + keystore_size(k) + 2;
      if (tsize < best.size) best = (plan_rec){SP_TREE, (uint8_t)ow, (uint8_t)cw, tsize};
    }
    /* A bitmap is read word by word (algebra on a view ORs or ANDs its bytes
     * as they are; contains is one bit test), where arrays and runs cost work
     * per element: past a few blocks it wins when at most 1/8 larger than the
     * smallest. */
    if (best.kind != SP_BITMAP && bitmap.size >= SP_BITMAP_FAVOURED &&
        bitmap.size <= best.size + best.size / 8)
      best = bitmap;
    if (best.kind != SP_TREE) e->nrec = r + 1; /* children's records are not needed */
  }
  e->rec[r] = best;
  *size_out = best.size;
  return 0;
}

static void put(enc *e, uint32_t v, unsigned w) {
  sp_wr(e->out + e->pos, v, w);
  e->pos += w;
}

static uint64_t emit(enc *e, int level, uint64_t klo, size_t i, size_t j) {
  plan_rec pr = e->rec[e->ri++];
  uint64_t base = klo << 8, card = 0, s, en;
  uint8_t kind = SP_KINDBYTE(pr.kind, 0u, 0u);
  ivl it;
  ivl_init(&it, e->b, i, j, klo, klo + level_blocks(level) - 1);
  switch (pr.kind) {
  case SP_EMPTY: break;
  case SP_FULL: card = sp_level_cap(level); break;
  case SP_ARRAY:
    while (ivl_next(&it, &s, &en))
      for (uint64_t v = s; v <= en; v++) put(e, (uint32_t)(v - base), pr.wa), card++;
    kind = SP_KINDBYTE(SP_ARRAY, pr.wa - 1u, 0u);
    break;
  case SP_RUNS:
    while (ivl_next(&it, &s, &en)) {
      put(e, (uint32_t)(s - base), pr.wa);
      put(e, (uint32_t)(en - s), pr.wb);
      card += en - s + 1;
    }
    kind = SP_KINDBYTE(SP_RUNS, pr.wa - 1u, pr.wb - 1u);
    break;
  case SP_BITMAP: {
    uint8_t *bm = e->out + e->pos;
    uint64_t fb = 0, last = 0;
    int first = 1;
    while (ivl_next(&it, &s, &en)) {
      if (first) {
        fb = (s - base) >> 3;
        memset(bm, 0, (size_t)(pr.size - 1 - pr.wa));
        first = 0;
      }
      card += en - s + 1;
      for (uint64_t v = s - base; v <= en - base; v++) bm[(v >> 3) - fb] |= (uint8_t)(1u << (v & 7));
      last = en - base;
    }
    e->pos += (size_t)((last >> 3) - fb + 1);
    put(e, (uint32_t)fb, pr.wa);
    kind = SP_KINDBYTE(SP_BITMAP, pr.wa == 4 ? 3u : pr.wa, 0u);
    break;
  }
  case SP_TREE: {
    child ch[256];
    uint64_t ends[256], cums[256];
    size_t k = children(e, level, klo, i, j, ch);
    size_t cstart = e->pos;
    for (size_t c = 0; c < k; c++) {
      card += emit(e, level + 1, ch[c].klo, ch[c].i, ch[c].j);
      ends[c] = e->pos - cstart;
      cums[c] = card;
    }
    for (size_t c = 0; c + 1 < k; c++) put(e, (uint32_t)ends[c], pr.wa);
    for (size_t c = 0; c + 1 < k; c++) put(e, (uint32_t)cums[c], pr.wb);
    if (k <= 32) {
      for (size_t c = 0; c < k; c++) e->out[e->pos++] = (uint8_t)ch[c].key;
    } else if (k < 256) {
      memset(e->out + e->pos, 0, 32);
      for (size_t c = 0; c < k; c++) e->out[e->pos + ch[c].key / 8] |= (uint8_t)(1u << (ch[c].key % 8));
      e->pos += 32;
    }
    e->out[e->pos++] = (uint8_t)(k - 1);
    kind = k > 1 ? SP_KINDBYTE(SP_TREE, pr.wa - 1u, pr.wb - 1u) : SP_KINDBYTE(SP_TREE, 0u, 0u);
    break;
  }
  }
  e->out[e->pos++] = kind;
  return card;
}

static int plan_all(enc *e, const splinter_t *s, uint64_t *size) {
  memset(e, 0, sizeof *e);
  e->b = s->b;
  uint64_t root_size, card;
  int rc = plan(e, 0, 0, 0, s->n, &root_size, &card);
  if (rc) {
    quire__free(e->rec);
    return rc;
  }
  if (QUIRE_NEVER(card != s->card)) {
    quire__free(e->rec);
    return quire__err(QUIRE_EINTERNAL, "splinter: cardinality out of sync");
  }
  *size = root_size + SP_FOOTER_FIXED + sp_bytes_for((uint32_t)card);
  if (*size > SIZE_MAX / 2) {
    quire__free(e->rec);
    return quire__err(QUIRE_ETOOLARGE, "splinter: encoding too large");
  }
  return 0;
}

int splinter_serialized_size(const splinter_t *s, size_t *size) {
  enc e;
  uint64_t sz;
  int rc = plan_all(&e, s, &sz);
  if (rc) return rc;
  quire__free(e.rec);
  *size = (size_t)sz;
  return 0;
}

/* Writes the footer after the root node; returns the total length. */
static size_t write_footer(uint8_t *p, size_t root_len, uint64_t card) {
  unsigned cw = sp_bytes_for((uint32_t)card);
  uint8_t *f = p + root_len;
  sp_wr(f, (uint32_t)card, cw);
  f[cw] = (uint8_t)(SPLINTER_FORMAT_VERSION | ((cw - 1) << 4));
  f[cw + 1] = SP_MAGIC0;
  f[cw + 2] = SP_MAGIC1;
  st_le64(f + cw + 3, quire__xxh3(p, root_len + cw + 3));
  return root_len + cw + SP_FOOTER_FIXED;
}

int splinter_serialize(const splinter_t *s, void *buf, size_t cap, size_t *written) {
  enc e;
  uint64_t sz;
  int rc = plan_all(&e, s, &sz);
  if (rc) return rc;
  if (sz > cap) {
    quire__free(e.rec);
    return quire__err(QUIRE_EINVAL, "splinter_serialize: buffer of %zu bytes, need %llu", cap,
                      (unsigned long long)sz);
  }
  e.out = buf;
  e.cap = cap;
  uint64_t card = emit(&e, 0, 0, 0, s->n);
  quire__free(e.rec);
  if (QUIRE_NEVER(card != s->card || e.pos + SP_FOOTER_FIXED + sp_bytes_for((uint32_t)card) != sz))
    return quire__err(QUIRE_EINTERNAL, "splinter: planned and written sizes differ");
  write_footer(e.out, e.pos, card);
  *written = (size_t)sz;
  return 0;
}

int splinter_serialize_alloc(const splinter_t *s, uint8_t **out, size_t *len) {
  size_t sz;
  int rc = splinter_serialized_size(s, &sz);
  if (rc) return rc;
  uint8_t *p = quire__malloc(sz);
  if (!p) return quire__err(QUIRE_ENOMEM, "splinter: out of memory");
  rc = splinter_serialize(s, p, sz, len);
  if (rc) {
    quire__free(p);
    return rc;
  }
  *out = p;
  return 0;
}

void splinter_bytes_free(void *p) { quire__free(p); }
