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
 *   run_info.txt   version, git revision, device and library versions (one section per session)
 *   log.txt        every log line
 *   metrics.jsonl  one JSON object per logged step, then the probe results
 *   checkpoints/   step_<N>.safetensors every train.checkpoint_every steps (the newest
 *                  checkpoint.keep_last plus multiples of checkpoint.keep_every are kept),
 *                  final.safetensors; superseded/ holds checkpoints set aside by a resume from
 *                  an older one
 *   .lock          held (flock) by the process training in the directory
 *
 * Resume: sc_resume_locate finds the run directory and checkpoint; sc_train_resume continues
 * there: same directory, same metrics.jsonl (records past the checkpoint are dropped, then
 * appended to), log.txt appended, step, sampler position, weights, BN statistics, momentum
 * and the open metrics window restored, so the result is bit-identical to a run that never
 * stopped (on the CPU path; per binary, device and world size on GPUs).
 */
#ifndef SIMCLR_TRAIN_H
#define SIMCLR_TRAIN_H

#include <stdint.h>

#include "simclr/backend.h"
#include "simclr/config.h"
#include "simclr/dist.h"
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
    int64_t resumed_from;           /* step the run continued from (0 for a new run) */
    int already_complete;           /* resumed from a final checkpoint with nothing left to train */
    int probed;
    sc_probe_report probe;
} sc_train_result;

/* The backend options a config asks for (threads, and the run.* GPU switches). */
sc_backend_options sc_train_backend_options(const sc_config *cfg);

/* Run a whole pretraining job described by cfg, in a new run directory. */
sc_status sc_train(const sc_config *cfg, sc_train_result *result);

/* Where a resumed run continues. */
typedef struct sc_resume_point {
    char run_dir[1024];    /* the run directory; "" = a new one, as sc_train makes */
    char checkpoint[1100]; /* the checkpoint to continue; "" = none yet: start at step 0 in run_dir */
} sc_resume_point;

/* Resolve a --resume argument:
 *   "auto"      <run.dir>/<run.name> exactly (no -k suffix): its newest valid checkpoint, falling
 *               back past corrupt ones with a warning; when the directory or its checkpoints do
 *               not exist yet, checkpoint = "" (a new run starts there: the same command works
 *               for the first start and every restart of a preemptible job); when checkpoint
 *               files exist but none is valid, an error.
 *   a run dir   its newest valid checkpoint (an error when it has none);
 *   a file      that checkpoint (validated); the run continues in the run directory that holds
 *               it (<run>/checkpoints/<file>), or in a new run directory when it lies elsewhere. */
sc_status sc_resume_locate(const sc_config *cfg, const char *resume, sc_resume_point *rp);

/* Continue (or start) the run at rp. The config must keep every key that defines the model
 * (sc_checkpoint_check_config); schedule changes are warned about. A run resumed from its
 * final checkpoint with nothing left to train returns SC_OK with already_complete set. */
sc_status sc_train_resume(const sc_config *cfg, const sc_resume_point *rp, sc_train_result *result);

/* sc_train (rp NULL) or sc_train_resume as one rank of a data-parallel job over `comm` (a
 * TCP communicator of every rank; NULL or a world of 1: a single process). Every rank calls it
 * with the same config; train.batch_size is the global batch. Only rank 0 writes the run
 * directory and fills result->run_dir and result->checkpoint. A failure on one rank aborts
 * the communicator, so the others fail at once with a message naming that rank. */
sc_status sc_train_run(const sc_config *cfg, const sc_resume_point *rp, sc_comm *comm, sc_train_result *result);

/* Ask a running sc_train to stop at the next step boundary (async-signal-safe). It then saves
 * a checkpoint (unless one of this step exists) and returns SC_ERR_INTERRUPTED. A request made
 * before training starts is honoured at the first step boundary; it is consumed when sc_train
 * returns. */
void sc_train_request_stop(void);

/* Create <dir>/<name>, or <dir>/<name>-<k> for the first free k >= 2; writes the path. */
sc_status sc_run_dir_create(const char *dir, const char *name, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_TRAIN_H */
