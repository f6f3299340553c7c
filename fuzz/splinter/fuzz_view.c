/*
 * fuzz/splinter/fuzz_view.c — splinter_view_open on arbitrary bytes, then
 * every query on what it accepted. The checksum would reject nearly every
 * mutation, so the harness also tries the input with its checksum rewritten,
 * which sends mutations straight to the structural validator.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quire/splinter.h"
#include "util/checksum.h"
#include "util/endian.h"

__attribute__((noreturn)) static void fail(void) { abort(); }

static void query(const splinter_view_t *v, const uint8_t *data, size_t size) {
  uint64_t card = splinter_view_cardinality(v);
  splinter_iter_t it;
  splinter_iter_init(&it, splinter_ref_view(v), 0);
  uint32_t x, prev = 0;
  uint64_t n = 0;
  while (n < 100000 && splinter_iter_next(&it, &x)) {
    if (n && x <= prev) fail();
    if (!splinter_view_contains(v, x)) fail();
    prev = x;
    n++;
  }
  if (n < 100000 && n != card) fail();
  uint32_t mn, mx;
  if (card) {
    if (splinter_view_min(v, &mn) || splinter_view_max(v, &mx) || mn > mx) fail();
    if (splinter_view_rank(v, mx) != card) fail();
    uint32_t sel;
    if (splinter_view_select(v, card - 1, &sel) || sel != mx) fail();
    if (splinter_view_select(v, 0, &sel) || sel != mn) fail();
  }
  for (size_t i = 0; i + 4 <= size && i < 64; i += 4) {
    uint32_t probe = ld_le32(data + i);
    uint64_t r = splinter_view_rank(v, probe);
    if (r > card) fail();
    int has = splinter_view_contains(v, probe);
    if (has) {
      uint32_t sel;
      if (splinter_view_select(v, r - 1, &sel) || sel != probe) fail();
    }
    splinter_iter_init(&it, splinter_ref_view(v), probe);
    if (splinter_iter_next(&it, &x) && (x < probe || (has && x != probe))) fail();
  }
  splinter_t *copy;
  if (splinter_from_ref(splinter_ref_view(v), &copy) == 0) {
    if (!splinter_equal(splinter_ref_owned(copy), splinter_ref_view(v))) fail();
    if (splinter_intersects(splinter_ref_owned(copy), splinter_ref_view(v)) != (card > 0)) fail();
    splinter_free(copy);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  splinter_view_t v;
  if (splinter_view_open(data, size, &v) == 0) query(&v, data, size);
  if (size >= SPLINTER_MIN_SIZE) {
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    st_le64(copy + size - 8, quire__xxh3(copy, size - 8));
    if (splinter_view_open(copy, size, &v) == 0) query(&v, copy, size);
    free(copy);
  }
  return 0;
}
