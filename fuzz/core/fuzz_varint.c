/* Decodes a stream of varints from untrusted bytes: every decoded value must
 * re-encode to exactly the bytes it came from (canonical), and decoding must
 * never read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (off < size) {
    uint64_t v;
    int n = quire__varint_get(data + off, size - off, &v);
    if (n <= 0) break;
    uint8_t again[QUIRE_VARINT_MAX];
    if (quire__varint_put(again, v) != n || memcmp(again, data + off, (size_t)n) != 0) abort();
    off += (size_t)n;
  }
  return 0;
}
