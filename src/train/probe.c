/*
 * probe.c - frozen-feature extraction and the linear probe (see include/simclr/eval.h).
 *
 * Logistic regression runs on the host in double precision with OpenBLAS: the features are
 * small ([N, F] with F = 64..2048), so the fit takes seconds. The optimiser is L-BFGS with
 * a memory of 10 pairs and a backtracking (Armijo) line search.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simclr/eval.h"
#include "simclr/log.h"

/* ---- features ---------------------------------------------------------------------------- */

sc_status sc_extract_features(sc_model *m, const sc_dataset *ds, const sc_augment_params *aug,
                              int batch_size, int workers, int64_t limit, float **features,
                              int64_t *count) {
    *features = NULL;
    sc_dataset view = *ds; /* a shallow copy limited to the first `limit` images */
    if (limit > 0 && limit < view.count) view.count = limit;
    int f = sc_model_feature_dim(m), side = aug->out_size, ch = aug->out_channels;
    sc_backend *be = sc_model_backend(m);
    sc_dtype dt = sc_model_dtype(m);
    SC_TRY(sc_model_plan(m, batch_size, side, side));

    sc_loader_options lo = {.dataset = &view, .aug = *aug, .mode = SC_LOADER_EVAL, .batch_size = batch_size,
                            .workers = workers, .prefetch = 2, .seed = 0, .rank = 0, .world_size = 1};
    sc_loader *loader = NULL;
    void *xdev = NULL;
    float *out = malloc((size_t)view.count * (size_t)f * sizeof *out);
    double *tmp = NULL;
    sc_status rc = out ? SC_OK : sc_errorf(SC_ERR_NOMEM, "out of memory for %lld x %d features", (long long)view.count, f);
    if (rc == SC_OK) rc = sc_backend_alloc(be, (size_t)batch_size * side * side * ch * sc_dtype_size(dt), "the input batch", &xdev);
    if (rc == SC_OK && dt == SC_F64 && !(tmp = malloc((size_t)batch_size * (size_t)(f > side * side * ch ? f : side * side * ch) * sizeof *tmp)))
        rc = sc_errorf(SC_ERR_NOMEM, "out of memory");
    if (rc == SC_OK) rc = sc_loader_create(&lo, &loader);
    if (rc == SC_OK) rc = sc_loader_start_epoch(loader, 0, 0);
    int64_t done = 0;
    while (rc == SC_OK) {
        sc_batch *b;
        rc = sc_loader_next(loader, &b, NULL);
        if (rc != SC_OK || !b) break;
        sc_tensor x = sc_tensor_4d(xdev, dt, b->samples, side, side, ch);
        int64_t nin = sc_tensor_numel(&x);
        if (dt == SC_F64) {
            for (int64_t i = 0; i < nin; i++) tmp[i] = b->views[i];
            sc_tensor_upload(be, &x, tmp);
        } else {
            sc_tensor_upload(be, &x, b->views);
        }
        sc_tensor h;
        sc_model_forward(m, &x, 0, &h, NULL);
        if (dt == SC_F64) {
            sc_tensor_download(be, tmp, &h);
            for (int64_t i = 0; i < (int64_t)b->samples * f; i++) out[done * f + i] = (float)tmp[i];
        } else {
            sc_tensor_download(be, out + done * f, &h);
        }
        done += b->samples;
        sc_loader_release(loader, b);
    }
    sc_loader_destroy(loader);
    sc_backend_free(be, xdev);
    free(tmp);
    if (rc == SC_OK && done != view.count)
        rc = sc_errorf(SC_ERR_DATA, "%s: extracted %lld of %lld features", ds->name, (long long)done, (long long)view.count);
    if (rc != SC_OK) {
        free(out);
        return rc;
    }
    *features = out;
    *count = done;
    return SC_OK;
}

/* ---- logistic regression ------------------------------------------------------------------- */

typedef struct logreg {
    const double *x; /* [n, d] standardised features */
    const int32_t *y;
    int64_t n;
    int d, k;
    double l2;
    double *logits; /* [n, k] scratch */
} logreg;

