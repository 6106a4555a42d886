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

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "simclr/backend.h"

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

/* ---- norm.cu: L2 normalisation of the rows of [m, d] ---- */
void sc_cuda_l2norm_fwd(const float *x, float *y, float *norm, int m, int d, cudaStream_t stream);
void sc_cuda_l2norm_bwd(const float *y, const float *norm, const float *dy, float *dx, int m, int d,
                        cudaStream_t stream);

/* ---- loss.cu: the row pass of NT-Xent over logits [rows, rows] (see loss.cu) ---- */
/* row_loss[rows] and row_correct[rows]; with want_grad, logits are overwritten by G. */
void sc_cuda_ntxent_rows(float *logits, int rows, int want_grad, double *row_loss, int *row_correct,
                         cudaStream_t stream);
/* loss[1] = mean row loss, accuracy[1] (may be NULL) = mean of row_correct. */
void sc_cuda_ntxent_reduce(const double *row_loss, const int *row_correct, int rows, float *loss, float *accuracy,
                           cudaStream_t stream);

/* ---- optim.cu: LARS / SGD over the flat buffers ---- */
#define SC_CUDA_OPTIM_CHUNK 16384 /* elements per chunk of a tensor */
enum { SC_CUDA_OPTIM_DECAY = 1u << 0, SC_CUDA_OPTIM_TRUST = 1u << 1 };
/* Device arrays describing the trained tensors, built once per parameter table. */
typedef struct sc_cuda_optim_layout {
    int tensors, chunks;
    const int *chunk_tensor;       /* [chunks] tensor of each chunk */
    const long long *chunk_start;  /* [chunks] first element (flat offset) */
    const int *chunk_len;          /* [chunks] elements */
    const int *tensor_first_chunk; /* [tensors] */
    const int *tensor_chunks;      /* [tensors] */
    const unsigned *tensor_flags;  /* [tensors] SC_CUDA_OPTIM_DECAY | SC_CUDA_OPTIM_TRUST */
} sc_cuda_optim_layout;
/* One step; lr is a 1-element device tensor. partials: 2 * chunks doubles, scales: tensors
 * doubles of device scratch (LARS only). */
void sc_cuda_optim_step(const sc_cuda_optim_layout *layout, int lars, double momentum, double weight_decay,
                        double trust_coef, int nesterov, float *params, const float *grads, float *state,
                        const float *lr, double *partials, double *scales, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_CUDA_KERNELS_H */
