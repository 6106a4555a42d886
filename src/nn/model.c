/*
 * model.c - the SimCLR network (encoder + head) over one backend (see include/simclr/model.h).
 *
 * Owns the three flat buffers (parameters, gradients, optimizer state) and one planned block
 * of activation memory holding, in order: the encoder's and head's saved activations, four
 * shared gradient scratch buffers and the convolution workspace. Planning runs the allocation
 * sequence twice: once in a measuring arena to learn the size, once for real.
 */
#include "simclr/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "head.h"
#include "resnet.h"
#include "simclr/arena.h"

struct sc_model {
    sc_model_config mc;
    sc_backend *be;
    sc_dtype dtype;
    sc_param_table table;
    sc_bn_sync *bn_sync; /* global batch norm (not owned), NULL for per-process BN */
    sc_grad_ready_fn grad_ready; /* gradient-ready hook, NULL when none */
    void *grad_ready_arg;
    sc_resnet *enc;
    sc_head *head;
    void *params, *grads, *state; /* flat buffers of table.total elements */
    /* planned memory */
    void *block;
    size_t block_bytes;
    int max_batch, plan_h, plan_w;
    double macs; /* forward multiply-adds per image */
    sc_tensor ws;
    void *scratch[4];
    int forward_trained; /* the last forward was a training pass through the head */
};

sc_model_config sc_model_config_from(const sc_config *cfg, int in_channels) {
    sc_model_config mc = {
        .arch = (sc_arch)cfg->model.arch,
        .stem = (sc_stem)cfg->model.stem,
        .width = cfg->model.width,
        .in_channels = in_channels,
        .zero_init_residual = cfg->model.zero_init_residual,
        .head_layers = cfg->model.head.layers,
        .head_hidden = cfg->model.head.hidden_dim,
        .head_out = cfg->model.head.out_dim,
        .head_bn_hidden = cfg->model.head.bn_hidden,
        .head_bn_last = cfg->model.head.bn_last,
        .head_bias = cfg->model.head.bias,
    };
    return mc;
}

sc_status sc_model_create(const sc_model_config *mc, sc_backend *be, sc_dtype dtype, sc_model **out) {
    *out = NULL;
    if (mc->in_channels < 1) return sc_errorf(SC_ERR_ARG, "the model needs at least one input channel");
    sc_model *m = calloc(1, sizeof *m);
    if (!m) return sc_errorf(SC_ERR_NOMEM, "cannot allocate the model");
    m->mc = *mc;
    m->be = be;
    m->dtype = dtype;
    sc_params_init_table(&m->table);
    sc_status st = sc_resnet_build(mc, &m->table, &m->enc);
    if (st == SC_OK) st = sc_head_build(mc, sc_resnet_feature_dim(m->enc), &m->table, &m->head);
    size_t bytes = (size_t)m->table.total * sc_dtype_size(dtype);
    if (st == SC_OK) st = sc_backend_alloc(be, bytes, "parameters", &m->params);
    if (st == SC_OK) st = sc_backend_alloc(be, bytes, "gradients", &m->grads);
    if (st == SC_OK) st = sc_backend_alloc(be, bytes, "optimizer state", &m->state);
    if (st != SC_OK) {
        sc_model_destroy(m);
        return st;
    }
    be->ops->zero(be, m->params, bytes);
    be->ops->zero(be, m->grads, bytes);
    be->ops->zero(be, m->state, bytes);
    *out = m;
    return SC_OK;
}

void sc_model_destroy(sc_model *m) {
    if (!m) return;
    sc_backend_free(m->be, m->block);
    sc_backend_free(m->be, m->params);
    sc_backend_free(m->be, m->grads);
    sc_backend_free(m->be, m->state);
    sc_resnet_free(m->enc);
    sc_head_free(m->head);
    sc_params_free(&m->table);
    free(m);
}

void sc_model_init_params(sc_model *m, uint64_t seed) {
    size_t bytes = (size_t)m->table.total * sc_dtype_size(m->dtype);
    void *host = malloc(bytes ? bytes : 1);
    SC_CHECK(host != NULL, "out of host memory for %zu bytes of initial parameters", bytes);
    sc_params_init_values(&m->table, seed, host, m->dtype);
    m->be->ops->upload(m->be, m->params, host, bytes);
    free(host);
}

/* The allocation sequence of a plan; identical in the measuring and the real pass. */
static sc_status plan_into(sc_model *m, sc_arena *a, int n, int h, int w) {
    size_t ws_bytes = 0;
    int64_t max_act = 0;
    SC_TRY(sc_resnet_plan(m->enc, m->be, n, h, w, m->dtype, a, &ws_bytes, &max_act, &m->macs));
    m->macs += sc_head_macs(m->head);
    SC_TRY(sc_head_plan(m->head, n, m->dtype, a));
    int64_t head_elems = (int64_t)n * sc_head_max_dim(m->head);
    if (head_elems > max_act) max_act = head_elems;
    for (int i = 0; i < 4; i++) SC_TRY(sc_arena_alloc(a, (size_t)max_act * sc_dtype_size(m->dtype), &m->scratch[i]));
    void *ws;
    SC_TRY(sc_arena_alloc(a, ws_bytes, &ws));
    m->ws = sc_tensor_1d(ws, SC_U8, (int64_t)ws_bytes);
    return SC_OK;
}

