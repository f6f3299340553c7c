/*
 * Fetching and read-ahead (DESIGN.md §11.4), with counts, not times: a cold
 * sequential scan of a 64 MiB volume takes O(log N) round trips and fetches
 * every page exactly once with under 10 % of the fetched pages never read;
 * backward and strided scans are recognised too; cold random reads fetch at
 * most 1.2 pages per page read. Then a hostile pagestore (a loopback stub
 * answering read_pages with a page that was not asked for, an answer cut
 * off, garbage, an error, or nothing at all): each read fails with a clear
 * error in bounded time, closing the client does not wait for a hung
 * fetch, and nothing is stored locally — the same data directory then
 * reads every page correctly from the real pagestore.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "client_test.h"
#include "services.h"
#include "stub.h"
#include "util/clock.h"

#define NPAGES 16384 /* 64 MiB */

static struct services svc;
static char *root;
static char vid[QUIRE_GID_TEXT_LEN + 1];

static quire_client *open_client(const char *name, const char *ps_url) {
  char dir[1024];
  pathf(dir, sizeof dir, "%s/%s", root, name);
  quire_client_opts o;
  client_opts(&o, dir, &svc);
  if (ps_url) o.pagestore_url = ps_url;
  o.fetch_timeout_ms = ps_url ? 1500 : 20000;
  o.call_timeout_ms = ps_url ? 1500 : 20000;
  quire_client *c;
  CHECK_OK(quire_client_open(&o, &c));
  return c;
}

static void make_volume(void) {
  quire_client *c = open_client("owner", NULL);
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, "big", QUIRE_CREATE, &v));
  write_tagged(v, 1, NPAGES, 0);
  CHECK_OK(quire_volume_push(v, 0));
  quire_gid g;
  quire_volume_vid(v, &g);
  quire_gid_format(&g, vid);
  quire_volume_close(v);
  CHECK_OK(quire_client_close(c));
}

struct pattern {
  const char *name;
  quire_pageidx first;
  int64_t step;
  unsigned count;
};

static void scan(const char *dirname, struct pattern p) {
  quire_client *c = open_client(dirname, NULL);
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, vid, 0, &v));
  quire_reader *r;
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECK_OK(quire_reader_open(v, &r));
  int64_t idx = p.first;
  for (unsigned k = 0; k < p.count; k++, idx += p.step) {
    CHECK_OK(quire_reader_read(r, (quire_pageidx)idx, page));
    CHECKF(page_is(page, (uint64_t)idx), "%s: page %lld", p.name, (long long)idx);
  }
  quire_reader_close(r);
  quire_stats s;
  quire_volume_close(v); /* counts the read-ahead pages never read */
  quire_client_stats(c, &s);
  double log2n = log2((double)p.count);
  printf("%-18s %6u pages read: %3llu round trips (log2 N = %.0f), %6llu fetched, %5llu read ahead, %llu of them "
         "never read\n",
         p.name, p.count, (unsigned long long)s.fetch_round_trips, log2n, (unsigned long long)s.fetch_pages,
         (unsigned long long)s.prefetch_pages, (unsigned long long)s.prefetch_wasted);
  CHECK(s.fetch_pages + s.fetch_missing <= p.count + s.prefetch_wasted); /* nothing fetched twice */
  CHECK(s.fetch_round_trips <= 3 * log2n + p.count / 1024 + 4);  /* O(log N) up to the window cap */
  CHECK(s.prefetch_wasted * 10 <= s.fetch_pages);                /* under 10 % never read */
  CHECK_OK(quire_client_close(c));
}

static void random_reads(void) {
  quire_client *c = open_client("random", NULL);
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, vid, 0, &v));
  quire_reader *r;
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECK_OK(quire_reader_open(v, &r));
  unsigned reads = 1000;
  for (unsigned k = 0; k < reads; k++) {
    quire_pageidx idx = 1 + (quire_pageidx)test_rand_below(NPAGES);
    CHECK_OK(quire_reader_read(r, idx, page));
    CHECK(page_is(page, idx));
  }
  quire_reader_close(r);
  quire_volume_close(v);
  quire_stats s;
  quire_client_stats(c, &s);
  printf("random point reads %5u: %llu fetched, %.3f pages per page read, %llu round trips\n", reads,
         (unsigned long long)s.fetch_pages, (double)s.fetch_pages / reads, (unsigned long long)s.fetch_round_trips);
  CHECK(s.fetch_pages * 10 <= reads * 12);
  CHECK_OK(quire_client_close(c));
}

/* ---- a hostile pagestore --------------------------------------------------- */

enum { WRONG_PAGE, CUT_OFF, GARBAGE, ERROR_500, HANG, NMODES };
static const char *mode_names[] = {"a page not asked for", "an answer cut off", "garbage", "500", "no answer"};
static atomic_int mode;

