/*
 * One conformance suite for every object-store backend.
 *
 *   test_objstore_conformance mem
 *   test_objstore_conformance file            (O_TMPFILE path)
 *   test_objstore_conformance file-notmpfile  (temp file + rename path)
 *   test_objstore_conformance URL [--no-conditional] [--walk-list-order]
 *                                 [--no-atomic-replace]
 *       any store URL whose namespace is empty (tests/objstore/test_s3.sh
 *       runs it against s3rver; --no-conditional says the endpoint ignores
 *       If-None-Match, which the probe must report; --walk-list-order says
 *       it lists in directory-walk order rather than byte order;
 *       --no-atomic-replace says a reader racing a replace can see a mix of
 *       versions there)
 *
 * Covers every operation, missing keys, ranges at the edges, listing with
 * paging against a model, bad keys, a 64 MiB streamed object, concurrent
 * put_if_absent from threads, the upload pool and the probe.
 */
#include "quire/objstore.h"
#include "test.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <string.h>

static quire_objstore *store;
static int expect_conditional = 1;
static int walk_list_order = 0; /* --walk-list-order: see test_list */
static int atomic_replace = 1;  /* --no-atomic-replace: see test_atomic_replace */

static void fill(uint8_t *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (uint8_t)(seed >> 56);
  }
}

static void check_get(const char *key, const void *want, size_t want_len) {
  uint8_t *data;
  size_t len;
  CHECK_OK(quire_objstore_get(store, key, &data, &len));
  CHECKF(len == want_len, "%s: len %zu want %zu", key, len, want_len);
  CHECK(data != NULL);
  CHECK(want_len == 0 || memcmp(data, want, want_len) == 0);
  quire_objstore_free(data);
}

static void test_basic(void) {
  uint8_t buf[5000];
  fill(buf, sizeof buf, 1);
  CHECK_OK(quire_objstore_put(store, "basic/one", buf, sizeof buf));
  check_get("basic/one", buf, sizeof buf);
  quire_objstore_info info, info2;
  CHECK_OK(quire_objstore_head(store, "basic/one", &info));
  CHECK(info.size == sizeof buf);
  CHECK(info.etag[0] != 0);

  /* replace: new contents, new size, new etag */
  CHECK_OK(quire_objstore_put(store, "basic/one", buf + 10, 100));
  check_get("basic/one", buf + 10, 100);
  CHECK_OK(quire_objstore_head(store, "basic/one", &info2));
  CHECK(info2.size == 100);
  CHECK(strcmp(info.etag, info2.etag) != 0);

  /* empty object */
  CHECK_OK(quire_objstore_put(store, "basic/empty", NULL, 0));
  check_get("basic/empty", "", 0);
  CHECK_OK(quire_objstore_head(store, "basic/empty", &info));
  CHECK(info.size == 0);

  /* put_if_absent */
  CHECK_OK(quire_objstore_put_if_absent(store, "basic/once", "first", 5));
  if (expect_conditional) {
    CHECK_RC(quire_objstore_put_if_absent(store, "basic/once", "second", 6), QUIRE_EEXIST);
    check_get("basic/once", "first", 5);
  }

  /* missing keys */
  uint8_t *data = (uint8_t *)1;
  size_t len = 7, got = 7;
  CHECK_RC(quire_objstore_get(store, "basic/missing", &data, &len), QUIRE_ENOTFOUND);
  CHECK(data == NULL && len == 0);
  CHECK_RC(quire_objstore_head(store, "basic/missing", &info), QUIRE_ENOTFOUND);
  CHECK_RC(quire_objstore_get_range(store, "basic/missing", 0, 10, buf, &got), QUIRE_ENOTFOUND);
  CHECK_RC(quire_objstore_get(store, "basic", &data, &len), QUIRE_ENOTFOUND); /* a "directory" */
  CHECK_RC(quire_objstore_get(store, "basic/one/deeper", &data, &len), QUIRE_ENOTFOUND);
  CHECK_OK(quire_objstore_delete(store, "basic/missing"));

  /* delete */
  CHECK_OK(quire_objstore_delete(store, "basic/one"));
  CHECK_RC(quire_objstore_get(store, "basic/one", &data, &len), QUIRE_ENOTFOUND);
  CHECK_OK(quire_objstore_delete(store, "basic/one"));
  /* delete_found says whether the key was there (file://, mem://; s3 may
   * not know: -1) */
  {
    int found = 7;
    CHECK_OK(quire_objstore_put(store, "basic/found", "x", 1));
    CHECK_OK(quire_objstore_delete_found(store, "basic/found", &found));
    CHECK(found == 1 || (found == -1 && strncmp(quire_objstore_url(store), "s3", 2) == 0));
    CHECK_OK(quire_objstore_delete_found(store, "basic/found", &found));
    CHECK(found == 0 || (found == -1 && strncmp(quire_objstore_url(store), "s3", 2) == 0));
  }
  /* deleted keys can be created again */
  CHECK_OK(quire_objstore_put_if_absent(store, "basic/one", "again", 5));
  check_get("basic/one", "again", 5);

  /* The keys quire itself uses. */
  CHECK_OK(quire_objstore_put(store, "segments/A1b2C3d4E5f6G7h8J9k1Lm", "s", 1));
  CHECK_OK(
      quire_objstore_put_if_absent(store, "volumes/Gx1b2C3d4E5f6G7h8J9k1L/log/000000000000002a", "c", 1));
  check_get("volumes/Gx1b2C3d4E5f6G7h8J9k1L/log/000000000000002a", "c", 1);
}

