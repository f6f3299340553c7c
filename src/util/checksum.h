/*
 * util/checksum.h — XXH3-64 (libxxhash), quire's checksum for every persistent
 * structure unless a format says otherwise.
 */
#ifndef QUIRE_UTIL_CHECKSUM_H
#define QUIRE_UTIL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

uint64_t quire__xxh3(const void *p, size_t n);
uint64_t quire__xxh3_seeded(const void *p, size_t n, uint64_t seed);

/* Streaming form, for checksums over data produced in pieces. */
typedef struct quire_hasher {
  _Alignas(64) unsigned char state[576]; /* holds an XXH3_state_t */
} quire_hasher;
void quire__hasher_init(quire_hasher *h);
void quire__hasher_update(quire_hasher *h, const void *p, size_t n);
uint64_t quire__hasher_digest(const quire_hasher *h);

#endif
