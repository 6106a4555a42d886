/*
 * test_loss_optim.c - the CPU reference loss and optimizer ops, which are the specification
 * the CUDA kernels are tested against.
 *
 * Loss: NT-Xent on the worked example of the SimCLR notes; every loss (NT-Xent, NT-Logistic,
 * margin triplet, the last two with and without semi-hard negatives) against finite
 * differences in the general local-rows x global-columns form with normalisation; hand-computed
 * NT-Logistic / margin / semi-hard values; the rows-vs-columns split against the single matrix
 * on the concatenated batch; pairing blocks against a permuted single block; the fused
 * normalisation bit-identical to the separate l2norm ops.
 * Optimizer: LARS, SGD and AdamW against hand-computed values; clipping and the reported
 * gradient norm; non-finite gradients skipped and counted with the weights untouched; the
 * schedule evaluated from the step counter; the driver's counter; thread-count independence.
 */
#include <math.h>

#include "harness.h"
#include "simclr/backend.h"
#include "simclr/loss.h"
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

/* One call of the loss op on host F64 (or F32) buffers; d_rows/d_cols may be NULL. */
static double loss_op(const sc_contrastive_desc *d, sc_dtype dt, void *zr, int64_t rows, void *zc, int64_t cols,
                      int64_t dim, void *dr, void *dc, double *acc) {
    double l64 = 0, a64 = 0;
    float l32 = 0, a32 = 0;
    sc_tensor r = sc_tensor_2d(zr, dt, rows, dim), c = sc_tensor_2d(zc, dt, cols, dim);
    sc_tensor lt = dt == SC_F64 ? sc_tensor_1d(&l64, dt, 1) : sc_tensor_1d(&l32, dt, 1);
    sc_tensor at = dt == SC_F64 ? sc_tensor_1d(&a64, dt, 1) : sc_tensor_1d(&a32, dt, 1);
    sc_tensor gr = sc_tensor_2d(dr, dt, rows, dim), gc = sc_tensor_2d(dc, dt, cols, dim);
    sc_op_contrastive(cpu(), d, &r, &c, &lt, &at, dr ? &gr : NULL, dc ? &gc : NULL, NULL);
    if (acc) *acc = dt == SC_F64 ? a64 : a32;
    return dt == SC_F64 ? l64 : l32;
}

/* The single-matrix form on z [rows, dim] (F64); dz (may be NULL) gets d loss / d z. */
static double single(const sc_contrastive_desc *d, double *z, int64_t rows, int64_t dim, double *dz, double *acc) {
    return loss_op(d, SC_F64, z, rows, z, rows, dim, dz, dz, acc);
}

static void random_rows(double *z, int64_t rows, int64_t dim, int unit, uint32_t key) {
    sc_rng r = sc_rng_make(11, key, 0, 0, SC_RNG_TEST);
    for (int64_t i = 0; i < rows; i++) {
        double n2 = 0;
        for (int64_t j = 0; j < dim; j++) {
            z[i * dim + j] = sc_rng_normal(&r);
            n2 += z[i * dim + j] * z[i * dim + j];
        }
        for (int64_t j = 0; unit && j < dim; j++) z[i * dim + j] /= sqrt(n2);
    }
}

/*
 * The worked example: two images, views x1i, x1j (image 1) and x2i, x2j (image 2), with
 * cosine similarities x1i.x2i 0.63, x1i.x1j 0.77, x1i.x2j 0.70, x2i.x1j 0.67, x2i.x2j 0.84,
 * x1j.x2j 0.64 and tau = 1. The anchor x1i has softmax [0.3569, 0.3103, 0.3328] over
 * (x1j, x2i, x2j), so l(x1i, x1j) = 1.0302, and L over the 4 anchors = 1.0047.
 * In simclr's layout (first views, then second views): rows x1i, x2i, x1j, x2j.
 */
static void gram_example(double zv[4][4]) {
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
    CHECK(gram_to_vectors(g, zv));
}

static void test_worked_example(void) {
    double zv[4][4], acc = 0;
    gram_example(zv);
    sc_contrastive_desc d = sc_contrastive_ntxent(1.0);
    double loss = single(&d, &zv[0][0], 4, 4, NULL, &acc);
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
    float zf[16];
    for (int i = 0; i < 16; i++) zf[i] = (float)zv[i / 4][i % 4];
    CHECK_CLOSE(loss_op(&d, SC_F32, zf, 4, zf, 4, 4, NULL, NULL, NULL), 1.0047, 5e-5, 0);

    /* anchor x1i alone as a local row of the 4 columns (row_offset 0, R = 1) */
    CHECK_CLOSE(loss_op(&d, SC_F64, &zv[0][0], 1, &zv[0][0], 4, 4, NULL, NULL, NULL), 1.0302, 5e-5, 0);
}

