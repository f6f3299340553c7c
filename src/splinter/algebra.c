/*
 * splinter/algebra.c — set algebra, cut and the set predicates, written once
 * over block cursors (source.c), so every pairing of owned and view operands
 * runs the same code. The merge loop is compiled once per operation, so its
 * common step (two bitmap blocks under the same key) is four word operations
 * and an append, and the side an operation drops is skipped by a seek (a
 * gallop in the window, or a re-descent of the view) instead of being read.
 * Results are built into a fresh block array and swapped into the output at
 * the end, which makes in-place use (out == a) safe and leaves the output
 * untouched on failure.
 */
#include "splinter/splinter_int.h"

enum { OP_OR, OP_AND, OP_ANDNOT, OP_XOR };

/* Blocks a view operand decodes at a time (a window on the stack). */
#define SP_WINDOW 64

typedef struct operand {
  sp_cur cur;
  sp_blk buf[SP_WINDOW];
} operand;

static void operand_init(operand *o, splinter_ref_t r) { sp__cur_ref(&o->cur, r, o->buf, SP_WINDOW); }

static const uint64_t ONES[4] = {~0ull, ~0ull, ~0ull, ~0ull};

#define SP_INLINE static inline __attribute__((always_inline))

SP_INLINE uint64_t word_op(int op, uint64_t a, uint64_t b) {
  return op == OP_OR ? a | b : op == OP_AND ? a & b : op == OP_ANDNOT ? a & ~b : a ^ b;
}

/* The four words of a block, as values (four scalars the compiler keeps in
 * registers; a loop over an array at -O2 goes through memory). */
typedef struct words {
  uint64_t w0, w1, w2, w3;
} words;

SP_INLINE words combine(int op, const uint64_t *a, const uint64_t *b) {
  words r = {word_op(op, a[0], b[0]), word_op(op, a[1], b[1]), word_op(op, a[2], b[2]),
             word_op(op, a[3], b[3])};
  return r;
}

/* Appends the result bits r of block key to blocks ob[0..*on) (room known). */
SP_INLINE void emit_bits(sp_blk *ob, size_t *on, uint64_t *card, uint32_t key, words r) {
  if (!(r.w0 | r.w1 | r.w2 | r.w3)) return;
  if ((r.w0 & r.w1 & r.w2 & r.w3) == ~0ull) {
    *card += 256;
    sp_blk *p = *on ? &ob[*on - 1] : NULL;
    if (p && p->nfull && (uint64_t)p->key + p->nfull == key) {
      p->nfull++;
      return;
    }
    sp_blk *x = &ob[(*on)++];
    x->key = key;
    x->nfull = 1;
    memset(x->w, 0xff, sizeof x->w);
    return;
  }
  sp_blk *x = &ob[(*on)++];
  x->key = key;
  x->nfull = 0;
  x->w[0] = r.w0, x->w[1] = r.w1, x->w[2] = r.w2, x->w[3] = r.w3;
  *card += (uint64_t)(__builtin_popcountll(r.w0) + __builtin_popcountll(r.w1) + __builtin_popcountll(r.w2) +
                      __builtin_popcountll(r.w3));
}

SP_INLINE words combine_w(int op, words a, words b) {
  words r = {word_op(op, a.w0, b.w0), word_op(op, a.w1, b.w1), word_op(op, a.w2, b.w2),
             word_op(op, a.w3, b.w3)};
  return r;
}

/* The words of block i of a window: raw (bytes of a view's bitmap leaf) or blocks. */
SP_INLINE words window_words(const sp_blk *b, const uint8_t *raw, size_t i, const int is_raw) {
  if (is_raw) {
    const uint8_t *q = raw + 32 * i;
    words w = {ld_le64(q), ld_le64(q + 8), ld_le64(q + 16), ld_le64(q + 24)};
    return w;
  }
  words w = {b[i].w[0], b[i].w[1], b[i].w[2], b[i].w[3]};
  return w;
}

/* The common stretch of a merge, where both current blocks are bitmaps, with
 * the cursors and outputs in locals (the build has no strict aliasing, so
 * their fields would be reloaded after every store); compiled for each
 * combination of block and raw windows (a raw block may be empty or full:
 * results go through emit_bits). Returns 0 at the end of a window or when an
 * output needs room, 1 when the general step must run: a full span, or the
 * side the operation drops must skip more than one block of a block window. */
