/*
 * net/metrics.c — the metrics registry (see metrics.h).
 *
 * Series live in one list kept sorted by (name, labels) so that rendering
 * groups a family under a single HELP/TYPE header. Locking: m->mu protects the
 * list and every value; m->collect_mu serialises collectors and renders and is
 * taken before m->mu (collectors call back into the registry).
 */
#include "net/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/err.h"

enum kind { COUNTER, GAUGE, HISTOGRAM };

static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct series {
  struct series *next;
  enum kind kind;
  char *name, *labels, *help;
  int64_t value;                 /* counter or gauge */
  uint64_t counts[NBUCKETS + 1]; /* histogram: per bucket, last is +Inf */
  uint64_t total;
  double sum;
};

struct collector {
  quire_metrics_collect_fn fn;
  void *ctx;
};

struct quire_metrics {
  pthread_mutex_t mu;
  pthread_mutex_t collect_mu;
  struct series *head;
  struct collector collectors[8];
};

int quire__metrics_create(quire_metrics **out) {
  *out = NULL;
  quire_metrics *m = quire__calloc(1, sizeof *m);
  if (!m) return QUIRE_ENOMEM;
  pthread_mutex_init(&m->mu, NULL);
  pthread_mutex_init(&m->collect_mu, NULL);
  *out = m;
  return 0;
}

void quire__metrics_destroy(quire_metrics *m) {
  if (!m) return;
  struct series *s = m->head;
  while (s) {
    struct series *n = s->next;
    quire__free(s->name);
    quire__free(s->labels);
    quire__free(s->help);
    quire__free(s);
    s = n;
  }
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->collect_mu);
  quire__free(m);
}

static int series_cmp(const struct series *s, const char *name, const char *labels) {
  int c = strcmp(s->name, name);
  return c ? c : strcmp(s->labels, labels);
}

/* Finds or inserts the series; NULL on allocation failure. Call with m->mu. */
static struct series *lookup(quire_metrics *m, enum kind kind, const char *name, const char *help,
                             const char *labels) {
  struct series **pp = &m->head;
  while (*pp && series_cmp(*pp, name, labels) < 0) pp = &(*pp)->next;
  if (*pp && series_cmp(*pp, name, labels) == 0) return *pp;
  struct series *s = quire__calloc(1, sizeof *s);
  if (!s) return NULL;
  s->kind = kind;
  s->name = quire__strdup(name);
  s->labels = quire__strdup(labels ? labels : "");
  s->help = quire__strdup(help ? help : "");
  if (!s->name || !s->labels || !s->help) {
    quire__free(s->name);
    quire__free(s->labels);
    quire__free(s->help);
    quire__free(s);
    return NULL;
  }
  s->next = *pp;
  *pp = s;
  return s;
}

void quire__metrics_count(quire_metrics *m, const char *name, const char *help, const char *labels,
                          uint64_t delta) {
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  struct series *s = lookup(m, COUNTER, name, help, labels ? labels : "");
  if (s) s->value += (int64_t)delta;
  pthread_mutex_unlock(&m->mu);
}

void quire__metrics_gauge(quire_metrics *m, const char *name, const char *help, const char *labels,
                          int64_t value) {
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  struct series *s = lookup(m, GAUGE, name, help, labels ? labels : "");
  if (s) s->value = value;
  pthread_mutex_unlock(&m->mu);
}

void quire__metrics_observe(quire_metrics *m, const char *name, const char *help, const char *labels,
                            double seconds) {
  if (!m) return;
  size_t b = 0;
  while (b < NBUCKETS && seconds > buckets[b]) b++;
  pthread_mutex_lock(&m->mu);
  struct series *s = lookup(m, HISTOGRAM, name, help, labels ? labels : "");
  if (s) {
    s->counts[b]++;
    s->total++;
    s->sum += seconds;
  }
  pthread_mutex_unlock(&m->mu);
}

