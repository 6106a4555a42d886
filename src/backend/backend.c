/*
 * backend.c - backend selection and the checked sc_op_* wrappers.
 *
 * This is the only file that knows both backends exist: it turns a device string into a
 * CPU or CUDA backend, and it validates the shapes and dtypes of every op call once, so the
 * two implementations can assume well-formed arguments. A mismatch here is a programming
 * error (the model planned its buffers wrongly), so it aborts with both shapes printed.
 */
#include "simclr/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_internal.h"

/* ------------------------------------------------------------------------------------ */
/* descriptors                                                                          */

sc_conv_desc sc_conv_desc_make(int n, int h, int w, int c, int k, int r, int s, int stride, int pad) {
    SC_CHECK(n > 0 && h > 0 && w > 0 && c > 0 && k > 0 && r > 0 && s > 0 && stride > 0 && pad >= 0,
             "bad convolution n=%d h=%d w=%d c=%d k=%d r=%d s=%d stride=%d pad=%d", n, h, w, c, k,
             r, s, stride, pad);
    sc_conv_desc d = {.n = n, .h = h, .w = w, .c = c, .k = k, .r = r, .s = s, .stride = stride, .pad = pad};
    d.oh = (h + 2 * pad - r) / stride + 1;
    d.ow = (w + 2 * pad - s) / stride + 1;
    SC_CHECK(d.oh > 0 && d.ow > 0, "convolution output is empty (%dx%d input, %dx%d filter, pad %d)",
             h, w, r, s, pad);
    return d;
}

sc_pool_desc sc_pool_desc_make(int n, int h, int w, int c, int window, int stride, int pad) {
    SC_CHECK(n > 0 && h > 0 && w > 0 && c > 0 && window > 0 && stride > 0 && pad >= 0 && pad < window,
             "bad pooling window=%d stride=%d pad=%d", window, stride, pad);
    sc_pool_desc d = {.n = n, .h = h, .w = w, .c = c, .window = window, .stride = stride, .pad = pad};
    d.oh = (h + 2 * pad - window) / stride + 1;
    d.ow = (w + 2 * pad - window) / stride + 1;
    SC_CHECK(d.oh > 0 && d.ow > 0, "pooling output is empty");
    return d;
}

/* ------------------------------------------------------------------------------------ */
/* creation                                                                             */

sc_status sc_backend_create(const char *device, const sc_backend_options *opt, sc_backend **out) {
    sc_backend_options defaults = {0};
    if (!opt) opt = &defaults;
    *out = NULL;
    if (strcmp(device, "auto") == 0) device = sc_cuda_device_count() > 0 && sc_cuda_backend_ready() ? "cuda" : "cpu";
    if (strcmp(device, "cpu") == 0) return sc_cpu_backend_create(opt, out);
    if (strncmp(device, "cuda", 4) == 0) {
        int ordinal = 0;
        if (device[4] == ':') {
            char *end;
            long v = strtol(device + 5, &end, 10);
            if (*end || v < 0 || v > 1024)
                return sc_errorf(SC_ERR_ARG, "bad device '%s': expected cuda:<index>", device);
            ordinal = (int)v;
        } else if (device[4] != '\0') {
            return sc_errorf(SC_ERR_ARG, "unknown device '%s' (expected auto, cpu, cuda or cuda:N)", device);
        }
        int count = sc_cuda_device_count();
        if (count == 0)
            return sc_errorf(SC_ERR_UNSUPPORTED, "device '%s' requested but no CUDA GPU is visible%s",
                             device, sc_cuda_compiled() ? "" : " (this binary was built without CUDA)");
        if (ordinal >= count)
            return sc_errorf(SC_ERR_ARG, "device '%s' requested but only %d GPU(s) are visible", device, count);
        return sc_cuda_backend_create(ordinal, opt, out);
    }
    return sc_errorf(SC_ERR_ARG, "unknown device '%s' (expected auto, cpu, cuda or cuda:N)", device);
}

void sc_backend_destroy(sc_backend *be) {
    if (!be) return;
    if (be->kind == SC_DEVICE_CPU)
        sc_cpu_backend_destroy(be);
    else
        sc_cuda_backend_destroy(be);
}

int sc_cuda_device_count(void) { return sc_cuda_count_devices(); }

void sc_backend_describe(char *buf, size_t cap) { sc_cuda_describe(buf, cap); }

/* ------------------------------------------------------------------------------------ */
/* memory helpers                                                                       */

sc_status sc_backend_alloc(sc_backend *be, size_t bytes, const char *what, void **out) {
    *out = bytes ? be->ops->alloc(be, bytes) : NULL;
    if (bytes && !*out)
        return sc_errorf(SC_ERR_NOMEM, "%s: cannot allocate %.1f MiB for %s", be->ops->name,
                         (double)bytes / 1048576.0, what);
    return SC_OK;
}

void sc_backend_free(sc_backend *be, void *ptr) {
    if (ptr) be->ops->free(be, ptr);
}

