/*
 * The client runtime without services: a model-based test of readers,
 * writers, local commits and truncation. Random writes, truncations,
 * commits and aborts go to a volume and to a model that keeps every
 * committed snapshot; readers opened at random moments must read exactly
 * their snapshot (never a later commit, never bytes that truncation
 * removed, also after the volume grows again); the client is closed and
 * reopened now and then and the head must be intact. Old versions must be
 * pruned: the store's page versions stay bounded however many commits
 * there are. Also: one client per data directory (QUIRE_EBUSY naming it),
 * one writer per volume, names and ids, import/export round trip.
 */
#include <fcntl.h>
#include <unistd.h>

#include "client_test.h"

#define MAXP 48
#define MAXSNAP 32768
#define NREADERS 4

static uint32_t hist[MAXSNAP][MAXP + 1]; /* hist[lsn][idx]: tag of the page at lsn (0 zeros) */
static uint32_t hist_count[MAXSNAP];
static quire_lsn head;
static char *dir;

static quire_client *open_client(void) {
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = dir;
  o.sync_mode = QUIRE_SYNC_NORMAL;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  return c;
}

static void check_page(uint8_t *p, uint32_t tag, const char *who, quire_lsn lsn, quire_pageidx idx) {
  CHECKF(page_is(p, tag), "%s at lsn %llu page %u: want tag %u, got %llu", who, (unsigned long long)lsn, idx, tag,
         (unsigned long long)page_tag(p));
}

static void model_run(uint64_t steps) {
  quire_client *c = open_client();
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, "model", QUIRE_CREATE, &v));
  quire_reader *readers[NREADERS] = {0};
  quire_writer *w = NULL;
  uint32_t wpages[MAXP + 1];
  uint32_t wcount = 0;
  uint8_t page[QUIRE_PAGE_SIZE];
  uint32_t next_tag = 1;
  for (uint64_t step = 0; step < steps; step++) {
    unsigned op = (unsigned)test_rand_below(100);
    if (op < 30) {
      if (!w) {
        CHECK_OK(quire_writer_open(v, &w));
        CHECK(quire_writer_base_lsn(w) == head);
        memcpy(wpages, hist[head], sizeof wpages);
        wcount = hist_count[head];
        quire_writer *w2;
        CHECK_RC(quire_writer_open(v, &w2), QUIRE_EBUSY);
      }
      quire_pageidx idx = 1 + (quire_pageidx)test_rand_below(MAXP);
      uint32_t tag = test_rand_below(8) == 0 ? 0 : next_tag++;
      page_fill(page, tag);
      CHECK_OK(quire_writer_write(w, idx, page));
      wpages[idx] = tag;
      if (idx > wcount) wcount = idx;
    } else if (op < 36 && w) {
      quire_pagecount n = (quire_pagecount)test_rand_below(MAXP + 1);
      CHECK_OK(quire_writer_truncate(w, n));
      for (quire_pageidx i = n + 1; i <= MAXP; i++) wpages[i] = 0;
      wcount = n;
    } else if (op < 44 && w) {
      quire_pageidx idx = 1 + (quire_pageidx)test_rand_below(MAXP);
      CHECK_OK(quire_writer_read(w, idx, page));
      check_page(page, idx <= wcount ? wpages[idx] : 0, "writer", head, idx);
      CHECK(quire_writer_page_count(w) == wcount);
    } else if (op < 52 && w) {
      quire_lsn lsn;
      CHECK_OK(quire_writer_commit(w, &lsn));
      w = NULL;
      if (lsn != head) {
        CHECK(lsn == head + 1);
        CHECK(head + 1 < MAXSNAP);
        head = lsn;
        memcpy(hist[head], wpages, sizeof wpages);
        hist_count[head] = wcount;
      }
    } else if (op < 55 && w) {
      quire_writer_abort(w);
      w = NULL;
    } else if (op < 62) {
      int k = (int)test_rand_below(NREADERS);
      quire_reader_close(readers[k]);
      CHECK_OK(quire_reader_open(v, &readers[k]));
      CHECK(quire_reader_lsn(readers[k]) == head);
      CHECK(quire_reader_page_count(readers[k]) == hist_count[head]);
    } else if (op < 90) {
      int k = (int)test_rand_below(NREADERS);
      if (!readers[k]) continue;
      quire_lsn lsn = quire_reader_lsn(readers[k]);
      quire_pageidx idx = 1 + (quire_pageidx)test_rand_below(MAXP + 4);
      CHECK_OK(quire_reader_read(readers[k], idx, page));
      check_page(page, idx <= hist_count[lsn] && idx <= MAXP ? hist[lsn][idx] : 0, "reader", lsn, idx);
    } else if (op < 92) {
      int k = (int)test_rand_below(NREADERS);
      quire_reader_close(readers[k]);
      readers[k] = NULL;
    } else if (op < 93) {
      /* Close everything, reopen: the head is what was committed. */
      quire_writer_abort(w);
      w = NULL;
      for (int k = 0; k < NREADERS; k++) quire_reader_close(readers[k]), readers[k] = NULL;
      quire_volume_close(v);
      CHECK_OK(quire_client_close(c));
      c = open_client();
      CHECK_OK(quire_volume_open(c, "model", 0, &v));
      quire_reader *r;
      CHECK_OK(quire_reader_open(v, &r));
      CHECK(quire_reader_lsn(r) == head);
      CHECK(quire_reader_page_count(r) == hist_count[head]);
      for (quire_pageidx i = 1; i <= MAXP; i++) {
        CHECK_OK(quire_reader_read(r, i, page));
        check_page(page, i <= hist_count[head] ? hist[head][i] : 0, "reopened", head, i);
      }
      quire_reader_close(r);
    }
  }
  quire_writer_abort(w);
  for (int k = 0; k < NREADERS; k++) quire_reader_close(readers[k]);
  /* One more commit of every page with no reader open: old versions go. */
  CHECK_OK(quire_writer_open(v, &w));
  for (quire_pageidx i = 1; i <= MAXP; i++) {
    page_fill(page, next_tag);
    CHECK_OK(quire_writer_write(w, i, page));
    hist[head + 1][i] = next_tag++;
  }
  CHECK_OK(quire_writer_commit(w, NULL));
  head++;
  hist_count[head] = MAXP;
  quire_volume_close(v);
  CHECK_OK(quire_client_close(c));
  uint64_t versions = store_count(dir, 'P');
  printf("model: %llu commits, %llu page versions stored at the end\n", (unsigned long long)head,
         (unsigned long long)versions);
  CHECKF(versions == MAXP, "every page has exactly one version after the last commit, not %llu in all",
         (unsigned long long)versions);
}

