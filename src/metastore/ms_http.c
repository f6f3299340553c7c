/*
 * metastore/ms_http.c — the metastore's HTTP endpoints (docs/PROTOCOL.md):
 * POST /metastore/v1/{snapshot,pull_graft,pull_commits,commit,fork}, plus the
 * readiness check (the object store answers) and the drain hook (wake every
 * long poll) for graceful shutdown.
 */
#include <string.h>

#include "metastore/ms_int.h"
#include "net/http_server.h"
#include "proto/metastore.pb-c.h"
#include "proto/pb.h"
#include "quire/splinter.h"
#include "util/err.h"

int quire__ms_http_pull_graft(quire_metastore *ms, quire_http_req *hr, const uint8_t *req, size_t len,
                              quire_buf *out);

typedef int (*api_fn)(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out);

/* Responses are capped well above max_pull_bytes so a page always fits. */
#define RESPONSE_CAP (64u << 20)

static void run(quire_metastore *ms, quire_http_req *r, api_fn fn) {
  size_t len;
  const uint8_t *body = quire__http_req_body(r, &len);
  quire_buf out;
  quire__buf_init(&out, RESPONSE_CAP);
  int rc = fn(ms, body, len, &out);
  if (rc)
    quire__http_respond_error(r, rc, NULL);
  else
    quire__http_respond(r, 200, QUIRE_CONTENT_PROTOBUF, out.data ? (void *)out.data : "", out.len);
  quire__buf_free(&out);
}

static void h_snapshot(void *ctx, quire_http_req *r) { run(ctx, r, quire__ms_handle_snapshot); }
static void h_commit(void *ctx, quire_http_req *r) { run(ctx, r, quire__ms_handle_commit); }
static void h_pull_commits(void *ctx, quire_http_req *r) { run(ctx, r, quire__ms_handle_pull_commits); }
static void h_fork(void *ctx, quire_http_req *r) { run(ctx, r, quire__ms_handle_fork); }

static void h_pull_graft(void *ctx, quire_http_req *r) {
  quire_metastore *ms = ctx;
  size_t len;
  const uint8_t *body = quire__http_req_body(r, &len);
  quire_buf out;
  quire__buf_init(&out, RESPONSE_CAP);
  int rc = quire__ms_http_pull_graft(ms, r, body, len, &out);
  if (rc < 0)
    quire__http_respond_error(r, rc, NULL);
  else if (rc == 0)
    quire__http_respond(r, 200, QUIRE_CONTENT_PROTOBUF, out.data ? (void *)out.data : "", out.len);
  /* rc == 1: parked; the handler runs again when woken. */
  quire__buf_free(&out);
}

/* Per-volume limits (docs/SECURITY.md "Quotas"), before the commit runs: the
 * page_count the volume would have, and the page bytes its segments hold.
 * A body that does not decode is left to the handler (400). */
static int commit_limits(void *ctx, quire_http_req *r, const uint8_t *body, size_t len) {
  (void)ctx;
  uint32_t max_pages;
  uint64_t max_bytes;
  quire__auth_volume_limits(quire__http_req_auth(r), &max_pages, &max_bytes);
  if (!max_pages && !max_bytes) return 0;
  Quire__Metastore__V1__CommitRequest *m =
      quire__metastore__v1__commit_request__unpack(&quire__pb_allocator, len, body);
  if (!m) return 0;
  int rc = 0;
  if (max_pages && m->has_page_count && m->page_count > max_pages)
    rc = quire__err(QUIRE_ETOOLARGE, "the volume would have %u pages; the limit is %u (--max-volume-pages)",
                    m->page_count, max_pages);
  uint64_t bytes = 0;
  for (size_t i = 0; i < m->n_segments && rc == 0 && max_bytes; i++) {
    splinter_view_t v;
    const Quire__Common__V1__SegmentInfo *si = m->segments[i];
    if (!si->has_graft || splinter_view_open(si->graft.data, si->graft.len, &v) != 0) continue;
    bytes += splinter_view_cardinality(&v) * (uint64_t)QUIRE_PAGE_SIZE;
  }
  if (rc == 0 && max_bytes && bytes > max_bytes)
    rc = quire__err(QUIRE_ETOOLARGE,
                    "the commit writes %llu bytes of pages; the limit is %llu (--max-commit-bytes)",
                    (unsigned long long)bytes, (unsigned long long)max_bytes);
  quire__metastore__v1__commit_request__free_unpacked(m, &quire__pb_allocator);
  return rc;
}

static int ready(void *ctx) {
  quire_metastore *ms = ctx;
  quire_objstore_info info;
  int rc = quire_objstore_head(ms->o.store, "quire-ready/probe", &info);
  return rc == QUIRE_ENOTFOUND ? 0 : rc;
}

static void drain(void *ctx) { quire_metastore_drain(ctx); }

int quire_metastore_serve(quire_metastore *ms, quire_http_server *srv) {
  /* The permission table (docs/SECURITY.md): what a token must carry for
   * each endpoint, and what it must cover. A new endpoint adds its row. */
  static const struct {
    const char *path;
    quire_http_handler fn;
    unsigned perm;
    enum quire_route_scope scope;
  } routes[] = {{"/metastore/v1/snapshot", h_snapshot, QUIRE_PERM_READ, QUIRE_SCOPE_VOLUME},
                {"/metastore/v1/pull_graft", h_pull_graft, QUIRE_PERM_READ, QUIRE_SCOPE_VOLUME},
                {"/metastore/v1/pull_commits", h_pull_commits, QUIRE_PERM_READ, QUIRE_SCOPE_VOLUME},
                {"/metastore/v1/commit", h_commit, QUIRE_PERM_WRITE, QUIRE_SCOPE_VOLUME},
                {"/metastore/v1/fork", h_fork, QUIRE_PERM_ADMIN, QUIRE_SCOPE_VOLUME}};
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(routes); i++) {
    int rc = quire__http_server_route_auth(srv, "POST", routes[i].path, routes[i].perm, routes[i].scope,
                                           routes[i].fn, ms);
    if (rc) return rc;
  }
  int rc = quire__http_server_route_check(srv, "POST", "/metastore/v1/commit", commit_limits, ms);
  if (rc) return rc;
  quire__http_server_set_ready(srv, ready, ms);
  quire__http_server_set_drain(srv, drain, ms);
  return 0;
}
