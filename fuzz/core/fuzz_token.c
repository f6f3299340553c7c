/*
 * The token parser and verifier (core/token.h) and the request-volume
 * reader (net/auth.h) on untrusted bytes. The first byte picks:
 *   0: the rest is token text, verified against a fixed key;
 *   1: the rest is token bytes, sent as text (so the fuzzer reaches the
 *      field parser without having to learn base64);
 *   2: the rest is a request body whose volume is read; when protobuf-c
 *      decodes it too, both must read the same volume;
 *   3: the rest are claims, signed with the fixed key and verified back.
 * Invariants: a token that verifies re-signs to the same text (Ed25519 is
 * deterministic, so the parser lost and invented nothing); one that parses
 * has its fields in range; every refusal says why.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/token.h"
#include "net/auth.h"
#include "proto/metastore.pb-c.h"
#include "proto/pb.h"
#include "util/err.h"

static struct quire_keyset ks;

static void setup(void) {
  if (ks.n) return;
  if (sodium_init() < 0) abort();
  uint8_t seed[32];
  memset(seed, 7, sizeof seed);
  crypto_sign_seed_keypair(ks.keys[0].pk, ks.keys[0].sk, seed);
  uint8_t h[16];
  crypto_generichash(h, sizeof h, ks.keys[0].pk, 32, NULL, 0);
  memcpy(ks.keys[0].kid, h, QUIRE_TOKEN_KID);
  ks.keys[0].has_sk = 1;
  ks.n = 1;
}

static void check_text(const char *text, size_t len) {
  struct quire_token t;
  int prc = quire__token_parse(text, len, &t);
  if (prc == 0) {
    if (t.perm < 1 || t.perm > 3 || t.nvol > QUIRE_TOKEN_MAX_VOLUMES || strlen(t.subject) > 64) abort();
  } else if (prc != QUIRE_EUNAUTHORIZED || !*quire_errmsg()) {
    abort();
  }
  int rc = quire__token_verify(&ks, text, len, 1800000000, 120, &t);
  if (rc == 0) {
    if (prc != 0) abort();
    char again[QUIRE_TOKEN_TEXT_MAX + 1];
    if (quire__token_sign(&ks, &t, again, sizeof again) != 0) abort();
    if (strlen(again) != len || memcmp(again, text, len) != 0) abort();
  } else if (rc != QUIRE_EUNAUTHORIZED || !*quire_errmsg()) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  if (size == 0) return 0;
  unsigned mode = data[0] & 3;
  data++, size--;
  if (mode == 0) {
    check_text((const char *)data, size);
  } else if (mode == 1) {
    if (size > QUIRE_TOKEN_BYTES_MAX + 8) return 0;
    char text[4 + 2 * (QUIRE_TOKEN_BYTES_MAX + 8) + 8];
    memcpy(text, "qt1_", 4);
    sodium_bin2base64(text + 4, sizeof text - 4, data, size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    check_text(text, strlen(text));
  } else if (mode == 2) {
    quire_gid vid;
    int rc = quire__auth_request_vid(data, size, &vid);
    if (rc == 0) {
      /* the vid is in the body (its length may be a non-minimal varint) */
      if (!memmem(data, size, vid.b, 16)) abort();
      /* and the handlers' decoder (protobuf-c) reads the same volume: the
       * scope check and the handler never disagree */
      Quire__Metastore__V1__SnapshotRequest *m =
          quire__metastore__v1__snapshot_request__unpack(&quire__pb_allocator, size, data);
      if (m && (!m->has_vid || m->vid.len != 16 || memcmp(m->vid.data, vid.b, 16) != 0)) abort();
      if (m) quire__metastore__v1__snapshot_request__free_unpacked(m, &quire__pb_allocator);
    } else if (rc != QUIRE_EINVAL || !*quire_errmsg()) {
      abort();
    }
  } else {
    if (size < 20) return 0;
    struct quire_token t = {0};
    t.perm = (uint8_t)(1 + data[0] % 3);
    t.nvol = (uint8_t)(data[1] % 4);
    t.issued = 1800000000 - (data[2] % 200);
    t.expires = t.issued + 1 + data[3] * 10u;
    size_t slen = data[4] % 16;
    for (size_t i = 0; i < slen; i++) t.subject[i] = (char)(0x21 + data[5 + i] % 94);
    for (unsigned i = 0; i < t.nvol; i++) {
      memset(t.vols[i].b, data[5 + i], 16);
      t.vols[i].b[0] = QUIRE_GID_VOLUME;
    }
    char text[QUIRE_TOKEN_TEXT_MAX + 1];
    if (quire__token_sign(&ks, &t, text, sizeof text) != 0) abort();
    struct quire_token back;
    int rc = quire__token_verify(&ks, text, strlen(text), 1800000000, 120, &back);
    int live = 1800000000 < t.expires + 120;
    if ((rc == 0) != live) abort();
    if (rc == 0 && (back.perm != t.perm || back.nvol != t.nvol || strcmp(back.subject, t.subject) != 0))
      abort();
  }
  return 0;
}