/* Truncate, grow back without writing: the old bytes never return. */
static void truncation(void) {
  char *d = test_tmpdir("client_trunc");
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = d;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, "t", QUIRE_CREATE, &v));
  uint8_t page[QUIRE_PAGE_SIZE];
  quire_writer *w;
  CHECK_OK(quire_writer_open(v, &w));
  for (quire_pageidx i = 1; i <= 20; i++) {
    page_fill(page, 100 + i);
    CHECK_OK(quire_writer_write(w, i, page));
  }
  CHECK_OK(quire_writer_commit(w, NULL));
  quire_reader *old;
  CHECK_OK(quire_reader_open(v, &old));
  CHECK_OK(quire_writer_open(v, &w));
  CHECK_OK(quire_writer_truncate(w, 5));
  CHECK_OK(quire_writer_commit(w, NULL));
  CHECK_OK(quire_writer_open(v, &w));
  page_fill(page, 999);
  CHECK_OK(quire_writer_write(w, 15, page)); /* grows to 15: 6..14 must read as zeros */
  CHECK_OK(quire_writer_read(w, 10, page));
  CHECK(page_is(page, 0));
  CHECK_OK(quire_writer_commit(w, NULL));
  quire_reader *r;
  CHECK_OK(quire_reader_open(v, &r));
  CHECK(quire_reader_page_count(r) == 15);
  for (quire_pageidx i = 1; i <= 20; i++) {
    CHECK_OK(quire_reader_read(r, i, page));
    CHECKF(page_is(page, i <= 5 ? 100 + i : i == 15 ? 999 : 0), "page %u after truncate+grow", i);
    CHECK_OK(quire_reader_read(old, i, page));
    CHECKF(page_is(page, 100 + i), "the old reader still sees page %u", i);
  }
  quire_reader_close(r);
  /* Truncate and grow inside one writer. */
  CHECK_OK(quire_writer_open(v, &w));
  CHECK_OK(quire_writer_truncate(w, 2));
  CHECK_OK(quire_writer_truncate(w, 20));
  CHECK_OK(quire_writer_read(w, 3, page));
  CHECK(page_is(page, 0));
  CHECK_OK(quire_writer_commit(w, NULL));
  CHECK_OK(quire_reader_open(v, &r));
  CHECK(quire_reader_page_count(r) == 20);
  for (quire_pageidx i = 1; i <= 20; i++) {
    CHECK_OK(quire_reader_read(r, i, page));
    CHECKF(page_is(page, i <= 2 ? 100 + i : 0), "page %u after truncate+grow in one writer", i);
  }
  quire_reader_close(r);
  quire_reader_close(old);
  quire_volume_close(v);
  CHECK_OK(quire_client_close(c));
  test_rmtree(d);
  free(d);
}

