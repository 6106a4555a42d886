/*
 * feeder.c - double-buffered, event-ordered uploads of loader batches (see feeder.h).
 */
#include "feeder.h"

#include <stdlib.h>
#include <string.h>

typedef struct feed_slot {
    void *input;                 /* device: float views [2B,S,S,C], or uint8 crops [2B,S,S,wc] */
    void *keys;                  /* device: uint32 [B] (device augmentation) */
    sc_backend_event *uploaded;  /* the upload into this slot has finished */
    sc_backend_event *consumed;  /* the last step that read this slot has finished */
    int64_t epoch, index;
    int wc;                      /* channels of the crops in `input` */
} feed_slot;

struct sc_feeder {
    sc_backend *be;
    sc_loader *loader;
    sc_augment_params aug;
    uint64_t seed;
    int B, device_augment;
    size_t input_bytes;
    feed_slot slot[2];
    void *views;                 /* device augmentation: the finished views [2B,S,S,C] */
    void *workspace;
    int cur;                     /* slot of the current step */
    int have_next;               /* slot cur ^ 1 holds the next batch */
    int64_t epoch;               /* epoch the loader is producing */
};

static void *staging_alloc(void *ctx, size_t bytes) {
    void *p = NULL;
    return sc_backend_host_alloc(ctx, bytes, "loader batches", &p) == SC_OK ? p : NULL;
}

static void staging_free(void *ctx, void *p) { sc_backend_host_free(ctx, p); }

sc_host_allocator sc_feeder_allocator(sc_backend *be) {
    sc_host_allocator a = {staging_alloc, staging_free, be};
    return a;
}

sc_status sc_feeder_create(sc_backend *be, sc_loader *loader, const sc_augment_params *aug, uint64_t seed,
                           int batch_size, int device_augment, sc_feeder **out) {
    *out = NULL;
    if (device_augment && !sc_backend_can_augment(be))
        return sc_errorf(SC_ERR_UNSUPPORTED,
                         "data.augment_on: gpu, but the %s backend has no device augmentation; use data.augment_on: cpu",
                         be->ops->name);
    sc_feeder *f = calloc(1, sizeof *f);
    if (!f) return sc_errorf(SC_ERR_NOMEM, "out of memory for the feeder");
    f->be = be;
    f->loader = loader;
    f->aug = *aug;
    f->seed = seed;
    f->B = batch_size;
    f->device_augment = device_augment;
    const size_t pixels = (size_t)2 * batch_size * aug->out_size * aug->out_size;
    const size_t view_bytes = pixels * aug->out_channels * sizeof(float);
    sc_status rc = SC_OK;
    if (device_augment) {
        /* Crops keep the work channels: 3 unless source and view are both gray. The loader
         * reports them per batch; size the buffer for 3. */
        f->input_bytes = pixels * 3;
        rc = sc_backend_alloc(be, view_bytes, "the augmented views", &f->views);
        if (rc == SC_OK)
            rc = sc_backend_alloc(be, sc_op_augment_workspace(be, aug, batch_size, 3), "the augmentation workspace",
                                  &f->workspace);
    } else {
        f->input_bytes = view_bytes;
    }
    for (int s = 0; s < 2 && rc == SC_OK; s++) {
        rc = sc_backend_alloc(be, f->input_bytes, "the input views", &f->slot[s].input);
        if (rc == SC_OK && device_augment)
            rc = sc_backend_alloc(be, (size_t)batch_size * sizeof(uint32_t), "the sample keys", &f->slot[s].keys);
        if (rc == SC_OK) rc = sc_backend_event_create(be, &f->slot[s].uploaded);
        if (rc == SC_OK) rc = sc_backend_event_create(be, &f->slot[s].consumed);
    }
    if (rc != SC_OK) {
        sc_feeder_destroy(f);
        return rc;
    }
    *out = f;
    return SC_OK;
}

sc_status sc_feeder_start(sc_feeder *f, int64_t epoch, int64_t batch) {
    f->have_next = 0;
    f->epoch = epoch;
    return sc_loader_start_epoch(f->loader, epoch, batch);
}

/* Take the loader's next batch (starting the next epoch at the end of one) and upload it into
 * slot s once the step that last read s is done; the batch goes back to the loader when its
 * copy has finished, which overlaps the step being computed. */
static sc_status fetch_upload(sc_feeder *f, int s, double *wait_seconds) {
    sc_batch *b = NULL;
    SC_TRY(sc_loader_next(f->loader, &b, wait_seconds));
    if (!b) {
        SC_TRY(sc_loader_start_epoch(f->loader, ++f->epoch, 0));
        SC_TRY(sc_loader_next(f->loader, &b, wait_seconds));
        if (!b) return sc_errorf(SC_ERR_DATA, "the loader produced no batch in epoch %lld", (long long)f->epoch);
    }
    SC_CHECK(b->samples == f->B, "feeder: a batch of %d samples, expected %d", b->samples, f->B);
    feed_slot *slot = &f->slot[s];
    slot->epoch = b->epoch;
    slot->index = b->index;
    const size_t pixels = (size_t)2 * b->samples * b->height * b->width;
    if (f->device_augment) {
        slot->wc = b->channels;
        sc_backend_upload_async(f->be, slot->keys, b->keys, (size_t)b->samples * sizeof(uint32_t), slot->consumed,
                                NULL);
        sc_backend_upload_async(f->be, slot->input, b->crops, pixels * (size_t)b->channels, NULL, slot->uploaded);
    } else {
        sc_backend_upload_async(f->be, slot->input, b->views, pixels * (size_t)b->channels * sizeof(float),
                                slot->consumed, slot->uploaded);
    }
    sc_backend_event_sync(f->be, slot->uploaded);
    sc_loader_release(f->loader, b);
    return SC_OK;
}

sc_status sc_feeder_next(sc_feeder *f, sc_tensor *x, int64_t *epoch, int64_t *index, double *wait_seconds) {
    if (!f->have_next) SC_TRY(fetch_upload(f, f->cur ^ 1, wait_seconds));
    f->cur ^= 1;
    f->have_next = 0;
    feed_slot *s = &f->slot[f->cur];
    *epoch = s->epoch;
    *index = s->index;
    const int S = f->aug.out_size;
    if (f->device_augment) {
        *x = sc_tensor_4d(f->views, SC_F32, 2 * (int64_t)f->B, S, S, f->aug.out_channels);
        sc_op_augment_crops(f->be, &f->aug, f->seed, (uint32_t)s->epoch, s->input, s->keys, f->B, s->wc, x,
                            f->workspace);
    } else {
        *x = sc_tensor_4d(s->input, SC_F32, 2 * (int64_t)f->B, S, S, f->aug.out_channels);
    }
    return SC_OK;
}

sc_status sc_feeder_prefetch(sc_feeder *f, double *wait_seconds) {
    sc_backend_event_record(f->be, f->slot[f->cur].consumed);
    SC_TRY(fetch_upload(f, f->cur ^ 1, wait_seconds));
    f->have_next = 1;
    return SC_OK;
}

void sc_feeder_destroy(sc_feeder *f) {
    if (!f) return;
    f->be->ops->synchronize(f->be); /* no upload or step may still use the buffers */
    for (int s = 0; s < 2; s++) {
        sc_backend_free(f->be, f->slot[s].input);
        sc_backend_free(f->be, f->slot[s].keys);
        sc_backend_event_destroy(f->be, f->slot[s].uploaded);
        sc_backend_event_destroy(f->be, f->slot[s].consumed);
    }
    sc_backend_free(f->be, f->views);
    sc_backend_free(f->be, f->workspace);
    free(f);
}
