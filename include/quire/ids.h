/*
 * quire/ids.h — the identifiers every component shares (DESIGN.md §3).
 *
 * GID (16 bytes): byte 0 is the type (volume 0x80, segment 0xA0, client 0xC0,
 * commit 0xE0; the top bit is always set), bytes 1..6 are milliseconds since
 * the Unix epoch, big-endian, bytes 7..15 come from the OS CSPRNG. Byte order
 * sorts by type, then time. Text form: base58 (Bitcoin alphabet), exactly 22
 * characters.
 *
 * LSN: u64, 1-based, 0 means "none". PageIdx: u32, 1-based, 0 is invalid.
 * PageCount: u32, the logical size of a volume in pages.
 */
#ifndef QUIRE_IDS_H
#define QUIRE_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "quire/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QUIRE_PAGE_SIZE 4096u
#define QUIRE_GID_SIZE 16
#define QUIRE_GID_TEXT_LEN 22

enum quire_gid_type {
  QUIRE_GID_VOLUME = 0x80,
  QUIRE_GID_SEGMENT = 0xA0,
  QUIRE_GID_CLIENT = 0xC0,
  QUIRE_GID_COMMIT = 0xE0
};

typedef struct quire_gid {
  uint8_t b[QUIRE_GID_SIZE];
} quire_gid;

typedef uint64_t quire_lsn;
typedef uint32_t quire_pageidx;
typedef uint32_t quire_pagecount;

/* New id of the given type, stamped now. QUIRE_EINVAL for an unknown type,
 * -errno if the CSPRNG fails. */
QUIRE_API int quire_gid_new(int type, quire_gid *out);
/* Same with an explicit timestamp (ms since the epoch, < 2^48). */
QUIRE_API int quire_gid_new_at(int type, uint64_t unix_ms, quire_gid *out);
/* 0 if g's type byte is one of the four types, QUIRE_EINVAL otherwise. */
QUIRE_API int quire_gid_check(const quire_gid *g);
QUIRE_API int quire_gid_type(const quire_gid *g);
QUIRE_API uint64_t quire_gid_time_ms(const quire_gid *g);
/* "volume", "segment", "client", "commit" or "unknown". */
QUIRE_API const char *quire_gid_type_name(int type);
/* memcmp order: type, then time, then random bytes. */
QUIRE_API int quire_gid_cmp(const quire_gid *a, const quire_gid *b);
QUIRE_API int quire_gid_is_zero(const quire_gid *g);

/* Writes the 22-character base58 text and a NUL into out[23]. */
QUIRE_API void quire_gid_format(const quire_gid *g, char out[QUIRE_GID_TEXT_LEN + 1]);
/* Parses exactly 22 base58 characters (len bytes at text; no NUL needed).
 * want_type = 0 accepts any of the four types. QUIRE_EINVAL with a detail in
 * quire_errmsg() on a wrong length, a character outside the alphabet, a value
 * over 128 bits, an unknown type byte or a type other than want_type. */
QUIRE_API int quire_gid_parse(const char *text, size_t len, int want_type, quire_gid *out);

/* QUIRE_ERANGE for 0, else 0. */
QUIRE_API int quire_lsn_check(quire_lsn lsn);
QUIRE_API int quire_pageidx_check(quire_pageidx idx);
/* 16 lowercase hex digits + NUL: the object-key form, sorted by LSN. */
QUIRE_API void quire_lsn_format(quire_lsn lsn, char out[17]);
/* Parses exactly 16 lowercase hex digits. QUIRE_EINVAL otherwise. */
QUIRE_API int quire_lsn_parse(const char *text, size_t len, quire_lsn *out);

#ifdef __cplusplus
}
#endif
#endif
