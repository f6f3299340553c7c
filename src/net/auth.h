/*
 * net/auth.h — what the HTTP server (http_server.c) asks before it runs a
 * handler: is the bearer token genuine (401), does it carry the route's
 * permission and cover the volume (403), and is its holder within the
 * quotas (429). docs/SECURITY.md describes the policy; core/token.h the
 * token itself.
 *
 * One quire_auth per service, shared by its server threads; thread-safe.
 *
 * Quotas, per token (keyed by the token's id; admin tokens are exempt, so
 * the services' own calls to each other are never throttled): a request
 * rate (token bucket: rate_per_s, burst) and a byte rate (bytes_per_s of
 * request and response bodies; a request may overdraw the bucket, and the
 * token's next requests get 429 until the debt is paid back). The table of
 * buckets has a fixed size; when it is full the least recently used bucket
 * is reused, so memory does not grow with the number of tokens presented
 * (only genuine tokens reach it).
 */
#ifndef QUIRE_NET_AUTH_H
#define QUIRE_NET_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/token.h"

typedef struct quire_auth quire_auth;

struct quire_auth_opts {
  const char *key_file;      /* auth.key (core/token.h); required */
  unsigned skew_s;           /* clock skew allowance (default QUIRE_TOKEN_SKEW_S) */
  double rate_per_s;         /* requests per second per token; 0: unlimited */
  double burst;              /* bucket size in requests (default 2 s worth, at least 1) */
  double bytes_per_s;        /* body bytes per second per token; 0: unlimited */
  const char *metrics_token; /* when set, /metrics and /ready need it (or an admin token) */
  uint32_t max_volume_pages; /* per volume: a commit may not make it larger (pages); 0: no limit */
  uint64_t max_commit_bytes; /* per commit: page bytes its segments hold; 0: no limit */
};

/* Settings a service takes (metastore/service.h, pagestore/service.h). */
struct quire_auth_settings {
  const char *key_file; /* NULL: no authentication (tests; logged loudly) */
  double rate_per_s, burst, bytes_per_s;
  const char *metrics_token;
  unsigned skew_s;
  uint32_t max_volume_pages;
  uint64_t max_commit_bytes;
};

int quire__auth_open(const struct quire_auth_opts *o, quire_auth **out);
/* From a service's settings: *out stays NULL (no auth) when key_file is
 * NULL. */
int quire__auth_open_settings(const struct quire_auth_settings *s, quire_auth **out);
void quire__auth_close(quire_auth *a); /* accepts NULL */

/* Checks an Authorization header value (NULL when absent): "Bearer <token>"
 * with a genuine, unexpired token. 0 and the claims in *out, or
 * QUIRE_EUNAUTHORIZED with the reason in quire_errmsg(). */
int quire__auth_check(quire_auth *a, const char *header, struct quire_token *out);
/* Signature verifications done so far (checks answered from the cache of
 * verified tokens are not counted). */
uint64_t quire__auth_signature_checks(quire_auth *a);

/* The request quota: 0, or QUIRE_EBUSY with *retry_after_s (>= 1) when the
 * token is over its request or byte rate. Takes one request. */
int quire__auth_admit(quire_auth *a, const struct quire_token *t, unsigned *retry_after_s);
/* Debits n body bytes to the token (request or response). */
void quire__auth_charge(quire_auth *a, const uint8_t id[16], uint64_t n);

/* The per-volume limits (0: none); all 0 for a NULL a. Commit routes
 * enforce them (metastore/ms_http.c). */
void quire__auth_volume_limits(const quire_auth *a, uint32_t *max_pages, uint64_t *max_commit_bytes);

/* For /metrics and /ready: 0 when they are open or header carries the
 * metrics token (or a genuine admin token); QUIRE_EUNAUTHORIZED otherwise. */
int quire__auth_check_metrics(quire_auth *a, const char *header);

/* The volume a request is about: field 1 (bytes, 16) of the protobuf
 * message body, which every volume request of docs/PROTOCOL.md has.
 * QUIRE_EINVAL when body is not a well-formed message with exactly one
 * such field (a second occurrence is refused, so this reading and the
 * handler's decoder cannot disagree). */
int quire__auth_request_vid(const uint8_t *body, size_t len, quire_gid *out);

#endif
