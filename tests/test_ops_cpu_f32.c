/*
 * test_ops_cpu_f32.c - the CPU reference ops in single precision:
 *  - every op in F32 agrees with the same op in F64 on the same inputs (within ~1e-5 of the
 *    output's largest magnitude), so the F64 finite-difference checks of test_ops_cpu.c speak
 *    for the F32 path the trainer runs;
 *  - F32 results are bit-identical for backends with 1, 2 and 3 threads, on shapes large
 *    enough that convolutions split into several blocks and chunks and batch norm into several
 *    reduction blocks.
 */
#include "ops_test_util.h"

/* One op run: its outputs, raw (for bitwise comparison) and widened to double. */
#define MAX_OUTS 10
typedef struct outs {
    int count;
    const char *name[MAX_OUTS];
    const void *raw[MAX_OUTS];
    size_t bytes[MAX_OUTS];
    double *f64[MAX_OUTS];
} outs;

/* Random input of n values in dtype dt, identical (up to rounding) for both dtypes. */
static void *input(sc_dtype dt, size_t n, uint64_t seed, double mean, double sd) {
    double *v = buf_randn(n, seed, mean, sd);
    return dt == SC_F64 ? (void *)v : (void *)buf_to_f32(v, n);
}

static void *output(sc_dtype dt, size_t n) {
    return dt == SC_F64 ? (void *)buf_nan(n) : (void *)buf_nan_f32(n);
}

static void record(outs *o, const char *name, const void *p, size_t n, sc_dtype dt) {
    int i = o->count++;
    o->name[i] = name;
    o->raw[i] = p;
    o->bytes[i] = n * sc_dtype_size(dt);
    o->f64[i] = dt == SC_F64 ? buf_copy(p, n) : buf_to_f64(p, n);
}

/* ---- runners: each builds its inputs from fixed seeds and runs a group of ops ---- */

typedef struct op_case {
    const char *what;
    void (*run)(sc_backend *be, sc_dtype dt, const int *a, outs *o);
    int a[9];
} op_case;

