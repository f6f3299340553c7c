/*
 * bench/gc — what checkpoints, retention and segment GC do to a store
 * (issue 15's benchmark), in one run.
 *
 * The store: 10,000 commits of random page writes on 100 volumes (file://
 * without fsync in a temporary directory, an in-process metastore core;
 * each volume's first commit writes all of its PAGES pages, every later one
 * 1..8 random pages, one segment per commit as a client's flush makes;
 * 80 % of the commits go to the hottest 10 % of the volumes, about 800
 * commits each, the others get about 22).
 * Two histories of the same workload (same seed):
 *
 *   no GC        10,000 commits, then one pass (checkpoint + retention +
 *                sweep) with the default policy.
 *   periodic GC  a pass every 1,000 commits while committing (the server's
 *                --gc-every), then a final one.
 *
 * Passes use the default policy (checkpoint past a 64-segment walk or under
 * 50 % live; keep the newest 100 commits) except two stand-ins for time:
 * every commit here is seconds old, so keep-age is 1 ms (as if the history
 * were older than the default 7 days) and the grace period is 0 (nothing
 * is in flight between passes; a real store waits an hour).
 *
 * Per row: objects and bytes in the store (segments + commit objects +
 * markers), space amplification (segment bytes stored ÷ bytes of the page
 * versions retained history can read: the base checkpoint's pages plus
 * those of every later commit that is not a rewrite), store requests spent
 * by the pass, and the walk at the head (segments a cold read of a whole
 * volume fetches) with the time of such a read (GET every segment of the
 * walk, check and copy each page), averaged over the volumes.
 *
 *   bench_gc [--quick]   (QUIRE_BENCH_QUICK=1 also: 20 volumes, 2,000 commits)
 *   QUIRE_BENCH_DIR=/path   where the temporary store goes (default /tmp)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gc/gc_int.h"
#include "util/util.h"

#define PAGES 256 /* pages per volume (1 MiB) */
#define MAX_VOLS 100

