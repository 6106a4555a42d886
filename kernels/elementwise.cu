/*
 * elementwise.cu - ReLU, add, max pooling, global average pooling and column sums on the GPU,
 * with exactly the semantics of the CPU reference (src/backend/cpu/cpu_elementwise.inc):
 *
 *  - ReLU keeps NaN (y = x < 0 ? 0 : x), its backward masks with the forward OUTPUT (y > 0).
 *  - Max pooling takes the first maximum of the window's valid positions in row-major order,
 *    a NaN wins over numbers; the backward routes each output gradient to that position.
 *    It is written as a gather (one thread per INPUT element, visiting the windows that
 *    contain it in (oy, ox) order), so no atomics are needed and every input gradient is the
 *    sum of its contributions in the same order as the CPU's scatter: bit-identical results.
 *  - Average pooling sums each (image, channel) over the positions in order, in double.
 *
 * Elementwise kernels use 16-byte vectors when every pointer allows it (the body) and a
 * scalar loop for the remaining tail; everything is a grid-stride loop.
 */
#include "common.cuh"
#include "cuda_kernels.h"

#define EW_THREADS 256

/* ---- ReLU and add ---------------------------------------------------------------------- */

__device__ __forceinline__ float relu1(float v) { return v < 0.0f ? 0.0f : v; }
__device__ __forceinline__ float relu_mask1(float y, float g) { return y > 0.0f ? g : 0.0f; }

__global__ static void relu_fwd_vec(const float4 *x, float4 *y, long long n4) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
        float4 v = x[i];
        y[i] = make_float4(relu1(v.x), relu1(v.y), relu1(v.z), relu1(v.w));
    }
}

__global__ static void relu_fwd_scalar(const float *x, float *y, long long start, long long n) {
    for (long long i = start + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = relu1(x[i]);
}

__global__ static void relu_bwd_vec(const float4 *y, const float4 *dy, float4 *dx, long long n4) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
        float4 a = y[i], g = dy[i];
        dx[i] = make_float4(relu_mask1(a.x, g.x), relu_mask1(a.y, g.y), relu_mask1(a.z, g.z), relu_mask1(a.w, g.w));
    }
}

__global__ static void relu_bwd_scalar(const float *y, const float *dy, float *dx, long long start, long long n) {
    for (long long i = start + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dx[i] = relu_mask1(y[i], dy[i]);
}

__global__ static void add_vec(const float4 *a, const float4 *b, float4 *y, long long n4) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
        float4 u = a[i], v = b[i];
        y[i] = make_float4(u.x + v.x, u.y + v.y, u.z + v.z, u.w + v.w);
    }
}

