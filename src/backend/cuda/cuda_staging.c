/*
 * cuda_staging.c - how batches reach the GPU: page-locked host staging memory, events, and
 * host-to-device copies on a second (copy) stream, so that the upload of batch k+1 overlaps
 * step k on the compute stream; and the device half of SimCLR augmentation (kernels/augment.cu)
 * for data.augment_on: gpu. The semantics are the table entries' in include/simclr/backend.h;
 * the trainer's feeder (src/train/feeder.c) is the only user.
 */
#include "cuda_internal.h"

void *cuda_host_alloc(sc_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes, cudaHostAllocPortable) != cudaSuccess) {
        cudaGetLastError(); /* out of pinned memory: the caller reports it */
        return NULL;
    }
    return p;
}

void cuda_host_free(sc_backend *be, void *ptr) {
    (void)be;
    if (ptr) SC_CUDA_CHECK(cudaFreeHost(ptr));
}

sc_backend_event *cuda_event_create(sc_backend *be) {
    (void)be;
    cudaEvent_t ev = NULL;
    if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return (sc_backend_event *)ev;
}

void cuda_event_destroy(sc_backend *be, sc_backend_event *ev) {
    (void)be;
    SC_CUDA_CHECK(cudaEventDestroy((cudaEvent_t)ev));
}

void cuda_event_record(sc_backend *be, sc_backend_event *ev) {
    SC_CUDA_CHECK(cudaEventRecord((cudaEvent_t)ev, cuda_of(be)->stream));
}

void cuda_event_sync(sc_backend *be, sc_backend_event *ev) {
    (void)be;
    SC_CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)ev));
}

void cuda_upload_async(sc_backend *be, void *dst, const void *host_src, size_t bytes, sc_backend_event *after,
                              sc_backend_event *done) {
    cuda_impl *im = cuda_of(be);
    cuda_forbid_capture(im, "an asynchronous upload");
    if (after) SC_CUDA_CHECK(cudaStreamWaitEvent(im->copy_stream, (cudaEvent_t)after, 0));
    SC_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, im->copy_stream));
    if (done) {
        SC_CUDA_CHECK(cudaEventRecord((cudaEvent_t)done, im->copy_stream));
        SC_CUDA_CHECK(cudaStreamWaitEvent(im->stream, (cudaEvent_t)done, 0)); /* later compute waits */
    } else {
        SC_CUDA_CHECK(cudaStreamSynchronize(im->copy_stream));
    }
}

size_t cuda_augment_workspace(sc_backend *be, const sc_augment_params *p, int samples, int wc) {
    (void)be;
    return sc_cuda_augment_workspace(p, samples, wc);
}

void cuda_augment_crops(sc_backend *be, const sc_augment_params *p, uint64_t seed, uint32_t epoch,
                               const uint8_t *crops, const uint32_t *keys, int samples, int wc, float *views,
                               void *workspace) {
    sc_cuda_augment_crops(p, seed, epoch, crops, keys, samples, wc, views, workspace, cuda_of(be)->stream);
}
