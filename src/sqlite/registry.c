/*
 * sqlite/registry.c — configuration, and the process-wide records shared by
 * every connection: one quire_client per data directory (the local store
 * admits one client per directory and process) and one volume record per
 * open volume (its write lock, its cached conflict state, its last error).
 *
 * Configuration: the environment first (QUIRE_DATA_DIR, QUIRE_METASTORE,
 * QUIRE_PAGESTORE, QUIRE_TOKEN, QUIRE_AUTOSYNC, QUIRE_SYNC,
 * QUIRE_FETCH_TIMEOUT_MS, QUIRE_CLOSE_PUSH_MS), then the URI parameters of
 * the database name (dir, metastore, pagestore, autosync, sync,
 * fetch_timeout_ms, close_push_ms). The defaults point at `quire server` on
 * this machine. A client is opened by the first connection on its data
 * directory; a later connection that asks for other services or another
 * autosync setting is refused rather than silently given the first one's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "sqlite/qs_int.h"
#include "util/log.h"

pthread_mutex_t qs__mu = PTHREAD_MUTEX_INITIALIZER;
static struct qs_client *clients; /* qs__mu */
static struct qs_vol *vols;       /* qs__mu */

/* ---- configuration ---------------------------------------------------------- */

static int parse_bool(const char *s, int *out) {
  static const char *yes[] = {"1", "on", "true", "yes"}, *no[] = {"0", "off", "false", "no"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

static int parse_uint(const char *s, unsigned *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v > UINT32_MAX || *s == '-') return -1;
  *out = (unsigned)v;
  return 0;
}

static int parse_sync(const char *s, int *out) {
  static const char *names[] = {"full", "normal", "off"};
  for (int i = 0; i < 3; i++)
    if (strcasecmp(s, names[i]) == 0) return *out = i, 0;
  return -1;
}

static int copy_str(char *dst, size_t cap, const char *s) {
  size_t n = strlen(s);
  if (n >= cap) return -1;
  memcpy(dst, s, n + 1);
  return 0;
}

/* Applies one setting (from the environment or a URI parameter). */
static int apply(struct qs_config *c, const char *key, const char *val, const char *from, char *err,
                 size_t errlen) {
  int bad = 0;
  if (strcmp(key, "dir") == 0)
    bad = !*val || copy_str(c->data_dir, sizeof c->data_dir, val);
  else if (strcmp(key, "metastore") == 0)
    bad = copy_str(c->metastore, sizeof c->metastore, val);
  else if (strcmp(key, "pagestore") == 0)
    bad = copy_str(c->pagestore, sizeof c->pagestore, val);
  else if (strcmp(key, "token") == 0)
    bad = copy_str(c->token, sizeof c->token, val);
  else if (strcmp(key, "autosync") == 0)
    bad = parse_bool(val, &c->autosync);
  else if (strcmp(key, "sync") == 0)
    bad = parse_sync(val, &c->sync_mode);
  else if (strcmp(key, "fetch_timeout_ms") == 0)
    bad = parse_uint(val, &c->fetch_timeout_ms);
  else if (strcmp(key, "close_push_ms") == 0)
    bad = parse_uint(val, &c->close_push_ms);
  if (bad) snprintf(err, errlen, "quire: bad value '%s' for %s %s", val, from, key);
  return bad ? SQLITE_ERROR : SQLITE_OK;
}

int qs__config_load(struct qs_config *c, const char *zName, char *err, size_t errlen) {
  static const struct {
    const char *env, *key;
  } envs[] = {{"QUIRE_DATA_DIR", "dir"},
              {"QUIRE_METASTORE", "metastore"},
              {"QUIRE_PAGESTORE", "pagestore"},
              {"QUIRE_TOKEN", "token"},
              {"QUIRE_AUTOSYNC", "autosync"},
              {"QUIRE_SYNC", "sync"},
              {"QUIRE_FETCH_TIMEOUT_MS", "fetch_timeout_ms"},
              {"QUIRE_CLOSE_PUSH_MS", "close_push_ms"}};
  memset(c, 0, sizeof *c);
  c->autosync = 1;
  c->sync_mode = QUIRE_SYNC_FULL;
  c->close_push_ms = 10000;
  snprintf(c->metastore, sizeof c->metastore, "http://127.0.0.1:3001");
  snprintf(c->pagestore, sizeof c->pagestore, "http://127.0.0.1:3002");
  const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
  if (xdg && *xdg)
    snprintf(c->data_dir, sizeof c->data_dir, "%s/quire", xdg);
  else if (home && *home)
    snprintf(c->data_dir, sizeof c->data_dir, "%s/.local/share/quire", home);
  int rc;
  for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
    const char *v = getenv(envs[i].env);
    if (v && (rc = apply(c, envs[i].key, v, "environment variable for", err, errlen)) != SQLITE_OK) return rc;
  }
  if (zName) {
    static const char *keys[] = {"dir",  "metastore",        "pagestore",    "autosync",
                                 "sync", "fetch_timeout_ms", "close_push_ms"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
      const char *v = sqlite3_uri_parameter(zName, keys[i]);
      if (v && (rc = apply(c, keys[i], v, "URI parameter", err, errlen)) != SQLITE_OK) return rc;
    }
  }
  if (!c->data_dir[0]) {
    snprintf(err, errlen, "quire: no data directory (set QUIRE_DATA_DIR or HOME, or give dir=)");
    return SQLITE_ERROR;
  }
  /* "none" or empty for either service: local only. */
  if (!c->metastore[0] || !c->pagestore[0] || strcmp(c->metastore, "none") == 0 ||
      strcmp(c->pagestore, "none") == 0)
    c->metastore[0] = c->pagestore[0] = '\0';
  return SQLITE_OK;
}

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *path) {
  char p[4096];
  if (copy_str(p, sizeof p, path)) return -ENAMETOOLONG;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST) return -errno;
    *s = '/';
  }
  if (mkdir(p, 0700) != 0 && errno != EEXIST) return -errno;
  return 0;
}

