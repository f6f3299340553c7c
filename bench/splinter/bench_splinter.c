/*
 * bench/splinter/bench_splinter.c — splinter against CRoaring on the page
 * sets of issue 3, in the same run: serialized size (Roaring: portable format
 * after run optimization), contains on a view vs on a deserialized Roaring
 * bitmap, open+contains vs deserialize+contains; then union / intersection /
 * cut / difference in every pairing of forms (owned, view) on 100k-element
 * sets, dense sets and page-set shapes (a transaction's pages, a segment's,
 * a scan, a few pages in a huge volume). Prints the ratio the targets are
 * stated in. Timings are the best of several rounds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <roaring/roaring.h>

#include "quire/splinter.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_splinter: %s: %s\n", what, quire_strerror(rc));
  exit(1);
}

typedef struct bset {
  const char *name;
  splinter_t *s;
  roaring_bitmap_t *r;
  uint8_t *sbytes, *rbytes;
  size_t slen, rlen;
  splinter_view_t v;
  roaring_bitmap_t *rd; /* deserialized */
} bset;

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* n distinct random values in [lo, hi], sorted. */
static uint32_t *random_values(size_t n, uint64_t lo, uint64_t hi, size_t *out_n) {
  uint32_t *v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = (uint32_t)(lo + rnd() % (hi - lo + 1));
  qsort(v, n, sizeof *v, cmp_u32);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (m == 0 || v[i] != v[m - 1]) v[m++] = v[i];
  *out_n = m;
  return v;
}

static void finish(bset *b) {
  int rc;
  roaring_bitmap_run_optimize(b->r);
  b->rlen = roaring_bitmap_portable_size_in_bytes(b->r);
  b->rbytes = malloc(b->rlen);
  roaring_bitmap_portable_serialize(b->r, (char *)b->rbytes);
  b->rd = roaring_bitmap_portable_deserialize_safe((const char *)b->rbytes, b->rlen);
  if ((rc = splinter_serialize_alloc(b->s, &b->sbytes, &b->slen))) die("serialize", rc);
  if ((rc = splinter_view_open(b->sbytes, b->slen, &b->v))) die("view_open", rc);
  if (!b->rd || roaring_bitmap_get_cardinality(b->rd) != splinter_view_cardinality(&b->v)) die("mismatch", 0);
}

static void from_values(bset *b, const char *name, const uint32_t *v, size_t n) {
  b->name = name;
  int rc = splinter_from_sorted(v, n, &b->s);
  if (rc) die("from_sorted", rc);
  b->r = roaring_bitmap_of_ptr(n, v);
  finish(b);
}

static void make_sets(bset *sets) {
  size_t n;
  uint32_t one = 12345;
  from_values(&sets[0], "1 page", &one, 1);
  uint32_t *v = random_values(100, 1, 1000000, &n);
  from_values(&sets[1], "100 random in 1..1M", v, n);
  free(v);
  v = random_values(10000, 1, 1000000, &n);
  from_values(&sets[2], "10k random in 1..1M", v, n);
  free(v);
  /* 1..100k dense */
  sets[3].name = "1..100k dense";
  splinter_new(&sets[3].s);
  splinter_insert_range(sets[3].s, 1, 100000);
  sets[3].r = roaring_bitmap_create();
  roaring_bitmap_add_range_closed(sets[3].r, 1, 100000);
  finish(&sets[3]);
  /* 50% random of 1..65536 */
  v = malloc(65536 * sizeof *v);
  n = 0;
  for (uint32_t x = 1; x <= 65536; x++)
    if (rnd() & 1) v[n++] = x;
  from_values(&sets[4], "50% of 1..65536", v, n);
  free(v);
  /* 100 runs of 64 pages spread over 1..1M */
  uint32_t starts[100];
  for (int i = 0; i < 100; i++) starts[i] = 1 + (uint32_t)(i * 10000 + rnd() % (10000 - 64));
  v = malloc(6400 * sizeof *v);
  n = 0;
  for (int i = 0; i < 100; i++)
    for (uint32_t k = 0; k < 64; k++) v[n++] = starts[i] + k;
  from_values(&sets[5], "100 runs of 64 in 1..1M", v, n);
  free(v);
  v = random_values(1000000, 0, UINT32_MAX, &n);
  from_values(&sets[6], "1M random in u32", v, n);
  free(v);
}

