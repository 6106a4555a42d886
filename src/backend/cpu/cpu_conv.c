/*
 * cpu_conv.c - 2-D convolution on the CPU: im2col + GEMM (OpenBLAS).
 *
 * Layouts: x [n, h, w, c] (NHWC), filter w [k, r, s, c] (KRSC), y [n, oh, ow, k]. The column
 * matrix of a group of images has one row per output pixel and one column per filter tap
 * (r, s, c), the order of a filter row, so with P output pixels and rsc = r*s*c:
 *     forward       y[P, k]       = cols[P, rsc] * w[k, rsc]^T
 *     backward data dcols[P, rsc] = dy[P, k] * w[k, rsc], then col2im (scatter-add into dx)
 *     backward filt dw[k, rsc]    = sum over blocks b of dy_b[P_b, k]^T * cols_b[P_b, rsc]
 *
 * Work is cut into blocks of whole images (about CONV_BLOCK_BYTES of columns each, so a
 * block's columns are still in cache when its GEMM reads them) and a chunk is as many blocks
 * as the workspace holds. The blocks of a chunk run in parallel, each in its own slot of the
 * workspace with a single-threaded GEMM, so the thread that runs a block never changes its
 * arithmetic. bwd_filter writes one partial dw per block and adds the partials in block order.
 * Results are therefore bit-identical for any thread count, and the workspace size is a
 * function of the descriptor and dtype only.
 *
 * A 1x1, stride-1, unpadded convolution skips im2col: its input already is the column matrix.
 */
#include <cblas.h>
#include <string.h>

#include "cpu_ops.h"

/* Target bytes of columns per block, and the workspace bound that sets the chunk size. */
#define CONV_BLOCK_BYTES ((size_t)256 << 10)
#define CONV_CHUNK_BYTES ((size_t)8 << 20)
/* Elements of dw summed per parallel task when the partials are combined. */
#define CONV_SUM_BLOCK 4096

typedef struct conv_plan {
    int pointwise;        /* 1x1, stride 1, pad 0: no im2col */
    int64_t rsc;          /* filter taps: r * s * c */
    int64_t rows_per_img; /* output pixels per image: oh * ow */
    int64_t imgs_per_block;
    int64_t blocks; /* ceil(n / imgs_per_block) */
    int64_t blocks_per_chunk;
    size_t col_elems;  /* per workspace slot: one block's column matrix (0 when pointwise) */
    size_t part_elems; /* per workspace slot: one block's partial dw, k * rsc */
} conv_plan;

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : min64(v, hi); }

static conv_plan conv_plan_make(const sc_conv_desc *d, size_t esize) {
    conv_plan p;
    p.pointwise = d->r == 1 && d->s == 1 && d->stride == 1 && d->pad == 0;
    p.rsc = (int64_t)d->r * d->s * d->c;
    p.rows_per_img = (int64_t)d->oh * d->ow;
    size_t img_bytes = (size_t)(p.rows_per_img * p.rsc) * esize; /* one image's columns */
    p.imgs_per_block = clamp64((int64_t)(CONV_BLOCK_BYTES / img_bytes), 1, d->n);
    p.blocks = (d->n + p.imgs_per_block - 1) / p.imgs_per_block;
    p.col_elems = p.pointwise ? 0 : (size_t)(p.imgs_per_block * p.rows_per_img * p.rsc);
    p.part_elems = (size_t)(d->k * p.rsc);
    size_t slot_bytes = (p.col_elems + p.part_elems) * esize;
    p.blocks_per_chunk = clamp64((int64_t)(CONV_CHUNK_BYTES / slot_bytes), 1, p.blocks);
    return p;
}

static size_t conv_plan_workspace(const conv_plan *p, size_t esize) {
    return (size_t)p->blocks_per_chunk * (p->col_elems + p->part_elems) * esize;
}

#define T float
#define TFN(name) name##_f32
#define GEMM cblas_sgemm
#include "cpu_conv.inc"
#undef T
#undef TFN
#undef GEMM

#define T double
#define TFN(name) name##_f64
#define GEMM cblas_dgemm
#include "cpu_conv.inc"
#undef T
#undef TFN
#undef GEMM

size_t sc_cpu_conv2d_workspace(sc_backend *be, const sc_conv_desc *d, sc_dtype dt) {
    (void)be;
    conv_plan p = conv_plan_make(d, sc_dtype_size(dt));
    return conv_plan_workspace(&p, sc_dtype_size(dt));
}

void sc_cpu_conv2d_fwd(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x,
                       const sc_tensor *w, sc_tensor *y, sc_tensor *ws) {
    conv_plan p = conv_plan_make(d, sc_dtype_size(x->dtype));
    if (x->dtype == SC_F64)
        conv_fwd_f64(be->threads, d, &p, x->data, w->data, y->data, ws->data);
    else
        conv_fwd_f32(be->threads, d, &p, x->data, w->data, y->data, ws->data);
}

void sc_cpu_conv2d_bwd_data(sc_backend *be, const sc_conv_desc *d, const sc_tensor *dy,
                            const sc_tensor *w, sc_tensor *dx, sc_tensor *ws) {
    conv_plan p = conv_plan_make(d, sc_dtype_size(dy->dtype));
    if (dy->dtype == SC_F64)
        conv_bwd_data_f64(be->threads, d, &p, dy->data, w->data, dx->data, ws->data);
    else
        conv_bwd_data_f32(be->threads, d, &p, dy->data, w->data, dx->data, ws->data);
}

void sc_cpu_conv2d_bwd_filter(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x,
                              const sc_tensor *dy, sc_tensor *dw, sc_tensor *ws) {
    conv_plan p = conv_plan_make(d, sc_dtype_size(x->dtype));
    if (x->dtype == SC_F64)
        conv_bwd_filter_f64(be->threads, d, &p, x->data, dy->data, dw->data, ws->data);
    else
        conv_bwd_filter_f32(be->threads, d, &p, x->data, dy->data, dw->data, ws->data);
}
