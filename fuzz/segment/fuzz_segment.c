/*
 * fuzz/segment/fuzz_segment.c — the segment reader on untrusted bytes.
 *
 * The input is a segment. If its first byte is odd, the harness first
 * recomputes the index and footer checksums (when the footer's index length
 * fits), so the fuzzer also reaches the structural checks behind them
 * instead of stopping at a checksum mismatch. A segment that opens is then
 * exercised fully: every volume, page lookups, iteration, page checksums,
 * the index-only open of its tail, and a partial-read plan.
 */
#include "quire/segment.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static void reseal(uint8_t *buf, size_t len) {
  if (len < QUIRE_SEGMENT_FOOTER_SIZE) return;
  uint8_t *f = buf + len - QUIRE_SEGMENT_FOOTER_SIZE;
  uint64_t ilen = ld_le64(f + 40);
  if (ilen <= len - QUIRE_SEGMENT_FOOTER_SIZE) st_le64(f + 48, quire__xxh3(f - ilen, (size_t)ilen));
  st_le64(f + 56, quire__xxh3(f, 56));
}

static void exercise(const quire_segment_view *v) {
  (void)quire_segment_verify_pages(v);
  for (uint32_t i = 0; i < v->volume_count; i++) {
    quire_gid vid;
    uint32_t first, count, slot;
    quire_segment_volume_at(v, i, &vid, &first, &count);
    quire_segment_iter it;
    quire_segment_iter_volume(v, &vid, &it);
    quire_pageidx idx;
    const uint8_t *page;
    quire_pageidx want[8];
    size_t nwant = 0;
    while (quire_segment_iter_next(&it, &idx, &slot, &page) == 0) {
      uint32_t s2;
      if (quire_segment_find_page(v, &vid, idx, &s2) != 0 || s2 != slot) abort();
      if (page) (void)quire_segment_read_page(v, &vid, idx, &page);
      if (nwant < 8) {
        want[nwant] = idx + (nwant % 2);
        nwant++;
      }
    }
    quire_segment_range *r;
    size_t nr, missing;
    if (quire_segment_plan(v, &vid, want, nwant, 1, &r, &nr, &missing) == 0) {
      for (size_t k = 0; k < nr; k++)
        if (r[k].offset + r[k].length > v->index_offset) abort(); /* ranges stay in the pages */
      quire_segment_free(r);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = calloc(1, size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  if (size && (buf[0] & 1)) reseal(buf, size);
  quire_segment_view v;
  if (quire_segment_open(buf, size, NULL, &v) == 0) {
    exercise(&v);
    uint64_t tail;
    if (quire_segment_tail_length(buf + size - QUIRE_SEGMENT_FOOTER_SIZE, size, NULL, &tail) != 0) abort();
    quire_segment_view iv;
    if (quire_segment_index_open(buf + size - tail, (size_t)tail, size, NULL, &iv) != 0) abort();
    exercise(&iv);
  } else if (size >= QUIRE_SEGMENT_FOOTER_SIZE) {
    /* tail-only open of the same bytes, as if the object were larger */
    quire_segment_view iv;
    if (quire_segment_index_open(buf, size, (uint64_t)size + 4096 * (buf[0] % 4), NULL, &iv) == 0)
      exercise(&iv);
  }
  free(buf);
  return 0;
}
