/*
 * cuda_kernels.h - host-callable launchers of the kernels in the kernels/ CUDA files (C linkage), used
 * by the CUDA backend in src/backend/cuda, the GPU tests and `simclr bench`. Launchers enqueue
 * on `stream` and never synchronise; tensors are device memory.
 */
#ifndef SIMCLR_CUDA_KERNELS_H
#define SIMCLR_CUDA_KERNELS_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "simclr/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[0..n) = the first n words of the Philox stream (seed, epoch, sample, view, purpose). */
void sc_cuda_philox_fill(uint32_t *out, long long n, uint64_t seed, uint32_t epoch, uint32_t sample, uint32_t view,
                         uint32_t purpose, cudaStream_t stream);

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

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_CUDA_KERNELS_H */
