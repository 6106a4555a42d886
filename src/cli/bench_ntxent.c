/*
 * bench_ntxent.c - `simclr bench ntxent`: the contrastive loss (L2 norm + NT-Xent, forward and
 * backward, single matrix of 2N rows) at several batch sizes, one JSON line per case.
 *
 * On the CPU it times the reference op (the only CPU variant; labelled cpu-reference), after
 * checking its F32 result against F64. On a GPU (CUDA builds) it times the fused kernels
 * (kernels/ntxent.cu) and the cuBLAS baseline (materialised logits), for fp32 and bf16 inputs.
 * Before timing a size, each GPU variant is validated against the CPU reference on a slice of
 * the batch: up to 1024 anchor rows against all 2N columns (the general rows x columns form,
 * both gradients), which keeps the reference affordable at 2N = 131072.
 *
 * Reported per case: median / p10 / p90 milliseconds of forward + backward; extra device
 * memory (the op's workspace: it allocates nothing else; for the CPU reference the R x C matrix
 * and temporaries it mallocs); TFLOP/s by the model count 6 (2N)^2 d, and for the fused kernel
 * the tensor-core FLOPs it executes (two passes of two products each, 3 bf16 products per
 * product for fp32 inputs) against the dense bf16 peak of an H100/H200 SXM (989.4 TFLOP/s).
 *
 *   simclr bench ntxent --device cuda --sizes 512,2048,8192,32768,131072 --dim 128
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "simclr/backend.h"
#include "simclr/log.h"
#include "simclr/rng.h"
#include "simclr/version.h"
#ifdef SIMCLR_HAVE_CUDA
#include "cuda_kernels.h"
#endif

#define MAX_SIZES 16
#define TC_PEAK_TFLOPS 989.4 /* dense bf16, H100 / H200 SXM (REFERENCE.md section 2) */

typedef struct args {
    const char *device;
    int64_t sizes[MAX_SIZES];
    int nsizes, dim, warmup, iters, threads, check_rows;
    int fp32, bf16, fused, cublas;
    double tau;
} args;

static int parse_list(const char *s, int64_t *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 2 || v % 2) return 0;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return n;
}

static int parse(int argc, char **argv, args *a) {
    *a = (args){.device = "cpu", .dim = 128, .tau = 0.1, .warmup = 2, .iters = 10, .check_rows = 1024, .fp32 = 1,
                .bf16 = 1, .fused = 1, .cublas = 1};
    int sizes_given = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 0;
    if (argc % 2 == 0) return 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--sizes")) sizes_given = a->nsizes = parse_list(v, a->sizes, MAX_SIZES);
        else if (!strcmp(k, "--dim")) a->dim = atoi(v);
        else if (!strcmp(k, "--tau")) a->tau = atof(v);
        else if (!strcmp(k, "--warmup")) a->warmup = atoi(v);
        else if (!strcmp(k, "--iters")) a->iters = atoi(v);
        else if (!strcmp(k, "--threads")) a->threads = atoi(v);
        else if (!strcmp(k, "--check-rows")) a->check_rows = atoi(v);
        else if (!strcmp(k, "--precision")) {
            a->fp32 = !strcmp(v, "fp32") || !strcmp(v, "both");
            a->bf16 = !strcmp(v, "bf16") || !strcmp(v, "both");
            if (!a->fp32 && !a->bf16) return 0;
        } else if (!strcmp(k, "--variants")) {
            a->fused = strstr(v, "fused") != NULL;
            a->cublas = strstr(v, "cublas") != NULL;
            if (!a->fused && !a->cublas) return 0;
        } else {
            fprintf(stderr, "simclr bench ntxent: unknown option %s\n", k);
            return 0;
        }
    }
    if (!sizes_given) {
        static const int64_t gpu[] = {512, 2048, 8192, 32768, 131072}, cpu[] = {512, 2048};
        int g = strcmp(a->device, "cpu") != 0;
        a->nsizes = g ? 5 : 2;
        for (int i = 0; i < a->nsizes; i++) a->sizes[i] = g ? gpu[i] : cpu[i];
    }
    return a->nsizes > 0 && a->dim >= 1 && a->dim <= 512 && a->iters >= 1 && a->tau > 0 && a->check_rows >= 1;
}