/* Objective and gradient at theta = [W (k x d) | b (k)]. */
static double objective(const logreg *p, const double *theta, double *grad) {
    const double *w = theta, *b = theta + (size_t)p->k * p->d;
    /* logits = x W^T + b: [n, k] */
    for (int64_t i = 0; i < p->n; i++) memcpy(p->logits + i * p->k, b, (size_t)p->k * sizeof *b);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)p->n, p->k, p->d, 1.0, p->x, p->d, w, p->d, 1.0,
                p->logits, p->k);
    double loss = 0.0;
    double inv_n = 1.0 / (double)p->n;
    for (int64_t i = 0; i < p->n; i++) {
        double *row = p->logits + i * p->k;
        double mx = row[0];
        for (int c = 1; c < p->k; c++) mx = row[c] > mx ? row[c] : mx;
        double s = 0.0;
        for (int c = 0; c < p->k; c++) s += exp(row[c] - mx);
        double lse = mx + log(s);
        loss += lse - row[p->y[i]];
        /* row becomes d loss / d logits = (softmax - onehot) / n */
        for (int c = 0; c < p->k; c++) row[c] = exp(row[c] - lse) * inv_n;
        row[p->y[i]] -= inv_n;
    }
    loss *= inv_n;
    double reg = 0.0;
    for (size_t j = 0; j < (size_t)p->k * p->d; j++) reg += w[j] * w[j];
    loss += 0.5 * p->l2 * reg;
    /* dW = G^T x + l2 W: [k, d]; db = column sums of G */
    double *gw = grad, *gb = grad + (size_t)p->k * p->d;
    memcpy(gw, w, (size_t)p->k * p->d * sizeof *gw);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->k, p->d, (int)p->n, 1.0, p->logits, p->k, p->x, p->d,
                p->l2, gw, p->d);
    for (int c = 0; c < p->k; c++) gb[c] = 0.0;
    for (int64_t i = 0; i < p->n; i++)
        for (int c = 0; c < p->k; c++) gb[c] += p->logits[i * p->k + c];
    return loss;
}

static double dot(const double *a, const double *b, size_t n) { return cblas_ddot((int)n, a, 1, b, 1); }

/* Minimise with L-BFGS (memory 10, backtracking Armijo line search). Returns iterations. */
static int lbfgs(const logreg *p, double *theta, int max_iters, double *final_loss) {
    enum { MEM = 10 };
    size_t n = (size_t)p->k * p->d + p->k;
    double *g = calloc(n, sizeof *g), *gn = calloc(n, sizeof *gn), *dir = calloc(n, sizeof *dir);
    double *xn = calloc(n, sizeof *xn), *s = calloc(MEM * n, sizeof *s), *yv = calloc(MEM * n, sizeof *yv);
    double rho[MEM], alpha[MEM];
    SC_CHECK(g && gn && dir && xn && s && yv, "out of memory in L-BFGS (%zu parameters)", n);
    double f = objective(p, theta, g);
    int stored = 0, head = 0, it;
    for (it = 0; it < max_iters; it++) {
        /* two-loop recursion: dir = -H g */
        for (size_t j = 0; j < n; j++) dir[j] = -g[j];
        for (int q = 0; q < stored; q++) {
            int i = (head - 1 - q + MEM) % MEM;
            alpha[i] = rho[i] * dot(s + i * n, dir, n);
            cblas_daxpy((int)n, -alpha[i], yv + i * n, 1, dir, 1);
        }
        if (stored > 0) {
            int last = (head - 1 + MEM) % MEM;
            double gamma = dot(s + last * n, yv + last * n, n) / dot(yv + last * n, yv + last * n, n);
            cblas_dscal((int)n, gamma, dir, 1);
        }
        for (int q = stored - 1; q >= 0; q--) {
            int i = (head - 1 - q + MEM) % MEM;
            double beta = rho[i] * dot(yv + i * n, dir, n);
            cblas_daxpy((int)n, alpha[i] - beta, s + i * n, 1, dir, 1);
        }
        double slope = dot(g, dir, n);
        if (slope >= 0) { /* not a descent direction: restart from steepest descent */
            for (size_t j = 0; j < n; j++) dir[j] = -g[j];
            slope = -dot(g, g, n);
            stored = 0;
        }
        double t = stored == 0 ? fmin(1.0, 1.0 / sqrt(-slope)) : 1.0, fn = f;
        int accepted = 0;
        for (int ls = 0; ls < 50; ls++) {
            for (size_t j = 0; j < n; j++) xn[j] = theta[j] + t * dir[j];
            fn = objective(p, xn, gn);
            if (fn <= f + 1e-4 * t * slope) {
                accepted = 1;
                break;
            }
            t *= 0.5;
        }
        if (!accepted) break;
        /* s = xn - theta, y = gn - g */
        double *si = s + head * n, *yi = yv + head * n;
        for (size_t j = 0; j < n; j++) {
            si[j] = xn[j] - theta[j];
            yi[j] = gn[j] - g[j];
        }
        double sy = dot(si, yi, n);
        if (sy > 1e-12) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % MEM;
            if (stored < MEM) stored++;
        }
        double change = f - fn;
        memcpy(theta, xn, n * sizeof *theta);
        memcpy(g, gn, n * sizeof *g);
        f = fn;
        double gmax = 0.0;
        for (size_t j = 0; j < n; j++) gmax = fmax(gmax, fabs(g[j]));
        if (gmax < 1e-6 || change < 1e-10 * fmax(1.0, fabs(f))) {
            it++;
            break;
        }
    }
    *final_loss = f;
    free(g);
    free(gn);
    free(dir);
    free(xn);
    free(s);
    free(yv);
    return it;
}

