/*
 * s3:// specifics against a live endpoint (tests/objstore/test_s3.sh starts
 * s3rver and passes its URL base, e.g. http://127.0.0.1:PORT):
 * the probe's honest answer, prefix isolation, error mapping for bad
 * credentials and unreachable endpoints (with retry counts), hedged GETs
 * over real HTTP through the fault wrapper, and a segment uploaded with a
 * streaming writer then read partially (tail + planned ranges).
 */
#include "quire/objstore.h"
#include "quire/segment.h"
#include "test.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static const char *endpoint;
static char run[32];

static quire_objstore *open_s3(const char *prefix, const char *extra) {
  char url[1024];
  snprintf(url, sizeof url, "%ss3://quire-test/%s/%s?endpoint=%s&region=us-east-1%s",
           strncmp(extra, "fault:", 6) == 0 ? "fault+" : "", run, prefix, endpoint,
           strncmp(extra, "fault:", 6) == 0 ? extra + 6 : extra);
  quire_objstore *s;
  CHECK_OK(quire_objstore_open(url, &s));
  return s;
}

static void test_probe_and_prefixes(void) {
  quire_objstore *a = open_s3("a", ""), *b = open_s3("b", "");
  int conditional = -1;
  CHECK_OK(quire_objstore_probe(a, &conditional));
  CHECK(conditional == 0); /* s3rver ignores If-None-Match: the probe says so */
  CHECK_OK(quire_objstore_put(a, "k", "in a", 4));
  uint8_t *data;
  size_t len;
  CHECK_RC(quire_objstore_get(b, "k", &data, &len), QUIRE_ENOTFOUND);
  quire_objstore_list l;
  CHECK_OK(quire_objstore_list_keys(b, "", NULL, 100, &l));
  CHECK(l.count == 0);
  quire_objstore_list_free(&l);
  CHECK_OK(quire_objstore_list_keys(a, "", NULL, 100, &l));
  CHECK(l.count == 1 && strcmp(l.entries[0].key, "k") == 0 && l.entries[0].size == 4);
  quire_objstore_list_free(&l);
  quire_objstore_close(a);
  quire_objstore_close(b);
}

static void test_errors(void) {
  /* An unknown access key id is refused. (s3rver checks the key id and the
   * SigV4 header format but does not recompute v4 signatures, so a wrong
   * secret would pass here; real S3 refuses it with the same 403.) */
  char *saved = strdup(getenv("AWS_ACCESS_KEY_ID"));
  setenv("AWS_ACCESS_KEY_ID", "NOT-A-KEY", 1);
  quire_objstore *s = open_s3("e", "");
  int rc = quire_objstore_put(s, "k", "x", 1);
  CHECKF(rc == QUIRE_EFORBIDDEN, "unknown key id gave %s", quire_errname(rc));
  CHECK(strstr(quire_errmsg(), "InvalidAccessKeyId") != NULL);
  quire_objstore_close(s);
  setenv("AWS_ACCESS_KEY_ID", saved, 1);
  free(saved);
  /* no credentials at all: refused at open */
  saved = strdup(getenv("AWS_ACCESS_KEY_ID"));
  unsetenv("AWS_ACCESS_KEY_ID");
  quire_objstore *t;
  CHECK_RC(quire_objstore_open("s3://quire-test?endpoint=http://127.0.0.1:1", &t), QUIRE_EINVAL);
  setenv("AWS_ACCESS_KEY_ID", saved, 1);
  free(saved);
  /* nothing listens on port 1: retried, then unavailable */
  CHECK_OK(quire_objstore_open("s3://quire-test?endpoint=http://127.0.0.1:1&retries=2&backoff_ms=1", &t));
  uint8_t *data;
  size_t len;
  CHECK_RC(quire_objstore_get(t, "k", &data, &len), QUIRE_EUNAVAILABLE);
  quire_objstore_stats st;
  quire_objstore_stats_get(t, &st);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_GET] == 3 && st.retries == 2);
  quire_objstore_close(t);
  /* malformed s3 URLs */
  CHECK_RC(quire_objstore_open("s3://ab?endpoint=http://x", &t), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("s3://Bad_Bucket?endpoint=http://x", &t), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("s3://quire-test/../x?endpoint=http://x", &t), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("s3://quire-test?endpoint=ftp://x", &t), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("s3://quire-test?endpoint=http://x&region=US_EAST", &t), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("s3://quire-test?endpoint=http://x&timeout_ms=0", &t), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_open("s3://quire-test?endpoint=http://x&list_page=1001", &t), QUIRE_EINVAL);
}