/* 2N rows, the second view of each image correlated with its first (a realistic loss). */
static float *make_inputs(int64_t rows, int dim) {
    float *z = malloc((size_t)rows * (size_t)dim * sizeof *z);
    if (!z) return NULL;
    sc_rng r = sc_rng_make(17, (uint32_t)rows, 0, 0, SC_RNG_TEST);
    for (int64_t i = 0; i < rows * dim; i++) z[i] = (float)sc_rng_normal(&r);
    for (int64_t i = 0; i < rows / 2 * dim; i++) z[rows / 2 * dim + i] = 0.8f * z[i] + 0.6f * z[rows / 2 * dim + i];
    return z;
}

static void print_line(const args *a, const char *impl, const char *gpu, int64_t rows, const char *prec,
                       const sc_bench_stats *st, double extra_bytes, double exec_flops, const char *validated) {
    char date[32], host[64];
    sc_bench_stamp(date, host);
    double sec = st->median * 1e-3, model = 6.0 * (double)rows * (double)rows * a->dim;
    printf("{\"bench\": \"ntxent\", \"impl\": \"%s\", \"date\": \"%s\", \"git\": \"%s\", \"host\": \"%s\", "
           "\"device\": \"%s\", \"gpu\": \"%s\", \"rows\": %lld, \"dim\": %d, \"tau\": %g, \"precision\": \"%s\", "
           "\"ms_median\": %.4f, \"ms_p10\": %.4f, \"ms_p90\": %.4f, \"extra_bytes\": %.0f, \"extra_gib\": %.4f, "
           "\"tflops_model\": %.3f",
           impl, date, sc_git_sha, host, a->device, gpu, (long long)rows, a->dim, a->tau, prec, st->median, st->p10,
           st->p90, extra_bytes, extra_bytes / 1073741824.0, model / sec / 1e12);
    if (exec_flops > 0)
        printf(", \"tflops_executed\": %.3f, \"tc_peak_tflops\": %.1f, \"tc_fraction\": %.4f", exec_flops / sec / 1e12,
               TC_PEAK_TFLOPS, exec_flops / sec / 1e12 / TC_PEAK_TFLOPS);
    printf(", \"validated\": \"%s\"}\n", validated);
    fflush(stdout);
}

/* ---- the CPU reference -------------------------------------------------------------------- */

