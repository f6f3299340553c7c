/*
 * util/log.c — stderr logger; one write(2) per line so concurrent lines do
 * not interleave.
 */
#include "util/log.h"
#include "util/clock.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int level = -1;
static const char *names[] = {"ERROR", "WARN ", "INFO ", "DEBUG", "TRACE"};

int quire__log_level(void) {
  int l = atomic_load_explicit(&level, memory_order_relaxed);
  if (l >= 0) return l;
  const char *e = getenv("QUIRE_LOG");
  l = QUIRE_LOG_WARN;
  if (e) {
    static const char *words[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++)
      if (strcasecmp(e, words[i]) == 0) l = i;
  }
  atomic_store(&level, l);
  return l;
}

void quire__log_set_level(int l) { atomic_store(&level, l < 0 ? 0 : l > 4 ? 4 : l); }

void quire__log(int lvl, const char *file, int line, const char *fmt, ...) {
  char out[1024];
  uint64_t ms = quire__wall_ms();
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  int n = snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ %s [%s:%d] ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, (unsigned)(ms % 1000), names[lvl < 0 ? 0 : lvl > 4 ? 4 : lvl], base,
                   line);
  if (n < 0) return;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(out + n, sizeof out - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof out - 2) len = sizeof out - 2;
  out[len++] = '\n';
  ssize_t w = write(2, out, len);
  (void)w;
}
