/*
 * client/sync.c — push, pull, reset and fork (DESIGN.md §11.3,
 * docs/CLIENT.md "Sync").
 *
 * Push. (1) With no intent, one is built from the local commits after the
 * last pushed one — a fresh commit id, the base remote lsn, the last local
 * lsn folded in, the final page_count — and persisted (I{vid}) before any
 * network call. (2) The newest version at or below the intent's end of
 * every page the folded commits changed is uploaded with write_pages in
 * bounded batches; each batch's segments are added to the persisted intent,
 * so a resumed push uploads only what is missing. (3) commit() with the
 * intent's commit id: the metastore's exact idempotency makes every retry —
 * after a timeout, a lost answer or a crash — land the commit once. Success
 * maps the new remote lsn to the intent's end and drops the intent and the
 * folded L records in one LSM transaction. CONFLICT drops the intent and
 * persists the state "conflict"; every local commit is kept.
 *
 * Pull. pull_graft(from = remote lsn) returns the remote head and the union
 * of the pages changed since. With no unpushed commit, one local commit at
 * head+1 writes PENDING{remote lsn} for each changed page and maps the
 * remote lsn to it. With unpushed commits the volume has diverged: state
 * "conflict", persisted.
 *
 * sync_mu orders these four per volume. A long poll waits without it and
 * re-checks, under it, that nothing moved meanwhile.
 */
#include <string.h>

#include "client/remote.h"
#include "util/util.h"

/* Records the outcome of a network step for status (vol->mu taken here). */
static int note(quire_volume *v, int rc) {
  pthread_mutex_lock(&v->mu);
  v->offline = cl__transport_error(rc);
  if (rc != QUIRE_ECANCELED) cl__vol_set_error(v, rc);
  pthread_mutex_unlock(&v->mu);
  return rc;
}

/* Union of the page sets of the local commits in (from, to]; *oldest_ms
 * gets the time of the first one. */
static int union_local(quire_volume *v, quire_lsn from, quire_lsn to, splinter_t *out, uint64_t *oldest_ms) {
  lsm_cursor *cur;
  int rc = lsm_cursor_open(v->client->db, &cur);
  if (rc) return rc;
  uint8_t key[CL_KEY_MAX];
  size_t kl = cl__key_l(key, &v->vid, from + 1);
  if (oldest_ms) *oldest_ms = 0;
  for (rc = lsm_cursor_seek(cur, key, kl, LSM_SEEK_GE); rc == 0; rc = lsm_cursor_next(cur)) {
    const void *k, *val;
    size_t fl, vl;
    if ((rc = lsm_cursor_key(cur, &k, &fl)) != 0) break;
    if (fl != 25 || memcmp(k, key, 17) != 0 || ld_be64((const uint8_t *)k + 17) > to) break;
    if ((rc = lsm_cursor_value(cur, &val, &vl)) != 0) break;
    quire_pagecount count;
    uint64_t t;
    splinter_view_t pages;
    if ((rc = cl__lrec_decode(val, vl, &count, &t, &pages)) != 0) break;
    if (oldest_ms && !*oldest_ms) *oldest_ms = t;
    if ((rc = splinter_union(splinter_ref_owned(out), splinter_ref_view(&pages), out)) != 0) break;
  }
  lsm_cursor_close(cur);
  return rc == QUIRE_ENOTFOUND || rc == QUIRE_EEND ? 0 : rc;
}

static int put_intent(lsm_txn *t, quire_volume *v, const struct cl_intent *in) {
  uint8_t key[CL_KEY_MAX];
  size_t kl = cl__key_i(key, &v->vid);
  quire_buf b;
  quire__buf_init(&b, 64u << 20);
  int rc = cl__intent_encode(in, &b);
  if (!rc) rc = lsm_txn_put(t, key, kl, b.data, b.len);
  quire__buf_free(&b);
  return rc;
}

static int store_intent(quire_volume *v, const struct cl_intent *in) {
  lsm_txn *t;
  int rc = lsm_txn_begin(v->client->db, 0, &t);
  if (rc) return rc;
  if ((rc = put_intent(t, v, in)) != 0) {
    lsm_txn_abort(t);
    return rc;
  }
  return lsm_txn_commit(t);
}

static int load_intent(quire_volume *v, struct cl_intent *in) {
  uint8_t key[CL_KEY_MAX];
  size_t kl = cl__key_i(key, &v->vid);
  lsm_value val = {0};
  int rc = lsm_get(v->client->db, key, kl, &val);
  if (rc) return rc;
  rc = cl__intent_decode(val.data, val.len, in);
  lsm_value_release(&val);
  return rc;
}