#define NSYNTH 7
#define NSQLITE 7
#define NSETS (NSYNTH + NSQLITE)
#define NPROBE 4096

static volatile uint64_t sink;

/* Best thread CPU time per op (ns) of rounds (cpu_now, below: time spent
 * waiting for a core on a shared machine does not count); body runs reps ops. */
#define TIME_BEST(out_ns, reps, body)                                                                        \
  do {                                                                                                       \
    double best_ = 1e30;                                                                                     \
    for (int round_ = 0; round_ < 5; round_++) {                                                             \
      double t0_ = cpu_now();                                                                                \
      for (size_t rep_ = 0; rep_ < (reps); rep_++) {                                                         \
        body;                                                                                                \
      }                                                                                                      \
      double dt_ = (cpu_now() - t0_) / (double)(reps);                                                       \
      if (dt_ < best_) best_ = dt_;                                                                          \
    }                                                                                                        \
    (out_ns) = best_ * 1e9;                                                                                  \
  } while (0)

/* ---- algebra ------------------------------------------------------------------------------ */

typedef struct vec {
  uint32_t *v;
  size_t n, cap;
} vec;

static void vpush(vec *x, uint64_t value) {
  if (x->n == x->cap) {
    x->cap = x->cap ? x->cap * 2 : 1024;
    x->v = realloc(x->v, x->cap * sizeof *x->v);
    if (!x->v) die("realloc", 0);
  }
  x->v[x->n++] = (uint32_t)value;
}

static void vsort(vec *x) {
  qsort(x->v, x->n, sizeof *x->v, cmp_u32);
  size_t m = 0;
  for (size_t i = 0; i < x->n; i++)
    if (m == 0 || x->v[i] != x->v[m - 1]) x->v[m++] = x->v[i];
  x->n = m;
}

static void vrandom(vec *x, size_t n, uint64_t lo, uint64_t hi) {
  for (size_t i = 0; i < n; i++) vpush(x, lo + rnd() % (hi - lo + 1));
  vsort(x);
  if (x->n > n * 100 / 105) x->n = n * 100 / 105; /* the first ~n of n*1.05 draws */
}

/* The pages one SQLite transaction changes in a volume of pages [lo, lo+pages):
 * the file header and a few interior b-tree pages near the front, a short
 * run of leaf pages, and a few scattered index pages. About 15 pages. */
static void txn_pages(vec *x, uint64_t lo, uint64_t pages) {
  vpush(x, lo + rnd() % 8);
  for (int i = 0; i < 2; i++) vpush(x, lo + rnd() % (pages / 64 + 1));
  uint64_t leaf = lo + rnd() % pages, run = 1 + rnd() % 16;
  for (uint64_t k = 0; k < run; k++) vpush(x, leaf + k < lo + pages ? leaf + k : lo + pages - 1);
  for (int i = 0; i < 4; i++) vpush(x, lo + rnd() % pages);
}

/* A segment's pages: the union of ntxn transactions. */
static void segment_pages(vec *x, int ntxn, uint64_t lo, uint64_t pages) {
  for (int t = 0; t < ntxn; t++) txn_pages(x, lo, pages);
  vsort(x);
}

#define VOLUME_PAGES 262144 /* a 1 GiB volume of 4 KiB pages */

