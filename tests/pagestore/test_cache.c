/* Segment disk cache: budget never exceeded under random workloads, pinned
 * entries never evicted or changed, mapping pool bounded, full-of-pins gives
 * EUNAVAILABLE instead of a hang, restart resumes, corrupt files are dropped,
 * concurrent readers and writers (TSan). */
#include "test.h"
#include "pagestore/cache.h"
#include "util/util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

/* Deterministic contents: 8-byte XXH3 of the rest, then bytes from the sid. */
static uint8_t *make_bytes(const quire_gid *sid, size_t len) {
  uint8_t *b = malloc(len);
  uint64_t x = quire__xxh3(sid->b, 16) | 1;
  for (size_t i = 8; i < len; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b[i] = (uint8_t)x;
  }
  st_le64(b, quire__xxh3(b + 8, len - 8));
  return b;
}

static int valid_bytes(const uint8_t *b, size_t len, const quire_gid *sid, void *ctx) {
  (void)sid;
  (void)ctx;
  return len >= 8 && ld_le64(b) == quire__xxh3(b + 8, len - 8) ? 0 : -1;
}

static quire_gid sid_n(unsigned n) {
  quire_gid g;
  CHECK_OK(quire_gid_new_at(QUIRE_GID_SEGMENT, 1700000000000ull + n, &g));
  memset(g.b + 7, 0, 9);
  st_be32(g.b + 12, n);
  return g;
}

static size_t size_of(unsigned n) { return 4096 + (n * 7919u) % 30000; }

static void check_pin_contents(const ps_cache_pin *p, unsigned n) {
  quire_gid sid = sid_n(n);
  uint8_t *want = make_bytes(&sid, size_of(n));
  CHECK(p->len == size_of(n));
  CHECK(memcmp(p->data, want, p->len) == 0);
  free(want);
}

static int put_n(ps_cache *c, unsigned n) {
  quire_gid sid = sid_n(n);
  size_t len = size_of(n);
  uint8_t *b = make_bytes(&sid, len);
  int rc = ps__cache_put(c, &sid, b, len);
  free(b);
  return rc;
}

static ps_cache *open_cache(const char *dir, uint64_t budget, unsigned maps) {
  ps_cache_options o = {
      .dir = dir, .budget_bytes = budget, .max_mappings = maps, .wait_ms = 20, .validate = valid_bytes};
  ps_cache *c;
  CHECK_OK(ps__cache_open(&o, &c));
  return c;
}

static void test_basics(const char *dir) {
  ps_cache *c = open_cache(dir, 1 << 20, 4);
  ps_cache_pin p;
  quire_gid s1 = sid_n(1);
  CHECK_RC(ps__cache_pin(c, &s1, &p), QUIRE_ENOTFOUND);
  CHECK_OK(put_n(c, 1));
  CHECK_RC(put_n(c, 1), QUIRE_EEXIST);
  CHECK_OK(ps__cache_pin(c, &s1, &p));
  check_pin_contents(&p, 1);
  ps__cache_unpin(&p);
  ps__cache_unpin(&p); /* no-op */

  /* Slot misuse: short write, write past the reservation, abandon. */
  ps_cache_slot s;
  quire_gid s2 = sid_n(2);
  CHECK_OK(ps__cache_reserve(c, &s2, 100, &s));
  ps_cache_slot other;
  CHECK_RC(ps__cache_reserve(c, &s2, 100, &other), QUIRE_EEXIST); /* being written */
  CHECK_RC(ps__cache_pin(c, &s2, &p), QUIRE_ENOTFOUND);           /* not readable yet */
  uint8_t big[200] = {0};
  CHECK_RC(ps__cache_slot_write(&s, big, 200), QUIRE_ETOOLARGE);
  CHECK_RC(ps__cache_publish(&s), QUIRE_EINVAL); /* 0 of 100 bytes */
  CHECK(s.entry == NULL);
  CHECK_OK(ps__cache_reserve(c, &s2, 100, &s));
  ps__cache_abandon(&s);
  CHECK_RC(ps__cache_reserve(c, &s2, 0, &s), QUIRE_EINVAL);
  CHECK_RC(ps__cache_reserve(c, &s2, 2 << 20, &s), QUIRE_ETOOLARGE);
  ps_cache_stats st;
  ps__cache_stats(c, &st);
  CHECK(st.entries == 1 && st.bytes == size_of(1) && st.pinned == 0);

  /* Invalidate while pinned: still readable until unpinned, then gone. */
  CHECK_OK(ps__cache_pin(c, &s1, &p));
  CHECK_OK(ps__cache_invalidate(c, &s1));
  CHECK_RC(ps__cache_invalidate(c, &s1), QUIRE_ENOTFOUND);
  ps_cache_pin q;
  CHECK_RC(ps__cache_pin(c, &s1, &q), QUIRE_ENOTFOUND);
  check_pin_contents(&p, 1);
  ps__cache_stats(c, &st);
  CHECK(st.bytes == size_of(1)); /* its file still exists */
  CHECK_OK(put_n(c, 1));         /* a fresh copy can be written meanwhile */
  ps__cache_unpin(&p);
  ps__cache_stats(c, &st);
  CHECK(st.bytes == size_of(1) && st.entries == 1);
  CHECK_OK(ps__cache_pin(c, &s1, &p));
  check_pin_contents(&p, 1);
  ps__cache_unpin(&p);
  ps__cache_close(c);
}

