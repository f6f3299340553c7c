/*
 * core/commit_record.c — commit record codec (see commit_record.h).
 *
 * Layout, little-endian (docs/PROTOCOL.md "Commit objects"):
 *
 *   offset  size  field
 *   0       4     magic "QCMT"
 *   4       2     format version (2; version 1 is still read)
 *   6       2     flags: bit 0 = rewrite (version 2 only; version 1 has 0,
 *                 and any unknown bit is rejected)
 *   8       16    volume id (GID type 0x80)
 *   24      16    client id (GID type 0xC0)
 *   40      16    commit id (GID type 0xE0), the idempotency key
 *   56      8     lsn (>= 1)
 *   64      8     checkpoint lsn (<= lsn; == lsn for a rewrite)
 *   72      8     timestamp, ms since the epoch (server clock)
 *   80      4     page count
 *   84      4     segment count n (<= 65536)
 *   88      ...   n entries: segment id (16, GID type 0xA0), graft length
 *                 (u32), graft bytes (a serialized splinter)
 *   end-8   8     XXH3-64 of every byte before it
 *
 * Versions 1 and 2 share the layout; version 1 predates checkpoints (its
 * checkpoint lsn is 0 as written by every version-1 metastore, and is
 * read as stored) and has no flags.
 *
 * The decoder checks the total size, then the checksum, then every field and
 * every length against what remains, and that the entries end exactly at the
 * checksum.
 */
#include "core/commit_record.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/checksum.h"
#include "util/endian.h"
#include "util/err.h"

static int check_ids(const struct quire_commit *c) {
  if (c->vid.b[0] != QUIRE_GID_VOLUME) return quire__err(QUIRE_EINVAL, "vid is not a volume id");
  if (c->client_id.b[0] != QUIRE_GID_CLIENT) return quire__err(QUIRE_EINVAL, "client_id is not a client id");
  if (c->commit_id.b[0] != QUIRE_GID_COMMIT) return quire__err(QUIRE_EINVAL, "commit_id is not a commit id");
  if (c->lsn == 0) return quire__err(QUIRE_EINVAL, "lsn 0");
  if (c->checkpoint_lsn > c->lsn)
    return quire__err(QUIRE_EINVAL, "checkpoint lsn %llu past lsn %llu",
                      (unsigned long long)c->checkpoint_lsn, (unsigned long long)c->lsn);
  if (c->flags & ~QUIRE_COMMIT_F_KNOWN) return quire__err(QUIRE_EINVAL, "unknown flags 0x%x", c->flags);
  if ((c->flags & QUIRE_COMMIT_F_REWRITE) && (c->lsn < 2 || c->checkpoint_lsn != c->lsn))
    return quire__err(QUIRE_EINVAL, "a rewrite must be a checkpoint (checkpoint lsn == lsn) after lsn 1");
  return 0;
}

int quire__commit_encode(const struct quire_commit *c, quire_buf *out) {
  int rc = check_ids(c);
  if (rc) return rc;
  if (c->nsegments > QUIRE_COMMIT_MAX_SEGMENTS)
    return quire__err(QUIRE_ETOOLARGE, "%u segments in one commit (max %u)", c->nsegments,
                      QUIRE_COMMIT_MAX_SEGMENTS);
  uint64_t total = QUIRE_COMMIT_MIN_SIZE;
  for (uint32_t i = 0; i < c->nsegments; i++) {
    if (c->segments[i].sid.b[0] != QUIRE_GID_SEGMENT)
      return quire__err(QUIRE_EINVAL, "segment %u: not a segment id", i);
    total += 20 + (uint64_t)c->segments[i].graft_len;
  }
  if (total > QUIRE_COMMIT_MAX_SIZE)
    return quire__err(QUIRE_ETOOLARGE, "commit record of %llu bytes (max %u)", (unsigned long long)total,
                      QUIRE_COMMIT_MAX_SIZE);
  size_t start = out->len;
  uint8_t *p;
  rc = quire__buf_extend(out, (size_t)total, &p);
  if (rc) return rc;
  memcpy(p, QUIRE_COMMIT_MAGIC, 4);
  st_le16(p + 4, QUIRE_COMMIT_VERSION);
  st_le16(p + 6, (uint16_t)c->flags);
  memcpy(p + 8, c->vid.b, 16);
  memcpy(p + 24, c->client_id.b, 16);
  memcpy(p + 40, c->commit_id.b, 16);
  st_le64(p + 56, c->lsn);
  st_le64(p + 64, c->checkpoint_lsn);
  st_le64(p + 72, c->timestamp_ms);
  st_le32(p + 80, c->page_count);
  st_le32(p + 84, c->nsegments);
  size_t off = QUIRE_COMMIT_HEADER_SIZE;
  for (uint32_t i = 0; i < c->nsegments; i++) {
    memcpy(p + off, c->segments[i].sid.b, 16);
    st_le32(p + off + 16, c->segments[i].graft_len);
    if (c->segments[i].graft_len) memcpy(p + off + 20, c->segments[i].graft, c->segments[i].graft_len);
    off += 20 + c->segments[i].graft_len;
  }
  st_le64(p + off, quire__xxh3(p, off));
  (void)start;
  return 0;
}