/* Adds write_pages' segments (with their receipts) to the intent. */
int cl__intent_add(struct cl_intent *in, const struct quire_ps_written *segs, size_t n) {
  struct cl_seg *all = quire__realloc(in->segs, (in->nsegs + n) * sizeof *all);
  if (!all) return QUIRE_ENOMEM;
  in->segs = all;
  for (size_t i = 0; i < n; i++) {
    struct cl_seg *sg = &in->segs[in->nsegs];
    memset(sg, 0, sizeof *sg);
    sg->graft = quire__memdup(segs[i].graft, segs[i].graft_len ? segs[i].graft_len : 1);
    if (!sg->graft) return QUIRE_ENOMEM;
    sg->sid = segs[i].sid;
    sg->graft_len = (uint32_t)segs[i].graft_len;
    sg->receipt_len = (uint32_t)QUIRE_MIN(segs[i].receipt_len, sizeof sg->receipt);
    memcpy(sg->receipt, segs[i].receipt, sg->receipt_len);
    in->nsegs++;
  }
  return 0;
}

/* The commit request's segments for the intent's (pointers into it). */
struct quire_commit_segment *cl__commit_segs(const struct cl_seg *segs, uint32_t n) {
  struct quire_commit_segment *cs = quire__calloc(n ? n : 1, sizeof *cs);
  if (!cs) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    cs[i].sid = segs[i].sid;
    cs[i].graft = segs[i].graft;
    cs[i].graft_len = segs[i].graft_len;
    cs[i].receipt = segs[i].receipt_len ? segs[i].receipt : NULL;
    cs[i].receipt_len = segs[i].receipt_len;
  }
  return cs;
}

/* The upload of one push: push_inflight workers take batches of the pages
 * to send from one iterator, read them, write_pages them, and add each
 * batch's segments to the intent, persisted after every batch. */
struct upload {
  quire_volume *v;
  struct cl_intent *in;
  const struct cl_call *call;
  pthread_mutex_t mu; /* guards it, in, rc */
  splinter_iter_t it;
  int rc;
  char msg[256]; /* the failing worker's detail (quire_errmsg is per thread) */
};

static void *upload_worker(void *arg) {
  struct upload *u = arg;
  quire_volume *v = u->v;
  quire_client *c = v->client;
  size_t batch = c->o.push_batch_pages;
  quire_pageidx *idx = quire__malloc(batch * sizeof *idx);
  uint8_t *buf = quire__malloc(batch * QUIRE_PAGE_SIZE);
  const uint8_t **pages = quire__malloc(batch * sizeof *pages);
  int rc = idx && buf && pages ? 0 : QUIRE_ENOMEM;
  for (;;) {
    pthread_mutex_lock(&u->mu);
    if (rc && !u->rc) {
      u->rc = rc;
      snprintf(u->msg, sizeof u->msg, "%s", quire_errmsg());
    }
    size_t n = u->rc ? 0 : splinter_iter_next_batch(&u->it, idx, batch);
    pthread_mutex_unlock(&u->mu);
    if (!n) break;
    for (size_t i = 0; i < n && !rc; i++) {
      int kind;
      quire_lsn at, pend;
      pages[i] = buf + i * QUIRE_PAGE_SIZE;
      rc = cl__page_lookup(c->db, &v->vid, idx[i], u->in->end_local, &kind, &at, &pend, buf + i * QUIRE_PAGE_SIZE);
      if (!rc && kind == CL_PAGE_PENDING)
        rc = quire__err(QUIRE_EINTERNAL, "push: page %u of a local commit is only pending", idx[i]);
    }
    struct quire_ps_written *segs = NULL;
    size_t nsegs = 0;
    if (!rc) {
      rc = cl__ps_write_pages(c->remote, &v->vid, idx, pages, n, u->call, &segs, &nsegs);
      cl__count(&v->stats, &c->stats, CL_STAT(push_round_trips), 1);
    }
    if (!rc) {
      pthread_mutex_lock(&u->mu);
      rc = cl__intent_add(u->in, segs, nsegs);
      if (!rc) rc = store_intent(v, u->in);
      pthread_mutex_unlock(&u->mu);
    }
    quire__psclient_written_free(segs, nsegs);
    if (!rc) cl__count(&v->stats, &c->stats, CL_STAT(push_pages), n);
  }
  quire__free(idx);
  quire__free(buf);
  quire__free(pages);
  return NULL;
}

/* Uploads the pages of todo (their newest version at or below the intent's
 * end) with push_inflight write_pages calls in flight. */
