/*
 * tests/sqlite/sqlite_test.h — helpers for the SQLite extension's tests:
 * the real SQLite library with the extension linked in
 * (quire_sqlite_register), short ways to run SQL and check results, a
 * `quire server` child process on free loopback ports (which can be
 * killed and restarted on the same ports and data), and forked client
 * processes. The parent of forked clients must not have opened a quire
 * volume (no threads of its own when it forks).
 */
#ifndef QUIRE_TESTS_SQLITE_TEST_H
#define QUIRE_TESTS_SQLITE_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "quire/quire.h"
#include "quire/quire_sqlite.h"
#include "test.h"

static inline uint64_t qt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void qt_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- SQL ----------------------------------------------------------------- */

#define QT_CHECK_DB(db, cond)                                                                                \
  do {                                                                                                       \
    test_count_check();                                                                                      \
    if (!(cond)) test_failf(__FILE__, __LINE__, "%s: %s", #cond, sqlite3_errmsg(db));                        \
  } while (0)

static inline sqlite3 *qt_open_flags(const char *uri, int flags) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(uri, &db, flags | SQLITE_OPEN_URI, NULL);
  if (rc != SQLITE_OK) test_failf(__FILE__, __LINE__, "open %s: %s", uri, db ? sqlite3_errmsg(db) : "?");
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static inline sqlite3 *qt_open(const char *uri) {
  return qt_open_flags(uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
}

/* sql with every "series(N)" (the numbers 1..N in a column "value", the
 * shell's generate_series without the shell) written as a recursive CTE.
 * The result is sqlite3_free'd by the caller. */
static inline char *qt_series(const char *sql) {
  char *out = sqlite3_mprintf("%s", "");
  const char *p = sql, *s;
  while (out && (s = strstr(p, "series(")) != NULL) {
    const char *n = s + 7, *e = strchr(n, ')');
    if (!e) break;
    char *next =
        sqlite3_mprintf("%s%.*s(WITH RECURSIVE s_(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s_ "
                        "WHERE value < %.*s) SELECT value FROM s_)",
                        out, (int)(s - p), p, (int)(e - n), n);
    sqlite3_free(out);
    out = next;
    p = e + 1;
  }
  char *all = out ? sqlite3_mprintf("%s%s", out, p) : NULL;
  sqlite3_free(out);
  return all;
}

/* Runs sql; returns the SQLite code (extended). */
static inline int qt_exec_rc(sqlite3 *db, const char *sql) {
  char *err = NULL, *q = qt_series(sql);
  int rc = sqlite3_exec(db, q ? q : sql, NULL, NULL, &err);
  sqlite3_free(q);
  sqlite3_free(err);
  return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db);
}

#define qt_exec(db, sql)                                                                                     \
  do {                                                                                                       \
    int qrc_ = qt_exec_rc((db), (sql));                                                                      \
    test_count_check();                                                                                      \
    if (qrc_ != SQLITE_OK) test_failf(__FILE__, __LINE__, "%s: %s (%d)", (sql), sqlite3_errmsg(db), qrc_);   \
  } while (0)

__attribute__((format(printf, 2, 3))) static inline void qt_execf(sqlite3 *db, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  qt_exec(db, sql);
  sqlite3_free(sql);
}

/* The first column of the first row as an integer (-1 for no row); the
 * statement must succeed. */
static inline sqlite3_int64 qt_int_rc(sqlite3 *db, const char *sql, int *rc_out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  sqlite3_int64 v = -1;
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      v = sqlite3_column_int64(st, 0);
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  if (rc != SQLITE_OK) rc = sqlite3_extended_errcode(db);
  sqlite3_finalize(st);
  *rc_out = rc;
  return v;
}

#define qt_int(db, sql)                                                                                      \
  ({                                                                                                         \
    int qrc_;                                                                                                \
    sqlite3_int64 v_ = qt_int_rc((db), (sql), &qrc_);                                                        \
    test_count_check();                                                                                      \
    if (qrc_ != SQLITE_OK) test_failf(__FILE__, __LINE__, "%s: %s (%d)", (sql), sqlite3_errmsg(db), qrc_);   \
    v_;                                                                                                      \
  })

/* The first column of the first row as text into out (cap bytes; "" for
 * NULL or no row). Returns the SQLite code. */
static inline int qt_text_rc(sqlite3 *db, const char *sql, char *out, size_t cap) {
  sqlite3_stmt *st = NULL;
  out[0] = '\0';
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      const unsigned char *t = sqlite3_column_text(st, 0);
      snprintf(out, cap, "%s", t ? (const char *)t : "");
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  if (rc != SQLITE_OK) rc = sqlite3_extended_errcode(db);
  sqlite3_finalize(st);
  return rc;
}

#define qt_text(db, sql, out)                                                                                \
  do {                                                                                                       \
    int qrc_ = qt_text_rc((db), (sql), (out), sizeof(out));                                                  \
    test_count_check();                                                                                      \
    if (qrc_ != SQLITE_OK) test_failf(__FILE__, __LINE__, "%s: %s (%d)", (sql), sqlite3_errmsg(db), qrc_);   \
  } while (0)

/* PRAGMA integrity_check says exactly "ok". */
#define qt_integrity(db)                                                                                     \
  do {                                                                                                       \
    char ic_[4096];                                                                                          \
    qt_text((db), "PRAGMA integrity_check", ic_);                                                            \
    CHECKF(strcmp(ic_, "ok") == 0, "integrity_check: %s", ic_);                                              \
  } while (0)

/* The value of key in a PRAGMA quire_* "key=value" text ("" if absent). */
static inline void qt_kv(const char *text, const char *key, char *out, size_t cap) {
  out[0] = '\0';
  size_t kl = strlen(key);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
      const char *e = p + kl + 1;
      size_t n = strcspn(e, "\n ");
      snprintf(out, cap, "%.*s", (int)n, e);
      return;
    }
    const char *nl = strpbrk(p, "\n ");
    p = nl ? nl + 1 : NULL;
  }
}

