/*
 * Segments: round trips with many volumes and pages against a model, the
 * size formula, builder ordering and limits, every corruption path
 * (truncations, extensions, flipped bytes in each region, and structural
 * damage with valid checksums), index-only opens and the partial-read
 * planner, including fetching planned ranges from an object store.
 */
#include "quire/objstore.h"
#include "quire/segment.h"
#include "segment/segment_int.h"
#include "test.h"
#include "util/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Page contents are a function of (volume, index) so any page can be
 * checked without keeping a copy. */
static void page_fill(uint8_t *page, const quire_gid *vid, quire_pageidx idx) {
  uint64_t x = quire__xxh3(vid->b, 16) ^ ((uint64_t)idx * 0x9E3779B97F4A7C15ull);
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    st_le64(page + i, x);
  }
}

struct model {
  quire_gid vids[64];
  uint32_t nvols;
  uint32_t *idx[64];
  uint32_t count[64];
  uint32_t pages;
};

static int gid_cmp_q(const void *a, const void *b) { return quire_gid_cmp(a, b); }
static int u32_cmp_q(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void model_make(struct model *m, uint32_t nvols, uint32_t max_per_vol, uint32_t max_idx) {
  memset(m, 0, sizeof *m);
  m->nvols = nvols;
  for (uint32_t v = 0; v < nvols; v++)
    CHECK_OK(quire_gid_new_at(QUIRE_GID_VOLUME, 1000 + test_rand_below(1000), &m->vids[v]));
  qsort(m->vids, nvols, sizeof m->vids[0], gid_cmp_q);
  for (uint32_t v = 0; v < nvols; v++) {
    uint32_t want = 1 + (uint32_t)test_rand_below(max_per_vol);
    uint32_t *idx = malloc(want * sizeof *idx);
    uint32_t n = 0;
    while (n < want) {
      uint32_t x = 1 + (uint32_t)test_rand_below(max_idx);
      int dup = 0;
      for (uint32_t j = 0; j < n; j++) dup |= idx[j] == x;
      if (!dup) idx[n++] = x;
    }
    qsort(idx, n, sizeof *idx, u32_cmp_q);
    m->idx[v] = idx;
    m->count[v] = n;
    m->pages += n;
  }
}

static void model_free(struct model *m) {
  for (uint32_t v = 0; v < m->nvols; v++) free(m->idx[v]);
}

static quire_segment_builder *model_build(const struct model *m, const quire_segment_limits *lim) {
  quire_gid sid;
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid));
  quire_segment_builder *b;
  CHECK_OK(quire_segment_builder_new(&sid, lim, &b));
  uint8_t page[QUIRE_PAGE_SIZE];
  for (uint32_t v = 0; v < m->nvols; v++)
    for (uint32_t i = 0; i < m->count[v]; i++) {
      page_fill(page, &m->vids[v], m->idx[v][i]);
      CHECK_OK(quire_segment_builder_add(b, &m->vids[v], m->idx[v][i], page));
    }
  CHECK(quire_segment_builder_pages(b) == m->pages);
  CHECK(quire_segment_builder_volumes(b) == m->nvols);
  return b;
}

