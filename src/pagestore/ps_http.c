/*
 * pagestore/ps_http.c — POST /pagestore/v1/write_pages and read_pages
 * (docs/PROTOCOL.md), plus the pagestore's /metrics collector.
 *
 * write_pages parks its request (no server thread held) until the writer
 * reports every segment durable, then answers WritePagesResponse.
 *
 * read_pages parks and hands the request to a reader thread, which plans
 * the query (catalog catch-up and the cut) and then answers the parked
 * request itself (quire__http_req_unpark): an error status when the plan
 * fails (an unknown LSN is 404, an unreachable metastore 503), else 200
 * with a stream, into which the same thread writes length-prefixed frames
 * as segments arrive:
 *   [u32 LE length][ReadPagesFrame] ...
 * The last frame carries `missing` (the splinter of pages no segment holds)
 * or, if the read failed midway, `error`. A warm read thus costs the
 * server thread → handler worker → reader thread → server thread hops and
 * one wake-up of the connection (the stream is corked until the end, or
 * until 64 KiB wait; a read of several segments flushes after each).
 *
 * Lifetime: each request's state (wreq/rreq) is shared by the HTTP request
 * and a worker, reference counted; the HTTP side lets go when the request
 * completes (possibly cut off), the worker when it is done. A write's page
 * bytes are read in place from the body and copied into their segment by
 * quire__ps_write_submit, so nothing borrows the body once it returns.
 */
#include "net/errmap.h"
#include "pagestore/ps_int.h"
#include "proto/pagestore.pb-c.h"
#include "proto/pb.h"

#include <string.h>

#define FRAME_PAGES 256 /* pages per frame: 1 MiB of page data */

/* ---- write_pages ------------------------------------------------------------ */

struct wreq {
  pthread_mutex_t mu; /* guards r and refs */
  int refs;
  quire_http_req *r;       /* NULL once the request is gone */
  struct ps_write_req req; /* pages point into the body (copied by submit) */
  ps_write *w;
  uint64_t start_ns; /* the handler first ran (the body was in) */
};

static void wreq_unref(struct wreq *u) {
  pthread_mutex_lock(&u->mu);
  int left = --u->refs;
  pthread_mutex_unlock(&u->mu);
  if (left) return;
  quire__ps_write_free(u->w);
  quire__ps_write_req_clear(&u->req);
  pthread_mutex_destroy(&u->mu);
  quire__free(u);
}

static void wreq_gone(void *p) {
  struct wreq *u = p;
  pthread_mutex_lock(&u->mu);
  u->r = NULL;
  pthread_mutex_unlock(&u->mu);
  wreq_unref(u);
}

static void written(void *ctx, ps_write *w) {
  (void)w;
  struct wreq *u = ctx;
  pthread_mutex_lock(&u->mu);
  if (u->r) quire__http_req_wake(u->r);
  pthread_mutex_unlock(&u->mu);
  wreq_unref(u);
}

