/*
 * proto/pb.c — protobuf-c allocator and field helpers (see pb.h).
 */
#include "proto/pb.h"

#include <string.h>

#include "util/alloc.h"
#include "util/err.h"

static void *pb_alloc(void *ctx, size_t n) {
  (void)ctx;
  return quire__malloc(n ? n : 1);
}

static void pb_free(void *ctx, void *p) {
  (void)ctx;
  quire__free(p);
}

ProtobufCAllocator quire__pb_allocator = {pb_alloc, pb_free, NULL};

int quire__pb_gid(int has, const ProtobufCBinaryData *b, int want_type, const char *field, quire_gid *out) {
  if (!has || b->len == 0) return quire__err(QUIRE_EINVAL, "%s is missing", field);
  if (b->len != QUIRE_GID_SIZE)
    return quire__err(QUIRE_EINVAL, "%s: %zu bytes, want %d", field, b->len, QUIRE_GID_SIZE);
  memcpy(out->b, b->data, QUIRE_GID_SIZE);
  if (want_type && out->b[0] != want_type)
    return quire__err(QUIRE_EINVAL, "%s: not a %s id (type byte 0x%02x)", field,
                      quire_gid_type_name(want_type), out->b[0]);
  return 0;
}

ProtobufCBinaryData quire__pb_gid_bytes(const quire_gid *g) {
  ProtobufCBinaryData b = {QUIRE_GID_SIZE, (uint8_t *)g->b};
  return b;
}

int quire__pb_pack(const ProtobufCMessage *msg, quire_buf *out) {
  quire__buf_reset(out);
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *p;
  int rc = quire__buf_extend(out, n, &p);
  if (rc) return rc;
  size_t got = protobuf_c_message_pack(msg, p);
  if (QUIRE_NEVER(got != n)) return QUIRE_EINTERNAL;
  return 0;
}
