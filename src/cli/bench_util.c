/*
 * bench_util.c - what the benchmarks (src/cli/bench_*.c) share: a monotonic
 * clock, order statistics of timings, and the date / host stamp of their JSON lines.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

double sc_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

sc_bench_stats sc_bench_summarise(double *ms, int n) {
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    sc_bench_stats s = {.median = ms[n / 2], .p10 = ms[n / 10], .p90 = ms[(n * 9) / 10]};
    return s;
}

void sc_bench_stamp(char date[32], char host[64]) {
    time_t t = time(NULL);
    strftime(date, 32, "%Y-%m-%d", gmtime(&t));
    if (gethostname(host, 64) != 0) host[0] = '\0';
    host[63] = '\0';
}
