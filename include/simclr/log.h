/*
 * log.h - levelled logging that costs nothing when a level is off.
 *
 * The level test happens in the macro, before any argument is evaluated. Lines carry the
 * wall-clock time, the rank and the level: "2026-11-23 10:00:00 [r0] INFO  message".
 * Only rank 0 prints INFO and DEBUG; warnings and errors print on every rank.
 * Lines go to stderr and, when a file is attached (the run's log.txt), to that file too.
 * A custom sink replaces both, which lets tests capture what was logged.
 */
#ifndef SIMCLR_LOG_H
#define SIMCLR_LOG_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sc_log_level {
    SC_LOG_DEBUG = 0,
    SC_LOG_INFO = 1,
    SC_LOG_WARN = 2,
    SC_LOG_ERROR = 3,
    SC_LOG_OFF = 4,
} sc_log_level;

typedef void (*sc_log_sink)(void *user, sc_log_level level, const char *line);

/* Current threshold; read by the macros below. */
extern sc_log_level sc_log_threshold;

void sc_log_set_level(sc_log_level level);
void sc_log_set_rank(int rank);
/* Also append every line to `f` (not owned; NULL detaches). */
void sc_log_attach_file(FILE *f);
/* Replace stderr+file output by `sink` (NULL restores the default). */
void sc_log_set_sink(sc_log_sink sink, void *user);
/* While a progress line is drawn on the terminal, clear it before printing a log line. */
void sc_log_set_progress_line(int active);
/* Parse "debug|info|warn|error|off"; returns -1 on an unknown name. */
int sc_log_level_parse(const char *name);

void sc_log_write(sc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SC_LOG(level, ...)                                                                     \
    do {                                                                                       \
        if ((level) >= sc_log_threshold) sc_log_write((level), __VA_ARGS__);                   \
    } while (0)
#define SC_DEBUG(...) SC_LOG(SC_LOG_DEBUG, __VA_ARGS__)
#define SC_INFO(...) SC_LOG(SC_LOG_INFO, __VA_ARGS__)
#define SC_WARN(...) SC_LOG(SC_LOG_WARN, __VA_ARGS__)
#define SC_ERROR(...) SC_LOG(SC_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_LOG_H */
