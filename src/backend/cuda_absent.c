/*
 * cuda_absent.c - stands in for src/backend/cuda/ in a build without the CUDA toolkit.
 *
 * Such a binary reports zero GPUs, describes itself as CPU-only in `simclr info`, and gives
 * a clear error if a GPU is requested anyway.
 */
#include <stdio.h>

#include "backend_internal.h"

int sc_cuda_compiled(void) { return 0; }

int sc_cuda_count_devices(void) { return 0; }

int sc_cuda_backend_ready(void) { return 0; }

const sc_backend_ops *sc_cuda_ops_table(void) { return NULL; }

void sc_cuda_describe(char *buf, size_t cap) {
    snprintf(buf, cap, "CUDA: not compiled in (this build found no CUDA toolkit)\n");
}

sc_status sc_cuda_backend_create(int ordinal, const sc_backend_options *opt, sc_backend **out) {
    (void)ordinal;
    (void)opt;
    *out = NULL;
    return sc_errorf(SC_ERR_UNSUPPORTED, "this binary was built without CUDA support");
}

void sc_cuda_backend_destroy(sc_backend *be) { (void)be; }
