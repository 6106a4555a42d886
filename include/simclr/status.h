/*
 * status.h - error reporting for the whole library.
 *
 * Two kinds of failure exist, and they are handled differently:
 *
 *  1. Recoverable, environmental failures (a missing file, a bad config key, a corrupt image,
 *     running out of memory while planning) return an `sc_status` code up the call chain.
 *     The function that detects the problem records a human-readable message with
 *     sc_errorf(); `main` prints sc_last_error() once and exits non-zero.
 *     Library code never calls exit().
 *
 *  2. Broken invariants (a shape mismatch between layers, a failed CUDA call) abort through
 *     the SC_CHECK / SC_ASSERT family, which prints the condition, file:line and the current
 *     rank/device/step context. These checks stay on in release builds. File contents are
 *     never validated with them: bad input is case 1.
 */
#ifndef SIMCLR_STATUS_H
#define SIMCLR_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sc_status {
    SC_OK = 0,
    SC_ERR_IO,          /* a file could not be opened, read or written */
    SC_ERR_FORMAT,      /* a file's contents are malformed */
    SC_ERR_CONFIG,      /* a config key or value is invalid */
    SC_ERR_ARG,         /* a bad command-line argument or API argument */
    SC_ERR_NOMEM,       /* host or device allocation failed */
    SC_ERR_UNSUPPORTED, /* a valid request this build or device cannot serve */
    SC_ERR_DEVICE,      /* a device (CUDA) error that is reported, not aborted on */
    SC_ERR_INTERRUPTED, /* stopped by a signal (Ctrl-C) */
    SC_ERR_DATA,        /* too many bad samples, or a dataset that cannot be used */
} sc_status;

/* Short name of a status code, e.g. "I/O error". */
const char *sc_status_name(sc_status s);

/* Record a formatted message for the calling thread and return `code`, so that a failing
 * function can write `return sc_errorf(SC_ERR_IO, "%s: %s", path, strerror(errno));`. */
sc_status sc_errorf(sc_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepend context to the calling thread's current message ("loading checkpoint: <old>"). */
sc_status sc_error_wrap(sc_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last message ("" when none). Valid until the next sc_errorf. */
const char *sc_last_error(void);

/* Clear the calling thread's message. */
void sc_error_clear(void);

/* Context printed by the abort macros: set by the trainer as it runs. -1 means unknown. */
void sc_abort_context_set(int rank, int device, long long step);

/* C and C++ (CUDA sources) spell "does not return" differently. */
#ifdef __cplusplus
#define SC_NORETURN [[noreturn]]
#else
#define SC_NORETURN _Noreturn
#endif

/* Print the message with file:line and context, then abort(). */
SC_NORETURN void sc_abort_impl(const char *file, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Always-on invariant checks. SC_CHECK takes a printf-style explanation. */
#define SC_ASSERT(cond)                                                                        \
    do {                                                                                       \
        if (!(cond)) sc_abort_impl(__FILE__, __LINE__, #cond, "assertion failed");            \
    } while (0)

#define SC_CHECK(cond, ...)                                                                    \
    do {                                                                                       \
        if (!(cond)) sc_abort_impl(__FILE__, __LINE__, #cond, __VA_ARGS__);                   \
    } while (0)

#define SC_FATAL(...) sc_abort_impl(__FILE__, __LINE__, "fatal", __VA_ARGS__)

/* Propagate a non-OK status to the caller. */
#define SC_TRY(expr)                                                                           \
    do {                                                                                       \
        sc_status sc_try_status_ = (expr);                                                     \
        if (sc_try_status_ != SC_OK) return sc_try_status_;                                    \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_STATUS_H */
