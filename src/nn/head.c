/*
 * head.c - the SimCLR projection head: an MLP over the encoder features.
 *
 *   for each of `layers` linear layers:  y = x W^T (+ b)  [-> BN]  [-> ReLU]
 *
 * Hidden layers (all but the last) have BN when head_bn_hidden and always a ReLU; the last
 * layer has BN without beta when head_bn_last (SimCLR v1/v2) and never a ReLU. A linear layer
 * followed by BN has no bias (it would be cancelled by the BN mean); otherwise it has one when
 * head_bias. Weights use PyTorch's nn.Linear initialisation.
 *
 * Parameter names follow nn.Sequential numbering: with BN, layer 0 is Linear "head.0",
 * BN "head.1", ReLU "head.2", Linear "head.3", ... so the same PyTorch Sequential loads them.
 */
#include "head.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct head_layer {
    int in, out;
    int weight, bias; /* parameter rows; bias = -1 when absent */
    int has_bn, relu;
    sc_bn_layer bn;
    sc_tensor lin; /* [max_n, out] linear output (BN input) */
    sc_tensor act; /* [max_n, out] layer output; the same buffer as lin when there is no BN */
} head_layer;

struct sc_head {
    head_layer *layers;
    int count;
    int in_dim, out_dim, max_dim;
    sc_tensor h; /* input of the last forward pass (a view) */
};

sc_status sc_head_build(const sc_model_config *mc, int in_dim, sc_param_table *t, sc_head **out) {
    *out = NULL;
    if (mc->head_layers < 1) return sc_errorf(SC_ERR_ARG, "the head needs at least one layer");
    sc_head *hd = calloc(1, sizeof *hd);
    if (hd) hd->layers = calloc((size_t)mc->head_layers, sizeof *hd->layers);
    if (!hd || !hd->layers) {
        free(hd);
        return sc_errorf(SC_ERR_NOMEM, "cannot allocate the head");
    }
    hd->count = mc->head_layers;
    hd->in_dim = in_dim;
    int hidden = mc->head_hidden > 0 ? mc->head_hidden : in_dim;
    int module = 0, prev = in_dim;
    hd->max_dim = in_dim;
    for (int i = 0; i < hd->count; i++) {
        head_layer *l = &hd->layers[i];
        int last = i == hd->count - 1;
        l->in = prev;
        l->out = last ? mc->head_out : hidden;
        l->has_bn = last ? mc->head_bn_last : mc->head_bn_hidden;
        l->relu = !last;
        l->bias = -1;
        char name[SC_PARAM_NAME_CAP];
        int64_t wshape[2] = {l->out, l->in}, bshape[1] = {l->out};
        snprintf(name, sizeof name, "head.%d.weight", module);
        l->weight = sc_params_add(t, name, 2, wshape, SC_PARAM_HEAD, SC_INIT_TORCH_LINEAR, l->in, l->out);
        if (l->weight < 0) goto fail;
        if (!l->has_bn && mc->head_bias) {
            snprintf(name, sizeof name, "head.%d.bias", module);
            l->bias = sc_params_add(t, name, 1, bshape, SC_PARAM_HEAD | SC_PARAM_BIAS | SC_PARAM_NO_WD | SC_PARAM_NO_LARS,
                                    SC_INIT_TORCH_LINEAR, l->in, l->out);
            if (l->bias < 0) goto fail;
        }
        module++;
        if (l->has_bn) {
            snprintf(name, sizeof name, "head.%d", module++);
            if (sc_bn_layer_add(&l->bn, t, name, l->out, !last, 0, SC_PARAM_HEAD) != SC_OK) goto fail;
        }
        if (l->relu) module++;
        if (l->out > hd->max_dim) hd->max_dim = l->out;
        prev = l->out;
    }
    hd->out_dim = prev;
    *out = hd;
    return SC_OK;
fail:
    sc_head_free(hd);
    return SC_ERR_ARG;
}

void sc_head_free(sc_head *h) {
    if (!h) return;
    free(h->layers);
    free(h);
}

int sc_head_out_dim(const sc_head *h) { return h->out_dim; }
int sc_head_max_dim(const sc_head *h) { return h->max_dim; }

