/*
 * lsm/db.c — the database handle: open (recovery: the header, the free list,
 * the log replayed into a fresh memtable) and close, the file layer's writes
 * and syncs with the sticky failure that follows a failed one, the library's
 * messages, and the counters. The rest of the engine is split the way
 * LevelDB's db/ is: version.c (versions, snapshots, limbo), header.c (header
 * slots and the saved free list), log.c (the commit log: format, writer,
 * group sync, replay), txn.c (transactions), commit.c (commit and flush),
 * point.c (point reads and seeks).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm_int.h"

void lsm_options_init(lsm_options *o) { memset(o, 0, sizeof *o); }

size_t lsm_max_key_len(const lsm_db *db) { return db->klim; }

/* ---- messages ---------------------------------------------------------- */
void lsm__log(lsm_db *db, int level, const char *fmt, ...) {
  if (!db->log_fn) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  db->log_fn(db->log_ctx, level, msg);
}

/* ---- failures ---------------------------------------------------------- */
/* Why a failed write is fatal: after a failed fdatasync the kernel may have
 * dropped the dirty pages it could not write (they read back fine until
 * evicted, then the old bytes return), and a later fdatasync reports success
 * without writing them. Nothing written before the failure can be trusted to
 * be durable, so the database stops writing, as LevelDB's sticky background
 * error and SQLite's pager error state do: the application reopens it, and
 * recovery decides from what the file holds. */
int lsm__fail(lsm_db *db, int rc, const char *what) {
  if (!rc) return 0;
  pthread_mutex_lock(&db->fail_mu);
  if (!atomic_load(&db->fatal)) {
    const char *detail = quire_errmsg();
    snprintf(db->fatal_msg, sizeof db->fatal_msg, "%s failed: %s%s%s%s", what, quire_errname(rc),
             *detail ? " (" : "", detail, *detail ? ")" : "");
    atomic_store(&db->fatal, rc);
    lsm__log(db, LSM_LOG_ERROR, "lsm: %s; no more writes until the database is reopened", db->fatal_msg);
  }
  pthread_mutex_unlock(&db->fail_mu);
  return rc;
}

int lsm__failed(lsm_db *db) {
  if (!atomic_load(&db->fatal)) return 0;
  char msg[sizeof db->fatal_msg];
  pthread_mutex_lock(&db->fail_mu);
  memcpy(msg, db->fatal_msg, sizeof msg);
  pthread_mutex_unlock(&db->fail_mu);
  return quire__err(QUIRE_EIO, "lsm: %s earlier; the database refuses writes until it is closed and reopened",
                    msg);
}

int lsm__fwrite(lsm_db *db, const void *buf, size_t n, uint64_t off) {
  int rc = lsm__failed(db);
  if (rc) return rc;
  quire__err_clear(); /* the detail of a failure is the file layer's own */
  rc = db->file->ops->write(db->file, buf, n, off);
  return rc ? lsm__fail(db, rc, "a write") : 0;
}

int lsm__fsync(lsm_db *db) {
  atomic_fetch_add(&db->st_syncs, 1);
  pthread_mutex_lock(&db->fsync_mu);
  quire__err_clear();
  int rc = db->file->ops->sync(db->file);
  if (rc) lsm__fail(db, rc, "a sync");
  pthread_mutex_unlock(&db->fsync_mu);
  return rc;
}

static void db_free(lsm_db *db) {
  if (!db) return;
  if (db->cur) lsm__version_unref(db, db->cur);
  while (db->limbo) {
    lsm_limbo *l = db->limbo;
    db->limbo = l->next;
    lsm__extv_free(&l->pages);
    quire__free(l);
  }
  for (size_t i = 0; i < sizeof db->cptr / sizeof db->cptr[0]; i++) quire__free(db->cptr[i]);
  pthread_mutex_destroy(&db->merge_mu);
  pthread_cond_destroy(&db->merge_cv);
  lsm__cache_destroy(&db->cache);
  lsm__extv_free(&db->free);
  lsm__extv_free(&db->pending);
  quire__free(db->conflict);
  quire__free(db->scratch);
  if (db->file) db->file->ops->close(db->file);
  pthread_mutex_destroy(&db->lock);
  pthread_mutex_destroy(&db->commit_lock);
  pthread_mutex_destroy(&db->sync_mu);
  pthread_cond_destroy(&db->sync_cv);
  pthread_mutex_destroy(&db->fail_mu);
  pthread_mutex_destroy(&db->fsync_mu);
  quire__free(db);
}

