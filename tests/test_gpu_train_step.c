/*
 * test_gpu_train_step.c - whole SimCLR training steps on the GPU against the CPU reference.
 *
 *  - 3 steps (forward, L2 norm, NT-Xent, backward, LARS) of tiny models on the CPU and on the
 *    GPU (TF32 off, deterministic) from the same weights and the same inputs give the same
 *    losses and, after the 3 updates, the same parameters (BN running statistics included)
 *    and momentum within tolerance: a ResNet-18 with the CIFAR stem and a ResNet-50 with the
 *    ImageNet stem (max pool, bottlenecks, downsample shortcuts), heads with and without BN
 *    on the last layer.
 *  - The same 3 GPU steps run eagerly and as a replayed CUDA step graph give identical bits
 *    (deterministic mode: two runs, two ways, one result).
 *  - sc_train on the GPU (synthetic CIFAR-100 files, step graphs on): the run completes, the
 *    loss falls and the linear probe runs.
 * Without a GPU: exit 77 (skipped).
 */
#include <sys/stat.h>
#include <unistd.h>

#include "gpu_test_util.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/optim.h"
#include "simclr/train.h"

#define STEPS 3

typedef struct net_case {
    const char *what;
    sc_model_config mc;
    int batch, size;
} net_case;

/* A model, loss and optimizer on one backend. */
typedef struct rig {
    sc_backend *be;
    sc_model *m;
    sc_loss loss;
    sc_optimizer opt;
    sc_tensor x;
    sc_step_graph *graph;
} rig;

static void rig_make(rig *r, sc_backend *be, const net_case *nc) {
    memset(r, 0, sizeof *r);
    r->be = be;
    const int views = 2 * nc->batch;
    CHECK(sc_model_create(&nc->mc, be, SC_F32, &r->m) == SC_OK);
    CHECK(sc_model_plan(r->m, views, nc->size, nc->size) == SC_OK);
    const sc_contrastive_desc ld = sc_contrastive_ntxent(0.2);
    CHECK(sc_loss_init(&r->loss, be, &ld, views, sc_model_out_dim(r->m), SC_F32) == SC_OK);
    sc_model_init_params(r->m, 42);
    sc_schedule s = {.peak_lr = 1.2, .warmup_steps = 1, .total_steps = 10};
    sc_optim_hparams hp = {.kind = SC_OPTIM_LARS, .momentum = 0.9, .weight_decay = 1e-4, .trust_coef = 1e-3};
    CHECK(sc_optimizer_init(&r->opt, be, &hp, &s, sc_model_params(r->m)->total, SC_F32) == SC_OK);
    void *xd = NULL;
    size_t bytes = (size_t)views * nc->size * nc->size * nc->mc.in_channels * sizeof(float);
    CHECK(sc_backend_alloc(be, bytes, "input", &xd) == SC_OK);
    r->x = sc_tensor_4d(xd, SC_F32, views, nc->size, nc->size, nc->mc.in_channels);
}

static void rig_free(rig *r) {
    sc_step_graph_free(r->be, r->graph);
    sc_backend_free(r->be, r->x.data);
    sc_optimizer_free(&r->opt);
    sc_loss_free(&r->loss);
    sc_model_destroy(r->m);
}

static void device_step(rig *r) {
    sc_tensor z, dz;
    sc_model_forward(r->m, &r->x, 1, NULL, &z);
    sc_loss_compute(&r->loss, &z, &dz);
    sc_model_backward(r->m, &dz);
    sc_tensor p = sc_model_param_buffer(r->m), g = sc_model_grad_buffer(r->m), s = sc_model_state_buffer(r->m);
    sc_optimizer_apply(&r->opt, sc_model_params(r->m), &p, &g, &s);
}

