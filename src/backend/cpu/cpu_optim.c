/*
 * cpu_optim.c - reference optimizer steps over the flat parameter buffers.
 *
 * LARS, exactly as the official SimCLR code (google-research/simclr lars_optimizer.py,
 * classic momentum, no Nesterov), per parameter tensor with momentum m and trust eeta:
 *
 *   g = grad + wd * w                      unless the row has SC_PARAM_NO_WD
 *   trust = eeta * ||w|| / ||g||           if both norms > 0 and the row lacks SC_PARAM_NO_LARS,
 *         = 1                              otherwise
 *   v = m * v + lr * trust * g             (the learning rate lives inside the momentum)
 *   w = w - v
 *
 * SGD with momentum uses PyTorch's convention (the learning rate outside the momentum):
 *
 *   g = grad + wd * w (unless SC_PARAM_NO_WD);  v = m * v + g;
 *   w = w - lr * (nesterov ? g + m * v : v)
 *
 * Rows flagged SC_PARAM_BN_STAT (BN running statistics) are never touched. Norms are summed
 * in double in index order, so the step is deterministic.
 */
#include <math.h>

#include "cpu_ops.h"

#define DEFINE_STEP(T, SUFFIX)                                                                  \
    static void step_##SUFFIX(const sc_optim_hparams *hp, const sc_param *p, T *restrict w,     \
                              const T *restrict grad, T *restrict v, double lr) {               \
        double wd = (p->flags & SC_PARAM_NO_WD) ? 0.0 : hp->weight_decay;                       \
        double m = hp->momentum;                                                                \
        int64_t n = p->numel;                                                                   \
        if (hp->kind == SC_OPTIM_LARS) {                                                        \
            double trust = 1.0;                                                                 \
            if (!(p->flags & SC_PARAM_NO_LARS)) {                                               \
                double wn = 0.0, gn = 0.0;                                                      \
                for (int64_t j = 0; j < n; j++) {                                               \
                    double g = (double)grad[j] + wd * (double)w[j];                             \
                    wn += (double)w[j] * (double)w[j];                                          \
                    gn += g * g;                                                                \
                }                                                                               \
                wn = sqrt(wn);                                                                  \
                gn = sqrt(gn);                                                                  \
                if (wn > 0.0 && gn > 0.0) trust = hp->trust_coef * wn / gn;                     \
            }                                                                                   \
            double scaled = lr * trust;                                                         \
            for (int64_t j = 0; j < n; j++) {                                                   \
                double g = (double)grad[j] + wd * (double)w[j];                                 \
                double nv = m * (double)v[j] + scaled * g;                                      \
                v[j] = (T)nv;                                                                   \
                w[j] = (T)((double)w[j] - nv);                                                  \
            }                                                                                   \
        } else {                                                                                \
            for (int64_t j = 0; j < n; j++) {                                                   \
                double g = (double)grad[j] + wd * (double)w[j];                                 \
                double nv = m * (double)v[j] + g;                                               \
                double update = hp->nesterov ? g + m * nv : nv;                                 \
                v[j] = (T)nv;                                                                   \
                w[j] = (T)((double)w[j] - lr * update);                                         \
            }                                                                                   \
        }                                                                                       \
    }

DEFINE_STEP(float, f32)
DEFINE_STEP(double, f64)

void sc_cpu_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                       sc_tensor *params, const sc_tensor *grads, sc_tensor *state,
                       const sc_tensor *lr) {
    (void)be;
    double rate = lr->dtype == SC_F64 ? *(const double *)lr->data : *(const float *)lr->data;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < table->count; i++) {
        const sc_param *p = &table->rows[i];
        if (p->flags & SC_PARAM_BN_STAT) continue;
        if (params->dtype == SC_F32)
            step_f32(hp, p, (float *)params->data + p->offset, (const float *)grads->data + p->offset,
                     (float *)state->data + p->offset, rate);
        else
            step_f64(hp, p, (double *)params->data + p->offset,
                     (const double *)grads->data + p->offset, (double *)state->data + p->offset, rate);
    }
}
