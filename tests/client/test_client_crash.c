/*
 * kill -9 of a client process at random moments of local commits, pushes,
 * pulls and fetches, against real services on loopback (in this process).
 *
 * The child (this binary, re-executed) opens the data directory and loops:
 * local commits on volume "crash" (each writes a few pages tagged with the
 * commit's local lsn), pushes, pulls and lazy reads of volume "shared"
 * (which the parent keeps changing through its own client). Before a commit
 * it reports "T lsn pages" and after it "C lsn" on a pipe; pushes report
 * "P remote_lsn". The parent kills it after a random delay, reopens the
 * data directory itself and checks:
 *   - every acknowledged commit is there: the head is at least the last
 *     acknowledged lsn, at most the one in flight, and each page holds the
 *     tag of the last commit that wrote it (or of the one in flight);
 *   - the pages of "shared" read here equal what the parent wrote at the
 *     remote lsn the local head maps to (fetched pages are intact);
 *   - the local store's page accounting is clean (lsm check).
 * At the end the parent pushes what is left and checks the remote log: no
 * commit id twice, contiguous lsns, and the remote content equals the
 * local head (read by a fresh client).
 * CI: 100 kills; QUIRE_TEST_LONG=1: 1,000.
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client_test.h"
#include "metastore/client.h"
#include "services.h"

#define PAGES 40
#define SHARED_PAGES 64
#define MAXLSN 200000

static struct services svc;
static char *root;

/* ---- the child ------------------------------------------------------------ */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (write(fd, line, (size_t)n) != n) _exit(3);
}

static int child(const char *dir, const char *ms, const char *ps, const char *shared_vid, uint64_t seed, int fd) {
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = dir;
  o.metastore_url = ms;
  o.pagestore_url = ps;
  o.sync_mode = seed % 2 ? QUIRE_SYNC_FULL : QUIRE_SYNC_NORMAL;
  o.push_batch_pages = 8; /* many write_pages calls per push: kills land between them */
  o.fetch_timeout_ms = 3000;
  o.call_timeout_ms = 3000;
  quire_client *c;
  quire_volume *v, *sh;
  if (quire_client_open(&o, &c) || quire_volume_open(c, "crash", QUIRE_CREATE, &v) ||
      quire_volume_open(c, shared_vid, 0, &sh)) {
    fprintf(stderr, "child: open: %s\n", quire_errmsg());
    return 2;
  }
  say(fd, "R\n");
  uint64_t x = seed;
  uint8_t page[QUIRE_PAGE_SIZE];
  for (;;) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    unsigned op = (unsigned)(x % 10);
    if (op < 5) {
      quire_writer *w;
      if (quire_writer_open(v, &w)) return 2;
      quire_lsn lsn = quire_writer_base_lsn(w) + 1;
      char list[256];
      size_t off = 0;
      unsigned n = 1 + (unsigned)(x >> 8) % 6;
      for (unsigned i = 0; i < n; i++) {
        quire_pageidx idx = 1 + (quire_pageidx)((x >> (16 + 4 * i)) % PAGES);
        page_fill(page, lsn);
        if (quire_writer_write(w, idx, page)) return 2;
        off += (size_t)snprintf(list + off, sizeof list - off, " %u", idx);
      }
      say(fd, "T %llu%s\n", (unsigned long long)lsn, list);
      int rc = quire_writer_commit(w, NULL);
      if (rc) {
        fprintf(stderr, "child: commit: %s\n", quire_errmsg());
        return 2;
      }
      say(fd, "C %llu\n", (unsigned long long)lsn);
    } else if (op < 7) {
      if (quire_volume_push(v, 0) == 0) {
        quire_volume_status st;
        quire_volume_status_get(v, &st);
        say(fd, "P %llu\n", (unsigned long long)st.remote_lsn);
      }
    } else if (op < 8) {
      quire_volume_pull(sh, 0);
    } else {
      quire_reader *r;
      if (quire_reader_open(sh, &r) == 0) {
        quire_pageidx idx = 1 + (quire_pageidx)((x >> 20) % SHARED_PAGES);
        if (quire_reader_read(r, idx, page) == 0 && page_tag(page) == UINT64_MAX) {
          fprintf(stderr, "child: shared page %u is damaged\n", idx);
          return 2;
        }
        quire_reader_close(r);
      }
    }
  }
}

