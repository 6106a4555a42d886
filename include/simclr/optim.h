/*
 * optim.h - learning-rate scaling, the warmup + cosine schedule, and the optimizer driver.
 *
 * The per-tensor update rules (LARS as in the official SimCLR code, SGD with momentum) are
 * backend ops (sc_op_optim_step, see backend.h); this module computes the learning rate of
 * each step and hands it to the backend as a 1-element device tensor.
 *
 * Schedule, per step t (0-based), as google-research/simclr's learning_rate_schedule:
 *   peak   = base * B / 256   (linear scaling)  or  base * sqrt(B)  (sqrt)  or  base (none)
 *   lr(t)  = peak * t / W                                   for t < W  (linear warmup)
 *          = peak * 0.5 * (1 + cos(pi * (t - W) / (T - W))) for W <= t < T
 *          = 0                                              for t >= T
 * with W warmup steps and T total steps.
 */
#ifndef SIMCLR_OPTIM_H
#define SIMCLR_OPTIM_H

#include <stdint.h>

#include "simclr/backend.h"
#include "simclr/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* base * B/256, base * sqrt(B) or base. */
double sc_lr_scaled(double base, sc_lr_scaling rule, int64_t batch_size);

typedef struct sc_schedule {
    double peak_lr;
    int64_t warmup_steps;
    int64_t total_steps;
} sc_schedule;

double sc_schedule_lr(const sc_schedule *s, int64_t step);

/* Steps of a run: steps_per_epoch = floor(count / global_batch) (the last partial batch is
 * dropped), total = floor(steps_per_epoch * epochs), warmup = round(steps_per_epoch *
 * warmup_epochs) capped at total. */
sc_schedule sc_schedule_from_config(const sc_config *cfg, int64_t steps_per_epoch);

/* The optimizer: hyper-parameters, schedule and the device-resident learning rate. */
typedef struct sc_optimizer {
    sc_optim_hparams hp;
    sc_schedule schedule;
    sc_backend *be;
    sc_tensor lr;    /* [1] on the backend */
    double last_lr;  /* the rate of the most recent step, for logging */
} sc_optimizer;

sc_status sc_optimizer_init(sc_optimizer *opt, sc_backend *be, const sc_optim_hparams *hp,
                            const sc_schedule *schedule, sc_dtype dtype);
sc_optim_hparams sc_optim_hparams_from_config(const sc_config *cfg);
/* One update of params from grads at step `step` (sets opt->last_lr): set_lr then apply. */
void sc_optimizer_step(sc_optimizer *opt, const sc_param_table *table, sc_tensor *params,
                       const sc_tensor *grads, sc_tensor *state, int64_t step);
/* The two halves of a step, for callers that record the update in a step graph: set_lr
 * writes the scheduled rate of `step` into opt->lr (a host transfer, outside the graph);
 * apply runs the update, which reads opt->lr on the backend (inside the graph). */
void sc_optimizer_set_lr(sc_optimizer *opt, int64_t step);
void sc_optimizer_apply(sc_optimizer *opt, const sc_param_table *table, sc_tensor *params,
                        const sc_tensor *grads, sc_tensor *state);
void sc_optimizer_free(sc_optimizer *opt);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_OPTIM_H */
