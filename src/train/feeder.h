/*
 * feeder.h - moves loader batches onto the backend ahead of the step (internal to src/train).
 *
 * Two device input buffers alternate: while step k computes on buffer k % 2, the batch of step
 * k+1 is fetched from the loader and uploaded into the other one on the backend's copy stream
 * (sc_backend_upload_async), ordered by events: the upload waits until the step that last read
 * that buffer is done, and the next step's compute waits for the upload. Loader batch buffers
 * are host staging memory of the backend (sc_feeder_allocator: page-locked on CUDA) and go back
 * to the loader as soon as their copy has finished.
 *
 * With device augmentation (data.augment_on: gpu) the loader ships uint8 crops and the sample
 * keys; sc_feeder_next launches the backend's augment_crops on them and returns its views.
 *
 * Per step:  sc_feeder_next (the step's input x)  ->  enqueue forward/backward/update on x  ->
 *            sc_feeder_prefetch (fetch + upload the next batch)  ->  read the loss.
 * The feeder crosses epoch boundaries itself (sc_loader_start_epoch(e + 1, 0)).
 */
#ifndef SIMCLR_TRAIN_FEEDER_H
#define SIMCLR_TRAIN_FEEDER_H

#include "simclr/backend.h"
#include "simclr/data.h"

typedef struct sc_feeder sc_feeder;

/* Batch buffers of the loader in the backend's host staging memory. */
sc_host_allocator sc_feeder_allocator(sc_backend *be);

/* `loader` was created with sc_feeder_allocator(be), batch size B and output crops iff
 * device_augment. `aug` and `seed` are the loader's (the device draws the same numbers). */
sc_status sc_feeder_create(sc_backend *be, sc_loader *loader, const sc_augment_params *aug, uint64_t seed,
                           int batch_size, int device_augment, sc_feeder **out);
/* Continue from batch `batch` of `epoch` (0, 0 for a fresh run). */
sc_status sc_feeder_start(sc_feeder *f, int64_t epoch, int64_t batch);
/* The next step's views on the backend: x [2B, S, S, C] F32, valid until the next call; the
 * batch's epoch and index within it. */
sc_status sc_feeder_next(sc_feeder *f, sc_tensor *x, int64_t *epoch, int64_t *index, double *wait_seconds);
/* Fetch and upload the batch after the current one (call after enqueuing the step). */
sc_status sc_feeder_prefetch(sc_feeder *f, double *wait_seconds);
void sc_feeder_destroy(sc_feeder *f);

#endif /* SIMCLR_TRAIN_FEEDER_H */
