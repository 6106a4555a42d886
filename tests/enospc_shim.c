/*
 * enospc_shim.c - an LD_PRELOAD library for the full-disk test where mounting a small tmpfs is
 * not permitted: write() to a checkpoint's temporary file ("*.safetensors.tmp.*") succeeds for
 * the first SC_TEST_ENOSPC_AFTER bytes in total, then fails with ENOSPC, as a disk that fills
 * up would (a write that crosses the limit is cut short first). Other files are untouched.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long long budget = -1;

ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real_write)(int, const void *, size_t);
    if (!real_write) real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (budget < 0) {
        const char *e = getenv("SC_TEST_ENOSPC_AFTER");
        budget = e ? atoll(e) : LLONG_MAX;
    }
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len > 0) {
        target[len] = '\0';
        if (strstr(target, ".safetensors.tmp.")) {
            if (budget <= 0) {
                errno = ENOSPC;
                return -1;
            }
            if ((long long)n > budget) n = (size_t)budget;
            budget -= (long long)n;
        }
    }
    return real_write(fd, buf, n);
}
