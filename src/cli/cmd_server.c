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
         "Prints where each service listens; SIGINT or SIGTERM stops it gracefully.\n"
         "\n"
         "Settings: flags override QUIRE_* environment variables, which override the\n"
         "INI file given by --config; built-in defaults come last.\n"
         "\n");
  quire__cfg_help(stdout, opts, NOPTS);
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
  if (mkdir(data, 0755) != 0 && errno != EEXIST) {
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
  snprintf(ms_url, sizeof ms_url, "http://%.*s:%u", (int)(colon - s.listen), s.listen,
           quire__ms_service_port(ms));
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
  printf("quire server: pagestore listening on http://%.*s:%u\n", (int)(pcolon - pss.listen), pss.listen,
         quire__ps_service_port(ps));
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
  quire__cfg_free(opts, NOPTS);
  return status;
}
