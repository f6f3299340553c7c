/*
 * Threads (run under TSan too): one client with autosync, three volumes —
 * one adopted from another client (its pages are fetched as they are read,
 * with read-ahead, by several threads at once) and two written here. A
 * writer thread per written volume commits generations (pages 1..8 all
 * carry the generation of their commit) while reader threads open readers
 * on random volumes and check that a snapshot never mixes generations, and
 * that fetched pages are right. Autosync pushes in the background
 * meanwhile; at the end every commit has reached the remote.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "client_test.h"
#include "services.h"

#define SHARED_PAGES 2048
#define GEN_PAGES 8
#define NREADERS 6

static struct services svc;
static char *root;
static quire_volume *vols[3];
static atomic_int stop;
static atomic_ullong reads_done, commits_done;

static void *writer_main(void *arg) {
  quire_volume *v = arg;
  uint8_t page[QUIRE_PAGE_SIZE];
  for (uint64_t gen = 1; !atomic_load(&stop); gen++) {
    quire_writer *w;
    CHECK_OK(quire_writer_open(v, &w));
    for (quire_pageidx i = 1; i <= GEN_PAGES; i++) {
      page_fill(page, gen * 1000 + i);
      CHECK_OK(quire_writer_write(w, i, page));
    }
    /* read-your-writes inside the writer */
    CHECK_OK(quire_writer_read(w, 3, page));
    CHECK(page_is(page, gen * 1000 + 3));
    CHECK_OK(quire_writer_commit(w, NULL));
    atomic_fetch_add(&commits_done, 1);
  }
  return NULL;
}

static void *reader_main(void *arg) {
  uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
  uint8_t page[QUIRE_PAGE_SIZE];
  while (!atomic_load(&stop)) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int k = (int)(x % 3);
    quire_reader *r;
    CHECK_OK(quire_reader_open(vols[k], &r));
    if (k == 0) {
      quire_pageidx start = 1 + (quire_pageidx)((x >> 8) % (SHARED_PAGES - 64));
      for (quire_pageidx i = start; i < start + 64; i++) {
        CHECK_OK(quire_reader_read(r, i, page));
        CHECKF(page_is(page, i), "shared page %u", i);
      }
    } else if (quire_reader_page_count(r) >= GEN_PAGES) {
      uint64_t gen = 0;
      for (quire_pageidx i = 1; i <= GEN_PAGES; i++) {
        CHECK_OK(quire_reader_read(r, i, page));
        uint64_t tag = page_tag(page);
        CHECK(tag != UINT64_MAX && tag % 1000 == i);
        if (i == 1) gen = tag / 1000;
        CHECKF(tag / 1000 == gen, "a snapshot mixes generations %llu and %llu", (unsigned long long)gen,
               (unsigned long long)(tag / 1000));
      }
    }
    quire_reader_close(r);
    atomic_fetch_add(&reads_done, 1);
  }
  return NULL;
}

int main(void) {
  test_seed();
  root = test_tmpdir("client_threads");
  char srv[1024], dir[1024];
  pathf(srv, sizeof srv, "%s/server", root);
  services_start(&svc, srv, NULL);
  /* Another client writes the shared volume. */
  pathf(dir, sizeof dir, "%s/owner", root);
  quire_client_opts o;
  client_opts(&o, dir, &svc);
  quire_client *owner;
  CHECK_OK(quire_client_open(&o, &owner));
  quire_volume *ov;
  CHECK_OK(quire_volume_open(owner, "shared", QUIRE_CREATE, &ov));
  write_tagged(ov, 1, SHARED_PAGES, 0);
  CHECK_OK(quire_volume_push(ov, 0));
  quire_gid g;
  quire_volume_vid(ov, &g);
  char vid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&g, vid);
  quire_volume_close(ov);
  CHECK_OK(quire_client_close(owner));

  pathf(dir, sizeof dir, "%s/main", root);
  client_opts(&o, dir, &svc);
  o.autosync = 1;
  o.call_timeout_ms = 20000;
  o.fetch_timeout_ms = 20000;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  CHECK_OK(quire_volume_open(c, vid, 0, &vols[0]));
  CHECK_OK(quire_volume_open(c, "one", QUIRE_CREATE, &vols[1]));
  CHECK_OK(quire_volume_open(c, "two", QUIRE_CREATE, &vols[2]));
  pthread_t writers[2], readers[NREADERS];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&writers[i], NULL, writer_main, vols[i + 1]) == 0);
  for (int i = 0; i < NREADERS; i++) CHECK(pthread_create(&readers[i], NULL, reader_main, (void *)(uintptr_t)(i + 1)) == 0);
  while (atomic_load(&reads_done) < (test_long_mode() ? 20000u : 600u) || atomic_load(&commits_done) < 20)
    usleep(10000);
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(writers[i], NULL);
  for (int i = 0; i < NREADERS; i++) pthread_join(readers[i], NULL);
  /* Autosync pushes everything. */
  for (int i = 1; i < 3; i++) {
    quire_volume_status st;
    for (int t = 0; t < 2000; t++) {
      CHECK_OK(quire_volume_status_get(vols[i], &st));
      if (!st.unpushed_commits && !st.push_in_progress) break;
      usleep(10000);
    }
    CHECKF(st.unpushed_commits == 0, "volume %d still has %llu unpushed commits", i,
           (unsigned long long)st.unpushed_commits);
  }
  quire_stats s;
  quire_client_stats(c, &s);
  printf("%llu snapshots read, %llu commits, %llu pushes, %llu pages fetched in %llu round trips\n",
         (unsigned long long)atomic_load(&reads_done), (unsigned long long)atomic_load(&commits_done),
         (unsigned long long)s.pushes, (unsigned long long)s.fetch_pages, (unsigned long long)s.fetch_round_trips);
  for (int i = 0; i < 3; i++) quire_volume_close(vols[i]);
  CHECK_OK(quire_client_close(c));
  services_stop(&svc);
  test_rmtree(root);
  free(root);
  return test_done("test_client_threads");
}
