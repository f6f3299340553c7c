/*
 * lsm/levels.c — levels and merge scheduling: which merge runs next, the
 * background merge threads, committing a merge by swapping roots in a new
 * header, backpressure on commits, lsm_compact and lsm_merge_wait.
 *
 * Levels (newest first): Incoming (every flush and big commit), Waiting
 * (Incoming segments moved or folded together), Regular 0..N (one segment
 * each, nominal size level0_bytes x level_factor^n). Jobs:
 *
 *   Incoming -> Waiting   the oldest run of Incoming: large segments move as
 *                         they are, a run of small ones is folded into one
 *   Waiting -> Regular 0  in passes: the oldest Waiting segments (a batch of
 *                         up to LSM_MAX_BATCH, once LSM_WAIT_TRIGGER wait) by
 *                         partial merges, windows of the oldest one, the
 *                         others' entries in the same key span going along
 *   Regular n -> n+1      when Regular n is over its nominal size (or rich in
 *                         tombstones), by partial merges
 *
 * A partial merge promotes a window of the source's leaves into the
 * destination, rewriting only what overlaps (merge.c). A source whose
 * destination level is empty moves down whole. Each job marks the levels it
 * touches busy, so adjacent levels never merge at once; the merge is built
 * without locks on a pinned version and committed under the commit lock by a
 * header naming the new roots. The pages it stopped reaching go to limbo and
 * become free when no older version (snapshot) is left.
 */
#include <string.h>
#include <time.h>

#include "lsm/lsm_int.h"

#define SMALL_LEAVES 64 /* Incoming segments below this many leaves are folded together */
#define TOMB_HEAVY                                                                                           \
  64 /* a Regular level this rich in tombstones per leaf merges down even under its size (8 made random      \
        deletes rewrite live leaves over and over: write amplification 18 -> 9.7) */

enum { JOB_IN = 0, JOB_WAIT = 1, JOB_REG = 2 };

typedef struct job {
  int kind;
  uint32_t n; /* JOB_REG: source level */
  double score;
} job;

uint64_t lsm__level_nominal(const lsm_db *db, uint32_t n) {
  uint64_t b = db->level0_bytes;
  for (uint32_t i = 0; i < n && b < UINT64_MAX / 64; i++) b *= db->level_factor;
  return b;
}

static uint64_t seg_bytes(const lsm_db *db, const lsm_seg *s) { return s ? s->leaves * db->pgsz : 0; }

static lsm_seg *reg(const lsm_version *v, uint32_t n) {
  return n < v->n_reg ? v->segs[v->n_in + v->n_wait + n] : NULL;
}

/* merge_mu held: the most urgent job whose levels are free. 1 if found. */
static int pick(lsm_db *db, job *j) {
  int found = 0;
  j->kind = -1;
  j->score = 0;
  pthread_mutex_lock(&db->lock);
  lsm_version *v = db->cur;
  /* Incoming waits while Waiting is over its limit (commits then slow down) */
  if (v->n_in && !db->busy[0] && v->n_wait <= db->max_incoming) {
    *j = (job){JOB_IN, 0, 1e9};
    found = 1;
  }
  /* Waiting -> Regular 0 in passes: one starts when wait_trigger segments
   * wait (or Regular 0 is empty, and the oldest just moves down), and takes
   * them all as one batch, so Regular 0 is rewritten once per batch, not
   * once per flushed segment */
  if (!found && v->n_wait && !db->busy[1] && !db->busy[2] &&
      (db->wait_batch || v->n_wait >= db->wait_trigger || !reg(v, 0))) {
    *j = (job){JOB_WAIT, 0, (double)v->n_wait};
    found = 1;
  }
  for (uint32_t n = 0; n < v->n_reg && n + 1 < LSM_MAX_REGULAR; n++) {
    lsm_seg *s = reg(v, n);
    if (!s || db->busy[2 + n] || db->busy[3 + n]) continue;
    double score = (double)seg_bytes(db, s) / (double)lsm__level_nominal(db, n);
    if (s->tombs > s->leaves * TOMB_HEAVY && score < 1) score = 1;
    if (score >= 1 && score > j->score && j->kind != JOB_IN) {
      *j = (job){JOB_REG, n, score};
      found = 1;
    }
  }
  pthread_mutex_unlock(&db->lock);
  return found;
}

