/*
 * test_model.c - the whole SimCLR network (encoder + head + L2 norm + NT-Xent) against
 * central finite differences in double precision, on tiny ResNets of both block types and
 * both stems; plus evaluation-mode batching and F32/F64 agreement, and the gradient-ready
 * hook: each offset it reports has every gradient above it written and never written again.
 */
#include <math.h>

#include "harness.h"
#include "simclr/backend.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/rng.h"

static sc_backend *be;

typedef struct net {
    sc_model *m;
    sc_loss loss;
    double *x; /* [2N, S, S, C] */
    int views, size, ch;
} net;

static void net_make(net *n, const sc_model_config *mc, int views, int size, sc_dtype dt, uint64_t seed) {
    n->views = views;
    n->size = size;
    n->ch = mc->in_channels;
    CHECK(sc_model_create(mc, be, dt, &n->m) == SC_OK);
    sc_model_init_params(n->m, seed);
    /* perturb every trained parameter a little so no BN gamma or beta sits at 0 or 1 */
    sc_tensor pb = sc_model_param_buffer(n->m);
    const sc_param_table *t = sc_model_params(n->m);
    sc_rng r = sc_rng_make(seed, 0, 0, 0, SC_RNG_TEST);
    for (int i = 0; i < t->count; i++) {
        if (t->rows[i].flags & SC_PARAM_BN_STAT) continue;
        for (int64_t j = 0; j < t->rows[i].numel; j++) {
            double d = 0.2 * (sc_rng_uniform_f64(&r) - 0.5);
            if (dt == SC_F64)
                ((double *)pb.data)[t->rows[i].offset + j] += d;
            else
                ((float *)pb.data)[t->rows[i].offset + j] += (float)d;
        }
    }
    CHECK(sc_model_plan(n->m, views, size, size) == SC_OK);
    sc_contrastive_desc ld = sc_contrastive_ntxent(0.5);
    CHECK(sc_loss_init(&n->loss, be, &ld, views, sc_model_out_dim(n->m), dt) == SC_OK);
    int64_t numel = (int64_t)views * size * size * n->ch;
    n->x = malloc((size_t)numel * sizeof *n->x);
    for (int64_t i = 0; i < numel; i++) n->x[i] = sc_rng_uniform_f64(&r);
}

static void net_free(net *n) {
    sc_loss_free(&n->loss);
    sc_model_destroy(n->m);
    free(n->x);
}

/* Loss of the current parameters (F64 model); with backward, fills the gradient buffer. */
static double net_loss(net *n, int backward) {
    sc_tensor x = sc_tensor_4d(n->x, SC_F64, n->views, n->size, n->size, n->ch), z, dz;
    sc_model_forward(n->m, &x, 1, NULL, &z);
    sc_loss_compute(&n->loss, &z, backward ? &dz : NULL);
    double l;
    sc_loss_read(&n->loss, &l, NULL);
    if (backward) sc_model_backward(n->m, &dz);
    return l;
}

static void gradient_check(const char *what, const sc_model_config *mc, int views, int size) {
    net n;
    net_make(&n, mc, views, size, SC_F64, 3);
    net_loss(&n, 1);
    const sc_param_table *t = sc_model_params(n.m);
    double *w = sc_model_param_buffer(n.m).data, *g = sc_model_grad_buffer(n.m).data;
    int checked = 0, bad = 0;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        if (p->flags & SC_PARAM_BN_STAT) continue;
        /* errors are judged against the tensor's largest gradient, so an entry that is tiny
         * compared with its neighbours is not held to a precision the loss cannot resolve */
        double scale = 0.0;
        for (int64_t j = 0; j < p->numel; j++) scale = fmax(scale, fabs(g[p->offset + j]));
        /* up to 6 elements of every tensor, spread over it */
        int64_t step = p->numel > 6 ? p->numel / 6 : 1;
        for (int64_t j = 0; j < p->numel; j += step) {
            double *v = &w[p->offset + j], keep = *v, h = 1e-6;
            *v = keep + h;
            double up = net_loss(&n, 0);
            *v = keep - h;
            double down = net_loss(&n, 0);
            *v = keep;
            double num = (up - down) / (2 * h), ana = g[p->offset + j];
            double err = fabs(num - ana) / fmax(1e-9, scale);
            checked++;
            if (err > worst) {
                worst = err;
                worst_name = p->name;
            }
            if (err > 1e-4) {
                bad++;
                if (bad <= 5) printf("  %s: %s[%lld]: analytic %.9g, numeric %.9g (scale %.3g)\n", what, p->name, (long long)j, ana, num, scale);
            }
        }
    }
    printf("  %s: %d gradient entries checked, worst error %.2e of the tensor scale (%s)\n", what, checked, worst, worst_name);
    CHECKF(bad == 0, "%s: %d of %d gradient entries disagree", what, bad, checked);
    net_free(&n);
}

