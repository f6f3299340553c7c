/*
 * The fault wrapper and the retry/hedge policy: exact request counts for
 * retries, exhausted retries, deadlines, lost acknowledgements, seeded
 * reproducibility and hedged GETs; URL option handling.
 */
#include "quire/objstore.h"
#include "test.h"
#include "util/util.h"

#include <string.h>

static quire_objstore *open_store(const char *url) {
  quire_objstore *s;
  CHECK_OK(quire_objstore_open(url, &s));
  return s;
}

static quire_objstore_stats stats(quire_objstore *s) {
  quire_objstore_stats st;
  quire_objstore_stats_get(s, &st);
  return st;
}

static void test_retries(void) {
  quire_objstore *s = open_store("fault+mem://?err_first=2&retries=3&backoff_ms=1");
  CHECK_OK(quire_objstore_put(s, "k", "v", 1));
  quire_objstore_stats st = stats(s);
  CHECK(st.calls[QUIRE_OBJSTORE_OP_PUT] == 1);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_PUT] == 3);
  CHECK(st.retries == 2 && st.injected_errors == 2);
  quire_objstore_stats in = stats(quire_objstore_fault_inner(s));
  CHECK(in.calls[QUIRE_OBJSTORE_OP_PUT] == 1); /* only the third attempt got through */
  /* a definitive answer is not retried */
  uint8_t *data;
  size_t len;
  CHECK_RC(quire_objstore_get(s, "missing", &data, &len), QUIRE_ENOTFOUND);
  st = stats(s);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_GET] == 1 && st.retries == 2);
  quire_objstore_close(s);

  /* retries exhausted: 1 + retries attempts, then the error */
  s = open_store("fault+mem://?err_first=10&retries=3&backoff_ms=1");
  CHECK_RC(quire_objstore_put(s, "k", "v", 1), QUIRE_EUNAVAILABLE);
  st = stats(s);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_PUT] == 4 && st.retries == 3);
  CHECK(stats(quire_objstore_fault_inner(s)).calls[QUIRE_OBJSTORE_OP_PUT] == 0);
  quire_objstore_close(s);

  /* no retries by default for non-s3 stores */
  s = open_store("fault+mem://?err_first=1");
  CHECK_RC(quire_objstore_head(s, "k", &(quire_objstore_info){0}), QUIRE_EUNAVAILABLE);
  CHECK(stats(s).attempts[QUIRE_OBJSTORE_OP_HEAD] == 1);
  quire_objstore_close(s);

  /* the deadline bounds retries: every attempt fails, backoff would allow
   * 100 retries, the 150 ms deadline stops far earlier */
  s = open_store("fault+mem://?err=1&retries=100&backoff_ms=40&deadline_ms=150");
  CHECK_RC(quire_objstore_get(s, "k", &data, &len), QUIRE_EUNAVAILABLE);
  st = stats(s);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_GET] >= 1 && st.attempts[QUIRE_OBJSTORE_OP_GET] < 100);
  CHECK(strstr(quire_errmsg(), "deadline") != NULL);
  quire_objstore_close(s);
}

