/*
 * cuda_ops.c - the CUDA op table entries other than convolutions: batch norm (plain and
 * fused), ReLU, add, pooling, linear layers, L2 normalisation, NT-Xent and the optimizer step.
 *
 * Each entry checks the dtype (F32 only), maps the tensors onto a launcher of kernels/ or a
 * cuBLASLt product, and takes any temporary memory from the backend's shared scratch.
 * Shapes were validated by src/backend/backend.c.
 *
 * Linear layers map row-major tensors onto column-major cuBLASLt products: with
 * x [M, K], w [N, K], y [M, N] (row-major, i.e. column-major K x M, K x N and N x M),
 *   y^T  = w x^T        (op(A) = w^T as stored, B = x),  bias epilogue over the N rows
 *   dx^T = w^T dy^T     (A = w, B = dy)
 *   dw^T = x^T dy       (A = x, op(B) = dy^T)
 * and db is a column-sum kernel (in double, row order). NT-Xent: logits = z z^T / tau into
 * scratch, the row kernel turns them into G in place, then dz^T = z^T G^T / tau + z^T G / tau
 * (two products, the second accumulating), i.e. dz = (G + G^T) z / tau as on the CPU.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* ---- batch norm ------------------------------------------------------------------------- */

static void rows_channels(const sc_tensor *t, long long *m, int *c) {
    *c = (int)t->shape[t->ndim - 1];
    *m = (long long)(sc_tensor_numel(t) / *c);
}

static const float *fptr(const sc_tensor *t) { return t ? (const float *)t->data : NULL; }

void cuda_bn_act_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                           const sc_tensor *residual, int relu, sc_tensor *y, sc_tensor *save_mean,
                           sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var, double momentum,
                           double eps) {
    cuda_require_f32("bn_fwd_train", x, gamma, residual);
    cuda_impl *im = cuda_of(be);
    long long m;
    int c;
    rows_channels(x, &m, &c);
    void *scratch = cuda_scratch(im, sc_cuda_bn_scratch_bytes(m, c), "batch norm");
    sc_cuda_bn_fwd_train(x->data, gamma->data, fptr(beta), fptr(residual), relu, y->data, save_mean->data,
                         save_invstd->data, running_mean->data, running_var->data, m, c, momentum, eps, scratch,
                         im->stream);
}

void cuda_bn_act_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                          const sc_tensor *residual, int relu, const sc_tensor *running_mean,
                          const sc_tensor *running_var, double eps, sc_tensor *y) {
    cuda_require_f32("bn_fwd_eval", x, gamma, residual);
    cuda_impl *im = cuda_of(be);
    long long m;
    int c;
    rows_channels(x, &m, &c);
    void *scratch = cuda_scratch(im, sc_cuda_bn_scratch_bytes(m, c), "batch norm");
    sc_cuda_bn_fwd_eval(x->data, gamma->data, fptr(beta), fptr(residual), relu, running_mean->data,
                        running_var->data, eps, y->data, m, c, scratch, im->stream);
}

void cuda_bn_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                       sc_tensor *y, sc_tensor *save_mean, sc_tensor *save_invstd, sc_tensor *running_mean,
                       sc_tensor *running_var, double momentum, double eps) {
    cuda_bn_act_fwd_train(be, x, gamma, beta, NULL, 0, y, save_mean, save_invstd, running_mean, running_var,
                          momentum, eps);
}

void cuda_bn_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                      const sc_tensor *running_mean, const sc_tensor *running_var, double eps, sc_tensor *y) {
    cuda_bn_act_fwd_eval(be, x, gamma, beta, NULL, 0, running_mean, running_var, eps, y);
}

void cuda_bn_relu_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *y, const sc_tensor *dy,
                      const sc_tensor *gamma, const sc_tensor *save_mean, const sc_tensor *save_invstd, sc_tensor *dx,
                      sc_tensor *dgamma, sc_tensor *dbeta) {
    cuda_require_f32("bn_bwd", x, dy, gamma);
    cuda_impl *im = cuda_of(be);
    long long m;
    int c;
    rows_channels(x, &m, &c);
    void *scratch = cuda_scratch(im, sc_cuda_bn_scratch_bytes(m, c), "batch norm backward");
    sc_cuda_bn_bwd(x->data, fptr(y), dy->data, gamma->data, save_mean->data, save_invstd->data, dx->data,
                   dgamma->data, dbeta ? dbeta->data : NULL, m, c, scratch, im->stream);
}