static void frame(quire_buf *b, quire_pageidx idx) {
  /* ReadPagesFrame{pages: [PageAtIdx{pageidx: idx, data: 4096 x 0xAB}]} by hand */
  uint8_t page[QUIRE_PAGE_SIZE];
  memset(page, 0xAB, sizeof page);
  uint8_t item[16 + QUIRE_PAGE_SIZE], *p = item;
  *p++ = 0x08; /* field 1 varint */
  for (uint32_t x = idx; ; x >>= 7) {
    *p++ = (uint8_t)(x & 0x7f) | (x > 0x7f ? 0x80 : 0);
    if (x <= 0x7f) break;
  }
  *p++ = 0x12, *p++ = 0x80, *p++ = 0x20; /* field 2, length 4096 */
  memcpy(p, page, sizeof page);
  p += sizeof page;
  size_t ilen = (size_t)(p - item);
  uint8_t head[8], *h = head;
  *h++ = 0x0a; /* ReadPagesFrame field 1 */
  for (size_t x = ilen; ; x >>= 7) {
    *h++ = (uint8_t)(x & 0x7f) | (x > 0x7f ? 0x80 : 0);
    if (x <= 0x7f) break;
  }
  uint8_t len[4];
  uint32_t total = (uint32_t)((size_t)(h - head) + ilen);
  memcpy(len, &total, 4);
  CHECK_OK(quire__buf_append(b, len, 4));
  CHECK_OK(quire__buf_append(b, head, (size_t)(h - head)));
  CHECK_OK(quire__buf_append(b, item, ilen));
}

static void hostile(void *ctx, struct stub_conn *c) {
  (void)ctx;
  struct stub_request req = {0}; /* stub_read_request frees the previous body first */
  while (stub_read_request(c, &req)) {
    quire_buf b;
    quire__buf_init(&b, 1u << 20);
    switch (atomic_load(&mode)) {
    case WRONG_PAGE:
      frame(&b, 999999);
      stub_respond(c, 200, "Content-Type: application/x-protobuf\r\n", b.data, b.len);
      break;
    case CUT_OFF:
      frame(&b, 1);
      stub_respond(c, 200, "Content-Type: application/x-protobuf\r\n", b.data, b.len / 2);
      break;
    case GARBAGE:
      stub_respond(c, 200, "Content-Type: application/x-protobuf\r\n", "\xff\xff\xff\x7fgarbage!", 12);
      break;
    case ERROR_500:
      stub_respond(c, 500, NULL, "", 0);
      break;
    case HANG:
      stub_wait_closed(c);
      break;
    }
    quire__buf_free(&b);
    stub_request_free(&req);
  }
}

static void hostile_pagestore(void) {
  struct stub *stub = stub_start(hostile, NULL);
  uint8_t page[QUIRE_PAGE_SIZE];
  for (int m = 0; m < NMODES; m++) {
    atomic_store(&mode, m);
    quire_client *c = open_client("hostile", stub_url(stub));
    quire_volume *v;
    CHECK_OK(quire_volume_open(c, vid, 0, &v));
    quire_reader *r;
    CHECK_OK(quire_reader_open(v, &r));
    uint64_t t0 = quire__mono_ms();
    int rc = quire_reader_read(r, 1 + (quire_pageidx)m, page);
    printf("hostile pagestore, %s: %s after %llu ms: %s\n", mode_names[m], quire_errname(rc),
           (unsigned long long)(quire__mono_ms() - t0), quire_errmsg());
    CHECK(rc == QUIRE_ECORRUPT || rc == QUIRE_EUNAVAILABLE || rc == QUIRE_EINTERNAL);
    CHECK(*quire_errmsg());
    quire_reader_close(r);
    t0 = quire__mono_ms();
    quire_volume_close(v); /* must not wait for a hung fetch's deadline */
    CHECK_OK(quire_client_close(c));
    printf("  closed in %llu ms\n", (unsigned long long)(quire__mono_ms() - t0));
  }
  stub_stop(stub);
  /* Nothing damaged was kept: the real pagestore serves every page right. */
  quire_client *c = open_client("hostile", NULL);
  quire_volume *v;
  CHECK_OK(quire_volume_open(c, vid, 0, &v));
  quire_reader *r;
  CHECK_OK(quire_reader_open(v, &r));
  for (quire_pageidx i = 1; i <= 64; i++) {
    CHECK_OK(quire_reader_read(r, i, page));
    CHECKF(page_is(page, i), "page %u after the hostile pagestore", i);
  }
  quire_reader_close(r);
  quire_volume_close(v);
  CHECK_OK(quire_client_close(c));
}

int main(void) {
  test_seed();
  root = test_tmpdir("client_fetch");
  char srv[1024];
  pathf(srv, sizeof srv, "%s/server", root);
  services_start(&svc, srv, NULL);
  make_volume();
  scan("seq", (struct pattern){"sequential", 1, 1, NPAGES});
  scan("rev", (struct pattern){"backward", NPAGES, -1, NPAGES});
  scan("stride", (struct pattern){"stride 3", 2, 3, NPAGES / 3});
  random_reads();
  hostile_pagestore();
  services_stop(&svc);
  test_rmtree(root);
  free(root);
  return test_done("test_client_fetch");
}
