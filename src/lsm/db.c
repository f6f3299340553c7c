/*
 * lsm/db.c — the database: open and recovery, versions and snapshots, the
 * commit log, transactions, commit, flush and the (part 1) whole merge.
 *
 * Commit log (the region wal_start .. wal_start+wal_pages-1, raw bytes, no
 * page trailers): records appended back to back from offset 0 of the
 * region after each flush, which also starts a new epoch.
 *
 *   off  size  field
 *   0    8     XXH3-64 of bytes [8, 24+len) seeded with the previous record's
 *              checksum (the first record of an epoch: XXH3 of the epoch
 *              seeded with the file id), so stale bytes never validate
 *   8    4     len, payload bytes
 *   12   4     0
 *   16   8     commit sequence (previous + 1)
 *   24   len   payload: ops, each u8 op (1 put, 2 delete, 3 range delete),
 *              varint key length, key, then put: varint value length, value;
 *              range: varint hi length, hi
 *
 * Recovery replays records of the header's epoch from sequence
 * change_counter + 1 on, and stops at the first that does not validate.
 *
 * Commit (small transactions): serialise the transaction's net effect,
 * append it to the log, apply it to the memtable under a new sequence, then
 * (FULL) fdatasync the log; readers see the commit once it is durable. When
 * the log or the memtable fills, the memtable is flushed into a segment at
 * the front of Incoming: data pages, fsync, header slot, fsync (FULL and
 * NORMAL), and the log starts a new epoch. Large transactions (spilled or
 * larger than the log) become segments directly, committed the same way.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm_int.h"

#define WAL_HDR 24u
#define MAX_PENDING 8
#define CONFLICT_BUCKETS (1u << 16)
#define PUNCH_MIN_PAGES 32 /* freed runs at least this long give their disk space back */

struct lsm_txn {
  lsm_db *db;
  unsigned flags;
  lsm_version *ver;
  uint64_t snap;
  lsm_mem *buf;
  uint64_t op;
  lsm_seg *pend[MAX_PENDING + 1]; /* oldest first */
  size_t npend;
  uint64_t pend_pages;
  uint64_t *reads;
  size_t nreads, capreads;
  int failed;
  int sync_mode; /* this commit's durability (lsm_txn_set_sync) */
};

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

/* After a failure, zeroes the log records written but never acknowledged
 * (the commit that failed, and any written after the last successful sync
 * that were waiting for one), so that whatever of them reached the file,
 * replay after reopen stops before them. Runs once; commit_lock. */
static void log_erase(lsm_db *db) {
  if (db->log_erased || !atomic_load(&db->fatal) || db->read_only) return;
  db->log_erased = 1;
  pthread_mutex_lock(&db->sync_mu);
  uint64_t from = db->ack_off, to = db->wal_dirty;
  pthread_mutex_unlock(&db->sync_mu);
  if (from >= to) return;
  uint8_t zeros[4096];
  memset(zeros, 0, sizeof zeros);
  uint64_t base = (uint64_t)(db->wal_start - 1) * db->pgsz;
  int rc = 0;
  for (uint64_t off = from; off < to && !rc; off += sizeof zeros) {
    size_t n = to - off < sizeof zeros ? (size_t)(to - off) : sizeof zeros;
    rc = db->file->ops->write(db->file, zeros, n, base + off);
  }
  if (!rc) {
    pthread_mutex_lock(&db->fsync_mu);
    rc = db->file->ops->sync(db->file);
    pthread_mutex_unlock(&db->fsync_mu);
  }
  if (rc)
    lsm__log(db, LSM_LOG_ERROR,
             "lsm: could not erase the unacknowledged log records (%s): commits reported failed may "
             "reappear after reopen",
             quire_errname(rc));
}

/* ---- versions ---------------------------------------------------------- */
int lsm__version_new(lsm_db *db, lsm_version **out) {
  lsm_version *v = quire__calloc(1, sizeof *v);
  if (!v) return QUIRE_ENOMEM;
  atomic_init(&v->refs, 1);
  pthread_mutex_lock(&db->lock);
  v->vid = ++db->next_vid;
  /* append: the list stays in vid order */
  lsm_version **pp = &db->live, *prev = NULL;
  while (*pp) prev = *pp, pp = &(*pp)->vnext;
  *pp = v;
  v->vprev = prev;
  pthread_mutex_unlock(&db->lock);
  *out = v;
  return 0;
}

/* db->lock: limbo pages no live version can reach become free. */
static void limbo_reclaim(lsm_db *db) {
  uint64_t oldest = db->live ? db->live->vid : UINT64_MAX;
  lsm_limbo **pp = &db->limbo;
  while (*pp) {
    lsm_limbo *l = *pp;
    if (l->vid >= oldest) {
      pp = &l->next;
      continue;
    }
    for (size_t i = 0; i < l->pages.n; i++) {
      lsm_ext e = l->pages.v[i];
      if (lsm__extv_insert(&db->free, e.start, e.count))
        lsm__log(db, LSM_LOG_WARN, "lsm: out of memory freeing pages (leaked until the next check)");
      /* give larger runs' disk space back until they are reused (under the
       * lock: nothing can allocate and write them before the punch is done) */
      if (e.count >= PUNCH_MIN_PAGES && db->file->ops->punch && !db->read_only)
        (void)db->file->ops->punch(db->file, (uint64_t)(e.start - 1) * db->pgsz,
                                   (uint64_t)e.count * db->pgsz);
    }
    *pp = l->next;
    lsm__extv_free(&l->pages);
    quire__free(l);
  }
}

/* Hands pages the current version no longer reaches to limbo: they become
 * free when every version up to vid (the one that could reach them) is
 * released. Takes over pages. db->lock must not be held. */
void lsm__limbo_add(lsm_db *db, uint64_t vid, lsm_extv *pages) {
  if (!pages->n) return;
  lsm_limbo *l = quire__calloc(1, sizeof *l);
  pthread_mutex_lock(&db->lock);
  if (!l) {
    /* without memory to wait, keep them out of use until the next check */
    lsm__log(db, LSM_LOG_WARN, "lsm: out of memory: %llu freed pages leaked until the next check",
             (unsigned long long)lsm__extv_pages(pages));
    lsm__extv_free(pages);
  } else {
    l->vid = vid;
    l->pages = *pages;
    *pages = (lsm_extv){0};
    l->next = db->limbo;
    db->limbo = l;
    limbo_reclaim(db);
  }
  pthread_mutex_unlock(&db->lock);
}

/* Gives the disk space of every free run of PUNCH_MIN_PAGES or more back to
 * the file system (after lsm_compact; runs freed piecemeal by partial merges
 * only coalesce on the free list). db->lock must not be held. */
void lsm__punch_free(lsm_db *db) {
  if (!db->file->ops->punch || db->read_only) return;
  pthread_mutex_lock(&db->lock);
  for (size_t i = 0; i < db->free.n; i++) {
    lsm_ext e = db->free.v[i];
    if (e.count >= PUNCH_MIN_PAGES)
      (void)db->file->ops->punch(db->file, (uint64_t)(e.start - 1) * db->pgsz, (uint64_t)e.count * db->pgsz);
  }
  pthread_mutex_unlock(&db->lock);
}

void lsm__version_unref(lsm_db *db, lsm_version *v) {
  if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
  pthread_mutex_lock(&db->lock);
  if (v->vprev)
    v->vprev->vnext = v->vnext;
  else if (db->live == v)
    db->live = v->vnext;
  if (v->vnext) v->vnext->vprev = v->vprev;
  if (db->limbo) limbo_reclaim(db);
  pthread_mutex_unlock(&db->lock);
  lsm__mem_unref(v->mem);
  for (uint32_t i = 0; i < lsm__vcount(v); i++) lsm__seg_unref(db, v->segs[i]);
  quire__free(v);
}

lsm_version *lsm__pin(lsm_db *db, uint64_t *seq) {
  pthread_mutex_lock(&db->lock);
  lsm_version *v = db->cur;
  atomic_fetch_add(&v->refs, 1);
  *seq = db->visible_seq;
  pthread_mutex_unlock(&db->lock);
  return v;
}

int lsm__sources(lsm_db *db, lsm_version *v, uint64_t snap, lsm_src **srcs, size_t *n) {
  int rc = lsm__memcur_open(v->mem, snap, &srcs[(*n)]);
  if (rc) return rc;
  (*n)++;
  for (uint32_t i = 0; i < lsm__vcount(v); i++) {
    if (!v->segs[i]) continue;
    if ((rc = lsm__segcur_open(db, v->segs[i], &srcs[*n]))) return rc;
    (*n)++;
  }
  return 0;
}

/* Installs nv as current (takes ownership) and drops the old version. */
void lsm__version_swap(lsm_db *db, lsm_version *nv, uint64_t visible) {
  pthread_mutex_lock(&db->lock);
  lsm_version *old = db->cur;
  db->cur = nv;
  if (visible > db->visible_seq) db->visible_seq = visible;
  pthread_mutex_unlock(&db->lock);
  lsm__version_unref(db, old);
}

/* A flush or big commit made everything up to seq durable through a header,
 * and the log starts a new epoch. commit_lock. */
static void log_restart(lsm_db *db, uint64_t seq) {
  db->wal_off = 0;
  db->wal_dirty = 0;
  pthread_mutex_lock(&db->sync_mu);
  db->written_seq = seq;
  db->written_off = 0;
  db->ack_off = 0;
  db->log_gen++;
  if (seq > db->synced_seq) db->synced_seq = seq;
  pthread_cond_broadcast(&db->sync_cv);
  pthread_mutex_unlock(&db->sync_mu);
}

