/*
 * client/volume.c — volumes, readers, writers and local commits
 * (DESIGN.md §11.1–§11.2, docs/CLIENT.md).
 *
 * A volume's versions live under P{vid}{idx}{lsn}. A reader pins the head
 * lsn S it opened at and reads "the newest version at or below S". A writer
 * puts its pages at head+1 into an LSM transaction (which spills to disk
 * when large) and commits them with the L and V records in that same
 * transaction: the local commit is one LSM commit.
 *
 * Old versions are pruned by the commit that supersedes them: a version is
 * kept while some pin (a reader, the writer's base, the push intent's end,
 * the local lsn the remote head maps to) can still see it.
 *
 * Truncation only lowers page_count; versions past it stay (pinned readers
 * may need them) and reads check page_count. When page_count grows again,
 * the commit writes EMPTY at the new lsn for every page in the re-exposed
 * range that has an old version and was not written: growing never brings
 * old bytes back. hwm (the highest page_count ever) bounds that range.
 */
#include <string.h>

#include "client/client_int.h"
#include "util/util.h"

/* ---- pins ------------------------------------------------------------------ */

int cl__vol_pin(quire_volume *v, quire_lsn lsn) {
  for (size_t i = 0; i < v->npins; i++)
    if (v->pins[i].lsn == lsn) {
      v->pins[i].n++;
      return 0;
    }
  if (v->npins == v->pins_cap) {
    size_t cap = v->pins_cap ? v->pins_cap * 2 : 8;
    struct cl_pin *p = quire__realloc(v->pins, cap * sizeof *p);
    if (!p) return QUIRE_ENOMEM;
    v->pins = p;
    v->pins_cap = cap;
  }
  v->pins[v->npins++] = (struct cl_pin){lsn, 1};
  return 0;
}

void cl__vol_unpin(quire_volume *v, quire_lsn lsn) {
  for (size_t i = 0; i < v->npins; i++)
    if (v->pins[i].lsn == lsn) {
      if (--v->pins[i].n == 0) v->pins[i] = v->pins[--v->npins];
      return;
    }
  (void)QUIRE_NEVER(1); /* unpin of an lsn that was not pinned */
}

/* 1 if some pin p has lo <= p < hi. Pins: readers, open writers' bases,
 * the push intent's end, and the local lsn the remote head maps to (reset
 * restores from there). */
static int pinned_in(quire_volume *v, quire_lsn lo, quire_lsn hi) {
  if (v->has_intent && v->intent_end >= lo && v->intent_end < hi) return 1;
  if (v->client->remote && v->rec.remote_local >= lo && v->rec.remote_local < hi) return 1;
  for (size_t i = 0; i < v->npins; i++)
    if (v->pins[i].lsn >= lo && v->pins[i].lsn < hi) return 1;
  return 0;
}

quire_lsn cl__vol_min_pin(quire_volume *v) {
  quire_lsn m = UINT64_MAX;
  if (v->has_intent && v->intent_end < m) m = v->intent_end;
  if (v->client->remote && v->rec.remote_local < m) m = v->rec.remote_local;
  for (size_t i = 0; i < v->npins; i++)
    if (v->pins[i].lsn < m) m = v->pins[i].lsn;
  return m;
}

#define PRUNE_MAX 16 /* versions looked at per page and commit (bounds the work) */

/* Walks the versions of idx below `newer` newest first. The version at `at`
 * serves the pins in [at, next newer version); one no pin lands on is
 * deleted. Once the version serving the lowest pin is found, everything
 * below it goes in one range delete. */
