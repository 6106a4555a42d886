/*
 * cuda_backend.c - creation of the CUDA backend.
 *
 * This build has CUDA device discovery (cuda_context.c) and the first device kernels
 * (kernels/), but not yet the CUDA op table (cuDNN convolutions, cuBLAS linear layers, BN,
 * loss and optimizer kernels). Until it exists, sc_cuda_backend_ready() is 0: `--device auto`
 * then trains on the CPU, and an explicit `--device cuda` fails with this explanation instead
 * of running partially.
 */
#include "../backend_internal.h"

int sc_cuda_backend_ready(void) { return 0; }

sc_status sc_cuda_backend_create(int ordinal, const sc_backend_options *opt, sc_backend **out) {
    (void)opt;
    *out = NULL;
    return sc_errorf(SC_ERR_UNSUPPORTED,
                     "GPU %d is visible, but this version of simclr has no CUDA training backend yet "
                     "(its op table is issue #4); use --device cpu, or --device auto to fall back to the CPU",
                     ordinal);
}

void sc_cuda_backend_destroy(sc_backend *be) { (void)be; }
