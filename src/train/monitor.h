/*
 * monitor.h - what the trainer reports besides its log lines (internal to src/train): the
 * TensorBoard event file (scalars, view-pair images, weight/gradient histograms, the embedding
 * projector), the kNN monitor every eval.every epochs, and the final evaluation's scalars.
 *
 * The trainer calls one hook per point of interest; each hook decides from the config whether
 * it has work. A failed TensorBoard write is logged once and turns TensorBoard off for the rest
 * of the run: it never stops training. Only rank 0 has a monitor.
 */
#ifndef SIMCLR_TRAIN_MONITOR_H
#define SIMCLR_TRAIN_MONITOR_H

#include <stdio.h>

#include "progress.h"
#include "simclr/data.h"
#include "simclr/eval.h"
#include "simclr/model.h"
#include "simclr/tensorboard.h"

typedef struct sc_monitor {
    const sc_config *cfg;
    char run_dir[1024];
    FILE *metrics;           /* the run's metrics.jsonl (not owned) */
    const sc_dataset *train; /* the training data (not owned) */
    sc_dataset test;         /* opened at the first kNN evaluation or projector */
    int have_test;
    sc_augment_params aug;   /* the training views' parameters (to undo normalisation) */
    sc_tb_writer *tb;        /* NULL when TensorBoard is off */
} sc_monitor;

sc_status sc_monitor_open(sc_monitor *mon, const sc_config *cfg, const char *run_dir, const sc_dataset *train,
                          const sc_augment_params *aug, FILE *metrics);
void sc_monitor_close(sc_monitor *mon);

/* The input x [2B, S, S, C] (on backend be) of step `step` (1-based): the grid of its view
 * pairs, at the first step and every tensorboard.image_every steps (downloads those rows). */
void sc_monitor_views(sc_monitor *mon, int64_t step, sc_backend *be, const sc_tensor *x);
/* After step v->step: its scalars when `logged` (v holds the logged window), the weight and
 * gradient histograms every tensorboard.histogram_every steps. */
void sc_monitor_step(sc_monitor *mon, sc_model *m, const sc_progress_values *v, int logged);
/* After epoch `epoch` (1-based count of finished epochs) at step `step`: the kNN monitor
 * every eval.every epochs (a metrics.jsonl record and TensorBoard scalars). */
sc_status sc_monitor_epoch_end(sc_monitor *mon, sc_model *m, int64_t epoch, int64_t step);
/* After the final evaluation: its scalars, and the embedding projector of the encoder. */
void sc_monitor_final(sc_monitor *mon, sc_model *m, int64_t step, const sc_probe_report *p);

#endif /* SIMCLR_TRAIN_MONITOR_H */
