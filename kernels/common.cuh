/*
 * common.cuh - what every CUDA file in kernels/ shares: the checked-call macro and launch
 * helpers. A failed CUDA call is a broken invariant (or a dead device): it aborts through
 * sc_abort_impl with the call, CUDA's error string, file:line and the rank/device/step
 * context set by the trainer. Every launch is followed by SC_CUDA_CHECK_LAUNCH().
 */
#ifndef SIMCLR_KERNELS_COMMON_CUH
#define SIMCLR_KERNELS_COMMON_CUH

#include <cuda_runtime.h>

#include "simclr/status.h"

#define SC_CUDA_CHECK(call)                                                                    \
    do {                                                                                       \
        cudaError_t sc_cuda_err_ = (call);                                                     \
        if (sc_cuda_err_ != cudaSuccess)                                                       \
            sc_abort_impl(__FILE__, __LINE__, #call, "CUDA error %d: %s", (int)sc_cuda_err_,   \
                          cudaGetErrorString(sc_cuda_err_));                                   \
    } while (0)

#define SC_CUDA_CHECK_LAUNCH() SC_CUDA_CHECK(cudaGetLastError())

/* Blocks of `threads` covering n items, capped for grid-stride loops. */
static inline unsigned int sc_cuda_blocks(long long n, int threads) {
    long long b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return (unsigned int)(b > 65535 * 32 ? 65535 * 32 : b);
}

#endif /* SIMCLR_KERNELS_COMMON_CUH */
