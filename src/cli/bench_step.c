/*
 * bench_step.c - `simclr bench step`: throughput of one SimCLR training step on synthetic data
 * already on the device: 2B views -> encoder -> head -> L2 norm -> NT-Xent -> backward -> LARS update.
 *
 * It validates before it times: when the device is not the CPU, one step from the same
 * weights and inputs is also run on the CPU reference and the losses must agree. Then it
 * runs warm-up steps, times `--iters` steps one by one (synchronising after each) and prints
 * one JSON line: git revision, device, shape, median / p10 / p90 milliseconds, views per
 * second and the achieved training FLOP rate (3 x forward multiply-adds x 2 FLOPs).
 *
 *   simclr bench step --device cpu --arch resnet18 --stem cifar --width 0.125 --size 28 --channels 1 --batch 256
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "simclr/backend.h"
#include "simclr/log.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/optim.h"
#include "simclr/rng.h"
#include "simclr/version.h"
#include "cli.h"

typedef struct args {
    const char *device, *arch, *stem;
    double width, tau;
    int size, channels, batch, head_layers, head_out, warmup, iters, threads;
} args;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int parse(int argc, char **argv, args *a) {
    *a = (args){.device = "cpu", .arch = "resnet18", .stem = "cifar", .width = 0.125, .tau = 0.2, .size = 28,
                .channels = 1, .batch = 256, .head_layers = 2, .head_out = 64, .warmup = 3, .iters = 10};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 0;
    if (argc % 2 == 0) return 0; /* options come in pairs */
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--arch")) a->arch = v;
        else if (!strcmp(k, "--stem")) a->stem = v;
        else if (!strcmp(k, "--width")) a->width = atof(v);
        else if (!strcmp(k, "--tau")) a->tau = atof(v);
        else if (!strcmp(k, "--size")) a->size = atoi(v);
        else if (!strcmp(k, "--channels")) a->channels = atoi(v);
        else if (!strcmp(k, "--batch")) a->batch = atoi(v);
        else if (!strcmp(k, "--head-layers")) a->head_layers = atoi(v);
        else if (!strcmp(k, "--head-out")) a->head_out = atoi(v);
        else if (!strcmp(k, "--warmup")) a->warmup = atoi(v);
        else if (!strcmp(k, "--iters")) a->iters = atoi(v);
        else if (!strcmp(k, "--threads")) a->threads = atoi(v);
        else {
            fprintf(stderr, "simclr bench step: unknown option %s\n", k);
            return 0;
        }
    }
    return a->batch >= 2 && a->iters >= 1 && a->size >= 1;
}

static sc_model_config model_config(const args *a) {
    sc_model_config mc = {.arch = !strcmp(a->arch, "resnet50") ? SC_ARCH_RESNET50
                                  : !strcmp(a->arch, "resnet34") ? SC_ARCH_RESNET34 : SC_ARCH_RESNET18,
                          .stem = !strcmp(a->stem, "imagenet") ? SC_STEM_IMAGENET : SC_STEM_CIFAR,
                          .width = a->width, .in_channels = a->channels, .zero_init_residual = 1,
                          .head_layers = a->head_layers, .head_out = a->head_out, .head_bn_hidden = 1,
                          .head_bias = 1};
    return mc;
}

/* A model, loss and optimizer on one backend, ready to step on the input `x`. */
typedef struct rig {
    sc_backend *be;
    sc_model *m;
    sc_loss loss;
    sc_optimizer opt;
    sc_tensor x;
} rig;

static int rig_make(rig *r, const args *a, const char *device, const float *host_x) {
    sc_backend_options bo = {.threads = a->threads};
    int views = 2 * a->batch;
    sc_model_config mc = model_config(a);
    sc_contrastive_desc ld = sc_contrastive_ntxent(a->tau);
    if (sc_backend_create(device, &bo, &r->be) != SC_OK || sc_model_create(&mc, r->be, SC_F32, &r->m) != SC_OK ||
        sc_model_plan(r->m, views, a->size, a->size) != SC_OK ||
        sc_loss_init(&r->loss, r->be, &ld, views, sc_model_out_dim(r->m), SC_F32) != SC_OK)
        return 0;
    sc_model_init_params(r->m, 1);
    sc_schedule s = {.peak_lr = 0.3, .warmup_steps = 0, .total_steps = 1000000};
    sc_optim_hparams hp = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 1e-6, .trust_coef = 1e-3};
    if (sc_optimizer_init(&r->opt, r->be, &hp, &s, sc_model_params(r->m)->total, SC_F32) != SC_OK) return 0;
    void *xd;
    size_t bytes = (size_t)views * a->size * a->size * a->channels * sizeof(float);
    if (sc_backend_alloc(r->be, bytes, "input", &xd) != SC_OK) return 0;
    r->x = sc_tensor_4d(xd, SC_F32, views, a->size, a->size, a->channels);
    sc_tensor_upload(r->be, &r->x, host_x);
    return 1;
}

