/*
 * The quire VFS with the real SQLite library on local-only clients: CRUD
 * and indexes, transactions (rollback, savepoints, a rollback after SQLite
 * spilled pages, one larger than the writer's memory), multi-MiB blobs,
 * VACUUM, VACUUM INTO a plain file, the backup API both ways, every page
 * size from 512 to 65536 under every journal mode but WAL, WAL refused,
 * exclusive locking refused, the lock map (a second writer is busy, a
 * stale snapshot cannot write, readers keep their snapshot, caches follow
 * other connections' commits), read-only opens, names and volume ids, the
 * pragmas and the quire_stats table, and the batch-atomic file controls
 * driven directly. PRAGMA integrity_check after each scenario.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "sqlite_test.h"

static char *root;

static void uri(char *out, size_t cap, const char *name, const char *extra) {
  snprintf(out, cap, "file:%s?vfs=quire%s%s", name, extra ? "&" : "", extra ? extra : "");
}

static sqlite3 *open_vol(const char *name) {
  char u[512];
  uri(u, sizeof u, name, NULL);
  return qt_open(u);
}

static unsigned long long local_lsn(sqlite3 *db) { return qt_status_u64(db, "local_lsn"); }

static unsigned long long vol_pages(sqlite3 *db) { return qt_status_u64(db, "page_count"); }

/* The volume holds exactly the pages SQLite's header says, rounded up. */
static void check_size(sqlite3 *db) {
  sqlite3_int64 pgsz = qt_int(db, "PRAGMA page_size"), n = qt_int(db, "PRAGMA page_count");
  unsigned long long want = (unsigned long long)((n * pgsz + 4095) / 4096);
  CHECKF(vol_pages(db) == want, "volume has %llu pages, SQLite %lld x %lld bytes", vol_pages(db), n, pgsz);
}

static void crud(void) {
  sqlite3 *db = open_vol("crud");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT)");
  qt_exec(db, "INSERT INTO t(k, v) SELECT value % 997, hex(randomblob(40)) FROM series(4985)");
  qt_exec(db, "CREATE INDEX tk ON t(k)");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 4985);
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE k = 5") == 5);
  qt_exec(db, "UPDATE t SET v = 'x' WHERE k < 100");
  qt_exec(db, "DELETE FROM t WHERE k >= 900");
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE v = 'x'") ==
        qt_int(db, "SELECT count(*) FROM t WHERE k < 100"));
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE k >= 900") == 0);
  qt_integrity(db);
  sqlite3_int64 n = qt_int(db, "SELECT count(*) FROM t");
  sqlite3_close(db);
  /* Everything was committed to the volume: a new connection sees it. */
  db = open_vol("crud");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == n);
  CHECK(qt_int(db, "SELECT count(*) FROM t INDEXED BY tk WHERE k = 5") == 5);
  qt_integrity(db);
  check_size(db);
  sqlite3_close(db);
}

static void transactions(void) {
  sqlite3 *db = open_vol("txn");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
  qt_exec(db, "INSERT INTO t(v) SELECT randomblob(500) FROM series(200)");
  unsigned long long lsn0 = local_lsn(db);
  /* A rollback commits nothing. */
  qt_exec(db, "BEGIN; DELETE FROM t; INSERT INTO t(v) VALUES (1); ROLLBACK");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 200);
  CHECK(local_lsn(db) == lsn0);
  /* Savepoints. */
  qt_exec(db,
          "BEGIN; INSERT INTO t(v) VALUES (1); SAVEPOINT s; DELETE FROM t; ROLLBACK TO s; RELEASE s; COMMIT");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 201);
  CHECK(local_lsn(db) == lsn0 + 1);
  /* A rollback after SQLite spilled pages to the file (tiny cache). */
  qt_exec(db, "PRAGMA cache_size = 5");
  qt_exec(db, "BEGIN; UPDATE t SET v = randomblob(600); INSERT INTO t(v) SELECT randomblob(900) FROM "
              "series(300)");
  qt_exec(db, "ROLLBACK");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 201);
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE length(v) = 500") == 200);
  qt_integrity(db);
  check_size(db);
  /* A failed statement inside a transaction undoes only itself. */
  qt_exec(db, "CREATE TABLE u(x UNIQUE)");
  qt_exec(db, "BEGIN; INSERT INTO u VALUES (1)");
  CHECK(qt_exec_rc(db, "INSERT INTO u VALUES (2), (1)") == SQLITE_CONSTRAINT_UNIQUE);
  qt_exec(db, "COMMIT");
  CHECK(qt_int(db, "SELECT count(*) FROM u") == 1);
  qt_integrity(db);
  sqlite3_close(db);
}

