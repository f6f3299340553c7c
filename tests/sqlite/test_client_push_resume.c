/*
 * Client runtime bug, found by the SQLite extension (PRAGMA quire_push works
 * around it by pushing until nothing is unpushed): quire.h says
 * quire_volume_push "pushes every unpushed local commit as one remote
 * commit (resuming an interrupted push with the same commit id)", but when
 * an interrupted push's intent exists, quire_volume_push finishes that
 * intent and returns 0 while local commits made after it stay unpushed.
 *
 *   commit c1; push fails (services down): the intent covers c1;
 *   commit c2; services back; quire_volume_push() == 0;
 *   quire_volume_status: unpushed_commits is 1, not 0.
 *
 * Registered with ctest as known-bug (disabled) until the client is fixed.
 */
#include "quire/quire.h"
#include "sqlite_test.h"

static void commit_page(quire_volume *v, quire_pageidx idx, uint8_t fill) {
  uint8_t page[QUIRE_PAGE_SIZE];
  memset(page, fill, sizeof page);
  quire_writer *w;
  CHECK_OK(quire_writer_open(v, &w));
  CHECK_OK(quire_writer_write(w, idx, page));
  CHECK_OK(quire_writer_commit(w, NULL));
}

int main(void) {
  test_seed();
  char *root = test_tmpdir("client_push_resume");
  struct qt_server srv = {0};
  snprintf(srv.data, sizeof srv.data, "%s/server", root);
  qt_server_start(&srv);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/client", root);
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = dir;
  o.metastore_url = srv.ms_url;
  o.pagestore_url = srv.ps_url;
  o.sync_mode = QUIRE_SYNC_NORMAL;
  o.call_timeout_ms = 2000;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, "v", QUIRE_CREATE, &v));
  commit_page(v, 1, 0x11);
  CHECK_OK(quire_volume_push(v, 0));
  commit_page(v, 2, 0x22); /* c1 */
  qt_server_stop(&srv, SIGKILL);
  CHECK(quire_volume_push(v, 1000) != 0); /* the intent for c1 is persisted */
  commit_page(v, 3, 0x33);                /* c2 */
  qt_server_start(&srv);
  CHECK_OK(quire_volume_push(v, 0));
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(v, &st));
  printf("after the resumed push: unpushed_commits=%llu push_in_progress=%d\n",
         (unsigned long long)st.unpushed_commits, st.push_in_progress);
  CHECKF(st.unpushed_commits == 0, "quire_volume_push returned 0 with %llu local commit(s) unpushed",
         (unsigned long long)st.unpushed_commits);
  quire_volume_close(v);
  CHECK_OK(quire_client_close(c));
  qt_server_stop(&srv, SIGTERM);
  test_rmtree(root);
  free(root);
  return test_done("test_client_push_resume");
}
