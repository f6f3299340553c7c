/*
 * Authorization on the real services (docs/SECURITY.md), in-process over
 * loopback HTTP with authentication on:
 *  - every endpoint × {no token, not Bearer, garbage, wrong signature,
 *    expired, another server's key id, read token on a write endpoint, a
 *    token of another volume, write token of the volume, admin} answers
 *    the exact status (401 + WWW-Authenticate, 403, or what the handler
 *    says); /health stays open, /metrics and /ready need the metrics token
 *    when one is set;
 *  - pages written under volume A's token can never be committed into
 *    volume B (the write receipt binds segment and volume; the token's
 *    scope binds the request);
 *  - a token over its request rate gets 429 with Retry-After, while another
 *    token is served;
 *  - per-volume limits: a commit past the volume's page limit, or writing
 *    more page bytes than a commit may, is 413.
 */
#include "test.h"
#include "core/receipt.h"
#include "core/token.h"
#include "metastore/client.h"
#include "metastore/service.h"
#include "pagestore/client.h"
#include "pagestore/service.h"
#include "proto/metastore.pb-c.h"
#include "proto/pagestore.pb-c.h"
#include "proto/pb.h"
#include "quire/splinter.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW_S (quire__wall_ms() / 1000)

struct answer {
  int status;
  char head[4096]; /* the response head, lowercased */
};

/* Reads the answer until the server closes (or cap - 1 bytes), closes fd,
 * NUL-terminates; returns the bytes read. */
static size_t read_close(int fd, char *resp, size_t cap) {
  size_t got = 0;
  for (;;) {
    ssize_t r = read(fd, resp + got, cap - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
    if (got == cap - 1) break;
  }
  close(fd);
  resp[got] = '\0';
  return got;
}

/* One request on a fresh connection; auth NULL sends no Authorization. */
static void raw_post(unsigned port, const char *method, const char *path, const char *auth, const void *body,
                     size_t len, struct answer *a) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  char head[2048];
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s"
                   "Content-Type: application/x-protobuf\r\nContent-Length: %zu\r\n\r\n",
                   method, path, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "", len);
  CHECK(n > 0 && (size_t)n < sizeof head);
  CHECK(write(fd, head, (size_t)n) == n);
  if (len) CHECK(write(fd, body, len) == (ssize_t)len);
  static char resp[1 << 16];
  size_t got = read_close(fd, resp, sizeof resp);
  a->status = 0;
  CHECKF(sscanf(resp, "HTTP/1.1 %d", &a->status) == 1, "no status line in '%.80s'", resp);
  char *end = strstr(resp, "\r\n\r\n");
  size_t hl = end ? (size_t)(end - resp) : got;
  if (hl >= sizeof a->head) hl = sizeof a->head - 1;
  for (size_t i = 0; i < hl; i++)
    a->head[i] = (char)(resp[i] >= 'A' && resp[i] <= 'Z' ? resp[i] + 32 : resp[i]);
  a->head[hl] = '\0';
}

/* A refused request whose body is still on its way: the headers, a pause
 * (the server decides on them alone), then 2 MiB of body. The whole body
 * must go out and the status come back: answering before the body and
 * closing made a sending client (libcurl) fail with "failed sending data"
 * and never read the status. */
static int refused_while_sending(unsigned port, const char *path, const char *auth, int *body_sent) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  size_t len = 2u << 20;
  char head[2048];
  int n = snprintf(head, sizeof head,
                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: %s\r\n"
                   "Content-Type: application/x-protobuf\r\nContent-Length: %zu\r\n\r\n",
                   path, auth, len);
  CHECK(n > 0 && (size_t)n < sizeof head);
  CHECK(write(fd, head, (size_t)n) == n);
  quire__sleep_ms(300);
  char *body = calloc(1, len);
  CHECK(body != NULL);
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, body + off, len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break; /* the server hung up */
    off += (size_t)w;
  }
  free(body);
  *body_sent = off == len;
  char resp[4096];
  (void)read_close(fd, resp, sizeof resp);
  int status = 0;
  if (sscanf(resp, "HTTP/1.1 %d", &status) != 1) status = 0;
  return status;
}

