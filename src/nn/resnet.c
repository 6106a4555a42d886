/*
 * resnet.c - ResNet-18/34/50 encoders with torchvision's topology, NHWC, forward and backward.
 *
 * Stem:   ImageNet: conv 7x7/2 pad 3 -> BN -> ReLU -> max pool 3x3/2 pad 1
 *         CIFAR:    conv 3x3/1 pad 1 -> BN -> ReLU
 * Stages: 4 stages of BasicBlocks (R18: 2-2-2-2, R34: 3-4-6-3) or Bottlenecks (R50: 3-4-6-3),
 *         planes 64, 128, 256, 512 times the width multiplier; stages 2-4 start with stride 2
 *         (on the 3x3 conv of a Bottleneck, "ResNet v1.5"); a block whose stride or channel
 *         count changes gets a 1x1 conv + BN "downsample" shortcut.
 * Head:   global average pool -> h [n, F], F = 512 (basic) or 2048 (bottleneck) times width.
 *
 * Memory: every activation the backward pass needs is planned once, for the largest batch.
 * The backward pass itself uses four shared scratch buffers of the largest activation size:
 * two carry the gradient between blocks (block output / block input) and two are temporaries
 * inside a block, so gradient memory does not grow with depth.
 */
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    int nconv;                /* 2 (basic) or 3 (bottleneck) */
    sc_conv_layer conv[3];
    sc_bn_layer bn[3];
    int has_down;
    sc_conv_layer down;
    sc_bn_layer down_bn;
    /* planned activations, [max_n, oh, ow, ch] */
    sc_tensor c[3];           /* conv outputs, BN inputs */
    sc_tensor a[2];           /* BN + ReLU outputs of all but the last conv */
    sc_tensor cd, bd;         /* downsample conv and BN outputs */
    sc_tensor out;            /* block output after add + ReLU */
} block;

struct sc_resnet {
    sc_model_config mc;
    sc_conv_layer stem_conv;
    sc_bn_layer stem_bn;
    int has_pool;
    block *blocks;
    int nblocks;
    int features;
    /* planned activations */
    sc_tensor stem_c, stem_a, stem_p; /* conv output, BN+ReLU output, pool output */
    sc_tensor h;                      /* [max_n, F] */
    sc_tensor x;                      /* input of the last forward pass (a view) */
    int n;                            /* batch of the last forward pass */
};

static int channels(double width, int base) {
    int c = (int)lround(base * width);
    return c < 1 ? 1 : c;
}

static sc_status add_block(block *b, sc_param_table *t, const char *prefix, int bottleneck,
                           int in_c, int planes, int stride, int zero_init) {
    char name[SC_PARAM_NAME_CAP];
    uint32_t enc = SC_PARAM_ENCODER;
    int out_c = bottleneck ? planes * 4 : planes;
    memset(b, 0, sizeof *b);
    b->nconv = bottleneck ? 3 : 2;
    for (int j = 0; j < b->nconv; j++) {
        int k, r, c, s;
        if (bottleneck) {
            static const int ksize[3] = {1, 3, 1};
            r = ksize[j];
            c = j == 0 ? in_c : planes;
            k = j == 2 ? out_c : planes;
            s = j == 1 ? stride : 1;
        } else {
            r = 3;
            c = j == 0 ? in_c : planes;
            k = planes;
            s = j == 0 ? stride : 1;
        }
        snprintf(name, sizeof name, "%s.conv%d", prefix, j + 1);
        SC_TRY(sc_conv_layer_add(&b->conv[j], t, name, k, r, r, c, s, r / 2, enc));
        snprintf(name, sizeof name, "%s.bn%d", prefix, j + 1);
        SC_TRY(sc_bn_layer_add(&b->bn[j], t, name, k, 1, zero_init && j == b->nconv - 1, enc));
    }
    if (stride != 1 || in_c != out_c) {
        b->has_down = 1;
        snprintf(name, sizeof name, "%s.downsample.0", prefix);
        SC_TRY(sc_conv_layer_add(&b->down, t, name, out_c, 1, 1, in_c, stride, 0, enc));
        snprintf(name, sizeof name, "%s.downsample.1", prefix);
        SC_TRY(sc_bn_layer_add(&b->down_bn, t, name, out_c, 1, 0, enc));
    }
    return SC_OK;
}

