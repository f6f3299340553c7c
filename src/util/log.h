/*
 * util/log.h — leveled logging to stderr. The level comes from QUIRE_LOG
 * (error, warn, info, debug, trace; default warn), read once. Lines look like
 *   2026-11-21T14:08:20.123Z WARN  [file.c:42] message
 * Library code logs; it never prints to stdout.
 */
#ifndef QUIRE_UTIL_LOG_H
#define QUIRE_UTIL_LOG_H

enum { QUIRE_LOG_ERROR = 0, QUIRE_LOG_WARN, QUIRE_LOG_INFO, QUIRE_LOG_DEBUG, QUIRE_LOG_TRACE };

int quire__log_level(void);
void quire__log_set_level(int level);
void quire__log(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define QLOG_AT(lvl, ...)                                                   \
  do {                                                                      \
    if ((lvl) <= quire__log_level()) quire__log((lvl), __FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
#define QLOG_ERROR(...) QLOG_AT(QUIRE_LOG_ERROR, __VA_ARGS__)
#define QLOG_WARN(...) QLOG_AT(QUIRE_LOG_WARN, __VA_ARGS__)
#define QLOG_INFO(...) QLOG_AT(QUIRE_LOG_INFO, __VA_ARGS__)
#define QLOG_DEBUG(...) QLOG_AT(QUIRE_LOG_DEBUG, __VA_ARGS__)
#define QLOG_TRACE(...) QLOG_AT(QUIRE_LOG_TRACE, __VA_ARGS__)

#endif
