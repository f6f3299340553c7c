/*
 * tests/metastore/ms_test.h — helpers for the metastore tests: an in-process
 * metastore on a loopback port over a given store URL, and commits of page
 * lists through the C client.
 */
#ifndef QUIRE_TEST_MS_TEST_H
#define QUIRE_TEST_MS_TEST_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "metastore/client.h"
#include "metastore/metastore.h"
#include "quire/splinter.h"
#include "test.h"

struct ms_env {
  quire_objstore *store;
  ms_catalog *cat;
  quire_metrics *metrics;
  quire_metastore *ms;
  quire_http_server *srv;
  quire_msclient *cli;
  char url[64];
};

static inline void env_start_with(struct ms_env *e, quire_objstore *store, unsigned poll_ms) {
  memset(e, 0, sizeof *e);
  e->store = store;
  CHECK_OK(quire__catalog_mem_open(&e->cat));
  CHECK_OK(quire__metrics_create(&e->metrics));
  struct quire_metastore_opts mo = {
      .store = e->store, .catalog = e->cat, .metrics = e->metrics, .poll_interval_ms = poll_ms};
  CHECK_OK(quire_metastore_open(&mo, &e->ms));
  struct quire_http_server_opts so = {
      .listen = "127.0.0.1:0", .threads = 4, .max_body = 1 << 20, .metrics = e->metrics, .name = "metastore"};
  CHECK_OK(quire__http_server_create(&so, &e->srv));
  CHECK_OK(quire_metastore_serve(e->ms, e->srv));
  CHECK_OK(quire__http_server_start(e->srv));
  snprintf(e->url, sizeof e->url, "http://127.0.0.1:%u", quire__http_server_port(e->srv));
  struct quire_http_client_opts co = {.timeout_ms = 20000, .backoff_ms = 5, .retries = 8};
  CHECK_OK(quire__msclient_open(e->url, &co, &e->cli));
}

static inline void env_start(struct ms_env *e, const char *store_url, unsigned poll_ms) {
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(store_url, &store));
  env_start_with(e, store, poll_ms);
}

/* Stops everything; closes the store unless keep_store. */
static inline void env_stop(struct ms_env *e, int keep_store) {
  quire__msclient_close(e->cli);
  CHECK(quire__http_server_stop(e->srv, 5000) == 0);
  quire__http_server_destroy(e->srv);
  quire_metastore_close(e->ms);
  ms_catalog_close(e->cat);
  quire__metrics_destroy(e->metrics);
  if (!keep_store) quire_objstore_close(e->store);
}

/* Serialized splinter of pages[0..n) (ascending). Free with splinter_bytes_free. */
static inline void graft_of(const uint32_t *pages, size_t n, uint8_t **bytes, size_t *len) {
  splinter_t *s;
  CHECK_OK(splinter_from_sorted(pages, n, &s));
  CHECK_OK(splinter_serialize_alloc(s, bytes, len));
  splinter_free(s);
}

/* Commits one segment holding pages[0..n) at base + 1. The segment id is
 * the commit id with the segment type byte, so a retry (same commit id, same
 * pages) repeats the original request exactly. */
static inline int commit_pages(quire_msclient *cli, const quire_gid *vid, const quire_gid *client,
                               const quire_gid *commit_id, quire_lsn base, quire_pagecount page_count,
                               const uint32_t *pages, size_t n, struct quire_snapshot *snap) {
  struct quire_commit_segment seg = {0};
  uint8_t *bytes = NULL;
  size_t len = 0;
  seg.sid = *commit_id;
  seg.sid.b[0] = QUIRE_GID_SEGMENT;
  if (n) graft_of(pages, n, &bytes, &len);
  seg.graft = bytes;
  seg.graft_len = (uint32_t)len;
  int rc = quire__msclient_commit(cli, vid, client, commit_id, base, page_count, &seg, n ? 1 : 0, NULL, snap);
  splinter_bytes_free(bytes);
  return rc;
}

/* A racing client: each round it waits at the barrier with the others, then
 * commits at base `round` with a fresh commit id; exactly one racer per
 * round should win. won[] (commit ids) and won_round[] have rounds slots. */
struct racer {
  quire_msclient *cli;
  quire_gid vid, client;
  pthread_barrier_t *barrier;
  unsigned rounds, wins, conflicts, other;
  quire_gid *won;
  int *won_round;
};

static inline void *race(void *arg) {
  struct racer *r = arg;
  for (unsigned round = 0; round < r->rounds; round++) {
    quire_gid cid;
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
    uint32_t page = round + 1;
    pthread_barrier_wait(r->barrier);
    struct quire_snapshot s;
    int rc = commit_pages(r->cli, &r->vid, &r->client, &cid, round, 1 << 20, &page, 1, &s);
    if (rc == 0) {
      CHECK(s.lsn == round + 1 && quire_gid_cmp(&s.commit_id, &cid) == 0);
      r->won[round] = cid;
      r->won_round[round] = 1;
      r->wins++;
    } else if (rc == QUIRE_ECONFLICT) {
      r->conflicts++;
    } else {
      r->other++;
      fprintf(stderr, "round %u: %s: %s\n", round, quire_strerror(rc), quire_errmsg());
    }
    pthread_barrier_wait(r->barrier); /* the round is over */
  }
  return NULL;
}

#endif