int lsm_open(const char *path, const lsm_options *opts, lsm_db **out) {
  lsm_options defaults;
  if (!path || !out) return QUIRE_EINVAL;
  if (!opts) {
    lsm_options_init(&defaults);
    opts = &defaults;
  }
  if (opts->sync_mode < LSM_SYNC_FULL || opts->sync_mode > LSM_SYNC_OFF)
    return quire__err(QUIRE_EINVAL, "lsm: bad sync mode");
  lsm_db *db = quire__calloc(1, sizeof *db);
  if (!db) return QUIRE_ENOMEM;
  pthread_mutex_init(&db->lock, NULL);
  pthread_mutex_init(&db->commit_lock, NULL);
  pthread_mutex_init(&db->sync_mu, NULL);
  pthread_cond_init(&db->sync_cv, NULL);
  pthread_mutex_init(&db->fail_mu, NULL);
  pthread_mutex_init(&db->fsync_mu, NULL);
  pthread_mutex_init(&db->merge_mu, NULL);
  pthread_cond_init(&db->merge_cv, NULL);
  db->log_fn = opts->log_fn;
  db->log_ctx = opts->log_ctx;
  const struct lsm_vfs *vfs = opts->vfs ? opts->vfs : lsm_vfs_posix();
  int damaged = 0;
  int rc = vfs->open(vfs, path, opts->create, &db->file);
  if (rc) {
    db->file = NULL;
    goto fail;
  }
  if ((rc = db->file->ops->lock(db->file))) goto fail;
  uint64_t size;
  if ((rc = db->file->ops->size(db->file, &size))) goto fail;
  if (size == 0) {
    if (!opts->create || opts->read_only) {
      rc = quire__err(QUIRE_ECORRUPT, "lsm: %s is empty", path);
      goto fail;
    }
    if ((rc = lsm__file_create(db, opts))) goto fail;
  } else if ((rc = lsm__hdr_read(db, &damaged))) {
    /* A creation cut short leaves a slot that was never written (all zero)
     * and no valid one; a file that was ever committed has two slots. */
    if (rc != QUIRE_ECORRUPT || !opts->create || opts->read_only || !lsm__file_unfinished(db)) goto fail;
    if ((rc = lsm__file_create(db, opts))) goto fail;
  }
  lsm_hdr *h = &db->hdr;
  if ((rc = db->file->ops->size(db->file, &size))) goto fail;
  if (size < (uint64_t)h->npages * h->pgsz) {
    rc = quire__err(QUIRE_ECORRUPT, "lsm: %s is shorter (%llu bytes) than its header says (%u pages)", path,
                    (unsigned long long)size, h->npages);
    goto fail;
  }
  db->pgsz = h->pgsz;
  db->wal_start = h->wal_start;
  db->wal_pages = h->wal_pages;
  db->reserve = h->reserve;
  db->usable = h->pgsz - h->reserve - LSM_TRAILER;
  db->klim = (db->usable - 64) / 4;
  db->vinline = (db->usable - 64) / 4;
  db->checksums = !(h->flags & LSM_HDR_NOCHECKSUM);
  db->sync_mode = opts->sync_mode;
  db->read_only = opts->read_only;
  db->block_pages = opts->block_pages ? opts->block_pages : (h->block_pages ? h->block_pages : 256);
  if (db->block_pages > 65536) db->block_pages = 65536;
  db->txn_budget = opts->txn_mem_bytes ? opts->txn_mem_bytes : (size_t)8 << 20;
  db->mem_budget = opts->memtable_bytes ? opts->memtable_bytes : (size_t)32 << 20;
  db->max_incoming = opts->max_incoming ? opts->max_incoming : 8;
  if (db->max_incoming > 16) db->max_incoming = 16;
  atomic_store(&db->npages, h->npages);
  db->last_seq = h->change_counter;
  db->visible_seq = h->change_counter;
  db->conflict = quire__calloc(LSM_CONFLICT_BUCKETS, sizeof *db->conflict);
  db->scratch = quire__malloc(db->pgsz);
  if (!db->conflict || !db->scratch) {
    rc = QUIRE_ENOMEM;
    goto fail;
  }
  if ((rc = lsm__cache_init(&db->cache, opts->cache_bytes ? opts->cache_bytes : (size_t)64 << 20, db->pgsz)))
    goto fail;
  /* free space: the saved list, or a reachability walk when it is not exact */
  if (!(h->flags & LSM_HDR_FREE_EXACT) || (rc = lsm__free_list_load(db))) {
    if (rc == QUIRE_ENOMEM) goto fail;
    if (rc)
      lsm__log(db, LSM_LOG_WARN, "lsm: %s: free list unreadable (%s); rebuilding it", path, quire_errmsg());
    if ((rc = lsm__free_list_rebuild(db))) goto fail;
  }
  if ((rc = lsm__version_new(db, &db->cur))) goto fail;
  if ((rc = lsm__mem_new(&db->cur->mem))) goto fail;
  db->cur->n_in = h->n_in;
  db->cur->n_wait = h->n_wait;
  db->cur->n_reg = h->n_reg;
  if (h->n_in > LSM_MAX_INCOMING || h->n_wait > LSM_MAX_WAITING) {
    rc = quire__err(QUIRE_ECORRUPT, "lsm: more segments in a level than this build allows");
    goto fail;
  }
  for (uint32_t i = 0; i < h->n_in + h->n_wait + h->n_reg; i++) {
    if (!h->seg[i].root && !h->seg[i].rt_page) continue;
    if ((rc = lsm__seg_load(db, &h->seg[i], &db->cur->segs[i]))) goto fail;
  }
  /* The newer slot is damaged and the older one is in use. If the newer
   * header kept the log epoch (a merge), replaying the log from the older
   * one's position recovers every commit (the records chain from there). If
   * it began a new epoch and commits were logged after it, they and what it
   * flushed are beyond reach: report it rather than go back in time. */
  if (damaged && lsm__log_has_next_epoch(db)) {
    rc = quire__err(QUIRE_ECORRUPT,
                    "lsm: %s: the newest header slot is damaged and the log holds commits made after it; "
                    "the older slot would lose them",
                    path);
    goto fail;
  }
  db->wal_chain = lsm__wal_seed(db);
  if ((rc = lsm__log_replay(db, db->cur->mem))) goto fail;
  db->visible_seq = db->last_seq;
  db->synced_seq = db->last_seq;
  db->written_seq = db->last_seq;
  db->written_off = db->ack_off = db->wal_dirty = db->wal_off;
  db->wal_stale = (uint64_t)db->hdr.wal_pages * db->pgsz; /* earlier sessions' epochs: unknown extent */
  if ((rc = lsm__merge_start(db, opts))) goto fail;
  lsm__merge_kick(db); /* work left by the previous session */
  *out = db;
  return 0;
fail:
  db_free(db);
  return rc;
}

