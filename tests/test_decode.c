/*
 * test_decode.c - the JPEG/PNG decoder of the loader (src/data/decode.c) on files generated
 * here: the DCT scale choice, crop-decoding (jpeg_crop_scanline + jpeg_skip_scanlines) equal to
 * decoding the whole image at the same scale and cutting the window out, a view resampled from
 * a scaled crop close to one resampled from the full-resolution image (JPEG tolerance), gray
 * and CMYK JPEGs, the PNG colour types, and the hardening: pixel limit on the header, the
 * progressive scan limit, truncated/corrupt/empty/non-image data, all returned, never fatal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/augment_ops.h"
#include "data/decode.h"
#include "harness.h"
#include "image_files.h"

static char tmpdir[] = "/tmp/simclr_test_decode_XXXXXX";

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmpdir, name); }

/* Encode a JPEG in the temp dir and read its bytes back. */
static uint8_t *jpeg_bytes(const char *name, const uint8_t *px, int w, int h, int comps, int q, int progressive,
                           size_t *n) {
    char path[512];
    path_in(path, sizeof path, name);
    CHECK(sc_test_write_jpeg(path, px, w, h, comps, q, progressive));
    return sc_test_read_file(path, n);
}

static void test_scale_choice(void) {
    CHECK(sc_jpeg_scale_for(500, 375, 224) == 5); /* 375 * 5/8 = 234.4 >= 224 > 375 * 4/8 */
    CHECK(sc_jpeg_scale_for(400, 350, 100) == 3);
    CHECK(sc_jpeg_scale_for(64, 64, 224) == 8);   /* never upscale in the DCT: full size */
    CHECK(sc_jpeg_scale_for(800, 800, 100) == 1);
    CHECK(sc_jpeg_scale_for(33, 1000, 32) == 8);  /* ceil(33 * 7/8) = 29 < 32 */
}

/* A smooth picture [h, w, 3]: gradients and slow waves, no edges. */
static uint8_t *smooth_picture(int w, int h) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *px = p + ((size_t)y * w + x) * 3;
            px[0] = (uint8_t)(128 + 100 * sin(x / 37.0) * cos(y / 53.0));
            px[1] = (uint8_t)(x * 200 / w + 20);
            px[2] = (uint8_t)(128 + 90 * cos((x + y) / 61.0));
        }
    return p;
}

/* Crop-decoding a box at scale m equals the whole image decoded at scale m, cut to the same
 * window (4:2:0 JPEG, quality 92, a sharp and a smooth picture); so do the views resampled from
 * either; and on the smooth picture the view is within JPEG tolerance of bilinear resampling
 * of the original full-resolution pixels. */
