/*
 * History integrity through both services (a metastore on loopback, a
 * pagestore in process, one file:// store). Commits go straight to the
 * metastore's request handler (no client library), reads straight to the
 * pagestore's segment query; the pagestore catches its catalog up over HTTP.
 *
 *  - page_count: shrinking a volume makes the pages past the new count read
 *    as never written at that LSN and every later one, and growing it again
 *    does not bring the old bytes back; older LSNs keep their history.
 *  - a damaged log: with the catalogs rebuilt and one commit object garbage
 *    (then missing, with later ones present), reads below it work, reads at
 *    and past it and every commit fail with a corruption error naming the
 *    object; put back, the volume is whole again.
 *  - write receipts: commits naming segments nobody wrote (20,000 of them),
 *    without receipts, into another volume, or with pages the segment was
 *    not written with are refused (403); a declared subset is fine.
 */
#include "test.h"
#include "core/receipt.h"
#include "metastore/service.h"
#include "pagestore/ps_int.h"
#include "proto/metastore.pb-c.h"
#include "proto/pb.h"
#include "util/util.h"

#include <string.h>

static char *root;
static char ms_url[64], store_url[512];
static quire_ms_service *ms;
static quire_pagestore *ps;
static quire_gid client;
static char key_file[600];
static uint8_t receipt_key[QUIRE_RECEIPT_KEY_SIZE]; /* the receipt key both services share */

static void fill(uint8_t *p, quire_pageidx idx, unsigned version) {
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 4)
    st_le32(p + i, idx * 1000003u + version * 7919u + (uint32_t)i);
}

/* The segments of one write_pages, ready to commit. */
struct written {
  size_t n;
  quire_gid sid[8];
  uint8_t *graft[8];
  size_t graft_len[8];
  uint8_t receipt[8][QUIRE_RECEIPT_SIZE]; /* what write_pages answers over HTTP */
  int no_receipt;                         /* commit without receipts */
  const uint8_t *receipt_graft[8];        /* commit a subset of what was written */
  size_t receipt_graft_len[8];
};

static void written_free(struct written *w) {
  for (size_t i = 0; i < w->n; i++) splinter_bytes_free(w->graft[i]);
  memset(w, 0, sizeof *w);
}

/* Writes pages idx[0..n) of vid with content version; fills *out. */
static void write_pages(const quire_gid *vid, const quire_pageidx *idx, size_t n, unsigned version,
                        struct written *out) {
  static uint8_t bufs[64][QUIRE_PAGE_SIZE];
  const uint8_t *pages[64];
  CHECK(n <= 64);
  for (size_t i = 0; i < n; i++) {
    fill(bufs[i], idx[i], version);
    pages[i] = bufs[i];
  }
  ps_write *w;
  CHECK_OK(quire__ps_write_wait(ps, vid, idx, pages, n, &w));
  const quire_gid *sids;
  const splinter_t *const *grafts;
  memset(out, 0, sizeof *out);
  out->n = quire__ps_write_segments(w, &sids, &grafts);
  CHECK(out->n <= 8);
  for (size_t k = 0; k < out->n; k++) {
    out->sid[k] = sids[k];
    CHECK_OK(splinter_serialize_alloc(grafts[k], &out->graft[k], &out->graft_len[k]));
    quire__receipt_make(receipt_key, vid, &sids[k], out->graft[k], out->graft_len[k], out->receipt[k]);
  }
  quire__ps_write_free(w);
}

/* Commits w (may be NULL: no segments) at base + 1 through the metastore's
 * request handler. Returns its rc; *lsn gets the new LSN. */
