/*
 * nccl_comm.c - the NCCL communicator (CUDA builds only; src/dist/nccl_absent.c stands in
 * for it elsewhere). See include/simclr/dist.h.
 *
 * NCCL has no collective timeout and a blocking communicator can hang forever when a peer
 * dies, so this one is created non-blocking (config.blocking = 0): every call may return
 * ncclInProgress, and we poll ncclCommGetAsyncError under dist.timeout_s ourselves. Each
 * collective is enqueued on the backend's stream (in order with the ops around it), then an
 * event recorded after it is polled together with the asynchronous error until it completes,
 * the communicator reports an error, or the timeout passes; the two failures abort the
 * communicator (ncclCommAbort, after which no thread is inside NCCL) and return a message.
 * Waiting for each collective costs the host a synchronisation per call; it is what bounds
 * the time a dead peer can hold this rank.
 *
 * Asynchronous all-reduces run on a stream of the communicator's own ("side"): iallreduce
 * records an event on the backend's stream and makes the side stream wait for it (fork), so
 * the all-reduce sees every gradient enqueued before it, then enqueues the all-reduce there
 * and returns once NCCL has taken it (ncclInProgress settled under the timeout). wait_all
 * records an event on the side stream and makes the backend's stream wait for it (join), so
 * the optimizer runs after every bucket; then it polls that event with the asynchronous error
 * under dist.timeout_s, as a blocking collective does. The fork and the join are events, as
 * a stream capture allows. A duplicate (dup) is ncclCommSplit over the same ranks: its
 * collectives never queue behind the parent's, which the main thread keeps using (global BN).
 * All ranks start the same all-reduces in the same order on both communicators, as NCCL
 * requires of concurrent communicators.
 *
 * The unique id is made by rank 0 and broadcast over the out-of-band TCP communicator.
 * Determinism across runs needs NCCL_ALGO=Ring (and the same world size and topology).
 */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cuda_internal.h"
#include "simclr/dist.h"

typedef struct nccl_comm {
    sc_comm pub;
    ncclComm_t comm;
    cudaStream_t stream; /* the backend's */
    cudaStream_t side;   /* the asynchronous all-reduces' */
    cudaEvent_t done, forked, joined;
    int device;
    int32_t *one;        /* device scratch of the barrier */
    int broken;          /* aborted after a failure */
} nccl_comm;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static sc_status fail(nccl_comm *c, const char *what, const char *why) {
    if (!c->broken) {
        ncclCommAbort(c->comm);
        c->broken = 1;
    }
    return sc_errorf(SC_ERR_DEVICE, "NCCL %s: %s (a peer rank exited, crashed or hangs); the communicator is aborted",
                     what, why);
}

/* Wait until the communicator leaves ncclInProgress (non-blocking calls), under the timeout. */
static sc_status settle(nccl_comm *c, ncclResult_t r, const char *what) {
    const double t0 = now_s();
    while (r == ncclInProgress) {
        if (now_s() - t0 > c->pub.timeout_s) return fail(c, what, "no progress within dist.timeout_s");
        ncclCommGetAsyncError(c->comm, &r);
    }
    return r == ncclSuccess ? SC_OK : fail(c, what, ncclGetErrorString(r));
}

/* Poll `ev` (recorded after the collectives) until the GPU has passed it, or fail. */
static sc_status await_event(nccl_comm *c, cudaEvent_t ev, const char *what) {
    const double t0 = now_s();
    for (;;) {
        cudaError_t q = cudaEventQuery(ev);
        if (q == cudaSuccess) return SC_OK;
        if (q != cudaErrorNotReady) return fail(c, what, cudaGetErrorString(q));
        ncclResult_t a = ncclSuccess;
        ncclCommGetAsyncError(c->comm, &a);
        if (a != ncclSuccess && a != ncclInProgress) return fail(c, what, ncclGetErrorString(a));
        if (now_s() - t0 > c->pub.timeout_s) return fail(c, what, "not finished within dist.timeout_s");
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

/* The collective just enqueued (result r) has finished on the GPU, or fail. */
static sc_status finish(nccl_comm *c, ncclResult_t r, const char *what) {
    SC_TRY(settle(c, r, what));
    if (cudaEventRecord(c->done, c->stream) != cudaSuccess) return fail(c, what, "cudaEventRecord failed");
    return await_event(c, c->done, what);
}

static ncclDataType_t nccl_type(sc_dtype dt) {
    return dt == SC_F64 ? ncclFloat64 : dt == SC_I32 ? ncclInt32 : ncclFloat32;
}

static sc_status usable(nccl_comm *c) {
    return c->broken ? sc_errorf(SC_ERR_DEVICE, "the NCCL communicator was aborted by an earlier failure") : SC_OK;
}

static sc_status nc_allreduce(sc_comm *pub, void *buf, int64_t count, sc_dtype dt, sc_reduce_op op) {
    nccl_comm *c = pub->impl;
    SC_TRY(usable(c));
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)count, nccl_type(dt), op == SC_REDUCE_MEAN ? ncclAvg : ncclSum,
                                   c->comm, c->stream);
    return finish(c, r, "all-reduce");
}