/* Step `step` on input `x`: eager, or (graph != 0) recorded at step 1 and replayed after. */
static double rig_step(rig *r, int step, const float *x, int graph) {
    sc_tensor_upload(r->be, &r->x, x);
    sc_optimizer_prepare(&r->opt, step);
    if (!graph || step == 0) {
        device_step(r);
    } else {
        if (!r->graph) {
            CHECK(sc_backend_capture_begin(r->be) == SC_OK);
            device_step(r);
            CHECKF(sc_backend_capture_end(r->be, &r->graph) == SC_OK, "%s", sc_last_error());
        }
        if (r->graph) sc_step_graph_launch(r->be, r->graph);
    }
    double loss;
    sc_loss_read(&r->loss, &loss, NULL);
    return loss;
}

static float *read_buffer(rig *r, sc_tensor t) {
    float *h = malloc((size_t)sc_tensor_nbytes(&t));
    if (!h) exit(1);
    sc_tensor_download(r->be, h, &t);
    return h;
}

/* Per parameter row: |gpu - cpu| <= 1e-4 * max|cpu row| + 1e-7. */
static void compare_rows(const char *what, const sc_param_table *t, const float *got, const float *want) {
    int bad = 0;
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        double scale = 0.0, worst = 0.0;
        for (int64_t j = 0; j < p->numel; j++) {
            double w = want[p->offset + j], d = fabs((double)got[p->offset + j] - w);
            scale = fabs(w) > scale ? fabs(w) : scale;
            worst = d > worst || isnan(d) ? d : worst;
        }
        if (!(worst <= 1e-4 * scale + 1e-7) && bad++ < 5)
            printf("  %s: %s: largest difference %.3g of scale %.3g\n", what, p->name, worst, scale);
    }
    CHECKF(bad == 0, "%s: %d parameter rows differ", what, bad);
}

static void parity_case(const net_case *nc) {
    sc_backend *cpu = cpu_backend(), *gpu = gpu_backend(0, 1);
    rig c, g, gg;
    rig_make(&c, cpu, nc);
    rig_make(&g, gpu, nc);
    rig_make(&gg, gpu, nc);
    const size_t nx = (size_t)sc_tensor_numel(&c.x);
    for (int step = 0; step < STEPS; step++) {
        float *x = host_randn(nx, 9000 + (uint64_t)step, 0.4, 0.3);
        double lc = rig_step(&c, step, x, 0), lg = rig_step(&g, step, x, 0), lgg = rig_step(&gg, step, x, 1);
        CHECKF(fabs(lg - lc) <= 1e-4 * fabs(lc), "%s step %d: loss %.7f on the GPU, %.7f on the CPU", nc->what, step,
               lg, lc);
        CHECKF(memcmp(&lg, &lgg, sizeof lg) == 0, "%s step %d: eager loss %.9g, graph loss %.9g", nc->what, step, lg,
               lgg);
        free(x);
    }
    const sc_param_table *t = sc_model_params(c.m);
    float *pc = read_buffer(&c, sc_model_param_buffer(c.m)), *pg = read_buffer(&g, sc_model_param_buffer(g.m));
    float *vc = read_buffer(&c, sc_model_state_buffer(c.m)), *vg = read_buffer(&g, sc_model_state_buffer(g.m));
    float *pgg = read_buffer(&gg, sc_model_param_buffer(gg.m)), *vgg = read_buffer(&gg, sc_model_state_buffer(gg.m));
    char what[128];
    snprintf(what, sizeof what, "%s: parameters after %d steps", nc->what, STEPS);
    compare_rows(what, t, pg, pc);
    snprintf(what, sizeof what, "%s: momentum after %d steps", nc->what, STEPS);
    compare_rows(what, t, vg, vc);
    snprintf(what, sizeof what, "%s: graph vs eager parameters", nc->what);
    compare_f32(what, pgg, pg, (size_t)t->total, 0.0);
    snprintf(what, sizeof what, "%s: graph vs eager momentum", nc->what);
    compare_f32(what, vgg, vg, (size_t)t->total, 0.0);
    free(pc), free(pg), free(vc), free(vg), free(pgg), free(vgg);
    rig_free(&c);
    rig_free(&g);
    rig_free(&gg);
    sc_backend_destroy(gpu);
    sc_backend_destroy(cpu);
}