static void set_busy(lsm_db *db, const job *j, int on) {
  if (j->kind == JOB_IN) {
    db->busy[0] = (uint8_t)on;
  } else if (j->kind == JOB_WAIT) {
    db->busy[1] = db->busy[2] = (uint8_t)on;
  } else {
    db->busy[2 + j->n] = db->busy[3 + j->n] = (uint8_t)on;
  }
}

/* ---- committing a merge ------------------------------------------------ */
typedef struct edit {
  uint32_t in_drop;                          /* oldest Incoming segments removed... */
  lsm_seg *in_old[LSM_MAX_INCOMING];         /* ...which must be these (oldest last) */
  lsm_seg *wait_front[LSM_MAX_INCOMING + 1]; /* added at the front of Waiting, newest first */
  uint32_t n_front;
  uint32_t wait_n; /* the oldest wait_n Waiting segments are replaced... */
  lsm_seg *wait_old[LSM_MAX_BATCH], *wait_new[LSM_MAX_BATCH]; /* ...in Waiting's order (new NULL: removed) */
  int ra, rb;                                                 /* Regular levels replaced (-1: none) */
  lsm_seg *ra_old, *ra_new, *rb_old, *rb_new;
} edit;

static void seg_ref(lsm_seg *s) {
  if (s) atomic_fetch_add(&s->refs, 1);
}

/* The current version with e applied (new references taken). commit_lock. */
static int apply_edit(lsm_db *db, const lsm_version *c, const edit *e, lsm_version **out) {
  lsm_seg *in[LSM_MAX_SEGS], *wait[LSM_MAX_SEGS], *regs[LSM_MAX_REGULAR];
  uint32_t nin = 0, nwait = 0, nreg = c->n_reg;
  if (e->in_drop > c->n_in) return quire__err(QUIRE_EINTERNAL, "lsm: merge input left Incoming");
  for (uint32_t i = 0; i < c->n_in - e->in_drop; i++) in[nin++] = c->segs[i];
  for (uint32_t i = 0; i < e->in_drop; i++)
    if (c->segs[c->n_in - e->in_drop + i] != e->in_old[i])
      return quire__err(QUIRE_EINTERNAL, "lsm: merge input left Incoming");
  for (uint32_t i = 0; i < e->n_front; i++) wait[nwait++] = e->wait_front[i];
  if (e->wait_n > c->n_wait) return quire__err(QUIRE_EINTERNAL, "lsm: merge source left Waiting");
  for (uint32_t i = 0; i < c->n_wait; i++) {
    lsm_seg *s = c->segs[c->n_in + i];
    uint32_t first = c->n_wait - e->wait_n;
    if (i >= first) {
      if (s != e->wait_old[i - first])
        return quire__err(QUIRE_EINTERNAL, "lsm: merge source moved in Waiting");
      if (e->wait_new[i - first]) wait[nwait++] = e->wait_new[i - first];
      continue;
    }
    wait[nwait++] = s;
  }
  memset(regs, 0, sizeof regs);
  for (uint32_t i = 0; i < c->n_reg; i++) regs[i] = c->segs[c->n_in + c->n_wait + i];
  const int rl[2] = {e->ra, e->rb};
  lsm_seg *const ro[2] = {e->ra_old, e->rb_old}, *const rn[2] = {e->ra_new, e->rb_new};
  for (int k = 0; k < 2; k++) {
    if (rl[k] < 0) continue;
    if (rl[k] >= LSM_MAX_REGULAR || regs[rl[k]] != ro[k])
      return quire__err(QUIRE_EINTERNAL, "lsm: merge destination changed");
    regs[rl[k]] = rn[k];
    if ((uint32_t)rl[k] + 1 > nreg) nreg = (uint32_t)rl[k] + 1;
  }
  while (nreg && !regs[nreg - 1]) nreg--;
  if (nin + nwait + nreg > LSM_MAX_SEGS || nwait > LSM_MAX_WAITING)
    return quire__err(QUIRE_EBUSY, "lsm: too many segments");
  lsm_version *nv;
  int rc = lsm__version_new(db, &nv);
  if (rc) return rc;
  nv->mem = c->mem;
  lsm__mem_ref(c->mem);
  uint32_t k = 0;
  for (uint32_t i = 0; i < nin; i++) nv->segs[k++] = in[i];
  for (uint32_t i = 0; i < nwait; i++) nv->segs[k++] = wait[i];
  for (uint32_t i = 0; i < nreg; i++) nv->segs[k++] = regs[i];
  for (uint32_t i = 0; i < k; i++) seg_ref(nv->segs[i]);
  nv->n_in = nin, nv->n_wait = nwait, nv->n_reg = nreg;
  *out = nv;
  return 0;
}

