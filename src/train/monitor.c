/*
 * monitor.c - TensorBoard output and the kNN monitor of a training run (see monitor.h).
 *
 * Tags: train/{loss, contrastive_acc, lr, images_per_s, data_wait_fraction, grad_norm},
 * views/pairs (top row first views, bottom row second views), weights/<name> and
 * grads/<name> for every trained tensor, eval/knn_top1|top5 during training, and at the end
 * final/{linear,knn}_top1|top5 and final/random_init_{linear,knn}_top1.
 */
#include "monitor.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/log.h"

/* Histogram buckets per tensor. */
#define HISTOGRAM_BUCKETS 30
/* Largest projector thumbnail side; bigger images are subsampled. */
#define SPRITE_THUMB_MAX 64

static void tb_failed(sc_monitor *mon) {
    SC_WARN("TensorBoard output stops: %s", sc_last_error());
    sc_tb_close(mon->tb);
    mon->tb = NULL;
}

static void tb_scalar(sc_monitor *mon, const char *tag, int64_t step, double v) {
    if (mon->tb && sc_tb_scalar(mon->tb, tag, step, v) != SC_OK) tb_failed(mon);
}

static sc_status open_test(sc_monitor *mon) {
    if (mon->have_test) return SC_OK;
    SC_TRY(sc_dataset_open(mon->cfg, SC_SPLIT_TEST, &mon->test));
    mon->have_test = 1;
    return SC_OK;
}

sc_status sc_monitor_open(sc_monitor *mon, const sc_config *cfg, const char *run_dir, const sc_dataset *train,
                          const sc_augment_params *aug, FILE *metrics) {
    memset(mon, 0, sizeof *mon);
    mon->cfg = cfg;
    mon->train = train;
    mon->aug = *aug;
    mon->metrics = metrics;
    snprintf(mon->run_dir, sizeof mon->run_dir, "%s", run_dir);
    if (cfg->eval.every > 0) { /* a dataset the monitor cannot use fails now, not after an epoch */
        SC_TRY(open_test(mon));
        if (!train->labels || !mon->test.labels || train->num_classes < 2)
            return sc_errorf(SC_ERR_CONFIG, "eval.every: the kNN monitor needs a labelled dataset with 2+ classes (%s); "
                             "set eval.every=0", train->name);
    }
    if (!cfg->tensorboard.enabled) return SC_OK;
    SC_TRY(sc_tb_open(run_dir, &mon->tb));
    SC_INFO("TensorBoard events %s (tensorboard --logdir %s)", sc_tb_path(mon->tb), cfg->run.dir);
    return SC_OK;
}

void sc_monitor_close(sc_monitor *mon) {
    sc_tb_close(mon->tb);
    mon->tb = NULL;
    if (mon->have_test) sc_dataset_free(&mon->test);
    mon->have_test = 0;
}

void sc_monitor_views(sc_monitor *mon, int64_t step, sc_backend *be, const sc_tensor *x) {
    const sc_config *cfg = mon->cfg;
    if (!mon->tb || !(step == 1 || (cfg->tensorboard.image_every > 0 && step % cfg->tensorboard.image_every == 0))) return;
    const int samples = (int)(x->shape[0] / 2), s = (int)x->shape[1], w = (int)x->shape[2], c = (int)x->shape[3];
    int pairs = samples < cfg->tensorboard.image_pairs ? samples : cfg->tensorboard.image_pairs;
    const int gap = 2;
    size_t view = (size_t)s * (size_t)w * (size_t)c;
    float *tile = malloc(view * sizeof *tile);
    sc_image8 img;
    if (!tile || sc_image8_alloc(&img, pairs * (w + gap) + gap, 2 * (s + gap) + gap, c == 1 ? 1 : 3, 255) != SC_OK) {
        free(tile);
        SC_WARN("no view-pair image at step %" PRId64 ": out of memory", step);
        return;
    }
    for (int i = 0; i < pairs; i++)
        for (int v = 0; v < 2; v++) {
            /* rows 0..B-1 hold the first view of each sample, B..2B-1 the second */
            sc_tensor row = sc_tensor_slice0(x, (int64_t)v * samples + i, 1);
            sc_tensor_download(be, tile, &row);
            for (size_t j = 0; j < view; j++) {
                int ch = (int)(j % (size_t)c);
                if (mon->aug.normalize) tile[j] = tile[j] * mon->aug.std[ch] + mon->aug.mean[ch];
            }
            sc_image8_paste_float(&img, gap + i * (w + gap), gap + v * (s + gap), tile, s, w, c);
        }
    if (sc_tb_image(mon->tb, "views/pairs", step, &img) != SC_OK) tb_failed(mon);
    sc_image8_free(&img);
    free(tile);
}

