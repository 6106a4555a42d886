/*
 * image.c - 8-bit report images and their PNG encoding (see include/simclr/image.h).
 *
 * libpng reports errors by longjmp out of the encoder; the jump lands in sc_png_encode, which
 * turns it into an sc_status. Everything it must free after the jump lives in a struct that is
 * not a local of the setjmp frame, so no value is lost to the jump.
 */
#include "simclr/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sc_status sc_image8_alloc(sc_image8 *img, int width, int height, int channels, uint8_t fill) {
    memset(img, 0, sizeof *img);
    if (width < 1 || height < 1 || (channels != 1 && channels != 3 && channels != 4))
        return sc_errorf(SC_ERR_ARG, "bad image size %dx%dx%d", width, height, channels);
    size_t bytes = (size_t)width * (size_t)height * (size_t)channels;
    img->pixels = malloc(bytes);
    if (!img->pixels) return sc_errorf(SC_ERR_NOMEM, "out of memory for a %dx%d image", width, height);
    memset(img->pixels, fill, bytes);
    img->width = width;
    img->height = height;
    img->channels = channels;
    return SC_OK;
}

void sc_image8_free(sc_image8 *img) {
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ---- PNG ------------------------------------------------------------------------------------ */

typedef struct png_sink {
    uint8_t *data;
    size_t len, cap;
    int failed;
} png_sink;

static void sink_write(png_structp png, png_bytep bytes, png_size_t n) {
    png_sink *s = png_get_io_ptr(png);
    if (s->failed) return;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n) cap *= 2;
        uint8_t *p = realloc(s->data, cap);
        if (!p) {
            s->failed = 1;
            png_error(png, "out of memory");
        }
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->len, bytes, n);
    s->len += n;
}

static void sink_flush(png_structp png) { (void)png; }

