/*
 * decode.c - JPEG and PNG decoding that does only the work a crop needs (see decode.h).
 *
 * JPEG (libjpeg API of libjpeg-turbo 2.1; the TurboJPEG API cannot crop while decoding):
 * read the header, pick the DCT scale, start decompression, narrow the columns with
 * jpeg_crop_scanline (it widens the range to iMCU boundaries), skip the rows above the box with
 * jpeg_skip_scanlines, read the box's rows and abort: rows below the box are never decoded.
 * Hardening (REFERENCE 4): the pixel limit is checked on the header before anything is
 * allocated, a progress monitor stops files with more than SC_JPEG_MAX_SCANS scans, libjpeg's
 * memory is capped, and the error handler longjmps back here instead of exiting. Warnings that
 * mean the pixels are wrong (premature end of file, corrupt entropy data) reject the image;
 * harmless ones (extraneous bytes, unknown JFIF revision) are ignored, as Pillow does.
 *
 * CMYK and YCCK JPEGs decode to CMYK and convert like Pillow: its JPEG plugin reads CMYK as
 * Adobe-inverted ("CMYK;I"), and its cmyk2rgb computes R = nk - nk * c / 255 with nk = 255 - k
 * on the un-inverted values, rounding with MULDIV255. On the raw (inverted) values that is
 * R = K - MULDIV255(255 - C, K).
 *
 * PNG (libpng, classic API with setjmp): palette, 1/2/4-bit gray and 16-bit (high byte kept,
 * as Pillow) become 8-bit RGB; alpha and tRNS are dropped, as Pillow's convert("RGB") does. A
 * PNG has no random access, so the whole image is decoded once per sample and both views crop
 * from it.
 */
#include "data/decode.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h> /* after jpeglib.h: its message list depends on jconfig.h */

typedef enum image_format { FORMAT_NONE, FORMAT_JPEG, FORMAT_PNG } image_format;

typedef struct jpeg_error {
    struct jpeg_error_mgr pub;
    sc_decoder *owner;
} jpeg_error;

struct sc_decoder {
    int64_t max_pixels;
    jmp_buf jump;             /* where libjpeg/libpng errors land */
    sc_bad_reason fail;       /* set before longjmp */
    char message[JMSG_LENGTH_MAX + 64];

    struct jpeg_decompress_struct jpg;
    jpeg_error jerr;
    struct jpeg_progress_mgr progress;
    int jpeg_bad_warning;     /* a warning that invalidates the pixels was emitted */
    sc_bad_reason warning_reason;

    /* the current image */
    const uint8_t *data;
    size_t size;
    image_format format;
    int width, height;
    int png_decoded;          /* pixels holds the whole PNG */

    uint8_t *pixels;          /* [cap] decoded RGB */
    size_t cap;
    uint8_t *row;             /* [row_cap] one CMYK scanline */
    size_t row_cap;
    uint8_t **rows;           /* [rows_cap] PNG row pointers */
    size_t rows_cap;
};

/* ---- buffers --------------------------------------------------------------------------- */

static int reserve(uint8_t **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 1;
    uint8_t *p = realloc(*buf, bytes);
    if (!p) return 0;
    *buf = p;
    *cap = bytes;
    return 1;
}

/* ---- libjpeg glue ---------------------------------------------------------------------- */

static void jpeg_on_error(j_common_ptr c) {
    jpeg_error *e = (jpeg_error *)c->err;
    sc_decoder *d = e->owner;
    /* Data that ran out before the error (the source then feeds a fake end marker and warns)
     * is truncation, and the warning says so; a side above libjpeg's 65500 is too large;
     * anything else is a decode failure: corrupt data, 12-bit precision, an unsupported colour
     * transform. */
    if (d->jpeg_bad_warning && d->warning_reason == SC_BAD_TRUNCATED) {
        d->fail = SC_BAD_TRUNCATED;
    } else {
        char text[JMSG_LENGTH_MAX];
        (*c->err->format_message)(c, text);
        snprintf(d->message, sizeof d->message, "%s", text);
        const int code = c->err->msg_code;
        d->fail = code == JERR_INPUT_EOF ? SC_BAD_TRUNCATED : code == JERR_IMAGE_TOO_BIG ? SC_BAD_TOO_LARGE : SC_BAD_CORRUPT;
    }
    longjmp(d->jump, 1);
}

