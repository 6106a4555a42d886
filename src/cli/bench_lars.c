/*
 * bench_lars.c - `simclr bench lars`: one optimizer step over the ResNet-50 parameter set
 * (torchvision's resnet50: 25,557,032 parameters in 161 tensors, built here as simclr's
 * ResNet-50 encoder with a 2048 -> 1000 linear head), one JSON line per optimizer.
 *
 * On the CPU it times the reference op; on a GPU (CUDA builds) the fused two-launch kernels
 * (kernels/lars.cu), after checking one step against the CPU reference. Reported: median / p10
 * / p90 milliseconds, the bytes the step must move (reads and writes of the trainable
 * elements: LARS 8 + 20 bytes per parameter with fp32 gradients, see lars.cu) and the achieved
 * GB/s beside the copy bandwidth measured in the same run (a device-to-device cudaMemcpy, or
 * memcpy on the CPU, of a 1 GiB buffer, counted as read + write).
 *
 *   simclr bench lars --device cuda --optim all --grads fp32
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "simclr/backend.h"
#include "simclr/log.h"
#include "simclr/model.h"
#include "simclr/rng.h"
#include "simclr/version.h"
#ifdef SIMCLR_HAVE_CUDA
#include "cuda_kernels.h"
#endif

typedef struct args {
    const char *device, *optim, *grads;
    int warmup, iters, threads;
} args;

static int parse(int argc, char **argv, args *a) {
    *a = (args){.device = "cpu", .optim = "all", .grads = "fp32", .warmup = 10, .iters = 50};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 0;
    if (argc % 2 == 0) return 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--optim")) a->optim = v;
        else if (!strcmp(k, "--grads")) a->grads = v;
        else if (!strcmp(k, "--warmup")) a->warmup = atoi(v);
        else if (!strcmp(k, "--iters")) a->iters = atoi(v);
        else if (!strcmp(k, "--threads")) a->threads = atoi(v);
        else {
            fprintf(stderr, "simclr bench lars: unknown option %s\n", k);
            return 0;
        }
    }
    int known = !strcmp(a->optim, "all") || !strcmp(a->optim, "lars") || !strcmp(a->optim, "sgd") ||
                !strcmp(a->optim, "adamw");
    return known && (!strcmp(a->grads, "fp32") || !strcmp(a->grads, "bf16")) && a->iters >= 1 && a->warmup >= 0;
}

static const char *const optim_names[] = {"lars", "sgd", "adamw"};

static sc_optim_hparams hparams(sc_optim_kind kind) {
    sc_optim_hparams hp = {.kind = kind, .momentum = 0.9, .weight_decay = 1e-6, .trust_coef = 1e-3, .beta1 = 0.9,
                           .beta2 = 0.999, .eps = 1e-8, .use_schedule = 1,
                           .schedule = {.peak_lr = 4.8, .warmup_steps = 10, .total_steps = 100000}};
    if (kind == SC_OPTIM_ADAMW) hp.weight_decay = 0.05;
    return hp;
}

/* Bytes one step moves per trainable element (see kernels/lars.cu), g = gradient bytes. */
static double bytes_per_param(sc_optim_kind kind, double g) {
    switch (kind) {
    case SC_OPTIM_LARS: return (4 + g) + (4 + g + 4) + 8;  /* norms: w, g; update: w, g, v in, w, v out */
    case SC_OPTIM_SGD: return g + (4 + g + 4) + 8;         /* norms: g only */
    case SC_OPTIM_ADAMW: return g + (4 + g + 8) + 12;      /* two moments */
    }
    return 0;
}

/* The 161-tensor ResNet-50 parameter set, its buffers filled with plausible values. */
static sc_status make_model(sc_backend *cpu, sc_model **out) {
    sc_model_config mc = {.arch = SC_ARCH_RESNET50, .stem = SC_STEM_IMAGENET, .width = 1.0, .in_channels = 3,
                          .zero_init_residual = 1, .head_layers = 1, .head_out = 1000, .head_bias = 1};
    SC_TRY(sc_model_create(&mc, cpu, SC_F32, out));
    sc_model_init_params(*out, 1);
    sc_tensor g = sc_model_grad_buffer(*out);
    sc_rng r = sc_rng_make(3, 0, 0, 0, SC_RNG_TEST);
    for (int64_t i = 0; i < g.shape[0]; i++) ((float *)g.data)[i] = 1e-3f * (float)sc_rng_normal(&r);
    return SC_OK;
}