/* Operand pairs. Each fills two sorted value sets. */
static void shape_random_1m(vec *a, vec *b) {
  vrandom(a, 105000, 1, 1000000), vrandom(b, 105000, 1, 1000000);
}
static void shape_random_16m(vec *a, vec *b) {
  vrandom(a, 105000, 1, 16000000), vrandom(b, 105000, 1, 16000000);
}
static void shape_ranges(vec *a, vec *b) {
  for (uint32_t x = 1; x <= 100000; x++) vpush(a, x);
  for (uint32_t x = 50000; x <= 149999; x++) vpush(b, x);
}
static void shape_half_1m(vec *a, vec *b) {
  for (uint32_t x = 1; x <= 1000000; x++) {
    if (rnd() & 1) vpush(a, x);
    if (rnd() & 1) vpush(b, x);
  }
}
static void shape_txn_segment(vec *a, vec *b) {
  txn_pages(a, 1, VOLUME_PAGES), vsort(a);
  segment_pages(b, 1000, 1, VOLUME_PAGES);
}
static void shape_segments(vec *a, vec *b) {
  segment_pages(a, 1000, 1, VOLUME_PAGES), segment_pages(b, 1000, 1, VOLUME_PAGES);
}
static void shape_scan_segment(vec *a, vec *b) {
  for (uint32_t x = 1; x <= VOLUME_PAGES; x++) vpush(a, x);
  segment_pages(b, 1000, 1, VOLUME_PAGES);
}
static void shape_few_in_huge(vec *a, vec *b) {
  for (int i = 0; i < 16; i++) vpush(a, 1 + rnd() % (UINT32_MAX - 1));
  segment_pages(b, 1000, 1, (uint64_t)UINT32_MAX - 1);
  for (int i = 0; i < 16; i += 2) vpush(b, a->v[i]); /* half of the wanted pages are in the segment */
  vsort(a), vsort(b);
}
static void shape_unions_64k(vec *a, vec *b) {
  while (a->n < 10000) segment_pages(a, 50, 1, 65536);
  while (b->n < 10000) segment_pages(b, 50, 1, 65536);
}

typedef struct alg_ctx {
  splinter_ref_t a, b;
  splinter_t *out, *work, *removed;
  roaring_bitmap_t *ra, *rb;
  int op; /* 0 union, 1 intersection, 2 cut, 3 difference */
} alg_ctx;

static const char *op_names[4] = {"union", "intersect", "cut", "difference"};

static void run_splinter(alg_ctx *c) {
  int rc;
  switch (c->op) {
  case 0: rc = splinter_union(c->a, c->b, c->out); break;
  case 1: rc = splinter_intersection(c->a, c->b, c->out); break;
  case 2: /* the page query: a copy of the wanted pages, cut by a segment's */
    rc = splinter_assign(c->work, c->a);
    if (!rc) rc = splinter_cut(c->work, c->b, c->removed);
    break;
  default: rc = splinter_difference(c->a, c->b, c->out); break;
  }
  if (rc) die("algebra", rc);
}

static void run_roaring(alg_ctx *c) {
  switch (c->op) {
  case 0: roaring_bitmap_free(roaring_bitmap_or(c->ra, c->rb)); break;
  case 1: roaring_bitmap_free(roaring_bitmap_and(c->ra, c->rb)); break;
  case 2:
    roaring_bitmap_free(roaring_bitmap_andnot(c->ra, c->rb));
    roaring_bitmap_free(roaring_bitmap_and(c->ra, c->rb));
    break;
  default: roaring_bitmap_free(roaring_bitmap_andnot(c->ra, c->rb)); break;
  }
}

/* CPU time of this thread (user and system: page faults count, time spent
 * waiting for a core on a busy machine does not). */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best of 7 rounds, each at least ~2 ms of repetitions; ns of CPU per op. */
static double time_op(void (*fn)(alg_ctx *), alg_ctx *c) {
  size_t reps = 1;
  for (;;) {
    double t0 = cpu_now();
    for (size_t r = 0; r < reps; r++) fn(c);
    if (cpu_now() - t0 > 0.002 || reps >= ((size_t)1 << 20)) break;
    reps *= 2;
  }
  double best = 1e30;
  for (int round = 0; round < 7; round++) {
    double t0 = cpu_now();
    for (size_t r = 0; r < reps; r++) fn(c);
    double dt = (cpu_now() - t0) / (double)reps;
    if (dt < best) best = dt;
  }
  return best * 1e9;
}

/* Checks the splinter result of c->op against Roaring's (cardinality). */
static void verify(alg_ctx *c) {
  run_splinter(c);
  roaring_bitmap_t *want = c->op == 0   ? roaring_bitmap_or(c->ra, c->rb)
                           : c->op == 1 ? roaring_bitmap_and(c->ra, c->rb)
                                        : roaring_bitmap_andnot(c->ra, c->rb);
  uint64_t got = splinter_cardinality(c->op == 2 ? c->work : c->out);
  if (got != roaring_bitmap_get_cardinality(want)) die("algebra result differs from Roaring's", 0);
  if (c->op == 2 && splinter_cardinality(c->removed) != roaring_bitmap_and_cardinality(c->ra, c->rb))
    die("cut: removed part differs from Roaring's intersection", 0);
  roaring_bitmap_free(want);
}

