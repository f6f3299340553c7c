/*
 * sqlite/ext.c — the extension's entry points and what every file shares.
 *
 * Two ways in, one registration:
 *   - loaded (`.load libquire_sqlite`, sqlite3_load_extension): SQLite calls
 *     sqlite3_quiresqlite_init (the name it derives from the file name) or
 *     sqlite3_quire_init with its API routines; the library stays loaded
 *     (SQLITE_OK_LOAD_PERMANENTLY) because the VFS outlives the connection;
 *   - linked: a program linked with libquire_sqlite.so and libsqlite3 calls
 *     quire_sqlite_register(). The API routines are captured from the
 *     linked SQLite through an auto-extension (SQLite hands every
 *     auto-extension its routines), so the rest of the code never calls
 *     SQLite directly either way.
 * Both register the VFS "quire" (the default VFS only with
 * QUIRE_SQLITE_DEFAULT=1) and an auto-extension that gives every new
 * connection the quire_stats table.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqlite/qs_int.h"
#include "util/log.h"

SQLITE_EXTENSION_INIT1

sqlite3_vfs *qs__base_vfs;

/* ---- errors ---------------------------------------------------------------- */

int qs__sqlite_code(int rc, int io_code) {
  switch (rc) {
  case 0: return SQLITE_OK;
  case QUIRE_ECONFLICT: return SQLITE_BUSY_SNAPSHOT;
  case QUIRE_EBUSY: return SQLITE_BUSY;
  case QUIRE_ENOMEM: return SQLITE_IOERR_NOMEM;
  case QUIRE_ECORRUPT: return SQLITE_IOERR_CORRUPTFS;
  default: return io_code;
  }
}

int qs__fail(struct qs_vol *vol, int code, int rc, const char *what) {
  char msg[512];
  const char *detail = rc ? quire_errmsg() : "";
  snprintf(msg, sizeof msg, "quire: %s%s%s%s%s", what, rc ? ": " : "", rc ? quire_strerror(rc) : "",
           *detail ? ": " : "", detail);
  qs__vol_note(vol, msg);
  if ((code & 0xff) == SQLITE_BUSY) {
    QLOG_DEBUG("%s", msg);
  } else {
    QLOG_WARN("%s", msg);
  }
  sqlite3_log(code, "%s", msg);
  return code;
}

/* ---- the VFS --------------------------------------------------------------- */

/* A name that starts with "/", "./" or "../" is a path: the file is a
 * plain file of the default VFS (with its journals), so that ATTACH and
 * VACUUM INTO reach plain files from a connection whose VFS is quire.
 * Every other name is a volume. */
static int is_path(const char *name) {
  return name && (name[0] == '/' || strncmp(name, "./", 2) == 0 || strncmp(name, "../", 3) == 0);
}

/* Journals and "-wal"/"-shm" names of volumes never exist: journals live in
 * memory, so there is never a hot journal to roll back, and WAL is refused.
 * SQLite does not ask about the volumes themselves. */
static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
  (void)vfs;
  if (is_path(name)) return qs__base_vfs->xAccess(qs__base_vfs, name, flags, out);
  *out = 0;
  return SQLITE_OK;
}

/* Nothing named is deleted: journals are in memory (freed when closed) and
 * a volume is never removed through SQLite. */
static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
  (void)vfs;
  if (is_path(name)) return qs__base_vfs->xDelete(qs__base_vfs, name, sync_dir);
  return SQLITE_OK;
}

/* A volume name is not a path: it is kept as given (no working directory
 * prefix), so "orders" is the volume "orders" from any directory. */
static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
  (void)vfs;
  if (is_path(name)) return qs__base_vfs->xFullPathname(qs__base_vfs, name, n, out);
  size_t len = strlen(name);
  if (len >= (size_t)n) return SQLITE_CANTOPEN;
  memcpy(out, name, len + 1);
  return SQLITE_OK;
}

