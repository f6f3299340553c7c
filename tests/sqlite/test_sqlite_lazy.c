/*
 * Laziness: a 256 MiB SQLite database (65,536 pages of 4 KiB) in a volume
 * on a real `quire server`; a cold client (a fresh data directory) opens it
 * through the quire VFS and
 *   - runs an indexed point query: it may fetch at most 64 pages (a b-tree
 *     lookup through an index and the table touches about ten); the count
 *     is asserted and the round trips printed;
 *   - runs a full-table aggregate: the scan's read-ahead fetches the table
 *     in far fewer round trips than pages (printed; asserted under a bound).
 * The database is built as a plain file with SQLite and imported as raw
 * pages by a quire client (quire_volume_import), then pushed. Importing and
 * pushing 256 MiB takes minutes in the sanitizer build, so the CI mode uses
 * a 32 MiB database (8,192 pages) with the same bound on the point query
 * and scans a range for the aggregate; QUIRE_TEST_LONG=1 runs the 256 MiB
 * database and scans all of it.
 */
#include <sys/stat.h>

#include "sqlite_test.h"

static char *root;
static sqlite3_int64 target_pages;
static struct qt_server srv;
static char vid[64];

struct reader_args {
  sqlite3_int64 pages, rows;
};

static int reader_main(void *arg) {
  struct reader_args *a = arg;
  char dir[4200], u[256];
  snprintf(dir, sizeof dir, "%s/cold", root);
  qt_client_env(dir, &srv, 0);
  setenv("QUIRE_FETCH_TIMEOUT_MS", "60000", 1);
  qt_register();
  snprintf(u, sizeof u, "file:big?vfs=quire&vid=%s", vid);
  sqlite3 *db = qt_open(u);
  /* An indexed point query on a cold client. */
  uint64_t t0 = qt_now_ms();
  sqlite3_int64 key = qt_big_key(4242);
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT id FROM t WHERE k = %lld", key);
  CHECK(qt_int(db, sql) == 4242);
  uint64_t t1 = qt_now_ms();
  sqlite3_int64 fetched = qt_stat(db, "fetch_pages"), trips = qt_stat(db, "fetch_round_trips");
  printf(
      "cold indexed point query on %lld pages (%lld MiB): %lld pages fetched in %lld round trips, %llu ms\n",
      (long long)a->pages, (long long)(a->pages * 4096 >> 20), (long long)fetched, (long long)trips,
      (unsigned long long)(t1 - t0));
  CHECKF(fetched <= 64, "a point query fetched %lld pages", (long long)fetched);
  snprintf(sql, sizeof sql, "SELECT length(pad) FROM t WHERE k = %lld", qt_big_key(7777));
  CHECK(qt_int(db, sql) == 3000);
  sqlite3_int64 fetched2 = qt_stat(db, "fetch_pages");
  printf("a second point query: %lld more pages\n", (long long)(fetched2 - fetched));
  /* A full-table aggregate (CI: a range of the table) uses read-ahead. */
  sqlite3_int64 upto = test_long_mode() ? a->rows : a->rows / 2;
  snprintf(sql, sizeof sql, "SELECT sum(length(pad)) FROM t WHERE id <= %lld", upto);
  sqlite3_int64 before_pages = qt_stat(db, "fetch_pages"), before_trips = qt_stat(db, "fetch_round_trips");
  uint64_t t2 = qt_now_ms();
  CHECK(qt_int(db, sql) == upto * 3000);
  uint64_t t3 = qt_now_ms();
  sqlite3_int64 scan_pages = qt_stat(db, "fetch_pages") - before_pages,
                scan_trips = qt_stat(db, "fetch_round_trips") - before_trips;
  printf("cold aggregate over %lld rows: %lld pages fetched in %lld round trips (%.1f pages per trip), "
         "read-ahead "
         "%lld pages, %lld used, %llu ms\n",
         (long long)upto, (long long)scan_pages, (long long)scan_trips,
         scan_trips ? (double)scan_pages / (double)scan_trips : 0.0, (long long)qt_stat(db, "prefetch_pages"),
         (long long)qt_stat(db, "prefetch_used"), (unsigned long long)(t3 - t2));
  CHECKF(scan_trips * 8 < scan_pages, "the scan took %lld round trips for %lld pages", (long long)scan_trips,
         (long long)scan_pages);
  sqlite3_close(db);
  return 0;
}

int main(void) {
  test_seed();
  target_pages = test_long_mode() ? 65536 : 8192;
  root = test_tmpdir("sqlite_lazy");
  snprintf(srv.data, sizeof srv.data, "%s/server", root);
  qt_server_start(&srv);
  char plain[4200];
  snprintf(plain, sizeof plain, "%s/big.db", root);
  uint64_t t0 = qt_now_ms();
  struct reader_args a;
  a.pages = qt_build_big(plain, target_pages, &a.rows);
  printf("built a %lld-page database in %llu ms\n", (long long)a.pages,
         (unsigned long long)(qt_now_ms() - t0));
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/writer", root);
  qt_import_push(dir, &srv, plain, vid);
  unlink(plain);
  CHECK(qt_wait(qt_fork(reader_main, &a)) == 0);
  qt_server_stop(&srv, SIGTERM);
  test_rmtree(root);
  free(root);
  return test_done("test_sqlite_lazy");
}
