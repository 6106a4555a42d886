/*
 * eval.cu - the supervised-loss and evaluation ops on the GPU: softmax cross-entropy (the
 * linear probe and fine-tuning) and the weighted kNN vote (the kNN monitor). Semantics:
 * backend.h and the CPU reference (src/backend/cpu/cpu_loss.inc, cpu_knn.c).
 *
 * softmax_xent: one block per row finds the row's FIRST maximum (the CPU's sequential scan:
 * NaNs never win unless column 0 is NaN, which then stays the maximum), sums exp(l - max) in
 * double, writes the row's gradient (softmax - onehot) / N and its loss and hit into scratch;
 * a single block then adds the per-row results in a fixed order. Every sum is a fixed tree, so
 * the results are deterministic, and no atomics on floats are used. A label outside [0, K)
 * cannot be reported without a host synchronisation: its row's loss and gradient become NaN
 * (so the mean loss is NaN) and it counts as a miss.
 *
 * knn_scores: the caller (src/backend/cuda/cuda_eval.c) computes a block of similarities
 * [rows, N] with a GEMM; here one block per query row selects its k neighbours and votes.
 * Floats map to order-preserving uint32 keys (-0 counted as +0, as the CPU compares them), and
 * a radix selection with 8-bit digits (four histogram passes over the row, integer shared
 * atomics only) finds the k-th largest key T and how many T-equal rows are still needed. A
 * final pass walks the row in index order in tiles of the block size: block prefix sums pick
 * every key above T and the lowest-index T-equal ones (ties go to the lower bank index), and
 * thread 0 adds their votes exp(s / temperature) (in double) into per-class sums in shared
 * memory in index order. The CPU adds them best-first, so the two differ only by summation
 * order in double before the final rounding to float. A bank label outside [0, C) makes the
 * query's whole score row NaN (again: no host synchronisation to report it).
 */
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "cuda_kernels.h"

