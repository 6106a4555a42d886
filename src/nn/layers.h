/*
 * layers.h - the building blocks shared by the encoder and the head: a convolution and a
 * batch-norm layer that know their rows in the parameter table, and the context that binds
 * them to one backend and one set of flat buffers for a pass.
 *
 * Layers hold no pointers into the buffers, only parameter-table indices; views are made
 * per call (cheap), so the same layer works on any backend and after buffers are replaced.
 */
#ifndef SIMCLR_NN_LAYERS_H
#define SIMCLR_NN_LAYERS_H

#include "simclr/arena.h"
#include "simclr/backend.h"
#include "simclr/model.h"
#include "simclr/params.h"

/* Where a pass reads parameters and writes gradients. */
typedef struct sc_nn_ctx {
    sc_backend *be;
    const sc_param_table *table;
    sc_dtype dtype;
    void *params; /* flat parameter buffer */
    void *grads;  /* flat gradient buffer */
    sc_tensor ws; /* convolution workspace */
    sc_bn_sync *bn_sync; /* global batch norm over these ranks; NULL: this process's batch */
    sc_grad_ready_fn grad_ready; /* see sc_model_set_grad_ready; NULL: no calls */
    void *grad_ready_arg;
} sc_nn_ctx;

typedef struct sc_conv_layer {
    int weight; /* parameter row: [k, r, s, c] */
    int k, r, s, c, stride, pad;
} sc_conv_layer;

typedef struct sc_bn_layer {
    int gamma, beta, mean, var; /* parameter rows; beta = -1 when the layer has no shift */
    int c;
    sc_tensor save_mean, save_invstd; /* [c], planned */
} sc_bn_layer;

/* Register "<name>.weight" (KRSC, Kaiming fan-out init). Returns SC_ERR_ARG on a duplicate. */
sc_status sc_conv_layer_add(sc_conv_layer *l, sc_param_table *t, const char *name, int k, int r,
                            int s, int c, int stride, int pad, uint32_t flags);
/* Register "<name>.{weight,bias,running_mean,running_var}" (no bias when !has_beta);
 * gamma starts at 0 when zero_gamma (the last BN of a residual block), else 1. */
sc_status sc_bn_layer_add(sc_bn_layer *l, sc_param_table *t, const char *name, int c, int has_beta,
                          int zero_gamma, uint32_t flags);
sc_status sc_bn_layer_plan(sc_bn_layer *l, sc_arena *a, sc_dtype dt);

/* Output spatial size of a conv layer on an h x w input. */
void sc_conv_layer_out(const sc_conv_layer *l, int h, int w, int *oh, int *ow);
/* Workspace bytes of the layer on an [n, h, w, c] input. */
size_t sc_conv_layer_workspace(const sc_conv_layer *l, sc_backend *be, int n, int h, int w, sc_dtype dt);

/* y = conv(x); x [n, h, w, c] -> y [n, oh, ow, k]. */
void sc_conv_layer_fwd(const sc_nn_ctx *ctx, const sc_conv_layer *l, const sc_tensor *x, sc_tensor *y);
/* Weight gradient into the gradient buffer and, when dx != NULL, the input gradient. */
void sc_conv_layer_bwd(const sc_nn_ctx *ctx, const sc_conv_layer *l, const sc_tensor *x,
                       const sc_tensor *dy, sc_tensor *dx);
/* y = bn(x) in training (batch statistics, running statistics updated) or eval mode. */
void sc_bn_layer_fwd(const sc_nn_ctx *ctx, sc_bn_layer *l, const sc_tensor *x, sc_tensor *y, int train);
/* dx and the gamma/beta gradients, after a training-mode forward. */
void sc_bn_layer_bwd(const sc_nn_ctx *ctx, const sc_bn_layer *l, const sc_tensor *x,
                     const sc_tensor *dy, sc_tensor *dx);
/* y = act(bn(x) + residual): residual may be NULL, act is ReLU when relu != 0. One fused op
 * where the backend has it (sc_op_bn_act_fwd_*); y aliases neither x nor residual. */
void sc_bn_layer_fwd_act(const sc_nn_ctx *ctx, sc_bn_layer *l, const sc_tensor *x,
                         const sc_tensor *residual, int relu, sc_tensor *y, int train);
/* Backward of y = relu(bn(x)) (y the ReLU output): dx and the gamma/beta gradients. dy is
 * consumed (a scratch gradient). */
void sc_bn_layer_bwd_relu(const sc_nn_ctx *ctx, const sc_bn_layer *l, const sc_tensor *x,
                          const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx);

/* Tell the gradient-ready hook, if any, that every gradient from parameter row `row`'s offset
 * to the end of the buffer is final. */
void sc_nn_grad_ready(const sc_nn_ctx *ctx, int row);

/* A view of an [rows, ...] planned activation cut to its first n rows. */
sc_tensor sc_rows(const sc_tensor *t, int64_t n);

#endif /* SIMCLR_NN_LAYERS_H */
