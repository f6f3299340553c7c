/*
 * metastore/catalog_lsm.c — the catalog in an LSM file (see catalog.h).
 *
 * Keys are {vid (16 bytes)}{lsn (8 bytes, big-endian)}, so one volume's
 * commits are contiguous and in LSN order; values are commit records
 * exactly as stored in object storage. The file is a cache: it is opened
 * with LSM_SYNC_NORMAL (a process crash loses nothing acknowledged; a power
 * loss may lose the newest entries, which the next catch-up fetches again),
 * and a file that fails validation at open is moved aside and rebuilt.
 *
 * At open one scan learns every volume's latest LSN (kept in memory: a hash
 * of vid → latest) and the counts for the metrics. Locking: c->mu guards the
 * latest table and serialises appends (check-then-write must be atomic);
 * reads go straight to the LSM, which is thread-safe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "metastore/catalog.h"
#include "metastore/gidmap.h"
#include "quire/lsm.h"
#include "util/alloc.h"
#include "util/endian.h"
#include "util/err.h"
#include "util/log.h"

#define KEY_LEN (QUIRE_GID_SIZE + 8)

struct latest {
  struct ms_gid_node node; /* first: the table links and keys it */
  quire_lsn lsn;
};

struct lsm_catalog {
  ms_catalog base;
  lsm_db *db;
  pthread_mutex_t mu;
  struct ms_gidmap latest; /* vid -> struct latest */
  uint64_t ncommits;
};

static void make_key(uint8_t key[KEY_LEN], const quire_gid *vid, quire_lsn lsn) {
  memcpy(key, vid->b, QUIRE_GID_SIZE);
  st_be64(key + QUIRE_GID_SIZE, lsn);
}

static struct latest *find(struct lsm_catalog *c, const quire_gid *vid) {
  return (struct latest *)quire__gidmap_find(&c->latest, vid);
}

/* Sets vid's latest. Call with c->mu. */
static int set_latest(struct lsm_catalog *c, const quire_gid *vid, quire_lsn lsn) {
  struct latest *e = find(c, vid);
  if (!e) {
    e = quire__calloc(1, sizeof *e);
    if (!e) return QUIRE_ENOMEM;
    e->node.vid = *vid;
    quire__gidmap_insert(&c->latest, &e->node);
  }
  e->lsn = lsn;
  return 0;
}

static int lsm_latest_of(ms_catalog *base, const quire_gid *vid, quire_lsn *out) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  pthread_mutex_lock(&c->mu);
  struct latest *e = find(c, vid);
  *out = e ? e->lsn : 0;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

static int lsm_cat_get(ms_catalog *base, const quire_gid *vid, quire_lsn lsn, quire_buf *out) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  uint8_t key[KEY_LEN];
  make_key(key, vid, lsn);
  lsm_value v = {0};
  int rc = lsm_get(c->db, key, KEY_LEN, &v);
  if (rc) return rc;
  rc = quire__buf_append(out, v.data, v.len);
  lsm_value_release(&v);
  return rc;
}

static int lsm_cat_append(ms_catalog *base, const quire_gid *vid, quire_lsn first, size_t n,
                          const uint8_t *const *recs, const size_t *lens) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  if (first == 0) return quire__err(QUIRE_EINVAL, "catalog append at lsn 0");
  pthread_mutex_lock(&c->mu);
  struct latest *e = find(c, vid);
  quire_lsn latest = e ? e->lsn : 0;
  int rc = 0;
  lsm_txn *t = NULL;
  size_t added = 0;
  if (latest && first > latest + 1) { /* an empty volume starts anywhere (at its base) */
    rc = quire__err(QUIRE_EINVAL, "catalog append at lsn %llu leaves a gap after %llu",
                    (unsigned long long)first, (unsigned long long)latest);
    goto out;
  }
  if (first + n - 1 <= latest) goto out; /* all there already */
  rc = lsm_txn_begin(c->db, 0, &t);
  if (rc) goto out;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (first + i <= latest) continue;
    uint8_t key[KEY_LEN];
    make_key(key, vid, first + i);
    rc = lsm_txn_put(t, key, KEY_LEN, recs[i], lens[i]);
    added++;
  }
  if (rc) {
    lsm_txn_abort(t);
    goto out;
  }
  rc = lsm_txn_commit(t);
  if (rc) goto out;
  rc = set_latest(c, vid, first + n - 1);
  c->ncommits += added;
out:
  pthread_mutex_unlock(&c->mu);
  return rc;
}

