/*
 * core/commit_record.h — the commit record (DESIGN.md §6): the object the
 * metastore writes at volumes/{vid}/log/{lsn:016x}, and the value of its
 * catalog. The byte layout is in docs/PROTOCOL.md ("Commit objects") and in
 * commit_record.c.
 *
 * Splinters travel as opaque bytes here; the metastore validates them with
 * the splinter library before it writes a record.
 */
#ifndef QUIRE_CORE_COMMIT_RECORD_H
#define QUIRE_CORE_COMMIT_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "quire/ids.h"
#include "util/buf.h"

#define QUIRE_COMMIT_MAGIC "QCMT"
#define QUIRE_COMMIT_VERSION 2 /* written; versions 1 and 2 are read */
#define QUIRE_COMMIT_VERSION_MIN 1
/* Flags (version 2). A rewrite commit's content equals the commit before
 * it: it is a checkpoint (checkpoint_lsn == lsn, lsn >= 2) written by the
 * compaction job, and pull_graft leaves it out of the union of changed
 * pages. */
#define QUIRE_COMMIT_F_REWRITE 0x1u
#define QUIRE_COMMIT_F_KNOWN 0x1u
#define QUIRE_COMMIT_HEADER_SIZE 88
#define QUIRE_COMMIT_MIN_SIZE (QUIRE_COMMIT_HEADER_SIZE + 8)
#define QUIRE_COMMIT_MAX_SEGMENTS 65536u
#define QUIRE_COMMIT_MAX_SIZE (64u << 20)

struct quire_commit_segment {
  quire_gid sid;
  const uint8_t *graft; /* splinter bytes; not owned */
  uint32_t graft_len;
  /* Commit requests only (never in the record): the write receipt the
   * pagestore gave for this segment (core/receipt.h), and the graft it was
   * given for when graft is a subset of it (NULL: graft itself). */
  const uint8_t *receipt;
  uint32_t receipt_len;
  const uint8_t *receipt_graft;
  uint32_t receipt_graft_len;
};

struct quire_commit {
  quire_gid vid, client_id, commit_id;
  /* checkpoint_lsn: the latest checkpoint at or below lsn (a commit whose
   * segments hold every page of the volume); the segment query stops
   * walking there. lsn itself for a checkpoint; 0 = none (every version-1
   * record). */
  quire_lsn lsn, checkpoint_lsn;
  uint32_t flags; /* QUIRE_COMMIT_F_* (0 in version-1 records) */
  uint64_t timestamp_ms;
  quire_pagecount page_count;
  uint32_t nsegments;
  struct quire_commit_segment *segments; /* decode: owned by the record (see below) */
};

/* Appends the encoded record to out. QUIRE_EINVAL for a record that would
 * not decode (bad id types, lsn 0, checkpoint > lsn, unknown flags, a
 * rewrite that is not a checkpoint past lsn 1), QUIRE_ETOOLARGE past
 * the limits or out's cap. */
int quire__commit_encode(const struct quire_commit *c, quire_buf *out);

/* Validates and decodes n bytes at p. out->segments is allocated (free with
 * quire__commit_clear); its graft pointers point into p, so p must outlive
 * out. QUIRE_ECORRUPT (with a detail) for anything malformed, QUIRE_EVERSION
 * for an unknown version, QUIRE_ENOMEM. On error out is cleared. */
int quire__commit_decode(const uint8_t *p, size_t n, struct quire_commit *out);
void quire__commit_clear(struct quire_commit *c);

/* "volumes/{vid}/log/{lsn:016x}" into out (at least 64 bytes). */
void quire__commit_key(const quire_gid *vid, quire_lsn lsn, char out[64]);

#endif