static void test_ranges(void) {
  enum { N = 10000 };
  static uint8_t obj[N], buf[N + 100];
  fill(obj, N, 2);
  CHECK_OK(quire_objstore_put(store, "range/obj", obj, N));
  size_t got;
  struct {
    uint64_t off;
    size_t len, want;
  } cases[] = {
      {0, N, N},       {0, 1, 1},          {N - 1, 1, 1}, {N - 1, 50, 1},         {N, 10, 0},
      {0, N + 100, N}, {4096, 4096, 4096}, {123, 0, 0},   {N - 4096, 8192, 4096},
  };
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(cases); i++) {
    memset(buf, 0xEE, sizeof buf);
    CHECK_OK(quire_objstore_get_range(store, "range/obj", cases[i].off, cases[i].len, buf, &got));
    CHECKF(got == cases[i].want, "range %llu+%zu: got %zu want %zu", (unsigned long long)cases[i].off,
           cases[i].len, got, cases[i].want);
    CHECK(got == 0 || memcmp(buf, obj + cases[i].off, got) == 0);
    CHECK(buf[got] == 0xEE); /* nothing written past what was read */
  }
  CHECK_RC(quire_objstore_get_range(store, "range/obj", N + 1, 10, buf, &got), QUIRE_ERANGE);
  CHECK_RC(quire_objstore_get_range(store, "range/obj", UINT64_MAX - 5, 10, buf, &got), QUIRE_ERANGE);
  /* random ranges */
  for (int i = 0; i < 40; i++) {
    uint64_t off = test_rand_below(N + 1);
    size_t len = (size_t)test_rand_below(N / 2);
    CHECK_OK(quire_objstore_get_range(store, "range/obj", off, len, buf, &got));
    CHECK(got == QUIRE_MIN(len, (size_t)(N - off)));
    CHECK(got == 0 || memcmp(buf, obj + off, got) == 0);
  }
  /* an empty object */
  CHECK_OK(quire_objstore_put(store, "range/empty", "", 0));
  CHECK_OK(quire_objstore_get_range(store, "range/empty", 0, 10, buf, &got));
  CHECK(got == 0);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Lists prefix from start_after in pages of limit; compares with model. */
