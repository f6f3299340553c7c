/*
 * read_pages as a stream, against a loopback stub pagestore that sends
 * frames when the test says so: the first page reaches the caller before
 * the server has sent the closing frame; a cancel or a caller's stop ends
 * the read while the server still holds the rest; answers cut off, with a
 * page twice, with pages unaccounted for or with an error frame are
 * refused; a 503 before the first page is retried; a large answer written
 * in small random pieces arrives whole. Counts, not times.
 */
#include "test.h"
#include "stub.h"

#include "net/errmap.h"
#include "pagestore/client.h"
#include "proto/pagestore.pb-c.h"
#include "proto/pb.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

enum mode { HOLD, RESUME, CUT_EACH, DUP, INCOMPLETE, OVERLAP, ERROR_FRAME, BUSY_THEN_OK, LARGE };

static struct {
  atomic_int mode;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned requests_before; /* stub_requests() when the current run began */
  int release;              /* the test lets the stub send the rest */
  int rest_sent;            /* the stub sent what follows the first frame */
  int busy;                 /* the stub is answering (reading first and rest) */
  quire_buf first, rest;    /* the answer body, split after the first frame */
  int write_busy;           /* write_pages: answer the next one 503 */
  unsigned writes;          /* write_pages requests read */
  quire_buf wbody;          /* the last write_pages body answered 200 */
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static struct stub *stub_self;

static void fill_page(uint8_t *p, quire_pageidx idx) {
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i++) p[i] = (uint8_t)(idx * 7 + i);
}

/* Appends one length-prefixed frame with pages idx[0..n), the missing set
 * miss[0..nmiss) when has_missing, and an error when err != 0. */
static void add_frame(quire_buf *b, const quire_pageidx *idx, size_t n, int has_missing, const uint32_t *miss,
                      size_t nmiss, int err) {
  Quire__Pagestore__V1__ReadPagesFrame f = QUIRE__PAGESTORE__V1__READ_PAGES_FRAME__INIT;
  Quire__Pagestore__V1__PageAtIdx *items = calloc(n ? n : 1, sizeof *items);
  Quire__Pagestore__V1__PageAtIdx **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  uint8_t *data = malloc((n ? n : 1) * QUIRE_PAGE_SIZE);
  CHECK(items && ptrs && data);
  for (size_t i = 0; i < n; i++) {
    quire__pagestore__v1__page_at_idx__init(&items[i]);
    fill_page(data + i * QUIRE_PAGE_SIZE, idx[i]);
    items[i].has_pageidx = items[i].has_data = 1;
    items[i].pageidx = idx[i];
    items[i].data.data = data + i * QUIRE_PAGE_SIZE;
    items[i].data.len = QUIRE_PAGE_SIZE;
    ptrs[i] = &items[i];
  }
  f.n_pages = n;
  f.pages = ptrs;
  uint8_t *mbytes = NULL;
  size_t mlen = 0;
  if (has_missing) {
    splinter_t *m;
    CHECK_OK(splinter_from_sorted(miss, nmiss, &m));
    CHECK_OK(splinter_serialize_alloc(m, &mbytes, &mlen));
    splinter_free(m);
    f.has_missing = 1;
    f.missing.data = mbytes;
    f.missing.len = mlen;
  }
  Quire__Common__V1__Error e = QUIRE__COMMON__V1__ERROR__INIT;
  if (err) {
    e.has_code = 1;
    e.code = quire__errmap_code(err);
    e.message = "segment lost its page";
    f.error = &e;
  }
  quire_buf body;
  quire__buf_init(&body, 64u << 20);
  CHECK_OK(quire__pb_pack(&f.base, &body));
  uint8_t len[4];
  st_le32(len, (uint32_t)body.len);
  CHECK_OK(quire__buf_append(b, len, 4));
  CHECK_OK(quire__buf_append(b, body.data, body.len));
  quire__buf_free(&body);
  splinter_bytes_free(mbytes);
  free(items);
  free(ptrs);
  free(data);
}

/* The answer of the current mode: first frame into st.first, the rest into
 * st.rest. Wanted is always 1..3, except LARGE (1..600). */
