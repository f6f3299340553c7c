/*
 * metastore/catalog.h — the metastore's catalog: a persistent cache of the
 * commit log of every volume it has seen (DESIGN.md §8.1). The commit objects
 * in object storage are the truth; the catalog only remembers what was read
 * or written, so deleting it loses nothing (it is rebuilt by catching up).
 *
 * Per volume the catalog holds a gap-free run of the log: records for
 * LSNs first..latest, where first is 1 or the volume's base when the
 * catalog first learnt of it, or when it forgot the volume because
 * retention cut the log past what it held (docs/GC.md). Appends are idempotent: records at or
 * below the current latest are skipped, so two catch-ups racing to append the same commits do no harm.
 * Implementations: memory (catalog_mem.c, tests and caches) and an LSM file (catalog_lsm.c, keys {vid}{lsn
 * BE} → commit record).
 *
 * Thread-safe: any number of readers and appenders at once.
 */
#ifndef QUIRE_METASTORE_CATALOG_H
#define QUIRE_METASTORE_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "quire/ids.h"
#include "util/buf.h"

typedef struct ms_catalog ms_catalog;

struct ms_catalog_ops {
  /* Latest LSN held for vid; 0 when none. */
  int (*latest)(ms_catalog *c, const quire_gid *vid, quire_lsn *out);
  /* The record at (vid, lsn) appended to out; QUIRE_ENOTFOUND if absent. */
  int (*get)(ms_catalog *c, const quire_gid *vid, quire_lsn lsn, quire_buf *out);
  /* Appends n records for LSNs first .. first+n-1. Those at or below the
   * current latest are skipped; first > latest + 1 is QUIRE_EINVAL (a gap)
   * unless the volume is empty (its first record may be at any LSN). */
  int (*append)(ms_catalog *c, const quire_gid *vid, quire_lsn first, size_t n, const uint8_t *const *recs,
                const size_t *lens);
  /* Drops every record of vid (the volume becomes empty: its next append
   * may start at any LSN). For a log whose start retention deleted past
   * what the catalog holds (docs/GC.md): the catalog restarts at the base. */
  int (*forget)(ms_catalog *c, const quire_gid *vid);
  /* Volumes and commits held. */
  void (*stats)(ms_catalog *c, uint64_t *volumes, uint64_t *commits);
  /* Flushes and frees. */
  int (*close)(ms_catalog *c);
};

struct ms_catalog {
  const struct ms_catalog_ops *ops;
};

/* An empty in-memory catalog. */
int quire__catalog_mem_open(ms_catalog **out);
/* The catalog stored in an LSM file at path (created if missing). */
int quire__catalog_lsm_open(const char *path, ms_catalog **out);
/* Opens by path: ":memory:" or NULL for memory, anything else an LSM file. */
int quire__catalog_open(const char *path, ms_catalog **out);

static inline int ms_catalog_latest(ms_catalog *c, const quire_gid *vid, quire_lsn *out) {
  return c->ops->latest(c, vid, out);
}
static inline int ms_catalog_get(ms_catalog *c, const quire_gid *vid, quire_lsn lsn, quire_buf *out) {
  return c->ops->get(c, vid, lsn, out);
}
static inline int ms_catalog_append(ms_catalog *c, const quire_gid *vid, quire_lsn first, size_t n,
                                    const uint8_t *const *recs, const size_t *lens) {
  return c->ops->append(c, vid, first, n, recs, lens);
}
static inline int ms_catalog_forget(ms_catalog *c, const quire_gid *vid) { return c->ops->forget(c, vid); }
static inline int ms_catalog_close(ms_catalog *c) { return c ? c->ops->close(c) : 0; }

#endif
