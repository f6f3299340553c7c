/*
 * gc/gc_int.h — internals shared by gc/'s files: image.c (the walk and the
 * repacked image), checkpoint.c (checkpoints and fork), sweep.c (segment
 * GC).
 */
#ifndef QUIRE_GC_INT_H
#define QUIRE_GC_INT_H

#include "gc/gc.h"
#include "metastore/ms_int.h"

/* The walk's read plan: jobs[i] reads the pages cut[i] from segment sid[i];
 * live is the union of the cuts (every page the volume has at the LSN). */
struct gc_jobs {
  quire_gid *sid;
  splinter_t **cut;
  size_t n, cap;
  splinter_t *live;
};
int quire__gc_walk_jobs(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, struct gc_walk *w,
                        struct gc_jobs *jobs);
void quire__gc_jobs_free(struct gc_jobs *j);

/* New segments holding the image, uploaded: sid[i] holds the pages
 * graft[i] (a serialized splinter of graft_len[i] bytes) of the volume. */
struct gc_image {
  quire_gid *sid;
  uint8_t **graft;
  uint32_t *graft_len;
  uint32_t n, cap;
  uint64_t pages, bytes;
};
/* Reads the pages of src the jobs name and writes them as pages of dst
 * (src itself for a checkpoint) into new dense segments. */
int quire__gc_image_build(quire_objstore *store, const quire_segment_limits *limits, const quire_gid *src,
                          const struct gc_jobs *jobs, const quire_gid *dst, struct gc_image *out);
void quire__gc_image_free(struct gc_image *im);

#endif
