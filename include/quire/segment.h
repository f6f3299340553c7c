/*
 * quire/segment.h — segments: immutable objects holding pages of one or more
 * volumes plus an index (DESIGN.md §7.1; the byte format is in
 * docs/SEGMENT.md).
 *
 *   [ pages  : N × 4096 bytes, grouped by volume, ascending PageIdx ]
 *   [ index  : volume table (V × 24), page indexes (N × 4), page checksums
 *              (N × 8, XXH3-64) ]
 *   [ footer : 64 bytes: magic, version, page size, segment id, counts,
 *              index length, index checksum, footer checksum ]
 *
 * Size of a segment with V volumes and N pages: 4108·N + 24·V + 64 bytes
 * (quire_segment_size).
 *
 * Writing: a builder takes pages in order (volumes ascending by id, page
 * indexes ascending within a volume, one version per page), keeps one copy
 * of the page bytes, and streams the segment out in one forward pass to a
 * callback, a buffer, a file descriptor or an object-store writer.
 *
 * Reading: quire_segment_open validates the footer and the whole index
 * (counts, bounds, order, limits, checksums) of bytes in memory (a buffer or
 * an mmap) and gives a view that borrows them: no allocation, valid as long
 * as the bytes are. quire_segment_index_open does the same from the footer
 * and index alone (the tail of the object, one ranged read), and
 * quire_segment_plan turns a set of wanted pages into coalesced byte ranges
 * to fetch. Every page carries its own checksum, so a page fetched on its
 * own can be verified (quire_segment_page_check).
 *
 * Errors: QUIRE_ECORRUPT for any inconsistency in bytes read, QUIRE_EVERSION
 * for a well-formed footer of an unknown format version, QUIRE_EINVAL for
 * bad arguments or out-of-order pages given to the builder, QUIRE_ETOOLARGE
 * when a page does not fit the builder's limits.
 */
#ifndef QUIRE_SEGMENT_H
#define QUIRE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "quire/common.h"
#include "quire/ids.h"
#include "quire/objstore.h"
#include "quire/splinter.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QUIRE_SEGMENT_VERSION 1
#define QUIRE_SEGMENT_FOOTER_SIZE 64
#define QUIRE_SEGMENT_VOLUME_ENTRY_SIZE 24
/* Per page: 4096 bytes of page, 4 of page index, 8 of checksum. */
#define QUIRE_SEGMENT_PAGE_COST (QUIRE_PAGE_SIZE + 4 + 8)
/* Hard caps of format version 1; limits may be lower, never higher. */
#define QUIRE_SEGMENT_HARD_MAX_VOLUMES (1u << 20)
#define QUIRE_SEGMENT_HARD_MAX_PAGES (1u << 22)

typedef struct quire_segment_limits {
  uint64_t target_bytes; /* a builder never exceeds it; a reader rejects more */
  uint32_t max_volumes;
  uint32_t max_pages;
} quire_segment_limits;

/* The defaults: 16 MiB target, 1024 volumes, 4084 pages (the most pages
 * that fit in 16 MiB). */
QUIRE_API void quire_segment_limits_default(quire_segment_limits *l);
/* QUIRE_EINVAL unless 0 < max_volumes <= hard cap, 0 < max_pages <= hard
 * cap and target_bytes holds at least one page of one volume. */
QUIRE_API int quire_segment_limits_check(const quire_segment_limits *l);
/* Bytes of a segment with the given counts: 4108·pages + 24·volumes + 64. */
QUIRE_API uint64_t quire_segment_size(uint64_t volumes, uint64_t pages);

/* ---- building ---- */

typedef struct quire_segment_builder quire_segment_builder;

/* A new, empty builder for segment id sid (type segment). limits NULL means
 * the defaults. Free with quire_segment_builder_free. */
QUIRE_API int quire_segment_builder_new(const quire_gid *sid, const quire_segment_limits *limits,
                                        quire_segment_builder **out);
QUIRE_API void quire_segment_builder_free(quire_segment_builder *b);
/* 1 if npages more pages of vid would fit the limits, else 0. */
QUIRE_API int quire_segment_builder_fits(const quire_segment_builder *b, const quire_gid *vid,
                                         uint32_t npages);
/* Copies one page (QUIRE_PAGE_SIZE bytes). vid must be >= the last volume
 * added, and idx > the last index added for the same volume; otherwise
 * QUIRE_EINVAL (also for idx 0 or a vid that is not a volume id).
 * QUIRE_ETOOLARGE if the page does not fit the limits (the builder is
 * unchanged: write it out and start another). */
QUIRE_API int quire_segment_builder_add(quire_segment_builder *b, const quire_gid *vid, quire_pageidx idx,
                                        const void *page);
