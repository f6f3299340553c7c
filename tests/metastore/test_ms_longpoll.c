/*
 * pull_graft long polls: a waiter wakes when a commit lands through the same
 * metastore (at once) or through another one sharing the store (by the
 * volume's poll loop); a wait with nothing new ends at its deadline with an
 * empty graft; many waiters share one poll loop; shutdown answers waiters.
 * Timing is only checked against the generous long-poll deadline.
 */
#include "ms_test.h"
#include "util/util.h"

#include <pthread.h>
#include <stdlib.h>

struct waiter {
  quire_msclient *cli;
  quire_gid vid;
  quire_lsn from;
  unsigned wait_ms;
  const struct quire_call *call;
  int rc;
  quire_lsn to;
  uint64_t card;
  uint64_t elapsed_ms;
};

static void *wait_thread(void *arg) {
  struct waiter *w = arg;
  quire_buf g;
  quire__buf_init(&g, 1 << 20);
  struct quire_snapshot s;
  uint64_t t0 = quire__mono_ms();
  w->rc = quire__msclient_pull_graft(w->cli, &w->vid, w->from, 0, w->wait_ms, w->call, &s, &w->to, &g, NULL);
  w->elapsed_ms = quire__mono_ms() - t0;
  if (w->rc == 0) {
    splinter_view_t v;
    w->card = splinter_view_open(g.data, g.len, &v) == 0 ? splinter_view_cardinality(&v) : 0;
  }
  quire__buf_free(&g);
  return NULL;
}

static int64_t gauge(struct ms_env *e, const char *name) {
  quire_buf b;
  quire__buf_init(&b, 1 << 20);
  CHECK_OK(quire__metrics_render(e->metrics, &b)); /* runs the collectors */
  quire__buf_free(&b);
  return quire__metrics_value(e->metrics, name, "");
}

static void wait_for_waiters(struct ms_env *e, int64_t n) {
  for (int i = 0; i < 10000 && gauge(e, "quire_metastore_long_polls") < n; i++) quire__sleep_ms(1);
  CHECK(gauge(e, "quire_metastore_long_polls") == n);
}

static void commit_one(struct ms_env *e, const quire_gid *vid, quire_lsn base, uint32_t page) {
  quire_gid client, cid;
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
  struct quire_snapshot s;
  CHECK_OK(commit_pages(e->cli, vid, &client, &cid, base, 1000, &page, 1, &s));
  CHECK(s.lsn == base + 1);
}

enum { LONG_WAIT = 30000 };