static void answer_write(quire_pagestore *ps, quire_http_req *r, struct wreq *u) {
  pthread_mutex_lock(&u->mu); /* pairs with written(): it has let go of u->mu */
  pthread_mutex_unlock(&u->mu);
  atomic_fetch_add(&ps->wt.serve_ns, quire__mono_ns() - u->start_ns);
  int rc = quire__ps_write_result(u->w);
  if (rc) {
    char msg[400];
    snprintf(msg, sizeof msg, "nothing of this request is durable: %s", quire__ps_write_error(u->w));
    quire__http_respond_error(r, rc, msg);
    return;
  }
  const quire_gid *sids;
  const splinter_t *const *grafts;
  size_t n = quire__ps_write_segments(u->w, &sids, &grafts);
  Quire__Common__V1__SegmentInfo *infos = quire__calloc(n ? n : 1, sizeof *infos);
  Quire__Common__V1__SegmentInfo **ptrs = quire__calloc(n ? n : 1, sizeof *ptrs);
  uint8_t **bytes = quire__calloc(n ? n : 1, sizeof *bytes);
  uint8_t(*receipts)[QUIRE_RECEIPT_SIZE] = quire__calloc(n ? n : 1, sizeof *receipts);
  rc = infos && ptrs && bytes && receipts ? 0 : QUIRE_ENOMEM;
  for (size_t i = 0; i < n && rc == 0; i++) {
    size_t len;
    rc = splinter_serialize_alloc(grafts[i], &bytes[i], &len);
    quire__common__v1__segment_info__init(&infos[i]);
    infos[i].has_sid = 1;
    infos[i].sid = quire__pb_gid_bytes(&sids[i]);
    infos[i].has_graft = 1;
    infos[i].graft.data = bytes[i];
    infos[i].graft.len = len;
    if (rc == 0 && ps->o.receipt_key) {
      quire__receipt_make(ps->o.receipt_key, &u->req.vid, &sids[i], bytes[i], len, receipts[i]);
      infos[i].has_receipt = 1;
      infos[i].receipt.data = receipts[i];
      infos[i].receipt.len = QUIRE_RECEIPT_SIZE;
    }
    ptrs[i] = &infos[i];
  }
  quire_buf out;
  quire__buf_init(&out, 64u << 20);
  if (rc == 0) {
    Quire__Pagestore__V1__WritePagesResponse resp = QUIRE__PAGESTORE__V1__WRITE_PAGES_RESPONSE__INIT;
    resp.n_segments = n;
    resp.segments = ptrs;
    rc = quire__pb_pack(&resp.base, &out);
  }
  if (rc)
    quire__http_respond_error(r, rc, NULL);
  else
    quire__http_respond(r, 200, QUIRE_CONTENT_PROTOBUF, out.data ? (void *)out.data : "", out.len);
  quire__buf_free(&out);
  for (size_t i = 0; bytes && i < n; i++) splinter_bytes_free(bytes[i]);
  quire__free(bytes);
  quire__free(receipts);
  quire__free(ptrs);
  quire__free(infos);
}

void quire__ps_write_req_clear(struct ps_write_req *w) {
  quire__free(w->idx);
  quire__free(w->pages);
  memset(w, 0, sizeof *w);
}

/* ---- WritePagesRequest, read in place --------------------------------------
 * protobuf-c would copy every page into a fresh allocation (for a 16 MiB
 * request, 4,080 mallocs and 16 MiB of page faults); this reader checks the
 * same wire format and points the pages into the body. Every request
 * protobuf-c decodes to a valid one it accepts with the same contents
 * (fuzz_ps_messages compares them): unknown fields of any wire type but
 * groups are skipped, a repeated optional field keeps its last value, a
 * uint32 takes the varint's low 32 bits, and a known field with the wrong
 * wire type is an error. */

static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 70; shift += 7) {
    if (*p >= end) return -1;
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1; /* more than 10 bytes */
}

/* One field: its number, wire type and, for length-delimited fields, the
 * bytes; for varints the value. -1 when malformed. */
struct wire_field {
  uint32_t num;
  unsigned type;
  uint64_t v;
  const uint8_t *data;
  size_t len;
};

static int wire_next(const uint8_t **p, const uint8_t *end, struct wire_field *f) {
  uint64_t tag;
  const uint8_t *start = *p;
  /* A tag is at most 5 bytes (protobuf-c's limit: 32 bits of number). */
  if (wire_varint(p, end, &tag) != 0 || *p - start > 5) return -1;
  f->num = (uint32_t)(tag >> 3);
  f->type = (unsigned)(tag & 7);
  switch (f->type) {
  case 0: return wire_varint(p, end, &f->v);
  case 1:
    if (end - *p < 8) return -1;
    *p += 8;
    return 0;
  case 5:
    if (end - *p < 4) return -1;
    *p += 4;
    return 0;
  case 2:
    if (wire_varint(p, end, &f->v) != 0 || f->v > (uint64_t)(end - *p)) return -1;
    f->data = *p;
    f->len = (size_t)f->v;
    *p += f->len;
    return 0;
  default: return -1; /* groups (3, 4) and 6, 7 */
  }
}

