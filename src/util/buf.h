/*
 * util/buf.h — a growable byte buffer with a mandatory cap.
 *
 * Every buffer that grows from outside input has a limit: appending past it
 * returns QUIRE_ETOOLARGE and leaves the buffer unchanged. The buffer owns
 * data; quire__buf_free releases it, quire__buf_detach hands it over.
 */
#ifndef QUIRE_UTIL_BUF_H
#define QUIRE_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct quire_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
  size_t limit; /* hard cap on len */
} quire_buf;

void quire__buf_init(quire_buf *b, size_t limit);
/* Make room for extra more bytes. QUIRE_ETOOLARGE past the limit, QUIRE_ENOMEM. */
int quire__buf_reserve(quire_buf *b, size_t extra);
int quire__buf_append(quire_buf *b, const void *p, size_t n);
int quire__buf_append_u8(quire_buf *b, uint8_t v);
int quire__buf_append_le32(quire_buf *b, uint32_t v);
int quire__buf_append_le64(quire_buf *b, uint64_t v);
int quire__buf_append_varint(quire_buf *b, uint64_t v);
/* Append len zero bytes and return a pointer to them in *out (valid until the
 * next growth). */
int quire__buf_extend(quire_buf *b, size_t len, uint8_t **out);
void quire__buf_reset(quire_buf *b);
void quire__buf_free(quire_buf *b);
/* Returns data (caller frees with quire__free) and resets b to empty. */
uint8_t *quire__buf_detach(quire_buf *b, size_t *len);

#endif
