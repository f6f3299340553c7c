/*
 * Two processes with their own data directories share a volume through a
 * real `quire server` (a child process on loopback ports):
 *   - visibility: B holds a read transaction while A commits and pushes;
 *     B's open transaction keeps its snapshot after autosync pulled A's
 *     commit, and B's next transaction sees it;
 *   - concurrent writers, autosync off: both commit locally on the same
 *     base, A's push wins, B's push reports the conflict, B's next write
 *     transaction is refused with SQLITE_BUSY_SNAPSHOT, PRAGMA quire_reset
 *     resolves it and B's connection then reads A's rows (its cache held
 *     its own version of the same pages, with the same change counter);
 *   - concurrent writers, autosync on: a remote commit pulled while B's
 *     write transaction is open makes B's COMMIT fail with
 *     SQLITE_BUSY_SNAPSHOT; the retry sees A's commit;
 *   - a reset whose first read fails (server down): the next read still
 *     reloads SQLite's cache;
 *   - the volume falls into conflict while a write transaction holds
 *     RESERVED: its COMMIT is refused, and after a reset the next write
 *     transaction reads the reset volume;
 *   - offline: with the server down a page that is not local fails with
 *     SQLITE_IOERR and quire's message in PRAGMA quire_status, local
 *     reads and commits go on, and the push resumes when the server is
 *     back.
 */
#include "sqlite_test.h"

static char *root;
static struct qt_server srv;

/* A child process with a pipe each way: step() tells the parent a point
 * was reached, wait_go() waits for the parent's go. */
struct peer {
  pid_t pid;
  int to_child[2], to_parent[2];
  const char *dir;
  char vid[64];
  int autosync;
  int (*fn)(struct peer *);
};

static struct peer *me;

static void step(void) {
  char c = 's';
  CHECK(write(me->to_parent[1], &c, 1) == 1);
}

static void wait_go(void) {
  char c;
  CHECK(read(me->to_child[0], &c, 1) == 1);
}

static int peer_main(void *arg) {
  me = arg;
  close(me->to_child[1]);
  close(me->to_parent[0]);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", root, me->dir);
  qt_client_env(dir, &srv, me->autosync);
  setenv("QUIRE_FETCH_TIMEOUT_MS", "1500", 1);
  qt_register();
  return me->fn(me);
}

static void peer_start(struct peer *p) {
  CHECK(pipe(p->to_child) == 0 && pipe(p->to_parent) == 0);
  p->pid = qt_fork(peer_main, p);
  close(p->to_child[0]);
  close(p->to_parent[1]);
}

/* Waits for the child's next step. */
static void peer_wait_step(struct peer *p) {
  char c;
  CHECKF(read(p->to_parent[0], &c, 1) == 1, "peer %s exited before its step", p->dir);
}

static void peer_go(struct peer *p) {
  char c = 'g';
  CHECK(write(p->to_child[1], &c, 1) == 1);
}

static void peer_finish(struct peer *p) {
  close(p->to_child[1]);
  close(p->to_parent[0]);
  CHECKF(qt_wait(p->pid) == 0, "peer %s failed", p->dir);
}

static sqlite3 *open_shared(struct peer *p, const char *name) {
  char u[512];
  if (p->vid[0])
    snprintf(u, sizeof u, "file:%s?vfs=quire&vid=%s", name, p->vid);
  else
    snprintf(u, sizeof u, "file:%s?vfs=quire", name);
  return qt_open(u);
}

static unsigned long long remote_lsn(sqlite3 *db) { return qt_status_u64(db, "remote_lsn"); }

/* Waits (up to 15 s) until autosync pulled remote lsn `want`. */
static void wait_remote(sqlite3 *db, unsigned long long want) {
  uint64_t deadline = qt_now_ms() + 15000;
  while (remote_lsn(db) < want) {
    CHECKF(qt_now_ms() < deadline, "remote lsn %llu not pulled within 15 s (at %llu)", want, remote_lsn(db));
    qt_sleep_ms(20);
  }
}

static void push(sqlite3 *db) {
  char out[512];
  qt_text(db, "PRAGMA quire_push", out);
  CHECKF(qt_kv_u64(out, "unpushed_commits") == 0, "after quire_push: %s", out);
}

