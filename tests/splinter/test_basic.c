/*
 * Splinter: behaviour of both forms on hand-picked sets, golden byte vectors
 * (an accidental format change fails here), the full set, and argument
 * errors.
 */
#include "model.h"
#include "util/alloc.h"
#include "util/checksum.h"
#include "util/endian.h"

#include <stdio.h>

static void hex(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static splinter_t *make(const char *spec) {
  /* "a b c-d ..." */
  splinter_t *s;
  CHECK_OK(splinter_new(&s));
  const char *p = spec;
  while (*p) {
    char *end;
    unsigned long lo = strtoul(p, &end, 10), hi = lo;
    if (*end == '-') hi = strtoul(end + 1, &end, 10);
    CHECK_OK(splinter_insert_range(s, (uint32_t)lo, (uint32_t)hi));
    p = end;
    while (*p == ' ') p++;
  }
  return s;
}

/* Golden vectors: the exact bytes docs/SPLINTER.md walks through. */
static void test_golden(void) {
  static const struct {
    const char *set, *bytes;
  } cases[] = {
      {"", "000001b571e865a8d13c2c5eb5"},
      {"1", "01020101b571e74cdc045f1762b8"},
      {"1-3", "0e040301b571c16657a8f28b2ea7"},
      {"0 255 256 65536", "000000ff0000000100000001120401b571e1a95cb758f88a82"},
      {"1-100000", "019f860143a0860121b57115681a9287e60123"},
      {"256-511", "0001ff0b000111b571e3aec795fe862856"},
      {"4294967295", "ffffffff1a0101b57180000a20774fb1dc"},
      {"0-4294967295", "010001b571d972ce99cc99ef69"},
      {"1 70000 140000 16777216", "0100000070110100e0220200000000011a0401b57130de42fe3f4a0765"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    splinter_t *s = make(cases[i].set);
    uint8_t *bytes;
    size_t len;
    CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
    char got[512];
    CHECK(len * 2 < sizeof got);
    hex(bytes, len, got);
    CHECKF(strcmp(got, cases[i].bytes) == 0, "set {%s}: got %s want %s", cases[i].set, got, cases[i].bytes);
    splinter_view_t v;
    CHECK_OK(splinter_view_open(bytes, len, &v));
    CHECK(splinter_equal(splinter_ref_owned(s), splinter_ref_view(&v)));
    splinter_bytes_free(bytes);
    splinter_free(s);
  }
}

static void test_odd_block(void) {
  /* the odd numbers 1..99: one block's bitmap under three single-child trees */
  splinter_t *s;
  CHECK_OK(splinter_new(&s));
  for (uint32_t x = 1; x < 100; x += 2) CHECK(splinter_insert(s, x) == 1);
  uint8_t buf[128];
  size_t len;
  CHECK_RC(splinter_serialize(s, buf, 10, &len), QUIRE_EINVAL);
  CHECK_OK(splinter_serialize(s, buf, sizeof buf, &len));
  char got[300];
  hex(buf, len, got);
  CHECK(strcmp(got, "aaaaaaaaaaaaaaaaaaaaaaaa0a043201b571cc4ea155c5258fd7") == 0);
  splinter_free(s);
}

static void test_full_set(void) {
  splinter_t *s;
  CHECK_OK(splinter_new(&s));
  CHECK_OK(splinter_insert_range(s, 0, UINT32_MAX));
  CHECK(splinter_cardinality(s) == (1ull << 32));
  CHECK(splinter_contains(s, 0) && splinter_contains(s, UINT32_MAX));
  CHECK(splinter_rank(s, UINT32_MAX) == (1ull << 32));
  uint32_t x;
  CHECK_OK(splinter_select(s, (1ull << 32) - 1, &x));
  CHECK(x == UINT32_MAX);
  uint8_t *bytes;
  size_t len;
  CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
  CHECK(len == SPLINTER_MIN_SIZE);
  splinter_view_t v;
  CHECK_OK(splinter_view_open(bytes, len, &v));
  CHECK(splinter_view_cardinality(&v) == (1ull << 32));
  CHECK(splinter_view_rank(&v, 1000) == 1001);
  CHECK_OK(splinter_view_select(&v, 77, &x));
  CHECK(x == 77);
  CHECK_OK(splinter_view_max(&v, &x));
  CHECK(x == UINT32_MAX);
  /* remove one value from the middle of the full span, and put it back */
  CHECK(splinter_remove(s, 1u << 31) == 1);
  CHECK(!splinter_contains(s, 1u << 31));
  CHECK(splinter_cardinality(s) == (1ull << 32) - 1);
  CHECK(splinter_rank(s, 1u << 31) == (1ull << 31));
  CHECK(splinter_insert(s, 1u << 31) == 1);
  CHECK(splinter_equal(splinter_ref_owned(s), splinter_ref_view(&v)));
  /* algebra with the full set */
  splinter_t *small = make("5 1000-2000 4294967295"), *out;
  CHECK_OK(splinter_new(&out));
  CHECK_OK(splinter_intersection(splinter_ref_view(&v), splinter_ref_owned(small), out));
  CHECK(splinter_equal(splinter_ref_owned(out), splinter_ref_owned(small)));
  CHECK_OK(splinter_difference(splinter_ref_view(&v), splinter_ref_owned(small), out));
  CHECK(splinter_cardinality(out) == (1ull << 32) - 1003);
  CHECK(splinter_is_subset(splinter_ref_owned(small), splinter_ref_view(&v)));
  CHECK(!splinter_is_subset(splinter_ref_view(&v), splinter_ref_owned(small)));
  CHECK_OK(splinter_cut(s, splinter_ref_owned(small), out));
  CHECK(splinter_equal(splinter_ref_owned(out), splinter_ref_owned(small)));
  CHECK(splinter_cardinality(s) == (1ull << 32) - 1003);
  CHECK_OK(splinter_remove_range(s, 0, UINT32_MAX));
  CHECK(splinter_is_empty(s));
  splinter_bytes_free(bytes);
  splinter_free(small);
  splinter_free(out);
  splinter_free(s);
}

static void test_args(void) {
  splinter_t *s;
  CHECK_OK(splinter_new(&s));
  CHECK_RC(splinter_insert_range(s, 5, 4), QUIRE_EINVAL);
  CHECK_RC(splinter_remove_range(s, 5, 4), QUIRE_EINVAL);
  uint32_t unsorted[] = {3, 2};
  splinter_t *t;
  CHECK_RC(splinter_from_sorted(unsorted, 2, &t), QUIRE_EINVAL);
  CHECK_RC(splinter_cut(s, splinter_ref_owned(s), s), QUIRE_EINVAL);
  splinter_ref_t bad = {NULL, NULL};
  CHECK_RC(splinter_union(bad, splinter_ref_owned(s), s), QUIRE_EINVAL);
  CHECK(!splinter_equal(bad, splinter_ref_owned(s)));
  uint32_t x;
  CHECK_RC(splinter_min(s, &x), QUIRE_ENOTFOUND);
  CHECK_RC(splinter_select(s, 0, &x), QUIRE_ENOTFOUND);
  CHECK(splinter_rank(s, 100) == 0);
  splinter_free(s);
  splinter_free(NULL);
}

/* The integrators' use: segment pages from ascending indexes, commit checks. */
static void test_usage(void) {
  uint32_t pages[1000];
  for (uint32_t i = 0; i < 1000; i++) pages[i] = 1 + i * 3;
  splinter_t *seg;
  CHECK_OK(splinter_from_sorted(pages, 1000, &seg));
  uint8_t *bytes;
  size_t len;
  CHECK_OK(splinter_serialize_alloc(seg, &bytes, &len));
  splinter_view_t v;
  CHECK_OK(splinter_view_open(bytes, len, &v));
  uint32_t mn, mx;
  CHECK_OK(splinter_view_min(&v, &mn));
  CHECK_OK(splinter_view_max(&v, &mx));
  CHECK(mn == 1 && mx == 2998);
  splinter_t *wanted = make("1-10 2990-3005"), *found;
  CHECK_OK(splinter_new(&found));
  CHECK_OK(splinter_cut(wanted, splinter_ref_view(&v), found));
  model m = {0};
  uint32_t want_found[] = {1, 4, 7, 10, 2992, 2995, 2998};
  for (size_t i = 0; i < 7; i++) model_insert_range(&m, want_found[i], want_found[i]);
  model_check(&m, splinter_ref_owned(found));
  CHECK(splinter_cardinality(wanted) == 10 + 16 - 7);
  CHECK(!splinter_intersects(splinter_ref_owned(wanted), splinter_ref_view(&v)));
  model_free(&m);
  splinter_free(found);
  splinter_free(wanted);
  splinter_bytes_free(bytes);
  splinter_free(seg);
}

/* Every allocation failure is a clean QUIRE_ENOMEM that leaves the outputs
 * unchanged, for every operation and pairing of forms. */
static void test_oom(void) {
  splinter_t *a = make("1-10 300 70000-70500 16777216 4000000000"), *b = make("5-400 69000-71000 4000000000");
  for (uint32_t x = 100000; x < 160000; x += 7) CHECK(splinter_insert(a, x) == 1); /* many blocks */
  for (uint32_t x = 100003; x < 190000; x += 11) CHECK(splinter_insert(b, x) == 1);
  uint8_t *abytes, *bbytes;
  size_t alen, blen;
  splinter_view_t av, bv;
  CHECK_OK(splinter_serialize_alloc(a, &abytes, &alen));
  CHECK_OK(splinter_serialize_alloc(b, &bbytes, &blen));
  CHECK_OK(splinter_view_open(abytes, alen, &av));
  CHECK_OK(splinter_view_open(bbytes, blen, &bv));
  splinter_ref_t as[2] = {splinter_ref_owned(a), splinter_ref_view(&av)};
  splinter_ref_t bs[2] = {splinter_ref_owned(b), splinter_ref_view(&bv)};
  splinter_t *before = make("42 1000-3000 5000000"), *out, *removed;
  for (int op = 0; op < 6; op++)
    for (int pair = 0; pair < 4; pair++) {
      splinter_ref_t ra = as[pair >> 1], rb = bs[pair & 1];
      for (long n = 1; n < 1000; n++) {
        CHECK_OK(splinter_from_ref(splinter_ref_owned(before), &out));
        CHECK_OK(splinter_from_ref(splinter_ref_owned(before), &removed));
        if (op == 4) CHECK_OK(splinter_assign(out, ra));
        quire_test_alloc_fail_at(n, 0);
        int rc = op == 0   ? splinter_union(ra, rb, out)
                 : op == 1 ? splinter_intersection(ra, rb, out)
                 : op == 2 ? splinter_difference(ra, rb, out)
                 : op == 3 ? splinter_symmetric_difference(ra, rb, out)
                 : op == 4 ? splinter_cut(out, rb, removed)
                           : splinter_assign(out, ra);
        long failures = quire_test_alloc_failures();
        quire_test_alloc_fail_at(0, 0);
        CHECK(rc == 0 || rc == QUIRE_ENOMEM);
        if (rc) {
          CHECK(failures > 0);
          CHECK(splinter_equal(splinter_ref_owned(out), op == 4 ? ra : splinter_ref_owned(before)));
          CHECK(splinter_equal(splinter_ref_owned(removed), splinter_ref_owned(before)));
        }
        splinter_free(out);
        splinter_free(removed);
        if (rc == 0 && failures == 0) break;
      }
    }
  splinter_free(before);
  splinter_bytes_free(abytes);
  splinter_bytes_free(bbytes);
  splinter_free(a);
  splinter_free(b);
}

/* The encoder favours a bitmap of 64+ bytes over an encoding up to 1/8
 * smaller (views of it are read word by word), and only then. */
static void test_bitmap_preference(void) {
  for (uint32_t gap = 10; gap <= 20; gap += 10) {
    splinter_t *s;
    CHECK_OK(splinter_new(&s));
    model m = {0};
    for (uint32_t x = 0; x < 30000; x += gap) { /* ~25 or ~13 values a block: a tree of arrays is smaller */
      CHECK(splinter_insert(s, x) == 1);
      model_insert_range(&m, x, x);
    }
    uint8_t *bytes;
    size_t len;
    CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
    splinter_view_t v;
    CHECK_OK(splinter_view_open(bytes, len, &v));
    unsigned root_kind = bytes[v.root_len - 1] & 7;
    CHECKF(root_kind == (gap == 10 ? 4u : 5u), "gap %u: root kind %u (4 bitmap, 5 tree), %zu bytes", gap,
           root_kind, len);
    model_check(&m, splinter_ref_view(&v));
    splinter_bytes_free(bytes);
    splinter_free(s);
    model_free(&m);
  }
}

/* A view of root node bytes root[0..n) holding card elements: appends the footer. */
static size_t with_footer(uint8_t *buf, const uint8_t *root, size_t n, uint32_t card) {
  memcpy(buf, root, n);
  unsigned cb = card < 256 ? 1 : card < 65536 ? 2 : card < (1u << 24) ? 3 : 4;
  for (unsigned i = 0; i < cb; i++) buf[n + i] = (uint8_t)(card >> (8 * i));
  buf[n + cb] = (uint8_t)(1 | ((cb - 1) << 4));
  buf[n + cb + 1] = 0xb5;
  buf[n + cb + 2] = 0x71;
  st_le64(buf + n + cb + 3, quire__xxh3(buf, n + cb + 3));
  return n + cb + 11;
}

/* Valid encodings the encoder never writes (two full leaves side by side, a
 * bitmap chunk with every bit set, an array holding a whole block) read and
 * combine like their canonical twins: decoded views are normalized. */
static void test_noncanonical_views(void) {
  static const uint8_t full_leaves[] = {/* level-2 tree, keys 0 and 1, both full */
                                        0x01, 0x01, 0x01, 0x00, 0x01, 0x00, 0x01, 0x01, 0x25,
                                        /* level-1 and root trees with that one child */
                                        0x00, 0x00, 0x05, 0x00, 0x00, 0x05};
  uint8_t ones_chunk[65], whole_array[256 + 10];
  memset(ones_chunk, 0xff, 32); /* root bitmap: block 0 full, then the even values of block 1 */
  memset(ones_chunk + 32, 0x55, 32);
  ones_chunk[64] = 0x04;
  for (int i = 0; i < 256; i++) whole_array[i] = (uint8_t)i; /* an array of the 256 values of block 0 */
  static const uint8_t whole_tail[] = {0x02, 0x00, 0x00, 0x05, 0x00, 0x00, 0x05, 0x00, 0x00, 0x05};
  memcpy(whole_array + 256, whole_tail, sizeof whole_tail); /* then one-child trees up to the root */
  struct {
    const uint8_t *root;
    size_t n;
    const char *set;
  } cases[] = {
      {full_leaves, sizeof full_leaves, "0-511"},
      {ones_chunk, sizeof ones_chunk, NULL},
      {whole_array, 256 + 7, "0-255"},  /* the array at level 2 (two trees above) */
      {whole_array, 256 + 10, "0-255"}, /* at level 3 (three trees above) */
  };
  splinter_t *other = make("100-300 256 258 400-700 65536");
  model mo = {0}, want = {0};
  splinter_iter_t it;
  uint32_t x;
  splinter_iter_init(&it, splinter_ref_owned(other), 0);
  while (splinter_iter_next(&it, &x)) model_insert_range(&mo, x, x);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    model m = {0};
    if (cases[c].set) {
      splinter_t *t = make(cases[c].set);
      splinter_iter_init(&it, splinter_ref_owned(t), 0);
      while (splinter_iter_next(&it, &x)) model_insert_range(&m, x, x);
      splinter_free(t);
    } else {
      model_insert_range(&m, 0, 255);
      for (uint32_t v = 256; v < 512; v += 2) model_insert_range(&m, v, v);
    }
    uint8_t buf[512];
    size_t len = with_footer(buf, cases[c].root, cases[c].n, (uint32_t)m.n);
    splinter_view_t v;
    CHECK_OK(splinter_view_open(buf, len, &v));
    model_check(&m, splinter_ref_view(&v));
    splinter_t *copy, *out;
    CHECK_OK(splinter_from_ref(splinter_ref_view(&v), &copy));
    model_check(&m, splinter_ref_owned(copy));
    CHECK_OK(splinter_new(&out));
    for (int op = 0; op < 4; op++)
      for (int swap = 0; swap < 2; swap++) {
        splinter_ref_t l = swap ? splinter_ref_owned(other) : splinter_ref_view(&v);
        splinter_ref_t r = swap ? splinter_ref_view(&v) : splinter_ref_owned(other);
        int rc = op == 0   ? splinter_union(l, r, out)
                 : op == 1 ? splinter_intersection(l, r, out)
                 : op == 2 ? splinter_difference(l, r, out)
                           : splinter_symmetric_difference(l, r, out);
        CHECK_OK(rc);
        model_op(swap ? &mo : &m, swap ? &m : &mo, op, &want);
        model_check(&want, splinter_ref_owned(out));
        /* the result is canonical: it encodes like the same set built by hand */
        uint8_t *e1, *e2;
        size_t l1, l2;
        splinter_t *again;
        CHECK_OK(splinter_from_sorted(want.v, want.n, &again));
        CHECK_OK(splinter_serialize_alloc(out, &e1, &l1));
        CHECK_OK(splinter_serialize_alloc(again, &e2, &l2));
        CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
        splinter_bytes_free(e1);
        splinter_bytes_free(e2);
        splinter_free(again);
      }
    CHECK(splinter_equal(splinter_ref_view(&v), splinter_ref_owned(copy)));
    splinter_free(copy);
    splinter_free(out);
    model_free(&m);
  }
  model_free(&mo);
  model_free(&want);
  splinter_free(other);
}

/* Views whose bitmap leaves the merge reads in place (raw windows): leaves
 * with an unaligned start and a partial end, chunks with every bit set, and
 * operands whose full spans and gaps make the merge leave and re-enter a raw
 * window midway; every operation in every pairing, against the model. */
static void test_dense_views(void) {
  model ms[3] = {{0}, {0}, {0}};
  for (uint32_t x = 1003; x < 20000; x += 3) model_insert_range(&ms[0], x, x);
  for (uint32_t x = 5001; x < 40000; x += 2) model_insert_range(&ms[1], x, x);
  model_insert_range(&ms[1], 10000, 12000);
  model_insert_range(&ms[2], 0, 3000);
  model_insert_range(&ms[2], 15000, 15999);
  for (uint32_t x = 16000; x < 30000; x += 97) model_insert_range(&ms[2], x, x);
  model_insert_range(&ms[2], 33000, 33100);
  splinter_t *sets[3];
  uint8_t *bytes[3];
  size_t lens[3];
  splinter_view_t views[3];
  for (int k = 0; k < 3; k++) {
    CHECK_OK(splinter_from_sorted(ms[k].v, ms[k].n, &sets[k]));
    CHECK_OK(splinter_serialize_alloc(sets[k], &bytes[k], &lens[k]));
    CHECK_OK(splinter_view_open(bytes[k], lens[k], &views[k]));
  }
  CHECK((bytes[0][views[0].root_len - 1] & 7) == 4); /* the first two are bitmaps */
  CHECK((bytes[1][views[1].root_len - 1] & 7) == 4);
  model want = {0};
  splinter_t *out, *cut, *removed;
  CHECK_OK(splinter_new(&out));
  CHECK_OK(splinter_new(&removed));
  for (int x = 0; x < 3; x++)
    for (int y = 0; y < 3; y++)
      for (int pair = 0; pair < 4; pair++) {
        splinter_ref_t l = pair & 2 ? splinter_ref_view(&views[x]) : splinter_ref_owned(sets[x]);
        splinter_ref_t r = pair & 1 ? splinter_ref_view(&views[y]) : splinter_ref_owned(sets[y]);
        for (int op = 0; op < 4; op++) {
          int rc = op == 0   ? splinter_union(l, r, out)
                   : op == 1 ? splinter_intersection(l, r, out)
                   : op == 2 ? splinter_difference(l, r, out)
                             : splinter_symmetric_difference(l, r, out);
          CHECK_OK(rc);
          model_op(&ms[x], &ms[y], op, &want);
          model_check(&want, splinter_ref_owned(out));
        }
        model_op(&ms[x], &ms[y], 1, &want);
        CHECK(splinter_intersects(l, r) == (want.n > 0));
        CHECK_OK(splinter_from_ref(l, &cut));
        CHECK_OK(splinter_cut(cut, r, removed));
        model_check(&want, splinter_ref_owned(removed));
        model_op(&ms[x], &ms[y], 2, &want);
        model_check(&want, splinter_ref_owned(cut));
        CHECK(splinter_is_subset(l, r) == (want.n == 0));
        splinter_free(cut);
      }
  splinter_free(out);
  splinter_free(removed);
  model_free(&want);
  for (int k = 0; k < 3; k++) {
    splinter_bytes_free(bytes[k]);
    splinter_free(sets[k]);
    model_free(&ms[k]);
  }
}

/* Regression: a tree stores no cumulative count for its last child, so rank
 * past every child must use the node's own cardinality (it once read the
 * key bytes as a count). */
static void test_rank_past_last_child(void) {
  splinter_t *s = make("3 5 7 268435459 268435461 268435463"); /* top bytes 0x00 and 0x10 */
  uint8_t *bytes;
  size_t len;
  CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
  splinter_view_t v;
  CHECK_OK(splinter_view_open(bytes, len, &v));
  CHECK(bytes[len - 13] == 0x05);                 /* root tree */
  CHECK(splinter_view_rank(&v, UINT32_MAX) == 6); /* key 0xFF: past both children */
  CHECK(splinter_view_rank(&v, 0x20000000u) == 6);
  CHECK(splinter_view_rank(&v, 268435462u) == 5);
  CHECK(splinter_view_rank(&v, 0x0FFFFFFFu) == 3);
  CHECK(splinter_view_rank(&v, 6) == 2);
  uint32_t x;
  CHECK_OK(splinter_view_select(&v, 5, &x));
  CHECK(x == 268435463u);
  CHECK_OK(splinter_view_select(&v, 3, &x));
  CHECK(x == 268435459u);
  splinter_bytes_free(bytes);
  splinter_free(s);
}

/* The page query: wanted pages cut against segments newest first; each page
 * is found in the newest segment holding it. */
static void test_page_query(void) {
  const char *segments[] = {"100-199 500", "150-300 499-501", "1-1000"}; /* newest first */
  const char *want_found[] = {"100-199 500", "200-220 499 501", "1-99 498"};
  splinter_t *wanted = make("1-220 498-501");
  for (int i = 0; i < 3; i++) {
    splinter_t *seg = make(segments[i]), *found, *want = make(want_found[i]);
    uint8_t *bytes;
    size_t len;
    CHECK_OK(splinter_serialize_alloc(seg, &bytes, &len));
    splinter_view_t v;
    CHECK_OK(splinter_view_open(bytes, len, &v));
    CHECK_OK(splinter_new(&found));
    CHECK_OK(splinter_cut(wanted, splinter_ref_view(&v), found));
    CHECK(splinter_equal(splinter_ref_owned(found), splinter_ref_owned(want)));
    CHECK(!splinter_intersects(splinter_ref_owned(wanted), splinter_ref_view(&v)));
    splinter_bytes_free(bytes);
    splinter_free(found);
    splinter_free(want);
    splinter_free(seg);
  }
  CHECK(splinter_is_empty(wanted));
  splinter_free(wanted);
}

int main(void) {
  test_seed();
  test_golden();
  test_odd_block();
  test_full_set();
  test_args();
  test_usage();
  test_oom();
  test_bitmap_preference();
  test_noncanonical_views();
  test_dense_views();
  test_rank_past_last_child();
  test_page_query();
  return test_done("test_splinter_basic");
}