/* One transaction of several times the writer's in-memory buffer: SQLite
 * spills through a small cache, the writer spills to the local store. */
static void large_txn(void) {
  sqlite3 *db = open_vol("large");
  int mib = test_long_mode() ? 256 : 24; /* the writer spills past 8 MiB */
  qt_exec(db, "PRAGMA cache_size = -2000");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
  uint64_t t0 = qt_now_ms();
  qt_execf(db, "BEGIN; INSERT INTO t(v) SELECT randomblob(4000) FROM series(%d); COMMIT", mib * 256);
  printf("large transaction: %d MiB in %llu ms\n", mib, (unsigned long long)(qt_now_ms() - t0));
  CHECK(qt_int(db, "SELECT count(*) FROM t") == mib * 256);
  CHECK(qt_int(db, "SELECT sum(length(v)) FROM t") == (sqlite3_int64)mib * 256 * 4000);
  qt_integrity(db);
  check_size(db);
  sqlite3_close(db);
}

static void blobs(void) {
  sqlite3 *db = open_vol("blobs");
  qt_exec(db, "CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)");
  const int n = 8 << 20;
  uint8_t *data = malloc((size_t)n), *back = malloc((size_t)n);
  CHECK(data && back);
  for (int i = 0; i < n; i++) data[i] = (uint8_t)(test_rand() >> 13);
  sqlite3_stmt *st;
  QT_CHECK_DB(db, sqlite3_prepare_v2(db, "INSERT INTO b(id, v) VALUES (?, ?)", -1, &st, NULL) == SQLITE_OK);
  for (int id = 1; id <= 2; id++) {
    sqlite3_bind_int(st, 1, id);
    sqlite3_bind_blob(st, 2, data + id, n - id * 4096, SQLITE_STATIC);
    QT_CHECK_DB(db, sqlite3_step(st) == SQLITE_DONE);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  db = open_vol("blobs");
  for (int id = 1; id <= 2; id++) {
    sqlite3_blob *b;
    QT_CHECK_DB(db, sqlite3_blob_open(db, "main", "b", "v", id, 0, &b) == SQLITE_OK);
    int len = sqlite3_blob_bytes(b);
    CHECK(len == n - id * 4096);
    QT_CHECK_DB(db, sqlite3_blob_read(b, back, len, 0) == SQLITE_OK);
    CHECKF(memcmp(back, data + id, (size_t)len) == 0, "blob %d differs", id);
    sqlite3_blob_close(b);
  }
  /* Overwrite part of a blob in place. */
  sqlite3_blob *b;
  QT_CHECK_DB(db, sqlite3_blob_open(db, "main", "b", "v", 2, 1, &b) == SQLITE_OK);
  QT_CHECK_DB(db, sqlite3_blob_write(b, "quire", 5, 1000000) == SQLITE_OK);
  sqlite3_blob_close(b);
  char s[16];
  qt_text(db, "SELECT CAST(substr(v, 1000001, 5) AS TEXT) FROM b WHERE id = 2", s);
  CHECK(strcmp(s, "quire") == 0);
  qt_integrity(db);
  sqlite3_close(db);
  free(data);
  free(back);
}

static void vacuum(void) {
  sqlite3 *db = open_vol("vac");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
  qt_exec(db, "INSERT INTO t(v) SELECT randomblob(1000) FROM series(2500)");
  qt_exec(db, "CREATE INDEX tv ON t(substr(v, 1, 100))");
  unsigned long long before = vol_pages(db);
  qt_exec(db, "DELETE FROM t WHERE id % 4 != 0");
  qt_exec(db, "VACUUM");
  unsigned long long after = vol_pages(db);
  CHECKF(after < before / 2, "vacuum: %llu volume pages before, %llu after", before, after);
  check_size(db);
  qt_integrity(db);
  /* VACUUM INTO a plain file: a path goes to the default VFS. */
  char plain[4200], sql[4400];
  snprintf(plain, sizeof plain, "%s/vacuum-into.db", root);
  snprintf(sql, sizeof sql, "VACUUM INTO '%s'", plain);
  qt_exec(db, sql);
  sqlite3_int64 n = qt_int(db, "SELECT count(*) FROM t");
  sqlite3_close(db);
  struct stat sb;
  CHECKF(stat(plain, &sb) == 0 && sb.st_size > 0, "VACUUM INTO did not write %s", plain);
  sqlite3 *p = NULL;
  CHECK(sqlite3_open_v2(plain, &p, SQLITE_OPEN_READONLY, "unix") == SQLITE_OK);
  CHECK(qt_int(p, "SELECT count(*) FROM t") == n);
  qt_integrity(p);
  sqlite3_close(p);
}

static void backup_copy(sqlite3 *dst, sqlite3 *src) {
  sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
  QT_CHECK_DB(dst, b != NULL);
  CHECK(sqlite3_backup_step(b, 7) == SQLITE_OK); /* several steps */
  int rc;
  while ((rc = sqlite3_backup_step(b, 7)) == SQLITE_OK) {
  }
  CHECK(rc == SQLITE_DONE);
  QT_CHECK_DB(dst, sqlite3_backup_finish(b) == SQLITE_OK);
}

static void backup(void) {
  sqlite3 *db = open_vol("bk");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v)");
  qt_exec(db, "INSERT INTO t(v) SELECT hex(randomblob(60)) FROM series(3000)");
  /* quire → plain file */
  char plain[4200];
  snprintf(plain, sizeof plain, "%s/backup.db", root);
  sqlite3 *p = NULL;
  CHECK(sqlite3_open_v2(plain, &p, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix") == SQLITE_OK);
  backup_copy(p, db);
  CHECK(qt_int(p, "SELECT count(*) FROM t") == 3000);
  qt_integrity(p);
  /* plain file (another page size) → a new volume */
  qt_exec(p, "PRAGMA page_size = 1024; VACUUM");
  CHECK(qt_int(p, "PRAGMA page_size") == 1024);
  sqlite3 *q = open_vol("bk2");
  backup_copy(q, p);
  CHECK(qt_int(q, "SELECT count(*) FROM t") == 3000);
  CHECK(qt_int(q, "PRAGMA page_size") == 1024);
  qt_integrity(q);
  check_size(q);
  /* plain → an existing, larger volume (it shrinks) */
  qt_exec(db, "INSERT INTO t(v) SELECT hex(randomblob(200)) FROM series(3000)");
  backup_copy(db, p);
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 3000);
  qt_integrity(db);
  check_size(db);
  sqlite3_close(q);
  sqlite3_close(p);
  sqlite3_close(db);
  /* And PRAGMA quire_import does the same from a file name. */
  db = open_vol("imp");
  char sql[4400], out[512];
  snprintf(sql, sizeof sql, "PRAGMA quire_import = '%s'", plain);
  qt_text(db, sql, out);
  CHECKF(strstr(out, "imported") != NULL, "quire_import said: %s", out);
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 3000);
  qt_integrity(db);
  sqlite3_close(db);
}