static void test_hedged_http(void) {
  /* The first GET stalls (injected before the request goes out); the hedge
   * goes out over HTTP after 200 ms and answers. (slow_first=1 stalls the
   * first attempt to reach the fault layer: with a short hedge_ms a
   * descheduled caller under TSan let the hedge get there first.) */
  quire_objstore *s = open_s3("h", "fault:&latency=3000&slow_first=1&hedge_ms=200");
  CHECK_OK(quire_objstore_put(quire_objstore_fault_inner(s), "k", "hedged", 6));
  uint8_t *data;
  size_t len;
  CHECK_OK(quire_objstore_get(s, "k", &data, &len));
  CHECK(len == 6 && memcmp(data, "hedged", 6) == 0);
  quire_objstore_free(data);
  quire_objstore_stats st;
  quire_objstore_stats_get(s, &st);
  CHECKF(st.hedges == 1 && st.hedge_wins == 1 && st.attempts[QUIRE_OBJSTORE_OP_GET] == 2,
         "hedges %llu, hedge wins %llu, GET attempts %llu", (unsigned long long)st.hedges,
         (unsigned long long)st.hedge_wins, (unsigned long long)st.attempts[QUIRE_OBJSTORE_OP_GET]);
  quire_objstore_stats_get(quire_objstore_fault_inner(s), &st);
  CHECK(st.calls[QUIRE_OBJSTORE_OP_GET] == 1); /* one HTTP GET: the stalled one never went out */
  quire_objstore_close(s);
}

static void test_segment_partial_read(void) {
  quire_objstore *s = open_s3("seg", "");
  quire_gid sid, vids[3];
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid));
  for (int i = 0; i < 3; i++) CHECK_OK(quire_gid_new_at(QUIRE_GID_VOLUME, 1000 + (uint64_t)i, &vids[i]));
  quire_segment_builder *b;
  CHECK_OK(quire_segment_builder_new(&sid, NULL, &b));
  uint8_t page[QUIRE_PAGE_SIZE];
  for (int v = 0; v < 3; v++)
    for (quire_pageidx i = 1; i <= 300; i++) {
      memset(page, (int)(v * 31 + i), sizeof page);
      st_le32(page, i);
      CHECK_OK(quire_segment_builder_add(b, &vids[v], i, page));
    }
  char key[64], text[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&sid, text);
  snprintf(key, sizeof key, "segments/%s", text);
  CHECK_OK(quire_segment_builder_to_store(b, s, key, QUIRE_OBJSTORE_IF_ABSENT));
  quire_objstore_info info;
  CHECK_OK(quire_objstore_head(s, key, &info));
  CHECK(info.size == quire_segment_builder_size(b));
  quire_segment_builder_free(b);
  /* one ranged read of the tail */
  size_t tail_len = (size_t)QUIRE_MIN(quire_segment_max_tail(NULL), info.size);
  uint8_t *tail = malloc(tail_len);
  size_t got;
  CHECK_OK(quire_objstore_get_range(s, key, info.size - tail_len, tail_len, tail, &got));
  CHECK(got == tail_len);
  quire_segment_view v;
  CHECK_OK(quire_segment_index_open(tail, tail_len, info.size, NULL, &v));
  CHECK(v.page_count == 900 && v.volume_count == 3);
  quire_pageidx want[] = {5, 6, 7, 100, 102, 299, 300, 301};
  quire_segment_range *r;
  size_t nr, missing;
  CHECK_OK(quire_segment_plan(&v, &vids[1], want, QUIRE_ARRAY_LEN(want), 1, &r, &nr, &missing));
  CHECK(nr == 3 && missing == 1);
  uint8_t *buf = malloc(4 * QUIRE_PAGE_SIZE);
  for (size_t k = 0; k < nr; k++) {
    CHECK(r[k].slot_count <= 4);
    CHECK_OK(quire_objstore_get_range(s, key, r[k].offset, (size_t)r[k].length, buf, &got));
    CHECK(got == r[k].length);
    for (uint32_t j = 0; j < r[k].slot_count; j++) {
      CHECK_OK(quire_segment_page_check(&v, r[k].first_slot + j, buf + (size_t)j * QUIRE_PAGE_SIZE));
      CHECK(ld_le32(buf + (size_t)j * QUIRE_PAGE_SIZE) ==
            quire_segment_slot_pageidx(&v, r[k].first_slot + j));
    }
  }
  quire_segment_free(r);
  free(buf);
  free(tail);
  quire_objstore_close(s);
}

