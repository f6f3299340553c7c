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
 * At open one scan learns every volume's latest LSN (kept in memory: a
 * lock-free table of vid → latest, gidmap.h) and the counts for the
 * metrics. Locking: a volume's entry has its own mutex, which serialises
 * that volume's appends (check-then-write must be atomic) and is held
 * across lsm_txn_commit; the new latest is published with one atomic store
 * after the commit, so latest() is a lock-free lookup and an atomic load.
 * c->tab's mutex is taken only to add a volume. Reads go straight to the
 * LSM, which is thread-safe and never blocks readers behind commits.
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
  struct ms_gid_node node; /* first: the table keys it */
  pthread_mutex_t mu;      /* serialises this volume's appends */
  _Atomic quire_lsn lsn;   /* written under mu, after the records are committed */
};

struct lsm_catalog {
  ms_catalog base;
  lsm_db *db;
  struct ms_gidtab latest;                 /* vid -> struct latest */
  atomic_uint_fast64_t ncommits, nvolumes; /* nvolumes: entries with lsn > 0 */
};

static void make_key(uint8_t key[KEY_LEN], const quire_gid *vid, quire_lsn lsn) {
  memcpy(key, vid->b, QUIRE_GID_SIZE);
  st_be64(key + QUIRE_GID_SIZE, lsn);
}

static struct ms_gid_node *make_latest(const quire_gid *vid, void *ctx) {
  (void)ctx;
  struct latest *e = quire__calloc(1, sizeof *e);
  if (!e) return NULL;
  e->node.vid = *vid;
  pthread_mutex_init(&e->mu, NULL);
  return &e->node;
}

/* vid's entry, created if new; NULL only on allocation failure. */
static struct latest *entry(struct lsm_catalog *c, const quire_gid *vid) {
  return (struct latest *)quire__gidtab_get(&c->latest, vid, make_latest, NULL);
}

/* Publishes vid's latest (call with e->mu held, or before any reader). */
static void set_latest(struct lsm_catalog *c, struct latest *e, quire_lsn lsn) {
  if (atomic_load_explicit(&e->lsn, memory_order_relaxed) == 0 && lsn) atomic_fetch_add(&c->nvolumes, 1);
  atomic_store_explicit(&e->lsn, lsn, memory_order_release);
}

static int lsm_latest_of(ms_catalog *base, const quire_gid *vid, quire_lsn *out) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  struct latest *e = (struct latest *)quire__gidtab_find(&c->latest, vid);
  *out = e ? atomic_load_explicit(&e->lsn, memory_order_acquire) : 0;
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
  struct latest *e = entry(c, vid);
  if (!e) return QUIRE_ENOMEM;
  pthread_mutex_lock(&e->mu);
  if (quire__catalog_append_hook) quire__catalog_append_hook(vid, first);
  quire_lsn latest = atomic_load_explicit(&e->lsn, memory_order_relaxed);
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
  set_latest(c, e, first + n - 1);
  atomic_fetch_add(&c->ncommits, added);
out:
  pthread_mutex_unlock(&e->mu);
  return rc;
}

static int lsm_cat_forget(ms_catalog *base, const quire_gid *vid) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  struct latest *e = (struct latest *)quire__gidtab_find(&c->latest, vid);
  if (!e) return 0;
  uint8_t lo[KEY_LEN], hi[KEY_LEN];
  make_key(lo, vid, 0);
  make_key(hi, vid, UINT64_MAX);
  pthread_mutex_lock(&e->mu);
  int rc = 0;
  if (atomic_load_explicit(&e->lsn, memory_order_relaxed)) {
    /* Count what goes (the commits-held metric), then one range delete. */
    uint64_t held = 0;
    lsm_cursor *cur = NULL;
    rc = lsm_cursor_open(c->db, &cur);
    for (rc = rc ? rc : lsm_cursor_seek(cur, lo, KEY_LEN, LSM_SEEK_GE); rc == 0; rc = lsm_cursor_next(cur)) {
      const void *k;
      size_t kl;
      if ((rc = lsm_cursor_key(cur, &k, &kl)) != 0) break;
      if (kl != KEY_LEN || memcmp(k, vid->b, QUIRE_GID_SIZE) != 0) break;
      held++;
    }
    if (rc == QUIRE_EEND || rc == QUIRE_ENOTFOUND) rc = 0;
    if (cur) lsm_cursor_close(cur);
    lsm_txn *t = NULL;
    if (!rc) rc = lsm_txn_begin(c->db, 0, &t);
    if (!rc) rc = lsm_txn_delete_range(t, lo, KEY_LEN, hi, KEY_LEN);
    if (!rc) rc = lsm_txn_commit(t);
    else if (t) lsm_txn_abort(t);
    if (!rc) {
      atomic_store_explicit(&e->lsn, 0, memory_order_release);
      atomic_fetch_sub(&c->nvolumes, 1);
      atomic_fetch_sub(&c->ncommits, held);
    }
  }
  pthread_mutex_unlock(&e->mu);
  return rc;
}

static void lsm_cat_stats(ms_catalog *base, uint64_t *volumes, uint64_t *commits) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  *volumes = atomic_load(&c->nvolumes);
  *commits = atomic_load(&c->ncommits);
}

static void free_latest(struct ms_gid_node *n) {
  struct latest *e = (struct latest *)n;
  pthread_mutex_destroy(&e->mu);
  quire__free(e);
}

static void free_table(struct lsm_catalog *c) { quire__gidtab_free(&c->latest, free_latest); }

static int lsm_cat_close(ms_catalog *base) {
  struct lsm_catalog *c = (struct lsm_catalog *)base;
  int rc = lsm_close(c->db);
  free_table(c);
  quire__free(c);
  return rc;
}

static const struct ms_catalog_ops lsm_ops = {lsm_latest_of, lsm_cat_get,   lsm_cat_append,
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
    struct latest *e = entry(c, &vid);
    if (!e) {
      rc = QUIRE_ENOMEM;
      break;
    }
    set_latest(c, e, ld_be64((const uint8_t *)k + QUIRE_GID_SIZE));
    atomic_fetch_add(&c->ncommits, 1);
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
  if (quire__gidtab_init(&c->latest) != 0) {
    free_table(c);
    quire__free(c);
    return QUIRE_ENOMEM;
  }
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
      atomic_store(&c->ncommits, 0);
      atomic_store(&c->nvolumes, 0);
      rc = quire__gidtab_init(&c->latest);
      if (rc == 0) rc = open_db(path, &c->db);
    }
  }
  if (rc) {
    free_table(c);
    quire__free(c);
    return rc;
  }
  c->base.ops = &lsm_ops;
  *out = &c->base;
  return 0;
}
