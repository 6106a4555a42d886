/*
 * cpu_linear.c - fully connected layers on the CPU: y[M,N] = x[M,K] w[N,K]^T + b[N].
 *
 * Every product is an OpenBLAS GEMM run single-threaded on a fixed tile of the output, with
 * tiles in parallel: the forward pass and dx split the M rows into LINEAR_ROW_BLOCK-row blocks,
 * dw = dy^T x splits its N rows into LINEAR_ROW_BLOCK-row tiles (each tile reduces over all M
 * rows in one GEMM), and db sums each column tile over the rows in row order, in double. Tile
 * boundaries are constants, so results are bit-identical for any thread count.
 */
#include <cblas.h>

#include "cpu_ops.h"

/* Output rows per GEMM tile. */
#define LINEAR_ROW_BLOCK 64
/* Columns per stack accumulator of db. */
#define LINEAR_BIAS_TILE 64


#define T float
#define TFN(name) name##_f32
#define GEMM cblas_sgemm
#include "cpu_linear.inc"
#undef T
#undef TFN
#undef GEMM

#define T double
#define TFN(name) name##_f64
#define GEMM cblas_dgemm
#include "cpu_linear.inc"
#undef T
#undef TFN
#undef GEMM

void sc_cpu_linear_fwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *b,
                       sc_tensor *y) {
    const int64_t m = x->shape[0], k = x->shape[1], n = w->shape[0];
    const void *bias = b ? b->data : NULL;
    if (x->dtype == SC_F64)
        linear_fwd_f64(be->threads, m, k, n, x->data, w->data, bias, y->data);
    else
        linear_fwd_f32(be->threads, m, k, n, x->data, w->data, bias, y->data);
}

void sc_cpu_linear_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *dy,
                       sc_tensor *dx, sc_tensor *dw, sc_tensor *db) {
    const int64_t m = x->shape[0], k = x->shape[1], n = w->shape[0];
    void *dx_data = dx ? dx->data : NULL, *db_data = db ? db->data : NULL;
    if (x->dtype == SC_F64)
        linear_bwd_f64(be->threads, m, k, n, x->data, w->data, dy->data, dx_data, dw->data,
                       db_data);
    else
        linear_bwd_f32(be->threads, m, k, n, x->data, w->data, dy->data, dx_data, dw->data,
                       db_data);
}
