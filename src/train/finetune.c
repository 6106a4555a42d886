/*
 * finetune.c - the fine-tuning protocol with a fraction of the labels (see sc_finetune in
 * include/simclr/eval.h).
 *
 * The network is the pretraining model with its projection head replaced by a linear
 * classifier: the same sc_model with a one-layer head (no BN, with bias, out = classes), so
 * every layer, the planner, the optimizer and the checkpoint code are the ones pretraining
 * uses. One step:
 *   B crop+flip views [B, S, S, C] -> encoder -> classifier logits [B, K]
 *   -> softmax cross-entropy (sc_op_softmax_xent) -> backward -> SGD (Nesterov) step
 * following SimCLR's fine-tuning recipe (paper B.5): the whole encoder is trained, no warmup,
 * cosine decay, lr = finetune.lr * B / 256, no weight decay by default. The loader runs in
 * its training mode (shuffled per epoch, last partial batch dropped) with colour jitter,
 * grayscale and blur off; of the two views it makes per image only the first is used.
 *
 * The labelled subset is class-balanced: the same number of images from every class, each
 * class's pick the first of a Philox (seed, SC_RNG_EVAL, sample = class, view 0) permutation,
 * so a (fraction, seed) pair always gives the same images; the indices are written to
 * label_subset.txt.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "progress.h"
#include "simclr/checkpoint.h"
#include "simclr/eval.h"
#include "simclr/log.h"
#include "simclr/optim.h"
#include "simclr/rng.h"
#include "simclr/train.h"

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

sc_status sc_label_subset(const int32_t *labels, int64_t count, int classes, double fraction, uint64_t seed,
                          int64_t **indices, int64_t *n) {
    *indices = NULL;
    *n = 0;
    if (!labels || classes < 1 || count < 1) return sc_errorf(SC_ERR_DATA, "a labelled subset needs labelled images");
    if (!(fraction > 0.0 && fraction <= 1.0)) return sc_errorf(SC_ERR_ARG, "label fraction %g is outside (0, 1]", fraction);
    int64_t per_class = (int64_t)llround(fraction * (double)count / (double)classes);
    per_class = per_class < 1 ? 1 : per_class;
    int64_t *rows = malloc((size_t)count * sizeof *rows), *out = malloc((size_t)count * sizeof *out), total = 0;
    if (!rows || !out) {
        free(rows);
        free(out);
        return sc_errorf(SC_ERR_NOMEM, "out of memory choosing a labelled subset of %lld images", (long long)count);
    }
    for (int c = 0; c < classes; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < count; i++)
            if (labels[i] == c) rows[m++] = i;
        int64_t take = per_class < m ? per_class : m;
        if (take < per_class)
            SC_WARN("class %d has only %lld images; the labelled subset takes all of them (not %lld)", c, (long long)m,
                    (long long)per_class);
        sc_rng r = sc_rng_make(seed, 0, (uint32_t)c, 0, SC_RNG_EVAL);
        for (int64_t j = 0; j < take; j++) { /* partial Fisher-Yates */
            int64_t pick = j + (int64_t)sc_rng_below(&r, (uint32_t)(m - j));
            int64_t t = rows[j];
            rows[j] = rows[pick];
            rows[pick] = t;
            out[total++] = rows[j];
        }
    }
    free(rows);
    qsort(out, (size_t)total, sizeof *out, cmp_i64);
    *indices = out;
    *n = total;
    return SC_OK;
}

/* ---- the fine-tuning run ----------------------------------------------------------------------- */

typedef struct ft_run {
    const sc_config *cfg;
    const char *dir;
    sc_backend *be;
    sc_dataset train, test, labelled;
    sc_augment_params train_aug, eval_aug;
    sc_model *model;
    int batch;
    FILE *metrics;
    void *xdev, *ydev, *dldev;    /* views [B, S, S, C], labels [B] I32, d loss / d logits [B, K] */
    void *loss_buf;               /* loss and accuracy [2] */
} ft_run;