/* libpng state that must survive a longjmp out of the encoder. */
typedef struct png_job {
    png_structp png;
    png_infop info;
    png_sink sink;
    char message[128];
} png_job;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", msg);
    longjmp(png_jmpbuf(png), 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* Runs the encoder; returns 0 when libpng reported an error (job->message says which). */
static int encode(png_job *job, const sc_image8 *img) {
    if (setjmp(png_jmpbuf(job->png))) return 0;
    static const int color[5] = {0, PNG_COLOR_TYPE_GRAY, 0, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA};
    png_set_write_fn(job->png, &job->sink, sink_write, sink_flush);
    png_set_IHDR(job->png, job->info, (png_uint_32)img->width, (png_uint_32)img->height, 8, color[img->channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(job->png, job->info);
    size_t stride = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; y++) png_write_row(job->png, img->pixels + (size_t)y * stride);
    png_write_end(job->png, job->info);
    return 1;
}

sc_status sc_png_encode(const sc_image8 *img, uint8_t **png, size_t *len) {
    *png = NULL;
    *len = 0;
    if (!img->pixels || img->width < 1 || img->height < 1 || (img->channels != 1 && img->channels != 3 && img->channels != 4))
        return sc_errorf(SC_ERR_ARG, "cannot encode a %dx%dx%d image as PNG", img->width, img->height, img->channels);
    png_job *job = calloc(1, sizeof *job);
    if (!job) return sc_errorf(SC_ERR_NOMEM, "out of memory for the PNG encoder");
    job->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job, on_png_error, on_png_warning);
    if (job->png) job->info = png_create_info_struct(job->png);
    sc_status rc = SC_OK;
    if (!job->png || !job->info)
        rc = sc_errorf(SC_ERR_NOMEM, "libpng: cannot create the encoder");
    else if (!encode(job, img))
        rc = sc_errorf(job->sink.failed ? SC_ERR_NOMEM : SC_ERR_FORMAT, "libpng: %s", job->message);
    if (job->png) png_destroy_write_struct(&job->png, job->info ? &job->info : NULL);
    if (rc == SC_OK) {
        *png = job->sink.data;
        *len = job->sink.len;
    } else {
        free(job->sink.data);
    }
    free(job);
    return rc;
}

sc_status sc_png_write(const char *path, const sc_image8 *img) {
    uint8_t *data;
    size_t len;
    SC_TRY(sc_png_encode(img, &data, &len));
    FILE *f = fopen(path, "wb");
    sc_status rc = SC_OK;
    if (!f) {
        rc = sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    } else {
        if (fwrite(data, 1, len, f) != len) rc = sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        if (fclose(f) != 0 && rc == SC_OK) rc = sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    free(data);
    return rc;
}

/* ---- composing ------------------------------------------------------------------------------ */

/* Store one pixel given as RGB into img at (x, y) (inside the image). */
static void put_rgb(sc_image8 *img, int x, int y, const uint8_t rgb[3]) {
    uint8_t *p = img->pixels + ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels;
    if (img->channels == 1) {
        p[0] = rgb[0] == rgb[1] && rgb[1] == rgb[2] ? rgb[0]
                                                    : (uint8_t)(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] + 0.5);
        return;
    }
    p[0] = rgb[0];
    p[1] = rgb[1];
    p[2] = rgb[2];
    if (img->channels == 4) p[3] = 255;
}

static uint8_t to_byte(float v) {
    if (!(v > 0.0f)) return 0; /* also NaN */
    if (v >= 1.0f) return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

void sc_image8_paste_float(sc_image8 *img, int x, int y, const float *tile, int h, int w, int c) {
    for (int r = 0; r < h; r++)
        for (int s = 0; s < w; s++) {
            int px = x + s, py = y + r;
            if (px < 0 || py < 0 || px >= img->width || py >= img->height) continue;
            const float *v = tile + ((size_t)r * (size_t)w + (size_t)s) * (size_t)c;
            uint8_t rgb[3] = {to_byte(v[0]), to_byte(v[c == 3 ? 1 : 0]), to_byte(v[c == 3 ? 2 : 0])};
            put_rgb(img, px, py, rgb);
        }
}

void sc_image8_paste_u8(sc_image8 *img, int x, int y, const uint8_t *tile, int h, int w, int c) {
    for (int r = 0; r < h; r++)
        for (int s = 0; s < w; s++) {
            int px = x + s, py = y + r;
            if (px < 0 || py < 0 || px >= img->width || py >= img->height) continue;
            const uint8_t *v = tile + ((size_t)r * (size_t)w + (size_t)s) * (size_t)c;
            uint8_t rgb[3] = {v[0], v[c == 3 ? 1 : 0], v[c == 3 ? 2 : 0]};
            put_rgb(img, px, py, rgb);
        }
}

void sc_image8_fill_rect(sc_image8 *img, int x, int y, int w, int h, const uint8_t rgb[3]) {
    for (int py = y < 0 ? 0 : y; py < y + h && py < img->height; py++)
        for (int px = x < 0 ? 0 : x; px < x + w && px < img->width; px++) put_rgb(img, px, py, rgb);
}

/* ---- digits --------------------------------------------------------------------------------- */

/* 3x5 glyphs of 0-9, one row per 3-bit group (bit 2 = left column), top row first. */
static const uint8_t digit_rows[10][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
};

static int digit_count(long long value) {
    int n = 1;
    while (value >= 10) {
        value /= 10;
        n++;
    }
    return n;
}

int sc_image8_number_width(long long value, int scale) {
    if (value < 0) value = 0;
    int n = digit_count(value);
    return (4 * n - 1) * scale; /* 3 columns per digit, 1 between digits */
}

int sc_image8_draw_number(sc_image8 *img, int x, int y, long long value, int scale, const uint8_t rgb[3]) {
    if (value < 0) value = 0;
    int n = digit_count(value);
    char text[24];
    snprintf(text, sizeof text, "%lld", value);
    for (int i = 0; i < n; i++) {
        const uint8_t *g = digit_rows[text[i] - '0'];
        int gx = x + i * 4 * scale;
        for (int r = 0; r < 5; r++)
            for (int col = 0; col < 3; col++)
                if (g[r] & (4 >> col)) sc_image8_fill_rect(img, gx + col * scale, y + r * scale, scale, scale, rgb);
    }
    return sc_image8_number_width(value, scale);
}
