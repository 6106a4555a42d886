/*
 * test_gpu_rng.c - the GPU Philox stream (kernels/rng.cu) equals the CPU one word for word,
 * for several keys and lengths not multiple of 4. Without a GPU: exit 77 (skipped).
 */
#include <cuda_runtime.h>

#include "cuda_kernels.h"
#include "harness.h"
#include "simclr/backend.h"
#include "simclr/rng.h"

int main(void) {
    if (sc_cuda_device_count() == 0) sc_test_skip("no CUDA GPU visible");
    static const long long lengths[] = {1, 3, 4, 5, 1000, 262147};
    uint32_t *dev = NULL;
    CHECK(cudaMalloc((void **)&dev, 262147 * sizeof(uint32_t)) == cudaSuccess);
    uint32_t *host = malloc(262147 * sizeof(uint32_t));
    for (int k = 0; k < 6; k++) {
        uint64_t seed = 0x123456789abcdefull * (uint64_t)(k + 1);
        sc_cuda_philox_fill(dev, lengths[k], seed, (uint32_t)k, 77u * (uint32_t)k, (uint32_t)(k % 2), SC_RNG_AUGMENT, 0);
        CHECK(cudaMemcpy(host, dev, (size_t)lengths[k] * sizeof(uint32_t), cudaMemcpyDeviceToHost) == cudaSuccess);
        sc_rng r = sc_rng_make(seed, (uint32_t)k, 77u * (uint32_t)k, (uint32_t)(k % 2), SC_RNG_AUGMENT);
        long long mismatches = 0;
        for (long long i = 0; i < lengths[k]; i++) mismatches += host[i] != sc_rng_u32(&r);
        CHECKF(mismatches == 0, "length %lld: %lld words differ", lengths[k], mismatches);
    }
    cudaFree(dev);
    free(host);
    return sc_test_summary();
}
