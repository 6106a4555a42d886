/*
 * test_eval.c - evaluation maths without a network: classification metrics against
 * hand-computed confusion matrices, the linear protocol and the kNN vote on synthetic sets
 * whose accuracy is known exactly, the class-balanced label subsets, PNG encoding (decoded
 * back with libpng) and the CRC-32C test vectors of the TensorBoard record format.
 */
#include <png.h>

#include "harness.h"
#include "simclr/backend.h"
#include "simclr/eval.h"
#include "simclr/image.h"
#include "simclr/rng.h"
#include "simclr/tensorboard.h"

/* ---- metrics ------------------------------------------------------------------------------- */

/* Six samples, three classes (see the comments for the hand computation). */
static const float six_scores[6][3] = {
    {0.9f, 0.05f, 0.05f}, /* y0 -> 0 */
    {0.2f, 0.7f, 0.1f},   /* y0 -> 1 */
    {0.1f, 0.8f, 0.1f},   /* y1 -> 1 */
    {0.3f, 0.3f, 0.4f},   /* y1 -> 2 */
    {0.5f, 0.5f, 0.0f},   /* y1 -> 0: a tie goes to the first class */
    {0.1f, 0.2f, 0.7f},   /* y2 -> 2 */
};
static const int32_t six_labels[6] = {0, 0, 1, 1, 1, 2};

static void test_metrics_hand_computed(void) {
    sc_class_metrics m;
    CHECK(sc_class_metrics_compute(&six_scores[0][0], six_labels, 6, 3, &m) == SC_OK);
    const int64_t want[9] = {1, 1, 0, 1, 1, 1, 0, 0, 1};
    CHECK(memcmp(m.confusion, want, sizeof want) == 0);
    CHECK(m.support[0] == 2 && m.support[1] == 3 && m.support[2] == 1);
    CHECK_CLOSE(m.top1, 0.5, 1e-12, 0);
    CHECK_CLOSE(m.top5, 1.0, 1e-12, 0); /* top-min(5, 3) */
    for (int k = 0; k < 3; k++) CHECK_CLOSE(m.precision[k], 0.5, 1e-12, 0);
    CHECK_CLOSE(m.recall[0], 0.5, 1e-12, 0);
    CHECK_CLOSE(m.recall[1], 1.0 / 3.0, 1e-12, 0);
    CHECK_CLOSE(m.recall[2], 1.0, 1e-12, 0);
    CHECK_CLOSE(m.f1[0], 0.5, 1e-12, 0);
    CHECK_CLOSE(m.f1[1], 0.4, 1e-12, 0);
    CHECK_CLOSE(m.f1[2], 2.0 / 3.0, 1e-12, 0);
    CHECK_CLOSE(m.macro_precision, 0.5, 1e-12, 0);
    CHECK_CLOSE(m.macro_recall, (0.5 + 1.0 / 3.0 + 1.0) / 3.0, 1e-12, 0);
    CHECK_CLOSE(m.macro_f1, (0.5 + 0.4 + 2.0 / 3.0) / 3.0, 1e-12, 0);
    CHECK_CLOSE(m.weighted_precision, 0.5, 1e-12, 0);
    CHECK_CLOSE(m.weighted_recall, 0.5, 1e-12, 0);
    CHECK_CLOSE(m.weighted_f1, (2 * 0.5 + 3 * 0.4 + 2.0 / 3.0) / 6.0, 1e-12, 0);
    sc_class_metrics_free(&m);

    /* a fourth class that never occurs and is never predicted: zeros, counted in the macro mean only */
    float s4[6][4];
    for (int i = 0; i < 6; i++) {
        memcpy(s4[i], six_scores[i], sizeof six_scores[i]);
        s4[i][3] = -1.0f;
    }
    CHECK(sc_class_metrics_compute(&s4[0][0], six_labels, 6, 4, &m) == SC_OK);
    CHECK(m.precision[3] == 0.0 && m.recall[3] == 0.0 && m.f1[3] == 0.0 && m.support[3] == 0);
    CHECK_CLOSE(m.macro_precision, 0.375, 1e-12, 0);
    CHECK_CLOSE(m.weighted_precision, 0.5, 1e-12, 0);
    sc_class_metrics_free(&m);

    /* a label outside the classes is an error naming the sample */
    int32_t bad[6] = {0, 0, 1, 3, 1, 2};
    CHECK(sc_class_metrics_compute(&six_scores[0][0], bad, 6, 3, &m) == SC_ERR_DATA && strstr(sc_last_error(), "sample 3"));
}

