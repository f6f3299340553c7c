/*
 * bench/lsm/bench_lsm.c — quick benchmark of the LSM engine (part 1; part 2
 * adds peers side by side). db_bench-style workload: N random 16-byte keys
 * with 100-byte values.
 *
 *   load     NORMAL mode, transactions of 1000 puts, random key order
 *   get      random point reads of loaded keys (lsm_get), one thread, as
 *            loaded (several segments) and after lsm_compact (one)
 *   scan     one cursor over everything
 *   file     size on disk after close
 *   commits  single-key transactions in FULL mode (one fsync each)
 *
 * usage: bench_lsm [--n N] [--commits N] [--dir DIR]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quire/lsm.h"
#include "util/util.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void key_of(uint64_t i, uint8_t *k) {
  /* a fixed pseudo-random permutation-ish mapping: 16 bytes */
  uint64_t a = quire__xxh3(&i, 8), b = quire__xxh3_seeded(&i, 8, 7);
  st_be64(k, a);
  st_be64(k + 8, b);
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_lsm: %s: %s (%s)\n", what, quire_strerror(rc), quire_errmsg());
  exit(1);
}

static lsm_db *gdb;
static uint64_t gcommits;

static void *committer(void *arg) {
  uint64_t id = (uint64_t)(intptr_t)arg;
  uint8_t k[16], v[100];
  memset(v, 'y', sizeof v);
  for (uint64_t i = 0; i < gcommits; i++) {
    lsm_txn *t;
    key_of(1000000000ull * (id + 1) + i, k);
    int rc;
    if ((rc = lsm_txn_begin(gdb, 0, &t)) || (rc = lsm_txn_put(t, k, 16, v, sizeof v)) ||
        (rc = lsm_txn_commit(t)))
      die("threaded commit", rc);
  }
  return NULL;
}