__global__ static void add_scalar(const float *a, const float *b, float *y, long long start, long long n) {
    for (long long i = start + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = a[i] + b[i];
}

/* Elements handled by the vector body: a multiple of 4 when all pointers are 16-byte aligned. */
static long long vector_part(long long n, const void *a, const void *b, const void *c) {
    int ok = sc_cuda_aligned(a, 16) && sc_cuda_aligned(b, 16) && (!c || sc_cuda_aligned(c, 16));
    return ok ? n / 4 * 4 : 0;
}

extern "C" cudaError_t sc_cuda_kernels_loadable(void) {
    cudaFuncAttributes attr;
    return cudaFuncGetAttributes(&attr, relu_fwd_scalar);
}

extern "C" void sc_cuda_relu_fwd(const float *x, float *y, long long n, cudaStream_t s) {
    long long body = vector_part(n, x, y, NULL);
    if (body) {
        relu_fwd_vec<<<sc_cuda_blocks(body / 4, EW_THREADS), EW_THREADS, 0, s>>>((const float4 *)x, (float4 *)y, body / 4);
        SC_CUDA_CHECK_LAUNCH();
    }
    if (body < n) {
        relu_fwd_scalar<<<sc_cuda_blocks(n - body, EW_THREADS), EW_THREADS, 0, s>>>(x, y, body, n);
        SC_CUDA_CHECK_LAUNCH();
    }
}

extern "C" void sc_cuda_relu_bwd(const float *y, const float *dy, float *dx, long long n, cudaStream_t s) {
    long long body = vector_part(n, y, dy, dx);
    if (body) {
        relu_bwd_vec<<<sc_cuda_blocks(body / 4, EW_THREADS), EW_THREADS, 0, s>>>((const float4 *)y, (const float4 *)dy,
                                                                                 (float4 *)dx, body / 4);
        SC_CUDA_CHECK_LAUNCH();
    }
    if (body < n) {
        relu_bwd_scalar<<<sc_cuda_blocks(n - body, EW_THREADS), EW_THREADS, 0, s>>>(y, dy, dx, body, n);
        SC_CUDA_CHECK_LAUNCH();
    }
}

extern "C" void sc_cuda_add(const float *a, const float *b, float *y, long long n, cudaStream_t s) {
    long long body = vector_part(n, a, b, y);
    if (body) {
        add_vec<<<sc_cuda_blocks(body / 4, EW_THREADS), EW_THREADS, 0, s>>>((const float4 *)a, (const float4 *)b,
                                                                            (float4 *)y, body / 4);
        SC_CUDA_CHECK_LAUNCH();
    }
    if (body < n) {
        add_scalar<<<sc_cuda_blocks(n - body, EW_THREADS), EW_THREADS, 0, s>>>(a, b, y, body, n);
        SC_CUDA_CHECK_LAUNCH();
    }
}

/* ---- max pooling ------------------------------------------------------------------------ */

/* True when v replaces the running maximum m: larger, or the first NaN (CPU pool_better). */
__device__ __forceinline__ bool pool_better(float v, float m) { return v > m || (isnan(v) && !isnan(m)); }

/* Window of output (oy, ox) clipped to the image: rows [y0, y1), columns [x0, x1). */
__device__ __forceinline__ void pool_window(const sc_pool_desc &d, int oy, int ox, int &y0, int &y1, int &x0, int &x1) {
    const int iy = oy * d.stride - d.pad, ix = ox * d.stride - d.pad;
    y0 = iy < 0 ? 0 : iy;
    y1 = iy + d.window < d.h ? iy + d.window : d.h;
    x0 = ix < 0 ? 0 : ix;
    x1 = ix + d.window < d.w ? ix + d.window : d.w;
}

/* Flat position (iy * w + ix) of the first maximum of channel ch in window (oy, ox) of image xi. */
__device__ __forceinline__ int pool_argmax(const sc_pool_desc &d, const float *xi, int oy, int ox, int ch) {
    int y0, y1, x0, x1;
    pool_window(d, oy, ox, y0, y1, x0, x1);
    int arg = y0 * d.w + x0;
    float best = xi[(long long)arg * d.c + ch];
    for (int iy = y0; iy < y1; iy++)
        for (int ix = iy == y0 ? x0 + 1 : x0; ix < x1; ix++) {
            const float v = xi[((long long)iy * d.w + ix) * d.c + ch];
            if (pool_better(v, best)) {
                best = v;
                arg = iy * d.w + ix;
            }
        }
    return arg;
}

/* y[n, oy, ox, c] = max of the window; one thread per output element. */
__global__ static void maxpool_fwd_kernel(sc_pool_desc d, const float *x, float *y) {
    const long long total = (long long)d.n * d.oh * d.ow * d.c;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        const int ch = (int)(i % d.c);
        long long p = i / d.c;
        const int ox = (int)(p % d.ow);
        p /= d.ow;
        const int oy = (int)(p % d.oh);
        const long long img = p / d.oh;
        const float *xi = x + img * d.h * d.w * d.c;
        y[i] = xi[(long long)pool_argmax(d, xi, oy, ox, ch) * d.c + ch];
    }
}

/* dx[n, iy, ix, c] = sum of dy over the windows whose first maximum is (iy, ix), in (oy, ox)
 * order; one thread per input element. */
