/* Commit record decoder on hostile bytes: never crashes, and whatever
 * decodes re-encodes to the same bytes (a version-1 record re-encodes as
 * version 2: the same bytes but for the version and the checksum). */
#include <stdint.h>
#include <string.h>

#include "core/commit_record.h"
#include "util/alloc.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct quire_commit c;
  if (quire__commit_decode(data, size, &c) != 0) return 0;
  quire_buf b;
  quire__buf_init(&b, QUIRE_COMMIT_MAX_SIZE);
  if (quire__commit_encode(&c, &b) != 0 || b.len != size) __builtin_trap();
  if (data[4] == QUIRE_COMMIT_VERSION) {
    if (memcmp(b.data, data, size) != 0) __builtin_trap();
  } else if (data[4] != 1 || memcmp(b.data, data, 4) != 0 || memcmp(b.data + 5, data + 5, size - 13) != 0) {
    __builtin_trap();
  }
  quire__buf_free(&b);
  quire__commit_clear(&c);
  return 0;
}
