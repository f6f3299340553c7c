/*
 * client/autosync.c — the background sync of one open volume
 * (DESIGN.md §11.3 "Autosync").
 *
 * One thread per open volume (with autosync on and services configured):
 *   - a local commit schedules a push push_delay_ms later (bursts coalesce
 *     into one push) and cancels the long poll in progress;
 *   - otherwise the thread keeps one long poll (pull_graft with wait_ms)
 *     open, so a remote commit is visible here about one round trip after
 *     it lands;
 *   - a failed call backs off (exponential, with jitter, 100 ms .. 5 s); the
 *     wait is interrupted by a local commit or by close;
 *   - in state "conflict" it waits for reset or fork.
 * Local reads and commits never wait for this thread.
 */
#include <string.h>
#include <sys/random.h>

#include "client/client_int.h"
#include "util/cancel.h"
#include "util/util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static uint64_t jitter(uint64_t ms) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) r = (uint32_t)quire__mono_ns();
  return ms / 2 + r % (ms / 2 + 1);
}

/* Waits on v->cv until the monotonic time until_ms (0: no limit); mu held. */
static void wait_until(quire_volume *v, uint64_t until_ms) {
  if (!until_ms) {
    pthread_cond_wait(&v->cv, &v->mu);
    return;
  }
  uint64_t now = quire__mono_ms();
  if (now >= until_ms) return;
  struct timespec ts;
  quire__deadline_after_ms(&ts, until_ms - now);
  pthread_cond_timedwait(&v->cv, &v->mu, &ts);
}

static void *autosync_main(void *arg) {
  quire_volume *v = arg;
  quire_client *c = v->client;
  uint64_t backoff = 0, retry_at = 0;
  pthread_mutex_lock(&v->mu);
  while (!v->sync_stop) {
    uint64_t now = quire__mono_ms();
    int unpushed = v->rec.head > v->rec.remote_local || v->has_intent;
    int conflict = v->rec.state == QUIRE_STATE_CONFLICT;
    if (conflict) {
      wait_until(v, 0);
      continue;
    }
    if (retry_at > now) {
      wait_until(v, retry_at);
      if (quire__mono_ms() < retry_at && !v->push_due_ms) continue;
      retry_at = 0;
      continue;
    }
    if (unpushed && !v->push_due_ms) v->push_due_ms = now; /* e.g. an interrupted push found at open */
    if (unpushed && v->push_due_ms > now) {
      wait_until(v, v->push_due_ms);
      continue;
    }
    quire__cancel_destroy(v->poll_cancel);
    v->poll_cancel = NULL;
    int rc = quire__cancel_create(&v->poll_cancel);
    struct cl_call call;
    cl__call_init(c, 0, &call);
    call.cancel = v->poll_cancel;
    v->polling = !unpushed;
    pthread_mutex_unlock(&v->mu);
    if (!rc) rc = unpushed ? cl__push(v, &call) : cl__pull(v, c->o.poll_wait_ms, &call);
    pthread_mutex_lock(&v->mu);
    v->polling = 0;
    if (unpushed && !rc) v->push_due_ms = 0;
    if (rc == 0 || rc == QUIRE_ECANCELED || rc == QUIRE_ECONFLICT) {
      backoff = 0;
    } else {
      backoff = backoff ? QUIRE_MIN(backoff * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
      retry_at = quire__mono_ms() + jitter(backoff);
      QLOG_DEBUG("autosync: %s failed (%s: %s); retrying in about %llu ms", unpushed ? "push" : "pull",
                 quire_strerror(rc), quire_errmsg(), (unsigned long long)backoff);
    }
  }
  quire__cancel_destroy(v->poll_cancel);
  v->poll_cancel = NULL;
  pthread_mutex_unlock(&v->mu);
  return NULL;
}

int cl__autosync_start(quire_volume *v) {
  pthread_mutex_lock(&v->mu);
  v->sync_stop = 0;
  int rc = pthread_create(&v->sync_thread, NULL, autosync_main, v);
  if (rc == 0) v->sync_running = 1;
  pthread_mutex_unlock(&v->mu);
  return rc ? quire__err(-rc, "autosync: cannot start a thread") : 0;
}

void cl__autosync_stop(quire_volume *v) {
  pthread_mutex_lock(&v->mu);
  if (!v->sync_running) {
    pthread_mutex_unlock(&v->mu);
    return;
  }
  v->sync_stop = 1;
  quire__cancel_fire(v->poll_cancel);
  pthread_cond_broadcast(&v->cv);
  pthread_mutex_unlock(&v->mu);
  pthread_join(v->sync_thread, NULL);
  v->sync_running = 0;
}

void cl__autosync_notify_commit(quire_volume *v) {
  if (!v->sync_running) return;
  uint64_t due = quire__mono_ms() + v->client->o.push_delay_ms;
  if (!v->push_due_ms || v->push_due_ms > due) v->push_due_ms = due;
  if (v->polling) quire__cancel_fire(v->poll_cancel); /* stop waiting for others: push first */
  pthread_cond_broadcast(&v->cv);
}
