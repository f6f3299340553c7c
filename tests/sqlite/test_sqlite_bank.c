/*
 * The bank workload: N accounts in one volume, several writer processes
 * (each with its own data directory, autosync on) moving money between
 * them through a real `quire server`, and a checker process reading. While
 * they run, writers are killed with SIGKILL and restarted on the same data
 * directory, and the server is killed or stopped and restarted on the same
 * ports and data.
 *
 * Invariants:
 *   - the total balance is the same in every snapshot any process reads
 *     (the checker's read transactions, and every writer transaction);
 *   - every account's balance equals its opening balance plus what the
 *     ledger says came in minus what went out;
 *   - no transfer a writer saw pushed (PRAGMA quire_push reported nothing
 *     unpushed after its commit; recorded in a file with fsync) is ever
 *     lost: a fresh client at the end finds each one in the ledger with its
 *     amount; PRAGMA integrity_check is "ok".
 * Writers resolve conflicts (another writer pushed first) with PRAGMA
 * quire_reset, which drops their unpushed transfers, as an application would.
 *
 * CI mode: ~20 s of chaos with 3 writers; QUIRE_TEST_LONG=1: 3 minutes with
 * 5 writers and more accounts.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "sqlite_test.h"

#define OPENING 1000

static char *root;
static struct qt_server srv;
static char vid[64];
static int naccounts;

static int stop_requested(void) {
  char p[4200];
  snprintf(p, sizeof p, "%s/stop", root);
  return access(p, F_OK) == 0;
}

/* Opens the bank volume for a client with its own data directory. While
 * the server is down a page that is not local yet cannot be read, so the
 * open (which reads the header) is retried for up to 30 s. */
static sqlite3 *open_bank(const char *dir) {
  char d[4200], u[256];
  snprintf(d, sizeof d, "%s/%s", root, dir);
  qt_client_env(d, &srv, 1);
  setenv("QUIRE_FETCH_TIMEOUT_MS", "2000", 1);
  setenv("QUIRE_CLOSE_PUSH_MS", "3000", 1);
  qt_register();
  snprintf(u, sizeof u, "file:bank?vfs=quire&vid=%s", vid);
  uint64_t deadline = qt_now_ms() + 30000;
  for (;;) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(u, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
    if (rc == SQLITE_OK) rc = qt_exec_rc(db, "SELECT count(*) FROM accounts");
    if (rc == SQLITE_OK) {
      sqlite3_busy_timeout(db, 50);
      return db;
    }
    CHECKF((rc & 0xff) == SQLITE_IOERR && qt_now_ms() < deadline, "open %s: %s (%d)", dir,
           db ? sqlite3_errmsg(db) : "?", rc);
    sqlite3_close(db);
    qt_sleep_ms(100);
  }
}

static int state_is(sqlite3 *db, const char *want) {
  char st[4096], s[32];
  if (qt_text_rc(db, "PRAGMA quire_status", st, sizeof st) != SQLITE_OK) return 0;
  qt_kv(st, "state", s, sizeof s);
  return strcmp(s, want) == 0;
}

/* ---- setup --------------------------------------------------------------------- */

static int setup_main(void *arg) {
  int *fd = arg;
  char d[4200];
  snprintf(d, sizeof d, "%s/setup", root);
  qt_client_env(d, &srv, 1);
  qt_register();
  sqlite3 *db = qt_open("file:bank?vfs=quire");
  qt_exec(db, "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))");
  qt_exec(db, "CREATE TABLE ledger(tid TEXT PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER)");
  qt_exec(db, "CREATE INDEX ledger_src ON ledger(src); CREATE INDEX ledger_dst ON ledger(dst)");
  qt_execf(db, "INSERT INTO accounts SELECT value, %d FROM series(%d)", OPENING, naccounts);
  char out[512], st[4096];
  qt_text(db, "PRAGMA quire_push", out);
  CHECK(qt_kv_u64(out, "unpushed_commits") == 0);
  qt_text(db, "PRAGMA quire_status", st);
  qt_kv(st, "vid", out, sizeof out);
  CHECK(write(*fd, out, 22) == 22);
  sqlite3_close(db);
  return 0;
}

/* ---- writers ------------------------------------------------------------------- */

struct pending {
  char tid[64];
  int amount;
};

