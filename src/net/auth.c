/*
 * net/auth.c — token checks and per-token quotas for the HTTP server (see
 * auth.h).
 *
 * Lock: a->mu guards the bucket table, a->cache_mu the verified-token
 * cache. The key set is read-only after open.
 *
 * Verified tokens. An Ed25519 check costs ~100 µs — more than a warm page
 * read — and a client sends the same token with every request. So the
 * claims of a token whose signature held are kept in a small direct-mapped
 * table keyed by the BLAKE2b-256 of the token's text (CACHE_SLOTS entries:
 * bounded memory; a colliding token just evicts). A hit skips the signature
 * but not the time checks, which run against the cached claims at every
 * request. Keys are never reloaded while the server runs, so a cached
 * verdict stays true for the token's life.
 */
#include "net/auth.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

#define BUCKETS 1024    /* per-token quota state kept at most */
#define CACHE_SLOTS 256 /* verified tokens remembered */
static double dmin(double x, double y) { return x < y ? x : y; }
static double dmax(double x, double y) { return x > y ? x : y; }

#define HEADER_MAX (7 + QUIRE_TOKEN_TEXT_MAX + 16)

struct bucket {
  uint8_t id[16];
  int used;
  double reqs;   /* request tokens left */
  double bytes;  /* byte tokens left; negative: a debt */
  uint64_t last; /* mono ms of the last refill */
};

struct verified {
  uint8_t hash[crypto_generichash_BYTES]; /* of the token's text */
  int used;
  struct quire_token claims;
};

struct quire_auth {
  struct quire_auth_opts o;
  struct quire_keyset keys;
  char *metrics_token;
  pthread_mutex_t mu; /* guards buckets */
  struct bucket buckets[BUCKETS];
  pthread_mutex_t cache_mu; /* guards cache, signature_checks */
  struct verified cache[CACHE_SLOTS];
  uint64_t signature_checks;
};

int quire__auth_open(const struct quire_auth_opts *o, quire_auth **out) {
  *out = NULL;
  if (!o->key_file) return quire__err(QUIRE_EINVAL, "auth: no key file");
  quire_auth *a = quire__calloc(1, sizeof *a);
  if (!a) return QUIRE_ENOMEM;
  a->o = *o;
  if (!a->o.skew_s) a->o.skew_s = QUIRE_TOKEN_SKEW_S;
  if (a->o.rate_per_s > 0 && a->o.burst < 1) a->o.burst = dmax(1.0, 2 * a->o.rate_per_s);
  a->o.key_file = NULL;
  a->o.metrics_token = NULL;
  pthread_mutex_init(&a->mu, NULL);
  pthread_mutex_init(&a->cache_mu, NULL);
  int rc = quire__keyset_load(o->key_file, &a->keys);
  if (!rc && o->metrics_token && *o->metrics_token) {
    a->metrics_token = quire__strdup(o->metrics_token);
    if (!a->metrics_token) rc = QUIRE_ENOMEM;
  }
  if (rc) {
    quire__auth_close(a);
    return rc;
  }
  *out = a;
  return 0;
}

int quire__auth_open_settings(const struct quire_auth_settings *s, quire_auth **out) {
  *out = NULL;
  if (!s || !s->key_file) return 0;
  struct quire_auth_opts o = {.key_file = s->key_file,
                              .skew_s = s->skew_s,
                              .rate_per_s = s->rate_per_s,
                              .burst = s->burst,
                              .bytes_per_s = s->bytes_per_s,
                              .metrics_token = s->metrics_token,
                              .max_volume_pages = s->max_volume_pages,
                              .max_commit_bytes = s->max_commit_bytes};
  return quire__auth_open(&o, out);
}

void quire__auth_close(quire_auth *a) {
  if (!a) return;
  quire__keyset_wipe(&a->keys);
  if (a->metrics_token) {
    sodium_memzero(a->metrics_token, strlen(a->metrics_token));
    quire__free(a->metrics_token);
  }
  pthread_mutex_destroy(&a->mu);
  sodium_memzero(a->cache, sizeof a->cache);
  pthread_mutex_destroy(&a->cache_mu);
  quire__free(a);
}

