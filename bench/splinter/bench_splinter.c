/*
 * bench/splinter/bench_splinter.c — splinter against CRoaring on the page
 * sets of issue 3, in the same run: serialized size (Roaring: portable format
 * after run optimization), contains on a view vs on a deserialized Roaring
 * bitmap, open+contains vs deserialize+contains, and union / intersection /
 * cut on 100k-element sets. Prints one table per measure with the ratio the
 * targets are stated in. Timings are the best of several rounds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

#define NSETS 7
#define NPROBE 4096

static volatile uint64_t sink;

/* Best time per op (ns) of rounds; fn runs reps ops. */
#define TIME_BEST(out_ns, reps, body)                                                                        \
  do {                                                                                                       \
    double best_ = 1e30;                                                                                     \
    for (int round_ = 0; round_ < 5; round_++) {                                                             \
      double t0_ = now();                                                                                    \
      for (size_t rep_ = 0; rep_ < (reps); rep_++) {                                                         \
        body;                                                                                                \
      }                                                                                                      \
      double dt_ = (now() - t0_) / (double)(reps);                                                           \
      if (dt_ < best_) best_ = dt_;                                                                          \
    }                                                                                                        \
    (out_ns) = best_ * 1e9;                                                                                  \
  } while (0)

int main(void) {
  bset sets[NSETS];
  memset(sets, 0, sizeof sets);
  make_sets(sets);

  printf("splinter vs CRoaring %d.%d.%d (portable format after run optimization)\n\n", ROARING_VERSION_MAJOR,
         ROARING_VERSION_MINOR, ROARING_VERSION_REVISION);
  printf("%-26s %10s | %12s %12s %8s | %10s %10s %7s | %12s %12s %8s\n", "set", "elements", "splinter B",
         "roaring B", "r/s", "view ns", "roar ns", "s/r", "open+1 ns", "deser+1 ns", "r/s");
  uint32_t probes[NPROBE];
  for (int i = 0; i < NSETS; i++) {
    bset *b = &sets[i];
    uint64_t card = splinter_view_cardinality(&b->v);
    for (int k = 0; k < NPROBE; k++) {
      if (k & 1) {
        uint32_t x;
        splinter_view_select(&b->v, rnd() % card, &x);
        probes[k] = x; /* hit */
      } else {
        probes[k] = (uint32_t)(rnd() % 1100000); /* mostly misses, within the range */
        if (i == 6) probes[k] = (uint32_t)rnd();
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

  /* Algebra on 100k-element sets. */
  printf("\nalgebra on 100k-element sets (us per op; splinter result owned; s/r = splinter time / roaring "
         "time)\n");
  printf("%-34s %-10s %10s %10s %7s\n", "operands", "op", "splinter", "roaring", "s/r");
  struct {
    const char *name;
    uint64_t lo, hi;
    int dense;
  } shapes[] = {
      {"100k random in 1..1M each", 1, 1000000, 0},
      {"100k random in 1..16M each", 1, 16000000, 0},
      {"1..100k vs 50k..150k (dense)", 1, 100000, 1},
  };
  for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
    splinter_t *a, *bo, *out, *work;
    roaring_bitmap_t *ra, *rb;
    if (shapes[sh].dense) {
      splinter_new(&a), splinter_new(&bo);
      splinter_insert_range(a, 1, 100000), splinter_insert_range(bo, 50000, 149999);
      ra = roaring_bitmap_create(), rb = roaring_bitmap_create();
      roaring_bitmap_add_range_closed(ra, 1, 100000), roaring_bitmap_add_range_closed(rb, 50000, 149999);
    } else {
      size_t na, nb;
      uint32_t *va = random_values(105000, shapes[sh].lo, shapes[sh].hi, &na);
      uint32_t *vb = random_values(105000, shapes[sh].lo, shapes[sh].hi, &nb);
      na = na > 100000 ? 100000 : na, nb = nb > 100000 ? 100000 : nb;
      splinter_from_sorted(va, na, &a), splinter_from_sorted(vb, nb, &bo);
      ra = roaring_bitmap_of_ptr(na, va), rb = roaring_bitmap_of_ptr(nb, vb);
      free(va), free(vb);
    }
    roaring_bitmap_run_optimize(ra), roaring_bitmap_run_optimize(rb);
    uint8_t *bbytes;
    size_t blen;
    splinter_serialize_alloc(bo, &bbytes, &blen);
    splinter_view_t bv;
    splinter_view_open(bbytes, blen, &bv);
    splinter_new(&out), splinter_new(&work);
    splinter_t *removed;
    splinter_new(&removed);
    double s_ns, r_ns;
    const char *pairs[2] = {"owned o view", "owned o owned"};
    for (int p = 0; p < 2; p++) {
      splinter_ref_t rbref = p == 0 ? splinter_ref_view(&bv) : splinter_ref_owned(bo);
      char label[80];
      snprintf(label, sizeof label, "%s (%s)", shapes[sh].name, pairs[p]);
      TIME_BEST(s_ns, 20, splinter_union(splinter_ref_owned(a), rbref, out));
      TIME_BEST(r_ns, 20, roaring_bitmap_free(roaring_bitmap_or(ra, rb)));
      printf("%-34s %-10s %10.1f %10.1f %7.2f\n", p == 0 ? label : label, "union", s_ns / 1e3, r_ns / 1e3,
             s_ns / r_ns);
      TIME_BEST(s_ns, 20, splinter_intersection(splinter_ref_owned(a), rbref, out));
      TIME_BEST(r_ns, 20, roaring_bitmap_free(roaring_bitmap_and(ra, rb)));
      printf("%-34s %-10s %10.1f %10.1f %7.2f\n", "", "intersect", s_ns / 1e3, r_ns / 1e3, s_ns / r_ns);
      /* cut = copy of a, then a -= b returning a & b; Roaring: andnot + and */
      TIME_BEST(s_ns, 20, {
        splinter_assign(work, splinter_ref_owned(a));
        splinter_cut(work, rbref, removed);
      });
      TIME_BEST(r_ns, 20, {
        roaring_bitmap_free(roaring_bitmap_andnot(ra, rb));
        roaring_bitmap_free(roaring_bitmap_and(ra, rb));
      });
      printf("%-34s %-10s %10.1f %10.1f %7.2f\n", "", "cut", s_ns / 1e3, r_ns / 1e3, s_ns / r_ns);
      TIME_BEST(s_ns, 20, splinter_difference(splinter_ref_owned(a), rbref, out));
      TIME_BEST(r_ns, 20, roaring_bitmap_free(roaring_bitmap_andnot(ra, rb)));
      printf("%-34s %-10s %10.1f %10.1f %7.2f\n", "", "difference", s_ns / 1e3, r_ns / 1e3, s_ns / r_ns);
    }
    splinter_free(a), splinter_free(bo), splinter_free(out), splinter_free(work), splinter_free(removed);
    splinter_bytes_free(bbytes);
    roaring_bitmap_free(ra), roaring_bitmap_free(rb);
  }
  printf("\ntargets: size r/s >= 1 (tiny sets: splinter at most 16 B more), >= 2 on sparse/clustered sets;\n"
         "         view contains s/r <= 2; open+1 contains r/s >= 10 on the 10k set; algebra s/r <= 3.\n");
  for (int i = 0; i < NSETS; i++) {
    splinter_free(sets[i].s);
    splinter_bytes_free(sets[i].sbytes);
    free(sets[i].rbytes);
    roaring_bitmap_free(sets[i].r);
    roaring_bitmap_free(sets[i].rd);
  }
  return 0;
}
