/*
 * fuzz/splinter/fuzz_build.c — builds two sets from the input (a small op
 * language: insert, remove, insert range, remove range) alongside a sorted
 * array model, then checks the serialize -> view round trip and the algebra
 * against the model.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quire/splinter.h"
#include "util/endian.h"

#define MAXN 6000

typedef struct {
  uint8_t *bits; /* model over a small window: values are base + 0..MAXN-1 */
} model;

__attribute__((noreturn)) static void fail(void) { abort(); }

static uint32_t window_base(uint8_t sel) {
  static const uint32_t bases[] = {0, 65536 - 1000, 16777216 - 1000, 4294967295u - MAXN + 1};
  return bases[sel & 3];
}

static void check(splinter_ref_t s, const uint8_t *bits, uint32_t base) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < MAXN; i++) {
    int has = splinter_ref_contains(s, base + i);
    if (has != bits[i]) fail();
    n += bits[i];
  }
  if (splinter_ref_cardinality(s) != n) fail();
  splinter_iter_t it;
  splinter_iter_init(&it, s, 0);
  uint32_t x;
  uint64_t seen = 0;
  while (splinter_iter_next(&it, &x)) {
    if (x < base || x - base >= MAXN || !bits[x - base]) fail();
    seen++;
  }
  if (seen != n) fail();
}

static void build(const uint8_t **p, const uint8_t *end, splinter_t *s, uint8_t *bits) {
  while (*p + 5 <= end) {
    uint8_t op = (*p)[0];
    if (op == 0xFF) {
      (*p)++;
      return;
    }
    uint32_t a = (uint32_t)((*p)[1] | (*p)[2] << 8 | ((*p)[3] & 3) << 16) % MAXN;
    uint32_t len = (*p)[4] * (op & 0x10 ? 257u : 1u);
    *p += 5;
    uint32_t b = a + len < MAXN ? a + len : MAXN - 1;
    switch (op & 3) {
    case 0:
      if (splinter_insert(s, a) < 0) fail();
      bits[a] = 1;
      break;
    case 1:
      if (splinter_remove(s, a) < 0) fail();
      bits[a] = 0;
      break;
    case 2:
      if (splinter_insert_range(s, a, b)) fail();
      memset(bits + a, 1, b - a + 1);
      break;
    default:
      if (splinter_remove_range(s, a, b)) fail();
      memset(bits + a, 0, b - a + 1);
      break;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint32_t base = window_base(data[0]);
  const uint8_t *p = data + 1, *end = data + size;
  splinter_t *a, *b, *out;
  if (splinter_new(&a) || splinter_new(&b) || splinter_new(&out)) fail();
  uint8_t *ma = calloc(MAXN, 1), *mb = calloc(MAXN, 1), *mo = calloc(MAXN, 1);
  if (!ma || !mb || !mo) fail();
  build(&p, end, a, ma);
  build(&p, end, b, mb);
  /* shift both sets to the window by building shifted copies */
  splinter_t *sa, *sb;
  if (splinter_new(&sa) || splinter_new(&sb)) fail();
  splinter_iter_t it;
  uint32_t x;
  splinter_iter_init(&it, splinter_ref_owned(a), 0);
  while (splinter_iter_next(&it, &x))
    if (splinter_insert(sa, base + x) < 0) fail();
  splinter_iter_init(&it, splinter_ref_owned(b), 0);
  while (splinter_iter_next(&it, &x))
    if (splinter_insert(sb, base + x) < 0) fail();
  check(splinter_ref_owned(sa), ma, base);
  uint8_t *ea, *eb;
  size_t la, lb;
  if (splinter_serialize_alloc(sa, &ea, &la) || splinter_serialize_alloc(sb, &eb, &lb)) fail();
  splinter_view_t va, vb;
  if (splinter_view_open(ea, la, &va) || splinter_view_open(eb, lb, &vb)) fail();
  check(splinter_ref_view(&va), ma, base);
  splinter_ref_t ra[2] = {splinter_ref_owned(sa), splinter_ref_view(&va)};
  splinter_ref_t rb[2] = {splinter_ref_owned(sb), splinter_ref_view(&vb)};
  for (int i = 0; i < 16; i++) { /* every operation in every pairing of forms */
    int op = i & 3;
    splinter_ref_t left = ra[(i >> 2) & 1], right = rb[i >> 3];
    if (op == 0 && splinter_union(left, right, out)) fail();
    if (op == 1 && splinter_intersection(left, right, out)) fail();
    if (op == 2 && splinter_difference(left, right, out)) fail();
    if (op == 3 && splinter_symmetric_difference(left, right, out)) fail();
    uint64_t n = 0;
    for (uint32_t k = 0; k < MAXN; k++) {
      mo[k] = op == 0   ? (ma[k] | mb[k])
              : op == 1 ? (ma[k] & mb[k])
              : op == 2 ? (ma[k] & !mb[k])
                        : (ma[k] ^ mb[k]);
      n += mo[k];
    }
    check(splinter_ref_owned(out), mo, base);
    if (op == 1 && splinter_intersects(left, right) != (n > 0)) fail();
    if (op == 2 && splinter_is_subset(left, right) != (n == 0)) fail();
    if (op == 3 && splinter_equal(left, right) != (n == 0)) fail();
    if (op == 0 && !splinter_is_subset(left, splinter_ref_owned(out))) fail();
  }
  for (int form = 0; form < 2; form++) { /* cut by b in either form */
    splinter_t *wanted, *removed;
    if (splinter_from_ref(ra[form], &wanted) || splinter_new(&removed)) fail();
    if (splinter_cut(wanted, rb[form], form ? removed : NULL)) fail();
    for (uint32_t k = 0; k < MAXN; k++) mo[k] = ma[k] & !mb[k];
    check(splinter_ref_owned(wanted), mo, base);
    if (form) {
      for (uint32_t k = 0; k < MAXN; k++) mo[k] = ma[k] & mb[k];
      check(splinter_ref_owned(removed), mo, base);
    }
    splinter_free(wanted);
    splinter_free(removed);
  }
  splinter_bytes_free(ea);
  splinter_bytes_free(eb);
  splinter_free(a), splinter_free(b), splinter_free(out), splinter_free(sa), splinter_free(sb);
  free(ma), free(mb), free(mo);
  return 0;
}
