/*
 * eval.h - judging an encoder: frozen features and the linear probe.
 *
 * The linear probe is multinomial logistic regression on the encoder's features h (not the
 * head's z), trained on the train split and scored on the test split. Features are
 * standardised with the train split's mean and standard deviation; the objective
 *   (1/N) sum_n CE(W x_n + b, y_n) + (l2 / 2) ||W||^2
 * is minimised with L-BFGS (deterministic: same features, same result).
 * The probe is always reported beside the same encoder at its random initialisation,
 * measured in the same run: the baseline that pretraining has to beat.
 */
#ifndef SIMCLR_EVAL_H
#define SIMCLR_EVAL_H

#include <stdint.h>

#include "simclr/config.h"
#include "simclr/data.h"
#include "simclr/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Features of the first `limit` images of `ds` (0 = all) in dataset order, in evaluation
 * mode (BN running statistics, no augmentation): *features is malloc'ed [count, F]. */
sc_status sc_extract_features(sc_model *m, const sc_dataset *ds, const sc_augment_params *aug,
                              int batch_size, int workers, int64_t limit, float **features,
                              int64_t *count);

typedef struct sc_logreg_options {
    double l2;
    int max_iters;
} sc_logreg_options;

typedef struct sc_logreg_result {
    double train_accuracy, test_accuracy;
    double train_loss; /* the regularised objective at the solution */
    int iterations;
} sc_logreg_result;

/* Fit on (xtr, ytr) and score on (xte, yte); x are [n, dim] rows, labels in [0, classes). */
sc_status sc_logreg_fit(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte,
                        const int32_t *yte, int64_t nte, int dim, int classes,
                        const sc_logreg_options *opt, sc_logreg_result *res);

typedef struct sc_probe_report {
    sc_logreg_result pretrained, random_init;
    int64_t train_samples, test_samples;
    int feature_dim;
    double seconds;
} sc_probe_report;

/* The linear probe of `m`'s current encoder and of the same encoder re-initialised from
 * cfg->run.seed, on the train/test splits of cfg's dataset. `m`'s weights are restored. */
sc_status sc_linear_probe(sc_model *m, const sc_config *cfg, sc_probe_report *report);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_EVAL_H */
