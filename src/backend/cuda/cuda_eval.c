/*
 * cuda_eval.c - the CUDA op table's supervised-loss and evaluation entries: softmax
 * cross-entropy and the weighted kNN vote, thin wrappers over kernels/eval.cu.
 *
 * knn_scores walks the queries in blocks of rows so that the block's similarities to the
 * whole bank, [rows, N] F32, fit KNN_SIM_BYTES of the backend's shared scratch. Each block is
 * one cuBLASLt product (cuda_gemm, column-major: the row-major [rows, N] block is the N x rows
 * matrix bank q^T, i.e. op(A) = bank^T as stored, B = the query rows, as for a linear layer)
 * followed by the selection-and-vote kernel, one GPU block per query. Blocks hold a multiple
 * of 4 rows, so every block's first query row stays 16-byte aligned (cuBLASLt's requirement
 * here) whatever F is. With TF32 allowed on the backend the similarities are TF32 products,
 * which can reorder near-tied neighbours relative to the CPU's fp32 ones.
 *
 * Neither op synchronises with the host or allocates once the scratch is large enough.
 */
#include <limits.h>

#include "cuda_internal.h"

/* Bytes of similarities one query block may take. */
#define KNN_SIM_BYTES ((size_t)256 << 20)

void cuda_softmax_xent(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels, sc_tensor *loss,
                       sc_tensor *accuracy, sc_tensor *dlogits) {
    cuda_require_f32("softmax_xent", logits, loss, dlogits);
    cuda_require_f32("softmax_xent", accuracy, NULL, NULL);
    cuda_impl *im = cuda_of(be);
    const long long n = logits->shape[0];
    SC_CHECK(logits->shape[1] <= INT_MAX, "CUDA softmax_xent: %lld classes is more than this kernel indexes",
             (long long)logits->shape[1]);
    void *scratch = cuda_scratch(im, sc_cuda_softmax_xent_scratch_bytes(n), "softmax_xent");
    sc_cuda_softmax_xent(logits->data, labels->data, n, (int)logits->shape[1], loss->data,
                         accuracy ? accuracy->data : NULL, dlogits ? dlogits->data : NULL, scratch, im->stream);
}

void cuda_knn_scores(sc_backend *be, const sc_tensor *queries, const sc_tensor *bank, const sc_tensor *bank_labels,
                     int k, double temperature, sc_tensor *scores) {
    cuda_require_f32("knn_scores", queries, bank, scores);
    cuda_impl *im = cuda_of(be);
    const int64_t q = queries->shape[0], f = queries->shape[1], n = bank->shape[0], c = scores->shape[1];
    SC_CHECK(n <= INT_MAX && f <= INT_MAX && c <= INT_MAX,
             "CUDA knn_scores: bank [%lld, %lld] with %lld classes is more than the GEMM and kernels index",
             (long long)n, (long long)f, (long long)c);
    int64_t rows = (int64_t)(KNN_SIM_BYTES / ((size_t)n * sizeof(float))) / 4 * 4;
    if (rows < 4) rows = 4;
    if (rows > q) rows = q;
    float *sims = cuda_scratch(im, (size_t)rows * (size_t)n * sizeof(float), "knn_scores similarities");
    const float *qd = queries->data;
    float *out = scores->data;
    for (int64_t q0 = 0; q0 < q; q0 += rows) {
        const int64_t r = q - q0 < rows ? q - q0 : rows;
        cuda_gemm(be, 1, 0, (int)n, (int)r, (int)f, 1.0f, bank->data, (int)f, qd + q0 * f, (int)f, 0.0f, sims, (int)n,
                  NULL);
        sc_cuda_knn_vote(sims, r, n, bank_labels->data, k, (int)c, temperature, out + q0 * c, im->stream);
    }
}
