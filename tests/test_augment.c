/*
 * test_augment.c - each SimCLR transform against its definition (flip, luma, brightness,
 * contrast, saturation, hue, blur kernel and blur, crop boxes, bilinear resize), then whole
 * views: range, determinism per Philox key, views that differ, records that match the
 * probabilities, the uint8-crop path of device augmentation within its stated tolerance of
 * the float path, normalisation, gray inputs, the eval transform, and the config mapping.
 * Ends with an informational single-core throughput line (not a pass/fail criterion).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "data/augment_ops.h"
#include "harness.h"
#include "simclr/config.h"
#include "simclr/data.h"
#include "simclr/rng.h"

/* SimCLR's ImageNet recipe: every op on, at its paper probability. */
static sc_augment_params simclr_params(int out_size, int out_channels) {
    sc_augment_params p;
    memset(&p, 0, sizeof p);
    p.out_size = out_size;
    p.out_channels = out_channels;
    p.crop_scale_min = 0.08;
    p.crop_scale_max = 1.0;
    p.crop_ratio_min = 3.0 / 4.0;
    p.crop_ratio_max = 4.0 / 3.0;
    p.flip_p = 0.5;
    p.jitter_p = 0.8;
    p.brightness = p.contrast = p.saturation = 0.8;
    p.hue = 0.2;
    p.gray_p = 0.2;
    p.blur_p = 0.5;
    p.blur_sigma_min = 0.1;
    p.blur_sigma_max = 2.0;
    return p;
}