static int upload(quire_volume *v, struct cl_intent *in, const splinter_t *todo, const struct cl_call *call) {
  struct upload u = {.v = v, .in = in, .call = call};
  pthread_mutex_init(&u.mu, NULL);
  splinter_iter_init(&u.it, splinter_ref_owned(todo), 1);
  uint64_t pages = splinter_cardinality(todo), batch = v->client->o.push_batch_pages;
  unsigned nworkers = (unsigned)QUIRE_MIN((uint64_t)v->client->o.push_inflight, (pages + batch - 1) / batch);
  pthread_t tids[16];
  unsigned started = 0;
  for (unsigned i = 1; i < nworkers && i < 16; i++) /* the caller is worker 0 */
    if (pthread_create(&tids[started], NULL, upload_worker, &u) == 0) started++;
  upload_worker(&u);
  for (unsigned i = 0; i < started; i++) pthread_join(tids[i], NULL);
  pthread_mutex_destroy(&u.mu);
  return u.rc ? quire__err(u.rc, "%s", u.msg) : 0;
}

static int local_only(void) {
  return quire__err(QUIRE_EINVAL, "this client is local only (no metastore and pagestore URLs)");
}

static int in_conflict(quire_volume *v) {
  char t[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&v->vid, t);
  return quire__err(QUIRE_ECONFLICT, "volume %s is in conflict: another client committed while local commits were "
                                     "unpushed; quire_volume_reset drops them, quire_volume_fork keeps them in a new "
                                     "volume", t);
}

/* A pulled range changed nothing a client holding `count` pages relies
 * on: no page changed (rewrites — server checkpoints — are left out of
 * pull_graft's union) and the page count stayed `count` throughout. */
static int range_unchanged(int no_pages, quire_pagecount head_count, quire_pagecount min_count,
                           quire_pagecount count) {
  return no_pages && head_count == count && min_count >= count;
}

/* Whether the remote log past `from` changed nothing a client based on
 * `from` holds: every commit in between is a rewrite (a checkpoint made by
 * the server) or empty, and the page count stayed `count` throughout. Then
 * local commits on top of `from` apply unchanged on top of the new head —
 * no conflict. 1 with *to = the head it reached, 0 when something changed,
 * else an error. Reads up to 64 bounded pull_graft answers. */
static int remote_unchanged(quire_volume *v, quire_lsn from, quire_pagecount count, const struct cl_call *call,
                            quire_lsn *to) {
  quire_buf graft;
  quire__buf_init(&graft, 256u << 20);
  int rc = 0, same = 1;
  *to = from;
  for (int round = 0; same && round < 64; round++) {
    struct quire_snapshot snap;
    quire_lsn end = 0;
    quire_pagecount min_count = UINT32_MAX;
    rc = cl__ms_pull_graft(v->client->remote, &v->vid, *to, 0, call, &snap, &end, &graft, &min_count);
    if (rc) break;
    if (end <= *to) break; /* at the head */
    splinter_view_t gv;
    if ((rc = splinter_view_open(graft.data, graft.len, &gv)) != 0) {
      rc = quire__err(QUIRE_ECORRUPT, "pull_graft: the metastore sent a damaged page set");
      break;
    }
    same = range_unchanged(splinter_view_is_empty(&gv), snap.page_count, min_count, count);
    if (same) *to = end;
  }
  quire__buf_free(&graft);
  return rc ? rc : same;
}