static void print_line(const args *a, const char *impl, const char *gpu, const char *optim, int64_t params,
                       int tensors, const sc_bench_stats *st, double bytes, double copy_gbps, const char *validated) {
    char date[32], host[64];
    sc_bench_stamp(date, host);
    double gbps = bytes / (st->median * 1e-3) / 1e9;
    printf("{\"bench\": \"lars\", \"impl\": \"%s\", \"date\": \"%s\", \"git\": \"%s\", \"host\": \"%s\", \"device\": "
           "\"%s\", \"gpu\": \"%s\", \"optim\": \"%s\", \"grads\": \"%s\", \"params\": %lld, \"tensors\": %d, "
           "\"ms_median\": %.4f, \"ms_p10\": %.4f, \"ms_p90\": %.4f, \"bytes_moved\": %.0f, \"gbps\": %.1f, "
           "\"copy_gbps\": %.1f, \"fraction_of_copy\": %.3f, \"validated\": \"%s\"}\n",
           impl, date, sc_git_sha, host, a->device, gpu, optim, a->grads, (long long)params, tensors, st->median,
           st->p10, st->p90, bytes, gbps, copy_gbps, gbps / copy_gbps, validated);
    fflush(stdout);
}

static int trainable_tensors(const sc_param_table *t) {
    int n = 0;
    for (int i = 0; i < t->count; i++) n += !(t->rows[i].flags & SC_PARAM_BN_STAT);
    return n;
}

/* ---- the CPU reference ------------------------------------------------------------------- */

static double cpu_copy_gbps(void) {
    const size_t bytes = (size_t)1 << 30;
    char *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) {
        free(src), free(dst);
        return NAN;
    }
    memset(src, 1, bytes);
    memset(dst, 0, bytes);
    double ms[5];
    for (int i = 0; i < 5; i++) {
        double t0 = sc_bench_now();
        memcpy(dst, src, bytes);
        ms[i] = 1e3 * (sc_bench_now() - t0);
    }
    free(src), free(dst);
    sc_bench_stats st = sc_bench_summarise(ms, 5);
    return 2.0 * (double)bytes / (st.median * 1e-3) / 1e9;
}

static int run_cpu(const args *a) {
    if (!strcmp(a->grads, "bf16")) {
        fprintf(stderr, "simclr bench lars: the CPU reference takes fp32 gradients only\n");
        return 2;
    }
    sc_backend *be;
    sc_backend_options bo = {.threads = a->threads};
    sc_model *m = NULL;
    if (sc_backend_create("cpu", &bo, &be) != SC_OK || make_model(be, &m) != SC_OK) {
        fprintf(stderr, "simclr bench lars: %s\n", sc_last_error());
        return 1;
    }
    const sc_param_table *t = sc_model_params(m);
    const int64_t params = sc_params_trainable(t);
    const double copy = cpu_copy_gbps();
    sc_tensor w = sc_model_param_buffer(m), g = sc_model_grad_buffer(m), v = sc_model_state_buffer(m);
    float *second = calloc((size_t)t->total, sizeof(float));
    sc_tensor v2 = sc_tensor_1d(second, SC_F32, t->total);
    for (int k = 0; k < 3; k++) {
        if (strcmp(a->optim, "all") && strcmp(a->optim, optim_names[k])) continue;
        sc_optim_hparams hp = hparams((sc_optim_kind)k);
        double sc[SC_OPTIM_NSCALARS] = {0};
        sc_tensor st = sc_tensor_1d(sc, SC_F64, SC_OPTIM_NSCALARS);
        sc_tensor *s2 = k == SC_OPTIM_ADAMW ? &v2 : NULL;
        for (int i = 0; i < a->warmup; i++) sc_op_optim_step(be, &hp, t, &w, &g, &v, s2, &st);
        double *ms = malloc((size_t)a->iters * sizeof *ms);
        for (int i = 0; i < a->iters; i++) {
            double t0 = sc_bench_now();
            sc_op_optim_step(be, &hp, t, &w, &g, &v, s2, &st);
            ms[i] = 1e3 * (sc_bench_now() - t0);
        }
        sc_bench_stats s = sc_bench_summarise(ms, a->iters);
        print_line(a, "simclr-cpu-reference", "", optim_names[k], params, trainable_tensors(t), &s,
                   bytes_per_param((sc_optim_kind)k, 4) * (double)params, copy, "device is the CPU reference");
        free(ms);
    }
    free(second);
    sc_model_destroy(m);
    sc_backend_destroy(be);
    return 0;
}

