/*
 * cuda_kernels.h - host-callable launchers of the kernels in the kernels/ CUDA files (C linkage), used
 * by the CUDA backend in src/backend/cuda and by the GPU tests.
 */
#ifndef SIMCLR_CUDA_KERNELS_H
#define SIMCLR_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[0..n) = the first n words of the Philox stream (seed, epoch, sample, view, purpose). */
void sc_cuda_philox_fill(uint32_t *out, long long n, uint64_t seed, uint32_t epoch, uint32_t sample, uint32_t view,
                         uint32_t purpose, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_CUDA_KERNELS_H */