int cl__push(quire_volume *v, const struct cl_call *call) {
  quire_client *c = v->client;
  if (!c->remote) return local_only();
  uint64_t t0 = quire__mono_ns();
  struct cl_intent in;
  memset(&in, 0, sizeof in);
  splinter_t *pages = NULL, *uploaded = NULL;
  int rc = 0;
  pthread_mutex_lock(&v->sync_mu);
  pthread_mutex_lock(&v->mu);
  if (v->rec.state == QUIRE_STATE_CONFLICT) {
    rc = in_conflict(v);
    pthread_mutex_unlock(&v->mu);
    goto out;
  }
  quire_lsn remote_local = v->rec.remote_local;
  if ((rc = splinter_new(&pages)) != 0 || (rc = splinter_new(&uploaded)) != 0) {
    pthread_mutex_unlock(&v->mu);
    goto out;
  }
  if (v->has_intent) {
    rc = load_intent(v, &in);
  } else if (v->rec.head == v->rec.remote_local) {
    pthread_mutex_unlock(&v->mu); /* nothing to push */
    goto out;
  } else {
    /* (1) The intent, persisted before any network call. */
    in.base_remote = v->rec.remote_lsn;
    in.end_local = v->rec.head;
    in.count = v->rec.count;
    in.created_ms = quire__wall_ms();
    rc = quire_gid_new(QUIRE_GID_COMMIT, &in.commit_id);
    if (!rc) rc = union_local(v, remote_local, in.end_local, pages, &in.first_commit_ms);
    if (!rc) rc = store_intent(v, &in);
    if (!rc) {
      v->has_intent = 1;
      v->intent_end = in.end_local;
    }
  }
  pthread_mutex_unlock(&v->mu);
  if (rc) goto out;
  if (splinter_is_empty(pages) && (rc = union_local(v, remote_local, in.end_local, pages, NULL)) != 0) goto out;
  /* Pages past the final page_count do not exist remotely. */
  if (in.count < UINT32_MAX && (rc = splinter_remove_range(pages, in.count + 1, UINT32_MAX)) < 0) goto out;
  /* (2) Upload what no recorded segment holds yet. */
  for (uint32_t i = 0; i < in.nsegs; i++) {
    splinter_view_t g;
    if ((rc = splinter_view_open(in.segs[i].graft, in.segs[i].graft_len, &g)) != 0) goto out;
    if ((rc = splinter_union(splinter_ref_owned(uploaded), splinter_ref_view(&g), uploaded)) != 0) goto out;
  }
  if ((rc = splinter_difference(splinter_ref_owned(pages), splinter_ref_owned(uploaded), pages)) != 0) goto out;
  if ((rc = upload(v, &in, pages, call)) != 0) goto out;
  /* (3) The commit, with the same commit id on every attempt. */
  struct quire_commit_segment *segs = cl__commit_segs(in.segs, in.nsegs);
  if (!segs) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  struct quire_snapshot snap;
  rc = cl__ms_commit(c->remote, &v->vid, &c->client_id, &in.commit_id, in.base_remote, in.count, segs, in.nsegs,
                     call, &snap);
  /* The head moved by checkpoints only: base the push on the new head (the
   * intent says so before the next attempt, so a retry after a crash or a
   * lost answer asks for the same lsn) and commit again, same commit id. */
  for (int rebases = 0; rc == QUIRE_ECONFLICT && rebases < 16; rebases++) {
    pthread_mutex_lock(&v->mu);
    quire_pagecount base_count = v->rec.remote_count;
    pthread_mutex_unlock(&v->mu);
    quire_lsn to;
    int same = remote_unchanged(v, in.base_remote, base_count, call, &to);
    if (same < 0) rc = same;
    if (same != 1 || to <= in.base_remote) break;
    in.base_remote = to;
    if ((rc = store_intent(v, &in)) != 0) break;
    cl__count(&v->stats, &c->stats, CL_STAT(rebases), 1);
    rc = cl__ms_commit(c->remote, &v->vid, &c->client_id, &in.commit_id, in.base_remote, in.count, segs, in.nsegs,
                       call, &snap);
  }
  quire__free(segs);
  if (rc == 0 && snap.lsn != in.base_remote + 1)
    rc = quire__err(QUIRE_ECORRUPT, "metastore committed at lsn %llu, expected %llu", (unsigned long long)snap.lsn,
                    (unsigned long long)in.base_remote + 1);
  if (rc && rc != QUIRE_ECONFLICT) goto out;
  /* Success or conflict: one local transaction settles it. */
  pthread_mutex_lock(&v->mu);
  struct cl_vrec rec = v->rec;
  lsm_txn *t;
  int lrc = lsm_txn_begin(c->db, 0, &t);
  if (lrc) {
    pthread_mutex_unlock(&v->mu);
    rc = lrc;
    goto out;
  }
  uint8_t key[CL_KEY_MAX], hi[CL_KEY_MAX];
  size_t kl = cl__key_i(key, &v->vid);
  lrc = lsm_txn_delete(t, key, kl);
  if (rc == 0) {
    rec.remote_lsn = snap.lsn;
    rec.remote_local = in.end_local;
    rec.remote_count = in.count;
    rec.last_error = 0;
    rec.last_error_msg[0] = '\0';
    size_t ll = cl__key_l(key, &v->vid, 0), hl = cl__key_l(hi, &v->vid, in.end_local + 1);
    if (!lrc) lrc = lsm_txn_delete_range(t, key, ll, hi, hl);
  } else {
    rec.state = QUIRE_STATE_CONFLICT;
    rec.last_error = rc;
    snprintf(rec.last_error_msg, sizeof rec.last_error_msg, "%s", quire_errmsg());
  }
  if (!lrc) lrc = cl__vol_store_rec(v, t, &rec);
  if (!lrc) lrc = lsm_txn_commit(t);
  else lsm_txn_abort(t);
  if (!lrc) {
    v->rec = rec;
    v->has_intent = 0;
    v->offline = 0;
    if (rc == 0) {
      v->oldest_unpushed_ms = v->rec.head > v->rec.remote_local ? quire__wall_ms() : 0;
      uint64_t now = quire__wall_ms();
      cl__set(&v->stats, &c->stats, CL_STAT(sync_lag_ms_last), now > in.first_commit_ms ? now - in.first_commit_ms : 0);
      cl__count(&v->stats, &c->stats, CL_STAT(pushes), 1);
    } else {
      cl__count(&v->stats, &c->stats, CL_STAT(conflicts), 1);
    }
    cl__vol_wake(v);
  }
  pthread_mutex_unlock(&v->mu);
  if (lrc) rc = lrc;
  else if (rc == QUIRE_ECONFLICT) rc = in_conflict(v);
out:
  if (rc && rc != QUIRE_ECONFLICT) {
    cl__count(&v->stats, &c->stats, CL_STAT(push_errors), 1);
    note(v, rc);
  }
  cl__hist(&v->stats, &c->stats, CL_STAT(push_us), (quire__mono_ns() - t0) / 1000);
  pthread_mutex_unlock(&v->sync_mu);
  cl__intent_clear(&in);
  splinter_free(pages);
  splinter_free(uploaded);
  return rc;
}

