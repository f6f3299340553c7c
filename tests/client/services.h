/*
 * tests/client/services.h — a metastore and a pagestore running in this
 * process on loopback ports (real HTTP), over a file:// (or any) object
 * store, for the client runtime's tests. They can be stopped and started
 * again on the same ports and state (restarts during sync).
 */
#ifndef QUIRE_TESTS_CLIENT_SERVICES_H
#define QUIRE_TESTS_CLIENT_SERVICES_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/receipt.h"
#include "metastore/client.h"
#include "metastore/service.h"
#include "pagestore/service.h"
#include "test.h"
#include "client_test.h"

struct services {
  char root[1024];
  char store_url[1100];
  char receipt_key[1100]; /* the services share a write-receipt key: commits need receipts */
  char ms_url[64], ps_url[64];
  char ms_listen[64], ps_listen[64];
  quire_ms_service *ms;
  quire_ps_service *ps;
};

static inline void services_start_ps(struct services *s) {
  char cache[1100], catalog[1100];
  pathf(cache, sizeof cache, "%s/cache", s->root);
  pathf(catalog, sizeof catalog, "%s/ps.catalog", s->root);
  struct quire_ps_settings pss = {.listen = s->ps_listen};
  pss.ps.store_url = s->store_url;
  pss.ps.metastore_url = s->ms_url;
  pss.ps.catalog_path = catalog;
  pss.ps.cache_dir = cache;
  pss.ps.flush_interval_ms = 5;
  pss.receipt_key_file = s->receipt_key;
  pss.ps.cache_bytes = 256u << 20;
  CHECK_OK(quire__ps_service_open(&pss, &s->ps));
  snprintf(s->ps_url, sizeof s->ps_url, "http://127.0.0.1:%u", quire__ps_service_port(s->ps));
  snprintf(s->ps_listen, sizeof s->ps_listen, "127.0.0.1:%u", quire__ps_service_port(s->ps));
}

static inline void services_start_ms(struct services *s) {
  char catalog[1100];
  pathf(catalog, sizeof catalog, "%s/ms.catalog", s->root);
  struct quire_ms_settings mss = {.listen = s->ms_listen, .store_url = s->store_url, .catalog_path = catalog};
  mss.receipt_key_file = s->receipt_key;
  mss.poll_interval_ms = 50;
  CHECK_OK(quire__ms_service_open(&mss, &s->ms));
  snprintf(s->ms_url, sizeof s->ms_url, "http://127.0.0.1:%u", quire__ms_service_port(s->ms));
  snprintf(s->ms_listen, sizeof s->ms_listen, "127.0.0.1:%u", quire__ms_service_port(s->ms));
}

/* Starts both under root (store: root/objects unless store_url is given). */
static inline void services_start(struct services *s, const char *root, const char *store_url) {
  memset(s, 0, sizeof *s);
  pathf(s->root, sizeof s->root, "%s", root);
  if (store_url)
    pathf(s->store_url, sizeof s->store_url, "%s", store_url);
  else
    pathf(s->store_url, sizeof s->store_url, "file://%s/objects", root);
  pathf(s->receipt_key, sizeof s->receipt_key, "%s/receipt.key", root);
  uint8_t key[QUIRE_RECEIPT_KEY_SIZE];
  CHECK(mkdir(root, 0700) == 0 || errno == EEXIST);
  CHECK_OK(quire__receipt_key_ensure(s->receipt_key, key));
  snprintf(s->ms_listen, sizeof s->ms_listen, "127.0.0.1:0");
  snprintf(s->ps_listen, sizeof s->ps_listen, "127.0.0.1:0");
  services_start_ms(s);
  services_start_ps(s);
}

static inline void services_stop_ps(struct services *s) {
  quire__ps_service_close(s->ps, 2000);
  s->ps = NULL;
}

static inline void services_stop_ms(struct services *s) {
  quire__ms_service_close(s->ms, 2000);
  s->ms = NULL;
}

static inline void services_stop(struct services *s) {
  if (s->ps) services_stop_ps(s);
  if (s->ms) services_stop_ms(s);
}

static inline void client_opts(quire_client_opts *o, const char *dir, const struct services *s) {
  quire_client_opts_init(o);
  o->data_dir = dir;
  o->metastore_url = s->ms_url;
  o->pagestore_url = s->ps_url;
  o->sync_mode = QUIRE_SYNC_NORMAL;
  o->fetch_timeout_ms = 30000; /* generous: sanitizer builds on a busy machine */
  o->call_timeout_ms = 30000;
}

/* Checks the remote log of vid: lsns 1..n contiguous, no commit id twice.
 * Returns n. */
static inline quire_lsn check_remote_log(const struct services *s, const quire_gid *vid) {
  quire_msclient *ms;
  CHECK_OK(quire__msclient_open(s->ms_url, NULL, &ms));
  static quire_gid seen[8192];
  size_t nseen = 0;
  for (quire_lsn from = 1; from;) {
    struct quire_msclient_commits p;
    CHECK_OK(quire__msclient_pull_commits(ms, vid, from, 0, 0, NULL, &p));
    for (size_t i = 0; i < p.count; i++) {
      CHECK(p.snaps[i].lsn == nseen + 1);
      for (size_t k = 0; k < nseen; k++)
        CHECKF(memcmp(seen[k].b, p.snaps[i].commit_id.b, 16) != 0, "commit id at lsn %zu is also at lsn %llu",
               k + 1, (unsigned long long)p.snaps[i].lsn);
      CHECK(nseen < 8192);
      seen[nseen++] = p.snaps[i].commit_id;
    }
    from = p.next_lsn;
    quire__msclient_commits_free(&p);
  }
  quire__msclient_close(ms);
  return nseen;
}

#endif
