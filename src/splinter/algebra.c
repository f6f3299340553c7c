/*
 * splinter/algebra.c — set algebra, cut and the set predicates, written once
 * over block sources (source.c), so every pairing of owned and view operands
 * runs the same code. Results are built into a fresh block array and swapped
 * into the output at the end, which makes in-place use (out == a) safe and
 * leaves the output untouched on failure.
 */
#include "splinter/splinter_int.h"

enum { OP_OR, OP_AND, OP_ANDNOT, OP_XOR };

static const uint64_t ONES[4] = {~0ull, ~0ull, ~0ull, ~0ull};

static inline bool keep_a(int op) { return op != OP_AND; }
static inline bool keep_b(int op) { return op == OP_OR || op == OP_XOR; }

/* Emits the a-only or b-only item it (clipped to [it->lo, hi]). */
static int emit_part(sp_build *o, const sp_item *it, uint32_t hi) {
  if (it->full) return sp__build_full(o, it->lo, hi);
  return sp__build_bits(o, it->lo, it->w);
}

/* Drops the first blocks of a source's current item up to and including key. */
static void consume(sp_src *s, uint32_t key) {
  if (s->cur.full && s->cur.hi > key)
    s->cur.lo = key + 1;
  else
    sp__src_next(s);
}

/* out = a op b; with both (cut), also both = a AND b. */
static int merge(sp_src *a, sp_src *b, int op, sp_build *out, sp_build *both) {
  int rc = 0;
  while (a->has && b->has) {
    sp_item *A = &a->cur, *B = &b->cur;
    if (A->hi < B->lo) {
      if (keep_a(op)) {
        if ((rc = emit_part(out, A, A->hi))) return rc;
        sp__src_next(a);
      } else {
        sp__src_seek(a, B->lo);
      }
      continue;
    }
    if (B->hi < A->lo) {
      if (keep_b(op)) {
        if ((rc = emit_part(out, B, B->hi))) return rc;
        sp__src_next(b);
      } else {
        sp__src_seek(b, A->lo);
      }
      continue;
    }
    /* Overlap. A bitmap item is one block, so whichever starts first is a full span. */
    if (A->lo < B->lo) {
      if (keep_a(op) && (rc = sp__build_full(out, A->lo, B->lo - 1))) return rc;
      A->lo = B->lo;
    } else if (B->lo < A->lo) {
      if (keep_b(op) && (rc = sp__build_full(out, B->lo, A->lo - 1))) return rc;
      B->lo = A->lo;
    }
    uint32_t k = A->lo;
    if (A->full && B->full) {
      uint32_t hi = A->hi < B->hi ? A->hi : B->hi;
      if ((op == OP_OR || op == OP_AND) && (rc = sp__build_full(out, k, hi))) return rc;
      if (both && (rc = sp__build_full(both, k, hi))) return rc;
      consume(a, hi);
      consume(b, hi);
      continue;
    }
    const uint64_t *aw = A->full ? ONES : A->w, *bw = B->full ? ONES : B->w;
    uint64_t r[4];
    switch (op) {
    case OP_OR:
      for (int i = 0; i < 4; i++) r[i] = aw[i] | bw[i];
      break;
    case OP_AND:
      for (int i = 0; i < 4; i++) r[i] = aw[i] & bw[i];
      break;
    case OP_ANDNOT:
      for (int i = 0; i < 4; i++) r[i] = aw[i] & ~bw[i];
      break;
    default:
      for (int i = 0; i < 4; i++) r[i] = aw[i] ^ bw[i];
      break;
    }
    if ((rc = sp__build_bits(out, k, r))) return rc;
    if (both) {
      for (int i = 0; i < 4; i++) r[i] = aw[i] & bw[i];
      if ((rc = sp__build_bits(both, k, r))) return rc;
    }
    consume(a, k);
    consume(b, k);
  }
  if (keep_a(op))
    for (; a->has; sp__src_next(a))
      if ((rc = emit_part(out, &a->cur, a->cur.hi))) return rc;
  if (keep_b(op))
    for (; b->has; sp__src_next(b))
      if ((rc = emit_part(out, &b->cur, b->cur.hi))) return rc;
  return 0;
}

