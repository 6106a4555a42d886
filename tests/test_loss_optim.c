/*
 * test_loss_optim.c - NT-Xent against the worked example of the SimCLR notes and finite
 * differences; LARS, SGD and the learning-rate schedule against hand-computed values.
 */
#include <math.h>

#include "harness.h"
#include "simclr/backend.h"
#include "simclr/optim.h"
#include "simclr/rng.h"

static sc_backend *cpu(void) {
    static sc_backend *be;
    if (!be) {
        sc_backend_options opt = {.threads = 2};
        if (sc_backend_create("cpu", &opt, &be) != SC_OK) sc_test_skip("no CPU backend");
    }
    return be;
}

/* Rows of Z (row-major [4, 4]) with Z Z^T = G, by Cholesky of the Gram matrix G. */
static int gram_to_vectors(const double g[4][4], double z[4][4]) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) z[i][j] = 0.0;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j <= i; j++) {
            double s = g[i][j];
            for (int k = 0; k < j; k++) s -= z[i][k] * z[j][k];
            if (i == j) {
                if (s <= 0) return 0;
                z[i][i] = sqrt(s);
            } else {
                z[i][j] = s / z[j][j];
            }
        }
    }
    return 1;
}

/*
 * The worked example: two images, views x1i, x1j (image 1) and x2i, x2j (image 2), with
 * cosine similarities x1i.x2i 0.63, x1i.x1j 0.77, x1i.x2j 0.70, x2i.x1j 0.67, x2i.x2j 0.84,
 * x1j.x2j 0.64 and tau = 1. The anchor x1i has softmax [0.3569, 0.3103, 0.3328] over
 * (x1j, x2i, x2j), so l(x1i, x1j) = 1.0302, and L over the 4 anchors = 1.0047.
 * In simclr's layout (first views, then second views): rows x1i, x2i, x1j, x2j.
 */
static void test_worked_example(void) {
    enum { X1I, X2I, X1J, X2J };
    double g[4][4] = {{0}};
    for (int i = 0; i < 4; i++) g[i][i] = 1.0;
#define SIM(a, b, v) (g[a][b] = g[b][a] = (v))
    SIM(X1I, X2I, 0.63);
    SIM(X1I, X1J, 0.77);
    SIM(X1I, X2J, 0.70);
    SIM(X2I, X1J, 0.67);
    SIM(X2I, X2J, 0.84);
    SIM(X1J, X2J, 0.64);
#undef SIM
    double zv[4][4];
    CHECK(gram_to_vectors(g, zv));
    double loss = 0, acc = 0;
    sc_tensor z = sc_tensor_2d(zv, SC_F64, 4, 4);
    sc_tensor lt = sc_tensor_1d(&loss, SC_F64, 1), at = sc_tensor_1d(&acc, SC_F64, 1);
    sc_op_ntxent(cpu(), &z, 1.0, &lt, &at, NULL);
    CHECK_CLOSE(loss, 1.0047, 5e-5, 0);

    /* the anchor x1i on its own: softmax over (x1j, x2i, x2j) */
    double e[3] = {exp(0.77), exp(0.63), exp(0.70)}, s = e[0] + e[1] + e[2];
    CHECK_CLOSE(e[0] / s, 0.3569, 5e-5, 0);
    CHECK_CLOSE(e[1] / s, 0.3103, 5e-5, 0);
    CHECK_CLOSE(e[2] / s, 0.3328, 5e-5, 0);
    CHECK_CLOSE(-log(e[0] / s), 1.0302, 5e-5, 0);
    /* every positive is the most similar here except for x1j (0.77 vs 0.67): all 4 win */
    CHECK_CLOSE(acc, 1.0, 0, 0);

    /* F32 gives the same loss */
    float zf[16], lf = 0;
    for (int i = 0; i < 16; i++) zf[i] = (float)zv[i / 4][i % 4];
    sc_tensor z32 = sc_tensor_2d(zf, SC_F32, 4, 4), l32 = sc_tensor_1d(&lf, SC_F32, 1);
    sc_op_ntxent(cpu(), &z32, 1.0, &l32, NULL, NULL);
    CHECK_CLOSE(lf, 1.0047, 5e-5, 0);
}

static double ntxent_value(sc_tensor *z, double tau) {
    double loss;
    sc_tensor lt = sc_tensor_1d(&loss, SC_F64, 1);
    sc_op_ntxent(cpu(), z, tau, &lt, NULL, NULL);
    return loss;
}