int lsm_close(lsm_db *db) {
  if (!db) return 0;
  int rc = 0;
  lsm__merge_stop(db); /* a running merge finishes and commits first */
  pthread_mutex_lock(&db->commit_lock);
  if (db->read_only) goto done;
  if ((rc = lsm__failed(db))) {
    /* nothing more is written: the memtable may hold a commit reported
     * failed, and reopening replays the log as the file holds it */
    lsm__log_erase(db);
    goto done;
  }
  if (db->cur->mem->entries || db->cur->mem->nranges || db->wal_off) rc = lsm__flush_locked(db);
  /* write the final state into both slots, so a damaged slot costs nothing */
  for (int i = 0; i < 2 && !rc; i++) rc = lsm__write_header(db, db->cur, NULL, db->hdr.change_counter, 0);
done:
  pthread_mutex_unlock(&db->commit_lock);
  db_free(db);
  return rc;
}

/* ---- stats ------------------------------------------------------------- */
int lsm_stats_get(lsm_db *db, lsm_stats *o) {
  if (!db || !o) return QUIRE_EINVAL;
  memset(o, 0, sizeof *o);
  pthread_mutex_lock(&db->commit_lock);
  o->page_size = db->pgsz;
  o->reserve_bytes = db->reserve;
  o->wal_pages = db->hdr.wal_pages;
  o->wal_bytes_used = db->wal_off;
  o->generation = db->hdr.generation;
  o->change_counter = db->last_seq;
  o->merge_counter = db->hdr.merge_counter;
  pthread_mutex_lock(&db->lock);
  o->format_version = db->hdr.version;
  o->checksums_verified = db->checksums;
  o->wal_start = db->hdr.wal_start;
  o->wal_epoch = db->hdr.wal_epoch;
  o->pages_total = atomic_load(&db->npages);
  o->pages_free = lsm__extv_pages(&db->free) + lsm__extv_pages(&db->pending);
  for (lsm_limbo *l = db->limbo; l; l = l->next) o->pages_limbo += lsm__extv_pages(&l->pages);
  o->pages_free += o->pages_limbo;
  lsm_version *v = db->cur;
  o->incoming = v->n_in;
  o->waiting = v->n_wait;
  o->nlevels = 2 + v->n_reg;
  for (uint32_t i = 0; i < o->nlevels && i < LSM_STATS_LEVELS; i++) {
    lsm_level_stats *L = &o->level[i];
    uint32_t from = i == 0 ? 0 : i == 1 ? v->n_in : v->n_in + v->n_wait + (i - 2);
    uint32_t to = i == 0 ? v->n_in : i == 1 ? v->n_in + v->n_wait : from + 1;
    if (i < 2)
      snprintf(L->name, sizeof L->name, "%s", i == 0 ? "incoming" : "waiting");
    else
      snprintf(L->name, sizeof L->name, "regular %u", i - 2);
    if (i >= 2) L->nominal_bytes = lsm__level_nominal(db, i - 2);
    for (uint32_t k = from; k < to; k++) {
      lsm_seg *sg = v->segs[k];
      if (!sg) continue;
      L->segments++;
      if (i >= 2) o->regular++;
      if (sg->depth > L->depth) L->depth = sg->depth;
      L->leaves += sg->leaves;
      L->tombstones += sg->tombs;
      L->ranges += sg->nranges;
    }
    L->bytes = L->leaves * db->pgsz;
  }
  o->mem_bytes = db->cur->mem->bytes;
  o->mem_entries = db->cur->mem->entries;
  pthread_mutex_unlock(&db->lock);
  pthread_mutex_unlock(&db->commit_lock);
  o->commits = atomic_load(&db->st_commits);
  o->flushes = atomic_load(&db->st_flushes);
  o->merges = atomic_load(&db->st_merges);
  o->log_syncs = atomic_load(&db->st_syncs);
  o->header_writes = atomic_load(&db->st_hdr);
  o->conflicts = atomic_load(&db->st_conflicts);
  o->merges_moved = atomic_load(&db->st_moved);
  o->merges_full = atomic_load(&db->st_full);
  o->merges_partial = atomic_load(&db->st_partial);
  o->merge_pages_written = atomic_load(&db->st_mwritten);
  o->merge_recycled = atomic_load(&db->st_recycled);
  o->tombstones_dropped = atomic_load(&db->st_tdropped);
  o->merges_batched = atomic_load(&db->st_batched);
  o->merge_errors = atomic_load(&db->st_merrors);
  o->stalls = atomic_load(&db->st_stalls);
  o->stall_us = atomic_load(&db->st_stall_us);
  o->bytes_written = atomic_load(&db->st_bytes);
  pthread_mutex_lock(&db->cache.mu);
  o->cache_hits = db->cache.hits;
  o->cache_misses = db->cache.misses;
  o->cache_bytes = db->cache.bytes;
  pthread_mutex_unlock(&db->cache.mu);
  return 0;
}

int lsm_stats_segments(lsm_db *db, lsm_segment_stats *out, size_t cap, size_t *n) {
  if (!db || !n || (!out && cap)) return QUIRE_EINVAL;
  uint64_t snap;
  lsm_version *v = lsm__pin(db, &snap);
  size_t k = 0;
  for (uint32_t i = 0; i < lsm__vcount(v); i++, k++) {
    if (k >= cap) continue;
    lsm_segment_stats *o = &out[k];
    memset(o, 0, sizeof *o);
    if (i < v->n_in) {
      o->level = 0, o->pos = i;
    } else if (i < v->n_in + v->n_wait) {
      o->level = 1, o->pos = i - v->n_in;
    } else {
      o->level = 2 + (i - v->n_in - v->n_wait), o->pos = 0;
    }
    const lsm_seg *s = v->segs[i];
    if (!s) continue;
    o->root = s->d.root;
    o->depth = s->depth;
    o->leaves = s->leaves;
    o->tombstones = s->tombs;
    o->ranges = s->nranges;
  }
  lsm__version_unref(db, v);
  *n = k;
  return 0;
}