/* Commits e with a new header; freed goes to limbo once it is durable. The
 * caller's building count is released here. */
static int merge_commit(lsm_db *db, const edit *e, lsm_extv *freed) {
  lsm_version *nv = NULL;
  pthread_mutex_lock(&db->commit_lock);
  atomic_fetch_sub(&db->merges_building, 1);
  int rc = apply_edit(db, db->cur, e, &nv);
  if (!rc) {
    rc = lsm__write_header(db, nv, freed, db->hdr.change_counter, LSM_HDR_MERGE);
  }
  uint64_t old_vid = db->cur->vid;
  if (!rc) {
    lsm__version_swap(db, nv, 0);
    nv = NULL;
    /* before the commit lock goes: the next header (another merge, a flush)
     * must find these pages in limbo, or it would save a list without them */
    lsm__limbo_add(db, old_vid, freed);
    atomic_fetch_add(&db->st_merges, 1);
  }
  pthread_mutex_unlock(&db->commit_lock);
  lsm__version_unref(db, nv);
  return rc;
}

static void free_written(lsm_db *db, lsm_extv *w) {
  for (size_t i = 0; i < w->n; i++) lsm__free_now(db, w->v[i].start, w->v[i].count);
  lsm__extv_free(w);
}

/* Loads a segment described by d (NULL when d names nothing). */
static int load_opt(lsm_db *db, const lsm_segdesc *d, lsm_seg **out) {
  *out = NULL;
  if (!d->root && !d->rt_page) return 0;
  return lsm__seg_load(db, d, out);
}

/* ---- jobs -------------------------------------------------------------- */
static int seg_small(const lsm_seg *s) { return s->leaves < SMALL_LEAVES; }

static int job_incoming(lsm_db *db, lsm_version *v) {
  edit e;
  memset(&e, 0, sizeof e);
  e.ra = e.rb = -1;
  uint32_t n = v->n_in, first = n - 1;
  int small = seg_small(v->segs[n - 1]);
  while (first > 0 && seg_small(v->segs[first - 1]) == small) first--;
  e.in_drop = n - first;
  for (uint32_t i = first; i < n; i++) e.in_old[i - first] = v->segs[i];
  lsm_extv freed = {0}, written = {0};
  int rc = 0;
  if (small && e.in_drop >= 2) {
    lsm_segdesc d;
    atomic_fetch_add(&db->merges_building, 1);
    rc = lsm__merge_full(db, &v->segs[first], e.in_drop, 0, &d, &freed, &written);
    lsm_seg *ns = NULL;
    if (!rc) rc = load_opt(db, &d, &ns);
    if (rc) {
      atomic_fetch_sub(&db->merges_building, 1);
      free_written(db, &written);
      lsm__extv_free(&freed);
      return rc;
    }
    if (ns) e.wait_front[e.n_front++] = ns;
    atomic_fetch_add(&db->st_mwritten, lsm__extv_pages(&written));
    rc = merge_commit(db, &e, &freed);
    if (rc)
      free_written(db, &written);
    else
      atomic_fetch_add(&db->st_full, 1);
    lsm__seg_unref(db, ns);
  } else {
    for (uint32_t i = first; i < n; i++) e.wait_front[e.n_front++] = v->segs[i];
    atomic_fetch_add(&db->merges_building, 1);
    rc = merge_commit(db, &e, &freed);
    if (!rc) atomic_fetch_add(&db->st_moved, e.n_front);
  }
  lsm__extv_free(&freed);
  lsm__extv_free(&written);
  return rc;
}

/* Source S (the oldest Waiting segment, or Regular n) into Regular dn. From
 * Waiting, the newer segments of the pass's batch go with S (the window is
 * chosen in S; their entries in its key span are promoted too). */
