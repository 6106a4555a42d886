/*
 * test_gpu_lars.c - the fused optimizer step on the GPU (kernels/lars.cu) against the CPU
 * reference (src/backend/cpu/cpu_optim.c). Without a GPU: exit 77 (skipped).
 *
 * LARS, SGD (with and without Nesterov) and AdamW, with and without gradient clipping, fp32 and
 * bf16 gradients, on the real ResNet-18 and ResNet-50 parameter tables (BN and bias exclusions,
 * BN running statistics that must stay untouched) and on a random table (tiny tensors, one huge
 * tensor, sizes that are not multiples of 4); non-finite gradients (NaN, Inf) skipped with the
 * weights' bits kept; the same bits on a second run; the warmup + cosine rate at chosen steps
 * against hand-computed values. Both sides compute in double from fp32 storage, so they agree
 * to the last bit or two of each fp32 value.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "harness.h"
#include "simclr/backend.h"
#include "simclr/model.h"
#include "simclr/rng.h"

static sc_backend *cpu(void) {
    static sc_backend *be;
    if (!be) {
        sc_backend_options opt = {0};
        if (sc_backend_create("cpu", &opt, &be) != SC_OK) sc_test_skip("no CPU backend");
    }
    return be;
}

/* Host state of one optimizer run: weights, gradients, two state buffers, the step record. */
typedef struct state {
    int64_t n;
    float *w, *g, *v, *v2;
    double sc[SC_OPTIM_NSCALARS];
} state;

static void state_init(state *s, const sc_param_table *t, uint32_t key) {
    s->n = t->total;
    s->w = malloc((size_t)s->n * sizeof(float));
    s->g = malloc((size_t)s->n * sizeof(float));
    s->v = malloc((size_t)s->n * sizeof(float));
    s->v2 = malloc((size_t)s->n * sizeof(float));
    sc_rng r = sc_rng_make(5, key, 0, 0, SC_RNG_TEST);
    for (int64_t i = 0; i < s->n; i++) {
        s->w[i] = (float)sc_rng_normal(&r);
        s->g[i] = 0.01f * (float)sc_rng_normal(&r);
        s->v[i] = 0.001f * (float)sc_rng_normal(&r);
        s->v2[i] = 1e-4f * sc_rng_uniform(&r);
    }
    memset(s->sc, 0, sizeof s->sc);
}

static void state_copy(state *dst, const state *src) {
    *dst = *src;
    size_t b = (size_t)src->n * sizeof(float);
    dst->w = malloc(b), dst->g = malloc(b), dst->v = malloc(b), dst->v2 = malloc(b);
    memcpy(dst->w, src->w, b), memcpy(dst->g, src->g, b), memcpy(dst->v, src->v, b), memcpy(dst->v2, src->v2, b);
}

static void state_free(state *s) {
    free(s->w), free(s->g), free(s->v), free(s->v2);
}

/* Device copies of a state. */
typedef struct dstate {
    float *w, *v, *v2;
    void *g;
    double *sc;
    int bf16;
} dstate;

