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
 *  - Scalars that change every step (step counter, learning rate) and results (loss, gradient
 *    norm) live in backend memory, so a device step needs no host synchronisation.
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
#include "simclr/schedule.h"
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

/* ---- contrastive losses (the loss op; see src/backend/cpu/cpu_loss.c for the exact
 * definitions, which every backend follows) ----
 *
 * The loss compares this rank's anchor rows z_rows [R, D] with the columns z_cols [C, D]: all
 * ranks' embeddings gathered in rank order (a single process passes the same tensor twice).
 * Local row i IS column row_offset + i (the rows are a slice of the columns). Columns come in
 * pairing blocks of `pair_block` rows (each block: its first half is view 1 of its images, the
 * second half view 2 in the same order), so the positive of column j is
 *   pos(j) = (j / P) * P + ((j % P) + P / 2) % P,        P = pair_block (0 means C).
 * With s_ik the cosine similarity of row i and column k, the anchor's own column row_offset + i
 * is masked out, its positive is pos(row_offset + i), and its negatives are every other column.
 * The loss is the mean over the R local anchors; `accuracy` is the fraction of local anchors
 * whose positive is strictly more similar than every negative.
 *
 * Multi-GPU: each rank passes its rows and the all-gathered columns; the gradient of its own
 * rows is d_rows + (the sum over ranks of their d_cols, reduce-scattered to the owner). With
 * the data-parallel mean of parameter gradients, that is the gradient of the mean loss over
 * all anchors of all ranks. */
typedef enum sc_contrastive_kind {
    SC_CONTRASTIVE_NTXENT = 0,      /* softmax cross-entropy over k != i, temperature tau */
    SC_CONTRASTIVE_NT_LOGISTIC = 1, /* sigmoid of the positive and of each negative, temperature tau */
    SC_CONTRASTIVE_MARGIN = 2,      /* margin triplet: max(0, s_neg - s_pos + margin) */
} sc_contrastive_kind;

typedef struct sc_contrastive_desc {
    sc_contrastive_kind kind;
    double tau;         /* temperature: ntxent and nt_logistic */
    double margin;      /* margin triplet, in cosine-similarity units */
    int semi_hard;      /* nt_logistic and margin: use only each anchor's semi-hard negative */
    int normalize;      /* 1: the op L2-normalises rows and columns itself (x / max(||x||, 1e-12))
                         * and returns gradients with respect to the raw inputs; 0: the inputs
                         * are already unit vectors */
    int64_t row_offset; /* column index of local row 0 */
    int64_t pair_block; /* rows per pairing block of the columns; 0 = C (one block) */
} sc_contrastive_desc;

/* The positive of column j: its partner in the other half of its pairing block. */
static inline int64_t sc_contrastive_positive(int64_t j, int64_t pair_block) {
    return j / pair_block * pair_block + (j % pair_block + pair_block / 2) % pair_block;
}

/* The single-process form of the paper: z [2N, D], rows = columns, one pairing block. */
static inline sc_contrastive_desc sc_contrastive_ntxent(double tau) {
    sc_contrastive_desc d = {SC_CONTRASTIVE_NTXENT, tau, 0.0, 0, 0, 0, 0};
    return d;
}

/* ---- optimizers (see src/backend/cpu/cpu_optim.c for the exact update rules) ----
 *
 * One step reads the gradients once to get every tensor's norms and the global gradient norm,
 * then updates every trainable tensor. The step keeps its scalars in backend memory (one F64
 * tensor of SC_OPTIM_NSCALARS elements), so it never synchronises with the host:
 *   [SC_OPTIM_STEP]       in/out: the schedule step t of this call; incremented by every call
 *                         (taken or skipped)
 *   [SC_OPTIM_LR]         out: the learning rate of this call (schedule(t), rounded to the
 *                         parameter dtype); IN when hparams.use_schedule is 0
 *   [SC_OPTIM_GRAD_NORM]  out: the global L2 norm of the gradients (before clipping) over every
 *                         row without SC_PARAM_BN_STAT; NaN or Inf when a gradient is not finite
 *   [SC_OPTIM_CLIP_COEF]  out: the factor the gradients were scaled by (1 without clipping)
 *   [SC_OPTIM_SKIPPED]    out: 1 when this call skipped the update because a gradient was not
 *                         finite (weights and state are then left untouched), else 0
 *   [SC_OPTIM_SKIP_COUNT] in/out: steps skipped so far
 * AdamW's bias corrections use the count of applied updates, STEP - SKIP_COUNT + 1. */
