/*
 * test_parity_torch.c - simclr's CPU path against PyTorch on the same tiny SimCLR network.
 *
 * For each case, tools/torch_reference.py (Debian's python3-torch / torchvision) builds the
 * network from torchvision's own ResNet blocks and writes a fixture: initial weights, the
 * inputs of 3 steps, h, z, loss and every gradient of step 0, and every parameter after 3
 * LARS steps, all computed in float64. This test loads the same weights into simclr's model
 * twice: in F64, which must agree to ~1e-10 of each tensor's scale (the same mathematics), and
 * in F32, which must agree at fp32 tolerances. Shapes keep >= 16 values per BN channel so the
 * comparison is well conditioned (tiny BN batches amplify rounding without bound). It also checks that the full-width ResNet-18/34/50 parameter tables
 * carry exactly torchvision's state_dict names and shapes (minus fc and num_batches_tracked).
 *
 * Skips (exit 77) when PyTorch cannot be imported.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "harness.h"
#include "simclr/backend.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/safetensors.h"

#define PYTHON "/usr/bin/python3"

typedef struct parity_case {
    const char *name;
    sc_model_config mc;
    int size, batch;
    double tau;
} parity_case;

static sc_backend *be;

/* Run the generator; returns its exit status (77 = PyTorch unavailable). */
static int run_tool(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s/tools/torch_reference.py %s", PYTHON, SC_SOURCE_DIR, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

/* A fixture tensor of n elements as doubles (F64 or F32 in the file); NULL when absent. */
static double *fixture_tensor(const sc_safetensors *st, const char *name, int64_t n) {
    const sc_st_tensor *t = sc_safetensors_find(st, name);
    int ok = t && (t->dtype == SC_F64 || t->dtype == SC_F32) &&
             (int64_t)(t->end - t->begin) == n * (int64_t)sc_dtype_size(t->dtype);
    CHECKF(ok, "fixture lacks a %lld-element '%s'", (long long)n, name);
    if (!ok) return NULL;
    double *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    const void *src = sc_safetensors_data(st, t);
    for (int64_t i = 0; i < n; i++)
        out[i] = t->dtype == SC_F64 ? ((const double *)src)[i] : ((const float *)src)[i];
    return out;
}

/* Read element i of a model-dtype buffer as a double. */
static double at(const void *buf, sc_dtype dt, int64_t i) {
    return dt == SC_F64 ? ((const double *)buf)[i] : ((const float *)buf)[i];
}

/*
 * Compare n model-dtype values with the float64 reference tensor `name`:
 * |got - want| <= tol * (max|want| + |want|), i.e. relative to the tensor's scale, so
 * near-zero entries of a large tensor are judged by the precision of its large entries.
 * When `st32` (PyTorch's own float32 run) is given, the tolerance is at least 4x PyTorch's
 * fp32 error on that tensor: single precision cannot be asked to beat what fp32 rounding
 * does to the same computation in PyTorch.
 */
static void compare(const sc_safetensors *st, const sc_safetensors *st32, const char *name, const void *got,
                    sc_dtype dt, int64_t n, double tol) {
    double *want = fixture_tensor(st, name, n);
    if (!want) return;
    double *g = malloc((size_t)(n ? n : 1) * sizeof *g), worst = 0.0, scale = 0.0, torch_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        g[i] = at(got, dt, i);
        worst = fmax(worst, fabs(g[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    double *t32 = st32 ? fixture_tensor(st32, name, n) : NULL;
    for (int64_t i = 0; t32 && i < n; i++) torch_err = fmax(torch_err, fabs(t32[i] - want[i]));
    double rel = scale > 0 ? torch_err / scale : 0.0;
    if (4 * rel > tol) tol = 4 * rel;
    char what[240];
    snprintf(what, sizeof what, "%s %s (max |diff| %.2e, PyTorch fp32 %.2e, max |ref| %.2e)", sc_dtype_name(dt), name,
             worst, torch_err, scale);
    sc_test_compare(what, g, want, n, tol * scale, tol);
    free(t32);
    free(g);
    free(want);
}

/* Copy fixture tensors <prefix><row name> into a model-dtype flat buffer. */
static int load_rows(const sc_safetensors *st, const sc_param_table *t, void *flat, sc_dtype dt) {
    char name[300];
    int ok = 1;
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        snprintf(name, sizeof name, "param.%s", p->name);
        double *src = fixture_tensor(st, name, p->numel);
        if (!src) {
            ok = 0;
            continue;
        }
        for (int64_t j = 0; j < p->numel; j++) {
            if (dt == SC_F64)
                ((double *)flat)[p->offset + j] = src[j];
            else
                ((float *)flat)[p->offset + j] = (float)src[j];
        }
        free(src);
    }
    return ok;
}

/* Every "param.*" tensor of the fixture is a row of our table: same set of names. */
static void check_same_names(const sc_safetensors *st, const sc_param_table *t) {
    int fixture_params = 0;
    for (int i = 0; i < st->count; i++) {
        if (strncmp(st->tensors[i].name, "param.", 6) != 0) continue;
        fixture_params++;
        CHECKF(sc_params_find(t, st->tensors[i].name + 6) >= 0, "PyTorch has '%s', simclr does not",
               st->tensors[i].name + 6);
    }
    CHECKF(fixture_params == t->count, "PyTorch has %d tensors, simclr %d", fixture_params, t->count);
}

/* Tolerances relative to each tensor's scale: F64 must agree to rounding (same mathematics),
 * F32 to single precision. Gradients and updated weights go through more operations. */
typedef struct tolerances {
    double forward, grad, after;
} tolerances;

static void run_model(const parity_case *c, const sc_safetensors *st, const sc_safetensors *st32, sc_dtype dt,
                      const tolerances *tol) {
    sc_model *m;
    CHECK(sc_model_create(&c->mc, be, dt, &m) == SC_OK);
    int views = 2 * c->batch;
    CHECK(sc_model_plan(m, views, c->size, c->size) == SC_OK);
    const sc_param_table *t = sc_model_params(m);
    if (dt == SC_F64) check_same_names(st, t);
    sc_tensor pb = sc_model_param_buffer(m), gb = sc_model_grad_buffer(m), sb = sc_model_state_buffer(m);
    sc_loss loss;
    sc_contrastive_desc ld = sc_contrastive_ntxent(c->tau);
    CHECK(sc_loss_init(&loss, be, &ld, views, sc_model_out_dim(m), dt) == SC_OK);
    int64_t in_numel = (int64_t)views * c->size * c->size * c->mc.in_channels;
    void *xbuf = malloc((size_t)in_numel * sc_dtype_size(dt));
    double scalars[SC_OPTIM_NSCALARS] = {0}; /* the learning rate is set per step (use_schedule 0) */
    sc_tensor sct = sc_tensor_1d(scalars, SC_F64, SC_OPTIM_NSCALARS);
    static const double lrs[3] = {0.1, 0.08, 0.06}; /* must match --lrs below */
    sc_optim_hparams hp = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 1e-4, .trust_coef = 0.001};
    int ok = load_rows(st, t, pb.data, dt);
    for (int step = 0; ok && step < 3; step++) {
        char name[32];
        snprintf(name, sizeof name, "x.%d", step);
        double *xin = fixture_tensor(st, name, in_numel);
        if (!xin) break;
        for (int64_t i = 0; i < in_numel; i++) {
            if (dt == SC_F64)
                ((double *)xbuf)[i] = xin[i];
            else
                ((float *)xbuf)[i] = (float)xin[i];
        }
        free(xin);
        sc_tensor x = sc_tensor_4d(xbuf, dt, views, c->size, c->size, c->mc.in_channels);
        sc_tensor h, z, dz;
        sc_model_forward(m, &x, 1, &h, &z);
        sc_loss_compute(&loss, &z, &dz);
        snprintf(name, sizeof name, "loss.%d", step);
        compare(st, st32, name, loss.loss.data, dt, 1, step == 0 ? tol->forward : tol->after);
        if (step == 0) {
            compare(st, st32, "h", h.data, dt, sc_tensor_numel(&h), tol->forward);
            compare(st, st32, "z", z.data, dt, sc_tensor_numel(&z), tol->forward);
            compare(st, st32, "acc", loss.acc.data, dt, 1, 0);
        }
        sc_model_backward(m, &dz);
        for (int i = 0; step == 0 && i < t->count; i++) {
            const sc_param *p = &t->rows[i];
            if (p->flags & SC_PARAM_BN_STAT) continue;
            char gname[300];
            snprintf(gname, sizeof gname, "grad.%s", p->name);
            compare(st, st32, gname, (char *)gb.data + p->offset * sc_dtype_size(dt), dt, p->numel, tol->grad);
        }
        scalars[SC_OPTIM_LR] = lrs[step];
        sc_op_optim_step(be, &hp, t, &pb, &gb, &sb, NULL, &sct);
    }
    for (int i = 0; ok && i < t->count; i++) {
        char name[300];
        snprintf(name, sizeof name, "after.%s", t->rows[i].name);
        compare(st, st32, name, (char *)pb.data + t->rows[i].offset * sc_dtype_size(dt), dt, t->rows[i].numel, tol->after);
    }
    free(xbuf);
    sc_loss_free(&loss);
    sc_model_destroy(m);
}

/* Generate the float64 and float32 fixtures of a case; 0 on success. */
static int generate(const parity_case *c, const char *extra_args, const char *dtype, char *path, size_t cap) {
    char args[1400];
    snprintf(path, cap, "%s/parity_%s_%s.safetensors", SC_BINARY_DIR, c->name, dtype);
    snprintf(args, sizeof args, "fixture %s --dtype %s --lrs 0.1,0.08,0.06 --size %d --batch %d --tau %g %s", path, dtype,
             c->size, c->batch, c->tau, extra_args);
    int rc = run_tool(args);
    if (rc == 77) sc_test_skip("PyTorch (python3-torch) is not installed");
    CHECKF(rc == 0, "torch_reference.py failed with status %d", rc);
    return rc;
}

static void run_case(const parity_case *c, const char *extra_args) {
    char p64[512], p32[512];
    if (generate(c, extra_args, "float64", p64, sizeof p64) || generate(c, extra_args, "float32", p32, sizeof p32)) return;
    sc_safetensors st, st32;
    if (sc_safetensors_open(p64, &st) != SC_OK) {
        CHECKF(0, "%s", sc_last_error());
        return;
    }
    if (sc_safetensors_open(p32, &st32) != SC_OK) {
        CHECKF(0, "%s", sc_last_error());
        sc_safetensors_close(&st);
        return;
    }
    /* relative to each tensor's scale; 'after' covers 3 steps of training dynamics */
    static const tolerances f64 = {1e-10, 1e-9, 1e-7}, f32 = {3e-5, 1e-3, 2e-3};
    run_model(c, &st, NULL, SC_F64, &f64);
    run_model(c, &st, &st32, SC_F32, &f32);
    sc_safetensors_close(&st32);
    sc_safetensors_close(&st);
}

/* A small ResNet-18 (BasicBlocks, downsample shortcuts, CIFAR stem) with a 2-layer head. */
static void test_resnet18_cifar_stem(void) {
    parity_case c = {.name = "r18", .size = 16, .batch = 4, .tau = 0.5,
                     .mc = {.arch = SC_ARCH_RESNET18, .stem = SC_STEM_CIFAR, .width = 0.0625, .in_channels = 3,
                            .head_layers = 2, .head_out = 8, .head_bn_hidden = 1, .head_bias = 1}};
    run_case(&c, "--arch resnet18 --stem cifar --width 0.0625 --in-channels 3 --head-layers 2 --head-out 8 "
                 "--bn-hidden 1 --bn-last 0 --bias 1");
}

/* A small ResNet-50 (Bottlenecks, ImageNet stem with max pool, gray input) with a 3-layer
 * head ending in BN without beta, as SimCLR v2. */
static void test_resnet50_imagenet_stem(void) {
    parity_case c = {.name = "r50", .size = 64, .batch = 4, .tau = 0.2,
                     .mc = {.arch = SC_ARCH_RESNET50, .stem = SC_STEM_IMAGENET, .width = 0.125, .in_channels = 1,
                            .head_layers = 3, .head_hidden = 12, .head_out = 6, .head_bn_hidden = 1,
                            .head_bn_last = 1, .head_bias = 1}};
    run_case(&c, "--arch resnet50 --stem imagenet --width 0.125 --in-channels 1 --head-layers 3 --head-hidden 12 "
                 "--head-out 6 --bn-hidden 1 --bn-last 1 --bias 1");
}

/* A head without BN (biases everywhere) and a single-layer (linear) head. */
static void test_heads_without_bn(void) {
    parity_case c = {.name = "r18_nobn", .size = 12, .batch = 3, .tau = 0.1,
                     .mc = {.arch = SC_ARCH_RESNET18, .stem = SC_STEM_CIFAR, .width = 0.03125, .in_channels = 2,
                            .head_layers = 3, .head_hidden = 5, .head_out = 4, .head_bn_hidden = 0, .head_bias = 1}};
    run_case(&c, "--arch resnet18 --stem cifar --width 0.03125 --in-channels 2 --head-layers 3 --head-hidden 5 "
                 "--head-out 4 --bn-hidden 0 --bn-last 0 --bias 1");
    parity_case d = {.name = "r34_linear", .size = 12, .batch = 3, .tau = 1.0,
                     .mc = {.arch = SC_ARCH_RESNET34, .stem = SC_STEM_CIFAR, .width = 0.03125, .in_channels = 3,
                            .head_layers = 1, .head_out = 3, .head_bias = 1}};
    run_case(&d, "--arch resnet34 --stem cifar --width 0.03125 --in-channels 3 --head-layers 1 --head-out 3 "
                 "--bn-hidden 0 --bn-last 0 --bias 1");
}

/* Full-width tables carry torchvision's names and shapes (OIHW there, KRSC here). */
static void test_torchvision_names(void) {
    static const char *archs[3] = {"resnet18", "resnet34", "resnet50"};
    /* trainable parameters without fc, from torchvision's published totals minus fc */
    static const int64_t params[3] = {11689512 - 513000, 21797672 - 513000, 25557032 - 2049000};
    for (int a = 0; a < 3; a++) {
        char path[512], args[600];
        snprintf(path, sizeof path, "%s/names_%s.txt", SC_BINARY_DIR, archs[a]);
        snprintf(args, sizeof args, "names %s %s", archs[a], path);
        int rc = run_tool(args);
        if (rc == 77) sc_test_skip("PyTorch (python3-torch) is not installed");
        CHECK(rc == 0);
        sc_model_config mc = {.arch = (sc_arch)a, .stem = SC_STEM_IMAGENET, .width = 1.0, .in_channels = 3,
                              .zero_init_residual = 1, .head_layers = 1, .head_out = 1};
        sc_model *m;
        CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_OK);
        const sc_param_table *pt = sc_model_params(m);
        int encoder_rows = 0;
        int64_t encoder_params = 0;
        for (int i = 0; i < pt->count; i++)
            if (pt->rows[i].flags & SC_PARAM_ENCODER) {
                encoder_rows++;
                if (!(pt->rows[i].flags & SC_PARAM_BN_STAT)) encoder_params += pt->rows[i].numel;
            }
        FILE *f = fopen(path, "r");
        char line[512];
        int matched = 0;
        while (f && fgets(line, sizeof line, f)) {
            char name[256];
            int64_t s[4] = {0};
            int n = sscanf(line, "%255s %ld %ld %ld %ld", name, &s[0], &s[1], &s[2], &s[3]) - 1;
            if (strncmp(name, "fc.", 3) == 0 || strstr(name, "num_batches_tracked")) continue;
            int row = sc_params_find(pt, name);
            CHECKF(row >= 0, "%s: torchvision's '%s' is missing", archs[a], name);
            if (row < 0) continue;
            const sc_param *p = &pt->rows[row];
            int64_t want[4] = {s[0], s[1], s[2], s[3]};
            if (n == 4) { /* OIHW -> KRSC */
                want[1] = s[2];
                want[2] = s[3];
                want[3] = s[1];
            }
            int same = p->ndim == n;
            for (int d = 0; same && d < n; d++) same = p->shape[d] == want[d];
            CHECKF(same, "%s: '%s' has a different shape", archs[a], name);
            matched++;
        }
        if (f) fclose(f);
        CHECKF(matched == encoder_rows, "%s: %d torchvision tensors, %d encoder rows", archs[a], matched, encoder_rows);
        CHECKF(encoder_params == params[a], "%s: %lld encoder parameters, torchvision %lld", archs[a],
               (long long)encoder_params, (long long)params[a]);
        sc_model_destroy(m);
    }
}

int main(void) {
    sc_backend_options opt = {.threads = 2};
    if (sc_backend_create("cpu", &opt, &be) != SC_OK) sc_test_skip("no CPU backend");
    SC_RUN(test_resnet18_cifar_stem);
    SC_RUN(test_resnet50_imagenet_stem);
    SC_RUN(test_heads_without_bn);
    SC_RUN(test_torchvision_names);
    sc_backend_destroy(be);
    return sc_test_summary();
}
