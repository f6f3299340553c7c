/*
 * metastore/ms_core.c — the metastore's state machine: volumes, catch-up
 * from object storage, commit ordering, and the long-poll loops.
 *
 * Catch-up (refresh). The catalog holds LSNs 1..L of a volume. Catching up
 * GETs log/{L+1} alone first (a poll that finds nothing costs one GET), then
 * batches of 2, 4, ... up to catchup_inflight keys at once on the getter
 * pool, and stops at the first missing key; LIST is never used. Calls for one volume go through
 * the keyed limiter, so concurrent catch-ups collapse into one: each call
 * takes a ticket, and a caller that finds, once it holds the permit, that a
 * refresh which started after its ticket has completed, returns at once.
 *
 * Commit (DESIGN.md §8.3). lsn = base + 1. If the catalog already holds lsn,
 * or put_if_absent says it exists, the record at lsn decides: the same commit
 * id (and client) is a retry of a commit that succeeded and returns its
 * snapshot; anything else is QUIRE_ECONFLICT. put_if_absent is the only
 * serialisation point, so any number of metastores may share a store.
 *
 * Long polls. A parked pull_graft is a waiter on its volume. Each volume
 * with waiters has one poll loop: the scheduler thread (shared by all
 * volumes) starts one store refresh per volume per poll_interval_ms on the
 * poll pool, however many waiters the volume has; a refresh that finds
 * newer commits wakes the waiters they satisfy, a commit through this
 * instance wakes them at once, and the scheduler expires waiters at their
 * deadline.
 *
 * The volume table is looked up without a lock (gidmap.h, the concurrent
 * table); its mutex is taken only to add a volume and to drain. Lock order:
 * the table's mutex, then vol->mu. No lock is held across object-store
 * or catalog I/O. Waiters are parked and woken under vol->mu, so a wake can
 * never precede its park.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "metastore/ms_int.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

struct ms_waiter {
  struct ms_waiter *next;
  quire_http_req *req;
  quire_lsn from;
  uint64_t deadline_ms;
};

/* --- object-store calls with metrics -------------------------------------- */

static void store_metrics(quire_metastore *ms, const char *op, int rc, uint64_t t0) {
  quire_metrics *m = ms->o.metrics;
  if (!m) return;
  char labels[48];
  snprintf(labels, sizeof labels, "op=\"%s\"", op);
  quire__metrics_count(m, "quire_objstore_calls_total", "object-store calls by operation", labels, 1);
  if (rc && rc != QUIRE_ENOTFOUND && rc != QUIRE_EEXIST)
    quire__metrics_count(m, "quire_objstore_errors_total",
                         "object-store calls that failed (not found / exists excluded)", labels, 1);
  quire__metrics_observe(m, "quire_objstore_call_seconds", "object-store call latency", labels,
                         (double)(quire__mono_ns() - t0) / 1e9);
}

int quire__ms_store_get(quire_metastore *ms, const char *key, uint8_t **data, size_t *len) {
  uint64_t t0 = quire__mono_ns();
  int rc = quire_objstore_get(ms->o.store, key, data, len);
  store_metrics(ms, "get", rc, t0);
  return rc;
}

int quire__ms_store_put_if_absent(quire_metastore *ms, const char *key, const void *p, size_t n) {
  uint64_t t0 = quire__mono_ns();
  int rc = quire_objstore_put_if_absent(ms->o.store, key, p, n);
  store_metrics(ms, "put_if_absent", rc, t0);
  return rc;
}

/* --- volumes --------------------------------------------------------------- */

static struct ms_gid_node *make_volume(const quire_gid *vid, void *ctx) {
  struct ms_volume *v = quire__calloc(1, sizeof *v);
  if (!v) return NULL;
  v->node.vid = *vid;
  v->ms = ctx;
  pthread_mutex_init(&v->mu, NULL);
  return &v->node;
}

struct ms_volume *quire__ms_volume(quire_metastore *ms, const quire_gid *vid) {
  return (struct ms_volume *)quire__gidtab_get(&ms->vols, vid, make_volume, ms);
}

/* Wakes every waiter newer commits satisfy (all of them with everything).
 * Call with v->mu held. */
static void wake_waiters(quire_metastore *ms, struct ms_volume *v, int everything) {
  struct ms_waiter **pp = &v->waiters;
  uint64_t now = quire__mono_ms();
  while (*pp) {
    struct ms_waiter *w = *pp;
    if (everything || w->from < v->latest || now >= w->deadline_ms) {
      *pp = w->next;
      v->nwaiters--;
      atomic_fetch_sub(&ms->nwaiters, 1);
      quire__http_req_wake(w->req);
      quire__free(w);
    } else {
      pp = &w->next;
    }
  }
}

/* Records that the catalog now holds vid up to latest and wakes waiters. */
static void publish_latest(quire_metastore *ms, struct ms_volume *v, quire_lsn latest) {
  pthread_mutex_lock(&v->mu);
  if (latest > v->latest) {
    v->latest = latest;
    wake_waiters(ms, v, 0);
  }
  pthread_mutex_unlock(&v->mu);
}

/* --- catch-up -------------------------------------------------------------- */

struct get_batch {
  pthread_mutex_t mu;
  pthread_cond_t done;
  unsigned pending;
};

struct get_task {
  quire_metastore *ms;
  struct get_batch *batch;
  char key[64];
  uint8_t *data;
  size_t len;
  int rc;
  char why[200]; /* the store's message for a failure (it ran on another thread) */
};

static void run_get(void *arg) {
  struct get_task *t = arg;
  quire__err_clear();
  t->rc = quire__ms_store_get(t->ms, t->key, &t->data, &t->len);
  if (t->rc && t->rc != QUIRE_ENOTFOUND) {
    snprintf(t->why, sizeof t->why, "GET %s: %s%s%s", t->key, quire_strerror(t->rc),
             quire_errmsg()[0] ? ": " : "", quire_errmsg());
    QLOG_DEBUG("metastore: %s", t->why);
  }
  pthread_mutex_lock(&t->batch->mu);
  if (--t->batch->pending == 0) pthread_cond_signal(&t->batch->done);
  pthread_mutex_unlock(&t->batch->mu);
}

