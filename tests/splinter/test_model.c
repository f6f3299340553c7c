/*
 * Model-based property test: long random sequences of operations applied to
 * a splinter and to a sorted-array model, compared after every step; every few
 * steps the set is serialized, opened as a view and queried, and every algebra
 * operation is checked in every pairing of forms (owned/view) against the
 * model. Values concentrate on the trie's boundaries (0, 255, 256, 65535,
 * 65536, 2^24, 2^32-1) and on dense runs and full blocks.
 */
#include "model.h"
#include "util/err.h"

#define QUIRE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t centers[6];

static uint32_t gen_value(void) {
  static const uint32_t edges[] = {0, 255, 256, 65535, 65536, 16777215, 16777216, UINT32_MAX};
  switch (test_rand_below(6)) {
  case 0: {
    uint32_t e = edges[test_rand_below(QUIRE_ARRAY_LEN(edges))];
    int64_t d = (int64_t)test_rand_below(9) - 4;
    int64_t v = (int64_t)e + d;
    return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
  }
  case 1: return (uint32_t)test_rand();
  case 2: return (uint32_t)test_rand_below(4096);
  default: {
    uint32_t c = centers[test_rand_below(QUIRE_ARRAY_LEN(centers))];
    uint32_t off = (uint32_t)test_rand_below(test_rand_below(2) ? 600 : 70000);
    return c > UINT32_MAX - off ? UINT32_MAX : c + off;
  }
  }
}

static void gen_range(uint32_t *lo, uint32_t *hi) {
  uint32_t a = gen_value();
  uint64_t len;
  switch (test_rand_below(5)) {
  case 0: len = test_rand_below(8); break;
  case 1: len = 256 * (1 + test_rand_below(4)) - 1, a &= ~255u; break; /* full blocks */
  case 2: len = test_rand_below(3000); break;
  case 3: len = 65536 - 1, a &= ~65535u; break; /* a whole level-2 node */
  default: len = test_rand_below(70000); break;
  }
  *lo = a;
  *hi = (uint64_t)a + len > UINT32_MAX ? UINT32_MAX : a + (uint32_t)len;
}

/* Serialize s, open a view, compare; also re-encode the view and check the bytes are identical. */
static void check_roundtrip(const model *m, splinter_t *s, uint8_t **bytes_out, size_t *len_out,
                            splinter_view_t *v) {
  size_t size, len;
  CHECK_OK(splinter_serialized_size(s, &size));
  uint8_t *bytes;
  CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
  CHECK(len == size);
  CHECK_OK(splinter_view_open(bytes, len, v));
  model_check(m, splinter_ref_view(v));
  CHECK(splinter_equal(splinter_ref_owned(s), splinter_ref_view(v)));
  splinter_t *copy;
  CHECK_OK(splinter_from_ref(splinter_ref_view(v), &copy));
  uint8_t *again;
  size_t len2;
  CHECK_OK(splinter_serialize_alloc(copy, &again, &len2));
  CHECK(len2 == len && memcmp(again, bytes, len) == 0);
  splinter_bytes_free(again);
  splinter_free(copy);
  *bytes_out = bytes;
  *len_out = len;
}

/* n random values with density about 1/gap from lo: blocks as arrays, or
 * (around 1/10) as the bitmaps the encoder favours. */
static void insert_scattered(model *m, splinter_t *s, uint32_t lo, size_t n, uint32_t gap) {
  uint64_t x = lo;
  for (size_t i = 0; i < n && x <= UINT32_MAX; i++) {
    CHECK(splinter_insert(s, (uint32_t)x) >= 0);
    model_insert_range(m, (uint32_t)x, (uint32_t)x);
    x += 1 + test_rand_below(2 * gap - 1);
  }
}

static void random_set(model *m, splinter_t *s) {
  splinter_clear(s);
  m->n = 0;
  int ops = (int)test_rand_below(40);
  for (int i = 0; i < ops; i++) {
    if (test_rand_below(8) == 0) {
      static const uint32_t gaps[] = {2, 4, 9, 10, 11, 20, 60, 300};
      insert_scattered(m, s, gen_value(), 200 + test_rand_below(3000), gaps[test_rand_below(8)]);
    } else if (test_rand_below(3) == 0) {
      uint32_t lo, hi;
      gen_range(&lo, &hi);
      CHECK_OK(splinter_insert_range(s, lo, hi));
      model_insert_range(m, lo, hi);
    } else {
      uint32_t x = gen_value();
      CHECK(splinter_insert(s, x) >= 0);
      model_insert_range(m, x, x);
    }
  }
}