static int commit(const quire_gid *vid, quire_lsn base, quire_pagecount page_count, const struct written *w,
                  quire_lsn *lsn) {
  Quire__Metastore__V1__CommitRequest m = QUIRE__METASTORE__V1__COMMIT_REQUEST__INIT;
  quire_gid cid;
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
  m.has_vid = m.has_client_id = m.has_commit_id = m.has_page_count = 1;
  m.vid = quire__pb_gid_bytes(vid);
  m.client_id = quire__pb_gid_bytes(&client);
  m.commit_id = quire__pb_gid_bytes(&cid);
  m.has_base_lsn = base > 0;
  m.base_lsn = base;
  m.page_count = page_count;
  Quire__Common__V1__SegmentInfo infos[8], *ptrs[8];
  size_t n = w ? w->n : 0;
  for (size_t k = 0; k < n; k++) {
    quire__common__v1__segment_info__init(&infos[k]);
    infos[k].has_sid = infos[k].has_graft = 1;
    infos[k].sid = quire__pb_gid_bytes(&w->sid[k]);
    infos[k].graft.data = w->graft[k];
    infos[k].graft.len = w->graft_len[k];
    infos[k].has_receipt = !w->no_receipt;
    infos[k].receipt.data = (uint8_t *)w->receipt[k];
    infos[k].receipt.len = QUIRE_RECEIPT_SIZE;
    infos[k].has_receipt_graft = w->receipt_graft[k] != NULL;
    infos[k].receipt_graft.data = (uint8_t *)w->receipt_graft[k];
    infos[k].receipt_graft.len = w->receipt_graft_len[k];
    ptrs[k] = &infos[k];
  }
  m.n_segments = n;
  m.segments = ptrs;
  quire_buf req, resp;
  quire__buf_init(&req, 64u << 20);
  quire__buf_init(&resp, 64u << 20);
  CHECK_OK(quire__pb_pack(&m.base, &req));
  int rc = quire__ms_handle_commit(quire__ms_service_metastore(ms), req.data, req.len, &resp);
  if (rc == 0) {
    Quire__Metastore__V1__CommitResponse *r =
        quire__metastore__v1__commit_response__unpack(&quire__pb_allocator, resp.len, resp.data);
    CHECK(r && r->snapshot && r->snapshot->has_lsn);
    *lsn = r->snapshot->lsn;
    quire__metastore__v1__commit_response__free_unpacked(r, &quire__pb_allocator);
  }
  quire__buf_free(&req);
  quire__buf_free(&resp);
  return rc;
}

/* What a read returned: version[idx] of each page served (0 = not served),
 * and the pages reported missing. */
struct got {
  unsigned version[65];
  splinter_t *missing;
};

static int on_pages(void *ctx, const quire_pageidx *idx, const uint8_t *const *pages, size_t n) {
  struct got *g = ctx;
  for (size_t i = 0; i < n; i++) {
    CHECK(idx[i] <= 64 && g->version[idx[i]] == 0);
    uint8_t want[QUIRE_PAGE_SIZE];
    unsigned v;
    for (v = 1; v < 100; v++) {
      fill(want, idx[i], v);
      if (memcmp(want, pages[i], QUIRE_PAGE_SIZE) == 0) break;
    }
    CHECKF(v < 100, "page %u has content no write gave it", idx[i]);
    g->version[idx[i]] = v;
  }
  return 0;
}

/* Reads pages 1..64 of vid at lsn. */
static int read_all(const quire_gid *vid, quire_lsn lsn, struct got *g) {
  memset(g, 0, sizeof *g);
  splinter_t *wanted;
  CHECK_OK(splinter_new(&wanted));
  CHECK_OK(splinter_insert_range(wanted, 1, 64));
  int rc = quire__ps_read(ps, vid, lsn, splinter_ref_owned(wanted), on_pages, g, &g->missing);
  splinter_free(wanted);
  return rc;
}

/* Checks the read at lsn: pages in [lo, hi] have version v, the others in
 * 1..64 are missing (never written). */
static void expect(const struct got *g, quire_pageidx lo, quire_pageidx hi, unsigned v) {
  for (quire_pageidx p = 1; p <= 64; p++) {
    if (p >= lo && p <= hi) {
      CHECKF(g->version[p] == v, "page %u: version %u, want %u", p, g->version[p], v);
    } else {
      CHECKF(g->version[p] == 0 && splinter_contains(g->missing, p), "page %u: version %u, want missing", p,
             g->version[p]);
    }
  }
}

