/*
 * norm.cu - batch normalisation (training, inference, backward) with fused residual add and
 * ReLU, and row-wise L2 normalisation, on NHWC activations viewed as [M, C].
 *
 * Batch norm is memory-bound, so each pass reads its inputs once, 16 bytes per thread when
 * C % 4 == 0 and the pointers allow it:
 *   training forward  = stats (sum x, sum x^2)       -> finalize (per channel) -> apply
 *   backward          = stats (sum g, sum g (x - mu)) -> finalize (per channel) -> apply
 * where g = dy, or dy * (y > 0) when the ReLU that followed the BN is fused into its backward.
 * The apply pass of the forward adds an optional residual and applies an optional ReLU, so
 * bn -> add -> relu of a residual block is one read of each input and one write.
 *
 * Determinism: the stats pass cuts the rows into a grid of row blocks whose geometry is a
 * function of (M, C, vector width) only, never of the GPU; each thread sums its rows in
 * order in double, a block combines its threads in a fixed order, and the finalize pass adds
 * the row blocks' partials in block order. Results are bitwise reproducible run to run.
 * Sums are in double (one pass: var = E[x^2] - mean^2 in double is accurate unless
 * |mean| / std exceeds ~1e6); the per-channel formulas are those of the CPU reference
 * (src/backend/cpu/cpu_norm.inc) term for term, and the elementwise passes use explicitly
 * rounded float operations in the CPU's evaluation order (no FMA contraction), so the two
 * agree to a few float ulps.
 *
 * L2 normalisation: one warp per row, sums in double, the CPU's formulas.
 */
#include "common.cuh"
#include "cuda_kernels.h"

#define BN_THREADS 256
/* Upper bound on stats blocks across the channel tiles (a constant: determinism). */
#define BN_TARGET_BLOCKS 1056
/* Each thread of the stats pass sums at least this many rows when M allows. */
#define BN_MIN_ROWS_PER_THREAD 8
#define L2_EPS 1e-12

/* Geometry of the stats pass for x [m, c] with vectors of `vec` channels. */
struct bn_geom {
    int vec, tx, ty, gx, rb;
    long long rows_per_block;
};

static bn_geom bn_geometry(long long m, int c, int vec) {
    bn_geom g;
    g.vec = vec;
    const int groups = c / vec;
    g.tx = 1;
    while (g.tx < groups && g.tx < 32) g.tx *= 2;
    g.ty = BN_THREADS / g.tx;
    g.gx = (groups + g.tx - 1) / g.tx;
    long long by_rows = (m + (long long)g.ty * BN_MIN_ROWS_PER_THREAD - 1) / ((long long)g.ty * BN_MIN_ROWS_PER_THREAD);
    long long by_grid = BN_TARGET_BLOCKS / g.gx;
    if (by_grid < 1) by_grid = 1;
    long long rb = by_rows < by_grid ? by_rows : by_grid;
    g.rb = (int)(rb < 1 ? 1 : rb);
    g.rows_per_block = (m + g.rb - 1) / g.rb;
    return g;
}

/* Scratch layout: partials [rb][c][2] doubles, then 4 * c floats of per-channel coefficients. */
static size_t bn_partials_bytes(const bn_geom &g, int c) { return (size_t)g.rb * (size_t)c * 2 * sizeof(double); }

extern "C" size_t sc_cuda_bn_scratch_bytes(long long m, int c) {
    size_t a = bn_partials_bytes(bn_geometry(m, c, 1), c);
    size_t b = c % 4 == 0 ? bn_partials_bytes(bn_geometry(m, c, 4), c) : 0;
    return (a > b ? a : b) + 4 * (size_t)c * sizeof(float);
}

template <int VEC> struct vec_t;
template <> struct vec_t<1> {
    typedef float type;
    static __device__ __forceinline__ void unpack(float v, float *o) { o[0] = v; }
    static __device__ __forceinline__ float pack(const float *o) { return o[0]; }
};
template <> struct vec_t<4> {
    typedef float4 type;
    static __device__ __forceinline__ void unpack(float4 v, float *o) {
        o[0] = v.x;
        o[1] = v.y;
        o[2] = v.z;
        o[3] = v.w;
    }
    static __device__ __forceinline__ float4 pack(const float *o) { return make_float4(o[0], o[1], o[2], o[3]); }
};

