/*
 * Every metastore request handler on hostile bytes. The first byte picks the
 * handler (snapshot, commit, pull_graft, pull_commits); the rest is the
 * request body. A metastore over mem:// is set up once; a few commits are
 * made first so reads have something to find. Handlers must answer with a
 * response or a QUIRE_E* code, never crash, leak or break an invariant.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metastore/metastore.h"
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
}

typedef int (*handler)(quire_metastore *, const uint8_t *, size_t, quire_buf *);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ms) setup();
  if (size == 0) return 0;
  static const handler handlers[] = {quire__ms_handle_snapshot, quire__ms_handle_commit,
                                     quire__ms_handle_pull_graft, quire__ms_handle_pull_commits};
  handler h = handlers[data[0] % 4];
  quire_buf out;
  quire__buf_init(&out, 64u << 20);
  int rc = h(ms, data + 1, size - 1, &out);
  if (rc > 0) abort();
  /* Request problems are client errors; nothing is ever an internal bug. */
  if (rc == QUIRE_EINTERNAL || quire__never_count() != 0) abort();
  quire__buf_free(&out);
  return 0;
}