int cl__prune_page(quire_volume *v, lsm_txn *t, quire_pageidx idx, quire_lsn newer) {
  quire_lsn low = cl__vol_min_pin(v);
  uint8_t key[CL_P_KEY_LEN], hi[CL_P_KEY_LEN];
  for (int i = 0; i < PRUNE_MAX && newer > 1; i++) {
    int kind, rc;
    quire_lsn at, pend;
    if ((rc = cl__page_lookup(v->client->db, &v->vid, idx, newer - 1, &kind, &at, &pend, NULL)) != 0) return rc;
    if (kind == CL_PAGE_ABSENT) return 0;
    if (low < at) {
      /* Only pins above the lowest can see this one. */
      if (!pinned_in(v, at, newer)) {
        size_t kl = cl__key_p(key, &v->vid, idx, at);
        if ((rc = lsm_txn_delete(t, key, kl)) != 0) return rc;
      }
      newer = at;
      continue;
    }
    /* at <= low: below `at` nothing is visible to anyone; `at` itself is
     * dead too when no pin is below newer. Versions below `cut` go: one
     * point delete when there is one (the common case), else a range. */
    quire_lsn cut = low < newer ? at : newer, first = low < newer ? 0 : at;
    if (!first) {
      if ((rc = cl__page_lookup(v->client->db, &v->vid, idx, at - 1, &kind, &first, &pend, NULL)) != 0) return rc;
      if (kind == CL_PAGE_ABSENT) return 0;
    }
    quire_lsn below = 0;
    if (first > 1) {
      if ((rc = cl__page_lookup(v->client->db, &v->vid, idx, first - 1, &kind, &below, &pend, NULL)) != 0)
        return rc;
      if (kind == CL_PAGE_ABSENT) below = 0;
    }
    if (!below) {
      size_t kl = cl__key_p(key, &v->vid, idx, first);
      return lsm_txn_delete(t, key, kl);
    }
    size_t ll = cl__key_p(key, &v->vid, idx, 0), hl = cl__key_p(hi, &v->vid, idx, cut);
    return lsm_txn_delete_range(t, key, ll, hi, hl);
  }
  return 0;
}

int cl__regrow(quire_volume *v, lsm_txn *t, quire_pagecount from, quire_pagecount to, quire_lsn lsn,
               const splinter_t *except, splinter_t *changed) {
  if (to <= from) return 0;
  lsm_cursor *c;
  int rc = lsm_cursor_open(v->client->db, &c);
  if (rc) return rc;
  quire_pageidx idx = from + 1;
  uint8_t key[CL_P_KEY_LEN];
  const uint8_t empty = CL_VALUE_EMPTY;
  for (;;) {
    size_t kl = cl__key_p(key, &v->vid, idx, 0);
    rc = lsm_cursor_seek(c, key, kl, LSM_SEEK_GE);
    if (rc == QUIRE_ENOTFOUND) {
      rc = 0;
      break;
    }
    const void *k;
    size_t fl;
    if (rc || (rc = lsm_cursor_key(c, &k, &fl)) != 0) break;
    quire_pageidx fidx;
    quire_lsn flsn;
    if (!cl__key_p_parse(k, fl, &v->vid, &fidx, &flsn) || fidx > to) break;
    if (!except || !splinter_contains(except, fidx)) {
      kl = cl__key_p(key, &v->vid, fidx, lsn);
      if ((rc = lsm_txn_put(t, key, kl, &empty, 1)) != 0) break;
      if ((rc = splinter_insert(changed, fidx)) < 0) break;
      rc = 0;
    }
    if (fidx == UINT32_MAX) break;
    idx = fidx + 1;
  }
  lsm_cursor_close(c);
  return rc;
}

/* ---- records ------------------------------------------------------------- */

int cl__vol_store_rec(quire_volume *v, lsm_txn *t, const struct cl_vrec *rec) {
  uint8_t key[CL_KEY_MAX];
  size_t kl = cl__key_v(key, &v->vid);
  quire_buf b;
  quire__buf_init(&b, 4096);
  int rc = cl__vrec_encode(rec, &b);
  if (!rc) rc = lsm_txn_put(t, key, kl, b.data, b.len);
  quire__buf_free(&b);
  return rc;
}

void cl__vol_set_error(quire_volume *v, int rc) {
  v->rec.last_error = rc;
  if (rc)
    snprintf(v->rec.last_error_msg, sizeof v->rec.last_error_msg, "%s: %s", quire_strerror(rc), quire_errmsg());
  else
    v->rec.last_error_msg[0] = '\0';
}

