/*
 * bench/pagestore/bench_pagestore.c — the pagestore over real HTTP on
 * loopback, beside the physical references measured in the same run.
 *
 *   write_pages: MiB/s for 1 MiB batches (8 concurrent writers, one volume
 *                each) and ~16 MiB batches (one writer), end to end (the
 *                answer means durable), against the store's raw put of the
 *                same bytes (16 MiB objects);
 *   read_pages:  p50/p99 latency and MiB/s for 1, 16 and 256 pages from a
 *                warm cache and from cold segments (not cached: ranged or
 *                whole GETs), against reading the same bytes straight from
 *                the cached segment files (pread, page cache warm), and
 *                against the HTTP floor on the same server: a request the
 *                server thread answers itself (GET /health) and one a
 *                handler answers at once (read_pages with a body that does
 *                not decode: 400 from the handler worker).
 *
 * Stores: file:// (fsync on) and s3:// against s3rver (scripts/s3rver.sh;
 * skipped, loudly, when it cannot start). One untimed round of each write
 * workload warms the pagestore up first. The raw put is measured before
 * and after the write tests and averaged (a shared disk drifts), and both
 * are printed. Environment: QUIRE_BENCH_DIR, QUIRE_BENCH_QUICK=1 (fewer
 * iterations), QUIRE_BENCH_WRITES_ONLY=1 (skip the read tests).
 */
#include "metastore/client.h"
#include "net/http_client.h"
#include "metastore/service.h"
#include "pagestore/client.h"
#include "pagestore/ps_int.h"
#include "pagestore/service.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef QUIRE_SOURCE_DIR
#define QUIRE_SOURCE_DIR "."
#define QUIRE_BINARY_DIR "."
#endif

#define SEG_PAGES 256 /* pages per segment written for the read tests */
static int quick, iters, writes_only;
static char ms_url[64];
static quire_msclient *msc;

static double now_s(void) { return (double)quire__mono_ns() / 1e9; }
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double pct(double *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  int i = (int)(p * (n - 1) + 0.5);
  return v[i];
}
static void die(const char *what, int rc) {
  fprintf(stderr, "bench_pagestore: %s: %s (%s)\n", what, quire_strerror(rc), quire_errmsg());
  exit(1);
}

static uint8_t *page_bytes(size_t n) {
  uint8_t *b = malloc(n * QUIRE_PAGE_SIZE);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < n * QUIRE_PAGE_SIZE; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy(b + i, &x, 8);
  }
  return b;
}

/* ---- writes ----------------------------------------------------------------- */

struct wr {
  quire_psclient *c;
  quire_gid vid;
  size_t pages, batches;
  const uint8_t *data;
  uint64_t req_ns; /* summed latency of its requests, as the client saw it */
};

static _Atomic uint64_t client_req_ns; /* over all writers of the last write_mibs */

static void *writer(void *arg) {
  struct wr *w = arg;
  quire_pageidx *idx = malloc(w->pages * sizeof *idx);
  const uint8_t **pages = malloc(w->pages * sizeof *pages);
  for (size_t b = 0; b < w->batches; b++) {
    for (size_t i = 0; i < w->pages; i++) {
      idx[i] = (quire_pageidx)(b * w->pages + i + 1);
      pages[i] = w->data + i * QUIRE_PAGE_SIZE;
    }
    struct quire_ps_written *segs;
    size_t nsegs;
    uint64_t t0 = quire__mono_ns();
    int rc = quire__psclient_write_pages(w->c, &w->vid, idx, pages, w->pages, NULL, &segs, &nsegs);
    w->req_ns += quire__mono_ns() - t0;
    if (rc) die("write_pages", rc);
    quire__psclient_written_free(segs, nsegs);
  }
  free(idx);
  free(pages);
  return NULL;
}

static double write_mibs(quire_psclient *c, size_t pages, size_t batches, int writers, const uint8_t *data) {
  struct wr w[16];
  pthread_t t[16];
  double t0 = now_s();
  for (int i = 0; i < writers; i++) {
    w[i] = (struct wr){c, {{0}}, pages, batches, data, 0};
    quire_gid_new(QUIRE_GID_VOLUME, &w[i].vid);
    pthread_create(&t[i], NULL, writer, &w[i]);
  }
  client_req_ns = 0;
  for (int i = 0; i < writers; i++) {
    pthread_join(t[i], NULL);
    client_req_ns += w[i].req_ns;
  }
  double secs = now_s() - t0;
  return (double)pages * batches * writers * QUIRE_PAGE_SIZE / (1 << 20) / secs;
}

