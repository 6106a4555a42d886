/*
 * test_gpu_ops.c - every CUDA op against the CPU reference (the specification) on fresh
 * random inputs: the real ResNet-18 (CIFAR stem) and ResNet-50 (ImageNet stem) layer shapes
 * at small batches, and odd sizes (batch 1, 3x5 images, channel counts that are not a
 * multiple of 8 or even of 4, misaligned elementwise views). Every device output sits between
 * guard bytes and starts as NaN (gpu_test_util.h). Tolerances come from one table per op and
 * precision: "fp32" runs with TF32 off in deterministic mode, "tf32" with TF32 allowed.
 * The evaluation ops (softmax cross-entropy, the kNN vote) run on inputs chosen so that both
 * backends see the same maxima and neighbours: kNN inputs lie on a 2^-b grid, which makes every
 * similarity exact in fp32 whatever the GEMM's summation order, so ties (many, on a coarse
 * grid) are decided by the bank index alone.
 * Also checked: bitwise repeatability in deterministic mode, the convolution workspace budget
 * and smaller-batch planning, autotuning, and that a non-F32 tensor aborts clearly.
 * Without a GPU: exit 77 (skipped).
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu_test_util.h"
#include "simclr/params.h"

/* ---- the tolerance table: |gpu - cpu| <= tol * max|cpu| elementwise; 0 means bitwise ---- */

typedef struct tol_row {
    const char *op;
    double fp32, tf32;
} tol_row;

static const tol_row tolerances[] = {
    /* convolutions: fp32 engines may be Winograd or FFT, whose rounding differs from a GEMM's;
     * TF32 rounds both operands to 10 mantissa bits */
    {"conv", 1e-4, 5e-3},
    /* batch norm: sums in double on both sides, same per-channel formulas */
    {"bn", 2e-6, 2e-6},
    {"relu", 0, 0},
    {"add", 0, 0},
    /* max pooling: same window order, gather in the CPU's scatter order */
    {"maxpool", 0, 0},
    /* average pooling: same double sums in the same order */
    {"avgpool", 0, 0},
    {"linear", 2e-5, 5e-3},
    {"l2norm", 1e-6, 1e-6},
    {"ntxent", 2e-5, 5e-3},
    /* optimizer: same double arithmetic; only the norms' summation order differs */
    {"optim", 1e-6, 1e-6},
    /* softmax cross-entropy: the same double formulas per row; only the order of the row
     * sums and of the mean differs (accuracy is compared exactly) */
    {"xent", 1e-6, 1e-6},
    /* kNN vote: exact similarities (grid inputs), the same neighbours, votes exp(s / t) in
     * double; only the order of each class's sum differs (the tests run with TF32 off) */
    {"knn", 1e-6, 1e-6},
};

static double tol(const char *op, int tf32) {
    for (size_t i = 0; i < sizeof tolerances / sizeof tolerances[0]; i++)
        if (!strcmp(tolerances[i].op, op)) return tf32 ? tolerances[i].tf32 : tolerances[i].fp32;
    printf("FAIL: no tolerance for %s\n", op);
    exit(1);
}

static sc_backend *cpu, *gpu32, *gpu_tf32;

static sc_backend *gpu_for(int tf32) { return tf32 ? gpu_tf32 : gpu32; }

/* ---- convolutions ------------------------------------------------------------------------------ */

typedef struct conv_shape {
    const char *what;
    int n, h, w, c, k, r, stride, pad;
} conv_shape;

static const conv_shape conv_shapes[] = {
    /* ResNet-18, CIFAR stem, 32x32 */
    {"r18c stem", 2, 32, 32, 3, 64, 3, 1, 1},
    {"r18c layer1", 2, 32, 32, 64, 64, 3, 1, 1},
    {"r18c layer2.0.conv1", 2, 32, 32, 64, 128, 3, 2, 1},
    {"r18c layer2.0.downsample", 2, 32, 32, 64, 128, 1, 2, 0},
    {"r18c layer4", 2, 4, 4, 512, 512, 3, 1, 1},
    /* ResNet-50, ImageNet stem, 224x224 */
    {"r50 stem", 1, 224, 224, 3, 64, 7, 2, 3},
    {"r50 layer1.0.conv1", 2, 56, 56, 64, 64, 1, 1, 0},
    {"r50 layer1.0.conv2", 2, 56, 56, 64, 64, 3, 1, 1},
    {"r50 layer1.0.conv3", 2, 56, 56, 64, 256, 1, 1, 0},
    {"r50 layer2.0.conv2", 2, 56, 56, 128, 128, 3, 2, 1},
    {"r50 layer3.0.downsample", 2, 28, 28, 512, 1024, 1, 2, 0},
    {"r50 layer4.1.conv2", 2, 7, 7, 512, 512, 3, 1, 1},
    /* odd sizes */
    {"odd 3x5 c5 k7", 1, 3, 5, 5, 7, 3, 1, 1},
    {"odd 3x5 stride 2 no pad", 1, 3, 5, 3, 6, 3, 2, 0},
    {"odd 1x1 c13 k9", 3, 5, 3, 13, 9, 1, 1, 0},
    {"odd 7x7 on 5x3", 1, 5, 3, 2, 5, 7, 2, 3},
    {"odd width 1/8 stem", 1, 28, 28, 1, 8, 3, 1, 1},
};

/* A workspace of the size the backend asks for d (an F32 buffer of at least that many bytes). */
static sc_tensor workspace_for(sc_backend *be, const sc_conv_desc *d, float **host) {
    size_t bytes = sc_op_conv2d_workspace(be, d, SC_F32);
    int64_t elems = (int64_t)(bytes / sizeof(float)) + 1;
    if (be->kind == SC_DEVICE_CPU) {
        *host = host_nan((size_t)elems);
        return sc_tensor_1d(*host, SC_F32, elems);
    }
    *host = NULL;
    return gpu_tensor_1d(be, "workspace", elems, NULL);
}

/* CPU reference of the three directions: y, dx, dw (caller frees). */
static void conv_cpu(const sc_conv_desc *d, const float *x, const float *w, const float *dy, float **y, float **dx,
                     float **dw) {
    size_t nx = (size_t)d->n * d->h * d->w * d->c, nw = (size_t)d->k * d->r * d->s * d->c;
    size_t ny = (size_t)d->n * d->oh * d->ow * d->k;
    *y = host_nan(ny);
    *dx = host_nan(nx);
    *dw = host_nan(nw);
    sc_tensor tx = sc_tensor_4d((void *)x, SC_F32, d->n, d->h, d->w, d->c);
    sc_tensor tw = sc_tensor_4d((void *)w, SC_F32, d->k, d->r, d->s, d->c);
    sc_tensor tdy = sc_tensor_4d((void *)dy, SC_F32, d->n, d->oh, d->ow, d->k);
    sc_tensor ty = sc_tensor_4d(*y, SC_F32, d->n, d->oh, d->ow, d->k);
    sc_tensor tdx = sc_tensor_4d(*dx, SC_F32, d->n, d->h, d->w, d->c);
    sc_tensor tdw = sc_tensor_4d(*dw, SC_F32, d->k, d->r, d->s, d->c);
    float *wsh;
    sc_tensor ws = workspace_for(cpu, d, &wsh);
    sc_op_conv2d_fwd(cpu, d, &tx, &tw, &ty, &ws);
    sc_op_conv2d_bwd_data(cpu, d, &tdy, &tw, &tdx, &ws);
    sc_op_conv2d_bwd_filter(cpu, d, &tx, &tdy, &tdw, &ws);
    free(wsh);
}