/* ---- the parent ------------------------------------------------------------ */

static uint64_t shared_tags[64][SHARED_PAGES + 1]; /* [remote lsn][idx] */
static quire_lsn shared_head;
static uint32_t last_writer[PAGES + 1]; /* acknowledged: lsn of the last commit that wrote the page */
static quire_lsn acked;

static void shared_commit(quire_volume *v, uint64_t round) {
  quire_writer *w;
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECK_OK(quire_writer_open(v, &w));
  CHECK(shared_head + 1 < 64);
  memcpy(shared_tags[shared_head + 1], shared_tags[shared_head], sizeof shared_tags[0]);
  for (quire_pageidx i = 1; i <= SHARED_PAGES; i++) {
    if (shared_head && test_rand_below(4)) continue;
    uint64_t tag = 1000000 * (round + 1) + i;
    page_fill(page, tag);
    CHECK_OK(quire_writer_write(w, i, page));
    shared_tags[shared_head + 1][i] = tag;
  }
  CHECK_OK(quire_writer_commit(w, NULL));
  CHECK_OK(quire_volume_push(v, 0));
  shared_head++;
}

struct inflight {
  quire_lsn lsn;
  quire_pageidx pages[8];
  unsigned n;
};

/* Reads the child's reports; returns the commit in flight at the kill. */
static struct inflight read_reports(FILE *f) {
  struct inflight t = {0};
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == 'T') {
      char *p = line + 2;
      t.lsn = strtoull(p, &p, 10);
      t.n = 0;
      while (*p == ' ' && t.n < 8) t.pages[t.n++] = (quire_pageidx)strtoul(p + 1, &p, 10);
    } else if (line[0] == 'C') {
      quire_lsn lsn = strtoull(line + 2, NULL, 10);
      CHECK(lsn == t.lsn && lsn == acked + 1);
      for (unsigned i = 0; i < t.n; i++) last_writer[t.pages[i]] = (uint32_t)lsn;
      acked = lsn;
      t.lsn = 0;
    }
  }
  return t;
}

static void verify(const char *dir, struct inflight t, const quire_gid *shared_vid) {
  quire_client_opts o;
  quire_client_opts_init(&o); /* local only: nothing may need the network */
  o.data_dir = dir;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  quire_volume *v;
  uint8_t page[QUIRE_PAGE_SIZE];
  int rc = quire_volume_open(c, "crash", 0, &v);
  if (rc == QUIRE_ENOTFOUND && acked == 0) {
    CHECK_OK(quire_client_close(c));
    return;
  }
  CHECK_OK(rc);
  quire_reader *r;
  CHECK_OK(quire_reader_open(v, &r));
  quire_lsn head = quire_reader_lsn(r);
  int landed = t.lsn && head == t.lsn;
  CHECKF(head == acked || landed, "head %llu, acknowledged %llu, in flight %llu", (unsigned long long)head,
         (unsigned long long)acked, (unsigned long long)t.lsn);
  if (landed) {
    for (unsigned i = 0; i < t.n; i++) last_writer[t.pages[i]] = (uint32_t)t.lsn;
    acked = t.lsn;
  }
  for (quire_pageidx i = 1; i <= PAGES; i++) {
    CHECK_OK(quire_reader_read(r, i, page));
    CHECKF(page_is(page, last_writer[i]), "page %u: want the commit at lsn %u, got %llu", i, last_writer[i],
           (unsigned long long)page_tag(page));
  }
  quire_reader_close(r);
  quire_volume_close(v);
  /* The shared volume: every local page equals the remote at the mapped lsn. */
  char sid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(shared_vid, sid);
  if (quire_volume_open(c, sid, 0, &v) == 0) {
    quire_volume_status st;
    CHECK_OK(quire_volume_status_get(v, &st));
    if (st.remote_lsn) {
      CHECK_OK(quire_reader_open(v, &r));
      for (quire_pageidx i = 1; i <= SHARED_PAGES; i++) {
        rc = quire_reader_read(r, i, page);
        if (rc == QUIRE_EUNAVAILABLE) continue; /* not fetched yet (local-only here) */
        CHECK_OK(rc);
        CHECKF(page_is(page, shared_tags[st.remote_lsn][i]), "shared page %u at remote lsn %llu", i,
               (unsigned long long)st.remote_lsn);
      }
      quire_reader_close(r);
    }
    quire_volume_close(v);
  }
  CHECK_OK(quire_client_close(c));
  CHECK(store_check_clean(dir));
}