typedef enum sc_optim_kind { SC_OPTIM_LARS = 0, SC_OPTIM_SGD = 1, SC_OPTIM_ADAMW = 2 } sc_optim_kind;

enum {
    SC_OPTIM_STEP = 0,
    SC_OPTIM_LR,
    SC_OPTIM_GRAD_NORM,
    SC_OPTIM_CLIP_COEF,
    SC_OPTIM_SKIPPED,
    SC_OPTIM_SKIP_COUNT,
    SC_OPTIM_NSCALARS
};

typedef struct sc_optim_hparams {
    sc_optim_kind kind;
    double momentum;       /* LARS and SGD (0.9) */
    double weight_decay;   /* LARS, SGD: added to the gradient; AdamW: decoupled (w *= 1 - lr wd);
                            * skipped for SC_PARAM_NO_WD rows */
    double trust_coef;     /* LARS eeta (0.001); rows with SC_PARAM_NO_LARS use trust 1 */
    int nesterov;          /* SGD only */
    double beta1, beta2;   /* AdamW moment decay rates (0.9, 0.999) */
    double eps;            /* AdamW denominator term (1e-8) */
    double clip_grad_norm; /* > 0: scale every gradient by min(1, clip / (||g|| + 1e-6)) first */
    int use_schedule;      /* 1: lr = sc_schedule_lr(&schedule, scalars[STEP]) on the backend;
                            * 0: lr = scalars[SC_OPTIM_LR] as written by the caller */
    sc_schedule schedule;
} sc_optim_hparams;