/* GETs log/{first .. first+k-1} concurrently into tasks[]. */
static void fetch(quire_metastore *ms, const quire_gid *vid, quire_lsn first, unsigned k,
                  struct get_task *tasks) {
  struct get_batch b;
  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.done, NULL);
  b.pending = k;
  for (unsigned i = 0; i < k; i++) {
    tasks[i] = (struct get_task){.ms = ms, .batch = &b, .rc = QUIRE_EINTERNAL};
    quire__commit_key(vid, first + i, tasks[i].key);
  }
  for (unsigned i = 0; i < k; i++) {
    /* The last GET (or any the pool refuses) runs on this thread. */
    if (i + 1 == k || quire__pool_submit(ms->getters, run_get, &tasks[i]) != 0) run_get(&tasks[i]);
  }
  pthread_mutex_lock(&b.mu);
  while (b.pending) pthread_cond_wait(&b.done, &b.mu);
  pthread_mutex_unlock(&b.mu);
  pthread_mutex_destroy(&b.mu);
  pthread_cond_destroy(&b.done);
}

/* Checks that the object at log/{lsn} of vid is a record for exactly that. */
static int check_fetched(const quire_gid *vid, quire_lsn lsn, const uint8_t *p, size_t n) {
  struct quire_commit c;
  int rc = quire__commit_decode(p, n, &c);
  if (rc) {
    char key[64];
    quire__commit_key(vid, lsn, key);
    return quire__err(rc == QUIRE_ENOMEM ? rc : QUIRE_ECORRUPT, "%s: %s", key, quire_errmsg());
  }
  if (quire_gid_cmp(&c.vid, vid) != 0 || c.lsn != lsn) rc = QUIRE_ECORRUPT;
  quire__commit_clear(&c);
  if (rc) {
    char key[64];
    quire__commit_key(vid, lsn, key);
    return quire__err(rc, "%s holds a record for another volume or lsn", key);
  }
  return 0;
}

/* Marks v broken at lsn (why names the key and the reason) and logs it
 * once; clears the mark with lsn 0. */
static void set_broken(struct ms_volume *v, quire_lsn lsn, int gap, const char *why) {
  char vid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&v->node.vid, vid);
  pthread_mutex_lock(&v->mu);
  int changed = v->broken != lsn || (lsn && strcmp(v->broken_why, why) != 0);
  quire_lsn was = v->broken;
  v->broken = lsn;
  v->broken_gap = gap;
  if (lsn) snprintf(v->broken_why, sizeof v->broken_why, "%s", why);
  pthread_mutex_unlock(&v->mu);
  if (!changed) return;
  if (lsn)
    QLOG_ERROR("metastore: volume %s: history is broken at lsn %llu: %s; reads at older LSNs go on, "
               "commits are refused until the object is restored (docs/OPERATIONS.md)",
               vid, (unsigned long long)lsn, why);
  else
    QLOG_WARN("metastore: volume %s: the log is readable past lsn %llu again", vid, (unsigned long long)was);
}

/* The cold-start probe (once per volume per process): the log ends at
 * missing, unless something exists after it. GETs the next three LSNs and
 * LISTs the log once from there. *later gets the first key found past the
 * gap ("" when none). Store failures of the GETs are returned (the probe is
 * then retried on the next catch-up); a failing LIST only logs. */
static int probe_past(quire_metastore *ms, const quire_gid *vid, quire_lsn missing, char later[64]) {
  later[0] = '\0';
  struct get_task tasks[3];
  fetch(ms, vid, missing + 1, 3, tasks);
  int rc = 0;
  char why[200] = "";
  for (unsigned i = 0; i < 3; i++) {
    if (tasks[i].rc == 0 && !later[0]) quire__commit_key(vid, missing + 1 + i, later);
    if (tasks[i].rc && tasks[i].rc != QUIRE_ENOTFOUND && !rc) {
      rc = tasks[i].rc;
      memcpy(why, tasks[i].why, sizeof why);
    }
    quire_objstore_free(tasks[i].data);
  }
  if (later[0]) return 0;
  if (rc)
    return quire__err(QUIRE_EUNAVAILABLE, "checking the log for a gap past lsn %llu: %s",
                      (unsigned long long)missing, why);
  char key[64], prefix[64];
  quire__commit_key(vid, missing, key);
  size_t plen = strlen(key) - 16; /* "volumes/{vid}/log/" */
  memcpy(prefix, key, plen);
  prefix[plen] = '\0';
  quire_objstore_list list;
  uint64_t t0 = quire__mono_ns();
  int lrc = quire_objstore_list_keys(ms->o.store, prefix, key, 16, &list);
  store_metrics(ms, "list", lrc, t0);
  if (lrc) {
    QLOG_WARN("metastore: listing %s after %s (gap check): %s: %s", prefix, key, quire_strerror(lrc),
              quire_errmsg());
  } else {
    for (size_t i = 0; i < list.count && !later[0]; i++) {
      const char *name = list.entries[i].key + plen;
      quire_lsn lsn;
      if (strlen(name) == 16 && quire_lsn_parse(name, 16, &lsn) == 0 && lsn > missing)
        snprintf(later, 64, "%s", list.entries[i].key);
    }
  }
  quire_objstore_list_free(&list);
  return 0;
}

/* When the base (read no older than max_age_ms) lies past *latest + 1,
 * retention deleted the log in between (docs/GC.md): the catalog forgets
 * what it held of vid (all below the base, which nothing may read) and
 * *latest becomes base - 1, where the catch-up goes on. 1 when it moved,
 * 0 when not, else an error. */
