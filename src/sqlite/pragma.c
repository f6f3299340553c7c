/*
 * sqlite/pragma.c — PRAGMA quire_* (through SQLITE_FCNTL_PRAGMA on a quire
 * main database) and the two pragmas of SQLite's own that a volume must
 * not take: journal_mode=WAL (left to SQLite, which refuses it for a VFS
 * without shared memory and keeps the mode: logged here) and
 * locking_mode=EXCLUSIVE (refused: SQLite would keep its page cache and its
 * lock across remote commits).
 *
 * A pragma returns one text value (SQLite's rule for VFS pragmas): here
 * "key=value" lines, documented in docs/SQLITE.md. Errors come back as
 * the statement's error with quire's message (sqlite3_errmsg). SQLite runs
 * these at prepare time: a statement prepared twice runs twice.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqlite/qs_int.h"
#include "util/log.h"

/* A growing text result. */
struct out {
  char *s;
  size_t len, cap;
  int oom;
};

__attribute__((format(printf, 2, 3))) static void outf(struct out *o, const char *fmt, ...) {
  if (o->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->s ? o->s + o->len : NULL, o->s ? o->cap - o->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (o->s && o->len + (size_t)n < o->cap) {
      o->len += (size_t)n;
      return;
    }
    size_t cap = o->cap ? o->cap * 2 : 1024;
    while (cap < o->len + (size_t)n + 1) cap *= 2;
    char *s = realloc(o->s, cap);
    if (!s) {
      o->oom = 1;
      return;
    }
    o->s = s;
    o->cap = cap;
  }
}

/* Hands the text to SQLite (which frees it with sqlite3_free). */
static int finish(struct out *o, char **args, int rc) {
  if (o->oom) rc = SQLITE_NOMEM;
  if (o->s && o->len && o->s[o->len - 1] == '\n') o->s[--o->len] = '\0';
  args[0] = o->s && !o->oom ? sqlite3_mprintf("%s", o->s) : NULL;
  free(o->s);
  return rc;
}

__attribute__((format(printf, 3, 4))) static int error(char **args, int rc, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  args[0] = sqlite3_mprintf("%s", msg);
  return rc;
}

static int quire_error(char **args, int rc, const char *what) {
  return error(args, qs__sqlite_code(rc, SQLITE_ERROR) == SQLITE_IOERR_NOMEM ? SQLITE_NOMEM : SQLITE_ERROR,
               "quire: %s: %s%s%s", what, quire_strerror(rc), *quire_errmsg() ? ": " : "", quire_errmsg());
}

static int parse_timeout(const char *v, unsigned *ms) {
  *ms = 0;
  if (!v) return 0;
  char *end;
  unsigned long x = strtoul(v, &end, 10);
  if (end == v || *end || x > 3600000) return -1;
  *ms = (unsigned)x;
  return 0;
}

static void vid_text(const quire_gid *g, char out[QUIRE_GID_TEXT_LEN + 1]) { quire_gid_format(g, out); }

/* ---- status ------------------------------------------------------------------- */

static void put_status(struct out *o, struct qs_file *f, const quire_volume_status *st) {
  const struct qs_config *c = &f->vol->cl->cfg;
  char vid[QUIRE_GID_TEXT_LEN + 1], cid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid g;
  vid_text(&st->vid, vid);
  quire_client_id(f->vol->cl->c, &g);
  vid_text(&g, cid);
  char last_vfs[512];
  pthread_mutex_lock(&qs__mu);
  snprintf(last_vfs, sizeof last_vfs, "%s", f->vol->last_error);
  pthread_mutex_unlock(&qs__mu);
  outf(o, "volume=%s\nvid=%s\nclient=%s\ndata_dir=%s\n", st->name[0] ? st->name : f->name, vid, cid,
       c->data_dir);
  outf(o, "metastore=%s\npagestore=%s\nautosync=%d\n", c->metastore[0] ? c->metastore : "none",
       c->pagestore[0] ? c->pagestore : "none", c->metastore[0] ? c->autosync : 0);
  outf(o,
       "state=%s\nlocal_lsn=%llu\nremote_lsn=%llu\npage_count=%u\nunpushed_commits=%llu\npush_in_progress=%"
       "d\n",
       quire_volume_state_name(st->state), (unsigned long long)st->local_lsn,
       (unsigned long long)st->remote_lsn, st->page_count, (unsigned long long)st->unpushed_commits,
       st->push_in_progress);
  outf(o, "pages_local=%llu\npages_pending=%llu\n", (unsigned long long)st->pages_local,
       (unsigned long long)st->pages_pending);
  outf(o, "last_sync_error=%s\nlast_vfs_error=%s\n", st->last_error ? st->last_error_msg : "", last_vfs);
  if (f->reader)
    outf(o, "snapshot=%llu\n", (unsigned long long)quire_reader_lsn(f->reader));
  else
    outf(o, "snapshot=none\n");
}