/* Flat state buffers an optimizer needs: 1 (momentum) or 2 (AdamW: first and second moment). */
static inline int sc_optim_state_buffers(sc_optim_kind kind) { return kind == SC_OPTIM_ADAMW ? 2 : 1; }

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

    /* ---- global (cross-replica) batch norm: training BN split at its reductions, so that a
     * communicator can sum every rank's per-channel sums in between. sums are F64 [2, C].
     * bn_sums, forward (dy NULL): sums = (sum x, sum x^2) over this rank's rows; backward:
     *   sums = (sum dy, sum dy * (x - save_mean)).
     * bn_fwd_from_sums: bn_fwd_train with the batch statistics of `count` rows (all ranks of
     *   the group): mean = s / count, biased var = max(q / count - mean^2, 0), running_var
     *   takes var * count / (count - 1). beta may be NULL.
     * bn_bwd_from_sums: bn_bwd with the global backward sums over `count` rows for dx, and
     *   this rank's own (`local`) for dgamma = local_q * invstd and dbeta = local_s (dbeta may
     *   be NULL), so that the data-parallel gradient reduction over ranks sums them once. */
    void (*bn_sums)(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *save_mean,
                    sc_tensor *sums);
    void (*bn_fwd_from_sums)(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                             const sc_tensor *sums, double count, sc_tensor *y, sc_tensor *save_mean,
                             sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                             double momentum, double eps);
    void (*bn_bwd_from_sums)(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                             const sc_tensor *save_mean, const sc_tensor *save_invstd, const sc_tensor *local,
                             const sc_tensor *global, double count, sc_tensor *dx, sc_tensor *dgamma,
                             sc_tensor *dbeta);

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

    /* ---- the contrastive loss (semantics above sc_contrastive_desc) ----
     * z_rows [R, D] and z_cols [C, D] share a dtype: F32 or F64 (CPU), F32 or BF16 (CUDA,
     * computed with fp32 accumulation). loss[1] and accuracy[1] (may be NULL) are F32 for BF16
     * inputs, else the input dtype. d_rows [R, D] and d_cols [C, D] (the input dtype) are both
     * NULL (forward only) or both given: d_rows receives the gradient through the anchor role,
     * d_cols through the column role. In the single-process form (z_rows and z_cols the same
     * tensor, row_offset 0) d_cols may be the same tensor as d_rows: it then receives their
     * sum, d loss / d z. ws is backend scratch of contrastive_workspace bytes (may be NULL
     * when that is 0); nothing else is allocated, and no R x C matrix is kept on CUDA. */
    size_t (*contrastive_workspace)(sc_backend *be, const sc_contrastive_desc *d, int64_t rows,
                                    int64_t cols, int64_t dim, sc_dtype dt);
    void (*contrastive)(sc_backend *be, const sc_contrastive_desc *d, const sc_tensor *z_rows,
                        const sc_tensor *z_cols, sc_tensor *loss, sc_tensor *accuracy,
                        sc_tensor *d_rows, sc_tensor *d_cols, sc_tensor *ws);

    /* ---- one optimizer step over the flat buffers (1-D tensors of table->total elements):
     * state is the momentum (LARS, SGD) or the first moment (AdamW), state2 the AdamW second
     * moment (NULL otherwise), scalars the F64 [SC_OPTIM_NSCALARS] step record above. grads
     * have the params dtype (or BF16 with F32 params on CUDA). Rows flagged SC_PARAM_BN_STAT
     * are left untouched. Deterministic: the same inputs give the same bits. ---- */
    void (*optim_step)(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                       sc_tensor *params, const sc_tensor *grads, sc_tensor *state,
                       sc_tensor *state2, sc_tensor *scalars);

    /* ---- supervised loss, monitoring and evaluation ---- */
    /* Softmax cross-entropy of logits [N, K] against labels [N] (I32, each in [0, K)):
     * loss[1] = (1/N) sum_i (logsumexp_k l_ik - l_{i,y_i}) (max-subtracted); accuracy[1] (may
     * be NULL) = fraction of rows whose first maximum is at the label; dlogits (may be NULL) =
     * d loss / d logits = (softmax(l_i) - onehot(y_i)) / N. */
    void (*softmax_xent)(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels,
                         sc_tensor *loss, sc_tensor *accuracy, sc_tensor *dlogits);
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
void sc_op_bn_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *save_mean,
                   sc_tensor *sums);
void sc_op_bn_fwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                            const sc_tensor *sums, double count, sc_tensor *y, sc_tensor *save_mean,
                            sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                            double momentum, double eps);
void sc_op_bn_bwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                            const sc_tensor *save_mean, const sc_tensor *save_invstd, const sc_tensor *local,
                            const sc_tensor *global, double count, sc_tensor *dx, sc_tensor *dgamma,
                            sc_tensor *dbeta);
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
size_t sc_op_contrastive_workspace(sc_backend *be, const sc_contrastive_desc *d, int64_t rows,
                                   int64_t cols, int64_t dim, sc_dtype dt);
void sc_op_contrastive(sc_backend *be, const sc_contrastive_desc *d, const sc_tensor *z_rows,
                       const sc_tensor *z_cols, sc_tensor *loss, sc_tensor *accuracy,
                       sc_tensor *d_rows, sc_tensor *d_cols, sc_tensor *ws);
void sc_op_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                      sc_tensor *params, const sc_tensor *grads, sc_tensor *state, sc_tensor *state2,
                      sc_tensor *scalars);
void sc_op_softmax_xent(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels,
                        sc_tensor *loss, sc_tensor *accuracy, sc_tensor *dlogits);
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
size_t sc_op_augment_workspace(sc_backend *be, const sc_augment_params *p, int samples, int wc);
/* views: F32 [2 samples, S, S, p->out_channels]; crops/keys/workspace raw device pointers. */
void sc_op_augment_crops(sc_backend *be, const sc_augment_params *p, uint64_t seed, uint32_t epoch,
                         const uint8_t *crops, const uint32_t *keys, int samples, int wc,
                         sc_tensor *views, void *workspace);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_BACKEND_H */