sc_status sc_resnet_build(const sc_model_config *mc, sc_param_table *t, sc_resnet **out) {
    static const int depths[3][4] = {{2, 2, 2, 2}, {3, 4, 6, 3}, {3, 4, 6, 3}};
    *out = NULL;
    if (mc->arch < SC_ARCH_RESNET18 || mc->arch > SC_ARCH_RESNET50)
        return sc_errorf(SC_ERR_ARG, "unknown ResNet architecture %d", (int)mc->arch);
    sc_resnet *r = calloc(1, sizeof *r);
    if (!r) return sc_errorf(SC_ERR_NOMEM, "cannot allocate the encoder");
    r->mc = *mc;
    int bottleneck = mc->arch == SC_ARCH_RESNET50;
    const int *depth = depths[mc->arch];
    for (int s = 0; s < 4; s++) r->nblocks += depth[s];
    r->blocks = calloc((size_t)r->nblocks, sizeof *r->blocks);
    if (!r->blocks) {
        free(r);
        return sc_errorf(SC_ERR_NOMEM, "cannot allocate the encoder");
    }

    int stem_c = channels(mc->width, 64);
    sc_status st;
    if (mc->stem == SC_STEM_IMAGENET) {
        st = sc_conv_layer_add(&r->stem_conv, t, "conv1", stem_c, 7, 7, mc->in_channels, 2, 3, SC_PARAM_ENCODER);
        r->has_pool = 1;
    } else {
        st = sc_conv_layer_add(&r->stem_conv, t, "conv1", stem_c, 3, 3, mc->in_channels, 1, 1, SC_PARAM_ENCODER);
    }
    if (st == SC_OK) st = sc_bn_layer_add(&r->stem_bn, t, "bn1", stem_c, 1, 0, SC_PARAM_ENCODER);

    int in_c = stem_c, bi = 0;
    for (int s = 0; s < 4 && st == SC_OK; s++) {
        int planes = channels(mc->width, 64 << s);
        for (int j = 0; j < depth[s] && st == SC_OK; j++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, j);
            int stride = (s > 0 && j == 0) ? 2 : 1;
            st = add_block(&r->blocks[bi++], t, prefix, bottleneck, in_c, planes, stride, mc->zero_init_residual);
            in_c = bottleneck ? planes * 4 : planes;
        }
    }
    if (st != SC_OK) {
        sc_resnet_free(r);
        return st;
    }
    r->features = in_c;
    *out = r;
    return SC_OK;
}

void sc_resnet_free(sc_resnet *r) {
    if (!r) return;
    free(r->blocks);
    free(r);
}

int sc_resnet_feature_dim(const sc_resnet *r) { return r->features; }

/* Plan one activation [n, h, w, c] and track the largest. */
static sc_status plan_act(sc_arena *a, sc_dtype dt, int n, int h, int w, int c, sc_tensor *t, int64_t *max_act) {
    int64_t shape[4] = {n, h, w, c};
    SC_TRY(sc_arena_tensor(a, dt, 4, shape, t));
    int64_t elems = (int64_t)n * h * w * c;
    if (elems > *max_act) *max_act = elems;
    return SC_OK;
}

static void track_ws(size_t *ws, size_t need) {
    if (need > *ws) *ws = need;
}

/* Multiply-adds of one image through conv layer l producing an oh x ow map. */
static double conv_macs(const sc_conv_layer *l, int oh, int ow) {
    return (double)oh * ow * l->k * l->r * l->s * l->c;
}

sc_status sc_resnet_plan(sc_resnet *r, sc_backend *be, int n, int h, int w, sc_dtype dt, sc_arena *a,
                         size_t *ws_bytes, int64_t *max_act, double *macs) {
    int oh, ow;
    sc_conv_layer_out(&r->stem_conv, h, w, &oh, &ow);
    *macs = conv_macs(&r->stem_conv, oh, ow);
    if (oh < 1 || ow < 1)
        return sc_errorf(SC_ERR_ARG, "input %dx%d is too small for the %s stem", h, w,
                         r->has_pool ? "ImageNet" : "CIFAR");
    track_ws(ws_bytes, sc_conv_layer_workspace(&r->stem_conv, be, n, h, w, dt));
    SC_TRY(plan_act(a, dt, n, oh, ow, r->stem_conv.k, &r->stem_c, max_act));
    SC_TRY(plan_act(a, dt, n, oh, ow, r->stem_conv.k, &r->stem_a, max_act));
    SC_TRY(sc_bn_layer_plan(&r->stem_bn, a, dt));
    h = oh;
    w = ow;
    if (r->has_pool) {
        sc_pool_desc pd = sc_pool_desc_make(n, h, w, r->stem_conv.k, 3, 2, 1);
        h = pd.oh;
        w = pd.ow;
        SC_TRY(plan_act(a, dt, n, h, w, r->stem_conv.k, &r->stem_p, max_act));
    }
    for (int i = 0; i < r->nblocks; i++) {
        block *b = &r->blocks[i];
        int bh = h, bw = w;
        for (int j = 0; j < b->nconv; j++) {
            track_ws(ws_bytes, sc_conv_layer_workspace(&b->conv[j], be, n, bh, bw, dt));
            sc_conv_layer_out(&b->conv[j], bh, bw, &oh, &ow);
            *macs += conv_macs(&b->conv[j], oh, ow);
            SC_TRY(plan_act(a, dt, n, oh, ow, b->conv[j].k, &b->c[j], max_act));
            if (j < b->nconv - 1) SC_TRY(plan_act(a, dt, n, oh, ow, b->conv[j].k, &b->a[j], max_act));
            SC_TRY(sc_bn_layer_plan(&b->bn[j], a, dt));
            bh = oh;
            bw = ow;
        }
        SC_TRY(plan_act(a, dt, n, bh, bw, b->conv[b->nconv - 1].k, &b->out, max_act));
        if (b->has_down) {
            track_ws(ws_bytes, sc_conv_layer_workspace(&b->down, be, n, h, w, dt));
            *macs += conv_macs(&b->down, bh, bw);
            SC_TRY(plan_act(a, dt, n, bh, bw, b->down.k, &b->cd, max_act));
            SC_TRY(plan_act(a, dt, n, bh, bw, b->down.k, &b->bd, max_act));
            SC_TRY(sc_bn_layer_plan(&b->down_bn, a, dt));
        }
        h = bh;
        w = bw;
    }
    int64_t hs[2] = {n, r->features};
    SC_TRY(sc_arena_tensor(a, dt, 2, hs, &r->h));
    return SC_OK;
}