static void names_and_locks(void) {
  char *d = test_tmpdir("client_names");
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = d;
  quire_client *c, *c2;
  CHECK_OK(quire_client_open(&o, &c));
  quire_gid cid, cid2;
  quire_client_id(c, &cid);
  CHECK(quire_gid_type(&cid) == QUIRE_GID_CLIENT);
  CHECK_RC(quire_client_open(&o, &c2), QUIRE_EBUSY);
  CHECK(strstr(quire_errmsg(), d) != NULL);
  quire_volume *v, *v2;
  CHECK_RC(quire_volume_open(c, "nope", 0, &v), QUIRE_ENOTFOUND);
  CHECK_RC(quire_volume_open(c, "", QUIRE_CREATE, &v), QUIRE_EINVAL);
  CHECK_OK(quire_volume_open(c, "a", QUIRE_CREATE, &v));
  quire_gid vid;
  quire_volume_vid(v, &vid);
  char text[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&vid, text);
  CHECK_OK(quire_volume_open(c, text, 0, &v2)); /* by id: the same volume */
  CHECK(v2 == v);
  quire_volume_close(v2);
  CHECK_OK(quire_volume_bind(c, "alias", &vid));
  CHECK_OK(quire_volume_bind(c, "alias", &vid));
  quire_gid other;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &other));
  CHECK_RC(quire_volume_bind(c, "alias", &other), QUIRE_EEXIST);
  CHECK_RC(quire_volume_push(v, 1000), QUIRE_EINVAL); /* local only */
  /* import / export round trip, with a partial last page */
  char in[4096], out[4096];
  pathf(in, sizeof in, "%s/in.img", d);
  pathf(out, sizeof out, "%s/out.img", d);
  int fd = open(in, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  uint8_t page[QUIRE_PAGE_SIZE];
  for (int i = 1; i <= 37; i++) {
    page_fill(page, i % 5 ? (uint64_t)i : 0);
    CHECK(write(fd, page, sizeof page) == sizeof page);
  }
  CHECK(write(fd, page, 100) == 100);
  close(fd);
  CHECK_OK(quire_volume_import(v, in));
  CHECK_OK(quire_volume_export(v, out));
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(v, &st));
  CHECK(st.page_count == 38);
  CHECK(st.pages_local + 0 <= 38 && st.pages_pending == 0);
  CHECK(strcmp(st.name, "a") == 0);
  fd = open(out, O_RDONLY);
  CHECK(fd >= 0);
  CHECK(lseek(fd, 0, SEEK_END) == 38 * QUIRE_PAGE_SIZE);
  lseek(fd, 0, SEEK_SET);
  for (int i = 1; i <= 37; i++) {
    CHECK(read(fd, page, sizeof page) == sizeof page);
    CHECK(page_is(page, i % 5 ? (uint64_t)i : 0));
  }
  close(fd);
  quire_volume_info *list;
  size_t n;
  CHECK_OK(quire_volume_list(c, &list, &n));
  CHECK(n == 1 && (strcmp(list[0].name, "alias") == 0 || strcmp(list[0].name, "a") == 0));
  quire_volume_list_free(list);
  quire_stats s;
  quire_volume_stats(v, &s);
  CHECK(s.commits == 1 && s.reads >= 38);
  quire_volume_close(v);
  CHECK_OK(quire_client_close(c));
  CHECK_OK(quire_client_open(&o, &c)); /* the client id persists */
  quire_client_id(c, &cid2);
  CHECK(memcmp(cid.b, cid2.b, 16) == 0);
  CHECK_OK(quire_client_close(c));
  test_rmtree(d);
  free(d);
}

int main(void) {
  test_seed();
  dir = test_tmpdir("client_local");
  model_run(test_long_mode() ? 200000 : 20000);
  test_rmtree(dir);
  free(dir);
  truncation();
  names_and_locks();
  return test_done("test_client_local");
}
