/*
 * fuzz/objstore/fuzz_s3_list.c — the ListObjectsV2 response parser on
 * untrusted bytes (what an S3 endpoint sends back). The first byte picks a
 * store prefix and a limit so both the stripping and the truncation paths
 * run; every result must be well formed: ascending valid keys, at most
 * limit of them.
 */
#include "objstore/objstore_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *prefixes[] = {"", "pre/", "pre/fix/", "a/"};
  const char *prefix = size ? prefixes[data[0] % 4] : "";
  size_t limit = size ? 1 + (size_t)(data[0] >> 2) % 8 : 1;
  quire_objstore_list out;
  memset(&out, 0, sizeof out);
  int truncated;
  char *token;
  int rc = objstore__s3_parse_list((const char *)data, size, prefix, size > 1 && data[1] & 1 ? "k" : "",
                                   limit, &out, &truncated, &token);
  if (rc == 0) {
    if (out.count > limit) abort();
    for (size_t i = 0; i < out.count; i++) {
      if (quire_objstore_key_check(out.entries[i].key) != 0) abort();
      if (i && strcmp(out.entries[i - 1].key, out.entries[i].key) >= 0) abort();
    }
    free(token);
  } else if (token) {
    abort(); /* no token on failure */
  }
  quire_objstore_list_free(&out);
  return 0;
}