static char *mint(const struct quire_keyset *ks, unsigned perm, const quire_gid *vol, uint64_t issued,
                  uint64_t expires, const char *subject) {
  struct quire_token t = {0};
  t.perm = (uint8_t)perm;
  if (vol) {
    t.nvol = 1;
    t.vols[0] = *vol;
  }
  t.issued = issued;
  t.expires = expires;
  snprintf(t.subject, sizeof t.subject, "%s", subject);
  char *text = malloc(QUIRE_TOKEN_TEXT_MAX + 1);
  CHECK(text != NULL);
  CHECK_OK(quire__token_sign(ks, &t, text, QUIRE_TOKEN_TEXT_MAX + 1));
  return text;
}

static char *bearer(const char *token) {
  char *h = malloc(strlen(token) + 8);
  CHECK(h != NULL);
  snprintf(h, strlen(token) + 8, "Bearer %s", token);
  return h;
}

/* Request bodies, all about volume vid. */
static void pack(const ProtobufCMessage *m, quire_buf *out) {
  quire__buf_init(out, 64u << 20);
  CHECK_OK(quire__pb_pack(m, out));
}

enum { EP_SNAPSHOT, EP_PULL_GRAFT, EP_PULL_COMMITS, EP_COMMIT, EP_WRITE, EP_READ, NEP };
static const struct {
  const char *path;
  int ps;       /* on the pagestore */
  int needs;    /* permission */
  int baseline; /* the handler's answer to a token that may call it */
} eps[NEP] = {
    {"/metastore/v1/snapshot", 0, QUIRE_PERM_READ, 404},     /* the volume has no commits */
    {"/metastore/v1/pull_graft", 0, QUIRE_PERM_READ, 404},   /* no commits either */
    {"/metastore/v1/pull_commits", 0, QUIRE_PERM_READ, 200}, /* an empty page of an empty volume */
    {"/metastore/v1/commit", 0, QUIRE_PERM_WRITE, 400},      /* a commit of nothing: refused by the handler */
    {"/pagestore/v1/write_pages", 1, QUIRE_PERM_WRITE, 200}, /* one page */
    {"/pagestore/v1/read_pages", 1, QUIRE_PERM_READ, 404},   /* lsn 1 does not exist */
};

static void body_for(int ep, const quire_gid *vid, quire_buf *out) {
  static uint8_t page[QUIRE_PAGE_SIZE];
  memset(page, 0x5a, sizeof page);
  switch (ep) {
  case EP_SNAPSHOT: {
    Quire__Metastore__V1__SnapshotRequest m = QUIRE__METASTORE__V1__SNAPSHOT_REQUEST__INIT;
    m.has_vid = 1, m.vid = quire__pb_gid_bytes(vid);
    pack(&m.base, out);
    break;
  }
  case EP_PULL_GRAFT: {
    Quire__Metastore__V1__PullGraftRequest m = QUIRE__METASTORE__V1__PULL_GRAFT_REQUEST__INIT;
    m.has_vid = 1, m.vid = quire__pb_gid_bytes(vid);
    pack(&m.base, out);
    break;
  }
  case EP_PULL_COMMITS: {
    Quire__Metastore__V1__PullCommitsRequest m = QUIRE__METASTORE__V1__PULL_COMMITS_REQUEST__INIT;
    m.has_vid = 1, m.vid = quire__pb_gid_bytes(vid);
    m.has_from_lsn = 1, m.from_lsn = 1;
    pack(&m.base, out);
    break;
  }
  case EP_COMMIT: {
    Quire__Metastore__V1__CommitRequest m = QUIRE__METASTORE__V1__COMMIT_REQUEST__INIT;
    m.has_vid = 1, m.vid = quire__pb_gid_bytes(vid);
    pack(&m.base, out);
    break;
  }
  case EP_WRITE: {
    Quire__Pagestore__V1__WritePagesRequest m = QUIRE__PAGESTORE__V1__WRITE_PAGES_REQUEST__INIT;
    Quire__Pagestore__V1__PageAtIdx p = QUIRE__PAGESTORE__V1__PAGE_AT_IDX__INIT, *pp = &p;
    p.has_pageidx = 1, p.pageidx = 1;
    p.has_data = 1, p.data.data = page, p.data.len = sizeof page;
    m.has_vid = 1, m.vid = quire__pb_gid_bytes(vid);
    m.n_pages = 1, m.pages = &pp;
    pack(&m.base, out);
    break;
  }
  default: {
    splinter_t *s;
    CHECK_OK(splinter_new(&s));
    CHECK(splinter_insert(s, 1) >= 0);
    uint8_t *g;
    size_t gl;
    CHECK_OK(splinter_serialize_alloc(s, &g, &gl));
    Quire__Pagestore__V1__ReadPagesRequest m = QUIRE__PAGESTORE__V1__READ_PAGES_REQUEST__INIT;
    m.has_vid = 1, m.vid = quire__pb_gid_bytes(vid);
    m.has_lsn = 1, m.lsn = 1;
    m.has_graft = 1, m.graft.data = g, m.graft.len = gl;
    pack(&m.base, out);
    splinter_bytes_free(g);
    splinter_free(s);
  }
  }
}