QUIRE_API uint32_t quire_segment_builder_pages(const quire_segment_builder *b);
QUIRE_API uint32_t quire_segment_builder_volumes(const quire_segment_builder *b);
/* Size the finished segment will have (quire_segment_size of the counts). */
QUIRE_API uint64_t quire_segment_builder_size(const quire_segment_builder *b);

/* Streams the segment to sink in one forward pass (pages, index, footer).
 * sink returns 0 or an error, which stops the write and is returned. The
 * builder is unchanged and can be written again. */
typedef int (*quire_segment_sink)(void *ctx, const void *data, size_t len);
QUIRE_API int quire_segment_builder_write(const quire_segment_builder *b, quire_segment_sink sink, void *ctx);
/* The whole segment in a new buffer; release it with quire_segment_free. */
QUIRE_API int quire_segment_builder_to_buf(const quire_segment_builder *b, uint8_t **data, size_t *len);
/* Writes the segment at the current position of fd (no fsync). */
QUIRE_API int quire_segment_builder_to_fd(const quire_segment_builder *b, int fd);
/* Uploads the segment to store under key with a streaming writer (flags: 0
 * or QUIRE_OBJSTORE_IF_ABSENT); the pages are not copied again. */
QUIRE_API int quire_segment_builder_to_store(const quire_segment_builder *b, quire_objstore *store,
                                             const char *key, int flags);

/* Assembling a segment whose pages the caller has already laid out (in
 * order, at the start of a buffer, or streamed): the tail (index + footer)
 * for them. The bytes are exactly those a builder given the same pages
 * writes. */
typedef struct quire_segment_page {
  quire_gid vid;
  quire_pageidx idx;
  uint64_t checksum; /* quire_segment_page_checksum of the page bytes */
} quire_segment_page;
/* The checksum a segment index holds for a page (XXH3-64 of its 4096 bytes). */
QUIRE_API uint64_t quire_segment_page_checksum(const void *page);
/* Bytes of the tail of a segment with the given counts: 24·V + 12·N + 64. */
QUIRE_API uint64_t quire_segment_tail_size(uint64_t volumes, uint64_t pages);
/* Writes the tail of segment sid for pages[0..npages) — in segment order
 * (volumes ascending, indexes ascending within a volume, one version) —
 * into out (cap bytes), setting *len. QUIRE_EINVAL for a bad id or order,
 * QUIRE_ETOOLARGE when the pages exceed limits (NULL = defaults) or the
 * tail exceeds cap. */
QUIRE_API int quire_segment_tail_build(const quire_gid *sid, const quire_segment_limits *limits,
                                       const quire_segment_page *pages, uint32_t npages, uint8_t *out,
                                       size_t cap, size_t *len);
/* Releases buffers returned by this API. Accepts NULL. */
QUIRE_API void quire_segment_free(void *p);

/* ---- reading ---- */

/* A validated segment (or its index alone). Borrows the bytes it was opened
 * over; the fields are read-only. pages is NULL for an index-only view. */
typedef struct quire_segment_view {
  quire_gid sid;
  uint32_t volume_count, page_count;
  uint64_t size;         /* the whole segment's length in bytes */
  uint64_t index_offset; /* where the index starts (= 4096 · page_count) */
  uint64_t index_length;
  const uint8_t *pages;     /* page_count × 4096 bytes, or NULL */
  const uint8_t *volumes;   /* volume_count × 24 bytes */
  const uint8_t *pageidx;   /* page_count × u32 LE */
  const uint8_t *checksums; /* page_count × u64 LE */
} quire_segment_view;

/* Validates a whole segment of len bytes at data (limits NULL = defaults):
 * footer checksum, magic, version, page size, counts against limits, index
 * length, total length, index checksum, volume table (ids ascending and of
 * type volume, slots contiguous, no empty volume) and page indexes
 * (non-zero, ascending within each volume). Page checksums are checked when
 * pages are read (or all at once with quire_segment_verify_pages). */
QUIRE_API int quire_segment_open(const void *data, size_t len, const quire_segment_limits *limits,
                                 quire_segment_view *out);
/* The same validation from the tail of an object of object_size bytes:
 * tail holds the last tail_len bytes (at least footer + index; more is
 * fine). The view has no pages. */
QUIRE_API int quire_segment_index_open(const void *tail, size_t tail_len, uint64_t object_size,
                                       const quire_segment_limits *limits, quire_segment_view *out);
/* From the footer alone (the last 64 bytes), how many tail bytes
 * (index + footer) index_open needs. QUIRE_ECORRUPT/EVERSION as above. */
QUIRE_API int quire_segment_tail_length(const void *footer, uint64_t object_size,
                                        const quire_segment_limits *limits, uint64_t *tail_len);