/* --sigv4 PORT: one request of each kind to tests/objstore/sigv4_server.py,
 * which checks every signature independently. */
static int sigv4_run(const char *port) {
  char url[512];
  snprintf(url, sizeof url, "s3://quire-test/pre/fix?endpoint=http://127.0.0.1:%s&region=eu-west-3", port);
  quire_objstore *s;
  CHECK_OK(quire_objstore_open(url, &s));
  static uint8_t big[3 << 20]; /* large enough for curl's Expect: 100-continue */
  CHECK_OK(quire_objstore_put_if_absent(s, "volumes/Ab1/log/000000000000002a", "commit", 6));
  CHECK_OK(quire_objstore_put(s, "segments/x", big, sizeof big));
  uint8_t buf[16];
  size_t got;
  CHECK_OK(quire_objstore_get_range(s, "segments/x", 0, 4, buf, &got));
  quire_objstore_info info;
  CHECK_OK(quire_objstore_head(s, "segments/x", &info));
  uint8_t *data;
  size_t len;
  CHECK_OK(quire_objstore_get(s, "segments/x", &data, &len));
  quire_objstore_free(data);
  quire_objstore_list l;
  CHECK_OK(quire_objstore_list_keys(s, "volumes/Ab1/log/", "volumes/Ab1/log/0000000000000001", 7, &l));
  quire_objstore_list_free(&l);
  CHECK_OK(quire_objstore_delete(s, "segments/x"));
  quire_objstore_close(s);
  return test_done("objstore sigv4 client");
}

/* --flaky PORT: retries, timeouts and hedging over real HTTP against
 * tests/objstore/flaky_server.py. Every attempt is one HTTP request, so the
 * store's counters are the server's request counts. */
static quire_objstore *open_flaky(const char *port, const char *opts) {
  char url[512];
  snprintf(url, sizeof url, "s3://quire-test?endpoint=http://127.0.0.1:%s&backoff_ms=1%s", port, opts);
  quire_objstore *s;
  CHECK_OK(quire_objstore_open(url, &s));
  return s;
}

