/*
 * test_gpu_ntxent.c - the fused contrastive losses on the GPU (kernels/ntxent.cu) against the
 * CPU reference (src/backend/cpu/cpu_loss.c). Without a GPU: exit 77 (skipped).
 *
 * NT-Xent for 2N from 2 to 8192 (odd N, sizes that are not multiples of the 64-row tiles),
 * d in {32, 64, 128, 129} (and 512, the largest), tau in {0.05, 0.1, 0.5}, fp32 and bf16
 * inputs; NT-Logistic and margin with and without semi-hard negatives; the rows-vs-columns
 * form against the CPU and against the GPU's own single matrix on the concatenated batch;
 * forward-only calls; the same bits on a second run; the cuBLAS baseline.
 *
 * Tolerances follow the error model of the kernel: fp32 inputs become two bf16 terms (16
 * significant bits), so a similarity is off by ~1e-5 and a logit by ~1e-5 / tau; bf16 inputs
 * are rounded once more after normalisation (2^-9 relative) and the softmax weights are bf16
 * in the weighted sums. Gradients are compared by the largest error relative to the largest
 * reference entry; the reference sees the same (bf16-rounded) inputs.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "harness.h"
#include "simclr/backend.h"
#include "simclr/rng.h"

static sc_backend *cpu(void) {
    static sc_backend *be;
    if (!be) {
        sc_backend_options opt = {0};
        if (sc_backend_create("cpu", &opt, &be) != SC_OK) sc_test_skip("no CPU backend");
    }
    return be;
}

typedef struct result {
    double loss, acc;
    float *d_rows, *d_cols; /* host copies (NULL when not asked) */
} result;

static void result_free(result *r) {
    free(r->d_rows);
    free(r->d_cols);
}

enum { VARIANT_FUSED, VARIANT_CUBLAS };

/* The loss on the GPU: rows = columns [offset, offset + R) of zc when zr == NULL (the single
 * matrix when R == C and combined), gradients when want_grad (combined: one summed buffer). */