namespace {

constexpr int kThreads = 256; /* both kernels; also the radix histogram's bins (8-bit digits) */
constexpr int kWarps = kThreads / 32;

/* ---- block reductions (fixed trees: deterministic) ------------------------------------- */

/* The sum of v over the block, returned to every thread. red: kWarps doubles of shared memory. */
__device__ double block_sum(double v, double *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double total = 0.0;
    for (int w = 0; w < kWarps; w++) total += red[w];
    __syncthreads(); /* red may be reused */
    return total;
}

/* a beats b as the row maximum: a valid entry (index < k), larger, or equal and earlier. */
__device__ __forceinline__ bool max_better(float av, int ai, float bv, int bi, int k) {
    if (ai >= k) return false;
    if (bi >= k) return true;
    return av > bv || (av == bv && ai < bi);
}

/* ---- softmax cross-entropy ------------------------------------------------------------- */

/* Row i of logits [n, k]: row_loss[i] = logsumexp - l_{i,y} (NaN for a bad label),
 * row_hit[i] = (first maximum == y), dl (may be NULL) = (softmax - onehot) / n. */
__global__ void __launch_bounds__(kThreads) xent_rows(const float *logits, const int32_t *labels, long long n, int k,
                                                      float *dl, double *row_loss, int *row_hit) {
    __shared__ double red[kWarps];
    __shared__ float wv[kWarps];
    __shared__ int wi[kWarps];
    for (long long i = blockIdx.x; i < n; i += gridDim.x) {
        const float *row = logits + i * (long long)k;
        /* first maximum over the non-NaN entries (each thread scans its columns in order) */
        float bv = 0.0f;
        int bi = k;
        for (int c = threadIdx.x; c < k; c += kThreads) {
            const float v = row[c];
            if (!isnan(v) && (bi == k || v > bv)) {
                bv = v;
                bi = c;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_down_sync(0xffffffffu, bv, o);
            const int oi = __shfl_down_sync(0xffffffffu, bi, o);
            if (max_better(ov, oi, bv, bi, k)) {
                bv = ov;
                bi = oi;
            }
        }
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        if (lane == 0) {
            wv[warp] = bv;
            wi[warp] = bi;
        }
        __syncthreads();
        bv = wv[0];
        bi = wi[0];
        for (int w = 1; w < kWarps; w++)
            if (max_better(wv[w], wi[w], bv, bi, k)) {
                bv = wv[w];
                bi = wi[w];
            }
        __syncthreads(); /* wv, wi may be reused by the next row */
        /* the CPU's scan keeps column 0 when it is NaN (nothing compares greater) */
        const int best = (bi == k || isnan(row[0])) ? 0 : bi;
        const double mx = (double)row[best];
        double part = 0.0;
        for (int c = threadIdx.x; c < k; c += kThreads) part += exp((double)row[c] - mx);
        const double lse = mx + log(block_sum(part, red));
        const int32_t y = labels[i];
        const bool ok = y >= 0 && y < k;
        if (threadIdx.x == 0) {
            row_loss[i] = ok ? lse - (double)row[y] : (double)NAN;
            row_hit[i] = ok && best == y;
        }
        if (dl) {
            float *g = dl + i * (long long)k;
            for (int c = threadIdx.x; c < k; c += kThreads) {
                double v = exp((double)row[c] - lse);
                if (c == y) v -= 1.0;
                g[c] = ok ? (float)(v / (double)n) : NAN;
            }
        }
    }
}

/* loss[0] = mean of row_loss, accuracy[0] (may be NULL) = mean of row_hit; one block. */
__global__ void __launch_bounds__(kThreads) xent_mean(const double *row_loss, const int *row_hit, long long n,
                                                      float *loss, float *accuracy) {
    __shared__ double red[kWarps];
    double l = 0.0, h = 0.0;
    for (long long i = threadIdx.x; i < n; i += kThreads) {
        l += row_loss[i];
        h += (double)row_hit[i];
    }
    l = block_sum(l, red);
    h = block_sum(h, red);
    if (threadIdx.x == 0) {
        loss[0] = (float)(l / (double)n);
        if (accuracy) accuracy[0] = (float)(h / (double)n);
    }
}

/* ---- kNN selection and vote -------------------------------------------------------------- */

/* Order-preserving key of a float: a > b  <=>  key(a) > key(b); -0 maps like +0. */
__device__ __forceinline__ uint32_t knn_key(float f) {
    const uint32_t u = __float_as_uint(f == 0.0f ? 0.0f : f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Exclusive prefix count of `flag` over the block (thread order) and the block's total.
 * Every thread of the block must call it. wt: kWarps ints of shared memory. */
__device__ int block_flag_scan(bool flag, int *wt, int *total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const unsigned m = __ballot_sync(0xffffffffu, flag);
    if (lane == 0) wt[warp] = __popc(m);
    __syncthreads();
    int before = 0, all = 0;
    for (int w = 0; w < kWarps; w++) {
        before += w < warp ? wt[w] : 0;
        all += wt[w];
    }
    __syncthreads(); /* wt may be reused */
    *total = all;
    return before + __popc(m & ((1u << lane) - 1u));
}

/* Query row r of sims [rows, n]: its k neighbours vote into scores[r, 0..classes).
 * Dynamic shared memory: classes doubles (the votes). */
__global__ void __launch_bounds__(kThreads) knn_vote(const float *sims, long long n, const int32_t *labels, int k,
                                                     int classes, double temperature, float *scores) {
    extern __shared__ double votes[];
    __shared__ unsigned hist[kThreads];
    __shared__ double tile_val[kThreads];
    __shared__ int tile_lab[kThreads];
    __shared__ int wt[kWarps];
    __shared__ uint32_t s_prefix;
    __shared__ int s_need, s_bad;
    const float *s = sims + (long long)blockIdx.x * n;

    /* radix selection of the k-th largest key, most significant digit first */
    uint32_t prefix = 0, mask = 0;
    int need = k; /* rows still to take among those matching prefix on mask */
    for (int shift = 24; shift >= 0; shift -= 8) {
        hist[threadIdx.x] = 0;
        __syncthreads();
        for (long long j = threadIdx.x; j < n; j += kThreads) {
            const uint32_t key = knn_key(s[j]);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            long long above = 0; /* matching rows with a larger digit */
            for (int d = 255; d >= 0; d--) {
                if (above + hist[d] >= need) {
                    s_prefix = prefix | ((uint32_t)d << shift);
                    s_need = need - (int)above;
                    break;
                }
                above += hist[d];
            }
        }
        __syncthreads();
        prefix = s_prefix;
        need = s_need;
        mask |= 255u << shift;
    }
    const uint32_t thresh = prefix; /* the k-th largest key; take `need` rows equal to it */

    for (int c = threadIdx.x; c < classes; c += kThreads) votes[c] = 0.0;
    if (threadIdx.x == 0) s_bad = 0;
    __syncthreads();
    int taken = 0, eq_seen = 0; /* uniform over the block */
    for (long long base = 0; base < n && taken < k; base += kThreads) {
        const long long j = base + threadIdx.x;
        const uint32_t key = j < n ? knn_key(s[j]) : 0u;
        const bool gt = j < n && key > thresh, eq = j < n && key == thresh;
        int tile_eq, tile_sel;
        const int eq_rank = eq_seen + block_flag_scan(eq, wt, &tile_eq);
        const bool sel = gt || (eq && eq_rank < need);
        const int pos = block_flag_scan(sel, wt, &tile_sel);
        if (sel) {
            tile_val[pos] = exp((double)s[j] / temperature);
            tile_lab[pos] = labels[j];
        }
        __syncthreads();
        if (threadIdx.x == 0)
            for (int p = 0; p < tile_sel; p++) {
                const int y = tile_lab[p];
                if (y >= 0 && y < classes)
                    votes[y] += tile_val[p];
                else
                    s_bad = 1;
            }
        __syncthreads();
        taken += tile_sel;
        eq_seen += tile_eq;
    }
    float *out = scores + (long long)blockIdx.x * classes;
    for (int c = threadIdx.x; c < classes; c += kThreads) out[c] = s_bad ? NAN : (float)votes[c];
}

} // namespace

extern "C" size_t sc_cuda_softmax_xent_scratch_bytes(long long n) {
    return (size_t)n * (sizeof(double) + sizeof(int));
}

extern "C" void sc_cuda_softmax_xent(const float *logits, const int32_t *labels, long long n, int k, float *loss,
                                     float *accuracy, float *dlogits, void *scratch, cudaStream_t stream) {
    double *row_loss = (double *)scratch;
    int *row_hit = (int *)(row_loss + n);
    const unsigned grid = (unsigned)(n < 65535LL * 32 ? n : 65535LL * 32);
    xent_rows<<<grid, kThreads, 0, stream>>>(logits, labels, n, k, dlogits, row_loss, row_hit);
    SC_CUDA_CHECK_LAUNCH();
    xent_mean<<<1, kThreads, 0, stream>>>(row_loss, row_hit, n, loss, accuracy);
    SC_CUDA_CHECK_LAUNCH();
}

extern "C" void sc_cuda_knn_vote(const float *sims, long long rows, long long n, const int32_t *labels, int k,
                                 int classes, double temperature, float *scores, cudaStream_t stream) {
    const size_t smem = (size_t)classes * sizeof(double);
    cudaFuncAttributes attr;
    SC_CUDA_CHECK(cudaFuncGetAttributes(&attr, knn_vote));
    if (smem + attr.sharedSizeBytes > 48 * 1024) { /* beyond the default: opt in, up to what the GPU allows */
        int device = 0, optin = 0;
        SC_CUDA_CHECK(cudaGetDevice(&device));
        SC_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
        SC_CHECK(smem + attr.sharedSizeBytes <= (size_t)optin,
                 "knn_scores on GPU %d: %d classes need %zu bytes of shared memory for the votes, the GPU allows "
                 "%d per block (at most %zu classes)",
                 device, classes, smem + attr.sharedSizeBytes, optin,
                 ((size_t)optin - attr.sharedSizeBytes) / sizeof(double));
        SC_CUDA_CHECK(cudaFuncSetAttribute(knn_vote, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    SC_CHECK(rows >= 1 && rows <= 0x7fffffffLL, "knn_scores: %lld query rows in one block", rows);
    knn_vote<<<(unsigned)rows, kThreads, smem, stream>>>(sims, n, labels, k, classes, temperature, scores);
    SC_CUDA_CHECK_LAUNCH();
}