int main(int argc, char **argv) {
  if (argc == 8 && strcmp(argv[1], "child") == 0)
    return child(argv[2], argv[3], argv[4], argv[5], strtoull(argv[6], NULL, 10), atoi(argv[7]));
  test_seed();
  root = test_tmpdir("client_crash");
  char srv[1024], dir[1024], odir[1024];
  pathf(srv, sizeof srv, "%s/server", root);
  pathf(dir, sizeof dir, "%s/child", root);
  pathf(odir, sizeof odir, "%s/owner", root);
  services_start(&svc, srv, NULL);
  /* The parent's own client owns the shared volume. */
  quire_client_opts o;
  client_opts(&o, odir, &svc);
  quire_client *owner;
  CHECK_OK(quire_client_open(&o, &owner));
  quire_volume *shared;
  CHECK_OK(quire_volume_open(owner, "shared", QUIRE_CREATE, &shared));
  shared_commit(shared, 0);
  quire_gid shared_vid;
  quire_volume_vid(shared, &shared_vid);
  char sid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&shared_vid, sid);

  int kills = test_long_mode() ? 1000 : 100, landed_inflight = 0;
  for (int round = 0; round < kills; round++) {
    if (round % 10 == 9 && shared_head < 60) shared_commit(shared, (uint64_t)round);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    char seed[32], wfd[16];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)test_rand());
    snprintf(wfd, sizeof wfd, "%d", pfd[1]);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      close(pfd[0]);
      execl("/proc/self/exe", argv[0], "child", dir, svc.ms_url, svc.ps_url, sid, seed, wfd, (char *)NULL);
      _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char ready[8];
    CHECK(fgets(ready, sizeof ready, f) && ready[0] == 'R'); /* the child is open: kill it at work */
    struct timespec ts = {0, (long)(1 + test_rand_below(250)) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status), "the child ended by itself (status %d) before the kill", status);
    struct inflight t = read_reports(f);
    fclose(f);
    quire_lsn before = acked;
    verify(dir, t, &shared_vid);
    if (acked != before) landed_inflight++;
  }
  printf("%d kills; %llu commits acknowledged; %d in-flight commits found durable after the kill\n", kills,
         (unsigned long long)acked, landed_inflight);

  /* Push what is left (resuming any interrupted push), then check the remote. */
  client_opts(&o, dir, &svc);
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, "crash", 0, &v));
  CHECK_OK(quire_volume_push(v, 0));
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(v, &st));
  CHECK(st.unpushed_commits == 0 && !st.push_in_progress);
  quire_lsn nseen = check_remote_log(&svc, &st.vid);
  CHECK(nseen == st.remote_lsn);
  printf("remote log: %llu commits, every commit id once\n", (unsigned long long)nseen);
  /* A fresh client reads the remote head: the same pages. */
  pathf(odir, sizeof odir, "%s/fresh", root);
  client_opts(&o, odir, &svc);
  quire_client *fresh;
  CHECK_OK(quire_client_open(&o, &fresh));
  char vid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&st.vid, vid);
  quire_volume *fv;
  CHECK_OK(quire_volume_open(fresh, vid, 0, &fv));
  quire_reader *r;
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECK_OK(quire_reader_open(fv, &r));
  for (quire_pageidx i = 1; i <= PAGES; i++) {
    CHECK_OK(quire_reader_read(r, i, page));
    CHECKF(page_is(page, last_writer[i]), "remote page %u", i);
  }
  quire_reader_close(r);
  quire_volume_close(fv);
  CHECK_OK(quire_client_close(fresh));
  quire_volume_close(v);
  CHECK_OK(quire_client_close(c));
  quire_volume_close(shared);
  CHECK_OK(quire_client_close(owner));
  services_stop(&svc);
  test_rmtree(root);
  free(root);
  return test_done("test_client_crash");
}
