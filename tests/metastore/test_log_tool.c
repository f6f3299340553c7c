/*
 * `quire log check|restore` (the operator's tools for a lost or damaged
 * commit object, docs/OPERATIONS.md): a whole log checks clean; a missing
 * object with later ones present is reported as a gap and restored from a
 * catalog file; a garbage object is reported, replaced only with --replace;
 * a different valid record is never overwritten.
 */
#include "test.h"
#include "core/commit_record.h"
#include "metastore/catalog.h"
#include "quire/objstore.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char out[16384];

/* Runs `quire log ARGS`, output into out; returns the exit status. */
static int run(const char *args) {
  const char *bin = getenv("QUIRE_BIN");
  CHECK(bin != NULL);
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s log %s 2>&1", bin, args);
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
  test_seed();
  char *dir = test_tmpdir("log-tool");
  char store_url[2048], catalog[2048], vid_text[QUIRE_GID_TEXT_LEN + 1], args[8192];
  snprintf(store_url, sizeof store_url, "file://%s/objects", dir);
  snprintf(catalog, sizeof catalog, "%s/metastore.catalog", dir);
  quire_gid vid, client;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  quire_gid_format(&vid, vid_text);
  quire_objstore *store;
  CHECK_OK(quire_objstore_open(store_url, &store));
  ms_catalog *cat;
  CHECK_OK(quire__catalog_lsm_open(catalog, &cat));
  for (quire_lsn l = 1; l <= 5; l++) {
    struct quire_commit c = {.vid = vid, .client_id = client, .lsn = l, .page_count = 10, .timestamp_ms = l};
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id));
    quire_buf b;
    quire__buf_init(&b, 1 << 20);
    CHECK_OK(quire__commit_encode(&c, &b));
    char key[64];
    quire__commit_key(&vid, l, key);
    CHECK_OK(quire_objstore_put(store, key, b.data, b.len));
    const uint8_t *rec = b.data;
    size_t len = b.len;
    CHECK_OK(ms_catalog_append(cat, &vid, l, 1, &rec, &len));
    quire__buf_free(&b);
  }
  CHECK_OK(ms_catalog_close(cat)); /* the tool reads a catalog no service holds */

  snprintf(args, sizeof args, "check --store %s --vid %s", store_url, vid_text);
  CHECKF(run(args) == 0 && strstr(out, "log 1..5 is whole"), "%s", out);

  /* Lost: log/3. */
  char key3[64], key4[64];
  quire__commit_key(&vid, 3, key3);
  quire__commit_key(&vid, 4, key4);
  CHECK_OK(quire_objstore_delete(store, key3));
  CHECKF(run(args) == 1 && strstr(out, key3) && strstr(out, "a gap") && strstr(out, key4), "%s", out);
  char restore[8192];
  snprintf(restore, sizeof restore, "restore --store %s --vid %s --lsn 3 --catalog %s", store_url, vid_text,
           catalog);
  CHECKF(run(restore) == 0 && strstr(out, "restored"), "%s", out);
  CHECKF(run(args) == 0 && strstr(out, "log 1..5 is whole"), "%s", out);
  CHECKF(run(restore) == 0 && strstr(out, "nothing to do"), "%s", out);

  /* Garbage at log/4: reported; replaced only when asked. */
  CHECK_OK(quire_objstore_put(store, key4, "garbage", 7));
  CHECKF(run(args) == 1 && strstr(out, key4) && strstr(out, "damaged"), "%s", out);
  snprintf(restore, sizeof restore, "restore --store %s --vid %s --lsn 4 --catalog %s", store_url, vid_text,
           catalog);
  CHECKF(run(restore) == 1 && strstr(out, "--replace"), "%s", out);
  char replace[8300];
  snprintf(replace, sizeof replace, "%s --replace", restore);
  CHECKF(run(replace) == 0 && strstr(out, "restored"), "%s", out);
  CHECKF(run(args) == 0, "%s", out);

  /* Another valid record at the key: never overwritten, not even with --replace. */
  {
    struct quire_commit c = {.vid = vid, .client_id = client, .lsn = 4, .page_count = 99};
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id));
    quire_buf b;
    quire__buf_init(&b, 1 << 20);
    CHECK_OK(quire__commit_encode(&c, &b));
    CHECK_OK(quire_objstore_put(store, key4, b.data, b.len));
    quire__buf_free(&b);
  }
  CHECKF(run(replace) == 1 && strstr(out, "another valid record"), "%s", out);
  /* The catalog has no record past 5; usage errors are 2. */
  snprintf(restore, sizeof restore, "restore --store %s --vid %s --lsn 9 --catalog %s", store_url, vid_text,
           catalog);
  CHECKF(run(restore) == 1 && strstr(out, "no record"), "%s", out);
  CHECK(run("check --store mem://") == 2);
  CHECK(run("check --store mem:// --vid nope") == 2);

  quire_objstore_close(store);
  test_rmtree(dir);
  free(dir);
  return test_done("log_tool");
}
