/*
 * lsm/commit.c — commit and flush.
 *
 * Commit (small transactions): serialise the transaction's net effect,
 * append it to the log, apply it to the memtable under a new sequence, then
 * (FULL) fdatasync the log; readers see the commit once it is durable. When
 * the log or the memtable fills, the memtable is flushed into a segment at
 * the front of Incoming: data pages, fsync, header slot, fsync (FULL and
 * NORMAL), and the log starts a new epoch. Large transactions (spilled or
 * larger than the log) become segments directly, committed the same way.
 */
#include <string.h>

#include "lsm/lsm_int.h"

/* ---- memtable -> segment ------------------------------------------------ */
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
int lsm__build_from_mem(lsm_db *db, lsm_mem *m, lsm_segdesc *d, lsm_extv *pages) {
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

/* Commits segments `front` (newest first, already written) ahead of the
 * current Incoming, together with the flushed memtable. commit_lock.
 * Takes over the references in front. */
static int commit_segments(lsm_db *db, lsm_seg **front, size_t nfront, uint64_t seq) {
  lsm_mem *mem = NULL;
  lsm_version *nv = NULL;
  int rc = lsm__mem_new(&mem);
  if (rc) goto out;
  if ((rc = lsm__version_with(db, db->cur, front, nfront, mem, &nv))) goto out;
  if ((rc = lsm__write_header(db, nv, NULL, seq, LSM_HDR_NEW_EPOCH))) goto out;
  db->last_seq = seq;
  db->wal_chain = lsm__wal_seed(db);
  lsm__log_restart(db, seq);
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
  if ((rc = lsm__build_from_mem(db, m, &d, &pages))) return rc;
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

/* Optimistic check: did a commit after t began write a key t read or wrote? */
static int txn_conflicts(lsm_txn *t) {
  lsm_db *db = t->db;
  if (db->range_seq > t->snap) return 1;
  for (size_t i = 0; i < t->nreads; i++)
    if (db->conflict[t->reads[i] & (LSM_CONFLICT_BUCKETS - 1)] > t->snap) return 1;
  for (lsm_mnode *n = lsm__mem_seek(t->buf, NULL, 0, UINT64_MAX); n; n = lsm__mnext(n))
    if (db->conflict[lsm__key_hash(n->key, n->klen) & (LSM_CONFLICT_BUCKETS - 1)] > t->snap) return 1;
  for (size_t i = 0; i < t->npend; i++) {
    /* spilled writes: walk the pending segment's keys */
    lsm_src *s;
    if (lsm__segcur_open(db, t->pend[i], &s)) return 1;
    int hit = 0;
    for (int rc = s->ops->first(s); !rc && s->valid && !hit; rc = s->ops->next(s))
      hit = db->conflict[lsm__key_hash(s->key, s->klen) & (LSM_CONFLICT_BUCKETS - 1)] > t->snap;
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
  if ((rc = lsm__build_from_mem(db, t->buf, &d, &pages))) return rc;
  lsm_seg *front[LSM_MAX_PENDING + 2];
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
  if ((rc = quire__buf_extend(&rec, LSM_WAL_HDR, &hdr))) goto unlock;
  if ((rc = lsm__log_payload(t->buf, &rec))) goto unlock;
  size_t plen = rec.len - LSM_WAL_HDR;
  uint64_t region = (uint64_t)db->hdr.wal_pages * db->pgsz;
  size_t need = 0;
  if (t->npend || rec.len > region / 2 || plen > UINT32_MAX) {
    rc = commit_as_segments(t, seq);
    if (!rc) {
      for (lsm_mnode *n = lsm__mem_seek(t->buf, NULL, 0, UINT64_MAX); n; n = lsm__mnext(n))
        db->conflict[lsm__key_hash(n->key, n->klen) & (LSM_CONFLICT_BUCKETS - 1)] = seq;
      if (t->buf->nranges) db->range_seq = seq;
      lsm__merge_kick(db);
    }
    goto unlock;
  }
  if ((rc = lsm__payload_apply(db, rec.data + LSM_WAL_HDR, plen, NULL, 0, &need))) goto unlock;
  lsm_mem *m = db->cur->mem;
  if (db->sync_mode != LSM_SYNC_OFF && db->wal_off + rec.len > region) {
    if ((rc = lsm__flush_locked(db))) goto unlock;
    m = db->cur->mem;
  }
  if ((rc = lsm__mem_reserve(m, need))) goto unlock;
  if (db->sync_mode != LSM_SYNC_OFF && (rc = lsm__log_write(db, rec.data, rec.len, seq))) goto unlock;
  /* cannot fail: the arena was reserved and the payload validated */
  rc = lsm__payload_apply(db, rec.data + LSM_WAL_HDR, plen, m, seq, NULL);
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
    lsm__log_erase(db);
    goto unlock;
  }
  if (!wait) lsm__publish(db, seq);
  if (m->bytes > db->mem_budget) {
    /* the commit is in the log and the memtable already: a failed flush is
     * retried by a later commit, not this commit's failure */
    int frc = lsm__flush_locked(db);
    if (frc) lsm__log(db, LSM_LOG_WARN, "lsm: flush failed (%s); retried later", quire_errmsg());
  }
unlock:
  pthread_mutex_unlock(&db->commit_lock);
  if (!rc && wait) rc = lsm__group_sync(db, wait, seq, end_off, gen);
  if (!rc) atomic_fetch_add(&db->st_commits, 1);
  if (!rc) lsm__merge_after_commit(db);
out:
  quire__buf_free(&rec);
  lsm_txn_abort(t);
  return rc;
}