static int flaky_run(const char *port) {
  uint8_t *data;
  size_t len;
  quire_objstore_stats st;
  /* 503 twice, then success: three requests */
  quire_objstore *s = open_flaky(port, "&retries=4");
  CHECK_OK(quire_objstore_get(s, "fail503-2", &data, &len));
  CHECK(len == 11 && memcmp(data, "fast answer", 11) == 0);
  quire_objstore_free(data);
  quire_objstore_stats_get(s, &st);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_GET] == 3 && st.retries == 2);
  /* 429 once, on a put */
  CHECK_OK(quire_objstore_put(s, "throttle", "x", 1));
  quire_objstore_stats_get(s, &st);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_PUT] == 2 && st.retries == 3);
  /* a lost conditional create: 412 is QUIRE_EEXIST, not retried */
  CHECK_RC(quire_objstore_put_if_absent(s, "exists", "x", 1), QUIRE_EEXIST);
  quire_objstore_stats_get(s, &st);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_PUT_IF_ABSENT] == 1);
  /* a server that ignores Range: the client cuts the range out itself */
  char part[8] = {0};
  size_t got;
  CHECK_OK(quire_objstore_get_range(s, "norange", 3, 4, part, &got));
  CHECK(got == 4 && memcmp(part, "3456", 4) == 0);
  CHECK_OK(quire_objstore_get_range(s, "norange", 18, 8, part, &got));
  CHECK(got == 2 && memcmp(part, "ij", 2) == 0);
  quire_objstore_writer *w;
  CHECK_OK(quire_objstore_writer_open(s, "exists", QUIRE_OBJSTORE_IF_ABSENT, &w));
  CHECK_OK(quire_objstore_writer_write(w, "abc", 3));
  CHECK_RC(quire_objstore_writer_commit(w), QUIRE_EEXIST);
  quire_objstore_close(s);
  /* more failures than retries: the 503 comes back as unavailable */
  s = open_flaky(port, "&retries=1");
  CHECK_RC(quire_objstore_get(s, "fail503-5", &data, &len), QUIRE_EUNAVAILABLE);
  quire_objstore_stats_get(s, &st);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_GET] == 2);
  quire_objstore_close(s);
  /* a request timeout is retried, and the deadline ends it */
  s = open_flaky(port, "&retries=5&timeout_ms=100&deadline_ms=350");
  CHECK_RC(quire_objstore_head(s, "hang", &(quire_objstore_info){0}), QUIRE_ETIMEDOUT);
  quire_objstore_stats_get(s, &st);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_HEAD] >= 2 && st.attempts[QUIRE_OBJSTORE_OP_HEAD] <= 6);
  quire_objstore_close(s);
  /* hedging: the first GET would be answered after 10 s; the hedge sent
   * after 50 ms is answered at once and wins; the slow request is
   * cancelled, so the call returns before the slow answer exists */
  s = open_flaky(port, "&hedge_ms=50");
  CHECK_OK(quire_objstore_get(s, "slowfirst", &data, &len));
  CHECK(len == 11 && memcmp(data, "fast answer", 11) == 0);
  quire_objstore_free(data);
  quire_objstore_stats_get(s, &st);
  CHECK(st.hedges == 1 && st.hedge_wins == 1 && st.attempts[QUIRE_OBJSTORE_OP_GET] == 2);
  quire_objstore_close(s);
  char url[128];
  snprintf(url, sizeof url, "s3://quire-test?endpoint=http://127.0.0.1:%s", port);
  CHECK_OK(quire_objstore_open(url, &s));
  quire_objstore_close(s);
  return test_done("objstore s3 flaky");
}

int main(int argc, char **argv) {
  uint64_t seed = test_seed();
  if (argc == 3 && strcmp(argv[1], "--sigv4") == 0) return sigv4_run(argv[2]);
  if (argc == 3 && strcmp(argv[1], "--flaky") == 0) return flaky_run(argv[2]);
  if (argc != 2) {
    fprintf(stderr, "usage: %s http://127.0.0.1:PORT\n", argv[0]);
    return 2;
  }
  endpoint = argv[1];
  snprintf(run, sizeof run, "extra-%llx", (unsigned long long)(seed & 0xffffffffff));
  test_probe_and_prefixes();
  test_errors();
  test_hedged_http();
  test_segment_partial_read();
  return test_done("objstore s3 extra");
}
