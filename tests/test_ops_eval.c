/*
 * test_ops_eval.c - the backend ops added for evaluation and monitoring, on the CPU:
 * softmax cross-entropy (F64 against central finite differences and a naive loss, F32 against
 * F64) and the weighted kNN vote (against a brute-force sort of all similarities, with ties, k = N, F32,
 * bit-identical for 1..3 threads).
 */
#include "ops_test_util.h"

static sc_backend *g_be; /* 2 threads */

/* ---- softmax cross-entropy ---------------------------------------------------------------- */

typedef struct xent_ctx {
    double *logits;
    int32_t *labels;
    int64_t n, k;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    double loss;
    sc_tensor l = sc_tensor_2d(c->logits, SC_F64, c->n, c->k), y = sc_tensor_1d(c->labels, SC_I32, c->n);
    sc_tensor out = sc_tensor_1d(&loss, SC_F64, 1);
    sc_op_softmax_xent(g_be, &l, &y, &out, NULL, NULL);
    return loss;
}

/* mean_i -log softmax(l_i)[y_i], computed the long way. */
static double naive_xent(const double *l, const int32_t *y, int64_t n, int64_t k, double *acc) {
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        double z = 0.0;
        int64_t best = 0;
        for (int64_t c = 0; c < k; c++) {
            z += exp(l[i * k + c]);
            if (l[i * k + c] > l[i * k + best]) best = c;
        }
        total += -log(exp(l[i * k + y[i]]) / z);
        correct += best == y[i];
    }
    *acc = (double)correct / (double)n;
    return total / (double)n;
}

static void xent_case(int64_t n, int64_t k, double scale) {
    char what[96];
    xent_ctx c = {.logits = buf_randn((size_t)(n * k), (uint64_t)(n * 31 + k), 0.0, scale), .n = n, .k = k};
    c.labels = buf_bytes((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) c.labels[i] = (int32_t)((i * 7 + 3) % k);
    double loss = NAN, acc = NAN, *dl = buf_nan((size_t)(n * k));
    sc_tensor l = sc_tensor_2d(c.logits, SC_F64, n, k), y = sc_tensor_1d(c.labels, SC_I32, n);
    sc_tensor tl = sc_tensor_1d(&loss, SC_F64, 1), ta = sc_tensor_1d(&acc, SC_F64, 1), tdl = sc_tensor_2d(dl, SC_F64, n, k);
    sc_op_softmax_xent(g_be, &l, &y, &tl, &ta, &tdl);
    double want_acc, want = naive_xent(c.logits, c.labels, n, k, &want_acc);
    CHECK_CLOSE(loss, want, 1e-12, 1e-12);
    CHECK(acc == want_acc);
    snprintf(what, sizeof what, "softmax_xent d logits n%lld k%lld scale %g", (long long)n, (long long)k, scale);
    fd_check(what, c.logits, (size_t)(n * k), dl, xent_loss, &c, 1e-7);
    /* each row of dlogits sums to 0 */
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < k; j++) s += dl[i * k + j];
        worst = fmax(worst, fabs(s));
    }
    CHECKF(worst < 1e-15, "row sums of dlogits reach %g", worst);

    /* F32 against F64 */
    float *l32 = buf_to_f32(c.logits, (size_t)(n * k)), *dl32 = buf_nan_f32((size_t)(n * k));
    float loss32 = NAN, acc32 = NAN;
    sc_tensor l32t = sc_tensor_2d(l32, SC_F32, n, k), tl32 = sc_tensor_1d(&loss32, SC_F32, 1),
              ta32 = sc_tensor_1d(&acc32, SC_F32, 1), tdl32 = sc_tensor_2d(dl32, SC_F32, n, k);
    sc_op_softmax_xent(g_be, &l32t, &y, &tl32, &ta32, &tdl32);
    double *l32back = buf_to_f64(l32, (size_t)(n * k));
    double want32acc, want32 = naive_xent(l32back, c.labels, n, k, &want32acc);
    CHECK_CLOSE(loss32, want32, 1e-6, 1e-6);
    CHECK(acc32 == (float)want32acc);
    sc_test_compare("softmax_xent F32 dlogits", buf_to_f64(dl32, (size_t)(n * k)), dl, (long)(n * k), 1e-6 / (double)n, 1e-4);
}

