/*
 * eval.h - judging an encoder: frozen features, the linear protocol, the kNN monitor,
 * classification metrics and the fine-tuning protocol.
 *
 * Every protocol works on the encoder's features h (not the head's z), extracted once per
 * encoder in evaluation mode (BN running statistics, the evaluation transform, no
 * augmentation), and is always reported beside the same encoder at its random initialisation,
 * measured in the same run: the baseline that pretraining has to beat.
 *
 * Linear protocol: multinomial logistic regression on features standardised with the train
 * split's mean and standard deviation; the objective
 *   (1/N) sum_n CE(W x_n + b, y_n) + (l2 / 2) ||W||^2
 * is minimised with L-BFGS (deterministic: same features, same result). The penalty l2 is
 * chosen on a held-out part of the train split (eval.probe_holdout, class-stratified, drawn
 * from Philox purpose SC_RNG_EVAL) from a log-spaced grid, then the model is refit on the
 * whole train split and scored on the test split (top-1, top-5).
 *
 * kNN monitor: features L2-normalised; each test image takes the k most cosine-similar train
 * images, which vote exp(cosine / t) for their label (the knn_scores backend op, so it runs on
 * the training device).
 */
#ifndef SIMCLR_EVAL_H
#define SIMCLR_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "simclr/config.h"
#include "simclr/data.h"
#include "simclr/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- features ---------------------------------------------------------------------------- */

/* Features of the first `limit` images of `ds` (0 = all) in dataset order, in evaluation
 * mode (BN running statistics, no augmentation): *features is malloc'ed [count, F]. */
sc_status sc_extract_features(sc_model *m, const sc_dataset *ds, const sc_augment_params *aug,
                              int batch_size, int workers, int64_t limit, float **features,
                              int64_t *count);
/* The same for the head's output z [count, D] when `head` (a fine-tuned classifier's logits). */
sc_status sc_extract_outputs(sc_model *m, const sc_dataset *ds, const sc_augment_params *aug, int batch_size,
                             int workers, int64_t limit, int head, float **features, int64_t *count);

/* ---- classification metrics ---------------------------------------------------------------- */

typedef struct sc_class_metrics {
    int classes;
    int64_t samples;
    double top1, top5;            /* top-5 is top-min(5, classes) */
    int64_t *confusion;           /* [C, C]: row = true class, column = predicted class */
    int64_t *support;             /* [C] samples per true class */
    double *precision, *recall, *f1; /* [C] */
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
} sc_class_metrics;

/* Metrics of scores [n, C] (higher = more likely) against labels [n]; see metrics.c for the
 * exact definitions. Free with sc_class_metrics_free. */
sc_status sc_class_metrics_compute(const float *scores, const int32_t *labels, int64_t n, int classes,
                                   sc_class_metrics *m);
void sc_class_metrics_free(sc_class_metrics *m);
/* Display names of the dataset's classes, or NULL (then classes print as numbers). */
const char *const *sc_class_names(const sc_config *cfg, int classes);
/* A JSON object (top-1/5, macro/weighted averages, per-class rows, confusion matrix); nested
 * lines start with `indent`. */
void sc_class_metrics_write_json(FILE *f, const sc_class_metrics *m, const char *const *names,
                                 const char *indent);
/* The confusion matrix and the per-class table as aligned text. */
void sc_class_metrics_write_text(FILE *f, const sc_class_metrics *m, const char *const *names);
/* The confusion matrix as a PNG heat map: cells coloured by the row-normalised count (recall
 * on the diagonal), labelled with the counts; class indices on both axes. */
sc_status sc_class_metrics_write_png(const char *path, const sc_class_metrics *m);
/* A JSON string literal with quotes and control characters escaped. */
void sc_json_string(FILE *f, const char *s);

/* ---- logistic regression and the linear protocol ------------------------------------------ */

typedef struct sc_logreg_options {
    double l2;
    int max_iters;
} sc_logreg_options;

#define SC_L2_GRID_MAX 32

typedef struct sc_logreg_result {
    double train_accuracy, test_accuracy, test_top5;
    double train_loss; /* the regularised objective at the solution */
    int iterations;
    double l2;         /* the penalty of the final fit */
    /* the held-out selection (grid_count = 0 when l2 was given) */
    int grid_count;
    double grid_l2[SC_L2_GRID_MAX], grid_holdout_accuracy[SC_L2_GRID_MAX];
    int64_t holdout_samples;
} sc_logreg_result;

/* Fit on (xtr, ytr) and score on (xte, yte); x are [n, dim] rows, labels in [0, classes).
 * test_scores (may be NULL) receives the test logits [nte, classes]. */