/* weights/<name> and grads/<name> for every trained row. */
static void histograms(sc_monitor *mon, sc_model *m, int64_t step) {
    const sc_param_table *t = sc_model_params(m);
    sc_tensor pb = sc_model_param_buffer(m), gb = sc_model_grad_buffer(m);
    if (sc_model_dtype(m) != SC_F32) return;
    float *p = malloc(sc_tensor_nbytes(&pb)), *g = malloc(sc_tensor_nbytes(&gb));
    if (!p || !g) {
        free(p);
        free(g);
        SC_WARN("no histograms at step %" PRId64 ": out of memory", step);
        return;
    }
    sc_tensor_download(sc_model_backend(m), p, &pb);
    sc_tensor_download(sc_model_backend(m), g, &gb);
    char tag[SC_PARAM_NAME_CAP + 16];
    for (int i = 0; i < t->count && mon->tb; i++) {
        const sc_param *row = &t->rows[i];
        if (row->flags & SC_PARAM_BN_STAT) continue;
        snprintf(tag, sizeof tag, "weights/%s", row->name);
        sc_status rc = sc_tb_histogram(mon->tb, tag, step, p + row->offset, row->numel, HISTOGRAM_BUCKETS);
        snprintf(tag, sizeof tag, "grads/%s", row->name);
        if (rc == SC_OK) rc = sc_tb_histogram(mon->tb, tag, step, g + row->offset, row->numel, HISTOGRAM_BUCKETS);
        if (rc != SC_OK) tb_failed(mon);
    }
    free(p);
    free(g);
}

void sc_monitor_step(sc_monitor *mon, sc_model *m, const sc_progress_values *v, int logged) {
    if (!mon->tb) return;
    if (logged) {
        tb_scalar(mon, "train/loss", v->step, v->loss);
        tb_scalar(mon, "train/contrastive_acc", v->step, v->accuracy);
        tb_scalar(mon, "train/lr", v->step, v->lr);
        tb_scalar(mon, "train/images_per_s", v->step, v->images_per_s);
        tb_scalar(mon, "train/data_wait_fraction", v->step, v->wait_fraction);
        tb_scalar(mon, "train/grad_norm", v->step, v->grad_norm);
    }
    int every = mon->cfg->tensorboard.histogram_every;
    if (every > 0 && v->step % every == 0) histograms(mon, m, v->step);
}

sc_status sc_monitor_epoch_end(sc_monitor *mon, sc_model *m, int64_t epoch, int64_t step) {
    int every = mon->cfg->eval.every;
    if (every <= 0 || epoch % every != 0) return SC_OK;
    SC_TRY(open_test(mon));
    sc_knn_result r;
    double seconds;
    SC_TRY(sc_knn_monitor(m, mon->cfg, mon->train, &mon->test, &r, &seconds));
    SC_INFO("kNN monitor after epoch %" PRId64 ": top-1 %.2f%%, top-5 %.2f%% (k %d, t %g, %.1f s)", epoch,
            100.0 * r.top1, 100.0 * r.top5, r.k, r.temperature, seconds);
    fprintf(mon->metrics,
            "{\"event\": \"knn\", \"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"knn_top1\": %.6f, \"knn_top5\": %.6f, "
            "\"k\": %d, \"temperature\": %g, \"seconds\": %.3f}\n",
            step, epoch, r.top1, r.top5, r.k, r.temperature, seconds);
    fflush(mon->metrics);
    tb_scalar(mon, "eval/knn_top1", step, r.top1);
    tb_scalar(mon, "eval/knn_top5", step, r.top5);
    return SC_OK;
}