static void jpeg_on_message(j_common_ptr c, int level) {
    if (level >= 0) return; /* trace messages */
    jpeg_error *e = (jpeg_error *)c->err;
    sc_decoder *d = e->owner;
    int code = c->err->msg_code;
    sc_bad_reason why = SC_BAD_NONE;
    if (code == JWRN_JPEG_EOF)
        why = SC_BAD_TRUNCATED;
    else if (code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC ||
             code == JWRN_ARITH_BAD_CODE || code == JWRN_NOT_SEQUENTIAL)
        why = SC_BAD_CORRUPT;
    if (why != SC_BAD_NONE && !d->jpeg_bad_warning) {
        char text[JMSG_LENGTH_MAX];
        (*c->err->format_message)(c, text);
        snprintf(d->message, sizeof d->message, "%s", text);
        d->jpeg_bad_warning = 1;
        d->warning_reason = why;
    }
}

static void jpeg_on_output(j_common_ptr c) { (void)c; /* never print */ }

static void jpeg_on_progress(j_common_ptr c) {
    j_decompress_ptr dc = (j_decompress_ptr)c;
    sc_decoder *d = ((jpeg_error *)c->err)->owner;
    if (dc->input_scan_number > SC_JPEG_MAX_SCANS) {
        snprintf(d->message, sizeof d->message, "more than %d progressive scans", SC_JPEG_MAX_SCANS);
        d->fail = SC_BAD_CORRUPT;
        longjmp(d->jump, 1);
    }
}

/* 1 on success; jpeg_create_decompress fails only when out of memory. */
static int create_jpeg(sc_decoder *d) {
    if (setjmp(d->jump)) return 0;
    jpeg_create_decompress(&d->jpg);
    return 1;
}

sc_decoder *sc_decoder_create(int64_t max_pixels) {
    sc_decoder *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->max_pixels = max_pixels;
    d->jpg.err = jpeg_std_error(&d->jerr.pub);
    d->jerr.pub.error_exit = jpeg_on_error;
    d->jerr.pub.emit_message = jpeg_on_message;
    d->jerr.pub.output_message = jpeg_on_output;
    d->jerr.owner = d;
    if (!create_jpeg(d)) {
        free(d);
        return NULL;
    }
    d->progress.progress_monitor = jpeg_on_progress;
    d->jpg.progress = &d->progress;
    /* Coefficient buffers of a progressive image at the pixel limit: 4 components x 2 bytes
     * per pixel at most (CMYK 4:4:4), plus headroom for the rest. */
    d->jpg.mem->max_memory_to_use = (long)(max_pixels * 12 > (64L << 20) ? max_pixels * 12 : (64L << 20));
    return d;
}

void sc_decoder_destroy(sc_decoder *d) {
    if (!d) return;
    jpeg_destroy_decompress(&d->jpg);
    free(d->pixels);
    free(d->row);
    free(d->rows);
    free(d);
}

const char *sc_decoder_message(const sc_decoder *d) { return d->message; }

int sc_jpeg_scale_for(int w, int h, int side) {
    for (int m = 1; m < 8; m++) {
        long sw = ((long)w * m + 7) / 8, sh = ((long)h * m + 7) / 8;
        if (sw >= side && sh >= side) return m;
    }
    return 8;
}

/* Too many pixels to accept (checked on the header, before any allocation). */
static int too_large(sc_decoder *d, long w, long h) {
    if (w > 0 && h > 0 && (int64_t)w * h <= d->max_pixels) return 0;
    snprintf(d->message, sizeof d->message, "%ldx%ld pixels exceeds the limit of %lld (data.max_image_pixels)", w,
             h, (long long)d->max_pixels);
    return 1;
}

/* Pillow's MULDIV255: a * b / 255 rounded. */
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static void cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, int n) {
    for (int i = 0; i < n; i++) {
        const int k = cmyk[4 * i + 3];
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = (uint8_t)(k - muldiv255(255 - cmyk[4 * i + c], k));
    }
}

/* Read the header again (each decode starts from the beginning) and check it. */
static sc_bad_reason jpeg_begin(sc_decoder *d) {
    struct jpeg_decompress_struct *c = &d->jpg;
    d->jpeg_bad_warning = 0;
    jpeg_mem_src(c, d->data, (unsigned long)d->size);
    jpeg_read_header(c, TRUE);
    if (too_large(d, (long)c->image_width, (long)c->image_height)) return SC_BAD_TOO_LARGE;
    c->out_color_space =
        c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK ? JCS_CMYK : JCS_RGB;
    c->dct_method = JDCT_ISLOW; /* libjpeg's and Pillow's default */
    return SC_BAD_NONE;
}

/* Scaled columns [x0, x1] and rows [y0, y1] (inclusive) that bilinear sampling of `box` at
 * side x side reads, plus one pixel of context on each side, clamped into the image. The
 * context matters for columns: libjpeg's fancy (smooth) chroma upsampling has no left
 * neighbour at the first column of a jpeg_crop_scanline window, so that column can differ from
 * a full decode; it must never be one the resize reads. */