static int lsm_cat_forget(ms_catalog *base, const quire_gid *vid) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  pthread_mutex_lock(&c->mu);
  struct latest *e = find(c, vid);
  int rc = 0;
  if (e && e->lsn) {
    /* Count what goes (for the stats), then one range tombstone. */
    uint8_t lo[KEY_LEN], hi[KEY_LEN];
    make_key(lo, vid, 0);
    make_key(hi, vid, UINT64_MAX);
    uint64_t n = 0;
    lsm_cursor *cur;
    rc = lsm_cursor_open(c->db, &cur);
    if (!rc) {
      for (rc = lsm_cursor_seek(cur, lo, KEY_LEN, LSM_SEEK_GE); rc == 0; rc = lsm_cursor_next(cur)) {
        const void *k;
        size_t kl;
        if ((rc = lsm_cursor_key(cur, &k, &kl)) != 0 || kl != KEY_LEN ||
            memcmp(k, vid->b, QUIRE_GID_SIZE) != 0)
          break;
        n++;
      }
      lsm_cursor_close(cur);
      if (rc == QUIRE_EEND || rc == QUIRE_ENOTFOUND) rc = 0;
    }
    lsm_txn *t = NULL;
    if (!rc) rc = lsm_txn_begin(c->db, 0, &t);
    if (!rc && (rc = lsm_txn_delete_range(t, lo, KEY_LEN, hi, KEY_LEN)) == 0) {
      uint8_t last[KEY_LEN];
      make_key(last, vid, UINT64_MAX);
      rc = lsm_txn_delete(t, last, KEY_LEN);
    }
    if (t && rc)
      lsm_txn_abort(t);
    else if (t)
      rc = lsm_txn_commit(t);
    if (!rc) {
      e->lsn = 0;
      c->ncommits -= n;
    }
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

static void lsm_cat_stats(ms_catalog *base, uint64_t *volumes, uint64_t *commits) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  pthread_mutex_lock(&c->mu);
  *volumes = c->latest.count;
  *commits = c->ncommits;
  pthread_mutex_unlock(&c->mu);
}

static void free_latest(struct ms_gid_node *n) { quire__free(n); }

static void free_table(struct lsm_catalog *c) { quire__gidmap_free(&c->latest, free_latest); }

static int lsm_cat_close(ms_catalog *base) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  int rc = lsm_close(c->db);
  free_table(c);
  pthread_mutex_destroy(&c->mu);
  quire__free(c);
  return rc;
}

static const struct ms_catalog_ops lsm_ops = {lsm_latest_of,  lsm_cat_get,   lsm_cat_append,
                                              lsm_cat_forget, lsm_cat_stats, lsm_cat_close};

/* One pass over every key: each volume's latest LSN and the counts. Keys
 * that are not {vid}{lsn} are corruption. */
static int scan(struct lsm_catalog *c) {
  lsm_cursor *cur;
  int rc = lsm_cursor_open(c->db, &cur);
  if (rc) return rc;
  for (rc = lsm_cursor_first(cur); rc == 0; rc = lsm_cursor_next(cur)) {
    const void *k;
    size_t kl;
    rc = lsm_cursor_key(cur, &k, &kl);
    if (rc) break;
    if (kl != KEY_LEN) {
      rc = quire__err(QUIRE_ECORRUPT, "catalog key of %zu bytes", kl);
      break;
    }
    quire_gid vid;
    memcpy(vid.b, k, QUIRE_GID_SIZE);
    rc = set_latest(c, &vid, ld_be64((const uint8_t *)k + QUIRE_GID_SIZE));
    if (rc) break;
    c->ncommits++;
  }
  lsm_cursor_close(cur);
  return rc == QUIRE_EEND ? 0 : rc;
}

static int open_db(const char *path, lsm_db **out) {
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = LSM_SYNC_NORMAL;
  return lsm_open(path, &o, out);
}

int quire__catalog_lsm_open(const char *path, ms_catalog **out) {
  *out = NULL;
  struct lsm_catalog *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  if (quire__gidmap_init(&c->latest) != 0) {
    quire__free(c);
    return QUIRE_ENOMEM;
  }
  pthread_mutex_init(&c->mu, NULL);
  int rc = open_db(path, &c->db);
  if (rc == 0) {
    rc = scan(c);
    if (rc) {
      lsm_close(c->db);
      c->db = NULL;
    }
  }
  if (rc == QUIRE_ECORRUPT || rc == QUIRE_EVERSION) {
    /* A cache that fails validation is rebuilt, never trusted. */
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.corrupt", path);
    QLOG_WARN("metastore: catalog %s is unreadable (%s); moved to %s, rebuilding from the store", path,
              quire_errmsg(), aside);
    if (rename(path, aside) != 0 && errno != ENOENT) {
      rc = quire__errno("moving %s aside", path);
    } else {
      free_table(c);
      c->ncommits = 0;
      rc = quire__gidmap_init(&c->latest);
      if (rc == 0) rc = open_db(path, &c->db);
    }
  }
  if (rc) {
    free_table(c);
    pthread_mutex_destroy(&c->mu);
    quire__free(c);
    return rc;
  }
  c->base.ops = &lsm_ops;
  *out = &c->base;
  return 0;
}