static int p_status(struct qs_file *f, char **args) {
  quire_volume_status st;
  int rc = quire_volume_status_get(f->vol->v, &st);
  if (rc) return quire_error(args, rc, "status");
  struct out o = {0};
  put_status(&o, f, &st);
  return finish(&o, args, SQLITE_OK);
}

/* The connection's snapshot inside a transaction, else the head. */
static int p_snapshot(struct qs_file *f, char **args) {
  quire_reader *r = f->reader;
  int transient = 0, rc = 0;
  if (!r) {
    rc = quire_reader_open(f->vol->v, &r);
    if (rc) return quire_error(args, rc, "snapshot");
    transient = 1;
  }
  quire_gid g;
  char vid[QUIRE_GID_TEXT_LEN + 1];
  quire_volume_vid(f->vol->v, &g);
  vid_text(&g, vid);
  struct out o = {0};
  outf(&o, "vid=%s lsn=%llu remote_lsn=%llu page_count=%u%s", vid, (unsigned long long)quire_reader_lsn(r),
       (unsigned long long)quire_reader_remote_lsn(r), quire_reader_page_count(r),
       transient ? "" : " (this transaction)");
  if (transient) quire_reader_close(r);
  return finish(&o, args, SQLITE_OK);
}

/* ---- sync -------------------------------------------------------------------- */

static int need_services(struct qs_file *f, char **args, const char *what) {
  if (f->vol->cl->cfg.metastore[0]) return 0;
  return error(args, SQLITE_ERROR, "quire: %s: this data directory is local only (QUIRE_METASTORE=none)",
               what);
}

/* push: until nothing is unpushed (a push resumes an interrupted one,
 * which may end before later local commits). */
static int push_all(struct qs_file *f, unsigned ms) {
  int rc = 0;
  for (int i = 0; i < 4; i++) {
    if ((rc = quire_volume_push(f->vol->v, ms)) != 0) return rc;
    quire_volume_status st;
    if ((rc = quire_volume_status_get(f->vol->v, &st)) != 0) return rc;
    if (!st.unpushed_commits && !st.push_in_progress) return 0;
  }
  return rc;
}

static int p_sync(struct qs_file *f, char **args, const char *which, const char *val) {
  unsigned ms;
  if (parse_timeout(val, &ms))
    return error(args, SQLITE_ERROR, "quire: %s: the value is a timeout in ms", which);
  if (need_services(f, args, which)) return SQLITE_ERROR;
  int rc = 0;
  int push = strcmp(which, "quire_pull") != 0, pull = strcmp(which, "quire_push") != 0;
  /* A pull moves the head under every connection: not in the middle of a
   * write transaction of this process (its commit would fail). */
  if (pull && f->write_locked)
    return error(args, SQLITE_ERROR, "quire: %s: finish this connection's write transaction first", which);
  if (pull && qs__vol_lock(f->vol, f) != SQLITE_OK)
    return error(args, SQLITE_BUSY,
                 "quire: %s: another connection of this process has a write transaction open "
                 "on this volume",
                 which);
  if (push) rc = push_all(f, ms);
  if (!rc && pull) rc = quire_volume_pull(f->vol->v, ms);
  if (pull) qs__vol_unlock(f->vol, f);
  if (rc) return quire_error(args, rc, which);
  quire_volume_status st;
  if ((rc = quire_volume_status_get(f->vol->v, &st)) != 0) return quire_error(args, rc, which);
  struct out o = {0};
  outf(&o, "state=%s local_lsn=%llu remote_lsn=%llu unpushed_commits=%llu", quire_volume_state_name(st.state),
       (unsigned long long)st.local_lsn, (unsigned long long)st.remote_lsn,
       (unsigned long long)st.unpushed_commits);
  return finish(&o, args, SQLITE_OK);
}

/* reset and fork change what the volume holds under every connection: not
 * with a transaction open on this one or a writer on another. */
static int exclusive_begin(struct qs_file *f, char **args, const char *which) {
  if (f->lock != SQLITE_LOCK_NONE)
    return error(args, SQLITE_ERROR, "quire: %s: finish this connection's transaction first", which);
  if (qs__vol_lock(f->vol, f) != SQLITE_OK)
    return error(args, SQLITE_BUSY,
                 "quire: %s: another connection of this process has a write transaction open "
                 "on this volume",
                 which);
  return SQLITE_OK;
}

static int p_reset(struct qs_file *f, char **args, const char *val) {
  unsigned ms;
  if (parse_timeout(val, &ms))
    return error(args, SQLITE_ERROR, "quire: quire_reset: the value is a timeout in ms");
  if (need_services(f, args, "quire_reset")) return SQLITE_ERROR;
  int rc = exclusive_begin(f, args, "quire_reset");
  if (rc) return rc;
  int qrc = quire_volume_reset(f->vol->v, ms);
  qs__vol_unlock(f->vol, f);
  if (qrc) return quire_error(args, qrc, "quire_reset");
  return p_status(f, args);
}