static void test_page_count(void) {
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  quire_pageidx idx[64];
  for (unsigned i = 0; i < 64; i++) idx[i] = i + 1;
  struct written w;
  quire_lsn l1, l2, l3, l4, l5, l6;
  write_pages(&vid, idx, 64, 1, &w);
  CHECK_OK(commit(&vid, 0, 64, &w, &l1)); /* 1..64 version 1 */
  written_free(&w);
  CHECK_OK(commit(&vid, l1, 0, NULL, &l2));  /* shrink to nothing */
  CHECK_OK(commit(&vid, l2, 64, NULL, &l3)); /* grow back: nothing comes back */
  write_pages(&vid, idx + 2, 1, 4, &w);
  CHECK_OK(commit(&vid, l3, 64, &w, &l4)); /* page 3 version 4 */
  written_free(&w);
  CHECK_OK(commit(&vid, l4, 2, NULL, &l5));  /* shrink to 2: page 3 goes too */
  CHECK_OK(commit(&vid, l5, 40, NULL, &l6)); /* grow to 40 */
  struct got g;
  CHECK_OK(read_all(&vid, l1, &g));
  expect(&g, 1, 64, 1);
  splinter_free(g.missing);
  quire_lsn empty[] = {l2, l3, l5, l6};
  for (size_t i = 0; i < 4; i++) {
    CHECK_OK(read_all(&vid, empty[i], &g));
    expect(&g, 1, 0, 0); /* all missing */
    splinter_free(g.missing);
  }
  CHECK_OK(read_all(&vid, l4, &g));
  expect(&g, 3, 3, 4);
  splinter_free(g.missing);
}

static void open_services(void) {
  struct quire_ms_settings mss = {.listen = "127.0.0.1:0",
                                  .store_url = store_url,
                                  .catalog_path = ":memory:",
                                  .receipt_key_file = key_file};
  CHECK_OK(quire__ms_service_open(&mss, &ms));
  snprintf(ms_url, sizeof ms_url, "http://127.0.0.1:%u", quire__ms_service_port(ms));
  char cache[4096];
  static int generation;
  snprintf(cache, sizeof cache, "%s/cache%d", root, generation++); /* each start is cold */
  struct quire_pagestore_opts o = {.store_url = store_url,
                                   .metastore_url = ms_url,
                                   .catalog_path = ":memory:",
                                   .cache_dir = cache,
                                   .flush_interval_ms = 5,
                                   .receipt_key = receipt_key};
  CHECK_OK(quire__pagestore_open(&o, &ps));
}

static void close_services(void) {
  quire__pagestore_close(ps);
  quire__ms_service_close(ms, 1000);
  ps = NULL;
  ms = NULL;
}

/* Both catalogs are rebuilt from the store (an operator deleted them, or a
 * new machine took over): fresh services over the same objects. */
static void restart_cold(void) {
  close_services();
  open_services();
}

/* One damaged commit object (garbage, then missing): the volume answers
 * every LSN before it, refuses what needs the rest, names the object; put
 * back, everything works again. */
static void test_damaged_log(void) {
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  quire_lsn lsn[6] = {0};
  for (unsigned k = 1; k <= 5; k++) { /* commit k writes pages 1..k with version k */
    quire_pageidx idx[5];
    for (unsigned i = 0; i < k; i++) idx[i] = i + 1;
    struct written w;
    write_pages(&vid, idx, k, k, &w);
    CHECK_OK(commit(&vid, lsn[k - 1], 64, &w, &lsn[k]));
    CHECK(lsn[k] == k);
    written_free(&w);
  }
  char key[64];
  quire__commit_key(&vid, 3, key);
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(store_url, &store));
  uint8_t *orig;
  size_t orig_len;
  CHECK_OK(quire_objstore_get(store, key, &orig, &orig_len));
  struct got g;
  for (int damage = 0; damage < 2; damage++) {
    if (damage == 0)
      CHECK_OK(quire_objstore_put(store, key, "not a commit record at all", 26));
    else
      CHECK_OK(quire_objstore_delete(store, key));
    restart_cold();
    /* Older LSNs read as they always did. */
    for (quire_lsn l = 1; l <= 2; l++) {
      CHECK_OK(read_all(&vid, l, &g));
      expect(&g, 1, (quire_pageidx)l, (unsigned)l);
      splinter_free(g.missing);
    }
    /* At and past the damage: a corruption error naming the object. */
    for (quire_lsn l = 3; l <= 5; l++) {
      CHECK_RC(read_all(&vid, l, &g), QUIRE_ECORRUPT);
      CHECKF(strstr(quire_errmsg(), key) != NULL, "%s", quire_errmsg());
      splinter_free(g.missing);
    }
    /* No commit may fill the hole or go past it. */
    quire_lsn l;
    CHECK_RC(commit(&vid, 2, 64, NULL, &l), QUIRE_ECORRUPT);
    CHECKF(strstr(quire_errmsg(), key) != NULL, "%s", quire_errmsg());
    CHECK_RC(commit(&vid, 5, 64, NULL, &l), QUIRE_ECORRUPT);
  }
  /* Put back, the volume is whole again and takes commits. */
  CHECK_OK(quire_objstore_put(store, key, orig, orig_len));
  restart_cold();
  for (quire_lsn l = 1; l <= 5; l++) {
    CHECK_OK(read_all(&vid, l, &g));
    expect(&g, 1, (quire_pageidx)l, (unsigned)l);
    splinter_free(g.missing);
  }
  quire_lsn l6;
  CHECK_OK(commit(&vid, 5, 64, NULL, &l6));
  CHECK(l6 == 6);
  quire_objstore_free(orig);
  quire_objstore_close(store);
}