static result gpu_loss(int variant, const sc_contrastive_desc *d, const float *zc, int64_t cols, int64_t rows,
                       int64_t dim, int bf16, int want_grad, int combined) {
    const size_t es = bf16 ? 2 : 4;
    sc_dtype dt = bf16 ? SC_BF16 : SC_F32;
    void *host = malloc((size_t)(cols * dim) * es);
    for (int64_t i = 0; i < cols * dim; i++) {
        if (bf16)
            ((uint16_t *)host)[i] = sc_f32_to_bf16(zc[i]);
        else
            ((float *)host)[i] = zc[i];
    }
    void *dzc, *ddr = NULL, *ddc = NULL, *dws = NULL;
    float *dscal;
    CHECK(cudaMalloc(&dzc, (size_t)(cols * dim) * es) == cudaSuccess);
    CHECK(cudaMemcpy(dzc, host, (size_t)(cols * dim) * es, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMalloc((void **)&dscal, 2 * sizeof(float)) == cudaSuccess);
    int same = rows == cols && d->row_offset == 0;
    sc_tensor tc = sc_tensor_2d(dzc, dt, cols, dim);
    sc_tensor tr = same ? tc : sc_tensor_2d((char *)dzc + (size_t)(d->row_offset * dim) * es, dt, rows, dim);
    sc_tensor loss = sc_tensor_1d(dscal, SC_F32, 1), acc = sc_tensor_1d(dscal + 1, SC_F32, 1);
    sc_tensor gr, gc;
    if (want_grad) {
        CHECK(cudaMalloc(&ddr, (size_t)(rows * dim) * es) == cudaSuccess);
        gr = sc_tensor_2d(ddr, dt, rows, dim);
        if (combined) {
            gc = gr;
        } else {
            CHECK(cudaMalloc(&ddc, (size_t)(cols * dim) * es) == cudaSuccess);
            gc = sc_tensor_2d(ddc, dt, cols, dim);
        }
    }
    size_t wsb = variant == VARIANT_FUSED ? sc_cuda_contrastive_workspace(d, rows, cols, dim, dt)
                                          : sc_cuda_ntxent_cublas_workspace(rows, cols, dim);
    CHECK(cudaMalloc(&dws, wsb) == cudaSuccess);
    sc_tensor ws = sc_tensor_1d(dws, SC_U8, (int64_t)wsb);
    if (variant == VARIANT_FUSED) {
        sc_cuda_contrastive(d, &tr, &tc, &loss, &acc, want_grad ? &gr : NULL, want_grad ? &gc : NULL, &ws, 0);
    } else {
        cublasHandle_t h;
        CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
        sc_cuda_ntxent_cublas(h, d, &tr, &tc, &loss, &acc, want_grad ? &gr : NULL, want_grad ? &gc : NULL, &ws, 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        cublasDestroy(h);
    }
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    float sc[2];
    CHECK(cudaMemcpy(sc, dscal, sizeof sc, cudaMemcpyDeviceToHost) == cudaSuccess);
    result r = {.loss = sc[0], .acc = sc[1]};
    for (int k = 0; want_grad && k < 2; k++) {
        if (k == 1 && combined) break;
        int64_t n = (k ? cols : rows) * dim;
        void *src = k ? ddc : ddr;
        float *out = malloc((size_t)n * sizeof(float));
        CHECK(cudaMemcpy(host, src, (size_t)n * es, cudaMemcpyDeviceToHost) == cudaSuccess);
        for (int64_t i = 0; i < n; i++) out[i] = bf16 ? sc_bf16_to_f32(((uint16_t *)host)[i]) : ((float *)host)[i];
        if (k)
            r.d_cols = out;
        else
            r.d_rows = out;
    }
    cudaFree(dzc);
    cudaFree(dscal);
    cudaFree(ddr);
    cudaFree(ddc);
    cudaFree(dws);
    free(host);
    return r;
}

/* The CPU reference on the same (rounded) inputs: F64 up to 2048 columns, F32 beyond. */
static result cpu_loss(const sc_contrastive_desc *d, const float *zc, int64_t cols, int64_t rows, int64_t dim,
                       int bf16, int want_grad, int combined) {
    int f64 = cols <= 2048;
    sc_dtype dt = f64 ? SC_F64 : SC_F32;
    size_t es = f64 ? 8 : 4;
    char *z = malloc((size_t)(cols * dim) * es);
    for (int64_t i = 0; i < cols * dim; i++) {
        float v = bf16 ? sc_bf16_to_f32(sc_f32_to_bf16(zc[i])) : zc[i];
        if (f64)
            ((double *)z)[i] = v;
        else
            ((float *)z)[i] = v;
    }
    int same = rows == cols && d->row_offset == 0;
    char *gr = want_grad ? malloc((size_t)(rows * dim) * es) : NULL;
    char *gc = want_grad && !combined ? malloc((size_t)(cols * dim) * es) : gr;
    double lv[2] = {0, 0};
    float lf[2] = {0, 0};
    sc_tensor tc = sc_tensor_2d(z, dt, cols, dim);
    sc_tensor tr = same ? tc : sc_tensor_2d(z + (size_t)(d->row_offset * dim) * es, dt, rows, dim);
    sc_tensor loss = f64 ? sc_tensor_1d(lv, dt, 1) : sc_tensor_1d(lf, dt, 1);
    sc_tensor acc = f64 ? sc_tensor_1d(lv + 1, dt, 1) : sc_tensor_1d(lf + 1, dt, 1);
    sc_tensor tgr = sc_tensor_2d(gr, dt, rows, dim), tgc = sc_tensor_2d(gc, dt, combined ? rows : cols, dim);
    sc_op_contrastive(cpu(), d, &tr, &tc, &loss, &acc, want_grad ? &tgr : NULL, want_grad ? &tgc : NULL, NULL);
    result r = {.loss = f64 ? lv[0] : lf[0], .acc = f64 ? lv[1] : lf[1]};
    for (int k = 0; want_grad && k < 2; k++) {
        if (k == 1 && combined) break;
        int64_t n = (k ? cols : rows) * dim;
        char *src = k ? gc : gr;
        float *out = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) out[i] = f64 ? (float)((double *)src)[i] : ((float *)src)[i];
        if (k)
            r.d_cols = out;
        else
            r.d_rows = out;
    }
    free(z);
    free(gr);
    if (gc != gr) free(gc);
    return r;
}

typedef struct tol {
    double loss_abs, loss_rel, grad_rel, acc;
} tol;

static tol tolerance(int bf16, double tau, int64_t rows) {
    /* logit errors scale with 1/tau; 0.1 is the reference temperature of these bounds */
    double t = 0.1 / tau > 1 ? 0.1 / tau : 1;
    tol x;
    if (bf16) {
        x = (tol){.loss_abs = 2e-2 * t, .loss_rel = 1e-2, .grad_rel = 3e-2 * t, .acc = 0.02};
    } else {
        x = (tol){.loss_abs = 2e-4 * t, .loss_rel = 1e-4, .grad_rel = 2e-3 * t, .acc = 0.002};
    }
    double one = 2.0 / (double)rows; /* two near-tied anchors may flip */
    if (x.acc < one) x.acc = one;
    return x;
}

/* max |a - b| <= rel * max |b| */
static void compare_grad(const char *what, const float *got, const float *want, int64_t n, double rel) {
    double worst = 0, scale = 0;
    int64_t at = 0;
    int nan = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (isnan(e) && !nan) nan = 1, at = i;
        if (!nan && e > worst) worst = e, at = i;
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    CHECKF(!nan && worst <= rel * scale, "%s: element %lld: got %.7g want %.7g (error %.3g > %.3g x max %.3g)", what,
           (long long)at, got[at], want[at], worst, rel, scale);
}

/* Loss, accuracy and (n_row_values elements of) d_rows. */
static void compare(const char *what, const result *g, const result *c, const tol *t, int64_t n_row_values) {
    CHECKF(fabs(g->loss - c->loss) <= t->loss_abs + t->loss_rel * fabs(c->loss), "%s: loss %.9g, reference %.9g", what,
           g->loss, c->loss);
    CHECKF(fabs(g->acc - c->acc) <= t->acc, "%s: accuracy %.6g, reference %.6g", what, g->acc, c->acc);
    char w[256];
    if (g->d_rows && c->d_rows) {
        snprintf(w, sizeof w, "%s d_rows", what);
        compare_grad(w, g->d_rows, c->d_rows, n_row_values, t->grad_rel);
    }
}

static float *random_inputs(int64_t rows, int64_t dim, uint32_t key) {
    float *z = malloc((size_t)(rows * dim) * sizeof(float));
    sc_rng r = sc_rng_make(21, key, 0, 0, SC_RNG_TEST);
    /* positives correlated with their anchors so the loss and accuracy are not trivial */
    for (int64_t i = 0; i < rows * dim; i++) z[i] = (float)sc_rng_normal(&r);
    int64_t n = rows / 2;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++) z[(n + i) * dim + j] = 0.8f * z[i * dim + j] + 0.6f * z[(n + i) * dim + j];
    return z;
}