static void upload(dstate *d, const state *s, int bf16) {
    size_t b = (size_t)s->n * sizeof(float);
    d->bf16 = bf16;
    CHECK(cudaMalloc((void **)&d->w, b) == cudaSuccess && cudaMalloc((void **)&d->v, b) == cudaSuccess &&
          cudaMalloc((void **)&d->v2, b) == cudaSuccess && cudaMalloc(&d->g, b) == cudaSuccess &&
          cudaMalloc((void **)&d->sc, sizeof s->sc) == cudaSuccess);
    CHECK(cudaMemcpy(d->w, s->w, b, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(d->v, s->v, b, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(d->v2, s->v2, b, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(d->sc, s->sc, sizeof s->sc, cudaMemcpyHostToDevice) == cudaSuccess);
    if (bf16) {
        uint16_t *h = malloc((size_t)s->n * 2);
        for (int64_t i = 0; i < s->n; i++) h[i] = sc_f32_to_bf16(s->g[i]);
        CHECK(cudaMemcpy(d->g, h, (size_t)s->n * 2, cudaMemcpyHostToDevice) == cudaSuccess);
        free(h);
    } else {
        CHECK(cudaMemcpy(d->g, s->g, b, cudaMemcpyHostToDevice) == cudaSuccess);
    }
}

static void download(state *s, const dstate *d) {
    size_t b = (size_t)s->n * sizeof(float);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(cudaMemcpy(s->w, d->w, b, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(s->v, d->v, b, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(s->v2, d->v2, b, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(s->sc, d->sc, sizeof s->sc, cudaMemcpyDeviceToHost) == cudaSuccess);
}

static void dstate_free(dstate *d) {
    cudaFree(d->w), cudaFree(d->v), cudaFree(d->v2), cudaFree(d->g), cudaFree(d->sc);
}

static void gpu_steps(sc_cuda_optim_plan *plan, const sc_param_table *t, const sc_optim_hparams *hp, dstate *d,
                      int steps) {
    sc_tensor w = sc_tensor_1d(d->w, SC_F32, t->total), v = sc_tensor_1d(d->v, SC_F32, t->total);
    sc_tensor v2 = sc_tensor_1d(d->v2, SC_F32, t->total), g = sc_tensor_1d(d->g, d->bf16 ? SC_BF16 : SC_F32, t->total);
    sc_tensor sc = sc_tensor_1d(d->sc, SC_F64, SC_OPTIM_NSCALARS);
    for (int i = 0; i < steps; i++)
        sc_cuda_optim_step(plan, hp, &w, &g, &v, hp->kind == SC_OPTIM_ADAMW ? &v2 : NULL, &sc, 0);
}

static void cpu_steps(const sc_param_table *t, const sc_optim_hparams *hp, state *s, int steps, int bf16) {
    if (bf16)
        for (int64_t i = 0; i < s->n; i++) s->g[i] = sc_bf16_to_f32(sc_f32_to_bf16(s->g[i]));
    sc_tensor w = sc_tensor_1d(s->w, SC_F32, t->total), g = sc_tensor_1d(s->g, SC_F32, t->total);
    sc_tensor v = sc_tensor_1d(s->v, SC_F32, t->total), v2 = sc_tensor_1d(s->v2, SC_F32, t->total);
    sc_tensor sc = sc_tensor_1d(s->sc, SC_F64, SC_OPTIM_NSCALARS);
    for (int i = 0; i < steps; i++)
        sc_op_optim_step(cpu(), hp, t, &w, &g, &v, hp->kind == SC_OPTIM_ADAMW ? &v2 : NULL, &sc);
}

static void compare_buffers(const char *what, const sc_param_table *t, const float *got, const float *want) {
    int64_t bad = -1;
    for (int i = 0; i < t->count && bad < 0; i++) {
        const sc_param *p = &t->rows[i];
        for (int64_t j = 0; j < p->numel; j++) {
            double a = got[p->offset + j], b = want[p->offset + j];
            if (!(fabs(a - b) <= 1e-8 + 1e-6 * fabs(b))) {
                bad = p->offset + j;
                CHECKF(0, "%s: %s[%lld] = %.9g, reference %.9g", what, p->name, (long long)j, a, b);
                break;
            }
        }
    }
    CHECK(bad < 0);
}

/* GPU against CPU: 3 steps of one optimizer configuration on one table. */
static void against_cpu(const char *name, const sc_param_table *t, const sc_optim_hparams *hp, int bf16) {
    state ref, got;
    state_init(&ref, t, 7);
    ref.sc[SC_OPTIM_LR] = 0.05;
    state_copy(&got, &ref);
    sc_cuda_optim_plan *plan;
    CHECK(sc_cuda_optim_plan_create(t, &plan) == SC_OK);
    CHECK(sc_cuda_optim_plan_matches(plan, t));
    dstate d;
    upload(&d, &got, bf16);
    gpu_steps(plan, t, hp, &d, 3);
    download(&got, &d);
    cpu_steps(t, hp, &ref, 3, bf16);
    char what[160];
    snprintf(what, sizeof what, "%s kind %d nesterov %d clip %g %s: w", name, (int)hp->kind, hp->nesterov,
             hp->clip_grad_norm, bf16 ? "bf16" : "fp32");
    compare_buffers(what, t, got.w, ref.w);
    what[strlen(what) - 1] = 'v';
    compare_buffers(what, t, got.v, ref.v);
    if (hp->kind == SC_OPTIM_ADAMW) compare_buffers("second moment", t, got.v2, ref.v2);
    CHECK(got.sc[SC_OPTIM_STEP] == ref.sc[SC_OPTIM_STEP]);
    CHECK_CLOSE(got.sc[SC_OPTIM_LR], ref.sc[SC_OPTIM_LR], 0, 1e-7);
    CHECK_CLOSE(got.sc[SC_OPTIM_GRAD_NORM], ref.sc[SC_OPTIM_GRAD_NORM], 0, 1e-10);
    CHECK_CLOSE(got.sc[SC_OPTIM_CLIP_COEF], ref.sc[SC_OPTIM_CLIP_COEF], 0, 1e-10);
    CHECK(got.sc[SC_OPTIM_SKIPPED] == 0 && got.sc[SC_OPTIM_SKIP_COUNT] == 0);
    /* BN running statistics: never touched */
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        if (!(p->flags & SC_PARAM_BN_STAT)) continue;
        CHECK(memcmp(got.w + p->offset, ref.w + p->offset, (size_t)p->numel * 4) == 0);
    }
    dstate_free(&d);
    sc_cuda_optim_plan_destroy(plan);
    state_free(&ref);
    state_free(&got);
}

static void all_optimizers(const char *name, const sc_param_table *t) {
    sc_optim_hparams lars = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 1e-4, .trust_coef = 1e-3};
    sc_optim_hparams sgd = {.kind = SC_OPTIM_SGD, .momentum = 0.9, .weight_decay = 5e-4};
    sc_optim_hparams adamw = {.kind = SC_OPTIM_ADAMW, .weight_decay = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    for (int clip = 0; clip < 2; clip++)
        for (int bf16 = 0; bf16 < 2; bf16++) {
            lars.clip_grad_norm = sgd.clip_grad_norm = adamw.clip_grad_norm = clip ? 0.5 : 0.0;
            against_cpu(name, t, &lars, bf16);
            sgd.nesterov = bf16;
            against_cpu(name, t, &sgd, bf16);
            against_cpu(name, t, &adamw, bf16);
        }
}

static void resnet_table(sc_arch arch, void (*fn)(const char *, const sc_param_table *), const char *name) {
    sc_model_config mc = {.arch = arch, .stem = SC_STEM_IMAGENET, .width = 1.0, .in_channels = 3,
                          .zero_init_residual = 1, .head_layers = 2, .head_out = 128, .head_bn_hidden = 1,
                          .head_bias = 1};
    sc_model *m;
    CHECK(sc_model_create(&mc, cpu(), SC_F32, &m) == SC_OK);
    fn(name, sc_model_params(m));
    sc_model_destroy(m);
}

/* Tiny tensors, one huge one, sizes not multiples of 4, every flag. */
static void random_table(sc_param_table *t) {
    sc_params_init_table(t);
    static const int64_t sizes[] = {1, 3, 5, 7, 17, 64, 3000017, 1000, 8191, 8193, 2, 64, 12345};
    for (int i = 0; i < (int)(sizeof sizes / sizeof sizes[0]); i++) {
        char name[32];
        uint32_t flags = 0;
        if (i % 4 == 1) flags = SC_PARAM_BN | SC_PARAM_NO_WD | SC_PARAM_NO_LARS;
        if (i % 4 == 2) flags = SC_PARAM_BIAS | SC_PARAM_NO_WD | SC_PARAM_NO_LARS;
        if (i == 5 || i == 11) flags = SC_PARAM_BN_STAT | SC_PARAM_NO_WD | SC_PARAM_NO_LARS;
        snprintf(name, sizeof name, "t%d.weight", i);
        sc_params_add(t, name, 1, &sizes[i], flags, SC_INIT_ZEROS, 0, 0);
    }
}

static void test_tables(void) {
    resnet_table(SC_ARCH_RESNET18, all_optimizers, "resnet18");
    resnet_table(SC_ARCH_RESNET50, all_optimizers, "resnet50");
    sc_param_table t;
    random_table(&t);
    all_optimizers("random", &t);
    sc_params_free(&t);
}

/* NaN and Inf gradients: the step is skipped and counted, the weights keep their bits. */
static void test_nonfinite(void) {
    sc_param_table t;
    random_table(&t);
    static const sc_optim_kind kinds[] = {SC_OPTIM_LARS, SC_OPTIM_SGD, SC_OPTIM_ADAMW};
    for (int k = 0; k < 3; k++) {
        sc_optim_hparams hp = {.kind = kinds[k], .momentum = 0.9, .weight_decay = 1e-4, .trust_coef = 1e-3,
                               .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
        state s, before;
        state_init(&s, &t, 9);
        s.sc[SC_OPTIM_LR] = 0.1;
        sc_cuda_optim_plan *plan;
        CHECK(sc_cuda_optim_plan_create(&t, &plan) == SC_OK);
        dstate d;
        upload(&d, &s, 0);
        gpu_steps(plan, &t, &hp, &d, 1);
        download(&s, &d);
        state_copy(&before, &s);
        static const float bad[2] = {NAN, -INFINITY};
        for (int b = 0; b < 2; b++) {
            int64_t at = t.rows[6].offset + 12345 * (b + 1); /* inside the huge tensor */
            CHECK(cudaMemcpy((float *)d.g + at, &bad[b], sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
            gpu_steps(plan, &t, &hp, &d, 1);
            download(&s, &d);
            CHECK(memcmp(s.w, before.w, (size_t)s.n * 4) == 0 && memcmp(s.v, before.v, (size_t)s.n * 4) == 0 &&
                  memcmp(s.v2, before.v2, (size_t)s.n * 4) == 0);
            CHECK(s.sc[SC_OPTIM_SKIPPED] == 1 && s.sc[SC_OPTIM_SKIP_COUNT] == b + 1 && s.sc[SC_OPTIM_STEP] == b + 2);
            CHECK(!isfinite(s.sc[SC_OPTIM_GRAD_NORM]));
            float fine = 0.01f;
            CHECK(cudaMemcpy((float *)d.g + at, &fine, sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
        }
        gpu_steps(plan, &t, &hp, &d, 1);
        download(&s, &d);
        CHECK(s.sc[SC_OPTIM_SKIPPED] == 0 && s.sc[SC_OPTIM_SKIP_COUNT] == 2 && s.sc[SC_OPTIM_STEP] == 4);
        CHECK(memcmp(s.w, before.w, (size_t)s.n * 4) != 0);
        dstate_free(&d);
        sc_cuda_optim_plan_destroy(plan);
        state_free(&s);
        state_free(&before);
    }
    sc_params_free(&t);
}

/* The same inputs give the same bits. */
static void test_determinism(void) {
    sc_param_table t;
    random_table(&t);
    sc_optim_hparams hp = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 1e-4, .trust_coef = 1e-3,
                           .clip_grad_norm = 1.0};
    state a, b;
    state_init(&a, &t, 11);
    a.sc[SC_OPTIM_LR] = 0.2;
    state_copy(&b, &a);
    sc_cuda_optim_plan *plan;
    CHECK(sc_cuda_optim_plan_create(&t, &plan) == SC_OK);
    dstate da, db;
    upload(&da, &a, 0);
    upload(&db, &b, 0);
    gpu_steps(plan, &t, &hp, &da, 3);
    gpu_steps(plan, &t, &hp, &db, 3);
    download(&a, &da);
    download(&b, &db);
    CHECK(memcmp(a.w, b.w, (size_t)a.n * 4) == 0 && memcmp(a.v, b.v, (size_t)a.n * 4) == 0);
    CHECK(memcmp(a.sc, b.sc, sizeof a.sc) == 0);
    dstate_free(&da);
    dstate_free(&db);
    sc_cuda_optim_plan_destroy(plan);
    state_free(&a);
    state_free(&b);
    sc_params_free(&t);
}

/* The schedule evaluated on the device from the step counter: warmup, peak, cosine, end. */
static void test_schedule_values(void) {
    sc_param_table t;
    random_table(&t);
    sc_optim_hparams hp = {.kind = SC_OPTIM_SGD, .momentum = 0.9, .use_schedule = 1,
                           .schedule = {.peak_lr = 4.8, .warmup_steps = 10, .total_steps = 110}};
    static const struct {
        double step, lr;
    } at[] = {{0, 0.0}, {5, 2.4}, {10, 4.8}, {35, 4.097056274847714}, {60, 2.4}, {110, 0.0}, {500, 0.0}};
    state s;
    state_init(&s, &t, 13);
    sc_cuda_optim_plan *plan;
    CHECK(sc_cuda_optim_plan_create(&t, &plan) == SC_OK);
    dstate d;
    upload(&d, &s, 0);
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        CHECK(cudaMemcpy(d.sc + SC_OPTIM_STEP, &at[i].step, sizeof(double), cudaMemcpyHostToDevice) == cudaSuccess);
        gpu_steps(plan, &t, &hp, &d, 1);
        download(&s, &d);
        CHECK_CLOSE(s.sc[SC_OPTIM_LR], (double)(float)at[i].lr, 1e-12, 1e-7);
        CHECK(s.sc[SC_OPTIM_STEP] == at[i].step + 1);
    }
    dstate_free(&d);
    sc_cuda_optim_plan_destroy(plan);
    state_free(&s);
    sc_params_free(&t);
}

int main(void) {
    if (sc_cuda_device_count() == 0) sc_test_skip("no CUDA GPU visible");
    SC_RUN(test_tables);
    SC_RUN(test_nonfinite);
    SC_RUN(test_determinism);
    SC_RUN(test_schedule_values);
    return sc_test_summary();
}
