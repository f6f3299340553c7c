/*
 * objstore/objstore_fault.c — `fault+<url>`: wraps any store and injects
 * faults, reproducibly (DESIGN.md §7.2). Options (query parameters; the rest
 * go to the wrapped store):
 *
 *   seed=N        seeds the fault generator (default 1): the same seed and
 *                 the same sequence of calls give the same faults
 *   err=P         each attempt fails with QUIRE_EUNAVAILABLE before reaching
 *                 the wrapped store, with probability P
 *   err_first=N   the first N attempts fail that way (deterministic tests)
 *   lost_ack=P    a write (put, put_if_absent, writer commit, delete) is
 *                 performed, then reported as QUIRE_EUNAVAILABLE: the nasty
 *                 case "it succeeded but the caller was told it failed"
 *   latency=MS    each attempt first sleeps MS milliseconds (cancellable by
 *                 hedging: a cancelled sleep returns QUIRE_ECANCELED)
 *   latency_p=P   ... with probability P (default 1)
 *   slow_first=N  only the first N attempts sleep
 *
 * Every fault is counted in the store's stats (injected_errors,
 * injected_lost_acks, injected_latency); calls and attempts are counted by
 * the generic shell, so tests can assert exact request counts. The wrapped
 * store is reachable with quire_objstore_fault_inner().
 */
#include "objstore/objstore_int.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

struct fault_store {
  quire_objstore *inner;
  pthread_mutex_t mu; /* protects rng and the counters below */
  uint64_t rng;
  uint64_t attempts;
  double err, lost_ack, latency_p;
  uint64_t latency_ms, err_first, slow_first;
};

