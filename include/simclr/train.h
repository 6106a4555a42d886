/*
 * train.h - the SimCLR training loop and its run directory.
 *
 * One step: a batch of 2B augmented views (two per image) -> encoder -> head -> L2 norm ->
 * NT-Xent -> backward -> optimizer (LARS or SGD) at the scheduled learning rate. The trainer
 * owns the loop; the modules below it (data, model, loss, optim) know nothing of it. On a
 * backend with step graphs (CUDA) and run.cuda_graph set, the device part of the step is
 * recorded once (after one ordinary step) and replayed every step after that.
 *
 * Run directory <run.dir>/<run.name> (a suffix -2, -3, ... is added when it exists):
 *   config.yaml    the resolved configuration
 *   run_info.txt   version, git revision, device and library versions
 *   log.txt        every log line
 *   metrics.jsonl  one JSON object per logged step, then the probe results
 *   checkpoints/   step_<N>.safetensors every train.checkpoint_every steps, final.safetensors
 */
#ifndef SIMCLR_TRAIN_H
#define SIMCLR_TRAIN_H

#include <stdint.h>

#include "simclr/backend.h"
#include "simclr/config.h"
#include "simclr/eval.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sc_train_result {
    char run_dir[1024];
    char checkpoint[1100]; /* the last checkpoint written */
    int64_t steps;
    double first_loss, final_loss;  /* mean loss of the first and last logged windows */
    double seconds;
    double images_per_second;
    int interrupted;                /* stopped by sc_train_request_stop() */
    int probed;
    sc_probe_report probe;
} sc_train_result;

/* The backend options a config asks for (threads, and the run.* GPU switches). */
sc_backend_options sc_train_backend_options(const sc_config *cfg);

/* Run a whole pretraining job described by cfg. */
sc_status sc_train(const sc_config *cfg, sc_train_result *result);

/* Ask a running sc_train to stop at the next step boundary (async-signal-safe). It then saves
 * a checkpoint and returns SC_ERR_INTERRUPTED. */
void sc_train_request_stop(void);

/* Create <dir>/<name>, or <dir>/<name>-<k> for the first free k >= 2; writes the path. */
sc_status sc_run_dir_create(const char *dir, const char *name, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_TRAIN_H */