static const struct {
  const char *name;
  void (*make)(vec *, vec *);
} shapes[] = {
    {"100k random in 1..1M each", shape_random_1m},
    {"100k random in 1..16M each", shape_random_16m},
    {"1..100k vs 50k..150k", shape_ranges},
    {"50% of 1..1M each", shape_half_1m},
    {"txn vs segment (1 GiB vol)", shape_txn_segment},
    {"segment vs segment", shape_segments},
    {"scan vs segment", shape_scan_segment},
    {"16 pages vs segment, u32 vol", shape_few_in_huge},
    {"10k-page unions in 1..65536", shape_unions_64k},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

/* The operands of one shape, in both forms. */
typedef struct operands {
  vec va, vb;
  splinter_t *sa, *sb;
  roaring_bitmap_t *ra, *rb;
  uint8_t *abytes, *bbytes;
  size_t alen, blen;
  splinter_view_t av, bv;
} operands;

static void operands_make(operands *o, size_t sh) {
  int rc;
  memset(o, 0, sizeof *o);
  shapes[sh].make(&o->va, &o->vb);
  if ((rc = splinter_from_sorted(o->va.v, o->va.n, &o->sa)) ||
      (rc = splinter_from_sorted(o->vb.v, o->vb.n, &o->sb)))
    die("from_sorted", rc);
  o->ra = roaring_bitmap_of_ptr(o->va.n, o->va.v), o->rb = roaring_bitmap_of_ptr(o->vb.n, o->vb.v);
  roaring_bitmap_run_optimize(o->ra), roaring_bitmap_run_optimize(o->rb);
  if ((rc = splinter_serialize_alloc(o->sa, &o->abytes, &o->alen)) ||
      (rc = splinter_serialize_alloc(o->sb, &o->bbytes, &o->blen)))
    die("serialize", rc);
  if ((rc = splinter_view_open(o->abytes, o->alen, &o->av)) ||
      (rc = splinter_view_open(o->bbytes, o->blen, &o->bv)))
    die("view_open", rc);
}

static void operands_free(operands *o) {
  splinter_free(o->sa), splinter_free(o->sb);
  splinter_bytes_free(o->abytes), splinter_bytes_free(o->bbytes);
  roaring_bitmap_free(o->ra), roaring_bitmap_free(o->rb);
  free(o->va.v), free(o->vb.v);
}

/* pair: bit 1 = a is a view, bit 0 = b is a view. */
static void ctx_pair(alg_ctx *c, operands *o, int pair) {
  c->a = pair & 2 ? splinter_ref_view(&o->av) : splinter_ref_owned(o->sa);
  c->b = pair & 1 ? splinter_ref_view(&o->bv) : splinter_ref_owned(o->sb);
}

/* only: a shape's index to print that row group alone, or -1 for all. */
static void algebra_tables(int only) {
  static const char *pair_names[4] = {"owned o owned", "owned o view", "view o owned", "view o view"};
  printf(
      "\nalgebra (us of thread CPU time per op, best of 7; s/r = splinter time / Roaring time;\n"
      "splinter results are owned; cut = copy of a, then a.cut(b) keeping a & b; Roaring: andnot + and)\n");
  printf("%-28s %-13s", "operands a, b", "forms");
  for (int op = 0; op < 4; op++) printf(" | %-10s %8s %5s", op_names[op], "roaring", "s/r");
  printf("\n");
  for (size_t sh = 0; sh < NSHAPES; sh++) {
    operands o;
    operands_make(&o, sh); /* every shape is made, so each draws the same values */
    if (only >= 0 && sh != (size_t)only) {
      operands_free(&o);
      continue;
    }
    alg_ctx c = {.ra = o.ra, .rb = o.rb};
    splinter_new(&c.out), splinter_new(&c.work), splinter_new(&c.removed);
    for (int p = 0; p < 4; p++) {
      ctx_pair(&c, &o, p);
      printf("%-28s %-13s", p == 0 ? shapes[sh].name : "", pair_names[p]);
      for (c.op = 0; c.op < 4; c.op++) {
        verify(&c);
        double s_ns = time_op(run_splinter, &c), r_ns = time_op(run_roaring, &c);
        printf(" | %10.2f %8.2f %5.2f", s_ns / 1e3, r_ns / 1e3, s_ns / r_ns);
      }
      printf("\n");
      fflush(stdout);
    }
    printf("%-28s a: %zu values, %zu B (Roaring %zu B); b: %zu values, %zu B (Roaring %zu B)\n", "", o.va.n,
           o.alen, roaring_bitmap_portable_size_in_bytes(o.ra), o.vb.n, o.blen,
           roaring_bitmap_portable_size_in_bytes(o.rb));
    splinter_free(c.out), splinter_free(c.work), splinter_free(c.removed);
    operands_free(&o);
  }
}

/* bench_splinter SHAPE PAIR OP SECONDS: runs one splinter operation of the
 * algebra table in a loop (SHAPE 0-based row group, PAIR 0 owned o owned ..
 * 3 view o view, OP 0 union, 1 intersect, 2 cut, 3 difference), for perf. */
static int profile_one(char **argv) {
  size_t sh = (size_t)atoi(argv[1]);
  if (sh >= NSHAPES) die("no such shape", 0);
  operands o;
  operands_make(&o, sh);
  alg_ctx c = {.ra = o.ra, .rb = o.rb, .op = atoi(argv[3]) & 3};
  splinter_new(&c.out), splinter_new(&c.work), splinter_new(&c.removed);
  ctx_pair(&c, &o, atoi(argv[2]) & 3);
  verify(&c);
  double until = now() + atof(argv[4]);
  size_t n = 0;
  while (now() < until)
    for (int k = 0; k < 100; k++, n++) run_splinter(&c);
  printf("%s, %s: %zu ops\n", shapes[sh].name, op_names[c.op], n);
  splinter_free(c.out), splinter_free(c.work), splinter_free(c.removed);
  operands_free(&o);
  return 0;
}

/* ---- real SQLite page sets ------------------------------------------------------------------ */

/* A database made and changed by the sqlite3 shell: a table with an index,
 * then transactions that update, insert and delete rows; the pages each
 * transaction changed are found by comparing the file before and after it.
 * Keys and row ids come from rnd(), so runs are comparable. */
#define SQL_ROWS 120000 /* about 30 MB with the index */
#define SQL_TXNS 200
#define SQL_PAGE 4096

static void sql_run(const char *db, const char *sql) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "sqlite3 -batch '%s' >/dev/null", db);
  FILE *f = popen(cmd, "w");
  if (!f) die("popen sqlite3", 0);
  fputs(sql, f);
  if (pclose(f) != 0) die("sqlite3 failed (is the sqlite3 shell installed?)", 0);
}

