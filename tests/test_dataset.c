/*
 * test_dataset.c - IDX and CIFAR readers on small files the test writes itself: round trips
 * (gzip and plain IDX, CIFAR planes -> HWC, CIFAR-100 fine labels, the archive subdirectory),
 * and every malformed case giving an error that names the file and the defect.
 * The real Fashion-MNIST files are checked by test_fashion_mnist.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "simclr/config.h"
#include "simclr/data.h"
#include "simclr/status.h"

static char tmpdir[64];

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmpdir, name); }

static void write_bytes(const char *path, const uint8_t *data, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f) { perror(path); exit(1); }
        if (n) gzwrite(f, data, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f) { perror(path); exit(1); }
        if (n) fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX image file [count, rows, cols] with pixel i = (i * 7 + 3) % 256, cut to `keep`
 * bytes when keep > 0, with `extra` junk bytes appended. */
static void write_images(const char *path, int gz, uint32_t magic, uint32_t count, uint32_t rows,
                         uint32_t cols, size_t keep, size_t extra) {
    size_t n = 16 + (size_t)count * rows * cols;
    uint8_t *buf = calloc(n + extra, 1);
    put_be32(buf, magic);
    put_be32(buf + 4, count);
    put_be32(buf + 8, rows);
    put_be32(buf + 12, cols);
    for (size_t i = 16; i < n; i++) buf[i] = (uint8_t)(((i - 16) * 7 + 3) % 256);
    write_bytes(path, buf, keep ? keep : n + extra, gz);
    free(buf);
}

/* An IDX label file with label i = i % 10, or `bad` at index `bad_at` when bad_at >= 0. */
static void write_labels(const char *path, int gz, uint32_t count, int bad_at, uint8_t bad) {
    size_t n = 8 + count;
    uint8_t *buf = calloc(n, 1);
    put_be32(buf, 0x00000801);
    put_be32(buf + 4, count);
    for (uint32_t i = 0; i < count; i++) buf[8 + i] = (uint8_t)(i % 10);
    if (bad_at >= 0) buf[8 + bad_at] = bad;
    write_bytes(path, buf, n, gz);
    free(buf);
}

static int has(const char *text) { return strstr(sc_last_error(), text) != NULL; }

/* Expect `st` to be an error whose message holds every string given; prints the message. */
#define CHECK_ERROR(st, ...)                                                                   \
    do {                                                                                       \
        const char *want_[] = {__VA_ARGS__, NULL};                                             \
        CHECKF((st) != SC_OK, "expected an error");                                            \
        printf("  error: %s\n", sc_last_error());                                             \
        for (int w_ = 0; want_[w_]; w_++)                                                      \
            CHECKF(has(want_[w_]), "message \"%s\" lacks \"%s\"", sc_last_error(), want_[w_]); \
    } while (0)

static void test_idx_round_trip(void) {
    for (int gz = 0; gz < 2; gz++) {
        char im[512], lb[512];
        path_in(im, sizeof im, gz ? "rt-images.gz" : "rt-images");
        path_in(lb, sizeof lb, gz ? "rt-labels.gz" : "rt-labels");
        write_images(im, gz, 0x803, 5, 4, 3, 0, 0);
        write_labels(lb, gz, 5, -1, 0);
        sc_dataset ds;
        sc_status st = sc_dataset_load_idx(im, lb, "tiny/train", &ds);
        CHECKF(st == SC_OK, "%s", sc_last_error());
        if (st != SC_OK) continue;
        CHECK(ds.count == 5 && ds.height == 4 && ds.width == 3 && ds.channels == 1);
        CHECK(ds.num_classes == 10);
        CHECK(strcmp(ds.name, "tiny/train") == 0);
        int ok = 1;
        for (int i = 0; i < 5 * 12; i++) ok &= ds.pixels[i] == (uint8_t)((i * 7 + 3) % 256);
        CHECK(ok);
        for (int i = 0; i < 5; i++) CHECK(ds.labels[i] == i % 10);
        sc_image img = sc_dataset_image(&ds, 2);
        CHECK(img.height == 4 && img.width == 3 && img.channels == 1);
        CHECK(img.pixels == ds.pixels + 24);
        sc_dataset_truncate(&ds, 3);
        CHECK(ds.count == 3);
        sc_dataset_free(&ds);
        CHECK(ds.pixels == NULL && ds.labels == NULL && ds.count == 0);
    }
}

