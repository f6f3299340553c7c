/*
 * pagestore/client.c — the pagestore client (see client.h). write_pages is
 * a buffered RPC; read_pages streams: curl's write callback feeds the
 * incremental frame parser, which hands each page to the caller as soon as
 * its frame is complete and keeps at most one frame in memory.
 */
#include "pagestore/client.h"
#include "net/errmap.h"
#include "proto/pagestore.pb-c.h"
#include "proto/pb.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

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

/* Appends the varint v at p; returns its length (at most 10). */
static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

/* The size of the varint v. */
static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* Longest framing before one page: the PageAtIdx tag and length, the
 * pageidx field, the data tag and length. */
#define PAGE_HEAD_MAX (1 + 10 + 1 + 10 + 1 + 10)

int quire__psclient_write_pages(quire_psclient *c, const quire_gid *vid, const quire_pageidx *idx,
                                const uint8_t *const *pages, size_t n, const struct quire_call *call,
                                struct quire_ps_written **segs, size_t *nsegs) {
  *segs = NULL;
  *nsegs = 0;
  /* The WritePagesRequest goes out as its protobuf framing interleaved with
   * the caller's pages, never joined into one buffer: byte for byte what
   * protobuf-c packs (field order, has_ fields always present; checked by
   * test_pagestore_stream), with vid = 1 and each page a PageAtIdx in
   * field 2 holding pageidx = 1 and data = 2. */
  ProtobufCBinaryData vb = quire__pb_gid_bytes(vid);
  uint8_t *heads = n <= SIZE_MAX / PAGE_HEAD_MAX - 32 ? quire__malloc(32 + vb.len + n * PAGE_HEAD_MAX) : NULL;
  struct iovec *iov = n <= SIZE_MAX / sizeof *iov / 2 - 1 ? quire__malloc((2 * n + 1) * sizeof *iov) : NULL;
  quire_buf resp;
  quire__buf_init(&resp, 64u << 20);
  int rc = heads && iov ? 0 : QUIRE_ENOMEM;
  size_t niov = 0;
  if (rc == 0) {
    uint8_t *h = heads;
    h[0] = 0x0a; /* vid: field 1, length-delimited */
    size_t hl = 1 + put_varint(h + 1, vb.len);
    if (vb.len) memcpy(h + hl, vb.data, vb.len);
    hl += vb.len;
    iov[niov++] = (struct iovec){h, hl};
    h += hl;
    for (size_t i = 0; i < n; i++) {
      size_t inner = 1 + varint_len(idx[i]) + 1 + varint_len(QUIRE_PAGE_SIZE) + QUIRE_PAGE_SIZE;
      size_t k = 0;
      h[k++] = 0x12; /* pages: field 2, length-delimited */
      k += put_varint(h + k, inner);
      h[k++] = 0x08; /* pageidx: field 1, varint */
      k += put_varint(h + k, idx[i]);
      h[k++] = 0x12; /* data: field 2, length-delimited */
      k += put_varint(h + k, QUIRE_PAGE_SIZE);
      iov[niov++] = (struct iovec){h, k};
      iov[niov++] = (struct iovec){(void *)pages[i], QUIRE_PAGE_SIZE};
      h += k;
    }
  }
  if (rc == 0) rc = quire__http_call_iov(c->http, "/pagestore/v1/write_pages", iov, niov, call, 1, &resp);
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
  quire__buf_free(&resp);
  quire__free(heads);
  quire__free(iov);
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

/* ---- the incremental frame parser ------------------------------------------ */

#define FRAME_MAX (4u << 20)

struct quire_ps_frames {
  const splinter_t *wanted;
  quire_ps_page_fn fn;
  void *ctx;
  splinter_t *seen;    /* pages passed to fn */
  splinter_t *missing; /* from the closing frame */
  int ended;           /* the closing frame was parsed */
  int rc;              /* sticky */
  uint8_t head[4];     /* the length prefix being read */
  unsigned head_len;
  uint32_t frame_len; /* of the frame being read (valid when head_len == 4) */
  uint8_t *frame;     /* the partial frame, when it spans feeds */
  size_t frame_have, frame_cap;
};

static int bad_page(void) { return quire__err(QUIRE_ECORRUPT, "read_pages: undecodable page"); }

/* One PageAtIdx at p[0..n). */
static int parse_page(quire_ps_frames *f, const uint8_t *p, size_t n) {
  size_t off = 0;
  uint64_t idx = 0;
  const uint8_t *data = NULL;
  size_t dlen = 0;
  int has_idx = 0;
  while (off < n) {
    uint64_t key, v;
    if (pb_varint(p, n, &off, &key)) return bad_page();
    unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
    if (field == 1 && wt == 0) {
      if (pb_varint(p, n, &off, &idx)) return bad_page();
      has_idx = 1;
    } else if (field == 2 && wt == 2) {
      if (pb_varint(p, n, &off, &v) || v > n - off) return bad_page();
      data = p + off;
      dlen = (size_t)v;
      off += (size_t)v;
    } else if (pb_skip(p, n, &off, wt)) {
      return bad_page();
    }
  }
  if (!has_idx || idx > UINT32_MAX || !data || dlen != QUIRE_PAGE_SIZE ||
      !splinter_contains(f->wanted, (uint32_t)idx))
    return quire__err(QUIRE_ECORRUPT, "read_pages: a page that was not asked for, or not 4096 bytes");
  if (splinter_contains(f->seen, (uint32_t)idx))
    return quire__err(QUIRE_ECORRUPT, "read_pages: page %u sent twice", (unsigned)idx);
  int rc = splinter_insert(f->seen, (uint32_t)idx);
  if (rc < 0) return rc;
  return f->fn(f->ctx, (quire_pageidx)idx, data);
}

/* One ReadPagesFrame at p[0..n). */
static int parse_frame(quire_ps_frames *f, const uint8_t *p, size_t n) {
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
      rc = parse_page(f, sub, (size_t)len);
    } else if (field == 2) {
      splinter_view_t v;
      if (f->missing || splinter_view_open(sub, (size_t)len, &v) != 0)
        return quire__err(QUIRE_ECORRUPT, "read_pages: undecodable missing set");
      rc = splinter_from_ref(splinter_ref_view(&v), &f->missing);
      f->ended = 1;
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

int quire__ps_frames_new(const splinter_t *wanted, quire_ps_page_fn fn, void *ctx, quire_ps_frames **out) {
  *out = NULL;
  quire_ps_frames *f = quire__calloc(1, sizeof *f);
  if (!f) return QUIRE_ENOMEM;
  f->wanted = wanted;
  f->fn = fn;
  f->ctx = ctx;
  int rc = splinter_new(&f->seen);
  if (rc) {
    quire__free(f);
    return rc;
  }
  *out = f;
  return 0;
}

void quire__ps_frames_free(quire_ps_frames *f) {
  if (!f) return;
  splinter_free(f->seen);
  splinter_free(f->missing);
  quire__free(f->frame);
  quire__free(f);
}

int quire__ps_frames_feed(quire_ps_frames *f, const uint8_t *data, size_t len) {
  int rc = f->rc;
  while (rc == 0 && len > 0) {
    if (f->ended) {
      rc = quire__err(QUIRE_ECORRUPT, "read_pages: bytes after the closing frame");
      break;
    }
    if (f->head_len < 4) {
      size_t take = QUIRE_MIN(4 - f->head_len, len);
      memcpy(f->head + f->head_len, data, take);
      f->head_len += (unsigned)take;
      data += take;
      len -= take;
      if (f->head_len < 4) break;
      f->frame_len = ld_le32(f->head);
      f->frame_have = 0;
      if (f->frame_len > FRAME_MAX) {
        rc = quire__err(QUIRE_ECORRUPT, "read_pages: a frame of %u bytes (the limit is %u)", f->frame_len,
                        FRAME_MAX);
        break;
      }
    }
    if (f->frame_have == 0 && len >= f->frame_len) {
      /* The whole frame is here: parse it in place, no copy. */
      rc = parse_frame(f, data, f->frame_len);
      data += f->frame_len;
      len -= f->frame_len;
      f->head_len = 0;
      continue;
    }
    /* The frame spans feeds: keep its bytes (one frame at most). */
    if (f->frame_cap < f->frame_len) {
      uint8_t *b = quire__realloc(f->frame, f->frame_len);
      if (!b) {
        rc = QUIRE_ENOMEM;
        break;
      }
      f->frame = b;
      f->frame_cap = f->frame_len;
    }
    size_t take = QUIRE_MIN((size_t)f->frame_len - f->frame_have, len);
    memcpy(f->frame + f->frame_have, data, take);
    f->frame_have += take;
    data += take;
    len -= take;
    if (f->frame_have == f->frame_len) {
      rc = parse_frame(f, f->frame, f->frame_len);
      f->head_len = 0;
      f->frame_have = 0;
    }
  }
  f->rc = rc;
  return rc;
}

splinter_ref_t quire__ps_frames_seen(const quire_ps_frames *f) { return splinter_ref_owned(f->seen); }

int quire__ps_frames_finish(quire_ps_frames *f, splinter_t **missing) {
  *missing = NULL;
  if (f->rc) return f->rc;
  int rc = 0;
  if (!f->ended) {
    rc = f->head_len || f->frame_have
             ? quire__err(QUIRE_EUNAVAILABLE, "read_pages: truncated frame")
             : quire__err(QUIRE_EUNAVAILABLE, "read_pages: answer ended before its closing frame");
  } else {
    /* Every wanted page is accounted for: sent once (checked per page) or
     * declared missing, never both. */
    splinter_ref_t want = splinter_ref_owned(f->wanted), miss = splinter_ref_owned(f->missing),
                   seen = splinter_ref_owned(f->seen);
    if (!splinter_is_subset(miss, want) || splinter_intersects(miss, seen) ||
        splinter_cardinality(f->seen) + splinter_cardinality(f->missing) != splinter_cardinality(f->wanted))
      rc =
          quire__err(QUIRE_ECORRUPT,
                     "read_pages: the answer does not account for every wanted page (%llu wanted, %llu sent, "
                     "%llu missing)",
                     (unsigned long long)splinter_cardinality(f->wanted),
                     (unsigned long long)splinter_cardinality(f->seen),
                     (unsigned long long)splinter_cardinality(f->missing));
  }
  if (!rc) {
    *missing = f->missing;
    f->missing = NULL;
  }
  f->rc = rc ? rc : f->rc;
  return rc;
}

int quire__psclient_parse_frames(const uint8_t *data, size_t len, const splinter_t *wanted,
                                 quire_ps_page_fn fn, void *ctx, splinter_t **missing) {
  *missing = NULL;
  quire_ps_frames *f;
  int rc = quire__ps_frames_new(wanted, fn, ctx, &f);
  if (rc) return rc;
  rc = quire__ps_frames_feed(f, data, len);
  if (!rc) rc = quire__ps_frames_finish(f, missing);
  quire__ps_frames_free(f);
  return rc;
}

/* ---- read_pages ------------------------------------------------------------- */

static int frames_sink(void *ctx, const uint8_t *data, size_t len) {
  return quire__ps_frames_feed(ctx, data, len);
}

/* One read_pages request for the pages in `want`, its answer fed to f. */
static int read_once(quire_psclient *c, const quire_gid *vid, quire_lsn lsn, const splinter_t *want,
                     const struct quire_call *call, quire_ps_frames *f, int *delivered) {
  uint8_t *graft = NULL;
  size_t glen = 0;
  quire_buf req;
  quire__buf_init(&req, 64u << 20);
  int rc = splinter_serialize_alloc(want, &graft, &glen);
  Quire__Pagestore__V1__ReadPagesRequest m = QUIRE__PAGESTORE__V1__READ_PAGES_REQUEST__INIT;
  m.has_vid = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.has_lsn = 1;
  m.lsn = lsn;
  m.has_graft = 1;
  m.graft.data = graft;
  m.graft.len = glen;
  if (rc == 0) rc = quire__pb_pack(&m.base, &req);
  if (rc == 0)
    rc = quire__http_call_stream(c->http, "/pagestore/v1/read_pages", req.data, req.len, call, 1, frames_sink,
                                 f, delivered);
  splinter_bytes_free(graft);
  quire__buf_free(&req);
  return rc;
}

int quire__psclient_read_pages(quire_psclient *c, const quire_gid *vid, quire_lsn lsn,
                               const splinter_t *wanted, const struct quire_call *call, quire_ps_page_fn fn,
                               void *ctx, splinter_t **missing) {
  *missing = NULL;
  /* One deadline for the first request and every resumption. */
  struct quire_call fixed = {quire__http_deadline(c->http, call), call ? call->cancel : NULL};
  splinter_t *want = NULL, *rest = NULL;
  quire_ps_frames *f = NULL;
  int rc = splinter_from_ref(splinter_ref_owned(wanted), &want);
  for (unsigned resumed = 0; rc == 0; resumed++) {
    int delivered = 0;
    rc = quire__ps_frames_new(want, fn, ctx, &f);
    if (rc == 0) rc = read_once(c, vid, lsn, want, &fixed, f, &delivered);
    if (rc == 0) {
      rc = quire__ps_frames_finish(f, missing);
      break;
    }
    if (rc != QUIRE_EUNAVAILABLE || !delivered) break;
    /* Cut off after some pages (the HTTP layer does not retry once the
     * caller has pages): ask again for the pages not delivered yet, so fn
     * still sees each page once. */
    char why[256];
    snprintf(why, sizeof why, "%s", quire_errmsg());
    int frc = splinter_new(&rest);
    if (frc == 0) frc = splinter_difference(splinter_ref_owned(want), quire__ps_frames_seen(f), rest);
    quire__ps_frames_free(f);
    f = NULL;
    if (frc) {
      rc = frc;
      break;
    }
    splinter_free(want);
    want = rest;
    rest = NULL;
    if (splinter_is_empty(want)) {
      /* Every page came; only the closing frame was lost, and it could
       * only have said "nothing missing". */
      rc = splinter_new(missing);
      break;
    }
    int w = quire__http_retry_wait(c->http, resumed, &fixed);
    if (w == QUIRE_ECANCELED) {
      rc = quire__err(w, "read_pages: cancelled while waiting to resume (%s)", why);
      break;
    }
    if (w) {
      rc = quire__err(QUIRE_EUNAVAILABLE, "%s (%s)", why,
                      w == QUIRE_ETIMEDOUT ? "no time left to resume before the deadline"
                                           : "resumed too often");
      break;
    }
    QLOG_DEBUG("read_pages: answer cut off (%s); asking again for %llu pages", why,
               (unsigned long long)splinter_cardinality(want));
    rc = 0;
  }
  quire__ps_frames_free(f);
  splinter_free(want);
  splinter_free(rest);
  if (rc) {
    splinter_free(*missing);
    *missing = NULL;
  }
  return rc;
}
