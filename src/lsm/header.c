/*
 * lsm/header.c — the header slots and the saved free list: writing the next
 * slot (data synced first, the free list saved in a blob placed so that the
 * list converges in one pass, the slot, a sync; a slot that may have landed
 * before a failure is taken back), reading the slots at open, creating a
 * file, loading or rebuilding the free list. Formats in file.c and
 * docs/LSM.md.
 */
#include <string.h>

#include "lsm/lsm_int.h"

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

/* ---- the saved free list at open --------------------------------------- */
int lsm__free_list_load(lsm_db *db) {
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
int lsm__free_list_rebuild(lsm_db *db) {
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

int lsm__file_create(lsm_db *db, const lsm_options *o) {
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

int lsm__file_unfinished(lsm_db *db) {
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
int lsm__hdr_read(lsm_db *db, int *damaged) {
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