void quire__commit_clear(struct quire_commit *c) {
  quire__free(c->segments);
  memset(c, 0, sizeof *c);
}

int quire__commit_decode(const uint8_t *p, size_t n, struct quire_commit *out) {
  memset(out, 0, sizeof *out);
  if (n < QUIRE_COMMIT_MIN_SIZE)
    return quire__err(QUIRE_ECORRUPT, "commit record: %zu bytes, shorter than the minimum %d", n,
                      QUIRE_COMMIT_MIN_SIZE);
  if (n > QUIRE_COMMIT_MAX_SIZE)
    return quire__err(QUIRE_ECORRUPT, "commit record: %zu bytes, over the maximum", n);
  if (memcmp(p, QUIRE_COMMIT_MAGIC, 4) != 0) return quire__err(QUIRE_ECORRUPT, "commit record: bad magic");
  if (ld_le64(p + n - 8) != quire__xxh3(p, n - 8))
    return quire__err(QUIRE_ECORRUPT, "commit record: checksum mismatch");
  unsigned version = ld_le16(p + 4);
  if (version < QUIRE_COMMIT_VERSION_MIN || version > QUIRE_COMMIT_VERSION)
    return quire__err(QUIRE_EVERSION, "commit record: version %u (this build reads %d to %d)", version,
                      QUIRE_COMMIT_VERSION_MIN, QUIRE_COMMIT_VERSION);
  unsigned flags = ld_le16(p + 6);
  if (version == 1 ? flags != 0 : (flags & ~QUIRE_COMMIT_F_KNOWN) != 0)
    return quire__err(QUIRE_ECORRUPT, "commit record: unknown flags 0x%x", flags);
  struct quire_commit c = {0};
  c.flags = flags;
  memcpy(c.vid.b, p + 8, 16);
  memcpy(c.client_id.b, p + 24, 16);
  memcpy(c.commit_id.b, p + 40, 16);
  c.lsn = ld_le64(p + 56);
  c.checkpoint_lsn = ld_le64(p + 64);
  c.timestamp_ms = ld_le64(p + 72);
  c.page_count = ld_le32(p + 80);
  c.nsegments = ld_le32(p + 84);
  if (check_ids(&c) != 0) return quire__err(QUIRE_ECORRUPT, "commit record: %s", quire_errmsg());
  size_t end = n - 8, off = QUIRE_COMMIT_HEADER_SIZE;
  /* Each entry takes at least 20 bytes: bound the count before allocating. */
  if (c.nsegments > QUIRE_COMMIT_MAX_SEGMENTS || c.nsegments > (end - off) / 20)
    return quire__err(QUIRE_ECORRUPT, "commit record: segment count %u does not fit", c.nsegments);
  if (c.nsegments) {
    c.segments = quire__calloc(c.nsegments, sizeof *c.segments);
    if (!c.segments) return QUIRE_ENOMEM;
  }
  for (uint32_t i = 0; i < c.nsegments; i++) {
    if (end - off < 20) goto truncated;
    struct quire_commit_segment *s = &c.segments[i];
    memcpy(s->sid.b, p + off, 16);
    s->graft_len = ld_le32(p + off + 16);
    off += 20;
    if (s->sid.b[0] != QUIRE_GID_SEGMENT) {
      quire__free(c.segments);
      return quire__err(QUIRE_ECORRUPT, "commit record: segment %u: not a segment id", i);
    }
    if (s->graft_len > end - off) goto truncated;
    s->graft = p + off;
    off += s->graft_len;
  }
  if (off != end) {
    quire__free(c.segments);
    return quire__err(QUIRE_ECORRUPT, "commit record: %zu stray bytes after the segments", end - off);
  }
  *out = c;
  return 0;
truncated:
  quire__free(c.segments);
  return quire__err(QUIRE_ECORRUPT, "commit record: segment list overruns the record");
}

void quire__commit_key(const quire_gid *vid, quire_lsn lsn, char out[64]) {
  char v[QUIRE_GID_TEXT_LEN + 1], l[17];
  quire_gid_format(vid, v);
  quire_lsn_format(lsn, l);
  snprintf(out, 64, "volumes/%s/log/%s", v, l);
}