/* x [n, h, w, c_in] -> b->out [n, oh, ow, c_out]. Each BN is fused with what follows it:
 * ReLU inside the residual branch, "+ shortcut, ReLU" for the last one. */
static void block_forward(const sc_nn_ctx *ctx, block *b, const sc_tensor *x, int n, int train) {
    sc_tensor shortcut = *x;
    if (b->has_down) {
        sc_tensor cd = sc_rows(&b->cd, n), bd = sc_rows(&b->bd, n);
        sc_conv_layer_fwd(ctx, &b->down, x, &cd);
        sc_bn_layer_fwd(ctx, &b->down_bn, &cd, &bd, train);
        shortcut = bd;
    }
    sc_tensor in = *x; /* input of the current conv */
    for (int j = 0; j < b->nconv; j++) {
        sc_tensor c = sc_rows(&b->c[j], n);
        sc_conv_layer_fwd(ctx, &b->conv[j], &in, &c);
        if (j < b->nconv - 1) {
            sc_tensor act = sc_rows(&b->a[j], n);
            sc_bn_layer_fwd_act(ctx, &b->bn[j], &c, NULL, 1, &act, train);
            in = act;
        } else {
            sc_tensor out = sc_rows(&b->out, n);
            sc_bn_layer_fwd_act(ctx, &b->bn[j], &c, &shortcut, 1, &out, train);
        }
    }
}

void sc_resnet_forward(sc_resnet *r, const sc_nn_ctx *ctx, const sc_tensor *x, int train, sc_tensor *h) {
    int n = (int)x->shape[0];
    SC_CHECK(n <= r->stem_c.shape[0], "batch %d exceeds the planned %lld", n, (long long)r->stem_c.shape[0]);
    r->x = *x;
    r->n = n;
    sc_tensor c = sc_rows(&r->stem_c, n), a = sc_rows(&r->stem_a, n);
    sc_conv_layer_fwd(ctx, &r->stem_conv, x, &c);
    sc_bn_layer_fwd_act(ctx, &r->stem_bn, &c, NULL, 1, &a, train);
    sc_tensor cur = a;
    if (r->has_pool) {
        sc_tensor p = sc_rows(&r->stem_p, n);
        sc_pool_desc pd = sc_pool_desc_make(n, (int)a.shape[1], (int)a.shape[2], (int)a.shape[3], 3, 2, 1);
        sc_op_maxpool_fwd(ctx->be, &pd, &a, &p);
        cur = p;
    }
    for (int i = 0; i < r->nblocks; i++) {
        block_forward(ctx, &r->blocks[i], &cur, n, train);
        cur = sc_rows(&r->blocks[i].out, n);
    }
    sc_tensor hv = sc_rows(&r->h, n);
    sc_op_avgpool_fwd(ctx->be, &cur, &hv);
    *h = hv;
}

/* A scratch buffer viewed with the shape of `like`. */
static sc_tensor view_like(void *buf, const sc_tensor *like) {
    return sc_tensor_make(buf, like->dtype, like->ndim, like->shape);
}

/*
 * Backward through one block. dout: gradient of the block output (overwritten);
 * x: the block input; dx: receives the gradient of the block input; t1, t2: temporaries.
 * dout, dx, t1 and t2 are four distinct scratch buffers.
 */
