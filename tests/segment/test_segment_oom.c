/*
 * Allocation failures: the segment builder, reader, planners and the
 * mem:// / file:// object stores fail every allocation in turn (n = 1, 2,
 * ...) and must return QUIRE_ENOMEM cleanly (ASan reports any leak) until
 * the workload runs untouched.
 */
#include "quire/objstore.h"
#include "quire/segment.h"
#include "test.h"
#include "util/util.h"

#include <string.h>

static int segment_workload(void) {
  quire_gid sid, vids[3];
  quire_gid_new_at(QUIRE_GID_SEGMENT, 7, &sid);
  for (int i = 0; i < 3; i++) quire_gid_new_at(QUIRE_GID_VOLUME, 100 + (uint64_t)i, &vids[i]);
  uint8_t page[QUIRE_PAGE_SIZE];
  memset(page, 7, sizeof page);
  quire_segment_builder *b = NULL;
  uint8_t *buf = NULL;
  size_t len;
  quire_segment_range *r = NULL;
  splinter_t *pages = NULL;
  int rc = quire_segment_builder_new(&sid, NULL, &b);
  for (int v = 0; !rc && v < 3; v++)
    for (quire_pageidx i = 1; !rc && i <= 30; i++) rc = quire_segment_builder_add(b, &vids[v], i * 2, page);
  if (!rc) rc = quire_segment_builder_to_buf(b, &buf, &len);
  quire_segment_view view;
  if (!rc) rc = quire_segment_open(buf, len, NULL, &view);
  if (!rc) rc = quire_segment_volume_pages(&view, &vids[1], &pages);
  size_t nr, missing;
  quire_pageidx want[] = {2, 4, 8, 9, 60};
  if (!rc) rc = quire_segment_plan(&view, &vids[1], want, 5, 0, &r, &nr, &missing);
  quire_segment_free(r);
  r = NULL;
  uint64_t missing2;
  if (!rc) rc = quire_segment_plan_set(&view, &vids[1], splinter_ref_owned(pages), 0, &r, &nr, &missing2);
  quire_segment_free(r);
  splinter_free(pages);
  quire_segment_free(buf);
  quire_segment_builder_free(b);
  return rc;
}

static int store_workload(const char *url) {
  quire_objstore *s = NULL;
  int rc = quire_objstore_open(url, &s);
  if (rc) return rc;
  char key[32];
  for (int i = 0; !rc && i < 5; i++) {
    snprintf(key, sizeof key, "d/k%d", i);
    rc = quire_objstore_put(s, key, "value", 5);
  }
  if (!rc) rc = quire_objstore_delete(s, "d/once"); /* file:// keeps it between runs */
  if (!rc) rc = quire_objstore_put_if_absent(s, "d/once", "x", 1);
  uint8_t *data = NULL;
  size_t len;
  if (!rc) rc = quire_objstore_get(s, "d/k1", &data, &len);
  quire_objstore_free(data);
  quire_objstore_list l;
  if (!rc) {
    rc = quire_objstore_list_keys(s, "d/", NULL, 2, &l);
    quire_objstore_list_free(&l);
  }
  quire_objstore_writer *w = NULL;
  if (!rc) rc = quire_objstore_writer_open(s, "d/w", 0, &w);
  if (!rc) {
    rc = quire_objstore_writer_write(w, "abc", 3);
    if (rc)
      quire_objstore_writer_abort(w);
    else
      rc = quire_objstore_writer_commit(w);
  }
  quire_objstore_close(s);
  return rc;
}

static void walk(const char *what, int (*fn)(const char *), const char *arg) {
  long n;
  for (n = 1; n < 100000; n++) {
    quire_test_alloc_fail_at(n, 0);
    int rc = fn(arg);
    long failures = quire_test_alloc_failures();
    quire_test_alloc_fail_at(0, 0);
    if (failures == 0) {
      CHECK_OK(rc);
      break;
    }
    CHECKF(rc == QUIRE_ENOMEM, "%s: allocation %ld failed, got %s", what, n, quire_errname(rc));
  }
  printf("%s: %ld allocation sites walked\n", what, n - 1);
  CHECK(n > 1);
}

static int segment_fn(const char *unused) {
  (void)unused;
  return segment_workload();
}

int main(void) {
  test_seed();
  walk("segment", segment_fn, NULL);
  walk("mem store", store_workload, "mem://");
  char *dir = test_tmpdir("segment-oom");
  char url[4200];
  snprintf(url, sizeof url, "file://%s/s?fsync=0", dir);
  walk("file store", store_workload, url);
  test_rmtree(dir);
  free(dir);
  return test_done("segment + objstore OOM");
}
