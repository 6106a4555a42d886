/*
 * ntxent.cu - the contrastive losses on the GPU (NT-Xent, NT-Logistic, margin triplet, semi-hard
 * negatives), fused: the R x C similarity matrix is never written to memory, so the batch is
 * limited by the encoder, not by the loss. Semantics: backend.h and src/backend/cpu/cpu_loss.c.
 *
 * NT-Xent is attention with queries = keys = values = the unit embeddings: for anchor row i,
 *   d loss / d u_i = (1 / (R tau)) (sum_k p_ik v_k - v_pos(i)),   p = softmax_{k != self(i)}(s_ik / tau)
 * which is the attention output of u_i over the columns. So one FlashAttention-style pass over
 * the columns gives both the log-sum-exp (online, max-rescaled, log2 domain) and the row
 * gradient. The column gradient, d loss / d v_k = (1 / (R tau)) (sum_i p_ik u_i - u_{i: pos(i)=k}),
 * is a second pass with the columns as queries and the rows as keys and values, where the
 * weights exp(s_ik / tau - lse_i) need no rescaling. Both passes are one kernel template:
 *
 *   S = Q K^T on tensor cores (mma.sync m16n8k16, bf16 inputs, fp32 accumulation) for a
 *   64 x 64 tile; an elementwise step per mode (mask the diagonal and the positive, online
 *   softmax, sigmoid or hinge weights, semi-hard selection); O += P V with V = the same K tile
 *   already in shared memory (ldmatrix.trans).
 *
 * fp32 inputs are split into two bf16 terms (x = hi + lo, 16 significant bits) and each product
 * takes the three terms hi*hi + hi*lo + lo*hi, so they keep ~1e-5 relative accuracy at 3x the
 * bf16 tensor-core cost; bf16 inputs use one term. The L2 normalisation, the positive's
 * correction and the normalisation backward are O(N d) kernels around the two passes.
 *
 * Work split: each CTA owns 64 queries (4 warps x 16) and one 128-wide slice of the output
 * dimension; when there are too few query blocks to fill the GPU, the key range is split over
 * CTAs too (partial max / sum / output, merged in a fixed order by a combine step). Every sum
 * runs in a fixed order: the results are deterministic for a given GPU model.
 *
 * Workspace (no allocation here; sc_cuda_contrastive_workspace bytes): bf16 planes of the unit
 * rows and columns, partial outputs and per-row statistics, all O(N d); at 2N = 131072, d = 128
 * it is about 0.3 GB. A plain cuBLAS version (similarity GEMM, materialised softmax, two GEMMs)
 * is kept at the end as a cross-check and benchmark baseline.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "cuda_kernels.h"

namespace {

typedef __nv_bfloat16 bf16;

constexpr int kBM = 64;            /* queries per CTA: 4 warps x 16 rows */
constexpr int kBN = 64;            /* keys per tile */
constexpr int kThreads = 128;
constexpr int kCH = 128;           /* d-chunk width of the S product and of the output slice */
constexpr int kPitch = kCH + 8;    /* shared row pitch (bf16): 272 bytes, conflict-free ldmatrix */
constexpr int kMaxDp = 512;        /* the largest padded embedding dimension */
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr double kNormEps = 1e-12; /* as the CPU l2norm op */

enum Mode { ROW_XENT = 0, ROW_PLAIN = 1, COL_XENT = 2, COL_PLAIN = 3 };
/* per-row partial statistics of the row pass, one plane per split */
enum { ST_M, ST_L, ST_CNT, ST_MNEG, ST_XPOS, ST_BV, ST_MV, NSTAT };
enum { IS_BI, IS_MI, NISTAT };

/* ---- small device helpers ------------------------------------------------------------------ */

__device__ __forceinline__ long long positive_of(long long j, long long block) {
    return j / block * block + (j % block + block / 2) % block;
}

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

/* Four 8x8 b16 matrices; lanes 8j..8j+7 give the row addresses of matrix j. */
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

/* c[16x8] += a[16x16] b[16x8], bf16 inputs, fp32 accumulators. */
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats as bf16x2 (the first in the low half), and the bf16x2 of what rounding lost. */
__device__ __forceinline__ void split_pack(float x0, float x1, uint32_t &hi, uint32_t &lo) {
    __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
    __nv_bfloat162 l = __floats2bfloat162_rn(x0 - __low2float(h), x1 - __high2float(h));
    hi = *reinterpret_cast<uint32_t *>(&h);
    lo = *reinterpret_cast<uint32_t *>(&l);
}

__device__ __forceinline__ float softplusf(float x) { return x > 0.f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
__device__ __forceinline__ float sigmoidf(float x) {
    return x >= 0.f ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x));
}

template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<bf16>(bf16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---- prologue: norms, bf16 planes, positive similarities ----------------------------------- */

/* One warp per row of x [count, D] (rows up to count_pad): norm[row] (1 without normalize) and
 * the unit row as NSPLIT bf16 planes [count_pad, Dp], zero-padded in both dimensions. */
template <typename T, int NSPLIT>
__global__ void prep_kernel(const T *x, int count, int count_pad, int D, int Dp, int normalize, float *norm,
                            bf16 *planes, long long plane_stride) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= count_pad) return;
    double den = 1.0;
    if (row < count && normalize) {
        double ss = 0.0;
        for (int d = lane; d < D; d += 32) {
            double v = to_f(x[(long long)row * D + d]);
            ss += v * v;
        }
        double nrm = sqrt(warp_sum_d(ss));
        den = nrm > kNormEps ? nrm : kNormEps;
        if (lane == 0) norm[row] = (float)nrm;
    } else if (lane == 0) {
        norm[row] = 1.0f;
    }
    for (int d = lane; d < Dp; d += 32) {
        float v = row < count && d < D ? (float)((double)to_f(x[(long long)row * D + d]) / den) : 0.0f;
        bf16 hi = __float2bfloat16_rn(v);
        planes[(long long)row * Dp + d] = hi;
        if (NSPLIT == 2) planes[plane_stride + (long long)row * Dp + d] = __float2bfloat16_rn(v - __bfloat162float(hi));
    }
}

/* The unit vector of raw row x (norm n) at d, as the CPU normalises it. */
template <typename T>
__device__ __forceinline__ float unit(const T *x, long long row, int D, int d, float n, int normalize) {
    float v = to_f(x[row * D + d]);
    if (!normalize) return v;
    double den = (double)n > kNormEps ? (double)n : kNormEps;
    return (float)((double)v / den);
}

/* spos[i] = u_i . v_pos(i) in fp32 from the raw inputs (margin, NT-Logistic, semi-hard). */
template <typename T>
__global__ void spos_kernel(int R, int D, long long row_offset, long long block, const T *zr, const T *zc,
                            const float *rnorm, const float *cnorm, int normalize, float *spos) {
    const int i = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (i >= R) return;
    const long long p = positive_of(row_offset + i, block);
    double s = 0.0;
    for (int d = lane; d < D; d += 32)
        s += (double)unit(zr, i, D, d, rnorm[i], normalize) * (double)unit(zc, p, D, d, cnorm[p], normalize);
    s = warp_sum_d(s);
    if (lane == 0) spos[i] = (float)s;
}

/* ---- the fused pass --------------------------------------------------------------------------- */