static void record_pushed(int fd, struct pending *p, int n) {
  char line[128];
  for (int i = 0; i < n; i++) {
    int len = snprintf(line, sizeof line, "%s %d\n", p[i].tid, p[i].amount);
    CHECK(write(fd, line, (size_t)len) == len);
  }
  CHECK(fdatasync(fd) == 0);
}

/* One transfer in its own write transaction: SQLITE_OK, or the code that
 * stopped it (the transaction is rolled back). */
static int transfer(sqlite3 *db, const char *tid, int *amount_out) {
  int rc = qt_exec_rc(db, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) return rc;
  int src = 1 + (int)test_rand_below((uint64_t)naccounts),
      dst = 1 + (int)test_rand_below((uint64_t)naccounts - 1);
  if (dst >= src) dst++;
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT balance FROM accounts WHERE id = %d", src);
  sqlite3_int64 bal = qt_int_rc(db, sql, &rc);
  if (rc == SQLITE_OK) {
    sqlite3_int64 total = qt_int_rc(db, "SELECT sum(balance) FROM accounts", &rc);
    if (rc == SQLITE_OK)
      CHECKF(total == (sqlite3_int64)naccounts * OPENING, "writer %d: total %lld in a write transaction",
             getpid(), (long long)total);
  }
  int amount = bal > 0 ? 1 + (int)test_rand_below((uint64_t)(bal < 50 ? bal : 50)) : 0;
  if (rc == SQLITE_OK && amount) {
    snprintf(sql, sizeof sql,
             "UPDATE accounts SET balance = balance - %d WHERE id = %d; UPDATE accounts SET balance = "
             "balance + %d "
             "WHERE id = %d; INSERT INTO ledger VALUES ('%s', %d, %d, %d)",
             amount, src, amount, dst, tid, src, dst, amount);
    rc = qt_exec_rc(db, sql);
  }
  if (rc == SQLITE_OK) rc = qt_exec_rc(db, "COMMIT");
  if (rc != SQLITE_OK) {
    if (!sqlite3_get_autocommit(db)) qt_exec_rc(db, "ROLLBACK");
    return rc;
  }
  *amount_out = amount;
  return SQLITE_OK;
}

static int writer_main(void *arg) {
  int id = (int)(intptr_t)arg;
  char dir[32], path[4200];
  snprintf(dir, sizeof dir, "w%d", id);
  snprintf(path, sizeof path, "%s/pushed-w%d", root, id);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  CHECK(fd >= 0);
  test_seed();
  sqlite3 *db = open_bank(dir);
  struct pending pend[64];
  int npend = 0, seq = 0, commits = 0, resets = 0, pushes = 0;
  int stopping = 0;
  uint64_t stop_deadline = 0;
  for (;;) {
    if (!stopping && stop_requested()) {
      stopping = 1;
      stop_deadline = qt_now_ms() + 30000;
    }
    if (stopping && (npend == 0 || qt_now_ms() > stop_deadline)) break;
    int rc = SQLITE_OK, amount = 0;
    if (!stopping && npend < 60) {
      struct pending *p = &pend[npend];
      snprintf(p->tid, sizeof p->tid, "w%d-%d-%d", id, getpid(), seq);
      rc = transfer(db, p->tid, &amount);
      if (rc == SQLITE_OK) {
        seq++;
        commits++;
        if (amount) p->amount = amount, npend++;
      }
    }
    if (rc == SQLITE_OK && (npend >= 8 || stopping || test_rand_below(4) == 0)) {
      char out[512];
      int prc = qt_text_rc(db, "PRAGMA quire_push", out, sizeof out);
      if (prc == SQLITE_OK && qt_kv_u64(out, "unpushed_commits") == 0) {
        record_pushed(fd, pend, npend);
        npend = 0;
        pushes++;
      } else if (prc != SQLITE_OK && strstr(sqlite3_errmsg(db), "conflict")) {
        rc = SQLITE_BUSY; /* resolved below */
      } else if (stopping) {
        qt_sleep_ms(100); /* the server may be restarting */
      }
    }
    if (rc == SQLITE_OK) continue;
    if ((rc & 0xff) == SQLITE_BUSY && state_is(db, "conflict")) {
      /* Another writer pushed first: take the remote head, dropping the
       * unpushed transfers (never reported as pushed). */
      int rrc = qt_exec_rc(db, "PRAGMA quire_reset");
      if (rrc == SQLITE_OK) {
        npend = 0;
        resets++;
      } else {
        qt_sleep_ms(50);
      }
    } else if ((rc & 0xff) == SQLITE_IOERR) {
      qt_sleep_ms(50); /* a page not local while the server is down */
    } else {
      CHECKF((rc & 0xff) == SQLITE_BUSY, "writer %d: transfer failed with %d (%s)", id, rc,
             sqlite3_errmsg(db));
    }
  }
  sqlite3_close(db);
  close(fd);
  char stats[4200];
  snprintf(stats, sizeof stats, "%s/stats-w%d-%d", root, id, getpid());
  FILE *f = fopen(stats, "w");
  if (f) {
    fprintf(f, "%d %d %d\n", commits, resets, pushes);
    fclose(f);
  }
  return npend ? 2 : 0;
}