sc_status sc_logreg_fit(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte,
                        const int32_t *yte, int64_t nte, int dim, int classes,
                        const sc_logreg_options *opt, sc_logreg_result *res, float *test_scores);

typedef struct sc_linear_options {
    double holdout;        /* fraction of the train rows held out for the choice; 0 = use l2 */
    double l2;             /* the penalty when holdout is 0 */
    double l2_min, l2_max; /* the log-spaced grid */
    int l2_points;
    int max_iters;
    uint64_t seed;         /* the held-out rows: Philox (seed, SC_RNG_EVAL) */
} sc_linear_options;

sc_linear_options sc_linear_options_from_config(const sc_config *cfg);

/* The linear protocol: choose l2 on a class-stratified held-out part of the train rows, refit
 * on all train rows, score the test rows. test_scores as in sc_logreg_fit. */
sc_status sc_linear_eval(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte,
                         const int32_t *yte, int64_t nte, int dim, int classes,
                         const sc_linear_options *opt, sc_logreg_result *res, float *test_scores);

/* ---- kNN ------------------------------------------------------------------------------------ */

typedef struct sc_knn_result {
    double top1, top5;
    int k;             /* neighbours used (min(knn_k, bank size)) */
    double temperature;
} sc_knn_result;

/* Weighted kNN of queries [nq, dim] against bank [n, dim] (raw features; normalised here on
 * `be`). scores (may be NULL) receives the votes [nq, classes]. */
sc_status sc_knn_eval(sc_backend *be, const float *bank, const int32_t *bank_labels, int64_t n,
                      const float *queries, const int32_t *query_labels, int64_t nq, int dim,
                      int classes, int k, double temperature, sc_knn_result *res, float *scores);

/* ---- the evaluation of an encoder beside its random initialisation ------------------------ */

enum { SC_EVAL_LINEAR = 1u << 0, SC_EVAL_KNN = 1u << 1 };

typedef struct sc_probe_report {
    unsigned what;                     /* SC_EVAL_* that ran */
    sc_logreg_result pretrained, random_init;         /* linear protocol */
    sc_knn_result knn_pretrained, knn_random_init;    /* kNN */
    int64_t train_samples, test_samples;
    int feature_dim, classes;
    double seconds;
} sc_probe_report;

/* Run the protocols in `what` on `m`'s current encoder and on the same encoder re-initialised
 * from cfg->run.seed (features of eval.probe_train_samples / probe_test_samples images of the
 * config's dataset, extracted once per encoder). With report_dir != NULL, writes there
 * linear.json / knn.json (settings, both encoders, full metrics), <protocol>_confusion.txt and
 * <protocol>_confusion.png of the pretrained encoder. `m`'s weights are restored. */
sc_status sc_evaluate_encoder(sc_model *m, const sc_config *cfg, unsigned what, const char *report_dir,
                              const char *checkpoint, sc_probe_report *report);

/* The kNN monitor during pretraining: eval.knn_train_samples / knn_test_samples images,
 * pretrained encoder only. */
sc_status sc_knn_monitor(sc_model *m, const sc_config *cfg, const sc_dataset *train, const sc_dataset *test,
                         sc_knn_result *res, double *seconds);

/* ---- fine-tuning ---------------------------------------------------------------------------- */

/* The class-balanced labelled subset: round(fraction * count / C) images of every class
 * (capped at the class's size, at least 1), each class's pick the first of a Philox
 * (seed, SC_RNG_EVAL) permutation of its images; *indices is malloc'ed, sorted ascending. */
sc_status sc_label_subset(const int32_t *labels, int64_t count, int classes, double fraction, uint64_t seed,
                          int64_t **indices, int64_t *n);

typedef struct sc_finetune_result {
    char dir[1100];          /* where its files went */
    int64_t labelled, steps;
    double seconds, first_loss, final_loss;
    double test_top1, test_top5;
    double random_init_top1, random_init_top5; /* the same recipe from a random encoder */
} sc_finetune_result;

/* Fine-tune the encoder of `checkpoint` (its config in `cfg`, with the finetune.* keys) plus
 * a new linear classifier on the labelled subset, with Nesterov SGD and crop + flip
 * augmentation, then score the test split; with finetune.baseline the same recipe from the
 * random initialisation runs beside it. Writes into <out_dir>: config.yaml, log.txt, metrics.jsonl,
 * label_subset.txt, report.json, confusion.txt/png, checkpoints/final.safetensors. */
sc_status sc_finetune(const sc_config *cfg, const char *checkpoint, const char *out_dir, sc_finetune_result *res);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_EVAL_H */
