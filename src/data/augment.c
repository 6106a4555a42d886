/*
 * augment.c - the SimCLR view transform on the CPU.
 *
 * One view: random resized crop -> horizontal flip -> colour jitter (brightness, contrast,
 * saturation, hue in a random order, each clipped to [0, 1]) with probability jitter_p ->
 * grayscale -> Gaussian blur -> clip -> normalise. Semantics follow torchvision
 * (RandomResizedCrop with bilinear resize, ColorJitter, RandomGrayscale, GaussianBlur), the
 * transforms the PyTorch SimCLR implementations use; REFERENCE.md 1.3 lists where the official
 * TF code differs.
 *
 * The view's random numbers are drawn up front in the fixed layout of augment_ops.h, so the
 * output depends only on the Philox key, never on which thread ran it. A view is four stages:
 * draws -> crop box -> resize -> finish (everything after the resize). Encoded images run the
 * same stages with a region decoded for the box (sc_augment_view_encoded below); the device
 * path ships the resized crop as uint8 and runs the finish stage on the backend
 * (augment_crops), whose CPU reference is sc_aug_finish_crop below.
 *
 * Channels: the work happens in 3 channels when either the source or the view has 3 (a gray
 * source is replicated first), else in 1 channel, where saturation, hue and grayscale are
 * identities. A 3-channel source with a 1-channel view is converted to luma at the end.
 * Every op is a plain loop over a float buffer: no per-pixel function calls.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "data/augment_ops.h"
#include "data/decode.h"
#include "simclr/data.h"
#include "simclr/status.h"

static inline float clip01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

/* ---- parameters -------------------------------------------------------------------------- */

sc_status sc_augment_params_from_config(const sc_config *cfg, const sc_dataset *ds, sc_augment_params *out) {
    sc_augment_params p;
    memset(&p, 0, sizeof p);
    if (cfg->data.image_size > 0) {
        p.out_size = cfg->data.image_size;
    } else if (sc_dataset_resident(ds)) {
        p.out_size = ds->height;
    } else {
        return sc_errorf(SC_ERR_CONFIG,
                         "data.image_size is required for %s: its images differ in size, so the side of "
                         "the augmented views must be given (e.g. 224)",
                         ds->name);
    }
    p.out_channels = cfg->data.channels > 0 ? cfg->data.channels : ds->channels;
    p.crop_scale_min = cfg->augment.crop_scale_min;
    p.crop_scale_max = cfg->augment.crop_scale_max;
    p.crop_ratio_min = cfg->augment.crop_ratio_min;
    p.crop_ratio_max = cfg->augment.crop_ratio_max;
    p.flip_p = cfg->augment.flip_p;
    p.jitter_p = cfg->augment.jitter_p;
    double s = cfg->augment.jitter_strength;
    p.brightness = 0.8 * s;
    p.contrast = 0.8 * s;
    p.saturation = 0.8 * s;
    p.hue = 0.2 * s;
    p.gray_p = cfg->augment.gray_p;
    p.blur_p = cfg->augment.blur_p;
    p.blur_sigma_min = cfg->augment.blur_sigma_min;
    p.blur_sigma_max = cfg->augment.blur_sigma_max;
    /* Normalise when either list is given; a missing mean is 0, a missing std 1, and a
     * single value applies to every channel. */
    int nm = cfg->data.mean_count, ns = cfg->data.std_count;
    p.normalize = nm > 0 || ns > 0;
    for (int c = 0; c < 3; c++) {
        p.mean[c] = nm > 0 ? (float)cfg->data.mean[c < nm ? c : nm - 1] : 0.0f;
        p.std[c] = ns > 0 ? (float)cfg->data.std[c < ns ? c : ns - 1] : 1.0f;
    }
    *out = p;
    return SC_OK;
}