/* A deterministic test image [h, w, c]. */
static void make_image(uint8_t *px, int h, int w, int c, uint32_t seed) {
    sc_rng r = sc_rng_make(seed, 0, 0, 0, SC_RNG_TEST);
    for (int i = 0; i < h * w * c; i++) px[i] = (uint8_t)(sc_rng_u32(&r) & 0xFF);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---- single transforms --------------------------------------------------------------------- */

static void test_flip(void) {
    float img[2 * 3 * 3], orig[2 * 3 * 3];
    for (int i = 0; i < 18; i++) img[i] = orig[i] = (float)i;
    sc_aug_flip(img, 2, 3, 3);
    /* pixel (y, x) now holds pixel (y, 2 - x), channels in order */
    int ok = 1;
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            for (int c = 0; c < 3; c++) ok &= img[(y * 3 + x) * 3 + c] == orig[(y * 3 + 2 - x) * 3 + c];
    CHECK(ok);
    sc_aug_flip(img, 2, 3, 3);
    CHECK(memcmp(img, orig, sizeof img) == 0);
    float g[4] = {1, 2, 3, 4};
    sc_aug_flip(g, 1, 4, 1);
    CHECK(g[0] == 4 && g[1] == 3 && g[2] == 2 && g[3] == 1);
}

static void test_grayscale_luma(void) {
    float px[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    sc_aug_grayscale(px, 3, 3);
    const float want[3] = {0.2989f, 0.5870f, 0.1140f};
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++) CHECK_CLOSE(px[3 * i + c], want[i], 1e-7, 0);
    float one[2] = {0.3f, 0.7f};
    sc_aug_grayscale(one, 2, 1); /* identity on 1 channel */
    CHECK(one[0] == 0.3f && one[1] == 0.7f);
}

static void test_brightness(void) {
    float px[4] = {0.0f, 0.2f, 0.5f, 0.9f};
    sc_aug_brightness(px, 4, 1.5f);
    CHECK_CLOSE(px[0], 0.0, 1e-7, 0);
    CHECK_CLOSE(px[1], 0.3, 1e-7, 0);
    CHECK_CLOSE(px[2], 0.75, 1e-7, 0);
    CHECK(px[3] == 1.0f); /* 1.35 clipped */
    sc_aug_brightness(px, 4, 0.0f);
    CHECK(px[0] == 0 && px[1] == 0 && px[2] == 0 && px[3] == 0);
}

static void test_contrast(void) {
    /* 1 channel: mean 0.5; factor 2 -> 2x - 0.5, clipped */
    float g[4] = {0.2f, 0.4f, 0.6f, 0.8f};
    sc_aug_contrast(g, 4, 1, 2.0f);
    CHECK(g[0] == 0.0f);
    CHECK_CLOSE(g[1], 0.3, 1e-6, 0);
    CHECK_CLOSE(g[2], 0.7, 1e-6, 0);
    CHECK(g[3] == 1.0f);
    /* 3 channels: the mean is that of the luma image, shared by all channels */
    float rgb[6] = {0.8f, 0.4f, 0.2f, 0.2f, 0.6f, 0.4f};
    double l0 = 0.2989 * 0.8 + 0.5870 * 0.4 + 0.1140 * 0.2;
    double l1 = 0.2989 * 0.2 + 0.5870 * 0.6 + 0.1140 * 0.4;
    double m = (l0 + l1) / 2;
    float want[6];
    for (int i = 0; i < 6; i++) want[i] = (float)fmin(1.0, fmax(0.0, 0.5 * rgb[i] + 0.5 * m));
    sc_aug_contrast(rgb, 2, 3, 0.5f);
    for (int i = 0; i < 6; i++) CHECK_CLOSE(rgb[i], want[i], 1e-6, 0);
    /* factor 0: every value becomes the mean */
    float z[3] = {0.1f, 0.5f, 0.9f};
    sc_aug_contrast(z, 3, 1, 0.0f);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(z[i], 0.5, 1e-6, 0);
}

static void test_saturation(void) {
    const float px0[3] = {0.8f, 0.4f, 0.2f};
    const double g = 0.2989 * 0.8 + 0.5870 * 0.4 + 0.1140 * 0.2;
    float px[3];
    memcpy(px, px0, sizeof px);
    sc_aug_saturation(px, 1, 3, 0.0f); /* fully desaturated = gray */
    for (int c = 0; c < 3; c++) CHECK_CLOSE(px[c], g, 1e-6, 0);
    memcpy(px, px0, sizeof px);
    sc_aug_saturation(px, 1, 3, 1.5f);
    for (int c = 0; c < 3; c++) CHECK_CLOSE(px[c], fmin(1, fmax(0, 1.5 * px0[c] - 0.5 * g)), 1e-6, 0);
    memcpy(px, px0, sizeof px);
    sc_aug_saturation(px, 1, 3, 1.0f);
    CHECK(max_abs_diff(px, px0, 3) < 1e-6);
    float one[2] = {0.3f, 0.7f};
    sc_aug_saturation(one, 2, 1, 0.0f); /* identity on 1 channel */
    CHECK(one[0] == 0.3f && one[1] == 0.7f);
}

static void test_hue(void) {
    /* A third of a turn: red -> green -> blue -> red. */
    float px[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    sc_aug_hue(px, 3, 3, 1.0f / 3.0f);
    const float want[9] = {0, 1, 0, 0, 0, 1, 1, 0, 0};
    CHECKF(max_abs_diff(px, want, 9) < 1e-5, "%g %g %g", px[0], px[1], px[2]);
    /* Orange (hue 30 degrees) + 30 degrees = yellow; -60 degrees of it = magenta-red side. */
    float o[3] = {1.0f, 0.5f, 0.0f};
    sc_aug_hue(o, 1, 3, 1.0f / 12.0f);
    const float yellow[3] = {1, 1, 0};
    CHECK(max_abs_diff(o, yellow, 3) < 1e-5);
    float o2[3] = {1.0f, 0.5f, 0.0f};
    sc_aug_hue(o2, 1, 3, -1.0f / 6.0f); /* 30 - 60 = -30 degrees: (1, 0, 0.5) */
    const float rose[3] = {1, 0, 0.5f};
    CHECK(max_abs_diff(o2, rose, 3) < 1e-5);
    /* Shift 0 is the identity; grays never change; +s then -s returns. */
    float img[300], orig[300];
    sc_rng r = sc_rng_make(3, 0, 0, 0, SC_RNG_TEST);
    for (int i = 0; i < 300; i++) img[i] = orig[i] = sc_rng_uniform(&r);
    img[0] = img[1] = img[2] = orig[0] = orig[1] = orig[2] = 0.4f;
    sc_aug_hue(img, 100, 3, 0.0f);
    CHECK(max_abs_diff(img, orig, 300) < 2e-6);
    sc_aug_hue(img, 100, 3, 0.37f);
    CHECK(img[0] == 0.4f && img[1] == 0.4f && img[2] == 0.4f);
    sc_aug_hue(img, 100, 3, -0.37f);
    CHECK(max_abs_diff(img, orig, 300) < 1e-5);
    /* Hue keeps max and min of each pixel (V and S in HSV). */
    sc_aug_hue(img, 100, 3, 0.21f);
    int ok = 1;
    for (int i = 0; i < 100; i++) {
        float a = fmaxf(img[3 * i], fmaxf(img[3 * i + 1], img[3 * i + 2]));
        float b = fmaxf(orig[3 * i], fmaxf(orig[3 * i + 1], orig[3 * i + 2]));
        float c = fminf(img[3 * i], fminf(img[3 * i + 1], img[3 * i + 2]));
        float d = fminf(orig[3 * i], fminf(orig[3 * i + 1], orig[3 * i + 2]));
        ok &= fabsf(a - b) < 1e-5f && fabsf(c - d) < 1e-5f;
    }
    CHECK(ok);
    float one[2] = {0.3f, 0.7f};
    sc_aug_hue(one, 2, 1, 0.3f); /* identity on 1 channel */
    CHECK(one[0] == 0.3f && one[1] == 0.7f);
}

static void test_jitter_order(void) {
    int seen[4][4][4][4] = {{{{0}}}};
    int distinct = 0;
    sc_rng r = sc_rng_make(5, 0, 0, 0, SC_RNG_TEST);
    for (int n = 0; n < 2400; n++) {
        float u[3] = {sc_rng_uniform(&r), sc_rng_uniform(&r), sc_rng_uniform(&r)};
        int o[4];
        sc_aug_jitter_order(u, o);
        int mask = 0;
        for (int i = 0; i < 4; i++) mask |= 1 << o[i];
        CHECK(mask == 15);
        if (!seen[o[0]][o[1]][o[2]][o[3]]++) distinct++;
    }
    CHECK(distinct == 24);
    /* roughly uniform: each permutation ~100 times */
    int lo = 1000, hi = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 4; d++)
                    if (seen[a][b][c][d]) {
                        lo = seen[a][b][c][d] < lo ? seen[a][b][c][d] : lo;
                        hi = seen[a][b][c][d] > hi ? seen[a][b][c][d] : hi;
                    }
    CHECKF(lo > 60 && hi < 140, "min %d max %d", lo, hi);
}

static void test_blur_kernel(void) {
    CHECK(sc_aug_blur_kernel_size(28) == 3);
    CHECK(sc_aug_blur_kernel_size(224) == 23);
    CHECK(sc_aug_blur_kernel_size(32) == 3);
    CHECK(sc_aug_blur_kernel_size(96) == 9);
    CHECK(sc_aug_blur_kernel_size(100) == 11);
    CHECK(sc_aug_blur_kernel_size(8) == 3);
    const float sigmas[3] = {0.1f, 1.0f, 2.0f};
    for (int s = 0; s < 3; s++) {
        for (int k = 3; k <= 23; k += 10) {
            float w[23];
            sc_aug_blur_kernel(sigmas[s], k, w);
            double sum = 0;
            for (int i = 0; i < k; i++) sum += w[i];
            CHECK_CLOSE(sum, 1.0, 1e-6, 0);
            for (int i = 0; i < k / 2; i++) CHECK(w[i] == w[k - 1 - i]);
            for (int i = 0; i < k / 2; i++) CHECK(w[i] <= w[i + 1]);
            /* ratio of neighbours is exp of the Gaussian's log difference */
            double x0 = (double)(k / 2), x1 = x0 - 1;
            double want = exp(-0.5 * (x1 * x1 - x0 * x0) / ((double)sigmas[s] * sigmas[s]));
            if (w[0] > 1e-30f) CHECK_CLOSE(w[1] / w[0], want, 0, 1e-4);
        }
    }
}

static int reflect_ref(int i, int n) {
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
}

static void test_blur(void) {
    enum { H = 9, W = 7, C = 3, K = 5 };
    float kernel[K], img[H * W * C], want[H * W * C], tmp[H * W * C + (W + K) * C];
    sc_aug_blur_kernel(1.3f, K, kernel);
    /* a constant image stays constant */
    for (int i = 0; i < H * W * C; i++) img[i] = 0.6f;
    sc_aug_blur(img, H, W, C, kernel, K, tmp);
    for (int i = 0; i < H * W * C; i++) want[i] = 0.6f;
    CHECK(max_abs_diff(img, want, H * W * C) < 1e-6);
    /* a random image against the direct 2-D convolution with reflect padding */
    sc_rng r = sc_rng_make(9, 0, 0, 0, SC_RNG_TEST);
    float src[H * W * C];
    for (int i = 0; i < H * W * C; i++) img[i] = src[i] = sc_rng_uniform(&r);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int dy = 0; dy < K; dy++)
                    for (int dx = 0; dx < K; dx++)
                        acc += (double)kernel[dy] * kernel[dx] *
                               src[(reflect_ref(y + dy - K / 2, H) * W + reflect_ref(x + dx - K / 2, W)) * C + c];
                want[(y * W + x) * C + c] = (float)acc;
            }
    sc_aug_blur(img, H, W, C, kernel, K, tmp);
    CHECK(max_abs_diff(img, want, H * W * C) < 1e-6);
}