/* NT-Xent single matrix: sizes x dimensions x temperatures x precisions. */
static void test_ntxent_single(void) {
    static const int64_t sizes[] = {2, 6, 130, 1002, 2050};
    static const int64_t dims[] = {32, 64, 128, 129};
    static const double taus[] = {0.05, 0.1, 0.5};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
            int64_t rows = sizes[s], dim = dims[k];
            float *z = random_inputs(rows, dim, (uint32_t)(s * 16 + k));
            for (size_t t = 0; t < sizeof taus / sizeof taus[0]; t++)
                for (int bf16 = 0; bf16 < 2; bf16++) {
                    sc_contrastive_desc d = sc_contrastive_ntxent(taus[t]);
                    d.normalize = 1;
                    result g = gpu_loss(VARIANT_FUSED, &d, z, rows, rows, dim, bf16, 1, 1);
                    result c = cpu_loss(&d, z, rows, rows, dim, bf16, 1, 1);
                    tol x = tolerance(bf16, taus[t], rows);
                    char what[128];
                    snprintf(what, sizeof what, "ntxent 2N=%lld d=%lld tau=%g %s", (long long)rows, (long long)dim,
                             taus[t], bf16 ? "bf16" : "fp32");
                    compare(what, &g, &c, &x, rows * dim);
                    result_free(&g);
                    result_free(&c);
                }
            free(z);
        }
}