static void publish(lsm_db *db, uint64_t seq) {
  pthread_mutex_lock(&db->lock);
  if (seq > db->visible_seq) db->visible_seq = seq;
  pthread_mutex_unlock(&db->lock);
}

/* Waits until commit `wait` is durable, syncing the log for every record
 * written so far if no other committer is already doing it (group commit),
 * then acknowledges commit seq (>= wait) and publishes it to readers. A FULL
 * commit waits for itself (wait = seq); a NORMAL one written after a FULL
 * one still unsynced waits for that one (wait < seq: readers must not see
 * it, nor the FULL one through it, before the FULL one is durable), and its
 * own record, at [.., end_off) of log generation gen, is acknowledged without
 * a sync of its own. A failed sync fails every commit waiting, and all later
 * ones: their records are erased. No lock held. */
static int group_sync(lsm_db *db, uint64_t wait, uint64_t seq, uint64_t end_off, uint64_t gen) {
  int ok = 0;
  pthread_mutex_lock(&db->sync_mu);
  while (db->synced_seq < wait && !atomic_load(&db->fatal)) {
    if (db->syncing) {
      pthread_cond_wait(&db->sync_cv, &db->sync_mu);
      continue;
    }
    db->syncing = 1;
    uint64_t target = db->written_seq, target_off = db->written_off, tgen = db->log_gen;
    pthread_mutex_unlock(&db->sync_mu);
    int rc = lsm__fsync(db);
    pthread_mutex_lock(&db->sync_mu);
    db->syncing = 0;
    /* a sync that succeeds after another failed proves nothing (fatal is set
     * under fsync_mu before the next sync can start) */
    if (!rc && !atomic_load(&db->fatal) && target > db->synced_seq) {
      db->synced_seq = target;
      if (tgen == db->log_gen && target_off > db->ack_off) db->ack_off = target_off;
    }
    pthread_cond_broadcast(&db->sync_cv);
  }
  uint64_t synced = db->synced_seq;
  if (synced >= seq) {
    ok = 1; /* durable itself (by a sync, or by a flush's header) */
  } else if (synced >= wait && !atomic_load(&db->fatal)) {
    ok = 1; /* NORMAL: everything it waited for is durable */
    if (gen == db->log_gen && end_off > db->ack_off) db->ack_off = end_off;
  }
  pthread_mutex_unlock(&db->sync_mu);
  if (ok) {
    publish(db, synced > seq ? synced : seq);
    return 0;
  }
  int rc = lsm__failed(db);
  pthread_mutex_lock(&db->commit_lock);
  log_erase(db);
  pthread_mutex_unlock(&db->commit_lock);
  return rc;
}

/* ---- header ------------------------------------------------------------ */
static void hdr_levels(lsm_hdr *h, const lsm_version *v) {
  h->n_in = v->n_in;
  h->n_wait = v->n_wait;
  h->n_reg = v->n_reg;
  while (h->n_reg && !v->segs[v->n_in + v->n_wait + h->n_reg - 1]) h->n_reg--; /* empty tail levels */
  for (uint32_t i = 0; i < h->n_in + h->n_wait + h->n_reg; i++) {
    if (v->segs[i])
      h->seg[i] = v->segs[i]->d;
    else
      memset(&h->seg[i], 0, sizeof h->seg[i]);
  }
}

/* A header write failed after its slot may have been written: rewrites
 * that slot with the previous state (same generation), so whether the failed
 * one reached the disk or not, reopening finds the state before it: the
 * commit reported failed does not come back. Overwriting the failed slot, not
 * the other one, keeps the previous header intact if this write tears too. */
static void header_revert(lsm_db *db, uint64_t generation) {
  lsm_hdr old = db->hdr;
  old.generation = generation;
  uint8_t slot[LSM_SLOT_SIZE];
  int rc = lsm__hdr_encode(&old, slot);
  if (!rc) rc = db->file->ops->write(db->file, slot, LSM_SLOT_SIZE, (generation & 1) * LSM_SLOT_SIZE);
  if (!rc && db->sync_mode != LSM_SYNC_OFF) {
    pthread_mutex_lock(&db->fsync_mu);
    rc = db->file->ops->sync(db->file);
    pthread_mutex_unlock(&db->fsync_mu);
  }
  if (rc)
    lsm__log(db, LSM_LOG_ERROR, "lsm: could not take back a failed header write (%s): reopening may find it",
             quire_errname(rc));
}

/* Removes [start, start+count) from the run of the sorted, coalesced list x
 * that holds it (splitting the run if it lies inside). */
static int extv_cut(lsm_extv *x, uint32_t start, uint32_t count) {
  size_t lo = 0, hi = x->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (x->v[mid].start <= start)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (QUIRE_NEVER(lo == 0 || (uint64_t)x->v[lo - 1].start + x->v[lo - 1].count < (uint64_t)start + count))
    return quire__err(QUIRE_EINTERNAL, "lsm: pages %u..%u are not on the free list", start,
                      start + count - 1);
  lsm_ext *r = &x->v[lo - 1];
  uint32_t end = r->start + r->count;
  if (r->start == start) {
    r->start += count;
    r->count -= count;
    if (!r->count) {
      memmove(r, r + 1, (x->n - lo) * sizeof *r);
      x->n--;
    }
    return 0;
  }
  r->count = start - r->start;
  return start + count < end ? lsm__extv_insert(x, start + count, end - start - count) : 0;
}

/* The free list the next header saves (free + pending + limbo + extra + the
 * old list's own blob, sorted and coalesced) and the pages it is saved in,
 * taken in one pass under db->lock so that merge threads cannot change it
 * meanwhile. The blob's size depends on the list and the list on where the
 * blob is taken from, so the choice is made where the effect is known:
 * reserve room for one run more than the list has, at the front of the first
 * free run longer than that (the list loses those pages: at most one run
 * more, when the blob splits a run of the list), then hand the unneeded tail
 * back to what is left of that free run, which it touches (no new run). A
 * run of exactly that length before it is taken whole when the list without
 * it needs exactly that many pages. With no such run the blob goes at the
 * file end, which the list does not reach. No retry: it converges by
 * construction. */
static int free_list_plan(lsm_db *db, const lsm_extv *extra, lsm_extv *all, lsm_ext *blob,
                          uint64_t *inflight) {
  int rc = 0;
  *blob = (lsm_ext){0, 0};
  all->n = 0;
  pthread_mutex_lock(&db->lock);
  /* free pages at the end of the file leave it (the file is cut to the new
   * end once this header is durable) */
  while (db->free.n && (uint64_t)db->free.v[db->free.n - 1].start + db->free.v[db->free.n - 1].count ==
                           atomic_load(&db->npages)) {
    atomic_store(&db->npages, db->free.v[db->free.n - 1].start);
    db->free.n--;
  }
  for (size_t i = 0; i < db->free.n && !rc; i++)
    rc = lsm__extv_insert(all, db->free.v[i].start, db->free.v[i].count);
  for (size_t i = 0; i < db->pending.n && !rc; i++)
    rc = lsm__extv_insert(all, db->pending.v[i].start, db->pending.v[i].count);
  for (lsm_limbo *l = db->limbo; l && !rc; l = l->next)
    for (size_t i = 0; i < l->pages.n && !rc; i++)
      rc = lsm__extv_insert(all, l->pages.v[i].start, l->pages.v[i].count);
  for (size_t i = 0; extra && i < extra->n && !rc; i++)
    rc = lsm__extv_insert(all, extra->v[i].start, extra->v[i].count);
  if (!rc && db->hdr.fl_page)
    rc = lsm__extv_insert(all, db->hdr.fl_page, lsm__blob_pages(db, db->hdr.fl_len));
  *inflight = db->inflight;
  if (rc) goto out;
  uint32_t room = lsm__blob_pages(db, 4 + 8 * ((uint64_t)all->n + 1));
  size_t i = 0;
  for (; i < db->free.n; i++) {
    lsm_ext *f = &db->free.v[i];
    if (f->count > room) break;
    if (f->count < room) continue;
    /* a run exactly that long, taken whole: only if the list then needs
     * exactly that many pages (no tail to give back) */
    if ((rc = extv_cut(all, f->start, room))) goto out;
    if (lsm__blob_pages(db, 4 + 8 * (uint64_t)all->n) == room) {
      *blob = *f;
      memmove(f, f + 1, (db->free.n - i - 1) * sizeof *f);
      db->free.n--;
      goto out;
    }
    /* undo: the pages join their neighbours again or take the slot the cut
     * freed, so this allocates nothing */
    if (QUIRE_NEVER(lsm__extv_insert(all, f->start, room))) {
      rc = QUIRE_EINTERNAL;
      goto out;
    }
  }
  if (i < db->free.n) {
    lsm_ext *f = &db->free.v[i];
    if ((rc = extv_cut(all, f->start, room))) goto out;
    *blob = (lsm_ext){f->start, room};
    f->start += room;
    f->count -= room;
    uint32_t need = lsm__blob_pages(db, 4 + 8 * (uint64_t)all->n);
    if (need < room) {
      /* joins the rest of the run in both lists: cannot fail, adds no run */
      f->start -= room - need;
      f->count += room - need;
      blob->count = need;
      rc = lsm__extv_insert(all, blob->start + need, room - need);
    }
  } else {
    uint32_t need = lsm__blob_pages(db, 4 + 8 * (uint64_t)all->n), end = atomic_load(&db->npages);
    if ((uint64_t)end + need > UINT32_MAX - 1) {
      rc = quire__err(QUIRE_ETOOLARGE, "lsm: file is full (2^32 pages)");
      goto out;
    }
    *blob = (lsm_ext){end, need};
    atomic_store(&db->npages, end + need);
  }
out:
  pthread_mutex_unlock(&db->lock);
  if (!rc) lsm__cache_forget(db, blob->start, blob->count);
  return rc;
}

