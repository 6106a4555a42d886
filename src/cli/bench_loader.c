/*
 * bench_loader.c - `simclr bench loader`: how fast the data loader turns stored images into
 * SimCLR views, for 1, 2, 4, ... worker threads.
 *
 * The loader runs in TRAIN mode exactly as training uses it (epoch permutation, Philox keys,
 * two views per sample; JPEGs decoded crop-first at the smallest DCT scale) with the SimCLR
 * recipe: random resized crop (0.08..1), flip, colour jitter with p 0.8, grayscale with p 0.2
 * and, for views of 64 px and more, Gaussian blur with p 0.5 (strength 1 there, 0.5 and no blur
 * for small views, as the paper's CIFAR recipe). tools/bench_loader_torch.py does the same work
 * with torchvision's transforms for the baseline measured in the same run.
 *
 * It validates before it times: the first batch with N workers must equal, byte for byte, the
 * first batch with 1 worker, and every value must lie in [0, 1]. Then it consumes --warmup
 * batches, times --batches batches (crossing epochs as needed) and prints one JSON line per
 * worker count: views/s, source images/s and images/s per worker thread.
 *
 *   simclr bench loader --dataset imagefolder --path /data/photos --size 224 --workers 1,2,4
 *   simclr bench loader --dataset cifar10 --path /data/cifar-10-batches-bin --size 32
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "simclr/data.h"
#include "simclr/log.h"
#include "simclr/version.h"

typedef struct args {
    const char *dataset, *path, *output;
    int size, batch, batches, warmup;
    int workers[16], nworkers;
} args;

static int parse(int argc, char **argv, args *a) {
    *a = (args){.dataset = "imagefolder", .path = NULL, .output = "views", .size = 224, .batch = 64, .batches = 20,
                .warmup = 2, .workers = {1, 2}, .nworkers = 2};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 0;
    if (argc % 2 == 0) return 0; /* options come in pairs */
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--dataset")) a->dataset = v;
        else if (!strcmp(k, "--path")) a->path = v;
        else if (!strcmp(k, "--output")) a->output = v;
        else if (!strcmp(k, "--size")) a->size = atoi(v);
        else if (!strcmp(k, "--batch")) a->batch = atoi(v);
        else if (!strcmp(k, "--batches")) a->batches = atoi(v);
        else if (!strcmp(k, "--warmup")) a->warmup = atoi(v);
        else if (!strcmp(k, "--workers")) {
            a->nworkers = 0;
            for (const char *p = v; *p && a->nworkers < 16; p = strchr(p, ',') ? strchr(p, ',') + 1 : "") {
                int w = atoi(p);
                if (w < 1 || w > 256) return 0;
                a->workers[a->nworkers++] = w;
            }
        } else {
            fprintf(stderr, "simclr bench loader: unknown option %s\n", k);
            return 0;
        }
    }
    return a->path && a->size >= 8 && a->batch >= 1 && a->batches >= 1 && a->warmup >= 0 && a->nworkers >= 1 &&
           (!strcmp(a->output, "views") || !strcmp(a->output, "crops"));
}

/* The SimCLR recipe at view side S (see the header). */
static sc_augment_params recipe(int S) {
    const double s = S >= 64 ? 1.0 : 0.5;
    sc_augment_params p = {.out_size = S, .out_channels = 3, .crop_scale_min = 0.08, .crop_scale_max = 1.0,
                           .crop_ratio_min = 0.75, .crop_ratio_max = 4.0 / 3.0, .flip_p = 0.5, .jitter_p = 0.8,
                           .brightness = 0.8 * s, .contrast = 0.8 * s, .saturation = 0.8 * s, .hue = 0.2 * s,
                           .gray_p = 0.2, .blur_p = S >= 64 ? 0.5 : 0.0, .blur_sigma_min = 0.1,
                           .blur_sigma_max = 2.0};
    return p;
}

static sc_status open_dataset(const args *a, sc_dataset *ds) {
    if (!strcmp(a->dataset, "imagefolder")) return sc_dataset_open_imagefolder(a->path, 1, "auto", ds);
    if (!strcmp(a->dataset, "shards")) return sc_dataset_open_shards(a->path, "auto", ds);
    if (!strcmp(a->dataset, "cifar10")) return sc_dataset_load_cifar(a->path, 0, SC_SPLIT_TRAIN, ds);
    return sc_errorf(SC_ERR_ARG, "--dataset %s: expected imagefolder, shards or cifar10", a->dataset);
}

static size_t batch_bytes(const sc_batch *b) {
    const size_t elems = (size_t)2 * b->samples * b->height * b->width * b->channels;
    return b->crops ? elems : elems * sizeof(float);
}

