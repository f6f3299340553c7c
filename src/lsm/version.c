/*
 * lsm/version.c — versions: the memtable and segment list a reader pins
 * together with a commit sequence, numbered in creation order; limbo, where
 * pages a merge stopped reaching wait for the versions that can still read
 * them (docs/LSM.md "Free space and page lifetimes").
 */
#include <string.h>

#include "lsm/lsm_int.h"

#define PUNCH_MIN_PAGES 32 /* freed runs at least this long give their disk space back */

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

/* A new version: v's segments with `front` (newest first) added to Incoming
 * and a fresh memtable (or v's own when mem is NULL... always fresh here). */
int lsm__version_with(lsm_db *db, const lsm_version *v, lsm_seg **front, size_t nfront, lsm_mem *mem,
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