static double next_unit(struct fault_store *f) {
  /* splitmix64; caller holds mu */
  uint64_t z = (f->rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

enum { F_NONE = 0, F_ERR = 1, F_LOST = 2 };

/* Decides this attempt's fate and sleeps the injected latency. */
static int decide(quire_objstore *s, int is_write, int *fate) {
  struct fault_store *f = s->impl;
  pthread_mutex_lock(&f->mu);
  uint64_t n = ++f->attempts;
  /* Draw every number every time so the sequence does not depend on options. */
  double u_lat = next_unit(f), u_err = next_unit(f), u_lost = next_unit(f);
  pthread_mutex_unlock(&f->mu);
  int slow = f->latency_ms && u_lat < f->latency_p && (!f->slow_first || n <= f->slow_first);
  if (slow) {
    atomic_fetch_add(&s->inj_latency, 1);
    if (quire__cancel_sleep(objstore__cancel_token(), (unsigned)f->latency_ms) == QUIRE_ECANCELED)
      return quire__err(QUIRE_ECANCELED, "fault: latency sleep cancelled");
  }
  *fate = F_NONE;
  if (n <= f->err_first || u_err < f->err) {
    *fate = F_ERR;
    atomic_fetch_add(&s->inj_errors, 1);
  } else if (is_write && u_lost < f->lost_ack) {
    *fate = F_LOST;
    atomic_fetch_add(&s->inj_lost_acks, 1);
  }
  return 0;
}

static int injected(const char *what) {
  return quire__err(QUIRE_EUNAVAILABLE, "fault: injected failure (%s)", what);
}

static int fault_put(quire_objstore *s, const char *key, const void *data, size_t len, int flags) {
  struct fault_store *f = s->impl;
  int fate, rc = decide(s, 1, &fate);
  if (rc) return rc;
  if (fate == F_ERR) return injected("put");
  rc = (flags & QUIRE_OBJSTORE_IF_ABSENT) ? quire_objstore_put_if_absent(f->inner, key, data, len)
                                          : quire_objstore_put(f->inner, key, data, len);
  if (rc == 0 && fate == F_LOST) return injected("put acknowledgement lost");
  return rc;
}

static int fault_get(quire_objstore *s, const char *key, uint8_t **data, size_t *len) {
  struct fault_store *f = s->impl;
  int fate, rc = decide(s, 0, &fate);
  if (rc) return rc;
  if (fate == F_ERR) return injected("get");
  return quire_objstore_get(f->inner, key, data, len);
}

static int fault_get_range(quire_objstore *s, const char *key, uint64_t off, size_t len, void *buf,
                           size_t *got) {
  struct fault_store *f = s->impl;
  int fate, rc = decide(s, 0, &fate);
  if (rc) return rc;
  if (fate == F_ERR) return injected("get_range");
  return quire_objstore_get_range(f->inner, key, off, len, buf, got);
}

static int fault_head(quire_objstore *s, const char *key, quire_objstore_info *info) {
  struct fault_store *f = s->impl;
  int fate, rc = decide(s, 0, &fate);
  if (rc) return rc;
  if (fate == F_ERR) return injected("head");
  return quire_objstore_head(f->inner, key, info);
}

static int fault_list(quire_objstore *s, const char *prefix, const char *start_after, size_t limit,
                      quire_objstore_list *out) {
  struct fault_store *f = s->impl;
  int fate, rc = decide(s, 0, &fate);
  if (rc) return rc;
  if (fate == F_ERR) return injected("list");
  return quire_objstore_list_keys(f->inner, prefix, start_after, limit, out);
}

static int fault_del(quire_objstore *s, const char *key, int *found) {
  struct fault_store *f = s->impl;
  int fate, rc = decide(s, 1, &fate);
  if (rc) return rc;
  if (fate == F_ERR) return injected("delete");
  rc = quire_objstore_delete_found(f->inner, key, found);
  if (rc == 0 && fate == F_LOST) return injected("delete acknowledgement lost");
  return rc;
}

/* The writer passes bytes through to the wrapped store's writer; the fault
 * is decided at commit. */
struct objstore_wimpl {
  quire_objstore *s;
  quire_objstore_writer *inner;
};

static int fw_write(struct objstore_wimpl *w, const void *data, size_t len) {
  return quire_objstore_writer_write(w->inner, data, len);
}

static void fw_abort(struct objstore_wimpl *w) {
  quire_objstore_writer_abort(w->inner);
  quire__free(w);
}

static int fw_commit(struct objstore_wimpl *w) {
  atomic_fetch_add(&w->s->attempts[QUIRE_OBJSTORE_OP_WRITER], 1);
  int fate, rc = decide(w->s, 1, &fate);
  if (rc || fate == F_ERR) {
    fw_abort(w);
    return rc ? rc : injected("writer commit");
  }
  rc = quire_objstore_writer_commit(w->inner);
  quire__free(w);
  if (rc == 0 && fate == F_LOST) return injected("writer commit acknowledgement lost");
  return rc;
}

static const struct objstore_writer_ops fault_writer_ops = {fw_write, fw_commit, fw_abort};

static int fault_writer_open(quire_objstore *s, const char *key, int flags, struct objstore_wimpl **out,
                             const struct objstore_writer_ops **ops) {
  struct fault_store *f = s->impl;
  struct objstore_wimpl *w = quire__calloc(1, sizeof *w);
  if (!w) return QUIRE_ENOMEM;
  w->s = s;
  int rc = quire_objstore_writer_open(f->inner, key, flags, &w->inner);
  if (rc) {
    quire__free(w);
    return rc;
  }
  *out = w;
  *ops = &fault_writer_ops;
  return 0;
}

static void fault_close(quire_objstore *s) {
  struct fault_store *f = s->impl;
  if (!f) return;
  quire_objstore_close(f->inner);
  pthread_mutex_destroy(&f->mu);
  quire__free(f);
  s->impl = NULL;
}

static const struct objstore_ops fault_ops = {
    .scheme = "fault",
    .put = fault_put,
    .get = fault_get,
    .get_range = fault_get_range,
    .head = fault_head,
    .list = fault_list,
    .del = fault_del,
    .writer_open = fault_writer_open,
    .close = fault_close,
};

quire_objstore *quire_objstore_fault_inner(quire_objstore *s) {
  if (!s || s->ops != &fault_ops) return NULL;
  return ((struct fault_store *)s->impl)->inner;
}

/* Called twice by objstore.c: first with the parameters (inner_url NULL) to
 * take the fault options, then with the wrapped store's URL. */
int objstore__fault_open(quire_objstore *s, const char *inner_url, struct objstore_params *p) {
  if (!inner_url) {
    struct fault_store *f = quire__calloc(1, sizeof *f);
    if (!f) return QUIRE_ENOMEM;
    pthread_mutex_init(&f->mu, NULL);
    s->impl = f;
    s->ops = &fault_ops;
    uint64_t seed;
    int rc = objstore__param_u64(p, "seed", 1, &seed);
    if (!rc) rc = objstore__param_prob(p, "err", &f->err);
    if (!rc) rc = objstore__param_prob(p, "lost_ack", &f->lost_ack);
    if (!rc) rc = objstore__param_u64(p, "latency", 0, &f->latency_ms);
    if (!rc) rc = objstore__param_u64(p, "err_first", 0, &f->err_first);
    if (!rc) rc = objstore__param_u64(p, "slow_first", 0, &f->slow_first);
    f->latency_p = 1;
    if (!rc && objstore__param(p, "latency_p")) rc = objstore__param_prob(p, "latency_p", &f->latency_p);
    if (!rc && f->latency_ms > 600000) rc = quire__err(QUIRE_EINVAL, "fault: latency over 600000 ms");
    f->rng = seed;
    return rc;
  }
  struct fault_store *f = s->impl;
  if (strncmp(inner_url, "fault+", 6) == 0) return quire__err(QUIRE_EINVAL, "fault: nested fault+ stores");
  return objstore__open_inner(inner_url, &f->inner);
}
