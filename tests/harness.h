/*
 * harness.h - the minimal test harness shared by every C test.
 *
 * Exit codes follow CTest: 0 pass, 1 fail, 77 skip (the test is registered with
 * SKIP_RETURN_CODE 77). A test file runs its cases with SC_RUN(fn) and ends main with
 * `return sc_test_summary();`, which fails when any check failed and ALSO when no check ran,
 * so a test that silently does nothing is never green. A skip prints its reason.
 */
#ifndef SIMCLR_TEST_HARNESS_H
#define SIMCLR_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_TEST_SKIP 77

static int sc_test_checks_run = 0;
static int sc_test_checks_failed = 0;
static const char *sc_test_current = "";

#define SC_RUN(fn)                                                                             \
    do {                                                                                       \
        int failed_before_ = sc_test_checks_failed;                                            \
        sc_test_current = #fn;                                                                 \
        fn();                                                                                  \
        printf("%-4s %s\n", sc_test_checks_failed == failed_before_ ? "ok" : "FAIL", #fn);     \
        fflush(stdout);                                                                        \
    } while (0)

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        sc_test_checks_run++;                                                                  \
        if (!(cond)) {                                                                         \
            sc_test_checks_failed++;                                                           \
            printf("  %s:%d: %s: check failed: %s\n", __FILE__, __LINE__, sc_test_current, #cond); \
        }                                                                                      \
    } while (0)

#define CHECKF(cond, ...)                                                                      \
    do {                                                                                       \
        sc_test_checks_run++;                                                                  \
        if (!(cond)) {                                                                         \
            sc_test_checks_failed++;                                                           \
            printf("  %s:%d: %s: check failed: %s: ", __FILE__, __LINE__, sc_test_current, #cond); \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
        }                                                                                      \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                          \
    do {                                                                                       \
        double a_ = (double)(a), b_ = (double)(b);                                             \
        CHECKF(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_), "%s = %.9g, %s = %.9g (diff %.3g)", \
               #a, a_, #b, b_, fabs(a_ - b_));                                                 \
    } while (0)

/* Compare arrays elementwise; reports the worst element and counts one check. */
static inline int sc_test_compare(const char *what, const double *got, const double *want, long n,
                                  double atol, double rtol) {
    long worst = -1;
    double worst_excess = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        double lim = atol + rtol * fabs(want[i]);
        double excess = (d - lim) / (lim > 0 ? lim : 1.0);
        if (!(d <= lim) && (worst < 0 || excess > worst_excess || isnan(d))) {
            worst = i;
            worst_excess = excess;
        }
    }
    sc_test_checks_run++;
    if (worst >= 0) {
        sc_test_checks_failed++;
        printf("  %s: %s: element %ld of %ld: got %.9g, want %.9g (atol %.2g, rtol %.2g)\n",
               sc_test_current, what, worst, n, got[worst], want[worst], atol, rtol);
        return 0;
    }
    return 1;
}

static inline void sc_test_skip(const char *reason) {
    printf("SKIP: %s\n", reason);
    fflush(stdout);
    exit(SC_TEST_SKIP);
}

static inline int sc_test_summary(void) {
    if (sc_test_checks_run == 0) {
        printf("FAIL: no checks ran\n");
        return 1;
    }
    printf("%d checks, %d failed\n", sc_test_checks_run, sc_test_checks_failed);
    return sc_test_checks_failed ? 1 : 0;
}

#endif /* SIMCLR_TEST_HARNESS_H */
