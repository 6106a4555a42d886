/*
 * cuda_blas.c - F32 matrix products through cuBLASLt: the head's linear layers and the
 * NT-Xent similarity products.
 *
 * cuda_gemm takes column-major operands as cuBLAS does; callers in cuda_ops.c map the
 * project's row-major tensors onto it (a row-major [M, K] matrix is a column-major K x M one).
 * Each distinct problem (transposes, sizes, leading dimensions, bias epilogue) gets one
 * cached entry: the operation descriptor, the four layouts and the algorithm that cuBLASLt's
 * heuristic ranks first, chosen once so that the same problem always runs the same kernel.
 *
 * Precision: compute type CUBLAS_COMPUTE_32F (true fp32) unless the backend allows TF32,
 * then CUBLAS_COMPUTE_32F_FAST_TF32. Determinism: one stream and a private workspace (no
 * cuBLAS-internal allocations, which also keeps the calls capturable); in deterministic mode
 * split-K reductions are excluded (reduction scheme NONE), so every product is computed in one
 * pass. Operands must be 16-byte aligned (the heuristic is told so; see MIN_ALIGNMENT).
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#define GEMM_BUCKETS 64
#define GEMM_ALIGN 16

typedef struct gemm_key {
    int trans_a, trans_b, m, n, k, lda, ldb, ldd, bias;
} gemm_key;

typedef struct gemm_entry {
    gemm_key key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
    size_t workspace;
    struct gemm_entry *next;
} gemm_entry;

struct cuda_gemm_cache {
    gemm_entry *buckets[GEMM_BUCKETS];
};

sc_status cuda_gemm_cache_create(cuda_gemm_cache **out) {
    *out = calloc(1, sizeof **out);
    return *out ? SC_OK : sc_errorf(SC_ERR_NOMEM, "cannot allocate the GEMM plan cache");
}

void cuda_gemm_cache_free(cuda_gemm_cache *cache) {
    if (!cache) return;
    for (int i = 0; i < GEMM_BUCKETS; i++)
        for (gemm_entry *e = cache->buckets[i], *next; e; e = next) {
            next = e->next;
            SC_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->a));
            SC_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->b));
            SC_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->d));
            SC_CUBLAS_CHECK(cublasLtMatmulDescDestroy(e->op));
            free(e);
        }
    free(cache);
}

static unsigned gemm_hash(const gemm_key *k) {
    const int *v = (const int *)k;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < sizeof *k / sizeof(int); i++) h = (h ^ (unsigned)v[i]) * 16777619u;
    return h % GEMM_BUCKETS;
}

static gemm_entry *gemm_build(sc_backend *be, const gemm_key *k) {
    cuda_impl *im = cuda_of(be);
    gemm_entry *e = calloc(1, sizeof *e);
    SC_CHECK(e != NULL, "out of host memory for a GEMM plan");
    e->key = *k;
    const cublasComputeType_t compute = be->allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    SC_CUBLAS_CHECK(cublasLtMatmulDescCreate(&e->op, compute, CUDA_R_32F));
    const cublasOperation_t ta = k->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = k->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    SC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    SC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (k->bias) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        SC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    }
    /* stored shapes: A is m x k (or k x m when transposed), B is k x n (or n x k) */
    SC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->a, CUDA_R_32F, k->trans_a ? k->k : k->m, k->trans_a ? k->m : k->k,
                                               k->lda));
    SC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->b, CUDA_R_32F, k->trans_b ? k->n : k->k, k->trans_b ? k->k : k->n,
                                               k->ldb));
    SC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->d, CUDA_R_32F, k->m, k->n, k->ldd));

    cublasLtMatmulPreference_t pref;
    SC_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = SC_CUDA_BLAS_WORKSPACE;
    const uint32_t align = GEMM_ALIGN, schemes = be->deterministic ? CUBLASLT_REDUCTION_SCHEME_NONE
                                                                   : CUBLASLT_REDUCTION_SCHEME_MASK;
    SC_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    SC_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                         sizeof schemes));
    static const cublasLtMatmulPreferenceAttributes_t aligns[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++)
        SC_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, aligns[i], &align, sizeof align));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    SC_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(im->lt, e->op, e->a, e->b, e->d, e->d, pref, 1, &result, &found));
    SC_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (found < 1)
        SC_FATAL("cuBLASLt has no algorithm for the F32 product %c%c m=%d n=%d k=%d (lda %d, ldb %d, ldd %d%s, TF32 %s)",
                 k->trans_a ? 'T' : 'N', k->trans_b ? 'T' : 'N', k->m, k->n, k->k, k->lda, k->ldb, k->ldd,
                 k->bias ? ", bias" : "", be->allow_tf32 ? "on" : "off");
    e->algo = result.algo;
    e->workspace = result.workspaceSize;
    return e;
}

void cuda_gemm(sc_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *d, int ldd, const float *bias) {
    cuda_impl *im = cuda_of(be);
    SC_CHECK(sc_cuda_aligned(a, GEMM_ALIGN) && sc_cuda_aligned(b, GEMM_ALIGN) && sc_cuda_aligned(d, GEMM_ALIGN) &&
                 (!bias || sc_cuda_aligned(bias, GEMM_ALIGN)),
             "GEMM operands must be %d-byte aligned", GEMM_ALIGN);
    gemm_key key = {trans_a != 0, trans_b != 0, m, n, k, lda, ldb, ldd, bias != NULL};
    unsigned h = gemm_hash(&key);
    gemm_entry *e = im->gemm->buckets[h];
    while (e && memcmp(&e->key, &key, sizeof key) != 0) e = e->next;
    if (!e) {
        e = gemm_build(be, &key);
        e->next = im->gemm->buckets[h];
        im->gemm->buckets[h] = e;
    }
    if (bias)
        SC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    SC_CUBLAS_CHECK(cublasLtMatmul(im->lt, e->op, &alpha, a, e->a, b, e->b, &beta, d, e->d, d, e->d, &e->algo,
                                   im->blas_ws, e->workspace, im->stream));
}