static void test_resnet18_cifar(void) {
    net_case nc = {"resnet18 cifar w1/8", {.arch = SC_ARCH_RESNET18, .stem = SC_STEM_CIFAR, .width = 0.125,
                                           .in_channels = 3, .zero_init_residual = 0, .head_layers = 2,
                                           .head_out = 32, .head_bn_hidden = 1, .head_bias = 1},
                   8, 16};
    parity_case(&nc);
}

static void test_resnet50_imagenet(void) {
    net_case nc = {"resnet50 imagenet w1/16", {.arch = SC_ARCH_RESNET50, .stem = SC_STEM_IMAGENET, .width = 0.0625,
                                               .in_channels = 3, .zero_init_residual = 1, .head_layers = 3,
                                               .head_hidden = 64, .head_out = 16, .head_bn_hidden = 1,
                                               .head_bn_last = 1},
                   4, 32};
    parity_case(&nc);
}

/* ---- the trainer on the GPU ------------------------------------------------------------------- */

/* CIFAR-100 binary files (train.bin, test.bin) of `count` records: label bytes (coarse, fine)
 * then 32x32 RGB planes, each class a different smooth pattern plus noise. */
static void write_cifar100(const char *path, int count, uint64_t seed) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    sc_rng r = sc_rng_make(seed, 0, 0, 0, SC_RNG_TEST);
    unsigned char rec[2 + 3072];
    for (int i = 0; i < count; i++) {
        int label = i % 10;
        rec[0] = (unsigned char)(label % 20);
        rec[1] = (unsigned char)label;
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 1024; p++) {
                double v = 128 + 90 * sin(0.2 * (label + 1) * (p % 32) + 0.3 * ch * (p / 32)) + 20 * sc_rng_normal(&r);
                rec[2 + ch * 1024 + p] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        CHECK(fwrite(rec, sizeof rec, 1, f) == 1);
    }
    fclose(f);
}

static void test_trainer(void) {
    char dir[] = "/tmp/simclr_gpu_train_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/train.bin", dir);
    write_cifar100(path, 1024, 1);
    snprintf(path, sizeof path, "%s/test.bin", dir);
    write_cifar100(path, 256, 2);
    sc_config cfg;
    sc_config_defaults(&cfg);
    const char *sets[] = {"data.dataset=cifar100", "model.arch=resnet18", "model.stem=cifar", "model.width=0.125",
                          "model.head.out_dim=32", "train.batch_size=64", "train.max_steps=20", "train.epochs=2",
                          "train.warmup_epochs=0.1", "run.log_every=5", "run.progress=never", "run.name=gpu",
                          "data.workers=2", "augment.blur_p=0", "eval.probe_train_samples=512",
                          "eval.probe_test_samples=256", "eval.batch_size=100", "run.device=cuda",
                          "run.cuda_graph=true", "loss.temperature=0.5"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        CHECKF(sc_config_set(&cfg, sets[i]) == SC_OK, "%s: %s", sets[i], sc_last_error());
    char set[600];
    snprintf(set, sizeof set, "data.path=%s", dir);
    CHECK(sc_config_set(&cfg, set) == SC_OK);
    snprintf(set, sizeof set, "run.dir=%s/runs", dir);
    CHECK(sc_config_set(&cfg, set) == SC_OK);
    sc_train_result res;
    sc_status rc = sc_train(&cfg, &res);
    CHECKF(rc == SC_OK, "%s", sc_last_error());
    if (rc != SC_OK) return;
    printf("  20 GPU steps: loss %.4f -> %.4f, %.0f images/s; probe %.3f (random init %.3f)\n", res.first_loss,
           res.final_loss, res.images_per_second, res.probe.pretrained.test_accuracy,
           res.probe.random_init.test_accuracy);
    CHECK(res.steps == 20 && res.probed);
    CHECKF(res.final_loss < res.first_loss - 0.05, "loss did not fall: %.4f -> %.4f", res.first_loss, res.final_loss);
}

int main(void) {
    if (sc_cuda_device_count() == 0) sc_test_skip("no CUDA GPU visible");
    SC_RUN(test_resnet18_cifar);
    SC_RUN(test_resnet50_imagenet);
    SC_RUN(test_trainer);
    return sc_test_summary();
}
