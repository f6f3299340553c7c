/*
 * Model-based test of sync: three clients with their own data directories
 * share one volume through real services on loopback. Random local commits
 * (writes and truncations), pushes, pulls, resets, readers pinned at random
 * moments and client restarts are applied to the clients and to a model of
 * the remote history and of each client (its remote lsn, unpushed commits,
 * conflict state, head content). The outcome of every sync call must be the
 * model's (success or QUIRE_ECONFLICT), and after every sync point each
 * client's reads equal the model at its snapshot, byte for byte; pinned
 * readers keep reading their snapshot whatever happens meanwhile.
 */
#include "client_test.h"
#include "services.h"

#define NCLIENTS 3
#define MAXP 64
#define MAXREMOTE 4096

struct content {
  quire_pagecount count;
  uint32_t tag[MAXP + 1];
};

static struct content remote[MAXREMOTE];
static quire_lsn remote_head;

struct mclient {
  char dir[1024];
  quire_client *c;
  quire_volume *v;
  quire_reader *pinned;
  struct content pinned_content;
  quire_lsn remote_lsn;
  int unpushed, conflict;
  struct content head;
};

static struct mclient cl[NCLIENTS];
static struct services svc;
static char vid[QUIRE_GID_TEXT_LEN + 1];
static uint32_t next_tag = 1;
static int trace;
#define TRACE(...) \
  do {             \
    if (trace) printf(__VA_ARGS__); \
  } while (0)

static void open_client(struct mclient *m, const char *name_or_vid, unsigned flags) {
  quire_client_opts o;
  client_opts(&o, m->dir, &svc);
  o.push_batch_pages = 16;
  CHECK_OK(quire_client_open(&o, &m->c));
  CHECK_OK(quire_volume_open(m->c, name_or_vid, flags, &m->v));
}

static void close_client(struct mclient *m) {
  quire_reader_close(m->pinned);
  m->pinned = NULL;
  quire_volume_close(m->v);
  CHECK_OK(quire_client_close(m->c));
}

static void expect_content(quire_reader *r, const struct content *want, int who, const char *what) {
  uint8_t page[QUIRE_PAGE_SIZE];
  CHECKF(quire_reader_page_count(r) == want->count, "client %d %s: page_count %u, model %u", who, what,
         quire_reader_page_count(r), want->count);
  for (quire_pageidx i = 1; i <= MAXP + 2; i++) {
    CHECK_OK(quire_reader_read(r, i, page));
    uint32_t tag = i <= want->count && i <= MAXP ? want->tag[i] : 0;
    CHECKF(page_is(page, tag), "client %d %s: page %u want tag %u got %llu", who, what, i, tag,
           (unsigned long long)page_tag(page));
  }
}

static void check_client(int k, const char *what) {
  struct mclient *m = &cl[k];
  quire_reader *r;
  CHECK_OK(quire_reader_open(m->v, &r));
  expect_content(r, &m->head, k, what);
  quire_reader_close(r);
  quire_volume_status st;
  CHECK_OK(quire_volume_status_get(m->v, &st));
  CHECKF(st.remote_lsn == m->remote_lsn, "client %d %s: remote lsn %llu, model %llu", k, what,
         (unsigned long long)st.remote_lsn, (unsigned long long)m->remote_lsn);
  CHECK((st.state == QUIRE_STATE_CONFLICT) == m->conflict);
  CHECK((st.unpushed_commits > 0) == m->unpushed);
}

static void local_commit(int k) {
  struct mclient *m = &cl[k];
  quire_writer *w;
  CHECK_OK(quire_writer_open(m->v, &w));
  uint8_t page[QUIRE_PAGE_SIZE];
  struct content next = m->head;
  unsigned n = 1 + (unsigned)test_rand_below(8);
  for (unsigned i = 0; i < n; i++) {
    if (test_rand_below(12) == 0) {
      quire_pagecount c = (quire_pagecount)test_rand_below(MAXP + 1);
      TRACE("  client %d truncate %u\n", k, c);
      CHECK_OK(quire_writer_truncate(w, c));
      for (quire_pageidx p = c + 1; p <= MAXP; p++) next.tag[p] = 0;
      next.count = c;
      continue;
    }
    quire_pageidx idx = 1 + (quire_pageidx)test_rand_below(MAXP);
    uint32_t tag = test_rand_below(10) ? next_tag++ : 0;
    page_fill(page, tag);
    CHECK_OK(quire_writer_write(w, idx, page));
    next.tag[idx] = tag;
    TRACE("  client %d write %u tag %u\n", k, idx, tag);
    if (idx > next.count) next.count = idx;
  }
  quire_lsn base = quire_writer_base_lsn(w), lsn;
  CHECK_OK(quire_writer_commit(w, &lsn));
  TRACE("client %d commit lsn %llu count %u\n", k, (unsigned long long)lsn, next.count);
  if (lsn != base) m->unpushed = 1;
  m->head = next;
}

