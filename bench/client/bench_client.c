/*
 * bench/client/bench_client.c — the client runtime against the references
 * measured in the same run (issue #13):
 *
 *   local reads     quire_reader_read of local pages vs lsm_get of the same
 *                   keys in the same file vs pread of a plain file;
 *   local commits   one-page commits, FULL and NORMAL, vs SQLite's own
 *                   commit of a 4 KiB row on the same disk (rollback journal
 *                   and WAL, synchronous FULL and NORMAL);
 *   cold reads      a 256 MiB volume read by a fresh client, sequentially
 *                   and at random: round trips, pages fetched per page read,
 *                   MiB/s, vs raw read_pages of the same pages;
 *   push            MiB/s of pushing 256 MiB vs raw write_pages of the same;
 *   replication     a commit on A until readable on B, both with autosync.
 *
 * Services run in this process on loopback over a file:// store.
 * QUIRE_BENCH_QUICK=1: 64 MiB and fewer iterations. QUIRE_BENCH_DIR: where.
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metastore/client.h"
#include "metastore/service.h"
#include "pagestore/client.h"
#include "pagestore/service.h"
#include "quire/lsm.h"
#include "quire/quire.h"
#include "util/util.h"

static int quick;
static char root[512], ms_url[64], ps_url[64];
static quire_ms_service *ms;
static quire_ps_service *ps;

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_client: %s: %s (%s)\n", what, quire_strerror(rc), quire_errmsg());
  exit(1);
}
#define TRY(what, expr)          \
  do {                           \
    int rc_ = (expr);            \
    if (rc_) die((what), rc_);   \
  } while (0)

static double now_s(void) { return (double)quire__mono_ns() / 1e9; }
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double pct(double *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[(int)(p * (n - 1) + 0.5)];
}
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}
static void fill(uint8_t *p, uint64_t tag) {
  uint64_t x = tag * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < QUIRE_PAGE_SIZE; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy(p + i, &x, 8);
  }
}

static void services_start(void) {
  char store[600], mcat[600], pcat[600], cache[600];
  snprintf(store, sizeof store, "file://%s/objects", root);
  snprintf(mcat, sizeof mcat, "%s/ms.catalog", root);
  snprintf(pcat, sizeof pcat, "%s/ps.catalog", root);
  snprintf(cache, sizeof cache, "%s/cache", root);
  struct quire_ms_settings mss = {.listen = "127.0.0.1:0", .store_url = store, .catalog_path = mcat};
  TRY("metastore", quire__ms_service_open(&mss, &ms));
  snprintf(ms_url, sizeof ms_url, "http://127.0.0.1:%u", quire__ms_service_port(ms));
  struct quire_ps_settings pss = {.listen = "127.0.0.1:0"};
  pss.ps.store_url = store;
  pss.ps.metastore_url = ms_url;
  pss.ps.catalog_path = pcat;
  pss.ps.cache_dir = cache;
  pss.ps.cache_bytes = 1ull << 30;
  TRY("pagestore", quire__ps_service_open(&pss, &ps));
  snprintf(ps_url, sizeof ps_url, "http://127.0.0.1:%u", quire__ps_service_port(ps));
}

static quire_client *client(const char *name, int remote, int sync_mode, int autosync) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = dir;
  if (remote) {
    o.metastore_url = ms_url;
    o.pagestore_url = ps_url;
  }
  o.sync_mode = sync_mode;
  o.autosync = autosync;
  o.cache_bytes = 256u << 20;
  o.call_timeout_ms = 120000;
  o.fetch_timeout_ms = 120000;
  quire_client *c;
  TRY("client open", quire_client_open(&o, &c));
  return c;
}

static void write_volume(quire_volume *v, uint32_t npages) {
  quire_writer *w;
  uint8_t page[QUIRE_PAGE_SIZE];
  TRY("writer", quire_writer_open(v, &w));
  for (uint32_t i = 1; i <= npages; i++) {
    fill(page, i);
    TRY("write", quire_writer_write(w, i, page));
  }
  TRY("commit", quire_writer_commit(w, NULL));
}

/* ---- local reads ------------------------------------------------------------ */