sc_status sc_augment_params_check(const sc_augment_params *p, int in_channels) {
    if (in_channels != 1 && in_channels != 3)
        return sc_errorf(SC_ERR_DATA, "images have %d channels; augmentation supports 1 or 3",
                         in_channels);
    if (p->out_size < 1 || p->out_size > 16384)
        return sc_errorf(SC_ERR_CONFIG, "data.image_size: %d is outside 1..16384", p->out_size);
    if (p->out_channels != 1 && p->out_channels != 3)
        return sc_errorf(SC_ERR_CONFIG, "data.channels: %d, expected 1 or 3", p->out_channels);
    if (!(p->crop_scale_min > 0 && p->crop_scale_min <= p->crop_scale_max))
        return sc_errorf(SC_ERR_CONFIG,
                         "augment.crop_scale_min/max: need 0 < min <= max, got %g and %g",
                         p->crop_scale_min, p->crop_scale_max);
    if (!(p->crop_ratio_min > 0 && p->crop_ratio_min <= p->crop_ratio_max))
        return sc_errorf(SC_ERR_CONFIG,
                         "augment.crop_ratio_min/max: need 0 < min <= max, got %g and %g",
                         p->crop_ratio_min, p->crop_ratio_max);
    const struct { const char *key; double v; } probs[] = {
        {"augment.flip_p", p->flip_p}, {"augment.jitter_p", p->jitter_p},
        {"augment.gray_p", p->gray_p}, {"augment.blur_p", p->blur_p}};
    for (size_t i = 0; i < sizeof probs / sizeof probs[0]; i++)
        if (!(probs[i].v >= 0 && probs[i].v <= 1))
            return sc_errorf(SC_ERR_CONFIG, "%s: %g is not a probability in [0, 1]", probs[i].key,
                             probs[i].v);
    if (!(p->brightness >= 0 && p->contrast >= 0 && p->saturation >= 0 && p->hue >= 0 &&
          p->hue <= 0.5))
        return sc_errorf(SC_ERR_CONFIG,
                         "augment.jitter_strength: gives brightness %g, contrast %g, saturation "
                         "%g, hue %g; need >= 0 and hue <= 0.5",
                         p->brightness, p->contrast, p->saturation, p->hue);
    if (p->blur_p > 0 && !(p->blur_sigma_min > 0 && p->blur_sigma_min <= p->blur_sigma_max))
        return sc_errorf(SC_ERR_CONFIG,
                         "augment.blur_sigma_min/max: need 0 < min <= max, got %g and %g",
                         p->blur_sigma_min, p->blur_sigma_max);
    if (p->normalize)
        for (int c = 0; c < p->out_channels; c++)
            if (!(p->std[c] > 0 && isfinite(p->std[c]) && isfinite(p->mean[c])))
                return sc_errorf(SC_ERR_CONFIG,
                                 "data.mean/std: channel %d has mean %g, std %g; std must be > 0",
                                 c, p->mean[c], p->std[c]);
    return SC_OK;
}

/* ---- crop and resize ----------------------------------------------------------------------- */

sc_crop_box sc_aug_crop_box(const float *u, int height, int width, double scale_min,
                            double scale_max, double ratio_min, double ratio_max) {
    sc_crop_box b = {0, 0, width, height, 0};
    double area = (double)height * width;
    double log_lo = log(ratio_min), log_hi = log(ratio_max);
    for (int t = 0; t < SC_AUG_CROP_TRIES; t++) {
        double target = area * (scale_min + (scale_max - scale_min) * u[SC_AUG_U_CROP + 2 * t]);
        double ratio = exp(log_lo + (log_hi - log_lo) * u[SC_AUG_U_CROP + 2 * t + 1]);
        /* Python's round(): halves go to even, as nearbyint in the default rounding mode. */
        int w = (int)nearbyint(sqrt(target * ratio));
        int h = (int)nearbyint(sqrt(target / ratio));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            /* randint(0, height - h + 1): a uniform integer in [0, height - h]. */
            int y = (int)(u[SC_AUG_U_CROP_Y] * (float)(height - h + 1));
            int x = (int)(u[SC_AUG_U_CROP_X] * (float)(width - w + 1));
            b.y = y > height - h ? height - h : y;
            b.x = x > width - w ? width - w : x;
            b.w = w;
            b.h = h;
            return b;
        }
    }
    /* Fallback: a centre crop with the aspect ratio clamped into [ratio_min, ratio_max]. */
    double in_ratio = (double)width / height;
    if (in_ratio < ratio_min) {
        b.w = width;
        b.h = (int)nearbyint(width / ratio_min);
    } else if (in_ratio > ratio_max) {
        b.h = height;
        b.w = (int)nearbyint(height * ratio_max);
    }
    b.y = (height - b.h) / 2;
    b.x = (width - b.w) / 2;
    b.fallback = 1;
    return b;
}

