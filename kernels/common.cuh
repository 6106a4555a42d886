/*
 * common.cuh - what every CUDA file shares (the .cu files of kernels/ and the C files of
 * src/backend/cuda): the checked-call macro and launch helpers. It is plain C as well as
 * CUDA C++.
 *
 * A failed CUDA call is a broken invariant (or a dead device): it aborts through
 * sc_abort_impl with the call, CUDA's error string, the current device and file:line; the
 * abort path adds the rank/device/step context set by the trainer. Every launch is followed
 * by SC_CUDA_CHECK_LAUNCH(). The cuDNN and cuBLAS members of the family are in
 * src/backend/cuda/cuda_internal.h (kernels never call those libraries).
 */
#ifndef SIMCLR_KERNELS_COMMON_CUH
#define SIMCLR_KERNELS_COMMON_CUH

#include <cuda_runtime.h>

#include "simclr/status.h"

/* The device the calling thread is bound to, for error messages (-1 when even that fails). */
static inline int sc_cuda_current_device(void) {
    int d = -1;
    if (cudaGetDevice(&d) != cudaSuccess) d = -1;
    return d;
}

#define SC_CUDA_CHECK(call)                                                                    \
    do {                                                                                       \
        cudaError_t sc_cuda_err_ = (call);                                                     \
        if (sc_cuda_err_ != cudaSuccess)                                                       \
            sc_abort_impl(__FILE__, __LINE__, #call, "CUDA error %d (%s): %s, on GPU %d",      \
                          (int)sc_cuda_err_, cudaGetErrorName(sc_cuda_err_),                   \
                          cudaGetErrorString(sc_cuda_err_), sc_cuda_current_device());         \
    } while (0)

#define SC_CUDA_CHECK_LAUNCH() SC_CUDA_CHECK(cudaGetLastError())

/* Blocks of `threads` covering n items, capped for grid-stride loops. */
static inline unsigned int sc_cuda_blocks(long long n, int threads) {
    long long b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return (unsigned int)(b > 65535 * 32 ? 65535 * 32 : b);
}

/* True when every pointer given is aligned to `bytes` (vector loads). */
static inline int sc_cuda_aligned(const void *p, unsigned bytes) {
    return ((unsigned long long)(size_t)p % bytes) == 0;
}

#endif /* SIMCLR_KERNELS_COMMON_CUH */