int quire__metrics_add_collector(quire_metrics *m, quire_metrics_collect_fn fn, void *ctx) {
  int rc = quire__err(QUIRE_ETOOLARGE, "too many metrics collectors");
  pthread_mutex_lock(&m->collect_mu);
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(m->collectors); i++) {
    if (!m->collectors[i].fn) {
      m->collectors[i].fn = fn;
      m->collectors[i].ctx = ctx;
      rc = 0;
      break;
    }
  }
  pthread_mutex_unlock(&m->collect_mu);
  return rc;
}

void quire__metrics_remove_collector(quire_metrics *m, quire_metrics_collect_fn fn, void *ctx) {
  if (!m) return;
  pthread_mutex_lock(&m->collect_mu);
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(m->collectors); i++)
    if (m->collectors[i].fn == fn && m->collectors[i].ctx == ctx) m->collectors[i].fn = NULL;
  pthread_mutex_unlock(&m->collect_mu);
}

static int appendf(quire_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int appendf(quire_buf *out, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return QUIRE_EINTERNAL;
  return quire__buf_append(out, line, QUIRE_MIN((size_t)n, sizeof line - 1));
}

/* name{labels,extra} with the commas right when either part is empty. */
static int series_name(quire_buf *out, const char *name, const char *suffix, const char *labels,
                       const char *extra) {
  int has = labels[0] || (extra && extra[0]);
  return appendf(out, "%s%s%s%s%s%s%s", name, suffix, has ? "{" : "", labels,
                 labels[0] && extra && extra[0] ? "," : "", extra ? extra : "", has ? "}" : "");
}

int quire__metrics_render(quire_metrics *m, quire_buf *out) {
  int rc = 0;
  pthread_mutex_lock(&m->collect_mu);
  for (size_t i = 0; i < QUIRE_ARRAY_LEN(m->collectors); i++)
    if (m->collectors[i].fn) m->collectors[i].fn(m->collectors[i].ctx, m);
  pthread_mutex_lock(&m->mu);
  const char *family = NULL;
  for (struct series *s = m->head; s && rc == 0; s = s->next) {
    if (!family || strcmp(family, s->name) != 0) {
      static const char *types[] = {"counter", "gauge", "histogram"};
      family = s->name;
      rc = appendf(out, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name, types[s->kind]);
      if (rc) break;
    }
    if (s->kind != HISTOGRAM) {
      rc = series_name(out, s->name, "", s->labels, NULL);
      if (!rc) rc = appendf(out, " %lld\n", (long long)s->value);
      continue;
    }
    uint64_t cum = 0;
    for (size_t b = 0; b <= NBUCKETS && rc == 0; b++) {
      char le[48];
      cum += s->counts[b];
      if (b < NBUCKETS)
        snprintf(le, sizeof le, "le=\"%g\"", buckets[b]);
      else
        snprintf(le, sizeof le, "le=\"+Inf\"");
      rc = series_name(out, s->name, "_bucket", s->labels, le);
      if (!rc) rc = appendf(out, " %llu\n", (unsigned long long)cum);
    }
    if (!rc) rc = series_name(out, s->name, "_sum", s->labels, NULL);
    if (!rc) rc = appendf(out, " %.6f\n", s->sum);
    if (!rc) rc = series_name(out, s->name, "_count", s->labels, NULL);
    if (!rc) rc = appendf(out, " %llu\n", (unsigned long long)s->total);
  }
  pthread_mutex_unlock(&m->mu);
  pthread_mutex_unlock(&m->collect_mu);
  return rc;
}

int64_t quire__metrics_value(quire_metrics *m, const char *name, const char *labels) {
  int64_t v = 0;
  pthread_mutex_lock(&m->mu);
  for (struct series *s = m->head; s; s = s->next) {
    if (series_cmp(s, name, labels ? labels : "") == 0) {
      v = s->kind == HISTOGRAM ? (int64_t)s->total : s->value;
      break;
    }
  }
  pthread_mutex_unlock(&m->mu);
  return v;
}