/* The file at path, read into buf (reallocated to fit; kept across calls so
 * that 200 reads of a 30 MB file do not fault in fresh memory each time). */
static uint8_t *slurp(const char *path, uint8_t *buf, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die("open db", 0);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = realloc(buf, (size_t)n + 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) die("read db", 0);
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* Pages (1-based) that differ between two images of the file, appended to x. */
static void diff_pages(vec *x, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  size_t n = (alen > blen ? alen : blen) / SQL_PAGE;
  for (size_t p = 0; p < n; p++) {
    size_t off = p * SQL_PAGE;
    if (off + SQL_PAGE > alen || off + SQL_PAGE > blen || memcmp(a + off, b + off, SQL_PAGE)) vpush(x, p + 1);
  }
}

/* The page numbers of one b-tree (dbstat), sorted. */
static void btree_pages(vec *x, const char *db, const char *name) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "sqlite3 -batch '%s' \"SELECT pageno FROM dbstat WHERE name='%s'\"", db, name);
  FILE *f = popen(cmd, "r");
  if (!f) die("popen sqlite3", 0);
  unsigned long p;
  while (fscanf(f, "%lu", &p) == 1) vpush(x, p);
  if (pclose(f) != 0) die("sqlite3 dbstat failed", 0);
  vsort(x);
}

/* One transaction: 20 rows get a new key and value (their index entries
 * move), 10 rows are inserted, 2 deleted. */
