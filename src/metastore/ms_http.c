/*
 * metastore/ms_http.c — the metastore's HTTP endpoints (docs/PROTOCOL.md):
 * POST /metastore/v1/{snapshot,pull_graft,pull_commits,commit,fork}, plus the
 * readiness check (the object store answers) and the drain hook (wake every
 * long poll) for graceful shutdown.
 */
#include <string.h>

#include "metastore/ms_int.h"
#include "net/http_server.h"
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

static int ready(void *ctx) {
  quire_metastore *ms = ctx;
  quire_objstore_info info;
  int rc = quire_objstore_head(ms->o.store, "quire-ready/probe", &info);
  return rc == QUIRE_ENOTFOUND ? 0 : rc;
}

static void drain(void *ctx) { quire_metastore_drain(ctx); }

int quire_metastore_serve(quire_metastore *ms, quire_http_server *srv) {
  static const struct {
    const char *path;
    quire_http_handler fn;
  } routes[] = {{"/metastore/v1/snapshot", h_snapshot},
                {"/metastore/v1/pull_graft", h_pull_graft},
                {"/metastore/v1/pull_commits", h_pull_commits},
                {"/metastore/v1/commit", h_commit},
                {"/metastore/v1/fork", h_fork}};
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(routes); i++) {
    int rc = quire__http_server_route(srv, "POST", routes[i].path, routes[i].fn, ms);
    if (rc) return rc;
  }
  quire__http_server_set_ready(srv, ready, ms);
  quire__http_server_set_drain(srv, drain, ms);
  return 0;
}
