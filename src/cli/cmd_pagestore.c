/*
 * cli/cmd_pagestore.c — `quire pagestore`: run the pagestore service on one
 * listener, until SIGINT or SIGTERM.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ps_opts.h"
#include "metastore/service.h"
#include "util/log.h"

const char quire_cmd_pagestore_summary[] = "run the pagestore (packs pages into segments, serves reads)";

static struct quire_cfg_opt opts[] = {
    {"listen", "QUIRE_PAGESTORE_LISTEN", "pagestore", "address to listen on (HOST:PORT; port 0 picks one)",
     "127.0.0.1:3002", 0, NULL, NULL},
    {"store", "QUIRE_STORE", "pagestore", "object store URL (file:///dir, s3://..., mem://, fault+URL)", NULL,
     0, NULL, NULL},
    {"metastore", "QUIRE_METASTORE_URL", "pagestore", "metastore URL the catalog catches up from",
     "http://127.0.0.1:3001", 0, NULL, NULL},
    {"cache", "QUIRE_PAGESTORE_CACHE", "pagestore", "segment cache directory (resumed at start)", NULL, 0,
     NULL, NULL},
    {"catalog", "QUIRE_PAGESTORE_CATALOG", "pagestore",
     "catalog file (rebuilt from the metastore when missing; \":memory:\" keeps it in memory)", ":memory:", 0,
     NULL, NULL},
    {"metastore-token", "QUIRE_METASTORE_TOKEN", "pagestore",
     "bearer token for the metastore (read on every volume: quire token new --perm read)", NULL, 0, NULL, NULL},
    {"metastore-ca", "QUIRE_METASTORE_CA", "pagestore",
     "CA bundle (PEM) that verifies an https:// metastore; default: the system CAs", NULL, 0, NULL, NULL},
    {"receipt-key", "QUIRE_RECEIPT_KEY", "pagestore",
     "write-receipt key file shared with the metastore (64 hex digits): write_pages answers carry a "
     "receipt per segment",
     NULL, 0, NULL, NULL},
    CLI_PAGESTORE_TUNING_OPTS,
    CLI_SERVE_HTTP_OPTS,
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void help(void) {
  printf("usage: quire pagestore --store URL --cache DIR [options]\n"
         "\n"
         "Runs the pagestore: write_pages packs pages into segments and answers once\n"
         "they are durable in the object store; read_pages serves the pages of a\n"
         "volume as of an LSN, cutting the wanted set against the volume's segments\n"
         "newest first (docs/PROTOCOL.md). Prints the address it listens on, then\n"
         "serves until SIGINT or SIGTERM.\n"
         "\n"
         "Settings: flags override QUIRE_* environment variables, which override the\n"
         "INI file given by --config; built-in defaults come last.\n"
         "\n");
  quire__cfg_help(stdout, opts, NOPTS);
}

int cli_ps_settings(const char *cmd, struct quire_cfg_opt *o, size_t n, struct quire_ps_settings *s) {
  static const struct {
    const char *name;
    unsigned long long max;
  } nums[] = {{"threads", 256},
              {"workers", 4096},
              {"max-connections", 1000000},
              {"max-inflight", 1000000},
              {"max-body", 1ull << 32},
              {"deadline-ms", 3600000},
              {"cache-bytes", 1ull << 50},
              {"flush-ms", 60000},
              {"segment-bytes", 1ull << 30},
              {"uploads", 256},
              {"downloads", 256},
              {"partial-read-percent", 100},
              {"max-receiving", 1000000},
              {"max-per-address", 1000000},
              {"header-timeout-ms", 3600000},
              {"min-body-rate", 1u << 30}};
  unsigned long long v[sizeof nums / sizeof nums[0]];
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    int rc = cli_serve_number(cmd, o, n, nums[i].name, nums[i].max, &v[i]);
    if (rc) return rc;
  }
  s->threads = v[0] ? (unsigned)v[0] : 1;
  s->workers = v[1] ? (unsigned)v[1] : 1;
  s->max_connections = (unsigned)v[2];
  s->max_inflight = (unsigned)v[3];
  /* The default body cap of the other services is too small for 4096 pages. */
  s->max_body = strcmp(quire__cfg_get(o, n, "max-body"), "16m") == 0 ? 0 : (size_t)v[4];
  s->deadline_ms = (unsigned)v[5];
  s->ps.cache_bytes = v[6];
  s->ps.flush_interval_ms = v[7] ? (unsigned)v[7] : 1;
  s->ps.segment_bytes = v[8];
  s->ps.upload_concurrency = (unsigned)v[9];
  s->ps.download_concurrency = (unsigned)v[10];
  s->ps.partial_read_percent = (unsigned)v[11];
  s->ps.no_partial_reads = v[11] == 0;
  s->max_receiving = (unsigned)v[12];
  s->max_per_address = v[13] ? (unsigned)v[13] : 1;
  s->header_timeout_ms = v[14] ? (unsigned)v[14] : 1;
  s->min_body_rate = v[15] ? (unsigned)v[15] : QUIRE_HTTP_NO_MIN_RATE;
  return 0;
}