/* Load VEC consecutive floats of `p` at element offset i (i a multiple of VEC). */
template <int VEC> __device__ __forceinline__ void load(const float *p, long long i, float *o) {
    vec_t<VEC>::unpack(*(const typename vec_t<VEC>::type *)(p + i), o);
}
template <int VEC> __device__ __forceinline__ void store(float *p, long long i, const float *o) {
    *(typename vec_t<VEC>::type *)(p + i) = vec_t<VEC>::pack(o);
}

/*
 * Stats pass. Backward mode when dy != NULL: sums g and g * (x - mean[ch]) with g = dy, masked
 * by (y > 0) when y != NULL; forward mode: sums x and x^2. Block (tx, ty) covers VEC channels
 * per thread (channel group blockIdx.x * TX + tx) and rows blockIdx.y * rows_per_block + ty,
 * stepping by TY. Writes part[(blockIdx.y * c + ch) * 2 + {0, 1}].
 */
template <int VEC>
__global__ static void bn_stats_kernel(const float *x, const float *dy, const float *y, const float *mean,
                                       long long m, int c, long long rows_per_block, double *part) {
    extern __shared__ double sh[]; /* [2][VEC][TX * TY] */
    const int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y, nt = TX * TY;
    const int ch0 = (blockIdx.x * TX + tx) * VEC;
    const long long r0 = blockIdx.y * rows_per_block;
    const long long r1 = r0 + rows_per_block < m ? r0 + rows_per_block : m;
    double s[VEC], q[VEC];
    for (int j = 0; j < VEC; j++) s[j] = q[j] = 0.0;
    if (ch0 < c) {
        double mu[VEC];
        if (dy)
            for (int j = 0; j < VEC; j++) mu[j] = (double)mean[ch0 + j];
        for (long long r = r0 + ty; r < r1; r += TY) {
            float xv[VEC];
            load<VEC>(x, r * c + ch0, xv);
            if (dy) {
                float gv[VEC];
                load<VEC>(dy, r * c + ch0, gv);
                if (y) {
                    float yv[VEC];
                    load<VEC>(y, r * c + ch0, yv);
                    for (int j = 0; j < VEC; j++) gv[j] = yv[j] > 0.0f ? gv[j] : 0.0f;
                }
                for (int j = 0; j < VEC; j++) {
                    s[j] += (double)gv[j];
                    q[j] += (double)gv[j] * ((double)xv[j] - mu[j]);
                }
            } else {
                for (int j = 0; j < VEC; j++) {
                    const double v = (double)xv[j];
                    s[j] += v;
                    q[j] += v * v;
                }
            }
        }
    }
    const int t = ty * TX + tx;
    for (int j = 0; j < VEC; j++) {
        sh[(0 * VEC + j) * nt + t] = s[j];
        sh[(1 * VEC + j) * nt + t] = q[j];
    }
    __syncthreads();
    if (ty != 0 || ch0 >= c) return;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < VEC; j++) {
            double acc = 0.0;
            for (int u = 0; u < TY; u++) acc += sh[(k * VEC + j) * nt + u * TX + tx];
            part[((long long)blockIdx.y * c + ch0 + j) * 2 + k] = acc;
        }
}

/* Sums of channel ch over the row blocks, in block order. */
__device__ __forceinline__ void bn_sum_partials(const double *part, int rb, int c, int ch, double *s, double *q) {
    double a = 0.0, b = 0.0;
    for (int blk = 0; blk < rb; blk++) {
        a += part[((long long)blk * c + ch) * 2];
        b += part[((long long)blk * c + ch) * 2 + 1];
    }
    *s = a;
    *q = b;
}

/* Training forward of channel ch from s = sum x and q = sum x^2 over m rows: batch
 * statistics, saved mean / invstd, running statistics (unbiased variance) and the apply
 * coefficients coef = [mean | scale]. */