/* A dataset holding copies of the images `idx[0..n)` of `src`. */
static sc_status subset_dataset(const sc_dataset *src, const int64_t *idx, int64_t n, sc_dataset *out) {
    memset(out, 0, sizeof *out);
    size_t img = (size_t)src->height * (size_t)src->width * (size_t)src->channels;
    out->pixels = malloc((size_t)n * img);
    out->labels = malloc((size_t)n * sizeof *out->labels);
    if (!out->pixels || !out->labels) {
        sc_dataset_free(out);
        return sc_errorf(SC_ERR_NOMEM, "out of memory for %lld labelled images", (long long)n);
    }
    snprintf(out->name, sizeof out->name, "%.48s/labelled", src->name);
    out->count = n;
    out->height = src->height;
    out->width = src->width;
    out->channels = src->channels;
    out->num_classes = src->num_classes;
    for (int64_t i = 0; i < n; i++) {
        memcpy(out->pixels + (size_t)i * img, src->pixels + (size_t)idx[i] * img, img);
        out->labels[i] = src->labels[idx[i]];
    }
    return SC_OK;
}

static sc_status write_subset(const char *dir, const sc_config *cfg, const sc_dataset *train, const int64_t *idx,
                              int64_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/label_subset.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "# labelled subset of %s: fraction %g, seed %" PRId64 ", %lld of %lld images, class-balanced\n",
            train->name, cfg->finetune.label_fraction, cfg->finetune.subset_seed, (long long)n, (long long)train->count);
    fprintf(f, "# one train-split index per line (0-based, ascending)\n");
    for (int64_t i = 0; i < n; i++) fprintf(f, "%lld\n", (long long)idx[i]);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return SC_OK;
}

/* The result of fine-tuning one starting point. */
typedef struct ft_outcome {
    int64_t steps;
    double seconds, first_loss, final_loss;
    sc_class_metrics metrics;
} ft_outcome;

/* Train `run->model` from its current weights on the labelled subset, then score the test
 * split. `phase` labels the metrics records. */
