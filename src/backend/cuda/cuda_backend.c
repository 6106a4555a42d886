/*
 * cuda_backend.c - the CUDA backend: creation, device memory, the shared op scratch, step-graph
 * capture and the op table (see cuda_internal.h for how the files divide the work).
 *
 * Creation binds the calling thread to the GPU, creates one non-blocking stream, a cuDNN
 * handle and a cuBLASLt handle on it, a private cuBLASLt workspace and the plan caches.
 * Environmental failures there (no usable driver, missing cuDNN sub-libraries, a GPU this
 * build has no code for) come back as an sc_status with the library's message.
 *
 * Memory: alloc/free are cudaMalloc/cudaFree (256-byte aligned), called at planning time
 * only. upload and download are synchronous for the host (the host buffer may be reused as
 * soon as they return); copy and zero are asynchronous on the stream. Ops take temporary
 * memory from one scratch block that grows to the largest request seen, so after the first
 * step nothing is allocated; a capture that would need to grow it aborts with an explanation.
 *
 * Step graphs: capture_begin starts a thread-local stream capture (any forbidden call on this
 * thread then fails loudly instead of being recorded), capture_end instantiates the CUDA graph
 * and graph_launch replays it on the stream.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "simclr/log.h"

int sc_cuda_backend_ready(void) { return 1; }

void cuda_require_f32(const char *op, const sc_tensor *a, const sc_tensor *b, const sc_tensor *c) {
    const sc_tensor *t[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        SC_CHECK(!t[i] || t[i]->dtype == SC_F32,
                 "CUDA %s: tensors must be F32, got %s (F64 runs on the CPU backend; bf16 compute is a later switch)",
                 op, sc_dtype_name(t[i]->dtype));
}

void cuda_forbid_capture(const cuda_impl *im, const char *what) {
    SC_CHECK(!im->capturing,
             "%s inside a step-graph capture: run the step once outside the capture first (plans, scratch "
             "memory and autotuning are set up on first use), and keep host transfers out of it",
             what);
}

void *cuda_scratch(cuda_impl *im, size_t bytes, const char *what) {
    if (bytes <= im->scratch_bytes) return im->scratch;
    cuda_forbid_capture(im, "growing the scratch memory");
    size_t grow = bytes + bytes / 4;
    grow = (grow + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1); /* whole MiB, 25 % headroom */
    SC_CUDA_CHECK(cudaStreamSynchronize(im->stream));                 /* queued ops may still use it */
    if (im->scratch) SC_CUDA_CHECK(cudaFree(im->scratch));
    im->scratch = NULL;
    im->scratch_bytes = 0;
    cudaError_t err = cudaMalloc(&im->scratch, grow);
    if (err != cudaSuccess)
        SC_FATAL("GPU %d: cannot allocate %.1f MiB of scratch memory for %s: %s", im->device,
                 (double)grow / 1048576.0, what, cudaGetErrorString(err));
    im->scratch_bytes = grow;
    im->scratch_generation++;
    return im->scratch;
}

/* ---- memory ------------------------------------------------------------------------------- */

static void *cuda_alloc(sc_backend *be, size_t bytes) {
    cuda_forbid_capture(cuda_of(be), "allocating device memory");
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        cudaGetLastError(); /* an out-of-memory error is reported by the caller, not sticky */
        return NULL;
    }
    return p;
}

static void cuda_free_mem(sc_backend *be, void *ptr) {
    cuda_forbid_capture(cuda_of(be), "freeing device memory");
    SC_CUDA_CHECK(cudaFree(ptr));
}

static void cuda_upload(sc_backend *be, void *dst, const void *host_src, size_t bytes) {
    cuda_impl *im = cuda_of(be);
    cuda_forbid_capture(im, "an upload from host memory");
    if (!bytes) return;
    SC_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, im->stream));
    SC_CUDA_CHECK(cudaStreamSynchronize(im->stream));
}

static void cuda_download(sc_backend *be, void *host_dst, const void *src, size_t bytes) {
    cuda_impl *im = cuda_of(be);
    cuda_forbid_capture(im, "a download to host memory");
    if (!bytes) return;
    SC_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, im->stream));
    SC_CUDA_CHECK(cudaStreamSynchronize(im->stream));
}

static void cuda_copy(sc_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src)
        SC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_of(be)->stream));
}

static void cuda_zero(sc_backend *be, void *dst, size_t bytes) {
    if (bytes) SC_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cuda_of(be)->stream));
}

static void cuda_synchronize(sc_backend *be) {
    cuda_impl *im = cuda_of(be);
    cuda_forbid_capture(im, "synchronize");
    SC_CUDA_CHECK(cudaStreamSynchronize(im->stream));
}

/* ---- step graphs -------------------------------------------------------------------------- */

static sc_status cuda_capture_begin(sc_backend *be) {
    cuda_impl *im = cuda_of(be);
    SC_CHECK(!im->capturing, "nested step-graph capture");
    cudaError_t err = cudaStreamBeginCapture(im->stream, cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess)
        return sc_errorf(SC_ERR_DEVICE, "GPU %d: cannot start a graph capture: %s", im->device,
                         cudaGetErrorString(err));
    im->capturing = 1;
    return SC_OK;
}

