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

#include <stdint.h>

#include "simclr/data.h"
#include "simclr/rng.h"
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

/* Pixels decoded for one crop box of an encoded image (src/data/decode.h). Source coordinate u
 * (full resolution) maps to u' = (u + 0.5) * scale_m / 8 - 0.5 in the scaled image; img holds
 * the scaled image's columns [x0, x0 + img.width) and rows [y0, y0 + img.height). A resident
 * image is the region {img, 0, 0, width, height, 8}. */
typedef struct sc_region {
    sc_image img;
    int x0, y0;
    int scaled_w, scaled_h;
    int scale_m;
} sc_region;

/* Bilinear resize (align_corners=False, as torch's upsample_bilinear2d) of `box` of `src` to
 * dst [out_size, out_size, out_channels], scaled to [0, 1]. Channels convert on the way:
 * 1 -> 3 replicates, 3 -> 1 takes the luma. `tables` holds 3 * out_size floats. */
void sc_aug_resize(const sc_image *src, sc_crop_box box, int out_size, int out_channels,
                   float *dst, float *tables);
/* The same resize of `box` (full-resolution coordinates) from a decoded region: sample
 * positions are those of sc_aug_resize mapped into the scaled image. At scale 8/8 it equals
 * sc_aug_resize on the full image. Exactly one of dst (floats in [0, 1]) and dst8 (the
 * interpolated 0..255 value rounded to uint8) is non-NULL. */
void sc_aug_resize_region(const sc_region *src, sc_crop_box box, int out_size, int out_channels,
                          float *dst, uint8_t *dst8, float *tables);

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

/* ---- the stages of a view (sc_augment_view = draws, box, resize, finish) ---- */

/* The view's SC_AUG_DRAWS uniforms, in the layout above. */
void sc_aug_draws(sc_rng *rng, float u[SC_AUG_DRAWS]);
/* Channels the pipeline works in for a source with `src_channels`: 3 when the source or the
 * view has colour, else 1. Device crops (SC_LOADER_CROPS) have this many channels. */
int sc_aug_work_channels(const sc_augment_params *p, int src_channels);
/* Everything after the resize, driven by the draws u: flip -> jitter (p) -> grayscale (p) ->
 * blur (p) -> clip -> channel conversion -> normalise. work [S, S, wc] is modified; out is
 * [S, S, out_channels]; tmp holds S*S*wc + (S + k)*wc + k floats (k the blur kernel size).
 * The record's crop fields are left alone. This is the function kernels/augment.cu mirrors. */
void sc_aug_finish(const sc_augment_params *p, const float *u, float *work, int wc, float *out,
                   float *tmp, sc_augment_record *rec);
/* sc_aug_finish on a uint8 crop [S, S, wc] (values / 255): the CPU reference of the device
 * augmentation, keyed like sc_augment_view. scratch holds sc_augment_scratch_floats floats. */
void sc_aug_finish_crop(const sc_augment_params *p, const uint8_t *crop, int wc, sc_rng *rng,
                        float *out, float *scratch);

/* ---- other sources: encoded images and device crops ---- */

typedef struct sc_decoder sc_decoder; /* src/data/decode.h */

/* One view of the encoded image whose header `dec` has just read (width x height): the crop
 * box is drawn from the header's size exactly as sc_augment_view draws it, only the pixels the
 * box needs are decoded, then resize and finish. With crop != NULL the view stops after the
 * resize and writes the uint8 crop [S, S, wc] instead (SC_LOADER_CROPS; out unused). */
sc_bad_reason sc_augment_view_encoded(const sc_augment_params *p, sc_decoder *dec, int width,
                                      int height, sc_rng *rng, float *out, uint8_t *crop,
                                      float *scratch, sc_augment_record *rec);
/* The eval transform of the encoded image whose header `dec` has just read. */
sc_bad_reason sc_augment_eval_encoded(const sc_augment_params *p, sc_decoder *dec, int width,
                                      int height, float *out, float *scratch);
/* The uint8 crop [S, S, wc] of a resident image for the device path: draws, box, resize. */
void sc_augment_crop(const sc_augment_params *p, const sc_image *src, sc_rng *rng, uint8_t *crop,
                     float *scratch);

#endif /* SIMCLR_DATA_AUGMENT_OPS_H */
