/*
 * objstore/objstore_s3.c — `s3://bucket/prefix?endpoint=…&region=…`.
 * Not built yet: opening an s3:// URL reports QUIRE_EUNSUPPORTED.
 */
#include "objstore/objstore_int.h"
#include "util/util.h"

int objstore__s3_open(quire_objstore *s, const char *location, struct objstore_params *p) {
  QUIRE_UNUSED(s);
  QUIRE_UNUSED(location);
  QUIRE_UNUSED(p);
  return quire__err(QUIRE_EUNSUPPORTED, "s3: backend not built in this revision");
}
