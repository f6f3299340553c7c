/*
 * Untrusted bytes at the pagestore's edges. The first byte picks the parser:
 *   0  a write_pages request body (server side),
 *   1  a read_pages request body (server side),
 *   2  a read_pages answer (the client's frame parser; wanted = 1..64).
 * Each must accept or reject with a message, never crash, and what it
 * accepts must satisfy the checks it promises.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pagestore/client.h"
#include "pagestore/ps_int.h"

static int on_page(void *ctx, quire_pageidx idx, const uint8_t *page) {
  const splinter_t *wanted = ctx;
  if (!splinter_contains(wanted, idx)) abort();
  volatile uint8_t x = page[0] ^ page[QUIRE_PAGE_SIZE - 1]; /* the page is all there */
  (void)x;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *body = data + 1;
  size_t len = size - 1;
  switch (data[0] % 3) {
  case 0: {
    struct ps_write_req w;
    if (quire__ps_parse_write(body, len, 64, &w) == 0) {
      if (w.n == 0 || w.n > 64 || quire_gid_type(&w.vid) != QUIRE_GID_VOLUME) abort();
      for (size_t i = 0; i < w.n; i++)
        if (w.idx[i] == 0) abort();
      quire__ps_write_req_clear(&w);
    } else if (!*quire_errmsg()) {
      abort();
    }
    break;
  }
  case 1: {
    struct ps_read_req q;
    if (quire__ps_parse_read(body, len, 64, &q) == 0) {
      if (q.lsn == 0 || splinter_view_contains(&q.wanted, 0) || splinter_view_cardinality(&q.wanted) > 64)
        abort();
      quire__ps_read_req_clear(&q);
    } else if (!*quire_errmsg()) {
      abort();
    }
    break;
  }
  default: {
    splinter_t *wanted, *missing = NULL;
    if (splinter_new(&wanted) != 0) return 0;
    if (splinter_insert_range(wanted, 1, 64) == 0) {
      quire__err_clear();
      int rc = quire__psclient_parse_frames(body, len, wanted, on_page, wanted, &missing);
      if (rc == 0 && !missing) abort();
      if (rc != 0 && missing) abort();
    }
    splinter_free(missing);
    splinter_free(wanted);
  }
  }
  return 0;
}