/* Writes the volume id where the parent reads it. */
static void share_vid(sqlite3 *db, struct peer *p) {
  char st[4096], vid[64];
  qt_status(db, st, sizeof st);
  qt_kv(st, "vid", vid, sizeof vid);
  CHECK(strlen(vid) == 22);
  CHECK(write(p->to_parent[1], vid, 22) == 22);
}

static void read_vid(struct peer *from, char *vid) {
  CHECK(read(from->to_parent[0], vid, 22) == 22);
  vid[22] = '\0';
}

/* The table the writer scenarios share: 500 rows by 'base', pushed, and the
 * volume id handed to the parent. */
static void base_table(sqlite3 *db, struct peer *p) {
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, n INT)");
  qt_exec(db, "INSERT INTO t(who, n) SELECT 'base', value FROM series(500)");
  push(db);
  share_vid(db, p);
}

/* ---- visibility ---------------------------------------------------------------- */

static int vis_a(struct peer *p) {
  sqlite3 *db = open_shared(p, "vis");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  qt_exec(db, "INSERT INTO t(v) SELECT hex(randomblob(100)) FROM series(2000)");
  push(db);
  share_vid(db, p);
  wait_go();
  qt_exec(db, "INSERT INTO t(v) VALUES ('from A')");
  push(db);
  step();
  sqlite3_close(db);
  return 0;
}

static int vis_b(struct peer *p) {
  sqlite3 *db = open_shared(p, "mine");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 2000);
  qt_exec(db, "BEGIN");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 2000);
  unsigned long long r0 = remote_lsn(db);
  step();
  wait_go(); /* A committed and pushed */
  uint64_t t0 = qt_now_ms();
  wait_remote(db, r0 + 1);
  uint64_t lag = qt_now_ms() - t0;
  /* The open transaction keeps its snapshot. */
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 2000);
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE v = 'from A'") == 0);
  qt_exec(db, "COMMIT");
  /* The next one sees A's commit. */
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 2001);
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE v = 'from A'") == 1);
  qt_integrity(db);
  printf(
      "visibility: A's pushed commit pulled by B's autosync %llu ms after the push returned; B fetched %lld "
      "pages in %lld round trips\n",
      (unsigned long long)lag, (long long)qt_stat(db, "fetch_pages"),
      (long long)qt_stat(db, "fetch_round_trips"));
  sqlite3_close(db);
  return 0;
}

static void visibility(void) {
  struct peer a = {.dir = "vis_a", .autosync = 1, .fn = vis_a};
  peer_start(&a);
  struct peer b = {.dir = "vis_b", .autosync = 1, .fn = vis_b};
  read_vid(&a, b.vid);
  peer_start(&b);
  peer_wait_step(&b); /* B holds a read transaction */
  peer_go(&a);
  peer_wait_step(&a); /* A pushed */
  peer_go(&b);
  peer_finish(&b);
  peer_finish(&a);
}

/* ---- concurrent writers, autosync off ------------------------------------------- */

static int cw_a(struct peer *p) {
  sqlite3 *db = open_shared(p, "cw");
  base_table(db, p);
  wait_go(); /* B has the volume */
  qt_exec(db, "UPDATE t SET who = 'A' WHERE id <= 250");
  step();
  wait_go(); /* B committed locally too */
  push(db);  /* A wins */
  step();
  wait_go(); /* B reset and pushed its retry */
  qt_exec(db, "PRAGMA quire_pull");
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'A'") == 250);
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'B'") == 100);
  qt_integrity(db);
  sqlite3_close(db);
  return 0;
}

