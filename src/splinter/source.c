/*
 * splinter/source.c — block sources and the public value iterator.
 *
 * A block source (sp_src) turns either form, or a plain [lo, hi] range, into
 * one ascending stream of items: a bitmap of one 256-value block, or a span of
 * consecutive full blocks. Every generic algorithm reads sources, so it is
 * written once for all pairings of forms. Sources allocate nothing; a view
 * source walks the trie with a fixed stack of at most three tree frames.
 */
#include "splinter/splinter_int.h"

size_t sp__owned_find(const sp_blk *b, size_t lo, size_t n, uint32_t key);

static void bits_set_range(uint64_t w[4], unsigned a, unsigned b) {
  for (unsigned i = a >> 6; i <= (b >> 6); i++) {
    unsigned lo = a > i * 64 ? a - i * 64 : 0, hi = b < i * 64 + 63 ? b - i * 64 : 63;
    uint64_t mask = hi - lo == 63 ? ~0ull : ((1ull << (hi - lo + 1)) - 1);
    w[i] |= mask << lo;
  }
}

/* One item of the run [*c, e] starting at *c; advances *c past it. */
static void run_piece(uint64_t *c, uint64_t e, sp_item *it) {
  uint64_t key = *c >> 8;
  if ((*c & 255) == 0 && e >= *c + 255) {
    uint64_t hi = ((e + 1) >> 8) - 1;
    it->lo = (uint32_t)key;
    it->hi = (uint32_t)hi;
    it->full = 1;
    *c = (hi + 1) << 8;
    return;
  }
  uint64_t bend = key * 256 + 255, upto = e < bend ? e : bend;
  memset(it->w, 0, sizeof it->w);
  bits_set_range(it->w, (unsigned)(*c & 255), (unsigned)(upto & 255));
  it->lo = it->hi = (uint32_t)key;
  it->full = 0;
  *c = upto + 1;
}

/* ---- leaves of a view ----------------------------------------------------------- */

static inline uint32_t arr_at(const sp_node *nd, uint32_t i) {
  return sp_rd(nd->p + (size_t)i * nd->wa, nd->wa);
}
static inline uint64_t run_s(const sp_node *nd, uint32_t i) {
  return (uint64_t)nd->base + sp_rd(nd->p + (size_t)i * (nd->wa + nd->wb), nd->wa);
}
static inline uint64_t run_e(const sp_node *nd, uint32_t i) {
  return run_s(nd, i) + sp_rd(nd->p + (size_t)i * (nd->wa + nd->wb) + nd->wa, nd->wb);
}

static void leaf_init(sp_leaf *l, const sp_node *nd) {
  l->node = *nd;
  l->pos = 0;
  l->c = 0;
}

