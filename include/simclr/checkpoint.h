/*
 * checkpoint.h - saving and restoring a training run's state as a safetensors file.
 *
 * A checkpoint holds every row of the parameter table under its own name (weights, biases,
 * BN gamma/beta and running statistics; convolution filters in simclr's KRSC layout), the
 * optimizer momentum of every trained row as "optimizer.momentum.<name>", and metadata:
 *   format "simclr-checkpoint", format_version, config (the resolved YAML), step, epoch,
 *   batch_in_epoch (the sampler position), seed, world_size, dtype, layout, git revision.
 * Files are written atomically (see safetensors.h), so a failed save never damages the
 * previous checkpoint. Loading checks that every tensor the model needs is present with the
 * right dtype and shape and names the first one that is not.
 */
#ifndef SIMCLR_CHECKPOINT_H
#define SIMCLR_CHECKPOINT_H

#include <stdint.h>

#include "simclr/config.h"
#include "simclr/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SC_CHECKPOINT_FORMAT "simclr-checkpoint"
#define SC_CHECKPOINT_VERSION 1

/* Where a run stands: what a resume needs besides the weights. */
typedef struct sc_train_state {
    int64_t step;           /* optimizer steps completed */
    int64_t epoch;          /* current epoch */
    int64_t batch_in_epoch; /* batches of `epoch` already consumed */
} sc_train_state;

sc_status sc_checkpoint_save(const char *path, sc_model *m, const sc_config *cfg, const sc_train_state *ts);

/* Load weights, BN statistics and optimizer state into `m` (built with the same
 * architecture). ts and config_yaml may be NULL; *config_yaml is malloc'ed. */
sc_status sc_checkpoint_load(const char *path, sc_model *m, sc_train_state *ts, char **config_yaml);

/* Load only the encoder rows (SC_PARAM_ENCODER: weights and BN statistics) into `m`, whose
 * head may differ (fine-tuning puts a classifier there); other rows and the optimizer state
 * are left as they are. */
sc_status sc_checkpoint_load_encoder(const char *path, sc_model *m);

/* Only the resolved config of a checkpoint (to rebuild the model before loading). */
sc_status sc_checkpoint_read_config(const char *path, char **config_yaml);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_CHECKPOINT_H */
