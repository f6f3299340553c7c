/*
 * segment/reader.c — validates segments and reads pages from them, in place
 * (a buffer or an mmap), and plans partial reads from the index alone.
 *
 * Validation order (every offset and length is checked before use, in
 * 64-bit arithmetic): footer length, footer checksum, magic, version, flags,
 * page size, segment id type, counts against the limits, index length
 * against the counts, total length against the counts and limits, index
 * checksum, then the volume table and page indexes (ascending ids,
 * contiguous slots, no empty volume, non-zero ascending page indexes).
 * After that every lookup is a plain binary search that cannot leave the
 * validated arrays.
 */
#include "segment/segment_int.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static int corrupt(const char *what) { return quire__err(QUIRE_ECORRUPT, "segment: %s", what); }

/* Footer checks; fills counts, sid and index length. */
static int parse_footer(const uint8_t *f, uint64_t object_size, const quire_segment_limits *lim,
                        quire_segment_view *v) {
  if (ld_le64(f + SEG_OFF_FOOTER_SUM) != quire__xxh3(f, SEG_OFF_FOOTER_SUM))
    return corrupt("footer checksum mismatch");
  if (memcmp(f + SEG_OFF_MAGIC, SEG_MAGIC, 8) != 0) return corrupt("bad magic");
  uint16_t version = ld_le16(f + SEG_OFF_VERSION);
  if (version != QUIRE_SEGMENT_VERSION)
    return quire__err(QUIRE_EVERSION, "segment: format version %u, this build reads %u", version,
                      QUIRE_SEGMENT_VERSION);
  if (ld_le16(f + SEG_OFF_FLAGS) != 0) return corrupt("unknown flags");
  if (ld_le32(f + SEG_OFF_PAGE_SIZE) != QUIRE_PAGE_SIZE) return corrupt("page size is not 4096");
  memcpy(v->sid.b, f + SEG_OFF_SID, QUIRE_GID_SIZE);
  if (quire_gid_type(&v->sid) != QUIRE_GID_SEGMENT) return corrupt("the id is not a segment id");
  v->volume_count = ld_le32(f + SEG_OFF_VOLUMES);
  v->page_count = ld_le32(f + SEG_OFF_PAGES);
  v->index_length = ld_le64(f + SEG_OFF_INDEX_LEN);
  if (v->volume_count > lim->max_volumes)
    return quire__err(QUIRE_ECORRUPT, "segment: %u volumes over the limit %u", v->volume_count,
                      lim->max_volumes);
  if (v->page_count > lim->max_pages)
    return quire__err(QUIRE_ECORRUPT, "segment: %u pages over the limit %u", v->page_count, lim->max_pages);
  if ((v->volume_count == 0) != (v->page_count == 0))
    return corrupt("volumes without pages or pages without volumes");
  if (v->page_count < v->volume_count) return corrupt("more volumes than pages");
  if (v->index_length != (uint64_t)QUIRE_SEGMENT_VOLUME_ENTRY_SIZE * v->volume_count + 12ull * v->page_count)
    return corrupt("index length does not match the counts");
  uint64_t size = quire_segment_size(v->volume_count, v->page_count);
  if (size > lim->target_bytes)
    return quire__err(QUIRE_ECORRUPT, "segment: %llu bytes over the limit %llu", (unsigned long long)size,
                      (unsigned long long)lim->target_bytes);
  if (object_size != size)
    return quire__err(QUIRE_ECORRUPT, "segment: object is %llu bytes, the footer says %llu",
                      (unsigned long long)object_size, (unsigned long long)size);
  v->size = size;
  v->index_offset = (uint64_t)v->page_count * QUIRE_PAGE_SIZE;
  return 0;
}