static inline unsigned long long qt_kv_u64(const char *text, const char *key) {
  char v[64];
  qt_kv(text, key, v, sizeof v);
  return strtoull(v, NULL, 10);
}

/* PRAGMA quire_status into out. */
static inline void qt_status(sqlite3 *db, char *out, size_t cap) {
  int rc = qt_text_rc(db, "PRAGMA quire_status", out, cap);
  QT_CHECK_DB(db, rc == SQLITE_OK);
}

/* One numeric field of PRAGMA quire_status. */
static inline unsigned long long qt_status_u64(sqlite3 *db, const char *key) {
  char st[4096];
  qt_status(db, st, sizeof st);
  return qt_kv_u64(st, key);
}

/* A counter of the quire_stats table (scope volume). */
static inline sqlite3_int64 qt_stat(sqlite3 *db, const char *name) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT value FROM quire_stats WHERE scope='volume' AND name='%s'", name);
  return qt_int(db, sql);
}

static inline void qt_register(void) {
  static int done;
  if (done) return;
  CHECK(quire_sqlite_register() == SQLITE_OK);
  CHECK(sqlite3_vfs_find("quire") != NULL);
  done = 1;
}

/* ---- a big database ---------------------------------------------------------- */

/* Builds at path (unix VFS) a database of at least `pages` 4 KiB pages:
 * t(id INTEGER PRIMARY KEY, k INTEGER UNIQUE-ish, pad BLOB of 3000 bytes),
 * about one row per page, k = id * 40503 mod 65537 (distinct for id <=
 * 65536), an index on k. Returns the page count; *rows gets the last id. */