/* Every page size under every journal mode but WAL: a database that grows,
 * shrinks (DELETE, VACUUM) and is reopened stays intact, and the volume
 * holds exactly its bytes rounded up to 4 KiB. */
static void page_sizes(void) {
  static const char *modes[] = {"delete", "truncate", "persist", "memory", "off"};
  for (int ps = 512; ps <= 65536; ps *= 2) {
    for (int m = 0; m < 5; m++) {
      char name[64];
      snprintf(name, sizeof name, "ps%d-%s", ps, modes[m]);
      sqlite3 *db = open_vol(name);
      qt_execf(db, "PRAGMA page_size = %d", ps);
      char jm[32];
      char sql[128];
      snprintf(sql, sizeof sql, "PRAGMA journal_mode = %s", modes[m]);
      qt_text(db, sql, jm);
      CHECKF(strcmp(jm, modes[m]) == 0, "journal_mode %s gave %s", modes[m], jm);
      qt_exec(db, "PRAGMA cache_size = 20"); /* spills */
      qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INT, v BLOB); CREATE INDEX tk ON t(k)");
      qt_exec(db, "INSERT INTO t(k, v) SELECT value % 101, randomblob(value % 700) FROM series(800)");
      qt_exec(db, "BEGIN; UPDATE t SET v = zeroblob(3) WHERE k < 50; ROLLBACK");
      qt_exec(db, "DELETE FROM t WHERE k % 3 = 0");
      CHECK(qt_int(db, "PRAGMA page_size") == ps);
      qt_integrity(db);
      check_size(db);
      qt_exec(db, "VACUUM");
      sqlite3_int64 n = qt_int(db, "SELECT count(*) FROM t"),
                    sum = qt_int(db, "SELECT sum(length(v)) FROM t");
      check_size(db);
      sqlite3_close(db);
      db = open_vol(name);
      CHECK(qt_int(db, "SELECT count(*) FROM t") == n);
      CHECK(qt_int(db, "SELECT sum(length(v)) FROM t") == sum);
      CHECK(qt_int(db, "PRAGMA page_size") == ps);
      qt_integrity(db);
      sqlite3_close(db);
    }
  }
}