static int job_down(lsm_db *db, lsm_version *v, int from_wait, uint32_t n) {
  uint32_t dn = from_wait ? 0 : n + 1;
  uint32_t sl = from_wait ? 1 : 2 + n; /* compaction pointer slot */
  lsm_seg *S = from_wait ? v->segs[v->n_in + v->n_wait - 1] : reg(v, n);
  lsm_seg *D = reg(v, dn);
  lsm_seg *const *newer = NULL;
  uint32_t nnewer = 0;
  edit e;
  memset(&e, 0, sizeof e);
  e.ra = e.rb = -1;
  if (from_wait) {
    /* the batch: the oldest Waiting segments, S last, up to the first newer
     * one with range tombstones (ranges make a promotion whole: S with
     * ranges goes down whole with its batch, but windows are kept for
     * batches without them, where untouched subtrees are recycled) */
    uint32_t want = db->wait_batch ? db->wait_batch : LSM_MAX_BATCH;
    if (want > v->n_wait) want = v->n_wait;
    while (nnewer + 1 < want && !v->segs[v->n_in + v->n_wait - 2 - nnewer]->nranges) nnewer++;
    newer = &v->segs[v->n_in + v->n_wait - 1 - nnewer];
    e.wait_n = nnewer + 1;
    for (uint32_t i = 0; i <= nnewer; i++) e.wait_old[i] = v->segs[v->n_in + v->n_wait - 1 - nnewer + i];
  } else {
    e.ra = (int)n, e.ra_old = S;
  }
  e.rb = (int)dn, e.rb_old = D;
  /* what older than the destination still holds keys */
  lsm_keyspan older[LSM_MAX_REGULAR];
  size_t nolder = 0;
  int older_any = 0;
  for (uint32_t i = dn + 1; i < v->n_reg; i++) {
    lsm_seg *o = reg(v, i);
    if (!o) continue;
    older_any = 1;
    if (o->d.root) older[nolder++] = (lsm_keyspan){o->minkey, o->maxkey, o->minlen, o->maxlen};
  }
  lsm_extv freed = {0};
  int rc;
  if (!D && (older_any || (!S->tombs && !S->nranges))) {
    /* nothing to merge with: the whole segment moves down (S alone) */
    if (from_wait) {
      e.wait_n = 1;
      e.wait_old[0] = S;
    }
    e.rb_new = S;
    atomic_fetch_add(&db->merges_building, 1);
    rc = merge_commit(db, &e, &freed);
    if (!rc) atomic_fetch_add(&db->st_moved, 1);
    if (!rc && from_wait) db->wait_batch = 0;
    return rc;
  }
  lsm_merge_in in = {.src = S,
                     .newer = newer,
                     .nnewer = nnewer,
                     .dst = D,
                     .older = older,
                     .nolder = nolder,
                     .older_ranges = older_any,
                     .window = db->promote_leaves,
                     .after = db->cptr[sl],
                     .afterlen = db->cptrlen[sl]};
  lsm_merge_out out;
  memset(&out, 0, sizeof out);
  atomic_fetch_add(&db->merges_building, 1);
  rc = lsm__merge_partial(db, &in, &out);
  lsm_seg *ns = NULL, *nd = NULL, *nn[LSM_MAX_BATCH] = {NULL};
  if (!rc) rc = load_opt(db, &out.src_new, &ns);
  if (!rc) rc = load_opt(db, &out.dst_new, &nd);
  for (uint32_t i = 0; i < nnewer && !rc; i++) rc = load_opt(db, &out.newer_new[i], &nn[i]);
  if (rc) {
    atomic_fetch_sub(&db->merges_building, 1);
    free_written(db, &out.written);
    goto out;
  }
  if (from_wait) {
    for (uint32_t i = 0; i < nnewer; i++) e.wait_new[i] = nn[i];
    e.wait_new[nnewer] = ns;
  } else {
    e.ra_new = ns;
  }
  e.rb_new = nd;
  rc = merge_commit(db, &e, &out.freed);
  if (rc) {
    free_written(db, &out.written);
    goto out;
  }
  if (from_wait) { /* the pass goes on with what is left of its batch; it ends with S */
    uint32_t left = ns ? 1 : 0;
    for (uint32_t i = 0; i < nnewer && ns; i++) left += nn[i] != NULL;
    db->wait_batch = left;
  }
  atomic_fetch_add(&db->st_partial, 1);
  if (nnewer) atomic_fetch_add(&db->st_batched, 1);
  atomic_fetch_add(&db->st_mwritten, out.written_pages);
  atomic_fetch_add(&db->st_recycled, out.recycled);
  atomic_fetch_add(&db->st_tdropped, out.tombs_dropped);
  /* the next window starts after this one; past the end, from the start */
  quire__free(db->cptr[sl]);
  db->cptr[sl] = out.next;
  db->cptrlen[sl] = out.nextlen;
  out.next = NULL;
  if (ns && ns->maxkey && db->cptr[sl] &&
      lsm__keycmp(db->cptr[sl], db->cptrlen[sl], ns->maxkey, ns->maxlen) >= 0) {
    quire__free(db->cptr[sl]);
    db->cptr[sl] = NULL;
  }
out:
  lsm__seg_unref(db, ns);
  lsm__seg_unref(db, nd);
  for (uint32_t i = 0; i < nnewer; i++) lsm__seg_unref(db, nn[i]);
  lsm__merge_out_free(&out);
  lsm__extv_free(&freed);
  return rc;
}