void cl__vol_wake(quire_volume *v) { pthread_cond_broadcast(&v->cv); }

void cl__vol_settle(quire_volume *v, const struct cl_vrec *rec) {
  v->rec = *rec;
  v->has_intent = 0;
  v->offline = 0;
  v->oldest_unpushed_ms = 0;
  cl__vol_wake(v);
}

static int load_rec(quire_client *c, const quire_gid *vid, struct cl_vrec *rec) {
  uint8_t key[CL_KEY_MAX];
  size_t kl = cl__key_v(key, vid);
  lsm_value val = {0};
  int rc = lsm_get(c->db, key, kl, &val);
  if (rc) return rc;
  rc = cl__vrec_decode(val.data, val.len, rec);
  lsm_value_release(&val);
  return rc;
}

/* 1 when the push intent I{vid} exists; *end gets its end lsn. */
static int load_intent_end(quire_client *c, const quire_gid *vid, quire_lsn *end) {
  uint8_t key[CL_KEY_MAX];
  size_t kl = cl__key_i(key, vid);
  lsm_value val = {0};
  int rc = lsm_get(c->db, key, kl, &val);
  if (rc == QUIRE_ENOTFOUND) return 0;
  if (rc) return rc;
  struct cl_intent in;
  rc = cl__intent_decode(val.data, val.len, &in);
  lsm_value_release(&val);
  if (rc) return rc;
  *end = in.end_local;
  cl__intent_clear(&in);
  return 1;
}

/* ---- names and volume ids --------------------------------------------------- */

static int is_vid_text(const char *s, quire_gid *vid) {
  if (strlen(s) != QUIRE_GID_TEXT_LEN) return 0;
  int rc = quire_gid_parse(s, QUIRE_GID_TEXT_LEN, QUIRE_GID_VOLUME, vid);
  quire__err_clear();
  return rc == 0;
}

static int check_name(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 255) return quire__err(QUIRE_EINVAL, "volume name must be 1..255 bytes");
  return 0;
}

static int lookup_name(quire_client *c, const char *name, quire_gid *vid) {
  uint8_t key[CL_KEY_MAX + 256];
  size_t kl = cl__key_n(key, name, strlen(name));
  lsm_value val = {0};
  int rc = lsm_get(c->db, key, kl, &val);
  if (rc) return rc;
  if (val.len != QUIRE_GID_SIZE) rc = quire__err(QUIRE_ECORRUPT, "name record of '%s' is damaged", name);
  else memcpy(vid->b, val.data, QUIRE_GID_SIZE);
  lsm_value_release(&val);
  return rc;
}

/* Writes N{name} → vid and a fresh V{vid} (when rec is not NULL). */
static int store_binding(quire_client *c, const char *name, const quire_gid *vid, const struct cl_vrec *rec) {
  lsm_txn *t;
  int rc = lsm_txn_begin(c->db, 0, &t);
  if (rc) return rc;
  uint8_t key[CL_KEY_MAX + 256];
  if (name) {
    size_t kl = cl__key_n(key, name, strlen(name));
    rc = lsm_txn_put(t, key, kl, vid->b, QUIRE_GID_SIZE);
  }
  if (!rc && rec) {
    quire_buf b;
    quire__buf_init(&b, 4096);
    size_t kl = cl__key_v(key, vid);
    rc = cl__vrec_encode(rec, &b);
    if (!rc) rc = lsm_txn_put(t, key, kl, b.data, b.len);
    quire__buf_free(&b);
  }
  if (rc) {
    lsm_txn_abort(t);
    return rc;
  }
  return lsm_txn_commit(t);
}

