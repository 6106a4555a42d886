/*
 * knn.c - the weighted kNN evaluation and the kNN monitor (see include/simclr/eval.h).
 *
 * The features go to the backend that trains the model, are L2-normalised there
 * (sc_op_l2norm_fwd) and voted on by sc_op_knn_scores; only the [Q, C] votes come back to
 * the host, where top-1/top-5 are counted. On the CPU the "upload" is a copy.
 */
#include <stdlib.h>
#include <string.h>

#include "simclr/eval.h"
#include "simclr/log.h"
#include "progress.h"

/* One backend allocation for every buffer of a kNN evaluation. */
typedef struct knn_buffers {
    void *bank, *bank_n, *bank_norm, *labels, *queries, *queries_n, *queries_norm, *scores;
} knn_buffers;

static void knn_buffers_free(sc_backend *be, knn_buffers *b) {
    void **all[] = {&b->bank, &b->bank_n, &b->bank_norm, &b->labels, &b->queries, &b->queries_n, &b->queries_norm, &b->scores};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sc_backend_free(be, *all[i]);
        *all[i] = NULL;
    }
}

sc_status sc_knn_eval(sc_backend *be, const float *bank, const int32_t *bank_labels, int64_t n,
                      const float *queries, const int32_t *query_labels, int64_t nq, int dim,
                      int classes, int k, double temperature, sc_knn_result *res, float *scores) {
    memset(res, 0, sizeof *res);
    if (n < 1 || nq < 1 || dim < 1 || classes < 1)
        return sc_errorf(SC_ERR_ARG, "kNN needs a non-empty bank (%lld) and queries (%lld)", (long long)n, (long long)nq);
    if (k > n) k = (int)n;
    res->k = k;
    res->temperature = temperature;
    size_t fb = sizeof(float);
    knn_buffers b = {0};
    sc_status rc = sc_backend_alloc(be, (size_t)n * dim * fb, "the kNN feature bank", &b.bank);
    if (rc == SC_OK) rc = sc_backend_alloc(be, (size_t)n * dim * fb, "the normalised kNN bank", &b.bank_n);
    if (rc == SC_OK) rc = sc_backend_alloc(be, (size_t)n * fb, "the kNN bank norms", &b.bank_norm);
    if (rc == SC_OK) rc = sc_backend_alloc(be, (size_t)n * sizeof(int32_t), "the kNN bank labels", &b.labels);
    if (rc == SC_OK) rc = sc_backend_alloc(be, (size_t)nq * dim * fb, "the kNN queries", &b.queries);
    if (rc == SC_OK) rc = sc_backend_alloc(be, (size_t)nq * dim * fb, "the normalised kNN queries", &b.queries_n);
    if (rc == SC_OK) rc = sc_backend_alloc(be, (size_t)nq * fb, "the kNN query norms", &b.queries_norm);
    if (rc == SC_OK) rc = sc_backend_alloc(be, (size_t)nq * classes * fb, "the kNN votes", &b.scores);
    float *votes = rc == SC_OK ? malloc((size_t)nq * (size_t)classes * fb) : NULL;
    if (rc == SC_OK && !votes) rc = sc_errorf(SC_ERR_NOMEM, "out of memory for %lld x %d kNN votes", (long long)nq, classes);
    if (rc == SC_OK) {
        sc_tensor tb = sc_tensor_2d(b.bank, SC_F32, n, dim), tbn = sc_tensor_2d(b.bank_n, SC_F32, n, dim);
        sc_tensor tbnorm = sc_tensor_1d(b.bank_norm, SC_F32, n), tl = sc_tensor_1d(b.labels, SC_I32, n);
        sc_tensor tq = sc_tensor_2d(b.queries, SC_F32, nq, dim), tqn = sc_tensor_2d(b.queries_n, SC_F32, nq, dim);
        sc_tensor tqnorm = sc_tensor_1d(b.queries_norm, SC_F32, nq), ts = sc_tensor_2d(b.scores, SC_F32, nq, classes);
        sc_tensor_upload(be, &tb, bank);
        sc_tensor_upload(be, &tl, bank_labels);
        sc_tensor_upload(be, &tq, queries);
        sc_op_l2norm_fwd(be, &tb, &tbn, &tbnorm);
        sc_op_l2norm_fwd(be, &tq, &tqn, &tqnorm);
        sc_op_knn_scores(be, &tqn, &tbn, &tl, k, temperature, &ts);
        sc_tensor_download(be, votes, &ts);
        sc_class_metrics cm;
        rc = sc_class_metrics_compute(votes, query_labels, nq, classes, &cm);
        if (rc == SC_OK) {
            res->top1 = cm.top1;
            res->top5 = cm.top5;
            sc_class_metrics_free(&cm);
        }
        if (rc == SC_OK && scores) memcpy(scores, votes, (size_t)nq * (size_t)classes * fb);
    }
    free(votes);
    knn_buffers_free(be, &b);
    return rc;
}

sc_status sc_knn_monitor(sc_model *m, const sc_config *cfg, const sc_dataset *train, const sc_dataset *test,
                         sc_knn_result *res, double *seconds) {
    double t0 = sc_now();
    if (!train->labels || !test->labels || train->num_classes < 2)
        return sc_errorf(SC_ERR_DATA, "the kNN monitor needs a labelled dataset with 2+ classes (%s)", train->name);
    sc_augment_params aug;
    SC_TRY(sc_augment_params_from_config(cfg, train, &aug));
    float *ftr = NULL, *fte = NULL;
    int64_t ntr = 0, nte = 0;
    sc_status rc = sc_extract_features(m, train, &aug, cfg->eval.batch_size, cfg->data.workers,
                                       cfg->eval.knn_train_samples, &ftr, &ntr);
    if (rc == SC_OK)
        rc = sc_extract_features(m, test, &aug, cfg->eval.batch_size, cfg->data.workers, cfg->eval.knn_test_samples,
                                 &fte, &nte);
    if (rc == SC_OK)
        rc = sc_knn_eval(sc_model_backend(m), ftr, train->labels, ntr, fte, test->labels, nte, sc_model_feature_dim(m),
                         train->num_classes, cfg->eval.knn_k, cfg->eval.knn_temperature, res, NULL);
    free(ftr);
    free(fte);
    *seconds = sc_now() - t0;
    return rc;
}
