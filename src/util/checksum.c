/* util/checksum.c — thin wrapper over libxxhash's XXH3-64. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "util/checksum.h"

_Static_assert(sizeof(XXH3_state_t) <= sizeof(((quire_hasher *)0)->state),
               "quire_hasher too small for XXH3_state_t");
_Static_assert(_Alignof(XXH3_state_t) <= 64, "quire_hasher alignment");

uint64_t quire__xxh3(const void *p, size_t n) { return XXH3_64bits(p, n); }

uint64_t quire__xxh3_seeded(const void *p, size_t n, uint64_t seed) {
  return XXH3_64bits_withSeed(p, n, seed);
}

void quire__hasher_init(quire_hasher *h) { XXH3_64bits_reset((XXH3_state_t *)h->state); }

void quire__hasher_update(quire_hasher *h, const void *p, size_t n) {
  XXH3_64bits_update((XXH3_state_t *)h->state, p, n);
}

uint64_t quire__hasher_digest(const quire_hasher *h) {
  return XXH3_64bits_digest((const XXH3_state_t *)h->state);
}