static void test_local_wake(void) {
  struct ms_env e;
  /* A long poll interval: only the commit itself can wake the waiters in time. */
  env_start(&e, "mem://", 20000);
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  /* An empty volume: waiting from 0 wakes on the first commit. */
  struct waiter w0 = {.cli = e.cli, .vid = vid, .from = 0, .wait_ms = LONG_WAIT};
  pthread_t t0;
  CHECK(pthread_create(&t0, NULL, wait_thread, &w0) == 0);
  wait_for_waiters(&e, 1);
  commit_one(&e, &vid, 0, 7);
  pthread_join(t0, NULL);
  CHECK_OK(w0.rc);
  CHECK(w0.to == 1 && w0.card == 1 && w0.elapsed_ms < LONG_WAIT);

  /* 20 waiters on one volume share one poll loop and all wake on one commit. */
  enum { N = 20 };
  struct waiter ws[N];
  pthread_t ts[N];
  for (int i = 0; i < N; i++) {
    ws[i] = (struct waiter){.cli = e.cli, .vid = vid, .from = 1, .wait_ms = LONG_WAIT};
    CHECK(pthread_create(&ts[i], NULL, wait_thread, &ws[i]) == 0);
  }
  wait_for_waiters(&e, N);
  CHECK(gauge(&e, "quire_metastore_poll_loops") == 1);
  commit_one(&e, &vid, 1, 8);
  uint64_t worst = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(ts[i], NULL);
    CHECK_OK(ws[i].rc);
    CHECK(ws[i].to == 2 && ws[i].card == 1 && ws[i].elapsed_ms < LONG_WAIT);
    if (ws[i].elapsed_ms > worst) worst = ws[i].elapsed_ms;
  }
  printf("local wake: %d waiters woke, slowest after %llu ms (deadline %d ms)\n", N,
         (unsigned long long)worst, LONG_WAIT);

  /* Nothing new: the wait ends at its deadline with an empty range. */
  struct waiter idle = {.cli = e.cli, .vid = vid, .from = 2, .wait_ms = 100};
  wait_thread(&idle);
  CHECK_OK(idle.rc);
  CHECK(idle.to == 2 && idle.card == 0 && idle.elapsed_ms >= 100);
  /* Already newer: no waiting at all. */
  struct waiter fast = {.cli = e.cli, .vid = vid, .from = 0, .wait_ms = LONG_WAIT};
  wait_thread(&fast);
  CHECK_OK(fast.rc);
  CHECK(fast.to == 2 && fast.card == 2);

  /* Shutdown answers a parked waiter instead of cutting it off. */
  quire_msclient *own;
  struct quire_http_client_opts co = {.timeout_ms = LONG_WAIT, .no_retry = 1};
  CHECK_OK(quire__msclient_open(e.url, &co, &own));
  struct waiter last = {.cli = own, .vid = vid, .from = 2, .wait_ms = LONG_WAIT};
  CHECK(pthread_create(&t0, NULL, wait_thread, &last) == 0);
  wait_for_waiters(&e, 1);
  env_stop(&e, 0); /* checks that no request was cut off */
  pthread_join(t0, NULL);
  quire__msclient_close(own);
  CHECK_OK(last.rc);
  CHECK(last.to == 2 && last.elapsed_ms < LONG_WAIT);
}

/* Two metastores on one store: a commit through B wakes a waiter on A via
 * A's poll loop, and A's waiters cost one GET per poll, not one per waiter. */
static void test_remote_wake(void) {
  char *dir = test_tmpdir("ms_longpoll");
  char url[512];
  snprintf(url, sizeof url, "file://%s/objects", dir);
  struct ms_env a, b;
  env_start(&a, url, 50);
  env_start(&b, url, 50);
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  commit_one(&b, &vid, 0, 1);
  enum { N = 10 };
  struct waiter ws[N];
  pthread_t ts[N];
  for (int i = 0; i < N; i++) {
    ws[i] = (struct waiter){.cli = a.cli, .vid = vid, .from = 0, .wait_ms = LONG_WAIT};
    ws[i].from = 1;
    CHECK(pthread_create(&ts[i], NULL, wait_thread, &ws[i]) == 0);
  }
  wait_for_waiters(&a, N);
  quire_objstore_stats st0, st1;
  quire_objstore_stats_get(a.store, &st0);
  uint64_t t0 = quire__mono_ms();
  quire__sleep_ms(300); /* let A's loop poll a few times */
  commit_one(&b, &vid, 1, 2);
  for (int i = 0; i < N; i++) {
    pthread_join(ts[i], NULL);
    CHECK_OK(ws[i].rc);
    CHECK(ws[i].to == 2 && ws[i].card == 1 && ws[i].elapsed_ms < LONG_WAIT);
  }
  uint64_t waited = quire__mono_ms() - t0;
  quire_objstore_stats_get(a.store, &st1);
  uint64_t gets = st1.calls[QUIRE_OBJSTORE_OP_GET] - st0.calls[QUIRE_OBJSTORE_OP_GET];
  /* One loop: about one GET per interval (plus the catch-up of the commit),
   * however many waiters. Ten separate loops would make ten times that. */
  uint64_t polls = waited / 50 + 1;
  printf("remote wake: %d waiters, %llu ms, %llu GETs (%llu poll intervals)\n", N, (unsigned long long)waited,
         (unsigned long long)gets, (unsigned long long)polls);
  CHECK(gets <= 2 * polls + 4);
  env_stop(&a, 0);
  env_stop(&b, 0);
  test_rmtree(dir);
  free(dir);
}

