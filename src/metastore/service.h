/*
 * metastore/service.h — a running metastore: object store + catalog +
 * service + HTTP listener, opened and closed as one unit by `quire
 * metastore` and `quire server` (and by tests that run it in-process).
 *
 * `quire server` runs the metastore and (with its issue) the pagestore in one
 * process, each on its own listener; both open their service with a
 * *_service_open call, wait for SIGINT/SIGTERM, and close in reverse order.
 */
#ifndef QUIRE_METASTORE_SERVICE_H
#define QUIRE_METASTORE_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "metastore/metastore.h"
#include "net/auth.h"

struct quire_ms_settings {
  const char *listen;           /* HOST:PORT */
  const char *store_url;        /* object store URL */
  const char *catalog_path;     /* LSM file, or ":memory:" */
  int single_instance;          /* allow a store without conditional create */
  const char *receipt_key_file; /* write-receipt key shared with the pagestores; NULL: none */
  unsigned threads, workers, max_connections, max_inflight, deadline_ms;
  unsigned max_receiving, max_per_address, header_timeout_ms, min_body_rate; /* 0: defaults */
  size_t max_body;
  unsigned poll_interval_ms, catchup_inflight;
  struct quire_auth_settings auth;           /* auth.key_file NULL: no auth (logged loudly) */
  const char *tls_cert_file, *tls_key_file; /* TLS when both set */
  uint64_t max_segment_age_ms; /* quire_metastore_opts.max_segment_age_ms (0: none) */
};

typedef struct quire_ms_service quire_ms_service;

/* Opens everything and starts listening. On s3:// stores runs the
 * conditional-create probe and refuses a store that does not honour it
 * unless single_instance (QUIRE_EUNSUPPORTED, with the reason). */
int quire__ms_service_open(const struct quire_ms_settings *s, quire_ms_service **out);
uint16_t quire__ms_service_port(const quire_ms_service *svc);
quire_metastore *quire__ms_service_metastore(quire_ms_service *svc);
/* Its /metrics registry (lives as long as the service). */
quire_metrics *quire__ms_service_metrics(quire_ms_service *svc);
/* Graceful: stop accepting, answer long polls, finish in-flight requests
 * within drain_ms, close the catalog cleanly. Returns the catalog close
 * result. Accepts NULL. */
int quire__ms_service_close(quire_ms_service *svc, unsigned drain_ms);

/* Blocks SIGINT and SIGTERM in the calling thread (call before any thread is
 * created, so every thread inherits the mask) and waits for one of them. */
void quire__signals_block(void);
int quire__signals_wait(void);

#endif