/* The most tail bytes any segment within limits can need: one ranged read
 * of this many bytes from the end (or the whole object if smaller) always
 * gets footer and index. */
QUIRE_API uint64_t quire_segment_max_tail(const quire_segment_limits *limits);

/* Verifies every page checksum of a full view. QUIRE_ECORRUPT names the
 * first bad slot in quire_errmsg(). */
QUIRE_API int quire_segment_verify_pages(const quire_segment_view *v);

/* Volume i (0 <= i < volume_count): its id, first slot and page count. */
QUIRE_API void quire_segment_volume_at(const quire_segment_view *v, uint32_t i, quire_gid *vid,
                                       uint32_t *first_slot, uint32_t *count);
/* Binary search for vid: its first slot and page count, QUIRE_ENOTFOUND. */
QUIRE_API int quire_segment_find_volume(const quire_segment_view *v, const quire_gid *vid,
                                        uint32_t *first_slot, uint32_t *count);
/* Binary searches for (vid, idx): the page's slot, or QUIRE_ENOTFOUND. */
QUIRE_API int quire_segment_find_page(const quire_segment_view *v, const quire_gid *vid, quire_pageidx idx,
                                      uint32_t *slot);
/* Page index and checksum stored for slot (< page_count). */
QUIRE_API quire_pageidx quire_segment_slot_pageidx(const quire_segment_view *v, uint32_t slot);
QUIRE_API uint64_t quire_segment_slot_checksum(const quire_segment_view *v, uint32_t slot);
/* Byte offset of slot's page inside the segment (slot · 4096). */
QUIRE_API uint64_t quire_segment_slot_offset(uint32_t slot);
/* 0 if page (4096 bytes, e.g. fetched with a ranged read) matches slot's
 * checksum, QUIRE_ECORRUPT otherwise. */
QUIRE_API int quire_segment_page_check(const quire_segment_view *v, uint32_t slot, const void *page);
/* Finds (vid, idx) in a full view and verifies its checksum; *page points
 * into the view's bytes. QUIRE_ENOTFOUND, QUIRE_ECORRUPT, QUIRE_EINVAL for
 * an index-only view. */
QUIRE_API int quire_segment_read_page(const quire_segment_view *v, const quire_gid *vid, quire_pageidx idx,
                                      const uint8_t **page);

/* Iterates the pages of one volume in ascending page index. */
typedef struct quire_segment_iter {
  const quire_segment_view *v;
  uint32_t slot, end;
} quire_segment_iter;
/* Positions it before the first page of vid (an empty iteration if absent). */
QUIRE_API void quire_segment_iter_volume(const quire_segment_view *v, const quire_gid *vid,
                                         quire_segment_iter *it);
/* Next page: its index, slot and bytes (NULL for an index-only view; not
 * verified). QUIRE_EEND after the last. */
QUIRE_API int quire_segment_iter_next(quire_segment_iter *it, quire_pageidx *idx, uint32_t *slot,
                                      const uint8_t **page);

/* ---- partial reads ---- */

typedef struct quire_segment_range {
  uint64_t offset, length;         /* bytes of the segment object to fetch */
  uint32_t first_slot, slot_count; /* the pages they hold (slot_count·4096 = length) */
} quire_segment_range;

/* Which byte ranges of the segment hold the wanted pages of vid (want: n
 * page indexes in any order, duplicates allowed). Pages the segment lacks
 * are skipped and counted in *missing (may be NULL). Neighbouring slots are
 * coalesced; a gap of up to max_gap_pages unwanted pages between two wanted
 * ones is fetched too rather than split into two requests. On success
 * *ranges (release with quire_segment_free) holds *nranges ranges in
 * ascending offset order. Works on index-only and full views. */
QUIRE_API int quire_segment_plan(const quire_segment_view *v, const quire_gid *vid, const quire_pageidx *want,
                                 size_t n, uint32_t max_gap_pages, quire_segment_range **ranges,
                                 size_t *nranges, size_t *missing);

/* ---- page sets (Splinter) ---- */

/* The page indexes of vid in this segment as a new owned splinter (empty if
 * the segment has no pages of vid); the caller frees it with
 * splinter_free. Works on index-only and full views. */
QUIRE_API int quire_segment_volume_pages(const quire_segment_view *v, const quire_gid *vid, splinter_t **out);
/* quire_segment_plan with the wanted pages as a splinter (owned or view).
 * Costs O(pages of vid in the segment), whatever the size of want; *missing
 * counts the wanted pages the segment lacks. */
QUIRE_API int quire_segment_plan_set(const quire_segment_view *v, const quire_gid *vid, splinter_ref_t want,
                                     uint32_t max_gap_pages, quire_segment_range **ranges, size_t *nranges,
                                     uint64_t *missing);

#ifdef __cplusplus
}
#endif
#endif