int quire_cmd_pagestore(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    help();
    return CLI_EXIT_OK;
  }
  if (quire__cfg_resolve(opts, NOPTS, argc, argv) != 0) {
    int rc = cli_usage_error("pagestore", "%s", quire_errmsg());
    quire__cfg_free(opts, NOPTS);
    return rc;
  }
  int status = CLI_EXIT_OK;
  struct quire_ps_settings s = {0};
  unsigned long long drain = 0;
  if ((status = cli_ps_settings("pagestore", opts, NOPTS, &s))) goto out;
  if ((status = cli_serve_auth("pagestore", opts, NOPTS, NULL, &s.auth, &s.tls_cert_file, &s.tls_key_file)))
    goto out;
  s.ps.metastore_token = quire__cfg_get(opts, NOPTS, "metastore-token");
  s.ps.metastore_ca_file = quire__cfg_get(opts, NOPTS, "metastore-ca");
  if ((status = cli_serve_number("pagestore", opts, NOPTS, "drain-ms", 3600000, &drain))) goto out;
  s.listen = quire__cfg_get(opts, NOPTS, "listen");
  s.ps.store_url = quire__cfg_get(opts, NOPTS, "store");
  s.ps.metastore_url = quire__cfg_get(opts, NOPTS, "metastore");
  s.ps.cache_dir = quire__cfg_get(opts, NOPTS, "cache");
  s.ps.catalog_path = quire__cfg_get(opts, NOPTS, "catalog");
  s.receipt_key_file = quire__cfg_get(opts, NOPTS, "receipt-key");
  if (!s.ps.store_url) {
    status = cli_usage_error("pagestore", "--store is required");
    goto out;
  }
  if (!s.ps.cache_dir) {
    status = cli_usage_error("pagestore", "--cache is required");
    goto out;
  }
  quire__signals_block();
  quire_ps_service *ps;
  int rc = quire__ps_service_open(&s, &ps);
  if (rc) {
    status = cli_fail("pagestore", rc, "starting the pagestore");
    goto out;
  }
  const char *colon = strrchr(s.listen, ':');
  printf("quire pagestore: listening on %s://%.*s:%u\n", s.tls_cert_file ? "https" : "http",
         colon ? (int)(colon - s.listen) : 0, s.listen,
         quire__ps_service_port(ps));
  fflush(stdout);
  int sig = quire__signals_wait();
  QLOG_INFO("pagestore: signal %d: shutting down", sig);
  quire__ps_service_close(ps, (unsigned)drain);
  printf("quire pagestore: stopped\n");
out:
  quire__cfg_free(opts, NOPTS);
  return status;
}
