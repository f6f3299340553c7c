/*
 * bench/objstore/bench_objstore.c — object-store throughput and latency
 * beside the physical reference on the same disk.
 *
 *   throughput: put and get of 16 MiB objects (MiB/s)
 *   latency:    put and get of 4 KiB objects (p50 / p99, microseconds)
 *
 * Stores: file:// (with fsync, the default), s3:// against s3rver started
 * here with scripts/s3rver.sh (skipped, loudly, if it cannot start).
 * Reference: dd (conv=fsync for writes) and cp of the same bytes in the same
 * directory, run as processes (so the 4 KiB dd latency includes a fork and
 * exec, printed for scale, not as a target), and an in-process
 * write+fsync / read of plain files, the floor under file://.
 *
 * Environment: QUIRE_BENCH_DIR (default: the build tree's bench-tmp),
 * QUIRE_BENCH_BIG (number of 16 MiB objects, default 16),
 * QUIRE_BENCH_SMALL (number of 4 KiB objects, default 400).
 */
#include "quire/objstore.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef QUIRE_SOURCE_DIR
#define QUIRE_SOURCE_DIR "."
#endif
#ifndef QUIRE_BINARY_DIR
#define QUIRE_BINARY_DIR "."
#endif

#define BIG (16u << 20)
#define SMALL 4096u

static int nbig = 16, nsmall = 400;
static uint8_t *big_buf, *small_buf;

static double now_s(void) { return (double)quire__mono_ns() / 1e9; }

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  int i = (int)(p * (n - 1) + 0.5);
  return v[i];
}

struct row {
  char name[64];
  double put_mibs, get_mibs;
  double put_p50, put_p99, get_p50, get_p99; /* microseconds */
};

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_objstore: %s: %s %s\n", what, quire_strerror(rc), quire_errmsg());
  exit(1);
}

static void bench_store(const char *url, const char *name, struct row *r) {
  quire_objstore *s;
  int rc = quire_objstore_open(url, &s);
  if (rc) die(url, rc);
  snprintf(r->name, sizeof r->name, "%s", name);
  char key[64];
  double t0 = now_s();
  for (int i = 0; i < nbig; i++) {
    snprintf(key, sizeof key, "big/%04d", i);
    big_buf[0] = (uint8_t)i;
    rc = quire_objstore_put(s, key, big_buf, BIG);
    if (rc) die("put 16 MiB", rc);
  }
  r->put_mibs = nbig * 16.0 / (now_s() - t0);
  t0 = now_s();
  for (int i = 0; i < nbig; i++) {
    snprintf(key, sizeof key, "big/%04d", i);
    uint8_t *data;
    size_t len;
    rc = quire_objstore_get(s, key, &data, &len);
    if (rc || len != BIG || data[0] != (uint8_t)i) die("get 16 MiB", rc ? rc : QUIRE_ECORRUPT);
    quire_objstore_free(data);
  }
  r->get_mibs = nbig * 16.0 / (now_s() - t0);
  double *lat = malloc((size_t)nsmall * sizeof *lat);
  for (int i = 0; i < nsmall; i++) {
    snprintf(key, sizeof key, "small/%05d", i);
    double t = now_s();
    rc = quire_objstore_put(s, key, small_buf, SMALL);
    lat[i] = (now_s() - t) * 1e6;
    if (rc) die("put 4 KiB", rc);
  }
  r->put_p50 = pct(lat, nsmall, 0.5);
  r->put_p99 = pct(lat, nsmall, 0.99);
  for (int i = 0; i < nsmall; i++) {
    snprintf(key, sizeof key, "small/%05d", i);
    uint8_t buf[SMALL];
    size_t got;
    double t = now_s();
    rc = quire_objstore_get_range(s, key, 0, SMALL, buf, &got);
    lat[i] = (now_s() - t) * 1e6;
    if (rc || got != SMALL) die("get 4 KiB", rc ? rc : QUIRE_ECORRUPT);
  }
  r->get_p50 = pct(lat, nsmall, 0.5);
  r->get_p99 = pct(lat, nsmall, 0.99);
  free(lat);
  quire_objstore_close(s);
}

static void run(const char *cmd) {
  int rc = system(cmd);
  if (rc != 0) {
    fprintf(stderr, "bench_objstore: '%s' failed (%d)\n", cmd, rc);
    exit(1);
  }
}

