/* pagestore/service.c — see service.h. */
#include "pagestore/service.h"
#include "pagestore/ps_int.h"

struct quire_ps_service {
  quire_metrics *metrics;
  quire_pagestore *ps;
  quire_http_server *srv;
  quire_auth *auth;
};

static int ready(void *ctx) { return quire__pagestore_ready(ctx); }

int quire__ps_service_open(const struct quire_ps_settings *s, quire_ps_service **out) {
  *out = NULL;
  quire_ps_service *svc = quire__calloc(1, sizeof *svc);
  if (!svc) return QUIRE_ENOMEM;
  int rc = quire__metrics_create(&svc->metrics);
  struct quire_pagestore_opts po = s->ps;
  po.metrics = svc->metrics;
  uint8_t key[QUIRE_RECEIPT_KEY_SIZE];
  if (rc == 0 && s->receipt_key_file) {
    rc = quire__receipt_key_load(s->receipt_key_file, key);
    po.receipt_key = key;
  }
  if (rc == 0) rc = quire__auth_open_settings(&s->auth, &svc->auth);
  if (rc == 0) rc = quire__pagestore_open(&po, &svc->ps);
  if (rc) goto fail;
  size_t max_body = s->max_body;
  if (!max_body) max_body = (size_t)svc->ps->o.max_write_pages * (QUIRE_PAGE_SIZE + 16) + 4096;
  struct quire_http_server_opts so = {.listen = s->listen,
                                      .threads = s->threads,
                                      .workers = s->workers,
                                      .max_connections = s->max_connections,
                                      .max_inflight = s->max_inflight,
                                      .max_receiving = s->max_receiving,
                                      .max_per_address = s->max_per_address,
                                      .header_timeout_ms = s->header_timeout_ms,
                                      .min_body_rate = s->min_body_rate,
                                      .max_body = max_body,
                                      .deadline_ms = s->deadline_ms,
                                      .metrics = svc->metrics,
                                      .name = "pagestore",
                                      .auth = svc->auth,
                                      .tls_cert_file = s->tls_cert_file,
                                      .tls_key_file = s->tls_key_file};
  rc = quire__http_server_create(&so, &svc->srv);
  if (rc == 0) {
    quire__http_server_set_ready(svc->srv, ready, svc->ps);
    rc = quire__pagestore_routes(svc->ps, svc->srv);
  }
  if (rc == 0) rc = quire__http_server_start(svc->srv);
  if (rc) goto fail;
  *out = svc;
  return 0;
fail:
  quire__ps_service_close(svc, 0);
  return rc;
}

uint16_t quire__ps_service_port(const quire_ps_service *svc) { return quire__http_server_port(svc->srv); }
quire_pagestore *quire__ps_service_pagestore(quire_ps_service *svc) { return svc->ps; }

void quire__ps_service_close(quire_ps_service *svc, unsigned drain_ms) {
  if (!svc) return;
  if (svc->srv) quire__http_server_stop(svc->srv, drain_ms);
  quire__pagestore_close(svc->ps); /* flushes and uploads open segments first */
  quire__http_server_destroy(svc->srv);
  quire__metrics_destroy(svc->metrics);
  quire__auth_close(svc->auth);
  quire__free(svc);
}
