/*
 * pagestore/cache.h — the pagestore's disk cache of segments (DESIGN.md §9.4).
 *
 * Segments are immutable objects named by segment id. The cache keeps
 * recently written and read segments as files in one directory, under an
 * enforced byte budget with least-recently-used eviction, and hands readers
 * pinned, memory-mapped views:
 *
 *   writing:  reserve a slot (in memory, under a short lock; evicts unpinned
 *             LRU entries to make room) → write the bytes into the slot's
 *             anonymous temp file outside any lock → publish (linkat into the
 *             directory; the entry becomes readable).
 *   reading:  pin (a pinned entry is never evicted, unmapped or deleted) →
 *             the file is mapped on first use → read the bytes → unpin.
 *
 * One pool bounds the number of open mappings: when it is full, the least
 * recently used *unpinned* mapping is closed. When the budget or the mapping
 * pool is exhausted by pinned entries, reserve/pin wait up to wait_ms for a
 * pin to be released and then fail with QUIRE_EUNAVAILABLE (a 503 upstream):
 * never exceed the budget, never deadlock.
 *
 * On open the cache scans its directory, deletes leftovers of interrupted
 * writes and files that fail validation, and resumes with the rest (oldest
 * first in LRU order, trimmed to the budget).
 *
 * Locking: one mutex (cache.mu) guards all bookkeeping; every system call
 * that touches file contents (write, mmap, munmap, unlink, validation reads)
 * happens outside it. All functions are thread-safe.
 */
#ifndef QUIRE_PAGESTORE_CACHE_H
#define QUIRE_PAGESTORE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "quire/ids.h"

typedef struct ps_cache ps_cache;

/* Validates a cached file's bytes (e.g. the segment footer, index and
 * checksums) on open; return 0 to keep it, anything else to delete it. */
typedef int (*ps_cache_validate_fn)(const uint8_t *bytes, size_t len, const quire_gid *sid, void *ctx);

typedef struct ps_cache_options {
  const char *dir;               /* created if missing */
  uint64_t budget_bytes;         /* hard cap on the bytes of all cached files */
  unsigned max_mappings;         /* open mappings (and so descriptors) at most; >= 1 */
  uint64_t wait_ms;              /* how long reserve/pin wait on pinned entries */
  int fsync;                     /* fsync each file before publishing it */
  ps_cache_validate_fn validate; /* optional, run on every file at open */
  void *validate_ctx;
} ps_cache_options;

typedef struct ps_cache_stats {
  uint64_t bytes; /* bytes of published + reserved entries */
  uint64_t budget;
  uint64_t entries;  /* published entries */
  uint64_t pinned;   /* entries with at least one pin */
  uint64_t mappings; /* open mappings */
  uint64_t hits, misses, evictions, unmaps, dropped_on_open;
} ps_cache_stats;

/* A pinned, mapped entry: data/len are valid until ps__cache_unpin. */
typedef struct ps_cache_pin {
  ps_cache *cache;
  void *entry;
  const uint8_t *data;
  size_t len;
} ps_cache_pin;

/* A reserved slot being written. */
typedef struct ps_cache_slot {
  ps_cache *cache;
  void *entry;
  int fd;
  uint64_t written;
} ps_cache_slot;

int ps__cache_open(const ps_cache_options *opts, ps_cache **out);
/* Every pin must be released and every slot published or abandoned. NULL ok. */
void ps__cache_close(ps_cache *c);

/* Pins sid. QUIRE_ENOTFOUND if not cached (or still being written),
 * QUIRE_EUNAVAILABLE if no mapping could be had within wait_ms, -errno if
 * the file cannot be mapped (the entry is then dropped). */
int ps__cache_pin(ps_cache *c, const quire_gid *sid, ps_cache_pin *out);
/* 1 when sid is cached and readable now (it may be evicted right after). */
int ps__cache_has(ps_cache *c, const quire_gid *sid);
/* Releases a pin; a no-op on an unpinned handle. */
void ps__cache_unpin(ps_cache_pin *pin);

/* Reserves size bytes for sid. QUIRE_EEXIST if sid is cached or being
 * written, QUIRE_ETOOLARGE if size exceeds the whole budget,
 * QUIRE_EUNAVAILABLE if pinned entries leave no room within wait_ms. */
int ps__cache_reserve(ps_cache *c, const quire_gid *sid, uint64_t size, ps_cache_slot *out);
/* Appends n bytes to the slot; QUIRE_ETOOLARGE past the reserved size. */
int ps__cache_slot_write(ps_cache_slot *slot, const void *p, size_t n);
/* Makes the entry readable. QUIRE_EINVAL if fewer bytes than reserved were
 * written. On any failure the slot is abandoned. */
int ps__cache_publish(ps_cache_slot *slot);
/* Gives the reservation back. A no-op on an empty slot. */
void ps__cache_abandon(ps_cache_slot *slot);
/* reserve + write + publish in one call. */
int ps__cache_put(ps_cache *c, const quire_gid *sid, const void *bytes, size_t len);

/* Drops sid (e.g. it failed a checksum). Pinned entries go when the last pin
 * is released. QUIRE_ENOTFOUND if not cached. */
int ps__cache_invalidate(ps_cache *c, const quire_gid *sid);

void ps__cache_stats(ps_cache *c, ps_cache_stats *out);

#endif
