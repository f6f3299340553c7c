/*
 * cli/cmd_metastore.c — `quire metastore`: run the metastore service on one
 * listener over one object store, until SIGINT or SIGTERM.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/serve.h"

const char quire_cmd_metastore_summary[] = "run the metastore (orders commits per volume)";

#include "metastore/service.h"
#include "util/log.h"

static struct quire_cfg_opt opts[] = {
    {"listen", "QUIRE_METASTORE_LISTEN", "metastore", "address to listen on (HOST:PORT; port 0 picks one)",
     "127.0.0.1:3001", 0, NULL, NULL},
    {"store", "QUIRE_STORE", "metastore",
     "object store URL: file:///dir, s3://bucket/prefix?endpoint=..., mem://, fault+URL", NULL, 0, NULL,
     NULL},
    {"catalog", "QUIRE_METASTORE_CATALOG", "metastore",
     "catalog file (a cache of the commit log, rebuilt from the store when missing; "
     "\":memory:\" keeps it in memory)",
     ":memory:", 0, NULL, NULL},
    {"single-instance", "QUIRE_SINGLE_INSTANCE", "metastore",
     "accept a store without conditional create (s3://): only safe when this is the one metastore", NULL, 1,
     NULL, NULL},
    {"receipt-key", "QUIRE_RECEIPT_KEY", "metastore",
     "write-receipt key file shared with the pagestores (64 hex digits); commits must then carry the "
     "receipts write_pages gave. Without it commits are not checked against written segments",
     NULL, 0, NULL, NULL},
    CLI_SERVE_HTTP_OPTS,
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void help(void) {
  printf("usage: quire metastore --store URL [options]\n"
         "\n"
         "Runs the metastore: the service that orders the commits of every volume\n"
         "(create-if-absent of volumes/{vid}/log/{lsn} in the object store) and\n"
         "answers snapshot, pull_graft (with long polls), pull_commits and commit\n"
         "(docs/PROTOCOL.md). Prints the address it listens on, then serves until\n"
         "SIGINT or SIGTERM, when it stops accepting, answers waiting long polls,\n"
         "lets in-flight requests finish (--drain-ms) and closes the catalog.\n"
         "\n"
         "Settings: flags override QUIRE_* environment variables, which override the\n"
         "INI file given by --config; built-in defaults come last.\n"
         "\n");
  quire__cfg_help(stdout, opts, NOPTS);
}

/* Fills the HTTP and metastore numbers shared with `quire server`. */
int cli_ms_settings(const char *cmd, struct quire_cfg_opt *o, size_t n, struct quire_ms_settings *s);
int cli_ms_settings(const char *cmd, struct quire_cfg_opt *o, size_t n, struct quire_ms_settings *s) {
  unsigned long long v;
  int rc;
  if ((rc = cli_serve_number(cmd, o, n, "threads", 256, &v))) return rc;
  s->threads = v ? (unsigned)v : 1;
  if ((rc = cli_serve_number(cmd, o, n, "workers", 4096, &v))) return rc;
  s->workers = v ? (unsigned)v : 1;
  if ((rc = cli_serve_number(cmd, o, n, "max-connections", 1000000, &v))) return rc;
  s->max_connections = (unsigned)v;
  if ((rc = cli_serve_number(cmd, o, n, "max-inflight", 1000000, &v))) return rc;
  s->max_inflight = (unsigned)v;
  if ((rc = cli_serve_number(cmd, o, n, "max-body", 1ull << 32, &v))) return rc;
  s->max_body = (size_t)v;
  if ((rc = cli_serve_number(cmd, o, n, "deadline-ms", 3600000, &v))) return rc;
  s->deadline_ms = (unsigned)v;
  if ((rc = cli_serve_number(cmd, o, n, "max-receiving", 1000000, &v))) return rc;
  s->max_receiving = (unsigned)v;
  if ((rc = cli_serve_number(cmd, o, n, "max-per-address", 1000000, &v))) return rc;
  s->max_per_address = v ? (unsigned)v : 1;
  if ((rc = cli_serve_number(cmd, o, n, "header-timeout-ms", 3600000, &v))) return rc;
  s->header_timeout_ms = v ? (unsigned)v : 1;
  if ((rc = cli_serve_number(cmd, o, n, "min-body-rate", 1u << 30, &v))) return rc;
  s->min_body_rate = v ? (unsigned)v : QUIRE_HTTP_NO_MIN_RATE;
  if ((rc = cli_serve_number(cmd, o, n, "poll-interval-ms", 3600000, &v))) return rc;
  s->poll_interval_ms = v ? (unsigned)v : 1;
  return 0;
}

int quire_cmd_metastore(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    help();
    return CLI_EXIT_OK;
  }
  if (quire__cfg_resolve(opts, NOPTS, argc, argv) != 0) {
    int rc = cli_usage_error("metastore", "%s", quire_errmsg());
    quire__cfg_free(opts, NOPTS);
    return rc;
  }
  int status = CLI_EXIT_OK;
  struct quire_ms_settings s = {0};
  unsigned long long drain = 0;
  s.listen = quire__cfg_get(opts, NOPTS, "listen");
  s.store_url = quire__cfg_get(opts, NOPTS, "store");
  s.catalog_path = quire__cfg_get(opts, NOPTS, "catalog");
  s.single_instance = quire__cfg_true(quire__cfg_get(opts, NOPTS, "single-instance"));
  s.receipt_key_file = quire__cfg_get(opts, NOPTS, "receipt-key");
  if (!s.store_url) {
    status = cli_usage_error("metastore", "--store URL is required");
    goto out;
  }
  if ((status = cli_ms_settings("metastore", opts, NOPTS, &s))) goto out;
  if ((status = cli_serve_auth("metastore", opts, NOPTS, NULL, &s.auth, &s.tls_cert_file, &s.tls_key_file)))
    goto out;
  if ((status = cli_serve_number("metastore", opts, NOPTS, "drain-ms", 3600000, &drain))) goto out;
  quire__signals_block();
  quire_ms_service *svc;
  int rc = quire__ms_service_open(&s, &svc);
  if (rc) {
    status = cli_fail("metastore", rc, "starting");
    goto out;
  }
  const char *colon = strrchr(s.listen, ':');
  printf("quire metastore: listening on %s://%.*s:%u (store %s, catalog %s)\n",
         s.tls_cert_file ? "https" : "http", (int)(colon - s.listen),
         s.listen, quire__ms_service_port(svc), s.store_url, s.catalog_path);
  fflush(stdout);
  int sig = quire__signals_wait();
  QLOG_INFO("metastore: signal %d: shutting down", sig);
  rc = quire__ms_service_close(svc, (unsigned)drain);
  if (rc) status = cli_fail("metastore", rc, "closing the catalog");
  printf("quire metastore: stopped\n");
out:
  quire__cfg_free(opts, NOPTS);
  return status;
}