/* The two source indices (relative to the region) and the weight of the second for output
 * index o along one axis of a box of `len` pixels starting at `start`, resampled to `out`
 * pixels. At scale 8/8 this is exactly torch's align_corners=False sampling inside the box;
 * otherwise the same full-resolution position is mapped into the scaled image. */
static inline void axis_point(int o, int out, int start, int len, int scale_m, int scaled_len,
                              int region_start, int *i0, int *i1, float *w) {
    double s = (o + 0.5) * ((double)len / out) - 0.5;
    if (s < 0) s = 0;
    if (scale_m == 8) {
        int a = (int)s;
        *i0 = start + a - region_start;
        *i1 = start + a + (a < len - 1) - region_start;
        *w = (float)(s - a);
        return;
    }
    if (s > len - 1) s = len - 1;
    double v = (start + s + 0.5) * (scale_m / 8.0) - 0.5;
    if (v < 0) v = 0;
    if (v > scaled_len - 1) v = scaled_len - 1;
    int a = (int)v;
    *i0 = a - region_start;
    *i1 = a + (a < scaled_len - 1) - region_start;
    *w = (float)(v - a);
}

/* Bilinear resampling of `box` of `src` into dst (floats / 255) or dst8 (rounded bytes). */
static inline void resize_impl(const sc_region *src, sc_crop_box box, int out_size, int out_channels,
                               float *dst, uint8_t *dst8, float *tables) {
    const int S = out_size, sc = src->img.channels, oc = out_channels, m = src->scale_m;
    const float inv255 = 1.0f / 255.0f;
    /* tables: x0 [S], x1 [S] (byte offsets of the two source columns, exact small integers
     * kept as floats), wx [S] (weight of x1). */
    float *tx0 = tables, *tx1 = tables + S, *twx = tables + 2 * S;
    for (int ox = 0; ox < S; ox++) {
        int x0, x1;
        axis_point(ox, S, box.x, box.w, m, src->scaled_w, src->x0, &x0, &x1, &twx[ox]);
        SC_CHECK(x0 >= 0 && x1 < src->img.width, "resize reads column %d..%d of a %d-wide region", x0, x1,
                 src->img.width);
        tx0[ox] = (float)(x0 * sc);
        tx1[ox] = (float)(x1 * sc);
    }
    const size_t stride = (size_t)src->img.width * sc;
    for (int oy = 0; oy < S; oy++) {
        int y0, y1;
        float wy;
        axis_point(oy, S, box.y, box.h, m, src->scaled_h, src->y0, &y0, &y1, &wy);
        SC_CHECK(y0 >= 0 && y1 < src->img.height, "resize reads row %d..%d of a %d-high region", y0, y1,
                 src->img.height);
        const uint8_t *r0 = src->img.pixels + (size_t)y0 * stride;
        const uint8_t *r1 = src->img.pixels + (size_t)y1 * stride;
        float *d = dst ? dst + (size_t)oy * S * oc : NULL;
        uint8_t *d8 = dst8 ? dst8 + (size_t)oy * S * oc : NULL;
        if (sc == 1) {
            for (int ox = 0; ox < S; ox++) {
                const int a = (int)tx0[ox], b = (int)tx1[ox];
                const float wx = twx[ox];
                float top = r0[a] + wx * (float)(r0[b] - r0[a]);
                float bot = r1[a] + wx * (float)(r1[b] - r1[a]);
                float t = top + wy * (bot - top);
                if (d8) {
                    uint8_t q = (uint8_t)(t + 0.5f);
                    if (oc == 1) {
                        d8[ox] = q;
                    } else {
                        d8[3 * ox] = d8[3 * ox + 1] = d8[3 * ox + 2] = q;
                    }
                    continue;
                }
                float v = t * inv255;
                if (oc == 1) {
                    d[ox] = v;
                } else {
                    d[3 * ox] = d[3 * ox + 1] = d[3 * ox + 2] = v;
                }
            }
        } else {
            for (int ox = 0; ox < S; ox++) {
                const int a = (int)tx0[ox], b = (int)tx1[ox];
                const float wx = twx[ox];
                float v[3];
                for (int c = 0; c < 3; c++) {
                    float top = r0[a + c] + wx * (float)(r0[b + c] - r0[a + c]);
                    float bot = r1[a + c] + wx * (float)(r1[b + c] - r1[a + c]);
                    v[c] = top + wy * (bot - top);
                }
                if (d8) {
                    SC_CHECK(oc == 3, "uint8 crops keep the work channels");
                    for (int c = 0; c < 3; c++) d8[3 * ox + c] = (uint8_t)(v[c] + 0.5f);
                    continue;
                }
                for (int c = 0; c < 3; c++) v[c] *= inv255;
                if (oc == 3) {
                    d[3 * ox] = v[0];
                    d[3 * ox + 1] = v[1];
                    d[3 * ox + 2] = v[2];
                } else {
                    d[ox] = SC_LUMA_R * v[0] + SC_LUMA_G * v[1] + SC_LUMA_B * v[2];
                }
            }
        }
    }
}

