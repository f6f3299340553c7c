/*
 * cli/cmd_server.c — `quire server --data DIR`: everything on one machine,
 * in one process. The object store is file://DIR/objects and catalogs live
 * under DIR. Each service has its own listener (metastore on
 * --metastore-listen, pagestore on --pagestore-listen): open the metastore,
 * then the pagestore (which catches its catalog up from the metastore),
 * wait for SIGINT/SIGTERM, close them in reverse order.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/serve.h"
#include "cli/ps_opts.h"

const char quire_cmd_server_summary[] = "run every service on one machine (the embedded default)";

#include "core/receipt.h"
#include "core/token.h"
#include "util/clock.h"
#include "util/err.h"
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>
#include "gc/gc.h"
#include "metastore/service.h"
#include "util/log.h"

int cli_ms_settings(const char *cmd, struct quire_cfg_opt *o, size_t n, struct quire_ms_settings *s);

static struct quire_cfg_opt opts[] = {
    {"data", "QUIRE_DATA", "server", "data directory (objects/ and catalogs; created if missing)",
     "./quire-data", 0, NULL, NULL},
    {"metastore-listen", "QUIRE_METASTORE_LISTEN", "metastore", "metastore address (HOST:PORT)",
     "127.0.0.1:3001", 0, NULL, NULL},
    {"pagestore-listen", "QUIRE_PAGESTORE_LISTEN", "pagestore", "pagestore address (HOST:PORT)",
     "127.0.0.1:3002", 0, NULL, NULL},
    {"tls-ca", "QUIRE_TLS_CA", "server",
     "CA bundle the pagestore verifies the metastore with under --tls-cert (default: the certificate itself)",
     NULL, 0, NULL, NULL},
    {"gc-every", "QUIRE_GC_EVERY", "gc",
     "run a garbage-collection pass (checkpoints, retention, segment GC; docs/GC.md) every DURATION; 0: never",
     "1h", 0, NULL, NULL},
    {"gc-grace", "QUIRE_GC_GRACE", "gc", "GC deletes unreferenced segments only when older than this", "1h", 0,
     NULL, NULL},
    CLI_PAGESTORE_TUNING_OPTS,
    CLI_SERVE_HTTP_OPTS,
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void help(void) {
  printf("usage: quire server [--data DIR] [options]\n"
         "\n"
         "Runs quire on one machine: the object store is the directory DIR/objects\n"
         "(file://), the catalogs are DIR/metastore.catalog and DIR/pagestore.catalog,\n"
         "the pagestore's segment cache is DIR/cache, the write-receipt key both\n"
         "services share is DIR/receipt.key (created on first start), and both\n"
         "services listen on loopback.\n"
         "\n"
         "Authentication is on: the token key is DIR/auth.key and an admin token\n"
         "(every volume, one year) is written to DIR/admin.token, both created on\n"
         "first start and readable by this user only. Give clients tokens made with\n"
         "`quire token new --data DIR ...` (QUIRE_TOKEN=...). --no-auth turns it off.\n"
         "Prints where each service listens; SIGINT or SIGTERM stops it gracefully.\n"
         "\n"
         "Settings: flags override QUIRE_* environment variables, which override the\n"
         "INI file given by --config; built-in defaults come last.\n"
         "\n");
  quire__cfg_help(stdout, opts, NOPTS);
}

#define ADMIN_TTL_S (365ull * 24 * 3600)

/* Makes an admin token for every volume, valid ttl_s from now. */
static int mint_admin(const struct quire_keyset *ks, const char *subject, uint64_t ttl_s, char *text,
                      size_t cap) {
  struct quire_token t = {0};
  t.perm = QUIRE_PERM_ADMIN;
  t.issued = quire__wall_ms() / 1000;
  t.expires = t.issued + ttl_s;
  snprintf(t.subject, sizeof t.subject, "%s", subject);
  return quire__token_sign(ks, &t, text, cap);
}

/* DIR/admin.token: kept while it verifies for at least a day more, else
 * written anew (mode 0600). */
