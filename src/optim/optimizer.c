/*
 * optimizer.c - drives one optimizer step: computes the step's learning rate on the host,
 * writes it into the backend's 1-element lr tensor and calls the backend's update op (LARS or
 * SGD, see src/backend/cpu/cpu_optim.c for the exact rules). The two halves are separate
 * calls too, so that a step graph can hold the update while the rate changes every step.
 */
#include "simclr/optim.h"

sc_optim_hparams sc_optim_hparams_from_config(const sc_config *cfg) {
    sc_optim_hparams hp = {
        .kind = cfg->optim.name == SC_OPT_SGD ? SC_OPTIM_SGD : SC_OPTIM_LARS,
        .momentum = cfg->optim.momentum,
        .weight_decay = cfg->optim.weight_decay,
        .trust_coef = cfg->optim.trust_coef,
        .nesterov = cfg->optim.nesterov,
    };
    return hp;
}

sc_status sc_optimizer_init(sc_optimizer *opt, sc_backend *be, const sc_optim_hparams *hp,
                            const sc_schedule *schedule, sc_dtype dtype) {
    opt->hp = *hp;
    opt->schedule = *schedule;
    opt->be = be;
    opt->last_lr = 0.0;
    void *p;
    SC_TRY(sc_backend_alloc(be, sc_dtype_size(dtype), "the learning rate", &p));
    opt->lr = sc_tensor_1d(p, dtype, 1);
    return SC_OK;
}

void sc_optimizer_set_lr(sc_optimizer *opt, int64_t step) {
    opt->last_lr = sc_schedule_lr(&opt->schedule, step);
    sc_tensor_write_scalar(opt->be, &opt->lr, opt->last_lr);
}

void sc_optimizer_apply(sc_optimizer *opt, const sc_param_table *table, sc_tensor *params,
                        const sc_tensor *grads, sc_tensor *state) {
    sc_op_optim_step(opt->be, &opt->hp, table, params, grads, state, &opt->lr);
}

void sc_optimizer_step(sc_optimizer *opt, const sc_param_table *table, sc_tensor *params,
                       const sc_tensor *grads, sc_tensor *state, int64_t step) {
    sc_optimizer_set_lr(opt, step);
    sc_optimizer_apply(opt, table, params, grads, state);
}

void sc_optimizer_free(sc_optimizer *opt) {
    sc_backend_free(opt->be, opt->lr.data);
    opt->lr.data = NULL;
}