static int p_fork(struct qs_file *f, char **args, const char *val) {
  unsigned ms;
  if (parse_timeout(val, &ms))
    return error(args, SQLITE_ERROR, "quire: quire_fork: the value is a timeout in ms");
  if (need_services(f, args, "quire_fork")) return SQLITE_ERROR;
  int rc = exclusive_begin(f, args, "quire_fork");
  if (rc) return rc;
  quire_gid nv;
  int qrc = quire_volume_fork(f->vol->v, ms, &nv);
  qs__vol_unlock(f->vol, f);
  if (qrc) return quire_error(args, qrc, "quire_fork (every transaction on the volume must be finished)");
  char vid[QUIRE_GID_TEXT_LEN + 1];
  vid_text(&nv, vid);
  struct out o = {0};
  outf(&o, "vid=%s", vid);
  return finish(&o, args, SQLITE_OK);
}

/* ---- listings ------------------------------------------------------------------ */

static int p_volumes(struct qs_file *f, char **args) {
  quire_volume_info *list;
  size_t n;
  int rc = quire_volume_list(f->vol->cl->c, &list, &n);
  if (rc) return quire_error(args, rc, "quire_volumes");
  struct out o = {0};
  for (size_t i = 0; i < n; i++) {
    char vid[QUIRE_GID_TEXT_LEN + 1];
    vid_text(&list[i].vid, vid);
    outf(&o, "%s %s\n", vid, list[i].name[0] ? list[i].name : "-");
  }
  quire_volume_list_free(list);
  return finish(&o, args, SQLITE_OK);
}

static int p_pages(struct qs_file *f, char **args) {
  quire_volume_status st;
  int rc = quire_volume_status_get(f->vol->v, &st);
  if (rc) return quire_error(args, rc, "quire_pages");
  uint8_t hdr[100];
  unsigned pgsz = 0, npages = 0;
  if (st.page_count && qs__file_header(f, hdr) == SQLITE_OK && memcmp(hdr, "SQLite format 3", 16) == 0) {
    pgsz = (unsigned)hdr[16] << 8 | hdr[17];
    if (pgsz == 1) pgsz = 65536;
    npages = (unsigned)hdr[28] << 24 | (unsigned)hdr[29] << 16 | (unsigned)hdr[30] << 8 | hdr[31];
  }
  struct out o = {0};
  outf(&o, "page_count=%u\npages_local=%llu\npages_pending=%llu\npages_never_written=%llu\n", st.page_count,
       (unsigned long long)st.pages_local, (unsigned long long)st.pages_pending,
       (unsigned long long)(st.page_count - st.pages_local - st.pages_pending));
  outf(&o, "sqlite_page_size=%u\nsqlite_page_count=%u\n", pgsz, npages);
  return finish(&o, args, SQLITE_OK);
}

struct stats_ctx {
  struct out *o;
};

static void stat_line(void *ctx, const char *name, uint64_t value) {
  outf(((struct stats_ctx *)ctx)->o, "%s=%llu\n", name, (unsigned long long)value);
}

static int p_stats(struct qs_file *f, char **args) {
  quire_stats s;
  quire_volume_stats(f->vol->v, &s);
  struct out o = {0};
  struct stats_ctx ctx = {&o};
  quire_stats_foreach(&s, stat_line, &ctx);
  return finish(&o, args, SQLITE_OK);
}

static int p_version(char **args) {
  struct out o = {0};
  outf(&o, "quire %s (%s), SQLite %s", quire_version(), quire_build_revision(), sqlite3_libversion());
  return finish(&o, args, SQLITE_OK);
}

/* ---- import ------------------------------------------------------------------- */

/* Appends s to o percent-encoded for a URI query value. */
static void uri_escape(struct out *o, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~/", c))
      outf(o, "%c", c);
    else
      outf(o, "%%%02X", c);
  }
}

/* Copies a SQLite database (a plain file, in any journal mode and page
 * size, WAL content included) into the volume with SQLite's backup API,
 * through a second connection on the volume: one local commit. */
