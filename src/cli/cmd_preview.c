/*
 * cmd_preview.c - `simclr preview`: a PNG grid of what the model sees. The loader produces the
 * first training batch of epoch 0 exactly as `simclr train` would with the same config (same
 * seed, same Philox keys, CPU augmentation), and each row of the grid shows one sample's two
 * views side by side. Normalised views are mapped back to [0, 1] with data.mean/std first.
 */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "simclr/data.h"

static const char preview_usage[] =
    "usage: simclr preview [--config FILE] [--set KEY=VALUE]... [--out FILE.png] [--samples N]\n"
    "\n"
    "Write a PNG grid of the two augmented views of the first N samples of the first training\n"
    "batch (one sample per row), as `simclr train` with the same config would produce them.\n"
    "\n"
    "options:\n"
    "  --config FILE      YAML config (without it, the embedded Fashion-MNIST default)\n"
    "  --set KEY=VALUE    override one key (repeatable)\n"
    "  --out FILE.png     output image (default preview.png)\n"
    "  --samples N        rows of the grid, 1..256 (default 8)\n"
    "  -h, --help         this text\n"
    "\n"
    "config keys:\n";

enum { GAP = 4 }; /* pixels between tiles */

/* Write rgb [h, w, 3] as an 8-bit PNG. */
static sc_status write_png(const char *path, const uint8_t *rgb, int w, int h) {
    FILE *f = fopen(path, "wb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return sc_errorf(SC_ERR_NOMEM, "%s: out of memory for the PNG writer", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return sc_errorf(SC_ERR_IO, "%s: libpng could not write the image", path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return SC_OK;
}

/* The grid [rows * (S + GAP) - GAP, 2 * S + GAP, 3] of a TRAIN batch's first `rows` samples. */
static uint8_t *render(const sc_batch *b, const sc_augment_params *p, int rows, int *gw, int *gh) {
    const int S = b->height, C = b->channels;
    *gw = 2 * S + GAP;
    *gh = rows * (S + GAP) - GAP;
    uint8_t *img = calloc((size_t)*gw * *gh * 3, 1);
    if (!img) return NULL;
    memset(img, 255, (size_t)*gw * *gh * 3); /* white gaps */
    for (int j = 0; j < rows; j++)
        for (int v = 0; v < 2; v++) {
            const float *view = b->views + (size_t)(v * b->samples + j) * S * S * C; /* [S, S, C] */
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    uint8_t *dst = img + ((size_t)(j * (S + GAP) + y) * *gw + (size_t)v * (S + GAP) + x) * 3;
                    for (int c = 0; c < 3; c++) {
                        const int src_c = C == 3 ? c : 0;
                        float t = view[((size_t)y * S + x) * C + src_c];
                        if (p->normalize) t = t * p->std[src_c] + p->mean[src_c];
                        t = t < 0 ? 0 : t > 1 ? 1 : t;
                        dst[c] = (uint8_t)(t * 255.0f + 0.5f);
                    }
                }
        }
    return img;
}

int sc_cmd_preview(int argc, char **argv) {
    const char *out = "preview.png";
    int samples = 8;
    /* take --out and --samples out of argv; the rest are the shared config options */
    char **rest = malloc((size_t)(argc + 1) * sizeof *rest);
    if (!rest) return sc_cli_fail(sc_errorf(SC_ERR_NOMEM, "out of memory"));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "--samples") == 0) && i + 1 < argc) {
            if (argv[i][2] == 'o') {
                out = argv[++i];
            } else {
                char *end;
                long n = strtol(argv[++i], &end, 10);
                if (*end || n < 1 || n > 256) {
                    free(rest);
                    fprintf(stderr, "simclr: error: --samples '%s': expected an integer in 1..256\n", argv[i]);
                    return SC_EXIT_USAGE;
                }
                samples = (int)n;
            }
        } else {
            rest[nrest++] = argv[i];
        }
    }
    rest[nrest] = NULL;
    sc_cli_opts opts;
    int code = sc_cli_parse(nrest, rest, &opts, preview_usage);
    free(rest);
    if (code >= 0) return code;
    if (opts.npos > 0) {
        fprintf(stderr, "simclr: error: unexpected argument '%s' (see simclr preview --help)\n", opts.pos[0]);
        return SC_EXIT_USAGE;
    }
    sc_config cfg;
    sc_status st = sc_cli_build_config(&opts, opts.config_file ? NULL : sc_default_config_yaml,
                                       "<embedded configs/fashion_mnist.yaml>", &cfg);
    if (st != SC_OK) return sc_cli_fail(st);

    sc_dataset ds;
    sc_augment_params aug;
    sc_loader *l = NULL;
    sc_batch *b = NULL;
    uint8_t *grid = NULL;
    st = sc_dataset_open(&cfg, SC_SPLIT_TRAIN, &ds);
    if (st != SC_OK) return sc_cli_fail(st);
    st = sc_augment_params_from_config(&cfg, &ds, &aug);
    /* the first batch of training: same seed, batch size and sampler; only the rows shown */
    const int B = cfg.train.batch_size;
    if (st == SC_OK && samples > B) samples = B;
    sc_loader_options lo = {.dataset = &ds, .aug = aug, .mode = SC_LOADER_TRAIN, .batch_size = B,
                            .workers = cfg.data.workers, .prefetch = 1, .seed = (uint64_t)cfg.run.seed,
                            .rank = 0, .world_size = 1, .output = SC_LOADER_VIEWS};
    if (st == SC_OK) st = sc_loader_create(&lo, &l);
    if (st == SC_OK) st = sc_loader_start_epoch(l, 0, 0);
    if (st == SC_OK) st = sc_loader_next(l, &b, NULL);
    int gw = 0, gh = 0;
    if (st == SC_OK && b) {
        grid = render(b, &aug, samples, &gw, &gh);
        if (!grid) st = sc_errorf(SC_ERR_NOMEM, "out of memory for a %dx%d preview", gw, gh);
    }
    if (st == SC_OK && grid) st = write_png(out, grid, gw, gh);
    if (st == SC_OK)
        printf("%s: %d samples of %s, two %dx%d views each (left: view 1, right: view 2)\n", out, samples,
               ds.name, aug.out_size, aug.out_size);
    free(grid);
    if (b) sc_loader_release(l, b);
    sc_loader_destroy(l);
    sc_dataset_free(&ds);
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