static int run_cpu(const args *a) {
    sc_backend *be;
    sc_backend_options bo = {.threads = a->threads};
    if (sc_backend_create("cpu", &bo, &be) != SC_OK) {
        fprintf(stderr, "simclr bench ntxent: %s\n", sc_last_error());
        return 1;
    }
    if (a->bf16) fprintf(stderr, "simclr bench ntxent: the CPU reference computes in fp32 only; bf16 skipped\n");
    sc_contrastive_desc d = sc_contrastive_ntxent(a->tau);
    d.normalize = 1;
    int rc = 0;
    for (int s = 0; s < a->nsizes && rc == 0 && a->fp32; s++) {
        int64_t rows = a->sizes[s], n = rows * a->dim;
        float *z = make_inputs(rows, a->dim), *dz = malloc((size_t)n * sizeof(float));
        double *z64 = malloc((size_t)n * sizeof(double)), *dz64 = malloc((size_t)n * sizeof(double));
        if (!z || !dz || !z64 || !dz64) {
            fprintf(stderr, "simclr bench ntxent: out of memory at 2N = %lld\n", (long long)rows);
            rc = 1;
        }
        for (int64_t i = 0; rc == 0 && i < n; i++) z64[i] = z[i];
        float l32 = 0, a32 = 0;
        double l64 = 0, a64 = 0;
        sc_tensor t32 = sc_tensor_2d(z, SC_F32, rows, a->dim), g32 = sc_tensor_2d(dz, SC_F32, rows, a->dim);
        sc_tensor t64 = sc_tensor_2d(z64, SC_F64, rows, a->dim), g64 = sc_tensor_2d(dz64, SC_F64, rows, a->dim);
        sc_tensor lt32 = sc_tensor_1d(&l32, SC_F32, 1), at32 = sc_tensor_1d(&a32, SC_F32, 1);
        sc_tensor lt64 = sc_tensor_1d(&l64, SC_F64, 1), at64 = sc_tensor_1d(&a64, SC_F64, 1);
        if (rc == 0) {
            /* validate: the F32 reference against F64 */
            sc_op_contrastive(be, &d, &t32, &t32, &lt32, &at32, &g32, &g32, NULL);
            sc_op_contrastive(be, &d, &t64, &t64, &lt64, &at64, &g64, &g64, NULL);
            double worst = 0, scale = 0;
            for (int64_t i = 0; i < n; i++) {
                worst = fmax(worst, fabs(dz[i] - dz64[i]));
                scale = fmax(scale, fabs(dz64[i]));
            }
            if (!(fabs(l32 - l64) <= 1e-5 * fabs(l64) + 1e-6) || !(worst <= 1e-4 * scale)) {
                fprintf(stderr, "simclr bench ntxent: validation failed at 2N = %lld: loss %.8g vs %.8g (F64), "
                        "gradient error %.3g of %.3g\n", (long long)rows, l32, l64, worst, scale);
                rc = 1;
            }
        }
        if (rc == 0) {
            for (int i = 0; i < a->warmup; i++) sc_op_contrastive(be, &d, &t32, &t32, &lt32, &at32, &g32, &g32, NULL);
            double *ms = malloc((size_t)a->iters * sizeof *ms);
            for (int i = 0; i < a->iters; i++) {
                double t0 = sc_bench_now();
                sc_op_contrastive(be, &d, &t32, &t32, &lt32, &at32, &g32, &g32, NULL);
                ms[i] = 1e3 * (sc_bench_now() - t0);
            }
            sc_bench_stats st = sc_bench_summarise(ms, a->iters);
            /* what the reference mallocs: logits R x C, unit rows, norms, the unit-space gradient */
            double extra = 4.0 * ((double)rows * rows + 2.0 * (double)n + (double)rows);
            print_line(a, "simclr-cpu-reference", "", rows, "fp32", &st, extra, 0,
                       "F32 matches the F64 reference");
            free(ms);
        }
        free(z), free(dz), free(z64), free(dz64);
    }
    sc_backend_destroy(be);
    return rc;
}

/* ---- the GPU variants ----------------------------------------------------------------------- */

#ifdef SIMCLR_HAVE_CUDA
enum { FUSED, CUBLAS };

typedef struct gpu_ctx {
    cublasHandle_t cublas;
    cudaEvent_t e0, e1;
    char name[256];
} gpu_ctx;

static void run_op(gpu_ctx *g, int variant, const sc_contrastive_desc *d, sc_tensor *zr, sc_tensor *zc, sc_tensor *loss,
                   sc_tensor *acc, sc_tensor *gr, sc_tensor *gc, sc_tensor *ws) {
    if (variant == FUSED)
        sc_cuda_contrastive(d, zr, zc, loss, acc, gr, gc, ws, 0);
    else
        sc_cuda_ntxent_cublas(g->cublas, d, zr, zc, loss, acc, gr, gc, ws, 0);
}

static size_t workspace(int variant, const sc_contrastive_desc *d, int64_t rows, int64_t cols, int dim, sc_dtype dt) {
    return variant == FUSED ? sc_cuda_contrastive_workspace(d, rows, cols, dim, dt)
                            : sc_cuda_ntxent_cublas_workspace(rows, cols, dim);
}

/* Up to check_rows anchors (from the middle of the batch) against all columns, both
 * gradients, against the CPU reference on the same rounded inputs. 0 when it agrees. */