static void test_softmax_xent(void) {
    xent_case(1, 2, 1.0);
    xent_case(7, 10, 1.0);
    xent_case(33, 5, 4.0);
    xent_case(16, 100, 0.5);
    bufs_release();
}

/* Large logits: the max-subtracted log-sum-exp stays finite and exact. */
static void test_softmax_xent_large_logits(void) {
    double l[6] = {1000.0, 0.0, -1000.0, 0.0, 1000.0, 999.0}, loss, acc, dl[6];
    int32_t y[2] = {0, 2};
    sc_tensor tl = sc_tensor_2d(l, SC_F64, 2, 3), ty = sc_tensor_1d(y, SC_I32, 2), to = sc_tensor_1d(&loss, SC_F64, 1),
              ta = sc_tensor_1d(&acc, SC_F64, 1), td = sc_tensor_2d(dl, SC_F64, 2, 3);
    sc_op_softmax_xent(g_be, &tl, &ty, &to, &ta, &td);
    /* row 0: loss ~ 0; row 1: log(1 + e) - (999 - 1000) ... = lse(1000, 999) - 999 */
    double row1 = 1000.0 + log(1.0 + exp(-1.0)) - 999.0;
    CHECK_CLOSE(loss, row1 / 2.0, 1e-12, 1e-12);
    CHECK(acc == 0.5);
    CHECK(isfinite(dl[0]) && isfinite(dl[5]));
}

/* ---- kNN vote --------------------------------------------------------------------------- */

static void normalise_rows(double *x, int64_t n, int64_t f) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < f; j++) s += x[i * f + j] * x[i * f + j];
        s = sqrt(s);
        for (int64_t j = 0; j < f; j++) x[i * f + j] /= s;
    }
}

/* Every similarity, sorted (descending similarity, ascending index), first k vote. */
static void naive_knn(const double *q, const double *bank, const int32_t *labels, int64_t nq, int64_t n, int64_t f,
                      int64_t c, int k, double t, double *scores) {
    double *s = malloc((size_t)n * sizeof *s);
    int64_t *order = malloc((size_t)n * sizeof *order);
    for (int64_t i = 0; i < nq; i++) {
        for (int64_t j = 0; j < n; j++) {
            s[j] = 0.0;
            for (int64_t d = 0; d < f; d++) s[j] += q[i * f + d] * bank[j * f + d];
            order[j] = j;
        }
        for (int64_t a = 1; a < n; a++) { /* insertion sort: stable, by descending s */
            int64_t v = order[a], b = a;
            while (b > 0 && s[order[b - 1]] < s[v]) {
                order[b] = order[b - 1];
                b--;
            }
            order[b] = v;
        }
        for (int64_t cl = 0; cl < c; cl++) scores[i * c + cl] = 0.0;
        for (int j = 0; j < k; j++) scores[i * c + labels[order[j]]] += exp(s[order[j]] / t);
    }
    free(s);
    free(order);
}