static int cw_b(struct peer *p) {
  sqlite3 *db = open_shared(p, "cw");
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'base'") == 500);
  step();
  wait_go(); /* A committed locally */
  qt_exec(db, "UPDATE t SET who = 'B' WHERE id > 250");
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'B'") == 250);
  step();
  wait_go(); /* A pushed */
  /* B's push: the conflict is reported... */
  CHECK(qt_exec_rc(db, "PRAGMA quire_push") == SQLITE_ERROR);
  CHECKF(strstr(sqlite3_errmsg(db), "conflict") != NULL, "push said: %s", sqlite3_errmsg(db));
  char st[4096], state[32];
  qt_status(db, st, sizeof st);
  qt_kv(st, "state", state, sizeof state);
  CHECK(strcmp(state, "conflict") == 0);
  /* ... local reads go on, new write transactions are refused ... */
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'B'") == 250);
  sqlite3_busy_timeout(db, 0);
  /* (SQLite turns SQLITE_BUSY_SNAPSHOT into SQLITE_BUSY when no read
   * transaction was open: a retry would normally take a new snapshot.) */
  CHECK(qt_exec_rc(db, "BEGIN IMMEDIATE") == SQLITE_BUSY);
  CHECK(qt_exec_rc(db, "UPDATE t SET n = 0") == SQLITE_BUSY);
  qt_exec(db, "BEGIN");
  CHECK(qt_int(db, "SELECT count(*) FROM t") == 500);
  CHECK(qt_exec_rc(db, "UPDATE t SET n = 0") == SQLITE_BUSY_SNAPSHOT);
  qt_exec(db, "ROLLBACK");
  /* ... and quire_reset takes A's version: this connection's cache held
   * B's version of the same pages under the same change counter. */
  qt_exec(db, "PRAGMA quire_reset");
  qt_status(db, st, sizeof st);
  qt_kv(st, "state", state, sizeof state);
  CHECK(strcmp(state, "ok") == 0);
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'B'") == 0);
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'A'") == 250);
  qt_integrity(db);
  qt_exec(db, "UPDATE t SET who = 'B' WHERE id > 400");
  push(db);
  step();
  sqlite3_close(db);
  return 0;
}

static void concurrent_writers(void) {
  struct peer a = {.dir = "cw_a", .autosync = 0, .fn = cw_a};
  peer_start(&a);
  struct peer b = {.dir = "cw_b", .autosync = 0, .fn = cw_b};
  read_vid(&a, b.vid);
  peer_start(&b);
  peer_wait_step(&b);
  peer_go(&a);
  peer_wait_step(&a); /* A committed locally */
  peer_go(&b);
  peer_wait_step(&b); /* B committed locally */
  peer_go(&a);
  peer_wait_step(&a); /* A pushed */
  peer_go(&b);
  peer_wait_step(&b); /* B reset, retried, pushed */
  peer_go(&a);
  peer_finish(&a);
  peer_finish(&b);
}

/* ---- concurrent writers, autosync on ------------------------------------------- */

static int snap_a(struct peer *p) {
  sqlite3 *db = open_shared(p, "snap");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, n INT)");
  qt_exec(db, "INSERT INTO t(n) SELECT 0 FROM series(100)");
  push(db);
  share_vid(db, p);
  wait_go(); /* B's write transaction is open */
  qt_exec(db, "UPDATE t SET n = n + 1");
  push(db);
  step();
  sqlite3_close(db);
  return 0;
}

static int snap_b(struct peer *p) {
  sqlite3 *db = open_shared(p, "snap");
  CHECK(qt_int(db, "SELECT sum(n) FROM t") == 0);
  qt_exec(db, "BEGIN IMMEDIATE");
  qt_exec(db, "UPDATE t SET n = n + 10");
  unsigned long long r0 = remote_lsn(db);
  step();
  wait_go(); /* A pushed; autosync pulls it under B's open transaction */
  wait_remote(db, r0 + 1);
  CHECK(qt_exec_rc(db, "COMMIT") == SQLITE_BUSY_SNAPSHOT);
  CHECK(sqlite3_get_autocommit(db)); /* rolled back */
  /* The retry runs on A's commit. */
  qt_exec(db, "UPDATE t SET n = n + 10");
  CHECK(qt_int(db, "SELECT sum(n) FROM t") == 1100);
  qt_integrity(db);
  push(db);
  sqlite3_close(db);
  return 0;
}

static void snapshot_conflict(void) {
  struct peer a = {.dir = "snap_a", .autosync = 1, .fn = snap_a};
  peer_start(&a);
  struct peer b = {.dir = "snap_b", .autosync = 1, .fn = snap_b};
  read_vid(&a, b.vid);
  peer_start(&b);
  peer_wait_step(&b);
  peer_go(&a);
  peer_wait_step(&a);
  peer_go(&b);
  peer_finish(&a);
  peer_finish(&b);
}

/* ---- offline ------------------------------------------------------------------- */

