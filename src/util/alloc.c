/*
 * util/alloc.c — allocation wrappers with a fault-injection countdown.
 */
#include "util/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long countdown;  /* > 0: allocations until the injected failure */
static atomic_int sticky_fail; /* fail everything after the first failure */
static atomic_int failing;     /* sticky mode has begun failing */
static atomic_long failures;

static int inject(void) {
  if (atomic_load_explicit(&countdown, memory_order_relaxed) == 0 &&
      !atomic_load_explicit(&failing, memory_order_relaxed))
    return 0;
  if (atomic_load(&failing)) {
    atomic_fetch_add(&failures, 1);
    return 1;
  }
  long before = atomic_fetch_sub(&countdown, 1);
  if (before == 1) {
    atomic_fetch_add(&failures, 1);
    if (atomic_load(&sticky_fail)) atomic_store(&failing, 1);
    return 1;
  }
  if (before <= 0) atomic_fetch_add(&countdown, 1); /* raced past zero: undo */
  return 0;
}

void quire_test_alloc_fail_at(long n, int sticky) {
  atomic_store(&failing, 0);
  atomic_store(&sticky_fail, sticky);
  atomic_store(&failures, 0);
  atomic_store(&countdown, n > 0 ? n : 0);
}

long quire_test_alloc_failures(void) { return atomic_load(&failures); }

void *quire__malloc(size_t n) {
  if (inject()) return NULL;
  return malloc(n ? n : 1);
}

void *quire__calloc(size_t count, size_t size) {
  if (inject()) return NULL;
  return calloc(count ? count : 1, size ? size : 1);
}

void *quire__realloc(void *p, size_t n) {
  if (inject()) return NULL;
  return realloc(p, n ? n : 1);
}

void quire__free(void *p) { free(p); }

void *quire__memdup(const void *p, size_t n) {
  void *q = quire__malloc(n);
  if (q && n) memcpy(q, p, n);
  return q;
}

char *quire__strdup(const char *s) { return quire__memdup(s, strlen(s) + 1); }