static void check_listing(char **model, size_t n, const char *prefix, const char *start_after, size_t limit) {
  size_t plen = strlen(prefix);
  size_t want_i = 0;
  /* advance model to the first key > start_after with the prefix */
  char last[QUIRE_OBJSTORE_KEY_MAX + 1];
  snprintf(last, sizeof last, "%s", start_after ? start_after : "");
  int pages = 0;
  for (;;) {
    quire_objstore_list l;
    CHECK_OK(quire_objstore_list_keys(store, prefix, last, limit, &l));
    CHECK(l.count <= limit);
    pages++;
    for (size_t i = 0; i < l.count; i++) {
      while (want_i < n && (strncmp(model[want_i], prefix, plen) != 0 || strcmp(model[want_i], last) <= 0))
        want_i++;
      CHECKF(want_i < n, "list returned extra key %s", l.entries[i].key);
      CHECKF(strcmp(l.entries[i].key, model[want_i]) == 0, "list: got %s want %s", l.entries[i].key,
             model[want_i]);
      CHECK(l.entries[i].size == strlen(model[want_i]));
      snprintf(last, sizeof last, "%s", l.entries[i].key);
      want_i++;
    }
    int truncated = l.truncated;
    size_t count = l.count;
    quire_objstore_list_free(&l);
    if (!truncated) break;
    CHECK(count == limit);
    CHECK(pages < 10000);
  }
  while (want_i < n && (strncmp(model[want_i], prefix, plen) != 0 || strcmp(model[want_i], last) <= 0))
    want_i++;
  CHECKF(want_i == n, "list missed key %s (prefix '%s')", want_i < n ? model[want_i] : "", prefix);
}

static void test_list(void) {
  enum { N = 150 };
  char *model[N];
  for (int i = 0; i < N; i++) {
    char key[128];
    /* Byte order is not directory order here ("lst/a-b" < "lst/a/b"); an
     * endpoint that lists in directory-walk order (s3rver) gets key shapes
     * whose components never prefix a sibling, like quire's own keys. */
    const char *byte_dirs[] = {"lst/a", "lst/a/b", "lst/ab", "lst/b/c/d", "lst/a-b"};
    const char *walk_dirs[] = {"lst/aa", "lst/ab/cd", "lst/ac", "lst/bb/cc/dd", "lst/a-"};
    const char **dirs = walk_list_order ? walk_dirs : byte_dirs;
    snprintf(key, sizeof key, "%s/k%03d", dirs[i % 5], (i * 37) % N);
    model[i] = strdup(key);
    CHECK_OK(quire_objstore_put(store, key, key, strlen(key)));
  }
  qsort(model, N, sizeof *model, str_cmp);
  check_listing(model, N, "lst/", NULL, 1000);
  check_listing(model, N, "lst/", NULL, 7);
  check_listing(model, N, "lst/a", NULL, 13);
  check_listing(model, N, walk_list_order ? "lst/ab/" : "lst/a/", NULL, 1);
  check_listing(model, N, walk_list_order ? "lst/ab/cd/k0" : "lst/a/b/k0", NULL, 4);
  check_listing(model, N, "lst/", walk_list_order ? "lst/ab/cd/k050" : "lst/ab/k050", 9);
  check_listing(model, N, "lst/", "lst/a", 1000);
  check_listing(model, N, walk_list_order ? "lst/bb/cc/dd/k1" : "lst/b/c/d/k1", NULL, 1000);
  /* no match */
  quire_objstore_list l;
  CHECK_OK(quire_objstore_list_keys(store, "lst/zzz", NULL, 10, &l));
  CHECK(l.count == 0 && !l.truncated);
  quire_objstore_list_free(&l);
  CHECK_OK(quire_objstore_list_keys(store, "nothing-here/", NULL, 10, &l));
  CHECK(l.count == 0 && !l.truncated);
  quire_objstore_list_free(&l);
  /* start_after past everything */
  CHECK_OK(quire_objstore_list_keys(store, "lst/", "lst/zzzz", 10, &l));
  CHECK(l.count == 0 && !l.truncated);
  quire_objstore_list_free(&l);
  /* exactly limit keys: a second page is empty */
  CHECK_OK(quire_objstore_list_keys(store, walk_list_order ? "lst/bb/" : "lst/b/", NULL, 30, &l));
  CHECK(l.count == 30);
  quire_objstore_list_free(&l);
  CHECK_RC(quire_objstore_list_keys(store, "lst/", NULL, 10001, &l), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_list_keys(store, "lst/../", NULL, 10, &l), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_list_keys(store, "../", NULL, 10, &l), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_list_keys(store, "lst//", NULL, 10, &l), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_list_keys(store, "lst/", "../x", 10, &l), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_list_keys(store, "bad prefix", NULL, 10, &l), QUIRE_EINVAL);
  CHECK_RC(quire_objstore_list_keys(store, "/abs", NULL, 10, &l), QUIRE_EINVAL);
  /* deletions disappear from listings */
  for (int i = 0; i < N; i += 2) CHECK_OK(quire_objstore_delete(store, model[i]));
  char *left[N];
  size_t nl = 0;
  for (int i = 1; i < N; i += 2) left[nl++] = model[i];
  check_listing(left, nl, "lst/", NULL, 11);
  for (int i = 0; i < N; i++) free(model[i]);
}

