/*
 * backend.h - the backend op table: every computation the model, loss and optimizer need.
 *
 * Two backends fill one `sc_backend_ops` table each: the CPU reference (src/backend/cpu,
 * straightforward fp32/fp64 code, the specification) and CUDA (src/backend/cuda + kernels/).
 * Model, loss and optimizer code call the sc_op_* functions below and never test which
 * backend they run on. The sc_op_* wrappers (src/backend/backend.c) check shapes and dtypes
 * once for both backends, then call through the table.
 *
 * Conventions shared by all ops:
 *  - Tensors are dense, row-major views (include/simclr/tensor.h) in the backend's memory.
 *  - Activations are NHWC; convolution filters are KRSC ([out, kh, kw, in]); linear weights
 *    are [out, in] like PyTorch's nn.Linear.
 *  - Every output is overwritten (never accumulated into) unless the op says otherwise.
 *  - All tensors of one call share a dtype: F32 on every backend, F64 on the CPU (used by the
 *    finite-difference gradient checks).
 *  - Scalars that change every step (learning rate) and results (loss) are 1-element tensors
 *    in backend memory, so a device step needs no host synchronisation.
 *  - Input batches travel through host staging buffers (host_alloc: page-locked on CUDA) and
 *    upload_async on a copy stream, ordered against the compute work by events, so the upload
 *    of batch k+1 overlaps step k. Table entries added for this (host_alloc .. augment_crops)
 *    may be NULL: the wrappers then fall back to malloc, synchronous uploads and no-op events,
 *    and sc_backend_can_augment() reports 0.
 */
#ifndef SIMCLR_BACKEND_H
#define SIMCLR_BACKEND_H

#include <stddef.h>

#include "simclr/data.h"
#include "simclr/params.h"
#include "simclr/status.h"
#include "simclr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sc_device_kind { SC_DEVICE_CPU = 0, SC_DEVICE_CUDA = 1 } sc_device_kind;

/* A 2-D convolution: input [n, h, w, c], filter [k, r, s, c], output [n, oh, ow, k].
 * Square stride and symmetric zero padding; no dilation, no groups, no bias. */
typedef struct sc_conv_desc {
    int n, h, w, c;
    int k, r, s;
    int stride, pad;
    int oh, ow; /* derived by sc_conv_desc_make */
} sc_conv_desc;

sc_conv_desc sc_conv_desc_make(int n, int h, int w, int c, int k, int r, int s, int stride, int pad);

/* A max pool over [n, h, w, c] with a square window. */
typedef struct sc_pool_desc {
    int n, h, w, c;
    int window, stride, pad;
    int oh, ow; /* derived */
} sc_pool_desc;

sc_pool_desc sc_pool_desc_make(int n, int h, int w, int c, int window, int stride, int pad);

/* Optimizer kinds and hyper-parameters for optim_step (see include/simclr/optim.h). */
typedef enum sc_optim_kind { SC_OPTIM_LARS = 0, SC_OPTIM_SGD = 1 } sc_optim_kind;

typedef struct sc_optim_hparams {
    sc_optim_kind kind;
    double momentum;     /* 0.9 */
    double weight_decay; /* coupled (added to the gradient), skipped for SC_PARAM_NO_WD rows */
    double trust_coef;   /* LARS eeta (0.001); rows with SC_PARAM_NO_LARS use trust 1 */
    int nesterov;        /* SGD only */
} sc_optim_hparams;

typedef struct sc_backend sc_backend;

/* A point in a backend's work queue (a cudaEvent_t on CUDA), opaque. */
typedef struct sc_backend_event sc_backend_event;

