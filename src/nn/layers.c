/*
 * layers.c - convolution and batch-norm layers over the flat parameter buffers
 * (see layers.h).
 *
 * Training-mode BN has two paths: the backend's BN ops over this process's batch, or, when
 * the context carries a sc_bn_sync, global BN: the per-channel sums of every rank of the
 * group are all-reduced between the two halves of the op (sc_op_bn_sums, then
 * sc_op_bn_*_from_sums), with the residual add and ReLU as separate ops.
 */
#include "layers.h"

#include <stdio.h>

#include "simclr/model.h"

#define NAME_CAP SC_PARAM_NAME_CAP

static sc_status add_row(int *row, sc_param_table *t, const char *name, const char *suffix, int ndim,
                         const int64_t *shape, uint32_t flags, sc_init_kind init, int64_t fan_in,
                         int64_t fan_out) {
    char full[NAME_CAP];
    int len = snprintf(full, sizeof full, "%s%s%s", name, name[0] ? "." : "", suffix);
    if (len < 0 || len >= (int)sizeof full) return sc_errorf(SC_ERR_ARG, "parameter name too long: %s.%s", name, suffix);
    *row = sc_params_add(t, full, ndim, shape, flags, init, fan_in, fan_out);
    return *row < 0 ? SC_ERR_ARG : SC_OK;
}

sc_status sc_conv_layer_add(sc_conv_layer *l, sc_param_table *t, const char *name, int k, int r,
                            int s, int c, int stride, int pad, uint32_t flags) {
    *l = (sc_conv_layer){.k = k, .r = r, .s = s, .c = c, .stride = stride, .pad = pad};
    int64_t shape[4] = {k, r, s, c};
    return add_row(&l->weight, t, name, "weight", 4, shape, flags | SC_PARAM_CONV,
                   SC_INIT_KAIMING_FAN_OUT, (int64_t)c * r * s, (int64_t)k * r * s);
}

sc_status sc_bn_layer_add(sc_bn_layer *l, sc_param_table *t, const char *name, int c, int has_beta,
                          int zero_gamma, uint32_t flags) {
    *l = (sc_bn_layer){.c = c, .beta = -1};
    int64_t shape[1] = {c};
    uint32_t trained = flags | SC_PARAM_BN | SC_PARAM_NO_WD | SC_PARAM_NO_LARS;
    uint32_t stat = (flags & (SC_PARAM_ENCODER | SC_PARAM_HEAD)) | SC_PARAM_BN_STAT | SC_PARAM_NO_WD |
                    SC_PARAM_NO_LARS;
    SC_TRY(add_row(&l->gamma, t, name, "weight", 1, shape, trained,
                   zero_gamma ? SC_INIT_ZEROS : SC_INIT_ONES, 0, 0));
    if (has_beta) SC_TRY(add_row(&l->beta, t, name, "bias", 1, shape, trained, SC_INIT_ZEROS, 0, 0));
    SC_TRY(add_row(&l->mean, t, name, "running_mean", 1, shape, stat, SC_INIT_ZEROS, 0, 0));
    SC_TRY(add_row(&l->var, t, name, "running_var", 1, shape, stat, SC_INIT_ONES, 0, 0));
    return SC_OK;
}

sc_status sc_bn_layer_plan(sc_bn_layer *l, sc_arena *a, sc_dtype dt) {
    int64_t shape[1] = {l->c};
    SC_TRY(sc_arena_tensor(a, dt, 1, shape, &l->save_mean));
    SC_TRY(sc_arena_tensor(a, dt, 1, shape, &l->save_invstd));
    return SC_OK;
}

void sc_conv_layer_out(const sc_conv_layer *l, int h, int w, int *oh, int *ow) {
    *oh = (h + 2 * l->pad - l->r) / l->stride + 1;
    *ow = (w + 2 * l->pad - l->s) / l->stride + 1;
}

static sc_conv_desc desc_for(const sc_conv_layer *l, int n, int h, int w) {
    return sc_conv_desc_make(n, h, w, l->c, l->k, l->r, l->s, l->stride, l->pad);
}

size_t sc_conv_layer_workspace(const sc_conv_layer *l, sc_backend *be, int n, int h, int w, sc_dtype dt) {
    sc_conv_desc d = desc_for(l, n, h, w);
    return sc_op_conv2d_workspace(be, &d, dt);
}

void sc_conv_layer_fwd(const sc_nn_ctx *ctx, const sc_conv_layer *l, const sc_tensor *x, sc_tensor *y) {
    sc_conv_desc d = desc_for(l, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2]);
    sc_tensor w = sc_params_view(ctx->table, l->weight, ctx->params, ctx->dtype);
    sc_tensor ws = ctx->ws;
    sc_op_conv2d_fwd(ctx->be, &d, x, &w, y, &ws);
}

