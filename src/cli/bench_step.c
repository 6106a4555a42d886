/*
 * bench_step.c - `simclr bench step`: throughput of one SimCLR training step on synthetic data
 * already on the device: 2B views -> encoder -> head -> L2 norm -> NT-Xent -> backward -> LARS update.
 *
 * It validates before it times: when the device is not the CPU, one step at a small batch
 * (--validate-batch, default min(B, 16)) from the same weights and inputs is run on the device
 * and on the CPU reference; the losses and every parameter after the update must agree. Then
 * it runs warm-up steps and times `--iters` steps one by one (synchronising after each):
 *
 *   eager  every op launched from the host, as the trainer's first step;
 *   graph  (backends with step graphs) the device part of the step recorded once as a CUDA
 *          graph and replayed; only the learning-rate upload and the loss read stay outside.
 *
 * `--graph auto` (default) times both and reports the faster as the headline, `on` / `off`
 * time one. One JSON line: git revision, device, shape, precision, median / p10 / p90 ms,
 * views per second and the achieved training FLOP rate (3 x forward multiply-adds x 2 FLOPs),
 * and with --peak-tflops the fraction of that peak reached.
 *
 *   simclr bench step --device cpu --arch resnet18 --stem cifar --width 0.125 --size 28 --channels 1 --batch 256
 *   simclr bench step --device cuda --arch resnet50 --stem imagenet --width 1 --size 224 --channels 3 \
 *       --batch 256 --head-out 128 --tf32 1 --peak-tflops 494.7
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/backend.h"
#include "simclr/log.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/optim.h"
#include "simclr/rng.h"
#include "simclr/version.h"
#include "cli.h"

typedef struct args {
    const char *device, *arch, *stem, *graph;
    double width, tau, peak_tflops;
    int size, channels, batch, head_layers, head_out, warmup, iters, threads;
    int tf32, deterministic, autotune, workspace_mb, validate_batch, verbose;
} args;

/* A JSON number with 3 decimals, or null for a mode that was not timed (JSON has no NaN). */
static const char *json_ms(double v, char *buf, size_t cap) {
    if (isnan(v))
        snprintf(buf, cap, "null");
    else
        snprintf(buf, cap, "%.3f", v);
    return buf;
}

static int parse(int argc, char **argv, args *a) {
    *a = (args){.device = "cpu", .arch = "resnet18", .stem = "cifar", .graph = "auto", .width = 0.125, .tau = 0.2,
                .size = 28, .channels = 1, .batch = 256, .head_layers = 2, .head_out = 64, .warmup = 3, .iters = 10,
                .workspace_mb = 512, .validate_batch = -1};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 0;
    if (argc % 2 == 0) return 0; /* options come in pairs */
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--arch")) a->arch = v;
        else if (!strcmp(k, "--stem")) a->stem = v;
        else if (!strcmp(k, "--graph")) a->graph = v;
        else if (!strcmp(k, "--width")) a->width = atof(v);
        else if (!strcmp(k, "--tau")) a->tau = atof(v);
        else if (!strcmp(k, "--peak-tflops")) a->peak_tflops = atof(v);
        else if (!strcmp(k, "--size")) a->size = atoi(v);
        else if (!strcmp(k, "--channels")) a->channels = atoi(v);
        else if (!strcmp(k, "--batch")) a->batch = atoi(v);
        else if (!strcmp(k, "--head-layers")) a->head_layers = atoi(v);
        else if (!strcmp(k, "--head-out")) a->head_out = atoi(v);
        else if (!strcmp(k, "--warmup")) a->warmup = atoi(v);
        else if (!strcmp(k, "--iters")) a->iters = atoi(v);
        else if (!strcmp(k, "--threads")) a->threads = atoi(v);
        else if (!strcmp(k, "--tf32")) a->tf32 = atoi(v);
        else if (!strcmp(k, "--deterministic")) a->deterministic = atoi(v);
        else if (!strcmp(k, "--autotune")) a->autotune = atoi(v);
        else if (!strcmp(k, "--workspace-mb")) a->workspace_mb = atoi(v);
        else if (!strcmp(k, "--validate-batch")) a->validate_batch = atoi(v);
        else if (!strcmp(k, "--verbose")) a->verbose = atoi(v);
        else {
            fprintf(stderr, "simclr bench step: unknown option %s\n", k);
            return 0;
        }
    }
    if (a->validate_batch < 0) a->validate_batch = a->batch < 16 ? a->batch : 16;
    int graph_ok = !strcmp(a->graph, "auto") || !strcmp(a->graph, "on") || !strcmp(a->graph, "off");
    return a->batch >= 2 && a->iters >= 1 && a->warmup >= 0 && a->size >= 1 && a->validate_batch >= 2 &&
           a->validate_batch <= a->batch && a->workspace_mb >= 1 && graph_ok;
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
    sc_step_graph *graph;
} rig;