void sc_tensor_upload(sc_backend *be, sc_tensor *dst, const void *host_src) {
    be->ops->upload(be, dst->data, host_src, sc_tensor_nbytes(dst));
}

void sc_tensor_download(sc_backend *be, void *host_dst, const sc_tensor *src) {
    be->ops->download(be, host_dst, src->data, sc_tensor_nbytes(src));
}

void sc_tensor_zero(sc_backend *be, sc_tensor *t) { be->ops->zero(be, t->data, sc_tensor_nbytes(t)); }

double sc_tensor_read_scalar(sc_backend *be, const sc_tensor *t) {
    SC_CHECK(sc_tensor_numel(t) == 1, "not a scalar");
    if (t->dtype == SC_F64) {
        double v;
        be->ops->download(be, &v, t->data, sizeof v);
        return v;
    }
    SC_CHECK(t->dtype == SC_F32, "scalar must be F32 or F64");
    float v;
    be->ops->download(be, &v, t->data, sizeof v);
    return v;
}

void sc_tensor_write_scalar(sc_backend *be, sc_tensor *t, double v) {
    SC_CHECK(sc_tensor_numel(t) == 1, "not a scalar");
    if (t->dtype == SC_F64) {
        be->ops->upload(be, t->data, &v, sizeof v);
        return;
    }
    SC_CHECK(t->dtype == SC_F32, "scalar must be F32 or F64");
    float f = (float)v;
    be->ops->upload(be, t->data, &f, sizeof f);
}

/* ------------------------------------------------------------------------------------ */
/* staging, events, asynchronous uploads                                                */

sc_status sc_backend_host_alloc(sc_backend *be, size_t bytes, const char *what, void **out) {
    if (be->ops->host_alloc) {
        *out = bytes ? be->ops->host_alloc(be, bytes) : NULL;
    } else {
        size_t rounded = (bytes + 255) / 256 * 256;
        *out = bytes ? aligned_alloc(256, rounded) : NULL;
    }
    if (bytes && !*out)
        return sc_errorf(SC_ERR_NOMEM, "%s: cannot allocate %.1f MiB of host staging memory for %s", be->ops->name,
                         (double)bytes / 1048576.0, what);
    return SC_OK;
}

void sc_backend_host_free(sc_backend *be, void *ptr) {
    if (!ptr) return;
    if (be->ops->host_free)
        be->ops->host_free(be, ptr);
    else
        free(ptr);
}

sc_status sc_backend_event_create(sc_backend *be, sc_backend_event **out) {
    *out = NULL;
    if (!be->ops->event_create) return SC_OK;
    if (!(*out = be->ops->event_create(be)))
        return sc_errorf(SC_ERR_DEVICE, "%s: cannot create an event", be->ops->name);
    return SC_OK;
}

void sc_backend_event_destroy(sc_backend *be, sc_backend_event *ev) {
    if (ev) be->ops->event_destroy(be, ev);
}

void sc_backend_event_record(sc_backend *be, sc_backend_event *ev) {
    if (ev) be->ops->event_record(be, ev);
}

void sc_backend_event_sync(sc_backend *be, sc_backend_event *ev) {
    if (ev) be->ops->event_sync(be, ev);
}

void sc_backend_upload_async(sc_backend *be, void *dst, const void *host_src, size_t bytes,
                             sc_backend_event *after, sc_backend_event *done) {
    if (be->ops->upload_async) {
        be->ops->upload_async(be, dst, host_src, bytes, after, done);
        return;
    }
    if (after) be->ops->synchronize(be);
    be->ops->upload(be, dst, host_src, bytes);
}

int sc_backend_can_augment(const sc_backend *be) {
    return be->ops->augment_crops != NULL && be->ops->augment_workspace != NULL;
}

/* ------------------------------------------------------------------------------------ */
/* shape checks                                                                         */

static void expect_shape(const char *op, const char *arg, const sc_tensor *t, sc_dtype dt, int ndim,
                         const int64_t *shape) {
    int ok = t != NULL && t->data != NULL && t->dtype == dt && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return;
    char got[96] = "NULL", want[96];
    if (t) sc_tensor_describe(t, got, sizeof got);
    sc_tensor w = sc_tensor_make(NULL, dt, ndim, shape);
    sc_tensor_describe(&w, want, sizeof want);
    SC_FATAL("%s: argument %s is %s%s, expected %s", op, arg, got,
             (t && !t->data) ? " with no data" : "", want);
}

#define EXPECT(op, arg, t, dt, ...)                                                            \
    do {                                                                                       \
        const int64_t shape_[] = {__VA_ARGS__};                                                \
        expect_shape(op, arg, t, dt, (int)(sizeof shape_ / sizeof shape_[0]), shape_);         \
    } while (0)

static void expect_float(const char *op, const sc_tensor *t) {
    SC_CHECK(t && (t->dtype == SC_F32 || t->dtype == SC_F64), "%s: tensors must be F32 or F64", op);
}

static void expect_same(const char *op, const char *arg, const sc_tensor *t, const sc_tensor *ref) {
    expect_shape(op, arg, t, ref->dtype, ref->ndim, ref->shape);
}