void sc_conv_layer_bwd(const sc_nn_ctx *ctx, const sc_conv_layer *l, const sc_tensor *x,
                       const sc_tensor *dy, sc_tensor *dx) {
    sc_conv_desc d = desc_for(l, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2]);
    sc_tensor w = sc_params_view(ctx->table, l->weight, ctx->params, ctx->dtype);
    sc_tensor dw = sc_params_view(ctx->table, l->weight, ctx->grads, ctx->dtype);
    sc_tensor ws = ctx->ws;
    sc_op_conv2d_bwd_filter(ctx->be, &d, x, dy, &dw, &ws);
    if (dx) sc_op_conv2d_bwd_data(ctx->be, &d, dy, &w, dx, &ws);
}

/* ---- global batch norm ---- */

/* The [2, c] views of the sync's scratch. */
static void sync_views(const sc_bn_sync *s, int c, sc_tensor *local, sc_tensor *global) {
    *local = sc_tensor_2d(s->local.data, SC_F64, 2, c);
    *global = sc_tensor_2d(s->global.data, SC_F64, 2, c);
}

static double rows_of(const sc_tensor *x) { return (double)(sc_tensor_numel(x) / x->shape[x->ndim - 1]); }

/* Sum `t` over the group in place, unless an earlier call of this pass failed. */
static void group_sum(sc_bn_sync *s, sc_tensor *t) {
    if (s->status == SC_OK) s->status = sc_comm_allreduce_sum(s->comm, t->data, sc_tensor_numel(t), SC_F64);
}

/* y = act(bn(x) + residual) with the statistics of the whole group. */
static void bn_global_fwd(const sc_nn_ctx *ctx, sc_bn_layer *l, const sc_tensor *x, const sc_tensor *residual,
                          int relu, sc_tensor *y) {
    const sc_param_table *t = ctx->table;
    sc_bn_sync *s = ctx->bn_sync;
    sc_tensor gamma = sc_params_view(t, l->gamma, ctx->params, ctx->dtype);
    sc_tensor beta = l->beta >= 0 ? sc_params_view(t, l->beta, ctx->params, ctx->dtype) : (sc_tensor){0};
    sc_tensor mean = sc_params_view(t, l->mean, ctx->params, ctx->dtype);
    sc_tensor var = sc_params_view(t, l->var, ctx->params, ctx->dtype);
    sc_tensor sums, unused;
    sync_views(s, l->c, &sums, &unused);
    sc_op_bn_sums(ctx->be, x, NULL, NULL, &sums);
    group_sum(s, &sums);
    sc_op_bn_fwd_from_sums(ctx->be, x, &gamma, l->beta >= 0 ? &beta : NULL, &sums, rows_of(x) * s->comm->world_size,
                           y, &l->save_mean, &l->save_invstd, &mean, &var, SC_BN_MOMENTUM, SC_BN_EPS);
    if (residual) sc_op_add(ctx->be, y, residual, y);
    if (relu) sc_op_relu_fwd(ctx->be, y, y);
}

/* dx, dgamma, dbeta of a global BN; dy is the gradient of the BN output. */
static void bn_global_bwd(const sc_nn_ctx *ctx, const sc_bn_layer *l, const sc_tensor *x, const sc_tensor *dy,
                          sc_tensor *dx) {
    const sc_param_table *t = ctx->table;
    sc_bn_sync *s = ctx->bn_sync;
    sc_tensor gamma = sc_params_view(t, l->gamma, ctx->params, ctx->dtype);
    sc_tensor dgamma = sc_params_view(t, l->gamma, ctx->grads, ctx->dtype);
    sc_tensor dbeta = l->beta >= 0 ? sc_params_view(t, l->beta, ctx->grads, ctx->dtype) : (sc_tensor){0};
    sc_tensor local, global;
    sync_views(s, l->c, &local, &global);
    sc_op_bn_sums(ctx->be, x, dy, &l->save_mean, &local);
    ctx->be->ops->copy(ctx->be, global.data, local.data, sc_tensor_nbytes(&local));
    group_sum(s, &global);
    sc_op_bn_bwd_from_sums(ctx->be, x, dy, &gamma, &l->save_mean, &l->save_invstd, &local, &global,
                           rows_of(x) * s->comm->world_size, dx, &dgamma, l->beta >= 0 ? &dbeta : NULL);
}

/* ---- per-process and global batch norm ---- */