/* A PageAtIdx: whether it has an index and which, its data (NULL when absent) and length. */
static int wire_page(const uint8_t *p, size_t n, int *has_idx, uint32_t *idx, const uint8_t **data,
                     size_t *len) {
  const uint8_t *end = p + n;
  *has_idx = 0;
  *data = NULL;
  *len = 0;
  while (p < end) {
    struct wire_field f;
    if (wire_next(&p, end, &f) != 0) return -1;
    if (f.num == 1) {
      if (f.type != 0) return -1;
      *has_idx = 1;
      *idx = (uint32_t)f.v;
    } else if (f.num == 2) {
      if (f.type != 2) return -1;
      *data = f.data;
      *len = f.len;
    }
  }
  return 0;
}

int quire__ps_parse_write(const uint8_t *body, size_t len, unsigned max_pages, struct ps_write_req *out) {
  memset(out, 0, sizeof *out);
  const uint8_t *p = body, *end = body + len;
  const uint8_t *vid = NULL;
  size_t vid_len = 0, n = 0;
  /* Pass 1: well-formed, the vid, how many pages. */
  while (p < end) {
    struct wire_field f;
    if (wire_next(&p, end, &f) != 0 || ((f.num == 1 || f.num == 2) && f.type != 2))
      return quire__err(QUIRE_EINVAL, "body is not a WritePagesRequest");
    if (f.num == 1) {
      vid = f.data;
      vid_len = f.len;
    } else if (f.num == 2) {
      int has_idx;
      uint32_t idx;
      const uint8_t *data;
      size_t dlen;
      if (wire_page(f.data, f.len, &has_idx, &idx, &data, &dlen) != 0)
        return quire__err(QUIRE_EINVAL, "body is not a WritePagesRequest");
      n++;
    }
  }
  ProtobufCBinaryData vb = {vid_len, (uint8_t *)vid};
  int rc = quire__pb_gid(vid != NULL, &vb, QUIRE_GID_VOLUME, "vid", &out->vid);
  if (rc == 0 && n == 0) rc = quire__err(QUIRE_EINVAL, "no pages to write");
  if (rc == 0 && n > max_pages)
    rc = quire__err(QUIRE_ETOOLARGE, "%zu pages in one request; the limit is %u", n, max_pages);
  if (rc) return rc;
  out->idx = quire__malloc(n * sizeof *out->idx);
  out->pages = quire__malloc(n * sizeof *out->pages);
  if (!out->idx || !out->pages) {
    quire__ps_write_req_clear(out);
    return QUIRE_ENOMEM;
  }
  /* Pass 2: the pages, checked, pointing into body. */
  size_t i = 0;
  for (p = body; p < end && rc == 0;) {
    struct wire_field f;
    wire_next(&p, end, &f); /* pass 1 checked it */
    if (f.num != 2) continue;
    int has_idx;
    uint32_t idx = 0;
    const uint8_t *data;
    size_t dlen;
    wire_page(f.data, f.len, &has_idx, &idx, &data, &dlen);
    if (!has_idx || idx == 0)
      rc = quire__err(QUIRE_EINVAL, "page %zu: pageidx is missing or 0 (pages are 1-based)", i);
    else if (!data || dlen != QUIRE_PAGE_SIZE)
      rc = quire__err(QUIRE_EINVAL, "page %zu (index %u): data must be exactly %u bytes, got %zu", i, idx,
                      QUIRE_PAGE_SIZE, data ? dlen : 0);
    else {
      out->idx[i] = idx;
      out->pages[i] = data;
    }
    i++;
  }
  if (rc) {
    quire__ps_write_req_clear(out);
    return rc;
  }
  out->n = n;
  return 0;
}