/* The large sizes and the largest dimension, fewer combinations (the CPU reference is slow). */
static void test_ntxent_large(void) {
    static const struct {
        int64_t rows, dim;
        double tau;
    } cases[] = {{8192, 128, 0.1}, {8192, 129, 0.05}, {4098, 512, 0.1}, {512, 512, 0.5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float *z = random_inputs(cases[i].rows, cases[i].dim, 100 + (uint32_t)i);
        for (int bf16 = 0; bf16 < 2; bf16++) {
            sc_contrastive_desc d = sc_contrastive_ntxent(cases[i].tau);
            d.normalize = 1;
            result g = gpu_loss(VARIANT_FUSED, &d, z, cases[i].rows, cases[i].rows, cases[i].dim, bf16, 1, 1);
            result c = cpu_loss(&d, z, cases[i].rows, cases[i].rows, cases[i].dim, bf16, 1, 1);
            tol x = tolerance(bf16, cases[i].tau, cases[i].rows);
            char what[128];
            snprintf(what, sizeof what, "ntxent 2N=%lld d=%lld tau=%g %s", (long long)cases[i].rows,
                     (long long)cases[i].dim, cases[i].tau, bf16 ? "bf16" : "fp32");
            compare(what, &g, &c, &x, cases[i].rows * cases[i].dim);
            result_free(&g);
            result_free(&c);
        }
        free(z);
    }
}

/* NT-Logistic and margin, with and without semi-hard negatives (fp32: the semi-hard choice
 * compares similarities, so bf16 rounding could pick another negative than the reference). */
static void test_other_losses(void) {
    const sc_contrastive_desc kinds[] = {
        {.kind = SC_CONTRASTIVE_NT_LOGISTIC, .tau = 0.2},
        {.kind = SC_CONTRASTIVE_NT_LOGISTIC, .tau = 0.5, .semi_hard = 1},
        {.kind = SC_CONTRASTIVE_MARGIN, .margin = 0.5},
        {.kind = SC_CONTRASTIVE_MARGIN, .margin = 0.3, .semi_hard = 1},
    };
    static const int64_t sizes[][2] = {{2, 32}, {6, 64}, {130, 129}, {1002, 128}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            float *z = random_inputs(sizes[s][0], sizes[s][1], 200 + (uint32_t)(k * 8 + s));
            for (int bf16 = 0; bf16 < 2 - kinds[k].semi_hard; bf16++) {
                sc_contrastive_desc d = kinds[k];
                d.normalize = 1;
                result g = gpu_loss(VARIANT_FUSED, &d, z, sizes[s][0], sizes[s][0], sizes[s][1], bf16, 1, 1);
                result c = cpu_loss(&d, z, sizes[s][0], sizes[s][0], sizes[s][1], bf16, 1, 1);
                tol x = tolerance(bf16, d.kind == SC_CONTRASTIVE_MARGIN ? 1.0 : d.tau, sizes[s][0]);
                char what[128];
                snprintf(what, sizeof what, "kind %d semi-hard %d 2N=%lld d=%lld %s", (int)d.kind, d.semi_hard,
                         (long long)sizes[s][0], (long long)sizes[s][1], bf16 ? "bf16" : "fp32");
                compare(what, &g, &c, &x, sizes[s][0] * sizes[s][1]);
                result_free(&g);
                result_free(&c);
            }
            free(z);
        }
}

/* Local rows x global columns: separate row and column gradients against the CPU, and the
 * R_r / C weighted sum over a split of the rows against the GPU's own single matrix. */
static void test_rows_vs_columns(void) {
    enum { C = 390, D = 64, BLOCK = 130 }; /* 3 ranks of 65 images */
    static const int64_t split[] = {0, 100, 130, 301, 390};
    const sc_contrastive_desc kinds[] = {{.kind = SC_CONTRASTIVE_NTXENT, .tau = 0.1},
                                         {.kind = SC_CONTRASTIVE_NT_LOGISTIC, .tau = 0.3},
                                         {.kind = SC_CONTRASTIVE_MARGIN, .margin = 0.4, .semi_hard = 1}};
    float *z = random_inputs(C, D, 300);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        sc_contrastive_desc d = kinds[k];
        d.normalize = 1;
        d.pair_block = BLOCK;
        tol x = tolerance(0, d.kind == SC_CONTRASTIVE_MARGIN ? 1.0 : d.tau, C);
        result whole = gpu_loss(VARIANT_FUSED, &d, z, C, C, D, 0, 1, 1);
        double loss = 0, acc = 0;
        float *sum = calloc(C * D, sizeof(float));
        for (int r = 0; r < 4; r++) {
            int64_t rows = split[r + 1] - split[r];
            d.row_offset = split[r];
            result g = gpu_loss(VARIANT_FUSED, &d, z, C, rows, D, 0, 1, 0);
            result c = cpu_loss(&d, z, C, rows, D, 0, 1, 0);
            char what[128];
            snprintf(what, sizeof what, "rows [%lld, %lld) kind %d", (long long)split[r], (long long)split[r + 1],
                     (int)d.kind);
            compare(what, &g, &c, &x, rows * D);
            snprintf(what, sizeof what, "rows [%lld, %lld) kind %d d_cols", (long long)split[r], (long long)split[r + 1],
                     (int)d.kind);
            compare_grad(what, g.d_cols, c.d_cols, C * D, x.grad_rel);
            double w = (double)rows / C;
            loss += w * g.loss;
            acc += w * g.acc;
            for (int64_t i = 0; i < C * D; i++) sum[i] += (float)(w * g.d_cols[i]);
            for (int64_t i = 0; i < rows * D; i++) sum[split[r] * D + i] += (float)(w * g.d_rows[i]);
            result_free(&g);
            result_free(&c);
        }
        CHECK_CLOSE(loss, whole.loss, 1e-5, 1e-5);
        CHECK_CLOSE(acc, whole.acc, 1e-6, 0);
        compare_grad("rows x columns summed vs single matrix", sum, whole.d_rows, C * D, 1e-4);
        free(sum);
        result_free(&whole);
    }
    free(z);
}

