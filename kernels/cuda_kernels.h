/*
 * cuda_kernels.h - host-callable launchers of the kernels in the kernels/ CUDA files (C linkage), used
 * by the CUDA backend in src/backend/cuda and by the GPU tests.
 *
 * Every launcher enqueues on `stream` and checks the launch; none synchronises. Tensors are
 * dense row-major float arrays in device memory (activations NHWC, viewed as [M, C] where
 * a launcher says so). Scratch pointers are device memory the caller owns, at least the
 * size the matching *_scratch_bytes function returns.
 */
#ifndef SIMCLR_CUDA_KERNELS_H
#define SIMCLR_CUDA_KERNELS_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "simclr/backend.h"
#include "simclr/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- rng.cu ---- */
/* out[0..n) = the first n words of the Philox stream (seed, epoch, sample, view, purpose). */
void sc_cuda_philox_fill(uint32_t *out, long long n, uint64_t seed, uint32_t epoch, uint32_t sample, uint32_t view,
                         uint32_t purpose, cudaStream_t stream);

/* ---- elementwise.cu (semantics of the matching sc_backend_ops entries) ---- */
/* cudaSuccess when this binary holds code the current GPU can run (checked at backend
 * creation, so that a GPU of an architecture the build did not target fails clearly). */
cudaError_t sc_cuda_kernels_loadable(void);
void sc_cuda_relu_fwd(const float *x, float *y, long long n, cudaStream_t stream);                   /* y may alias x */
void sc_cuda_relu_bwd(const float *y, const float *dy, float *dx, long long n, cudaStream_t stream); /* dx may alias dy */
void sc_cuda_add(const float *a, const float *b, float *y, long long n, cudaStream_t stream);        /* y may alias a, b */
void sc_cuda_maxpool_fwd(sc_pool_desc d, const float *x, float *y, cudaStream_t stream);
void sc_cuda_maxpool_bwd(sc_pool_desc d, const float *x, const float *dy, float *dx, cudaStream_t stream);
/* x [n, hw, c] -> y [n, c] and back. */
void sc_cuda_avgpool_fwd(const float *x, float *y, int n, int hw, int c, cudaStream_t stream);
void sc_cuda_avgpool_bwd(const float *dy, float *dx, int n, int hw, int c, cudaStream_t stream);
/* out[cols] = column sums of x [rows, cols] (in double, row order). */
void sc_cuda_column_sums(const float *x, float *out, int rows, int cols, cudaStream_t stream);

/* ---- norm.cu: batch norm over x viewed as [m, c], fused residual add and ReLU ---- */
size_t sc_cuda_bn_scratch_bytes(long long m, int c);
/* y = act(bn(x) + residual) with batch statistics; beta and residual may be NULL; relu != 0
 * applies max(., 0). Saves mean and invstd, updates the running statistics (unbiased var). */
void sc_cuda_bn_fwd_train(const float *x, const float *gamma, const float *beta, const float *residual, int relu,
                          float *y, float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                          long long m, int c, double momentum, double eps, void *scratch, cudaStream_t stream);
/* Inference: the same with the running statistics. */
void sc_cuda_bn_fwd_eval(const float *x, const float *gamma, const float *beta, const float *residual, int relu,
                         const float *running_mean, const float *running_var, double eps, float *y, long long m,
                         int c, void *scratch, cudaStream_t stream);
/* Backward of bn_fwd_train for the gradient g = dy, or dy * (y > 0) when y (the output of a
 * ReLU that followed the BN) is not NULL. dbeta may be NULL. dy is not modified. */
void sc_cuda_bn_bwd(const float *x, const float *y, const float *dy, const float *gamma, const float *save_mean,
                    const float *save_invstd, float *dx, float *dgamma, float *dbeta, long long m, int c,
                    void *scratch, cudaStream_t stream);

/* Global batch norm (backend.h's bn_sums, bn_fwd_from_sums, bn_bwd_from_sums); sums [2, c]
 * are device doubles; scratch as sc_cuda_bn_scratch_bytes. */
void sc_cuda_bn_sums(const float *x, const float *dy, const float *save_mean, double *sums, long long m, int c,
                     void *scratch, cudaStream_t stream);
void sc_cuda_bn_fwd_from_sums(const float *x, const float *gamma, const float *beta, const double *sums, double count,
                              float *y, float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                              long long m, int c, double momentum, double eps, void *scratch, cudaStream_t stream);
void sc_cuda_bn_bwd_from_sums(const float *x, const float *dy, const float *gamma, const float *save_mean,
                              const float *save_invstd, const double *local, const double *global, double count,
                              float *dx, float *dgamma, float *dbeta, long long m, int c, void *scratch,
                              cudaStream_t stream);

/* ---- norm.cu: L2 normalisation of the rows of [m, d] ---- */
void sc_cuda_l2norm_fwd(const float *x, float *y, float *norm, int m, int d, cudaStream_t stream);
void sc_cuda_l2norm_bwd(const float *y, const float *norm, const float *dy, float *dx, int m, int d,
                        cudaStream_t stream);