static void crop_decode_case(int smooth_case) {
    const int W = 400, H = 350;
    uint8_t *px = smooth_case ? smooth_picture(W, H) : sc_test_picture(W, H, 1);
    size_t n;
    uint8_t *jpg = jpeg_bytes("photo.jpg", px, W, H, 3, 92, 0, &n);
    sc_decoder *d = sc_decoder_create(89478485);
    int w, h;
    CHECK(sc_decoder_header(d, jpg, n, &w, &h) == SC_BAD_NONE && w == W && h == H);
    const sc_crop_box boxes[] = {{37, 21, 300, 250, 0}, {0, 0, W, H, 0}, {200, 100, 120, 90, 0},
                                 {W - 50, H - 40, 50, 40, 0}, {5, 300, 390, 50, 0}};
    const int sides[] = {64, 32, 224};
    float *tables = malloc(3 * 224 * sizeof(float));
    float *view = malloc(224 * 224 * 3 * sizeof(float)), *ref = malloc(224 * 224 * 3 * sizeof(float));
    for (size_t bi = 0; bi < sizeof boxes / sizeof boxes[0]; bi++)
        for (int si = 0; si < 3; si++) {
            const sc_crop_box box = boxes[bi];
            const int S = sides[si];
            sc_region r;
            CHECK(sc_decoder_region(d, box, S, &r) == SC_BAD_NONE);
            CHECKF(r.scale_m == sc_jpeg_scale_for(box.w, box.h, S), "box %zu side %d: scale %d", bi, S, r.scale_m);
            /* copy the region: the next decode reuses the decoder's memory */
            const size_t rbytes = (size_t)r.img.height * r.img.width * 3;
            uint8_t *crop = malloc(rbytes);
            memcpy(crop, r.img.pixels, rbytes);
            sc_region rc = r;
            rc.img.pixels = crop;
            /* the whole image at the same scale */
            const int m = r.scale_m, min_side = (int)(((long)H * m + 7) / 8);
            sc_region whole;
            CHECK(sc_decoder_whole(d, min_side, &whole) == SC_BAD_NONE);
            CHECK(whole.scale_m == m && whole.img.width == r.scaled_w && whole.img.height == r.scaled_h);
            /* The window's first column lacks its left neighbour for libjpeg's smooth chroma
             * upsampling when it is not the image's first column; the decoder keeps it out of
             * what the resize reads (one column of context), so it is not compared. */
            long worst = 0;
            for (int y = 0; y < r.img.height; y++)
                for (int x = r.x0 > 0 ? 3 : 0; x < r.img.width * 3; x++) {
                    long a = crop[(size_t)y * r.img.width * 3 + x];
                    long b = whole.img.pixels[(size_t)(r.y0 + y) * whole.img.width * 3 + (size_t)r.x0 * 3 + x];
                    if (labs(a - b) > worst) worst = labs(a - b);
                }
            /* libjpeg's fancy upsampling of chroma sees one more column at a cropped edge */
            CHECKF(worst <= 2, "box %zu side %d (scale %d/8): crop-decode differs from full decode by %ld", bi, S, m,
                   worst);
            /* so the views agree too: from the window vs. from the whole image at scale m */
            sc_aug_resize_region(&rc, box, S, 3, view, NULL, tables);
            sc_aug_resize_region(&whole, box, S, 3, ref, NULL, tables);
            double vworst = 0;
            for (int i = 0; i < S * S * 3; i++) vworst = fmax(vworst, fabs(view[i] - ref[i]));
            CHECKF(vworst <= 2.0 / 255, "box %zu side %d: view from the window differs by %.4f", bi, S, vworst);
            /* the view from the scaled window vs. bilinear from the full-resolution original:
             * DCT scaling averages M/8 blocks where bilinear point-samples, so they agree
             * within JPEG tolerance on smooth content only */
            if (!smooth_case) {
                free(crop);
                continue;
            }
            sc_aug_resize_region(&rc, box, S, 3, view, NULL, tables);
            sc_image orig = {H, W, 3, px};
            sc_aug_resize(&orig, box, S, 3, ref, tables);
            double sum = 0, mx = 0;
            for (int i = 0; i < S * S * 3; i++) {
                double e = fabs(view[i] - ref[i]);
                sum += e;
                if (e > mx) mx = e;
            }
            CHECKF(sum / (S * S * 3) < 4.0 / 255, "box %zu side %d: mean |view - reference| %.4f", bi, S,
                   sum / (S * S * 3));
            free(crop);
        }
    free(tables);
    free(view);
    free(ref);
    sc_decoder_destroy(d);
    free(jpg);
    free(px);
}

static void test_crop_decode_matches_full(void) {
    crop_decode_case(0);
    crop_decode_case(1);
}

static void test_gray_and_cmyk_jpeg(void) {
    const int W = 48, H = 40;
    uint8_t *gray = malloc((size_t)W * H);
    for (int i = 0; i < W * H; i++) gray[i] = (uint8_t)(i % W * 5);
    size_t n;
    uint8_t *jpg = jpeg_bytes("gray.jpg", gray, W, H, 1, 100, 0, &n);
    sc_decoder *d = sc_decoder_create(1 << 20);
    int w, h;
    sc_region r;
    CHECK(sc_decoder_header(d, jpg, n, &w, &h) == SC_BAD_NONE && w == W && h == H);
    CHECK(sc_decoder_whole(d, 1000, &r) == SC_BAD_NONE && r.img.channels == 3 && r.img.width == W);
    long worst = 0, unequal = 0;
    for (int i = 0; i < W * H; i++) {
        const uint8_t *p = r.img.pixels + 3 * i;
        unequal += p[0] != p[1] || p[1] != p[2];
        if (labs((long)p[0] - gray[i]) > worst) worst = labs((long)p[0] - gray[i]);
    }
    CHECK(unequal == 0 && worst <= 3);
    free(jpg);
    /* CMYK (flat colour, stored raw as Adobe writes it): R = K - round((255 - C) K / 255) */
    uint8_t *cmyk = malloc((size_t)W * H * 4);
    for (int i = 0; i < W * H; i++) {
        cmyk[4 * i] = 200;
        cmyk[4 * i + 1] = 100;
        cmyk[4 * i + 2] = 30;
        cmyk[4 * i + 3] = 220;
    }
    jpg = jpeg_bytes("cmyk.jpg", cmyk, W, H, 4, 100, 0, &n);
    CHECK(sc_decoder_header(d, jpg, n, &w, &h) == SC_BAD_NONE);
    const sc_crop_box box = {8, 8, 24, 24, 0};
    CHECKF(sc_decoder_region(d, box, 24, &r) == SC_BAD_NONE, "%s", sc_decoder_message(d));
    const int want[3] = {220 - (55 * 220 + 127) / 255, 220 - (155 * 220 + 127) / 255, 220 - (225 * 220 + 127) / 255};
    worst = 0;
    for (int i = 0; i < r.img.width * r.img.height; i++)
        for (int c = 0; c < 3; c++)
            if (labs((long)r.img.pixels[3 * i + c] - want[c]) > worst) worst = labs((long)r.img.pixels[3 * i + c] - want[c]);
    CHECKF(worst <= 2, "CMYK conversion off by %ld", worst);
    free(jpg);
    free(cmyk);
    free(gray);
    sc_decoder_destroy(d);
}

