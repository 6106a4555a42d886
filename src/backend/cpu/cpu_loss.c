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
 */
#include <math.h>
#include <stdlib.h>

#include <cblas.h>

#include "cpu_ops.h"

#define DEFINE_NTXENT(T, GEMM, SUFFIX)                                                          \
    static void ntxent_##SUFFIX(const T *restrict z, int64_t rows, int64_t dim, double tau,     \
                                double *loss_out, double *acc_out, T *restrict dz) {            \
        int64_t n = rows / 2;                                                                   \
        /* logits[i, k] = z_i . z_k / tau: [2N, 2N] */                                          \
        T *logits = malloc((size_t)(rows * rows) * sizeof(T));                                  \
        SC_CHECK(logits != NULL, "ntxent: out of memory for %lld x %lld logits",                \
                 (long long)rows, (long long)rows);                                             \
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)rows, (int)dim,           \
             (T)(1.0 / tau), z, (int)dim, z, (int)dim, (T)0, logits, (int)rows);                \
        double total = 0.0;                                                                     \
        int64_t correct = 0;                                                                    \
        for (int64_t i = 0; i < rows; i++) {                                                    \
            T *row = logits + i * rows;                                                         \
            int64_t pos = (i + n) % rows;                                                       \
            double mx = -INFINITY;                                                              \
            int first = 1;                                                                      \
            for (int64_t k = 0; k < rows; k++) {                                                \
                if (k == i) continue;                                                           \
                if (row[k] > mx) mx = row[k];                                                   \
                if (k != pos && row[k] >= row[pos]) first = 0;                                  \
            }                                                                                   \
            double sum = 0.0;                                                                   \
            for (int64_t k = 0; k < rows; k++)                                                  \
                if (k != i) sum += exp((double)row[k] - mx);                                    \
            double lse = mx + log(sum);                                                         \
            total += lse - (double)row[pos];                                                    \
            correct += first;                                                                   \
            if (dz) {                                                                           \
                /* overwrite the row with G_ik = (p_ik - [k = pos]) / 2N */                     \
                for (int64_t k = 0; k < rows; k++) {                                            \
                    double g = k == i ? 0.0 : exp((double)row[k] - lse);                        \
                    if (k == pos) g -= 1.0;                                                     \
                    row[k] = (T)(g / (double)rows);                                             \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        *loss_out = total / (double)rows;                                                       \
        *acc_out = (double)correct / (double)rows;                                              \
        if (dz) {                                                                               \
            /* symmetrise in place: S = G + G^T, [2N, 2N] */                                    \
            for (int64_t i = 0; i < rows; i++)                                                  \
                for (int64_t k = i + 1; k < rows; k++) {                                        \
                    T s = logits[i * rows + k] + logits[k * rows + i];                          \
                    logits[i * rows + k] = s;                                                   \
                    logits[k * rows + i] = s;                                                   \
                }                                                                               \
            /* dz = S z / tau: [2N, D] */                                                       \
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)dim, (int)rows,     \
                 (T)(1.0 / tau), logits, (int)rows, z, (int)dim, (T)0, dz, (int)dim);           \
        }                                                                                       \
        free(logits);                                                                           \
    }

DEFINE_NTXENT(float, cblas_sgemm, f32)
DEFINE_NTXENT(double, cblas_dgemm, f64)

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