static void wal_refused(void) {
  sqlite3 *db = open_vol("wal");
  qt_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)");
  char jm[32];
  qt_text(db, "PRAGMA journal_mode = WAL", jm);
  CHECKF(strcmp(jm, "delete") == 0, "journal_mode=WAL answered %s", jm);
  qt_exec(db, "INSERT INTO t VALUES (3)");
  qt_text(db, "PRAGMA journal_mode", jm);
  CHECK(strcmp(jm, "delete") == 0);
  qt_exec(db, "PRAGMA journal_mode = truncate");
  qt_text(db, "PRAGMA journal_mode = wal", jm);
  CHECK(strcmp(jm, "truncate") == 0);
  /* Exclusive locking would keep SQLite's cache across remote commits. */
  CHECK(qt_exec_rc(db, "PRAGMA locking_mode = EXCLUSIVE") == SQLITE_ERROR);
  CHECK(strstr(sqlite3_errmsg(db), "locking_mode=EXCLUSIVE") != NULL);
  char lm[32];
  qt_text(db, "PRAGMA locking_mode", lm);
  CHECK(strcmp(lm, "normal") == 0);
  sqlite3_close(db);
  db = open_vol("wal");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 3);
  qt_text(db, "PRAGMA journal_mode", jm);
  CHECK(strcmp(jm, "delete") == 0);
  qt_integrity(db);
  sqlite3_close(db);
}

/* A WAL-mode database imported as raw pages (its header says WAL) opens as
 * a rollback-journal database: the volume has no WAL file. */
static void wal_header(void) {
  char plain[4200], dir[4200], u[4400];
  snprintf(plain, sizeof plain, "%s/wal-mode.db", root);
  snprintf(dir, sizeof dir, "%s/rawimport", root);
  sqlite3 *p = NULL;
  CHECK(sqlite3_open_v2(plain, &p, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix") == SQLITE_OK);
  char jm[32];
  qt_text(p, "PRAGMA journal_mode = WAL", jm);
  CHECK(strcmp(jm, "wal") == 0);
  qt_exec(p, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3); PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(p);
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = dir;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, "walfile", QUIRE_CREATE, &v));
  CHECK_OK(quire_volume_import(v, plain));
  quire_volume_close(v);
  CHECK_OK(quire_client_close(c));
  snprintf(u, sizeof u, "file:walfile?vfs=quire&dir=%s", dir);
  sqlite3 *db = qt_open(u);
  qt_text(db, "PRAGMA journal_mode", jm);
  CHECK(strcmp(jm, "delete") == 0);
  CHECK(qt_int(db, "SELECT sum(x) FROM t") == 6);
  qt_exec(db, "INSERT INTO t VALUES (4)");
  qt_integrity(db);
  sqlite3_close(db);
}

static void locking(void) {
  sqlite3 *a = open_vol("locks"), *b = open_vol("locks");
  sqlite3_busy_timeout(b, 0);
  qt_exec(a, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INT)");
  qt_exec(a, "INSERT INTO t(v) SELECT value FROM series(100)");
  /* One writer at a time in the process. */
  qt_exec(a, "BEGIN IMMEDIATE");
  CHECK(qt_exec_rc(b, "BEGIN IMMEDIATE") == SQLITE_BUSY);
  /* Readers do not wait for the writer, and see the last commit. */
  CHECK(qt_int(b, "SELECT count(*) FROM t") == 100);
  qt_exec(a, "INSERT INTO t(v) VALUES (101); COMMIT");
  CHECK(qt_int(b, "SELECT count(*) FROM t") == 101);
  /* A read transaction keeps its snapshot while another connection commits. */
  qt_exec(b, "BEGIN");
  CHECK(qt_int(b, "SELECT count(*) FROM t") == 101);
  qt_exec(a, "INSERT INTO t(v) VALUES (102)");
  CHECK(qt_int(b, "SELECT count(*) FROM t") == 101);
  CHECK(qt_int(b, "SELECT max(v) FROM t") == 101);
  /* ... and cannot write on it: the head moved. */
  CHECK(qt_exec_rc(b, "INSERT INTO t(v) VALUES (-1)") == SQLITE_BUSY_SNAPSHOT);
  qt_exec(b, "ROLLBACK");
  CHECK(qt_int(b, "SELECT count(*) FROM t") == 102);
  qt_exec(b, "INSERT INTO t(v) VALUES (103)");
  /* Caches follow commits of the other connection, page by page. */
  for (int i = 0; i < 20; i++) {
    qt_execf(a, "UPDATE t SET v = v + 1000 WHERE id = %d", i + 1);
    CHECK(qt_int(b, "SELECT sum(v) FROM t") == qt_int(a, "SELECT sum(v) FROM t"));
    qt_execf(b, "UPDATE t SET v = v - 1000 WHERE id = %d", i + 1);
    CHECK(qt_int(a, "SELECT sum(v) FROM t") == qt_int(b, "SELECT sum(v) FROM t"));
  }
  /* PRAGMA data_version changes for the other connection's commits. */
  sqlite3_int64 dv = qt_int(b, "PRAGMA data_version");
  qt_exec(a, "INSERT INTO t(v) VALUES (104)");
  CHECK(qt_int(b, "PRAGMA data_version") != dv);
  qt_integrity(a);
  qt_integrity(b);
  sqlite3_close(a);
  sqlite3_close(b);
}