struct Pass {
    const bf16 *q, *k;              /* query and key planes [NSPLIT][rows_pad][Dp] */
    long long q_plane, k_plane;     /* elements between the planes */
    int q_count, k_count;           /* valid queries and keys */
    int key_tiles, tiles_per_split;
    long long q_glob0, k_glob0;     /* column-space index of local query 0 and key 0 */
    long long block;                /* pairing block */
    int Dp;
    float xscale;                   /* log2(e) / tau for NT-Xent, else 1 */
    float inv_tau, margin, nneg_inv;
    int kind, semi_hard, need_pv;
    const float *key_stat;          /* COL: lse2 (NT-Xent) or spos (margin) of each key row */
    const float *q_spos;            /* ROW_PLAIN: spos of each query */
    float *o;                       /* [split][q_rows_pad][Dp] partial outputs */
    long long o_split;
    float *stats;                   /* ROW: [NSTAT][split][q_rows_pad] */
    int *istats;                    /* ROW: [NISTAT][split][q_rows_pad] */
    long long st_split, st_stat;
};

/* rows [r0, r0 + 64) of NSPLIT planes, dimensions [c0, c0 + w) -> shared [NSPLIT][64][kPitch] */
template <int NSPLIT>
__device__ __forceinline__ void load_tile(bf16 *sm, const bf16 *planes, long long plane_stride, int Dp, long long r0,
                                          int c0, int w) {
    const int segs = w / 8, per_plane = 64 * segs;
    for (int i = threadIdx.x; i < NSPLIT * per_plane; i += kThreads) {
        const int p = i / per_plane, rem = i - p * per_plane, r = rem / segs, s = rem - r * segs;
        cp_async16(sm + (p * 64 + r) * kPitch + s * 8, planes + p * plane_stride + (r0 + r) * Dp + c0 + s * 8);
    }
}

__device__ __forceinline__ void load_stat(float *sm, const float *g) {
    if (threadIdx.x < kBN / 4) cp_async16(sm + threadIdx.x * 4, g + threadIdx.x * 4);
}

/* S[16 x 64] += Q[warp's 16 rows] K^T over nks 16-wide steps of the staged chunk. */
template <int NSPLIT>
__device__ __forceinline__ void qk_tile(float S[8][4], const bf16 *Qs, const bf16 *Kt, int nks, int warp, int lane) {
    const bf16 *qa = Qs + (warp * 16 + (lane & 15)) * kPitch + (lane >> 4) * 8;
    const bf16 *kb = Kt + ((lane & 7) + (lane >> 4) * 8) * kPitch + ((lane >> 3) & 1) * 8;
    for (int ks = 0; ks < nks; ++ks) {
        uint32_t a[NSPLIT][4];
#pragma unroll
        for (int p = 0; p < NSPLIT; ++p) ldsm_x4(a[p], qa + p * kBM * kPitch + ks * 16);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
            uint32_t b[NSPLIT][4];
#pragma unroll
            for (int p = 0; p < NSPLIT; ++p) ldsm_x4(b[p], kb + p * kBN * kPitch + np * 16 * kPitch + ks * 16);
            mma16816(S[2 * np], a[0], b[0][0], b[0][1]);
            mma16816(S[2 * np + 1], a[0], b[0][2], b[0][3]);
            if constexpr (NSPLIT == 2) {
                mma16816(S[2 * np], a[0], b[1][0], b[1][1]);
                mma16816(S[2 * np + 1], a[0], b[1][2], b[1][3]);
                mma16816(S[2 * np], a[1], b[0][0], b[0][1]);
                mma16816(S[2 * np + 1], a[1], b[0][2], b[0][3]);
            }
        }
    }
}

/* O[16 x nq*16] += P[16 x 64] V[64 x nq*16], P taken from the S accumulators. */
template <int NSPLIT>
__device__ __forceinline__ void pv_tile(float O[16][4], const float S[8][4], const bf16 *Vt, int nq, int lane) {
    const bf16 *vb = Vt + ((lane & 7) + ((lane >> 3) & 1) * 8) * kPitch + (lane >> 4) * 8;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        uint32_t ah[4], al[4];
        split_pack(S[2 * kk][0], S[2 * kk][1], ah[0], al[0]);
        split_pack(S[2 * kk][2], S[2 * kk][3], ah[1], al[1]);
        split_pack(S[2 * kk + 1][0], S[2 * kk + 1][1], ah[2], al[2]);
        split_pack(S[2 * kk + 1][2], S[2 * kk + 1][3], ah[3], al[3]);
#pragma unroll
        for (int q = 0; q < kCH / 16; ++q) {
            if (q < nq) {
                uint32_t b[NSPLIT][4];
#pragma unroll
                for (int p = 0; p < NSPLIT; ++p) ldsm_x4_t(b[p], vb + p * kBN * kPitch + kk * 16 * kPitch + q * 16);
                mma16816(O[2 * q], ah, b[0][0], b[0][1]);
                mma16816(O[2 * q + 1], ah, b[0][2], b[0][3]);
                if constexpr (NSPLIT == 2) {
                    mma16816(O[2 * q], ah, b[1][0], b[1][1]);
                    mma16816(O[2 * q + 1], ah, b[1][2], b[1][3]);
                    mma16816(O[2 * q], al, b[0][0], b[0][1]);
                    mma16816(O[2 * q + 1], al, b[0][2], b[0][3]);
                }
            }
        }
    }
}

/* Reduce over the 4 lanes of a quad (the lanes that share an accumulator row). */
__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
/* (value, index) with `better` deciding; equal values go to the lower index. */
template <bool LARGER>
__device__ __forceinline__ void quad_argbest(float &v, int &i) {
    for (int o = 1; o <= 2; o <<= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        bool take = oi >= 0 && (i < 0 || (LARGER ? ov > v : ov < v) || (ov == v && oi < i));
        if (take) {
            v = ov;
            i = oi;
        }
    }
}

/*
 * The elementwise step of each mode for one similarity s of (query, key local index kl):
 * returns the weight that multiplies the key in O += P V (for ROW_XENT the masked logit in log2
 * units, exponentiated after the tile's maximum is known) and updates the row statistics.
 * valid: the key exists; diag: the key is the query itself; pos: the key is its positive.
 */
template <int MODE>
__device__ __forceinline__ float elem(const Pass &P, float s, bool valid, bool diag, bool pos, int kl, float kstat,
                                      float qsp, bool select, float &tmax, float &tneg, float &xpos, float &mneg,
                                      float &l, float &cnt, float &bv, int &bi, float &mv, int &mi) {
    float w = 0.f;
    if constexpr (MODE == ROW_XENT) {
        w = valid && !diag ? s * P.xscale : -INFINITY;
        if (valid && pos) xpos = w;
        if (valid && !diag && !pos) tneg = fmaxf(tneg, w);
        tmax = fmaxf(tmax, w);
    } else if constexpr (MODE == ROW_PLAIN) {
        if (valid && pos) xpos = s;
        if (valid && !diag && !pos) {
            mneg = fmaxf(mneg, s);
            if (select) {
                if (s < qsp && s > bv) {
                    bv = s;
                    bi = kl;
                }
                if (s < mv) {
                    mv = s;
                    mi = kl;
                }
            } else if (P.kind == SC_CONTRASTIVE_NT_LOGISTIC) {
                const float z = s * P.inv_tau;
                l += softplusf(z);
                w = sigmoidf(z) * P.inv_tau * P.nneg_inv;
            } else {
                const float h = s - qsp + P.margin;
                if (h > 0.f) {
                    l += h;
                    cnt += 1.f;
                    w = P.nneg_inv;
                }
            }
        }
    } else if constexpr (MODE == COL_XENT) {
        w = valid && !diag ? exp2f(s * P.xscale - kstat) : 0.f;
    } else {
        if (valid && !diag && !pos) {
            if (P.kind == SC_CONTRASTIVE_NT_LOGISTIC)
                w = sigmoidf(s * P.inv_tau) * P.inv_tau * P.nneg_inv;
            else
                w = s - kstat + P.margin > 0.f ? P.nneg_inv : 0.f;
        }
    }
    return w;
}

