/* GIDs: round trips, every parse error, ordering by type and time,
 * uniqueness of 1M ids; LSN and page index helpers. */
#include "test.h"
#include "quire/ids.h"

#include <stdlib.h>
#include <string.h>

static int cmp_gid(const void *a, const void *b) { return quire_gid_cmp(a, b); }

int main(void) {
  test_seed();
  static const int types[] = {QUIRE_GID_VOLUME, QUIRE_GID_SEGMENT, QUIRE_GID_CLIENT, QUIRE_GID_COMMIT};
  char text[QUIRE_GID_TEXT_LEN + 1];
  quire_gid g, h;

  /* Round trips for every type, and typed parsing. */
  for (int i = 0; i < 4; i++) {
    CHECK_OK(quire_gid_new(types[i], &g));
    CHECK(quire_gid_type(&g) == types[i]);
    CHECK_OK(quire_gid_check(&g));
    quire_gid_format(&g, text);
    CHECK(strlen(text) == QUIRE_GID_TEXT_LEN);
    CHECK_OK(quire_gid_parse(text, strlen(text), 0, &h));
    CHECK(quire_gid_cmp(&g, &h) == 0);
    CHECK_OK(quire_gid_parse(text, strlen(text), types[i], &h));
    CHECK_RC(quire_gid_parse(text, strlen(text), types[(i + 1) % 4], &h), QUIRE_EINVAL);
    CHECK(strstr(quire_errmsg(), "expected a") != NULL);
  }
  CHECK_RC(quire_gid_new(0x42, &g), QUIRE_EINVAL);
  CHECK_RC(quire_gid_new_at(QUIRE_GID_VOLUME, 1ull << 48, &g), QUIRE_EINVAL);

  /* Extreme values format to 22 characters and round-trip. */
  memset(g.b, 0xff, sizeof g.b);
  g.b[0] = QUIRE_GID_COMMIT;
  quire_gid_format(&g, text);
  CHECK_OK(quire_gid_parse(text, 22, 0, &h));
  CHECK(quire_gid_cmp(&g, &h) == 0);
  memset(g.b, 0, sizeof g.b);
  g.b[0] = QUIRE_GID_VOLUME;
  quire_gid_format(&g, text);
  CHECK_OK(quire_gid_parse(text, 22, 0, &h));
  CHECK(quire_gid_cmp(&g, &h) == 0);

  /* Every parse error. */
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &g));
  quire_gid_format(&g, text);
  CHECK_RC(quire_gid_parse(text, 21, 0, &h), QUIRE_EINVAL); /* short */
  CHECK(strstr(quire_errmsg(), "22") != NULL);
  char longer[32];
  snprintf(longer, sizeof longer, "%s1", text);
  CHECK_RC(quire_gid_parse(longer, 23, 0, &h), QUIRE_EINVAL); /* long */
  CHECK_RC(quire_gid_parse("", 0, 0, &h), QUIRE_EINVAL);
  const char bad_chars[] = {'0', 'O', 'I', 'l', '+', '/', ' ', '\0', (char)0xc3};
  for (size_t i = 0; i < sizeof bad_chars; i++) {
    char t[23];
    memcpy(t, text, 23);
    t[5 + i] = bad_chars[i];
    CHECK_RC(quire_gid_parse(t, 22, 0, &h), QUIRE_EINVAL);
    CHECK(strstr(quire_errmsg(), "not base58") != NULL);
  }
  CHECK_RC(quire_gid_parse("zzzzzzzzzzzzzzzzzzzzzz", 22, 0, &h), QUIRE_EINVAL); /* > 2^128 */
  CHECK(strstr(quire_errmsg(), "128 bits") != NULL);
  CHECK_RC(quire_gid_parse("1111111111111111111111", 22, 0, &h), QUIRE_EINVAL); /* type 0x00 */
  CHECK(strstr(quire_errmsg(), "type byte") != NULL);
  memset(g.b, 0x11, sizeof g.b);
  g.b[0] = 0x90; /* top bit set but not a known type */
  quire_gid_format(&g, text);
  CHECK_RC(quire_gid_parse(text, 22, 0, &h), QUIRE_EINVAL);
  CHECK_RC(quire_gid_check(&g), QUIRE_EINVAL);

  /* Ordering: type first, then time. Text order is byte order too (fixed
   * length, alphabet in ASCII order). */
  quire_gid early, late, other_type;
  CHECK_OK(quire_gid_new_at(QUIRE_GID_VOLUME, 1700000000000ull, &early));
  CHECK_OK(quire_gid_new_at(QUIRE_GID_VOLUME, 1700000000001ull, &late));
  CHECK_OK(quire_gid_new_at(QUIRE_GID_SEGMENT, 1000ull, &other_type));
  CHECK(quire_gid_cmp(&early, &late) < 0);
  CHECK(quire_gid_cmp(&late, &other_type) < 0);
  CHECK(quire_gid_time_ms(&early) == 1700000000000ull);
  char te[23], tl[23];
  quire_gid_format(&early, te);
  quire_gid_format(&late, tl);
  CHECK(strcmp(te, tl) < 0);
  CHECK(strcmp(quire_gid_type_name(QUIRE_GID_CLIENT), "client") == 0);

  /* Uniqueness of 1M ids generated as fast as possible (same milliseconds). */
  size_t n = 1000000;
  quire_gid *all = malloc(n * sizeof *all);
  CHECK(all);
  for (size_t i = 0; i < n; i++) CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &all[i]));
  qsort(all, n, sizeof *all, cmp_gid);
  for (size_t i = 1; i < n; i++) CHECK(quire_gid_cmp(&all[i - 1], &all[i]) < 0);
  free(all);

  /* LSN and PageIdx helpers. */
  CHECK_RC(quire_lsn_check(0), QUIRE_ERANGE);
  CHECK_OK(quire_lsn_check(1));
  CHECK_RC(quire_pageidx_check(0), QUIRE_ERANGE);
  CHECK_OK(quire_pageidx_check(1));
  char lsn[17];
  quire_lsn_format(0x1234abcdull, lsn);
  CHECK(strcmp(lsn, "000000001234abcd") == 0);
  quire_lsn v;
  CHECK_OK(quire_lsn_parse(lsn, 16, &v));
  CHECK(v == 0x1234abcdull);
  quire_lsn_format(UINT64_MAX, lsn);
  CHECK_OK(quire_lsn_parse(lsn, 16, &v));
  CHECK(v == UINT64_MAX);
  CHECK_RC(quire_lsn_parse("000000001234ABCD", 16, &v), QUIRE_EINVAL);
  CHECK_RC(quire_lsn_parse("1234", 4, &v), QUIRE_EINVAL);
  char a[17], b[17];
  quire_lsn_format(9, a);
  quire_lsn_format(10, b);
  CHECK(strcmp(a, b) < 0);
  return test_done("core_gid");
}