static int run_job(lsm_db *db, const job *j) {
  uint64_t snap;
  lsm_version *v = lsm__pin(db, &snap);
  int rc = 0;
  if (j->kind == JOB_IN) {
    if (v->n_in) rc = job_incoming(db, v);
  } else if (j->kind == JOB_WAIT) {
    if (v->n_wait) rc = job_down(db, v, 1, 0);
  } else if (reg(v, j->n)) {
    rc = job_down(db, v, 0, j->n);
  }
  lsm__version_unref(db, v);
  return rc;
}

/* ---- threads ----------------------------------------------------------- */
static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_cond_timedwait(cv, mu, &ts);
}

/* merge_mu held (released while the job runs). 1 if a job ran. */
static int run_one(lsm_db *db) {
  job j;
  /* after a failed write nothing more is written until the database is reopened */
  if (db->merge_pause || atomic_load(&db->fatal) || !pick(db, &j)) return 0;
  set_busy(db, &j, 1);
  db->merge_running++;
  pthread_mutex_unlock(&db->merge_mu);
  int rc = run_job(db, &j);
  pthread_mutex_lock(&db->merge_mu);
  set_busy(db, &j, 0);
  db->merge_running--;
  if (rc) {
    atomic_fetch_add(&db->st_merrors, 1);
    if (!db->merge_err)
      lsm__log(db, LSM_LOG_WARN, "lsm: background merge failed: %s (%s)", quire_errname(rc), quire_errmsg());
    db->merge_err = rc;
  } else {
    db->merge_err = 0;
  }
  pthread_cond_broadcast(&db->merge_cv);
  return rc ? -1 : 1;
}

static void *merge_main(void *arg) {
  lsm_db *db = arg;
  uint64_t backoff = 0;
  pthread_mutex_lock(&db->merge_mu);
  while (!db->merge_stop) {
    int r = run_one(db);
    if (r > 0) {
      backoff = 0;
      continue;
    }
    if (db->merge_stop) break;
    if (r < 0) {
      backoff = backoff ? (backoff * 2 > 5000 ? 5000 : backoff * 2) : 100;
      timed_wait(&db->merge_cv, &db->merge_mu, backoff);
      continue;
    }
    pthread_cond_wait(&db->merge_cv, &db->merge_mu);
  }
  pthread_mutex_unlock(&db->merge_mu);
  return NULL;
}

int lsm__merge_start(lsm_db *db, const lsm_options *o) {
  db->level_factor = o->level_factor ? o->level_factor : 10;
  if (db->level_factor < 2) db->level_factor = 2;
  db->level0_bytes = o->level0_bytes ? o->level0_bytes : (uint64_t)64 << 20;
  if (db->level0_bytes < 4u * db->pgsz) db->level0_bytes = 4u * db->pgsz;
  db->promote_leaves = o->promote_leaves ? o->promote_leaves : 512;
  db->wait_trigger = db->max_incoming < LSM_WAIT_TRIGGER ? db->max_incoming : LSM_WAIT_TRIGGER;
  if (db->wait_trigger < 1) db->wait_trigger = 1;
  db->merge_mode = o->merge_off ? 2 : o->merge_inline ? 1 : 0;
  if (db->read_only) db->merge_mode = 2;
  if (db->merge_mode != 0) return 0;
  unsigned n = o->merge_threads ? o->merge_threads : 2;
  if (n > sizeof db->merge_thr / sizeof db->merge_thr[0]) n = sizeof db->merge_thr / sizeof db->merge_thr[0];
  for (unsigned i = 0; i < n; i++) {
    int e = pthread_create(&db->merge_thr[i], NULL, merge_main, db);
    if (e) {
      lsm__merge_stop(db);
      return quire__err(-e, "lsm: cannot start a merge thread");
    }
    db->merge_nthr++;
  }
  return 0;
}