static void readonly(void) {
  sqlite3 *db = open_vol("ro");
  qt_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42)");
  sqlite3_close(db);
  db = qt_open_flags("file:ro?vfs=quire&mode=ro", SQLITE_OPEN_READONLY);
  CHECK(qt_int(db, "SELECT x FROM t") == 42);
  CHECK((qt_exec_rc(db, "INSERT INTO t VALUES (1)") & 0xff) == SQLITE_READONLY);
  sqlite3_close(db);
  /* mode=ro does not create a volume. */
  sqlite3 *n = NULL;
  CHECK(sqlite3_open_v2("file:nosuch?vfs=quire&mode=ro", &n, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) ==
        SQLITE_CANTOPEN);
  sqlite3_close(n);
  /* immutable=1: one snapshot for the handle's life. */
  db = qt_open_flags("file:ro?vfs=quire&immutable=1", SQLITE_OPEN_READONLY);
  CHECK(qt_int(db, "SELECT x FROM t") == 42);
  sqlite3_close(db);
}

static void names(void) {
  sqlite3 *db = open_vol("named");
  qt_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES ('hello')");
  char st[4096], vid[64];
  qt_status(db, st, sizeof st);
  qt_kv(st, "vid", vid, sizeof vid);
  CHECK(strlen(vid) == 22);
  sqlite3_close(db);
  /* By volume id. */
  char u[512], s[64];
  uri(u, sizeof u, vid, NULL);
  db = qt_open(u);
  qt_text(db, "SELECT x FROM t", s);
  CHECK(strcmp(s, "hello") == 0);
  sqlite3_close(db);
  /* vid= binds another name to the same volume. */
  char extra[96];
  snprintf(extra, sizeof extra, "vid=%s", vid);
  uri(u, sizeof u, "alias", extra);
  db = qt_open(u);
  qt_text(db, "SELECT x FROM t", s);
  CHECK(strcmp(s, "hello") == 0);
  char vols[4096];
  qt_text(db, "PRAGMA quire_volumes", vols);
  CHECK(strstr(vols, vid) != NULL && strstr(vols, "named") != NULL);
  sqlite3_close(db);
  /* A name bound elsewhere is refused. */
  sqlite3 *bad = NULL;
  uri(u, sizeof u, "crud", extra);
  CHECK(sqlite3_open_v2(u, &bad, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL) == SQLITE_CANTOPEN);
  sqlite3_close(bad);
  /* A malformed vid= is refused. */
  uri(u, sizeof u, "x", "vid=nope");
  CHECK(sqlite3_open_v2(u, &bad, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL) == SQLITE_CANTOPEN);
  sqlite3_close(bad);
  /* ATTACH a plain file from a quire connection: a path goes to the
   * default VFS; and a second volume. */
  db = open_vol("named");
  char sql[4400];
  snprintf(sql, sizeof sql, "ATTACH '%s/attached.db' AS p", root);
  qt_exec(db, sql);
  qt_exec(db, "CREATE TABLE p.u(y); INSERT INTO p.u SELECT x FROM t");
  qt_exec(db, "ATTACH 'file:crud?vfs=quire' AS c");
  CHECK(qt_int(db, "SELECT count(*) FROM c.t") > 0);
  /* A transaction over two volumes and a file. */
  qt_exec(db, "BEGIN; INSERT INTO t VALUES ('a'); INSERT INTO p.u VALUES ('b'); DELETE FROM c.t WHERE id = "
              "1; COMMIT");
  CHECK(qt_int(db, "SELECT count(*) FROM c.t WHERE id = 1") == 0);
  sqlite3_close(db);
  char path[4200];
  snprintf(path, sizeof path, "%s/attached.db", root);
  sqlite3 *p = NULL;
  CHECK(sqlite3_open_v2(path, &p, SQLITE_OPEN_READONLY, "unix") == SQLITE_OK);
  CHECK(qt_int(p, "SELECT count(*) FROM u") == 2);
  sqlite3_close(p);
}

