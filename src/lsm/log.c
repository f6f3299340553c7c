/*
 * lsm/log.c — the commit log: record format, the writer, group sync (FULL
 * committers share one fdatasync), the erase of unacknowledged records after
 * a failure, and replay at open.
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
 */
#include <string.h>

#include "lsm/lsm_int.h"

uint64_t lsm__wal_seed(lsm_db *db) {
  uint64_t e = db->hdr.wal_epoch;
  return quire__xxh3_seeded(&e, sizeof e, db->hdr.file_id);
}

/* Appends a record: rec holds LSM_WAL_HDR bytes of room, then the payload;
 * the header is filled in (sequence seq, the checksum chained to the
 * previous record) and the record written at the append position. A failed
 * write is fatal and its bytes are erased. commit_lock. */
/* The first record of an epoch is written: the bytes earlier epochs left
 * past it are dead (the header that began this epoch is durable, and while
 * no record of the new epoch existed they were what a damaged newest slot
 * would fall back to), so their disk space goes back to the file system;
 * without this the log region holds up to a whole memtable of dead records
 * between flushes. Replay is unaffected: a hole reads as zeros, which stop
 * it like any stale byte. commit_lock. */
static void log_punch_stale(lsm_db *db, size_t first_len) {
  uint64_t region = (uint64_t)db->wal_pages * db->pgsz;
  uint64_t from = ((uint64_t)first_len + db->pgsz - 1) / db->pgsz * db->pgsz;
  uint64_t to = db->wal_stale < region ? db->wal_stale : region;
  to = (to + db->pgsz - 1) / db->pgsz * db->pgsz;
  db->wal_stale = 0;
  if (from >= to || !db->file->ops->punch || db->read_only) return;
  (void)db->file->ops->punch(db->file, (uint64_t)(db->wal_start - 1) * db->pgsz + from, to - from);
}

int lsm__log_write(lsm_db *db, uint8_t *rec, size_t len, uint64_t seq) {
  st_le32(rec + 8, (uint32_t)(len - LSM_WAL_HDR));
  st_le32(rec + 12, 0);
  st_le64(rec + 16, seq);
  uint64_t chk = quire__xxh3_seeded(rec + 8, len - 8, db->wal_chain);
  st_le64(rec, chk);
  /* a failed write may still have landed, in part or whole: the erase
   * covers every byte ever attempted */
  if (db->wal_off + len > db->wal_dirty) db->wal_dirty = db->wal_off + len;
  int rc = lsm__fwrite(db, rec, len, (uint64_t)(db->hdr.wal_start - 1) * db->pgsz + db->wal_off);
  if (rc) {
    lsm__log_erase(db);
    return rc;
  }
  atomic_fetch_add(&db->st_bytes, len);
  if (db->wal_off == 0) log_punch_stale(db, len);
  db->wal_off += len;
  db->wal_chain = chk;
  return 0;
}

/* After a failure, zeroes the log records written but never acknowledged
 * (the commit that failed, and any written after the last successful sync
 * that were waiting for one), so that whatever of them reached the file,
 * replay after reopen stops before them. Runs once; commit_lock. */
void lsm__log_erase(lsm_db *db) {
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

/* A flush or big commit made everything up to seq durable through a header,
 * and the log starts a new epoch. commit_lock. */
void lsm__log_restart(lsm_db *db, uint64_t seq) {
  if (db->wal_dirty > db->wal_stale) db->wal_stale = db->wal_dirty;
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

void lsm__publish(lsm_db *db, uint64_t seq) {
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
int lsm__group_sync(lsm_db *db, uint64_t wait, uint64_t seq, uint64_t end_off, uint64_t gen) {
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
    lsm__publish(db, synced > seq ? synced : seq);
    return 0;
  }
  int rc = lsm__failed(db);
  pthread_mutex_lock(&db->commit_lock);
  lsm__log_erase(db);
  pthread_mutex_unlock(&db->commit_lock);
  return rc;
}

/* ---- records ----------------------------------------------------------- */
enum { OP_PUT = 1, OP_DEL = 2, OP_RANGE = 3 };

/* Serialises t's buffer net effect into buf. */
int lsm__log_payload(lsm_mem *m, quire_buf *out) {
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

/* Validates a payload (m NULL: also returns the arena bytes needed in *need)
 * or applies it to m under seq. */
int lsm__payload_apply(lsm_db *db, const uint8_t *p, size_t len, lsm_mem *m, uint64_t seq, size_t *need) {
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
      db->conflict[lsm__key_hash(k, kl) & (LSM_CONFLICT_BUCKETS - 1)] = seq;
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
int lsm__log_replay(lsm_db *db, lsm_mem *m) {
  walbuf wb = {.db = db, .size = (uint64_t)db->wal_pages * db->pgsz};
  uint64_t off = 0, chain = lsm__wal_seed(db), seq = db->last_seq;
  int rc = 0;
  for (;;) {
    if ((rc = wal_window(&wb, off, LSM_WAL_HDR)) <= 0) break;
    uint32_t len = ld_le32(wb.b + (off - wb.start) + 8);
    if ((rc = wal_window(&wb, off, LSM_WAL_HDR + (uint64_t)len)) <= 0) break;
    const uint8_t *w = wb.b + (off - wb.start);
    if (ld_le64(w) != quire__xxh3_seeded(w + 8, LSM_WAL_HDR - 8 + len, chain)) break;
    if (ld_le64(w + 16) != seq + 1 || ld_le32(w + 12) != 0) break;
    size_t need;
    if (lsm__payload_apply(db, w + LSM_WAL_HDR, len, NULL, 0, &need)) break;
    if ((rc = lsm__mem_reserve(m, need))) break;
    if ((rc = lsm__payload_apply(db, w + LSM_WAL_HDR, len, m, seq + 1, NULL))) break;
    chain = ld_le64(w);
    seq++;
    off += LSM_WAL_HDR + len;
  }
  quire__free(wb.b);
  if (rc < 0) return rc;
  db->wal_off = off;
  db->wal_chain = chain;
  db->last_seq = seq;
  return 0;
}

/* 1 if the log region starts with a valid record of the epoch after the
 * header's: the header that began that epoch (a flush or big commit) was
 * durable, and commits were acknowledged after it. */
int lsm__log_has_next_epoch(lsm_db *db) {
  walbuf wb = {.db = db, .size = (uint64_t)db->wal_pages * db->pgsz};
  uint64_t e = db->hdr.wal_epoch + 1;
  uint64_t seed = quire__xxh3_seeded(&e, sizeof e, db->hdr.file_id);
  int found = 0;
  if (wal_window(&wb, 0, LSM_WAL_HDR) == 1) {
    uint32_t len = ld_le32(wb.b + 8);
    if (wal_window(&wb, 0, LSM_WAL_HDR + (uint64_t)len) == 1)
      found = ld_le32(wb.b + 12) == 0 &&
              ld_le64(wb.b) == quire__xxh3_seeded(wb.b + 8, LSM_WAL_HDR - 8 + len, seed);
  }
  quire__free(wb.b);
  return found;
}