static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags) {
  (void)vfs;
  file->pMethods = NULL;
  if (is_path(name)) return qs__base_vfs->xOpen(qs__base_vfs, name, file, flags, out_flags);
  if (flags & SQLITE_OPEN_WAL) {
    sqlite3_log(SQLITE_CANTOPEN, "quire: WAL is not supported on a quire volume (%s)", name ? name : "");
    return SQLITE_CANTOPEN;
  }
  if (out_flags) *out_flags = flags;
  if (!(flags & SQLITE_OPEN_MAIN_DB) || !name || !*name) return qs__memfile_open(file);
  struct qs_config cfg;
  char err[1024] = "";
  int rc = qs__config_load(&cfg, name, err, sizeof err);
  if (rc == SQLITE_OK) {
    struct qs_file *f = (struct qs_file *)file;
    const char *vid = sqlite3_uri_parameter(name, "vid");
    rc = qs__file_open(f, name, &cfg, vid, flags, err, sizeof err);
  }
  if (rc != SQLITE_OK) {
    QLOG_WARN("%s", err);
    sqlite3_log(rc, "%s", err);
    file->pMethods = NULL;
  }
  return rc;
}

static void *vfs_dlopen(sqlite3_vfs *v, const char *path) {
  return qs__base_vfs->xDlOpen(qs__base_vfs, path);
  (void)v;
}
static void vfs_dlerror(sqlite3_vfs *v, int n, char *out) {
  qs__base_vfs->xDlError(qs__base_vfs, n, out);
  (void)v;
}
static void (*vfs_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void) {
  (void)v;
  return qs__base_vfs->xDlSym(qs__base_vfs, h, sym);
}
static void vfs_dlclose(sqlite3_vfs *v, void *h) {
  qs__base_vfs->xDlClose(qs__base_vfs, h);
  (void)v;
}
static int vfs_randomness(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  return qs__base_vfs->xRandomness(qs__base_vfs, n, out);
}
static int vfs_sleep(sqlite3_vfs *v, int us) {
  return qs__base_vfs->xSleep(qs__base_vfs, us);
  (void)v;
}
static int vfs_current_time(sqlite3_vfs *v, double *t) {
  (void)v;
  return qs__base_vfs->xCurrentTime(qs__base_vfs, t);
}
static int vfs_last_error(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  return qs__base_vfs->xGetLastError ? qs__base_vfs->xGetLastError(qs__base_vfs, n, out) : 0;
}
static int vfs_current_time64(sqlite3_vfs *v, sqlite3_int64 *t) {
  (void)v;
  if (qs__base_vfs->iVersion >= 2 && qs__base_vfs->xCurrentTimeInt64)
    return qs__base_vfs->xCurrentTimeInt64(qs__base_vfs, t);
  double d;
  int rc = qs__base_vfs->xCurrentTime(qs__base_vfs, &d);
  *t = (sqlite3_int64)(d * 86400000.0);
  return rc;
}

static sqlite3_vfs qs_vfs = {
    .iVersion = 2,
    .szOsFile = 0, /* set at registration */
    .mxPathname = 512,
    .zName = QS_VFS_NAME,
    .xOpen = vfs_open,
    .xDelete = vfs_delete,
    .xAccess = vfs_access,
    .xFullPathname = vfs_full_pathname,
    .xDlOpen = vfs_dlopen,
    .xDlError = vfs_dlerror,
    .xDlSym = vfs_dlsym,
    .xDlClose = vfs_dlclose,
    .xRandomness = vfs_randomness,
    .xSleep = vfs_sleep,
    .xCurrentTime = vfs_current_time,
    .xGetLastError = vfs_last_error,
    .xCurrentTimeInt64 = vfs_current_time64,
};