/* ---- clients ---------------------------------------------------------------- */

/* Finds or opens the client of cfg's data directory and takes a reference
 * (qs__mu held). */
static int client_get(const struct qs_config *cfg, struct qs_client **out, char *err, size_t errlen) {
  char canon[PATH_MAX];
  int rc = make_dirs(cfg->data_dir);
  if (rc || !realpath(cfg->data_dir, canon)) {
    snprintf(err, errlen, "quire: cannot create the data directory %s: %s", cfg->data_dir,
             strerror(rc ? -rc : errno));
    return SQLITE_CANTOPEN;
  }
  for (struct qs_client *cl = clients; cl; cl = cl->next) {
    if (strcmp(cl->cfg.data_dir, canon) != 0) continue;
    const char *what = strcmp(cl->cfg.metastore, cfg->metastore)   ? "metastore"
                       : strcmp(cl->cfg.pagestore, cfg->pagestore) ? "pagestore"
                       : cl->cfg.autosync != cfg->autosync         ? "autosync"
                                                                   : NULL;
    if (what) {
      snprintf(err, errlen,
               "quire: data directory %s is already open in this process with another %s setting (one "
               "client per data directory: give every connection on it the same settings)",
               canon, what);
      return SQLITE_CANTOPEN;
    }
    cl->refs++;
    *out = cl;
    return SQLITE_OK;
  }
  struct qs_client *cl = calloc(1, sizeof *cl);
  if (!cl) return SQLITE_NOMEM;
  cl->cfg = *cfg;
  snprintf(cl->cfg.data_dir, sizeof cl->cfg.data_dir, "%s", canon);
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = cl->cfg.data_dir;
  o.metastore_url = cl->cfg.metastore;
  o.pagestore_url = cl->cfg.pagestore;
  o.token = cl->cfg.token[0] ? cl->cfg.token : NULL;
  o.autosync = cl->cfg.autosync;
  o.sync_mode = cl->cfg.sync_mode;
  o.fetch_timeout_ms = cl->cfg.fetch_timeout_ms;
  rc = quire_client_open(&o, &cl->c);
  if (rc) {
    snprintf(err, errlen, "quire: cannot open the data directory %s: %s: %s", canon, quire_strerror(rc),
             quire_errmsg());
    free(cl);
    return qs__sqlite_code(rc, SQLITE_CANTOPEN) == SQLITE_BUSY ? SQLITE_BUSY : SQLITE_CANTOPEN;
  }
  cl->refs = 1;
  cl->next = clients;
  clients = cl;
  *out = cl;
  return SQLITE_OK;
}

/* Drops a reference; the last one closes the client (qs__mu not held). */
static void client_put(struct qs_client *cl) {
  pthread_mutex_lock(&qs__mu);
  int last = --cl->refs == 0;
  if (last) {
    struct qs_client **pp = &clients;
    while (*pp && *pp != cl) pp = &(*pp)->next;
    if (*pp) *pp = cl->next;
  }
  pthread_mutex_unlock(&qs__mu);
  if (!last) return;
  int rc = quire_client_close(cl->c);
  if (rc) QLOG_WARN("quire sqlite: closing %s: %s: %s", cl->cfg.data_dir, quire_strerror(rc), quire_errmsg());
  free(cl);
}

/* ---- volumes ---------------------------------------------------------------- */