static void test_pressure(const char *dir) {
  /* Budget for ~3 entries of the largest size; 2 mappings. */
  ps_cache *c = open_cache(dir, 3 * 34096, 2);
  ps_cache_pin a, b, d;
  CHECK_OK(put_n(c, 10));
  CHECK_OK(put_n(c, 11));
  CHECK_OK(put_n(c, 12));
  quire_gid s10 = sid_n(10), s11 = sid_n(11), s12 = sid_n(12);
  CHECK_OK(ps__cache_pin(c, &s10, &a));
  CHECK_OK(ps__cache_pin(c, &s11, &b));
  /* Both mappings pinned: a third pin waits wait_ms, then EUNAVAILABLE. */
  CHECK_RC(ps__cache_pin(c, &s12, &d), QUIRE_EUNAVAILABLE);
  ps__cache_unpin(&b);
  CHECK_OK(ps__cache_pin(c, &s12, &d)); /* unmaps 11 */
  check_pin_contents(&d, 12);
  ps_cache_stats st;
  ps__cache_stats(c, &st);
  CHECK(st.mappings == 2 && st.unmaps == 1);
  /* With 10 and 12 pinned, writing more evicts unpinned entries only. */
  for (unsigned n = 13; n < 20; n++) CHECK_OK(put_n(c, n));
  ps__cache_stats(c, &st);
  CHECK(st.bytes <= st.budget && st.evictions >= 1);
  /* A reservation that only fits if pinned bytes went: EUNAVAILABLE. */
  uint64_t pinned_bytes = size_of(10) + size_of(12);
  ps_cache_slot slot;
  quire_gid big = sid_n(99);
  CHECK_RC(ps__cache_reserve(c, &big, st.budget - pinned_bytes + 1, &slot), QUIRE_EUNAVAILABLE);
  CHECK_OK(ps__cache_reserve(c, &big, st.budget - pinned_bytes, &slot));
  ps__cache_abandon(&slot);
  check_pin_contents(&a, 10);
  check_pin_contents(&d, 12);
  CHECK_RC(ps__cache_pin(c, &s11, &b), QUIRE_ENOTFOUND);
  ps__cache_unpin(&a);
  ps__cache_unpin(&d);
  CHECK_OK(put_n(c, 30));
  ps__cache_close(c);
}

static void test_random(const char *dir) {
  uint64_t budget = 8 * 20000;
  ps_cache *c = open_cache(dir, budget, 3);
  ps_cache_pin pins[4] = {0};
  unsigned pinned_n[4] = {0};
  int steps = test_long_mode() ? 20000 : 3000;
  for (int i = 0; i < steps; i++) {
    unsigned n = 100 + (unsigned)test_rand_below(40);
    quire_gid sid = sid_n(n);
    switch (test_rand_below(4)) {
    case 0: {
      int rc = put_n(c, n);
      CHECKF(rc == 0 || rc == QUIRE_EEXIST || rc == QUIRE_EUNAVAILABLE, "put: %s", quire_errname(rc));
      break;
    }
    case 1: {
      int k = (int)test_rand_below(4);
      if (pins[k].entry) break;
      int rc = ps__cache_pin(c, &sid, &pins[k]);
      CHECKF(rc == 0 || rc == QUIRE_ENOTFOUND || rc == QUIRE_EUNAVAILABLE, "pin: %s", quire_errname(rc));
      if (rc == 0) pinned_n[k] = n;
      break;
    }
    case 2: {
      int k = (int)test_rand_below(4);
      ps__cache_unpin(&pins[k]);
      break;
    }
    default:
      if (test_rand_below(4) == 0) ps__cache_invalidate(c, &sid);
    }
    ps_cache_stats st;
    ps__cache_stats(c, &st);
    CHECK(st.bytes <= budget);
    CHECK(st.mappings <= 3);
    for (int k = 0; k < 4; k++)
      if (pins[k].entry) check_pin_contents(&pins[k], pinned_n[k]);
  }
  for (int k = 0; k < 4; k++) ps__cache_unpin(&pins[k]);
  ps__cache_close(c);
}