/*
 * One pass: CTA (blockIdx.x) = 64 queries, blockIdx.y = output slice of 128 dimensions,
 * blockIdx.z = range of key tiles. Warp w owns queries w*16..w*16+15; in the mma layout lane
 * (g = lane / 4, tig = lane % 4) holds rows g and g + 8 (r = 0, 1), key columns nt*8 + tig*2 + e.
 */
template <int MODE, int NSPLIT>
__global__ void __launch_bounds__(kThreads) attn_kernel(Pass P) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *Ks = Qs + NSPLIT * kBM * kPitch; /* [2 stages][NSPLIT][kBN][kPitch] */
    float *kst = reinterpret_cast<float *>(Ks + 2 * NSPLIT * kBN * kPitch); /* [2 stages][kBN] */
    constexpr bool ROW = MODE == ROW_XENT || MODE == ROW_PLAIN;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
    const int q0 = blockIdx.x * kBM, oc = blockIdx.y, split = blockIdx.z;
    const int nchunks = (P.Dp + kCH - 1) / kCH, ow = min(kCH, P.Dp - oc * kCH);
    const int t_begin = split * P.tiles_per_split, t_end = min(P.key_tiles, t_begin + P.tiles_per_split);
    const bool need_kst = MODE == COL_XENT || (MODE == COL_PLAIN && P.kind == SC_CONTRASTIVE_MARGIN);
    const bool select = MODE == ROW_PLAIN && P.semi_hard;

    int ql[2];
    long long qg[2], qp[2];
    float qsp[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        ql[r] = q0 + warp * 16 + g + 8 * r;
        qg[r] = P.q_glob0 + ql[r];
        qp[r] = positive_of(qg[r], P.block);
        qsp[r] = MODE == ROW_PLAIN && P.q_spos && ql[r] < P.q_count ? P.q_spos[ql[r]] : 0.f;
    }
    float O[16][4];
#pragma unroll
    for (int i = 0; i < 16; ++i) O[i][0] = O[i][1] = O[i][2] = O[i][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, cnt[2] = {0.f, 0.f};
    float mneg[2] = {-INFINITY, -INFINITY}, xpos[2] = {-INFINITY, -INFINITY};
    float bv[2] = {-INFINITY, -INFINITY}, mv[2] = {INFINITY, INFINITY};
    int bi[2] = {-1, -1}, mi[2] = {-1, -1};

    if (nchunks == 1 && t_begin < t_end) {
        load_tile<NSPLIT>(Qs, P.q, P.q_plane, P.Dp, q0, 0, P.Dp);
        load_tile<NSPLIT>(Ks, P.k, P.k_plane, P.Dp, (long long)t_begin * kBN, 0, P.Dp);
        if (need_kst) load_stat(kst, P.key_stat + (long long)t_begin * kBN);
        cp_async_commit();
    }
    for (int t = t_begin; t < t_end; ++t) {
        const int st = (t - t_begin) & 1;
        const bf16 *Kt = Ks + st * NSPLIT * kBN * kPitch;
        const float *kt = kst + st * kBN;
        float S[8][4];
#pragma unroll
        for (int i = 0; i < 8; ++i) S[i][0] = S[i][1] = S[i][2] = S[i][3] = 0.f;
        if (nchunks == 1) {
            cp_async_wait_all();
            __syncthreads();
            if (t + 1 < t_end) { /* prefetch the next tile while this one is computed */
                load_tile<NSPLIT>(Ks + (st ^ 1) * NSPLIT * kBN * kPitch, P.k, P.k_plane, P.Dp,
                                  (long long)(t + 1) * kBN, 0, P.Dp);
                if (need_kst) load_stat(kst + (st ^ 1) * kBN, P.key_stat + (long long)(t + 1) * kBN);
                cp_async_commit();
            }
            qk_tile<NSPLIT>(S, Qs, Kt, P.Dp / 16, warp, lane);
        } else { /* d > 128: stage the product 128 dimensions at a time */
            Kt = Ks;
            kt = kst;
            for (int c = 0; c < nchunks; ++c) {
                const int w = min(kCH, P.Dp - c * kCH);
                __syncthreads();
                load_tile<NSPLIT>(Qs, P.q, P.q_plane, P.Dp, q0, c * kCH, w);
                load_tile<NSPLIT>(Ks, P.k, P.k_plane, P.Dp, (long long)t * kBN, c * kCH, w);
                if (c == 0 && need_kst) load_stat(kst, P.key_stat + (long long)t * kBN);
                cp_async_commit();
                cp_async_wait_all();
                __syncthreads();
                qk_tile<NSPLIT>(S, Qs, Ks, w / 16, warp, lane);
            }
        }

        /* ---- elementwise: masks, statistics, weights (S becomes P) ---- */
        const int kl0 = t * kBN;
        const long long kg0 = P.k_glob0 + kl0;
        bool special = kl0 + kBN > P.k_count;
#pragma unroll
        for (int r = 0; r < 2; ++r)
            special |= (qg[r] >= kg0 && qg[r] < kg0 + kBN) || (qp[r] >= kg0 && qp[r] < kg0 + kBN);
        special = __any_sync(0xffffffffu, special);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float tmax = -INFINITY, tneg = -INFINITY;
            if (!special) { /* no mask in this tile: the flags fold away */
#pragma unroll
                for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int j = nt * 8 + tig * 2 + e;
                        S[nt][2 * r + e] = elem<MODE>(P, S[nt][2 * r + e], true, false, false, kl0 + j,
                                                      need_kst ? kt[j] : 0.f, qsp[r], select, tmax, tneg, xpos[r],
                                                      mneg[r], l[r], cnt[r], bv[r], bi[r], mv[r], mi[r]);
                    }
            } else {
#pragma unroll
                for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int j = nt * 8 + tig * 2 + e, kl = kl0 + j;
                        const long long kg = P.k_glob0 + kl;
                        S[nt][2 * r + e] = elem<MODE>(P, S[nt][2 * r + e], kl < P.k_count, kg == qg[r], kg == qp[r], kl,
                                                      need_kst ? kt[j] : 0.f, qsp[r], select, tmax, tneg, xpos[r],
                                                      mneg[r], l[r], cnt[r], bv[r], bi[r], mv[r], mi[r]);
                    }
            }
            if constexpr (MODE == ROW_XENT) {
                /* online softmax in the log2 domain; a fully masked row keeps m = -inf */
                mneg[r] = fmaxf(mneg[r], tneg);
                tmax = quad_max(tmax);
                const float mnew = fmaxf(m[r], tmax), mb = mnew == -INFINITY ? 0.f : mnew;
                const float alpha = exp2f(m[r] - mb);
                float sum = 0.f;
#pragma unroll
                for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const float p = exp2f(S[nt][2 * r + e] - mb);
                        S[nt][2 * r + e] = p;
                        sum += p;
                    }
                l[r] = l[r] * alpha + sum;
                m[r] = mnew;
                if (P.need_pv)
