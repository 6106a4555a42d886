/*
 * cuda_internal.h - what the files of the CUDA backend share (the C files of src/backend/cuda).
 *
 *   cuda_context.c  device discovery and library versions (`simclr info`)
 *   cuda_backend.c  creation, memory, scratch, step-graph capture, the op table
 *   cuda_conv.c     convolutions through the cuDNN graph (backend) API: plan cache, engines
 *   cuda_blas.c     cuBLASLt matrix products: linear layers and the NT-Xent similarities
 *   cuda_ops.c      the other ops, thin C wrappers over the launchers in kernels/
 *   cuda_eval.c     softmax cross-entropy and the kNN vote (kernels/eval.cu, a similarity GEMM)
 *   cuda_staging.c  pinned host memory, events, uploads on the copy stream, device augmentation
 *
 * One backend owns one stream; every op is enqueued on it and nothing synchronises except
 * downloads, uploads and synchronize. The CUDA backend computes in F32 only: F64 is the CPU's
 * gradient-check type, and a CUDA op given anything else aborts saying so.
 *
 * Failed library calls are broken invariants: they abort through the SC_*_CHECK family with
 * the call, the library's error string, file:line and the GPU (sc_abort_impl adds the
 * trainer's rank/device/step context).
 */
#ifndef SIMCLR_CUDA_INTERNAL_H
#define SIMCLR_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cudnn.h>

#include "../backend_internal.h"
#include "common.cuh"
#include "cuda_kernels.h"

#define SC_CUDNN_CHECK(call)                                                                   \
    do {                                                                                       \
        cudnnStatus_t sc_cudnn_st_ = (call);                                                   \
        if (sc_cudnn_st_ != CUDNN_STATUS_SUCCESS) {                                            \
            char sc_cudnn_detail_[512];                                                        \
            cudnnGetLastErrorString(sc_cudnn_detail_, sizeof sc_cudnn_detail_);                \
            sc_abort_impl(__FILE__, __LINE__, #call, "cuDNN error %d: %s (%s), on GPU %d",     \
                          (int)sc_cudnn_st_, cudnnGetErrorString(sc_cudnn_st_),                \
                          sc_cudnn_detail_, sc_cuda_current_device());                         \
        }                                                                                      \
    } while (0)

#define SC_CUBLAS_CHECK(call)                                                                  \
    do {                                                                                       \
        cublasStatus_t sc_cublas_st_ = (call);                                                 \
        if (sc_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                            \
            sc_abort_impl(__FILE__, __LINE__, #call, "cuBLAS error %d: %s, on GPU %d",         \
                          (int)sc_cublas_st_, cublasLtGetStatusString(sc_cublas_st_),          \
                          sc_cuda_current_device());                                           \
    } while (0)

/* Default convolution workspace budget when sc_backend_options.workspace_limit is 0. */
#define SC_CUDA_DEFAULT_CONV_WORKSPACE ((size_t)512 << 20)
/* cuBLASLt workspace (NVIDIA recommends 32 MiB on Hopper). */
#define SC_CUDA_BLAS_WORKSPACE ((size_t)32 << 20)

typedef struct cuda_conv_cache cuda_conv_cache;
typedef struct cuda_gemm_cache cuda_gemm_cache;

typedef struct cuda_impl {
    int device;
    int sm_count;
    cudaStream_t stream;
    cudaStream_t copy_stream; /* host-to-device batch uploads (cuda_staging.c) */
    cudnnHandle_t cudnn;
    cublasLtHandle_t lt;
    void *blas_ws; /* SC_CUDA_BLAS_WORKSPACE bytes for cuBLASLt */
    void *scratch; /* shared temporary memory of the ops, grown outside captures */
    size_t scratch_bytes;
    unsigned scratch_generation; /* bumped when the scratch moves: recorded graphs go stale */
    int capturing;               /* inside capture_begin .. capture_end */
    cuda_conv_cache *conv;
    cuda_gemm_cache *gemm;
    sc_cuda_optim_plan *optim; /* kernels/lars.cu: the layout of the last parameter table */
} cuda_impl;

static inline cuda_impl *cuda_of(sc_backend *be) { return (cuda_impl *)be->impl; }

/* Aborts unless every tensor given is F32 (NULL entries are skipped). */
void cuda_require_f32(const char *op, const sc_tensor *a, const sc_tensor *b, const sc_tensor *c);

/* At least `bytes` of device scratch, valid until the next op. Growing it frees and
 * reallocates (which synchronises), so it must not happen during a capture: that aborts
 * with an explanation (run the step once before capturing it). */
void *cuda_scratch(cuda_impl *im, size_t bytes, const char *what);

/* Aborts when a capture is under way: `what` needs the host or allocates. */
void cuda_forbid_capture(const cuda_impl *im, const char *what);

/* ---- cuda_conv.c ---- */
sc_status cuda_conv_cache_create(cuda_conv_cache **out);
void cuda_conv_cache_free(cuda_conv_cache *cache);
size_t cuda_conv2d_workspace(sc_backend *be, const sc_conv_desc *d, sc_dtype dt);
void cuda_conv2d_fwd(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x, const sc_tensor *w,
                     sc_tensor *y, sc_tensor *ws);
void cuda_conv2d_bwd_data(sc_backend *be, const sc_conv_desc *d, const sc_tensor *dy,
                          const sc_tensor *w, sc_tensor *dx, sc_tensor *ws);
void cuda_conv2d_bwd_filter(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x,
                            const sc_tensor *dy, sc_tensor *dw, sc_tensor *ws);

/* ---- cuda_blas.c ----
 * D = alpha * op(A) op(B) + beta * D (+ bias[m] broadcast over columns when bias != NULL), all
 * column-major F32 as cuBLAS sees them: op(A) is m x k, op(B) is k x n, D is m x n with
 * leading dimension ldd. Pointers must be 16-byte aligned. */
sc_status cuda_gemm_cache_create(cuda_gemm_cache **out);
void cuda_gemm_cache_free(cuda_gemm_cache *cache);
void cuda_gemm(sc_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *d, int ldd, const float *bias);

/* ---- cuda_ops.c ---- */
void cuda_bn_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                       sc_tensor *y, sc_tensor *save_mean, sc_tensor *save_invstd, sc_tensor *running_mean,
                       sc_tensor *running_var, double momentum, double eps);
