/*
 * progress.c - the training progress line and periodic log lines (see progress.h).
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "simclr/config.h"
#include "simclr/log.h"

double sc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *sc_format_duration(double seconds, char *buf, int cap) {
    if (!(seconds >= 0) || seconds > 1e8) {
        snprintf(buf, (size_t)cap, "?");
        return buf;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, (size_t)cap, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(buf, (size_t)cap, "%02ld:%02ld", s / 60, s % 60);
    return buf;
}

void sc_progress_init(sc_progress *p, int mode, int64_t first_step, int64_t total_steps, int log_every) {
    memset(p, 0, sizeof *p);
    p->first_step = first_step;
    p->tty = mode == SC_PROGRESS_ALWAYS || (mode == SC_PROGRESS_AUTO && isatty(STDERR_FILENO));
    p->total = total_steps;
    p->log_every = log_every > 0 ? log_every : 1;
    p->start = sc_now();
    p->last_draw = -1.0;
    sc_log_set_progress_line(p->tty);
}

static void draw_bar(char *out, double frac) {
    static const char *eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    const int width = 10;
    int cells = (int)(frac * width * 8);
    out[0] = '\0';
    for (int i = 0; i < width; i++) {
        int fill = cells - i * 8;
        strcat(out, fill >= 8 ? "█" : fill > 0 ? eighths[fill] : " ");
    }
}

void sc_progress_update(sc_progress *p, const sc_progress_values *v) {
    double now = sc_now(), elapsed = now - p->start;
    double frac = p->total > 0 ? (double)v->step / (double)p->total : 0.0;
    int64_t done = v->step - p->first_step;
    double eta = done > 0 ? elapsed * (double)(p->total - v->step) / (double)done : -1.0;
    char el[48], rem[48];
    sc_format_duration(elapsed, el, sizeof el);
    sc_format_duration(eta, rem, sizeof rem);
    if (p->tty) {
        if (v->step < p->total && p->last_draw >= 0 && now - p->last_draw < 0.1) return;
        p->last_draw = now;
        char bar[64];
        draw_bar(bar, frac);
        fprintf(stderr, "\r\033[Ktrain %3.0f%%|%s| %lld/%lld [%s<%s, %.0f img/s] loss %.4f acc %.3f lr %.4g wait %.0f%%",
                100.0 * frac, bar, (long long)v->step, (long long)p->total, el, rem, v->images_per_s, v->loss,
                v->accuracy, v->lr, 100.0 * v->wait_fraction);
        fflush(stderr);
    } else if (v->step % p->log_every == 0 || v->step == p->total) {
        SC_INFO("step %lld/%lld (%.0f%%) epoch %lld  loss %.4f  acc %.3f  lr %.4g  %.0f img/s  data-wait %.0f%%  elapsed %s  eta %s",
                (long long)v->step, (long long)p->total, 100.0 * frac, (long long)v->epoch, v->loss, v->accuracy,
                v->lr, v->images_per_s, 100.0 * v->wait_fraction, el, rem);
    }
}

void sc_progress_finish(sc_progress *p) {
    if (p->tty) {
        fputc('\n', stderr);
        fflush(stderr);
    }
    sc_log_set_progress_line(0);
}