static void build_answer(void) {
  quire__buf_reset(&st.first);
  quire__buf_reset(&st.rest);
  quire_pageidx one = 1, two = 2;
  uint32_t m3[] = {3}, m23[] = {2, 3};
  switch (atomic_load(&st.mode)) {
  case RESUME:
  case CUT_EACH: break; /* answered per request (cut_answer) */
  case HOLD:
  case BUSY_THEN_OK:
    add_frame(&st.first, &one, 1, 0, NULL, 0, 0);
    add_frame(&st.rest, &two, 1, 0, NULL, 0, 0);
    add_frame(&st.rest, NULL, 0, 1, m3, 1, 0);
    break;
  case DUP:
    add_frame(&st.first, &one, 1, 0, NULL, 0, 0);
    add_frame(&st.rest, &one, 1, 0, NULL, 0, 0);
    add_frame(&st.rest, NULL, 0, 1, m23, 2, 0);
    break;
  case INCOMPLETE:
    add_frame(&st.first, &one, 1, 0, NULL, 0, 0);
    add_frame(&st.rest, NULL, 0, 1, NULL, 0, 0);
    break;
  case OVERLAP:
    add_frame(&st.first, &one, 1, 0, NULL, 0, 0);
    add_frame(&st.rest, &two, 1, 0, NULL, 0, 0);
    add_frame(&st.rest, NULL, 0, 1, m23, 2, 0);
    break;
  case ERROR_FRAME:
    add_frame(&st.first, &one, 1, 0, NULL, 0, 0);
    add_frame(&st.rest, NULL, 0, 0, NULL, 0, QUIRE_EINTERNAL);
    break;
  case LARGE: {
    static quire_pageidx idx[600];
    size_t n = 0;
    for (quire_pageidx i = 1; i <= 600; i++)
      if (i % 50 != 0) idx[n++] = i; /* every 50th page was never written */
    uint32_t miss[12];
    for (uint32_t k = 0; k < 12; k++) miss[k] = 50 * (k + 1);
    add_frame(&st.first, idx, 256, 0, NULL, 0, 0);
    add_frame(&st.rest, idx + 256, 256, 0, NULL, 0, 0);
    add_frame(&st.rest, idx + 512, n - 512, 0, NULL, 0, 0);
    add_frame(&st.rest, NULL, 0, 1, miss, 12, 0);
    break;
  }
  }
}

/* Writes p[0..n) in random small pieces (the client must reassemble frames
 * that span reads). */
static void write_pieces(struct stub_conn *c, const uint8_t *p, size_t n) {
  while (n) {
    size_t k = 1 + test_rand_below(6000);
    if (k > n) k = n;
    if (stub_write(c, p, k)) return;
    p += k;
    n -= k;
  }
}

/* RESUME and CUT_EACH: the answer for the pages this request asks for
 * (page 3 was never written). CUT_EACH (and RESUME's first request) sends
 * the first page and closes the connection mid-answer. Returns 1 when the
 * connection must be closed. */
static int cut_answer(struct stub_conn *c, const struct stub_request *r, int mode, unsigned n) {
  Quire__Pagestore__V1__ReadPagesRequest *q =
      quire__pagestore__v1__read_pages_request__unpack(&quire__pb_allocator, r->body_len, r->body);
  CHECK(q && q->has_graft);
  splinter_view_t v;
  CHECK_OK(splinter_view_open(q->graft.data, q->graft.len, &v));
  quire_pageidx pages[64];
  uint32_t miss[1];
  size_t np = 0, nm = 0;
  for (uint32_t i = 1; i <= 64; i++) {
    if (!splinter_view_contains(&v, i)) continue;
    if (i == 3)
      miss[nm++] = i;
    else
      pages[np++] = i;
  }
  CHECK(np + nm == splinter_view_cardinality(&v));
  quire__pagestore__v1__read_pages_request__free_unpacked(q, &quire__pb_allocator);
  quire_buf b;
  quire__buf_init(&b, 64u << 20);
  int cut = mode == CUT_EACH || n == 1;
  if (cut) {
    CHECK(np > 0);
    add_frame(&b, pages, 1, 0, NULL, 0, 0);
  } else {
    for (size_t i = 0; i < np; i++) add_frame(&b, &pages[i], 1, 0, NULL, 0, 0);
    add_frame(&b, NULL, 0, 1, miss, nm, 0);
  }
  char head[256];
  snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", b.len + (cut ? 100 : 0));
  stub_write(c, head, strlen(head));
  stub_write(c, b.data, b.len);
  quire__buf_free(&b);
  return cut;
}