/* Applies a pulled remote head as one local commit (sync_mu and mu held). */
static int apply_pull(quire_volume *v, const struct quire_snapshot *snap, quire_lsn to, quire_pagecount min_count,
                      const splinter_t *changed) {
  quire_client *c = v->client;
  struct cl_vrec rec = v->rec;
  quire_lsn lsn = rec.head + 1;
  lsm_txn *t;
  int rc = lsm_txn_begin(c->db, 0, &t);
  if (rc) return rc;
  uint8_t key[CL_P_KEY_LEN], marker[9];
  marker[0] = CL_VALUE_PENDING;
  st_le64(marker + 1, to);
  splinter_iter_t it;
  splinter_iter_init(&it, splinter_ref_owned(changed), 1);
  uint32_t idx;
  while (!rc && splinter_iter_next(&it, &idx)) {
    if (idx > snap->page_count) break;
    size_t kl = cl__key_p(key, &v->vid, idx, lsn);
    rc = lsm_txn_put(t, key, kl, marker, sizeof marker);
    if (!rc) rc = cl__prune_page(v, t, idx, lsn);
  }
  splinter_t *regrown = NULL;
  if (!rc) rc = splinter_new(&regrown);
  /* Pages the range truncated away and nothing wrote again read as zeros
   * (the range's smallest page_count may lie below both ends). */
  if (!rc)
    rc = cl__regrow(v, t, QUIRE_MIN(rec.count, min_count), QUIRE_MIN(snap->page_count, rec.hwm), lsn, changed,
                    regrown);
  splinter_free(regrown);
  if (!rc) {
    rec.head = lsn;
    rec.count = snap->page_count;
    if (rec.count > rec.hwm) rec.hwm = rec.count;
    rec.remote_lsn = to;
    rec.remote_local = lsn;
    rec.remote_count = snap->page_count;
    rec.adopted_unpulled = 0;
    rec.last_error = 0;
    rec.last_error_msg[0] = '\0';
    rc = cl__vol_store_rec(v, t, &rec);
  }
  if (rc) {
    lsm_txn_abort(t);
    return rc;
  }
  if ((rc = lsm_txn_commit(t)) != 0) return rc;
  v->rec = rec;
  v->offline = 0;
  cl__vol_wake(v);
  return 0;
}

/* The remote head moved to `to` without changing a page (checkpoints made
 * by the server): the local commits stay unpushed on top of it (sync_mu and
 * mu held). remote_local keeps naming the local commit that equals it. */
static int pass_unchanged(quire_volume *v, quire_lsn to) {
  struct cl_vrec rec = v->rec;
  rec.remote_lsn = to;
  lsm_txn *t;
  int rc = lsm_txn_begin(v->client->db, 0, &t);
  if (rc) return rc;
  if ((rc = cl__vol_store_rec(v, t, &rec)) != 0) {
    lsm_txn_abort(t);
    return rc;
  }
  if ((rc = lsm_txn_commit(t)) != 0) return rc;
  v->rec = rec;
  cl__count(&v->stats, &v->client->stats, CL_STAT(rebases), 1);
  cl__vol_wake(v);
  return 0;
}

