/*
 * util/backoff.h — the one retry-delay policy: jittered exponential backoff,
 * a server's Retry-After, a deadline and a cancel token. Used by the HTTP
 * client (net/http_client.c) and by the object-store retry loop
 * (objstore/objstore.c), so every retry in quire waits the same way and no
 * retry sleep outlives a cancel or a deadline.
 */
#ifndef QUIRE_UTIL_BACKOFF_H
#define QUIRE_UTIL_BACKOFF_H

#include <stdint.h>

#include "util/cancel.h"

/* The delay before retry number attempt (0 = the first retry): d =
 * min(cap_ms, base_ms * 2^attempt), then "equal jitter": uniform in
 * [d/2, d]. The random source is per thread (seeded from getrandom). */
unsigned quire__backoff_delay(unsigned base_ms, unsigned cap_ms, unsigned attempt);

/* Waits before a retry: max(delay_ms, retry_after_ms). If that wait would
 * end at or past deadline_ms (absolute, quire__now_ms(); 0 = none) it does
 * not sleep and returns QUIRE_ETIMEDOUT: a retry that cannot start before
 * the deadline is not worth waiting for. QUIRE_ECANCELED if cancel fires
 * (cancel may be NULL). 0 when the retry may go. Records no error message;
 * the caller words it. */
int quire__backoff_wait(unsigned delay_ms, unsigned retry_after_ms, uint64_t deadline_ms,
                        quire_cancel *cancel);

#endif
