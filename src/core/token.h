/*
 * core/token.h — access tokens for the quire services (docs/SECURITY.md).
 *
 * A token says who holds it (subject), which volumes it covers (one, a
 * list of up to 16, or all), what it may do there (read < write < admin),
 * until when, and which server key signed it (key id). It is signed with
 * Ed25519 (libsodium): a service that only verifies needs only the public
 * key, and nothing but the holder of the secret key can mint a token.
 *
 * Bytes (all integers little-endian):
 *
 *   offset  size   field
 *   0       1      version (1)
 *   1       8      key id: the first 8 bytes of BLAKE2b-128(public key)
 *   9       1      permission: 1 read, 2 write, 3 admin
 *   10      1      subject length s (0..64)
 *   11      1      volume count v (0: every volume; 1..16: those listed)
 *   12      8      issued at, Unix seconds
 *   20      8      expires at, Unix seconds
 *   28      s      subject: printable ASCII (0x21..0x7e)
 *   28+s    16*v   volume ids (GIDs of type volume)
 *   28+s+16v 64    Ed25519 signature over "quire token v1" || bytes 0..28+s+16v
 *
 * Text: "qt1_" followed by the bytes in unpadded URL-safe base64. At most
 * QUIRE_TOKEN_TEXT_MAX characters; anything longer is refused before it is
 * decoded. Parsing and verifying use fixed-size buffers only.
 *
 * Key file (auth.key; mode 0600): one key a line, the signing key first:
 *   quire-auth-key v1 <key id, 16 hex> <Ed25519 seed, 64 hex>
 * or, for a service that only verifies,
 *   quire-auth-pub v1 <key id, 16 hex> <Ed25519 public key, 64 hex>
 * At most QUIRE_TOKEN_MAX_KEYS lines; every key listed is accepted
 * (rotation: a new key is added first, the old one stays until its tokens
 * have expired).
 */
#ifndef QUIRE_CORE_TOKEN_H
#define QUIRE_CORE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "quire/ids.h"

#define QUIRE_TOKEN_VERSION 1
#define QUIRE_TOKEN_MAX_SUBJECT 64
#define QUIRE_TOKEN_MAX_VOLUMES 16
#define QUIRE_TOKEN_HEAD 28
#define QUIRE_TOKEN_SIG 64
#define QUIRE_TOKEN_BYTES_MAX                                                                                \
  (QUIRE_TOKEN_HEAD + QUIRE_TOKEN_MAX_SUBJECT + 16 * QUIRE_TOKEN_MAX_VOLUMES + QUIRE_TOKEN_SIG)
#define QUIRE_TOKEN_PREFIX "qt1_"
#define QUIRE_TOKEN_TEXT_MAX (4 + (QUIRE_TOKEN_BYTES_MAX * 4 + 2) / 3)
#define QUIRE_TOKEN_KID 8
#define QUIRE_TOKEN_MAX_KEYS 2
#define QUIRE_TOKEN_SKEW_S 120 /* default clock skew allowance */

enum quire_perm { QUIRE_PERM_NONE = 0, QUIRE_PERM_READ = 1, QUIRE_PERM_WRITE = 2, QUIRE_PERM_ADMIN = 3 };

struct quire_token {
  uint8_t version;
  uint8_t kid[QUIRE_TOKEN_KID];
  uint8_t perm; /* enum quire_perm */
  uint8_t nvol; /* 0: every volume */
  uint64_t issued, expires;
  char subject[QUIRE_TOKEN_MAX_SUBJECT + 1];
  quire_gid vols[QUIRE_TOKEN_MAX_VOLUMES];
  uint8_t sig[QUIRE_TOKEN_SIG];
  uint8_t id[16];    /* BLAKE2b-128 of the signature: names the token (quotas, logs) */
  size_t signed_len; /* bytes covered by the signature */
};

struct quire_token_key {
  uint8_t kid[QUIRE_TOKEN_KID];
  uint8_t pk[32];
  uint8_t sk[64]; /* libsodium secret key (seed || pk); zero when has_sk == 0 */
  int has_sk;
};

struct quire_keyset {
  struct quire_token_key keys[QUIRE_TOKEN_MAX_KEYS];
  unsigned n; /* keys[0] signs */
};

/* Parses a token's text (len bytes, need not be NUL-terminated) into out
 * without checking its signature. QUIRE_EUNAUTHORIZED with the reason for
 * anything malformed. */
int quire__token_parse(const char *text, size_t len, struct quire_token *out);

/* Parses and verifies: the key id names a key of ks, the signature holds,
 * and issued - skew_s <= now < expires + skew_s. QUIRE_EUNAUTHORIZED with the
 * reason otherwise (out is filled as far as it parsed). */
int quire__token_verify(const struct quire_keyset *ks, const char *text, size_t len, uint64_t now,
                        unsigned skew_s, struct quire_token *out);

/* Signs t (its version, kid, sig and id are filled in) with ks->keys[0]
 * into text (cap >= QUIRE_TOKEN_TEXT_MAX + 1, NUL-terminated).
 * QUIRE_EINVAL for claims out of range or a key set that cannot sign. */
int quire__token_sign(const struct quire_keyset *ks, struct quire_token *t, char *text, size_t cap);

/* 1 when t covers volume vid. */
int quire__token_covers(const struct quire_token *t, const quire_gid *vid);

const char *quire__perm_name(unsigned perm);
/* "read" / "write" / "admin" → the permission; QUIRE_PERM_NONE otherwise. */
unsigned quire__perm_parse(const char *s);

/* A fresh key pair. */
int quire__token_key_new(struct quire_token_key *k);

/* Reads a key file. QUIRE_EINVAL with the reason for a malformed one, -errno
 * when it cannot be read. Warns when group or others may read it. */
int quire__keyset_load(const char *path, struct quire_keyset *ks);
/* Writes ks to path (mode 0600, atomically by rename). */
int quire__keyset_save(const char *path, const struct quire_keyset *ks);
/* Creates path with one fresh signing key unless it exists; loads it.
 * *created says whether it was made now. */
int quire__keyset_ensure(const char *path, struct quire_keyset *ks, int *created);
void quire__keyset_wipe(struct quire_keyset *ks);

#endif
