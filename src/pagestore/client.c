/* pagestore/client.c — see client.h. */
#include "pagestore/client.h"
#include "net/errmap.h"
#include "proto/pagestore.pb-c.h"
#include "proto/pb.h"
#include "util/util.h"

#include <string.h>

struct quire_psclient {
  quire_http_client *http;
};

int quire__psclient_open(const char *url, const struct quire_http_client_opts *opts, quire_psclient **out) {
  *out = NULL;
  quire_psclient *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  int rc = quire__http_client_open(url, opts, 64u << 20, &c->http);
  if (rc) {
    quire__free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void quire__psclient_close(quire_psclient *c) {
  if (!c) return;
  quire__http_client_destroy(c->http);
  quire__free(c);
}

void quire__psclient_written_free(struct quire_ps_written *segs, size_t n) {
  for (size_t i = 0; segs && i < n; i++) quire__free(segs[i].graft);
  quire__free(segs);
}

int quire__psclient_write_pages(quire_psclient *c, const quire_gid *vid, const quire_pageidx *idx,
                                const uint8_t *const *pages, size_t n, struct quire_ps_written **segs,
                                size_t *nsegs) {
  *segs = NULL;
  *nsegs = 0;
  Quire__Pagestore__V1__PageAtIdx *items = quire__calloc(n ? n : 1, sizeof *items);
  Quire__Pagestore__V1__PageAtIdx **ptrs = quire__calloc(n ? n : 1, sizeof *ptrs);
  quire_buf req, resp;
  quire__buf_init(&req, 256u << 20);
  quire__buf_init(&resp, 64u << 20);
  int rc = items && ptrs ? 0 : QUIRE_ENOMEM;
  for (size_t i = 0; i < n && rc == 0; i++) {
    quire__pagestore__v1__page_at_idx__init(&items[i]);
    items[i].has_pageidx = 1;
    items[i].pageidx = idx[i];
    items[i].has_data = 1;
    items[i].data.data = (uint8_t *)pages[i];
    items[i].data.len = QUIRE_PAGE_SIZE;
    ptrs[i] = &items[i];
  }
  Quire__Pagestore__V1__WritePagesRequest m = QUIRE__PAGESTORE__V1__WRITE_PAGES_REQUEST__INIT;
  m.has_vid = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.n_pages = n;
  m.pages = ptrs;
  if (rc == 0) rc = quire__pb_pack(&m.base, &req);
  if (rc == 0) rc = quire__http_call(c->http, "/pagestore/v1/write_pages", req.data, req.len, 0, 1, &resp);
  Quire__Pagestore__V1__WritePagesResponse *r = NULL;
  if (rc == 0) {
    r = quire__pagestore__v1__write_pages_response__unpack(&quire__pb_allocator, resp.len, resp.data);
    if (!r) rc = quire__err(QUIRE_ECORRUPT, "write_pages: undecodable response");
  }
  struct quire_ps_written *out = NULL;
  if (rc == 0) {
    out = quire__calloc(r->n_segments ? r->n_segments : 1, sizeof *out);
    if (!out) rc = QUIRE_ENOMEM;
  }
  for (size_t i = 0; rc == 0 && i < r->n_segments; i++) {
    Quire__Common__V1__SegmentInfo *s = r->segments[i];
    splinter_view_t v;
    rc = quire__pb_gid(s->has_sid, &s->sid, QUIRE_GID_SEGMENT, "sid", &out[i].sid);
    if (rc == 0 && (!s->has_graft || splinter_view_open(s->graft.data, s->graft.len, &v) != 0))
      rc = quire__err(QUIRE_ECORRUPT, "write_pages: segment %zu has no valid graft", i);
    if (rc == 0) {
      out[i].graft = quire__memdup(s->graft.data, s->graft.len);
      out[i].graft_len = s->graft.len;
      if (!out[i].graft) rc = QUIRE_ENOMEM;
    }
    if (rc == 0 && s->has_receipt) {
      if (s->receipt.len != sizeof out[i].receipt)
        rc = quire__err(QUIRE_ECORRUPT, "write_pages: segment %zu has a receipt of %zu bytes", i,
                        s->receipt.len);
      out[i].receipt_len = rc == 0 ? s->receipt.len : 0;
      if (rc == 0) memcpy(out[i].receipt, s->receipt.data, s->receipt.len);
    }
    *nsegs = i + 1;
  }
  if (r) quire__pagestore__v1__write_pages_response__free_unpacked(r, &quire__pb_allocator);
  if (rc) {
    quire__psclient_written_free(out, *nsegs);
    *nsegs = 0;
  } else {
    *segs = out;
  }
  quire__buf_free(&req);
  quire__buf_free(&resp);
  quire__free(items);
  quire__free(ptrs);
  return rc;
}

/* Protobuf wire decoding of read_pages frames without copying pages: page
 * bytes are handed to fn straight from the response buffer. Only the rare
 * Error message goes through protobuf-c. */
static int pb_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*off >= n) return QUIRE_ECORRUPT;
    uint8_t b = p[(*off)++];
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return QUIRE_ECORRUPT;
}