/* Index checks on v->volumes / v->pageidx / v->checksums. */
static int check_index(const uint8_t *index, quire_segment_view *v) {
  v->volumes = index;
  v->pageidx = index + (size_t)QUIRE_SEGMENT_VOLUME_ENTRY_SIZE * v->volume_count;
  v->checksums = v->pageidx + 4ull * v->page_count;
  uint32_t next_slot = 0;
  for (uint32_t i = 0; i < v->volume_count; i++) {
    const uint8_t *e = v->volumes + (size_t)i * QUIRE_SEGMENT_VOLUME_ENTRY_SIZE;
    if (e[0] != QUIRE_GID_VOLUME)
      return quire__err(QUIRE_ECORRUPT, "segment: volume %u has a bad id type", i);
    if (i && memcmp(e - QUIRE_SEGMENT_VOLUME_ENTRY_SIZE, e, QUIRE_GID_SIZE) >= 0)
      return quire__err(QUIRE_ECORRUPT, "segment: volume %u out of order", i);
    uint32_t first = ld_le32(e + 16), count = ld_le32(e + 20);
    if (first != next_slot)
      return quire__err(QUIRE_ECORRUPT, "segment: volume %u starts at slot %u, not %u", i, first, next_slot);
    if (count == 0) return quire__err(QUIRE_ECORRUPT, "segment: volume %u has no pages", i);
    if (count > v->page_count - first)
      return quire__err(QUIRE_ECORRUPT, "segment: volume %u runs past the pages", i);
    for (uint32_t s = first; s < first + count; s++) {
      uint32_t idx = ld_le32(v->pageidx + 4ull * s);
      if (idx == 0) return quire__err(QUIRE_ECORRUPT, "segment: slot %u has page index 0", s);
      if (s > first && idx <= ld_le32(v->pageidx + 4ull * (s - 1)))
        return quire__err(QUIRE_ECORRUPT, "segment: page indexes of volume %u not ascending at slot %u", i,
                          s);
    }
    next_slot = first + count;
  }
  if (next_slot != v->page_count) return corrupt("volume table does not cover every page");
  return 0;
}

static int resolve_limits(const quire_segment_limits *limits, quire_segment_limits *lim) {
  if (limits) {
    *lim = *limits;
    return quire_segment_limits_check(lim);
  }
  quire_segment_limits_default(lim);
  return 0;
}

/* Shared by open and index_open: tail holds at least the last
 * footer+index bytes of an object of object_size bytes. */
static int open_tail(const uint8_t *tail, size_t tail_len, uint64_t object_size,
                     const quire_segment_limits *limits, quire_segment_view *out) {
  memset(out, 0, sizeof *out);
  quire_segment_limits lim;
  int rc = resolve_limits(limits, &lim);
  if (rc) return rc;
  if (!tail && tail_len) return quire__err(QUIRE_EINVAL, "segment: NULL bytes");
  if (tail_len < QUIRE_SEGMENT_FOOTER_SIZE || object_size < QUIRE_SEGMENT_FOOTER_SIZE)
    return quire__err(QUIRE_ECORRUPT, "segment: %zu bytes, shorter than the footer", tail_len);
  if (tail_len > object_size) return quire__err(QUIRE_EINVAL, "segment: tail longer than the object");
  const uint8_t *f = tail + tail_len - QUIRE_SEGMENT_FOOTER_SIZE;
  quire_segment_view v;
  memset(&v, 0, sizeof v);
  rc = parse_footer(f, object_size, &lim, &v);
  if (rc) return rc;
  if (tail_len - QUIRE_SEGMENT_FOOTER_SIZE < v.index_length) return corrupt("tail too short for the index");
  const uint8_t *index = f - v.index_length;
  if (ld_le64(f + SEG_OFF_INDEX_SUM) != quire__xxh3(index, (size_t)v.index_length))
    return corrupt("index checksum mismatch");
  rc = check_index(index, &v);
  if (rc) return rc;
  *out = v;
  return 0;
}

int quire_segment_open(const void *data, size_t len, const quire_segment_limits *limits,
                       quire_segment_view *out) {
  int rc = open_tail(data, len, len, limits, out);
  if (rc) return rc;
  out->pages = data;
  return 0;
}

int quire_segment_index_open(const void *tail, size_t tail_len, uint64_t object_size,
                             const quire_segment_limits *limits, quire_segment_view *out) {
  return open_tail(tail, tail_len, object_size, limits, out);
}

