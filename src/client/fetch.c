/*
 * client/fetch.c — fetching pages that exist remotely and are not local
 * (DESIGN.md §11.4, docs/CLIENT.md "Fetching").
 *
 * A read that meets a PENDING marker asks here. Every page in flight has a
 * slot keyed by (page, marker lsn): a second reader of the same page waits
 * on the slot instead of asking again (single flight), and a page that is
 * local or in flight is never requested (no refetch, no overfetch). The
 * missed page goes out in one read_pages call together with read-ahead
 * candidates that are also PENDING at the reader's snapshot; the call runs
 * on the client's fetch pool and streams: each page is handed to its
 * waiters as soon as its frame is in, then written over its marker (in
 * batches, one optimistic LSM transaction each, NORMAL durability: a lost
 * fetched page is fetched again). A slot leaves the table only once its
 * page is in the local store, so a reader never falls between the two.
 *
 * Read-ahead: reads of a volume are watched for runs of equal steps
 * (sequential forward or backward, or a stride), several streams at once
 * (readers interleave). A miss that continues a stream's run doubles its
 * window (up to prefetch_max pages); a read near a stream that breaks its
 * step halves it; a random read fetches its page alone.
 *
 * Locking: f->mu guards the slot table and the read-ahead state. No lock is
 * held across the network call or an LSM commit.
 */
#include <string.h>

#include "client/remote.h"
#include "util/cancel.h"
#include "util/util.h"

#define FETCH_BUCKETS 4096
#define WRITE_BATCH 64

struct cl_fetch_slot {
  struct cl_fetch_slot *next; /* bucket chain */
  quire_pageidx idx;
  quire_lsn marker;
  int state; /* 0 in flight, 1 ready, 2 failed */
  int err;
  int prefetch;  /* fetched as read-ahead and nobody has read it yet */
  int linked;    /* in the table */
  unsigned refs; /* table link + waiters */
  char msg[160];
  uint8_t page[QUIRE_PAGE_SIZE];
};

struct fetch_job {
  quire_volume *v;
  quire_lsn remote_lsn;
  splinter_t *wanted;
  struct cl_fetch_slot **slots; /* sorted by idx */
  size_t n;
  struct cl_fetch_slot *batch[WRITE_BATCH];
  size_t nbatch;
  uint64_t received, t0;
  int rc;
};

static size_t bucket(quire_pageidx idx, quire_lsn marker) {
  uint64_t h = (idx * 0x9e3779b97f4a7c15ull) ^ (marker * 0xc2b2ae3d27d4eb4full);
  return (size_t)(h >> 52) & (FETCH_BUCKETS - 1);
}

int cl__fetcher_init(struct cl_fetcher *f) {
  memset(f, 0, sizeof *f);
  f->tab = quire__calloc(FETCH_BUCKETS, sizeof *f->tab);
  if (!f->tab) return QUIRE_ENOMEM;
  f->tab_cap = FETCH_BUCKETS;
  int rc = splinter_new(&f->prefetched);
  if (!rc) rc = quire__cancel_create(&f->cancel);
  if (rc) {
    splinter_free(f->prefetched);
    quire__free(f->tab);
    return rc;
  }
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  return 0;
}

void cl__fetcher_destroy(struct cl_fetcher *f) {
  if (!f->tab) return;
  (void)QUIRE_ALWAYS(f->tab_n == 0 && f->jobs == 0);
  quire__free(f->tab);
  splinter_free(f->prefetched);
  quire__cancel_destroy(f->cancel);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
  memset(f, 0, sizeof *f);
}

void cl__fetcher_close(quire_volume *v) {
  struct cl_fetcher *f = &v->f;
  if (!f->tab) return;
  pthread_mutex_lock(&f->mu);
  f->closing = 1;
  quire__cancel_fire(f->cancel);
  while (f->jobs) pthread_cond_wait(&f->cv, &f->mu);
  uint64_t wasted = splinter_cardinality(f->prefetched);
  splinter_clear(f->prefetched);
  pthread_mutex_unlock(&f->mu);
  cl__count(&v->stats, &v->client->stats, CL_STAT(prefetch_wasted), wasted);
}

static struct cl_fetch_slot *find(struct cl_fetcher *f, quire_pageidx idx, quire_lsn marker) {
  for (struct cl_fetch_slot *s = f->tab[bucket(idx, marker)]; s; s = s->next)
    if (s->idx == idx && s->marker == marker) return s;
  return NULL;
}

