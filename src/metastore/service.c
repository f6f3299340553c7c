/*
 * metastore/service.c — open and close a whole metastore (see service.h).
 */
#include "metastore/service.h"

#include "core/receipt.h"

#include <signal.h>
#include <string.h>

#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

struct quire_ms_service {
  quire_objstore *store;
  ms_catalog *catalog;
  quire_metrics *metrics;
  quire_metastore *ms;
  quire_http_server *srv;
  quire_auth *auth;
};

static int is_s3(const char *url) {
  return strncmp(url, "s3://", 5) == 0 || (strncmp(url, "fault+", 6) == 0 && is_s3(url + 6));
}

int quire__ms_service_open(const struct quire_ms_settings *s, quire_ms_service **out) {
  *out = NULL;
  quire_ms_service *svc = quire__calloc(1, sizeof *svc);
  if (!svc) return QUIRE_ENOMEM;
  int rc = quire_objstore_open(s->store_url, &svc->store);
  if (rc) {
    quire__err(rc, "opening store %s: %s", s->store_url, quire_errmsg());
    goto fail;
  }
  if (is_s3(s->store_url)) {
    int conditional = 0;
    rc = quire_objstore_probe(svc->store, &conditional);
    if (rc) {
      quire__err(rc, "probing store %s: %s", s->store_url, quire_errmsg());
      goto fail;
    }
    if (!conditional && !s->single_instance) {
      rc = quire__err(QUIRE_EUNSUPPORTED,
                      "store %s does not honour conditional create (If-None-Match: *), so two "
                      "metastores could both write the same LSN; run exactly one metastore and "
                      "start it with --single-instance to accept that",
                      s->store_url);
      goto fail;
    }
    if (!conditional)
      QLOG_WARN("metastore: store ignores conditional create; safe only as the single instance");
  }
  rc = quire__catalog_open(s->catalog_path, &svc->catalog);
  if (rc) {
    quire__err(rc, "opening catalog %s: %s", s->catalog_path ? s->catalog_path : ":memory:", quire_errmsg());
    goto fail;
  }
  rc = quire__metrics_create(&svc->metrics);
  if (!rc) rc = quire__auth_open_settings(&s->auth, &svc->auth);
  if (rc) goto fail;
  uint8_t key[QUIRE_RECEIPT_KEY_SIZE];
  if (s->receipt_key_file) {
    rc = quire__receipt_key_load(s->receipt_key_file, key);
    if (rc) goto fail;
  } else {
    QLOG_WARN("metastore: no receipt key: commits are not checked against the segments pagestores wrote "
              "(--receipt-key; docs/OPERATIONS.md)");
  }
  struct quire_metastore_opts mo = {.receipt_key = s->receipt_key_file ? key : NULL,
                                    .max_segment_age_ms = s->max_segment_age_ms,
                                    .store = svc->store,
                                    .catalog = svc->catalog,
                                    .metrics = svc->metrics,
                                    .poll_interval_ms = s->poll_interval_ms,
                                    .catchup_inflight = s->catchup_inflight};
  rc = quire_metastore_open(&mo, &svc->ms);
  if (rc) goto fail;
  struct quire_http_server_opts so = {.listen = s->listen,
                                      .threads = s->threads,
                                      .workers = s->workers,
                                      .max_connections = s->max_connections,
                                      .max_inflight = s->max_inflight,
                                      .max_receiving = s->max_receiving,
                                      .max_per_address = s->max_per_address,
                                      .header_timeout_ms = s->header_timeout_ms,
                                      .min_body_rate = s->min_body_rate,
                                      .max_body = s->max_body,
                                      .deadline_ms = s->deadline_ms,
                                      .metrics = svc->metrics,
                                      .name = "metastore",
                                      .auth = svc->auth,
                                      .tls_cert_file = s->tls_cert_file,
                                      .tls_key_file = s->tls_key_file};
  rc = quire__http_server_create(&so, &svc->srv);
  if (!rc) rc = quire_metastore_serve(svc->ms, svc->srv);
  if (!rc) rc = quire__http_server_start(svc->srv);
  if (rc) goto fail;
  *out = svc;
  return 0;
fail:
  quire__ms_service_close(svc, 0);
  return rc;
}

uint16_t quire__ms_service_port(const quire_ms_service *svc) { return quire__http_server_port(svc->srv); }

quire_metastore *quire__ms_service_metastore(quire_ms_service *svc) { return svc->ms; }
quire_metrics *quire__ms_service_metrics(quire_ms_service *svc) { return svc->metrics; }

int quire__ms_service_close(quire_ms_service *svc, unsigned drain_ms) {
  if (!svc) return 0;
  if (svc->srv) {
    unsigned left = quire__http_server_stop(svc->srv, drain_ms);
    if (left) QLOG_WARN("metastore: %u requests cut off at shutdown", left);
  }
  quire__http_server_destroy(svc->srv);
  quire_metastore_close(svc->ms);
  int rc = ms_catalog_close(svc->catalog);
  quire__metrics_destroy(svc->metrics);
  quire__auth_close(svc->auth);
  quire_objstore_close(svc->store);
  quire__free(svc);
  return rc;
}

void quire__signals_block(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
}

int quire__signals_wait(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}