static void test_gradient_resnet18_cifar(void) {
    sc_model_config mc = {.arch = SC_ARCH_RESNET18, .stem = SC_STEM_CIFAR, .width = 1.0 / 32, .in_channels = 2,
                          .head_layers = 2, .head_hidden = 5, .head_out = 4, .head_bn_hidden = 1, .head_bias = 1};
    gradient_check("resnet18/cifar", &mc, 6, 6);
}

static void test_gradient_resnet50_imagenet(void) {
    sc_model_config mc = {.arch = SC_ARCH_RESNET50, .stem = SC_STEM_IMAGENET, .width = 1.0 / 32, .in_channels = 3,
                          .head_layers = 3, .head_hidden = 6, .head_out = 3, .head_bn_hidden = 1, .head_bn_last = 1,
                          .head_bias = 1};
    gradient_check("resnet50/imagenet", &mc, 4, 48); /* layer4 at 2x2: >= 16 values per BN channel */
}

static void test_gradient_head_variants(void) {
    sc_model_config mc = {.arch = SC_ARCH_RESNET34, .stem = SC_STEM_CIFAR, .width = 1.0 / 32, .in_channels = 1,
                          .head_layers = 2, .head_out = 5, .head_bn_hidden = 0, .head_bias = 1};
    gradient_check("resnet34/no-bn head", &mc, 4, 5);
    mc.head_layers = 1;
    mc.head_bias = 0;
    gradient_check("resnet34/linear head", &mc, 4, 5);
}

/* Evaluation rows are independent: a smaller batch gives the same rows as a full one. */
static void test_eval_batching(void) {
    sc_model_config mc = {.arch = SC_ARCH_RESNET18, .stem = SC_STEM_CIFAR, .width = 1.0 / 16, .in_channels = 3,
                          .head_layers = 2, .head_out = 8, .head_bn_hidden = 1, .head_bias = 1};
    net n;
    net_make(&n, &mc, 6, 7, SC_F64, 9);
    net_loss(&n, 1); /* one training pass updates the running statistics */
    sc_tensor x = sc_tensor_4d(n.x, SC_F64, 6, 7, 7, 3), h, z;
    sc_model_forward(n.m, &x, 0, &h, &z);
    int f = sc_model_feature_dim(n.m), d = sc_model_out_dim(n.m);
    double *h6 = malloc(6 * (size_t)f * sizeof *h6), *z6 = malloc(6 * (size_t)d * sizeof *z6);
    memcpy(h6, h.data, 6 * (size_t)f * sizeof *h6);
    memcpy(z6, z.data, 6 * (size_t)d * sizeof *z6);
    sc_tensor x2 = sc_tensor_slice0(&x, 4, 2);
    sc_model_forward(n.m, &x2, 0, &h, &z);
    CHECK(h.shape[0] == 2 && z.shape[0] == 2);
    sc_test_compare("h rows 4-5", h.data, h6 + 4 * f, 2 * f, 1e-12, 1e-12);
    sc_test_compare("z rows 4-5", z.data, z6 + 4 * d, 2 * d, 1e-12, 1e-12);
    free(h6);
    free(z6);
    net_free(&n);
}

