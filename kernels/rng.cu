/*
 * rng.cu - Philox streams on the GPU.
 *
 * The device uses the very same header-only Philox4x32-10 block function as the host
 * (include/simclr/rng.h), so a stream keyed (seed, epoch, sample, view, purpose) yields the
 * same numbers on either side. This is what lets GPU-side augmentation reproduce the CPU
 * path bit for bit in its random choices. sc_cuda_philox_fill writes the first `n` 32-bit
 * words of one stream; tests/test_gpu_rng.c compares it with sc_rng_u32 on the host.
 */
#include "common.cuh"
#include "cuda_kernels.h"
#include "simclr/rng.h"

/* out[i] = word i of the stream: block i / 4, word i % 4. */
__global__ static void philox_fill_kernel(uint32_t *out, long long n, uint32_t k0, uint32_t k1, uint32_t c1,
                                          uint32_t c2, uint32_t c3) {
    for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b * 4 < n;
         b += (long long)gridDim.x * blockDim.x) {
        uint32_t ctr[4] = {(uint32_t)b, c1, c2, c3}, key[2] = {k0, k1}, r[4];
        sc_philox4x32_10(ctr, key, r);
        for (int j = 0; j < 4 && b * 4 + j < n; j++) out[b * 4 + j] = r[j];
    }
}

extern "C" void sc_cuda_philox_fill(uint32_t *out, long long n, uint64_t seed, uint32_t epoch, uint32_t sample,
                                    uint32_t view, uint32_t purpose, cudaStream_t stream) {
    sc_rng r = sc_rng_make(seed, epoch, sample, view, purpose);
    long long blocks_of_4 = (n + 3) / 4;
    philox_fill_kernel<<<sc_cuda_blocks(blocks_of_4, 256), 256, 0, stream>>>(out, n, r.key[0], r.key[1], r.ctr[1],
                                                                             r.ctr[2], r.ctr[3]);
    SC_CUDA_CHECK_LAUNCH();
}
