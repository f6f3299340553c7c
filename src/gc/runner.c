/*
 * gc/runner.c — GC passes every so often on a thread of their own (inside
 * `quire server`). A pass that fails is logged and the next one runs on
 * schedule; stopping waits for a pass in flight.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gc/gc_int.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

struct gc_runner {
  quire_metastore *ms;
  struct gc_pass_opts o;
  uint64_t every_ms;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int stop;
};

static void *run(void *arg) {
  struct gc_runner *r = arg;
  pthread_mutex_lock(&r->mu);
  while (!r->stop) {
    struct timespec ts;
    quire__deadline_after_ms(&ts, r->every_ms);
    while (!r->stop && pthread_cond_timedwait(&r->cond, &r->mu, &ts) != ETIMEDOUT) {
    }
    if (r->stop) break;
    pthread_mutex_unlock(&r->mu);
    struct gc_pass_result res;
    int rc = quire__gc_pass(r->ms, &r->o, &res);
    if (rc)
      QLOG_WARN("gc: pass failed: %s: %s", quire_strerror(rc), quire_errmsg());
    else
      QLOG_INFO("gc: pass: %llu volumes, %llu checkpoints, %llu commits and %llu segments (%llu bytes) deleted, "
                "%llu segments live, %llu ms",
                (unsigned long long)res.volumes, (unsigned long long)res.checkpoints,
                (unsigned long long)res.commits_deleted, (unsigned long long)res.objects_deleted,
                (unsigned long long)res.bytes_deleted, (unsigned long long)res.objects_live,
                (unsigned long long)res.duration_ms);
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

int quire__gc_runner_start(quire_metastore *ms, const struct gc_pass_opts *o, uint64_t every_ms,
                           struct gc_runner **out) {
  *out = NULL;
  struct gc_runner *r = quire__calloc(1, sizeof *r);
  if (!r) return QUIRE_ENOMEM;
  r->ms = ms;
  r->o = *o;
  r->every_ms = every_ms ? every_ms : 3600ull * 1000;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cond, NULL);
  int e = pthread_create(&r->thread, NULL, run, r);
  if (e) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    quire__free(r);
    errno = e;
    return quire__errno("starting the gc thread");
  }
  *out = r;
  return 0;
}

void quire__gc_runner_stop(struct gc_runner *r) {
  if (!r) return;
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thread, NULL);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cond);
  quire__free(r);
}

int quire__gc_parse_duration(const char *text, uint64_t *ms) {
  char *end;
  if (!text || !*text) return quire__err(QUIRE_EINVAL, "empty duration");
  errno = 0;
  unsigned long long n = strtoull(text, &end, 10);
  if (errno || end == text) return quire__err(QUIRE_EINVAL, "duration '%s' is not a number and a unit", text);
  uint64_t unit;
  if (!strcmp(end, "ms"))
    unit = 1;
  else if (!strcmp(end, "s") || !*end)
    unit = 1000;
  else if (!strcmp(end, "m"))
    unit = 60000;
  else if (!strcmp(end, "h"))
    unit = 3600000;
  else if (!strcmp(end, "d"))
    unit = 86400000;
  else
    return quire__err(QUIRE_EINVAL, "duration '%s': unknown unit (ms, s, m, h, d)", text);
  if (n > UINT64_MAX / unit) return quire__err(QUIRE_EINVAL, "duration '%s' is too long", text);
  *ms = n * unit;
  return 0;
}