static int leaf_next(sp_leaf *l, sp_item *it) {
  const sp_node *nd = &l->node;
  switch (nd->kind) {
  case SP_FULL:
    if (l->pos) return 0;
    l->pos = 1;
    it->lo = nd->base >> 8;
    it->hi = (uint32_t)((nd->base >> 8) + (sp_level_cap(nd->level) >> 8) - 1);
    it->full = 1;
    return 1;
  case SP_BITMAP: {
    uint32_t first = nd->bstart / 32, last = (uint32_t)(((uint64_t)nd->bstart + nd->n - 1) / 32);
    if (l->pos < first) l->pos = first;
    while (l->pos <= last) {
      sp__bitmap_chunk(nd, l->pos, it->w);
      l->pos++;
      if (it->w[0] | it->w[1] | it->w[2] | it->w[3]) {
        it->lo = it->hi = (nd->base >> 8) + l->pos - 1;
        it->full = 0;
        return 1;
      }
    }
    return 0;
  }
  case SP_ARRAY: {
    uint32_t pos = l->pos, n = nd->n, base = nd->base;
    if (pos >= n) return 0;
    const uint8_t *q = nd->p;
    uint64_t w[4] = {0, 0, 0, 0};
    uint32_t key;
    if (nd->level == 3) { /* a block: every value is in this one item; ascending, so word by word */
      key = base >> 8;
      for (unsigned h = 0; h < 4; h++) {
        uint64_t acc = 0;
        unsigned lim = (h + 1) * 64;
        for (; pos < n && q[pos] < lim; pos++) acc |= 1ull << (q[pos] & 63);
        w[h] = acc;
      }
    } else {
      unsigned vw = nd->wa;
      key = (base + sp_rd(q + (size_t)pos * vw, vw)) >> 8;
      for (; pos < n; pos++) {
        uint32_t v = base + sp_rd(q + (size_t)pos * vw, vw);
        if (v >> 8 != key) break;
        w[(v >> 6) & 3] |= 1ull << (v & 63);
      }
    }
    l->pos = pos;
    memcpy(it->w, w, sizeof w);
    it->lo = it->hi = key;
    it->full = 0;
    return 1;
  }
  case SP_RUNS: {
    if (l->pos >= nd->n) return 0;
    uint64_t s = run_s(nd, l->pos), e = run_e(nd, l->pos);
    if (l->c < s) l->c = s;
    run_piece(&l->c, e, it);
    if (l->c <= e) return 1;
    l->pos++;
    if (it->full) return 1;
    /* Later runs that start in the same block join this item. */
    uint64_t bend = (uint64_t)it->lo * 256 + 255;
    while (l->pos < nd->n) {
      s = run_s(nd, l->pos);
      if (s > bend) break;
      e = run_e(nd, l->pos);
      uint64_t upto = e < bend ? e : bend;
      bits_set_range(it->w, (unsigned)(s & 255), (unsigned)(upto & 255));
      if (e > bend) {
        l->c = bend + 1;
        break;
      }
      l->pos++;
    }
    return 1;
  }
  default: return 0;
  }
}