/* batch images (2 * batch views, the first of host_x). */
static int rig_make(rig *r, const args *a, const char *device, int batch, const float *host_x) {
    sc_backend_options bo = {.threads = a->threads, .allow_tf32 = a->tf32, .deterministic = a->deterministic,
                             .autotune = a->autotune, .workspace_limit = (size_t)a->workspace_mb << 20};
    int views = 2 * batch;
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

/* The device part of a step (what a step graph records): forward, loss, backward, update. */
static void rig_device_step(rig *r) {
    sc_tensor z, dz;
    sc_model_forward(r->m, &r->x, 1, NULL, &z);
    sc_loss_compute(&r->loss, &z, &dz);
    sc_model_backward(r->m, &dz);
    sc_tensor p = sc_model_param_buffer(r->m), g = sc_model_grad_buffer(r->m), s = sc_model_state_buffer(r->m);
    sc_optimizer_apply(&r->opt, sc_model_params(r->m), &p, &g, &s);
}

/* One whole step, eager or by graph replay; returns the loss (reading it synchronises). */
static double rig_step(rig *r, int64_t step, int use_graph) {
    sc_optimizer_prepare(&r->opt, step);
    if (use_graph)
        sc_step_graph_launch(r->be, r->graph);
    else
        rig_device_step(r);
    double loss;
    sc_loss_read(&r->loss, &loss, NULL);
    return loss;
}

static sc_status rig_capture(rig *r) {
    SC_TRY(sc_backend_capture_begin(r->be));
    rig_device_step(r);
    return sc_backend_capture_end(r->be, &r->graph);
}

static void rig_free(rig *r) {
    if (!r->be) return;
    sc_step_graph_free(r->be, r->graph);
    sc_backend_free(r->be, r->x.data);
    sc_optimizer_free(&r->opt);
    sc_loss_free(&r->loss);
    sc_model_destroy(r->m);
    sc_backend_destroy(r->be);
}

static float *download_params(rig *r, size_t *n) {
    sc_tensor p = sc_model_param_buffer(r->m);
    *n = (size_t)sc_tensor_numel(&p);
    float *h = malloc(*n * sizeof *h);
    if (h) sc_tensor_download(r->be, h, &p);
    return h;
}

/* One step at the validation batch on the device and on the CPU from the same state: the
 * losses and every parameter after the update must agree. Returns 0 and prints why if not. */
static int validate(const args *a, const float *x) {
    rig dev = {0}, ref = {0};
    int ok = rig_make(&dev, a, a->device, a->validate_batch, x) && rig_make(&ref, a, "cpu", a->validate_batch, x);
    if (!ok) {
        fprintf(stderr, "simclr bench step: %s\n", sc_last_error());
        rig_free(&dev);
        rig_free(&ref);
        return 0;
    }
    double got = rig_step(&dev, 0, 0), want = rig_step(&ref, 0, 0);
    size_t n = 0, nref = 0;
    float *pd = download_params(&dev, &n), *pr = download_params(&ref, &nref);
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; pd && pr && i < n && i < nref; i++) {
        double d = fabs((double)pd[i] - (double)pr[i]);
        worst = d > worst ? d : worst;
        scale = fabs((double)pr[i]) > scale ? fabs((double)pr[i]) : scale;
    }
    /* TF32 rounds the inputs of every product to 10 mantissa bits */
    double tol = a->tf32 ? 5e-3 : 1e-3;
    ok = pd && pr && n == nref && isfinite(got) && fabs(got - want) <= tol * fabs(want) && worst <= 1e-4 * scale;
    if (!ok)
        fprintf(stderr,
                "simclr bench step: validation failed at batch %d: loss %.6f on %s, %.6f on the CPU (tolerance "
                "%.0e); largest parameter difference %.3g of scale %.3g\n",
                a->validate_batch, got, a->device, want, tol, worst, scale);
    free(pd);
    free(pr);
    rig_free(&dev);
    rig_free(&ref);
    return ok;
}

/* Median, p10 and p90 of `iters` timed steps (warm-up steps first). */
static void time_steps(rig *r, const args *a, int use_graph, int64_t *step, double *med, double *p10, double *p90) {
    for (int i = 0; i < a->warmup; i++) rig_step(r, (*step)++, use_graph);
    double *ms = malloc((size_t)a->iters * sizeof *ms);
    SC_CHECK(ms != NULL, "out of memory");
    for (int i = 0; i < a->iters; i++) {
        double t0 = sc_bench_now();
        rig_step(r, (*step)++, use_graph);
        ms[i] = 1e3 * (sc_bench_now() - t0);
    }
    const sc_bench_stats s = sc_bench_summarise(ms, a->iters);
    *med = s.median;
    *p10 = s.p10;
    *p90 = s.p90;
    free(ms);
}