#pragma unroll
                    for (int i = 0; i < 16; ++i) {
                        O[i][2 * r] *= alpha;
                        O[i][2 * r + 1] *= alpha;
                    }
            }
        }

        /* ---- O += P V, V = the key tile's slice oc ---- */
        if (P.need_pv) {
            if (nchunks > 1) {
                __syncthreads();
                load_tile<NSPLIT>(Ks, P.k, P.k_plane, P.Dp, (long long)t * kBN, oc * kCH, ow);
                cp_async_commit();
                cp_async_wait_all();
                __syncthreads();
            }
            pv_tile<NSPLIT>(O, S, Kt, ow / 16, lane);
        }
        __syncthreads(); /* the staged tile may be overwritten from here on */
    }

    /* ---- epilogue ---- */
    if (P.need_pv) {
        const float scale = MODE == COL_XENT ? P.inv_tau : 1.f;
        float *o = P.o + split * P.o_split + (long long)oc * kCH;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            if (ql[r] >= P.q_count) continue;
#pragma unroll
            for (int i = 0; i < 16; ++i)
                if (i < ow / 8)
                    *reinterpret_cast<float2 *>(o + (long long)ql[r] * P.Dp + i * 8 + tig * 2) =
                        make_float2(O[i][2 * r] * scale, O[i][2 * r + 1] * scale);
        }
    }
    if constexpr (ROW) {
        if (oc != 0) return;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float lr = quad_sum(l[r]), cr = quad_sum(cnt[r]);
            const float mn = quad_max(mneg[r]), xp = quad_max(xpos[r]);
            quad_argbest<true>(bv[r], bi[r]);
            quad_argbest<false>(mv[r], mi[r]);
            if (tig != 0 || ql[r] >= P.q_count) continue;
            const long long at = split * P.st_split + ql[r];
            P.stats[ST_M * P.st_stat + at] = m[r];
            P.stats[ST_L * P.st_stat + at] = lr;
            P.stats[ST_CNT * P.st_stat + at] = cr;
            P.stats[ST_MNEG * P.st_stat + at] = mn;
            P.stats[ST_XPOS * P.st_stat + at] = xp;
            P.stats[ST_BV * P.st_stat + at] = bv[r];
            P.stats[ST_MV * P.st_stat + at] = mv[r];
            P.istats[IS_BI * P.st_stat + at] = bi[r];
            P.istats[IS_MI * P.st_stat + at] = mi[r];
        }
    }
}

/* ---- merging the row pass, the semi-hard column scatter, the finish -------------------------- */

struct Combine {
    int R, D, Dp, ksplit, kind, semi_hard, need_grad, normalize;
    float inv_tau, margin, nneg_inv;
    const float *stats;
    const int *istats;
    long long st_split, st_stat;
    float *o; /* row partials [split][Rp][Dp]; split 0 receives the merged row weights */
    long long o_split;
    const float *spos, *rnorm, *cnorm;
    float *lse2, *gpos, *loss_i, *correct, *wsel;
    int *sel;
};

/* One warp per local row: merge the splits into the row's loss, accuracy, log-sum-exp,
 * positive weight gpos = d loss_i / d s_i,pos and weighted column sum (split 0 of o). */
template <typename T>
__global__ void row_combine_kernel(Combine c, const T *zr, const T *zc) {
    const int i = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (i >= c.R) return;
    const float *st = c.stats + i;
    const int *ist = c.istats + i;
    float M = -INFINITY, mneg = -INFINITY, xpos = -INFINITY, L = 0.f, cntv = 0.f;
    for (int s = 0; s < c.ksplit; ++s) {
        M = fmaxf(M, st[ST_M * c.st_stat + s * c.st_split]);
        mneg = fmaxf(mneg, st[ST_MNEG * c.st_stat + s * c.st_split]);
        xpos = fmaxf(xpos, st[ST_XPOS * c.st_stat + s * c.st_split]);
        cntv += st[ST_CNT * c.st_stat + s * c.st_split];
    }
    const bool xent = c.kind == SC_CONTRASTIVE_NTXENT;
    for (int s = 0; s < c.ksplit; ++s) {
        const float ls = st[ST_L * c.st_stat + s * c.st_split];
        L += xent ? ls * exp2f(st[ST_M * c.st_stat + s * c.st_split] - M) : ls;
    }
    float loss, gp, wsel = 0.f;
    int sel = -1;
    const float sp = c.spos ? c.spos[i] : 0.f;
    if (xent) {
        const float lse2 = M + log2f(L);
        loss = (lse2 - xpos) * kLn2;
        gp = -c.inv_tau;
        if (lane == 0) c.lse2[i] = lse2;
    } else if (!c.semi_hard) {
        loss = c.kind == SC_CONTRASTIVE_NT_LOGISTIC ? softplusf(-sp * c.inv_tau) + L * c.nneg_inv : L * c.nneg_inv;
        gp = c.kind == SC_CONTRASTIVE_NT_LOGISTIC ? -sigmoidf(-sp * c.inv_tau) * c.inv_tau : -cntv * c.nneg_inv;
    } else {
        /* the most similar negative below the positive, else the least similar negative */
        float bv = -INFINITY, mv = INFINITY;
        int bi = -1, mi = -1;
        for (int s = 0; s < c.ksplit; ++s) {
            const float v = st[ST_BV * c.st_stat + s * c.st_split], w = st[ST_MV * c.st_stat + s * c.st_split];
            const int vi = ist[IS_BI * c.st_stat + s * c.st_split], wi = ist[IS_MI * c.st_stat + s * c.st_split];
            if (vi >= 0 && (bi < 0 || v > bv || (v == bv && vi < bi))) bv = v, bi = vi;
            if (wi >= 0 && (mi < 0 || w < mv || (w == mv && wi < mi))) mv = w, mi = wi;
        }
        sel = bi >= 0 ? bi : mi;
        float ssel = 0.f; /* exact fp32 similarity of the selected pair */
        if (sel >= 0) {
            double dot = 0.0;
            for (int d = lane; d < c.D; d += 32)
                dot += (double)unit(zr, i, c.D, d, c.rnorm[i], c.normalize) *
                       (double)unit(zc, sel, c.D, d, c.cnorm[sel], c.normalize);
            ssel = (float)warp_sum_d(dot);
        }
        if (c.kind == SC_CONTRASTIVE_NT_LOGISTIC) {
            loss = softplusf(-sp * c.inv_tau) + (sel >= 0 ? softplusf(ssel * c.inv_tau) : 0.f);
            gp = -sigmoidf(-sp * c.inv_tau) * c.inv_tau;
            wsel = sel >= 0 ? sigmoidf(ssel * c.inv_tau) * c.inv_tau : 0.f;
        } else {
            const float h = ssel - sp + c.margin;
            loss = sel >= 0 && h > 0.f ? h : 0.f;
            wsel = sel >= 0 && h > 0.f ? 1.f : 0.f;
            gp = -wsel;
        }
    }
    if (lane == 0) {
        c.loss_i[i] = loss;
        c.correct[i] = xpos > mneg ? 1.f : 0.f;
        c.gpos[i] = gp;
        c.sel[i] = sel;
        c.wsel[i] = wsel;
    }
    if (!c.need_grad) return;
    float f[64]; /* per-split factors (ksplit <= 64) */
    for (int s = 0; s < c.ksplit; ++s) {
        const float ms = st[ST_M * c.st_stat + s * c.st_split];
        f[s] = xent ? exp2f(ms - M) / L * c.inv_tau : 1.f;
    }
    float *o = c.o + (long long)i * c.Dp;
    for (int d = lane; d < c.Dp; d += 32) {
        float acc = 0.f;
        if (c.semi_hard) {
            acc = sel >= 0 && d < c.D ? wsel * unit(zc, sel, c.D, d, c.cnorm[sel], c.normalize) : 0.f;
        } else {
            for (int s = 0; s < c.ksplit; ++s) acc += o[s * c.o_split + d] * f[s];
        }
        o[d] = acc;
    }
}

/* Semi-hard column gradient: column k gathers w_i u_i from every row i that selected it, in
 * row order (one thread per column, so the sum is deterministic). gcol is zeroed first. */