static void link_slot(struct cl_fetcher *f, struct cl_fetch_slot *s) {
  size_t b = bucket(s->idx, s->marker);
  s->next = f->tab[b];
  f->tab[b] = s;
  s->linked = 1;
  s->refs++;
  f->tab_n++;
}

/* f->mu held. */
static void put_slot(struct cl_fetch_slot *s) {
  if (--s->refs == 0) quire__free(s);
}

static void unlink_slot(struct cl_fetcher *f, struct cl_fetch_slot *s) {
  if (!s->linked) return;
  struct cl_fetch_slot **pp = &f->tab[bucket(s->idx, s->marker)];
  while (*pp && *pp != s) pp = &(*pp)->next;
  if (*pp) *pp = s->next;
  s->linked = 0;
  f->tab_n--;
  put_slot(s);
}

/* ---- read-ahead --------------------------------------------------------- */

/* The stream idx belongs to after observing it (f->mu held): a read that
 * continues a stream's step extends its run; a read near a stream's last
 * read with another step restarts it there (the pattern broke: its window
 * halves); any other read replaces the least recently used stream. */
static struct cl_stream *observe_locked(struct cl_fetcher *f, quire_pageidx idx) {
  f->tick++;
  struct cl_stream *near = NULL, *lru = &f->streams[0];
  for (int i = 0; i < CL_STREAMS; i++) {
    struct cl_stream *s = &f->streams[i];
    if (s->last && s->last == idx) { /* the same page again */
      s->tick = f->tick;
      return s;
    }
    if (s->last && s->delta && (int64_t)idx == (int64_t)s->last + s->delta) {
      s->run++;
      s->last = idx;
      s->tick = f->tick;
      return s;
    }
    int64_t d = (int64_t)idx - (int64_t)s->last;
    if (s->last && !near && d >= -CL_NEAR && d <= CL_NEAR) near = s;
    if (s->tick < lru->tick) lru = s;
  }
  if (near) {
    near->delta = (int64_t)idx - (int64_t)near->last;
    near->run = 0;
    near->window /= 2;
    near->ahead = 0;
    near->last = idx;
    near->tick = f->tick;
    return near;
  }
  *lru = (struct cl_stream){.last = idx, .tick = f->tick};
  return lru;
}

/* The next window of stream s from page `from` (excluded) on, in its
 * direction and step, inside [1, count]; doubles the window (f->mu held). */
static size_t next_window(quire_volume *v, struct cl_stream *s, int64_t from, quire_pagecount count,
                          quire_pageidx *out, size_t cap) {
  s->window = s->window ? QUIRE_MIN(s->window * 2, v->client->o.prefetch_max) : 4;
  size_t n = 0;
  int64_t p = from;
  while (n < s->window && n < cap) {
    p += s->delta;
    if (p < 1 || p > (int64_t)count) break;
    out[n++] = (quire_pageidx)p;
  }
  s->ahead = n ? out[n - 1] : 0;
  return n;
}

/* Read-ahead candidates for a miss at idx (f->mu held; idx was observed):
 * a stream with a run of at least two that idx continues gets its next
 * window; a random read gets none. */
static size_t predict(quire_volume *v, quire_pageidx idx, quire_pagecount count, quire_pageidx *out, size_t cap) {
  struct cl_fetcher *f = &v->f;
  for (int i = 0; i < CL_STREAMS; i++) {
    struct cl_stream *s = &f->streams[i];
    if (s->last == idx && s->delta && s->run >= 1) return next_window(v, s, idx, count, out, cap);
  }
  return 0;
}

/* ---- the fetch job -------------------------------------------------------- */

static int cmp_slot(const void *a, const void *b) {
  quire_pageidx x = (*(struct cl_fetch_slot *const *)a)->idx, y = (*(struct cl_fetch_slot *const *)b)->idx;
  return x < y ? -1 : x > y;
}

static struct cl_fetch_slot *job_slot(struct fetch_job *j, quire_pageidx idx) {
  size_t lo = 0, hi = j->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (j->slots[mid]->idx < idx) lo = mid + 1;
    else hi = mid;
  }
  return lo < j->n && j->slots[lo]->idx == idx ? j->slots[lo] : NULL;
}

static int is_zero_page(const uint8_t *p) {
  static const uint8_t zero[64];
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 64)
    if (memcmp(p + i, zero, 64) != 0) return 0;
  return 1;
}

