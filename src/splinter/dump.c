/*
 * splinter/dump.c — a human-readable description of an encoding: footer,
 * node tree (level, kind, widths, size, cardinality) and, optionally, the
 * elements as ranges. Used by `quire splinter dump` to debug segments and
 * commits. It only walks bytes splinter_view_open accepted.
 */
#include "splinter/splinter_int.h"

#include <inttypes.h>
#include <stdio.h>

static const char *kind_name(int k) {
  static const char *names[] = {"empty", "full", "array", "runs", "bitmap", "tree", "?6", "?7"};
  return names[k & 7];
}

static uint64_t node_card(const sp_node *nd) { /* recursion is bounded by the 4 levels */
  switch (nd->kind) {
  case SP_FULL: return sp_level_cap(nd->level);
  case SP_ARRAY: return nd->n;
  case SP_TREE: {
    uint64_t c = 0;
    for (uint32_t i = 0; i < nd->n; i++) {
      sp_node child;
      sp__tree_child(nd, i, &child);
      c += node_card(&child);
    }
    return c;
  }
  case SP_RUNS: {
    uint64_t c = 0;
    size_t step = (size_t)nd->wa + nd->wb;
    for (uint32_t i = 0; i < nd->n; i++) c += (uint64_t)sp_rd(nd->p + i * step + nd->wa, nd->wb) + 1;
    return c;
  }
  case SP_BITMAP: {
    uint64_t c = 0;
    for (size_t i = 0; i < nd->n; i++) c += (uint64_t)__builtin_popcount(nd->p[i]);
    return c;
  }
  default: return 0;
  }
}

static void dump_node(FILE *f, const splinter_view_t *v, const sp_node *nd, int depth) {
  fprintf(f, "%*s%s level=%d base=%" PRIu32 " offset=%zu size=%zu card=%" PRIu64, depth * 2, "",
          kind_name(nd->kind), nd->level, nd->base, (size_t)(nd->p - v->bytes), nd->len, node_card(nd));
  if (nd->kind == SP_ARRAY) fprintf(f, " n=%" PRIu32 " value_width=%u", nd->n, nd->wa);
  if (nd->kind == SP_BITMAP)
    fprintf(f, " first_byte=%" PRIu32 " bytes=%" PRIu32 " start_width=%u", nd->bstart, nd->n, nd->wa);
  if (nd->kind == SP_RUNS)
    fprintf(f, " runs=%" PRIu32 " start_width=%u length_width=%u", nd->n, nd->wa, nd->wb);
  if (nd->kind == SP_TREE)
    fprintf(f, " children=%" PRIu32 " keys=%s offset_width=%u card_width=%u", nd->n,
            nd->keymode == 0   ? "list"
            : nd->keymode == 1 ? "bitmap"
                               : "all",
            nd->wa, nd->wb);
  fprintf(f, "\n");
  if (nd->kind == SP_TREE)
    for (uint32_t i = 0; i < nd->n; i++) {
      sp_node child;
      sp__tree_child(nd, i, &child);
      dump_node(f, v, &child, depth + 1);
    }
}

int splinter_dump(const void *bytes, size_t len, void *fp, int values) {
  FILE *f = fp;
  const uint8_t *p = bytes;
  fprintf(f, "length: %zu bytes\n", len);
  if (len >= SPLINTER_MIN_SIZE) {
    unsigned flags = p[len - 11], cw = ((flags >> 4) & 3) + 1;
    fprintf(f, "footer: version=%u magic=%02x%02x checksum=%016" PRIx64, flags & 15, p[len - 10], p[len - 9],
            ld_le64(p + len - 8));
    if (len >= SP_FOOTER_FIXED + cw)
      fprintf(f, " cardinality(mod 2^32)=%" PRIu32 " (%u bytes)", sp_rd(p + len - SP_FOOTER_FIXED - cw, cw),
              cw);
    fprintf(f, "\n");
  }
  splinter_view_t v;
  int rc = splinter_view_open(bytes, len, &v);
  if (rc) {
    fprintf(f, "invalid: %s: %s\n", quire_strerror(rc), quire_errmsg());
    return rc;
  }
  fprintf(f, "cardinality: %" PRIu64 "\n", v.cardinality);
  sp_node root;
  sp__view_root(&v, &root);
  dump_node(f, &v, &root, 0);
  if (values) {
    fprintf(f, "values:");
    splinter_iter_t it;
    splinter_iter_init(&it, splinter_ref_view(&v), 0);
    uint32_t x, s = 0, e = 0;
    int have = 0;
    while (splinter_iter_next(&it, &x)) {
      if (have && x == e + 1) {
        e = x;
        continue;
      }
      if (have) (s == e) ? fprintf(f, " %" PRIu32, s) : fprintf(f, " %" PRIu32 "-%" PRIu32, s, e);
      s = e = x;
      have = 1;
    }
    if (have) (s == e) ? fprintf(f, " %" PRIu32, s) : fprintf(f, " %" PRIu32 "-%" PRIu32, s, e);
    fprintf(f, "\n");
  }
  return 0;
}
