/*
 * augment.cu - the device half of SimCLR augmentation (data.augment_on: gpu): uint8 crops in,
 * finished float views out, for both views of every sample in one launch.
 *
 * The loader ships crops already resized to S x S with the work channels (wc = 3 unless source
 * and view are both gray); this kernel does what sc_aug_finish (src/data/augment.c) does on the
 * CPU, in the same order and with the same random draws: flip -> colour jitter (p, random
 * order of brightness / contrast / saturation / hue, clip after each) -> grayscale (p) ->
 * Gaussian blur (p, separable, reflect padding) -> clip -> channel conversion -> normalise.
 * Each view's SC_AUG_DRAWS uniforms come from its Philox stream (seed, epoch, key, view,
 * SC_RNG_AUGMENT) through the host/device rng.h, so every random choice (flip, order, factors,
 * sigma) is bit-identical to the CPU path; pixel values agree within float rounding (FMA
 * contraction, the contrast mean summed as a tree in double instead of sequentially):
 * |GPU - CPU| <= 1e-4 / std, checked by tests/test_gpu_augment.c against sc_aug_finish_crop.
 *
 * Layout: one thread block per view (grid 2B: rows 0..B-1 the first views of keys[0..B),
 * rows B..2B-1 the second views), 256 threads striding over the pixels; the view's working
 * image [S, S, wc] and the blur's intermediate [S, S, wc] live in the workspace (global
 * memory), the blur kernel and the reduction scratch in shared memory.
 */
#include "common.cuh"
#include "cuda_kernels.h"
#include "data/augment_ops.h"
#include "simclr/rng.h"

namespace {

constexpr int kThreads = 256;

/* What one view drew: the device copy of the choices sc_aug_finish makes. */
struct view_choice {
    int flipped, jittered, grayscaled, blurred;
    int order[4];
    float factor[3], hue_shift, sigma;
};

/* sc_aug_blur_kernel_size on either side: size/10, made odd, at least 3. */
__host__ __device__ int blur_kernel_size(int size) {
    int k = size / 10;
    if (k % 2 == 0) k++;
    return k < 3 ? 3 : k;
}

__device__ float clip01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

/* Reflect an index into [0, n) as torch "reflect" (the edge is not repeated). */
__device__ int reflect(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

/* sc_aug_finish's parameter derivation from the draws u (same float/double arithmetic). */
__device__ void choose(const sc_augment_params &p, const float *u, view_choice *c) {
    c->flipped = u[SC_AUG_U_FLIP] < p.flip_p;
    const float *uf = u + SC_AUG_U_FACTORS;
    const double amount[3] = {p.brightness, p.contrast, p.saturation};
    for (int i = 0; i < 3; i++) {
        double lo = 1.0 - amount[i] > 0 ? 1.0 - amount[i] : 0.0, hi = 1.0 + amount[i];
        c->factor[i] = (float)(lo + (hi - lo) * uf[i]);
    }
    c->hue_shift = (float)(-p.hue + 2.0 * p.hue * uf[3]);
    /* sc_aug_jitter_order: Fisher-Yates over the 4 ops from 3 draws */
    const float *uo = u + SC_AUG_U_ORDER;
    for (int i = 0; i < 4; i++) c->order[i] = i;
    for (int i = 3; i > 0; i--) {
        int j = (int)(uo[3 - i] * (float)(i + 1));
        if (j > i) j = i;
        int t = c->order[i];
        c->order[i] = c->order[j];
        c->order[j] = t;
    }
    c->jittered = u[SC_AUG_U_JITTER] < p.jitter_p;
    c->grayscaled = u[SC_AUG_U_GRAY] < p.gray_p;
    c->blurred = u[SC_AUG_U_BLUR] < p.blur_p;
    c->sigma = (float)(p.blur_sigma_min + (p.blur_sigma_max - p.blur_sigma_min) * u[SC_AUG_U_SIGMA]);
}

/* torchvision's _rgb2hsv -> rotate -> _hsv2rgb on one pixel, as sc_aug_hue. */
__device__ void hue_pixel(float *px, float shift) {
    const float r = px[0], g = px[1], b = px[2];
    const float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
    const float cr = maxc - minc;
    if (cr == 0.0f) return;
    const float s = cr / maxc, inv = 1.0f / cr;
    const float rc = (maxc - r) * inv, gc = (maxc - g) * inv, bc = (maxc - b) * inv;
    float h;
    if (maxc == r)
        h = bc - gc;
    else if (maxc == g)
        h = 2.0f + rc - bc;
    else
        h = 4.0f + gc - rc;
    h = h * (1.0f / 6.0f) + shift + 2.0f;
    h -= (float)(int)h;
    const float h6 = h * 6.0f;
    const int fi = (int)h6;
    const float fr = h6 - (float)fi;
    const float v = maxc;
    const float pp = clip01(v * (1.0f - s)), q = clip01(v * (1.0f - s * fr)), t = clip01(v * (1.0f - s * (1.0f - fr)));
    switch (fi % 6) {
    case 0: px[0] = v; px[1] = t; px[2] = pp; break;
    case 1: px[0] = q; px[1] = v; px[2] = pp; break;
    case 2: px[0] = pp; px[1] = v; px[2] = t; break;
    case 3: px[0] = pp; px[1] = q; px[2] = v; break;
    case 4: px[0] = t; px[1] = pp; px[2] = v; break;
    default: px[0] = v; px[1] = pp; px[2] = q; break;
    }
}

__device__ float luma(const float *px) { return SC_LUMA_R * px[0] + SC_LUMA_G * px[1] + SC_LUMA_B * px[2]; }

/* The mean luma (or value, wc 1) of work [npix, wc], summed in double; every thread gets it. */
__device__ float block_mean(const float *work, int npix, int wc, double *red) {
    double s = 0.0;
    for (int i = threadIdx.x; i < npix; i += blockDim.x) s += wc == 1 ? work[i] : luma(work + 3 * i);
    red[threadIdx.x] = s;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) red[threadIdx.x] += red[threadIdx.x + half];
        __syncthreads();
    }
    const float mean = (float)(red[0] / (double)npix);
    __syncthreads(); /* red is reused */
    return mean;
}

