/*
 * Access tokens (core/token.h): a signed token verifies and says what it
 * was made with; any changed byte, another key, an unknown key id, expiry
 * and a future issue time are refused; two keys verify at once (rotation)
 * and only the first signs; key files are 0600, reload the same, refuse
 * damage; the volume reader of the HTTP server (net/auth.h) finds field 1
 * and refuses a second one; the server's check verifies a signature once
 * per token and still applies expiry to the cached claims.
 */
#include "test.h"
#include "core/token.h"
#include "net/auth.h"
#include "util/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fputs(text, f);
  fclose(f);
}

static void sign(const struct quire_keyset *ks, unsigned perm, unsigned nvol, const quire_gid *vols,
                 uint64_t issued, uint64_t expires, char *text) {
  struct quire_token t = {0};
  t.perm = (uint8_t)perm;
  t.nvol = (uint8_t)nvol;
  for (unsigned i = 0; i < nvol; i++) t.vols[i] = vols[i];
  t.issued = issued;
  t.expires = expires;
  snprintf(t.subject, sizeof t.subject, "alice@example");
  CHECK_OK(quire__token_sign(ks, &t, text, QUIRE_TOKEN_TEXT_MAX + 1));
}

int main(void) {
  test_seed();
  char *dir = test_tmpdir("token");
  char path[4200], path2[4200];
  snprintf(path, sizeof path, "%s/auth.key", dir);
  struct quire_keyset ks, again, other;
  int created = 0;
  CHECK_OK(quire__keyset_ensure(path, &ks, &created));
  CHECK(created == 1 && ks.n == 1 && ks.keys[0].has_sk);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK_OK(quire__keyset_ensure(path, &again, &created));
  CHECK(created == 0 && memcmp(ks.keys[0].pk, again.keys[0].pk, 32) == 0);

  quire_gid vols[3];
  for (int i = 0; i < 3; i++) CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vols[i]));
  uint64_t now = 1800000000;
  char text[QUIRE_TOKEN_TEXT_MAX + 1];
  struct quire_token t;

  /* Round trip: every claim comes back. */
  sign(&ks, QUIRE_PERM_WRITE, 2, vols, now - 10, now + 3600, text);
  CHECK(strncmp(text, "qt1_", 4) == 0 && strlen(text) <= QUIRE_TOKEN_TEXT_MAX);
  CHECK_OK(quire__token_verify(&ks, text, strlen(text), now, 0, &t));
  CHECK(t.perm == QUIRE_PERM_WRITE && t.nvol == 2 && strcmp(t.subject, "alice@example") == 0);
  CHECK(t.issued == now - 10 && t.expires == now + 3600);
  CHECK(quire__token_covers(&t, &vols[0]) && quire__token_covers(&t, &vols[1]) &&
        !quire__token_covers(&t, &vols[2]));

  /* Every single changed character is refused. */
  size_t len = strlen(text);
  for (size_t i = 0; i < len; i++) {
    char bad[QUIRE_TOKEN_TEXT_MAX + 1];
    memcpy(bad, text, len + 1);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    CHECK_RC(quire__token_verify(&ks, bad, len, now, 0, &t), QUIRE_EUNAUTHORIZED);
  }
  /* Truncated, extended, empty, too long. */
  CHECK_RC(quire__token_verify(&ks, text, len - 1, now, 0, &t), QUIRE_EUNAUTHORIZED);
  CHECK_RC(quire__token_verify(&ks, text, 0, now, 0, &t), QUIRE_EUNAUTHORIZED);
  char longer[2 * QUIRE_TOKEN_TEXT_MAX];
  memset(longer, 'A', sizeof longer);
  memcpy(longer, "qt1_", 4);
  CHECK_RC(quire__token_verify(&ks, longer, sizeof longer, now, 0, &t), QUIRE_EUNAUTHORIZED);
  CHECK(strstr(quire_errmsg(), "too long") != NULL);

  /* Time: expired, not yet issued; the skew allowance applies both ways. */
  CHECK_RC(quire__token_verify(&ks, text, len, now + 3600, 0, &t), QUIRE_EUNAUTHORIZED);
  CHECK(strstr(quire_errmsg(), "expired") != NULL);
  CHECK_OK(quire__token_verify(&ks, text, len, now + 3600, 120, &t));
  CHECK_RC(quire__token_verify(&ks, text, len, now + 3600 + 120, 120, &t), QUIRE_EUNAUTHORIZED);
  CHECK_RC(quire__token_verify(&ks, text, len, now - 100, 0, &t), QUIRE_EUNAUTHORIZED);
  CHECK(strstr(quire_errmsg(), "future") != NULL);
  CHECK_OK(quire__token_verify(&ks, text, len, now - 100, 120, &t));

  /* Another server's key: unknown key id. Same key id, other key: bad signature. */
  snprintf(path2, sizeof path2, "%s/other.key", dir);
  CHECK_OK(quire__keyset_ensure(path2, &other, &created));
  CHECK_RC(quire__token_verify(&other, text, len, now, 0, &t), QUIRE_EUNAUTHORIZED);
  CHECK(strstr(quire_errmsg(), "key id") != NULL);
  struct quire_keyset forged = other;
  memcpy(forged.keys[0].kid, ks.keys[0].kid, QUIRE_TOKEN_KID);
  char forged_text[QUIRE_TOKEN_TEXT_MAX + 1];
  sign(&forged, QUIRE_PERM_ADMIN, 0, NULL, now, now + 60, forged_text);
  CHECK_RC(quire__token_verify(&ks, forged_text, strlen(forged_text), now, 0, &t), QUIRE_EUNAUTHORIZED);
  CHECK(strstr(quire_errmsg(), "signature") != NULL);

  /* Rotation: a set of (new, old) verifies tokens of both and signs with new. */
  struct quire_keyset both = {0};
  CHECK_OK(quire__token_key_new(&both.keys[0]));
  both.keys[1] = ks.keys[0];
  both.n = 2;
  snprintf(path2, sizeof path2, "%s/rotated.key", dir);
  CHECK_OK(quire__keyset_save(path2, &both));
  CHECK_OK(quire__keyset_load(path2, &again));
  CHECK(again.n == 2 && memcmp(again.keys[0].pk, both.keys[0].pk, 32) == 0);
  CHECK_OK(quire__token_verify(&again, text, len, now, 0, &t)); /* old key's token */
  char fresh[QUIRE_TOKEN_TEXT_MAX + 1];
  sign(&again, QUIRE_PERM_READ, 0, NULL, now, now + 60, fresh);
  CHECK_OK(quire__token_verify(&again, fresh, strlen(fresh), now, 0, &t));
  CHECK(memcmp(t.kid, both.keys[0].kid, QUIRE_TOKEN_KID) == 0);
  CHECK_RC(quire__token_verify(&ks, fresh, strlen(fresh), now, 0, &t), QUIRE_EUNAUTHORIZED);
  /* A verify-only set (public keys) verifies and cannot sign. */
  struct quire_keyset pub = again;
  for (unsigned i = 0; i < pub.n; i++) {
    memset(pub.keys[i].sk, 0, sizeof pub.keys[i].sk);
    pub.keys[i].has_sk = 0;
  }
  snprintf(path2, sizeof path2, "%s/pub.key", dir);
  CHECK_OK(quire__keyset_save(path2, &pub));
  CHECK_OK(quire__keyset_load(path2, &pub));
  CHECK(!pub.keys[0].has_sk);
  CHECK_OK(quire__token_verify(&pub, fresh, strlen(fresh), now, 0, &t));
  CHECK_RC(quire__token_sign(&pub, &t, fresh, sizeof fresh), QUIRE_EINVAL);

  /* Claims out of range are not signed. */
  struct quire_token c = {.perm = 0, .issued = now, .expires = now + 1};
  CHECK_RC(quire__token_sign(&ks, &c, fresh, sizeof fresh), QUIRE_EINVAL);
  c.perm = QUIRE_PERM_READ;
  c.expires = now;
  CHECK_RC(quire__token_sign(&ks, &c, fresh, sizeof fresh), QUIRE_EINVAL);
  c.expires = now + 1;
  snprintf(c.subject, sizeof c.subject, "two words");
  CHECK_RC(quire__token_sign(&ks, &c, fresh, sizeof fresh), QUIRE_EINVAL);

  /* Damaged key files. */
  snprintf(path2, sizeof path2, "%s/bad.key", dir);
  write_file(path2, "quire-auth-key v1 0011223344556677 zz\n");
  CHECK_RC(quire__keyset_load(path2, &again), QUIRE_EINVAL);
  write_file(path2, "");
  CHECK_RC(quire__keyset_load(path2, &again), QUIRE_EINVAL);
  FILE *f = fopen(path, "r");
  char line[256];
  CHECK(f && fgets(line, sizeof line, f));
  fclose(f);
  line[20] = line[20] == '0' ? '1' : '0'; /* the key id no longer matches */
  write_file(path2, line);
  CHECK_RC(quire__keyset_load(path2, &again), QUIRE_EINVAL);

  /* The request's volume: field 1, once, 16 bytes. */
  uint8_t body[64];
  quire_gid got;
  size_t n = 0;
  body[n++] = 0x08, body[n++] = 0x05;                             /* field 1 as a varint */
  CHECK_RC(quire__auth_request_vid(body, n, &got), QUIRE_EINVAL); /* vid must be bytes */
  n = 0;
  body[n++] = 0x10, body[n++] = 0x96, body[n++] = 0x01; /* field 2 varint 150 */
  body[n++] = 0x0a, body[n++] = 16;
  memcpy(body + n, vols[1].b, 16), n += 16;
  body[n++] = 0x1d, memset(body + n, 0, 4), n += 4; /* field 3 fixed32 */
  CHECK_OK(quire__auth_request_vid(body, n, &got));
  CHECK(memcmp(got.b, vols[1].b, 16) == 0);
  CHECK_RC(quire__auth_request_vid(body, n - 1, &got), QUIRE_EINVAL); /* truncated */
  body[n++] = 0x0a, body[n++] = 16;                                   /* a second vid */
  memcpy(body + n, vols[0].b, 16), n += 16;
  CHECK_RC(quire__auth_request_vid(body, n, &got), QUIRE_EINVAL);
  CHECK_RC(quire__auth_request_vid(body, 0, &got), QUIRE_EINVAL); /* missing */

  /* The server's check (net/auth.h) verifies a signature once per token:
   * the claims of a verified token are cached, its times checked at every
   * request; a forged token is never cached. */
  {
    struct quire_auth_opts ao = {.key_file = path, .skew_s = 1};
    quire_auth *a;
    CHECK_OK(quire__auth_open(&ao, &a));
    uint64_t wall = quire__wall_ms() / 1000;
    char hdr[QUIRE_TOKEN_TEXT_MAX + 16];
    sign(&ks, QUIRE_PERM_READ, 1, vols, wall - 5, wall + 2, text);
    snprintf(hdr, sizeof hdr, "Bearer %s", text);
    for (int i = 0; i < 100; i++) {
      CHECK_OK(quire__auth_check(a, hdr, &t));
      CHECK(t.perm == QUIRE_PERM_READ && t.nvol == 1 && memcmp(t.vols[0].b, vols[0].b, 16) == 0);
    }
    CHECK(quire__auth_signature_checks(a) == 1);
    char forged_hdr[sizeof hdr];
    snprintf(forged_hdr, sizeof forged_hdr, "%s", hdr);
    size_t fl = strlen(forged_hdr);
    forged_hdr[fl - 3] = forged_hdr[fl - 3] == 'A' ? 'B' : 'A'; /* in the signature */
    for (int i = 0; i < 10; i++) CHECK_RC(quire__auth_check(a, forged_hdr, &t), QUIRE_EUNAUTHORIZED);
    CHECK(quire__auth_signature_checks(a) == 11);
    CHECK_OK(quire__auth_check(a, hdr, &t)); /* still cached */
    CHECK(quire__auth_signature_checks(a) == 11);
    /* Past expiry + skew the cached token is refused without a new check. */
    while (quire__wall_ms() / 1000 < wall + 3) quire__sleep_ms(100);
    CHECK_RC(quire__auth_check(a, hdr, &t), QUIRE_EUNAUTHORIZED);
    CHECK(strstr(quire_errmsg(), "expired") != NULL);
    CHECK(quire__auth_signature_checks(a) == 11);
    quire__auth_close(a);
  }

  quire__keyset_wipe(&ks);
  test_rmtree(dir);
  free(dir);
  printf("token: ok\n");
  return 0;
}