static int validate(gpu_ctx *g, int variant, const args *a, const float *zh, void *zdev, int64_t cols, int bf16,
                    char *msg, size_t cap) {
    const int dim = a->dim;
    const int64_t rows = a->check_rows < cols ? a->check_rows : cols, off = (cols - rows) / 2;
    const size_t es = bf16 ? 2 : 4;
    sc_dtype dt = bf16 ? SC_BF16 : SC_F32;
    sc_contrastive_desc d = sc_contrastive_ntxent(a->tau);
    d.normalize = 1;
    d.row_offset = off;
    void *dgr = NULL, *dgc = NULL, *dws = NULL;
    float *dsc = NULL;
    size_t wsb = workspace(variant, &d, rows, cols, dim, dt);
    if (cudaMalloc(&dgr, (size_t)(rows * dim) * es) != cudaSuccess ||
        cudaMalloc(&dgc, (size_t)(cols * dim) * es) != cudaSuccess || cudaMalloc(&dws, wsb) != cudaSuccess ||
        cudaMalloc((void **)&dsc, 2 * sizeof(float)) != cudaSuccess) {
        snprintf(msg, cap, "no memory for the validation slice");
        cudaFree(dgr), cudaFree(dgc), cudaFree(dws), cudaFree(dsc);
        return 1;
    }
    sc_tensor zc = sc_tensor_2d(zdev, dt, cols, dim);
    sc_tensor zr = sc_tensor_2d((char *)zdev + (size_t)(off * dim) * es, dt, rows, dim);
    sc_tensor gr = sc_tensor_2d(dgr, dt, rows, dim), gc = sc_tensor_2d(dgc, dt, cols, dim);
    sc_tensor loss = sc_tensor_1d(dsc, SC_F32, 1), acc = sc_tensor_1d(dsc + 1, SC_F32, 1);
    sc_tensor ws = sc_tensor_1d(dws, SC_U8, (int64_t)wsb);
    run_op(g, variant, &d, &zr, &zc, &loss, &acc, &gr, &gc, &ws);
    float sc[2];
    size_t nr = (size_t)(rows * dim), nc = (size_t)(cols * dim);
    void *hgr = malloc(nr * es), *hgc = malloc(nc * es);
    float *rz = malloc(nc * 4), *rgr = malloc(nr * 4), *rgc = malloc(nc * 4);
    cudaMemcpy(sc, dsc, sizeof sc, cudaMemcpyDeviceToHost);
    cudaMemcpy(hgr, dgr, nr * es, cudaMemcpyDeviceToHost);
    cudaMemcpy(hgc, dgc, nc * es, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < nc; i++) rz[i] = bf16 ? sc_bf16_to_f32(sc_f32_to_bf16(zh[i])) : zh[i];
    sc_backend *cpu;
    sc_backend_options bo = {.threads = a->threads};
    float rl = 0, ra = 0;
    int bad = sc_backend_create("cpu", &bo, &cpu) != SC_OK;
    if (!bad) {
        sc_tensor cz = sc_tensor_2d(rz, SC_F32, cols, dim), crz = sc_tensor_2d(rz + off * dim, SC_F32, rows, dim);
        sc_tensor cgr = sc_tensor_2d(rgr, SC_F32, rows, dim), cgc = sc_tensor_2d(rgc, SC_F32, cols, dim);
        sc_tensor cl = sc_tensor_1d(&rl, SC_F32, 1), ca = sc_tensor_1d(&ra, SC_F32, 1);
        sc_op_contrastive(cpu, &d, &crz, &cz, &cl, &ca, &cgr, &cgc, NULL);
        sc_backend_destroy(cpu);
    }
    /* the tolerances of tests/test_gpu_ntxent.c (fp32 inputs: two bf16 terms; bf16: one) */
    double t = 0.1 / a->tau > 1 ? 0.1 / a->tau : 1;
    double lt = bf16 ? 2e-2 * t + 1e-2 * fabs(rl) : 2e-4 * t + 1e-4 * fabs(rl), gt = bf16 ? 3e-2 * t : 2e-3 * t;
    if (variant == CUBLAS) lt = 1e-5 + 1e-5 * fabs(rl), gt = bf16 ? 3e-2 * t : 1e-4;
    double worst = 0, scale = 0;
    for (int k = 0; k < 2; k++) {
        size_t n = k ? nc : nr;
        const void *got = k ? hgc : hgr;
        const float *want = k ? rgc : rgr;
        double w = 0, s = 0;
        for (size_t i = 0; i < n; i++) {
            double v = bf16 ? sc_bf16_to_f32(((const uint16_t *)got)[i]) : ((const float *)got)[i];
            double e = fabs(v - want[i]);
            w = isnan(e) ? INFINITY : fmax(w, e);
            s = fmax(s, fabs(want[i]));
        }
        if (w / (s > 0 ? s : 1) > worst / (scale > 0 ? scale : 1)) worst = w, scale = s;
    }
    bad = bad || !(fabs(sc[0] - rl) <= lt) || !(worst <= gt * scale) ||
          !(fabs(sc[1] - ra) <= fmax(bf16 ? 0.02 : 0.002, 2.0 / (double)rows));
    snprintf(msg, cap, "%lld anchors x %lld columns vs the CPU: loss %.6g (CPU %.6g), accuracy %.4f (CPU %.4f), "
             "gradient error %.2e of max %.2e", (long long)rows, (long long)cols, sc[0], rl, sc[1], ra, worst, scale);
    free(hgr), free(hgc), free(rz), free(rgr), free(rgc);
    cudaFree(dgr), cudaFree(dgc), cudaFree(dws), cudaFree(dsc);
    return bad;
}

