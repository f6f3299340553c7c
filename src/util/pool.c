/*
 * util/pool.c — worker pool.
 *
 * Locking: p->mu protects every field below it in struct quire_pool. Tasks
 * run without the lock. Condition variables: not_empty (workers wait for
 * work), not_full (submitters wait for room), idle (wait_idle).
 */
#include "util/pool.h"
#include "util/alloc.h"
#include "util/err.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct task {
  quire_task_fn fn;
  void *arg;
};

struct quire_pool {
  pthread_t *threads;
  unsigned nthreads;
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full, idle;
  struct task *ring; /* circular queue of cap slots */
  size_t cap, head, count;
  unsigned running; /* tasks being run right now */
  int closing;
  char name[16];
};

static void *worker(void *arg) {
  quire_pool *p = arg;
  pthread_setname_np(pthread_self(), p->name);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->count == 0 && !p->closing) pthread_cond_wait(&p->not_empty, &p->mu);
    if (p->count == 0) break; /* closing and drained */
    struct task t = p->ring[p->head];
    p->head = (p->head + 1) % p->cap;
    p->count--;
    p->running++;
    pthread_cond_signal(&p->not_full);
    pthread_mutex_unlock(&p->mu);
    t.fn(t.arg);
    pthread_mutex_lock(&p->mu);
    p->running--;
    if (p->count == 0 && p->running == 0) pthread_cond_broadcast(&p->idle);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int quire__pool_create(unsigned nthreads, size_t queue_cap, const char *name, quire_pool **out) {
  *out = NULL;
  if (nthreads == 0 || queue_cap == 0) return quire__err(QUIRE_EINVAL, "pool needs threads and queue room");
  quire_pool *p = quire__calloc(1, sizeof *p);
  if (!p) return QUIRE_ENOMEM;
  p->ring = quire__calloc(queue_cap, sizeof *p->ring);
  p->threads = quire__calloc(nthreads, sizeof *p->threads);
  if (!p->ring || !p->threads) {
    quire__free(p->ring);
    quire__free(p->threads);
    quire__free(p);
    return QUIRE_ENOMEM;
  }
  p->cap = queue_cap;
  snprintf(p->name, sizeof p->name, "%s", name ? name : "quire-pool");
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->not_empty, NULL);
  pthread_cond_init(&p->not_full, NULL);
  pthread_cond_init(&p->idle, NULL);
  for (unsigned i = 0; i < nthreads; i++) {
    int e = pthread_create(&p->threads[i], NULL, worker, p);
    if (e) {
      p->nthreads = i;
      quire__pool_destroy(p);
      return quire__err(-e, "pthread_create: %s", strerror(e));
    }
  }
  p->nthreads = nthreads;
  *out = p;
  return 0;
}

static int submit(quire_pool *p, quire_task_fn fn, void *arg, int block) {
  pthread_mutex_lock(&p->mu);
  while (p->count == p->cap && !p->closing && block) pthread_cond_wait(&p->not_full, &p->mu);
  if (p->closing) {
    pthread_mutex_unlock(&p->mu);
    return QUIRE_ECLOSED;
  }
  if (p->count == p->cap) {
    pthread_mutex_unlock(&p->mu);
    return QUIRE_EBUSY;
  }
  p->ring[(p->head + p->count) % p->cap] = (struct task){fn, arg};
  p->count++;
  pthread_cond_signal(&p->not_empty);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int quire__pool_submit(quire_pool *p, quire_task_fn fn, void *arg) { return submit(p, fn, arg, 1); }
int quire__pool_try_submit(quire_pool *p, quire_task_fn fn, void *arg) { return submit(p, fn, arg, 0); }

void quire__pool_wait_idle(quire_pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->count > 0 || p->running > 0) pthread_cond_wait(&p->idle, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void quire__pool_destroy(quire_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->closing = 1;
  pthread_cond_broadcast(&p->not_empty);
  pthread_cond_broadcast(&p->not_full);
  pthread_mutex_unlock(&p->mu);
  for (unsigned i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->not_empty);
  pthread_cond_destroy(&p->not_full);
  pthread_cond_destroy(&p->idle);
  quire__free(p->ring);
  quire__free(p->threads);
  quire__free(p);
}