__device__ __forceinline__ void bn_fwd_finalize_channel(double s, double q, double m, int c, int ch,
                                                        const float *gamma, float *save_mean, float *save_invstd,
                                                        float *running_mean, float *running_var, double momentum,
                                                        double eps, float *coef) {
    const double mean = s / m;
    double var = q / m - mean * mean;
    if (var < 0.0) var = 0.0;
    const double unbiased = var * m / (m - 1.0);
    const double invstd = 1.0 / sqrt(var + eps);
    const float fmean = (float)mean, finv = (float)invstd;
    save_mean[ch] = fmean;
    save_invstd[ch] = finv;
    running_mean[ch] = (float)((1.0 - momentum) * (double)running_mean[ch] + momentum * mean);
    running_var[ch] = (float)((1.0 - momentum) * (double)running_var[ch] + momentum * unbiased);
    coef[ch] = fmean;
    coef[c + ch] = (float)((double)gamma[ch] * (double)finv);
}

__global__ static void bn_fwd_finalize_kernel(const double *part, int rb, long long m, int c, const float *gamma,
                                              float *save_mean, float *save_invstd, float *running_mean,
                                              float *running_var, double momentum, double eps, float *coef) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s, q;
    bn_sum_partials(part, rb, c, ch, &s, &q);
    bn_fwd_finalize_channel(s, q, (double)m, c, ch, gamma, save_mean, save_invstd, running_mean, running_var, momentum,
                            eps, coef);
}

/* The same from the sums of every rank, sums [2, c] (global batch norm). */
__global__ static void bn_fwd_finalize_sums_kernel(const double *sums, double count, int c, const float *gamma,
                                                   float *save_mean, float *save_invstd, float *running_mean,
                                                   float *running_var, double momentum, double eps, float *coef) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    bn_fwd_finalize_channel(sums[ch], sums[c + ch], count, c, ch, gamma, save_mean, save_invstd, running_mean,
                            running_var, momentum, eps, coef);
}

/* sums [2, c] <- the row blocks' partials, in block order. */
__global__ static void bn_sums_kernel(const double *part, int rb, int c, double *sums) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    bn_sum_partials(part, rb, c, ch, &sums[ch], &sums[c + ch]);
}

/* Inference, per channel: coef = [running_mean | gamma / sqrt(running_var + eps)]. */
__global__ static void bn_eval_coef_kernel(int c, const float *gamma, const float *running_mean,
                                           const float *running_var, double eps, float *coef) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    coef[ch] = running_mean[ch];
    coef[c + ch] = (float)((double)gamma[ch] / sqrt((double)running_var[ch] + eps));
}

/* y = act((x - mean) * scale + beta + residual), VEC elements per thread. */
template <int VEC>
__global__ static void bn_apply_kernel(const float *x, const float *coef, const float *beta, const float *residual,
                                       int relu, float *y, long long m, int c) {
    const long long nv = m * c / VEC;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nv; i += (long long)gridDim.x * blockDim.x) {
        const long long e = i * VEC;
        const int ch = (int)(e % c);
        float xv[VEC], out[VEC], rv[VEC];
        load<VEC>(x, e, xv);
        if (residual) load<VEC>(residual, e, rv);
        for (int j = 0; j < VEC; j++) {
            float v = __fmul_rn(__fsub_rn(xv[j], coef[ch + j]), coef[c + ch + j]);
            if (beta) v = __fadd_rn(v, beta[ch + j]);
            if (residual) v = __fadd_rn(v, rv[j]);
            if (relu) v = v < 0.0f ? 0.0f : v;
            out[j] = v;
        }
        store<VEC>(y, e, out);
    }
}

/* Backward of channel ch: dgamma, dbeta from this rank's sums (local_dy, local_dyx) and
 * coef = [k1 | k2 | k3 | mean] with dx = k1 * g + k3 * (x - mean) + k2 from the sums over all
 * m rows (cpu_norm.inc's bn_bwd_from_sums); one process passes its sums as both. */
__device__ __forceinline__ void bn_bwd_finalize_channel(double sum_dy, double sum_dyx, double local_dy,
                                                        double local_dyx, double m, int c, int ch,
                                                        const float *gamma, const float *save_mean,
                                                        const float *save_invstd, float *dgamma, float *dbeta,
                                                        float *coef) {
    const double invstd = (double)save_invstd[ch], g = (double)gamma[ch] * invstd;
    const double dg = sum_dyx * invstd;
    dgamma[ch] = (float)(local_dyx * invstd);
    if (dbeta) dbeta[ch] = (float)local_dy;
    coef[ch] = (float)g;
    coef[c + ch] = (float)(-g * sum_dy / m);
    coef[2 * c + ch] = (float)(-g * invstd * dg / m);
    coef[3 * c + ch] = save_mean[ch];
}