static void pragmas(void) {
  sqlite3 *db = open_vol("pragmas");
  qt_exec(db, "CREATE TABLE t(x); INSERT INTO t SELECT value FROM series(100)");
  char out[8192], v[256];
  qt_status(db, out, sizeof out);
  static const char *keys[] = {"volume",        "vid",        "client",     "data_dir",         "state",
                               "local_lsn",     "remote_lsn", "page_count", "unpushed_commits", "pages_local",
                               "pages_pending", "snapshot"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char k[64];
    snprintf(k, sizeof k, "%s=", keys[i]);
    CHECKF(strstr(out, k) != NULL, "quire_status lacks %s:\n%s", keys[i], out);
  }
  qt_kv(out, "volume", v, sizeof v);
  CHECK(strcmp(v, "pragmas") == 0);
  qt_kv(out, "state", v, sizeof v);
  CHECK(strcmp(v, "ok") == 0);
  CHECK(qt_kv_u64(out, "local_lsn") == 2);
  qt_text(db, "PRAGMA quire_snapshot", out);
  CHECK(qt_kv_u64(out, "lsn") == 2);
  qt_exec(db, "BEGIN; SELECT count(*) FROM t");
  qt_text(db, "PRAGMA quire_snapshot", out);
  CHECK(strstr(out, "this transaction") != NULL);
  qt_exec(db, "COMMIT");
  qt_text(db, "PRAGMA quire_pages", out);
  CHECK(qt_kv_u64(out, "sqlite_page_size") == 4096 && qt_kv_u64(out, "page_count") == 2);
  qt_text(db, "PRAGMA quire_stats", out);
  CHECK(strstr(out, "commits=") != NULL);
  qt_text(db, "PRAGMA quire_version", out);
  CHECK(strncmp(out, "quire ", 6) == 0 && strstr(out, sqlite3_libversion()) != NULL);
  /* Errors carry quire's message. */
  CHECK(qt_exec_rc(db, "PRAGMA quire_nonsense") == SQLITE_ERROR);
  CHECK(strstr(sqlite3_errmsg(db), "unknown pragma quire_nonsense") != NULL);
  CHECK(qt_exec_rc(db, "PRAGMA quire_push") == SQLITE_ERROR);
  CHECK(strstr(sqlite3_errmsg(db), "local only") != NULL);
  /* quire_stats as a table. */
  CHECK(qt_int(db, "SELECT count(*) FROM quire_stats WHERE scope = 'volume'") >= 20);
  CHECK(qt_stat(db, "commits") == 2);
  CHECK(qt_stat(db, "reads") > 0);
  CHECK(qt_int(db, "SELECT count(*) FROM quire_stats('main') WHERE name = 'fetch_round_trips'") == 2);
  CHECK(qt_int(db, "SELECT count(*) FROM quire_stats('temp')") == 0);
  /* Other pragmas pass through. */
  CHECK(qt_int(db, "PRAGMA user_version") == 0);
  qt_exec(db, "PRAGMA user_version = 7");
  CHECK(qt_int(db, "PRAGMA user_version") == 7);
  sqlite3_close(db);
}

/* Several threads, each with its own connection on one volume: writers
 * move amounts between rows under BEGIN IMMEDIATE (the volume's write lock
 * serialises them, the busy handler waits), readers check that every
 * snapshot has the same total. */
#define THREADS_ROWS 50
static _Atomic int threads_stop;

static void *thread_writer(void *arg) {
  (void)arg;
  sqlite3 *db = open_vol("threads");
  sqlite3_busy_timeout(db, 10000);
  uint64_t x = (uint64_t)(uintptr_t)&db;
  for (int i = 0; i < 150; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    int a = 1 + (int)((x >> 33) % THREADS_ROWS), b = 1 + (int)((x >> 17) % THREADS_ROWS);
    char sql[256];
    snprintf(sql, sizeof sql,
             "BEGIN IMMEDIATE; UPDATE acct SET bal = bal - 3 WHERE id = %d; UPDATE acct SET bal = bal + 3 "
             "WHERE id = "
             "%d; COMMIT",
             a, b);
    qt_exec(db, sql);
  }
  sqlite3_close(db);
  return NULL;
}

static void *thread_reader(void *arg) {
  long *snapshots = arg;
  sqlite3 *db = open_vol("threads");
  while (!threads_stop) {
    qt_exec(db, "BEGIN");
    CHECK(qt_int(db, "SELECT sum(bal) FROM acct") == THREADS_ROWS * 100);
    CHECK(qt_int(db, "SELECT count(*) FROM acct") == THREADS_ROWS);
    qt_exec(db, "COMMIT");
    (*snapshots)++;
  }
  sqlite3_close(db);
  return NULL;
}

