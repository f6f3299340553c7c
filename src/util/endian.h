/*
 * util/endian.h — unaligned little- and big-endian loads and stores.
 * Bytes on disk and on the wire are little-endian; integers inside keys are
 * big-endian so that memcmp order is numeric order.
 */
#ifndef QUIRE_UTIL_ENDIAN_H
#define QUIRE_UTIL_ENDIAN_H

#include <stdint.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "quire assumes a little-endian host; add byte swaps for the le helpers"
#endif

static inline uint16_t ld_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t ld_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t ld_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void st_le16(void *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void st_le32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void st_le64(void *p, uint64_t v) { memcpy(p, &v, 8); }

static inline uint16_t ld_be16(const void *p) { return __builtin_bswap16(ld_le16(p)); }
static inline uint32_t ld_be32(const void *p) { return __builtin_bswap32(ld_le32(p)); }
static inline uint64_t ld_be64(const void *p) { return __builtin_bswap64(ld_le64(p)); }
static inline void st_be16(void *p, uint16_t v) { st_le16(p, __builtin_bswap16(v)); }
static inline void st_be32(void *p, uint32_t v) { st_le32(p, __builtin_bswap32(v)); }
static inline void st_be64(void *p, uint64_t v) { st_le64(p, __builtin_bswap64(v)); }

#endif
