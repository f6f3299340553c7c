/*
 * bench/sqlite/bench_sqlite_cold.c — cold start of a SQLite database in a
 * volume: a 256 MiB database (65,536 pages) pushed to a `quire server`
 * (a child process on loopback), then, several times, a fresh client (an
 * empty data directory) opens it through the quire VFS and runs one indexed
 * point query. Prints the latency of open + first query, the pages fetched
 * and the round trips, beside the same query on the plain file through the
 * unix VFS (its pages in the OS cache).
 *   bench_sqlite_cold [--pages N] [--runs R]
 */
#include <sys/stat.h>

#include "sqlite_test.h"

static char *root;
static struct qt_server srv;
static char vid[64];
static long pages = 65536, runs = 5;

struct result {
  double ms;
  long long fetched, trips;
};

static int cold_main(void *arg) {
  long run = (long)(intptr_t)arg;
  char dir[4200], u[256], sql[256], path[4200];
  snprintf(dir, sizeof dir, "%s/cold%ld", root, run);
  qt_client_env(dir, &srv, 0);
  qt_register();
  long key = (long)((run * 7919 + 4242) % (pages * 99 / 100)) + 1;
  snprintf(u, sizeof u, "file:big?vfs=quire&vid=%s", vid);
  snprintf(sql, sizeof sql, "SELECT length(pad) FROM t WHERE k = %lld", qt_big_key(key));
  uint64_t t0 = qt_now_ms();
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  sqlite3 *db = qt_open(u);
  CHECK(qt_int(db, sql) == 3000);
  clock_gettime(CLOCK_MONOTONIC, &b);
  (void)t0;
  struct result r = {(double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6,
                     qt_stat(db, "fetch_pages"), qt_stat(db, "fetch_round_trips")};
  sqlite3_close(db);
  snprintf(path, sizeof path, "%s/result%ld", root, run);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fprintf(f, "%f %lld %lld\n", r.ms, r.fetched, r.trips);
  fclose(f);
  return 0;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--pages") == 0)
      pages = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--runs") == 0)
      runs = atol(argv[i + 1]);
  }
  if (pages < 1000 || pages > 65536 || runs < 1 || runs > 100) {
    fprintf(stderr, "usage: bench_sqlite_cold [--pages 1000..65536] [--runs 1..100]\n");
    return 2;
  }
  if (!getenv("QUIRE_BIN")) setenv("QUIRE_BIN", QUIRE_BIN_PATH, 1);
  root = test_tmpdir("bench_sqlite_cold");
  snprintf(srv.data, sizeof srv.data, "%s/server", root);
  qt_server_start(&srv);
  char plain[4200];
  snprintf(plain, sizeof plain, "%s/big.db", root);
  uint64_t t0 = qt_now_ms();
  sqlite3_int64 rows, n = qt_build_big(plain, pages, &rows);
  uint64_t t1 = qt_now_ms();
  char dir[4200], path[4200];
  snprintf(dir, sizeof dir, "%s/writer", root);
  qt_import_push(dir, &srv, plain, vid);
  uint64_t t2 = qt_now_ms();
  FILE *f;
  printf("a %lld-page database (%lld MiB): built in %llu ms, imported and pushed in %llu ms\n", (long long)n,
         (long long)(n * 4096 >> 20), (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1));
  double ms[100];
  long long fetched = 0, trips = 0;
  for (long r = 0; r < runs; r++) {
    CHECK(qt_wait(qt_fork(cold_main, (void *)(intptr_t)r)) == 0);
    snprintf(path, sizeof path, "%s/result%ld", root, r);
    f = fopen(path, "r");
    long long fe, tr;
    CHECK(f && fscanf(f, "%lf %lld %lld", &ms[r], &fe, &tr) == 3);
    fclose(f);
    fetched += fe, trips += tr;
  }
  qsort(ms, (size_t)runs, sizeof ms[0], cmp_double);
  /* The same query on the plain file (OS cache warm from building it). */
  sqlite3 *db = NULL;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  CHECK(sqlite3_open_v2(plain, &db, SQLITE_OPEN_READONLY, "unix") == SQLITE_OK);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT length(pad) FROM t WHERE k = %lld", qt_big_key(rows / 2 + 1));
  CHECK(qt_int(db, sql) == 3000);
  clock_gettime(CLOCK_MONOTONIC, &b);
  sqlite3_close(db);
  double plain_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
  printf("cold point query (open + first indexed lookup, fresh data directory), %ld runs:\n", runs);
  printf("  quire VFS: median %.1f ms (min %.1f, max %.1f), %.1f pages fetched of %lld in %.1f round trips\n",
         ms[runs / 2], ms[0], ms[runs - 1], (double)fetched / (double)runs, (long long)n,
         (double)trips / (double)runs);
  printf("  unix VFS, local file in the OS cache: %.2f ms\n", plain_ms);
  qt_server_stop(&srv, SIGTERM);
  test_rmtree(root);
  free(root);
  return 0;
}