__global__ static void maxpool_bwd_kernel(sc_pool_desc d, const float *x, const float *dy, float *dx) {
    const long long total = (long long)d.n * d.h * d.w * d.c;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        const int ch = (int)(i % d.c);
        long long p = i / d.c;
        const int ix = (int)(p % d.w);
        p /= d.w;
        const int iy = (int)(p % d.h);
        const long long img = p / d.h;
        const float *xi = x + img * d.h * d.w * d.c;
        const float *g = dy + img * d.oh * d.ow * d.c;
        /* windows containing iy: oy*stride - pad <= iy < oy*stride - pad + window */
        int oy0 = iy + d.pad - d.window + 1, ox0 = ix + d.pad - d.window + 1;
        oy0 = oy0 <= 0 ? 0 : (oy0 + d.stride - 1) / d.stride;
        ox0 = ox0 <= 0 ? 0 : (ox0 + d.stride - 1) / d.stride;
        const int oy1 = min(d.oh - 1, (iy + d.pad) / d.stride), ox1 = min(d.ow - 1, (ix + d.pad) / d.stride);
        const int self = iy * d.w + ix;
        float acc = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
                if (pool_argmax(d, xi, oy, ox, ch) == self) acc += g[((long long)oy * d.ow + ox) * d.c + ch];
        dx[i] = acc;
    }
}

extern "C" void sc_cuda_maxpool_fwd(sc_pool_desc d, const float *x, float *y, cudaStream_t s) {
    const long long total = (long long)d.n * d.oh * d.ow * d.c;
    maxpool_fwd_kernel<<<sc_cuda_blocks(total, EW_THREADS), EW_THREADS, 0, s>>>(d, x, y);
    SC_CUDA_CHECK_LAUNCH();
}

extern "C" void sc_cuda_maxpool_bwd(sc_pool_desc d, const float *x, const float *dy, float *dx, cudaStream_t s) {
    const long long total = (long long)d.n * d.h * d.w * d.c;
    maxpool_bwd_kernel<<<sc_cuda_blocks(total, EW_THREADS), EW_THREADS, 0, s>>>(d, x, dy, dx);
    SC_CUDA_CHECK_LAUNCH();
}

/* ---- global average pooling ------------------------------------------------------------- */

/* y[i, c] = (sum over p of x[i, p, c] in order, in double) / hw; one thread per (i, c). */
__global__ static void avgpool_fwd_kernel(const float *x, float *y, int n, int hw, int c) {
    const long long total = (long long)n * c;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total; t += (long long)gridDim.x * blockDim.x) {
        const long long img = t / c;
        const int ch = (int)(t % c);
        const float *xi = x + img * hw * c + ch;
        double acc = 0.0;
        for (int p = 0; p < hw; p++) acc += (double)xi[(long long)p * c];
        y[t] = (float)(acc / (double)hw);
    }
}

/* dx[i, p, c] = dy[i, c] * (1 / hw), the reciprocal rounded to float once (as the CPU). */
__global__ static void avgpool_bwd_kernel(const float *dy, float *dx, int n, int hw, int c, float inv) {
    const long long total = (long long)n * hw * c;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total; t += (long long)gridDim.x * blockDim.x) {
        const int ch = (int)(t % c);
        const long long img = t / ((long long)hw * c);
        dx[t] = dy[img * c + ch] * inv;
    }
}

extern "C" void sc_cuda_avgpool_fwd(const float *x, float *y, int n, int hw, int c, cudaStream_t s) {
    avgpool_fwd_kernel<<<sc_cuda_blocks((long long)n * c, EW_THREADS), EW_THREADS, 0, s>>>(x, y, n, hw, c);
    SC_CUDA_CHECK_LAUNCH();
}

extern "C" void sc_cuda_avgpool_bwd(const float *dy, float *dx, int n, int hw, int c, cudaStream_t s) {
    const float inv = (float)(1.0 / (double)hw);
    avgpool_bwd_kernel<<<sc_cuda_blocks((long long)n * hw * c, EW_THREADS), EW_THREADS, 0, s>>>(dy, dx, n, hw, c, inv);
    SC_CUDA_CHECK_LAUNCH();
}

/* ---- column sums (the bias gradient of a linear layer) ---------------------------------- */

/* out[j] = sum over rows r (in order, in double) of x[r, j]; one thread per column. */
__global__ static void column_sums_kernel(const float *x, float *out, int rows, int cols) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += gridDim.x * blockDim.x) {
        double acc = 0.0;
        for (int r = 0; r < rows; r++) acc += (double)x[(long long)r * cols + j];
        out[j] = (float)acc;
    }
}

extern "C" void sc_cuda_column_sums(const float *x, float *out, int rows, int cols, cudaStream_t s) {
    column_sums_kernel<<<sc_cuda_blocks(cols, EW_THREADS), EW_THREADS, 0, s>>>(x, out, rows, cols);
    SC_CUDA_CHECK_LAUNCH();
}
