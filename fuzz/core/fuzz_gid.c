/* Parses untrusted text as a GID: a successful parse must format back to the
 * same text; a failure must leave a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quire/ids.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  quire_gid g;
  int want = size ? data[0] & 0xe0 : 0; /* 0x00 (any) or one of the types or junk */
  if (size) data++, size--;
  int rc = quire_gid_parse((const char *)data, size,
                           want == 0x80 || want == 0xa0 || want == 0xc0 || want == 0xe0 ? want : 0, &g);
  if (rc == 0) {
    char text[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&g, text);
    if (size != QUIRE_GID_TEXT_LEN || memcmp(text, data, size) != 0) abort();
    if (quire_gid_check(&g) != 0) abort();
  } else if (!*quire_errmsg()) {
    abort();
  }
  return 0;
}