/* Writes the next header slot describing version v, recording change
 * counter `seq` (the newest commit contained in segments). extra: pages this
 * header frees that are not yet on any list (what a merge stopped reaching);
 * they are saved as free, and the caller hands them to limbo once this
 * returns 0. flags: LSM_HDR_NEW_EPOCH (the log starts over), LSM_HDR_MERGE
 * (merge counter + 1). Data pages are synced first, the slot after (FULL and
 * NORMAL). db->hdr becomes the new header only on success. commit_lock. */
int lsm__write_header(lsm_db *db, const lsm_version *v, const lsm_extv *extra, uint64_t seq, unsigned flags) {
  int rc = 0;
  lsm_extv all = {0};
  lsm_ext blob = {0, 0};
  uint8_t *bytes = NULL;
  if ((rc = lsm__failed(db))) goto out;
  if (db->sync_mode != LSM_SYNC_OFF && (rc = lsm__fsync(db))) goto out;
  uint64_t inflight = 0;
  if ((rc = free_list_plan(db, extra, &all, &blob, &inflight))) goto out;
  size_t len = 4 + 8 * all.n;
  uint32_t np = blob.count;
  bytes = quire__calloc(1, len);
  if (!bytes) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  st_le32(bytes, (uint32_t)all.n);
  for (size_t i = 0; i < all.n; i++) {
    st_le32(bytes + 4 + 8 * i, all.v[i].start);
    st_le32(bytes + 8 + 8 * i, all.v[i].count);
  }
  {
    /* write into the pages allocated above */
    uint8_t *pages = quire__calloc(np, db->pgsz);
    if (!pages) {
      rc = QUIRE_ENOMEM;
      goto out;
    }
    for (uint32_t i = 0; i < np; i++) {
      size_t off = (size_t)i * db->usable;
      if (off >= len) break;
      size_t take = len - off < db->usable ? len - off : db->usable;
      memcpy(pages + (size_t)i * db->pgsz, bytes + off, take);
    }
    rc = lsm__write_pages(db, blob.start, np, pages);
    quire__free(pages);
    if (rc) goto out;
  }
  lsm_hdr h = db->hdr;
  h.generation = db->hdr.generation + 1;
  if (flags & LSM_HDR_NEW_EPOCH) h.wal_epoch++;
  if (flags & LSM_HDR_MERGE) h.merge_counter++;
  h.npages = atomic_load(&db->npages);
  /* a page free twice would later be used twice: refuse to save such a list */
  for (size_t i = 0; i < all.n; i++) {
    if (QUIRE_NEVER((uint64_t)all.v[i].start + all.v[i].count > h.npages ||
                    (i && all.v[i - 1].start + all.v[i - 1].count > all.v[i].start))) {
      rc = quire__err(QUIRE_EINTERNAL, "lsm: free list overlaps itself at page %u", all.v[i].start);
      goto out;
    }
  }
  {
    /* the file always spans npages, so open can bound everything by its
     * size. Extend it to the current end under the allocation lock: a merge
     * thread may be writing pages past h.npages right now, and a stale size
     * would cut them off. */
    uint64_t size;
    pthread_mutex_lock(&db->lock);
    uint64_t end = (uint64_t)atomic_load(&db->npages) * db->pgsz;
    rc = db->file->ops->size(db->file, &size);
    if (!rc && size < end && (rc = db->file->ops->truncate(db->file, end)))
      lsm__fail(db, rc, "extending the file");
    pthread_mutex_unlock(&db->lock);
    if (rc) goto out;
  }
  h.change_counter = seq;
  h.fl_page = blob.start;
  h.fl_len = (uint32_t)len;
  h.fl_free = (uint32_t)lsm__extv_pages(&all);
  /* pages written by a transaction or merge not yet committed are neither
   * reachable nor in this list: after a crash, open rebuilds the list */
  int exact = !inflight && !atomic_load(&db->merges_building);
  h.flags = (h.flags & ~LSM_HDR_FREE_EXACT) | (exact ? LSM_HDR_FREE_EXACT : 0);
  hdr_levels(&h, v);
  uint8_t slot[LSM_SLOT_SIZE];
  if ((rc = lsm__hdr_encode(&h, slot))) goto out;
  if (db->sync_mode != LSM_SYNC_OFF && (rc = lsm__fsync(db))) goto out;
  if ((rc = lsm__failed(db))) goto out;
  rc = lsm__fwrite(db, slot, LSM_SLOT_SIZE, (h.generation & 1) * LSM_SLOT_SIZE);
  atomic_fetch_add(&db->st_bytes, LSM_SLOT_SIZE);
  if (!rc && db->sync_mode != LSM_SYNC_OFF) rc = lsm__fsync(db);
  /* a failure anywhere before this sync returned (the syncs are serialised)
   * means the slot may or may not be on disk */
  if (!rc) rc = lsm__failed(db);
  if (rc) {
    header_revert(db, h.generation);
    goto out;
  }
  atomic_fetch_add(&db->st_hdr, 1);
  /* the new header is durable: the old blob and pending pages are reusable */
  uint32_t old_fl = db->hdr.fl_page, old_np = db->hdr.fl_page ? lsm__blob_pages(db, db->hdr.fl_len) : 0;
  db->hdr = h;
  blob.count = 0; /* now owned by the header */
  pthread_mutex_lock(&db->lock);
  for (size_t i = 0; i < db->pending.n; i++)
    (void)lsm__extv_insert(&db->free, db->pending.v[i].start, db->pending.v[i].count);
  db->pending.n = 0;
  if (old_fl) (void)lsm__extv_insert(&db->free, old_fl, old_np);
  {
    uint64_t size, end = (uint64_t)atomic_load(&db->npages) * db->pgsz;
    if (!db->file->ops->size(db->file, &size) && size > end) (void)db->file->ops->truncate(db->file, end);
  }
  pthread_mutex_unlock(&db->lock);
out:
  if (blob.count) lsm__free_now(db, blob.start, blob.count);
  lsm__extv_free(&all);
  quire__free(bytes);
  return rc;
}

/* ---- building segments from a memtable --------------------------------- */
/* Sorted, coalesced copy of m's ranges (pointers into m). */
static int mem_ranges(lsm_mem *m, lsm_range **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!m->nranges) return 0;
  lsm_range *r = quire__calloc(m->nranges, sizeof *r);
  if (!r) return QUIRE_ENOMEM;
  size_t k = 0;
  for (lsm_mrange *x = atomic_load(&m->ranges); x && k < m->nranges; x = atomic_load(&x->next)) r[k++] = x->r;
  *out = r;
  *n = lsm__ranges_coalesce(r, k);
  return 0;
}

/* Writes the net effect of m (newest version per key, minus versions its own
 * newer ranges delete, plus its ranges) as a segment. d->root = 0 and
 * d->rt_page = 0 when there is nothing. */
static int build_from_mem(lsm_db *db, lsm_mem *m, lsm_segdesc *d, lsm_extv *pages) {
  lsm_builder *b;
  lsm_range *r = NULL;
  size_t nr = 0;
  int rc = lsm__build_new(db, &b);
  if (rc) return rc;
  lsm_mnode *n = lsm__mem_seek(m, NULL, 0, UINT64_MAX);
  while (n) {
    if (!m->nranges || !lsm__mem_covered(m, n->key, n->klen, n->seq, UINT64_MAX)) {
      if ((rc = lsm__build_add(b, n->key, n->klen, n->kind, n->val, n->vlen))) goto fail;
    }
    lsm_mnode *x = lsm__mnext(n);
    while (x && lsm__keycmp(x->key, x->klen, n->key, n->klen) == 0) x = lsm__mnext(x);
    n = x;
  }
  if ((rc = mem_ranges(m, &r, &nr))) goto fail;
  if ((rc = lsm__build_ranges(b, r, nr))) goto fail;
  quire__free(r);
  return lsm__build_finish(b, d, pages);
fail:
  quire__free(r);
  lsm__build_abort(b);
  return rc;
}

/* A new version: v's segments with `front` (newest first) added to Incoming
 * and a fresh memtable (or v's own when mem is NULL... always fresh here). */
static int version_with(lsm_db *db, const lsm_version *v, lsm_seg **front, size_t nfront, lsm_mem *mem,
                        lsm_version **out) {
  if (lsm__vcount(v) + nfront > LSM_MAX_SEGS || v->n_in + nfront > LSM_MAX_INCOMING)
    return quire__err(QUIRE_EBUSY, "lsm: merges are behind (%u segments in Incoming)", v->n_in);
  lsm_version *nv;
  int rc = lsm__version_new(db, &nv);
  if (rc) return rc;
  nv->mem = mem;
  lsm__mem_ref(mem);
  uint32_t k = 0;
  for (size_t i = 0; i < nfront; i++) {
    nv->segs[k++] = front[i];
    atomic_fetch_add(&front[i]->refs, 1);
  }
  for (uint32_t i = 0; i < lsm__vcount(v); i++) {
    nv->segs[k++] = v->segs[i];
    if (v->segs[i]) atomic_fetch_add(&v->segs[i]->refs, 1);
  }
  nv->n_in = v->n_in + (uint32_t)nfront;
  nv->n_wait = v->n_wait;
  nv->n_reg = v->n_reg;
  *out = nv;
  return 0;
}