static int restart_at_base(quire_metastore *ms, const quire_gid *vid, uint64_t max_age_ms, quire_lsn *latest) {
  quire_lsn base;
  int rc = quire__ms_base(ms, vid, max_age_ms, &base);
  if (rc) return rc;
  if (base <= *latest + 1) return 0;
  if (*latest) {
    char t[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(vid, t);
    QLOG_INFO("metastore: volume %s: the log now starts at lsn %llu (retention); the catalog held up to %llu",
              t, (unsigned long long)base, (unsigned long long)*latest);
    if ((rc = ms_catalog_forget(ms->o.catalog, vid)) != 0) return rc;
  }
  *latest = base - 1;
  return 1;
}

/* Appends log/{latest+1}, ... to the catalog until a key is missing or
 * unreadable, then decides whether the log really ends there (see
 * "Gaps and corrupt commit objects" above). 0 with *latest_out the last
 * LSN of the intact prefix; QUIRE_ECORRUPT when the volume is broken (its
 * mark says where and why); store errors as they come. */
static int catch_up(quire_metastore *ms, struct ms_volume *v, quire_lsn *latest_out) {
  const quire_gid *vid = &v->node.vid;
  quire_lsn latest;
  int rc = ms_catalog_latest(ms->o.catalog, vid, &latest);
  if (rc) return rc;
  unsigned k = 1, inflight = ms->o.catchup_inflight;
  struct get_task *tasks = quire__calloc(inflight, sizeof *tasks);
  if (!tasks) return QUIRE_ENOMEM;
  char why[320] = "";
  int tried_base = 0, appended = 0, rebased = 0;
again:
  for (;;) {
    fetch(ms, vid, latest + 1, k, tasks);
    const uint8_t *recs[64];
    size_t lens[64];
    unsigned found = 0;
    int err = 0, end = 0;
    for (unsigned i = 0; i < k && !err && !end; i++) {
      if (tasks[i].rc == QUIRE_ENOTFOUND) {
        end = 1;
        break;
      }
      if (tasks[i].rc)
        err = quire__err(tasks[i].rc == QUIRE_ENOMEM ? QUIRE_ENOMEM : QUIRE_EUNAVAILABLE, "%s", tasks[i].why);
      else
        err = check_fetched(vid, latest + 1 + i, tasks[i].data, tasks[i].len);
      if (err == QUIRE_ECORRUPT || err == QUIRE_EVERSION) {
        /* An unreadable commit object: everything before it still counts. */
        snprintf(why, sizeof why, "%s", quire_errmsg());
        err = QUIRE_ECORRUPT;
      }
      if (!err) {
        recs[found] = tasks[i].data;
        lens[found] = tasks[i].len;
        found++;
      }
    }
    int arc = found ? ms_catalog_append(ms->o.catalog, vid, latest + 1, found, recs, lens) : 0;
    appended |= found != 0;
    if (found) {
      /* What was appended counts even if a later GET failed. */
      quire_lsn now;
      if (ms_catalog_latest(ms->o.catalog, vid, &now) == 0) latest = now;
    }
    for (unsigned i = 0; i < k; i++) quire_objstore_free(tasks[i].data);
    if (arc) {
      rc = arc;
      break;
    }
    if (err) {
      rc = err;
      break;
    }
    if (end || found < k) break;
    k = QUIRE_MIN(k * 2, inflight); /* 1, 2, 4, ...: a short catch-up wastes few GETs */
  }
  if (rc == 0 && !appended && !tried_base) {
    /* Nothing past latest: retention may have deleted the log from there
     * on (docs/GC.md) — with nothing of vid in the catalog and no log/1,
     * or while this metastore held the log up to latest and another
     * process moved the base past it. The base is read afresh for an
     * unknown volume, else at most once a minute: a quiet volume's long
     * polls must not LIST its base markers every round (a commit on a
     * newer base asks again, see quire__ms_commit; a gap found below asks
     * afresh too). */
    tried_base = 1;
    int moved = restart_at_base(ms, vid, latest ? QUIRE_MS_BASE_TTL_MS : 0, &latest);
    if (moved < 0) {
      rc = moved;
    } else if (moved) {
      k = 1;
      goto again;
    }
  }
  if (rc == QUIRE_ECORRUPT && why[0]) {
    set_broken(v, latest + 1, 0, why);
  } else if (rc == 0) {
    /* The log ends at latest + 1, unless it has a gap there. */
    pthread_mutex_lock(&v->mu);
    int known_gap = v->broken == latest + 1 && v->broken_gap;
    int probe = !v->probed && !known_gap;
    pthread_mutex_unlock(&v->mu);
    char later[64] = "";
    if (probe) {
      rc = probe_past(ms, vid, latest + 1, later);
      if (rc == 0 && !later[0]) {
        pthread_mutex_lock(&v->mu);
        v->probed = 1;
        pthread_mutex_unlock(&v->mu);
      }
    }
    if (rc == 0 && (later[0] || known_gap) && rebased < 4) {
      /* A gap may be retention's work too (the log deleted past what the
       * catalog holds): a gap just found reads the base afresh, one
       * already known at most once a minute. */
      int moved = restart_at_base(ms, vid, later[0] ? 0 : QUIRE_MS_BASE_TTL_MS, &latest);
      if (moved < 0) {
        rc = moved;
      } else if (moved) {
        rebased++;
        set_broken(v, 0, 0, "");
        k = 1;
        goto again;
      }
    }
    if (rc == 0 && later[0]) {
      char key[64];
      quire__commit_key(vid, latest + 1, key);
      snprintf(why, sizeof why, "commit object %s is missing but %s exists (a gap in the log)", key, later);
      set_broken(v, latest + 1, 1, why);
      rc = QUIRE_ECORRUPT;
    } else if (rc == 0 && known_gap) {
      rc = QUIRE_ECORRUPT;
    } else if (rc == 0) {
      set_broken(v, 0, 0, "");
    }
  }
  quire__free(tasks);
  *latest_out = latest;
  return rc;
}

/* The error for a broken volume, naming where and why. */
static int broken_err(struct ms_volume *v) {
  char vid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&v->node.vid, vid);
  pthread_mutex_lock(&v->mu);
  quire_lsn at = v->broken;
  char why[sizeof v->broken_why];
  memcpy(why, v->broken_why, sizeof why);
  pthread_mutex_unlock(&v->mu);
  return quire__err(QUIRE_ECORRUPT,
                    "volume %s: history is broken at lsn %llu: %s; reads at lsn %llu and below still work, "
                    "commits are refused until the object is restored",
                    vid, (unsigned long long)at, why, (unsigned long long)(at ? at - 1 : 0));
}