__global__ static void bn_bwd_finalize_kernel(const double *part, int rb, long long m, int c, const float *gamma,
                                              const float *save_mean, const float *save_invstd, float *dgamma,
                                              float *dbeta, float *coef) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double sum_dy, sum_dyx;
    bn_sum_partials(part, rb, c, ch, &sum_dy, &sum_dyx);
    bn_bwd_finalize_channel(sum_dy, sum_dyx, sum_dy, sum_dyx, (double)m, c, ch, gamma, save_mean, save_invstd, dgamma,
                            dbeta, coef);
}

__global__ static void bn_bwd_finalize_sums_kernel(const double *local, const double *global, double count, int c,
                                                   const float *gamma, const float *save_mean,
                                                   const float *save_invstd, float *dgamma, float *dbeta,
                                                   float *coef) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    bn_bwd_finalize_channel(global[ch], global[c + ch], local[ch], local[c + ch], count, c, ch, gamma, save_mean,
                            save_invstd, dgamma, dbeta, coef);
}

template <int VEC>
__global__ static void bn_bwd_apply_kernel(const float *x, const float *dy, const float *y, const float *coef,
                                           float *dx, long long m, int c) {
    const long long nv = m * c / VEC;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nv; i += (long long)gridDim.x * blockDim.x) {
        const long long e = i * VEC;
        const int ch = (int)(e % c);
        float xv[VEC], gv[VEC], out[VEC];
        load<VEC>(x, e, xv);
        load<VEC>(dy, e, gv);
        if (y) {
            float yv[VEC];
            load<VEC>(y, e, yv);
            for (int j = 0; j < VEC; j++) gv[j] = yv[j] > 0.0f ? gv[j] : 0.0f;
        }
        for (int j = 0; j < VEC; j++)
            out[j] = __fadd_rn(__fadd_rn(__fmul_rn(coef[ch + j], gv[j]),
                                         __fmul_rn(coef[2 * c + ch + j], __fsub_rn(xv[j], coef[3 * c + ch + j]))),
                               coef[c + ch + j]);
        store<VEC>(dx, e, out);
    }
}

/* 4-wide vectors when C allows it and every pointer given is 16-byte aligned. */
static int bn_vec(int c, const void *a, const void *b, const void *cc, const void *d) {
    if (c % 4) return 1;
    const void *p[4] = {a, b, cc, d};
    for (int i = 0; i < 4; i++)
        if (p[i] && !sc_cuda_aligned(p[i], 16)) return 1;
    return 4;
}

template <int VEC>
static void launch_stats(const bn_geom &g, const float *x, const float *dy, const float *y, const float *mean,
                         long long m, int c, double *part, cudaStream_t s) {
    dim3 block(g.tx, g.ty), grid(g.gx, g.rb);
    size_t shmem = 2 * VEC * BN_THREADS * sizeof(double);
    bn_stats_kernel<VEC><<<grid, block, shmem, s>>>(x, dy, y, mean, m, c, g.rows_per_block, part);
    SC_CUDA_CHECK_LAUNCH();
}

/* The apply pass of the forward (training and inference). */
static void launch_apply(int vec, const float *x, const float *coef, const float *beta, const float *residual,
                         int relu, float *y, long long m, int c, cudaStream_t s) {
    const long long nv = m * c / vec;
    if (vec == 4)
        bn_apply_kernel<4><<<sc_cuda_blocks(nv, BN_THREADS), BN_THREADS, 0, s>>>(x, coef, beta, residual, relu, y, m, c);
    else
        bn_apply_kernel<1><<<sc_cuda_blocks(nv, BN_THREADS), BN_THREADS, 0, s>>>(x, coef, beta, residual, relu, y, m, c);
    SC_CUDA_CHECK_LAUNCH();
}