int quire_volume_bind(quire_client *c, const char *name, const quire_gid *vid) {
  int rc = check_name(name);
  if (rc) return rc;
  if (quire_gid_type(vid) != QUIRE_GID_VOLUME) return quire__err(QUIRE_EINVAL, "bind: not a volume id");
  quire_gid have;
  rc = lookup_name(c, name, &have);
  if (rc == 0) {
    if (memcmp(have.b, vid->b, QUIRE_GID_SIZE) == 0) return 0;
    char a[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&have, a);
    return quire__err(QUIRE_EEXIST, "volume name '%s' is bound to %s", name, a);
  }
  if (rc != QUIRE_ENOTFOUND) return rc;
  struct cl_vrec rec;
  rc = load_rec(c, vid, &rec);
  if (rc == 0) return store_binding(c, name, vid, NULL);
  if (rc != QUIRE_ENOTFOUND) return rc;
  memset(&rec, 0, sizeof rec);
  rec.adopted_unpulled = c->remote != NULL;
  snprintf(rec.name, sizeof rec.name, "%s", name);
  return store_binding(c, name, vid, &rec);
}

/* ---- volumes ------------------------------------------------------------- */

static void vol_free(quire_volume *v) {
  if (!v) return;
  cl__fetcher_destroy(&v->f);
  pthread_mutex_destroy(&v->sync_mu);
  pthread_mutex_destroy(&v->mu);
  pthread_cond_destroy(&v->cv);
  quire__free(v->pins);
  quire__free(v);
}

int quire_volume_open(quire_client *c, const char *name_or_vid, unsigned flags, quire_volume **out) {
  *out = NULL;
  if (!name_or_vid) return quire__err(QUIRE_EINVAL, "volume: no name");
  quire_gid vid;
  struct cl_vrec rec;
  const char *name = NULL;
  quire_volume *v = NULL;
  int rc, created = 0;
  if (!is_vid_text(name_or_vid, &vid)) {
    if ((rc = check_name(name_or_vid)) != 0) return rc;
    name = name_or_vid;
  }
  /* One opener at a time resolves and registers (creation is rare). */
  pthread_mutex_lock(&c->mu);
  if (name) {
    rc = lookup_name(c, name, &vid);
    if (rc == QUIRE_ENOTFOUND && (flags & QUIRE_CREATE)) {
      if ((rc = quire_gid_new(QUIRE_GID_VOLUME, &vid)) != 0) goto out;
      memset(&rec, 0, sizeof rec);
      snprintf(rec.name, sizeof rec.name, "%s", name);
      if ((rc = store_binding(c, name, &vid, &rec)) != 0) goto out;
      created = 1;
    } else if (rc == QUIRE_ENOTFOUND) {
      rc = quire__err(QUIRE_ENOTFOUND, "no volume named '%s' in %s (open it with QUIRE_CREATE to create it)", name,
                      c->data_dir);
      goto out;
    } else if (rc) {
      goto out;
    }
  }
  for (quire_volume *o = c->vols; o; o = o->next)
    if (memcmp(o->vid.b, vid.b, QUIRE_GID_SIZE) == 0) {
      o->refs++;
      *out = o;
      rc = 0;
      goto out;
    }
  if (!created) {
    rc = load_rec(c, &vid, &rec);
    if (rc == QUIRE_ENOTFOUND) {
      if (!c->remote && !(flags & QUIRE_CREATE)) {
        char t[QUIRE_GID_TEXT_LEN + 1];
        quire_gid_format(&vid, t);
        rc = quire__err(QUIRE_ENOTFOUND, "volume %s is not in %s and this client is local only", t, c->data_dir);
        goto out;
      }
      /* Adopt a volume id: its content is whatever the remote says. */
      memset(&rec, 0, sizeof rec);
      rec.adopted_unpulled = c->remote != NULL;
      if ((rc = store_binding(c, NULL, &vid, &rec)) != 0) goto out;
    } else if (rc) {
      goto out;
    }
  }
  quire_volume *nv = quire__calloc(1, sizeof *nv);
  if (!nv) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  v = nv;
  v->client = c;
  v->vid = vid;
  v->rec = rec;
  v->refs = 1;
  pthread_mutex_init(&v->sync_mu, NULL);
  pthread_mutex_init(&v->mu, NULL);
  pthread_cond_init(&v->cv, NULL);
  if ((rc = cl__fetcher_init(&v->f)) != 0) {
    vol_free(v);
    goto out;
  }
  rc = load_intent_end(c, &vid, &v->intent_end);
  if (rc < 0) {
    vol_free(v);
    goto out;
  }
  v->has_intent = rc;
  if (rec.head > rec.remote_local) v->oldest_unpushed_ms = quire__wall_ms();
  v->next = c->vols;
  c->vols = v;
  *out = v;
  rc = 0;
out:
  pthread_mutex_unlock(&c->mu);
  if (rc || !*out) return rc;
  v = *out;
  /* A volume adopted by id: learn its remote head now if the services
   * answer (reads fail with QUIRE_EUNAVAILABLE until they have). */
  if (c->remote && v->rec.adopted_unpulled && v->refs == 1) {
    struct cl_call call;
    cl__call_init(c, c->o.fetch_timeout_ms, &call);
    int prc = cl__pull(v, 0, &call);
    if (prc) QLOG_INFO("volume open: first pull failed (%s: %s); reads wait for the services", quire_strerror(prc),
                       quire_errmsg());
  }
  if (c->remote && c->o.autosync && v->refs == 1) {
    rc = cl__autosync_start(v);
    if (rc) {
      quire_volume_close(v);
      *out = NULL;
    }
  }
  return rc;
}

