/*
 * status.c - per-thread error messages and the abort path (see include/simclr/status.h).
 *
 * Messages live in a thread-local buffer so that loader threads and the trainer can fail
 * independently without locking. The abort context (rank, device, step) is process-wide
 * and written only by the thread that runs the training loop.
 */
#include "simclr/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_ERRMSG_CAP 2048

static _Thread_local char tls_msg[SC_ERRMSG_CAP];

static struct {
    int rank, device;
    long long step;
} abort_ctx = {-1, -1, -1};

const char *sc_status_name(sc_status s) {
    switch (s) {
    case SC_OK: return "ok";
    case SC_ERR_IO: return "I/O error";
    case SC_ERR_FORMAT: return "format error";
    case SC_ERR_CONFIG: return "config error";
    case SC_ERR_ARG: return "invalid argument";
    case SC_ERR_NOMEM: return "out of memory";
    case SC_ERR_UNSUPPORTED: return "unsupported";
    case SC_ERR_DEVICE: return "device error";
    case SC_ERR_INTERRUPTED: return "interrupted";
    case SC_ERR_DATA: return "data error";
    }
    return "unknown error";
}

sc_status sc_errorf(sc_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
    va_end(ap);
    return code;
}

sc_status sc_error_wrap(sc_status code, const char *fmt, ...) {
    char old[SC_ERRMSG_CAP];
    memcpy(old, tls_msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : ((size_t)n < sizeof tls_msg ? (size_t)n : sizeof tls_msg - 1);
    if (old[0] && used + 2 < sizeof tls_msg) {
        size_t room = sizeof tls_msg - used - 1;
        size_t len = strlen(old) + 2;
        if (len > room) len = room;
        memcpy(tls_msg + used, ": ", 2);
        memcpy(tls_msg + used + 2, old, len - 2);
        tls_msg[used + len] = '\0';
    }
    return code;
}

const char *sc_last_error(void) { return tls_msg; }

void sc_error_clear(void) { tls_msg[0] = '\0'; }

void sc_abort_context_set(int rank, int device, long long step) {
    abort_ctx.rank = rank;
    abort_ctx.device = device;
    abort_ctx.step = step;
}

_Noreturn void sc_abort_impl(const char *file, int line, const char *what, const char *fmt, ...) {
    char msg[SC_ERRMSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "\nsimclr: internal error at %s:%d: %s (%s)", file, line, msg, what);
    if (abort_ctx.rank >= 0) fprintf(stderr, " [rank %d]", abort_ctx.rank);
    if (abort_ctx.device >= 0) fprintf(stderr, " [device %d]", abort_ctx.device);
    if (abort_ctx.step >= 0) fprintf(stderr, " [step %lld]", abort_ctx.step);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}