static int quick;
static unsigned nvols, ncommits;

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_gc: %s: %s: %s\n", what, quire_strerror(rc), quire_errmsg());
  exit(1);
}
#define OK(x)                                                                                                \
  do {                                                                                                       \
    int rc_ = (x);                                                                                           \
    if (rc_) die(#x, rc_);                                                                                   \
  } while (0)

static uint64_t rng;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct env {
  char dir[4096], url[4200];
  quire_objstore *store;
  ms_catalog *cat;
  quire_metastore *ms;
  quire_gid vid[MAX_VOLS];
  quire_lsn head[MAX_VOLS];
};

static void env_open(struct env *e, const char *name) {
  const char *base = getenv("QUIRE_BENCH_DIR");
  snprintf(e->dir, sizeof e->dir, "%s/quire-bench-gc-%s-%d", base && *base ? base : "/tmp", name,
           (int)getpid());
  snprintf(e->url, sizeof e->url, "file://%s?fsync=0", e->dir);
  OK(quire_objstore_open(e->url, &e->store));
  OK(quire__catalog_mem_open(&e->cat));
  struct quire_metastore_opts mo = {.store = e->store, .catalog = e->cat};
  OK(quire_metastore_open(&mo, &e->ms));
  for (unsigned v = 0; v < nvols; v++) OK(quire_gid_new(QUIRE_GID_VOLUME, &e->vid[v]));
  memset(e->head, 0, sizeof e->head);
}

static void env_close(struct env *e) {
  quire_metastore_close(e->ms);
  ms_catalog_close(e->cat);
  quire_objstore_close(e->store);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
  if (system(cmd) != 0) fprintf(stderr, "bench_gc: could not remove %s\n", e->dir);
}

/* One client commit on volume v: n pages (all of them for the first). */
static void commit(struct env *e, unsigned v) {
  static uint8_t page[QUIRE_PAGE_SIZE];
  quire_pageidx idx[PAGES];
  size_t n = 0;
  if (e->head[v] == 0) {
    for (quire_pageidx p = 1; p <= PAGES; p++) idx[n++] = p;
  } else {
    size_t want = 1 + rnd() % 8;
    uint8_t seen[PAGES + 1] = {0};
    while (n < want) {
      quire_pageidx p = (quire_pageidx)(1 + rnd() % PAGES);
      if (!seen[p]) seen[p] = 1, idx[n++] = p;
    }
    /* ascending, as a segment holds them */
    for (size_t i = 1; i < n; i++)
      for (size_t k = i; k > 0 && idx[k - 1] > idx[k]; k--) {
        quire_pageidx t = idx[k];
        idx[k] = idx[k - 1];
        idx[k - 1] = t;
      }
  }
  quire_gid sid;
  OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid));
  quire_segment_builder *b;
  OK(quire_segment_builder_new(&sid, NULL, &b));
  splinter_t *graft;
  OK(splinter_new(&graft));
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < sizeof page; k += 8) {
      uint64_t x = rnd();
      memcpy(page + k, &x, 8);
    }
    OK(quire_segment_builder_add(b, &e->vid[v], idx[i], page));
    if (splinter_insert(graft, idx[i]) < 0) die("splinter_insert", QUIRE_ENOMEM);
  }
  char key[64], s[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&sid, s);
  snprintf(key, sizeof key, "segments/%s", s);
  OK(quire_segment_builder_to_store(b, e->store, key, 0));
  quire_segment_builder_free(b);
  uint8_t *gbytes;
  size_t glen;
  OK(splinter_serialize_alloc(graft, &gbytes, &glen));
  splinter_free(graft);
  struct quire_commit_segment seg = {sid, gbytes, (uint32_t)glen};
  struct quire_commit c = {0};
  c.vid = e->vid[v];
  OK(quire_gid_new(QUIRE_GID_CLIENT, &c.client_id));
  OK(quire_gid_new(QUIRE_GID_COMMIT, &c.commit_id));
  c.lsn = e->head[v] + 1;
  c.page_count = PAGES;
  c.nsegments = 1;
  c.segments = &seg;
  struct quire_snapshot snap;
  OK(quire__ms_commit(e->ms, &c, &snap));
  e->head[v] = snap.lsn;
  free(gbytes);
}

/* The volume of commit i: each volume once first, then 80 % of the commits
 * on the hottest 10 % of the volumes, the rest uniform over the others. */
static unsigned pick(unsigned i) {
  if (i < nvols) return i;
  unsigned hot = nvols / 10 ? nvols / 10 : 1;
  if (rnd() % 100 < 80) return (unsigned)(rnd() % hot);
  return hot + (unsigned)(rnd() % (nvols - hot));
}

struct row {
  const char *name;
  uint64_t objects, bytes, seg_bytes, live_bytes;
  uint64_t requests, pass_ms;
  double walk, read_ms, hot_walk, hot_read_ms;
  uint32_t walk_max;
};

/* Objects and bytes under prefix. */
static void count(quire_objstore *s, const char *prefix, uint64_t *objects, uint64_t *bytes) {
  char after[160] = "";
  *objects = *bytes = 0;
  for (;;) {
    quire_objstore_list l;
    OK(quire_objstore_list_keys(s, prefix, after, 1000, &l));
    for (size_t i = 0; i < l.count; i++) (*objects)++, *bytes += l.entries[i].size;
    int more = l.truncated && l.count;
    if (more) snprintf(after, sizeof after, "%s", l.entries[l.count - 1].key);
    quire_objstore_list_free(&l);
    if (!more) return;
  }
}

/* A cold read of every page of volume v at its head: GET each segment of
 * the walk, verify and copy the pages the walk takes from it. */
