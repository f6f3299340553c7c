/* util/varint.c — see varint.h for the encoding table. */
#include "util/varint.h"
#include "quire/common.h"

/* Smallest value whose canonical encoding takes n bytes, for n = 4..9. */
static const uint64_t tier_min[10] = {0, 0, 0, 0, 67824, 1ull << 24, 1ull << 32, 1ull << 40, 1ull << 48, 1ull << 56};

int quire__varint_len(uint64_t v) {
  if (v <= 239) return 1;
  if (v <= 2287) return 2;
  if (v <= 67823) return 3;
  int n = 4;
  while (n < 9 && v >= tier_min[n + 1]) n++;
  return n;
}

int quire__varint_put(uint8_t *p, uint64_t v) {
  if (v <= 239) {
    p[0] = (uint8_t)v;
    return 1;
  }
  if (v <= 2287) {
    p[0] = (uint8_t)(240 + ((v - 240) >> 8));
    p[1] = (uint8_t)((v - 240) & 0xff);
    return 2;
  }
  if (v <= 67823) {
    p[0] = 248;
    p[1] = (uint8_t)((v - 2288) >> 8);
    p[2] = (uint8_t)((v - 2288) & 0xff);
    return 3;
  }
  int n = quire__varint_len(v);
  p[0] = (uint8_t)(249 + (n - 4));
  for (int i = n - 1; i >= 1; i--) {
    p[i] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
  return n;
}

int quire__varint_get(const uint8_t *p, size_t avail, uint64_t *v) {
  if (avail < 1) return QUIRE_ECORRUPT;
  uint8_t a0 = p[0];
  if (a0 <= 239) {
    *v = a0;
    return 1;
  }
  if (a0 <= 247) {
    if (avail < 2) return QUIRE_ECORRUPT;
    *v = 240 + 256 * (uint64_t)(a0 - 240) + p[1];
    return 2;
  }
  if (a0 == 248) {
    if (avail < 3) return QUIRE_ECORRUPT;
    *v = 2288 + 256 * (uint64_t)p[1] + p[2];
    return 3;
  }
  if (a0 == 255) return QUIRE_ECORRUPT;
  int n = 4 + (a0 - 249);
  if (avail < (size_t)n) return QUIRE_ECORRUPT;
  uint64_t x = 0;
  for (int i = 1; i < n; i++) x = (x << 8) | p[i];
  if (x < tier_min[n]) return QUIRE_ECORRUPT; /* not the shortest encoding */
  *v = x;
  return n;
}