static void scaled_span(int start, int len, double f, int limit, int *lo, int *hi) {
    double first = (start + 0.5) * f - 0.5, last = (start + len - 1 + 0.5) * f - 0.5;
    int a = (int)(first < 0 ? 0 : first) - 1, b = (int)(last < 0 ? 0 : last) + 2;
    if (a < 0) a = 0;
    *lo = a < limit ? a : limit - 1;
    *hi = b < limit ? b : limit - 1;
}

/* The body of a JPEG decode; errors longjmp out of it to jpeg_decode. */
static sc_bad_reason jpeg_decode_body(sc_decoder *d, int whole, sc_crop_box box, int side, sc_region *out) {
    struct jpeg_decompress_struct *c = &d->jpg;
    sc_bad_reason why = jpeg_begin(d);
    if (why != SC_BAD_NONE) {
        jpeg_abort_decompress(c);
        return why;
    }
    if (whole) box = (sc_crop_box){0, 0, (int)c->image_width, (int)c->image_height, 0};
    const int m = sc_jpeg_scale_for(box.w, box.h, side);
    c->scale_num = (unsigned int)m;
    c->scale_denom = 8;
    jpeg_start_decompress(c);
    const int W = (int)c->output_width, H = (int)c->output_height;
    const double f = m / 8.0;
    int x0, x1, y0, y1;
    scaled_span(box.x, box.w, f, W, &x0, &x1);
    scaled_span(box.y, box.h, f, H, &y0, &y1);
    JDIMENSION xoff = (JDIMENSION)x0, cw = (JDIMENSION)(x1 - x0 + 1);
    if ((int)cw < W) jpeg_crop_scanline(c, &xoff, &cw); /* moves xoff left to an iMCU edge */
    const int rows = y1 - y0 + 1, ncomp = c->out_color_components;
    if (!reserve(&d->pixels, &d->cap, (size_t)rows * cw * 3) ||
        (ncomp == 4 && !reserve(&d->row, &d->row_cap, (size_t)cw * 4))) {
        jpeg_abort_decompress(c);
        snprintf(d->message, sizeof d->message, "out of memory for %dx%u pixels", rows, (unsigned)cw);
        return SC_BAD_TOO_LARGE;
    }
    if (y0 > 0) jpeg_skip_scanlines(c, (JDIMENSION)y0);
    for (int r = 0; r < rows; r++) {
        uint8_t *dst = d->pixels + (size_t)r * cw * 3;
        JSAMPROW row = ncomp == 4 ? d->row : dst;
        if (jpeg_read_scanlines(c, &row, 1) != 1) {
            jpeg_abort_decompress(c);
            snprintf(d->message, sizeof d->message, "the decoder returned no row %d of %d", y0 + r, H);
            return SC_BAD_CORRUPT;
        }
        if (ncomp == 4) cmyk_to_rgb(d->row, dst, (int)cw);
    }
    jpeg_abort_decompress(c);
    if (d->jpeg_bad_warning) return d->warning_reason;
    out->img = (sc_image){rows, (int)cw, 3, d->pixels};
    out->x0 = (int)xoff;
    out->y0 = y0;
    out->scaled_w = W;
    out->scaled_h = H;
    out->scale_m = m;
    return SC_BAD_NONE;
}

/* setjmp lives in this frame, which has no locals: a libjpeg error unwinds the body whole. */
static sc_bad_reason jpeg_decode(sc_decoder *d, int whole, sc_crop_box box, int side, sc_region *out) {
    if (setjmp(d->jump)) {
        jpeg_abort_decompress(&d->jpg);
        return d->fail;
    }
    return jpeg_decode_body(d, whole, box, side, out);
}

static sc_bad_reason jpeg_header_body(sc_decoder *d) {
    sc_bad_reason why = jpeg_begin(d);
    d->width = (int)d->jpg.image_width;
    d->height = (int)d->jpg.image_height;
    jpeg_abort_decompress(&d->jpg);
    return why;
}

static sc_bad_reason jpeg_header(sc_decoder *d) {
    if (setjmp(d->jump)) {
        jpeg_abort_decompress(&d->jpg);
        return d->fail;
    }
    return jpeg_header_body(d);
}

/* ---- libpng glue ----------------------------------------------------------------------- */

typedef struct png_source {
    sc_decoder *d;
    size_t pos;
} png_source;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_source *src = png_get_error_ptr(png);
    sc_decoder *d = src->d;
    if (d->fail == SC_BAD_NONE) d->fail = SC_BAD_CORRUPT;
    if (!d->message[0]) snprintf(d->message, sizeof d->message, "%s", msg);
    longjmp(d->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* e.g. "iCCP: known incorrect sRGB profile": harmless */
}

