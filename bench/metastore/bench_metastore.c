/*
 * bench/metastore — the metastore against its floor, in one run.
 *
 * Store: file:// in a temporary directory, with fsync (the embedded
 * default). The floor is the store's own put_if_absent of a commit-sized
 * object on the same store: a commit cannot be cheaper than that, and the
 * goal is metastore overhead per commit (HTTP, protobuf, validation,
 * catalog) <= the floor itself, i.e. commit latency <= 2x floor. Each thread
 * alternates one floor write and one commit, so both meet the disk in the
 * same state (fsync latency on a shared machine drifts several-fold).
 *
 *   bench_metastore [--quick]     (QUIRE_BENCH_QUICK=1 also)
 *   QUIRE_BENCH_DIR=/path         where the temporary store goes (default /tmp)
 *   QUIRE_BENCH_CATALOG=:memory:  catalog of the commit runs (default an LSM file)
 *
 * Prints: commits/s and p50/p99 commit latency for one volume and for 64
 * volumes in parallel; long-poll notification latency (commit sent → waiter
 * answered, and the wake itself: waiter answered minus committer
 * acknowledged, negative when the waiter had its answer first); catch-up time of a 10k-commit volume into an
 * empty catalog (memory and LSM file).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metastore/client.h"
#include "metastore/metastore.h"
#include "quire/splinter.h"
#include "util/util.h"

static int quick;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

struct stats {
  double p50_us, p99_us, per_sec;
};

static struct stats summarize(uint64_t *ns, size_t n, uint64_t wall_ns) {
  qsort(ns, n, sizeof *ns, cmp_u64);
  struct stats s = {ns[n / 2] / 1e3, ns[n * 99 / 100] / 1e3, n / (wall_ns / 1e9)};
  return s;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_metastore: %s: %s: %s\n", what, quire_strerror(rc), quire_errmsg());
  exit(1);
}
#define OK(x)                                                                                                \
  do {                                                                                                       \
    int rc_ = (x);                                                                                           \
    if (rc_) die(#x, rc_);                                                                                   \
  } while (0)

/* A realistic commit: one segment of 8 pages. */
static uint8_t *graft;
static size_t graft_len;

static int commit(quire_msclient *c, const quire_gid *vid, const quire_gid *client, quire_lsn base,
                  struct quire_snapshot *s) {
  quire_gid cid;
  struct quire_commit_segment seg = {.graft = graft, .graft_len = (uint32_t)graft_len};
  OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
  OK(quire_gid_new(QUIRE_GID_SEGMENT, &seg.sid));
  return quire__msclient_commit(c, vid, client, &cid, base, 1000, &seg, 1, NULL, s);
}

struct env {
  quire_objstore *store;
  ms_catalog *cat;
  quire_metastore *ms;
  quire_http_server *srv;
  char url[64];
};

static void env_open(struct env *e, const char *store_url, const char *catalog) {
  OK(quire_objstore_open(store_url, &e->store));
  OK(quire__catalog_open(catalog, &e->cat));
  struct quire_metastore_opts mo = {.store = e->store, .catalog = e->cat, .poll_interval_ms = 500};
  OK(quire_metastore_open(&mo, &e->ms));
  struct quire_http_server_opts so = {.listen = "127.0.0.1:0", .threads = 4, .name = "bench"};
  OK(quire__http_server_create(&so, &e->srv));
  OK(quire_metastore_serve(e->ms, e->srv));
  OK(quire__http_server_start(e->srv));
  snprintf(e->url, sizeof e->url, "http://127.0.0.1:%u", quire__http_server_port(e->srv));
}

static void env_close(struct env *e) {
  quire__http_server_stop(e->srv, 5000);
  quire__http_server_destroy(e->srv);
  quire_metastore_close(e->ms);
  ms_catalog_close(e->cat);
  quire_objstore_close(e->store);
}

/* --- commits and their floor, interleaved, on V volumes at once ----------- */

