/*
 * cuda_context.c - GPU discovery and library versions for a CUDA build.
 *
 * Counting devices must never abort: on a machine with the toolkit but no driver or no GPU
 * (CI), cudaGetDeviceCount fails and we report zero devices, so tests skip and `auto`
 * falls back to the CPU.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>
#include <stdio.h>

#include "../backend_internal.h"

int sc_cuda_compiled(void) { return 1; }

int sc_cuda_count_devices(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky error from a missing driver */
        return 0;
    }
    return n;
}

void sc_cuda_describe(char *buf, size_t cap) {
    size_t used = 0;
#define APPEND(...)                                                                            \
    do {                                                                                       \
        if (used < cap) used += (size_t)snprintf(buf + used, cap - used, __VA_ARGS__);         \
    } while (0)
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    APPEND("CUDA runtime: %d.%d\n", runtime / 1000, (runtime % 1000) / 10);
    if (driver)
        APPEND("CUDA driver:  %d.%d\n", driver / 1000, (driver % 1000) / 10);
    else
        APPEND("CUDA driver:  none found\n");
    size_t cudnn = cudnnGetVersion();
    APPEND("cuDNN:        %zu.%zu.%zu\n", cudnn / 10000, (cudnn % 10000) / 100, cudnn % 100);
    int nccl = 0;
    ncclGetVersion(&nccl);
    APPEND("NCCL:         %d.%d.%d\n", nccl / 10000, (nccl % 10000) / 100, nccl % 100);
    int cublas_major = 0, cublas_minor = 0, cublas_patch = 0;
    cublasGetProperty(MAJOR_VERSION, &cublas_major);
    cublasGetProperty(MINOR_VERSION, &cublas_minor);
    cublasGetProperty(PATCH_LEVEL, &cublas_patch);
    APPEND("cuBLAS:       %d.%d.%d\n", cublas_major, cublas_minor, cublas_patch);
    int n = sc_cuda_count_devices();
    APPEND("GPUs:         %d\n", n);
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        APPEND("  [%d] %s, compute %d.%d, %d SMs, %.1f GiB\n", i, p.name, p.major, p.minor,
               p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    }
#undef APPEND
}