static void threads(void) {
  sqlite3 *db = open_vol("threads");
  qt_exec(db, "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INT)");
  qt_execf(db, "INSERT INTO acct SELECT value, 100 FROM series(%d)", THREADS_ROWS);
  pthread_t w[4], r[2];
  long snaps[2] = {0, 0};
  threads_stop = 0;
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&r[i], NULL, thread_reader, &snaps[i]) == 0);
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&w[i], NULL, thread_writer, NULL) == 0);
  for (int i = 0; i < 4; i++) pthread_join(w[i], NULL);
  threads_stop = 1;
  for (int i = 0; i < 2; i++) pthread_join(r[i], NULL);
  CHECK(qt_int(db, "SELECT sum(bal) FROM acct") == THREADS_ROWS * 100);
  CHECK(local_lsn(db) == 2 + 4 * 150);
  qt_integrity(db);
  printf("threads: 600 transfers by 4 writer threads, %ld consistent snapshots read by 2 reader threads\n",
         snaps[0] + snaps[1]);
  sqlite3_close(db);
}

/* Temp tables, big sorts and sub-journals all live in memory. */
static void temp_files(void) {
  sqlite3 *db = open_vol("temp");
  qt_exec(db, "PRAGMA cache_size = 10");
  qt_exec(db, "CREATE TEMP TABLE tt(v); INSERT INTO tt SELECT randomblob(1000) FROM series(3000)");
  qt_exec(db, "CREATE TABLE t(v); INSERT INTO t SELECT v FROM tt ORDER BY v");
  CHECK(qt_int(db, "SELECT count(*) FROM (SELECT DISTINCT v FROM t ORDER BY 1)") == 3000);
  qt_integrity(db);
  sqlite3_close(db);
}

/* The VFS methods driven directly: the batch-atomic file controls that
 * SQLite builds with SQLITE_ENABLE_BATCH_ATOMIC_WRITE send (Debian's does
 * not), and the commit at SQLITE_FCNTL_SYNC. */
