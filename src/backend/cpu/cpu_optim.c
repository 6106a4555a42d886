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
                       sc_tensor *params, const sc_tensor *grads, sc_tensor *state,
                       const sc_tensor *lr) {
    double rate = lr->dtype == SC_F64 ? *(const double *)lr->data : *(const float *)lr->data;
#pragma omp parallel for num_threads(be->threads) schedule(dynamic, 1)
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