static double raw_put_mibs(const char *url, const uint8_t *data, int round) {
  quire_objstore *s;
  int rc = quire_objstore_open(url, &s);
  if (rc) die("open store", rc);
  int n = quick ? 4 : 12;
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    char key[64];
    snprintf(key, sizeof key, "raw/obj-%d-%d", round, i);
    if ((rc = quire_objstore_put(s, key, data, 16u << 20)) != 0) die("raw put", rc);
  }
  double mibs = 16.0 * n / (now_s() - t0);
  quire_objstore_close(s);
  return mibs;
}

/* Where the write time went between two snapshots: per request (decode,
 * copy) and per segment (the rest), in microseconds of wall time. */
static void print_timing(const char *what, const struct ps_write_timing *a, const struct ps_write_timing *b,
                         uint64_t client_ns) {
  double rq = (double)(b->requests - a->requests), sg = (double)(b->segments - a->segments);
  if (rq == 0 || sg == 0) return;
  printf("  where the time goes, %s: %.0f requests, %.0f segments of %.1f MiB avg (%.0f gathered)\n", what, rq,
         sg, (double)(b->bytes - a->bytes) / sg / (1 << 20), (double)(b->gathered - a->gathered));
  double serve = (double)(b->serve_ns - a->serve_ns) / rq / 1e3, total = (double)client_ns / rq / 1e3;
  printf("    per request: %.0f us end to end: %.0f us in the pagestore (body in -> answer), %.0f us outside it "
         "(client encode, loopback, HTTP receive, answer out)\n",
         total, serve, total - serve);
  printf("    in the pagestore, per request: decode %.0f us, place+copy+checksum %.0f us\n",
         (double)(b->decode_ns - a->decode_ns) / rq / 1e3, (double)(b->copy_ns - a->copy_ns) / rq / 1e3);
  printf("    in the pagestore, per segment: filling %.0f us, sealed->built %.0f us, build %.0f us, upload %.0f us, cache write "
         "%.0f us (beside the upload)\n",
         (double)(b->fill_ns - a->fill_ns) / sg / 1e3, (double)(b->queue_ns - a->queue_ns) / sg / 1e3,
         (double)(b->build_ns - a->build_ns) / sg / 1e3, (double)(b->upload_ns - a->upload_ns) / sg / 1e3,
         (double)(b->cache_ns - a->cache_ns) / sg / 1e3);
}

/* ---- reads ------------------------------------------------------------------ */

/* One volume with nseg segments of SEG_PAGES pages each, committed as one
 * commit per segment; page p of segment k is k*SEG_PAGES + p + 1. */
static void make_history(quire_psclient *c, const quire_gid *vid, int nseg, const uint8_t *data) {
  quire_pageidx idx[SEG_PAGES];
  const uint8_t *pages[SEG_PAGES];
  for (int k = 0; k < nseg; k++) {
    for (int i = 0; i < SEG_PAGES; i++) {
      idx[i] = (quire_pageidx)(k * SEG_PAGES + i + 1);
      pages[i] = data + (size_t)i * QUIRE_PAGE_SIZE;
    }
    struct quire_ps_written *segs;
    size_t nsegs;
    int rc = quire__psclient_write_pages(c, vid, idx, pages, SEG_PAGES, NULL, &segs, &nsegs);
    if (rc) die("write_pages (history)", rc);
    struct quire_commit_segment cs[8];
    for (size_t i = 0; i < nsegs; i++)
      cs[i] = (struct quire_commit_segment){segs[i].sid, segs[i].graft, (uint32_t)segs[i].graft_len};
    quire_gid client, commit;
    quire_gid_new(QUIRE_GID_CLIENT, &client);
    quire_gid_new(QUIRE_GID_COMMIT, &commit);
    struct quire_snapshot snap;
    rc = quire__msclient_commit(msc, vid, &client, &commit, (quire_lsn)k, (quire_pagecount)(nseg * SEG_PAGES),
                                cs, (uint32_t)nsegs, NULL, &snap);
    if (rc) die("commit", rc);
    quire__psclient_written_free(segs, nsegs);
  }
}

static int count_page(void *ctx, quire_pageidx idx, const uint8_t *page) {
  (void)idx;
  (void)page;
  ++*(int *)ctx;
  return 0;
}

