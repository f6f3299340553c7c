/*
 * cli/ps_opts.h — the pagestore's tuning options, shared by `quire
 * pagestore` and `quire server`, and turning them into settings.
 */
#ifndef QUIRE_CLI_PS_OPTS_H
#define QUIRE_CLI_PS_OPTS_H

#include "cli/serve.h"
#include "pagestore/service.h"

#define CLI_PAGESTORE_TUNING_OPTS                                                                            \
  {"cache-bytes", "QUIRE_PAGESTORE_CACHE_BYTES",                                                             \
   "pagestore",   "segment disk cache budget (k/m/g)",                                                       \
   "1g",          0,                                                                                         \
   NULL,          NULL},                                                                                     \
      {"flush-ms",  "QUIRE_PAGESTORE_FLUSH_MS",                                                              \
       "pagestore", "write latency bound: an open segment is flushed this long after its first page",        \
       "100",       0,                                                                                       \
       NULL,        NULL},                                                                                   \
      {"segment-bytes",                                                                                      \
       "QUIRE_PAGESTORE_SEGMENT_BYTES",                                                                      \
       "pagestore",                                                                                          \
       "segment size target (k/m/g)",                                                                        \
       "16m",                                                                                                \
       0,                                                                                                    \
       NULL,                                                                                                 \
       NULL},                                                                                                \
      {"uploads", "QUIRE_PAGESTORE_UPLOADS", "pagestore", "concurrent segment uploads", "4", 0, NULL, NULL}, \
      {"downloads", "QUIRE_PAGESTORE_DOWNLOADS", "pagestore", "concurrent segment downloads", "8", 0, NULL,  \
       NULL},                                                                                                \
  {                                                                                                          \
    "partial-read-percent", "QUIRE_PAGESTORE_PARTIAL_PERCENT", "pagestore",                                  \
        "fetch only the needed pages (ranged GETs) of an uncached segment when a read needs at most this "   \
        "percentage of it; 0 always fetches whole segments",                                                 \
        "25", 0, NULL, NULL                                                                                  \
  }

/* Fills the HTTP numbers and the tuning options of s from resolved opts;
 * returns 0 or 2 (a usage error was printed). */
int cli_ps_settings(const char *cmd, struct quire_cfg_opt *o, size_t n, struct quire_ps_settings *s);

#endif
