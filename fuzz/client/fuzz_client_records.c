/*
 * The client's local-store records (src/client/store.c) on untrusted bytes:
 * a data directory can be damaged on disk. The first byte picks the parser:
 *   0: V{vid} volume record      1: I{vid} push intent
 *   2: L{vid}{lsn} local commit   3: a P value (page, EMPTY or PENDING)
 *   4: a P key of a fixed volume
 * Invariants: every refusal is QUIRE_ECORRUPT or QUIRE_EVERSION with a
 * message; what decodes encodes back to bytes that decode to the same
 * record (and, for the intent and the local commit, to the input itself);
 * decoded fields keep their documented bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "util/err.h"

static void refused(int rc) {
  if ((rc != QUIRE_ECORRUPT && rc != QUIRE_EVERSION) || !*quire_errmsg()) abort();
}

static void vrec(const uint8_t *p, size_t n) {
  struct cl_vrec v, w;
  int rc = cl__vrec_decode(p, n, &v);
  if (rc) {
    refused(rc);
    return;
  }
  if (v.state > QUIRE_STATE_CONFLICT || v.remote_local > v.head || v.hwm < v.count) abort();
  quire_buf b;
  quire__buf_init(&b, 1 << 16);
  if (cl__vrec_encode(&v, &b) != 0) abort();
  if (cl__vrec_decode(b.data, b.len, &w) != 0) abort();
  if (memcmp(&v, &w, sizeof v) != 0) abort(); /* decode zeroes the struct first: padding and tails agree */
  quire__buf_free(&b);
}

static void intent(const uint8_t *p, size_t n) {
  struct cl_intent in;
  int rc = cl__intent_decode(p, n, &in);
  if (rc) {
    if (rc != QUIRE_ENOMEM) refused(rc);
    return;
  }
  quire_buf b;
  quire__buf_init(&b, 1 << 24);
  if (cl__intent_encode(&in, &b) != 0) abort();
  if (b.len != n || memcmp(b.data, p, n) != 0) abort(); /* one encoding per intent */
  for (uint32_t i = 0; i < in.nsegs; i++) {
    splinter_view_t g;
    if (in.segs[i].receipt_len > sizeof in.segs[i].receipt) abort();
    if (splinter_view_open(in.segs[i].graft, in.segs[i].graft_len, &g) != 0) abort();
  }
  quire__buf_free(&b);
  cl__intent_clear(&in);
}

static void lrec(const uint8_t *p, size_t n) {
  quire_pagecount count;
  uint64_t t;
  splinter_view_t pages;
  int rc = cl__lrec_decode(p, n, &count, &t, &pages);
  if (rc) {
    refused(rc);
    return;
  }
  splinter_t *s;
  if (splinter_new(&s) != 0) abort();
  if (splinter_assign(s, splinter_ref_view(&pages)) != 0) abort();
  quire_buf b;
  quire__buf_init(&b, 1 << 24);
  if (cl__lrec_encode(count, t, s, &b) != 0) abort();
  quire_pagecount c2;
  uint64_t t2;
  splinter_view_t again;
  if (cl__lrec_decode(b.data, b.len, &c2, &t2, &again) != 0 || c2 != count || t2 != t) abort();
  if (splinter_view_cardinality(&again) != splinter_view_cardinality(&pages)) abort();
  quire__buf_free(&b);
  splinter_free(s);
}

static void pval(const uint8_t *p, size_t n) {
  quire_lsn pending = 0;
  int rc = cl__pval_kind(p, n, &pending);
  if (rc < 0) {
    refused(rc);
    return;
  }
  if (rc == CL_PAGE_DATA && n != QUIRE_PAGE_SIZE) abort();
  if (rc == CL_PAGE_PENDING && (n != 9 || pending == 0)) abort();
  if (rc == CL_PAGE_EMPTY && n != 1) abort();
}

static void pkey(const uint8_t *p, size_t n) {
  quire_gid vid;
  memset(vid.b, 0x42, sizeof vid.b);
  quire_pageidx idx;
  quire_lsn lsn;
  if (!cl__key_p_parse(p, n, &vid, &idx, &lsn)) return;
  uint8_t k[CL_KEY_MAX];
  size_t kl = cl__key_p(k, &vid, idx, lsn);
  if (kl != n || memcmp(k, p, n) != 0) abort(); /* a P key parses only as what makes it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  switch (data[0] % 5) {
  case 0: vrec(p, n); break;
  case 1: intent(p, n); break;
  case 2: lrec(p, n); break;
  case 3: pval(p, n); break;
  default: pkey(p, n); break;
  }
  return 0;
}