/* Decode a PNG file written from `data` and return the decoder's RGB pixels (copied). */
static uint8_t *png_decode(const char *name, const uint8_t *data, int w, int h, int type, int depth,
                           const png_color *pal, int npal) {
    char path[512];
    path_in(path, sizeof path, name);
    CHECK(sc_test_write_png(path, data, w, h, type, depth, pal, npal));
    size_t n;
    uint8_t *bytes = sc_test_read_file(path, &n);
    sc_decoder *d = sc_decoder_create(1 << 20);
    int gw, gh;
    sc_region r;
    uint8_t *out = NULL;
    if (sc_decoder_header(d, bytes, n, &gw, &gh) == SC_BAD_NONE && gw == w && gh == h &&
        sc_decoder_region(d, (sc_crop_box){0, 0, w, h, 0}, w, &r) == SC_BAD_NONE && r.img.width == w) {
        out = malloc((size_t)w * h * 3);
        memcpy(out, r.img.pixels, (size_t)w * h * 3);
    }
    sc_decoder_destroy(d);
    free(bytes);
    return out;
}

static void test_png_types(void) {
    const int W = 7, H = 5; /* odd sizes: no row padding assumptions */
    uint8_t rgb[7 * 5 * 3], rgba[7 * 5 * 4], gray[7 * 5], idx[7 * 5], g16[7 * 5 * 2];
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {10, 20, 30}, {1, 2, 3}};
    for (int i = 0; i < W * H; i++) {
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = rgba[4 * i + c] = (uint8_t)(i * 7 + c * 50);
        rgba[4 * i + 3] = (uint8_t)(i * 3);
        gray[i] = (uint8_t)(i * 6);
        idx[i] = (uint8_t)(i % 4);
        g16[2 * i] = (uint8_t)(i * 5); /* big-endian: high byte first */
        g16[2 * i + 1] = 0xAB;
    }
    uint8_t *p = png_decode("rgb.png", rgb, W, H, PNG_COLOR_TYPE_RGB, 8, NULL, 0);
    CHECK(p && memcmp(p, rgb, sizeof rgb) == 0);
    free(p);
    p = png_decode("rgba.png", rgba, W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, NULL, 0);
    CHECK(p && memcmp(p, rgb, sizeof rgb) == 0); /* alpha dropped, as Pillow's convert("RGB") */
    free(p);
    p = png_decode("gray.png", gray, W, H, PNG_COLOR_TYPE_GRAY, 8, NULL, 0);
    int ok = p != NULL;
    for (int i = 0; ok && i < W * H; i++) ok = p[3 * i] == gray[i] && p[3 * i + 1] == gray[i] && p[3 * i + 2] == gray[i];
    CHECK(ok);
    free(p);
    p = png_decode("pal.png", idx, W, H, PNG_COLOR_TYPE_PALETTE, 8, pal, 4);
    ok = p != NULL;
    for (int i = 0; ok && i < W * H; i++)
        ok = p[3 * i] == pal[idx[i]].red && p[3 * i + 1] == pal[idx[i]].green && p[3 * i + 2] == pal[idx[i]].blue;
    CHECK(ok);
    free(p);
    p = png_decode("g16.png", g16, W, H, PNG_COLOR_TYPE_GRAY, 16, NULL, 0);
    ok = p != NULL;
    for (int i = 0; ok && i < W * H; i++) ok = p[3 * i] == g16[2 * i]; /* the high byte */
    CHECK(ok);
    free(p);
}

/* The result of sc_decoder_header, then (when it passes) of decoding a region. */
static sc_bad_reason decode_all(sc_decoder *d, const uint8_t *data, size_t n) {
    int w, h;
    sc_bad_reason why = sc_decoder_header(d, data, n, &w, &h);
    if (why != SC_BAD_NONE) return why;
    sc_region r;
    return sc_decoder_region(d, (sc_crop_box){0, 0, w, h, 0}, w < h ? w : h, &r);
}