static void check_algebra(const model *ma, splinter_t *a, const splinter_view_t *va, const model *mb,
                          splinter_t *b, const splinter_view_t *vb) {
  splinter_ref_t as[2] = {splinter_ref_owned(a), splinter_ref_view(va)};
  splinter_ref_t bs[2] = {splinter_ref_owned(b), splinter_ref_view(vb)};
  model want = {0};
  splinter_t *out;
  CHECK_OK(splinter_new(&out));
  for (int pa = 0; pa < 2; pa++)
    for (int pb = 0; pb < 2; pb++) {
      for (int op = 0; op < 4; op++) {
        model_op(ma, mb, op, &want);
        int rc = op == 0   ? splinter_union(as[pa], bs[pb], out)
                 : op == 1 ? splinter_intersection(as[pa], bs[pb], out)
                 : op == 2 ? splinter_difference(as[pa], bs[pb], out)
                           : splinter_symmetric_difference(as[pa], bs[pb], out);
        CHECK_OK(rc);
        model_check(&want, splinter_ref_owned(out));
        if (op == 1) {
          CHECK(splinter_intersects(as[pa], bs[pb]) == (want.n > 0));
        }
        if (op == 2) {
          CHECK(splinter_is_subset(as[pa], bs[pb]) == (want.n == 0));
        }
        if (op == 3) {
          CHECK(splinter_equal(as[pa], bs[pb]) == (want.n == 0));
        }
      }
      /* cut: a copy of a (owned) cut by b in either form, with and without the removed part */
      splinter_t *cut, *removed;
      CHECK_OK(splinter_from_ref(as[pa], &cut));
      CHECK_OK(splinter_new(&removed));
      CHECK_OK(splinter_insert(removed, 12345) >= 0 ? 0 : -1); /* old contents must be replaced */
      CHECK_OK(splinter_cut(cut, bs[pb], removed));
      model_op(ma, mb, 2, &want);
      model_check(&want, splinter_ref_owned(cut));
      model_op(ma, mb, 1, &want);
      model_check(&want, splinter_ref_owned(removed));
      CHECK_OK(splinter_assign(cut, as[pa])); /* into a set with contents (and a spare array) */
      model_check(ma, splinter_ref_owned(cut));
      CHECK_OK(splinter_cut(cut, bs[pb], NULL));
      model_op(ma, mb, 2, &want);
      model_check(&want, splinter_ref_owned(cut));
      CHECK(!splinter_intersects(splinter_ref_owned(cut), bs[pb]));
      CHECK(splinter_is_subset(splinter_ref_owned(cut), as[pa]));
      splinter_free(cut);
      splinter_free(removed);
    }
  /* in place: out aliases an operand */
  splinter_t *acc;
  CHECK_OK(splinter_from_ref(as[0], &acc));
  CHECK_OK(splinter_union(splinter_ref_owned(acc), bs[1], acc));
  model_op(ma, mb, 0, &want);
  model_check(&want, splinter_ref_owned(acc));
  CHECK_OK(splinter_intersection(bs[0], splinter_ref_owned(acc), acc));
  model_check(mb, splinter_ref_owned(acc));
  /* out aliasing the right operand, whose blocks the operation drops or keeps */
  CHECK_OK(splinter_assign(acc, bs[1]));
  CHECK_OK(splinter_difference(as[1], splinter_ref_owned(acc), acc));
  model_op(ma, mb, 2, &want);
  model_check(&want, splinter_ref_owned(acc));
  CHECK_OK(splinter_assign(acc, bs[1]));
  CHECK_OK(splinter_symmetric_difference(as[0], splinter_ref_owned(acc), acc));
  model_op(ma, mb, 3, &want);
  model_check(&want, splinter_ref_owned(acc));
  splinter_free(acc);
  splinter_free(out);
  model_free(&want);
}

