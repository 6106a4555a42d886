/*
 * tiny_fmnist.h - a small copy of Fashion-MNIST for tests that need whole epochs: the first
 * `ntrain` train and `ntest` test images of Debian's dataset-fashion-mnist written as
 * uncompressed IDX files into `dir`, which then serves as data.path.
 */
#ifndef SIMCLR_TEST_TINY_FMNIST_H
#define SIMCLR_TEST_TINY_FMNIST_H

#include <stdio.h>

#include "simclr/config.h"
#include "simclr/data.h"

#define SC_FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static inline int tiny_write_be32(FILE *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return fwrite(b, 1, 4, f) == 4;
}

/* Images (magic 0x803) and labels (0x801) of the first n images of ds. Returns 1 on success. */
static inline int tiny_write_split(const char *dir, const char *prefix, const sc_dataset *ds, int64_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *f = fopen(path, "wb");
    size_t img = (size_t)ds->height * (size_t)ds->width;
    int ok = f && tiny_write_be32(f, 0x803) && tiny_write_be32(f, (uint32_t)n) && tiny_write_be32(f, (uint32_t)ds->height) &&
             tiny_write_be32(f, (uint32_t)ds->width) && fwrite(ds->pixels, 1, img * (size_t)n, f) == img * (size_t)n;
    if (f) ok = fclose(f) == 0 && ok;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    f = fopen(path, "wb");
    ok = ok && f && tiny_write_be32(f, 0x801) && tiny_write_be32(f, (uint32_t)n);
    for (int64_t i = 0; ok && i < n; i++) ok = fputc(ds->labels[i], f) != EOF;
    if (f) ok = fclose(f) == 0 && ok;
    return ok;
}

static inline int tiny_fmnist_write(const char *dir, int64_t ntrain, int64_t ntest) {
    sc_config cfg;
    sc_config_defaults(&cfg);
    sc_dataset tr, te;
    if (sc_dataset_open(&cfg, SC_SPLIT_TRAIN, &tr) != SC_OK) return 0;
    if (sc_dataset_open(&cfg, SC_SPLIT_TEST, &te) != SC_OK) {
        sc_dataset_free(&tr);
        return 0;
    }
    int ok = tiny_write_split(dir, "train", &tr, ntrain) && tiny_write_split(dir, "t10k", &te, ntest);
    sc_dataset_free(&tr);
    sc_dataset_free(&te);
    return ok;
}

#endif /* SIMCLR_TEST_TINY_FMNIST_H */