static void push(int k) {
  struct mclient *m = &cl[k];
  int rc = quire_volume_push(m->v, 0);
  TRACE("client %d push rc %d\n", k, rc);
  if (m->conflict) {
    CHECK_RC(rc, QUIRE_ECONFLICT);
  } else if (!m->unpushed) {
    CHECK_OK(rc);
  } else if (m->remote_lsn != remote_head) {
    CHECK_RC(rc, QUIRE_ECONFLICT);
    m->conflict = 1;
  } else {
    CHECK_OK(rc);
    CHECK(remote_head + 1 < MAXREMOTE);
    remote[++remote_head] = m->head;
    m->remote_lsn = remote_head;
    m->unpushed = 0;
  }
  check_client(k, "after push");
}

static void pull(int k) {
  struct mclient *m = &cl[k];
  int rc = quire_volume_pull(m->v, 0);
  TRACE("client %d pull rc %d\n", k, rc);
  if (m->conflict) {
    CHECK_RC(rc, QUIRE_ECONFLICT);
  } else if (m->remote_lsn == remote_head) {
    CHECK_OK(rc);
  } else if (m->unpushed) {
    CHECK_RC(rc, QUIRE_ECONFLICT);
    m->conflict = 1;
  } else {
    CHECK_OK(rc);
    m->head = remote[remote_head];
    m->remote_lsn = remote_head;
  }
  check_client(k, "after pull");
}

static void reset(int k) {
  struct mclient *m = &cl[k];
  CHECK_OK(quire_volume_reset(m->v, 0));
  TRACE("client %d reset to remote %llu (count %u)\n", k, (unsigned long long)remote_head, remote[remote_head].count);
  m->head = remote[remote_head];
  m->remote_lsn = remote_head;
  m->unpushed = m->conflict = 0;
  check_client(k, "after reset");
}

int main(void) {
  test_seed();
  trace = getenv("QUIRE_TEST_TRACE") != NULL;
  char *root = test_tmpdir("client_model");
  char srv[1024];
  pathf(srv, sizeof srv, "%s/server", root);
  services_start(&svc, srv, NULL);
  for (int k = 0; k < NCLIENTS; k++) pathf(cl[k].dir, sizeof cl[k].dir, "%s/c%d", root, k);
  /* Client 0 creates the volume and pushes its first commit. */
  open_client(&cl[0], "m", QUIRE_CREATE);
  local_commit(0);
  push(0);
  quire_gid g;
  quire_volume_vid(cl[0].v, &g);
  quire_gid_format(&g, vid);
  for (int k = 1; k < NCLIENTS; k++) {
    open_client(&cl[k], vid, 0);
    cl[k].head = remote[remote_head];
    cl[k].remote_lsn = remote_head;
    check_client(k, "after adopting");
  }
  uint64_t steps = test_long_mode() ? 20000 : 1500, pushes = 0, conflicts = 0;
  for (uint64_t step = 0; step < steps; step++) {
    int k = (int)test_rand_below(NCLIENTS);
    struct mclient *m = &cl[k];
    unsigned op = (unsigned)test_rand_below(100);
    if (op < 35) {
      local_commit(k);
    } else if (op < 55) {
      int was = m->conflict;
      push(k);
      pushes++;
      conflicts += m->conflict && !was;
    } else if (op < 75) {
      pull(k);
    } else if (op < 80 || (m->conflict && op < 90)) {
      reset(k);
    } else if (op < 88) {
      quire_reader_close(m->pinned);
      CHECK_OK(quire_reader_open(m->v, &m->pinned));
      m->pinned_content = m->head;
    } else if (op < 97) {
      if (m->pinned) expect_content(m->pinned, &m->pinned_content, k, "pinned reader");
    } else {
      close_client(m);
      open_client(m, k == 0 ? "m" : vid, 0);
      check_client(k, "after restart");
    }
  }
  printf("%llu steps: %llu remote commits, %llu pushes, %llu conflicts\n", (unsigned long long)steps,
         (unsigned long long)remote_head, (unsigned long long)pushes, (unsigned long long)conflicts);
  CHECK(conflicts > 0 && remote_head > 10); /* the test exercised both outcomes */
  for (int k = 0; k < NCLIENTS; k++) {
    close_client(&cl[k]);
    CHECK(store_check_clean(cl[k].dir));
  }
  services_stop(&svc);
  test_rmtree(root);
  free(root);
  return test_done("test_client_model");
}