struct lat {
  double p50_us, p99_us, mibs;
};

/* Reads n pages starting in segment seg_of(i) for each iteration i. */
static struct lat read_lat(quire_psclient *c, const quire_gid *vid, quire_lsn lsn, int n, int iterations,
                           int first_seg, int cold) {
  double *t = malloc(sizeof(double) * (size_t)iterations);
  double total = 0;
  for (int i = 0; i < iterations; i++) {
    int seg = cold ? first_seg + i : first_seg + i % 4;
    splinter_t *wanted, *missing;
    splinter_new(&wanted);
    splinter_insert_range(wanted, (uint32_t)(seg * SEG_PAGES + 1), (uint32_t)(seg * SEG_PAGES + n));
    int got = 0;
    double t0 = now_s();
    int rc = quire__psclient_read_pages(c, vid, lsn, wanted, NULL, count_page, &got, &missing);
    t[i] = now_s() - t0;
    total += t[i];
    if (rc) die("read_pages", rc);
    if (got != n) {
      fprintf(stderr, "bench_pagestore: read %d of %d pages\n", got, n);
      exit(1);
    }
    splinter_free(wanted);
    splinter_free(missing);
  }
  struct lat l = {pct(t, iterations, 0.5) * 1e6, pct(t, iterations, 0.99) * 1e6,
                  (double)n * iterations * QUIRE_PAGE_SIZE / (1 << 20) / total};
  free(t);
  return l;
}

/* The HTTP floor: p50/p99 of one request with no work behind it. */
static struct lat http_floor(quire_ps_service *svc, const char *method, const char *path, int iterations) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", quire__ps_service_port(svc));
  quire_http_client *h;
  int rc = quire__http_client_open(url, NULL, 1 << 20, &h);
  if (rc) die("http client", rc);
  quire_buf resp;
  quire__buf_init(&resp, 1 << 20);
  double *t = malloc(sizeof(double) * (size_t)iterations);
  static const uint8_t junk[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  int post = strcmp(method, "POST") == 0;
  for (int i = 0; i < iterations; i++) {
    int status = 0;
    double t0 = now_s();
    rc = quire__http_request(h, method, path, post ? "application/x-protobuf" : NULL, post ? junk : NULL,
                             post ? sizeof junk : 0, NULL, &status, &resp);
    t[i] = now_s() - t0;
    if (rc) die("http floor request", rc);
  }
  struct lat l = {pct(t, iterations, 0.5) * 1e6, pct(t, iterations, 0.99) * 1e6, 0};
  free(t);
  quire__buf_free(&resp);
  quire__http_client_destroy(h);
  return l;
}

/* The physical reference: pread n pages from the cached segment files. */
static struct lat disk_lat(const char *cache_dir, int n, int iterations) {
  DIR *d = opendir(cache_dir);
  char path[8400] = "";
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL)
    if (strstr(de->d_name, ".seg")) snprintf(path, sizeof path, "%s/%s", cache_dir, de->d_name);
  if (d) closedir(d);
  struct lat l = {0, 0, 0};
  int fd = path[0] ? open(path, O_RDONLY) : -1;
  if (fd < 0) return l;
  uint8_t *buf = malloc((size_t)n * QUIRE_PAGE_SIZE);
  double *t = malloc(sizeof(double) * (size_t)iterations), total = 0;
  for (int i = 0; i < iterations; i++) {
    double t0 = now_s();
    for (int p = 0; p < n; p++)
      if (pread(fd, buf + (size_t)p * QUIRE_PAGE_SIZE, QUIRE_PAGE_SIZE, (off_t)p * QUIRE_PAGE_SIZE) < 0)
        break;
    t[i] = now_s() - t0;
    total += t[i];
  }
  l = (struct lat){pct(t, iterations, 0.5) * 1e6, pct(t, iterations, 0.99) * 1e6,
                   (double)n * iterations * QUIRE_PAGE_SIZE / (1 << 20) / total};
  close(fd);
  free(buf);
  free(t);
  return l;
}

static quire_ps_service *start_ps(const char *store, const char *cache) {
  struct quire_ps_settings s = {.listen = "127.0.0.1:0", .threads = 4};
  s.ps.store_url = store;
  s.ps.metastore_url = ms_url;
  s.ps.catalog_path = ":memory:";
  s.ps.cache_dir = cache;
  quire_ps_service *svc;
  int rc = quire__ps_service_open(&s, &svc);
  if (rc) die("start pagestore", rc);
  return svc;
}