static sc_status train_and_score(ft_run *run, const char *phase, ft_outcome *out) {
    const sc_config *cfg = run->cfg;
    memset(out, 0, sizeof *out);
    sc_loader_options lo = {.dataset = &run->labelled, .aug = run->train_aug, .mode = SC_LOADER_TRAIN,
                            .batch_size = run->batch, .workers = cfg->data.workers, .prefetch = cfg->data.prefetch,
                            .seed = (uint64_t)cfg->finetune.subset_seed, .rank = 0, .world_size = 1};
    sc_loader *loader = NULL;
    SC_TRY(sc_loader_create(&lo, &loader));
    int64_t per_epoch = sc_loader_batches_per_epoch(loader);
    int64_t total = (int64_t)floor((double)per_epoch * cfg->finetune.epochs);
    total = total < 1 ? 1 : total;
    sc_schedule sched = {.peak_lr = sc_lr_scaled(cfg->finetune.lr, SC_LR_LINEAR, run->batch), .warmup_steps = 0,
                         .total_steps = total};
    sc_optim_hparams hp = {.kind = SC_OPTIM_SGD, .momentum = cfg->finetune.momentum,
                           .weight_decay = cfg->finetune.weight_decay, .nesterov = cfg->finetune.nesterov};
    sc_optimizer opt;
    sc_status rc = sc_optimizer_init(&opt, run->be, &hp, &sched, sc_model_params(run->model)->total, SC_F32);
    if (rc != SC_OK) {
        sc_loader_destroy(loader);
        return rc;
    }
    SC_INFO("fine-tuning (%s): %lld labelled images, batch %d, %lld steps (%lld per epoch), Nesterov SGD peak lr %.4g, "
            "wd %g", phase, (long long)run->labelled.count, run->batch, (long long)total, (long long)per_epoch,
            sched.peak_lr, hp.weight_decay);
    sc_model *m = run->model;
    sc_tensor state = sc_model_state_buffer(m);
    sc_tensor_zero(run->be, &state);
    int classes = run->train.num_classes, side = run->train_aug.out_size, ch = run->train_aug.out_channels;
    sc_tensor loss_t = sc_tensor_1d(run->loss_buf, SC_F32, 1), acc_t = sc_tensor_1d((float *)run->loss_buf + 1, SC_F32, 1);
    double start = sc_now(), win_loss = 0.0, win_acc = 0.0;
    int win_n = 0;
    int64_t step = 0, epoch = 0;
    while (rc == SC_OK && step < total) {
        rc = sc_loader_start_epoch(loader, epoch, 0);
        for (int64_t i = 0; rc == SC_OK && i < per_epoch && step < total; i++) {
            sc_batch *b = NULL;
            rc = sc_loader_next(loader, &b, NULL);
            if (rc != SC_OK) break;
            SC_CHECK(b != NULL, "fine-tuning loader ended epoch %lld early", (long long)epoch);
            /* the first view of each image: rows 0..B-1 */
            sc_tensor x = sc_tensor_4d(run->xdev, SC_F32, b->samples, side, side, ch);
            sc_tensor y = sc_tensor_1d(run->ydev, SC_I32, b->samples);
            sc_tensor_upload(run->be, &x, b->views);
            sc_tensor_upload(run->be, &y, b->labels);
            sc_loader_release(loader, b);
            sc_tensor logits, dlogits;
            sc_model_forward(m, &x, 1, NULL, &logits);
            dlogits = sc_tensor_2d(run->dldev, SC_F32, x.shape[0], classes);
            sc_op_softmax_xent(run->be, &logits, &y, &loss_t, &acc_t, &dlogits);
            sc_model_backward(m, &dlogits);
            sc_tensor params = sc_model_param_buffer(m), grads = sc_model_grad_buffer(m);
            sc_optimizer_step(&opt, sc_model_params(m), &params, &grads, &state, step);
            double loss = sc_tensor_read_scalar(run->be, &loss_t), acc = sc_tensor_read_scalar(run->be, &acc_t);
            if (!isfinite(loss)) {
                rc = sc_errorf(SC_ERR_DATA, "fine-tuning (%s): the loss became %g at step %lld (lr %.4g)", phase, loss,
                               (long long)step, opt.last_lr);
                break;
            }
            step++;
            win_loss += loss;
            win_acc += acc;
            win_n++;
            if (step % cfg->run.log_every == 0 || step == total) {
                double el = sc_now() - start;
                fprintf(run->metrics,
                        "{\"phase\": \"%s\", \"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"loss\": %.9g, "
                        "\"train_acc\": %.6g, \"lr\": %.9g, \"images_per_s\": %.6g, \"elapsed_s\": %.6g}\n",
                        phase, step, epoch, win_loss / win_n, win_acc / win_n, opt.last_lr,
                        (double)step * run->batch / el, el);
                fflush(run->metrics);
                SC_INFO("fine-tuning (%s) step %lld/%lld  loss %.4f  train acc %.3f  lr %.4g", phase, (long long)step,
                        (long long)total, win_loss / win_n, win_acc / win_n, opt.last_lr);
                if (out->first_loss == 0.0) out->first_loss = win_loss / win_n;
                out->final_loss = win_loss / win_n;
                win_loss = win_acc = 0.0;
                win_n = 0;
            }
        }
        epoch++;
    }
    sc_optimizer_free(&opt);
    sc_loader_destroy(loader);
    out->steps = step;
    out->seconds = sc_now() - start;
    if (rc != SC_OK) return rc;
    float *logits = NULL;
    int64_t n = 0;
    SC_TRY(sc_extract_outputs(m, &run->test, &run->eval_aug, cfg->eval.batch_size, cfg->data.workers,
                              cfg->eval.probe_test_samples, 1, &logits, &n));
    rc = sc_class_metrics_compute(logits, run->test.labels, n, classes, &out->metrics);
    free(logits);
    if (rc == SC_OK)
        SC_INFO("fine-tuned (%s): test top-1 %.2f%%, top-5 %.2f%% on %lld images", phase, 100.0 * out->metrics.top1,
                100.0 * out->metrics.top5, (long long)n);
    return rc;
}

