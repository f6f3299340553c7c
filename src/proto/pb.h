/*
 * proto/pb.h — glue between protobuf-c and quire: an allocator that goes
 * through quire__malloc (so OOM injection reaches message decoding), and
 * checked conversions of wire fields into quire types. The generated message
 * headers are proto/common.pb-c.h, proto/metastore.pb-c.h and
 * proto/pagestore.pb-c.h (in the build tree).
 */
#ifndef QUIRE_PROTO_PB_H
#define QUIRE_PROTO_PB_H

#include <protobuf-c/protobuf-c.h>

#include "proto/common.pb-c.h"
#include "quire/ids.h"
#include "util/buf.h"

/* Pass to *__unpack() and *__free_unpacked(). */
extern ProtobufCAllocator quire__pb_allocator;

/* Reads a 16-byte GID of type want_type from a bytes field named field.
 * QUIRE_EINVAL (with a message naming the field) when absent, of the wrong
 * length or type. */
int quire__pb_gid(int has, const ProtobufCBinaryData *b, int want_type, const char *field, quire_gid *out);
/* A ProtobufCBinaryData that points at g (no copy). */
ProtobufCBinaryData quire__pb_gid_bytes(const quire_gid *g);

/* Packs msg into out (reset first), bounded by out->limit. */
int quire__pb_pack(const ProtobufCMessage *msg, quire_buf *out);

#endif