/* A recorded step: the instantiated graph and the scratch generation its kernels point into. */
typedef struct cuda_graph {
    cudaGraphExec_t exec;
    unsigned scratch_generation;
} cuda_graph;

static sc_status cuda_capture_end(sc_backend *be, void **out) {
    cuda_impl *im = cuda_of(be);
    SC_CHECK(im->capturing, "capture_end without capture_begin");
    *out = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t err = cudaStreamEndCapture(im->stream, &graph);
    im->capturing = 0;
    if (err != cudaSuccess) {
        cudaGetLastError();
        return sc_errorf(SC_ERR_DEVICE, "GPU %d: the step could not be captured as a CUDA graph: %s", im->device,
                         cudaGetErrorString(err));
    }
    cudaGraphExec_t exec = NULL;
    err = cudaGraphInstantiate(&exec, graph, 0);
    SC_CUDA_CHECK(cudaGraphDestroy(graph));
    if (err != cudaSuccess) {
        cudaGetLastError();
        return sc_errorf(SC_ERR_DEVICE, "GPU %d: the captured step graph cannot be instantiated: %s", im->device,
                         cudaGetErrorString(err));
    }
    cuda_graph *g = malloc(sizeof *g);
    if (!g) {
        SC_CUDA_CHECK(cudaGraphExecDestroy(exec));
        return sc_errorf(SC_ERR_NOMEM, "cannot allocate a step graph");
    }
    *g = (cuda_graph){.exec = exec, .scratch_generation = im->scratch_generation};
    *out = g;
    return SC_OK;
}

static void cuda_graph_launch(sc_backend *be, void *graph) {
    cuda_impl *im = cuda_of(be);
    cuda_graph *g = graph;
    SC_CHECK(g->scratch_generation == im->scratch_generation,
             "a step graph recorded before the scratch memory grew (an op outside it needed more) points at "
             "freed memory; record the step again");
    SC_CUDA_CHECK(cudaGraphLaunch(g->exec, im->stream));
}

static void cuda_graph_free(sc_backend *be, void *graph) {
    (void)be;
    cuda_graph *g = graph;
    if (!g) return;
    SC_CUDA_CHECK(cudaGraphExecDestroy(g->exec));
    free(g);
}

/* ---- the table ---------------------------------------------------------------------------- */

static const sc_backend_ops cuda_ops = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free_mem,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .zero = cuda_zero,
    .synchronize = cuda_synchronize,
    .conv2d_workspace = cuda_conv2d_workspace,
    .conv2d_fwd = cuda_conv2d_fwd,
    .conv2d_bwd_data = cuda_conv2d_bwd_data,
    .conv2d_bwd_filter = cuda_conv2d_bwd_filter,
    .bn_fwd_train = cuda_bn_fwd_train,
    .bn_fwd_eval = cuda_bn_fwd_eval,
    .bn_bwd = cuda_bn_bwd,
    .bn_sums = cuda_bn_sums,
    .bn_fwd_from_sums = cuda_bn_fwd_from_sums,
    .bn_bwd_from_sums = cuda_bn_bwd_from_sums,
    .bn_act_fwd_train = cuda_bn_act_fwd_train,
    .bn_act_fwd_eval = cuda_bn_act_fwd_eval,
    .bn_relu_bwd = cuda_bn_relu_bwd,
    .relu_fwd = cuda_relu_fwd,
    .relu_bwd = cuda_relu_bwd,
    .add = cuda_add,
    .maxpool_fwd = cuda_maxpool_fwd,
    .maxpool_bwd = cuda_maxpool_bwd,
    .avgpool_fwd = cuda_avgpool_fwd,
    .avgpool_bwd = cuda_avgpool_bwd,
    .linear_fwd = cuda_linear_fwd,
    .linear_bwd = cuda_linear_bwd,
    .l2norm_fwd = cuda_l2norm_fwd,
    .l2norm_bwd = cuda_l2norm_bwd,
    .contrastive_workspace = cuda_contrastive_workspace,
    .contrastive = cuda_contrastive,
    .optim_step = cuda_optim_step,
    .softmax_xent = cuda_softmax_xent,
    .knn_scores = cuda_knn_scores,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_sync = cuda_event_sync,
    .upload_async = cuda_upload_async,
    .augment_workspace = cuda_augment_workspace,
    .augment_crops = cuda_augment_crops,
};

const sc_backend_ops *sc_cuda_ops_table(void) { return &cuda_ops; }

/* ---- creation ----------------------------------------------------------------------------- */

