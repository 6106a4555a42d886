/*
 * test_ops_cpu.c - the CPU reference ops in double precision: every backward pass against
 * central finite differences of loss = sum(R .* y) for a fixed random R, and every forward
 * pass against a naive implementation written here (direct 7-loop convolution, two-pass batch
 * statistics, first-maximum pooling, ...). test_ops_cpu_f32.c covers F32 and thread counts.
 */
#include "ops_test_util.h"

static sc_backend *g_be; /* 2 threads */

/* Gradients are checked to this relative error (of the largest finite-difference value). */
#define FD_RTOL 1e-7
/* Forward passes in F64 must match the naive loops to rounding. */
#define FWD_RTOL 1e-12

static void compare_rel(const char *what, const double *got, const double *want, size_t n,
                        double rtol) {
    sc_test_compare(what, got, want, (long)n, rtol * (max_abs(want, n) + 1e-300), rtol);
}

/* ------------------------------------------------------------------------------------ */
/* convolution                                                                          */

typedef struct conv_ctx {
    sc_conv_desc d;
    double *x, *w, *y, *r;
    sc_tensor ws;
} conv_ctx;

static sc_tensor conv_x(const sc_conv_desc *d, double *p) {
    return sc_tensor_4d(p, SC_F64, d->n, d->h, d->w, d->c);
}
static sc_tensor conv_w(const sc_conv_desc *d, double *p) {
    return sc_tensor_4d(p, SC_F64, d->k, d->r, d->s, d->c);
}
static sc_tensor conv_y(const sc_conv_desc *d, double *p) {
    return sc_tensor_4d(p, SC_F64, d->n, d->oh, d->ow, d->k);
}

static double conv_loss(void *p) {
    conv_ctx *c = p;
    sc_tensor x = conv_x(&c->d, c->x), w = conv_w(&c->d, c->w), y = conv_y(&c->d, c->y);
    sc_op_conv2d_fwd(g_be, &c->d, &x, &w, &y, &c->ws);
    return dot(c->r, c->y, (size_t)sc_tensor_numel(&y));
}

/* Forward, both backward passes against the naive loops, and (when fd) finite differences. */
static void conv_case(int n, int h, int w, int c, int k, int r, int s, int stride, int pad,
                      int fd) {
    char what[160];
    conv_ctx cc;
    cc.d = sc_conv_desc_make(n, h, w, c, k, r, s, stride, pad);
    const sc_conv_desc *d = &cc.d;
    size_t nx = (size_t)n * h * w * c, nw = (size_t)k * r * s * c,
           ny = (size_t)n * d->oh * d->ow * k;
    uint64_t seed = (uint64_t)(n * 1000003 + h * 10007 + w * 1009 + c * 101 + k * 11 + r * 7 +
                               stride * 3 + pad);
    cc.x = buf_randn(nx, seed, 0.0, 1.0);
    cc.w = buf_randn(nw, seed + 1, 0.0, 1.0 / sqrt((double)(r * s * c)));
    cc.r = buf_randn(ny, seed + 2, 0.0, 1.0);
    cc.y = buf_nan(ny);
    cc.ws = conv_workspace(g_be, d, SC_F64);

    conv_loss(&cc);
    double *ref = buf_nan(ny);
    naive_conv_fwd(d, cc.x, cc.w, ref);
    snprintf(what, sizeof what, "conv fwd n%d %dx%dx%d k%d %dx%d s%d p%d", n, h, w, c, k, r, s,
             stride, pad);
    compare_rel(what, cc.y, ref, ny, FWD_RTOL);

    double *dx = buf_nan(nx), *dw = buf_nan(nw), *ndx = buf_nan(nx), *ndw = buf_nan(nw);
    sc_tensor tr = conv_y(d, cc.r), tw = conv_w(d, cc.w), tx = conv_x(d, cc.x);
    sc_tensor tdx = conv_x(d, dx), tdw = conv_w(d, dw);
    sc_op_conv2d_bwd_data(g_be, d, &tr, &tw, &tdx, &cc.ws);
    sc_op_conv2d_bwd_filter(g_be, d, &tx, &tr, &tdw, &cc.ws);
    naive_conv_bwd(d, cc.x, cc.w, cc.r, ndx, ndw);
    snprintf(what, sizeof what, "conv dx n%d %dx%dx%d k%d %dx%d s%d p%d", n, h, w, c, k, r, s,
             stride, pad);
    compare_rel(what, dx, ndx, nx, FWD_RTOL);
    if (fd) fd_check(what, cc.x, nx, dx, conv_loss, &cc, FD_RTOL);
    snprintf(what, sizeof what, "conv dw n%d %dx%dx%d k%d %dx%d s%d p%d", n, h, w, c, k, r, s,
             stride, pad);
    compare_rel(what, dw, ndw, nw, FWD_RTOL);
    if (fd) fd_check(what, cc.w, nw, dw, conv_loss, &cc, FD_RTOL);
    bufs_release();
}

