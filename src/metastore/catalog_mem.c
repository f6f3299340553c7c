/*
 * metastore/catalog_mem.c — the in-memory catalog (see catalog.h): a hash
 * table of volumes, each an array of records indexed by lsn - 1.
 *
 * Locking: one rwlock over the table and every volume's array; readers copy
 * the record out under the read lock.
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
  struct ms_gid_node node; /* first: the table links and keys it */
  struct rec *recs;        /* recs[i] is lsn first + i */
  size_t count, cap;
  quire_lsn first; /* the volume's first LSN held (1 unless it started at a base) */
};

struct mem_catalog {
  ms_catalog base;
  pthread_rwlock_t lock;
  struct ms_gidmap vols;
  uint64_t ncommits;
};

static struct vol *find(struct mem_catalog *m, const quire_gid *vid) {
  return (struct vol *)quire__gidmap_find(&m->vols, vid);
}

static int mem_latest(ms_catalog *c, const quire_gid *vid, quire_lsn *out) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  pthread_rwlock_rdlock(&m->lock);
  struct vol *v = find(m, vid);
  *out = v && v->count ? v->first + v->count - 1 : 0;
  pthread_rwlock_unlock(&m->lock);
  return 0;
}

static int mem_get(ms_catalog *c, const quire_gid *vid, quire_lsn lsn, quire_buf *out) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  int rc;
  pthread_rwlock_rdlock(&m->lock);
  struct vol *v = find(m, vid);
  if (!v || v->count == 0 || lsn < v->first || lsn - v->first >= v->count)
    rc = QUIRE_ENOTFOUND;
  else
    rc = quire__buf_append(out, v->recs[lsn - v->first].p, v->recs[lsn - v->first].n);
  pthread_rwlock_unlock(&m->lock);
  return rc;
}

static int mem_append(ms_catalog *c, const quire_gid *vid, quire_lsn first, size_t n,
                      const uint8_t *const *recs, const size_t *lens) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  int rc = 0;
  if (first == 0) return quire__err(QUIRE_EINVAL, "catalog append at lsn 0");
  pthread_rwlock_wrlock(&m->lock);
  struct vol *v = find(m, vid);
  if (!v) {
    v = quire__calloc(1, sizeof *v);
    if (!v) {
      rc = QUIRE_ENOMEM;
      goto out;
    }
    v->node.vid = *vid;
    quire__gidmap_insert(&m->vols, &v->node);
  }
  if (v->count == 0) v->first = first; /* an empty volume starts anywhere (at its base) */
  quire_lsn latest = v->first + v->count - 1;
  if (first > latest + 1) {
    rc = quire__err(QUIRE_EINVAL, "catalog append at lsn %llu leaves a gap after %llu",
                    (unsigned long long)first, (unsigned long long)latest);
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    quire_lsn lsn = first + i;
    if (lsn <= v->first + v->count - 1) continue;
    if (v->count == v->cap) {
      size_t cap = v->cap ? v->cap * 2 : 16;
      struct rec *r = quire__realloc(v->recs, cap * sizeof *r);
      if (!r) {
        rc = QUIRE_ENOMEM;
        goto out;
      }
      v->recs = r;
      v->cap = cap;
    }
    uint8_t *copy = quire__memdup(recs[i], lens[i] ? lens[i] : 1);
    if (!copy) {
      rc = QUIRE_ENOMEM;
      goto out;
    }
    v->recs[v->count].p = copy;
    v->recs[v->count].n = lens[i];
    v->count++;
    m->ncommits++;
  }
out:
  pthread_rwlock_unlock(&m->lock);
  return rc;
}

static int mem_forget(ms_catalog *c, const quire_gid *vid) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  pthread_rwlock_wrlock(&m->lock);
  struct vol *v = find(m, vid);
  if (v) {
    for (size_t k = 0; k < v->count; k++) quire__free(v->recs[k].p);
    m->ncommits -= v->count;
    v->count = 0;
  }
  pthread_rwlock_unlock(&m->lock);
  return 0;
}

static void mem_stats(ms_catalog *c, uint64_t *volumes, uint64_t *commits) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  pthread_rwlock_rdlock(&m->lock);
  *volumes = m->vols.count;
  *commits = m->ncommits;
  pthread_rwlock_unlock(&m->lock);
}

static void free_vol(struct ms_gid_node *n) {
  struct vol *v = (struct vol *)n;
  for (size_t k = 0; k < v->count; k++) quire__free(v->recs[k].p);
  quire__free(v->recs);
  quire__free(v);
}

static int mem_close(ms_catalog *c) {
  struct mem_catalog *m = (struct mem_catalog *)c;
  quire__gidmap_free(&m->vols, free_vol);
  pthread_rwlock_destroy(&m->lock);
  quire__free(m);
  return 0;
}

static const struct ms_catalog_ops mem_ops = {mem_latest, mem_get,   mem_append,
                                              mem_forget, mem_stats, mem_close};

int quire__catalog_mem_open(ms_catalog **out) {
  *out = NULL;
  struct mem_catalog *m = quire__calloc(1, sizeof *m);
  if (!m) return QUIRE_ENOMEM;
  if (quire__gidmap_init(&m->vols) != 0) {
    quire__free(m);
    return QUIRE_ENOMEM;
  }
  pthread_rwlock_init(&m->lock, NULL);
  m->base.ops = &mem_ops;
  *out = &m->base;
  return 0;
}
