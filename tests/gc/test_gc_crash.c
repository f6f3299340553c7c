/*
 * Crash test: `quire gc` (checkpoints, retention, sweep) killed with
 * SIGKILL at random points, again and again, while the volumes keep getting
 * commits between runs. After every kill: every segment a retained commit
 * references exists, reads at retained LSNs (the base, the head, random
 * ones; warm and cold pagestores) return the model's bytes, and below the
 * base is 410 GONE. At the end a pass that is left to finish leaves no
 * unreferenced segment, and the mark files of killed passes are gone (a
 * locked one, a pass still running, stays). 50 kills (200 with
 * QUIRE_TEST_LONG=1).
 */
#include "gc_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>

#include "util/clock.h"
#include <sys/wait.h>
#include <unistd.h>

#define VOLS 3

static struct gt T;
static struct gt_vol V[VOLS];
static const char *quire_bin;

static pid_t spawn_gc(int quiet_out) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (quiet_out) {
      freopen("/dev/null", "w", stdout);
      freopen("/dev/null", "w", stderr);
    }
    execl(quire_bin, quire_bin, "gc", "--store", T.store_url, "--grace", "1ms", "--keep-commits", "3",
          "--keep-age", "1ms", "--checkpoint-walk", "4", "--work-dir", T.root, "--quiet", (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Mark files (quire-gc-marks-*) in the work directory. */
static size_t count_marks(void) {
  DIR *d = opendir(T.root);
  CHECK(d != NULL);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += strncmp(e->d_name, "quire-gc-marks-", 15) == 0;
  closedir(d);
  return n;
}

static void sync_model(void) {
  for (int i = 0; i < VOLS; i++) gt_sync_rewrites(&T, &V[i]); /* only gc commits while it runs */
}

static void check_invariant(int cold) {
  if (cold) gt_cold_ps(&T);
  (void)gt_check_retained(&T, gt_ms(&T), V, VOLS);
  for (int i = 0; i < VOLS; i++) {
    if (V[i].head == 0) continue;
    quire_lsn base;
    CHECK_OK(quire__ms_base(gt_ms(&T), &V[i].vid, 0, &base));
    CHECK_OK(gt_read(T.psc, &V[i], &V[i].vid, V[i].head));
    CHECK_OK(gt_read(T.psc, &V[i], &V[i].vid, base));
    CHECK_OK(gt_read(T.psc, &V[i], &V[i].vid, base + test_rand_below(V[i].head - base + 1)));
    if (base > 1) {
      struct quire_snapshot snap;
      CHECK_RC(quire__msclient_snapshot(T.msc, &V[i].vid, base - 1, NULL, &snap), QUIRE_EGONE);
    }
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  CHECK(argc == 2);
  quire_bin = argv[1];
  test_seed();
  gt_open(&T, "gc-crash");
  for (int i = 0; i < VOLS; i++) gt_vol_new(&V[i]);
  int kills = test_long_mode() ? 200 : 50, finished = 0;
  /* How long a whole run takes here (process start included): kills land
   * uniformly over it, so most hit the pass itself. */
  for (int k = 0; k < 6; k++) CHECK_OK(gt_commit(&T, &V[k % VOLS], 2, GT_PAGES));
  uint64_t t0 = quire__mono_ns();
  {
    pid_t pid = spawn_gc(1);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sync_model();
  }
  uint64_t run_us = (quire__mono_ns() - t0) / 1000;
  printf("one gc run takes %llu ms here\n", (unsigned long long)run_us / 1000);
  for (int round = 0; round < kills; round++) {
    for (int k = 0; k < 3; k++)
      CHECK_OK(gt_commit(&T, &V[test_rand_below(VOLS)], 1 + test_rand_below(4), GT_PAGES));
    usleep(2000); /* let every segment pass the 1 ms grace period */
    pid_t pid = spawn_gc(1);
    usleep((useconds_t)test_rand_below(run_us + run_us / 4));
    kill(pid, SIGKILL);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFEXITED(st)) finished++;
    sync_model();
    check_invariant(round % 10 == 9);
  }
  /* Mark files: kills during the mark phase leave theirs behind; one more
   * stale one is planted, and one that a live pass holds (locked) must
   * stay. The next pass removes the stale ones. */
  size_t left = count_marks();
  char path[4400];
  snprintf(path, sizeof path, "%s/quire-gc-marks-planted-stale", T.root);
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  close(fd);
  snprintf(path, sizeof path, "%s/quire-gc-marks-planted-live", T.root);
  int live = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  CHECK(live >= 0 && flock(live, LOCK_EX | LOCK_NB) == 0);
  CHECK(count_marks() == left + 2);
  /* A pass left to finish (twice: the first may checkpoint, leaving the old
   * segments to the next) leaves only referenced segments. */
  for (int k = 0; k < 2; k++) {
    pid_t pid = spawn_gc(1);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sync_model();
  }
  check_invariant(1);
  CHECKF(count_marks() == 1, "%zu mark files left (only the locked one should be)", count_marks());
  CHECK(access(path, F_OK) == 0);
  close(live);
  printf("%zu mark files left by killed passes (+1 planted) were removed by the next pass; a locked one "
         "stayed\n",
         left);
  size_t referenced = 0, stored = 0;
  {
    /* Referenced = distinct segments of retained commits. */
    quire_buf buf;
    quire__buf_init(&buf, QUIRE_COMMIT_MAX_SIZE);
    for (int i = 0; i < VOLS; i++) {
      quire_lsn base;
      if (V[i].head == 0) continue;
      CHECK_OK(quire__ms_base(gt_ms(&T), &V[i].vid, 0, &base));
      for (quire_lsn l = base; l <= V[i].head; l++) {
        struct quire_commit c;
        CHECK_OK(quire__ms_load(gt_ms(&T), &V[i].vid, l, &buf, &c, NULL));
        referenced += c.nsegments; /* a segment holds one volume's pages of one commit here */
        quire__commit_clear(&c);
      }
    }
    quire__buf_free(&buf);
    stored = gt_count_segments(&T);
  }
  printf("%d kills (%d runs finished before their kill); %zu segments stored, %zu referenced\n", kills,
         finished, stored, referenced);
  CHECKF(stored <= referenced, "%zu segments stored but only %zu referenced", stored, referenced);
  for (int i = 0; i < VOLS; i++) gt_vol_free(&V[i]);
  gt_close(&T);
  return test_done("gc_crash");
}