/* The same network in F32 and F64 agrees to fp32 precision. */
static void test_f32_matches_f64(void) {
    sc_model_config mc = {.arch = SC_ARCH_RESNET18, .stem = SC_STEM_CIFAR, .width = 1.0 / 16, .in_channels = 1,
                          .head_layers = 2, .head_out = 8, .head_bn_hidden = 1, .head_bias = 1};
    net a, b;
    net_make(&a, &mc, 8, 8, SC_F64, 5);
    net_make(&b, &mc, 8, 8, SC_F32, 5);
    double la = net_loss(&a, 1);
    float *xf = malloc(8 * 8 * 8 * sizeof *xf);
    for (int i = 0; i < 8 * 8 * 8; i++) xf[i] = (float)a.x[i];
    sc_tensor x = sc_tensor_4d(xf, SC_F32, 8, 8, 8, 1), z, dz;
    sc_model_forward(b.m, &x, 1, NULL, &z);
    sc_loss_compute(&b.loss, &z, &dz);
    double lb;
    sc_loss_read(&b.loss, &lb, NULL);
    sc_model_backward(b.m, &dz);
    CHECK_CLOSE(lb, la, 1e-5, 1e-5);
    const sc_param_table *t = sc_model_params(a.m);
    const double *ga = sc_model_grad_buffer(a.m).data;
    const float *gb = sc_model_grad_buffer(b.m).data;
    double *g32 = malloc((size_t)t->total * sizeof *g32);
    for (int64_t i = 0; i < t->total; i++) g32[i] = gb[i];
    sc_test_compare("F32 vs F64 gradients", g32, ga, t->total, 1e-5, 1e-3);
    free(g32);
    free(xf);
    net_free(&a);
    net_free(&b);
}

/* What the gradient-ready hook saw: each offset and a copy of grads [offset, total) then. */
typedef struct ready_log {
    const sc_param_table *t;
    const float *g;
    int calls, unwritten; /* unwritten: trainable entries above an offset still holding the poison */
    int64_t offset[64];
    float *seen[64];
} ready_log;

static void log_ready(void *arg, int64_t offset) {
    ready_log *l = arg;
    if (l->calls == 64) return;
    for (int i = 0; i < l->t->count; i++) {
        const sc_param *p = &l->t->rows[i];
        if (p->offset < offset || (p->flags & SC_PARAM_BN_STAT)) continue;
        for (int64_t j = 0; j < p->numel; j++) l->unwritten += isnan(l->g[p->offset + j]);
    }
    size_t n = (size_t)(l->t->total - offset);
    l->seen[l->calls] = malloc(n * sizeof(float));
    memcpy(l->seen[l->calls], l->g + offset, n * sizeof(float));
    l->offset[l->calls++] = offset;
}

/* The hook is called after each head layer, each block and the stem (last, with offset 0),
 * with falling offsets; when it is called, every trained gradient from the offset up has been
 * written (the buffer was poisoned with NaN), and nothing there changes afterwards. */
static void hook_case(const sc_model_config *mc, int blocks, int size) {
    net n;
    net_make(&n, mc, 4, size, SC_F32, 11);
    const sc_param_table *t = sc_model_params(n.m);
    sc_tensor g = sc_model_grad_buffer(n.m);
    ready_log l = {.t = t, .g = g.data};
    for (int i = 0; i < t->count; i++)
        if (!(t->rows[i].flags & SC_PARAM_BN_STAT))
            for (int64_t j = 0; j < t->rows[i].numel; j++) ((float *)g.data)[t->rows[i].offset + j] = NAN;
    sc_model_set_grad_ready(n.m, log_ready, &l);
    float *xf = malloc((size_t)4 * size * size * mc->in_channels * sizeof *xf);
    for (int i = 0; i < 4 * size * size * mc->in_channels; i++) xf[i] = (float)n.x[i];
    sc_tensor x = sc_tensor_4d(xf, SC_F32, 4, size, size, mc->in_channels), z, dz;
    sc_model_forward(n.m, &x, 1, NULL, &z);
    sc_loss_compute(&n.loss, &z, &dz);
    sc_model_backward(n.m, &dz);
    CHECKF(l.calls == mc->head_layers + blocks + 1, "%d calls", l.calls);
    CHECK(l.calls > 0 && l.offset[l.calls - 1] == 0);
    CHECKF(l.unwritten == 0, "%d gradient entries were reported final before they were written", l.unwritten);
    int changed = 0;
    for (int k = 0; k < l.calls; k++) {
        if (k > 0) CHECK(l.offset[k] < l.offset[k - 1]);
        changed += memcmp(l.seen[k], (float *)g.data + l.offset[k], (size_t)(t->total - l.offset[k]) * sizeof(float)) != 0;
        free(l.seen[k]);
    }
    CHECKF(changed == 0, "%d reported ranges changed after they were reported final", changed);
    sc_model_set_grad_ready(n.m, NULL, NULL); /* removed: no calls */
    l.calls = 0;
    sc_model_forward(n.m, &x, 1, NULL, &z);
    sc_model_backward(n.m, &dz);
    CHECK(l.calls == 0);
    free(xf);
    net_free(&n);
}