extern "C" void sc_cuda_bn_fwd_train(const float *x, const float *gamma, const float *beta, const float *residual,
                                     int relu, float *y, float *save_mean, float *save_invstd, float *running_mean,
                                     float *running_var, long long m, int c, double momentum, double eps,
                                     void *scratch, cudaStream_t s) {
    const int vec = bn_vec(c, x, y, residual, NULL);
    const bn_geom g = bn_geometry(m, c, vec);
    double *part = (double *)scratch;
    float *coef = (float *)((char *)scratch + bn_partials_bytes(g, c));
    if (vec == 4)
        launch_stats<4>(g, x, NULL, NULL, NULL, m, c, part, s);
    else
        launch_stats<1>(g, x, NULL, NULL, NULL, m, c, part, s);
    bn_fwd_finalize_kernel<<<(c + 127) / 128, 128, 0, s>>>(part, g.rb, m, c, gamma, save_mean, save_invstd,
                                                           running_mean, running_var, momentum, eps, coef);
    SC_CUDA_CHECK_LAUNCH();
    launch_apply(vec, x, coef, beta, residual, relu, y, m, c, s);
}

extern "C" void sc_cuda_bn_fwd_eval(const float *x, const float *gamma, const float *beta, const float *residual,
                                    int relu, const float *running_mean, const float *running_var, double eps,
                                    float *y, long long m, int c, void *scratch, cudaStream_t s) {
    const int vec = bn_vec(c, x, y, residual, NULL);
    float *coef = (float *)scratch;
    bn_eval_coef_kernel<<<(c + 127) / 128, 128, 0, s>>>(c, gamma, running_mean, running_var, eps, coef);
    SC_CUDA_CHECK_LAUNCH();
    launch_apply(vec, x, coef, beta, residual, relu, y, m, c, s);
}

extern "C" void sc_cuda_bn_bwd(const float *x, const float *y, const float *dy, const float *gamma,
                               const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
                               float *dbeta, long long m, int c, void *scratch, cudaStream_t s) {
    const int vec = bn_vec(c, x, y, dy, dx);
    const bn_geom g = bn_geometry(m, c, vec);
    double *part = (double *)scratch;
    float *coef = (float *)((char *)scratch + bn_partials_bytes(g, c));
    if (vec == 4)
        launch_stats<4>(g, x, dy, y, save_mean, m, c, part, s);
    else
        launch_stats<1>(g, x, dy, y, save_mean, m, c, part, s);
    bn_bwd_finalize_kernel<<<(c + 127) / 128, 128, 0, s>>>(part, g.rb, m, c, gamma, save_mean, save_invstd, dgamma,
                                                           dbeta, coef);
    SC_CUDA_CHECK_LAUNCH();
    const long long nv = m * c / vec;
    if (vec == 4)
        bn_bwd_apply_kernel<4><<<sc_cuda_blocks(nv, BN_THREADS), BN_THREADS, 0, s>>>(x, dy, y, coef, dx, m, c);
    else
        bn_bwd_apply_kernel<1><<<sc_cuda_blocks(nv, BN_THREADS), BN_THREADS, 0, s>>>(x, dy, y, coef, dx, m, c);
    SC_CUDA_CHECK_LAUNCH();
}

/* ---- global batch norm: the passes above with the sums exchanged in between ---- */

extern "C" void sc_cuda_bn_sums(const float *x, const float *dy, const float *save_mean, double *sums, long long m,
                                int c, void *scratch, cudaStream_t s) {
    const int vec = bn_vec(c, x, dy, NULL, NULL);
    const bn_geom g = bn_geometry(m, c, vec);
    double *part = (double *)scratch;
    if (vec == 4)
        launch_stats<4>(g, x, dy, NULL, save_mean, m, c, part, s);
    else
        launch_stats<1>(g, x, dy, NULL, save_mean, m, c, part, s);
    bn_sums_kernel<<<(c + 127) / 128, 128, 0, s>>>(part, g.rb, c, sums);
    SC_CUDA_CHECK_LAUNCH();
}

extern "C" void sc_cuda_bn_fwd_from_sums(const float *x, const float *gamma, const float *beta, const double *sums,
                                         double count, float *y, float *save_mean, float *save_invstd,
                                         float *running_mean, float *running_var, long long m, int c, double momentum,
                                         double eps, void *scratch, cudaStream_t s) {
    const int vec = bn_vec(c, x, y, NULL, NULL);
    float *coef = (float *)scratch;
    bn_fwd_finalize_sums_kernel<<<(c + 127) / 128, 128, 0, s>>>(sums, count, c, gamma, save_mean, save_invstd,
                                                                running_mean, running_var, momentum, eps, coef);
    SC_CUDA_CHECK_LAUNCH();
    launch_apply(vec, x, coef, beta, NULL, 0, y, m, c, s);
}