static void on_write_pages(void *ctx, quire_http_req *r) {
  quire_pagestore *ps = ctx;
  if (quire__http_req_resumed(r)) {
    answer_write(ps, r, quire__http_req_user(r));
    return;
  }
  size_t len;
  const uint8_t *body = quire__http_req_body(r, &len);
  struct wreq *u = quire__calloc(1, sizeof *u);
  uint64_t t0 = quire__mono_ns();
  if (u) u->start_ns = t0;
  int rc = u ? quire__ps_parse_write(body, len, ps->o.max_write_pages, &u->req) : QUIRE_ENOMEM;
  atomic_fetch_add(&ps->wt.decode_ns, quire__mono_ns() - t0);
  if (rc) {
    quire__free(u);
    quire__http_respond_error(r, rc, NULL);
    return;
  }
  u->r = r;
  u->refs = 2;
  pthread_mutex_init(&u->mu, NULL);
  quire__http_req_set_user(r, u, wreq_gone);
  pthread_mutex_lock(&u->mu);
  rc = quire__ps_write_submit(ps, &u->req.vid, u->req.idx, u->req.pages, u->req.n, written, u, &u->w);
  if (rc == 0)
    quire__http_req_park(r);
  else
    u->refs--; /* the writer will never call back */
  pthread_mutex_unlock(&u->mu);
  if (rc) quire__http_respond_error(r, rc, NULL);
}

/* ---- read_pages ------------------------------------------------------------- */

struct rreq {
  pthread_mutex_t mu; /* guards r and refs */
  int refs;
  quire_http_req *r; /* NULL once the request is gone */
  quire_pagestore *ps;
  struct ps_read_req req; /* wanted points into req.msg */
  ps_plan *plan;
  int flush_each; /* the plan has several segments: send each as it is emitted */
  quire_http_stream *stream;
  quire_buf frame;
};

static void rreq_unref(struct rreq *u) {
  pthread_mutex_lock(&u->mu);
  int left = --u->refs;
  pthread_mutex_unlock(&u->mu);
  if (left) return;
  quire__ps_plan_free(u->plan);
  quire__ps_read_req_clear(&u->req);
  quire__buf_free(&u->frame);
  pthread_mutex_destroy(&u->mu);
  quire__free(u);
}

static void rreq_gone(void *p) {
  struct rreq *u = p;
  pthread_mutex_lock(&u->mu);
  u->r = NULL;
  pthread_mutex_unlock(&u->mu);
  rreq_unref(u);
}

/* Packs one frame and writes it, length first. */
static int write_frame(struct rreq *u, Quire__Pagestore__V1__ReadPagesFrame *f) {
  size_t n = quire__pagestore__v1__read_pages_frame__get_packed_size(f);
  quire__buf_reset(&u->frame);
  uint8_t *p;
  int rc = quire__buf_extend(&u->frame, 4 + n, &p);
  if (rc) return rc;
  st_le32(p, (uint32_t)n);
  quire__pagestore__v1__read_pages_frame__pack(f, p + 4);
  return quire__http_stream_write(u->stream, u->frame.data, u->frame.len);
}

/* Protobuf wire encoding of page frames, written in place in the stream
 * buffer (one copy of each page: from the segment into the stream). A frame
 * of k pages is a ReadPagesFrame with k PageAtIdx items:
 *   0x0a len(item) | 0x08 varint(pageidx) | 0x12 0x80 0x20 | 4096 bytes */
static size_t pb_varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, n++;
  return n;
}
static uint8_t *pb_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}
static size_t item_inner_len(quire_pageidx idx) { return 1 + pb_varint_len(idx) + 3 + QUIRE_PAGE_SIZE; }

