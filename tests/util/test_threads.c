/* Worker pool and keyed limiter under real concurrency (also run under TSan).
 * The limiter test would catch two holders of one key, more holders than the
 * bound, unrelated keys blocking each other, and a single-flight herd doing
 * the work more than once. */
#include "test.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* ---- pool ---------------------------------------------------------------- */

static atomic_int ran;
static void bump(void *arg) {
  (void)arg;
  atomic_fetch_add(&ran, 1);
}

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;
static void wait_gate(void *arg) {
  (void)arg;
  pthread_mutex_lock(&gate_mu);
  while (!gate_open) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
  atomic_fetch_add(&ran, 1);
}

static void test_pool(void) {
  quire_pool *p;
  CHECK_RC(quire__pool_create(0, 4, "x", &p), QUIRE_EINVAL);
  CHECK_OK(quire__pool_create(4, 16, "test-pool", &p));
  for (int i = 0; i < 10000; i++) CHECK_OK(quire__pool_submit(p, bump, NULL));
  quire__pool_wait_idle(p);
  CHECK(atomic_load(&ran) == 10000);
  quire__pool_destroy(p);

  /* A full queue: try_submit says EBUSY; destroy still runs what is queued. */
  atomic_store(&ran, 0);
  CHECK_OK(quire__pool_create(1, 2, "test-pool", &p));
  CHECK_OK(quire__pool_submit(p, wait_gate, NULL)); /* occupies the worker */
  while (1) {                                      /* wait until it is taken */
    int rc = quire__pool_try_submit(p, bump, NULL);
    if (rc == 0) break;
  }
  int busy = 0;
  for (int i = 0; i < 5; i++) busy += quire__pool_try_submit(p, bump, NULL) == QUIRE_EBUSY;
  CHECK(busy >= 3);
  pthread_mutex_lock(&gate_mu);
  gate_open = 1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
  quire__pool_destroy(p);
  CHECK(atomic_load(&ran) == 1 + 1 + (5 - busy));
}

/* ---- limiter ------------------------------------------------------------- */

#define NKEYS 5
#define BOUND 3
static quire_limiter *lim;
static atomic_int holders_of[NKEYS];
static atomic_int holders_total;
static atomic_int max_total_seen;
static atomic_int violations;

static void *hammer(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
  for (int i = 0; i < 400; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t k = (uint32_t)(s % NKEYS);
    char key[16];
    int kl = snprintf(key, sizeof key, "key-%u", k);
    quire_permit permit;
    if (quire__limiter_acquire(lim, key, (size_t)kl, -1, &permit) != 0) {
      atomic_fetch_add(&violations, 1);
      continue;
    }
    if (atomic_fetch_add(&holders_of[k], 1) != 0) atomic_fetch_add(&violations, 1);
    int t = atomic_fetch_add(&holders_total, 1) + 1;
    int m = atomic_load(&max_total_seen);
    while (t > m && !atomic_compare_exchange_weak(&max_total_seen, &m, t)) {
    }
    if (t > BOUND) atomic_fetch_add(&violations, 1);
    struct timespec nap = {0, 20000}; /* hold for a moment so holders overlap */
    nanosleep(&nap, NULL);
    atomic_fetch_sub(&holders_total, 1);
    atomic_fetch_sub(&holders_of[k], 1);
    quire__limiter_release(&permit);
  }
  return NULL;
}

/* Single flight: every thread wants the "segment"; the work must run once. */
static atomic_int cache_filled;
static atomic_int work_done;
static void *single_flight(void *arg) {
  (void)arg;
  if (atomic_load(&cache_filled)) return NULL;
  quire_permit permit;
  if (quire__limiter_acquire(lim, "segment-1", 9, -1, &permit) != 0) {
    atomic_fetch_add(&violations, 1);
    return NULL;
  }
  if (!atomic_load(&cache_filled)) {
    atomic_fetch_add(&work_done, 1);
    quire__sleep_ms(20); /* the "download" */
    atomic_store(&cache_filled, 1);
  }
  quire__limiter_release(&permit);
  return NULL;
}

static void test_limiter(void) {
  CHECK_RC(quire__limiter_create(0, &lim), QUIRE_EINVAL);
  CHECK_OK(quire__limiter_create(BOUND, &lim));
  pthread_t th[16];
  for (uintptr_t i = 0; i < 16; i++) CHECK(pthread_create(&th[i], NULL, hammer, (void *)(i + 1)) == 0);
  for (int i = 0; i < 16; i++) pthread_join(th[i], NULL);
  CHECK(atomic_load(&violations) == 0);
  CHECK(atomic_load(&max_total_seen) >= 2); /* the test did exercise overlap */
  unsigned h, w;
  quire__limiter_stats(lim, &h, &w);
  CHECK(h == 0 && w == 0);

  /* Unrelated keys never wait for each other; the same key does. */
  quire_permit a, b, c;
  CHECK_OK(quire__limiter_acquire(lim, "A", 1, -1, &a));
  CHECK_OK(quire__limiter_acquire(lim, "B", 1, 50, &b));
  CHECK_RC(quire__limiter_acquire(lim, "A", 1, 30, &c), QUIRE_ETIMEDOUT);
  CHECK(c.entry == NULL);
  CHECK_OK(quire__limiter_acquire(lim, "AB", 2, 50, &c)); /* exact keys: "AB" is not "A" */
  /* Three holders = the bound: a fourth key waits, then times out. */
  quire_permit d;
  CHECK_RC(quire__limiter_acquire(lim, "D", 1, 30, &d), QUIRE_ETIMEDOUT);
  quire__limiter_release(&c);
  CHECK_OK(quire__limiter_acquire(lim, "D", 1, 50, &d));
  quire__limiter_release(&a);
  quire__limiter_release(&a); /* releasing twice is a no-op */
  quire__limiter_release(&b);
  quire__limiter_release(&d);
  CHECK_RC(quire__limiter_acquire(lim, "", 0, -1, &d), QUIRE_EINVAL);

  for (int i = 0; i < 16; i++) CHECK(pthread_create(&th[i], NULL, single_flight, NULL) == 0);
  for (int i = 0; i < 16; i++) pthread_join(th[i], NULL);
  CHECK(atomic_load(&work_done) == 1);
  CHECK(atomic_load(&violations) == 0);
  quire__limiter_stats(lim, &h, &w);
  CHECK(h == 0 && w == 0);
  quire__limiter_destroy(lim);
}

int main(void) {
  test_pool();
  test_limiter();
  return test_done("util_threads");
}