static void test_bad_keys(void) {
  char longkey[QUIRE_OBJSTORE_KEY_MAX + 2];
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = 0;
  const char *bad[] = {"",     "/abs", "a//b", "../x",   "a/../b", "a/./b", ".hidden",
                       "a/.x", "a/",   "a b",  "a\\b",   "\xff",   "a\nb",  "..",
                       ".",    "a/..", "x?y",  "%2e%2e", "a:b",    longkey};
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(bad); i++) {
    uint8_t *data;
    size_t len, got;
    quire_objstore_info info;
    quire_objstore_writer *w;
    CHECKF(quire_objstore_key_check(bad[i]) == QUIRE_EINVAL, "key %zu accepted", i);
    CHECK_RC(quire_objstore_put(store, bad[i], "x", 1), QUIRE_EINVAL);
    CHECK_RC(quire_objstore_put_if_absent(store, bad[i], "x", 1), QUIRE_EINVAL);
    CHECK_RC(quire_objstore_get(store, bad[i], &data, &len), QUIRE_EINVAL);
    CHECK_RC(quire_objstore_get_range(store, bad[i], 0, 1, longkey, &got), QUIRE_EINVAL);
    CHECK_RC(quire_objstore_head(store, bad[i], &info), QUIRE_EINVAL);
    CHECK_RC(quire_objstore_delete(store, bad[i]), QUIRE_EINVAL);
    CHECK_RC(quire_objstore_writer_open(store, bad[i], 0, &w), QUIRE_EINVAL);
  }
  CHECK_RC(quire_objstore_key_check(NULL), QUIRE_EINVAL);
  longkey[QUIRE_OBJSTORE_KEY_MAX] = 0; /* exactly the maximum is fine */
  CHECK_OK(quire_objstore_key_check(longkey));
  CHECK_OK(quire_objstore_key_check("a.b/c-d_e/F.9"));
  /* nothing leaked into the namespace */
  quire_objstore_list l;
  CHECK_OK(quire_objstore_list_keys(store, "", NULL, 10000, &l));
  for (size_t i = 0; i < l.count; i++) CHECK(strncmp(l.entries[i].key, "x", 1) != 0);
  quire_objstore_list_free(&l);
}