static void check_view(const quire_segment_view *v, const struct model *m) {
  CHECK(v->volume_count == m->nvols && v->page_count == m->pages);
  CHECK(v->size == quire_segment_size(m->nvols, m->pages));
  uint8_t want[QUIRE_PAGE_SIZE];
  for (uint32_t i = 0; i < m->nvols; i++) {
    quire_gid vid;
    uint32_t first, count, first2, count2;
    quire_segment_volume_at(v, i, &vid, &first, &count);
    CHECK(quire_gid_cmp(&vid, &m->vids[i]) == 0 && count == m->count[i]);
    CHECK_OK(quire_segment_find_volume(v, &m->vids[i], &first2, &count2));
    CHECK(first == first2 && count == count2);
    quire_segment_iter it;
    quire_segment_iter_volume(v, &m->vids[i], &it);
    for (uint32_t k = 0; k < m->count[i]; k++) {
      quire_pageidx idx;
      uint32_t slot, slot2;
      const uint8_t *page;
      CHECK_OK(quire_segment_iter_next(&it, &idx, &slot, &page));
      CHECK(idx == m->idx[i][k] && slot == first + k);
      CHECK_OK(quire_segment_find_page(v, &m->vids[i], idx, &slot2));
      CHECK(slot2 == slot);
      CHECK(quire_segment_slot_pageidx(v, slot) == idx);
      if (v->pages) {
        const uint8_t *p2;
        page_fill(want, &m->vids[i], idx);
        CHECK(memcmp(page, want, QUIRE_PAGE_SIZE) == 0);
        CHECK_OK(quire_segment_read_page(v, &m->vids[i], idx, &p2));
        CHECK(p2 == page);
      }
      CHECK(quire_segment_slot_checksum(v, slot) ==
            quire__xxh3((page_fill(want, &m->vids[i], idx), want), QUIRE_PAGE_SIZE));
      /* a neighbour that is not in the model is not found */
      uint32_t absent = idx + 1;
      if (k + 1 < m->count[i] && m->idx[i][k + 1] == absent) continue;
      CHECK_RC(quire_segment_find_page(v, &m->vids[i], absent, &slot2), QUIRE_ENOTFOUND);
    }
    CHECK_RC(quire_segment_iter_next(&it, NULL, NULL, NULL), QUIRE_EEND);
    CHECK_RC(quire_segment_find_page(v, &m->vids[i], 0, &first2), QUIRE_ENOTFOUND);
    /* the volume's pages as a splinter equal the model's */
    splinter_t *pages, *model_pages;
    CHECK_OK(quire_segment_volume_pages(v, &m->vids[i], &pages));
    CHECK_OK(splinter_from_sorted(m->idx[i], m->count[i], &model_pages));
    CHECK(splinter_equal(splinter_ref_owned(pages), splinter_ref_owned(model_pages)));
    splinter_free(pages);
    splinter_free(model_pages);
  }
  quire_gid other;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &other));
  uint32_t a, b;
  CHECK_RC(quire_segment_find_volume(v, &other, &a, &b), QUIRE_ENOTFOUND);
  quire_segment_iter it;
  quire_segment_iter_volume(v, &other, &it);
  CHECK_RC(quire_segment_iter_next(&it, NULL, NULL, NULL), QUIRE_EEND);
  splinter_t *none;
  CHECK_OK(quire_segment_volume_pages(v, &other, &none));
  CHECK(splinter_is_empty(none));
  splinter_free(none);
}

static void test_round_trips(void) {
  int rounds = test_long_mode() ? 200 : 25;
  for (int r = 0; r < rounds; r++) {
    struct model m;
    model_make(&m, 1 + (uint32_t)test_rand_below(60), 1 + (uint32_t)test_rand_below(r % 3 ? 20 : 120),
               r % 2 ? 200 : 4000000);
    quire_segment_builder *b = model_build(&m, NULL);
    uint8_t *buf;
    size_t len;
    CHECK_OK(quire_segment_builder_to_buf(b, &buf, &len));
    /* the documented formula */
    CHECK(len == 4108ull * m.pages + 24ull * m.nvols + 64);
    CHECK(len == quire_segment_builder_size(b));
    quire_segment_view v;
    CHECK_OK(quire_segment_open(buf, len, NULL, &v));
    CHECK_OK(quire_segment_verify_pages(&v));
    check_view(&v, &m);
    /* index-only view from the tail */
    uint64_t tail_len;
    CHECK_OK(quire_segment_tail_length(buf + len - 64, len, NULL, &tail_len));
    CHECK(tail_len == 24ull * m.nvols + 12ull * m.pages + 64);
    CHECK(tail_len <= quire_segment_max_tail(NULL));
    quire_segment_view iv;
    CHECK_OK(quire_segment_index_open(buf + len - tail_len, (size_t)tail_len, len, NULL, &iv));
    CHECK(iv.pages == NULL);
    check_view(&iv, &m);
    CHECK_RC(quire_segment_verify_pages(&iv), QUIRE_EINVAL);
    quire_segment_free(buf);
    quire_segment_builder_free(b);
    model_free(&m);
  }
}