int sc_bench_step(int argc, char **argv) {
    args a;
    if (!parse(argc, argv, &a)) {
        int help = argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        fprintf(help ? stdout : stderr,
                "usage: simclr bench step [--device cpu|cuda|cuda:N] [--arch resnet18|34|50] [--stem cifar|imagenet]\n"
                "         [--width W] [--size S] [--channels C] [--batch B] [--head-layers L] [--head-out D]\n"
                "         [--iters N] [--warmup N] [--threads T]\n"
                "  GPU:   [--tf32 0|1] [--deterministic 0|1] [--autotune 0|1] [--workspace-mb M]\n"
                "         [--graph auto|on|off] [--validate-batch V] [--peak-tflops P] [--verbose 0|1]\n");
        return help ? 0 : 2;
    }
    sc_log_set_level(a.verbose ? SC_LOG_DEBUG : SC_LOG_WARN);
    int views = 2 * a.batch;
    size_t n = (size_t)views * a.size * a.size * a.channels;
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "simclr bench step: out of memory for the input\n");
        return 1;
    }
    sc_rng rng = sc_rng_make(7, 0, 0, 0, SC_RNG_TEST);
    for (size_t i = 0; i < n; i++) x[i] = sc_rng_uniform(&rng);

    const char *validated = "device is the CPU reference";
    if (strcmp(a.device, "cpu") != 0) {
        if (!validate(&a, x)) {
            free(x);
            return 1;
        }
        validated = "loss and parameters after one step match the CPU reference";
    }
    rig r = {0};
    if (!rig_make(&r, &a, a.device, a.batch, x)) {
        fprintf(stderr, "simclr bench step: %s\n", sc_last_error());
        free(x);
        rig_free(&r);
        return 1;
    }
    int64_t step = 0;
    double loss0 = rig_step(&r, step++, 0); /* plans, scratch and autotuning settle here */
    if (!isfinite(loss0)) {
        fprintf(stderr, "simclr bench step: non-finite loss\n");
        free(x);
        rig_free(&r);
        return 1;
    }

    double eager[3] = {NAN, NAN, NAN}, graph[3] = {NAN, NAN, NAN};
    int want_graph = strcmp(a.graph, "off") != 0 && sc_backend_can_capture(r.be);
    if (strcmp(a.graph, "on") != 0 || !want_graph) time_steps(&r, &a, 0, &step, &eager[0], &eager[1], &eager[2]);
    if (want_graph) {
        if (rig_capture(&r) != SC_OK) {
            fprintf(stderr, "simclr bench step: %s\n", sc_last_error());
            free(x);
            rig_free(&r);
            return 1;
        }
        time_steps(&r, &a, 1, &step, &graph[0], &graph[1], &graph[2]);
    }
    const int use_graph = want_graph && (isnan(eager[0]) || graph[0] < eager[0]);
    const double *best = use_graph ? graph : eager;

    double macs = sc_model_forward_macs(r.m);
    double tflops = 3.0 * 2.0 * macs * views / (best[0] * 1e-3) / 1e12;
    char host[64], date[32], extra[256] = "";
    sc_bench_stamp(date, host);
    if (r.be->kind != SC_DEVICE_CPU) {
        char e[32], g[32];
        snprintf(extra, sizeof extra,
                 ", \"deterministic\": %d, \"autotune\": %d, \"mode\": \"%s\", \"eager_ms_median\": %s, "
                 "\"graph_ms_median\": %s",
                 r.be->deterministic, r.be->autotune, use_graph ? "graph" : "eager", json_ms(eager[0], e, sizeof e),
                 json_ms(graph[0], g, sizeof g));
    }
    char peak[96] = "";
    if (a.peak_tflops > 0)
        snprintf(peak, sizeof peak, ", \"peak_tflops\": %.1f, \"peak_fraction\": %.4f", a.peak_tflops,
                 tflops / a.peak_tflops);
    printf(
             "{\"bench\": \"step\", \"impl\": \"simclr\", \"date\": \"%s\", \"git\": \"%s\", \"host\": \"%s\", "
             "\"device\": \"%s\", \"threads\": %d, \"arch\": \"%s\", \"stem\": \"%s\", \"width\": %g, \"size\": %d, "
             "\"channels\": %d, \"batch\": %d, \"views\": %d, \"precision\": \"%s\", \"ms_median\": %.3f, "
             "\"ms_p10\": %.3f, \"ms_p90\": %.3f, \"views_per_s\": %.1f, \"gmac_per_view\": %.4f, "
             "\"train_tflops\": %.4f%s%s, \"validated\": \"%s\"}\n",
             date, sc_git_sha, host, r.be->kind == SC_DEVICE_CPU ? "cpu" : a.device, r.be->threads, a.arch, a.stem,
             a.width, a.size, a.channels, a.batch, views, r.be->kind != SC_DEVICE_CPU && a.tf32 ? "tf32" : "fp32",
             best[0], best[1], best[2], views / (best[0] * 1e-3), macs / 1e9, tflops, extra, peak, validated);
    free(x);
    rig_free(&r);
    return 0;
}