/* A 64 MiB object streamed in 1 MiB pieces, never held whole by the test. */
static void test_large_stream(void) {
  const size_t piece = 1 << 20, pieces = 64;
  uint8_t *buf = malloc(piece);
  quire_objstore_writer *w;
  CHECK_OK(quire_objstore_writer_open(store, "large/obj", 0, &w));
  quire_hasher h;
  quire__hasher_init(&h);
  for (size_t i = 0; i < pieces; i++) {
    fill(buf, piece, 1000 + i);
    quire__hasher_update(&h, buf, piece);
    CHECK_OK(quire_objstore_writer_write(w, buf, piece));
  }
  CHECK(quire_objstore_writer_size(w) == piece * pieces);
  /* not visible before commit */
  quire_objstore_info info;
  CHECK_RC(quire_objstore_head(store, "large/obj", &info), QUIRE_ENOTFOUND);
  CHECK_OK(quire_objstore_writer_commit(w));
  CHECK_OK(quire_objstore_head(store, "large/obj", &info));
  CHECK(info.size == piece * pieces);
  /* read it back in ranges and compare the checksum */
  quire_hasher h2;
  quire__hasher_init(&h2);
  for (size_t i = 0; i < pieces; i++) {
    size_t got;
    CHECK_OK(quire_objstore_get_range(store, "large/obj", i * piece, piece, buf, &got));
    CHECK(got == piece);
    quire__hasher_update(&h2, buf, piece);
  }
  CHECK(quire__hasher_digest(&h) == quire__hasher_digest(&h2));
  /* and whole */
  uint8_t *data;
  size_t len;
  CHECK_OK(quire_objstore_get(store, "large/obj", &data, &len));
  CHECK(len == piece * pieces && quire__xxh3(data, len) != 0);
  quire__hasher_init(&h2);
  quire__hasher_update(&h2, data, len);
  CHECK(quire__hasher_digest(&h) == quire__hasher_digest(&h2));
  quire_objstore_free(data);
  CHECK_OK(quire_objstore_delete(store, "large/obj"));
  free(buf);
}

static void test_writer(void) {
  quire_objstore_writer *w;
  /* abort publishes nothing */
  CHECK_OK(quire_objstore_writer_open(store, "writer/aborted", 0, &w));
  CHECK_OK(quire_objstore_writer_write(w, "abc", 3));
  quire_objstore_writer_abort(w);
  quire_objstore_info info;
  CHECK_RC(quire_objstore_head(store, "writer/aborted", &info), QUIRE_ENOTFOUND);
  quire_objstore_writer_abort(NULL);
  /* an empty streamed object */
  CHECK_OK(quire_objstore_writer_open(store, "writer/empty", 0, &w));
  CHECK_OK(quire_objstore_writer_commit(w));
  check_get("writer/empty", "", 0);
  /* replace by writer */
  CHECK_OK(quire_objstore_put(store, "writer/x", "old", 3));
  CHECK_OK(quire_objstore_writer_open(store, "writer/x", 0, &w));
  CHECK_OK(quire_objstore_writer_write(w, "ne", 2));
  CHECK_OK(quire_objstore_writer_write(w, "w!", 2));
  CHECK_OK(quire_objstore_writer_commit(w));
  check_get("writer/x", "new!", 4);
  /* create-only writer */
  CHECK_OK(quire_objstore_writer_open(store, "writer/y", QUIRE_OBJSTORE_IF_ABSENT, &w));
  CHECK_OK(quire_objstore_writer_write(w, "yy", 2));
  CHECK_OK(quire_objstore_writer_commit(w));
  if (expect_conditional) {
    CHECK_OK(quire_objstore_writer_open(store, "writer/y", QUIRE_OBJSTORE_IF_ABSENT, &w));
    CHECK_OK(quire_objstore_writer_write(w, "zz", 2));
    CHECK_RC(quire_objstore_writer_commit(w), QUIRE_EEXIST);
    check_get("writer/y", "yy", 2);
  }
  CHECK_RC(quire_objstore_writer_open(store, "writer/z", 4, &w), QUIRE_EINVAL);
}

struct racer {
  int id;
  int rc;
  pthread_barrier_t *barrier;
  char key[64];
};