static double accuracy(const double *x, const int32_t *y, int64_t n, int d, int k, const double *theta) {
    const double *w = theta, *b = theta + (size_t)k * d;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double best_v = -INFINITY;
        for (int c = 0; c < k; c++) {
            double v = b[c] + dot(x + i * d, w + (size_t)c * d, (size_t)d);
            if (v > best_v) {
                best_v = v;
                best = c;
            }
        }
        correct += best == y[i];
    }
    return n ? (double)correct / (double)n : 0.0;
}

/* Standardise with the train statistics: out = (x - mean) / std (std 0 -> 1). */
static void standardise(const float *x, int64_t n, int d, const double *mean, const double *sd, double *out) {
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) out[i * d + j] = ((double)x[i * d + j] - mean[j]) / sd[j];
}

sc_status sc_logreg_fit(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte,
                        const int32_t *yte, int64_t nte, int dim, int classes,
                        const sc_logreg_options *opt, sc_logreg_result *res) {
    if (ntr < 1 || dim < 1 || classes < 2) return sc_errorf(SC_ERR_ARG, "logistic regression needs samples, features and 2+ classes");
    for (int64_t i = 0; i < ntr; i++)
        if (ytr[i] < 0 || ytr[i] >= classes) return sc_errorf(SC_ERR_DATA, "train label %d of sample %lld is outside [0, %d)", ytr[i], (long long)i, classes);
    for (int64_t i = 0; i < nte; i++)
        if (yte[i] < 0 || yte[i] >= classes) return sc_errorf(SC_ERR_DATA, "test label %d of sample %lld is outside [0, %d)", yte[i], (long long)i, classes);
    double *mean = calloc((size_t)dim, sizeof *mean), *sd = calloc((size_t)dim, sizeof *sd);
    double *xs = malloc((size_t)ntr * dim * sizeof *xs), *xt = malloc((size_t)(nte ? nte : 1) * dim * sizeof *xt);
    double *logits = malloc((size_t)ntr * classes * sizeof *logits);
    double *theta = calloc((size_t)classes * dim + classes, sizeof *theta);
    sc_status rc = SC_OK;
    if (!mean || !sd || !xs || !xt || !logits || !theta) {
        rc = sc_errorf(SC_ERR_NOMEM, "out of memory for the linear probe (%lld x %d features)", (long long)ntr, dim);
        goto done;
    }
    for (int64_t i = 0; i < ntr; i++)
        for (int j = 0; j < dim; j++) mean[j] += xtr[i * dim + j];
    for (int j = 0; j < dim; j++) mean[j] /= (double)ntr;
    for (int64_t i = 0; i < ntr; i++)
        for (int j = 0; j < dim; j++) sd[j] += (xtr[i * dim + j] - mean[j]) * (xtr[i * dim + j] - mean[j]);
    for (int j = 0; j < dim; j++) {
        sd[j] = sqrt(sd[j] / (double)ntr);
        if (!(sd[j] > 1e-12)) sd[j] = 1.0;
    }
    standardise(xtr, ntr, dim, mean, sd, xs);
    standardise(xte, nte, dim, mean, sd, xt);
    logreg p = {.x = xs, .y = ytr, .n = ntr, .d = dim, .k = classes, .l2 = opt->l2, .logits = logits};
    res->iterations = lbfgs(&p, theta, opt->max_iters, &res->train_loss);
    res->train_accuracy = accuracy(xs, ytr, ntr, dim, classes, theta);
    res->test_accuracy = accuracy(xt, yte, nte, dim, classes, theta);
done:
    free(mean);
    free(sd);
    free(xs);
    free(xt);
    free(logits);
    free(theta);
    return rc;
}