static void batch_atomic(void) {
  sqlite3_vfs *vfs = sqlite3_vfs_find("quire");
  CHECK(vfs != NULL);
  /* A URI name as SQLite hands it over: the name, then key\0value pairs. */
  sqlite3_filename name = sqlite3_create_filename("batch", "", "", 0, NULL);
  sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile), *g = calloc(1, (size_t)vfs->szOsFile);
  int flags = SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  CHECK(vfs->xOpen(vfs, name, f, flags, &flags) == SQLITE_OK);
  CHECK(vfs->xOpen(vfs, name, g, flags, &flags) == SQLITE_OK);
  const sqlite3_io_methods *m = f->pMethods;
  CHECK(m->xDeviceCharacteristics(f) & SQLITE_IOCAP_BATCH_ATOMIC);
  CHECK(!(m->xDeviceCharacteristics(f) & SQLITE_IOCAP_ATOMIC));
  uint8_t page[4096], back[4096];
  memset(page, 0xab, sizeof page);
  /* A batch that rolls back leaves nothing. */
  CHECK(m->xLock(f, SQLITE_LOCK_SHARED) == SQLITE_OK);
  CHECK(m->xLock(f, SQLITE_LOCK_RESERVED) == SQLITE_OK);
  CHECK(m->xLock(f, SQLITE_LOCK_EXCLUSIVE) == SQLITE_OK);
  int dummy = 0;
  CHECK(m->xFileControl(f, SQLITE_FCNTL_BEGIN_ATOMIC_WRITE, &dummy) == SQLITE_OK);
  CHECK(m->xWrite(f, page, 4096, 0) == SQLITE_OK);
  CHECK(m->xWrite(f, page, 100, 8192) == SQLITE_OK);
  sqlite3_int64 size;
  CHECK(m->xFileSize(f, &size) == SQLITE_OK && size == 3 * 4096);
  CHECK(m->xFileControl(f, SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE, &dummy) == SQLITE_OK);
  CHECK(m->xFileSize(f, &size) == SQLITE_OK && size == 0);
  /* One that commits is one local commit, visible to the other handle at
   * its next lock but not in the snapshot it holds. */
  CHECK(g->pMethods->xLock(g, SQLITE_LOCK_SHARED) == SQLITE_OK);
  CHECK(m->xFileControl(f, SQLITE_FCNTL_BEGIN_ATOMIC_WRITE, &dummy) == SQLITE_OK);
  CHECK(m->xWrite(f, page, 4096, 0) == SQLITE_OK);
  CHECK(m->xWrite(f, page, 4096, 4096) == SQLITE_OK);
  CHECK(m->xFileControl(f, SQLITE_FCNTL_COMMIT_ATOMIC_WRITE, &dummy) == SQLITE_OK);
  CHECK(g->pMethods->xFileSize(g, &size) == SQLITE_OK && size == 0);
  CHECK(g->pMethods->xRead(g, back, 16, 0) == SQLITE_IOERR_SHORT_READ);
  CHECK(g->pMethods->xUnlock(g, SQLITE_LOCK_NONE) == SQLITE_OK);
  CHECK(g->pMethods->xLock(g, SQLITE_LOCK_SHARED) == SQLITE_OK);
  CHECK(g->pMethods->xFileSize(g, &size) == SQLITE_OK && size == 2 * 4096);
  CHECK(g->pMethods->xRead(g, back, 4096, 4096) == SQLITE_OK && memcmp(back, page, 4096) == 0);
  /* The other handle cannot take the write lock while f holds it. */
  CHECK(g->pMethods->xLock(g, SQLITE_LOCK_RESERVED) == SQLITE_BUSY);
  int res = 0;
  CHECK(g->pMethods->xCheckReservedLock(g, &res) == SQLITE_OK && res == 1);
  /* A spilled write before the batch: SQLite must fall back to its journal. */
  CHECK(m->xWrite(f, page, 10, 50) == SQLITE_OK);
  CHECK(m->xFileControl(f, SQLITE_FCNTL_BEGIN_ATOMIC_WRITE, &dummy) == SQLITE_IOERR_BEGIN_ATOMIC);
  /* The ordinary commit point: SQLITE_FCNTL_SYNC. */
  CHECK(m->xFileControl(f, SQLITE_FCNTL_SYNC, NULL) == SQLITE_OK);
  CHECK(m->xUnlock(f, SQLITE_LOCK_NONE) == SQLITE_OK);
  CHECK(g->pMethods->xUnlock(g, SQLITE_LOCK_NONE) == SQLITE_OK);
  CHECK(g->pMethods->xLock(g, SQLITE_LOCK_SHARED) == SQLITE_OK);
  /* SQLite's cache check at a new lock (until it is answered, a write lock
   * on the new snapshot is refused: the cache may be stale). */
  CHECK(g->pMethods->xRead(g, back, 16, 24) == SQLITE_OK);
  CHECK(g->pMethods->xRead(g, back, 10, 50) == SQLITE_OK && memcmp(back, page, 10) == 0);
  /* A write transaction that ends without the control rolled back. */
  CHECK(g->pMethods->xLock(g, SQLITE_LOCK_RESERVED) == SQLITE_OK);
  memset(page, 0x11, sizeof page);
  CHECK(g->pMethods->xWrite(g, page, 4096, 0) == SQLITE_OK);
  CHECK(g->pMethods->xUnlock(g, SQLITE_LOCK_SHARED) == SQLITE_OK);
  CHECK(g->pMethods->xRead(g, back, 16, 0) == SQLITE_OK && back[0] == 0xab);
  CHECK(g->pMethods->xUnlock(g, SQLITE_LOCK_NONE) == SQLITE_OK);
  CHECK(m->xClose(f) == SQLITE_OK);
  CHECK(g->pMethods->xClose(g) == SQLITE_OK);
  free(f);
  free(g);
  sqlite3_free_filename(name);
}

int main(void) {
  test_seed();
  root = test_tmpdir("sqlite_basic");
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/client", root);
  qt_client_env(dir, NULL, 0);
  qt_register();
  static const struct {
    const char *name;
    void (*fn)(void);
  } scenarios[] = {{"crud", crud},
                   {"transactions", transactions},
                   {"large_txn", large_txn},
                   {"blobs", blobs},
                   {"vacuum", vacuum},
                   {"backup", backup},
                   {"page_sizes", page_sizes},
                   {"wal_refused", wal_refused},
                   {"wal_header", wal_header},
                   {"locking", locking},
                   {"readonly", readonly},
                   {"names", names},
                   {"pragmas", pragmas},
                   {"temp_files", temp_files},
                   {"batch_atomic", batch_atomic},
                   {"threads", threads}};
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
    uint64_t t0 = qt_now_ms();
    scenarios[i].fn();
    printf("%-14s %6llu ms\n", scenarios[i].name, (unsigned long long)(qt_now_ms() - t0));
  }
  test_rmtree(root);
  free(root);
  return test_done("test_sqlite_basic");
}