/* The three directions on `gpu` against the CPU. */
static void conv_check(sc_backend *gpu, const char *label, const sc_conv_desc *d, const float *x, const float *w,
                       const float *dy, const float *y_ref, const float *dx_ref, const float *dw_ref, double t) {
    char what[160];
    int64_t xs[4] = {d->n, d->h, d->w, d->c}, ws_[4] = {d->k, d->r, d->s, d->c}, ys[4] = {d->n, d->oh, d->ow, d->k};
    sc_tensor gx = gpu_tensor(gpu, "x", 4, xs, x), gw = gpu_tensor(gpu, "w", 4, ws_, w);
    sc_tensor gdy = gpu_tensor(gpu, "dy", 4, ys, dy);
    sc_tensor gy = gpu_tensor(gpu, "y", 4, ys, NULL), gdx = gpu_tensor(gpu, "dx", 4, xs, NULL);
    sc_tensor gdw = gpu_tensor(gpu, "dw", 4, ws_, NULL);
    float *unused;
    sc_tensor ws = workspace_for(gpu, d, &unused);
    sc_op_conv2d_fwd(gpu, d, &gx, &gw, &gy, &ws);
    sc_op_conv2d_bwd_data(gpu, d, &gdy, &gw, &gdx, &ws);
    sc_op_conv2d_bwd_filter(gpu, d, &gx, &gdy, &gdw, &ws);
    snprintf(what, sizeof what, "%s: y", label);
    compare_gpu(what, gpu, &gy, y_ref, t);
    snprintf(what, sizeof what, "%s: dx", label);
    compare_gpu(what, gpu, &gdx, dx_ref, t);
    snprintf(what, sizeof what, "%s: dw", label);
    compare_gpu(what, gpu, &gdw, dw_ref, t);
    gpu_bufs_release();
}

static void test_conv(void) {
    for (size_t i = 0; i < sizeof conv_shapes / sizeof conv_shapes[0]; i++) {
        const conv_shape *s = &conv_shapes[i];
        sc_conv_desc d = sc_conv_desc_make(s->n, s->h, s->w, s->c, s->k, s->r, s->r, s->stride, s->pad);
        size_t nx = (size_t)d.n * d.h * d.w * d.c, nw = (size_t)d.k * d.r * d.s * d.c;
        size_t ny = (size_t)d.n * d.oh * d.ow * d.k;
        float *x = host_randn(nx, 100 + i, 0.0, 1.0), *w = host_randn(nw, 200 + i, 0.0, 1.0 / sqrt(d.r * d.s * d.c));
        float *dy = host_randn(ny, 300 + i, 0.0, 1.0);
        float *y, *dx, *dw;
        conv_cpu(&d, x, w, dy, &y, &dx, &dw);
        for (int tf32 = 0; tf32 < 2; tf32++) {
            char label[128];
            snprintf(label, sizeof label, "conv %s (%s)", s->what, tf32 ? "tf32" : "fp32");
            conv_check(gpu_for(tf32), label, &d, x, w, dy, y, dx, dw, tol("conv", tf32));
        }
        free(x), free(w), free(dy), free(y), free(dx), free(dw);
    }
}

/* A 1-byte budget leaves only engines without workspace; a smaller batch of a planned shape
 * needs no more workspace than the planned batch; autotuning picks a correct engine. */
static void test_conv_planning(void) {
    sc_backend_options o = {.workspace_limit = 1};
    sc_backend *tight, *tuned;
    CHECK(sc_backend_create("cuda", &o, &tight) == SC_OK);
    sc_backend_options ot = {.autotune = 1, .allow_tf32 = 1};
    CHECK(sc_backend_create("cuda", &ot, &tuned) == SC_OK);
    const conv_shape s = {"r50 layer1.0.conv2", 4, 56, 56, 64, 64, 3, 1, 1};
    sc_conv_desc d4 = sc_conv_desc_make(4, s.h, s.w, s.c, s.k, s.r, s.r, s.stride, s.pad);
    sc_conv_desc d3 = sc_conv_desc_make(3, s.h, s.w, s.c, s.k, s.r, s.r, s.stride, s.pad);
    CHECKF(sc_op_conv2d_workspace(tight, &d4, SC_F32) <= 1, "budget of 1 byte exceeded");
    size_t ws4 = sc_op_conv2d_workspace(gpu32, &d4, SC_F32), ws3 = sc_op_conv2d_workspace(gpu32, &d3, SC_F32);
    CHECKF(ws3 <= ws4, "batch 3 needs %zu bytes of workspace, batch 4 planned %zu", ws3, ws4);
    size_t nx = (size_t)3 * s.h * s.w * s.c, nw = (size_t)s.k * s.r * s.r * s.c;
    size_t ny = (size_t)3 * d3.oh * d3.ow * s.k;
    float *x = host_randn(nx, 11, 0, 1), *w = host_randn(nw, 12, 0, 1.0 / 24), *dy = host_randn(ny, 13, 0, 1);
    float *y, *dx, *dw;
    conv_cpu(&d3, x, w, dy, &y, &dx, &dw);
    conv_check(tight, "conv without workspace", &d3, x, w, dy, y, dx, dw, tol("conv", 0));
    conv_check(tuned, "conv autotuned (first call tunes)", &d3, x, w, dy, y, dx, dw, tol("conv", 1));
    conv_check(tuned, "conv autotuned (tuned engine)", &d3, x, w, dy, y, dx, dw, tol("conv", 1));
    free(x), free(w), free(dy), free(y), free(dx), free(dw);
    sc_backend_destroy(tight);
    sc_backend_destroy(tuned);
}

/* ---- batch norm ------------------------------------------------------------------------------- */

typedef struct bn_shape {
    const char *what;
    int n, h, w, c;
} bn_shape;

static const bn_shape bn_shapes[] = {
    {"r18c layer1", 2, 32, 32, 64},  {"r50 layer1 out", 1, 56, 56, 256}, {"r50 layer4", 2, 7, 7, 2048},
    {"head hidden", 64, 1, 1, 2048}, {"odd 3x5 c7", 1, 3, 5, 7},        {"odd m2", 2, 1, 1, 6},
    {"odd c13", 3, 5, 3, 13},
};

/* One configuration: forward training (plain / + residual / + ReLU), inference and the
 * backward (plain or through the ReLU) against the CPU, which composes the same ops. */