void sc_aug_resize(const sc_image *src, sc_crop_box box, int out_size, int out_channels,
                   float *dst, float *tables) {
    sc_region whole = {*src, 0, 0, src->width, src->height, 8};
    resize_impl(&whole, box, out_size, out_channels, dst, NULL, tables);
}

void sc_aug_resize_region(const sc_region *src, sc_crop_box box, int out_size, int out_channels,
                          float *dst, uint8_t *dst8, float *tables) {
    SC_CHECK((dst == NULL) != (dst8 == NULL), "exactly one output of sc_aug_resize_region");
    resize_impl(src, box, out_size, out_channels, dst, dst8, tables);
}

/* ---- flip and colour ----------------------------------------------------------------------- */

void sc_aug_flip(float *img, int h, int w, int c) {
    for (int y = 0; y < h; y++) {
        float *row = img + (size_t)y * w * c;
        for (int l = 0, r = w - 1; l < r; l++, r--)
            for (int k = 0; k < c; k++) {
                float t = row[l * c + k];
                row[l * c + k] = row[r * c + k];
                row[r * c + k] = t;
            }
    }
}

void sc_aug_brightness(float *img, size_t n, float f) {
    for (size_t i = 0; i < n; i++) img[i] = clip01(img[i] * f);
}

void sc_aug_contrast(float *img, size_t npix, int c, float f) {
    double sum = 0;
    if (c == 1) {
        for (size_t i = 0; i < npix; i++) sum += img[i];
    } else {
        for (size_t i = 0; i < npix; i++)
            sum += SC_LUMA_R * img[3 * i] + SC_LUMA_G * img[3 * i + 1] + SC_LUMA_B * img[3 * i + 2];
    }
    const float offset = (1.0f - f) * (float)(sum / (double)npix);
    const size_t n = npix * (size_t)c;
    for (size_t i = 0; i < n; i++) img[i] = clip01(f * img[i] + offset);
}