/* Skips a field of wire type wt at *off. */
static int pb_skip(const uint8_t *p, size_t n, size_t *off, unsigned wt) {
  uint64_t v;
  switch (wt) {
  case 0: return pb_varint(p, n, off, &v);
  case 1: v = 8; break;
  case 5: v = 4; break;
  case 2:
    if (pb_varint(p, n, off, &v)) return QUIRE_ECORRUPT;
    break;
  default: return QUIRE_ECORRUPT;
  }
  if (v > n - *off) return QUIRE_ECORRUPT;
  *off += (size_t)v;
  return 0;
}

/* One PageAtIdx at p[0..n). */
static int parse_page(const uint8_t *p, size_t n, const splinter_t *wanted, quire_ps_page_fn fn, void *ctx) {
  size_t off = 0;
  uint64_t idx = 0;
  const uint8_t *data = NULL;
  size_t dlen = 0;
  int has_idx = 0;
  while (off < n) {
    uint64_t key, v;
    if (pb_varint(p, n, &off, &key)) return QUIRE_ECORRUPT;
    unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
    if (field == 1 && wt == 0) {
      if (pb_varint(p, n, &off, &idx)) return QUIRE_ECORRUPT;
      has_idx = 1;
    } else if (field == 2 && wt == 2) {
      if (pb_varint(p, n, &off, &v) || v > n - off) return QUIRE_ECORRUPT;
      data = p + off;
      dlen = (size_t)v;
      off += (size_t)v;
    } else if (pb_skip(p, n, &off, wt)) {
      return QUIRE_ECORRUPT;
    }
  }
  if (!has_idx || idx > UINT32_MAX || !data || dlen != QUIRE_PAGE_SIZE ||
      !splinter_contains(wanted, (uint32_t)idx))
    return quire__err(QUIRE_ECORRUPT, "read_pages: a page that was not asked for, or not 4096 bytes");
  return fn(ctx, (quire_pageidx)idx, data) != 0 ? QUIRE_ECLOSED : 0;
}

