/*
 * util/limiter.c — keyed single-flight limiter.
 *
 * Locking: lim->mu protects the hash table, every entry and the counters.
 * An entry exists while its key is held or has waiters; it is freed by the
 * releaser that finds it unheld with no waiters. Waiters for a held key sleep
 * on the entry's own condition variable (woken one at a time on release);
 * acquirers blocked only by the global bound sleep on lim->slot_free.
 */
#include "util/limiter.h"
#include "util/alloc.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/err.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 256

struct entry {
  struct entry *next;
  pthread_cond_t cond;
  unsigned waiters;
  int held;
  size_t klen;
  uint8_t key[];
};

struct quire_limiter {
  pthread_mutex_t mu;
  pthread_cond_t slot_free;
  struct entry **buckets;
  size_t nbuckets, nentries;
  unsigned max_holders, holders, waiters;
};

int quire__limiter_create(unsigned max_holders, quire_limiter **out) {
  *out = NULL;
  if (max_holders == 0) return quire__err(QUIRE_EINVAL, "limiter needs max_holders >= 1");
  quire_limiter *lim = quire__calloc(1, sizeof *lim);
  if (!lim) return QUIRE_ENOMEM;
  lim->nbuckets = 64;
  lim->buckets = quire__calloc(lim->nbuckets, sizeof *lim->buckets);
  if (!lim->buckets) {
    quire__free(lim);
    return QUIRE_ENOMEM;
  }
  lim->max_holders = max_holders;
  pthread_mutex_init(&lim->mu, NULL);
  pthread_cond_init(&lim->slot_free, NULL);
  *out = lim;
  return 0;
}

void quire__limiter_destroy(quire_limiter *lim) {
  if (!lim) return;
  for (size_t i = 0; i < lim->nbuckets; i++) {
    struct entry *e = lim->buckets[i];
    while (e) {
      struct entry *n = e->next;
      pthread_cond_destroy(&e->cond);
      quire__free(e);
      e = n;
    }
  }
  quire__free(lim->buckets);
  pthread_mutex_destroy(&lim->mu);
  pthread_cond_destroy(&lim->slot_free);
  quire__free(lim);
}

static size_t bucket_of(const quire_limiter *lim, const void *key, size_t klen) {
  return (size_t)(quire__xxh3(key, klen) & (lim->nbuckets - 1));
}

static struct entry *find(quire_limiter *lim, const void *key, size_t klen) {
  for (struct entry *e = lim->buckets[bucket_of(lim, key, klen)]; e; e = e->next)
    if (e->klen == klen && memcmp(e->key, key, klen) == 0) return e;
  return NULL;
}

/* Doubles the table when it gets crowded; failure to grow is harmless. */
static void maybe_grow(quire_limiter *lim) {
  if (lim->nentries < lim->nbuckets * 2) return;
  size_t n = lim->nbuckets * 2;
  struct entry **b = quire__calloc(n, sizeof *b);
  if (!b) return;
  struct entry **old = lim->buckets;
  size_t oldn = lim->nbuckets;
  lim->buckets = b;
  lim->nbuckets = n;
  for (size_t i = 0; i < oldn; i++) {
    struct entry *e = old[i];
    while (e) {
      struct entry *next = e->next;
      size_t h = bucket_of(lim, e->key, e->klen);
      e->next = b[h];
      b[h] = e;
      e = next;
    }
  }
  quire__free(old);
}

static void unlink_entry(quire_limiter *lim, struct entry *e) {
  struct entry **pp = &lim->buckets[bucket_of(lim, e->key, e->klen)];
  while (*pp != e) pp = &(*pp)->next;
  *pp = e->next;
  lim->nentries--;
  pthread_cond_destroy(&e->cond);
  quire__free(e);
}

static int timed_wait(pthread_cond_t *c, pthread_mutex_t *mu, const struct timespec *deadline) {
  if (!deadline) return pthread_cond_wait(c, mu);
  return pthread_cond_timedwait(c, mu, deadline);
}

int quire__limiter_acquire(quire_limiter *lim, const void *key, size_t klen, int64_t timeout_ms,
                           quire_permit *out) {
  out->lim = lim;
  out->entry = NULL;
  if (klen == 0 || klen > KEY_MAX) return quire__err(QUIRE_EINVAL, "limiter key length %zu", klen);
  struct timespec deadline_ts, *deadline = NULL;
  if (timeout_ms >= 0) {
    quire__deadline_after_ms(&deadline_ts, (uint64_t)timeout_ms);
    deadline = &deadline_ts;
  }
  int rc = 0;
  pthread_mutex_lock(&lim->mu);
  for (;;) {
    struct entry *e = find(lim, key, klen);
    if (e && e->held) {
      e->waiters++;
      lim->waiters++;
      int w = timed_wait(&e->cond, &lim->mu, deadline);
      e->waiters--;
      lim->waiters--;
      if (w == ETIMEDOUT) {
        if (!e->held && e->waiters == 0) unlink_entry(lim, e);
        rc = QUIRE_ETIMEDOUT;
        break;
      }
      continue;
    }
    if (lim->holders >= lim->max_holders) {
      lim->waiters++;
      int w = timed_wait(&lim->slot_free, &lim->mu, deadline);
      lim->waiters--;
      if (w == ETIMEDOUT) {
        /* A key whose waiter we were may have been left unheld: drop it. */
        e = find(lim, key, klen);
        if (e && !e->held && e->waiters == 0) unlink_entry(lim, e);
        rc = QUIRE_ETIMEDOUT;
        break;
      }
      continue;
    }
    if (!e) {
      e = quire__malloc(sizeof *e + klen);
      if (!e) {
        rc = QUIRE_ENOMEM;
        break;
      }
      memcpy(e->key, key, klen);
      e->klen = klen;
      e->waiters = 0;
      pthread_cond_init(&e->cond, NULL);
      size_t h = bucket_of(lim, key, klen);
      e->next = lim->buckets[h];
      lim->buckets[h] = e;
      lim->nentries++;
      maybe_grow(lim);
    }
    e->held = 1;
    lim->holders++;
    out->entry = e;
    break;
  }
  pthread_mutex_unlock(&lim->mu);
  if (rc == QUIRE_ETIMEDOUT) quire__err(rc, "limiter: waited %lld ms for a permit", (long long)timeout_ms);
  return rc;
}

void quire__limiter_release(quire_permit *p) {
  if (!p || !p->entry) return;
  quire_limiter *lim = p->lim;
  struct entry *e = p->entry;
  p->entry = NULL;
  pthread_mutex_lock(&lim->mu);
  e->held = 0;
  lim->holders--;
  if (e->waiters > 0)
    pthread_cond_signal(&e->cond);
  else
    unlink_entry(lim, e);
  pthread_cond_broadcast(&lim->slot_free);
  pthread_mutex_unlock(&lim->mu);
}

void quire__limiter_stats(quire_limiter *lim, unsigned *holders, unsigned *waiters) {
  pthread_mutex_lock(&lim->mu);
  if (holders) *holders = lim->holders;
  if (waiters) *waiters = lim->waiters;
  pthread_mutex_unlock(&lim->mu);
}