double sc_head_macs(const sc_head *h) {
    double macs = 0;
    for (int i = 0; i < h->count; i++) macs += (double)h->layers[i].in * h->layers[i].out;
    return macs;
}

sc_status sc_head_plan(sc_head *hd, int n, sc_dtype dt, sc_arena *a) {
    for (int i = 0; i < hd->count; i++) {
        head_layer *l = &hd->layers[i];
        int64_t shape[2] = {n, l->out};
        SC_TRY(sc_arena_tensor(a, dt, 2, shape, &l->lin));
        if (l->has_bn) {
            SC_TRY(sc_arena_tensor(a, dt, 2, shape, &l->act));
            SC_TRY(sc_bn_layer_plan(&l->bn, a, dt));
        } else {
            l->act = l->lin;
        }
    }
    return SC_OK;
}

static sc_tensor param(const sc_nn_ctx *ctx, int row, void *base) {
    return sc_params_view(ctx->table, row, base, ctx->dtype);
}

void sc_head_forward(sc_head *hd, const sc_nn_ctx *ctx, const sc_tensor *h, int train, sc_tensor *z) {
    int64_t n = h->shape[0];
    hd->h = *h;
    sc_tensor in = *h;
    for (int i = 0; i < hd->count; i++) {
        head_layer *l = &hd->layers[i];
        sc_tensor lin = sc_rows(&l->lin, n), act = sc_rows(&l->act, n);
        sc_tensor w = param(ctx, l->weight, ctx->params);
        sc_tensor b = l->bias >= 0 ? param(ctx, l->bias, ctx->params) : (sc_tensor){0};
        sc_op_linear_fwd(ctx->be, &in, &w, l->bias >= 0 ? &b : NULL, &lin);
        if (l->has_bn)
            sc_bn_layer_fwd_act(ctx, &l->bn, &lin, NULL, l->relu, &act, train);
        else if (l->relu)
            sc_op_relu_fwd(ctx->be, &act, &act);
        in = act;
    }
    *z = in;
}

static sc_tensor view_like(void *buf, const sc_tensor *like) {
    return sc_tensor_make(buf, like->dtype, like->ndim, like->shape);
}

void sc_head_backward(sc_head *hd, const sc_nn_ctx *ctx, const sc_tensor *dz, void *dh_buf,
                      void *const scratch[2]) {
    int64_t n = dz->shape[0];
    sc_tensor g = *dz; /* gradient of the current layer's output */
    int next = 0;      /* the scratch buffer that does not hold g */
    for (int i = hd->count - 1; i >= 0; i--) {
        head_layer *l = &hd->layers[i];
        sc_tensor lin = sc_rows(&l->lin, n), act = sc_rows(&l->act, n);
        if (l->relu && l->has_bn) { /* one fused op; g (a scratch gradient) is consumed */
            sc_tensor d = view_like(scratch[next], &lin);
            sc_bn_layer_bwd_relu(ctx, &l->bn, &lin, &act, &g, &d);
            g = d;
            next ^= 1;
        } else if (l->relu) {
            sc_tensor d = view_like(scratch[next], &act);
            sc_op_relu_bwd(ctx->be, &act, &g, &d);
            g = d;
            next ^= 1;
        } else if (l->has_bn) {
            sc_tensor d = view_like(scratch[next], &lin);
            sc_bn_layer_bwd(ctx, &l->bn, &lin, &g, &d);
            g = d;
            next ^= 1;
        }
        sc_tensor in = i > 0 ? sc_rows(&hd->layers[i - 1].act, n) : hd->h;
        sc_tensor dx = view_like(i > 0 ? scratch[next] : dh_buf, &in);
        sc_tensor w = param(ctx, l->weight, ctx->params);
        sc_tensor dw = param(ctx, l->weight, ctx->grads);
        sc_tensor db = l->bias >= 0 ? param(ctx, l->bias, ctx->grads) : (sc_tensor){0};
        sc_op_linear_bwd(ctx->be, &in, &w, &g, &dx, &dw, l->bias >= 0 ? &db : NULL);
        sc_nn_grad_ready(ctx, l->weight); /* the layer's rows (weight, bias, BN) are done */
        g = dx;
        next ^= 1;
    }
}