/* ---- the fused GPU kernels --------------------------------------------------------------- */

#ifdef SIMCLR_HAVE_CUDA
static double gpu_copy_gbps(cudaEvent_t e0, cudaEvent_t e1) {
    const size_t bytes = (size_t)1 << 30;
    void *src, *dst;
    if (cudaMalloc(&src, bytes) != cudaSuccess || cudaMalloc(&dst, bytes) != cudaSuccess) return NAN;
    cudaMemset(src, 1, bytes);
    double ms[20];
    for (int i = -3; i < 20; i++) {
        cudaEventRecord(e0, 0);
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float t = 0;
        cudaEventElapsedTime(&t, e0, e1);
        if (i >= 0) ms[i] = t;
    }
    cudaFree(src), cudaFree(dst);
    sc_bench_stats st = sc_bench_summarise(ms, 20);
    return 2.0 * (double)bytes / (st.median * 1e-3) / 1e9;
}

static int run_gpu(const args *a) {
    if (sc_cuda_device_count() == 0) {
        fprintf(stderr, "simclr bench lars: no CUDA GPU is visible\n");
        return 1;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    const int bf16 = !strcmp(a->grads, "bf16");
    sc_backend *be;
    sc_backend_options bo = {.threads = a->threads};
    sc_model *m = NULL;
    if (sc_backend_create("cpu", &bo, &be) != SC_OK || make_model(be, &m) != SC_OK) {
        fprintf(stderr, "simclr bench lars: %s\n", sc_last_error());
        return 1;
    }
    const sc_param_table *t = sc_model_params(m);
    const int64_t n = t->total, params = sc_params_trainable(t);
    sc_tensor hw = sc_model_param_buffer(m), hg = sc_model_grad_buffer(m);
    if (bf16) /* the reference sees the gradients the GPU sees */
        for (int64_t i = 0; i < n; i++) ((float *)hg.data)[i] = sc_bf16_to_f32(sc_f32_to_bf16(((float *)hg.data)[i]));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    const double copy = gpu_copy_gbps(e0, e1);
    float *dw, *dv, *dv2, *wback = malloc((size_t)n * sizeof(float));
    void *dg;
    double *dsc;
    sc_cuda_optim_plan *plan = NULL;
    if (cudaMalloc((void **)&dw, (size_t)n * 4) != cudaSuccess || cudaMalloc((void **)&dv, (size_t)n * 4) != cudaSuccess ||
        cudaMalloc((void **)&dv2, (size_t)n * 4) != cudaSuccess || cudaMalloc(&dg, (size_t)n * 4) != cudaSuccess ||
        cudaMalloc((void **)&dsc, SC_OPTIM_NSCALARS * sizeof(double)) != cudaSuccess ||
        sc_cuda_optim_plan_create(t, &plan) != SC_OK) {
        fprintf(stderr, "simclr bench lars: cannot allocate the buffers on the GPU\n");
        return 1;
    }
    if (bf16) {
        uint16_t *h = malloc((size_t)n * 2);
        for (int64_t i = 0; i < n; i++) h[i] = sc_f32_to_bf16(((float *)hg.data)[i]);
        cudaMemcpy(dg, h, (size_t)n * 2, cudaMemcpyHostToDevice);
        free(h);
    } else {
        cudaMemcpy(dg, hg.data, (size_t)n * 4, cudaMemcpyHostToDevice);
    }
    sc_tensor w = sc_tensor_1d(dw, SC_F32, n), v = sc_tensor_1d(dv, SC_F32, n), v2 = sc_tensor_1d(dv2, SC_F32, n);
    sc_tensor g = sc_tensor_1d(dg, bf16 ? SC_BF16 : SC_F32, n), sc = sc_tensor_1d(dsc, SC_F64, SC_OPTIM_NSCALARS);
    float *ref_w = malloc((size_t)n * 4), *ref_v = calloc((size_t)n, 4), *ref_v2 = calloc((size_t)n, 4);
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (strcmp(a->optim, "all") && strcmp(a->optim, optim_names[k])) continue;
        sc_optim_hparams hp = hparams((sc_optim_kind)k);
        sc_tensor *s2 = k == SC_OPTIM_ADAMW ? &v2 : NULL;
        /* validate one step from the initial state against the CPU reference */
        cudaMemcpy(dw, hw.data, (size_t)n * 4, cudaMemcpyHostToDevice);
        cudaMemset(dv, 0, (size_t)n * 4);
        cudaMemset(dv2, 0, (size_t)n * 4);
        cudaMemset(dsc, 0, SC_OPTIM_NSCALARS * sizeof(double));
        sc_cuda_optim_step(plan, &hp, &w, &g, &v, s2, &sc, 0);
        cudaMemcpy(wback, dw, (size_t)n * 4, cudaMemcpyDeviceToHost);
        memcpy(ref_w, hw.data, (size_t)n * 4);
        memset(ref_v, 0, (size_t)n * 4);
        memset(ref_v2, 0, (size_t)n * 4);
        double hsc[SC_OPTIM_NSCALARS] = {0};
        sc_tensor rw = sc_tensor_1d(ref_w, SC_F32, n), rv = sc_tensor_1d(ref_v, SC_F32, n);
        sc_tensor rv2 = sc_tensor_1d(ref_v2, SC_F32, n), rs = sc_tensor_1d(hsc, SC_F64, SC_OPTIM_NSCALARS);
        sc_op_optim_step(be, &hp, t, &rw, &hg, &rv, k == SC_OPTIM_ADAMW ? &rv2 : NULL, &rs);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = fabs((double)wback[i] - ref_w[i]) / (1e-6 + fabs(ref_w[i]));
            worst = isnan(e) ? INFINITY : fmax(worst, e);
        }
        char msg[160];
        snprintf(msg, sizeof msg, "one step matches the CPU reference (largest relative error %.2e)", worst);
        if (!(worst <= 1e-5)) {
            fprintf(stderr, "simclr bench lars: %s: validation failed: relative error %.3g\n", optim_names[k], worst);
            rc = 1;
            break;
        }
        for (int i = 0; i < a->warmup; i++) sc_cuda_optim_step(plan, &hp, &w, &g, &v, s2, &sc, 0);
        double *ms = malloc((size_t)a->iters * sizeof *ms);
        for (int i = 0; i < a->iters; i++) {
            cudaEventRecord(e0, 0);
            sc_cuda_optim_step(plan, &hp, &w, &g, &v, s2, &sc, 0);
            cudaEventRecord(e1, 0);
            cudaEventSynchronize(e1);
            float tm = 0;
            cudaEventElapsedTime(&tm, e0, e1);
            ms[i] = tm;
        }
        sc_bench_stats st = sc_bench_summarise(ms, a->iters);
        print_line(a, "simclr-fused", prop.name, optim_names[k], params, trainable_tensors(t), &st,
                   bytes_per_param((sc_optim_kind)k, bf16 ? 2 : 4) * (double)params, copy, msg);
        free(ms);
    }
    sc_cuda_optim_plan_destroy(plan);
    cudaFree(dw), cudaFree(dv), cudaFree(dv2), cudaFree(dg), cudaFree(dsc);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    free(wback), free(ref_w), free(ref_v), free(ref_v2);
    sc_model_destroy(m);
    sc_backend_destroy(be);
    return rc;
}
#endif

int sc_bench_lars(int argc, char **argv) {
    args a;
    if (!parse(argc, argv, &a)) {
        int help = argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        fprintf(help ? stdout : stderr,
                "usage: simclr bench lars [--device cpu|cuda] [--optim lars|sgd|adamw|all] [--grads fp32|bf16] "
                "[--iters N] [--warmup N] [--threads T]\n");
        return help ? 0 : 2;
    }
    sc_log_set_level(SC_LOG_WARN);
    if (!strcmp(a.device, "cpu")) return run_cpu(&a);
#ifdef SIMCLR_HAVE_CUDA
    if (!strncmp(a.device, "cuda", 4)) return run_gpu(&a);
#endif
    fprintf(stderr, "simclr bench lars: device '%s' is not available in this build\n", a.device);
    return 2;
}
