/*
 * gc_test.h — a metastore and a pagestore over loopback HTTP on one file
 * store, a model of every volume's pages at every LSN, and reads through the
 * real segment query checked against it. Shared by the gc tests.
 */
#ifndef QUIRE_GC_TEST_H
#define QUIRE_GC_TEST_H

#include "test.h"
#include "gc/gc_int.h"
#include "metastore/client.h"
#include "metastore/service.h"
#include "pagestore/client.h"
#include "pagestore/service.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

#define GT_PAGES 48
#define GT_MAX_LSN 512

struct gt_vol {
  quire_gid vid;
  quire_lsn head;
  uint32_t page_count[GT_MAX_LSN + 1];
  uint32_t (*model)[GT_PAGES + 1]; /* model[lsn][idx] = the writer's tag (0 = never written) */
};

struct gt {
  char *root;
  char store_url[4300], ms_url[64], ps_url[64], cache[4300];
  quire_ms_service *ms;
  quire_ps_service *ps;
  quire_msclient *msc;
  quire_psclient *psc;
  quire_objstore *store; /* a second handle on the same store, for gc/ */
  quire_gid client;
  uint32_t tag;
};

static inline void gt_fill(uint8_t *p, quire_pageidx idx, uint32_t tag) {
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 8) {
    st_le32(p + i, idx);
    st_le32(p + i + 4, tag ^ (uint32_t)i);
  }
}

static inline quire_ps_service *gt_start_ps(struct gt *t, const char *cache) {
  struct quire_ps_settings s = {.listen = "127.0.0.1:0"};
  s.ps.store_url = t->store_url;
  s.ps.metastore_url = t->ms_url;
  s.ps.catalog_path = ":memory:";
  s.ps.cache_dir = cache;
  quire_ps_service *svc;
  CHECK_OK(quire__ps_service_open(&s, &svc));
  return svc;
}

static inline void gt_open(struct gt *t, const char *name) {
  memset(t, 0, sizeof *t);
  t->root = test_tmpdir(name);
  snprintf(t->store_url, sizeof t->store_url, "file://%s/objects?fsync=0", t->root);
  snprintf(t->cache, sizeof t->cache, "%s/cache", t->root);
  struct quire_ms_settings mss = {
      .listen = "127.0.0.1:0", .store_url = t->store_url, .catalog_path = ":memory:"};
  CHECK_OK(quire__ms_service_open(&mss, &t->ms));
  snprintf(t->ms_url, sizeof t->ms_url, "http://127.0.0.1:%u", quire__ms_service_port(t->ms));
  CHECK_OK(quire__msclient_open(t->ms_url, NULL, &t->msc));
  t->ps = gt_start_ps(t, t->cache);
  snprintf(t->ps_url, sizeof t->ps_url, "http://127.0.0.1:%u", quire__ps_service_port(t->ps));
  CHECK_OK(quire__psclient_open(t->ps_url, NULL, &t->psc));
  CHECK_OK(quire_objstore_open(t->store_url, &t->store));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &t->client));
}

/* A pagestore with an empty catalog and cache replaces the running one
 * (reads then go to the store, not to cached segments). */
static inline void gt_cold_ps(struct gt *t) {
  quire__psclient_close(t->psc);
  quire__ps_service_close(t->ps, 1000);
  char cache[4400];
  snprintf(cache, sizeof cache, "%s/cache%u", t->root, ++t->tag);
  t->ps = gt_start_ps(t, cache);
  snprintf(t->ps_url, sizeof t->ps_url, "http://127.0.0.1:%u", quire__ps_service_port(t->ps));
  CHECK_OK(quire__psclient_open(t->ps_url, NULL, &t->psc));
}

static inline void gt_close(struct gt *t) {
  quire_objstore_close(t->store);
  quire__psclient_close(t->psc);
  quire__ps_service_close(t->ps, 1000);
  quire__msclient_close(t->msc);
  quire__ms_service_close(t->ms, 1000);
  test_rmtree(t->root);
  free(t->root);
}

static inline quire_metastore *gt_ms(struct gt *t) { return quire__ms_service_metastore(t->ms); }

static inline void gt_vol_new(struct gt_vol *v) {
  memset(v, 0, sizeof *v);
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &v->vid));
  v->model = calloc(GT_MAX_LSN + 1, sizeof *v->model);
}

static inline void gt_vol_free(struct gt_vol *v) { free(v->model); }

/* One client commit of n random pages (n 0: a page_count change only). */
static inline int gt_commit(struct gt *t, struct gt_vol *v, size_t n, uint32_t page_count) {
  quire_lsn lsn = v->head + 1;
  CHECK(lsn <= GT_MAX_LSN);
  memcpy(v->model[lsn], v->model[lsn - 1], sizeof v->model[0]);
  for (uint32_t i = page_count + 1; i <= GT_PAGES; i++) v->model[lsn][i] = 0;
  quire_pageidx idx[8];
  uint8_t bufs[8][QUIRE_PAGE_SIZE];
  const uint8_t *pages[8];
  for (size_t i = 0; i < n; i++) {
    quire_pageidx p;
    int dup;
    do {
      p = 1 + (quire_pageidx)test_rand_below(page_count);
      dup = 0;
      for (size_t k = 0; k < i; k++) dup |= idx[k] == p;
    } while (dup);
    idx[i] = p;
    uint32_t tag = ++t->tag;
    gt_fill(bufs[i], p, tag);
    pages[i] = bufs[i];
    v->model[lsn][p] = tag;
  }
  struct quire_ps_written *segs = NULL;
  size_t nsegs = 0;
  if (n) CHECK_OK(quire__psclient_write_pages(t->psc, &v->vid, idx, pages, n, NULL, &segs, &nsegs));
  struct quire_commit_segment cs[8];
  for (size_t i = 0; i < nsegs; i++)
    cs[i] = (struct quire_commit_segment){segs[i].sid, segs[i].graft, (uint32_t)segs[i].graft_len};
  quire_gid commit;
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit));
  struct quire_snapshot snap;
  int rc = quire__msclient_commit(t->msc, &v->vid, &t->client, &commit, v->head, page_count, cs,
                                  (uint32_t)nsegs, NULL, &snap);
  quire__psclient_written_free(segs, nsegs);
  if (rc == 0) {
    CHECK(snap.lsn == lsn);
    v->head = lsn;
    v->page_count[lsn] = page_count;
  }
  return rc;
}

