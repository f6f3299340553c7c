/*
 * segment/segment_int.h — the segment byte layout shared by the builder and
 * the reader (docs/SEGMENT.md has the tables).
 *
 * Footer (64 bytes, little-endian):
 *   0  8  magic "QUIRESEG"
 *   8  2  format version (1)
 *  10  2  flags (0)
 *  12  4  page size (4096)
 *  16 16  segment id
 *  32  4  volume count V
 *  36  4  page count N
 *  40  8  index length (24·V + 12·N)
 *  48  8  XXH3-64 of the index
 *  56  8  XXH3-64 of footer bytes 0..55
 * Volume table entry (24 bytes): vid (16), first slot u32, page count u32.
 */
#ifndef QUIRE_SEGMENT_INT_H
#define QUIRE_SEGMENT_INT_H

#include "quire/segment.h"

#define SEG_MAGIC "QUIRESEG"
#define SEG_OFF_MAGIC 0
#define SEG_OFF_VERSION 8
#define SEG_OFF_FLAGS 10
#define SEG_OFF_PAGE_SIZE 12
#define SEG_OFF_SID 16
#define SEG_OFF_VOLUMES 32
#define SEG_OFF_PAGES 36
#define SEG_OFF_INDEX_LEN 40
#define SEG_OFF_INDEX_SUM 48
#define SEG_OFF_FOOTER_SUM 56

#endif
