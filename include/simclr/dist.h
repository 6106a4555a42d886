/*
 * dist.h - the communicator interface of data-parallel training, and the launch environment.
 *
 * One `sc_comm` connects the ranks of a job. Two implementations fill its op table:
 *  - TCP (src/dist/tcp_comm.c): host buffers, one process per rank connected in a full mesh of
 *    sockets after a rendezvous on MASTER_ADDR:MASTER_PORT. It is the communicator of the CPU
 *    backend, and the out-of-band channel of NCCL (unique id exchange, abort notice).
 *  - NCCL (src/dist/nccl/nccl_comm.c, CUDA builds only): device buffers, non-blocking
 *    communicators polled under the same timeout, ncclCommAbort on any failure.
 *
 * Every collective is called by all ranks of the communicator in the same order and returns
 * an sc_status: a peer that exited or died (connection closed) or one that sends nothing for
 * `timeout_s` seconds makes the call fail with a message naming that rank, so no rank ever
 * waits forever. After a failure the communicator is unusable; call abort, then destroy.
 *
 * Asynchronous all-reduces (iallreduce, then wait_all) let the gradient buckets travel while
 * the backward pass still computes (src/dist/grad_sync.c). They run on a communicator made
 * for them with dup, which has connections of its own (TCP: its own sockets and a worker
 * thread; NCCL: its own communicator and CUDA stream), so they never interleave with the
 * blocking collectives the main thread issues on the parent meanwhile (global BN). A dead or
 * silent peer fails wait_all as it fails a blocking call (at once, or after timeout_s), naming
 * it, and an asynchronous all-reduce gives the bits of the blocking one.
 *
 * Reductions are deterministic: every element is summed in rank order (rank 0 + rank 1 + ...)
 * on both implementations where NCCL allows it (NCCL_ALGO=Ring is needed there), so every
 * rank receives identical bits and a run repeats exactly.
 */
#ifndef SIMCLR_DIST_H
#define SIMCLR_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "simclr/backend.h"
#include "simclr/status.h"
#include "simclr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sc_comm sc_comm;

typedef enum sc_reduce_op {
    SC_REDUCE_SUM = 0,
    SC_REDUCE_MEAN = 1, /* the sum divided by the number of ranks (F32 and F64 only) */
} sc_reduce_op;

typedef struct sc_comm_ops {
    const char *name; /* "tcp" or "nccl" */
    /* buf [count] <- the element-wise sum (or mean) of every rank's buf [count]. F32, F64 or I32. */
    sc_status (*allreduce)(sc_comm *c, void *buf, int64_t count, sc_dtype dt, sc_reduce_op op);
    /* recv [world * count] <- rank r's send [count] at offset r * count. */
    sc_status (*allgather)(sc_comm *c, const void *send, void *recv, int64_t count, sc_dtype dt);
    /* recv [count] <- the sum over ranks of their send [world * count] block at rank * count. */
    sc_status (*reduce_scatter_sum)(sc_comm *c, const void *send, void *recv, int64_t count, sc_dtype dt);
    /* buf [count] <- root's buf. */
    sc_status (*broadcast)(sc_comm *c, void *buf, int64_t count, sc_dtype dt, int root);
    sc_status (*barrier)(sc_comm *c);
    /* A communicator over the group of `group_size` consecutive ranks holding this rank
     * (group_size divides world_size). Collective over the whole communicator. */
    sc_status (*split)(sc_comm *c, int group_size, sc_comm **out);
    /* A communicator over the same ranks with connections of its own: its operations may run
     * at the same time as the parent's (TCP: from another thread). Collective. */
    sc_status (*dup)(sc_comm *c, sc_comm **out);
    /* Start buf [count] <- the sum (or mean) of every rank's buf and return at once; the
     * started all-reduces run one after the other in the order they were started, and buf
     * belongs to the communicator until wait_all. On a device communicator the all-reduce
     * runs on a stream of its own after the work enqueued so far on the backend's stream.
     * Only iallreduce, wait_all and abort may be called while some are started. */
    sc_status (*iallreduce)(sc_comm *c, void *buf, int64_t count, sc_dtype dt, sc_reduce_op op);
    /* Wait until every started all-reduce has finished (a device communicator also makes the
     * backend's stream wait for them); returns the first failure among them. */
    sc_status (*wait_all)(sc_comm *c);
    /* Give up: tell the peers (best effort), stop every transfer in progress. Never blocks. */
    void (*abort)(sc_comm *c);
    void (*destroy)(sc_comm *c);
} sc_comm_ops;