static void test_lost_ack(void) {
  /* The write happens, the caller hears a failure. */
  quire_objstore *s = open_store("fault+mem://?lost_ack=1");
  CHECK_RC(quire_objstore_put(s, "k", "v", 1), QUIRE_EUNAVAILABLE);
  uint8_t *data;
  size_t len;
  CHECK_OK(quire_objstore_get(quire_objstore_fault_inner(s), "k", &data, &len));
  CHECK(len == 1 && data[0] == 'v');
  quire_objstore_free(data);
  CHECK(stats(s).injected_lost_acks == 1);
  /* reads are never "lost acks" */
  CHECK_OK(quire_objstore_get(s, "k", &data, &len));
  quire_objstore_free(data);
  quire_objstore_close(s);

  /* With retries, a put_if_absent whose ack was lost reports EEXIST for its
   * own write: callers re-read to tell (documented in objstore.h). */
  s = open_store("fault+mem://?lost_ack=1&retries=2&backoff_ms=1");
  CHECK_RC(quire_objstore_put_if_absent(s, "c", "mine", 4), QUIRE_EEXIST);
  CHECK(stats(s).attempts[QUIRE_OBJSTORE_OP_PUT_IF_ABSENT] == 2);
  CHECK_OK(quire_objstore_get(s, "c", &data, &len));
  CHECK(len == 4 && memcmp(data, "mine", 4) == 0);
  quire_objstore_free(data);
  quire_objstore_close(s);

  /* streaming writes: an injected commit failure publishes nothing, a lost
   * ack publishes everything */
  s = open_store("fault+mem://?err_first=1");
  quire_objstore_writer *w;
  CHECK_OK(quire_objstore_writer_open(s, "w", 0, &w));
  CHECK_OK(quire_objstore_writer_write(w, "abc", 3));
  CHECK_RC(quire_objstore_writer_commit(w), QUIRE_EUNAVAILABLE);
  CHECK_RC(quire_objstore_get(s, "w", &data, &len), QUIRE_ENOTFOUND);
  quire_objstore_close(s);
  s = open_store("fault+mem://?lost_ack=1");
  CHECK_OK(quire_objstore_writer_open(s, "w", 0, &w));
  CHECK_OK(quire_objstore_writer_write(w, "abc", 3));
  CHECK_RC(quire_objstore_writer_commit(w), QUIRE_EUNAVAILABLE);
  CHECK_OK(quire_objstore_get(s, "w", &data, &len));
  CHECK(len == 3);
  quire_objstore_free(data);
  quire_objstore_close(s);
}

/* The pattern of failures of 200 gets under err=0.3 with a given seed. */
static void fault_pattern(const char *url, char out[201]) {
  quire_objstore *s = open_store(url);
  CHECK_OK(quire_objstore_put(quire_objstore_fault_inner(s), "k", "v", 1));
  for (int i = 0; i < 200; i++) {
    uint8_t *data;
    size_t len;
    int rc = quire_objstore_get(s, "k", &data, &len);
    CHECK(rc == 0 || rc == QUIRE_EUNAVAILABLE);
    if (rc == 0) quire_objstore_free(data);
    out[i] = rc ? 'x' : '.';
  }
  out[200] = 0;
  quire_objstore_close(s);
}

static void test_reproducible(void) {
  char a[201], b[201], c[201];
  fault_pattern("fault+mem://?seed=42&err=0.3", a);
  fault_pattern("fault+mem://?seed=42&err=0.3", b);
  fault_pattern("fault+mem://?seed=43&err=0.3", c);
  CHECK(strcmp(a, b) == 0);
  CHECK(strcmp(a, c) != 0);
  size_t fails = 0;
  for (int i = 0; i < 200; i++) fails += a[i] == 'x';
  CHECK(fails > 20 && fails < 120); /* about 60 expected */
}

