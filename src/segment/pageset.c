/*
 * segment/pageset.c — a segment's pages of a volume as a Splinter, and
 * partial-read plans from a Splinter of wanted pages (the shape the page
 * query produces: wanted.cut(segment pages), DESIGN.md §9.2).
 */
#include "segment/segment_int.h"
#include "util/util.h"

#include <string.h>

int quire_segment_volume_pages(const quire_segment_view *v, const quire_gid *vid, splinter_t **out) {
  *out = NULL;
  uint32_t first, count;
  if (quire_segment_find_volume(v, vid, &first, &count)) return splinter_new(out);
  uint32_t *vals = quire__malloc((size_t)count * sizeof *vals);
  if (!vals) return QUIRE_ENOMEM;
  for (uint32_t i = 0; i < count; i++) vals[i] = quire_segment_slot_pageidx(v, first + i);
  /* validated on open: strictly ascending within a volume */
  int rc = splinter_from_sorted(vals, count, out);
  quire__free(vals);
  if (rc == QUIRE_EINVAL)
    rc = quire__err(QUIRE_EINTERNAL, "segment: page indexes of a validated volume not ascending");
  return rc;
}

int quire_segment_plan_set(const quire_segment_view *v, const quire_gid *vid, splinter_ref_t want,
                           uint32_t max_gap_pages, quire_segment_range **ranges, size_t *nranges,
                           uint64_t *missing) {
  *ranges = NULL;
  *nranges = 0;
  uint64_t wanted = splinter_ref_cardinality(want);
  if (missing) *missing = wanted;
  uint32_t first, count;
  if (wanted == 0 || quire_segment_find_volume(v, vid, &first, &count)) return 0;
  quire_segment_range *out = NULL;
  size_t nr = 0, cap = 0;
  uint64_t found = 0;
  for (uint32_t s = first; s < first + count; s++) {
    if (!splinter_ref_contains(want, quire_segment_slot_pageidx(v, s))) continue;
    found++;
    if (nr) {
      quire_segment_range *r = &out[nr - 1];
      uint32_t end = r->first_slot + r->slot_count;
      if ((uint64_t)s - end <= max_gap_pages) {
        r->slot_count = s + 1 - r->first_slot;
        r->length = (uint64_t)r->slot_count * QUIRE_PAGE_SIZE;
        continue;
      }
    }
    if (nr == cap) {
      cap = cap ? cap * 2 : 8;
      quire_segment_range *grown = quire__realloc(out, cap * sizeof *out);
      if (!grown) {
        quire__free(out);
        return QUIRE_ENOMEM;
      }
      out = grown;
    }
    out[nr++] = (quire_segment_range){quire_segment_slot_offset(s), QUIRE_PAGE_SIZE, s, 1};
  }
  *ranges = out;
  *nranges = nr;
  if (missing) *missing = wanted - found;
  return 0;
}