/* Answers one request; 1 when the connection must be closed. */
static int answer(struct stub_conn *c, const struct stub_request *r) {
  if (strncmp(r->head, "POST /pagestore/v1/write_pages ", 31) == 0) {
    /* write_pages: keep the body, answer with no segments (or 503 once). */
    pthread_mutex_lock(&st.mu);
    st.writes++;
    int busy = st.write_busy;
    st.write_busy = 0;
    if (!busy) {
      quire__buf_reset(&st.wbody);
      CHECK_OK(quire__buf_append(&st.wbody, r->body, r->body_len));
    }
    pthread_mutex_unlock(&st.mu);
    if (busy) return stub_respond(c, 503, "Retry-After: 0\r\n", "", 0) != 0;
    return stub_respond(c, 200, "Content-Type: application/x-protobuf\r\n", "", 0) != 0;
  }
  int mode = atomic_load(&st.mode);
  if (mode == RESUME || mode == CUT_EACH)
    return cut_answer(c, r, mode, stub_requests(stub_self) - st.requests_before);
  if (mode == BUSY_THEN_OK && stub_requests(stub_self) == 1) {
    stub_respond(c, 503, "Retry-After: 0\r\n", "", 0);
    return 0;
  }
  char head[256];
  snprintf(head, sizeof head,
           "HTTP/1.1 200 OK\r\nContent-Type: application/x-quire-frames\r\nContent-Length: %zu\r\n\r\n",
           st.first.len + st.rest.len);
  stub_write(c, head, strlen(head));
  if (mode == LARGE) {
    write_pieces(c, st.first.data, st.first.len);
    write_pieces(c, st.rest.data, st.rest.len);
    return 0;
  }
  stub_write(c, st.first.data, st.first.len);
  pthread_mutex_lock(&st.mu);
  while (!st.release) pthread_cond_wait(&st.cv, &st.mu);
  st.rest_sent = 1;
  pthread_mutex_unlock(&st.mu);
  return stub_write(c, st.rest.data, st.rest.len) != 0;
}

/* Marks the stub busy while it answers, so that the test does not rebuild
 * the answer under it (run() waits for it to finish). */
static void handler(void *ctx, struct stub_conn *c) {
  (void)ctx;
  struct stub_request r = {0};
  int closing = 0;
  while (!closing && stub_read_request(c, &r)) {
    pthread_mutex_lock(&st.mu);
    st.busy = 1;
    pthread_mutex_unlock(&st.mu);
    closing = answer(c, &r);
    pthread_mutex_lock(&st.mu);
    st.busy = 0;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
  }
  stub_request_free(&r);
}

static void release(void) {
  pthread_mutex_lock(&st.mu);
  st.release = 1;
  pthread_cond_broadcast(&st.cv);
  pthread_mutex_unlock(&st.mu);
}

static int rest_sent(void) {
  pthread_mutex_lock(&st.mu);
  int v = st.rest_sent;
  pthread_mutex_unlock(&st.mu);
  return v;
}

struct reader {
  int pages;
  int rest_sent_at_first; /* -1: no page came */
  uint8_t seen[601];
  int action; /* at the first page: 0 release the stub, 1 fire cancel, 2 return 5 */
  quire_cancel *cancel;
};

static int on_page(void *ctx, quire_pageidx idx, const uint8_t *page) {
  struct reader *k = ctx;
  uint8_t want[QUIRE_PAGE_SIZE];
  fill_page(want, idx);
  CHECK(idx <= 600 && memcmp(page, want, QUIRE_PAGE_SIZE) == 0);
  CHECK(!k->seen[idx]);
  k->seen[idx] = 1;
  if (k->pages++ == 0) {
    k->rest_sent_at_first = rest_sent();
    if (k->action == 1) {
      quire__cancel_fire(k->cancel);
      return 0;
    }
    if (k->action == 2) return 5;
    release();
  }
  return 0;
}

static int run(quire_psclient *c, int mode, int action, uint32_t nwanted, struct reader *k,
               splinter_t **missing) {
  atomic_store(&st.mode, mode);
  st.release = st.rest_sent = 0;
  st.requests_before = stub_requests(stub_self);
  build_answer();
  *k = (struct reader){.rest_sent_at_first = -1, .action = action};
  CHECK_OK(quire__cancel_create(&k->cancel));
  splinter_t *wanted;
  CHECK_OK(splinter_new(&wanted));
  CHECK_OK(splinter_insert_range(wanted, 1, nwanted));
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  struct quire_call call = {.cancel = k->cancel};
  int rc = quire__psclient_read_pages(c, &vid, 7, wanted, &call, on_page, k, missing);
  release(); /* let a held stub finish, and wait until it has */
  pthread_mutex_lock(&st.mu);
  while (st.busy) pthread_cond_wait(&st.cv, &st.mu);
  pthread_mutex_unlock(&st.mu);
  quire__cancel_destroy(k->cancel);
  splinter_free(wanted);
  return rc;
}