static void impl_release(cuda_impl *im) {
    if (im->stream) SC_CUDA_CHECK(cudaStreamSynchronize(im->stream));
    cuda_conv_cache_free(im->conv); /* cuDNN descriptors before the handle */
    cuda_gemm_cache_free(im->gemm);
    sc_cuda_optim_plan_destroy(im->optim);
    if (im->scratch) SC_CUDA_CHECK(cudaFree(im->scratch));
    if (im->blas_ws) SC_CUDA_CHECK(cudaFree(im->blas_ws));
    if (im->lt) SC_CUBLAS_CHECK(cublasLtDestroy(im->lt));
    if (im->cudnn) SC_CUDNN_CHECK(cudnnDestroy(im->cudnn));
    if (im->copy_stream) SC_CUDA_CHECK(cudaStreamSynchronize(im->copy_stream));
    if (im->copy_stream) SC_CUDA_CHECK(cudaStreamDestroy(im->copy_stream));
    if (im->stream) SC_CUDA_CHECK(cudaStreamDestroy(im->stream));
    free(im);
}

/* Everything that can fail for environmental reasons, with the library's message. */
static sc_status impl_create(cuda_impl *im, int ordinal) {
    cudaError_t err = cudaSetDevice(ordinal);
    struct cudaDeviceProp prop;
    if (err == cudaSuccess) err = cudaGetDeviceProperties(&prop, ordinal);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return sc_errorf(SC_ERR_DEVICE, "GPU %d: cannot be used: %s", ordinal, cudaGetErrorString(err));
    }
    im->device = ordinal;
    im->sm_count = prop.multiProcessorCount;
    if ((err = sc_cuda_kernels_loadable()) != cudaSuccess) {
        cudaGetLastError();
        return sc_errorf(SC_ERR_UNSUPPORTED,
                         "GPU %d (%s, compute capability %d.%d) cannot run this build's kernels: %s; rebuild with "
                         "-DCMAKE_CUDA_ARCHITECTURES=%d%d",
                         ordinal, prop.name, prop.major, prop.minor, cudaGetErrorString(err), prop.major, prop.minor);
    }
    if ((err = cudaStreamCreateWithFlags(&im->copy_stream, cudaStreamNonBlocking)) != cudaSuccess) {
        im->copy_stream = NULL;
        return sc_errorf(SC_ERR_DEVICE, "GPU %d: cannot create the copy stream: %s", ordinal, cudaGetErrorString(err));
    }
    if ((err = cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking)) != cudaSuccess)
        return sc_errorf(SC_ERR_DEVICE, "GPU %d: cannot create a stream: %s", ordinal, cudaGetErrorString(err));
    cudnnStatus_t dst = cudnnCreate(&im->cudnn);
    if (dst != CUDNN_STATUS_SUCCESS) {
        im->cudnn = NULL;
        char detail[512];
        cudnnGetLastErrorString(detail, sizeof detail);
        return sc_errorf(SC_ERR_DEVICE, "GPU %d: cuDNN cannot start: %s (%s)", ordinal, cudnnGetErrorString(dst),
                         detail);
    }
    SC_CUDNN_CHECK(cudnnSetStream(im->cudnn, im->stream));
    cublasStatus_t bst = cublasLtCreate(&im->lt);
    if (bst != CUBLAS_STATUS_SUCCESS) {
        im->lt = NULL;
        return sc_errorf(SC_ERR_DEVICE, "GPU %d: cuBLASLt cannot start: %s", ordinal, cublasLtGetStatusString(bst));
    }
    if (cudaMalloc(&im->blas_ws, SC_CUDA_BLAS_WORKSPACE) != cudaSuccess) {
        cudaGetLastError();
        im->blas_ws = NULL;
        return sc_errorf(SC_ERR_NOMEM, "GPU %d: cannot allocate the cuBLASLt workspace", ordinal);
    }
    SC_TRY(cuda_conv_cache_create(&im->conv));
    return cuda_gemm_cache_create(&im->gemm);
}

sc_status sc_cuda_backend_create(int ordinal, const sc_backend_options *opt, sc_backend **out) {
    *out = NULL;
    sc_backend *be = calloc(1, sizeof *be);
    cuda_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return sc_errorf(SC_ERR_NOMEM, "cannot allocate the CUDA backend");
    }
    sc_status st = impl_create(im, ordinal);
    if (st != SC_OK) {
        impl_release(im);
        free(be);
        return st;
    }
    be->ops = &cuda_ops;
    be->kind = SC_DEVICE_CUDA;
    be->device = ordinal;
    be->threads = 1;
    be->deterministic = opt->deterministic != 0;
    be->allow_tf32 = opt->allow_tf32 != 0;
    be->autotune = opt->autotune != 0 && !opt->deterministic;
    be->workspace_limit = opt->workspace_limit ? opt->workspace_limit : SC_CUDA_DEFAULT_CONV_WORKSPACE;
    be->impl = im;
    SC_DEBUG("CUDA backend on GPU %d (%d SMs): TF32 %s, %s, convolution workspace up to %.0f MiB%s", ordinal,
             im->sm_count, be->allow_tf32 ? "on" : "off", be->deterministic ? "deterministic" : "fast",
             (double)be->workspace_limit / 1048576.0, be->autotune ? ", autotuned" : "");
    *out = be;
    return SC_OK;
}

void sc_cuda_backend_destroy(sc_backend *be) {
    if (!be) return;
    impl_release(cuda_of(be));
    free(be);
}
