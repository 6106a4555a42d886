/*
 * image.h - 8-bit images for reports: PNG encoding (libpng), tiles pasted into grids, and a
 * built-in digit font.
 *
 * The trainer's TensorBoard images (augmented view pairs), the projector's sprite and the
 * confusion-matrix heat map are all composed here as plain [height, width, channels] uint8
 * buffers (1 gray, 3 RGB or 4 RGBA channels, rows contiguous) and encoded to PNG in memory or
 * to a file. Nothing here knows about models or datasets.
 */
#ifndef SIMCLR_IMAGE_H
#define SIMCLR_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "simclr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An owned image: pixels [height, width, channels]. */
typedef struct sc_image8 {
    int width, height, channels;
    uint8_t *pixels;
} sc_image8;

/* Allocate and fill every byte with `fill`. channels is 1, 3 or 4. */
sc_status sc_image8_alloc(sc_image8 *img, int width, int height, int channels, uint8_t fill);
void sc_image8_free(sc_image8 *img);

/* PNG of `img` (8 bits per channel), malloc'ed into *png of *len bytes. */
sc_status sc_png_encode(const sc_image8 *img, uint8_t **png, size_t *len);
/* The same written to `path` (replaced when it exists). */
sc_status sc_png_write(const char *path, const sc_image8 *img);

/* Paste a float tile [h, w, c] (values in [0, 1], clipped; c = 1 or 3) with its top-left
 * corner at (x, y). A 1-channel tile is replicated into RGB images; an RGB tile pasted into a
 * gray image is converted with the ITU-R 601 weights. Pixels outside the image are skipped. */
void sc_image8_paste_float(sc_image8 *img, int x, int y, const float *tile, int h, int w, int c);
/* The same for a uint8 tile. */
void sc_image8_paste_u8(sc_image8 *img, int x, int y, const uint8_t *tile, int h, int w, int c);
/* Fill the rectangle [x, x + w) x [y, y + h) with one colour (rgb[0] is used in gray images). */
void sc_image8_fill_rect(sc_image8 *img, int x, int y, int w, int h, const uint8_t rgb[3]);

/* Draw a non-negative integer with the built-in 3x5 digit font, each font pixel a
 * scale x scale square, the top-left corner at (x, y). Returns the width drawn. */
int sc_image8_draw_number(sc_image8 *img, int x, int y, long long value, int scale, const uint8_t rgb[3]);
/* The width in pixels that sc_image8_draw_number would draw. */
int sc_image8_number_width(long long value, int scale);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_IMAGE_H */
