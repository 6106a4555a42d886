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
 */
#ifndef SIMCLR_BACKEND_H
#define SIMCLR_BACKEND_H

#include <stddef.h>

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

    /* ---- optional fused batch norm: NULL entries are composed by backend.c from the ops
     * above (bn, then add, then relu), which defines their semantics ----
     * y = act(bn(x) + residual) with act = ReLU when relu != 0, else the identity; residual
     * (may be NULL) has x's shape; y aliases neither x nor residual. Statistics, saved values
     * and running statistics exactly as bn_fwd_train / bn_fwd_eval. */
    void (*bn_act_fwd_train)(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                             const sc_tensor *beta, const sc_tensor *residual, int relu, sc_tensor *y,
                             sc_tensor *save_mean, sc_tensor *save_invstd, sc_tensor *running_mean,
                             sc_tensor *running_var, double momentum, double eps);
    void (*bn_act_fwd_eval)(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                            const sc_tensor *beta, const sc_tensor *residual, int relu,
                            const sc_tensor *running_mean, const sc_tensor *running_var, double eps,
                            sc_tensor *y);
    /* Backward of y = relu(bn(x)) (no residual): bn_bwd applied to dy * (y > 0), where y is
     * the ReLU OUTPUT. dy is consumed: its contents are unspecified afterwards. */
    void (*bn_relu_bwd)(sc_backend *be, const sc_tensor *x, const sc_tensor *y, const sc_tensor *dy,
                        const sc_tensor *gamma, const sc_tensor *save_mean,
                        const sc_tensor *save_invstd, sc_tensor *dx, sc_tensor *dgamma,
                        sc_tensor *dbeta);

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

    /* ---- supervised loss, monitoring and evaluation ---- */
    /* Softmax cross-entropy of logits [N, K] against labels [N] (I32, each in [0, K)):
     * loss[1] = (1/N) sum_i (logsumexp_k l_ik - l_{i,y_i}) (max-subtracted); accuracy[1] (may
     * be NULL) = fraction of rows whose first maximum is at the label; dlogits (may be NULL) =
     * d loss / d logits = (softmax(l_i) - onehot(y_i)) / N. */
    void (*softmax_xent)(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels,
                         sc_tensor *loss, sc_tensor *accuracy, sc_tensor *dlogits);
    /* out[1] = sum of x^2 over every element of x (any shape), accumulated in double over
     * fixed-size blocks combined in order (the gradient norm is sqrt of it on the flat
     * gradient buffer). */
    void (*sum_squares)(sc_backend *be, const sc_tensor *x, sc_tensor *out);
    /* Weighted kNN vote: for each query row q_i of queries [Q, F], the k rows of bank [N, F]
     * with the largest dot products s (rows are L2-normalised, so s is the cosine; ties go to
     * the lower bank index) vote for their label: scores[i, c] = sum over those neighbours
     * with bank_labels == c of exp(s / temperature). bank_labels [N] I32 in [0, C);
     * scores [Q, C]; 1 <= k <= N. */
    void (*knn_scores)(sc_backend *be, const sc_tensor *queries, const sc_tensor *bank,
                       const sc_tensor *bank_labels, int k, double temperature,
                       sc_tensor *scores);
    /* ---- step graphs (optional; NULL where the backend has none, e.g. the CPU) ----
     * Between capture_begin and capture_end the ops are recorded, not run; capture_end hands
     * back the recording (a CUDA graph), graph_launch replays it with the same buffers. A
     * captured sequence must not read or write host memory, and every op in it must have run
     * once before outside a capture (plans, scratch and autotuning happen on first use). */
    sc_status (*capture_begin)(sc_backend *be);
    sc_status (*capture_end)(sc_backend *be, void **graph);
    void (*graph_launch)(sc_backend *be, void *graph);
    void (*graph_free)(sc_backend *be, void *graph);
} sc_backend_ops;

struct sc_backend {
    const sc_backend_ops *ops;
    sc_device_kind kind;
    int device;    /* CUDA ordinal; -1 on the CPU */
    int threads;   /* CPU compute threads */
    int deterministic;
    int allow_tf32;
    int autotune;
    size_t workspace_limit;
    void *impl;    /* backend-private state */
};

typedef struct sc_backend_options {
    int threads;            /* CPU compute threads; 0 = every core */
    int deterministic;      /* CUDA: deterministic algorithms only (bitwise repeatable runs) */
    int allow_tf32;         /* CUDA: allow TF32 tensor-core math for fp32 */
    int autotune;           /* CUDA: time the candidate convolution engines on first use and keep
                               the fastest (ignored when deterministic) */
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
void sc_op_bn_act_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                            const sc_tensor *beta, const sc_tensor *residual, int relu, sc_tensor *y,
                            sc_tensor *save_mean, sc_tensor *save_invstd, sc_tensor *running_mean,
                            sc_tensor *running_var, double momentum, double eps);
void sc_op_bn_act_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                           const sc_tensor *beta, const sc_tensor *residual, int relu,
                           const sc_tensor *running_mean, const sc_tensor *running_var, double eps,
                           sc_tensor *y);
void sc_op_bn_relu_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *y, const sc_tensor *dy,
                       const sc_tensor *gamma, const sc_tensor *save_mean,
                       const sc_tensor *save_invstd, sc_tensor *dx, sc_tensor *dgamma,
                       sc_tensor *dbeta);
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
void sc_op_softmax_xent(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels,
                        sc_tensor *loss, sc_tensor *accuracy, sc_tensor *dlogits);
void sc_op_sum_squares(sc_backend *be, const sc_tensor *x, sc_tensor *out);
void sc_op_knn_scores(sc_backend *be, const sc_tensor *queries, const sc_tensor *bank,
                      const sc_tensor *bank_labels, int k, double temperature, sc_tensor *scores);

/* ---- step graphs: record a sequence of ops once, replay it every step ----
 * sc_backend_capture_begin fails with SC_ERR_UNSUPPORTED on a backend without graphs (the
 * caller then simply runs its ops); see the table entries for the rules. */
typedef struct sc_step_graph sc_step_graph;
int sc_backend_can_capture(const sc_backend *be);
sc_status sc_backend_capture_begin(sc_backend *be);
sc_status sc_backend_capture_end(sc_backend *be, sc_step_graph **out);
void sc_step_graph_launch(sc_backend *be, sc_step_graph *g);
void sc_step_graph_free(sc_backend *be, sc_step_graph *g);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_BACKEND_H */
