/*
 * evaluate.c - the evaluation of an encoder beside its random initialisation, and its
 * reports (see sc_evaluate_encoder in include/simclr/eval.h).
 *
 * For each of the two encoders the train and test features are extracted once; the linear
 * protocol and the kNN vote then both run on those cached features. The pretrained weights are
 * saved on the host before the re-initialisation and put back afterwards, so the caller's
 * model is unchanged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "progress.h"
#include "simclr/eval.h"
#include "simclr/log.h"

/* Everything one encoder's evaluation produces. */
typedef struct encoder_eval {
    sc_logreg_result *linear;
    sc_knn_result *knn;
    sc_class_metrics linear_metrics, knn_metrics;
} encoder_eval;

static sc_status evaluate_once(sc_model *m, const sc_config *cfg, unsigned what, const sc_dataset *train,
                               const sc_dataset *test, const sc_augment_params *aug, encoder_eval *out,
                               sc_probe_report *rep) {
    float *ftr = NULL, *fte = NULL, *scores = NULL;
    int f = sc_model_feature_dim(m), c = train->num_classes;
    sc_status rc = sc_extract_features(m, train, aug, cfg->eval.batch_size, cfg->data.workers,
                                       cfg->eval.probe_train_samples, &ftr, &rep->train_samples);
    if (rc == SC_OK)
        rc = sc_extract_features(m, test, aug, cfg->eval.batch_size, cfg->data.workers, cfg->eval.probe_test_samples,
                                 &fte, &rep->test_samples);
    if (rc == SC_OK && !(scores = malloc((size_t)rep->test_samples * (size_t)c * sizeof *scores)))
        rc = sc_errorf(SC_ERR_NOMEM, "out of memory for %lld x %d test scores", (long long)rep->test_samples, c);
    if (rc == SC_OK && (what & SC_EVAL_LINEAR)) {
        sc_linear_options lo = sc_linear_options_from_config(cfg);
        rc = sc_linear_eval(ftr, train->labels, rep->train_samples, fte, test->labels, rep->test_samples, f, c, &lo,
                            out->linear, scores);
        if (rc == SC_OK) rc = sc_class_metrics_compute(scores, test->labels, rep->test_samples, c, &out->linear_metrics);
    }
    if (rc == SC_OK && (what & SC_EVAL_KNN)) {
        rc = sc_knn_eval(sc_model_backend(m), ftr, train->labels, rep->train_samples, fte, test->labels,
                         rep->test_samples, f, c, cfg->eval.knn_k, cfg->eval.knn_temperature, out->knn, scores);
        if (rc == SC_OK) rc = sc_class_metrics_compute(scores, test->labels, rep->test_samples, c, &out->knn_metrics);
    }
    free(ftr);
    free(fte);
    free(scores);
    return rc;
}

/* ---- reports -------------------------------------------------------------------------------- */

static void write_grid(FILE *f, const sc_logreg_result *r) {
    fprintf(f, "[");
    for (int g = 0; g < r->grid_count; g++)
        fprintf(f, "%s{\"l2\": %.6g, \"holdout_top1\": %.6f}", g ? ", " : "", r->grid_l2[g], r->grid_holdout_accuracy[g]);
    fprintf(f, "]");
}

static void write_encoder_json(FILE *f, int linear, const sc_logreg_result *lr, const sc_knn_result *kr,
                               const sc_class_metrics *cm, const char *const *names) {
    if (linear) {
        fprintf(f, "{\n      \"l2\": %.6g, \"l2_grid\": ", lr->l2);
        write_grid(f, lr);
        fprintf(f, ",\n      \"holdout_samples\": %lld, \"lbfgs_iterations\": %d, \"train_loss\": %.6f, "
                   "\"train_top1\": %.6f,\n      \"test_top1\": %.6f, \"test_top5\": %.6f,\n      \"metrics\": ",
                (long long)lr->holdout_samples, lr->iterations, lr->train_loss, lr->train_accuracy, lr->test_accuracy,
                lr->test_top5);
    } else {
        fprintf(f, "{\n      \"test_top1\": %.6f, \"test_top5\": %.6f,\n      \"metrics\": ", kr->top1, kr->top5);
    }
    sc_class_metrics_write_json(f, cm, names, "      ");
    fprintf(f, "\n    }");
}