static uint64_t wal_seed(lsm_db *db) {
  uint64_t e = db->hdr.wal_epoch;
  return quire__xxh3_seeded(&e, sizeof e, db->hdr.file_id);
}

/* Commits segments `front` (newest first, already written) ahead of the
 * current Incoming, together with the flushed memtable. commit_lock.
 * Takes over the references in front. */
static int commit_segments(lsm_db *db, lsm_seg **front, size_t nfront, uint64_t seq) {
  lsm_mem *mem = NULL;
  lsm_version *nv = NULL;
  int rc = lsm__mem_new(&mem);
  if (rc) goto out;
  if ((rc = version_with(db, db->cur, front, nfront, mem, &nv))) goto out;
  if ((rc = lsm__write_header(db, nv, NULL, seq, LSM_HDR_NEW_EPOCH))) goto out;
  db->last_seq = seq;
  db->wal_chain = wal_seed(db);
  log_restart(db, seq);
  lsm__version_swap(db, nv, seq);
  nv = NULL;
out:
  lsm__version_unref(db, nv);
  lsm__mem_unref(mem);
  for (size_t i = 0; i < nfront; i++) lsm__seg_unref(db, front[i]);
  return rc;
}

/* Memtable -> segment at the front of Incoming. commit_lock. After a
 * failure the memtable may hold a commit reported failed (applied before
 * the sync that failed): it is never written. */
int lsm__flush_locked(lsm_db *db) {
  lsm_mem *m = db->cur->mem;
  int rc = lsm__failed(db);
  if (rc) return rc;
  if (!m->entries && !m->nranges && db->wal_off == 0) return 0;
  lsm_segdesc d;
  lsm_seg *s = NULL;
  lsm_extv pages = {0};
  if ((rc = build_from_mem(db, m, &d, &pages))) return rc;
  if (d.root || d.rt_page) rc = lsm__seg_load(db, &d, &s);
  if (!rc) rc = commit_segments(db, &s, s ? 1 : 0, db->last_seq);
  if (rc) {
    /* no header names them (or, after a failure, nothing is written again) */
    for (size_t i = 0; i < pages.n; i++) lsm__free_now(db, pages.v[i].start, pages.v[i].count);
  } else {
    atomic_fetch_add(&db->st_flushes, 1);
    lsm__merge_kick(db);
  }
  lsm__extv_free(&pages);
  return rc;
}

int lsm_flush(lsm_db *db) {
  if (db->read_only) return quire__err(QUIRE_EINVAL, "lsm: database opened read-only");
  lsm__merge_throttle(db);
  pthread_mutex_lock(&db->commit_lock);
  int rc = lsm__flush_locked(db);
  pthread_mutex_unlock(&db->commit_lock);
  lsm__merge_after_commit(db);
  return rc;
}

/* ---- log records ------------------------------------------------------- */
enum { OP_PUT = 1, OP_DEL = 2, OP_RANGE = 3 };

/* Serialises t's buffer net effect into buf. */
static int txn_payload(lsm_mem *m, quire_buf *out) {
  int rc = 0;
  lsm_mnode *n = lsm__mem_seek(m, NULL, 0, UINT64_MAX);
  while (n && !rc) {
    if (!m->nranges || !lsm__mem_covered(m, n->key, n->klen, n->seq, UINT64_MAX)) {
      rc = quire__buf_append_u8(out, n->kind == LSM_V_TOMB ? OP_DEL : OP_PUT);
      if (!rc) rc = quire__buf_append_varint(out, n->klen);
      if (!rc) rc = quire__buf_append(out, n->key, n->klen);
      if (!rc && n->kind != LSM_V_TOMB) {
        rc = quire__buf_append_varint(out, n->vlen);
        if (!rc) rc = quire__buf_append(out, n->val, n->vlen);
      }
    }
    lsm_mnode *x = lsm__mnext(n);
    while (x && lsm__keycmp(x->key, x->klen, n->key, n->klen) == 0) x = lsm__mnext(x);
    n = x;
  }
  for (lsm_mrange *r = atomic_load(&m->ranges); r && !rc; r = atomic_load(&r->next)) {
    rc = quire__buf_append_u8(out, OP_RANGE);
    if (!rc) rc = quire__buf_append_varint(out, r->r.lol);
    if (!rc) rc = quire__buf_append(out, r->r.lo, r->r.lol);
    if (!rc) rc = quire__buf_append_varint(out, r->r.hil);
    if (!rc) rc = quire__buf_append(out, r->r.hi, r->r.hil);
  }
  return rc;
}

static uint64_t key_hash(const void *k, size_t kl) { return quire__xxh3(k, kl); }

/* Validates a payload (m NULL: also returns the arena bytes needed in *need)
 * or applies it to m under seq. */
static int payload_apply(lsm_db *db, const uint8_t *p, size_t len, lsm_mem *m, uint64_t seq, size_t *need) {
  const uint8_t *end = p + len;
  size_t total = 0;
  while (p < end) {
    uint8_t op = *p++;
    uint64_t kl, vl = 0;
    int c = quire__varint_get(p, (size_t)(end - p), &kl);
    if (c < 0 || op < OP_PUT || op > OP_RANGE || kl > (uint64_t)(end - p - c) || kl > db->klim)
      return QUIRE_ECORRUPT;
    p += c;
    const uint8_t *k = p, *v = NULL;
    p += kl;
    if (op != OP_DEL) {
      c = quire__varint_get(p, (size_t)(end - p), &vl);
      if (c < 0 || vl > (uint64_t)(end - p - c)) return QUIRE_ECORRUPT;
      p += c;
      v = p;
      p += vl;
    }
    total += lsm__mem_need(kl, vl);
    if (!m) continue;
    int rc;
    if (op == OP_RANGE) {
      rc = lsm__mem_range(m, k, kl, v, vl, seq);
      db->range_seq = seq;
    } else {
      rc = lsm__mem_put(m, k, kl, op == OP_PUT ? LSM_V_INLINE : LSM_V_TOMB, v, vl, seq);
      db->conflict[key_hash(k, kl) & (CONFLICT_BUCKETS - 1)] = seq;
    }
    if (rc) return rc;
  }
  if (need) *need = total;
  return 0;
}

/* Replays the log of the header's epoch into the memtable. */
/* A window onto the log region, read in chunks as replay advances. */
typedef struct walbuf {
  lsm_db *db;
  uint8_t *b;
  size_t cap;
  uint64_t start, len, size; /* window [start, start+len) of a region of size */
} walbuf;

/* Makes [off, off+n) readable at wb->b + (off - wb->start). 1 ok, 0 past the
 * region, < 0 error. */
static int wal_window(walbuf *wb, uint64_t off, uint64_t n) {
  if (off + n > wb->size) return 0;
  if (off >= wb->start && off + n <= wb->start + wb->len) return 1;
  uint64_t want = n > 65536 ? n : 65536;
  if (want > wb->size - off) want = wb->size - off;
  if (want > wb->cap) {
    uint8_t *nb = quire__realloc(wb->b, want);
    if (!nb) return QUIRE_ENOMEM;
    wb->b = nb, wb->cap = want;
  }
  int rc = wb->db->file->ops->read(wb->db->file, wb->b, want,
                                   (uint64_t)(wb->db->wal_start - 1) * wb->db->pgsz + off);
  if (rc) return rc;
  wb->start = off, wb->len = want;
  return 1;
}

/* Replays the log of the header's epoch into the memtable. */
static int wal_replay(lsm_db *db, lsm_mem *m) {
  walbuf wb = {.db = db, .size = (uint64_t)db->wal_pages * db->pgsz};
  uint64_t off = 0, chain = wal_seed(db), seq = db->last_seq;
  int rc = 0;
  for (;;) {
    if ((rc = wal_window(&wb, off, WAL_HDR)) <= 0) break;
    uint32_t len = ld_le32(wb.b + (off - wb.start) + 8);
    if ((rc = wal_window(&wb, off, WAL_HDR + (uint64_t)len)) <= 0) break;
    const uint8_t *w = wb.b + (off - wb.start);
    if (ld_le64(w) != quire__xxh3_seeded(w + 8, WAL_HDR - 8 + len, chain)) break;
    if (ld_le64(w + 16) != seq + 1 || ld_le32(w + 12) != 0) break;
    size_t need;
    if (payload_apply(db, w + WAL_HDR, len, NULL, 0, &need)) break;
    if ((rc = lsm__mem_reserve(m, need))) break;
    if ((rc = payload_apply(db, w + WAL_HDR, len, m, seq + 1, NULL))) break;
    chain = ld_le64(w);
    seq++;
    off += WAL_HDR + len;
  }
  quire__free(wb.b);
  if (rc < 0) return rc;
  db->wal_off = off;
  db->wal_chain = chain;
  db->last_seq = seq;
  return 0;
}