void quire_volume_close(quire_volume *v) {
  if (!v) return;
  quire_client *c = v->client;
  pthread_mutex_lock(&c->mu);
  int last = --v->refs == 0;
  if (last) {
    quire_volume **pp = &c->vols;
    while (*pp && *pp != v) pp = &(*pp)->next;
    if (*pp) *pp = v->next;
  }
  pthread_mutex_unlock(&c->mu);
  if (!last) return;
  (void)QUIRE_ALWAYS(v->readers == 0 && !v->writer_open);
  cl__autosync_stop(v);
  cl__fetcher_close(v);
  vol_free(v);
}

void quire_volume_vid(const quire_volume *v, quire_gid *out) { *out = v->vid; }

void quire_volume_stats(quire_volume *v, quire_stats *out) { cl__counters_read(&v->stats, out); }

int quire_volume_list(quire_client *c, quire_volume_info **out, size_t *n) {
  *out = NULL;
  *n = 0;
  lsm_cursor *cur;
  int rc = lsm_cursor_open(c->db, &cur);
  if (rc) return rc;
  size_t cap = 0;
  quire_volume_info *list = NULL;
  uint8_t vkey[1] = {'V'};
  for (rc = lsm_cursor_seek(cur, vkey, 1, LSM_SEEK_GE); rc == 0; rc = lsm_cursor_next(cur)) {
    const void *k, *val;
    size_t kl, vl;
    if ((rc = lsm_cursor_key(cur, &k, &kl)) != 0) break;
    if (kl < 1 || ((const uint8_t *)k)[0] != 'V') break;
    if (kl != 1 + QUIRE_GID_SIZE) continue;
    if ((rc = lsm_cursor_value(cur, &val, &vl)) != 0) break;
    struct cl_vrec rec;
    if ((rc = cl__vrec_decode(val, vl, &rec)) != 0) break;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      quire_volume_info *nl = quire__realloc(list, cap * sizeof *nl);
      if (!nl) {
        rc = QUIRE_ENOMEM;
        break;
      }
      list = nl;
    }
    memset(&list[*n], 0, sizeof list[*n]);
    memcpy(list[*n].vid.b, (const uint8_t *)k + 1, QUIRE_GID_SIZE);
    snprintf(list[*n].name, sizeof list[*n].name, "%s", rec.name);
    (*n)++;
  }
  lsm_cursor_close(cur);
  if (rc == QUIRE_EEND || rc == QUIRE_ENOTFOUND) rc = 0;
  if (rc) {
    quire__free(list);
    *n = 0;
    return rc;
  }
  *out = list;
  return 0;
}

void quire_volume_list_free(quire_volume_info *list) { quire__free(list); }

/* ---- readers ------------------------------------------------------------- */