struct worker {
  const char *url;
  quire_objstore *store;
  unsigned id, run;
  size_t n;
  uint64_t *lat, *floor;
};

static void *commit_worker(void *arg) {
  struct worker *w = arg;
  quire_msclient *c;
  OK(quire__msclient_open(w->url, NULL, &c));
  quire_gid vid, client;
  OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  static const uint8_t obj[152]; /* a commit record of this shape is ~150 bytes */
  for (size_t i = 0; i < w->n; i++) {
    char key[64];
    snprintf(key, sizeof key, "bench-floor/%u/%u/%016zx", w->run, w->id, i);
    uint64_t a = quire__mono_ns();
    OK(quire_objstore_put_if_absent(w->store, key, obj, sizeof obj));
    w->floor[i] = quire__mono_ns() - a;
    struct quire_snapshot s;
    a = quire__mono_ns();
    OK(commit(c, &vid, &client, i, &s));
    w->lat[i] = quire__mono_ns() - a;
  }
  quire__msclient_close(c);
  return NULL;
}

/* Per-second figures count each kind over the shared wall time (so each is
 * about half of what it would do alone); latencies are per call. */
static void commit_bench(const char *url, quire_objstore *store, unsigned vols, size_t per_vol,
                         struct stats *commits, struct stats *floor) {
  struct worker *w = calloc(vols, sizeof *w);
  pthread_t *t = calloc(vols, sizeof *t);
  uint64_t *all = calloc(vols * per_vol, sizeof *all), *fl = calloc(vols * per_vol, sizeof *fl);
  uint64_t t0 = quire__mono_ns();
  for (unsigned i = 0; i < vols; i++) {
    w[i] = (struct worker){url, store, i, vols, per_vol, all + i * per_vol, fl + i * per_vol};
    pthread_create(&t[i], NULL, commit_worker, &w[i]);
  }
  for (unsigned i = 0; i < vols; i++) pthread_join(t[i], NULL);
  uint64_t wall = quire__mono_ns() - t0;
  *commits = summarize(all, vols * per_vol, wall);
  *floor = summarize(fl, vols * per_vol, wall);
  free(all);
  free(fl);
  free(t);
  free(w);
}

/* --- long-poll notification latency --------------------------------------- */

struct poller {
  const char *url;
  quire_gid vid;
  quire_lsn from;
  uint64_t woke_ns;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ready;
};

static void *poll_worker(void *arg) {
  struct poller *p = arg;
  quire_msclient *c;
  OK(quire__msclient_open(p->url, NULL, &c));
  quire_buf g;
  quire__buf_init(&g, 1 << 20);
  struct quire_snapshot s;
  quire_lsn to = 0;
  pthread_mutex_lock(&p->mu);
  p->ready = 1;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  OK(quire__msclient_pull_graft(c, &p->vid, p->from, 0, 10000, NULL, &s, &to, &g, NULL));
  p->woke_ns = quire__mono_ns();
  quire__buf_free(&g);
  quire__msclient_close(c);
  return NULL;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* A waiter parks; a commit goes in; how long from sending the commit until
 * the waiter has its answer (and, for scale, until the committer has its),
 * and the wake delay: waiter answered minus committer acknowledged (the
 * commit's own fsync is in both, so this is what the wake adds). */
static void longpoll_bench(struct env *e, size_t n, struct stats *woke, struct stats *acked,
                           double *wake_p50_us, double *wake_p99_us) {
  quire_msclient *c;
  OK(quire__msclient_open(e->url, NULL, &c));
  quire_gid vid, client;
  OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  uint64_t *lat = calloc(n, sizeof *lat), *ack = calloc(n, sizeof *ack);
  int64_t *wake = calloc(n, sizeof *wake);
  uint64_t t0 = quire__mono_ns();
  for (size_t i = 0; i < n; i++) {
    struct poller p = {.url = e->url, .vid = vid, .from = i};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, poll_worker, &p);
    pthread_mutex_lock(&p.mu);
    while (!p.ready) pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);
    quire__sleep_ms(2); /* let the request park */
    struct quire_snapshot s;
    uint64_t sent = quire__mono_ns();
    OK(commit(c, &vid, &client, i, &s));
    uint64_t acked_at = quire__mono_ns();
    ack[i] = acked_at - sent;
    pthread_join(t, NULL);
    lat[i] = p.woke_ns > sent ? p.woke_ns - sent : 0;
    wake[i] = (int64_t)p.woke_ns - (int64_t)acked_at;
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
  }
  uint64_t wall = quire__mono_ns() - t0;
  *woke = summarize(lat, n, wall);
  *acked = summarize(ack, n, wall);
  qsort(wake, n, sizeof *wake, cmp_i64);
  *wake_p50_us = wake[n / 2] / 1e3;
  *wake_p99_us = wake[n * 99 / 100] / 1e3;
  free(lat);
  free(ack);
  free(wake);
  quire__msclient_close(c);
}