static void test_crop_boxes(void) {
    const int sizes[3][2] = {{28, 28}, {32, 48}, {224, 160}};
    sc_rng r = sc_rng_make(11, 0, 0, 0, SC_RNG_TEST);
    for (int s = 0; s < 3; s++) {
        const int H = sizes[s][0], W = sizes[s][1];
        const double smin = 0.08, smax = 1.0, rmin = 0.75, rmax = 4.0 / 3.0;
        int bad_inside = 0, bad_area = 0, bad_ratio = 0, fallbacks = 0, min_x = W, max_x = -1;
        double mean_frac = 0;
        const int n = 5000;
        for (int i = 0; i < n; i++) {
            float u[SC_AUG_DRAWS];
            for (int k = 0; k < SC_AUG_DRAWS; k++) u[k] = sc_rng_uniform(&r);
            sc_crop_box b = sc_aug_crop_box(u, H, W, smin, smax, rmin, rmax);
            bad_inside += !(b.x >= 0 && b.y >= 0 && b.w >= 1 && b.h >= 1 && b.x + b.w <= W &&
                            b.y + b.h <= H);
            if (b.fallback) {
                fallbacks++;
                continue;
            }
            /* w and h are the rounded sides of a box of the drawn area and ratio */
            double A = (double)H * W;
            bad_area += !((b.w + 0.5) * (b.h + 0.5) >= smin * A && (b.w - 0.5) * (b.h - 0.5) <= smax * A);
            bad_ratio += !((b.w + 0.5) / (b.h - 0.5) >= rmin && (b.w - 0.5) / (b.h + 0.5) <= rmax);
            mean_frac += (double)b.w * b.h / A;
            if (b.w == W / 2) {
                min_x = b.x < min_x ? b.x : min_x;
                max_x = b.x > max_x ? b.x : max_x;
            }
        }
        CHECK(bad_inside == 0);
        CHECKF(bad_area == 0 && bad_ratio == 0, "size %dx%d: area %d ratio %d", H, W, bad_area, bad_ratio);
        CHECKF(fallbacks < n / 50, "%d fallbacks", fallbacks);
        mean_frac /= n - fallbacks;
        /* accepted boxes are biased small (large ones fail to fit), but near U[0.08, 1]'s 0.54 */
        CHECKF(mean_frac > 0.35 && mean_frac < 0.6, "mean area fraction %g", mean_frac);
        /* offsets cover every position: boxes half as wide reach both edges */
        CHECKF(min_x == 0 && max_x == W - W / 2, "x offsets %d..%d", min_x, max_x);
    }
    /* The documented fallback: a 10x100 strip never fits a box of ratio <= 4/3 and area
     * >= 90 %, so the centre crop is used, clamped to ratio 4/3: 13 x 10 at x = 43. */
    float u[SC_AUG_DRAWS];
    for (int k = 0; k < SC_AUG_DRAWS; k++) u[k] = 0.5f;
    sc_crop_box b = sc_aug_crop_box(u, 10, 100, 0.9, 1.0, 0.75, 4.0 / 3.0);
    CHECK(b.fallback && b.w == 13 && b.h == 10 && b.x == 43 && b.y == 0);
    b = sc_aug_crop_box(u, 100, 10, 0.9, 1.0, 0.75, 4.0 / 3.0);
    CHECK(b.fallback && b.w == 10 && b.h == 13 && b.x == 0 && b.y == 43);
    b = sc_aug_crop_box(u, 10, 11, 2.0, 3.0, 0.75, 4.0 / 3.0); /* area > image: whole image */
    CHECK(b.fallback && b.w == 11 && b.h == 10 && b.x == 0 && b.y == 0);
}