int quire_reader_open(quire_volume *v, quire_reader **out) {
  *out = NULL;
  quire_reader *r = quire__calloc(1, sizeof *r);
  if (!r) return QUIRE_ENOMEM;
  pthread_mutex_lock(&v->mu);
  int rc = 0;
  if (v->rec.adopted_unpulled) {
    char t[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&v->vid, t);
    rc = quire__err(QUIRE_EUNAVAILABLE,
                    "volume %s has never been pulled from the metastore: its content is unknown until the services "
                    "answer%s%s",
                    t, v->rec.last_error ? "; the last attempt: " : "", v->rec.last_error ? v->rec.last_error_msg : "");
  } else {
    rc = cl__vol_pin(v, v->rec.head);
  }
  if (!rc) {
    r->vol = v;
    r->lsn = v->rec.head;
    r->remote_lsn = v->rec.remote_lsn;
    r->count = v->rec.count;
    v->readers++;
  }
  pthread_mutex_unlock(&v->mu);
  if (rc) {
    quire__free(r);
    return rc;
  }
  *out = r;
  return 0;
}

void quire_reader_close(quire_reader *r) {
  if (!r) return;
  quire_volume *v = r->vol;
  pthread_mutex_lock(&v->mu);
  cl__vol_unpin(v, r->lsn);
  v->readers--;
  pthread_mutex_unlock(&v->mu);
  quire__free(r);
}

quire_pagecount quire_reader_page_count(const quire_reader *r) { return r->count; }
quire_lsn quire_reader_lsn(const quire_reader *r) { return r->lsn; }
quire_lsn quire_reader_remote_lsn(const quire_reader *r) { return r->remote_lsn; }

/* The read path of readers and writers (for pages the writer did not write). */
static int read_at(const quire_reader *snap, quire_pageidx idx, uint8_t *page) {
  quire_volume *v = snap->vol;
  quire_client *c = v->client;
  uint64_t t0 = quire__mono_ns();
  if (idx == 0) return quire__err(QUIRE_ERANGE, "page index 0 (pages are numbered from 1)");
  cl__count(&v->stats, &c->stats, CL_STAT(reads), 1);
  if (idx > snap->count) {
    memset(page, 0, QUIRE_PAGE_SIZE);
    cl__count(&v->stats, &c->stats, CL_STAT(read_zero), 1);
    return 0;
  }
  int kind;
  quire_lsn at, pending;
  int rc = cl__page_lookup(c->db, &v->vid, idx, snap->lsn, &kind, &at, &pending, page);
  if (rc) return rc;
  if (kind == CL_PAGE_PENDING) {
    cl__fetch_observe(v, snap, idx, 0);
    rc = cl__fetch_page(v, snap, idx, at, page);
    if (!rc) cl__count(&v->stats, &c->stats, CL_STAT(read_fetched), 1);
  } else {
    cl__fetch_observe(v, snap, idx, 1);
    cl__count(&v->stats, &c->stats, kind == CL_PAGE_DATA ? CL_STAT(read_hits) : CL_STAT(read_zero), 1);
  }
  cl__hist(&v->stats, &c->stats, CL_STAT(read_us), (quire__mono_ns() - t0) / 1000);
  return rc;
}

int quire_reader_read(quire_reader *r, quire_pageidx idx, uint8_t page[QUIRE_PAGE_SIZE]) {
  return read_at(r, idx, page);
}

/* ---- writers ------------------------------------------------------------- */

static int all_zero(const uint8_t *p) {
  static const uint8_t zero[64];
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 64)
    if (memcmp(p + i, zero, 64) != 0) return 0;
  return 1;
}

