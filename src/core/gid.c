/*
 * core/gid.c — GIDs, LSNs and page indexes (quire/ids.h).
 *
 * Base58 text: the 128-bit big-endian value in the Bitcoin alphabet, padded
 * with leading '1' (zero) to 22 characters. Because the top bit of every GID
 * is set, the value is at least 2^127 > 58^21, so the text is never padded in
 * practice; padding keeps the length fixed for hostile or zero ids anyway.
 */
#include "quire/ids.h"
#include "util/err.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "util/clock.h"

static const char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

static int known_type(int t) {
  return t == QUIRE_GID_VOLUME || t == QUIRE_GID_SEGMENT || t == QUIRE_GID_CLIENT ||
         t == QUIRE_GID_COMMIT;
}

static int fill_random(uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return quire__errno("getrandom");
    }
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

int quire_gid_new_at(int type, uint64_t unix_ms, quire_gid *out) {
  if (!known_type(type)) return quire__err(QUIRE_EINVAL, "unknown gid type 0x%02x", type & 0xff);
  if (unix_ms >> 48) return quire__err(QUIRE_EINVAL, "gid timestamp out of range");
  out->b[0] = (uint8_t)type;
  for (int i = 0; i < 6; i++) out->b[1 + i] = (uint8_t)(unix_ms >> (8 * (5 - i)));
  return fill_random(out->b + 7, 9);
}

int quire_gid_new(int type, quire_gid *out) { return quire_gid_new_at(type, quire__wall_ms(), out); }

int quire_gid_check(const quire_gid *g) {
  if (!known_type(g->b[0])) return quire__err(QUIRE_EINVAL, "unknown gid type byte 0x%02x", g->b[0]);
  return 0;
}

int quire_gid_type(const quire_gid *g) { return g->b[0]; }

uint64_t quire_gid_time_ms(const quire_gid *g) {
  uint64_t ms = 0;
  for (int i = 1; i <= 6; i++) ms = (ms << 8) | g->b[i];
  return ms;
}

const char *quire_gid_type_name(int type) {
  switch (type) {
  case QUIRE_GID_VOLUME: return "volume";
  case QUIRE_GID_SEGMENT: return "segment";
  case QUIRE_GID_CLIENT: return "client";
  case QUIRE_GID_COMMIT: return "commit";
  default: return "unknown";
  }
}

int quire_gid_cmp(const quire_gid *a, const quire_gid *b) { return memcmp(a->b, b->b, QUIRE_GID_SIZE); }

int quire_gid_is_zero(const quire_gid *g) {
  static const quire_gid zero;
  return memcmp(g->b, zero.b, QUIRE_GID_SIZE) == 0;
}

void quire_gid_format(const quire_gid *g, char out[QUIRE_GID_TEXT_LEN + 1]) {
  unsigned __int128 v = 0;
  for (int i = 0; i < QUIRE_GID_SIZE; i++) v = (v << 8) | g->b[i];
  for (int i = QUIRE_GID_TEXT_LEN - 1; i >= 0; i--) {
    out[i] = alphabet[(int)(v % 58)];
    v /= 58;
  }
  out[QUIRE_GID_TEXT_LEN] = '\0';
}

static int digit_of(char c) {
  const char *p = c ? strchr(alphabet, c) : NULL;
  return p ? (int)(p - alphabet) : -1;
}

int quire_gid_parse(const char *text, size_t len, int want_type, quire_gid *out) {
  if (len != QUIRE_GID_TEXT_LEN)
    return quire__err(QUIRE_EINVAL, "gid must be %d base58 characters, got %zu", QUIRE_GID_TEXT_LEN, len);
  unsigned __int128 v = 0;
  const unsigned __int128 max_before_mul = (~(unsigned __int128)0) / 58;
  for (size_t i = 0; i < len; i++) {
    int d = digit_of(text[i]);
    if (d < 0)
      return quire__err(QUIRE_EINVAL, "gid: character %zu (0x%02x) is not base58", i, (unsigned char)text[i]);
    if (v > max_before_mul) return quire__err(QUIRE_EINVAL, "gid: value exceeds 128 bits");
    v *= 58;
    if (v > ~(unsigned __int128)0 - (unsigned)d) return quire__err(QUIRE_EINVAL, "gid: value exceeds 128 bits");
    v += (unsigned)d;
  }
  quire_gid g;
  for (int i = QUIRE_GID_SIZE - 1; i >= 0; i--) {
    g.b[i] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
  if (!known_type(g.b[0])) return quire__err(QUIRE_EINVAL, "gid: unknown type byte 0x%02x", g.b[0]);
  if (want_type && g.b[0] != want_type)
    return quire__err(QUIRE_EINVAL, "gid: expected a %s id, got a %s id", quire_gid_type_name(want_type),
                      quire_gid_type_name(g.b[0]));
  *out = g;
  return 0;
}

int quire_lsn_check(quire_lsn lsn) { return lsn == 0 ? quire__err(QUIRE_ERANGE, "LSN 0 is not a valid LSN") : 0; }

int quire_pageidx_check(quire_pageidx idx) {
  return idx == 0 ? quire__err(QUIRE_ERANGE, "page index 0 is not valid (pages are 1-based)") : 0;
}

void quire_lsn_format(quire_lsn lsn, char out[17]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--) {
    out[i] = hex[lsn & 0xf];
    lsn >>= 4;
  }
  out[16] = '\0';
}

int quire_lsn_parse(const char *text, size_t len, quire_lsn *out) {
  if (len != 16) return quire__err(QUIRE_EINVAL, "LSN must be 16 hex digits, got %zu", len);
  uint64_t v = 0;
  for (size_t i = 0; i < 16; i++) {
    char c = text[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return quire__err(QUIRE_EINVAL, "LSN: character %zu is not a lowercase hex digit", i);
    v = (v << 4) | (uint64_t)d;
  }
  *out = v;
  return 0;
}