static sc_status nc_allgather(sc_comm *pub, const void *send, void *recv, int64_t count, sc_dtype dt) {
    nccl_comm *c = pub->impl;
    SC_TRY(usable(c));
    return finish(c, ncclAllGather(send, recv, (size_t)count, nccl_type(dt), c->comm, c->stream), "all-gather");
}

static sc_status nc_reduce_scatter(sc_comm *pub, const void *send, void *recv, int64_t count, sc_dtype dt) {
    nccl_comm *c = pub->impl;
    SC_TRY(usable(c));
    return finish(c, ncclReduceScatter(send, recv, (size_t)count, nccl_type(dt), ncclSum, c->comm, c->stream),
                  "reduce-scatter");
}

static sc_status nc_broadcast(sc_comm *pub, void *buf, int64_t count, sc_dtype dt, int root) {
    nccl_comm *c = pub->impl;
    SC_TRY(usable(c));
    return finish(c, ncclBroadcast(buf, buf, (size_t)count, nccl_type(dt), root, c->comm, c->stream), "broadcast");
}

static sc_status nc_barrier(sc_comm *pub) {
    nccl_comm *c = pub->impl;
    return nc_allreduce(pub, c->one, 1, SC_I32, SC_REDUCE_SUM);
}

static sc_status nc_iallreduce(sc_comm *pub, void *buf, int64_t count, sc_dtype dt, sc_reduce_op op) {
    nccl_comm *c = pub->impl;
    SC_TRY(usable(c));
    if (cudaEventRecord(c->forked, c->stream) != cudaSuccess || cudaStreamWaitEvent(c->side, c->forked, 0) != cudaSuccess)
        return fail(c, "asynchronous all-reduce", "cannot order the communication stream after the compute stream");
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)count, nccl_type(dt), op == SC_REDUCE_MEAN ? ncclAvg : ncclSum,
                                   c->comm, c->side);
    return settle(c, r, "asynchronous all-reduce");
}

static sc_status nc_wait_all(sc_comm *pub) {
    nccl_comm *c = pub->impl;
    SC_TRY(usable(c));
    if (cudaEventRecord(c->joined, c->side) != cudaSuccess || cudaStreamWaitEvent(c->stream, c->joined, 0) != cudaSuccess)
        return fail(c, "asynchronous all-reduce", "cannot order the compute stream after the communication stream");
    return await_event(c, c->joined, "asynchronous all-reduce");
}

static sc_status wrap_comm(ncclComm_t comm, sc_comm *like, int rank, int size, cudaStream_t stream, int device,
                           sc_comm **out);

/* A communicator split from c: the members of this rank's `color`, ordered by rank. */
static sc_status split_as(nccl_comm *c, int color, int rank, int size, const char *what, sc_comm **out) {
    SC_TRY(usable(c));
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclComm_t g = NULL;
    SC_TRY(settle(c, ncclCommSplit(c->comm, color, c->pub.rank, &g, &cfg), what));
    nccl_comm tmp = {.pub = c->pub, .comm = g};
    ncclResult_t r = ncclInProgress;
    SC_TRY(settle(&tmp, r, what));
    return wrap_comm(g, &c->pub, rank, size, c->stream, c->device, out);
}

static sc_status nc_split(sc_comm *pub, int group_size, sc_comm **out) {
    return split_as(pub->impl, pub->rank / group_size, pub->rank % group_size, group_size, "split", out);
}

static sc_status nc_dup(sc_comm *pub, sc_comm **out) {
    return split_as(pub->impl, 0, pub->rank, pub->world_size, "dup", out);
}

static void nc_abort(sc_comm *pub) {
    nccl_comm *c = pub->impl;
    if (!c->broken) ncclCommAbort(c->comm);
    c->broken = 1;
}