static void png_on_read(png_structp png, png_bytep out, png_size_t n) {
    png_source *src = png_get_io_ptr(png);
    sc_decoder *d = src->d;
    if (n > d->size - src->pos) {
        d->fail = SC_BAD_TRUNCATED;
        snprintf(d->message, sizeof d->message, "PNG data ends after %zu bytes", d->size);
        png_error(png, "truncated");
    }
    memcpy(out, d->data + src->pos, n);
    src->pos += n;
}

/* The body of a PNG read; errors longjmp out of it to png_read. */
static sc_bad_reason png_read_body(sc_decoder *d, png_structp png, png_infop info, int want_pixels) {
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff); /* our own limit is on w x h */
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (too_large(d, (long)w, (long)h)) return SC_BAD_TOO_LARGE;
    d->width = (int)w;
    d->height = (int)h;
    if (!want_pixels) return SC_BAD_NONE;
    int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3 ||
        !reserve(&d->pixels, &d->cap, (size_t)w * h * 3) ||
        !reserve((uint8_t **)&d->rows, &d->rows_cap, (size_t)h * sizeof *d->rows)) {
        snprintf(d->message, sizeof d->message, "cannot convert this PNG to 8-bit RGB (%ux%u)", (unsigned)w,
                 (unsigned)h);
        return SC_BAD_CORRUPT;
    }
    for (png_uint_32 y = 0; y < h; y++) d->rows[y] = d->pixels + (size_t)y * w * 3;
    png_read_image(png, d->rows);
    d->png_decoded = 1;
    return SC_BAD_NONE;
}

/* Header only (want_pixels 0) or the whole image into d->pixels (want_pixels 1). */
static sc_bad_reason png_read(sc_decoder *d, int want_pixels) {
    png_source src = {d, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(d->message, sizeof d->message, "out of memory for a PNG reader");
        return SC_BAD_TOO_LARGE;
    }
    d->fail = SC_BAD_NONE;
    png_set_read_fn(png, &src, png_on_read);
    sc_bad_reason why = SC_BAD_NONE;
    if (setjmp(d->jump))
        why = d->fail;
    else
        why = png_read_body(d, png, info, want_pixels);
    png_destroy_read_struct(&png, &info, NULL);
    return why;
}

/* ---- the public calls -------------------------------------------------------------------- */

sc_bad_reason sc_decoder_header(sc_decoder *d, const uint8_t *data, size_t size, int *width, int *height) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    d->data = data;
    d->size = size;
    d->format = FORMAT_NONE;
    d->png_decoded = 0;
    d->message[0] = '\0';
    *width = *height = 0;
    if (size == 0) {
        snprintf(d->message, sizeof d->message, "the file is empty");
        return SC_BAD_EMPTY;
    }
    sc_bad_reason why;
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        d->format = FORMAT_JPEG;
        why = jpeg_header(d);
    } else if (size >= 8 && memcmp(data, png_magic, 8) == 0) {
        d->format = FORMAT_PNG;
        why = png_read(d, 0);
    } else {
        snprintf(d->message, sizeof d->message, "not a JPEG or PNG image (first bytes %02x %02x %02x %02x)",
                 data[0], size > 1 ? data[1] : 0, size > 2 ? data[2] : 0, size > 3 ? data[3] : 0);
        return SC_BAD_NOT_IMAGE;
    }
    if (why != SC_BAD_NONE) return why;
    *width = d->width;
    *height = d->height;
    return SC_BAD_NONE;
}

static sc_bad_reason decode(sc_decoder *d, int whole, sc_crop_box box, int side, sc_region *out) {
    SC_CHECK(d->format != FORMAT_NONE, "sc_decoder_region without a successful sc_decoder_header");
    if (d->format == FORMAT_JPEG) return jpeg_decode(d, whole, box, side, out);
    if (!d->png_decoded) {
        sc_bad_reason why = png_read(d, 1);
        if (why != SC_BAD_NONE) return why;
    }
    out->img = (sc_image){d->height, d->width, 3, d->pixels};
    out->x0 = out->y0 = 0;
    out->scaled_w = d->width;
    out->scaled_h = d->height;
    out->scale_m = 8;
    return SC_BAD_NONE;
}

sc_bad_reason sc_decoder_region(sc_decoder *d, sc_crop_box box, int side, sc_region *out) {
    return decode(d, 0, box, side, out);
}

sc_bad_reason sc_decoder_whole(sc_decoder *d, int min_side, sc_region *out) {
    sc_crop_box none = {0, 0, 0, 0, 0};
    return decode(d, 1, none, min_side, out);
}
