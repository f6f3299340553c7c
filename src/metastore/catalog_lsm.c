/*
 * metastore/catalog_lsm.c — the catalog in an LSM file. Until the LSM engine
 * lands in main this falls back to the in-memory catalog (with a warning), so
 * the service runs; it is rebuilt from object storage on every start.
 */
#include "metastore/catalog.h"
#include "util/err.h"
#include "util/log.h"

int quire__catalog_lsm_open(const char *path, ms_catalog **out) {
  QLOG_WARN("metastore: LSM catalog not built yet; %s not used, catalog kept in memory", path);
  return quire__catalog_mem_open(out);
}