static void test_outputs(void) {
  struct model m;
  model_make(&m, 5, 30, 1000);
  quire_segment_builder *b = model_build(&m, NULL);
  uint8_t *buf;
  size_t len;
  CHECK_OK(quire_segment_builder_to_buf(b, &buf, &len));
  /* to a file descriptor, read back through mmap */
  char *dir = test_tmpdir("segment");
  char path[4200];
  snprintf(path, sizeof path, "%s/seg", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  CHECK_OK(quire_segment_builder_to_fd(b, fd));
  void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  CHECK(map != MAP_FAILED);
  CHECK(memcmp(map, buf, len) == 0);
  quire_segment_view v;
  CHECK_OK(quire_segment_open(map, len, NULL, &v));
  check_view(&v, &m);
  munmap(map, len);
  close(fd);
  /* to an object store with a streaming writer */
  quire_objstore *s;
  CHECK_OK(quire_objstore_open("mem://", &s));
  CHECK_OK(quire_segment_builder_to_store(b, s, "segments/x", QUIRE_OBJSTORE_IF_ABSENT));
  CHECK_RC(quire_segment_builder_to_store(b, s, "segments/x", QUIRE_OBJSTORE_IF_ABSENT), QUIRE_EEXIST);
  uint8_t *got;
  size_t got_len;
  CHECK_OK(quire_objstore_get(s, "segments/x", &got, &got_len));
  CHECK(got_len == len && memcmp(got, buf, len) == 0);
  quire_objstore_free(got);
  CHECK_RC(quire_segment_builder_to_store(b, s, "bad key", 0), QUIRE_EINVAL);
  quire_objstore_close(s);
  /* a sink error stops the write and is returned */
  quire_segment_free(buf);
  quire_segment_builder_free(b);
  model_free(&m);
  test_rmtree(dir);
  free(dir);
}

static int failing_sink(void *ctx, const void *data, size_t len) {
  (void)data;
  size_t *left = ctx;
  if (len > *left) return QUIRE_EIO;
  *left -= len;
  return 0;
}

static void test_builder_rules(void) {
  quire_gid sid, v1, v2, c;
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid));
  CHECK_OK(quire_gid_new_at(QUIRE_GID_VOLUME, 1000, &v1));
  CHECK_OK(quire_gid_new_at(QUIRE_GID_VOLUME, 2000, &v2));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &c));
  quire_segment_builder *b;
  CHECK_RC(quire_segment_builder_new(&c, NULL, &b), QUIRE_EINVAL);
  quire_segment_limits lim = {0, 1, 1};
  CHECK_RC(quire_segment_builder_new(&sid, &lim, &b), QUIRE_EINVAL);
  lim = (quire_segment_limits){1 << 20, 0, 10};
  CHECK_RC(quire_segment_builder_new(&sid, &lim, &b), QUIRE_EINVAL);
  lim = (quire_segment_limits){1 << 20, 10, QUIRE_SEGMENT_HARD_MAX_PAGES + 1};
  CHECK_RC(quire_segment_builder_new(&sid, &lim, &b), QUIRE_EINVAL);

  /* an empty segment is valid: just the footer */
  CHECK_OK(quire_segment_builder_new(&sid, NULL, &b));
  uint8_t *buf;
  size_t len;
  CHECK_OK(quire_segment_builder_to_buf(b, &buf, &len));
  CHECK(len == 64);
  quire_segment_view v;
  CHECK_OK(quire_segment_open(buf, len, NULL, &v));
  CHECK(v.volume_count == 0 && v.page_count == 0 && quire_gid_cmp(&v.sid, &sid) == 0);
  quire_segment_free(buf);

  uint8_t page[QUIRE_PAGE_SIZE] = {1};
  CHECK_RC(quire_segment_builder_add(b, &c, 1, page), QUIRE_EINVAL);
  CHECK_RC(quire_segment_builder_add(b, &v1, 0, page), QUIRE_EINVAL);
  CHECK_RC(quire_segment_builder_add(b, &v1, 1, NULL), QUIRE_EINVAL);
  CHECK_OK(quire_segment_builder_add(b, &v2, 5, page));
  CHECK_RC(quire_segment_builder_add(b, &v2, 5, page), QUIRE_EINVAL); /* one version per page */
  CHECK_RC(quire_segment_builder_add(b, &v2, 4, page), QUIRE_EINVAL); /* ascending */
  CHECK_RC(quire_segment_builder_add(b, &v1, 9, page), QUIRE_EINVAL); /* volumes ascending */
  CHECK_OK(quire_segment_builder_add(b, &v2, 6, page));
  CHECK(quire_segment_builder_pages(b) == 2 && quire_segment_builder_volumes(b) == 1);
  /* a sink that fails part way */
  for (size_t budget = 0; budget < quire_segment_builder_size(b); budget += 4096) {
    size_t left = budget;
    CHECK_RC(quire_segment_builder_write(b, failing_sink, &left), QUIRE_EIO);
  }
  quire_segment_builder_free(b);
  quire_segment_builder_free(NULL);

  /* limits: pages, volumes, bytes; a refused page leaves the builder as it was */
  quire_gid vids[8];
  for (int i = 0; i < 8; i++) CHECK_OK(quire_gid_new_at(QUIRE_GID_VOLUME, 5000 + (uint64_t)i, &vids[i]));
  lim = (quire_segment_limits){1 << 30, 3, 10};
  CHECK_OK(quire_segment_builder_new(&sid, &lim, &b));
  for (quire_pageidx i = 1; i <= 10; i++) CHECK_OK(quire_segment_builder_add(b, &vids[0], i, page));
  CHECK(!quire_segment_builder_fits(b, &vids[0], 1));
  CHECK_RC(quire_segment_builder_add(b, &vids[0], 11, page), QUIRE_ETOOLARGE);
  CHECK(quire_segment_builder_pages(b) == 10);
  quire_segment_builder_free(b);
  CHECK_OK(quire_segment_builder_new(&sid, &lim, &b));
  for (int i = 0; i < 3; i++) CHECK_OK(quire_segment_builder_add(b, &vids[i], 1, page));
  CHECK(quire_segment_builder_fits(b, &vids[2], 1));
  CHECK(!quire_segment_builder_fits(b, &vids[3], 1));
  CHECK_RC(quire_segment_builder_add(b, &vids[3], 1, page), QUIRE_ETOOLARGE);
  CHECK_OK(quire_segment_builder_add(b, &vids[2], 2, page));
  quire_segment_builder_free(b);
  lim = (quire_segment_limits){quire_segment_size(2, 3), 100, 100};
  CHECK_OK(quire_segment_builder_new(&sid, &lim, &b));
  CHECK_OK(quire_segment_builder_add(b, &vids[0], 1, page));
  CHECK_OK(quire_segment_builder_add(b, &vids[0], 2, page));
  CHECK_OK(quire_segment_builder_add(b, &vids[1], 1, page));
  CHECK_RC(quire_segment_builder_add(b, &vids[1], 2, page), QUIRE_ETOOLARGE);
  CHECK(quire_segment_builder_size(b) == lim.target_bytes);
  CHECK_OK(quire_segment_builder_to_buf(b, &buf, &len));
  CHECK(len == lim.target_bytes);
  /* a reader with smaller limits refuses it */
  quire_segment_limits small = {lim.target_bytes - 1, 100, 100};
  CHECK_RC(quire_segment_open(buf, len, &small, &v), QUIRE_ECORRUPT);
  small = (quire_segment_limits){1 << 20, 1, 100};
  CHECK_RC(quire_segment_open(buf, len, &small, &v), QUIRE_ECORRUPT);
  small = (quire_segment_limits){1 << 20, 100, 2};
  CHECK_RC(quire_segment_open(buf, len, &small, &v), QUIRE_ECORRUPT);
  small = (quire_segment_limits){1 << 20, 0, 2};
  CHECK_RC(quire_segment_open(buf, len, &small, &v), QUIRE_EINVAL);
  CHECK_OK(quire_segment_open(buf, len, &lim, &v));
  quire_segment_free(buf);
  quire_segment_builder_free(b);

  /* the defaults: 4084 pages of one volume fill 16 MiB, one more does not fit */
  quire_segment_limits_default(&lim);
  CHECK(lim.target_bytes == 16u << 20 && lim.max_pages == 4084);
  CHECK(quire_segment_size(1, 4084) <= lim.target_bytes);
  CHECK(quire_segment_size(1, 4085) > lim.target_bytes);
  CHECK(quire_segment_max_tail(NULL) == 24ull * 1024 + 12ull * 4084 + 64);
}