/* Executed tensor-core FLOPs of the fused kernels: per pass S = Q K^T (once per 128-wide output
 * slice) and P V, for rows and columns; fp32 inputs take three bf16 products per product. */
static double fused_flops(int64_t rows, int dim, int bf16) {
    int dp = (dim + 15) / 16 * 16, slices = (dp + 127) / 128;
    double per_pass = 2.0 * (double)rows * (double)rows * dp * (slices + 1);
    return 2.0 * per_pass * (bf16 ? 1 : 3);
}

static int time_case(gpu_ctx *g, int variant, const args *a, const float *zh, int64_t rows, int bf16) {
    const int dim = a->dim;
    const size_t es = bf16 ? 2 : 4, n = (size_t)(rows * dim);
    sc_dtype dt = bf16 ? SC_BF16 : SC_F32;
    const char *impl = variant == FUSED ? "simclr-fused" : "simclr-cublas", *prec = bf16 ? "bf16" : "fp32";
    void *dz = NULL, *dg = NULL, *dws = NULL;
    float *dsc = NULL;
    if (cudaMalloc(&dz, n * es) != cudaSuccess || cudaMalloc(&dg, n * es) != cudaSuccess ||
        cudaMalloc((void **)&dsc, 2 * sizeof(float)) != cudaSuccess) {
        fprintf(stderr, "simclr bench ntxent: cannot allocate the inputs at 2N = %lld\n", (long long)rows);
        return 1;
    }
    void *host = malloc(n * es);
    for (size_t i = 0; i < n; i++) {
        if (bf16)
            ((uint16_t *)host)[i] = sc_f32_to_bf16(zh[i]);
        else
            ((float *)host)[i] = zh[i];
    }
    cudaMemcpy(dz, host, n * es, cudaMemcpyHostToDevice);
    free(host);
    char msg[400];
    int rc = 0;
    if (validate(g, variant, a, zh, dz, rows, bf16, msg, sizeof msg)) {
        fprintf(stderr, "simclr bench ntxent: %s %s 2N = %lld: validation failed: %s\n", impl, prec, (long long)rows, msg);
        rc = 1;
    }
    sc_contrastive_desc d = sc_contrastive_ntxent(a->tau);
    d.normalize = 1;
    size_t wsb = workspace(variant, &d, rows, rows, dim, dt);
    if (rc == 0 && cudaMalloc(&dws, wsb) != cudaSuccess) {
        cudaGetLastError(); /* clear the allocation error */
        char date[32], host_name[64];
        sc_bench_stamp(date, host_name);
        printf("{\"bench\": \"ntxent\", \"impl\": \"%s\", \"date\": \"%s\", \"git\": \"%s\", \"gpu\": \"%s\", "
               "\"rows\": %lld, \"dim\": %d, \"precision\": \"%s\", \"status\": \"does not fit: %.1f GiB of "
               "workspace\"}\n", impl, date, sc_git_sha, g->name, (long long)rows, dim, prec, (double)wsb / 1073741824.0);
        fflush(stdout);
        dws = NULL;
    } else if (rc == 0) {
        sc_tensor z = sc_tensor_2d(dz, dt, rows, dim), gz = sc_tensor_2d(dg, dt, rows, dim);
        sc_tensor loss = sc_tensor_1d(dsc, SC_F32, 1), acc = sc_tensor_1d(dsc + 1, SC_F32, 1);
        sc_tensor ws = sc_tensor_1d(dws, SC_U8, (int64_t)wsb);
        for (int i = 0; i < a->warmup; i++) run_op(g, variant, &d, &z, &z, &loss, &acc, &gz, &gz, &ws);
        double *ms = malloc((size_t)a->iters * sizeof *ms);
        for (int i = 0; i < a->iters; i++) {
            cudaEventRecord(g->e0, 0);
            run_op(g, variant, &d, &z, &z, &loss, &acc, &gz, &gz, &ws);
            cudaEventRecord(g->e1, 0);
            cudaEventSynchronize(g->e1);
            float t = 0;
            cudaEventElapsedTime(&t, g->e0, g->e1);
            ms[i] = t;
        }
        sc_bench_stats st = sc_bench_summarise(ms, a->iters);
        print_line(a, impl, g->name, rows, prec, &st, (double)wsb, variant == FUSED ? fused_flops(rows, dim, bf16) : 0,
                   msg);
        free(ms);
    }
    cudaFree(dz), cudaFree(dg), cudaFree(dws), cudaFree(dsc);
    return rc;
}