static void test_resize(void) {
    /* The whole image at its own size is exact. */
    uint8_t px[5 * 6 * 3];
    make_image(px, 5, 6, 3, 1);
    sc_image im = {5, 6, 3, px};
    float out[6 * 6 * 3], tables[3 * 6];
    sc_crop_box box = {1, 0, 5, 5, 0};
    sc_aug_resize(&im, box, 5, 3, out, tables);
    int ok = 1;
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++)
            for (int c = 0; c < 3; c++)
                ok &= fabsf(out[(y * 5 + x) * 3 + c] - px[(y * 6 + x + 1) * 3 + c] / 255.0f) < 1e-6f;
    CHECK(ok);
    /* 2 -> 4 upsampling, align_corners=False: source x = (i + 0.5) / 2 - 0.5 clamped at 0:
     * 0, 0.25, 0.75, 1 (clamped at the last pixel) -> 0, 0.25, 0.75, 1 of the step. */
    uint8_t two[2] = {0, 200};
    sc_image im2 = {1, 2, 1, two};
    sc_crop_box b2 = {0, 0, 2, 1, 0};
    float o2[16], t2[12];
    sc_aug_resize(&im2, b2, 4, 1, o2, t2);
    const float row[4] = {0, 50 / 255.0f, 150 / 255.0f, 200 / 255.0f};
    for (int y = 0; y < 4; y++) CHECK(max_abs_diff(o2 + 4 * y, row, 4) < 1e-6);
    /* channel conversions: 3 -> 1 takes the luma, 1 -> 3 replicates */
    float gray[5 * 5];
    sc_aug_resize(&im, box, 5, 1, gray, tables);
    ok = 1;
    for (int i = 0; i < 25; i++)
        ok &= fabsf(gray[i] - (0.2989f * out[3 * i] + 0.5870f * out[3 * i + 1] + 0.1140f * out[3 * i + 2])) < 1e-6f;
    CHECK(ok);
    uint8_t g1[4] = {10, 20, 30, 40};
    sc_image im3 = {2, 2, 1, g1};
    sc_crop_box b3 = {0, 0, 2, 2, 0};
    float o3[12], t3[6];
    sc_aug_resize(&im3, b3, 2, 3, o3, t3);
    for (int i = 0; i < 4; i++)
        CHECK(fabsf(o3[3 * i] - g1[i] / 255.0f) < 1e-7f && o3[3 * i + 1] == o3[3 * i] &&
              o3[3 * i + 2] == o3[3 * i]);
}

