/*
 * progress.h - what the user sees while training runs.
 *
 * On a terminal: one tqdm-style line on stderr, redrawn at most 10 times a second:
 *   train  42%|████▏     | 412/980 [01:23<01:55, 310 img/s] loss 5.123 acc 0.431 lr 0.512 wait 3%
 * Otherwise (a log file, a batch job): a plain log line every `log_every` steps.
 */
#ifndef SIMCLR_TRAIN_PROGRESS_H
#define SIMCLR_TRAIN_PROGRESS_H

#include <stdint.h>

typedef struct sc_progress {
    int tty;
    int log_every;
    int64_t total;
    int64_t first_step; /* step at sc_progress_init (a resumed run starts past 0): rates and ETA count from it */
    double start, last_draw;
} sc_progress;

typedef struct sc_progress_values {
    int64_t step, epoch;
    double loss, accuracy, lr, images_per_s, wait_fraction;
    double grad_norm; /* of the last step, at logging points */
} sc_progress_values;

/* mode: sc_progress_mode (auto: a line when stderr is a terminal). first_step: the step the
 * session starts at (0, or where a resumed run continues). */
void sc_progress_init(sc_progress *p, int mode, int64_t first_step, int64_t total_steps, int log_every);
void sc_progress_update(sc_progress *p, const sc_progress_values *v);
/* Leave the terminal line in place and move to a new line. */
void sc_progress_finish(sc_progress *p);
/* Seconds since an arbitrary fixed point (monotonic). */
double sc_now(void);
/* "MM:SS" or "H:MM:SS". */
const char *sc_format_duration(double seconds, char *buf, int cap);

#endif /* SIMCLR_TRAIN_PROGRESS_H */