/* Recomputes the index and footer checksums after a deliberate edit. */
static void reseal(uint8_t *buf, size_t len) {
  uint8_t *f = buf + len - 64;
  uint64_t ilen = ld_le64(f + SEG_OFF_INDEX_LEN);
  if (ilen <= len - 64) st_le64(f + SEG_OFF_INDEX_SUM, quire__xxh3(f - ilen, (size_t)ilen));
  st_le64(f + SEG_OFF_FOOTER_SUM, quire__xxh3(f, SEG_OFF_FOOTER_SUM));
}

static void test_corruption(void) {
  struct model m;
  model_make(&m, 4, 6, 100);
  while (m.count[0] < 2) { /* the page-order cases need two pages in volume 0 */
    model_free(&m);
    model_make(&m, 4, 6, 100);
  }
  quire_segment_builder *b = model_build(&m, NULL);
  uint8_t *good;
  size_t len;
  CHECK_OK(quire_segment_builder_to_buf(b, &good, &len));
  quire_segment_builder_free(b);
  uint8_t *buf = malloc(len + 4096);
  quire_segment_view v;

  /* truncations (keeping the start, or keeping the end) and extensions */
  for (size_t n = 0; n < len; n++) {
    CHECK_RC(quire_segment_open(good, n, NULL, &v), QUIRE_ECORRUPT);
    int rc = quire_segment_open(good + len - n, n, NULL, &v);
    CHECK(rc == QUIRE_ECORRUPT);
  }
  memcpy(buf, good, len);
  memset(buf + len, 0, 4096);
  CHECK_RC(quire_segment_open(buf, len + 1, NULL, &v), QUIRE_ECORRUPT);
  CHECK_RC(quire_segment_open(buf, len + 4096, NULL, &v), QUIRE_ECORRUPT);
  CHECK_RC(quire_segment_open(NULL, 0, NULL, &v), QUIRE_ECORRUPT);

  /* flipped bytes: footer and index are caught at open, pages by their checksums */
  uint64_t index_off = (uint64_t)m.pages * QUIRE_PAGE_SIZE;
  for (size_t pos = 0; pos < len; pos++) {
    if (pos < index_off && pos % 61 != 0) continue; /* a sample of page bytes */
    memcpy(buf, good, len);
    buf[pos] ^= (uint8_t)(1u << (pos % 8));
    int rc = quire_segment_open(buf, len, NULL, &v);
    if (pos >= index_off) {
      CHECKF(rc == QUIRE_ECORRUPT, "flip at %zu (index/footer) gave %d", pos, rc);
      continue;
    }
    CHECK_OK(rc);
    uint32_t slot = (uint32_t)(pos / QUIRE_PAGE_SIZE);
    CHECK_RC(quire_segment_verify_pages(&v), QUIRE_ECORRUPT);
    CHECK_RC(quire_segment_page_check(&v, slot, buf + (size_t)slot * QUIRE_PAGE_SIZE), QUIRE_ECORRUPT);
    quire_gid vid;
    uint32_t first = 0, count = 0, vi = 0;
    for (; vi < v.volume_count; vi++) {
      quire_segment_volume_at(&v, vi, &vid, &first, &count);
      if (slot < first + count) break;
    }
    const uint8_t *page;
    CHECK_RC(quire_segment_read_page(&v, &vid, quire_segment_slot_pageidx(&v, slot), &page), QUIRE_ECORRUPT);
    CHECK(page == NULL);
  }

  /* structural damage with valid checksums: the checks behind them */
  uint8_t *f = buf + len - 64;
  uint8_t *vt = buf + index_off;
  uint8_t *pidx = vt + 24ull * m.nvols;
  struct {
    const char *what;
    int want;
  } cases[] = {
      {"magic", QUIRE_ECORRUPT},
      {"version", QUIRE_EVERSION},
      {"flags", QUIRE_ECORRUPT},
      {"page size", QUIRE_ECORRUPT},
      {"sid type", QUIRE_ECORRUPT},
      {"volume count", QUIRE_ECORRUPT},
      {"page count", QUIRE_ECORRUPT},
      {"index length", QUIRE_ECORRUPT},
      {"volume order", QUIRE_ECORRUPT},
      {"duplicate volume", QUIRE_ECORRUPT},
      {"volume type", QUIRE_ECORRUPT},
      {"first slot", QUIRE_ECORRUPT},
      {"empty volume", QUIRE_ECORRUPT},
      {"count overflow", QUIRE_ECORRUPT},
      {"page index 0", QUIRE_ECORRUPT},
      {"page order", QUIRE_ECORRUPT},
      {"duplicate page", QUIRE_ECORRUPT},
      {"huge counts", QUIRE_ECORRUPT},
      {"volumes without pages", QUIRE_ECORRUPT},
  };
  for (size_t c = 0; c < QUIRE_ARRAY_LEN(cases); c++) {
    memcpy(buf, good, len);
    switch (c) {
    case 0: f[0] = 'X'; break;
    case 1: st_le16(f + SEG_OFF_VERSION, 2); break;
    case 2: st_le16(f + SEG_OFF_FLAGS, 1); break;
    case 3: st_le32(f + SEG_OFF_PAGE_SIZE, 8192); break;
    case 4: f[SEG_OFF_SID] = QUIRE_GID_VOLUME; break;
    case 5: st_le32(f + SEG_OFF_VOLUMES, m.nvols + 1); break;
    case 6: st_le32(f + SEG_OFF_PAGES, m.pages - 1); break;
    case 7: st_le64(f + SEG_OFF_INDEX_LEN, ld_le64(f + SEG_OFF_INDEX_LEN) - 4); break;
    case 8: { /* swap the first two volume ids */
      uint8_t tmp[16];
      memcpy(tmp, vt, 16);
      memcpy(vt, vt + 24, 16);
      memcpy(vt + 24, tmp, 16);
      break;
    }
    case 9: memcpy(vt + 24, vt, 16); break;
    case 10: vt[0] = QUIRE_GID_CLIENT; break;
    case 11: st_le32(vt + 24 + 16, ld_le32(vt + 24 + 16) + 1); break;
    case 12: st_le32(vt + 20, 0); break;
    case 13: st_le32(vt + 24 * (m.nvols - 1) + 20, 0xFFFFFFF0u); break;
    case 14: st_le32(pidx, 0); break;
    case 15: st_le32(pidx + 4, ld_le32(pidx) - (ld_le32(pidx) > 1 ? 1 : 0)); break;
    case 16: st_le32(pidx + 4, ld_le32(pidx)); break;
    case 17: st_le32(f + SEG_OFF_PAGES, 0xFFFFFFFFu), st_le32(f + SEG_OFF_VOLUMES, 0xFFFFFFFFu); break;
    case 18: st_le32(f + SEG_OFF_PAGES, 0); break;
    }
    reseal(buf, len);
    int rc = quire_segment_open(buf, len, NULL, &v);
    CHECKF(rc == cases[c].want, "%s: got %s want %s", cases[c].what, quire_errname(rc),
           quire_errname(cases[c].want));
  }
  free(buf);
  quire_segment_free(good);
  model_free(&m);
}