/* Positions the leaf so its next item is the first with a block key >= key. */
static void leaf_seek(sp_leaf *l, uint32_t key) {
  const sp_node *nd = &l->node;
  uint64_t target = (uint64_t)key << 8;
  if (target <= nd->base) return;
  switch (nd->kind) {
  case SP_BITMAP: {
    uint32_t rel = key - (nd->base >> 8);
    if (rel > l->pos) l->pos = rel;
    return;
  }
  case SP_ARRAY: {
    uint32_t lo = l->pos, hi = nd->n;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if ((uint64_t)nd->base + arr_at(nd, mid) < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    l->pos = lo;
    return;
  }
  case SP_RUNS: {
    uint32_t lo = l->pos, hi = nd->n;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (run_e(nd, mid) < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo != l->pos) l->c = 0;
    l->pos = lo;
    if (l->c < target) l->c = target;
    return;
  }
  default: return;
  }
}

/* ---- sources ------------------------------------------------------------------------ */

/* Key of child idx, given the key of child idx-1 (prev, -1 for none): with a
 * key bitmap this is the next set bit, not a scan from the start. */
static uint32_t next_key(const sp_node *t, uint32_t idx, int prev) {
  if (t->keymode != 1) return sp__tree_key(t, idx);
  for (uint32_t b = (uint32_t)(prev + 1); b < 256;) {
    uint64_t x = ld_le64(t->keys + (b >> 6) * 8) >> (b & 63);
    if (x) return b + (uint32_t)__builtin_ctzll(x);
    b = (b | 63) + 1;
  }
  return 255;
}

static int view_next(sp_src *s, sp_item *it) {
  for (;;) {
    if (s->leaf_active) {
      if (leaf_next(&s->leaf, it)) return 1;
      s->leaf_active = 0;
    }
    if (s->depth == 0) return 0;
    int f = s->depth - 1;
    if (s->fidx[f] >= s->fr[f].n) {
      s->depth--;
      continue;
    }
    /* parse the child straight into the leaf slot; move it to a frame if it is a tree */
    uint32_t key = next_key(&s->fr[f], s->fidx[f], s->fkey[f]);
    s->fkey[f] = (int)key;
    sp_tree_child_k(&s->fr[f], s->fidx[f]++, key, &s->leaf.node);
    if (s->leaf.node.kind == SP_TREE) {
      s->fr[s->depth] = s->leaf.node;
      s->fidx[s->depth] = 0;
      s->fkey[s->depth] = -1;
      s->depth++;
    } else {
      s->leaf.pos = 0;
      s->leaf.c = 0;
      s->leaf_active = 1;
    }
  }
}

/* Re-descends from the root to the first item holding a block key >= key. */
static void view_seek(sp_src *s, uint32_t key) {
  sp_node nd;
  sp__view_root(s->view, &nd);
  s->depth = 0;
  s->leaf_active = 0;
  int constrained = 1;
  for (;;) {
    if (nd.kind == SP_TREE) {
      uint32_t idx = 0;
      int found = 0;
      if (constrained) {
        uint32_t byte = (key >> (8 * (2 - nd.level))) & 255;
        /* first child with key >= byte */
        uint32_t lo = 0, hi = nd.n;
        while (lo < hi) {
          uint32_t mid = (lo + hi) / 2;
          if (sp__tree_key(&nd, mid) < byte)
            lo = mid + 1;
          else
            hi = mid;
        }
        idx = lo;
        found = lo < nd.n && sp__tree_key(&nd, lo) == byte;
      }
      s->fr[s->depth] = nd;
      s->fidx[s->depth] = idx;
      s->fkey[s->depth] = idx ? (int)sp__tree_key(&nd, idx - 1) : -1;
      s->depth++;
      if (idx >= nd.n) return;
      sp_node child;
      uint32_t ckey = sp__tree_key(&nd, idx);
      sp_tree_child_k(&nd, idx, ckey, &child);
      s->fidx[s->depth - 1] = idx + 1;
      s->fkey[s->depth - 1] = (int)ckey;
      if (!found) constrained = 0;
      if (child.kind == SP_TREE) {
        nd = child;
        continue;
      }
      nd = child;
    }
    if (nd.kind == SP_EMPTY) return;
    leaf_init(&s->leaf, &nd);
    if (constrained) leaf_seek(&s->leaf, key);
    s->leaf_active = 1;
    return;
  }
}

static void load(sp_src *s) {
  switch (s->type) {
  case SRC_OWNED:
    if (s->i < s->n) {
      const sp_blk *b = &s->b[s->i++];
      s->cur.lo = b->key;
      s->cur.hi = sp_blk_last(b);
      s->cur.full = b->nfull != 0;
      if (!b->nfull) memcpy(s->cur.w, b->w, sizeof s->cur.w);
      s->has = 1;
    } else
      s->has = 0;
    return;
  case SRC_VIEW: s->has = view_next(s, &s->cur); return;
  case SRC_RANGE:
    if (s->rlo <= s->rhi) {
      run_piece(&s->rlo, s->rhi, &s->cur);
      s->has = 1;
    } else
      s->has = 0;
    return;
  default: s->has = 0; return;
  }
}

void sp__src_init(sp_src *s, splinter_ref_t ref) {
  s->has = 0;
  if (ref.owned) {
    s->type = SRC_OWNED;
    s->b = ref.owned->b;
    s->n = ref.owned->n;
    s->i = 0;
  } else if (ref.view) {
    s->type = SRC_VIEW;
    s->view = ref.view;
    s->depth = 0;
    s->leaf_active = 0;
    sp_node root;
    sp__view_root(ref.view, &root);
    if (root.kind == SP_TREE) {
      s->fr[0] = root;
      s->fidx[0] = 0;
      s->fkey[0] = -1;
      s->depth = 1;
    } else if (root.kind != SP_EMPTY) {
      leaf_init(&s->leaf, &root);
      s->leaf_active = 1;
    }
  } else {
    s->type = SRC_NONE;
  }
  load(s);
}

void sp__src_init_range(sp_src *s, uint32_t lo, uint32_t hi) {
  s->type = SRC_RANGE;
  s->rlo = lo;
  s->rhi = hi;
  load(s);
}

void sp__src_next(sp_src *s) { load(s); }

void sp__src_seek(sp_src *s, uint32_t key) {
  if (!s->has) return;
  if (s->cur.hi < key) {
    switch (s->type) {
    case SRC_OWNED: s->i = sp__owned_find(s->b, s->i, s->n, key); break;
    case SRC_VIEW: { /* a short gap is cheaper to walk than to re-descend from the root */
      for (int step = 0; step < 4; step++) {
        load(s);
        if (!s->has) return;
        if (s->cur.hi >= key) goto trim;
      }
      view_seek(s, key);
      break;
    }
    case SRC_RANGE: {
      uint64_t t = (uint64_t)key << 8;
      if (s->rlo < t) s->rlo = t;
      break;
    }
    default: break;
    }
    load(s);
    if (!s->has) return;
  }
trim:
  if (s->cur.full && s->cur.lo < key) s->cur.lo = key;
}

/* ---- public iterator -------------------------------------------------------------------- */

typedef struct sp_iter {
  sp_src src;
  uint64_t c; /* next candidate value */
} sp_iter;

_Static_assert(sizeof(sp_iter) <= sizeof(splinter_iter_t), "splinter_iter_t too small");
_Static_assert(_Alignof(sp_iter) <= _Alignof(splinter_iter_t), "splinter_iter_t misaligned");

void splinter_iter_init(splinter_iter_t *pub, splinter_ref_t set, uint32_t lower_bound) {
  sp_iter *it = (sp_iter *)pub;
  sp__src_init(&it->src, set);
  it->c = lower_bound;
  if (lower_bound) sp__src_seek(&it->src, lower_bound >> 8);
}

static int iter_next(sp_iter *it, uint32_t *out) {
  while (it->src.has) {
    const sp_item *cur = &it->src.cur;
    uint64_t first = (uint64_t)cur->lo << 8, last = ((uint64_t)cur->hi << 8) | 255;
    if (it->c < first) it->c = first;
    if (it->c <= last) {
      if (cur->full) {
        *out = (uint32_t)it->c++;
        return 1;
      }
      unsigned pos = (unsigned)(it->c & 255);
      for (unsigned wi = pos >> 6; wi < 4; wi++) {
        uint64_t w = cur->w[wi];
        if (wi == pos >> 6) w &= ~0ull << (pos & 63);
        if (w) {
          uint64_t v = first + wi * 64 + (unsigned)__builtin_ctzll(w);
          *out = (uint32_t)v;
          it->c = v + 1;
          return 1;
        }
      }
    }
    sp__src_next(&it->src);
  }
  return 0;
}

int splinter_iter_next(splinter_iter_t *pub, uint32_t *out) { return iter_next((sp_iter *)pub, out); }

size_t splinter_iter_next_batch(splinter_iter_t *pub, uint32_t *out, size_t cap) {
  sp_iter *it = (sp_iter *)pub;
  size_t n = 0;
  while (n < cap && it->src.has) {
    const sp_item *cur = &it->src.cur;
    uint64_t first = (uint64_t)cur->lo << 8, last = ((uint64_t)cur->hi << 8) | 255;
    if (it->c < first) it->c = first;
    if (cur->full) {
      while (n < cap && it->c <= last) out[n++] = (uint32_t)it->c++;
    } else if (it->c <= last) {
      unsigned pos = (unsigned)(it->c & 255);
      for (unsigned wi = pos >> 6; wi < 4 && n < cap; wi++) {
        uint64_t w = cur->w[wi];
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
    if (it->c > last) sp__src_next(&it->src);
  }
  return n;
}