void lsm__merge_stop(lsm_db *db) {
  pthread_mutex_lock(&db->merge_mu);
  db->merge_stop = 1;
  pthread_cond_broadcast(&db->merge_cv);
  pthread_mutex_unlock(&db->merge_mu);
  for (unsigned i = 0; i < db->merge_nthr; i++) pthread_join(db->merge_thr[i], NULL);
  db->merge_nthr = 0;
}

void lsm__merge_kick(lsm_db *db) {
  if (db->merge_mode == 2) return;
  pthread_mutex_lock(&db->merge_mu);
  db->merge_due = 1;
  if (db->merge_mode == 0) pthread_cond_broadcast(&db->merge_cv);
  pthread_mutex_unlock(&db->merge_mu);
}

void lsm__merge_after_commit(lsm_db *db) {
  if (db->merge_mode != 1) return;
  pthread_mutex_lock(&db->merge_mu);
  if (db->merge_due && !db->merge_running) {
    db->merge_due = 0;
    while (run_one(db) > 0) {
    }
  }
  pthread_mutex_unlock(&db->merge_mu);
}

static int behind(lsm_db *db) {
  pthread_mutex_lock(&db->lock);
  int b = db->cur->n_in > db->max_incoming || db->cur->n_wait > db->max_incoming;
  pthread_mutex_unlock(&db->lock);
  return b;
}

void lsm__merge_throttle(lsm_db *db) {
  if (db->merge_mode != 0 || atomic_load(&db->fatal) || !behind(db)) return;
  uint64_t t0 = quire__mono_ns();
  atomic_fetch_add(&db->st_stalls, 1);
  pthread_mutex_lock(&db->merge_mu);
  /* a failing merge must not stop commits forever: wait at most a second then */
  while (!db->merge_stop && !atomic_load(&db->fatal) && behind(db) &&
         (!db->merge_err || quire__mono_ns() - t0 < 1000000000ull))
    timed_wait(&db->merge_cv, &db->merge_mu, 20);
  pthread_mutex_unlock(&db->merge_mu);
  atomic_fetch_add(&db->st_stall_us, (quire__mono_ns() - t0) / 1000);
}

int lsm_merge_wait(lsm_db *db) {
  if (!db) return QUIRE_EINVAL;
  if (db->merge_mode == 2) return 0;
  job j;
  pthread_mutex_lock(&db->merge_mu);
  int rc = 0;
  for (;;) {
    if (db->merge_mode == 1) {
      int r = run_one(db);
      if (r > 0) continue;
      rc = r < 0 ? db->merge_err : 0;
      break;
    }
    if (db->merge_err) {
      rc = db->merge_err;
      break;
    }
    if (!db->merge_running && (db->merge_pause || !pick(db, &j))) break;
    timed_wait(&db->merge_cv, &db->merge_mu, 50);
  }
  pthread_mutex_unlock(&db->merge_mu);
  return rc ? rc : lsm__failed(db);
}

void lsm__merge_pause(lsm_db *db, int on) {
  pthread_mutex_lock(&db->merge_mu);
  if (on) {
    db->merge_pause++;
    while (db->merge_running) timed_wait(&db->merge_cv, &db->merge_mu, 50);
  } else {
    db->merge_pause--;
    pthread_cond_broadcast(&db->merge_cv);
  }
  pthread_mutex_unlock(&db->merge_mu);
}

/* ---- compact ----------------------------------------------------------- */
/* Merges segs (every segment of the current version) into one segment in the
 * last level, tombstones dropped, and commits it. commit_lock, merges
 * paused. */