void quire__auth_volume_limits(const quire_auth *a, uint32_t *max_pages, uint64_t *max_commit_bytes) {
  *max_pages = a ? a->o.max_volume_pages : 0;
  *max_commit_bytes = a ? a->o.max_commit_bytes : 0;
}

/* The token text of a "Bearer <token>" header value, or NULL. */
static const char *bearer(const char *header, size_t *len) {
  if (!header) return NULL;
  if (strncasecmp(header, "Bearer ", 7) != 0) return NULL;
  const char *t = header + 7;
  while (*t == ' ') t++;
  size_t n = strnlen(t, HEADER_MAX);
  while (n > 0 && t[n - 1] == ' ') n--;
  *len = n;
  return t;
}

int quire__auth_check(quire_auth *a, const char *header, struct quire_token *out) {
  memset(out, 0, sizeof *out);
  if (!header) return quire__err(QUIRE_EUNAUTHORIZED, "no Authorization header (want: Bearer <token>)");
  size_t len = 0;
  const char *t = bearer(header, &len);
  if (!t || len == 0) return quire__err(QUIRE_EUNAUTHORIZED, "Authorization is not 'Bearer <token>'");
  uint64_t now = quire__wall_ms() / 1000;
  uint8_t hash[crypto_generichash_BYTES];
  crypto_generichash(hash, sizeof hash, (const uint8_t *)t, len, NULL, 0);
  struct verified *slot = &a->cache[(hash[0] | (unsigned)hash[1] << 8) % CACHE_SLOTS];
  pthread_mutex_lock(&a->cache_mu);
  int hit = slot->used && sodium_memcmp(slot->hash, hash, sizeof hash) == 0;
  if (hit) *out = slot->claims;
  pthread_mutex_unlock(&a->cache_mu);
  if (hit) {
    if (now + a->o.skew_s < out->issued)
      return quire__err(QUIRE_EUNAUTHORIZED, "token: issued in the future (clock skew?)");
    if (now >= out->expires + a->o.skew_s) return quire__err(QUIRE_EUNAUTHORIZED, "token: expired");
    return 0;
  }
  int rc = quire__token_verify(&a->keys, t, len, now, a->o.skew_s, out);
  pthread_mutex_lock(&a->cache_mu);
  a->signature_checks++;
  if (!rc) {
    memcpy(slot->hash, hash, sizeof hash);
    slot->claims = *out;
    slot->used = 1;
  }
  pthread_mutex_unlock(&a->cache_mu);
  return rc;
}

uint64_t quire__auth_signature_checks(quire_auth *a) {
  pthread_mutex_lock(&a->cache_mu);
  uint64_t n = a->signature_checks;
  pthread_mutex_unlock(&a->cache_mu);
  return n;
}

int quire__auth_check_metrics(quire_auth *a, const char *header) {
  if (!a || !a->metrics_token) return 0;
  size_t len = 0, want = strlen(a->metrics_token);
  const char *t = bearer(header, &len);
  if (t && len == want && sodium_memcmp(t, a->metrics_token, want) == 0) return 0;
  struct quire_token tok;
  if (t && quire__auth_check(a, header, &tok) == 0 && tok.perm == QUIRE_PERM_ADMIN) return 0;
  return quire__err(QUIRE_EUNAUTHORIZED, "this endpoint needs the metrics token or an admin token");
}

/* The bucket of id, refilled to now; NULL when no quota applies. Under mu. */
static struct bucket *bucket_of(quire_auth *a, const uint8_t id[16], uint64_t now) {
  struct bucket *free_b = NULL, *oldest = NULL;
  for (size_t i = 0; i < BUCKETS; i++) {
    struct bucket *b = &a->buckets[i];
    if (!b->used) {
      if (!free_b) free_b = b;
      continue;
    }
    if (memcmp(b->id, id, 16) == 0) {
      double dt = (double)(now - b->last) / 1000.0;
      b->last = now;
      if (a->o.rate_per_s > 0) b->reqs = dmin(a->o.burst, b->reqs + dt * a->o.rate_per_s);
      if (a->o.bytes_per_s > 0) b->bytes = dmin(a->o.bytes_per_s, b->bytes + dt * a->o.bytes_per_s);
      return b;
    }
    if (!oldest || b->last < oldest->last) oldest = b;
  }
  struct bucket *b = free_b ? free_b : oldest;
  memcpy(b->id, id, 16);
  b->used = 1;
  b->reqs = a->o.burst;
  b->bytes = a->o.bytes_per_s;
  b->last = now;
  return b;
}