/* The serialized splinter of pages[0..n) (ascending); free with
 * splinter_bytes_free. */
static void graft_of(const uint32_t *pages, size_t n, uint8_t **bytes, size_t *len) {
  splinter_t *g;
  CHECK_OK(splinter_from_sorted(pages, n, &g));
  CHECK_OK(splinter_serialize_alloc(g, bytes, len));
  splinter_free(g);
}

/* Commits may only name segments a pagestore wrote for that volume with
 * those pages: each needs the write receipt (a MAC under the key the
 * metastore shares with the pagestores). */
static void test_receipts(void) {
  quire_gid vid, other;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &other));
  quire_lsn l1, l;

  /* 20,000 segment ids nobody wrote, each claiming one page: refused, and
   * the volume is untouched. */
  {
    enum { FAKE = 20000 };
    Quire__Metastore__V1__CommitRequest m = QUIRE__METASTORE__V1__COMMIT_REQUEST__INIT;
    quire_gid cid;
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
    m.has_vid = m.has_client_id = m.has_commit_id = m.has_page_count = 1;
    m.vid = quire__pb_gid_bytes(&vid);
    m.client_id = quire__pb_gid_bytes(&client);
    m.commit_id = quire__pb_gid_bytes(&cid);
    m.page_count = FAKE;
    Quire__Common__V1__SegmentInfo *infos = calloc(FAKE, sizeof *infos);
    Quire__Common__V1__SegmentInfo **ptrs = calloc(FAKE, sizeof *ptrs);
    quire_gid *sids = calloc(FAKE, sizeof *sids);
    uint8_t **grafts = calloc(FAKE, sizeof *grafts);
    uint8_t mac[QUIRE_RECEIPT_SIZE] = {0};
    CHECK(infos && ptrs && sids && grafts);
    for (uint32_t i = 0; i < FAKE; i++) {
      CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sids[i]));
      uint32_t page = i + 1;
      size_t len;
      graft_of(&page, 1, &grafts[i], &len);
      quire__common__v1__segment_info__init(&infos[i]);
      infos[i].has_sid = infos[i].has_graft = 1;
      infos[i].sid = quire__pb_gid_bytes(&sids[i]);
      infos[i].graft.data = grafts[i];
      infos[i].graft.len = len;
      infos[i].has_receipt = i % 2; /* half without, half with a made-up one */
      infos[i].receipt.data = mac;
      infos[i].receipt.len = sizeof mac;
      ptrs[i] = &infos[i];
    }
    m.n_segments = FAKE;
    m.segments = ptrs;
    quire_buf req, resp;
    quire__buf_init(&req, 64u << 20);
    quire__buf_init(&resp, 1 << 20);
    CHECK_OK(quire__pb_pack(&m.base, &req));
    CHECK_RC(quire__ms_handle_commit(quire__ms_service_metastore(ms), req.data, req.len, &resp),
             QUIRE_EFORBIDDEN);
    CHECKF(strstr(quire_errmsg(), "segment 0: no write receipt"), "%s", quire_errmsg());
    for (uint32_t i = 0; i < FAKE; i++) infos[i].has_receipt = 1;
    quire__buf_reset(&req);
    CHECK_OK(quire__pb_pack(&m.base, &req));
    CHECK_RC(quire__ms_handle_commit(quire__ms_service_metastore(ms), req.data, req.len, &resp),
             QUIRE_EFORBIDDEN);
    CHECKF(strstr(quire_errmsg(), "receipt does not match"), "%s", quire_errmsg());
    for (uint32_t i = 0; i < FAKE; i++) splinter_bytes_free(grafts[i]);
    free(infos);
    free(ptrs);
    free(sids);
    free(grafts);
    quire__buf_free(&req);
    quire__buf_free(&resp);
  }

  quire_pageidx idx[4] = {1, 2, 3, 4};
  struct written w;
  write_pages(&vid, idx, 4, 1, &w);
  CHECK(w.n == 1);
  /* Without the receipt. */
  w.no_receipt = 1;
  CHECK_RC(commit(&vid, 0, 64, &w, &l), QUIRE_EFORBIDDEN);
  w.no_receipt = 0;
  /* Into another volume: the receipt names the volume. */
  CHECK_RC(commit(&other, 0, 64, &w, &l), QUIRE_EFORBIDDEN);
  CHECKF(strstr(quire_errmsg(), "receipt does not match"), "%s", quire_errmsg());
  /* Claiming a page the segment was not written with. */
  {
    uint32_t more[5] = {1, 2, 3, 4, 9};
    uint8_t *bytes;
    size_t len;
    graft_of(more, 5, &bytes, &len);
    struct written forged = w;
    forged.graft[0] = bytes;
    forged.graft_len[0] = len;
    CHECK_RC(commit(&vid, 0, 64, &forged, &l), QUIRE_EFORBIDDEN);
    /* ... also when saying what was written. */
    forged.receipt_graft[0] = w.graft[0];
    forged.receipt_graft_len[0] = w.graft_len[0];
    CHECK_RC(commit(&vid, 0, 64, &forged, &l), QUIRE_EFORBIDDEN);
    CHECKF(strstr(quire_errmsg(), "not written with"), "%s", quire_errmsg());
    splinter_bytes_free(bytes);
  }
  /* A subset of what was written, saying what was written: fine. */
  {
    uint32_t some[2] = {2, 4};
    uint8_t *bytes;
    size_t len;
    graft_of(some, 2, &bytes, &len);
    struct written sub = w;
    sub.graft[0] = bytes;
    sub.graft_len[0] = len;
    CHECK_RC(commit(&vid, 0, 64, &sub, &l), QUIRE_EFORBIDDEN); /* the receipt is for all four */
    sub.receipt_graft[0] = w.graft[0];
    sub.receipt_graft_len[0] = w.graft_len[0];
    CHECK_OK(commit(&vid, 0, 64, &sub, &l1));
    splinter_bytes_free(bytes);
    struct got g2;
    CHECK_OK(read_all(&vid, l1, &g2));
    for (quire_pageidx p = 1; p <= 64; p++) CHECK(g2.version[p] == (p == 2 || p == 4 ? 1u : 0u));
    splinter_free(g2.missing);
  }
  /* The whole write, with its receipt. */
  CHECK_OK(commit(&vid, l1, 64, &w, &l));
  CHECK(l == l1 + 1);
  written_free(&w);
}