/* One ReadPagesFrame at p[0..n); *ended when it is the closing frame. */
static int parse_frame(const uint8_t *p, size_t n, const splinter_t *wanted, quire_ps_page_fn fn, void *ctx,
                       splinter_t **missing, int *ended) {
  size_t off = 0;
  int rc = 0;
  while (off < n && rc == 0) {
    uint64_t key, len;
    if (pb_varint(p, n, &off, &key)) return quire__err(QUIRE_ECORRUPT, "read_pages: undecodable frame");
    unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
    if (wt != 2) {
      if (pb_skip(p, n, &off, wt)) return quire__err(QUIRE_ECORRUPT, "read_pages: undecodable frame");
      continue;
    }
    if (pb_varint(p, n, &off, &len) || len > n - off)
      return quire__err(QUIRE_ECORRUPT, "read_pages: undecodable frame");
    const uint8_t *sub = p + off;
    off += (size_t)len;
    if (field == 1) {
      rc = parse_page(sub, (size_t)len, wanted, fn, ctx);
    } else if (field == 2) {
      splinter_view_t v;
      if (*missing || splinter_view_open(sub, (size_t)len, &v) != 0)
        return quire__err(QUIRE_ECORRUPT, "read_pages: undecodable missing set");
      rc = splinter_from_ref(splinter_ref_view(&v), missing);
      *ended = 1;
    } else if (field == 3) {
      Quire__Common__V1__Error *e = quire__common__v1__error__unpack(&quire__pb_allocator, (size_t)len, sub);
      rc = quire__errmap_rc(e && e->has_code ? (int)e->code : -1, 500);
      quire__err(rc, "read_pages failed midway: %s", e && e->message ? e->message : "");
      if (e) quire__common__v1__error__free_unpacked(e, &quire__pb_allocator);
      return rc;
    }
  }
  return rc;
}

int quire__psclient_parse_frames(const uint8_t *data, size_t len, const splinter_t *wanted,
                                 quire_ps_page_fn fn, void *ctx, splinter_t **missing) {
  *missing = NULL;
  int rc = 0, ended = 0;
  size_t off = 0;
  while (rc == 0 && !ended) {
    if (len - off < 4) {
      rc = quire__err(QUIRE_EUNAVAILABLE, "read_pages: answer ended before its closing frame");
      break;
    }
    uint32_t n = ld_le32(data + off);
    off += 4;
    if (n > len - off) {
      rc = quire__err(QUIRE_EUNAVAILABLE, "read_pages: truncated frame");
      break;
    }
    rc = parse_frame(data + off, n, wanted, fn, ctx, missing, &ended);
    off += n;
  }
  if (rc == 0 && off != len) rc = quire__err(QUIRE_ECORRUPT, "read_pages: bytes after the closing frame");
  if (rc) {
    splinter_free(*missing);
    *missing = NULL;
  }
  return rc;
}

int quire__psclient_read_pages(quire_psclient *c, const quire_gid *vid, quire_lsn lsn,
                               const splinter_t *wanted, quire_ps_page_fn fn, void *ctx,
                               splinter_t **missing) {
  *missing = NULL;
  uint8_t *graft = NULL;
  size_t glen = 0;
  quire_buf req, resp;
  quire__buf_init(&req, 64u << 20);
  quire__buf_init(&resp, 256u << 20);
  int rc = splinter_serialize_alloc(wanted, &graft, &glen);
  Quire__Pagestore__V1__ReadPagesRequest m = QUIRE__PAGESTORE__V1__READ_PAGES_REQUEST__INIT;
  m.has_vid = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.has_lsn = 1;
  m.lsn = lsn;
  m.has_graft = 1;
  m.graft.data = graft;
  m.graft.len = glen;
  if (rc == 0) rc = quire__pb_pack(&m.base, &req);
  /* Room for the whole answer up front: no regrowth copies while it arrives. */
  if (rc == 0) rc = quire__buf_reserve(&resp, splinter_cardinality(wanted) * (QUIRE_PAGE_SIZE + 16) + 4096);
  if (rc == 0) rc = quire__http_call(c->http, "/pagestore/v1/read_pages", req.data, req.len, 0, 1, &resp);
  if (rc == 0) rc = quire__psclient_parse_frames(resp.data, resp.len, wanted, fn, ctx, missing);
  if (rc) {
    splinter_free(*missing);
    *missing = NULL;
  }
  splinter_bytes_free(graft);
  quire__buf_free(&req);
  quire__buf_free(&resp);
  return rc;
}