/* Hand-computed NT-Logistic, margin and semi-hard values on the worked example's vectors. */
static void test_other_losses_hand_computed(void) {
    double zv[4][4];
    gram_example(zv);
    /* anchor x1i (row 0): positive x1j (s 0.77), negatives x2i (0.63) and x2j (0.70) */
    sc_contrastive_desc d = {.kind = SC_CONTRASTIVE_NT_LOGISTIC, .tau = 0.5};
    double sp = 0.77 / 0.5, n1 = 0.63 / 0.5, n2 = 0.70 / 0.5;
    double want = log1p(exp(-sp)) + 0.5 * (log1p(exp(n1)) + log1p(exp(n2)));
    CHECK_CLOSE(loss_op(&d, SC_F64, &zv[0][0], 1, &zv[0][0], 4, 4, NULL, NULL, NULL), want, 1e-12, 1e-12);
    /* semi-hard: the most similar negative below the positive: x2j (0.70) */
    d.semi_hard = 1;
    want = log1p(exp(-sp)) + log1p(exp(n2));
    CHECK_CLOSE(loss_op(&d, SC_F64, &zv[0][0], 1, &zv[0][0], 4, 4, NULL, NULL, NULL), want, 1e-12, 1e-12);
    /* margin 0.1: hinges 0.63 - 0.77 + 0.1 < 0 and 0.70 - 0.77 + 0.1 = 0.03 -> mean 0.015 */
    sc_contrastive_desc m = {.kind = SC_CONTRASTIVE_MARGIN, .margin = 0.1};
    CHECK_CLOSE(loss_op(&m, SC_F64, &zv[0][0], 1, &zv[0][0], 4, 4, NULL, NULL, NULL), 0.015, 1e-12, 0);
    m.semi_hard = 1;
    CHECK_CLOSE(loss_op(&m, SC_F64, &zv[0][0], 1, &zv[0][0], 4, 4, NULL, NULL, NULL), 0.03, 1e-12, 0);
    /* anchor x1j (row 2): positive x1i 0.77, negatives x2i 0.67, x2j 0.64: semi-hard x2i */
    sc_contrastive_desc m2 = m;
    m2.row_offset = 2;
    m2.margin = 0.15; /* 0.67 - 0.77 + 0.15 = 0.05 */
    CHECK_CLOSE(loss_op(&m2, SC_F64, &zv[2][0], 1, &zv[0][0], 4, 4, NULL, NULL, NULL), 0.05, 1e-12, 0);
    /* anchor x2j (row 3): positive x2i 0.84 beats both negatives (0.70, 0.64): semi-hard x1i */
    m.margin = 0.2;
    sc_contrastive_desc m3 = m;
    m3.row_offset = 3;
    CHECK_CLOSE(loss_op(&m3, SC_F64, &zv[3][0], 1, &zv[0][0], 4, 4, NULL, NULL, NULL), 0.70 - 0.84 + 0.2, 1e-12, 0);
    /* no negative less similar than the positive: the least similar negative is used */
    double za[4][2] = {{1, 0}, {0.6, 0.8}, {0, 1}, {0.8, 0.6}}; /* anchor 0: pos (0,1) s 0, negs 0.6 and 0.8 */
    sc_contrastive_desc m4 = {.kind = SC_CONTRASTIVE_MARGIN, .margin = 0.1, .semi_hard = 1};
    CHECK_CLOSE(loss_op(&m4, SC_F64, &za[0][0], 1, &za[0][0], 4, 2, NULL, NULL, NULL), 0.6 - 0 + 0.1, 1e-12, 0);
}

/* Every loss against central finite differences in the general form: R local rows at a row
 * offset that crosses a pairing block, separate row and column inputs and gradients, raw
 * (unnormalised) inputs. */