int quire__ms_refresh(quire_metastore *ms, const quire_gid *vid, quire_lsn *latest_out) {
  struct ms_volume *v = quire__ms_volume(ms, vid);
  if (!v) return QUIRE_ENOMEM;
  pthread_mutex_lock(&v->mu);
  uint64_t ticket = ++v->tickets;
  pthread_mutex_unlock(&v->mu);
  quire_permit permit;
  int rc = quire__limiter_acquire(ms->catchups, vid->b, QUIRE_GID_SIZE, -1, &permit);
  if (rc) return rc;
  pthread_mutex_lock(&v->mu);
  int done = v->covered >= ticket;
  uint64_t started = v->tickets;
  quire_lsn latest = v->latest;
  pthread_mutex_unlock(&v->mu);
  if (!done) {
    rc = catch_up(ms, v, &latest);
    /* A broken volume is an answer too: callers that came meanwhile share it. */
    if (rc == 0 || rc == QUIRE_ECORRUPT) {
      pthread_mutex_lock(&v->mu);
      if (started > v->covered) v->covered = started;
      pthread_mutex_unlock(&v->mu);
    }
    publish_latest(ms, v, latest);
  }
  quire__limiter_release(&permit);
  if (rc == 0 || rc == QUIRE_ECORRUPT) {
    pthread_mutex_lock(&v->mu);
    int broken = v->broken != 0;
    pthread_mutex_unlock(&v->mu);
    rc = broken ? broken_err(v) : 0;
  }
  if (latest_out) *latest_out = latest;
  return rc;
}

int quire__ms_broken(quire_metastore *ms, const quire_gid *vid) {
  struct ms_volume *v = quire__ms_volume(ms, vid);
  if (!v) return QUIRE_ENOMEM;
  pthread_mutex_lock(&v->mu);
  int broken = v->broken != 0;
  pthread_mutex_unlock(&v->mu);
  return broken ? broken_err(v) : 0;
}

/* --- retention: the base ---------------------------------------------------- */

void quire__ms_base_key(const quire_gid *vid, quire_lsn lsn, char out[80]) {
  char v[QUIRE_GID_TEXT_LEN + 1], l[17];
  quire_gid_format(vid, v);
  quire_lsn_format(lsn, l);
  snprintf(out, 80, "volumes/%s/base/%s", v, l);
}

/* The largest base marker of vid (1 when none): one LIST, paged. */
static int read_base(quire_metastore *ms, const quire_gid *vid, quire_lsn *out) {
  char key[80], prefix[80], after[80] = "";
  quire__ms_base_key(vid, 0, key);
  size_t plen = strlen(key) - 16;
  memcpy(prefix, key, plen);
  prefix[plen] = '\0';
  quire_lsn best = 1;
  for (;;) {
    quire_objstore_list list;
    uint64_t t0 = quire__mono_ns();
    int rc = quire_objstore_list_keys(ms->o.store, prefix, after, 1000, &list);
    store_metrics(ms, "list", rc, t0);
    if (rc) {
      quire_objstore_list_free(&list);
      return quire__err(rc == QUIRE_ENOMEM ? rc : QUIRE_EUNAVAILABLE, "listing %s: %s", prefix,
                        quire_errmsg());
    }
    for (size_t i = 0; i < list.count; i++) {
      const char *name = list.entries[i].key + plen;
      quire_lsn lsn;
      if (strlen(name) == 16 && quire_lsn_parse(name, 16, &lsn) == 0 && lsn > best) best = lsn;
    }
    int more = list.truncated && list.count;
    if (more) snprintf(after, sizeof after, "%s", list.entries[list.count - 1].key);
    quire_objstore_list_free(&list);
    if (!more) break;
  }
  *out = best;
  return 0;
}

int quire__ms_base(quire_metastore *ms, const quire_gid *vid, uint64_t max_age_ms, quire_lsn *base) {
  struct ms_volume *v = quire__ms_volume(ms, vid);
  if (!v) return QUIRE_ENOMEM;
  uint64_t now = quire__mono_ms();
  pthread_mutex_lock(&v->mu);
  int fresh = v->base_read_ms && max_age_ms && now < v->base_read_ms + max_age_ms;
  *base = v->base ? v->base : 1;
  pthread_mutex_unlock(&v->mu);
  if (fresh) return 0;
  quire_lsn b;
  int rc = read_base(ms, vid, &b);
  if (rc) return rc;
  pthread_mutex_lock(&v->mu);
  if (b > v->base) v->base = b;
  v->base_read_ms = now ? now : 1;
  *base = v->base;
  pthread_mutex_unlock(&v->mu);
  return 0;
}

void quire__ms_base_raise(quire_metastore *ms, const quire_gid *vid, quire_lsn base) {
  struct ms_volume *v = quire__ms_volume(ms, vid);
  if (!v) return;
  pthread_mutex_lock(&v->mu);
  if (base > v->base) v->base = base;
  pthread_mutex_unlock(&v->mu);
}

