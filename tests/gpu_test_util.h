/*
 * gpu_test_util.h - helpers of the GPU tests (test_gpu_*.c): backends, device tensors with
 * guard bytes, host copies and scale-relative comparisons.
 *
 * Every device tensor a test makes lives inside a larger allocation with GUARD_BYTES on
 * both sides. The whole allocation starts filled with 0xFF bytes (a float NaN), so an output
 * element an op forgets to write stays NaN and fails the comparison, and a write outside the
 * tensor changes a guard byte, which gpu_bufs_release() reports. Tensors start 256-byte
 * aligned like the project's arenas.
 */
#ifndef SIMCLR_GPU_TEST_UTIL_H
#define SIMCLR_GPU_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "simclr/backend.h"
#include "simclr/rng.h"

#define GUARD_BYTES 4096
#define GPU_MAX_BUFS 256

typedef struct gpu_buf {
    sc_backend *be;
    unsigned char *base; /* device allocation: guard | tensor | guard */
    size_t bytes;        /* tensor bytes */
    const char *what;
} gpu_buf;

static gpu_buf gpu_bufs[GPU_MAX_BUFS];
static int gpu_nbufs = 0;

/* A CUDA backend on GPU 0, or a failed test when it cannot be created. */
static inline sc_backend *gpu_backend(int tf32, int deterministic) {
    sc_backend_options o = {0};
    o.allow_tf32 = tf32;
    o.deterministic = deterministic;
    sc_backend *be = NULL;
    if (sc_backend_create("cuda", &o, &be) != SC_OK) {
        printf("FAIL: cannot create the CUDA backend: %s\n", sc_last_error());
        exit(1);
    }
    return be;
}

static inline sc_backend *cpu_backend(void) {
    sc_backend_options o = {0};
    sc_backend *be = NULL;
    if (sc_backend_create("cpu", &o, &be) != SC_OK) {
        printf("FAIL: cannot create the CPU backend: %s\n", sc_last_error());
        exit(1);
    }
    return be;
}

/* A guarded F32 device tensor; host == NULL leaves it NaN (an output). */
static inline sc_tensor gpu_tensor(sc_backend *be, const char *what, int ndim, const int64_t *shape,
                                   const float *host) {
    if (gpu_nbufs == GPU_MAX_BUFS) {
        printf("FAIL: too many GPU test buffers\n");
        exit(1);
    }
    sc_tensor t = sc_tensor_make(NULL, SC_F32, ndim, shape);
    size_t bytes = sc_tensor_nbytes(&t);
    void *base = NULL;
    if (sc_backend_alloc(be, bytes + 2 * GUARD_BYTES, what, &base) != SC_OK) {
        printf("FAIL: %s\n", sc_last_error());
        exit(1);
    }
    unsigned char *fill = malloc(bytes + 2 * GUARD_BYTES);
    if (!fill) exit(1);
    memset(fill, 0xff, bytes + 2 * GUARD_BYTES);
    if (host) memcpy(fill + GUARD_BYTES, host, bytes);
    be->ops->upload(be, base, fill, bytes + 2 * GUARD_BYTES);
    free(fill);
    gpu_bufs[gpu_nbufs++] = (gpu_buf){be, base, bytes, what};
    t.data = (unsigned char *)base + GUARD_BYTES;
    return t;
}

static inline sc_tensor gpu_tensor_1d(sc_backend *be, const char *what, int64_t n, const float *host) {
    return gpu_tensor(be, what, 1, &n, host);
}

/* Checks every guard region and frees every buffer made since the last release. */
static inline void gpu_bufs_release(void) {
    unsigned char *g = malloc(GUARD_BYTES);
    if (!g) exit(1);
    for (int i = 0; i < gpu_nbufs; i++) {
        gpu_buf *b = &gpu_bufs[i];
        for (int side = 0; side < 2; side++) {
            const unsigned char *at = side ? b->base + GUARD_BYTES + b->bytes : b->base;
            b->be->ops->download(b->be, g, at, GUARD_BYTES);
            int bad = 0;
            for (int k = 0; k < GUARD_BYTES; k++) bad += g[k] != 0xff;
            CHECKF(bad == 0, "%s: %d guard bytes %s the tensor were overwritten", b->what, bad,
                   side ? "after" : "before");
        }
        sc_backend_free(b->be, b->base);
    }
    gpu_nbufs = 0;
    free(g);
}

/* ---- host data ---- */

/* n floats of mean + sd * N(0, 1), reproducible from seed (freed by the caller). */
static inline float *host_randn(size_t n, uint64_t seed, double mean, double sd) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) exit(1);
    sc_rng r = sc_rng_make(seed, 0, 0, 0, SC_RNG_TEST);
    for (size_t i = 0; i < n; i++) p[i] = (float)(mean + sd * sc_rng_normal(&r));
    return p;
}

static inline float *host_nan(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) exit(1);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static inline float *host_copy(const float *src, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) exit(1);
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* The device tensor's values on the host (freed by the caller). */
static inline float *gpu_read(sc_backend *be, const sc_tensor *t) {
    size_t n = (size_t)sc_tensor_numel(t);
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) exit(1);
    sc_tensor_download(be, p, t);
    return p;
}

/* got vs want: bitwise when tol == 0 (a NaN equals any NaN: payloads differ between CPU and
 * GPU arithmetic), else |got - want| <= tol * max|want| elementwise (a NaN anywhere fails).
 * Reports the worst element; counts one check. */
static inline void compare_f32(const char *what, const float *got, const float *want, size_t n, double tol) {
    if (tol == 0.0) {
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; i++) {
            int same = memcmp(&got[i], &want[i], sizeof(float)) == 0 || (isnan(got[i]) && isnan(want[i]));
            if (!same && !bad++) first = i;
        }
        CHECKF(bad == 0, "%s: %zu of %zu elements differ bitwise, first %zu: got %.9g, want %.9g", what, bad, n, first,
               n ? got[first] : 0.0, n ? want[first] : 0.0);
        return;
    }
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fabs((double)want[i]) > scale ? fabs((double)want[i]) : scale;
    double *g = malloc((n ? n : 1) * sizeof *g), *w = malloc((n ? n : 1) * sizeof *w);
    if (!g || !w) exit(1);
    for (size_t i = 0; i < n; i++) {
        g[i] = got[i];
        w[i] = want[i];
    }
    sc_test_compare(what, g, w, (long)n, tol * (scale > 0 ? scale : 1.0), 0.0);
    free(g);
    free(w);
}

/* Compare a device tensor with host reference values. */
static inline void compare_gpu(const char *what, sc_backend *be, const sc_tensor *t, const float *want, double tol) {
    float *got = gpu_read(be, t);
    compare_f32(what, got, want, (size_t)sc_tensor_numel(t), tol);
    free(got);
}

#endif /* SIMCLR_GPU_TEST_UTIL_H */
