/*
 * file:// under processes: racing put_if_absent from several processes has
 * exactly one winner every round, and kill -9 during puts leaves every key
 * absent or complete (each value carries its own length and checksum), with
 * no temporary file ever listed as a key. Both publish paths are tested
 * (O_TMPFILE + linkat, and named temp file + rename/link).
 * QUIRE_TEST_LONG=1 runs many more rounds.
 */
#include "quire/objstore.h"
#include "test.h"
#include "util/util.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void race_rounds(const char *url, int rounds, int procs) {
  for (int round = 0; round < rounds; round++) {
    int gate[2];
    CHECK(pipe(gate) == 0);
    pid_t pids[16];
    char key[64];
    snprintf(key, sizeof key, "race/r%04d", round);
    for (int i = 0; i < procs; i++) {
      pid_t pid = fork();
      CHECK(pid >= 0);
      if (pid == 0) {
        close(gate[1]);
        quire_objstore *s;
        if (quire_objstore_open(url, &s)) _exit(3);
        char c;
        if (read(gate[0], &c, 1) < 0) _exit(4); /* wait for the start (EOF) */
        char val[32];
        snprintf(val, sizeof val, "winner-%d", i);
        int rc = quire_objstore_put_if_absent(s, key, val, strlen(val));
        quire_objstore_close(s);
        _exit(rc == 0 ? 0 : rc == QUIRE_EEXIST ? 1 : 2);
      }
      pids[i] = pid;
    }
    close(gate[0]);
    close(gate[1]); /* everyone starts at once */
    int winners = 0, winner = -1;
    for (int i = 0; i < procs; i++) {
      int status;
      CHECK(waitpid(pids[i], &status, 0) == pids[i]);
      CHECK(WIFEXITED(status));
      int code = WEXITSTATUS(status);
      CHECKF(code == 0 || code == 1, "round %d: racer %d exited %d", round, i, code);
      if (code == 0) winners++, winner = i;
    }
    CHECKF(winners == 1, "round %d: %d winners", round, winners);
    quire_objstore *s;
    CHECK_OK(quire_objstore_open(url, &s));
    uint8_t *data;
    size_t len;
    CHECK_OK(quire_objstore_get(s, key, &data, &len));
    char want[32];
    snprintf(want, sizeof want, "winner-%d", winner);
    CHECK(len == strlen(want) && memcmp(data, want, len) == 0);
    quire_objstore_free(data);
    quire_objstore_close(s);
  }
}

/* Value layout: u64 length of payload, u64 xxh3(payload), payload. */
static size_t make_value(uint8_t *buf, size_t payload, uint64_t seed) {
  uint8_t *p = buf + 16;
  for (size_t i = 0; i < payload; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (uint8_t)(seed >> 56);
  }
  st_le64(buf, payload);
  st_le64(buf + 8, quire__xxh3(p, payload));
  return payload + 16;
}

static void writer_child(const char *url, uint64_t seed) {
  quire_objstore *s;
  if (quire_objstore_open(url, &s)) _exit(3);
  size_t cap = 16 + (2u << 20);
  uint8_t *buf = malloc(cap);
  for (uint64_t n = 0;; n++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    size_t payload = (size_t)((seed >> 20) % (2u << 20));
    size_t len = make_value(buf, payload, seed);
    char key[64];
    snprintf(key, sizeof key, "crash/d%llu/k%llu", (unsigned long long)(seed >> 60) % 3,
             (unsigned long long)(seed >> 40) % 8);
    int rc;
    if (n % 3 == 0) {
      quire_objstore_writer *w;
      rc = quire_objstore_writer_open(s, key, 0, &w);
      for (size_t off = 0; !rc && off < len; off += 65536)
        rc = quire_objstore_writer_write(w, buf + off, QUIRE_MIN(65536, len - off));
      rc = rc ? (quire_objstore_writer_abort(w), rc) : quire_objstore_writer_commit(w);
    } else if (n % 3 == 1) {
      rc = quire_objstore_put_if_absent(s, key, buf, len);
      if (rc == QUIRE_EEXIST) rc = 0;
    } else {
      rc = quire_objstore_put(s, key, buf, len);
    }
    if (rc) _exit(5);
  }
}

static void check_store(const char *url, const char *dir) {
  quire_objstore *s;
  CHECK_OK(quire_objstore_open(url, &s));
  quire_objstore_list l;
  CHECK_OK(quire_objstore_list_keys(s, "crash/", NULL, 10000, &l));
  for (size_t i = 0; i < l.count; i++) {
    const char *key = l.entries[i].key;
    CHECKF(strstr(key, ".tmp") == NULL && key[0] != '.', "temporary file listed: %s", key);
    uint8_t *data;
    size_t len;
    CHECK_OK(quire_objstore_get(s, key, &data, &len));
    CHECKF(len >= 16, "%s: %zu bytes, shorter than the header", key, len);
    uint64_t payload = ld_le64(data);
    CHECKF(payload == len - 16, "%s: partial object (%zu of %llu bytes)", key, len,
           (unsigned long long)payload + 16);
    CHECKF(ld_le64(data + 8) == quire__xxh3(data + 16, len - 16), "%s: checksum mismatch", key);
    quire_objstore_free(data);
  }
  quire_objstore_list_free(&l);
  quire_objstore_close(s);
  (void)dir;
}

static void crash_rounds(const char *url, const char *dir, int rounds) {
  for (int round = 0; round < rounds; round++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) writer_child(url, test_rand());
    usleep((useconds_t)(2000 + test_rand_below(40000)));
    kill(pid, SIGKILL);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status), "writer exited early with %d", WEXITSTATUS(status));
    check_store(url, dir);
  }
}

/* Counts leftover named temp files (fallback mode can leave them). */
static int count_tmp(const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, ".tmp-", 5) == 0) n++;
    if (e->d_name[0] != '.' && e->d_type == DT_DIR) {
      char sub[4096];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      n += count_tmp(sub);
    }
  }
  closedir(d);
  return n;
}

int main(void) {
  test_seed();
  int long_mode = test_long_mode();
  char *dir = test_tmpdir("objstore-crash");
  const char *modes[] = {"", "?tmpfile=0"};
  for (int m = 0; m < 2; m++) {
    char url[4400], root[4300];
    snprintf(root, sizeof root, "%s/store%d", dir, m);
    snprintf(url, sizeof url, "file://%s%s", root, modes[m]);
    race_rounds(url, long_mode ? 300 : 25, 6);
    crash_rounds(url, root, long_mode ? 200 : 12);
    printf("mode %s: %d leftover temp files (never listed)\n", m ? "tmpfile=0" : "O_TMPFILE",
           count_tmp(root));
  }
  test_rmtree(dir);
  free(dir);
  return test_done("objstore file crash");
}