/* d loss / d z against central differences in double, for several N, D and tau. */
static void test_ntxent_gradient(void) {
    static const int cases[][2] = {{1, 3}, {2, 4}, {3, 5}, {8, 16}};
    static const double taus[] = {0.05, 0.1, 0.5, 1.0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t t = 0; t < sizeof taus / sizeof taus[0]; t++) {
            int rows = 2 * cases[c][0], dim = cases[c][1];
            double zv[16 * 16], dz[16 * 16], num[16 * 16];
            sc_rng r = sc_rng_make(11, (uint32_t)c, (uint32_t)t, 0, SC_RNG_TEST);
            for (int i = 0; i < rows; i++) {
                double n2 = 0;
                for (int j = 0; j < dim; j++) {
                    zv[i * dim + j] = sc_rng_normal(&r);
                    n2 += zv[i * dim + j] * zv[i * dim + j];
                }
                for (int j = 0; j < dim; j++) zv[i * dim + j] /= sqrt(n2);
            }
            sc_tensor z = sc_tensor_2d(zv, SC_F64, rows, dim), d = sc_tensor_2d(dz, SC_F64, rows, dim);
            double loss, acc;
            sc_tensor lt = sc_tensor_1d(&loss, SC_F64, 1), at = sc_tensor_1d(&acc, SC_F64, 1);
            sc_op_ntxent(cpu(), &z, taus[t], &lt, &at, &d);
            const double h = 1e-6;
            for (int i = 0; i < rows * dim; i++) {
                double keep = zv[i];
                zv[i] = keep + h;
                double up = ntxent_value(&z, taus[t]);
                zv[i] = keep - h;
                double down = ntxent_value(&z, taus[t]);
                zv[i] = keep;
                num[i] = (up - down) / (2 * h);
            }
            char what[64];
            snprintf(what, sizeof what, "dz N=%d D=%d tau=%g", rows / 2, dim, taus[t]);
            sc_test_compare(what, dz, num, rows * dim, 1e-7, 1e-6);
        }
    }
}

/* The max-subtraction keeps tiny temperatures finite; accuracy counts strict wins. */
static void test_ntxent_stability_and_accuracy(void) {
    /* 2N = 4 identical rows: every logit equals 1/tau, loss = log(3) whatever tau */
    double zv[4][2] = {{1, 0}, {1, 0}, {1, 0}, {1, 0}};
    sc_tensor z = sc_tensor_2d(zv, SC_F64, 4, 2);
    double loss, acc;
    sc_tensor lt = sc_tensor_1d(&loss, SC_F64, 1), at = sc_tensor_1d(&acc, SC_F64, 1);
    sc_op_ntxent(cpu(), &z, 1e-4, &lt, &at, NULL);
    CHECK_CLOSE(loss, log(3.0), 1e-12, 0);
    CHECK(acc == 0.0); /* ties are not wins */
    /* positives aligned, negatives orthogonal: at tau 0.01 the loss is ~ 2 e^(-100) */
    double za[4][2] = {{1, 0}, {0, 1}, {1, 0}, {0, 1}};
    sc_tensor z2 = sc_tensor_2d(za, SC_F64, 4, 2);
    sc_op_ntxent(cpu(), &z2, 0.01, &lt, &at, NULL);
    CHECK(isfinite(loss) && loss >= 0 && loss < 1e-40);
    CHECK(acc == 1.0);
}

/* ---- optimizer -------------------------------------------------------------------------- */

typedef struct {
    sc_param_table t;
    double w[64], g[64], v[64];
} opt_fixture;

