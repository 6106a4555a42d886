/*
 * grad_sync.h - the mean of a flat gradient buffer over the ranks, in buckets that are
 * all-reduced while the backward pass still runs.
 *
 * The buffer [total] is cut into buckets of `bucket` elements counted from its end: bucket 0
 * is [total - bucket, total), bucket 1 the one below it, and the last one, at offset 0, may be
 * shorter. A backward pass finishes gradients from the top of the buffer downwards (the model
 * lays parameters out in forward order), so it reports, through sc_grad_sync_ready (the
 * model's gradient-ready hook), the lowest offset from which every gradient is final; each
 * bucket lying wholly at or above it is started at once as an asynchronous mean all-reduce,
 * and travels while the pass computes the rest. sc_grad_sync_finish starts the buckets still
 * waiting and waits for all of them (on a device: the backend's stream waits), so the
 * optimizer that follows sees the mean. Without ready calls every bucket starts in finish,
 * after the backward pass.
 *
 * The all-reduces run on the communicator given, which nothing else may use meanwhile: make
 * it with sc_comm_dup, so that it has connections of its own. Every rank must report the same
 * offsets in the same order (the same model does), so that all start the same buckets in the
 * same order. The sums are the communicator's (rank order on TCP), so the result does not
 * depend on when a bucket starts, nor on the bucket size.
 */
#ifndef SIMCLR_GRAD_SYNC_H
#define SIMCLR_GRAD_SYNC_H

#include "simclr/dist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sc_grad_sync sc_grad_sync;

/* A sync of grads [total] (F32 or F64, memory of comm's kind: host for TCP, the backend's
 * for NCCL) in buckets of `bucket` >= 1 elements over `comm` (not owned; it must outlive
 * the sync). */
sc_status sc_grad_sync_create(sc_comm *comm, void *grads, int64_t total, sc_dtype dt, int64_t bucket,
                              sc_grad_sync **out);
void sc_grad_sync_destroy(sc_grad_sync *s); /* NULL is a no-op; call finish (or abort the comm) first */

/* Every gradient at offset >= `offset` is final for this pass: start each bucket now wholly
 * inside that range. `sync` is the sc_grad_sync (the signature of the model's hook). A failure
 * to start is kept and returned by finish. */
void sc_grad_sync_ready(void *sync, int64_t offset);

/* Start the buckets not started yet, wait for all of them and get ready for the next pass.
 * Returns the first failure of the pass. */
sc_status sc_grad_sync_finish(sc_grad_sync *s);

/* Buckets of the buffer (for the tests and the benchmark). */
int sc_grad_sync_buckets(const sc_grad_sync *s);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_GRAD_SYNC_H */
