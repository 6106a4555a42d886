/*
 * optim.cu - the (unfused) LARS and SGD update over the flat parameter buffers on the GPU,
 * with the rules of the CPU reference (src/backend/cpu/cpu_optim.inc):
 *
 *   LARS, per tensor:  g = grad + wd * w;  trust = eeta * ||w|| / ||g|| (both > 0, tensor not
 *                      excluded; else 1);  v = m * v + lr * trust * g;  w = w - v
 *   SGD:               g = grad + wd * w;  v = m * v + g;  w = w - lr * (nesterov ? g + m v : v)
 *
 * The tensors (rows of the parameter table without SC_PARAM_BN_STAT) are cut into chunks of
 * at most SC_CUDA_OPTIM_CHUNK elements by the host, once per table (sc_cuda_optim_layout).
 * Three launches whatever the tensor count:
 *   1. one block per chunk: partial sums of w^2 and g^2 (double, fixed order) for LARS tensors;
 *   2. one thread per tensor: adds its chunks' partials in chunk order and sets the tensor's
 *      step scale lr * trust, reading the learning rate from device memory;
 *   3. one block per chunk: the elementwise update, in double like the CPU.
 * Norms are therefore bitwise reproducible, and the update itself matches the CPU's
 * arithmetic exactly (only the summation order of the norms differs).
 */
#include "common.cuh"
#include "cuda_kernels.h"

#define OPT_THREADS 256

__global__ static void lars_norms_kernel(sc_cuda_optim_layout L, double wd, const float *params, const float *grads,
                                         double *partials) {
    __shared__ double sw[OPT_THREADS], sg[OPT_THREADS];
    const int chunk = blockIdx.x, t = L.chunk_tensor[chunk];
    const unsigned flags = L.tensor_flags[t];
    double aw = 0.0, ag = 0.0;
    if (flags & SC_CUDA_OPTIM_TRUST) {
        const double d = (flags & SC_CUDA_OPTIM_DECAY) ? wd : 0.0;
        const long long base = L.chunk_start[chunk];
        for (int j = threadIdx.x; j < L.chunk_len[chunk]; j += OPT_THREADS) {
            const double w = (double)params[base + j];
            const double g = (double)grads[base + j] + d * w;
            aw += w * w;
            ag += g * g;
        }
    }
    sw[threadIdx.x] = aw;
    sg[threadIdx.x] = ag;
    __syncthreads();
    for (int o = OPT_THREADS / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) {
            sw[threadIdx.x] += sw[threadIdx.x + o];
            sg[threadIdx.x] += sg[threadIdx.x + o];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        partials[2 * chunk] = sw[0];
        partials[2 * chunk + 1] = sg[0];
    }
}

__global__ static void lars_scales_kernel(sc_cuda_optim_layout L, double trust_coef, const float *lr,
                                          const double *partials, double *scales) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= L.tensors) return;
    double trust = 1.0;
    if (L.tensor_flags[t] & SC_CUDA_OPTIM_TRUST) {
        double wn = 0.0, gn = 0.0;
        const int c0 = L.tensor_first_chunk[t], c1 = c0 + L.tensor_chunks[t];
        for (int c = c0; c < c1; c++) {
            wn += partials[2 * c];
            gn += partials[2 * c + 1];
        }
        wn = sqrt(wn);
        gn = sqrt(gn);
        if (wn > 0.0 && gn > 0.0) trust = trust_coef * wn / gn;
    }
    scales[t] = (double)*lr * trust;
}

__global__ static void lars_update_kernel(sc_cuda_optim_layout L, double momentum, double wd, float *params,
                                          const float *grads, float *state, const double *scales) {
    const int chunk = blockIdx.x, t = L.chunk_tensor[chunk];
    const double d = (L.tensor_flags[t] & SC_CUDA_OPTIM_DECAY) ? wd : 0.0, scaled = scales[t];
    const long long base = L.chunk_start[chunk];
    for (int j = threadIdx.x; j < L.chunk_len[chunk]; j += OPT_THREADS) {
        const long long e = base + j;
        const double w = (double)params[e];
        const double g = (double)grads[e] + d * w;
        const double nv = momentum * (double)state[e] + scaled * g;
        state[e] = (float)nv;
        params[e] = (float)(w - nv);
    }
}

__global__ static void sgd_update_kernel(sc_cuda_optim_layout L, double momentum, double wd, int nesterov,
                                         float *params, const float *grads, float *state, const float *lr) {
    const int chunk = blockIdx.x, t = L.chunk_tensor[chunk];
    const double d = (L.tensor_flags[t] & SC_CUDA_OPTIM_DECAY) ? wd : 0.0, rate = (double)*lr;
    const long long base = L.chunk_start[chunk];
    for (int j = threadIdx.x; j < L.chunk_len[chunk]; j += OPT_THREADS) {
        const long long e = base + j;
        const double w = (double)params[e];
        const double g = (double)grads[e] + d * w;
        const double nv = momentum * (double)state[e] + g;
        const double update = nesterov ? g + momentum * nv : nv;
        state[e] = (float)nv;
        params[e] = (float)(w - rate * update);
    }
}

extern "C" void sc_cuda_optim_step(const sc_cuda_optim_layout *L, int lars, double momentum, double weight_decay,
                                   double trust_coef, int nesterov, float *params, const float *grads, float *state,
                                   const float *lr, double *partials, double *scales, cudaStream_t s) {
    if (L->chunks == 0) return;
    if (lars) {
        lars_norms_kernel<<<L->chunks, OPT_THREADS, 0, s>>>(*L, weight_decay, params, grads, partials);
        SC_CUDA_CHECK_LAUNCH();
        lars_scales_kernel<<<(L->tensors + 127) / 128, 128, 0, s>>>(*L, trust_coef, lr, partials, scales);
        SC_CUDA_CHECK_LAUNCH();
        lars_update_kernel<<<L->chunks, OPT_THREADS, 0, s>>>(*L, momentum, weight_decay, params, grads, state, scales);
        SC_CUDA_CHECK_LAUNCH();
    } else {
        sgd_update_kernel<<<L->chunks, OPT_THREADS, 0, s>>>(*L, momentum, weight_decay, nesterov, params, grads, state,
                                                            lr);
        SC_CUDA_CHECK_LAUNCH();
    }
}
