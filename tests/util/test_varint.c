/* Varints: round trips at every tier boundary, memcmp order = numeric order,
 * canonical-only decoding, truncation. */
#include "test.h"
#include "util/util.h"

#include <string.h>

static const uint64_t edges[] = {0,          1,          239,        240,          241,
                                 2287,       2288,       2289,       67823,        67824,
                                 (1u << 24) - 1, 1u << 24, 0xffffffffull, 1ull << 32, (1ull << 40) - 1,
                                 1ull << 40, (1ull << 48) - 1, 1ull << 48, (1ull << 56) - 1, 1ull << 56,
                                 UINT64_MAX - 1, UINT64_MAX};

static void roundtrip(uint64_t v) {
  uint8_t b[QUIRE_VARINT_MAX];
  int n = quire__varint_put(b, v);
  CHECK(n == quire__varint_len(v));
  uint64_t got = 0;
  CHECK(quire__varint_get(b, (size_t)n, &got) == n);
  CHECKF(got == v, "varint %llu decoded as %llu", (unsigned long long)v, (unsigned long long)got);
  for (int k = 0; k < n; k++) CHECK_RC(quire__varint_get(b, (size_t)k, &got), QUIRE_ECORRUPT);
}

static int cmp_enc(uint64_t a, uint64_t b) {
  uint8_t x[9], y[9];
  int nx = quire__varint_put(x, a), ny = quire__varint_put(y, b);
  int c = memcmp(x, y, (size_t)(nx < ny ? nx : ny));
  return c ? c : nx - ny;
}

int main(void) {
  test_seed();
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) roundtrip(edges[i]);
  CHECK(quire__varint_len(239) == 1 && quire__varint_len(240) == 2 && quire__varint_len(2288) == 3 &&
        quire__varint_len(67824) == 4 && quire__varint_len(UINT64_MAX) == 9);
  for (size_t i = 0; i + 1 < sizeof edges / sizeof edges[0]; i++) CHECK(cmp_enc(edges[i], edges[i + 1]) < 0);
  for (int i = 0; i < 200000; i++) {
    int bits = (int)test_rand_below(65);
    uint64_t a = bits == 64 ? test_rand() : test_rand() & ((1ull << bits) - 1);
    bits = (int)test_rand_below(65);
    uint64_t b = bits == 64 ? test_rand() : test_rand() & ((1ull << bits) - 1);
    roundtrip(a);
    int c = cmp_enc(a, b);
    CHECK((a < b && c < 0) || (a > b && c > 0) || (a == b && c == 0));
  }
  /* Non-canonical encodings and the reserved first byte are rejected. */
  uint64_t v;
  uint8_t bad1[] = {249, 0, 0, 5};              /* 5 needs one byte */
  uint8_t bad2[] = {254, 0, 0, 0, 0, 0, 0, 0, 1}; /* 1 in nine bytes */
  uint8_t bad3[] = {255, 1, 2, 3, 4, 5, 6, 7, 8};
  uint8_t bad4[] = {250, 0, 0xff, 0xff, 0xff};  /* 2^24-1 needs four bytes */
  CHECK_RC(quire__varint_get(bad1, sizeof bad1, &v), QUIRE_ECORRUPT);
  CHECK_RC(quire__varint_get(bad2, sizeof bad2, &v), QUIRE_ECORRUPT);
  CHECK_RC(quire__varint_get(bad3, sizeof bad3, &v), QUIRE_ECORRUPT);
  CHECK_RC(quire__varint_get(bad4, sizeof bad4, &v), QUIRE_ECORRUPT);
  /* Every 1- to 3-byte pattern either decodes canonically or is rejected. */
  for (unsigned a0 = 0; a0 < 256; a0++)
    for (unsigned a1 = 0; a1 < 256; a1 += 7) {
      uint8_t p[3] = {(uint8_t)a0, (uint8_t)a1, 0x5a};
      int n = quire__varint_get(p, 3, &v);
      if (n > 0) {
        uint8_t q[9];
        CHECK(quire__varint_put(q, v) == n && memcmp(p, q, (size_t)n) == 0);
      }
    }
  return test_done("util_varint");
}