int main(void) {
  test_seed();
  char *dir = test_tmpdir("auth");
  char key[4200], other_key[4200], receipt[4200], store[4200], mcat[4200], pcat[4200], cache[4200];
  snprintf(key, sizeof key, "%s/auth.key", dir);
  snprintf(other_key, sizeof other_key, "%s/other.key", dir);
  snprintf(receipt, sizeof receipt, "%s/receipt.key", dir);
  snprintf(store, sizeof store, "file://%s/objects", dir);
  snprintf(mcat, sizeof mcat, "%s/ms.catalog", dir);
  snprintf(pcat, sizeof pcat, "%s/ps.catalog", dir);
  snprintf(cache, sizeof cache, "%s/cache", dir);
  struct quire_keyset ks, other;
  int created;
  CHECK_OK(quire__keyset_ensure(key, &ks, &created));
  CHECK_OK(quire__keyset_ensure(other_key, &other, &created));
  uint8_t rk[QUIRE_RECEIPT_KEY_SIZE];
  CHECK_OK(quire__receipt_key_ensure(receipt, rk));

  uint64_t now = NOW_S;
  char *admin = mint(&ks, QUIRE_PERM_ADMIN, NULL, now - 5, now + 3600, "admin");
  struct quire_auth_settings auth = {.key_file = key,
                                     .rate_per_s = 1,
                                     .burst = 60,
                                     .metrics_token = "scrape-me",
                                     .max_volume_pages = 1000,
                                     .max_commit_bytes = 2 * QUIRE_PAGE_SIZE};
  struct quire_ms_settings mss = {.listen = "127.0.0.1:0", .store_url = store, .catalog_path = mcat};
  mss.receipt_key_file = receipt;
  mss.poll_interval_ms = 50;
  mss.auth = auth;
  quire_ms_service *ms;
  CHECK_OK(quire__ms_service_open(&mss, &ms));
  unsigned ms_port = quire__ms_service_port(ms);
  char ms_url[64], ps_url[64];
  snprintf(ms_url, sizeof ms_url, "http://127.0.0.1:%u", ms_port);
  struct quire_ps_settings pss = {.listen = "127.0.0.1:0"};
  pss.ps.store_url = store;
  pss.ps.metastore_url = ms_url;
  pss.ps.metastore_token = admin;
  pss.ps.catalog_path = pcat;
  pss.ps.cache_dir = cache;
  pss.ps.flush_interval_ms = 5;
  pss.receipt_key_file = receipt;
  pss.auth = auth;
  quire_ps_service *ps;
  CHECK_OK(quire__ps_service_open(&pss, &ps));
  unsigned ps_port = quire__ps_service_port(ps);
  snprintf(ps_url, sizeof ps_url, "http://127.0.0.1:%u", ps_port);

  quire_gid vol_a, vol_b;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vol_a));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vol_b));

  /* A refusal decided on the headers still reaches a client that is busy
   * sending its body. */
  {
    char *forged_hdr = bearer("qt1_garbage");
    int sent = 0, st = refused_while_sending(ps_port, "/pagestore/v1/write_pages", forged_hdr, &sent);
    CHECKF(st == 401, "a refused upload got status %d (0: the connection was reset)", st);
    CHECKF(sent, "the server hung up while the refused request's body was being sent");
    free(forged_hdr);
  }

  /* The token cases. A NULL header sends none. */
  char *expired = mint(&ks, QUIRE_PERM_ADMIN, NULL, now - 7200, now - 3600, "expired");
  char *foreign = mint(&other, QUIRE_PERM_ADMIN, NULL, now - 5, now + 3600, "foreign");
  struct quire_keyset forger = other; /* our key id, someone else's key */
  memcpy(forger.keys[0].kid, ks.keys[0].kid, QUIRE_TOKEN_KID);
  char *forged = mint(&forger, QUIRE_PERM_ADMIN, NULL, now - 5, now + 3600, "forged");
  char *read_a = mint(&ks, QUIRE_PERM_READ, &vol_a, now - 5, now + 3600, "reader-a");
  char *write_b = mint(&ks, QUIRE_PERM_WRITE, &vol_b, now - 5, now + 3600, "writer-b");
  char *write_a = mint(&ks, QUIRE_PERM_WRITE, &vol_a, now - 5, now + 3600, "writer-a");
  enum {
    T_NONE,
    T_NOT_BEARER,
    T_GARBAGE,
    T_FORGED,
    T_EXPIRED,
    T_FOREIGN,
    T_READ,
    T_OTHER_VOL,
    T_WRITE,
    T_ADMIN,
    NT
  };
  char *hdr[NT] = {NULL,
                   strdup("Basic YWRtaW46YWRtaW4="),
                   strdup("Bearer qt1_garbage"),
                   bearer(forged),
                   bearer(expired),
                   bearer(foreign),
                   bearer(read_a),
                   bearer(write_b),
                   bearer(write_a),
                   bearer(admin)};
  const char *names[NT] = {"none",         "not bearer", "garbage",      "wrong signature", "expired",
                           "other key id", "read token", "other volume", "write token",     "admin"};

  struct answer a;
  for (int ep = 0; ep < NEP; ep++) {
    quire_buf body;
    body_for(ep, &vol_a, &body);
    for (int t = 0; t < NT; t++) {
      int want;
      if (t <= T_FOREIGN)
        want = 401;
      else if (t == T_READ && eps[ep].needs > QUIRE_PERM_READ)
        want = 403;
      else if (t == T_OTHER_VOL)
        want = 403;
      else
        want = eps[ep].baseline;
      raw_post(eps[ep].ps ? ps_port : ms_port, "POST", eps[ep].path, hdr[t], body.data, body.len, &a);
      CHECKF(a.status == want, "%s with %s: want %d, got %d", eps[ep].path, names[t], want, a.status);
      if (want == 401)
        CHECKF(strstr(a.head, "www-authenticate: bearer") != NULL, "%s with %s: 401 without WWW-Authenticate",
               eps[ep].path, names[t]);
    }
    quire__buf_free(&body);
  }
  /* A malformed body under a scoped token is 400 before any handler, and
   * a scoped token cannot reach a service-wide route. */
  raw_post(ms_port, "POST", "/metastore/v1/snapshot", hdr[T_READ],
           "\x0a\x03"
           "abc",
           5, &a);
  CHECK(a.status == 400);
  raw_post(ms_port, "POST", "/metastore/v1/snapshot", hdr[T_READ], "", 0, &a);
  CHECK(a.status == 400);
  /* Unknown paths stay 404, wrong methods 405, whoever asks. */
  raw_post(ms_port, "POST", "/metastore/v1/nope", NULL, "", 0, &a);
  CHECK(a.status == 404);
  /* Built-ins: /health is open; /metrics and /ready need the metrics token or an admin token. */
  for (int svc = 0; svc < 2; svc++) {
    unsigned port = svc ? ps_port : ms_port;
    raw_post(port, "GET", "/health", NULL, "", 0, &a);
    CHECK(a.status == 200);
    raw_post(port, "GET", "/metrics", NULL, "", 0, &a);
    CHECK(a.status == 401);
    raw_post(port, "GET", "/ready", hdr[T_WRITE], "", 0, &a);
    CHECK(a.status == 401);
    raw_post(port, "GET", "/metrics", "Bearer scrape-me", "", 0, &a);
    CHECK(a.status == 200);
    raw_post(port, "GET", "/ready", hdr[T_ADMIN], "", 0, &a);
    CHECK(a.status == 200);
  }

  /* The C client sees the 401 (not a reset connection) even when it sends
   * a body the server does not read: 60 pages (240 KiB, sent without
   * waiting for 100-continue) and 100 pages (400 KiB, with it). */
  {
    struct quire_http_client_opts bad_o = {.token = "qt1_garbage", .no_retry = 1};
    quire_psclient *bad;
    CHECK_OK(quire__psclient_open(ps_url, &bad_o, &bad));
    static uint8_t big[100][QUIRE_PAGE_SIZE];
    const uint8_t *bp[100];
    quire_pageidx bi[100];
    for (int i = 0; i < 100; i++) bp[i] = big[i], bi[i] = (quire_pageidx)(i + 1);
    struct quire_ps_written *ws;
    size_t nws;
    for (int round = 0; round < 5; round++) {
      CHECK_RC(quire__psclient_write_pages(bad, &vol_a, bi, bp, 60, NULL, &ws, &nws), QUIRE_EUNAUTHORIZED);
      CHECK_RC(quire__psclient_write_pages(bad, &vol_a, bi, bp, 100, NULL, &ws, &nws), QUIRE_EUNAUTHORIZED);
    }
    quire__psclient_close(bad);
  }

  /* Pages of A never land in a commit of B. writer-a writes pages of A and
   * commits them to A; writer-b, holding A's receipts, cannot commit them
   * to B (the receipt binds the segment to A), and writer-a cannot commit
   * to B at all (scope). */
  struct quire_http_client_opts ho_a = {.token = write_a}, ho_b = {.token = write_b};
  quire_psclient *psc_a;
  quire_msclient *msc_a, *msc_b;
  CHECK_OK(quire__psclient_open(ps_url, &ho_a, &psc_a));
  CHECK_OK(quire__msclient_open(ms_url, &ho_a, &msc_a));
  CHECK_OK(quire__msclient_open(ms_url, &ho_b, &msc_b));
  static uint8_t page[QUIRE_PAGE_SIZE];
  memset(page, 7, sizeof page);
  const uint8_t *pages[1] = {page};
  quire_pageidx idx[1] = {2};
  struct quire_ps_written *segs;
  size_t nsegs;
  CHECK_OK(quire__psclient_write_pages(psc_a, &vol_a, idx, pages, 1, NULL, &segs, &nsegs));
  CHECK(nsegs >= 1);
  struct quire_commit_segment cs[8];
  for (size_t i = 0; i < nsegs && i < 8; i++) {
    memset(&cs[i], 0, sizeof cs[i]);
    cs[i].sid = segs[i].sid;
    cs[i].graft = segs[i].graft;
    cs[i].graft_len = (uint32_t)segs[i].graft_len;
    cs[i].receipt = segs[i].receipt;
    cs[i].receipt_len = (uint32_t)segs[i].receipt_len;
  }
  quire_gid client, commit;
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &client));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit));
  struct quire_snapshot snap;
  CHECK_RC(quire__msclient_commit(msc_b, &vol_b, &client, &commit, 0, 2, cs, (uint32_t)nsegs, NULL, &snap),
           QUIRE_EFORBIDDEN);
  CHECK(strstr(quire_errmsg(), "receipt") != NULL);
  CHECK_RC(quire__msclient_commit(msc_a, &vol_b, &client, &commit, 0, 2, cs, (uint32_t)nsegs, NULL, &snap),
           QUIRE_EFORBIDDEN);
  CHECK(strstr(quire_errmsg(), "does not cover") != NULL);
  CHECK_OK(quire__msclient_commit(msc_a, &vol_a, &client, &commit, 0, 2, cs, (uint32_t)nsegs, NULL, &snap));
  CHECK(snap.lsn == 1);
  quire__psclient_written_free(segs, nsegs);
  /* Per-volume limits: page_count over 1000 pages; a commit of 3 pages
   * (12 KiB) over 8 KiB. */
  const uint8_t *three[3] = {page, page, page};
  quire_pageidx idx3[3] = {1, 2, 3};
  CHECK_OK(quire__psclient_write_pages(psc_a, &vol_a, idx3, three, 3, NULL, &segs, &nsegs));
  for (size_t i = 0; i < nsegs && i < 8; i++) {
    memset(&cs[i], 0, sizeof cs[i]);
    cs[i].sid = segs[i].sid;
    cs[i].graft = segs[i].graft;
    cs[i].graft_len = (uint32_t)segs[i].graft_len;
    cs[i].receipt = segs[i].receipt;
    cs[i].receipt_len = (uint32_t)segs[i].receipt_len;
  }
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &commit));
  CHECK_RC(quire__msclient_commit(msc_a, &vol_a, &client, &commit, 1, 3, cs, (uint32_t)nsegs, NULL, &snap),
           QUIRE_ETOOLARGE);
  CHECK(strstr(quire_errmsg(), "max-commit-bytes") != NULL);
  CHECK_RC(quire__msclient_commit(msc_a, &vol_a, &client, &commit, 1, 5000, NULL, 0, NULL, &snap),
           QUIRE_ETOOLARGE);
  CHECK(strstr(quire_errmsg(), "max-volume-pages") != NULL);
  CHECK_OK(quire__msclient_commit(msc_a, &vol_a, &client, &commit, 1, 1000, NULL, 0, NULL, &snap));
  CHECK(snap.lsn == 2);
  quire__psclient_written_free(segs, nsegs);
  quire__psclient_close(psc_a);
  quire__msclient_close(msc_a);
  quire__msclient_close(msc_b);

  /* Quotas: a token over its request rate (1/s after a burst of 60) gets
   * 429 with Retry-After; another token is served meanwhile. */
  char *hog = mint(&ks, QUIRE_PERM_READ, &vol_a, now - 5, now + 3600, "hog");
  char *hog_h = bearer(hog);
  quire_buf body;
  body_for(EP_SNAPSHOT, &vol_a, &body);
  int limited = 0;
  for (int i = 0; i < 400 && !limited; i++) {
    raw_post(ms_port, "POST", "/metastore/v1/snapshot", hog_h, body.data, body.len, &a);
    CHECK(a.status == 200 || a.status == 429);
    limited = a.status == 429;
  }
  CHECK(limited);
  CHECK(strstr(a.head, "retry-after: ") != NULL);
  raw_post(ms_port, "POST", "/metastore/v1/snapshot", hdr[T_READ], body.data, body.len, &a);
  CHECK(a.status == 200); /* reader-a has its own bucket (and A has a commit now) */
  raw_post(ms_port, "POST", "/metastore/v1/snapshot", hdr[T_ADMIN], body.data, body.len, &a);
  CHECK(a.status == 200);
  quire__buf_free(&body);

  quire__ps_service_close(ps, 2000);
  CHECK_OK(quire__ms_service_close(ms, 2000));
  for (int t = 0; t < NT; t++) free(hdr[t]);
  free(admin), free(expired), free(foreign), free(forged), free(read_a), free(write_b), free(write_a);
  free(hog), free(hog_h);
  quire__keyset_wipe(&ks);
  test_rmtree(dir);
  free(dir);
  printf("auth: ok\n");
  return 0;
}