template <typename T>
__global__ void semi_hard_cols_kernel(int R, int C, int D, int Dp, const int *sel, const float *wsel, const T *zr,
                                      const float *rnorm, int normalize, float *gcol) {
    __shared__ int ssel[256];
    __shared__ float sw[256];
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    for (int base = 0; base < R; base += 256) {
        const int n = min(256, R - base);
        __syncthreads();
        if ((int)threadIdx.x < n) {
            ssel[threadIdx.x] = sel[base + threadIdx.x];
            sw[threadIdx.x] = wsel[base + threadIdx.x];
        }
        __syncthreads();
        if (k >= C) continue;
        for (int j = 0; j < n; ++j) {
            if (ssel[j] != k || sw[j] == 0.f) continue;
            const int i = base + j;
            for (int d = 0; d < D; ++d)
                gcol[(long long)k * Dp + d] += sw[j] * unit(zr, i, D, d, rnorm[i], normalize);
        }
    }
}

struct Finish {
    int mode; /* 0: d_rows, 1: d_cols, 2: both summed (single matrix) */
    int R, C, D, Dp, ksplit_col, normalize;
    long long row_offset, block, col_split;
    float inv_r;
    const float *rnorm, *cnorm, *grow, *gcol, *gpos;
};

/* One warp per output row: gradient with respect to the unit vector (weighted sum + positive
 * correction, / R), then through the normalisation: dx = (g - u (u . g)) / ||x||. */
template <typename T>
__global__ void finish_kernel(Finish f, const T *zr, const T *zc, T *out) {
    const int v = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n = f.mode == 1 ? f.C : f.R;
    if (v >= n) return;
    constexpr int kPer = kMaxDp / 32;
    float gv[kPer];
#pragma unroll
    for (int j = 0; j < kPer; ++j) gv[j] = 0.f;
    if (f.mode != 1) { /* anchor role of row v */
        const long long p = positive_of(f.row_offset + v, f.block);
        const float gp = f.gpos[v];
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
            const int d = lane + 32 * j;
            if (d < f.D) gv[j] += f.grow[(long long)v * f.Dp + d] + gp * unit(zc, p, f.D, d, f.cnorm[p], f.normalize);
        }
    }
    if (f.mode != 0) { /* column role of column v */
        const long long rr = positive_of(v, f.block) - f.row_offset;
        const bool has = rr >= 0 && rr < f.R;
        const float gp = has ? f.gpos[rr] : 0.f;
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
            const int d = lane + 32 * j;
            if (d >= f.D) continue;
            float acc = 0.f;
            for (int s = 0; s < f.ksplit_col; ++s) acc += f.gcol[s * f.col_split + (long long)v * f.Dp + d];
            if (has) acc += gp * unit(zr, rr, f.D, d, f.rnorm[rr], f.normalize);
            gv[j] += acc;
        }
    }
    const T *x = f.mode == 1 ? zc : zr;
    const float nrm = f.mode == 1 ? f.cnorm[v] : f.rnorm[v];
#pragma unroll
    for (int j = 0; j < kPer; ++j) gv[j] *= f.inv_r;
    if (f.normalize) {
        double dot = 0.0;
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
            const int d = lane + 32 * j;
            if (d < f.D) dot += (double)unit(x, v, f.D, d, nrm, 1) * (double)gv[j];
        }
        dot = warp_sum_d(dot);
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
            const int d = lane + 32 * j;
            if (d >= f.D) continue;
            const double u = unit(x, v, f.D, d, nrm, 1);
            gv[j] = (double)nrm > kNormEps ? (float)(((double)gv[j] - u * dot) / (double)nrm)
                                           : (float)((double)gv[j] / kNormEps);
        }
    }
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int d = lane + 32 * j;
        if (d < f.D) out[(long long)v * f.D + d] = from_f<T>(gv[j]);
    }
}

/* loss = mean of loss_i, accuracy = mean of correct_i: one block, a fixed summation order. */
__global__ void reduce_loss_kernel(int R, const float *loss_i, const float *correct, float *loss, float *acc) {
    __shared__ double sl[256], sc[256];
    double a = 0.0, b = 0.0;
    for (int i = threadIdx.x; i < R; i += blockDim.x) {
        a += loss_i[i];
        b += correct[i];
    }
    sl[threadIdx.x] = a;
    sc[threadIdx.x] = b;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            sl[threadIdx.x] += sl[threadIdx.x + s];
            sc[threadIdx.x] += sc[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        loss[0] = (float)(sl[0] / R);
        if (acc) acc[0] = (float)(sc[0] / R);
    }
}

/* ---- host side ------------------------------------------------------------------------------ */

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

/* Where everything lives in the workspace. The sizes use bounds that only grow with R and C,
 * so a workspace planned for the largest batch serves every smaller one. */
struct Layout {
    int R, C, D, Dp, Rp, Cp, nsplit, nchunks;
    long long block, row_offset;
    long long part_r, part_c; /* rows of the partial buffers (bounds) */
    size_t planes_c, planes_r, cnorm, rnorm, spos, ro, rst, rist, lse2, gpos, lossi, corr, sel, wsel, co, total;
};

int device_sms() {
    int dev = 0, sms = 0;
    SC_CUDA_CHECK(cudaGetDevice(&dev));
    SC_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms > 0 ? sms : 1;
}

Layout make_layout(const sc_contrastive_desc *d, long long R, long long C, long long D, sc_dtype dt, int sms) {
    SC_CHECK(D >= 1 && D <= kMaxDp, "contrastive (CUDA): embedding dimension %lld is outside [1, %d]", D, kMaxDp);
    SC_CHECK(C < (1ll << 30) && R <= C, "contrastive (CUDA): %lld rows x %lld columns is too large", R, C);
    Layout L;
    L.R = (int)R;
    L.C = (int)C;
    L.D = (int)D;
    L.Dp = (int)((D + 15) / 16 * 16);
    L.Rp = (int)((R + kBM - 1) / kBM * kBM);
    L.Cp = (int)((C + kBM - 1) / kBM * kBM);
    L.nsplit = dt == SC_BF16 ? 1 : 2;
    L.nchunks = (L.Dp + kCH - 1) / kCH;
    L.block = d->pair_block > 0 ? d->pair_block : C;
    L.row_offset = d->row_offset;
    const long long target = 2ll * sms;
    L.part_r = kBM * target + L.Rp;
    L.part_c = kBM * target + L.Cp;
    size_t at = 0;
    auto take = [&](size_t bytes) {
        size_t here = at;
        at += align256(bytes);
        return here;
    };
    L.planes_c = take((size_t)L.nsplit * L.Cp * L.Dp * sizeof(bf16));
    L.planes_r = take((size_t)L.nsplit * L.Rp * L.Dp * sizeof(bf16));
    L.cnorm = take((size_t)L.Cp * 4);
    L.rnorm = take((size_t)L.Rp * 4);
    L.spos = take((size_t)L.Rp * 4);
    L.ro = take((size_t)L.part_r * L.Dp * 4);
    L.rst = take((size_t)NSTAT * L.part_r * 4);
    L.rist = take((size_t)NISTAT * L.part_r * 4);
    L.lse2 = take((size_t)L.Rp * 4);
    L.gpos = take((size_t)L.Rp * 4);
    L.lossi = take((size_t)L.Rp * 4);
    L.corr = take((size_t)L.Rp * 4);
    L.sel = take((size_t)L.Rp * 4);
    L.wsel = take((size_t)L.Rp * 4);
    L.co = take((size_t)L.part_c * L.Dp * 4);
    L.total = at;
    return L;
}

/* Key splits so that about 2 CTAs per SM are busy; returns tiles per split. */
void choose_split(int query_blocks, int key_tiles, int sms, int *ksplit, int *tiles_per_split) {
    int want = (2 * sms + query_blocks - 1) / query_blocks;
    want = want < 1 ? 1 : want > key_tiles ? key_tiles : want;
    want = want > 64 ? 64 : want;
    *tiles_per_split = (key_tiles + want - 1) / want;
    *ksplit = (key_tiles + *tiles_per_split - 1) / *tiles_per_split;
}

