/*
 * test_loader.c - the batch loader: batches equal the views computed directly from the epoch
 * permutation, the same bytes for 1 and 4 workers over two epochs, permutations, mid-epoch
 * resume, rank sharding, eval order with the last partial batch, misuse errors, shutdown in
 * the middle of an epoch. Ends with informational loader throughput lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "simclr/data.h"
#include "simclr/rng.h"
#include "simclr/status.h"

/* An in-memory dataset of `count` random images [count, side, side, ch], label i % 10. */
static sc_dataset make_dataset(int64_t count, int side, int ch) {
    sc_dataset ds;
    memset(&ds, 0, sizeof ds);
    snprintf(ds.name, sizeof ds.name, "synthetic");
    ds.count = count;
    ds.height = ds.width = side;
    ds.channels = ch;
    ds.num_classes = 10;
    size_t n = (size_t)count * side * side * ch;
    ds.pixels = malloc(n);
    ds.labels = malloc((size_t)count * sizeof *ds.labels);
    sc_rng r = sc_rng_make(99, 0, 0, 0, SC_RNG_TEST);
    for (size_t i = 0; i < n; i++) ds.pixels[i] = (uint8_t)sc_rng_u32(&r);
    for (int64_t i = 0; i < count; i++) ds.labels[i] = (int32_t)(i % 10);
    return ds;
}

static sc_augment_params make_params(int side, int ch) {
    sc_augment_params p;
    memset(&p, 0, sizeof p);
    p.out_size = side;
    p.out_channels = ch;
    p.crop_scale_min = 0.2;
    p.crop_scale_max = 1.0;
    p.crop_ratio_min = 0.75;
    p.crop_ratio_max = 4.0 / 3.0;
    p.flip_p = 0.5;
    p.jitter_p = 0.8;
    p.brightness = p.contrast = p.saturation = 0.4;
    p.hue = 0.1;
    p.gray_p = 0.2;
    p.blur_p = 0.5;
    p.blur_sigma_min = 0.1;
    p.blur_sigma_max = 2.0;
    return p;
}

static sc_loader_options make_options(const sc_dataset *ds, sc_loader_mode mode, int B, int workers) {
    sc_loader_options o;
    memset(&o, 0, sizeof o);
    o.dataset = ds;
    o.aug = make_params(ds->height, ds->channels);
    o.mode = mode;
    o.batch_size = B;
    o.workers = workers;
    o.prefetch = workers + 1;
    o.seed = 1234;
    o.rank = 0;
    o.world_size = 1;
    return o;
}

/* Everything an epoch produced: views, ids and labels of each batch, concatenated. */
typedef struct epoch_dump {
    int64_t batches;
    size_t nviews, nids;
    float *views;
    int64_t *ids;
    int32_t *labels;
    int *samples; /* [batches] */
} epoch_dump;

static void dump_free(epoch_dump *d) {
    free(d->views);
    free(d->ids);
    free(d->labels);
    free(d->samples);
    memset(d, 0, sizeof *d);
}

/* Run one epoch from `first_batch` and keep every batch. */
static sc_status run_epoch(sc_loader *l, int64_t epoch, int64_t first_batch, epoch_dump *d) {
    memset(d, 0, sizeof *d);
    SC_TRY(sc_loader_start_epoch(l, epoch, first_batch));
    int64_t expect = first_batch;
    for (;;) {
        sc_batch *b;
        double wait = 0;
        SC_TRY(sc_loader_next(l, &b, &wait));
        if (!b) break;
        CHECK(wait >= 0);
        CHECK(b->epoch == epoch && b->index == expect);
        expect++;
        size_t nv = (size_t)b->views_per_sample * b->samples * b->height * b->width * b->channels;
        d->views = realloc(d->views, (d->nviews + nv) * sizeof *d->views);
        memcpy(d->views + d->nviews, b->views, nv * sizeof *d->views);
        d->nviews += nv;
        d->ids = realloc(d->ids, (d->nids + (size_t)b->samples) * sizeof *d->ids);
        d->labels = realloc(d->labels, (d->nids + (size_t)b->samples) * sizeof *d->labels);
        memcpy(d->ids + d->nids, b->sample_ids, (size_t)b->samples * sizeof *d->ids);
        memcpy(d->labels + d->nids, b->labels, (size_t)b->samples * sizeof *d->labels);
        d->nids += (size_t)b->samples;
        d->samples = realloc(d->samples, (size_t)(d->batches + 1) * sizeof *d->samples);
        d->samples[d->batches++] = b->samples;
        sc_loader_release(l, b);
    }
    CHECK(expect == sc_loader_batches_per_epoch(l));
    return SC_OK;
}