static int limited(const quire_auth *a) { return a->o.rate_per_s > 0 || a->o.bytes_per_s > 0; }

int quire__auth_admit(quire_auth *a, const struct quire_token *t, unsigned *retry_after_s) {
  *retry_after_s = 0;
  if (!limited(a) || t->perm == QUIRE_PERM_ADMIN) return 0;
  uint64_t now = quire__mono_ms();
  double wait = 0;
  pthread_mutex_lock(&a->mu);
  struct bucket *b = bucket_of(a, t->id, now);
  if (a->o.rate_per_s > 0 && b->reqs < 1) wait = (1 - b->reqs) / a->o.rate_per_s;
  if (a->o.bytes_per_s > 0 && b->bytes < 0) wait = dmax(wait, -b->bytes / a->o.bytes_per_s);
  if (wait == 0 && a->o.rate_per_s > 0) b->reqs -= 1;
  pthread_mutex_unlock(&a->mu);
  if (wait == 0) return 0;
  *retry_after_s = (unsigned)dmin(3600, wait) + 1; /* rounded up */
  return quire__err(QUIRE_EBUSY, "token %s over its quota (%.0f requests/s, %.0f bytes/s); retry in %u s",
                    t->subject[0] ? t->subject : "(no subject)", a->o.rate_per_s, a->o.bytes_per_s,
                    *retry_after_s);
}

void quire__auth_charge(quire_auth *a, const uint8_t id[16], uint64_t n) {
  if (!a || a->o.bytes_per_s <= 0 || n == 0) return;
  uint64_t now = quire__mono_ms();
  pthread_mutex_lock(&a->mu);
  struct bucket *b = bucket_of(a, id, now);
  b->bytes -= (double)n;
  pthread_mutex_unlock(&a->mu);
}

/* ---- the volume of a request ------------------------------------------------- */

static int varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (*off >= len) return -1;
    uint8_t c = p[(*off)++];
    x |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

int quire__auth_request_vid(const uint8_t *body, size_t len, quire_gid *out) {
  size_t off = 0;
  int found = 0;
  while (off < len) {
    uint64_t key, v;
    if (varint(body, len, &off, &key) != 0) return quire__err(QUIRE_EINVAL, "body is not a protobuf message");
    uint64_t field = key >> 3;
    unsigned wt = (unsigned)(key & 7);
    if (field == 0) return quire__err(QUIRE_EINVAL, "body is not a protobuf message (field 0)");
    switch (wt) {
    case 0:
      if (varint(body, len, &off, &v) != 0) return quire__err(QUIRE_EINVAL, "body: bad varint");
      break;
    case 1:
      if (len - off < 8) return quire__err(QUIRE_EINVAL, "body: truncated");
      off += 8;
      break;
    case 5:
      if (len - off < 4) return quire__err(QUIRE_EINVAL, "body: truncated");
      off += 4;
      break;
    case 2:
      if (varint(body, len, &off, &v) != 0 || v > len - off)
        return quire__err(QUIRE_EINVAL, "body: truncated");
      if (field == 1) {
        if (found) return quire__err(QUIRE_EINVAL, "body: vid given twice");
        if (v != QUIRE_GID_SIZE) return quire__err(QUIRE_EINVAL, "body: vid is not 16 bytes");
        memcpy(out->b, body + off, QUIRE_GID_SIZE);
        found = 1;
      }
      off += (size_t)v;
      break;
    default: return quire__err(QUIRE_EINVAL, "body: unsupported wire type %u", wt);
    }
    if (field == 1 && wt != 2) return quire__err(QUIRE_EINVAL, "body: vid is not bytes");
  }
  if (!found) return quire__err(QUIRE_EINVAL, "vid is missing");
  return 0;
}