/* Writes the batch's pages over their markers — only where the marker is
 * still there (a commit may have pruned it meanwhile) — then retires the
 * slots. Under vol->mu, which every other writer of page versions (local
 * commits, pulls, resets, forks, and their pruning) holds across its LSM
 * commit: the check and the write are one step. */
static int write_batch(struct fetch_job *j) {
  quire_volume *v = j->v;
  lsm_db *db = v->client->db;
  struct cl_fetcher *f = &v->f;
  if (!j->nbatch) return 0;
  /* Read-ahead pages nobody asked for yet are noted before they become
   * readable locally, so the first read of one counts as used. */
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < j->nbatch; i++)
    if (j->batch[i]->prefetch) splinter_insert(f->prefetched, j->batch[i]->idx);
  pthread_mutex_unlock(&f->mu);
  pthread_mutex_lock(&v->mu);
  lsm_txn *t = NULL;
  int rc = lsm_txn_begin(db, 0, &t);
  /* A fetched page lost to a power cut is fetched again. */
  if (!rc && v->client->o.sync_mode == QUIRE_SYNC_FULL) lsm_txn_set_sync(t, LSM_SYNC_NORMAL);
  size_t written = 0;
  for (size_t i = 0; i < j->nbatch && !rc; i++) {
    struct cl_fetch_slot *s = j->batch[i];
    uint8_t key[CL_P_KEY_LEN];
    size_t kl = cl__key_p(key, &v->vid, s->idx, s->marker);
    lsm_value val = {0};
    rc = lsm_get(db, key, kl, &val);
    if (rc == QUIRE_ENOTFOUND) {
      rc = 0;
      continue;
    }
    if (rc) break;
    quire_lsn pend = 0;
    int kind = cl__pval_kind(val.data, val.len, &pend);
    lsm_value_release(&val);
    if (kind != CL_PAGE_PENDING) continue;
    const uint8_t empty = CL_VALUE_EMPTY;
    rc = is_zero_page(s->page) ? lsm_txn_put(t, key, kl, &empty, 1) : lsm_txn_put(t, key, kl, s->page, QUIRE_PAGE_SIZE);
    written++;
  }
  if (!rc && written) {
    rc = lsm_txn_commit(t);
  } else {
    lsm_txn_abort(t);
  }
  pthread_mutex_unlock(&v->mu);
  if (rc)
    QLOG_DEBUG("fetched pages could not be stored locally (they are fetched again when read): %s",
               quire_strerror(rc));
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < j->nbatch; i++) unlink_slot(f, j->batch[i]);
  pthread_mutex_unlock(&f->mu);
  j->nbatch = 0;
  return rc;
}

static int on_page(void *ctx, quire_pageidx idx, const uint8_t *page) {
  struct fetch_job *j = ctx;
  struct cl_fetch_slot *s = job_slot(j, idx);
  if (!s) return QUIRE_ECORRUPT; /* the client library checks this already */
  struct cl_fetcher *f = &j->v->f;
  pthread_mutex_lock(&f->mu);
  if (s->state != 0) {
    pthread_mutex_unlock(&f->mu);
    return quire__err(QUIRE_ECORRUPT, "read_pages: page %u twice", idx);
  }
  /* Counted before any waiter can go on: a reader never sees its page
   * before the counters do. */
  j->received++;
  cl__count(&j->v->stats, &j->v->client->stats, CL_STAT(fetch_pages), 1);
  cl__count(&j->v->stats, &j->v->client->stats, CL_STAT(fetch_bytes), QUIRE_PAGE_SIZE);
  memcpy(s->page, page, QUIRE_PAGE_SIZE);
  s->state = 1;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  j->batch[j->nbatch++] = s;
  if (j->nbatch == WRITE_BATCH) write_batch(j);
  return 0;
}

static void job_free(struct fetch_job *j) {
  splinter_free(j->wanted);
  quire__free(j->slots);
  quire__free(j);
}

