/*
 * dataset.c - opening the dataset a config names, and the in-memory dataset accessors.
 *
 * sc_dataset_open maps data.dataset + data.path to a loader: Fashion-MNIST reads IDX files
 * (data.path "" = Debian's dataset-fashion-mnist location), CIFAR-10/100 read the binary
 * batches (a path is required: no copy ships with the system). The loaders themselves live in
 * idx.c and cifar.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "simclr/data.h"
#include "simclr/status.h"

#define FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

/* The IDX file `stem` in `dir`, preferring the gzip-compressed name. Returns 1 when one
 * exists; `out` then holds its path. */
static int idx_file_path(const char *dir, const char *stem, char *out, size_t cap) {
    struct stat sb;
    snprintf(out, cap, "%s/%s.gz", dir, stem);
    if (stat(out, &sb) == 0) return 1;
    snprintf(out, cap, "%s/%s", dir, stem);
    return stat(out, &sb) == 0;
}

static sc_status open_fashion_mnist(const char *dir, sc_split split, sc_dataset *out) {
    const char *prefix = split == SC_SPLIT_TRAIN ? "train" : "t10k";
    char images_stem[64], labels_stem[64], images[4200], labels[4200];
    snprintf(images_stem, sizeof images_stem, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_stem, sizeof labels_stem, "%s-labels-idx1-ubyte", prefix);
    int have_images = idx_file_path(dir, images_stem, images, sizeof images);
    int have_labels = idx_file_path(dir, labels_stem, labels, sizeof labels);
    if (!have_images || !have_labels)
        return sc_errorf(SC_ERR_IO,
                         "Fashion-MNIST %s files not found in %s: expected %s.gz and %s.gz "
                         "(or uncompressed); set data.path to their directory or install "
                         "Debian's dataset-fashion-mnist",
                         split == SC_SPLIT_TRAIN ? "train" : "test", dir, images_stem,
                         labels_stem);
    return sc_dataset_load_idx(images, labels,
                               split == SC_SPLIT_TRAIN ? "fashion_mnist/train" : "fashion_mnist/test",
                               out);
}

sc_status sc_dataset_open(const sc_config *cfg, sc_split split, sc_dataset *out) {
    memset(out, 0, sizeof *out);
    const char *path = cfg->data.path;
    switch (cfg->data.dataset) {
    case SC_DATASET_FASHION_MNIST:
        return open_fashion_mnist(path[0] ? path : FASHION_MNIST_DEFAULT_DIR, split, out);
    case SC_DATASET_CIFAR10:
    case SC_DATASET_CIFAR100: {
        int c100 = cfg->data.dataset == SC_DATASET_CIFAR100;
        if (!path[0])
            return sc_errorf(
                SC_ERR_CONFIG,
                "data.path is required for %s: set it to the directory holding %s (or its "
                "parent, which holds %s/), the binary version from "
                "https://www.cs.toronto.edu/~kriz/cifar.html",
                c100 ? "cifar100" : "cifar10",
                c100 ? "train.bin and test.bin" : "data_batch_1..5.bin and test_batch.bin",
                c100 ? "cifar-100-binary" : "cifar-10-batches-bin");
        return sc_dataset_load_cifar(path, c100, split, out);
    }
    }
    return sc_errorf(SC_ERR_CONFIG, "data.dataset: unknown dataset kind %d", cfg->data.dataset);
}

sc_image sc_dataset_image(const sc_dataset *ds, int64_t index) {
    SC_CHECK(index >= 0 && index < ds->count, "image %lld of %lld in %s", (long long)index,
             (long long)ds->count, ds->name);
    size_t bytes = (size_t)ds->height * (size_t)ds->width * (size_t)ds->channels;
    sc_image im = {ds->height, ds->width, ds->channels, ds->pixels + (size_t)index * bytes};
    return im;
}

void sc_dataset_truncate(sc_dataset *ds, int64_t count) {
    SC_CHECK(count >= 0 && count <= ds->count, "truncate %s to %lld of %lld images", ds->name,
             (long long)count, (long long)ds->count);
    ds->count = count;
}

void sc_dataset_free(sc_dataset *ds) {
    free(ds->pixels);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}
