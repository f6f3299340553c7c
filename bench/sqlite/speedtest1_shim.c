/*
 * bench/sqlite/speedtest1_shim.c — main() for SQLite's speedtest1 (compiled
 * from Debian's source package at bench time with -Dmain=speedtest1_main):
 * registers the quire VFS (speedtest1 --vfs quire then finds it) and, with
 * SPEEDTEST_SYNC=full|normal|off, sets PRAGMA synchronous on every
 * connection, whichever VFS it uses, so both sides run with the same options.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "quire/quire_sqlite.h"

int speedtest1_main(int argc, char **argv);

static int set_sync(sqlite3 *db, char **err, const void *api) {
  (void)err, (void)api;
  const char *s = getenv("SPEEDTEST_SYNC");
  if (!s || !*s) return SQLITE_OK;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", s);
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

int main(int argc, char **argv) {
  if (quire_sqlite_register() != SQLITE_OK) {
    fprintf(stderr, "speedtest1: cannot register the quire VFS\n");
    return 1;
  }
  sqlite3_auto_extension((void (*)(void))set_sync);
  return speedtest1_main(argc, argv);
}
