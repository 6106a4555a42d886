/*
 * cpu_elementwise.c - ReLU, add, max pooling and global average pooling on the CPU.
 *
 * ReLU and add are independent per element: fixed-size element blocks run in parallel, and
 * outputs may alias inputs (same index in, same index out). Pooling works on NHWC tensors
 * with channels innermost. Max pooling follows PyTorch: the maximum of the window's valid
 * (unpadded) positions, a NaN propagates, and the backward pass routes each output gradient
 * to the FIRST maximum in row-major window order, recomputed from x. Both backward passes
 * scatter into overlapping windows, so they run one image per task; average pooling reduces
 * each image on its own, in a fixed order. Results do not depend on the thread count.
 */
#include <math.h>
#include <string.h>

#include "cpu_ops.h"

/* Elements per parallel task of the elementwise ops. */
#define EW_BLOCK 32768
/* Channels per stack accumulator of average pooling. */
#define AVG_CHANNEL_TILE 64


/* Window of output (oy, ox) clipped to the image: rows [*y0, *y1), columns [*x0, *x1). */
static void pool_window(const sc_pool_desc *d, int oy, int ox, int *y0, int *y1, int *x0, int *x1) {
    const int iy = oy * d->stride - d->pad, ix = ox * d->stride - d->pad;
    *y0 = iy < 0 ? 0 : iy;
    *y1 = iy + d->window < d->h ? iy + d->window : d->h;
    *x0 = ix < 0 ? 0 : ix;
    *x1 = ix + d->window < d->w ? ix + d->window : d->w;
}

#define T float
#define TFN(name) name##_f32
#include "cpu_elementwise.inc"
#undef T
#undef TFN

#define T double
#define TFN(name) name##_f64
#include "cpu_elementwise.inc"
#undef T
#undef TFN

void sc_cpu_relu_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y) {
    if (x->dtype == SC_F64)
        relu_fwd_f64(be->threads, sc_tensor_numel(x), x->data, y->data);
    else
        relu_fwd_f32(be->threads, sc_tensor_numel(x), x->data, y->data);
}

void sc_cpu_relu_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx) {
    if (y->dtype == SC_F64)
        relu_bwd_f64(be->threads, sc_tensor_numel(y), y->data, dy->data, dx->data);
    else
        relu_bwd_f32(be->threads, sc_tensor_numel(y), y->data, dy->data, dx->data);
}

void sc_cpu_add(sc_backend *be, const sc_tensor *a, const sc_tensor *b, sc_tensor *y) {
    if (a->dtype == SC_F64)
        add_f64(be->threads, sc_tensor_numel(a), a->data, b->data, y->data);
    else
        add_f32(be->threads, sc_tensor_numel(a), a->data, b->data, y->data);
}

void sc_cpu_maxpool_fwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, sc_tensor *y) {
    if (x->dtype == SC_F64)
        maxpool_fwd_f64(be->threads, d, x->data, y->data);
    else
        maxpool_fwd_f32(be->threads, d, x->data, y->data);
}

void sc_cpu_maxpool_bwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x,
                        const sc_tensor *dy, sc_tensor *dx) {
    if (x->dtype == SC_F64)
        maxpool_bwd_f64(be->threads, d, x->data, dy->data, dx->data);
    else
        maxpool_bwd_f32(be->threads, d, x->data, dy->data, dx->data);
}

void sc_cpu_avgpool_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y) {
    const int64_t n = x->shape[0], hw = x->shape[1] * x->shape[2], c = x->shape[3];
    if (x->dtype == SC_F64)
        avgpool_fwd_f64(be->threads, n, hw, c, x->data, y->data);
    else
        avgpool_fwd_f32(be->threads, n, hw, c, x->data, y->data);
}

void sc_cpu_avgpool_bwd(sc_backend *be, const sc_tensor *dy, sc_tensor *dx) {
    const int64_t n = dx->shape[0], hw = dx->shape[1] * dx->shape[2], c = dx->shape[3];
    if (dy->dtype == SC_F64)
        avgpool_bwd_f64(be->threads, n, hw, c, dy->data, dx->data);
    else
        avgpool_bwd_f32(be->threads, n, hw, c, dy->data, dx->data);
}
