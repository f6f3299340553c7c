/*
 * quire/quire_sqlite.h — for programs that link libquire_sqlite.so (and
 * libsqlite3) instead of loading the extension (docs/SQLITE.md).
 *
 *   #include <sqlite3.h>
 *   #include <quire/quire_sqlite.h>
 *   quire_sqlite_register();
 *   sqlite3_open_v2("file:orders?vfs=quire", &db, SQLITE_OPEN_READWRITE |
 *                   SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
 */
#ifndef QUIRE_QUIRE_SQLITE_H
#define QUIRE_QUIRE_SQLITE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Registers the VFS "quire" (the default VFS too when QUIRE_SQLITE_DEFAULT=1)
 * with the SQLite library the program is linked with, and the quire_stats
 * table with every connection opened afterwards. Returns an SQLite result
 * code: SQLITE_OK, or SQLITE_ERROR when no SQLite library is linked in. Safe
 * to call more than once and from several threads. */
int quire_sqlite_register(void);

#ifdef __cplusplus
}
#endif
#endif
