/*
 * cuda_kernels.h - host-callable launchers of the kernels in the kernels/ CUDA files (C linkage), used
 * by the CUDA backend in src/backend/cuda and by the GPU tests.
 */
#ifndef SIMCLR_CUDA_KERNELS_H
#define SIMCLR_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "simclr/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[0..n) = the first n words of the Philox stream (seed, epoch, sample, view, purpose). */
void sc_cuda_philox_fill(uint32_t *out, long long n, uint64_t seed, uint32_t epoch, uint32_t sample, uint32_t view,
                         uint32_t purpose, cudaStream_t stream);

/* augment.cu: the device half of SimCLR augmentation, the shape of the backend table's
 * augment_workspace / augment_crops entries (include/simclr/backend.h). crops [2B, S, S, wc]
 * uint8, keys [B], views [2B, S, S, p->out_channels] F32, all device memory; workspace holds
 * sc_cuda_augment_workspace(p, B, wc) bytes. CPU reference: sc_aug_finish_crop. */
size_t sc_cuda_augment_workspace(const sc_augment_params *p, int samples, int wc);
void sc_cuda_augment_crops(const sc_augment_params *p, uint64_t seed, uint32_t epoch, const uint8_t *crops,
                           const uint32_t *keys, int samples, int wc, float *views, void *workspace,
                           cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_CUDA_KERNELS_H */