static void bench_local_reads(void) {
  uint32_t npages = quick ? 4096 : 16384, nreads = quick ? 20000 : 200000;
  quire_client *c = client("local", 0, QUIRE_SYNC_NORMAL, 0);
  quire_volume *v;
  TRY("volume", quire_volume_open(c, "local", QUIRE_CREATE, &v));
  write_volume(v, npages);
  quire_gid vid;
  quire_volume_vid(v, &vid);
  uint32_t *idx = malloc(nreads * sizeof *idx);
  for (uint32_t i = 0; i < nreads; i++) idx[i] = 1 + (uint32_t)(rnd() % npages);
  uint8_t page[QUIRE_PAGE_SIZE];
  quire_reader *r;
  TRY("reader", quire_reader_open(v, &r));
  quire_lsn lsn = quire_reader_lsn(r);
  for (uint32_t i = 0; i < nreads / 10; i++) TRY("read", quire_reader_read(r, idx[i], page)); /* warm */
  double t0 = now_s();
  for (uint32_t i = 0; i < nreads; i++) TRY("read", quire_reader_read(r, idx[i], page));
  double quire_ns = (now_s() - t0) * 1e9 / nreads;
  quire_reader_close(r);
  quire_volume_close(v);
  quire_client_close(c);
  /* lsm_get of the same keys in the same file. */
  char path[700];
  snprintf(path, sizeof path, "%s/local/local.lsm", root);
  lsm_options lo;
  lsm_options_init(&lo);
  lo.cache_bytes = 256u << 20;
  lsm_db *db;
  TRY("lsm open", lsm_open(path, &lo, &db));
  uint8_t key[29];
  key[0] = 'P';
  memcpy(key + 1, vid.b, 16);
  for (int pass = 0; pass < 2; pass++) {
    t0 = now_s();
    for (uint32_t i = 0; i < (pass ? nreads : nreads / 10); i++) {
      st_be32(key + 17, idx[i]);
      st_be64(key + 21, lsn);
      lsm_value val;
      TRY("lsm_get", lsm_get(db, key, sizeof key, &val));
      memcpy(page, val.data, QUIRE_PAGE_SIZE);
      lsm_value_release(&val);
    }
  }
  double lsm_ns = (now_s() - t0) * 1e9 / nreads;
  lsm_close(db);
  /* pread of a plain file of the same pages. */
  snprintf(path, sizeof path, "%s/plain.img", root);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  for (uint32_t i = 1; i <= npages; i++) {
    fill(page, i);
    if (write(fd, page, sizeof page) != (ssize_t)sizeof page) die("write plain", -1);
  }
  for (int pass = 0; pass < 2; pass++) {
    t0 = now_s();
    for (uint32_t i = 0; i < (pass ? nreads : nreads / 10); i++)
      if (pread(fd, page, sizeof page, (off_t)(idx[i] - 1) * QUIRE_PAGE_SIZE) != (ssize_t)sizeof page)
        die("pread", -1);
  }
  double pread_ns = (now_s() - t0) * 1e9 / nreads;
  close(fd);
  free(idx);
  printf("local reads (%u random 4 KiB pages of %u, warm)\n", nreads, npages);
  printf("  %-28s %9.0f ns/read\n", "quire_reader_read", quire_ns);
  printf("  %-28s %9.0f ns/read   quire/lsm_get %.2fx\n", "lsm_get (same keys, file)", lsm_ns, quire_ns / lsm_ns);
  printf("  %-28s %9.0f ns/read   quire/pread   %.2fx\n", "pread (plain file)", pread_ns, quire_ns / pread_ns);
}

/* ---- local commits ------------------------------------------------------------ */

static double quire_commit_us(int mode, int n) {
  char name[32];
  snprintf(name, sizeof name, "commit%d", mode);
  quire_client *c = client(name, 0, mode, 0);
  quire_volume *v;
  TRY("volume", quire_volume_open(c, "c", QUIRE_CREATE, &v));
  uint8_t page[QUIRE_PAGE_SIZE];
  double *t = malloc((size_t)n * sizeof *t);
  for (int i = 0; i < n; i++) {
    fill(page, (uint64_t)i + 1);
    double t0 = now_s();
    quire_writer *w;
    TRY("writer", quire_writer_open(v, &w));
    TRY("write", quire_writer_write(w, 1 + (uint32_t)(rnd() % 1000), page));
    TRY("commit", quire_writer_commit(w, NULL));
    t[i] = (now_s() - t0) * 1e6;
  }
  double p50 = pct(t, n, 0.5);
  free(t);
  quire_volume_close(v);
  quire_client_close(c);
  return p50;
}