/* ---- whole views --------------------------------------------------------------------------- */

static void test_views_in_range_and_deterministic(void) {
    const int cases[3][3] = {{28, 1, 1}, {32, 3, 3}, {28, 1, 3}}; /* size, in ch, out ch */
    for (int t = 0; t < 3; t++) {
        const int S = cases[t][0], ic = cases[t][1], oc = cases[t][2];
        uint8_t px[32 * 32 * 3];
        make_image(px, S, S, ic, 7 + t);
        sc_image im = {S, S, ic, px};
        sc_augment_params p = simclr_params(S, oc);
        p.jitter_p = p.gray_p = p.blur_p = 1.0; /* every op, to exercise the ranges */
        float scratch[20000], a[32 * 32 * 3], b[32 * 32 * 3];
        CHECK(sc_augment_scratch_floats(&p, &im) <= 20000);
        const size_t n = (size_t)S * S * oc;
        int out_of_range = 0, same_as_other = 0, replicated = 1;
        for (int s = 0; s < 300; s++) {
            p.gray_p = s % 2 ? 1.0 : 0.0;
            sc_rng r0 = sc_rng_make(1, 2, (uint32_t)s, 0, SC_RNG_AUGMENT);
            sc_rng r1 = sc_rng_make(1, 2, (uint32_t)s, 1, SC_RNG_AUGMENT);
            sc_augment_record ra, rb;
            sc_augment_view(&p, &im, &r0, a, scratch, &ra);
            sc_augment_view(&p, &im, &r1, b, scratch, &rb);
            for (size_t i = 0; i < n; i++) out_of_range += !(a[i] >= 0.0f && a[i] <= 1.0f);
            same_as_other += memcmp(a, b, n * sizeof *a) == 0;
            if (ic == 1 && oc == 3)
                for (size_t i = 0; i < n; i += 3) replicated &= a[i] == a[i + 1] && a[i] == a[i + 2];
            /* the same key again: the same bytes and the same record */
            sc_rng again = sc_rng_make(1, 2, (uint32_t)s, 0, SC_RNG_AUGMENT);
            sc_augment_record rc;
            sc_augment_view(&p, &im, &again, b, scratch, &rc);
            CHECK(memcmp(a, b, n * sizeof *a) == 0);
            CHECK(memcmp(&ra, &rc, sizeof ra) == 0);
        }
        CHECKF(out_of_range == 0, "case %d: %d values outside [0, 1]", t, out_of_range);
        CHECKF(same_as_other == 0, "case %d: %d samples with equal views", t, same_as_other);
        CHECK(replicated);
    }
}

/* data.augment_on: gpu ships the resized crop as uint8 and finishes it on the device; its CPU
 * reference (sc_augment_crop + sc_aug_finish_crop) differs from the float path only by the
 * rounding of the crop to 1/255 steps (at most 0.5/255), amplified by the jitter factors
 * (<= 1.8 each) and, near gray, the hue rotation: stated tolerance max 10/255, mean 0.5/255;
 * every random choice is identical. */