static void bn_case(const bn_shape *s, int residual, int relu, int with_beta, uint64_t seed) {
    const int64_t m = (int64_t)s->n * s->h * s->w, c = s->c;
    const size_t n = (size_t)(m * c);
    int64_t shape[4] = {s->n, s->h, s->w, s->c};
    char what[160];
    snprintf(what, sizeof what, "bn %s%s%s%s", s->what, residual ? " +residual" : "", relu ? " +relu" : "",
             with_beta ? "" : " no-beta");
    float *x = host_randn(n, seed, 2.0, 1.0), *res = host_randn(n, seed + 1, 0.0, 1.0);
    float *gamma = host_randn((size_t)c, seed + 2, 1.0, 0.3), *beta = host_randn((size_t)c, seed + 3, 0.0, 0.3);
    float *rm = host_randn((size_t)c, seed + 4, 0.0, 0.1), *rv = host_randn((size_t)c, seed + 5, 1.0, 0.1);
    float *dy = host_randn(n, seed + 6, 0.0, 1.0);
    for (int64_t i = 0; i < c; i++) rv[i] = fabsf(rv[i]);
    /* CPU */
    float *y = host_nan(n), *ye = host_nan(n), *mean = host_nan((size_t)c), *inv = host_nan((size_t)c);
    float *rm_c = host_copy(rm, (size_t)c), *rv_c = host_copy(rv, (size_t)c), *dyc = host_copy(dy, n);
    float *dx = host_nan(n), *dg = host_nan((size_t)c), *db = host_nan((size_t)c);
    sc_tensor tx = sc_tensor_make(x, SC_F32, 4, shape), tres = sc_tensor_make(res, SC_F32, 4, shape);
    sc_tensor ty = sc_tensor_make(y, SC_F32, 4, shape), tye = sc_tensor_make(ye, SC_F32, 4, shape);
    sc_tensor tg = sc_tensor_1d(gamma, SC_F32, c), tb = sc_tensor_1d(beta, SC_F32, c);
    sc_tensor tm = sc_tensor_1d(mean, SC_F32, c), ti = sc_tensor_1d(inv, SC_F32, c);
    sc_tensor trm = sc_tensor_1d(rm_c, SC_F32, c), trv = sc_tensor_1d(rv_c, SC_F32, c);
    sc_tensor tdy = sc_tensor_make(dyc, SC_F32, 4, shape), tdx = sc_tensor_make(dx, SC_F32, 4, shape);
    sc_tensor tdg = sc_tensor_1d(dg, SC_F32, c), tdb = sc_tensor_1d(db, SC_F32, c);
    const sc_tensor *pb = with_beta ? &tb : NULL, *pr = residual ? &tres : NULL;
    sc_op_bn_act_fwd_train(cpu, &tx, &tg, pb, pr, relu, &ty, &tm, &ti, &trm, &trv, 0.1, 1e-5);
    sc_op_bn_act_fwd_eval(cpu, &tx, &tg, pb, pr, relu, &trm, &trv, 1e-5, &tye);
    if (!residual) {
        if (relu)
            sc_op_bn_relu_bwd(cpu, &tx, &ty, &tdy, &tg, &tm, &ti, &tdx, &tdg, with_beta ? &tdb : NULL);
        else
            sc_op_bn_bwd(cpu, &tx, &tdy, &tg, &tm, &ti, &tdx, &tdg, with_beta ? &tdb : NULL);
    }
    /* GPU, from the same inputs (the backward also from the CPU's forward results) */
    const double t = tol("bn", 0);
    sc_tensor gx = gpu_tensor(gpu32, "x", 4, shape, x), gres = gpu_tensor(gpu32, "residual", 4, shape, res);
    sc_tensor gy = gpu_tensor(gpu32, "y", 4, shape, NULL), gye = gpu_tensor(gpu32, "y eval", 4, shape, NULL);
    sc_tensor gg = gpu_tensor_1d(gpu32, "gamma", c, gamma), gb = gpu_tensor_1d(gpu32, "beta", c, beta);
    sc_tensor gm = gpu_tensor_1d(gpu32, "save_mean", c, NULL), gi = gpu_tensor_1d(gpu32, "save_invstd", c, NULL);
    sc_tensor grm = gpu_tensor_1d(gpu32, "running_mean", c, rm), grv = gpu_tensor_1d(gpu32, "running_var", c, rv);
    sc_op_bn_act_fwd_train(gpu32, &gx, &gg, with_beta ? &gb : NULL, residual ? &gres : NULL, relu, &gy, &gm, &gi,
                           &grm, &grv, 0.1, 1e-5);
    /* inference from the CPU's updated running statistics, so that only the op differs */
    sc_tensor grm2 = gpu_tensor_1d(gpu32, "running_mean (updated)", c, rm_c);
    sc_tensor grv2 = gpu_tensor_1d(gpu32, "running_var (updated)", c, rv_c);
    sc_op_bn_act_fwd_eval(gpu32, &gx, &gg, with_beta ? &gb : NULL, residual ? &gres : NULL, relu, &grm2, &grv2, 1e-5,
                          &gye);
    char lab[200];
#define CMP(name, tensor, ref)                                                                 \
    do {                                                                                       \
        snprintf(lab, sizeof lab, "%s: %s", what, name);                                       \
        compare_gpu(lab, gpu32, tensor, ref, t);                                               \
    } while (0)
    CMP("y", &gy, y);
    CMP("save_mean", &gm, mean);
    CMP("save_invstd", &gi, inv);
    CMP("running_mean", &grm, rm_c);
    CMP("running_var", &grv, rv_c);
    CMP("y (eval)", &gye, ye);
    if (!residual) {
        sc_tensor gyr = gpu_tensor(gpu32, "y (relu output)", 4, shape, y);
        sc_tensor gdy = gpu_tensor(gpu32, "dy", 4, shape, dy), gdx = gpu_tensor(gpu32, "dx", 4, shape, NULL);
        sc_tensor gm2 = gpu_tensor_1d(gpu32, "mean (cpu)", c, mean), gi2 = gpu_tensor_1d(gpu32, "invstd (cpu)", c, inv);
        sc_tensor gdg = gpu_tensor_1d(gpu32, "dgamma", c, NULL), gdb = gpu_tensor_1d(gpu32, "dbeta", c, NULL);
        if (relu)
            sc_op_bn_relu_bwd(gpu32, &gx, &gyr, &gdy, &gg, &gm2, &gi2, &gdx, &gdg, with_beta ? &gdb : NULL);
        else
            sc_op_bn_bwd(gpu32, &gx, &gdy, &gg, &gm2, &gi2, &gdx, &gdg, with_beta ? &gdb : NULL);
        CMP("dx", &gdx, dx);
        CMP("dgamma", &gdg, dg);
        if (with_beta) CMP("dbeta", &gdb, db);
    }
#undef CMP
    gpu_bufs_release();
    free(x), free(res), free(gamma), free(beta), free(rm), free(rv), free(dy), free(y), free(ye), free(mean);
    free(inv), free(rm_c), free(rv_c), free(dyc), free(dx), free(dg), free(db);
}

static void test_bn(void) {
    for (size_t i = 0; i < sizeof bn_shapes / sizeof bn_shapes[0]; i++) {
        const bn_shape *s = &bn_shapes[i];
        uint64_t seed = 1000 + 10 * i;
        bn_case(s, 0, 0, 1, seed);
        bn_case(s, 0, 1, 1, seed);
        bn_case(s, 1, 1, 1, seed);
        bn_case(s, 0, 0, 0, seed); /* the head's last BN has no beta */
    }
}

/* ---- elementwise ------------------------------------------------------------------------------ */

/* relu forward (also in place), backward, add; offset 1 makes the views misaligned for
 * 16-byte vectors (the scalar path) */
static void elementwise_case(int64_t n, int offset, uint64_t seed) {
    float *a = host_randn((size_t)(n + offset), seed, 0.0, 1.0), *b = host_randn((size_t)(n + offset), seed + 1, 0, 1);
    float *g = host_randn((size_t)(n + offset), seed + 2, 0.0, 1.0);
    a[offset] = NAN; /* ReLU keeps NaN */
    float *relu = host_nan((size_t)n), *drelu = host_nan((size_t)n), *sum = host_nan((size_t)n);
    sc_tensor ta = sc_tensor_1d(a + offset, SC_F32, n), tb = sc_tensor_1d(b + offset, SC_F32, n);
    sc_tensor tg = sc_tensor_1d(g + offset, SC_F32, n), tr = sc_tensor_1d(relu, SC_F32, n);
    sc_tensor tdr = sc_tensor_1d(drelu, SC_F32, n), ts = sc_tensor_1d(sum, SC_F32, n);
    sc_op_relu_fwd(cpu, &ta, &tr);
    sc_op_relu_bwd(cpu, &tr, &tg, &tdr);
    sc_op_add(cpu, &ta, &tb, &ts);

    int64_t full = n + offset;
    sc_tensor ga = gpu_tensor_1d(gpu32, "a", full, a), gb = gpu_tensor_1d(gpu32, "b", full, b);
    sc_tensor gg = gpu_tensor_1d(gpu32, "g", full, g), gr = gpu_tensor_1d(gpu32, "relu", full, NULL);
    sc_tensor gdr = gpu_tensor_1d(gpu32, "drelu", full, NULL), gs = gpu_tensor_1d(gpu32, "sum", full, NULL);
    sc_tensor gin = gpu_tensor_1d(gpu32, "in place", full, a);
    sc_tensor va = sc_tensor_slice0(&ga, offset, n), vb = sc_tensor_slice0(&gb, offset, n);
    sc_tensor vg = sc_tensor_slice0(&gg, offset, n), vr = sc_tensor_slice0(&gr, offset, n);
    sc_tensor vdr = sc_tensor_slice0(&gdr, offset, n), vs = sc_tensor_slice0(&gs, offset, n);
    sc_tensor vin = sc_tensor_slice0(&gin, offset, n);
    sc_op_relu_fwd(gpu32, &va, &vr);
    sc_op_relu_fwd(gpu32, &vin, &vin);
    sc_op_relu_bwd(gpu32, &vr, &vg, &vdr);
    sc_op_add(gpu32, &va, &vb, &vs);
    char what[96];
    snprintf(what, sizeof what, "relu n=%lld offset %d", (long long)n, offset);
    compare_gpu(what, gpu32, &vr, relu, tol("relu", 0));
    compare_gpu("relu in place", gpu32, &vin, relu, tol("relu", 0));
    snprintf(what, sizeof what, "relu_bwd n=%lld offset %d", (long long)n, offset);
    compare_gpu(what, gpu32, &vdr, drelu, tol("relu", 0));
    snprintf(what, sizeof what, "add n=%lld offset %d", (long long)n, offset);
    compare_gpu(what, gpu32, &vs, sum, tol("add", 0));
    gpu_bufs_release();
    free(a), free(b), free(g), free(relu), free(drelu), free(sum);
}