static void test_conv_gradients(void) {
    /* n, h, w, c, k, r, s, stride, pad, finite differences */
    conv_case(1, 5, 7, 3, 4, 3, 3, 1, 1, 1);
    conv_case(3, 5, 7, 5, 8, 3, 3, 2, 1, 1);
    conv_case(3, 5, 7, 8, 5, 1, 1, 1, 0, 1); /* pointwise: no im2col */
    conv_case(2, 6, 5, 5, 3, 1, 1, 2, 0, 1); /* ResNet downsample */
    conv_case(1, 7, 5, 3, 4, 3, 3, 1, 0, 1);
    conv_case(2, 9, 9, 3, 5, 7, 7, 2, 3, 1); /* ImageNet stem */
    conv_case(3, 8, 8, 2, 3, 7, 7, 1, 3, 1);
    conv_case(1, 4, 5, 3, 2, 3, 3, 2, 3, 1); /* whole rows of padding */
    conv_case(3, 5, 7, 1, 8, 3, 3, 1, 1, 1); /* one input channel */
}

/* Shapes that split into several blocks and chunks (last block and chunk partial). */
static void test_conv_large_shapes(void) {
    conv_case(40, 28, 28, 8, 8, 3, 3, 1, 1, 0);
    conv_case(13, 7, 7, 32, 32, 3, 3, 1, 1, 0);
    conv_case(37, 8, 8, 16, 24, 3, 3, 2, 1, 0);
    conv_case(21, 14, 14, 16, 32, 1, 1, 1, 0, 0);
    conv_case(9, 30, 30, 3, 8, 7, 7, 2, 3, 0);
}