extern "C" void sc_cuda_bn_bwd_from_sums(const float *x, const float *dy, const float *gamma, const float *save_mean,
                                         const float *save_invstd, const double *local, const double *global,
                                         double count, float *dx, float *dgamma, float *dbeta, long long m, int c,
                                         void *scratch, cudaStream_t s) {
    const int vec = bn_vec(c, x, dy, dx, NULL);
    float *coef = (float *)scratch;
    bn_bwd_finalize_sums_kernel<<<(c + 127) / 128, 128, 0, s>>>(local, global, count, c, gamma, save_mean,
                                                                save_invstd, dgamma, dbeta, coef);
    SC_CUDA_CHECK_LAUNCH();
    const long long nv = m * c / vec;
    if (vec == 4)
        bn_bwd_apply_kernel<4><<<sc_cuda_blocks(nv, BN_THREADS), BN_THREADS, 0, s>>>(x, dy, NULL, coef, dx, m, c);
    else
        bn_bwd_apply_kernel<1><<<sc_cuda_blocks(nv, BN_THREADS), BN_THREADS, 0, s>>>(x, dy, NULL, coef, dx, m, c);
    SC_CUDA_CHECK_LAUNCH();
}

/* ---- L2 normalisation of rows --------------------------------------------------------------- */

#define L2_WARPS 8

/* Sum over the warp in a fixed butterfly order (every lane gets the same bits). */
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* y = x / max(||x||, eps) per row; norm = ||x||. One warp per row. */
__global__ static void l2norm_fwd_kernel(const float *x, float *y, float *norm, int m, int d) {
    const int row = blockIdx.x * L2_WARPS + threadIdx.y, lane = threadIdx.x;
    if (row >= m) return;
    const float *xr = x + (long long)row * d;
    float *yr = y + (long long)row * d;
    double ss = 0.0;
    for (int j = lane; j < d; j += 32) ss += (double)xr[j] * (double)xr[j];
    ss = warp_sum(ss);
    const double nrm = sqrt(ss), den = nrm > L2_EPS ? nrm : L2_EPS;
    for (int j = lane; j < d; j += 32) yr[j] = (float)((double)xr[j] / den);
    if (lane == 0) norm[row] = (float)nrm;
}

/* dx = (dy - y (y . dy)) / norm where norm > eps, else dy / eps. */
__global__ static void l2norm_bwd_kernel(const float *y, const float *norm, const float *dy, float *dx, int m, int d) {
    const int row = blockIdx.x * L2_WARPS + threadIdx.y, lane = threadIdx.x;
    if (row >= m) return;
    const float *yr = y + (long long)row * d, *gr = dy + (long long)row * d;
    float *dr = dx + (long long)row * d;
    const double nrm = (double)norm[row];
    if (nrm > L2_EPS) {
        double dot = 0.0;
        for (int j = lane; j < d; j += 32) dot += (double)yr[j] * (double)gr[j];
        dot = warp_sum(dot);
        for (int j = lane; j < d; j += 32) dr[j] = (float)(((double)gr[j] - (double)yr[j] * dot) / nrm);
    } else {
        for (int j = lane; j < d; j += 32) dr[j] = (float)((double)gr[j] / L2_EPS);
    }
}

extern "C" void sc_cuda_l2norm_fwd(const float *x, float *y, float *norm, int m, int d, cudaStream_t s) {
    l2norm_fwd_kernel<<<(m + L2_WARPS - 1) / L2_WARPS, dim3(32, L2_WARPS), 0, s>>>(x, y, norm, m, d);
    SC_CUDA_CHECK_LAUNCH();
}

extern "C" void sc_cuda_l2norm_bwd(const float *y, const float *norm, const float *dy, float *dx, int m, int d,
                                   cudaStream_t s) {
    l2norm_bwd_kernel<<<(m + L2_WARPS - 1) / L2_WARPS, dim3(32, L2_WARPS), 0, s>>>(y, norm, dy, dx, m, d);
    SC_CUDA_CHECK_LAUNCH();
}
