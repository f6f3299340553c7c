/*
 * `quire lsm stat|dump|check` on a real file: output names the segments and
 * the keys, check passes on a good file and fails (exit 1) on a file with a
 * damaged page; usage errors exit 2.
 */
#include <stdio.h>
#include <sys/wait.h>

#include "lsm/lsm_int.h"
#include "test.h"

static int run(const char *cmd, char *out, size_t cap) {
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
  test_seed();
  const char *bin = getenv("QUIRE_BIN");
  CHECK(bin != NULL);
  char *dir = test_tmpdir("lsm_cli");
  char path[512], cmd[1400];
  static char out[1 << 20];
  snprintf(path, sizeof path, "%s/cli.db", dir);
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = LSM_SYNC_NORMAL;
  o.merge_off = 1;    /* the three segments stay in Incoming for stat to show */
  o.wal_pages = 2048; /* the damage below starts after the log */
  lsm_db *db;
  CHECK_OK(lsm_open(path, &o, &db));
  uint8_t big[10000];
  memset(big, 'v', sizeof big);
  for (int r = 0; r < 3; r++) {
    lsm_txn *t;
    CHECK_OK(lsm_txn_begin(db, 0, &t));
    for (int i = 0; i < 500; i++) {
      char k[32];
      int n = snprintf(k, sizeof k, "key%04d", i * 3 + r);
      CHECK_OK(lsm_txn_put(t, k, (size_t)n, big, i == 7 ? sizeof big : 20));
    }
    CHECK_OK(lsm_txn_delete(t, "key0003", 7));
    CHECK_OK(lsm_txn_commit(t));
    CHECK_OK(lsm_flush(db));
  }
  CHECK_OK(lsm_close(db));

  snprintf(cmd, sizeof cmd, "%s lsm stat %s", bin, path);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(strstr(out, "incoming[2]") && strstr(out, "page size 4096") && strstr(out, "tombstones"));
  CHECK(strstr(out, "fragmentation") && strstr(out, "merges") && strstr(out, "waiting"));
  snprintf(cmd, sizeof cmd, "%s lsm dump %s --from key0100 --limit 3", bin, path);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(strncmp(out, "key0100\t20\tvvvvvvvvvvvvvvvvvvvv\nkey0101\t", 39) == 0);
  snprintf(cmd, sizeof cmd, "%s lsm dump %s --limit 2", bin, path);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(strncmp(out, "key0000\t20\t", 11) == 0 && strstr(out, "key0001\t") && !strstr(out, "key0003"));
  snprintf(cmd, sizeof cmd, "%s lsm check %s", bin, path);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(strstr(out, ": ok: 1499 live entries") != NULL);
  CHECK(strstr(out, "pages: ") && strstr(out, "+ 0 leaked"));
  /* vacuum into a new file, compact the original: same content, checks clean */
  char vpath[600];
  snprintf(vpath, sizeof vpath, "%s/cli-vacuum.db", dir);
  snprintf(cmd, sizeof cmd, "%s lsm vacuum %s %s", bin, path, vpath);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(run(cmd, out, sizeof out) == 1); /* the target exists now */
  snprintf(cmd, sizeof cmd, "%s lsm check %s", bin, vpath);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(strstr(out, ": ok: 1499 live entries, 0+0+1 segments") != NULL);
  snprintf(cmd, sizeof cmd, "%s lsm compact %s", bin, path);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(strstr(out, "3 segments -> 1") != NULL);
  snprintf(cmd, sizeof cmd, "%s lsm stat %s", bin, path);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(strstr(out, "regular[0]") && !strstr(out, "incoming[0]"));
  snprintf(cmd, sizeof cmd, "%s lsm check %s", bin, path);
  CHECK(run(cmd, out, sizeof out) == 0);
  CHECK(strstr(out, ": ok: 1499 live entries, 0+0+1 segments") != NULL);
  snprintf(cmd, sizeof cmd, "%s lsm dump", bin);
  CHECK(run(cmd, out, sizeof out) == 2);
  snprintf(cmd, sizeof cmd, "%s lsm frob %s 2>/dev/null", bin, path);
  CHECK(run(cmd, out, sizeof out) == 2);

  /* damage one byte of every page after the log region (segments, blobs) */
  FILE *f = fopen(path, "r+b");
  CHECK(f != NULL);
  fseek(f, 0, SEEK_END);
  long end = ftell(f);
  for (long off = (long)(1 + 2048) * 4096 + 100; off < end; off += 4096) {
    fseek(f, off, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(ch ^ 0x5a, f);
  }
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s lsm check %s", bin, path);
  CHECK(run(cmd, out, sizeof out) == 1);
  CHECK(strstr(out, "CORRUPT") != NULL || strstr(out, "data is corrupt") != NULL);
  if (strstr(out, "CORRUPT")) /* each problem on its own line, from lsm_check through log_fn */
    CHECKF(strstr(out, "\n  ") != NULL || strncmp(out, "  ", 2) == 0, "no problem listed: %s", out);
  test_rmtree(dir);
  free(dir);
  return test_done("test_lsm_cli");
}