static void *race_main(void *arg) {
  struct racer *r = arg;
  char val[32];
  snprintf(val, sizeof val, "racer-%02d", r->id);
  pthread_barrier_wait(r->barrier);
  r->rc = quire_objstore_put_if_absent(store, r->key, val, strlen(val));
  return NULL;
}

static void test_threads_race(void) {
  if (!expect_conditional) return;
  enum { T = 8, ROUNDS = 20 };
  for (int round = 0; round < ROUNDS; round++) {
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, T);
    struct racer r[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
      r[i] = (struct racer){.id = i, .barrier = &barrier};
      snprintf(r[i].key, sizeof r[i].key, "race/round-%03d", round);
      pthread_create(&th[i], NULL, race_main, &r[i]);
    }
    int winners = 0, winner = -1;
    for (int i = 0; i < T; i++) {
      pthread_join(th[i], NULL);
      if (r[i].rc == 0)
        winners++, winner = i;
      else
        CHECK_RC(r[i].rc, QUIRE_EEXIST);
    }
    pthread_barrier_destroy(&barrier);
    CHECK(winners == 1);
    char val[32];
    snprintf(val, sizeof val, "racer-%02d", winner);
    check_get(r[0].key, val, strlen(val));
  }
}

/* Readers racing a writer that keeps replacing one key see one whole
 * version each time, never a mix or a prefix. */
static _Atomic int replace_done;
static _Atomic long replace_reads;

static size_t version_len(uint32_t v) { return 8 + 1000 + (v * 7919u) % 150000; }

static void *replace_reader(void *arg) {
  (void)arg;
  while (!atomic_load(&replace_done)) {
    uint8_t *data;
    size_t len;
    int rc = quire_objstore_get(store, "replace/k", &data, &len);
    CHECK_OK(rc);
    CHECK(len >= 8);
    uint32_t v = ld_le32(data + 4);
    CHECKF(ld_le32(data) == len && len == version_len(v), "torn read: %zu bytes, header says %u (version %u)",
           len, ld_le32(data), v);
    for (size_t i = 8; i < len; i++) CHECKF(data[i] == (uint8_t)v, "mixed versions at byte %zu", i);
    quire_objstore_free(data);
    atomic_fetch_add(&replace_reads, 1);
  }
  return NULL;
}

static void test_atomic_replace(void) {
  enum { READERS = 3 };
  if (!atomic_replace) return;
  int versions = 60;
  uint8_t *buf = malloc(version_len(0) + 150000);
  for (int v = 0; v < versions; v++) {
    size_t len = version_len((uint32_t)v);
    st_le32(buf, (uint32_t)len);
    st_le32(buf + 4, (uint32_t)v);
    memset(buf + 8, v, len - 8);
    CHECK_OK(quire_objstore_put(store, "replace/k", buf, len));
    if (v == 0) {
      pthread_t th[READERS];
      for (int i = 0; i < READERS; i++) pthread_create(&th[i], NULL, replace_reader, NULL);
      /* Replace only once the readers are reading, or a fast store could
       * finish before any of them starts and the test would prove nothing. */
      while (atomic_load(&replace_reads) < READERS) sched_yield();
      for (int w = 1; w < versions; w++) {
        len = version_len((uint32_t)w);
        st_le32(buf, (uint32_t)len);
        st_le32(buf + 4, (uint32_t)w);
        memset(buf + 8, w, len - 8);
        CHECK_OK(quire_objstore_put(store, "replace/k", buf, len));
      }
      atomic_store(&replace_done, 1);
      for (int i = 0; i < READERS; i++) pthread_join(th[i], NULL);
      break;
    }
  }
  CHECK(atomic_load(&replace_reads) >= READERS);
  free(buf);
}

static _Atomic int uploads_done, uploads_failed;
static void upload_done(void *arg, int rc) {
  (void)arg;
  if (rc) atomic_fetch_add(&uploads_failed, 1);
  atomic_fetch_add(&uploads_done, 1);
}