/* Rows (product of all but the last dim) and channels (last dim) of an activation. */
static void rows_channels(const sc_tensor *t, int64_t *m, int64_t *c) {
    SC_CHECK(t->ndim >= 1, "activation of rank 0");
    *c = t->shape[t->ndim - 1];
    *m = sc_tensor_numel(t) / (*c ? *c : 1);
}

static void check_workspace(const char *op, sc_backend *be, const sc_conv_desc *d, sc_dtype dt,
                            const sc_tensor *ws) {
    size_t need = be->ops->conv2d_workspace(be, d, dt);
    size_t have = ws ? sc_tensor_nbytes(ws) : 0;
    SC_CHECK(have >= need && (need == 0 || ws->data), "%s: workspace of %zu bytes, %zu needed", op, have, need);
}

/* ------------------------------------------------------------------------------------ */
/* op wrappers                                                                          */

size_t sc_op_conv2d_workspace(sc_backend *be, const sc_conv_desc *d, sc_dtype dt) {
    return be->ops->conv2d_workspace(be, d, dt);
}

void sc_op_conv2d_fwd(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x, const sc_tensor *w,
                      sc_tensor *y, sc_tensor *ws) {
    expect_float("conv2d_fwd", x);
    EXPECT("conv2d_fwd", "x", x, x->dtype, d->n, d->h, d->w, d->c);
    EXPECT("conv2d_fwd", "w", w, x->dtype, d->k, d->r, d->s, d->c);
    EXPECT("conv2d_fwd", "y", y, x->dtype, d->n, d->oh, d->ow, d->k);
    check_workspace("conv2d_fwd", be, d, x->dtype, ws);
    be->ops->conv2d_fwd(be, d, x, w, y, ws);
}

void sc_op_conv2d_bwd_data(sc_backend *be, const sc_conv_desc *d, const sc_tensor *dy,
                           const sc_tensor *w, sc_tensor *dx, sc_tensor *ws) {
    expect_float("conv2d_bwd_data", dy);
    EXPECT("conv2d_bwd_data", "dy", dy, dy->dtype, d->n, d->oh, d->ow, d->k);
    EXPECT("conv2d_bwd_data", "w", w, dy->dtype, d->k, d->r, d->s, d->c);
    EXPECT("conv2d_bwd_data", "dx", dx, dy->dtype, d->n, d->h, d->w, d->c);
    check_workspace("conv2d_bwd_data", be, d, dy->dtype, ws);
    be->ops->conv2d_bwd_data(be, d, dy, w, dx, ws);
}

void sc_op_conv2d_bwd_filter(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x,
                             const sc_tensor *dy, sc_tensor *dw, sc_tensor *ws) {
    expect_float("conv2d_bwd_filter", x);
    EXPECT("conv2d_bwd_filter", "x", x, x->dtype, d->n, d->h, d->w, d->c);
    EXPECT("conv2d_bwd_filter", "dy", dy, x->dtype, d->n, d->oh, d->ow, d->k);
    EXPECT("conv2d_bwd_filter", "dw", dw, x->dtype, d->k, d->r, d->s, d->c);
    check_workspace("conv2d_bwd_filter", be, d, x->dtype, ws);
    be->ops->conv2d_bwd_filter(be, d, x, dy, dw, ws);
}

void sc_op_bn_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                        const sc_tensor *beta, sc_tensor *y, sc_tensor *save_mean,
                        sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                        double momentum, double eps) {
    int64_t m, c;
    expect_float("bn_fwd_train", x);
    rows_channels(x, &m, &c);
    SC_CHECK(m > 1, "bn_fwd_train: batch norm needs more than one value per channel (got %lld)",
             (long long)m);
    EXPECT("bn_fwd_train", "gamma", gamma, x->dtype, c);
    if (beta) EXPECT("bn_fwd_train", "beta", beta, x->dtype, c);
    expect_same("bn_fwd_train", "y", y, x);
    EXPECT("bn_fwd_train", "save_mean", save_mean, x->dtype, c);
    EXPECT("bn_fwd_train", "save_invstd", save_invstd, x->dtype, c);
    EXPECT("bn_fwd_train", "running_mean", running_mean, x->dtype, c);
    EXPECT("bn_fwd_train", "running_var", running_var, x->dtype, c);
    be->ops->bn_fwd_train(be, x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var,
                          momentum, eps);
}

void sc_op_bn_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                       const sc_tensor *beta, const sc_tensor *running_mean,
                       const sc_tensor *running_var, double eps, sc_tensor *y) {
    int64_t m, c;
    expect_float("bn_fwd_eval", x);
    rows_channels(x, &m, &c);
    EXPECT("bn_fwd_eval", "gamma", gamma, x->dtype, c);
    if (beta) EXPECT("bn_fwd_eval", "beta", beta, x->dtype, c);
    EXPECT("bn_fwd_eval", "running_mean", running_mean, x->dtype, c);
    EXPECT("bn_fwd_eval", "running_var", running_var, x->dtype, c);
    expect_same("bn_fwd_eval", "y", y, x);
    be->ops->bn_fwd_eval(be, x, gamma, beta, running_mean, running_var, eps, y);
}