/* Persists the state "conflict" (mu held). */
static int set_conflict(quire_volume *v) {
  struct cl_vrec rec = v->rec;
  rec.state = QUIRE_STATE_CONFLICT;
  int rc = in_conflict(v);
  rec.last_error = rc;
  snprintf(rec.last_error_msg, sizeof rec.last_error_msg, "%s", quire_errmsg());
  lsm_txn *t;
  int lrc = lsm_txn_begin(v->client->db, 0, &t);
  if (!lrc) lrc = cl__vol_store_rec(v, t, &rec);
  if (!lrc) lrc = lsm_txn_commit(t);
  else if (t) lsm_txn_abort(t);
  if (lrc) return lrc;
  v->rec = rec;
  cl__count(&v->stats, &v->client->stats, CL_STAT(conflicts), 1);
  cl__vol_wake(v);
  return in_conflict(v);
}

int cl__pull(quire_volume *v, unsigned wait_ms, const struct cl_call *call) {
  quire_client *c = v->client;
  if (!c->remote) return local_only();
  quire_buf graft;
  quire__buf_init(&graft, 256u << 20);
  splinter_t *changed = NULL;
  int rc = splinter_new(&changed);
  for (int round = 0; !rc; round++) {
    pthread_mutex_lock(&v->mu);
    quire_gid vid = v->vid;
    quire_lsn from = v->rec.remote_lsn;
    int conflict = v->rec.state == QUIRE_STATE_CONFLICT, unpulled = v->rec.adopted_unpulled;
    pthread_mutex_unlock(&v->mu);
    if (conflict) {
      rc = in_conflict(v);
      break;
    }
    struct quire_snapshot snap;
    quire_lsn to = 0;
    quire_pagecount min_count = UINT32_MAX;
    rc = cl__ms_pull_graft(c->remote, &vid, from, round ? 0 : wait_ms, call, &snap, &to, &graft, &min_count);
    if (rc == QUIRE_ENOTFOUND && from == 0) {
      /* The volume has no remote commit: it is empty there. */
      rc = 0;
      if (unpulled) {
        pthread_mutex_lock(&v->sync_mu);
        pthread_mutex_lock(&v->mu);
        struct cl_vrec rec = v->rec;
        rec.adopted_unpulled = 0;
        lsm_txn *t;
        rc = lsm_txn_begin(c->db, 0, &t);
        if (!rc && (rc = cl__vol_store_rec(v, t, &rec)) != 0) lsm_txn_abort(t);
        else if (!rc) rc = lsm_txn_commit(t);
        if (!rc) v->rec = rec;
        pthread_mutex_unlock(&v->mu);
        pthread_mutex_unlock(&v->sync_mu);
      }
      break;
    }
    if (rc) break;
    if (to <= from) break; /* nothing new */
    splinter_view_t gv;
    if ((rc = splinter_view_open(graft.data, graft.len, &gv)) != 0) {
      rc = quire__err(QUIRE_ECORRUPT, "pull_graft: the metastore sent a damaged page set");
      break;
    }
    if ((rc = splinter_assign(changed, splinter_ref_view(&gv))) != 0) break;
    pthread_mutex_lock(&v->sync_mu);
    pthread_mutex_lock(&v->mu);
    int moved = v->rec.remote_lsn != from || memcmp(v->vid.b, vid.b, QUIRE_GID_SIZE) != 0;
    if (moved) {
      rc = 0; /* a push or another pull got there first: look again */
    } else if ((v->rec.head > v->rec.remote_local || v->has_intent) &&
               range_unchanged(splinter_is_empty(changed), snap.page_count, min_count, v->rec.remote_count)) {
      rc = pass_unchanged(v, to); /* only checkpoints came in: local commits stay on top */
    } else if (v->rec.head > v->rec.remote_local || v->has_intent) {
      rc = set_conflict(v);
    } else {
      rc = apply_pull(v, &snap, to, min_count, changed);
      if (!rc) {
        cl__count(&v->stats, &c->stats, CL_STAT(pulls), 1);
        cl__count(&v->stats, &c->stats, CL_STAT(pull_commits), to - from);
        uint64_t now = quire__wall_ms();
        cl__set(&v->stats, &c->stats, CL_STAT(remote_lag_ms_last),
                now > snap.timestamp_ms ? now - snap.timestamp_ms : 0);
      }
    }
    pthread_mutex_unlock(&v->mu);
    pthread_mutex_unlock(&v->sync_mu);
    if (rc || (wait_ms && !moved)) break; /* a long poll applies one answer */
  }
  if (rc && rc != QUIRE_ECONFLICT && rc != QUIRE_ECANCELED) {
    cl__count(&v->stats, &c->stats, CL_STAT(pull_errors), 1);
    note(v, rc);
  }
  splinter_free(changed);
  quire__buf_free(&graft);
  return rc;
}