/* ---- open / close ------------------------------------------------------ */
static int load_free_list(lsm_db *db) {
  db->free.n = 0;
  if (!db->hdr.fl_page) return 0;
  int rc = lsm__check_run(db, db->hdr.fl_page, db->hdr.fl_len);
  if (rc) return rc;
  uint8_t *b = quire__malloc(db->hdr.fl_len);
  if (!b) return QUIRE_ENOMEM;
  rc = lsm__blob_read(db, db->hdr.fl_page, 0, b, db->hdr.fl_len);
  if (!rc) {
    uint32_t n = db->hdr.fl_len >= 4 ? ld_le32(b) : UINT32_MAX;
    if (n == UINT32_MAX || 4 + 8 * (uint64_t)n != db->hdr.fl_len) {
      rc = quire__err(QUIRE_ECORRUPT, "lsm: free list blob malformed");
    } else {
      uint64_t prev_end = 0;
      for (uint32_t i = 0; i < n && !rc; i++) {
        uint32_t s = ld_le32(b + 4 + 8 * i), c = ld_le32(b + 8 + 8 * i);
        uint64_t e = (uint64_t)s + c;
        if (c == 0 || s < 2 || e > db->hdr.npages || s < prev_end ||
            (s < db->hdr.wal_start + db->hdr.wal_pages && e > db->hdr.wal_start))
          rc = quire__err(QUIRE_ECORRUPT, "lsm: free list extent out of range");
        else
          rc = lsm__extv_push(&db->free, s, c);
        prev_end = e;
      }
    }
  }
  quire__free(b);
  return rc;
}