struct frame_fill {
  const quire_pageidx *idx;
  const uint8_t *const *pages;
  size_t n;
  uint32_t body_len;
};
static void fill_frame(void *ctx, uint8_t *dst) {
  const struct frame_fill *f = ctx;
  st_le32(dst, f->body_len);
  uint8_t *p = dst + 4;
  for (size_t i = 0; i < f->n; i++) {
    *p++ = 0x0a;
    p = pb_varint(p, item_inner_len(f->idx[i]));
    *p++ = 0x08;
    p = pb_varint(p, f->idx[i]);
    *p++ = 0x12;
    p = pb_varint(p, QUIRE_PAGE_SIZE);
    memcpy(p, f->pages[i], QUIRE_PAGE_SIZE);
    p += QUIRE_PAGE_SIZE;
  }
}

static int emit_frames(void *ctx, const quire_pageidx *idx, const uint8_t *const *pages, size_t n) {
  struct rreq *u = ctx;
  for (size_t off = 0; off < n; off += FRAME_PAGES) {
    size_t k = n - off < FRAME_PAGES ? n - off : FRAME_PAGES;
    struct frame_fill f = {idx + off, pages + off, k, 0};
    size_t body = 0;
    for (size_t i = 0; i < k; i++) {
      size_t inner = item_inner_len(f.idx[i]);
      body += 1 + pb_varint_len(inner) + inner;
    }
    f.body_len = (uint32_t)body;
    int rc = quire__http_stream_write_fn(u->stream, 4 + body, fill_frame, &f);
    if (rc) return rc;
  }
  if (u->flush_each) quire__http_stream_flush(u->stream); /* the next segment may take a while */
  return 0;
}

/* Answers r for the plan outcome rc: the error status, or 200 with a
 * stream (1 returned: the caller streams the plan with stream_plan). */
static int answer(quire_http_req *r, struct rreq *u, int rc) {
  if (rc) {
    quire__http_respond_error(r, rc, NULL);
    return 0;
  }
  return quire__http_respond_stream(r, 200, "application/x-quire-frames", 4u << 20, &u->stream) == 0;
}

/* Fetches the planned segments into the answered stream, then the closing
 * frame, and ends the stream. */
static void stream_plan(struct rreq *u) {
  u->flush_each = quire__ps_plan_jobs(u->plan) > 1;
  int rc = quire__ps_plan_run(u->ps, u->plan, emit_frames, u);
  Quire__Pagestore__V1__ReadPagesFrame last = QUIRE__PAGESTORE__V1__READ_PAGES_FRAME__INIT;
  Quire__Common__V1__Error err = QUIRE__COMMON__V1__ERROR__INIT;
  uint8_t *missing = NULL;
  size_t mlen = 0;
  if (rc == 0) rc = splinter_serialize_alloc(quire__ps_plan_missing(u->plan), &missing, &mlen);
  if (rc == 0) {
    last.has_missing = 1;
    last.missing.data = missing;
    last.missing.len = mlen;
  } else if (rc != QUIRE_ECLOSED) {
    err.has_code = 1;
    err.code = quire__errmap_code(rc);
    err.message = (char *)quire_errmsg();
    last.error = &err;
  }
  int wrc = rc == QUIRE_ECLOSED ? rc : write_frame(u, &last);
  splinter_bytes_free(missing);
  quire__http_stream_end(u->stream, wrc != 0);
}

/* On a reader thread: plans the read (unless the handler did), answers the
 * parked request from here, and streams the pages. */
static void read_job(void *arg) {
  struct rreq *u = arg;
  int rc = u->plan
               ? 0
               : quire__ps_plan(u->ps, &u->req.vid, u->req.lsn, splinter_ref_view(&u->req.wanted), &u->plan);
  pthread_mutex_lock(&u->mu); /* the request cannot go away while we answer it */
  int answered = 0;
  if (u->r) {
    quire__http_req_unpark(u->r);
    answered = answer(u->r, u, rc);
  }
  pthread_mutex_unlock(&u->mu);
  if (answered) stream_plan(u);
  rreq_unref(u);
}