static void test_idx_malformed(void) {
    char im[512], lb[512], good_im[512], good_lb[512];
    sc_dataset ds;
    path_in(good_im, sizeof good_im, "good-images.gz");
    path_in(good_lb, sizeof good_lb, "good-labels.gz");
    write_images(good_im, 1, 0x803, 6, 5, 5, 0, 0);
    write_labels(good_lb, 1, 6, -1, 0);

    /* bad magic */
    path_in(im, sizeof im, "magic-images.gz");
    write_images(im, 1, 0x802, 6, 5, 5, 0, 0);
    CHECK_ERROR(sc_dataset_load_idx(im, good_lb, "x", &ds), "magic-images.gz", "byte 0",
                "bad magic 0x00000802", "expected 0x00000803");
    CHECK(ds.pixels == NULL && ds.count == 0);
    /* labels file given as images: the magic says so */
    CHECK_ERROR(sc_dataset_load_idx(good_lb, good_lb, "x", &ds), "good-labels.gz",
                "bad magic 0x00000801");

    /* truncated data: 16 + 150 bytes expected, 100 written */
    path_in(im, sizeof im, "short-images.gz");
    write_images(im, 1, 0x803, 6, 5, 5, 100, 0);
    CHECK_ERROR(sc_dataset_load_idx(im, good_lb, "x", &ds), "short-images.gz",
                "truncated at byte 100 of 166 expected");

    /* truncated header */
    path_in(im, sizeof im, "hdr-images");
    write_images(im, 0, 0x803, 6, 5, 5, 10, 0);
    CHECK_ERROR(sc_dataset_load_idx(im, good_lb, "x", &ds), "hdr-images",
                "truncated at byte 10 of 16 expected");

    /* trailing bytes after the data */
    path_in(im, sizeof im, "long-images");
    write_images(im, 0, 0x803, 6, 5, 5, 0, 3);
    CHECK_ERROR(sc_dataset_load_idx(im, good_lb, "x", &ds), "long-images", "byte 166",
                "continues past");

    /* zero dimensions */
    path_in(im, sizeof im, "zero-images");
    write_images(im, 0, 0x803, 0, 5, 5, 0, 0);
    CHECK_ERROR(sc_dataset_load_idx(im, good_lb, "x", &ds), "zero-images", "empty dimensions");

    /* zero-byte file */
    path_in(im, sizeof im, "empty-images.gz");
    write_bytes(im, NULL, 0, 0);
    CHECK_ERROR(sc_dataset_load_idx(im, good_lb, "x", &ds), "empty-images.gz", "empty file");

    /* missing file */
    path_in(im, sizeof im, "no-such-file.gz");
    CHECK_ERROR(sc_dataset_load_idx(im, good_lb, "x", &ds), "no-such-file.gz", "cannot open",
                "No such file");
    path_in(lb, sizeof lb, "no-such-labels.gz");
    CHECK_ERROR(sc_dataset_load_idx(good_im, lb, "x", &ds), "no-such-labels.gz", "cannot open");
    CHECK(ds.pixels == NULL);

    /* label count mismatch */
    path_in(lb, sizeof lb, "five-labels.gz");
    write_labels(lb, 1, 5, -1, 0);
    CHECK_ERROR(sc_dataset_load_idx(good_im, lb, "x", &ds), "five-labels.gz", "5 labels",
                "good-images.gz has 6 images");

    /* label out of range, at byte 8 + 4 */
    path_in(lb, sizeof lb, "bad-label.gz");
    write_labels(lb, 1, 6, 4, 12);
    CHECK_ERROR(sc_dataset_load_idx(good_im, lb, "x", &ds), "bad-label.gz", "byte 12",
                "label 12", "out of range 0..9");

    /* a corrupt gzip stream: flip bytes in the middle of the compressed data */
    path_in(im, sizeof im, "corrupt-images.gz");
    write_images(im, 1, 0x803, 200, 28, 28, 0, 0);
    FILE *f = fopen(im, "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    uint8_t junk[64];
    memset(junk, 0xA5, sizeof junk);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    sc_status st = sc_dataset_load_idx(im, good_lb, "x", &ds);
    CHECK_ERROR(st, "corrupt-images.gz");
    CHECKF(has("corrupt gzip stream") || has("truncated"), "%s", sc_last_error());
}

static void test_open_fashion_mnist_path(void) {
    char dir[128], p[600];
    path_in(dir, sizeof dir, "fmnist");
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    write_images(p, 1, 0x803, 7, 28, 28, 0, 0);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir); /* uncompressed works too */
    write_labels(p, 0, 7, -1, 0);
    sc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.data.dataset = SC_DATASET_FASHION_MNIST;
    snprintf(cfg.data.path, sizeof cfg.data.path, "%s", dir);
    sc_dataset ds;
    sc_status st = sc_dataset_open(&cfg, SC_SPLIT_TEST, &ds);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECK(ds.count == 7 && strcmp(ds.name, "fashion_mnist/test") == 0);
    sc_dataset_free(&ds);
    /* no train files there */
    CHECK_ERROR(sc_dataset_open(&cfg, SC_SPLIT_TRAIN, &ds), "Fashion-MNIST train files not found",
                dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "data.path");
}