static void test_upload_pool(void) {
  enum { N = 40 };
  static uint8_t bodies[N][3000];
  quire_objstore_uploads *u;
  CHECK_OK(quire_objstore_uploads_create(store, 4, 2, &u));
  for (int i = 0; i < N; i++) {
    fill(bodies[i], sizeof bodies[i], 500 + (uint64_t)i);
    char key[64];
    snprintf(key, sizeof key, "up/%03d", i);
    CHECK_OK(quire_objstore_uploads_put(u, key, bodies[i], sizeof bodies[i], 0, upload_done, NULL));
  }
  quire_objstore_uploads_wait(u);
  CHECK(atomic_load(&uploads_done) == N && atomic_load(&uploads_failed) == 0);
  CHECK_RC(quire_objstore_uploads_put(u, "bad key", "x", 1, 0, upload_done, NULL), QUIRE_EINVAL);
  quire_objstore_uploads_destroy(u);
  for (int i = 0; i < N; i++) {
    char key[64];
    snprintf(key, sizeof key, "up/%03d", i);
    check_get(key, bodies[i], sizeof bodies[i]);
  }
  CHECK_RC(quire_objstore_uploads_create(store, 0, 1, &u), QUIRE_EINVAL);
}

static void test_probe_and_stats(void) {
  int conditional = -1;
  CHECK_OK(quire_objstore_probe(store, &conditional));
  CHECKF(conditional == expect_conditional, "probe says conditional=%d, expected %d", conditional,
         expect_conditional);
  quire_objstore_list l;
  CHECK_OK(quire_objstore_list_keys(store, "quire-probe/", NULL, 10, &l));
  CHECK(l.count == 0); /* the probe cleaned up */
  quire_objstore_list_free(&l);
  quire_objstore_stats st;
  quire_objstore_stats_get(store, &st);
  CHECK(st.calls[QUIRE_OBJSTORE_OP_PUT] > 0 && st.calls[QUIRE_OBJSTORE_OP_GET] > 0);
  CHECK(st.attempts[QUIRE_OBJSTORE_OP_GET] > 0 &&
        st.attempts[QUIRE_OBJSTORE_OP_GET] <= st.calls[QUIRE_OBJSTORE_OP_GET]);
}

int main(int argc, char **argv) {
  test_seed();
  if (argc < 2) {
    fprintf(stderr, "usage: %s mem|file|file-notmpfile|URL [--no-conditional]\n", argv[0]);
    return 2;
  }
  char *dir = NULL;
  char url[4200];
  if (strcmp(argv[1], "mem") == 0) {
    snprintf(url, sizeof url, "mem://conformance");
  } else if (strcmp(argv[1], "file") == 0 || strcmp(argv[1], "file-notmpfile") == 0) {
    dir = test_tmpdir("objstore-conf");
    snprintf(url, sizeof url, "file://%s/store%s", dir, strcmp(argv[1], "file") ? "?tmpfile=0" : "");
  } else {
    snprintf(url, sizeof url, "%s", argv[1]);
  }
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--no-conditional") == 0) {
      expect_conditional = 0;
    } else if (strcmp(argv[i], "--walk-list-order") == 0) {
      walk_list_order = 1;
    } else if (strcmp(argv[i], "--no-atomic-replace") == 0) {
      atomic_replace = 0;
    } else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  printf("store: %s\n", url);
  CHECK_OK(quire_objstore_open(url, &store));
  CHECK(strcmp(quire_objstore_url(store), url) == 0);
  test_basic();
  test_ranges();
  test_list();
  test_bad_keys();
  test_writer();
  test_large_stream();
  test_threads_race();
  test_atomic_replace();
  test_upload_pool();
  test_probe_and_stats();
  quire_objstore_close(store);
  if (dir) {
    test_rmtree(dir);
    free(dir);
  }
  return test_done("objstore conformance");
}