static int binop(splinter_ref_t a, splinter_ref_t b, int op, splinter_t *out) {
  if (!sp_ref_ok(a) || !sp_ref_ok(b) || !out) return quire__err(QUIRE_EINVAL, "splinter: bad operand");
  sp_src sa, sb;
  sp__src_init(&sa, a);
  sp__src_init(&sb, b);
  sp_build o = {0};
  int rc = merge(&sa, &sb, op, &o, NULL);
  if (rc) {
    sp__build_free(&o);
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
  sp_src sa, sb;
  sp__src_init(&sa, splinter_ref_owned(a));
  sp__src_init(&sb, b);
  sp_build rest = {0}, both = {0};
  int rc = merge(&sa, &sb, OP_ANDNOT, &rest, removed ? &both : NULL);
  if (rc) {
    sp__build_free(&rest);
    sp__build_free(&both);
    return rc;
  }
  sp__build_commit(&rest, a);
  if (removed) sp__build_commit(&both, removed);
  return 0;
}

int sp__op_range(splinter_t *s, uint32_t lo, uint32_t hi, int remove) {
  sp_src sa, sb;
  sp__src_init(&sa, splinter_ref_owned(s));
  sp__src_init_range(&sb, lo, hi);
  sp_build o = {0};
  int rc = merge(&sa, &sb, remove ? OP_ANDNOT : OP_OR, &o, NULL);
  if (rc) {
    sp__build_free(&o);
    return rc;
  }
  sp__build_commit(&o, s);
  return 0;
}

/* ---- predicates -------------------------------------------------------------- */

/* mode 0: is a ⊆ b; mode 1: do a and b intersect. */
static bool predicate(splinter_ref_t ra, splinter_ref_t rb, int mode) {
  if (!sp_ref_ok(ra) || !sp_ref_ok(rb)) return false;
  sp_src a, b;
  sp__src_init(&a, ra);
  sp__src_init(&b, rb);
  while (a.has && b.has) {
    sp_item *A = &a.cur, *B = &b.cur;
    if (A->hi < B->lo) {
      if (mode == 0) return false;
      sp__src_seek(&a, B->lo);
      continue;
    }
    if (B->hi < A->lo) {
      sp__src_seek(&b, A->lo);
      continue;
    }
    if (A->lo < B->lo) {
      if (mode == 0) return false;
      A->lo = B->lo;
    } else if (B->lo < A->lo) {
      B->lo = A->lo;
    }
    uint32_t k = A->lo;
    if (A->full && B->full) {
      if (mode == 1) return true;
      uint32_t hi = A->hi < B->hi ? A->hi : B->hi;
      consume(&a, hi);
      consume(&b, hi);
      continue;
    }
    const uint64_t *aw = A->full ? ONES : A->w, *bw = B->full ? ONES : B->w;
    uint64_t acc = 0;
    for (int i = 0; i < 4; i++) acc |= mode == 0 ? (aw[i] & ~bw[i]) : (aw[i] & bw[i]);
    if (acc) return mode == 1;
    consume(&a, k);
    consume(&b, k);
  }
  return mode == 0 ? !a.has : false;
}

bool splinter_is_subset(splinter_ref_t a, splinter_ref_t b) { return predicate(a, b, 0); }
bool splinter_intersects(splinter_ref_t a, splinter_ref_t b) { return predicate(a, b, 1); }
bool splinter_equal(splinter_ref_t a, splinter_ref_t b) {
  if (!sp_ref_ok(a) || !sp_ref_ok(b)) return false;
  if (splinter_ref_cardinality(a) != splinter_ref_cardinality(b)) return false;
  return predicate(a, b, 0);
}
