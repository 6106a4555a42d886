/*
 * grad_sync.c - the bucketed gradient mean overlapped with the backward pass (see
 * include/simclr/grad_sync.h).
 *
 * The state of a pass is one index: the next bucket to start. Buckets are numbered from the
 * top of the buffer, the order in which the backward pass finishes them, so a ready offset
 * starts a prefix of the remaining buckets and finish starts the rest, in the same order on
 * every rank.
 */
#include "simclr/grad_sync.h"

#include <stdio.h>
#include <stdlib.h>

struct sc_grad_sync {
    sc_comm *comm;
    uint8_t *grads;
    int64_t total, bucket;
    sc_dtype dt;
    int count;          /* buckets */
    int next;           /* the next bucket to start in this pass */
    sc_status status;   /* the first failure to start one in this pass */
};

sc_status sc_grad_sync_create(sc_comm *comm, void *grads, int64_t total, sc_dtype dt, int64_t bucket,
                              sc_grad_sync **out) {
    *out = NULL;
    if (total < 0 || bucket < 1 || (dt != SC_F32 && dt != SC_F64))
        return sc_errorf(SC_ERR_ARG, "gradient sync of %lld elements in buckets of %lld (dtype %d)", (long long)total,
                         (long long)bucket, (int)dt);
    int64_t count = (total + bucket - 1) / bucket;
    if (count > 1 << 30) return sc_errorf(SC_ERR_ARG, "%lld gradient buckets are too many", (long long)count);
    sc_grad_sync *s = calloc(1, sizeof *s);
    if (!s) return sc_errorf(SC_ERR_NOMEM, "out of memory for the gradient sync");
    *s = (sc_grad_sync){.comm = comm, .grads = grads, .total = total, .bucket = bucket, .dt = dt, .count = (int)count};
    *out = s;
    return SC_OK;
}

void sc_grad_sync_destroy(sc_grad_sync *s) { free(s); }

int sc_grad_sync_buckets(const sc_grad_sync *s) { return s->count; }

/* Offset of bucket k: max(0, total - (k + 1) * bucket). */
static int64_t bucket_begin(const sc_grad_sync *s, int k) {
    int64_t b = s->total - (int64_t)(k + 1) * s->bucket;
    return b > 0 ? b : 0;
}

static void start(sc_grad_sync *s, int k) {
    if (s->status != SC_OK) return; /* the communicator already failed */
    const int64_t b = bucket_begin(s, k), e = s->total - (int64_t)k * s->bucket;
    s->status = sc_comm_iallreduce_mean(s->comm, s->grads + (size_t)b * sc_dtype_size(s->dt), e - b, s->dt);
}

void sc_grad_sync_ready(void *sync, int64_t offset) {
    sc_grad_sync *s = sync;
    for (; s->next < s->count && bucket_begin(s, s->next) >= offset; s->next++) start(s, s->next);
}

sc_status sc_grad_sync_finish(sc_grad_sync *s) {
    for (; s->next < s->count; s->next++) start(s, s->next);
    sc_status st = s->status;
    char first[1024] = "";
    if (st != SC_OK) snprintf(first, sizeof first, "%s", sc_last_error());
    sc_status w = sc_comm_wait_all(s->comm); /* even after a failure: no bucket may stay in flight */
    s->next = 0;
    s->status = SC_OK;
    if (st != SC_OK) return sc_errorf(st, "%s", first);
    return w;
}
