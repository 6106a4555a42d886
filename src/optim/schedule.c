/*
 * schedule.c - learning-rate scaling rules and the run's schedule from the config (the
 * per-step formula itself is header-only in include/simclr/schedule.h, shared with CUDA).
 */
#include <math.h>

#include "simclr/optim.h"

double sc_lr_scaled(double base, sc_lr_scaling rule, int64_t batch_size) {
    switch (rule) {
    case SC_LR_LINEAR: return base * (double)batch_size / 256.0;
    case SC_LR_SQRT: return base * sqrt((double)batch_size);
    case SC_LR_NONE: return base;
    }
    SC_FATAL("unknown learning-rate scaling %d", (int)rule);
}

sc_schedule sc_schedule_from_config(const sc_config *cfg, int64_t steps_per_epoch) {
    sc_schedule s;
    s.peak_lr = sc_lr_scaled(cfg->optim.lr, (sc_lr_scaling)cfg->optim.lr_scaling, cfg->train.batch_size);
    s.total_steps = (int64_t)floor((double)steps_per_epoch * cfg->train.epochs);
    if (s.total_steps < 1) s.total_steps = 1;
    s.warmup_steps = (int64_t)llround((double)steps_per_epoch * cfg->train.warmup_epochs);
    if (s.warmup_steps > s.total_steps) s.warmup_steps = s.total_steps;
    return s;
}
