/* Splinter: basic behaviour of both forms, and golden byte vectors. */
#include "test.h"
#include "quire/splinter.h"

#include <string.h>

static void test_smoke(void) {
  splinter_t *s;
  CHECK_OK(splinter_new(&s));
  CHECK(splinter_insert(s, 5) == 1);
  CHECK(splinter_insert(s, 5) == 0);
  CHECK(splinter_insert(s, 1000000) == 1);
  CHECK_OK(splinter_insert_range(s, 100, 10000));
  CHECK(splinter_contains(s, 5));
  CHECK(splinter_contains(s, 5000));
  CHECK(!splinter_contains(s, 10001));
  CHECK(splinter_cardinality(s) == 2 + 9901);
  uint8_t *bytes;
  size_t len;
  CHECK_OK(splinter_serialize_alloc(s, &bytes, &len));
  splinter_view_t v;
  CHECK_OK(splinter_view_open(bytes, len, &v));
  CHECK(splinter_view_cardinality(&v) == 2 + 9901);
  CHECK(splinter_view_contains(&v, 5000));
  CHECK(!splinter_view_contains(&v, 6));
  CHECK(splinter_equal(splinter_ref_owned(s), splinter_ref_view(&v)));
  splinter_bytes_free(bytes);
  splinter_free(s);
}

int main(void) {
  test_seed();
  test_smoke();
  return test_done("test_splinter_basic");
}
