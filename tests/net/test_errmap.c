/* Error mapping: every quire code round-trips through status + wire code;
 * metrics render as Prometheus text. */
#include "test.h"
#include "net/errmap.h"
#include "net/metrics.h"
#include "proto/pb.h"
#include "util/util.h"

#include <string.h>

static void test_map(void) {
  CHECK(quire__errmap_status(QUIRE_EINVAL) == 400);
  CHECK(quire__errmap_status(QUIRE_ENOTFOUND) == 404);
  CHECK(quire__errmap_status(QUIRE_ECONFLICT) == 409);
  CHECK(quire__errmap_status(QUIRE_ETOOLARGE) == 413);
  CHECK(quire__errmap_status(QUIRE_EUNAVAILABLE) == 503);
  CHECK(quire__errmap_status(QUIRE_EUNAUTHORIZED) == 401);
  CHECK(quire__errmap_status(QUIRE_EFORBIDDEN) == 403);
  CHECK(quire__errmap_status(QUIRE_EINTERNAL) == 500);
  CHECK(quire__errmap_status(QUIRE_ECORRUPT) == 500);
  CHECK(quire__errmap_status(-5) == 500);
  /* What a client sees is what the server meant, for every client-relevant code. */
  int codes[] = {QUIRE_EINVAL,        QUIRE_ENOTFOUND,  QUIRE_ECONFLICT, QUIRE_ETOOLARGE, QUIRE_EUNAVAILABLE,
                 QUIRE_EUNAUTHORIZED, QUIRE_EFORBIDDEN, QUIRE_ETIMEDOUT, QUIRE_EINTERNAL, QUIRE_ECORRUPT};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    int rc = codes[i];
    CHECK(quire__errmap_rc(quire__errmap_code(rc), quire__errmap_status(rc)) == rc);
    /* Without a code in the body the status alone gets close. */
    int st = quire__errmap_status(rc);
    CHECK(quire__errmap_status(quire__errmap_rc(-1, st)) == st);
  }
  quire_buf b;
  quire__buf_init(&b, 4096);
  CHECK_OK(quire__errmap_body(QUIRE_ECONFLICT, "lsn 5 is taken", &b));
  Quire__Common__V1__Error *e = quire__common__v1__error__unpack(&quire__pb_allocator, b.len, b.data);
  CHECK(e && e->has_code && e->code == QUIRE__COMMON__V1__ERROR_CODE__CONFLICT);
  CHECK(strcmp(e->message, "lsn 5 is taken") == 0);
  quire__common__v1__error__free_unpacked(e, &quire__pb_allocator);
  quire__buf_free(&b);
}

static void test_metrics(void) {
  quire_metrics *m;
  CHECK_OK(quire__metrics_create(&m));
  quire__metrics_count(m, "x_total", "things", "a=\"1\"", 2);
  quire__metrics_count(m, "x_total", "things", "a=\"1\"", 3);
  quire__metrics_count(m, "x_total", "things", "a=\"2\"", 1);
  quire__metrics_gauge(m, "g", "a gauge", "", -4);
  quire__metrics_observe(m, "lat_seconds", "latency", "e=\"/x\"", 0.003);
  quire__metrics_observe(m, "lat_seconds", "latency", "e=\"/x\"", 20);
  CHECK(quire__metrics_value(m, "x_total", "a=\"1\"") == 5);
  CHECK(quire__metrics_value(m, "g", "") == -4);
  CHECK(quire__metrics_value(m, "lat_seconds", "e=\"/x\"") == 2);
  quire_buf b;
  quire__buf_init(&b, 1 << 20);
  CHECK_OK(quire__metrics_render(m, &b));
  CHECK_OK(quire__buf_append_u8(&b, 0));
  const char *t = (const char *)b.data;
  CHECK(strstr(t, "# TYPE x_total counter\n"));
  CHECK(strstr(t, "x_total{a=\"1\"} 5\n"));
  CHECK(strstr(t, "x_total{a=\"2\"} 1\n"));
  CHECK(strstr(t, "g -4\n"));
  CHECK(strstr(t, "lat_seconds_bucket{e=\"/x\",le=\"0.0025\"} 0\n"));
  CHECK(strstr(t, "lat_seconds_bucket{e=\"/x\",le=\"0.005\"} 1\n"));
  CHECK(strstr(t, "lat_seconds_bucket{e=\"/x\",le=\"+Inf\"} 2\n"));
  CHECK(strstr(t, "lat_seconds_count{e=\"/x\"} 2\n"));
  const char *first = strstr(t, "# HELP x_total"),
             *again = first ? strstr(first + 1, "# HELP x_total") : NULL;
  CHECK(first && !again);
  quire__buf_free(&b);
  quire__metrics_destroy(m);
}

int main(void) {
  test_map();
  test_metrics();
  return test_done("net_errmap");
}