static int ensure_admin_token(const struct quire_keyset *ks, const char *path) {
  char text[QUIRE_TOKEN_TEXT_MAX + 2];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
    struct quire_token t;
    if (n > 0 && quire__token_verify(ks, text, (size_t)n, quire__wall_ms() / 1000 + 24 * 3600, 0, &t) == 0 &&
        t.perm == QUIRE_PERM_ADMIN)
      return 0;
  }
  int rc = mint_admin(ks, "admin", ADMIN_TTL_S, text, sizeof text);
  if (rc) return rc;
  size_t len = strlen(text);
  text[len++] = '\n';
  char tmp[PATH_MAX + 40];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return quire__errno("creating %s", tmp);
  if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) rc = quire__errno("writing %s", tmp);
  close(fd);
  if (!rc && rename(tmp, path) != 0) rc = quire__errno("renaming %s", tmp);
  if (rc) unlink(tmp);
  sodium_memzero(text, sizeof text);
  if (!rc) QLOG_INFO("server: wrote a new admin token to %s", path);
  return rc;
}

int quire_cmd_server(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    help();
    return CLI_EXIT_OK;
  }
  if (quire__cfg_resolve(opts, NOPTS, argc, argv) != 0) {
    int rc = cli_usage_error("server", "%s", quire_errmsg());
    quire__cfg_free(opts, NOPTS);
    return rc;
  }
  int status = CLI_EXIT_OK;
  const char *data = quire__cfg_get(opts, NOPTS, "data");
  char abs[PATH_MAX], store[PATH_MAX + 32], catalog[PATH_MAX + 32];
  char ps_catalog[PATH_MAX + 32], cache[PATH_MAX + 32], receipt_key[PATH_MAX + 32], ms_url[96];
  char auth_key[PATH_MAX + 32], admin_token[PATH_MAX + 32], internal_token[QUIRE_TOKEN_TEXT_MAX + 1] = "";
  struct quire_ms_settings s = {0};
  struct quire_ps_settings pss = {0};
  quire_ps_service *ps = NULL;
  unsigned long long drain = 0;
  uint64_t gc_every = 0, gc_grace = 0;
  quire_objstore *gc_store = NULL;
  struct gc_runner *gc = NULL;
  if (quire__gc_parse_duration(quire__cfg_get(opts, NOPTS, "gc-every"), &gc_every) != 0 ||
      quire__gc_parse_duration(quire__cfg_get(opts, NOPTS, "gc-grace"), &gc_grace) != 0) {
    status = cli_usage_error("server", "%s", quire_errmsg());
    goto out;
  }
  if (gc_every && gc_grace < 2000) {
    status = cli_usage_error("server", "--gc-grace must be at least 2s");
    goto out;
  }
  /* With GC on, a segment may wait at most half the grace period for its
   * commit (docs/GC.md). */
  if (gc_every) s.max_segment_age_ms = gc_grace / 2;
  if ((status = cli_ms_settings("server", opts, NOPTS, &s))) goto out;
  if ((status = cli_ps_settings("server", opts, NOPTS, &pss))) goto out;
  if ((status = cli_serve_number("server", opts, NOPTS, "drain-ms", 3600000, &drain))) goto out;
  if (mkdir(data, 0700) != 0 && errno != EEXIST) {
    status = cli_fail("server", -errno, data);
    goto out;
  }
  if (!realpath(data, abs)) {
    status = cli_fail("server", -errno, data);
    goto out;
  }
  snprintf(store, sizeof store, "file://%s/objects", abs);
  snprintf(catalog, sizeof catalog, "%s/metastore.catalog", abs);
  /* Both services share the write-receipt key: commits may only name
   * segments this pagestore wrote for that volume. */
  snprintf(receipt_key, sizeof receipt_key, "%s/receipt.key", abs);
  {
    uint8_t key[QUIRE_RECEIPT_KEY_SIZE];
    int krc = quire__receipt_key_ensure(receipt_key, key);
    if (krc) {
      status = cli_fail("server", krc, receipt_key);
      goto out;
    }
  }
  s.receipt_key_file = receipt_key;
  pss.receipt_key_file = receipt_key;
  snprintf(auth_key, sizeof auth_key, "%s/auth.key", abs);
  snprintf(admin_token, sizeof admin_token, "%s/admin.token", abs);
  if ((status = cli_serve_auth("server", opts, NOPTS, auth_key, &s.auth, &s.tls_cert_file, &s.tls_key_file)))
    goto out;
  pss.auth = s.auth; /* both services check the same tokens */
  pss.tls_cert_file = s.tls_cert_file;
  pss.tls_key_file = s.tls_key_file;
  if (s.auth.key_file) {
    /* The key is made on first start; the pagestore reads commits from the
     * metastore with a token of its own that never leaves this process. */
    struct quire_keyset ks;
    int created = 0;
    int krc = quire__keyset_ensure(auth_key, &ks, &created);
    if (!krc) krc = ensure_admin_token(&ks, admin_token);
    if (!krc) krc = mint_admin(&ks, "pagestore", 10 * ADMIN_TTL_S, internal_token, sizeof internal_token);
    quire__keyset_wipe(&ks);
    if (krc) {
      status = cli_fail("server", krc, auth_key);
      goto out;
    }
    pss.ps.metastore_token = internal_token;
  }
  if (s.tls_cert_file) {
    const char *ca = quire__cfg_get(opts, NOPTS, "tls-ca");
    pss.ps.metastore_ca_file = ca ? ca : s.tls_cert_file;
  }
  s.listen = quire__cfg_get(opts, NOPTS, "metastore-listen");
  s.store_url = store;
  s.catalog_path = catalog;
  quire__signals_block();
  quire_ms_service *ms;
  int rc = quire__ms_service_open(&s, &ms);
  if (rc) {
    status = cli_fail("server", rc, "starting the metastore");
    goto out;
  }
  const char *colon = strrchr(s.listen, ':');
  snprintf(ms_url, sizeof ms_url, "%s://%.*s:%u", s.tls_cert_file ? "https" : "http", (int)(colon - s.listen),
           s.listen, quire__ms_service_port(ms));
  snprintf(ps_catalog, sizeof ps_catalog, "%s/pagestore.catalog", abs);
  snprintf(cache, sizeof cache, "%s/cache", abs);
  pss.listen = quire__cfg_get(opts, NOPTS, "pagestore-listen");
  pss.ps.store_url = store;
  pss.ps.metastore_url = ms_url;
  pss.ps.catalog_path = ps_catalog;
  pss.ps.cache_dir = cache;
  rc = quire__ps_service_open(&pss, &ps);
  if (rc) {
    status = cli_fail("server", rc, "starting the pagestore");
    quire__ms_service_close(ms, 0);
    goto out;
  }
  if (gc_every) {
    struct gc_pass_opts go = {.grace_ms = gc_grace, .metrics = quire__ms_service_metrics(ms)};
    rc = quire_objstore_open(store, &gc_store);
    if (!rc) {
      go.store = gc_store;
      rc = quire__gc_runner_start(quire__ms_service_metastore(ms), &go, gc_every, &gc);
    }
    if (rc) {
      status = cli_fail("server", rc, "starting garbage collection");
      quire__ps_service_close(ps, 0);
      quire__ms_service_close(ms, 0);
      quire_objstore_close(gc_store);
      goto out;
    }
  }
  const char *pcolon = strrchr(pss.listen, ':');
  printf("quire server: data in %s\n", abs);
  printf("quire server: metastore listening on %s\n", ms_url);
  printf("quire server: pagestore listening on %s://%.*s:%u\n", pss.tls_cert_file ? "https" : "http",
         (int)(pcolon - pss.listen), pss.listen, quire__ps_service_port(ps));
  if (s.auth.key_file)
    printf("quire server: admin token in %s (export QUIRE_TOKEN=$(cat %s))\n", admin_token, admin_token);
  else
    printf("quire server: AUTHENTICATION IS OFF (--no-auth)\n");
  printf("quire server: Ctrl-C (SIGINT) or SIGTERM stops it\n");
  fflush(stdout);
  int sig = quire__signals_wait();
  QLOG_INFO("server: signal %d: shutting down", sig);
  quire__gc_runner_stop(gc);
  quire_objstore_close(gc_store);
  quire__ps_service_close(ps, (unsigned)drain);
  rc = quire__ms_service_close(ms, (unsigned)drain);
  if (rc) status = cli_fail("server", rc, "closing the metastore catalog");
  printf("quire server: stopped\n");
out:
  sodium_memzero(internal_token, sizeof internal_token);
  quire__cfg_free(opts, NOPTS);
  return status;
}
