/*
 * checkpoint.h - saving, finding, validating and restoring a training run's state.
 *
 * A checkpoint is one safetensors file holding every row of the parameter table under its own
 * name (weights, biases, BN gamma/beta and running statistics; convolution filters in simclr's
 * KRSC layout), the optimizer momentum of every trained row as "optimizer.momentum.<name>",
 * and string metadata:
 *   format "simclr-checkpoint", format_version, config (the resolved YAML), step, epoch,
 *   batch_in_epoch (the sampler position), seed, rng (how every random stream is keyed),
 *   world_size, in_channels, image_size, the open metrics window (window_steps, window_loss,
 *   window_acc as exact hex floats), elapsed_s, dtype, layout, git_sha, versions (simclr and
 *   library versions), data_crc32 (CRC-32 of the whole data section) and meta_crc32 (CRC-32
 *   of the other metadata pairs sorted by key), so corrupted values are detected, not loaded.
 * Because every random stream is counter-based (Philox keyed by seed, epoch, sample, view,
 * purpose), step + sampler position + seed + weights + momentum are the complete state: a run
 * resumed from a checkpoint continues bit for bit as if it had never stopped.
 *
 * Files are written atomically (temp file in the same directory, fsync, rename, directory
 * fsync; see safetensors.h), so a crash or a full disk never damages a committed checkpoint;
 * a crash can leave "<name>.tmp.<pid>" files, removed by sc_checkpoint_clean_temp at start-up.
 * Loading checks the safetensors layout, the format and version, both CRCs and that every
 * tensor the model needs is present with the right dtype and shape, naming the first defect.
 *
 * A run directory keeps checkpoints/step_<N>.safetensors (pruned to the newest K plus every
 * multiple of M steps) and checkpoints/final.safetensors.
 */
#ifndef SIMCLR_CHECKPOINT_H
#define SIMCLR_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "simclr/config.h"
#include "simclr/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SC_CHECKPOINT_FORMAT "simclr-checkpoint"
#define SC_CHECKPOINT_VERSION 2 /* this build writes 2 and reads 1 (no CRC, no window) and 2 */
#define SC_CHECKPOINT_FINAL "final.safetensors"

/* Where a run stands: what a resume needs besides the weights and the momentum. */
typedef struct sc_train_state {
    int64_t step;           /* optimizer steps completed */
    int64_t epoch;          /* current epoch */
    int64_t batch_in_epoch; /* batches of `epoch` already consumed */
    /* the metrics window open at the checkpoint: steps since the last metrics record and the
     * sums of their losses and contrastive accuracies (so resumed records equal unbroken ones) */
    int64_t window_steps;
    double window_loss, window_acc;
    double elapsed_s;       /* training seconds before this point, summed over resumed sessions */
    int in_channels;        /* input of the model (from conv1.weight when loading) */
    int image_size;         /* side of the views it trains on (0 when unknown: version 1) */
    int64_t skipped_steps;  /* optimizer steps skipped for a non-finite gradient (AdamW's bias
                             * correction counts the applied ones) */
} sc_train_state;

/* moment2 (may be NULL): AdamW's second moment, a flat buffer laid out like the parameters. */
sc_status sc_checkpoint_save(const char *path, sc_model *m, const sc_tensor *moment2, const sc_config *cfg,
                             const sc_train_state *ts);

/* Load weights, BN statistics and optimizer state into `m` (built with the same
 * architecture), and AdamW's second moment into moment2 when given (zero, with a warning,
 * when the file has none). moment2, ts and config_yaml may be NULL; *config_yaml is malloc'ed. */
sc_status sc_checkpoint_load(const char *path, sc_model *m, sc_tensor *moment2, sc_train_state *ts,
                             char **config_yaml);

/* Load only the encoder rows (SC_PARAM_ENCODER: weights and BN statistics) into `m`, whose
 * head may differ (fine-tuning puts a classifier there); other rows and the optimizer state
 * are left as they are. */
sc_status sc_checkpoint_load_encoder(const char *path, sc_model *m);

/* Only the resolved config of a checkpoint (to rebuild the model before loading). */
sc_status sc_checkpoint_read_config(const char *path, char **config_yaml);

/* Full validation without a model: safetensors layout, format, version, CRC, metadata.
 * Fills ts (may be NULL; in_channels from conv1.weight). */
sc_status sc_checkpoint_verify(const char *path, sc_train_state *ts);

/* The newest valid checkpoint of a run directory (<run_dir>/checkpoints/step_<N>.safetensors
 * and final.safetensors, ordered by step; final wins a tie). A candidate that fails
 * validation is skipped with a warning naming its defect. *candidates receives the number of
 * checkpoint files seen: with 0 the status is SC_ERR_IO "no checkpoint", with some but none
 * valid it is SC_ERR_FORMAT. `ts` (may be NULL) receives the chosen checkpoint's state. */
sc_status sc_checkpoint_find_latest(const char *run_dir, char *out, size_t cap, int *candidates,
                                    sc_train_state *ts);

/* Remove the temporary files a killed save leaves in `dir` ("*.tmp.<pid>" and "*.tmp").
 * Only call it while holding the run's lock. Returns the number removed (< 0 on error). */
int sc_checkpoint_clean_temp(const char *dir);

/* Delete step_<N>.safetensors files of `ckpt_dir` except the newest keep_last and those whose
 * step is a multiple of keep_every (> 0). final.safetensors is never deleted. Returns the
 * number deleted. */
int sc_checkpoint_prune(const char *ckpt_dir, int keep_last, int64_t keep_every);

/* Move the checkpoints of ckpt_dir newer than `step` into ckpt_dir/superseded/ (a resume from
 * an older checkpoint starts another timeline; they must not be taken for its newest state).
 * Returns the number moved, or -1 with sc_last_error set. */
int sc_checkpoint_set_aside(const char *ckpt_dir, int64_t step);

/* Whether a run configured by `now` may continue a checkpoint written with `saved`.
 * Keys that define the model or its input (model.* except init_from, data.dataset,
 * data.channels, data.image_size) must be equal: otherwise SC_ERR_CONFIG naming every
 * differing key with both values. Keys that change the training trajectory (optim.*, loss.*,
 * augment.*, run.seed, data.mean/std, train.batch_size/epochs/warmup_epochs) are allowed
 * with one warning each. Other keys (paths, workers, logging, max_steps, checkpointing,
 * evaluation) change freely. `what` names the checkpoint in messages. */
sc_status sc_checkpoint_check_config(const char *what, const sc_config *saved, const sc_config *now);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_CHECKPOINT_H */
