/*
 * segment/builder.c — builds a segment from pages given in order and streams
 * it out in one forward pass: pages, index, footer (docs/SEGMENT.md).
 *
 * The builder keeps exactly one copy of the page bytes (a growing array),
 * plus the page indexes, checksums (computed as pages arrive) and the volume
 * table. Writing never copies the pages again: they go to the sink as they
 * are, so an upload through an object-store writer holds one copy in memory.
 */
#include "segment/segment_int.h"
#include "objstore/objstore_int.h"
#include "util/util.h"

#include <string.h>

struct vol {
  quire_gid vid;
  uint32_t first, count;
};

struct quire_segment_builder {
  quire_gid sid;
  quire_segment_limits lim;
  uint8_t *pages;   /* npages × 4096 */
  size_t pages_cap; /* in pages */
  uint32_t *pageidx;
  uint64_t *sums;
  uint32_t npages;
  struct vol *vols;
  uint32_t nvols, vols_cap;
};

void quire_segment_limits_default(quire_segment_limits *l) {
  l->target_bytes = 16u << 20;
  l->max_volumes = 1024;
  l->max_pages = 4084;
}

int quire_segment_limits_check(const quire_segment_limits *l) {
  if (!l) return quire__err(QUIRE_EINVAL, "segment limits are NULL");
  if (l->max_volumes == 0 || l->max_volumes > QUIRE_SEGMENT_HARD_MAX_VOLUMES)
    return quire__err(QUIRE_EINVAL, "segment max_volumes %u outside 1..%u", l->max_volumes,
                      QUIRE_SEGMENT_HARD_MAX_VOLUMES);
  if (l->max_pages == 0 || l->max_pages > QUIRE_SEGMENT_HARD_MAX_PAGES)
    return quire__err(QUIRE_EINVAL, "segment max_pages %u outside 1..%u", l->max_pages,
                      QUIRE_SEGMENT_HARD_MAX_PAGES);
  if (l->target_bytes < quire_segment_size(1, 1))
    return quire__err(QUIRE_EINVAL, "segment target_bytes %llu below one page",
                      (unsigned long long)l->target_bytes);
  return 0;
}

uint64_t quire_segment_size(uint64_t volumes, uint64_t pages) {
  return QUIRE_SEGMENT_PAGE_COST * pages + QUIRE_SEGMENT_VOLUME_ENTRY_SIZE * volumes +
         QUIRE_SEGMENT_FOOTER_SIZE;
}

int quire_segment_builder_new(const quire_gid *sid, const quire_segment_limits *limits,
                              quire_segment_builder **out) {
  *out = NULL;
  if (!sid || quire_gid_type(sid) != QUIRE_GID_SEGMENT)
    return quire__err(QUIRE_EINVAL, "segment builder: the id is not a segment id");
  quire_segment_limits lim;
  if (limits) {
    lim = *limits;
  } else {
    quire_segment_limits_default(&lim);
  }
  int rc = quire_segment_limits_check(&lim);
  if (rc) return rc;
  quire_segment_builder *b = quire__calloc(1, sizeof *b);
  if (!b) return QUIRE_ENOMEM;
  b->sid = *sid;
  b->lim = lim;
  *out = b;
  return 0;
}

void quire_segment_builder_free(quire_segment_builder *b) {
  if (!b) return;
  quire__free(b->pages);
  quire__free(b->pageidx);
  quire__free(b->sums);
  quire__free(b->vols);
  quire__free(b);
}

void quire_segment_free(void *p) { quire__free(p); }

uint32_t quire_segment_builder_pages(const quire_segment_builder *b) { return b->npages; }
uint32_t quire_segment_builder_volumes(const quire_segment_builder *b) { return b->nvols; }
uint64_t quire_segment_builder_size(const quire_segment_builder *b) {
  return quire_segment_size(b->nvols, b->npages);
}

static int is_new_volume(const quire_segment_builder *b, const quire_gid *vid) {
  return b->nvols == 0 || quire_gid_cmp(vid, &b->vols[b->nvols - 1].vid) != 0;
}

