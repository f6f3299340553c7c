/* util/backoff.c — retry delays (see backoff.h). */
#include "util/backoff.h"

#include <sys/random.h>

#include "util/clock.h"
#include "util/err.h"

static _Thread_local uint64_t rng;

static uint64_t next_random(void) {
  if (!rng) {
    if (getrandom(&rng, sizeof rng, GRND_NONBLOCK) != (ssize_t)sizeof rng) rng = quire__mono_ns();
    rng |= 1;
  }
  /* splitmix64 */
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

unsigned quire__backoff_delay(unsigned base_ms, unsigned cap_ms, unsigned attempt) {
  uint64_t d = (uint64_t)base_ms << (attempt < 20 ? attempt : 20);
  if (d > cap_ms) d = cap_ms;
  uint64_t half = d / 2;
  return (unsigned)(half + next_random() % (d - half + 1));
}

int quire__backoff_wait(unsigned delay_ms, unsigned retry_after_ms, uint64_t deadline_ms,
                        quire_cancel *cancel) {
  if (quire__cancel_fired(cancel)) return QUIRE_ECANCELED;
  unsigned wait = delay_ms > retry_after_ms ? delay_ms : retry_after_ms;
  uint64_t until = quire__now_ms() + wait;
  if (deadline_ms && until >= deadline_ms) return QUIRE_ETIMEDOUT;
  return quire__cancel_sleep_until(cancel, until);
}
