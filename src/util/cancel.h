/*
 * util/cancel.h — cancel tokens: one object that many threads can watch and
 * one call (quire__cancel_fire) stops them all. A token is handed to a long
 * operation (an HTTP call through struct quire_call, a retry backoff, a
 * sleep); firing it wakes every sleeper at once and makes every call using
 * it return QUIRE_ECANCELED promptly (HTTP transfers are woken through their
 * curl multi handle, see net/xfer.c). A fired token stays fired: create a
 * new one for the next operation.
 *
 * Thread-safety: every function may be called from any thread at any time,
 * except quire__cancel_destroy, which the owner calls once nothing uses the
 * token any more.
 */
#ifndef QUIRE_UTIL_CANCEL_H
#define QUIRE_UTIL_CANCEL_H

#include <stdint.h>

typedef struct quire_cancel quire_cancel; /* thread-safe */

/* A new, unfired token in *out (the caller owns it). QUIRE_ENOMEM. */
int quire__cancel_create(quire_cancel **out);
/* Frees c (accepts NULL). Nothing may be using or watching it. */
void quire__cancel_destroy(quire_cancel *c);
/* Fires c: wakes every sleeper and aborts every call using it. Idempotent;
 * accepts NULL (does nothing). */
void quire__cancel_fire(quire_cancel *c);
/* 1 once c has fired, else 0 (0 for NULL). */
int quire__cancel_fired(const quire_cancel *c);
/* Sleeps ms milliseconds or until c fires (c may be NULL: plain sleep).
 * 0 after a full sleep, QUIRE_ECANCELED when fired (also when it had fired
 * before the call). */
int quire__cancel_sleep(quire_cancel *c, unsigned ms);
/* Sleeps until the absolute quire__now_ms() time until_ms or until c fires;
 * the same returns as quire__cancel_sleep. */
int quire__cancel_sleep_until(quire_cancel *c, uint64_t until_ms);

/* A watcher: fn(ctx) is called once when the token fires, on the firing
 * thread, with the token's lock held — it must be quick and must not call
 * back into the token (curl_multi_wakeup is the intended use). Storage is
 * the caller's and must stay valid until quire__cancel_unwatch returns. */
struct quire_cancel_watch {
  void (*fn)(void *ctx);
  void *ctx;
  struct quire_cancel_watch *prev_, *next_; /* internal */
};
/* Starts watching c. QUIRE_ECANCELED (and w not added, fn not called) when
 * c has already fired. c may be NULL: nothing to watch, returns 0. */
int quire__cancel_watch(quire_cancel *c, struct quire_cancel_watch *w);
/* Stops watching; after it returns fn is not running and will not run.
 * Accepts a w that quire__cancel_watch refused, and c NULL. */
void quire__cancel_unwatch(quire_cancel *c, struct quire_cancel_watch *w);

#endif