static int compact_into_last(lsm_db *db, lsm_seg **segs, uint32_t nseg) {
  lsm_version *c = db->cur, *nv = NULL;
  lsm_segdesc d;
  lsm_extv freed = {0}, written = {0};
  lsm_seg *ns = NULL;
  int rc = lsm__merge_full(db, segs, nseg, 1, &d, &freed, &written);
  if (!rc) rc = load_opt(db, &d, &ns);
  if (!rc) rc = lsm__version_new(db, &nv);
  if (!rc) {
    nv->mem = c->mem;
    lsm__mem_ref(c->mem);
    /* everything lands in the last level (at least Regular 0) */
    uint32_t last = c->n_reg ? c->n_reg - 1 : 0;
    nv->n_reg = ns ? last + 1 : 0;
    if (ns) nv->segs[last] = ns;
    ns = NULL;
    rc = lsm__write_header(db, nv, &freed, db->hdr.change_counter, LSM_HDR_MERGE);
  }
  if (rc) {
    free_written(db, &written);
  } else {
    uint64_t old_vid = c->vid;
    atomic_fetch_add(&db->st_mwritten, lsm__extv_pages(&written));
    lsm__version_swap(db, nv, 0);
    nv = NULL;
    lsm__limbo_add(db, old_vid, &freed);
    atomic_fetch_add(&db->st_merges, 1);
    atomic_fetch_add(&db->st_full, 1);
  }
  lsm__seg_unref(db, ns);
  lsm__version_unref(db, nv);
  lsm__extv_free(&freed);
  lsm__extv_free(&written);
  return rc;
}

static void set_alloc_mode(lsm_db *db, int mode) {
  pthread_mutex_lock(&db->lock);
  db->alloc_mode = mode;
  pthread_mutex_unlock(&db->lock);
}

/* Free pages over a tenth of the file, and no reader pins pages a merge
 * freed (they would stay where they are)? */
static int file_loose(lsm_db *db) {
  pthread_mutex_lock(&db->lock);
  uint64_t total = atomic_load(&db->npages), free_all = 0;
  for (size_t i = 0; i < db->free.n; i++) free_all += db->free.v[i].count;
  int loose = db->limbo == NULL && total && free_all * 10 > total;
  pthread_mutex_unlock(&db->lock);
  return loose;
}

int lsm_compact(lsm_db *db) {
  if (!db) return QUIRE_EINVAL;
  if (db->read_only) return quire__err(QUIRE_EINVAL, "lsm: database opened read-only");
  /* stop new merges and wait for the running ones (they need the commit lock) */
  lsm__merge_pause(db, 1);
  pthread_mutex_lock(&db->merge_mu);
  db->wait_batch = 0; /* Waiting is merged away here */
  pthread_mutex_unlock(&db->merge_mu);
  pthread_mutex_lock(&db->commit_lock);
  int rc = lsm__flush_locked(db);
  lsm_version *c = db->cur;
  uint32_t total = lsm__vcount(c), nseg = 0;
  lsm_seg *segs[LSM_MAX_SEGS];
  for (uint32_t i = 0; i < total; i++)
    if (c->segs[i]) segs[nseg++] = c->segs[i];
  int single =
      nseg == 1 && !segs[0]->tombs && !segs[0]->nranges && c->n_reg && reg(c, c->n_reg - 1) == segs[0];
  /* Packing: the merged segment is written past every live page (the file
   * end), so that once the old segments are freed the front of the file is
   * free in one piece; then, if over a tenth of the file is free, it is
   * copied once more, lowest pages first, into that front, and the end,
   * free, is cut off by the next header. Leaves and parents move; overflow
   * runs stay by reference (the copy fills around them). At most two
   * writes of the data, for a file with under a tenth free. */
  if (!rc && nseg && !single) {
    set_alloc_mode(db, LSM_ALLOC_END);
    rc = compact_into_last(db, segs, nseg);
    set_alloc_mode(db, LSM_ALLOC_NORMAL);
  } else if (!rc && single && file_loose(db)) {
    set_alloc_mode(db, LSM_ALLOC_END);
    rc = compact_into_last(db, segs, 1);
    set_alloc_mode(db, LSM_ALLOC_NORMAL);
  }
  if (!rc && db->cur->n_reg && reg(db->cur, db->cur->n_reg - 1) && file_loose(db)) {
    lsm_seg *s = reg(db->cur, db->cur->n_reg - 1);
    set_alloc_mode(db, LSM_ALLOC_LOWEST);
    rc = compact_into_last(db, &s, 1);
    set_alloc_mode(db, LSM_ALLOC_NORMAL);
  }
  pthread_mutex_unlock(&db->commit_lock);
  if (!rc) lsm__punch_free(db);
  lsm__merge_pause(db, 0);
  lsm__merge_after_commit(db);
  return rc;
}