static void knn_case(int64_t nq, int64_t n, int64_t f, int64_t c, int k) {
    char what[96];
    double *q = buf_randn((size_t)(nq * f), (uint64_t)(nq + 7 * n), 0.0, 1.0);
    double *bank = buf_randn((size_t)(n * f), (uint64_t)(n + 11 * f), 0.0, 1.0);
    normalise_rows(q, nq, f);
    normalise_rows(bank, n, f);
    int32_t *labels = buf_bytes((size_t)n * sizeof(int32_t));
    for (int64_t j = 0; j < n; j++) labels[j] = (int32_t)((j * 13 + 5) % c);
    double *got = buf_nan((size_t)(nq * c)), *want = buf_nan((size_t)(nq * c));
    sc_tensor tq = sc_tensor_2d(q, SC_F64, nq, f), tb = sc_tensor_2d(bank, SC_F64, n, f),
              tl = sc_tensor_1d(labels, SC_I32, n), ts = sc_tensor_2d(got, SC_F64, nq, c);
    sc_op_knn_scores(g_be, &tq, &tb, &tl, k, 0.1, &ts);
    naive_knn(q, bank, labels, nq, n, f, c, k, 0.1, want);
    snprintf(what, sizeof what, "knn F64 q%lld n%lld f%lld c%lld k%d", (long long)nq, (long long)n, (long long)f,
             (long long)c, k);
    sc_test_compare(what, got, want, (long)(nq * c), 1e-12, 1e-12);

    /* F32: same neighbours up to rounding of the similarities, bit-identical for 1..3 threads */
    float *q32 = buf_to_f32(q, (size_t)(nq * f)), *b32 = buf_to_f32(bank, (size_t)(n * f));
    float *s32[3];
    sc_tensor tq32 = sc_tensor_2d(q32, SC_F32, nq, f), tb32 = sc_tensor_2d(b32, SC_F32, n, f);
    for (int th = 1; th <= 3; th++) {
        s32[th - 1] = buf_nan_f32((size_t)(nq * c));
        sc_tensor o = sc_tensor_2d(s32[th - 1], SC_F32, nq, c);
        sc_backend *be = backend_with_threads(th);
        sc_op_knn_scores(be, &tq32, &tb32, &tl, k, 0.1, &o);
        sc_backend_destroy(be);
    }
    CHECK(memcmp(s32[0], s32[1], (size_t)(nq * c) * sizeof(float)) == 0);
    CHECK(memcmp(s32[0], s32[2], (size_t)(nq * c) * sizeof(float)) == 0);
    snprintf(what, sizeof what, "knn F32 q%lld n%lld k%d", (long long)nq, (long long)n, k);
    sc_test_compare(what, buf_to_f64(s32[0], (size_t)(nq * c)), want, (long)(nq * c), 1e-3, 1e-4);
}

static void test_knn(void) {
    knn_case(5, 40, 8, 3, 1);
    knn_case(70, 300, 16, 10, 20);
    knn_case(130, 2500, 12, 7, 200); /* several query blocks and bank chunks */
    knn_case(3, 9, 4, 2, 9);         /* k = N: every bank row votes */
    bufs_release();
}

/* Equal similarities: the lower bank index wins the last place. */
static void test_knn_ties(void) {
    /* bank rows 0..3 are the same unit vector; query equals it; k = 2 keeps rows 0 and 1 */
    double bank[8] = {1, 0, 1, 0, 1, 0, 1, 0}, q[2] = {1, 0}, scores[4];
    int32_t labels[4] = {0, 1, 2, 3};
    sc_tensor tq = sc_tensor_2d(q, SC_F64, 1, 2), tb = sc_tensor_2d(bank, SC_F64, 4, 2),
              tl = sc_tensor_1d(labels, SC_I32, 4), ts = sc_tensor_2d(scores, SC_F64, 1, 4);
    sc_op_knn_scores(g_be, &tq, &tb, &tl, 2, 0.5, &ts);
    CHECK_CLOSE(scores[0], exp(2.0), 0, 1e-15);
    CHECK_CLOSE(scores[1], exp(2.0), 0, 1e-15);
    CHECK(scores[2] == 0.0 && scores[3] == 0.0);
}

int main(void) {
    g_be = backend_with_threads(2);
    SC_RUN(test_softmax_xent);
    SC_RUN(test_softmax_xent_large_logits);
    SC_RUN(test_knn);
    SC_RUN(test_knn_ties);
    sc_backend_destroy(g_be);
    return sc_test_summary();
}