void sc_bn_layer_fwd(const sc_nn_ctx *ctx, sc_bn_layer *l, const sc_tensor *x, sc_tensor *y, int train) {
    const sc_param_table *t = ctx->table;
    sc_tensor gamma = sc_params_view(t, l->gamma, ctx->params, ctx->dtype);
    sc_tensor beta = l->beta >= 0 ? sc_params_view(t, l->beta, ctx->params, ctx->dtype) : (sc_tensor){0};
    sc_tensor mean = sc_params_view(t, l->mean, ctx->params, ctx->dtype);
    sc_tensor var = sc_params_view(t, l->var, ctx->params, ctx->dtype);
    const sc_tensor *b = l->beta >= 0 ? &beta : NULL;
    if (train && ctx->bn_sync)
        bn_global_fwd(ctx, l, x, NULL, 0, y);
    else if (train)
        sc_op_bn_fwd_train(ctx->be, x, &gamma, b, y, &l->save_mean, &l->save_invstd, &mean, &var,
                           SC_BN_MOMENTUM, SC_BN_EPS);
    else
        sc_op_bn_fwd_eval(ctx->be, x, &gamma, b, &mean, &var, SC_BN_EPS, y);
}

void sc_bn_layer_bwd(const sc_nn_ctx *ctx, const sc_bn_layer *l, const sc_tensor *x,
                     const sc_tensor *dy, sc_tensor *dx) {
    if (ctx->bn_sync) {
        bn_global_bwd(ctx, l, x, dy, dx);
        return;
    }
    const sc_param_table *t = ctx->table;
    sc_tensor gamma = sc_params_view(t, l->gamma, ctx->params, ctx->dtype);
    sc_tensor dgamma = sc_params_view(t, l->gamma, ctx->grads, ctx->dtype);
    sc_tensor dbeta = l->beta >= 0 ? sc_params_view(t, l->beta, ctx->grads, ctx->dtype) : (sc_tensor){0};
    sc_op_bn_bwd(ctx->be, x, dy, &gamma, &l->save_mean, &l->save_invstd, dx, &dgamma,
                 l->beta >= 0 ? &dbeta : NULL);
}

void sc_bn_layer_fwd_act(const sc_nn_ctx *ctx, sc_bn_layer *l, const sc_tensor *x,
                         const sc_tensor *residual, int relu, sc_tensor *y, int train) {
    const sc_param_table *t = ctx->table;
    sc_tensor gamma = sc_params_view(t, l->gamma, ctx->params, ctx->dtype);
    sc_tensor beta = l->beta >= 0 ? sc_params_view(t, l->beta, ctx->params, ctx->dtype) : (sc_tensor){0};
    sc_tensor mean = sc_params_view(t, l->mean, ctx->params, ctx->dtype);
    sc_tensor var = sc_params_view(t, l->var, ctx->params, ctx->dtype);
    const sc_tensor *b = l->beta >= 0 ? &beta : NULL;
    if (train && ctx->bn_sync)
        bn_global_fwd(ctx, l, x, residual, relu, y);
    else if (train)
        sc_op_bn_act_fwd_train(ctx->be, x, &gamma, b, residual, relu, y, &l->save_mean, &l->save_invstd,
                               &mean, &var, SC_BN_MOMENTUM, SC_BN_EPS);
    else
        sc_op_bn_act_fwd_eval(ctx->be, x, &gamma, b, residual, relu, &mean, &var, SC_BN_EPS, y);
}

void sc_bn_layer_bwd_relu(const sc_nn_ctx *ctx, const sc_bn_layer *l, const sc_tensor *x,
                          const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx) {
    if (ctx->bn_sync) {
        sc_tensor g = *dy; /* consumed: the gradient through the ReLU in place */
        sc_op_relu_bwd(ctx->be, y, dy, &g);
        bn_global_bwd(ctx, l, x, &g, dx);
        return;
    }
    const sc_param_table *t = ctx->table;
    sc_tensor gamma = sc_params_view(t, l->gamma, ctx->params, ctx->dtype);
    sc_tensor dgamma = sc_params_view(t, l->gamma, ctx->grads, ctx->dtype);
    sc_tensor dbeta = l->beta >= 0 ? sc_params_view(t, l->beta, ctx->grads, ctx->dtype) : (sc_tensor){0};
    sc_op_bn_relu_bwd(ctx->be, x, y, dy, &gamma, &l->save_mean, &l->save_invstd, dx, &dgamma,
                      l->beta >= 0 ? &dbeta : NULL);
}

void sc_nn_grad_ready(const sc_nn_ctx *ctx, int row) {
    if (ctx->grad_ready) ctx->grad_ready(ctx->grad_ready_arg, ctx->table->rows[row].offset);
}

sc_tensor sc_rows(const sc_tensor *t, int64_t n) { return sc_tensor_slice0(t, 0, n); }