/* Registers the VFS once per process (a second call finds it). */
static int register_vfs(char **err) {
  pthread_mutex_lock(&qs__mu);
  int rc = SQLITE_OK;
  if (!qs__base_vfs) {
    sqlite3_vfs *base = sqlite3_vfs_find("unix");
    if (!base || base == &qs_vfs) base = sqlite3_vfs_find(NULL);
    if (!base || base == &qs_vfs) {
      if (err) *err = sqlite3_mprintf("quire: no default VFS to delegate to");
      rc = SQLITE_ERROR;
    } else {
      qs__base_vfs = base;
      int sz = (int)sizeof(struct qs_file);
      qs_vfs.szOsFile = base->szOsFile > sz ? base->szOsFile : sz;
      const char *def = getenv("QUIRE_SQLITE_DEFAULT");
      int make_default = def && (strcmp(def, "1") == 0 || strcasecmp(def, "true") == 0);
      rc = sqlite3_vfs_register(&qs_vfs, make_default);
      if (rc != SQLITE_OK) {
        qs__base_vfs = NULL;
        if (err) *err = sqlite3_mprintf("quire: cannot register the VFS (%d)", rc);
      }
    }
  }
  pthread_mutex_unlock(&qs__mu);
  return rc;
}

/* The auto-extension: every new connection gets the quire_stats table. In
 * linked mode it is also how the API routines are captured. */
static int auto_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  if (!sqlite3_api) {
    SQLITE_EXTENSION_INIT2(api);
  }
  int rc = register_vfs(err);
  if (rc == SQLITE_OK) rc = qs__vtab_register(db);
  return rc;
}

static int auto_registered; /* qs__mu */

static int register_auto(void) {
  pthread_mutex_lock(&qs__mu);
  int first = !auto_registered;
  auto_registered = 1;
  pthread_mutex_unlock(&qs__mu);
  return first ? sqlite3_auto_extension((void (*)(void))auto_init) : SQLITE_OK;
}

/* The loadable entry point. */
__attribute__((visibility("default"))) int sqlite3_quire_init(sqlite3 *db, char **err,
                                                              const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  int rc = register_vfs(err);
  if (rc == SQLITE_OK) rc = register_auto();
  if (rc == SQLITE_OK) rc = qs__vtab_register(db);
  return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}

/* The name SQLite derives from "libquire_sqlite.so". */
__attribute__((visibility("default"))) int sqlite3_quiresqlite_init(sqlite3 *db, char **err,
                                                                    const sqlite3_api_routines *api) {
  return sqlite3_quire_init(db, err, api);
}

/* ---- linked mode ------------------------------------------------------------ */

typedef int (*auto_ext_fn)(void (*)(void));
typedef int (*open_fn)(const char *, sqlite3 **);
typedef int (*close_fn)(sqlite3 *);

/* Registers the VFS "quire" with the SQLite library the program is linked
 * with (found among the process's global symbols). Returns an SQLite code:
 * SQLITE_ERROR when no SQLite library is linked in. Safe to call more than
 * once and from several threads. */
__attribute__((visibility("default"))) int quire_sqlite_register(void) {
  if (sqlite3_api) {
    int rc = register_vfs(NULL);
    return rc == SQLITE_OK ? register_auto() : rc;
  }
  auto_ext_fn auto_ext = (auto_ext_fn)dlsym(RTLD_DEFAULT, "sqlite3_auto_extension");
  open_fn open_db = (open_fn)dlsym(RTLD_DEFAULT, "sqlite3_open");
  close_fn close_db = (close_fn)dlsym(RTLD_DEFAULT, "sqlite3_close");
  if (!auto_ext || !open_db || !close_db) return SQLITE_ERROR;
  pthread_mutex_lock(&qs__mu);
  int first = !auto_registered;
  auto_registered = 1;
  pthread_mutex_unlock(&qs__mu);
  int rc = first ? auto_ext((void (*)(void))auto_init) : SQLITE_OK;
  if (rc != SQLITE_OK) return rc;
  /* Opening any connection runs auto_init with the routines. */
  sqlite3 *db = NULL;
  rc = open_db(":memory:", &db);
  close_db(db);
  if (rc == SQLITE_OK && !sqlite3_api) rc = SQLITE_ERROR;
  return rc;
}