static void test_elementwise(void) {
    static const int64_t sizes[] = {1, 7, 4096, 2 * 32 * 32 * 64 + 3};
    for (int i = 0; i < 4; i++)
        for (int offset = 0; offset < 2; offset++) elementwise_case(sizes[i], offset, 2000 + 10 * i + offset);
}

/* ---- pooling ----------------------------------------------------------------------------------- */

static void maxpool_case(int n, int h, int w, int c, int window, int stride, int pad, uint64_t seed) {
    sc_pool_desc d = sc_pool_desc_make(n, h, w, c, window, stride, pad);
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * d.oh * d.ow * c;
    float *x = host_randn(nx, seed, 0.0, 1.0), *dy = host_randn(ny, seed + 1, 0.0, 1.0);
    for (size_t i = 0; i < nx; i++) x[i] = roundf(x[i] * 2.0f) / 2.0f; /* ties: first-max routing */
    x[nx / 3] = NAN;                                                    /* a NaN wins its windows */
    float *y = host_nan(ny), *dx = host_nan(nx);
    sc_tensor tx = sc_tensor_4d(x, SC_F32, n, h, w, c), ty = sc_tensor_4d(y, SC_F32, n, d.oh, d.ow, c);
    sc_tensor tdy = sc_tensor_4d(dy, SC_F32, n, d.oh, d.ow, c), tdx = sc_tensor_4d(dx, SC_F32, n, h, w, c);
    sc_op_maxpool_fwd(cpu, &d, &tx, &ty);
    sc_op_maxpool_bwd(cpu, &d, &tx, &tdy, &tdx);
    int64_t xs[4] = {n, h, w, c}, ys[4] = {n, d.oh, d.ow, c};
    sc_tensor gx = gpu_tensor(gpu32, "x", 4, xs, x), gy = gpu_tensor(gpu32, "y", 4, ys, NULL);
    sc_tensor gdy = gpu_tensor(gpu32, "dy", 4, ys, dy), gdx = gpu_tensor(gpu32, "dx", 4, xs, NULL);
    sc_op_maxpool_fwd(gpu32, &d, &gx, &gy);
    sc_op_maxpool_bwd(gpu32, &d, &gx, &gdy, &gdx);
    char what[96];
    snprintf(what, sizeof what, "maxpool %dx%dx%d w%d s%d p%d: y", h, w, c, window, stride, pad);
    compare_gpu(what, gpu32, &gy, y, tol("maxpool", 0));
    snprintf(what, sizeof what, "maxpool %dx%dx%d w%d s%d p%d: dx", h, w, c, window, stride, pad);
    compare_gpu(what, gpu32, &gdx, dx, tol("maxpool", 0));
    gpu_bufs_release();
    free(x), free(dy), free(y), free(dx);
}

static void avgpool_case(int n, int h, int w, int c, uint64_t seed) {
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * c;
    float *x = host_randn(nx, seed, 0.5, 1.0), *dy = host_randn(ny, seed + 1, 0.0, 1.0);
    float *y = host_nan(ny), *dx = host_nan(nx);
    sc_tensor tx = sc_tensor_4d(x, SC_F32, n, h, w, c), ty = sc_tensor_2d(y, SC_F32, n, c);
    sc_tensor tdy = sc_tensor_2d(dy, SC_F32, n, c), tdx = sc_tensor_4d(dx, SC_F32, n, h, w, c);
    sc_op_avgpool_fwd(cpu, &tx, &ty);
    sc_op_avgpool_bwd(cpu, &tdy, &tdx);
    int64_t xs[4] = {n, h, w, c}, ys[2] = {n, c};
    sc_tensor gx = gpu_tensor(gpu32, "x", 4, xs, x), gy = gpu_tensor(gpu32, "y", 2, ys, NULL);
    sc_tensor gdy = gpu_tensor(gpu32, "dy", 2, ys, dy), gdx = gpu_tensor(gpu32, "dx", 4, xs, NULL);
    sc_op_avgpool_fwd(gpu32, &gx, &gy);
    sc_op_avgpool_bwd(gpu32, &gdy, &gdx);
    char what[96];
    snprintf(what, sizeof what, "avgpool %dx%dx%dx%d: y", n, h, w, c);
    compare_gpu(what, gpu32, &gy, y, tol("avgpool", 0));
    snprintf(what, sizeof what, "avgpool %dx%dx%dx%d: dx", n, h, w, c);
    compare_gpu(what, gpu32, &gdx, dx, tol("avgpool", 0));
    gpu_bufs_release();
    free(x), free(dy), free(y), free(dx);
}

static void test_pooling(void) {
    maxpool_case(2, 112, 112, 64, 3, 2, 1, 3000); /* the ResNet-50 stem */
    maxpool_case(1, 3, 5, 3, 3, 2, 1, 3010);
    maxpool_case(1, 5, 3, 5, 2, 1, 0, 3020);
    maxpool_case(3, 7, 7, 1, 3, 3, 2, 3030);
    avgpool_case(2, 4, 4, 512, 3100); /* ResNet-18, CIFAR */
    avgpool_case(2, 7, 7, 2048, 3110); /* ResNet-50 */
    avgpool_case(3, 3, 5, 7, 3120);
    avgpool_case(1, 1, 1, 9, 3130);
}

/* ---- linear ------------------------------------------------------------------------------------- */

