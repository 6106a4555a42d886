/*
 * decode.h - JPEG (libjpeg-turbo) and PNG (libpng) decoding for the loader (internal).
 *
 * A decoder belongs to one worker thread: it owns a libjpeg decompressor with an error handler
 * that longjmps back into this module (libjpeg's default handler may call exit()), a libpng
 * reader set up per image with the same discipline, and the buffers decoded pixels land in.
 * Every failure returns an sc_bad_reason and leaves a one-line explanation in
 * sc_decoder_message(); nothing here aborts or prints.
 *
 * Use, per encoded image (bytes in memory):
 *   sc_decoder_header(d, bytes, n, &w, &h)  -> the full-resolution size, from the header only
 *   sc_decoder_region(d, box, side, &r)     -> the pixels covering `box`, as few as possible:
 *     JPEG: decoded at the smallest DCT scale M/8 whose scaled box still covers side x side,
 *           only the box's columns (jpeg_crop_scanline) and rows (jpeg_skip_scanlines, then
 *           stop); PNG: the whole image, decoded once and reused for the next box.
 * Output is always 8-bit RGB; gray is replicated, CMYK/YCCK converted as Pillow does.
 */
#ifndef SIMCLR_DATA_DECODE_H
#define SIMCLR_DATA_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "data/augment_ops.h"
#include "simclr/data.h"

/* Progressive JPEGs with more scans than this are rejected (libjpeg-turbo 3's fuzzers use
 * 100; a normal progressive file has about 10). */
#define SC_JPEG_MAX_SCANS 100

typedef struct sc_decoder sc_decoder;

/* NULL when out of memory. max_pixels bounds width x height of any image it accepts. */
sc_decoder *sc_decoder_create(int64_t max_pixels);
void sc_decoder_destroy(sc_decoder *d);

/* Identify the format by content (not by file name) and read the size. The bytes must stay
 * valid until the last sc_decoder_region call for this image. */
sc_bad_reason sc_decoder_header(sc_decoder *d, const uint8_t *data, size_t size, int *width,
                                int *height);
/* Regions (augment_ops.h) point into decoder memory, valid until the next call; their pixels
 * are [h, w, 3] RGB and scale_m is 8 for PNG. */

/* Decode enough of the current image to resample `box` (full-resolution pixels) to side x side
 * with bilinear interpolation: the box plus one pixel of context, clamped to the image. */
sc_bad_reason sc_decoder_region(sc_decoder *d, sc_crop_box box, int side, sc_region *out);
/* The whole image at the smallest DCT scale that keeps both sides >= min_side (the eval
 * transform's input). */
sc_bad_reason sc_decoder_whole(sc_decoder *d, int min_side, sc_region *out);
/* What went wrong in the last failed call ("Premature end of JPEG file", ...). */
const char *sc_decoder_message(const sc_decoder *d);

/* Smallest M in 1..8 with ceil(w M / 8) >= side and ceil(h M / 8) >= side (8 when none). */
int sc_jpeg_scale_for(int w, int h, int side);

#endif /* SIMCLR_DATA_DECODE_H */
