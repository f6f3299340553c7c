/* Errors, allocation hook, capped buffer, endian helpers, checksums. */
#include "test.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

static void test_errors(void) {
  CHECK(strcmp(quire_strerror(0), "success") == 0);
  CHECK(strcmp(quire_strerror(QUIRE_ECORRUPT), "data is corrupt") == 0);
  CHECK(strcmp(quire_errname(QUIRE_ECONFLICT), "QUIRE_ECONFLICT") == 0);
  CHECK(strcmp(quire_errname(-ENOENT), "ENOENT") == 0);
  CHECK(strstr(quire_strerror(-ENOENT), "No such file") != NULL);
  CHECK(strcmp(quire_strerror(-99999), "unknown error") == 0);
  /* The quire band never collides with -errno. */
  for (int c = QUIRE_ELAST_ + 1; c < QUIRE_EBAND; c++) {
    CHECK(c < -4096);
    CHECK(strcmp(quire_errname(c), "QUIRE_E?") != 0);
  }
  CHECK_RC(quire__err(QUIRE_EINVAL, "bad %s", "thing"), QUIRE_EINVAL);
  CHECK(strcmp(quire_errmsg(), "bad thing") == 0);
  /* Wrapping the previous detail keeps it (it was garbled: the message
   * was formatted into the buffer its argument pointed into). */
  quire__err(QUIRE_ECORRUPT, "commit record: checksum mismatch");
  CHECK_RC(quire__err(QUIRE_ECORRUPT, "%s: %s", "volumes/x/log/1", quire_errmsg()), QUIRE_ECORRUPT);
  CHECK(strcmp(quire_errmsg(), "volumes/x/log/1: commit record: checksum mismatch") == 0);
  errno = ENOSPC;
  CHECK_RC(quire__errno("write %s", "f"), -ENOSPC);
  CHECK(strstr(quire_errmsg(), "write f: No space") != NULL);
  long before = quire__never_count();
  int x = 3;
  CHECK(!QUIRE_NEVER(x == 4));
  CHECK(QUIRE_ALWAYS(x == 3));
  quire__log_set_level(-1); /* silence the expected invariant log line */
  CHECK(QUIRE_NEVER(x == 3));
  CHECK(!QUIRE_ALWAYS(x == 4));
  CHECK(quire__never_count() == before + 2);
  CHECK(strstr(quire_errmsg(), "invariant failed") != NULL);
}

static void test_alloc_hook(void) {
  quire_test_alloc_fail_at(3, 0);
  void *a = quire__malloc(10), *b = quire__malloc(10), *c = quire__malloc(10), *d = quire__malloc(10);
  CHECK(a && b && !c && d);
  CHECK(quire_test_alloc_failures() == 1);
  quire__free(a), quire__free(b), quire__free(d);
  quire_test_alloc_fail_at(2, 1);
  a = quire__malloc(1);
  b = quire__calloc(1, 1);
  c = quire__realloc(NULL, 1);
  CHECK(a && !b && !c);
  CHECK(quire_test_alloc_failures() == 2);
  quire__free(a);
  quire_test_alloc_fail_at(0, 0);
  a = quire__malloc(1);
  CHECK(a);
  quire__free(a);
  quire__free(NULL);
}

static void test_buf(void) {
  quire_buf b;
  quire__buf_init(&b, 100);
  CHECK_OK(quire__buf_append(&b, "hello", 5));
  CHECK_OK(quire__buf_append_le32(&b, 0x01020304));
  CHECK_OK(quire__buf_append_varint(&b, 300));
  CHECK(b.len == 11);
  CHECK(b.data[5] == 0x04 && b.data[8] == 0x01);
  uint8_t *z;
  CHECK_OK(quire__buf_extend(&b, 89, &z));
  CHECK(b.len == 100 && z[0] == 0 && z[88] == 0);
  CHECK_RC(quire__buf_append_u8(&b, 1), QUIRE_ETOOLARGE);
  CHECK(b.len == 100);
  CHECK_RC(quire__buf_reserve(&b, SIZE_MAX), QUIRE_ETOOLARGE);
  size_t n;
  uint8_t *p = quire__buf_detach(&b, &n);
  CHECK(n == 100 && p && b.data == NULL && b.len == 0);
  quire__free(p);
  /* Allocation failure inside growth leaves the buffer usable. */
  quire__buf_init(&b, 1 << 20);
  quire_test_alloc_fail_at(1, 0);
  CHECK_RC(quire__buf_append(&b, "x", 1), QUIRE_ENOMEM);
  CHECK_OK(quire__buf_append(&b, "x", 1));
  quire__buf_free(&b);
}

static void test_endian(void) {
  uint8_t t[8];
  st_le32(t, 0xdeadbeef);
  CHECK(t[0] == 0xef && ld_le32(t) == 0xdeadbeef);
  st_be32(t, 0xdeadbeef);
  CHECK(t[0] == 0xde && ld_be32(t) == 0xdeadbeef);
  st_be64(t, 0x0102030405060708ull);
  CHECK(t[0] == 1 && t[7] == 8 && ld_be64(t) == 0x0102030405060708ull);
  st_le16(t, 0xabcd);
  CHECK(ld_le16(t) == 0xabcd && ld_be16(t) == 0xcdab);
}

static void test_checksum(void) {
  /* XXH3-64 of the empty input, a published test vector. */
  CHECK(quire__xxh3("", 0) == 0x2D06800538D394C2ull);
  const char *msg = "the quick brown fox jumps over the lazy dog";
  quire_hasher h;
  quire__hasher_init(&h);
  quire__hasher_update(&h, msg, 10);
  quire__hasher_update(&h, msg + 10, strlen(msg) - 10);
  CHECK(quire__hasher_digest(&h) == quire__xxh3(msg, strlen(msg)));
  CHECK(quire__xxh3(msg, 5) != quire__xxh3(msg, 6));
  CHECK(quire__xxh3_seeded(msg, 5, 1) != quire__xxh3(msg, 5));
}

int main(void) {
  test_errors();
  test_alloc_hook();
  test_buf();
  test_endian();
  test_checksum();
  return test_done("util_basics");
}