static void linear_case(int m, int k, int n, int bias, int want_dx, int tf32, uint64_t seed) {
    sc_backend *gpu = gpu_for(tf32);
    float *x = host_randn((size_t)m * k, seed, 0, 1), *w = host_randn((size_t)n * k, seed + 1, 0, 1.0 / sqrt(k));
    float *b = host_randn((size_t)n, seed + 2, 0, 1), *dy = host_randn((size_t)m * n, seed + 3, 0, 1);
    float *y = host_nan((size_t)m * n), *dx = host_nan((size_t)m * k), *dw = host_nan((size_t)n * k);
    float *db = host_nan((size_t)n);
    sc_tensor tx = sc_tensor_2d(x, SC_F32, m, k), tw = sc_tensor_2d(w, SC_F32, n, k), tb = sc_tensor_1d(b, SC_F32, n);
    sc_tensor tdy = sc_tensor_2d(dy, SC_F32, m, n), ty = sc_tensor_2d(y, SC_F32, m, n);
    sc_tensor tdx = sc_tensor_2d(dx, SC_F32, m, k), tdw = sc_tensor_2d(dw, SC_F32, n, k);
    sc_tensor tdb = sc_tensor_1d(db, SC_F32, n);
    sc_op_linear_fwd(cpu, &tx, &tw, bias ? &tb : NULL, &ty);
    sc_op_linear_bwd(cpu, &tx, &tw, &tdy, want_dx ? &tdx : NULL, &tdw, bias ? &tdb : NULL);
    int64_t xs[2] = {m, k}, ws_[2] = {n, k}, ys[2] = {m, n};
    sc_tensor gx = gpu_tensor(gpu, "x", 2, xs, x), gw = gpu_tensor(gpu, "w", 2, ws_, w);
    sc_tensor gb = gpu_tensor_1d(gpu, "b", n, b), gdy = gpu_tensor(gpu, "dy", 2, ys, dy);
    sc_tensor gy = gpu_tensor(gpu, "y", 2, ys, NULL), gdx = gpu_tensor(gpu, "dx", 2, xs, NULL);
    sc_tensor gdw = gpu_tensor(gpu, "dw", 2, ws_, NULL), gdb = gpu_tensor_1d(gpu, "db", n, NULL);
    sc_op_linear_fwd(gpu, &gx, &gw, bias ? &gb : NULL, &gy);
    sc_op_linear_bwd(gpu, &gx, &gw, &gdy, want_dx ? &gdx : NULL, &gdw, bias ? &gdb : NULL);
    const double t = tol("linear", tf32);
    char what[128];
    const char *prec = tf32 ? "tf32" : "fp32";
    snprintf(what, sizeof what, "linear %dx%d -> %d%s (%s): y", m, k, n, bias ? " +bias" : "", prec);
    compare_gpu(what, gpu, &gy, y, t);
    if (want_dx) {
        snprintf(what, sizeof what, "linear %dx%d -> %d (%s): dx", m, k, n, prec);
        compare_gpu(what, gpu, &gdx, dx, t);
    } else {
        float *untouched = gpu_read(gpu, &gdx); /* dx == NULL: nothing written */
        int nan_all = 1;
        for (int64_t i = 0; i < (int64_t)m * k; i++) nan_all &= isnan(untouched[i]) != 0;
        CHECKF(nan_all, "linear_bwd with dx NULL wrote into the dx buffer");
        free(untouched);
    }
    snprintf(what, sizeof what, "linear %dx%d -> %d (%s): dw", m, k, n, prec);
    compare_gpu(what, gpu, &gdw, dw, t);
    if (bias) {
        snprintf(what, sizeof what, "linear %dx%d -> %d (%s): db", m, k, n, prec);
        compare_gpu(what, gpu, &gdb, db, tol("linear", 0)); /* a column sum, no TF32 */
    }
    gpu_bufs_release();
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
}

static void test_linear(void) {
    for (int tf32 = 0; tf32 < 2; tf32++) {
        linear_case(64, 512, 512, 0, 1, tf32, 4000);   /* ResNet-18 head, hidden */
        linear_case(64, 512, 128, 1, 1, tf32, 4010);   /* ResNet-18 head, out with bias */
        linear_case(32, 2048, 2048, 0, 1, tf32, 4020); /* ResNet-50 head, hidden */
        linear_case(32, 2048, 128, 1, 1, tf32, 4030);
        linear_case(3, 5, 7, 1, 1, tf32, 4040);
        linear_case(1, 13, 9, 0, 0, tf32, 4050);
    }
}

/* ---- L2 normalisation and NT-Xent -------------------------------------------------------------- */

static void l2norm_case(int m, int d, int zero_row, uint64_t seed) {
    float *x = host_randn((size_t)m * d, seed, 0, 2), *dy = host_randn((size_t)m * d, seed + 1, 0, 1);
    if (zero_row)
        for (int j = 0; j < d; j++) x[j] = 0.0f; /* the clamped branch */
    float *y = host_nan((size_t)m * d), *nrm = host_nan((size_t)m), *dx = host_nan((size_t)m * d);
    sc_tensor tx = sc_tensor_2d(x, SC_F32, m, d), ty = sc_tensor_2d(y, SC_F32, m, d), tn = sc_tensor_1d(nrm, SC_F32, m);
    sc_tensor tdy = sc_tensor_2d(dy, SC_F32, m, d), tdx = sc_tensor_2d(dx, SC_F32, m, d);
    sc_op_l2norm_fwd(cpu, &tx, &ty, &tn);
    sc_op_l2norm_bwd(cpu, &ty, &tn, &tdy, &tdx);
    int64_t s[2] = {m, d};
    sc_tensor gx = gpu_tensor(gpu32, "x", 2, s, x), gy = gpu_tensor(gpu32, "y", 2, s, NULL);
    sc_tensor gn = gpu_tensor_1d(gpu32, "norm", m, NULL), gdy = gpu_tensor(gpu32, "dy", 2, s, dy);
    sc_tensor gdx = gpu_tensor(gpu32, "dx", 2, s, NULL);
    sc_tensor gy2 = gpu_tensor(gpu32, "y (cpu)", 2, s, y), gn2 = gpu_tensor_1d(gpu32, "norm (cpu)", m, nrm);
    sc_op_l2norm_fwd(gpu32, &gx, &gy, &gn);
    sc_op_l2norm_bwd(gpu32, &gy2, &gn2, &gdy, &gdx);
    char what[96];
    const double t = tol("l2norm", 0);
    snprintf(what, sizeof what, "l2norm %dx%d: y", m, d);
    compare_gpu(what, gpu32, &gy, y, t);
    snprintf(what, sizeof what, "l2norm %dx%d: norm", m, d);
    compare_gpu(what, gpu32, &gn, nrm, t);
    snprintf(what, sizeof what, "l2norm %dx%d: dx", m, d);
    compare_gpu(what, gpu32, &gdx, dx, t);
    gpu_bufs_release();
    free(x), free(dy), free(y), free(nrm), free(dx);
}

static void ntxent_case(int rows, int d, double tau, int tf32, uint64_t seed) {
    sc_backend *gpu = gpu_for(tf32);
    float *z = host_randn((size_t)rows * d, seed, 0, 1);
    for (int i = 0; i < rows; i++) { /* L2-normalised rows, as the loss sees them */
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)z[i * d + j] * z[i * d + j];
        for (int j = 0; j < d; j++) z[i * d + j] = (float)(z[i * d + j] / sqrt(s));
    }
    float loss = NAN, acc = NAN, *dz = host_nan((size_t)rows * d);
    sc_tensor tz = sc_tensor_2d(z, SC_F32, rows, d), tl = sc_tensor_1d(&loss, SC_F32, 1);
    sc_tensor ta = sc_tensor_1d(&acc, SC_F32, 1), tdz = sc_tensor_2d(dz, SC_F32, rows, d);
    const sc_contrastive_desc desc = sc_contrastive_ntxent(tau);
    sc_op_contrastive(cpu, &desc, &tz, &tz, &tl, &ta, &tdz, &tdz, NULL);
    int64_t s[2] = {rows, d};
    sc_tensor gz = gpu_tensor(gpu, "z", 2, s, z), gdz = gpu_tensor(gpu, "dz", 2, s, NULL);
    sc_tensor gl = gpu_tensor_1d(gpu, "loss", 1, NULL), ga = gpu_tensor_1d(gpu, "accuracy", 1, NULL);
    sc_tensor gl2 = gpu_tensor_1d(gpu, "loss (no grad)", 1, NULL);
    size_t wsb = sc_op_contrastive_workspace(gpu, &desc, rows, rows, d, SC_F32);
    sc_tensor gws = gpu_tensor_1d(gpu, "loss workspace", (int64_t)(wsb / sizeof(float)) + 1, NULL);
    sc_op_contrastive(gpu, &desc, &gz, &gz, &gl, &ga, &gdz, &gdz, &gws);
    sc_op_contrastive(gpu, &desc, &gz, &gz, &gl2, NULL, NULL, NULL, &gws);
    const double t = tol("ntxent", tf32);
    char what[128];
    const char *prec = tf32 ? "tf32" : "fp32";
    snprintf(what, sizeof what, "ntxent %dx%d tau %g (%s): loss", rows, d, tau, prec);
    compare_gpu(what, gpu, &gl, &loss, t);
    snprintf(what, sizeof what, "ntxent %dx%d tau %g (%s): loss without gradient", rows, d, tau, prec);
    compare_gpu(what, gpu, &gl2, &loss, t);
    snprintf(what, sizeof what, "ntxent %dx%d tau %g (%s): dz", rows, d, tau, prec);
    compare_gpu(what, gpu, &gdz, dz, t);
    float gacc;
    sc_tensor_download(gpu, &gacc, &ga);
    /* accuracy counts strict wins; only a near-tie could flip one anchor */
    CHECKF(fabsf(gacc - acc) <= 1.0f / (float)rows + 1e-6f, "ntxent %dx%d (%s): accuracy %g, CPU %g", rows, d, prec,
           gacc, acc);
    gpu_bufs_release();
    free(z), free(dz);
}