/* Thumbnails of the first n test images, ceil(sqrt(n)) per row, each at most SPRITE_THUMB_MAX
 * pixels (nearest-neighbour subsampling). */
static sc_status make_sprite(const sc_dataset *ds, int64_t n, sc_image8 *sprite, int *thumb) {
    int side = ds->height > ds->width ? ds->height : ds->width;
    *thumb = side < SPRITE_THUMB_MAX ? side : SPRITE_THUMB_MAX;
    int per_row = (int)ceil(sqrt((double)n));
    SC_TRY(sc_image8_alloc(sprite, per_row * *thumb, per_row * *thumb, ds->channels == 1 ? 1 : 3, 0));
    uint8_t *tile = malloc((size_t)*thumb * (size_t)*thumb * (size_t)ds->channels);
    if (!tile) {
        sc_image8_free(sprite);
        return sc_errorf(SC_ERR_NOMEM, "out of memory for the projector sprite");
    }
    for (int64_t i = 0; i < n; i++) {
        sc_image im = sc_dataset_image(ds, i);
        for (int y = 0; y < *thumb; y++)
            for (int x = 0; x < *thumb; x++) {
                const uint8_t *src = im.pixels + ((size_t)(y * im.height / *thumb) * (size_t)im.width +
                                                  (size_t)(x * im.width / *thumb)) * (size_t)im.channels;
                memcpy(tile + ((size_t)y * (size_t)*thumb + (size_t)x) * (size_t)im.channels, src, (size_t)im.channels);
            }
        sc_image8_paste_u8(sprite, (int)(i % per_row) * *thumb, (int)(i / per_row) * *thumb, tile, *thumb, *thumb,
                           ds->channels);
    }
    free(tile);
    return SC_OK;
}

/* Features, labels and thumbnails of the first projector_samples test images. */
static sc_status projector(sc_monitor *mon, sc_model *m) {
    const sc_config *cfg = mon->cfg;
    SC_TRY(open_test(mon));
    if (!mon->test.labels) return sc_errorf(SC_ERR_DATA, "%s has no labels for the projector", mon->test.name);
    sc_augment_params aug;
    SC_TRY(sc_augment_params_from_config(cfg, &mon->test, &aug));
    float *features = NULL;
    int64_t n = 0;
    SC_TRY(sc_extract_features(m, &mon->test, &aug, cfg->eval.batch_size, cfg->data.workers,
                               cfg->tensorboard.projector_samples, &features, &n));
    sc_image8 sprite;
    int thumb;
    sc_status rc = make_sprite(&mon->test, n, &sprite, &thumb);
    if (rc == SC_OK) {
        rc = sc_tb_write_projector(mon->run_dir, "encoder_features", features, n, sc_model_feature_dim(m),
                                   mon->test.labels, sc_class_names(cfg, mon->test.num_classes), &sprite, thumb);
        sc_image8_free(&sprite);
    }
    free(features);
    if (rc == SC_OK) SC_INFO("embedding projector: %lld test images in %s/projector", (long long)n, mon->run_dir);
    return rc;
}

void sc_monitor_final(sc_monitor *mon, sc_model *m, int64_t step, const sc_probe_report *p) {
    if (!mon->tb) return;
    if (p && (p->what & SC_EVAL_LINEAR)) {
        tb_scalar(mon, "final/linear_top1", step, p->pretrained.test_accuracy);
        tb_scalar(mon, "final/linear_top5", step, p->pretrained.test_top5);
        tb_scalar(mon, "final/random_init_linear_top1", step, p->random_init.test_accuracy);
    }
    if (p && (p->what & SC_EVAL_KNN)) {
        tb_scalar(mon, "final/knn_top1", step, p->knn_pretrained.top1);
        tb_scalar(mon, "final/knn_top5", step, p->knn_pretrained.top5);
        tb_scalar(mon, "final/random_init_knn_top1", step, p->knn_random_init.top1);
    }
    if (mon->tb && mon->cfg->tensorboard.projector_samples > 0 && projector(mon, m) != SC_OK)
        SC_WARN("no embedding projector: %s", sc_last_error());
}