int quire_writer_open(quire_volume *v, quire_writer **out) {
  *out = NULL;
  quire_writer *w = quire__calloc(1, sizeof *w);
  if (!w) return QUIRE_ENOMEM;
  int rc = splinter_new(&w->written);
  if (rc) {
    quire__free(w);
    return rc;
  }
  pthread_mutex_lock(&v->mu);
  if (v->writer_open) {
    rc = quire__err(QUIRE_EBUSY, "the volume already has a writer in this process");
  } else if (v->rec.adopted_unpulled) {
    rc = quire__err(QUIRE_EUNAVAILABLE,
                    "the volume has never been pulled from the metastore: writing to it now would conflict with its "
                    "remote content%s%s",
                    v->rec.last_error ? "; the last attempt: " : "", v->rec.last_error ? v->rec.last_error_msg : "");
  } else {
    rc = cl__vol_pin(v, v->rec.head);
  }
  if (!rc) {
    v->writer_open = 1;
    w->vol = v;
    w->base = v->rec.head;
    w->base_remote = v->rec.remote_lsn;
    w->base_count = w->count = w->min_count = v->rec.count;
    w->pinned = 1;
  }
  pthread_mutex_unlock(&v->mu);
  if (!rc) rc = lsm_txn_begin(v->client->db, 0, &w->txn);
  if (rc) {
    if (w->vol) quire_writer_abort(w);
    else {
      splinter_free(w->written);
      quire__free(w);
    }
    return rc;
  }
  *out = w;
  return 0;
}

static void writer_free(quire_writer *w) {
  quire_volume *v = w->vol;
  pthread_mutex_lock(&v->mu);
  if (w->pinned) cl__vol_unpin(v, w->base);
  v->writer_open = 0;
  pthread_mutex_unlock(&v->mu);
  lsm_txn_abort(w->txn);
  splinter_free(w->written);
  quire__free(w);
}

void quire_writer_abort(quire_writer *w) {
  if (w) writer_free(w);
}

int quire_writer_write(quire_writer *w, quire_pageidx idx, const uint8_t page[QUIRE_PAGE_SIZE]) {
  if (idx == 0) return quire__err(QUIRE_ERANGE, "page index 0 (pages are numbered from 1)");
  if (w->base == UINT64_MAX - 1) return quire__err(QUIRE_ERANGE, "local lsn space exhausted");
  uint8_t key[CL_P_KEY_LEN];
  size_t kl = cl__key_p(key, &w->vol->vid, idx, w->base + 1);
  const uint8_t empty = CL_VALUE_EMPTY;
  int rc = all_zero(page) ? lsm_txn_put(w->txn, key, kl, &empty, 1)
                          : lsm_txn_put(w->txn, key, kl, page, QUIRE_PAGE_SIZE);
  if (rc) return rc;
  rc = splinter_insert(w->written, idx);
  if (rc < 0) return rc;
  if (idx > w->count) w->count = idx;
  return 0;
}

int quire_writer_truncate(quire_writer *w, quire_pagecount count) {
  if (count < w->count) {
    /* Drop this writer's pages past the new end. */
    splinter_iter_t it;
    splinter_iter_init(&it, splinter_ref_owned(w->written), count == UINT32_MAX ? count : count + 1);
    uint32_t idx;
    uint8_t key[CL_P_KEY_LEN];
    while (splinter_iter_next(&it, &idx)) {
      size_t kl = cl__key_p(key, &w->vol->vid, idx, w->base + 1);
      int rc = lsm_txn_delete(w->txn, key, kl);
      if (rc) return rc;
    }
    int rc = splinter_remove_range(w->written, count + 1, UINT32_MAX);
    if (rc < 0) return rc;
  }
  w->count = count;
  if (count < w->min_count) w->min_count = count;
  return 0;
}

int quire_writer_read(quire_writer *w, quire_pageidx idx, uint8_t page[QUIRE_PAGE_SIZE]) {
  if (idx == 0) return quire__err(QUIRE_ERANGE, "page index 0 (pages are numbered from 1)");
  if (idx > w->count || (idx > w->min_count && !splinter_contains(w->written, idx))) {
    memset(page, 0, QUIRE_PAGE_SIZE);
    return 0;
  }
  if (splinter_contains(w->written, idx)) {
    uint8_t key[CL_P_KEY_LEN];
    size_t kl = cl__key_p(key, &w->vol->vid, idx, w->base + 1);
    lsm_value val = {0};
    int rc = lsm_txn_get(w->txn, key, kl, &val);
    if (rc) return rc == QUIRE_ENOTFOUND ? quire__err(QUIRE_EINTERNAL, "writer lost its page %u", idx) : rc;
    quire_lsn pend;
    int kind = cl__pval_kind(val.data, val.len, &pend);
    if (kind == CL_PAGE_DATA)
      memcpy(page, val.data, QUIRE_PAGE_SIZE);
    else if (kind == CL_PAGE_EMPTY)
      memset(page, 0, QUIRE_PAGE_SIZE);
    lsm_value_release(&val);
    return kind < 0 ? kind : kind == CL_PAGE_PENDING ? QUIRE_EINTERNAL : 0;
  }
  struct quire_reader snap = {w->vol, w->base, w->base_remote, w->base_count};
  return read_at(&snap, idx, page);
}