SP_INLINE int merge_run(sp_cur *a, sp_cur *b, const int op, const int cut, sp_build *out, sp_build *both,
                        const int araw, const int braw) {
  const bool keep_a = op != OP_AND, keep_b = op == OP_OR || op == OP_XOR;
  const sp_blk *ab = a->b, *bb = b->b;
  const uint8_t *ar = a->raw, *br = b->raw;
  const uint32_t ak0 = a->raw_key, bk0 = b->raw_key;
  const size_t ni = a->n, nj = b->n, ocap = out->cap, qcap = cut ? both->cap : 0;
  size_t i = a->i, j = b->i, on = out->n, qn = cut ? both->n : 0;
  sp_blk *ob = out->b, *qb = cut ? both->b : NULL;
  uint64_t ocard = out->card, qcard = cut ? both->card : 0;
  int general = 0;
  while (i < ni && j < nj && on < ocap && (!cut || qn < qcap)) {
    if ((!araw && ab[i].nfull) || (!braw && bb[j].nfull)) {
      general = 1;
      break;
    }
    uint32_t ka = araw ? ak0 + (uint32_t)i : ab[i].key, kb = braw ? bk0 + (uint32_t)j : bb[j].key;
    if (ka == kb) {
      words wa = window_words(ab, ar, i, araw), wb = window_words(bb, br, j, braw);
      emit_bits(ob, &on, &ocard, ka, combine_w(op, wa, wb));
      if (cut) emit_bits(qb, &qn, &qcard, ka, combine_w(OP_AND, wa, wb));
      i++;
      j++;
    } else if (ka < kb) {
      if (keep_a) {
        if (araw) {
          emit_bits(ob, &on, &ocard, ka, window_words(ab, ar, i, 1));
        } else {
          ob[on++] = ab[i];
          ocard += sp_blk_card(&ab[i]);
        }
      } else if (araw) { /* to kb, or past the window */
        i = kb - ak0 < ni ? kb - ak0 : ni;
        continue;
      } else if (i + 1 == ni || ab[i + 1].key < kb) {
        general = 1;
        break;
      }
      i++;
    } else {
      if (keep_b) {
        if (braw) {
          emit_bits(ob, &on, &ocard, kb, window_words(bb, br, j, 1));
        } else {
          ob[on++] = bb[j];
          ocard += sp_blk_card(&bb[j]);
        }
      } else if (braw) {
        j = ka - bk0 < nj ? ka - bk0 : nj;
        continue;
      } else if (j + 1 == nj || bb[j + 1].key < ka) {
        general = 1;
        break;
      }
      j++;
    }
  }
  a->i = i; /* only bitmap blocks were passed, whose skip is 0 */
  b->i = j;
  out->n = on;
  out->card = ocard;
  if (cut) {
    both->n = qn;
    both->card = qcard;
  }
  return general;
}

SP_INLINE int merge_bitmaps(sp_cur *a, sp_cur *b, const int op, const int cut, sp_build *out,
                            sp_build *both) {
  if (a->raw)
    return b->raw ? merge_run(a, b, op, cut, out, both, 1, 1) : merge_run(a, b, op, cut, out, both, 1, 0);
  return b->raw ? merge_run(a, b, op, cut, out, both, 0, 1) : merge_run(a, b, op, cut, out, both, 0, 0);
}

/* Moves c (which has a current block) past block key hi. */
static void seek_past(sp_cur *c, uint32_t hi) {
  if (hi >= SP_LAST_KEY)
    sp__cur_finish(c);
  else
    sp_cur_seek(c, hi + 1);
}

/* The merge loop's drain of a kept view c whose window is used up: its blocks
 * below key go to out, unless recent drains showed the sides interleave
 * (then the window is refilled as usual, drain_wait times). */
static int drain_below(sp_build *out, sp_cur *c, uint32_t key) {
  if (c->drain_wait) {
    c->drain_wait--;
    return 0;
  }
  return sp__cur_drain(out, c, key - 1);
}

/* Makes both cursors have a current block; false when either set is done. A
 * side whose blocks the operation drops (unless they meet the other side's)
 * is not read on but sought to the other side's key: after a match, the next
 * match may be far away. */
SP_INLINE bool next_pair(sp_cur *a, sp_cur *b, const bool keep_a, const bool keep_b) {
  if (a->i == a->n) {
    if (keep_a || b->i == b->n) {
      if (!sp__cur_refill(a)) return false;
    } else {
      sp__cur_seek_far(a, sp_cur_lo(b));
      if (a->i == a->n) return false;
    }
  }
  if (b->i == b->n) {
    if (keep_b) {
      if (!sp__cur_refill(b)) return false;
    } else {
      sp__cur_seek_far(b, sp_cur_lo(a));
      if (b->i == b->n) return false;
    }
  }
  return true;
}

