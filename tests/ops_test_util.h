/*
 * ops_test_util.h - helpers shared by the CPU op tests (test_ops_cpu*.c): scratch buffers
 * freed per test, seeded random data, F32/F64 conversion, naive reference convolutions and a
 * central-difference gradient checker.
 *
 * The CPU backend's memory is host memory, so tests hand plain host buffers to the ops.
 * Outputs are pre-filled with NaN (buf_nan) so that an op that accumulates into its output or
 * leaves an element unwritten fails loudly.
 */
#ifndef SIMCLR_OPS_TEST_UTIL_H
#define SIMCLR_OPS_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "simclr/backend.h"
#include "simclr/rng.h"

/* ---- scratch buffers, released together at the end of each test ---- */

#define TEST_MAX_BUFS 512
static void *test_bufs[TEST_MAX_BUFS];
static int test_nbufs = 0;

static inline void *buf_bytes(size_t bytes) {
    if (test_nbufs == TEST_MAX_BUFS) {
        printf("FAIL: too many test buffers\n");
        exit(1);
    }
    void *p = aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (!p) {
        printf("FAIL: out of memory\n");
        exit(1);
    }
    test_bufs[test_nbufs++] = p;
    return p;
}

static inline void bufs_release(void) {
    while (test_nbufs > 0) free(test_bufs[--test_nbufs]);
}

static inline double *buf_nan(size_t n) {
    double *p = buf_bytes(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static inline float *buf_nan_f32(size_t n) {
    float *p = buf_bytes(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* mean + sd * N(0, 1), reproducible from seed. */
static inline double *buf_randn(size_t n, uint64_t seed, double mean, double sd) {
    double *p = buf_bytes(n * sizeof *p);
    sc_rng r = sc_rng_make(seed, 0, 0, 0, SC_RNG_TEST);
    for (size_t i = 0; i < n; i++) p[i] = mean + sd * sc_rng_normal(&r);
    return p;
}

static inline double *buf_copy(const double *src, size_t n) {
    double *p = buf_bytes(n * sizeof *p);
    memcpy(p, src, n * sizeof *p);
    return p;
}

static inline float *buf_to_f32(const double *src, size_t n) {
    float *p = buf_bytes(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)src[i];
    return p;
}

static inline double *buf_to_f64(const float *src, size_t n) {
    double *p = buf_bytes(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = src[i];
    return p;
}

static inline double dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline double max_abs(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* A workspace tensor of exactly the size the op asks for, pre-filled with NaN bytes. */
static inline sc_tensor conv_workspace(sc_backend *be, const sc_conv_desc *d, sc_dtype dt) {
    size_t bytes = sc_op_conv2d_workspace(be, d, dt);
    unsigned char *p = buf_bytes(bytes);
    memset(p, 0xff, bytes);
    return sc_tensor_1d(p, SC_U8, (int64_t)bytes);
}

static inline sc_backend *backend_with_threads(int threads) {
    sc_backend_options opt = {0};
    opt.threads = threads;
    sc_backend *be = NULL;
    if (sc_backend_create("cpu", &opt, &be) != SC_OK) {
        printf("FAIL: cannot create a CPU backend: %s\n", sc_last_error());
        exit(1);
    }
    return be;
}

/* ---- naive convolutions (F64), the definition the im2col path must reproduce ---- */

static inline void naive_conv_fwd(const sc_conv_desc *d, const double *x, const double *w,
                                  double *y) {
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int k = 0; k < d->k; k++) {
                    double acc = 0.0;
                    for (int r = 0; r < d->r; r++)
                        for (int s = 0; s < d->s; s++) {
                            int iy = oy * d->stride - d->pad + r, ix = ox * d->stride - d->pad + s;
                            if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                            for (int c = 0; c < d->c; c++)
                                acc += x[(((size_t)n * d->h + iy) * d->w + ix) * d->c + c] *
                                       w[(((size_t)k * d->r + r) * d->s + s) * d->c + c];
                        }
                    y[(((size_t)n * d->oh + oy) * d->ow + ox) * d->k + k] = acc;
                }
}

/* dx (overwritten) and dw (overwritten) of sum(dy .* conv(x, w)). */
static inline void naive_conv_bwd(const sc_conv_desc *d, const double *x, const double *w,
                                  const double *dy, double *dx, double *dw) {
    memset(dx, 0, sizeof(double) * (size_t)d->n * d->h * d->w * d->c);
    memset(dw, 0, sizeof(double) * (size_t)d->k * d->r * d->s * d->c);
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int k = 0; k < d->k; k++) {
                    double g = dy[(((size_t)n * d->oh + oy) * d->ow + ox) * d->k + k];
                    for (int r = 0; r < d->r; r++)
                        for (int s = 0; s < d->s; s++) {
                            int iy = oy * d->stride - d->pad + r, ix = ox * d->stride - d->pad + s;
                            if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                            for (int c = 0; c < d->c; c++) {
                                size_t xi = (((size_t)n * d->h + iy) * d->w + ix) * d->c + c;
                                size_t wi = (((size_t)k * d->r + r) * d->s + s) * d->c + c;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                        }
                }
}

/* ---- finite differences ---- */

typedef double (*loss_fn)(void *ctx);

#define FD_STEP 1e-6

/* Compares the analytic gradient g of loss() with respect to p[0..n) with central differences
 * (step FD_STEP), element by element: |g - fd| <= rtol * (|fd| + max|fd|). p is restored. */
static inline void fd_check(const char *what, double *p, size_t n, const double *g, loss_fn loss,
                            void *ctx, double rtol) {
    double *num = buf_nan(n);
    for (size_t i = 0; i < n; i++) {
        double save = p[i];
        p[i] = save + FD_STEP;
        double lp = loss(ctx);
        p[i] = save - FD_STEP;
        double lm = loss(ctx);
        p[i] = save;
        num[i] = (lp - lm) / (2 * FD_STEP);
    }
    double scale = max_abs(num, n);
    sc_test_compare(what, g, num, (long)n, rtol * scale, rtol);
}

#endif /* SIMCLR_OPS_TEST_UTIL_H */
