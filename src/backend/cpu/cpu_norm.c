/*
 * cpu_norm.c - batch normalisation and row-wise L2 normalisation on the CPU.
 *
 * Batch norm views x as [M, C] (C is the last, contiguous dim) and normalises each channel
 * over the M rows, with the semantics documented in include/simclr/backend.h: the biased
 * variance normalises, the unbiased one enters running_var, and save_invstd = 1/sqrt(var+eps).
 * Per-channel statistics are reductions over rows, so the rows are cut into blocks of
 * BN_BLOCK_ROWS (a constant, never derived from the thread count); blocks produce partial sums
 * in double precision in parallel, and the partials are added in block order. Mean and variance
 * take two passes (sum, then squared deviations from the mean), which stays accurate when
 * |mean| >> std. Results are bit-identical for any thread count.
 *
 * L2 normalisation treats each row of x [M, D] independently, so rows run in parallel.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

/* Rows per batch-norm reduction block. */
#define BN_BLOCK_ROWS 256
/* Rows per parallel task of L2 normalisation. */
#define L2_BLOCK_ROWS 64
/* The norm floor of y = x / max(||x||, L2_EPS), as in torch.nn.functional.normalize. */
#define L2_EPS 1e-12


/* Scratch for per-block partial sums and per-channel coefficients (a few KiB to a few MiB);
 * failing to get it mid-step is not recoverable. */
static void *scratch(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    SC_CHECK(p != NULL, "cpu batch norm: cannot allocate %zu bytes of scratch", bytes);
    return p;
}

/* out[c] = sum over blocks b (in order) of part[b * c + ch]. */
static void sum_partials(const double *part, int64_t blocks, int64_t c, double *out) {
    for (int64_t ch = 0; ch < c; ch++) out[ch] = 0.0;
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t ch = 0; ch < c; ch++) out[ch] += part[b * c + ch];
}

static void rows_channels(const sc_tensor *t, int64_t *m, int64_t *c) {
    *c = t->shape[t->ndim - 1];
    *m = sc_tensor_numel(t) / *c;
}

#define T float
#define TFN(name) name##_f32
#include "cpu_norm.inc"
#undef T
#undef TFN

#define T double
#define TFN(name) name##_f64
#include "cpu_norm.inc"
#undef T
#undef TFN

void sc_cpu_bn_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                         const sc_tensor *beta, sc_tensor *y, sc_tensor *save_mean,
                         sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                         double momentum, double eps) {
    int64_t m, c;
    rows_channels(x, &m, &c);
    const void *beta_data = beta ? beta->data : NULL;
    if (x->dtype == SC_F64)
        bn_fwd_train_f64(be->threads, m, c, x->data, gamma->data, beta_data, y->data,
                         save_mean->data, save_invstd->data, running_mean->data, running_var->data,
                         momentum, eps);
    else
        bn_fwd_train_f32(be->threads, m, c, x->data, gamma->data, beta_data, y->data,
                         save_mean->data, save_invstd->data, running_mean->data, running_var->data,
                         momentum, eps);
}

void sc_cpu_bn_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                        const sc_tensor *beta, const sc_tensor *running_mean,
                        const sc_tensor *running_var, double eps, sc_tensor *y) {
    int64_t m, c;
    rows_channels(x, &m, &c);
    const void *beta_data = beta ? beta->data : NULL;
    if (x->dtype == SC_F64)
        bn_fwd_eval_f64(be->threads, m, c, x->data, gamma->data, beta_data, running_mean->data,
                        running_var->data, eps, y->data);
    else
        bn_fwd_eval_f32(be->threads, m, c, x->data, gamma->data, beta_data, running_mean->data,
                        running_var->data, eps, y->data);
}

void sc_cpu_bn_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                   const sc_tensor *save_mean, const sc_tensor *save_invstd, sc_tensor *dx,
                   sc_tensor *dgamma, sc_tensor *dbeta) {
    int64_t m, c;
    rows_channels(x, &m, &c);
    void *dbeta_data = dbeta ? dbeta->data : NULL;
    if (x->dtype == SC_F64)
        bn_bwd_f64(be->threads, m, c, x->data, dy->data, gamma->data, save_mean->data,
                   save_invstd->data, dx->data, dgamma->data, dbeta_data);
    else
        bn_bwd_f32(be->threads, m, c, x->data, dy->data, gamma->data, save_mean->data,
                   save_invstd->data, dx->data, dgamma->data, dbeta_data);
}

void sc_cpu_bn_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *save_mean,
                    sc_tensor *sums) {
    int64_t m, c;
    rows_channels(x, &m, &c);
    const void *dy_data = dy ? dy->data : NULL, *mean_data = dy ? save_mean->data : NULL;
    if (x->dtype == SC_F64)
        bn_sums_f64(be->threads, m, c, x->data, dy_data, mean_data, sums->data);
    else
        bn_sums_f32(be->threads, m, c, x->data, dy_data, mean_data, sums->data);
}

void sc_cpu_bn_fwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                             const sc_tensor *sums, double count, sc_tensor *y, sc_tensor *save_mean,
                             sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                             double momentum, double eps) {
    int64_t m, c;
    rows_channels(x, &m, &c);
    const void *beta_data = beta ? beta->data : NULL;
    if (x->dtype == SC_F64)
        bn_fwd_from_sums_f64(be->threads, m, c, x->data, gamma->data, beta_data, sums->data, count, y->data,
                             save_mean->data, save_invstd->data, running_mean->data, running_var->data, momentum, eps);
    else
        bn_fwd_from_sums_f32(be->threads, m, c, x->data, gamma->data, beta_data, sums->data, count, y->data,
                             save_mean->data, save_invstd->data, running_mean->data, running_var->data, momentum, eps);
}

void sc_cpu_bn_bwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                             const sc_tensor *save_mean, const sc_tensor *save_invstd, const sc_tensor *local,
                             const sc_tensor *global, double count, sc_tensor *dx, sc_tensor *dgamma,
                             sc_tensor *dbeta) {
    int64_t m, c;
    rows_channels(x, &m, &c);
    void *dbeta_data = dbeta ? dbeta->data : NULL;
    if (x->dtype == SC_F64)
        bn_bwd_from_sums_f64(be->threads, m, c, x->data, dy->data, gamma->data, save_mean->data, save_invstd->data,
                             local->data, global->data, count, dx->data, dgamma->data, dbeta_data);
    else
        bn_bwd_from_sums_f32(be->threads, m, c, x->data, dy->data, gamma->data, save_mean->data, save_invstd->data,
                             local->data, global->data, count, dx->data, dgamma->data, dbeta_data);
}

void sc_cpu_l2norm_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y, sc_tensor *norm) {
    const int64_t m = x->shape[0], dim = x->shape[1];
    if (x->dtype == SC_F64)
        l2norm_fwd_f64(be->threads, m, dim, x->data, y->data, norm->data);
    else
        l2norm_fwd_f32(be->threads, m, dim, x->data, y->data, norm->data);
}

void sc_cpu_l2norm_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *norm,
                       const sc_tensor *dy, sc_tensor *dx) {
    const int64_t m = y->shape[0], dim = y->shape[1];
    if (y->dtype == SC_F64)
        l2norm_bwd_f64(be->threads, m, dim, y->data, norm->data, dy->data, dx->data);
    else
        l2norm_bwd_f32(be->threads, m, dim, y->data, norm->data, dy->data, dx->data);
}
