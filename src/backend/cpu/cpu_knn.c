/*
 * cpu_knn.c - the weighted kNN vote of the kNN monitor on the CPU (see knn_scores in
 * include/simclr/backend.h).
 *
 * Queries are processed in blocks of KNN_QUERY_BLOCK rows, one block per parallel task. A task
 * walks the bank in chunks of KNN_BANK_CHUNK rows: one single-threaded GEMM gives the
 * [block, chunk] similarity tile, and each query keeps its best k candidates in a binary heap
 * whose root is the worst kept candidate (lowest similarity; on equal similarity the higher
 * bank index is worse). The kept neighbours are then sorted best-first and their votes
 * exp(s / t) summed per class in double in that order. Block and chunk sizes are constants,
 * so the result does not depend on the thread count; only the [Q, C] scores are written, the
 * [Q, N] similarity matrix never exists.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "cpu_ops.h"

/* Query rows per parallel task. */
#define KNN_QUERY_BLOCK 64
/* Bank rows per similarity tile. */
#define KNN_BANK_CHUNK 2048

/* One kept neighbour. */
typedef struct knn_cand {
    double sim;
    int64_t index;
} knn_cand;

/* a is a worse neighbour than b: lower similarity, or equal similarity and higher index. */
static inline int knn_worse(const knn_cand *a, const knn_cand *b) {
    return a->sim < b->sim || (a->sim == b->sim && a->index > b->index);
}

/* Restore the heap (root = worst) below position i of h[0..n). */
static void knn_sift_down(knn_cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && knn_worse(&h[l], &h[w])) w = l;
        if (r < n && knn_worse(&h[r], &h[w])) w = r;
        if (w == i) return;
        knn_cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Offer candidate c to the heap h of *n <= k entries. */
static void knn_offer(knn_cand *h, int *n, int k, knn_cand c) {
    if (*n < k) {
        int i = (*n)++;
        h[i] = c;
        while (i > 0) { /* sift up */
            int p = (i - 1) / 2;
            if (!knn_worse(&h[i], &h[p])) break;
            knn_cand t = h[i];
            h[i] = h[p];
            h[p] = t;
            i = p;
        }
    } else if (knn_worse(&h[0], &c)) {
        h[0] = c;
        knn_sift_down(h, *n, 0);
    }
}

static int knn_best_first(const void *a, const void *b) {
    const knn_cand *x = a, *y = b;
    return knn_worse(y, x) ? -1 : knn_worse(x, y) ? 1 : 0;
}

/* The votes of one query's kept neighbours h[0..n) into scores[0..classes). */
static void knn_vote(knn_cand *h, int n, const int32_t *labels, int64_t classes, double temperature,
                     double *scores) {
    qsort(h, (size_t)n, sizeof *h, knn_best_first);
    for (int64_t c = 0; c < classes; c++) scores[c] = 0.0;
    for (int j = 0; j < n; j++) {
        int32_t y = labels[h[j].index];
        SC_CHECK(y >= 0 && y < classes, "knn_scores: bank label %d of row %lld is outside [0, %lld)", y,
                 (long long)h[j].index, (long long)classes);
        scores[y] += exp(h[j].sim / temperature);
    }
}

#define T float
#define TFN(name) name##_f32
#define GEMM cblas_sgemm
#include "cpu_knn.inc"
#undef T
#undef TFN
#undef GEMM

#define T double
#define TFN(name) name##_f64
#define GEMM cblas_dgemm
#include "cpu_knn.inc"
#undef T
#undef TFN
#undef GEMM

void sc_cpu_knn_scores(sc_backend *be, const sc_tensor *queries, const sc_tensor *bank,
                       const sc_tensor *bank_labels, int k, double temperature, sc_tensor *scores) {
    const int64_t q = queries->shape[0], f = queries->shape[1], n = bank->shape[0], c = scores->shape[1];
    if (queries->dtype == SC_F64)
        knn_scores_f64(be->threads, q, f, n, c, queries->data, bank->data, bank_labels->data, k, temperature,
                       scores->data);
    else
        knn_scores_f32(be->threads, q, f, n, c, queries->data, bank->data, bank_labels->data, k, temperature,
                       scores->data);
}
