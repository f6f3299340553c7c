/*
 * Sync through faults: the services run over a fault+ object store (errors,
 * lost acknowledgements — the write happened but the caller was told it
 * failed —, latency) and are restarted in the middle of pushes and pulls.
 * Two clients commit, push and pull through it, retrying whatever fails.
 * Invariants at the end, once the faults stop: every locally acknowledged
 * commit of the writer reached the remote exactly once (the remote log has
 * no commit id twice and contiguous lsns), a fresh client reads the
 * writer's head byte for byte, and the reader client — which pulled and
 * fetched through the faults — has exactly the remote content.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "client_test.h"
#include "metastore/client.h"
#include "services.h"

#define PAGES 96

static struct services svc;
static char *root;
static uint64_t tags[PAGES + 1];

static quire_client *open_client(const char *name) {
  char dir[1024];
  pathf(dir, sizeof dir, "%s/%s", root, name);
  quire_client_opts o;
  client_opts(&o, dir, &svc);
  o.call_timeout_ms = 3000;
  o.fetch_timeout_ms = 3000;
  o.push_batch_pages = 16;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  return c;
}

static void restart(const char *store_url) {
  services_stop(&svc);
  /* The same ports, the same state; maybe another fault profile. */
  snprintf(svc.store_url, sizeof svc.store_url, "%s", store_url);
  services_start_ms(&svc);
  services_start_ps(&svc);
}

int main(void) {
  test_seed();
  root = test_tmpdir("client_faults");
  char srv[1024], faulty[1400], clean[1400];
  pathf(srv, sizeof srv, "%s/server", root);
  pathf(clean, sizeof clean, "file://%s/server/objects", root);
  pathf(faulty, sizeof faulty, "fault+file://%s/server/objects?seed=%llu&err=0.25&lost_ack=0.25&latency=3&latency_p=0.2",
        root, (unsigned long long)test_rand());
  services_start(&svc, srv, faulty);
  quire_client *a = open_client("a"), *b = open_client("b");
  quire_volume *va, *vb = NULL;
  CHECK_OK(quire_volume_open(a, "f", QUIRE_CREATE, &va));
  char vid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid g;
  quire_volume_vid(va, &g);
  quire_gid_format(&g, vid);
  uint8_t page[QUIRE_PAGE_SIZE];
  int rounds = test_long_mode() ? 600 : 60;
  uint64_t push_fail = 0, pull_fail = 0, read_fail = 0, restarts = 0, pushes = 0;
  for (int round = 0; round < rounds; round++) {
    /* A commits a few pages locally: this never depends on the services. */
    quire_writer *w;
    CHECK_OK(quire_writer_open(va, &w));
    for (int k = 0; k < 3; k++) {
      quire_pageidx idx = 1 + (quire_pageidx)test_rand_below(PAGES);
      tags[idx] = (uint64_t)round * 1000 + idx + 1;
      page_fill(page, tags[idx]);
      CHECK_OK(quire_writer_write(w, idx, page));
    }
    CHECK_OK(quire_writer_commit(w, NULL));
    if (test_rand_below(3) == 0) {
      int rc = quire_volume_push(va, 0);
      if (rc) {
        CHECKF(rc == QUIRE_EUNAVAILABLE || rc == QUIRE_ETIMEDOUT, "push: %s", quire_errmsg());
        push_fail++;
      } else {
        pushes++;
      }
    }
    if (!vb && pushes) CHECK_OK(quire_volume_open(b, vid, 0, &vb));
    if (vb && test_rand_below(3) == 0) {
      int rc = quire_volume_pull(vb, 0);
      if (rc) {
        CHECKF(rc == QUIRE_EUNAVAILABLE || rc == QUIRE_ETIMEDOUT, "pull: %s", quire_errmsg());
        pull_fail++;
      }
      quire_reader *r;
      if (quire_reader_open(vb, &r) == 0) {
        for (int k = 0; k < 8; k++) {
          quire_pageidx idx = 1 + (quire_pageidx)test_rand_below(PAGES);
          rc = quire_reader_read(r, idx, page);
          if (rc) {
            CHECKF(rc == QUIRE_EUNAVAILABLE, "read: %s", quire_errmsg());
            read_fail++;
          } else {
            CHECK(page_tag(page) != UINT64_MAX);
          }
        }
        quire_reader_close(r);
      }
    }
    if (test_rand_below(15) == 0) {
      restart(faulty);
      restarts++;
    }
  }
  /* The faults stop; everything must settle. */
  restart(clean);
  CHECK_OK(quire_volume_push(va, 0));
  if (!vb) CHECK_OK(quire_volume_open(b, vid, 0, &vb));
  CHECK_OK(quire_volume_pull(vb, 0));
  printf("%d rounds: %llu pushes, %llu failed; %llu pulls and %llu reads failed; %llu restarts\n", rounds,
         (unsigned long long)pushes, (unsigned long long)push_fail, (unsigned long long)pull_fail,
         (unsigned long long)read_fail, (unsigned long long)restarts);
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(va, &st));
  CHECK(st.unpushed_commits == 0 && st.state == QUIRE_STATE_OK);
  /* The remote log: contiguous, every commit id once. */
  quire_lsn nseen = check_remote_log(&svc, &g);
  CHECK(nseen == st.remote_lsn);
  /* B and a fresh client read exactly A's head. */
  quire_client *fresh = open_client("fresh");
  quire_volume *vf;
  CHECK_OK(quire_volume_open(fresh, vid, 0, &vf));
  quire_volume *check[2] = {vb, vf};
  for (int k = 0; k < 2; k++) {
    quire_reader *r;
    CHECK_OK(quire_reader_open(check[k], &r));
    for (quire_pageidx i = 1; i <= PAGES; i++) {
      CHECK_OK(quire_reader_read(r, i, page));
      CHECKF(page_is(page, tags[i]), "%s: page %u", k ? "fresh client" : "reader client", i);
    }
    quire_reader_close(r);
  }
  printf("remote log: %llu commits, every commit id once; both readers equal the writer's head\n",
         (unsigned long long)nseen);
  quire_volume_close(vf);
  CHECK_OK(quire_client_close(fresh));
  quire_volume_close(va);
  quire_volume_close(vb);
  CHECK_OK(quire_client_close(a));
  CHECK_OK(quire_client_close(b));
  services_stop(&svc);
  test_rmtree(root);
  free(root);
  return test_done("test_client_faults");
}