/* Batch 0 of epoch 0 with `workers` threads, copied into *out. */
static sc_status first_batch(const sc_loader_options *base, int workers, uint8_t **out, size_t *n) {
    sc_loader_options o = *base;
    o.workers = workers;
    o.prefetch = 1;
    sc_loader *l;
    SC_TRY(sc_loader_create(&o, &l));
    sc_batch *b = NULL;
    sc_status st = sc_loader_start_epoch(l, 0, 0);
    if (st == SC_OK) st = sc_loader_next(l, &b, NULL);
    if (st == SC_OK && b) {
        *n = batch_bytes(b);
        *out = malloc(*n);
        if (*out) memcpy(*out, b->crops ? (void *)b->crops : (void *)b->views, *n);
        sc_loader_release(l, b);
        if (!*out) st = sc_errorf(SC_ERR_NOMEM, "out of memory");
    }
    sc_loader_destroy(l);
    return st;
}

/* Consume warmup + batches batches; *seconds the time of the last `batches`. */
static sc_status timed_run(const sc_loader_options *base, int workers, const args *a, double *seconds) {
    sc_loader_options o = *base;
    o.workers = workers;
    o.prefetch = workers + 2;
    sc_loader *l;
    SC_TRY(sc_loader_create(&o, &l));
    int64_t epoch = 0;
    sc_status st = sc_loader_start_epoch(l, epoch, 0);
    double t0 = sc_bench_now();
    for (int i = 0; st == SC_OK && i < a->warmup + a->batches; i++) {
        if (i == a->warmup) t0 = sc_bench_now();
        sc_batch *b = NULL;
        st = sc_loader_next(l, &b, NULL);
        if (st == SC_OK && !b) {
            st = sc_loader_start_epoch(l, ++epoch, 0);
            if (st == SC_OK) st = sc_loader_next(l, &b, NULL);
        }
        if (st == SC_OK && b) sc_loader_release(l, b);
    }
    *seconds = sc_bench_now() - t0;
    sc_loader_destroy(l);
    return st;
}

int sc_bench_loader(int argc, char **argv) {
    args a;
    if (!parse(argc, argv, &a)) {
        int help = argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        fprintf(help ? stdout : stderr,
                "usage: simclr bench loader --path DIR [--dataset imagefolder|shards|cifar10] [--size S] [--batch B]\n"
                "                           [--workers 1,2,4] [--batches N] [--warmup N] [--output views|crops]\n");
        return help ? 0 : 2;
    }
    sc_log_set_level(SC_LOG_WARN);
    sc_dataset ds;
    sc_status st = open_dataset(&a, &ds);
    if (st != SC_OK) return sc_cli_fail(st);
    sc_loader_options base = {.dataset = &ds, .aug = recipe(a.size), .mode = SC_LOADER_TRAIN, .batch_size = a.batch,
                              .workers = 1, .prefetch = 1, .seed = 1, .rank = 0, .world_size = 1,
                              .output = strcmp(a.output, "crops") ? SC_LOADER_VIEWS : SC_LOADER_CROPS};
    uint8_t *ref = NULL;
    size_t ref_n = 0;
    st = first_batch(&base, 1, &ref, &ref_n);
    if (st == SC_OK && base.output == SC_LOADER_VIEWS) {
        const float *v = (const float *)ref;
        for (size_t i = 0; i < ref_n / sizeof(float); i++)
            if (!(v[i] >= 0.0f && v[i] <= 1.0f)) {
                st = sc_errorf(SC_ERR_DATA, "validation failed: view value %g at %zu is outside [0, 1]", v[i], i);
                break;
            }
    }
    char host[64], date[32];
    sc_bench_stamp(date, host);
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    for (int k = 0; st == SC_OK && k < a.nworkers; k++) {
        const int w = a.workers[k];
        uint8_t *got = NULL;
        size_t got_n = 0;
        st = first_batch(&base, w, &got, &got_n);
        if (st == SC_OK && (got_n != ref_n || memcmp(got, ref, ref_n) != 0))
            st = sc_errorf(SC_ERR_DATA, "validation failed: batch 0 with %d workers differs from 1 worker", w);
        free(got);
        double sec = 0;
        if (st == SC_OK) st = timed_run(&base, w, &a, &sec);
        if (st != SC_OK) break;
        const double images = (double)a.batch * a.batches / sec;
        const int used = w < cores ? w : (int)cores;
        printf("{\"bench\": \"loader\", \"impl\": \"simclr\", \"date\": \"%s\", \"git\": \"%s\", \"host\": \"%s\", "
               "\"cores\": %ld, \"dataset\": \"%s\", \"images\": %lld, \"size\": %d, \"output\": \"%s\", \"batch\": %d, "
               "\"batches\": %d, \"workers\": %d, \"seconds\": %.3f, \"views_per_s\": %.1f, \"images_per_s\": %.1f, "
               "\"images_per_s_per_core\": %.1f, \"validated\": \"batch 0 equals the 1-worker batch\"}\n",
               date, sc_git_sha, host, cores, ds.name, (long long)ds.count, a.size, a.output, a.batch, a.batches, w,
               sec, 2 * images, images, images / used);
        fflush(stdout);
    }
    free(ref);
    sc_dataset_free(&ds);
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