static int off_a(struct peer *p) {
  sqlite3 *db = open_shared(p, "off");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
  qt_exec(db, "INSERT INTO t(v) SELECT randomblob(3000) FROM series(3000)");
  push(db);
  share_vid(db, p);
  sqlite3_close(db);
  return 0;
}

static int off_b(struct peer *p) {
  sqlite3 *db = open_shared(p, "off");
  /* A point read makes a few pages local. */
  CHECK(qt_int(db, "SELECT length(v) FROM t WHERE id = 7") == 3000);
  step();
  wait_go(); /* the server is down */
  CHECK(qt_int(db, "SELECT length(v) FROM t WHERE id = 7") == 3000);
  uint64_t t0 = qt_now_ms();
  int rc;
  qt_int_rc(db, "SELECT sum(length(v)) FROM t", &rc);
  CHECKF((rc & 0xff) == SQLITE_IOERR, "a scan while offline gave %d", rc);
  printf("offline: a read of absent pages failed with %d (%s) after %llu ms\n", rc, sqlite3_errstr(rc),
         (unsigned long long)(qt_now_ms() - t0));
  char st[4096], err[1024];
  qt_status(db, st, sizeof st);
  qt_kv(st, "last_vfs_error", err, sizeof err);
  const char *e = strstr(st, "last_vfs_error=");
  CHECKF(e && strstr(e, "unavailable"), "quire_status: %s", st);
  /* Local commits go on. */
  qt_exec(db, "CREATE TABLE local(x); INSERT INTO local VALUES (1)");
  step();
  wait_go(); /* the server is back */
  push(db);
  CHECK(qt_int(db, "SELECT sum(length(v)) FROM t") == 3000 * 3000);
  qt_integrity(db);
  sqlite3_close(db);
  return 0;
}

static void offline(void) {
  struct peer a = {.dir = "off_a", .autosync = 1, .fn = off_a};
  peer_start(&a);
  struct peer b = {.dir = "off_b", .autosync = 1, .fn = off_b};
  read_vid(&a, b.vid);
  peer_finish(&a);
  peer_start(&b);
  peer_wait_step(&b);
  qt_server_stop(&srv, SIGKILL);
  peer_go(&b);
  peer_wait_step(&b);
  qt_server_start(&srv);
  peer_go(&b);
  peer_finish(&b);
}

/* ---- a reset, then the first read fails ------------------------------------------- */

/* After a reset, SQLite's cache holds this client's dropped version of the
 * pages under the same change counter as the remote head (one transaction
 * each side). The first lock's cache check cannot read page 1 (the server
 * is down, the page is not local): the next lock must still make SQLite
 * reload (it used to believe the cache checked and kept the dropped rows). */
static int ro_a(struct peer *p) {
  sqlite3 *db = open_shared(p, "ro");
  base_table(db, p);
  wait_go(); /* B has the volume */
  qt_exec(db, "UPDATE t SET who = 'A' WHERE id <= 250");
  step();
  wait_go(); /* B committed locally */
  push(db);
  step();
  wait_go();
  sqlite3_close(db);
  return 0;
}

static int ro_b(struct peer *p) {
  sqlite3 *db = open_shared(p, "ro");
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'base'") == 500);
  step();
  wait_go(); /* A committed locally */
  qt_exec(db, "UPDATE t SET who = 'B' WHERE id > 250");
  step();
  wait_go(); /* A pushed */
  CHECK(qt_exec_rc(db, "PRAGMA quire_push") == SQLITE_ERROR);
  qt_exec(db, "PRAGMA quire_reset");
  step();
  wait_go(); /* the server is down */
  int rc;
  qt_int_rc(db, "SELECT count(*) FROM t WHERE who = 'A'", &rc);
  CHECKF((rc & 0xff) == SQLITE_IOERR, "a read of the pulled pages while offline gave %d", rc);
  step();
  wait_go(); /* the server is back */
  CHECKF(qt_int(db, "SELECT count(*) FROM t WHERE who = 'B'") == 0, "the reset's dropped rows are read");
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'A'") == 250);
  qt_integrity(db);
  sqlite3_close(db);
  return 0;
}