void cuda_bn_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                 const sc_tensor *save_mean, const sc_tensor *save_invstd, sc_tensor *dx, sc_tensor *dgamma,
                 sc_tensor *dbeta) {
    cuda_bn_relu_bwd(be, x, NULL, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

void cuda_bn_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *save_mean, sc_tensor *sums) {
    cuda_require_f32("bn_sums", x, dy, save_mean);
    cuda_impl *im = cuda_of(be);
    long long m;
    int c;
    rows_channels(x, &m, &c);
    void *scratch = cuda_scratch(im, sc_cuda_bn_scratch_bytes(m, c), "batch norm sums");
    sc_cuda_bn_sums(x->data, fptr(dy), fptr(save_mean), sums->data, m, c, scratch, im->stream);
}

void cuda_bn_fwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                           const sc_tensor *sums, double count, sc_tensor *y, sc_tensor *save_mean,
                           sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var, double momentum,
                           double eps) {
    cuda_require_f32("bn_fwd_from_sums", x, gamma, beta);
    cuda_impl *im = cuda_of(be);
    long long m;
    int c;
    rows_channels(x, &m, &c);
    void *scratch = cuda_scratch(im, sc_cuda_bn_scratch_bytes(m, c), "batch norm");
    sc_cuda_bn_fwd_from_sums(x->data, gamma->data, fptr(beta), sums->data, count, y->data, save_mean->data,
                             save_invstd->data, running_mean->data, running_var->data, m, c, momentum, eps, scratch,
                             im->stream);
}

void cuda_bn_bwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                           const sc_tensor *save_mean, const sc_tensor *save_invstd, const sc_tensor *local,
                           const sc_tensor *global, double count, sc_tensor *dx, sc_tensor *dgamma, sc_tensor *dbeta) {
    cuda_require_f32("bn_bwd_from_sums", x, dy, gamma);
    cuda_impl *im = cuda_of(be);
    long long m;
    int c;
    rows_channels(x, &m, &c);
    void *scratch = cuda_scratch(im, sc_cuda_bn_scratch_bytes(m, c), "batch norm backward");
    sc_cuda_bn_bwd_from_sums(x->data, dy->data, gamma->data, save_mean->data, save_invstd->data, local->data,
                             global->data, count, dx->data, dgamma->data, dbeta ? dbeta->data : NULL, m, c, scratch,
                             im->stream);
}

/* ---- elementwise and pooling ----------------------------------------------------------- */

void cuda_relu_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y) {
    cuda_require_f32("relu_fwd", x, NULL, NULL);
    sc_cuda_relu_fwd(x->data, y->data, sc_tensor_numel(x), cuda_of(be)->stream);
}

void cuda_relu_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx) {
    cuda_require_f32("relu_bwd", y, NULL, NULL);
    sc_cuda_relu_bwd(y->data, dy->data, dx->data, sc_tensor_numel(y), cuda_of(be)->stream);
}

void cuda_add(sc_backend *be, const sc_tensor *a, const sc_tensor *b, sc_tensor *y) {
    cuda_require_f32("add", a, NULL, NULL);
    sc_cuda_add(a->data, b->data, y->data, sc_tensor_numel(a), cuda_of(be)->stream);
}

void cuda_maxpool_fwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, sc_tensor *y) {
    cuda_require_f32("maxpool_fwd", x, NULL, NULL);
    sc_cuda_maxpool_fwd(*d, x->data, y->data, cuda_of(be)->stream);
}

void cuda_maxpool_bwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, const sc_tensor *dy, sc_tensor *dx) {
    cuda_require_f32("maxpool_bwd", x, NULL, NULL);
    sc_cuda_maxpool_bwd(*d, x->data, dy->data, dx->data, cuda_of(be)->stream);
}

