/*
 * util/varint.h — quire's one variable-length integer encoding.
 *
 * Order-preserving: for canonical encodings, memcmp order of the bytes equals
 * numeric order of the values, so varints may appear inside keys. The first
 * byte A0 says the length:
 *
 *   A0          bytes  value
 *   0..239      1      A0
 *   240..247    2      240 + 256*(A0-240) + A1                 (240..2287)
 *   248         3      2288 + 256*A1 + A2                      (2288..67823)
 *   249         4      A1..A3 big-endian                       (67824..2^24-1)
 *   250         5      A1..A4 big-endian                       (..2^32-1)
 *   251         6      A1..A5 big-endian                       (..2^40-1)
 *   252         7      A1..A6 big-endian                       (..2^48-1)
 *   253         8      A1..A7 big-endian                       (..2^56-1)
 *   254         9      A1..A8 big-endian                       (..2^64-1)
 *   255         -      invalid
 *
 * Only the shortest encoding of a value is valid; the decoder rejects others
 * (so one value has exactly one encoding). See docs/CONVENTIONS.md.
 */
#ifndef QUIRE_UTIL_VARINT_H
#define QUIRE_UTIL_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define QUIRE_VARINT_MAX 9

/* Bytes needed to encode v (1..9). */
int quire__varint_len(uint64_t v);
/* Writes v at p (which must have QUIRE_VARINT_MAX bytes, or varint_len(v));
 * returns the bytes written. */
int quire__varint_put(uint8_t *p, uint64_t v);
/* Decodes from at most avail bytes at p. Returns the bytes consumed (> 0), or
 * QUIRE_ECORRUPT if truncated, non-canonical or A0 = 255. */
int quire__varint_get(const uint8_t *p, size_t avail, uint64_t *v);

#endif