static void test_metrics_top5(void) {
    /* 7 classes, scores 6,5,4,3,2,1,0 for classes 0..6: class c ranks c-th */
    float s[7][7];
    int32_t y[7];
    for (int i = 0; i < 7; i++) {
        for (int c = 0; c < 7; c++) s[i][c] = (float)(6 - c);
        y[i] = i;
    }
    sc_class_metrics m;
    CHECK(sc_class_metrics_compute(&s[0][0], y, 7, 7, &m) == SC_OK);
    CHECK_CLOSE(m.top1, 1.0 / 7.0, 1e-12, 0);
    CHECK_CLOSE(m.top5, 5.0 / 7.0, 1e-12, 0); /* labels 0..4 are within the top 5 */
    /* every sample predicted class 0 */
    for (int r = 0; r < 7; r++) CHECK(m.confusion[r * 7] == 1);
    sc_class_metrics_free(&m);
}

static void test_metrics_outputs(void) {
    sc_class_metrics m;
    CHECK(sc_class_metrics_compute(&six_scores[0][0], six_labels, 6, 3, &m) == SC_OK);
    char path[] = "/tmp/simclr_metrics_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    const char *names[3] = {"cat \"x\"", "dog", "emu"};
    sc_class_metrics_write_json(f, &m, names, "");
    fprintf(f, "\n");
    sc_class_metrics_write_text(f, &m, names);
    rewind(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    CHECK(strstr(buf, "\"confusion_matrix_rows_true_cols_predicted\"") && strstr(buf, "[1, 1, 1]"));
    CHECK(strstr(buf, "\"name\": \"cat \\\"x\\\"\"") != NULL); /* escaped */
    CHECK(strstr(buf, "\"macro\": {\"precision\": 0.500000") != NULL);
    CHECK(strstr(buf, "top-1 0.5000") != NULL);
    snprintf(path + strlen(path), 8, ".png");
    CHECK(sc_class_metrics_write_png(path, &m) == SC_OK);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    CHECK(png_image_begin_read_from_file(&img, path) && img.width > 50 && img.width == img.height);
    png_image_free(&img);
    remove(path);
    path[strlen(path) - 4] = '\0';
    remove(path);
    sc_class_metrics_free(&m);
}

/* ---- synthetic separable sets ----------------------------------------------------------------- */

/* n points of `classes` clusters in `dim` dimensions: class c sits at 6 * e_c (c < dim) with
 * uniform noise in [-1, 1]^dim, so any two classes are linearly separable with a margin. The
 * labels of every `flip_every`-th point (0 = none) are shifted to the next class. */
static void make_clusters(float *x, int32_t *y, int64_t n, int dim, int classes, uint64_t seed, int flip_every) {
    sc_rng r = sc_rng_make(seed, 0, 0, 0, SC_RNG_TEST);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % classes);
        for (int j = 0; j < dim; j++) x[i * dim + j] = (j == c ? 6.0f : 0.0f) + sc_rng_range(&r, -1.0f, 1.0f);
        y[i] = flip_every > 0 && i % flip_every == 0 ? (c + 1) % classes : c;
    }
}