/* ---- the probe with its random-init baseline ------------------------------------------------ */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static sc_status probe_once(sc_model *m, const sc_config *cfg, const sc_dataset *train, const sc_dataset *test,
                            const sc_augment_params *aug, sc_logreg_result *res, int64_t *ntr, int64_t *nte) {
    float *ftr = NULL, *fte = NULL;
    int f = sc_model_feature_dim(m);
    sc_status rc = sc_extract_features(m, train, aug, cfg->eval.batch_size, cfg->data.workers,
                                       cfg->eval.probe_train_samples, &ftr, ntr);
    if (rc == SC_OK)
        rc = sc_extract_features(m, test, aug, cfg->eval.batch_size, cfg->data.workers,
                                 cfg->eval.probe_test_samples, &fte, nte);
    if (rc == SC_OK) {
        sc_logreg_options lo = {.l2 = cfg->eval.probe_l2, .max_iters = cfg->eval.probe_max_iters};
        rc = sc_logreg_fit(ftr, train->labels, *ntr, fte, test->labels, *nte, f, train->num_classes, &lo, res);
    }
    free(ftr);
    free(fte);
    return rc;
}

sc_status sc_linear_probe(sc_model *m, const sc_config *cfg, sc_probe_report *report) {
    double t0 = now_seconds();
    memset(report, 0, sizeof *report);
    sc_dataset train = {0}, test = {0};
    sc_status rc = sc_dataset_open(cfg, SC_SPLIT_TRAIN, &train);
    if (rc == SC_OK) rc = sc_dataset_open(cfg, SC_SPLIT_TEST, &test);
    if (rc == SC_OK && (!train.labels || !test.labels || train.num_classes < 2))
        rc = sc_errorf(SC_ERR_DATA, "the linear probe needs a labelled dataset with 2+ classes (%s)", train.name);
    sc_augment_params aug;
    if (rc == SC_OK) rc = sc_augment_params_from_config(cfg, &train, &aug);
    sc_backend *be = sc_model_backend(m);
    sc_tensor pbuf = sc_model_param_buffer(m);
    void *trained = malloc(sc_tensor_nbytes(&pbuf));
    if (rc == SC_OK && !trained) rc = sc_errorf(SC_ERR_NOMEM, "out of memory saving the weights");
    if (rc == SC_OK) {
        report->feature_dim = sc_model_feature_dim(m);
        SC_INFO("linear probe: features of the pretrained encoder");
        rc = probe_once(m, cfg, &train, &test, &aug, &report->pretrained, &report->train_samples, &report->test_samples);
    }
    if (rc == SC_OK) {
        SC_INFO("linear probe: the same encoder at random initialisation (seed %lld)", (long long)cfg->run.seed);
        sc_tensor_download(be, trained, &pbuf);
        sc_model_init_params(m, (uint64_t)cfg->run.seed);
        rc = probe_once(m, cfg, &train, &test, &aug, &report->random_init, &report->train_samples, &report->test_samples);
        sc_tensor_upload(be, &pbuf, trained);
    }
    free(trained);
    sc_dataset_free(&train);
    sc_dataset_free(&test);
    report->seconds = now_seconds() - t0;
    return rc;
}