/* ---- CIFAR ------------------------------------------------------------------------------- */

/* Pixel value of image `id`, row y, column x, channel c in the synthetic files. */
static uint8_t cifar_px(int id, int y, int x, int c) { return (uint8_t)(id * 31 + y * 7 + x * 3 + c * 101); }

/* `n` records starting at image id `first`; labels (first + i) % classes; CIFAR-100 records
 * get coarse label (fine / 5). */
static void write_cifar(const char *path, int cifar100, int first, int n, int classes) {
    size_t lb = cifar100 ? 2 : 1, rec = lb + 3072;
    uint8_t *buf = calloc((size_t)n, rec);
    for (int i = 0; i < n; i++) {
        uint8_t *r = buf + (size_t)i * rec;
        int id = first + i;
        r[lb - 1] = (uint8_t)(id % classes);
        if (cifar100) r[0] = (uint8_t)(r[1] / 5);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) r[lb + c * 1024 + y * 32 + x] = cifar_px(id, y, x, c);
    }
    write_bytes(path, buf, (size_t)n * rec, 0);
    free(buf);
}

static int check_cifar_images(const sc_dataset *ds, int classes) {
    int ok = ds->height == 32 && ds->width == 32 && ds->channels == 3;
    for (int64_t id = 0; ok && id < ds->count; id++) {
        sc_image im = sc_dataset_image(ds, id);
        ok &= ds->labels[id] == id % classes;
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++)
                    ok &= im.pixels[(y * 32 + x) * 3 + c] == cifar_px((int)id, y, x, c);
    }
    return ok;
}

