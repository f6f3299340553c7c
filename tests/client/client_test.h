/*
 * tests/client/client_test.h — helpers shared by the client runtime tests:
 * deterministic page contents and a count of the local store's keys.
 */
#ifndef QUIRE_TESTS_CLIENT_TEST_H
#define QUIRE_TESTS_CLIENT_TEST_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "quire/lsm.h"
#include "quire/quire.h"
#include "test.h"

/* snprintf into a fixed buffer that must not truncate (test paths). */
static inline void pathf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void pathf(char *out, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out, cap, fmt, ap);
  va_end(ap);
  CHECK(n >= 0 && (size_t)n < cap);
}

/* The page for tag (0: all zeros): every 8 bytes derive from tag. */
static inline void page_fill(uint8_t *p, uint64_t tag) {
  if (!tag) {
    memset(p, 0, QUIRE_PAGE_SIZE);
    return;
  }
  uint64_t x = tag * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy(p + i, &x, 8);
  }
  memcpy(p, &tag, 8);
}

/* 1 when p is the page of tag. */
static inline int page_is(const uint8_t *p, uint64_t tag) {
  uint8_t want[QUIRE_PAGE_SIZE];
  page_fill(want, tag);
  return memcmp(p, want, QUIRE_PAGE_SIZE) == 0;
}

/* The tag a page was filled with (0 for zeros, UINT64_MAX for neither). */
static inline uint64_t page_tag(const uint8_t *p) {
  uint64_t tag;
  memcpy(&tag, p, 8);
  return page_is(p, tag) ? tag : UINT64_MAX;
}

/* The data directory's local store, read-only (the client must be closed). */
static inline lsm_db *store_open_ro(const char *dir) {
  char path[1100];
  pathf(path, sizeof path, "%s/local.lsm", dir);
  lsm_options o;
  lsm_options_init(&o);
  o.read_only = 1;
  lsm_db *db;
  CHECK_OK(lsm_open(path, &o, &db));
  return db;
}

/* Writes pages lo..hi (tags tag0 + idx) as one commit. */
static inline void write_tagged(quire_volume *v, quire_pageidx lo, quire_pageidx hi, uint64_t tag0) {
  quire_writer *w;
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECK_OK(quire_writer_open(v, &w));
  for (quire_pageidx i = lo; i <= hi; i++) {
    page_fill(page, tag0 + i);
    CHECK_OK(quire_writer_write(w, i, page));
  }
  CHECK_OK(quire_writer_commit(w, NULL));
}

/* Keys in the data directory's local store starting with letter (the
 * client must be closed). */
static inline uint64_t store_count(const char *dir, char letter) {
  lsm_db *db = store_open_ro(dir);
  lsm_cursor *c;
  CHECK_OK(lsm_cursor_open(db, &c));
  uint64_t n = 0;
  int rc;
  for (rc = lsm_cursor_seek(c, &letter, 1, LSM_SEEK_GE); rc == 0; rc = lsm_cursor_next(c)) {
    const void *k;
    size_t kl;
    CHECK_OK(lsm_cursor_key(c, &k, &kl));
    if (((const char *)k)[0] != letter) break;
    n++;
  }
  lsm_cursor_close(c);
  lsm_close(db);
  return n;
}

/* 1 when the local store passes a full check with no leaked page (the
 * client must be closed). */
static inline int store_check_clean(const char *dir) {
  lsm_db *db = store_open_ro(dir);
  lsm_check_result r;
  int rc = lsm_check(db, &r);
  lsm_close(db);
  if (rc || r.pages_leaked || r.pages_double)
    fprintf(stderr, "local store %s: check %s, %llu leaked, %llu used twice: %s\n", dir, quire_strerror(rc),
            (unsigned long long)r.pages_leaked, (unsigned long long)r.pages_double, r.message);
  return rc == 0 && r.pages_leaked == 0 && r.pages_double == 0;
}

#endif