static void fixture(opt_fixture *f) {
    memset(f, 0, sizeof *f);
    sc_params_init_table(&f->t);
    int64_t two[1] = {2};
    sc_params_add(&f->t, "conv.weight", 1, two, SC_PARAM_CONV, SC_INIT_ZEROS, 0, 0);
    sc_params_add(&f->t, "fc.bias", 1, two, SC_PARAM_BIAS | SC_PARAM_NO_WD | SC_PARAM_NO_LARS, SC_INIT_ZEROS, 0, 0);
    sc_params_add(&f->t, "bn.running_mean", 1, two, SC_PARAM_BN_STAT | SC_PARAM_NO_WD | SC_PARAM_NO_LARS, SC_INIT_ZEROS, 0, 0);
    sc_params_add(&f->t, "zero.weight", 1, two, SC_PARAM_CONV, SC_INIT_ZEROS, 0, 0);
    /* conv: w = [3, 4], g = [0.6, 0.8]; bias: w = [0.5, 0.5], g = [1, -2];
     * running mean: w = [7, 7], g = [9, 9] (must stay); zero: w = [0, 0], g = [1, 1] */
    double init[4][4] = {{3, 4, 0.6, 0.8}, {0.5, 0.5, 1, -2}, {7, 7, 9, 9}, {0, 0, 1, 1}};
    for (int i = 0; i < 4; i++) {
        int64_t o = f->t.rows[i].offset;
        f->w[o] = init[i][0];
        f->w[o + 1] = init[i][1];
        f->g[o] = init[i][2];
        f->g[o + 1] = init[i][3];
    }
}

static void run_steps(opt_fixture *f, const sc_optim_hparams *hp, double rate, int steps) {
    sc_tensor w = sc_tensor_1d(f->w, SC_F64, f->t.total), g = sc_tensor_1d(f->g, SC_F64, f->t.total);
    sc_tensor v = sc_tensor_1d(f->v, SC_F64, f->t.total), lr = sc_tensor_1d(&rate, SC_F64, 1);
    for (int s = 0; s < steps; s++) sc_op_optim_step(cpu(), hp, &f->t, &w, &g, &v, &lr);
}

static void test_lars_hand_computed(void) {
    opt_fixture f;
    fixture(&f);
    sc_optim_hparams hp = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 0.1, .trust_coef = 0.001};
    run_steps(&f, &hp, 2.0, 2);
    /* conv, step 1: g' = g + 0.1 w = [0.9, 1.2], ||w|| = 5, ||g'|| = 1.5, trust = 0.001 * 5 / 1.5,
     * v = 2 * trust * g' = [0.006, 0.008], w = [2.994, 3.992]; step 2 (computed the same way):
     * w = [2.982612, 3.976816], v = [0.011388, 0.015184] */
    int64_t o = f.t.rows[0].offset;
    CHECK_CLOSE(f.w[o], 2.982612, 1e-12, 0);
    CHECK_CLOSE(f.w[o + 1], 3.976816, 1e-12, 0);
    CHECK_CLOSE(f.v[o], 0.011388, 1e-12, 0);
    CHECK_CLOSE(f.v[o + 1], 0.015184, 1e-12, 0);
    /* bias: no decay, no trust ratio: v = 0.9 v + 2 g, w -= v: w = [-5.3, 12.1], v = [3.8, -7.6] */
    o = f.t.rows[1].offset;
    CHECK_CLOSE(f.w[o], -5.3, 1e-12, 0);
    CHECK_CLOSE(f.w[o + 1], 12.1, 1e-12, 0);
    CHECK_CLOSE(f.v[o], 3.8, 1e-12, 0);
    /* BN running statistics are never touched */
    o = f.t.rows[2].offset;
    CHECK(f.w[o] == 7 && f.w[o + 1] == 7 && f.v[o] == 0);
    /* ||w|| = 0 gives trust 1: step 1 v = 2 g = [2, 2], step 2 g' = g + 0.1 w = 1 - 0.2 = 0.8,
     * ||w|| > 0 now: trust = 0.001 * ||w|| / ||g'|| = 0.001 * 2.828427 / 1.131371 = 0.0025,
     * v = 0.9 * 2 + 2 * 0.0025 * 0.8 = 1.804, w = -2 - 1.804 = -3.804 */
    o = f.t.rows[3].offset;
    CHECK_CLOSE(f.w[o], -3.804, 1e-12, 0);
    sc_params_free(&f.t);
}

static void test_sgd_hand_computed(void) {
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        opt_fixture f;
        fixture(&f);
        /* conv row: w = [1, 2], g = [0.5, -0.5] */
        int64_t o = f.t.rows[0].offset;
        f.w[o] = 1;
        f.w[o + 1] = 2;
        f.g[o] = 0.5;
        f.g[o + 1] = -0.5;
        sc_optim_hparams hp = {.kind = SC_OPTIM_SGD, .momentum = 0.9, .weight_decay = 0.01, .nesterov = nesterov};
        run_steps(&f, &hp, 0.1, 2);
        /* PyTorch SGD: g' = g + wd w; v = m v + g'; w -= lr (nesterov ? g' + m v : v) */
        static const double want[2][2] = {{0.852151, 2.139152}, {0.76507411, 2.22110672}};
        CHECK_CLOSE(f.w[o], want[nesterov][0], 1e-12, 0);
        CHECK_CLOSE(f.w[o + 1], want[nesterov][1], 1e-12, 0);
        o = f.t.rows[2].offset;
        CHECK(f.w[o] == 7);
        sc_params_free(&f.t);
    }
}