static void test_conv_workspace(void) {
    sc_conv_desc shapes[] = {
        sc_conv_desc_make(512, 28, 28, 8, 8, 3, 3, 1, 1),
        sc_conv_desc_make(512, 4, 4, 64, 64, 3, 3, 1, 1),
        sc_conv_desc_make(2, 224, 224, 3, 64, 7, 7, 2, 3),
        sc_conv_desc_make(256, 56, 56, 64, 256, 1, 1, 1, 0),
        sc_conv_desc_make(1, 3, 3, 1, 1, 1, 1, 1, 0),
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const sc_conv_desc *d = &shapes[i];
        for (int t = 0; t < 2; t++) {
            sc_dtype dt = t ? SC_F64 : SC_F32;
            size_t ws = sc_op_conv2d_workspace(g_be, d, dt), es = sc_dtype_size(dt);
            size_t one_image = (size_t)d->oh * d->ow * d->r * d->s * d->c * es;
            int pointwise = d->r == 1 && d->s == 1 && d->stride == 1 && d->pad == 0;
            CHECKF(ws == sc_op_conv2d_workspace(g_be, d, dt), "shape %zu", i);
            CHECKF(pointwise || ws >= one_image, "shape %zu: %zu < %zu", i, ws, one_image);
            /* bounded: the chunk budget, or one slot (one image and its dw partial) */
            size_t slot = (pointwise ? 0 : one_image) + (size_t)d->k * d->r * d->s * d->c * es;
            CHECKF(ws <= ((size_t)8 << 20) || ws <= slot, "shape %zu: workspace %zu", i, ws);
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* batch norm                                                                           */

typedef struct bn_ctx {
    sc_tensor x, gamma, beta, y, r, mean, invstd, rmean, rvar;
    int with_beta;
} bn_ctx;

static double bn_train_loss(void *p) {
    bn_ctx *b = p;
    sc_op_bn_fwd_train(g_be, &b->x, &b->gamma, b->with_beta ? &b->beta : NULL, &b->y, &b->mean,
                       &b->invstd, &b->rmean, &b->rvar, 0.1, 1e-5);
    return dot(b->r.data, b->y.data, (size_t)sc_tensor_numel(&b->y));
}

static double bn_eval_loss(void *p) {
    bn_ctx *b = p;
    sc_op_bn_fwd_eval(g_be, &b->x, &b->gamma, b->with_beta ? &b->beta : NULL, &b->rmean, &b->rvar,
                      1e-5, &b->y);
    return dot(b->r.data, b->y.data, (size_t)sc_tensor_numel(&b->y));
}

static bn_ctx bn_make(int ndim, const int64_t *shape, int with_beta, uint64_t seed) {
    bn_ctx b;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    int64_t c = shape[ndim - 1];
    /* per-channel offsets and scales, so the statistics differ by channel */
    double *x = buf_randn((size_t)numel, seed, 0.0, 1.0);
    double *off = buf_randn((size_t)c, seed + 1, 0.0, 3.0),
           *sc = buf_randn((size_t)c, seed + 2, 1.0, 0.3);
    for (int64_t i = 0; i < numel; i++) x[i] = off[i % c] + fabs(sc[i % c]) * x[i];
    b.x = sc_tensor_make(x, SC_F64, ndim, shape);
    b.y = sc_tensor_make(buf_nan((size_t)numel), SC_F64, ndim, shape);
    b.r = sc_tensor_make(buf_randn((size_t)numel, seed + 3, 0.0, 1.0), SC_F64, ndim, shape);
    b.gamma = sc_tensor_1d(buf_randn((size_t)c, seed + 4, 1.0, 0.5), SC_F64, c);
    b.beta = sc_tensor_1d(buf_randn((size_t)c, seed + 5, 0.0, 0.5), SC_F64, c);
    b.mean = sc_tensor_1d(buf_nan((size_t)c), SC_F64, c);
    b.invstd = sc_tensor_1d(buf_nan((size_t)c), SC_F64, c);
    b.rmean = sc_tensor_1d(buf_randn((size_t)c, seed + 6, 0.0, 1.0), SC_F64, c);
    double *rv = buf_randn((size_t)c, seed + 7, 1.0, 0.2);
    for (int64_t i = 0; i < c; i++) rv[i] = fabs(rv[i]) + 0.1;
    b.rvar = sc_tensor_1d(rv, SC_F64, c);
    b.with_beta = with_beta;
    return b;
}

static void bn_train_case(int ndim, const int64_t *shape, int with_beta) {
    bn_ctx b = bn_make(ndim, shape, with_beta, 100 + (uint64_t)shape[0] * 7 + (uint64_t)with_beta);
    const int64_t c = shape[ndim - 1], m = sc_tensor_numel(&b.x) / c;
    const double *x = b.x.data, *gamma = b.gamma.data, *beta = b.beta.data;
    double *rm0 = buf_copy(b.rmean.data, (size_t)c), *rv0 = buf_copy(b.rvar.data, (size_t)c);

    /* forward against the definition */
    bn_train_loss(&b);
    double *want_y = buf_nan((size_t)(m * c)), *want_mean = buf_nan((size_t)c),
           *want_invstd = buf_nan((size_t)c);
    double *want_rm = buf_nan((size_t)c), *want_rv = buf_nan((size_t)c);
    for (int64_t ch = 0; ch < c; ch++) {
        double s = 0, ss = 0;
        for (int64_t i = 0; i < m; i++) s += x[i * c + ch];
        double mean = s / (double)m;
        for (int64_t i = 0; i < m; i++) ss += (x[i * c + ch] - mean) * (x[i * c + ch] - mean);
        want_mean[ch] = mean;
        want_invstd[ch] = 1.0 / sqrt(ss / (double)m + 1e-5);
        want_rm[ch] = 0.9 * rm0[ch] + 0.1 * mean;
        want_rv[ch] = 0.9 * rv0[ch] + 0.1 * ss / (double)(m - 1); /* unbiased */
        for (int64_t i = 0; i < m; i++)
            want_y[i * c + ch] =
                (x[i * c + ch] - mean) * want_invstd[ch] * gamma[ch] + (with_beta ? beta[ch] : 0.0);
    }
    compare_rel("bn train y", b.y.data, want_y, (size_t)(m * c), FWD_RTOL);
    compare_rel("bn train save_mean", b.mean.data, want_mean, (size_t)c, FWD_RTOL);
    compare_rel("bn train save_invstd", b.invstd.data, want_invstd, (size_t)c, FWD_RTOL);
    compare_rel("bn running_mean", b.rmean.data, want_rm, (size_t)c, FWD_RTOL);
    compare_rel("bn running_var (unbiased)", b.rvar.data, want_rv, (size_t)c, FWD_RTOL);

    /* backward against finite differences */
    sc_tensor dx = sc_tensor_make(buf_nan((size_t)(m * c)), SC_F64, ndim, shape);
    sc_tensor dgamma = sc_tensor_1d(buf_nan((size_t)c), SC_F64, c),
              dbeta = sc_tensor_1d(buf_nan((size_t)c), SC_F64, c);
    sc_op_bn_bwd(g_be, &b.x, &b.r, &b.gamma, &b.mean, &b.invstd, &dx, &dgamma,
                 with_beta ? &dbeta : NULL);
    fd_check("bn train dx", b.x.data, (size_t)(m * c), dx.data, bn_train_loss, &b, FD_RTOL);
    fd_check("bn train dgamma", b.gamma.data, (size_t)c, dgamma.data, bn_train_loss, &b, FD_RTOL);
    if (with_beta)
        fd_check("bn train dbeta", b.beta.data, (size_t)c, dbeta.data, bn_train_loss, &b, FD_RTOL);
    bufs_release();
}

static void test_bn_train(void) {
    const int64_t s2[2] = {12, 5}, s4[4] = {2, 3, 2, 4}, s_big[2] = {700, 3};
    bn_train_case(2, s2, 1);
    bn_train_case(2, s2, 0);
    bn_train_case(4, s4, 1);
    bn_train_case(4, s4, 0);
    bn_train_case(2, s_big, 1); /* several reduction blocks */
}

static void test_bn_eval(void) {
    const int64_t shape[4] = {3, 2, 3, 4};
    for (int with_beta = 0; with_beta < 2; with_beta++) {
        bn_ctx b = bn_make(4, shape, with_beta, 200 + (uint64_t)with_beta);
        const int64_t c = 4, m = 18;
        const double *x = b.x.data, *g = b.gamma.data, *be = b.beta.data, *rm = b.rmean.data,
                     *rv = b.rvar.data;
        const double *r = b.r.data;
        bn_eval_loss(&b);
        double *want = buf_nan((size_t)(m * c)), *dx = buf_nan((size_t)(m * c));
        double *dg = buf_nan((size_t)c), *db = buf_nan((size_t)c);
        for (int64_t ch = 0; ch < c; ch++) {
            double inv = 1.0 / sqrt(rv[ch] + 1e-5);
            dg[ch] = db[ch] = 0.0;
            for (int64_t i = 0; i < m; i++) {
                want[i * c + ch] =
                    (x[i * c + ch] - rm[ch]) * inv * g[ch] + (with_beta ? be[ch] : 0.0);
                dx[i * c + ch] = r[i * c + ch] * g[ch] * inv;
                dg[ch] += r[i * c + ch] * (x[i * c + ch] - rm[ch]) * inv;
                db[ch] += r[i * c + ch];
            }
        }
        compare_rel("bn eval y", b.y.data, want, (size_t)(m * c), FWD_RTOL);
        fd_check("bn eval dx", b.x.data, (size_t)(m * c), dx, bn_eval_loss, &b, FD_RTOL);
        fd_check("bn eval dgamma", b.gamma.data, (size_t)c, dg, bn_eval_loss, &b, FD_RTOL);
        if (with_beta)
            fd_check("bn eval dbeta", b.beta.data, (size_t)c, db, bn_eval_loss, &b, FD_RTOL);
        bufs_release();
    }
}

/* ------------------------------------------------------------------------------------ */
/* elementwise and pooling                                                              */

typedef struct unary_ctx {
    sc_tensor x, y, r, b;
    sc_pool_desc pool;
    int op; /* 0 relu, 1 add, 2 maxpool, 3 avgpool */
} unary_ctx;

static double unary_loss(void *p) {
    unary_ctx *u = p;
    switch (u->op) {
    case 0: sc_op_relu_fwd(g_be, &u->x, &u->y); break;
    case 1: sc_op_add(g_be, &u->x, &u->b, &u->y); break;
    case 2: sc_op_maxpool_fwd(g_be, &u->pool, &u->x, &u->y); break;
    default: sc_op_avgpool_fwd(g_be, &u->x, &u->y); break;
    }
    return dot(u->r.data, u->y.data, (size_t)sc_tensor_numel(&u->y));
}

static void test_relu(void) {
    const size_t n = 3 * 4 * 5 * 2;
    double *x = buf_randn(n, 300, 0.0, 1.0);
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] < 0 ? x[i] - 0.1 : x[i] + 0.1; /* away from the kink */
    unary_ctx u = {.op = 0};
    u.x = sc_tensor_4d(x, SC_F64, 3, 4, 5, 2);
    u.y = sc_tensor_4d(buf_nan(n), SC_F64, 3, 4, 5, 2);
    u.r = sc_tensor_4d(buf_randn(n, 301, 0.0, 1.0), SC_F64, 3, 4, 5, 2);
    unary_loss(&u);
    int fwd_ok = 1;
    for (size_t i = 0; i < n; i++) fwd_ok &= ((double *)u.y.data)[i] == (x[i] > 0 ? x[i] : 0.0);
    CHECK(fwd_ok);
    sc_tensor dx = sc_tensor_4d(buf_nan(n), SC_F64, 3, 4, 5, 2);
    sc_op_relu_bwd(g_be, &u.y, &u.r, &dx);
    fd_check("relu dx", x, n, dx.data, unary_loss, &u, FD_RTOL);

    /* in place: y aliases x, dx aliases dy */
    double *xin = buf_copy(x, n), *g = buf_copy(u.r.data, n);
    sc_tensor tin = sc_tensor_4d(xin, SC_F64, 3, 4, 5, 2), tg = sc_tensor_4d(g, SC_F64, 3, 4, 5, 2);
    sc_op_relu_fwd(g_be, &tin, &tin);
    sc_op_relu_bwd(g_be, &tin, &tg, &tg);
    CHECK(memcmp(xin, u.y.data, n * sizeof(double)) == 0);
    CHECK(memcmp(g, dx.data, n * sizeof(double)) == 0);
    bufs_release();
}

static void test_add(void) {
    const size_t n = 7 * 9;
    double *a = buf_randn(n, 310, 0.0, 1.0), *b = buf_randn(n, 311, 0.0, 1.0);
    unary_ctx u = {.op = 1};
    u.x = sc_tensor_2d(a, SC_F64, 7, 9);
    u.b = sc_tensor_2d(b, SC_F64, 7, 9);
    u.y = sc_tensor_2d(buf_nan(n), SC_F64, 7, 9);
    u.r = sc_tensor_2d(buf_randn(n, 312, 0.0, 1.0), SC_F64, 7, 9);
    unary_loss(&u);
    double *want = buf_nan(n);
    for (size_t i = 0; i < n; i++) want[i] = a[i] + b[i];
    CHECK(memcmp(u.y.data, want, n * sizeof(double)) == 0);
    fd_check("add da", a, n, u.r.data, unary_loss, &u, FD_RTOL);
    fd_check("add db", b, n, u.r.data, unary_loss, &u, FD_RTOL);
    /* y aliases a, then b */
    double *a2 = buf_copy(a, n), *b2 = buf_copy(b, n);
    sc_tensor ta = sc_tensor_2d(a2, SC_F64, 7, 9), tb = sc_tensor_2d(b2, SC_F64, 7, 9);
    sc_op_add(g_be, &ta, &u.b, &ta);
    sc_op_add(g_be, &u.x, &tb, &tb);
    CHECK(memcmp(a2, want, n * sizeof(double)) == 0 && memcmp(b2, want, n * sizeof(double)) == 0);
    bufs_release();
}

/* First maximum of each window in row-major order; padding never wins. */
static void naive_maxpool(const sc_pool_desc *d, const double *x, const double *dy, double *y,
                          double *dx) {
    memset(dx, 0, sizeof(double) * (size_t)d->n * d->h * d->w * d->c);
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int c = 0; c < d->c; c++) {
                    long best = -1;
                    for (int i = 0; i < d->window; i++)
                        for (int j = 0; j < d->window; j++) {
                            int iy = oy * d->stride - d->pad + i, ix = ox * d->stride - d->pad + j;
                            if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                            long at = (((long)n * d->h + iy) * d->w + ix) * d->c + c;
                            if (best < 0 || x[at] > x[best]) best = at;
                        }
                    long o = (((long)n * d->oh + oy) * d->ow + ox) * d->c + c;
                    y[o] = x[best];
                    dx[best] += dy[o];
                }
}

static void maxpool_case(int n, int h, int w, int c, int window, int stride, int pad, int fd) {
    unary_ctx u = {.op = 2};
    u.pool = sc_pool_desc_make(n, h, w, c, window, stride, pad);
    const sc_pool_desc *d = &u.pool;
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * d->oh * d->ow * c;
    /* distinct values 0.01 apart in a random order, shifted negative so padding (0) would win
     * if it were considered */
    double *x = buf_nan(nx);
    sc_rng rng = sc_rng_make(320, 0, 0, 0, SC_RNG_TEST);
    for (size_t i = 0; i < nx; i++) x[i] = -1.0 - 0.01 * (double)i;
    for (size_t i = nx - 1; i > 0; i--) {
        size_t j = sc_rng_below(&rng, (uint32_t)(i + 1));
        double t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    u.x = sc_tensor_4d(x, SC_F64, n, h, w, c);
    u.y = sc_tensor_4d(buf_nan(ny), SC_F64, n, d->oh, d->ow, c);
    u.r = sc_tensor_4d(buf_randn(ny, 321, 0.0, 1.0), SC_F64, n, d->oh, d->ow, c);
    unary_loss(&u);
    double *want_y = buf_nan(ny), *want_dx = buf_nan(nx);
    naive_maxpool(d, x, u.r.data, want_y, want_dx);
    CHECK(memcmp(u.y.data, want_y, ny * sizeof(double)) == 0);
    sc_tensor dx = sc_tensor_4d(buf_nan(nx), SC_F64, n, h, w, c);
    sc_op_maxpool_bwd(g_be, d, &u.x, &u.r, &dx);
    CHECK(memcmp(dx.data, want_dx, nx * sizeof(double)) == 0);
    if (fd) fd_check("maxpool dx", x, nx, dx.data, unary_loss, &u, FD_RTOL);
    bufs_release();
}

static void test_maxpool(void) {
    maxpool_case(2, 7, 6, 3, 3, 2, 1, 1);
    maxpool_case(1, 8, 8, 2, 2, 2, 0, 1);
    maxpool_case(2, 5, 5, 4, 3, 1, 1, 1);
    maxpool_case(3, 16, 16, 8, 3, 2, 1, 0);
}

static void test_maxpool_ties(void) {
    /* all equal: each window's gradient goes to its first (top-left) valid position */
    sc_pool_desc d = sc_pool_desc_make(1, 4, 4, 2, 3, 2, 1);
    double x[32] = {0}, dy[8], y[8], dx[32];
    for (int i = 0; i < 8; i++) dy[i] = i + 1;
    sc_tensor tx = sc_tensor_4d(x, SC_F64, 1, 4, 4, 2), tdy = sc_tensor_4d(dy, SC_F64, 1, 2, 2, 2);
    sc_tensor ty = sc_tensor_4d(y, SC_F64, 1, 2, 2, 2), tdx = sc_tensor_4d(dx, SC_F64, 1, 4, 4, 2);
    sc_op_maxpool_fwd(g_be, &d, &tx, &ty);
    sc_op_maxpool_bwd(g_be, &d, &tx, &tdy, &tdx);
    /* windows: (0,0) covers rows 0-1 cols 0-1; (0,1) rows 0-1 cols 1-3; (1,0) rows 1-3 cols 0-1 */
    double want[32] = {0};
    const int first[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    for (int o = 0; o < 4; o++)
        for (int c = 0; c < 2; c++) want[(first[o][0] * 4 + first[o][1]) * 2 + c] += dy[o * 2 + c];
    CHECK(memcmp(dx, want, sizeof dx) == 0);
    for (int i = 0; i < 8; i++) CHECK(y[i] == 0.0);

    /* random data quantised to a few levels (many ties) against the naive first-max rule */
    sc_pool_desc d2 = sc_pool_desc_make(2, 9, 7, 3, 3, 2, 1);
    size_t nx = 2 * 9 * 7 * 3, ny = (size_t)2 * d2.oh * d2.ow * 3;
    double *xq = buf_randn(nx, 330, 0.0, 1.0), *g = buf_randn(ny, 331, 0.0, 1.0);
    for (size_t i = 0; i < nx; i++) xq[i] = round(xq[i]) - 3.0; /* negative: padding must not win */
    double *got_y = buf_nan(ny), *got_dx = buf_nan(nx), *want_y = buf_nan(ny),
           *want_dx = buf_nan(nx);
    sc_tensor qx = sc_tensor_4d(xq, SC_F64, 2, 9, 7, 3),
              qg = sc_tensor_4d(g, SC_F64, 2, d2.oh, d2.ow, 3);
    sc_tensor qy = sc_tensor_4d(got_y, SC_F64, 2, d2.oh, d2.ow, 3),
              qdx = sc_tensor_4d(got_dx, SC_F64, 2, 9, 7, 3);
    sc_op_maxpool_fwd(g_be, &d2, &qx, &qy);
    sc_op_maxpool_bwd(g_be, &d2, &qx, &qg, &qdx);
    naive_maxpool(&d2, xq, g, want_y, want_dx);
    CHECK(memcmp(got_y, want_y, ny * sizeof(double)) == 0);
    CHECK(memcmp(got_dx, want_dx, nx * sizeof(double)) == 0);

    /* a NaN propagates, and its position takes the gradient */
    sc_pool_desc d3 = sc_pool_desc_make(1, 2, 2, 1, 2, 2, 0);
    double x3[4] = {1.0, NAN, 5.0, NAN}, y3[1], dy3[1] = {2.0}, dx3[4];
    sc_tensor t3x = sc_tensor_4d(x3, SC_F64, 1, 2, 2, 1),
              t3y = sc_tensor_4d(y3, SC_F64, 1, 1, 1, 1);
    sc_tensor t3dy = sc_tensor_4d(dy3, SC_F64, 1, 1, 1, 1),
              t3dx = sc_tensor_4d(dx3, SC_F64, 1, 2, 2, 1);
    sc_op_maxpool_fwd(g_be, &d3, &t3x, &t3y);
    sc_op_maxpool_bwd(g_be, &d3, &t3x, &t3dy, &t3dx);
    CHECK(isnan(y3[0]));
    CHECK(dx3[0] == 0.0 && dx3[1] == 2.0 && dx3[2] == 0.0 && dx3[3] == 0.0);
    bufs_release();
}

static void test_avgpool(void) {
    const int n = 3, h = 4, w = 5, c = 6;
    const size_t nx = (size_t)n * h * w * c, ny = (size_t)n * c;
    unary_ctx u = {.op = 3};
    double *x = buf_randn(nx, 340, 0.5, 1.0);
    u.x = sc_tensor_4d(x, SC_F64, n, h, w, c);
    u.y = sc_tensor_2d(buf_nan(ny), SC_F64, n, c);
    u.r = sc_tensor_2d(buf_randn(ny, 341, 0.0, 1.0), SC_F64, n, c);
    unary_loss(&u);
    double *want = buf_nan(ny);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            double s = 0;
            for (int p = 0; p < h * w; p++) s += x[((size_t)i * h * w + p) * c + ch];
            want[i * c + ch] = s / (h * w);
        }
    compare_rel("avgpool y", u.y.data, want, ny, FWD_RTOL);
    sc_tensor dx = sc_tensor_4d(buf_nan(nx), SC_F64, n, h, w, c);
    sc_op_avgpool_bwd(g_be, &u.r, &dx);
    fd_check("avgpool dx", x, nx, dx.data, unary_loss, &u, FD_RTOL);
    bufs_release();
}

/* ------------------------------------------------------------------------------------ */
/* linear and L2 normalisation                                                          */

typedef struct linear_ctx {
    sc_tensor x, w, b, y, r;
    int with_bias;
} linear_ctx;

static double linear_loss(void *p) {
    linear_ctx *l = p;
    sc_op_linear_fwd(g_be, &l->x, &l->w, l->with_bias ? &l->b : NULL, &l->y);
    return dot(l->r.data, l->y.data, (size_t)sc_tensor_numel(&l->y));
}

static void linear_case(int m, int k, int n, int with_bias) {
    linear_ctx l = {.with_bias = with_bias};
    double *x = buf_randn((size_t)(m * k), 400 + (uint64_t)m, 0.0, 1.0);
    double *w = buf_randn((size_t)(n * k), 401 + (uint64_t)n, 0.0, 0.5);
    double *b = buf_randn((size_t)n, 402, 0.0, 1.0);
    l.x = sc_tensor_2d(x, SC_F64, m, k);
    l.w = sc_tensor_2d(w, SC_F64, n, k);
    l.b = sc_tensor_1d(b, SC_F64, n);
    l.y = sc_tensor_2d(buf_nan((size_t)(m * n)), SC_F64, m, n);
    l.r = sc_tensor_2d(buf_randn((size_t)(m * n), 403, 0.0, 1.0), SC_F64, m, n);
    linear_loss(&l);
    double *want = buf_nan((size_t)(m * n));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = with_bias ? b[j] : 0.0;
            for (int t = 0; t < k; t++) s += x[i * k + t] * w[j * k + t];
            want[i * n + j] = s;
        }
    compare_rel("linear y", l.y.data, want, (size_t)(m * n), FWD_RTOL);

    sc_tensor dx = sc_tensor_2d(buf_nan((size_t)(m * k)), SC_F64, m, k);
    sc_tensor dw = sc_tensor_2d(buf_nan((size_t)(n * k)), SC_F64, n, k);
    sc_tensor db = sc_tensor_1d(buf_nan((size_t)n), SC_F64, n);
    sc_op_linear_bwd(g_be, &l.x, &l.w, &l.r, &dx, &dw, with_bias ? &db : NULL);
    fd_check("linear dx", x, (size_t)(m * k), dx.data, linear_loss, &l, FD_RTOL);
    fd_check("linear dw", w, (size_t)(n * k), dw.data, linear_loss, &l, FD_RTOL);
    if (with_bias) fd_check("linear db", b, (size_t)n, db.data, linear_loss, &l, FD_RTOL);

    /* dx == NULL leaves dw and db unchanged */
    sc_tensor dw2 = sc_tensor_2d(buf_nan((size_t)(n * k)), SC_F64, n, k);
    sc_tensor db2 = sc_tensor_1d(buf_nan((size_t)n), SC_F64, n);
    sc_op_linear_bwd(g_be, &l.x, &l.w, &l.r, NULL, &dw2, &db2);
    CHECK(memcmp(dw2.data, dw.data, sizeof(double) * (size_t)(n * k)) == 0);
    if (with_bias) CHECK(memcmp(db2.data, db.data, sizeof(double) * (size_t)n) == 0);
    bufs_release();
}

static void test_linear(void) {
    linear_case(5, 7, 4, 1);
    linear_case(5, 7, 4, 0);
    linear_case(70, 9, 67, 1); /* several row blocks and column tiles */
}

typedef struct l2_ctx {
    sc_tensor x, y, norm, r;
} l2_ctx;

static double l2_loss(void *p) {
    l2_ctx *l = p;
    sc_op_l2norm_fwd(g_be, &l->x, &l->y, &l->norm);
    return dot(l->r.data, l->y.data, (size_t)sc_tensor_numel(&l->y));
}

static void test_l2norm(void) {
    const int m = 70, dim = 6;
    const size_t n = (size_t)m * dim;
    l2_ctx l;
    double *x = buf_randn(n, 500, 0.0, 1.0);
    l.x = sc_tensor_2d(x, SC_F64, m, dim);
    l.y = sc_tensor_2d(buf_nan(n), SC_F64, m, dim);
    l.norm = sc_tensor_1d(buf_nan((size_t)m), SC_F64, m);
    l.r = sc_tensor_2d(buf_randn(n, 501, 0.0, 1.0), SC_F64, m, dim);
    l2_loss(&l);
    double *want_y = buf_nan(n), *want_norm = buf_nan((size_t)m);
    for (int i = 0; i < m; i++) {
        want_norm[i] = sqrt(dot(x + i * dim, x + i * dim, (size_t)dim));
        for (int j = 0; j < dim; j++) want_y[i * dim + j] = x[i * dim + j] / want_norm[i];
    }
    compare_rel("l2 y", l.y.data, want_y, n, FWD_RTOL);
    compare_rel("l2 norm", l.norm.data, want_norm, (size_t)m, FWD_RTOL);
    sc_tensor dx = sc_tensor_2d(buf_nan(n), SC_F64, m, dim);
    sc_op_l2norm_bwd(g_be, &l.y, &l.norm, &l.r, &dx);
    fd_check("l2 dx", x, n, dx.data, l2_loss, &l, FD_RTOL);

    /* the clamped branch: a zero row and a row of norm 2e-14 both divide by 1e-12 */
    double x2[6] = {0, 0, 0, 2e-14, 0, 0}, y2[6], n2[2], dy2[6] = {1, -2, 3, 4, 5, -6}, dx2[6];
    sc_tensor tx = sc_tensor_2d(x2, SC_F64, 2, 3), ty = sc_tensor_2d(y2, SC_F64, 2, 3);
    sc_tensor tn = sc_tensor_1d(n2, SC_F64, 2), tdy = sc_tensor_2d(dy2, SC_F64, 2, 3);
    sc_tensor tdx = sc_tensor_2d(dx2, SC_F64, 2, 3);
    sc_op_l2norm_fwd(g_be, &tx, &ty, &tn);
    sc_op_l2norm_bwd(g_be, &ty, &tn, &tdy, &tdx);
    CHECK(n2[0] == 0.0 && fabs(n2[1] - 2e-14) < 1e-28);
    CHECK(y2[0] == 0.0 && fabs(y2[3] - 0.02) < 1e-15);
    for (int j = 0; j < 6; j++) CHECK_CLOSE(dx2[j], dy2[j] * 1e12, 0, 1e-15);
    bufs_release();
}

int main(void) {
    g_be = backend_with_threads(2);
    SC_RUN(test_conv_gradients);
    SC_RUN(test_conv_large_shapes);
    SC_RUN(test_conv_workspace);
    SC_RUN(test_bn_train);
    SC_RUN(test_bn_eval);
    SC_RUN(test_relu);
    SC_RUN(test_add);
    SC_RUN(test_maxpool);
    SC_RUN(test_maxpool_ties);
    SC_RUN(test_avgpool);
    SC_RUN(test_linear);
    SC_RUN(test_l2norm);
    sc_backend_destroy(g_be);
    return sc_test_summary();
}