static double rig_step(rig *r, int64_t step) {
    sc_tensor z, dz;
    sc_model_forward(r->m, &r->x, 1, NULL, &z);
    sc_loss_compute(&r->loss, &z, &dz);
    sc_model_backward(r->m, &dz);
    sc_tensor p = sc_model_param_buffer(r->m), g = sc_model_grad_buffer(r->m), s = sc_model_state_buffer(r->m);
    sc_optimizer_step(&r->opt, sc_model_params(r->m), &p, &g, &s, step);
    double loss;
    sc_loss_read(&r->loss, &loss, NULL); /* synchronises the device */
    return loss;
}

static void rig_free(rig *r) {
    if (!r->be) return;
    sc_backend_free(r->be, r->x.data);
    sc_optimizer_free(&r->opt);
    sc_loss_free(&r->loss);
    sc_model_destroy(r->m);
    sc_backend_destroy(r->be);
}

int sc_bench_step(int argc, char **argv) {
    args a;
    if (!parse(argc, argv, &a)) {
        int help = argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        fprintf(help ? stdout : stderr, "usage: simclr bench step [--device cpu|cuda] [--arch resnet18|34|50] [--stem cifar|imagenet] "
                        "[--width W] [--size S] [--channels C] [--batch B] [--iters N] [--warmup N] [--threads T]\n");
        return help ? 0 : 2;
    }
    sc_log_set_level(SC_LOG_WARN);
    int views = 2 * a.batch;
    size_t n = (size_t)views * a.size * a.size * a.channels;
    float *x = malloc(n * sizeof *x);
    sc_rng rng = sc_rng_make(7, 0, 0, 0, SC_RNG_TEST);
    for (size_t i = 0; i < n; i++) x[i] = sc_rng_uniform(&rng);

    rig r = {0};
    if (!rig_make(&r, &a, a.device, x)) {
        fprintf(stderr, "simclr bench step: %s\n", sc_last_error());
        return 1;
    }
    /* validate: the first step's loss against the CPU reference from the same state */
    double loss0 = rig_step(&r, 0);
    const char *validated = "device is the CPU reference";
    if (r.be->kind != SC_DEVICE_CPU) {
        rig ref = {0};
        if (!rig_make(&ref, &a, "cpu", x)) {
            fprintf(stderr, "simclr bench step: %s\n", sc_last_error());
            return 1;
        }
        double want = rig_step(&ref, 0);
        rig_free(&ref);
        if (!(fabs(loss0 - want) <= 1e-3 * fabs(want))) {
            fprintf(stderr, "simclr bench step: validation failed: loss %.6f on %s, %.6f on the CPU\n", loss0, a.device, want);
            return 1;
        }
        validated = "loss matches the CPU reference";
    }
    if (!isfinite(loss0)) {
        fprintf(stderr, "simclr bench step: non-finite loss\n");
        return 1;
    }
    for (int i = 0; i < a.warmup; i++) rig_step(&r, 1 + i);
    double *ms = malloc((size_t)a.iters * sizeof *ms);
    for (int i = 0; i < a.iters; i++) {
        double t0 = now();
        rig_step(&r, 1 + a.warmup + i);
        ms[i] = 1e3 * (now() - t0);
    }
    qsort(ms, (size_t)a.iters, sizeof *ms, cmp_double);
    double med = ms[a.iters / 2], p10 = ms[a.iters / 10], p90 = ms[(a.iters * 9) / 10];
    double macs = sc_model_forward_macs(r.m);
    double tflops = 3.0 * 2.0 * macs * views / (med * 1e-3) / 1e12;
    char host[64] = "?";
    gethostname(host, sizeof host);
    time_t t = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&t));
    printf("{\"bench\": \"step\", \"impl\": \"simclr\", \"date\": \"%s\", \"git\": \"%s\", \"host\": \"%s\", "
           "\"device\": \"%s\", \"threads\": %d, \"arch\": \"%s\", \"stem\": \"%s\", \"width\": %g, \"size\": %d, "
           "\"channels\": %d, \"batch\": %d, \"views\": %d, \"precision\": \"fp32\", \"ms_median\": %.3f, "
           "\"ms_p10\": %.3f, \"ms_p90\": %.3f, \"views_per_s\": %.1f, \"gmac_per_view\": %.4f, "
           "\"train_tflops\": %.4f, \"validated\": \"%s\"}\n",
           date, sc_git_sha, host, r.be->kind == SC_DEVICE_CPU ? "cpu" : a.device, r.be->threads, a.arch, a.stem,
           a.width, a.size, a.channels, a.batch, views, med, p10, p90, views / (med * 1e-3), macs / 1e9, tflops,
           validated);
    free(ms);
    free(x);
    rig_free(&r);
    return 0;
}