void sc_op_bn_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                  const sc_tensor *save_mean, const sc_tensor *save_invstd, sc_tensor *dx,
                  sc_tensor *dgamma, sc_tensor *dbeta) {
    int64_t m, c;
    expect_float("bn_bwd", x);
    rows_channels(x, &m, &c);
    expect_same("bn_bwd", "dy", dy, x);
    EXPECT("bn_bwd", "gamma", gamma, x->dtype, c);
    EXPECT("bn_bwd", "save_mean", save_mean, x->dtype, c);
    EXPECT("bn_bwd", "save_invstd", save_invstd, x->dtype, c);
    expect_same("bn_bwd", "dx", dx, x);
    EXPECT("bn_bwd", "dgamma", dgamma, x->dtype, c);
    if (dbeta) EXPECT("bn_bwd", "dbeta", dbeta, x->dtype, c);
    be->ops->bn_bwd(be, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

/* ---- global batch norm ---- */

void sc_op_bn_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *save_mean,
                   sc_tensor *sums) {
    int64_t m, c;
    expect_float("bn_sums", x);
    rows_channels(x, &m, &c);
    if (dy) {
        expect_same("bn_sums", "dy", dy, x);
        EXPECT("bn_sums", "save_mean", save_mean, x->dtype, c);
    }
    EXPECT("bn_sums", "sums", sums, SC_F64, 2, c);
    be->ops->bn_sums(be, x, dy, save_mean, sums);
}

void sc_op_bn_fwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                            const sc_tensor *sums, double count, sc_tensor *y, sc_tensor *save_mean,
                            sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                            double momentum, double eps) {
    int64_t m, c;
    expect_float("bn_fwd_from_sums", x);
    rows_channels(x, &m, &c);
    SC_CHECK(count > 1 && count >= (double)m, "bn_fwd_from_sums: %g rows in all for %lld rows here", count, (long long)m);
    EXPECT("bn_fwd_from_sums", "gamma", gamma, x->dtype, c);
    if (beta) EXPECT("bn_fwd_from_sums", "beta", beta, x->dtype, c);
    EXPECT("bn_fwd_from_sums", "sums", sums, SC_F64, 2, c);
    expect_same("bn_fwd_from_sums", "y", y, x);
    EXPECT("bn_fwd_from_sums", "save_mean", save_mean, x->dtype, c);
    EXPECT("bn_fwd_from_sums", "save_invstd", save_invstd, x->dtype, c);
    EXPECT("bn_fwd_from_sums", "running_mean", running_mean, x->dtype, c);
    EXPECT("bn_fwd_from_sums", "running_var", running_var, x->dtype, c);
    be->ops->bn_fwd_from_sums(be, x, gamma, beta, sums, count, y, save_mean, save_invstd, running_mean, running_var,
                              momentum, eps);
}

void sc_op_bn_bwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                            const sc_tensor *save_mean, const sc_tensor *save_invstd, const sc_tensor *local,
                            const sc_tensor *global, double count, sc_tensor *dx, sc_tensor *dgamma,
                            sc_tensor *dbeta) {
    int64_t m, c;
    expect_float("bn_bwd_from_sums", x);
    rows_channels(x, &m, &c);
    SC_CHECK(count >= (double)m, "bn_bwd_from_sums: %g rows in all for %lld rows here", count, (long long)m);
    expect_same("bn_bwd_from_sums", "dy", dy, x);
    EXPECT("bn_bwd_from_sums", "gamma", gamma, x->dtype, c);
    EXPECT("bn_bwd_from_sums", "save_mean", save_mean, x->dtype, c);
    EXPECT("bn_bwd_from_sums", "save_invstd", save_invstd, x->dtype, c);
    EXPECT("bn_bwd_from_sums", "local", local, SC_F64, 2, c);
    EXPECT("bn_bwd_from_sums", "global", global, SC_F64, 2, c);
    expect_same("bn_bwd_from_sums", "dx", dx, x);
    EXPECT("bn_bwd_from_sums", "dgamma", dgamma, x->dtype, c);
    if (dbeta) EXPECT("bn_bwd_from_sums", "dbeta", dbeta, x->dtype, c);
    be->ops->bn_bwd_from_sums(be, x, dy, gamma, save_mean, save_invstd, local, global, count, dx, dgamma, dbeta);
}

/* ---- fused batch norm: the backend's entry, or the composition that defines it ---- */

static void check_bn_act(const char *op, const sc_tensor *x, const sc_tensor *residual,
                         const sc_tensor *y) {
    expect_float(op, x);
    if (residual) expect_same(op, "residual", residual, x);
    SC_CHECK(y->data != x->data && (!residual || y->data != residual->data),
             "%s: y must alias neither x nor residual", op);
}

