/*
 * core/token.c — access tokens (see token.h): the byte format, Ed25519
 * signing and verification (libsodium), and the key file.
 *
 * The parser works on fixed-size buffers: the text is length-checked before
 * it is decoded, every field is checked against what was decoded, and
 * nothing is allocated.
 */
#include "core/token.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/endian.h"
#include "util/err.h"
#include "util/log.h"

#define SIG_CONTEXT "quire token v1"

static const char *const perm_names[] = {"none", "read", "write", "admin"};

const char *quire__perm_name(unsigned perm) { return perm < 4 ? perm_names[perm] : "?"; }

unsigned quire__perm_parse(const char *s) {
  for (unsigned i = 1; i < 4; i++)
    if (s && strcmp(s, perm_names[i]) == 0) return i;
  return QUIRE_PERM_NONE;
}

static int bad(const char *why) { return quire__err(QUIRE_EUNAUTHORIZED, "token: %s", why); }

/* Decodes the fields of raw[0..n) into out (no signature check). */
static int parse_bytes(const uint8_t *raw, size_t n, struct quire_token *out) {
  if (n < QUIRE_TOKEN_HEAD + QUIRE_TOKEN_SIG) return bad("too short");
  out->version = raw[0];
  if (out->version != QUIRE_TOKEN_VERSION) return bad("unknown version");
  memcpy(out->kid, raw + 1, QUIRE_TOKEN_KID);
  out->perm = raw[9];
  if (out->perm < QUIRE_PERM_READ || out->perm > QUIRE_PERM_ADMIN) return bad("unknown permission");
  size_t slen = raw[10];
  out->nvol = raw[11];
  if (slen > QUIRE_TOKEN_MAX_SUBJECT) return bad("subject too long");
  if (out->nvol > QUIRE_TOKEN_MAX_VOLUMES) return bad("too many volumes");
  out->issued = ld_le64(raw + 12);
  out->expires = ld_le64(raw + 20);
  size_t body = QUIRE_TOKEN_HEAD + slen + 16u * out->nvol;
  if (n != body + QUIRE_TOKEN_SIG) return bad("length does not match its fields");
  for (size_t i = 0; i < slen; i++) {
    uint8_t c = raw[QUIRE_TOKEN_HEAD + i];
    if (c < 0x21 || c > 0x7e) return bad("subject is not printable ASCII");
    out->subject[i] = (char)c;
  }
  out->subject[slen] = '\0';
  for (size_t i = 0; i < out->nvol; i++) {
    memcpy(out->vols[i].b, raw + QUIRE_TOKEN_HEAD + slen + 16 * i, 16);
    if (out->vols[i].b[0] != QUIRE_GID_VOLUME) return bad("a scope entry is not a volume id");
  }
  memcpy(out->sig, raw + body, QUIRE_TOKEN_SIG);
  out->signed_len = body;
  crypto_generichash(out->id, sizeof out->id, out->sig, QUIRE_TOKEN_SIG, NULL, 0);
  return 0;
}