/* dd/cp of the same bytes in the same directory. */
static void bench_reference(const char *dir, struct row *dd, struct row *cp) {
  char src[4200], cmd[9000];
  snprintf(src, sizeof src, "%s/ref-src", dir);
  FILE *f = fopen(src, "wb");
  if (!f || fwrite(big_buf, 1, BIG, f) != BIG || fclose(f) != 0) die("write reference source", -errno);
  snprintf(cmd, sizeof cmd, "mkdir -p %s/ref", dir);
  run(cmd);
  snprintf(dd->name, sizeof dd->name, "dd (conv=fsync)");
  snprintf(cp->name, sizeof cp->name, "cp (no fsync)");
  double t0 = now_s();
  for (int i = 0; i < nbig; i++) {
    snprintf(cmd, sizeof cmd, "dd if=%s of=%s/ref/dd-%04d bs=1M conv=fsync status=none", src, dir, i);
    run(cmd);
  }
  dd->put_mibs = nbig * 16.0 / (now_s() - t0);
  t0 = now_s();
  for (int i = 0; i < nbig; i++) {
    snprintf(cmd, sizeof cmd, "dd if=%s/ref/dd-%04d of=/dev/null bs=1M status=none", dir, i);
    run(cmd);
  }
  dd->get_mibs = nbig * 16.0 / (now_s() - t0);
  t0 = now_s();
  for (int i = 0; i < nbig; i++) {
    snprintf(cmd, sizeof cmd, "cp %s %s/ref/cp-%04d", src, dir, i);
    run(cmd);
  }
  cp->put_mibs = nbig * 16.0 / (now_s() - t0);
  t0 = now_s();
  for (int i = 0; i < nbig; i++) {
    snprintf(cmd, sizeof cmd, "cp %s/ref/cp-%04d /dev/null", dir, i);
    run(cmd);
  }
  cp->get_mibs = nbig * 16.0 / (now_s() - t0);
  /* 4 KiB with dd: each a process (fork+exec dominates; shown for scale) */
  int n = nsmall < 100 ? nsmall : 100;
  double *lat = malloc((size_t)n * sizeof *lat);
  snprintf(cmd, sizeof cmd, "head -c 4096 %s > %s/ref/small-src", src, dir);
  run(cmd);
  for (int i = 0; i < n; i++) {
    snprintf(cmd, sizeof cmd, "dd if=%s/ref/small-src of=%s/ref/small-%04d bs=4k conv=fsync status=none", dir,
             dir, i);
    double t = now_s();
    run(cmd);
    lat[i] = (now_s() - t) * 1e6;
  }
  dd->put_p50 = pct(lat, n, 0.5);
  dd->put_p99 = pct(lat, n, 0.99);
  for (int i = 0; i < n; i++) {
    snprintf(cmd, sizeof cmd, "dd if=%s/ref/small-%04d of=/dev/null bs=4k status=none", dir, i);
    double t = now_s();
    run(cmd);
    lat[i] = (now_s() - t) * 1e6;
  }
  dd->get_p50 = pct(lat, n, 0.5);
  dd->get_p99 = pct(lat, n, 0.99);
  cp->put_p50 = cp->put_p99 = cp->get_p50 = cp->get_p99 = -1;
  free(lat);
}

/* In-process write + fsync of a new file / read of it: the floor a
 * file:// store stands on (no temp name, no link, no directory fsync). */
static void bench_raw(const char *dir, struct row *r) {
  char path[4300];
  snprintf(r->name, sizeof r->name, "raw write+fsync (in proc)");
  snprintf(path, sizeof path, "%s/raw", dir);
  mkdir(path, 0755);
  double t0 = now_s();
  for (int i = 0; i < nbig; i++) {
    snprintf(path, sizeof path, "%s/raw/big-%04d", dir, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(big_buf, 1, BIG, f) != BIG || fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
      die("raw write", -errno);
  }
  r->put_mibs = nbig * 16.0 / (now_s() - t0);
  uint8_t *buf = malloc(BIG);
  t0 = now_s();
  for (int i = 0; i < nbig; i++) {
    snprintf(path, sizeof path, "%s/raw/big-%04d", dir, i);
    FILE *f = fopen(path, "rb");
    if (!f || fread(buf, 1, BIG, f) != BIG) die("raw read", -errno);
    fclose(f);
  }
  r->get_mibs = nbig * 16.0 / (now_s() - t0);
  free(buf);
  double *lat = malloc((size_t)nsmall * sizeof *lat);
  for (int i = 0; i < nsmall; i++) {
    snprintf(path, sizeof path, "%s/raw/small-%05d", dir, i);
    double t = now_s();
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(small_buf, 1, SMALL, f) != SMALL || fflush(f) != 0 || fsync(fileno(f)) != 0 ||
        fclose(f) != 0)
      die("raw small write", -errno);
    lat[i] = (now_s() - t) * 1e6;
  }
  r->put_p50 = pct(lat, nsmall, 0.5);
  r->put_p99 = pct(lat, nsmall, 0.99);
  for (int i = 0; i < nsmall; i++) {
    snprintf(path, sizeof path, "%s/raw/small-%05d", dir, i);
    uint8_t small[SMALL];
    double t = now_s();
    FILE *f = fopen(path, "rb");
    if (!f || fread(small, 1, SMALL, f) != SMALL) die("raw small read", -errno);
    fclose(f);
    lat[i] = (now_s() - t) * 1e6;
  }
  r->get_p50 = pct(lat, nsmall, 0.5);
  r->get_p99 = pct(lat, nsmall, 0.99);
  free(lat);
}