void sc_op_bn_act_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                            const sc_tensor *beta, const sc_tensor *residual, int relu, sc_tensor *y,
                            sc_tensor *save_mean, sc_tensor *save_invstd, sc_tensor *running_mean,
                            sc_tensor *running_var, double momentum, double eps) {
    if (!be->ops->bn_act_fwd_train) {
        check_bn_act("bn_act_fwd_train", x, residual, y);
        sc_op_bn_fwd_train(be, x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var,
                           momentum, eps);
        if (residual) be->ops->add(be, y, residual, y);
        if (relu) be->ops->relu_fwd(be, y, y);
        return;
    }
    int64_t m, c;
    expect_float("bn_act_fwd_train", x);
    rows_channels(x, &m, &c);
    SC_CHECK(m > 1, "bn_act_fwd_train: batch norm needs more than one value per channel (got %lld)",
             (long long)m);
    EXPECT("bn_act_fwd_train", "gamma", gamma, x->dtype, c);
    if (beta) EXPECT("bn_act_fwd_train", "beta", beta, x->dtype, c);
    expect_same("bn_act_fwd_train", "y", y, x);
    check_bn_act("bn_act_fwd_train", x, residual, y);
    EXPECT("bn_act_fwd_train", "save_mean", save_mean, x->dtype, c);
    EXPECT("bn_act_fwd_train", "save_invstd", save_invstd, x->dtype, c);
    EXPECT("bn_act_fwd_train", "running_mean", running_mean, x->dtype, c);
    EXPECT("bn_act_fwd_train", "running_var", running_var, x->dtype, c);
    be->ops->bn_act_fwd_train(be, x, gamma, beta, residual, relu, y, save_mean, save_invstd,
                              running_mean, running_var, momentum, eps);
}

void sc_op_bn_act_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                           const sc_tensor *beta, const sc_tensor *residual, int relu,
                           const sc_tensor *running_mean, const sc_tensor *running_var, double eps,
                           sc_tensor *y) {
    if (!be->ops->bn_act_fwd_eval) {
        check_bn_act("bn_act_fwd_eval", x, residual, y);
        sc_op_bn_fwd_eval(be, x, gamma, beta, running_mean, running_var, eps, y);
        if (residual) be->ops->add(be, y, residual, y);
        if (relu) be->ops->relu_fwd(be, y, y);
        return;
    }
    int64_t m, c;
    expect_float("bn_act_fwd_eval", x);
    rows_channels(x, &m, &c);
    EXPECT("bn_act_fwd_eval", "gamma", gamma, x->dtype, c);
    if (beta) EXPECT("bn_act_fwd_eval", "beta", beta, x->dtype, c);
    EXPECT("bn_act_fwd_eval", "running_mean", running_mean, x->dtype, c);
    EXPECT("bn_act_fwd_eval", "running_var", running_var, x->dtype, c);
    expect_same("bn_act_fwd_eval", "y", y, x);
    check_bn_act("bn_act_fwd_eval", x, residual, y);
    be->ops->bn_act_fwd_eval(be, x, gamma, beta, residual, relu, running_mean, running_var, eps, y);
}

void sc_op_bn_relu_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *y, const sc_tensor *dy,
                       const sc_tensor *gamma, const sc_tensor *save_mean,
                       const sc_tensor *save_invstd, sc_tensor *dx, sc_tensor *dgamma,
                       sc_tensor *dbeta) {
    expect_float("bn_relu_bwd", x);
    expect_same("bn_relu_bwd", "y", y, x);
    expect_same("bn_relu_bwd", "dy", dy, x);
    if (!be->ops->bn_relu_bwd) {
        sc_tensor g = *dy; /* consumed: masked in place */
        be->ops->relu_bwd(be, y, dy, &g);
        sc_op_bn_bwd(be, x, &g, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
        return;
    }
    int64_t m, c;
    rows_channels(x, &m, &c);
    EXPECT("bn_relu_bwd", "gamma", gamma, x->dtype, c);
    EXPECT("bn_relu_bwd", "save_mean", save_mean, x->dtype, c);
    EXPECT("bn_relu_bwd", "save_invstd", save_invstd, x->dtype, c);
    expect_same("bn_relu_bwd", "dx", dx, x);
    EXPECT("bn_relu_bwd", "dgamma", dgamma, x->dtype, c);
    if (dbeta) EXPECT("bn_relu_bwd", "dbeta", dbeta, x->dtype, c);
    be->ops->bn_relu_bwd(be, x, y, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

void sc_op_relu_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y) {
    expect_float("relu_fwd", x);
    expect_same("relu_fwd", "y", y, x);
    be->ops->relu_fwd(be, x, y);
}

void sc_op_relu_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx) {
    expect_float("relu_bwd", y);
    expect_same("relu_bwd", "dy", dy, y);
    expect_same("relu_bwd", "dx", dx, y);
    be->ops->relu_bwd(be, y, dy, dx);
}

void sc_op_add(sc_backend *be, const sc_tensor *a, const sc_tensor *b, sc_tensor *y) {
    expect_float("add", a);
    expect_same("add", "b", b, a);
    expect_same("add", "y", y, a);
    be->ops->add(be, a, b, y);
}

void sc_op_maxpool_fwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, sc_tensor *y) {
    expect_float("maxpool_fwd", x);
    EXPECT("maxpool_fwd", "x", x, x->dtype, d->n, d->h, d->w, d->c);
    EXPECT("maxpool_fwd", "y", y, x->dtype, d->n, d->oh, d->ow, d->c);
    be->ops->maxpool_fwd(be, d, x, y);
}