/* --- catch-up of a long log into an empty catalog -------------------------- */

static double catchup_bench(const char *dir, const char *store_url, size_t n, const char *catalog,
                            quire_lsn *got) {
  static quire_gid vid;
  static int seeded;
  if (!seeded) {
    /* Seed the log directly (fsync off: this is setup, not the measurement). */
    char seed_url[4200];
    snprintf(seed_url, sizeof seed_url, "file://%s/objects?fsync=0", dir);
    quire_objstore *s;
    OK(quire_objstore_open(seed_url, &s));
    OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
    struct quire_commit c = {.vid = vid, .page_count = 1000};
    struct quire_commit_segment seg = {.graft = graft, .graft_len = (uint32_t)graft_len};
    OK(quire_gid_new(QUIRE_GID_CLIENT, &c.client_id));
    quire_buf b;
    quire__buf_init(&b, 1 << 20);
    for (size_t i = 1; i <= n; i++) {
      OK(quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id));
      OK(quire_gid_new(QUIRE_GID_SEGMENT, &seg.sid));
      c.lsn = i;
      c.nsegments = 1;
      c.segments = &seg;
      quire__buf_reset(&b);
      OK(quire__commit_encode(&c, &b));
      char key[64];
      quire__commit_key(&vid, i, key);
      OK(quire_objstore_put(s, key, b.data, b.len));
    }
    quire__buf_free(&b);
    quire_objstore_close(s);
    seeded = 1;
  }
  quire_objstore *store;
  ms_catalog *cat;
  quire_metastore *ms;
  OK(quire_objstore_open(store_url, &store));
  OK(quire__catalog_open(catalog, &cat));
  struct quire_metastore_opts mo = {.store = store, .catalog = cat};
  OK(quire_metastore_open(&mo, &ms));
  uint64_t t0 = quire__mono_ns();
  OK(quire__ms_refresh(ms, &vid, got));
  double secs = (quire__mono_ns() - t0) / 1e9;
  quire_metastore_close(ms);
  ms_catalog_close(cat);
  quire_objstore_close(store);
  return secs;
}