/* out = a op b; with cut (op is OP_ANDNOT), also both = a AND b. */
SP_INLINE int merge(sp_cur *a, sp_cur *b, const int op, const int cut, sp_build *out, sp_build *both) {
  const bool keep_a = op != OP_AND, keep_b = op == OP_OR || op == OP_XOR;
  int rc;
  for (;;) {
    /* A kept view whose window is used up: its blocks below the other side's
     * current one go to the output as they are decoded (no copy through the
     * window). */
    if (keep_b && b->view && b->i == b->n && a->i < a->n && sp_cur_lo(a) > 0 &&
        (rc = drain_below(out, b, sp_cur_lo(a))))
      return rc;
    if (keep_a && a->view && a->i == a->n && b->i < b->n && sp_cur_lo(b) > 0 &&
        (rc = drain_below(out, a, sp_cur_lo(b))))
      return rc;
    if (!next_pair(a, b, keep_a, keep_b)) break;
    int general = merge_bitmaps(a, b, op, cut, out, both);
    if ((rc = sp_build_room(out, 2)) || (cut && (rc = sp_build_room(both, 1)))) return rc;
    if (!general) continue; /* the end of a window, or room made */
    /* One step of the general case (a full span, or a seek), on windows of blocks. */
    sp__cur_plain(a);
    sp__cur_plain(b);
    if (a->i == a->n || b->i == b->n) continue;
    const sp_blk *A = &a->b[a->i], *B = &b->b[b->i];
    if (!(A->nfull | B->nfull)) { /* two bitmap blocks (never partly consumed) */
      if (A->key == B->key) {
        emit_bits(out->b, &out->n, &out->card, A->key, combine(op, A->w, B->w));
        if (cut) emit_bits(both->b, &both->n, &both->card, A->key, combine(OP_AND, A->w, B->w));
        a->i++;
        b->i++;
      } else if (A->key < B->key) {
        if (keep_a) {
          sp_build_copy_r(out, A, A->key);
          a->i++;
        } else {
          sp_cur_seek(a, B->key);
        }
      } else {
        if (keep_b) {
          sp_build_copy_r(out, B, B->key);
          b->i++;
        } else {
          sp_cur_seek(b, A->key);
        }
      }
      continue;
    }
    /* A full span on one side or both. */
    uint32_t alo = sp_cur_lo(a), blo = sp_cur_lo(b), ahi = sp_blk_last(A), bhi = sp_blk_last(B);
    if (ahi < blo) {
      if (keep_a) {
        sp_build_copy_r(out, A, alo);
        sp_cur_next(a);
      } else {
        sp_cur_seek(a, blo);
      }
      continue;
    }
    if (bhi < alo) {
      if (keep_b) {
        sp_build_copy_r(out, B, blo);
        sp_cur_next(b);
      } else {
        sp_cur_seek(b, alo);
      }
      continue;
    }
    /* They overlap. A bitmap is one block, so whichever starts first is a full span. */
    if (alo < blo) {
      if (keep_a) sp_build_full_r(out, alo, blo - 1);
      a->skip = blo - A->key;
      alo = blo;
    } else if (blo < alo) {
      if (keep_b) sp_build_full_r(out, blo, alo - 1);
      b->skip = alo - B->key;
    }
    uint32_t k = alo;
    if (A->nfull && B->nfull) {
      uint32_t hi = ahi < bhi ? ahi : bhi;
      if (op == OP_OR || op == OP_AND) sp_build_full_r(out, k, hi);
      if (cut) sp_build_full_r(both, k, hi);
      sp_cur_consume(a, hi);
      sp_cur_consume(b, hi);
      continue;
    }
    /* One full span, over the other side's bitmap at k: whole stretches are
     * decided without looking at the other side's blocks one by one. */
    if (op == OP_OR) { /* the span absorbs what the other side has under it */
      if (A->nfull) {
        sp_build_full_r(out, k, ahi);
        sp_cur_next(a);
        seek_past(b, ahi);
      } else {
        sp_build_full_r(out, k, bhi);
        sp_cur_next(b);
        seek_past(a, bhi);
      }
      continue;
    }
    if (op == OP_AND) { /* the other side's blocks under the span, as they are */
      if (A->nfull) {
        if ((rc = sp__cur_drain(out, b, ahi))) return rc;
        sp_cur_next(a);
      } else {
        if ((rc = sp__cur_drain(out, a, bhi))) return rc;
        sp_cur_next(b);
      }
      continue;
    }
    if (op == OP_ANDNOT && B->nfull) { /* a's blocks under b's span go (into both, for cut) */
      if (cut) {
        if ((rc = sp__cur_drain(both, a, bhi))) return rc;
      } else {
        seek_past(a, bhi);
      }
      sp_cur_next(b);
      continue;
    }
    const uint64_t *aw = A->nfull ? ONES : A->w, *bw = B->nfull ? ONES : B->w;
    emit_bits(out->b, &out->n, &out->card, k, combine(op, aw, bw));
    if (cut) emit_bits(both->b, &both->n, &both->card, k, combine(OP_AND, aw, bw));
    sp_cur_consume(a, k);
    sp_cur_consume(b, k);
  }
  a->raw_ok = b->raw_ok = 0; /* the rest is copied as blocks */
  sp__cur_plain(a);
  sp__cur_plain(b);
  if (keep_a && (rc = sp__build_rest(out, a))) return rc;
  if (keep_b && (rc = sp__build_rest(out, b))) return rc;
  return 0;
}