static void test_gradients_general_form(void) {
    enum { C = 12, R = 5, D = 5 };
    const struct {
        sc_contrastive_kind kind;
        double tau, margin;
        int semi_hard;
    } cases[] = {{SC_CONTRASTIVE_NTXENT, 0.1, 0, 0},      {SC_CONTRASTIVE_NTXENT, 0.5, 0, 0},
                 {SC_CONTRASTIVE_NT_LOGISTIC, 0.2, 0, 0}, {SC_CONTRASTIVE_NT_LOGISTIC, 0.5, 0, 1},
                 {SC_CONTRASTIVE_MARGIN, 0, 0.5, 0},      {SC_CONTRASTIVE_MARGIN, 0, 0.8, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sc_contrastive_desc d = {.kind = cases[c].kind, .tau = cases[c].tau, .margin = cases[c].margin,
                                 .semi_hard = cases[c].semi_hard, .normalize = 1, .row_offset = 4, .pair_block = 6};
        double zr[R * D], zc[C * D], dr[R * D], dc[C * D], nr[R * D], nc[C * D];
        random_rows(zc, C, D, 0, 100 + (uint32_t)c);
        random_rows(zr, R, D, 0, 200 + (uint32_t)c);
        loss_op(&d, SC_F64, zr, R, zc, C, D, dr, dc, NULL);
        const double h = 1e-6;
        for (int which = 0; which < 2; which++) {
            double *x = which ? zc : zr, *num = which ? nc : nr;
            int n = which ? C * D : R * D;
            for (int i = 0; i < n; i++) {
                double keep = x[i];
                x[i] = keep + h;
                double up = loss_op(&d, SC_F64, zr, R, zc, C, D, NULL, NULL, NULL);
                x[i] = keep - h;
                double down = loss_op(&d, SC_F64, zr, R, zc, C, D, NULL, NULL, NULL);
                x[i] = keep;
                num[i] = (up - down) / (2 * h);
            }
        }
        char what[96];
        snprintf(what, sizeof what, "d_rows kind %d tau %g margin %g semi-hard %d", (int)d.kind, d.tau, d.margin,
                 d.semi_hard);
        sc_test_compare(what, dr, nr, R * D, 1e-7, 1e-6);
        snprintf(what, sizeof what, "d_cols kind %d tau %g margin %g semi-hard %d", (int)d.kind, d.tau, d.margin,
                 d.semi_hard);
        sc_test_compare(what, dc, nc, C * D, 1e-7, 1e-6);
    }
}

/* d loss / d z of the single matrix against central differences, for several N, D and tau. */
static void test_ntxent_gradient(void) {
    static const int cases[][2] = {{1, 3}, {2, 4}, {3, 5}, {8, 16}};
    static const double taus[] = {0.05, 0.1, 0.5, 1.0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t t = 0; t < sizeof taus / sizeof taus[0]; t++) {
            int rows = 2 * cases[c][0], dim = cases[c][1];
            double zv[16 * 16], dz[16 * 16], num[16 * 16];
            random_rows(zv, rows, dim, 1, (uint32_t)(c * 8 + t));
            sc_contrastive_desc d = sc_contrastive_ntxent(taus[t]);
            single(&d, zv, rows, dim, dz, NULL);
            const double h = 1e-6;
            for (int i = 0; i < rows * dim; i++) {
                double keep = zv[i];
                zv[i] = keep + h;
                double up = single(&d, zv, rows, dim, NULL, NULL);
                zv[i] = keep - h;
                double down = single(&d, zv, rows, dim, NULL, NULL);
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
    double zv[4][2] = {{1, 0}, {1, 0}, {1, 0}, {1, 0}}, acc;
    sc_contrastive_desc d = sc_contrastive_ntxent(1e-4);
    CHECK_CLOSE(single(&d, &zv[0][0], 4, 2, NULL, &acc), log(3.0), 1e-12, 0);
    CHECK(acc == 0.0); /* ties are not wins */
    /* positives aligned, negatives orthogonal: at tau 0.01 the loss is ~ 2 e^(-100) */
    double za[4][2] = {{1, 0}, {0, 1}, {1, 0}, {0, 1}};
    d.tau = 0.01;
    double loss = single(&d, &za[0][0], 4, 2, NULL, &acc);
    CHECK(isfinite(loss) && loss >= 0 && loss < 1e-40);
    CHECK(acc == 1.0);
}

/* Ranks' local rows against the gathered columns add up to the single matrix: the mean loss
 * is the R_r / C weighted sum of the local losses, and d loss / d z is the weighted sum of
 * every rank's column gradient plus the owner's row gradient (what the reduce-scatter sums). */
static void test_rows_vs_columns(void) {
    enum { C = 18, D = 7, BLOCK = 6 };
    static const int64_t split[] = {0, 4, 13, 18}; /* uneven, not aligned with pairing blocks */
    const sc_contrastive_desc kinds[] = {
        {.kind = SC_CONTRASTIVE_NTXENT, .tau = 0.1},
        {.kind = SC_CONTRASTIVE_NT_LOGISTIC, .tau = 0.3},
        {.kind = SC_CONTRASTIVE_NT_LOGISTIC, .tau = 0.3, .semi_hard = 1},
        {.kind = SC_CONTRASTIVE_MARGIN, .margin = 0.4},
        {.kind = SC_CONTRASTIVE_MARGIN, .margin = 0.4, .semi_hard = 1},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        double z[C * D], dz[C * D], sum[C * D] = {0}, dr[C * D], dc[C * D], acc, acc_sum = 0;
        random_rows(z, C, D, 0, 300 + (uint32_t)k);
        sc_contrastive_desc d = kinds[k];
        d.normalize = 1;
        d.pair_block = BLOCK;
        double want = single(&d, z, C, D, dz, &acc), got = 0;
        for (int r = 0; r < 3; r++) {
            int64_t off = split[r], rows = split[r + 1] - split[r];
            double w = (double)rows / C, a;
            d.row_offset = off;
            got += w * loss_op(&d, SC_F64, z + off * D, rows, z, C, D, dr, dc, &a);
            acc_sum += w * a;
            for (int64_t i = 0; i < C * D; i++) sum[i] += w * dc[i];
            for (int64_t i = 0; i < rows * D; i++) sum[off * D + i] += w * dr[i];
        }
        d.row_offset = 0;
        CHECK_CLOSE(got, want, 1e-13, 1e-12);
        CHECK_CLOSE(acc_sum, acc, 1e-12, 0);
        char what[64];
        snprintf(what, sizeof what, "rows x columns, kind %d semi-hard %d", (int)d.kind, d.semi_hard);
        sc_test_compare(what, sum, dz, C * D, 1e-14, 1e-11);
    }
}

/* Pairing blocks: W ranks' [view 1; view 2] blocks concatenated (pair_block 2B) are the
 * standard layout [all view 1; all view 2] (pair_block 0) in another row order. */
static void test_pair_blocks(void) {
    enum { W = 3, B = 4, N = W * B, D = 6 };
    double std_z[2 * N * D], blk_z[2 * N * D], dz_std[2 * N * D], dz_blk[2 * N * D];
    random_rows(std_z, 2 * N, D, 0, 400);
    int64_t where[2 * N]; /* standard row -> blocked row */
    for (int r = 0; r < W; r++)
        for (int j = 0; j < B; j++) {
            where[r * B + j] = 2 * B * r + j;
            where[N + r * B + j] = 2 * B * r + B + j;
        }
    for (int i = 0; i < 2 * N; i++) memcpy(blk_z + where[i] * D, std_z + i * D, D * sizeof(double));
    const sc_contrastive_desc kinds[] = {{.kind = SC_CONTRASTIVE_NTXENT, .tau = 0.2},
                                         {.kind = SC_CONTRASTIVE_NT_LOGISTIC, .tau = 0.2, .semi_hard = 1},
                                         {.kind = SC_CONTRASTIVE_MARGIN, .margin = 0.5}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        sc_contrastive_desc d = kinds[k];
        d.normalize = 1;
        double a1, a2, l1 = single(&d, std_z, 2 * N, D, dz_std, &a1);
        d.pair_block = 2 * B;
        double l2 = single(&d, blk_z, 2 * N, D, dz_blk, &a2);
        CHECK_CLOSE(l2, l1, 1e-13, 1e-12);
        CHECK(a1 == a2);
        double back[2 * N * D];
        for (int i = 0; i < 2 * N; i++) memcpy(back + i * D, dz_blk + where[i] * D, D * sizeof(double));
        sc_test_compare("pair blocks", back, dz_std, 2 * N * D, 1e-14, 1e-11);
    }
}

/* normalize = 1 gives exactly the bits of l2norm_fwd -> loss -> l2norm_bwd (the original
 * host sequence), so switching the host module to the fused op changed no result. */
static void test_fused_normalisation_bits(void) {
    enum { ROWS = 16, D = 9 };
    double zd[ROWS * D];
    random_rows(zd, ROWS, D, 0, 500);
    float z[ROWS * D], zn[ROWS * D], nrm[ROWS], dzn[ROWS * D], dz_ref[ROWS * D], dz[ROWS * D], l_ref, a_ref, l, a;
    for (int i = 0; i < ROWS * D; i++) z[i] = (float)zd[i];
    sc_tensor zt = sc_tensor_2d(z, SC_F32, ROWS, D), znt = sc_tensor_2d(zn, SC_F32, ROWS, D);
    sc_tensor nt = sc_tensor_1d(nrm, SC_F32, ROWS), dznt = sc_tensor_2d(dzn, SC_F32, ROWS, D);
    sc_tensor rt = sc_tensor_2d(dz_ref, SC_F32, ROWS, D), dzt = sc_tensor_2d(dz, SC_F32, ROWS, D);
    sc_tensor lrt = sc_tensor_1d(&l_ref, SC_F32, 1), art = sc_tensor_1d(&a_ref, SC_F32, 1);
    sc_tensor lt = sc_tensor_1d(&l, SC_F32, 1), at = sc_tensor_1d(&a, SC_F32, 1);
    sc_contrastive_desc d = sc_contrastive_ntxent(0.2);
    sc_op_l2norm_fwd(cpu(), &zt, &znt, &nt);
    sc_op_contrastive(cpu(), &d, &znt, &znt, &lrt, &art, &dznt, &dznt, NULL);
    sc_op_l2norm_bwd(cpu(), &znt, &nt, &dznt, &rt);
    d.normalize = 1;
    sc_op_contrastive(cpu(), &d, &zt, &zt, &lt, &at, &dzt, &dzt, NULL);
    CHECK(memcmp(&l, &l_ref, sizeof l) == 0 && memcmp(&a, &a_ref, sizeof a) == 0);
    CHECK(memcmp(dz, dz_ref, sizeof dz) == 0);

    /* the host module (sc_loss) runs the same op */
    sc_loss ls;
    CHECK(sc_loss_init(&ls, cpu(), &d, ROWS, D, SC_F32) == SC_OK);
    sc_tensor g;
    sc_loss_compute(&ls, &zt, &g);
    double lv, av;
    sc_loss_read(&ls, &lv, &av);
    CHECK((float)lv == l_ref && (float)av == a_ref);
    CHECK(memcmp(g.data, dz_ref, sizeof dz_ref) == 0);
    sc_loss_free(&ls);
}

/* ---- optimizer -------------------------------------------------------------------------- */

typedef struct {
    sc_param_table t;
    double w[64], g[64], v[64], v2[64];
    double sc[SC_OPTIM_NSCALARS];
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

/* `steps` calls with learning rate `rate` given through the scalars (use_schedule 0). */
static void run_steps(opt_fixture *f, const sc_optim_hparams *hp, double rate, int steps) {
    sc_tensor w = sc_tensor_1d(f->w, SC_F64, f->t.total), g = sc_tensor_1d(f->g, SC_F64, f->t.total);
    sc_tensor v = sc_tensor_1d(f->v, SC_F64, f->t.total), v2 = sc_tensor_1d(f->v2, SC_F64, f->t.total);
    sc_tensor s = sc_tensor_1d(f->sc, SC_F64, SC_OPTIM_NSCALARS);
    for (int i = 0; i < steps; i++) {
        f->sc[SC_OPTIM_LR] = rate;
        sc_op_optim_step(cpu(), hp, &f->t, &w, &g, &v, hp->kind == SC_OPTIM_ADAMW ? &v2 : NULL, &s);
    }
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
    /* the scalars: two steps, the caller's rate, ||g|| = sqrt(0.36 + 0.64 + 1 + 4 + 1 + 1) (BN
     * statistics excluded), nothing clipped or skipped */
    CHECK(f.sc[SC_OPTIM_STEP] == 2 && f.sc[SC_OPTIM_LR] == 2.0 && f.sc[SC_OPTIM_CLIP_COEF] == 1.0);
    CHECK(f.sc[SC_OPTIM_SKIPPED] == 0 && f.sc[SC_OPTIM_SKIP_COUNT] == 0);
    CHECK_CLOSE(f.sc[SC_OPTIM_GRAD_NORM], sqrt(8.0), 1e-15, 0);
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

static void test_adamw_hand_computed(void) {
    opt_fixture f;
    fixture(&f);
    sc_optim_hparams hp = {.kind = SC_OPTIM_ADAMW, .weight_decay = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    run_steps(&f, &hp, 0.1, 1);
    /* conv, w = 3, g = 0.6, step 1: w = 3 (1 - 0.1 * 0.01) = 2.997; m1 = 0.06, m2 = 0.00036;
     * bias-corrected 0.6 and 0.36: w -= 0.1 * 0.6 / (0.6 + 1e-8) */
    int64_t o = f.t.rows[0].offset;
    CHECK_CLOSE(f.w[o], 2.997 - 0.1 * 0.6 / (0.6 + 1e-8), 1e-14, 0);
    CHECK_CLOSE(f.v[o], 0.06, 1e-15, 0);
    CHECK_CLOSE(f.v2[o], 0.00036, 1e-17, 0);
    /* bias (no decay), w = 0.5, g = -2: w = 0.5 + 0.1 * 2 / (2 + 1e-8) */
    o = f.t.rows[1].offset;
    CHECK_CLOSE(f.w[o + 1], 0.5 + 0.1 * 2 / (2 + 1e-8), 1e-14, 0);
    /* step 2 on conv[0]: m1 = 0.9 * 0.06 + 0.1 * 0.6 = 0.114, m2 = 0.999 * 0.00036 + 0.001 * 0.36,
     * step size 0.1 / (1 - 0.81), denominator sqrt(m2) / sqrt(1 - 0.998001) + 1e-8 */
    double w1 = 2.997 - 0.1 * 0.6 / (0.6 + 1e-8);
    run_steps(&f, &hp, 0.1, 1);
    double m2 = 0.999 * 0.00036 + 0.001 * 0.36;
    double want = w1 * (1 - 0.001) - 0.1 / (1 - 0.81) * 0.114 / (sqrt(m2) / sqrt(1 - 0.998001) + 1e-8);
    CHECK_CLOSE(f.w[f.t.rows[0].offset], want, 1e-13, 0);
    CHECK(f.w[f.t.rows[2].offset] == 7 && f.v2[f.t.rows[2].offset] == 0);
    sc_params_free(&f.t);
}

/* Global gradient-norm clipping: ||g|| = sqrt(8) scaled to 1, reported before clipping. */
static void test_clipping(void) {
    opt_fixture f;
    fixture(&f);
    sc_optim_hparams hp = {.kind = SC_OPTIM_SGD, .clip_grad_norm = 1.0};
    run_steps(&f, &hp, 1.0, 1);
    double c = 1.0 / (sqrt(8.0) + 1e-6);
    CHECK_CLOSE(f.sc[SC_OPTIM_GRAD_NORM], sqrt(8.0), 1e-15, 0);
    CHECK_CLOSE(f.sc[SC_OPTIM_CLIP_COEF], c, 1e-15, 0);
    int64_t o = f.t.rows[0].offset; /* w = 3 - c * 0.6 */
    CHECK_CLOSE(f.w[o], 3 - c * 0.6, 1e-14, 0);
    o = f.t.rows[1].offset; /* w = 0.5 + 2 c */
    CHECK_CLOSE(f.w[o + 1], 0.5 + 2 * c, 1e-14, 0);
    /* a norm below the threshold is left alone */
    fixture(&f);
    hp.clip_grad_norm = 10.0;
    run_steps(&f, &hp, 1.0, 1);
    CHECK(f.sc[SC_OPTIM_CLIP_COEF] == 1.0 && f.w[f.t.rows[0].offset] == 3 - 0.6);
    sc_params_free(&f.t);
}

/* A NaN or Inf gradient skips the step: weights and state keep their bits, the step is
 * counted, the counter advances; the next finite step goes through. */
static void test_nonfinite_skip(void) {
    static const sc_optim_kind kinds[] = {SC_OPTIM_LARS, SC_OPTIM_SGD, SC_OPTIM_ADAMW};
    for (int k = 0; k < 3; k++)
        for (int inf = 0; inf < 2; inf++) {
            opt_fixture f;
            fixture(&f);
            sc_optim_hparams hp = {.kind = kinds[k], .momentum = 0.9, .weight_decay = 0.1, .trust_coef = 0.001,
                                   .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
            run_steps(&f, &hp, 0.5, 1);
            double w[64], v[64], v2[64];
            memcpy(w, f.w, sizeof w);
            memcpy(v, f.v, sizeof v);
            memcpy(v2, f.v2, sizeof v2);
            f.g[f.t.rows[1].offset + 1] = inf ? -INFINITY : NAN;
            run_steps(&f, &hp, 0.5, 1);
            CHECK(memcmp(w, f.w, sizeof w) == 0 && memcmp(v, f.v, sizeof v) == 0 && memcmp(v2, f.v2, sizeof v2) == 0);
            CHECK(f.sc[SC_OPTIM_SKIPPED] == 1 && f.sc[SC_OPTIM_SKIP_COUNT] == 1 && f.sc[SC_OPTIM_STEP] == 2);
            CHECK(!isfinite(f.sc[SC_OPTIM_GRAD_NORM]));
            f.g[f.t.rows[1].offset + 1] = -2;
            run_steps(&f, &hp, 0.5, 1);
            CHECK(f.sc[SC_OPTIM_SKIPPED] == 0 && f.sc[SC_OPTIM_SKIP_COUNT] == 1 && f.sc[SC_OPTIM_STEP] == 3);
            CHECK(memcmp(w, f.w, sizeof w) != 0);
            sc_params_free(&f.t);
        }
}

/* use_schedule: the op evaluates warmup + cosine from its own step counter. */
static void test_schedule_on_backend(void) {
    opt_fixture f;
    fixture(&f);
    sc_optim_hparams hp = {.kind = SC_OPTIM_SGD, .use_schedule = 1,
                           .schedule = {.peak_lr = 4.8, .warmup_steps = 10, .total_steps = 110}};
    static const struct {
        int64_t step;
        double lr;
    } at[] = {{0, 0.0}, {5, 2.4}, {10, 4.8}, {35, 4.097056274847714}, {60, 2.4}, {110, 0.0}};
    sc_tensor w = sc_tensor_1d(f.w, SC_F64, f.t.total), g = sc_tensor_1d(f.g, SC_F64, f.t.total);
    sc_tensor v = sc_tensor_1d(f.v, SC_F64, f.t.total), s = sc_tensor_1d(f.sc, SC_F64, SC_OPTIM_NSCALARS);
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        f.sc[SC_OPTIM_STEP] = (double)at[i].step;
        sc_op_optim_step(cpu(), &hp, &f.t, &w, &g, &v, NULL, &s);
        CHECK_CLOSE(f.sc[SC_OPTIM_LR], at[i].lr, 1e-12, 0);
        CHECK(f.sc[SC_OPTIM_STEP] == (double)(at[i].step + 1));
    }
    /* F32 parameters use the rate rounded to float */
    float wf[64] = {0}, gf[64] = {0}, vf[64] = {0};
    sc_tensor w32 = sc_tensor_1d(wf, SC_F32, f.t.total), g32 = sc_tensor_1d(gf, SC_F32, f.t.total);
    sc_tensor v32 = sc_tensor_1d(vf, SC_F32, f.t.total);
    f.sc[SC_OPTIM_STEP] = 35;
    sc_op_optim_step(cpu(), &hp, &f.t, &w32, &g32, &v32, NULL, &s);
    CHECK(f.sc[SC_OPTIM_LR] == (double)(float)4.097056274847714);
    sc_params_free(&f.t);
}

/* The driver writes the backend counter only on a discontinuity and reads the scalars back. */
static void test_optimizer_driver(void) {
    opt_fixture f;
    fixture(&f);
    sc_optimizer opt;
    sc_schedule sched = {.peak_lr = 1.0, .warmup_steps = 4, .total_steps = 100};
    sc_optim_hparams hp = {.kind = SC_OPTIM_SGD, .momentum = 0.9};
    CHECK(sc_optimizer_init(&opt, cpu(), &hp, &sched, f.t.total, SC_F64) == SC_OK);
    sc_tensor w = sc_tensor_1d(f.w, SC_F64, f.t.total), g = sc_tensor_1d(f.g, SC_F64, f.t.total);
    sc_tensor v = sc_tensor_1d(f.v, SC_F64, f.t.total);
    sc_optim_report r;
    for (int64_t step = 0; step < 3; step++) {
        sc_optimizer_step(&opt, &f.t, &w, &g, &v, step);
        sc_optimizer_read(&opt, &r);
        CHECK_CLOSE(r.lr, 0.25 * (double)step, 1e-15, 0);
        CHECK(r.lr == opt.last_lr && !r.skipped && r.skipped_total == 0);
    }
    sc_optimizer_step(&opt, &f.t, &w, &g, &v, 2); /* a resume at step 2 rewinds the counter */
    sc_optimizer_read(&opt, &r);
    CHECK_CLOSE(r.lr, 0.5, 1e-15, 0);
    CHECK_CLOSE(r.grad_norm, sqrt(8.0), 1e-15, 0);
    sc_optimizer_free(&opt);
    /* AdamW keeps its second moment in the optimizer */
    hp.kind = SC_OPTIM_ADAMW;
    hp.beta1 = 0.9;
    hp.beta2 = 0.999;
    hp.eps = 1e-8;
    CHECK(sc_optimizer_init(&opt, cpu(), &hp, &sched, f.t.total, SC_F64) == SC_OK);
    CHECK(opt.second_moment.data != NULL && opt.second_moment.shape[0] == f.t.total);
    sc_optimizer_step(&opt, &f.t, &w, &g, &v, 4);
    CHECK_CLOSE(((double *)opt.second_moment.data)[f.t.rows[0].offset], 0.001 * 0.36, 1e-17, 0);
    sc_optimizer_free(&opt);
    sc_params_free(&f.t);
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
    double sc[SC_OPTIM_NSCALARS] = {[SC_OPTIM_LR] = 2.0};
    sc_tensor wt = sc_tensor_1d(w, SC_F32, f.t.total), gt = sc_tensor_1d(g, SC_F32, f.t.total);
    sc_tensor vt = sc_tensor_1d(v, SC_F32, f.t.total), st = sc_tensor_1d(sc, SC_F64, SC_OPTIM_NSCALARS);
    for (int s = 0; s < 2; s++) sc_op_optim_step(cpu(), &hp, &f.t, &wt, &gt, &vt, NULL, &st);
    run_steps(&f, &hp, 2.0, 2);
    for (int i = 0; i < (int)f.t.total; i++) CHECK_CLOSE(w[i], f.w[i], 1e-6, 1e-6);
    sc_params_free(&f.t);
}

/* The same bits for 1 and 2 threads, on many tensors of odd sizes with clipping. */
static void test_optim_threads(void) {
    sc_param_table t;
    sc_params_init_table(&t);
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d.weight", i);
        int64_t n[1] = {1 + 37 * i};
        sc_params_add(&t, name, 1, n, i % 5 == 0 ? SC_PARAM_NO_WD | SC_PARAM_NO_LARS : 0, SC_INIT_ZEROS, 0, 0);
    }
    float *buf[2][3];
    sc_rng r = sc_rng_make(3, 0, 0, 0, SC_RNG_TEST);
    for (int b = 0; b < 3; b++) {
        buf[0][b] = malloc((size_t)t.total * sizeof(float));
        buf[1][b] = malloc((size_t)t.total * sizeof(float));
        for (int64_t i = 0; i < t.total; i++) buf[0][b][i] = buf[1][b][i] = b == 2 ? 0.0f : sc_rng_range(&r, -1, 1);
    }
    sc_optim_hparams hp = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 1e-4, .trust_coef = 1e-3,
                           .clip_grad_norm = 2.0};
    for (int k = 0; k < 2; k++) {
        sc_backend *be;
        sc_backend_options o = {.threads = 1 + k};
        CHECK(sc_backend_create("cpu", &o, &be) == SC_OK);
        double sc[SC_OPTIM_NSCALARS] = {[SC_OPTIM_LR] = 0.3};
        sc_tensor w = sc_tensor_1d(buf[k][0], SC_F32, t.total), g = sc_tensor_1d(buf[k][1], SC_F32, t.total);
        sc_tensor v = sc_tensor_1d(buf[k][2], SC_F32, t.total), s = sc_tensor_1d(sc, SC_F64, SC_OPTIM_NSCALARS);
        for (int i = 0; i < 3; i++) sc_op_optim_step(be, &hp, &t, &w, &g, &v, NULL, &s);
        sc_backend_destroy(be);
    }
    CHECK(memcmp(buf[0][0], buf[1][0], (size_t)t.total * sizeof(float)) == 0);
    CHECK(memcmp(buf[0][2], buf[1][2], (size_t)t.total * sizeof(float)) == 0);
    for (int b = 0; b < 3; b++) {
        free(buf[0][b]);
        free(buf[1][b]);
    }
    sc_params_free(&t);
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
    SC_RUN(test_other_losses_hand_computed);
    SC_RUN(test_ntxent_gradient);
    SC_RUN(test_gradients_general_form);
    SC_RUN(test_ntxent_stability_and_accuracy);
    SC_RUN(test_rows_vs_columns);
    SC_RUN(test_pair_blocks);
    SC_RUN(test_fused_normalisation_bits);
    SC_RUN(test_lars_hand_computed);
    SC_RUN(test_sgd_hand_computed);
    SC_RUN(test_adamw_hand_computed);
    SC_RUN(test_clipping);
    SC_RUN(test_nonfinite_skip);
    SC_RUN(test_schedule_on_backend);
    SC_RUN(test_optimizer_driver);
    SC_RUN(test_lars_f32_matches_f64);
    SC_RUN(test_optim_threads);
    SC_RUN(test_schedule);
    return sc_test_summary();
}