static void run_job(void *arg) {
  struct fetch_job *j = arg;
  quire_volume *v = j->v;
  quire_client *c = v->client;
  struct cl_fetcher *f = &v->f;
  struct cl_call call;
  cl__call_init(c, 0, &call);
  call.cancel = f->cancel;
  splinter_t *missing = NULL;
  int rc = cl__ps_read_pages(c->remote, &v->vid, j->remote_lsn, j->wanted, &call, on_page, j, &missing);
  char msg[160];
  snprintf(msg, sizeof msg, "%s", rc ? quire_errmsg() : "");
  if (!rc && missing) {
    splinter_iter_t it;
    splinter_iter_init(&it, splinter_ref_owned(missing), 1);
    uint32_t idx;
    while (splinter_iter_next(&it, &idx)) {
      struct cl_fetch_slot *s = job_slot(j, idx);
      if (!s || s->state != 0) continue;
      pthread_mutex_lock(&f->mu);
      cl__count(&v->stats, &c->stats, CL_STAT(fetch_missing), 1);
      memset(s->page, 0, QUIRE_PAGE_SIZE);
      s->state = 1;
      pthread_cond_broadcast(&f->cv);
      pthread_mutex_unlock(&f->mu);
      j->batch[j->nbatch++] = s;
      if (j->nbatch == WRITE_BATCH) write_batch(j);
    }
  }
  write_batch(j);
  splinter_free(missing);
  cl__hist(&v->stats, &c->stats, CL_STAT(fetch_us), (quire__mono_ns() - j->t0) / 1000);
  if (rc) cl__count(&v->stats, &c->stats, CL_STAT(fetch_errors), 1);
  /* Whatever did not arrive fails its waiters. */
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < j->n; i++) {
    struct cl_fetch_slot *s = j->slots[i];
    if (s->state == 0) {
      s->state = 2;
      s->err = rc ? rc : QUIRE_ECORRUPT;
      snprintf(s->msg, sizeof s->msg, "%s", rc ? msg : "the pagestore's answer left out a page");
    }
    if (s->linked) unlink_slot(f, s);
    put_slot(s); /* the job's reference */
  }
  f->jobs--;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  job_free(j);
}

/* ---- the reader's side ---------------------------------------------------- */

/* A reader takes a read-ahead slot before its page was read: it was worth
 * fetching (f->mu held). */
static void take_slot(quire_volume *v, struct cl_fetch_slot *s) {
  s->refs++;
  if (!s->prefetch) return;
  s->prefetch = 0;
  splinter_remove(v->f.prefetched, s->idx);
  cl__count(&v->stats, &v->client->stats, CL_STAT(prefetch_used), 1);
}

int cl__transport_error(int rc) {
  return rc == QUIRE_EUNAVAILABLE || rc == QUIRE_ETIMEDOUT || rc == QUIRE_ECLOSED || rc == -ECONNREFUSED ||
         rc == -ECONNRESET || rc == -EHOSTUNREACH;
}

/* Keeps the candidates (ascending or descending, distinct) that are PENDING
 * at the snapshot, with their markers. One cursor pass over their range
 * when they are dense in it, else one seek each. Returns how many. */
static size_t pending_only(quire_volume *v, const struct quire_reader *snap, quire_pageidx *cand, quire_lsn *marks,
                           size_t n) {
  if (!n) return 0;
  quire_pageidx lo = cand[0], hi = cand[n - 1];
  if (lo > hi) lo = cand[n - 1], hi = cand[0];
  size_t keep = 0;
  if ((uint64_t)(hi - lo) + 1 > 4 * (uint64_t)n) {
    for (size_t i = 0; i < n; i++) {
      int kind;
      quire_lsn at, pend;
      if (cl__page_lookup(v->client->db, &v->vid, cand[i], snap->lsn, &kind, &at, &pend, NULL) == 0 &&
          kind == CL_PAGE_PENDING) {
        cand[keep] = cand[i];
        marks[keep++] = at;
      }
    }
    return keep;
  }
  splinter_t *want;
  if (splinter_from_sorted(cand, 0, &want)) return 0;
  for (size_t i = 0; i < n; i++) splinter_insert(want, cand[i]);
  lsm_cursor *cur;
  if (lsm_cursor_open(v->client->db, &cur)) {
    splinter_free(want);
    return 0;
  }
  uint8_t key[CL_P_KEY_LEN];
  size_t kl = cl__key_p(key, &v->vid, lo, 0);
  quire_pageidx cur_idx = 0;
  quire_lsn cur_lsn = 0;
  int cur_kind = CL_PAGE_ABSENT;
  int rc = lsm_cursor_seek(cur, key, kl, LSM_SEEK_GE);
  for (;;) {
    quire_pageidx idx = 0;
    quire_lsn lsn = 0;
    const void *k, *val;
    size_t fl, vl;
    int done = rc != 0 || lsm_cursor_key(cur, &k, &fl) != 0 || !cl__key_p_parse(k, fl, &v->vid, &idx, &lsn) ||
               idx > hi;
    if (done || idx != cur_idx) {
      if (cur_kind == CL_PAGE_PENDING && splinter_contains(want, cur_idx)) {
        cand[keep] = cur_idx;
        marks[keep++] = cur_lsn;
      }
      cur_kind = CL_PAGE_ABSENT;
      cur_idx = idx;
    }
    if (done) break;
    if (lsn <= snap->lsn && splinter_contains(want, idx) && lsm_cursor_value(cur, &val, &vl) == 0) {
      quire_lsn pend;
      cur_kind = cl__pval_kind(val, vl, &pend);
      cur_lsn = lsn;
    }
    rc = lsm_cursor_next(cur);
  }
  lsm_cursor_close(cur);
  splinter_free(want);
  return keep;
}