static inline sqlite3_int64 qt_build_big(const char *path, sqlite3_int64 pages, sqlite3_int64 *rows) {
  sqlite3 *db = NULL;
  CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix") == SQLITE_OK);
  qt_exec(db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA page_size = 4096");
  qt_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, pad BLOB)");
  qt_execf(db,
           "BEGIN; INSERT INTO t SELECT value, (value * 40503) %% 65537, randomblob(3000) FROM series(%lld); "
           "COMMIT",
           pages * 99 / 100);
  qt_exec(db, "CREATE INDEX tk ON t(k)");
  sqlite3_int64 n = qt_int(db, "PRAGMA page_count"), id = qt_int(db, "SELECT max(id) FROM t") + 1;
  for (; n < pages; id++) {
    qt_execf(db, "INSERT INTO t VALUES (%lld, (%lld * 40503) %% 65537, randomblob(3000))", id, id);
    n = qt_int(db, "PRAGMA page_count");
  }
  *rows = id - 1;
  sqlite3_close(db);
  return n;
}

/* The key of row id in qt_build_big's table. */
static inline long long qt_big_key(long long id) { return id * 40503 % 65537; }

/* ---- processes ------------------------------------------------------------ */

/* Runs fn(arg) in a child process; returns its pid. The child exits with
 * fn's return value (a failed CHECK exits 1). */
static inline pid_t qt_fork(int (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int rc = fn(arg);
    fflush(NULL);
    _exit(rc);
  }
  return pid;
}

/* Waits for pid; returns its exit status (128+signal when killed). */
static inline int qt_wait(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline unsigned qt_free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(s >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
  socklen_t l = sizeof a;
  CHECK(getsockname(s, (struct sockaddr *)&a, &l) == 0);
  close(s);
  return ntohs(a.sin_port);
}

static inline int qt_port_open(unsigned port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return 0;
  struct sockaddr_in a = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
  close(s);
  return ok;
}

/* `quire server` as a child process. */
struct qt_server {
  pid_t pid;
  unsigned ms_port, ps_port;
  char data[4096];
  char ms_url[64], ps_url[64];
};

/* The servers this process started, stopped at exit (a failed CHECK exits
 * at once) so that no server outlives its test. Children forked later run
 * the handler too: the owner check keeps them from stopping it. */
static struct qt_server *qt_servers[4];
static pid_t qt_servers_owner;

static inline void qt_servers_kill(void) {
  if (getpid() != qt_servers_owner) return;
  for (int i = 0; i < 4; i++)
    if (qt_servers[i] && qt_servers[i]->pid > 0) {
      kill(qt_servers[i]->pid, SIGKILL);
      waitpid(qt_servers[i]->pid, NULL, 0);
      qt_servers[i]->pid = 0;
    }
}

static inline void qt_server_start(struct qt_server *s) {
  if (!qt_servers_owner) {
    qt_servers_owner = getpid();
    atexit(qt_servers_kill);
  }
  for (int i = 0; i < 4; i++)
    if (qt_servers[i] == s || !qt_servers[i]) {
      qt_servers[i] = s;
      break;
    }
  const char *bin = getenv("QUIRE_BIN");
  CHECKF(bin && *bin, "QUIRE_BIN is not set (run under ctest)");
  if (!s->ms_port) {
    s->ms_port = qt_free_port();
    do s->ps_port = qt_free_port();
    while (s->ps_port == s->ms_port);
  }
  snprintf(s->ms_url, sizeof s->ms_url, "http://127.0.0.1:%u", s->ms_port);
  snprintf(s->ps_url, sizeof s->ps_url, "http://127.0.0.1:%u", s->ps_port);
  char ms[64], ps[64], log[4200];
  snprintf(ms, sizeof ms, "127.0.0.1:%u", s->ms_port);
  snprintf(ps, sizeof ps, "127.0.0.1:%u", s->ps_port);
  snprintf(log, sizeof log, "%s.log", s->data);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    FILE *f = freopen(log, "a", stdout);
    if (f) dup2(fileno(stdout), 2);
    execl(bin, bin, "server", "--data", s->data, "--metastore-listen", ms, "--pagestore-listen", ps,
          "--flush-ms", "5", "--poll-interval-ms", "50", "--drain-ms", "500", (char *)NULL);
    _exit(127);
  }
  s->pid = pid;
  uint64_t deadline = qt_now_ms() + 20000;
  while (!(qt_port_open(s->ms_port) && qt_port_open(s->ps_port))) {
    int st;
    CHECKF(waitpid(pid, &st, WNOHANG) == 0, "quire server exited at start (see %s)", log);
    CHECKF(qt_now_ms() < deadline, "quire server did not listen within 20 s (see %s)", log);
    qt_sleep_ms(20);
  }
  /* Authentication is on: the clients (and their child processes) use the
   * admin token the server wrote before it listened. */
  char tpath[4200], token[1024];
  snprintf(tpath, sizeof tpath, "%s/admin.token", s->data);
  FILE *tf = fopen(tpath, "r");
  CHECKF(tf && fgets(token, sizeof token, tf), "no admin token at %s", tpath);
  fclose(tf);
  token[strcspn(token, "\r\n")] = '\0';
  setenv("QUIRE_TOKEN", token, 1);
}