static void test_linear_known_accuracy(void) {
    enum { NTR = 600, NTE = 300, DIM = 6, C = 4 };
    static float xtr[NTR * DIM], xte[NTE * DIM], scores[NTE * C];
    static int32_t ytr[NTR], yte[NTE];
    make_clusters(xtr, ytr, NTR, DIM, C, 1, 0);
    make_clusters(xte, yte, NTE, DIM, C, 2, 10); /* 30 of 300 test labels wrong: 90 % at best */
    sc_linear_options o = {.holdout = 0.1, .l2 = 1e-4, .l2_min = 1e-5, .l2_max = 1e-1, .l2_points = 5, .max_iters = 200, .seed = 3};
    sc_logreg_result r;
    CHECK(sc_linear_eval(xtr, ytr, NTR, xte, yte, NTE, DIM, C, &o, &r, scores) == SC_OK);
    CHECK_CLOSE(r.train_accuracy, 1.0, 1e-12, 0);
    CHECK_CLOSE(r.test_accuracy, 0.9, 1e-12, 0);
    CHECK(r.grid_count == 5 && r.holdout_samples == 60); /* 15 of each class's 150 */
    CHECK_CLOSE(r.grid_l2[0], 1e-5, 0, 1e-12);
    CHECK_CLOSE(r.grid_l2[4], 1e-1, 0, 1e-12);
    CHECK_CLOSE(r.grid_l2[2], 1e-3, 0, 1e-12);
    int chosen = 0;
    for (int g = 0; g < r.grid_count; g++) chosen += r.grid_l2[g] == r.l2;
    CHECK(chosen == 1);
    /* the scores agree with the reported accuracy; deterministic */
    sc_class_metrics m;
    CHECK(sc_class_metrics_compute(scores, yte, NTE, C, &m) == SC_OK);
    CHECK(m.top1 == r.test_accuracy && m.top5 == 1.0);
    sc_class_metrics_free(&m);
    sc_logreg_result again;
    CHECK(sc_linear_eval(xtr, ytr, NTR, xte, yte, NTE, DIM, C, &o, &again, NULL) == SC_OK);
    CHECK(again.l2 == r.l2 && again.train_loss == r.train_loss && again.iterations == r.iterations);
    /* no hold-out: the fixed penalty */
    o.holdout = 0;
    CHECK(sc_linear_eval(xtr, ytr, NTR, xte, yte, NTE, DIM, C, &o, &again, NULL) == SC_OK);
    CHECK(again.grid_count == 0 && again.l2 == 1e-4 && again.test_accuracy == 0.9);
}

static void test_knn_known_accuracy(void) {
    enum { NTR = 500, NTE = 200, DIM = 8, C = 5 };
    static float xtr[NTR * DIM], xte[NTE * DIM], scores[NTE * C];
    static int32_t ytr[NTR], yte[NTE];
    make_clusters(xtr, ytr, NTR, DIM, C, 4, 0);
    make_clusters(xte, yte, NTE, DIM, C, 5, 4); /* every 4th test label wrong: 75 % */
    sc_backend *be;
    CHECK(sc_backend_create("cpu", &(sc_backend_options){.threads = 2}, &be) == SC_OK);
    sc_knn_result r;
    CHECK(sc_knn_eval(be, xtr, ytr, NTR, xte, yte, NTE, DIM, C, 200, 0.1, &r, scores) == SC_OK);
    CHECK_CLOSE(r.top1, 0.75, 1e-12, 0);
    CHECK(r.k == 200 && r.temperature == 0.1);
    /* k larger than the bank is clamped */
    CHECK(sc_knn_eval(be, xtr, ytr, 50, xte, yte, NTE, DIM, C, 200, 0.1, &r, NULL) == SC_OK && r.k == 50);
    /* a hand-sized case: bank (1,0) a, (0.8,0.6) b, (0,1) b; query (1,0): k = 2 gives
     * a: e^(1/0.5), b: e^(0.8/0.5) -> a wins; with t = 0.1 too */
    float bank[6] = {1, 0, 0.8f, 0.6f, 0, 1}, q[2] = {2, 0}, s[2];
    int32_t bl[3] = {0, 1, 1}, ql[1] = {1};
    CHECK(sc_knn_eval(be, bank, bl, 3, q, ql, 1, 2, 2, 2, 0.5, &r, s) == SC_OK);
    CHECK_CLOSE(s[0], exp(2.0), 1e-5, 1e-6);
    CHECK_CLOSE(s[1], exp(1.6), 1e-5, 1e-6);
    CHECK(r.top1 == 0.0 && r.top5 == 1.0);
    /* k = 3: b's votes e^1.6 + e^0 = 5.95 still lose to a's e^2 = 7.39 */
    CHECK(sc_knn_eval(be, bank, bl, 3, q, ql, 1, 2, 2, 3, 0.5, &r, s) == SC_OK);
    CHECK_CLOSE(s[1], exp(1.6) + 1.0, 1e-5, 1e-6);
    sc_backend_destroy(be);
}

/* ---- label subsets ------------------------------------------------------------------------------ */