void cuda_bn_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                      const sc_tensor *running_mean, const sc_tensor *running_var, double eps, sc_tensor *y);
void cuda_bn_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                 const sc_tensor *save_mean, const sc_tensor *save_invstd, sc_tensor *dx, sc_tensor *dgamma,
                 sc_tensor *dbeta);
void cuda_bn_act_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                           const sc_tensor *residual, int relu, sc_tensor *y, sc_tensor *save_mean,
                           sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                           double momentum, double eps);
void cuda_bn_act_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                          const sc_tensor *residual, int relu, const sc_tensor *running_mean,
                          const sc_tensor *running_var, double eps, sc_tensor *y);
void cuda_bn_relu_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *y, const sc_tensor *dy,
                      const sc_tensor *gamma, const sc_tensor *save_mean, const sc_tensor *save_invstd,
                      sc_tensor *dx, sc_tensor *dgamma, sc_tensor *dbeta);
void cuda_bn_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *save_mean,
                  sc_tensor *sums);
void cuda_bn_fwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                           const sc_tensor *sums, double count, sc_tensor *y, sc_tensor *save_mean,
                           sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                           double momentum, double eps);
void cuda_bn_bwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                           const sc_tensor *save_mean, const sc_tensor *save_invstd, const sc_tensor *local,
                           const sc_tensor *global, double count, sc_tensor *dx, sc_tensor *dgamma,
                           sc_tensor *dbeta);
void cuda_relu_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y);
void cuda_relu_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx);
void cuda_add(sc_backend *be, const sc_tensor *a, const sc_tensor *b, sc_tensor *y);
void cuda_maxpool_fwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, sc_tensor *y);
void cuda_maxpool_bwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, const sc_tensor *dy,
                      sc_tensor *dx);
void cuda_avgpool_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y);
void cuda_avgpool_bwd(sc_backend *be, const sc_tensor *dy, sc_tensor *dx);
void cuda_linear_fwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *b, sc_tensor *y);
void cuda_linear_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *dy, sc_tensor *dx,
                     sc_tensor *dw, sc_tensor *db);
void cuda_l2norm_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y, sc_tensor *norm);
void cuda_l2norm_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *norm, const sc_tensor *dy,
                     sc_tensor *dx);
size_t cuda_contrastive_workspace(sc_backend *be, const sc_contrastive_desc *d, int64_t rows, int64_t cols,
                                  int64_t dim, sc_dtype dt);
void cuda_contrastive(sc_backend *be, const sc_contrastive_desc *d, const sc_tensor *z_rows, const sc_tensor *z_cols,
                      sc_tensor *loss, sc_tensor *accuracy, sc_tensor *d_rows, sc_tensor *d_cols, sc_tensor *ws);
void cuda_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table, sc_tensor *params,
                     const sc_tensor *grads, sc_tensor *state, sc_tensor *state2, sc_tensor *scalars);

/* ---- cuda_eval.c ---- */
void cuda_softmax_xent(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels, sc_tensor *loss,
                       sc_tensor *accuracy, sc_tensor *dlogits);
void cuda_knn_scores(sc_backend *be, const sc_tensor *queries, const sc_tensor *bank, const sc_tensor *bank_labels,
                     int k, double temperature, sc_tensor *scores);

/* ---- cuda_staging.c ---- */
void *cuda_host_alloc(sc_backend *be, size_t bytes);
void cuda_host_free(sc_backend *be, void *ptr);
sc_backend_event *cuda_event_create(sc_backend *be);
void cuda_event_destroy(sc_backend *be, sc_backend_event *ev);
void cuda_event_record(sc_backend *be, sc_backend_event *ev);
void cuda_event_sync(sc_backend *be, sc_backend_event *ev);
void cuda_upload_async(sc_backend *be, void *dst, const void *host_src, size_t bytes, sc_backend_event *after,
                       sc_backend_event *done);
size_t cuda_augment_workspace(sc_backend *be, const sc_augment_params *p, int samples, int wc);
void cuda_augment_crops(sc_backend *be, const sc_augment_params *p, uint64_t seed, uint32_t epoch, const uint8_t *crops,
                        const uint32_t *keys, int samples, int wc, float *views, void *workspace);

#endif /* SIMCLR_CUDA_INTERNAL_H */
