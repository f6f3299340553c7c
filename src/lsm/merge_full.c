/*
 * lsm/merge_full.c — whole-segment merges: a run of small Incoming segments
 * folded into one Waiting segment (tombstones and range tombstones kept), and
 * lsm_compact's merge of everything into the last level (tombstones
 * dropped). Values on overflow pages move by reference: the output names the
 * same runs, and only the runs of entries that disappear are freed.
 */
#include <string.h>

#include "lsm/lsm_int.h"

/* Every range of segs, coalesced into one sorted, disjoint list (pointers
 * into the segments' blobs). */
static int all_ranges(lsm_seg **segs, size_t n, lsm_range **out, size_t *nout) {
  size_t total = 0, k = 0;
  *out = NULL;
  *nout = 0;
  for (size_t i = 0; i < n; i++) total += segs[i]->nranges;
  if (!total) return 0;
  lsm_range *r = quire__calloc(total, sizeof *r);
  if (!r) return QUIRE_ENOMEM;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < segs[i]->nranges; j++) r[k++] = segs[i]->ranges[j];
  *out = r;
  *nout = lsm__ranges_coalesce(r, k);
  return 0;
}

int lsm__merge_full(lsm_db *db, lsm_seg **segs, size_t n, int drop, lsm_segdesc *out, lsm_extv *freed,
                    lsm_extv *written) {
  lsm_src *srcs[LSM_MAX_SEGS];
  size_t ns = 0;
  lsm_mcur *mc = NULL;
  lsm_builder *b = NULL;
  lsm_extv kept = {0}, mine = {0}, old = {0};
  lsm_range *r = NULL;
  size_t nr = 0;
  int rc = 0;
  memset(out, 0, sizeof *out);
  if (n > LSM_MAX_SEGS) return quire__err(QUIRE_EINVAL, "lsm: too many segments to merge");
  for (size_t i = 0; i < n && !rc; i++) {
    rc = lsm__segcur_open(db, segs[i], &srcs[ns]);
    if (!rc) ns++;
  }
  if (rc || (rc = lsm__mcur_new(srcs, ns, drop, &mc))) {
    for (size_t i = 0; i < ns; i++) srcs[i]->ops->close(srcs[i]);
    return rc;
  }
  if ((rc = lsm__build_new(db, &b))) goto out;
  for (rc = lsm__mcur_first(mc); !rc && lsm__mcur_cur(mc); rc = lsm__mcur_next(mc)) {
    lsm_src *s = lsm__mcur_cur(mc);
    if (!drop && lsm__mcur_deleted(mc) && s->kind != LSM_V_TOMB) continue; /* under a newer range */
    if (lsm__is_ovf(s->kind)) {
      rc = lsm__build_add_ref(b, s->key, s->klen, s->vlen, s->ovf, s->kind == LSM_V_SPLIT ? s->val : NULL);
      if (!rc) rc = lsm__extv_push(&kept, s->ovf, lsm__blob_pages(db, lsm__run_bytes(db, s->kind, s->vlen)));
    } else {
      rc = lsm__build_add(b, s->key, s->klen, s->kind, s->val, s->vlen);
    }
    if (rc) break;
  }
  if (rc == QUIRE_EEND) rc = 0;
  if (rc) goto out;
  if (!drop) {
    if ((rc = all_ranges(segs, n, &r, &nr))) goto out;
    if ((rc = lsm__build_ranges(b, r, nr))) goto out;
  }
  rc = lsm__build_finish(b, out, &mine);
  b = NULL;
  if (rc) goto out;
  /* freed = every page of the inputs minus the runs the output still names */
  for (size_t i = 0; i < n && !rc; i++) rc = lsm__seg_pages(db, &segs[i]->d, &old);
  if (!rc) {
    lsm__extv_sort(&old);
    lsm__extv_sort(&kept);
    rc = lsm__extv_subtract(&old, &kept, freed);
    lsm__extv_sort(freed);
  }
  if (rc) {
    for (size_t j = 0; j < mine.n; j++) lsm__free_now(db, mine.v[j].start, mine.v[j].count);
    memset(out, 0, sizeof *out);
    goto out;
  }
  for (size_t j = 0; j < mine.n && !rc; j++) rc = lsm__extv_insert(written, mine.v[j].start, mine.v[j].count);
  if (rc) {
    for (size_t j = 0; j < mine.n; j++) lsm__free_now(db, mine.v[j].start, mine.v[j].count);
    memset(out, 0, sizeof *out);
    lsm__extv_free(freed);
    lsm__extv_free(written);
  }
out:
  lsm__build_abort(b);
  lsm__mcur_free(mc);
  lsm__extv_free(&kept);
  lsm__extv_free(&mine);
  lsm__extv_free(&old);
  quire__free(r);
  return rc;
}