void sc_op_maxpool_bwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x,
                       const sc_tensor *dy, sc_tensor *dx) {
    expect_float("maxpool_bwd", x);
    EXPECT("maxpool_bwd", "x", x, x->dtype, d->n, d->h, d->w, d->c);
    EXPECT("maxpool_bwd", "dy", dy, x->dtype, d->n, d->oh, d->ow, d->c);
    EXPECT("maxpool_bwd", "dx", dx, x->dtype, d->n, d->h, d->w, d->c);
    be->ops->maxpool_bwd(be, d, x, dy, dx);
}

void sc_op_avgpool_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y) {
    expect_float("avgpool_fwd", x);
    SC_CHECK(x->ndim == 4, "avgpool_fwd: x must be [N,H,W,C]");
    EXPECT("avgpool_fwd", "y", y, x->dtype, x->shape[0], x->shape[3]);
    be->ops->avgpool_fwd(be, x, y);
}

void sc_op_avgpool_bwd(sc_backend *be, const sc_tensor *dy, sc_tensor *dx) {
    expect_float("avgpool_bwd", dy);
    SC_CHECK(dx && dx->ndim == 4, "avgpool_bwd: dx must be [N,H,W,C]");
    EXPECT("avgpool_bwd", "dy", dy, dx->dtype, dx->shape[0], dx->shape[3]);
    be->ops->avgpool_bwd(be, dy, dx);
}

void sc_op_linear_fwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *b,
                      sc_tensor *y) {
    expect_float("linear_fwd", x);
    SC_CHECK(x->ndim == 2 && w && w->ndim == 2, "linear_fwd: x and w must be 2-D");
    int64_t m = x->shape[0], k = x->shape[1], n = w->shape[0];
    EXPECT("linear_fwd", "w", w, x->dtype, n, k);
    if (b) EXPECT("linear_fwd", "b", b, x->dtype, n);
    EXPECT("linear_fwd", "y", y, x->dtype, m, n);
    be->ops->linear_fwd(be, x, w, b, y);
}

void sc_op_linear_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *dy,
                      sc_tensor *dx, sc_tensor *dw, sc_tensor *db) {
    expect_float("linear_bwd", x);
    SC_CHECK(x->ndim == 2 && w && w->ndim == 2, "linear_bwd: x and w must be 2-D");
    int64_t m = x->shape[0], k = x->shape[1], n = w->shape[0];
    EXPECT("linear_bwd", "w", w, x->dtype, n, k);
    EXPECT("linear_bwd", "dy", dy, x->dtype, m, n);
    if (dx) EXPECT("linear_bwd", "dx", dx, x->dtype, m, k);
    EXPECT("linear_bwd", "dw", dw, x->dtype, n, k);
    if (db) EXPECT("linear_bwd", "db", db, x->dtype, n);
    be->ops->linear_bwd(be, x, w, dy, dx, dw, db);
}

void sc_op_l2norm_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y, sc_tensor *norm) {
    expect_float("l2norm_fwd", x);
    SC_CHECK(x->ndim == 2, "l2norm_fwd: x must be [M, D]");
    expect_same("l2norm_fwd", "y", y, x);
    EXPECT("l2norm_fwd", "norm", norm, x->dtype, x->shape[0]);
    be->ops->l2norm_fwd(be, x, y, norm);
}

void sc_op_l2norm_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *norm,
                      const sc_tensor *dy, sc_tensor *dx) {
    expect_float("l2norm_bwd", y);
    SC_CHECK(y->ndim == 2, "l2norm_bwd: y must be [M, D]");
    EXPECT("l2norm_bwd", "norm", norm, y->dtype, y->shape[0]);
    expect_same("l2norm_bwd", "dy", dy, y);
    expect_same("l2norm_bwd", "dx", dx, y);
    be->ops->l2norm_bwd(be, y, norm, dy, dx);
}

size_t sc_op_contrastive_workspace(sc_backend *be, const sc_contrastive_desc *d, int64_t rows,
                                   int64_t cols, int64_t dim, sc_dtype dt) {
    return be->ops->contrastive_workspace(be, d, rows, cols, dim, dt);
}