/* crops [2B, S, S, wc] uint8 -> views [2B, S, S, oc]; ws: [2B] x (work, tmp) [S, S, wc] floats. */
__global__ void __launch_bounds__(kThreads) augment_kernel(sc_augment_params p, uint64_t seed, uint32_t epoch,
                                                           const uint8_t *__restrict__ crops,
                                                           const uint32_t *__restrict__ keys, int samples, int wc,
                                                           float *__restrict__ views, float *__restrict__ ws) {
    extern __shared__ double shared[];
    double *red = shared;                            /* [kThreads] */
    float *kernel = (float *)(shared + kThreads);    /* [k] blur weights */
    __shared__ view_choice c;
    const int row = blockIdx.x, S = p.out_size, oc = p.out_channels, npix = S * S, n = npix * wc;
    const int k = blur_kernel_size(S);
    float *work = ws + (size_t)row * 2 * n, *tmp = work + n;
    const uint8_t *crop = crops + (size_t)row * n;

    if (threadIdx.x == 0) {
        sc_rng r = sc_rng_make(seed, epoch, keys[row % samples], (uint32_t)(row / samples), SC_RNG_AUGMENT);
        float u[SC_AUG_DRAWS];
        for (int i = 0; i < SC_AUG_DRAWS; i++) u[i] = sc_rng_uniform(&r);
        choose(p, u, &c);
        if (c.blurred) { /* sc_aug_blur_kernel */
            const double half = (k - 1) * 0.5;
            double sum = 0;
            for (int i = 0; i < k; i++) {
                double x = (i - half) / c.sigma;
                kernel[i] = (float)exp(-0.5 * x * x);
                sum += kernel[i];
            }
            for (int i = 0; i < k; i++) kernel[i] = (float)(kernel[i] / sum);
        }
    }
    __syncthreads();

    /* load (bytes / 255) and flip */
    const float inv255 = 1.0f / 255.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int ch = i % wc, x = (i / wc) % S, y = i / (wc * S);
        const int sx = c.flipped ? S - 1 - x : x;
        work[i] = (float)crop[((size_t)y * S + sx) * wc + ch] * inv255;
    }
    __syncthreads();

    if (c.jittered)
        for (int o = 0; o < 4; o++) {
            const int op = c.order[o];
            if (op == 0) {
                const float f = c.factor[0];
                for (int i = threadIdx.x; i < n; i += blockDim.x) work[i] = clip01(work[i] * f);
            } else if (op == 1) {
                const float f = c.factor[1];
                const float offset = (1.0f - f) * block_mean(work, npix, wc, red);
                for (int i = threadIdx.x; i < n; i += blockDim.x) work[i] = clip01(f * work[i] + offset);
            } else if (op == 2 && wc == 3) {
                const float f = c.factor[2], g = 1.0f - f;
                for (int i = threadIdx.x; i < npix; i += blockDim.x) {
                    float *px = work + 3 * i;
                    const float gray = g * luma(px);
                    px[0] = clip01(f * px[0] + gray);
                    px[1] = clip01(f * px[1] + gray);
                    px[2] = clip01(f * px[2] + gray);
                }
            } else if (op == 3 && wc == 3) {
                for (int i = threadIdx.x; i < npix; i += blockDim.x) hue_pixel(work + 3 * i, c.hue_shift);
            }
            __syncthreads();
        }

    if (c.grayscaled && wc == 3) {
        for (int i = threadIdx.x; i < npix; i += blockDim.x) {
            float *px = work + 3 * i;
            px[0] = px[1] = px[2] = luma(px);
        }
        __syncthreads();
    }

    if (c.blurred) { /* sc_aug_blur: rows into tmp, then columns back into work */
        const int r = k / 2;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const int ch = i % wc, x = (i / wc) % S, y = i / (wc * S);
            const float *src = work + (size_t)y * S * wc;
            float acc = 0.0f;
            for (int t = 0; t < k; t++) acc += kernel[t] * src[reflect(x + t - r, S) * wc + ch];
            tmp[i] = acc;
        }
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const int xc = i % (S * wc), y = i / (S * wc);
            float acc = 0.0f;
            for (int t = 0; t < k; t++) acc += kernel[t] * tmp[(size_t)reflect(y + t - r, S) * S * wc + xc];
            work[i] = acc;
        }
        __syncthreads();
    }

    /* clip, channels, normalise (finish in augment.c) */
    float *out = views + (size_t)row * npix * oc;
    for (int i = threadIdx.x; i < npix; i += blockDim.x)
        for (int o = 0; o < oc; o++) {
            float v = wc == oc ? clip01(work[i * wc + o])
                               : SC_LUMA_R * clip01(work[3 * i]) + SC_LUMA_G * clip01(work[3 * i + 1]) +
                                     SC_LUMA_B * clip01(work[3 * i + 2]);
            if (p.normalize) {
                const float scale = 1.0f / p.std[o];
                v = v * scale + (-p.mean[o] * scale);
            }
            out[i * oc + o] = v;
        }
}

} // namespace

extern "C" size_t sc_cuda_augment_workspace(const sc_augment_params *p, int samples, int wc) {
    return (size_t)2 * samples * 2 * p->out_size * p->out_size * wc * sizeof(float);
}

extern "C" void sc_cuda_augment_crops(const sc_augment_params *p, uint64_t seed, uint32_t epoch, const uint8_t *crops,
                                      const uint32_t *keys, int samples, int wc, float *views, void *workspace,
                                      cudaStream_t stream) {
    const int k = blur_kernel_size(p->out_size);
    const size_t shmem = kThreads * sizeof(double) + (size_t)k * sizeof(float);
    augment_kernel<<<2 * samples, kThreads, shmem, stream>>>(*p, seed, epoch, crops, keys, samples, wc, views,
                                                              (float *)workspace);
    SC_CUDA_CHECK_LAUNCH();
}