static void test_lars_f32_matches_f64(void) {
    opt_fixture f;
    fixture(&f);
    float w[64], g[64], v[64] = {0};
    for (int i = 0; i < 64; i++) {
        w[i] = (float)f.w[i];
        g[i] = (float)f.g[i];
    }
    sc_optim_hparams hp = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 0.1, .trust_coef = 0.001};
    float rate = 2.0f;
    sc_tensor wt = sc_tensor_1d(w, SC_F32, f.t.total), gt = sc_tensor_1d(g, SC_F32, f.t.total);
    sc_tensor vt = sc_tensor_1d(v, SC_F32, f.t.total), lr = sc_tensor_1d(&rate, SC_F32, 1);
    for (int s = 0; s < 2; s++) sc_op_optim_step(cpu(), &hp, &f.t, &wt, &gt, &vt, &lr);
    run_steps(&f, &hp, 2.0, 2);
    for (int i = 0; i < (int)f.t.total; i++) CHECK_CLOSE(w[i], f.w[i], 1e-6, 1e-6);
    sc_params_free(&f.t);
}

static void test_schedule(void) {
    CHECK_CLOSE(sc_lr_scaled(0.3, SC_LR_LINEAR, 4096), 4.8, 1e-12, 0);
    CHECK_CLOSE(sc_lr_scaled(0.075, SC_LR_SQRT, 4096), 4.8, 1e-12, 0);
    CHECK_CLOSE(sc_lr_scaled(0.5, SC_LR_NONE, 512), 0.5, 0, 0);
    sc_schedule s = {.peak_lr = 4.8, .warmup_steps = 10, .total_steps = 110};
    CHECK_CLOSE(sc_schedule_lr(&s, 0), 0.0, 0, 0);
    CHECK_CLOSE(sc_schedule_lr(&s, 5), 2.4, 1e-12, 0);
    CHECK_CLOSE(sc_schedule_lr(&s, 10), 4.8, 1e-12, 0);
    CHECK_CLOSE(sc_schedule_lr(&s, 35), 4.097056274847714, 1e-12, 0); /* 4.8 * (1 + cos(pi/4)) / 2 */
    CHECK_CLOSE(sc_schedule_lr(&s, 60), 2.4, 1e-12, 0);
    CHECK_CLOSE(sc_schedule_lr(&s, 109), 4.8 * 0.5 * (1 + cos(M_PI * 99.0 / 100.0)), 1e-12, 0);
    CHECK_CLOSE(sc_schedule_lr(&s, 110), 0.0, 0, 0);
    sc_schedule none = {.peak_lr = 1.0, .warmup_steps = 0, .total_steps = 4};
    CHECK_CLOSE(sc_schedule_lr(&none, 0), 1.0, 1e-15, 0);
    CHECK_CLOSE(sc_schedule_lr(&none, 2), 0.5, 1e-15, 0);

    sc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.optim.lr = 0.3;
    cfg.optim.lr_scaling = SC_LR_LINEAR;
    cfg.train.batch_size = 512;
    cfg.train.epochs = 100;
    cfg.train.warmup_epochs = 10;
    sc_schedule c = sc_schedule_from_config(&cfg, 97); /* 50000 / 512 = 97 steps per epoch */
    CHECK_CLOSE(c.peak_lr, 0.6, 1e-12, 0);
    CHECK(c.total_steps == 9700 && c.warmup_steps == 970);
}

int main(void) {
    SC_RUN(test_worked_example);
    SC_RUN(test_ntxent_gradient);
    SC_RUN(test_ntxent_stability_and_accuracy);
    SC_RUN(test_lars_hand_computed);
    SC_RUN(test_sgd_hand_computed);
    SC_RUN(test_lars_f32_matches_f64);
    SC_RUN(test_schedule);
    return sc_test_summary();
}
