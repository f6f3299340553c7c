/*
 * Untrusted bytes at the pagestore's edges. The first byte picks the parser:
 *   0  a write_pages request body (server side),
 *   1  a read_pages request body (server side),
 *   2  a read_pages answer (the client's frame parser, whole buffer;
 *      wanted = 1..64),
 *   3  the same answer fed to the incremental parser in random pieces (the
 *      next 8 bytes seed the chunking; pieces of 0 .. 2 x frame-ish sizes,
 *      many of 1 byte), compared with the whole-buffer parse: the same
 *      return code, the same pages in the same order with the same bytes,
 *      the same missing set. This is what read_pages runs in curl's write
 *      callback, where the network decides the pieces.
 * Each must accept or reject with a message, never crash, and what it
 * accepts must satisfy the checks it promises: every wanted page passed
 * once or declared missing, never both.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pagestore/client.h"
#include "pagestore/ps_int.h"
#include "proto/pagestore.pb-c.h"
#include "proto/pb.h"

/* What a parse delivered: the pages in order and a hash of their bytes. */
struct seen {
  const splinter_t *wanted;
  quire_pageidx idx[64];
  size_t n;
  uint64_t hash;
};

static int on_page(void *ctx, quire_pageidx idx, const uint8_t *page) {
  struct seen *s = ctx;
  if (!splinter_contains(s->wanted, idx) || s->n == 64) abort();
  for (size_t i = 0; i < s->n; i++)
    if (s->idx[i] == idx) abort(); /* a page twice */
  s->idx[s->n++] = idx;
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i++) s->hash = (s->hash ^ page[i]) * 0x100000001b3ull;
  return idx == 64 ? 9 : 0; /* the caller's stop must come back as is */
}

static void check_accounted(const splinter_t *wanted, const struct seen *s, const splinter_t *missing) {
  if (splinter_cardinality(missing) + s->n != splinter_cardinality(wanted)) abort();
  for (size_t i = 0; i < s->n; i++)
    if (splinter_contains(missing, s->idx[i])) abort();
}