static void run(int steps) {
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(centers); i++) centers[i] = (uint32_t)test_rand();
  centers[0] = 0;
  centers[1] = 65536 - 300;
  model m = {0}, mb = {0};
  splinter_t *s, *b;
  CHECK_OK(splinter_new(&s));
  CHECK_OK(splinter_new(&b));
  for (int step = 0; step < steps; step++) {
    uint32_t x = gen_value(), lo, hi;
    int op = (int)test_rand_below(100);
    if (m.n > 60000) op = 99; /* keep the model small */
    if (op < 35) {
      CHECK(splinter_insert(s, x) == model_insert_range(&m, x, x));
    } else if (op < 60) {
      if (m.n && test_rand_below(2)) x = m.v[test_rand_below(m.n)];
      CHECK(splinter_remove(s, x) == model_remove_range(&m, x, x));
    } else if (op < 75) {
      gen_range(&lo, &hi);
      CHECK_OK(splinter_insert_range(s, lo, hi));
      model_insert_range(&m, lo, hi);
    } else if (op < 92) {
      gen_range(&lo, &hi);
      if (m.n && test_rand_below(2))
        lo = m.v[test_rand_below(m.n)], hi = lo + (uint32_t)test_rand_below(1000);
      if (hi < lo) hi = UINT32_MAX;
      CHECK_OK(splinter_remove_range(s, lo, hi));
      model_remove_range(&m, lo, hi);
    } else if (op < 98) {
      uint32_t vals[100];
      size_t n = test_rand_below(100);
      for (size_t i = 0; i < n; i++) vals[i] = gen_value();
      CHECK_OK(splinter_insert_many(s, vals, n));
      for (size_t i = 0; i < n; i++) model_insert_range(&m, vals[i], vals[i]);
    } else {
      splinter_clear(s);
      m.n = 0;
    }
    CHECK(splinter_cardinality(s) == m.n);
    CHECK(splinter_contains(s, x) == (model_has(&m, x) != 0));
    if (step % 8 == 0) model_check(&m, splinter_ref_owned(s));
    if (step % 16 == 0) {
      splinter_view_t va, vb;
      uint8_t *ba, *bb;
      size_t la, lb;
      check_roundtrip(&m, s, &ba, &la, &va);
      if (step % 32 == 0) random_set(&mb, b);
      check_roundtrip(&mb, b, &bb, &lb, &vb);
      check_algebra(&m, s, &va, &mb, b, &vb);
      check_algebra(&mb, b, &vb, &m, s, &va);
      splinter_bytes_free(ba);
      splinter_bytes_free(bb);
    }
  }
  splinter_free(s);
  splinter_free(b);
  model_free(&m);
  model_free(&mb);
}

/* Algebra on two sets and their views, both ways round; then frees them. */
static void check_pair_and_free(model m[2], splinter_t *s[2], splinter_view_t v[2], uint8_t *bytes[2]) {
  check_algebra(&m[0], s[0], &v[0], &m[1], s[1], &v[1]);
  check_algebra(&m[1], s[1], &v[1], &m[0], s[0], &v[0]);
  for (int k = 0; k < 2; k++) {
    splinter_bytes_free(bytes[k]);
    splinter_free(s[k]);
    model_free(&m[k]);
  }
}

/* SQLite-like page sets in small volumes (one transaction's pages, unions of
 * a few or many): views of a root array, or of one-child trees above a
 * level-2 tree of short block arrays, the shape whose contains and open
 * take the vectorized paths (view.c). Every value of the volume is probed on
 * the view against the model, and view algebra is checked against owned. */
static void page_sets(void) {
  static const uint32_t volumes[] = {300, 8192, 70000};
  for (int round = 0; round < 24; round++) {
    uint32_t pages = volumes[round % 3];
    model m[2] = {{0}, {0}};
    splinter_t *s[2];
    splinter_view_t v[2];
    uint8_t *bytes[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
      CHECK_OK(splinter_new(&s[k]));
      uint32_t txns = 1 + (uint32_t)test_rand_below(round < 12 ? 3 : 200);
      for (uint32_t t = 0; t < txns; t++) {
        uint32_t run = 1 + (uint32_t)test_rand_below(8), leaf = 1 + (uint32_t)test_rand_below(pages);
        uint32_t picks[8] = {1 + (uint32_t)test_rand_below(8), 1 + (uint32_t)test_rand_below(pages / 64 + 1)};
        for (int i = 2; i < 8; i++) picks[i] = 1 + (uint32_t)test_rand_below(pages);
        for (int i = 0; i < 8; i++) {
          CHECK(splinter_insert(s[k], picks[i]) >= 0);
          model_insert_range(&m[k], picks[i], picks[i]);
        }
        uint32_t hi = leaf + run - 1 < pages ? leaf + run - 1 : pages;
        CHECK_OK(splinter_insert_range(s[k], leaf, hi));
        model_insert_range(&m[k], leaf, hi);
      }
      check_roundtrip(&m[k], s[k], &bytes[k], &len[k], &v[k]);
      for (uint32_t x = 0; x <= pages + 300; x++)
        CHECKF(splinter_view_contains(&v[k], x) == (model_has(&m[k], x) != 0), "page set contains(%u)", x);
      for (int i = 0; i < 2000; i++) { /* values whose top bytes differ (the entry prefix, view.c) */
        uint32_t x = (uint32_t)test_rand_below(pages + 1) | (uint32_t)1 << (8 + test_rand_below(24));
        if (i & 1) x = (uint32_t)test_rand();
        CHECKF(splinter_view_contains(&v[k], x) == (model_has(&m[k], x) != 0), "page set contains(%u)", x);
      }
    }
    check_pair_and_free(m, s, v, bytes);
  }
}

