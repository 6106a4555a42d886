/*
 * schedule.h - the learning-rate schedule as one header-only function that host C code and
 * CUDA kernels share, so the device computes exactly the formula the host documents.
 *
 * Per step t (0-based), as google-research/simclr's learning_rate_schedule:
 *   lr(t) = peak * t / W                                   for t < W  (linear warmup)
 *         = peak * 0.5 * (1 + cos(pi * (t - W) / (T - W))) for W <= t < T
 *         = 0                                              for t >= T
 * with W warmup steps and T total steps. The optimizer step evaluates it on the backend from
 * a device-resident step counter (see sc_optim_hparams in backend.h), so a step needs no host
 * synchronisation and can be captured in a CUDA graph.
 */
#ifndef SIMCLR_SCHEDULE_H
#define SIMCLR_SCHEDULE_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define SC_SCHED_FN __host__ __device__ __forceinline__
#else
#define SC_SCHED_FN static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sc_schedule {
    double peak_lr;
    int64_t warmup_steps;
    int64_t total_steps;
} sc_schedule;

SC_SCHED_FN double sc_schedule_lr(const sc_schedule *s, int64_t step) {
    if (step < s->warmup_steps) return s->peak_lr * (double)step / (double)s->warmup_steps;
    if (step >= s->total_steps) return 0.0;
    double progress = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
    return s->peak_lr * 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
}

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_SCHEDULE_H */
