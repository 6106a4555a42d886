/*
 * backend_internal.h - what backend.c needs from each backend implementation.
 *
 * The CPU backend is always built. The CUDA backend is built when the toolkit is found;
 * otherwise src/backend/cuda_absent.c provides the same functions for a machine with no GPU
 * support (zero devices, a clear error when one is requested).
 */
#ifndef SIMCLR_BACKEND_INTERNAL_H
#define SIMCLR_BACKEND_INTERNAL_H

#include "simclr/backend.h"

sc_status sc_cpu_backend_create(const sc_backend_options *opt, sc_backend **out);
void sc_cpu_backend_destroy(sc_backend *be);

/* 1 when this binary was compiled with CUDA support. */
int sc_cuda_compiled(void);
int sc_cuda_count_devices(void);
/* 1 when the CUDA backend can train (its op table is complete); `auto` uses it only then. */
int sc_cuda_backend_ready(void);
void sc_cuda_describe(char *buf, size_t cap);
/* The CUDA backend's op table, readable without a GPU (tests check that it is complete);
 * NULL in a build without CUDA. */
const sc_backend_ops *sc_cuda_ops_table(void);
sc_status sc_cuda_backend_create(int ordinal, const sc_backend_options *opt, sc_backend **out);
void sc_cuda_backend_destroy(sc_backend *be);

#endif /* SIMCLR_BACKEND_INTERNAL_H */
