/*
 * cpu_backend.c - the CPU reference backend: host memory and the op table.
 *
 * Memory is ordinary aligned host memory; upload/download are memcpy. There are no events:
 * every call has finished its work when it returns.
 *
 * Threads: the ops parallelise with OpenMP (`num_threads(be->threads)` on each loop) over
 * blocks whose boundaries are constants, never derived from the thread count, and call
 * OpenBLAS single-threaded inside each block. A block then computes the same bits whichever
 * thread runs it, so results are identical for any number of threads. OpenBLAS's own thread
 * pool is therefore switched off: it would fight the OpenMP threads for the cores (measured
 * about 2x slower for the small-channel convolutions) and must not be entered from several
 * OpenMP threads at once.
 */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backend_internal.h"
#include "cpu_ops.h"
#include "simclr/arena.h"

static void *cpu_alloc(sc_backend *be, size_t bytes) {
    (void)be;
    size_t rounded = (bytes + SC_ARENA_ALIGN - 1) / SC_ARENA_ALIGN * SC_ARENA_ALIGN;
    return aligned_alloc(SC_ARENA_ALIGN, rounded ? rounded : SC_ARENA_ALIGN);
}

static void cpu_free(sc_backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static void cpu_memcpy(sc_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes && dst != src) memmove(dst, src, bytes);
}

static void cpu_zero(sc_backend *be, void *dst, size_t bytes) {
    (void)be;
    if (bytes) memset(dst, 0, bytes);
}

static void cpu_synchronize(sc_backend *be) { (void)be; }

static const sc_backend_ops cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .zero = cpu_zero,
    .synchronize = cpu_synchronize,
    .conv2d_workspace = sc_cpu_conv2d_workspace,
    .conv2d_fwd = sc_cpu_conv2d_fwd,
    .conv2d_bwd_data = sc_cpu_conv2d_bwd_data,
    .conv2d_bwd_filter = sc_cpu_conv2d_bwd_filter,
    .bn_fwd_train = sc_cpu_bn_fwd_train,
    .bn_fwd_eval = sc_cpu_bn_fwd_eval,
    .bn_bwd = sc_cpu_bn_bwd,
    .bn_sums = sc_cpu_bn_sums,
    .bn_fwd_from_sums = sc_cpu_bn_fwd_from_sums,
    .bn_bwd_from_sums = sc_cpu_bn_bwd_from_sums,
    .relu_fwd = sc_cpu_relu_fwd,
    .relu_bwd = sc_cpu_relu_bwd,
    .add = sc_cpu_add,
    .maxpool_fwd = sc_cpu_maxpool_fwd,
    .maxpool_bwd = sc_cpu_maxpool_bwd,
    .avgpool_fwd = sc_cpu_avgpool_fwd,
    .avgpool_bwd = sc_cpu_avgpool_bwd,
    .linear_fwd = sc_cpu_linear_fwd,
    .linear_bwd = sc_cpu_linear_bwd,
    .l2norm_fwd = sc_cpu_l2norm_fwd,
    .l2norm_bwd = sc_cpu_l2norm_bwd,
    .contrastive_workspace = sc_cpu_contrastive_workspace,
    .contrastive = sc_cpu_contrastive,
    .optim_step = sc_cpu_optim_step,
    .softmax_xent = sc_cpu_softmax_xent,
    .knn_scores = sc_cpu_knn_scores,
    .host_alloc = sc_cpu_host_alloc,
    .host_free = sc_cpu_host_free,
    .upload_async = sc_cpu_upload_async,
    .augment_workspace = sc_cpu_augment_workspace,
    .augment_crops = sc_cpu_augment_crops,
};

sc_status sc_cpu_backend_create(const sc_backend_options *opt, sc_backend **out) {
    sc_backend *be = calloc(1, sizeof *be);
    if (!be) return sc_errorf(SC_ERR_NOMEM, "cannot allocate the CPU backend");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    be->ops = &cpu_ops;
    be->kind = SC_DEVICE_CPU;
    be->device = -1;
    be->threads = opt->threads > 0 ? opt->threads : (int)(cores > 0 ? cores : 1);
    be->deterministic = 1;
    openblas_set_num_threads(1);
    omp_set_num_threads(be->threads);
    *out = be;
    return SC_OK;
}

void sc_cpu_backend_destroy(sc_backend *be) { free(be); }
