/*
 * probe.c - frozen-feature extraction and the linear protocol (see include/simclr/eval.h).
 *
 * Logistic regression runs on the host in double precision with OpenBLAS: the features are
 * small ([N, F] with F = 64..2048), so a fit takes seconds. The optimiser is L-BFGS with a
 * memory of 10 pairs and a backtracking (Armijo) line search. The L2 penalty is chosen by
 * fitting each grid value on the train rows minus a class-stratified held-out part and
 * scoring that part (ties go to the larger penalty), then refitting on every train row.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/eval.h"
#include "simclr/log.h"
#include "simclr/rng.h"

/* ---- features ---------------------------------------------------------------------------- */

sc_status sc_extract_features(sc_model *m, const sc_dataset *ds, const sc_augment_params *aug,
                              int batch_size, int workers, int64_t limit, float **features,
                              int64_t *count) {
    return sc_extract_outputs(m, ds, aug, batch_size, workers, limit, 0, features, count);
}

sc_status sc_extract_outputs(sc_model *m, const sc_dataset *ds, const sc_augment_params *aug, int batch_size,
                             int workers, int64_t limit, int head, float **features, int64_t *count) {
    *features = NULL;
    sc_dataset view = *ds; /* a shallow copy limited to the first `limit` images */
    if (limit > 0 && limit < view.count) view.count = limit;
    int f = head ? sc_model_out_dim(m) : sc_model_feature_dim(m), side = aug->out_size, ch = aug->out_channels;
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
        if (head)
            sc_model_forward(m, &x, 0, NULL, &h);
        else
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

/* Logits x W^T + b of n rows into out [n, k] (when out != NULL); returns the top-1 accuracy
 * (first maximum) and, in *top5, the top-min(5, k) accuracy with the ranking of metrics.c. */
static double score_rows(const double *x, const int32_t *y, int64_t n, int d, int k, const double *theta,
                         float *out, double *top5) {
    const double *w = theta, *b = theta + (size_t)k * d;
    double *row = malloc((size_t)k * sizeof *row);
    SC_CHECK(row != NULL, "out of memory scoring %d classes", k);
    int64_t correct = 0, correct5 = 0;
    int kk = k < 5 ? k : 5;
    for (int64_t i = 0; i < n; i++) {
        int best = 0, above = 0;
        for (int c = 0; c < k; c++) {
            row[c] = b[c] + dot(x + i * d, w + (size_t)c * d, (size_t)d);
            if (row[c] > row[best]) best = c;
            if (out) out[i * k + c] = (float)row[c];
        }
        for (int c = 0; c < k; c++) above += row[c] > row[y[i]] || (row[c] == row[y[i]] && c < y[i]);
        correct += best == y[i];
        correct5 += above < kk;
    }
    free(row);
    if (top5) *top5 = n ? (double)correct5 / (double)n : 0.0;
    return n ? (double)correct / (double)n : 0.0;
}

/* Standardise with the train statistics: out = (x - mean) / std (std 0 -> 1). */
static void standardise(const float *x, int64_t n, int d, const double *mean, const double *sd, double *out) {
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) out[i * d + j] = ((double)x[i * d + j] - mean[j]) / sd[j];
}

sc_status sc_logreg_fit(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte,
                        const int32_t *yte, int64_t nte, int dim, int classes,
                        const sc_logreg_options *opt, sc_logreg_result *res, float *test_scores) {
    memset(res, 0, sizeof *res);
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
    res->l2 = opt->l2;
    res->train_accuracy = score_rows(xs, ytr, ntr, dim, classes, theta, NULL, NULL);
    res->test_accuracy = score_rows(xt, yte, nte, dim, classes, theta, test_scores, &res->test_top5);
done:
    free(mean);
    free(sd);
    free(xs);
    free(xt);
    free(logits);
    free(theta);
    return rc;
}

/* ---- the linear protocol --------------------------------------------------------------------- */

sc_linear_options sc_linear_options_from_config(const sc_config *cfg) {
    sc_linear_options o = {.holdout = cfg->eval.probe_holdout, .l2 = cfg->eval.probe_l2,
                           .l2_min = cfg->eval.probe_l2_min, .l2_max = cfg->eval.probe_l2_max,
                           .l2_points = cfg->eval.probe_l2_points, .max_iters = cfg->eval.probe_max_iters,
                           .seed = (uint64_t)cfg->run.seed};
    return o;
}

/* Mark round(holdout * n_c) rows of every class c as held out (at least 1 and at most
 * n_c - 1 when the class has 2+ rows): the first of a Philox (seed, SC_RNG_EVAL, view 1)
 * permutation of the class's rows. held[i] = 1 for held-out rows. Returns the count. */
