/*
 * Every metastore request handler on hostile bytes. The first byte picks the
 * handler (b % 8 == 4: fork; otherwise b % 4: snapshot, commit, pull_graft,
 * pull_commits); the rest is the request body. A metastore over mem:// is
 * set up once, with a volume (GonzGAYfi5TG4G8kQi5ymD, raw id
 * 8001a24c7fd52e7db2503b7255ebdab4) of two commits whose segments exist, so
 * fork has real pages to copy (the corpus forks it at lsn 0, 1, 2 and
 * past its head). Handlers must answer with a response or a QUIRE_E* code,
 * never crash, leak or break an invariant.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metastore/ms_int.h"
#include "quire/segment.h"
#include "quire/splinter.h"
#include "util/err.h"
#include "util/log.h"

static quire_metastore *ms;

static void setup(void) {
  quire_objstore *store;
  ms_catalog *cat;
  quire__log_set_level(-1);
  if (quire_objstore_open("mem://", &store) || quire__catalog_mem_open(&cat)) abort();
  struct quire_metastore_opts o = {.store = store, .catalog = cat, .max_pull_commits = 50};
  if (quire_metastore_open(&o, &ms)) abort();
  /* The volume fork copies: lsn 1 writes pages 1..3, lsn 2 page 2 again. */
  quire_gid vid;
  if (quire_gid_parse("GonzGAYfi5TG4G8kQi5ymD", QUIRE_GID_TEXT_LEN, QUIRE_GID_VOLUME, &vid)) abort();
  static uint8_t page[QUIRE_PAGE_SIZE];
  for (quire_lsn lsn = 1; lsn <= 2; lsn++) {
    quire_gid sid;
    quire_segment_builder *b;
    splinter_t *g;
    if (quire_gid_new(QUIRE_GID_SEGMENT, &sid) || quire_segment_builder_new(&sid, NULL, &b) ||
        splinter_new(&g))
      abort();
    for (quire_pageidx p = lsn == 1 ? 1 : 2; p <= (lsn == 1 ? 3u : 2u); p++) {
      memset(page, (int)(p * 16 + lsn), sizeof page);
      if (quire_segment_builder_add(b, &vid, p, page) || splinter_insert(g, p) < 0) abort();
    }
    char key[64], t[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&sid, t);
    snprintf(key, sizeof key, "segments/%s", t);
    uint8_t *gb;
    size_t gl;
    if (quire_segment_builder_to_store(b, store, key, 0) || splinter_serialize_alloc(g, &gb, &gl)) abort();
    quire_segment_builder_free(b);
    splinter_free(g);
    struct quire_commit_segment seg = {sid, gb, (uint32_t)gl};
    struct quire_commit c = {.vid = vid, .lsn = lsn, .page_count = 3, .nsegments = 1, .segments = &seg};
    struct quire_snapshot snap;
    if (quire_gid_new(QUIRE_GID_CLIENT, &c.client_id) || quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id) ||
        quire__ms_commit(ms, &c, &snap))
      abort();
    free(gb);
  }
}

typedef int (*handler)(quire_metastore *, const uint8_t *, size_t, quire_buf *);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ms) setup();
  if (size == 0) return 0;
  static const handler handlers[] = {quire__ms_handle_snapshot, quire__ms_handle_commit,
                                     quire__ms_handle_pull_graft, quire__ms_handle_pull_commits};
  handler h = data[0] % 8 == 4 ? quire__ms_handle_fork : handlers[data[0] % 4];
  quire_buf out;
  quire__buf_init(&out, 64u << 20);
  int rc = h(ms, data + 1, size - 1, &out);
  if (rc > 0) abort();
  /* Request problems are client errors; nothing is ever an internal bug. */
  if (rc == QUIRE_EINTERNAL || quire__never_count() != 0) abort();
  quire__buf_free(&out);
  return 0;
}
