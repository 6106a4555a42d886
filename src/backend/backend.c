/*
 * backend.c - backend selection and the checked sc_op_* wrappers.
 *
 * This is the only file that knows both backends exist: it turns a device string into a
 * CPU or CUDA backend, and it validates the shapes and dtypes of every op call once, so the
 * two implementations can assume well-formed arguments. A mismatch here is a programming
 * error (the model planned its buffers wrongly), so it aborts with both shapes printed.
 */
#include "simclr/backend.h"

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

void sc_op_ntxent(sc_backend *be, const sc_tensor *z, double tau, sc_tensor *loss,
                  sc_tensor *accuracy, sc_tensor *dz) {
    expect_float("ntxent", z);
    SC_CHECK(z->ndim == 2 && z->shape[0] >= 2 && z->shape[0] % 2 == 0,
             "ntxent: z must be [2N, D] with N >= 1");
    SC_CHECK(tau > 0.0, "ntxent: temperature must be positive");
    EXPECT("ntxent", "loss", loss, z->dtype, 1);
    if (accuracy) EXPECT("ntxent", "accuracy", accuracy, z->dtype, 1);
    if (dz) expect_same("ntxent", "dz", dz, z);
    be->ops->ntxent(be, z, tau, loss, accuracy, dz);
}

void sc_op_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                      sc_tensor *params, const sc_tensor *grads, sc_tensor *state,
                      const sc_tensor *lr) {
    expect_float("optim_step", params);
    EXPECT("optim_step", "params", params, params->dtype, table->total);
    EXPECT("optim_step", "grads", grads, params->dtype, table->total);
    EXPECT("optim_step", "state", state, params->dtype, table->total);
    SC_CHECK(lr && sc_tensor_numel(lr) == 1, "optim_step: lr must be a 1-element tensor");
    be->ops->optim_step(be, hp, table, params, grads, state, lr);
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