static void test_loss(void) {
    l2norm_case(64, 128, 0, 5000);
    l2norm_case(6, 5, 1, 5010);
    l2norm_case(1, 2048, 0, 5020);
    for (int tf32 = 0; tf32 < 2; tf32++) {
        ntxent_case(128, 128, 0.1, tf32, 5100);
        ntxent_case(1024, 128, 0.5, tf32, 5110); /* batch 512, CIFAR */
        ntxent_case(2, 3, 0.2, tf32, 5120);
        ntxent_case(10, 7, 1.0, tf32, 5130);
    }
}

/* ---- evaluation: softmax cross-entropy and the kNN vote ----------------------------------------- */

/* A guarded I32 device tensor [n] holding labels. */
static sc_tensor gpu_labels(sc_backend *be, const char *what, int64_t n, const int32_t *host) {
    sc_tensor t = gpu_tensor_1d(be, what, n, (const float *)(const void *)host); /* same 4-byte elements */
    t.dtype = SC_I32;
    return t;
}

/* n labels in [0, classes) (freed by the caller). */
static int32_t *host_labels(int64_t n, int64_t classes, uint64_t seed) {
    int32_t *y = malloc((size_t)(n ? n : 1) * sizeof *y);
    if (!y) exit(1);
    sc_rng r = sc_rng_make(seed, 0, 0, 0, SC_RNG_TEST);
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)sc_rng_below(&r, (uint32_t)classes);
    return y;
}

/* logits [n, k] (scaled normals) against the CPU: loss, accuracy (exactly), dlogits, the
 * forward-only call, and a bitwise repeat. ties != 0: every row has its maximum twice (columns
 * a < b); even rows are labelled a (their first maximum: a hit), odd rows b (a miss). */
static void xent_case(int64_t n, int64_t k, int ties, uint64_t seed) {
    float *l = host_randn((size_t)(n * k), seed, 0.0, 3.0);
    int32_t *y = host_labels(n, k, seed + 1);
    if (ties) {
        for (int64_t i = 0; i < n; i++) {
            const int64_t a = i % (k - 1), b = a + 1 + (i / 2) % (k - 1 - a);
            l[i * k + a] = l[i * k + b] = 20.0f; /* above every normal draw */
            y[i] = (int32_t)(i % 2 ? b : a);
        }
    }
    float loss = NAN, acc = NAN, *dl = host_nan((size_t)(n * k));
    sc_tensor tl = sc_tensor_2d(l, SC_F32, n, k), ty = sc_tensor_1d(y, SC_I32, n);
    sc_tensor tloss = sc_tensor_1d(&loss, SC_F32, 1), tacc = sc_tensor_1d(&acc, SC_F32, 1);
    sc_tensor tdl = sc_tensor_2d(dl, SC_F32, n, k);
    sc_op_softmax_xent(cpu, &tl, &ty, &tloss, &tacc, &tdl);
    if (ties) {
        int64_t hits = (n + 1) / 2;
        CHECKF(acc == (float)((double)hits / (double)n), "xent ties: the CPU's accuracy %g, expected %lld/%lld", acc,
               (long long)hits, (long long)n);
    }
    int64_t s[2] = {n, k};
    sc_tensor gl = gpu_tensor(gpu32, "logits", 2, s, l), gy = gpu_labels(gpu32, "labels", n, y);
    sc_tensor gloss = gpu_tensor_1d(gpu32, "loss", 1, NULL), gacc = gpu_tensor_1d(gpu32, "accuracy", 1, NULL);
    sc_tensor gdl = gpu_tensor(gpu32, "dlogits", 2, s, NULL), gloss2 = gpu_tensor_1d(gpu32, "loss (forward)", 1, NULL);
    sc_tensor gdl2 = gpu_tensor(gpu32, "dlogits (repeat)", 2, s, NULL);
    sc_tensor gloss3 = gpu_tensor_1d(gpu32, "loss (repeat)", 1, NULL);
    sc_op_softmax_xent(gpu32, &gl, &gy, &gloss, &gacc, &gdl);
    sc_op_softmax_xent(gpu32, &gl, &gy, &gloss2, NULL, NULL);
    sc_op_softmax_xent(gpu32, &gl, &gy, &gloss3, NULL, &gdl2);
    const double t = tol("xent", 0);
    char what[128];
    snprintf(what, sizeof what, "xent n%lld k%lld%s: loss", (long long)n, (long long)k, ties ? " ties" : "");
    compare_gpu(what, gpu32, &gloss, &loss, t);
    snprintf(what, sizeof what, "xent n%lld k%lld%s: loss (forward only)", (long long)n, (long long)k, ties ? " ties" : "");
    compare_gpu(what, gpu32, &gloss2, &loss, t);
    snprintf(what, sizeof what, "xent n%lld k%lld%s: accuracy", (long long)n, (long long)k, ties ? " ties" : "");
    compare_gpu(what, gpu32, &gacc, &acc, 0.0);
    snprintf(what, sizeof what, "xent n%lld k%lld%s: dlogits", (long long)n, (long long)k, ties ? " ties" : "");
    compare_gpu(what, gpu32, &gdl, dl, t);
    float *first = gpu_read(gpu32, &gdl), *again = gpu_read(gpu32, &gdl2), *l1 = gpu_read(gpu32, &gloss),
          *l3 = gpu_read(gpu32, &gloss3);
    snprintf(what, sizeof what, "xent n%lld k%lld: repeat is bitwise equal", (long long)n, (long long)k);
    compare_f32(what, again, first, (size_t)(n * k), 0.0);
    compare_f32(what, l3, l1, 1, 0.0);
    free(first), free(again), free(l1), free(l3);
    gpu_bufs_release();
    free(l), free(y), free(dl);
}

/* A label outside [0, K) cannot be reported without a host synchronisation: the GPU makes
 * the loss and that row's gradient NaN (the CPU aborts). */
static void xent_bad_label(void) {
    float l[6] = {1, 2, 3, 4, 5, 6};
    int32_t y[2] = {0, 3};
    int64_t s[2] = {2, 3};
    sc_tensor gl = gpu_tensor(gpu32, "logits", 2, s, l), gy = gpu_labels(gpu32, "labels", 2, y);
    sc_tensor gloss = gpu_tensor_1d(gpu32, "loss", 1, NULL), gdl = gpu_tensor(gpu32, "dlogits", 2, s, NULL);
    sc_op_softmax_xent(gpu32, &gl, &gy, &gloss, NULL, &gdl);
    float *loss = gpu_read(gpu32, &gloss), *dl = gpu_read(gpu32, &gdl);
    CHECKF(isnan(loss[0]), "a bad label gave the finite loss %g", loss[0]);
    CHECKF(!isnan(dl[0]) && isnan(dl[3]), "bad label: dlogits row 0 %g (want finite), row 1 %g (want NaN)", dl[0],
           dl[3]);
    free(loss), free(dl);
    gpu_bufs_release();
}

/* rows [n, f] of normals, L2-normalised, then rounded to multiples of 1/grid (grid a power of
 * two): every dot product of two such rows is then exact in fp32. */
static float *grid_rows(int64_t n, int64_t f, double grid, uint64_t seed) {
    float *x = host_randn((size_t)(n * f), seed, 0.0, 1.0);
    for (int64_t i = 0; i < n; i++) {
        double ss = 0.0;
        for (int64_t j = 0; j < f; j++) ss += (double)x[i * f + j] * x[i * f + j];
        for (int64_t j = 0; j < f; j++) x[i * f + j] = (float)(round(x[i * f + j] / sqrt(ss) * grid) / grid);
    }
    return x;
}