struct sc_comm {
    const sc_comm_ops *ops;
    int rank, world_size;
    int global_rank;  /* this process's rank in the whole job (names it in messages) */
    double timeout_s; /* a collective fails when a peer is silent this long */
    void *impl;
};

/* ---- the launch environment ---- */
typedef struct sc_dist_env {
    int rank, world_size, local_rank;
    char master_addr[256];
    int master_port;
    const char *source; /* which variables gave the rank: "RANK", "OMPI_COMM_WORLD_RANK",
                         * "SLURM_PROCID" or "none" (a single process) */
} sc_dist_env;

/* The rank, world size and local rank from, in this order, torchrun-style RANK / WORLD_SIZE /
 * LOCAL_RANK, Open MPI's OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK, or Slurm's SLURM_PROCID /
 * SLURM_NTASKS / SLURM_LOCALID; a single process (0 of 1) when none is set. MASTER_ADDR
 * (default 127.0.0.1) and MASTER_PORT (default 29500) locate rank 0's rendezvous. Fails with
 * the variable's name when a value is not a number or out of range. */
sc_status sc_dist_env_read(sc_dist_env *env);

/* A TCP port of 127.0.0.1 that was free when asked (the kernel's pick), for local launches. */
int sc_dist_free_port(void);

/* ---- communicators ---- */

/* The TCP communicator of this rank: rank 0 listens on master_addr:master_port, the others
 * connect to it (retrying until timeout_s); then every pair of ranks is connected directly.
 * A world of 1 opens no socket. */
sc_status sc_comm_tcp_create(const sc_dist_env *env, double timeout_s, sc_comm **out);

/* The NCCL communicator of this rank on the CUDA backend `be` (its device; collectives are
 * enqueued on its stream, in order with the ops), bootstrapped over `oob` (a TCP
 * communicator of the same ranks: rank 0's unique id travels over it; it must outlive the
 * result). SC_ERR_UNSUPPORTED in a build without CUDA or on another backend. */
sc_status sc_comm_nccl_create(sc_comm *oob, sc_backend *be, double timeout_s, sc_comm **out);

/* Checked wrappers: same arguments as the table; they validate counts and dtypes and prefix
 * a failure with the operation and this rank. */
sc_status sc_comm_allreduce_sum(sc_comm *c, void *buf, int64_t count, sc_dtype dt);
sc_status sc_comm_allreduce_mean(sc_comm *c, void *buf, int64_t count, sc_dtype dt);
sc_status sc_comm_allgather(sc_comm *c, const void *send, void *recv, int64_t count, sc_dtype dt);
sc_status sc_comm_reduce_scatter_sum(sc_comm *c, const void *send, void *recv, int64_t count, sc_dtype dt);
sc_status sc_comm_broadcast(sc_comm *c, void *buf, int64_t count, sc_dtype dt, int root);
sc_status sc_comm_barrier(sc_comm *c);
sc_status sc_comm_split(sc_comm *c, int group_size, sc_comm **out);
sc_status sc_comm_dup(sc_comm *c, sc_comm **out);
sc_status sc_comm_iallreduce_mean(sc_comm *c, void *buf, int64_t count, sc_dtype dt);
sc_status sc_comm_wait_all(sc_comm *c);
void sc_comm_abort(sc_comm *c);
void sc_comm_destroy(sc_comm *c); /* NULL is a no-op */

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_DIST_H */
