/*
 * splinter/splinter_int.h — internals shared by the splinter files.
 *
 * Two representations meet here:
 *  - the owned form: a sorted array of 256-value blocks (sp_blk). A block is
 *    either a bitmap (non-empty, not full) or a span of consecutive full
 *    blocks. Full spans are merged, so the array is canonical;
 *  - the serialized form: a 4-level byte trie (docs/SPLINTER.md), read in
 *    place through sp_node descriptors.
 * Every generic algorithm (algebra, equality, iteration, copying) reads a set
 * through a block cursor (sp_cur): a window of owned-form blocks, which is
 * the owned set's own array, or a buffer a view walker decodes nodes into.
 * Files: owned.c (owned form), view.c (validation and in-place queries),
 * source.c (cursors, view walkers, the iterator), algebra.c, encode.c, dump.c.
 */
#ifndef QUIRE_SPLINTER_INT_H
#define QUIRE_SPLINTER_INT_H

#include "quire/splinter.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---- format (docs/SPLINTER.md) -------------------------------------------------- */
enum {
  SP_EMPTY = 0,
  SP_FULL = 1,
  SP_ARRAY = 2,
  SP_RUNS = 3,
  SP_BITMAP = 4,
  SP_TREE = 5,
};
#define SP_MAGIC0 0xB5
#define SP_MAGIC1 0x71
/* Footer: cardinality mod 2^32 (1..4 bytes) | flags | magic (2) | XXH3-64 (8). */
#define SP_FOOTER_FIXED 11 /* flags + magic + checksum */
#define SP_KIND(b) ((b)&7u)
#define SP_FA(b) (((b) >> 3) & 3u)
#define SP_FB(b) (((b) >> 5) & 3u)
#define SP_KINDBYTE(kind, fa, fb) ((uint8_t)((kind) | ((fa) << 3) | ((fb) << 5)))

/* A parsed node header. Levels 0 (root, 4-byte values) .. 3 (block, 1 byte).
 * A node's length always comes from outside (its parent's index, or the
 * footer for the root), so nodes store no lengths or counts of their own. */
typedef struct sp_node {
  const uint8_t *p;            /* first byte of the node */
  size_t len;                  /* bytes, kind byte included */
  uint32_t base;               /* smallest value the node can hold */
  uint32_t n;                  /* ARRAY: values; RUNS: runs; TREE: children; BITMAP: bitmap bytes */
  uint32_t bstart;             /* BITMAP: index of the node-local byte bits[0] holds */
  uint8_t level, kind, wa, wb; /* ARRAY: wa value width; RUNS: wa start, wb length width;
                                  TREE: wa offset, wb cardinality width */
  uint8_t keymode;             /* TREE: 0 sorted key list, 1 32-byte key bitmap, 2 all 256 keys */
  const uint8_t *keys;         /* TREE */
  const uint8_t *ends;         /* TREE: end offsets of children 0..n-2 (wa bytes each) */
  const uint8_t *cums;         /* TREE: cardinality of children 0..i, for i < n-1 (wb bytes each) */
  size_t region;               /* TREE: bytes of the children */
} sp_node;

