/*
 * client/client.c — opening a data directory (the local store, the
 * persisted client id, the services), the registry of open volumes, and
 * resolving names and volume ids.
 *
 * A data directory holds one LSM file, `local.lsm`. The LSM's file lock
 * makes a second opener — another process, or another client in this one —
 * fail with QUIRE_EBUSY; the message names the directory.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "client/client_int.h"
#include "util/util.h"

#define CLIENT_MAGIC "QCLI"
#define CLIENT_VERSION 1

void quire_client_opts_init(quire_client_opts *o) { memset(o, 0, sizeof *o); }

static char *dup_or_null(const char *s) { return s && *s ? quire__strdup(s) : NULL; }

/* Reads the client record, creating it (with a fresh client id) on the
 * first open of the data directory. */
static int load_client_id(quire_client *c) {
  uint8_t key[1];
  size_t kl = cl__key_m(key);
  lsm_value v = {0};
  int rc = lsm_get(c->db, key, kl, &v);
  if (rc == 0) {
    const uint8_t *p = v.data;
    if (v.len != 24 || memcmp(p, CLIENT_MAGIC, 4) != 0)
      rc = quire__err(QUIRE_ECORRUPT, "%s: the client record is damaged", c->data_dir);
    else if (ld_le32(p + 4) != CLIENT_VERSION)
      rc = quire__err(QUIRE_EVERSION, "%s: local store format %u (this build reads %u)", c->data_dir,
                      ld_le32(p + 4), CLIENT_VERSION);
    else
      memcpy(c->client_id.b, p + 8, 16);
    if (!rc && quire_gid_type(&c->client_id) != QUIRE_GID_CLIENT)
      rc = quire__err(QUIRE_ECORRUPT, "%s: the client id is not a client id", c->data_dir);
    lsm_value_release(&v);
    return rc;
  }
  if (rc != QUIRE_ENOTFOUND) return rc;
  if ((rc = quire_gid_new(QUIRE_GID_CLIENT, &c->client_id)) != 0) return rc;
  uint8_t rec[24];
  memcpy(rec, CLIENT_MAGIC, 4);
  st_le32(rec + 4, CLIENT_VERSION);
  memcpy(rec + 8, c->client_id.b, 16);
  lsm_txn *t;
  if ((rc = lsm_txn_begin(c->db, 0, &t)) != 0) return rc;
  rc = lsm_txn_put(t, key, kl, rec, sizeof rec);
  if (rc) {
    lsm_txn_abort(t);
    return rc;
  }
  return lsm_txn_commit(t);
}

int quire_client_open(const quire_client_opts *o, quire_client **out) {
  *out = NULL;
  if (!o || !o->data_dir || !*o->data_dir) return quire__err(QUIRE_EINVAL, "client: no data directory");
  if (o->sync_mode < QUIRE_SYNC_FULL || o->sync_mode > QUIRE_SYNC_OFF)
    return quire__err(QUIRE_EINVAL, "client: unknown sync mode %d", o->sync_mode);
  int has_ms = o->metastore_url && *o->metastore_url, has_ps = o->pagestore_url && *o->pagestore_url;
  if (has_ms != has_ps)
    return quire__err(QUIRE_EINVAL, "client: give both the metastore and the pagestore URL, or neither");
  quire_client *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  int rc = 0;
  c->o = *o;
  c->data_dir = quire__strdup(o->data_dir);
  c->metastore_url = dup_or_null(o->metastore_url);
  c->pagestore_url = dup_or_null(o->pagestore_url);
  c->token = dup_or_null(o->token);
  pthread_mutex_init(&c->mu, NULL);
  if (!c->data_dir || (has_ms && (!c->metastore_url || !c->pagestore_url)) || (o->token && *o->token && !c->token)) {
    rc = QUIRE_ENOMEM;
    goto fail;
  }
  c->o.data_dir = c->data_dir;
  c->o.metastore_url = c->metastore_url;
  c->o.pagestore_url = c->pagestore_url;
  c->o.token = c->token;
  if (!c->o.fetch_timeout_ms) c->o.fetch_timeout_ms = 10000;
  if (!c->o.call_timeout_ms) c->o.call_timeout_ms = 30000;
  if (!c->o.push_delay_ms) c->o.push_delay_ms = 2;
  if (!c->o.poll_wait_ms) c->o.poll_wait_ms = 30000;
  if (!c->o.prefetch_max) c->o.prefetch_max = 1024;
  if (c->o.prefetch_max > 4096) c->o.prefetch_max = 4096;
  if (!c->o.fetch_threads) c->o.fetch_threads = 4;
  if (!c->o.push_batch_pages) c->o.push_batch_pages = 1024;
  if (c->o.push_batch_pages > 4096) c->o.push_batch_pages = 4096;
  if (!c->o.push_inflight) c->o.push_inflight = 2;

  if (mkdir(c->data_dir, 0700) != 0 && errno != EEXIST) {
    rc = quire__errno("client: cannot create the data directory %s", c->data_dir);
    goto fail;
  }
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/local.lsm", c->data_dir) >= sizeof path) {
    rc = quire__err(QUIRE_EINVAL, "client: data directory path too long");
    goto fail;
  }
  lsm_options lo;
  lsm_options_init(&lo);
  lo.create = 1;
  lo.sync_mode = o->sync_mode;
  lo.cache_bytes = o->cache_bytes;
  rc = lsm_open(path, &lo, &c->db);
  if (rc == QUIRE_EBUSY) {
    rc = quire__err(QUIRE_EBUSY, "data directory %s is in use by another quire client (one client per data "
                                 "directory; give each process its own)", c->data_dir);
    goto fail;
  }
  if (rc) goto fail;
  if ((rc = load_client_id(c)) != 0) goto fail;
  if (has_ms && (rc = cl__remote_open(&c->o, &c->remote)) != 0) goto fail;
  if ((rc = quire__pool_create(c->o.fetch_threads, 256, "quire-fetch", &c->fetch_pool)) != 0) goto fail;
  *out = c;
  return 0;
fail:
  quire_client_close(c);
  return rc;
}

int quire_client_close(quire_client *c) {
  if (!c) return 0;
  int rc = 0;
  if (c->vols) {
    QLOG_WARN("client %s closed with volumes still open", c->data_dir);
  }
  quire__pool_destroy(c->fetch_pool);
  cl__remote_close(c->remote);
  if (c->db) rc = lsm_close(c->db);
  pthread_mutex_destroy(&c->mu);
  quire__free(c->data_dir);
  quire__free(c->metastore_url);
  quire__free(c->pagestore_url);
  quire__free(c->token);
  quire__free(c);
  return rc;
}

void quire_client_id(const quire_client *c, quire_gid *out) { *out = c->client_id; }

void quire_client_stats(quire_client *c, quire_stats *out) { cl__counters_read(&c->stats, out); }