static double sqlite_commit_us(const char *journal, const char *sync, int n) {
  char path[700], sql[256];
  snprintf(path, sizeof path, "%s/sqlite-%s-%s.db", root, journal, sync);
  unlink(path);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die("sqlite open", -1);
  snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s; PRAGMA synchronous=%s; CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);",
           journal, sync);
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) die("sqlite setup", -1);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t VALUES(?, ?)", -1, &st, NULL);
  uint8_t page[QUIRE_PAGE_SIZE];
  double *t = malloc((size_t)n * sizeof *t);
  for (int i = 0; i < n; i++) {
    fill(page, (uint64_t)i + 1);
    double t0 = now_s();
    sqlite3_bind_int(st, 1, 1 + (int)(rnd() % 1000));
    sqlite3_bind_blob(st, 2, page, sizeof page, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) die("sqlite insert", -1);
    sqlite3_reset(st);
    t[i] = (now_s() - t0) * 1e6;
  }
  double p50 = pct(t, n, 0.5);
  free(t);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return p50;
}

static void bench_commits(void) {
  int n = quick ? 200 : 1000;
  printf("local commits (one 4 KiB page each, p50 latency)\n");
  const char *names[] = {"FULL", "NORMAL"};
  for (int m = 0; m < 2; m++) {
    double q = quire_commit_us(m == 0 ? QUIRE_SYNC_FULL : QUIRE_SYNC_NORMAL, n);
    double sj = sqlite_commit_us("DELETE", names[m], n), sw = sqlite_commit_us("WAL", names[m], n);
    printf("  %-6s quire %8.1f us   sqlite rollback %8.1f us (quire/sqlite %.2fx)   sqlite WAL %8.1f us (%.2fx)\n",
           names[m], q, sj, q / sj, sw, q / sw);
  }
}

/* ---- remote: push, cold reads, replication ------------------------------------- */

struct rp_ctx {
  uint64_t pages;
};
static int count_page(void *ctx, quire_pageidx idx, const uint8_t *page) {
  (void)idx, (void)page;
  ((struct rp_ctx *)ctx)->pages++;
  return 0;
}

