/* util/clock.h — monotonic and wall clocks, sleeping. */
#ifndef QUIRE_UTIL_CLOCK_H
#define QUIRE_UTIL_CLOCK_H

#include <stdint.h>

uint64_t quire__mono_ns(void); /* CLOCK_MONOTONIC, nanoseconds */
uint64_t quire__mono_ms(void);
/* The clock of call deadlines (struct quire_call, util/cancel.h):
 * CLOCK_MONOTONIC milliseconds, the same as quire__mono_ms(). */
uint64_t quire__now_ms(void);
uint64_t quire__wall_ms(void); /* milliseconds since the Unix epoch */
void quire__sleep_ms(uint64_t ms);
/* Absolute CLOCK_REALTIME deadline ms from now, for pthread_cond_timedwait. */
struct timespec;
void quire__deadline_after_ms(struct timespec *ts, uint64_t ms);

#endif