int qs__vol_acquire(const struct qs_config *cfg, const char *name, const char *vid, unsigned flags,
                    struct qs_vol **out, char *err, size_t errlen) {
  *out = NULL;
  struct qs_client *cl;
  pthread_mutex_lock(&qs__mu);
  int rc = client_get(cfg, &cl, err, errlen);
  pthread_mutex_unlock(&qs__mu);
  if (rc) return rc;
  /* Outside qs__mu: adopting a volume id may pull from the metastore. */
  quire_volume *v = NULL;
  int qrc = 0;
  if (vid) {
    quire_gid g;
    qrc = quire_gid_parse(vid, strlen(vid), QUIRE_GID_VOLUME, &g);
    if (qrc) {
      snprintf(err, errlen, "quire: vid=%s is not a volume id: %s", vid, quire_errmsg());
      client_put(cl);
      return SQLITE_CANTOPEN;
    }
    if (strcmp(name, vid) != 0) qrc = quire_volume_bind(cl->c, name, &g);
  }
  if (!qrc) qrc = quire_volume_open(cl->c, name, flags, &v);
  if (qrc) {
    snprintf(err, errlen, "quire: cannot open volume '%s' in %s: %s: %s", name, cl->cfg.data_dir,
             quire_strerror(qrc), quire_errmsg());
    client_put(cl);
    return qrc == QUIRE_EBUSY ? SQLITE_BUSY : SQLITE_CANTOPEN;
  }
  pthread_mutex_lock(&qs__mu);
  struct qs_vol *vol;
  int shared = 0;
  for (vol = vols; vol; vol = vol->next)
    if (vol->v == v) break;
  if (vol) {
    shared = 1;
    vol->refs++;
    cl->refs--; /* the record holds one client reference already */
  } else if ((vol = calloc(1, sizeof *vol)) != NULL) {
    vol->cl = cl;
    vol->v = v;
    vol->refs = 1;
    vol->state_epoch = UINT64_MAX;
    vol->next = vols;
    vols = vol;
  }
  pthread_mutex_unlock(&qs__mu);
  if (!vol) {
    quire_volume_close(v);
    client_put(cl);
    return SQLITE_NOMEM;
  }
  if (shared) quire_volume_close(v); /* one quire handle per record */
  *out = vol;
  return SQLITE_OK;
}

/* The last close of a volume with autosync pushes what is unpushed (the
 * process may be about to exit), unless the services are known down. */
static void push_at_close(struct qs_vol *vol) {
  const struct qs_config *c = &vol->cl->cfg;
  if (!c->autosync || !c->metastore[0] || !c->close_push_ms) return;
  quire_volume_status st;
  if (quire_volume_status_get(vol->v, &st) != 0) return;
  if (!st.unpushed_commits && !st.push_in_progress) return;
  if (st.state != QUIRE_STATE_OK) return;
  int rc = quire_volume_push(vol->v, c->close_push_ms);
  if (rc && rc != QUIRE_ECONFLICT)
    QLOG_WARN("quire sqlite: volume '%s': the push at close failed (%s: %s); it resumes at the next open",
              st.name, quire_strerror(rc), quire_errmsg());
}

void qs__vol_release(struct qs_vol *vol) {
  if (!vol) return;
  pthread_mutex_lock(&qs__mu);
  int last = --vol->refs == 0;
  if (last) {
    struct qs_vol **pp = &vols;
    while (*pp && *pp != vol) pp = &(*pp)->next;
    if (*pp) *pp = vol->next;
  }
  pthread_mutex_unlock(&qs__mu);
  if (!last) return;
  push_at_close(vol);
  quire_volume_close(vol->v);
  client_put(vol->cl);
  free(vol);
}

int qs__vol_lock(struct qs_vol *vol, const void *owner) {
  pthread_mutex_lock(&qs__mu);
  int rc = SQLITE_OK;
  if (vol->owner && vol->owner != owner)
    rc = SQLITE_BUSY;
  else
    vol->owner = owner;
  pthread_mutex_unlock(&qs__mu);
  return rc;
}

void qs__vol_unlock(struct qs_vol *vol, const void *owner) {
  pthread_mutex_lock(&qs__mu);
  if (vol->owner == owner) vol->owner = NULL;
  pthread_mutex_unlock(&qs__mu);
}

int qs__vol_locked(struct qs_vol *vol) {
  pthread_mutex_lock(&qs__mu);
  int r = vol->owner != NULL;
  pthread_mutex_unlock(&qs__mu);
  return r;
}

/* The conflict state costs a pass over the volume's page versions
 * (quire_volume_status_get counts them), so it is computed again only when
 * the counters that can change it (conflicts, resets, forks) moved. */
int qs__vol_in_conflict(struct qs_vol *vol) {
  quire_stats s;
  quire_volume_stats(vol->v, &s);
  uint64_t epoch = s.conflicts + s.resets + s.forks;
  pthread_mutex_lock(&qs__mu);
  int known = vol->state_epoch == epoch, r = vol->in_conflict;
  pthread_mutex_unlock(&qs__mu);
  if (known) return r;
  quire_volume_status st;
  if (quire_volume_status_get(vol->v, &st) != 0) return r;
  pthread_mutex_lock(&qs__mu);
  vol->in_conflict = r = st.state == QUIRE_STATE_CONFLICT;
  vol->state_epoch = epoch;
  pthread_mutex_unlock(&qs__mu);
  return r;
}

void qs__vol_note(struct qs_vol *vol, const char *msg) {
  if (!vol) return;
  pthread_mutex_lock(&qs__mu);
  snprintf(vol->last_error, sizeof vol->last_error, "%s", msg);
  pthread_mutex_unlock(&qs__mu);
}