/* write_pages streams its request from the caller's pages: the bytes on
 * the wire are exactly what protobuf-c packs (page indexes of every varint
 * length), a retry after a 503 sends the whole body again from its start,
 * and the caller's buffers are free to reuse once the call returns. */
static void test_write_request(quire_psclient *c) {
  static const quire_pageidx idxs[] = {1,         127,        128,  16383, 16384, 2097151, 2097152, 268435455,
                                       268435456, UINT32_MAX, 5,    6,     7,     8,       9,       10,
                                       11,        12,         4096, 4097,  65535, 65536,   3000000, 3000001};
  enum { N = sizeof idxs / sizeof idxs[0] };
  uint8_t *bufs[N];
  const uint8_t *pages[N];
  for (size_t i = 0; i < N; i++) {
    bufs[i] = quire__malloc(QUIRE_PAGE_SIZE);
    CHECK(bufs[i] != NULL);
    fill_page(bufs[i], idxs[i]);
    pages[i] = bufs[i];
  }
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  /* The expected bytes, packed by protobuf-c. */
  Quire__Pagestore__V1__PageAtIdx items[N], *ptrs[N];
  for (size_t i = 0; i < N; i++) {
    quire__pagestore__v1__page_at_idx__init(&items[i]);
    items[i].has_pageidx = 1;
    items[i].pageidx = idxs[i];
    items[i].has_data = 1;
    items[i].data.data = bufs[i];
    items[i].data.len = QUIRE_PAGE_SIZE;
    ptrs[i] = &items[i];
  }
  Quire__Pagestore__V1__WritePagesRequest m = QUIRE__PAGESTORE__V1__WRITE_PAGES_REQUEST__INIT;
  m.has_vid = 1;
  m.vid = quire__pb_gid_bytes(&vid);
  m.n_pages = N;
  m.pages = ptrs;
  quire_buf want;
  quire__buf_init(&want, 1u << 20);
  CHECK_OK(quire__pb_pack(&m.base, &want));

  for (int busy = 0; busy < 2; busy++) {
    pthread_mutex_lock(&st.mu);
    st.write_busy = busy;
    unsigned before = st.writes;
    quire__buf_reset(&st.wbody);
    pthread_mutex_unlock(&st.mu);
    struct quire_ps_written *segs;
    size_t nsegs;
    CHECK_OK(quire__psclient_write_pages(c, &vid, idxs, pages, N, NULL, &segs, &nsegs));
    quire__psclient_written_free(segs, nsegs);
    pthread_mutex_lock(&st.mu);
    CHECK(st.writes == before + 1u + (unsigned)busy);
    CHECKF(st.wbody.len == want.len && memcmp(st.wbody.data, want.data, want.len) == 0,
           "busy %d: sent %zu bytes, protobuf-c packs %zu", busy, st.wbody.len, want.len);
    pthread_mutex_unlock(&st.mu);
  }
  /* The call returned: the caller scribbles over (and frees) its buffers;
   * what was sent is what the pages held during the call. */
  for (size_t i = 0; i < N; i++) memset(bufs[i], 0xee, QUIRE_PAGE_SIZE);
  uint8_t expect[QUIRE_PAGE_SIZE];
  fill_page(expect, idxs[N - 1]);
  pthread_mutex_lock(&st.mu);
  CHECK(st.wbody.len >= QUIRE_PAGE_SIZE &&
        memcmp(st.wbody.data + st.wbody.len - QUIRE_PAGE_SIZE, expect, QUIRE_PAGE_SIZE) == 0);
  pthread_mutex_unlock(&st.mu);
  for (size_t i = 0; i < N; i++) quire__free(bufs[i]);
  quire__buf_free(&want);
}

