/* util/buf.c — capped growable buffer. */
#include "util/buf.h"
#include "util/alloc.h"
#include "util/endian.h"
#include "util/err.h"
#include "util/varint.h"

#include <string.h>

void quire__buf_init(quire_buf *b, size_t limit) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->limit = limit;
}

int quire__buf_reserve(quire_buf *b, size_t extra) {
  if (extra > b->limit || b->len > b->limit - extra)
    return quire__err(QUIRE_ETOOLARGE, "buffer limit of %zu bytes exceeded", b->limit);
  size_t need = b->len + extra;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > b->limit) cap = b->limit;
  uint8_t *p = quire__realloc(b->data, cap);
  if (!p) return quire__err(QUIRE_ENOMEM, "buffer grow to %zu bytes", cap);
  b->data = p;
  b->cap = cap;
  return 0;
}

int quire__buf_append(quire_buf *b, const void *p, size_t n) {
  int rc = quire__buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int quire__buf_extend(quire_buf *b, size_t n, uint8_t **out) {
  int rc = quire__buf_reserve(b, n);
  if (rc) return rc;
  memset(b->data + b->len, 0, n);
  if (out) *out = b->data + b->len;
  b->len += n;
  return 0;
}

int quire__buf_append_u8(quire_buf *b, uint8_t v) { return quire__buf_append(b, &v, 1); }

int quire__buf_append_le32(quire_buf *b, uint32_t v) {
  uint8_t t[4];
  st_le32(t, v);
  return quire__buf_append(b, t, 4);
}

int quire__buf_append_le64(quire_buf *b, uint64_t v) {
  uint8_t t[8];
  st_le64(t, v);
  return quire__buf_append(b, t, 8);
}

int quire__buf_append_varint(quire_buf *b, uint64_t v) {
  uint8_t t[QUIRE_VARINT_MAX];
  return quire__buf_append(b, t, (size_t)quire__varint_put(t, v));
}

void quire__buf_reset(quire_buf *b) { b->len = 0; }

void quire__buf_free(quire_buf *b) {
  quire__free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

uint8_t *quire__buf_detach(quire_buf *b, size_t *len) {
  uint8_t *p = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}