static void nc_destroy(sc_comm *pub) {
    nccl_comm *c = pub->impl;
    if (!c->broken) {
        ncclCommFinalize(c->comm);
        ncclResult_t r = ncclInProgress;
        const double t0 = now_s();
        while (r == ncclInProgress && now_s() - t0 < c->pub.timeout_s) ncclCommGetAsyncError(c->comm, &r);
        if (r == ncclSuccess)
            ncclCommDestroy(c->comm);
        else
            ncclCommAbort(c->comm);
    }
    cudaFree(c->one);
    cudaEventDestroy(c->done);
    cudaEventDestroy(c->forked);
    cudaEventDestroy(c->joined);
    cudaStreamDestroy(c->side);
    free(c);
}

static const sc_comm_ops nccl_ops = {
    .name = "nccl",
    .allreduce = nc_allreduce,
    .allgather = nc_allgather,
    .reduce_scatter_sum = nc_reduce_scatter,
    .broadcast = nc_broadcast,
    .barrier = nc_barrier,
    .split = nc_split,
    .dup = nc_dup,
    .iallreduce = nc_iallreduce,
    .wait_all = nc_wait_all,
    .abort = nc_abort,
    .destroy = nc_destroy,
};

static sc_status wrap_comm(ncclComm_t comm, sc_comm *like, int rank, int size, cudaStream_t stream, int device,
                           sc_comm **out) {
    nccl_comm *c = calloc(1, sizeof *c);
    if (!c) {
        ncclCommAbort(comm);
        return sc_errorf(SC_ERR_NOMEM, "out of memory for a communicator");
    }
    c->comm = comm;
    c->stream = stream;
    c->device = device;
    c->pub = (sc_comm){.ops = &nccl_ops, .rank = rank, .world_size = size, .global_rank = like->global_rank,
                       .timeout_s = like->timeout_s, .impl = c};
    if (cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventCreateWithFlags(&c->forked, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventCreateWithFlags(&c->joined, cudaEventDisableTiming) != cudaSuccess ||
        cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking) != cudaSuccess ||
        cudaMalloc((void **)&c->one, sizeof(int32_t)) != cudaSuccess) {
        ncclCommAbort(comm);
        if (c->done) cudaEventDestroy(c->done);
        if (c->forked) cudaEventDestroy(c->forked);
        if (c->joined) cudaEventDestroy(c->joined);
        if (c->side) cudaStreamDestroy(c->side);
        free(c);
        return sc_errorf(SC_ERR_DEVICE, "rank %d: cannot create the NCCL communicator's stream, events and scratch",
                         like->global_rank);
    }
    int32_t one = 1;
    cudaMemcpy(c->one, &one, sizeof one, cudaMemcpyHostToDevice);
    *out = &c->pub;
    return SC_OK;
}

sc_status sc_comm_nccl_create(sc_comm *oob, sc_backend *be, double timeout_s, sc_comm **out) {
    *out = NULL;
    if (be->kind != SC_DEVICE_CUDA)
        return sc_errorf(SC_ERR_UNSUPPORTED, "rank %d: NCCL needs the CUDA backend, not %s", oob->global_rank,
                         be->ops->name);
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (oob->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess)
            return sc_errorf(SC_ERR_DEVICE, "rank 0: ncclGetUniqueId: %s", ncclGetErrorString(r));
    }
    _Static_assert(sizeof(ncclUniqueId) % sizeof(int32_t) == 0, "unique id size");
    SC_TRY(sc_comm_broadcast(oob, &id, (int64_t)(sizeof id / sizeof(int32_t)), SC_I32, 0));
    if (cudaSetDevice(be->device) != cudaSuccess)
        return sc_errorf(SC_ERR_DEVICE, "rank %d: cannot select CUDA device %d", oob->global_rank, be->device);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRankConfig(&comm, oob->world_size, id, oob->rank, &cfg);
    nccl_comm tmp = {.pub = {.timeout_s = timeout_s}, .comm = comm};
    if (r == ncclInProgress || r == ncclSuccess) {
        sc_status st = settle(&tmp, ncclInProgress, "initialisation");
        if (st != SC_OK) return sc_error_wrap(st, "rank %d of %d: creating the NCCL communicator", oob->global_rank,
                                              oob->world_size);
    } else {
        return sc_errorf(SC_ERR_DEVICE, "rank %d of %d: ncclCommInitRankConfig: %s", oob->global_rank, oob->world_size,
                         ncclGetErrorString(r));
    }
    sc_comm like = {.global_rank = oob->global_rank, .timeout_s = timeout_s};
    return wrap_comm(comm, &like, oob->rank, oob->world_size, cuda_of(be)->stream, be->device, out);
}
