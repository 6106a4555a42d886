/*
 * loss.cu - the row-wise part of the simple (unfused) NT-Xent on the GPU.
 *
 * The CUDA backend computes logits = z z^T / tau with one cuBLASLt GEMM into a [2N, 2N]
 * buffer, then sc_cuda_ntxent_rows runs one block per anchor row i (positive p = (i + N) mod
 * 2N, the diagonal masked):
 *
 *   loss_i = logsumexp_{k != i} l_ik - l_ip      (max-subtracted, exp and log in double)
 *   correct_i = 1 when l_ip > l_ik for every k != i, p (ties count as wrong)
 *   G_ik = (softmax_{k != i}(l_i)_k - [k = p]) / 2N,  G_ii = 0   (overwrites the logits)
 *
 * and sc_cuda_ntxent_reduce averages the rows into the loss and accuracy scalars. The
 * gradient dz = (G + G^T) z / tau is two more GEMMs in the backend. Every reduction is a
 * fixed tree over a fixed block size, so results are bitwise reproducible. This is the
 * reference-grade GPU loss; the fused kernel that never materialises [2N, 2N] is issue #5.
 */
#include <float.h>

#include "common.cuh"
#include "cuda_kernels.h"

#define NTX_THREADS 256

/* In-place tree reductions over NTX_THREADS values in shared memory (fixed order). */
__device__ static double block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int o = NTX_THREADS / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads();
    return r;
}

__device__ static float block_max(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int o = NTX_THREADS / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + o]);
        __syncthreads();
    }
    const float r = sh[0];
    __syncthreads();
    return r;
}

__device__ static int block_or(int v, int *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int o = NTX_THREADS / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] |= sh[threadIdx.x + o];
        __syncthreads();
    }
    const int r = sh[0];
    __syncthreads();
    return r;
}

__global__ static void ntxent_rows_kernel(float *logits, int rows, int want_grad, double *row_loss,
                                          int *row_correct) {
    __shared__ double shd[NTX_THREADS];
    __shared__ float shf[NTX_THREADS];
    __shared__ int shi[NTX_THREADS];
    const int i = blockIdx.x, pos = (i + rows / 2) % rows;
    float *row = logits + (long long)i * rows;
    const float lp = row[pos];

    float mx = -FLT_MAX;
    int beaten = 0; /* some negative is >= the positive */
    for (int k = threadIdx.x; k < rows; k += NTX_THREADS) {
        if (k == i) continue;
        mx = fmaxf(mx, row[k]);
        if (k != pos && row[k] >= lp) beaten = 1;
    }
    mx = block_max(mx, shf);
    beaten = block_or(beaten, shi);

    double sum = 0.0;
    for (int k = threadIdx.x; k < rows; k += NTX_THREADS)
        if (k != i) sum += exp((double)row[k] - (double)mx);
    sum = block_sum(sum, shd);
    const double lse = (double)mx + log(sum);
    if (threadIdx.x == 0) {
        row_loss[i] = lse - (double)lp;
        row_correct[i] = !beaten;
    }
    if (!want_grad) return;
    for (int k = threadIdx.x; k < rows; k += NTX_THREADS) {
        double g = k == i ? 0.0 : exp((double)row[k] - lse);
        if (k == pos) g -= 1.0;
        row[k] = (float)(g / (double)rows);
    }
}

__global__ static void ntxent_reduce_kernel(const double *row_loss, const int *row_correct, int rows, float *loss,
                                            float *accuracy) {
    __shared__ double shd[NTX_THREADS];
    double l = 0.0, c = 0.0;
    for (int k = threadIdx.x; k < rows; k += NTX_THREADS) {
        l += row_loss[k];
        c += (double)row_correct[k];
    }
    l = block_sum(l, shd);
    c = block_sum(c, shd);
    if (threadIdx.x == 0) {
        *loss = (float)(l / (double)rows);
        if (accuracy) *accuracy = (float)(c / (double)rows);
    }
}

extern "C" void sc_cuda_ntxent_rows(float *logits, int rows, int want_grad, double *row_loss, int *row_correct,
                                    cudaStream_t s) {
    ntxent_rows_kernel<<<rows, NTX_THREADS, 0, s>>>(logits, rows, want_grad, row_loss, row_correct);
    SC_CUDA_CHECK_LAUNCH();
}

extern "C" void sc_cuda_ntxent_reduce(const double *row_loss, const int *row_correct, int rows, float *loss,
                                      float *accuracy, cudaStream_t s) {
    ntxent_reduce_kernel<<<1, NTX_THREADS, 0, s>>>(row_loss, row_correct, rows, loss, accuracy);
    SC_CUDA_CHECK_LAUNCH();
}