/* Starts one fetch job at the snapshot for page idx with its marker (idx 0:
 * read-ahead only) and the read-ahead candidates cand[0..ncand). f->mu is
 * held on entry and exit (dropped meanwhile). With idx, *slot gets its slot
 * with a reference for the caller. A lone page is fetched on the calling
 * thread (no hand-off); anything larger on the fetch pool. */
static int start_job(quire_volume *v, const struct quire_reader *snap, quire_pageidx idx, quire_lsn marker,
                     quire_pageidx *cand, size_t ncand, struct cl_fetch_slot **slot) {
  struct cl_fetcher *f = &v->f;
  quire_client *c = v->client;
  struct fetch_job *j = quire__calloc(1, sizeof *j);
  struct cl_fetch_slot *s = idx ? quire__calloc(1, sizeof *s) : NULL;
  int rc = 0;
  if (!j || (idx && !s) || (rc = splinter_new(&j->wanted)) != 0 ||
      !(j->slots = quire__calloc(ncand + 1, sizeof *j->slots))) {
    quire__free(s);
    if (j) job_free(j);
    return rc ? rc : QUIRE_ENOMEM;
  }
  if (s) {
    s->idx = idx;
    s->marker = marker;
    s->refs = 1; /* the job's */
    link_slot(f, s);
    j->slots[j->n++] = s;
  }
  f->jobs++;
  pthread_mutex_unlock(&f->mu);
  /* Candidates must be PENDING at this snapshot (not local, never asked). */
  quire_lsn marks[4096];
  size_t keep = pending_only(v, snap, cand, marks, QUIRE_MIN(ncand, QUIRE_ARRAY_LEN(marks)));
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < keep; i++) {
    if (find(f, cand[i], marks[i])) continue;
    struct cl_fetch_slot *ps = quire__calloc(1, sizeof *ps);
    if (!ps) break;
    ps->idx = cand[i];
    ps->marker = marks[i];
    ps->prefetch = 1;
    ps->refs = 1;
    link_slot(f, ps);
    j->slots[j->n++] = ps;
  }
  if (!j->n) { /* nothing left to ask for */
    f->jobs--;
    pthread_cond_broadcast(&f->cv);
    job_free(j);
    return 0;
  }
  for (size_t i = 0; i < j->n; i++) splinter_insert(j->wanted, j->slots[i]->idx);
  qsort(j->slots, j->n, sizeof *j->slots, cmp_slot);
  cl__count(&v->stats, &c->stats, CL_STAT(prefetch_pages), j->n - (s ? 1 : 0));
  j->v = v;
  j->remote_lsn = snap->remote_lsn;
  j->t0 = quire__mono_ns();
  if (s) {
    *slot = s;
    s->refs++; /* the caller's */
  }
  size_t n = j->n;
  pthread_mutex_unlock(&f->mu);
  cl__count(&v->stats, &c->stats, CL_STAT(fetch_round_trips), 1);
  if (n == 1 && s) {
    run_job(j); /* a lone page: no thread hand-off */
    pthread_mutex_lock(&f->mu);
    return 0;
  }
  rc = quire__pool_submit(c->fetch_pool, run_job, j);
  pthread_mutex_lock(&f->mu);
  if (rc) {
    /* Fail every slot of the job as the job would. */
    for (size_t i = 0; i < j->n; i++) {
      struct cl_fetch_slot *x = j->slots[i];
      x->state = 2;
      x->err = rc;
      snprintf(x->msg, sizeof x->msg, "the fetch pool refused the job");
      unlink_slot(f, x);
      put_slot(x); /* the job's reference (the caller keeps its own of s) */
    }
    f->jobs--;
    pthread_cond_broadcast(&f->cv);
    job_free(j);
  }
  return 0;
}