typedef struct sc_backend_ops {
    const char *name;

    /* ---- memory (bytes) ---- */
    void *(*alloc)(sc_backend *be, size_t bytes); /* 256-byte aligned; NULL when out of memory */
    void (*free)(sc_backend *be, void *ptr);
    void (*upload)(sc_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(sc_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(sc_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(sc_backend *be, void *dst, size_t bytes);
    void (*synchronize)(sc_backend *be);

    /* ---- convolution ---- */
    /* Workspace bytes that fwd, bwd_data and bwd_filter of `d` need (the max of the three). */
    size_t (*conv2d_workspace)(sc_backend *be, const sc_conv_desc *d, sc_dtype dt);
    void (*conv2d_fwd)(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x,
                       const sc_tensor *w, sc_tensor *y, sc_tensor *ws);
    void (*conv2d_bwd_data)(sc_backend *be, const sc_conv_desc *d, const sc_tensor *dy,
                            const sc_tensor *w, sc_tensor *dx, sc_tensor *ws);
    void (*conv2d_bwd_filter)(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x,
                              const sc_tensor *dy, sc_tensor *dw, sc_tensor *ws);

    /* ---- batch norm over the channel (last) dim; x is viewed as [M, C] ----
     * Training: y = gamma * (x - mean) * invstd + beta with the batch's biased variance;
     * saves mean and invstd = 1/sqrt(var + eps) for the backward pass and updates
     * running_mean/var with running = (1 - momentum) * running + momentum * batch, using the
     * unbiased variance for running_var (PyTorch's convention). beta may be NULL (no shift). */
    void (*bn_fwd_train)(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                         const sc_tensor *beta, sc_tensor *y, sc_tensor *save_mean,
                         sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                         double momentum, double eps);
    void (*bn_fwd_eval)(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                        const sc_tensor *beta, const sc_tensor *running_mean,
                        const sc_tensor *running_var, double eps, sc_tensor *y);
    /* Backward of bn_fwd_train. dbeta may be NULL (layer without beta). */
    void (*bn_bwd)(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                   const sc_tensor *save_mean, const sc_tensor *save_invstd, sc_tensor *dx,
                   sc_tensor *dgamma, sc_tensor *dbeta);

    /* ---- elementwise ---- */
    void (*relu_fwd)(sc_backend *be, const sc_tensor *x, sc_tensor *y); /* y may alias x */
    /* dx = dy * (y > 0), using the forward OUTPUT y. dx may alias dy. */
    void (*relu_bwd)(sc_backend *be, const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx);
    void (*add)(sc_backend *be, const sc_tensor *a, const sc_tensor *b, sc_tensor *y); /* y may alias a or b */

    /* ---- pooling ---- */
    void (*maxpool_fwd)(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, sc_tensor *y);
    /* Routes each output gradient to the first maximum of its window (row-major order),
     * recomputed from x. Padding never wins. */
    void (*maxpool_bwd)(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x,
                        const sc_tensor *dy, sc_tensor *dx);
    void (*avgpool_fwd)(sc_backend *be, const sc_tensor *x, sc_tensor *y);   /* [N,H,W,C] -> [N,C] */
    void (*avgpool_bwd)(sc_backend *be, const sc_tensor *dy, sc_tensor *dx); /* [N,C] -> [N,H,W,C] */

    /* ---- linear: y[M,N] = x[M,K] * w[N,K]^T + b[N] (b may be NULL) ---- */
    void (*linear_fwd)(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *b,
                       sc_tensor *y);
    /* dx (may be NULL) = dy w; dw = dy^T x; db (may be NULL) = column sums of dy. */
    void (*linear_bwd)(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *dy,
                       sc_tensor *dx, sc_tensor *dw, sc_tensor *db);

    /* ---- L2 normalisation of rows: y = x / max(||x||, 1e-12), norm[M] saved ---- */
    void (*l2norm_fwd)(sc_backend *be, const sc_tensor *x, sc_tensor *y, sc_tensor *norm);
    void (*l2norm_bwd)(sc_backend *be, const sc_tensor *y, const sc_tensor *norm,
                       const sc_tensor *dy, sc_tensor *dx);

    /* ---- NT-Xent on L2-normalised z [2N, D]: rows 0..N-1 are view 1, N..2N-1 view 2, the
     * positive of row i is row (i + N) mod 2N. loss[1] = mean over all 2N anchors of
     * -log softmax_{k != i}(z_i . z_k / tau)[pos(i)]; accuracy[1] = fraction of anchors whose
     * positive has the highest similarity; dz (may be NULL) = d loss / d z. ---- */
    void (*ntxent)(sc_backend *be, const sc_tensor *z, double tau, sc_tensor *loss,
                   sc_tensor *accuracy, sc_tensor *dz);

    /* ---- one optimizer step over the flat buffers (1-D tensors of table->total elements):
     * state is the momentum buffer, lr a 1-element tensor. Rows flagged SC_PARAM_BN_STAT are
     * left untouched. ---- */
    void (*optim_step)(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                       sc_tensor *params, const sc_tensor *grads, sc_tensor *state,
                       const sc_tensor *lr);

    /* ---- host staging and asynchronous uploads (any of these may be NULL) ---- */
    /* Host memory uploads can read asynchronously (page-locked on CUDA); NULL when out of memory. */
    void *(*host_alloc)(sc_backend *be, size_t bytes);
    void (*host_free)(sc_backend *be, void *ptr);
    sc_backend_event *(*event_create)(sc_backend *be); /* NULL when out of resources */
    void (*event_destroy)(sc_backend *be, sc_backend_event *ev);
    /* Mark the point after all compute work enqueued so far. */
    void (*event_record)(sc_backend *be, sc_backend_event *ev);
    /* Block the calling thread until the work before `ev` has finished. */
    void (*event_sync)(sc_backend *be, sc_backend_event *ev);
    /* Copy host -> device on the copy stream after `after` (may be NULL) has completed, then
     * record `done` there; compute work enqueued afterwards waits for `done`. host_src must stay
     * unchanged until `done` completes. */
    void (*upload_async)(sc_backend *be, void *dst, const void *host_src, size_t bytes,
                         sc_backend_event *after, sc_backend_event *done);

    /* ---- the device half of SimCLR augmentation (data.augment_on: gpu) ----
     * crops [2B, S, S, wc] uint8 (rows 0..B-1 the first view of samples keys[0..B), rows
     * B..2B-1 the second), keys [B] uint32 sample ids; views [2B, S, S, p->out_channels] =
     * flip -> jitter -> grayscale -> blur -> clip -> normalise, each view's randomness from the
     * Philox stream (seed, epoch, key, view, SC_RNG_AUGMENT) exactly as sc_augment_view draws
     * it. workspace: augment_workspace(...) bytes of device memory. */
    size_t (*augment_workspace)(sc_backend *be, const sc_augment_params *p, int samples, int wc);
    void (*augment_crops)(sc_backend *be, const sc_augment_params *p, uint64_t seed, uint32_t epoch,
                          const uint8_t *crops, const uint32_t *keys, int samples, int wc,
                          float *views, void *workspace);
} sc_backend_ops;

struct sc_backend {
    const sc_backend_ops *ops;
    sc_device_kind kind;
    int device;    /* CUDA ordinal; -1 on the CPU */
    int threads;   /* CPU compute threads */
    int deterministic;
    int allow_tf32;
    size_t workspace_limit;
    void *impl;    /* backend-private state */
};

typedef struct sc_backend_options {
    int threads;            /* CPU compute threads; 0 = every core */
    int deterministic;      /* CUDA: deterministic algorithms only */
    int allow_tf32;         /* CUDA: allow TF32 tensor-core math for fp32 */
    size_t workspace_limit; /* CUDA: convolution workspace budget in bytes (0 = default) */
} sc_backend_options;

/* Create a backend from a device string: "cpu", "cuda", "cuda:<n>" or "auto" (the first
 * GPU when one is present and this build can train on it, else the CPU). */
sc_status sc_backend_create(const char *device, const sc_backend_options *opt, sc_backend **out);
void sc_backend_destroy(sc_backend *be);

/* GPUs visible to this build (0 in a CPU-only build or without a driver). */
int sc_cuda_device_count(void);
/* Multi-line description of devices and library versions for `simclr info`. */
void sc_backend_describe(char *buf, size_t cap);

/* ---- memory helpers ---- */
sc_status sc_backend_alloc(sc_backend *be, size_t bytes, const char *what, void **out);
void sc_backend_free(sc_backend *be, void *ptr);
void sc_tensor_upload(sc_backend *be, sc_tensor *dst, const void *host_src);
void sc_tensor_download(sc_backend *be, void *host_dst, const sc_tensor *src);
void sc_tensor_zero(sc_backend *be, sc_tensor *t);
/* Read a 1-element tensor (F32 or F64) to the host as a double. */
double sc_tensor_read_scalar(sc_backend *be, const sc_tensor *t);
/* Write a 1-element tensor (F32 or F64) from a double. */
void sc_tensor_write_scalar(sc_backend *be, sc_tensor *t, double v);

/* ---- staging, events and asynchronous uploads (fallbacks when the table has none) ---- */
/* host_alloc, else 256-byte aligned malloc. */
sc_status sc_backend_host_alloc(sc_backend *be, size_t bytes, const char *what, void **out);
void sc_backend_host_free(sc_backend *be, void *ptr);
/* *out is NULL when the backend has no events: every operation on a NULL event is a no-op and
 * it counts as complete. */
sc_status sc_backend_event_create(sc_backend *be, sc_backend_event **out);
void sc_backend_event_destroy(sc_backend *be, sc_backend_event *ev);
void sc_backend_event_record(sc_backend *be, sc_backend_event *ev);
void sc_backend_event_sync(sc_backend *be, sc_backend_event *ev);
/* upload_async, else a synchronous upload after synchronize (when `after` is given). */
void sc_backend_upload_async(sc_backend *be, void *dst, const void *host_src, size_t bytes,
                             sc_backend_event *after, sc_backend_event *done);
/* 1 when the backend implements augment_crops. */
int sc_backend_can_augment(const sc_backend *be);

/* ---- checked op wrappers (one per table entry; see the table for semantics) ---- */
size_t sc_op_conv2d_workspace(sc_backend *be, const sc_conv_desc *d, sc_dtype dt);
void sc_op_conv2d_fwd(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x, const sc_tensor *w,
                      sc_tensor *y, sc_tensor *ws);
void sc_op_conv2d_bwd_data(sc_backend *be, const sc_conv_desc *d, const sc_tensor *dy,
                           const sc_tensor *w, sc_tensor *dx, sc_tensor *ws);
void sc_op_conv2d_bwd_filter(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x,
                             const sc_tensor *dy, sc_tensor *dw, sc_tensor *ws);
void sc_op_bn_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                        const sc_tensor *beta, sc_tensor *y, sc_tensor *save_mean,
                        sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                        double momentum, double eps);
void sc_op_bn_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                       const sc_tensor *beta, const sc_tensor *running_mean,
                       const sc_tensor *running_var, double eps, sc_tensor *y);
void sc_op_bn_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                  const sc_tensor *save_mean, const sc_tensor *save_invstd, sc_tensor *dx,
                  sc_tensor *dgamma, sc_tensor *dbeta);