/* A segment lost from the store: the read fails, and the error says which
 * segment and why (the failure happens on a loader thread; its message
 * used to stay there, and the error frame went out empty). */
static void test_lost_segment(void) {
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  quire_lsn l1, l2;
  quire_pageidx a[2] = {1, 2}, b[2] = {3, 4};
  struct written w1, w2;
  write_pages(&vid, a, 2, 1, &w1);
  CHECK_OK(commit(&vid, 0, 64, &w1, &l1));
  write_pages(&vid, b, 2, 2, &w2);
  CHECK_OK(commit(&vid, l1, 64, &w2, &l2));
  CHECK(quire_gid_cmp(&w1.sid[0], &w2.sid[0]) != 0);
  char key[64], sid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&w1.sid[0], sid);
  snprintf(key, sizeof key, "segments/%s", sid);
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(store_url, &store));
  CHECK_OK(quire_objstore_delete(store, key));
  quire_objstore_close(store);
  restart_cold();
  struct got g;
  quire__err_clear();
  CHECK_RC(read_all(&vid, l2, &g), QUIRE_ECORRUPT);
  CHECKF(strstr(quire_errmsg(), sid) && strstr(quire_errmsg(), "missing from the store"), "'%s'",
         quire_errmsg());
  splinter_free(g.missing);
  written_free(&w1);
  written_free(&w2);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_seed();
  quire__log_set_level(-1);
  root = test_tmpdir("ps-integrity");
  snprintf(store_url, sizeof store_url, "file://%s/objects", root);
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  snprintf(key_file, sizeof key_file, "%s/receipt.key", root);
  CHECK_OK(quire__receipt_key_ensure(key_file, receipt_key));
  open_services();
  test_page_count();
  test_damaged_log();
  test_receipts();
  test_lost_segment();
  close_services();
  CHECK(quire__never_count() == 0);
  test_rmtree(root);
  free(root);
  return test_done("pagestore_integrity");
}
