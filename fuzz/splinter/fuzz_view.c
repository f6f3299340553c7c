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

/* Algebra of the view (any valid encoding: adjacent full leaves, bitmap
 * chunks with every bit set, arrays holding a whole block...) with its owned
 * copy and with ranges taken from the input, against contains. */
static void algebra(const splinter_view_t *v, const splinter_t *copy, const uint8_t *data, size_t size) {
  splinter_ref_t rv = splinter_ref_view(v), rc = splinter_ref_owned(copy);
  uint64_t card = splinter_view_cardinality(v);
  splinter_t *out, *probe;
  if (splinter_new(&out) || splinter_new(&probe)) fail();
  if (splinter_union(rv, rc, out) || !splinter_equal(splinter_ref_owned(out), rc)) fail();
  if (splinter_intersection(rc, rv, out) || !splinter_equal(splinter_ref_owned(out), rv)) fail();
  if (splinter_difference(rv, rv, out) || !splinter_is_empty(out)) fail();
  if (splinter_symmetric_difference(rc, rv, out) || !splinter_is_empty(out)) fail();
  if (!splinter_is_subset(rv, rc) || !splinter_is_subset(rc, rv)) fail();
  /* probe: a few ranges and values from the input bytes */
  uint64_t in_probe = 0, in_both = 0;
  for (size_t i = 0; i + 6 <= size && i < 48; i += 6) {
    uint32_t lo = ld_le32(data + i), len = (uint32_t)data[i + 4] << (data[i + 5] & 15);
    uint32_t hi = lo > UINT32_MAX - len ? UINT32_MAX : lo + len;
    if (splinter_insert_range(probe, lo, hi)) fail();
  }
  splinter_iter_t it;
  uint32_t x;
  splinter_iter_init(&it, splinter_ref_owned(probe), 0);
  while (in_probe < 20000 && splinter_iter_next(&it, &x)) {
    in_probe++;
    in_both += splinter_view_contains(v, x);
  }
  if (in_probe < 20000) { /* small enough to count through */
    if (splinter_intersection(splinter_ref_owned(probe), rv, out) || splinter_cardinality(out) != in_both)
      fail();
    if (splinter_intersects(rv, splinter_ref_owned(probe)) != (in_both > 0)) fail();
    if (splinter_union(rv, splinter_ref_owned(probe), out) ||
        splinter_cardinality(out) != card + in_probe - in_both)
      fail();
    if (splinter_difference(splinter_ref_owned(probe), rv, out) ||
        splinter_cardinality(out) != in_probe - in_both)
      fail();
    splinter_t *removed;
    if (splinter_new(&removed) || splinter_cut(probe, rv, removed)) fail();
    if (splinter_cardinality(removed) != in_both || splinter_cardinality(probe) != in_probe - in_both) fail();
    if (splinter_intersects(splinter_ref_owned(probe), rv) ||
        !splinter_is_subset(splinter_ref_owned(removed), rv))
      fail();
    splinter_free(removed);
  }
  splinter_free(out);
  splinter_free(probe);
}

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
    algebra(v, copy, data, size);
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