/* Regression: a long poll whose from_lsn is newer than this metastore's
 * catalog (the client saw a commit made through another metastore) must
 * look at the store, not answer 404, even while the volume's poll loop is
 * fresh. */
static void test_client_ahead(void) {
  char *dir = test_tmpdir("ms_ahead");
  char url[512];
  snprintf(url, sizeof url, "file://%s/objects", dir);
  struct ms_env a, b;
  env_start(&a, url, 20000); /* A polls rarely: the loop stays "fresh" */
  env_start(&b, url, 20000);
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  commit_one(&b, &vid, 0, 1);
  struct waiter keep = {.cli = a.cli, .vid = vid, .from = 1, .wait_ms = LONG_WAIT};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, wait_thread, &keep) == 0);
  wait_for_waiters(&a, 1);
  commit_one(&b, &vid, 1, 2); /* A does not know about lsn 2 yet */
  struct waiter ahead = {.cli = a.cli, .vid = vid, .from = 2, .wait_ms = 100};
  wait_thread(&ahead);
  CHECK_OK(ahead.rc);
  CHECK(ahead.to == 2 && ahead.card == 0);
  commit_one(&b, &vid, 2, 3);
  commit_one(&a, &vid, 3, 4); /* through A: wakes its waiter at once */
  pthread_join(t, NULL);
  CHECK_OK(keep.rc);
  CHECK(keep.to >= 2 && keep.elapsed_ms < LONG_WAIT);
  env_stop(&a, 0);
  env_stop(&b, 0);
  test_rmtree(dir);
  free(dir);
}

/* A cancel ends a pending long poll at once: the waiter returns ECANCELED
 * while the server still holds the request (nothing committed, the wait is
 * 30 s). A long poll longer than the
 * client's timeout does not time out because of its own wait. */
static void test_cancel(void) {
  struct ms_env e;
  env_start(&e, "mem://", 20000);
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  commit_one(&e, &vid, 0, 1);
  quire_cancel *cancel;
  CHECK_OK(quire__cancel_create(&cancel));
  struct quire_call call = {.cancel = cancel};
  struct waiter w = {.cli = e.cli, .vid = vid, .from = 1, .wait_ms = LONG_WAIT, .call = &call};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, wait_thread, &w) == 0);
  wait_for_waiters(&e, 1);
  quire__cancel_fire(cancel);
  pthread_join(t, NULL);
  CHECK_RC(w.rc, QUIRE_ECANCELED);
  CHECK(w.elapsed_ms < LONG_WAIT);
  printf("cancelled long poll: returned %llu ms after it started\n", (unsigned long long)w.elapsed_ms);
  /* (The server keeps the parked request until its wait ends: a suspended
   * libmicrohttpd connection is not watched for the client leaving.) */
  /* The token stays fired: the next call with it returns at once. */
  w.rc = 0;
  wait_thread(&w);
  CHECK_RC(w.rc, QUIRE_ECANCELED);
  quire__cancel_destroy(cancel);

  /* timeout_ms 300, wait 1200: the deadline is extended by the wait. */
  quire_msclient *impatient;
  struct quire_http_client_opts co = {.timeout_ms = 300};
  CHECK_OK(quire__msclient_open(e.url, &co, &impatient));
  struct waiter slow = {.cli = impatient, .vid = vid, .from = 1, .wait_ms = 1200};
  wait_thread(&slow);
  CHECK_OK(slow.rc);
  CHECK(slow.to == 1 && slow.card == 0 && slow.elapsed_ms >= 1200);
  /* An explicit deadline is extended the same way. */
  struct quire_call soon = {.deadline_ms = quire__now_ms() + 300};
  slow.call = &soon;
  wait_thread(&slow);
  CHECK_OK(slow.rc);
  CHECK(slow.to == 1 && slow.elapsed_ms >= 1200);
  quire__msclient_close(impatient);
  env_stop(&e, 0);
}

int main(void) {
  test_seed();
  test_cancel();
  test_local_wake();
  test_remote_wake();
  test_client_ahead();
  return test_done("metastore_longpoll");
}
