/*
 * The metastore as real processes (`quire metastore`) on loopback:
 *  - two metastore processes sharing one file:// store, 16 clients racing
 *    from the same base each round: exactly one wins each LSN, no gaps, no
 *    duplicates;
 *  - kill -9 mid-workload, restart on the same catalog: the catalog catches
 *    up and answers exactly what a fresh catalog rebuilt from the store
 *    answers; a commit retried with its commit id after the crash lands
 *    exactly once.
 */
#include "ms_test.h"
#include "util/util.h"

#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

struct child {
  pid_t pid;
  FILE *out;
  char url[64];
};

/* Starts `quire metastore` with the given store and catalog on a free port
 * and reads the port from its first line of output. */
static void spawn(struct child *c, const char *store, const char *catalog) {
  const char *bin = getenv("QUIRE_BIN");
  CHECK(bin != NULL);
  int fds[2];
  CHECK(pipe(fds) == 0);
  c->pid = fork();
  CHECK(c->pid >= 0);
  if (c->pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execl(bin, bin, "metastore", "--no-auth", "--listen", "127.0.0.1:0", "--store", store, "--catalog", catalog,
          "--poll-interval-ms", "50", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  c->out = fdopen(fds[0], "r");
  char line[512];
  if (!fgets(line, sizeof line, c->out)) {
    int status = 0;
    waitpid(c->pid, &status, 0);
    test_failf(__FILE__, __LINE__, "quire metastore (store %s, catalog %s) exited before listening: %s %d",
               store, catalog, WIFEXITED(status) ? "exit" : "signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
  const char *at = strstr(line, "http://");
  CHECK(at != NULL);
  size_t n = strcspn(at, " \n");
  CHECK(n < sizeof c->url);
  memcpy(c->url, at, n);
  c->url[n] = '\0';
}

static int stop(struct child *c, int sig) {
  kill(c->pid, sig);
  int status = 0;
  CHECK(waitpid(c->pid, &status, 0) == c->pid);
  fclose(c->out);
  return status;
}

static quire_msclient *client_of(const char *url) {
  quire_msclient *cli;
  struct quire_http_client_opts o = {.timeout_ms = 20000, .backoff_ms = 5, .retries = 8};
  CHECK_OK(quire__msclient_open(url, &o, &cli));
  return cli;
}

/* --- two processes, one store ---------------------------------------------- */

enum { CLIENTS = 16 };

static void test_two_processes(const char *dir) {
  char store[512], cat_a[512], cat_b[512];
  snprintf(store, sizeof store, "file://%s/shared", dir);
  snprintf(cat_a, sizeof cat_a, "%s/a.catalog", dir);
  snprintf(cat_b, sizeof cat_b, "%s/b.catalog", dir);
  struct child a, b;
  spawn(&a, store, cat_a);
  spawn(&b, store, cat_b);
  quire_msclient *ca = client_of(a.url), *cb = client_of(b.url);
  unsigned rounds = test_long_mode() ? 200 : 20;
  quire_gid vid;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, CLIENTS);
  struct racer rs[CLIENTS];
  pthread_t ts[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    rs[i] = (struct racer){.cli = i % 2 ? cb : ca, .vid = vid, .barrier = &barrier, .rounds = rounds};
    CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &rs[i].client));
    rs[i].won_round = calloc(rounds, sizeof(int));
    rs[i].won = calloc(rounds, sizeof(quire_gid));
    CHECK(pthread_create(&ts[i], NULL, race, &rs[i]) == 0);
  }
  unsigned wins = 0, conflicts = 0, wins_a = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(ts[i], NULL);
    CHECK(rs[i].other == 0);
    wins += rs[i].wins;
    conflicts += rs[i].conflicts;
    if (i % 2 == 0) wins_a += rs[i].wins;
  }
  CHECK(wins == rounds && conflicts == rounds * (CLIENTS - 1));
  for (unsigned round = 0; round < rounds; round++) {
    int winners = 0;
    for (int i = 0; i < CLIENTS; i++) winners += rs[i].won_round[round];
    CHECK(winners == 1);
  }
  /* Both processes see the same gap-free log. */
  struct quire_msclient_commits pa, pb;
  CHECK_OK(quire__msclient_pull_commits(ca, &vid, 1, 0, 1000, NULL, &pa));
  CHECK_OK(quire__msclient_pull_commits(cb, &vid, 1, 0, 1000, NULL, &pb));
  CHECK(pa.count == rounds && pb.count == rounds);
  for (size_t i = 0; i < pa.count; i++) {
    CHECK(pa.snaps[i].lsn == i + 1 && pb.snaps[i].lsn == i + 1);
    CHECK(quire_gid_cmp(&pa.snaps[i].commit_id, &pb.snaps[i].commit_id) == 0);
    for (size_t k = 0; k < i; k++) CHECK(quire_gid_cmp(&pa.snaps[i].commit_id, &pa.snaps[k].commit_id) != 0);
  }
  quire__msclient_commits_free(&pa);
  quire__msclient_commits_free(&pb);
  printf("two processes: %d clients x %u rounds: %u commits (%u via A, %u via B), %u conflicts, "
         "0 gaps, 0 duplicates\n",
         CLIENTS, rounds, wins, wins_a, wins - wins_a, conflicts);
  for (int i = 0; i < CLIENTS; i++) {
    free(rs[i].won_round);
    free(rs[i].won);
  }
  pthread_barrier_destroy(&barrier);
  quire__msclient_close(ca);
  quire__msclient_close(cb);
  /* SIGTERM is a clean stop. */
  int st = stop(&a, SIGTERM);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  st = stop(&b, SIGTERM);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* --- kill -9 and restart --------------------------------------------------- */

enum { VOLS = 4 };

struct writer {
  quire_msclient *cli;
  quire_gid vids[VOLS], client;
  quire_lsn acked[VOLS]; /* LSNs whose commit got a success reply */
  quire_gid pending_id;  /* the commit in flight when the server died */
  int pending_vol;
  quire_lsn pending_base;
  uint32_t pending_pages[2]; /* a retry repeats the request exactly */
  atomic_int stop;
  unsigned commits;
};

static void *write_loop(void *arg) {
  struct writer *w = arg;
  for (unsigned i = 0; !atomic_load(&w->stop); i++) {
    int v = (int)(i % VOLS);
    quire_gid cid;
    CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &cid));
    w->pending_id = cid;
    w->pending_vol = v;
    w->pending_base = w->acked[v];
    uint32_t pages[2] = {i % 50 + 1, 100 + i % 7};
    memcpy(w->pending_pages, pages, sizeof pages);
    struct quire_snapshot s;
    int rc = commit_pages(w->cli, &w->vids[v], &w->client, &cid, w->acked[v], 1000, pages, 2, &s);
    if (rc != 0) break; /* the server is gone */
    CHECK(s.lsn == w->acked[v] + 1);
    w->acked[v] = s.lsn;
    w->commits++;
  }
  return NULL;
}