static uint64_t next_rand(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Feeds body in pieces chosen by seed; the result as the whole-buffer
 * parse reports it. */
static int parse_chunked(const uint8_t *body, size_t len, uint64_t seed, const splinter_t *wanted,
                         struct seen *s, splinter_t **missing) {
  *missing = NULL;
  quire_ps_frames *f;
  int rc = quire__ps_frames_new(wanted, on_page, s, &f);
  if (rc) return rc;
  size_t off = 0;
  while (rc == 0 && off < len) {
    uint64_t r = next_rand(&seed);
    size_t piece;
    switch (r % 4) {
    case 0: piece = 1; break;
    case 1: piece = (size_t)(r >> 8) % 8; break; /* 0..7, 0 included */
    case 2: piece = (size_t)(r >> 8) % 5000; break;
    default: piece = (size_t)(r >> 8) % 20000; break;
    }
    if (piece > len - off) piece = len - off;
    rc = quire__ps_frames_feed(f, body + off, piece);
    off += piece;
  }
  if (rc == 0) rc = quire__ps_frames_finish(f, missing);
  quire__ps_frames_free(f);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *body = data + 1;
  size_t len = size - 1;
  switch (data[0] % 4) {
  case 0: {
    /* The in-place reader against protobuf-c: a request protobuf-c decodes
     * to a valid one is accepted, with the same vid, indexes and bytes. */
    Quire__Pagestore__V1__WritePagesRequest *m =
        quire__pagestore__v1__write_pages_request__unpack(&quire__pb_allocator, len, body);
    int pb_valid = m && m->has_vid && m->vid.len == QUIRE_GID_SIZE && m->n_pages >= 1 && m->n_pages <= 64;
    if (pb_valid) {
      quire_gid g;
      memcpy(g.b, m->vid.data, QUIRE_GID_SIZE);
      pb_valid = quire_gid_type(&g) == QUIRE_GID_VOLUME;
    }
    for (size_t i = 0; pb_valid && i < m->n_pages; i++)
      pb_valid = m->pages[i]->has_pageidx && m->pages[i]->pageidx != 0 && m->pages[i]->has_data &&
                 m->pages[i]->data.len == QUIRE_PAGE_SIZE;
    struct ps_write_req w;
    int rc = quire__ps_parse_write(body, len, 64, &w);
    if (rc == 0) {
      if (w.n == 0 || w.n > 64 || quire_gid_type(&w.vid) != QUIRE_GID_VOLUME) abort();
      for (size_t i = 0; i < w.n; i++)
        if (w.idx[i] == 0) abort();
      if (pb_valid) {
        if (w.n != m->n_pages || memcmp(w.vid.b, m->vid.data, QUIRE_GID_SIZE) != 0) abort();
        for (size_t i = 0; i < w.n; i++)
          if (w.idx[i] != m->pages[i]->pageidx || memcmp(w.pages[i], m->pages[i]->data.data, QUIRE_PAGE_SIZE))
            abort();
      }
      quire__ps_write_req_clear(&w);
    } else if (!*quire_errmsg()) {
      abort();
    } else if (pb_valid && rc != QUIRE_ENOMEM) {
      abort(); /* protobuf-c decodes a valid request the reader refused */
    }
    if (m) quire__pagestore__v1__write_pages_request__free_unpacked(m, &quire__pb_allocator);
    break;
  }
  case 1: {
    struct ps_read_req q;
    if (quire__ps_parse_read(body, len, 64, &q) == 0) {
      if (q.lsn == 0 || splinter_view_contains(&q.wanted, 0) || splinter_view_cardinality(&q.wanted) > 64)
        abort();
      quire__ps_read_req_clear(&q);
    } else if (!*quire_errmsg()) {
      abort();
    }
    break;
  }
  case 2: {
    splinter_t *wanted, *missing = NULL;
    if (splinter_new(&wanted) != 0) return 0;
    if (splinter_insert_range(wanted, 1, 64) == 0) {
      quire__err_clear();
      struct seen s = {.wanted = wanted};
      int rc = quire__psclient_parse_frames(body, len, wanted, on_page, &s, &missing);
      if (rc == 0 && !missing) abort();
      if (rc != 0 && missing) abort();
      if (rc == 0) check_accounted(wanted, &s, missing);
      if (rc < 0 && rc != QUIRE_ENOMEM && !*quire_errmsg()) abort();
    }
    splinter_free(missing);
    splinter_free(wanted);
    break;
  }
  default: {
    if (len < 8) return 0;
    uint64_t seed = 0;
    memcpy(&seed, body, 8);
    body += 8;
    len -= 8;
    splinter_t *wanted, *whole_missing = NULL, *chunked_missing = NULL;
    if (splinter_new(&wanted) != 0) return 0;
    if (splinter_insert_range(wanted, 1, 64) == 0) {
      struct seen whole = {.wanted = wanted}, chunked = {.wanted = wanted};
      int rc_whole = quire__psclient_parse_frames(body, len, wanted, on_page, &whole, &whole_missing);
      int rc_chunked = parse_chunked(body, len, seed, wanted, &chunked, &chunked_missing);
      if (rc_whole == QUIRE_ENOMEM || rc_chunked == QUIRE_ENOMEM) {
        /* allocation failures are allowed to differ */
      } else if (rc_whole != rc_chunked || whole.n != chunked.n || whole.hash != chunked.hash ||
                 memcmp(whole.idx, chunked.idx, whole.n * sizeof whole.idx[0]) != 0) {
        abort();
      } else if (rc_whole == 0) {
        if (!whole_missing || !chunked_missing ||
            !splinter_equal(splinter_ref_owned(whole_missing), splinter_ref_owned(chunked_missing)))
          abort();
        check_accounted(wanted, &chunked, chunked_missing);
      } else if (whole_missing || chunked_missing) {
        abort();
      }
    }
    splinter_free(whole_missing);
    splinter_free(chunked_missing);
    splinter_free(wanted);
  }
  }
  return 0;
}
