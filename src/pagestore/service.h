/*
 * pagestore/service.h — a running pagestore: the service plus its HTTP
 * listener, opened and closed as one unit by `quire pagestore`, `quire
 * server` and in-process tests.
 */
#ifndef QUIRE_PAGESTORE_SERVICE_H
#define QUIRE_PAGESTORE_SERVICE_H

#include "net/auth.h"
#include "pagestore/pagestore.h"

struct quire_ps_settings {
  const char *listen;             /* HOST:PORT (port 0: any free port) */
  struct quire_pagestore_opts ps; /* metrics is filled in by the service */
  unsigned threads, workers, max_connections, max_inflight, deadline_ms;
  unsigned max_receiving, max_per_address, header_timeout_ms, min_body_rate; /* 0: defaults */
  size_t max_body;              /* default: enough for max_write_pages pages */
  const char *receipt_key_file; /* write-receipt key shared with the metastore; NULL: none */
  struct quire_auth_settings auth;           /* auth.key_file NULL: no auth (logged loudly) */
  const char *tls_cert_file, *tls_key_file; /* TLS when both set */
};

typedef struct quire_ps_service quire_ps_service;

int quire__ps_service_open(const struct quire_ps_settings *s, quire_ps_service **out);
uint16_t quire__ps_service_port(const quire_ps_service *svc);
quire_pagestore *quire__ps_service_pagestore(quire_ps_service *svc);
/* Graceful: stop accepting, finish in-flight requests within drain_ms, then
 * flush and upload what is open and close. Accepts NULL. */
void quire__ps_service_close(quire_ps_service *svc, unsigned drain_ms);

#endif
