/*
 * util/alloc.h — every allocation in quire goes through these wrappers so that
 * tests can fail the Nth allocation and walk every allocation site (OOM
 * tests: for n = 1, 2, ... fail allocation n, run the workload, expect a clean
 * QUIRE_ENOMEM and no leak, until the workload finishes without a failure).
 * quire__free accepts NULL.
 */
#ifndef QUIRE_UTIL_ALLOC_H
#define QUIRE_UTIL_ALLOC_H

#include <stddef.h>
#include "quire/common.h"

void *quire__malloc(size_t n);
void *quire__calloc(size_t count, size_t size);
void *quire__realloc(void *p, size_t n);
void quire__free(void *p);
char *quire__strdup(const char *s);
void *quire__memdup(const void *p, size_t n);

/* Test hook. After this call, allocation number n (1-based, counted from now,
 * all threads) fails and returns NULL; with sticky, every allocation after it
 * fails too. n = 0 disables injection. */
QUIRE_API void quire_test_alloc_fail_at(long n, int sticky);
/* Allocations that injection has failed since the last quire_test_alloc_fail_at. */
QUIRE_API long quire_test_alloc_failures(void);

#endif
