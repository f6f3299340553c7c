/*
 * metastore/catalog_mem.c — the in-memory catalog (see catalog.h): a
 * lock-free table of volumes (gidmap.h), each an array of records indexed
 * by lsn - first.
 *
 * Locking, per volume: append_mu serialises the volume's appends (the
 * check-then-write of catalog.h; the copies are made under it, outside any
 * lock readers take); recs_lock guards the array and is write-held only to
 * push the copied records (and grow the array). latest is published with an
 * atomic store after the records are in, so latest() takes no lock and
 * get() only the volume's read lock. No lock is global; the table's own
 * mutex is taken only to add a volume.
 */
#include <pthread.h>
#include <string.h>

#include "metastore/catalog.h"
#include "metastore/gidmap.h"
#include "util/alloc.h"
#include "util/err.h"

struct rec {
  uint8_t *p;
  size_t n;
};

struct vol {
  struct ms_gid_node node;    /* first: the table keys it */
  pthread_mutex_t append_mu;  /* serialises appends; before recs_lock */
  pthread_rwlock_t recs_lock; /* guards recs, count, cap, first */
  struct rec *recs;           /* recs[i] is lsn first + i */
  size_t count, cap;
  quire_lsn first;          /* the volume's first LSN held (1 unless it started at a base) */
  _Atomic quire_lsn latest; /* first + count - 1, or 0; stored after the records */
};

struct mem_catalog {
  ms_catalog base;
  struct ms_gidtab vols;
  atomic_uint_fast64_t ncommits, nvolumes; /* nvolumes: volumes holding a record */
};

static struct vol *find(struct mem_catalog *m, const quire_gid *vid) {
  return (struct vol *)quire__gidtab_find(&m->vols, vid);
}

static struct ms_gid_node *make_vol(const quire_gid *vid, void *ctx) {
  (void)ctx;
  struct vol *v = quire__calloc(1, sizeof *v);
  if (!v) return NULL;
  v->node.vid = *vid;
  pthread_mutex_init(&v->append_mu, NULL);
  pthread_rwlock_init(&v->recs_lock, NULL);
  return &v->node;
}

static int mem_latest(ms_catalog *c, const quire_gid *vid, quire_lsn *out) {
  struct vol *v = find((struct mem_catalog *)c, vid);
  *out = v ? atomic_load_explicit(&v->latest, memory_order_acquire) : 0;
  return 0;
}

static int mem_get(ms_catalog *c, const quire_gid *vid, quire_lsn lsn, quire_buf *out) {
  struct vol *v = find((struct mem_catalog *)c, vid);
  if (!v) return QUIRE_ENOTFOUND;
  int rc;
  pthread_rwlock_rdlock(&v->recs_lock);
  if (v->count == 0 || lsn < v->first || lsn - v->first >= v->count)
    rc = QUIRE_ENOTFOUND;
  else
    rc = quire__buf_append(out, v->recs[lsn - v->first].p, v->recs[lsn - v->first].n);
  pthread_rwlock_unlock(&v->recs_lock);
  return rc;
}

