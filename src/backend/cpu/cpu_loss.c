/*
 * cpu_loss.c - reference NT-Xent (the SimCLR contrastive loss) on the CPU.
 *
 * z is [2N, D], L2-normalised; row i's positive is row (i + N) mod 2N. With logits
 * l_ik = z_i . z_k / tau for k != i (the diagonal is masked out):
 *
 *   loss_i = logsumexp_{k != i} l_ik - l_{i,pos(i)}        (max-subtracted)
 *   L      = (1 / 2N) * sum_i loss_i                       (the paper's L; [G] reports 2L)
 *
 * Gradient: with p_ik the softmax of row i over k != i and G_ik = (p_ik - [k = pos(i)]) / 2N,
 * dL/dl_ik = G_ik, and since l_ik depends on both z_i and z_k,
 *
 *   dz = (G + G^T) z / tau.
 *
 * The reference materialises the [2N, 2N] similarity matrix (fine at CPU batch sizes); the
 * fused CUDA kernel never does. Accuracy counts anchors whose positive logit is strictly
 * greater than every negative logit.
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

void sc_cpu_ntxent(sc_backend *be, const sc_tensor *z, double tau, sc_tensor *loss,
                   sc_tensor *accuracy, sc_tensor *dz) {
    (void)be;
    int64_t rows = z->shape[0], dim = z->shape[1];
    double l, a;
    if (z->dtype == SC_F32) {
        ntxent_f32(z->data, rows, dim, tau, &l, &a, dz ? dz->data : NULL);
        *(float *)loss->data = (float)l;
        if (accuracy) *(float *)accuracy->data = (float)a;
    } else {
        ntxent_f64(z->data, rows, dim, tau, &l, &a, dz ? dz->data : NULL);
        *(double *)loss->data = l;
        if (accuracy) *(double *)accuracy->data = a;
    }
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
