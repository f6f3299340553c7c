/*
 * core/receipt.h — write receipts: proof that a pagestore wrote a segment
 * holding given pages of a volume, so that the metastore can refuse commits
 * that name segments nobody wrote (or that hold other volumes' pages).
 *
 * The pagestore answers write_pages with one receipt per segment: an
 * HMAC-SHA-256 under a key it shares with the metastore (created by `quire
 * server`, or given to both with --receipt-key). The client passes it on
 * unchanged in its commit; the metastore recomputes it. Checking costs one
 * HMAC over the graft bytes per segment and no object-store call.
 *
 * MAC input (docs/PROTOCOL.md "Write receipts"):
 *
 *   offset  size  field
 *   0       16    "quire receipt v1"
 *   16      16    volume id
 *   32      16    segment id
 *   48      4     graft length n, u32 little-endian
 *   52      n     graft: the serialized splinter write_pages answered
 *
 * Key file: 64 hex digits (32 bytes), optionally followed by a newline,
 * readable by the owner only.
 */
#ifndef QUIRE_CORE_RECEIPT_H
#define QUIRE_CORE_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include "quire/ids.h"

#define QUIRE_RECEIPT_KEY_SIZE 32
#define QUIRE_RECEIPT_SIZE 32

/* The receipt for (vid, sid, graft) under key into out. */
void quire__receipt_make(const uint8_t key[QUIRE_RECEIPT_KEY_SIZE], const quire_gid *vid,
                         const quire_gid *sid, const uint8_t *graft, size_t graft_len,
                         uint8_t out[QUIRE_RECEIPT_SIZE]);
/* 0 when mac (mac_len bytes) is the receipt for (vid, sid, graft) under key,
 * QUIRE_EFORBIDDEN otherwise (constant time in the MAC comparison). */
int quire__receipt_check(const uint8_t key[QUIRE_RECEIPT_KEY_SIZE], const quire_gid *vid,
                         const quire_gid *sid, const uint8_t *graft, size_t graft_len, const uint8_t *mac,
                         size_t mac_len);

/* Reads a key file. QUIRE_EINVAL (with the reason) for a file that is not
 * 64 hex digits, -errno when it cannot be read. Warns when group or others
 * may read it. */
int quire__receipt_key_load(const char *path, uint8_t key[QUIRE_RECEIPT_KEY_SIZE]);
/* Creates a key file with a fresh random key (mode 0600) unless it exists;
 * either way loads it into key. */
int quire__receipt_key_ensure(const char *path, uint8_t key[QUIRE_RECEIPT_KEY_SIZE]);

#endif