static int mem_append(ms_catalog *c, const quire_gid *vid, quire_lsn first, size_t n,
                      const uint8_t *const *recs, const size_t *lens) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  if (first == 0) return quire__err(QUIRE_EINVAL, "catalog append at lsn 0");
  struct vol *v = (struct vol *)quire__gidtab_get(&m->vols, vid, make_vol, NULL);
  if (!v) return QUIRE_ENOMEM;
  int rc = 0;
  struct rec *copies = NULL;
  size_t ncopies = 0;
  pthread_mutex_lock(&v->append_mu);
  if (quire__catalog_append_hook) quire__catalog_append_hook(vid, first);
  quire_lsn latest = atomic_load_explicit(&v->latest, memory_order_relaxed);
  if (latest && first > latest + 1) { /* an empty volume starts anywhere (at its base) */
    rc = quire__err(QUIRE_EINVAL, "catalog append at lsn %llu leaves a gap after %llu",
                    (unsigned long long)first, (unsigned long long)latest);
    goto out;
  }
  size_t skip = latest >= first ? (size_t)(latest - first + 1) : 0;
  if (skip >= n) goto out; /* all there already */
  copies = quire__malloc((n - skip) * sizeof *copies);
  if (!copies) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  for (size_t i = skip; i < n; i++) {
    copies[ncopies].p = quire__memdup(recs[i], lens[i] ? lens[i] : 1);
    copies[ncopies].n = lens[i];
    if (!copies[ncopies].p) {
      rc = QUIRE_ENOMEM;
      goto out;
    }
    ncopies++;
  }
  pthread_rwlock_wrlock(&v->recs_lock);
  if (v->count + ncopies > v->cap) {
    size_t cap = v->cap ? v->cap : 16;
    while (cap < v->count + ncopies) cap *= 2;
    struct rec *r = quire__realloc(v->recs, cap * sizeof *r);
    if (r) {
      v->recs = r;
      v->cap = cap;
    } else {
      rc = QUIRE_ENOMEM;
    }
  }
  if (rc == 0) {
    if (v->count == 0) v->first = first + skip;
    memcpy(v->recs + v->count, copies, ncopies * sizeof *copies);
    v->count += ncopies;
  }
  pthread_rwlock_unlock(&v->recs_lock);
  if (rc == 0) {
    if (latest == 0) atomic_fetch_add(&m->nvolumes, 1);
    atomic_fetch_add(&m->ncommits, ncopies);
    atomic_store_explicit(&v->latest, first + n - 1, memory_order_release);
    ncopies = 0; /* the array owns them now */
  }
out:
  pthread_mutex_unlock(&v->append_mu);
  for (size_t i = 0; i < ncopies; i++) quire__free(copies[i].p);
  quire__free(copies);
  return rc;
}

static int mem_forget(ms_catalog *c, const quire_gid *vid) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  struct vol *v = find(m, vid);
  if (!v) return 0;
  pthread_mutex_lock(&v->append_mu);
  pthread_rwlock_wrlock(&v->recs_lock);
  size_t n = v->count;
  for (size_t k = 0; k < n; k++) quire__free(v->recs[k].p);
  v->count = 0;
  v->first = 0;
  pthread_rwlock_unlock(&v->recs_lock);
  if (n) {
    atomic_fetch_sub(&m->nvolumes, 1);
    atomic_fetch_sub(&m->ncommits, n);
  }
  atomic_store_explicit(&v->latest, 0, memory_order_release);
  pthread_mutex_unlock(&v->append_mu);
  return 0;
}

static void mem_stats(ms_catalog *c, uint64_t *volumes, uint64_t *commits) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  *volumes = atomic_load(&m->nvolumes);
  *commits = atomic_load(&m->ncommits);
}

static void free_vol(struct ms_gid_node *n) {
  struct vol *v = (struct vol *)n;
  for (size_t k = 0; k < v->count; k++) quire__free(v->recs[k].p);
  quire__free(v->recs);
  pthread_mutex_destroy(&v->append_mu);
  pthread_rwlock_destroy(&v->recs_lock);
  quire__free(v);
}

static int mem_close(ms_catalog *c) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  quire__gidtab_free(&m->vols, free_vol);
  quire__free(m);
  return 0;
}

static const struct ms_catalog_ops mem_ops = {mem_latest, mem_get, mem_append, mem_forget, mem_stats, mem_close};

int quire__catalog_mem_open(ms_catalog **out) {
  *out = NULL;
  struct mem_catalog *m = quire__calloc(1, sizeof *m);
  if (!m) return QUIRE_ENOMEM;
  if (quire__gidtab_init(&m->vols) != 0) {
    quire__gidtab_free(&m->vols, NULL);
    quire__free(m);
    return QUIRE_ENOMEM;
  }
  m->base.ops = &mem_ops;
  *out = &m->base;
  return 0;
}