static sc_status write_reports(const char *dir, const char *protocol, const sc_config *cfg, const char *checkpoint,
                               const sc_probe_report *rep, const encoder_eval *pre, const encoder_eval *rnd,
                               const sc_dataset *train) {
    int linear = strcmp(protocol, "linear") == 0;
    const sc_class_metrics *mp = linear ? &pre->linear_metrics : &pre->knn_metrics;
    const sc_class_metrics *mr = linear ? &rnd->linear_metrics : &rnd->knn_metrics;
    const char *const *names = sc_class_names(cfg, rep->classes);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.json", dir, protocol);
    FILE *f = fopen(path, "w");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "{\n  \"protocol\": \"%s\",\n  \"checkpoint\": ", protocol);
    sc_json_string(f, checkpoint ? checkpoint : "");
    fprintf(f, ",\n  \"train_split\": ");
    sc_json_string(f, train->name);
    fprintf(f, ",\n  \"train_samples\": %lld, \"test_samples\": %lld, \"feature_dim\": %d, \"classes\": %d,\n",
            (long long)rep->train_samples, (long long)rep->test_samples, rep->feature_dim, rep->classes);
    if (linear)
        fprintf(f, "  \"settings\": {\"solver\": \"lbfgs\", \"max_iters\": %d, \"standardised\": true, "
                   "\"holdout_fraction\": %g, \"l2_fixed\": %g},\n",
                cfg->eval.probe_max_iters, cfg->eval.probe_holdout, cfg->eval.probe_l2);
    else
        fprintf(f, "  \"settings\": {\"k\": %d, \"temperature\": %g, \"similarity\": \"cosine\"},\n",
                rep->knn_pretrained.k, rep->knn_pretrained.temperature);
    fprintf(f, "  \"pretrained\": ");
    write_encoder_json(f, linear, &rep->pretrained, &rep->knn_pretrained, mp, names);
    fprintf(f, ",\n  \"random_init\": ");
    write_encoder_json(f, linear, &rep->random_init, &rep->knn_random_init, mr, names);
    fprintf(f, ",\n  \"seconds\": %.3f\n}\n", rep->seconds);
    if (fclose(f) != 0) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));

    snprintf(path, sizeof path, "%s/%s_confusion.txt", dir, protocol);
    if (!(f = fopen(path, "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "%s evaluation of the pretrained encoder (%s)\n\n", protocol, checkpoint ? checkpoint : "");
    sc_class_metrics_write_text(f, mp, names);
    if (fclose(f) != 0) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s_confusion.png", dir, protocol);
    return sc_class_metrics_write_png(path, mp);
}

static sc_status make_dir(const char *path) {
    char buf[1100];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return sc_errorf(SC_ERR_IO, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sc_errorf(SC_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sc_errorf(SC_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    return SC_OK;
}

sc_status sc_evaluate_encoder(sc_model *m, const sc_config *cfg, unsigned what, const char *report_dir,
                              const char *checkpoint, sc_probe_report *report) {
    double t0 = sc_now();
    memset(report, 0, sizeof *report);
    report->what = what;
    sc_dataset train = {0}, test = {0};
    encoder_eval pre = {.linear = &report->pretrained, .knn = &report->knn_pretrained};
    encoder_eval rnd = {.linear = &report->random_init, .knn = &report->knn_random_init};
    sc_status rc = sc_dataset_open(cfg, SC_SPLIT_TRAIN, &train);
    if (rc == SC_OK) rc = sc_dataset_open(cfg, SC_SPLIT_TEST, &test);
    if (rc == SC_OK && (!train.labels || !test.labels || train.num_classes < 2))
        rc = sc_errorf(SC_ERR_DATA, "evaluation needs a labelled dataset with 2+ classes (%s)", train.name);
    sc_augment_params aug;
    if (rc == SC_OK) rc = sc_augment_params_from_config(cfg, &train, &aug);
    sc_backend *be = sc_model_backend(m);
    sc_tensor pbuf = sc_model_param_buffer(m);
    void *trained = malloc(sc_tensor_nbytes(&pbuf));
    if (rc == SC_OK && !trained) rc = sc_errorf(SC_ERR_NOMEM, "out of memory saving the weights");
    if (rc == SC_OK) {
        report->feature_dim = sc_model_feature_dim(m);
        report->classes = train.num_classes;
        SC_INFO("evaluation: features of the pretrained encoder");
        rc = evaluate_once(m, cfg, what, &train, &test, &aug, &pre, report);
    }
    if (rc == SC_OK) {
        SC_INFO("evaluation: the same encoder at random initialisation (seed %lld)", (long long)cfg->run.seed);
        sc_tensor_download(be, trained, &pbuf);
        sc_model_init_params(m, (uint64_t)cfg->run.seed);
        rc = evaluate_once(m, cfg, what, &train, &test, &aug, &rnd, report);
        sc_tensor_upload(be, &pbuf, trained);
    }
    report->seconds = sc_now() - t0;
    if (rc == SC_OK && report_dir) {
        rc = make_dir(report_dir);
        if (rc == SC_OK && (what & SC_EVAL_LINEAR)) rc = write_reports(report_dir, "linear", cfg, checkpoint, report, &pre, &rnd, &train);
        if (rc == SC_OK && (what & SC_EVAL_KNN)) rc = write_reports(report_dir, "knn", cfg, checkpoint, report, &pre, &rnd, &train);
        if (rc == SC_OK) SC_INFO("evaluation reports in %s", report_dir);
    }
    sc_class_metrics_free(&pre.linear_metrics);
    sc_class_metrics_free(&pre.knn_metrics);
    sc_class_metrics_free(&rnd.linear_metrics);
    sc_class_metrics_free(&rnd.knn_metrics);
    free(trained);
    sc_dataset_free(&train);
    sc_dataset_free(&test);
    return rc;
}
