/*
 * augment_ops.h - the individual SimCLR transforms behind sc_augment_view (internal).
 *
 * Each transform is exposed so that tests can check it against its definition, and so that a
 * device implementation can follow the same random-draw layout. Images here are float
 * [height, width, c] (c = 1 or 3), values in [0, 1]; the colour ops clip to [0, 1] as
 * torchvision's ColorJitter does after each op.
 *
 * Random-draw layout: a view draws exactly SC_AUG_DRAWS uniforms from its Philox stream
 * (seed, epoch, sample, view, SC_RNG_AUGMENT) with sc_rng_uniform, always all of them, in the
 * order below, whether or not an op is applied. Word k of the stream is therefore always the
 * same parameter, and a view is a pure function of its key.
 */
#ifndef SIMCLR_DATA_AUGMENT_OPS_H
#define SIMCLR_DATA_AUGMENT_OPS_H

#include <stddef.h>

#include "simclr/data.h"
#include "simclr/status.h"

enum {
    SC_AUG_CROP_TRIES = 10,                                /* torchvision RandomResizedCrop */
    SC_AUG_U_CROP = 0,                                     /* per try: area fraction, log ratio */
    SC_AUG_U_CROP_Y = 2 * SC_AUG_CROP_TRIES,               /* top offset of the accepted box */
    SC_AUG_U_CROP_X = SC_AUG_U_CROP_Y + 1,                 /* left offset */
    SC_AUG_U_FLIP = SC_AUG_U_CROP_X + 1,
    SC_AUG_U_JITTER = SC_AUG_U_FLIP + 1,                   /* apply colour jitter? */
    SC_AUG_U_FACTORS = SC_AUG_U_JITTER + 1,                /* brightness, contrast, saturation, hue */
    SC_AUG_U_ORDER = SC_AUG_U_FACTORS + 4,                 /* 3 draws: Fisher-Yates over 4 ops */
    SC_AUG_U_GRAY = SC_AUG_U_ORDER + 3,
    SC_AUG_U_BLUR = SC_AUG_U_GRAY + 1,
    SC_AUG_U_SIGMA = SC_AUG_U_BLUR + 1,
    SC_AUG_DRAWS = SC_AUG_U_SIGMA + 1,
};

/* ITU-R 601 luma, as torchvision's rgb_to_grayscale and TF's rgb_to_grayscale. */
#define SC_LUMA_R 0.2989f
#define SC_LUMA_G 0.5870f
#define SC_LUMA_B 0.1140f

/* Check parameters that came from a config (ranges, std > 0); names the config keys. */
sc_status sc_augment_params_check(const sc_augment_params *p, int in_channels);

/* A crop box in source pixels; `fallback` is 1 when no try fitted and the centre crop was used. */
typedef struct sc_crop_box {
    int x, y, w, h;
    int fallback;
} sc_crop_box;

/* torchvision RandomResizedCrop.get_params on a height x width image, using the draws
 * u[SC_AUG_U_CROP .. SC_AUG_U_CROP_X] (each in [0, 1)). */
sc_crop_box sc_aug_crop_box(const float *u, int height, int width, double scale_min,
                            double scale_max, double ratio_min, double ratio_max);

/* Bilinear resize (align_corners=False, as torch's upsample_bilinear2d) of `box` of `src` to
 * dst [out_size, out_size, out_channels], scaled to [0, 1]. Channels convert on the way:
 * 1 -> 3 replicates, 3 -> 1 takes the luma. `tables` holds 3 * out_size floats. */
void sc_aug_resize(const sc_image *src, sc_crop_box box, int out_size, int out_channels,
                   float *dst, float *tables);

/* Mirror every row of img [h, w, c]. */
void sc_aug_flip(float *img, int h, int w, int c);

/* x <- clip(f x): `n` floats. */
void sc_aug_brightness(float *img, size_t n, float f);
/* x <- clip(f x + (1 - f) m), m = the mean of the grayscale image: img [npix, c]. */
void sc_aug_contrast(float *img, size_t npix, int c, float f);
/* x <- clip(f x + (1 - f) gray(x)) per pixel; identity when c == 1. */
void sc_aug_saturation(float *img, size_t npix, int c, float f);
/* Rotate the hue by `shift` of a full turn, |shift| <= 1 (via HSV, as torchvision
 * adjust_hue); identity when c == 1. */
void sc_aug_hue(float *img, size_t npix, int c, float shift);
/* Replace each pixel by its luma in all 3 channels; identity when c == 1. */
void sc_aug_grayscale(float *img, size_t npix, int c);

/* The jitter op order (0 brightness, 1 contrast, 2 saturation, 3 hue) from 3 draws. */
void sc_aug_jitter_order(const float *u, int order[4]);

/* Blur kernel side for views of side `size`: size/10, made odd, at least 3. */
int sc_aug_blur_kernel_size(int size);
/* Normalised 1-D Gaussian w[k] sampled at the integer offsets -(k-1)/2 .. (k-1)/2. */
void sc_aug_blur_kernel(float sigma, int k, float *w);
/* Separable blur of img [h, w, c] with w[k] and reflect padding (torch "reflect": the edge
 * pixel is not repeated). tmp holds h*w*c + (w + k)*c floats. */
void sc_aug_blur(float *img, int h, int w, int c, const float *kernel, int k, float *tmp);

#endif /* SIMCLR_DATA_AUGMENT_OPS_H */
