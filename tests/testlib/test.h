/*
 * tests/testlib/test.h — the tiny harness every quire test uses.
 *
 * One executable per test file; a failed CHECK prints the place and the
 * expression (and quire_errmsg() for rc checks) and exits 1 at once. Random
 * tests draw from test_rand(), seeded by QUIRE_TEST_SEED or the clock; the
 * seed is printed so a failure reproduces. QUIRE_TEST_LONG=1 selects the long
 * mode of `slow` tests; the default (and CI) is the short mode.
 */
#ifndef QUIRE_TESTLIB_H
#define QUIRE_TESTLIB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "quire/common.h"

void test_fail(const char *file, int line, const char *expr) __attribute__((noreturn));
void test_fail_rc(const char *file, int line, const char *expr, int got, int want) __attribute__((noreturn));
void test_failf(const char *file, int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));

#define CHECK(cond)                                         \
  do {                                                      \
    test_count_check();                                     \
    if (!(cond)) test_fail(__FILE__, __LINE__, #cond);      \
  } while (0)
#define CHECK_RC(expr, want)                                               \
  do {                                                                     \
    test_count_check();                                                    \
    int rc_ = (expr);                                                      \
    if (rc_ != (want)) test_fail_rc(__FILE__, __LINE__, #expr, rc_, (want)); \
  } while (0)
#define CHECK_OK(expr) CHECK_RC(expr, 0)
#define CHECKF(cond, ...)                                          \
  do {                                                             \
    test_count_check();                                            \
    if (!(cond)) test_failf(__FILE__, __LINE__, __VA_ARGS__);      \
  } while (0)

void test_count_check(void);
/* 1 when QUIRE_TEST_LONG=1 (the long mode of slow tests). */
int test_long_mode(void);
/* Seeds from QUIRE_TEST_SEED or the clock, prints it; call once in main. */
uint64_t test_seed(void);
uint64_t test_rand(void);                 /* splitmix64 */
uint64_t test_rand_below(uint64_t n);     /* uniform in [0, n) */
/* A fresh empty directory under QUIRE_TEST_TMP (or /tmp); caller frees. */
char *test_tmpdir(const char *name);
/* Removes a directory tree (best effort). */
void test_rmtree(const char *path);
/* Prints "<name>: N checks passed" and returns 0; end main with it. */
int test_done(const char *name);

#endif