static void reset_offline(void) {
  struct peer a = {.dir = "ro_a", .autosync = 0, .fn = ro_a};
  peer_start(&a);
  struct peer b = {.dir = "ro_b", .autosync = 0, .fn = ro_b};
  read_vid(&a, b.vid);
  peer_start(&b);
  peer_wait_step(&b); /* B has the volume */
  peer_go(&a);
  peer_wait_step(&a); /* A committed locally */
  peer_go(&b);
  peer_wait_step(&b); /* B committed locally */
  peer_go(&a);
  peer_wait_step(&a); /* A pushed */
  peer_go(&a);
  peer_finish(&a);
  peer_go(&b);
  peer_wait_step(&b); /* B reset */
  qt_server_stop(&srv, SIGKILL);
  peer_go(&b);
  peer_wait_step(&b); /* B's read failed */
  qt_server_start(&srv);
  peer_go(&b);
  peer_finish(&b);
}

/* ---- the volume falls into conflict inside a write transaction --------------- */

/* B's write transaction holds RESERVED when its own push finds the conflict
 * (another connection of B pushed); SQLite's COMMIT then asks for EXCLUSIVE.
 * That upgrade used to take the write lock again, which the conflict
 * refused: the lock fell back to SHARED with the writer still open, no
 * unlock ended it, and after quire_reset the next write transaction read
 * the dropped pages through it. Now the upgrade adds nothing, the
 * transaction commits locally, and the reset drops it. */
static int ex_a(struct peer *p) {
  sqlite3 *db = open_shared(p, "ex");
  base_table(db, p);
  wait_go(); /* B committed locally */
  qt_exec(db, "UPDATE t SET who = 'A' WHERE id <= 250");
  push(db);
  step();
  wait_go();
  sqlite3_close(db);
  return 0;
}

static int ex_b(struct peer *p) {
  sqlite3 *db = open_shared(p, "ex"), *other = open_shared(p, "ex");
  sqlite3_busy_timeout(db, 0);
  qt_exec(db, "UPDATE t SET who = 'B' WHERE id > 250"); /* unpushed */
  step();
  wait_go(); /* A pushed */
  qt_exec(db, "BEGIN IMMEDIATE");
  qt_exec(db, "UPDATE t SET n = -1 WHERE id = 1");
  CHECK(qt_exec_rc(other, "PRAGMA quire_push") == SQLITE_ERROR); /* the conflict */
  /* The transaction held the write lock before the conflict: it commits
   * locally, one more unpushed commit that the reset drops. */
  qt_exec(db, "COMMIT");
  CHECK(qt_int(db, "SELECT n FROM t WHERE id = 1") == -1);
  qt_exec(db, "PRAGMA quire_reset");
  CHECK(qt_int(db, "SELECT n FROM t WHERE id = 1") == 1);
  qt_exec(db, "BEGIN IMMEDIATE");
  CHECKF(qt_int(db, "SELECT count(*) FROM t WHERE who = 'B'") == 0, "a write transaction after the reset reads the dropped rows");
  CHECK(qt_int(db, "SELECT count(*) FROM t WHERE who = 'A'") == 250);
  qt_exec(db, "UPDATE t SET n = -2 WHERE id = 2");
  qt_exec(db, "COMMIT");
  push(db);
  qt_integrity(db);
  sqlite3_close(other);
  sqlite3_close(db);
  return 0;
}

static void conflict_in_write(void) {
  struct peer a = {.dir = "ex_a", .autosync = 0, .fn = ex_a};
  peer_start(&a);
  struct peer b = {.dir = "ex_b", .autosync = 0, .fn = ex_b};
  read_vid(&a, b.vid);
  peer_start(&b);
  peer_wait_step(&b); /* B committed locally */
  peer_go(&a);
  peer_wait_step(&a); /* A pushed */
  peer_go(&b);
  peer_finish(&b);
  peer_go(&a);
  peer_finish(&a);
}

int main(void) {
  test_seed();
  root = test_tmpdir("sqlite_sync");
  snprintf(srv.data, sizeof srv.data, "%s/server", root);
  qt_server_start(&srv);
  visibility();
  concurrent_writers();
  snapshot_conflict();
  offline();
  reset_offline();
  conflict_in_write();
  qt_server_stop(&srv, SIGTERM);
  test_rmtree(root);
  free(root);
  return test_done("test_sqlite_sync");
}
