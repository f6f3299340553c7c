/*
 * Splinter corruption: every truncation of valid encodings, random byte
 * flips (checksum left stale: must be QUIRE_ECORRUPT), and random flips with
 * the checksum recomputed, which reach the structural validator: those must
 * give QUIRE_ECORRUPT, or a view whose every query is consistent. Run under
 * ASan, so any out-of-bounds read fails the test.
 */
#include "model.h"
#include "util/checksum.h"
#include "util/endian.h"
#include "util/err.h"

static void fix_checksum(uint8_t *p, size_t len) { st_le64(p + len - 8, quire__xxh3(p, len - 8)); }

/* A view that opened must be internally consistent. */
static void check_consistent(const splinter_view_t *v) {
  splinter_iter_t it;
  splinter_iter_init(&it, splinter_ref_view(v), 0);
  uint64_t n = 0;
  uint32_t x, prev = 0, first = 0;
  uint64_t limit = 200000; /* a flip can make a node full: 2^32 elements */
  while (n < limit && splinter_iter_next(&it, &x)) {
    if (n)
      CHECK(x > prev);
    else
      first = x;
    CHECK(splinter_view_contains(v, x));
    prev = x;
    n++;
  }
  if (n == limit) {
    CHECK(splinter_view_cardinality(v) >= limit);
    uint32_t mx;
    CHECK_OK(splinter_view_max(v, &mx));
    CHECK(splinter_view_rank(v, mx) == splinter_view_cardinality(v));
    return;
  }
  CHECK(n == splinter_view_cardinality(v));
  if (n) {
    uint32_t mn, mx, sel;
    CHECK_OK(splinter_view_min(v, &mn));
    CHECK_OK(splinter_view_max(v, &mx));
    CHECK(mn == first && mx == prev);
    CHECK(splinter_view_rank(v, mx) == n);
    CHECK_OK(splinter_view_select(v, n - 1, &sel));
    CHECK(sel == mx);
  }
  splinter_t *copy;
  CHECK_OK(splinter_from_ref(splinter_ref_view(v), &copy));
  CHECK(splinter_equal(splinter_ref_owned(copy), splinter_ref_view(v)));
  splinter_free(copy);
}

static void attack(splinter_t *s) {
  uint8_t *bytes;
  size_t len;
  CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
  splinter_view_t v;
  CHECK_OK(splinter_view_open(bytes, len, &v));
  /* Every truncation, into an exact-size heap buffer so ASan sees overreads. */
  for (size_t k = 0; k < len; k++) {
    uint8_t *cut = malloc(k ? k : 1);
    memcpy(cut, bytes, k);
    CHECK_RC(splinter_view_open(cut, k, &v), QUIRE_ECORRUPT);
    /* and with a valid checksum over the truncated bytes */
    if (k >= SPLINTER_MIN_SIZE) {
      memcpy(cut, bytes + len - k, 0);
      uint8_t *shifted = malloc(k);
      memcpy(shifted, bytes + (len - k), k); /* drop a prefix: the root no longer starts at 0 */
      CHECK(splinter_view_open(shifted, k, &v) != 0);
      free(shifted);
    }
    free(cut);
  }
  uint8_t *mut = malloc(len);
  for (int round = 0; round < 300; round++) {
    memcpy(mut, bytes, len);
    int flips = 1 + (int)test_rand_below(3);
    for (int f = 0; f < flips; f++) mut[test_rand_below(len)] ^= (uint8_t)(1u << test_rand_below(8));
    if (memcmp(mut, bytes, len) == 0) continue;
    CHECK_RC(splinter_view_open(mut, len, &v), QUIRE_ECORRUPT);
    /* Flips in the structure with a valid checksum reach the validator. */
    if (len > SPLINTER_FOOTER_MAX) {
      memcpy(mut, bytes, len);
      for (int f = 0; f < flips; f++)
        mut[test_rand_below(len - 8)] ^=
            (uint8_t)(test_rand_below(2) ? 1u << test_rand_below(8) : test_rand());
      fix_checksum(mut, len);
      int rc = splinter_view_open(mut, len, &v);
      CHECK(rc == 0 || rc == QUIRE_ECORRUPT || rc == QUIRE_EVERSION);
      if (rc == 0) check_consistent(&v);
    }
  }
  free(mut);
  splinter_bytes_free(bytes);
}

