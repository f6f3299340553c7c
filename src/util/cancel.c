/*
 * util/cancel.c — cancel tokens (see cancel.h).
 *
 * Locking: c->mu protects the watcher list and pairs with c->cv (sleepers
 * wait on it, CLOCK_MONOTONIC). c->fired is also atomic so that the hot
 * check (quire__cancel_fired) takes no lock. A watcher's fn runs under
 * c->mu; it must not take c->mu (no lock order beyond that).
 */
#include "util/cancel.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

struct quire_cancel {
  pthread_mutex_t mu; /* protects watches; with cv */
  pthread_cond_t cv;  /* broadcast when fired */
  atomic_int fired;
  struct quire_cancel_watch *watches; /* doubly linked, under mu */
};

int quire__cancel_create(quire_cancel **out) {
  *out = NULL;
  quire_cancel *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&c->mu, NULL);
  atomic_init(&c->fired, 0);
  *out = c;
  return 0;
}

void quire__cancel_destroy(quire_cancel *c) {
  if (!c) return;
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  quire__free(c);
}

void quire__cancel_fire(quire_cancel *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  if (!atomic_load(&c->fired)) {
    atomic_store(&c->fired, 1);
    for (struct quire_cancel_watch *w = c->watches; w; w = w->next_) w->fn(w->ctx);
    pthread_cond_broadcast(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
}

int quire__cancel_fired(const quire_cancel *c) { return c && atomic_load(&((quire_cancel *)c)->fired); }

int quire__cancel_sleep_until(quire_cancel *c, uint64_t until_ms) {
  if (!c) {
    uint64_t now = quire__now_ms();
    if (until_ms > now) quire__sleep_ms(until_ms - now);
    return 0;
  }
  struct timespec ts = {(time_t)(until_ms / 1000), (long)(until_ms % 1000) * 1000000L};
  pthread_mutex_lock(&c->mu);
  while (!atomic_load(&c->fired) && quire__now_ms() < until_ms) {
    int e = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    if (e == ETIMEDOUT) break;
  }
  int fired = atomic_load(&c->fired);
  pthread_mutex_unlock(&c->mu);
  return fired ? QUIRE_ECANCELED : 0;
}

int quire__cancel_sleep(quire_cancel *c, unsigned ms) {
  if (quire__cancel_fired(c)) return QUIRE_ECANCELED;
  return quire__cancel_sleep_until(c, quire__now_ms() + ms);
}

int quire__cancel_watch(quire_cancel *c, struct quire_cancel_watch *w) {
  w->prev_ = w->next_ = NULL;
  if (!c) return 0;
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  if (atomic_load(&c->fired)) {
    rc = QUIRE_ECANCELED;
    w->prev_ = w; /* marks "not in the list" for unwatch */
  } else {
    w->next_ = c->watches;
    if (c->watches) c->watches->prev_ = w;
    c->watches = w;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void quire__cancel_unwatch(quire_cancel *c, struct quire_cancel_watch *w) {
  if (!c) return;
  /* Under the lock: another thread's watch writes w->prev_ when it puts its
   * own watch in front of w. */
  pthread_mutex_lock(&c->mu);
  if (w->prev_ == w) {
    pthread_mutex_unlock(&c->mu);
    return;
  }
  if (w->prev_)
    w->prev_->next_ = w->next_;
  else if (c->watches == w)
    c->watches = w->next_;
  if (w->next_) w->next_->prev_ = w->prev_;
  w->prev_ = w->next_ = NULL;
  pthread_mutex_unlock(&c->mu);
}