/* ---- the public calls ------------------------------------------------------ */

/* Pushes until nothing is left: an interrupted push first (its intent is
 * fixed), then the commits made after it. Bounded, so a writer committing
 * without pause cannot keep the caller here. */
static int push_all(quire_volume *v, const struct cl_call *call) {
  int rc = 0;
  for (int round = 0; round < 16 && !rc; round++) {
    rc = cl__push(v, call);
    pthread_mutex_lock(&v->mu);
    int more = v->rec.head > v->rec.remote_local || v->has_intent;
    pthread_mutex_unlock(&v->mu);
    if (!more) break;
  }
  return rc;
}

int quire_volume_push(quire_volume *v, unsigned timeout_ms) {
  struct cl_call call;
  cl__call_init(v->client, timeout_ms, &call);
  return push_all(v, &call);
}

int quire_volume_pull(quire_volume *v, unsigned timeout_ms) {
  struct cl_call call;
  cl__call_init(v->client, timeout_ms, &call);
  return cl__pull(v, 0, &call);
}

int quire_volume_sync(quire_volume *v, unsigned timeout_ms) {
  struct cl_call call;
  cl__call_init(v->client, timeout_ms, &call);
  int rc = push_all(v, &call);
  return rc ? rc : cl__pull(v, 0, &call);
}

int quire_volume_wait(quire_volume *v, quire_lsn remote_lsn, unsigned timeout_ms) {
  uint64_t deadline = quire__mono_ms() + timeout_ms;
  int rc = 0;
  pthread_mutex_lock(&v->mu);
  while (v->rec.remote_lsn < remote_lsn) {
    uint64_t now = quire__mono_ms();
    if (now >= deadline) {
      rc = quire__err(QUIRE_ETIMEDOUT, "remote lsn %llu not reached within %u ms (at %llu)",
                      (unsigned long long)remote_lsn, timeout_ms, (unsigned long long)v->rec.remote_lsn);
      break;
    }
    struct timespec ts;
    quire__deadline_after_ms(&ts, deadline - now);
    pthread_cond_timedwait(&v->cv, &v->mu, &ts);
  }
  pthread_mutex_unlock(&v->mu);
  return rc;
}

/* ---- reset ----------------------------------------------------------------- */