void cl__fetch_observe(quire_volume *v, const struct quire_reader *snap, quire_pageidx idx, int local_hit) {
  struct cl_fetcher *f = &v->f;
  pthread_mutex_lock(&f->mu);
  if (local_hit && !splinter_is_empty(f->prefetched) && splinter_contains(f->prefetched, idx)) {
    splinter_remove(f->prefetched, idx);
    cl__count(&v->stats, &v->client->stats, CL_STAT(prefetch_used), 1);
  }
  struct cl_stream *s = observe_locked(f, idx);
  /* A stream that has read half of its last window (local or in flight)
   * asks for the next one now, so the reader does not wait at the window's
   * end. A read past the window is a miss; predict() takes it from there. */
  if (v->client->remote && !f->closing && s->ahead && s->delta && s->window && s->run >= 1) {
    int64_t left = ((int64_t)s->ahead - (int64_t)idx) / s->delta;
    if (left >= 0 && (uint64_t)left <= s->window / 2) {
      quire_pageidx cand[4096];
      size_t n = next_window(v, s, s->ahead, snap->count, cand, QUIRE_ARRAY_LEN(cand));
      if (n) start_job(v, snap, 0, 0, cand, n, NULL);
    }
  }
  pthread_mutex_unlock(&f->mu);
}

int cl__fetch_page(quire_volume *v, const struct quire_reader *snap, quire_pageidx idx, quire_lsn marker,
                   uint8_t *out) {
  quire_client *c = v->client;
  struct cl_fetcher *f = &v->f;
  if (!c->remote)
    return quire__err(QUIRE_EUNAVAILABLE, "page %u exists only remotely and this client is local only", idx);
  if (!snap->remote_lsn)
    return quire__err(QUIRE_EINTERNAL, "page %u is pending at a snapshot without a remote lsn", idx);
  uint64_t deadline = quire__mono_ms() + c->o.fetch_timeout_ms;
  int rc = 0;
  pthread_mutex_lock(&f->mu);
  if (f->closing) {
    pthread_mutex_unlock(&f->mu);
    return quire__err(QUIRE_ECLOSED, "the volume is closing");
  }
  struct cl_fetch_slot *s = find(f, idx, marker);
  if (s) {
    take_slot(v, s);
  } else {
    /* A fetch that just finished has stored the page and left the table:
     * look again before asking the network. */
    pthread_mutex_unlock(&f->mu);
    int kind;
    quire_lsn at, pend;
    rc = cl__page_lookup(c->db, &v->vid, idx, snap->lsn, &kind, &at, &pend, out);
    if (rc || kind != CL_PAGE_PENDING) return rc;
    marker = at;
    pthread_mutex_lock(&f->mu);
    s = find(f, idx, marker);
    if (s)
      take_slot(v, s);
    else {
      quire_pageidx cand[4096];
      size_t ncand = predict(v, idx, snap->count, cand, QUIRE_ARRAY_LEN(cand));
      if ((rc = start_job(v, snap, idx, marker, cand, ncand, &s)) != 0) {
        pthread_mutex_unlock(&f->mu);
        return rc;
      }
    }
  }
  while (s->state == 0) {
    uint64_t now = quire__mono_ms();
    if (now >= deadline) break;
    struct timespec ts;
    quire__deadline_after_ms(&ts, deadline - now);
    pthread_cond_timedwait(&f->cv, &f->mu, &ts);
  }
  if (s->state == 1) {
    memcpy(out, s->page, QUIRE_PAGE_SIZE);
  } else if (s->state == 2) {
    rc = cl__transport_error(s->err)
             ? quire__err(QUIRE_EUNAVAILABLE, "page %u is not local and the pagestore did not answer: %s", idx, s->msg)
             : quire__err(s->err, "fetching page %u: %s", idx, s->msg);
  } else {
    rc = quire__err(QUIRE_EUNAVAILABLE, "page %u is not local and was not fetched within %u ms (offline?)", idx,
                    c->o.fetch_timeout_ms);
  }
  put_slot(s);
  pthread_mutex_unlock(&f->mu);
  return rc;
}