static void print_row(const struct row *r, const struct row *ref) {
  printf("%-26s %9.0f %9.0f", r->name, r->put_mibs, r->get_mibs);
  if (r->put_p50 >= 0)
    printf(" %9.0f %9.0f %9.0f %9.0f", r->put_p50, r->put_p99, r->get_p50, r->get_p99);
  else
    printf(" %9s %9s %9s %9s", "-", "-", "-", "-");
  if (ref && r != ref)
    printf("   put %.2fx get %.2fx of dd", r->put_mibs / ref->put_mibs, r->get_mibs / ref->get_mibs);
  printf("\n");
}

int main(void) {
  const char *e = getenv("QUIRE_BENCH_BIG");
  if (e) nbig = atoi(e) > 0 ? atoi(e) : nbig;
  e = getenv("QUIRE_BENCH_SMALL");
  if (e) nsmall = atoi(e) > 0 ? atoi(e) : nsmall;
  const char *base = getenv("QUIRE_BENCH_DIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/bench-objstore-%ld", base && *base ? base : QUIRE_BINARY_DIR "/bench-tmp",
           (long)getpid());
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
  run(cmd);
  big_buf = malloc(BIG);
  small_buf = malloc(SMALL);
  for (size_t i = 0; i < BIG; i++) big_buf[i] = (uint8_t)(i * 2654435761u >> 13);
  memcpy(small_buf, big_buf, SMALL);

  struct row rows[5];
  int nrows = 0;
  printf("objstore: %d x 16 MiB objects, %d x 4 KiB objects, directory %s\n", nbig, nsmall, dir);
  bench_reference(dir, &rows[0], &rows[1]);
  nrows = 2;
  bench_raw(dir, &rows[nrows++]);
  char url[4300];
  snprintf(url, sizeof url, "file://%s/file-store", dir);
  bench_store(url, "file:// (fsync)", &rows[nrows++]);

  /* s3rver on loopback, storing in the same directory */
  char s3dir[4200], portfile[4300];
  snprintf(s3dir, sizeof s3dir, "%s/s3rver", dir);
  snprintf(cmd, sizeof cmd, "%s/scripts/s3rver.sh start %s >/dev/null", QUIRE_SOURCE_DIR, s3dir);
  if (system(cmd) == 0) {
    snprintf(portfile, sizeof portfile, "%s/port", s3dir);
    FILE *pf = fopen(portfile, "r");
    int port = 0;
    if (pf && fscanf(pf, "%d", &port) != 1) port = 0;
    if (pf) fclose(pf);
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    snprintf(url, sizeof url, "s3://quire-test/bench?endpoint=http://127.0.0.1:%d&region=us-east-1", port);
    bench_store(url, "s3:// (s3rver, loopback)", &rows[nrows++]);
    snprintf(cmd, sizeof cmd, "%s/scripts/s3rver.sh stop %s", QUIRE_SOURCE_DIR, s3dir);
    run(cmd);
  } else {
    printf("s3:// SKIPPED: scripts/s3rver.sh could not start s3rver\n");
  }

  printf("\n%-26s %9s %9s %9s %9s %9s %9s\n", "", "put", "get", "put p50", "put p99", "get p50", "get p99");
  printf("%-26s %9s %9s %9s %9s %9s %9s\n", "store", "MiB/s", "MiB/s", "us", "us", "us", "us");
  for (int i = 0; i < nrows; i++) print_row(&rows[i], &rows[0]);
  printf("\n16 MiB gets and dd/cp reads are served from the page cache (the objects were just written).\n"
         "dd 4 KiB latency is a whole process per write (fork+exec+fsync): compare file:// 4 KiB with the\n"
         "in-process raw row. s3rver does not fsync. Ratios are against dd.\n");
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  run(cmd);
  free(big_buf);
  free(small_buf);
  return 0;
}