void cuda_avgpool_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y) {
    cuda_require_f32("avgpool_fwd", x, NULL, NULL);
    sc_cuda_avgpool_fwd(x->data, y->data, (int)x->shape[0], (int)(x->shape[1] * x->shape[2]), (int)x->shape[3],
                        cuda_of(be)->stream);
}

void cuda_avgpool_bwd(sc_backend *be, const sc_tensor *dy, sc_tensor *dx) {
    cuda_require_f32("avgpool_bwd", dy, NULL, NULL);
    sc_cuda_avgpool_bwd(dy->data, dx->data, (int)dx->shape[0], (int)(dx->shape[1] * dx->shape[2]),
                        (int)dx->shape[3], cuda_of(be)->stream);
}

/* ---- linear layers ---------------------------------------------------------------------- */

void cuda_linear_fwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *b, sc_tensor *y) {
    cuda_require_f32("linear_fwd", x, w, b);
    const int m = (int)x->shape[0], k = (int)x->shape[1], n = (int)w->shape[0];
    cuda_gemm(be, 1, 0, n, m, k, 1.0f, w->data, k, x->data, k, 0.0f, y->data, n, fptr(b));
}

void cuda_linear_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *dy, sc_tensor *dx,
                     sc_tensor *dw, sc_tensor *db) {
    cuda_require_f32("linear_bwd", x, w, dy);
    const int m = (int)x->shape[0], k = (int)x->shape[1], n = (int)w->shape[0];
    if (dx) cuda_gemm(be, 0, 0, k, m, n, 1.0f, w->data, k, dy->data, n, 0.0f, dx->data, k, NULL);
    cuda_gemm(be, 0, 1, k, n, m, 1.0f, x->data, k, dy->data, n, 0.0f, dw->data, k, NULL);
    if (db) sc_cuda_column_sums(dy->data, db->data, m, n, cuda_of(be)->stream);
}

/* ---- L2 normalisation ------------------------------------------------------------------- */

void cuda_l2norm_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y, sc_tensor *norm) {
    cuda_require_f32("l2norm_fwd", x, NULL, NULL);
    sc_cuda_l2norm_fwd(x->data, y->data, norm->data, (int)x->shape[0], (int)x->shape[1], cuda_of(be)->stream);
}

void cuda_l2norm_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *norm, const sc_tensor *dy, sc_tensor *dx) {
    cuda_require_f32("l2norm_bwd", y, NULL, NULL);
    sc_cuda_l2norm_bwd(y->data, norm->data, dy->data, dx->data, (int)y->shape[0], (int)y->shape[1],
                       cuda_of(be)->stream);
}

/* ---- contrastive loss (kernels/ntxent.cu) ----------------------------------------------- */

size_t cuda_contrastive_workspace(sc_backend *be, const sc_contrastive_desc *d, int64_t rows, int64_t cols,
                                  int64_t dim, sc_dtype dt) {
    (void)be;
    return sc_cuda_contrastive_workspace(d, rows, cols, dim, dt);
}

void cuda_contrastive(sc_backend *be, const sc_contrastive_desc *d, const sc_tensor *z_rows, const sc_tensor *z_cols,
                      sc_tensor *loss, sc_tensor *accuracy, sc_tensor *d_rows, sc_tensor *d_cols, sc_tensor *ws) {
    sc_cuda_contrastive(d, z_rows, z_cols, loss, accuracy, d_rows, d_cols, ws, cuda_of(be)->stream);
}

/* ---- optimizer (kernels/lars.cu) ---------------------------------------------------------- */

void cuda_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table, sc_tensor *params,
                     const sc_tensor *grads, sc_tensor *state, sc_tensor *state2, sc_tensor *scalars) {
    cuda_impl *im = cuda_of(be);
    if (!im->optim || !sc_cuda_optim_plan_matches(im->optim, table)) { /* the table's layout, uploaded once */
        cuda_forbid_capture(im, "uploading the optimizer's tensor layout");
        sc_cuda_optim_plan_destroy(im->optim);
        im->optim = NULL;
        SC_CHECK(sc_cuda_optim_plan_create(table, &im->optim) == SC_OK, "optimizer plan: %s", sc_last_error());
    }
    sc_cuda_optim_step(im->optim, hp, params, grads, state, state2, scalars, im->stream);
}
