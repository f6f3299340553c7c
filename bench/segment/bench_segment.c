/*
 * bench/segment/bench_segment.c — segment build, validate, verify and
 * lookup speed on a full default-limit segment (4084 pages, 16 MiB),
 * beside the raw costs they stand on (memcpy and XXH3 of the same bytes).
 * Single-threaded, in memory.
 */
#include "quire/segment.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double now_s(void) { return (double)quire__mono_ns() / 1e9; }

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_segment: %s: %s %s\n", what, quire_strerror(rc), quire_errmsg());
  exit(1);
}

int main(void) {
  enum { VOLS = 8, ROUNDS = 10 };
  quire_segment_limits lim;
  quire_segment_limits_default(&lim);
  uint32_t per_vol = lim.max_pages / VOLS;
  uint32_t pages = per_vol * VOLS;
  double mib = pages * 4096.0 / (1 << 20);
  quire_gid sid, vids[VOLS];
  quire_gid_new(QUIRE_GID_SEGMENT, &sid);
  for (int v = 0; v < VOLS; v++) quire_gid_new_at(QUIRE_GID_VOLUME, 1000 + (uint64_t)v, &vids[v]);
  uint8_t *src = malloc((size_t)pages * 4096);
  for (size_t i = 0; i < (size_t)pages * 4096; i++) src[i] = (uint8_t)(i * 2654435761u >> 11);

  /* raw references */
  uint8_t *dst = malloc((size_t)pages * 4096);
  double t0 = now_s();
  for (int r = 0; r < ROUNDS; r++) memcpy(dst, src, (size_t)pages * 4096), dst[r] ^= 1;
  double memcpy_s = (now_s() - t0) / ROUNDS;
  t0 = now_s();
  uint64_t sink = 0;
  for (int r = 0; r < ROUNDS; r++)
    for (uint32_t p = 0; p < pages; p++) sink ^= quire__xxh3(src + (size_t)p * 4096, 4096);
  double xxh_s = (now_s() - t0) / ROUNDS;

  /* build (copy + checksum each page) and serialize */
  double build_s = 0, write_s = 0, open_s = 0, verify_s = 0;
  uint8_t *seg = NULL;
  size_t len = 0;
  for (int r = 0; r < ROUNDS; r++) {
    quire_segment_builder *b;
    int rc = quire_segment_builder_new(&sid, NULL, &b);
    if (rc) die("builder", rc);
    t0 = now_s();
    for (int v = 0; v < VOLS; v++)
      for (uint32_t i = 0; i < per_vol; i++) {
        rc = quire_segment_builder_add(b, &vids[v], i * 3 + 1, src + ((size_t)v * per_vol + i) * 4096);
        if (rc) die("add", rc);
      }
    build_s += now_s() - t0;
    quire_segment_free(seg);
    t0 = now_s();
    rc = quire_segment_builder_to_buf(b, &seg, &len);
    write_s += now_s() - t0;
    if (rc) die("to_buf", rc);
    quire_segment_builder_free(b);
    quire_segment_view view;
    t0 = now_s();
    rc = quire_segment_open(seg, len, NULL, &view);
    open_s += now_s() - t0;
    if (rc) die("open", rc);
    t0 = now_s();
    rc = quire_segment_verify_pages(&view);
    verify_s += now_s() - t0;
    if (rc) die("verify", rc);
  }
  build_s /= ROUNDS, write_s /= ROUNDS, open_s /= ROUNDS, verify_s /= ROUNDS;

  /* lookups and plans */
  quire_segment_view view;
  quire_segment_open(seg, len, NULL, &view);
  int lookups = 2000000;
  uint64_t seed = 1;
  t0 = now_s();
  for (int i = 0; i < lookups; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t slot;
    int v = (int)((seed >> 33) % VOLS);
    quire_pageidx idx = (quire_pageidx)((seed >> 40) % (per_vol * 3)) + 1;
    if (quire_segment_find_page(&view, &vids[v], idx, &slot) == 0) sink += slot;
  }
  double lookup_ns = (now_s() - t0) * 1e9 / lookups;
  quire_pageidx want[64];
  for (int i = 0; i < 64; i++) want[i] = (quire_pageidx)(i * 37 % per_vol) * 3 + 1;
  int plans = 200000;
  t0 = now_s();
  for (int i = 0; i < plans; i++) {
    quire_segment_range *r;
    size_t nr, missing;
    if (quire_segment_plan(&view, &vids[i % VOLS], want, 64, 1, &r, &nr, &missing) == 0) sink += nr;
    quire_segment_free(r);
  }
  double plan_us = (now_s() - t0) * 1e6 / plans;

  printf("segment: %u volumes, %u pages, %zu bytes (%.1f MiB of pages)\n\n", VOLS, pages, len, mib);
  printf("%-34s %10s %12s\n", "operation", "MiB/s", "time");
  printf("%-34s %10.0f %9.2f ms\n", "memcpy of the pages (reference)", mib / memcpy_s, memcpy_s * 1e3);
  printf("%-34s %10.0f %9.2f ms\n", "XXH3 of every page (reference)", mib / xxh_s, xxh_s * 1e3);
  printf("%-34s %10.0f %9.2f ms   %.2fx memcpy+XXH3\n", "build (add every page)", mib / build_s,
         build_s * 1e3, build_s / (memcpy_s + xxh_s));
  printf("%-34s %10.0f %9.2f ms\n", "serialize to a buffer", mib / write_s, write_s * 1e3);
  printf("%-34s %10s %9.1f us\n", "open (footer + index validation)", "-", open_s * 1e6);
  printf("%-34s %10.0f %9.2f ms   %.2fx XXH3\n", "verify every page checksum", mib / verify_s, verify_s * 1e3,
         verify_s / xxh_s);
  printf("%-34s %10s %9.0f ns\n", "find_page (vid, idx)", "-", lookup_ns);
  printf("%-34s %10s %9.2f us\n", "plan 64 wanted pages", "-", plan_us);
  if (sink == 42) printf(" ");
  quire_segment_free(seg);
  free(src);
  free(dst);
  return 0;
}