static void test_grad_ready_hook(void) {
    sc_model_config basic = {.arch = SC_ARCH_RESNET18, .stem = SC_STEM_CIFAR, .width = 1.0 / 16, .in_channels = 2,
                             .head_layers = 2, .head_out = 8, .head_bn_hidden = 1, .head_bias = 1};
    hook_case(&basic, 8, 8);
    sc_model_config bottleneck = {.arch = SC_ARCH_RESNET50, .stem = SC_STEM_IMAGENET, .width = 1.0 / 32,
                                  .in_channels = 3, .head_layers = 3, .head_hidden = 6, .head_out = 3,
                                  .head_bn_hidden = 1, .head_bn_last = 1, .head_bias = 1};
    hook_case(&bottleneck, 16, 32);
}

/* Backward without a training forward through the head is a programming error; planning
 * errors are reported, not aborted on. */
static void test_plan_errors(void) {
    sc_model_config mc = {.arch = SC_ARCH_RESNET18, .stem = SC_STEM_IMAGENET, .width = 1.0 / 16, .in_channels = 3,
                          .head_layers = 1, .head_out = 4};
    sc_model *m;
    CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_OK);
    CHECK(sc_model_plan(m, 0, 32, 32) == SC_ERR_ARG);
    sc_model_destroy(m);
    mc.head_layers = 0;
    CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_ERR_ARG && strstr(sc_last_error(), "head"));
}

/* Forward multiply-adds counted at planning time equal an independent count over
 * torchvision's modules (forward hooks; torchvision's fc replaced by our 1-layer head). */
static void test_forward_macs(void) {
    struct {
        sc_arch arch;
        sc_stem stem;
        double width;
        int ch, size, out;
        double want;
    } cases[] = {
        {SC_ARCH_RESNET18, SC_STEM_IMAGENET, 1.0, 3, 224, 1000, 1814073344.0}, /* torchvision resnet18 */
        {SC_ARCH_RESNET50, SC_STEM_IMAGENET, 1.0, 3, 224, 1000, 4089184256.0}, /* torchvision resnet50 */
        {SC_ARCH_RESNET18, SC_STEM_CIFAR, 1.0, 3, 32, 1, 555417600.0 + 512},   /* CIFAR stem encoder */
        {SC_ARCH_RESNET18, SC_STEM_CIFAR, 0.125, 1, 28, 1, 7171200.0 + 64},    /* the quickstart encoder */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_model_config mc = {.arch = cases[i].arch, .stem = cases[i].stem, .width = cases[i].width,
                              .in_channels = cases[i].ch, .head_layers = 1, .head_out = cases[i].out, .head_bias = 1};
        sc_model *m;
        CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_OK);
        CHECK(sc_model_plan(m, 1, cases[i].size, cases[i].size) == SC_OK);
        CHECK_CLOSE(sc_model_forward_macs(m), cases[i].want, 0, 0);
        sc_model_destroy(m);
    }
}

int main(void) {
    sc_backend_options opt = {.threads = 2};
    if (sc_backend_create("cpu", &opt, &be) != SC_OK) sc_test_skip("no CPU backend");
    SC_RUN(test_gradient_resnet18_cifar);
    SC_RUN(test_gradient_resnet50_imagenet);
    SC_RUN(test_gradient_head_variants);
    SC_RUN(test_eval_batching);
    SC_RUN(test_f32_matches_f64);
    SC_RUN(test_grad_ready_hook);
    SC_RUN(test_plan_errors);
    SC_RUN(test_forward_macs);
    sc_backend_destroy(be);
    return sc_test_summary();
}
