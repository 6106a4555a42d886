/*
 * optim.h - learning-rate scaling, the warmup + cosine schedule, and the optimizer driver.
 *
 * The update rules (LARS as in the official SimCLR code, SGD with momentum, AdamW; global
 * gradient-norm clipping; skipping steps whose gradients are not finite) are one backend op
 * (sc_op_optim_step, see backend.h and src/backend/cpu/cpu_optim.c). The op evaluates the
 * schedule itself from a step counter kept in backend memory, so a step needs no host
 * synchronisation; this module owns that counter and the other per-step scalars, and reads
 * them back for logging.
 *
 * Schedule (include/simclr/schedule.h), per step t (0-based), as google-research/simclr:
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
#include "simclr/schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

/* base * B/256, base * sqrt(B) or base. */
double sc_lr_scaled(double base, sc_lr_scaling rule, int64_t batch_size);

/* Steps of a run: steps_per_epoch = floor(count / global_batch) (the last partial batch is
 * dropped), total = floor(steps_per_epoch * epochs), warmup = round(steps_per_epoch *
 * warmup_epochs) capped at total. */
sc_schedule sc_schedule_from_config(const sc_config *cfg, int64_t steps_per_epoch);

/* What one step did, read back from the backend. */
typedef struct sc_optim_report {
    double lr;             /* the learning rate it used */
    double grad_norm;      /* global gradient norm before clipping (NaN/Inf when not finite) */
    double clip_coef;      /* the gradient scale applied (1 without clipping, 0 when skipped) */
    int skipped;           /* 1: a gradient was not finite and nothing was updated */
    int64_t skipped_total; /* steps skipped so far */
} sc_optim_report;

/* The optimizer: hyper-parameters, schedule and the backend-resident step scalars. */
typedef struct sc_optimizer {
    sc_optim_hparams hp;      /* hp.schedule == schedule, hp.use_schedule == 1 */
    sc_schedule schedule;
    sc_backend *be;
    void *block;              /* one backend allocation for the tensors below */
    sc_tensor scalars;        /* [SC_OPTIM_NSCALARS] F64 (backend.h) */
    sc_tensor second_moment;  /* AdamW's second moment [numel] (the model's state buffer holds
                               * the first); empty for LARS and SGD */
    sc_dtype dtype;           /* of the flat buffers */
    int64_t next_step;        /* the step the backend counter holds */
    double last_lr;           /* the rate of the most recent step (host copy, for logging) */
} sc_optimizer;

/* numel: elements of the flat buffers (sc_param_table.total), for AdamW's second moment. */
sc_status sc_optimizer_init(sc_optimizer *opt, sc_backend *be, const sc_optim_hparams *hp,
                            const sc_schedule *schedule, int64_t numel, sc_dtype dtype);
sc_optim_hparams sc_optim_hparams_from_config(const sc_config *cfg);
/* One update of params from grads at step `step`: prepare, then apply. Sets opt->last_lr. */
void sc_optimizer_step(sc_optimizer *opt, const sc_param_table *table, sc_tensor *params,
                       const sc_tensor *grads, sc_tensor *state, int64_t step);
/* The two halves of a step, for callers that record the update in a step graph. prepare runs
 * on the host, outside the graph: the backend counter advances by itself, so it is written
 * only when `step` is not the one it holds (the first step, after a resume) and consecutive
 * steps transfer nothing; it sets opt->last_lr. apply runs the update op, which reads the
 * counter and evaluates the schedule on the backend (inside the graph). */
void sc_optimizer_prepare(sc_optimizer *opt, int64_t step);
void sc_optimizer_apply(sc_optimizer *opt, const sc_param_table *table, sc_tensor *params,
                        const sc_tensor *grads, sc_tensor *state);
/* Continue a run at `step` with `skipped` steps skipped so far (from a checkpoint). */
void sc_optimizer_resume(sc_optimizer *opt, int64_t step, int64_t skipped);
/* AdamW's second moment (a flat buffer like the parameters), NULL for LARS and SGD. */
sc_tensor *sc_optimizer_moment2(sc_optimizer *opt);
/* Copy the scalars of the most recent step to the host (synchronises). */
void sc_optimizer_read(sc_optimizer *opt, sc_optim_report *out);
void sc_optimizer_free(sc_optimizer *opt);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_OPTIM_H */