/* The model gains the rewrite the checkpoint job committed at lsn. */
static inline void gt_rewrite(struct gt_vol *v, quire_lsn lsn) {
  CHECK(lsn == v->head + 1 && lsn <= GT_MAX_LSN);
  memcpy(v->model[lsn], v->model[lsn - 1], sizeof v->model[0]);
  v->page_count[lsn] = v->page_count[lsn - 1];
  v->head = lsn;
}

struct gt_read {
  const struct gt_vol *v;
  quire_lsn lsn;
  int bad;
};

static inline int gt_check_page(void *ctx, quire_pageidx idx, const uint8_t *data) {
  struct gt_read *r = ctx;
  uint8_t want[QUIRE_PAGE_SIZE];
  if (idx > GT_PAGES || r->v->model[r->lsn][idx] == 0) {
    r->bad++;
    return 0;
  }
  gt_fill(want, idx, r->v->model[r->lsn][idx]);
  if (memcmp(want, data, QUIRE_PAGE_SIZE) != 0) r->bad++;
  return 0;
}

/* Reads every page of v at lsn through the pagestore; 0 when they match
 * the model, else the read's error (or CHECK fails on wrong bytes). */
static inline int gt_read(quire_psclient *c, const struct gt_vol *v, const quire_gid *vid, quire_lsn lsn) {
  splinter_t *wanted, *missing = NULL;
  CHECK_OK(splinter_new(&wanted));
  CHECK_OK(splinter_insert_range(wanted, 1, GT_PAGES));
  struct gt_read r = {v, lsn, 0};
  int rc = quire__psclient_read_pages(c, vid, lsn, wanted, NULL, gt_check_page, &r, &missing);
  if (rc == 0) {
    CHECKF(r.bad == 0, "lsn %llu: %d pages with the wrong bytes", (unsigned long long)lsn, r.bad);
    for (quire_pageidx i = 1; i <= GT_PAGES; i++)
      CHECKF(splinter_contains(missing, i) == (v->model[lsn][i] == 0), "lsn %llu page %u: missing is wrong",
             (unsigned long long)lsn, i);
  }
  splinter_free(wanted);
  splinter_free(missing);
  return rc;
}

/* The model gains every commit after v->head, which must all be rewrites
 * (checkpoints a pass wrote). */
static inline void gt_sync_rewrites(struct gt *t, struct gt_vol *v) {
  quire_lsn head;
  CHECK_OK(quire__ms_refresh(gt_ms(t), &v->vid, &head));
  quire_buf b;
  quire__buf_init(&b, QUIRE_COMMIT_MAX_SIZE);
  while (v->head < head) {
    struct quire_snapshot s;
    CHECK_OK(quire__ms_load(gt_ms(t), &v->vid, v->head + 1, &b, NULL, &s));
    CHECKF(s.flags & QUIRE_COMMIT_F_REWRITE, "lsn %llu is not a rewrite", (unsigned long long)v->head + 1);
    gt_rewrite(v, v->head + 1);
  }
  quire__buf_free(&b);
}

/* Every segment a retained commit ([base, head] as ms sees them) of the n
 * volumes references exists in the store. Returns the references. */
static inline size_t gt_check_retained(struct gt *t, quire_metastore *ms, const struct gt_vol *vols, int n) {
  quire_buf buf;
  quire__buf_init(&buf, QUIRE_COMMIT_MAX_SIZE);
  size_t nref = 0;
  for (int i = 0; i < n; i++) {
    quire_lsn base;
    CHECK_OK(quire__ms_base(ms, &vols[i].vid, 0, &base));
    for (quire_lsn l = base; l <= vols[i].head; l++) {
      struct quire_commit c;
      CHECK_OK(quire__ms_load(ms, &vols[i].vid, l, &buf, &c, NULL));
      for (uint32_t k = 0; k < c.nsegments; k++) {
        char key[64], s[QUIRE_GID_TEXT_LEN + 1];
        quire_gid_format(&c.segments[k].sid, s);
        snprintf(key, sizeof key, "segments/%s", s);
        quire_objstore_info info;
        CHECKF(quire_objstore_head(t->store, key, &info) == 0, "retained %s (lsn %llu) was deleted", key,
               (unsigned long long)l);
        nref++;
      }
      quire__commit_clear(&c);
    }
  }
  quire__buf_free(&buf);
  return nref;
}

/* Objects under prefix (listed page by page). */
static inline size_t gt_count_keys(struct gt *t, const char *prefix) {
  quire_objstore_list list;
  size_t n = 0;
  char after[160] = "";
  for (;;) {
    CHECK_OK(quire_objstore_list_keys(t->store, prefix, after, 1000, &list));
    n += list.count;
    int more = list.truncated && list.count;
    if (more) snprintf(after, sizeof after, "%s", list.entries[list.count - 1].key);
    quire_objstore_list_free(&list);
    if (!more) return n;
  }
}

static inline size_t gt_count_segments(struct gt *t) { return gt_count_keys(t, "segments/"); }

#endif