static void test_version_and_magic(void) {
  splinter_t *s;
  CHECK_OK(splinter_new(&s));
  CHECK_OK(splinter_insert_range(s, 10, 20));
  uint8_t *bytes;
  size_t len;
  CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
  splinter_view_t v;
  bytes[len - 11] = SPLINTER_FORMAT_VERSION + 1;
  fix_checksum(bytes, len);
  CHECK_RC(splinter_view_open(bytes, len, &v), QUIRE_EVERSION);
  bytes[len - 11] = SPLINTER_FORMAT_VERSION;
  bytes[len - 10] ^= 1;
  fix_checksum(bytes, len);
  CHECK_RC(splinter_view_open(bytes, len, &v), QUIRE_ECORRUPT);
  bytes[len - 10] ^= 1;
  bytes[len - 12] ^= 1; /* footer cardinality (1 byte for 11 elements) */
  fix_checksum(bytes, len);
  CHECK_RC(splinter_view_open(bytes, len, &v), QUIRE_ECORRUPT);
  CHECK_RC(splinter_view_open(NULL, 0, &v), QUIRE_ECORRUPT);
  splinter_bytes_free(bytes);
  splinter_free(s);
}

/* Arrays long enough for the vectorized order check: a swapped or repeated
 * value anywhere must be caught, with the checksum made valid again. */
static void test_array_order(void) {
  for (int width = 1; width <= 2; width++) {
    splinter_t *s;
    CHECK_OK(splinter_new(&s));
    uint32_t step = width == 1 ? 10 : 1500, n = width == 1 ? 24 : 43;
    for (uint32_t i = 0; i < n; i++) CHECK(splinter_insert(s, 3 + i * step) == 1);
    uint8_t *bytes;
    size_t len;
    CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
    size_t root = len - 12;                               /* 1-byte cardinality footer */
    CHECK(bytes[root - 1] == (width == 1 ? 0x02 : 0x0a)); /* root array of width-byte values */
    CHECK(root - 1 == (size_t)n * (size_t)width);
    uint8_t *mut = malloc(len);
    splinter_view_t v;
    for (uint32_t i = 0; i + 1 < n; i++) {
      for (int mode = 0; mode < 2; mode++) {
        memcpy(mut, bytes, len);
        uint8_t *a = mut + (size_t)i * (size_t)width, *b = a + width, t[2];
        if (mode == 0) { /* swap neighbours */
          memcpy(t, a, (size_t)width);
          memcpy(a, b, (size_t)width);
          memcpy(b, t, (size_t)width);
        } else { /* repeat a value */
          memcpy(b, a, (size_t)width);
        }
        fix_checksum(mut, len);
        CHECK_RC(splinter_view_open(mut, len, &v), QUIRE_ECORRUPT);
      }
    }
    CHECK_OK(splinter_view_open(bytes, len, &v));
    free(mut);
    splinter_bytes_free(bytes);
    splinter_free(s);
  }
}

int main(void) {
  test_seed();
  splinter_t *s;
  CHECK_OK(splinter_new(&s));
  attack(s); /* empty */
  CHECK(splinter_insert(s, 7) == 1);
  attack(s);
  CHECK_OK(splinter_insert_range(s, 300, 700)); /* runs */
  attack(s);
  for (int i = 0; i < 200; i++) CHECK(splinter_insert(s, (uint32_t)test_rand_below(1 << 20)) >= 0);
  attack(s); /* array or tree */
  for (int i = 0; i < 3000; i++) CHECK(splinter_insert(s, 70000 + (uint32_t)test_rand_below(8000)) >= 0);
  attack(s); /* bitmaps in a tree */
  for (int i = 0; i < 300; i++) CHECK(splinter_insert(s, (uint32_t)test_rand()) >= 0);
  attack(s); /* wide root tree */
  splinter_clear(s);
  for (uint32_t k = 0; k < 300; k++) CHECK(splinter_insert(s, k * 256 + (k % 7)) >= 0);
  attack(s); /* level-2 tree with >32 children: key bitmap */
  CHECK_OK(splinter_insert_range(s, 0, 65535));
  CHECK_OK(splinter_insert_range(s, 1u << 24, (1u << 24) + 65535));
  attack(s); /* full nodes */
  splinter_free(s);
  test_version_and_magic();
  test_array_order();
  CHECK(quire__never_count() == 0);
  return test_done("test_splinter_corrupt");
}
