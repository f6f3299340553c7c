/*
 * lsm/vacuum.c — lsm_vacuum: the live data of the latest commit written into
 * a fresh file as one segment in Regular 0, packed from the first page on,
 * with no tombstones, no range tombstones and nothing to merge.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm/lsm_int.h"

/* Commits the one segment as the whole content of dst. */
static int install(lsm_db *dst, const lsm_segdesc *d) {
  lsm_seg *s = NULL;
  lsm_version *nv = NULL;
  int rc = 0;
  if (d->root && (rc = lsm__seg_load(dst, d, &s))) return rc;
  pthread_mutex_lock(&dst->commit_lock);
  if (!(rc = lsm__version_new(dst, &nv))) {
    nv->mem = dst->cur->mem;
    lsm__mem_ref(nv->mem);
    nv->n_reg = s ? 1 : 0;
    nv->segs[0] = s;
    s = NULL;
    if (!(rc = lsm__write_header(dst, nv, NULL, dst->hdr.change_counter, 0))) {
      lsm__version_swap(dst, nv, 0);
      nv = NULL;
    }
  }
  pthread_mutex_unlock(&dst->commit_lock);
  lsm__version_unref(dst, nv);
  lsm__seg_unref(dst, s);
  return rc;
}

int lsm_vacuum(lsm_db *db, const char *dst_path) {
  if (!db || !dst_path) return QUIRE_EINVAL;
  struct stat st;
  if (stat(dst_path, &st) == 0 && st.st_size > 0)
    return quire__err(-EEXIST, "lsm: vacuum target %s exists and is not empty", dst_path);
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.page_size = db->pgsz;
  o.reserve_bytes = db->reserve;
  o.wal_pages = db->wal_pages;
  o.no_checksums = !db->checksums;
  o.sync_mode = LSM_SYNC_FULL;
  o.merge_off = 1;
  o.block_pages = db->block_pages;
  lsm_db *dst = NULL;
  int rc = lsm_open(dst_path, &o, &dst);
  if (rc) return rc;
  uint64_t snap;
  lsm_version *v = lsm__pin(db, &snap);
  lsm_src *srcs[LSM_MAX_SEGS + 1];
  size_t n = 0;
  lsm_mcur *mc = NULL;
  lsm_builder *b = NULL;
  uint8_t *vbuf = NULL;
  size_t vcap = 0;
  uint64_t entries = 0;
  rc = lsm__sources(db, v, snap, srcs, &n);
  if (rc || (rc = lsm__mcur_new(srcs, n, 1, &mc))) {
    for (size_t i = 0; i < n; i++) srcs[i]->ops->close(srcs[i]);
    goto out;
  }
  if ((rc = lsm__build_new(dst, &b))) goto out;
  for (rc = lsm__mcur_first(mc); !rc && lsm__mcur_cur(mc); rc = lsm__mcur_next(mc)) {
    lsm_src *s = lsm__mcur_cur(mc);
    const void *val = s->val;
    if (lsm__is_ovf(s->kind)) {
      if (s->vlen > vcap) {
        uint8_t *nb = quire__realloc(vbuf, s->vlen);
        if (!nb) {
          rc = QUIRE_ENOMEM;
          break;
        }
        vbuf = nb, vcap = s->vlen;
      }
      if ((rc = s->ops->value(s, 0, vbuf, s->vlen))) break;
      val = vbuf;
    }
    if ((rc = lsm__build_add(b, s->key, s->klen, LSM_V_INLINE, val, s->vlen))) break;
    if (++entries % 1000000 == 0)
      lsm__log(db, LSM_LOG_INFO, "lsm: vacuum: %llu entries copied", (unsigned long long)entries);
  }
  if (rc == QUIRE_EEND) rc = 0;
  if (rc) goto out;
  lsm_segdesc d;
  rc = lsm__build_finish(b, &d, NULL);
  b = NULL;
  if (!rc) rc = install(dst, &d);
out:
  lsm__build_abort(b);
  lsm__mcur_free(mc);
  lsm__version_unref(db, v);
  quire__free(vbuf);
  int crc = lsm_close(dst);
  if (!rc) rc = crc;
  if (rc) unlink(dst_path);
  return rc;
}