static int merge_or(sp_cur *a, sp_cur *b, sp_build *o) { return merge(a, b, OP_OR, 0, o, NULL); }
static int merge_and(sp_cur *a, sp_cur *b, sp_build *o) { return merge(a, b, OP_AND, 0, o, NULL); }
static int merge_andnot(sp_cur *a, sp_cur *b, sp_build *o) { return merge(a, b, OP_ANDNOT, 0, o, NULL); }
static int merge_xor(sp_cur *a, sp_cur *b, sp_build *o) { return merge(a, b, OP_XOR, 0, o, NULL); }
static int merge_cut(sp_cur *a, sp_cur *b, sp_build *o, sp_build *both) {
  return merge(a, b, OP_ANDNOT, 1, o, both);
}

static size_t min_size(size_t x, size_t y) { return x < y ? x : y; }

static int binop(splinter_ref_t ra, splinter_ref_t rb, int op, splinter_t *out) {
  if (!sp_ref_ok(ra) || !sp_ref_ok(rb) || !out) return quire__err(QUIRE_EINVAL, "splinter: bad operand");
  operand a, b;
  operand_init(&a, ra);
  operand_init(&b, rb);
  a.cur.raw_ok = b.cur.raw_ok = 1;
  size_t ea = sp__cur_estimate(&a.cur), eb = sp__cur_estimate(&b.cur);
  size_t est = op == OP_AND ? min_size(ea, eb) : op == OP_ANDNOT ? ea : ea + eb;
  sp_build o;
  sp__build_start(&o, out);
  int rc = sp_build_room(&o, est + 2);
  if (!rc) {
    switch (op) {
    case OP_OR: rc = merge_or(&a.cur, &b.cur, &o); break;
    case OP_AND: rc = merge_and(&a.cur, &b.cur, &o); break;
    case OP_ANDNOT: rc = merge_andnot(&a.cur, &b.cur, &o); break;
    default: rc = merge_xor(&a.cur, &b.cur, &o); break;
    }
  }
  if (rc) {
    sp__build_abort(&o, out);
    return rc;
  }
  sp__build_commit(&o, out);
  return 0;
}

int splinter_union(splinter_ref_t a, splinter_ref_t b, splinter_t *out) { return binop(a, b, OP_OR, out); }
int splinter_intersection(splinter_ref_t a, splinter_ref_t b, splinter_t *out) {
  return binop(a, b, OP_AND, out);
}
int splinter_difference(splinter_ref_t a, splinter_ref_t b, splinter_t *out) {
  return binop(a, b, OP_ANDNOT, out);
}
int splinter_symmetric_difference(splinter_ref_t a, splinter_ref_t b, splinter_t *out) {
  return binop(a, b, OP_XOR, out);
}

int splinter_cut(splinter_t *a, splinter_ref_t b, splinter_t *removed) {
  if (!a || !sp_ref_ok(b) || removed == a) return quire__err(QUIRE_EINVAL, "splinter_cut: bad operand");
  sp_cur ca;
  operand ob;
  sp__cur_blocks(&ca, a->b, a->n);
  operand_init(&ob, b);
  ob.cur.raw_ok = 1;
  sp_build rest, both = {0};
  sp__build_start(&rest, a);
  if (removed) sp__build_start(&both, removed);
  int rc = sp_build_room(&rest, a->n + 2);
  if (!rc && removed) rc = sp_build_room(&both, min_size(a->n, sp__cur_estimate(&ob.cur)) + 2);
  if (!rc) rc = removed ? merge_cut(&ca, &ob.cur, &rest, &both) : merge_andnot(&ca, &ob.cur, &rest);
  if (rc) {
    sp__build_abort(&rest, a);
    if (removed) sp__build_abort(&both, removed);
    return rc;
  }
  sp__build_commit(&rest, a);
  if (removed) sp__build_commit(&both, removed);
  return 0;
}