static void run_conv(sc_backend *be, sc_dtype dt, const int *a, outs *o) {
    sc_conv_desc d = sc_conv_desc_make(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
    size_t nx = (size_t)d.n * d.h * d.w * d.c, nw = (size_t)d.k * d.r * d.s * d.c;
    size_t ny = (size_t)d.n * d.oh * d.ow * d.k;
    sc_tensor x = sc_tensor_4d(input(dt, nx, 1, 0.0, 1.0), dt, d.n, d.h, d.w, d.c);
    sc_tensor w = sc_tensor_4d(input(dt, nw, 2, 0.0, 1.0 / sqrt((double)(d.r * d.s * d.c))), dt,
                               d.k, d.r, d.s, d.c);
    sc_tensor dy = sc_tensor_4d(input(dt, ny, 3, 0.0, 1.0), dt, d.n, d.oh, d.ow, d.k);
    sc_tensor y = sc_tensor_4d(output(dt, ny), dt, d.n, d.oh, d.ow, d.k);
    sc_tensor dx = sc_tensor_4d(output(dt, nx), dt, d.n, d.h, d.w, d.c);
    sc_tensor dw = sc_tensor_4d(output(dt, nw), dt, d.k, d.r, d.s, d.c);
    sc_tensor ws = conv_workspace(be, &d, dt);
    sc_op_conv2d_fwd(be, &d, &x, &w, &y, &ws);
    sc_op_conv2d_bwd_data(be, &d, &dy, &w, &dx, &ws);
    sc_op_conv2d_bwd_filter(be, &d, &x, &dy, &dw, &ws);
    record(o, "conv y", y.data, ny, dt);
    record(o, "conv dx", dx.data, nx, dt);
    record(o, "conv dw", dw.data, nw, dt);
}

/* a = {m, c, with_beta} */
static void run_bn(sc_backend *be, sc_dtype dt, const int *a, outs *o) {
    const int64_t m = a[0], c = a[1];
    const size_t n = (size_t)(m * c);
    /* per-channel offsets: x = 2 + N(0,1) */
    sc_tensor x = sc_tensor_2d(input(dt, n, 10, 2.0, 1.0), dt, m, c);
    sc_tensor dy = sc_tensor_2d(input(dt, n, 11, 0.0, 1.0), dt, m, c);
    sc_tensor gamma = sc_tensor_1d(input(dt, (size_t)c, 12, 1.0, 0.3), dt, c);
    sc_tensor beta = sc_tensor_1d(input(dt, (size_t)c, 13, 0.0, 0.3), dt, c);
    sc_tensor rm = sc_tensor_1d(input(dt, (size_t)c, 14, 0.0, 0.1), dt, c);
    sc_tensor rv = sc_tensor_1d(input(dt, (size_t)c, 15, 1.0, 0.1), dt, c);
    sc_tensor y = sc_tensor_2d(output(dt, n), dt, m, c), ye = sc_tensor_2d(output(dt, n), dt, m, c);
    sc_tensor mean = sc_tensor_1d(output(dt, (size_t)c), dt, c),
              invstd = sc_tensor_1d(output(dt, (size_t)c), dt, c);
    sc_tensor dx = sc_tensor_2d(output(dt, n), dt, m, c);
    sc_tensor dg = sc_tensor_1d(output(dt, (size_t)c), dt, c),
              db = sc_tensor_1d(output(dt, (size_t)c), dt, c);
    const sc_tensor *b = a[2] ? &beta : NULL;
    sc_op_bn_fwd_train(be, &x, &gamma, b, &y, &mean, &invstd, &rm, &rv, 0.1, 1e-5);
    sc_op_bn_bwd(be, &x, &dy, &gamma, &mean, &invstd, &dx, &dg, a[2] ? &db : NULL);
    sc_op_bn_fwd_eval(be, &x, &gamma, b, &rm, &rv, 1e-5, &ye);
    record(o, "bn y", y.data, n, dt);
    record(o, "bn save_mean", mean.data, (size_t)c, dt);
    record(o, "bn save_invstd", invstd.data, (size_t)c, dt);
    record(o, "bn running_mean", rm.data, (size_t)c, dt);
    record(o, "bn running_var", rv.data, (size_t)c, dt);
    record(o, "bn dx", dx.data, n, dt);
    record(o, "bn dgamma", dg.data, (size_t)c, dt);
    if (a[2]) record(o, "bn dbeta", db.data, (size_t)c, dt);
    record(o, "bn eval y", ye.data, n, dt);
}

/* a = {m, k, n} */
static void run_linear(sc_backend *be, sc_dtype dt, const int *a, outs *o) {
    const int64_t m = a[0], k = a[1], n = a[2];
    sc_tensor x = sc_tensor_2d(input(dt, (size_t)(m * k), 20, 0.0, 1.0), dt, m, k);
    sc_tensor w = sc_tensor_2d(input(dt, (size_t)(n * k), 21, 0.0, 0.1), dt, n, k);
    sc_tensor b = sc_tensor_1d(input(dt, (size_t)n, 22, 0.0, 1.0), dt, n);
    sc_tensor dy = sc_tensor_2d(input(dt, (size_t)(m * n), 23, 0.0, 1.0), dt, m, n);
    sc_tensor y = sc_tensor_2d(output(dt, (size_t)(m * n)), dt, m, n);
    sc_tensor dx = sc_tensor_2d(output(dt, (size_t)(m * k)), dt, m, k);
    sc_tensor dw = sc_tensor_2d(output(dt, (size_t)(n * k)), dt, n, k);
    sc_tensor db = sc_tensor_1d(output(dt, (size_t)n), dt, n);
    sc_op_linear_fwd(be, &x, &w, &b, &y);
    sc_op_linear_bwd(be, &x, &w, &dy, &dx, &dw, &db);
    record(o, "linear y", y.data, (size_t)(m * n), dt);
    record(o, "linear dx", dx.data, (size_t)(m * k), dt);
    record(o, "linear dw", dw.data, (size_t)(n * k), dt);
    record(o, "linear db", db.data, (size_t)n, dt);
}

/* a = {n, h, w, c}: max pool 3x3 / 2 pad 1 and global average pool */
static void run_pool(sc_backend *be, sc_dtype dt, const int *a, outs *o) {
    sc_pool_desc d = sc_pool_desc_make(a[0], a[1], a[2], a[3], 3, 2, 1);
    const size_t nx = (size_t)d.n * d.h * d.w * d.c, ny = (size_t)d.n * d.oh * d.ow * d.c;
    const size_t na = (size_t)d.n * d.c;
    /* distinct values 0.01 apart, so F32 rounding cannot create ties or reorder them */
    double *xv = buf_nan(nx);
    for (size_t i = 0; i < nx; i++) xv[i] = 0.01 * (double)((i * 7919) % nx) - 0.005 * (double)nx;
    sc_tensor x = sc_tensor_4d(dt == SC_F64 ? (void *)xv : (void *)buf_to_f32(xv, nx), dt, d.n, d.h,
                               d.w, d.c);
    sc_tensor dy = sc_tensor_4d(input(dt, ny, 30, 0.0, 1.0), dt, d.n, d.oh, d.ow, d.c);
    sc_tensor da = sc_tensor_2d(input(dt, na, 31, 0.0, 1.0), dt, d.n, d.c);
    sc_tensor y = sc_tensor_4d(output(dt, ny), dt, d.n, d.oh, d.ow, d.c);
    sc_tensor dx = sc_tensor_4d(output(dt, nx), dt, d.n, d.h, d.w, d.c);
    sc_tensor ya = sc_tensor_2d(output(dt, na), dt, d.n, d.c);
    sc_tensor dxa = sc_tensor_4d(output(dt, nx), dt, d.n, d.h, d.w, d.c);
    sc_op_maxpool_fwd(be, &d, &x, &y);
    sc_op_maxpool_bwd(be, &d, &x, &dy, &dx);
    sc_op_avgpool_fwd(be, &x, &ya);
    sc_op_avgpool_bwd(be, &da, &dxa);
    record(o, "maxpool y", y.data, ny, dt);
    record(o, "maxpool dx", dx.data, nx, dt);
    record(o, "avgpool y", ya.data, na, dt);
    record(o, "avgpool dx", dxa.data, nx, dt);
}

/* a = {m, d}: relu, add and L2 normalisation of an [m, d] tensor */
static void run_rowwise(sc_backend *be, sc_dtype dt, const int *a, outs *o) {
    const int64_t m = a[0], dim = a[1];
    const size_t n = (size_t)(m * dim);
    sc_tensor x = sc_tensor_2d(input(dt, n, 40, 0.0, 1.0), dt, m, dim);
    sc_tensor b = sc_tensor_2d(input(dt, n, 41, 0.0, 1.0), dt, m, dim);
    sc_tensor dy = sc_tensor_2d(input(dt, n, 42, 0.0, 1.0), dt, m, dim);
    sc_tensor y = sc_tensor_2d(output(dt, n), dt, m, dim),
              dx = sc_tensor_2d(output(dt, n), dt, m, dim);
    sc_tensor s = sc_tensor_2d(output(dt, n), dt, m, dim),
              z = sc_tensor_2d(output(dt, n), dt, m, dim);
    sc_tensor dz = sc_tensor_2d(output(dt, n), dt, m, dim),
              norm = sc_tensor_1d(output(dt, (size_t)m), dt, m);
    sc_op_relu_fwd(be, &x, &y);
    sc_op_relu_bwd(be, &y, &dy, &dx);
    sc_op_add(be, &x, &b, &s);
    sc_op_l2norm_fwd(be, &x, &z, &norm);
    sc_op_l2norm_bwd(be, &z, &norm, &dy, &dz);
    record(o, "relu y", y.data, n, dt);
    record(o, "relu dx", dx.data, n, dt);
    record(o, "add y", s.data, n, dt);
    record(o, "l2 y", z.data, n, dt);
    record(o, "l2 norm", norm.data, (size_t)m, dt);
    record(o, "l2 dx", dz.data, n, dt);
}

static const op_case cases[] = {
    /* convolutions: n h w c k r s stride pad */
    {"conv 3x3 odd", run_conv, {5, 9, 11, 5, 7, 3, 3, 1, 1}},
    {"conv 7x7/2 stem", run_conv, {4, 12, 12, 3, 8, 7, 7, 2, 3}},
    {"conv 1x1 pointwise", run_conv, {6, 8, 8, 16, 16, 1, 1, 1, 0}},
    {"conv 1x1/2 downsample", run_conv, {40, 14, 14, 16, 32, 1, 1, 2, 0}},
    {"conv r18/8 stem", run_conv, {40, 28, 28, 1, 8, 3, 3, 1, 1}},
    {"conv r18/8 layer1 (3 chunks)", run_conv, {80, 28, 28, 8, 8, 3, 3, 1, 1}},
    {"conv r18/8 layer2 3x3/2", run_conv, {64, 28, 28, 8, 16, 3, 3, 2, 1}},
    {"conv r18/8 layer4 (2 chunks)", run_conv, {200, 4, 4, 64, 64, 3, 3, 1, 1}},
    {"conv pointwise large", run_conv, {40, 14, 14, 16, 32, 1, 1, 1, 0}},
    /* batch norm: m c with_beta */
    {"bn 28x28x8", run_bn, {40 * 784, 8, 1}},
    {"bn 4x4x64 no beta", run_bn, {512 * 16, 64, 0}},
    {"bn head", run_bn, {512, 64, 1}},
    {"bn tiny", run_bn, {3, 5, 1}},
    /* linear: m k n */
    {"linear", run_linear, {700, 130, 150}},
    {"linear head", run_linear, {512, 64, 64}},
    {"linear small", run_linear, {3, 5, 2}},
    /* pools: n h w c */
    {"pool 14x14x16", run_pool, {64, 14, 14, 16}},
    {"pool odd", run_pool, {3, 7, 5, 3}},
    /* rowwise: m d */
    {"rowwise", run_rowwise, {600, 128}},
    {"rowwise small", run_rowwise, {3, 7}},
};

static sc_backend *g_be[3]; /* 1, 2 and 3 threads */

static void test_f32_agrees_with_f64(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outs o64 = {0}, o32 = {0};
        cases[i].run(g_be[1], SC_F64, cases[i].a, &o64);
        cases[i].run(g_be[1], SC_F32, cases[i].a, &o32);
        CHECK(o64.count == o32.count);
        for (int j = 0; j < o32.count; j++) {
            char what[128];
            snprintf(what, sizeof what, "%s: %s", cases[i].what, o32.name[j]);
            size_t n = o64.bytes[j] / sizeof(double);
            double scale = max_abs(o64.f64[j], n);
            sc_test_compare(what, o32.f64[j], o64.f64[j], (long)n, 1e-5 * scale, 1e-5);
        }
        bufs_release();
    }
}

static void test_f32_thread_count_independent(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outs o[3] = {{0}};
        for (int t = 0; t < 3; t++) cases[i].run(g_be[t], SC_F32, cases[i].a, &o[t]);
        for (int t = 1; t < 3; t++)
            for (int j = 0; j < o[0].count; j++)
                CHECKF(memcmp(o[0].raw[j], o[t].raw[j], o[0].bytes[j]) == 0,
                       "%s: %s differs with %d threads", cases[i].what, o[0].name[j], t + 1);
        bufs_release();
    }
}

int main(void) {
    for (int t = 0; t < 3; t++) g_be[t] = backend_with_threads(t + 1);
    SC_RUN(test_f32_agrees_with_f64);
    SC_RUN(test_f32_thread_count_independent);
    for (int t = 0; t < 3; t++) sc_backend_destroy(g_be[t]);
    return sc_test_summary();
}
