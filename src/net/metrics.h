/*
 * net/metrics.h — a small metrics registry rendered as Prometheus text.
 *
 * Series are found or created by (name, labels) on first use; labels is the
 * text between the braces, already escaped (`endpoint="/metastore/v1/commit",
 * status="200"`), or "" for none. Counters and gauges are 64-bit; histograms
 * use one fixed set of latency buckets (seconds, 100 µs .. 10 s). Collectors
 * run before each render to refresh gauges whose values live elsewhere
 * (catalog size, active long polls). Thread-safe: one mutex guards the series
 * list; updates are short.
 */
#ifndef QUIRE_NET_METRICS_H
#define QUIRE_NET_METRICS_H

#include <stdint.h>

#include "util/buf.h"

typedef struct quire_metrics quire_metrics;
typedef void (*quire_metrics_collect_fn)(void *ctx, quire_metrics *m);

int quire__metrics_create(quire_metrics **out);
void quire__metrics_destroy(quire_metrics *m); /* accepts NULL */

/* All of these are no-ops when m is NULL, and silently drop the update when
 * a new series cannot be allocated. help is used the first time a name is seen. */
void quire__metrics_count(quire_metrics *m, const char *name, const char *help, const char *labels,
                          uint64_t delta);
void quire__metrics_gauge(quire_metrics *m, const char *name, const char *help, const char *labels,
                          int64_t value);
void quire__metrics_observe(quire_metrics *m, const char *name, const char *help, const char *labels,
                            double seconds);

/* Registers fn to run (without the registry lock) before every render. Up to 8. */
int quire__metrics_add_collector(quire_metrics *m, quire_metrics_collect_fn fn, void *ctx);
void quire__metrics_remove_collector(quire_metrics *m, quire_metrics_collect_fn fn, void *ctx);

/* Appends the Prometheus text exposition of every series to out. */
int quire__metrics_render(quire_metrics *m, quire_buf *out);

/* Current value of a counter or gauge series (0 if absent); for tests. */
int64_t quire__metrics_value(quire_metrics *m, const char *name, const char *labels);

#endif