/* Rebuilds the free list from what the header's segments reach. */
static int rebuild_free_list(lsm_db *db) {
  uint8_t *bits = NULL;
  int rc = lsm__reachable(db, &db->hdr, &bits, 0, NULL, NULL);
  if (rc) return rc;
  /* the header's own free-list blob is freed by the next header write, not
   * now (counting it here would free it twice) */
  if (db->hdr.fl_page && !lsm__check_run(db, db->hdr.fl_page, db->hdr.fl_len)) {
    for (uint32_t p = db->hdr.fl_page; p < db->hdr.fl_page + lsm__blob_pages(db, db->hdr.fl_len); p++)
      bits[p >> 3] |= (uint8_t)(1u << (p & 7));
  } else {
    db->hdr.fl_page = 0, db->hdr.fl_len = 0;
  }
  db->free.n = 0;
  uint32_t np = atomic_load(&db->npages);
  for (uint32_t p = 2; p < np && !rc; p++) {
    if (bits[p >> 3] & (1u << (p & 7))) continue;
    uint32_t s = p;
    while (p + 1 < np && !(bits[(p + 1) >> 3] & (1u << ((p + 1) & 7)))) p++;
    rc = lsm__extv_push(&db->free, s, p - s + 1);
  }
  quire__free(bits);
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

static int create_file(lsm_db *db, const lsm_options *o) {
  uint32_t pgsz = o->page_size ? o->page_size : 4096;
  if (pgsz < 4096 || pgsz > 65536 || (pgsz & (pgsz - 1)))
    return quire__err(QUIRE_EINVAL, "lsm: page size %u (must be a power of two, 4096..65536)", pgsz);
  if (o->reserve_bytes > 1024) return quire__err(QUIRE_EINVAL, "lsm: reserve_bytes over 1024");
  lsm_hdr *h = &db->hdr;
  memset(h, 0, sizeof *h);
  h->version = LSM_FORMAT_VERSION;
  h->pgsz = pgsz;
  h->reserve = o->reserve_bytes;
  h->flags = (o->no_checksums ? LSM_HDR_NOCHECKSUM : 0) | LSM_HDR_FREE_EXACT;
  h->wal_start = 2;
  /* as large as the default memtable: a full log forces a flush, and flushes
   * every 8 MiB doubled the write amplification of random loads */
  h->wal_pages = o->wal_pages ? o->wal_pages : 8192;
  if (h->wal_pages > (1u << 20)) return quire__err(QUIRE_EINVAL, "lsm: wal_pages too large");
  h->npages = 2 + h->wal_pages;
  h->block_pages = o->block_pages ? o->block_pages : 256;
  h->wal_epoch = 1;
  uint8_t rnd[8];
  uint64_t t = quire__wall_ms() ^ quire__mono_ns();
  memcpy(rnd, &t, 8);
  h->file_id = quire__xxh3(rnd, 8) ^ (uint64_t)(uintptr_t)db;
  int rc = db->file->ops->truncate(db->file, (uint64_t)h->npages * pgsz);
  if (!rc) rc = db->file->ops->sync(db->file); /* the size before any slot names it */
  uint8_t slot[LSM_SLOT_SIZE];
  for (int g = 1; g <= 2 && !rc; g++) {
    h->generation = (uint64_t)g;
    rc = lsm__hdr_encode(h, slot);
    if (!rc) rc = db->file->ops->write(db->file, slot, LSM_SLOT_SIZE, (uint64_t)(g & 1) * LSM_SLOT_SIZE);
    if (!rc) rc = db->file->ops->sync(db->file); /* one slot at a time: a cut leaves one whole */
  }
  return rc;
}

static int unfinished_creation(lsm_db *db) {
  uint8_t two[2 * LSM_SLOT_SIZE];
  uint64_t size;
  if (db->file->ops->size(db->file, &size)) return 0;
  memset(two, 0, sizeof two);
  if (db->file->ops->read(db->file, two, size < sizeof two ? (size_t)size : sizeof two, 0)) return 0;
  for (int s = 0; s < 2; s++) {
    size_t i = 0;
    while (i < LSM_SLOT_SIZE && two[s * LSM_SLOT_SIZE + i] == 0) i++;
    if (i == LSM_SLOT_SIZE) return 1;
  }
  return 0;
}

/* Picks the valid slot with the higher generation. *damaged = 1 when the
 * other slot does not validate (a header write cut short, or damage). */
static int read_header(lsm_db *db, int *damaged) {
  uint8_t two[2 * LSM_SLOT_SIZE];
  int rc = db->file->ops->read(db->file, two, sizeof two, 0);
  if (rc) return rc == QUIRE_ECORRUPT ? quire__err(rc, "lsm: file too short for a header") : rc;
  lsm_hdr a, b;
  int ra = lsm__hdr_decode(two, &a), rb = lsm__hdr_decode(two + LSM_SLOT_SIZE, &b);
  if (ra && rb) {
    if (ra == QUIRE_EVERSION || rb == QUIRE_EVERSION)
      return lsm__hdr_decode(ra == QUIRE_EVERSION ? two : two + LSM_SLOT_SIZE, &a);
    return quire__err(QUIRE_ECORRUPT, "lsm: neither header slot is valid");
  }
  if (!ra && !rb)
    db->hdr = a.generation >= b.generation ? a : b;
  else
    db->hdr = ra ? b : a;
  *damaged = ra || rb;
  return 0;
}

/* 1 if the log region starts with a valid record of the epoch after the
 * header's: the header that began that epoch (a flush or big commit) was
 * durable, and commits were acknowledged after it. */
static int log_has_next_epoch(lsm_db *db) {
  walbuf wb = {.db = db, .size = (uint64_t)db->wal_pages * db->pgsz};
  uint64_t e = db->hdr.wal_epoch + 1;
  uint64_t seed = quire__xxh3_seeded(&e, sizeof e, db->hdr.file_id);
  int found = 0;
  if (wal_window(&wb, 0, WAL_HDR) == 1) {
    uint32_t len = ld_le32(wb.b + 8);
    if (wal_window(&wb, 0, WAL_HDR + (uint64_t)len) == 1)
      found =
          ld_le32(wb.b + 12) == 0 && ld_le64(wb.b) == quire__xxh3_seeded(wb.b + 8, WAL_HDR - 8 + len, seed);
  }
  quire__free(wb.b);
  return found;
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
    if ((rc = create_file(db, opts))) goto fail;
  } else if ((rc = read_header(db, &damaged))) {
    /* A creation cut short leaves a slot that was never written (all zero)
     * and no valid one; a file that was ever committed has two slots. */
    if (rc != QUIRE_ECORRUPT || !opts->create || opts->read_only || !unfinished_creation(db)) goto fail;
    if ((rc = create_file(db, opts))) goto fail;
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
  db->conflict = quire__calloc(CONFLICT_BUCKETS, sizeof *db->conflict);
  db->scratch = quire__malloc(db->pgsz);
  if (!db->conflict || !db->scratch) {
    rc = QUIRE_ENOMEM;
    goto fail;
  }
  if ((rc = lsm__cache_init(&db->cache, opts->cache_bytes ? opts->cache_bytes : (size_t)64 << 20, db->pgsz)))
    goto fail;
  /* free space: the saved list, or a reachability walk when it is not exact */
  if (!(h->flags & LSM_HDR_FREE_EXACT) || (rc = load_free_list(db))) {
    if (rc == QUIRE_ENOMEM) goto fail;
    if (rc)
      lsm__log(db, LSM_LOG_WARN, "lsm: %s: free list unreadable (%s); rebuilding it", path, quire_errmsg());
    if ((rc = rebuild_free_list(db))) goto fail;
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
  if (damaged && log_has_next_epoch(db)) {
    rc = quire__err(QUIRE_ECORRUPT,
                    "lsm: %s: the newest header slot is damaged and the log holds commits made after it; "
                    "the older slot would lose them",
                    path);
    goto fail;
  }
  db->wal_chain = wal_seed(db);
  if ((rc = wal_replay(db, db->cur->mem))) goto fail;
  db->visible_seq = db->last_seq;
  db->synced_seq = db->last_seq;
  db->written_seq = db->last_seq;
  db->written_off = db->ack_off = db->wal_dirty = db->wal_off;
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
    log_erase(db);
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

/* ---- point reads ------------------------------------------------------- */
void lsm_value_release(lsm_value *v) {
  if (!v) return;
  if (v->pin_[0]) {
    if (v->pin_[1])
      lsm__page_put((lsm_db *)v->pin_[1], (lsm_page *)v->pin_[0]);
    else
      lsm__mem_unref((lsm_mem *)v->pin_[0]);
  }
  quire__free(v->pin_[2]);
  memset(v, 0, sizeof *v);
}

/* Point lookup in one segment: 1 found (out filled, kind in *kind), 0 not. */
static int seg_get(lsm_db *db, lsm_seg *s, const uint8_t *k, size_t kl, lsm_value *out, int *kind) {
  uint32_t pgno = s->d.root;
  int want = -1;
  if (!pgno) return 0;
  for (int lvl = 0; lvl <= LSM_MAX_DEPTH; lvl++) {
    lsm_page *pg;
    int rc = lsm__page_get(db, pgno, &pg);
    if (rc) return rc;
    lsm_pview v;
    uint32_t idx;
    int eq;
    lsm_item it;
    if ((rc = lsm__pview(db, pg->data, &v))) goto done;
    if (want >= 0 && (int)v.depth != want) {
      rc = quire__err(QUIRE_ECORRUPT, "lsm: page %u at the wrong depth", pgno);
      goto done;
    }
    if ((rc = lsm__psearch(db, &v, k, kl, &idx, &eq))) goto done;
    if (idx == v.n || (v.type == LSM_PAGE_LEAF && !eq)) goto done; /* rc 0: absent */
    if ((rc = lsm__pitem(db, &v, idx, &it))) goto done;
    if (v.type == LSM_PAGE_PARENT) {
      pgno = (uint32_t)it.child;
      want = (int)v.depth - 1;
      lsm__page_put(db, pg);
      continue;
    }
    *kind = it.kind;
    if (it.kind == LSM_V_TOMB) goto done_found;
    if (it.kind == LSM_V_INLINE) {
      out->data = it.vlen ? it.val : (const void *)"";
      out->len = it.vlen;
      out->pin_[0] = pg;
      out->pin_[1] = db;
      return 1;
    }
    {
      uint8_t *heap = quire__malloc(it.vlen);
      if (!heap) {
        rc = QUIRE_ENOMEM;
        goto done;
      }
      rc = lsm__value_read(db, it.kind, it.ovf, it.val, it.vlen, 0, heap, it.vlen);
      if (rc) {
        quire__free(heap);
        goto done;
      }
      out->data = heap;
      out->len = it.vlen;
      out->pin_[2] = heap;
    }
  done_found:
    lsm__page_put(db, pg);
    return 1;
  done:
    lsm__page_put(db, pg);
    return rc;
  }
  return quire__err(QUIRE_ECORRUPT, "lsm: tree too deep");
}

static int mem_get(lsm_mem *m, uint64_t snap, const uint8_t *k, size_t kl, lsm_value *out, int *kind) {
  lsm_mnode *n = lsm__mem_find(m, k, kl, snap);
  if (!n) return 0;
  if (lsm__mem_covered(m, k, kl, n->seq, snap)) {
    *kind = LSM_V_TOMB;
    return 1;
  }
  *kind = n->kind;
  if (n->kind == LSM_V_TOMB) return 1;
  out->data = n->vlen ? n->val : (const void *)"";
  out->len = n->vlen;
  out->pin_[0] = m;
  lsm__mem_ref(m);
  return 1;
}

/* Looks k up in version v at snap, after the sources in front (a txn). */
static int version_get(lsm_db *db, lsm_version *v, uint64_t snap, const uint8_t *k, size_t kl,
                       lsm_value *out) {
  int kind = LSM_V_TOMB, rc;
  memset(out, 0, sizeof *out);
  rc = mem_get(v->mem, snap, k, kl, out, &kind);
  if (rc < 0) return rc;
  if (rc == 0 && lsm__mem_covered(v->mem, k, kl, 0, snap)) return QUIRE_ENOTFOUND;
  for (uint32_t i = 0; rc == 0 && i < lsm__vcount(v); i++) {
    lsm_seg *s = v->segs[i];
    if (!s) continue;
    rc = seg_get(db, s, k, kl, out, &kind);
    if (rc < 0) return rc;
    if (rc == 0 && s->nranges && lsm__ranges_cover(s->ranges, s->nranges, k, kl)) return QUIRE_ENOTFOUND;
  }
  if (rc == 0 || kind == LSM_V_TOMB) {
    lsm_value_release(out);
    return QUIRE_ENOTFOUND;
  }
  return 0;
}

int lsm_get(lsm_db *db, const void *key, size_t klen, lsm_value *out) {
  if (!db || !out || (!key && klen)) return QUIRE_EINVAL;
  memset(out, 0, sizeof *out);
  if (klen > db->klim) return QUIRE_ENOTFOUND;
  uint64_t snap;
  lsm_version *v = lsm__pin(db, &snap);
  int rc = version_get(db, v, snap, key, klen, out);
  lsm__version_unref(db, v);
  return rc;
}

/* Adds the sources of version v at snap (memtable, then segments) to s. */
static size_t point_sources(lsm_version *v, uint64_t snap, lsm_point_src *s, size_t n) {
  s[n++] = (lsm_point_src){.m = v->mem, .snap = snap};
  for (uint32_t i = 0; i < lsm__vcount(v); i++)
    if (v->segs[i]) s[n++] = (lsm_point_src){.seg = v->segs[i]};
  return n;
}

/* EQ: the key itself, as lsm_get finds it. */
static int seek_eq_key(int rc, const void *key, size_t klen, void *keybuf, size_t keycap, size_t *klen_out,
                       lsm_value *out) {
  if (rc) return rc;
  *klen_out = klen;
  if (klen > keycap) {
    lsm_value_release(out);
    return quire__err(QUIRE_ETOOLARGE, "lsm: the key found has %zu bytes, the buffer %zu", klen, keycap);
  }
  if (klen) memcpy(keybuf, key, klen);
  return 0;
}

static int seek_args(const void *key, size_t klen, int op, const void *keybuf, size_t keycap,
                     const size_t *klen_out, const lsm_value *out) {
  if (!out || !klen_out || (!key && klen) || (!keybuf && keycap)) return QUIRE_EINVAL;
  if (op != LSM_SEEK_EQ && op != LSM_SEEK_LE && op != LSM_SEEK_GE) return QUIRE_EINVAL;
  return 0;
}

int lsm_get_seek(lsm_db *db, const void *key, size_t klen, int op, void *keybuf, size_t keycap,
                 size_t *klen_out, lsm_value *out) {
  int rc = db ? seek_args(key, klen, op, keybuf, keycap, klen_out, out) : QUIRE_EINVAL;
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  *klen_out = 0;
  if (op == LSM_SEEK_EQ)
    return seek_eq_key(lsm_get(db, key, klen, out), key, klen, keybuf, keycap, klen_out, out);
  uint64_t snap;
  lsm_version *v = lsm__pin(db, &snap);
  lsm_point_src s[LSM_MAX_SEGS + 1];
  size_t n = point_sources(v, snap, s, 0);
  rc = lsm__point_seek(db, s, n, key, klen, op, keybuf, keycap, klen_out, out);
  lsm__version_unref(db, v);
  return rc;
}

/* ---- transactions ------------------------------------------------------ */
int lsm_txn_begin(lsm_db *db, unsigned flags, lsm_txn **out) {
  if (!db || !out || (flags & ~LSM_TXN_OPTIMISTIC)) return QUIRE_EINVAL;
  lsm_txn *t = quire__calloc(1, sizeof *t);
  if (!t) return QUIRE_ENOMEM;
  int rc = lsm__mem_new(&t->buf);
  if (rc) {
    quire__free(t);
    return rc;
  }
  t->db = db;
  t->flags = flags;
  t->sync_mode = db->sync_mode;
  t->ver = lsm__pin(db, &t->snap);
  *out = t;
  return 0;
}

int lsm_txn_set_sync(lsm_txn *t, int sync_mode) {
  if (!t) return QUIRE_EINVAL;
  if (sync_mode != LSM_SYNC_FULL && sync_mode != LSM_SYNC_NORMAL)
    return quire__err(QUIRE_EINVAL, "lsm: a transaction's sync mode is LSM_SYNC_FULL or LSM_SYNC_NORMAL "
                                    "(a commit without a log record could be lost while later ones survive)");
  if (t->db->sync_mode == LSM_SYNC_OFF)
    return quire__err(QUIRE_EINVAL, "lsm: the database was opened with LSM_SYNC_OFF and keeps no log");
  t->sync_mode = sync_mode;
  return 0;
}

/* Discards the uncommitted pending segments: their pages go free at once
 * (no header ever named them). */
static void pend_discard(lsm_txn *t) {
  lsm_db *db = t->db;
  for (size_t i = 0; i < t->npend; i++) {
    lsm_seg *s = t->pend[i];
    pthread_mutex_lock(&db->lock);
    db->inflight -= lsm__extv_pages(&s->pages);
    pthread_mutex_unlock(&db->lock);
    for (size_t j = 0; j < s->pages.n; j++) lsm__free_now(db, s->pages.v[j].start, s->pages.v[j].count);
    lsm__seg_unref(db, s);
  }
  t->npend = 0;
}

void lsm_txn_abort(lsm_txn *t) {
  if (!t) return;
  lsm_db *db = t->db;
  pend_discard(t);
  lsm__mem_unref(t->buf);
  lsm__version_unref(db, t->ver);
  quire__free(t->reads);
  quire__free(t);
}

/* Writes the buffer as a pending segment (uncommitted; pages in flight). */
static int txn_spill(lsm_txn *t) {
  lsm_db *db = t->db;
  lsm_segdesc d;
  lsm_extv pages = {0};
  lsm_seg *s = NULL;
  lsm_mem *fresh = NULL;
  int rc = lsm__mem_new(&fresh);
  if (rc) return rc;
  if ((rc = build_from_mem(db, t->buf, &d, &pages))) goto fail;
  if (d.root || d.rt_page) {
    if ((rc = lsm__seg_load(db, &d, &s))) {
      for (size_t j = 0; j < pages.n; j++) lsm__free_now(db, pages.v[j].start, pages.v[j].count);
      goto fail;
    }
    s->pages = pages;
    pages = (lsm_extv){0};
    pthread_mutex_lock(&db->lock);
    db->inflight += lsm__extv_pages(&s->pages);
    pthread_mutex_unlock(&db->lock);
    t->pend[t->npend++] = s;
  }
  lsm__mem_unref(t->buf);
  t->buf = fresh;
  if (t->npend > MAX_PENDING) {
    /* fold the pending segments into one (keeping tombstones and ranges) */
    lsm_src *srcs[MAX_PENDING + 1];
    size_t n = 0;
    lsm_mcur *mc = NULL;
    lsm_builder *b = NULL;
    lsm_range *all = NULL;
    size_t nall = 0, capall = 0;
    for (size_t i = t->npend; i-- > 0 && !rc;) {
      rc = lsm__segcur_open(db, t->pend[i], &srcs[n]);
      if (!rc) n++;
    }
    if (!rc) rc = lsm__mcur_new(srcs, n, 0, &mc);
    if (rc) {
      for (size_t i = 0; i < n; i++) srcs[i]->ops->close(srcs[i]);
      return rc;
    }
    uint8_t *vbuf = NULL;
    rc = lsm__build_new(db, &b);
    for (rc = rc ? rc : lsm__mcur_first(mc); !rc && lsm__mcur_cur(mc); rc = lsm__mcur_next(mc)) {
      lsm_src *x = lsm__mcur_cur(mc);
      if (lsm__mcur_deleted(mc) && x->kind != LSM_V_TOMB) continue; /* under a newer range */
      const void *val = x->val;
      if (lsm__is_ovf(x->kind)) {
        quire__free(vbuf);
        vbuf = quire__malloc(x->vlen);
        if (!vbuf) {
          rc = QUIRE_ENOMEM;
          break;
        }
        if ((rc = x->ops->value(x, 0, vbuf, x->vlen))) break;
        val = vbuf;
      }
      rc =
          lsm__build_add(b, x->key, x->klen, x->kind == LSM_V_TOMB ? LSM_V_TOMB : LSM_V_INLINE, val, x->vlen);
    }
    quire__free(vbuf);
    for (size_t i = 0; i < t->npend && !rc; i++) {
      lsm_seg *p = t->pend[i];
      for (size_t j = 0; j < p->nranges && !rc; j++) {
        if (nall == capall) {
          size_t cap = capall ? capall * 2 : 16;
          lsm_range *r = quire__realloc(all, cap * sizeof *r);
          if (!r) {
            rc = QUIRE_ENOMEM;
            break;
          }
          all = r, capall = cap;
        }
        all[nall++] = p->ranges[j];
      }
    }
    if (!rc && nall) {
      rc = lsm__build_ranges(b, all, lsm__ranges_coalesce(all, nall));
    }
    quire__free(all);
    lsm__mcur_free(mc);
    lsm_extv np = {0};
    if (!rc) {
      rc = lsm__build_finish(b, &d, &np);
      b = NULL;
    }
    lsm__build_abort(b);
    lsm_seg *merged = NULL;
    if (!rc && (d.root || d.rt_page)) rc = lsm__seg_load(db, &d, &merged);
    if (rc) {
      for (size_t j = 0; j < np.n; j++) lsm__free_now(db, np.v[j].start, np.v[j].count);
      lsm__extv_free(&np);
      return rc;
    }
    pend_discard(t);
    if (merged) {
      merged->pages = np;
      pthread_mutex_lock(&db->lock);
      db->inflight += lsm__extv_pages(&np);
      pthread_mutex_unlock(&db->lock);
      t->pend[t->npend++] = merged;
    } else {
      lsm__extv_free(&np);
    }
  }
  return 0;
fail:
  lsm__extv_free(&pages);
  lsm__mem_unref(fresh);
  return rc;
}

static int txn_check(lsm_txn *t, size_t kl) {
  if (!t || t->failed) return t ? t->failed : QUIRE_EINVAL;
  if (kl > t->db->klim)
    return quire__err(QUIRE_ETOOLARGE, "lsm: key of %zu bytes (limit %u)", kl, t->db->klim);
  return 0;
}

static int txn_after_write(lsm_txn *t) {
  if (t->buf->bytes <= t->db->txn_budget || t->db->read_only) return 0;
  int rc = txn_spill(t);
  if (rc) t->failed = rc;
  return rc;
}

int lsm_txn_put(lsm_txn *t, const void *k, size_t kl, const void *v, size_t vl) {
  int rc = txn_check(t, kl);
  if (rc) return rc;
  if ((!k && kl) || (!v && vl)) return QUIRE_EINVAL;
  if (vl > UINT32_MAX) return quire__err(QUIRE_ETOOLARGE, "lsm: value over 4 GiB");
  if ((rc = lsm__mem_put(t->buf, k, kl, LSM_V_INLINE, v, vl, ++t->op))) return rc;
  return txn_after_write(t);
}

int lsm_txn_delete(lsm_txn *t, const void *k, size_t kl) {
  int rc = txn_check(t, kl);
  if (rc) return rc;
  if (!k && kl) return QUIRE_EINVAL;
  if ((rc = lsm__mem_put(t->buf, k, kl, LSM_V_TOMB, NULL, 0, ++t->op))) return rc;
  return txn_after_write(t);
}

int lsm_txn_delete_range(lsm_txn *t, const void *lo, size_t lol, const void *hi, size_t hil) {
  int rc = txn_check(t, lol > hil ? lol : hil);
  if (rc) return rc;
  if ((!lo && lol) || (!hi && hil)) return QUIRE_EINVAL;
  if (lsm__keycmp(lo, lol, hi, hil) >= 0) return 0;
  if ((rc = lsm__mem_range(t->buf, lo, lol, hi, hil, ++t->op))) return rc;
  return txn_after_write(t);
}

static int txn_note_read(lsm_txn *t, const void *k, size_t kl) {
  if (!(t->flags & LSM_TXN_OPTIMISTIC)) return 0;
  if (t->nreads == t->capreads) {
    size_t cap = t->capreads ? t->capreads * 2 : 16;
    uint64_t *r = quire__realloc(t->reads, cap * sizeof *r);
    if (!r) return QUIRE_ENOMEM;
    t->reads = r, t->capreads = cap;
  }
  t->reads[t->nreads++] = key_hash(k, kl);
  return 0;
}

int lsm_txn_get(lsm_txn *t, const void *k, size_t kl, lsm_value *out) {
  if (!t || !out || (!k && kl)) return QUIRE_EINVAL;
  memset(out, 0, sizeof *out);
  if (kl > t->db->klim) return QUIRE_ENOTFOUND;
  int rc = txn_note_read(t, k, kl);
  if (rc) return rc;
  int kind = LSM_V_TOMB;
  rc = mem_get(t->buf, UINT64_MAX, k, kl, out, &kind);
  if (rc == 0 && t->buf->nranges && lsm__mem_covered(t->buf, k, kl, 0, UINT64_MAX)) return QUIRE_ENOTFOUND;
  for (size_t i = t->npend; rc == 0 && i-- > 0;) {
    lsm_seg *s = t->pend[i];
    rc = seg_get(t->db, s, k, kl, out, &kind);
    if (rc == 0 && s->nranges && lsm__ranges_cover(s->ranges, s->nranges, k, kl)) return QUIRE_ENOTFOUND;
  }
  if (rc < 0) return rc;
  if (rc == 1) {
    if (kind != LSM_V_TOMB) return 0;
    lsm_value_release(out);
    return QUIRE_ENOTFOUND;
  }
  return version_get(t->db, t->ver, t->snap, k, kl, out);
}

int lsm_txn_get_seek(lsm_txn *t, const void *key, size_t klen, int op, void *keybuf, size_t keycap,
                     size_t *klen_out, lsm_value *out) {
  int rc = t ? seek_args(key, klen, op, keybuf, keycap, klen_out, out) : QUIRE_EINVAL;
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  *klen_out = 0;
  if (op == LSM_SEEK_EQ)
    return seek_eq_key(lsm_txn_get(t, key, klen, out), key, klen, keybuf, keycap, klen_out, out);
  lsm_point_src s[LSM_MAX_SEGS + MAX_PENDING + 2];
  size_t n = 0;
  s[n++] = (lsm_point_src){.m = t->buf, .snap = UINT64_MAX};
  for (size_t i = t->npend; i-- > 0;) s[n++] = (lsm_point_src){.seg = t->pend[i]};
  n = point_sources(t->ver, t->snap, s, n);
  rc = lsm__point_seek(t->db, s, n, key, klen, op, keybuf, keycap, klen_out, out);
  /* an optimistic transaction depends on the entry it found (the gap
   * before it is not tracked, as with cursors) */
  if (!rc && (rc = txn_note_read(t, keybuf, *klen_out))) lsm_value_release(out);
  return rc;
}

int lsm__cursor_make(lsm_db *db, lsm_version *ver, lsm_src **srcs, size_t n, lsm_cursor **out);

int lsm_txn_cursor_open(lsm_txn *t, lsm_cursor **out) {
  if (!t || !out) return QUIRE_EINVAL;
  lsm_db *db = t->db;
  lsm_src *srcs[LSM_MAX_SEGS + MAX_PENDING + 2];
  size_t n = 0;
  int rc = lsm__memcur_open(t->buf, UINT64_MAX - 1, &srcs[n]);
  if (!rc) n++;
  for (size_t i = t->npend; !rc && i-- > 0;) {
    rc = lsm__segcur_open(db, t->pend[i], &srcs[n]);
    if (!rc) n++;
  }
  if (!rc) {
    atomic_fetch_add(&t->ver->refs, 1);
    rc = lsm__sources(db, t->ver, t->snap, srcs, &n);
    if (!rc) rc = lsm__cursor_make(db, t->ver, srcs, n, out);
    if (rc) lsm__version_unref(db, t->ver);
  }
  if (rc)
    for (size_t i = 0; i < n; i++) srcs[i]->ops->close(srcs[i]);
  return rc;
}

/* Optimistic check: did a commit after t began write a key t read or wrote? */
static int txn_conflicts(lsm_txn *t) {
  lsm_db *db = t->db;
  if (db->range_seq > t->snap) return 1;
  for (size_t i = 0; i < t->nreads; i++)
    if (db->conflict[t->reads[i] & (CONFLICT_BUCKETS - 1)] > t->snap) return 1;
  for (lsm_mnode *n = lsm__mem_seek(t->buf, NULL, 0, UINT64_MAX); n; n = lsm__mnext(n))
    if (db->conflict[key_hash(n->key, n->klen) & (CONFLICT_BUCKETS - 1)] > t->snap) return 1;
  for (size_t i = 0; i < t->npend; i++) {
    /* spilled writes: walk the pending segment's keys */
    lsm_src *s;
    if (lsm__segcur_open(db, t->pend[i], &s)) return 1;
    int hit = 0;
    for (int rc = s->ops->first(s); !rc && s->valid && !hit; rc = s->ops->next(s))
      hit = db->conflict[key_hash(s->key, s->klen) & (CONFLICT_BUCKETS - 1)] > t->snap;
    s->ops->close(s);
    if (hit) return 1;
  }
  return 0;
}

/* Big transaction: flush the memtable, then commit the buffer and the
 * pending segments as segments. commit_lock. */
static int commit_as_segments(lsm_txn *t, uint64_t seq) {
  lsm_db *db = t->db;
  int rc = lsm__flush_locked(db);
  if (rc) return rc;
  lsm_segdesc d;
  lsm_extv pages = {0};
  if ((rc = build_from_mem(db, t->buf, &d, &pages))) return rc;
  lsm_seg *front[MAX_PENDING + 2];
  size_t nf = 0;
  if (d.root || d.rt_page) {
    if ((rc = lsm__seg_load(db, &d, &front[nf]))) {
      for (size_t j = 0; j < pages.n; j++) lsm__free_now(db, pages.v[j].start, pages.v[j].count);
      lsm__extv_free(&pages);
      return rc;
    }
    nf++;
  }
  for (size_t i = t->npend; i-- > 0;) {
    front[nf++] = t->pend[i];
    atomic_fetch_add(&t->pend[i]->refs, 1);
  }
  uint64_t inflight = 0;
  for (size_t i = 0; i < t->npend; i++) inflight += lsm__extv_pages(&t->pend[i]->pages);
  pthread_mutex_lock(&db->lock);
  db->inflight -= inflight; /* counted as committed for the saved free list */
  pthread_mutex_unlock(&db->lock);
  rc = commit_segments(db, front, nf, seq);
  if (rc) {
    pthread_mutex_lock(&db->lock);
    db->inflight += inflight;
    pthread_mutex_unlock(&db->lock);
    for (size_t j = 0; j < pages.n; j++) lsm__free_now(db, pages.v[j].start, pages.v[j].count);
  } else {
    for (size_t i = 0; i < t->npend; i++) {
      lsm__extv_free(&t->pend[i]->pages); /* committed: no longer the txn's to free */
      lsm__seg_unref(db, t->pend[i]);
    }
    t->npend = 0;
  }
  lsm__extv_free(&pages);
  return rc;
}

int lsm_txn_commit(lsm_txn *t) {
  if (!t) return QUIRE_EINVAL;
  lsm_db *db = t->db;
  int rc = t->failed;
  uint64_t seq = 0, wait = 0, end_off = 0, gen = 0;
  quire_buf rec;
  quire__buf_init(&rec, (size_t)1 << 32);
  if (rc) goto out;
  if (!t->buf->entries && !t->buf->nranges && !t->npend) goto out; /* read-only */
  if (db->read_only) {
    rc = quire__err(QUIRE_EINVAL, "lsm: database opened read-only");
    goto out;
  }
  lsm__merge_throttle(db);
  pthread_mutex_lock(&db->commit_lock);
  if ((rc = lsm__failed(db))) goto unlock;
  if ((t->flags & LSM_TXN_OPTIMISTIC) && txn_conflicts(t)) {
    atomic_fetch_add(&db->st_conflicts, 1);
    rc = quire__err(QUIRE_ECONFLICT, "lsm: a conflicting commit landed first");
    goto unlock;
  }
  seq = db->last_seq + 1;
  uint8_t *hdr;
  if ((rc = quire__buf_extend(&rec, WAL_HDR, &hdr))) goto unlock;
  if ((rc = txn_payload(t->buf, &rec))) goto unlock;
  size_t plen = rec.len - WAL_HDR;
  uint64_t region = (uint64_t)db->hdr.wal_pages * db->pgsz;
  size_t need = 0;
  if (t->npend || rec.len > region / 2 || plen > UINT32_MAX) {
    rc = commit_as_segments(t, seq);
    if (!rc) {
      for (lsm_mnode *n = lsm__mem_seek(t->buf, NULL, 0, UINT64_MAX); n; n = lsm__mnext(n))
        db->conflict[key_hash(n->key, n->klen) & (CONFLICT_BUCKETS - 1)] = seq;
      if (t->buf->nranges) db->range_seq = seq;
      lsm__merge_kick(db);
    }
    goto unlock;
  }
  if ((rc = payload_apply(db, rec.data + WAL_HDR, plen, NULL, 0, &need))) goto unlock;
  lsm_mem *m = db->cur->mem;
  if (db->sync_mode != LSM_SYNC_OFF && db->wal_off + rec.len > region) {
    if ((rc = lsm__flush_locked(db))) goto unlock;
    m = db->cur->mem;
  }
  if ((rc = lsm__mem_reserve(m, need))) goto unlock;
  if (db->sync_mode != LSM_SYNC_OFF) {
    hdr = rec.data; /* the buffer moved while growing */
    st_le32(hdr + 8, (uint32_t)plen);
    st_le32(hdr + 12, 0);
    st_le64(hdr + 16, seq);
    uint64_t chk = quire__xxh3_seeded(hdr + 8, rec.len - 8, db->wal_chain);
    st_le64(hdr, chk);
    /* a failed write may still have landed, in part or whole: the erase
     * covers every byte ever attempted */
    if (db->wal_off + rec.len > db->wal_dirty) db->wal_dirty = db->wal_off + rec.len;
    rc = lsm__fwrite(db, rec.data, rec.len, (uint64_t)(db->hdr.wal_start - 1) * db->pgsz + db->wal_off);
    if (rc) {
      log_erase(db);
      goto unlock;
    }
    atomic_fetch_add(&db->st_bytes, rec.len);
    db->wal_off += rec.len;
    db->wal_chain = chk;
  }
  /* cannot fail: the arena was reserved and the payload validated */
  rc = payload_apply(db, rec.data + WAL_HDR, plen, m, seq, NULL);
  if (QUIRE_NEVER(rc)) goto unlock;
  db->last_seq = seq;
  pthread_mutex_lock(&db->sync_mu);
  db->written_seq = seq;
  db->written_off = db->wal_off;
  gen = db->log_gen;
  if (t->sync_mode == LSM_SYNC_FULL) {
    db->full_seq = seq;
    wait = seq; /* visible once durable */
  } else if (db->synced_seq < db->full_seq) {
    wait = db->full_seq; /* NORMAL behind a FULL commit not yet durable */
  } else if (atomic_load(&db->fatal)) {
    rc = QUIRE_EIO; /* a failure since the check above: not acknowledged, erased below */
  } else {
    db->ack_off = db->wal_off;
  }
  pthread_mutex_unlock(&db->sync_mu);
  end_off = db->wal_off;
  if (rc) {
    rc = lsm__failed(db);
    log_erase(db);
    goto unlock;
  }
  if (!wait) publish(db, seq);
  if (m->bytes > db->mem_budget) {
    /* the commit is in the log and the memtable already: a failed flush is
     * retried by a later commit, not this commit's failure */
    int frc = lsm__flush_locked(db);
    if (frc) lsm__log(db, LSM_LOG_WARN, "lsm: flush failed (%s); retried later", quire_errmsg());
  }
unlock:
  pthread_mutex_unlock(&db->commit_lock);
  if (!rc && wait) rc = group_sync(db, wait, seq, end_off, gen);
  if (!rc) atomic_fetch_add(&db->st_commits, 1);
  if (!rc) lsm__merge_after_commit(db);
out:
  quire__buf_free(&rec);
  lsm_txn_abort(t);
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