static void test_cifar10(void) {
    char dir[512], p[700];
    path_in(dir, sizeof dir, "c10");
    mkdir(dir, 0755);
    const int counts[5] = {3, 2, 1, 1, 2};
    int first = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, i + 1);
        write_cifar(p, 0, first, counts[i], 10);
        first += counts[i];
    }
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    write_cifar(p, 0, 0, 4, 10);

    sc_dataset ds;
    sc_status st = sc_dataset_load_cifar(dir, 0, SC_SPLIT_TRAIN, &ds);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECK(ds.count == 9 && ds.num_classes == 10 && strcmp(ds.name, "cifar10/train") == 0);
    CHECK(check_cifar_images(&ds, 10));
    sc_dataset_free(&ds);

    /* Through the config, from the parent directory of cifar-10-batches-bin. */
    char parent[128], sub[600];
    path_in(parent, sizeof parent, "c10parent");
    mkdir(parent, 0755);
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", parent);
    mkdir(sub, 0755);
    snprintf(p, sizeof p, "%s/test_batch.bin", sub);
    write_cifar(p, 0, 0, 4, 10);
    sc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.data.dataset = SC_DATASET_CIFAR10;
    snprintf(cfg.data.path, sizeof cfg.data.path, "%s", parent);
    st = sc_dataset_open(&cfg, SC_SPLIT_TEST, &ds);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECK(ds.count == 4 && strcmp(ds.name, "cifar10/test") == 0);
    CHECK(check_cifar_images(&ds, 10));
    sc_dataset_free(&ds);

    /* No path: the error says data.path is required and which files. */
    cfg.data.path[0] = 0;
    CHECK_ERROR(sc_dataset_open(&cfg, SC_SPLIT_TRAIN, &ds), "data.path is required for cifar10",
                "data_batch_1..5.bin", "test_batch.bin", "cifar-10-batches-bin");
    /* A directory without the files. */
    CHECK_ERROR(sc_dataset_load_cifar(tmpdir, 0, SC_SPLIT_TRAIN, &ds), "CIFAR-10 train files not found",
                "data_batch_1.bin", "data_batch_5.bin", "cifar-10-batches-bin");

    /* A file that is not a whole number of records. */
    snprintf(p, sizeof p, "%s/data_batch_3.bin", dir);
    FILE *f = fopen(p, "ab");
    fputc(0, f);
    fclose(f);
    CHECK_ERROR(sc_dataset_load_cifar(dir, 0, SC_SPLIT_TRAIN, &ds), "data_batch_3.bin",
                "size 3074 bytes is not a whole number of 3073-byte CIFAR-10 records",
                "1 records + 1 bytes");
    CHECK(ds.pixels == NULL && ds.count == 0);
    /* An empty file. */
    write_bytes(p, NULL, 0, 0);
    CHECK_ERROR(sc_dataset_load_cifar(dir, 0, SC_SPLIT_TRAIN, &ds), "data_batch_3.bin", "empty file");
    /* A label out of range: record 1 of data_batch_3 gets label 10. */
    write_cifar(p, 0, 5, 2, 10);
    f = fopen(p, "r+b");
    fseek(f, 3073, SEEK_SET);
    fputc(10, f);
    fclose(f);
    CHECK_ERROR(sc_dataset_load_cifar(dir, 0, SC_SPLIT_TRAIN, &ds), "data_batch_3.bin", "byte 3073",
                "label 10 of record 1", "out of range 0..9");
    /* A missing batch file. */
    unlink(p);
    CHECK_ERROR(sc_dataset_load_cifar(dir, 0, SC_SPLIT_TRAIN, &ds), "data_batch_3.bin", "cannot open");
}

static void test_cifar100(void) {
    char dir[512], sub[600], p[700];
    path_in(dir, sizeof dir, "c100");
    mkdir(dir, 0755);
    snprintf(sub, sizeof sub, "%s/cifar-100-binary", dir);
    mkdir(sub, 0755);
    snprintf(p, sizeof p, "%s/train.bin", sub);
    write_cifar(p, 1, 0, 120, 100);
    sc_dataset ds;
    sc_status st = sc_dataset_load_cifar(dir, 1, SC_SPLIT_TRAIN, &ds);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECK(ds.count == 120 && ds.num_classes == 100 && strcmp(ds.name, "cifar100/train") == 0);
    CHECK(check_cifar_images(&ds, 100)); /* fine labels, not coarse */
    sc_dataset_free(&ds);

    /* A CIFAR-10-sized record file is not a whole number of 3074-byte records. */
    snprintf(p, sizeof p, "%s/test.bin", sub);
    write_cifar(p, 0, 0, 2, 10);
    CHECK_ERROR(sc_dataset_load_cifar(dir, 1, SC_SPLIT_TEST, &ds), "test.bin",
                "not a whole number of 3074-byte CIFAR-100 records");
    /* Coarse label out of range. */
    write_cifar(p, 1, 0, 3, 100);
    FILE *f = fopen(p, "r+b");
    fseek(f, 2 * 3074, SEEK_SET);
    fputc(20, f);
    fclose(f);
    CHECK_ERROR(sc_dataset_load_cifar(dir, 1, SC_SPLIT_TEST, &ds), "test.bin", "byte 6148",
                "coarse label 20 of record 2", "out of range 0..19");
}

static void remove_tree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", dir);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/simclr_test_dataset_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    SC_RUN(test_idx_round_trip);
    SC_RUN(test_idx_malformed);
    SC_RUN(test_open_fashion_mnist_path);
    SC_RUN(test_cifar10);
    SC_RUN(test_cifar100);
    remove_tree(tmpdir);
    return sc_test_summary();
}