void sc_op_contrastive(sc_backend *be, const sc_contrastive_desc *d, const sc_tensor *z_rows,
                       const sc_tensor *z_cols, sc_tensor *loss, sc_tensor *accuracy,
                       sc_tensor *d_rows, sc_tensor *d_cols, sc_tensor *ws) {
    const char *op = "contrastive";
    SC_CHECK(z_rows && z_cols && z_rows->ndim == 2 && z_cols->ndim == 2,
             "%s: z_rows and z_cols must be [R, D] and [C, D]", op);
    sc_dtype dt = z_rows->dtype;
    int cuda = be->kind == SC_DEVICE_CUDA;
    SC_CHECK(dt == SC_F32 || (dt == SC_F64 && !cuda) || (dt == SC_BF16 && cuda),
             "%s: inputs must be F32 or %s, not %s", op, cuda ? "BF16" : "F64", sc_dtype_name(dt));
    int64_t rows = z_rows->shape[0], cols = z_cols->shape[0], dim = z_rows->shape[1];
    EXPECT(op, "z_cols", z_cols, dt, cols, dim);
    int64_t block = d->pair_block > 0 ? d->pair_block : cols;
    SC_CHECK(rows >= 1 && cols >= 2 && dim >= 1, "%s: needs at least 1 row, 2 columns and 1 dimension", op);
    SC_CHECK(block >= 2 && block % 2 == 0 && cols % block == 0,
             "%s: pair_block %lld must be even and divide the %lld columns", op, (long long)block,
             (long long)cols);
    SC_CHECK(d->row_offset >= 0 && d->row_offset + rows <= cols,
             "%s: rows [%lld, %lld) are not inside the %lld columns", op, (long long)d->row_offset,
             (long long)(d->row_offset + rows), (long long)cols);
    SC_CHECK(d->kind == SC_CONTRASTIVE_NTXENT || d->kind == SC_CONTRASTIVE_NT_LOGISTIC ||
                 d->kind == SC_CONTRASTIVE_MARGIN,
             "%s: unknown loss kind %d", op, (int)d->kind);
    SC_CHECK(d->kind == SC_CONTRASTIVE_MARGIN || d->tau > 0.0, "%s: temperature must be positive", op);
    SC_CHECK(d->kind != SC_CONTRASTIVE_MARGIN || isfinite(d->margin), "%s: margin must be finite", op);
    SC_CHECK(!d->semi_hard || d->kind != SC_CONTRASTIVE_NTXENT, "%s: semi-hard mining is for nt_logistic and margin", op);
    sc_dtype out = dt == SC_BF16 ? SC_F32 : dt;
    EXPECT(op, "loss", loss, out, 1);
    if (accuracy) EXPECT(op, "accuracy", accuracy, out, 1);
    SC_CHECK((d_rows == NULL) == (d_cols == NULL), "%s: d_rows and d_cols are both given or both NULL", op);
    if (d_rows) {
        EXPECT(op, "d_rows", d_rows, dt, rows, dim);
        EXPECT(op, "d_cols", d_cols, dt, cols, dim);
        SC_CHECK(d_rows->data != d_cols->data ||
                     (z_rows->data == z_cols->data && rows == cols && d->row_offset == 0),
                 "%s: d_rows may be d_cols only in the single-matrix form (z_rows == z_cols)", op);
    }
    size_t need = be->ops->contrastive_workspace(be, d, rows, cols, dim, dt);
    size_t have = ws ? sc_tensor_nbytes(ws) : 0;
    SC_CHECK(have >= need && (need == 0 || ws->data), "%s: workspace of %zu bytes, %zu needed", op, have, need);
    be->ops->contrastive(be, d, z_rows, z_cols, loss, accuracy, d_rows, d_cols, ws);
}

void sc_op_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                      sc_tensor *params, const sc_tensor *grads, sc_tensor *state, sc_tensor *state2,
                      sc_tensor *scalars) {
    const char *op = "optim_step";
    expect_float(op, params);
    sc_dtype dt = params->dtype;
    EXPECT(op, "params", params, dt, table->total);
    if (grads && grads->dtype == SC_BF16 && dt == SC_F32 && be->kind == SC_DEVICE_CUDA)
        EXPECT(op, "grads", grads, SC_BF16, table->total);
    else
        EXPECT(op, "grads", grads, dt, table->total);
    EXPECT(op, "state", state, dt, table->total);
    if (sc_optim_state_buffers(hp->kind) == 2)
        EXPECT(op, "state2", state2, dt, table->total);
    else
        SC_CHECK(state2 == NULL, "%s: state2 is only for AdamW", op);
    EXPECT(op, "scalars", scalars, SC_F64, SC_OPTIM_NSCALARS);
    SC_CHECK(hp->kind == SC_OPTIM_LARS || hp->kind == SC_OPTIM_SGD || hp->kind == SC_OPTIM_ADAMW,
             "%s: unknown optimizer kind %d", op, (int)hp->kind);
    SC_CHECK(hp->momentum >= 0.0 && hp->momentum < 1.0, "%s: momentum %g is outside [0, 1)", op, hp->momentum);
    SC_CHECK(hp->kind != SC_OPTIM_ADAMW ||
                 (hp->beta1 >= 0.0 && hp->beta1 < 1.0 && hp->beta2 >= 0.0 && hp->beta2 < 1.0 && hp->eps > 0.0),
             "%s: AdamW needs betas in [0, 1) and eps > 0", op);
    SC_CHECK(hp->clip_grad_norm >= 0.0, "%s: clip_grad_norm must be >= 0", op);
    SC_CHECK(!hp->use_schedule || (hp->schedule.warmup_steps >= 0 &&
                                   hp->schedule.total_steps >= hp->schedule.warmup_steps &&
                                   hp->schedule.total_steps >= 1),
             "%s: schedule needs 0 <= warmup <= total and total >= 1", op);
    be->ops->optim_step(be, hp, table, params, grads, state, state2, scalars);
}