static int run_gpu(const args *a) {
    if (sc_cuda_device_count() == 0) {
        fprintf(stderr, "simclr bench ntxent: no CUDA GPU is visible\n");
        return 1;
    }
    gpu_ctx g;
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    snprintf(g.name, sizeof g.name, "%s", prop.name);
    if (cublasCreate(&g.cublas) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "simclr bench ntxent: cannot create a cuBLAS handle\n");
        return 1;
    }
    cudaEventCreate(&g.e0);
    cudaEventCreate(&g.e1);
    int rc = 0;
    for (int s = 0; s < a->nsizes && rc == 0; s++) {
        float *zh = make_inputs(a->sizes[s], a->dim);
        for (int bf16 = 0; bf16 < 2 && rc == 0; bf16++) {
            if (!(bf16 ? a->bf16 : a->fp32)) continue;
            if (a->fused) rc = time_case(&g, FUSED, a, zh, a->sizes[s], bf16);
            if (a->cublas && rc == 0) rc = time_case(&g, CUBLAS, a, zh, a->sizes[s], bf16);
        }
        free(zh);
    }
    cudaEventDestroy(g.e0);
    cudaEventDestroy(g.e1);
    cublasDestroy(g.cublas);
    return rc;
}
#endif

int sc_bench_ntxent(int argc, char **argv) {
    args a;
    if (!parse(argc, argv, &a)) {
        int help = argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        fprintf(help ? stdout : stderr,
                "usage: simclr bench ntxent [--device cpu|cuda] [--sizes 2N,2N,...] [--dim D] [--tau T] "
                "[--precision fp32|bf16|both] [--variants fused,cublas] [--iters N] [--warmup N] [--threads T] "
                "[--check-rows R]\n");
        return help ? 0 : 2;
    }
    sc_log_set_level(SC_LOG_WARN);
    if (!strcmp(a.device, "cpu")) return run_cpu(&a);
#ifdef SIMCLR_HAVE_CUDA
    if (!strncmp(a.device, "cuda", 4)) return run_gpu(&a);
#endif
    fprintf(stderr, "simclr bench ntxent: device '%s' is not available in this build\n", a.device);
    return 2;
}
