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

/* The segment id must be one; limits NULL means the defaults. */
static int check_start(const quire_gid *sid, const quire_segment_limits *limits, const char *who,
                       quire_segment_limits *lim) {
  if (!sid || quire_gid_type(sid) != QUIRE_GID_SEGMENT)
    return quire__err(QUIRE_EINVAL, "%s: the id is not a segment id", who);
  if (limits) {
    *lim = *limits;
  } else {
    quire_segment_limits_default(lim);
  }
  return quire_segment_limits_check(lim);
}

int quire_segment_builder_new(const quire_gid *sid, const quire_segment_limits *limits,
                              quire_segment_builder **out) {
  *out = NULL;
  quire_segment_limits lim;
  int rc = check_start(sid, limits, "segment builder", &lim);
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

/* Writes index and footer for the given volume table and per-page arrays
 * into out (exactly 24·V + 12·N + 64 bytes). Shared by the builder and
 * quire_segment_tail_build, so both give the same bytes. */
static void write_tail(const quire_gid *sid, const struct vol *vols, uint32_t nvols, const uint32_t *pageidx,
                       const uint64_t *sums, const quire_segment_page *pg, uint32_t npages, uint8_t *out) {
  uint64_t index_len = (uint64_t)QUIRE_SEGMENT_VOLUME_ENTRY_SIZE * nvols + 12ull * npages;
  uint8_t *p = out;
  for (uint32_t i = 0; i < nvols; i++, p += QUIRE_SEGMENT_VOLUME_ENTRY_SIZE) {
    memcpy(p, vols[i].vid.b, QUIRE_GID_SIZE);
    st_le32(p + 16, vols[i].first);
    st_le32(p + 20, vols[i].count);
  }
  for (uint32_t i = 0; i < npages; i++, p += 4) st_le32(p, pg ? pg[i].idx : pageidx[i]);
  for (uint32_t i = 0; i < npages; i++, p += 8) st_le64(p, pg ? pg[i].checksum : sums[i]);

  uint8_t *footer = out + index_len;
  memset(footer, 0, QUIRE_SEGMENT_FOOTER_SIZE);
  memcpy(footer + SEG_OFF_MAGIC, SEG_MAGIC, 8);
  st_le16(footer + SEG_OFF_VERSION, QUIRE_SEGMENT_VERSION);
  st_le16(footer + SEG_OFF_FLAGS, 0);
  st_le32(footer + SEG_OFF_PAGE_SIZE, QUIRE_PAGE_SIZE);
  memcpy(footer + SEG_OFF_SID, sid->b, QUIRE_GID_SIZE);
  st_le32(footer + SEG_OFF_VOLUMES, nvols);
  st_le32(footer + SEG_OFF_PAGES, npages);
  st_le64(footer + SEG_OFF_INDEX_LEN, index_len);
  st_le64(footer + SEG_OFF_INDEX_SUM, quire__xxh3(out, (size_t)index_len));
  st_le64(footer + SEG_OFF_FOOTER_SUM, quire__xxh3(footer, SEG_OFF_FOOTER_SUM));
}

int quire_segment_builder_write(const quire_segment_builder *b, quire_segment_sink sink, void *ctx) {
  uint64_t tail_len =
      (uint64_t)QUIRE_SEGMENT_VOLUME_ENTRY_SIZE * b->nvols + 12ull * b->npages + QUIRE_SEGMENT_FOOTER_SIZE;
  uint8_t *tail = quire__malloc((size_t)tail_len);
  if (!tail) return QUIRE_ENOMEM;
  write_tail(&b->sid, b->vols, b->nvols, b->pageidx, b->sums, NULL, b->npages, tail);
  int rc = 0;
  /* Pages in 1 MiB pieces so sinks see bounded writes. */
  size_t total = (size_t)b->npages * QUIRE_PAGE_SIZE;
  for (size_t off = 0; !rc && off < total; off += 1u << 20)
    rc = sink(ctx, b->pages + off, QUIRE_MIN(total - off, 1u << 20));
  if (!rc) rc = sink(ctx, tail, (size_t)tail_len);
  quire__free(tail);
  return rc;
}

uint64_t quire_segment_page_checksum(const void *page) { return quire__xxh3(page, QUIRE_PAGE_SIZE); }

uint64_t quire_segment_tail_size(uint64_t volumes, uint64_t pages) {
  return quire_segment_size(volumes, pages) - (uint64_t)QUIRE_PAGE_SIZE * pages;
}

int quire_segment_tail_build(const quire_gid *sid, const quire_segment_limits *limits,
                             const quire_segment_page *pages, uint32_t npages, uint8_t *out, size_t cap,
                             size_t *len) {
  *len = 0;
  quire_segment_limits lim;
  int rc = check_start(sid, limits, "segment tail", &lim);
  if (rc) return rc;
  if (npages == 0) return quire__err(QUIRE_EINVAL, "segment tail: no pages");
  /* Validate the order (as builder_add does) and count the volumes. */
  uint32_t nvols = 1;
  for (uint32_t i = 0; i < npages; i++) {
    if (quire_gid_type(&pages[i].vid) != QUIRE_GID_VOLUME)
      return quire__err(QUIRE_EINVAL, "segment tail: page %u: not a volume id", i);
    if (pages[i].idx == 0) return quire__err(QUIRE_EINVAL, "segment tail: page %u: page index 0", i);
    if (i == 0) continue;
    int cmp = quire_gid_cmp(&pages[i].vid, &pages[i - 1].vid);
    if (cmp < 0)
      return quire__err(QUIRE_EINVAL, "segment tail: volumes must be in ascending id order (page %u)", i);
    if (cmp == 0 && pages[i].idx <= pages[i - 1].idx)
      return quire__err(QUIRE_EINVAL, "segment tail: page %u after %u in one volume (ascending, one version)",
                        pages[i].idx, pages[i - 1].idx);
    if (cmp > 0) nvols++;
  }
  if (nvols > lim.max_volumes || npages > lim.max_pages || quire_segment_size(nvols, npages) > lim.target_bytes)
    return quire__err(QUIRE_ETOOLARGE, "segment tail: %u volumes and %u pages exceed the limits", nvols, npages);
  uint64_t need = quire_segment_tail_size(nvols, npages);
  if (cap < need)
    return quire__err(QUIRE_ETOOLARGE, "segment tail: %llu bytes needed, room for %zu", (unsigned long long)need,
                      cap);
  struct vol *vols = quire__malloc(nvols * sizeof *vols);
  if (!vols) return QUIRE_ENOMEM;
  uint32_t v = 0;
  for (uint32_t i = 0; i < npages; i++) {
    if (i == 0 || quire_gid_cmp(&pages[i].vid, &pages[i - 1].vid) != 0)
      vols[v++] = (struct vol){pages[i].vid, i, 0};
    vols[v - 1].count++;
  }
  write_tail(sid, vols, nvols, NULL, NULL, pages, npages, out);
  quire__free(vols);
  *len = (size_t)need;
  return 0;
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