static void test_permutation(void) {
    enum { N = 1000 };
    int64_t a[N], b[N];
    sc_epoch_permutation(5, 0, N, a);
    sc_epoch_permutation(5, 1, N, b);
    char seen[N] = {0};
    int ok = 1, fixed = 0;
    for (int i = 0; i < N; i++) {
        ok &= a[i] >= 0 && a[i] < N && !seen[a[i]];
        if (a[i] >= 0 && a[i] < N) seen[a[i]] = 1;
        fixed += a[i] == i;
    }
    CHECK(ok);
    CHECKF(fixed < 10, "%d fixed points", fixed); /* a random permutation has ~1 */
    CHECK(memcmp(a, b, sizeof a) != 0);
    int64_t c[N];
    sc_epoch_permutation(5, 0, N, c);
    CHECK(memcmp(a, c, sizeof a) == 0);
    sc_epoch_permutation(6, 0, N, c);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

static void test_train_batches_match_definition(void) {
    sc_dataset ds = make_dataset(100, 28, 1);
    sc_loader_options o = make_options(&ds, SC_LOADER_TRAIN, 16, 2);
    sc_loader *l;
    CHECKF(sc_loader_create(&o, &l) == SC_OK, "%s", sc_last_error());
    CHECK(sc_loader_batches_per_epoch(l) == 6); /* floor(100 / 16) */
    epoch_dump d;
    CHECK(run_epoch(l, 3, 0, &d) == SC_OK);
    int64_t perm[100];
    sc_epoch_permutation(o.seed, 3, 100, perm);
    const size_t vf = 28 * 28;
    float view[28 * 28], scratch[8192];
    int ids_ok = 1, views_ok = 1;
    for (int g = 0; g < 6; g++)
        for (int j = 0; j < 16; j++) {
            int64_t id = perm[g * 16 + j];
            ids_ok &= d.ids[g * 16 + j] == id && d.labels[g * 16 + j] == id % 10;
            sc_image im = sc_dataset_image(&ds, id);
            for (int v = 0; v < 2; v++) {
                sc_rng r = sc_rng_make(o.seed, 3, (uint32_t)id, (uint32_t)v, SC_RNG_AUGMENT);
                sc_augment_view(&o.aug, &im, &r, view, scratch, NULL);
                views_ok &= memcmp(d.views + ((size_t)g * 32 + (size_t)v * 16 + j) * vf, view,
                                   sizeof view) == 0;
            }
        }
    CHECK(ids_ok);
    CHECK(views_ok);
    CHECK(d.samples[0] == 16);
    dump_free(&d);
    sc_loader_destroy(l);
    sc_dataset_free(&ds);
}

static void test_worker_count_invariance(void) {
    sc_dataset ds = make_dataset(150, 16, 3);
    epoch_dump ref[2], got[2];
    const int workers[2] = {1, 4};
    for (int w = 0; w < 2; w++) {
        sc_loader_options o = make_options(&ds, SC_LOADER_TRAIN, 8, workers[w]);
        o.prefetch = w ? 3 : 1; /* fewer buffers than workers too */
        sc_loader *l;
        CHECKF(sc_loader_create(&o, &l) == SC_OK, "%s", sc_last_error());
        epoch_dump *d = w ? got : ref;
        for (int e = 0; e < 2; e++) CHECK(run_epoch(l, e, 0, &d[e]) == SC_OK);
        sc_loader_destroy(l);
    }
    for (int e = 0; e < 2; e++) {
        CHECK(ref[e].nviews == got[e].nviews && ref[e].nviews == 150 / 8 * 8 * 2 * 16 * 16 * 3);
        CHECK(memcmp(ref[e].views, got[e].views, ref[e].nviews * sizeof(float)) == 0);
        CHECK(memcmp(ref[e].ids, got[e].ids, ref[e].nids * sizeof(int64_t)) == 0);
    }
    /* the two epochs differ in order and in views */
    CHECK(memcmp(ref[0].ids, ref[1].ids, ref[0].nids * sizeof(int64_t)) != 0);
    for (int e = 0; e < 2; e++) {
        dump_free(&ref[e]);
        dump_free(&got[e]);
    }
    sc_dataset_free(&ds);
}

static void test_resume_mid_epoch(void) {
    sc_dataset ds = make_dataset(130, 12, 1);
    sc_loader_options o = make_options(&ds, SC_LOADER_TRAIN, 10, 3);
    sc_loader *l;
    CHECKF(sc_loader_create(&o, &l) == SC_OK, "%s", sc_last_error());
    epoch_dump full, tail;
    CHECK(run_epoch(l, 7, 0, &full) == SC_OK);
    const int64_t k = 5;
    const size_t per_batch = 2 * 10 * 12 * 12;
    /* a fresh loader, as after a restart */
    sc_loader *l2;
    CHECK(sc_loader_create(&o, &l2) == SC_OK);
    CHECK(run_epoch(l2, 7, k, &tail) == SC_OK);
    CHECK(tail.batches == full.batches - k);
    CHECK(tail.nviews == full.nviews - (size_t)k * per_batch);
    CHECK(memcmp(tail.views, full.views + (size_t)k * per_batch, tail.nviews * sizeof(float)) == 0);
    CHECK(memcmp(tail.ids, full.ids + k * 10, tail.nids * sizeof(int64_t)) == 0);
    dump_free(&tail);
    /* the same loader, restarted in the middle of an epoch with batches in flight */
    CHECK(sc_loader_start_epoch(l, 7, 0) == SC_OK);
    sc_batch *b;
    CHECK(sc_loader_next(l, &b, NULL) == SC_OK && b && b->index == 0);
    sc_loader_release(l, b);
    CHECK(run_epoch(l, 7, k, &tail) == SC_OK);
    CHECK(memcmp(tail.views, full.views + (size_t)k * per_batch, tail.nviews * sizeof(float)) == 0);
    /* starting at the end gives an empty epoch */
    CHECK(sc_loader_start_epoch(l, 7, full.batches) == SC_OK);
    CHECK(sc_loader_next(l, &b, NULL) == SC_OK && b == NULL);
    CHECK(sc_loader_start_epoch(l, 7, full.batches + 1) == SC_ERR_ARG);
    dump_free(&tail);
    dump_free(&full);
    sc_loader_destroy(l);
    sc_loader_destroy(l2);
    sc_dataset_free(&ds);
}

static void test_ranks(void) {
    sc_dataset ds = make_dataset(101, 8, 1);
    const int B = 6, W = 2;
    epoch_dump d[W];
    for (int r = 0; r < W; r++) {
        sc_loader_options o = make_options(&ds, SC_LOADER_TRAIN, B, 2);
        o.rank = r;
        o.world_size = W;
        sc_loader *l;
        CHECKF(sc_loader_create(&o, &l) == SC_OK, "%s", sc_last_error());
        CHECK(sc_loader_batches_per_epoch(l) == 101 / (B * W));
        CHECK(run_epoch(l, 2, 0, &d[r]) == SC_OK);
        sc_loader_destroy(l);
    }
    int64_t perm[101];
    sc_epoch_permutation(1234, 2, 101, perm);
    int ok = 1;
    for (int g = 0; g < 101 / (B * W); g++)
        for (int r = 0; r < W; r++)
            for (int j = 0; j < B; j++) ok &= d[r].ids[g * B + j] == perm[g * B * W + r * B + j];
    CHECK(ok); /* rank r holds slice r of each global batch: disjoint, union = the batch */
    for (int r = 0; r < W; r++) dump_free(&d[r]);
    sc_dataset_free(&ds);
}

static void test_eval_order(void) {
    sc_dataset ds = make_dataset(23, 10, 3);
    for (int W = 1; W <= 2; W++) {
        int hits[23] = {0};
        int order_ok = 1;
        for (int r = 0; r < W; r++) {
            sc_loader_options o = make_options(&ds, SC_LOADER_EVAL, 5, 2);
            o.aug.out_size = 8;
            o.rank = r;
            o.world_size = W;
            sc_loader *l;
            CHECKF(sc_loader_create(&o, &l) == SC_OK, "%s", sc_last_error());
            epoch_dump d;
            CHECK(run_epoch(l, 0, 0, &d) == SC_OK);
            if (W == 1) {
                CHECK(d.batches == 5 && d.samples[4] == 3); /* 23 = 4 x 5 + 3 */
                for (int i = 0; i < 23; i++) order_ok &= d.ids[i] == i;
                /* rows are eval views */
                float view[8 * 8 * 3], scratch[4096];
                int views_ok = 1;
                for (int i = 0; i < 23; i++) {
                    sc_image im = sc_dataset_image(&ds, i);
                    sc_augment_eval(&o.aug, &im, view, scratch);
                    views_ok &= memcmp(d.views + (size_t)i * 192, view, sizeof view) == 0;
                }
                CHECK(views_ok);
            } else {
                /* global batches of 10: rank 0 gets [0,5) [10,15) [20,23); rank 1 [5,10) [15,20) */
                CHECK(d.batches == (r == 0 ? 3 : 2));
                CHECK(sc_loader_batches_per_epoch(l) == d.batches);
            }
            for (size_t i = 0; i < d.nids; i++) {
                hits[d.ids[i]]++;
                order_ok &= i == 0 || d.ids[i] > d.ids[i - 1];
                order_ok &= d.labels[i] == d.ids[i] % 10;
            }
            dump_free(&d);
            sc_loader_destroy(l);
        }
        int once = 1;
        for (int i = 0; i < 23; i++) once &= hits[i] == 1;
        CHECKF(once, "world size %d", W);
        CHECK(order_ok);
    }
    sc_dataset_free(&ds);
}

static void test_misuse_and_shutdown(void) {
    sc_dataset ds = make_dataset(40, 8, 1);
    sc_loader_options o = make_options(&ds, SC_LOADER_TRAIN, 8, 2);
    sc_loader *l;
    sc_batch *b, *b2;
    /* option errors */
    o.batch_size = 41;
    CHECK(sc_loader_create(&o, &l) == SC_ERR_DATA && strstr(sc_last_error(), "fewer than one global batch"));
    o.batch_size = 8;
    o.workers = 0;
    CHECK(sc_loader_create(&o, &l) == SC_ERR_CONFIG && strstr(sc_last_error(), "data.workers"));
    o.workers = 2;
    o.aug.std[0] = 0;
    o.aug.normalize = 1;
    CHECK(sc_loader_create(&o, &l) == SC_ERR_CONFIG && strstr(sc_last_error(), "std"));
    o.aug.normalize = 0;
    /* next before an epoch */
    o.prefetch = 1;
    CHECK(sc_loader_create(&o, &l) == SC_OK);
    CHECK(sc_loader_next(l, &b, NULL) == SC_ERR_ARG && b == NULL);
    /* prefetch 1 and the batch still held: an error, not a deadlock */
    CHECK(sc_loader_start_epoch(l, 0, 0) == SC_OK);
    CHECK(sc_loader_next(l, &b, NULL) == SC_OK && b);
    CHECK(sc_loader_next(l, &b2, NULL) == SC_ERR_ARG && strstr(sc_last_error(), "data.prefetch"));
    sc_loader_release(l, b);
    CHECK(sc_loader_next(l, &b2, NULL) == SC_OK && b2 && b2->index == 1);
    /* destroy in the middle of an epoch while holding a batch and workers are busy */
    sc_loader_destroy(l);

    sc_dataset big = make_dataset(4096, 32, 3);
    sc_loader_options ob = make_options(&big, SC_LOADER_TRAIN, 64, 4);
    CHECK(sc_loader_create(&ob, &l) == SC_OK);
    CHECK(sc_loader_start_epoch(l, 0, 0) == SC_OK);
    CHECK(sc_loader_next(l, &b, NULL) == SC_OK && b);
    sc_loader_destroy(l);
    /* a loader that never started an epoch */
    CHECK(sc_loader_create(&ob, &l) == SC_OK);
    sc_loader_destroy(l);
    sc_dataset_free(&big);
    sc_dataset_free(&ds);
}

/* Views per second through the loader with one worker; printed, not checked. */
static void throughput(int side, int ch, int B) {
    sc_dataset ds = make_dataset(2 * B, side, ch);
    sc_loader_options o = make_options(&ds, SC_LOADER_TRAIN, B, 1);
    if (ch == 1) o.aug.blur_p = 0.0; /* configs/fashion_mnist.yaml */
    sc_loader *l;
    if (sc_loader_create(&o, &l) != SC_OK) {
        CHECKF(0, "%s", sc_last_error());
        return;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double wait = 0;
    int64_t views = 0;
    for (int e = 0; e < 8; e++) {
        sc_loader_start_epoch(l, e, 0);
        sc_batch *b;
        while (sc_loader_next(l, &b, &wait) == SC_OK && b) {
            views += 2 * b->samples;
            sc_loader_release(l, b);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("  info: loader, 1 worker, batches of %d samples (%d views) %dx%dx%d: %.0f views/s\n", B,
           2 * B, side, side, ch, (double)views / s);
    sc_loader_destroy(l);
    sc_dataset_free(&ds);
}

static void test_throughput_info(void) {
    throughput(28, 1, 256);
    throughput(32, 3, 256);
}

int main(void) {
    SC_RUN(test_permutation);
    SC_RUN(test_train_batches_match_definition);
    SC_RUN(test_worker_count_invariance);
    SC_RUN(test_resume_mid_epoch);
    SC_RUN(test_ranks);
    SC_RUN(test_eval_order);
    SC_RUN(test_misuse_and_shutdown);
    SC_RUN(test_throughput_info);
    return sc_test_summary();
}