static int p_import(struct qs_file *f, char **args, const char *path) {
  if (!path || !*path)
    return error(args, SQLITE_ERROR, "quire: quire_import: give a file: PRAGMA quire_import='x.db'");
  if (f->lock != SQLITE_LOCK_NONE)
    return error(args, SQLITE_ERROR, "quire: quire_import: finish this connection's transaction first");
  const struct qs_config *c = &f->vol->cl->cfg;
  quire_gid g;
  char vid[QUIRE_GID_TEXT_LEN + 1];
  quire_volume_vid(f->vol->v, &g);
  vid_text(&g, vid);
  struct out uri = {0};
  outf(&uri, "file:%s?vfs=%s&dir=", vid, QS_VFS_NAME);
  uri_escape(&uri, c->data_dir);
  outf(&uri, "&metastore=");
  uri_escape(&uri, c->metastore[0] ? c->metastore : "none");
  outf(&uri, "&pagestore=");
  uri_escape(&uri, c->pagestore[0] ? c->pagestore : "none");
  outf(&uri, "&autosync=%d", c->autosync);
  if (uri.oom) {
    free(uri.s);
    return SQLITE_NOMEM;
  }
  sqlite3 *src = NULL, *dst = NULL;
  int rc = sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, qs__base_vfs->zName);
  if (rc != SQLITE_OK) {
    rc = error(args, SQLITE_ERROR, "quire: quire_import: cannot open %s: %s", path,
               src ? sqlite3_errmsg(src) : "");
    goto out;
  }
  rc = sqlite3_open_v2(uri.s, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, QS_VFS_NAME);
  if (rc != SQLITE_OK) {
    rc = error(args, SQLITE_ERROR, "quire: quire_import: cannot open the volume: %s",
               dst ? sqlite3_errmsg(dst) : "");
    goto out;
  }
  sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
  if (!b) {
    rc = error(args, SQLITE_ERROR, "quire: quire_import: %s", sqlite3_errmsg(dst));
    goto out;
  }
  rc = sqlite3_backup_step(b, -1);
  int pages = sqlite3_backup_pagecount(b);
  int frc = sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE || frc != SQLITE_OK) {
    rc = error(args, (frc & 0xff) == SQLITE_BUSY ? SQLITE_BUSY : SQLITE_ERROR,
               "quire: quire_import of %s: %s", path, sqlite3_errmsg(dst));
    goto out;
  }
  int pgsz = 0;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(dst, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    pgsz = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  struct out o = {0};
  outf(&o, "imported %d pages of %d bytes from %s", pages, pgsz, path);
  rc = finish(&o, args, SQLITE_OK);
out:
  sqlite3_close(dst);
  sqlite3_close(src);
  free(uri.s);
  return rc;
}

/* ---- dispatch ----------------------------------------------------------------- */

int qs__pragma(struct qs_file *f, char **args) {
  const char *name = args[1], *val = args[2];
  if (!name) return SQLITE_NOTFOUND;
  if (strcasecmp(name, "journal_mode") == 0) {
    if (val && strcasecmp(val, "wal") == 0) {
      QLOG_INFO("quire sqlite: journal_mode=WAL refused on volume '%s'; the journal mode stays as it was",
                f->name);
      sqlite3_log(SQLITE_WARNING,
                  "quire: journal_mode=WAL is not supported on volume '%s'; the mode is unchanged", f->name);
    }
    return SQLITE_NOTFOUND;
  }
  if (strcasecmp(name, "locking_mode") == 0) {
    if (val && strcasecmp(val, "exclusive") == 0)
      return error(
          args, SQLITE_ERROR,
          "quire: locking_mode=EXCLUSIVE is not supported on a quire volume (SQLite would keep a stale "
          "cache across remote commits); BEGIN IMMEDIATE or BEGIN EXCLUSIVE serialise writers");
    return SQLITE_NOTFOUND;
  }
  if (strncasecmp(name, "quire_", 6) != 0) return SQLITE_NOTFOUND;
  if (strcasecmp(name, "quire_status") == 0) return p_status(f, args);
  if (strcasecmp(name, "quire_snapshot") == 0) return p_snapshot(f, args);
  if (strcasecmp(name, "quire_sync") == 0 || strcasecmp(name, "quire_push") == 0 ||
      strcasecmp(name, "quire_pull") == 0) {
    char which[16];
    snprintf(which, sizeof which, "%s", name);
    for (char *p = which; *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return p_sync(f, args, which, val);
  }
  if (strcasecmp(name, "quire_reset") == 0) return p_reset(f, args, val);
  if (strcasecmp(name, "quire_fork") == 0) return p_fork(f, args, val);
  if (strcasecmp(name, "quire_volumes") == 0) return p_volumes(f, args);
  if (strcasecmp(name, "quire_pages") == 0) return p_pages(f, args);
  if (strcasecmp(name, "quire_stats") == 0) return p_stats(f, args);
  if (strcasecmp(name, "quire_import") == 0) return p_import(f, args, val);
  if (strcasecmp(name, "quire_version") == 0) return p_version(args);
  return error(
      args, SQLITE_ERROR,
      "quire: unknown pragma %s (quire_status, quire_snapshot, quire_sync, quire_push, quire_pull, "
      "quire_reset, quire_fork, quire_volumes, quire_pages, quire_stats, quire_import, quire_version)",
      name);
}