/* Plans random wanted sets and checks the ranges against the index. */
static void test_plan(void) {
  struct model m;
  model_make(&m, 6, 200, 400);
  quire_segment_builder *b = model_build(&m, NULL);
  uint8_t *seg;
  size_t len;
  CHECK_OK(quire_segment_builder_to_buf(b, &seg, &len));
  quire_segment_builder_free(b);

  /* The reader's path: an object store, one ranged read of the tail, then
   * one ranged read per planned range. */
  quire_objstore *s;
  CHECK_OK(quire_objstore_open("mem://", &s));
  CHECK_OK(quire_objstore_put(s, "segments/p", seg, len));
  quire_objstore_info info;
  CHECK_OK(quire_objstore_head(s, "segments/p", &info));
  uint64_t max_tail = quire_segment_max_tail(NULL);
  size_t tail_len = (size_t)QUIRE_MIN(max_tail, info.size);
  uint8_t *tail = malloc(tail_len);
  size_t got;
  CHECK_OK(quire_objstore_get_range(s, "segments/p", info.size - tail_len, tail_len, tail, &got));
  CHECK(got == tail_len);
  quire_segment_view iv;
  CHECK_OK(quire_segment_index_open(tail, tail_len, info.size, NULL, &iv));
  /* a tail one byte short of the index fails */
  uint64_t need;
  CHECK_OK(quire_segment_tail_length(tail + tail_len - 64, info.size, NULL, &need));
  CHECK_RC(quire_segment_index_open(tail + tail_len - need + 1, (size_t)need - 1, info.size, NULL, &iv),
           QUIRE_ECORRUPT);
  CHECK_OK(quire_segment_index_open(tail + tail_len - need, (size_t)need, info.size, NULL, &iv));
  CHECK_RC(quire_segment_index_open(tail, tail_len, info.size + 1, NULL, &iv), QUIRE_ECORRUPT);
  CHECK_OK(quire_segment_index_open(tail, tail_len, info.size, NULL, &iv));

  uint8_t *fetched = malloc(len);
  for (int round = 0; round < 60; round++) {
    uint32_t vi = (uint32_t)test_rand_below(m.nvols);
    size_t n = 1 + (size_t)test_rand_below(round % 4 == 0 ? 400 : 20);
    quire_pageidx *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) want[i] = (quire_pageidx)test_rand_below(420); /* 0 and absent ones too */
    uint32_t gap = (uint32_t)test_rand_below(4);
    quire_segment_range *r;
    size_t nr, missing;
    CHECK_OK(quire_segment_plan(&iv, &m.vids[vi], want, n, gap, &r, &nr, &missing));
    /* model: which wanted entries are present */
    uint8_t *wanted_slot = calloc(iv.page_count, 1);
    size_t want_missing = 0;
    uint32_t first, count;
    CHECK_OK(quire_segment_find_volume(&iv, &m.vids[vi], &first, &count));
    for (size_t i = 0; i < n; i++) {
      uint32_t slot;
      if (quire_segment_find_page(&iv, &m.vids[vi], want[i], &slot) == 0)
        wanted_slot[slot] = 1;
      else
        want_missing++;
    }
    CHECK(missing == want_missing);
    uint64_t prev_end = 0;
    uint32_t covered = 0;
    for (size_t k = 0; k < nr; k++) {
      CHECK(r[k].length == (uint64_t)r[k].slot_count * QUIRE_PAGE_SIZE);
      CHECK(r[k].offset == (uint64_t)r[k].first_slot * QUIRE_PAGE_SIZE);
      CHECK(k == 0 || r[k].offset > prev_end + (uint64_t)gap * QUIRE_PAGE_SIZE); /* really separate */
      CHECK(wanted_slot[r[k].first_slot] && wanted_slot[r[k].first_slot + r[k].slot_count - 1]);
      CHECK(r[k].first_slot >= first && r[k].first_slot + r[k].slot_count <= first + count);
      uint32_t run_gap = 0;
      for (uint32_t sl = r[k].first_slot; sl < r[k].first_slot + r[k].slot_count; sl++) {
        covered += wanted_slot[sl];
        run_gap = wanted_slot[sl] ? 0 : run_gap + 1;
        CHECK(run_gap <= gap);
      }
      prev_end = r[k].offset + r[k].length;
      /* fetch it and verify each page on its own */
      CHECK_OK(quire_objstore_get_range(s, "segments/p", r[k].offset, (size_t)r[k].length, fetched, &got));
      CHECK(got == r[k].length);
      for (uint32_t j = 0; j < r[k].slot_count; j++)
        CHECK_OK(quire_segment_page_check(&iv, r[k].first_slot + j, fetched + (size_t)j * QUIRE_PAGE_SIZE));
    }
    uint32_t distinct = 0;
    for (uint32_t sl = 0; sl < iv.page_count; sl++) distinct += wanted_slot[sl];
    CHECK(covered == distinct);
    /* the same plan from a splinter of the wanted pages */
    splinter_t *want_set;
    CHECK_OK(splinter_new(&want_set));
    for (size_t i = 0; i < n; i++) CHECK(splinter_insert(want_set, want[i]) >= 0);
    quire_segment_range *r2;
    size_t nr2;
    uint64_t missing2;
    CHECK_OK(
        quire_segment_plan_set(&iv, &m.vids[vi], splinter_ref_owned(want_set), gap, &r2, &nr2, &missing2));
    CHECK(nr2 == nr && (nr == 0 || memcmp(r, r2, nr * sizeof *r) == 0));
    CHECK(missing2 == splinter_cardinality(want_set) - distinct);
    splinter_free(want_set);
    quire_segment_free(r2);
    quire_segment_free(r);
    free(wanted_slot);
    free(want);
  }
  /* The page query's shape: wanted.cut(segment pages) says which wanted
   * pages this segment serves; plan_set on the cut fetches exactly them,
   * and a huge wanted set costs no more than the segment's pages. */
  {
    splinter_t *wanted, *seg_pages, *served;
    CHECK_OK(splinter_new(&wanted));
    CHECK_OK(splinter_new(&served));
    CHECK_OK(splinter_insert_range(wanted, 1, 0xFFFFFFF0u));
    CHECK_OK(quire_segment_volume_pages(&iv, &m.vids[2], &seg_pages));
    CHECK_OK(splinter_cut(wanted, splinter_ref_owned(seg_pages), served));
    CHECK(splinter_equal(splinter_ref_owned(served), splinter_ref_owned(seg_pages)));
    quire_segment_range *r3;
    size_t nr3;
    uint64_t missing3;
    CHECK_OK(quire_segment_plan_set(&iv, &m.vids[2], splinter_ref_owned(served), 0, &r3, &nr3, &missing3));
    CHECK(missing3 == 0 && nr3 == 1 && r3[0].slot_count == m.count[2]);
    quire_segment_free(r3);
    /* what is left wanted is not in this segment any more */
    CHECK_OK(quire_segment_plan_set(&iv, &m.vids[2], splinter_ref_owned(wanted), 0, &r3, &nr3, &missing3));
    CHECK(nr3 == 0 && r3 == NULL && missing3 == splinter_cardinality(wanted));
    splinter_free(wanted);
    splinter_free(seg_pages);
    splinter_free(served);
  }
  /* an absent volume: everything missing, no ranges */
  quire_gid other;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &other));
  quire_pageidx one = 1;
  quire_segment_range *r;
  size_t nr, missing;
  CHECK_OK(quire_segment_plan(&iv, &other, &one, 1, 0, &r, &nr, &missing));
  CHECK(nr == 0 && missing == 1 && r == NULL);
  CHECK_OK(quire_segment_plan(&iv, &other, NULL, 0, 0, &r, &nr, NULL));
  CHECK_RC(quire_segment_plan(&iv, &other, NULL, 3, 0, &r, &nr, NULL), QUIRE_EINVAL);
  /* a whole volume with gap 0 is one range */
  CHECK_OK(quire_segment_plan(&iv, &m.vids[0], m.idx[0], m.count[0], 0, &r, &nr, &missing));
  CHECK(nr == 1 && r[0].slot_count == m.count[0] && missing == 0);
  quire_segment_free(r);
  free(fetched);
  free(tail);
  quire_objstore_close(s);
  quire_segment_free(seg);
  model_free(&m);
}