/* Decodes text into raw (QUIRE_TOKEN_BYTES_MAX bytes). */
static int decode(const char *text, size_t len, uint8_t *raw, size_t *n) {
  size_t plen = strlen(QUIRE_TOKEN_PREFIX);
  if (len > QUIRE_TOKEN_TEXT_MAX) return bad("too long");
  if (len < plen || memcmp(text, QUIRE_TOKEN_PREFIX, plen) != 0) return bad("not a quire token (qt1_...)");
  char b64[QUIRE_TOKEN_TEXT_MAX + 1];
  memcpy(b64, text + plen, len - plen);
  b64[len - plen] = '\0';
  const char *end = NULL;
  if (sodium_base642bin(raw, QUIRE_TOKEN_BYTES_MAX, b64, len - plen, NULL, n, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != b64 + (len - plen))
    return bad("not base64url");
  return 0;
}

int quire__token_parse(const char *text, size_t len, struct quire_token *out) {
  memset(out, 0, sizeof *out);
  uint8_t raw[QUIRE_TOKEN_BYTES_MAX];
  size_t n = 0;
  int rc = decode(text, len, raw, &n);
  return rc ? rc : parse_bytes(raw, n, out);
}

static void signed_message(const uint8_t *raw, size_t body, uint8_t *msg) {
  memcpy(msg, SIG_CONTEXT, sizeof SIG_CONTEXT - 1);
  memcpy(msg + sizeof SIG_CONTEXT - 1, raw, body);
}

int quire__token_verify(const struct quire_keyset *ks, const char *text, size_t len, uint64_t now,
                        unsigned skew_s, struct quire_token *out) {
  memset(out, 0, sizeof *out);
  uint8_t raw[QUIRE_TOKEN_BYTES_MAX];
  size_t n = 0;
  int rc = decode(text, len, raw, &n);
  if (!rc) rc = parse_bytes(raw, n, out);
  if (rc) return rc;
  /* Every key id is compared (few keys; no early exit on a match). */
  const struct quire_token_key *key = NULL;
  for (unsigned i = 0; i < ks->n && i < QUIRE_TOKEN_MAX_KEYS; i++)
    if (sodium_memcmp(ks->keys[i].kid, out->kid, QUIRE_TOKEN_KID) == 0 && !key) key = &ks->keys[i];
  if (!key) return bad("signed by a key this server does not know (key id)");
  uint8_t msg[sizeof SIG_CONTEXT - 1 + QUIRE_TOKEN_BYTES_MAX];
  signed_message(raw, out->signed_len, msg);
  if (sodium_init() < 0) return quire__err(QUIRE_EINTERNAL, "libsodium failed to initialise");
  if (crypto_sign_verify_detached(out->sig, msg, sizeof SIG_CONTEXT - 1 + out->signed_len, key->pk) != 0)
    return bad("bad signature");
  if (out->expires <= out->issued) return bad("expires before it was issued");
  if (now + skew_s < out->issued) return bad("issued in the future (clock skew?)");
  if (now >= out->expires + skew_s) return bad("expired");
  return 0;
}

int quire__token_sign(const struct quire_keyset *ks, struct quire_token *t, char *text, size_t cap) {
  if (ks->n == 0 || !ks->keys[0].has_sk) return quire__err(QUIRE_EINVAL, "no signing key");
  size_t slen = strlen(t->subject);
  if (slen > QUIRE_TOKEN_MAX_SUBJECT) return quire__err(QUIRE_EINVAL, "subject over 64 characters");
  for (size_t i = 0; i < slen; i++)
    if (t->subject[i] < 0x21 || t->subject[i] > 0x7e)
      return quire__err(QUIRE_EINVAL, "subject must be printable ASCII without spaces");
  if (t->nvol > QUIRE_TOKEN_MAX_VOLUMES) return quire__err(QUIRE_EINVAL, "more than 16 volumes");
  if (t->perm < QUIRE_PERM_READ || t->perm > QUIRE_PERM_ADMIN)
    return quire__err(QUIRE_EINVAL, "permission must be read, write or admin");
  if (t->expires <= t->issued) return quire__err(QUIRE_EINVAL, "expiry must follow issue");
  if (cap < QUIRE_TOKEN_TEXT_MAX + 1) return quire__err(QUIRE_EINVAL, "token buffer too small");
  for (unsigned i = 0; i < t->nvol; i++)
    if (t->vols[i].b[0] != QUIRE_GID_VOLUME) return quire__err(QUIRE_EINVAL, "scope holds a non-volume id");
  uint8_t raw[QUIRE_TOKEN_BYTES_MAX];
  t->version = QUIRE_TOKEN_VERSION;
  memcpy(t->kid, ks->keys[0].kid, QUIRE_TOKEN_KID);
  raw[0] = t->version;
  memcpy(raw + 1, t->kid, QUIRE_TOKEN_KID);
  raw[9] = t->perm;
  raw[10] = (uint8_t)slen;
  raw[11] = t->nvol;
  st_le64(raw + 12, t->issued);
  st_le64(raw + 20, t->expires);
  memcpy(raw + QUIRE_TOKEN_HEAD, t->subject, slen);
  for (unsigned i = 0; i < t->nvol; i++) memcpy(raw + QUIRE_TOKEN_HEAD + slen + 16 * i, t->vols[i].b, 16);
  size_t body = QUIRE_TOKEN_HEAD + slen + 16u * t->nvol;
  uint8_t msg[sizeof SIG_CONTEXT - 1 + QUIRE_TOKEN_BYTES_MAX];
  signed_message(raw, body, msg);
  if (sodium_init() < 0) return quire__err(QUIRE_EINTERNAL, "libsodium failed to initialise");
  crypto_sign_detached(raw + body, NULL, msg, sizeof SIG_CONTEXT - 1 + body, ks->keys[0].sk);
  memcpy(t->sig, raw + body, QUIRE_TOKEN_SIG);
  t->signed_len = body;
  crypto_generichash(t->id, sizeof t->id, t->sig, QUIRE_TOKEN_SIG, NULL, 0);
  memcpy(text, QUIRE_TOKEN_PREFIX, 4);
  sodium_bin2base64(text + 4, cap - 4, raw, body + QUIRE_TOKEN_SIG, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return 0;
}

int quire__token_covers(const struct quire_token *t, const quire_gid *vid) {
  if (t->nvol == 0) return 1;
  int hit = 0;
  for (unsigned i = 0; i < t->nvol && i < QUIRE_TOKEN_MAX_VOLUMES; i++)
    hit |= memcmp(t->vols[i].b, vid->b, 16) == 0;
  return hit;
}

/* ---- keys ---------------------------------------------------------------------- */

static void key_id(const uint8_t pk[32], uint8_t kid[QUIRE_TOKEN_KID]) {
  uint8_t h[16];
  crypto_generichash(h, sizeof h, pk, 32, NULL, 0);
  memcpy(kid, h, QUIRE_TOKEN_KID);
}

int quire__token_key_new(struct quire_token_key *k) {
  memset(k, 0, sizeof *k);
  if (sodium_init() < 0) return quire__err(QUIRE_EINTERNAL, "libsodium failed to initialise");
  crypto_sign_keypair(k->pk, k->sk);
  k->has_sk = 1;
  key_id(k->pk, k->kid);
  return 0;
}

void quire__keyset_wipe(struct quire_keyset *ks) { sodium_memzero(ks, sizeof *ks); }

static int parse_key_line(const char *path, unsigned lineno, char *line, struct quire_token_key *k) {
  char kind[32], ver[8], kid_hex[40], key_hex[140];
  memset(k, 0, sizeof *k);
  int rc = 0;
  if (sscanf(line, "%31s %7s %39s %139s", kind, ver, kid_hex, key_hex) != 4 || strcmp(ver, "v1") != 0)
    rc = quire__err(QUIRE_EINVAL, "key file %s line %u: want 'quire-auth-key v1 KID SEED'", path, lineno);
  size_t n = 0;
  uint8_t kid[QUIRE_TOKEN_KID], key[32];
  if (!rc &&
      (sodium_hex2bin(kid, sizeof kid, kid_hex, strlen(kid_hex), NULL, &n, NULL) != 0 || n != sizeof kid))
    rc = quire__err(QUIRE_EINVAL, "key file %s line %u: key id is not 16 hex digits", path, lineno);
  if (!rc &&
      (sodium_hex2bin(key, sizeof key, key_hex, strlen(key_hex), NULL, &n, NULL) != 0 || n != sizeof key))
    rc = quire__err(QUIRE_EINVAL, "key file %s line %u: key is not 64 hex digits", path, lineno);
  if (!rc && strcmp(kind, "quire-auth-key") == 0) {
    crypto_sign_seed_keypair(k->pk, k->sk, key);
    k->has_sk = 1;
  } else if (!rc && strcmp(kind, "quire-auth-pub") == 0) {
    memcpy(k->pk, key, 32);
  } else if (!rc) {
    rc = quire__err(QUIRE_EINVAL, "key file %s line %u: unknown kind '%s'", path, lineno, kind);
  }
  uint8_t want[QUIRE_TOKEN_KID];
  if (!rc) key_id(k->pk, want);
  if (!rc && memcmp(want, kid, sizeof kid) != 0)
    rc = quire__err(QUIRE_EINVAL, "key file %s line %u: key id does not match the key", path, lineno);
  if (!rc) memcpy(k->kid, kid, sizeof kid);
  sodium_memzero(key, sizeof key);
  sodium_memzero(key_hex, sizeof key_hex);
  if (rc) sodium_memzero(k, sizeof *k);
  return rc;
}

int quire__keyset_load(const char *path, struct quire_keyset *ks) {
  memset(ks, 0, sizeof *ks);
  if (sodium_init() < 0) return quire__err(QUIRE_EINTERNAL, "libsodium failed to initialise");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return quire__errno("auth key %s", path);
  char text[1024];
  struct stat st;
  ssize_t n = fstat(fd, &st) == 0 ? read(fd, text, sizeof text - 1) : -1;
  int rc = n < 0 ? quire__errno("reading auth key %s", path) : 0;
  close(fd);
  if (rc) return rc;
  if ((size_t)n == sizeof text - 1) return quire__err(QUIRE_EINVAL, "auth key %s: file too long", path);
  text[n] = '\0';
  unsigned lineno = 0;
  for (char *line = text, *next; line && !rc; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    lineno++;
    if (line[0] == '#' || line[strspn(line, " \t\r")] == '\0') continue;
    if (ks->n == QUIRE_TOKEN_MAX_KEYS)
      rc = quire__err(QUIRE_EINVAL, "auth key %s: more than %d keys", path, QUIRE_TOKEN_MAX_KEYS);
    else
      rc = parse_key_line(path, lineno, line, &ks->keys[ks->n++]);
  }
  sodium_memzero(text, sizeof text);
  if (!rc && ks->n == 0) rc = quire__err(QUIRE_EINVAL, "auth key %s: no key in it", path);
  if (rc) {
    quire__keyset_wipe(ks);
    return rc;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    QLOG_WARN("auth key %s may be read by others (mode %03o); chmod 600 it", path,
              (unsigned)(st.st_mode & 0777));
  return 0;
}

int quire__keyset_save(const char *path, const struct quire_keyset *ks) {
  char tmp[4096];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return quire__err(QUIRE_EINVAL, "path too long");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return quire__errno("creating %s", tmp);
  int rc = fchmod(fd, 0600) == 0 ? 0 : quire__errno("chmod %s", tmp);
  char line[256];
  for (unsigned i = 0; i < ks->n && !rc; i++) {
    const struct quire_token_key *k = &ks->keys[i];
    char kid[2 * QUIRE_TOKEN_KID + 1], key[65];
    sodium_bin2hex(kid, sizeof kid, k->kid, QUIRE_TOKEN_KID);
    sodium_bin2hex(key, sizeof key, k->has_sk ? k->sk : k->pk, 32); /* sk starts with the seed */
    int len = snprintf(line, sizeof line, "%s v1 %s %s\n", k->has_sk ? "quire-auth-key" : "quire-auth-pub",
                       kid, key);
    if (write(fd, line, (size_t)len) != len) rc = quire__errno("writing %s", tmp);
    sodium_memzero(key, sizeof key);
  }
  sodium_memzero(line, sizeof line);
  if (!rc && fsync(fd) != 0) rc = quire__errno("syncing %s", tmp);
  close(fd);
  if (!rc && rename(tmp, path) != 0) rc = quire__errno("renaming %s", tmp);
  if (rc) unlink(tmp);
  return rc;
}

int quire__keyset_ensure(const char *path, struct quire_keyset *ks, int *created) {
  *created = 0;
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno != ENOENT) return quire__errno("auth key %s", path);
    struct quire_keyset fresh = {0};
    int rc = quire__token_key_new(&fresh.keys[0]);
    fresh.n = 1;
    /* O_EXCL through link(): two servers starting at once keep one key. */
    char tmp[4096];
    if (!rc && (size_t)snprintf(tmp, sizeof tmp, "%s.new", path) >= sizeof tmp)
      rc = quire__err(QUIRE_EINVAL, "path too long");
    if (!rc) rc = quire__keyset_save(tmp, &fresh);
    quire__keyset_wipe(&fresh);
    if (rc) return rc;
    if (link(tmp, path) == 0)
      *created = 1;
    else if (errno != EEXIST)
      rc = quire__errno("creating auth key %s", path);
    unlink(tmp);
    if (rc) return rc;
    if (*created) QLOG_INFO("created auth key %s", path);
  }
  return quire__keyset_load(path, ks);
}