/* queries [q, f] and bank [n, f] on a 1/grid grid, labels in [0, c): scores against the CPU and
 * a bitwise repeat. */
static void knn_case(int64_t q, int64_t n, int64_t f, int64_t c, int k, double grid, double temperature,
                     uint64_t seed) {
    float *qs = grid_rows(q, f, grid, seed), *bank = grid_rows(n, f, grid, seed + 1);
    int32_t *y = host_labels(n, c, seed + 2);
    float *want = host_nan((size_t)(q * c));
    sc_tensor tq = sc_tensor_2d(qs, SC_F32, q, f), tb = sc_tensor_2d(bank, SC_F32, n, f);
    sc_tensor ty = sc_tensor_1d(y, SC_I32, n), ts = sc_tensor_2d(want, SC_F32, q, c);
    sc_op_knn_scores(cpu, &tq, &tb, &ty, k, temperature, &ts);
    int64_t qsh[2] = {q, f}, bsh[2] = {n, f}, ssh[2] = {q, c};
    sc_tensor gq = gpu_tensor(gpu32, "queries", 2, qsh, qs), gb = gpu_tensor(gpu32, "bank", 2, bsh, bank);
    sc_tensor gy = gpu_labels(gpu32, "bank labels", n, y), gs = gpu_tensor(gpu32, "scores", 2, ssh, NULL);
    sc_tensor gs2 = gpu_tensor(gpu32, "scores (repeat)", 2, ssh, NULL);
    sc_op_knn_scores(gpu32, &gq, &gb, &gy, k, temperature, &gs);
    sc_op_knn_scores(gpu32, &gq, &gb, &gy, k, temperature, &gs2);
    char what[160];
    snprintf(what, sizeof what, "knn q%lld n%lld f%lld c%lld k%d grid 1/%g t %g", (long long)q, (long long)n,
             (long long)f, (long long)c, k, grid, temperature);
    compare_gpu(what, gpu32, &gs, want, tol("knn", 0));
    float *first = gpu_read(gpu32, &gs), *again = gpu_read(gpu32, &gs2);
    strncat(what, ": repeat is bitwise equal", sizeof what - strlen(what) - 1);
    compare_f32(what, again, first, (size_t)(q * c), 0.0);
    free(first), free(again);
    gpu_bufs_release();
    free(qs), free(bank), free(y), free(want);
}

/* A bank label outside [0, C) among a query's neighbours makes that query's scores NaN. */
static void knn_bad_label(void) {
    float qs[4] = {1, 0, 0, 1}, bank[6] = {1, 0, 0.6f, 0.8f, 0, 1};
    int32_t y[3] = {0, 1, 2}; /* 2 is outside [0, 2) */
    int64_t qsh[2] = {2, 2}, bsh[2] = {3, 2}, ssh[2] = {2, 2};
    sc_tensor gq = gpu_tensor(gpu32, "queries", 2, qsh, qs), gb = gpu_tensor(gpu32, "bank", 2, bsh, bank);
    sc_tensor gy = gpu_labels(gpu32, "bank labels", 3, y), gs = gpu_tensor(gpu32, "scores", 2, ssh, NULL);
    sc_op_knn_scores(gpu32, &gq, &gb, &gy, 2, 0.1, &gs); /* query 0: rows 0, 1; query 1: rows 2, 1 */
    float *s = gpu_read(gpu32, &gs);
    CHECKF(!isnan(s[0]) && !isnan(s[1]) && isnan(s[2]) && isnan(s[3]),
           "bad bank label: scores %g %g (want finite), %g %g (want NaN)", s[0], s[1], s[2], s[3]);
    free(s);
    gpu_bufs_release();
}

static void test_eval_ops(void) {
    xent_case(1, 5, 0, 8000);      /* N = 1 */
    xent_case(7, 1, 0, 8010);      /* K = 1: loss 0, gradient 0, every row a hit */
    xent_case(64, 10, 0, 8020);    /* a linear probe's batch */
    xent_case(1000, 1000, 0, 8030);
    xent_case(10, 6, 1, 8040);     /* labels at the first and at a later tied maximum */
    xent_bad_label();
    knn_case(37, 1000, 129, 10, 1, 1024, 0.07, 8100);   /* k = 1, odd F */
    knn_case(37, 1000, 129, 10, 200, 1024, 0.07, 8110); /* the monitor's k */
    knn_case(50, 1000, 16, 10, 1, 4, 0.5, 8120);        /* coarse grid: ties everywhere */
    knn_case(50, 1000, 16, 10, 200, 4, 0.5, 8130);
    knn_case(9, 1000, 33, 10, 1000, 1024, 0.1, 8140);   /* k = N */
    knn_case(3, 5, 3, 2, 3, 4, 0.1, 8150);              /* tiny */
    knn_case(5, 3000, 64, 7000, 500, 1024, 0.1, 8160);  /* votes beyond 48 KiB of shared memory */
    /* N = 270001: 248 queries per similarity block (256 MiB), so 300 queries take two blocks */
    knn_case(300, 270001, 20, 100, 200, 1024, 0.07, 8170);
    knn_bad_label();
}

/* ---- optimizer ---------------------------------------------------------------------------------- */

/* A table with every kind of row: a multi-chunk weight, a small matrix, a bias and BN
 * parameters (no WD, no LARS), a BN statistic (untouched) and an all-zero weight (trust 1). */
static void optim_table(sc_param_table *t) {
    sc_params_init_table(t);
    int64_t big[4] = {64, 3, 3, 40}, mat[2] = {5, 3}, vec[1] = {33}, bias[1] = {7}, zero[1] = {20};
    sc_params_add(t, "layer.weight", 4, big, SC_PARAM_CONV | SC_PARAM_ENCODER, SC_INIT_ZEROS, 0, 0);
    sc_params_add(t, "fc.weight", 2, mat, SC_PARAM_HEAD, SC_INIT_ZEROS, 0, 0);
    sc_params_add(t, "fc.bias", 1, bias, SC_PARAM_HEAD | SC_PARAM_BIAS | SC_PARAM_NO_WD | SC_PARAM_NO_LARS,
                  SC_INIT_ZEROS, 0, 0);
    sc_params_add(t, "bn.weight", 1, vec, SC_PARAM_BN | SC_PARAM_NO_WD | SC_PARAM_NO_LARS, SC_INIT_ZEROS, 0, 0);
    sc_params_add(t, "bn.running_mean", 1, vec, SC_PARAM_BN_STAT | SC_PARAM_NO_WD | SC_PARAM_NO_LARS, SC_INIT_ZEROS,
                  0, 0);
    sc_params_add(t, "zero.weight", 1, zero, SC_PARAM_ENCODER, SC_INIT_ZEROS, 0, 0);
}