static void test_crops_path_matches_views(void) {
    const int W = 90, H = 70;
    uint8_t px[90 * 70 * 3];
    make_image(px, H, W, 3, 5);
    sc_image im = {H, W, 3, px};
    for (int t = 0; t < 2; t++) {
        const int S = t ? 64 : 32, oc = t ? 3 : 1;
        sc_augment_params p = simclr_params(S, oc);
        static float scratch[200000], a[64 * 64 * 3], b[64 * 64 * 3];
        static uint8_t crop[64 * 64 * 3];
        CHECK(sc_augment_scratch_floats(&p, &im) <= 200000);
        const size_t n = (size_t)S * S * oc;
        double worst = 0, sum = 0;
        for (int s = 0; s < 200; s++) {
            sc_rng r0 = sc_rng_make(3, 1, (uint32_t)s, (uint32_t)(s % 2), SC_RNG_AUGMENT);
            sc_rng r1 = r0, r2 = r0;
            sc_augment_view(&p, &im, &r0, a, scratch, NULL);
            sc_augment_crop(&p, &im, &r1, crop, scratch);
            sc_aug_finish_crop(&p, crop, 3, &r2, b, scratch);
            worst = fmax(worst, max_abs_diff(a, b, n));
            for (size_t i = 0; i < n; i++) sum += fabs((double)a[i] - b[i]);
        }
        const double mean = sum / (200.0 * (double)n);
        CHECKF(worst <= 10.0 / 255 && mean <= 0.5 / 255, "S %d: crops path differs from views by max %.4f, mean %.5f", S, worst,
               mean);
        printf("info: S %d, %d channels: uint8 crops path vs float views: max %.4f, mean %.5f\n", S, oc, worst, mean);
    }
}

static void test_records_follow_probabilities(void) {
    uint8_t px[32 * 32 * 3];
    make_image(px, 32, 32, 3, 3);
    sc_image im = {32, 32, 3, px};
    sc_augment_params p = simclr_params(32, 3);
    float scratch[20000], out[32 * 32 * 3];
    int flips = 0, jitters = 0, grays = 0, blurs = 0, bad = 0;
    const int n = 4000;
    for (int s = 0; s < n; s++) {
        sc_rng r = sc_rng_make(4, 0, (uint32_t)s, 0, SC_RNG_AUGMENT);
        sc_augment_record rec;
        sc_augment_view(&p, &im, &r, out, scratch, &rec);
        flips += rec.flipped;
        jitters += rec.jittered;
        grays += rec.grayscaled;
        blurs += rec.blurred;
        bad += !(rec.brightness_factor >= 0.2f && rec.brightness_factor <= 1.8f);
        bad += !(rec.contrast_factor >= 0.2f && rec.contrast_factor <= 1.8f);
        bad += !(rec.saturation_factor >= 0.2f && rec.saturation_factor <= 1.8f);
        bad += !(rec.hue_shift >= -0.2f && rec.hue_shift <= 0.2f);
        bad += !(rec.blur_sigma >= 0.1f && rec.blur_sigma <= 2.0f);
        bad += !(rec.crop_x >= 0 && rec.crop_x + rec.crop_w <= 32 && rec.crop_y + rec.crop_h <= 32);
        if (rec.grayscaled) /* gray is the last colour op: channels are equal */
            for (int i = 0; i < 32 * 32 * 3; i += 3) bad += !(out[i] == out[i + 1] && out[i] == out[i + 2]);
    }
    CHECK(bad == 0);
    /* binomial: 4 sigma at n = 4000 is under 0.032 */
    CHECK_CLOSE(flips / (double)n, 0.5, 0.032, 0);
    CHECK_CLOSE(jitters / (double)n, 0.8, 0.026, 0);
    CHECK_CLOSE(grays / (double)n, 0.2, 0.026, 0);
    CHECK_CLOSE(blurs / (double)n, 0.5, 0.032, 0);
}