static inline uint64_t sp_level_cap(int level) { return 1ull << (8 * (4 - level)); }
static inline uint32_t sp_rd(const uint8_t *p, unsigned w) {
  switch (w) {
  case 1: return p[0];
  case 2: return ld_le16(p);
  case 3: return (uint32_t)ld_le16(p) | (uint32_t)p[2] << 16;
  default: return ld_le32(p);
  }
}
static inline void sp_wr(uint8_t *p, uint32_t v, unsigned w) {
  for (unsigned i = 0; i < w; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline unsigned sp_bytes_for(uint64_t v) {
  return v < (1u << 8) ? 1 : v < (1u << 16) ? 2 : v < (1u << 24) ? 3 : 4;
}
/* BITMAP start field: code 0..3 means 0, 1, 2 or 4 bytes. */
static inline unsigned sp_bstart_width(unsigned code) { return code == 3 ? 4 : code; }

/* b / d for d in 1..8 without a hardware division (each case divides by a constant). */
static inline size_t sp_div_small(size_t b, unsigned d) {
  switch (d) {
  case 1: return b;
  case 2: return b / 2;
  case 3: return b / 3;
  case 4: return b / 4;
  case 5: return b / 5;
  case 6: return b / 6;
  case 7: return b / 7;
  default: return b / 8;
  }
}

static inline size_t sp_keystore_size(uint32_t k) { return k <= 32 ? k : k < 256 ? 32 : 0; }

/* Fills nd for the node at p[0..len) without checking anything: for bytes
 * splinter_view_open accepted (and, after its checks, sp__node_parse). */
static inline void sp_node_fill(const uint8_t *p, size_t len, int level, uint32_t base, sp_node *nd) {
  uint8_t kb = p[len - 1];
  nd->p = p;
  nd->len = len;
  nd->base = base;
  nd->level = (uint8_t)level;
  nd->kind = (uint8_t)SP_KIND(kb);
  nd->wa = (uint8_t)(SP_FA(kb) + 1);
  nd->wb = (uint8_t)(SP_FB(kb) + 1);
  switch (nd->kind) {
  case SP_ARRAY: {
    size_t b = len - 1;
    nd->n = (uint32_t)(nd->wa == 1 ? b : nd->wa == 2 ? b >> 1 : nd->wa == 4 ? b >> 2 : b / 3);
    break;
  }
  case SP_RUNS: nd->n = (uint32_t)sp_div_small(len - 1, (unsigned)nd->wa + nd->wb); break;
  case SP_BITMAP: {
    unsigned sw = sp_bstart_width(SP_FA(kb));
    nd->bstart = sw ? sp_rd(p + len - 1 - sw, sw) : 0;
    nd->n = (uint32_t)(len - 1 - sw);
    nd->wa = (uint8_t)sw;
    break;
  }
  case SP_TREE: {
    uint32_t k = (uint32_t)p[len - 2] + 1;
    size_t ks = sp_keystore_size(k);
    nd->n = k;
    nd->keymode = k <= 32 ? 0 : k < 256 ? 1 : 2;
    nd->keys = p + len - 2 - ks;
    nd->cums = nd->keys - (size_t)(k - 1) * nd->wb;
    nd->ends = nd->cums - (size_t)(k - 1) * nd->wa;
    nd->region = (size_t)(nd->ends - p);
    break;
  }
  default: nd->n = 0; break;
  }
}

/* Parses the header of the node occupying p[0..len) at level with the given
 * base. Checks sizes only (not contents). 0 or QUIRE_ECORRUPT. */
int sp__node_parse(const uint8_t *p, size_t len, int level, uint32_t base, sp_node *out);
uint32_t sp__tree_key(const sp_node *t, uint32_t i);
static inline size_t sp_tree_end(const sp_node *t, uint32_t i) {
  return i + 1 < t->n ? sp_rd(t->ends + (size_t)i * t->wa, t->wa) : t->region;
}
static inline size_t sp_tree_start(const sp_node *t, uint32_t i) {
  return i ? sp_rd(t->ends + (size_t)(i - 1) * t->wa, t->wa) : 0;
}
/* Child i, whose key is key, of a validated TREE node. */
static inline void sp_tree_child_k(const sp_node *t, uint32_t i, uint32_t key, sp_node *child) {
  size_t start = sp_tree_start(t, i);
  sp_node_fill(t->p + start, sp_tree_end(t, i) - start, t->level + 1, t->base | (key << (8 * (3 - t->level))),
               child);
}
static inline void sp__tree_child(const sp_node *t, uint32_t i, sp_node *child) {
  sp_tree_child_k(t, i, sp__tree_key(t, i), child);
}
/* Cardinality of children 0..i of a tree, for i < n - 1. */
static inline uint64_t sp__tree_cum(const sp_node *t, uint32_t i) {
  return sp_rd(t->cums + (size_t)i * t->wb, t->wb);
}
/* Finds key in a tree: 1 and *idx = its child, or 0 and *idx = children below key. */
int sp__tree_find(const sp_node *t, uint32_t key, uint32_t *idx);
/* Root node of a validated view. */
static inline void sp__view_root(const splinter_view_t *v, sp_node *root) {
  sp_node_fill(v->bytes, v->root_len, 0, 0, root);
}

/* ---- owned form -------------------------------------------------------------- */
typedef struct sp_blk {
  uint32_t key;   /* value >> 8 of the first block */
  uint32_t nfull; /* 0: bitmap block in w; n >= 1: n consecutive full blocks */
  uint64_t w[4];  /* bit v%256 of block: w[v/64] bit v%64 */
} sp_blk;

struct splinter {
  sp_blk *b;
  size_t n, cap;
  uint64_t card;
  /* The block array of an earlier content, kept so that the next result built
   * into this set (algebra writes a new array and swaps it in) reuses it:
   * repeated algebra into the same set then allocates nothing. */
  sp_blk *spare;
  size_t spare_cap;
};

static inline uint32_t sp_blk_last(const sp_blk *b) { return b->key + (b->nfull ? b->nfull - 1 : 0); }
/* Index of the first of blocks b[lo..n) whose last key is >= key (n if none). */
size_t sp__blk_find(const sp_blk *b, size_t lo, size_t n, uint32_t key);
static inline uint64_t sp_blk_card(const sp_blk *b) {
  return b->nfull ? (uint64_t)b->nfull * 256
                  : (uint64_t)(__builtin_popcountll(b->w[0]) + __builtin_popcountll(b->w[1]) +
                               __builtin_popcountll(b->w[2]) + __builtin_popcountll(b->w[3]));
}

/* ---- building owned sets ------------------------------------------------------ */

/* Output builder: blocks appended in ascending order, kept canonical (bitmap
 * blocks neither empty nor full, adjacent full spans merged). The *_r
 * appenders need room reserved first (sp_build_room); an appended block may
 * merge into the last one instead of taking its slot. */
typedef struct sp_build {
  sp_blk *b;
  size_t n, cap;
  uint64_t card;
} sp_build;
int sp__build_grow(sp_build *o, size_t extra);
static inline int sp_build_room(sp_build *o, size_t extra) {
  return o->cap - o->n >= extra ? 0 : sp__build_grow(o, extra);
}
static inline void sp_build_full_r(sp_build *o, uint32_t lo, uint32_t hi) {
  o->card += ((uint64_t)hi - lo + 1) * 256;
  if (o->n) {
    sp_blk *p = &o->b[o->n - 1];
    if (p->nfull && (uint64_t)p->key + p->nfull == lo) {
      p->nfull += hi - lo + 1;
      return;
    }
  }
  sp_blk *b = &o->b[o->n++];
  b->key = lo;
  b->nfull = hi - lo + 1;
  memset(b->w, 0xff, sizeof b->w);
}
static inline void sp_build_bits_r(sp_build *o, uint32_t key, const uint64_t w[4]) {
  if (!(w[0] | w[1] | w[2] | w[3])) return;
  if ((w[0] & w[1] & w[2] & w[3]) == ~0ull) {
    sp_build_full_r(o, key, key);
    return;
  }
  sp_blk *b = &o->b[o->n++];
  b->key = key;
  b->nfull = 0;
  memcpy(b->w, w, sizeof b->w);
  o->card += sp_blk_card(b);
}
/* Block x of a canonical source, from block key lo (> x->key only inside a full span). */
static inline void sp_build_copy_r(sp_build *o, const sp_blk *x, uint32_t lo) {
  if (x->nfull) {
    sp_build_full_r(o, lo, sp_blk_last(x));
    return;
  }
  o->b[o->n++] = *x;
  o->card += sp_blk_card(x);
}
int sp__build_bits(sp_build *o, uint32_t key, const uint64_t w[4]);
/* Starts building a result that will replace the contents of s, in s's spare
 * array if it has one (never in s's live array, so s stays intact until the
 * commit and unchanged if the build fails). */
void sp__build_start(sp_build *o, splinter_t *s);
/* Abandons a build started on s: its array becomes s's spare again. */
void sp__build_abort(sp_build *o, splinter_t *s);
void sp__build_free(sp_build *o);
/* Moves the built blocks into s; s's old array becomes its spare (or is
 * freed if it is much larger than s now needs). */
void sp__build_commit(sp_build *o, splinter_t *s);

/* ---- block cursors ------------------------------------------------------------ */

/* A view walker decodes a view's nodes, in ascending order, into owned-form
 * blocks, many at a time. It keeps the path from the root (at most three tree
 * frames) and the leaf being decoded; it allocates nothing. */
typedef struct sp_walk {
  const splinter_view_t *view;
  sp_node fr[3];    /* open trees, outermost first */
  uint32_t fidx[3]; /* next child of each */
  int fkey[3];      /* key of the child visited last (-1: none) */
  int depth;
  int leaf_active;
  sp_node leaf;
  uint32_t pos; /* leaf: next bitmap chunk, array value or run */
  uint64_t c;   /* RUNS leaf: next value to produce */
  /* Raw chunks found by the last fill (raw_n > 0): raw_n blocks of a bitmap
   * leaf, block i the 32 bytes at raw + 32 * i under key raw_key + i. */
  const uint8_t *raw;
  uint32_t raw_key, raw_n;
} sp_walk;

/* Every generic algorithm (algebra, predicates, copies, the public iterator)
 * reads a set through a cursor: a window b[i..n) of canonical blocks in
 * ascending order. For an owned set the window is its block array (nothing is
 * copied); for a view it is a caller-provided buffer the walker refills. A
 * full span can be partly consumed: skip counts its blocks already used. */
typedef struct sp_cur {
  const sp_blk *b;
  size_t i, n;
  uint32_t skip;
  uint32_t want;               /* view: blocks to decode at the next refill (grows to bufcap) */
  sp_blk *buf;                 /* view: the window's storage */
  size_t bufcap;               /* its capacity in blocks (>= 1) */
  const splinter_view_t *view; /* NULL: the window is the whole set */
  /* A raw window (raw != NULL; only with raw_ok): the stretch of whole 32-byte
   * chunks of a view's bitmap leaf, read in place: block i is the bytes at
   * raw + 32 * i, key raw_key + i, and may be empty or full. Only the merge
   * loop reads raw windows; sp__cur_plain turns one back into blocks. */
  const uint8_t *raw;
  uint32_t raw_key;
  int raw_ok, raw_hold;
  /* Window refills to go before the merge loop drains this view into the
   * output again: set when a drain kept less than half of what it decoded
   * (the sides interleave, and decoding into the output only adds a copy). */
  uint32_t drain_wait;
  sp_walk walk;
} sp_cur;

/* Cursors over blocks b[0..n) (an owned set, a range), or over a view using
 * buf[0..cap) (cap >= 1) as the window. */
void sp__cur_blocks(sp_cur *c, const sp_blk *b, size_t n);
void sp__cur_view(sp_cur *c, const splinter_view_t *v, sp_blk *buf, size_t cap);
void sp__cur_ref(sp_cur *c, splinter_ref_t r, sp_blk *buf, size_t cap);
/* The window is used up: decode the next one. false at the end of the set. */
bool sp__cur_refill(sp_cur *c);
/* Drops everything left in c. */
void sp__cur_finish(sp_cur *c);
/* A raw window becomes a window of blocks from its current chunk on. */
void sp__cur_plain(sp_cur *c);
/* The largest block key (a block holds the values key*256 .. key*256+255). */
#define SP_LAST_KEY 0xFFFFFFu
/* Moves to the first block whose last key is >= key (<= SP_LAST_KEY) and
 * trims a full span to start at key. The cursor must not be past key already. */
void sp__cur_seek_far(sp_cur *c, uint32_t key);

/* true if a current block exists (refilling a view's window if needed). */
static inline bool sp_cur_ok(sp_cur *c) { return c->i < c->n || sp__cur_refill(c); }
static inline void sp_cur_next(sp_cur *c) {
  c->i++;
  c->skip = 0;
}
/* The first key of the current block that is still to be used (raw windows too). */
static inline uint32_t sp_cur_lo(const sp_cur *c) {
  return c->raw ? c->raw_key + (uint32_t)c->i : c->b[c->i].key + c->skip;
}
/* Drops the current block's keys up to and including key (within it). */
static inline void sp_cur_consume(sp_cur *c, uint32_t key) {
  const sp_blk *x = &c->b[c->i];
  if (x->nfull && sp_blk_last(x) > key)
    c->skip = key + 1 - x->key;
  else
    sp_cur_next(c);
}
/* sp__cur_seek_far with the common short steps inline. Needs sp_cur_ok(c). */
static inline void sp_cur_seek(sp_cur *c, uint32_t key) {
  const sp_blk *x = &c->b[c->i];
  if (sp_blk_last(x) < key) {
    if (c->i + 1 < c->n && x[1].key >= key) {
      sp_cur_next(c);
      return;
    }
    sp__cur_seek_far(c, key);
    return;
  }
  if (x->nfull && x->key + c->skip < key) c->skip = key - x->key;
}
/* Blocks the cursor will probably yield (exact for owned sets), to size outputs. */
size_t sp__cur_estimate(const sp_cur *c);

/* Appends everything left in c to o. */
int sp__build_rest(sp_build *o, sp_cur *c);
/* Appends c's blocks up to block key hi to o, clipping a full span that runs
 * past hi (the rest stays in c). A view's blocks are decoded straight into
 * o, not copied through the window (the blocks a decode yields past hi are
 * moved to the window). */
int sp__cur_drain(sp_build *o, sp_cur *c, uint32_t hi);

/* ---- shared helpers ------------------------------------------------------------ */
int sp__op_range(splinter_t *s, uint32_t lo, uint32_t hi, int remove);
static inline bool sp_ref_ok(splinter_ref_t r) { return (r.owned != NULL) != (r.view != NULL); }

#endif