int main(int argc, char **argv) {
  quick = (argc > 1 && strcmp(argv[1], "--quick") == 0) || getenv("QUIRE_BENCH_QUICK");
  quire__log_set_level(QUIRE_LOG_ERROR);
  const char *base = getenv("QUIRE_BENCH_DIR");
  char dirbuf[4096];
  snprintf(dirbuf, sizeof dirbuf, "%s/quire-bench-ms.XXXXXX", base ? base : "/tmp");
  char *dir = mkdtemp(dirbuf);
  if (!dir) die("mkdtemp", -1);
  char url[4200];
  snprintf(url, sizeof url, "file://%s/objects", dir);
  uint32_t pages[8] = {1, 2, 3, 4, 100, 101, 500, 999};
  splinter_t *sp;
  OK(splinter_from_sorted(pages, 8, &sp));
  OK(splinter_serialize_alloc(sp, &graft, &graft_len));
  splinter_free(sp);

  size_t one = quick ? 100 : 500, per_vol = quick ? 5 : 20, polls = quick ? 20 : 100;
  size_t log_len = quick ? 2000 : 10000;
  struct env e;
  char catalog[4200];
  snprintf(catalog, sizeof catalog, "%s/bench.catalog", dir);
  if (getenv("QUIRE_BENCH_CATALOG")) snprintf(catalog, sizeof catalog, "%s", getenv("QUIRE_BENCH_CATALOG"));
  env_open(&e, url, catalog);
  struct stats fl, c1, fl64, c64, lp, lpc;
  double wake50, wake99;
  commit_bench(e.url, e.store, 1, one, &c1, &fl);
  commit_bench(e.url, e.store, 64, per_vol, &c64, &fl64);
  longpoll_bench(&e, polls, &lp, &lpc, &wake50, &wake99);
  env_close(&e);
  quire_lsn got_mem = 0, got_lsm = 0;
  char cat2[4200];
  snprintf(cat2, sizeof cat2, "%s/catchup.catalog", dir);
  double cu_mem = catchup_bench(dir, url, log_len, ":memory:", &got_mem);
  double cu_lsm = catchup_bench(dir, url, log_len, cat2, &got_lsm);

  printf("metastore on file:// with fsync (%s), catalog %s%s\n", dir,
         getenv("QUIRE_BENCH_CATALOG") ? catalog : "LSM file", quick ? " [quick]" : "");
  printf("each thread alternates a floor write and a commit; per-second counts share the wall time\n");
  printf("%-46s %11s %11s %11s %10s\n", "", "per second", "p50 (us)", "p99 (us)", "p50/floor");
  printf("%-46s %11.0f %11.0f %11.0f %10s\n", "floor: put_if_absent 152 B, 1 writer", fl.per_sec, fl.p50_us,
         fl.p99_us, "1.00");
  printf("%-46s %11.0f %11.0f %11.0f %10.2f\n", "commit, 1 volume (HTTP, 8-page graft)", c1.per_sec,
         c1.p50_us, c1.p99_us, c1.p50_us / fl.p50_us);
  printf("%-46s %11.0f %11.0f %11.0f %10s\n", "floor: put_if_absent 152 B, 64 writers", fl64.per_sec,
         fl64.p50_us, fl64.p99_us, "1.00");
  printf("%-46s %11.0f %11.0f %11.0f %10.2f\n", "commit, 64 volumes in parallel", c64.per_sec, c64.p50_us,
         c64.p99_us, c64.p50_us / fl64.p50_us);
  printf("%-46s %11s %11.0f %11.0f\n", "long poll: commit sent -> waiter answered", "", lp.p50_us, lp.p99_us);
  printf("%-46s %11s %11.0f %11.0f\n", "  the same commits: sent -> acknowledged", "", lpc.p50_us,
         lpc.p99_us);
  printf("%-46s %11s %11.0f %11.0f\n", "  wake: waiter answered - commit acknowledged", "", wake50, wake99);
  printf("metastore overhead per commit (p50 minus floor p50): 1 volume %.0f us = %.2fx the floor, "
         "64 volumes %.0f us = %.2fx (goal <= 1.00x)\n",
         c1.p50_us - fl.p50_us, (c1.p50_us - fl.p50_us) / fl.p50_us, c64.p50_us - fl64.p50_us,
         (c64.p50_us - fl64.p50_us) / fl64.p50_us);
  printf("catch-up of a %zu-commit log into an empty catalog: memory %.2f s (%.0f commits/s), "
         "LSM file %.2f s (%.0f commits/s)\n",
         log_len, cu_mem, got_mem / cu_mem, cu_lsm, got_lsm / cu_lsm);
  if (got_mem != log_len || got_lsm != log_len) die("catch-up did not reach the end", QUIRE_EINTERNAL);
  splinter_bytes_free(graft);
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return 0;
}