void sc_op_softmax_xent(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels,
                        sc_tensor *loss, sc_tensor *accuracy, sc_tensor *dlogits) {
    expect_float("softmax_xent", logits);
    SC_CHECK(logits->ndim == 2 && logits->shape[0] >= 1 && logits->shape[1] >= 1,
             "softmax_xent: logits must be [N, K] with N, K >= 1");
    EXPECT("softmax_xent", "labels", labels, SC_I32, logits->shape[0]);
    EXPECT("softmax_xent", "loss", loss, logits->dtype, 1);
    if (accuracy) EXPECT("softmax_xent", "accuracy", accuracy, logits->dtype, 1);
    if (dlogits) expect_same("softmax_xent", "dlogits", dlogits, logits);
    be->ops->softmax_xent(be, logits, labels, loss, accuracy, dlogits);
}

void sc_op_knn_scores(sc_backend *be, const sc_tensor *queries, const sc_tensor *bank,
                      const sc_tensor *bank_labels, int k, double temperature, sc_tensor *scores) {
    expect_float("knn_scores", queries);
    SC_CHECK(queries->ndim == 2 && bank && bank->ndim == 2, "knn_scores: queries and bank must be 2-D");
    int64_t q = queries->shape[0], f = queries->shape[1], n = bank->shape[0];
    EXPECT("knn_scores", "bank", bank, queries->dtype, n, f);
    EXPECT("knn_scores", "bank_labels", bank_labels, SC_I32, n);
    SC_CHECK(scores && scores->ndim == 2 && scores->shape[1] >= 1, "knn_scores: scores must be [Q, C]");
    EXPECT("knn_scores", "scores", scores, queries->dtype, q, scores->shape[1]);
    SC_CHECK(k >= 1 && k <= n, "knn_scores: k = %d must be in [1, %lld]", k, (long long)n);
    SC_CHECK(temperature > 0.0, "knn_scores: temperature must be positive");
    be->ops->knn_scores(be, queries, bank, bank_labels, k, temperature, scores);
}

/* ------------------------------------------------------------------------------------ */
/* step graphs                                                                          */

struct sc_step_graph {
    void *graph; /* the backend's recording */
};

int sc_backend_can_capture(const sc_backend *be) { return be->ops->capture_begin != NULL; }

sc_status sc_backend_capture_begin(sc_backend *be) {
    if (!be->ops->capture_begin)
        return sc_errorf(SC_ERR_UNSUPPORTED, "the %s backend cannot record step graphs", be->ops->name);
    return be->ops->capture_begin(be);
}

sc_status sc_backend_capture_end(sc_backend *be, sc_step_graph **out) {
    *out = NULL;
    SC_CHECK(be->ops->capture_end, "capture_end on a backend without step graphs");
    void *graph = NULL;
    SC_TRY(be->ops->capture_end(be, &graph));
    sc_step_graph *g = malloc(sizeof *g);
    if (!g) {
        be->ops->graph_free(be, graph);
        return sc_errorf(SC_ERR_NOMEM, "cannot allocate a step graph");
    }
    g->graph = graph;
    *out = g;
    return SC_OK;
}

void sc_step_graph_launch(sc_backend *be, sc_step_graph *g) { be->ops->graph_launch(be, g->graph); }

void sc_step_graph_free(sc_backend *be, sc_step_graph *g) {
    if (!g) return;
    be->ops->graph_free(be, g->graph);
    free(g);
}

size_t sc_op_augment_workspace(sc_backend *be, const sc_augment_params *p, int samples, int wc) {
    SC_CHECK(sc_backend_can_augment(be), "%s: no device augmentation", be->ops->name);
    return be->ops->augment_workspace(be, p, samples, wc);
}

void sc_op_augment_crops(sc_backend *be, const sc_augment_params *p, uint64_t seed, uint32_t epoch,
                         const uint8_t *crops, const uint32_t *keys, int samples, int wc,
                         sc_tensor *views, void *workspace) {
    SC_CHECK(sc_backend_can_augment(be), "%s: no device augmentation", be->ops->name);
    SC_CHECK(samples > 0 && (wc == 1 || wc == 3) && crops && keys, "augment_crops: %d samples, %d channels",
             samples, wc);
    EXPECT("augment_crops", "views", views, SC_F32, 2 * (int64_t)samples, p->out_size, p->out_size,
           p->out_channels);
    be->ops->augment_crops(be, p, seed, epoch, crops, keys, samples, wc, (float *)views->data, workspace);
}