/* quire_segment_tail_build (the pagestore lays the pages out itself) gives
 * the same tail as the builder, and checks order and limits like it. */
static void test_tail_build(void) {
  for (int r = 0; r < 10; r++) {
    struct model m;
    model_make(&m, 1 + (uint32_t)test_rand_below(20), 1 + (uint32_t)test_rand_below(40), 100000);
    quire_segment_builder *b = model_build(&m, NULL);
    uint8_t *buf;
    size_t len;
    CHECK_OK(quire_segment_builder_to_buf(b, &buf, &len));
    quire_segment_view v;
    CHECK_OK(quire_segment_open(buf, len, NULL, &v));
    quire_segment_page *pg = malloc(m.pages * sizeof *pg);
    uint8_t page[QUIRE_PAGE_SIZE];
    uint32_t n = 0;
    for (uint32_t k = 0; k < m.nvols; k++)
      for (uint32_t i = 0; i < m.count[k]; i++) {
        page_fill(page, &m.vids[k], m.idx[k][i]);
        pg[n++] = (quire_segment_page){m.vids[k], m.idx[k][i], quire_segment_page_checksum(page)};
      }
    uint64_t tsize = quire_segment_tail_size(m.nvols, m.pages);
    CHECK(tsize == len - (size_t)QUIRE_PAGE_SIZE * m.pages);
    uint8_t *tail = malloc((size_t)tsize);
    size_t tlen;
    CHECK_OK(quire_segment_tail_build(&v.sid, NULL, pg, n, tail, (size_t)tsize, &tlen));
    CHECK(tlen == tsize && memcmp(tail, buf + (size_t)QUIRE_PAGE_SIZE * m.pages, tlen) == 0);
    /* too little room */
    CHECK_RC(quire_segment_tail_build(&v.sid, NULL, pg, n, tail, (size_t)tsize - 1, &tlen), QUIRE_ETOOLARGE);
    /* limits */
    quire_segment_limits lim;
    quire_segment_limits_default(&lim);
    lim.max_pages = n;
    CHECK_OK(quire_segment_tail_build(&v.sid, &lim, pg, n, tail, (size_t)tsize, &tlen));
    if (m.nvols > 1) {
      lim.max_volumes = m.nvols - 1;
      CHECK_RC(quire_segment_tail_build(&v.sid, &lim, pg, n, tail, (size_t)tsize, &tlen), QUIRE_ETOOLARGE);
    }
    /* order: two pages swapped, a repeated page, a page index 0, not a segment id */
    if (n > 1) {
      quire_segment_page t = pg[0];
      pg[0] = pg[1];
      pg[1] = t;
      CHECK_RC(quire_segment_tail_build(&v.sid, NULL, pg, n, tail, (size_t)tsize, &tlen), QUIRE_EINVAL);
      pg[1] = pg[0];
      CHECK_RC(quire_segment_tail_build(&v.sid, NULL, pg, n, tail, (size_t)tsize, &tlen), QUIRE_EINVAL);
      pg[1] = t;
    }
    pg[0].idx = 0;
    CHECK_RC(quire_segment_tail_build(&v.sid, NULL, pg, n, tail, (size_t)tsize, &tlen), QUIRE_EINVAL);
    CHECK_RC(quire_segment_tail_build(&m.vids[0], NULL, pg, n, tail, (size_t)tsize, &tlen), QUIRE_EINVAL);
    CHECK_RC(quire_segment_tail_build(&v.sid, NULL, pg, 0, tail, (size_t)tsize, &tlen), QUIRE_EINVAL);
    free(tail);
    free(pg);
    quire_segment_free(buf);
    quire_segment_builder_free(b);
    model_free(&m);
  }
}

int main(void) {
  test_seed();
  test_tail_build();
  test_round_trips();
  test_outputs();
  test_builder_rules();
  test_corruption();
  test_plan();
  return test_done("segment");
}
