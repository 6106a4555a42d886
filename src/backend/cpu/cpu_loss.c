/*
 * cpu_loss.c - the reference contrastive losses on the CPU: the specification every backend
 * follows (the layout of rows, columns and positives is described in backend.h).
 *
 * Local anchor rows u_i (i < R) are columns self(i) = row_offset + i of v [C, D]; the anchor's
 * positive is column pos(i) = sc_contrastive_positive(self(i), pair_block); its negatives N_i
 * are the C - 2 other columns. With s_ik = u_i . v_k (unit vectors):
 *
 *   NT-Xent      loss_i = logsumexp_{k != self(i)} (s_ik / tau) - s_i,pos / tau   (max-subtracted)
 *   NT-Logistic  loss_i = softplus(-s_i,pos / tau) + mean_{k in K_i} softplus(s_ik / tau)
 *   Margin       loss_i = mean_{k in K_i} max(0, s_ik - s_i,pos + margin)
 *   L = (1 / R) sum_i loss_i        (the paper's L for the single matrix; [G] reports 2L)
 *
 * where softplus(x) = log(1 + e^x) = -log sigmoid(-x), K_i = N_i, or with semi_hard the single
 * semi-hard negative of FaceNet / TensorFlow's triplet_semihard_loss in similarity terms: the
 * most similar negative that is less similar than the positive, else (none is) the least
 * similar negative; ties go to the lowest column index. An empty K_i (C = 2) contributes 0.
 * Accuracy counts anchors whose positive is strictly more similar than every negative.
 *
 * Gradient: with G_ik = (1 / R) d loss_i / d s_ik (for NT-Xent (p_ik - [k = pos]) / (R tau),
 * p the softmax of row i over k != self(i)), d L / d u = G v and d L / d v = G^T u. For the
 * single matrix both land on z: dz = (G + G^T) z. With `normalize`, rows and columns are
 * first L2-normalised with the l2norm op, and the gradients go back through its backward,
 * so the result is bit-identical to calling l2norm_fwd, the loss and l2norm_bwd in turn.
 *
 * The reference materialises the R x C similarity matrix (fine at CPU batch sizes); the fused
 * CUDA kernel never does.
 *
 * Softmax cross-entropy (the fine-tuning loss) on logits l [N, K] and labels y:
 *
 *   loss = (1/N) sum_i (logsumexp_k l_ik - l_{i,y_i}),   d loss / d l_ik = (p_ik - [k = y_i]) / N
 *
 * with p the row softmax; accuracy counts rows whose FIRST maximum is at the label.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <cblas.h>

#include "cpu_ops.h"

/* log(1 + e^x) without overflow. */
static double sc_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sc_sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

#define T float
#define TFN(name) name##_f32
#define GEMM cblas_sgemm
#include "cpu_loss.inc"
#undef T
#undef TFN
#undef GEMM

#define T double
#define TFN(name) name##_f64
#define GEMM cblas_dgemm
#include "cpu_loss.inc"
#undef T
#undef TFN
#undef GEMM

size_t sc_cpu_contrastive_workspace(sc_backend *be, const sc_contrastive_desc *d, int64_t rows, int64_t cols,
                                    int64_t dim, sc_dtype dt) {
    (void)be, (void)d, (void)rows, (void)cols, (void)dim, (void)dt;
    return 0; /* the reference allocates its R x C matrix itself */
}

/* A host buffer shaped like `like` with `rows` rows (a temporary of the normalisation). */
static sc_tensor temp_rows(const sc_tensor *like, int64_t rows) {
    void *p = malloc((size_t)(rows * like->shape[1]) * sc_dtype_size(like->dtype));
    SC_CHECK(p != NULL, "contrastive loss: out of memory");
    return sc_tensor_2d(p, like->dtype, rows, like->shape[1]);
}

static sc_tensor temp_vec(const sc_tensor *like, int64_t n) {
    void *p = malloc((size_t)n * sc_dtype_size(like->dtype));
    SC_CHECK(p != NULL, "contrastive loss: out of memory");
    return sc_tensor_1d(p, like->dtype, n);
}

void sc_cpu_contrastive(sc_backend *be, const sc_contrastive_desc *d, const sc_tensor *z_rows,
                        const sc_tensor *z_cols, sc_tensor *loss, sc_tensor *accuracy, sc_tensor *d_rows,
                        sc_tensor *d_cols, sc_tensor *ws) {
    (void)ws;
    const int64_t rows = z_rows->shape[0], cols = z_cols->shape[0], dim = z_rows->shape[1];
    const int same = z_rows->data == z_cols->data && d->row_offset == 0; /* rows are the first columns */
    const int combined = d_rows && d_cols && d_rows->data == d_cols->data;
    /* u, v: the unit vectors the loss sees; du, dv: gradients with respect to them */
    sc_tensor u = *z_rows, v = *z_cols, un = {0}, vn = {0}, rnorm = {0}, cnorm = {0}, du = {0}, dv = {0};
    if (d->normalize) {
        vn = temp_rows(z_cols, cols);
        cnorm = temp_vec(z_cols, cols);
        sc_cpu_l2norm_fwd(be, z_cols, &vn, &cnorm);
        v = vn;
        if (same) {
            u = sc_tensor_slice0(&vn, 0, rows);
        } else {
            un = temp_rows(z_rows, rows);
            rnorm = temp_vec(z_rows, rows);
            sc_cpu_l2norm_fwd(be, z_rows, &un, &rnorm);
            u = un;
        }
    }
    if (d_rows) {
        du = d->normalize ? temp_rows(z_rows, rows) : *d_rows;
        dv = combined ? du : d->normalize ? temp_rows(z_cols, cols) : *d_cols;
    }
    double l, a;
    if (z_rows->dtype == SC_F32) {
        contrastive_f32(d, u.data, rows, v.data, cols, dim, &l, &a, du.data, dv.data);
        *(float *)loss->data = (float)l;
        if (accuracy) *(float *)accuracy->data = (float)a;
    } else {
        contrastive_f64(d, u.data, rows, v.data, cols, dim, &l, &a, du.data, dv.data);
        *(double *)loss->data = l;
        if (accuracy) *(double *)accuracy->data = a;
    }
    if (d_rows && d->normalize) {
        sc_tensor rn = same ? sc_tensor_slice0(&cnorm, 0, rows) : rnorm;
        sc_cpu_l2norm_bwd(be, &u, &rn, &du, d_rows);
        if (!combined) sc_cpu_l2norm_bwd(be, &v, &cnorm, &dv, d_cols);
        free(du.data);
        if (!combined) free(dv.data);
    }
    free(un.data);
    free(vn.data);
    free(rnorm.data);
    free(cnorm.data);
}

void sc_cpu_softmax_xent(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels,
                         sc_tensor *loss, sc_tensor *accuracy, sc_tensor *dlogits) {
    (void)be;
    int64_t n = logits->shape[0], k = logits->shape[1];
    double l, a;
    void *dl = dlogits ? dlogits->data : NULL;
    if (logits->dtype == SC_F32) {
        softmax_xent_f32(logits->data, labels->data, n, k, &l, &a, dl);
        *(float *)loss->data = (float)l;
        if (accuracy) *(float *)accuracy->data = (float)a;
    } else {
        softmax_xent_f64(logits->data, labels->data, n, k, &l, &a, dl);
        *(double *)loss->data = l;
        if (accuracy) *(double *)accuracy->data = a;
    }
}
