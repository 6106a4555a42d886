/*
 * dataset.c - opening the dataset a config names, and the dataset accessors.
 *
 * sc_dataset_open maps data.dataset + data.path to a loader: Fashion-MNIST reads IDX files
 * (data.path "" = Debian's dataset-fashion-mnist location), CIFAR-10/100 read the binary
 * batches (a path is required: no copy ships with the system), imagefolder and shards build
 * (or load from the cache) a file index and keep the images encoded. The readers themselves
 * live in idx.c, cifar.c and file_index.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/file_index.h"
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

const char *sc_bad_reason_name(sc_bad_reason r) {
    static const char *const names[SC_BAD_REASONS] = {
        "ok", "unreadable", "empty", "not an image", "truncated", "corrupt or unsupported", "too large"};
    return r >= 0 && r < SC_BAD_REASONS ? names[r] : "unknown";
}

/* Take the index's labels and size into the dataset; "kind:last path component" names it. */
static void adopt_index(sc_dataset *out, sc_file_index *ix, const char *kind, const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(out->name, sizeof out->name, "%s:%.*s", kind, (int)(len - start), path + start);
    out->count = ix->count;
    out->height = out->width = 0;
    out->channels = 3;
    out->num_classes = ix->labels ? ix->num_classes : 0;
    out->labels = ix->labels;
    ix->labels = NULL;
    out->index = ix;
    out->max_bad_fraction = SC_DEFAULT_MAX_BAD_FRACTION;
    out->max_image_pixels = SC_DEFAULT_MAX_IMAGE_PIXELS;
}

sc_status sc_dataset_open_imagefolder(const char *root, int labeled, const char *cache, sc_dataset *out) {
    memset(out, 0, sizeof *out);
    sc_file_index *ix;
    SC_TRY(sc_file_index_folder(root, labeled, cache, &ix));
    adopt_index(out, ix, "imagefolder", root);
    return SC_OK;
}

sc_status sc_dataset_open_shards(const char *path, const char *cache, sc_dataset *out) {
    memset(out, 0, sizeof *out);
    sc_file_index *ix;
    SC_TRY(sc_file_index_shards(path, cache, &ix));
    adopt_index(out, ix, "shards", path);
    return SC_OK;
}

void sc_dataset_describe(const sc_dataset *ds, int64_t index, char *buf, size_t cap) {
    if (ds->index)
        sc_file_index_describe(ds->index, index, buf, cap);
    else
        snprintf(buf, cap, "%s[%lld]", ds->name, (long long)index);
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
    case SC_DATASET_IMAGEFOLDER:
    case SC_DATASET_SHARDS: {
        const char *where = split == SC_SPLIT_TRAIN ? path : cfg->data.test_path;
        const char *key = split == SC_SPLIT_TRAIN ? "data.path" : "data.test_path";
        if (!where[0]) return sc_errorf(SC_ERR_CONFIG, "%s is required to open this split of the dataset", key);
        if (cfg->data.dataset == SC_DATASET_SHARDS)
            SC_TRY(sc_dataset_open_shards(where, cfg->data.cache, out));
        else
            SC_TRY(sc_dataset_open_imagefolder(where, split == SC_SPLIT_TEST || cfg->data.labeled, cfg->data.cache, out));
        out->max_bad_fraction = cfg->data.max_bad_fraction;
        out->max_image_pixels = cfg->data.max_image_pixels;
        return SC_OK;
    }
    }
    return sc_errorf(SC_ERR_CONFIG, "data.dataset: unknown dataset kind %d", cfg->data.dataset);
}

sc_image sc_dataset_image(const sc_dataset *ds, int64_t index) {
    SC_CHECK(ds->pixels != NULL, "sc_dataset_image on %s, whose images are encoded files", ds->name);
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
    sc_file_index_free(ds->index);
    memset(ds, 0, sizeof *ds);
}