void sc_aug_saturation(float *img, size_t npix, int c, float f) {
    if (c == 1) return;
    const float g = 1.0f - f;
    for (size_t i = 0; i < npix; i++) {
        float *px = img + 3 * i;
        float gray = g * (SC_LUMA_R * px[0] + SC_LUMA_G * px[1] + SC_LUMA_B * px[2]);
        px[0] = clip01(f * px[0] + gray);
        px[1] = clip01(f * px[1] + gray);
        px[2] = clip01(f * px[2] + gray);
    }
}

void sc_aug_hue(float *img, size_t npix, int c, float shift) {
    if (c == 1) return;
    for (size_t i = 0; i < npix; i++) {
        float *px = img + 3 * i;
        const float r = px[0], g = px[1], b = px[2];
        /* RGB -> HSV as torchvision's _rgb2hsv. */
        const float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
        const float cr = maxc - minc;
        if (cr == 0.0f) continue; /* gray: no hue, rotation changes nothing */
        const float s = cr / maxc, inv = 1.0f / cr;
        const float rc = (maxc - r) * inv, gc = (maxc - g) * inv, bc = (maxc - b) * inv;
        float h;
        if (maxc == r)
            h = bc - gc;
        else if (maxc == g)
            h = 2.0f + rc - bc;
        else
            h = 4.0f + gc - rc;
        /* torchvision: h = (h / 6 + 1) mod 1, then (h + shift) mod 1. h / 6 >= -1/6 and
         * shift >= -1/2, so adding 2 makes the value positive and truncation is floor. */
        h = h * (1.0f / 6.0f) + shift + 2.0f;
        h -= (float)(int)h;
        /* HSV -> RGB as torchvision's _hsv2rgb. */
        const float h6 = h * 6.0f;
        const int fi = (int)h6;
        const float fr = h6 - (float)fi;
        const int sector = fi % 6;
        const float v = maxc;
        const float p = clip01(v * (1.0f - s));
        const float q = clip01(v * (1.0f - s * fr));
        const float t = clip01(v * (1.0f - s * (1.0f - fr)));
        switch (sector) {
        case 0: px[0] = v; px[1] = t; px[2] = p; break;
        case 1: px[0] = q; px[1] = v; px[2] = p; break;
        case 2: px[0] = p; px[1] = v; px[2] = t; break;
        case 3: px[0] = p; px[1] = q; px[2] = v; break;
        case 4: px[0] = t; px[1] = p; px[2] = v; break;
        default: px[0] = v; px[1] = p; px[2] = q; break;
        }
    }
}

void sc_aug_grayscale(float *img, size_t npix, int c) {
    if (c == 1) return;
    for (size_t i = 0; i < npix; i++) {
        float *px = img + 3 * i;
        float gray = SC_LUMA_R * px[0] + SC_LUMA_G * px[1] + SC_LUMA_B * px[2];
        px[0] = px[1] = px[2] = gray;
    }
}