void quire__ps_read_req_clear(struct ps_read_req *q) {
  if (q->msg) quire__pagestore__v1__read_pages_request__free_unpacked(q->msg, &quire__pb_allocator);
  memset(q, 0, sizeof *q);
}

int quire__ps_parse_read(const uint8_t *body, size_t len, unsigned max_pages, struct ps_read_req *out) {
  memset(out, 0, sizeof *out);
  Quire__Pagestore__V1__ReadPagesRequest *msg =
      quire__pagestore__v1__read_pages_request__unpack(&quire__pb_allocator, len, body);
  if (!msg) return quire__err(QUIRE_EINVAL, "body is not a ReadPagesRequest");
  out->msg = msg;
  int rc = quire__pb_gid(msg->has_vid, &msg->vid, QUIRE_GID_VOLUME, "vid", &out->vid);
  if (rc == 0 && (!msg->has_lsn || msg->lsn == 0)) rc = quire__err(QUIRE_EINVAL, "lsn is missing or 0");
  if (rc == 0 && !msg->has_graft) rc = quire__err(QUIRE_EINVAL, "graft is missing");
  if (rc == 0 && splinter_view_open(msg->graft.data, msg->graft.len, &out->wanted) != 0)
    rc = quire__err(QUIRE_EINVAL, "graft is not a valid splinter: %s", quire_errmsg());
  if (rc == 0 && splinter_view_cardinality(&out->wanted) > max_pages)
    rc = quire__err(QUIRE_ETOOLARGE, "%llu pages wanted; the limit is %u",
                    (unsigned long long)splinter_view_cardinality(&out->wanted), max_pages);
  if (rc == 0 && splinter_view_contains(&out->wanted, 0))
    rc = quire__err(QUIRE_EINVAL, "graft holds page index 0 (pages are 1-based)");
  if (rc) {
    quire__ps_read_req_clear(out);
    return rc;
  }
  out->lsn = msg->lsn;
  return 0;
}

static void on_read_pages(void *ctx, quire_http_req *r) {
  quire_pagestore *ps = ctx;
  if (QUIRE_NEVER(quire__http_req_resumed(r))) { /* the reader answers; nothing wakes a read */
    quire__http_respond_error(r, QUIRE_EINTERNAL, "read_pages woken");
    return;
  }
  size_t len;
  const uint8_t *body = quire__http_req_body(r, &len);
  struct rreq *u = quire__calloc(1, sizeof *u);
  int rc = u ? quire__ps_parse_read(body, len, ps->o.max_read_pages, &u->req) : QUIRE_ENOMEM;
  if (rc) {
    quire__free(u);
    quire__http_respond_error(r, rc, NULL);
    return;
  }
  u->ps = ps;
  u->r = r;
  u->refs = 2; /* the request and the thread that answers it */
  quire__buf_init(&u->frame, 8u << 20);
  pthread_mutex_init(&u->mu, NULL);
  quire__http_req_set_user(r, u, rreq_gone);
  /* The warm path, on this handler thread: the catalog holds the LSN (no
   * catch-up) and every segment of the plan is in the disk cache, so the
   * read does no network I/O and is answered from here. Otherwise the
   * request parks and a reader thread does the rest. */
  quire_lsn have = 0;
  if (ms_catalog_latest(ps->catalog, &u->req.vid, &have) == 0 && have >= u->req.lsn) {
    rc = quire__ps_plan(ps, &u->req.vid, u->req.lsn, splinter_ref_view(&u->req.wanted), &u->plan);
    if (rc || quire__ps_plan_cached(ps, u->plan)) {
      if (answer(r, u, rc)) stream_plan(u);
      rreq_unref(u);
      return;
    }
  }
  pthread_mutex_lock(&u->mu);
  rc = quire__pool_try_submit(ps->readers, read_job, u);
  if (rc == 0)
    quire__http_req_park(r);
  else
    u->refs--;
  pthread_mutex_unlock(&u->mu);
  if (rc) quire__http_respond_error(r, QUIRE_EUNAVAILABLE, "pagestore overloaded: too many reads queued");
}