static void optim_case(const sc_optim_hparams *hp, const char *name) {
    sc_param_table t;
    optim_table(&t);
    const size_t n = (size_t)t.total;
    float *p = host_randn(n, 6000, 0, 0.1), *g = host_randn(n, 6001, 0, 0.01), *v = host_randn(n, 6002, 0, 0.001);
    int zi = sc_params_find(&t, "zero.weight");
    for (int64_t j = 0; j < t.rows[zi].numel; j++) p[t.rows[zi].offset + j] = 0.0f;
    float *pc = host_copy(p, n), *vc = host_copy(v, n);
    /* the step record: the caller's learning rate 0.3 (use_schedule 0), step 0, nothing skipped */
    double sc[SC_OPTIM_NSCALARS] = {0};
    sc[SC_OPTIM_LR] = 0.3;
    sc_tensor tp = sc_tensor_1d(pc, SC_F32, t.total), tg = sc_tensor_1d(g, SC_F32, t.total);
    sc_tensor tv = sc_tensor_1d(vc, SC_F32, t.total), ts = sc_tensor_1d(sc, SC_F64, SC_OPTIM_NSCALARS);
    sc_tensor gp = gpu_tensor_1d(gpu32, "params", t.total, p), gg = gpu_tensor_1d(gpu32, "grads", t.total, g);
    sc_tensor gv = gpu_tensor_1d(gpu32, "state", t.total, v);
    sc_tensor gs = gpu_tensor_1d(gpu32, "step scalars", 2 * SC_OPTIM_NSCALARS, NULL);
    gs.dtype = SC_F64;
    gs.shape[0] = SC_OPTIM_NSCALARS;
    gpu32->ops->upload(gpu32, gs.data, sc, sizeof sc);
    for (int step = 0; step < 2; step++) {
        sc_op_optim_step(cpu, hp, &t, &tp, &tg, &tv, NULL, &ts);
        sc_op_optim_step(gpu32, hp, &t, &gp, &gg, &gv, NULL, &gs);
    }
    double got[SC_OPTIM_NSCALARS];
    sc_tensor_download(gpu32, got, &gs);
    CHECKF(fabs(got[SC_OPTIM_GRAD_NORM] - sc[SC_OPTIM_GRAD_NORM]) <= 1e-5 * sc[SC_OPTIM_GRAD_NORM],
           "%s: gradient norm %.9g, CPU %.9g", name, got[SC_OPTIM_GRAD_NORM], sc[SC_OPTIM_GRAD_NORM]);
    CHECKF(got[SC_OPTIM_STEP] == 2.0 && got[SC_OPTIM_SKIPPED] == 0.0, "%s: step record %g, skipped %g", name,
           got[SC_OPTIM_STEP], got[SC_OPTIM_SKIPPED]);
    char what[64];
    snprintf(what, sizeof what, "%s: params after 2 steps", name);
    compare_gpu(what, gpu32, &gp, pc, tol("optim", 0));
    snprintf(what, sizeof what, "%s: momentum after 2 steps", name);
    compare_gpu(what, gpu32, &gv, vc, tol("optim", 0));
    gpu_bufs_release();
    sc_params_free(&t);
    free(p), free(g), free(v), free(pc), free(vc);
}

static void test_optim(void) {
    sc_optim_hparams lars = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 1e-4, .trust_coef = 1e-3};
    sc_optim_hparams sgd = {.kind = SC_OPTIM_SGD, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = 0};
    sc_optim_hparams nesterov = sgd;
    nesterov.nesterov = 1;
    optim_case(&lars, "lars");
    optim_case(&sgd, "sgd");
    optim_case(&nesterov, "sgd nesterov");
}

/* ---- determinism -------------------------------------------------------------------------------- */

/* In deterministic mode the same inputs give the same bits: convolution (all directions),
 * batch norm forward and backward, NT-Xent. */
static void test_deterministic(void) {
    sc_conv_desc d = sc_conv_desc_make(8, 28, 28, 128, 128, 3, 3, 1, 1);
    size_t nx = (size_t)8 * 28 * 28 * 128, nw = (size_t)128 * 9 * 128;
    float *x = host_randn(nx, 7000, 0, 1), *w = host_randn(nw, 7001, 0, 0.03), *dy = host_randn(nx, 7002, 0, 1);
    int64_t xs[4] = {8, 28, 28, 128}, ws_[4] = {128, 3, 3, 128};
    sc_tensor gx = gpu_tensor(gpu32, "x", 4, xs, x), gw = gpu_tensor(gpu32, "w", 4, ws_, w);
    sc_tensor gdy = gpu_tensor(gpu32, "dy", 4, xs, dy);
    float *unused, *first[5] = {0};
    sc_tensor ws = workspace_for(gpu32, &d, &unused);
    float *gamma = host_randn(128, 7003, 1, 0.2), *ones = host_randn(128, 7004, 1, 0);
    sc_tensor gg = gpu_tensor_1d(gpu32, "gamma", 128, gamma), grm = gpu_tensor_1d(gpu32, "rm", 128, ones);
    sc_tensor grv = gpu_tensor_1d(gpu32, "rv", 128, ones);
    int64_t zs[2] = {256, 128};
    float *z = host_randn(256 * 128, 7005, 0, 0.1);
    sc_tensor gz = gpu_tensor(gpu32, "z", 2, zs, z);
    const sc_contrastive_desc nt = sc_contrastive_ntxent(0.1);
    size_t cwsb = sc_op_contrastive_workspace(gpu32, &nt, 256, 256, 128, SC_F32);
    sc_tensor cws = gpu_tensor_1d(gpu32, "loss workspace", (int64_t)(cwsb / sizeof(float)) + 1, NULL);
    for (int rep = 0; rep < 2; rep++) {
        sc_tensor out[5] = {gpu_tensor(gpu32, "y", 4, xs, NULL), gpu_tensor(gpu32, "dx", 4, xs, NULL),
                            gpu_tensor(gpu32, "dw", 4, ws_, NULL), gpu_tensor(gpu32, "bn dx", 4, xs, NULL),
                            gpu_tensor(gpu32, "dz", 2, zs, NULL)};
        sc_tensor bny = gpu_tensor(gpu32, "bn y", 4, xs, NULL), mean = gpu_tensor_1d(gpu32, "mean", 128, NULL);
        sc_tensor inv = gpu_tensor_1d(gpu32, "invstd", 128, NULL), dg = gpu_tensor_1d(gpu32, "dgamma", 128, NULL);
        sc_tensor loss = gpu_tensor_1d(gpu32, "loss", 1, NULL);
        sc_op_conv2d_fwd(gpu32, &d, &gx, &gw, &out[0], &ws);
        sc_op_conv2d_bwd_data(gpu32, &d, &gdy, &gw, &out[1], &ws);
        sc_op_conv2d_bwd_filter(gpu32, &d, &gx, &gdy, &out[2], &ws);
        sc_op_bn_act_fwd_train(gpu32, &out[0], &gg, NULL, NULL, 1, &bny, &mean, &inv, &grm, &grv, 0.1, 1e-5);
        sc_tensor bndy = gpu_tensor(gpu32, "bn dy", 4, xs, dy); /* consumed */
        sc_op_bn_relu_bwd(gpu32, &out[0], &bny, &bndy, &gg, &mean, &inv, &out[3], &dg, NULL);
        sc_op_contrastive(gpu32, &nt, &gz, &gz, &loss, NULL, &out[4], &out[4], &cws);
        for (int i = 0; i < 5; i++) {
            float *h = gpu_read(gpu32, &out[i]);
            if (rep == 0) {
                first[i] = h;
            } else {
                char what[64];
                snprintf(what, sizeof what, "deterministic repeat of output %d", i);
                compare_f32(what, h, first[i], (size_t)sc_tensor_numel(&out[i]), 0.0);
                free(h);
                free(first[i]);
            }
        }
    }
    gpu_bufs_release();
    free(x), free(w), free(dy), free(gamma), free(ones), free(z);
}

/* ---- dtypes --------------------------------------------------------------------------------------- */

/* A CUDA op given F64 tensors aborts (in a child process, before any CUDA call). */
static void test_rejects_f64(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        double dummy[4] = {0};
        sc_tensor a = sc_tensor_1d(dummy, SC_F64, 4);
        if (!freopen("/dev/null", "w", stderr)) _exit(2);
        sc_op_relu_fwd(gpu32, &a, &a);
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "an F64 tensor on the CUDA backend did not abort");
}

int main(void) {
    if (sc_cuda_device_count() == 0) sc_test_skip("no CUDA GPU visible");
    cpu = cpu_backend();
    gpu32 = gpu_backend(0, 1);
    gpu_tf32 = gpu_backend(1, 0);
    SC_RUN(test_conv);
    SC_RUN(test_conv_planning);
    SC_RUN(test_bn);
    SC_RUN(test_elementwise);
    SC_RUN(test_pooling);
    SC_RUN(test_linear);
    SC_RUN(test_loss);
    SC_RUN(test_eval_ops);
    SC_RUN(test_optim);
    SC_RUN(test_deterministic);
    SC_RUN(test_rejects_f64);
    sc_backend_destroy(gpu_tf32);
    sc_backend_destroy(gpu32);
    sc_backend_destroy(cpu);
    return sc_test_summary();
}