static quire_psclient *client(quire_ps_service *svc) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", quire__ps_service_port(svc));
  quire_psclient *c;
  int rc = quire__psclient_open(url, NULL, &c);
  if (rc) die("client", rc);
  return c;
}

static void bench_store(const char *name, const char *tag, const char *store, const char *dir,
                        const uint8_t *data) {
  char cache[4200], cache2[4200];
  snprintf(cache, sizeof cache, "%s/cache-%s", dir, tag);
  snprintf(cache2, sizeof cache2, "%s/cold-%s", dir, tag);
  printf("\n== %s\n", name);
  double raw0 = raw_put_mibs(store, data, 0);
  quire_ps_service *svc = start_ps(store, cache);
  quire_psclient *c = client(svc);
  size_t nb = quick ? 2 : 6;
  quire_pagestore *ps = quire__ps_service_pagestore(svc);
  /* Warm-up, not timed: one round of each, so the measured rounds see a
   * pagestore in its steady state (buffers, cache directory, connections). */
  write_mibs(c, 256, 1, 8, data);
  write_mibs(c, 4080, 1, 1, data);
  struct ps_write_timing t0, t1, t2;
  quire__ps_write_timing(ps, &t0);
  double w1 = write_mibs(c, 256, nb * 2, 8, data);
  quire__ps_write_timing(ps, &t1);
  uint64_t c1 = client_req_ns;
  double w16 = write_mibs(c, 4080, nb, 1, data);
  quire__ps_write_timing(ps, &t2);
  uint64_t c2 = client_req_ns;
  double raw1 = raw_put_mibs(store, data, 1), raw = (raw0 + raw1) / 2;
  printf("%-44s %10s %10s\n", "write_pages (durable on answer)", "MiB/s", "vs raw put");
  printf("%-44s %10.1f %10s\n", "  raw store put, 16 MiB objects (reference)", raw, "1.00");
  printf("%-44s %10.1f %10.2f\n", "    (before the writes)", raw0, raw0 / raw);
  printf("%-44s %10.1f %10.2f\n", "    (after the writes)", raw1, raw1 / raw);
  printf("%-44s %10.1f %10.2f\n", "  1 MiB batches, 8 writers", w1, w1 / raw);
  printf("%-44s %10.1f %10.2f\n", "  ~16 MiB batches (4080 pages), 1 writer", w16, w16 / raw);
  print_timing("1 MiB batches, 8 writers", &t0, &t1, c1);
  print_timing("~16 MiB batches, 1 writer", &t1, &t2, c2);

  if (writes_only) {
    quire__psclient_close(c);
    quire__ps_service_close(svc, 1000);
    return;
  }
  /* Reads. */
  int nseg = quick ? 24 : 64;
  quire_gid vid;
  quire_gid_new(QUIRE_GID_VOLUME, &vid);
  make_history(c, &vid, nseg, data);
  quire__psclient_close(c);
  quire__ps_service_close(svc, 1000);

  /* Cold: a fresh cache; every read touches a segment not read before. */
  quire_ps_service *cold = start_ps(store, cache2);
  c = client(cold);
  int per = quick ? 6 : (nseg - 4) / 3;
  struct lat cl[3];
  int sizes[3] = {1, 16, 256};
  for (int k = 0; k < 3; k++) cl[k] = read_lat(c, &vid, (quire_lsn)nseg, sizes[k], per, k * per, 1);
  /* Warm: the first segments again, now cached (256-page reads fetched whole). */
  struct lat wl[3];
  read_lat(c, &vid, (quire_lsn)nseg, 256, 4, 0, 0); /* make sure segments 0..3 are cached */
  for (int k = 0; k < 3; k++) wl[k] = read_lat(c, &vid, (quire_lsn)nseg, sizes[k], iters, 0, 0);
  struct lat dl[3];
  for (int k = 0; k < 3; k++) dl[k] = disk_lat(cache2, sizes[k], iters);
  struct lat floor_srv = http_floor(cold, "GET", "/health", iters);
  struct lat floor_handler = http_floor(cold, "POST", "/pagestore/v1/read_pages", iters);
  struct ps_stats st;
  quire__ps_stats(quire__ps_service_pagestore(cold), &st);
  printf("%-24s %10s %10s %10s %12s\n", "read_pages", "p50 us", "p99 us", "MiB/s", "vs disk MiB/s");
  for (int k = 0; k < 3; k++) {
    printf("  warm %3d pages         %10.0f %10.0f %10.1f %12.2f\n", sizes[k], wl[k].p50_us, wl[k].p99_us,
           wl[k].mibs, dl[k].mibs > 0 ? wl[k].mibs / dl[k].mibs : 0);
  }
  for (int k = 0; k < 3; k++)
    printf("  cold %3d pages         %10.0f %10.0f %10.1f %12s\n", sizes[k], cl[k].p50_us, cl[k].p99_us,
           cl[k].mibs, "");
  for (int k = 0; k < 3; k++)
    printf("  disk %3d pages (pread) %10.0f %10.0f %10.1f %12s\n", sizes[k], dl[k].p50_us, dl[k].p99_us,
           dl[k].mibs, "1.00");
  printf("  HTTP floor: GET /health    %6.0f %10.0f   (answered on the server thread)\n", floor_srv.p50_us,
         floor_srv.p99_us);
  printf("  HTTP floor: 400 from handler %4.0f %10.0f   (server thread -> handler worker -> server thread)\n",
         floor_handler.p50_us, floor_handler.p99_us);
  printf("  cold fetches: %llu whole segments, %llu partial (ranged GETs)\n",
         (unsigned long long)st.downloads_whole, (unsigned long long)st.downloads_partial);
  quire__psclient_close(c);
  quire__ps_service_close(cold, 1000);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  quick = getenv("QUIRE_BENCH_QUICK") && atoi(getenv("QUIRE_BENCH_QUICK"));
  iters = quick ? 50 : 300;
  writes_only = getenv("QUIRE_BENCH_WRITES_ONLY") && atoi(getenv("QUIRE_BENCH_WRITES_ONLY"));
  const char *base = getenv("QUIRE_BENCH_DIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/bench-pagestore.%d", base ? base : QUIRE_BINARY_DIR "/bench-tmp",
           (int)getpid());
  mkdir(base ? base : QUIRE_BINARY_DIR "/bench-tmp", 0755);
  mkdir(dir, 0755);
  uint8_t *data = page_bytes(4096);
  char store[4200], cmd[8600];
  snprintf(store, sizeof store, "file://%s/objects", dir);
  struct quire_ms_settings mss = {.listen = "127.0.0.1:0", .store_url = store, .catalog_path = ":memory:"};
  quire_ms_service *ms;
  int rc = quire__ms_service_open(&mss, &ms);
  if (rc) die("start metastore", rc);
  snprintf(ms_url, sizeof ms_url, "http://127.0.0.1:%u", quire__ms_service_port(ms));
  if ((rc = quire__msclient_open(ms_url, NULL, &msc)) != 0) die("metastore client", rc);
  printf("pagestore over loopback HTTP; metastore on %s; %s mode\n", ms_url, quick ? "quick" : "full");

  bench_store("file:// (fsync)", "file", store, dir, data);

  char s3dir[4200];
  snprintf(s3dir, sizeof s3dir, "%s/s3rver", dir);
  snprintf(cmd, sizeof cmd, "%s/scripts/s3rver.sh start %s >/dev/null", QUIRE_SOURCE_DIR, s3dir);
  if (system(cmd) == 0) {
    char portf[4300], port[16] = "";
    snprintf(portf, sizeof portf, "%s/port", s3dir);
    FILE *f = fopen(portf, "r");
    if (f && fgets(port, sizeof port, f)) port[strcspn(port, "\n")] = 0;
    if (f) fclose(f);
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    char url[256];
    snprintf(url, sizeof url, "s3://quire-test/bench?endpoint=http://127.0.0.1:%s&region=us-east-1", port);
    bench_store("s3:// (s3rver, loopback)", "s3", url, dir, data);
    snprintf(cmd, sizeof cmd, "%s/scripts/s3rver.sh stop %s", QUIRE_SOURCE_DIR, s3dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_pagestore: could not stop s3rver\n");
  } else {
    printf("\ns3:// SKIPPED: scripts/s3rver.sh could not start s3rver\n");
  }
  quire__msclient_close(msc);
  quire__ms_service_close(ms, 1000);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "bench_pagestore: could not remove %s\n", dir);
  free(data);
  return 0;
}