void sc_op_relu_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y);
void sc_op_relu_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx);
void sc_op_add(sc_backend *be, const sc_tensor *a, const sc_tensor *b, sc_tensor *y);
void sc_op_maxpool_fwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, sc_tensor *y);
void sc_op_maxpool_bwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x,
                       const sc_tensor *dy, sc_tensor *dx);
void sc_op_avgpool_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y);
void sc_op_avgpool_bwd(sc_backend *be, const sc_tensor *dy, sc_tensor *dx);
void sc_op_linear_fwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *b,
                      sc_tensor *y);
void sc_op_linear_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *dy,
                      sc_tensor *dx, sc_tensor *dw, sc_tensor *db);
void sc_op_l2norm_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y, sc_tensor *norm);
void sc_op_l2norm_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *norm,
                      const sc_tensor *dy, sc_tensor *dx);
void sc_op_ntxent(sc_backend *be, const sc_tensor *z, double tau, sc_tensor *loss,
                  sc_tensor *accuracy, sc_tensor *dz);
void sc_op_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                      sc_tensor *params, const sc_tensor *grads, sc_tensor *state,
                      const sc_tensor *lr);
size_t sc_op_augment_workspace(sc_backend *be, const sc_augment_params *p, int samples, int wc);
/* views: F32 [2 samples, S, S, p->out_channels]; crops/keys/workspace raw device pointers. */
void sc_op_augment_crops(sc_backend *be, const sc_augment_params *p, uint64_t seed, uint32_t epoch,
                         const uint8_t *crops, const uint32_t *keys, int samples, int wc,
                         sc_tensor *views, void *workspace);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_BACKEND_H */
