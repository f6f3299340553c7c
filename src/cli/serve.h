/*
 * cli/serve.h — what `quire metastore` and `quire server` share: the HTTP
 * settings every service takes, and turning resolved settings into numbers.
 */
#ifndef QUIRE_CLI_SERVE_H
#define QUIRE_CLI_SERVE_H

#include "net/config.h"

/* The rows every service command appends to its option table. */
#define CLI_SERVE_HTTP_OPTS                                                                                  \
  {"threads", "QUIRE_HTTP_THREADS", "http", "server threads (each with its own epoll loop)", "4", 0, NULL,   \
   NULL},                                                                                                    \
      {"workers", "QUIRE_HTTP_WORKERS",                                                                      \
       "http",    "threads running request handlers (a handler waiting on the object store holds one)",      \
       "64",      0,                                                                                         \
       NULL,      NULL},                                                                                     \
      {"max-connections",                                                                                    \
       "QUIRE_HTTP_MAX_CONNECTIONS",                                                                         \
       "http",                                                                                               \
       "open connections at most; more are refused",                                                         \
       "1024",                                                                                               \
       0,                                                                                                    \
       NULL,                                                                                                 \
       NULL},                                                                                                \
      {"max-inflight", "QUIRE_HTTP_MAX_INFLIGHT",                                                            \
       "http",         "requests handled at once; more get 503 with Retry-After",                            \
       "256",          0,                                                                                    \
       NULL,           NULL},                                                                                \
      {"max-body", "QUIRE_HTTP_MAX_BODY",                                                                    \
       "http",     "request body cap (k/m/g suffixes); more is 413",                                         \
       "16m",      0,                                                                                        \
       NULL,       NULL},                                                                                    \
      {"deadline-ms", "QUIRE_HTTP_DEADLINE_MS",                                                              \
       "http",        "per-request deadline: a body not complete this long after its headers gets 408",      \
       "30000",       0,                                                                                     \
       NULL,          NULL},                                                                                 \
      {"max-receiving",                                                                                      \
       "QUIRE_HTTP_MAX_RECEIVING",                                                                           \
       "http",                                                                                               \
       "requests receiving their bodies at once (0: as many as --max-inflight); more get 503",               \
       "0",                                                                                                  \
       0,                                                                                                    \
       NULL,                                                                                                 \
       NULL},                                                                                                \
      {"max-per-address",                                                                                    \
       "QUIRE_HTTP_MAX_PER_ADDRESS",                                                                         \
       "http",                                                                                               \
       "open connections from one client address; more are closed at accept",                                \
       "128",                                                                                                \
       0,                                                                                                    \
       NULL,                                                                                                 \
       NULL},                                                                                                \
      {"header-timeout-ms",                                                                                  \
       "QUIRE_HTTP_HEADER_TIMEOUT_MS",                                                                       \
       "http",                                                                                               \
       "a request's headers must be complete this long after its first byte (else 408 and close)",           \
       "10000",                                                                                              \
       0,                                                                                                    \
       NULL,                                                                                                 \
       NULL},                                                                                                \
      {"min-body-rate",                                                                                      \
       "QUIRE_HTTP_MIN_BODY_RATE",                                                                           \
       "http",                                                                                               \
       "bytes/s a request body must keep up after its first 2 s (else 408 and close); 0: no minimum",        \
       "1024",                                                                                               \
       0,                                                                                                    \
       NULL,                                                                                                 \
       NULL},                                                                                                \
      {"drain-ms", "QUIRE_HTTP_DRAIN_MS",                                                                    \
       "http",     "on SIGINT/SIGTERM, how long in-flight requests may take to finish",                      \
       "10000",    0,                                                                                        \
       NULL,       NULL},                                                                                    \
      {"poll-interval-ms",                                                                                   \
       "QUIRE_METASTORE_POLL_MS",                                                                            \
       "metastore",                                                                                          \
       "long polls: one object-store GET per volume per interval",                                           \
       "500",                                                                                                \
       0,                                                                                                    \
       NULL,                                                                                                 \
       NULL},                                                                                                \
      CLI_SERVE_AUTH_OPTS,                                                                                   \
  {                                                                                                          \
    "config", "QUIRE_CONFIG", "", "INI file with [metastore], [http] and [server] settings", NULL, 0, NULL,  \
        NULL                                                                                                 \
  }

/* Authentication, quotas and TLS (docs/SECURITY.md). */
#define CLI_SERVE_AUTH_OPTS                                                                                  \
  {"no-auth", "QUIRE_NO_AUTH", "auth",                                                                       \
   "serve without authentication: anyone who reaches the port can read and write every volume (tests only)", \
   NULL, 1, NULL, NULL},                                                                                     \
      {"auth-key", "QUIRE_AUTH_KEY", "auth",                                                                 \
       "token key file (quire token keygen; `quire server` makes DATA/auth.key): bearer tokens are checked "  \
       "against it",                                                                                         \
       NULL, 0, NULL, NULL},                                                                                 \
      {"token-rate", "QUIRE_TOKEN_RATE", "auth",                                                             \
       "requests per second per token (admin tokens exempt); more get 429 with Retry-After; 0: unlimited",   \
       "1000", 0, NULL, NULL},                                                                               \
      {"token-burst", "QUIRE_TOKEN_BURST", "auth", "requests a token may send at once (0: 2 s worth)", "0",  \
       0, NULL, NULL},                                                                                       \
      {"token-bytes-rate", "QUIRE_TOKEN_BYTES_RATE", "auth",                                                 \
       "body bytes per second per token, both ways (k/m/g; admin tokens exempt); 0: unlimited", "256m", 0,   \
       NULL, NULL},                                                                                          \
      {"max-volume-pages", "QUIRE_MAX_VOLUME_PAGES", "auth",                                                 \
       "per volume: a commit may not make a volume larger than this many pages (413); 0: no limit", "0", 0,  \
       NULL, NULL},                                                                                          \
      {"max-commit-bytes", "QUIRE_MAX_COMMIT_BYTES", "auth",                                                 \
       "per commit: bytes of pages its segments may hold (k/m/g; 413 past it); 0: no limit", "1g", 0, NULL,  \
       NULL},                                                                                                \
      {"metrics-token", "QUIRE_METRICS_TOKEN", "auth",                                                       \
       "when set, /metrics and /ready need 'Authorization: Bearer <this>' (or an admin token)", NULL, 0,     \
       NULL, NULL},                                                                                          \
      {"tls-cert", "QUIRE_TLS_CERT", "auth", "PEM certificate (chain): serve HTTPS only", NULL, 0, NULL,     \
       NULL},                                                                                                \
  {                                                                                                          \
    "tls-key", "QUIRE_TLS_KEY", "auth", "PEM private key of --tls-cert", NULL, 0, NULL, NULL                 \
  }

struct quire_auth_settings;
/* Fills auth settings and the TLS files from resolved opts. key_file is
 * --auth-key, or default_key when that is unset; with neither (and no
 * --no-auth) it is a usage error: auth is on by default. Returns 0 or 2 (a
 * usage error was printed). */
int cli_serve_auth(const char *cmd, const struct quire_cfg_opt *opts, size_t n, const char *default_key,
                   struct quire_auth_settings *a, const char **tls_cert, const char **tls_key);

/* Parses option name as an unsigned number (k/m/g suffixes) into *out;
 * returns 2 (usage) after printing an error for a bad value. */
int cli_serve_number(const char *cmd, const struct quire_cfg_opt *opts, size_t n, const char *name,
                     unsigned long long max, unsigned long long *out);

#endif
