/*
 * optimizer.c - drives the optimizer op: owns the backend-resident step scalars (counter,
 * learning rate, gradient norm, skip flag and count) and AdamW's second moment, keeps the
 * backend counter in step with the caller's step, and reads the scalars back for logging.
 * A step is two calls (prepare on the host, apply on the backend) so that a step graph can
 * hold the update while the rate changes every step.
 */
#include "simclr/optim.h"

#include "simclr/arena.h"

sc_optim_hparams sc_optim_hparams_from_config(const sc_config *cfg) {
    sc_optim_hparams hp = {
        .kind = cfg->optim.name == SC_OPT_SGD     ? SC_OPTIM_SGD
                : cfg->optim.name == SC_OPT_ADAMW ? SC_OPTIM_ADAMW
                                                  : SC_OPTIM_LARS,
        .momentum = cfg->optim.momentum,
        .weight_decay = cfg->optim.weight_decay,
        .trust_coef = cfg->optim.trust_coef,
        .nesterov = cfg->optim.nesterov,
        .beta1 = cfg->optim.beta1,
        .beta2 = cfg->optim.beta2,
        .eps = cfg->optim.eps,
        .clip_grad_norm = cfg->optim.clip_grad_norm,
    };
    return hp;
}

static sc_status plan(sc_optimizer *opt, sc_arena *a, int64_t numel, sc_dtype dtype) {
    int64_t ns[1] = {SC_OPTIM_NSCALARS}, n[1] = {numel};
    SC_TRY(sc_arena_tensor(a, SC_F64, 1, ns, &opt->scalars));
    if (sc_optim_state_buffers(opt->hp.kind) == 2) SC_TRY(sc_arena_tensor(a, dtype, 1, n, &opt->second_moment));
    return SC_OK;
}

sc_status sc_optimizer_init(sc_optimizer *opt, sc_backend *be, const sc_optim_hparams *hp,
                            const sc_schedule *schedule, int64_t numel, sc_dtype dtype) {
    *opt = (sc_optimizer){.hp = *hp, .schedule = *schedule, .be = be, .dtype = dtype};
    opt->hp.use_schedule = 1;
    opt->hp.schedule = *schedule;
    sc_arena a;
    sc_arena_measure(&a, "optimizer (planning)");
    SC_TRY(plan(opt, &a, numel, dtype));
    size_t bytes = a.used;
    SC_TRY(sc_backend_alloc(be, bytes, "the optimizer state", &opt->block));
    sc_arena_init(&a, "optimizer", opt->block, bytes);
    SC_TRY(plan(opt, &a, numel, dtype));
    be->ops->zero(be, opt->block, bytes); /* step 0, nothing skipped, zero moments */
    return SC_OK;
}

void sc_optimizer_prepare(sc_optimizer *opt, int64_t step) {
    if (step != opt->next_step) {
        double t = (double)step;
        opt->be->ops->upload(opt->be, (double *)opt->scalars.data + SC_OPTIM_STEP, &t, sizeof t);
    }
    double lr = sc_schedule_lr(&opt->schedule, step);
    opt->last_lr = opt->dtype == SC_F32 ? (double)(float)lr : lr;
    opt->next_step = step + 1;
}

void sc_optimizer_resume(sc_optimizer *opt, int64_t step, int64_t skipped) {
    double v[2] = {(double)step, (double)skipped};
    opt->be->ops->upload(opt->be, (double *)opt->scalars.data + SC_OPTIM_STEP, &v[0], sizeof v[0]);
    opt->be->ops->upload(opt->be, (double *)opt->scalars.data + SC_OPTIM_SKIP_COUNT, &v[1], sizeof v[1]);
    opt->next_step = step;
}

sc_tensor *sc_optimizer_moment2(sc_optimizer *opt) { return opt->second_moment.data ? &opt->second_moment : NULL; }

void sc_optimizer_apply(sc_optimizer *opt, const sc_param_table *table, sc_tensor *params,
                        const sc_tensor *grads, sc_tensor *state) {
    sc_tensor *second = opt->second_moment.data ? &opt->second_moment : NULL;
    sc_op_optim_step(opt->be, &opt->hp, table, params, grads, state, second, &opt->scalars);
}

void sc_optimizer_read(sc_optimizer *opt, sc_optim_report *out) {
    double s[SC_OPTIM_NSCALARS];
    sc_tensor_download(opt->be, s, &opt->scalars);
    *out = (sc_optim_report){.lr = s[SC_OPTIM_LR], .grad_norm = s[SC_OPTIM_GRAD_NORM],
                             .clip_coef = s[SC_OPTIM_CLIP_COEF], .skipped = s[SC_OPTIM_SKIPPED] != 0.0,
                             .skipped_total = (int64_t)s[SC_OPTIM_SKIP_COUNT]};
}

void sc_optimizer_step(sc_optimizer *opt, const sc_param_table *table, sc_tensor *params,
                       const sc_tensor *grads, sc_tensor *state, int64_t step) {
    sc_optimizer_prepare(opt, step);
    sc_optimizer_apply(opt, table, params, grads, state);
}

void sc_optimizer_free(sc_optimizer *opt) {
    sc_backend_free(opt->be, opt->block);
    opt->block = NULL;
}
