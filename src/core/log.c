/*
 * log.c - the levelled logger of include/simclr/log.h.
 *
 * A mutex keeps lines from different threads (loader workers, the trainer) whole.
 */
#include "simclr/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

sc_log_level sc_log_threshold = SC_LOG_INFO;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_rank = 0;
static FILE *log_file = NULL;
static sc_log_sink log_sink = NULL;
static void *log_sink_user = NULL;
static int log_progress_line = 0;

void sc_log_set_level(sc_log_level level) { sc_log_threshold = level; }

void sc_log_set_rank(int rank) { log_rank = rank; }

void sc_log_attach_file(FILE *f) {
    pthread_mutex_lock(&log_mu);
    log_file = f;
    pthread_mutex_unlock(&log_mu);
}

void sc_log_set_sink(sc_log_sink sink, void *user) {
    pthread_mutex_lock(&log_mu);
    log_sink = sink;
    log_sink_user = user;
    pthread_mutex_unlock(&log_mu);
}

void sc_log_set_progress_line(int active) {
    pthread_mutex_lock(&log_mu);
    log_progress_line = active;
    pthread_mutex_unlock(&log_mu);
}

int sc_log_level_parse(const char *name) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(name, names[i]) == 0) return i;
    return -1;
}

void sc_log_write(sc_log_level level, const char *fmt, ...) {
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};
    if (level < SC_LOG_WARN && log_rank != 0) return;

    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char stamp[32];
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tmv);

    char line[4200];
    snprintf(line, sizeof line, "%s [r%d] %s %s", stamp, log_rank, tags[level], msg);

    pthread_mutex_lock(&log_mu);
    if (log_sink) {
        log_sink(log_sink_user, level, line);
    } else {
        fprintf(stderr, "%s%s\n", log_progress_line ? "\r\033[K" : "", line);
        if (log_file) {
            fprintf(log_file, "%s\n", line);
            fflush(log_file);
        }
    }
    pthread_mutex_unlock(&log_mu);
}
