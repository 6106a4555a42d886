/*
 * test_fashion_mnist.c - the real Fashion-MNIST files (Debian's dataset-fashion-mnist) through
 * sc_dataset_open with the default path. Skips (77) when the files are not installed.
 *
 * The expected values were read once with Python's gzip module from the same files:
 *   im = gzip.open('train-images-idx3-ubyte.gz').read(); lb = gzip.open(...labels...).read()
 *   list(lb[8:18]); [sum(im[16+i*784:16+(i+1)*784]) for i in range(5)]; sum(im[16:])
 */
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "simclr/config.h"
#include "simclr/data.h"
#include "simclr/status.h"

typedef struct expected {
    sc_split split;
    const char *name;
    int64_t count;
    int labels[10];
    int64_t sums[5];      /* pixel sums of images 0..4 */
    int64_t total;        /* pixel sum of the whole split */
    int last_label;
    int64_t last_sum;
} expected;

static const expected splits[2] = {
    {SC_SPLIT_TRAIN, "fashion_mnist/train", 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5},
     {76247, 84598, 28662, 46649, 61187}, 3431114169LL, 5, 16684},
    {SC_SPLIT_TEST, "fashion_mnist/test", 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7},
     {33456, 100994, 51520, 35377, 62655}, 573469082LL, 5, 24390},
};

static int64_t image_sum(const sc_dataset *ds, int64_t i) {
    sc_image im = sc_dataset_image(ds, i);
    int64_t s = 0;
    for (int p = 0; p < im.height * im.width * im.channels; p++) s += im.pixels[p];
    return s;
}

static void test_splits(void) {
    sc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.data.dataset = SC_DATASET_FASHION_MNIST; /* path "" = the standard location */
    for (int k = 0; k < 2; k++) {
        const expected *e = &splits[k];
        sc_dataset ds;
        sc_status st = sc_dataset_open(&cfg, e->split, &ds);
        CHECKF(st == SC_OK, "%s", sc_last_error());
        if (st != SC_OK) continue;
        CHECK(strcmp(ds.name, e->name) == 0);
        CHECK(ds.count == e->count);
        CHECK(ds.height == 28 && ds.width == 28 && ds.channels == 1 && ds.num_classes == 10);
        for (int i = 0; i < 10; i++) CHECKF(ds.labels[i] == e->labels[i], "label %d", i);
        for (int i = 0; i < 5; i++) CHECKF(image_sum(&ds, i) == e->sums[i], "image %d", i);
        CHECK(ds.labels[ds.count - 1] == e->last_label);
        CHECK(image_sum(&ds, ds.count - 1) == e->last_sum);
        int64_t total = 0, hist[10] = {0};
        for (int64_t i = 0; i < ds.count * 784; i++) total += ds.pixels[i];
        for (int64_t i = 0; i < ds.count; i++) hist[ds.labels[i]]++;
        CHECK(total == e->total);
        for (int c = 0; c < 10; c++) CHECK(hist[c] == e->count / 10); /* balanced classes */
        sc_dataset_free(&ds);
    }
}

int main(void) {
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &sb) != 0)
        sc_test_skip("Fashion-MNIST is not installed in /usr/share/datasets/fashion-mnist");
    SC_RUN(test_splits);
    return sc_test_summary();
}