static void sql_txn(char *sql, size_t cap, uint64_t *next_id) {
  size_t o = (size_t)snprintf(sql, cap, "BEGIN;\n");
  for (int i = 0; i < 20; i++)
    o += (size_t)snprintf(sql + o, cap - o, "UPDATE t SET k='%016llx', v=randomblob(200) WHERE id=%llu;\n",
                          (unsigned long long)rnd(), (unsigned long long)(1 + rnd() % *next_id));
  for (int i = 0; i < 10; i++)
    o += (size_t)snprintf(sql + o, cap - o, "INSERT INTO t VALUES(%llu, '%016llx', randomblob(200));\n",
                          (unsigned long long)(*next_id)++, (unsigned long long)rnd());
  for (int i = 0; i < 2; i++)
    o += (size_t)snprintf(sql + o, cap - o, "DELETE FROM t WHERE id=%llu;\n",
                          (unsigned long long)(1 + rnd() % *next_id));
  snprintf(sql + o, cap - o, "COMMIT;\n");
}

static size_t sql_desc_pages;

static void make_sqlite_sets(bset *sets) {
  char dir[] = "/tmp/bench_splinter.XXXXXX", db[64], sql[8192];
  if (!mkdtemp(dir)) die("mkdtemp", 0);
  snprintf(db, sizeof db, "%s/db", dir);
  snprintf(sql, sizeof sql,
           "PRAGMA page_size=%d; PRAGMA journal_mode=DELETE;\n"
           "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);\n"
           "CREATE INDEX t_k ON t(k);\n"
           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)\n"
           "INSERT INTO t SELECT x, printf('%%016x', (x * 11400714819323198485) & 0xffffffffffff), "
           "randomblob(200) FROM c;\n",
           SQL_PAGE, SQL_ROWS);
  sql_run(db, sql);
  size_t plen, clen;
  uint8_t *prev = slurp(db, NULL, &plen), *cur = NULL;
  vec txns[SQL_TXNS];
  memset(txns, 0, sizeof txns);
  uint64_t next_id = SQL_ROWS + 1;
  for (int t = 0; t < SQL_TXNS; t++) {
    sql_txn(sql, sizeof sql, &next_id);
    sql_run(db, sql);
    cur = slurp(db, cur, &clen);
    diff_pages(&txns[t], prev, plen, cur, clen);
    uint8_t *x = prev;
    prev = cur, plen = clen, cur = x;
  }
  vec u10 = {0}, u200 = {0}, idx = {0}, tab = {0};
  for (int t = 0; t < SQL_TXNS; t++)
    for (size_t i = 0; i < txns[t].n; i++) {
      if (t >= SQL_TXNS - 10) vpush(&u10, txns[t].v[i]);
      vpush(&u200, txns[t].v[i]);
    }
  vsort(&u10), vsort(&u200);
  btree_pages(&idx, db, "t_k");
  btree_pages(&tab, db, "t");
  vec full = {0};
  for (size_t p = 1; p <= plen / SQL_PAGE; p++) vpush(&full, p);
  static char names[NSQLITE][32];
  vec *v[NSQLITE] = {&txns[SQL_TXNS - 1], &txns[SQL_TXNS - 2], &u10, &u200, &idx, &tab, &full};
  const char *what[NSQLITE] = {"sql: txn 200", "sql: txn 199", "sql: 10 txns",   "sql: 200 txns",
                               "sql: index",   "sql: table",   "sql: whole file"};
  for (int i = 0; i < NSQLITE; i++) {
    snprintf(names[i], sizeof names[i], "%s", what[i]);
    from_values(&sets[i], names[i], v[i]->v, v[i]->n);
    if (getenv("BENCH_SPLINTER_DUMP"))
      splinter_dump(sets[i].sbytes, sets[i].slen, stdout, atoi(getenv("BENCH_SPLINTER_DUMP")) > 1);
  }
  sql_desc_pages = plen / SQL_PAGE;
  for (int t = 0; t < SQL_TXNS; t++) free(txns[t].v);
  free(u10.v), free(u200.v), free(idx.v), free(tab.v), free(full.v), free(prev), free(cur);
  unlink(db);
  rmdir(dir);
}