static void cold_read(struct env *e, unsigned v, uint32_t *segments, uint64_t *ns) {
  static uint8_t out[QUIRE_PAGE_SIZE];
  uint64_t t0 = quire__mono_ns();
  quire_lsn head;
  OK(quire__ms_refresh(e->ms, &e->vid[v], &head));
  struct gc_walk w;
  struct gc_jobs jobs;
  OK(quire__gc_walk_jobs(e->ms, &e->vid[v], head, &w, &jobs));
  uint64_t pages = 0;
  for (size_t j = 0; j < jobs.n; j++) {
    char key[64], s[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&jobs.sid[j], s);
    snprintf(key, sizeof key, "segments/%s", s);
    uint8_t *data;
    size_t len;
    OK(quire_objstore_get(e->store, key, &data, &len));
    quire_segment_view sv;
    OK(quire_segment_open(data, len, NULL, &sv));
    splinter_iter_t it;
    splinter_iter_init(&it, splinter_ref_owned(jobs.cut[j]), 1);
    uint32_t p;
    while (splinter_iter_next(&it, &p)) {
      const uint8_t *page;
      OK(quire_segment_read_page(&sv, &e->vid[v], p, &page));
      memcpy(out, page, sizeof out);
      pages++;
    }
    quire_objstore_free(data);
  }
  if (pages != PAGES) die("cold read: wrong page count", QUIRE_EINTERNAL);
  *segments = w.segments;
  quire__gc_jobs_free(&jobs);
  *ns = quire__mono_ns() - t0;
}

/* Bytes of the page versions retained history can read. */
static uint64_t retained_bytes(struct env *e) {
  quire_buf b;
  quire__buf_init(&b, QUIRE_COMMIT_MAX_SIZE);
  uint64_t pages = 0;
  for (unsigned v = 0; v < nvols; v++) {
    quire_lsn base, head;
    OK(quire__ms_refresh(e->ms, &e->vid[v], &head));
    OK(quire__ms_base(e->ms, &e->vid[v], 0, &base));
    for (quire_lsn l = base; l <= head; l++) {
      struct quire_commit c;
      OK(quire__ms_load(e->ms, &e->vid[v], l, &b, &c, NULL));
      if (l == base || !(c.flags & QUIRE_COMMIT_F_REWRITE))
        for (uint32_t k = 0; k < c.nsegments; k++) {
          splinter_view_t sv;
          OK(splinter_view_open(c.segments[k].graft, c.segments[k].graft_len, &sv));
          pages += splinter_view_cardinality(&sv);
        }
      quire__commit_clear(&c);
    }
  }
  quire__buf_free(&b);
  return pages * QUIRE_PAGE_SIZE;
}

static void measure(struct env *e, struct row *r) {
  uint64_t o, by;
  r->objects = r->bytes = 0;
  count(e->store, "segments/", &o, &by);
  r->objects += o, r->bytes += by, r->seg_bytes = by;
  count(e->store, "volumes/", &o, &by);
  r->objects += o, r->bytes += by;
  r->live_bytes = retained_bytes(e);
  uint64_t walk = 0, ns = 0, hwalk = 0, hns = 0;
  unsigned hot = nvols / 10 ? nvols / 10 : 1;
  for (unsigned v = 0; v < nvols; v++) {
    uint32_t s;
    uint64_t t;
    cold_read(e, v, &s, &t);
    walk += s, ns += t;
    if (v < hot) hwalk += s, hns += t;
    if (s > r->walk_max) r->walk_max = s;
  }
  r->walk = (double)walk / nvols;
  r->read_ms = (double)ns / nvols / 1e6;
  r->hot_walk = (double)hwalk / hot;
  r->hot_read_ms = (double)hns / hot / 1e6;
}

static struct gc_pass_opts pass_opts(struct env *e) {
  struct gc_pass_opts o = {.store = e->store, .grace_ms = 0, .work_dir = e->dir};
  o.retention.max_age_ms = 1; /* stand-in: the history is older than 7 days */
  return o;
}

