/*
 * image_files.h - writers for the image fixtures the data-pipeline tests generate at run time:
 * JPEG files through libjpeg-turbo's compressor (RGB, gray, CMYK, progressive), PNG files
 * through libpng (RGB, gray, palette, 16-bit, alpha) and synthetic test pictures. Tests build
 * their corpus (good and bad files) in a temporary directory instead of shipping binaries.
 */
#ifndef SIMCLR_TEST_IMAGE_FILES_H
#define SIMCLR_TEST_IMAGE_FILES_H

#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* A smooth picture with some edges, [h, w, 3]: JPEG keeps it close to the original. */
static inline uint8_t *sc_test_picture(int w, int h, int seed) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *px = p + ((size_t)y * w + x) * 3;
            px[0] = (uint8_t)((x * 255) / (w - 1 > 0 ? w - 1 : 1));
            px[1] = (uint8_t)((y * 255) / (h - 1 > 0 ? h - 1 : 1));
            px[2] = (uint8_t)((((x / 16) + (y / 16) + seed) % 2) ? 200 : 60);
        }
    return p;
}

/* Encode pixels [h, w, comps] (comps 1 gray, 3 RGB, 4 CMYK) as a JPEG file. Returns 1 on
 * success. */
static inline int sc_test_write_jpeg(const char *path, const uint8_t *pixels, int w, int h, int comps,
                                     int quality, int progressive) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f) == 0;
}

/* Encode a PNG: color_type a PNG_COLOR_TYPE_*, depth 8 or 16; rows hold
 * w * channels * depth/8 bytes each (palette: indices into `palette` of npal RGB entries). */
static inline int sc_test_write_png(const char *path, const uint8_t *data, int w, int h, int color_type, int depth,
                                    const png_color *palette, int npal) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return 0;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npal);
    png_write_info(png, info);
    const int ch = color_type == PNG_COLOR_TYPE_RGB         ? 3
                   : color_type == PNG_COLOR_TYPE_RGB_ALPHA ? 4
                   : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                             : 1;
    const size_t stride = (size_t)w * ch * (depth / 8);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(data + (size_t)y * stride));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f) == 0;
}

static inline int sc_test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return (fclose(f) == 0) && ok;
}

/* Whole file into memory (*n its size); NULL when it cannot be read. */
static inline uint8_t *sc_test_read_file(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

#endif /* SIMCLR_TEST_IMAGE_FILES_H */