int main(int argc, char **argv) {
  if (argc == 5) return profile_one(argv);
  /* bench_splinter algebra SHAPE: one row group of the algebra table (its operands are drawn from the
   * generator's first state, so their values, not their shapes, differ from the full run's) */
  if (argc == 3 && strcmp(argv[1], "algebra") == 0) {
    algebra_tables(atoi(argv[2]));
    return 0;
  }
  int sets_only = argc == 2 && strcmp(argv[1], "sets") == 0; /* bench_splinter sets: the first table only */
  bset sets[NSETS];
  memset(sets, 0, sizeof sets);
  make_sets(sets);
  /* The SQLite sets and their probes draw from the generator too; the state
   * is put back afterwards so the algebra operands stay those of earlier runs. */
  uint64_t rng_saved = rng_state;
  make_sqlite_sets(sets + NSYNTH);
  rng_state = rng_saved;

  printf("splinter vs CRoaring %d.%d.%d (portable format after run optimization)\n\n", ROARING_VERSION_MAJOR,
         ROARING_VERSION_MINOR, ROARING_VERSION_REVISION);
  printf("%-26s %10s | %12s %12s %8s | %10s %10s %7s | %12s %12s %8s\n", "set", "elements", "splinter B",
         "roaring B", "r/s", "view ns", "roar ns", "s/r", "open+1 ns", "deser+1 ns", "r/s");
  uint32_t probes[NPROBE];
  for (int i = 0; i < NSETS; i++) {
    bset *b = &sets[i];
    if (i == NSYNTH) rng_saved = rng_state;
    uint64_t card = splinter_view_cardinality(&b->v);
    for (int k = 0; k < NPROBE; k++) {
      if (k & 1) {
        uint32_t x;
        splinter_view_select(&b->v, rnd() % card, &x);
        probes[k] = x; /* hit */
      } else {
        probes[k] = (uint32_t)(rnd() % 1100000); /* mostly misses, within the range */
        if (i == 6) probes[k] = (uint32_t)rnd();
        if (i >= NSYNTH) { /* up to 10% past the last page */
          uint32_t hi;
          splinter_view_max(&b->v, &hi);
          probes[k] = (uint32_t)(1 + rnd() % (hi + hi / 10));
        }
      }
    }
    double vns, rns, ons, dns;
    uint64_t acc = 0;
    TIME_BEST(vns, 50, for (int k = 0; k < NPROBE; k++) acc += splinter_view_contains(&b->v, probes[k]));
    TIME_BEST(rns, 50, for (int k = 0; k < NPROBE; k++) acc += roaring_bitmap_contains(b->rd, probes[k]));
    vns /= NPROBE, rns /= NPROBE;
    size_t reps = b->slen > 100000 ? 20 : 2000;
    TIME_BEST(ons, reps, {
      splinter_view_t v;
      if (splinter_view_open(b->sbytes, b->slen, &v)) die("open", 0);
      acc += splinter_view_contains(&v, probes[rep_ % NPROBE]);
    });
    TIME_BEST(dns, reps, {
      roaring_bitmap_t *r = roaring_bitmap_portable_deserialize_safe((const char *)b->rbytes, b->rlen);
      acc += roaring_bitmap_contains(r, probes[rep_ % NPROBE]);
      roaring_bitmap_free(r);
    });
    sink += acc;
    printf("%-26s %10" PRIu64 " | %12zu %12zu %8.2f | %10.1f %10.1f %7.2f | %12.0f %12.0f %8.2f\n", b->name,
           card, b->slen, b->rlen, (double)b->rlen / (double)b->slen, vns, rns, vns / rns, ons, dns,
           dns / ons);
  }

  printf(
      "(sql: a %zu-page SQLite file made by the sqlite3 shell: %d rows, an index on a text key, then %d\n"
      " transactions of 20 updates that change the key, 10 inserts and 2 deletes; a txn's pages are those "
      "that\n"
      " differ before and after it; 10/200 txns: their union; index, table: the b-tree's pages (dbstat))\n",
      sql_desc_pages, SQL_ROWS, SQL_TXNS);

  rng_state = rng_saved;
  if (!sets_only) algebra_tables(-1);
  printf("\ntargets: size r/s >= 1 (tiny sets: splinter at most 16 B more), >= 2 on sparse/clustered sets;\n"
         "         view contains s/r <= 2; open+1 contains r/s >= 10 on the 10k set;\n"
         "         algebra s/r <= 2 in every pairing, <= 1.2 where both operands are dense.\n");
  for (int i = 0; i < NSETS; i++) {
    splinter_free(sets[i].s);
    splinter_bytes_free(sets[i].sbytes);
    free(sets[i].rbytes);
    roaring_bitmap_free(sets[i].r);
    roaring_bitmap_free(sets[i].rd);
  }
  return 0;
}
