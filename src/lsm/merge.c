/*
 * lsm/merge.c — partial merges (being replaced: this version promotes the
 * whole source and rewrites the whole destination).
 */
#include <string.h>

#include "lsm/lsm_int.h"

void lsm__merge_out_free(lsm_merge_out *out) {
  lsm__extv_free(&out->freed);
  lsm__extv_free(&out->written);
  quire__free(out->next);
  out->next = NULL;
}

int lsm__merge_partial(lsm_db *db, const lsm_merge_in *in, lsm_merge_out *out) {
  lsm_seg *segs[2] = {in->src, in->dst};
  memset(out, 0, sizeof *out);
  int drop = in->nolder == 0 && !in->older_ranges;
  int rc = lsm__merge_full(db, segs, in->dst ? 2 : 1, drop, &out->dst_new, &out->freed, &out->written);
  if (rc) return rc;
  out->promoted_leaves = in->src->leaves;
  out->written_pages = lsm__extv_pages(&out->written);
  return 0;
}