int quire__ms_gone(const quire_gid *vid, quire_lsn lsn, quire_lsn base) {
  char s[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(vid, s);
  return quire__err(QUIRE_EGONE,
                    "volume %s: lsn %llu is below the retained history (it starts at lsn %llu); older "
                    "commits were deleted by retention",
                    s, (unsigned long long)lsn, (unsigned long long)base);
}

int quire__ms_check_gone(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn) {
  quire_lsn base;
  int rc = quire__ms_base(ms, vid, QUIRE_MS_BASE_TTL_MS, &base);
  if (rc) return rc;
  return lsn < base ? quire__ms_gone(vid, lsn, base) : 0;
}

/* The cached base, without I/O. */
static quire_lsn cached_base(struct ms_volume *v) {
  pthread_mutex_lock(&v->mu);
  quire_lsn b = v->base;
  pthread_mutex_unlock(&v->mu);
  return b;
}

/* --- reading records ------------------------------------------------------- */

void quire__ms_snapshot_of(const struct quire_commit *rec, struct quire_snapshot *snap) {
  snap->vid = rec->vid;
  snap->client_id = rec->client_id;
  snap->commit_id = rec->commit_id;
  snap->lsn = rec->lsn;
  snap->checkpoint_lsn = rec->checkpoint_lsn;
  snap->page_count = rec->page_count;
  snap->timestamp_ms = rec->timestamp_ms;
  snap->flags = rec->flags;
}

int quire__ms_load(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, quire_buf *buf,
                   struct quire_commit *rec, struct quire_snapshot *snap) {
  quire__buf_reset(buf);
  struct ms_volume *v = quire__ms_volume(ms, vid);
  if (!v) return QUIRE_ENOMEM;
  quire_lsn base = cached_base(v);
  if (lsn < base) return quire__ms_gone(vid, lsn, base);
  int rc = ms_catalog_get(ms->o.catalog, vid, lsn, buf);
  if (rc == QUIRE_ENOTFOUND) {
    quire_lsn latest;
    rc = quire__ms_refresh(ms, vid, &latest);
    /* A broken volume still serves the LSNs before the break. */
    if (rc && !(rc == QUIRE_ECORRUPT && lsn <= latest)) return rc;
    if (lsn > latest) {
      char s[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(vid, s);
      return quire__err(QUIRE_ENOTFOUND, "volume %s has no lsn %llu (latest %llu)", s,
                        (unsigned long long)lsn, (unsigned long long)latest);
    }
    base = cached_base(v); /* a catch-up from empty starts at the base */
    if (lsn < base) return quire__ms_gone(vid, lsn, base);
    rc = ms_catalog_get(ms->o.catalog, vid, lsn, buf);
  }
  if (rc) return rc;
  struct quire_commit c;
  rc = quire__commit_decode(buf->data, buf->len, &c);
  if (rc) return quire__err(rc == QUIRE_ENOMEM ? rc : QUIRE_ECORRUPT, "catalog: %s", quire_errmsg());
  if (snap) quire__ms_snapshot_of(&c, snap);
  if (rec)
    *rec = c;
  else
    quire__commit_clear(&c);
  return 0;
}

int quire__ms_record(quire_metastore *ms, const quire_gid *vid, quire_lsn lsn, quire_buf *out) {
  return quire__ms_load(ms, vid, lsn, out, NULL, NULL);
}

/* --- commit ---------------------------------------------------------------- */

static void count_commit(quire_metastore *ms, const char *result) {
  char labels[32];
  snprintf(labels, sizeof labels, "result=\"%s\"", result);
  quire__metrics_count(
      ms->o.metrics, "quire_metastore_commits_total",
      "commit requests by result (ok, retry = idempotent replay, conflict, refused = broken history)", labels,
      1);
}

/* Where a retried commit differs from the commit its id already made, or
 * NULL when the content (page count and every segment id and graft, in
 * order) is the same. Checkpoint and timestamp are the server's, not the
 * client's, and are not compared. */
static const char *content_differs(const struct quire_commit *mine, const struct quire_commit *there,
                                   char *why, size_t cap) {
  if (mine->page_count != there->page_count) {
    snprintf(why, cap, "page_count %u, the original had %u", mine->page_count, there->page_count);
    return why;
  }
  if (mine->nsegments != there->nsegments) {
    snprintf(why, cap, "%u segments, the original had %u", mine->nsegments, there->nsegments);
    return why;
  }
  for (uint32_t i = 0; i < mine->nsegments; i++) {
    const struct quire_commit_segment *a = &mine->segments[i], *b = &there->segments[i];
    if (quire_gid_cmp(&a->sid, &b->sid) != 0) {
      snprintf(why, cap, "segment %u has another segment id than the original", i);
      return why;
    }
    if (a->graft_len != b->graft_len || memcmp(a->graft, b->graft, a->graft_len) != 0) {
      snprintf(why, cap, "segment %u has other pages than the original", i);
      return why;
    }
  }
  return NULL;
}

/* The commit at c->lsn exists: a retry of the same commit, or a conflict.
 * A retry must repeat the original request exactly: the same commit id with
 * other content is a client bug and answered QUIRE_ECONFLICT with a message
 * saying so, never with the original's snapshot. */
static int resolve_taken(quire_metastore *ms, const struct quire_commit *c, struct quire_snapshot *out) {
  quire_buf buf;
  quire__buf_init(&buf, QUIRE_COMMIT_MAX_SIZE);
  struct quire_snapshot there;
  struct quire_commit rec = {0};
  int rc = quire__ms_load(ms, &c->vid, c->lsn, &buf, &rec, &there);
  if (rc == QUIRE_ENOTFOUND) /* it existed a moment ago: the store lost it */
    rc =
        quire__err(QUIRE_EUNAVAILABLE, "lsn %llu exists but cannot be read back", (unsigned long long)c->lsn);
  if (rc) goto out;
  if (quire_gid_cmp(&there.commit_id, &c->commit_id) == 0 &&
      quire_gid_cmp(&there.client_id, &c->client_id) == 0) {
    char why[160];
    if (content_differs(c, &rec, why, sizeof why)) {
      char id[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(&c->commit_id, id);
      count_commit(ms, "conflict");
      rc = quire__err(QUIRE_ECONFLICT,
                      "commit id %s already made lsn %llu with other content (this request has %s); a "
                      "retry must repeat the original request exactly, a new commit needs a new id",
                      id, (unsigned long long)c->lsn, why);
      goto out;
    }
    *out = there;
    count_commit(ms, "retry");
    goto out;
  }
  count_commit(ms, "conflict");
  rc = quire__err(QUIRE_ECONFLICT, "lsn %llu is taken by another commit; base %llu is out of date",
                  (unsigned long long)c->lsn, (unsigned long long)(c->lsn - 1));
out:
  quire__commit_clear(&rec);
  quire__buf_free(&buf);
  return rc;
}

int quire__ms_commit(quire_metastore *ms, struct quire_commit *c, struct quire_snapshot *out) {
  if (atomic_load(&ms->closing)) return quire__err(QUIRE_ECLOSED, "metastore is shutting down");
  struct ms_volume *v = quire__ms_volume(ms, &c->vid);
  if (!v) return QUIRE_ENOMEM;
  quire_lsn latest;
  int rc = ms_catalog_latest(ms->o.catalog, &c->vid, &latest);
  if (rc) return rc;
  if (c->lsn <= latest) return resolve_taken(ms, c, out);
  pthread_mutex_lock(&v->mu);
  int cold = !v->probed;
  pthread_mutex_unlock(&v->mu);
  /* Look at the store when the base is newer than what we know, and before
   * the first commit to a volume in this process (the gap probe: a commit
   * must never fill a hole below commits that exist). */
  if (cold || c->lsn - 1 > latest) {
    rc = quire__ms_refresh(ms, &c->vid, &latest);
    if (rc == QUIRE_ECORRUPT && c->lsn <= latest) return resolve_taken(ms, c, out);
    if (rc) {
      if (rc == QUIRE_ECORRUPT) count_commit(ms, "refused");
      return rc;
    }
    if (c->lsn <= latest) return resolve_taken(ms, c, out);
    quire_lsn base;
    if (c->lsn - 1 > latest && quire__ms_base(ms, &c->vid, 0, &base) == 0 && base > latest + 1) {
      /* The client knows a head past a base moved since this metastore
       * last looked: catch up from there. */
      rc = quire__ms_refresh(ms, &c->vid, &latest);
      if (rc) return rc;
      if (c->lsn <= latest) return resolve_taken(ms, c, out);
    }
    if (c->lsn - 1 > latest) {
      count_commit(ms, "conflict");
      return quire__err(QUIRE_ENOTFOUND, "base lsn %llu does not exist (latest is %llu)",
                        (unsigned long long)(c->lsn - 1), (unsigned long long)latest);
    }
  } else if ((rc = quire__ms_broken(ms, &c->vid)) != 0) {
    count_commit(ms, "refused");
    return rc;
  }
  /* A new commit (retries of one that landed were answered above). */
  if (ms->o.max_segment_age_ms) {
    uint64_t now = quire__wall_ms();
    for (uint32_t i = 0; i < c->nsegments; i++) {
      uint64_t born = quire_gid_time_ms(&c->segments[i].sid);
      if (born + ms->o.max_segment_age_ms < now) {
        /* Maybe a retry of this very commit whose first attempt landed
         * unseen here (its acknowledgement was lost, or another instance
         * took it): that is answered as a retry, whatever the age. */
        quire_lsn now_latest;
        int frc = quire__ms_refresh(ms, &c->vid, &now_latest);
        if ((frc == 0 || frc == QUIRE_ECORRUPT) && c->lsn <= now_latest) return resolve_taken(ms, c, out);
        char s[QUIRE_GID_TEXT_LEN + 1];
        quire_gid_format(&c->segments[i].sid, s);
        count_commit(ms, "refused");
        return quire__err(QUIRE_EINVAL,
                          "segment %u (%s) was written %llu s ago, longer than the %llu s a segment may wait "
                          "for its commit (garbage collection may have deleted it): write the pages again",
                          i, s, (unsigned long long)(now - born) / 1000,
                          (unsigned long long)ms->o.max_segment_age_ms / 1000);
      }
    }
  }
  /* The base is in the catalog: inherit its checkpoint, unless this is one. */
  quire_buf buf;
  quire__buf_init(&buf, QUIRE_COMMIT_MAX_SIZE);
  int checkpoint = c->checkpoint_lsn == c->lsn;
  if (!checkpoint) c->checkpoint_lsn = 0;
  if (c->lsn > 1 && !checkpoint) {
    struct quire_snapshot base;
    rc = quire__ms_load(ms, &c->vid, c->lsn - 1, &buf, NULL, &base);
    if (rc) goto out;
    c->checkpoint_lsn = base.checkpoint_lsn;
  }
  c->timestamp_ms = quire__wall_ms();
  quire__buf_reset(&buf);
  rc = quire__commit_encode(c, &buf);
  if (rc) goto out;
  char key[64];
  quire__commit_key(&c->vid, c->lsn, key);
  rc = quire__ms_store_put_if_absent(ms, key, buf.data, buf.len);
  if (rc == QUIRE_EEXIST) {
    rc = resolve_taken(ms, c, out);
    goto out;
  }
  if (rc) {
    /* The write may or may not have happened; the client retries with the
     * same commit id and resolve_taken sorts it out. */
    quire__err(rc == QUIRE_ENOMEM ? rc : QUIRE_EUNAVAILABLE, "writing %s: %s", key, quire_errmsg());
    rc = rc == QUIRE_ENOMEM ? rc : QUIRE_EUNAVAILABLE;
    goto out;
  }
  const uint8_t *recs[1] = {buf.data};
  size_t lens[1] = {buf.len};
  rc = ms_catalog_append(ms->o.catalog, &c->vid, c->lsn, 1, recs, lens);
  if (rc) {
    /* The commit is durable; only the cache missed it. It catches up later. */
    QLOG_WARN("metastore: catalog append after commit: %s", quire_errmsg());
    rc = 0;
  } else {
    publish_latest(ms, v, c->lsn);
  }
  quire__ms_snapshot_of(c, out);
  count_commit(ms, "ok");
out:
  quire__buf_free(&buf);
  return rc;
}

/* --- long polls ------------------------------------------------------------ */

/* The scheduler: one thread for the whole metastore. Volumes with waiters
 * are on the active list; for each, at most one store poll is in flight at a
 * time (v->polling) and one starts every poll_interval_ms (on the poll
 * pool, so a slow store never delays other volumes' deadlines). The thread
 * also expires waiters at their deadline and drops volumes whose waiters are
 * gone. Lock order: v->mu, then ms->sched_mu; the thread takes sched_mu only
 * to copy the active list, never while holding a v->mu. */

static void poll_task(void *arg) {
  struct ms_volume *v = arg;
  quire_metastore *ms = v->ms;
  int rc = quire__ms_refresh(ms, &v->node.vid, NULL); /* wakes satisfied waiters itself */
  if (rc) QLOG_DEBUG("metastore: long-poll refresh: %s: %s", quire_strerror(rc), quire_errmsg());
  pthread_mutex_lock(&v->mu);
  v->polling = 0;
  pthread_mutex_unlock(&v->mu);
}

/* Puts v on the active list. Call with v->mu held. */
static void activate(quire_metastore *ms, struct ms_volume *v) {
  pthread_mutex_lock(&ms->sched_mu);
  if (!v->active) {
    v->active = 1;
    v->active_next = ms->active;
    ms->active = v;
    ms->nactive++;
  }
  ms->sched_kick = 1; /* recompute the next deadline before sleeping */
  pthread_cond_signal(&ms->sched_cond);
  pthread_mutex_unlock(&ms->sched_mu);
}

/* Takes v off the active list. Call with v->mu held. */
static void deactivate(quire_metastore *ms, struct ms_volume *v) {
  pthread_mutex_lock(&ms->sched_mu);
  if (v->active) {
    struct ms_volume **pp = &ms->active;
    while (*pp != v) pp = &(*pp)->active_next;
    *pp = v->active_next;
    v->active = 0;
    ms->nactive--;
  }
  pthread_mutex_unlock(&ms->sched_mu);
}

static void *scheduler(void *arg) {
  quire_metastore *ms = arg;
  struct ms_volume **batch = NULL;
  size_t cap = 0;
  pthread_mutex_lock(&ms->sched_mu);
  while (!ms->sched_stop) {
    ms->sched_kick = 0;
    /* Copy the active list, then work on each volume under its own lock. */
    size_t n = 0;
    if (ms->nactive > cap) {
      size_t want = ms->nactive * 2;
      struct ms_volume **b = quire__realloc(batch, want * sizeof *b);
      if (b) batch = b, cap = want;
    }
    for (struct ms_volume *v = ms->active; v && n < cap; v = v->active_next) batch[n++] = v;
    pthread_mutex_unlock(&ms->sched_mu);
    uint64_t now = quire__mono_ms(), next = now + ms->o.poll_interval_ms;
    for (size_t i = 0; i < n; i++) {
      struct ms_volume *v = batch[i];
      pthread_mutex_lock(&v->mu);
      wake_waiters(ms, v, 0); /* newer commits, expired deadlines */
      if (v->nwaiters == 0) {
        deactivate(ms, v);
      } else {
        if (!v->polling && now >= v->last_poll_ms + ms->o.poll_interval_ms) {
          v->polling = 1;
          v->last_poll_ms = now;
          if (quire__pool_try_submit(ms->pollers, poll_task, v) != 0) v->polling = 0;
        }
        uint64_t due = v->last_poll_ms + ms->o.poll_interval_ms;
        if (due < next) next = due;
        for (struct ms_waiter *w = v->waiters; w; w = w->next)
          if (w->deadline_ms < next) next = w->deadline_ms;
      }
      pthread_mutex_unlock(&v->mu);
    }
    pthread_mutex_lock(&ms->sched_mu);
    now = quire__mono_ms();
    if (!ms->sched_stop && !ms->sched_kick && next > now) {
      struct timespec ts;
      quire__deadline_after_ms(&ts, next - now);
      pthread_cond_timedwait(&ms->sched_cond, &ms->sched_mu, &ts);
    }
  }
  pthread_mutex_unlock(&ms->sched_mu);
  quire__free(batch);
  return NULL;
}

int quire__ms_polled_recently(quire_metastore *ms, const quire_gid *vid) {
  struct ms_volume *v = quire__ms_volume(ms, vid);
  if (!v) return 0;
  pthread_mutex_lock(&v->mu);
  int yes = v->nwaiters > 0 && quire__mono_ms() <= v->last_poll_ms + ms->o.poll_interval_ms;
  pthread_mutex_unlock(&v->mu);
  return yes;
}

int quire__ms_wait(quire_metastore *ms, const quire_gid *vid, quire_lsn from, unsigned wait_ms,
                   quire_http_req *req) {
  struct ms_volume *v = quire__ms_volume(ms, vid);
  if (!v) return QUIRE_ENOMEM;
  if (wait_ms > ms->o.max_wait_ms) wait_ms = ms->o.max_wait_ms;
  int rc = 1;
  pthread_mutex_lock(&v->mu);
  if (atomic_load(&ms->closing)) {
    rc = quire__err(QUIRE_ECLOSED, "metastore is shutting down");
  } else if (v->latest > from) {
    rc = 0; /* a commit landed since the caller looked */
  } else if (atomic_load(&ms->nwaiters) >= ms->o.max_waiters) {
    rc = quire__err(QUIRE_EBUSY, "too many long polls (%u)", ms->o.max_waiters);
  } else {
    struct ms_waiter *w = quire__malloc(sizeof *w);
    if (!w) {
      rc = QUIRE_ENOMEM;
    } else {
      w->req = req;
      w->from = from;
      w->deadline_ms = quire__mono_ms() + wait_ms;
      w->next = v->waiters;
      v->waiters = w;
      v->nwaiters++;
      atomic_fetch_add(&ms->nwaiters, 1);
      quire__http_req_park(req);
      activate(ms, v);
    }
  }
  pthread_mutex_unlock(&v->mu);
  return rc;
}

/* --- life cycle ------------------------------------------------------------ */

static void collect(void *ctx, quire_metrics *m) {
  quire_metastore *ms = ctx;
  uint64_t vols = 0, commits = 0;
  ms->o.catalog->ops->stats(ms->o.catalog, &vols, &commits);
  quire__metrics_gauge(m, "quire_metastore_catalog_volumes", "volumes in the catalog", "", (int64_t)vols);
  quire__metrics_gauge(m, "quire_metastore_catalog_commits", "commit records in the catalog", "",
                       (int64_t)commits);
  quire__metrics_gauge(m, "quire_metastore_long_polls", "pull_graft long polls waiting", "",
                       (int64_t)atomic_load(&ms->nwaiters));
  pthread_mutex_lock(&ms->sched_mu);
  size_t n = ms->nactive;
  pthread_mutex_unlock(&ms->sched_mu);
  quire__metrics_gauge(m, "quire_metastore_poll_loops", "volumes with waiters, each polled once per interval",
                       "", (int64_t)n);
}

int quire_metastore_open(const struct quire_metastore_opts *o, quire_metastore **out) {
  *out = NULL;
  if (!o->store || !o->catalog) return quire__err(QUIRE_EINVAL, "metastore needs a store and a catalog");
  quire_metastore *ms = quire__calloc(1, sizeof *ms);
  if (!ms) return QUIRE_ENOMEM;
  ms->o = *o;
  if (o->receipt_key) {
    memcpy(ms->receipt_key, o->receipt_key, sizeof ms->receipt_key);
    ms->o.receipt_key = ms->receipt_key;
  }
  if (!ms->o.catchup_inflight) ms->o.catchup_inflight = 4;
  if (ms->o.catchup_inflight > 64) ms->o.catchup_inflight = 64;
  if (!ms->o.catchup_threads) ms->o.catchup_threads = 8;
  if (!ms->o.max_catchups) ms->o.max_catchups = 64;
  if (!ms->o.poll_interval_ms) ms->o.poll_interval_ms = 500;
  if (!ms->o.max_wait_ms) ms->o.max_wait_ms = 60000;
  if (!ms->o.max_waiters) ms->o.max_waiters = 10000;
  if (!ms->o.max_pull_commits) ms->o.max_pull_commits = 1000;
  if (!ms->o.max_pull_bytes) ms->o.max_pull_bytes = 4u << 20;
  if (!ms->o.max_graft_commits) ms->o.max_graft_commits = 10000;
  pthread_mutex_init(&ms->sched_mu, NULL);
  pthread_cond_init(&ms->sched_cond, NULL);
  int rc = quire__gidtab_init(&ms->vols);
  if (!rc) rc = quire__limiter_create(ms->o.max_catchups, &ms->catchups);
  if (!rc) rc = quire__pool_create(ms->o.catchup_threads, 1024, "ms-get", &ms->getters);
  if (!rc) rc = quire__pool_create(ms->o.catchup_threads, 4096, "ms-poll", &ms->pollers);
  if (!rc) {
    int e = pthread_create(&ms->sched, NULL, scheduler, ms);
    if (e) {
      errno = e;
      rc = quire__errno("starting the long-poll scheduler");
    } else {
      ms->sched_started = 1;
    }
  }
  if (!rc && ms->o.metrics) rc = quire__metrics_add_collector(ms->o.metrics, collect, ms);
  if (rc) {
    quire_metastore_close(ms);
    return rc;
  }
  *out = ms;
  return 0;
}

static void drain_volume(struct ms_gid_node *n, void *ctx) {
  struct ms_volume *v = (struct ms_volume *)n;
  pthread_mutex_lock(&v->mu);
  wake_waiters(ctx, v, 1);
  pthread_mutex_unlock(&v->mu);
}

void quire_metastore_drain(quire_metastore *ms) {
  atomic_store(&ms->closing, 1);
  quire__gidtab_each(&ms->vols, drain_volume, ms);
}

static void free_volume(struct ms_gid_node *n) {
  struct ms_volume *v = (struct ms_volume *)n;
  pthread_mutex_destroy(&v->mu);
  quire__free(v);
}

void quire_metastore_close(quire_metastore *ms) {
  if (!ms) return;
  if (atomic_load(&ms->vols.arr)) quire_metastore_drain(ms);
  if (ms->sched_started) {
    pthread_mutex_lock(&ms->sched_mu);
    ms->sched_stop = 1;
    pthread_cond_signal(&ms->sched_cond);
    pthread_mutex_unlock(&ms->sched_mu);
    pthread_join(ms->sched, NULL);
  }
  quire__metrics_remove_collector(ms->o.metrics, collect, ms);
  quire__pool_destroy(ms->pollers); /* finishes polls in flight */
  quire__pool_destroy(ms->getters);
  quire__limiter_destroy(ms->catchups);
  quire__gidtab_free(&ms->vols, free_volume);
  pthread_mutex_destroy(&ms->sched_mu);
  pthread_cond_destroy(&ms->sched_cond);
  quire__free(ms);
}