int quire_segment_tail_length(const void *footer, uint64_t object_size, const quire_segment_limits *limits,
                              uint64_t *tail_len) {
  *tail_len = 0;
  quire_segment_limits lim;
  int rc = resolve_limits(limits, &lim);
  if (rc) return rc;
  if (object_size < QUIRE_SEGMENT_FOOTER_SIZE) return corrupt("object shorter than the footer");
  quire_segment_view v;
  memset(&v, 0, sizeof v);
  rc = parse_footer(footer, object_size, &lim, &v);
  if (rc) return rc;
  *tail_len = v.index_length + QUIRE_SEGMENT_FOOTER_SIZE;
  return 0;
}

uint64_t quire_segment_max_tail(const quire_segment_limits *limits) {
  quire_segment_limits lim;
  if (resolve_limits(limits, &lim)) quire_segment_limits_default(&lim);
  return (uint64_t)QUIRE_SEGMENT_VOLUME_ENTRY_SIZE * lim.max_volumes + 12ull * lim.max_pages +
         QUIRE_SEGMENT_FOOTER_SIZE;
}

/* ---- lookups -------------------------------------------------------------- */

quire_pageidx quire_segment_slot_pageidx(const quire_segment_view *v, uint32_t slot) {
  return slot < v->page_count ? ld_le32(v->pageidx + 4ull * slot) : 0;
}

uint64_t quire_segment_slot_checksum(const quire_segment_view *v, uint32_t slot) {
  return slot < v->page_count ? ld_le64(v->checksums + 8ull * slot) : 0;
}

uint64_t quire_segment_slot_offset(uint32_t slot) { return (uint64_t)slot * QUIRE_PAGE_SIZE; }

int quire_segment_page_check(const quire_segment_view *v, uint32_t slot, const void *page) {
  if (slot >= v->page_count) return quire__err(QUIRE_EINVAL, "segment: slot %u out of range", slot);
  if (quire__xxh3(page, QUIRE_PAGE_SIZE) != ld_le64(v->checksums + 8ull * slot))
    return quire__err(QUIRE_ECORRUPT, "segment: page checksum mismatch at slot %u (page %u)", slot,
                      quire_segment_slot_pageidx(v, slot));
  return 0;
}

int quire_segment_verify_pages(const quire_segment_view *v) {
  if (!v->pages && v->page_count) return quire__err(QUIRE_EINVAL, "segment: index-only view has no pages");
  for (uint32_t s = 0; s < v->page_count; s++) {
    int rc = quire_segment_page_check(v, s, v->pages + (size_t)s * QUIRE_PAGE_SIZE);
    if (rc) return rc;
  }
  return 0;
}

void quire_segment_volume_at(const quire_segment_view *v, uint32_t i, quire_gid *vid, uint32_t *first_slot,
                             uint32_t *count) {
  if (i >= v->volume_count) {
    memset(vid, 0, sizeof *vid);
    *first_slot = *count = 0;
    return;
  }
  const uint8_t *e = v->volumes + (size_t)i * QUIRE_SEGMENT_VOLUME_ENTRY_SIZE;
  memcpy(vid->b, e, QUIRE_GID_SIZE);
  *first_slot = ld_le32(e + 16);
  *count = ld_le32(e + 20);
}