int main(int argc, char **argv) {
  uint64_t n = 1000000, ncommits = 2000;
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--n") && i + 1 < argc)
      n = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--commits") && i + 1 < argc)
      ncommits = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else {
      fprintf(stderr, "usage: bench_lsm [--n N] [--commits N] [--dir DIR]\n");
      return 2;
    }
  }
  char path[512], path2[512];
  snprintf(path, sizeof path, "%s/bench_lsm.%d.db", dir, (int)getpid());
  snprintf(path2, sizeof path2, "%s/bench_lsm_full.%d.db", dir, (int)getpid());
  unlink(path);
  unlink(path2);
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.sync_mode = LSM_SYNC_NORMAL;
  o.cache_bytes = (size_t)256 << 20;
  lsm_db *db;
  int rc = lsm_open(path, &o, &db);
  if (rc) die("open", rc);
  uint8_t k[16], v[100];
  memset(v, 'x', sizeof v);
  printf("lsm quick bench: %llu random 16-byte keys, 100-byte values, page 4096, cache 256 MiB\n",
         (unsigned long long)n);

  uint64_t t0 = quire__mono_ns();
  for (uint64_t i = 0; i < n;) {
    lsm_txn *t;
    if ((rc = lsm_txn_begin(db, 0, &t))) die("begin", rc);
    for (int j = 0; j < 1000 && i < n; j++, i++) {
      key_of(i, k);
      memcpy(v, k, 16);
      if ((rc = lsm_txn_put(t, k, 16, v, sizeof v))) die("put", rc);
    }
    if ((rc = lsm_txn_commit(t))) die("commit", rc);
  }
  if ((rc = lsm_flush(db))) die("flush", rc);
  uint64_t t1 = quire__mono_ns();
  double load = (double)n / ((t1 - t0) / 1e9);
  printf("  load (NORMAL, 1000 puts/txn)  %10.0f keys/s   %6.1f MB/s\n", load, load * 116 / 1e6);

  struct stat sb;
  stat(path, &sb);
  lsm_stats st0;
  lsm_stats_get(db, &st0);
  printf("  file size after load           %10.1f MiB (%llu pages, %llu free, log region %.0f MiB; raw data "
         "%.1f MiB)\n",
         (double)sb.st_size / 1048576.0, (unsigned long long)st0.pages_total,
         (unsigned long long)st0.pages_free, (double)st0.wal_pages * st0.page_size / 1048576.0,
         (double)n * 116 / 1048576.0);
  printf("  write amplification (load)     %10.2f (bytes written to the file / user bytes)\n",
         (double)st0.bytes_written / ((double)n * 116));
  printf("  merges during load             %llu moved, %llu full, %llu partial, %llu subtrees recycled, %llu "
         "stalls (%.0f ms)\n",
         (unsigned long long)st0.merges_moved, (unsigned long long)st0.merges_full,
         (unsigned long long)st0.merges_partial, (unsigned long long)st0.merge_recycled,
         (unsigned long long)st0.stalls, (double)st0.stall_us / 1000.0);
  for (uint32_t i = 0; i < st0.nlevels; i++)
    if (st0.level[i].segments)
      printf("    %-10s %u segment(s), depth %u, %.1f MiB\n", st0.level[i].name, st0.level[i].segments,
             st0.level[i].depth, (double)st0.level[i].bytes / 1048576.0);
  uint64_t reads = n < 500000 ? n : 500000;
  t0 = quire__mono_ns();
  for (uint64_t i = 0; i < reads; i++) {
    key_of(next_rand() % n, k);
    lsm_value val;
    if ((rc = lsm_get(db, k, 16, &val))) die("get", rc);
    if (val.len != 100 || memcmp(val.data, k, 16) != 0) die("get: wrong value", QUIRE_EINTERNAL);
    lsm_value_release(&val);
  }
  t1 = quire__mono_ns();
  printf("  random get (1 thread)          %10.0f reads/s\n", (double)reads / ((t1 - t0) / 1e9));

  t0 = quire__mono_ns();
  if ((rc = lsm_compact(db))) die("compact", rc);
  t1 = quire__mono_ns();
  printf("  compact (whole merge)          %10.2f s\n", (t1 - t0) / 1e9);
  t0 = quire__mono_ns();
  for (uint64_t i = 0; i < reads; i++) {
    key_of(next_rand() % n, k);
    lsm_value val;
    if ((rc = lsm_get(db, k, 16, &val))) die("get", rc);
    lsm_value_release(&val);
  }
  t1 = quire__mono_ns();
  printf("  random get after compact       %10.0f reads/s\n", (double)reads / ((t1 - t0) / 1e9));

  lsm_cursor *c;
  if ((rc = lsm_cursor_open(db, &c))) die("cursor", rc);
  uint64_t seen = 0;
  t0 = quire__mono_ns();
  for (rc = lsm_cursor_first(c); rc == 0; rc = lsm_cursor_next(c)) {
    const void *kk, *vv;
    size_t kl, vl;
    lsm_cursor_key(c, &kk, &kl);
    lsm_cursor_value(c, &vv, &vl);
    seen++;
  }
  t1 = quire__mono_ns();
  lsm_cursor_close(c);
  if (seen != n) die("scan saw the wrong count", QUIRE_EINTERNAL);
  printf("  full scan                      %10.0f entries/s\n", (double)seen / ((t1 - t0) / 1e9));
  lsm_stats st;
  lsm_stats_get(db, &st);
  if ((rc = lsm_close(db))) die("close", rc);
  stat(path, &sb);
  printf("  file size after compact+close  %10.1f MiB (%llu pages, %llu free; raw data %.1f MiB)\n",
         (double)sb.st_size / 1048576.0, (unsigned long long)st.pages_total,
         (unsigned long long)st.pages_free, (double)n * 116 / 1048576.0);
  printf("  segments                       %u incoming + %u regular, %llu flushes, %llu merges\n",
         st.incoming, st.regular, (unsigned long long)st.flushes, (unsigned long long)st.merges);

  o.sync_mode = LSM_SYNC_FULL;
  if ((rc = lsm_open(path2, &o, &db))) die("open", rc);
  t0 = quire__mono_ns();
  for (uint64_t i = 0; i < ncommits; i++) {
    lsm_txn *t;
    key_of(i, k);
    if ((rc = lsm_txn_begin(db, 0, &t)) || (rc = lsm_txn_put(t, k, 16, v, sizeof v)) ||
        (rc = lsm_txn_commit(t)))
      die("full commit", rc);
  }
  t1 = quire__mono_ns();
  printf("  single-key commits (FULL)      %10.0f commits/s (%llu commits, one fdatasync each)\n",
         (double)ncommits / ((t1 - t0) / 1e9), (unsigned long long)ncommits);
  /* the same from 4 threads: concurrent commits share log syncs */
  pthread_t th[4];
  gdb = db;
  gcommits = ncommits / 4;
  t0 = quire__mono_ns();
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, committer, (void *)(intptr_t)i);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  t1 = quire__mono_ns();
  lsm_stats_get(db, &st);
  printf("  single-key commits, 4 threads  %10.0f commits/s (group commit; %llu syncs in all)\n",
         (double)(gcommits * 4) / ((t1 - t0) / 1e9), (unsigned long long)st.log_syncs);
  lsm_close(db);
  unlink(path);
  unlink(path2);
  return 0;
}