static int64_t stratified_holdout(const int32_t *y, int64_t n, int classes, double holdout, uint64_t seed,
                                  uint8_t *held) {
    int64_t *rows = malloc((size_t)(n ? n : 1) * sizeof *rows), total = 0;
    SC_CHECK(rows != NULL, "out of memory choosing %lld held-out rows", (long long)n);
    memset(held, 0, (size_t)n);
    for (int c = 0; c < classes; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (y[i] == c) rows[m++] = i;
        if (m < 2) continue;
        int64_t take = (int64_t)llround(holdout * (double)m);
        take = take < 1 ? 1 : take > m - 1 ? m - 1 : take;
        sc_rng r = sc_rng_make(seed, 0, (uint32_t)c, 1, SC_RNG_EVAL);
        for (int64_t j = 0; j < take; j++) { /* partial Fisher-Yates: rows[0..take) */
            int64_t pick = j + (int64_t)sc_rng_below(&r, (uint32_t)(m - j));
            int64_t t = rows[j];
            rows[j] = rows[pick];
            rows[pick] = t;
            held[rows[j]] = 1;
        }
        total += take;
    }
    free(rows);
    return total;
}

sc_status sc_linear_eval(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte,
                         const int32_t *yte, int64_t nte, int dim, int classes,
                         const sc_linear_options *opt, sc_logreg_result *res, float *test_scores) {
    memset(res, 0, sizeof *res);
    double l2 = opt->l2;
    int points = opt->l2_points < 1 ? 1 : opt->l2_points > SC_L2_GRID_MAX ? SC_L2_GRID_MAX : opt->l2_points;
    if (opt->holdout > 0 && ntr >= 2 * classes) {
        uint8_t *held = malloc((size_t)ntr);
        float *xa = malloc((size_t)ntr * (size_t)dim * sizeof *xa), *xb = malloc((size_t)ntr * (size_t)dim * sizeof *xb);
        int32_t *ya = malloc((size_t)ntr * sizeof *ya), *yb = malloc((size_t)ntr * sizeof *yb);
        sc_status rc = held && xa && xb && ya && yb ? SC_OK : sc_errorf(SC_ERR_NOMEM, "out of memory splitting %lld train rows", (long long)ntr);
        int64_t na = 0, nb = 0;
        if (rc == SC_OK) {
            res->holdout_samples = stratified_holdout(ytr, ntr, classes, opt->holdout, opt->seed, held);
            for (int64_t i = 0; i < ntr; i++) {
                float *dst = held[i] ? xb + nb * dim : xa + na * dim;
                memcpy(dst, xtr + i * dim, (size_t)dim * sizeof *dst);
                if (held[i])
                    yb[nb++] = ytr[i];
                else
                    ya[na++] = ytr[i];
            }
        }
        double best = -1.0;
        for (int g = 0; g < points && rc == SC_OK; g++) {
            double v = points == 1 ? opt->l2_min
                                   : exp(log(opt->l2_min) + (log(opt->l2_max) - log(opt->l2_min)) * g / (points - 1));
            sc_logreg_options lo = {.l2 = v, .max_iters = opt->max_iters};
            sc_logreg_result r;
            rc = sc_logreg_fit(xa, ya, na, xb, yb, nb, dim, classes, &lo, &r, NULL);
            if (rc != SC_OK) break;
            res->grid_l2[g] = v;
            res->grid_holdout_accuracy[g] = r.test_accuracy;
            res->grid_count = g + 1;
            if (r.test_accuracy >= best) { /* ties: the larger penalty */
                best = r.test_accuracy;
                l2 = v;
            }
            SC_DEBUG("linear eval: l2 %.3g -> %.4f on %lld held-out rows", v, r.test_accuracy, (long long)nb);
        }
        free(held);
        free(xa);
        free(xb);
        free(ya);
        free(yb);
        if (rc != SC_OK) return rc;
    }
    sc_logreg_options lo = {.l2 = l2, .max_iters = opt->max_iters};
    sc_logreg_result final;
    SC_TRY(sc_logreg_fit(xtr, ytr, ntr, xte, yte, nte, dim, classes, &lo, &final, test_scores));
    final.grid_count = res->grid_count;
    final.holdout_samples = res->holdout_samples;
    memcpy(final.grid_l2, res->grid_l2, sizeof final.grid_l2);
    memcpy(final.grid_holdout_accuracy, res->grid_holdout_accuracy, sizeof final.grid_holdout_accuracy);
    *res = final;
    return SC_OK;
}