/* A value of one block whose bits sit on the edges of the block's four
 * 64-bit words (0, 63, 64, 127, 128, 191, 192, 255) more often than not. */
static unsigned block_edge_value(void) {
  static const unsigned edges[] = {0, 1, 62, 63, 64, 65, 126, 127, 128, 129, 190, 191, 192, 193, 254, 255};
  return test_rand_below(3) ? edges[test_rand_below(QUIRE_ARRAY_LEN(edges))] : (unsigned)test_rand_below(256);
}

/* Blocks of every kind a view decodes word by word: a level-2 tree (and
 * neighbouring ones) whose single-block children are arrays (a few values,
 * one-hot per value), runs (a few ranges whose ends fall on the word edges,
 * from 0 and up to 255) or bitmaps, next to full blocks; views of these
 * are checked against the model, copied, and combined in every pairing. */
static void block_shapes(void) {
  for (int round = 0; round < 40; round++) {
    model m[2] = {{0}, {0}};
    splinter_t *s[2];
    splinter_view_t v[2];
    uint8_t *bytes[2];
    size_t len[2];
    uint32_t top = round % 4 == 3 ? (uint32_t)test_rand() & ~0xFFFFu : 0;
    for (int k = 0; k < 2; k++) {
      CHECK_OK(splinter_new(&s[k]));
      uint32_t nblocks = 1 + (uint32_t)test_rand_below(round < 20 ? 40 : 600);
      for (uint32_t i = 0; i < nblocks; i++) {
        uint32_t key = (uint32_t)test_rand_below(round & 1 ? 256 : 1024), base = top + key * 256;
        if (base < top) continue; /* past 2^32 */
        switch (test_rand_below(4)) {
        case 0: /* array: up to 24 values */
        case 1: {
          uint32_t n = 1 + (uint32_t)test_rand_below(test_rand_below(2) ? 4 : 24);
          for (uint32_t j = 0; j < n; j++) {
            uint32_t x = base + block_edge_value();
            CHECK(splinter_insert(s[k], x) >= 0);
            model_insert_range(&m[k], x, x);
          }
          break;
        }
        case 2: { /* runs: a few ranges between edges */
          uint32_t r = 1 + (uint32_t)test_rand_below(6);
          for (uint32_t j = 0; j < r; j++) {
            unsigned a = block_edge_value(), b = block_edge_value();
            if (a > b) a ^= b, b ^= a, a ^= b;
            CHECK_OK(splinter_insert_range(s[k], base + a, base + b));
            model_insert_range(&m[k], base + a, base + b);
          }
          break;
        }
        default: /* dense: a bitmap, or now and then the whole block */
          if (test_rand_below(4) == 0) {
            CHECK_OK(splinter_insert_range(s[k], base, base + 255));
            model_insert_range(&m[k], base, base + 255);
            break;
          }
          for (unsigned x = 0; x < 256; x++)
            if (test_rand_below(2)) {
              CHECK(splinter_insert(s[k], base + x) >= 0);
              model_insert_range(&m[k], base + x, base + x);
            }
          break;
        }
      }
      check_roundtrip(&m[k], s[k], &bytes[k], &len[k], &v[k]);
    }
    check_pair_and_free(m, s, v, bytes);
  }
}

int main(void) {
  test_seed();
  page_sets();
  block_shapes();
  int rounds = test_long_mode() ? 40 : 2;
  for (int r = 0; r < rounds; r++) run(400);
  CHECK(quire__never_count() == 0); /* e.g. the encoder's fast node statistics matched the reference */
  return test_done("test_splinter_model");
}