static void test_restart(const char *dir) {
  ps_cache *c = open_cache(dir, 1 << 20, 4);
  for (unsigned n = 200; n < 210; n++) CHECK_OK(put_n(c, n));
  ps__cache_close(c);

  /* Corrupt one file, leave a temp leftover and a stranger, then reopen. */
  quire_gid bad = sid_n(203);
  char sidtext[23], path[4096];
  quire_gid_format(&bad, sidtext);
  DIR *d = opendir(dir);
  struct dirent *de;
  int flipped = 0;
  while ((de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, sidtext, 22) == 0) {
      snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
      int fd = open(path, O_RDWR);
      uint8_t byte;
      CHECK(pread(fd, &byte, 1, 100) == 1);
      byte ^= 0x40;
      CHECK(pwrite(fd, &byte, 1, 100) == 1);
      close(fd);
      flipped++;
    }
  }
  closedir(d);
  CHECK(flipped == 1);
  snprintf(path, sizeof path, "%s/.tmp-0000000000000001-abcdef", dir);
  int fd = open(path, O_CREAT | O_WRONLY, 0644);
  CHECK(fd >= 0 && write(fd, "partial", 7) == 7);
  close(fd);

  c = open_cache(dir, 1 << 20, 4);
  ps_cache_stats st;
  ps__cache_stats(c, &st);
  CHECK(st.entries == 9 && st.dropped_on_open == 1);
  CHECK(access(path, F_OK) != 0); /* temp leftover removed */
  ps_cache_pin p;
  CHECK_RC(ps__cache_pin(c, &bad, &p), QUIRE_ENOTFOUND);
  for (unsigned n = 200; n < 210; n++) {
    if (n == 203) continue;
    quire_gid sid = sid_n(n);
    CHECK_OK(ps__cache_pin(c, &sid, &p));
    check_pin_contents(&p, n);
    ps__cache_unpin(&p);
  }
  CHECK_OK(put_n(c, 203)); /* refetched copy */
  ps__cache_close(c);

  /* Reopen with a smaller budget: trimmed, oldest first. */
  c = open_cache(dir, 3 * 34096, 4);
  ps__cache_stats(c, &st);
  CHECK(st.bytes <= 3 * 34096 && st.entries >= 2 && st.entries < 10);
  quire_gid newest = sid_n(203);
  CHECK_OK(ps__cache_pin(c, &newest, &p));
  ps__cache_unpin(&p);
  ps__cache_close(c);
}

/* Threads put, pin, verify and invalidate the same small set of ids. */
static ps_cache *shared;
static atomic_int errors;
static void *worker(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 7;
  for (int i = 0; i < 1500; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    unsigned n = 300 + (unsigned)(s % 24);
    quire_gid sid = sid_n(n);
    int op = (int)((s >> 20) % 8);
    if (op < 2) {
      int rc = put_n(shared, n);
      if (rc && rc != QUIRE_EEXIST && rc != QUIRE_EUNAVAILABLE) atomic_fetch_add(&errors, 1);
    } else if (op < 7) {
      ps_cache_pin p;
      int rc = ps__cache_pin(shared, &sid, &p);
      if (rc == 0) {
        quire_gid sid2 = sid_n(n);
        uint8_t *want = make_bytes(&sid2, size_of(n));
        if (p.len != size_of(n) || memcmp(p.data, want, p.len) != 0) atomic_fetch_add(&errors, 1);
        free(want);
        ps__cache_unpin(&p);
      } else if (rc != QUIRE_ENOTFOUND && rc != QUIRE_EUNAVAILABLE) {
        atomic_fetch_add(&errors, 1);
      }
    } else {
      ps__cache_invalidate(shared, &sid);
    }
    ps_cache_stats st;
    ps__cache_stats(shared, &st);
    if (st.bytes > st.budget || st.mappings > 4) atomic_fetch_add(&errors, 1);
  }
  return NULL;
}

static void test_threads(const char *dir) {
  shared = open_cache(dir, 10 * 34096, 4);
  pthread_t th[6];
  for (uintptr_t i = 0; i < 6; i++) CHECK(pthread_create(&th[i], NULL, worker, (void *)(i + 1)) == 0);
  for (int i = 0; i < 6; i++) pthread_join(th[i], NULL);
  CHECK(atomic_load(&errors) == 0);
  ps_cache_stats st;
  ps__cache_stats(shared, &st);
  CHECK(st.pinned == 0 && st.bytes <= st.budget);
  ps__cache_close(shared);
}

int main(void) {
  test_seed();
  char *root = test_tmpdir("cache");
  char dir[4096];
  const char *parts[] = {"basics", "pressure", "random", "restart", "threads"};
  void (*fns[])(const char *) = {test_basics, test_pressure, test_random, test_restart, test_threads};
  for (int i = 0; i < 5; i++) {
    snprintf(dir, sizeof dir, "%s/%s", root, parts[i]);
    fns[i](dir);
  }
  CHECK(quire__never_count() == 0);
  test_rmtree(root);
  free(root);
  return test_done("pagestore_cache");
}