int quire_segment_builder_fits(const quire_segment_builder *b, const quire_gid *vid, uint32_t npages) {
  uint64_t vols = b->nvols + (uint64_t)is_new_volume(b, vid);
  uint64_t pages = (uint64_t)b->npages + npages;
  return vols <= b->lim.max_volumes && pages <= b->lim.max_pages &&
         quire_segment_size(vols, pages) <= b->lim.target_bytes;
}

/* Grows the per-page arrays to hold at least need pages. */
static int reserve_pages(quire_segment_builder *b, uint32_t need) {
  if (need <= b->pages_cap) return 0;
  size_t cap = b->pages_cap ? b->pages_cap * 2 : 16;
  while (cap < need) cap *= 2;
  if (cap > b->lim.max_pages) cap = b->lim.max_pages;
  uint8_t *pages = quire__realloc(b->pages, cap * QUIRE_PAGE_SIZE);
  if (!pages) return QUIRE_ENOMEM;
  b->pages = pages;
  uint32_t *idx = quire__realloc(b->pageidx, cap * sizeof *idx);
  if (!idx) return QUIRE_ENOMEM;
  b->pageidx = idx;
  uint64_t *sums = quire__realloc(b->sums, cap * sizeof *sums);
  if (!sums) return QUIRE_ENOMEM;
  b->sums = sums;
  b->pages_cap = cap;
  return 0;
}

int quire_segment_builder_add(quire_segment_builder *b, const quire_gid *vid, quire_pageidx idx,
                              const void *page) {
  if (!vid || quire_gid_type(vid) != QUIRE_GID_VOLUME)
    return quire__err(QUIRE_EINVAL, "segment builder: not a volume id");
  if (idx == 0) return quire__err(QUIRE_EINVAL, "segment builder: page index 0");
  if (!page) return quire__err(QUIRE_EINVAL, "segment builder: NULL page");
  int new_vol = 1;
  if (b->nvols) {
    struct vol *last = &b->vols[b->nvols - 1];
    int cmp = quire_gid_cmp(vid, &last->vid);
    if (cmp < 0)
      return quire__err(QUIRE_EINVAL, "segment builder: volumes must be added in ascending id order");
    if (cmp == 0) {
      if (idx <= b->pageidx[b->npages - 1])
        return quire__err(QUIRE_EINVAL,
                          "segment builder: page %u after %u in one volume (ascending, one version)", idx,
                          b->pageidx[b->npages - 1]);
      new_vol = 0;
    }
  }
  if (!quire_segment_builder_fits(b, vid, 1))
    return quire__err(QUIRE_ETOOLARGE, "segment builder: full (%u volumes, %u pages)", b->nvols, b->npages);
  int rc = reserve_pages(b, b->npages + 1);
  if (rc) return rc;
  if (new_vol && b->nvols == b->vols_cap) {
    uint32_t cap = b->vols_cap ? b->vols_cap * 2 : 4;
    struct vol *v = quire__realloc(b->vols, cap * sizeof *v);
    if (!v) return QUIRE_ENOMEM;
    b->vols = v;
    b->vols_cap = cap;
  }
  if (new_vol) b->vols[b->nvols++] = (struct vol){*vid, b->npages, 0};
  memcpy(b->pages + (size_t)b->npages * QUIRE_PAGE_SIZE, page, QUIRE_PAGE_SIZE);
  b->pageidx[b->npages] = idx;
  b->sums[b->npages] = quire__xxh3(page, QUIRE_PAGE_SIZE);
  b->npages++;
  b->vols[b->nvols - 1].count++;
  return 0;
}

