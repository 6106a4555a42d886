/*
 * tiny_data.h - a small Fashion-MNIST-format dataset for tests that run whole trainings many
 * times (resume, crash): the first `n_train` / `n_test` images of Debian's Fashion-MNIST
 * written as uncompressed IDX files into a directory, so that epochs are a dozen steps long and
 * a process starts in milliseconds. Point data.path at the directory.
 */
#ifndef SIMCLR_TEST_TINY_DATA_H
#define SIMCLR_TEST_TINY_DATA_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "simclr/data.h"

#define SC_TINY_FASHION_DIR "/usr/share/datasets/fashion-mnist"

static int sc_tiny_write_idx(const char *path, const uint8_t *data, int64_t count, int images) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    uint8_t head[16] = {0, 0, 8, (uint8_t)(images ? 3 : 1)};
    uint32_t dims[3] = {(uint32_t)count, 28, 28};
    int ndim = images ? 3 : 1;
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++) head[4 + 4 * d + b] = (uint8_t)(dims[d] >> (24 - 8 * b));
    size_t bytes = (size_t)count * (images ? 784 : 1);
    int ok = fwrite(head, 1, (size_t)(4 + 4 * ndim), f) == (size_t)(4 + 4 * ndim) && fwrite(data, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok;
}

/* Write train-/t10k- images and labels of the first n images of each split into dir.
 * Returns 0 when Fashion-MNIST is not installed or a file cannot be written. */
static int sc_tiny_fashion_mnist(const char *dir, int64_t n_train, int64_t n_test) {
    static const char *const prefix[2] = {"train", "t10k"};
    const int64_t want[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        char images[600], labels[600];
        snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", SC_TINY_FASHION_DIR, prefix[s]);
        snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", SC_TINY_FASHION_DIR, prefix[s]);
        if (access(images, R_OK) != 0) return 0;
        sc_dataset ds;
        if (sc_dataset_load_idx(images, labels, prefix[s], &ds) != SC_OK) return 0;
        int64_t n = want[s] < ds.count ? want[s] : ds.count;
        uint8_t lab[65536];
        for (int64_t i = 0; i < n && i < 65536; i++) lab[i] = (uint8_t)ds.labels[i];
        snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte", dir, prefix[s]);
        snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte", dir, prefix[s]);
        int ok = sc_tiny_write_idx(images, ds.pixels, n, 1) && sc_tiny_write_idx(labels, lab, n, 0);
        sc_dataset_free(&ds);
        if (!ok) return 0;
    }
    return 1;
}

#endif /* SIMCLR_TEST_TINY_DATA_H */