static void test_bad_data(void) {
    const int W = 64, H = 48;
    uint8_t *px = sc_test_picture(W, H, 0);
    size_t n;
    uint8_t *jpg = jpeg_bytes("good.jpg", px, W, H, 3, 90, 0, &n);
    sc_decoder *d = sc_decoder_create(100000);
    CHECK(decode_all(d, jpg, n) == SC_BAD_NONE);
    CHECK(decode_all(d, jpg, 0) == SC_BAD_EMPTY);
    const char text[] = "hello, this is not an image\n";
    CHECK(decode_all(d, (const uint8_t *)text, sizeof text) == SC_BAD_NOT_IMAGE);
    CHECK(strstr(sc_decoder_message(d), "not a JPEG or PNG"));
    /* truncated in the entropy-coded data, and inside the header */
    CHECKF(decode_all(d, jpg, n * 2 / 3) == SC_BAD_TRUNCATED, "%s", sc_decoder_message(d));
    CHECK(decode_all(d, jpg, 40) == SC_BAD_TRUNCATED || decode_all(d, jpg, 40) == SC_BAD_CORRUPT);
    /* garbage in the scan data */
    uint8_t *bad = malloc(n);
    memcpy(bad, jpg, n);
    for (size_t i = n / 3; i < n - 2; i += 7) bad[i] = (uint8_t)(bad[i] ^ 0x5A);
    CHECK(decode_all(d, bad, n) == SC_BAD_CORRUPT);
    /* a huge size in the frame header (SOF0: FF C0, length, precision, height, width) */
    memcpy(bad, jpg, n);
    for (size_t i = 2; i + 8 < n; i++)
        if (bad[i] == 0xFF && bad[i + 1] == 0xC0) {
            bad[i + 5] = bad[i + 7] = 0xFF; /* 65,5xx x 65,5xx */
            break;
        }
    int w, h;
    CHECK(sc_decoder_header(d, bad, n, &w, &h) == SC_BAD_TOO_LARGE);
    CHECK(strstr(sc_decoder_message(d), "data.max_image_pixels"));
    /* the pixel limit itself: 64 x 48 > 3000 */
    sc_decoder *small = sc_decoder_create(3000);
    CHECK(sc_decoder_header(small, jpg, n, &w, &h) == SC_BAD_TOO_LARGE);
    sc_decoder_destroy(small);
    /* a PNG cut short */
    char path[512];
    path_in(path, sizeof path, "cut.png");
    CHECK(sc_test_write_png(path, px, W, H, PNG_COLOR_TYPE_RGB, 8, NULL, 0));
    size_t pn;
    uint8_t *png = sc_test_read_file(path, &pn);
    CHECK(decode_all(d, png, pn) == SC_BAD_NONE);
    CHECK(decode_all(d, png, pn / 2) == SC_BAD_TRUNCATED);
    free(png);
    /* the decoder still works after all of that */
    CHECK(decode_all(d, jpg, n) == SC_BAD_NONE);
    free(bad);
    free(jpg);
    free(px);
    sc_decoder_destroy(d);
}

/* A progressive JPEG with one scan per AC coefficient and component (1 + 3 x 63 = 190
 * scans, valid JPEG) is refused by the scan limit. */
static void test_scan_limit(void) {
    const int W = 32, H = 32;
    uint8_t *px = sc_test_picture(W, H, 0);
    char path[512];
    path_in(path, sizeof path, "scans.jpg");
    FILE *f = fopen(path, "wb");
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = W;
    c.image_height = H;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    static jpeg_scan_info scans[1 + 3 * 63];
    scans[0] = (jpeg_scan_info){3, {0, 1, 2, 0}, 0, 0, 0, 0};
    int k = 1;
    for (int comp = 0; comp < 3; comp++)
        for (int coef = 1; coef <= 63; coef++) scans[k++] = (jpeg_scan_info){1, {comp, 0, 0, 0}, coef, coef, 0, 0};
    c.scan_info = scans;
    c.num_scans = k;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + (size_t)c.next_scanline * W * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    size_t n;
    uint8_t *jpg = sc_test_read_file(path, &n);
    sc_decoder *d = sc_decoder_create(1 << 20);
    CHECK(decode_all(d, jpg, n) == SC_BAD_CORRUPT);
    CHECKF(strstr(sc_decoder_message(d), "progressive scans"), "%s", sc_decoder_message(d));
    free(jpg);
    /* an ordinary progressive file (about 10 scans) decodes */
    jpg = jpeg_bytes("prog.jpg", px, W, H, 3, 90, 1, &n);
    CHECK(decode_all(d, jpg, n) == SC_BAD_NONE);
    free(jpg);
    free(px);
    sc_decoder_destroy(d);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        printf("cannot create %s\n", tmpdir);
        return 1;
    }
    SC_RUN(test_scale_choice);
    SC_RUN(test_crop_decode_matches_full);
    SC_RUN(test_gray_and_cmyk_jpeg);
    SC_RUN(test_png_types);
    SC_RUN(test_bad_data);
    SC_RUN(test_scan_limit);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("could not remove %s\n", tmpdir);
    return sc_test_summary();
}