static void test_label_subset(void) {
    enum { N = 1000 };
    static int32_t y[N];
    /* classes 0..8 have 110 images each (990), class 9 only 10 */
    for (int i = 0; i < N; i++) y[i] = i < 990 ? i % 9 : 9;
    int64_t *a, *b, na, nb;
    CHECK(sc_label_subset(y, N, 10, 0.5, 7, &a, &na) == SC_OK);
    /* round(0.5 * 1000 / 10) = 50 per class, class 9 capped at its 10 */
    CHECK(na == 9 * 50 + 10);
    int per[10] = {0}, sorted = 1;
    for (int64_t i = 0; i < na; i++) {
        per[y[a[i]]]++;
        if (i > 0 && a[i] <= a[i - 1]) sorted = 0;
    }
    CHECK(sorted);
    for (int c = 0; c < 9; c++) CHECK(per[c] == 50);
    CHECK(per[9] == 10);
    /* reproducible from the seed, different for another seed */
    CHECK(sc_label_subset(y, N, 10, 0.5, 7, &b, &nb) == SC_OK && nb == na && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    free(b);
    CHECK(sc_label_subset(y, N, 10, 0.5, 8, &b, &nb) == SC_OK && nb == na && memcmp(a, b, (size_t)na * sizeof *a) != 0);
    free(b);
    free(a);
    /* small fractions keep at least one image per class; the whole set at 1.0 when balanced */
    CHECK(sc_label_subset(y, N, 10, 0.0001, 1, &a, &na) == SC_OK && na == 10);
    free(a);
    for (int i = 0; i < N; i++) y[i] = i % 10;
    CHECK(sc_label_subset(y, N, 10, 1.0, 1, &a, &na) == SC_OK && na == N);
    for (int64_t i = 0; i < na; i++) CHECK(a[i] == i);
    free(a);
    CHECK(sc_label_subset(y, N, 10, 0.1, 1, &a, &na) == SC_OK && na == 100);
    free(a);
    CHECK(sc_label_subset(y, N, 10, 1.5, 1, &a, &na) == SC_ERR_ARG);
}

/* ---- PNG and CRC ----------------------------------------------------------------------------- */

static void test_png_round_trip(void) {
    sc_image8 img;
    CHECK(sc_image8_alloc(&img, 5, 3, 3, 0) == SC_OK);
    for (int i = 0; i < 5 * 3 * 3; i++) img.pixels[i] = (uint8_t)(i * 17);
    uint8_t *png;
    size_t len;
    CHECK(sc_png_encode(&img, &png, &len) == SC_OK && len > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
    png_image r;
    memset(&r, 0, sizeof r);
    r.version = PNG_IMAGE_VERSION;
    CHECK(png_image_begin_read_from_memory(&r, png, len));
    CHECK(r.width == 5 && r.height == 3);
    r.format = PNG_FORMAT_RGB;
    uint8_t back[45];
    CHECK(png_image_finish_read(&r, NULL, back, 0, NULL));
    CHECK(memcmp(back, img.pixels, sizeof back) == 0);
    free(png);
    /* paste: gray float tile into RGB, clipped to [0, 1]; digits draw inside the image */
    float tile[4] = {-1.0f, 0.5f, 1.0f, 2.0f};
    sc_image8_paste_float(&img, 3, 1, tile, 2, 2, 1);
    CHECK(img.pixels[(1 * 5 + 3) * 3] == 0 && img.pixels[(1 * 5 + 4) * 3 + 1] == 128 && img.pixels[(2 * 5 + 4) * 3 + 2] == 255);
    CHECK(sc_image8_number_width(1234, 2) == 30);
    sc_image8_free(&img);
    CHECK(sc_image8_alloc(&img, 0, 3, 3, 0) == SC_ERR_ARG);
}

static void test_crc32c_vectors(void) {
    uint8_t zeros[32] = {0};
    CHECK(sc_crc32c(zeros, 32) == 0x8a9136aau);
    static const char rec[] = "\x1a\x11" "CRC test, one two";
    CHECK(sc_crc32c_masked(rec, sizeof rec - 1) == 0x5794d08au);
    CHECK(sc_crc32c("123456789", 9) == 0xe3069283u); /* the standard check value */
}

int main(void) {
    SC_RUN(test_metrics_hand_computed);
    SC_RUN(test_metrics_top5);
    SC_RUN(test_metrics_outputs);
    SC_RUN(test_linear_known_accuracy);
    SC_RUN(test_knn_known_accuracy);
    SC_RUN(test_label_subset);
    SC_RUN(test_png_round_trip);
    SC_RUN(test_crc32c_vectors);
    return sc_test_summary();
}
