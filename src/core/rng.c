/*
 * rng.c - the non-inline parts of the Philox streams (include/simclr/rng.h).
 */
#include "simclr/rng.h"

#include <math.h>

double sc_rng_normal(sc_rng *r) {
    /* 1 - u keeps the argument of log in (0, 1]. */
    double u1 = 1.0 - sc_rng_uniform_f64(r);
    double u2 = sc_rng_uniform_f64(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