static void bench_remote(void) {
  uint32_t npages = quick ? 16384 : 65536;
  double mib = npages * 4096.0 / (1 << 20);
  quire_client *a = client("push", 1, QUIRE_SYNC_NORMAL, 0);
  quire_volume *va;
  TRY("volume", quire_volume_open(a, "big", QUIRE_CREATE, &va));
  write_volume(va, npages);
  double t0 = now_s();
  TRY("push", quire_volume_push(va, 0));
  double push_s = now_s() - t0;
  quire_gid vid;
  quire_volume_vid(va, &vid);
  char vtext[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&vid, vtext);
  /* raw write_pages of the same bytes, the same batch size */
  quire_psclient *psc;
  TRY("psclient", quire__psclient_open(ps_url, NULL, &psc));
  quire_gid raw_vid;
  quire_gid_new(QUIRE_GID_VOLUME, &raw_vid);
  uint32_t batch = 1024;
  uint8_t *buf = malloc((size_t)batch * QUIRE_PAGE_SIZE);
  quire_pageidx *idx = malloc(batch * sizeof *idx);
  const uint8_t **pages = malloc(batch * sizeof *pages);
  t0 = now_s();
  for (uint32_t first = 1; first <= npages; first += batch) {
    for (uint32_t i = 0; i < batch; i++) {
      idx[i] = first + i;
      pages[i] = buf + (size_t)i * QUIRE_PAGE_SIZE;
      fill(buf + (size_t)i * QUIRE_PAGE_SIZE, first + i);
    }
    struct quire_ps_written *segs;
    size_t nsegs;
    TRY("write_pages", quire__psclient_write_pages(psc, &raw_vid, idx, pages, batch, NULL, &segs, &nsegs));
    quire__psclient_written_free(segs, nsegs);
  }
  double raw_push_s = now_s() - t0;
  printf("push of %.0f MiB (one local commit)\n", mib);
  printf("  quire_volume_push %8.1f MiB/s   raw write_pages %8.1f MiB/s   ratio %.2fx\n", mib / push_s,
         mib / raw_push_s, (mib / push_s) / (mib / raw_push_s));

  /* cold sequential and random reads by fresh clients */
  uint8_t page[QUIRE_PAGE_SIZE];
  const char *names[] = {"sequential", "random"};
  for (int pat = 0; pat < 2; pat++) {
    char name[32];
    snprintf(name, sizeof name, "cold%d", pat);
    quire_client *b = client(name, 1, QUIRE_SYNC_NORMAL, 0);
    quire_volume *vb;
    TRY("volume", quire_volume_open(b, vtext, 0, &vb));
    quire_reader *r;
    TRY("reader", quire_reader_open(vb, &r));
    uint32_t nreads = pat == 0 ? npages : (quick ? 500 : 2000);
    t0 = now_s();
    for (uint32_t i = 0; i < nreads; i++)
      TRY("read", quire_reader_read(r, pat == 0 ? i + 1 : 1 + (uint32_t)(rnd() % npages), page));
    double s = now_s() - t0;
    quire_reader_close(r);
    quire_stats st;
    quire_volume_stats(vb, &st);
    printf("cold %-10s %6u reads: %5llu round trips, %.3f pages fetched per page read, %8.1f MiB/s read, "
           "%.1f us/read\n",
           names[pat], nreads, (unsigned long long)st.fetch_round_trips, (double)st.fetch_pages / nreads,
           nreads * 4096.0 / (1 << 20) / s, s * 1e6 / nreads);
    quire_volume_close(vb);
    quire_client_close(b);
  }
  /* raw read_pages of the whole volume in 1024-page requests; and single pages */
  struct rp_ctx rc = {0};
  t0 = now_s();
  for (uint32_t first = 1; first <= npages; first += 1024) {
    splinter_t *want;
    splinter_new(&want);
    splinter_insert_range(want, first, first + 1023);
    splinter_t *missing;
    TRY("read_pages", quire__psclient_read_pages(psc, &vid, 1, want, NULL, count_page, &rc, &missing));
    splinter_free(missing);
    splinter_free(want);
  }
  double raw_seq = now_s() - t0;
  uint32_t nsingle = quick ? 500 : 2000;
  t0 = now_s();
  for (uint32_t i = 0; i < nsingle; i++) {
    splinter_t *want, *missing;
    splinter_new(&want);
    splinter_insert(want, 1 + (uint32_t)(rnd() % npages));
    TRY("read_pages", quire__psclient_read_pages(psc, &vid, 1, want, NULL, count_page, &rc, &missing));
    splinter_free(missing);
    splinter_free(want);
  }
  double raw_rand = now_s() - t0;
  printf("raw read_pages: whole volume in 1024-page requests %8.1f MiB/s; one random page per request %.1f us\n",
         mib / raw_seq, raw_rand * 1e6 / nsingle);
  quire__psclient_close(psc);
  free(buf);
  free(idx);
  free(pages);
  quire_volume_close(va);
  quire_client_close(a);

  /* replication lag through autosync */
  quire_client *ca = client("lagA", 1, QUIRE_SYNC_NORMAL, 1), *cb = client("lagB", 1, QUIRE_SYNC_NORMAL, 1);
  quire_volume *la, *lb;
  TRY("volume", quire_volume_open(ca, "lag", QUIRE_CREATE, &la));
  write_volume(la, 4);
  TRY("wait", quire_volume_wait(la, 1, 30000));
  quire_volume_vid(la, &vid);
  quire_gid_format(&vid, vtext);
  TRY("volume", quire_volume_open(cb, vtext, 0, &lb));
  int n = quick ? 50 : 200;
  double *lag = malloc((size_t)n * sizeof *lag);
  for (int i = 0; i < n; i++) {
    t0 = now_s();
    quire_writer *w;
    fill(page, (uint64_t)i + 100);
    TRY("writer", quire_writer_open(la, &w));
    TRY("write", quire_writer_write(w, 1, page));
    TRY("commit", quire_writer_commit(w, NULL));
    TRY("wait", quire_volume_wait(lb, (quire_lsn)i + 2, 30000));
    lag[i] = (now_s() - t0) * 1e3;
  }
  printf("replication lag (commit on A until readable on B, autosync): p50 %.1f ms, p99 %.1f ms (%d commits; "
         "Litestream's VFS polls every 1000 ms)\n",
         pct(lag, n, 0.5), pct(lag, n, 0.99), n);
  free(lag);
  quire_volume_close(la);
  quire_volume_close(lb);
  quire_client_close(ca);
  quire_client_close(cb);
}

int main(void) {
  quick = getenv("QUIRE_BENCH_QUICK") != NULL;
  const char *base = getenv("QUIRE_BENCH_DIR");
  snprintf(root, sizeof root, "%s/quire-bench-client-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(root)) die("mkdtemp", -1);
  bench_local_reads();
  bench_commits();
  services_start();
  bench_remote();
  quire__ps_service_close(ps, 2000);
  quire__ms_service_close(ms, 2000);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "bench_client: could not remove %s\n", root);
  return 0;
}
