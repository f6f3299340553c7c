/*
 * util/limiter.h — the keyed single-flight limiter (DESIGN.md §9.3).
 *
 * At most one holder per key at a time, and at most max_holders holders in
 * all. Keys are compared exactly (bytes and length); unrelated keys never
 * wait for each other except through the global bound. The pattern:
 *
 *     if (cache_has(k)) return hit;            // no lock on the hot path
 *     quire__limiter_acquire(lim, k, kl, -1, &permit);
 *     if (cache_has(k)) { release; return hit; } // someone else did the work
 *     do_work(); fill_cache(); quire__limiter_release(&permit);
 *
 * Waiters on one key are woken one at a time as the key is released, so a
 * herd of 100 readers of one segment does the download once.
 */
#ifndef QUIRE_UTIL_LIMITER_H
#define QUIRE_UTIL_LIMITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct quire_limiter quire_limiter;
typedef struct quire_permit {
  quire_limiter *lim;
  void *entry; /* NULL when not held */
} quire_permit;

int quire__limiter_create(unsigned max_holders, quire_limiter **out);
/* Every permit must have been released. Accepts NULL. */
void quire__limiter_destroy(quire_limiter *lim);
/* Blocks until the key is free and a slot is available, then holds it.
 * timeout_ms < 0 waits forever; otherwise QUIRE_ETIMEDOUT when it passes.
 * klen must be 1..256 (QUIRE_EINVAL otherwise). */
int quire__limiter_acquire(quire_limiter *lim, const void *key, size_t klen, int64_t timeout_ms,
                           quire_permit *out);
/* Releases a held permit; a no-op on a permit that is not held. */
void quire__limiter_release(quire_permit *p);
/* Current holders and waiters (for metrics and tests). */
void quire__limiter_stats(quire_limiter *lim, unsigned *holders, unsigned *waiters);

#endif
