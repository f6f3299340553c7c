/*
 * util/pool.h — a fixed pool of worker threads with a bounded FIFO queue.
 *
 * Tasks are (fn, arg) pairs run once each by some worker. submit blocks while
 * the queue is full (backpressure); try_submit returns QUIRE_EBUSY instead.
 * destroy stops taking work, runs what is queued, joins every worker.
 */
#ifndef QUIRE_UTIL_POOL_H
#define QUIRE_UTIL_POOL_H

#include <stddef.h>

typedef struct quire_pool quire_pool;
typedef void (*quire_task_fn)(void *arg);

/* nthreads >= 1, queue_cap >= 1. name (copied) labels threads for debugging. */
int quire__pool_create(unsigned nthreads, size_t queue_cap, const char *name, quire_pool **out);
/* QUIRE_ECLOSED after destroy began; may block while the queue is full. */
int quire__pool_submit(quire_pool *p, quire_task_fn fn, void *arg);
/* Like submit but QUIRE_EBUSY instead of blocking. */
int quire__pool_try_submit(quire_pool *p, quire_task_fn fn, void *arg);
/* Waits until the queue is empty and no task is running. */
void quire__pool_wait_idle(quire_pool *p);
/* Runs what is queued, joins the workers, frees p. Accepts NULL. */
void quire__pool_destroy(quire_pool *p);

#endif