/* Everything a client can ask about vid, as one comparable string. */
static void describe(quire_msclient *cli, const quire_gid *vid, quire_buf *out) {
  quire__buf_reset(out);
  quire_lsn from = 1;
  while (from) {
    struct quire_msclient_commits pc;
    CHECK_OK(quire__msclient_pull_commits(cli, vid, from, 0, 7, NULL, &pc));
    for (size_t i = 0; i < pc.count; i++) {
      CHECK_OK(quire__buf_append(out, &pc.snaps[i], sizeof pc.snaps[i]));
      for (uint32_t k = 0; k < pc.commits[i].nsegments; k++) {
        CHECK_OK(quire__buf_append(out, pc.commits[i].segments[k].sid.b, 16));
        CHECK_OK(
            quire__buf_append(out, pc.commits[i].segments[k].graft, pc.commits[i].segments[k].graft_len));
      }
    }
    from = pc.next_lsn;
    quire__msclient_commits_free(&pc);
  }
  struct quire_snapshot s;
  quire_lsn to;
  quire_buf g;
  quire__buf_init(&g, 1 << 20);
  CHECK_OK(quire__msclient_pull_graft(cli, vid, 0, 0, 0, NULL, &s, &to, &g, NULL));
  CHECK_OK(quire__buf_append(out, &s, sizeof s));
  CHECK_OK(quire__buf_append(out, g.data, g.len));
  quire__buf_free(&g);
}