static void block_backward(const sc_nn_ctx *ctx, const block *b, const sc_tensor *x, int n,
                           void *dout_buf, void *dx_buf, void *t1, void *t2) {
    sc_tensor out = sc_rows(&b->out, n);
    sc_tensor dsum = view_like(dout_buf, &out);
    sc_tensor dx = view_like(dx_buf, x);
    sc_op_relu_bwd(ctx->be, &out, &dsum, &dsum); /* through the final ReLU */

    /* residual branch, last conv first; g is the gradient of the current BN's output (after
     * its ReLU for all but the last BN, whose ReLU follows the add and was undone above) */
    sc_tensor g = dsum;
    for (int j = b->nconv - 1; j >= 0; j--) {
        sc_tensor c = sc_rows(&b->c[j], n);
        sc_tensor dc = view_like(t1, &c);
        if (j == b->nconv - 1) {
            sc_bn_layer_bwd(ctx, &b->bn[j], &c, &g, &dc); /* dsum is still needed by the shortcut */
        } else {
            sc_tensor act = sc_rows(&b->a[j], n);
            sc_bn_layer_bwd_relu(ctx, &b->bn[j], &c, &act, &g, &dc);
        }
        if (j == 0) {
            sc_conv_layer_bwd(ctx, &b->conv[0], x, &dc, &dx);
        } else {
            sc_tensor prev = sc_rows(&b->a[j - 1], n);
            sc_tensor dprev = view_like(t2, &prev);
            sc_conv_layer_bwd(ctx, &b->conv[j], &prev, &dc, &dprev);
            g = dprev;
        }
    }

    /* shortcut: the same gradient dsum flows into it */
    if (b->has_down) {
        sc_tensor cd = sc_rows(&b->cd, n);
        sc_tensor dcd = view_like(t1, &cd);
        sc_tensor dshort = view_like(t2, x);
        sc_bn_layer_bwd(ctx, &b->down_bn, &cd, &dsum, &dcd);
        sc_conv_layer_bwd(ctx, &b->down, x, &dcd, &dshort);
        sc_op_add(ctx->be, &dx, &dshort, &dx);
    } else {
        sc_op_add(ctx->be, &dx, &dsum, &dx);
    }
}

void sc_resnet_backward(sc_resnet *r, const sc_nn_ctx *ctx, const sc_tensor *dh, void *const scratch[4]) {
    int n = r->n;
    SC_CHECK(dh->shape[0] == n, "backward batch %lld differs from the forward batch %d",
             (long long)dh->shape[0], n);
    void *cur = scratch[0], *next = scratch[1], *t1 = scratch[2], *t2 = scratch[3];

    /* global average pool: dh [n, F] -> gradient of the last block output */
    sc_tensor last = sc_rows(&r->blocks[r->nblocks - 1].out, n);
    sc_tensor dlast = view_like(cur, &last);
    sc_op_avgpool_bwd(ctx->be, dh, &dlast);

    for (int i = r->nblocks - 1; i >= 0; i--) {
        sc_tensor in = i > 0 ? sc_rows(&r->blocks[i - 1].out, n)
                             : sc_rows(r->has_pool ? &r->stem_p : &r->stem_a, n);
        block_backward(ctx, &r->blocks[i], &in, n, cur, next, t1, t2);
        sc_nn_grad_ready(ctx, r->blocks[i].conv[0].weight); /* the block's first row */
        void *tmp = cur;
        cur = next;
        next = tmp;
    }

    /* stem: (max pool) -> ReLU -> BN -> conv weight (the input needs no gradient) */
    sc_tensor a = sc_rows(&r->stem_a, n);
    sc_tensor da;
    if (r->has_pool) {
        sc_tensor p = sc_rows(&r->stem_p, n);
        sc_tensor dp = view_like(cur, &p);
        da = view_like(next, &a);
        sc_pool_desc pd = sc_pool_desc_make(n, (int)a.shape[1], (int)a.shape[2], (int)a.shape[3], 3, 2, 1);
        sc_op_maxpool_bwd(ctx->be, &pd, &a, &dp, &da);
    } else {
        da = view_like(cur, &a);
    }
    sc_tensor c = sc_rows(&r->stem_c, n);
    sc_tensor dc = view_like(t1, &c);
    sc_bn_layer_bwd_relu(ctx, &r->stem_bn, &c, &a, &da, &dc);
    sc_conv_layer_bwd(ctx, &r->stem_conv, &r->x, &dc, NULL);
    sc_nn_grad_ready(ctx, r->stem_conv.weight); /* offset 0: the encoder registers first */
}