int quire_volume_reset(quire_volume *v, unsigned timeout_ms) {
  quire_client *c = v->client;
  if (!c->remote) return local_only();
  struct cl_call call;
  cl__call_init(c, timeout_ms, &call);
  splinter_t *remote_changed = NULL, *local_changed = NULL;
  quire_buf graft;
  quire__buf_init(&graft, 256u << 20);
  int rc = splinter_new(&remote_changed);
  if (!rc) rc = splinter_new(&local_changed);
  pthread_mutex_lock(&v->sync_mu);
  pthread_mutex_lock(&v->mu);
  quire_lsn from = v->rec.remote_lsn;
  quire_gid vid = v->vid;
  pthread_mutex_unlock(&v->mu);
  /* The remote head and everything that changed there since our remote lsn. */
  quire_lsn head_remote = from;
  quire_pagecount remote_count = 0, min_count = UINT32_MAX;
  int have_snap = 0;
  while (!rc) {
    struct quire_snapshot snap;
    quire_lsn to = 0;
    quire_pagecount range_min = UINT32_MAX;
    rc = cl__ms_pull_graft(c->remote, &vid, head_remote, 0, &call, &snap, &to, &graft, &range_min);
    if (rc == QUIRE_ENOTFOUND && head_remote == 0) {
      rc = 0; /* no remote commit: the remote volume is empty */
      break;
    }
    if (rc) break;
    remote_count = snap.page_count;
    have_snap = 1;
    if (to <= head_remote) break;
    splinter_view_t gv;
    if ((rc = splinter_view_open(graft.data, graft.len, &gv)) != 0) {
      rc = quire__err(QUIRE_ECORRUPT, "pull_graft: the metastore sent a damaged page set");
      break;
    }
    rc = splinter_union(splinter_ref_owned(remote_changed), splinter_ref_view(&gv), remote_changed);
    if (range_min < min_count) min_count = range_min;
    head_remote = to;
  }
  if (rc) {
    note(v, rc);
    goto out;
  }
  pthread_mutex_lock(&v->mu);
  struct cl_vrec rec = v->rec;
  if (!have_snap) remote_count = 0;
  quire_lsn lsn = rec.head + 1, base_local = rec.remote_local;
  lsm_txn *t = NULL;
  if ((rc = union_local(v, base_local, rec.head, local_changed, NULL)) != 0 ||
      (rc = lsm_txn_begin(c->db, 0, &t)) != 0)
    goto unlock;
  uint8_t key[CL_KEY_MAX], hi[CL_KEY_MAX], marker[9];
  marker[0] = CL_VALUE_PENDING;
  st_le64(marker + 1, head_remote);
  /* Pages changed remotely: pending at the remote head. */
  splinter_iter_t it;
  splinter_iter_init(&it, splinter_ref_owned(remote_changed), 1);
  uint32_t idx;
  while (!rc && splinter_iter_next(&it, &idx) && idx <= remote_count) {
    size_t kl = cl__key_p(key, &v->vid, idx, lsn);
    rc = lsm_txn_put(t, key, kl, marker, sizeof marker);
  }
  /* Pages changed only locally: back to the version the remote lsn saw. */
  if (!rc) rc = splinter_difference(splinter_ref_owned(local_changed), splinter_ref_owned(remote_changed), local_changed);
  splinter_iter_init(&it, splinter_ref_owned(local_changed), 1);
  while (!rc && splinter_iter_next(&it, &idx) && idx <= remote_count) {
    uint8_t pk[CL_P_KEY_LEN], fk[CL_P_KEY_LEN];
    size_t pl = cl__key_p(pk, &v->vid, idx, base_local);
    int kind;
    quire_lsn at, pend;
    const uint8_t empty = CL_VALUE_EMPTY;
    if ((rc = cl__page_lookup(c->db, &v->vid, idx, base_local, &kind, &at, &pend, NULL)) != 0) break;
    size_t fl = cl__key_p(fk, &v->vid, idx, lsn);
    /* Past the end there, or truncated away remotely since: zeros, whatever is stored. */
    if (idx > QUIRE_MIN(rec.remote_count, min_count)) kind = CL_PAGE_ABSENT;
    if (kind == CL_PAGE_ABSENT || kind == CL_PAGE_EMPTY) {
      rc = lsm_txn_put(t, fk, fl, &empty, 1);
    } else {
      lsm_value val = {0};
      pl = cl__key_p(pk, &v->vid, idx, at);
      if ((rc = lsm_get(c->db, pk, pl, &val)) != 0) break;
      rc = lsm_txn_put(t, fk, fl, val.data, val.len);
      lsm_value_release(&val);
    }
  }
  /* Growth past what the remote lsn had reads as zeros. */
  splinter_t *both = NULL, *regrown = NULL;
  if (!rc) rc = splinter_new(&both);
  if (!rc) rc = splinter_new(&regrown);
  if (!rc) rc = splinter_union(splinter_ref_owned(remote_changed), splinter_ref_owned(local_changed), both);
  if (!rc)
    rc = cl__regrow(v, t, QUIRE_MIN(rec.remote_count, min_count), QUIRE_MIN(remote_count, rec.hwm), lsn, both,
                    regrown);
  if (!rc) {
    splinter_iter_init(&it, splinter_ref_owned(both), 1);
    while (!rc && splinter_iter_next(&it, &idx) && idx <= remote_count) rc = cl__prune_page(v, t, idx, lsn);
  }
  splinter_free(both);
  splinter_free(regrown);
  /* The discarded local commits and any push intent go. */
  size_t kl = cl__key_l(key, &v->vid, base_local + 1), hl = cl__key_l(hi, &v->vid, UINT64_MAX);
  if (!rc) rc = lsm_txn_delete_range(t, key, kl, hi, hl);
  kl = cl__key_i(key, &v->vid);
  if (!rc) rc = lsm_txn_delete(t, key, kl);
  if (!rc) {
    rec.head = lsn;
    rec.count = remote_count;
    rec.remote_count = remote_count;
    if (rec.count > rec.hwm) rec.hwm = rec.count;
    rec.remote_lsn = head_remote;
    rec.remote_local = lsn;
    rec.state = QUIRE_STATE_OK;
    rec.adopted_unpulled = 0;
    rec.last_error = 0;
    rec.last_error_msg[0] = '\0';
    rc = cl__vol_store_rec(v, t, &rec);
  }
  if (!rc) {
    rc = lsm_txn_commit(t);
    t = NULL;
  }
  if (!rc) {
    cl__vol_settle(v, &rec);
    cl__count(&v->stats, &c->stats, CL_STAT(resets), 1);
  }
unlock:
  lsm_txn_abort(t);
  pthread_mutex_unlock(&v->mu);
out:
  pthread_mutex_unlock(&v->sync_mu);
  splinter_free(remote_changed);
  splinter_free(local_changed);
  quire__buf_free(&graft);
  return rc;
}
