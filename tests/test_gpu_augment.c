/*
 * test_gpu_augment.c - the device augmentation (kernels/augment.cu) against its CPU reference
 * (sc_aug_finish_crop, what data.augment_on: gpu runs on the CPU backend): the same views for
 * random uint8 crops and keys, at 224 (blur k 23, ImageNet normalisation), 32 (3 -> 1 channel),
 * 28 (gray) and an odd 33, with the recipe's probabilities and with every op forced on.
 * Tolerance: |GPU - CPU| <= 1e-4 / min(std) (float rounding only: every random choice is
 * bit-identical through the shared Philox code). Guard bytes after the output must be
 * untouched. Without a GPU: exit 77 (skipped).
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "data/augment_ops.h"
#include "harness.h"
#include "simclr/backend.h"
#include "simclr/rng.h"

enum { GUARD = 4096 }; /* bytes after the views */

static sc_augment_params params(int S, int oc, int all_on, int normalize) {
    sc_augment_params p;
    memset(&p, 0, sizeof p);
    p.out_size = S;
    p.out_channels = oc;
    p.crop_scale_min = 0.08;
    p.crop_scale_max = 1.0;
    p.crop_ratio_min = 0.75;
    p.crop_ratio_max = 4.0 / 3.0;
    p.flip_p = all_on ? 1.0 : 0.5;
    p.jitter_p = all_on ? 1.0 : 0.8;
    p.brightness = p.contrast = p.saturation = 0.8;
    p.hue = 0.2;
    p.gray_p = all_on ? 1.0 : 0.2;
    p.blur_p = all_on ? 1.0 : 0.5;
    p.blur_sigma_min = 0.1;
    p.blur_sigma_max = 2.0;
    p.normalize = normalize;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++) {
        p.mean[c] = normalize ? mean[c] : 0.0f;
        p.std[c] = normalize ? std[c] : 1.0f;
    }
    return p;
}

static void check_case(int S, int wc, int oc, int B, int all_on, int normalize) {
    const sc_augment_params p = params(S, oc, all_on, normalize);
    const uint64_t seed = 0x5eed + (uint64_t)S;
    const uint32_t epoch = 3;
    const size_t in = (size_t)S * S * wc, out = (size_t)S * S * oc, rows = 2 * (size_t)B;
    uint8_t *crops = malloc(rows * in);
    uint32_t *keys = malloc((size_t)B * sizeof *keys);
    float *want = malloc(rows * out * sizeof(float)), *got = malloc(rows * out * sizeof(float) + GUARD);
    sc_rng r = sc_rng_make(11, (uint32_t)S, 0, 0, SC_RNG_TEST);
    for (size_t i = 0; i < rows * in; i++) crops[i] = (uint8_t)sc_rng_u32(&r);
    for (int j = 0; j < B; j++) keys[j] = sc_rng_u32(&r) % 1000000u;
    /* CPU reference, view by view */
    const sc_image shape = {0, 0, wc, NULL};
    float *scratch = malloc(sc_augment_scratch_floats(&p, &shape) * sizeof(float));
    for (size_t row = 0; row < rows; row++) {
        sc_rng vr = sc_rng_make(seed, epoch, keys[row % B], (uint32_t)(row / B), SC_RNG_AUGMENT);
        sc_aug_finish_crop(&p, crops + row * in, wc, &vr, want + row * out, scratch);
    }
    /* device */
    uint8_t *d_crops;
    uint32_t *d_keys;
    float *d_views;
    void *d_ws;
    const size_t ws = sc_cuda_augment_workspace(&p, B, wc);
    CHECK(cudaMalloc((void **)&d_crops, rows * in) == cudaSuccess);
    CHECK(cudaMalloc((void **)&d_keys, (size_t)B * sizeof *keys) == cudaSuccess);
    CHECK(cudaMalloc((void **)&d_views, rows * out * sizeof(float) + GUARD) == cudaSuccess);
    CHECK(cudaMalloc(&d_ws, ws) == cudaSuccess);
    CHECK(cudaMemcpy(d_crops, crops, rows * in, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(d_keys, keys, (size_t)B * sizeof *keys, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemset(d_views, 0xA5, rows * out * sizeof(float) + GUARD) == cudaSuccess);
    sc_cuda_augment_crops(&p, seed, epoch, d_crops, d_keys, B, wc, d_views, d_ws, 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(cudaMemcpy(got, d_views, rows * out * sizeof(float) + GUARD, cudaMemcpyDeviceToHost) == cudaSuccess);
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < rows * out; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    const double tol = 1e-4 / (normalize ? 0.224 : 1.0);
    CHECKF(worst <= tol, "S %d wc %d oc %d all_on %d: max |GPU - CPU| %.3g at %zu (view %zu) > %.3g", S, wc, oc,
           all_on, worst, at, at / out, tol);
    const uint8_t *guard = (const uint8_t *)got + rows * out * sizeof(float);
    int intact = 1;
    for (int i = 0; i < GUARD; i++) intact &= guard[i] == 0xA5;
    CHECKF(intact, "S %d: the kernel wrote past the views", S);
    cudaFree(d_crops);
    cudaFree(d_keys);
    cudaFree(d_views);
    cudaFree(d_ws);
    free(scratch);
    free(crops);
    free(keys);
    free(want);
    free(got);
}

int main(void) {
    if (sc_cuda_device_count() == 0) sc_test_skip("no CUDA GPU visible");
    for (int all_on = 0; all_on < 2; all_on++) {
        check_case(224, 3, 3, 6, all_on, 1);
        check_case(32, 3, 1, 16, all_on, 0);
        check_case(28, 1, 1, 16, all_on, 0);
        check_case(33, 3, 3, 5, all_on, 0);
    }
    return sc_test_summary();
}
