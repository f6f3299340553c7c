/*
 * metastore/catalog.c — picks a catalog implementation by path.
 */
#include <string.h>

#include "metastore/catalog.h"
#include "util/err.h"
#include "util/log.h"

void (*quire__catalog_append_hook)(const quire_gid *vid, quire_lsn first);

int quire__catalog_open(const char *path, ms_catalog **out) {
  if (!path || !*path || strcmp(path, ":memory:") == 0) return quire__catalog_mem_open(out);
  return quire__catalog_lsm_open(path, out);
}