static sc_status write_report(const ft_run *run, const ft_outcome *pre, const ft_outcome *rnd, const char *checkpoint,
                              double peak_lr) {
    const sc_config *cfg = run->cfg;
    const char *const *names = sc_class_names(cfg, run->train.num_classes);
    char path[1200];
    snprintf(path, sizeof path, "%s/report.json", run->dir);
    FILE *f = fopen(path, "w");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "{\n  \"protocol\": \"finetune\",\n  \"checkpoint\": ");
    sc_json_string(f, checkpoint);
    fprintf(f, ",\n  \"label_fraction\": %g, \"subset_seed\": %" PRId64 ", \"labelled_images\": %lld, "
               "\"per_class\": %lld, \"classes\": %d,\n",
            cfg->finetune.label_fraction, cfg->finetune.subset_seed, (long long)run->labelled.count,
            (long long)(run->labelled.count / run->train.num_classes), run->train.num_classes);
    fprintf(f, "  \"settings\": {\"epochs\": %g, \"batch_size\": %d, \"peak_lr\": %g, \"momentum\": %g, "
               "\"nesterov\": %s, \"weight_decay\": %g, \"warmup\": 0, \"schedule\": \"cosine\", "
               "\"augment\": \"crop+flip\"},\n",
            cfg->finetune.epochs, run->batch, peak_lr, cfg->finetune.momentum,
            cfg->finetune.nesterov ? "true" : "false", cfg->finetune.weight_decay);
    const ft_outcome *both[2] = {pre, rnd};
    const char *key[2] = {"pretrained", "random_init"};
    for (int i = 0; i < 2; i++) {
        if (!both[i]) continue;
        fprintf(f, "  \"%s\": {\n    \"steps\": %lld, \"seconds\": %.3f, \"first_loss\": %.6f, \"final_loss\": %.6f,\n"
                   "    \"test_top1\": %.6f, \"test_top5\": %.6f,\n    \"metrics\": ",
                key[i], (long long)both[i]->steps, both[i]->seconds, both[i]->first_loss, both[i]->final_loss,
                both[i]->metrics.top1, both[i]->metrics.top5);
        sc_class_metrics_write_json(f, &both[i]->metrics, names, "    ");
        fprintf(f, "\n  }%s\n", i == 0 && rnd ? "," : "");
    }
    fprintf(f, "}\n");
    if (fclose(f) != 0) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/confusion.txt", run->dir);
    if (!(f = fopen(path, "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "fine-tuned from %s with %g of the labels\n\n", checkpoint, cfg->finetune.label_fraction);
    sc_class_metrics_write_text(f, &pre->metrics, names);
    if (fclose(f) != 0) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/confusion.png", run->dir);
    return sc_class_metrics_write_png(path, &pre->metrics);
}

static void ft_release(ft_run *run) {
    if (run->be) {
        sc_backend_free(run->be, run->xdev);
        sc_backend_free(run->be, run->ydev);
        sc_backend_free(run->be, run->dldev);
        sc_backend_free(run->be, run->loss_buf);
    }
    sc_model_destroy(run->model);
    sc_dataset_free(&run->labelled);
    sc_dataset_free(&run->train);
    sc_dataset_free(&run->test);
    sc_backend_destroy(run->be);
    if (run->metrics) fclose(run->metrics);
}

/* Everything before the first step: data, subset, model with the classifier head. */
static sc_status setup(ft_run *run, sc_config *model_cfg) {
    const sc_config *cfg = run->cfg;
    char path[1200];
    sc_backend_options bo = sc_train_backend_options(cfg);
    SC_TRY(sc_backend_create(cfg->run.device, &bo, &run->be));
    SC_TRY(sc_dataset_open(cfg, SC_SPLIT_TRAIN, &run->train));
    SC_TRY(sc_dataset_open(cfg, SC_SPLIT_TEST, &run->test));
    if (!run->train.labels || !run->test.labels || run->train.num_classes < 2)
        return sc_errorf(SC_ERR_DATA, "fine-tuning needs a labelled dataset with 2+ classes (%s)", run->train.name);
    int64_t *idx, n;
    SC_TRY(sc_label_subset(run->train.labels, run->train.count, run->train.num_classes, cfg->finetune.label_fraction,
                           (uint64_t)cfg->finetune.subset_seed, &idx, &n));
    sc_status rc = write_subset(run->dir, cfg, &run->train, idx, n);
    if (rc == SC_OK) rc = subset_dataset(&run->train, idx, n, &run->labelled);
    free(idx);
    SC_TRY(rc);
    run->batch = cfg->finetune.batch_size < n ? cfg->finetune.batch_size : (int)n;
    if (run->batch < 2) return sc_errorf(SC_ERR_DATA, "the labelled subset has %lld image(s); batch norm needs 2+", (long long)n);
    if (run->batch < cfg->finetune.batch_size)
        SC_WARN("finetune.batch_size %d exceeds the %lld labelled images: using batches of %d", cfg->finetune.batch_size,
                (long long)n, run->batch);
    SC_TRY(sc_augment_params_from_config(cfg, &run->train, &run->train_aug));
    run->eval_aug = run->train_aug;
    run->train_aug.jitter_p = run->train_aug.gray_p = run->train_aug.blur_p = 0.0; /* crop + flip only */
    /* the classifier head: one linear layer with bias, no BN, one output per class */
    model_cfg->model.head.layers = 1;
    model_cfg->model.head.out_dim = run->train.num_classes;
    model_cfg->model.head.bn_last = 0;
    model_cfg->model.head.bias = 1;
    sc_model_config mc = sc_model_config_from(model_cfg, run->train_aug.out_channels);
    SC_TRY(sc_model_create(&mc, run->be, SC_F32, &run->model));
    int side = run->train_aug.out_size, ch = run->train_aug.out_channels;
    int plan = run->batch > cfg->eval.batch_size ? run->batch : cfg->eval.batch_size;
    SC_TRY(sc_model_plan(run->model, plan, side, side));
    SC_TRY(sc_backend_alloc(run->be, (size_t)run->batch * side * side * ch * sizeof(float), "the views", &run->xdev));
    SC_TRY(sc_backend_alloc(run->be, (size_t)run->batch * sizeof(int32_t), "the labels", &run->ydev));
    SC_TRY(sc_backend_alloc(run->be, (size_t)run->batch * run->train.num_classes * sizeof(float), "the logit gradient",
                            &run->dldev));
    SC_TRY(sc_backend_alloc(run->be, 2 * sizeof(float), "the loss", &run->loss_buf));
    snprintf(path, sizeof path, "%s/config.yaml", run->dir);
    SC_TRY(sc_config_write_file(model_cfg, path));
    snprintf(path, sizeof path, "%s/metrics.jsonl", run->dir);
    if (!(run->metrics = fopen(path, "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return SC_OK;
}

sc_status sc_finetune(const sc_config *cfg, const char *checkpoint, const char *out_dir, sc_finetune_result *res) {
    memset(res, 0, sizeof *res);
    snprintf(res->dir, sizeof res->dir, "%s", out_dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/log.txt", out_dir);
    FILE *log_file = fopen(path, "w");
    if (!log_file) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    sc_log_attach_file(log_file);
    ft_run run;
    memset(&run, 0, sizeof run);
    run.cfg = cfg;
    run.dir = out_dir;
    sc_config model_cfg = *cfg; /* the resolved config with the classifier head, saved beside the weights */
    ft_outcome pre, rnd;
    memset(&pre, 0, sizeof pre);
    memset(&rnd, 0, sizeof rnd);
    int have_rnd = 0;
    sc_status rc = setup(&run, &model_cfg);
    if (rc == SC_OK) {
        /* random init first (classifier and, for the baseline, the encoder), then the encoder from the checkpoint */
        sc_model_init_params(run.model, (uint64_t)cfg->run.seed);
        SC_INFO("fine-tuning %s with %lld labelled images (%g of %s)", checkpoint, (long long)run.labelled.count,
                cfg->finetune.label_fraction, run.train.name);
        if (cfg->finetune.baseline) {
            rc = train_and_score(&run, "random_init", &rnd);
            have_rnd = rc == SC_OK;
            if (rc == SC_OK) sc_model_init_params(run.model, (uint64_t)cfg->run.seed);
        }
    }
    if (rc == SC_OK) rc = sc_checkpoint_load_encoder(checkpoint, run.model);
    if (rc == SC_OK) rc = train_and_score(&run, "pretrained", &pre);
    if (rc == SC_OK) {
        snprintf(path, sizeof path, "%s/checkpoints", out_dir);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) rc = sc_errorf(SC_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
    }
    if (rc == SC_OK) {
        sc_train_state ts = {.step = pre.steps};
        snprintf(path, sizeof path, "%s/checkpoints/final.safetensors", out_dir);
        rc = sc_checkpoint_save(path, run.model, NULL, &model_cfg, &ts);
    }
    if (rc == SC_OK)
        rc = write_report(&run, &pre, have_rnd ? &rnd : NULL, checkpoint, sc_lr_scaled(cfg->finetune.lr, SC_LR_LINEAR, run.batch));
    if (rc == SC_OK) {
        res->labelled = run.labelled.count;
        res->steps = pre.steps;
        res->seconds = pre.seconds;
        res->first_loss = pre.first_loss;
        res->final_loss = pre.final_loss;
        res->test_top1 = pre.metrics.top1;
        res->test_top5 = pre.metrics.top5;
        res->random_init_top1 = have_rnd ? rnd.metrics.top1 : NAN;
        res->random_init_top5 = have_rnd ? rnd.metrics.top5 : NAN;
    }
    sc_class_metrics_free(&pre.metrics);
    sc_class_metrics_free(&rnd.metrics);
    ft_release(&run);
    if (rc != SC_OK) fprintf(log_file, "error: %s\n", sc_last_error());
    sc_log_attach_file(NULL);
    fclose(log_file);
    return rc;
}