/* ---- metrics ------------------------------------------------------------------ */

static void collect(void *ctx, quire_metrics *m) {
  quire_pagestore *ps = ctx;
  struct ps_stats s;
  quire__ps_stats(ps, &s);
  ps_cache_stats c;
  ps__cache_stats(ps->cache, &c);
  quire__metrics_gauge(m, "quire_ps_segments_flushed", "segments built by write_pages", "",
                       (int64_t)s.segments_flushed);
  quire__metrics_gauge(m, "quire_ps_segments_uploaded", "segments durable in object storage", "",
                       (int64_t)s.segments_uploaded);
  quire__metrics_gauge(m, "quire_ps_upload_failures", "segment uploads that failed", "",
                       (int64_t)s.upload_failures);
  quire__metrics_gauge(m, "quire_ps_pages_written", "pages accepted by write_pages", "",
                       (int64_t)s.pages_written);
  quire__metrics_gauge(m, "quire_ps_pages_served", "pages sent by read_pages", "", (int64_t)s.pages_served);
  quire__metrics_gauge(m, "quire_ps_downloads", "segment fetches from object storage", "kind=\"whole\"",
                       (int64_t)s.downloads_whole);
  quire__metrics_gauge(m, "quire_ps_downloads", "segment fetches from object storage", "kind=\"partial\"",
                       (int64_t)s.downloads_partial);
  quire__metrics_gauge(m, "quire_ps_catalog_catchups", "catalog catch-ups from the metastore", "",
                       (int64_t)s.catalog_catchups);
  quire__metrics_gauge(m, "quire_ps_cache_bytes", "bytes in the segment cache", "", (int64_t)c.bytes);
  quire__metrics_gauge(m, "quire_ps_cache_budget_bytes", "segment cache budget", "", (int64_t)c.budget);
  quire__metrics_gauge(m, "quire_ps_cache_entries", "segments in the cache", "", (int64_t)c.entries);
  quire__metrics_gauge(m, "quire_ps_cache_pinned", "pinned cache entries", "", (int64_t)c.pinned);
  quire__metrics_gauge(m, "quire_ps_cache_mappings", "open cache mappings", "", (int64_t)c.mappings);
  quire__metrics_gauge(m, "quire_ps_cache_hits", "cache hits", "", (int64_t)c.hits);
  quire__metrics_gauge(m, "quire_ps_cache_misses", "cache misses", "", (int64_t)c.misses);
  quire__metrics_gauge(m, "quire_ps_cache_evictions", "cache evictions", "", (int64_t)c.evictions);
}

void quire__ps_http_detach(quire_pagestore *ps) {
  if (ps->o.metrics) quire__metrics_remove_collector(ps->o.metrics, collect, ps);
}

int quire__pagestore_routes(quire_pagestore *ps, quire_http_server *srv) {
  /* The permission table (docs/SECURITY.md); a new endpoint adds its row. */
  static const struct {
    const char *path;
    quire_http_handler fn;
    unsigned perm;
    enum quire_route_scope scope;
  } routes[] = {{"/pagestore/v1/write_pages", on_write_pages, QUIRE_PERM_WRITE, QUIRE_SCOPE_VOLUME},
                {"/pagestore/v1/read_pages", on_read_pages, QUIRE_PERM_READ, QUIRE_SCOPE_VOLUME}};
  int rc = 0;
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(routes) && rc == 0; i++)
    rc = quire__http_server_route_auth(srv, "POST", routes[i].path, routes[i].perm, routes[i].scope,
                                       routes[i].fn, ps);
  if (rc == 0 && ps->o.metrics) rc = quire__metrics_add_collector(ps->o.metrics, collect, ps);
  return rc;
}