int quire_segment_builder_write(const quire_segment_builder *b, quire_segment_sink sink, void *ctx) {
  uint64_t index_len = (uint64_t)QUIRE_SEGMENT_VOLUME_ENTRY_SIZE * b->nvols + 12ull * b->npages;
  uint8_t *index = quire__malloc((size_t)index_len);
  if (!index) return QUIRE_ENOMEM;
  uint8_t *p = index;
  for (uint32_t i = 0; i < b->nvols; i++, p += QUIRE_SEGMENT_VOLUME_ENTRY_SIZE) {
    memcpy(p, b->vols[i].vid.b, QUIRE_GID_SIZE);
    st_le32(p + 16, b->vols[i].first);
    st_le32(p + 20, b->vols[i].count);
  }
  for (uint32_t i = 0; i < b->npages; i++, p += 4) st_le32(p, b->pageidx[i]);
  for (uint32_t i = 0; i < b->npages; i++, p += 8) st_le64(p, b->sums[i]);

  uint8_t footer[QUIRE_SEGMENT_FOOTER_SIZE] = {0};
  memcpy(footer + SEG_OFF_MAGIC, SEG_MAGIC, 8);
  st_le16(footer + SEG_OFF_VERSION, QUIRE_SEGMENT_VERSION);
  st_le16(footer + SEG_OFF_FLAGS, 0);
  st_le32(footer + SEG_OFF_PAGE_SIZE, QUIRE_PAGE_SIZE);
  memcpy(footer + SEG_OFF_SID, b->sid.b, QUIRE_GID_SIZE);
  st_le32(footer + SEG_OFF_VOLUMES, b->nvols);
  st_le32(footer + SEG_OFF_PAGES, b->npages);
  st_le64(footer + SEG_OFF_INDEX_LEN, index_len);
  st_le64(footer + SEG_OFF_INDEX_SUM, quire__xxh3(index, (size_t)index_len));
  st_le64(footer + SEG_OFF_FOOTER_SUM, quire__xxh3(footer, SEG_OFF_FOOTER_SUM));

  int rc = 0;
  /* Pages in 1 MiB pieces so sinks see bounded writes. */
  size_t total = (size_t)b->npages * QUIRE_PAGE_SIZE;
  for (size_t off = 0; !rc && off < total; off += 1u << 20)
    rc = sink(ctx, b->pages + off, QUIRE_MIN(total - off, 1u << 20));
  if (!rc && index_len) rc = sink(ctx, index, (size_t)index_len);
  if (!rc) rc = sink(ctx, footer, sizeof footer);
  quire__free(index);
  return rc;
}

struct buf_sink {
  uint8_t *data;
  size_t len, cap;
};

static int buf_sink(void *ctx, const void *data, size_t len) {
  struct buf_sink *s = ctx;
  if (QUIRE_NEVER(len > s->cap - s->len)) return QUIRE_EINTERNAL;
  memcpy(s->data + s->len, data, len);
  s->len += len;
  return 0;
}

int quire_segment_builder_to_buf(const quire_segment_builder *b, uint8_t **data, size_t *len) {
  *data = NULL;
  *len = 0;
  struct buf_sink s = {NULL, 0, (size_t)quire_segment_builder_size(b)};
  s.data = quire__malloc(s.cap);
  if (!s.data) return QUIRE_ENOMEM;
  int rc = quire_segment_builder_write(b, buf_sink, &s);
  if (!rc && QUIRE_NEVER(s.len != s.cap)) rc = QUIRE_EINTERNAL;
  if (rc) {
    quire__free(s.data);
    return rc;
  }
  *data = s.data;
  *len = s.len;
  return 0;
}

static int fd_sink(void *ctx, const void *data, size_t len) {
  return objstore__write_all(*(int *)ctx, data, len);
}

int quire_segment_builder_to_fd(const quire_segment_builder *b, int fd) {
  return quire_segment_builder_write(b, fd_sink, &fd);
}

static int store_sink(void *ctx, const void *data, size_t len) {
  return quire_objstore_writer_write(ctx, data, len);
}

int quire_segment_builder_to_store(const quire_segment_builder *b, quire_objstore *store, const char *key,
                                   int flags) {
  quire_objstore_writer *w;
  int rc = quire_objstore_writer_open(store, key, flags, &w);
  if (rc) return rc;
  rc = quire_segment_builder_write(b, store_sink, w);
  if (rc) {
    quire_objstore_writer_abort(w);
    return rc;
  }
  return quire_objstore_writer_commit(w);
}