void sc_aug_jitter_order(const float *u, int order[4]) {
    for (int i = 0; i < 4; i++) order[i] = i;
    for (int i = 3; i > 0; i--) {
        int j = (int)(u[3 - i] * (float)(i + 1));
        if (j > i) j = i;
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ---- blur ---------------------------------------------------------------------------------- */

int sc_aug_blur_kernel_size(int size) {
    int k = size / 10;
    if (k % 2 == 0) k++;
    return k < 3 ? 3 : k;
}

void sc_aug_blur_kernel(float sigma, int k, float *w) {
    const double half = (k - 1) * 0.5;
    double sum = 0;
    for (int i = 0; i < k; i++) {
        double x = (i - half) / sigma;
        w[i] = (float)exp(-0.5 * x * x);
        sum += w[i];
    }
    for (int i = 0; i < k; i++) w[i] = (float)(w[i] / sum);
}

/* Reflect an index into [0, n): -1 -> 1, n -> n - 2 (repeated for kernels wider than n). */
static int reflect(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

void sc_aug_blur(float *img, int h, int w, int c, const float *kernel, int k, float *tmp) {
    const int r = k / 2;
    const size_t row_len = (size_t)w * c;
    float *line = tmp + (size_t)h * row_len; /* [w + 2r, c]: one row with reflected borders */
    /* Horizontal pass: img -> tmp. */
    for (int y = 0; y < h; y++) {
        const float *src = img + (size_t)y * row_len;
        for (int x = -r; x < w + r; x++) {
            const float *px = src + (size_t)reflect(x, w) * c;
            for (int ch = 0; ch < c; ch++) line[(size_t)(x + r) * c + ch] = px[ch];
        }
        float *dst = tmp + (size_t)y * row_len;
        for (size_t i = 0; i < row_len; i++) {
            float acc = 0.0f;
            for (int t = 0; t < k; t++) acc += kernel[t] * line[i + (size_t)t * c];
            dst[i] = acc;
        }
    }
    /* Vertical pass: tmp -> img, one whole row at a time. */
    for (int y = 0; y < h; y++) {
        float *dst = img + (size_t)y * row_len;
        memset(dst, 0, row_len * sizeof *dst);
        for (int t = 0; t < k; t++) {
            const float *src = tmp + (size_t)reflect(y + t - r, h) * row_len;
            const float kt = kernel[t];
            for (size_t i = 0; i < row_len; i++) dst[i] += kt * src[i];
        }
    }
}

/* ---- the view ------------------------------------------------------------------------------ */

int sc_aug_work_channels(const sc_augment_params *p, int src_channels) {
    return src_channels == 3 || p->out_channels == 3 ? 3 : 1;
}

size_t sc_augment_scratch_floats(const sc_augment_params *p, const sc_image *src) {
    const size_t S = (size_t)p->out_size, wc = (size_t)sc_aug_work_channels(p, src->channels);
    const size_t k = (size_t)sc_aug_blur_kernel_size(p->out_size);
    /* work [S, S, wc] + blur tmp [S, S, wc] + blur line [S + k, wc] + kernel [k] +
     * resize tables [3 S] */
    return 2 * S * S * wc + (S + k) * wc + k + 3 * S;
}

/* Clip, convert the work channels to the view's and normalise: work [npix, wc] -> out. */
static void finish(const sc_augment_params *p, const float *work, size_t npix, int wc, float *out) {
    const int oc = p->out_channels;
    float scale[3], shift[3];
    for (int c = 0; c < 3; c++) {
        scale[c] = p->normalize ? 1.0f / p->std[c] : 1.0f;
        shift[c] = p->normalize ? -p->mean[c] * scale[c] : 0.0f;
    }
    if (wc == oc) {
        for (size_t i = 0; i < npix; i++)
            for (int c = 0; c < oc; c++)
                out[i * oc + c] = clip01(work[i * wc + c]) * scale[c] + shift[c];
    } else { /* 3 -> 1 */
        for (size_t i = 0; i < npix; i++) {
            const float *px = work + 3 * i;
            float gray = SC_LUMA_R * clip01(px[0]) + SC_LUMA_G * clip01(px[1]) +
                         SC_LUMA_B * clip01(px[2]);
            out[i] = gray * scale[0] + shift[0];
        }
    }
}

void sc_aug_draws(sc_rng *rng, float u[SC_AUG_DRAWS]) {
    for (int i = 0; i < SC_AUG_DRAWS; i++) u[i] = sc_rng_uniform(rng);
}

void sc_aug_finish(const sc_augment_params *p, const float *u, float *work, int wc, float *out,
                   float *tmp, sc_augment_record *rec) {
    const int S = p->out_size;
    const size_t npix = (size_t)S * S;
    const int kblur = sc_aug_blur_kernel_size(S);
    float *kernel = tmp + npix * wc + (size_t)(S + kblur) * wc; /* [k] after the blur buffers */

    const int flipped = u[SC_AUG_U_FLIP] < p->flip_p;
    if (flipped) sc_aug_flip(work, S, S, wc);

    /* Factors U[max(0, 1 - x), 1 + x]; hue shift U[-h, h]. */
    const float *uf = u + SC_AUG_U_FACTORS;
    const double amount[3] = {p->brightness, p->contrast, p->saturation};
    float factor[3];
    for (int i = 0; i < 3; i++) {
        double lo = 1.0 - amount[i] > 0 ? 1.0 - amount[i] : 0.0, hi = 1.0 + amount[i];
        factor[i] = (float)(lo + (hi - lo) * uf[i]);
    }
    const float hue_shift = (float)(-p->hue + 2.0 * p->hue * uf[3]);
    int order[4];
    sc_aug_jitter_order(u + SC_AUG_U_ORDER, order);
    const int jittered = u[SC_AUG_U_JITTER] < p->jitter_p;
    if (jittered) {
        for (int i = 0; i < 4; i++) {
            switch (order[i]) {
            case 0: sc_aug_brightness(work, npix * wc, factor[0]); break;
            case 1: sc_aug_contrast(work, npix, wc, factor[1]); break;
            case 2: sc_aug_saturation(work, npix, wc, factor[2]); break;
            default: sc_aug_hue(work, npix, wc, hue_shift); break;
            }
        }
    }

    const int grayscaled = u[SC_AUG_U_GRAY] < p->gray_p;
    if (grayscaled) sc_aug_grayscale(work, npix, wc);

    const int blurred = u[SC_AUG_U_BLUR] < p->blur_p;
    const float sigma =
        (float)(p->blur_sigma_min + (p->blur_sigma_max - p->blur_sigma_min) * u[SC_AUG_U_SIGMA]);
    if (blurred) {
        sc_aug_blur_kernel(sigma, kblur, kernel);
        sc_aug_blur(work, S, S, wc, kernel, kblur, tmp);
    }

    finish(p, work, npix, wc, out);

    if (rec) {
        rec->flipped = flipped;
        rec->jittered = jittered;
        memcpy(rec->jitter_order, order, sizeof order);
        rec->brightness_factor = factor[0];
        rec->contrast_factor = factor[1];
        rec->saturation_factor = factor[2];
        rec->hue_shift = hue_shift;
        rec->grayscaled = grayscaled;
        rec->blurred = blurred;
        rec->blur_sigma = sigma;
    }
}

void sc_aug_finish_crop(const sc_augment_params *p, const uint8_t *crop, int wc, sc_rng *rng,
                        float *out, float *scratch) {
    float u[SC_AUG_DRAWS];
    sc_aug_draws(rng, u);
    const size_t n = (size_t)p->out_size * p->out_size * wc;
    const float inv255 = 1.0f / 255.0f;
    for (size_t i = 0; i < n; i++) scratch[i] = (float)crop[i] * inv255;
    sc_aug_finish(p, u, scratch, wc, out, scratch + n, NULL);
}

void sc_augment_view(const sc_augment_params *p, const sc_image *src, sc_rng *rng, float *out,
                     float *scratch, sc_augment_record *rec) {
    float u[SC_AUG_DRAWS];
    sc_aug_draws(rng, u);

    const int S = p->out_size, wc = sc_aug_work_channels(p, src->channels);
    const size_t npix = (size_t)S * S;
    const int kblur = sc_aug_blur_kernel_size(S);
    float *work = scratch;                      /* [S, S, wc] */
    float *tmp = work + npix * wc;              /* [S, S, wc] + [S + k, wc] + [k] for the blur */
    float *tables = tmp + npix * wc + (size_t)(S + kblur) * wc + kblur; /* [3 S] */

    sc_crop_box box = sc_aug_crop_box(u, src->height, src->width, p->crop_scale_min,
                                      p->crop_scale_max, p->crop_ratio_min, p->crop_ratio_max);
    sc_aug_resize(src, box, S, wc, work, tables);
    sc_aug_finish(p, u, work, wc, out, tmp, rec);
    if (rec) {
        rec->crop_x = box.x;
        rec->crop_y = box.y;
        rec->crop_w = box.w;
        rec->crop_h = box.h;
    }
}

void sc_augment_eval(const sc_augment_params *p, const sc_image *src, float *out, float *scratch) {
    const int wc = sc_aug_work_channels(p, src->channels);
    const size_t npix = (size_t)p->out_size * p->out_size;
    float *work = scratch;            /* [S, S, wc] */
    float *tables = work + npix * wc; /* [3 S] */
    sc_crop_box whole = {0, 0, src->width, src->height, 0};
    sc_aug_resize(src, whole, p->out_size, wc, work, tables);
    finish(p, work, npix, wc, out);
}

/* ---- encoded images and device crops ------------------------------------------------------ */

sc_bad_reason sc_augment_view_encoded(const sc_augment_params *p, sc_decoder *dec, int width,
                                      int height, sc_rng *rng, float *out, uint8_t *crop,
                                      float *scratch, sc_augment_record *rec) {
    float u[SC_AUG_DRAWS];
    sc_aug_draws(rng, u);
    const int S = p->out_size, wc = sc_aug_work_channels(p, 3);
    const size_t npix = (size_t)S * S;
    const int kblur = sc_aug_blur_kernel_size(S);
    float *work = scratch, *tmp = work + npix * wc;
    float *tables = tmp + npix * wc + (size_t)(S + kblur) * wc + kblur;
    sc_crop_box box = sc_aug_crop_box(u, height, width, p->crop_scale_min, p->crop_scale_max,
                                      p->crop_ratio_min, p->crop_ratio_max);
    sc_region r;
    sc_bad_reason why = sc_decoder_region(dec, box, S, &r);
    if (why != SC_BAD_NONE) return why;
    if (crop) {
        sc_aug_resize_region(&r, box, S, wc, NULL, crop, tables);
    } else {
        sc_aug_resize_region(&r, box, S, wc, work, NULL, tables);
        sc_aug_finish(p, u, work, wc, out, tmp, rec);
    }
    if (rec) {
        rec->crop_x = box.x;
        rec->crop_y = box.y;
        rec->crop_w = box.w;
        rec->crop_h = box.h;
    }
    return SC_BAD_NONE;
}

sc_bad_reason sc_augment_eval_encoded(const sc_augment_params *p, sc_decoder *dec, int width,
                                      int height, float *out, float *scratch) {
    const int wc = sc_aug_work_channels(p, 3);
    const size_t npix = (size_t)p->out_size * p->out_size;
    float *work = scratch, *tables = work + npix * wc;
    sc_region r;
    sc_bad_reason why = sc_decoder_whole(dec, p->out_size, &r);
    if (why != SC_BAD_NONE) return why;
    sc_crop_box whole = {0, 0, width, height, 0};
    sc_aug_resize_region(&r, whole, p->out_size, wc, work, NULL, tables);
    finish(p, work, npix, wc, out);
    return SC_BAD_NONE;
}

void sc_augment_crop(const sc_augment_params *p, const sc_image *src, sc_rng *rng, uint8_t *crop,
                     float *scratch) {
    float u[SC_AUG_DRAWS];
    sc_aug_draws(rng, u);
    sc_crop_box box = sc_aug_crop_box(u, src->height, src->width, p->crop_scale_min,
                                      p->crop_scale_max, p->crop_ratio_min, p->crop_ratio_max);
    sc_region whole = {*src, 0, 0, src->width, src->height, 8};
    sc_aug_resize_region(&whole, box, p->out_size, sc_aug_work_channels(p, src->channels), NULL, crop,
                         scratch);
}