/* ---- kernels/ntxent.cu: the fused contrastive losses ----
 * The loss op of backend.h (same arguments and semantics; inputs F32 or BF16, loss and
 * accuracy F32) without materialising the R x C matrix. ws: device scratch of at least
 * sc_cuda_contrastive_workspace bytes for the same descriptor, sizes and dtype (a bound that
 * only grows with rows and cols: plan it once for the largest batch). */
size_t sc_cuda_contrastive_workspace(const sc_contrastive_desc *d, int64_t rows, int64_t cols, int64_t dim,
                                     sc_dtype dt);
void sc_cuda_contrastive(const sc_contrastive_desc *d, const sc_tensor *z_rows, const sc_tensor *z_cols,
                         sc_tensor *loss, sc_tensor *accuracy, sc_tensor *d_rows, sc_tensor *d_cols, sc_tensor *ws,
                         cudaStream_t stream);
/* The same for NT-Xent only, the simple way: cuBLAS SGEMM for the R x C logits (fp32, kept in
 * the workspace), a softmax kernel, two SGEMMs for the gradients. The cross-check and the
 * benchmark baseline. Uses `handle` on `stream` (its previous stream is restored). */
size_t sc_cuda_ntxent_cublas_workspace(int64_t rows, int64_t cols, int64_t dim);
void sc_cuda_ntxent_cublas(cublasHandle_t handle, const sc_contrastive_desc *d, const sc_tensor *z_rows,
                           const sc_tensor *z_cols, sc_tensor *loss, sc_tensor *accuracy, sc_tensor *d_rows,
                           sc_tensor *d_cols, sc_tensor *ws, cudaStream_t stream);

/* ---- kernels/lars.cu: the fused optimizer step ----
 * A plan holds the device copy of a parameter table's layout (chunks of every trainable
 * tensor) and the step's scratch; build it once per table (cudaMalloc, a synchronous upload)
 * and rebuild it when sc_cuda_optim_plan_matches says the table is another one. */
typedef struct sc_cuda_optim_plan sc_cuda_optim_plan;
sc_status sc_cuda_optim_plan_create(const sc_param_table *table, sc_cuda_optim_plan **out);
int sc_cuda_optim_plan_matches(const sc_cuda_optim_plan *plan, const sc_param_table *table);
void sc_cuda_optim_plan_destroy(sc_cuda_optim_plan *plan);
/* The optimizer op of backend.h (same arguments and semantics): params and state F32, grads
 * F32 or BF16, scalars the F64 step record; two launches, no host synchronisation. */
void sc_cuda_optim_step(sc_cuda_optim_plan *plan, const sc_optim_hparams *hp, sc_tensor *params,
                        const sc_tensor *grads, sc_tensor *state, sc_tensor *state2, sc_tensor *scalars,
                        cudaStream_t stream);

/* augment.cu: the device half of SimCLR augmentation, the shape of the backend table's
 * augment_workspace / augment_crops entries (include/simclr/backend.h). crops [2B, S, S, wc]
 * uint8, keys [B], views [2B, S, S, p->out_channels] F32, all device memory; workspace holds
 * sc_cuda_augment_workspace(p, B, wc) bytes. CPU reference: sc_aug_finish_crop. */
size_t sc_cuda_augment_workspace(const sc_augment_params *p, int samples, int wc);
void sc_cuda_augment_crops(const sc_augment_params *p, uint64_t seed, uint32_t epoch, const uint8_t *crops,
                           const uint32_t *keys, int samples, int wc, float *views, void *workspace,
                           cudaStream_t stream);
/* ---- kernels/eval.cu: softmax cross-entropy and the kNN vote ---- */
/* The softmax_xent op of backend.h for logits [n, k] F32, labels [n] I32: loss[1],
 * accuracy[1] (may be NULL), dlogits [n, k] (may be NULL), all on the device. scratch: at
 * least sc_cuda_softmax_xent_scratch_bytes(n) bytes, 8-byte aligned. A label outside [0, k)
 * makes its row's loss and gradient NaN (checked on the device, not reported). */
size_t sc_cuda_softmax_xent_scratch_bytes(long long n);
void sc_cuda_softmax_xent(const float *logits, const int32_t *labels, long long n, int k, float *loss,
                          float *accuracy, float *dlogits, void *scratch, cudaStream_t stream);
/* The selection and vote of knn_scores for a block of queries whose similarities to the
 * whole bank are sims [rows, n]: scores [rows, classes] (row-major, overwritten) get, per
 * row, the sum of exp(s / temperature) over its k largest similarities (ties to the lower
 * bank index) by label. 1 <= k <= n; a bank label outside [0, classes) among a row's
 * neighbours makes that score row NaN. classes is limited by shared memory (about 28000 on
 * an H100; more aborts saying so). */
void sc_cuda_knn_vote(const float *sims, long long rows, long long n, const int32_t *labels, int k, int classes,
                      double temperature, float *scores, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_CUDA_KERNELS_H */