int main(void) {
  test_seed();
  quire__buf_init(&st.wbody, 64u << 20);
  quire__buf_init(&st.first, 64u << 20);
  quire__buf_init(&st.rest, 64u << 20);
  stub_self = stub_start(handler, NULL);
  struct quire_http_client_opts o = {.backoff_ms = 5};
  quire_psclient *c;
  CHECK_OK(quire__psclient_open(stub_url(stub_self), &o, &c));
  struct reader k;
  splinter_t *missing;

  /* The first page is delivered before the server sends the rest (it only
   * sends it when the caller has the first page). */
  CHECK_OK(run(c, HOLD, 0, 3, &k, &missing));
  CHECK(k.rest_sent_at_first == 0 && k.pages == 2 && k.seen[1] && k.seen[2]);
  CHECK(missing && splinter_cardinality(missing) == 1 && splinter_contains(missing, 3));
  splinter_free(missing);
  CHECK(stub_requests(stub_self) == 1);

  /* Cancel after the first page: ECANCELED while the server holds the rest. */
  CHECK_RC(run(c, HOLD, 1, 3, &k, &missing), QUIRE_ECANCELED);
  CHECK(k.pages == 1 && k.rest_sent_at_first == 0 && !missing);
  /* The caller's stop: its value comes back. */
  CHECK_RC(run(c, HOLD, 2, 3, &k, &missing), 5);
  CHECK(k.pages == 1 && !missing);
  unsigned before = stub_requests(stub_self);

  /* Cut off after the first page: resumed with a request for the pages
   * not delivered yet; fn sees each page once. */
  before = stub_requests(stub_self);
  CHECK_OK(run(c, RESUME, 0, 3, &k, &missing));
  CHECK(k.pages == 2 && k.seen[1] && k.seen[2] && stub_requests(stub_self) == before + 2);
  CHECK(missing && splinter_cardinality(missing) == 1 && splinter_contains(missing, 3));
  splinter_free(missing);
  /* Every answer cut after one page: pages 1, 2, 4 and 5 each come in their
   * own answer (3 is missing, but no closing frame ever says so) until the
   * client's 3 resumptions run out. */
  before = stub_requests(stub_self);
  CHECK_RC(run(c, CUT_EACH, 0, 5, &k, &missing), QUIRE_EUNAVAILABLE);
  CHECK(strstr(quire_errmsg(), "resumed too often") != NULL);
  CHECK(k.pages == 4 && !k.seen[3] && stub_requests(stub_self) == before + 4 && !missing);
  /* Every page came, only the closing frames were lost: success, nothing
   * missing. */
  before = stub_requests(stub_self);
  CHECK_OK(run(c, CUT_EACH, 0, 2, &k, &missing));
  CHECK(k.pages == 2 && stub_requests(stub_self) == before + 2);
  CHECK(missing && splinter_is_empty(missing));
  splinter_free(missing);

  /* Hostile answers. */
  CHECK_RC(run(c, DUP, 0, 3, &k, &missing), QUIRE_ECORRUPT);
  CHECK(strstr(quire_errmsg(), "twice") != NULL && !missing);
  CHECK_RC(run(c, INCOMPLETE, 0, 3, &k, &missing), QUIRE_ECORRUPT);
  CHECK(strstr(quire_errmsg(), "account") != NULL && !missing);
  CHECK_RC(run(c, OVERLAP, 0, 3, &k, &missing), QUIRE_ECORRUPT);
  CHECK_RC(run(c, ERROR_FRAME, 0, 3, &k, &missing), QUIRE_EINTERNAL);
  CHECK(strstr(quire_errmsg(), "segment lost its page") != NULL && k.pages == 1);

  /* 503 before any page: retried. */
  stub_stop(stub_self);
  quire__psclient_close(c);
  stub_self = stub_start(handler, NULL);
  CHECK_OK(quire__psclient_open(stub_url(stub_self), &o, &c));
  CHECK_OK(run(c, BUSY_THEN_OK, 0, 3, &k, &missing));
  CHECK(stub_requests(stub_self) == 2 && k.pages == 2);
  splinter_free(missing);

  /* 600 pages in four frames, written in random pieces of 1..6000 bytes. */
  for (int round = 0; round < 5; round++) {
    CHECK_OK(run(c, LARGE, 0, 600, &k, &missing));
    CHECK(k.pages == 588 && splinter_cardinality(missing) == 12 && splinter_contains(missing, 600));
    splinter_free(missing);
  }

  test_write_request(c);

  quire__psclient_close(c);
  stub_stop(stub_self);
  quire__buf_free(&st.wbody);
  quire__buf_free(&st.first);
  quire__buf_free(&st.rest);
  return test_done("pagestore_stream");
}
