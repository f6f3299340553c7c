/*
 * client/stats.c — the counters of DESIGN.md §11.5: one set per volume and
 * one per client, updated together with relaxed atomics (no lock on the
 * read path), read as a quire_stats snapshot.
 */
#include <stddef.h>
#include <string.h>

#include "client/client_int.h"

void cl__count(struct cl_counters *vol, struct cl_counters *cli, size_t field, uint64_t n) {
  if (vol) atomic_fetch_add_explicit(&vol->v[field], n, memory_order_relaxed);
  if (cli) atomic_fetch_add_explicit(&cli->v[field], n, memory_order_relaxed);
}

void cl__set(struct cl_counters *vol, struct cl_counters *cli, size_t field, uint64_t v) {
  if (vol) atomic_store_explicit(&vol->v[field], v, memory_order_relaxed);
  if (cli) atomic_store_explicit(&cli->v[field], v, memory_order_relaxed);
}

void cl__hist(struct cl_counters *vol, struct cl_counters *cli, size_t field, uint64_t us) {
  unsigned b = us < 2 ? 0 : 63 - (unsigned)__builtin_clzll(us);
  if (b >= QUIRE_HIST_BUCKETS) b = QUIRE_HIST_BUCKETS - 1;
  cl__count(vol, cli, field + b, 1);
}

void cl__counters_read(const struct cl_counters *c, quire_stats *out) {
  uint64_t *o = (uint64_t *)out;
  for (size_t i = 0; i < sizeof(quire_stats) / sizeof(uint64_t); i++)
    o[i] = atomic_load_explicit(&c->v[i], memory_order_relaxed);
}

/* The q-quantile of a log2 histogram: the geometric middle of the bucket
 * where the cumulative count crosses q. */
static uint64_t quantile(const uint64_t *h, double q) {
  uint64_t total = 0;
  for (int i = 0; i < QUIRE_HIST_BUCKETS; i++) total += h[i];
  if (!total) return 0;
  uint64_t want = (uint64_t)(q * (double)total + 0.5), acc = 0;
  if (want < 1) want = 1;
  for (int i = 0; i < QUIRE_HIST_BUCKETS; i++) {
    acc += h[i];
    if (acc >= want) return i == 0 ? 1 : (3ull << i) / 2;
  }
  return 3ull << (QUIRE_HIST_BUCKETS - 1);
}

void quire_stats_foreach(const quire_stats *s, void (*fn)(void *ctx, const char *name, uint64_t value),
                         void *ctx) {
#define C(f) fn(ctx, #f, s->f)
  C(reads), C(read_hits), C(read_fetched), C(read_zero);
  C(fetch_round_trips), C(fetch_pages), C(fetch_bytes), C(fetch_missing), C(fetch_errors);
  C(prefetch_pages), C(prefetch_used), C(prefetch_wasted);
  C(commits), C(commit_pages), C(conflicts);
  C(pushes), C(push_pages), C(push_round_trips), C(push_errors);
  C(pulls), C(pull_commits), C(pull_errors), C(rebases), C(resets), C(forks);
  C(sync_lag_ms_last), C(remote_lag_ms_last);
#undef C
#define H(f)                                \
  fn(ctx, #f "_p50", quantile(s->f, 0.50)); \
  fn(ctx, #f "_p99", quantile(s->f, 0.99))
  H(read_us);
  H(fetch_us);
  H(commit_us);
  H(push_us);
#undef H
}
