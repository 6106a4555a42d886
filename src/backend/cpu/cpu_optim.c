/*
 * cpu_optim.c - reference optimizer steps over the flat parameter buffers.
 *
 * A step first sums every trainable tensor's squared gradient (double, index order) into the
 * global gradient norm ||g|| (rows flagged SC_PARAM_BN_STAT, the BN running statistics, are
 * never read or written). If that sum is not finite, some gradient is NaN or Inf: the step is
 * skipped (weights and state untouched), counted and flagged in the scalars. Otherwise, with
 * clip = min(1, clip_grad_norm / (||g|| + 1e-6)) when clipping is on (PyTorch's
 * clip_grad_norm_) and 1 when off, each tensor is updated with g = clip * grad:
 *
 * LARS, exactly as the official SimCLR code (google-research/simclr lars_optimizer.py,
 * classic momentum, no Nesterov), with momentum m and trust eeta:
 *   g' = g + wd * w                        unless the row has SC_PARAM_NO_WD
 *   trust = eeta * ||w|| / ||g'||          if both norms > 0 and the row lacks SC_PARAM_NO_LARS,
 *         = 1                              otherwise
 *   v = m * v + lr * trust * g'            (the learning rate lives inside the momentum)
 *   w = w - v
 *
 * SGD with momentum uses PyTorch's convention (the learning rate outside the momentum):
 *   g' = g + wd * w (unless SC_PARAM_NO_WD);  v = m * v + g';  w = w - lr * (nesterov ? g' + m v : v)
 *
 * AdamW is PyTorch's (decoupled weight decay, bias-corrected moments), t = applied updates:
 *   w = w * (1 - lr * wd) (unless SC_PARAM_NO_WD);  m1 = b1 m1 + (1 - b1) g;  m2 = b2 m2 + (1 - b2) g^2
 *   w = w - lr / (1 - b1^t) * m1 / (sqrt(m2) / sqrt(1 - b2^t) + eps)
 *
 * The learning rate is sc_schedule_lr(schedule, step) (or the caller's, see use_schedule),
 * rounded to the parameter dtype. Arithmetic is in double; sums run in a fixed order, so the
 * step is deterministic and independent of the thread count.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"

#define T float
#define TFN(name) name##_f32
#include "cpu_optim.inc"
#undef T
#undef TFN

#define T double
#define TFN(name) name##_f64
#include "cpu_optim.inc"
#undef T
#undef TFN

void sc_cpu_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                       sc_tensor *params, const sc_tensor *grads, sc_tensor *state, sc_tensor *state2,
                       sc_tensor *scalars) {
    double *sc = scalars->data;
    const int f32 = params->dtype == SC_F32;
    const int64_t step = (int64_t)sc[SC_OPTIM_STEP];
    double lr = hp->use_schedule ? sc_schedule_lr(&hp->schedule, step) : sc[SC_OPTIM_LR];
    if (f32) lr = (double)(float)lr;
    /* phase 1: squared gradient norm of each trainable tensor, then their sum in table order */
    double *g2 = malloc((size_t)(table->count > 0 ? table->count : 1) * sizeof *g2);
    SC_CHECK(g2 != NULL, "optim_step: out of memory");
#pragma omp parallel for num_threads(be->threads) schedule(dynamic, 1)
    for (int i = 0; i < table->count; i++) {
        const sc_param *p = &table->rows[i];
        g2[i] = p->flags & SC_PARAM_BN_STAT ? 0.0
                : f32 ? sumsq_f32((const float *)grads->data + p->offset, p->numel)
                      : sumsq_f64((const double *)grads->data + p->offset, p->numel);
    }
    double total = 0.0;
    for (int i = 0; i < table->count; i++) total += g2[i];
    free(g2);
    const double norm = sqrt(total);
    sc[SC_OPTIM_STEP] = (double)(step + 1);
    sc[SC_OPTIM_LR] = lr;
    sc[SC_OPTIM_GRAD_NORM] = norm;
    if (!isfinite(total)) {
        sc[SC_OPTIM_SKIPPED] = 1.0;
        sc[SC_OPTIM_SKIP_COUNT] += 1.0;
        sc[SC_OPTIM_CLIP_COEF] = 0.0;
        return;
    }
    const double clip = hp->clip_grad_norm > 0.0 ? fmin(1.0, hp->clip_grad_norm / (norm + 1e-6)) : 1.0;
    const int64_t applied = step - (int64_t)sc[SC_OPTIM_SKIP_COUNT] + 1;
    sc[SC_OPTIM_SKIPPED] = 0.0;
    sc[SC_OPTIM_CLIP_COEF] = clip;
    /* phase 2: the update of every trainable tensor */
#pragma omp parallel for num_threads(be->threads) schedule(dynamic, 1)
    for (int i = 0; i < table->count; i++) {
        const sc_param *p = &table->rows[i];
        if (p->flags & SC_PARAM_BN_STAT) continue;
        if (f32)
            step_f32(hp, p, (float *)params->data + p->offset, (const float *)grads->data + p->offset,
                     (float *)state->data + p->offset, state2 ? (float *)state2->data + p->offset : NULL, lr,
                     clip, applied);
        else
            step_f64(hp, p, (double *)params->data + p->offset, (const double *)grads->data + p->offset,
                     (double *)state->data + p->offset, state2 ? (double *)state2->data + p->offset : NULL, lr,
                     clip, applied);
    }
}