int quire_segment_find_volume(const quire_segment_view *v, const quire_gid *vid, uint32_t *first_slot,
                              uint32_t *count) {
  uint32_t lo = 0, hi = v->volume_count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    const uint8_t *e = v->volumes + (size_t)mid * QUIRE_SEGMENT_VOLUME_ENTRY_SIZE;
    int cmp = memcmp(e, vid->b, QUIRE_GID_SIZE);
    if (cmp == 0) {
      *first_slot = ld_le32(e + 16);
      *count = ld_le32(e + 20);
      return 0;
    }
    if (cmp < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *first_slot = *count = 0;
  return QUIRE_ENOTFOUND;
}

/* First slot in [first, first+count) whose page index is >= idx. */
static uint32_t slot_lower_bound(const quire_segment_view *v, uint32_t first, uint32_t count,
                                 quire_pageidx idx) {
  uint32_t lo = first, hi = first + count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (ld_le32(v->pageidx + 4ull * mid) < idx)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int quire_segment_find_page(const quire_segment_view *v, const quire_gid *vid, quire_pageidx idx,
                            uint32_t *slot) {
  uint32_t first, count;
  if (quire_segment_find_volume(v, vid, &first, &count)) return QUIRE_ENOTFOUND;
  uint32_t s = slot_lower_bound(v, first, count, idx);
  if (s < first + count && ld_le32(v->pageidx + 4ull * s) == idx) {
    *slot = s;
    return 0;
  }
  return QUIRE_ENOTFOUND;
}

int quire_segment_read_page(const quire_segment_view *v, const quire_gid *vid, quire_pageidx idx,
                            const uint8_t **page) {
  *page = NULL;
  if (!v->pages) return quire__err(QUIRE_EINVAL, "segment: index-only view has no pages");
  uint32_t slot;
  if (quire_segment_find_page(v, vid, idx, &slot)) return QUIRE_ENOTFOUND;
  const uint8_t *p = v->pages + (size_t)slot * QUIRE_PAGE_SIZE;
  int rc = quire_segment_page_check(v, slot, p);
  if (rc) return rc;
  *page = p;
  return 0;
}

void quire_segment_iter_volume(const quire_segment_view *v, const quire_gid *vid, quire_segment_iter *it) {
  uint32_t first, count;
  it->v = v;
  if (quire_segment_find_volume(v, vid, &first, &count)) first = count = 0;
  it->slot = first;
  it->end = first + count;
}

int quire_segment_iter_next(quire_segment_iter *it, quire_pageidx *idx, uint32_t *slot,
                            const uint8_t **page) {
  if (it->slot >= it->end) return QUIRE_EEND;
  uint32_t s = it->slot++;
  if (idx) *idx = ld_le32(it->v->pageidx + 4ull * s);
  if (slot) *slot = s;
  if (page) *page = it->v->pages ? it->v->pages + (size_t)s * QUIRE_PAGE_SIZE : NULL;
  return 0;
}

/* ---- partial reads -------------------------------------------------------- */

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int quire_segment_plan(const quire_segment_view *v, const quire_gid *vid, const quire_pageidx *want, size_t n,
                       uint32_t max_gap_pages, quire_segment_range **ranges, size_t *nranges,
                       size_t *missing) {
  *ranges = NULL;
  *nranges = 0;
  if (missing) *missing = 0;
  if (n && !want) return quire__err(QUIRE_EINVAL, "segment plan: NULL page list");
  if (n == 0) return 0;
  uint32_t first = 0, count = 0;
  int have_vol = quire_segment_find_volume(v, vid, &first, &count) == 0;
  /* Resolve every wanted page to a slot, then sort and coalesce. */
  uint32_t *slots = quire__malloc(n * sizeof *slots);
  if (!slots) return QUIRE_ENOMEM;
  size_t ns = 0, lost = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t s = have_vol ? slot_lower_bound(v, first, count, want[i]) : 0;
    if (have_vol && want[i] && s < first + count && ld_le32(v->pageidx + 4ull * s) == want[i])
      slots[ns++] = s;
    else
      lost++;
  }
  qsort(slots, ns, sizeof *slots, u32_cmp);
  quire_segment_range *out = ns ? quire__malloc(ns * sizeof *out) : NULL;
  if (ns && !out) {
    quire__free(slots);
    return QUIRE_ENOMEM;
  }
  size_t nr = 0;
  for (size_t i = 0; i < ns; i++) {
    uint32_t s = slots[i];
    if (nr) {
      quire_segment_range *r = &out[nr - 1];
      uint32_t end = r->first_slot + r->slot_count; /* one past the last slot */
      if (s < end) continue;                        /* a duplicate */
      if ((uint64_t)s - end <= max_gap_pages) {
        r->slot_count = s + 1 - r->first_slot;
        r->length = (uint64_t)r->slot_count * QUIRE_PAGE_SIZE;
        continue;
      }
    }
    out[nr++] = (quire_segment_range){quire_segment_slot_offset(s), QUIRE_PAGE_SIZE, s, 1};
  }
  quire__free(slots);
  if (missing) *missing = lost;
  *ranges = out;
  *nranges = nr;
  return 0;
}