sc_status sc_model_plan(sc_model *m, int max_batch, int height, int width) {
    if (max_batch < 1 || height < 1 || width < 1)
        return sc_errorf(SC_ERR_ARG, "cannot plan for a batch of %d images of %dx%d", max_batch, height, width);
    if (m->block && max_batch <= m->max_batch && height == m->plan_h && width == m->plan_w) return SC_OK;
    sc_arena measure;
    sc_arena_measure(&measure, "activations (planning)");
    SC_TRY(plan_into(m, &measure, max_batch, height, width));
    sc_backend_free(m->be, m->block);
    m->block = NULL;
    SC_TRY(sc_backend_alloc(m->be, measure.used, "activations", &m->block));
    m->block_bytes = measure.used;
    sc_arena real;
    sc_arena_init(&real, "activations", m->block, measure.used);
    SC_TRY(plan_into(m, &real, max_batch, height, width));
    m->max_batch = max_batch;
    m->plan_h = height;
    m->plan_w = width;
    m->forward_trained = 0;
    return SC_OK;
}

const sc_param_table *sc_model_params(const sc_model *m) { return &m->table; }
sc_backend *sc_model_backend(const sc_model *m) { return m->be; }
sc_dtype sc_model_dtype(const sc_model *m) { return m->dtype; }
int sc_model_feature_dim(const sc_model *m) { return sc_resnet_feature_dim(m->enc); }
int sc_model_out_dim(const sc_model *m) { return sc_head_out_dim(m->head); }
size_t sc_model_activation_bytes(const sc_model *m) { return m->block_bytes; }
double sc_model_forward_macs(const sc_model *m) { return m->macs; }

void sc_model_set_bn_sync(sc_model *m, sc_bn_sync *sync) { m->bn_sync = sync; }

void sc_model_set_grad_ready(sc_model *m, sc_grad_ready_fn ready, void *arg) {
    m->grad_ready = ready;
    m->grad_ready_arg = arg;
}

int sc_model_bn_max_channels(const sc_model *m) {
    int64_t c = 0;
    for (int i = 0; i < m->table.count; i++)
        if ((m->table.rows[i].flags & SC_PARAM_BN) && m->table.rows[i].numel > c) c = m->table.rows[i].numel;
    return (int)c;
}

sc_tensor sc_model_param_buffer(sc_model *m) { return sc_tensor_1d(m->params, m->dtype, m->table.total); }
sc_tensor sc_model_grad_buffer(sc_model *m) { return sc_tensor_1d(m->grads, m->dtype, m->table.total); }
sc_tensor sc_model_state_buffer(sc_model *m) { return sc_tensor_1d(m->state, m->dtype, m->table.total); }

static sc_nn_ctx make_ctx(sc_model *m) {
    sc_nn_ctx ctx = {.be = m->be, .table = &m->table, .dtype = m->dtype, .params = m->params,
                     .grads = m->grads, .ws = m->ws, .bn_sync = m->bn_sync, .grad_ready = m->grad_ready,
                     .grad_ready_arg = m->grad_ready_arg};
    return ctx;
}

void sc_model_forward(sc_model *m, const sc_tensor *x, int train, sc_tensor *h, sc_tensor *z) {
    SC_CHECK(m->block != NULL, "sc_model_forward before sc_model_plan");
    SC_CHECK(x->ndim == 4 && x->dtype == m->dtype, "model input must be [B, H, W, C] of the model dtype");
    SC_CHECK(x->shape[0] >= 1 && x->shape[0] <= m->max_batch && x->shape[1] == m->plan_h &&
                 x->shape[2] == m->plan_w && x->shape[3] == m->mc.in_channels,
             "input [%lld, %lld, %lld, %lld] does not fit the plan [<=%d, %d, %d, %d]",
             (long long)x->shape[0], (long long)x->shape[1], (long long)x->shape[2],
             (long long)x->shape[3], m->max_batch, m->plan_h, m->plan_w, m->mc.in_channels);
    sc_nn_ctx ctx = make_ctx(m);
    sc_tensor hv;
    sc_resnet_forward(m->enc, &ctx, x, train, &hv);
    if (h) *h = hv;
    if (z) sc_head_forward(m->head, &ctx, &hv, train, z);
    m->forward_trained = train && z != NULL;
}

void sc_model_backward(sc_model *m, const sc_tensor *dz) {
    SC_CHECK(m->forward_trained, "sc_model_backward needs a preceding training forward through the head");
    sc_nn_ctx ctx = make_ctx(m);
    void *head_scratch[2] = {m->scratch[0], m->scratch[1]};
    sc_tensor dh = sc_tensor_2d(m->scratch[2], m->dtype, dz->shape[0], sc_resnet_feature_dim(m->enc));
    sc_head_backward(m->head, &ctx, dz, dh.data, head_scratch);
    sc_resnet_backward(m->enc, &ctx, &dh, m->scratch);
}