static void pass(struct env *e, struct row *r, uint64_t *checkpoints) {
  struct gc_pass_opts o = pass_opts(e);
  usleep(2000); /* every commit older than keep-age (1 ms) */
  /* grace 0 means the default (1 h): a grace of 1 ms, with nothing in flight */
  o.grace_ms = 1;
  struct gc_pass_result res;
  OK(quire__gc_pass(e->ms, &o, &res));
  if (res.volume_errors) die("pass: volume errors", QUIRE_EINTERNAL);
  if (r) r->requests += res.requests, r->pass_ms += res.duration_ms;
  if (checkpoints) *checkpoints += res.checkpoints;
  for (unsigned v = 0; v < nvols; v++) OK(quire__ms_refresh(e->ms, &e->vid[v], &e->head[v])); /* rewrites */
}

static void print_row(const struct row *r) {
  printf("%-32s %8llu %7.1f %6.2f %8llu %7llu %6.1f %5u %7.2f %6.1f %7.2f\n", r->name,
         (unsigned long long)r->objects, (double)r->bytes / (1 << 20), (double)r->seg_bytes / (double)r->live_bytes,
         (unsigned long long)r->requests, (unsigned long long)r->pass_ms, r->walk, r->walk_max, r->read_ms,
         r->hot_walk, r->hot_read_ms);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  quick = (argc > 1 && !strcmp(argv[1], "--quick")) || getenv("QUIRE_BENCH_QUICK");
  nvols = quick ? 20 : 100;
  ncommits = quick ? 2000 : 10000;
  unsigned every = ncommits / 10;
  quire__log_set_level(-1);
  printf(
      "bench_gc: %u commits on %u volumes of %u pages (first commit all pages, then 1..8 random ones; 80 %% "
      "of the commits on 10 %% of the volumes); file:// store without fsync\n",
      ncommits, nvols, PAGES);
  printf("%-32s %8s %7s %6s %8s %7s %6s %5s %7s %6s %7s\n", "", "objects", "MiB", "amplif", "requests",
         "pass ms", "walk", "max", "read ms", "hot", "hot ms");
  /* History 1: no GC while committing, then passes. */
  struct env e;
  env_open(&e, "nogc");
  rng = 42;
  uint64_t t0 = quire__mono_ns();
  for (unsigned i = 0; i < ncommits; i++) commit(&e, pick(i));
  double commit_s = (quire__mono_ns() - t0) / 1e9;
  struct row r0 = {.name = "no GC: after the commits"};
  measure(&e, &r0);
  print_row(&r0);
  struct row r1 = {.name = "  after one pass (checkpoints)"};
  uint64_t ck1 = 0;
  pass(&e, &r1, &ck1);
  measure(&e, &r1);
  print_row(&r1);
  struct row r1b = {.name = "  after a second pass"};
  pass(&e, &r1b, &ck1);
  measure(&e, &r1b);
  print_row(&r1b);
  env_close(&e);
  /* History 2: the same commits with a pass every `every` of them. */
  env_open(&e, "periodic");
  rng = 42;
  struct row r2 = {.name = "periodic GC: after the commits"};
  uint64_t ck2 = 0;
  for (unsigned i = 0; i < ncommits; i++) {
    commit(&e, pick(i));
    if ((i + 1) % every == 0 && i + 1 < ncommits) pass(&e, NULL, &ck2);
  }
  measure(&e, &r2);
  print_row(&r2);
  struct row r3 = {.name = "  after a final pass"};
  pass(&e, &r3, &ck2);
  measure(&e, &r3);
  print_row(&r3);
  env_close(&e);
  printf("checkpoints written: %llu (no GC), %llu (periodic, %u passes); committing took %.1f s\n",
         (unsigned long long)ck1, (unsigned long long)ck2, 10, commit_s);
  printf("amplif = segment bytes stored / bytes of page versions retained history reads (target <= 1.5); "
         "walk = segments a cold read of a whole volume at the head fetches (average, max); read ms = "
         "that read's time (average); hot, hot ms = the same over the hottest 10 %% of the volumes\n");
  return 0;
}
