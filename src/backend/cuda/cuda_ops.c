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

/* ---- NT-Xent ----------------------------------------------------------------------------- */

static size_t round256(size_t b) { return (b + 255) / 256 * 256; }

void cuda_ntxent(sc_backend *be, const sc_tensor *z, double tau, sc_tensor *loss, sc_tensor *accuracy,
                 sc_tensor *dz) {
    cuda_require_f32("ntxent", z, loss, accuracy);
    cuda_impl *im = cuda_of(be);
    const int rows = (int)z->shape[0], dim = (int)z->shape[1];
    /* scratch: logits [rows, rows] floats | row losses (double) | row correctness (int) */
    const size_t logits_bytes = round256((size_t)rows * (size_t)rows * sizeof(float));
    const size_t loss_bytes = round256((size_t)rows * sizeof(double));
    char *scratch = cuda_scratch(im, logits_bytes + loss_bytes + (size_t)rows * sizeof(int), "NT-Xent logits");
    float *logits = (float *)scratch;
    double *row_loss = (double *)(scratch + logits_bytes);
    int *row_correct = (int *)(scratch + logits_bytes + loss_bytes);
    const float inv_tau = (float)(1.0 / tau);
    const float *zp = z->data;

    cuda_gemm(be, 1, 0, rows, rows, dim, inv_tau, zp, dim, zp, dim, 0.0f, logits, rows, NULL);
    sc_cuda_ntxent_rows(logits, rows, dz != NULL, row_loss, row_correct, im->stream);
    sc_cuda_ntxent_reduce(row_loss, row_correct, rows, loss->data, accuracy ? accuracy->data : NULL, im->stream);
    if (!dz) return;
    cuda_gemm(be, 0, 0, dim, rows, rows, inv_tau, zp, dim, logits, rows, 0.0f, dz->data, dim, NULL);
    cuda_gemm(be, 0, 1, dim, rows, rows, inv_tau, zp, dim, logits, rows, 1.0f, dz->data, dim, NULL);
}

/* ---- optimizer --------------------------------------------------------------------------- */

/* The chunk layout of one parameter table on the device (see kernels/optim.cu), rebuilt when
 * the table's trained rows change. */
struct cuda_optim_cache {
    uint64_t signature;
    sc_cuda_optim_layout layout;
    void *device; /* one allocation holding every array of the layout */
};

void cuda_optim_cache_free(cuda_optim_cache *cache) {
    if (!cache) return;
    if (cache->device) SC_CUDA_CHECK(cudaFree(cache->device));
    free(cache);
}

/* FNV-1a over what the layout depends on: offset, size and flags of each trained row. */
static uint64_t table_signature(const sc_param_table *t) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        const uint64_t v[3] = {(uint64_t)p->offset, (uint64_t)p->numel, p->flags};
        for (int j = 0; j < 3; j++) h = (h ^ v[j]) * 1099511628211ull;
    }
    return h ^ (uint64_t)t->count;
}

static size_t align8(size_t b) { return (b + 7) / 8 * 8; }

static void optim_layout_build(cuda_impl *im, const sc_param_table *t, uint64_t signature) {
    cuda_forbid_capture(im, "uploading the optimizer's tensor layout");
    int tensors = 0, chunks = 0;
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        if (p->flags & SC_PARAM_BN_STAT || p->numel == 0) continue;
        tensors++;
        chunks += (int)((p->numel + SC_CUDA_OPTIM_CHUNK - 1) / SC_CUDA_OPTIM_CHUNK);
    }
    /* host image of the device block: chunk_start (8-byte) first, then the int arrays */
    const size_t off_tensor = align8((size_t)chunks * sizeof(long long));
    const size_t off_len = off_tensor + align8((size_t)chunks * sizeof(int));
    const size_t off_first = off_len + align8((size_t)chunks * sizeof(int));
    const size_t off_count = off_first + align8((size_t)tensors * sizeof(int));
    const size_t off_flags = off_count + align8((size_t)tensors * sizeof(int));
    const size_t bytes = off_flags + align8((size_t)tensors * sizeof(unsigned)) + 8;
    char *host = calloc(1, bytes);
    SC_CHECK(host != NULL, "out of host memory for the optimizer layout");
    long long *chunk_start = (long long *)host;
    int *chunk_tensor = (int *)(host + off_tensor), *chunk_len = (int *)(host + off_len);
    int *first = (int *)(host + off_first), *count = (int *)(host + off_count);
    unsigned *flags = (unsigned *)(host + off_flags);
    int ti = 0, ci = 0;
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        if (p->flags & SC_PARAM_BN_STAT || p->numel == 0) continue;
        first[ti] = ci;
        flags[ti] = (p->flags & SC_PARAM_NO_WD ? 0u : SC_CUDA_OPTIM_DECAY) |
                    (p->flags & SC_PARAM_NO_LARS ? 0u : SC_CUDA_OPTIM_TRUST);
        for (int64_t s = 0; s < p->numel; s += SC_CUDA_OPTIM_CHUNK) {
            chunk_tensor[ci] = ti;
            chunk_start[ci] = (long long)(p->offset + s);
            chunk_len[ci] = (int)(p->numel - s < SC_CUDA_OPTIM_CHUNK ? p->numel - s : SC_CUDA_OPTIM_CHUNK);
            ci++;
        }
        count[ti] = ci - first[ti];
        ti++;
    }
    cuda_optim_cache *c = im->optim;
    if (c->device) SC_CUDA_CHECK(cudaFree(c->device));
    SC_CUDA_CHECK(cudaMalloc(&c->device, bytes));
    SC_CUDA_CHECK(cudaMemcpy(c->device, host, bytes, cudaMemcpyHostToDevice));
    free(host);
    char *d = c->device;
    c->layout = (sc_cuda_optim_layout){.tensors = tensors, .chunks = chunks,
                                       .chunk_tensor = (const int *)(d + off_tensor),
                                       .chunk_start = (const long long *)d,
                                       .chunk_len = (const int *)(d + off_len),
                                       .tensor_first_chunk = (const int *)(d + off_first),
                                       .tensor_chunks = (const int *)(d + off_count),
                                       .tensor_flags = (const unsigned *)(d + off_flags)};
    c->signature = signature;
}

void cuda_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table, sc_tensor *params,
                     const sc_tensor *grads, sc_tensor *state, const sc_tensor *lr) {
    cuda_require_f32("optim_step", params, grads, lr);
    cuda_impl *im = cuda_of(be);
    const uint64_t sig = table_signature(table);
    if (!im->optim->device || im->optim->signature != sig) optim_layout_build(im, table, sig);
    const sc_cuda_optim_layout *L = &im->optim->layout;
    const size_t partial_bytes = round256((size_t)L->chunks * 2 * sizeof(double));
    char *scratch = cuda_scratch(im, partial_bytes + (size_t)L->tensors * sizeof(double), "optimizer norms");
    sc_cuda_optim_step(L, hp->kind == SC_OPTIM_LARS, hp->momentum, hp->weight_decay, hp->trust_coef, hp->nesterov,
                       params->data, grads->data, state->data, lr->data, (double *)scratch,
                       (double *)(scratch + partial_bytes), im->stream);
}

sc_status cuda_optim_cache_create(cuda_optim_cache **out) {
    *out = calloc(1, sizeof **out);
    return *out ? SC_OK : sc_errorf(SC_ERR_NOMEM, "cannot allocate the optimizer cache");
}
