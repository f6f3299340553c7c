/* tests/testlib/test.c — see test.h. */
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_long checks;
static uint64_t rng_state;
static uint64_t seed_used;
static int seeded;

void test_count_check(void) { atomic_fetch_add_explicit(&checks, 1, memory_order_relaxed); }

static void print_seed(void) {
  if (seeded) fprintf(stderr, "  (reproduce with QUIRE_TEST_SEED=%llu)\n", (unsigned long long)seed_used);
}

void test_fail(const char *file, int line, const char *expr) {
  fprintf(stderr, "FAIL %s:%d: %s\n", file, line, expr);
  print_seed();
  fflush(NULL);
  exit(1);
}

void test_fail_rc(const char *file, int line, const char *expr, int got, int want) {
  fprintf(stderr, "FAIL %s:%d: %s\n  returned %d (%s), expected %d (%s)\n  detail: %s\n", file, line, expr,
          got, quire_errname(got), want, quire_errname(want), quire_errmsg());
  print_seed();
  fflush(NULL);
  exit(1);
}

void test_failf(const char *file, int line, const char *fmt, ...) {
  fprintf(stderr, "FAIL %s:%d: ", file, line);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  print_seed();
  fflush(NULL);
  exit(1);
}

int test_long_mode(void) {
  const char *e = getenv("QUIRE_TEST_LONG");
  return e && *e && strcmp(e, "0") != 0;
}

uint64_t test_seed(void) {
  const char *e = getenv("QUIRE_TEST_SEED");
  if (e && *e) {
    seed_used = strtoull(e, NULL, 10);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed_used = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
  }
  rng_state = seed_used;
  seeded = 1;
  printf("seed %llu%s\n", (unsigned long long)seed_used, test_long_mode() ? " (long mode)" : "");
  return seed_used;
}

uint64_t test_rand(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t test_rand_below(uint64_t n) { return n ? test_rand() % n : 0; }

char *test_tmpdir(const char *name) {
  const char *base = getenv("QUIRE_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0755);
  size_t len = strlen(base) + strlen(name) + 32;
  char *path = malloc(len);
  if (!path) test_fail(__FILE__, __LINE__, "malloc");
  snprintf(path, len, "%s/%s.XXXXXX", base, name);
  if (!mkdtemp(path)) test_failf(__FILE__, __LINE__, "mkdtemp %s: %s", path, strerror(errno));
  return path;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(p);
  return 0;
}

void test_rmtree(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

int test_done(const char *name) {
  printf("%s: %ld checks passed\n", name, atomic_load(&checks));
  return 0;
}