/* The blocks of [lo, hi]: a partial head, a full span, a partial tail (each if any). */
static size_t range_blocks(uint32_t lo, uint32_t hi, sp_blk r[3]) {
  size_t n = 0;
  for (uint64_t c = lo; c <= hi;) {
    sp_blk *b = &r[n++];
    if ((c & 255) == 0 && hi >= c + 255) {
      uint64_t last = (((uint64_t)hi + 1) >> 8) - 1;
      b->key = (uint32_t)(c >> 8);
      b->nfull = (uint32_t)(last - (c >> 8) + 1);
      memcpy(b->w, ONES, sizeof ONES);
      c = (last + 1) << 8;
      continue;
    }
    uint64_t bend = c | 255, upto = hi < bend ? hi : bend;
    b->key = (uint32_t)(c >> 8);
    b->nfull = 0;
    memset(b->w, 0, sizeof b->w);
    for (uint64_t v = c & 255; v <= (upto & 255); v++) b->w[v >> 6] |= 1ull << (v & 63);
    c = upto + 1;
  }
  return n;
}

int sp__op_range(splinter_t *s, uint32_t lo, uint32_t hi, int remove) {
  sp_blk r[3];
  sp_cur ca, cb;
  sp__cur_blocks(&ca, s->b, s->n);
  sp__cur_blocks(&cb, r, range_blocks(lo, hi, r));
  sp_build o;
  sp__build_start(&o, s);
  int rc = sp_build_room(&o, s->n + 4);
  if (!rc) rc = remove ? merge_andnot(&ca, &cb, &o) : merge_or(&ca, &cb, &o);
  if (rc) {
    sp__build_abort(&o, s);
    return rc;
  }
  sp__build_commit(&o, s);
  return 0;
}

/* ---- predicates -------------------------------------------------------------- */

/* mode 0: is a ⊆ b; mode 1: do a and b intersect. The windows are on the
 * stack: nothing is allocated and nothing can fail. */
static bool predicate(splinter_ref_t ra, splinter_ref_t rb, int mode) {
  if (!sp_ref_ok(ra) || !sp_ref_ok(rb)) return false;
  operand oa, ob;
  operand_init(&oa, ra);
  operand_init(&ob, rb);
  sp_cur *a = &oa.cur, *b = &ob.cur;
  while (next_pair(a, b, mode == 0, false)) {
    const sp_blk *A = &a->b[a->i], *B = &b->b[b->i];
    uint32_t alo = sp_cur_lo(a), blo = sp_cur_lo(b), ahi = sp_blk_last(A), bhi = sp_blk_last(B);
    if (ahi < blo) {
      if (mode == 0) return false;
      sp_cur_seek(a, blo);
      continue;
    }
    if (bhi < alo) {
      sp_cur_seek(b, alo);
      continue;
    }
    if (alo < blo) {
      if (mode == 0) return false;
      a->skip = blo - A->key;
      alo = blo;
    } else if (blo < alo) {
      b->skip = alo - B->key;
    }
    if (A->nfull && B->nfull) {
      if (mode == 1) return true;
      uint32_t hi = ahi < bhi ? ahi : bhi;
      sp_cur_consume(a, hi);
      sp_cur_consume(b, hi);
      continue;
    }
    const uint64_t *aw = A->nfull ? ONES : A->w, *bw = B->nfull ? ONES : B->w;
    uint64_t acc = 0;
    for (int i = 0; i < 4; i++) acc |= mode == 0 ? (aw[i] & ~bw[i]) : (aw[i] & bw[i]);
    if (acc) return mode == 1;
    sp_cur_consume(a, alo);
    sp_cur_consume(b, alo);
  }
  return mode == 0 ? !sp_cur_ok(a) : false;
}

bool splinter_is_subset(splinter_ref_t a, splinter_ref_t b) { return predicate(a, b, 0); }
bool splinter_intersects(splinter_ref_t a, splinter_ref_t b) { return predicate(a, b, 1); }
bool splinter_equal(splinter_ref_t a, splinter_ref_t b) {
  if (!sp_ref_ok(a) || !sp_ref_ok(b)) return false;
  if (splinter_ref_cardinality(a) != splinter_ref_cardinality(b)) return false;
  return predicate(a, b, 0);
}