/* Stops the server with sig (SIGTERM: graceful; SIGKILL: a crash). */
static inline void qt_server_stop(struct qt_server *s, int sig) {
  if (s->pid <= 0) return;
  kill(s->pid, sig);
  qt_wait(s->pid);
  s->pid = 0;
}

/* In a child process: a quire client in dir imports the SQLite file plain as
 * raw pages into a new volume and pushes it to s; vid gets its id (23
 * bytes). Prints the time taken. */
static inline void qt_import_push(const char *dir, const struct qt_server *s, const char *plain, char *vid) {
  int p[2];
  CHECK(pipe(p) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    quire_client_opts o;
    quire_client_opts_init(&o);
    o.data_dir = dir;
    o.metastore_url = s->ms_url;
    o.pagestore_url = s->ps_url;
    o.sync_mode = QUIRE_SYNC_OFF;
    o.call_timeout_ms = 300000;
    quire_client *c;
    CHECK_OK(quire_client_open(&o, &c));
    quire_volume *v;
    CHECK_OK(quire_volume_open(c, "big", QUIRE_CREATE, &v));
    uint64_t t0 = qt_now_ms();
    CHECK_OK(quire_volume_import(v, plain));
    uint64_t t1 = qt_now_ms();
    CHECK_OK(quire_volume_push(v, 0));
    printf("imported in %llu ms, pushed in %llu ms\n", (unsigned long long)(t1 - t0),
           (unsigned long long)(qt_now_ms() - t1));
    quire_gid g;
    quire_volume_vid(v, &g);
    char text[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&g, text);
    CHECK(write(p[1], text, QUIRE_GID_TEXT_LEN) == QUIRE_GID_TEXT_LEN);
    quire_volume_close(v);
    CHECK_OK(quire_client_close(c));
    fflush(NULL);
    _exit(0);
  }
  close(p[1]);
  CHECK(read(p[0], vid, QUIRE_GID_TEXT_LEN) == QUIRE_GID_TEXT_LEN);
  vid[QUIRE_GID_TEXT_LEN] = '\0';
  close(p[0]);
  CHECK(qt_wait(pid) == 0);
}

/* The environment of a client with its own data directory. */
static inline void qt_client_env(const char *dir, const struct qt_server *s, int autosync) {
  setenv("QUIRE_DATA_DIR", dir, 1);
  setenv("QUIRE_METASTORE", s ? s->ms_url : "none", 1);
  setenv("QUIRE_PAGESTORE", s ? s->ps_url : "none", 1);
  setenv("QUIRE_AUTOSYNC", autosync ? "1" : "0", 1);
  setenv("QUIRE_SYNC", "normal", 1);
  setenv("QUIRE_FETCH_TIMEOUT_MS", "5000", 1);
}

#endif