static void test_ops_off_is_plain_resize(void) {
    /* With every probability 0 and a crop of the whole image, the view is the eval view. */
    uint8_t px[28 * 28];
    make_image(px, 28, 28, 1, 5);
    sc_image im = {28, 28, 1, px};
    sc_augment_params p = simclr_params(28, 1);
    p.crop_scale_min = p.crop_scale_max = 1.0;
    p.crop_ratio_min = p.crop_ratio_max = 1.0;
    p.flip_p = p.jitter_p = p.gray_p = p.blur_p = 0.0;
    float scratch[20000], a[784], b[784];
    sc_rng r = sc_rng_make(1, 0, 0, 0, SC_RNG_AUGMENT);
    sc_augment_view(&p, &im, &r, a, scratch, NULL);
    sc_augment_eval(&p, &im, b, scratch);
    CHECK(memcmp(a, b, sizeof a) == 0);
    int ok = 1;
    for (int i = 0; i < 784; i++) ok &= fabsf(b[i] - px[i] / 255.0f) < 1e-6f;
    CHECK(ok);
    /* flip only, always: the mirrored image */
    p.flip_p = 1.0;
    r = sc_rng_make(1, 0, 0, 0, SC_RNG_AUGMENT);
    sc_augment_view(&p, &im, &r, a, scratch, NULL);
    sc_aug_flip(b, 28, 28, 1);
    CHECK(memcmp(a, b, sizeof a) == 0);
}

static void test_normalise_and_eval(void) {
    uint8_t px[32 * 32 * 3];
    make_image(px, 32, 32, 3, 8);
    sc_image im = {32, 32, 3, px};
    sc_augment_params p = simclr_params(24, 3), q;
    q = p;
    q.normalize = 1;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(q.mean, mean, sizeof mean);
    memcpy(q.std, std, sizeof std);
    float scratch[20000], a[24 * 24 * 3], b[24 * 24 * 3];
    sc_rng r0 = sc_rng_make(6, 1, 2, 0, SC_RNG_AUGMENT), r1 = r0;
    sc_augment_view(&p, &im, &r0, a, scratch, NULL);
    sc_augment_view(&q, &im, &r1, b, scratch, NULL);
    int ok = 1;
    for (int i = 0; i < 24 * 24 * 3; i++) ok &= fabsf(b[i] - (a[i] - mean[i % 3]) / std[i % 3]) < 1e-5f;
    CHECK(ok);
    /* eval: 32 -> 24 bilinear of the whole image, deterministic, normalised */
    sc_augment_eval(&q, &im, a, scratch);
    sc_augment_eval(&q, &im, b, scratch);
    CHECK(memcmp(a, b, sizeof a) == 0);
    float plain[24 * 24 * 3], tables[72];
    sc_crop_box whole = {0, 0, 32, 32, 0};
    sc_aug_resize(&im, whole, 24, 3, plain, tables);
    ok = 1;
    for (int i = 0; i < 24 * 24 * 3; i++) ok &= fabsf(a[i] - (plain[i] - mean[i % 3]) / std[i % 3]) < 1e-5f;
    CHECK(ok);
}