size_t pass_smem(int nsplit) {
    return (size_t)(nsplit * kBM * kPitch + 2 * nsplit * kBN * kPitch) * sizeof(bf16) + 2 * kBN * sizeof(float);
}

template <int MODE, int NSPLIT>
void launch_pass(const Pass &p, dim3 grid, cudaStream_t stream) {
    const size_t smem = pass_smem(NSPLIT);
    SC_CUDA_CHECK(cudaFuncSetAttribute(attn_kernel<MODE, NSPLIT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attn_kernel<MODE, NSPLIT><<<grid, kThreads, smem, stream>>>(p);
    SC_CUDA_CHECK_LAUNCH();
}

template <int MODE>
void launch_pass_n(int nsplit, const Pass &p, dim3 grid, cudaStream_t stream) {
    if (nsplit == 2)
        launch_pass<MODE, 2>(p, grid, stream);
    else
        launch_pass<MODE, 1>(p, grid, stream);
}

template <typename T>
void run_fused(const sc_contrastive_desc *d, const Layout &L, const T *zr, const T *zc, float *loss, float *acc,
               T *d_rows, T *d_cols, char *ws, int sms, cudaStream_t stream) {
    const int same = zr == zc && L.row_offset == 0;
    const int need_grad = d_rows != NULL;
    const int xent = d->kind == SC_CONTRASTIVE_NTXENT;
    const int semi = !xent && d->semi_hard;
    bf16 *pc = (bf16 *)(ws + L.planes_c), *pr = same ? pc : (bf16 *)(ws + L.planes_r);
    float *cnorm = (float *)(ws + L.cnorm), *rnorm = same ? cnorm : (float *)(ws + L.rnorm);
    float *spos = (float *)(ws + L.spos);
    const long long pcs = (long long)L.Cp * L.Dp, prs = same ? pcs : (long long)L.Rp * L.Dp;
    const int warps_per_block = 8, tpb = 32 * warps_per_block;

    /* 1. norms and bf16 planes */
    if (L.nsplit == 2)
        prep_kernel<T, 2><<<(L.Cp + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(
            zc, L.C, L.Cp, L.D, L.Dp, d->normalize, cnorm, pc, pcs);
    else
        prep_kernel<T, 1><<<(L.Cp + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(
            zc, L.C, L.Cp, L.D, L.Dp, d->normalize, cnorm, pc, pcs);
    SC_CUDA_CHECK_LAUNCH();
    if (!same) {
        if (L.nsplit == 2)
            prep_kernel<T, 2><<<(L.Rp + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(
                zr, L.R, L.Rp, L.D, L.Dp, d->normalize, rnorm, pr, prs);
        else
            prep_kernel<T, 1><<<(L.Rp + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(
                zr, L.R, L.Rp, L.D, L.Dp, d->normalize, rnorm, pr, prs);
        SC_CUDA_CHECK_LAUNCH();
    }
    if (!xent) {
        spos_kernel<T><<<(L.R + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(
            L.R, L.D, L.row_offset, L.block, zr, zc, rnorm, cnorm, d->normalize, spos);
        SC_CUDA_CHECK_LAUNCH();
    }
    const long long nneg = (long long)L.C - 2;
    const float inv_tau = d->kind == SC_CONTRASTIVE_MARGIN ? 1.f : (float)(1.0 / d->tau);
    const float nneg_inv = nneg > 0 ? (float)(1.0 / (double)nneg) : 0.f;

    /* 2. row pass: statistics (and the row weights when a gradient is wanted) */
    Pass p = {};
    p.q = pr;
    p.k = pc;
    p.q_plane = prs;
    p.k_plane = pcs;
    p.q_count = L.R;
    p.k_count = L.C;
    p.key_tiles = (L.C + kBN - 1) / kBN;
    p.q_glob0 = L.row_offset;
    p.k_glob0 = 0;
    p.block = L.block;
    p.Dp = L.Dp;
    p.xscale = xent ? kLog2e * inv_tau : 1.f;
    p.inv_tau = inv_tau;
    p.margin = (float)d->margin;
    p.nneg_inv = nneg_inv;
    p.kind = d->kind;
    p.semi_hard = semi;
    p.need_pv = need_grad && !semi;
    p.q_spos = xent ? NULL : spos;
    p.o = (float *)(ws + L.ro);
    p.stats = (float *)(ws + L.rst);
    p.istats = (int *)(ws + L.rist);
    p.st_stat = L.part_r;
    const int row_chunks = p.need_pv ? L.nchunks : 1;
    int ksr, tpsr;
    choose_split(L.Rp / kBM * row_chunks, p.key_tiles, sms, &ksr, &tpsr);
    p.tiles_per_split = tpsr;
    p.o_split = (long long)L.Rp * L.Dp;
    p.st_split = L.Rp;
    SC_CHECK((long long)ksr * L.Rp <= L.part_r, "contrastive (CUDA): split bound violated");
    dim3 grid_r(L.Rp / kBM, row_chunks, ksr);
    if (xent)
        launch_pass_n<ROW_XENT>(L.nsplit, p, grid_r, stream);
    else
        launch_pass_n<ROW_PLAIN>(L.nsplit, p, grid_r, stream);

    /* 3. merge the splits per row */
    Combine c = {};
    c.R = L.R;
    c.D = L.D;
    c.Dp = L.Dp;
    c.ksplit = ksr;
    c.kind = d->kind;
    c.semi_hard = semi;
    c.need_grad = need_grad;
    c.normalize = d->normalize;
    c.inv_tau = inv_tau;
    c.margin = (float)d->margin;
    c.nneg_inv = nneg_inv;
    c.stats = p.stats;
    c.istats = p.istats;
    c.st_split = p.st_split;
    c.st_stat = p.st_stat;
    c.o = p.o;
    c.o_split = p.o_split;
    c.spos = xent ? NULL : spos;
    c.rnorm = rnorm;
    c.cnorm = cnorm;
    c.lse2 = (float *)(ws + L.lse2);
    c.gpos = (float *)(ws + L.gpos);
    c.loss_i = (float *)(ws + L.lossi);
    c.correct = (float *)(ws + L.corr);
    c.sel = (int *)(ws + L.sel);
    c.wsel = (float *)(ws + L.wsel);
    row_combine_kernel<T><<<(L.R + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(c, zr, zc);
    SC_CUDA_CHECK_LAUNCH();

    /* 4. column pass (or the semi-hard scatter), then the gradients through the normalisation */
    if (need_grad) {
        float *co = (float *)(ws + L.co);
        int ksc = 1, tpsc = 1;
        long long col_split = (long long)L.Cp * L.Dp;
        if (semi) {
            SC_CUDA_CHECK(cudaMemsetAsync(co, 0, (size_t)col_split * sizeof(float), stream));
            semi_hard_cols_kernel<T><<<(L.C + 255) / 256, 256, 0, stream>>>(L.R, L.C, L.D, L.Dp, c.sel, c.wsel, zr,
                                                                             rnorm, d->normalize, co);
            SC_CUDA_CHECK_LAUNCH();
        } else {
            Pass q = p;
            q.q = pc;
            q.k = pr;
            q.q_plane = pcs;
            q.k_plane = prs;
            q.q_count = L.C;
            q.k_count = L.R;
            q.key_tiles = (L.R + kBN - 1) / kBN;
            q.q_glob0 = 0;
            q.k_glob0 = L.row_offset;
            q.need_pv = 1;
            q.key_stat = xent ? c.lse2 : d->kind == SC_CONTRASTIVE_MARGIN ? spos : NULL;
            q.q_spos = NULL;
            q.o = co;
            q.o_split = col_split;
            q.stats = NULL;
            q.istats = NULL;
            choose_split(L.Cp / kBM * L.nchunks, q.key_tiles, sms, &ksc, &tpsc);
            q.tiles_per_split = tpsc;
            SC_CHECK((long long)ksc * L.Cp <= L.part_c, "contrastive (CUDA): split bound violated");
            dim3 grid_c(L.Cp / kBM, L.nchunks, ksc);
            if (xent)
                launch_pass_n<COL_XENT>(L.nsplit, q, grid_c, stream);
            else
                launch_pass_n<COL_PLAIN>(L.nsplit, q, grid_c, stream);
        }
        Finish f = {};
        f.R = L.R;
        f.C = L.C;
        f.D = L.D;
        f.Dp = L.Dp;
        f.ksplit_col = ksc;
        f.normalize = d->normalize;
        f.row_offset = L.row_offset;
        f.block = L.block;
        f.col_split = col_split;
        f.inv_r = (float)(1.0 / L.R);
        f.rnorm = rnorm;
        f.cnorm = cnorm;
        f.grow = p.o;
        f.gcol = co;
        f.gpos = c.gpos;
        if (d_rows == d_cols) {
            f.mode = 2;
            finish_kernel<T><<<(L.R + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(f, zr, zc, d_rows);
            SC_CUDA_CHECK_LAUNCH();
        } else {
            f.mode = 0;
            finish_kernel<T><<<(L.R + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(f, zr, zc, d_rows);
            SC_CUDA_CHECK_LAUNCH();
            f.mode = 1;
            finish_kernel<T><<<(L.C + warps_per_block - 1) / warps_per_block, tpb, 0, stream>>>(f, zr, zc, d_cols);
            SC_CUDA_CHECK_LAUNCH();
        }
    }
    reduce_loss_kernel<<<1, 256, 0, stream>>>(L.R, c.loss_i, c.correct, loss, acc);
    SC_CUDA_CHECK_LAUNCH();
}

void check_args(const sc_contrastive_desc *d, const sc_tensor *z_rows, const sc_tensor *z_cols, const sc_tensor *loss,
                const sc_tensor *d_rows, const sc_tensor *d_cols) {
    SC_CHECK(z_rows->dtype == SC_F32 || z_rows->dtype == SC_BF16, "contrastive (CUDA): inputs must be F32 or BF16");
    SC_CHECK(z_cols->dtype == z_rows->dtype && loss->dtype == SC_F32, "contrastive (CUDA): dtype mismatch");
    SC_CHECK(z_rows->shape[1] == z_cols->shape[1], "contrastive (CUDA): rows and columns differ in dimension");
    SC_CHECK((d_rows == NULL) == (d_cols == NULL), "contrastive (CUDA): d_rows and d_cols go together");
    SC_CHECK(d->kind != SC_CONTRASTIVE_NTXENT || !d->semi_hard, "contrastive (CUDA): semi-hard is not for NT-Xent");
}

} /* namespace */

extern "C" size_t sc_cuda_contrastive_workspace(const sc_contrastive_desc *d, int64_t rows, int64_t cols, int64_t dim,
                                                sc_dtype dt) {
    return make_layout(d, rows, cols, dim, dt, device_sms()).total;
}

extern "C" void sc_cuda_contrastive(const sc_contrastive_desc *d, const sc_tensor *z_rows, const sc_tensor *z_cols,
                                    sc_tensor *loss, sc_tensor *accuracy, sc_tensor *d_rows, sc_tensor *d_cols,
                                    sc_tensor *ws, cudaStream_t stream) {
    check_args(d, z_rows, z_cols, loss, d_rows, d_cols);
    const int sms = device_sms();
    Layout L = make_layout(d, z_rows->shape[0], z_cols->shape[0], z_rows->shape[1], z_rows->dtype, sms);
    SC_CHECK(ws && ws->data && sc_tensor_nbytes(ws) >= L.total, "contrastive (CUDA): workspace of %zu bytes, %zu needed",
             ws ? sc_tensor_nbytes(ws) : (size_t)0, L.total);
    float *acc = accuracy ? (float *)accuracy->data : NULL;
    if (z_rows->dtype == SC_BF16)
        run_fused<bf16>(d, L, (const bf16 *)z_rows->data, (const bf16 *)z_cols->data, (float *)loss->data, acc,
                        d_rows ? (bf16 *)d_rows->data : NULL, d_cols ? (bf16 *)d_cols->data : NULL, (char *)ws->data, sms,
                        stream);
    else
        run_fused<float>(d, L, (const float *)z_rows->data, (const float *)z_cols->data, (float *)loss->data, acc,
                         d_rows ? (float *)d_rows->data : NULL, d_cols ? (float *)d_cols->data : NULL,
                         (char *)ws->data, sms, stream);
}

/* ---- the cuBLAS baseline: logits materialised in an R x C matrix ---------------------------- */

namespace {

/* One warp per row: norm (1 without normalize) and the fp32 unit row. */
template <typename T>
__global__ void unit_rows_kernel(const T *x, int count, int D, int normalize, float *norm, float *u) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= count) return;
    double ss = 0.0;
    for (int d = lane; d < D; d += 32) {
        double v = to_f(x[(long long)row * D + d]);
        ss += v * v;
    }
    const double nrm = sqrt(warp_sum_d(ss)), den = !normalize ? 1.0 : nrm > kNormEps ? nrm : kNormEps;
    if (lane == 0) norm[row] = normalize ? (float)nrm : 1.0f;
    for (int d = lane; d < D; d += 32) u[(long long)row * D + d] = (float)((double)to_f(x[(long long)row * D + d]) / den);
}

/* One block per anchor row of the logits S [R, C]: masked log-sum-exp, loss, accuracy, and
 * (need_grad) the row overwritten with G = (softmax - onehot(pos)) / R. */
__global__ void softmax_rows_kernel(int C, long long row_offset, long long block, float *S, float inv_r,
                                    float *loss_i, float *correct, int need_grad) {
    __shared__ float red[256];
    const int i = blockIdx.x;
    float *row = S + (long long)i * C;
    const long long self = row_offset + i, pos = positive_of(self, block);
    float mx = -INFINITY, mneg = -INFINITY;
    for (int k = threadIdx.x; k < C; k += blockDim.x) {
        if (k == self) continue;
        mx = fmaxf(mx, row[k]);
        if (k != pos) mneg = fmaxf(mneg, row[k]);
    }
    auto block_reduce = [&](float v, bool is_max) {
        red[threadIdx.x] = v;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if ((int)threadIdx.x < s)
                red[threadIdx.x] = is_max ? fmaxf(red[threadIdx.x], red[threadIdx.x + s]) : red[threadIdx.x] + red[threadIdx.x + s];
            __syncthreads();
        }
        float r = red[0];
        __syncthreads();
        return r;
    };
    mx = block_reduce(mx, true);
    mneg = block_reduce(mneg, true);
    float sum = 0.f;
    for (int k = threadIdx.x; k < C; k += blockDim.x)
        if (k != self) sum += expf(row[k] - mx);
    sum = block_reduce(sum, false);
    const float lse = mx + logf(sum), xp = row[pos];
    if (threadIdx.x == 0) {
        loss_i[i] = lse - xp;
        correct[i] = xp > mneg ? 1.f : 0.f;
    }
    __syncthreads(); /* every thread has read row[pos] before it is overwritten */
    if (!need_grad) return;
    for (int k = threadIdx.x; k < C; k += blockDim.x)
        row[k] = k == self ? 0.f : (expf(row[k] - lse) - (k == pos ? 1.f : 0.f)) * inv_r;
}

/* One warp per row: out = the gradient g (with respect to the unit row) through the L2 norm. */
template <typename T>
__global__ void project_kernel(int n, int D, const T *x, const float *norm, int normalize, const float *g, T *out) {
    const int v = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (v >= n) return;
    const float *gv = g + (long long)v * D;
    if (!normalize) {
        for (int d = lane; d < D; d += 32) out[(long long)v * D + d] = from_f<T>(gv[d]);
        return;
    }
    double dot = 0.0;
    for (int d = lane; d < D; d += 32) dot += (double)unit(x, v, D, d, norm[v], 1) * (double)gv[d];
    dot = warp_sum_d(dot);
    const double nrm = norm[v];
    for (int d = lane; d < D; d += 32) {
        const double u = unit(x, v, D, d, norm[v], 1);
        out[(long long)v * D + d] =
            from_f<T>(nrm > kNormEps ? (float)(((double)gv[d] - u * dot) / nrm) : (float)((double)gv[d] / kNormEps));
    }
}

struct BaseLayout {
    size_t S, ur, uc, rn, cn, gr, gc, lossi, corr, total;
};

BaseLayout base_layout(long long R, long long C, long long D) {
    BaseLayout L;
    size_t at = 0;
    auto take = [&](size_t bytes) {
        size_t here = at;
        at += align256(bytes);
        return here;
    };
    L.S = take((size_t)R * C * 4);
    L.ur = take((size_t)R * D * 4);
    L.uc = take((size_t)C * D * 4);
    L.rn = take((size_t)R * 4);
    L.cn = take((size_t)C * 4);
    L.gr = take((size_t)R * D * 4);
    L.gc = take((size_t)C * D * 4);
    L.lossi = take((size_t)R * 4);
    L.corr = take((size_t)R * 4);
    L.total = at;
    return L;
}

#define SC_CUBLAS_CHECK(call)                                                                            \
    do {                                                                                                 \
        cublasStatus_t st_ = (call);                                                                     \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                \
            sc_abort_impl(__FILE__, __LINE__, #call, "cuBLAS error %d: %s", (int)st_, cublasGetStatusString(st_)); \
    } while (0)

template <typename T>
void run_cublas(cublasHandle_t h, const sc_contrastive_desc *d, long long R, long long C, long long D, const T *zr,
                const T *zc, float *loss, float *acc, T *d_rows, T *d_cols, char *ws, cudaStream_t stream) {
    const BaseLayout L = base_layout(R, C, D);
    float *S = (float *)(ws + L.S), *ur = (float *)(ws + L.ur), *uc = (float *)(ws + L.uc);
    float *rn = (float *)(ws + L.rn), *cn = (float *)(ws + L.cn), *gr = (float *)(ws + L.gr), *gc = (float *)(ws + L.gc);
    float *lossi = (float *)(ws + L.lossi), *corr = (float *)(ws + L.corr);
    const long long block = d->pair_block > 0 ? d->pair_block : C;
    const int wpb = 8, tpb = 256;
    unit_rows_kernel<T><<<(unsigned)((R + wpb - 1) / wpb), tpb, 0, stream>>>(zr, (int)R, (int)D, d->normalize, rn, ur);
    SC_CUDA_CHECK_LAUNCH();
    unit_rows_kernel<T><<<(unsigned)((C + wpb - 1) / wpb), tpb, 0, stream>>>(zc, (int)C, (int)D, d->normalize, cn, uc);
    SC_CUDA_CHECK_LAUNCH();
    cudaStream_t old;
    SC_CUBLAS_CHECK(cublasGetStream(h, &old));
    SC_CUBLAS_CHECK(cublasSetStream(h, stream));
    const float inv_tau = (float)(1.0 / d->tau), zero = 0.f, one = 1.f;
    /* S [R, C] row-major = ur uc^T / tau, i.e. column-major S^T = uc ur^T */
    SC_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)C, (int)R, (int)D, &inv_tau, uc, (int)D, ur, (int)D,
                                &zero, S, (int)C));
    const int need_grad = d_rows != NULL;
    softmax_rows_kernel<<<(unsigned)R, 256, 0, stream>>>((int)C, d->row_offset, block, S, (float)(1.0 / R), lossi, corr,
                                                         need_grad);
    SC_CUDA_CHECK_LAUNCH();
    if (need_grad) {
        const int combined = d_rows == d_cols;
        /* gr [R, D] = G uc / tau;  gc [C, D] = G^T ur / tau (added onto gr for the single matrix) */
        SC_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)D, (int)R, (int)C, &inv_tau, uc, (int)D, S, (int)C,
                                    &zero, gr, (int)D));
        SC_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, (int)D, (int)C, (int)R, &inv_tau, ur, (int)D, S, (int)C,
                                    combined ? &one : &zero, combined ? gr : gc, (int)D));
        project_kernel<T><<<(unsigned)((R + wpb - 1) / wpb), tpb, 0, stream>>>((int)R, (int)D, zr, rn, d->normalize, gr,
                                                                               d_rows);
        SC_CUDA_CHECK_LAUNCH();
        if (!combined) {
            project_kernel<T><<<(unsigned)((C + wpb - 1) / wpb), tpb, 0, stream>>>((int)C, (int)D, zc, cn, d->normalize,
                                                                                   gc, d_cols);
            SC_CUDA_CHECK_LAUNCH();
        }
    }
    SC_CUBLAS_CHECK(cublasSetStream(h, old));
    reduce_loss_kernel<<<1, 256, 0, stream>>>((int)R, lossi, corr, loss, acc);
    SC_CUDA_CHECK_LAUNCH();
}

} /* namespace */