/* ---- checker ------------------------------------------------------------------- */

static int checker_main(void *arg) {
  (void)arg;
  sqlite3 *db = open_bank("checker");
  long snapshots = 0, full = 0, errors = 0;
  sqlite3_int64 last_rows = -1;
  while (!stop_requested()) {
    int rc = qt_exec_rc(db, "BEGIN");
    sqlite3_int64 total = -1, rows = -1;
    if (rc == SQLITE_OK) total = qt_int_rc(db, "SELECT sum(balance) FROM accounts", &rc);
    if (rc == SQLITE_OK) rows = qt_int_rc(db, "SELECT count(*) FROM ledger", &rc);
    if (rc == SQLITE_OK) {
      CHECKF(total == (sqlite3_int64)naccounts * OPENING, "checker: total %lld in a snapshot",
             (long long)total);
      snapshots++;
      if (rows != last_rows) {
        /* Every account agrees with the ledger in this same snapshot. */
        sqlite3_int64 bad =
            qt_int_rc(db,
                      "SELECT count(*) FROM accounts a WHERE a.balance != 1000 + (SELECT "
                      "coalesce(sum(amount), 0) FROM ledger "
                      "WHERE dst = a.id) - (SELECT coalesce(sum(amount), 0) FROM ledger WHERE src = a.id)",
                      &rc);
        if (rc == SQLITE_OK) {
          CHECKF(bad == 0, "checker: %lld accounts disagree with the ledger", (long long)bad);
          full++;
          last_rows = rows;
        }
      }
    }
    if (rc != SQLITE_OK) {
      CHECKF((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_BUSY, "checker: %d (%s)", rc,
             sqlite3_errmsg(db));
      errors++;
      qt_sleep_ms(50);
    }
    if (!sqlite3_get_autocommit(db)) qt_exec_rc(db, "COMMIT");
    qt_sleep_ms(5);
  }
  printf("checker: %ld snapshots with the right total, %ld checked account by account against the ledger, "
         "%ld reads failed while the server was down\n",
         snapshots, full, errors);
  sqlite3_close(db);
  return snapshots > 0 ? 0 : 1;
}

/* ---- the final check ------------------------------------------------------------- */

static int verify_main(void *arg) {
  (void)arg;
  sqlite3 *db = open_bank("verify");
  qt_exec(db, "PRAGMA quire_pull");
  CHECK(qt_int(db, "SELECT sum(balance) FROM accounts") == (sqlite3_int64)naccounts * OPENING);
  CHECK(
      qt_int(
          db,
          "SELECT count(*) FROM accounts a WHERE a.balance != 1000 + (SELECT coalesce(sum(amount), 0) "
          "FROM ledger WHERE dst = a.id) - (SELECT coalesce(sum(amount), 0) FROM ledger WHERE src = a.id)") ==
      0);
  qt_integrity(db);
  sqlite3_int64 rows = qt_int(db, "SELECT count(*) FROM ledger");
  long confirmed = 0;
  sqlite3_stmt *st;
  QT_CHECK_DB(db,
              sqlite3_prepare_v2(db, "SELECT amount FROM ledger WHERE tid = ?", -1, &st, NULL) == SQLITE_OK);
  for (int w = 0; w < 16; w++) {
    char path[4200], tid[64];
    snprintf(path, sizeof path, "%s/pushed-w%d", root, w);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    int amount;
    while (fscanf(f, "%63s %d", tid, &amount) == 2) {
      sqlite3_bind_text(st, 1, tid, -1, SQLITE_TRANSIENT);
      CHECKF(sqlite3_step(st) == SQLITE_ROW, "transfer %s was reported pushed and is lost", tid);
      CHECKF(sqlite3_column_int(st, 0) == amount, "transfer %s has amount %d, pushed %d", tid,
             sqlite3_column_int(st, 0), amount);
      sqlite3_reset(st);
      confirmed++;
    }
    fclose(f);
  }
  sqlite3_finalize(st);
  printf("final state: %lld transfers in the ledger, all %ld reported pushed are there; total balance %d\n",
         (long long)rows, confirmed, naccounts * OPENING);
  sqlite3_close(db);
  return 0;
}

int main(void) {
  test_seed();
  int longmode = test_long_mode();
  naccounts = longmode ? 200 : 40;
  int nwriters = longmode ? 5 : 3;
  uint64_t chaos_ms = longmode ? 180000 : 20000;
  root = test_tmpdir("sqlite_bank");
  snprintf(srv.data, sizeof srv.data, "%s/server", root);
  qt_server_start(&srv);
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t setup = qt_fork(setup_main, &p[1]);
  CHECK(read(p[0], vid, 22) == 22);
  vid[22] = '\0';
  CHECK(qt_wait(setup) == 0);
  pid_t writers[16], checker = qt_fork(checker_main, NULL);
  for (int i = 0; i < nwriters; i++) writers[i] = qt_fork(writer_main, (void *)(intptr_t)i);
  int kills = 0, server_kills = 0, server_stops = 0;
  uint64_t end = qt_now_ms() + chaos_ms, next_server = qt_now_ms() + 5000;
  while (qt_now_ms() < end) {
    qt_sleep_ms(700 + (unsigned)test_rand_below(1500));
    /* A writer dies mid-flight and comes back on the same data directory. */
    int w = (int)test_rand_below((uint64_t)nwriters);
    kill(writers[w], SIGKILL);
    int st = qt_wait(writers[w]);
    CHECKF(st == 128 + SIGKILL, "writer %d ended with %d before it was killed", w, st);
    kills++;
    writers[w] = qt_fork(writer_main, (void *)(intptr_t)w);
    if (qt_now_ms() >= next_server) {
      int crash = test_rand_below(2) == 0;
      qt_server_stop(&srv, crash ? SIGKILL : SIGTERM);
      crash ? server_kills++ : server_stops++;
      qt_sleep_ms(300 + (unsigned)test_rand_below(700));
      qt_server_start(&srv);
      next_server = qt_now_ms() + 4000 + test_rand_below(4000);
    }
  }
  char stop[4200];
  snprintf(stop, sizeof stop, "%s/stop", root);
  FILE *f = fopen(stop, "w");
  CHECK(f != NULL);
  fclose(f);
  for (int i = 0; i < nwriters; i++) CHECKF(qt_wait(writers[i]) == 0, "writer %d failed", i);
  CHECK(qt_wait(checker) == 0);
  long commits = 0, resets = 0, pushes = 0;
  /* Only the writer processes that were not killed wrote their counts. */
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "cat %s/stats-w* 2>/dev/null", root);
  FILE *s = popen(cmd, "r");
  long c, r, pu;
  while (s && fscanf(s, "%ld %ld %ld", &c, &r, &pu) == 3) commits += c, resets += r, pushes += pu;
  if (s) pclose(s);
  printf(
      "bank: %d accounts, %d writers for %llu s: %d writers killed with SIGKILL, server killed %d times and "
      "stopped %d times; the last writer processes committed %ld transfers, resolved %ld conflicts with "
      "quire_reset, confirmed %ld pushes\n",
      naccounts, nwriters, (unsigned long long)chaos_ms / 1000, kills, server_kills, server_stops, commits,
      resets, pushes);
  pid_t v = qt_fork(verify_main, NULL);
  CHECK(qt_wait(v) == 0);
  qt_server_stop(&srv, SIGTERM);
  test_rmtree(root);
  free(root);
  return test_done("test_sqlite_bank");
}