static void test_params_from_config(void) {
    sc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.augment.crop_scale_min = 0.2;
    cfg.augment.crop_scale_max = 1.0;
    cfg.augment.crop_ratio_min = 0.75;
    cfg.augment.crop_ratio_max = 4.0 / 3.0;
    cfg.augment.flip_p = 0.5;
    cfg.augment.jitter_p = 0.8;
    cfg.augment.jitter_strength = 0.5;
    cfg.augment.gray_p = 0.2;
    cfg.augment.blur_p = 0.0;
    cfg.augment.blur_sigma_min = 0.1;
    cfg.augment.blur_sigma_max = 2.0;
    sc_dataset ds; /* resident, 28x28x1 */
    memset(&ds, 0, sizeof ds);
    snprintf(ds.name, sizeof ds.name, "gray28");
    ds.height = ds.width = 28;
    ds.channels = 1;
    sc_augment_params p;
    CHECK(sc_augment_params_from_config(&cfg, &ds, &p) == SC_OK);
    CHECK(p.out_size == 28 && p.out_channels == 1 && !p.normalize);
    CHECK_CLOSE(p.brightness, 0.4, 1e-12, 0);
    CHECK_CLOSE(p.contrast, 0.4, 1e-12, 0);
    CHECK_CLOSE(p.saturation, 0.4, 1e-12, 0);
    CHECK_CLOSE(p.hue, 0.1, 1e-12, 0);
    CHECK(p.crop_scale_min == 0.2 && p.flip_p == 0.5 && p.jitter_p == 0.8 && p.gray_p == 0.2);
    CHECK(sc_augment_params_check(&p, 1) == SC_OK);
    cfg.data.image_size = 32;
    cfg.data.channels = 3;
    cfg.data.mean[0] = 0.5;
    cfg.data.mean_count = 1;
    cfg.data.std[0] = 0.2;
    cfg.data.std[1] = 0.3;
    cfg.data.std[2] = 0.4;
    cfg.data.std_count = 3;
    CHECK(sc_augment_params_from_config(&cfg, &ds, &p) == SC_OK);
    CHECK(p.out_size == 32 && p.out_channels == 3 && p.normalize);
    CHECK(p.mean[0] == 0.5f && p.mean[1] == 0.5f && p.mean[2] == 0.5f);
    CHECK(p.std[0] == 0.2f && p.std[1] == 0.3f && p.std[2] == 0.4f);
    /* checks name the config key */
    cfg.data.std[1] = 0.0;
    CHECK(sc_augment_params_from_config(&cfg, &ds, &p) == SC_OK);
    CHECK(sc_augment_params_check(&p, 1) == SC_ERR_CONFIG && strstr(sc_last_error(), "data.mean/std"));
    cfg.data.std[1] = 0.3;
    cfg.augment.crop_scale_min = 0.0;
    CHECK(sc_augment_params_from_config(&cfg, &ds, &p) == SC_OK);
    CHECK(sc_augment_params_check(&p, 1) == SC_ERR_CONFIG && strstr(sc_last_error(), "augment.crop_scale"));
    cfg.augment.crop_scale_min = 0.2;
    cfg.augment.gray_p = 1.5;
    CHECK(sc_augment_params_from_config(&cfg, &ds, &p) == SC_OK);
    CHECK(sc_augment_params_check(&p, 1) == SC_ERR_CONFIG && strstr(sc_last_error(), "augment.gray_p"));
    cfg.augment.gray_p = 0.2;
    CHECK(sc_augment_params_from_config(&cfg, &ds, &p) == SC_OK);
    CHECK(sc_augment_params_check(&p, 4) == SC_ERR_DATA);
    /* images of varying size (an encoded dataset: only the index pointer matters here) need
     * data.image_size; the stored size of a resident dataset is never consulted then */
    ds.index = (sc_file_index *)&ds;
    ds.height = ds.width = 0;
    cfg.data.image_size = 0;
    CHECK(sc_augment_params_from_config(&cfg, &ds, &p) == SC_ERR_CONFIG &&
          strstr(sc_last_error(), "data.image_size is required for gray28"));
    cfg.data.image_size = 224;
    CHECK(sc_augment_params_from_config(&cfg, &ds, &p) == SC_OK && p.out_size == 224);
}

/* Single-core views per second of the full recipe; printed, not checked. */
static double views_per_second(int size, int in_c, const sc_augment_params *p) {
    enum { N_IMAGES = 64 };
    static uint8_t px[N_IMAGES * 32 * 32 * 3];
    static float scratch[20000], out[32 * 32 * 3];
    make_image(px, N_IMAGES * size, size, in_c, 2);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n = 0;
    double elapsed = 0;
    while (elapsed < 0.4) {
        for (int i = 0; i < 512; i++, n++) {
            sc_image im = {size, size, in_c, px + (size_t)(n % N_IMAGES) * size * size * in_c};
            sc_rng r = sc_rng_make(1, 0, (uint32_t)n, 0, SC_RNG_AUGMENT);
            sc_augment_view(p, &im, &r, out, scratch, NULL);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        elapsed = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    return (double)n / elapsed;
}

static void test_throughput_info(void) {
    sc_augment_params fm = simclr_params(28, 1); /* configs/fashion_mnist.yaml: s 0.5, no blur */
    fm.crop_scale_min = 0.2;
    fm.brightness = fm.contrast = fm.saturation = 0.4;
    fm.hue = 0.1;
    fm.blur_p = 0.0;
    sc_augment_params c10 = simclr_params(32, 3);
    printf("  info: %.0f views/s on one core for 28x28x1 (Fashion-MNIST recipe)\n",
           views_per_second(28, 1, &fm));
    printf("  info: %.0f views/s on one core for 32x32x3 (full recipe with blur p 0.5)\n",
           views_per_second(32, 3, &c10));
}

int main(void) {
    SC_RUN(test_flip);
    SC_RUN(test_grayscale_luma);
    SC_RUN(test_brightness);
    SC_RUN(test_contrast);
    SC_RUN(test_saturation);
    SC_RUN(test_hue);
    SC_RUN(test_jitter_order);
    SC_RUN(test_blur_kernel);
    SC_RUN(test_blur);
    SC_RUN(test_crop_boxes);
    SC_RUN(test_resize);
    SC_RUN(test_views_in_range_and_deterministic);
    SC_RUN(test_crops_path_matches_views);
    SC_RUN(test_records_follow_probabilities);
    SC_RUN(test_ops_off_is_plain_resize);
    SC_RUN(test_normalise_and_eval);
    SC_RUN(test_params_from_config);
    SC_RUN(test_throughput_info);
    return sc_test_summary();
}