extern "C" size_t sc_cuda_ntxent_cublas_workspace(int64_t rows, int64_t cols, int64_t dim) {
    return base_layout(rows, cols, dim).total;
}

extern "C" void sc_cuda_ntxent_cublas(cublasHandle_t handle, const sc_contrastive_desc *d, const sc_tensor *z_rows,
                                      const sc_tensor *z_cols, sc_tensor *loss, sc_tensor *accuracy, sc_tensor *d_rows,
                                      sc_tensor *d_cols, sc_tensor *ws, cudaStream_t stream) {
    check_args(d, z_rows, z_cols, loss, d_rows, d_cols);
    SC_CHECK(d->kind == SC_CONTRASTIVE_NTXENT, "the cuBLAS baseline computes NT-Xent only");
    const long long R = z_rows->shape[0], C = z_cols->shape[0], D = z_rows->shape[1];
    const size_t need = base_layout(R, C, D).total;
    SC_CHECK(ws && ws->data && sc_tensor_nbytes(ws) >= need, "ntxent (cuBLAS): workspace of %zu bytes, %zu needed",
             ws ? sc_tensor_nbytes(ws) : (size_t)0, need);
    float *acc = accuracy ? (float *)accuracy->data : NULL;
    if (z_rows->dtype == SC_BF16)
        run_cublas<bf16>(handle, d, R, C, D, (const bf16 *)z_rows->data, (const bf16 *)z_cols->data, (float *)loss->data,
                         acc, d_rows ? (bf16 *)d_rows->data : NULL, d_cols ? (bf16 *)d_cols->data : NULL,
                         (char *)ws->data, stream);
    else
        run_cublas<float>(handle, d, R, C, D, (const float *)z_rows->data, (const float *)z_cols->data,
                          (float *)loss->data, acc, d_rows ? (float *)d_rows->data : NULL,
                          d_cols ? (float *)d_cols->data : NULL, (char *)ws->data, stream);
}