static void test_kill_restart(const char *dir) {
  char store[512], cat[512];
  snprintf(store, sizeof store, "file://%s/crash", dir);
  snprintf(cat, sizeof cat, "%s/crash.catalog", dir);
  unsigned loops = test_long_mode() ? 10 : 2;
  for (unsigned loop = 0; loop < loops; loop++) {
    struct child c;
    spawn(&c, store, cat);
    struct writer w = {.cli = client_of(c.url)};
    static quire_gid vids[VOLS];
    static quire_lsn acked[VOLS];
    if (loop == 0)
      for (int v = 0; v < VOLS; v++) CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vids[v]));
    memcpy(w.vids, vids, sizeof vids);
    memcpy(w.acked, acked, sizeof acked);
    CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &w.client));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, write_loop, &w) == 0);
    quire__sleep_ms(150 + test_rand_below(150));
    int st = stop(&c, SIGKILL);
    CHECK(WIFSIGNALED(st));
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    quire__msclient_close(w.cli);

    /* Restart on the same catalog. */
    spawn(&c, store, cat);
    quire_msclient *cli = client_of(c.url);
    /* The commit in flight at the crash: retrying it with its id lands it
     * exactly once (either it had reached the store, or it goes in now). */
    int v = w.pending_vol;
    struct quire_snapshot s;
    const uint32_t *pages = w.pending_pages;
    CHECK_OK(commit_pages(cli, &vids[v], &w.client, &w.pending_id, w.pending_base, 1000, pages, 2, &s));
    CHECK(s.lsn == w.pending_base + 1 && quire_gid_cmp(&s.commit_id, &w.pending_id) == 0);
    w.acked[v] = s.lsn;
    CHECK_OK(commit_pages(cli, &vids[v], &w.client, &w.pending_id, w.pending_base, 1000, pages, 2, &s));
    CHECK(s.lsn == w.pending_base + 1);

    /* A fresh metastore with an empty catalog, rebuilt from the store. */
    struct ms_env fresh;
    env_start(&fresh, store, 50);
    quire_buf got, want;
    quire__buf_init(&got, 64 << 20);
    quire__buf_init(&want, 64 << 20);
    for (int k = 0; k < VOLS; k++) {
      int rc = quire__msclient_snapshot(cli, &vids[k], 0, NULL, &s);
      if (rc == QUIRE_ENOTFOUND && w.acked[k] == 0) {
        /* Killed before this volume's first commit: empty for both. */
        CHECK_RC(quire__msclient_snapshot(fresh.cli, &vids[k], 0, NULL, &s), QUIRE_ENOTFOUND);
        continue;
      }
      CHECK_OK(rc);
      CHECK(s.lsn >= w.acked[k]); /* nothing acknowledged was lost */
      describe(cli, &vids[k], &got);
      describe(fresh.cli, &vids[k], &want);
      CHECK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
      acked[k] = s.lsn;
    }
    quire__buf_free(&got);
    quire__buf_free(&want);
    env_stop(&fresh, 0);
    printf("kill -9 loop %u: %u commits acknowledged before the kill; restarted catalog matches a "
           "fresh rebuild\n",
           loop, w.commits);
    quire__msclient_close(cli);
    st = stop(&c, SIGTERM);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
}

int main(void) {
  test_seed();
  signal(SIGPIPE, SIG_IGN);
  char *dir = test_tmpdir("ms_procs");
  test_two_processes(dir);
  test_kill_restart(dir);
  test_rmtree(dir);
  free(dir);
  return test_done("metastore_procs");
}