/* Forward-only calls give the forward of the full call; two runs give the same bits. */
static void test_forward_only_and_determinism(void) {
    float *z = random_inputs(1000, 128, 400);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        sc_contrastive_desc d = sc_contrastive_ntxent(0.1);
        d.normalize = 1;
        result a = gpu_loss(VARIANT_FUSED, &d, z, 1000, 1000, 128, bf16, 1, 1);
        result b = gpu_loss(VARIANT_FUSED, &d, z, 1000, 1000, 128, bf16, 1, 1);
        result f = gpu_loss(VARIANT_FUSED, &d, z, 1000, 1000, 128, bf16, 0, 0);
        CHECK(a.loss == b.loss && a.acc == b.acc);
        CHECK(memcmp(a.d_rows, b.d_rows, 1000 * 128 * sizeof(float)) == 0);
        CHECK_CLOSE(f.loss, a.loss, 1e-6, 1e-6);
        CHECK(f.acc == a.acc);
        result_free(&a);
        result_free(&b);
        result_free(&f);
    }
    free(z);
}

/* The cuBLAS baseline (fp32 GEMMs) against the CPU: tight tolerances. */
static void test_cublas_baseline(void) {
    static const int64_t cases[][2] = {{2, 32}, {130, 129}, {2050, 128}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float *z = random_inputs(cases[i][0], cases[i][1], 500 + (uint32_t)i);
        for (int rows_form = 0; rows_form < 2; rows_form++) {
            sc_contrastive_desc d = sc_contrastive_ntxent(0.07);
            d.normalize = 1;
            int64_t rows = rows_form ? cases[i][0] / 2 : cases[i][0];
            d.row_offset = rows_form ? cases[i][0] / 4 : 0;
            result g = gpu_loss(VARIANT_CUBLAS, &d, z, cases[i][0], rows, cases[i][1], 0, 1, !rows_form);
            result c = cpu_loss(&d, z, cases[i][0], rows, cases[i][1], 0, 1, !rows_form);
            tol x = {.loss_abs = 1e-5, .loss_rel = 1e-5, .grad_rel = 1e-4, .acc = 2.0 / (double)rows};
            char what[96];
            snprintf(what, sizeof what, "cublas 2N=%lld d=%lld rows %lld", (long long)cases[i][0],
                     (long long)cases[i][1], (long long)rows);
            compare(what, &g, &c, &x, rows * cases[i][1]);
            if (rows_form) compare_grad(what, g.d_cols, c.d_cols, cases[i][0] * cases[i][1], x.grad_rel);
            result_free(&g);
            result_free(&c);
        }
        free(z);
    }
}

int main(void) {
    if (sc_cuda_device_count() == 0) sc_test_skip("no CUDA GPU visible");
    SC_RUN(test_ntxent_single);
    SC_RUN(test_ntxent_large);
    SC_RUN(test_other_losses);
    SC_RUN(test_rows_vs_columns);
    SC_RUN(test_forward_only_and_determinism);
    SC_RUN(test_cublas_baseline);
    return sc_test_summary();
}