quire_pagecount quire_writer_page_count(const quire_writer *w) { return w->count; }
quire_lsn quire_writer_base_lsn(const quire_writer *w) { return w->base; }

int quire_writer_commit(quire_writer *w, quire_lsn *lsn_out) {
  quire_volume *v = w->vol;
  quire_client *c = v->client;
  uint64_t t0 = quire__mono_ns();
  int rc = 0;
  if (lsn_out) *lsn_out = w->base;
  if (splinter_is_empty(w->written) && w->count == w->base_count && w->min_count == w->base_count) {
    writer_free(w);
    return 0;
  }
  quire_lsn lsn = w->base + 1;
  pthread_mutex_lock(&v->mu);
  if (v->rec.head != w->base) {
    cl__count(&v->stats, &c->stats, CL_STAT(conflicts), 1);
    rc = quire__err(QUIRE_ECONFLICT, "the volume's head moved from local lsn %llu to %llu since this writer "
                                     "began (a pull or another commit landed); nothing was committed",
                    (unsigned long long)w->base, (unsigned long long)v->rec.head);
    goto out;
  }
  struct cl_vrec rec = v->rec;
  /* The writer reads nothing more: its base no longer holds versions. */
  cl__vol_unpin(v, w->base);
  w->pinned = 0;
  /* Pages re-exposed by growth read as zeros, never as old bytes. */
  quire_pagecount grow_to = QUIRE_MIN(w->count, rec.hwm);
  if ((rc = cl__regrow(v, w->txn, w->min_count, grow_to, lsn, w->written, w->written)) != 0) goto out;
  splinter_iter_t it;
  splinter_iter_init(&it, splinter_ref_owned(w->written), 1);
  uint32_t idx;
  uint64_t npages = 0;
  while (splinter_iter_next(&it, &idx)) {
    npages++;
    if ((rc = cl__prune_page(v, w->txn, idx, lsn)) != 0) goto out;
  }
  uint64_t now = quire__wall_ms();
  uint8_t key[CL_KEY_MAX];
  size_t kl = cl__key_l(key, &v->vid, lsn);
  quire_buf b;
  quire__buf_init(&b, 1u << 30);
  rc = cl__lrec_encode(w->count, now, w->written, &b);
  if (!rc) rc = lsm_txn_put(w->txn, key, kl, b.data, b.len);
  quire__buf_free(&b);
  if (rc) goto out;
  rec.head = lsn;
  rec.count = w->count;
  if (w->count > rec.hwm) rec.hwm = w->count;
  if ((rc = cl__vol_store_rec(v, w->txn, &rec)) != 0) goto out;
  rc = lsm_txn_commit(w->txn);
  w->txn = NULL;
  if (rc) goto out;
  v->rec = rec;
  if (!v->oldest_unpushed_ms) v->oldest_unpushed_ms = now;
  if (lsn_out) *lsn_out = lsn;
  cl__count(&v->stats, &c->stats, CL_STAT(commits), 1);
  cl__count(&v->stats, &c->stats, CL_STAT(commit_pages), npages);
  cl__vol_wake(v);
  if (c->remote) cl__autosync_notify_commit(v);
out:
  pthread_mutex_unlock(&v->mu);
  cl__hist(&v->stats, &c->stats, CL_STAT(commit_us), (quire__mono_ns() - t0) / 1000);
  writer_free(w);
  return rc;
}