static void test_hedging(void) {
  /* The first attempt to reach the fault store stalls for 5 s; the hedge
   * after 20 ms answers. The stalled attempt is cancelled (its sleep polls
   * the cancel flag). On a loaded machine the primary can be descheduled
   * before it reaches the store, so the hedge gets there first and stalls
   * instead, and the primary wins: both are "first complete answer wins",
   * so the checks are that one hedge ran, one attempt stalled and the call
   * did not wait for it. */
  uint64_t t0 = quire__mono_ms();
  quire_objstore *s = open_store("fault+mem://?latency=5000&slow_first=1&hedge_ms=20");
  CHECK_OK(quire_objstore_put(quire_objstore_fault_inner(s), "k", "hedged value", 12));
  uint8_t *data;
  size_t len;
  CHECK_OK(quire_objstore_get(s, "k", &data, &len));
  CHECK(len == 12 && memcmp(data, "hedged value", 12) == 0);
  quire_objstore_free(data);
  quire_objstore_stats st = stats(s);
  CHECK(st.calls[QUIRE_OBJSTORE_OP_GET] == 1);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_GET] == 2);
  CHECK(st.hedges == 1 && st.hedge_wins <= 1 && st.injected_latency == 1);
  CHECK(quire__mono_ms() - t0 < 2500);
  quire_objstore_close(s);

  /* ranged, same shape */
  s = open_store("fault+mem://?latency=5000&slow_first=1&hedge_ms=10");
  CHECK_OK(quire_objstore_put(quire_objstore_fault_inner(s), "k", "0123456789", 10));
  char buf[8] = {0};
  size_t got;
  CHECK_OK(quire_objstore_get_range(s, "k", 3, 4, buf, &got));
  CHECK(got == 4 && memcmp(buf, "3456", 4) == 0);
  st = stats(s);
  CHECK(st.hedges == 1 && st.hedge_wins <= 1 && st.attempts[QUIRE_OBJSTORE_OP_GET_RANGE] == 2);
  /* later GETs are fast: no hedge is sent (hedge_ms is far away) */
  quire_objstore_close(s);
  s = open_store("fault+mem://?hedge_ms=10000");
  CHECK_OK(quire_objstore_put(s, "k", "v", 1));
  for (int i = 0; i < 20; i++) {
    CHECK_OK(quire_objstore_get(s, "k", &data, &len));
    quire_objstore_free(data);
  }
  st = stats(s);
  CHECK(st.hedges == 0 && st.attempts[QUIRE_OBJSTORE_OP_GET] == 20);
  /* a missing key is a complete answer, not a reason to hedge or retry */
  CHECK_RC(quire_objstore_get(s, "nope", &data, &len), QUIRE_ENOTFOUND);
  quire_objstore_close(s);

  /* Both attempts fail transiently: the retry policy takes over. The first
   * two attempts fail (err_first=2; the hedge is the second), the retry
   * succeeds. */
  s = open_store("fault+mem://?err_first=2&latency=200&slow_first=1&hedge_ms=5&retries=2&backoff_ms=1");
  CHECK_OK(quire_objstore_put(quire_objstore_fault_inner(s), "k", "v", 1));
  CHECK_OK(quire_objstore_get(s, "k", &data, &len));
  quire_objstore_free(data);
  st = stats(s);
  CHECK(st.injected_errors == 2 && st.hedges >= 1 && st.retries >= 1);
  quire_objstore_close(s);
}

static void test_urls(void) {
  quire_objstore *s;
  CHECK_RC(quire_objstore_open("fault+mem://?err=2", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("fault+mem://?err=abc", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("fault+mem://?latency=-1", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("mem://?frobnicate=1", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("fault+mem://?frobnicate=1", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("fault+fault+mem://", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("gopher://x", &s), QUIRE_EUNSUPPORTED);
  CHECK_RC(quire_objstore_open("no-scheme", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("file://", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("mem://?retries=1000", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("mem://?x=%zz", &s), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open(NULL, &s), QUIRE_EINVAL);
  /* options of the wrapped store pass through the wrapper */
  char *dir = test_tmpdir("objstore-fault");
  char url[4200];
  snprintf(url, sizeof url, "fault+file://%s/st?fsync=0&seed=7&tmpfile=0", dir);
  CHECK_OK(quire_objstore_open(url, &s));
  CHECK_OK(quire_objstore_put(s, "a/b", "x", 1));
  quire_objstore_close(s);
  snprintf(url, sizeof url, "fault+file://%s/st?fsync=9x", dir);
  CHECK_RC(quire_objstore_open(url, &s), QUIRE_EINVAL);
  test_rmtree(dir);
  free(dir);
  quire_objstore_close(NULL);
}

int main(void) {
  test_seed();
  test_retries();
  test_lost_ack();
  test_reproducible();
  test_hedging();
  test_urls();
  return test_done("objstore fault");
}
